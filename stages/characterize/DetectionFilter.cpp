#include "stages/characterize/DetectionFilter.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "core/Convolution.h"
#include "core/Error.h"
#include "core/Kernel.h"
#include "core/RowKernels.h"
#include "core/Simd.h"

namespace drp::detection {

namespace {

// Row kernels of the streaming filter (element-wise; DRP_SIMD_CLONES: same bits with and without AVX2).
/// The usable pixels' value and variance, 0 elsewhere (bad mask bit, non-finite value or variance,
/// negative variance). |x| <= FLT_MAX is isfinite(x) without a branch (false for NaN).
DRP_SIMD_CLONES void usableRow(float* __restrict d, float* __restrict v, const float* __restrict iv,
                               const float* __restrict vv, const MaskPixel* __restrict mv, MaskPixel bad, int n) {
    constexpr float big = std::numeric_limits<float>::max();
    for (int x = 0; x < n; ++x) {
        const bool ok = ((mv[x] & bad) == 0) & (std::fabs(iv[x]) <= big) & (vv[x] >= 0.0f) & (vv[x] <= big);
        d[x] = ok ? iv[x] : 0.0f;
        v[x] = ok ? vv[x] : 0.0f;
    }
}
/// s = d / sqrt(v) where v > 0 (else s is left as it is). GCC does not vectorise the conditional sqrt
/// (errno and trapping-math), so it is written with SSE vectors (sqrtps and divps round exactly as the
/// scalar sqrt and division: the same bits).
#if defined(__SSE2__) && defined(__GNUC__) && !defined(__clang__)
#define DRP_DETECTION_AVX2 1
/// significanceRow's first n - n % 8 elements, 8 at a time with the same operations (vsqrtps, vdivps round
/// as sqrtps, divps: the same bits).
__attribute__((target("avx2"))) int significanceRowAvx2(float* __restrict s, const float* __restrict d,
                                                        const float* __restrict v, int n) {
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        const __m256 vv = _mm256_loadu_ps(v + x), dd = _mm256_loadu_ps(d + x), ss = _mm256_loadu_ps(s + x);
        const __m256 pos = _mm256_cmp_ps(vv, zero, _CMP_GT_OQ);
        const __m256 q = _mm256_div_ps(dd, _mm256_sqrt_ps(_mm256_blendv_ps(one, vv, pos)));
        _mm256_storeu_ps(s + x, _mm256_blendv_ps(ss, q, pos));
    }
    return x;
}
void significanceRow(float* __restrict s, const float* __restrict d, const float* __restrict v, int n) {
    typedef float v4sf __attribute__((vector_size(16)));
    int x = cpuHasAvx2() ? significanceRowAvx2(s, d, v, n) : 0;
    for (; x + 4 <= n; x += 4) {
        v4sf vv, dd, ss;
        std::memcpy(&vv, v + x, sizeof vv);
        std::memcpy(&dd, d + x, sizeof dd);
        std::memcpy(&ss, s + x, sizeof ss);
        const auto pos = vv > v4sf{0.0f, 0.0f, 0.0f, 0.0f};
        const v4sf one{1.0f, 1.0f, 1.0f, 1.0f};
        const v4sf vc = pos ? vv : one;
        const v4sf q = dd / __builtin_ia32_sqrtps(vc);
        ss = pos ? q : ss;
        std::memcpy(s + x, &ss, sizeof ss);
    }
    for (; x < n; ++x) s[x] = v[x] > 0.0f ? d[x] / std::sqrt(v[x]) : s[x];
}
#else
void significanceRow(float* __restrict s, const float* __restrict d, const float* __restrict v, int n) {
    for (int x = 0; x < n; ++x) s[x] = v[x] > 0.0f ? d[x] / std::sqrt(v[x]) : s[x];
}
#endif

/// Number of x with v[x] > 0.
DRP_SIMD_CLONES int countPositive(const float* __restrict v, int n) {
    int k = 0;
    for (int x = 0; x < n; ++x) k += v[x] > 0.0f ? 1 : 0;
    return k;
}
/// Number of x with v[x] == u.
DRP_SIMD_CLONES int countEqual(const float* __restrict v, int n, float u) {
    int k = 0;
    for (int x = 0; x < n; ++x) k += v[x] == u ? 1 : 0;
    return k;
}
/// Adds to acc[x] the chi^2 bound term of pixel x: d^2 / v for a usable pixel with d > 0 (|d| > 0 with
/// `both`; infinite for zero variance), else 0. Unusable as in usableRow. Written with SSE vectors, like
/// significanceRow (GCC does not vectorise the division's selected operands).
#ifdef DRP_DETECTION_AVX2
/// addChi2Row's first n - n % 8 elements, 8 at a time with the same operations (the same bits).
__attribute__((target("avx2"))) int addChi2RowAvx2(float* __restrict acc, const float* __restrict iv,
                                                   const float* __restrict vv, const MaskPixel* __restrict mv,
                                                   MaskPixel bad, int n, float lower) {
    static_assert(sizeof(MaskPixel) == 4);
    constexpr float big = std::numeric_limits<float>::max();
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f), vbig = _mm256_set1_ps(big),
                 vnbig = _mm256_set1_ps(-big), vlower = _mm256_set1_ps(lower);
    const __m256i vbad = _mm256_set1_epi32(bad), izero = _mm256_setzero_si256();
    int x = 0;
    for (; x + 8 <= n; x += 8) {
        const __m256 d = _mm256_loadu_ps(iv + x), v = _mm256_loadu_ps(vv + x), a = _mm256_loadu_ps(acc + x);
        const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mv + x));
        __m256 counts = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(m, vbad), izero));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(d, vnbig, _CMP_GE_OQ));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(d, vbig, _CMP_LE_OQ));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(v, zero, _CMP_GE_OQ));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(v, vbig, _CMP_LE_OQ));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(d, vlower, _CMP_GT_OQ));
        counts = _mm256_and_ps(counts, _mm256_cmp_ps(d, zero, _CMP_NEQ_UQ));
        const __m256 dc = _mm256_blendv_ps(zero, d, counts), vc = _mm256_blendv_ps(one, v, counts);
        _mm256_storeu_ps(acc + x, _mm256_add_ps(a, _mm256_div_ps(_mm256_mul_ps(dc, dc), vc)));
    }
    return x;
}
#endif
void addChi2Row(float* __restrict acc, const float* __restrict iv, const float* __restrict vv,
                const MaskPixel* __restrict mv, MaskPixel bad, int n, bool both) {
    constexpr float big = std::numeric_limits<float>::max();
    const float lower = both ? -big : 0.0f;  // d must exceed this (and not be 0) to count
    int x = 0;
#if defined(__SSE2__) && defined(__GNUC__) && !defined(__clang__)
    if (cpuHasAvx2()) x = addChi2RowAvx2(acc, iv, vv, mv, bad, n, lower);
    typedef float v4sf __attribute__((vector_size(16)));
    typedef MaskPixel v4si __attribute__((vector_size(16)));
    static_assert(sizeof(MaskPixel) == 4);
    const v4sf zero{0.0f, 0.0f, 0.0f, 0.0f}, one{1.0f, 1.0f, 1.0f, 1.0f}, vbig{big, big, big, big},
        vlower{lower, lower, lower, lower};
    const v4si vbad{bad, bad, bad, bad}, izero{0, 0, 0, 0};
    for (; x + 4 <= n; x += 4) {
        v4sf d, v, a;
        v4si m;
        std::memcpy(&d, iv + x, sizeof d);
        std::memcpy(&v, vv + x, sizeof v);
        std::memcpy(&m, mv + x, sizeof m);
        std::memcpy(&a, acc + x, sizeof a);
        const auto counts = ((m & vbad) == izero) & (d >= -vbig) & (d <= vbig) & (v >= zero) & (v <= vbig) &
                            (d > vlower) & (d != zero);
        const v4sf dc = counts ? d : zero, vc = counts ? v : one;
        a += dc * dc / vc;
        std::memcpy(acc + x, &a, sizeof a);
    }
#endif
    for (; x < n; ++x) {
        const float d = iv[x], v = vv[x];
        const bool counts = ((mv[x] & bad) == 0) & (std::fabs(d) <= big) & (v >= 0.0f) & (v <= big) & (d > lower) &
                            (d != 0.0f);
        const float dc = counts ? d : 0.0f, vc = counts ? v : 1.0f;
        acc[x] += dc * dc / vc;
    }
}

