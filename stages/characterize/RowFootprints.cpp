#include "stages/characterize/RowFootprints.h"

#include <cstring>
#include <memory>

#include "core/Error.h"

namespace drp {

RowFootprintDetector::RowFootprintDetector(const Box2I& bbox, const DetectionConfig& config)
    : bbox_(bbox), config_(config) {
    config_.validate();
    if (config_.connectivity != Connectivity::EIGHT)
        throw ConfigError("RowFootprintDetector: only 8-connectivity (the peak test of 4-connectivity needs the footprint)");
    if (bbox_.empty()) throw InvalidInputError("RowFootprintDetector: empty box");
    sign_ = config_.negative ? -1.0f : 1.0f;
    lim_ = runThreshold(config_.threshold, config_.negative);
    rows_.resize(std::size_t(3) * std::size_t(bbox_.width()));
    rowStart_.push_back(0);
}

void RowFootprintDetector::findRunsOfRow(const float* row) {
    const int j = y_;
    const std::size_t prevBegin = j > 0 ? rowStart_[std::size_t(j) - 1] : runs_.size();
    appendAndJoinRowRuns(row, bbox_.width(), j, lim_, config_.negative, 1, prevBegin, runs_, uf_);  // 8-connectivity
}

void RowFootprintDetector::testPeaksOfRow(int y, const float* rm, const float* r0, const float* rp) {
    const int w = bbox_.width();
    const float sign = sign_;
    const std::size_t b = rowStart_[std::size_t(y)], e = rowStart_[std::size_t(y) + 1];
    for (std::size_t r = b; r < e; ++r) {
        const Span& s = runs_[r];
        for (int x = s.x0; x <= s.x1; ++x) {
            const float v = sign * r0[x];
            if (!isPeakPixel(rm, r0, rp, x, w, sign, v, nullptr, y)) continue;  // 8-connectivity: no diagonal set
            candidates_.push_back({x, y, v, std::uint32_t(r)});
        }
    }
}

void RowFootprintDetector::addRow(const float* row) {
    if (finished_ || y_ >= bbox_.height()) throw LogicError("RowFootprintDetector: more rows than the box has");
    const std::size_t w = std::size_t(bbox_.width());
    float* slot = rows_.data() + std::size_t(y_ % 3) * w;
    std::memcpy(slot, row, w * sizeof(float));
    findRunsOfRow(slot);
    rowStart_.push_back(runs_.size());
    // The row above now has both neighbours.
    if (y_ >= 1) {
        const int y = y_ - 1;
        const float* rm = y >= 1 ? rows_.data() + std::size_t((y - 1) % 3) * w : nullptr;
        testPeaksOfRow(y, rm, rows_.data() + std::size_t(y % 3) * w, slot);
    }
    ++y_;
}

FootprintSet RowFootprintDetector::finish() {
    if (finished_) throw LogicError("RowFootprintDetector::finish called twice");
    if (y_ != bbox_.height()) throw LogicError("RowFootprintDetector::finish before every row was added");
    finished_ = true;
    const std::size_t w = std::size_t(bbox_.width());
    {
        const int y = y_ - 1;
        const float* rm = y >= 1 ? rows_.data() + std::size_t((y - 1) % 3) * w : nullptr;
        testPeaksOfRow(y, rm, rows_.data() + std::size_t(y % 3) * w, nullptr);
    }
    // From here as detectFootprints: group runs by root (the first run in raster order, so groups come out
    // ordered), keep the large enough groups, their runs in raster order.
    const RunGroups groups = groupRuns(runs_, uf_, config_.minPixels);
    const std::uint32_t nOut = groups.count;
    // The peak candidates of each kept group, in raster order (candidates are in raster order already).
    std::vector<std::uint32_t> candOffset(nOut + 1, 0);
    for (const Candidate& c : candidates_)
        if (groups.runFootprint[c.run] != UINT32_MAX) ++candOffset[groups.runFootprint[c.run] + 1];
    for (std::uint32_t g = 0; g < nOut; ++g) candOffset[g + 1] += candOffset[g];
    std::vector<Candidate> byGroup(candOffset[nOut]);
    {
        std::vector<std::uint32_t> fill(candOffset.begin(), candOffset.end() - 1);
        for (const Candidate& c : candidates_) {
            const std::uint32_t o = groups.runFootprint[c.run];
            if (o != UINT32_MAX) byGroup[fill[o]++] = c;
        }
    }
    auto candidatesOf = [&](std::uint32_t g, const SpanSet&, std::vector<PeakCandidate>& cands) {
        for (std::uint32_t k = candOffset[g]; k < candOffset[g + 1]; ++k) cands.push_back({byGroup[k].x, byGroup[k].y, byGroup[k].value});
    };
    std::vector<std::shared_ptr<const Footprint>> footprints = footprintsOfGroups(groups, config_, bbox_.min(), sign_, candidatesOf);
    return FootprintSet(std::move(footprints), bbox_);
}

}  // namespace drp
