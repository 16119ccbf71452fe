#include "stages/coadd/ArtifactRejection.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/Error.h"
#include "core/RowKernels.h"
#include "core/Simd.h"
#include "stages/coadd/RejectionKernels.h"

namespace drp {

void ArtifactRejectionConfig::validate() const {
    auto fail = [](const std::string& what) { throw ConfigError("ArtifactRejectionConfig: " + what); };
    if (!(detectionSigma > 0)) fail("detectionSigma must be > 0");
    if (!(extendSigma > 0 && extendSigma <= detectionSigma)) fail("extendSigma must be in (0, detectionSigma]");
    if (!(sharpSigma > 0)) fail("sharpSigma must be > 0");
    if (!(sharpContrast > 0 && sharpContrast < 1)) fail("sharpContrast must be in (0, 1)");
    if (!(sharpStaticContrast >= 0 && sharpStaticContrast < 1)) fail("sharpStaticContrast must be in [0, 1)");
    if (!(smoothingSigmaPx == 0 || (smoothingSigmaPx >= 0.3 && smoothingSigmaPx <= 20)))
        fail("smoothingSigmaPx must be 0 or in [0.3, 20]");
    if (psfRegressionDegree < 0 || psfRegressionDegree > PsfSizeFit::kMaxDegree)
        fail("psfRegressionDegree must be in [0, 3]");
    if (!(maxLeverage > 0 && maxLeverage < 1)) fail("maxLeverage must be in (0, 1)");
    if (!(scatterClipSigma > 0)) fail("scatterClipSigma must be > 0");
    if (!(maxEpochFraction > 0 && maxEpochFraction < 1)) fail("maxEpochFraction must be in (0, 1)");
    if (!(spatialFraction > 0 && spatialFraction <= 1)) fail("spatialFraction must be in (0, 1]");
    if (growRadiusPx < 0 || growRadiusPx > 100) fail("growRadiusPx must be in [0, 100]");
    if (minInputs < 3) fail("minInputs must be >= 3");
}

bool PsfSizeFit::solve(const double* m, const double* b, int maxDegree) {
    degree_ = -1;
    if (!(m[0] > 0)) return false;
    int d = std::clamp(maxDegree, 0, kMaxDegree);
    for (int k = 0; k <= d; ++k) {
        for (int l = 0; l < k; ++l) {
            double s = m[k + l];
            for (int q = 0; q < l; ++q) s -= L_[k][q] * L_[l][q];
            L_[k][l] = s / L_[l][l];
        }
        double piv = m[2 * k];
        for (int q = 0; q < k; ++q) piv -= L_[k][q] * L_[k][q];
        if (!(piv > 1e-4 * m[2 * k])) {
            d = k - 1;
            break;
        }
        L_[k][k] = std::sqrt(piv);
    }
    if (d < 0) return false;
    double y[kMaxDegree + 1];
    for (int k = 0; k <= d; ++k) {
        double s = b[k];
        for (int q = 0; q < k; ++q) s -= L_[k][q] * y[q];
        y[k] = s / L_[k][k];
    }
    for (int k = d; k >= 0; --k) {
        double s = y[k];
        for (int q = k + 1; q <= d; ++q) s -= L_[q][k] * c_[q];
        c_[k] = s / L_[k][k];
    }
    for (int k = d + 1; k <= kMaxDegree; ++k) c_[k] = 0;
    degree_ = d;
    return true;
}

double PsfSizeFit::predict(double v) const {
    double p = 0;
    for (int k = degree_; k >= 0; --k) p = p * v + c_[k];
    return p;
}

double PsfSizeFit::leverage(double v) const {
    double y[kMaxDegree + 1], f = 1, h = 0;
    for (int k = 0; k <= degree_; ++k, f *= v) {
        double s = f;
        for (int q = 0; q < k; ++q) s -= L_[k][q] * y[q];
        y[k] = s / L_[k][k];
        h += y[k] * y[k];
    }
    return h;
}

void shiftPowerMoments(const double* in, int n, double centre, double halfWidth, double* out) {
    if (n > 7) throw LogicError("shiftPowerMoments: at most 7 moments");
    double binom[7][7]{};
    for (int k = 0; k < n; ++k) {
        binom[k][0] = binom[k][k] = 1;
        for (int j = 1; j < k; ++j) binom[k][j] = binom[k - 1][j - 1] + binom[k - 1][j];
    }
    double hk = 1;
    for (int k = 0; k < n; ++k, hk /= halfWidth) {
        double s = 0, cp = 1;  // (-centre)^(k - j), j from k down to 0
        for (int j = k; j >= 0; --j, cp *= -centre) s += binom[k][j] * cp * in[j];
        out[k] = s * hk;
    }
}

PowerMomentShift::PowerMomentShift(int n, double centre, double halfWidth) : n_(n) {
    if (n < 0 || n > 7 || !(halfWidth > 0)) throw LogicError("PowerMomentShift: n in [0, 7] and halfWidth > 0");
    for (int j = 0; j < n; ++j) {  // column j: the image of the j-th unit vector
        double e[7]{}, o[7]{};
        e[j] = 1;
        shiftPowerMoments(e, n, centre, halfWidth, o);
        for (int k = 0; k < n; ++k) t_[k][j] = o[k];
    }
}

int psfRegressionDegree(int nInputs, int maxDegree) {
    if (nInputs <= 0) return -1;
    return std::max(0, std::min(maxDegree, (nInputs - 2) / 3));
}

bool isTransientFootprint(const SpanSet& footprint, const Box2I& box, const std::uint16_t* nFlagged,
                          const std::uint16_t* nInputs, const ArtifactRejectionConfig& config) {
    std::int64_t total = 0, transient = 0;
    const std::size_t w = std::size_t(box.width());
    for (const Span& sp : footprint) {
        if (sp.y < box.minY() || sp.y > box.maxY()) continue;
        const std::size_t base = std::size_t(sp.y - box.minY()) * w;
        for (int x = std::max(sp.x0, box.minX()); x <= std::min(sp.x1, box.maxX()); ++x) {
            const std::size_t k = base + std::size_t(x - box.minX());
            ++total;
            const int n = nInputs[k];
            if (n == 0) continue;
            const int allowed = std::max(1, int(std::floor(config.maxEpochFraction * n)));
            if (nFlagged[k] <= allowed) ++transient;
        }
    }
    return total > 0 && double(transient) >= config.spatialFraction * double(total);
}

namespace {

std::vector<double> gaussianKernel(double sigma) {
    const int h = std::max(1, int(std::ceil(3.5 * sigma)));
    std::vector<double> k(2 * h + 1);
    double sum = 0;
    for (int i = -h; i <= h; ++i) sum += k[i + h] = std::exp(-0.5 * i * i / (sigma * sigma));
    for (double& v : k) v /= sum;
    return k;
}

// Row kernels of the separable Gaussian besides core/RowKernels.h (element-wise, no FMA: DRP_SIMD_CLONES gives the
// same bits with and without AVX2).
DRP_SIMD_CLONES void mulRow(float* __restrict acc, const float* __restrict s, int n) {
    for (int x = 0; x < n; ++x) acc[x] *= s[x];
}
DRP_SIMD_CLONES void scaleRow(float* __restrict acc, int n, float k) {
    for (int x = 0; x < n; ++x) acc[x] *= k;
}

// Separable convolution with the symmetric 1-d kernel `k` (squared element-wise when `squared`), zero outside
// the image; with `normalize`, each 1-d output is divided by (sum of k inside the image)^(squared ? 2 : 1).
// Each output is k_0 a_0 + sum_i k_i (a_-i + a_i), in that order (symmetric taps folded), row-vectorised.
void separable(const ImageF& in, ImageF& out, const std::vector<double>& k, bool squared, bool normalize,
               ImageF* scratch = nullptr) {
    const int h = int(k.size() / 2);
    std::vector<float> kk(k.size());
    for (std::size_t i = 0; i < k.size(); ++i) kk[i] = float(squared ? k[i] * k[i] : k[i]);
    const int w = in.width(), ht = in.height();
    auto norms = [&](int n) {
        std::vector<float> nv(std::size_t(n), 1.0f);
        if (!normalize) return nv;
        for (int x = 0; x < n; ++x) {
            double s = 0;
            for (int i = std::max(-h, -x); i <= std::min(h, n - 1 - x); ++i) s += k[i + h];
            nv[std::size_t(x)] = float(1.0 / (squared ? s * s : s));
        }
        return nv;
    };
    const std::vector<float> nx = norms(w), ny = norms(ht);
    ImageF local;
    ImageF& tmp = scratch ? *scratch : local;
    if (!(tmp.bbox() == in.bbox() && !tmp.empty() && !tmp.sharesPixelsWith(in) && !tmp.sharesPixelsWith(out)))
        tmp = ImageF(in.bbox(), 0.0f);
    // Rows: through a zero-padded copy of the row (no boundary cases).
    std::vector<float> pad(std::size_t(w) + 2 * std::size_t(h), 0.0f);
    float* const pc = pad.data() + h;
    for (int y = 0; y < ht; ++y) {
        const float* src = in.row(y);
        std::copy(src, src + w, pc);
        float* dst = tmp.row(y);
        rowk::setTap(dst, pc, w, kk[std::size_t(h)]);
        for (int i = 1; i <= h; ++i) rowk::addFoldedTap(dst, pc - i, pc + i, w, kk[std::size_t(h + i)]);
        if (normalize) mulRow(dst, nx.data(), w);
    }
    // Columns: output row y from rows y - h .. y + h of the intermediate (rows outside the image are zero).
    if (out.bbox() != in.bbox() || out.sharesPixelsWith(in) || out.empty()) out = ImageF(in.bbox(), 0.0f);
    for (int y = 0; y < ht; ++y) {
        float* dst = out.row(y);
        rowk::setTap(dst, tmp.row(y), w, kk[std::size_t(h)]);
        for (int i = 1; i <= h; ++i) {
            const bool lo = y - i >= 0, hi = y + i < ht;
            if (lo && hi)
                rowk::addFoldedTap(dst, tmp.row(y - i), tmp.row(y + i), w, kk[std::size_t(h + i)]);
            else if (lo || hi)
                rowk::addTap(dst, tmp.row(lo ? y - i : y + i), w, kk[std::size_t(h + i)]);
        }
        if (normalize) scaleRow(dst, w, ny[std::size_t(y)]);
    }
}

}  // namespace

SpanSet findSharpPixels(const ImageF& image, const ImageF& residual, const ImageF& variance, const ImageF& valid,
                        const ArtifactRejectionConfig& config, double residualVarianceScale) {
    if (!(residualVarianceScale > 0 && residualVarianceScale <= 1))
        throw LogicError("findSharpPixels: residualVarianceScale must be in (0, 1]");
    const float rs = float(std::sqrt(residualVarianceScale));
    const Box2I box = image.bbox();
    if (residual.bbox() != box || variance.bbox() != box || (!valid.empty() && valid.bbox() != box))
        throw LogicError("findSharpPixels: images must share one bbox");
    const int w = box.width(), h = box.height();
    Image<std::int32_t> hit;  // allocated at the first sharp pixel
    const bool useValid = !valid.empty();
    auto ok = [&](int x, int y) { return !useValid || valid(x, y) > 0; };
    const float k = float(config.sharpSigma), c = float(config.sharpContrast), cs = float(config.sharpStaticContrast);
    bool any = false;
    std::vector<std::uint8_t> cand(std::size_t(std::max(w, 2)));
    const float k2 = 1.25f * k * k;
    for (int y = 1; y < h - 1; ++y) {
        const float *up = image.row(y - 1), *row = image.row(y), *dn = image.row(y + 1), *v = variance.row(y);
        const float *rup = residual.row(y - 1), *rr = residual.row(y), *rdn = residual.row(y + 1);
        if (rejection::sharpCandidateRow(cand.data() + 1, row + 1, row, row + 2, up + 1, dn + 1, v + 1, k2, w - 2) == 0)
            continue;
        for (int x = 1; x < w - 1; ++x) {
            if (!cand[std::size_t(x)]) continue;
            const float s = k * std::sqrt(1.25f * v[x]);
            const float e = row[x] - 0.25f * (row[x - 1] + row[x + 1] + up[x] + dn[x]);
            if (!(e > s)) continue;
            const float er = rr[x] - 0.25f * (rr[x - 1] + rr[x + 1] + rup[x] + rdn[x]);
            const bool isolated = e > c * row[x];                            // sharper than any PSF
            const bool transient = er > rs * s && er > c * rr[x] && e >= cs * row[x];  // on a static source
            if (!isolated && !transient) continue;
            if (!ok(x, y) || !ok(x - 1, y) || !ok(x + 1, y) || !ok(x, y - 1) || !ok(x, y + 1)) continue;
            if (hit.empty()) hit = Image<std::int32_t>(box, 0);
            hit(x, y) = 1;
            any = true;
        }
    }
    if (!any) return SpanSet();
    return SpanSet::fromMask(hit, 1).dilated(1).clippedTo(box);
}

void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel) {
    if (!(sigmaPx > 0)) throw LogicError("gaussianSmooth: sigma must be > 0");
    separable(in, out, gaussianKernel(sigmaPx), squaredKernel, false);
}

