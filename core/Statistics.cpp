#include "core/Statistics.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "core/Error.h"
#include "core/Simd.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DRP_STATS_X86 1
#include <immintrin.h>
#else
#define DRP_STATS_X86 0
#endif

namespace drp {

template <typename T>
T selectKth(T* a, std::size_t n, std::size_t k) {
    std::size_t lo = 0, hi = n;  // the k-th is in [lo, hi)
    // Median-of-three pivots shrink the range geometrically on any but contrived data; past this many
    // rounds the rest is left to std::nth_element (introselect: O(n log n) at worst).
    int rounds = 2 * int(std::bit_width(n));
    while (hi - lo > 16) {
        if (--rounds < 0) {
            std::nth_element(a + lo, a + k, a + hi);
            return a[k];
        }
        T p0 = a[lo], p1 = a[lo + (hi - lo) / 2], p2 = a[hi - 1];
        if (p1 < p0) std::swap(p0, p1);
        if (p2 < p1) std::swap(p1, p2);
        if (p1 < p0) std::swap(p0, p1);
        const T pivot = p1;
        // [lo, j) < pivot
        std::size_t j = lo;
        for (std::size_t i = lo; i < hi; ++i) {
            const T v = a[i];
            const bool less = v < pivot;
            a[i] = a[j];
            a[j] = v;
            j += less;
        }
        if (k < j) {
            hi = j;
            continue;
        }
        if (j > lo) {
            lo = j;
            continue;
        }
        // Nothing was below the pivot (the minimum, maybe repeated): split off the values equal to it,
        // [j, j2) (the pivot is one of the values, so j2 > j and the range shrinks).
        std::size_t j2 = j;
        for (std::size_t i = j; i < hi; ++i) {
            const T v = a[i];
            const bool notAbove = !(pivot < v);
            a[i] = a[j2];
            a[j2] = v;
            j2 += notAbove;
        }
        if (k < j2) return a[k];
        lo = j2;
    }
    for (std::size_t i = lo + 1; i < hi; ++i) {  // insertion sort of the last few
        const T v = a[i];
        std::size_t m = i;
        while (m > lo && v < a[m - 1]) {
            a[m] = a[m - 1];
            --m;
        }
        a[m] = v;
    }
    return a[k];
}

template float selectKth<float>(float*, std::size_t, std::size_t);
template double selectKth<double>(double*, std::size_t, std::size_t);

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
// fixed order, so deterministic, and element-wise, so the AVX2 clone gives the same bits. Written with
// GCC vector types (four doubles: one AVX2 register, two SSE2 ones) because the plain loop was left
// scalar with branches. A value outside the window adds +0.0 where in * d gave -0.0 for d < 0: the
// same sums, which start at +0.0 and so never become -0.0.
using V4d = double __attribute__((vector_size(32)));
using V4i = long long __attribute__((vector_size(32)));
using V4f = float __attribute__((vector_size(16)));

template <typename V>
[[gnu::always_inline]] inline void load4(const V* x, V4d& out) {
    if constexpr (std::is_same_v<V, float>) {
        V4f f;
        std::memcpy(&f, x, sizeof f);
        out = __builtin_convertvector(f, V4d);
    } else {
        std::memcpy(&out, x, sizeof out);
    }
}

template <typename V>
[[gnu::always_inline]] inline void clippedSumsBody(const V* __restrict x, std::size_t n, double centre, double halfWidth,
                                                   double prevCentre, double prevHalfWidth, double* __restrict cnt,
                                                   double* __restrict s1, double* __restrict s2, double* __restrict ch) {
    const V4i absMask = {0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL, 0x7fffffffffffffffLL};
    const V4i oneBits = (V4i)(V4d{1.0, 1.0, 1.0, 1.0});
    const V4d c = {centre, centre, centre, centre}, hw = {halfWidth, halfWidth, halfWidth, halfWidth};
    const V4d pc = {prevCentre, prevCentre, prevCentre, prevCentre};
    const V4d phw = {prevHalfWidth, prevHalfWidth, prevHalfWidth, prevHalfWidth};
    V4d aCnt = {cnt[0], cnt[1], cnt[2], cnt[3]}, aS1 = {s1[0], s1[1], s1[2], s1[3]};
    V4d aS2 = {s2[0], s2[1], s2[2], s2[3]}, aCh = {ch[0], ch[1], ch[2], ch[3]};
    std::size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V4d v;
        load4(x + i, v);
        const V4d d = v - c;
        const V4d e = v - pc;
        const V4i in = (V4d)((V4i)d & absMask) <= hw;
        const V4i wasIn = (V4d)((V4i)e & absMask) <= phw;
        const V4d dm = (V4d)((V4i)d & in);
        aCh += (V4d)((in ^ wasIn) & oneBits);
        aCnt += (V4d)(in & oneBits);
        aS1 += dm;
        aS2 += dm * dm;
    }
    for (int l = 0; l < 4; ++l) {
        cnt[l] = aCnt[l];
        s1[l] = aS1[l];
        s2[l] = aS2[l];
        ch[l] = aCh[l];
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


// The float interval [lo, hi] holding exactly the floats v with |double(v) - centre| <= halfWidth
// (v - centre rounds monotonically in v, so they form an interval). False if not found in a few steps
// (the caller then tests in double).
bool floatWindow(double centre, double halfWidth, float* lo, float* hi) {
    constexpr float inf = std::numeric_limits<float>::infinity(), big = std::numeric_limits<float>::max();
    if (std::isinf(halfWidth) && halfWidth > 0) {
        *lo = -inf;
        *hi = inf;
        return true;
    }
    if (!std::isfinite(centre) || !std::isfinite(halfWidth) || halfWidth < 0) return false;
    auto g = [centre](float v) { return double(v) - centre; };
    auto clampF = [](double v) { return float(std::clamp(v, -double(big), double(big))); };
    constexpr int kMaxSteps = 64;
    // hi: the largest float with g <= halfWidth.
    float h = clampF(centre + halfWidth);
    int steps = 0;
    if (g(h) <= halfWidth) {
        while (h < big && g(std::nextafter(h, inf)) <= halfWidth && ++steps < kMaxSteps) h = std::nextafter(h, inf);
    } else {
        while (g(h) > halfWidth && ++steps < kMaxSteps) {
            if (h <= -big) return false;
            h = std::nextafter(h, -inf);
        }
    }
    // lo: the smallest float with g >= -halfWidth.
    float l = clampF(centre - halfWidth);
    if (g(l) >= -halfWidth) {
        while (l > -big && g(std::nextafter(l, -inf)) >= -halfWidth && ++steps < kMaxSteps) l = std::nextafter(l, -inf);
    } else {
        while (g(l) < -halfWidth && ++steps < kMaxSteps) {
            if (l >= big) return false;
            l = std::nextafter(l, inf);
        }
    }
    if (steps >= kMaxSteps) return false;
    *lo = l;
    *hi = h;
    return true;
}

#if DRP_STATS_X86
// clippedSumsBody for floats, eight at a time with the window tests in float (floatWindow bounds:
// the same sets). The double sums keep their lanes (value i to lane i % 4, in order) and the counts
// are exact integers, so the results are those of clippedSumsBody, bit for bit.
__attribute__((target("avx2"))) void clippedSumsFloatAvx2(const float* x, std::size_t n, double centre,
                                                          double halfWidth, double prevCentre, double prevHalfWidth,
                                                          float lo, float hi, float plo, float phi, double* cnt,
                                                          double* s1, double* s2, double* ch) {
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi), vplo = _mm256_set1_ps(plo),
                 vphi = _mm256_set1_ps(phi);
    const __m256d c = _mm256_set1_pd(centre);
    __m256d aS1 = _mm256_loadu_pd(s1), aS2 = _mm256_loadu_pd(s2);
    __m256i iCnt = _mm256_setzero_si256(), iCh = _mm256_setzero_si256();
    std::size_t i = 0;
    // Eight int32 lane counters: at most 2^31 - 1 each.
    const std::size_t nVec = std::min<std::size_t>(n, std::size_t(0x7fffffff) * 8);
    for (; i + 8 <= nVec; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 in = _mm256_and_ps(_mm256_cmp_ps(v, vlo, _CMP_GE_OQ), _mm256_cmp_ps(v, vhi, _CMP_LE_OQ));
        const __m256 was = _mm256_and_ps(_mm256_cmp_ps(v, vplo, _CMP_GE_OQ), _mm256_cmp_ps(v, vphi, _CMP_LE_OQ));
        iCnt = _mm256_sub_epi32(iCnt, _mm256_castps_si256(in));
        iCh = _mm256_sub_epi32(iCh, _mm256_castps_si256(_mm256_xor_ps(in, was)));
        const __m256i inI = _mm256_castps_si256(in);
        const __m256d dLo = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), c);
        const __m256d mLo = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(inI)));
        const __m256d dmLo = _mm256_and_pd(dLo, mLo);
        aS1 = _mm256_add_pd(aS1, dmLo);
        aS2 = _mm256_add_pd(aS2, _mm256_mul_pd(dmLo, dmLo));
        const __m256d dHi = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), c);
        const __m256d mHi = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(inI, 1)));
        const __m256d dmHi = _mm256_and_pd(dHi, mHi);
        aS1 = _mm256_add_pd(aS1, dmHi);
        aS2 = _mm256_add_pd(aS2, _mm256_mul_pd(dmHi, dmHi));
    }
    _mm256_storeu_pd(s1, aS1);
    _mm256_storeu_pd(s2, aS2);
    alignas(32) std::int32_t nc[8], nh[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(nc), iCnt);
    _mm256_store_si256(reinterpret_cast<__m256i*>(nh), iCh);
    std::int64_t totalCnt = 0, totalCh = 0;
    for (int l = 0; l < 8; ++l) totalCnt += nc[l], totalCh += nh[l];
    cnt[0] += double(totalCnt);
    ch[0] += double(totalCh);
    // The rest (i is a multiple of 4, so the lanes continue as in clippedSumsBody).
    clippedSumsBody(x + i, n - i, centre, halfWidth, prevCentre, prevHalfWidth, cnt, s1, s2, ch);
}
#endif

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
        bool done = false;
