// RowFootprints: detectFootprints (core/Footprint.h) over an image handed over one row at a time, in raster
// order, so that the image itself (the detection's full-size significance plane: 65 MB, 16,000 page faults on
// a 4k x 4k detector) never has to exist. The same footprints and peaks, bit for bit, as detectFootprints on
// the whole image with the same DetectionConfig (8-connectivity only): the above-threshold runs are found and
// joined by union-find row by row, each run pixel is tested as a peak once the row below it has arrived (the
// test reads only its 3x3 neighbourhood), and the footprints are assembled at the end exactly as
// detectFootprints assembles them. Memory: the runs, the peak candidates and three rows.
#pragma once

#include <cstdint>
#include <vector>

#include "core/Footprint.h"

namespace drp {

class RowFootprintDetector {
public:
    /// Detection over an image covering `bbox` (parent frame). Throws ConfigError for an invalid config or
    /// 4-connectivity (whose peak test needs the whole footprint), InvalidInputError for an empty box.
    RowFootprintDetector(const Box2I& bbox, const DetectionConfig& config);

    /// The next row (local row index rowsAdded(), bbox().width() values), copied.
    void addRow(const float* row);
    int rowsAdded() const { return y_; }
    /// The footprints, once every row has been added (LogicError otherwise); call once.
    FootprintSet finish();

private:
    struct Candidate {
        int x, y;     // local
        float value;  // signed so that larger is brighter
        std::uint32_t run;
    };
    void findRunsOfRow(const float* row);
    /// Peak candidates among the runs of row y (local), whose rows y - 1 and y + 1 are rm and rp (null at the edge).
    void testPeaksOfRow(int y, const float* rm, const float* r0, const float* rp);

    Box2I bbox_;
    DetectionConfig config_;
    float lim_ = 0.0f;
    float sign_ = 1.0f;
    int y_ = 0;
    std::vector<float> rows_;  // the last three rows, row y in slot y % 3
    std::vector<Span> runs_;   // local coordinates, raster order
    RunUnionFind uf_;
    std::vector<std::size_t> rowStart_;  // index of the first run of each row added (and one past the last)
    std::vector<Candidate> candidates_;
    bool finished_ = false;
};

}  // namespace drp
