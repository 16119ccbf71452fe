// PsfDeterminer: choose PSF stars among detected sources and fit a PsfexPsf (core/PsfexPsf.h) to them,
// keeping a random reserve of stars out of the fit to measure how well the model predicts unseen stars
// (as Rubin's PSFEx determiner with its reserve-star QA).
//
// Star selection (selectPsfStars), from the candidates' own measurements:
//  1. drop flagged, saturated, blended, masked or edge candidates, non-positive flux or size, and S/N
//     (flux / fluxErr, when fluxErr > 0) below minSnr;
//  2. size T = ixx + iyy: the stellar locus in ln T. Stars pile up at the PSF size, galaxies spread to larger
//     sizes (cosmic rays, smaller, are flagged); with few stars among many galaxies the galaxies can crowd a
//     window more densely than the stars, so the locus is the most compact populated window of width sizeWindow:
//     the smallest-ln T one holding at least compactLocusFraction of the densest window's count (and 2
//     candidates when possible), then the densest window starting within sizeWindow of it (the local mode; in a
//     dense field the global one); keep candidates within sizeWindow / 2 of that window's middle member;
//  3. fit ln T as a polynomial of order min(spatialOrder, 2) over the detector to them (the PSF size varies
//     over the detector) and keep all candidates whose residual is within sizeClipSigma robust sigmas
//     (1.4826 MAD), the tolerance clamped to [minSizeTolerance, maxSizeTolerance]; iterate twice;
//  4. drop candidates whose ellipticity (e1, e2 from the moments) differs from the stars' median by more
//     than maxEllipticityDeviation;
//  5. keep the brightest maxStars.
//
// Fit (determinePsf), native sampling (oversampling 1; the oversampled fit is described after this list):
//  * each selected star is re-measured on the image with re-centring adaptive moments (stages/measure/
//    AdaptiveMoments.h; the weight held at least minWeightSigma wide, so a star sharper than a pixel does not
//    collapse): its centre (the centroid the model is centred on) and its size; candidates whose
//    stamp leaves the image or holds a pixel with any of badMaskPlanes, or whose moments fail, are dropped;
//  * a stamp of stampSize + 2 x padding pixels around the nearest pixel is shifted by minus the
//    sub-pixel offset with a band-limited (periodic sinc) interpolant, the same interpolant
//    Psf::computeImage uses to move the model, and its central stampSize x stampSize pixels kept;
//  * a reserveFraction of these stars (a seeded shuffle) is set aside;
//  * per pixel, the normalised stamps D_s / F_s of the used stars are fit by weighted least squares with
//    the polynomial of spatialOrder (weight F_s^2 / mean stamp variance, the same at every pixel of a star,
//    pixels clipped from that star left out); F_s starts as the stamp sum and is then the least-squares
//    amplitude of the current model;
//  * `iterations` rounds: refit, recompute fluxes, clip each star's pixels more than pixelClipSigma above
//    the model (neighbours, defects; grown by one pixel; from the second round; a star losing more than
//    maxClippedFraction is dropped, a reserved one, or one with its core clipped, gets no residual), per-star
//    reduced chi^2, and reject stars whose chi^2 exceeds median + outlierSigma x 1.4826 MAD (never below
//    minStars). Pixel variances in the flux fit, the clipping and chi^2 are v0 + g x model + (modelAccuracy x
//    model)^2, from the variance plane's sky level v0 and slope g (not the noisy pixel's own variance), so a
//    bright star is not rejected for the model's own percent-level errors (PSFEx's PROF_ACCURACY);
//  * the spatial order is lowered while fewer than minStarsPerTerm x numTerms stars remain, and then to the
//    lowest order whose variation the stars show (orderSelectionSigma): ln T, e1 and e2 of the used stars' adaptive
//    moments, each weighted by 1 / ((sizeNoise / S/N)^2 + modelAccuracy^2), are fitted as polynomials of each
//    order, and a higher order is taken only when a nested F-test on the pooled weighted residuals passes at that
//    significance (as the aperture correction chooses its order). A pixel model of order 2 from a dozen stars
//    carries their photon noise to every pixel six times over; where the PSF does not vary detectably over the
//    detector, the constant model is the more accurate one;
//  * size consistency (a model from fewer than sizeCheckMaxStars stars): the used and reserved stars' adaptive
//    ln T against the model's at each star, sigma^2 = (sizeNoise / S/N)^2 + minSizeTolerance^2; chi^2 above its
//    sizeCheckSigma quantile means the stars disagree in size beyond their noise (galaxies taken for stars): a
//    NumericalError, so the caller falls back (to psfLocusSize, the compact locus, not a galaxy size).
// Oversampled fit (oversampling q > 1, chosen for FWHM below oversampleBelowFwhm: an undersampled star is aliased, and
// the sinc shift of an aliased stamp is not the star at the new phase, which biases the model's size by +4e-3 at
// FWHM 2 pixels): the stamps are the N x N pixels about the nearest pixel, not shifted; every node of every spatial
// term is fitted at once to all used stars through the model's interpolant at each star's phase (OversampledPsfFit.h),
// with the same star weights and clipped pixels; the model at a star, for its flux, clipping and chi^2, is
// computeImage at its centre. Everything else is as above.
// Residuals: for each reserved star, with P the model's computeImage at the star's centre (same pixel grid),
// I the image over P's box and F the star's fitted flux:
//   direct: dT/T = (T(I) - T(P)) / T(P), T = Ixx + Iyy of re-centring adaptive moments (same algorithm). Its
//           mean over stars carries the adaptive moments' noise bias, +O(1/SNR^2) (about +1.5e-3 for a
//           star-count S/N distribution from S/N 50), whatever the model;
//   linear (reported): dT/T = (T(P + e R) - T(P - e R)) / (2 e T(P)), R = I / F - P, e = 0.1: the first-order
//           change of T along the star's residual. The even orders, and so the noise bias, cancel; a model
//           size error dT/T still shows at full size. Its mean and median estimate the model's size bias.
//           Its noise is about sizeNoise / S/N (2.3 / S/N measured), so the faintest reserved stars dominate
//           a plain mean; the weighted mean, weights 1 / ((sizeNoise / S/N)^2 + 0.003^2), is the better
//           estimate of the bias (the floor: a star's own model error, so the brightest do not take over).
//   de = |e_star - e_psf| (e = (e1, e2) of the direct moments).
// The fit itself (stamps to residuals) is PsfStarFit.h's, which also fits one model to the stars of several detectors
// (VisitPsf.h: the visit-level model); determinePsf is its one-image case.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/MaskedImage.h"
#include "core/Psf.h"
#include "stages/measure/AdaptiveMoments.h"

