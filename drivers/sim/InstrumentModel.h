// The instrument model of the simulator: how one detector turns incident photo-electrons into raw
// integer-ADU amplifier images, with the signature that instrument signature removal (ISR) must undo.
//
// DetectorInstrument holds the fixed truth of one detector (flat-field response per band, dark-current
// map with hot pixels, bad columns, per-amplifier bias levels and fixed bias structure, non-linearity,
// crosstalk, full well), all drawn deterministically from (InstrumentConfig::seed, detector id).
// simulate() applies, in order (as light and charge meet them; ip_isr undoes them in reverse):
//
//   1. incident e- x flat(band)                      (QE/vignetting/pixel response; bad columns)
//   2. Poisson(signal + darkRate x darkTime)         (hot pixels included)
//   3. + cosmic rays                                  (Poisson count: rate x darkTime x area)
//   4. saturation at full well, bleeding along columns (charge conserved up and down the column)
//   5. non-linearity: measured = x + c x^2           (x in e-)
//   6. / gain                                         (e- -> ADU)
//   7. + crosstalk between amplifiers                 (victim += c[victim][source] x source ADU,
//                                                      same raw readout position)
//   8. + bias level + per-exposure drift + row offsets (data AND prescan/overscan)
//      + fixed row and column bias pattern + read noise
//   9. round to integer ADU and clip to the 16-bit ADC range [0, 65535]
//
// Randomness: a counter-based scheme — every row (or cosmic-ray list, or amplifier readout) gets its own
// xoshiro256++ stream keyed by (config.seed, detector id, exposureSeed, purpose, index), so a result
// never depends on threads, MPI ranks or the order detectors are simulated in.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "core/Box.h"
#include "core/Camera.h"
#include "core/Image.h"
#include "core/RawExposure.h"
#include "core/SpanSet.h"

namespace drp {

/// Parameters of the instrument model. Gain and read noise are not here: they are the Amplifier's.
struct InstrumentConfig {
    // ---- bias (all ADU)
    double biasLevelAdu = 1000.0;       ///< mean bias (pedestal) level, ADU; (0, 30000]
    double biasLevelSpreadAdu = 50.0;   ///< half-width of the uniform per-amplifier spread of the bias level, ADU; >= 0
    double biasDriftAdu = 1.0;          ///< rms per-exposure, per-amplifier shift of the bias level, ADU; >= 0
    double biasRowNoiseAdu = 1.0;       ///< rms per-exposure random offset of each raw row (data, prescan and overscan alike), ADU; >= 0
    double biasRowPatternAdu = 0.5;     ///< rms of the fixed (per detector and amplifier) offset of each raw row, ADU; >= 0
    double biasColumnPatternAdu = 0.5;  ///< rms of the fixed offset of each raw data column (also in the parallel overscan, not in prescan/serial overscan), ADU; >= 0

    // ---- dark current and defects
    double darkCurrentEPerS = 0.02;     ///< dark current of normal pixels, e-/s/pixel; >= 0
    double hotPixelFraction = 1e-4;     ///< expected fraction of hot pixels; [0, 0.1]
    double hotPixelMinFactor = 10.0;    ///< hot-pixel dark current, lowest multiple of darkCurrentEPerS (log-uniform); >= 1
    double hotPixelMaxFactor = 1000.0;  ///< hot-pixel dark current, highest multiple of darkCurrentEPerS; >= hotPixelMinFactor
    int badColumnsPerDetector = 2;      ///< number of bad columns per detector (exactly); [0, detector width]
    double badColumnDeadFraction = 0.5; ///< probability that a bad column is dead (response 0) rather than low (response 0.1-0.6); [0, 1]

    // ---- flat field (dimensionless response; mean ~1 on the optical axis)
    double vignettingAmplitude = 0.1;   ///< fraction of the light lost at the focal-plane edge radius (loss grows as r^2); [0, 1)
    double pixelResponseSigma = 0.01;   ///< rms pixel-to-pixel response variation (PRNU); [0, 0.2]
    double ampPatternAmplitude = 0.02;  ///< largest deviation of the smooth linear response gradient across each amplifier (random direction per amplifier); [0, 0.5)
    double bandGradientAmplitude = 0.01;     ///< scale of the band-dependent linear gradient across the detector (random direction per band; deviation <= 0.71 x this at the corners); [0, 0.5)
    double bandPixelResponseFraction = 0.3;  ///< fraction (in amplitude) of the pixel-response pattern that differs between bands; [0, 1]

    // ---- electronics and charge
    double nonlinearityCoeff = -1e-7;   ///< c of measured = x + c x^2 (x in e-), 1/e-; -1e-7 gives -1% at 100000 e-; |c| x fullWell <= 0.25
    double nonlinearitySpread = 0.1;    ///< fractional half-width of the uniform per-amplifier spread of c; [0, 1)
    double crosstalkCoeff = 1e-4;       ///< crosstalk between neighbouring amplifiers of one row, ADU/ADU; [0, 0.01]
    double crosstalkFalloff = 0.1;      ///< factor per further step of amplifier separation (a row step counts 2); [0, 1]
    double crosstalkSpread = 0.2;       ///< fractional half-width of the uniform per-pair spread of the coefficients; [0, 1)
    double fullWellElectrons = 100000.0;  ///< full-well capacity, e-; excess charge bleeds along the column; > 0

