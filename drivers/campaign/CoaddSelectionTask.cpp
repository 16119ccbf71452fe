// selectBestSeeingVisits: the global task of the best-seeing coadd flavour (coadd.best_seeing_quantile
// > 0). It chooses, per band, the visits whose seeing is at most that quantile of the seeing of every
// visit of the band in the campaign (survey-wide, as Rubin's best-seeing visit selection), so every
// patch of a band coadds the same visits (assembleGoodSeeingCoadd reads this choice).
//
// Inputs: every calexp of the campaign. Only their headers and PSF tables are read
// (io/ExposureHeader.h: no pixel I/O). Seeing of a detector = the calexp PSF's determinant radius at the
// detector centre times the pixel scale there, in arcsec; seeing of a visit = the median over its
// detectors (the mean of the two middle values for an even count). Per band, the threshold is
// stages/coadd/CoaddFlavor bestSeeingThreshold (numpy-style linear quantile) and the selection
// selectBestSeeingVisits (seeing <= threshold; the best visit always qualifies).
//
// Output: bestSeeingVisits (HDF5, group "visits"), one row per (band, visit) in band then visit order:
// band, visit, seeing (arcsec), nDetectors, threshold (the band's, arcsec), selected (1/0); metadata
// SEEINGQ (the quantile) and the provenance of every calexp read. The quantum is global: one rank
// computes it, so the result does not depend on the number of ranks, and it is recorded in the
// repository for later jobs (a Slurm campaign's coadd stage).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <vector>

#include "core/Error.h"
#include "core/Log.h"
#include "core/Statistics.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/campaign/Provenance.h"
#include "io/ExposureHeader.h"
#include "io/Hdf5Catalog.h"
#include "stages/coadd/CoaddFlavor.h"

namespace drp {

std::string CampaignWorker::runSelectBestSeeingVisits(const QuantumSpec& q) {
    using campaign_detail::needInput;
    using campaign_detail::putOutput;
    if (!(coaddConfig_.bestSeeingQuantile > 0))
        throw ConfigError("selectBestSeeingVisits needs coadd.best_seeing_quantile > 0");
    std::vector<DatasetRef> refs;
    for (const auto& r : q.inputs)
        if (r.datasetType == "calexp") refs.push_back(r);
    std::sort(refs.begin(), refs.end(), [](const DatasetRef& a, const DatasetRef& b) { return a.dataId < b.dataId; });
    if (refs.empty()) throw InvalidInputError("selectBestSeeingVisits has no calexp inputs");

    Provenance prov;
    prov.task = q.task;
    prov.config = coaddConfigValues_;
    // band -> visit -> detector seeings (arcsec)
    std::map<std::string, std::map<std::int64_t, std::vector<double>>> seeing;
    for (const auto& r : refs) {
        const DatasetRecord rec = needInput(repo_, r);
        prov.inputs.push_back({rec.datasetType, rec.run, rec.dataId.toString(), rec.checksum});
        ExposureReadOptions ro;
        ro.requireWcs = true;
        ro.requirePsf = true;
        const ExposureHeader h = readExposureHeader(repo_.root() / rec.relativePath, ro);
        const Point2D c{h.bbox.minX() + 0.5 * h.bbox.width(), h.bbox.minY() + 0.5 * h.bbox.height()};
        const double s = h.psf->computeSigma(c) * h.wcs->pixelScale(c).asArcseconds();
        seeing[r.dataId.getString(Dimension::Band)][r.dataId.getInt(Dimension::Visit)].push_back(s);
    }

    Schema schema;
    auto fBand = schema.addField<std::string>("band", "band of the visit");
    auto fVisit = schema.addField<std::int64_t>("visit", "visit id");
    auto fSeeing = schema.addField<double>("seeing", "median over the visit's detectors of the PSF determinant radius", "arcsec");
    auto fN = schema.addField<std::int64_t>("nDetectors", "detectors (calexps) of the visit");
    auto fThr = schema.addField<double>("threshold", "the band's seeing quantile (coadd.best_seeing_quantile)", "arcsec");
    auto fSel = schema.addField<std::int64_t>("selected", "1: the visit goes into the band's best-seeing coadds");
    std::size_t rows = 0;
    for (const auto& [band, visits] : seeing) rows += visits.size();
    Table table(schema, rows);
    std::size_t row = 0;
    std::string summary;
    for (const auto& [band, visits] : seeing) {
        std::vector<VisitSeeing> vs;
        for (const auto& [visit, s] : visits) vs.push_back({visit, quantile(s, 0.5)});  // the median seeing
        const double thr = bestSeeingThreshold(vs, coaddConfig_.bestSeeingQuantile);
        const std::vector<std::int64_t> chosen = selectBestSeeingVisits(vs, coaddConfig_.bestSeeingQuantile);
        for (const auto& v : vs) {
            const bool sel = std::binary_search(chosen.begin(), chosen.end(), v.visit);
            table.at(fBand, row) = band;
            table.at(fVisit, row) = v.visit;
            table.at(fSeeing, row) = v.seeing;
            table.at(fN, row) = std::int64_t(visits.at(v.visit).size());
            table.at(fThr, row) = thr;
            table.at(fSel, row) = sel ? 1 : 0;
            ++row;
        }
        char buf[96];
        std::snprintf(buf, sizeof buf, "%s%s: %zu/%zu visits <= %.3f\"", summary.empty() ? "" : "; ", band.c_str(),
                      chosen.size(), vs.size(), thr);
        summary += buf;
    }
    table.metadata().set("SEEINGQ", coaddConfig_.bestSeeingQuantile, "seeing quantile of the selection");
    prov.addTo(table.metadata());
    for (const auto& o : q.outputs) {
        if (o.datasetType != "bestSeeingVisits") throw LogicError("selectBestSeeingVisits cannot write " + o.datasetType);
        putOutput(repo_, o, prov.task, [&](const auto& p) { writeCatalog(p, "visits", table); });
    }
    DRP_LOG_VERBOSE("campaign", q.task << ": " << summary);
    return summary;
}

}  // namespace drp
