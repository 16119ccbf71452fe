// ArtifactRejection: the pure kernels of the coadd's artifact rejection (transients, asteroid trails,
// cosmic-ray residuals, satellite streaks present in a minority of epochs), in the spirit of Rubin's
// CompareWarpAssembleCoadd (own code): compare each epoch with a template, detect the differences as
// footprints, decide per footprint whether it is transient, and take the whole footprint out of that
// epoch. The streaming loop that calls these kernels is CoaddAssembler.
//
// 1. Template: a per-pixel PSF-size regression. A static source seen through epoch i's PSF (size s_i)
//    has, at a fixed pixel, a value that is a smooth function of s_i; the template of pixel x is the
//    weighted least-squares polynomial in v = (log2 s_i - centre) / halfWidth (in [-1, 1] over the inputs)
//    of degree <= psfRegressionDegree (PsfSizeFit). Its prediction for epoch j, P_j(x), is the static
//    scene seen through epoch j's own PSF, so R_j = I_j - P_j has no PSF-mismatch residual at bright
//    stars (a cubic in log s reproduces Moffat profiles of FWHM 2.4-5 px to < 1 sigma of a 3e5 star's
//    noise) and no PSF matching of the epochs is needed. The fit needs only the moments sum w v^k and the
//    sums sum w v^k I per pixel: O(patch) state whatever the number of epochs.
// 2. Detection (findArtifacts) on G * R_j, G a Gaussian matched filter, against its predicted noise
//    (the epoch's variance through G^2, times 1 - leverage, times an empirical excess-scatter factor for
//    pixels where the template does not describe the epochs to within their noise), rescaled by the
//    robust (MAD) width of the significance map: seeds above detectionSigma, extended (hysteresis) over
//    the 8-connected pixels above extendSigma. Near pixels of the epoch that are not comparable (its NO_DATA
//    edge, masked pixels) G * R and its variance are normalised by G's weight on comparable pixels, used
//    where that weight is >= 1/2: an artifact at a detector edge is found whole (issue 6: an asteroid there
//    kept 8.9 sigma when those pixels were skipped).
//    Footprints found in a first comparison are taken out of the template's sums (robust template).
// 3. Decision per footprint (isTransientFootprint): transient when, over at least spatialFraction of
//    its pixels, at most maxEpochFraction of the inputs have a footprint there when compared with the
//    robust template (an intrinsically variable source is flagged in many epochs and kept).
// 4. Cosmic-ray residuals (findSharpPixels): pixels sharper than any PSF in the raw epoch, directly or
//    in its residual against the template.
// 5. Exclusion: the whole footprint (grown) is taken out of the epoch by replacing its pixels with the
//    template evaluated at its PSF size, fitted without every rejected pixel of every epoch (so the epoch's
//    own pixel is out, and so are other epochs' artifacts at the same place: crossing streaks), once all the
//    epochs' decisions are known (CoaddAssembler::finish; independent of input order). The coadd's PSF and a
//    static source's flux are unchanged. The replacement's degree: per pixel, the lowest degree whose
//    prediction agrees with that of every higher degree, the agreement tested by z^2 = (p_e - p_d)^2 /
//    ((lev_e - lev_d) v) summed over the epoch's rejected pixels in a box of radius max(2, 2 sigma_PSF)
//    (a PSF-size residual is coherent over a source, noise is not): a cubic where a bright source needs it,
//    no noisy extrapolation of a cubic to an epoch at the end of the PSF-size range where it does not.
// Known limits: an epoch whose PSF size is isolated at an end of the range has a high leverage h in the
// template (maxLeverage caps only near-degenerate cases): its artifacts are seen with sqrt(1 - h) of their
// significance (the thresholds use the residual's variance (1 - h) v, so that significance is not lost
// twice). (1 - h) v assumes every epoch's variance is 1 / its weight; on bright sources, whose Poisson
// variance scales with each epoch's photoScale rather than its sky, it is only approximate, so the
// per-pixel residual is not searched (only its Gaussian-smoothed version, whose noise is inflated by the
// empirical scatter). A cosmic-ray clump on a bright star's core (Poisson noise of ~7000 counts) can thus
// stay below the 6-sigma sharp-pixel threshold.
#pragma once

#include <cstdint>
#include <vector>

#include "core/Image.h"
#include "core/SpanSet.h"

