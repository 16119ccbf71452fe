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
    if (!(referenceFluxFraction >= 0)) fail("referenceFluxFraction must be >= 0");
    if (!(smoothingSigmaPx == 0 || (smoothingSigmaPx >= 0.3 && smoothingSigmaPx <= 20)))
        fail("smoothingSigmaPx must be 0 or in [0.3, 20]");
    if (!(staticGuardSnr > 0)) fail("staticGuardSnr must be > 0");
    if (!(minNetFluxFraction >= 0 && minNetFluxFraction <= 1)) fail("minNetFluxFraction must be in [0, 1]");
    if (!(netSigma >= 0)) fail("netSigma must be >= 0");
    if (growRadiusPx < 0 || growRadiusPx > 100) fail("growRadiusPx must be in [0, 100]");
    if (minInputs < 2) fail("minInputs must be >= 2");
    if (!(extendSigma > 0 && extendSigma <= detectionSigma)) fail("extendSigma must be in (0, detectionSigma]");
}

namespace {

std::vector<float> gaussianKernel(double sigma, bool squared) {
    const int h = std::max(1, int(std::ceil(3.5 * sigma)));
    std::vector<double> k(2 * h + 1);
    double sum = 0;
    for (int i = -h; i <= h; ++i) sum += k[i + h] = std::exp(-0.5 * i * i / (sigma * sigma));
    std::vector<float> out(k.size());
    for (std::size_t i = 0; i < k.size(); ++i) {
        const double v = k[i] / sum;
        out[i] = float(squared ? v * v : v);
    }
    return out;
}

}  // namespace

void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel) {
    if (!(sigmaPx > 0)) throw LogicError("gaussianSmooth: sigma must be > 0");
    const std::vector<float> k = gaussianKernel(sigmaPx, squaredKernel);
    const int h = int(k.size() / 2);
    const int w = in.width(), ht = in.height();
    ImageF tmp(in.bbox(), 0.0f);
    for (int y = 0; y < ht; ++y) {
        const float* src = in.row(y);
        float* dst = tmp.row(y);
        for (int x = 0; x < w; ++x) {
            const int i0 = std::max(-h, -x), i1 = std::min(h, w - 1 - x);
            float s = 0;
            for (int i = i0; i <= i1; ++i) s += k[i + h] * src[x + i];
            dst[x] = s;
        }
    }
    if (out.bbox() != in.bbox() || out.sharesPixelsWith(in)) out = ImageF(in.bbox(), 0.0f);
    for (int y = 0; y < ht; ++y) {
        float* dst = out.row(y);
        std::fill(dst, dst + w, 0.0f);
        const int i0 = std::max(-h, -y), i1 = std::min(h, ht - 1 - y);
        for (int i = i0; i <= i1; ++i) {
            const float kv = k[i + h];
            const float* src = tmp.row(y + i);
            for (int x = 0; x < w; ++x) dst[x] += kv * src[x];
        }
    }
}