void gaussianSmoothNormalized(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel, ImageF* scratch) {
    if (!(sigmaPx >= 0)) throw LogicError("gaussianSmoothNormalized: sigma must be >= 0");
    if (sigmaPx < 1e-3) {
        out = ImageF(in.bbox(), 0.0f);
        for (int y = 0; y < in.height(); ++y) std::copy(in.row(y), in.row(y) + in.width(), out.row(y));
        return;
    }
    separable(in, out, gaussianKernel(sigmaPx), squaredKernel, true, scratch);
}

ArtifactSearchResult findArtifacts(const ImageF& sD, const ImageF& sV, double seedSigma,
                                   const ArtifactRejectionConfig& config, Image<std::int32_t>* markScratch) {
    const Box2I box = sD.bbox();
    if (sV.bbox() != box) throw LogicError("findArtifacts: images must share one bbox");
    const int w = box.width(), h = box.height();
    ArtifactSearchResult result;

    // Robust rescaling of the significance map (MAD sigma over a regular subsample of the patch).
    std::vector<float> nu;
    nu.reserve(std::size_t(w) * std::size_t(h) / 5 + 16);
    for (int y = 0; y < h; y += 2) {
        const float *d = sD.row(y), *v = sV.row(y);
        for (int x = (y / 2) % 3; x < w; x += 3)
            if (v[x] > 0 && std::isfinite(d[x])) nu.push_back(d[x] / std::sqrt(v[x]));
    }
    if (nu.size() > 100) {
        auto mid = nu.begin() + std::ptrdiff_t(nu.size() / 2);
        std::nth_element(nu.begin(), mid, nu.end());
        const float med = *mid;
        for (float& x : nu) x = std::abs(x - med);
        std::nth_element(nu.begin(), mid, nu.end());
        result.noiseRescale = std::max(1.0, 1.4826 * double(*mid));
    }
    const float c = float(result.noiseRescale);
    const float kHi = float(seedSigma) * c, kLo = float(config.extendSigma) * c;
    Image<std::int32_t> local;
    Image<std::int32_t>& mark = markScratch ? *markScratch : local;  // 1: above the extension threshold, 3: a seed
    if (mark.bbox() != box || mark.empty()) mark = Image<std::int32_t>(box, 0);
    bool any = false;
    for (int y = 0; y < h; ++y) any |= rejection::markRow(mark.row(y), sD.row(y), sV.row(y), kLo * kLo, kHi * kHi, w) > 0;
    if (!any) return result;
    const Point2I o = box.min();
    for (const SpanSet& comp : SpanSet::fromMask(mark, 1).split(Connectivity::EIGHT)) {
        ++result.extendedRegions;
        bool hit = false;
        for (const Span& sp : comp) {
            const std::int32_t* r = mark.row(sp.y - o.y);
            for (int x = sp.x0; x <= sp.x1 && !hit; ++x) hit = (r[x - o.x] & 2) != 0;
            if (hit) break;
        }
        if (hit) result.candidates.push_back(comp);
    }
    return result;
}

}  // namespace drp
