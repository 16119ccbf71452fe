// Pure Scheduler throughput on campaign-shaped DAGs: V visits x 189 detectors visit-detector quanta
// (affinity = detector), one gather per visit (upstream = its detectors), one global quantum (upstream =
// every gather). 64 workers take quanta round robin and report success in the order they were handed
// out. ns per quantum = 1e9 / items_per_second (Build: construction; Run: one next() + one succeeded()).
//
// Run: ./bench_scheduler --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <vector>

#include "drivers/campaign/Scheduler.h"

using namespace drp;

namespace {

constexpr int kDetectors = 189;
constexpr int kWorkers = 64;

std::vector<Scheduler::Node> campaign(std::size_t quanta) {
    const std::size_t visits = quanta / (kDetectors + 1);
    std::vector<Scheduler::Node> nodes;
    nodes.reserve(visits * (kDetectors + 1) + 1);
    std::vector<std::uint32_t> gathers;
    for (std::size_t v = 0; v < visits; ++v) {
        Scheduler::Node gather;
        gather.priority = 1;
        for (int d = 0; d < kDetectors; ++d) {
            Scheduler::Node n;
            n.affinity = std::uint32_t(d);
            n.priority = 2;
            gather.upstream.push_back(std::uint32_t(nodes.size()));
            nodes.push_back(std::move(n));
        }
        gathers.push_back(std::uint32_t(nodes.size()));
        nodes.push_back(std::move(gather));
    }
    Scheduler::Node global;
    global.upstream = std::move(gathers);
    nodes.push_back(std::move(global));
    return nodes;
}

void BM_SchedulerBuild(benchmark::State& state) {
    const auto nodes = campaign(std::size_t(state.range(0)));
    for (auto _ : state) {
        Scheduler s(nodes, kWorkers);
        benchmark::DoNotOptimize(s.size());
    }
    state.SetItemsProcessed(std::int64_t(nodes.size()) * std::int64_t(state.iterations()));
}

void BM_SchedulerRun(benchmark::State& state) {
    const auto nodes = campaign(std::size_t(state.range(0)));
    std::size_t handed = 0;
    for (auto _ : state) {
        state.PauseTiming();
        Scheduler s(nodes, kWorkers);
        std::vector<std::uint32_t> running;
        running.reserve(kWorkers);
        state.ResumeTiming();
        while (!s.finished()) {
            for (int w = 0; w < kWorkers; ++w)
                if (auto q = s.next(w)) running.push_back(*q);
            for (std::uint32_t q : running) s.succeeded(q);
            handed += running.size();
            running.clear();
        }
    }
    state.counters["quanta"] = double(nodes.size());
    state.SetItemsProcessed(std::int64_t(handed));  // ns per next() + succeeded() = 1e9 / items_per_second
}

}  // namespace

BENCHMARK(BM_SchedulerBuild)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerRun)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond);