#if DRP_STATS_X86
        if constexpr (std::is_same_v<V, float>) {
            float lo, hi, plo, phi;
            if (cpuHasAvx2() && floatWindow(centre, halfWidth, &lo, &hi) &&
                floatWindow(prevCentre, prevHalfWidth, &plo, &phi)) {
                clippedSumsFloatAvx2(x, n, centre, halfWidth, prevCentre, prevHalfWidth, lo, hi, plo, phi, cnt, s1, s2,
                                     ch);
                done = true;
            }
        }
#endif
        if (!done) clippedSumsUnweighted(x, n, centre, halfWidth, prevCentre, prevHalfWidth, cnt, s1, s2, ch);
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

// ---- Bracket passes: one pass over n values that counts those below a, finds the smallest above b
// and gathers those in [a, b] (in their order) into out, which has room for n + 8 values. The AVX2
// versions compare eight floats (four doubles) at once and left-pack the kept ones with a permutation
// from a table; they are pure data movement and exact comparisons, so they return exactly what the
// scalar loops return (the smallest value above b is a minimum, independent of order; a zero is
// returned as +0 by both).
struct PackTables {
    alignas(32) std::int32_t f8[256][8];  // float lanes: the indices of the set bits, in order
    alignas(32) std::int32_t d4[16][8];   // double lanes as pairs of 32-bit lanes
    std::uint8_t pop[256];
};
const PackTables& packTables() {
    static const PackTables t = [] {
        PackTables p{};
        for (int m = 0; m < 256; ++m) {
            int c = 0;
            for (int j = 0; j < 8; ++j)
                if (m & (1 << j)) p.f8[m][c++] = j;
            p.pop[m] = std::uint8_t(c);
        }
        for (int m = 0; m < 16; ++m) {
            int c = 0;
            for (int j = 0; j < 4; ++j)
                if (m & (1 << j)) {
                    p.d4[m][c++] = 2 * j;
                    p.d4[m][c++] = 2 * j + 1;
                }
        }
        return p;
    }();
    return t;
}

