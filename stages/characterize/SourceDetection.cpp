#include "stages/characterize/SourceDetection.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Convolution.h"
#include "core/Error.h"
#include "core/Kernel.h"

namespace drp {

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

    // Inputs with unusable pixels zeroed (value and variance).
    const int w = image.width(), h = image.height();
    ImageF data(image.bbox(), 0.0f), var(image.bbox(), 0.0f);
    for (int y = 0; y < h; ++y) {
        const float* iv = image.image().row(y);
        const float* vv = image.variance().row(y);
        const MaskPixel* mv = mask.row(y);
        float* d = data.row(y);
        float* v = var.row(y);
        for (int x = 0; x < w; ++x) {
            const bool ok = !(mv[x] & bad) && std::isfinite(iv[x]) && std::isfinite(vv[x]) && vv[x] >= 0.0f;
            d[x] = ok ? iv[x] : 0.0f;
            v[x] = ok ? vv[x] : 0.0f;
        }
    }
    ConvolutionControl cc;
    cc.edge = ConvolutionControl::Edge::Nan;
    ImageF filtered = convolved(data, kernel, cc);
    cc.normalize = false;
    ImageF filteredVar = convolved(var, kernel2, cc);

    // Significance; EDGE outside the valid box.
    const Box2I valid = validConvolutionBox(w, h, kernel);  // local indices
    ImageF sn(image.bbox(), std::numeric_limits<float>::quiet_NaN());
    std::vector<double> sigmas;
    sigmas.reserve(std::size_t(std::max<std::int64_t>(1, valid.area() / 61 + 1)));
    std::int64_t counter = 0;
    for (int y = 0; y < h; ++y) {
        MaskPixel* mv = mask.row(y);
        const bool rowValid = y >= valid.minY() && y <= valid.maxY();
        const float* f = filtered.row(y);
        const float* fv = filteredVar.row(y);
        float* s = sn.row(y);
        for (int x = 0; x < w; ++x) {
            mv[x] &= ~(detBit | negBit);
            if (!rowValid || x < valid.minX() || x > valid.maxX()) {
                mv[x] |= edgeBit;
                continue;
            }
            if (fv[x] > 0.0f) {
                const float sig = std::sqrt(fv[x]);
                s[x] = f[x] / sig;
                if (++counter % 61 == 0) sigmas.push_back(sig);
            }
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
