// The named pipelines of drivers/campaign/QuantumGraph.h: task declarations only (levels, dataset types,
// relative costs). What a task does lives in drivers/campaign/CampaignTasks; here a task is planning data.
#include <string>
#include <vector>

#include "core/Error.h"
#include "drivers/campaign/QuantumGraph.h"

namespace drp {

namespace {

TaskDef task(std::string name, std::string description, QuantumLevel level, std::vector<std::string> inputs,
             std::vector<std::string> outputs, bool implemented, double cost) {
    TaskDef t;
    t.name = std::move(name);
    t.description = std::move(description);
    t.level = level;
    t.inputs = std::move(inputs);
    t.outputs = std::move(outputs);
    t.implemented = implemented;
    t.cost = cost;
    return t;
}

const std::vector<std::string> kRawAndCalibs{"raw", "bias", "dark", "flat", "ampCalib", "defects"};

/// The visit-level PSF (drivers/singlevisit/VisitPsfTasks.h): each detector's PSF stars, then one model over the focal
/// plane from every detector of the visit that was characterised, then the detectors' processing with it.
TaskDef characterizeImage() {
    return task("characterizeImage", "ISR and characterisation of one detector up to its PSF stars (cutouts)",
                QuantumLevel::VisitDetector, kRawAndCalibs, {"psfStars"}, true, 0.35);
}

TaskDef measureVisitPsf() {
    TaskDef t = task("measureVisitPsf", "one PSF model over the focal plane from the PSF stars of every detector of a visit",
                     QuantumLevel::Visit, {"psfStars"}, {"visitPsf"}, true, 0.5);
    t.toleratesFailedInputs = true;  // a detector that failed does not stop its visit's PSF
    return t;
}

TaskDef singleVisit() {
    std::vector<std::string> inputs = kRawAndCalibs;
    inputs.push_back("visitPsf");
    return task("singleVisit", "ISR, characterization and calibration of one detector of one visit, with its visit's PSF",
                QuantumLevel::VisitDetector, inputs, {"calexp", "calexpBackground", "src"}, true, 1.0);
}

TaskDef consolidateVisit() {
    return task("consolidateVisit", "concatenate the source catalogs of every detector of a visit", QuantumLevel::Visit,
                {"src"}, {"sourceTable_visit"}, true, 0.05);
}

TaskDef releaseIndex(std::vector<std::string> inputs) {
    return task("releaseIndex", "index of every catalog of the release", QuantumLevel::Global, std::move(inputs),
                {"releaseIndex"}, true, 0.05);
}

std::vector<TaskDef> singleVisitPipeline() {
    return {characterizeImage(), measureVisitPsf(), singleVisit(), consolidateVisit(), releaseIndex({"sourceTable_visit"})};
}

/// single-visit + assembleCoadd: the calexps of one band whose corners overlap a patch's outer box
/// (the graph builder's spatial join of a patch-band task with a visit-detector type), with their
/// subtracted backgrounds (for the skyBackground map) -> the patch's coadd.
std::vector<TaskDef> coaddPipeline() {
    std::vector<TaskDef> p = singleVisitPipeline();
    p.push_back(task("assembleCoadd", "warp the calexps of one band onto a patch and coadd them", QuantumLevel::PatchBand,
                     {"calexp", "calexpBackground"}, {"deepCoadd", "deepCoadd_surveyProperty", "deepCoadd_surveyPropertyPng"}, true, 2.0));
    p.push_back(task("assembleDetectionCoadd", "combine the deep coadds of every band of a patch for detection",
                     QuantumLevel::Patch, {"deepCoadd"}, {"deepCoadd_detection"}, true, 0.3));
    return p;
}

std::vector<TaskDef> drpFullPipeline() {
    using L = QuantumLevel;
    std::vector<TaskDef> p = {characterizeImage(), measureVisitPsf(), singleVisit(), consolidateVisit()};
    p.push_back(task("fgcm", "global photometric calibration (forward global calibration method)", L::Global,
                     {"sourceTable_visit"}, {"fgcmCalibration"}, false, 50.0));
    p.push_back(task("globalAstrometry", "joint astrometric solution of every visit", L::Global, {"sourceTable_visit"},
                     {"astrometrySolution"}, false, 50.0));
    p.push_back(task("makeWarp", "resample the calexps of one visit onto one patch", L::VisitPatch,
                     {"calexp", "fgcmCalibration", "astrometrySolution"}, {"warp"}, false, 0.5));
    p.push_back(task("assembleCoadd", "coadd the warps of one band on one patch", L::PatchBand, {"warp"}, {"deepCoadd"},
                     false, 1.0));
    p.push_back(task("detectCoadd", "detect sources on a coadd", L::PatchBand, {"deepCoadd"}, {"deepCoadd_det"}, false,
                     0.5));
    p.push_back(task("mergeDetections", "merge the detections of every band of a patch", L::Patch, {"deepCoadd_det"},
                     {"deepCoadd_mergeDet"}, false, 0.2));
    p.push_back(task("deblend", "deblend the merged detections on the coadds of every band", L::Patch,
                     {"deepCoadd_mergeDet", "deepCoadd"}, {"deepCoadd_deblendedFlux"}, false, 2.0));
    p.push_back(task("measureObjects", "measure the deblended objects on the coadd of one band", L::PatchBand,
                     {"deepCoadd_deblendedFlux", "deepCoadd"}, {"deepCoadd_meas"}, false, 1.0));
    p.push_back(task("mergeMeasurements", "choose the reference band of every object", L::Patch, {"deepCoadd_meas"},
                     {"deepCoadd_ref"}, false, 0.2));
    p.push_back(task("forcedPhotCoadd", "forced photometry of the reference objects on one band", L::PatchBand,
                     {"deepCoadd_ref", "deepCoadd"}, {"deepCoadd_forced_src"}, false, 0.5));
    p.push_back(task("writeObjectTable", "object table of one patch", L::Patch, {"deepCoadd_forced_src", "deepCoadd_ref"},
                     {"objectTable"}, false, 0.2));
    p.push_back(releaseIndex({"sourceTable_visit", "objectTable"}));
    return p;
}

}  // namespace

const char* quantumLevelName(QuantumLevel level) {
    switch (level) {
        case QuantumLevel::VisitDetector: return "visit-detector";
        case QuantumLevel::Visit: return "visit";
        case QuantumLevel::VisitPatch: return "visit-patch";
        case QuantumLevel::PatchBand: return "patch-band";
        case QuantumLevel::Patch: return "patch";
        case QuantumLevel::Global: return "global";
    }
    return "unknown";
}

TaskDef bestSeeingSelectionTask() {
    return task("selectBestSeeingVisits", "choose, per band, the visits under the survey-wide seeing quantile",
                QuantumLevel::Global, {"calexp"}, {"bestSeeingVisits"}, true, 0.2);
}

std::vector<TaskDef> coaddFlavourTasks(bool bestSeeing, bool shortPeriod) {
    std::vector<TaskDef> p;
    if (bestSeeing) {
        p.push_back(bestSeeingSelectionTask());
        p.push_back(task("assembleGoodSeeingCoadd", "coadd the calexps of the best-seeing visits of one band on a patch",
                         QuantumLevel::PatchBand, {"calexp", "calexpBackground", "bestSeeingVisits"}, {"goodSeeingCoadd"},
                         true, 1.0));
    }
    if (shortPeriod)
        p.push_back(task("assembleShortPeriodCoadd", "coadd the calexps of one band and one date range on a patch",
                         QuantumLevel::PatchBand, {"calexp", "calexpBackground"}, {"shortPeriodCoadd"}, true, 1.0));
    return p;
}

void withoutVisitPsf(std::vector<TaskDef>& pipeline) {
    std::erase_if(pipeline, [](const TaskDef& t) { return t.name == "characterizeImage" || t.name == "measureVisitPsf"; });
    for (TaskDef& t : pipeline) std::erase(t.inputs, std::string("visitPsf"));
}

std::vector<std::string> pipelineNames() { return {"single-visit", "coadd", "drp-full"}; }

std::vector<TaskDef> pipelineByName(const std::string& name) {
    if (name == "single-visit") return singleVisitPipeline();
    if (name == "coadd") return coaddPipeline();
    if (name == "drp-full") return drpFullPipeline();
    std::string known;
    for (const auto& n : pipelineNames()) known += (known.empty() ? "" : ", ") + n;
    throw NotFoundError("unknown pipeline '" + name + "' (known: " + known + ")");
}

}  // namespace drp
