// Scheduler: the pure bookkeeping of a campaign run — which quanta are ready, which worker gets what,
// what a failure blocks. No MPI, no I/O, no clocks: the Executor drives it, tests drive it directly.
//
// States: Pending (waiting for upstream), Ready, Running, Succeeded, Failed, Blocked (an upstream
// failed or was blocked), Done (outputs already present before the run: counts as succeeded for its
// dependents and is never handed out).
// next(worker) hands out a ready quantum: first one with the same affinity key as the last quantum
// that worker ran (e.g. the detector: its calibrations are in the worker's cache), else the ready
// quantum with the highest priority (then the lowest index). Deterministic for a given call sequence.
//
// A failure blocks every quantum reachable downstream of it through quanta that are not Done: a Done
// quantum's outputs already exist, so it shields its own dependents. A quantum that tolerates failed
// upstream (a visit-level gather that works with the detectors there are) is not blocked: a failed or
// blocked upstream counts as finished for it, and it runs once all its upstream are finished (it reads
// the inputs that exist); the blocking stops there. Each call is O(log n) amortised
// (next, succeeded) or O(newly blocked) (failed); construction is O(nodes + edges).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace drp {

enum class QuantumState : std::uint8_t { Pending, Ready, Running, Succeeded, Failed, Blocked, Done };
const char* quantumStateName(QuantumState s);

class Scheduler {
public:
    struct Node {
        std::vector<std::uint32_t> upstream;  ///< indices of quanta this one needs
        std::uint32_t affinity = 0;           ///< quanta with the same key prefer the same worker
        double priority = 0;                  ///< larger first (e.g. the length of the longest path below)
        bool alreadyDone = false;             ///< outputs present before the run
        bool toleratesFailedUpstream = false; ///< runs with what its finished upstream produced (see above)
    };
    /// Throws LogicError for an upstream index out of range or a cycle.
    Scheduler(std::vector<Node> nodes, int numWorkers);

    /// A ready quantum for `worker` (now Running), or nothing if none is ready at the moment.
    std::optional<std::uint32_t> next(int worker);
    void succeeded(std::uint32_t quantum);
    /// Marks it Failed and every quantum downstream Blocked (up to, not including, quanta that tolerate failed
    /// upstream); returns the newly blocked ones (ascending).
    std::vector<std::uint32_t> failed(std::uint32_t quantum);

    /// Nothing Pending, Ready or Running.
    bool finished() const;
    /// Nothing is running and nothing is ready, but some are pending (cannot happen for a valid graph).
    bool stalled() const;
    QuantumState state(std::uint32_t quantum) const;
    std::size_t count(QuantumState s) const;
    std::size_t size() const;
    int numWorkers() const { return numWorkers_; }

private:
    struct HeapEntry {
        double priority;
        std::uint32_t index;
    };
    struct HeapOrder {  // std heap is a max-heap: "less" means lower priority, then higher index
        bool operator()(const HeapEntry& a, const HeapEntry& b) const {
            return a.priority < b.priority || (a.priority == b.priority && a.index > b.index);
        }
    };
    using Heap = std::vector<HeapEntry>;
    static constexpr std::uint32_t kNone = 0xffffffffu;

    void setState(std::uint32_t q, QuantumState s);
    void makeReady(std::uint32_t q);
    std::optional<std::uint32_t> popReady(Heap& heap);
    void checkIndex(std::uint32_t q, const char* what) const;

    int numWorkers_;
    std::vector<QuantumState> state_;
    std::vector<std::uint32_t> pending_;       ///< upstream edges not yet satisfied
    std::vector<char> tolerant_;               ///< Node::toleratesFailedUpstream
    std::vector<double> priority_;
    std::vector<std::uint32_t> affinity_;      ///< dense affinity id
    std::vector<std::size_t> downOffset_;      ///< CSR of the downstream edges
    std::vector<std::uint32_t> downstream_;
    Heap ready_;                               ///< every Ready quantum (lazy: may hold stale entries)
    std::vector<Heap> readyByAffinity_;        ///< per dense affinity id (lazy as well)
    std::vector<std::uint32_t> lastAffinity_;  ///< per worker: dense affinity of its last quantum, or kNone
    std::size_t counts_[7] = {};
};

}  // namespace drp
