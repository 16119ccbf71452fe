#include "stages/coadd/ArtifactRejection.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/Error.h"

namespace drp {

void ArtifactRejectionConfig::validate() const {
    auto fail = [](const std::string& what) { throw ConfigError("ArtifactRejectionConfig: " + what); };
    if (!(detectionSigma > 0)) fail("detectionSigma must be > 0");
    if (!(sharpSigma > 0)) fail("sharpSigma must be > 0");
    if (!(sharpContrast > 0 && sharpContrast < 1)) fail("sharpContrast must be in (0, 1)");
    if (!(sharpStaticContrast > 0 && sharpStaticContrast < 1)) fail("sharpStaticContrast must be in (0, 1)");
    if (!(removeOverStaticRatio > 0)) fail("removeOverStaticRatio must be > 0");
    if (!(extendSigma > 0 && extendSigma <= detectionSigma)) fail("extendSigma must be in (0, detectionSigma]");
    if (!(referenceFluxFraction >= 0 && referenceFluxFraction <= 1)) fail("referenceFluxFraction must be in [0, 1]");
    if (!(smoothingSigmaPx == 0 || (smoothingSigmaPx >= 0.3 && smoothingSigmaPx <= 20)))
        fail("smoothingSigmaPx must be 0 or in [0.3, 20]");
    if (!(templateClipSigma > 0)) fail("templateClipSigma must be > 0");
    if (!(templateFluxFraction >= 0 && templateFluxFraction <= 10)) fail("templateFluxFraction must be in [0, 10]");
    if (!(matchingKernelScale > 0 && matchingKernelScale <= 1)) fail("matchingKernelScale must be in (0, 1]");
    if (maxOutlierEpochs < 1 || maxOutlierEpochs > 8) fail("maxOutlierEpochs must be in [1, 8]");
    if (growRadiusPx < 0 || growRadiusPx > 100) fail("growRadiusPx must be in [0, 100]");
    if (minInputs < 3) fail("minInputs must be >= 3");
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

// Separable convolution with the 1-d kernel `k` (squared element-wise when `squared`), zero outside the
// image; with `normalize`, each 1-d output is divided by (sum of k inside the image)^(squared ? 2 : 1).
void separable(const ImageF& in, ImageF& out, const std::vector<double>& k, bool squared, bool normalize) {
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
    ImageF tmp(in.bbox(), 0.0f);
    for (int y = 0; y < ht; ++y) {
        const float* src = in.row(y);
        float* dst = tmp.row(y);
        for (int x = 0; x < w; ++x) {
            const int i0 = std::max(-h, -x), i1 = std::min(h, w - 1 - x);
            float s = 0;
            for (int i = i0; i <= i1; ++i) s += kk[i + h] * src[x + i];
            dst[x] = s * nx[std::size_t(x)];
        }
    }
    if (out.bbox() != in.bbox() || out.sharesPixelsWith(in)) out = ImageF(in.bbox(), 0.0f);
    for (int y = 0; y < ht; ++y) {
        float* dst = out.row(y);
        std::fill(dst, dst + w, 0.0f);
        const int i0 = std::max(-h, -y), i1 = std::min(h, ht - 1 - y);
        for (int i = i0; i <= i1; ++i) {
            const float kv = kk[i + h] * ny[std::size_t(y)];
            const float* src = tmp.row(y + i);
            for (int x = 0; x < w; ++x) dst[x] += kv * src[x];
        }
    }
}

}  // namespace

SpanSet findSharpPixels(const ImageF& image, const ImageF& residual, const ImageF& variance, const ImageF& valid,
                        const ArtifactRejectionConfig& config) {
    const Box2I box = image.bbox();
    if (residual.bbox() != box || variance.bbox() != box || (!valid.empty() && valid.bbox() != box))
        throw LogicError("findSharpPixels: images must share one bbox");
    const int w = box.width(), h = box.height();
    Image<std::int32_t> hit(box, 0);
    const bool useValid = !valid.empty();
    auto ok = [&](int x, int y) { return !useValid || valid(x, y) > 0; };
    const float k = float(config.sharpSigma), c = float(config.sharpContrast), cs = float(config.sharpStaticContrast);
    bool any = false;
    for (int y = 1; y < h - 1; ++y) {
        const float *up = image.row(y - 1), *row = image.row(y), *dn = image.row(y + 1), *v = variance.row(y);
        const float *rup = residual.row(y - 1), *rr = residual.row(y), *rdn = residual.row(y + 1);
        for (int x = 1; x < w - 1; ++x) {
            if (!(v[x] > 0)) continue;
            const float s = k * std::sqrt(1.25f * v[x]);
            const float e = row[x] - 0.25f * (row[x - 1] + row[x + 1] + up[x] + dn[x]);
            if (!(e > s)) continue;
            const float er = rr[x] - 0.25f * (rr[x - 1] + rr[x + 1] + rup[x] + rdn[x]);
            const bool isolated = e > c * row[x];                            // sharper than any PSF
            const bool transient = er > s && er > c * rr[x] && e > cs * row[x];  // on a static source
            if (!isolated && !transient) continue;
            if (!ok(x, y) || !ok(x - 1, y) || !ok(x + 1, y) || !ok(x, y - 1) || !ok(x, y + 1)) continue;
            hit(x, y) = 1;
            any = true;
        }
    }
    if (!any) return SpanSet();
    return SpanSet::fromMask(hit, 1).dilated(1).clippedTo(box);
}

double psfMatchingSigma(double fromSigmaPx, double toSigmaPx) {
    const double d = toSigmaPx * toSigmaPx - fromSigmaPx * fromSigmaPx;
    return d > 0 ? std::sqrt(d) : 0.0;
}

double gaussianKernelSquaredSum(double sigmaPx) {
    if (!(sigmaPx > 0)) return 1.0;
    double s = 0;
    for (double v : gaussianKernel(sigmaPx)) s += v * v;
    return s * s;
}

void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel) {
    if (!(sigmaPx > 0)) throw LogicError("gaussianSmooth: sigma must be > 0");
    separable(in, out, gaussianKernel(sigmaPx), squaredKernel, false);
}

