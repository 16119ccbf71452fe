// DetectionFilter: the significance image of detectSources (stages/characterize/SourceDetection.h), made
// band by band: the PSF-matched filter of the image and of its variance (a streaming separable filter over the
// valid box, or only its regions whose Cauchy-Schwarz bound can reach the threshold), the filter truncated at
// the image boundary over the edge band, and the filtered-noise sample. Nothing here is full-size.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "core/MaskedImage.h"
#include "stages/characterize/SourceDetection.h"

namespace drp::detection {

/// The filtered-noise sample whose median is DetectionResult::noiseSigma: single values, and runs of one value
/// repeated (the rows of a flat variance, where every sample is the same), so that a flat image does not store
/// and select among a quarter of a million equal numbers. The median is the element at index n / 2 of the
/// sorted sample (n values in all), exactly what nth_element over the values written out one by one gives.
class NoiseSample {
public:
    /// One value.
    void add(double v) { values_.push_back(v); }
    /// `count` (>= 0) times the value v.
    void addRepeated(double v, std::int64_t count) {
        if (count <= 0) return;
        if (!runs_.empty() && runs_.back().first == v) runs_.back().second += count;
        else runs_.emplace_back(v, count);
        inRuns_ += count;
    }
    bool empty() const { return values_.empty() && inRuns_ == 0; }
    /// The median as described above; 0 for an empty sample.
    double median();

private:
    std::vector<double> values_;
    std::vector<std::pair<double, std::int64_t>> runs_;
    std::int64_t inRuns_ = 0;
};

/// The separable taps of the normalised kernel (image) and of the squared kernel (variance), as floats.
struct FilterTaps {
    std::vector<float> kx, ky, kx2, ky2;
    Point2I c;          ///< kernel centre
    int kw = 0, kh = 0; ///< kernel size
    bool symmetric = false;
};

/// What the significance of one image needs: the filter taps, the valid box, the unusable mask bits.
struct SignificancePlan {
    FilterTaps taps;
    Box2I valid;  ///< local: where the whole kernel fits
    MaskPixel bad = 0;
    int kernelHalfWidth = 0;
};

/// The filter taps, valid box and unusable mask bits of `image` for a Gaussian filter of sigma psfSigmaPixels.
/// Validates the config; throws InvalidInputError for a sigma <= 0 or an empty image.
SignificancePlan planSignificance(const MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config);

/// The significance image, produced in bands of 32 rows (aligned as the pruned regions' bands) and handed to
/// emit(y, row) one row at a time in raster order (local y; NaN where not filtered or where the window holds no
/// usable pixel): the matched filter over the valid box (everywhere, or with config.pruneByBound only the
/// regions that can reach the threshold), then with config.detectAtEdges the truncated filter over the edge
/// band. The filtered-noise sample goes to `sigmas`. Memory: one band, not the image.
void significanceByBands(const MaskedImageF& image, const SignificancePlan& plan, const SourceDetectionConfig& config,
                         NoiseSample& sigmas, const std::function<void(int, const float*)>& emit);

}  // namespace drp::detection