namespace drp {

/// A source offered to the PSF determiner, with the measurements star selection needs.
struct PsfCandidate {
    Point2D position;           ///< centroid (parent frame, pixels)
    double flux = 0.0;          ///< instrumental flux (image units)
    double fluxErr = 0.0;       ///< its error; <= 0 when unknown (the S/N cut is then skipped)
    double ixx = 0.0;           ///< second moments (pixels^2), e.g. adaptive moments
    double iyy = 0.0;
    double ixy = 0.0;
    bool saturated = false;     ///< saturated pixels in the footprint
    bool blended = false;       ///< a deblended child or a parent with several peaks
    bool masked = false;        ///< bad, interpolated or cosmic-ray pixels near the centre
    bool edge = false;          ///< too close to the image edge
    bool flagged = false;       ///< any other measurement failure
    /// True when no flag is set.
    bool isCandidate() const { return !(saturated || blended || masked || edge || flagged); }
};

/// Configuration of selectPsfStars and determinePsf. Plain value; compare with ==; check with validate().
struct PsfDeterminerConfig {
    /// Model stamp side (odd), pixels; 0 chooses 2 ceil(stampRadiusSigma x sigma) + 1 (clamped to [15, 61])
    /// with sigma = sqrt(T / 2) of the median selected star. Bounds: 0 or odd in [7, 201]. Default 0.
    int stampSize = 0;
    /// Stamp half-width in PSF sigmas when stampSize is 0. Bounds: [3, 20]. Default 7.
    double stampRadiusSigma = 7.0;
    /// Extra border (pixels) around the stamp for the sub-pixel shift. Bounds: [2, 64]. Default 8.
    int padding = 8;
    /// Model nodes per image pixel (PsfexPsf's q; PSFEx's 1 / PSF_SAMPLING): 1 fits the native-pixel model to
    /// sinc-recentred stamps; 2 or 3 fits an oversampled model through its interpolant to the stamps as they are
    /// (OversampledPsfFit.h); 0 chooses 2 when the median selected star's FWHM (2.3548 sqrt(T / 2)) is below
    /// oversampleBelowFwhm, else 1. Bounds: [0, 3]. Default 0.
    int oversampling = 0;
    /// FWHM (pixels) below which oversampling 0 fits an oversampled model. Bounds: [0, 10]. Default 2.5.
    double oversampleBelowFwhm = 2.5;
    /// Order of the per-pixel spatial polynomials. Bounds: [0, 3]. Default 2.
    int spatialOrder = 2;
    /// Fraction of the usable stars kept out of the fit. Bounds: [0, 0.9]. Default 0.2.
    double reserveFraction = 0.2;
    /// Seed of the reserve split (drivers derive it from the data ID).
    std::uint64_t seed = 0;
    /// Minimum S/N of a candidate (flux / fluxErr). Bounds: >= 0. Default 20 (PSFEx's SAMPLE_MINSN).
    double minSnr = 20.0;
    /// Width of the size-locus window in ln T. Bounds: (0, 2]. Default 0.2.
    double sizeWindow = 0.2;
    /// The size locus is the smallest-ln T window holding at least this fraction of the densest window's count (and
    /// 2 candidates when the densest holds 2 or more); 1 takes the densest. Bounds: (0, 1]. Default 0.1.
    double compactLocusFraction = 0.1;
    /// Size-locus clip in robust sigmas. Bounds: > 0. Default 3.
    double sizeClipSigma = 3.0;
    /// Bounds of the size tolerance in ln T. Bounds: 0 < min <= max <= 1. Defaults 0.02, 0.15.
    double minSizeTolerance = 0.02;
    double maxSizeTolerance = 0.15;
    /// Largest |e - median e| of a star (distortion units). Bounds: > 0. Default 0.1.
    double maxEllipticityDeviation = 0.1;
    /// Brightest stars kept by selection. Bounds: >= 1. Default 500.
    int maxStars = 500;
    /// Fewest stars the fit may use (NumericalError below). Bounds: >= 1. Default 10.
    int minStars = 10;
    /// Stars per spatial term below which the order is lowered. Bounds: >= 1. Default 4.
    int minStarsPerTerm = 4;
    /// Significance (normal deviates, two-sided) at which the stars' sizes and ellipticities must show a higher
    /// spatial order for it to be fitted (see the header); 0 fits spatialOrder whenever there are stars enough.
    /// Bounds: >= 0. Default 3 (p < 0.0027).
    double orderSelectionSigma = 3.0;
    /// Fit / reject rounds. Bounds: [1, 20]. Default 4.
    int iterations = 4;
    /// Chi^2 outlier threshold in robust sigmas. Bounds: > 0. Default 5.
    double outlierSigma = 5.0;
    /// Relative accuracy of the model, added to each pixel's variance as (modelAccuracy x model)^2 in the star
    /// flux fit, the pixel clipping and chi^2 (as PSFEx's PROF_ACCURACY), so bright stars are not rejected for
    /// the model's own small errors. Bounds: [0, 0.5]. Default 0.01.
    double modelAccuracy = 0.01;
    /// Size noise of a star: sigma(ln T) of its adaptive moments is sizeNoise / S/N (S/N of the star's flux in its
    /// stamp: F / sqrt(2 pi T v0 + g F)). Bounds: (0, 10]. Default 3 (2.6 measured on Moffat stars at S/N 17-50 with
    /// the S/N of their adaptive amplitude; see the stage test).
    double sizeNoise = 3.0;
    /// Size consistency check of a model from fewer than sizeCheckMaxStars stars (used and reserved): the stars' ln T
    /// against the model's, each with variance (sizeNoise / S/N)^2 + minSizeTolerance^2; a chi^2 above its quantile
    /// at sizeCheckSigma (Wilson-Hilferty) is a NumericalError. 0 disables. Bounds: >= 0. Default 20.
    int sizeCheckMaxStars = 20;
    /// Normal-deviate level of that chi^2 quantile. Bounds: > 0. Default 3.09 (0.1% false failures).
    double sizeCheckSigma = 3.09;
    /// Stamp pixels more than this many sigmas above the current model (neighbours, defects) are left out of the
    /// next fit round, with their 8 neighbours (from the second round on). Bounds: >= 3. Default 5.
    double pixelClipSigma = 5.0;
    /// A fit star with more than this fraction of its stamp clipped is dropped; a reserved one (or one with a
    /// clipped pixel in the central 3 x 3) gets no residual. Bounds: (0, 1]. Default 0.5.
    double maxClippedFraction = 0.5;
    /// Stars with any of these planes in their stamp are not used.
    std::vector<std::string> badMaskPlanes{"BAD", "SAT", "CR", "INTRP", "NO_DATA", "EDGE", "SUSPECT"};
    /// Adaptive-moments settings (re-centring and residuals). recentre must stay true (the centre is
    /// measured). Default: defaultMomentsControl(), a wide window (weights down to exp(-25)) and a tight
    /// tolerance, as the star and model moments are compared at the 1e-4 dT/T level.
    AdaptiveMomentsControl moments = defaultMomentsControl();
    /// Smallest weight sigma (pixels) of those moments in determinePsf (moments.minWeightVariance raised to its
    /// square; see AdaptiveMomentsControl): the weight of a star sharper than about a pixel (FWHM <~ 2 pixels) would
    /// otherwise collapse along an axis at pixel-centred phases and its re-centring 2-cycle, leaving almost no usable
    /// star. Stars, model and residuals are measured alike, so dT/T stays a like-for-like comparison; wider stars are
    /// unaffected. As the shape plugin's shapeMinWeightSigma, whose sizes select the stars. 0 turns it off.
    /// Bounds: [0, 5]. Default 1.1.
    double minWeightSigma = 1.1;

