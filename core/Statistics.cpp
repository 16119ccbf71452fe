#include "core/Statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <numeric>
#include <string>
#include <utility>

#include "core/Error.h"
#include "core/Simd.h"

namespace drp {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMadToSigma = 1.4826;

// The gathered values are kept in the narrowest type that holds every pixel exactly: float for float
// and uint16 images, double for double and int32 images.
template <typename T>
struct GatherType {
    using type = double;
};
template <>
struct GatherType<float> {
    using type = float;
};
template <>
struct GatherType<std::uint16_t> {
    using type = float;
};

// Sums of one set of (weighted) values, shifted by `shift` so that they stay accurate when the shift
// is close to the mean.
struct Moments {
    double n = 0, sw = 0, sw2 = 0, swd = 0, swd2 = 0;
    // Weighted mean = shift + swd / sw.
    double mean(double shift) const { return sw > 0 ? shift + swd / sw : kNaN; }
    // Weighted unbiased variance, sum w (x-mean)^2 / (V1 - V2/V1); the (swd)^2/sw term corrects for the
    // shift (exact for any shift in exact arithmetic, and the "corrected two-pass" formula when shift
    // is the mean).
    double variance() const {
        if (n < 2 || !(sw > 0)) return kNaN;
        double denom = sw - sw2 / sw;
        if (!(denom > 0)) return kNaN;
        return std::max(0.0, swd2 - swd * swd / sw) / denom;
    }
};

// Moments of all values about `shift`; weights may be null (all 1).
template <typename V>
Moments momentsAbout(const V* x, const double* w, std::size_t n, double shift) {
    Moments m;
    m.n = double(n);
    if (!w) {
        double a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
        std::size_t i = 0;
        for (; i + 4 <= n; i += 4) {
            double d0 = double(x[i]) - shift, d1 = double(x[i + 1]) - shift;
            double d2 = double(x[i + 2]) - shift, d3 = double(x[i + 3]) - shift;
            a0 += d0; a1 += d1; a2 += d2; a3 += d3;
            b0 += d0 * d0; b1 += d1 * d1; b2 += d2 * d2; b3 += d3 * d3;
        }
        for (; i < n; ++i) {
            double d = double(x[i]) - shift;
            a0 += d;
            b0 += d * d;
        }
        m.sw = m.sw2 = double(n);
        m.swd = (a0 + a1) + (a2 + a3);
        m.swd2 = (b0 + b1) + (b2 + b3);
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            double d = double(x[i]) - shift;
            m.sw += w[i];
            m.sw2 += w[i] * w[i];
            m.swd += w[i] * d;
            m.swd2 += w[i] * d * d;
        }
    }
    return m;
}

// The unweighted sums of clippedMoments in four lanes (value i goes to lane i % 4, the tail to lane 0):
// fixed order, so deterministic, and element-wise, so the AVX2 clone gives the same bits.
template <typename V>
[[gnu::always_inline]] inline void clippedSumsBody(const V* __restrict x, std::size_t n, double centre, double halfWidth,
                                                   double prevCentre, double prevHalfWidth, double* __restrict cnt,
                                                   double* __restrict s1, double* __restrict s2, double* __restrict ch) {
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        for (int l = 0; l < 4; ++l) {
            const double v = double(x[i + std::size_t(l)]);
            const double d = v - centre;
            const double in = std::fabs(d) <= halfWidth ? 1.0 : 0.0;
            const double wasIn = std::fabs(v - prevCentre) <= prevHalfWidth ? 1.0 : 0.0;
            const double dm = in * d;
            ch[l] += std::fabs(in - wasIn);
            cnt[l] += in;
            s1[l] += dm;
            s2[l] += dm * dm;
        }
    }
    for (; i < n; ++i) {
        const double v = double(x[i]);
        const double d = v - centre;
        const double in = std::fabs(d) <= halfWidth ? 1.0 : 0.0;
        const double wasIn = std::fabs(v - prevCentre) <= prevHalfWidth ? 1.0 : 0.0;
        const double dm = in * d;
        ch[0] += std::fabs(in - wasIn);
        cnt[0] += in;
        s1[0] += dm;
        s2[0] += dm * dm;
    }
}
DRP_SIMD_CLONES void clippedSumsUnweighted(const float* x, std::size_t n, double centre, double halfWidth,
                                           double prevCentre, double prevHalfWidth, double* cnt, double* s1, double* s2,
                                           double* ch) {
    clippedSumsBody(x, n, centre, halfWidth, prevCentre, prevHalfWidth, cnt, s1, s2, ch);
}
DRP_SIMD_CLONES void clippedSumsUnweighted(const double* x, std::size_t n, double centre, double halfWidth,
                                           double prevCentre, double prevHalfWidth, double* cnt, double* s1, double* s2,
                                           double* ch) {
    clippedSumsBody(x, n, centre, halfWidth, prevCentre, prevHalfWidth, cnt, s1, s2, ch);
}