template <typename R>
R positiveZero(R v) {
    return v == R(0) ? R(0) : v;
}

// Scalar bracket pass over the values get(0..n-1).
template <typename R, typename Get>
std::size_t bracketPassScalar(std::size_t n, Get get, R a, R b, R* __restrict out, std::size_t* below, R* minAbove) {
    std::size_t nb = 0, count = 0;
    R mn = std::numeric_limits<R>::infinity();
    for (std::size_t i = 0; i < n; ++i) {
        const R v = get(i);
        const bool lo = v < a, hi = v > b;
        nb += lo;
        mn = std::min(mn, hi ? v : std::numeric_limits<R>::infinity());
        out[count] = v;
        count += !(lo || hi);
    }
    *below = nb;
    *minAbove = positiveZero(mn);
    return count;
}

#if DRP_STATS_X86
// Values x[i].
__attribute__((target("avx2"))) std::size_t bracketPassFloatAvx2(const float* x, std::size_t n, float a, float b,
                                                                  float* out, std::size_t* below, float* minAbove) {
    const PackTables& t = packTables();
    const __m256 va = _mm256_set1_ps(a), vb = _mm256_set1_ps(b);
    const __m256 inf = _mm256_set1_ps(std::numeric_limits<float>::infinity());
    __m256 vmin = inf;
    std::size_t nb = 0, count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        const __m256 lo = _mm256_cmp_ps(v, va, _CMP_LT_OQ);
        const __m256 hi = _mm256_cmp_ps(v, vb, _CMP_GT_OQ);
        const unsigned ml = unsigned(_mm256_movemask_ps(lo)), mh = unsigned(_mm256_movemask_ps(hi));
        nb += t.pop[ml];
        vmin = _mm256_min_ps(vmin, _mm256_blendv_ps(inf, v, hi));
        const unsigned mi = ~(ml | mh) & 0xffu;
        const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.f8[mi]));
        _mm256_storeu_ps(out + count, _mm256_permutevar8x32_ps(v, perm));
        count += t.pop[mi];
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, vmin);
    float mn = std::numeric_limits<float>::infinity();
    for (float l : lanes) mn = std::min(mn, l);
    std::size_t tb = 0;
    float tmin = 0;
    count += bracketPassScalar<float>(n - i, [x, i](std::size_t j) { return x[i + j]; }, a, b, out + count, &tb, &tmin);
    *below = nb + tb;
    *minAbove = positiveZero(std::min(mn, tmin));
    return count;
}

