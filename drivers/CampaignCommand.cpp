// `drp campaign`: plan and run a pipeline over a whole repository across MPI ranks (drivers/campaign/
// Campaign.h), as one job, as one share of a Slurm job array, or as the global steps after the array.
#include <cstdio>
#include <cstdlib>

#include "core/Error.h"
#include "drivers/Cli.h"
#include "drivers/ConfigBinder.h"
#include "drivers/campaign/Campaign.h"
#include "drivers/campaign/CampaignTasks.h"

namespace po = boost::program_options;

namespace drp {
namespace {

void bindSkyMap(ConfigBinder& b, SkyMapConfig& c) {
    b.bind("skymap.num_rings", c.numRings, "declination rings between the polar caps");
    b.bind("skymap.pixel_scale_arcsec", c.pixelScaleArcsec, "tract pixel scale, arcsec/pixel");
    b.bind("skymap.tract_overlap_arcmin", c.tractOverlapArcmin, "minimum overlap of neighbouring tracts, arcmin");
    b.bind("skymap.patch_inner_dimension", c.patchInnerDimension, "side of a patch's inner box, pixels");
    b.bind("skymap.patch_border", c.patchBorder, "patch border, pixels");
    b.bind("skymap.num_patches_per_side", c.numPatchesPerSide, "patch grid per tract (0: derived)");
    b.bind("skymap.ra_offset_deg", c.raOffsetDeg, "RA of the centre of tract 0 of every ring, degrees");
}

/// Split --set assignments: skymap.* configure the sky map, the rest are processing options (coadd.* the
/// coadd task: CampaignCoaddConfig).
void applySettings(const po::variables_map& vm, CampaignOptions& o) {
    ConfigBinder sky;
    bindSkyMap(sky, o.skymap);
    if (vm.count("set"))
        for (const auto& s : vm["set"].as<std::vector<std::string>>()) {
            if (s.rfind("skymap.", 0) == 0)
                sky.setAssignment(s);
            else
                o.settings.push_back(s);
        }
    o.skymap.validate();
    effectiveProcessingConfig(o.settings);  // unknown keys and bad values are errors before any work
}

int envInt(const char* name, int fallback) {
    const char* v = std::getenv(name);
    if (!v || !*v) return fallback;
    try {
        return std::stoi(v);
    } catch (const std::exception&) {
        throw ConfigError(std::string("environment variable ") + name + "='" + v + "' is not an integer");
    }
}

int runCampaignCommand(const po::variables_map& vm, const Communicator& comm) {
    CampaignOptions o;
    o.repo = vm["repo"].as<std::string>();
    o.runs.raw = vm["input-run"].as<std::string>();
    o.runs.calib = vm["calib-run"].as<std::string>();
    o.runs.output = vm["output-run"].as<std::string>();
    o.refcatRun = vm.count("refcat-run") ? vm["refcat-run"].as<std::string>() : o.runs.raw;
    o.pipeline = vm["pipeline"].as<std::string>();
    if (vm.count("where")) o.where = DataId::parse(vm["where"].as<std::string>());
    applySettings(vm, o);
    o.dryRun = vm["dry-run"].as<bool>();
    o.resume = vm["resume"].as<bool>();
    o.globalOnly = vm["global-only"].as<bool>();
    // Slurm array defaults: the task's position in the array, and the array's size.
    int index = vm.count("array-index") ? vm["array-index"].as<int>() : -1;
    int count = vm.count("array-count") ? vm["array-count"].as<int>() : 0;
    if (index < 0 && std::getenv("SLURM_ARRAY_TASK_ID") && !o.globalOnly)
        index = envInt("SLURM_ARRAY_TASK_ID", -1) - envInt("SLURM_ARRAY_TASK_MIN", 0);
    if (count <= 0 && index >= 0) count = envInt("SLURM_ARRAY_TASK_COUNT", 0);
    if ((index >= 0) != (count > 0) && !(o.dryRun && count > 0))
        throw ConfigError("--array-index and --array-count go together (or set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT)");
    if (count > 0 && (index >= count)) throw ConfigError("--array-index must lie in [0, --array-count)");
    if (count > 0 && o.globalOnly) throw ConfigError("--global-only runs after the array shares, not as one of them");
    o.arrayIndex = o.dryRun ? -1 : index;
    o.arrayCount = count;
    o.executor.progressIntervalSeconds = vm["progress-interval"].as<double>();
    o.executor.heartbeatSeconds = vm["heartbeat"].as<double>();
    o.executor.quiet = vm["quiet"].as<bool>();
    if (o.executor.heartbeatSeconds <= 0) throw ConfigError("--heartbeat must be positive");
    return runCampaign(o, comm);
}

}  // namespace

void addCampaignRunOptions(po::options_description& d) {
    d.add_options()("repo", po::value<std::string>()->required(), "data repository")(
        "input-run", po::value<std::string>()->default_value("sim"), "run with the raws")(
        "calib-run", po::value<std::string>()->default_value("calib"), "run with the master calibrations")(
        "refcat-run", po::value<std::string>(), "run with the reference catalog (default: input run)")(
        "output-run", po::value<std::string>()->default_value("processed"), "run to write to")(
        "where", po::value<std::string>(), "only raws whose data ID matches, e.g. \"band=r visit=3\"")(
        "set", po::value<std::vector<std::string>>()->composing(),
        "override a processing option (e.g. detection.threshold_sigma=6) or the sky map (skymap.num_rings=...)");
}

void registerCampaignCommand() {
    registerCommand({"campaign", "run a pipeline over a repository across MPI ranks (resumable; Slurm array shares)",
                     [](po::options_description& d) {
                         addCampaignRunOptions(d);
                         d.add_options()("pipeline", po::value<std::string>()->default_value("single-visit"),
                                         "pipeline: single-visit, coadd (single-visit + patch coadds), or drp-full (planning only for now)")(
                             "dry-run", po::bool_switch(), "build the quantum graph, print quanta per task (and shares), run nothing")(
                             "resume", po::bool_switch(),
                             "continue an interrupted or failed run: keep outputs whose files match their manifest checksums, run the rest")(
                             "array-index", po::value<int>(), "run only share I of the tracts (default: $SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN)")(
                             "array-count", po::value<int>(), "number of shares (default: $SLURM_ARRAY_TASK_COUNT)")(
                             "global-only", po::bool_switch(), "run only the global quanta (after every array share is done)")(
                             "progress-interval", po::value<double>()->default_value(60), "seconds between progress lines in batch logs (0: none)")(
                             "heartbeat", po::value<double>()->default_value(600), "each rank logs a heartbeat every so many seconds of one quantum")(
                             "quiet", po::bool_switch(), "no progress output");
                     },
                     nullptr, runCampaignCommand});
}

}  // namespace drp
