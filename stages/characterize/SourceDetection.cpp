#include "stages/characterize/SourceDetection.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Convolution.h"
#include "core/Error.h"
#include "core/Kernel.h"
#include "core/Simd.h"

namespace drp {

namespace {

// Row kernels of the streaming filter (element-wise; DRP_SIMD_CLONES: same bits with and without AVX2).
DRP_SIMD_CLONES void scaleRow(float* __restrict out, const float* __restrict in, int n, float k) {
    for (int x = 0; x < n; ++x) out[x] = k * in[x];
}
DRP_SIMD_CLONES void addFoldedTap(float* __restrict acc, const float* __restrict a, const float* __restrict b, int n,
                                  float k) {
    for (int x = 0; x < n; ++x) acc[x] += k * (a[x] + b[x]);
}
DRP_SIMD_CLONES void addTap(float* __restrict acc, const float* __restrict a, int n, float k) {
    for (int x = 0; x < n; ++x) acc[x] += k * a[x];
}
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
/// s = d / sqrt(v) where v > 0 (else s is left as it is).
DRP_SIMD_CLONES void significanceRow(float* __restrict s, const float* __restrict d, const float* __restrict v, int n) {
    for (int x = 0; x < n; ++x) s[x] = v[x] > 0.0f ? d[x] / std::sqrt(v[x]) : s[x];
}

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
    // pass: each input row is masked and filtered along x once into a ring of kernel-height rows, and
    // each output row is the y filter over the ring. Same arithmetic, term for term, as
    // convolved(..., Edge::Nan, Method::Direct) of zeroed copies (core/Convolution.cpp), without the four
    // full-size intermediate images, except that a symmetric kernel (the Gaussian) is applied with its
    // taps folded pairwise, k_t (a[x+t] + a[x-t]), which halves the multiplications and changes only the
    // rounding. EDGE outside the valid box.
    const int w = image.width(), h = image.height();
    const Kernel kn = kernel.normalized();
    const Box2I valid = validConvolutionBox(w, h, kernel);  // local indices
    ImageF sn(image.bbox(), std::numeric_limits<float>::quiet_NaN());
    std::vector<double> sigmas;
    sigmas.reserve(std::size_t(std::max<std::int64_t>(1, valid.area() / 61 + 1)));
    int untilSample = 61;  // every 61st pixel with a positive filtered variance is sampled
    if (!valid.empty()) {
        const int kw = kn.width(), kh = kn.height();
        const Point2I c = kn.centre();
        std::vector<float> kx(kn.xVector().begin(), kn.xVector().end()), ky(kn.yVector().begin(), kn.yVector().end());
        std::vector<float> kx2(kernel2.xVector().begin(), kernel2.xVector().end()),
            ky2(kernel2.yVector().begin(), kernel2.yVector().end());
        const int nx = valid.width(), x0 = valid.minX();
        auto isSymmetric = [](const std::vector<float>& v, int centre) {
            if (2 * centre + 1 != int(v.size())) return false;
            for (std::size_t i = 0; i < v.size(); ++i)
                if (v[i] != v[v.size() - 1 - i]) return false;
            return true;
        };
        const bool symmetric = isSymmetric(kx, c.x) && isSymmetric(kx2, c.x) && isSymmetric(ky, c.y) && isSymmetric(ky2, c.y);
        std::vector<float> ringD(std::size_t(kh) * std::size_t(nx)), ringV(std::size_t(kh) * std::size_t(nx));
        std::vector<float> rowD(static_cast<std::size_t>(w)), rowV(static_cast<std::size_t>(w));
        auto slot = [&](std::vector<float>& ring, int yIn) {
            return ring.data() + std::size_t(((yIn % kh) + kh) % kh) * std::size_t(nx);
        };
        auto horizontal = [&](int yIn) {
            const float* iv = image.image().row(yIn);
            const float* vv = image.variance().row(yIn);
            const MaskPixel* mv = mask.row(yIn);
            usableRow(rowD.data(), rowV.data(), iv, vv, mv, bad, w);
            float* __restrict dd = slot(ringD, yIn);
            float* __restrict dv = slot(ringV, yIn);
            if (symmetric) {  // Gaussian: fold the taps pairwise (half the multiplications)
                const float* __restrict pd = rowD.data() + x0;
                const float* __restrict pv = rowV.data() + x0;
                const float c1 = kx[std::size_t(c.x)], c2 = kx2[std::size_t(c.x)];
                scaleRow(dd, pd, nx, c1);
                scaleRow(dv, pv, nx, c2);
                for (int t = 1; t <= c.x; ++t) {
                    const float k1 = kx[std::size_t(c.x - t)], k2 = kx2[std::size_t(c.x - t)];
                    addFoldedTap(dd, pd + t, pd - t, nx, k1);
                    addFoldedTap(dv, pv + t, pv - t, nx, k2);
                }
                return;
            }
            std::fill(dd, dd + nx, 0.0f);
            std::fill(dv, dv + nx, 0.0f);
            for (int i = 0; i < kw; ++i) {
                const float k1 = kx[std::size_t(i)], k2 = kx2[std::size_t(i)];
                const float* __restrict sd = rowD.data() + (x0 - i + c.x);
                const float* __restrict sv = rowV.data() + (x0 - i + c.x);
                addTap(dd, sd, nx, k1);
                addTap(dv, sv, nx, k2);
            }
        };
        std::vector<float> accD(static_cast<std::size_t>(nx)), accV(static_cast<std::size_t>(nx));
        const int down = kh - 1 - c.y;
        for (int yIn = valid.minY() - down; yIn < valid.minY() + c.y; ++yIn) horizontal(yIn);
        for (int y = valid.minY(); y <= valid.maxY(); ++y) {
            horizontal(y + c.y);
            float* __restrict ad = accD.data();
            float* __restrict av = accV.data();
            if (symmetric) {
                const float c1 = ky[std::size_t(c.y)], c2 = ky2[std::size_t(c.y)];
                const float* __restrict md = slot(ringD, y);
                const float* __restrict mvar = slot(ringV, y);
                scaleRow(ad, md, nx, c1);
                scaleRow(av, mvar, nx, c2);
                for (int t = 1; t <= c.y; ++t) {
                    const float k1 = ky[std::size_t(c.y - t)], k2 = ky2[std::size_t(c.y - t)];
                    const float* __restrict ud = slot(ringD, y + t);
                    const float* __restrict ld = slot(ringD, y - t);
                    const float* __restrict uv = slot(ringV, y + t);
                    const float* __restrict lv = slot(ringV, y - t);
                    addFoldedTap(ad, ud, ld, nx, k1);
                    addFoldedTap(av, uv, lv, nx, k2);
                }
            } else {
                std::fill(ad, ad + nx, 0.0f);
                std::fill(av, av + nx, 0.0f);
                for (int j = 0; j < kh; ++j) {
                    const float k1 = ky[std::size_t(j)], k2 = ky2[std::size_t(j)];
                    const float* __restrict sd = slot(ringD, y - j + c.y);
                    const float* __restrict sv = slot(ringV, y - j + c.y);
                    addTap(ad, sd, nx, k1);
                    addTap(av, sv, nx, k2);
                }
            }
            float* s = sn.row(y) + x0;
            significanceRow(s, ad, av, nx);
            for (int x = 0; x < nx; ++x)  // every 61st filtered noise, for the noise estimate
                if (av[x] > 0.0f && --untilSample == 0) {
                    sigmas.push_back(std::sqrt(av[x]));
                    untilSample = 61;
                }
        }
    }
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