bool isSymmetric(const std::vector<float>& v, int centre) {
    if (2 * centre + 1 != int(v.size())) return false;
    for (std::size_t i = 0; i < v.size(); ++i)
        if (v[i] != v[v.size() - 1 - i]) return false;
    return true;
}


/// acc[x] += k[c - t] (up(t)[x] + down(t)[x]) for t = 1 .. c in that order (a symmetric kernel's folded taps
/// about its centre c), four taps per pass over acc (rowk::addFoldedTaps4): the same bits as one
/// rowk::addFoldedTap per tap.
template <typename Up, typename Down>
void addFoldedTaps(float* acc, int c, int n, const std::vector<float>& k, const Up& up, const Down& down) {
    int t = 1;
    for (; t + 3 <= c; t += 4)
        rowk::addFoldedTaps4(acc, up(t), down(t), k[std::size_t(c - t)], up(t + 1), down(t + 1), k[std::size_t(c - t - 1)],
                             up(t + 2), down(t + 2), k[std::size_t(c - t - 2)], up(t + 3), down(t + 3),
                             k[std::size_t(c - t - 3)], n);
    for (; t <= c; ++t) rowk::addFoldedTap(acc, up(t), down(t), n, k[std::size_t(c - t)]);
}

/// The streaming matched filter over a box of output pixels (local indices inside the valid box): each
/// input row is masked and filtered along x once into a ring of kernel-height rows, and each output row
/// is the y filter over the ring, then significance = filtered / sqrt(filtered variance). Same
/// arithmetic, term for term, as convolved(..., Edge::Nan, Method::Direct) of zeroed copies
/// (core/Convolution.cpp), without full-size intermediate images, except that a symmetric kernel (the
/// Gaussian) is applied with its taps folded pairwise, k_t (a[x+t] + a[x-t]), which halves the
/// multiplications and changes only the rounding. Every output pixel depends only on its own window, in
/// the same order of operations, so filtering a sub-box gives the same bits as filtering everything.
class RegionFilter {
public:
    RegionFilter(const MaskedImageF& image, MaskPixel bad, const FilterTaps& taps)
        : image_(image), bad_(bad), t_(taps), rowD_(std::size_t(image.width())), rowV_(std::size_t(image.width())) {}