    /// The default of `moments`: recentre on, windowSigmas sqrt(50), tolerance 2e-8, other fields default.
    static AdaptiveMomentsControl defaultMomentsControl();

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const PsfDeterminerConfig&, const PsfDeterminerConfig&) = default;
};

/// What determinePsf produced. Indices refer to the candidates vector.
struct PsfDeterminationResult {
    std::shared_ptr<const Psf> psf;      ///< the fitted PsfexPsf
    std::vector<std::size_t> selected;   ///< chosen by selectPsfStars
    std::vector<std::size_t> used;       ///< in the final fit
    std::vector<std::size_t> reserved;   ///< kept out of the fit
    std::vector<double> reservedSizeResiduals;  ///< dT/T (linear, see header) of each reserved star (same order as reserved)
    std::vector<double> reservedDirectSizeResiduals;  ///< direct dT/T of each reserved star (noise-biased, see header)
    std::vector<double> reservedSizeResidualWeights;  ///< weight of each reserved star's dT/T (0 without one; see header)
    double reservedMeanSizeResidual = 0.0;      ///< mean dT/T (linear) on the reserved stars
    double reservedWeightedMeanSizeResidual = 0.0;  ///< weighted mean dT/T (linear) on the reserved stars
    double reservedSizeResidualWeightSum = 0.0;     ///< sum of the reserved stars' weights
    double reservedSizeResidualWeightedSs = 0.0;    ///< sum of weight x (dT/T - weighted mean)^2 (for pooling)
    double reservedMedianSizeResidual = 0.0;    ///< median dT/T (linear) on the reserved stars
    double reservedSizeResidualScatter = 0.0;   ///< 1.4826 MAD of dT/T (linear) on the reserved stars
    double reservedDirectMedianSizeResidual = 0.0;  ///< median direct dT/T on the reserved stars
    double reservedEllipticityResidual = 0.0;   ///< median |e_star - e_psf| on the reserved stars
    double usedMedianSizeResidual = 0.0;        ///< median dT/T on the used stars (training residual)
    double sizeChi2 = 0.0;  ///< chi^2 of the stars' ln T against the model's (used and reserved; see header)
    int sizeChi2Terms = 0;  ///< stars in sizeChi2
    int nUsed = 0;
    int stampSize = 0;     ///< the model's stamp side
    int oversampling = 1;  ///< the model's nodes per pixel
    int solverIterations = 0;  ///< conjugate-gradient iterations of the oversampled fit, over all rounds
    int spatialOrder = 0;  ///< the order actually fit
};

