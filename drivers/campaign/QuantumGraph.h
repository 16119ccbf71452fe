// QuantumGraph: what a campaign has to do. A pipeline is a list of task declarations (name, quantum
// dimensions, input and output dataset types); the graph builder expands it over a repository
// listing (the raws and their sky regions) and the sky map into quanta — one execution of one task on
// one data ID — linked by the datasets they produce and consume:
//
//   visit-detector quanta  (characterizeImage: raw + calibrations -> psfStars)
//   visit quanta           (measureVisitPsf: every psfStars of a visit -> visitPsf)
//   visit-detector quanta  (singleVisit: raw + calibrations + visitPsf -> calexp, calexpBackground, src)
//   visit quanta           (consolidateVisit: every src of a visit -> sourceTable_visit)
//   global quanta          (releaseIndex: every sourceTable_visit -> sourceIndex)
//   and, in the full data-release pipeline (declared now, implemented by later stages):
//   visit-patch quanta     (makeWarp), patch-band quanta (assembleCoadd, detectCoadd, measureObjects,
//   forcedPhotCoadd), patch quanta (mergeDetections, deblend, mergeMeasurements), global fits
//   (fgcm, globalAstrometry).
//
// Datasets are interned (one node per (type, run, data ID), shared by every quantum that reads it),
// quanta hold indices, and data IDs are stored packed (PackedDataId: strings interned per graph), so
// 10^6 quanta fit in a few hundred MB (benchmarks/bench_quantum_graph.cpp). Every quantum that is not global
// carries a tract (its shard key for Slurm arrays): visit-detector and visit quanta belong to the tract
// holding their visit's centre (so a visit's quanta run in one share), a patch quantum to its own
// tract. Quanta are stored in a topological order (every upstream index < the quantum's own).
//
// The graph is built on rank 0; a worker receives one quantum at a time as a QuantumSpec (self-
// contained: task, data ID, input and output dataset refs), serialised to bytes.
#pragma once

#include <compare>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <string>
#include <vector>

#include "core/DataId.h"
#include "sky/SkyMap.h"
#include "sky/SpherePoint.h"

