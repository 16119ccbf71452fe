// Quantum-graph construction (drivers/campaign/QuantumGraph) on a synthetic LSST-like listing: 189 detectors
// of 4k x 4k at 0.2"/px per visit (21 rafts of 3x3 CCDs), visits dithered uniformly over a square region
// centred at (60, -30) deg sized for ~10 visits per point, random rotations, 6 bands, on the
// lsst_cells_v1 sky map. Sizes: ~1e5 and ~1e6 quanta for the single-visit and drp-full pipelines.
// Counters: quanta, quanta/s, graph.memoryBytes() and the growth of the peak RSS (getrusage) during the
// first build — run one size per process for a clean RSS figure (see benchmarks/RESULTS.md). The
// baseline beside it is the sky-map work alone: findTract of every detector centre (single-visit) or
// findOverlaps of every detector polygon (drp-full), the part of the build that a graph cannot avoid.
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "drivers/campaign/QuantumGraph.h"

namespace {

using namespace drp;

const SkyMap& lsstMap() {
    static const SkyMap map;
    return map;
}

double peakRssMB() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return double(u.ru_maxrss) / 1024.0;  // Linux: kilobytes
}

constexpr double kVisitsPerPoint = 10.0;
constexpr double kFocalPlaneSqDeg = 189 * (4000 * 0.2 / 3600.0) * (4000 * 0.2 / 3600.0);

/// The listing of `nVisits` visits (fixed seed), cached per size.
const std::vector<ExposureRegion>& listing(int nVisits) {
    static std::map<int, std::vector<ExposureRegion>> cache;
    auto it = cache.find(nVisits);
    if (it != cache.end()) return it->second;
    std::vector<Point2D> ccdCentres;
    for (int ry = -2; ry <= 2; ++ry)
        for (int rx = -2; rx <= 2; ++rx) {
            if (std::abs(rx) == 2 && std::abs(ry) == 2) continue;
            for (int cy = -1; cy <= 1; ++cy)
                for (int cx = -1; cx <= 1; ++cx) ccdCentres.push_back({rx * 12700.0 + cx * 4200.0, ry * 12700.0 + cy * 4200.0});
        }
    const double side = std::sqrt(kFocalPlaneSqDeg * nVisits / kVisitsPerPoint);  // deg
    const double ra0 = 60.0, dec0 = -30.0;
    std::mt19937_64 rng(20240601);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    const char* bands[] = {"u", "g", "r", "i", "z", "y"};
    std::vector<ExposureRegion> out;
    out.reserve(std::size_t(nVisits) * ccdCentres.size());
    for (int v = 0; v < nVisits; ++v) {
        const double dec = dec0 + side * u(rng);
        const double ra = ra0 + side * u(rng) / std::cos(dec * M_PI / 180.0);
        const auto wcs = Wcs::makeTan({0.0, 0.0}, SpherePoint::fromDegrees(ra, dec), 0.2 * arcseconds, (360.0 * u(rng)) * degrees);
        const std::string band = bands[rng() % 6];
        for (std::size_t d = 0; d < ccdCentres.size(); ++d) {
            const Point2D c = ccdCentres[d];
            ExposureRegion e;
            e.dataId = DataId{{"instrument", "LSSTCam"}, {"band", band}, {"visit", 2024060100000 + v}, {"detector", std::int64_t(d)}};
            e.center = wcs->pixelToSky(c);
            e.corners = wcs->pixelToSky(std::vector<Point2D>{
                {c.x - 2000, c.y - 2000}, {c.x + 2000, c.y - 2000}, {c.x + 2000, c.y + 2000}, {c.x - 2000, c.y + 2000}});
            out.push_back(std::move(e));
        }
    }
    return cache.emplace(nVisits, std::move(out)).first->second;
}

void BM_BuildQuantumGraph(benchmark::State& state, std::string pipelineName, int nVisits) {
    const auto& exposures = listing(nVisits);
    const auto pipeline = pipelineByName(pipelineName);
    const SkyMap& map = lsstMap();
    std::size_t quanta = 0, memory = 0, datasets = 0;
    double rssGrowth = 0;
    for (auto _ : state) {
        state.PauseTiming();
        std::vector<ExposureRegion> copy = exposures;
        const double before = peakRssMB();
        state.ResumeTiming();
        QuantumGraph g = buildQuantumGraph(pipeline, std::move(copy), map, CampaignRuns{});
        state.PauseTiming();
        rssGrowth = std::max(rssGrowth, peakRssMB() - before);
        quanta = g.size();
        datasets = g.datasets().size();
        memory = g.memoryBytes();
        { QuantumGraph drop = std::move(g); }
        state.ResumeTiming();
    }
    state.counters["exposures"] = double(exposures.size());
    state.counters["quanta"] = double(quanta);
    state.counters["datasets"] = double(datasets);
    state.counters["quanta_per_s"] = benchmark::Counter(double(quanta) * double(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["graph_MB"] = double(memory) / 1e6;
    state.counters["peak_rss_growth_MB"] = rssGrowth;
}

/// Baseline: the sky-map calls the build makes (findTract per detector centre; findOverlaps per detector
/// polygon when the pipeline has visit-patch tasks), single-threaded.
void BM_SkyMapCallsBaseline(benchmark::State& state, bool overlaps, int nVisits) {
    const auto& exposures = listing(nVisits);
    const SkyMap& map = lsstMap();
    for (auto _ : state) {
        std::size_t acc = 0;
        for (const auto& e : exposures) {
            acc += std::size_t(map.findTract(e.center));
            if (overlaps) acc += map.findOverlaps(e.corners).size();
        }
        benchmark::DoNotOptimize(acc);
    }
    state.counters["exposures_per_s"] = benchmark::Counter(double(exposures.size()) * double(state.iterations()),
                                                           benchmark::Counter::kIsRate);
}

// single-visit: 190 quanta per visit + 1. drp-full: ~1500 quanta per visit at 10 visits per point.
constexpr int kSv1e5 = 526, kSv1e6 = 5263, kFull1e5 = 44, kFull1e6 = 510;

BENCHMARK_CAPTURE(BM_BuildQuantumGraph, single_visit_1e5, std::string("single-visit"), kSv1e5)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_BuildQuantumGraph, drp_full_1e5, std::string("drp-full"), kFull1e5)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_BuildQuantumGraph, single_visit_1e6, std::string("single-visit"), kSv1e6)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_BuildQuantumGraph, drp_full_1e6, std::string("drp-full"), kFull1e6)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK_CAPTURE(BM_SkyMapCallsBaseline, find_tract_1e5, false, kSv1e5)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK_CAPTURE(BM_SkyMapCallsBaseline, find_overlaps_drp_full_1e5, true, kFull1e5)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
