// Instrument signature removal: one raw detector readout (integer ADU per amplifier, raw frame) ->
// an assembled Exposure in electrons with mask and variance planes.
//
// Output conventions:
//  * image: e- per pixel (gain applied per amplifier), bias/dark removed, divided by the flat;
//  * variance (e-^2): [max(signal, 0) + readNoise^2 + overscan level noise + calibration noise] / flat^2
//    + image^2 x var(flat) / flat^2, where signal is measured after bias and linearity, before the dark
//    is subtracted (so the dark current's own shot noise is included), and the calibration noise
//    (IsrConfig::doCalibrationVariance) is var(bias) x (1 - darkTime x DKBIASF)^2 + var(dark) x darkTime^2
//    (DKBIASF: the master dark's inherited-bias factor, see makeMasterDark; 0 when absent);
//  * mask: SAT (raw >= saturation, grown), BAD (defects, unusable flat, raw values outside the 16-bit
//    ADC range — the integer raw's "NaN" — and non-finite results), INTRP (filled by interpolation);
//  * VisitInfo, the header WCS (as the initial WCS) and the detector id are copied; the raw's metadata
//    is copied and ISR_* keys added (overscan level and noise per amplifier, pixel counts, steps).
// A stage: no file I/O, no MPI, a pure function of its inputs.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/Camera.h"
#include "core/Exposure.h"
#include "core/RawExposure.h"
#include "stages/isr/IsrCalibrations.h"
#include "stages/isr/IsrConfig.h"

namespace drp {

/// Remove the instrument signature of one raw readout.
/// Throws ConfigError (invalid config), NotFoundError (a calibration the config asks for is missing:
/// the message names it, e.g. "master flat for band r"), InvalidInputError (raw or calibration of the
/// wrong shape, dark time unknown when doDark). Raw values outside [0, 65535] are masked BAD, not fatal.
Exposure runIsr(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                const IsrConfig& config);

namespace isr {

/// Bias level (ADU) of every data row of one raw amplifier image (index v - rawDataBBox.minY()), from
/// its serial overscan. `readNoiseAdu` scales the clip. Raw values outside [0, 65535] are ignored; a row
/// with no usable overscan pixel takes the median of the other rows (all unusable: NaN).
/// `noiseAdu`, if given, receives the clipped rms of the overscan pixels about their row levels and
/// `levelVarianceAdu2` the variance of one row's level estimate (ADU^2).
std::vector<double> overscanLevels(const Amplifier& amp, const Image<std::int32_t>& raw, const IsrConfig& config,
                                   double readNoiseAdu, double* noiseAdu = nullptr, double* levelVarianceAdu2 = nullptr);

/// Fill every pixel with any of `bits` set by interpolation (config.interpolationMethod) and OR `intrpBit`
/// into it; the variance of a filled pixel is the mean variance of the pixels it came from. Runs wider
/// than config.interpolationMaxWidth, and rows with no good pixel, are left alone. Returns the number of
/// pixels filled.
std::int64_t interpolateMaskedPixels(MaskedImageF& image, MaskPixel bits, MaskPixel intrpBit, const IsrConfig& config);

/// Subtract crosstalk in place from an assembled image in e- (assembled frame; amplifier data boxes):
/// victim -= c[victim][source] x gain[victim] / gain[source] x source, where source and victim pixels share
/// their raw readout position. Pixels whose mask has `skipBits` do not act as sources.
void subtractCrosstalk(const ImageF& image, const Mask& mask, MaskPixel skipBits, const Detector& detector,
                       const Eigen::MatrixXd& crosstalk, const std::vector<AmplifierCalib>& amps);

/// Inverse of measured = x + c x^2 on its monotonic branch (beyond the turnover: the turnover x).
inline double invertQuadraticNonlinearity(double measured, double c) {
    if (c == 0.0) return measured;
    const double disc = 1.0 + 4.0 * c * measured;
    if (disc <= 0.0) return -0.5 / c;
    return 2.0 * measured / (1.0 + std::sqrt(disc));
}

}  // namespace isr
}  // namespace drp