    /// Start filtering the output box `out`: the input rows above its first row go into the ring.
    void begin(const Box2I& out) {
        out_ = out;
        next_ = out.minY();
        const int nx = out.width(), kh = t_.kh;
        ringD_.resize(std::size_t(kh) * std::size_t(nx));
        ringV_.resize(std::size_t(kh) * std::size_t(nx));
        flatSlot_.assign(std::size_t(kh), 0);
        flatValue_.assign(std::size_t(kh), 0.0f);
        accD_.resize(std::size_t(nx));
        accV_.resize(std::size_t(nx));
        const int reach = std::max(t_.c.x, t_.kw - 1 - t_.c.x);
        lo_ = std::max(0, out.minX() - reach);
        hi_ = std::min(image_.width() - 1, out.maxX() + reach);
        const int down = kh - 1 - t_.c.y;
        for (int yIn = out.minY() - down; yIn < out.minY() + t_.c.y; ++yIn) horizontal(yIn);
    }

    /// The significance of the next output rows of the box, up to row yTo (local) included, into row
    /// y - bandY0 of `band` (at the box's columns); with `sigmas`, every 61st positive filtered noise sigma in
    /// raster order (untilSample carries the count from call to call).
    void rows(int yTo, ImageF& band, int bandY0, NoiseSample* sigmas, int& untilSample) {
        const int nx = out_.width(), x0 = out_.minX(), kh = t_.kh;
        const Point2I c = t_.c;
        const int down = kh - 1 - c.y;
        auto flatAt = [&](int yIn) { return flatSlot_[slotIndex(yIn)] != 0; };
        auto flatValueAt = [&](int yIn) { return flatValue_[slotIndex(yIn)]; };
        for (int y = next_; y <= std::min(yTo, out_.maxY()); ++y) {
            horizontal(y + c.y);
            float* __restrict ad = accD_.data();
            float* __restrict av = accV_.data();
            bool flat = true;  // every input row of this output row has a flat filtered variance
            for (int yIn = y - down; yIn <= y + c.y && flat; ++yIn) flat = flatAt(yIn);
            if (flat) std::fill(av, av + nx, foldY2(y, flatValueAt));
            if (t_.symmetric) {
                const float c1 = t_.ky[std::size_t(c.y)], c2 = t_.ky2[std::size_t(c.y)];
                rowk::setTap(ad, slot(ringD_, y), nx, c1);
                if (!flat) rowk::setTap(av, slot(ringV_, y), nx, c2);
                addFoldedTaps(ad, c.y, nx, t_.ky, [&](int t) { return slot(ringD_, y + t); },
                              [&](int t) { return slot(ringD_, y - t); });
                if (!flat)
                    addFoldedTaps(av, c.y, nx, t_.ky2, [&](int t) { return slot(ringV_, y + t); },
                                  [&](int t) { return slot(ringV_, y - t); });
            } else {
                std::fill(ad, ad + nx, 0.0f);
                if (!flat) std::fill(av, av + nx, 0.0f);
                for (int j = 0; j < kh; ++j) {
                    const float k1 = t_.ky[std::size_t(j)], k2 = t_.ky2[std::size_t(j)];
                    rowk::addTap(ad, slot(ringD_, y - j + c.y), nx, k1);
                    if (!flat) rowk::addTap(av, slot(ringV_, y - j + c.y), nx, k2);
                }
            }
            significanceRow(band.row(y - bandY0) + x0, ad, av, nx);
            if (sigmas) sample(av, nx, flat, *sigmas, untilSample);
            next_ = y + 1;
        }
    }

    /// The whole box `out` at once (begin + rows).
    void run(const Box2I& out, ImageF& band, int bandY0, NoiseSample* sigmas, int& untilSample) {
        begin(out);
        rows(out.maxY(), band, bandY0, sigmas, untilSample);
    }

private:
    std::size_t slotIndex(int yIn) const { return std::size_t(((yIn % t_.kh) + t_.kh) % t_.kh); }
    float* slot(std::vector<float>& ring, int yIn) const {
        return ring.data() + slotIndex(yIn) * std::size_t(out_.width());
    }
    /// Input row yIn (local), masked and filtered along x, into its ring slot.
    void horizontal(int yIn) {
        const int nx = out_.width(), x0 = out_.minX(), lo = lo_, hi = hi_;
        const Point2I c = t_.c;
        const float* iv = image_.image().row(yIn);
        const float* vv = image_.variance().row(yIn);
        const MaskPixel* mv = image_.mask().row(yIn);
        usableRow(rowD_.data() + lo, rowV_.data() + lo, iv + lo, vv + lo, mv + lo, bad_, hi - lo + 1);
        float* __restrict dd = slot(ringD_, yIn);
        float* __restrict dv = slot(ringV_, yIn);
        const std::size_t s = slotIndex(yIn);
        // A flat variance over the row's inputs (no weight map, no unusable pixel): every output is
        // the same fold of the same value, computed once in the same order (the same bits).
        const float u = rowV_[std::size_t(lo)];
        flatSlot_[s] = countEqual(rowV_.data() + lo, hi - lo + 1, u) == hi - lo + 1;
        if (flatSlot_[s]) {
            flatValue_[s] = foldX2(u);
            std::fill(dv, dv + nx, flatValue_[s]);
        }
        if (t_.symmetric) {  // Gaussian: fold the taps pairwise (half the multiplications)
            const float* __restrict pd = rowD_.data() + x0;
            const float* __restrict pv = rowV_.data() + x0;
            const float c1 = t_.kx[std::size_t(c.x)], c2 = t_.kx2[std::size_t(c.x)];
            rowk::setTap(dd, pd, nx, c1);
            if (!flatSlot_[s]) rowk::setTap(dv, pv, nx, c2);
            addFoldedTaps(dd, c.x, nx, t_.kx, [&](int t) { return pd + t; }, [&](int t) { return pd - t; });
            if (!flatSlot_[s])
                addFoldedTaps(dv, c.x, nx, t_.kx2, [&](int t) { return pv + t; }, [&](int t) { return pv - t; });
            return;
        }
        std::fill(dd, dd + nx, 0.0f);
        if (!flatSlot_[s]) std::fill(dv, dv + nx, 0.0f);
        for (int i = 0; i < t_.kw; ++i) {
            const float k1 = t_.kx[std::size_t(i)], k2 = t_.kx2[std::size_t(i)];
            const float* __restrict sd = rowD_.data() + (x0 - i + c.x);
            const float* __restrict sv = rowV_.data() + (x0 - i + c.x);
            rowk::addTap(dd, sd, nx, k1);
            if (!flatSlot_[s]) rowk::addTap(dv, sv, nx, k2);
        }
    }

