// assembleDetectionCoadd: the patch task of the "coadd" pipeline that combines the deep coadds of every
// band of one patch into the multi-band detection coadd (deepCoadd_detection; stages/coadd/CoaddFlavor
// makeDetectionCoadd, kind coadd.detection_kind: "weighted" = inverse-variance weighted mean of the
// bands, "chi2" = sum of squared S/N minus the number of bands).
//
// Inputs: the deepCoadd of each band the graph joined to the patch (bands without data on the patch
// have no deepCoadd and are simply absent), read one after another and kept (n bands x one patch of
// memory, e.g. 6 x 2200^2 x 12 bytes = 350 MB). A patch with no band coadd is "no work" (nothing
// written). Output: image/mask/variance on the patch grid, tile-compressed like the deep coadds, the
// patch WCS, no PSF (the bands' PSFs differ); header DETKIND, DETBANDS (the bands used, in order) and
// DETPSFSG, the inverse-variance-weighted mean of the bands' coadd PSF sigmas at the patch centre
// (pixels; the matched-filter width to detect with), and provenance.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/Error.h"
#include "core/Log.h"
#include "core/Statistics.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/campaign/Provenance.h"
#include "io/ExposureFits.h"
#include "stages/coadd/CoaddFlavor.h"

namespace drp {

std::string CampaignWorker::runDetectionCoadd(const QuantumSpec& q) {
    using campaign_detail::needInput;
    using campaign_detail::putOutput;
    const DataId& id = q.dataId;
    const DetectionCoaddKind kind =
        coaddConfig_.detectionKind == "chi2" ? DetectionCoaddKind::Chi2 : DetectionCoaddKind::WeightedSum;

    std::vector<DatasetRef> refs;
    for (const auto& r : q.inputs)
        if (r.datasetType == "deepCoadd") refs.push_back(r);
    std::sort(refs.begin(), refs.end(), [](const DatasetRef& a, const DatasetRef& b) { return a.dataId < b.dataId; });

    Provenance prov;
    prov.task = q.task + " " + id.toString();
    prov.config = coaddConfigValues_;
    std::vector<MaskedImageF> bands;
    std::vector<std::string> bandNames;
    std::shared_ptr<const Wcs> wcs;
    double sumW = 0, sumWSigma = 0;
    for (const auto& r : refs) {
        if (!repo_.exists(r.datasetType, r.run, r.dataId)) continue;  // no data of that band on the patch
        const DatasetRecord rec = needInput(repo_, r);
        prov.inputs.push_back({rec.datasetType, rec.run, rec.dataId.toString(), rec.checksum});
        ExposureReadOptions ro;
        ro.requireWcs = true;
        Exposure coadd = readExposure(repo_.root() / rec.relativePath, ro);
        if (!bands.empty() && !(coadd.bbox() == bands.front().bbox()))
            throw InvalidInputError("assembleDetectionCoadd " + id.toString() + ": the " + r.dataId.getString(Dimension::Band) +
                                    " coadd's box differs from the " + bandNames.front() + " coadd's");
        if (!wcs) wcs = coadd.wcs();
        // Band weight for the PSF width: the median inverse variance of the pixels with data.
        StatisticsControl sc;
        sc.properties = kStatMedian;
        sc.badMask = coadd.mask().planeBitMask("NO_DATA");
        const Statistics vs = makeStatistics(coadd.variance(), coadd.mask(), sc);
        const Box2I b = coadd.bbox();
        const Point2D centre{b.minX() + 0.5 * b.width(), b.minY() + 0.5 * b.height()};
        if (coadd.psf() && vs.median > 0 && std::isfinite(vs.median)) {
            const double s = coadd.psf()->computeSigma(centre);
            if (std::isfinite(s) && s > 0) {
                sumW += 1.0 / vs.median;
                sumWSigma += s / vs.median;
            }
        }
        bandNames.push_back(r.dataId.getString(Dimension::Band));
        bands.push_back(coadd.maskedImage());
    }
    if (bands.empty()) {
        DRP_LOG_VERBOSE("campaign", "assembleDetectionCoadd " << id.toString() << ": no band has a coadd here");
        return "no data";
    }
    Exposure out(makeDetectionCoadd(bands, kind), wcs, nullptr);
    std::string joined;
    for (const auto& b : bandNames) joined += (joined.empty() ? "" : ",") + b;
    out.metadata().set("DETKIND", std::string(kind == DetectionCoaddKind::Chi2 ? "chi2" : "weighted"),
                       "detection coadd: weighted mean of the bands or chi2");
    out.metadata().set("DETBANDS", joined, "bands combined");
    out.metadata().set("DETPSFSG", sumW > 0 ? sumWSigma / sumW : std::nan(""),
                       "inverse-variance weighted mean band PSF sigma at the patch centre (pixels)");
    prov.addTo(out.metadata());
    for (const auto& o : q.outputs) {
        if (o.datasetType != "deepCoadd_detection") throw LogicError("assembleDetectionCoadd cannot write " + o.datasetType);
        putOutput(repo_, o, prov.task, [&](const auto& p) { writeExposure(p, out, ExposureWriteOptions::compressed()); });
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, "bands=%zu", bands.size());
    return buf;
}

}  // namespace drp