ArtifactSearchResult findArtifacts(const ImageF& diff, const ImageF& diffVariance, const ImageF& reference,
                                   const ImageF& referenceVariance, double inputPsfSigmaPx,
                                   double smoothingSigmaPx, const ArtifactRejectionConfig& config) {
    const Box2I box = diff.bbox();
    if (diffVariance.bbox() != box || reference.bbox() != box || referenceVariance.bbox() != box)
        throw LogicError("findArtifacts: images must share one bbox");
    if (!(inputPsfSigmaPx > 0) || !(smoothingSigmaPx > 0))
        throw LogicError("findArtifacts: PSF and smoothing sigmas must be > 0");
    const int w = box.width(), h = box.height();

    ImageF sD(box), sVD(box), sR(box);
    gaussianSmooth(diff, sD, smoothingSigmaPx);
    gaussianSmooth(diffVariance, sVD, smoothingSigmaPx, true);
    gaussianSmooth(reference, sR, smoothingSigmaPx);
    double sumK2 = 0;
    for (float v : gaussianKernel(smoothingSigmaPx, true)) sumK2 += v;
    sumK2 *= sumK2;  // 2-d: product of the 1-d sums

    // Candidate pixels.
    Image<std::int32_t> cand(box, 0);
    const float f = float(config.referenceFluxFraction);
    const float ks = float(config.detectionSigma), kp = float(config.sharpSigma);
    for (int y = 0; y < h; ++y) {
        const float *d = diff.row(y), *vd = diffVariance.row(y), *r = reference.row(y);
        const float *sd = sD.row(y), *svd = sVD.row(y), *sr = sR.row(y);
        std::int32_t* c = cand.row(y);
        for (int x = 0; x < w; ++x) {
            if (!(vd[x] > 0)) continue;
            const bool smooth = sd[x] > ks * std::sqrt(std::max(svd[x], 0.0f)) + f * std::max(sr[x], 0.0f);
            const bool sharp = d[x] > kp * std::sqrt(vd[x]) + f * std::max(r[x], 0.0f);
            if (smooth || sharp) c[x] = 1;
        }
    }
    ArtifactSearchResult result;
    const SpanSet all = SpanSet::fromMask(cand, 1);
    if (all.empty()) return result;
    const std::vector<SpanSet> regions = all.split(Connectivity::EIGHT);
    result.candidateRegions = int(regions.size());

    const int netRadius = int(std::ceil(3.0 * std::max(inputPsfSigmaPx, smoothingSigmaPx))) + 2;
    const int grow = config.growRadiusPx > 0 ? config.growRadiusPx : int(std::ceil(2.0 * inputPsfSigmaPx));
    const Point2I o = box.min();
    for (const SpanSet& region : regions) {
        double refSnr = 0, positive = 0;
        region.forEachPixel([&](Point2I p) {
            const int x = p.x - o.x, y = p.y - o.y;
            const double vr = referenceVariance(x, y);
            if (vr > 0) refSnr = std::max(refSnr, double(sR(x, y)) / std::sqrt(sumK2 * vr));
            positive += std::max(diff(x, y), 0.0f);
        });
        bool artifact = true;
        if (refSnr >= config.staticGuardSnr) {
            const SpanSet hood = region.dilated(netRadius).clippedTo(box);
            double net = 0, netVar = 0;
            hood.forEachPixel([&](Point2I p) {
                const int x = p.x - o.x, y = p.y - o.y;
                net += diff(x, y);
                netVar += diffVariance(x, y);
            });
            artifact = net > config.minNetFluxFraction * positive && net > config.netSigma * std::sqrt(netVar);
        }
        if (artifact)
            result.artifacts.push_back(region);
        else
            ++result.staticRegions;
    }
    if (result.artifacts.empty()) return result;
    // Hysteresis: extend each artifact over the connected pixels of its smoothed excess down to
    // extendSigma, so the faint wings of bright trails and streaks go with them; then grow.
    Image<std::int32_t> low(box, 0);
    const float kl = float(config.extendSigma);
    for (int y = 0; y < h; ++y) {
        const float *vd = diffVariance.row(y), *sd = sD.row(y), *svd = sVD.row(y), *sr = sR.row(y);
        std::int32_t* c = low.row(y);
        for (int x = 0; x < w; ++x)
            if (vd[x] > 0 && sd[x] > kl * std::sqrt(std::max(svd[x], 0.0f)) + f * std::max(sr[x], 0.0f)) c[x] = 1;
    }
    Image<std::int32_t> seed(box, 0);
    for (const SpanSet& a : result.artifacts) {
        a.setMask(low, 1);
        a.setMask(seed, 1);
    }
    std::vector<SpanSet> grown;
    for (const SpanSet& comp : SpanSet::fromMask(low, 1).split(Connectivity::EIGHT)) {
        bool hit = false;
        for (const Span& sp : comp) {
            const std::int32_t* r = seed.row(sp.y - o.y);
            for (int x = sp.x0; x <= sp.x1 && !hit; ++x) hit = r[x - o.x] != 0;
            if (hit) break;
        }
        if (hit) grown.push_back(comp.dilated(grow).clippedTo(box));
    }
    result.artifacts = std::move(grown);
    return result;
}

}  // namespace drp
