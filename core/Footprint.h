// Footprint: a detected region (a shared, immutable SpanSet) with the peaks found in it; FootprintSet:
// the footprints of one detection pass; detectFootprints: threshold + connected components + peaks.
//
// Coordinates are in the parent pixel frame (Image::xy0), as everywhere in core. Footprints are
// immutable after construction; modifiers (dilated, clippedTo, merged, withSortedPeaks) return new
// footprints. Share as std::shared_ptr<const Footprint>.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "core/Image.h"
#include "core/SpanSet.h"

namespace drp {

/// One peak of a footprint.
struct PeakRecord {
    std::int64_t id = 0;       ///< unique within a FootprintSet (assigned by detection in output order)
    double x = 0.0;            ///< position (parent frame, pixels); the pixel centre for detected peaks
    double y = 0.0;
    int ix = 0;                ///< integer pixel of the peak (parent frame)
    int iy = 0;
    float peakValue = 0.0f;    ///< image value at (ix, iy)
    std::optional<float> significance;  ///< peakValue / noise sigma, if the noise was known
    friend bool operator==(const PeakRecord&, const PeakRecord&) = default;
};

class Footprint {
public:
    Footprint() : spans_(std::make_shared<const SpanSet>()) {}
    explicit Footprint(std::shared_ptr<const SpanSet> spans, std::vector<PeakRecord> peaks = {});
    explicit Footprint(SpanSet spans, std::vector<PeakRecord> peaks = {});

    const SpanSet& spans() const { return *spans_; }
    const std::shared_ptr<const SpanSet>& spanSetPtr() const { return spans_; }
    const std::vector<PeakRecord>& peaks() const { return peaks_; }
    std::int64_t area() const { return spans_->area(); }
    Box2I bbox() const { return spans_->bbox(); }
    bool contains(Point2I p) const { return spans_->contains(p); }
    bool empty() const { return spans_->empty(); }

    /// Same spans, peaks sorted by decreasing peakValue (by increasing value when `negative`: the
    /// most negative first). Ties keep their order.
    Footprint withSortedPeaks(bool negative = false) const;
    /// Same spans, other peaks.
    Footprint withPeaks(std::vector<PeakRecord> peaks) const { return Footprint(spans_, std::move(peaks)); }
    /// Spans grown by a structuring element; the peaks are kept.
    Footprint dilated(int radius, Stencil stencil = Stencil::CIRCLE) const;
    Footprint dilated(const SpanSet& element) const;
    /// Spans clipped to the box; peaks outside the box are dropped.
    Footprint clippedTo(const Box2I& box) const;
    /// Union of the spans; the peaks of this footprint, then those of `other` that are farther than
    /// `minPeakSeparation` pixels from every peak already kept.
    Footprint merged(const Footprint& other, double minPeakSeparation = 0.5) const;
    /// Merge several footprints in order (same rule as merged). Empty input gives an empty footprint.
    static Footprint merge(const std::vector<Footprint>& footprints, double minPeakSeparation = 0.5);

    friend bool operator==(const Footprint& a, const Footprint& b) {
        return *a.spans_ == *b.spans_ && a.peaks_ == b.peaks_;
    }

private:
    std::shared_ptr<const SpanSet> spans_;
    std::vector<PeakRecord> peaks_;
};

/// The footprints of one detection pass over one image.
class FootprintSet {
public:
    FootprintSet() = default;
    FootprintSet(std::vector<std::shared_ptr<const Footprint>> footprints, Box2I region)
        : footprints_(std::move(footprints)), region_(region) {}

