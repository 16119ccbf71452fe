// IsrConfig: what instrument signature removal (runIsr) does to one raw detector readout.
//
// The steps, in the order runIsr applies them (the reverse of how the camera applied the signature):
//   overscan (per raw row, serial overscan) -> saturation mask (raw ADU) -> gain (ADU -> e-) ->
//   master bias -> crosstalk -> linearity -> variance -> dark -> flat -> defects -> interpolation.
// Every field has a default, bounds, a unit and a one-line doc; validate() checks the bounds.
#pragma once

#include <string>
#include <vector>

namespace drp {

/// How the serial overscan gives the bias level of each raw row.
enum class OverscanMethod {
    MeanPerRow,    ///< sigma-clipped mean of each row's overscan pixels (lowest noise; follows row noise)
    MedianPerRow,  ///< median of each row's overscan pixels (robust; noise x ~1.25)
    Polynomial,    ///< least-squares polynomial in the row index fitted to the per-row clipped means
};
/// "MEAN_PER_ROW", "MEDIAN_PER_ROW", "POLYNOMIAL".
std::string overscanMethodName(OverscanMethod method);
/// Inverse of overscanMethodName (case-sensitive); throws ConfigError for an unknown name.
OverscanMethod overscanMethodFromName(const std::string& name);

/// How masked pixels are filled.
enum class InterpolationMethod {
    RowLinear,        ///< linear interpolation along the row between the nearest good pixels
    GaussianAverage,  ///< Gaussian-weighted mean of the good pixels around (falls back to RowLinear)
};
/// "ROW_LINEAR", "GAUSSIAN_AVERAGE".
std::string interpolationMethodName(InterpolationMethod method);
/// Inverse of interpolationMethodName; throws ConfigError for an unknown name.
InterpolationMethod interpolationMethodFromName(const std::string& name);

struct IsrConfig {
    // ---- overscan
    /// Subtract the serial overscan level of each raw row. Without it the master bias must carry the pedestal.
    bool doOverscan = true;
    /// Estimator of the overscan level.
    OverscanMethod overscanMethod = OverscanMethod::MeanPerRow;
    /// Polynomial order (Polynomial method only). Bounds: [0, 20].
    int overscanOrder = 1;
    /// Overscan columns skipped next to the data (charge-transfer trails). Unit: pixel. Bounds: >= 0.
    int overscanSkipLeading = 2;
    /// Overscan columns skipped at the far end of the overscan. Unit: pixel. Bounds: >= 0.
    int overscanSkipTrailing = 0;
    /// Per-row clip of overscan pixels (MeanPerRow, Polynomial): reject pixels further than this from the
    /// row median, in units of the amplifier read noise. Unit: sigma. Bounds: > 0.
    double overscanClipSigma = 4.0;

    // ---- signature removal steps
    /// Subtract the master bias (IsrCalibrations::bias, e-).
    bool doBias = true;
    /// Remove inter-amplifier crosstalk (IsrCalibrations::crosstalk, ADU/ADU).
    bool doCrosstalk = true;
    /// Invert the quadratic non-linearity (AmplifierCalib::nonlinearityCoeff).
    bool doLinearity = true;
    /// Subtract master dark (e-/s) x the exposure's dark time.
    bool doDark = true;
    /// Divide by the normalised master flat of the exposure's band.
    bool doFlat = true;
    /// Flat values below this are unusable: the pixel is masked BAD (and interpolated). Bounds: [0, 1).
    double flatMinValue = 0.05;
    /// Fringe subtraction (not implemented: must stay false).
    bool doFringe = false;

    // ---- masks
    /// Mask BAD the boxes of IsrCalibrations::defects.
    bool doDefects = true;
    /// Mask SAT the data pixels whose raw value is >= the amplifier's saturation level (bias included).
    bool doSaturation = true;
    /// Grow the SAT mask by this many pixels in every direction (square). Unit: pixel. Bounds: [0, 100].
    int saturationGrow = 1;

    // ---- interpolation
    /// Replace pixels with any of interpolateMaskPlanes set by an interpolated value and flag them INTRP.
    bool doInterpolate = true;
    /// Planes whose pixels are interpolated over (each must exist in the default mask planes).
    std::vector<std::string> interpolateMaskPlanes{"BAD", "SAT", "CR"};
    /// Interpolation method.
    InterpolationMethod interpolationMethod = InterpolationMethod::RowLinear;
    /// Gaussian sigma of GaussianAverage. Unit: pixel. Bounds: (0, 20].
    double interpolationSigma = 1.5;
    /// Widest run of masked pixels along a row that is interpolated; wider runs (saturated cores) keep
    /// their values and are not flagged INTRP. Unit: pixel. Bounds: >= 1.
    int interpolationMaxWidth = 1000;

    // ---- variance
    /// Add the variance of the master bias, dark (x dark time^2) and flat (x image^2) to the variance plane.
    bool doCalibrationVariance = true;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const IsrConfig&, const IsrConfig&) = default;
};

/// How master calibrations combine their inputs pixel by pixel.
struct MasterConfig {
    /// Clip inputs further than this many expected sigmas from the (median, then clipped mean) estimate.
    /// The sigmas are the inputs' known noise, so a high threshold suffices for cosmic rays; at 3 the clip
    /// also drops legitimate Gaussian tails and biases the few-input mean (chi-square +3% with 5 inputs).
    /// Unit: sigma. Bounds: > 0.
    double clipSigma = 4.0;
    /// Clipping iterations. Bounds: [1, 100].
    int maxIterations = 3;
    /// Fewest input exposures accepted (fewer: InvalidInputError). Bounds: >= 1.
    int minInputs = 1;
    /// A pixel left with fewer unclipped inputs than this is masked BAD|NO_DATA. Bounds: >= 1.
    int minKept = 1;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const MasterConfig&, const MasterConfig&) = default;
};

/// How findDefects finds bad pixels in master calibrations.
struct DefectConfig {
    /// A pixel whose flat response is below this fraction of the local median is bad. Bounds: (0, 1).
    double flatLowRatio = 0.7;
    /// A pixel whose flat response is above this multiple of the local median is bad (0 disables).
    /// Bounds: 0 or > 1.
    double flatHighRatio = 1.3;
    /// Side of the square blocks whose medians (bilinearly interpolated) give the local flat level.
    /// Unit: pixel. Bounds: [4, 4096].
    int localBoxSize = 32;
    /// A pixel whose dark rate exceeds the median by more than this many (robust, MAD) sigmas is hot.
    /// Unit: sigma. Bounds: > 0.
    double hotSigma = 5.0;
    /// ... and by at least this much. Unit: e-/s. Bounds: >= 0.
    double hotMinExcessEPerS = 0.0;
    /// Bad pixels of one column separated by at most this many good pixels are merged into one box.
    /// Unit: pixel. Bounds: [0, 100].
    int columnGap = 2;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const DefectConfig&, const DefectConfig&) = default;
};

}  // namespace drp