// Moments of the values inside [centre - halfWidth, centre + halfWidth], about `centre`. Also counts
// the values whose membership differs from that of the previous window (prevCentre, prevHalfWidth).
// The unweighted loop keeps four independent partial sums (fixed order: deterministic), so it is not
// bound by the latency of one chain of additions.
template <typename V>
Moments clippedMoments(const V* x, const double* w, std::size_t n, double centre, double halfWidth,
                       double prevCentre, double prevHalfWidth, std::size_t* changed) {
    Moments m;
    std::size_t nChanged = 0;
    if (!w) {
        double cnt[4] = {0, 0, 0, 0}, s1[4] = {0, 0, 0, 0}, s2[4] = {0, 0, 0, 0}, ch[4] = {0, 0, 0, 0};
        clippedSumsUnweighted(x, n, centre, halfWidth, prevCentre, prevHalfWidth, cnt, s1, s2, ch);
        m.n = m.sw = m.sw2 = (cnt[0] + cnt[1]) + (cnt[2] + cnt[3]);
        m.swd = (s1[0] + s1[1]) + (s1[2] + s1[3]);
        m.swd2 = (s2[0] + s2[1]) + (s2[2] + s2[3]);
        nChanged = std::size_t((ch[0] + ch[1]) + (ch[2] + ch[3]));
    } else {
        for (std::size_t i = 0; i < n; ++i) {
            double v = double(x[i]);
            double d = v - centre;
            bool in = std::fabs(d) <= halfWidth;
            bool wasIn = std::fabs(v - prevCentre) <= prevHalfWidth;
            nChanged += (in != wasIn);
            if (!in) continue;
            m.n += 1;
            m.sw += w[i];
            m.sw2 += w[i] * w[i];
            m.swd += w[i] * d;
            m.swd2 += w[i] * d * d;
        }
    }
    *changed = nChanged;
    return m;
}

