// HDF5 catalog write/read throughput: our writer (chunked columns, unit/description attributes,
// metadata) against a raw HDF5 baseline writing the same columns with plain H5Dcreate/H5Dwrite
// (contiguous layout, no attributes) in the same run. Tables of 10^5 and 10^6 rows x 50 columns
// (30 float64, 10 float32, 5 int64, 4 int32, 1 flag = 337 bytes/row). Every iteration runs the
// raw baseline and ours back to back on the same table; counters raw_MB/s, drp_MB/s and
// drp_vs_raw = raw time / our time (> 1: ours faster). The atomic variant adds what writeCatalog
// does on top (temp file, fsync, rename). Time columns cover both halves of an iteration.
// Run: bench_hdf5 --benchmark_min_time=0.2
#include <benchmark/benchmark.h>
#include <hdf5.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <unistd.h>

#include "io/Hdf5Catalog.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

struct Scratch {
    fs::path dir;
    Scratch() {
        // tmpfs by default, so the numbers measure the libraries rather than the disk's write-back;
        // DRP_BENCH_DIR picks another place (e.g. a parallel file system).
        const char* env = std::getenv("DRP_BENCH_DIR");
        fs::path base = env ? fs::path(env) : fs::is_directory("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
        dir = base / ("drp-bench-hdf5-" + std::to_string(::getpid()));
        fs::create_directories(dir);
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Scratch& scratch() {
    static Scratch s;
    return s;
}

const Table& table(std::size_t rows) {
    static std::map<std::size_t, std::unique_ptr<Table>> cache;
    auto& t = cache[rows];
    if (t) return *t;
    Schema s;
    for (int i = 0; i < 30; ++i) s.addField<double>("f64_" + std::to_string(i), "a float64 column", "nJy");
    for (int i = 0; i < 10; ++i) s.addField<float>("f32_" + std::to_string(i), "a float32 column", "pixel");
    for (int i = 0; i < 5; ++i) s.addField<std::int64_t>("i64_" + std::to_string(i), "an int64 column");
    for (int i = 0; i < 4; ++i) s.addField<std::int32_t>("i32_" + std::to_string(i), "an int32 column");
    s.addField<bool>("flag", "a flag column");
    t = std::make_unique<Table>(s, rows);
    std::mt19937_64 rng(42);
    std::normal_distribution<double> g(0, 1);
    for (std::size_t c = 0; c < s.size(); ++c) {
        std::visit(
            [&](auto& v) {
                using E = std::decay_t<decltype(v[0])>;
                if constexpr (!std::is_same_v<E, std::string>)
                    for (auto& x : v) x = std::is_same_v<E, std::uint8_t> ? E(rng() & 1) : static_cast<E>(g(rng) * 1000);
            },
            t->columnData(c));
    }
    return *t;
}

std::size_t tableBytes(const Table& t) {
    std::size_t b = 0;
    for (std::size_t c = 0; c < t.schema().size(); ++c)
        std::visit([&](const auto& v) { b += v.size() * sizeof(v[0]); }, t.columnData(c));  // no string columns
    return b;
}

hid_t memType(FieldType f) {
    switch (f) {
        case FieldType::Int32: return H5T_NATIVE_INT32;
        case FieldType::Int64: return H5T_NATIVE_INT64;
        case FieldType::Float32: return H5T_NATIVE_FLOAT;
        case FieldType::Float64: return H5T_NATIVE_DOUBLE;
        default: return H5T_NATIVE_UINT8;
    }
}

const void* columnPtr(const Table& t, std::size_t c) {
    return std::visit([](const auto& v) { return static_cast<const void*>(v.data()); }, t.columnData(c));
}

/// Raw baseline: one group, one contiguous dataset per column, plain H5Dwrite.
void rawWrite(const fs::path& p, const Table& t) {
    hid_t f = H5Fcreate(p.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "t", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t dims[1] = {t.size()};
    hid_t space = H5Screate_simple(1, dims, nullptr);
    for (std::size_t c = 0; c < t.schema().size(); ++c) {
        hid_t mt = memType(t.schema().field(c).type);
        hid_t d = H5Dcreate2(g, t.schema().field(c).name.c_str(), mt, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dwrite(d, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, columnPtr(t, c));
        H5Dclose(d);
    }
    H5Sclose(space);
    H5Gclose(g);
    H5Fclose(f);
}

/// Raw baseline read: every column into a freshly allocated std::vector (as any reader must).
Table rawRead(const fs::path& p, const Table& like) {
    Table t(like.schemaPtr(), like.size());
    hid_t f = H5Fopen(p.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "t", H5P_DEFAULT);
    for (std::size_t c = 0; c < t.schema().size(); ++c) {
        hid_t d = H5Dopen2(g, t.schema().field(c).name.c_str(), H5P_DEFAULT);
        H5Dread(d, memType(t.schema().field(c).type), H5S_ALL, H5S_ALL, H5P_DEFAULT,
                const_cast<void*>(columnPtr(t, c)));
        H5Dclose(d);
    }
    H5Gclose(g);
    H5Fclose(f);
    return t;
}

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

/// Each iteration runs the raw baseline and ours on the same table, back to back (so machine load
/// hits both alike), and reports both rates and their ratio.
template <typename Raw, typename Ours>
void paired(benchmark::State& state, std::size_t bytes, Raw&& raw, Ours&& ours) {
    double rawSeconds = 0, oursSeconds = 0;
    for (auto _ : state) {
        auto t0 = Clock::now();
        raw();
        rawSeconds += since(t0);
        t0 = Clock::now();
        ours();
        oursSeconds += since(t0);
    }
    const double n = double(state.iterations());
    state.SetBytesProcessed(std::int64_t(bytes) * 2 * state.iterations());
    state.counters["raw_MB/s"] = double(bytes) * n / rawSeconds / 1e6;
    state.counters["drp_MB/s"] = double(bytes) * n / oursSeconds / 1e6;
    state.counters["drp_vs_raw"] = rawSeconds / oursSeconds;  // > 1: ours is faster
}

/// Our writer (chunked columns + attributes) vs plain H5Dwrite.
void BM_WriteTable(benchmark::State& state) {
    const Table& t = table(static_cast<std::size_t>(state.range(0)));
    fs::path raw = scratch().dir / "raw.h5", ours = scratch().dir / "drp.h5";
    paired(state, tableBytes(t), [&] { rawWrite(raw, t); },
           [&] {
               Hdf5File f(ours, Hdf5File::Mode::Create);
               writeTable(f, "t", t);
               f.close();
           });
}

/// Our writer with contiguous columns (chunkRows = 0) vs plain H5Dwrite.
void BM_WriteTableContiguous(benchmark::State& state) {
    const Table& t = table(static_cast<std::size_t>(state.range(0)));
    fs::path raw = scratch().dir / "raw.h5", ours = scratch().dir / "drp_contig.h5";
    Hdf5CatalogOptions opt;
    opt.chunkRows = 0;
    paired(state, tableBytes(t), [&] { rawWrite(raw, t); },
           [&] {
               Hdf5File f(ours, Hdf5File::Mode::Create);
               writeTable(f, "t", t, opt);
               f.close();
           });
}

/// writeCatalog: the same plus temp file, fsync and atomic rename.
void BM_WriteCatalogAtomic(benchmark::State& state) {
    const Table& t = table(static_cast<std::size_t>(state.range(0)));
    fs::path raw = scratch().dir / "raw.h5", ours = scratch().dir / "drp_atomic.h5";
    paired(state, tableBytes(t), [&] { rawWrite(raw, t); }, [&] { writeCatalog(ours, "t", t); });
}

/// readCatalog (schema reconstruction, attributes, type checks) vs plain H5Dread into new vectors.
void BM_ReadTable(benchmark::State& state) {
    const Table& src = table(static_cast<std::size_t>(state.range(0)));
    fs::path raw = scratch().dir / "raw_r.h5", ours = scratch().dir / "drp_r.h5";
    rawWrite(raw, src);
    writeCatalog(ours, "t", src);
    paired(state, tableBytes(src),
           [&] {
               Table t = rawRead(raw, src);
               benchmark::DoNotOptimize(t);
           },
           [&] {
               Table t = readCatalog(ours, "t");
               benchmark::DoNotOptimize(t);
           });
}

}  // namespace

BENCHMARK(BM_WriteTable)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteTableContiguous)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteCatalogAtomic)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadTable)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();