namespace drp {

/// Artifact-rejection parameters. Plain value; compare with ==; check with validate().
struct ArtifactRejectionConfig {
    /// Seed threshold of the smoothed residual against the template. Unit: sigma. Bounds: > 0. Default 6
    /// (a Gaussian-smoothed noise field of 240 x 240 pixels exceeds 5 sigma somewhere in ~2% of epochs).
    double detectionSigma = 6.0;
    /// Hysteresis threshold: a footprint extends over the connected pixels above it. Unit: sigma.
    /// Bounds: (0, detectionSigma]. Default 2.5.
    double extendSigma = 2.5;
    /// Cosmic-ray residuals (findSharpPixels): excess of a pixel over the mean of its 4 neighbours, in
    /// sigma. Unit: sigma. Bounds: > 0. Default 6.
    double sharpSigma = 6.0;
    /// An isolated sharp pixel has an excess above this fraction of its value (a PSF-convolved source: < 0.4
    /// for PSF sigma >= 1 px). Bounds: (0, 1). Default 0.7.
    double sharpContrast = 0.7;
    /// A sharp pixel on a static source: its excess in the residual against the template is significant
    /// (sharpSigma, in the residual's noise) and above sharpContrast of that residual, and its excess in the
    /// epoch above this fraction of its value. Bounds: [0, 1). Default 0 (no condition on the epoch's value:
    /// a cosmic ray on a bright star's core or flank has an excess well below half of the pixel's value, and
    /// a PSF-size residual of the template is too smooth to pass the residual's own contrast test).
    double sharpStaticContrast = 0.0;
    /// Gaussian sigma of the detection filter. Unit: pixels. 0 = the epoch's own PSF sigma (the matched
    /// filter of a point-like transient). Bounds: 0 or [0.3, 20].
    double smoothingSigmaPx = 0.0;
    /// Maximum degree of the per-pixel template polynomial in log PSF size (lower where fewer inputs
    /// cover a pixel: degree <= (n - 2) / 3; 0 = a weighted mean). Bounds: [0, 3]. Default 3.
    int psfRegressionDegree = 3;
    /// An input is compared with (and replaced by) the template of the highest degree in which its leverage
    /// w f^T M^-1 f is at most this: an input whose PSF size is far from all others would otherwise be
    /// fitted by itself and its artifacts hidden; a lower degree leaves PSF-size residuals at bright stars, so
    /// only near-degenerate cases are capped. Bounds: (0, 1). Default 0.97.
    double maxLeverage = 0.97;
    /// Empirical scatter: per pixel, the mean over epochs (largest dropped) of the squared significance
    /// of the smoothed residual, each clamped at this many sigma squared, inflates the noise where it
    /// exceeds 1. Unit: sigma. Bounds: > 0. Default 4.
    double scatterClipSigma = 4.0;
    /// Temporal threshold: a pixel of a footprint counts as transient when at most this fraction of the
    /// inputs covering it (and at least one) were flagged there in the first comparison. Bounds: (0, 1).
    /// Default 0.35.
    double maxEpochFraction = 0.35;
    /// Spatial threshold: a footprint is rejected when at least this fraction of its pixels count as
    /// transient. Bounds: (0, 1]. Default 0.5.
    double spatialFraction = 0.5;
    /// Growth of a rejected footprint. Unit: pixels. 0 = ceil(1.5 x the epoch's PSF sigma). Bounds: [0, 100].
    int growRadiusPx = 0;
    /// Rejection needs at least this many inputs (with fewer, nothing is rejected); a pixel is compared
    /// only where at least this many inputs enter its template. Bounds: >= 3. Default 3.
    int minInputs = 3;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const ArtifactRejectionConfig&, const ArtifactRejectionConfig&) = default;
};

/// Weighted least-squares polynomial (degree <= 3, power basis in v) of one pixel's values over epochs,
/// from its normal equations: moments m[k] = sum w v^k (k = 0 .. 2d) and b[k] = sum w v^k I (k = 0 .. d).
/// Orders whose Cholesky pivot is below 1e-4 of the diagonal (too few distinct v) are dropped.
class PsfSizeFit {
public:
    static constexpr int kMaxDegree = 3;
    /// Solve with degree <= maxDegree (clamped to [0, 3]). Returns false (degree() == -1) if m[0] <= 0.
    bool solve(const double* moments, const double* rhs, int maxDegree);
    int degree() const { return degree_; }
    /// The fitted value at v (requires a fit).
    double predict(double v) const;
    /// f(v)^T M^-1 f(v) with f = (1, v, .., v^d): the fit's variance at v per unit of w * variance; times
    /// an epoch's weight it is that epoch's leverage.
    double leverage(double v) const;
    const double* coefficients() const { return c_; }

private:
    int degree_ = -1;
    double L_[kMaxDegree + 1][kMaxDegree + 1]{};
    double c_[kMaxDegree + 1]{};
};

