// Executor overhead per quantum under mpirun: executeQuanta on no-op quanta (the whole cost is
// scheduling, messaging and the hand-off to rank 0's worker thread), and on quanta that sleep 1 ms
// (overhead = the wall time beyond the ideal sum(sleep) / ranks, per quantum and worker).
// Its own main (MPI): run
//   OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np N --oversubscribe bench_executor [quanta]
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "core/Communicator.h"
#include "drivers/campaign/Executor.h"

using namespace drp;

namespace {

/// Campaign shape: visits of `detectors` independent quanta (affinity = detector) + one gather each.
ExecutionPlan plan(std::size_t quanta, int detectors) {
    ExecutionPlan p;
    const std::size_t visits = std::max<std::size_t>(1, quanta / std::size_t(detectors + 1));
    for (std::size_t v = 0; v < visits; ++v) {
        Scheduler::Node gather;
        for (int d = 0; d < detectors; ++d) {
            Scheduler::Node n;
            n.affinity = std::uint32_t(d);
            n.priority = 1;
            gather.upstream.push_back(std::uint32_t(p.nodes.size()));
            p.nodes.push_back(n);
        }
        p.nodes.push_back(gather);
    }
    p.payload = [](std::uint32_t i) {
        std::string s = "quantum ";
        return s += std::to_string(i);
    };
    p.label = [](std::uint32_t i) {
        std::string s = "q";
        return s += std::to_string(i);
    };
    return p;
}

struct Timing {
    double best = 1e300, sum = 0;
    int reps = 0;
};

Timing measure(const Communicator& comm, const ExecutionPlan& p, const QuantumFunction& fn, int reps) {
    ExecutorOptions o;
    o.quiet = true;
    Timing t;
    executeQuanta(comm, p, fn, o);  // warm-up
    for (int r = 0; r < reps; ++r) {
        comm.barrier();
        const auto t0 = std::chrono::steady_clock::now();
        ExecutionReport rep = executeQuanta(comm, p, fn, o);
        const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep.succeeded != p.nodes.size() && comm.isRoot()) std::fprintf(stderr, "unexpected: %zu succeeded\n", rep.succeeded);
        t.best = std::min(t.best, wall);
        t.sum += wall;
        ++t.reps;
    }
    return t;
}

}  // namespace

int main(int argc, char** argv) {
    MpiSession mpi(&argc, &argv);
    const Communicator comm = Communicator::world();
    const std::size_t quanta = argc > 1 ? std::size_t(std::atol(argv[1])) : 20000;
    const int ranks = comm.size();

    const ExecutionPlan noopPlan = plan(quanta, 189);
    const QuantumFunction noop = [](std::uint32_t, const std::string& payload) { return payload.substr(0, 1); };
    const Timing a = measure(comm, comm.isRoot() ? noopPlan : ExecutionPlan{}, noop, 3);
    const std::size_t n = noopPlan.nodes.size();
    if (comm.isRoot())
        std::printf("ranks=%d no-op quanta=%zu: wall best %.3f s (mean %.3f s) -> %.1f us/quantum wall, "
                    "%.1f us/quantum per worker (wall*ranks/quanta), %.0f quanta/s\n",
                    ranks, n, a.best, a.sum / a.reps, a.best / double(n) * 1e6, a.best * ranks / double(n) * 1e6,
                    double(n) / a.best);

    const std::size_t sleepers = 2000;
    const ExecutionPlan sleepPlan = plan(sleepers, 189);
    const QuantumFunction sleep1ms = [](std::uint32_t, const std::string&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return std::string();
    };
    // What sleep_for(1 ms) really takes here (timer slack, load), measured outside the executor.
    double sleepSeconds = 0;
    {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 200; ++i) sleep1ms(0, std::string());
        sleepSeconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 200;
    }
    sleepSeconds = comm.allreduceMax(sleepSeconds);
    const Timing b = measure(comm, comm.isRoot() ? sleepPlan : ExecutionPlan{}, sleep1ms, 2);
    const std::size_t m = sleepPlan.nodes.size();
    if (comm.isRoot()) {
        const double ideal = double(m) * sleepSeconds / ranks;
        std::printf("ranks=%d 1-ms quanta=%zu (sleep_for(1ms) takes %.0f us here): wall best %.3f s, ideal %.3f s "
                    "-> overhead %.1f us/quantum per worker ((wall-ideal)*ranks/quanta)\n",
                    ranks, m, sleepSeconds * 1e6, b.best, ideal, (b.best - ideal) * ranks / double(m) * 1e6);
    }

    // Idle cost: one quantum sleeping 2 s (rank 0's worker thread gets it), everyone else waits.
    // CPU seconds each rank used meanwhile = the price of polling instead of blocking.
    ExecutionPlan idlePlan;
    idlePlan.nodes.resize(1);
    const QuantumFunction sleep2s = [](std::uint32_t, const std::string&) {
        std::this_thread::sleep_for(std::chrono::seconds(2));
        return std::string();
    };
    const auto cpu = [] {
        rusage u{};
        getrusage(RUSAGE_SELF, &u);
        return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * double(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
    };
    comm.barrier();
    const double c0 = cpu();
    ExecutorOptions quiet;
    quiet.quiet = true;
    executeQuanta(comm, comm.isRoot() ? idlePlan : ExecutionPlan{}, sleep2s, quiet);
    const double used = cpu() - c0;
    const auto all = comm.allgather(std::to_string(used));
    if (comm.isRoot()) {
        std::printf("ranks=%d idle wait of 2 s: CPU seconds used per rank:", ranks);
        for (const auto& u : all) std::printf(" %s", u.c_str());
        std::printf("\n");
    }
    return 0;
}