namespace drp {

/// The shape of a task's quanta.
enum class QuantumLevel : std::uint8_t {
    VisitDetector,  ///< {instrument, band, visit, detector}
    Visit,          ///< {instrument, band, visit}
    VisitPatch,     ///< {instrument, band, visit, skymap, tract, patch}
    PatchBand,      ///< {band, skymap, tract, patch}
    Patch,          ///< {skymap, tract, patch}
    Global          ///< {} (whole campaign)
};
const char* quantumLevelName(QuantumLevel level);

/// A task declaration: its quanta's level and the dataset types it reads and writes. Input types are
/// either produced by an earlier task of the pipeline (internal) or looked up in the input runs
/// (external: raw from the raw run, calibrations from the calib run).
struct TaskDef {
    std::string name;                 ///< e.g. "singleVisit"
    std::string description;          ///< one line, for --dry-run and --help
    QuantumLevel level = QuantumLevel::VisitDetector;
    std::vector<std::string> inputs;  ///< dataset types
    std::vector<std::string> outputs; ///< dataset types (each produced by exactly one task)
    bool implemented = false;         ///< false: declared for planning (dry runs, benchmarks) only
    double cost = 1.0;                ///< relative run time of one quantum (scheduling and shard balance)
    /// A gather that works with the inputs there are (measureVisitPsf: the PSF stars of the detectors that were
    /// characterised): a failed or blocked upstream quantum does not block it (Scheduler::Node::toleratesFailedUpstream),
    /// and it reads only the inputs that exist.
    bool toleratesFailedInputs = false;
};

/// Named pipelines. "single-visit": characterizeImage, measureVisitPsf, singleVisit, consolidateVisit, releaseIndex (the
/// default).
/// "drp-full": the whole data release as declared today (includes unimplemented tasks; dry runs only).
/// Throws NotFoundError naming the known pipelines.
std::vector<TaskDef> pipelineByName(const std::string& name);
/// Drop the visit-level PSF from a pipeline (characterizeImage, measureVisitPsf, and singleVisit's visitPsf input): every
/// detector then fits its own PSF (the campaign's psf.visit_level=false).
void withoutVisitPsf(std::vector<TaskDef>& pipeline);
std::vector<std::string> pipelineNames();
/// The optional coadd flavour tasks (appended to a pipeline that has assembleCoadd when the campaign's
/// coadd config enables them): with bestSeeing, selectBestSeeingVisits (global: every calexp ->
/// bestSeeingVisits, the survey-wide per-band choice of visits) and assembleGoodSeeingCoadd (calexp,
/// calexpBackground, bestSeeingVisits -> goodSeeingCoadd); with shortPeriod, assembleShortPeriodCoadd
/// (calexp, calexpBackground -> shortPeriodCoadd).
std::vector<TaskDef> coaddFlavourTasks(bool bestSeeing, bool shortPeriod);
/// selectBestSeeingVisits alone: appended to a pipeline without coadds that makes calexps when the
/// best-seeing coadd is enabled, so that a Slurm campaign's global job records the selection its coadd
/// stage (a later job) reads.
TaskDef bestSeeingSelectionTask();

/// A dataset a quantum reads or writes.
struct DatasetRef {
    std::string datasetType;
    std::string run;
    DataId dataId;
    friend bool operator==(const DatasetRef&, const DatasetRef&) = default;
};

/// One raw exposure of one detector, with where it lands on the sky (from its header WCS).
struct ExposureRegion {
    DataId dataId;                     ///< instrument, band, visit, detector (day_obs etc. optional)
    SpherePoint center;                ///< detector centre
    std::vector<SpherePoint> corners;  ///< >= 3 vertices, for patch overlaps (may be empty: then
                                       ///< only the centre is used, i.e. the quantum's tract)
};

/// Where a campaign reads from and writes to.
struct CampaignRuns {
    std::string raw = "sim";        ///< raw exposures
    std::string calib = "calib";    ///< master calibrations (bias, dark, ampCalib, defects per detector; flat per band)
    std::string output = "processed";
};

struct QuantumSpec {
    std::string task;
    DataId dataId;
    std::vector<DatasetRef> inputs;
    std::vector<DatasetRef> outputs;
    std::string toBytes() const;
    /// Throws InvalidInputError on malformed bytes.
    static QuantumSpec fromBytes(const std::string& bytes);
    friend bool operator==(const QuantumSpec&, const QuantumSpec&) = default;
};

class QuantumGraph;

/// A data ID packed for bulk storage in a QuantumGraph (72 bytes instead of DataId's ~480): integer
/// dimensions inline, string dimensions as indices into the owning graph's string table. Integer reads
/// work on their own; string values and the full DataId come from the graph (QuantumGraph::unpack,
/// QuantumGraph::string).
class PackedDataId {
public:
    bool has(Dimension d) const { return (mask_ >> static_cast<unsigned>(d)) & 1u; }
    /// Integer dimensions; NotFoundError if absent, LogicError for a string dimension.
    std::int64_t getInt(Dimension d) const;
    /// String dimensions: index into QuantumGraph::strings(); NotFoundError if absent, LogicError for an
    /// integer dimension.
    std::uint32_t stringIndex(Dimension d) const;
    std::size_t size() const;
    bool empty() const { return mask_ == 0; }
    /// Bit i set: dimension i present.
    std::uint16_t mask() const { return mask_; }
    std::uint64_t hash() const;
    /// Only the dimensions whose bit is set in `mask` (the others become absent).
    PackedDataId project(std::uint16_t mask) const;
    friend bool operator==(const PackedDataId&, const PackedDataId&) = default;
    /// A total order (integer dimensions first, then string indices): deterministic, not alphabetical.
    friend std::strong_ordering operator<=>(const PackedDataId&, const PackedDataId&) = default;

private:
    friend class QuantumGraph;
    friend struct QuantumGraphBuilder;
    static int slot(Dimension d);  // index into ints_ or strs_
    std::int64_t ints_[6] = {};    // day_obs, visit, detector, tract, patch, htm
    std::uint32_t strs_[4] = {};   // instrument, band, physical_filter, skymap
    std::uint16_t mask_ = 0;
};

class QuantumGraph {
public:
    struct DatasetNode {
        std::uint16_t type = 0;       ///< index into datasetTypes()
        std::uint16_t run = 0;        ///< index into runs()
        std::int32_t producer = -1;   ///< quantum index, -1: external input
        PackedDataId dataId;          ///< unpack(dataId) for the DataId
    };
    struct Quantum {
        std::uint16_t task = 0;              ///< index into tasks()
        PackedDataId dataId;                 ///< unpack(dataId) or dataId(index) for the DataId
        std::vector<std::uint32_t> inputs;   ///< dataset node indices
        std::vector<std::uint32_t> outputs;  ///< dataset node indices
        std::vector<std::uint32_t> upstream; ///< quantum indices (sorted, unique, all < own index)
        std::int32_t tract = -1;             ///< shard key; -1: global (not assigned to a tract)
        float cost = 1.0f;
    };

