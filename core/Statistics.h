// Statistics of the usable pixels of an image: mean, standard deviation, median, quantiles, MAD-based
// sigma, min/max, and iterative sigma-clipped mean and standard deviation, optionally weighted by the
// inverse variance.
//
// Which pixels are used: a pixel is used when it is finite (NaN and +-inf are always ignored), when
// (if a mask is given) none of StatisticsControl::badMask's bits are set in it and (if weighting by
// inverse variance) its variance is finite and > 0.
//
// Definitions (n = number of used pixels x_k, w_k = 1/variance_k when weighted, else w_k = 1):
//   mean          = sum w x / sum w
//   stdev         = sqrt( sum w (x - mean)^2 / (V1 - V2/V1) ),  V1 = sum w, V2 = sum w^2
//                   (the unbiased sample standard deviation, n - 1 denominator, when unweighted);
//                   NaN when n < 2.
//   meanError     = stdev / sqrt(n) unweighted; 1 / sqrt(sum w) weighted (the error the variance
//                   plane implies).
//   quantile(q)   = linear interpolation between order statistics (Hyndman & Fan type 7, numpy's
//                   default): with sorted x_(0) <= ... <= x_(n-1), h = q (n - 1),
//                   quantile = x_(floor h) + (h - floor h) (x_(floor h + 1) - x_(floor h)).
//                   Never weighted.
//   median        = quantile(0.5) (mean of the two middle values when n is even).
//   madSigma      = 1.4826 * median(|x - median|), the Gaussian-equivalent sigma.
//   clipped mean / stdev: start from centre c0 = median and width s0 = madSigma (s0 = stdev if
//                   madSigma is 0). Iteration i keeps the pixels with |x - c(i-1)| <= numSigmaClip *
//                   s(i-1) and sets c(i), s(i) to their (weighted) mean and stdev as defined above.
//                   It stops after numIter iterations, when the kept set equals the previous one, or
//                   when |s(i) - s(i-1)| <= convergenceTolerance * s(i-1). An iteration that would keep
//                   fewer than 2 pixels is discarded and the previous estimate kept (with no
//                   accepted iteration: clippedMean = median, clippedStdev = s0, clippedCount = n).
//
// Cost: one pass over the image gathers the used values (min, max and sum on the way); quantiles
// use selection (selectKth below), never a full sort; each clipping iteration is one pass over the
// gathered values. For float pixels (unweighted) the gather, the median and MAD bracket passes and the
// clipping passes are vectorised (AVX2 where the CPU has it); they return exactly, bit for bit, what
// the scalar loops return, so results do not depend on the machine.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/Image.h"
#include "core/Mask.h"
#include "core/MaskedImage.h"

namespace drp {

/// Bit flags choosing which quantities makeStatistics computes (cheaper when fewer are asked for).
enum StatisticsProperty : unsigned {
    kStatCount = 1u << 0,        ///< number of used pixels (always computed)
    kStatMean = 1u << 1,         ///< mean and meanError (unweighted meanError also needs kStatStdev)
    kStatStdev = 1u << 2,        ///< standard deviation (implies kStatMean)
    kStatMinMax = 1u << 3,       ///< min and max
    kStatSum = 1u << 4,          ///< (weighted) sum of the values, sum w x
    kStatMedian = 1u << 5,       ///< median
    kStatMadSigma = 1u << 6,     ///< 1.4826 * MAD (implies kStatMedian)
    kStatQuantiles = 1u << 7,    ///< StatisticsControl::quantiles
    kStatClipped = 1u << 8,      ///< clipped mean, stdev, count (implies kStatMedian, kStatMadSigma)
    kStatAll = (1u << 9) - 1,
};

/// What to compute and which pixels to use. Plain value; compare with ==; check with validate().
struct StatisticsControl {
    /// Clip at this many (clipped) standard deviations from the clipped mean. Bounds: > 0. Unit: sigma.
    double numSigmaClip = 3.0;
    /// Maximum number of clipping iterations. Bounds: [1, 1000].
    int numIter = 5;
    /// Stop clipping early when the clipped stdev changes by at most this fraction between
    /// iterations; 0 means "only when the kept set no longer changes". Bounds: [0, 1).
    double convergenceTolerance = 0.0;
    /// Pixels with any of these mask bits set are ignored (e.g. mask.planeBitMask({"BAD","SAT"})).
    /// 0 ignores no masked pixel. Only used when a mask is given.
    MaskPixel badMask = 0;
    /// Weight by inverse variance (needs a variance plane). Affects mean, stdev, sum, meanError and
    /// the clipped estimates; never the median, quantiles or madSigma.
    bool weighted = false;
    /// Quantiles to compute (each in [0, 1]) when kStatQuantiles is asked for; results are returned
    /// in the same order.
    std::vector<double> quantiles{};
    /// Which quantities to compute (StatisticsProperty bits). Default: all.
    unsigned properties = kStatAll;
    /// The clipping (kStatClipped) starts from the median and MAD of every clipStartStride-th used value (in
    /// raster order) instead of all of them, when neither the median nor the MAD is asked for (they are then NaN
    /// in the result); the clipped iterations still use every value. For large samples whose clipped mean is
    /// what is wanted (a background bin of 16k pixels: the start from 4k is within 2% of a sigma, and the
    /// iterations converge to the same set): the two selections are most of the cost. Bounds: [1, 64]. Default 1.
    int clipStartStride = 1;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const StatisticsControl&, const StatisticsControl&) = default;
};