    /// The x filter of the variance (kernel^2) at a pixel whose inputs all equal u, in the order of
    /// rowk::setTap / addFoldedTap (or addTap): the same bits as the row kernels give.
    float foldX2(float u) const {
        const Point2I c = t_.c;
        if (t_.symmetric) {
            float a = t_.kx2[std::size_t(c.x)] * u;
            for (int t = 1; t <= c.x; ++t) a += t_.kx2[std::size_t(c.x - t)] * (u + u);
            return a;
        }
        float a = 0.0f;
        for (int i = 0; i < t_.kw; ++i) a += t_.kx2[std::size_t(i)] * u;
        return a;
    }
    /// The y filter of the variance at output row y when every input row is flat (value(yIn)), in the
    /// order of the row kernels.
    template <typename F>
    float foldY2(int y, const F& value) const {
        const Point2I c = t_.c;
        if (t_.symmetric) {
            float a = t_.ky2[std::size_t(c.y)] * value(y);
            for (int t = 1; t <= c.y; ++t) a += t_.ky2[std::size_t(c.y - t)] * (value(y + t) + value(y - t));
            return a;
        }
        float a = 0.0f;
        for (int j = 0; j < t_.kh; ++j) a += t_.ky2[std::size_t(j)] * value(y - j + c.y);
        return a;
    }

    /// Every 61st filtered variance > 0 in raster order, as a sigma; a row with no zero variance (the usual
    /// case) jumps straight from sample to sample, and a flat row (every av[x] the same) adds them as one run.
    static void sample(const float* av, int nx, bool flat, NoiseSample& sigmas, int& untilSample) {
        if (nx <= 0) return;
        if (flat ? av[0] > 0.0f : countPositive(av, nx) == nx) {
            if (flat) {
                sigmas.addRepeated(std::sqrt(av[0]), untilSample > nx ? 0 : (nx - untilSample) / 61 + 1);
            } else {
                for (int x = untilSample - 1; x < nx; x += 61) sigmas.add(std::sqrt(av[x]));
            }
            untilSample = untilSample > nx ? untilSample - nx : 61 - (nx - untilSample) % 61;
            return;
        }
        for (int x = 0; x < nx; ++x)
            if (av[x] > 0.0f && --untilSample == 0) {
                sigmas.add(std::sqrt(av[x]));
                untilSample = 61;
            }
    }

    const MaskedImageF& image_;
    MaskPixel bad_;
    const FilterTaps& t_;
    std::vector<float> rowD_, rowV_, ringD_, ringV_, accD_, accV_;
    std::vector<char> flatSlot_;    ///< per ring slot: the row's variance inputs were all equal
    std::vector<float> flatValue_;  ///< and its x-filtered variance
    Box2I out_;                     ///< the output box being filtered
    int next_ = 0;                  ///< its next output row
    int lo_ = 0, hi_ = 0;           ///< the input columns it reads
};

