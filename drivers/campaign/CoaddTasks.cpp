// assembleCoadd: the patch-band task of the "coadd" pipeline (drivers/campaign/Pipelines.cpp), and its
// optional flavours assembleGoodSeeingCoadd (coadd.best_seeing_quantile > 0: the calexps of the visits
// that the global quantum selectBestSeeingVisits chose survey-wide, per band, as those whose seeing is at
// most that quantile of every visit of the band (drivers/campaign/CoaddSelectionTask.cpp) ->
// goodSeeingCoadd; every patch of a band uses the same visits) and assembleShortPeriodCoadd
// (coadd.short_period_begin <= MJD < coadd.short_period_end -> shortPeriodCoadd), which coadd their
// selection exactly as the deep coadd (header FLAVOR, SEEINGQ and SEEINGLM or MJDBEGIN/MJDEND; no survey
// property maps). Selection, and skipping the calexps whose footprint misses the patch, uses only each
// calexp's header (io/ExposureHeader.h: bbox, WCS, VisitInfo; no pixel read): only the calexps that are
// coadded are read in full.
//
// Inputs: every calexp of the band whose corners overlap the patch's outer box (the graph builder's
// spatial join). The coadd covers the patch's outer box on the tract's pixel grid (tract WCS).
//
// Streaming: for each pass of the CoaddAssembler (1 without artifact rejection, the default; 4 with
// coadd.reject_artifacts=true), each input, in data-ID order (deterministic), is warped onto the part of
// the patch its footprint covers (destinationBBox), embedded in a patch-sized NO_DATA image and added;
// only one calexp and one warp are in memory at a time. Calexps whose footprint misses the patch are
// skipped in every pass. With more than one pass, pass 0 also appends each warp (image, mask, variance
// over its box only: raw native-endian rows) to a scratch file, and later passes read it back instead
// of re-reading and re-warping the calexp; the result is bit-identical (the warp is deterministic). The
// scratch file is a hidden AtomicFile temp name in $TMPDIR (else /tmp; node-local on most clusters),
// removed when the task ends, also on failure; if it cannot be written (e.g. a full disk) the task warns
// and falls back to re-warping. DRP_COADD_WARP_CACHE=0 in the environment turns the cache off (an
// execution detail, so it is not part of the recorded config and changes no output byte).
//
// Units: calexps are in ADU with a PhotoCalib (nJy per ADU). Each warp is scaled to nJy by the
// assembler through WarpMetadata::photoScale = calexp PhotoCalib mean (its variance by the square), so
// the coadd is in nJy and carries PhotoCalib(1) (zero point 31.4 AB). A calexp without a PhotoCalib is
// added unscaled (photoScale 1) with a warning.
//
// Per-input metadata: id = packCcdVisitId(visit, detector); exposure time and MJD from the VisitInfo;
// PSF sigma = the calexp PSF's determinant radius at the detector centre times the ratio of the calexp
// and patch pixel scales; skyLevel = the mean of the calexp's subtracted background model
// (calexpBackground, an input of this task) over the calexp pixels that land in the patch (sampled
// every 32 pixels), in ADU like the calexp (0 with a warning if the quantum has no calexpBackground for
// that calexp); weight computed by the assembler (1 / median scaled variance).
//
// Outputs: deepCoadd (image/mask/variance in nJy, patch WCS, CoaddPsf of the contributing inputs with
// their coadd weights, provenance of the contributing inputs only: the calexps whose warp has at least one
// valid pixel in the patch, each followed by its calexpBackground, with their checksums, and for the
// best-seeing flavour the bestSeeingVisits selection; tile-compressed, lossless: ExposureWriteOptions::compressed(), so
// the NO_DATA part of a patch at the field's edge costs almost nothing; header keys BUNIT, NINPUTS,
// TRACT, PATCH, BAND, WARPCOVF = the coadd-weighted mean of the inputs' warp covariance factors (the
// variance of a sum over an area much larger than the warping kernel is WARPCOVF x the sum of the
// VARIANCE plane, which stays per-pixel as in the Rubin pipelines; with per-input weights w_i = 1 / v_i
// input i contributes w_i^2 v_i = w_i to the coadd variance, hence the weights w_i)), deepCoadd_surveyProperty (one HDF5 table "maps", one row per map bin
// with columns binX, binY, nInputs, exposureTime, psfSigma, skyBackground, depth; metadata BINSIZE,
// NBINSX, NBINSY, PATCHX0, PATCHY0) and deepCoadd_surveyPropertyPng (the depth map, viridis, north up).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <map>
#include <memory>
#include <optional>

