// FITS write/read throughput of a full LSST-sized detector Exposure (4072 x 4000: IMAGE float32,
// MASK int32, VARIANCE float32, PSF table; ~195 MB), beside raw baselines on the same bytes in the
// same run:
//   BM_RawWrite     write(2) of the same number of bytes + fsync (what writeExposure's AtomicFile does)
//   BM_RawRead      read(2) of the whole exposure file into memory
//   BM_CopyFile     std::filesystem::copy_file of the exposure file
//   BM_WriteExposure / BM_ReadExposure   ours, with counters MB/s and x_raw = our time / raw time
// Files live in $TMPDIR (or /tmp); reads are served from the page cache for ours and the baseline alike.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "io/ExposureFits.h"

namespace fs = std::filesystem;
using namespace drp;

namespace {

constexpr int kWidth = 4072;
constexpr int kHeight = 4000;

struct Fixture {
    fs::path dir;
    fs::path exposurePath;
    Exposure exposure;
    std::uintmax_t fileBytes = 0;
    std::vector<char> buffer;           // the file's bytes, for the raw baselines
    std::map<std::string, double> secondsPerOp;  // baselines measured earlier in this run

    Fixture() {
        const char* tmp = std::getenv("TMPDIR");
        dir = fs::path(tmp ? tmp : "/tmp") / ("drp-bench-fits-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        exposurePath = dir / "calexp.fits";
        exposure = Exposure(Box2I({0, 0}, kWidth, kHeight));
        std::mt19937 rng(42);
        std::normal_distribution<float> noise(1000.0f, 30.0f);
        for (int y = 0; y < kHeight; ++y) {
            float* im = exposure.image().row(y);
            float* var = exposure.variance().row(y);
            MaskPixel* m = exposure.mask().row(y);
            for (int x = 0; x < kWidth; ++x) {
                im[x] = noise(rng);
                var[x] = 900.0f + float(x % 17);
                m[x] = (x % 101 == 0) ? 1 : 0;
            }
        }
        exposure.setWcs(Wcs::makeTan({2036, 2000}, SpherePoint::fromDegrees(150.0, 2.2), 0.2 * arcseconds,
                                     30.0 * degrees));
        exposure.setPsf(GaussianPsf::make(2.0));
        exposure.setPhotoCalib(std::make_shared<const PhotoCalib>(0.1, 0.001));
        writeExposure(exposurePath, exposure);
        fileBytes = fs::file_size(exposurePath);
        buffer.resize(fileBytes);
        int fd = ::open(exposurePath.c_str(), O_RDONLY);
        std::size_t got = 0;
        while (fd >= 0 && got < buffer.size()) {
            ssize_t n = ::read(fd, buffer.data() + got, buffer.size() - got);
            if (n <= 0) break;
            got += std::size_t(n);
        }
        if (fd >= 0) ::close(fd);
    }
    ~Fixture() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

void setCounters(benchmark::State& state, const std::string& name, double seconds, const char* baseline) {
    Fixture& f = fixture();
    const double perOp = seconds / double(state.iterations());
    f.secondsPerOp[name] = perOp;
    state.SetBytesProcessed(std::int64_t(state.iterations()) * std::int64_t(f.fileBytes));
    state.counters["MB/s"] = benchmark::Counter(double(f.fileBytes) / 1e6 / perOp);
    state.counters["MB"] = benchmark::Counter(double(f.fileBytes) / 1e6);
    if (baseline) {
        auto it = f.secondsPerOp.find(baseline);
        if (it != f.secondsPerOp.end()) state.counters["x_raw"] = benchmark::Counter(perOp / it->second);
    }
}

template <typename Fn>
double timeLoop(benchmark::State& state, Fn&& fn) {
    double total = 0.0;
    for (auto _ : state) {
        const auto t0 = std::chrono::steady_clock::now();
        fn();
        total += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    }
    return total;
}

void BM_RawWrite(benchmark::State& state) {
    Fixture& f = fixture();
    const fs::path out = f.dir / "raw.bin";
    const double seconds = timeLoop(state, [&] {
        int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        std::size_t done = 0;
        while (fd >= 0 && done < f.buffer.size()) {
            ssize_t n = ::write(fd, f.buffer.data() + done, f.buffer.size() - done);
            if (n <= 0) break;
            done += std::size_t(n);
        }
        if (fd >= 0) {
            ::fsync(fd);
            ::close(fd);
        }
        if (done != f.buffer.size()) state.SkipWithError("raw write failed");
    });
    setCounters(state, "RawWrite", seconds, nullptr);
}

void BM_RawRead(benchmark::State& state) {
    Fixture& f = fixture();
    std::vector<char> in(f.fileBytes);
    const double seconds = timeLoop(state, [&] {
        int fd = ::open(f.exposurePath.c_str(), O_RDONLY);
        std::size_t got = 0;
        while (fd >= 0 && got < in.size()) {
            ssize_t n = ::read(fd, in.data() + got, in.size() - got);
            if (n <= 0) break;
            got += std::size_t(n);
        }
        if (fd >= 0) ::close(fd);
        benchmark::DoNotOptimize(in.data());
        if (got != in.size()) state.SkipWithError("raw read failed");
    });
    setCounters(state, "RawRead", seconds, nullptr);
}

void BM_CopyFile(benchmark::State& state) {
    Fixture& f = fixture();
    const fs::path out = f.dir / "copy.fits";
    const double seconds = timeLoop(state, [&] {
        fs::copy_file(f.exposurePath, out, fs::copy_options::overwrite_existing);
    });
    setCounters(state, "CopyFile", seconds, nullptr);
}

void BM_WriteExposure(benchmark::State& state) {
    Fixture& f = fixture();
    const fs::path out = f.dir / "written.fits";
    const double seconds = timeLoop(state, [&] { writeExposure(out, f.exposure); });
    setCounters(state, "WriteExposure", seconds, "RawWrite");
    if (f.secondsPerOp.count("CopyFile")) {
        state.counters["x_copy"] = benchmark::Counter(f.secondsPerOp["WriteExposure"] / f.secondsPerOp["CopyFile"]);
    }
}

void BM_ReadExposure(benchmark::State& state) {
    Fixture& f = fixture();
    const double seconds = timeLoop(state, [&] {
        Exposure e = readExposure(f.exposurePath);
        benchmark::DoNotOptimize(e.image().data());
    });
    setCounters(state, "ReadExposure", seconds, "RawRead");
}

}  // namespace

// Baselines first, so that ours can report the ratio to them.
BENCHMARK(BM_RawWrite)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RawRead)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_CopyFile)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_WriteExposure)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_ReadExposure)->Unit(benchmark::kMillisecond)->UseRealTime();