/// The significance with the filter truncated at the image boundary, over the band along the edges where
/// the whole kernel does not fit (outside `valid`; everything when `valid` is empty), so that a source there
/// is detected too. Pixels beyond the boundary count as unusable, like masked ones: the value and the
/// variance are sums over the same pixels and the result is still N(0, 1) on pure noise (NaN where no
/// usable pixel is reached). Separable, in double: each input row is filtered along x (zero beyond the
/// boundary) only at the columns an output needs (every column for the rows near the top and bottom, the
/// side bands' columns for the others), then along y. The row filters are made at construction; row()
/// then gives any output row.
class EdgeBand {
public:
    EdgeBand(const MaskedImageF& image, MaskPixel bad, const FilterTaps& t, const Box2I& valid)
        : t_(t), valid_(valid), w_(image.width()), h_(image.height()), fullIndex_(std::size_t(image.height()), -1) {
        constexpr float big = std::numeric_limits<float>::max();
        const int w = w_, h = h_;
        const int downY = t.kh - 1 - t.c.y;  // output row y reads input rows [y - downY, y + c.y]
        const int reach = std::max(t.c.x, t.kw - 1 - t.c.x);  // and input columns within reach of x
        if (!valid.empty()) {
            for (int x = 0; x < std::min(w, valid.minX()); ++x) sideCols_.push_back(x);
            for (int x = std::max(0, valid.maxX() + 1); x < w; ++x) sideCols_.push_back(x);
        }
        // An input row is needed in full width when a band output row reads it.
        std::vector<char> fullRow(std::size_t(h), 0);
        for (int y = 0; y < h; ++y)
            if (bandRow(y))
                for (int yy = std::max(0, y - downY); yy <= std::min(h - 1, y + t.c.y); ++yy) fullRow[std::size_t(yy)] = 1;
        // Row-filtered value and variance: full rows in `full` (w per row), side columns in `side`.
        std::int64_t nFull = 0;
        for (int y = 0; y < h; ++y)
            if (fullRow[std::size_t(y)]) fullIndex_[std::size_t(y)] = nFull++;
        fullD_.resize(std::size_t(nFull) * std::size_t(w));
        fullV_.resize(fullD_.size());
        const std::size_t ns = sideCols_.size();
        sideD_.resize(std::size_t(h) * ns);
        sideV_.resize(sideD_.size());
        std::vector<double> ud(static_cast<std::size_t>(w)), uv(static_cast<std::size_t>(w));
        auto rowFilterAt = [&](int x, double& d, double& v) {
            d = 0.0;
            v = 0.0;
            for (int i = 0; i < t.kw; ++i) {
                const int xx = x - i + t.c.x;
                if (xx < 0 || xx >= w) continue;
                d += double(t.kx[std::size_t(i)]) * ud[std::size_t(xx)];
                v += double(t.kx2[std::size_t(i)]) * uv[std::size_t(xx)];
            }
        };
        for (int yy = 0; yy < h; ++yy) {
            if (!fullRow[std::size_t(yy)] && ns == 0) continue;
            const float* iv = image.image().row(yy);
            const float* vv = image.variance().row(yy);
            const MaskPixel* mv = image.mask().row(yy);
            auto usableSpan = [&](int x0, int x1) {  // [x0, x1)
                for (int x = std::max(0, x0); x < std::min(w, x1); ++x) {
                    const bool ok = ((mv[x] & bad) == 0) & (std::fabs(iv[x]) <= big) & (vv[x] >= 0.0f) & (vv[x] <= big);
                    ud[std::size_t(x)] = ok ? double(iv[x]) : 0.0;
                    uv[std::size_t(x)] = ok ? double(vv[x]) : 0.0;
                }
            };
            if (fullRow[std::size_t(yy)]) {
                usableSpan(0, w);
            } else {  // only the side bands' inputs
                usableSpan(0, valid.minX() + reach);
                usableSpan(std::max(valid.minX() + reach, valid.maxX() + 1 - reach), w);
            }
            if (fullRow[std::size_t(yy)]) {
                // rowFilterAt at every column, tap by tap over the row (vectorised; each output still sums its
                // taps in increasing i, skipping those beyond the boundary: the same bits).
                double* __restrict fd = fullD_.data() + std::size_t(fullIndex_[std::size_t(yy)]) * std::size_t(w);
                double* __restrict fv = fullV_.data() + std::size_t(fullIndex_[std::size_t(yy)]) * std::size_t(w);
                std::fill(fd, fd + w, 0.0);
                std::fill(fv, fv + w, 0.0);
                for (int i = 0; i < t.kw; ++i) {
                    const int shift = t.c.x - i;  // output x reads column x + shift
                    const int xa = std::max(0, -shift), xb = std::min(w, w - shift);
                    const double k1 = double(t.kx[std::size_t(i)]), k2 = double(t.kx2[std::size_t(i)]);
                    const double* __restrict pd = ud.data();
                    const double* __restrict pv = uv.data();
                    for (int x = xa; x < xb; ++x) {
                        fd[x] += k1 * pd[x + shift];
                        fv[x] += k2 * pv[x + shift];
                    }
                }
            }
            for (std::size_t k = 0; k < ns; ++k)
                rowFilterAt(sideCols_[k], sideD_[std::size_t(yy) * ns + k], sideV_[std::size_t(yy) * ns + k]);
        }
    }

    /// Output row y (local): the band's pixels of it (all of a row outside the valid box's rows, else the side
    /// columns) into out[x].
    void row(int y, float* out) const {
        const int w = w_;
        const std::size_t ns = sideCols_.size();
        if (bandRow(y)) {
            for (int x = 0; x < w; ++x)
                out[x] = column(y, [&](int yy, double& d, double& v) {
                    const std::size_t i = std::size_t(fullIndex_[std::size_t(yy)]) * std::size_t(w) + std::size_t(x);
                    d = fullD_[i];
                    v = fullV_[i];
                });
            return;
        }
        for (std::size_t k = 0; k < ns; ++k)
            out[sideCols_[k]] = column(y, [&](int yy, double& d, double& v) {
                d = sideD_[std::size_t(yy) * ns + k];
                v = sideV_[std::size_t(yy) * ns + k];
            });
    }

private:
    bool bandRow(int y) const { return valid_.empty() || y < valid_.minY() || y > valid_.maxY(); }
    /// The y filter at output row y of row-filtered values at(yy).
    template <typename At>
    float column(int y, const At& at) const {
        double d = 0.0, v = 0.0;
        for (int j = 0; j < t_.kh; ++j) {
            const int yy = y - j + t_.c.y;
            if (yy < 0 || yy >= h_) continue;
            double rd, rv;
            at(yy, rd, rv);
            d += double(t_.ky[std::size_t(j)]) * rd;
            v += double(t_.ky2[std::size_t(j)]) * rv;
        }
        return v > 0.0 ? float(d / std::sqrt(v)) : std::numeric_limits<float>::quiet_NaN();
    }

    const FilterTaps& t_;
    Box2I valid_;
    int w_, h_;
    std::vector<int> sideCols_;
    std::vector<std::int64_t> fullIndex_;
    std::vector<double> fullD_, fullV_, sideD_, sideV_;
};