// The k-th smallest (0-based) of the n values get(0..n-1) and, if wantNext and k + 1 < n, the
// (k+1)-th smallest (else NaN); exact, and the values are not permuted. Large inputs are bracketed
// first (Floyd-Rivest style): a strided sample's order statistics give a value interval [a, b] that
// holds rank k with overwhelming probability; one pass counts the values below a and gathers those in
// [a, b], and only those are selected. If the bracket misses, every value is gathered (same result).
template <typename R, typename Get>
std::pair<double, double> kthSmallest(std::size_t n, std::size_t k, bool wantNext, Get get) {
    constexpr std::size_t kBracketMin = 4096;
    std::vector<R> buf;
    auto finish = [&](std::size_t kk, bool haveAbove, R minAbove) {
        auto it = buf.begin() + std::ptrdiff_t(kk);
        std::nth_element(buf.begin(), it, buf.end());
        double next = kNaN;
        if (wantNext && k + 1 < n) {
            if (kk + 1 < buf.size())
                next = double(*std::min_element(it + 1, buf.end()));
            else if (haveAbove)
                next = double(minAbove);
        }
        return std::make_pair(double(*it), next);
    };
    if (n >= kBracketMin) {
        const std::size_t m = std::clamp<std::size_t>(n / 32, 256, 65536);
        const std::size_t step = n / m;
        std::vector<R> sample(m);
        for (std::size_t j = 0; j < m; ++j) sample[j] = get(j * step);
        const double pos = (double(k) + 0.5) / double(n) * double(m);
        const double spread = 3.0 * std::sqrt(double(m)) + 2.0;
        const double loPos = std::floor(pos - spread), hiPos = std::ceil(pos + spread);
        // Open ends of the bracket are infinite (the values are finite).
        R a = -std::numeric_limits<R>::infinity(), b = std::numeric_limits<R>::infinity();
        if (loPos >= 0) {
            auto it = sample.begin() + std::ptrdiff_t(loPos);
            std::nth_element(sample.begin(), it, sample.end());
            a = *it;
        }
        if (hiPos < double(m)) {
            auto it = sample.begin() + std::ptrdiff_t(hiPos);
            std::nth_element(sample.begin(), it, sample.end());
            b = *it;
        }
        // Branch-free: the comparisons are unpredictable (most values fall outside the bracket).
        std::unique_ptr<R[]> gathered(new R[n]);  // uninitialised: only the written pages are touched
        R* __restrict g = gathered.get();
        std::size_t below = 0, count = 0;
        R minAbove = std::numeric_limits<R>::infinity();
        for (std::size_t i = 0; i < n; ++i) {
            const R v = get(i);
            const bool lo = v < a, hi = v > b;
            below += lo;
            minAbove = std::min(minAbove, hi ? v : std::numeric_limits<R>::infinity());
            g[count] = v;
            count += !(lo || hi);
        }
        const bool haveAbove = below + count < n;
        buf.assign(g, g + count);
        if (k >= below && k < below + buf.size()) return finish(k - below, haveAbove, minAbove);
        buf.clear();
    }
    buf.resize(n);
    for (std::size_t i = 0; i < n; ++i) buf[i] = get(i);
    return finish(k, false, R(0));
}

// Type-7 quantile q of the n values get(i) (exact; does not permute).
template <typename R, typename Get>
double quantileOf(std::size_t n, double q, Get get) {
    if (n == 0) return kNaN;
    const double h = q * double(n - 1);
    auto k = std::size_t(std::floor(h));
    if (k >= n) k = n - 1;
    const double frac = h - double(k);
    const bool interpolate = frac > 0 && k + 1 < n;
    const auto [xk, xk1] = kthSmallest<R>(n, k, interpolate, get);
    return interpolate ? xk + frac * (xk1 - xk) : xk;
}

/// Mean, stdev, sum and meanError from the moments about 0 (m0) and, if kStatStdev, about m0's mean (m1).
void fillMoments(Statistics& s, unsigned props, const Moments& m0, const Moments& m1, bool weighted) {
    s.sum = m0.swd;
    if (!(props & kStatMean)) return;
    const double mean0 = m0.mean(0.0);
    s.mean = mean0;
    if (props & kStatStdev) {
        s.mean = m1.mean(mean0);
        s.stdev = std::sqrt(m1.variance());
    }
    if (weighted)
        s.meanError = 1.0 / std::sqrt(m0.sw);
    else if (props & kStatStdev)
        s.meanError = s.stdev / std::sqrt(m0.n);
}

unsigned impliedProperties(unsigned props) {
    // The clipped estimates start from the median and MAD; the standard deviation is only their
    // fallback when the MAD is 0, computed then (see computeFromValues), not on every call.
    if (props & kStatClipped) props |= kStatMedian | kStatMadSigma;
    if (props & kStatMadSigma) props |= kStatMedian;
    if (props & kStatStdev) props |= kStatMean;
    return props;
}

