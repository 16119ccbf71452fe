// SingleFrameMeasurement: runs the configured measurement plugins over every peak of a detection pass
// and returns the Source table (DPDD 4.3.2) in instrumental units; the driver calibrates fluxes to nJy.
//
// Rows. One row per peak: a footprint with one peak gives one source (parentSourceId = 0,
// deblend_nChild = 0). A footprint with N > 1 peaks gives a parent row (measured at its first, i.e.
// brightest, peak, deblend_nChild = N) followed by N child rows, one per peak in peak order, each with
// parentSourceId = the parent's sourceId. There is no deblender yet: every child is measured on the
// undeblended image, with the light of the other peaks NOT removed (its centroid starts at its own peak;
// aperture, Kron and PSF fluxes include any neighbour light that falls in them); the parent and its
// children carry deblend_skipped = true to say so. A footprint without peaks gets a peak at its
// brightest usable pixel (none: it is skipped).
//
// Ids. sourceId = (ccdVisitId << 20) | index, index = 1, 2, ... in row order (at most 2^20 - 1 rows per
// exposure); ccdVisitId must be in [0, 2^43) so ids stay positive. parentSourceId 0 means "no parent".
//
// Columns: sourceId, ccdVisitId, parentSourceId, peakId (detection peak id; the first peak's for a
// parent), deblend_nChild, deblend_skipped, footprintArea, then each plugin's columns in config order
// (see MeasurementConfig.h and each plugin's header).
//
// Errors. A per-source problem sets that plugin's flags (a plugin that throws gets fail() called for the
// row) and the loop goes on. FatalMeasurementError escapes: a plugin needing a PSF on an exposure without
// one, a ccdVisitId out of range, more sources than the id packing allows. Pure: no I/O, no MPI.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/Exposure.h"
#include "core/Footprint.h"
#include "core/Schema.h"
#include "core/Table.h"
#include "stages/measure/MeasurementConfig.h"
#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class SingleFrameMeasurement {
public:
    /// Validates the config (ConfigError) and registers every plugin's columns.
    explicit SingleFrameMeasurement(const MeasurementConfig& config);
    ~SingleFrameMeasurement();
    SingleFrameMeasurement(const SingleFrameMeasurement&) = delete;
    SingleFrameMeasurement& operator=(const SingleFrameMeasurement&) = delete;

    const Schema& schema() const { return *schema_; }
    const std::shared_ptr<const Schema>& schemaPtr() const { return schema_; }
    const MeasurementConfig& config() const { return config_; }
    const std::vector<std::unique_ptr<MeasurementPlugin>>& plugins() const { return plugins_; }

    /// Measure every peak of `footprints` on `exposure` (which should be background-subtracted).
    Table measure(const Exposure& exposure, const FootprintSet& footprints, std::int64_t ccdVisitId) const;

    /// Bits of the running index in sourceId.
    static constexpr int kIndexBits = 20;
    /// (ccdVisitId << kIndexBits) | index; throws FatalMeasurementError when either is out of range.
    static std::int64_t makeSourceId(std::int64_t ccdVisitId, std::int64_t index);

private:
    MeasurementConfig config_;
    std::shared_ptr<const Schema> schema_;
    std::vector<std::unique_ptr<MeasurementPlugin>> plugins_;
    Key<std::int64_t> sourceId_, ccdVisitId_, parentSourceId_, peakId_;
    Key<std::int32_t> nChild_, footprintArea_;
    Key<bool> deblendSkipped_;
};

}  // namespace drp