/// The filtered variance, with RegionFilter's arithmetic, at a sparse grid of output pixels: every `step`-th
/// column of every `step`-th row of `valid` (local; starting step / 2 in), each positive one added to `sigmas`
/// as a sigma in raster order. Each grid row's input rows are read one after the other (the windows of all its
/// grid columns at once), not window by window, which would miss the cache and the TLB on every row of every
/// window.
void sparseNoiseSample(const MaskedImageF& image, MaskPixel bad, const FilterTaps& t, const Box2I& valid, int step,
                       NoiseSample& sigmas) {
    constexpr float big = std::numeric_limits<float>::max();
    const int kw = t.kw, kh = t.kh, cx = t.c.x, cy = t.c.y;
    std::vector<int> gx;
    for (int x = valid.minX() + step / 2; x <= valid.maxX(); x += step) gx.push_back(x);
    const std::size_t ng = gx.size();
    std::vector<float> u(static_cast<std::size_t>(kw)), hsum(ng * std::size_t(kh));
    for (int y = valid.minY() + step / 2; y <= valid.maxY(); y += step) {
        const int y0 = y + cy - (kh - 1);  // the windows' first row (they are inside the image)
        for (int r = 0; r < kh; ++r) {
            const float* iv = image.image().row(y0 + r);
            const float* vv = image.variance().row(y0 + r);
            const MaskPixel* mv = image.mask().row(y0 + r);
            for (std::size_t g = 0; g < ng; ++g) {
                const int x0 = gx[g] + cx - (kw - 1);  // u[i] is column x0 + i
                for (int i = 0; i < kw; ++i) {
                    const int xx = x0 + i;
                    const bool ok = ((mv[xx] & bad) == 0) & (std::fabs(iv[xx]) <= big) & (vv[xx] >= 0.0f) & (vv[xx] <= big);
                    u[std::size_t(i)] = ok ? vv[xx] : 0.0f;
                }
                float a;
                if (t.symmetric) {  // column x is u[cx], x +- k is u[cx +- k]
                    a = t.kx2[std::size_t(cx)] * u[std::size_t(cx)];
                    for (int k = 1; k <= cx; ++k) a += t.kx2[std::size_t(cx - k)] * (u[std::size_t(cx + k)] + u[std::size_t(cx - k)]);
                } else {  // tap i reads column x - i + cx, u[kw - 1 - i]
                    a = 0.0f;
                    for (int i = 0; i < kw; ++i) a += t.kx2[std::size_t(i)] * u[std::size_t(kw - 1 - i)];
                }
                hsum[g * std::size_t(kh) + std::size_t(r)] = a;
            }
        }
        for (std::size_t g = 0; g < ng; ++g) {
            const float* hv = hsum.data() + g * std::size_t(kh);  // row y0 + r is hv[r]
            float a;
            if (t.symmetric) {
                a = t.ky2[std::size_t(cy)] * hv[cy];
                for (int k = 1; k <= cy; ++k) a += t.ky2[std::size_t(cy - k)] * (hv[cy + k] + hv[cy - k]);
            } else {
                a = 0.0f;
                for (int j = 0; j < kh; ++j) a += t.ky2[std::size_t(j)] * hv[kh - 1 - j];
            }
            if (a > 0.0f) sigmas.add(std::sqrt(a));
        }
    }
}

/// Pixels a side of the blocks of the Cauchy-Schwarz bound.
constexpr int kBoundBlock = 8;
/// Output rows per band of the pruned filter.
constexpr int kBandRows = 32;

