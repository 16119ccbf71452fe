// Statistics on a 16 Mpix (4096 x 4096) float image with a mask (5 % BAD, 1 % SAT) and 0.1 % NaNs:
// mean+stdev, sigma-clipped, median, quantiles and everything, beside raw baselines on the same input
// (a hand-written masked mean loop; gather + std::nth_element median; gather + full std::sort median).
//
// Run: ./bench_statistics --benchmark_min_time=0.2      (counter "Mpix/s" = input pixels per second)
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/Statistics.h"

using namespace drp;

namespace {

constexpr int kSide = 4096;

struct Input {
    ImageF image{kSide, kSide};
    Mask mask{kSide, kSide};
    MaskPixel bad = 0;
    Input() {
        std::mt19937_64 rng(42);
        std::normal_distribution<float> g(1000.0f, 10.0f);
        std::uniform_real_distribution<float> u(0, 1);
        const MaskPixel badBit = mask.planeBitMask("BAD"), sat = mask.planeBitMask("SAT");
        bad = badBit | sat;
        for (int y = 0; y < kSide; ++y)
            for (int x = 0; x < kSide; ++x) {
                float r = u(rng);
                image(x, y) = r < 0.02f ? 1000.0f + 500.0f * u(rng) : g(rng);  // 2 % outliers (sources)
                mask(x, y) = r > 0.95f ? badBit : r > 0.94f ? sat : 0;
                if (u(rng) < 0.001f) image(x, y) = std::numeric_limits<float>::quiet_NaN();
            }
    }
};

const Input& input() {
    static const Input in;
    return in;
}

void setCounters(benchmark::State& state) {
    state.counters["Mpix/s"] =
        benchmark::Counter(double(kSide) * kSide / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

void runStats(benchmark::State& state, unsigned properties, std::vector<double> quantiles = {}) {
    const Input& in = input();
    StatisticsControl ctrl;
    ctrl.badMask = in.bad;
    ctrl.properties = properties;
    ctrl.quantiles = std::move(quantiles);
    for (auto _ : state) {
        Statistics s = makeStatistics(in.image, in.mask, ctrl);
        benchmark::DoNotOptimize(s);
    }
    setCounters(state);
}

void BM_MeanStdev(benchmark::State& state) { runStats(state, kStatMean | kStatStdev | kStatMinMax); }
void BM_Clipped(benchmark::State& state) { runStats(state, kStatClipped); }
void BM_Median(benchmark::State& state) { runStats(state, kStatMedian); }
void BM_Quantiles5(benchmark::State& state) { runStats(state, kStatQuantiles, {0.01, 0.25, 0.5, 0.75, 0.99}); }
void BM_All(benchmark::State& state) { runStats(state, kStatAll, {0.1, 0.9}); }

BENCHMARK(BM_MeanStdev)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Clipped)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Median)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Quantiles5)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_All)->Unit(benchmark::kMillisecond);

// The background's use: clipped statistics (3 sigma, 3 iterations) of every 128 x 128 bin (32 x 32 bins),
// beside a raw gather + std::nth_element median per bin.
constexpr int kBin = 128;

// Argument: StatisticsControl::clipStartStride (1: the clipping starts from the median and MAD of all the bin's
// pixels; 4: of every 4th, the background's default).
void BM_ClippedBins(benchmark::State& state) {
    const Input& in = input();
    StatisticsControl ctrl;
    ctrl.badMask = in.bad;
    ctrl.numIter = 3;
    ctrl.properties = kStatClipped;
    ctrl.clipStartStride = int(state.range(0));
    for (auto _ : state) {
        double sum = 0;
        for (int by = 0; by < kSide; by += kBin)
            for (int bx = 0; bx < kSide; bx += kBin) {
                const Box2I bin({bx, by}, kBin, kBin);
                sum += makeStatistics(in.image.subImage(bin), in.mask.subImage(bin), ctrl).clippedMean;
            }
        benchmark::DoNotOptimize(sum);
    }
    setCounters(state);
}
BENCHMARK(BM_ClippedBins)->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond);

void BM_RawNthElementMedianBins(benchmark::State& state) {
    const Input& in = input();
    std::vector<float> v;
    for (auto _ : state) {
        double sum = 0;
        for (int by = 0; by < kSide; by += kBin)
            for (int bx = 0; bx < kSide; bx += kBin) {
                v.clear();
                for (int y = by; y < by + kBin; ++y)
                    for (int x = bx; x < bx + kBin; ++x)
                        if (!(in.mask(x, y) & in.bad) && std::isfinite(in.image(x, y))) v.push_back(in.image(x, y));
                std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
                sum += v[v.size() / 2];
            }
        benchmark::DoNotOptimize(sum);
    }
    setCounters(state);
}
BENCHMARK(BM_RawNthElementMedianBins)->Unit(benchmark::kMillisecond);

// Baselines on the same input.
void BM_RawMaskedMeanLoop(benchmark::State& state) {
    const Input& in = input();
    for (auto _ : state) {
        double sum = 0;
        std::int64_t n = 0;
        for (int y = 0; y < kSide; ++y) {
            const float* r = in.image.row(y);
            const MaskPixel* m = in.mask.row(y);
            for (int x = 0; x < kSide; ++x)
                if (!(m[x] & in.bad) && std::isfinite(r[x])) {
                    sum += r[x];
                    ++n;
                }
        }
        double mean = sum / double(n);
        benchmark::DoNotOptimize(mean);
    }
    setCounters(state);
}
BENCHMARK(BM_RawMaskedMeanLoop)->Unit(benchmark::kMillisecond);

std::vector<float> gather(const Input& in) {
    std::vector<float> v;
    v.reserve(std::size_t(kSide) * kSide);
    for (int y = 0; y < kSide; ++y) {
        const float* r = in.image.row(y);
        const MaskPixel* m = in.mask.row(y);
        for (int x = 0; x < kSide; ++x)
            if (!(m[x] & in.bad) && std::isfinite(r[x])) v.push_back(r[x]);
    }
    return v;
}

void BM_RawNthElementMedian(benchmark::State& state) {
    const Input& in = input();
    for (auto _ : state) {
        std::vector<float> v = gather(in);
        std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
        benchmark::DoNotOptimize(v[v.size() / 2]);
    }
    setCounters(state);
}
BENCHMARK(BM_RawNthElementMedian)->Unit(benchmark::kMillisecond);

void BM_RawSortMedian(benchmark::State& state) {
    const Input& in = input();
    for (auto _ : state) {
        std::vector<float> v = gather(in);
        std::sort(v.begin(), v.end());
        benchmark::DoNotOptimize(v[v.size() / 2]);
    }
    setCounters(state);
}
BENCHMARK(BM_RawSortMedian)->Unit(benchmark::kMillisecond);

}  // namespace
