// Campaign: plan and run a pipeline over a repository across the ranks of a communicator — the engine
// behind `drp campaign` and `drp process-visit`.
//
// Rank 0 lists the raws; every rank reads a share of their header WCSs (to place them on the sky map);
// rank 0 builds the quantum graph, selects what this job runs (everything; one Slurm array share of the tracts; or only the
// global quanta), checks what is already done (--resume: outputs recorded in the manifest whose files
// match their checksums, verified by all ranks in parallel), and hands the rest to the executor. At the
// end rank 0 prints a summary table per task and the failures, and writes a report file
// <repo>/_campaigns/<output run>/<UTC time>[-share-I-of-K|-global].tsv with one line per quantum.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/Communicator.h"
#include "core/DataId.h"
#include "drivers/campaign/Executor.h"
#include "drivers/campaign/QuantumGraph.h"
#include "sky/SkyMap.h"

namespace drp {

struct CampaignOptions {
    std::filesystem::path repo;
    CampaignRuns runs;
    std::string refcatRun;                  ///< default: runs.raw
    std::string pipeline = "single-visit";
    std::vector<std::string> onlyTasks;     ///< non-empty: keep only these tasks of the pipeline
    DataId where;                           ///< only raws matching (their quanta and what depends on them)
    std::vector<std::string> settings;      ///< processing overrides "key=value"
    SkyMapConfig skymap;
    std::string skymapName = "lsst_cells_v1";
    bool dryRun = false;
    bool resume = false;
    bool globalOnly = false;                ///< run only quanta not assigned to a tract
    int arrayIndex = -1;                    ///< with arrayCount > 0: run only this share of the tracts
    int arrayCount = 0;
    ExecutorOptions executor;
    std::string command = "campaign";       ///< prefix of the summary lines
};

/// Collective. Returns the exit code on every rank: 0 everything succeeded, 1 a quantum failed or was
/// blocked, 2 nothing could be planned (no raws, outputs present without --resume, unimplemented tasks);
/// planning errors are also thrown (same exception on every rank) when they are the caller's input errors.
int runCampaign(const CampaignOptions& options, const Communicator& comm);

}  // namespace drp