/// The regions that can reach `threshold` (local boxes inside `valid`), or nullopt when filtering
/// everything is cheaper. Bound: with a = the normalised kernel, b = the squared kernel (the variance's),
/// Cauchy-Schwarz gives for every output pixel
///     |sum a d| / sqrt(sum b v) <= max(a / sqrt(b)) sqrt(sum over its window of d^2 / v),
/// the sum over usable pixels with d > 0 (|d| > 0 for negative detection too). The chi^2 terms are summed
/// in blocks of kBoundBlock^2 pixels, and a block of output pixels whose window's blocks sum below
/// (0.95 threshold / max(a / sqrt(b)))^2 cannot reach the threshold (the 5% covers the rounding of
/// both sides): it is not filtered and its significance stays NaN, which neither forms nor vetoes a
/// footprint or peak (every pixel at or above the threshold is filtered, with the same bits).
std::optional<std::vector<Box2I>> prunedRegions(const MaskedImageF& image, MaskPixel bad, const FilterTaps& t,
                                                const Box2I& valid, double threshold, bool both) {
    double ax = 0, ay = 0;
    for (std::size_t i = 0; i < t.kx.size(); ++i) {
        if (t.kx[i] == 0.0f) continue;
        if (!(t.kx2[i] > 0.0f)) return std::nullopt;
        ax = std::max(ax, double(t.kx[i]) / std::sqrt(double(t.kx2[i])));
    }
    for (std::size_t j = 0; j < t.ky.size(); ++j) {
        if (t.ky[j] == 0.0f) continue;
        if (!(t.ky2[j] > 0.0f)) return std::nullopt;
        ay = std::max(ay, double(t.ky[j]) / std::sqrt(double(t.ky2[j])));
    }
    const double limit = 0.95 * threshold / (ax * ay);
    const double limit2 = limit * limit;
    // A window's chi^2 is ~ its pixel count / 2 (/ 1 with both signs) in pure noise: a threshold that
    // noise alone can reach over the blocks of a window makes everything a candidate.
    constexpr int B = kBoundBlock;
    const int w = image.width(), h = image.height();
    const int nbx = (w + B - 1) / B, nby = (h + B - 1) / B;
    const int reachLo = t.kw - 1 - t.c.x, reachHi = t.c.x, reachLoY = t.kh - 1 - t.c.y, reachHiY = t.c.y;
    const double windowPixels =
        double(((B - 1 + reachLo + reachHi) / B + 2) * B) * double(((B - 1 + reachLoY + reachHiY) / B + 2) * B);
    const double noiseChi2 = (both ? 1.0 : 0.5) * windowPixels;  // expected over a window's blocks
    if (limit2 < 2.0 * noiseChi2) return std::nullopt;
    // Prefix sums of the block chi^2 over the block grid: P[(by) * (nbx + 1) + bx] = sum of blocks < (bx, by).
    // A block above the limit on its own (or infinite: a usable pixel of zero variance) makes every window
    // it is in a candidate: it is counted in H instead, so P only adds bounded values (no inf - inf, no
    // cancellation of huge sums).
    std::vector<double> P(std::size_t(nbx + 1) * std::size_t(nby + 1), 0.0);
    std::vector<std::int32_t> H(std::size_t(nbx + 1) * std::size_t(nby + 1), 0);
    {
        // Per block row: the chi^2 terms summed down each column (element-wise, vectorised), then along
        // each block's columns.
        std::vector<float> acc(static_cast<std::size_t>(w));
        for (int by = 0; by < nby; ++by) {
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int y = by * B; y < std::min(h, by * B + B); ++y)
                addChi2Row(acc.data(), image.image().row(y), image.variance().row(y), image.mask().row(y), bad, w,
                           both);
            double run = 0.0;
            std::int32_t hugeRun = 0;
            const std::size_t r0 = std::size_t(by) * std::size_t(nbx + 1), r1 = r0 + std::size_t(nbx + 1);
            for (int bx = 0; bx < nbx; ++bx) {
                double s = 0.0;
                for (int x = bx * B; x < std::min(w, bx * B + B); ++x) s += double(acc[std::size_t(x)]);
                if (!(s <= limit2)) {
                    ++hugeRun;
                    s = 0.0;
                }
                run += s;
                P[r1 + std::size_t(bx) + 1] = P[r0 + std::size_t(bx) + 1] + run;
                H[r1 + std::size_t(bx) + 1] = H[r0 + std::size_t(bx) + 1] + hugeRun;
            }
        }
    }
    auto rectSum = [&](int bx0, int bx1, int by0, int by1) {  // blocks [bx0, bx1] x [by0, by1], clamped
        bx0 = std::max(bx0, 0), by0 = std::max(by0, 0), bx1 = std::min(bx1, nbx - 1), by1 = std::min(by1, nby - 1);
        const std::size_t s = std::size_t(nbx + 1);
        const std::size_t a = std::size_t(by1 + 1) * s + std::size_t(bx1 + 1);
        const std::size_t b = std::size_t(by0) * s + std::size_t(bx1 + 1);
        const std::size_t c = std::size_t(by1 + 1) * s + std::size_t(bx0);
        const std::size_t d = std::size_t(by0) * s + std::size_t(bx0);
        if (H[a] - H[b] - H[c] + H[d] > 0) return std::numeric_limits<double>::infinity();
        return P[a] - P[b] - P[c] + P[d];
    };
    // Candidate output blocks.
    const int obx0 = valid.minX() / B, obx1 = valid.maxX() / B, oby0 = valid.minY() / B, oby1 = valid.maxY() / B;
    std::vector<char> cand(std::size_t(nbx) * std::size_t(nby), 0);
    std::int64_t nCand = 0, nAll = 0;
    for (int by = oby0; by <= oby1; ++by)
        for (int bx = obx0; bx <= obx1; ++bx) {
            // Input pixels of the block's outputs: [bx B - reachLo, bx B + B - 1 + reachHi], likewise in y.
            const double q = rectSum((bx * B - reachLo) / B, (bx * B + B - 1 + reachHi) / B, (by * B - reachLoY) / B,
                                     (by * B + B - 1 + reachHiY) / B);
            const bool c = !(q < limit2);
            cand[std::size_t(by) * std::size_t(nbx) + std::size_t(bx)] = c;
            nCand += c;
            ++nAll;
        }
    if (nCand * 4 > nAll) return std::nullopt;  // the margins would cost more than they save
    // Bands of kBandRows output rows; in each, runs of columns holding a candidate block, merged across
    // gaps narrower than the kernel (whose margins would be filtered anyway).
    std::vector<Box2I> regions;
    constexpr int BB = kBandRows / B;
    const int gapBlocks = (t.kw + B - 1) / B;
    for (int band = oby0 / BB; band * BB <= oby1; ++band) {
        const int bya = std::max(oby0, band * BB), byb = std::min(oby1, band * BB + BB - 1);
        int runStart = -1, runEnd = -1;
        auto flush = [&] {
            if (runStart < 0) return;
            const Box2I r =
                Box2I::fromCorners({std::max(valid.minX(), runStart * B), std::max(valid.minY(), bya * B)},
                                   {std::min(valid.maxX(), runEnd * B + B - 1), std::min(valid.maxY(), byb * B + B - 1)});
            if (!r.empty()) regions.push_back(r);
            runStart = runEnd = -1;
        };
        for (int bx = obx0; bx <= obx1; ++bx) {
            bool any = false;
            for (int by = bya; by <= byb && !any; ++by)
                any = cand[std::size_t(by) * std::size_t(nbx) + std::size_t(bx)] != 0;
            if (!any) continue;
            if (runStart >= 0 && bx - runEnd - 1 > gapBlocks) flush();
            if (runStart < 0) runStart = bx;
            runEnd = bx;
        }
        flush();
    }
    return regions;
}