#include "core/Error.h"
#include "core/Log.h"
#include "core/PhotoCalib.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/campaign/Provenance.h"
#include "io/AtomicFile.h"
#include "io/ExposureFits.h"
#include "io/ExposureHeader.h"
#include "io/Hdf5Catalog.h"
#include "io/PngWriter.h"
#include "stages/characterize/Background.h"
#include "stages/coadd/CoaddAssembler.h"
#include "stages/coadd/CoaddFlavor.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/SurveyProperty.h"
#include "stages/coadd/Warper.h"

namespace drp {
namespace {

double finiteOr(double v, double fallback) { return std::isfinite(v) ? v : fallback; }

/// Mean of `background` over the calexp pixels (every `step` pixels) whose centres land in `destBox` of
/// the patch grid; the value at the calexp centre if none does.
double skyLevelUnder(const Background& background, const Exposure& calexp, const Wcs& patchWcs, const Box2I& destBox,
                     int step = 32) {
    const Box2I& b = calexp.bbox();
    double sum = 0.0;
    std::int64_t n = 0;
    for (int y = b.minY() + step / 2; y <= b.maxY(); y += step)
        for (int x = b.minX() + step / 2; x <= b.maxX(); x += step) {
            const Point2D p = patchWcs.skyToPixel(calexp.wcs()->pixelToSky({double(x), double(y)}));
            if (!(p.x >= destBox.minX() - 0.5 && p.x < destBox.maxX() + 0.5 && p.y >= destBox.minY() - 0.5 &&
                  p.y < destBox.maxY() + 0.5))
                continue;
            sum += background.evaluate({double(x), double(y)});
            ++n;
        }
    if (n > 0) return sum / double(n);
    return background.evaluate({b.minX() + 0.5 * (b.width() - 1), b.minY() + 0.5 * (b.height() - 1)});
}

/// Scratch file of the warps of one coadd (see the header): pass 0 appends each warp, later passes read
/// it back. The file has a hidden AtomicFile temp name that is never committed, so it is removed when
/// the cache is destroyed (also during stack unwinding).
class WarpCache {
public:
    explicit WarpCache(const std::filesystem::path& nominal) : file_(nominal) {
        out_.reset(std::fopen(file_.tempPath().c_str(), "w+b"));
        if (!out_) DRP_LOG_WARN("campaign", "warp cache: cannot create " << file_.tempPath().string() << "; warps are recomputed");
    }
    bool enabled() const { return bool(out_); }
    std::int64_t bytes() const { return end_; }
    const std::filesystem::path& path() const { return file_.tempPath(); }

    /// Append the warp of input `index`; on a write failure (e.g. a full disk) warn, drop the cache and
    /// return false: the caller then recomputes warps.
    bool put(std::size_t index, const MaskedImageF& warp) {
        if (!out_) return false;
        Entry e{warp.bbox(), end_, warp.mask().planeDict()};
        bool ok = std::fseek(out_.get(), long(end_), SEEK_SET) == 0;
        for (int y = 0; ok && y < warp.height(); ++y) ok = writeRow(warp.image().row(y), warp.width());
        for (int y = 0; ok && y < warp.height(); ++y) ok = writeRow(warp.mask().row(y), warp.width());
        for (int y = 0; ok && y < warp.height(); ++y) ok = writeRow(warp.variance().row(y), warp.width());
        ok = ok && std::fflush(out_.get()) == 0;
        if (!ok) {
            DRP_LOG_WARN("campaign", "warp cache: writing " << file_.tempPath().string() << " failed; warps are recomputed");
            out_.reset();
            file_.discard();
            entries_.clear();
            return false;
        }
        end_ += std::int64_t(warp.bbox().area()) * std::int64_t(2 * sizeof(float) + sizeof(MaskPixel));
        entries_[index] = std::move(e);
        return true;
    }
    bool has(std::size_t index) const { return out_ && entries_.count(index) != 0; }

