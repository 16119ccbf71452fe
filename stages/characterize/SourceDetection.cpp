#include "stages/characterize/SourceDetection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include "core/Convolution.h"
#include "core/Error.h"
#include "core/Kernel.h"
#include "core/RowKernels.h"
#include "core/Simd.h"

namespace drp {

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
void significanceRow(float* __restrict s, const float* __restrict d, const float* __restrict v, int n) {
    typedef float v4sf __attribute__((vector_size(16)));
    int x = 0;
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
void addChi2Row(float* __restrict acc, const float* __restrict iv, const float* __restrict vv,
                const MaskPixel* __restrict mv, MaskPixel bad, int n, bool both) {
    constexpr float big = std::numeric_limits<float>::max();
    const float lower = both ? -big : 0.0f;  // d must exceed this (and not be 0) to count
    int x = 0;
#if defined(__SSE2__) && defined(__GNUC__) && !defined(__clang__)
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

/// The separable taps of the normalised kernel (image) and of the squared kernel (variance), as floats.
struct FilterTaps {
    std::vector<float> kx, ky, kx2, ky2;
    Point2I c;          ///< kernel centre
    int kw = 0, kh = 0; ///< kernel size
    bool symmetric = false;
};

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

    /// Significance over `out` into sn; with `sigmas`, every 61st positive filtered noise sigma in raster
    /// order (untilSample carries the count from call to call).
    void run(const Box2I& out, ImageF& sn, std::vector<double>* sigmas, int& untilSample) {
        const int nx = out.width(), x0 = out.minX(), kh = t_.kh;
        const Point2I c = t_.c;
        ringD_.resize(std::size_t(kh) * std::size_t(nx));
        ringV_.resize(std::size_t(kh) * std::size_t(nx));
        flatSlot_.assign(std::size_t(kh), 0);
        flatValue_.assign(std::size_t(kh), 0.0f);
        accD_.resize(std::size_t(nx));
        accV_.resize(std::size_t(nx));
        const int reach = std::max(c.x, t_.kw - 1 - c.x);
        const int lo = std::max(0, x0 - reach), hi = std::min(image_.width() - 1, out.maxX() + reach);
        auto slot = [&](std::vector<float>& ring, int yIn) {
            return ring.data() + std::size_t(((yIn % kh) + kh) % kh) * std::size_t(nx);
        };
        auto horizontal = [&](int yIn) {
            const float* iv = image_.image().row(yIn);
            const float* vv = image_.variance().row(yIn);
            const MaskPixel* mv = image_.mask().row(yIn);
            usableRow(rowD_.data() + lo, rowV_.data() + lo, iv + lo, vv + lo, mv + lo, bad_, hi - lo + 1);
            float* __restrict dd = slot(ringD_, yIn);
            float* __restrict dv = slot(ringV_, yIn);
            const std::size_t s = std::size_t(((yIn % kh) + kh) % kh);
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
                for (int t = 1; t <= c.x; ++t) {
                    const float k1 = t_.kx[std::size_t(c.x - t)], k2 = t_.kx2[std::size_t(c.x - t)];
                    rowk::addFoldedTap(dd, pd + t, pd - t, nx, k1);
                    if (!flatSlot_[s]) rowk::addFoldedTap(dv, pv + t, pv - t, nx, k2);
                }
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
        };
        auto flatAt = [&](int yIn) { return flatSlot_[std::size_t(((yIn % kh) + kh) % kh)] != 0; };
        auto flatValueAt = [&](int yIn) { return flatValue_[std::size_t(((yIn % kh) + kh) % kh)]; };
        const int down = kh - 1 - c.y;
        for (int yIn = out.minY() - down; yIn < out.minY() + c.y; ++yIn) horizontal(yIn);
        for (int y = out.minY(); y <= out.maxY(); ++y) {
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
                for (int t = 1; t <= c.y; ++t) {
                    const float k1 = t_.ky[std::size_t(c.y - t)], k2 = t_.ky2[std::size_t(c.y - t)];
                    rowk::addFoldedTap(ad, slot(ringD_, y + t), slot(ringD_, y - t), nx, k1);
                    if (!flat) rowk::addFoldedTap(av, slot(ringV_, y + t), slot(ringV_, y - t), nx, k2);
                }
            } else {
                std::fill(ad, ad + nx, 0.0f);
                if (!flat) std::fill(av, av + nx, 0.0f);
                for (int j = 0; j < kh; ++j) {
                    const float k1 = t_.ky[std::size_t(j)], k2 = t_.ky2[std::size_t(j)];
                    rowk::addTap(ad, slot(ringD_, y - j + c.y), nx, k1);
                    if (!flat) rowk::addTap(av, slot(ringV_, y - j + c.y), nx, k2);
                }
            }
            significanceRow(sn.row(y) + x0, ad, av, nx);
            if (sigmas) sample(av, nx, *sigmas, untilSample);
        }
    }

private:
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
    /// case) jumps straight from sample to sample.
    static void sample(const float* av, int nx, std::vector<double>& sigmas, int& untilSample) {
        if (countPositive(av, nx) == nx) {
            for (int x = untilSample - 1; x < nx; x += 61) sigmas.push_back(std::sqrt(av[x]));
            untilSample = untilSample > nx ? untilSample - nx : 61 - (nx - untilSample) % 61;
            return;
        }
        for (int x = 0; x < nx; ++x)
            if (av[x] > 0.0f && --untilSample == 0) {
                sigmas.push_back(std::sqrt(av[x]));
                untilSample = 61;
            }
    }

    const MaskedImageF& image_;
    MaskPixel bad_;
    const FilterTaps& t_;
    std::vector<float> rowD_, rowV_, ringD_, ringV_, accD_, accV_;
    std::vector<char> flatSlot_;    ///< per ring slot: the row's variance inputs were all equal
    std::vector<float> flatValue_;  ///< and its x-filtered variance
};

/// The significance with the filter truncated at the image boundary, over the band along the edges where
/// the whole kernel does not fit (outside `valid`; everything when `valid` is empty), so that a source there
/// is detected too. Pixels beyond the boundary count as unusable, like masked ones: the value and the
/// variance are sums over the same pixels and the result is still N(0, 1) on pure noise (NaN where no
/// usable pixel is reached). Separable, in double: each input row is filtered along x (zero beyond the
/// boundary) only at the columns an output needs (every column for the rows near the top and bottom, the
/// side bands' columns for the others), then along y.
void truncatedEdgeBand(const MaskedImageF& image, MaskPixel bad, const FilterTaps& t, const Box2I& valid, ImageF& sn) {
    constexpr float big = std::numeric_limits<float>::max();
    const int w = image.width(), h = image.height();
    const int downY = t.kh - 1 - t.c.y;  // output row y reads input rows [y - downY, y + c.y]
    const int reach = std::max(t.c.x, t.kw - 1 - t.c.x);  // and input columns within reach of x
    // Output rows entirely in the band, and the columns of the side bands.
    auto bandRow = [&](int y) { return valid.empty() || y < valid.minY() || y > valid.maxY(); };
    std::vector<int> sideCols;
    if (!valid.empty()) {
        for (int x = 0; x < std::min(w, valid.minX()); ++x) sideCols.push_back(x);
        for (int x = std::max(0, valid.maxX() + 1); x < w; ++x) sideCols.push_back(x);
    }
    // An input row is needed in full width when a band output row reads it.
    std::vector<char> fullRow(std::size_t(h), 0);
    for (int y = 0; y < h; ++y)
        if (bandRow(y))
            for (int yy = std::max(0, y - downY); yy <= std::min(h - 1, y + t.c.y); ++yy) fullRow[std::size_t(yy)] = 1;
    // Row-filtered value and variance: full rows in `full` (w per row), side columns in `side`.
    std::vector<std::int64_t> fullIndex(std::size_t(h), -1);
    std::int64_t nFull = 0;
    for (int y = 0; y < h; ++y)
        if (fullRow[std::size_t(y)]) fullIndex[std::size_t(y)] = nFull++;
    std::vector<double> fullD(std::size_t(nFull) * std::size_t(w)), fullV(fullD.size());
    const std::size_t ns = sideCols.size();
    std::vector<double> sideD(std::size_t(h) * ns), sideV(sideD.size());
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
            double* fd = fullD.data() + std::size_t(fullIndex[std::size_t(yy)]) * std::size_t(w);
            double* fv = fullV.data() + std::size_t(fullIndex[std::size_t(yy)]) * std::size_t(w);
            for (int x = 0; x < w; ++x) rowFilterAt(x, fd[x], fv[x]);
        }
        for (std::size_t k = 0; k < ns; ++k)
            rowFilterAt(sideCols[k], sideD[std::size_t(yy) * ns + k], sideV[std::size_t(yy) * ns + k]);
    }
    auto column = [&](int y, auto&& at) {  // the y filter at output row y of row-filtered values at(yy)
        double d = 0.0, v = 0.0;
        for (int j = 0; j < t.kh; ++j) {
            const int yy = y - j + t.c.y;
            if (yy < 0 || yy >= h) continue;
            double rd, rv;
            at(yy, rd, rv);
            d += double(t.ky[std::size_t(j)]) * rd;
            v += double(t.ky2[std::size_t(j)]) * rv;
        }
        return v > 0.0 ? float(d / std::sqrt(v)) : std::numeric_limits<float>::quiet_NaN();
    };
    for (int y = 0; y < h; ++y) {
        float* out = sn.row(y);
        if (bandRow(y)) {
            for (int x = 0; x < w; ++x)
                out[x] = column(y, [&](int yy, double& d, double& v) {
                    const std::size_t i = std::size_t(fullIndex[std::size_t(yy)]) * std::size_t(w) + std::size_t(x);
                    d = fullD[i];
                    v = fullV[i];
                });
            continue;
        }
        for (std::size_t k = 0; k < ns; ++k)
            out[sideCols[k]] = column(y, [&](int yy, double& d, double& v) {
                d = sideD[std::size_t(yy) * ns + k];
                v = sideV[std::size_t(yy) * ns + k];
            });
    }
}

