#include "core/Footprint.h"

#include <algorithm>
#include <functional>
#include <climits>
#include <cmath>
#include <limits>
#include <sstream>

#include "core/Error.h"
#include "core/Mask.h"

namespace drp {

// ---------------------------------------------------------------------------------------------
// Footprint

Footprint::Footprint(std::shared_ptr<const SpanSet> spans, std::vector<PeakRecord> peaks)
    : spans_(spans ? std::move(spans) : std::make_shared<const SpanSet>()), peaks_(std::move(peaks)) {}

Footprint::Footprint(SpanSet spans, std::vector<PeakRecord> peaks)
    : spans_(std::make_shared<const SpanSet>(std::move(spans))), peaks_(std::move(peaks)) {}

Footprint Footprint::withSortedPeaks(bool negative) const {
    std::vector<PeakRecord> p = peaks_;
    if (negative)
        std::stable_sort(p.begin(), p.end(), [](const PeakRecord& a, const PeakRecord& b) { return a.peakValue < b.peakValue; });
    else
        std::stable_sort(p.begin(), p.end(), [](const PeakRecord& a, const PeakRecord& b) { return a.peakValue > b.peakValue; });
    return Footprint(spans_, std::move(p));
}

Footprint Footprint::dilated(int radius, Stencil stencil) const {
    return Footprint(spans_->dilated(radius, stencil), peaks_);
}

Footprint Footprint::dilated(const SpanSet& element) const { return Footprint(spans_->dilated(element), peaks_); }

Footprint Footprint::clippedTo(const Box2I& box) const {
    std::vector<PeakRecord> kept;
    for (const PeakRecord& p : peaks_)
        if (box.contains(Point2I{p.ix, p.iy})) kept.push_back(p);
    return Footprint(spans_->clippedTo(box), std::move(kept));
}

namespace {

void addPeaksDeduplicated(std::vector<PeakRecord>& kept, const std::vector<PeakRecord>& candidates, double minSep) {
    const double minSep2 = minSep * minSep;
    const std::size_t nBefore = kept.size();
    for (const PeakRecord& c : candidates) {
        bool close = false;
        for (std::size_t i = 0; i < nBefore && !close; ++i) {
            const double dx = kept[i].x - c.x, dy = kept[i].y - c.y;
            close = dx * dx + dy * dy <= minSep2;
        }
        if (!close) kept.push_back(c);
    }
}

}  // namespace

Footprint Footprint::merged(const Footprint& other, double minPeakSeparation) const {
    std::vector<PeakRecord> peaks = peaks_;
    addPeaksDeduplicated(peaks, other.peaks_, minPeakSeparation);
    return Footprint(spans_->unionWith(*other.spans_), std::move(peaks));
}

Footprint Footprint::merge(const std::vector<Footprint>& footprints, double minPeakSeparation) {
    if (footprints.empty()) return Footprint();
    std::vector<Span> all;
    std::vector<PeakRecord> peaks;
    for (const Footprint& f : footprints) {
        all.insert(all.end(), f.spans().begin(), f.spans().end());
        addPeaksDeduplicated(peaks, f.peaks_, minPeakSeparation);
    }
    return Footprint(SpanSet(std::move(all)), std::move(peaks));
}

// ---------------------------------------------------------------------------------------------
// FootprintSet

std::int64_t FootprintSet::totalArea() const {
    std::int64_t n = 0;
    for (const auto& f : footprints_) n += f->area();
    return n;
}

std::size_t FootprintSet::totalPeaks() const {
    std::size_t n = 0;
    for (const auto& f : footprints_) n += f->peaks().size();
    return n;
}

void FootprintSet::setMask(const Image<std::int32_t>& mask, std::int32_t bits) const {
    for (const auto& f : footprints_) f->spans().setMask(mask, bits);
}

FootprintSet FootprintSet::dilated(int radius, Stencil stencil, Connectivity connectivity,
                                   double minPeakSeparation) const {
    const SpanSet element = SpanSet::fromShape(radius, stencil);
    // The union of the dilations is the dilation of the union: grow everything at once.
    std::vector<Span> all;
    for (const auto& f : footprints_) all.insert(all.end(), f->spans().begin(), f->spans().end());
    // An empty region (a set built by hand without one) means no clipping.
    auto clip = [this](const SpanSet& ss) { return region_.empty() ? ss : ss.clippedTo(region_); };
    const SpanSet grown = clip(SpanSet(std::move(all)).dilated(element));
    std::size_t nParts = 0;
    const std::vector<std::uint32_t> label = grown.componentLabels(connectivity, &nParts);
    // A pixel of each grown footprint that survives the clipping identifies its component.
    std::vector<Point2I> firstPixel(footprints_.size());
    std::vector<char> present(footprints_.size(), 0);
    for (std::size_t i = 0; i < footprints_.size(); ++i) {
        const SpanSet& own = footprints_[i]->spans();
        if (own.empty()) continue;
        if (region_.empty() || region_.contains(own.bbox())) {
            firstPixel[i] = {own.spans().front().x0, own.spans().front().y};
        } else {
            SpanSet probe = clip(own);
            if (probe.empty()) probe = clip(own.dilated(element));
            if (probe.empty()) continue;
            firstPixel[i] = {probe.spans().front().x0, probe.spans().front().y};
        }
        present[i] = 1;
    }
    std::vector<std::vector<PeakRecord>> peaks(nParts);
    for (std::size_t i = 0; i < footprints_.size(); ++i) {
        if (!present[i]) continue;
        const std::int64_t k = grown.findSpan(firstPixel[i]);
        if (k < 0) throw LogicError("FootprintSet::dilated: internal error, a footprint pixel is not in the union");
        addPeaksDeduplicated(peaks[label[std::size_t(k)]], footprints_[i]->peaks(), minPeakSeparation);
    }
    std::vector<std::vector<Span>> parts(nParts);
    for (std::size_t k = 0; k < grown.size(); ++k) parts[label[k]].push_back(grown.spans()[k]);
    std::vector<std::shared_ptr<const Footprint>> out;
    out.reserve(nParts);
    for (std::size_t c = 0; c < nParts; ++c)
        out.push_back(std::make_shared<const Footprint>(SpanSet::fromNormalizedSpans(std::move(parts[c])),
                                                        std::move(peaks[c])));
    return FootprintSet(std::move(out), region_);
}

// ---------------------------------------------------------------------------------------------
// Detection

void DetectionConfig::validate() const {
    auto fail = [](const std::string& what) { throw ConfigError("DetectionConfig: " + what); };
    if (!std::isfinite(threshold)) fail("threshold must be finite");
    if (negative && !(threshold > 0)) fail("threshold must be > 0 for negative polarity");
    if (minPixels < 1) fail("minPixels must be >= 1");
    if (!(minPeakSeparation >= 0) || !std::isfinite(minPeakSeparation)) fail("minPeakSeparation must be >= 0");
    if (maxPeaksPerFootprint < 1) fail("maxPeaksPerFootprint must be >= 1");
    if (!(noiseSigma >= 0) || !std::isfinite(noiseSigma)) fail("noiseSigma must be >= 0");
}

namespace {

template <bool Neg>
void appendRowRunsOf(const float* row, int w, int y, float lim, std::vector<Span>& runs) {
    constexpr int kChunk = 32;
    int i = 0;
    while (i < w) {
        // Skip chunks with no pixel above threshold (a count, so the test vectorises).
        while (i + kChunk <= w) {
            int count = 0;
            const float* p = row + i;
            for (int k = 0; k < kChunk; ++k) count += Neg ? (p[k] <= lim) : (p[k] >= lim);
            if (count) break;
            i += kChunk;
        }
        auto above = [&](int x) { return Neg ? (row[x] <= lim) : (row[x] >= lim); };
        const int stop = std::min(w, i + kChunk);
        while (i < stop && !above(i)) ++i;
        if (i == stop) continue;
        const int start = i;
        while (i < w && above(i)) ++i;
        runs.push_back({y, start, i - 1});
    }
}

}  // namespace

void appendRowRuns(const float* row, int w, int y, float lim, bool negative, std::vector<Span>& runs) {
    if (negative) appendRowRunsOf<true>(row, w, y, lim, runs);
    else appendRowRunsOf<false>(row, w, y, lim, runs);
}

std::size_t appendAndJoinRowRuns(const float* row, int w, int y, float lim, bool negative, int slack, std::size_t prevBegin,
                                 std::vector<Span>& runs, RunUnionFind& uf) {
    const std::size_t rowBegin = runs.size();
    appendRowRuns(row, w, y, lim, negative, runs);
    const std::size_t rowEnd = runs.size();
    uf.parent.resize(rowEnd);
    for (std::size_t r = rowBegin; r < rowEnd; ++r) uf.parent[r] = std::uint32_t(r);
    // Join with the previous row (two-pointer sweep; both rows sorted and disjoint).
    if (rowBegin > prevBegin && rowEnd > rowBegin && runs[prevBegin].y == y - 1) {
        std::size_t p = prevBegin, q = rowBegin;
        while (p < rowBegin && q < rowEnd) {
            const Span& a = runs[p];
            const Span& b = runs[q];
            if (a.x0 <= b.x1 + slack && b.x0 <= a.x1 + slack) uf.unite(std::uint32_t(p), std::uint32_t(q));
            (a.x1 < b.x1) ? ++p : ++q;
        }
    }
    return rowBegin;
}

SpanSet RunGroups::spans(std::uint32_t g) const {
    return SpanSet::fromNormalizedSpans(std::vector<Span>(sorted.begin() + offset[g], sorted.begin() + offset[g + 1]));
}

std::vector<std::shared_ptr<const Footprint>> footprintsOfGroups(
    const RunGroups& groups, const DetectionConfig& config, Point2I xy0, float sign,
    const std::function<void(std::uint32_t, const SpanSet&, std::vector<PeakCandidate>&)>& candidatesOf) {
    std::vector<std::shared_ptr<const Footprint>> footprints;
    footprints.reserve(groups.count);
    std::vector<PeakCandidate> cands;
    std::int64_t nextId = 1;
    for (std::uint32_t g = 0; g < groups.count; ++g) {
        const SpanSet localSet = groups.spans(g);
        cands.clear();
        candidatesOf(g, localSet, cands);
        std::vector<PeakRecord> peaks = selectPeaks(cands, config, xy0, sign, nextId);
        footprints.push_back(std::make_shared<const Footprint>(localSet.shift(xy0.x, xy0.y), std::move(peaks)));
    }
    return footprints;
}

float floatThresholdAbove(double t) {
    float f = float(t);
    if (double(f) < t) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
}

float runThreshold(double threshold, bool negative) {
    return negative ? -floatThresholdAbove(threshold) : floatThresholdAbove(threshold);
}

RunGroups groupRuns(const std::vector<Span>& runs, RunUnionFind& uf, std::int64_t minPixels) {
    const std::size_t nRuns = runs.size();
    std::vector<std::uint32_t> group(nRuns);
    std::vector<std::int64_t> groupArea;
    std::vector<std::uint32_t> groupOfRoot(nRuns, UINT32_MAX);
    for (std::size_t r = 0; r < nRuns; ++r) {
        const std::uint32_t root = uf.find(std::uint32_t(r));
        if (groupOfRoot[root] == UINT32_MAX) {
            groupOfRoot[root] = std::uint32_t(groupArea.size());
            groupArea.push_back(0);
        }
        group[r] = groupOfRoot[root];
        groupArea[group[r]] += runs[r].width();
    }
    // Keep the large enough groups; bucket their runs (counting sort keeps raster order).
    RunGroups out;
    std::vector<std::uint32_t> outIndex(groupArea.size(), UINT32_MAX);
    for (std::size_t g = 0; g < groupArea.size(); ++g)
        if (groupArea[g] >= minPixels) outIndex[g] = out.count++;
    out.runFootprint.resize(nRuns);
    out.offset.assign(out.count + 1, 0);
    for (std::size_t r = 0; r < nRuns; ++r) {
        out.runFootprint[r] = outIndex[group[r]];
        if (out.runFootprint[r] != UINT32_MAX) ++out.offset[out.runFootprint[r] + 1];
    }
    for (std::uint32_t g = 0; g < out.count; ++g) out.offset[g + 1] += out.offset[g];
    out.sorted.resize(out.offset[out.count]);
    std::vector<std::uint32_t> fill(out.offset.begin(), out.offset.end() - 1);
    for (std::size_t r = 0; r < nRuns; ++r)
        if (out.runFootprint[r] != UINT32_MAX) out.sorted[fill[out.runFootprint[r]]++] = runs[r];
    return out;
}

std::vector<PeakRecord> selectPeaks(std::vector<PeakCandidate>& cands, const DetectionConfig& config, Point2I xy0, float sign,
                                    std::int64_t& nextId) {
    std::stable_sort(cands.begin(), cands.end(), [](const PeakCandidate& a, const PeakCandidate& b) { return a.value > b.value; });
    std::vector<PeakRecord> peaks;
    const double minSep2 = config.minPeakSeparation * config.minPeakSeparation;
    for (const PeakCandidate& c : cands) {
        if (int(peaks.size()) >= config.maxPeaksPerFootprint) break;
        const int px = c.x + xy0.x, py = c.y + xy0.y;
        bool close = false;
        if (config.minPeakSeparation > 0)
            for (const PeakRecord& k : peaks) {
                const double dx = k.ix - px, dy = k.iy - py;
                if (dx * dx + dy * dy < minSep2) {
                    close = true;
                    break;
                }
            }
        if (close) continue;
        PeakRecord p;
        p.ix = px;
        p.iy = py;
        p.x = px;
        p.y = py;
        p.peakValue = sign * c.value;
        if (config.noiseSigma > 0) p.significance = float(double(c.value) / config.noiseSigma);
        peaks.push_back(p);
    }
    for (PeakRecord& p : peaks) p.id = nextId++;
    return peaks;
}

FootprintSet detectFootprints(const Image<float>& image, const DetectionConfig& config, Mask* mask) {
    config.validate();
    if (mask && !(mask->bbox() == image.bbox())) {
        std::ostringstream os;
        os << "detectFootprints: mask " << mask->bbox() << " and image " << image.bbox() << " differ";
        throw LogicError(os.str());
    }
    const bool neg = config.negative;
    const int slack = config.connectivity == Connectivity::EIGHT ? 1 : 0;
    // Raster pass: the maximal above-threshold runs (local coordinates), joined row to row.
    std::vector<Span> runs;
    RunUnionFind uf;
    const float lim = runThreshold(config.threshold, neg);
    for (int j = 0, prevBegin = 0; j < image.height(); ++j)
        prevBegin = int(appendAndJoinRowRuns(image.row(j), image.width(), j, lim, neg, slack, std::size_t(prevBegin), runs, uf));

    const RunGroups groups = groupRuns(runs, uf, config.minPixels);

    const int w = image.width(), h = image.height();
    const Point2I xy0 = image.xy0();
    const float sign = neg ? -1.0f : 1.0f;
    // Peaks: greater than earlier neighbours, not less than later ones, among neighbours in the footprint. With
    // 8-connectivity every above-threshold neighbour is in the footprint and every other neighbour is fainter, so only
    // the image is consulted; with 4-connectivity a diagonal neighbour may belong to another footprint and is then
    // ignored.
    auto candidatesOf = [&](std::uint32_t, const SpanSet& localSet, std::vector<PeakCandidate>& cands) {
        for (const Span& s : localSet) {
            const int y = s.y;
            const float* r0 = image.row(y);
            const float* rm = y > 0 ? image.row(y - 1) : nullptr;
            const float* rp = y + 1 < h ? image.row(y + 1) : nullptr;
            for (int x = s.x0; x <= s.x1; ++x) {
                const float v = sign * r0[x];
                if (isPeakPixel(rm, r0, rp, x, w, sign, v, slack == 0 ? &localSet : nullptr, y))
                    cands.push_back({x, y, v});
            }
        }
    };
    std::vector<std::shared_ptr<const Footprint>> footprints = footprintsOfGroups(groups, config, xy0, sign, candidatesOf);
    FootprintSet result(std::move(footprints), image.bbox());
    if (mask) result.setMask(*mask, mask->planeBitMask(neg ? "DETECTED_NEGATIVE" : "DETECTED"));
    return result;
}

}  // namespace drp
