// assembleCoadd: the patch-band task of the "coadd" pipeline (drivers/campaign/Pipelines.cpp).
//
// Inputs: every calexp of the band whose corners overlap the patch's outer box (the graph builder's
// spatial join). The coadd covers the patch's outer box on the tract's pixel grid (tract WCS).
//
// Streaming: for each pass of the CoaddAssembler (1 without artifact rejection, the default; 3 with
// coadd.reject_artifacts=true), each calexp, in data-ID order (deterministic), is read, warped onto the
// part of the patch its footprint covers (destinationBBox), embedded in a patch-sized NO_DATA image and
// added; only one calexp and one warp are in memory at a time. Calexps whose footprint misses the patch
// are skipped in every pass.
//
// Units: calexps are in ADU with a PhotoCalib (nJy per ADU). Each warp is scaled to nJy by the
// assembler through WarpMetadata::photoScale = calexp PhotoCalib mean (its variance by the square), so
// the coadd is in nJy and carries PhotoCalib(1) (zero point 31.4 AB). A calexp without a PhotoCalib is
// added unscaled (photoScale 1) with a warning.
//
// Per-input metadata: id = packCcdVisitId(visit, detector); exposure time and MJD from the VisitInfo;
// PSF sigma = the calexp PSF's determinant radius at the detector centre times the ratio of the calexp
// and patch pixel scales; skyLevel 0 (calexps are background-subtracted and the subtracted model is not
// an input of this task, so the skyBackground map is 0); weight computed by the assembler (1 / median
// scaled variance).
//
// Outputs: deepCoadd (image/mask/variance in nJy, patch WCS, CoaddPsf of the contributing inputs with
// their coadd weights, provenance), deepCoadd_surveyProperty (one HDF5 table "maps", one row per map bin
// with columns binX, binY, nInputs, exposureTime, psfSigma, skyBackground, depth; metadata BINSIZE,
// NBINSX, NBINSY, PATCHX0, PATCHY0) and deepCoadd_surveyPropertyPng (the depth map, viridis, north up).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "core/Error.h"
#include "core/Log.h"
#include "core/PhotoCalib.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/campaign/Provenance.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/PngWriter.h"
#include "stages/coadd/CoaddAssembler.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/SurveyProperty.h"
#include "stages/coadd/Warper.h"

namespace drp {
namespace {

/// `warp` placed in a patch-sized image: NaN image, infinite variance and NO_DATA outside its box.
MaskedImageF embedInPatch(const MaskedImageF& warp, const Box2I& patchBox) {
    ImageF image(patchBox, std::numeric_limits<float>::quiet_NaN());
    ImageF variance(patchBox, std::numeric_limits<float>::infinity());
    Mask mask(Image<MaskPixel>(patchBox, 0), std::make_shared<MaskPlaneDict>(*warp.mask().planeDict()));
    mask.setBits(mask.planeBitMask("NO_DATA"));
    MaskedImageF full(image, mask, variance);
    MaskedImageF sub = full.subImage(warp.bbox());
    sub.image().assign(warp.image());
    sub.mask().assign(warp.mask());
    sub.variance().assign(warp.variance());
    return full;
}

double finiteOr(double v, double fallback) { return std::isfinite(v) ? v : fallback; }

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
    for (const auto& r : q.inputs)
        if (r.datasetType == "calexp") refs.push_back(r);
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
    for (const auto& r : refs) {
        records.push_back(needInput(repo_, r));
        prov.inputs.push_back({records.back().datasetType, records.back().run, records.back().dataId.toString(),
                               records.back().checksum});
    }
    std::vector<char> overlaps(refs.size(), 1);
    std::vector<CoaddPsfInput> psfInputs, fallbackPsfInputs;
    int used = 0;
    for (int pass = 0; pass < assembler.numPasses(); ++pass) {
        assembler.beginPass(pass);
        for (std::size_t i = 0; i < refs.size(); ++i) {
            if (!overlaps[i]) continue;
            const DataId& cid = refs[i].dataId;
            ExposureReadOptions ro;
            ro.requireWcs = true;
            ro.requirePsf = true;
            Exposure calexp = readExposure(repo_.root() / records[i].relativePath, ro);
            const Box2I box = destinationBBox(calexp.bbox(), *calexp.wcs(), *patchWcs, patchBox);
            if (box.empty()) {
                overlaps[i] = 0;
                DRP_LOG_VERBOSE("campaign", "assembleCoadd " << id.toString() << ": " << cid.toString() << " misses the patch");
                continue;
            }
            const Point2D c{calexp.bbox().minX() + 0.5 * calexp.width(), calexp.bbox().minY() + 0.5 * calexp.height()};
            WarpMetadata meta;
            meta.id = packCcdVisitId(cid.getInt(Dimension::Visit), cid.getInt(Dimension::Detector));
            meta.band = band;
            meta.exposureTimeS = std::max(0.0, finiteOr(calexp.visitInfo().exposureTimeS, 0.0));
            meta.mjd = finiteOr(calexp.visitInfo().midExposureMjdTai, 0.0);
            meta.psfSigmaPx = calexp.psf()->computeSigma(c) * calexp.wcs()->pixelScale(c).asArcseconds() / patchScale;
            if (calexp.hasPhotoCalib()) {
                meta.photoScale = calexp.photoCalib()->calibrationMean();
            } else if (pass == 0) {
                DRP_LOG_WARN("campaign", "assembleCoadd " << id.toString() << ": " << cid.toString()
                                                          << " has no PhotoCalib; added unscaled");
            }
            Exposure warp = warpExposure(calexp, patchWcs, box, wcfg);
            const MaskedImageF full = embedInPatch(warp.maskedImage(), patchBox);
            const double weight = assembler.add(full, meta);
            if (pass == 0) {
                maps.add(full, meta, weight);
                CoaddPsfInput pin{calexp.psf(), calexp.wcs(), weight, calexp.bbox(), meta.id};
                if (std::isfinite(weight) && weight > 0) {
                    psfInputs.push_back(pin);
                    ++used;
                } else {
                    pin.weight = 1.0;
                    fallbackPsfInputs.push_back(pin);
                }
            }
        }
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
    out.metadata().set("NINPUTS", PropertyList::Value(std::int64_t(used)), "calexps contributing to the coadd");
    out.metadata().set("TRACT", PropertyList::Value(std::int64_t(tract.id)), "tract of the patch");
    out.metadata().set("PATCH", PropertyList::Value(std::int64_t(patch.index)), "patch index in the tract");
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
        if (o.datasetType == "deepCoadd") {
            putOutput(repo_, o, prov.task, [&](const auto& p) { writeExposure(p, out); });
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