/// T = Ixx + Iyy of the stellar size locus of the candidates (selection steps 1-2: the median of the most compact
/// populated window's members), NaN without any candidate passing the cuts. When fewer than 2 candidates pass minSnr,
/// those down to minSnr / 2 are admitted (one object is no locus). A fallback PSF size that galaxies do not inflate.
double psfLocusSize(const std::vector<PsfCandidate>& candidates, const PsfDeterminerConfig& config);

/// Indices of the candidates that look like isolated, unsaturated stars (see header comment), brightest first.
std::vector<std::size_t> selectPsfStars(const std::vector<PsfCandidate>& candidates, const PsfDeterminerConfig& config);

/// Fit a PsfexPsf to the selected stars of `image` (background-subtracted, with variance). Throws
/// ConfigError, or NumericalError when fewer than minStars stars are usable, or when a model from fewer than
/// sizeCheckMaxStars stars fails the size consistency check (stars that disagree in size: galaxies in the sample).
PsfDeterminationResult determinePsf(const MaskedImageF& image, const std::vector<PsfCandidate>& candidates,
                                    const PsfDeterminerConfig& config);

/// Shift `in` (odd dimensions) by (dx, dy) pixels (content moves towards +x for dx > 0) with the periodic
/// sinc (Fourier) interpolant, as Psf::computeImage does. Exposed for tests.
Image<double> sincShift(const Image<double>& in, double dx, double dy);

}  // namespace drp