template <typename V>
Statistics computeFromValues(std::vector<V>& values, std::vector<double>& weights, V vmin, V vmax,
                             const StatisticsControl& ctrl) {
    Statistics s;
    const std::size_t n = values.size();
    const double* w = ctrl.weighted ? weights.data() : nullptr;
    s.count = std::int64_t(n);
    const unsigned props = impliedProperties(ctrl.properties);
    if (n == 0) {
        if (props & kStatQuantiles) s.quantiles.assign(ctrl.quantiles.size(), kNaN);
        return s;
    }
    if (props & kStatMinMax) {
        s.min = double(vmin);
        s.max = double(vmax);
    }
    if (props & (kStatMean | kStatSum)) {
        // First pass: the mean; second pass: the corrected two-pass variance about it.
        Moments m0 = momentsAbout(values.data(), w, n, 0.0);
        Moments m1;
        if (props & kStatStdev) m1 = momentsAbout(values.data(), w, n, m0.mean(0.0));
        fillMoments(s, props, m0, m1, w != nullptr);
    }
    if (props & (kStatMedian | kStatQuantiles)) {
        const V* data = values.data();
        auto get = [data](std::size_t i) { return data[i]; };
        if (props & kStatMedian) s.median = quantileOf<V>(n, 0.5, get);
        if (props & kStatQuantiles) {
            s.quantiles.clear();
            for (double q : ctrl.quantiles) s.quantiles.push_back(quantileOf<V>(n, q, get));
        }
    }
    if (props & kStatMadSigma) {
        const V* data = values.data();
        const double med = s.median;
        s.madSigma = kMadToSigma * quantileOf<double>(n, 0.5, [data, med](std::size_t i) { return std::fabs(double(data[i]) - med); });
    }
    if (props & kStatClipped) {
        double centre = s.median;
        double sigma = s.madSigma;
        if (!(sigma > 0)) {
            if (!(props & kStatStdev)) {
                const Moments m0 = momentsAbout(values.data(), w, n, 0.0);
                const Moments m1 = momentsAbout(values.data(), w, n, m0.mean(0.0));
                sigma = std::sqrt(m1.variance());
            } else {
                sigma = s.stdev;
            }
        }
        if (!(sigma >= 0)) sigma = 0;  // n == 1: stdev undefined
        // The "previous window" of iteration 1 contains everything, so the set comparison is only
        // used from iteration 2 on.
        double prevCentre = 0, prevHalf = std::numeric_limits<double>::infinity();
        // Until an iteration is accepted the estimate is the starting point.
        s.clippedMean = centre;
        s.clippedStdev = n >= 2 ? sigma : kNaN;
        s.clippedCount = std::int64_t(n);
        for (int it = 1; it <= ctrl.numIter; ++it) {
            double half = ctrl.numSigmaClip * sigma;
            std::size_t changed = 0;
            Moments m = clippedMoments(values.data(), w, n, centre, half, prevCentre, prevHalf, &changed);
            if (it > 1 && changed == 0) break;  // same set as last time: converged
            if (m.n < 2) break;                 // discard an iteration that keeps (almost) nothing
            double newCentre = m.mean(centre);
            double newSigma = std::sqrt(m.variance());
            s.clippedMean = newCentre;
            s.clippedStdev = newSigma;
            s.clippedCount = std::int64_t(m.n);
            s.clipIterations = it;
            bool small = ctrl.convergenceTolerance > 0 &&
                         std::fabs(newSigma - sigma) <= ctrl.convergenceTolerance * sigma;
            prevCentre = centre;
            prevHalf = half;
            centre = newCentre;
            sigma = newSigma;
            if (small) break;
        }
    }
    if (!(props & kStatSum)) s.sum = kNaN;
    return s;
}