// Values |double(x[i]) - centre|.
__attribute__((target("avx2"))) std::size_t bracketPassAbsDevAvx2(const float* x, std::size_t n, double centre, double a,
                                                                   double b, double* out, std::size_t* below,
                                                                   double* minAbove) {
    const PackTables& t = packTables();
    const __m256d va = _mm256_set1_pd(a), vb = _mm256_set1_pd(b), c = _mm256_set1_pd(centre);
    const __m256d sign = _mm256_set1_pd(-0.0);
    const __m256d inf = _mm256_set1_pd(std::numeric_limits<double>::infinity());
    __m256d vmin = inf;
    std::size_t nb = 0, count = 0, i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m256d v = _mm256_andnot_pd(sign, _mm256_sub_pd(_mm256_cvtps_pd(_mm_loadu_ps(x + i)), c));
        const __m256d lo = _mm256_cmp_pd(v, va, _CMP_LT_OQ);
        const __m256d hi = _mm256_cmp_pd(v, vb, _CMP_GT_OQ);
        const unsigned ml = unsigned(_mm256_movemask_pd(lo)), mh = unsigned(_mm256_movemask_pd(hi));
        nb += t.pop[ml];
        vmin = _mm256_min_pd(vmin, _mm256_blendv_pd(inf, v, hi));
        const unsigned mi = ~(ml | mh) & 0xfu;
        const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.d4[mi]));
        _mm256_storeu_pd(out + count, _mm256_castps_pd(_mm256_permutevar8x32_ps(_mm256_castpd_ps(v), perm)));
        count += t.pop[mi];
    }
    alignas(32) double lanes[4];
    _mm256_store_pd(lanes, vmin);
    double mn = std::numeric_limits<double>::infinity();
    for (double l : lanes) mn = std::min(mn, l);
    std::size_t tb = 0;
    double tmin = 0;
    count += bracketPassScalar<double>(
        n - i, [x, i, centre](std::size_t j) { return std::fabs(double(x[i + j]) - centre); }, a, b, out + count, &tb, &tmin);
    *below = nb + tb;
    *minAbove = positiveZero(std::min(mn, tmin));
    return count;
}
// The usable pixels of one row of a float image (finite, and no bit of `bad` in the mask row mr if mr
// is not null), left-packed into out (room for w + 8 values); returns how many. Exactly the scalar
// loop's result.
__attribute__((target("avx2"))) std::size_t gatherUsedFloatAvx2(const float* r, const MaskPixel* mr, MaskPixel bad,
                                                                 int w, float* out) {
    const PackTables& t = packTables();
    const __m256i expBits = _mm256_set1_epi32(0x7f800000);
    const __m256i badBits = _mm256_set1_epi32(bad);
    const __m256i zero = _mm256_setzero_si256();
    std::size_t count = 0;
    int x = 0;
    for (; x + 8 <= w; x += 8) {
        const __m256 v = _mm256_loadu_ps(r + x);
        const __m256i nonFinite = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), expBits), expBits);
        unsigned keep = ~unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(nonFinite))) & 0xffu;
        if (mr) {
            const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mr + x));
            const __m256i clean = _mm256_cmpeq_epi32(_mm256_and_si256(m, badBits), zero);
            keep &= unsigned(_mm256_movemask_ps(_mm256_castsi256_ps(clean)));
        }
        const __m256i perm = _mm256_load_si256(reinterpret_cast<const __m256i*>(t.f8[keep]));
        _mm256_storeu_ps(out + count, _mm256_permutevar8x32_ps(v, perm));
        count += t.pop[keep];
    }
    for (; x < w; ++x) {
        const float v = r[x];
        out[count] = v;
        count += std::size_t(std::isfinite(v) & (!mr || (mr[x] & bad) == 0));
    }
    return count;
}
#endif

