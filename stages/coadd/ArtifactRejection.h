// ArtifactRejection: the pure kernels of the coadd's artifact rejection (transients, asteroid trails,
// cosmic-ray residuals, satellite streaks present in a minority of epochs), in the spirit of Rubin's
// CompareWarpAssembleCoadd (own code). The streaming loop that calls them is CoaddAssembler.
//
// 1. PSF matching. Every epoch i (Gaussian-equivalent PSF sigma s_i) is convolved with a Gaussian of
//    sigma sqrt(s_t^2 - s_i^2) (psfMatchingSigma) to the worst seeing s_t of the inputs, so a static
//    source has (nearly) the same profile in every PSF-matched warp J_i and leaves no seeing residual.
//    Convolutions are edge-normalised (gaussianSmoothNormalized), so the patch border is not darkened.
// 2. A robust template T: per pixel the weighted mean of the J_i after removing, from the top, the few
//    largest values that are outliers (robustTemplateValue). Only the K = maxOutlierEpochs largest values
//    per pixel and the weighted sums are kept while streaming, so the state is O(K x patch), not
//    O(number of epochs): an artifact covering a pixel in at most K epochs cannot bias T.
// 3. Detection (findArtifacts) on each epoch's difference D_i = J_i - T, smoothed by a Gaussian G of
//    smoothingSigmaPx (the matched filter of point-like and linear artifacts):
//        seed pixels:     (G*D)(x) > detectionSigma * c * sqrt(V(x)) + referenceFluxFraction * max((G*T)(x), 0)
//        extended pixels: the same with extendSigma (hysteresis: the 8-connected extended region around a seed)
//    with V the predicted variance of G*D and c >= 1 a robust rescaling of the significance map (its
//    MAD-based sigma over the patch), which absorbs the noise correlations the prediction ignores. The
//    reference-flux tolerance absorbs the imperfect (Gaussian) PSF matching of the cores of bright stars.
//    Each region is grown by the growth radius; the epoch's pixels there are rejected (CLIPPED): removed
//    from the mean, or, where the smoothed template exceeds the smoothed excess / removeOverStaticRatio (an
//    artifact over a brighter static source, whose removal would change the coadd's PSF locally),
//    corrected to epoch - (J_i - T).
// 4. Cosmic-ray residuals (findSharpPixels): pixels sharper than any PSF in the raw epoch, directly or in
//    its residual against the mean of the other epochs.
// Known limit: artifacts on bright static sources are partly missed (the tolerance) or leave residuals of
// the PSF difference; see the disabled acceptance test in tests/stages/test_CoaddAssembly.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "core/Image.h"
#include "core/SpanSet.h"

namespace drp {

/// Artifact-rejection parameters. Plain value; compare with ==; check with validate().
struct ArtifactRejectionConfig {
    /// Seed threshold of the smoothed PSF-matched difference. Unit: sigma. Bounds: > 0. Default 5.
    double detectionSigma = 5.0;
    /// Cosmic-ray residuals (findSharpPixels): excess of a pixel over the mean of its 4 neighbours, in
    /// sigma. Unit: sigma. Bounds: > 0. Default 6.
    double sharpSigma = 6.0;
    /// An isolated sharp pixel has an excess above this fraction of its value (a PSF-convolved source: < 0.4
    /// for PSF sigma >= 1 px). Bounds: (0, 1). Default 0.7.
    double sharpContrast = 0.7;
    /// A sharp pixel on a static source: its excess in the residual against the other epochs is above
    /// sharpContrast of that residual, and its excess in the epoch above this fraction of its value.
    /// Bounds: (0, 1). Default 0.45.
    double sharpStaticContrast = 0.45;
    /// Inside a rejected region, an epoch's pixel is removed where its smoothed excess exceeds this times
    /// the smoothed template, and otherwise (a bright static source under the artifact) corrected by
    /// subtracting the PSF-matched excess J_i - T. Removing it there would bias the source by the PSF
    /// difference between this epoch and the others. Bounds: > 0. Default 1.
    double removeOverStaticRatio = 1.0;
    /// Hysteresis threshold: a rejected region extends over the connected pixels above it. Unit: sigma.
    /// Bounds: (0, detectionSigma]. Default 2.5.
    double extendSigma = 2.5;
    /// Tolerance added to both thresholds, as a fraction of the smoothed template flux (imperfect PSF
    /// matching of bright static sources). Bounds: [0, 1]. Default 0.1.
    double referenceFluxFraction = 0.1;
    /// Gaussian sigma of the detection filter. Unit: pixels. 0 = the common (worst) PSF sigma.
    /// Bounds: 0 or [0.3, 20].
    double smoothingSigmaPx = 0.0;
    /// Template: the largest PSF-matched value of a pixel is dropped while it exceeds the mean of the rest by
    /// this many of its own noise sigmas (plus templateFluxFraction of that mean). Unit: sigma. Bounds: > 0.
    /// Default 4.
    double templateClipSigma = 4.0;
    /// Template: tolerance of that test as a fraction of the mean of the rest (PSF-matching residuals of
    /// bright static sources must not be dropped). Bounds: [0, 10]. Default 0.5.
    double templateFluxFraction = 0.5;
    /// Scale of the PSF-matching Gaussian: sigma_k = scale * sqrt(s_t^2 - s_i^2). 1 matches the second
    /// moments exactly; PSFs with wings (Moffat-like) match their cores better with a smaller scale.
    /// Bounds: (0, 1]. Default 1.
    double matchingKernelScale = 1.0;
    /// Template: at most this many values per pixel can be dropped (the K of the per-pixel top-K state;
    /// memory grows by 6 bytes per pixel per unit). Bounds: [1, 8]. Default 3.
    int maxOutlierEpochs = 3;
    /// Growth of a rejected region. Unit: pixels. 0 = ceil(common PSF sigma). Bounds: [0, 100].
    int growRadiusPx = 0;
    /// Rejection needs at least this many inputs (with fewer, nothing is rejected). Bounds: >= 3. Default 3.
    int minInputs = 3;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const ArtifactRejectionConfig&, const ArtifactRejectionConfig&) = default;
};

