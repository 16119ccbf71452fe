// Throughput of SkyMap::findTract and findTract + findPatch on the lsst_cells_v1 sky map (18938 tracts),
// beside a raw baseline: Wcs::skyToPixel alone into the (precomputed) tract of each point, i.e. the
// projection findPatch cannot avoid. Also findOverlaps of a Rubin detector polygon, and map construction.
// Tracts are built lazily: construction of 120 / 2000 / 10000-ring maps (18938 / 5.1M / 127M tracts) only
// builds the ring tables; findOverlaps is measured warm (every tract it touches cached) and cold (a fresh map
// per iteration, so each polygon's tracts are built on first use).
// Items/s are points (or polygons, or maps) per second; each iteration handles 4096 random points.
#include <benchmark/benchmark.h>

#include <memory>
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

std::vector<std::vector<SpherePoint>> detectorPolygons(int count, double pixelScaleArcsec) {
    auto centres = randomPoints();
    std::vector<std::vector<SpherePoint>> polys;
    for (int i = 0; i < count; ++i) {
        auto w = Wcs::makeTan({1999.5, 1999.5}, centres[i], pixelScaleArcsec * arcseconds, 10.0 * i * degrees);
        polys.push_back({w->pixelToSky({-0.5, -0.5}), w->pixelToSky({3999.5, -0.5}), w->pixelToSky({3999.5, 3999.5}),
                         w->pixelToSky({-0.5, 3999.5})});
    }
    return polys;
}

void BM_FindOverlapsDetector(benchmark::State& state) {
    const SkyMap& map = lsstMap();
    auto polys = detectorPolygons(256, 0.2);
    for (auto _ : state) {
        std::size_t acc = 0;
        for (const auto& poly : polys) acc += map.findOverlaps(poly).size();
        benchmark::DoNotOptimize(acc);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(polys.size()));
}
BENCHMARK(BM_FindOverlapsDetector);

/// lsst_cells_v1 with numRings rings; beyond 120 rings a derived patch grid (the fixed 10 x 10 grid of
/// 1.7 deg would make every polygon overlap hundreds of the small tracts).
SkyMapConfig ringsConfig(int numRings) {
    SkyMapConfig c;
    c.numRings = numRings;
    if (numRings > 120) c.numPatchesPerSide = 0;
    return c;
}

/// findOverlaps of 256 Rubin detector polygons on a map of state.range(0) rings: warm = the same map every
/// iteration (tracts cached after the first); cold = a new map per iteration (construction not timed).
void BM_FindOverlapsRings(benchmark::State& state, bool cold) {
    const SkyMapConfig cfg = ringsConfig(int(state.range(0)));
    auto polys = detectorPolygons(256, 0.2);
    auto map = std::make_unique<SkyMap>(cfg);
    if (!cold)
        for (const auto& poly : polys) benchmark::DoNotOptimize(map->findOverlaps(poly));
    std::size_t built = 0;
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            map = std::make_unique<SkyMap>(cfg);
            state.ResumeTiming();
        }
        std::size_t acc = 0;
        for (const auto& poly : polys) acc += map->findOverlaps(poly).size();
        benchmark::DoNotOptimize(acc);
        built = map->numCachedTracts();
    }
    state.counters["tracts_cached"] = double(built);
    state.SetItemsProcessed(state.iterations() * std::int64_t(polys.size()));
}
BENCHMARK_CAPTURE(BM_FindOverlapsRings, warm, false)->Arg(120)->Arg(2000)->Arg(10000);
BENCHMARK_CAPTURE(BM_FindOverlapsRings, cold, true)->Arg(120)->Arg(2000)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_ConstructLsstCellsV1(benchmark::State& state) {
    for (auto _ : state) {
        SkyMap map;
        benchmark::DoNotOptimize(map.numTracts());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ConstructLsstCellsV1)->Unit(benchmark::kMicrosecond);

/// Construction of a map of state.range(0) rings (lazy: ring tables and bounds only).
void BM_ConstructRings(benchmark::State& state) {
    const SkyMapConfig cfg = ringsConfig(int(state.range(0)));
    for (auto _ : state) {
        SkyMap map(cfg);
        benchmark::DoNotOptimize(map.numTracts());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ConstructRings)->Arg(120)->Arg(2000)->Arg(10000)->Unit(benchmark::kMicrosecond);

/// Every tract of the lsst_cells_v1 map built (what the eager constructor used to do): tracts().
void BM_BuildAllTractsLsstCellsV1(benchmark::State& state) {
    for (auto _ : state) {
        SkyMap map;
        benchmark::DoNotOptimize(map.tracts().size());
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildAllTractsLsstCellsV1)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
