#include "stages/measure/SingleFrameMeasurement.h"

#include <cmath>
#include <new>

#include "stages/measure/ApertureFluxPlugin.h"
#include "stages/measure/CentroidPlugin.h"
#include "stages/measure/ExtendednessPlugin.h"
#include "stages/measure/KronFluxPlugin.h"
#include "stages/measure/LocalSkyPlugin.h"
#include "stages/measure/PixelFlagsPlugin.h"
#include "stages/measure/PsfFluxPlugin.h"
#include "stages/measure/ShapePlugin.h"
#include "stages/measure/SkyCoordPlugin.h"

namespace drp {

namespace {

std::unique_ptr<MeasurementPlugin> makePlugin(const std::string& name, Schema& schema, const MeasurementConfig& c) {
    if (name == "centroid") return std::make_unique<CentroidPlugin>(schema, c);
    if (name == "pixelFlags") return std::make_unique<PixelFlagsPlugin>(schema, c);
    if (name == "shape") return std::make_unique<ShapePlugin>(schema, c);
    if (name == "psfFlux") return std::make_unique<PsfFluxPlugin>(schema, c);
    if (name == "apFlux") return std::make_unique<ApertureFluxPlugin>(schema, c);
    if (name == "kronFlux") return std::make_unique<KronFluxPlugin>(schema, c);
    if (name == "sky") return std::make_unique<LocalSkyPlugin>(schema, c);
    if (name == "extendedness") return std::make_unique<ExtendednessPlugin>(schema, c);
    if (name == "coord") return std::make_unique<SkyCoordPlugin>(schema, c);
    throw ConfigError("MeasurementConfig.plugins: unknown plugin '" + name + "'");
}

/// A peak at the brightest usable pixel of a footprint without peaks (nullopt if it has none).
std::optional<PeakRecord> syntheticPeak(const Footprint& fp, const Exposure& exposure, MaskPixel badBits) {
    const Box2I img = exposure.bbox();
    std::optional<PeakRecord> best;
    for (const Span& s : fp.spans()) {
        if (s.y < img.minY() || s.y > img.maxY()) continue;
        for (int x = std::max(s.x0, img.minX()); x <= std::min(s.x1, img.maxX()); ++x) {
            const int lx = x - img.minX(), ly = s.y - img.minY();
            const float v = exposure.image()(lx, ly);
            if (!std::isfinite(v) || (exposure.mask()(lx, ly) & badBits)) continue;
            if (!best || v > best->peakValue) {
                PeakRecord p;
                p.x = x, p.y = s.y, p.ix = x, p.iy = s.y, p.peakValue = v;
                best = p;
            }
        }
    }
    return best;
}

}  // namespace

SingleFrameMeasurement::SingleFrameMeasurement(const MeasurementConfig& config) : config_(config) {
    config_.validate();
    auto schema = std::make_shared<Schema>();
    sourceId_ = schema->addField<std::int64_t>("sourceId", "unique source id: (ccdVisitId << 20) | running index");
    ccdVisitId_ = schema->addField<std::int64_t>("ccdVisitId", "id of the detector and visit measured");
    parentSourceId_ = schema->addField<std::int64_t>(
        "parentSourceId", "sourceId of the parent (multi-peak footprint) this source is a child of; 0 if none");
    peakId_ = schema->addField<std::int64_t>("peakId", "id of the detection peak (the first peak for a parent)");
    nChild_ = schema->addField<std::int32_t>("deblend_nChild", "number of children (peaks) of a parent; 0 otherwise");
    deblendSkipped_ = schema->addField<bool>(
        "deblend_skipped", "multi-peak footprint not deblended: measured with the other peaks' light present");
    footprintArea_ = schema->addField<std::int32_t>("footprintArea", "number of pixels in the (parent) footprint",
                                                    "pixel");
    for (const auto& name : config_.plugins) plugins_.push_back(makePlugin(name, *schema, config_));
    schema_ = std::move(schema);
}

SingleFrameMeasurement::~SingleFrameMeasurement() = default;

std::int64_t SingleFrameMeasurement::makeSourceId(std::int64_t ccdVisitId, std::int64_t index) {
    if (ccdVisitId < 0 || ccdVisitId >= (std::int64_t(1) << (63 - kIndexBits))) {
        throw FatalMeasurementError("ccdVisitId " + std::to_string(ccdVisitId) + " does not fit in 43 bits");
    }
    if (index < 0 || index >= (std::int64_t(1) << kIndexBits)) {
        throw FatalMeasurementError("source index " + std::to_string(index) + " does not fit in 20 bits: too many sources");
    }
    return (ccdVisitId << kIndexBits) | index;
}

Table SingleFrameMeasurement::measure(const Exposure& exposure, const FootprintSet& footprints,
                                      std::int64_t ccdVisitId) const {
    makeSourceId(ccdVisitId, 0);  // range check before any work
    for (const auto& p : plugins_) {
        if (p->requiresPsf() && !exposure.hasPsf()) {
            throw FatalMeasurementError("measurement plugin '" + p->name() + "' needs a PSF and the exposure has none");
        }
    }
    const MaskPixel badBits = exposure.mask().planeBitMaskIfPresent(config_.badMaskPlanes);

    // Count rows first (ids and allocation).
    std::size_t nRows = 0;
    for (std::size_t i = 0; i < footprints.size(); ++i) {
        const std::size_t np = footprints[i].peaks().size();
        nRows += np <= 1 ? 1 : np + 1;
    }
    Table table(schema_, 0);
    table.reserve(nRows);

    std::int64_t index = 0;
    auto measureOne = [&](const Footprint& fp, const PeakRecord& peak, std::int64_t parentId, int nChild,
                          bool skipped) {
        const std::size_t row = table.addRow();
        const std::int64_t id = makeSourceId(ccdVisitId, ++index);
        table.column(sourceId_)[row] = id;
        table.column(ccdVisitId_)[row] = ccdVisitId;
        table.column(parentSourceId_)[row] = parentId;
        table.column(peakId_)[row] = peak.id;
        table.column(nChild_)[row] = nChild;
        table.column(deblendSkipped_)[row] = skipped;
        table.column(footprintArea_)[row] = std::int32_t(std::min<std::int64_t>(fp.area(), INT32_MAX));
        MeasurementContext ctx(exposure, fp, peak, config_, badBits);
        for (const auto& plugin : plugins_) {
            try {
                plugin->measure(ctx, table, row);
            } catch (const FatalMeasurementError&) {
                throw;
            } catch (const std::bad_alloc&) {
                throw;
            } catch (const std::exception&) {
                plugin->fail(ctx, table, row);
            }
        }
        return id;
    };

    for (std::size_t i = 0; i < footprints.size(); ++i) {
        const Footprint& fp = footprints[i];
        const auto& peaks = fp.peaks();
        if (peaks.empty()) {
            if (auto p = syntheticPeak(fp, exposure, badBits)) measureOne(fp, *p, 0, 0, false);
            continue;
        }
        if (peaks.size() == 1) {
            measureOne(fp, peaks[0], 0, 0, false);
            continue;
        }
        const std::int64_t parent = measureOne(fp, peaks[0], 0, int(peaks.size()), true);
        for (const PeakRecord& peak : peaks) measureOne(fp, peak, parent, 0, true);
    }
    table.metadata().set("CCDVISIT", ccdVisitId, "ccdVisitId of the measured exposure");
    return table;
}

}  // namespace drp
