// CampaignTasks: what a rank does with one quantum of the campaign — read its inputs from the
// repository, call the stages, write its outputs with provenance. Implemented tasks: characterizeImage
// (raw -> psfStars), measureVisitPsf (a visit's psfStars -> visitPsf; the detectors whose psfStars exist),
// singleVisit (raw [+ visitPsf] -> calexp, calexpBackground, src), consolidateVisit (the src tables of a visit -> one
// sourceTable_visit partition), releaseIndex (every partition with its row count and checksum).
//
// Outputs are written resume-safely: an output the manifest already records with a checksum matching
// its file is kept (processing is deterministic, so a rerun would write the same bytes); one whose
// file no longer matches is an error naming it (nothing is overwritten); a file at an output's path
// that the manifest does not list (its writer was killed between publishing and recording) is removed
// and written again.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/Camera.h"
#include "drivers/campaign/QuantumGraph.h"
#include "drivers/singlevisit/InputLoading.h"
#include "drivers/singlevisit/SingleVisit.h"
#include "io/Repository.h"
#include "sky/SkyMap.h"

namespace drp {

/// Everything a worker needs besides the quantum.
struct CampaignWorkerSetup {
    std::filesystem::path repo;
    CampaignRuns runs;
    std::string refcatRun;                 ///< reference catalog run (default: the raw run)
    std::vector<std::string> settings;     ///< "key=value" processing overrides (SingleVisitConfig keys, coadd.*)
    SkyMapConfig skymap;                   ///< the sky map of patch-level quanta (assembleCoadd)
};

/// Campaign-level configuration of assembleCoadd (keys "coadd.*" of --set).
struct CampaignCoaddConfig {
    std::string warpKernel = "lanczos3";  ///< coadd.warp_kernel (stages/coadd/Lanczos.h names)
    int interpLength = 10;                ///< coadd.interp_length (WarpConfig::interpLength)
    bool rejectArtifacts = true;          ///< coadd.reject_artifacts: remove transients, trails, cosmic rays and streaks seen in a minority of epochs
    int mapBinSize = 10;                  ///< coadd.map_bin_size: survey property map bin, coadd pixels
    std::string detectionKind = "weighted";  ///< coadd.detection_kind: weighted | chi2 (deepCoadd_detection)
    /// coadd.best_seeing_quantile: > 0 adds the best-seeing coadd (goodSeeingCoadd) of the visits whose
    /// seeing (median PSF sigma of their detectors) is at most this quantile of the seeing of every visit
    /// of the band in the campaign (survey-wide: every patch of a band uses the same visits); 0 (default): none.
    double bestSeeingQuantile = 0.0;
    /// coadd.short_period_begin/end (MJD, begin inclusive, end exclusive): end > begin adds the
    /// short-period coadd (shortPeriodCoadd) of the inputs observed in that range; both 0 (default): none.
    double shortPeriodBegin = 0.0;
    double shortPeriodEnd = 0.0;
    bool bestSeeing() const { return bestSeeingQuantile > 0; }
    bool shortPeriod() const { return shortPeriodEnd > shortPeriodBegin; }
};

/// The effective processing config (SingleVisitConfig after the overrides; "coadd.*" keys are checked
/// against CampaignCoaddConfig but not returned) as key -> value; throws ConfigError for an unknown key or bad value.
std::map<std::string, std::string> effectiveProcessingConfig(const std::vector<std::string>& settings);

class CampaignWorker {
public:
    /// Opens the repository and the camera of the raw run; validates the config.
    explicit CampaignWorker(const CampaignWorkerSetup& setup);
    /// Run one quantum; returns a one-line result ("sources=812 astrms=6.1mas zp=31.42"); throws on failure.
    std::string run(const QuantumSpec& quantum);

private:
    std::string runCharacterizeImage(const QuantumSpec& q);
    std::string runMeasureVisitPsf(const QuantumSpec& q);
    std::string runSingleVisit(const QuantumSpec& q);
    /// The quantum's raw (with the camera's distortion in its header WCS) and its detector's calibrations; appends the
    /// records read to `used`.
    RawExposure loadRaw(const QuantumSpec& q, std::vector<DatasetRecord>& used, IsrCalibrations& calibs);
    std::string runConsolidateVisit(const QuantumSpec& q);
    std::string runReleaseIndex(const QuantumSpec& q);
    std::string runAssembleCoadd(const QuantumSpec& q);  // CoaddTasks.cpp
    std::string runSelectBestSeeingVisits(const QuantumSpec& q);  // CoaddSelectionTask.cpp
    std::string runDetectionCoadd(const QuantumSpec& q);  // DetectionCoaddTask.cpp

    CampaignWorkerSetup setup_;
    Repository repo_;
    std::shared_ptr<const Camera> camera_;
    std::string instrument_;
    SingleVisitConfig config_;
    std::map<std::string, std::string> configValues_;
    CampaignCoaddConfig coaddConfig_;
    std::map<std::string, std::string> coaddConfigValues_;
    std::set<int> refLevels_;
    bool refLevelsKnown_ = false;
    CalibrationCache calibs_;
};


/// Split "coadd.*" settings from the rest and bind them to `coadd` (ConfigError for an unknown coadd key or a
/// bad value); returns the other settings. `values` (optional) receives the effective coadd config.
std::vector<std::string> applyCoaddSettings(const std::vector<std::string>& settings, CampaignCoaddConfig& coadd,
                                            std::map<std::string, std::string>* values = nullptr);

namespace campaign_detail {
/// Write one output resume-safely (see the header). Shared by the task implementations.
void putOutput(Repository& repo, const DatasetRef& ref, const std::string& producer,
               const std::function<void(const std::filesystem::path&)>& writer);
/// The input's manifest record; NotFoundError if missing.
DatasetRecord needInput(const Repository& repo, const DatasetRef& ref);
}  // namespace campaign_detail

/// True if every output of `quantum` is in the manifest.
bool outputsRecorded(const Repository& repo, const QuantumSpec& quantum);

}  // namespace drp