void gaussianSmoothNormalized(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel) {
    if (!(sigmaPx >= 0)) throw LogicError("gaussianSmoothNormalized: sigma must be >= 0");
    if (sigmaPx < 1e-3) {
        out = ImageF(in.bbox(), 0.0f);
        for (int y = 0; y < in.height(); ++y) std::copy(in.row(y), in.row(y) + in.width(), out.row(y));
        return;
    }
    separable(in, out, gaussianKernel(sigmaPx), squaredKernel, true);
}

double robustTemplateValue(double sumWJ, double sumW, int n, const float* top, const double* topW,
                           const double* topSigma, int k, double clipSigma, double fluxFraction) {
    if (!(sumW > 0) || n <= 0) return 0.0;
    const int maxDrop = std::min(k, n - (n + 1) / 2);
    double s = sumWJ, w = sumW;
    for (int j = 0; j < maxDrop; ++j) {
        const double ws = w - topW[j];
        if (!(ws > 1e-9 * sumW)) break;
        const double restMean = (s - topW[j] * double(top[j])) / ws;
        if (!(double(top[j]) > restMean + clipSigma * topSigma[j] + fluxFraction * std::abs(restMean))) break;
        s -= topW[j] * double(top[j]);
        w = ws;
    }
    return s / w;
}

ArtifactSearchResult findArtifacts(const ImageF& sD, const ImageF& sV, const ImageF& sT, double seedSigma,
                                   int growRadiusPx, const ArtifactRejectionConfig& config) {
    const Box2I box = sD.bbox();
    if (sV.bbox() != box || sT.bbox() != box) throw LogicError("findArtifacts: images must share one bbox");
    if (growRadiusPx < 0) throw LogicError("findArtifacts: growRadiusPx must be >= 0");
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
    const float f = float(config.referenceFluxFraction);
    const float kHi = float(seedSigma) * c, kLo = float(config.extendSigma) * c;
    Image<std::int32_t> low(box, 0), seed(box, 0);
    bool any = false;
    for (int y = 0; y < h; ++y) {
        const float *d = sD.row(y), *v = sV.row(y), *t = sT.row(y);
        std::int32_t *lo = low.row(y), *hi = seed.row(y);
        for (int x = 0; x < w; ++x) {
            if (!(v[x] > 0)) continue;
            const float s = std::sqrt(v[x]), tol = f * std::max(t[x], 0.0f);
            if (d[x] > kLo * s + tol) {
                lo[x] = 1;
                if (d[x] > kHi * s + tol) {
                    hi[x] = 1;
                    any = true;
                }
            }
        }
    }
    if (!any) return result;
    const Point2I o = box.min();
    for (const SpanSet& comp : SpanSet::fromMask(low, 1).split(Connectivity::EIGHT)) {
        ++result.candidateRegions;
        bool hit = false;
        for (const Span& sp : comp) {
            const std::int32_t* r = seed.row(sp.y - o.y);
            for (int x = sp.x0; x <= sp.x1 && !hit; ++x) hit = r[x - o.x] != 0;
            if (hit) break;
        }
        if (hit) result.artifacts.push_back(growRadiusPx > 0 ? comp.dilated(growRadiusPx).clippedTo(box) : comp);
    }
    return result;
}

}  // namespace drp
