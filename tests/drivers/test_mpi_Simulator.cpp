// The simulation written by N ranks is byte-identical to the one written by one rank.
#include <gtest/gtest.h>

#include <map>

#include "core/Communicator.h"
#include "drivers/DatasetTypes.h"
#include "drivers/sim/Simulator.h"
#include "io/Repository.h"
#include "tests/support/TestSupport.h"

using namespace drp;

namespace {
std::map<std::string, std::string> checksums(const Repository& repo) {
    std::map<std::string, std::string> out;
    for (const auto& r : repo.query()) out[r.relativePath] = r.checksum;
    return out;
}
}  // namespace

TEST(Simulator, OutputsIdenticalForAnyRankCount) {
    Communicator comm = Communicator::world();
    // Rank 0 picks the directories and tells the others.
    std::unique_ptr<test::TempDir> dir;
    std::string root;
    if (comm.isRoot()) {
        dir = std::make_unique<test::TempDir>("drp-sim-mpi");
        root = dir->path().string();
    }
    root = comm.broadcast(root);
    SimConfig cfg = loadSimConfig("tiny", {}, {"observing.visits_per_band=1"});
    if (comm.isRoot()) openOrCreateRepository(root + "/parallel");
    comm.barrier();
    Repository par = openOrCreateRepository(root + "/parallel");
    SimSummary s = runSimulation(cfg, par, "sim", comm);
    EXPECT_EQ(s.scienceExposures, 4);  // 2 bands x 1 visit x 2 detectors
    EXPECT_GT(s.renderedSources, 0);
    comm.barrier();
    if (comm.isRoot()) {
        Repository ser = openOrCreateRepository(root + "/serial");
        runSimulation(cfg, ser, "sim", Communicator::serial());
        auto a = checksums(Repository::open(root + "/parallel")), b = checksums(ser);
        EXPECT_EQ(a.size(), b.size());
        EXPECT_EQ(a, b) << "datasets differ between " << comm.size() << " ranks and 1 rank";
    }
    comm.barrier();
}