/// What findArtifacts found in one epoch.
struct ArtifactSearchResult {
    std::vector<SpanSet> artifacts;  ///< grown artifact regions, clipped to the image (may overlap)
    int candidateRegions = 0;        ///< connected extended regions examined
    double noiseRescale = 1.0;       ///< the robust rescaling c of the significance map
};

/// Find the artifacts of one epoch. `smoothedDiff` = G*(J_i - T), `smoothedDiffVariance` its predicted
/// variance (0 marks pixels that are not comparable), `smoothedTemplate` = G*T; all share one bbox
/// (LogicError otherwise). Seeds use `seedSigma`, extension extendSigma. Regions are grown by
/// `growRadiusPx` (>= 0).
ArtifactSearchResult findArtifacts(const ImageF& smoothedDiff, const ImageF& smoothedDiffVariance,
                                   const ImageF& smoothedTemplate, double seedSigma, int growRadiusPx,
                                   const ArtifactRejectionConfig& config);

/// Pixels sharper than any PSF in one raw epoch (cosmic-ray residuals, hot pixels). `image` is the epoch,
/// `residual` the epoch minus the mean of the other epochs (no PSF matching), `variance` the epoch's
/// variance; e(x) = value - mean of the 4 neighbours. A pixel is sharp when e_image > sharpSigma *
/// sqrt(1.25 variance) and either e_image > sharpContrast * image (isolated) or e_residual > the same
/// threshold, e_residual > sharpContrast * residual and e_image > sharpStaticContrast * image (on a static
/// source). `valid` (empty = all) marks usable pixels. Returned grown by 1 pixel.
SpanSet findSharpPixels(const ImageF& image, const ImageF& residual, const ImageF& variance, const ImageF& valid,
                        const ArtifactRejectionConfig& config);

/// Sigma of the Gaussian that takes a Gaussian PSF of `fromSigmaPx` to `toSigmaPx` (0 if from >= to).
double psfMatchingSigma(double fromSigmaPx, double toSigmaPx);

/// Sum of the squares of the 2-d (separable, normalised, truncated at ceil(3.5 sigma)) Gaussian kernel of
/// `sigmaPx` as gaussianSmooth uses it; 1 for sigma == 0. The variance factor of white noise smoothed by it.
double gaussianKernelSquaredSum(double sigmaPx);

/// Template value of one pixel from its weighted sums `sumWJ`, `sumW` over `n` epochs and its `k` largest
/// values `top[0..k)` (descending) with weights `topW` and noise sigmas `topSigma`: the top values are
/// dropped while top > mean(rest) + clipSigma * topSigma + fluxFraction * |mean(rest)|, keeping at least
/// ceil(n / 2) values. Returns the mean of the kept values.
double robustTemplateValue(double sumWJ, double sumW, int n, const float* top, const double* topW,
                           const double* topSigma, int k, double clipSigma, double fluxFraction);

/// Separable convolution with a normalised Gaussian of `sigmaPx` truncated at ceil(3.5 sigma), zero
/// outside the image; with `squaredKernel` the kernel is the element-wise square of that Gaussian (for
/// propagating a variance image). `out` gets the input's bbox.
void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel = false);

/// As gaussianSmooth, but edge-normalised: near the border each output is divided by the kernel weight
/// inside the image (squared, with `squaredKernel`, so a variance stays the variance of the normalised
/// mean). sigma == 0 copies.
void gaussianSmoothNormalized(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel = false);

}  // namespace drp
