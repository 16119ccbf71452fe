#include "stages/characterize/SourceDetection.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>

#include "core/Error.h"
#include "core/Simd.h"
#include "stages/characterize/DetectionFilter.h"
#include "stages/characterize/RowFootprints.h"
#include "stages/measure/AdaptiveMoments.h"

namespace drp {

using detection::NoiseSample;
using detection::SignificancePlan;

namespace {

/// Number of x with any of `bits` set in m[x].
DRP_SIMD_CLONES int countBitsSet(const MaskPixel* __restrict m, int n, MaskPixel bits) {
    int k = 0;
    for (int x = 0; x < n; ++x) k += (m[x] & bits) != 0 ? 1 : 0;
    return k;
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

ImageF detectionSignificance(const MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config) {
    const SignificancePlan plan = detection::planSignificance(image, psfSigmaPixels, config);
    ImageF sn(image.bbox(), kNoFill);  // every row is emitted
    NoiseSample sigmas;
    detection::significanceByBands(image, plan, config, sigmas, [&](int y, const float* row) {
        std::memcpy(sn.row(y), row, sizeof(float) * std::size_t(sn.width()));
    });
    return sn;
}

DetectionResult detectSources(MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config) {
    const SignificancePlan plan = detection::planSignificance(image, psfSigmaPixels, config);
    DetectionResult result;
    result.kernelHalfWidth = plan.kernelHalfWidth;
    Mask& mask = image.mask();
    const MaskPixel edgeBit = MaskPixel(1u << mask.addPlane("EDGE"));
    const MaskPixel detBit = MaskPixel(1u << mask.addPlane("DETECTED"));
    const MaskPixel negBit = MaskPixel(1u << mask.addPlane("DETECTED_NEGATIVE"));

    // The PSF-matched filter of the image and of its variance (kernel^2), with unusable pixels zeroed
    // (value and variance), and the significance filtered / sqrt(filtered variance), produced band by band
    // (significanceByBands) and thresholded row by row (RowFootprintDetector: the footprints and peaks of
    // detectFootprints on the whole significance image, which is never held). EDGE outside the valid box.
    DetectionConfig dc;
    dc.threshold = config.thresholdSigma;
    dc.minPixels = config.minPixels;
    dc.minPeakSeparation = config.minPeakSeparation;
    dc.noiseSigma = 1.0;  // the image is already a significance
    std::optional<RowFootprintDetector> positive, negative;
    positive.emplace(image.bbox(), dc);
    if (config.includeNegative) {
        dc.negative = true;
        negative.emplace(image.bbox(), dc);
    }
    NoiseSample sigmas;
    detection::significanceByBands(image, plan, config, sigmas, [&](int, const float* row) {
        positive->addRow(row);
        if (negative) negative->addRow(row);
    });
    const int w = image.width(), h = image.height();
    const Box2I& valid = plan.valid;
    for (int y = 0; y < h; ++y) {
        MaskPixel* mv = mask.row(y);
        const bool rowValid = y >= valid.minY() && y <= valid.maxY();
        // Clear DETECTED and DETECTED_NEGATIVE, writing only rows that have them (a read is cheaper than a
        // read-modify-write of every pixel, and a clean row stays clean in memory).
        if (countBitsSet(mv, w, detBit | negBit) > 0) {
            const MaskPixel clear = MaskPixel(~(detBit | negBit));
            for (int x = 0; x < w; ++x) mv[x] &= clear;
        }
        if (!rowValid) {
            for (int x = 0; x < w; ++x) mv[x] |= edgeBit;
        } else {
            for (int x = 0; x < std::min(w, valid.minX()); ++x) mv[x] |= edgeBit;
            for (int x = std::max(0, valid.maxX() + 1); x < w; ++x) mv[x] |= edgeBit;
        }
    }
    if (!sigmas.empty()) result.noiseSigma = sigmas.median();
    result.threshold = config.thresholdSigma * result.noiseSigma;

    const int grow = int(std::lround(config.growFactor * psfSigmaPixels));
    auto finish = [&](RowFootprintDetector& detector, MaskPixel bit) {
        FootprintSet fs = detector.finish();
        if (grow > 0) fs = fs.dilated(grow);
        fs.setMask(mask, bit);
        return fs;
    };
    result.positive = finish(*positive, detBit);
    if (negative) result.negative = finish(*negative, negBit);

    if (config.reEstimateBackground) {
        Background bg = estimateBackground(image, config.background);
        subtractBackground(image, bg);
        result.background = std::move(bg);
    }
    return result;
}

double matchedFilterSigma(const Psf& psf, Point2D position, double minWeightSigma) {
    AdaptiveMomentsControl control;
    control.minWeightVariance = minWeightSigma * minWeightSigma;
    const AdaptiveMomentsResult core =
        computeAdaptiveMoments(psf.computeKernelImage(position), {0.0, 0.0}, SecondMoments::circle(1.0), control);
    const double s = core.failed() || !core.converged ? std::numeric_limits<double>::quiet_NaN() : core.moments.determinantRadius();
    return std::isfinite(s) && s > 0 ? s : std::numeric_limits<double>::quiet_NaN();
}

}  // namespace drp
