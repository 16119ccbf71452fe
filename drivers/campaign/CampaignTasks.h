// CampaignTasks: what a rank does with one quantum of the campaign — read its inputs from the
// repository, call the stages, write its outputs with provenance. Implemented tasks: singleVisit
// (raw -> calexp, calexpBackground, src), consolidateVisit (the src tables of a visit -> one
// sourceTable_visit partition), releaseIndex (every partition with its row count and checksum).
//
// Outputs are written resume-safely: an output the manifest already records with a checksum matching
// its file is kept (processing is deterministic, so a rerun would write the same bytes); one whose
// file no longer matches is an error naming it (nothing is overwritten); a file at an output's path
// that the manifest does not list (its writer was killed between publishing and recording) is removed
// and written again.
#pragma once

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/Camera.h"
#include "drivers/campaign/QuantumGraph.h"
#include "drivers/singlevisit/InputLoading.h"
#include "drivers/singlevisit/SingleVisit.h"
#include "io/Repository.h"

namespace drp {

/// Everything a worker needs besides the quantum.
struct CampaignWorkerSetup {
    std::filesystem::path repo;
    CampaignRuns runs;
    std::string refcatRun;                 ///< reference catalog run (default: the raw run)
    std::vector<std::string> settings;     ///< "key=value" processing overrides (SingleVisitConfig keys)
};

/// The effective processing config (SingleVisitConfig after the overrides) as key -> value; throws
/// ConfigError for an unknown key or bad value.
std::map<std::string, std::string> effectiveProcessingConfig(const std::vector<std::string>& settings);

class CampaignWorker {
public:
    /// Opens the repository and the camera of the raw run; validates the config.
    explicit CampaignWorker(const CampaignWorkerSetup& setup);
    /// Run one quantum; returns a one-line result ("sources=812 astrms=6.1mas zp=31.42"); throws on failure.
    std::string run(const QuantumSpec& quantum);

private:
    std::string runSingleVisit(const QuantumSpec& q);
    std::string runConsolidateVisit(const QuantumSpec& q);
    std::string runReleaseIndex(const QuantumSpec& q);

    CampaignWorkerSetup setup_;
    Repository repo_;
    std::shared_ptr<const Camera> camera_;
    std::string instrument_;
    SingleVisitConfig config_;
    std::map<std::string, std::string> configValues_;
    std::set<int> refLevels_;
    bool refLevelsKnown_ = false;
    CalibrationCache calibs_;
};

/// True if every output of `quantum` is in the manifest.
bool outputsRecorded(const Repository& repo, const QuantumSpec& quantum);

}  // namespace drp