// The bracket pass over the values x[i] of a float array.
struct FloatValuesPass {
    const float* x;
    std::size_t operator()(std::size_t n, float a, float b, float* out, std::size_t* below, float* minAbove) const {
#if DRP_STATS_X86
        if (cpuHasAvx2()) return bracketPassFloatAvx2(x, n, a, b, out, below, minAbove);
#endif
        const float* p = x;
        return bracketPassScalar<float>(n, [p](std::size_t i) { return p[i]; }, a, b, out, below, minAbove);
    }
};

// The bracket pass over the absolute deviations |double(x[i]) - centre| of a float array.
struct AbsDevPass {
    const float* x;
    double centre;
    std::size_t operator()(std::size_t n, double a, double b, double* out, std::size_t* below, double* minAbove) const {
#if DRP_STATS_X86
        if (cpuHasAvx2()) return bracketPassAbsDevAvx2(x, n, centre, a, b, out, below, minAbove);
#endif
        const float* p = x;
        const double c = centre;
        return bracketPassScalar<double>(n, [p, c](std::size_t i) { return std::fabs(double(p[i]) - c); }, a, b, out,
                                         below, minAbove);
    }
};

// The generic bracket pass over get(i).
template <typename R, typename Get>
struct GenericPass {
    Get get;
    std::size_t operator()(std::size_t n, R a, R b, R* out, std::size_t* below, R* minAbove) const {
        return bracketPassScalar<R>(n, get, a, b, out, below, minAbove);
    }
};