/// Every kSparseNoiseStep-th row and column of the valid box samples the filtered noise when the filter
/// was pruned.
constexpr int kSparseNoiseStep = 31;

}  // namespace

double NoiseSample::median() {
    const std::int64_t n = std::int64_t(values_.size()) + inRuns_, k = n / 2;
    if (n == 0) return 0.0;
    if (inRuns_ == 0) {
        auto mid = values_.begin() + std::ptrdiff_t(k);
        std::nth_element(values_.begin(), mid, values_.end());
        return *mid;
    }
    // Merge the sorted values with the sorted runs up to index k (at equal values the order does not matter).
    std::sort(values_.begin(), values_.end());
    std::sort(runs_.begin(), runs_.end());
    std::size_t i = 0, r = 0;
    std::int64_t seen = 0;
    while (true) {
        const bool takeRun = r < runs_.size() && (i == values_.size() || runs_[r].first < values_[i]);
        if (takeRun) {
            seen += runs_[r].second;
            if (seen > k) return runs_[r].first;
            ++r;
        } else {
            if (seen == k) return values_[i];
            ++seen;
            ++i;
        }
    }
}

SignificancePlan planSignificance(const MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config) {
    config.validate();
    if (!(psfSigmaPixels > 0.0) || !std::isfinite(psfSigmaPixels)) {
        throw InvalidInputError("detectSources: psfSigmaPixels must be > 0");
    }
    if (image.bbox().empty()) throw InvalidInputError("detectSources: empty image");
    SignificancePlan plan;
    const int hw = std::max(1, int(std::ceil(config.kernelHalfWidthSigma * psfSigmaPixels)));
    plan.kernelHalfWidth = hw;
    const Kernel kernel = Kernel::gaussian(psfSigmaPixels, hw);
    const Kernel kernel2 = kernel.squared();
    const Mask& mask = image.mask();
    plan.bad |= mask.planeBitMaskIfPresent(config.badMaskPlanes);
    const Kernel kn = kernel.normalized();
    plan.valid = validConvolutionBox(image.width(), image.height(), kernel);
    FilterTaps& taps = plan.taps;
    taps.kw = kn.width();
    taps.kh = kn.height();
    taps.c = kn.centre();
    taps.kx.assign(kn.xVector().begin(), kn.xVector().end());
    taps.ky.assign(kn.yVector().begin(), kn.yVector().end());
    taps.kx2.assign(kernel2.xVector().begin(), kernel2.xVector().end());
    taps.ky2.assign(kernel2.yVector().begin(), kernel2.yVector().end());
    taps.symmetric = isSymmetric(taps.kx, taps.c.x) && isSymmetric(taps.kx2, taps.c.x) &&
                     isSymmetric(taps.ky, taps.c.y) && isSymmetric(taps.ky2, taps.c.y);
    return plan;
}

void significanceByBands(const MaskedImageF& image, const SignificancePlan& plan, const SourceDetectionConfig& config,
                         NoiseSample& sigmas, const std::function<void(int, const float*)>& emit) {
    const int w = image.width(), h = image.height();
    const Box2I& valid = plan.valid;
    std::optional<std::vector<Box2I>> regions;
    if (!valid.empty() && config.pruneByBound)
        regions = prunedRegions(image, plan.bad, plan.taps, valid, config.thresholdSigma, config.includeNegative);
    std::optional<EdgeBand> edges;
    if (config.detectAtEdges) edges.emplace(image, plan.bad, plan.taps, valid);
    RegionFilter filter(image, plan.bad, plan.taps);
    ImageF band(w, kBandRows, kNoFill);
    int untilSample = 61;
    if (!valid.empty() && !regions) filter.begin(valid);  // the whole valid box, sampling every 61st noise
    std::size_t nextRegion = 0;
    for (int y0 = 0; y0 < h; y0 += kBandRows) {
        const int y1 = std::min(h, y0 + kBandRows) - 1;
        band.fill(std::numeric_limits<float>::quiet_NaN());  // also where the filtered variance is 0
        if (!valid.empty() && !regions) {
            if (y1 >= valid.minY() && y0 <= valid.maxY()) filter.rows(y1, band, y0, &sigmas, untilSample);
        } else if (regions) {
            for (; nextRegion < regions->size() && (*regions)[nextRegion].minY() <= y1; ++nextRegion) {
                const Box2I& r = (*regions)[nextRegion];
                if (r.maxY() > y1) throw LogicError("detectSources: a pruned region spans two bands");
                filter.run(r, band, y0, nullptr, untilSample);
            }
        }
        for (int y = y0; y <= y1; ++y) {
            if (edges) edges->row(y, band.row(y - y0));
            emit(y, static_cast<const float*>(band.row(y - y0)));
        }
    }
    if (regions) {
        // The noise from a sparse grid of the valid box, every kSparseNoiseStep-th row and column.
        sparseNoiseSample(image, plan.bad, plan.taps, valid, kSparseNoiseStep, sigmas);
    }
}

}  // namespace drp::detection
