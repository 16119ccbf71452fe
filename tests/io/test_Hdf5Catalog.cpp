#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "core/Error.h"
#include "io/Hdf5Catalog.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

Schema allTypesSchema() {
    Schema s;
    s.addField<std::int64_t>("id", "unique source id");
    s.addField<std::int32_t>("nPix", "footprint area", "pixel");
    s.addField<float>("psfFlux", "PSF flux", "nJy");
    s.addField<double>("coord_ra", "right ascension (ICRS)", "deg");
    s.addField<bool>("flag_edge", "touches the detector edge");
    s.addField<std::string>("band", "filter band");
    s.addField<double>("aaa_unsorted", "a name that sorts first but was added last", "");
    return s;
}

template <typename F>
F specialFloat(std::mt19937_64& rng) {
    using L = std::numeric_limits<F>;
    switch (rng() % 10) {
        case 0: return L::quiet_NaN();
        case 1: return -L::infinity();
        case 2: return L::infinity();
        case 3: return F(-0.0);
        case 4: return L::denorm_min();
        case 5: return L::max();
        case 6: {  // a NaN with a payload: must survive bit-exactly
            F f;
            if constexpr (sizeof(F) == 8) {
                std::uint64_t b = 0x7ff0000000000000ULL | (rng() & 0xfffffffffffffULL) | 1;
                std::memcpy(&f, &b, 8);
            } else {
                std::uint32_t b = 0x7f800000U | (static_cast<std::uint32_t>(rng()) & 0x7fffffU) | 1;
                std::memcpy(&f, &b, 4);
            }
            return f;
        }
        default: return static_cast<F>(std::normal_distribution<double>(0, 1e5)(rng));
    }
}

Table randomTable(std::size_t rows, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    Table t(allTypesSchema(), rows);
    auto id = t.column<std::int64_t>("id");
    auto npix = t.column<std::int32_t>("nPix");
    auto flux = t.column<float>("psfFlux");
    auto ra = t.column<double>("coord_ra");
    auto flag = t.column<bool>("flag_edge");
    auto band = t.column<std::string>("band");
    auto last = t.column<double>("aaa_unsorted");
    const std::vector<std::string> words = {"", "u", "g", "r", "i", "z", "y", "très long nom ☃", "x y\tz"};
    for (std::size_t r = 0; r < rows; ++r) {
        id[r] = static_cast<std::int64_t>(rng());
        npix[r] = static_cast<std::int32_t>(rng());
        flux[r] = specialFloat<float>(rng);
        ra[r] = specialFloat<double>(rng);
        flag[r] = rng() & 1;
        band[r] = words[rng() % words.size()];
        last[r] = specialFloat<double>(rng);
    }
    if (rows > 0) {
        id[0] = std::numeric_limits<std::int64_t>::min();
        npix[0] = std::numeric_limits<std::int32_t>::min();
    }
    t.metadata().set("SEED", static_cast<std::int64_t>(seed), "random seed");
    t.metadata().set("ZP", 27.5, "zero point");
    t.metadata().set("CALIBRATED", true);
    t.metadata().set("RUN", "run/1", "producing run");
    t.metadata().set("EMPTY", "");
    return t;
}

std::string hexDiff(const Table& a, const Table& b) {
    if (!(a.schema() == b.schema())) return "schemas differ: " + a.schema().signature() + " vs " + b.schema().signature();
    if (a.size() != b.size()) return "row counts differ";
    if (!(a.metadata() == b.metadata())) return "metadata differs";
    return "column bytes differ";
}

}  // namespace

TEST(Hdf5Catalog, RoundTripIsBitExactManySeedsAndSizes) {
    test::TempDir dir;
    std::uint64_t seed = 100;
    for (std::size_t rows : {0ul, 1ul, 2ul, 7ul, 1000ul, 70001ul}) {
        for (int rep = 0; rep < 4; ++rep, ++seed) {
            Table t = randomTable(rows, seed);
            std::string fname = "t";
            fname += std::to_string(seed);
            fname += ".h5";
            fs::path p = dir / fname;
            Hdf5CatalogOptions opt;
            opt.chunkRows = 1 + seed % 5000;
            opt.deflateLevel = static_cast<int>(seed % 3);  // uncompressed and gzip 1, 2
            if (rep == 3) opt = Hdf5CatalogOptions{0, 0, false};  // contiguous layout
            writeCatalog(p, "sources", t, opt);
            Table back = readCatalog(p, "sources");
            ASSERT_TRUE(back.identical(t)) << "rows " << rows << " seed " << seed << ": " << hexDiff(back, t);
            EXPECT_EQ(back.schema().names().back(), "aaa_unsorted") << "column order must be the schema's";
            EXPECT_EQ(back.metadata().comment("ZP"), "zero point");
        }
    }
}