/// Power moments in u re-expressed in v = (u - centre) / halfWidth (halfWidth > 0):
/// out[k] = halfWidth^-k sum_{j <= k} C(k, j) (-centre)^(k - j) in[j], k = 0 .. n - 1 (n <= 7).
void shiftPowerMoments(const double* in, int n, double centre, double halfWidth, double* out);

/// shiftPowerMoments as a precomputed lower-triangular matrix, for one centre and halfWidth applied to many
/// pixels' moments.
class PowerMomentShift {
public:
    PowerMomentShift() = default;
    /// n <= 7 moments; halfWidth > 0 (LogicError otherwise).
    PowerMomentShift(int n, double centre, double halfWidth);
    /// out[k] = sum_{j <= k} T[k][j] in[j] for k < count (count <= n; -1: n).
    void apply(const double* in, double* out, int count = -1) const {
        const int c = count < 0 ? n_ : count;
        for (int k = 0; k < c; ++k) {
            double s = 0;
            for (int j = 0; j <= k; ++j) s += t_[k][j] * in[j];
            out[k] = s;
        }
    }

private:
    int n_ = 0;
    double t_[7][7]{};
};

/// Largest template degree usable with n inputs: min(maxDegree, (n - 2) / 3), -1 for n <= 0.
int psfRegressionDegree(int nInputs, int maxDegree);

/// Candidate footprints of one epoch.
struct ArtifactSearchResult {
    std::vector<SpanSet> candidates;  ///< connected extended regions with a seed (not grown)
    int extendedRegions = 0;          ///< connected extended regions examined
    double noiseRescale = 1.0;        ///< the robust rescaling c (>= 1) of the significance map
};

/// Footprints of G*R where G*R > seedSigma * c * sqrt(V) (seeds), extended over the 8-connected pixels
/// above config.extendSigma * c * sqrt(V). `smoothedResidual` = G*R, `noiseVariance` = V its noise
/// variance (0 marks pixels that are not comparable); one bbox (LogicError otherwise). c >= 1 is the
/// MAD-based width of the significance map over a subsample of the patch. `markScratch` (optional) holds the
/// per-pixel marks, reused when it already has the bbox (saves a patch-size allocation per call).
ArtifactSearchResult findArtifacts(const ImageF& smoothedResidual, const ImageF& noiseVariance, double seedSigma,
                                   const ArtifactRejectionConfig& config, Image<std::int32_t>* markScratch = nullptr);

/// Temporal decision for one footprint (parent frame, inside `box`): true when at least
/// config.spatialFraction of its pixels have nFlagged <= max(1, floor(maxEpochFraction * nInputs)) (arrays
/// row-major over `box`; a pixel with nInputs == 0 does not count as transient).
bool isTransientFootprint(const SpanSet& footprint, const Box2I& box, const std::uint16_t* nFlagged,
                          const std::uint16_t* nInputs, const ArtifactRejectionConfig& config);

/// Pixels sharper than any PSF in one raw epoch (cosmic-ray residuals, hot pixels). `image` is the epoch,
/// `residual` the epoch minus its template, `variance` the epoch's variance; e(x) = value - mean of the 4
/// neighbours. A pixel is sharp when e_image > sharpSigma * sqrt(1.25 variance) and either e_image >
/// sharpContrast * image (isolated) or e_residual > the same threshold (times sqrt(residualVarianceScale)),
/// e_residual > sharpContrast * residual and e_image >= sharpStaticContrast * image (on a static source).
/// `valid` (empty = all) marks usable pixels. `residualVarianceScale` (in (0, 1]) is the residual's variance
/// over the epoch's: 1 - h for a residual against a template that includes the epoch with leverage h (the
/// residual's threshold is then sharpSigma * sqrt(1.25 * scale * variance), so an epoch that pulls the
/// template towards itself keeps the significance of its sharp pixels). Returned grown by 1 pixel.
SpanSet findSharpPixels(const ImageF& image, const ImageF& residual, const ImageF& variance, const ImageF& valid,
                        const ArtifactRejectionConfig& config, double residualVarianceScale = 1.0);

/// Separable convolution with a normalised Gaussian of `sigmaPx` truncated at ceil(3.5 sigma), zero
/// outside the image; with `squaredKernel` the kernel is the element-wise square of that Gaussian (for
/// propagating a variance image). `out` gets the input's bbox.
void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel = false);

/// As gaussianSmooth, but edge-normalised: near the border each output is divided by the kernel weight
/// inside the image (squared, with `squaredKernel`, so a variance stays the variance of the normalised
/// mean). sigma == 0 copies. `scratch` (optional) holds the intermediate pass, reused when it already has the
/// input's bbox (saves an allocation per call in a loop over warps).
void gaussianSmoothNormalized(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel = false,
                              ImageF* scratch = nullptr);

}  // namespace drp
