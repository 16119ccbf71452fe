// Master calibrations built from raw calibration exposures (as cp_pipe does): each input is processed by
// runIsr up to the step the master removes, scaled (dark: / dark time; flat: / its median), and the
// inputs are combined pixel by pixel with a sigma clip relative to the expected noise of each input
// (from its variance plane), which stays robust to cosmic rays with as few as three inputs.
//
// Every master: image, variance (of the combined value) and mask (BAD|NO_DATA where fewer than
// MasterConfig::minKept inputs survive); metadata CALIBTYP, NINPUTS, CLIPFRAC (fraction of input values
// clipped), CLIPSIG, plus FLATNORM and BAND for flats; the detector id; VisitInfo of the first input with
// exposure and dark times cleared (the band kept).
#pragma once

#include <vector>

#include "core/Camera.h"
#include "core/Exposure.h"
#include "core/RawExposure.h"
#include "stages/isr/IsrCalibrations.h"
#include "stages/isr/IsrConfig.h"

namespace drp {

/// Master bias in e- (after overscan subtraction): gains, read noise and saturation from `partial`
/// (or the Detector's amplifiers when partial.amplifiers is empty).
Exposure makeMasterBias(const std::vector<RawExposure>& biases, const Detector& detector,
                        const IsrCalibrations& partial, const IsrConfig& config, const MasterConfig& masterConfig);
/// As above with the Detector's gains and read noise.
Exposure makeMasterBias(const std::vector<RawExposure>& biases, const Detector& detector, const IsrConfig& config,
                        const MasterConfig& masterConfig);

/// Master dark in e-/s: each dark is bias-subtracted (and crosstalk/linearity-corrected as the config
/// asks, from `partial`), divided by its dark time (> 0, else InvalidInputError). Its variance plane is its
/// own noise; the master-bias noise it inherits is masterBias.variance x DKBIASF^2 (metadata DKBIASF =
/// mean(1/darkTime) of the inputs), which runIsr combines with the science exposure's own bias term
/// (they cancel when the dark times match).
Exposure makeMasterDark(const std::vector<RawExposure>& darks, const Detector& detector, const Exposure& masterBias,
                        const IsrCalibrations& partial, const IsrConfig& config, const MasterConfig& masterConfig);

/// Master flat of one band, normalised to median 1 over its unmasked pixels: each flat is bias- and
/// dark-subtracted (crosstalk, linearity as asked), divided by its own median, combined. All inputs must
/// share one band (InvalidInputError otherwise).
Exposure makeMasterFlat(const std::vector<RawExposure>& flats, const Detector& detector, const Exposure& bias,
                        const Exposure& dark, const IsrCalibrations& partial, const IsrConfig& config,
                        const MasterConfig& masterConfig);

namespace isr {

/// Combine processed exposures (e-, same bbox) into master = input / scale per pixel: start at the median,
/// clip |value - estimate| > clipSigma x sigma_i, re-estimate by the mean of the kept values, iterate.
/// sigma_i^2 = (readout_i + estimate x scale_i) / scale_i^2 (readout_i alone if that is <= 0) where readout_i = variance_i -
/// max(value_i, 0) is the input's non-Poisson variance (so an input hit by a cosmic ray does not inflate
/// its own tolerance). Pixels masked with `badBits` in an input are not used. The result's variance is
/// sum(sigma_i^2) / n^2 over the kept inputs. `clippedFraction` receives the fraction of usable values clipped.
/// With poissonSignal false (biases) the variance planes are taken as pure readout noise: sigma_i^2 =
/// variance_i / scale_i^2.
Exposure combineExposures(const std::vector<Exposure>& inputs, const std::vector<double>& scales, MaskPixel badBits,
                          const MasterConfig& config, double* clippedFraction = nullptr, bool poissonSignal = true);

}  // namespace isr
}  // namespace drp
