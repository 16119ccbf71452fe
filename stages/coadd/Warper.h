// Warper: resample a calibrated exposure (calexp) onto another pixel grid, e.g. a patch of a tract
// (the "warp" step of coaddition). Pure stage code: no I/O, no MPI.
//
// Mapping. Every destination pixel centre d (parent frame of the destination WCS) is mapped to source
// pixel coordinates s(d) = srcWcs.skyToPixel(destWcs.pixelToSky(d)). With WarpConfig::interpLength = L > 0
// the mapping is evaluated exactly only on a grid of nodes every L destination pixels in x and y (plus a
// ring of nodes around the box) and interpolated bilinearly in between; the error is ~L^2/8 times the
// mapping's second derivative (< 1e-5 px for TAN/TAN-SIP calexps and L = 10). L = 0 evaluates every pixel
// exactly.
//
// Resampling. A separable kernel (stages/coadd/Lanczos.h; lanczos3 by default) with weights normalised to
// sum 1 and (Lanczos) corrected to zero first moment at every position:
// out(d) = a(d) sum_ij w_i(s_x) w_j(s_y) in(i, j).
//
// Flux conservation. Calexp pixels hold flux per pixel. Interpolation by itself conserves surface
// brightness (flux per unit source-pixel area); to conserve total flux the value is multiplied by the
// relative area a(d) = |det ds/dd|, the area of the destination pixel in source pixels (from the local
// Jacobian of the mapping: central differences of the node grid; a = 1 for equal pixel scales, and e.g.
// 1.0201 for destination pixels 1% larger on a side). The total flux of a source is then conserved to the
// interpolation (aliasing) error of the kernel: flux_out = sum_s T_s in(s), where T_s = sum_d a(d) w_ds is
// the total weight input pixel s gives to the output (T averages 1). Measured (tests/stages/test_Warp.cpp,
// 36 seeds, 859 stars of FWHM 4-5.5 px, lanczos2/3/4, exact and interpolated mapping): flux conserved to
// < 1.1e-4 and centroids to < 1.4e-3 px at every grid orientation. This needs the first-moment correction
// of the kernel (stages/coadd/Lanczos.h): with the plain normalised Lanczos weights, grids within ~5 degrees
// of alignment with a scale change of a few % beat against each other (a slowly varying moire of T, rms
// 0.15-0.4%) and errors reached 0.4% in flux and 0.03 px in position. Neither the mapping interpolation
// (same errors with interpLength 0), the Jacobian, nor the pixel-centre convention contributed.
//
// Variance. var_out(d) = a(d)^2 sum_ij w_i^2 w_j^2 var(i, j): the exact variance of each output pixel for
// independent input pixels. Warping correlates neighbouring output pixels, so the variance of a sum over
// many output pixels (an aperture flux, a coadd-level noise estimate) is larger than the sum of their
// per-pixel variances. For a large region of uniform input variance the variance of the sum is
// sum_s T_s^2 var, with T_s = sum_d a(d) w_ds the total weight input pixel s receives over the output
// (T averages 1: flux conservation; it fluctuates by aliasing between the two grids), so the ratio is
//     covarianceFactor = <T^2> sum_d a(d) / sum_d a(d)^2 S(d),    S(d) = sum_ij (w_i w_j)^2.
// sum a / sum a^2 S comes from the warp itself; <T^2> (1.00-1.01) is computed on up to 9 blocks of 40 x 40
// source pixels with the local affine mapping. It is ~1.22 for lanczos3, ~1.44 for lanczos2, ~2.19 for
// bilinear at random rotations and 1.5% scale change (1 for an integer shift). It agrees with the exact
// covariance summed from the kernel weights to 3e-5, and with the lag-sum of the autocovariance measured on
// warped white noise (24 x 640^2 realisations per kernel) to 0.4-1.9% (the estimator's 1-sigma is ~0.9%).
// An earlier test reported the prediction "5.5% low": that was a 2-sigma fluctuation of the noisy lag-sum
// estimator on 4 small images, shared by every kernel because they used the same noise realisations.
// Across pixel-scale ratios (tests/stages/test_Warp.cpp CovarianceFactorMonteCarloAcrossScales: white noise,
// r = destination / source pixel 0.5, 1, 1.5, 2, 3, rotated and aligned grids, variance of sums over boxes
// of 20 and 40 source pixels) the prediction matches the measured box-sum variance within the Monte Carlo
// noise and the finite-box edge effect. Downsampling gives factors below 1 (lanczos3: ~0.56-0.66 at r = 1.5,
// e.g. 0.4"/px calexps onto 0.6"/px patches; 0.40-0.9 at r = 2; 1.0-1.26 at r = 3, depending on the phase of
// the grids): the kernel acts on source pixels, so each output pixel's variance a^2 S var exceeds its share
// a var of the flux-conserving large-area sum. That is real, not a formula error. Use: the variance of a sum of
// output pixels over an area much larger than the kernel (an aperture flux of a faint extended source,
// the noise of a binned coadd) is covarianceFactor x the sum of their variance-plane values; the
// per-pixel variance plane itself is already exact (it predicts the measured pixel noise to < 0.5%).
// It is reported in WarpInfo and in the metadata of warpExposure (WARPCOVF) so downstream code can correct aperture-flux errors or the coadd variance; the variance plane is
// left as the per-pixel variance (as in the Rubin pipelines, whose coadd variance is likewise per pixel).
//
// Masks and missing data. The mask of an output pixel is the OR of the masks of the input pixels whose
// weight |w_i w_j| exceeds WarpConfig::maskWeightThreshold (Rubin uses a separate bilinear mask kernel
// for the same purpose: a BAD pixel marks only the outputs it noticeably contributes to). Input pixels
// outside the source image, flagged NO_DATA, or with a non-finite image or variance are "missing": if
// their share of the kernel, sum |w| over missing / sum |w|, exceeds WarpConfig::maxBadFraction (default
// 0: any missing input pixel with non-zero weight), the output pixel has no data: image NaN, variance
// +infinity, mask NO_DATA only (the Rubin convention: zero inverse-variance weight; a coadd must test the
// NO_DATA bit, since 0 * NaN is NaN). Otherwise the kernel is renormalised over the remaining pixels.
// The output mask uses a copy of the source mask's plane dictionary (run-time planes keep their bits).
//
// Threads. WarpConfig::numThreads > 1 splits the output into strips of rows processed by std::thread;
// every pixel (and every statistic, reduced in strip order) is bit-identical for any number of threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/Box.h"
#include "core/Exposure.h"
#include "core/MaskedImage.h"
#include "core/Wcs.h"