/// Call f(value, weight) for every used pixel, row by row.
template <bool Weighted, typename T, typename F>
void forEachUsed(const Image<T>& image, const Mask* mask, const Image<float>* variance, MaskPixel bad, F&& f) {
    using V = typename GatherType<T>::type;
    if (!mask) bad = 0;
    for (int y = 0; y < image.height(); ++y) {
        const T* r = image.row(y);
        const MaskPixel* mr = bad ? mask->row(y) : nullptr;
        const float* vr = Weighted ? variance->row(y) : nullptr;
        for (int x = 0; x < image.width(); ++x) {
            V v = V(r[x]);
            if (!std::isfinite(v)) continue;
            if (bad && (mr[x] & bad)) continue;
            double w = 1.0;
            if constexpr (Weighted) {
                float var = vr[x];
                if (!(var > 0.0f) || !std::isfinite(var)) continue;
                w = 1.0 / double(var);
            }
            f(v, w);
        }
    }
}

template <bool Weighted, typename T>
Statistics statisticsOfImageImpl(const Image<T>& image, const Mask* mask, const Image<float>* variance,
                                 const StatisticsControl& ctrl) {
    using V = typename GatherType<T>::type;
    const unsigned props = impliedProperties(ctrl.properties);
    V vmin = std::numeric_limits<V>::infinity(), vmax = -std::numeric_limits<V>::infinity();
    if (!(props & (kStatMedian | kStatQuantiles))) {
        // Nothing needs selection: two passes over the pixels, no copy.
        Moments m0;
        forEachUsed<Weighted>(image, mask, variance, ctrl.badMask, [&](V v, double w) {
            m0.n += 1;
            m0.sw += w;
            m0.sw2 += w * w;
            m0.swd += w * double(v);
            vmin = std::min(vmin, v);
            vmax = std::max(vmax, v);
        });
        Statistics s;
        s.count = std::int64_t(m0.n);
        if (m0.n == 0) return s;
        if (props & kStatMinMax) {
            s.min = double(vmin);
            s.max = double(vmax);
        }
        Moments m1;
        if (props & kStatStdev) {
            const double mean = m0.mean(0.0);
            m1.n = m0.n;
            m1.sw = m0.sw;
            m1.sw2 = m0.sw2;
            forEachUsed<Weighted>(image, mask, variance, ctrl.badMask, [&](V v, double w) {
                double d = double(v) - mean;
                m1.swd += w * d;
                m1.swd2 += w * d * d;
            });
        }
        fillMoments(s, props, m0, m1, Weighted);
        if (!(props & kStatSum)) s.sum = kNaN;
        return s;
    }
    // Gather the used values (and weights) once; selection and clipping then work on the copy.
    const std::size_t area = std::size_t(image.bbox().area());
    std::vector<V> values;
    std::vector<double> weights;
    values.reserve(area);
    if (Weighted) weights.reserve(area);
    forEachUsed<Weighted>(image, mask, variance, ctrl.badMask, [&](V v, double w) {
        values.push_back(v);
        if constexpr (Weighted) weights.push_back(w);
        vmin = std::min(vmin, v);
        vmax = std::max(vmax, v);
    });
    return computeFromValues(values, weights, vmin, vmax, ctrl);
}

template <typename T>
Statistics statisticsOfImage(const Image<T>& image, const Mask* mask, const Image<float>* variance,
                             const StatisticsControl& ctrl) {
    ctrl.validate();
    if (mask && (mask->width() != image.width() || mask->height() != image.height()))
        throw LogicError("makeStatistics: mask and image shapes differ");
    if (ctrl.weighted && !variance)
        throw ConfigError("makeStatistics: weighted statistics need a variance plane");
    if (variance && (variance->width() != image.width() || variance->height() != image.height()))
        throw LogicError("makeStatistics: variance and image shapes differ");
    return ctrl.weighted ? statisticsOfImageImpl<true>(image, mask, variance, ctrl)
                         : statisticsOfImageImpl<false>(image, mask, variance, ctrl);
}

}  // namespace

Statistics::Statistics()
    : mean(kNaN), meanError(kNaN), stdev(kNaN), min(kNaN), max(kNaN), median(kNaN), madSigma(kNaN),
      clippedMean(kNaN), clippedStdev(kNaN) {}

