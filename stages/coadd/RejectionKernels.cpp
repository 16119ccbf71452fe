#include "stages/coadd/RejectionKernels.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "core/Simd.h"

namespace drp::rejection {

namespace {
constexpr float kBig = std::numeric_limits<float>::max();  // |x| <= kBig: finite, without a branch

// b ? x : y through bit masks. GCC (-ftrapping-math) does not if-convert a ?: whose arms hold an FP operation
// that might trap, so such loops would not vectorise; the masks make the select explicit (same values).
inline float pick(bool b, float x, float y) {
    const std::uint32_t m = 0u - std::uint32_t(b);
    return std::bit_cast<float>((std::bit_cast<std::uint32_t>(x) & m) | (std::bit_cast<std::uint32_t>(y) & ~m));
}

template <int NC>
inline __attribute__((always_inline)) int residualRowN(float* __restrict r, float* __restrict rv,
                                                         float* __restrict ok, const float* __restrict image,
                                                         const float* __restrict variance,
                                                         const float* __restrict valid, const float* __restrict coef,
                                                         double v, float resFactor, bool perPixel, int n) {
    const float varMin = perPixel ? 0.0f : -std::numeric_limits<float>::infinity();
    int count = 0;
    for (int x = 0; x < n; ++x) {
        const float* c = coef + std::size_t(x) * NC;
        double p = double(c[NC - 1]);  // Horner, unrolled (a loop here blocks if-conversion)
        if constexpr (NC > 1) p = p * v + double(c[NC - 2]);
        if constexpr (NC > 2) p = p * v + double(c[NC - 3]);
        if constexpr (NC > 3) p = p * v + double(c[NC - 4]);
        const bool use = (valid[x] > 0.0f) & (variance[x] > varMin) & (std::fabs(c[0]) <= kBig);
        r[x] = pick(use, float(double(image[x]) - p), 0.0f);
        rv[x] = pick(use, variance[x] * resFactor, 0.0f);
        ok[x] = pick(use, 1.0f, 0.0f);
        count += use ? 1 : 0;
    }
    return count;
}
}  // namespace

DRP_SIMD_CLONES int scaledRow(float* __restrict o, float* __restrict ov, const float* __restrict in,
                              const float* __restrict var, const MaskPixel* __restrict mask, MaskPixel excluded,
                              double s, double s2c, int n) {
    int bad = 0;
    for (int x = 0; x < n; ++x) {
        const bool use = ((mask[x] & excluded) == 0) & (std::fabs(in[x]) <= kBig) & (var[x] >= 0.0f) & (var[x] <= kBig);
        o[x] = pick(use, float(s * double(in[x])), 0.0f);
        ov[x] = pick(use, float(double(var[x]) * s2c), 0.0f);
        bad += use ? 0 : 1;
    }
    return bad;
}

DRP_SIMD_CLONES int residualRow(float* r, float* rv, float* ok, const float* image, const float* variance,
                                const float* valid, const float* coef, int nc, double v, float resFactor,
                                bool perPixel, int n) {
    switch (nc) {
        case 1: return residualRowN<1>(r, rv, ok, image, variance, valid, coef, v, resFactor, perPixel, n);
        case 2: return residualRowN<2>(r, rv, ok, image, variance, valid, coef, v, resFactor, perPixel, n);
        case 3: return residualRowN<3>(r, rv, ok, image, variance, valid, coef, v, resFactor, perPixel, n);
        default: return residualRowN<4>(r, rv, ok, image, variance, valid, coef, v, resFactor, perPixel, n);
    }
}

DRP_SIMD_CLONES void coverRow(float* __restrict r, float* __restrict sv, const float* __restrict smoothedOk,
                              const float* __restrict ok, float minCover, int n) {
    for (int x = 0; x < n; ++x) {
        const float c = pick(smoothedOk[x] < 0.999f, smoothedOk[x], 1.0f);
        const bool use = (ok[x] > 0.0f) & (smoothedOk[x] >= minCover) & (sv[x] > 0.0f);
        const float cc = pick(use, c, 1.0f);
        r[x] = r[x] / cc;
        sv[x] = pick(use, sv[x] / (cc * cc), 0.0f);
    }
}

DRP_SIMD_CLONES void scatterRow(float* __restrict sum, float* __restrict mx, std::uint16_t* __restrict count,
                                const float* __restrict r, const float* __restrict sv, float clip2, int n) {
    for (int x = 0; x < n; ++x) {
        const bool use = sv[x] > 0.0f;
        const float chi2 = std::min(r[x] * r[x] / pick(use, sv[x], 1.0f), clip2);
        sum[x] += pick(use, chi2, 0.0f);
        mx[x] = pick(use, std::max(mx[x], chi2), mx[x]);
        count[x] = std::uint16_t(count[x] + (use ? 1 : 0));
    }
}

DRP_SIMD_CLONES void inflateRow(float* __restrict sv, const float* __restrict sum, const float* __restrict mx,
                                const std::uint16_t* __restrict count, int n) {
    for (int x = 0; x < n; ++x) {
        const float f = std::max(1.0f, (sum[x] - mx[x]) / float(std::max(int(count[x]), 2) - 1));
        sv[x] = pick(count[x] >= 3, sv[x] * f, sv[x]);
    }
}

DRP_SIMD_CLONES int sharpCandidateRow(std::uint8_t* __restrict c, const float* __restrict row,
                                      const float* __restrict left, const float* __restrict right,
                                      const float* __restrict up, const float* __restrict dn,
                                      const float* __restrict v, float k2, int n) {
    int count = 0;
    for (int x = 0; x < n; ++x) {
        const float e = row[x] - 0.25f * (left[x] + right[x] + up[x] + dn[x]);
        const bool hit = (v[x] > 0.0f) & (e > 0.0f) & (e * e > k2 * v[x]);
        c[x] = std::uint8_t(hit);
        count += hit ? 1 : 0;
    }
    return count;
}

DRP_SIMD_CLONES int markRow(std::int32_t* __restrict mk, const float* __restrict d, const float* __restrict v,
                            float lo2, float hi2, int n) {
    int seeds = 0;
    for (int x = 0; x < n; ++x) {
        const float d2 = d[x] * d[x];
        const bool pos = (v[x] > 0.0f) & (d[x] > 0.0f);
        const int a = int(pos & (d2 > lo2 * v[x]));
        const int b = int(pos & (d2 > hi2 * v[x]));
        mk[x] = a | (b << 1);
        seeds += b;
    }
    return seeds;
}

}  // namespace drp::rejection