TEST(Hdf5Catalog, SeveralTablesPerFileSubsetsAndNesting) {
    test::TempDir dir;
    fs::path p = dir / "multi.h5";
    Table a = randomTable(10, 1), b = randomTable(0, 2), c = randomTable(33, 3);
    {
        Hdf5File f(p, Hdf5File::Mode::Create);
        writeTable(f, "a", a);
        writeTable(f, "/b", b);
        writeTable(f, "release/c", c);
        EXPECT_THROW(writeTable(f, "a", a), ConflictError);
    }
    Hdf5File f(p, Hdf5File::Mode::ReadOnly);
    EXPECT_EQ(listTables(f), (std::vector<std::string>{"a", "b", "release"}));
    EXPECT_EQ(listTables(f, "release"), (std::vector<std::string>{"c"}));
    EXPECT_TRUE(readTable(f, "a").identical(a));
    EXPECT_TRUE(readTable(f, "b").identical(b));
    EXPECT_TRUE(readTable(f, "release/c").identical(c));
    Table sub = readTable(f, "release/c", {"psfFlux", "id"});
    ASSERT_EQ(sub.schema().names(), (std::vector<std::string>{"psfFlux", "id"}));
    EXPECT_EQ(sub.schema().field(0).unit, "nJy");
    EXPECT_EQ(sub.schema().field(0).doc, "PSF flux");
    for (std::size_t r = 0; r < c.size(); ++r) ASSERT_EQ(sub.column<std::int64_t>("id")[r], c.column<std::int64_t>("id")[r]);
    EXPECT_TRUE(f.exists("release/c/band"));
    EXPECT_FALSE(f.exists("release/c/nope"));
}

TEST(Hdf5Catalog, ColumnsAreChunkedCompressedAndCarryUnitAndDescription) {
    std::string out;
    if (test::runCommand("h5dump --version", &out) != 0) GTEST_SKIP() << "h5dump not available";
    test::TempDir dir;
    fs::path p = dir / "c.h5";
    Hdf5CatalogOptions opt;
    opt.deflateLevel = 4;
    opt.chunkRows = 100;
    writeCatalog(p, "src", randomTable(1000, 5), opt);
    ASSERT_EQ(test::runCommand("h5dump -p -H -d /src/psfFlux " + p.string(), &out), 0) << out;
    EXPECT_NE(out.find("CHUNKED ( 100 )"), std::string::npos) << out;
    EXPECT_NE(out.find("DEFLATE"), std::string::npos) << out;
    EXPECT_NE(out.find("SHUFFLE"), std::string::npos) << out;
    EXPECT_NE(out.find("ATTRIBUTE \"unit\""), std::string::npos) << out;
    EXPECT_NE(out.find("ATTRIBUTE \"description\""), std::string::npos) << out;
    EXPECT_NE(out.find("H5T_IEEE_F32LE"), std::string::npos) << out;
    ASSERT_EQ(test::runCommand("h5dump -a /src/psfFlux/unit " + p.string(), &out), 0) << out;
    EXPECT_NE(out.find("\"nJy\""), std::string::npos) << out;
}

TEST(Hdf5Catalog, ReadableByH5py) {
    std::string py = test::pythonWith("h5py,numpy");
    if (py.empty()) GTEST_SKIP() << "/usr/bin/python3 with h5py and numpy is not available";
    test::TempDir dir;
    fs::path p = dir / "py.h5";
    Schema s;
    auto id = s.addField<std::int64_t>("id", "unique id");
    auto n = s.addField<std::int32_t>("nPix", "area", "pixel");
    auto f32 = s.addField<float>("psfFlux", "PSF flux", "nJy");
    auto ra = s.addField<double>("coord_ra", "right ascension", "deg");
    auto flag = s.addField<bool>("flag_edge", "edge flag");
    auto band = s.addField<std::string>("band", "filter band");
    Table t(s, 4);
    for (std::size_t r = 0; r < 4; ++r) {
        t.column(id)[r] = (std::int64_t(1) << 40) + std::int64_t(r);
        t.column(n)[r] = -int(r);
        t.column(f32)[r] = 1.5f * float(r);
        t.column(ra)[r] = 10.0 + 0.25 * double(r);
        t.column(flag)[r] = r % 2;
        t.column(band)[r] = std::string(1, "ugri"[r]);
    }
    t.column(ra)[3] = std::numeric_limits<double>::quiet_NaN();
    t.metadata().set("ZP", 27.5);
    t.metadata().set("N", 4);
    writeCatalog(p, "objects", t);
    const std::string script = R"PY(
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], 'r')
g = f['objects']
assert list(g.keys()) == ['id', 'nPix', 'psfFlux', 'coord_ra', 'flag_edge', 'band'], list(g.keys())  # schema order
assert g['id'].dtype == np.int64 and g['nPix'].dtype == np.int32
assert g['psfFlux'].dtype == np.float32 and g['coord_ra'].dtype == np.float64
assert g['flag_edge'].dtype == np.bool_, g['flag_edge'].dtype
assert g['band'].dtype.kind == 'S', g['band'].dtype
assert list(g['id'][:]) == [2**40 + i for i in range(4)]
assert list(g['nPix'][:]) == [0, -1, -2, -3]
assert np.array_equal(g['psfFlux'][:], np.array([0, 1.5, 3.0, 4.5], dtype=np.float32))
ra = g['coord_ra'][:]
assert np.array_equal(ra[:3], [10.0, 10.25, 10.5]) and np.isnan(ra[3])
assert list(g['flag_edge'][:]) == [False, True, False, True]
assert [b.decode() for b in g['band'][:]] == ['u', 'g', 'r', 'i']
def s(a):
    return a.decode() if isinstance(a, bytes) else str(a)