    const std::vector<TaskDef>& tasks() const { return tasks_; }
    const std::vector<std::string>& datasetTypes() const { return datasetTypes_; }
    const std::vector<std::string>& runs() const { return runs_; }
    const std::vector<DatasetNode>& datasets() const { return datasets_; }
    const std::vector<Quantum>& quanta() const { return quanta_; }
    std::size_t size() const { return quanta_.size(); }

    /// The string values of the packed data IDs.
    const std::vector<std::string>& strings() const { return strings_; }
    const std::string& string(std::uint32_t index) const;
    DataId unpack(const PackedDataId& id) const;
    /// Packs `id`, adding its string values to strings().
    PackedDataId pack(const DataId& id);
    /// The data ID of a quantum (materialised).
    DataId dataId(std::uint32_t quantum) const;

    QuantumSpec spec(std::uint32_t quantum) const;
    DatasetRef ref(std::uint32_t dataset) const;
    /// "singleVisit band=r visit=3 detector=1" (logs, reports): the task and the quantum's data ID
    /// without instrument and skymap (the same for the whole campaign).
    std::string label(std::uint32_t quantum) const;
    /// Dataset node of (type, run, data ID), if the graph has it.
    std::optional<std::uint32_t> findDataset(const DatasetRef& ref) const;

    /// Quanta per task name, in pipeline order (for --dry-run).
    std::vector<std::pair<std::string, std::size_t>> countsPerTask() const;
    /// The distinct tracts of non-global quanta with the summed cost of their quanta, ascending tract.
    std::vector<std::pair<int, double>> tractCosts() const;

    /// Approximate heap bytes held (benchmarks).
    std::size_t memoryBytes() const;

    // Building (used by buildQuantumGraph; public so tests can make small graphs by hand).
    std::uint32_t addDataset(const DatasetRef& ref);    ///< interned: returns the existing node if present
    /// Inputs and outputs are dataset nodes; upstream is derived from the inputs' producers. Throws
    /// LogicError for a node index out of range or an output that already has a producer.
    std::uint32_t addQuantum(std::uint16_t task, DataId dataId, const std::vector<std::uint32_t>& inputs,
                             const std::vector<std::uint32_t>& outputs, std::int32_t tract, float cost);
    /// Throws InvalidInputError for more than 65535 tasks.
    explicit QuantumGraph(std::vector<TaskDef> tasks);

