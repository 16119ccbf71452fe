// `drp sim`: simulate a raw survey (science and calibration exposures, reference catalog, truth) into
// a data repository. Runs under MPI: quanta are dealt round-robin over ranks; outputs do not depend on
// the number of ranks.
#include <cstdio>
#include <iostream>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/Cli.h"
#include "drivers/DatasetTypes.h"
#include "drivers/sim/Simulator.h"
#include "io/Repository.h"

namespace po = boost::program_options;

namespace drp {
namespace {

int runSim(const po::variables_map& vm, const Communicator& comm) {
    std::vector<std::string> files, sets;
    if (vm.count("sim-config")) files = vm["sim-config"].as<std::vector<std::string>>();
    if (vm.count("set")) sets = vm["set"].as<std::vector<std::string>>();
    std::string effective;
    SimConfig cfg = loadSimConfig(vm["preset"].as<std::string>(), files, sets, &effective);
    if (vm.count("dump-config")) {
        if (comm.isRoot()) std::cout << effective;
        return 0;
    }
    const std::string run = vm["run"].as<std::string>();
    // Rank 0 creates the repository and registers the dataset types first; the others then open it.
    if (comm.isRoot()) openOrCreateRepository(vm["repo"].as<std::string>());
    comm.barrier();
    Repository repo = openOrCreateRepository(vm["repo"].as<std::string>());
    DRP_LOG_INFO("sim", "simulating preset '" << vm["preset"].as<std::string>() << "' into run '" << run << "' on "
                                              << comm.size() << " rank(s)");
    SimSummary s = runSimulation(cfg, repo, run, comm, effective);
    if (comm.isRoot()) {
        std::printf("sim: %lld objects; %lld science and %lld calibration raw exposures; %lld sources rendered; "
                    "refcat %lld stars in %lld shards; %.1f s on %d rank(s)\n",
                    static_cast<long long>(s.objects), static_cast<long long>(s.scienceExposures),
                    static_cast<long long>(s.calibrationExposures), static_cast<long long>(s.renderedSources),
                    static_cast<long long>(s.refcatStars), static_cast<long long>(s.refcatShards), s.seconds,
                    comm.size());
    }
    return 0;
}

}  // namespace

void registerSimCommand() {
    registerCommand({"sim", "simulate a raw survey with complete truth into a data repository",
                     [](po::options_description& d) {
                         d.add_options()("repo", po::value<std::string>()->required(), "data repository directory")(
                             "run", po::value<std::string>()->default_value("sim"), "run (collection) to write")(
                             "preset", po::value<std::string>()->default_value("tiny"),
                             "built-in configuration: tiny, demo or bench")(
                             "sim-config", po::value<std::vector<std::string>>()->composing(),
                             "INI file(s) overriding the preset ([section] key = value); may repeat")(
                             "set", po::value<std::vector<std::string>>()->composing(),
                             "override one key, e.g. --set observing.visits_per_band=4; may repeat")(
                             "dump-config", "print the effective configuration and exit");
                     },
                     nullptr, runSim});
}

}  // namespace drp