assert s(g['psfFlux'].attrs['unit']) == 'nJy'
assert s(g['psfFlux'].attrs['description']) == 'PSF flux'
assert s(g['coord_ra'].attrs['unit']) == 'deg'
assert s(g['id'].attrs['unit']) == ''
assert float(g.attrs['ZP']) == 27.5 and int(g.attrs['N']) == 4
print('h5py-ok')
)PY";
    fs::path scriptPath = dir / "check.py";
    std::ofstream(scriptPath) << script;
    std::string out;
    int rc = test::runCommand(py + " " + scriptPath.string() + " " + p.string(), &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("h5py-ok"), std::string::npos) << out;
}

TEST(Hdf5Catalog, BadInputGivesTypedErrorsAndPrintsNothing) {
    test::TempDir dir;
    fs::path text = dir / "not_hdf5.h5";
    std::ofstream(text) << "this is plain text, not HDF5\n";
    fs::path good = dir / "good.h5";
    writeCatalog(good, "src", randomTable(5000, 9));
    fs::path truncated = dir / "truncated.h5";
    {
        std::ifstream in(good, std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), {});
        std::ofstream(truncated, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size() / 2));
    }
    ::testing::internal::CaptureStderr();
    ::testing::internal::CaptureStdout();
    auto expectHdf5Error = [&](const fs::path& p) {
        try {
            readCatalog(p, "src");
            ADD_FAILURE() << "no exception for " << p;
        } catch (const Hdf5Error& e) {
            EXPECT_EQ(e.file(), p.string());
            EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << e.what();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "wrong exception for " << p << ": " << e.what();
        }
    };
    expectHdf5Error(text);
    expectHdf5Error(truncated);
    expectHdf5Error(dir / "missing.h5");
    expectHdf5Error(dir.path());  // a directory
    EXPECT_FALSE(Hdf5File::isHdf5(text));
    EXPECT_TRUE(Hdf5File::isHdf5(good));
    EXPECT_THROW(readCatalog(good, "nope"), NotFoundError);
    {
        Hdf5File f(good, Hdf5File::Mode::ReadOnly);
        EXPECT_THROW(readTable(f, "src", {"id", "nope"}), NotFoundError);
        EXPECT_THROW(writeTable(f, "x", randomTable(1, 1)), Hdf5Error);  // read-only
    }
    EXPECT_THROW(writeCatalog("/nonexistent-dir/drp/out.h5", "src", randomTable(3, 1)), IoError);
    EXPECT_THROW(writeCatalog(dir.path(), "src", randomTable(3, 1)), IoError);
    EXPECT_THROW(Hdf5File(good, Hdf5File::Mode::CreateExclusive), Hdf5Error);
    Schema s;
    auto k = s.addField<std::string>("name", "a name");
    Table nul(s, 1);
    nul.column(k)[0] = std::string("a\0b", 3);
    EXPECT_THROW(writeCatalog(dir / "nul.h5", "t", nul), LogicError);
    Hdf5CatalogOptions bad;
    bad.deflateLevel = 12;
    EXPECT_THROW(writeCatalog(dir / "bad.h5", "t", randomTable(1, 1), bad), ConfigError);
    std::string err = ::testing::internal::GetCapturedStderr();
    std::string out = ::testing::internal::GetCapturedStdout();
    EXPECT_EQ(err, "") << "HDF5 printed its error stack";
    EXPECT_EQ(out, "");
    // The good file is untouched by the failed attempts.
    EXPECT_TRUE(readCatalog(good, "src").identical(randomTable(5000, 9)));
}