// The values x[i] of an array of R (the gathered values of an outer bracket), and their bracket pass.
template <typename R>
struct ArrayGet {
    const R* x;
    R operator()(std::size_t i) const { return x[i]; }
};
template <typename R>
struct ArrayPass {
    const R* x;
    std::size_t operator()(std::size_t n, R a, R b, R* out, std::size_t* below, R* minAbove) const {
        if constexpr (std::is_same_v<R, float>) {
            return FloatValuesPass{x}(n, a, b, out, below, minAbove);
        } else {
            const R* p = x;
            return bracketPassScalar<R>(n, [p](std::size_t i) { return p[i]; }, a, b, out, below, minAbove);
        }
    }
};

// Inputs of at least kBracketMin values are bracketed; a bracket's gathered values, when at least
// kRebracketMin, are bracketed again (a vectorised pass costs less than selecting among all the values:
// a 128 x 128 background bin gathers ~3,000 values at the first level, ~800 at the second).
constexpr std::size_t kBracketMin = 4096;
constexpr std::size_t kRebracketMin = 1024;

// The k-th smallest (0-based) of the n values get(0..n-1) and, if wantNext and k + 1 < n, the
// (k+1)-th smallest (else NaN); exact, and the values are not permuted. Large inputs are bracketed
// first (Floyd-Rivest style): a strided sample's order statistics give a value interval [a, b] that
// holds rank k with overwhelming probability; one pass (`pass`, one of the bracket passes above over
// the same values as get) counts the values below a and gathers those in [a, b], and only those are
// selected (bracketed again when they are many). If the bracket misses, every value is gathered (same
// result).
template <typename R, typename Get, typename Pass>
std::pair<double, double> kthSmallest(std::size_t n, std::size_t k, bool wantNext, Get get, const Pass& pass,
                                      std::size_t bracketMin = kBracketMin) {
    auto finish = [&](R* first, R* last, std::size_t kk, bool haveAbove, R minAbove) {
        R* it = first + kk;
        selectKth(first, std::size_t(last - first), kk);
        double next = kNaN;
        if (wantNext && k + 1 < n) {
            if (it + 1 < last)
                next = double(*std::min_element(it + 1, last));
            else if (haveAbove)
                next = double(minAbove);
        }
        return std::make_pair(double(*it), next);
    };
    if (n >= bracketMin) {
        const std::size_t m = std::clamp<std::size_t>(n / 32, 256, 65536);
        const std::size_t step = n / m;
        std::vector<R> sample(m);
        for (std::size_t j = 0; j < m; ++j) sample[j] = get(j * step);
        const double pos = (double(k) + 0.5) / double(n) * double(m);
        const double spread = 2.0 * std::sqrt(double(m)) + 2.0;
        const double loPos = std::floor(pos - spread), hiPos = std::ceil(pos + spread);
        // Open ends of the bracket are infinite (the values are finite).
        R a = -std::numeric_limits<R>::infinity(), b = std::numeric_limits<R>::infinity();
        if (loPos >= 0) {
            a = selectKth(sample.data(), m, std::size_t(loPos));
        }
        if (hiPos < double(m)) {
            b = selectKth(sample.data(), m, std::size_t(hiPos));
        }
        std::unique_ptr<R[]> gathered(new R[n + 8]);  // uninitialised: only the written pages are touched
        std::size_t below = 0;
        R minAbove = std::numeric_limits<R>::infinity();
        const std::size_t count = pass(n, a, b, gathered.get(), &below, &minAbove);
        const bool haveAbove = below + count < n;
        if (k >= below && k < below + count) {
            // Again within the gathered values, if they are many and the bracket at least halved them (many
            // equal values would not shrink); the value after them, if asked for, is then minAbove.
            if (count < kRebracketMin || 2 * count > n)
                return finish(gathered.get(), gathered.get() + count, k - below, haveAbove, minAbove);
            const R* g = gathered.get();
            auto [value, next] =
                kthSmallest<R>(count, k - below, wantNext, ArrayGet<R>{g}, ArrayPass<R>{g}, kRebracketMin);
            if (wantNext && k + 1 < n && k - below + 1 >= count) next = haveAbove ? double(minAbove) : kNaN;
            return std::make_pair(value, next);
        }
    }
    std::vector<R> buf(n);
    for (std::size_t i = 0; i < n; ++i) buf[i] = get(i);
    return finish(buf.data(), buf.data() + n, k, false, R(0));
}