    // Packed variants of the builders (no DataId materialised).
    std::uint16_t internDatasetType(const std::string& name);
    std::uint16_t internRun(const std::string& name);
    std::uint32_t internString(const std::string& value);
    std::uint32_t addDataset(std::uint16_t type, std::uint16_t run, const PackedDataId& id);
    std::optional<std::uint32_t> findDataset(std::uint16_t type, std::uint16_t run, const PackedDataId& id) const;
    std::uint32_t addQuantum(std::uint16_t task, const PackedDataId& dataId, std::vector<std::uint32_t> inputs,
                             std::vector<std::uint32_t> outputs, std::int32_t tract, float cost);
    void reserve(std::size_t quanta, std::size_t datasets);

private:
    std::uint64_t datasetHash(std::uint16_t type, std::uint16_t run, const PackedDataId& id) const;
    void growIndex(std::size_t minDatasets);  // rehash to hold minDatasets at load <= 1/2

    std::vector<TaskDef> tasks_;
    std::vector<std::string> datasetTypes_;
    std::vector<std::string> runs_;
    std::vector<std::string> strings_;
    std::unordered_map<std::string, std::uint32_t> stringIndex_;
    std::vector<DatasetNode> datasets_;
    std::vector<Quantum> quanta_;
    // Interning index of the datasets: open addressing (linear probing) over node indices; empty = ~0u.
    std::vector<std::uint32_t> index_;
};

struct GraphBuildOptions {
    std::string skymapName = "lsst_cells_v1";  ///< the skymap dimension of patch data IDs
    bool includeBands = true;                  ///< (reserved)
};

/// Expand `pipeline` over the exposures. External inputs of visit-detector tasks: raw (raw run, the
/// exposure's data ID), bias, dark, ampCalib, defects ({instrument, detector}) and flat ({instrument,
/// band, detector}) in the calib run. Outputs go to runs.output with the quantum's data ID.
/// How a task of level L reads a type produced at level M:
///  * M's dimensions within L's (e.g. makeWarp reading fgcmCalibration): the one dataset with the
///    quantum's data ID restricted to M, if it exists;
///  * L's dimensions within M's (consolidateVisit reading src, assembleCoadd reading warp, any global
///    task): every dataset whose data ID restricted to L is the quantum's. These inputs define the
///    quanta: one per distinct restricted data ID;
///  * visit-patch from visit-detector (makeWarp reading calexp): the detectors of the visit whose
///    corners overlap the patch's outer box (SkyMap::findOverlaps; the centre's patch if no corners).
///    They define the visit-patch quanta. Likewise patch-band from visit-detector (assembleCoadd reading
///    calexp in the "coadd" pipeline): every detector of the band, any visit, overlapping the patch.
/// Visit-detector quanta are one per exposure. Visit-detector and visit quanta carry the tract holding their visit's
/// centre (SkyMap::findTract of the normalised mean of its detectors' centres), patch-level quanta their own tract,
/// global quanta -1. Quanta are stored task by task in pipeline order,
/// within a task by packed data ID, so the graph is topologically ordered and deterministic: the same
/// inputs in any order give the same graph (exposures are sorted by instrument, band, visit, detector,
/// then data ID). Throws InvalidInputError for an exposure whose data ID lacks instrument, band, visit
/// or detector, for two exposures of the same visit and detector, for a region with 1 or 2 corners or
/// one findOverlaps rejects, and for a pipeline task that reads a type nothing produces (and that is not
/// an external input), a type produced by itself or a later task, or a level it cannot be joined with.
QuantumGraph buildQuantumGraph(const std::vector<TaskDef>& pipeline, std::vector<ExposureRegion> exposures,
                               const SkyMap& skyMap, const CampaignRuns& runs, const GraphBuildOptions& options = {});

/// Split tracts into `count` shares balanced by cost (largest first onto the lightest share; ties by
/// tract id, so every array task computes the same split). Returns, for each share, its tracts
/// ascending. Every tract is in exactly one share; count > number of tracts leaves shares empty.
std::vector<std::vector<int>> shardTracts(const std::vector<std::pair<int, double>>& tractCosts, int count);

}  // namespace drp