/// The result of makeStatistics. Quantities not asked for, or undefined (n = 0; stdev with n < 2),
/// are NaN.
struct Statistics {
    std::int64_t count = 0;          ///< number of used pixels
    double sum = 0.0;                ///< sum w x (0 when count == 0)
    double mean;                     ///< (weighted) mean
    double meanError;                ///< error of the mean (see header comment)
    double stdev;                    ///< (weighted) sample standard deviation
    double min;                      ///< smallest used value
    double max;                      ///< largest used value
    double median;                   ///< median (never weighted)
    double madSigma;                 ///< 1.4826 * median absolute deviation from the median
    std::vector<double> quantiles;   ///< one per StatisticsControl::quantiles entry
    double clippedMean;              ///< sigma-clipped (weighted) mean
    double clippedStdev;             ///< sigma-clipped (weighted) standard deviation
    std::int64_t clippedCount = 0;   ///< pixels kept by the last accepted clipping iteration
    int clipIterations = 0;          ///< clipping iterations accepted
    Statistics();
};

/// Statistics of all finite pixels of `image`.
template <typename T>
Statistics makeStatistics(const Image<T>& image, const StatisticsControl& ctrl = {});
/// Statistics of the finite pixels of `image` whose `mask` has none of ctrl.badMask's bits.
/// Throws LogicError if the shapes differ, ConfigError if ctrl.weighted (no variance given).
template <typename T>
Statistics makeStatistics(const Image<T>& image, const Mask& mask, const StatisticsControl& ctrl);
/// As above, with a variance plane used for inverse-variance weighting when ctrl.weighted.
/// `mask` and `variance` may be null (no mask; no variance: ctrl.weighted then throws ConfigError).
template <typename T>
Statistics makeStatistics(const Image<T>& image, const Mask* mask, const Image<float>* variance,
                          const StatisticsControl& ctrl);
/// Statistics of a masked image (its variance plane gives the weights when ctrl.weighted).
template <typename T>
Statistics makeStatistics(const MaskedImage<T>& image, const StatisticsControl& ctrl = {});
/// The quantile q (in [0, 1]; ConfigError otherwise) of the finite entries of `values` as defined above
/// (linear interpolation between order statistics, numpy's default); NaN if there are none. The value
/// makeStatistics(values) gives for StatisticsControl::quantiles = {q}.
double quantile(std::span<const double> values, double q);

/// The k-th smallest (0-based) of values[0, n) (k < n; no NaN), reordering them as std::nth_element does:
/// values[k] holds it, no value before it is larger and none after it smaller; returns values[k]. A
/// quickselect whose partitions have no data-dependent branch (on noise nth_element's comparisons are coin
/// flips for the branch predictor: it is ~4x slower), handing over to std::nth_element if its
/// median-of-three pivots stall (so O(n log n) at worst). Every exact selection returns the same value
/// (equal values differ at most in the sign of a zero). Instantiated for float and double.
template <typename T>
T selectKth(T* values, std::size_t n, std::size_t k);

/// Statistics of plain values (non-finite ones are ignored). `weights` must be empty or the same
/// length as `values`; with ctrl.weighted they are the inverse variances (entries <= 0 or non-finite
/// drop the value). ctrl.badMask is not used.
Statistics makeStatistics(std::span<const double> values, const StatisticsControl& ctrl = {},
                          std::span<const double> weights = {});

}  // namespace drp