    const std::vector<std::shared_ptr<const Footprint>>& footprints() const { return footprints_; }
    std::size_t size() const { return footprints_.size(); }
    const Footprint& operator[](std::size_t i) const { return *footprints_[i]; }
    /// The image bbox the detection ran on.
    Box2I region() const { return region_; }
    /// Sum of footprint areas and of peak counts.
    std::int64_t totalArea() const;
    std::size_t totalPeaks() const;
    /// OR `bits` into the mask over every footprint (clipped to the mask).
    void setMask(const Image<std::int32_t>& mask, std::int32_t bits) const;
    /// All footprints grown by `radius`; footprints that then touch (share or abut pixels, per
    /// `connectivity`) are merged (peaks kept, deduplicated by `minPeakSeparation`); the result is
    /// clipped to region() (not clipped if region() is empty) and ordered by first pixel in raster order.
    FootprintSet dilated(int radius, Stencil stencil = Stencil::CIRCLE,
                         Connectivity connectivity = Connectivity::EIGHT, double minPeakSeparation = 0.5) const;

private:
    std::vector<std::shared_ptr<const Footprint>> footprints_;
    Box2I region_;
};

/// Configuration of detectFootprints.
struct DetectionConfig {
    /// Detection threshold in image units (> 0 when negative is set; any finite value otherwise).
    /// A pixel is "above threshold" when value >= threshold (positive polarity) or
    /// -value >= threshold (negative polarity).
    double threshold = 0.0;
    /// Negative polarity: detect regions below -threshold; peaks are local minima and the mask
    /// plane is DETECTED_NEGATIVE. Default false.
    bool negative = false;
    /// Minimum number of pixels of a kept footprint (>= 1). Default 1.
    int minPixels = 1;
    /// Pixel connectivity of a footprint. Default EIGHT (the afw / SExtractor convention).
    Connectivity connectivity = Connectivity::EIGHT;
    /// Minimum distance in pixels between two peaks of one footprint (>= 0); when two local maxima are
    /// closer, the fainter is dropped. 0 keeps every local maximum. Default 0.
    double minPeakSeparation = 0.0;
    /// Maximum peaks kept per footprint (the brightest; >= 1). Default 10000.
    int maxPeaksPerFootprint = 10000;
    /// Noise sigma in image units used to fill PeakRecord::significance (|peak| / sigma); 0 leaves
    /// significance unset. Default 0.
    double noiseSigma = 0.0;

