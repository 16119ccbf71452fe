// Parallel HDF5 catalog writer, run under mpirun at 1, 2 and 4 ranks. Every rank contributes a
// different number of rows (rank 1 none); the file must equal the concatenation in rank order and
// the serial writer's output, and every column write must really have been collective.
#include <gtest/gtest.h>

#include <random>

#include "core/Communicator.h"
#include "core/Error.h"
#include "io/Hdf5Catalog.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

Schema makeSchema() {
    Schema s;
    s.addField<std::int64_t>("id", "unique id");
    s.addField<std::int32_t>("nPix", "area", "pixel");
    s.addField<float>("psfFlux", "PSF flux", "nJy");
    s.addField<double>("coord_dec", "declination", "deg");
    s.addField<bool>("flag_saturated", "saturated");
    s.addField<std::string>("band", "filter band");
    return s;
}

std::size_t rowsOf(int rank, std::uint64_t seed) {
    if (rank == 1) return 0;  // a rank with nothing to write
    return static_cast<std::size_t>((seed * 7919 + std::uint64_t(rank) * 104729) % 3000 + std::uint64_t(rank) * 11);
}

Table partOf(int rank, std::uint64_t seed) {
    std::mt19937_64 rng(seed * 1000 + std::uint64_t(rank));
    Table t(makeSchema(), rowsOf(rank, seed));
    auto id = t.column<std::int64_t>("id");
    auto np = t.column<std::int32_t>("nPix");
    auto f = t.column<float>("psfFlux");
    auto dec = t.column<double>("coord_dec");
    auto flag = t.column<bool>("flag_saturated");
    auto band = t.column<std::string>("band");
    for (std::size_t r = 0; r < t.size(); ++r) {
        id[r] = (std::int64_t(rank) << 32) | std::int64_t(r);
        np[r] = static_cast<std::int32_t>(rng());
        f[r] = (r % 17 == 0) ? std::numeric_limits<float>::quiet_NaN() : float(std::normal_distribution<>(0, 100)(rng));
        dec[r] = std::uniform_real_distribution<>(-90, 90)(rng);
        flag[r] = rng() & 1;
        // string width differs between ranks: the file width must be the global maximum
        band[r] = std::string(1 + (rng() % (3 + std::size_t(rank) * 5)), "ugrizy"[rng() % 6]);
    }
    t.metadata().set("SEED", static_cast<std::int64_t>(seed), "seed");
    t.metadata().set("NRANKS", "varies");
    return t;
}

/// A directory every rank sees: created by rank 0, name broadcast, removed by rank 0 at the end.
class SharedDir {
public:
    explicit SharedDir(const Communicator& comm) : comm_(comm) {
        if (comm.rank() == 0) dir_ = std::make_unique<test::TempDir>("drp-h5par");
        path_ = comm.broadcast(dir_ ? dir_->path().string() : std::string(), 0);
    }
    ~SharedDir() { comm_.barrier(); }
    fs::path operator/(const std::string& name) const { return path_ / name; }

private:
    Communicator comm_;
    std::unique_ptr<test::TempDir> dir_;
    fs::path path_;
};

}  // namespace

TEST(Hdf5Parallel, CollectiveWriteEqualsConcatenationAndSerialFileManySeeds) {
    Communicator comm = Communicator::world();
    SharedDir dir(comm);
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        Hdf5CatalogOptions opt;
        opt.chunkRows = 256 + seed * 100;
        Table mine = partOf(comm.rank(), seed);
        std::string parName = "par";
        parName += std::to_string(seed);
        parName += ".h5";
        fs::path par = dir / parName;
        Hdf5ParallelWriteInfo info = writeCatalogParallel(comm, par, "sources", mine, opt);

        std::vector<Table> parts;
        for (int r = 0; r < comm.size(); ++r) parts.push_back(partOf(r, seed));
        Table expected = Table::concatenate(parts);
        std::int64_t offset = 0;
        for (int r = 0; r < comm.rank(); ++r) offset += std::int64_t(parts[std::size_t(r)].size());
        EXPECT_EQ(info.localRows, std::int64_t(mine.size()));
        EXPECT_EQ(info.rowOffset, offset);
        EXPECT_EQ(info.totalRows, std::int64_t(expected.size()));

        // The transfer really was collective, on every rank and for every column.
        ASSERT_EQ(info.actualIoModes.size(), mine.schema().size());
        EXPECT_TRUE(info.allCollective()) << "rank " << comm.rank();
        for (std::size_t c = 0; c < info.actualIoModes.size(); ++c) {
            EXPECT_NE(info.actualIoModes[c], 0) << "column " << c << ": H5D_MPIO_NO_COLLECTIVE";
            EXPECT_EQ(info.globalNoCollectiveCause[c], 0u) << "column " << c;
        }

        comm.barrier();
        Table back = readCatalog(par, "sources");
        ASSERT_TRUE(back.identical(expected)) << "seed " << seed << " rank " << comm.rank();

        // Same content as the serial writer's file of the concatenation.
        std::string serName = "ser";
        serName += std::to_string(seed);
        serName += ".h5";
        fs::path ser = dir / serName;
        if (comm.isRoot()) writeCatalog(ser, "sources", expected, opt);
        comm.barrier();
        EXPECT_TRUE(readCatalog(ser, "sources").identical(back));
        if (comm.isRoot()) {
            std::string out;
            int rc = test::runCommand("h5diff " + ser.string() + " " + par.string(), &out);
            if (rc != 127) {
                EXPECT_EQ(rc, 0) << "h5diff reports differences:\n" << out;
            }
        }
        comm.barrier();
    }
}

TEST(Hdf5Parallel, AllRanksEmptyAndCompressedWrites) {
    Communicator comm = Communicator::world();
    SharedDir dir(comm);
    Table none(makeSchema());
    none.metadata().set("EMPTY", true);
    Hdf5ParallelWriteInfo info = writeCatalogParallel(comm, dir / "empty.h5", "t", none);
    EXPECT_EQ(info.totalRows, 0);
    EXPECT_TRUE(info.actualIoModes.empty());
    comm.barrier();
    Table back = readCatalog(dir / "empty.h5", "t");
    EXPECT_TRUE(back.identical(none));

    Hdf5CatalogOptions opt;
    opt.deflateLevel = 3;
    opt.chunkRows = 500;
    Table mine = partOf(comm.rank(), 77);
    info = writeCatalogParallel(comm, dir / "gz.h5", "t", mine, opt);
    EXPECT_TRUE(info.allCollective());
    comm.barrier();
    std::vector<Table> parts;
    for (int r = 0; r < comm.size(); ++r) parts.push_back(partOf(r, 77));
    EXPECT_TRUE(readCatalog(dir / "gz.h5", "t").identical(Table::concatenate(parts)));
}

TEST(Hdf5Parallel, MismatchedSchemasFailOnEveryRankWithoutHanging) {
    Communicator comm = Communicator::world();
    if (comm.size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
    SharedDir dir(comm);
    Schema s = makeSchema();
    if (comm.rank() == comm.size() - 1) s.addField<double>("extra", "only on the last rank");
    Table t(s, 3);
    EXPECT_THROW(writeCatalogParallel(comm, dir / "bad.h5", "t", t), LogicError);
    // Nothing was published.
    comm.barrier();
    EXPECT_FALSE(fs::exists(dir / "bad.h5"));
    // The communicator is still usable.
    EXPECT_EQ(comm.allreduceSum(std::int64_t(1)), comm.size());
}