    // ---- cosmic rays
    double cosmicRayRatePerCm2PerS = 0.025;  ///< cosmic-ray hits per cm^2 per second of dark time (1.5 per cm^2 per minute); >= 0
    int cosmicRayMinLengthPx = 1;            ///< shortest track, pixels along the path; >= 1
    int cosmicRayMaxLengthPx = 20;           ///< longest track, pixels; >= cosmicRayMinLengthPx
    double cosmicRayMinElectrons = 1000.0;   ///< smallest deposit per track pixel, e- (log-uniform); > 0
    double cosmicRayMaxElectrons = 5000.0;   ///< largest deposit per track pixel, e-; >= cosmicRayMinElectrons
    double cosmicRayDiffusion = 0.1;         ///< fraction of each deposit that diffuses into the 4 edge neighbours; [0, 0.8]

    // ---- calibration exposures
    double flatIlluminationElectrons = 20000.0;  ///< flat-lamp level, incident e-/pixel (before the flat response); > 0
    std::map<std::string, double> flatIlluminationByBand;  ///< per-band override of flatIlluminationElectrons, e-/pixel; > 0
    double darkExposureTimeS = 30.0;   ///< dark time of a dark exposure, s; > 0
    double flatExposureTimeS = 5.0;    ///< exposure (and dark) time of a flat, s; > 0

    // ---- sampling
    double poissonGaussianThreshold = 30.0;  ///< mean (e-) at and above which Poisson draws use a rounded Gaussian; [10, 1000]
    std::uint64_t seed = 1;                  ///< seed of the fixed instrument truth and (with exposureSeed) of every exposure

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const InstrumentConfig&, const InstrumentConfig&) = default;
};

enum class ExposureKind { Science, Bias, Dark, Flat };
/// "science", "bias", "dark", "flat".
std::string exposureKindName(ExposureKind kind);
/// The LSST IMGTYPE header value: "OBJECT", "BIAS", "DARK", "FLAT".
std::string exposureKindImgType(ExposureKind kind);

/// One cosmic-ray track as deposited (assembled detector frame).
struct CosmicRayRecord {
    SpanSet pixels;          ///< every pixel that received charge (track and diffusion halo)
    double electrons = 0.0;  ///< total charge deposited on the detector, e-
    Point2D start;           ///< first track pixel (assembled frame)
    int lengthPx = 0;        ///< number of distinct pixels along the track (halo excluded)
};

/// Truth of one simulated exposure, for truth tables and tests.
struct SimulationRecord {
    bool keepElectrons = false;  ///< input: if true, simulate() also fills `electrons`
    std::vector<CosmicRayRecord> cosmicRays;
    std::vector<Box2I> saturated;      ///< runs of full-well pixels, one box per column run (bleed trails included), assembled frame
    double bleedElectronsLost = 0.0;   ///< charge that bled off the ends of columns, e-
    std::vector<double> biasDriftAdu;  ///< per amplifier: this exposure's shift of the bias level, ADU
    std::vector<std::vector<float>> rowOffsetAdu;  ///< per amplifier, per raw row: this exposure's random row offset, ADU
    ImageF electrons;  ///< with keepElectrons: collected e- per pixel after saturation/bleed, before non-linearity (assembled frame)
};

/// Pure kernels (exposed for tests and for ISR truth).
/// measured = x + c x^2 (x, measured in e-).
inline double applyNonlinearity(double electrons, double coeff) { return electrons + coeff * electrons * electrons; }
/// The inverse of applyNonlinearity on its monotonic branch (x < -1/(2c) for c < 0).
double invertNonlinearity(double measured, double coeff);
/// Clip every pixel of `electrons` at `fullWell`; the excess of each pixel is split between the two
/// directions along its column (y) and fills the nearest pixels below full well, going outwards; charge
/// that reaches the end of a column is lost (added to *lostElectrons if given). Returns the runs of
/// pixels at full well afterwards (one box per column run, in the image's parent frame).
std::vector<Box2I> bleedSaturatedCharge(const ImageF& electrons, double fullWell, double* lostElectrons = nullptr);

/// The fixed instrument truth of one detector. Deterministic from (config.seed, detector id); build
/// once per detector. Thread-safe: simulate() and flat() may run concurrently. The flats of the two most
/// recently used bands are cached (building one for a 4072 x 4000 detector takes ~0.5 s; each holds
/// 65 MB), so simulate exposures band by band. Copies share the cache.
class DetectorInstrument {
public:
    /// @param focalPlaneRadiusMm radius (mm) at which vignetting removes config.vignettingAmplitude of the
    ///        light; <= 0 disables vignetting. Throws ConfigError if the config is invalid or the detector
    ///        has no amplifiers.
    DetectorInstrument(const Detector& detector, const InstrumentConfig& config, double focalPlaneRadiusMm);

    const Detector& detector() const { return detector_; }
    const InstrumentConfig& config() const { return config_; }
    double focalPlaneRadiusMm() const { return focalPlaneRadiusMm_; }

