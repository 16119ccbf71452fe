// MeasurementConfig: the configuration of single-frame source measurement (SingleFrameMeasurement and
// its plugins). One plain struct; every field has its default, bounds, unit and a one-line doc;
// validate() throws ConfigError naming the first bad field; == compares every field.
//
// Plugin names (MeasurementConfig::plugins, run in the order given; the column prefix is the name):
//   "centroid"     Gaussian-weighted centroid (SDSS-like start) -> x, y, xErr, yErr, x_y_Cov, centroid_flag*
//   "pixelFlags"   mask-plane flags over the footprint and at the centre -> pixelFlags_*
//   "shape"        adaptive second moments of the source and of the PSF -> ixx, iyy, ixy, ixxPSF, ..., shape_flag*
//   "psfFlux"      PSF-model amplitude -> psfFlux, psfFluxErr, psfChi2, psfNdata, psfFlux_flag*, apCorr
//   "apFlux"       circular apertures -> apFlux_<r>, apFlux_<r>Err, apFlux_<r>_flag*
//   "kronFlux"     Kron (first radial moment) aperture -> kronFlux, kronFluxErr, kronRadius, kronFlux_flag*
//   "sky"          local background in an annulus -> sky, skyErr, sky_flag*
//   "extendedness" point source vs extended from psfFlux and a reference aperture -> extendedness, extendedness_flag
//   "coord"        sky position from the Wcs -> ra, dec, coord_raErr, coord_decErr, coord_ra_dec_Cov, coord_flag
// Dependencies: every plugin uses the centroid the "centroid" plugin found (the peak position without it);
// "kronFlux" uses the "shape" moments when present (a PSF-sized circle otherwise); "extendedness" needs
// "psfFlux" and "apFlux" earlier in the list.
#pragma once

#include <string>
#include <vector>

namespace drp {

struct MeasurementConfig {
    /// Plugins to run, in order (names above; each at most once). Default: all of them.
    std::vector<std::string> plugins = {"centroid", "pixelFlags", "shape",        "psfFlux", "apFlux",
                                        "kronFlux", "sky",        "extendedness", "coord"};
    /// Pixels with any of these mask planes (or a non-finite value, or a non-finite or negative variance)
    /// are unusable: no plugin uses them. Planes missing from the exposure's mask are ignored.
    /// Default {"BAD", "SAT", "NO_DATA"}.
    std::vector<std::string> badMaskPlanes = {"BAD", "SAT", "NO_DATA"};
    /// Unit of the image pixels (instrumental flux per pixel), written as the unit of every flux column.
    /// Must not be empty. Default "electron".
    std::string fluxUnit = "electron";

    // ---- centroid ----
    /// Sigma (pixels) of the circular Gaussian weight of the centroid; 0 = the PSF's determinant radius at
    /// the peak (defaultPsfSigma without a PSF). Bounds: 0 or [0.3, 50].
    double centroidWeightSigma = 0.0;
    /// Maximum iterations of the weighted first-moment centroid. Bounds: [1, 1000].
    int centroidMaxIter = 30;
    /// Iteration stops when the centroid moves by less than this (pixels). Bounds: (0, 0.1].
    double centroidTolerance = 1e-5;
    /// A centroid farther than this from the peak (pixels) is replaced by the peak (centroid_flag_resetToPeak).
    /// Bounds: [0.5, 20].
    double centroidMaxShift = 2.0;
    /// PSF sigma (pixels) assumed for window sizes when the exposure has no PSF. Bounds: [0.3, 50].
    double defaultPsfSigma = 2.0;

