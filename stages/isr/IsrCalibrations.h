// IsrCalibrations: everything runIsr needs besides the raw readout and the config — master
// calibrations (not owned: the caller keeps them alive), defects, crosstalk and the per-amplifier
// characterisation of the camera (gain, read noise, non-linearity, saturation).
#pragma once

#include <vector>

#include <Eigen/Core>

#include "core/Box.h"
#include "core/Camera.h"
#include "core/Exposure.h"

namespace drp {

/// Lab characterisation of one amplifier.
struct AmplifierCalib {
    double gain = 1.0;               ///< e-/ADU; > 0
    double readNoise = 0.0;          ///< e- rms; >= 0
    double nonlinearityCoeff = 0.0;  ///< c of measured = x + c x^2 (x, measured in e-), 1/e-
    double saturationAdu = 65535.0;  ///< raw ADU (bias included) at or above which a pixel is saturated; > 0

    friend bool operator==(const AmplifierCalib&, const AmplifierCalib&) = default;
};

/// The calibrations of one detector (and, for the flat, one band).
struct IsrCalibrations {
    const Exposure* bias = nullptr;  ///< master bias, e- (after overscan), covers Detector::bbox()
    const Exposure* dark = nullptr;  ///< master dark, e-/s, covers Detector::bbox()
    const Exposure* flat = nullptr;  ///< master flat of the exposure's band, normalised (median 1)
    std::vector<Box2I> defects;      ///< bad pixels (assembled detector frame)
    Eigen::MatrixXd crosstalk;       ///< [victim][source] ADU/ADU, Detector::amplifiers() order
    /// One per amplifier (Detector::amplifiers() order). Empty: gain, read noise and saturation come
    /// from the Detector's Amplifier (saturation capped at 65535) and the non-linearity is unknown.
    std::vector<AmplifierCalib> amplifiers;
};

/// The characterisation runIsr uses for each amplifier: calibs.amplifiers if given, else the Detector's.
/// Throws InvalidInputError if calibs.amplifiers has the wrong length or a non-positive gain or saturation.
std::vector<AmplifierCalib> effectiveAmplifierCalibs(const Detector& detector, const IsrCalibrations& calibs);

}  // namespace drp