void StatisticsControl::validate() const {
    if (!(numSigmaClip > 0) || !std::isfinite(numSigmaClip))
        throw ConfigError("StatisticsControl.numSigmaClip must be finite and > 0, got " + std::to_string(numSigmaClip));
    if (numIter < 1 || numIter > 1000)
        throw ConfigError("StatisticsControl.numIter must be in [1, 1000], got " + std::to_string(numIter));
    if (!(convergenceTolerance >= 0 && convergenceTolerance < 1))
        throw ConfigError("StatisticsControl.convergenceTolerance must be in [0, 1), got " +
                          std::to_string(convergenceTolerance));
    for (double q : quantiles)
        if (!(q >= 0 && q <= 1))
            throw ConfigError("StatisticsControl.quantiles entries must be in [0, 1], got " + std::to_string(q));
    if (properties & ~unsigned(kStatAll))
        throw ConfigError("StatisticsControl.properties has unknown bits");
}

template <typename T>
Statistics makeStatistics(const Image<T>& image, const StatisticsControl& ctrl) {
    return statisticsOfImage(image, nullptr, nullptr, ctrl);
}

template <typename T>
Statistics makeStatistics(const Image<T>& image, const Mask& mask, const StatisticsControl& ctrl) {
    return statisticsOfImage(image, &mask, nullptr, ctrl);
}

template <typename T>
Statistics makeStatistics(const Image<T>& image, const Mask* mask, const Image<float>* variance,
                          const StatisticsControl& ctrl) {
    return statisticsOfImage(image, mask, variance, ctrl);
}

template <typename T>
Statistics makeStatistics(const MaskedImage<T>& image, const StatisticsControl& ctrl) {
    return statisticsOfImage(image.image(), &image.mask(), &image.variance(), ctrl);
}

Statistics makeStatistics(std::span<const double> values, const StatisticsControl& ctrl,
                          std::span<const double> weights) {
    ctrl.validate();
    if (!weights.empty() && weights.size() != values.size())
        throw LogicError("makeStatistics: weights and values have different lengths");
    if (ctrl.weighted && weights.empty())
        throw ConfigError("makeStatistics: weighted statistics need weights");
    std::vector<double> v;
    std::vector<double> w;
    v.reserve(values.size());
    if (ctrl.weighted) w.reserve(values.size());
    double vmin = std::numeric_limits<double>::infinity(), vmax = -vmin;
    for (std::size_t i = 0; i < values.size(); ++i) {
        double x = values[i];
        if (!std::isfinite(x)) continue;
        if (ctrl.weighted) {
            if (!(weights[i] > 0) || !std::isfinite(weights[i])) continue;
            w.push_back(weights[i]);
        }
        v.push_back(x);
        vmin = std::min(vmin, x);
        vmax = std::max(vmax, x);
    }
    return computeFromValues(v, w, vmin, vmax, ctrl);
}

#define DRP_INSTANTIATE_STATISTICS(T)                                                                      \
    template Statistics makeStatistics<T>(const Image<T>&, const StatisticsControl&);                      \
    template Statistics makeStatistics<T>(const Image<T>&, const Mask&, const StatisticsControl&);         \
    template Statistics makeStatistics<T>(const Image<T>&, const Mask*, const Image<float>*,               \
                                          const StatisticsControl&);

DRP_INSTANTIATE_STATISTICS(float)
DRP_INSTANTIATE_STATISTICS(double)
DRP_INSTANTIATE_STATISTICS(std::int32_t)
DRP_INSTANTIATE_STATISTICS(std::uint16_t)
template Statistics makeStatistics<float>(const MaskedImage<float>&, const StatisticsControl&);
template Statistics makeStatistics<double>(const MaskedImage<double>&, const StatisticsControl&);

#undef DRP_INSTANTIATE_STATISTICS

}  // namespace drp