    /// The warp of input `index` as put() received it (bit-identical). IoError if the file cannot be read.
    MaskedImageF get(std::size_t index) const {
        const Entry& e = entries_.at(index);
        ImageF image(e.box), variance(e.box);
        Image<MaskPixel> mask(e.box);
        bool ok = std::fseek(out_.get(), long(e.offset), SEEK_SET) == 0;
        for (int y = 0; ok && y < image.height(); ++y) ok = readRow(image.row(y), image.width());
        for (int y = 0; ok && y < mask.height(); ++y) ok = readRow(mask.row(y), mask.width());
        for (int y = 0; ok && y < variance.height(); ++y) ok = readRow(variance.row(y), variance.width());
        if (!ok) throw IoError("warp cache: cannot read back a cached warp", file_.tempPath().string());
        return MaskedImageF(image, Mask(mask, e.planes), variance);
    }

private:
    struct Entry {
        Box2I box;
        std::int64_t offset = 0;
        std::shared_ptr<MaskPlaneDict> planes;
    };
    struct Closer {
        void operator()(std::FILE* f) const { std::fclose(f); }
    };
    template <typename T>
    bool writeRow(const T* row, int n) {
        return std::fwrite(row, sizeof(T), std::size_t(n), out_.get()) == std::size_t(n);
    }
    template <typename T>
    bool readRow(T* row, int n) const {
        return std::fread(row, sizeof(T), std::size_t(n), out_.get()) == std::size_t(n);
    }