/// The filtered variance at one output pixel (local, inside the valid box) with RegionFilter's
/// arithmetic, for a sparse noise sample.
float filteredVarianceAt(const MaskedImageF& image, MaskPixel bad, const FilterTaps& t, int x, int y) {
    constexpr float big = std::numeric_limits<float>::max();
    auto usable = [&](int xx, int yy) {
        const float iv = image.image().row(yy)[xx], vv = image.variance().row(yy)[xx];
        const bool ok = ((image.mask().row(yy)[xx] & bad) == 0) & (std::fabs(iv) <= big) & (vv >= 0.0f) & (vv <= big);
        return ok ? vv : 0.0f;
    };
    auto horizontal = [&](int yy) {
        if (t.symmetric) {
            float a = t.kx2[std::size_t(t.c.x)] * usable(x, yy);
            for (int k = 1; k <= t.c.x; ++k)
                a += t.kx2[std::size_t(t.c.x - k)] * (usable(x + k, yy) + usable(x - k, yy));
            return a;
        }
        float a = 0.0f;
        for (int i = 0; i < t.kw; ++i) a += t.kx2[std::size_t(i)] * usable(x - i + t.c.x, yy);
        return a;
    };
    if (t.symmetric) {
        float a = t.ky2[std::size_t(t.c.y)] * horizontal(y);
        for (int k = 1; k <= t.c.y; ++k) a += t.ky2[std::size_t(t.c.y - k)] * (horizontal(y + k) + horizontal(y - k));
        return a;
    }
    float a = 0.0f;
    for (int j = 0; j < t.kh; ++j) a += t.ky2[std::size_t(j)] * horizontal(y - j + t.c.y);
    return a;
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

void SourceDetectionConfig::validate() const {
    if (!(thresholdSigma > 0.0) || !std::isfinite(thresholdSigma)) throw ConfigError("SourceDetectionConfig.thresholdSigma must be > 0");
    if (!(growFactor >= 0.0 && growFactor <= 20.0)) throw ConfigError("SourceDetectionConfig.growFactor must be in [0, 20]");
    if (minPixels < 1) throw ConfigError("SourceDetectionConfig.minPixels must be >= 1");
    if (!(kernelHalfWidthSigma >= 2.0 && kernelHalfWidthSigma <= 10.0)) {
        throw ConfigError("SourceDetectionConfig.kernelHalfWidthSigma must be in [2, 10]");
    }
    if (!(minPeakSeparation >= 0.0) || !std::isfinite(minPeakSeparation)) {
        throw ConfigError("SourceDetectionConfig.minPeakSeparation must be >= 0");
    }
    for (const auto& p : badMaskPlanes)
        if (p.empty()) throw ConfigError("SourceDetectionConfig.badMaskPlanes has an empty name");
    background.validate();
}

DetectionResult detectSources(MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config) {
    config.validate();
    if (!(psfSigmaPixels > 0.0) || !std::isfinite(psfSigmaPixels)) {
        throw InvalidInputError("detectSources: psfSigmaPixels must be > 0");
    }
    if (image.bbox().empty()) throw InvalidInputError("detectSources: empty image");
    DetectionResult result;
    const int hw = std::max(1, int(std::ceil(config.kernelHalfWidthSigma * psfSigmaPixels)));
    result.kernelHalfWidth = hw;
    const Kernel kernel = Kernel::gaussian(psfSigmaPixels, hw);
    const Kernel kernel2 = kernel.squared();

    Mask& mask = image.mask();
    MaskPixel bad = 0;
    for (const auto& p : config.badMaskPlanes)
        if (mask.planeDict()->has(p)) bad |= mask.planeBitMask(p);
    const MaskPixel edgeBit = MaskPixel(1u << mask.addPlane("EDGE"));
    const MaskPixel detBit = MaskPixel(1u << mask.addPlane("DETECTED"));
    const MaskPixel negBit = MaskPixel(1u << mask.addPlane("DETECTED_NEGATIVE"));

    // The PSF-matched filter of the image and of its variance (kernel^2), with unusable pixels zeroed
    // (value and variance), and the significance filtered / sqrt(filtered variance), in one streaming
    // pass (RegionFilter above). EDGE outside the valid box. With config.pruneByBound and a high
    // threshold only the regions whose Cauchy-Schwarz bound can reach it are filtered (BoundGrid above).
    const int w = image.width(), h = image.height();
    const Kernel kn = kernel.normalized();
    const Box2I valid = validConvolutionBox(w, h, kernel);  // local indices
    ImageF sn(image.bbox(), std::numeric_limits<float>::quiet_NaN());
    std::vector<double> sigmas;
    FilterTaps taps;
    taps.kw = kn.width();
    taps.kh = kn.height();
    taps.c = kn.centre();
    taps.kx.assign(kn.xVector().begin(), kn.xVector().end());
    taps.ky.assign(kn.yVector().begin(), kn.yVector().end());
    taps.kx2.assign(kernel2.xVector().begin(), kernel2.xVector().end());
    taps.ky2.assign(kernel2.yVector().begin(), kernel2.yVector().end());
    taps.symmetric = isSymmetric(taps.kx, taps.c.x) && isSymmetric(taps.kx2, taps.c.x) &&
                     isSymmetric(taps.ky, taps.c.y) && isSymmetric(taps.ky2, taps.c.y);
    if (!valid.empty()) {
        RegionFilter filter(image, bad, taps);
        std::optional<std::vector<Box2I>> regions;
        if (config.pruneByBound)
            regions = prunedRegions(image, bad, taps, valid, config.thresholdSigma, config.includeNegative);
        if (!regions) {
            // The whole valid box, sampling every 61st positive filtered noise.
            sigmas.reserve(std::size_t(valid.area() / 61 + 1));
            int untilSample = 61;
            filter.run(valid, sn, &sigmas, untilSample);
        } else {
            int untilSample = 61;
            for (const Box2I& r : *regions) filter.run(r, sn, nullptr, untilSample);
            // The noise from a sparse grid of the valid box, every kSparseNoiseStep-th row and column.
            for (int y = valid.minY() + kSparseNoiseStep / 2; y <= valid.maxY(); y += kSparseNoiseStep)
                for (int x = valid.minX() + kSparseNoiseStep / 2; x <= valid.maxX(); x += kSparseNoiseStep) {
                    const float v = filteredVarianceAt(image, bad, taps, x, y);
                    if (v > 0.0f) sigmas.push_back(std::sqrt(v));
                }
        }
    }
    // The band along the edges (all of a tiny image) where the whole kernel does not fit: the filter
    // truncated at the boundary, so a source there is detected too (its pixels keep the EDGE bit below).
    if (config.detectAtEdges) truncatedEdgeBand(image, bad, taps, valid, sn);
    for (int y = 0; y < h; ++y) {
        MaskPixel* mv = mask.row(y);
        const bool rowValid = y >= valid.minY() && y <= valid.maxY();
        const MaskPixel clear = MaskPixel(~(detBit | negBit));
        for (int x = 0; x < w; ++x) mv[x] &= clear;
        if (!rowValid) {
            for (int x = 0; x < w; ++x) mv[x] |= edgeBit;
        } else {
            for (int x = 0; x < std::min(w, valid.minX()); ++x) mv[x] |= edgeBit;
            for (int x = std::max(0, valid.maxX() + 1); x < w; ++x) mv[x] |= edgeBit;
        }
    }
    if (!sigmas.empty()) {
        auto mid = sigmas.begin() + std::ptrdiff_t(sigmas.size() / 2);
        std::nth_element(sigmas.begin(), mid, sigmas.end());
        result.noiseSigma = *mid;
    }
    result.threshold = config.thresholdSigma * result.noiseSigma;

    DetectionConfig dc;
    dc.threshold = config.thresholdSigma;
    dc.minPixels = config.minPixels;
    dc.minPeakSeparation = config.minPeakSeparation;
    dc.noiseSigma = 1.0;  // the image is already a significance
    const int grow = int(std::lround(config.growFactor * psfSigmaPixels));
    auto run = [&](bool negative, MaskPixel bit) {
        dc.negative = negative;
        FootprintSet fs = detectFootprints(sn, dc);
        if (grow > 0) fs = fs.dilated(grow);
        fs.setMask(mask, bit);
        return fs;
    };
    result.positive = run(false, detBit);
    if (config.includeNegative) result.negative = run(true, negBit);

    if (config.reEstimateBackground) {
        Background bg = estimateBackground(image, config.background);
        subtractBackground(image, bg);
        result.background = std::move(bg);
    }
    return result;
}

}  // namespace drp