    /// True relative response (assembled frame): vignetting x amplifier gradients x band gradient x pixel
    /// response x bad columns. Mean ~1 for a detector on the optical axis.
    ImageF flat(const std::string& band) const;
    /// Dark current, e-/s per pixel (hot pixels included), assembled frame.
    const ImageF& darkRate() const { return darkRate_; }
    /// Hot pixels (assembled frame), in raster order.
    const std::vector<Point2I>& hotPixels() const { return hotPixels_; }
    /// Bad columns (dead or low response), one box of width 1 each, assembled frame.
    const std::vector<Box2I>& defects() const { return defects_; }
    /// [victim][source] crosstalk coefficients, ADU/ADU, amplifiers in Detector::amplifiers() order: zero
    /// diagonal; crosstalkCoeff x crosstalkFalloff^(steps - 1) x (1 +- crosstalkSpread), where steps counts
    /// amplifier columns plus twice amplifier rows between the two; exactly zero where the nominal value
    /// (before the spread) is below 1e-3 x crosstalkCoeff.
    Eigen::MatrixXd crosstalk() const { return crosstalk_; }

    /// Mean bias level of an amplifier (before the per-exposure drift), ADU.
    double biasLevel(int amp) const;
    /// e-/ADU (the Amplifier's).
    double gain(int amp) const;
    /// Read noise, e- rms (the Amplifier's).
    double readNoise(int amp) const;
    /// Non-linearity coefficient c (measured = x + c x^2, x in e-), 1/e-.
    double nonlinearity(int amp) const;
    /// Raw ADU (bias included) at or above which a data pixel must be treated as saturated: 5 sigma of the
    /// readout noise below the level of a full-well pixel, or 65535 if the ADC clips first.
    double saturationAdu(int amp) const;
    /// Fixed per-raw-row bias pattern of an amplifier (raw rows from 0), ADU.
    const std::vector<float>& biasRowPattern(int amp) const;
    /// Fixed per-raw-column bias pattern (raw columns from 0; zero outside the data columns), ADU.
    const std::vector<float>& biasColumnPattern(int amp) const;
    /// The noiseless bias of one amplifier for a zero drift: biasLevel + row pattern + column pattern
    /// (raw frame, covers Amplifier::rawBBox), ADU. The mean of many bias frames converges to it.
    ImageF fixedBias(int amp) const;

    /// Incident photo-electrons per pixel (assembled frame, before the flat: sky + objects) -> raw ADU per
    /// amplifier, with the effects listed at the top of this file.
    /// @param incidentElectrons covers Detector::bbox(); may be empty for Bias and Dark (ignored there).
    ///        Science: sky + objects; Flat: the flat illumination. Negative or NaN values count as 0.
    /// @param exposureTimeS shutter-open time (recorded in visitInfo).
    /// @param darkTimeS     integration time of dark current and cosmic rays (Bias: forced to 0).
    /// @param band          selects flat(band).
    /// @param exposureSeed  seed of this exposure's noise; with config.seed and the detector id the only source
    ///                      of randomness.
    /// @param record        if non-null, receives the truth (cosmic rays, saturation, bias offsets...).
    /// Throws InvalidInputError if the incident image does not cover the detector or a time is negative.
    RawExposure simulate(const ImageF& incidentElectrons, double exposureTimeS, double darkTimeS, const std::string& band,
                         ExposureKind kind, std::uint64_t exposureSeed, SimulationRecord* record = nullptr) const;

private:
    struct FlatCache;
    ImageF buildFlat(const std::string& band) const;
    std::shared_ptr<const ImageF> cachedFlat(const std::string& band) const;

    Detector detector_;
    InstrumentConfig config_;
    double focalPlaneRadiusMm_;
    ImageF darkRate_;
    std::vector<Point2I> hotPixels_;
    std::vector<Box2I> defects_;
    std::vector<float> defectResponse_;  // per defect
    Eigen::MatrixXd crosstalk_;
    std::vector<double> biasLevel_, nonlinearity_, ampGradX_, ampGradY_;
    std::vector<std::vector<float>> rowPattern_, columnPattern_;
    std::shared_ptr<FlatCache> flatCache_;
};

/// The incident photo-electrons of a calibration exposure: all zero for Bias and Dark; for Flat a uniform
/// lamp level (config.flatIlluminationByBand[band], else config.flatIlluminationElectrons). Covers
/// detector.bbox(). Throws LogicError for Science.
ImageF makeCalibrationIncident(const Detector& detector, ExposureKind kind, const std::string& band,
                               const InstrumentConfig& config);

/// Exposure and dark time of a calibration exposure, s: Bias 0/0; Dark darkExposureTimeS for both (the
/// shutter stays closed, but like LSST darks EXPTIME records the integration); Flat flatExposureTimeS for
/// both. Throws LogicError for Science.
struct CalibrationTiming {
    double exposureTimeS = 0.0;
    double darkTimeS = 0.0;
};
CalibrationTiming calibrationTiming(ExposureKind kind, const InstrumentConfig& config);

}  // namespace drp
