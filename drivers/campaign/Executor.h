// Executor: runs quanta across the ranks of a communicator with dynamic load balancing.
//
// Rank 0 owns the Scheduler. Workers (every rank, rank 0 included: its quanta run on a second thread
// that makes no MPI calls, so MPI_THREAD_FUNNELED suffices) ask for work, receive one quantum at a time
// (its index and payload bytes), run it, and report success or the error text plus a small result
// string. A quantum that throws is recorded as Failed with "Kind: message" and the scheduler blocks its
// dependents; the run goes on. Rank 0 never blocks in MPI while waiting (it probes and sleeps ~0.2 ms),
// so it does not steal a core from its own worker thread.
//
// Progress: rank 0 prints "done/failed/blocked/total, rate, ETA" — a live bar redrawn in place when
// stderr is a terminal, otherwise a plain line every progressIntervalSeconds (batch logs). Heartbeat:
// every rank logs "still running <label> for N min" (INFO) when one quantum runs longer than
// heartbeatSeconds, and again every heartbeatSeconds.
//
// With one rank (or Communicator::serial()) the same loop runs in-process, with no MPI call at all.
// Failure text: a drp::Error gives "<kind()>: <what()>", another std::exception "<C++ type>: <what()>"
// (e.g. "std::runtime_error: ..."), anything else "UnknownException: ..."; a payload() that throws fails
// its quantum the same way. A blocked quantum names the failure that blocked it first.
// Messages use tags 7101-7103 on `comm`; no other point-to-point traffic may be pending on it.
//
// The executor knows nothing of repositories or tasks: what a quantum is, is the caller's.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/Communicator.h"
#include "drivers/campaign/Scheduler.h"

namespace drp {

struct ExecutorOptions {
    double progressIntervalSeconds = 60;  ///< plain progress lines in batch logs; <= 0: none
    double heartbeatSeconds = 600;        ///< per-rank heartbeat while a quantum runs; > 0
    bool progressBar = true;              ///< live bar if stderr is a terminal (else plain lines)
    bool quiet = false;                   ///< no progress output at all
};

/// What rank 0 knows about the quanta (ignored on other ranks).
struct ExecutionPlan {
    std::vector<Scheduler::Node> nodes;
    /// Bytes a worker needs to run quantum i (called on rank 0 when the quantum is handed out).
    std::function<std::string(std::uint32_t)> payload;
    /// Human label for logs and reports, e.g. "singleVisit band=r visit=3 detector=1".
    std::function<std::string(std::uint32_t)> label;
};

/// Runs one quantum on a worker: gets the payload, returns a small result string; throws on failure.
/// Called on one thread per rank, one quantum at a time (it may keep caches between calls).
using QuantumFunction = std::function<std::string(std::uint32_t index, const std::string& payload)>;

struct QuantumOutcome {
    QuantumState state = QuantumState::Pending;  ///< Succeeded, Failed, Blocked or Done at the end
    std::string error;                           ///< Failed: "Kind: message"; Blocked: "upstream <label> failed"
    std::string result;                          ///< the QuantumFunction's result (Succeeded)
    double seconds = 0;                          ///< run time on the worker
    int rank = -1;                               ///< the rank that ran it
};

struct ExecutionReport {
    std::vector<QuantumOutcome> outcomes;  ///< rank 0: one per quantum; other ranks: empty
    std::size_t succeeded = 0, failed = 0, blocked = 0, alreadyDone = 0;  ///< same on every rank
    double wallSeconds = 0;
    bool ok() const { return failed == 0 && blocked == 0; }
};

/// Collective over `comm`. Returns when every quantum is finished (or blocked). Throws ConfigError
/// (every rank) if options.heartbeatSeconds <= 0, LogicError (every rank) if rank 0's plan has a cycle
/// or an upstream index out of range. `label` may be empty ("quantum <i>"), `payload` too (empty bytes).
ExecutionReport executeQuanta(const Communicator& comm, const ExecutionPlan& plan, const QuantumFunction& run,
                              const ExecutorOptions& options = {});

}  // namespace drp