    /// Throws ConfigError for out-of-bounds values.
    void validate() const;
    friend bool operator==(const DetectionConfig&, const DetectionConfig&) = default;
};

class Mask;

/// Detect all connected above-threshold regions of `image` (parent frame via xy0) in one raster pass
/// (runs joined by union-find), keep those with at least minPixels pixels, and find their peaks: a
/// peak is a pixel whose value is greater than its earlier 8-neighbours (in raster order) and not
/// less than its later ones, among the neighbours inside the same footprint (ties go to the first
/// pixel, so a flat top gives one peak). Peaks of a footprint are sorted brightest first.
/// Footprints are ordered by their first pixel in raster order; peak ids run 1, 2, ... in output order.
/// If `mask` is given (same bbox as the image; LogicError otherwise) the DETECTED (or
/// DETECTED_NEGATIVE) plane is set over the kept footprints.
FootprintSet detectFootprints(const Image<float>& image, const DetectionConfig& config, Mask* mask = nullptr);

/// The float f such that, for every float v, (v >= f) == (double(v) >= t): a double threshold applied to float pixels.
float floatThresholdAbove(double t);

/// The float limit detection compares pixels with: floatThresholdAbove(threshold), negated for negative detection.
float runThreshold(double threshold, bool negative);

/// Append the maximal runs of row y (w pixels) that are above threshold: v >= lim, or v <= lim when `negative`.
void appendRowRuns(const float* row, int w, int y, float lim, bool negative, std::vector<Span>& runs);

/// appendRowRuns, each new run a singleton of `uf`, joined with the runs of row y - 1 (runs[prevBegin .. the new row's
/// first run)) that overlap it or come within `slack` columns (1: 8-connectivity, 0: 4-connectivity). Returns the new
/// row's first run index (the next row's prevBegin).
std::size_t appendAndJoinRowRuns(const float* row, int w, int y, float lim, bool negative, int slack, std::size_t prevBegin,
                                 std::vector<Span>& runs, RunUnionFind& uf);

/// The peak test of detectFootprints (and the row-streaming detector) at local pixel (x, y) of value v (signed: larger is brighter).
/// rm / rp are the rows above / below (null at the image edge). With `diagonalSet` (4-connectivity)
/// a diagonal neighbour only counts if it belongs to that set.
inline bool isPeakPixel(const float* rm, const float* r0, const float* rp, int x, int w, float sign, float v,
                   const SpanSet* diagonalSet, int y) {
    const bool left = x > 0, right = x + 1 < w;
    // Earlier neighbours (row above, left) must be strictly fainter; later ones not brighter.
    if (left && sign * r0[x - 1] >= v) return false;
    if (right && sign * r0[x + 1] > v) return false;
    if (rm && sign * rm[x] >= v) return false;
    if (rp && sign * rp[x] > v) return false;
    auto diagonalVetoes = [&](int xx, int yy) { return !diagonalSet || diagonalSet->contains({xx, yy}); };
    if (rm) {
        if (left && sign * rm[x - 1] >= v && diagonalVetoes(x - 1, y - 1)) return false;
        if (right && sign * rm[x + 1] >= v && diagonalVetoes(x + 1, y - 1)) return false;
    }
    if (rp) {
        if (left && sign * rp[x - 1] > v && diagonalVetoes(x - 1, y + 1)) return false;
        if (right && sign * rp[x + 1] > v && diagonalVetoes(x + 1, y + 1)) return false;
    }
    return true;
}

/// Runs of above-threshold pixels grouped into footprints (detectFootprints and the row-streaming detector share it).
struct RunGroups {
    std::vector<std::uint32_t> runFootprint;  ///< per run: its footprint's index, or UINT32_MAX if its group is too small
    std::uint32_t count = 0;                  ///< footprints kept
    std::vector<std::uint32_t> offset;        ///< count + 1: footprint g's runs are sorted[offset[g] .. offset[g + 1])
    std::vector<Span> sorted;                 ///< the kept runs, by footprint, each footprint's in raster order
    /// The spans of footprint g (local coordinates, as the runs).
    SpanSet spans(std::uint32_t g) const;
};

/// Group `runs` (in raster order) by their root in `uf` (the first run of its group in raster order, so groups come
/// out in raster order of their first pixel) and keep the groups of at least minPixels pixels.
RunGroups groupRuns(const std::vector<Span>& runs, RunUnionFind& uf, std::int64_t minPixels);

/// A local maximum offered as a peak: position local to the image's xy0, value signed so that larger is brighter.
struct PeakCandidate {
    int x, y;
    float value;
};

/// The peaks of one footprint from its candidates (as detectFootprints keeps them): brightest first (a stable sort, so
/// equal values keep their raster order), at most config.maxPeaksPerFootprint, each at least config.minPeakSeparation
/// from every brighter peak kept; positions in the parent frame (+ xy0), peakValue = sign x value, significance from
/// config.noiseSigma; ids nextId, nextId + 1, ... (nextId is advanced). Sorts `candidates`.
std::vector<PeakRecord> selectPeaks(std::vector<PeakCandidate>& candidates, const DetectionConfig& config, Point2I xy0, float sign,
                                    std::int64_t& nextId);

/// The footprints of the kept groups, in order: each group's spans (shifted by xy0) with the peaks selectPeaks keeps
/// among the candidates `candidatesOf(g, localSpans, out)` appends (local coordinates, raster order); peak ids run
/// 1, 2, ... over all footprints.
std::vector<std::shared_ptr<const Footprint>> footprintsOfGroups(
    const RunGroups& groups, const DetectionConfig& config, Point2I xy0, float sign,
    const std::function<void(std::uint32_t, const SpanSet&, std::vector<PeakCandidate>&)>& candidatesOf);

}  // namespace drp
