#include "drivers/campaign/CampaignTasks.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <optional>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/ConfigBinder.h"
#include "drivers/DatasetTypes.h"
#include "drivers/campaign/Provenance.h"
#include "drivers/singlevisit/VisitPsfIo.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/Hdf5File.h"
#include "io/RawFits.h"
#include "stages/coadd/SurveyProperty.h"
#include "stages/coadd/Warper.h"

namespace drp {
namespace campaign_detail {

/// Write one output resume-safely (see the header).
void putOutput(Repository& repo, const DatasetRef& ref, const std::string& producer,
               const std::function<void(const std::filesystem::path&)>& writer) {
    if (auto rec = repo.find(ref.datasetType, ref.run, ref.dataId)) {
        VerifyStatus st = repo.verify(*rec);
        if (st == VerifyStatus::Ok) {
            DRP_LOG_VERBOSE("campaign", "output " << ref.datasetType << " already recorded with a matching checksum; kept");
            return;
        }
        throw IoError("output " + ref.datasetType + " " + ref.dataId.toString() + " of run " + ref.run +
                          " is recorded but its file is " + verifyStatusName(st) +
                          "; nothing was overwritten: restore the file or write to another output run",
                      (repo.root() / rec->relativePath).string());
    }
    const std::filesystem::path dest = repo.root() / repo.datasetType(ref.datasetType).expand(ref.run, ref.dataId);
    std::error_code ec;
    if (std::filesystem::exists(dest, ec)) {
        DRP_LOG_WARN("campaign", "removing " << dest.string() << ": published by an interrupted writer but never recorded");
        std::filesystem::remove(dest, ec);
        if (ec) throw IoError("cannot remove the unrecorded file left by an interrupted writer: " + ec.message(), dest.string());
    }
    repo.put(ref.datasetType, ref.run, ref.dataId, writer, producer);
}

DatasetRecord needInput(const Repository& repo, const DatasetRef& ref) {
    auto rec = repo.find(ref.datasetType, ref.run, ref.dataId);
    if (!rec) throw NotFoundError("missing input: " + ref.datasetType + " " + ref.dataId.toString() + " in run " + ref.run);
    return *rec;
}

}  // namespace campaign_detail

namespace {
using campaign_detail::needInput;
using campaign_detail::putOutput;

const DatasetRef& onlyInput(const QuantumSpec& q, const std::string& type) {
    for (const auto& r : q.inputs)
        if (r.datasetType == type) return r;
    throw LogicError("quantum " + q.task + " " + q.dataId.toString() + " has no " + type + " input");
}

ProvenanceInput provenanceInput(const DatasetRecord& r) {
    return {r.datasetType, r.run, r.dataId.toString(), r.checksum};
}

std::string fmt(const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return buf;
}

}  // namespace

std::vector<std::string> applyCoaddSettings(const std::vector<std::string>& settings, CampaignCoaddConfig& coadd,
                                            std::map<std::string, std::string>* values) {
    ConfigBinder b;
    b.bind("coadd.warp_kernel", coadd.warpKernel, "warping kernel of the coadd (lanczos3, lanczos2, lanczos4, bilinear, nearest)");
    b.bind("coadd.interp_length", coadd.interpLength, "WCS mapping grid spacing of the warps, coadd pixels (0: exact)");
    b.bind("coadd.reject_artifacts", coadd.rejectArtifacts, "artifact rejection in the coadd (four passes over the inputs, ~2.9x the assembly cost of a plain coadd)");
    b.bind("coadd.map_bin_size", coadd.mapBinSize, "survey property map bin, coadd pixels");
    b.bind("coadd.detection_kind", coadd.detectionKind, "multi-band detection coadd: weighted or chi2");
    b.bind("coadd.best_seeing_quantile", coadd.bestSeeingQuantile,
           "> 0: also a best-seeing coadd of the visits whose seeing is <= this quantile (0, 1] of the band's visits in the campaign");
    b.bind("coadd.short_period_begin", coadd.shortPeriodBegin, "short-period coadd: first MJD included");
    b.bind("coadd.short_period_end", coadd.shortPeriodEnd, "short-period coadd: first MJD excluded (> begin enables it)");
    std::vector<std::string> rest;
    for (const auto& s : settings) {
        if (s.rfind("coadd.", 0) == 0)
            b.setAssignment(s);
        else
            rest.push_back(s);
    }
    WarpConfig w;
    w.kernel = coadd.warpKernel;
    w.interpLength = coadd.interpLength;
    w.validate();
    SurveyPropertyConfig sp;
    sp.binSize = coadd.mapBinSize;
    sp.validate();
    if (coadd.detectionKind != "weighted" && coadd.detectionKind != "chi2")
        throw ConfigError("coadd.detection_kind must be weighted or chi2, not '" + coadd.detectionKind + "'");
    if (!(coadd.bestSeeingQuantile >= 0 && coadd.bestSeeingQuantile <= 1))
        throw ConfigError("coadd.best_seeing_quantile must be in [0, 1] (0: no best-seeing coadd)");
    if (coadd.shortPeriodEnd < coadd.shortPeriodBegin)
        throw ConfigError("coadd.short_period_end must be > coadd.short_period_begin");
    if (values) *values = b.values();
    return rest;
}

std::map<std::string, std::string> effectiveProcessingConfig(const std::vector<std::string>& settings) {
    SingleVisitConfig cfg;
    ConfigBinder binder;
    cfg.bind(binder);
    CampaignCoaddConfig coadd;
    for (const auto& s : applyCoaddSettings(settings, coadd)) binder.setAssignment(s);
    cfg.validate();
    return binder.values();
}

CampaignWorker::CampaignWorker(const CampaignWorkerSetup& setup)
    : setup_(setup), repo_(openOrCreateRepository(setup.repo)) {
    camera_ = cameraOfRun(repo_, setup_.runs.raw, &instrument_);
    ConfigBinder binder;
    config_.bind(binder);
    for (const auto& s : applyCoaddSettings(setup_.settings, coaddConfig_, &coaddConfigValues_)) binder.setAssignment(s);
    config_.validate();
    configValues_ = binder.values();
    if (setup_.refcatRun.empty()) setup_.refcatRun = setup_.runs.raw;
}

std::string CampaignWorker::run(const QuantumSpec& q) {
    if (q.task == "characterizeImage") return runCharacterizeImage(q);
    if (q.task == "measureVisitPsf") return runMeasureVisitPsf(q);
    if (q.task == "singleVisit") return runSingleVisit(q);
    if (q.task == "consolidateVisit") return runConsolidateVisit(q);
    if (q.task == "releaseIndex") return runReleaseIndex(q);
    if (q.task == "assembleCoadd" || q.task == "assembleGoodSeeingCoadd" || q.task == "assembleShortPeriodCoadd")
        return runAssembleCoadd(q);
    if (q.task == "assembleDetectionCoadd") return runDetectionCoadd(q);
    if (q.task == "selectBestSeeingVisits") return runSelectBestSeeingVisits(q);
    throw NotFoundError("task " + q.task + " has no implementation yet (it is declared for planning only)");
}

RawExposure CampaignWorker::loadRaw(const QuantumSpec& q, std::vector<DatasetRecord>& used, IsrCalibrations& calibs) {
    const DataId& id = q.dataId;
    const DatasetRecord rawRec = needInput(repo_, onlyInput(q, "raw"));
    const Detector& det = camera_->detector(int(id.getInt(Dimension::Detector)));
    RawExposure raw = readRaw(repo_.root() / rawRec.relativePath, det);
    // The camera model supplies the optical distortion that the raw's plain-TAN header lacks.
    if (raw.headerWcs) raw.headerWcs = camera_->distortedWcs(raw.headerWcs, det);
    used.push_back(rawRec);
    calibs = calibs_.get(repo_, setup_.runs.calib, instrument_, det, id.getString(Dimension::Band), &used);
    return raw;
}

std::string CampaignWorker::runCharacterizeImage(const QuantumSpec& q) {
    const DataId& id = q.dataId;
    const Detector& det = camera_->detector(int(id.getInt(Dimension::Detector)));
    std::vector<DatasetRecord> used;
    IsrCalibrations calibs;
    const RawExposure raw = loadRaw(q, used, calibs);
    const std::int64_t ccdVisitId = packCcdVisitId(id.getInt(Dimension::Visit), id.getInt(Dimension::Detector));
    PsfStars stars = characterizePsfStars(raw, det, calibs, ccdVisitId, config_);
    Provenance prov;
    prov.task = q.task + " " + id.toString();
    prov.config = configValues_;
    for (const auto& r : used) prov.inputs.push_back(provenanceInput(r));
    prov.addTo(stars.metadata);
    for (const auto& out : q.outputs) {
        if (out.datasetType != "psfStars") throw LogicError("characterizeImage cannot write " + out.datasetType);
        putOutput(repo_, out, prov.task, [&](const auto& p) { writePsfStars(p, stars, config_.psf.badMaskPlanes); });
    }
    return "candidates=" + std::to_string(stars.candidates.size()) + " selected=" +
           std::to_string(stars.metadata.getInt("NPSFSEL", 0));
}

std::string CampaignWorker::runMeasureVisitPsf(const QuantumSpec& q) {
    std::vector<DatasetRef> inputs;
    for (const auto& r : q.inputs)
        if (r.datasetType == "psfStars") inputs.push_back(r);
    std::sort(inputs.begin(), inputs.end(), [](const DatasetRef& a, const DatasetRef& b) { return a.dataId < b.dataId; });
    Provenance prov;
    prov.task = q.task + " " + q.dataId.toString();
    prov.config = configValues_;
    // The detectors that were characterised (a failed one is left out: the task tolerates failed inputs), each with its
    // place in the visit frame: the focal plane in pixels, along the detectors' pixel axes (they must be parallel).
    std::vector<VisitPsfDetector> detectors;
    std::vector<std::string> missing;
    double yaw0 = 0.0;
    std::string reason;
    for (const auto& ref : inputs) {
        auto rec = repo_.find(ref.datasetType, ref.run, ref.dataId);
        if (!rec) {
            missing.push_back(std::to_string(ref.dataId.getInt(Dimension::Detector)));
            continue;
        }
        PsfStars stars = readPsfStars(repo_.root() / rec->relativePath);
        prov.inputs.push_back(provenanceInput(*rec));
        const Detector& det = camera_->detector(stars.detector);
        if (detectors.empty()) yaw0 = det.yaw();
        if (std::abs(std::remainder(det.yaw() - yaw0, 2.0 * std::numbers::pi)) > 1e-9)
            reason = "detector " + std::to_string(det.id()) + " is rotated against the visit's first detector (yaw " +
                     std::to_string(det.yaw()) + " vs " + std::to_string(yaw0) + " rad): no common pixel frame";
        // visit frame = the focal plane rotated by -yaw, in pixels: with the detectors' axes parallel, pixel p is there
        // at p + (the frame position of pixel (0, 0)).
        const double scale = det.pixelSizeMicrons() * 1e-3, c = std::cos(yaw0), sn = std::sin(yaw0);
        const Point2D origin = det.pixelToFocalPlane({0.0, 0.0});
        VisitPsfDetector d;
        d.detector = det.id();
        d.bbox = stars.bbox;
        d.offset = {(c * origin.x + sn * origin.y) / scale, (-sn * origin.x + c * origin.y) / scale};
        d.candidates = std::move(stars.candidates);
        d.cutouts = std::move(stars.cutouts);
        detectors.push_back(std::move(d));
    }
    if (detectors.empty()) throw NotFoundError("visit " + q.dataId.toString() + ": no detector was characterised (no psfStars)");
    if (!missing.empty()) {
        std::string list;
        for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
        DRP_LOG_WARN("campaign", "visit PSF without detector(s) " << list << " (their characterisation failed)");
    }
    VisitPsfData data;
    // The configured order; with too few stars in the visit, lower orders from fewer stars (fewStarPsfConfig), as a
    // detector's own PSF falls back; the reason of the last failure is kept.
    for (int order = config_.visitPsf.spatialOrder; order >= 0 && reason.empty() && !data.model; --order) {
        VisitPsfConfig vc = config_.visitPsf;
        vc.spatialOrder = order;
        const PsfDeterminerConfig pc = order < config_.visitPsf.spatialOrder ? fewStarPsfConfig(config_.psf, order) : config_.psf;
        try {
            VisitPsfResult fit = determineVisitPsf(detectors, pc, vc);
            data.model = fit.model;
            data.nUsed = fit.pooled.nUsed;
            data.spatialOrder = fit.pooled.spatialOrder;
            data.metadata.set("VPSFNDST", std::int64_t(fit.detectorsWithStars), "detectors with stars in the visit's fit");
            data.metadata.set("VPSFNRES", std::int64_t(fit.pooled.reservedSizeResiduals.size()), "reserved stars of the visit");
            data.metadata.set("VPSFDTT", fit.pooled.reservedWeightedMeanSizeResidual,
                              "weighted mean dT/T of the visit model on its reserved stars");
            for (std::size_t i = 0; i < detectors.size(); ++i) {
                VisitPsfData::DetectorFit d;
                d.id = detectors[i].detector;
                d.offset = detectors[i].offset;
                d.bbox = detectors[i].bbox;
                d.fit = fit.detectors[i];
                d.fit.psf.reset();
                const auto positions = [&](const std::vector<std::size_t>& idx) {
                    std::vector<Point2D> p;
                    for (std::size_t k : idx) p.push_back(detectors[i].candidates[k].position);
                    return p;
                };
                d.selected = positions(d.fit.selected);
                d.used = positions(d.fit.used);
                d.reserved = positions(d.fit.reserved);
                d.fit.selected.clear();
                d.fit.used.clear();
                d.fit.reserved.clear();
                data.detectors.push_back(std::move(d));
            }
        } catch (const NumericalError& e) {  // too few stars in the whole visit for this order
            DRP_LOG_VERBOSE("campaign", "visit PSF of order " << order << " not possible: " << e.message());
            if (order == 0) reason = e.message();
        }
    }
    if (!data.model) {  // each detector fits its own
        DRP_LOG_WARN("campaign", "no visit-level PSF for " << q.dataId.toString() << ": " << reason << "; each detector fits its own");
        data.reason = reason;
        data.detectors.clear();
        for (const auto& d : detectors) data.detectors.push_back({d.detector, d.offset, d.bbox, {}, {}, {}, {}});
    }
    prov.addTo(data.metadata);
    for (const auto& out : q.outputs) {
        if (out.datasetType != "visitPsf") throw LogicError("measureVisitPsf cannot write " + out.datasetType);
        putOutput(repo_, out, prov.task, [&](const auto& p) { writeVisitPsf(p, data); });
    }
    return data.model ? "detectors=" + std::to_string(detectors.size()) + " stars=" + std::to_string(data.nUsed) +
                            " order=" + std::to_string(data.spatialOrder) + " dtt=" + fmt("%.2e", data.metadata.getDouble("VPSFDTT", NAN))
                      : "detectors=" + std::to_string(detectors.size()) + " no model (" + reason + ")";
}

std::string CampaignWorker::runSingleVisit(const QuantumSpec& q) {
    const DataId& id = q.dataId;
    const Detector& det = camera_->detector(int(id.getInt(Dimension::Detector)));
    const std::string band = id.getString(Dimension::Band);
    std::vector<DatasetRecord> used;
    IsrCalibrations calibs;
    const RawExposure raw = loadRaw(q, used, calibs);
    // The visit's PSF model, when the pipeline has one and it covers this detector.
    std::optional<DetectorVisitPsf> visitPsf;
    for (const auto& r : q.inputs) {
        if (r.datasetType != "visitPsf") continue;
        const DatasetRecord rec = needInput(repo_, r);
        used.push_back(rec);
        visitPsf = readVisitPsf(repo_.root() / rec.relativePath).forDetector(det.id());
        if (!visitPsf) DRP_LOG_VERBOSE("campaign", "the visit's PSF does not cover this detector: it fits its own");
    }

    if (!refLevelsKnown_) {
        refLevels_ = refcatLevels(repo_, setup_.refcatRun);
        refLevelsKnown_ = true;
        if (refLevels_.empty())
            DRP_LOG_WARN("campaign", "run '" << setup_.refcatRun << "' has no reference catalog: no astrometric or photometric calibration");
    }
    // Reference stars around the detector (header WCS, with margin for pointing errors).
    ReferenceStars refs;
    bool haveRefs = false;
    if (raw.headerWcs && !refLevels_.empty()) {
        Point2D c{det.bbox().minX() + 0.5 * det.bbox().width(), det.bbox().minY() + 0.5 * det.bbox().height()};
        SpherePoint centre = raw.headerWcs->pixelToSky(c);
        double radiusArcsec = 0.5 * std::hypot(det.bbox().width(), det.bbox().height()) *
                                  raw.headerWcs->pixelScale(c).asArcseconds() +
                              config_.astrometry.maxOffsetArcsec + 30.0;
        Table refcat = loadReferenceCatalog(repo_, setup_.refcatRun, refLevels_, centre, radiusArcsec * arcseconds, &used);
        refs = prepareReferenceStars(refcat, centre, radiusArcsec * arcseconds, raw.visitInfo.midExposureMjdTai, band,
                                     config_.photometry);
        haveRefs = !refs.astrometry.empty();
    }
    const std::int64_t ccdVisitId = packCcdVisitId(id.getInt(Dimension::Visit), id.getInt(Dimension::Detector));
    SingleVisitResult res =
        processSingleVisit(raw, det, calibs, haveRefs ? &refs : nullptr, band, ccdVisitId, config_, visitPsf ? &*visitPsf : nullptr);

    Provenance prov;
    prov.task = q.task + " " + id.toString();
    prov.config = configValues_;
    for (const auto& r : used) prov.inputs.push_back(provenanceInput(r));
    prov.addTo(res.calexp.metadata());
    prov.addTo(res.sources.metadata());
    std::optional<Table> bkg;
    if (res.background) {
        bkg = res.background->toTable();
        prov.addTo(bkg->metadata());
    }
    for (const auto& out : q.outputs) {
        if (out.datasetType == "calexp") {
            putOutput(repo_, out, prov.task, [&](const auto& p) { writeExposure(p, res.calexp); });
        } else if (out.datasetType == "src") {
            putOutput(repo_, out, prov.task, [&](const auto& p) { writeCatalog(p, "src", res.sources); });
        } else if (out.datasetType == "calexpBackground") {
            if (!bkg) throw LogicError("no background model to write");
            putOutput(repo_, out, prov.task, [&](const auto& p) { writeCatalog(p, "background", *bkg); });
        } else {
            throw LogicError("singleVisit cannot write " + out.datasetType);
        }
    }
    const auto& s = res.summary;
    std::string result = "sources=" + std::to_string(res.sources.size()) + " psfdtt=" + fmt("%.2e", s.getDouble("PSFDTT", NAN)) +
                         " astrms=" + fmt("%.1f", s.getDouble("ASTRMS", NAN)) + "mas (" + s.getString("ASTMODE", "none") + ") zp=" + fmt("%.3f", s.getDouble("ZP", NAN));
    DRP_LOG_VERBOSE("campaign", q.task << ": " << result);
    return result;
}

std::string CampaignWorker::runConsolidateVisit(const QuantumSpec& q) {
    std::vector<DatasetRef> inputs;
    for (const auto& r : q.inputs)
        if (r.datasetType == "src") inputs.push_back(r);
    std::sort(inputs.begin(), inputs.end(), [](const DatasetRef& a, const DatasetRef& b) { return a.dataId < b.dataId; });
    if (inputs.empty()) throw InvalidInputError("consolidateVisit " + q.dataId.toString() + " has no src inputs");
    Provenance prov;
    prov.task = q.task + " " + q.dataId.toString();
    std::vector<Table> parts;
    for (const auto& ref : inputs) {
        DatasetRecord rec = needInput(repo_, ref);
        parts.push_back(readCatalog(repo_.root() / rec.relativePath, "src"));
        prov.inputs.push_back(provenanceInput(rec));
    }
    Table all = Table::concatenate(parts);
    all.metadata() = PropertyList();
    prov.addTo(all.metadata());
    for (const auto& out : q.outputs) {
        if (out.datasetType != "sourceTable_visit") throw LogicError("consolidateVisit cannot write " + out.datasetType);
        putOutput(repo_, out, prov.task, [&](const auto& p) { writeCatalog(p, "sourceTable", all); });
    }
    return "detectors=" + std::to_string(parts.size()) + " sources=" + std::to_string(all.size());
}

std::string CampaignWorker::runReleaseIndex(const QuantumSpec& q) {
    std::vector<DatasetRef> inputs = q.inputs;
    std::sort(inputs.begin(), inputs.end(), [](const DatasetRef& a, const DatasetRef& b) {
        return std::tie(a.datasetType, a.dataId) < std::tie(b.datasetType, b.dataId);
    });
    Schema schema;
    auto fType = schema.addField<std::string>("datasetType", "catalog partition type (sourceTable_visit, ...)");
    auto fBand = schema.addField<std::string>("band", "band of the partition (empty if none)");
    auto fVisit = schema.addField<std::int64_t>("visit", "visit of the partition (-1 if none)");
    auto fPath = schema.addField<std::string>("path", "file, relative to the repository root");
    auto fRows = schema.addField<std::int64_t>("rows", "rows in the partition");
    auto fSize = schema.addField<std::int64_t>("size", "file size", "byte");
    auto fSum = schema.addField<std::string>("checksum", "XXH3-128 of the file (as in the repository manifest)");
    Table index(schema, inputs.size());
    Provenance prov;
    prov.task = q.task;
    std::int64_t totalRows = 0;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        DatasetRecord rec = needInput(repo_, inputs[i]);
        Hdf5File f(repo_.root() / rec.relativePath, Hdf5File::Mode::ReadOnly);
        auto groups = listTables(f);
        if (groups.empty()) throw InvalidInputError("no table in " + rec.datasetType + " " + rec.dataId.toString(),
                                                    (repo_.root() / rec.relativePath).string());
        Table t = readTable(f, groups.front());
        index.at(fType, i) = rec.datasetType;
        index.at(fBand, i) = rec.dataId.has(Dimension::Band) ? rec.dataId.getString(Dimension::Band) : std::string();
        index.at(fVisit, i) = rec.dataId.has(Dimension::Visit) ? rec.dataId.getInt(Dimension::Visit) : -1;
        index.at(fPath, i) = rec.relativePath;
        index.at(fRows, i) = std::int64_t(t.size());
        index.at(fSize, i) = std::int64_t(rec.size);
        index.at(fSum, i) = rec.checksum;
        totalRows += std::int64_t(t.size());
        prov.inputs.push_back(provenanceInput(rec));
    }
    index.metadata().set("NROWS", PropertyList::Value(totalRows), "rows over every partition");
    prov.addTo(index.metadata());
    for (const auto& out : q.outputs) {
        if (out.datasetType != "releaseIndex") throw LogicError("releaseIndex cannot write " + out.datasetType);
        putOutput(repo_, out, prov.task, [&](const auto& p) { writeCatalog(p, "partitions", index); });
    }
    return "partitions=" + std::to_string(inputs.size()) + " rows=" + std::to_string(totalRows);
}

bool outputsRecorded(const Repository& repo, const QuantumSpec& quantum) {
    for (const auto& o : quantum.outputs)
        if (!repo.exists(o.datasetType, o.run, o.dataId)) return false;
    return true;
}

}  // namespace drp
