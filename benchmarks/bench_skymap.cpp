// Throughput of SkyMap::findTract and findTract + findPatch on the lsst_cells_v1 sky map (18938 tracts),
// beside a raw baseline: Wcs::skyToPixel alone into the (precomputed) tract of each point, i.e. the
// projection findPatch cannot avoid. Also findOverlaps of a Rubin detector polygon, and map construction.
// Items/s are points (or polygons, or maps) per second; each iteration handles 4096 random points.
#include <benchmark/benchmark.h>

#include <random>
#include <vector>

#include "sky/SkyMap.h"

namespace {

using namespace drp;

constexpr int kPoints = 4096;

const SkyMap& lsstMap() {
    static const SkyMap map;
    return map;
}

std::vector<SpherePoint> randomPoints() {
    std::mt19937_64 rng(7);
    std::normal_distribution<double> g;
    std::vector<SpherePoint> pts;
    while (pts.size() < kPoints) {
        Eigen::Vector3d v(g(rng), g(rng), g(rng));
        if (v.norm() > 1e-6) pts.push_back(SpherePoint::fromVector(v));
    }
    return pts;
}

void BM_FindTract(benchmark::State& state) {
    const SkyMap& map = lsstMap();
    auto pts = randomPoints();
    for (auto _ : state) {
        int acc = 0;
        for (const auto& p : pts) acc += map.findTract(p);
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}
BENCHMARK(BM_FindTract);

void BM_FindTractAndPatch(benchmark::State& state) {
    const SkyMap& map = lsstMap();
    auto pts = randomPoints();
    for (auto _ : state) {
        int acc = 0;
        for (const auto& p : pts) acc += map.findPatch(map.tract(map.findTract(p)), p).index;
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}
BENCHMARK(BM_FindTractAndPatch);

void BM_RawSkyToPixelBaseline(benchmark::State& state) {
    const SkyMap& map = lsstMap();
    auto pts = randomPoints();
    std::vector<const Wcs*> wcs;
    for (const auto& p : pts) wcs.push_back(map.tract(map.findTract(p)).wcs.get());
    for (auto _ : state) {
        double acc = 0;
        for (std::size_t i = 0; i < pts.size(); ++i) acc += wcs[i]->skyToPixel(pts[i]).x;
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}
BENCHMARK(BM_RawSkyToPixelBaseline);

void BM_FindOverlapsDetector(benchmark::State& state) {
    const SkyMap& map = lsstMap();
    auto centres = randomPoints();
    std::vector<std::vector<SpherePoint>> polys;
    for (int i = 0; i < 256; ++i) {
        auto w = Wcs::makeTan({1999.5, 1999.5}, centres[i], 0.2 * arcseconds, 10.0 * i * degrees);
        polys.push_back({w->pixelToSky({-0.5, -0.5}), w->pixelToSky({3999.5, -0.5}), w->pixelToSky({3999.5, 3999.5}),
                         w->pixelToSky({-0.5, 3999.5})});
    }
    for (auto _ : state) {
        std::size_t acc = 0;
        for (const auto& poly : polys) acc += map.findOverlaps(poly).size();
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(polys.size()));
}
BENCHMARK(BM_FindOverlapsDetector);

void BM_ConstructLsstCellsV1(benchmark::State& state) {
    for (auto _ : state) {
        SkyMap map;
        benchmark::DoNotOptimize(map.numTracts());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ConstructLsstCellsV1)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