    AtomicFile file_;  // declared before out_: the stream is closed before the file is removed
    std::unique_ptr<std::FILE, Closer> out_;
    std::map<std::size_t, Entry> entries_;
    std::int64_t end_ = 0;
};

/// The calexp PSF's determinant radius at the detector centre, in patch pixels.
double psfSigmaOnPatch(const Exposure& calexp, double patchScale) {
    const Point2D c{calexp.bbox().minX() + 0.5 * calexp.width(), calexp.bbox().minY() + 0.5 * calexp.height()};
    return calexp.psf()->computeSigma(c) * calexp.wcs()->pixelScale(c).asArcseconds() / patchScale;
}

bool warpCacheAllowed() {
    const char* v = std::getenv("DRP_COADD_WARP_CACHE");
    return !(v && (std::string(v) == "0" || std::string(v) == "off" || std::string(v) == "false"));
}

}  // namespace

std::string CampaignWorker::runAssembleCoadd(const QuantumSpec& q) {
    using campaign_detail::needInput;
    using campaign_detail::putOutput;
    const DataId& id = q.dataId;
    const std::string band = id.getString(Dimension::Band);
    const SkyMap skyMap(setup_.skymap);
    const TractInfo& tract = skyMap.tract(int(id.getInt(Dimension::Tract)));
    const PatchInfo patch = skyMap.patch(tract, int(id.getInt(Dimension::Patch)));
    const Box2I patchBox = patch.outerBBox;
    const std::shared_ptr<const Wcs> patchWcs = tract.wcs;
    const Point2D patchCentre{patchBox.minX() + 0.5 * patchBox.width(), patchBox.minY() + 0.5 * patchBox.height()};
    const double patchScale = patchWcs->pixelScale(patchCentre).asArcseconds();

    std::vector<DatasetRef> refs;
    std::map<DataId, DatasetRef> backgroundRefs;
    for (const auto& r : q.inputs) {
        if (r.datasetType == "calexp") refs.push_back(r);
        if (r.datasetType == "calexpBackground") backgroundRefs.emplace(r.dataId, r);
    }
    std::sort(refs.begin(), refs.end(), [](const DatasetRef& a, const DatasetRef& b) { return a.dataId < b.dataId; });
    if (refs.empty()) throw InvalidInputError("assembleCoadd " + id.toString() + " has no calexp inputs");

    WarpConfig wcfg;
    wcfg.kernel = coaddConfig_.warpKernel;
    wcfg.interpLength = coaddConfig_.interpLength;
    CoaddConfig ccfg;
    ccfg.rejectArtifacts = coaddConfig_.rejectArtifacts;
    SurveyPropertyConfig scfg;
    scfg.binSize = coaddConfig_.mapBinSize;
    CoaddAssembler assembler(patchBox, ccfg);
    SurveyPropertyAccumulator maps(patchBox, scfg);

    Provenance prov;
    prov.task = q.task + " " + id.toString();
    prov.config = coaddConfigValues_;
    std::vector<DatasetRecord> records;
    std::vector<std::optional<DatasetRecord>> backgrounds;
    for (const auto& r : refs) {
        records.push_back(needInput(repo_, r));
        backgrounds.emplace_back();
        if (auto b = backgroundRefs.find(r.dataId); b != backgroundRefs.end()) backgrounds.back() = needInput(repo_, b->second);
    }
    CoaddFlavorConfig flavour;
    if (q.task == "assembleGoodSeeingCoadd") {
        flavour.kind = CoaddFlavorConfig::Kind::BestSeeing;
        flavour.seeingQuantile = coaddConfig_.bestSeeingQuantile;
    } else if (q.task == "assembleShortPeriodCoadd") {
        flavour.kind = CoaddFlavorConfig::Kind::ShortPeriod;
        flavour.mjdBegin = coaddConfig_.shortPeriodBegin;
        flavour.mjdEnd = coaddConfig_.shortPeriodEnd;
    }
    flavour.validate();
    // A first look at every input's header (bbox, WCS, VisitInfo; io/ExposureHeader.h reads no pixel):
    // calexps whose footprint misses the patch, and those the flavour does not keep, are never read.
    // Best seeing keeps the visits of the survey-wide selection (bestSeeingVisits, made by the global
    // quantum selectBestSeeingVisits); short period keeps mjdBegin <= MJD < mjdEnd.
    std::optional<DatasetRecord> selectionRecord;
    std::map<std::int64_t, bool> selectedVisits;
    double seeingThreshold = std::numeric_limits<double>::quiet_NaN();
    if (flavour.kind == CoaddFlavorConfig::Kind::BestSeeing) {
        for (const auto& r : q.inputs)
            if (r.datasetType == "bestSeeingVisits") selectionRecord = needInput(repo_, r);
        if (!selectionRecord)
            throw InvalidInputError(q.task + " " + id.toString() + " has no bestSeeingVisits input (selectBestSeeingVisits)");
        const Table sel = readCatalog(repo_.root() / selectionRecord->relativePath, "visits");
        const auto fBand = sel.schema().find<std::string>("band");
        const auto fVisit = sel.schema().find<std::int64_t>("visit");
        const auto fSel = sel.schema().find<std::int64_t>("selected");
        const auto fThr = sel.schema().find<double>("threshold");
        for (std::size_t r = 0; r < sel.size(); ++r) {
            if (sel.at(fBand, r) != band) continue;
            selectedVisits[sel.at(fVisit, r)] = sel.at(fSel, r) != 0;
            seeingThreshold = sel.at(fThr, r);
        }
    }
    std::vector<char> overlaps(refs.size(), 1);
    std::vector<Box2I> boxes(refs.size());  // each calexp's destination box in the patch, from its header
    for (std::size_t i = 0; i < refs.size(); ++i) {
        if (flavour.kind == CoaddFlavorConfig::Kind::BestSeeing) {
            auto it = selectedVisits.find(refs[i].dataId.getInt(Dimension::Visit));
            if (it == selectedVisits.end())
                throw InvalidInputError(q.task + " " + id.toString() + ": " + refs[i].dataId.toString() +
                                        " is not in the best-seeing selection (bestSeeingVisits is out of date)");
            if (!it->second) {
                overlaps[i] = 0;
                continue;
            }
        }
        ExposureReadOptions ro;
        ro.requireWcs = true;
        const ExposureHeader h = readExposureHeader(repo_.root() / records[i].relativePath, ro);
        boxes[i] = destinationBBox(h.bbox, *h.wcs, *patchWcs, patchBox);
        if (boxes[i].empty()) {
            overlaps[i] = 0;
            continue;
        }
        if (flavour.kind == CoaddFlavorConfig::Kind::ShortPeriod) {
            WarpMetadata look;
            look.mjd = finiteOr(h.visitInfo.midExposureMjdTai, 0.0);
            if (selectCoaddInputs({look}, flavour).empty()) overlaps[i] = 0;
        }
    }
    if (flavour.kind != CoaddFlavorConfig::Kind::Deep &&
        std::none_of(overlaps.begin(), overlaps.end(), [](char o) { return o != 0; })) {
        DRP_LOG_INFO("campaign", q.task << " " << id.toString() << ": no input selected; nothing written");
        return "no data: nothing written";
    }
    std::unique_ptr<WarpCache> cache;
    if (assembler.numPasses() > 1 && warpCacheAllowed()) {
        cache = std::make_unique<WarpCache>(std::filesystem::temp_directory_path() /
                                            ("drp_warps_" + band + "_" + std::to_string(tract.id) + "_" +
                                             std::to_string(patch.index) + ".bin"));
    }
    std::vector<WarpMetadata> metas(refs.size());
    std::vector<char> contributes(refs.size(), 0);  // pass 0: the warp has a valid pixel in the patch
    std::vector<CoaddPsfInput> psfInputs, fallbackPsfInputs;
    double sumWeight = 0.0, sumWeightCovf = 0.0;
    int used = 0;
    for (int pass = 0; pass < assembler.numPasses(); ++pass) {
        assembler.beginPass(pass);
        for (std::size_t i = 0; i < refs.size(); ++i) {
            if (!overlaps[i]) continue;
            if (pass > 0 && cache && cache->has(i)) {
                assembler.add(embedInGrid(cache->get(i), patchBox), metas[i]);
                continue;
            }
            const DataId& cid = refs[i].dataId;
            ExposureReadOptions ro;
            ro.requireWcs = true;
            ro.requirePsf = true;
            Exposure calexp = readExposure(repo_.root() / records[i].relativePath, ro);
            WarpInfo winfo;
            Exposure warp = warpExposure(calexp, patchWcs, boxes[i], wcfg, &winfo);
            const MaskedImageF full = embedInGrid(warp.maskedImage(), patchBox);
            if (pass > 0) {  // no cache: the same warp again
                assembler.add(full, metas[i]);
                continue;
            }
            contributes[i] = winfo.numGoodPixels > 0;
            WarpMetadata& meta = metas[i];
            meta.id = packCcdVisitId(cid.getInt(Dimension::Visit), cid.getInt(Dimension::Detector));
            meta.band = band;
            meta.exposureTimeS = std::max(0.0, finiteOr(calexp.visitInfo().exposureTimeS, 0.0));
            meta.mjd = finiteOr(calexp.visitInfo().midExposureMjdTai, 0.0);
            meta.psfSigmaPx = psfSigmaOnPatch(calexp, patchScale);
            if (calexp.hasPhotoCalib()) {
                meta.photoScale = calexp.photoCalib()->calibrationMean();
            } else {
                DRP_LOG_WARN("campaign", "assembleCoadd " << id.toString() << ": " << cid.toString()
                                                          << " has no PhotoCalib; added unscaled");
            }
            if (backgrounds[i]) {
                const Background bkg =
                    Background::fromTable(readCatalog(repo_.root() / backgrounds[i]->relativePath, "background"));
                meta.skyLevel = skyLevelUnder(bkg, calexp, *patchWcs, boxes[i]);
            } else {
                DRP_LOG_WARN("campaign", "assembleCoadd " << id.toString() << ": no calexpBackground for "
                                                          << cid.toString() << "; its sky level counts as 0");
            }
            if (cache) cache->put(i, warp.maskedImage());
            const double weight = assembler.add(full, meta);
            maps.add(full, meta, weight);
            CoaddPsfInput pin{calexp.psf(), calexp.wcs(), weight, calexp.bbox(), meta.id};
            if (std::isfinite(weight) && weight > 0) {
                psfInputs.push_back(pin);
                sumWeight += weight;
                sumWeightCovf += weight * warp.metadata().getDouble("WARPCOVF", 1.0);
                ++used;
            } else {
                pin.weight = 1.0;
                fallbackPsfInputs.push_back(pin);
            }
        }
    }
    if (cache && cache->enabled()) {
        DRP_LOG_VERBOSE("campaign", "assembleCoadd " << id.toString() << ": warp cache " << cache->bytes() / 1000000
                                                     << " MB in " << cache->path().string());
    }
    cache.reset();  // remove the scratch file now, not after the outputs are written
    // Provenance: the inputs that contribute a pixel (calexp, then its background), in data-ID order;
    // calexps of the quantum that miss the patch, that the flavour drops or whose warp has no valid pixel
    // are not listed. The best-seeing coadd also lists the selection it used.
    if (selectionRecord)
        prov.inputs.push_back({selectionRecord->datasetType, selectionRecord->run, selectionRecord->dataId.toString(),
                               selectionRecord->checksum});
    for (std::size_t i = 0; i < refs.size(); ++i) {
        if (!contributes[i]) continue;
        prov.inputs.push_back({records[i].datasetType, records[i].run, records[i].dataId.toString(), records[i].checksum});
        if (backgrounds[i])
            prov.inputs.push_back({backgrounds[i]->datasetType, backgrounds[i]->run, backgrounds[i]->dataId.toString(),
                                   backgrounds[i]->checksum});
    }
    MaskedImageF coadd = assembler.finish();
    if (psfInputs.empty()) psfInputs = std::move(fallbackPsfInputs);
    if (psfInputs.empty()) {
        // The graph joins calexps by their corners' polygon; one that only grazes the patch's outer box
        // may leave no pixel after warping. Nothing to coadd: no outputs, not a failure (like Rubin's
        // NoWorkFound); a later --resume simply finds the same.
        DRP_LOG_INFO("campaign", "assembleCoadd " << id.toString() << ": no input pixel lands in the patch; nothing written");
        return "no data: nothing written";
    }
    const SurveyPropertyMaps spm = maps.finish(coadd);

    Exposure out(coadd, patchWcs, CoaddPsf::make(patchWcs, psfInputs, wcfg.kernel));
    out.setPhotoCalib(std::make_shared<const PhotoCalib>(1.0));
    out.metadata().set("BUNIT", PropertyList::Value(std::string("nJy")), "pixel unit");
    if (flavour.kind != CoaddFlavorConfig::Kind::Deep) {
        const bool seeing = flavour.kind == CoaddFlavorConfig::Kind::BestSeeing;
        out.metadata().set("FLAVOR", std::string(seeing ? "bestSeeing" : "shortPeriod"), "coadd flavour (input selection)");
        if (seeing) {
            out.metadata().set("SEEINGQ", flavour.seeingQuantile, "visits with seeing <= this quantile of the band's");
            out.metadata().set("SEEINGLM", seeingThreshold, "that quantile: the band's survey-wide seeing limit (arcsec)");
        } else {
            out.metadata().set("MJDBEGIN", flavour.mjdBegin, "first MJD included");
            out.metadata().set("MJDEND", flavour.mjdEnd, "first MJD excluded");
        }
    }
    out.metadata().set("NINPUTS", PropertyList::Value(std::int64_t(used)), "calexps contributing to the coadd");
    out.metadata().set("TRACT", PropertyList::Value(std::int64_t(tract.id)), "tract of the patch");
    out.metadata().set("PATCH", PropertyList::Value(std::int64_t(patch.index)), "patch index in the tract");
    out.metadata().set("WARPCOVF", sumWeight > 0 ? sumWeightCovf / sumWeight : 1.0,
                       "var of large-area sums / summed VARIANCE");
    VisitInfo coaddInfo;
    coaddInfo.band = band;
    out.setVisitInfo(coaddInfo);
    prov.addTo(out.metadata());

    Schema schema;
    auto fx = schema.addField<std::int64_t>("binX", "map bin column (coadd x = PATCHX0 + binX * BINSIZE)");
    auto fy = schema.addField<std::int64_t>("binY", "map bin row (coadd y = PATCHY0 + binY * BINSIZE)");
    auto fn = schema.addField<double>("nInputs", "mean number of inputs per pixel");
    auto ft = schema.addField<double>("exposureTime", "mean summed exposure time", "s");
    auto fp = schema.addField<double>("psfSigma", "second-moment PSF sigma of the coadd", "pixel");
    auto fs = schema.addField<double>("skyBackground", "weighted mean subtracted sky", "nJy");
    auto fd = schema.addField<double>("depth", "5-sigma point-source limiting magnitude", "mag");
    const int nx = spm.depth.width(), ny = spm.depth.height();
    Table table(schema, std::size_t(nx) * std::size_t(ny));
    for (int j = 0; j < ny; ++j)
        for (int i = 0; i < nx; ++i) {
            const std::size_t r = std::size_t(j) * std::size_t(nx) + std::size_t(i);
            table.at(fx, r) = std::int64_t(i);
            table.at(fy, r) = std::int64_t(j);
            table.at(fn, r) = double(spm.nInputs(i, j));
            table.at(ft, r) = double(spm.exposureTime(i, j));
            table.at(fp, r) = double(spm.psfSigma(i, j));
            table.at(fs, r) = double(spm.skyBackground(i, j));
            table.at(fd, r) = double(spm.depth(i, j));
        }
    table.metadata().set("BINSIZE", PropertyList::Value(std::int64_t(spm.binSize)), "map bin side, coadd pixels");
    table.metadata().set("NBINSX", PropertyList::Value(std::int64_t(nx)), "bins along x");
    table.metadata().set("NBINSY", PropertyList::Value(std::int64_t(ny)), "bins along y");
    table.metadata().set("PATCHX0", PropertyList::Value(std::int64_t(patchBox.minX())), "coadd x of bin 0");
    table.metadata().set("PATCHY0", PropertyList::Value(std::int64_t(patchBox.minY())), "coadd y of bin 0");
    prov.addTo(table.metadata());
    MapRenderConfig rc;
    rc.colormap = MapRenderConfig::Colormap::Viridis;
    const ImageBuffer8 png = renderMap(spm.depth, rc);

    for (const auto& o : q.outputs) {
        if (o.datasetType == "deepCoadd" || o.datasetType == "goodSeeingCoadd" || o.datasetType == "shortPeriodCoadd") {
            putOutput(repo_, o, prov.task,
                      [&](const auto& p) { writeExposure(p, out, ExposureWriteOptions::compressed()); });
        } else if (o.datasetType == "deepCoadd_surveyProperty") {
            putOutput(repo_, o, prov.task, [&](const auto& p) { writeCatalog(p, "maps", table); });
        } else if (o.datasetType == "deepCoadd_surveyPropertyPng") {
            putOutput(repo_, o, prov.task,
                      [&](const auto& p) { writePng(p, png.width, png.height, png.channels, png.pixels); });
        } else {
            throw LogicError("assembleCoadd cannot write " + o.datasetType);
        }
    }
    std::int64_t good = 0;
    const MaskPixel noData = coadd.mask().planeBitMask("NO_DATA");
    for (int y = 0; y < coadd.height(); ++y)
        for (int x = 0; x < coadd.width(); ++x) good += (coadd.mask()(x, y) & noData) == 0;
    char buf[160];
    std::snprintf(buf, sizeof buf, "inputs=%d coverage=%.3f psf=%.2fpx", used, double(good) / double(patchBox.area()),
                  assembler.meanPsfSigmaPx());
    DRP_LOG_VERBOSE("campaign", q.task << ": " << buf);
    return buf;
}

}  // namespace drp