    // ---- adaptive moments ----
    /// Maximum iterations of the adaptive-moment weight. Bounds: [1, 10000].
    int shapeMaxIter = 100;
    /// Convergence: relative change of every moment (in units of the weight's trace) below this.
    /// Bounds: (0, 0.01].
    double shapeTolerance = 1e-5;
    /// A source not converged after this many iterations continues with damped steps
    /// (AdaptiveMomentsControl::dampOscillation) and stops once every moment is within shapeNoiseTolerance
    /// of its standard error of the fixed point extrapolated from the last two steps
    /// (AdaptiveMomentsControl::extrapolateConvergence; shape_flag_noiseStop), if that is before shapeTolerance.
    /// Bounds: [1, 10000].
    int shapeNoiseCheckIter = 20;
    /// That fraction of the moments' standard error (computeAdaptiveMomentsCovariance at the iterate).
    /// Bounds: [0, 0.1]; 0 turns the noise stop off (damping still applies).
    double shapeNoiseTolerance = 0.01;
    /// Half-width of the moment window in weight sigmas (along each axis). Bounds: [3, 10].
    double shapeWindowSigmas = 5.0;
    /// Largest weight sigma (pixels, sqrt of the largest eigenvalue) before the iteration gives up
    /// (shape_flag_maxSize). Bounds: [1, 1000].
    double shapeMaxSigma = 100.0;
    /// Smallest weight sigma (pixels) of the adaptive moments (AdaptiveMomentsControl::minWeightVariance, its
    /// square): a star sharper than about a pixel is measured with the weight held there and reports the
    /// Gaussian-equivalent covariance, instead of collapsing along an axis at pixel-centred phases (FWHM <~ 2
    /// pixels); larger sources are unaffected. ixxPSF etc. are measured the same way. 0 turns the floor off.
    /// Bounds: [0, 5]. Default 1.1.
    double shapeMinWeightSigma = 1.1;

    // ---- PSF flux ----
    /// Weight the PSF fit by the inverse variance plane (optimal; unbiased when the variance plane does not
    /// depend on the noise realisation). false = unweighted fit (the meas_base choice). Default true.
    bool psfFluxUseVarianceWeights = true;

    // ---- aperture fluxes ----
    /// Aperture radii in pixels, strictly increasing. Column apFlux_<r>: r printed with '_' for the decimal
    /// point (4.5 -> apFlux_4_5). Bounds: each in (0, 500], at most 20, names distinct.
    std::vector<double> apertureRadii = {3, 4.5, 6, 9, 12, 17, 25, 35};

    // ---- Kron flux ----
    /// Kron aperture = kronRadiusFactor * R_kron (SExtractor's PHOT_AUTOPARAMS k). Bounds: [1, 10].
    double kronRadiusFactor = 2.5;
    /// Minimum Kron aperture radius in units of the ellipse sigma det(M)^(1/4) of the adaptive moments M
    /// (SExtractor's PHOT_AUTOPARAMS R_min). Bounds: [0, 20].
    double kronMinRadiusSigmas = 3.5;
    /// R_kron = first radial moment of the light inside kronMomentSigmas ellipse sigmas. Bounds: [2, 20].
    double kronMomentSigmas = 6.0;

    // ---- local sky ----
    /// Inner and outer radius (pixels) of the local-sky annulus. Bounds: 0 <= inner < outer <= 500.
    double skyInnerRadius = 20.0;
    double skyOuterRadius = 30.0;
    /// Also skip annulus pixels with these planes (other sources). Default {"DETECTED"}.
    std::vector<std::string> skyExcludeMaskPlanes = {"DETECTED"};
    /// Fewest usable annulus pixels for a sky value (sky_flag_noGoodPixels otherwise). Bounds: [3, 1e6].
    int skyMinPixels = 20;
    /// Sigma-clipping of the annulus pixels: threshold (sigmas) and iterations. Bounds: (1, 20], [0, 100].
    double skyClipSigma = 3.0;
    int skyClipIter = 3;

    // ---- extendedness ----
    /// Radius (pixels) of the reference aperture; must be one of apertureRadii. Default 9.
    double extendednessApertureRadius = 9.0;
    /// A source is point-like (0) unless psfFlux < threshold * apFlux_ref / f_psf(ref) by more than
    /// extendednessNSigma standard errors (f_psf = the PSF's enclosed fraction). Bounds: (0, 1.5].
    double extendednessThreshold = 0.985;
    /// Significance (standard errors) needed to call a source extended. Bounds: [0, 100].
    double extendednessNSigma = 2.0;

    /// Throws ConfigError naming the first field out of bounds or inconsistent.
    void validate() const;
    friend bool operator==(const MeasurementConfig&, const MeasurementConfig&) = default;
};

/// The column stem of an aperture radius: 3 -> "3", 4.5 -> "4_5", 12.25 -> "12_25".
std::string apertureName(double radius);

}  // namespace drp