template <typename R, typename Get>
std::pair<double, double> kthSmallest(std::size_t n, std::size_t k, bool wantNext, Get get) {
    return kthSmallest<R>(n, k, wantNext, get, GenericPass<R, Get>{get});
}

// Type-7 quantile q of the n values get(i) (exact; does not permute).
template <typename R, typename Get, typename Pass>
double quantileOf(std::size_t n, double q, Get get, const Pass& pass) {
    if (n == 0) return kNaN;
    const double h = q * double(n - 1);
    auto k = std::size_t(std::floor(h));
    if (k >= n) k = n - 1;
    const double frac = h - double(k);
    const bool interpolate = frac > 0 && k + 1 < n;
    const auto [xk, xk1] = kthSmallest<R>(n, k, interpolate, get, pass);
    return interpolate ? xk + frac * (xk1 - xk) : xk;
}
template <typename R, typename Get>
double quantileOf(std::size_t n, double q, Get get) {
    return quantileOf<R>(n, q, get, GenericPass<R, Get>{get});
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

/// The control of a clipping start: the median and MAD alone.
const StatisticsControl& medianAndMad() {
    static const StatisticsControl c = [] {
        StatisticsControl k;
        k.properties = kStatMedian | kStatMadSigma;
        return k;
    }();
    return c;
}

template <typename V>
Statistics computeFromValues(std::span<const V> values, const std::vector<double>& weights, V vmin, V vmax,
                             const StatisticsControl& ctrl) {
    Statistics s;
    const std::size_t n = values.size();
    const double* w = ctrl.weighted ? weights.data() : nullptr;
    s.count = std::int64_t(n);
    // A strided start (StatisticsControl::clipStartStride): the median and MAD of the subset, for the clipping only.
    const std::size_t stride = std::size_t(ctrl.clipStartStride);
    const bool stridedStart = stride > 1 && (ctrl.properties & kStatClipped) &&
                              !(ctrl.properties & (kStatMedian | kStatMadSigma)) && n >= 2 * stride;
    unsigned props = impliedProperties(ctrl.properties);
    if (stridedStart) props &= ~unsigned(kStatMedian | kStatMadSigma);
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
        if constexpr (std::is_same_v<V, float>) {
            if (props & kStatMedian) s.median = quantileOf<V>(n, 0.5, get, FloatValuesPass{data});
        } else {
            if (props & kStatMedian) s.median = quantileOf<V>(n, 0.5, get);
        }
        if (props & kStatQuantiles) {
            s.quantiles.clear();
            for (double q : ctrl.quantiles) s.quantiles.push_back(quantileOf<V>(n, q, get));
        }
    }
    if (props & kStatMadSigma) {
        const V* data = values.data();
        const double med = s.median;
        auto dev = [data, med](std::size_t i) { return std::fabs(double(data[i]) - med); };
        if constexpr (std::is_same_v<V, float>)
            s.madSigma = kMadToSigma * quantileOf<double>(n, 0.5, dev, AbsDevPass{data, med});
        else
            s.madSigma = kMadToSigma * quantileOf<double>(n, 0.5, dev);
    }
    if (props & kStatClipped) {
        double centre = s.median;
        double sigma = s.madSigma;
        if (stridedStart) {
            thread_local std::vector<V> subset;
            subset.resize((n + stride - 1) / stride);
            for (std::size_t i = 0, j = 0; i < n; i += stride, ++j) subset[j] = values[i];
            const Statistics start = computeFromValues<V>(std::span<const V>(subset), {}, V(0), V(0), medianAndMad());
            centre = start.median;
            sigma = start.madSigma;
        }
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
    if constexpr (!Weighted) {
        // Branch-free compaction straight into an uninitialised buffer (no push_back, and min/max only
        // when asked for): the same values in the same order as forEachUsed.
        std::unique_ptr<V[]> buffer(new V[area + 8]);
        V* __restrict out = buffer.get();
        std::size_t k = 0;
        const MaskPixel bad = mask ? ctrl.badMask : 0;
        const bool minMax = (props & kStatMinMax) != 0;
        for (int y = 0; y < image.height(); ++y) {
            const T* r = image.row(y);
            const int w = image.width();
            const MaskPixel* mr = bad ? mask->row(y) : nullptr;
            int x = 0;
#if DRP_STATS_X86
            if constexpr (std::is_same_v<T, float>) {
                if (cpuHasAvx2()) {
                    k += gatherUsedFloatAvx2(r, mr, bad, w, out + k);
                    x = w;
                }
            }
#endif
            if (bad) {
                for (; x < w; ++x) {
                    const V v = V(r[x]);
                    out[k] = v;
                    k += std::size_t(std::isfinite(v) & ((mr[x] & bad) == 0));
                }
            } else {
                for (; x < w; ++x) {
                    const V v = V(r[x]);
                    out[k] = v;
                    k += std::size_t(std::isfinite(v));
                }
            }
        }
        if (minMax)
            for (std::size_t i = 0; i < k; ++i) {
                vmin = std::min(vmin, out[i]);
                vmax = std::max(vmax, out[i]);
            }
        return computeFromValues(std::span<const V>(out, k), weights, vmin, vmax, ctrl);
    }
    values.reserve(area);
    if (Weighted) weights.reserve(area);
    forEachUsed<Weighted>(image, mask, variance, ctrl.badMask, [&](V v, double w) {
        values.push_back(v);
        if constexpr (Weighted) weights.push_back(w);
        vmin = std::min(vmin, v);
        vmax = std::max(vmax, v);
    });
    return computeFromValues(std::span<const V>(values), weights, vmin, vmax, ctrl);
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
    if (clipStartStride < 1 || clipStartStride > 64)
        throw ConfigError("StatisticsControl.clipStartStride must be in [1, 64], got " + std::to_string(clipStartStride));
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
    return computeFromValues(std::span<const double>(v), w, vmin, vmax, ctrl);
}

double quantile(std::span<const double> values, double q) {
    if (!(q >= 0 && q <= 1)) throw ConfigError("quantile: q must be in [0, 1], got " + std::to_string(q));
    std::vector<double> v;
    v.reserve(values.size());
    for (double x : values)
        if (std::isfinite(x)) v.push_back(x);
    const double* data = v.data();
    return quantileOf<double>(v.size(), q, [data](std::size_t i) { return data[i]; });
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