namespace drp {

/// Configuration of the warping stage. Plain value; validate() before use; compare with ==.
struct WarpConfig {
    /// Interpolation kernel: "lanczos3" (default), "lanczos2", "lanczos4", "bilinear", "nearest".
    std::string kernel = "lanczos3";
    /// Spacing (destination pixels) of the grid on which the WCS mapping is evaluated exactly; bilinear
    /// interpolation in between. 0 = exact at every pixel. Bounds: [0, 100].
    int interpLength = 10;
    /// Largest share (sum |w|) of the kernel on missing input pixels (outside the image, NO_DATA,
    /// non-finite) for which an output pixel still gets data, from the renormalised kernel. Bounds: [0, 1).
    /// 0 (default): any missing input pixel with non-zero weight makes the output NO_DATA.
    double maxBadFraction = 0.0;
    /// An input pixel's mask bits propagate to an output pixel when its 2-d weight |w_i w_j| exceeds this.
    /// Dimensionless, bounds: [0, 1). 0 = every input pixel with non-zero weight.
    double maskWeightThreshold = 0.01;
    /// Worker threads over strips of output rows (result independent of it). Bounds: [1, 256].
    int numThreads = 1;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const WarpConfig&, const WarpConfig&) = default;
};

/// Statistics of one warp (all over output pixels with data).
struct WarpInfo {
    std::int64_t numGoodPixels = 0;    ///< output pixels with data
    std::int64_t numNoDataPixels = 0;  ///< output pixels set to NO_DATA
    Box2I goodBBox;                    ///< smallest box holding every output pixel with data (empty if none)
    double meanRelativeArea = 0.0;     ///< <a>: destination pixel area in source pixels
    double meanSumSquaredWeights = 0.0;  ///< <S> = <sum_ij (w_i w_j)^2>
    /// <T^2>: mean square of the total output weight of an input pixel (aliasing term; see header).
    double meanSquaredTotalWeight = 1.0;
    /// <T^2> sum a / sum a^2 S: variance of a large-area sum over the sum of per-pixel variances (see header).
    double covarianceFactor = 1.0;
};

/// Warp the pixels of `src` (parent frame of `srcWcs`) onto `destBox` of the grid of `destWcs`.
/// Throws ConfigError for an invalid config, InvalidInputError for an empty destBox or source.
MaskedImageF warpMaskedImage(const MaskedImageF& src, const Wcs& srcWcs, const Wcs& destWcs, const Box2I& destBox,
                             const WarpConfig& config = {}, WarpInfo* info = nullptr);

/// Warp an exposure (it must have a WCS). The result has the warped pixels on destBox, WCS destWcs,
/// the source's PhotoCalib, VisitInfo and detector, and, if the source has a PSF, a CoaddPsf with this
/// single input (the warped PSF; stages/coadd/CoaddPsf.h). Its metadata holds WARPKERN (kernel name),
/// WARPILEN (interpLength), WARPCOVF (covarianceFactor), WARPAREA (meanRelativeArea), WARPSUMW
/// (meanSumSquaredWeights) and WARPNGOD (numGoodPixels).
Exposure warpExposure(const Exposure& src, std::shared_ptr<const Wcs> destWcs, const Box2I& destBox,
                      const WarpConfig& config = {}, WarpInfo* info = nullptr);

/// The bounding box, in the destination grid, of the source image's footprint (its boundary mapped
/// through the WCSs, sampled every 16 pixels along each edge), grown by `grow` pixels and clipped to
/// `clip` when clip is non-empty. Empty if the footprint misses clip. Lets a coadd warp only the part of
/// a patch a calexp touches.
Box2I destinationBBox(const Box2I& srcBox, const Wcs& srcWcs, const Wcs& destWcs, const Box2I& clip = {},
                      int grow = 4);

/// `warp` placed in a `gridBox`-sized image (gridBox must hold the warp's box): NaN image, infinite
/// variance and NO_DATA outside the warp's box, which is how a coadd assembler expects an input that
/// covers only part of the patch.
MaskedImageF embedInGrid(const MaskedImageF& warp, const Box2I& gridBox);

}  // namespace drp
