#include "drivers/campaign/Scheduler.h"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "core/Error.h"

namespace drp {

const char* quantumStateName(QuantumState s) {
    switch (s) {
        case QuantumState::Pending: return "Pending";
        case QuantumState::Ready: return "Ready";
        case QuantumState::Running: return "Running";
        case QuantumState::Succeeded: return "Succeeded";
        case QuantumState::Failed: return "Failed";
        case QuantumState::Blocked: return "Blocked";
        case QuantumState::Done: return "Done";
    }
    return "?";
}

Scheduler::Scheduler(std::vector<Node> nodes, int numWorkers) : numWorkers_(numWorkers) {
    if (numWorkers < 1) throw LogicError("Scheduler needs at least one worker, got " + std::to_string(numWorkers));
    if (nodes.size() >= std::size_t(kNone)) throw LogicError("Scheduler: too many quanta");
    const auto n = std::uint32_t(nodes.size());
    state_.assign(n, QuantumState::Pending);
    pending_.assign(n, 0);
    tolerant_.assign(n, 0);
    priority_.resize(n);
    affinity_.resize(n);
    downOffset_.assign(std::size_t(n) + 1, 0);

    // Dense affinity ids, in order of first appearance.
    std::unordered_map<std::uint32_t, std::uint32_t> dense;
    for (std::uint32_t i = 0; i < n; ++i) {
        const Node& node = nodes[i];
        priority_[i] = node.priority;
        tolerant_[i] = node.toleratesFailedUpstream ? 1 : 0;
        auto [it, inserted] = dense.try_emplace(node.affinity, std::uint32_t(dense.size()));
        affinity_[i] = it->second;
        for (std::uint32_t u : node.upstream) {
            if (u >= n)
                throw LogicError("Scheduler: quantum " + std::to_string(i) + " has upstream index " + std::to_string(u) +
                                 " out of range (" + std::to_string(n) + " quanta)");
            ++downOffset_[std::size_t(u) + 1];
        }
        pending_[i] = std::uint32_t(node.upstream.size());
    }
    readyByAffinity_.resize(dense.size());
    lastAffinity_.assign(std::size_t(numWorkers), kNone);
    for (std::size_t i = 0; i < n; ++i) downOffset_[i + 1] += downOffset_[i];
    downstream_.resize(downOffset_[n]);
    {
        std::vector<std::size_t> fill(downOffset_.begin(), downOffset_.end() - 1);
        for (std::uint32_t i = 0; i < n; ++i)
            for (std::uint32_t u : nodes[i].upstream) downstream_[fill[u]++] = i;
    }

    // Cycle check (Kahn): every node must be reachable in a topological order.
    {
        std::vector<std::uint32_t> indeg(pending_);
        std::vector<std::uint32_t> stack;
        for (std::uint32_t i = 0; i < n; ++i)
            if (indeg[i] == 0) stack.push_back(i);
        std::size_t seen = 0;
        while (!stack.empty()) {
            std::uint32_t q = stack.back();
            stack.pop_back();
            ++seen;
            for (std::size_t e = downOffset_[q]; e < downOffset_[q + 1]; ++e)
                if (--indeg[downstream_[e]] == 0) stack.push_back(downstream_[e]);
        }
        if (seen != n) {
            std::uint32_t first = 0;
            while (first < n && indeg[first] == 0) ++first;
            throw LogicError("Scheduler: the quantum graph has a cycle (through quantum " + std::to_string(first) + ")");
        }
    }

    // Done quanta satisfy their dependents; then every pending quantum with nothing left to wait for is Ready.
    counts_[std::size_t(QuantumState::Pending)] = n;
    for (std::uint32_t i = 0; i < n; ++i) {
        if (!nodes[i].alreadyDone) continue;
        setState(i, QuantumState::Done);
        for (std::size_t e = downOffset_[i]; e < downOffset_[i + 1]; ++e) --pending_[downstream_[e]];
    }
    nodes.clear();
    for (std::uint32_t i = 0; i < n; ++i)
        if (state_[i] == QuantumState::Pending && pending_[i] == 0) makeReady(i);
}

void Scheduler::setState(std::uint32_t q, QuantumState s) {
    --counts_[std::size_t(state_[q])];
    ++counts_[std::size_t(s)];
    state_[q] = s;
}

void Scheduler::makeReady(std::uint32_t q) {
    setState(q, QuantumState::Ready);
    HeapEntry entry{priority_[q], q};
    ready_.push_back(entry);
    std::push_heap(ready_.begin(), ready_.end(), HeapOrder{});
    Heap& local = readyByAffinity_[affinity_[q]];
    local.push_back(entry);
    std::push_heap(local.begin(), local.end(), HeapOrder{});
}

std::optional<std::uint32_t> Scheduler::popReady(Heap& heap) {
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), HeapOrder{});
        std::uint32_t q = heap.back().index;
        heap.pop_back();
        if (state_[q] == QuantumState::Ready) return q;  // else stale: taken through the other heap
    }
    return std::nullopt;
}

void Scheduler::checkIndex(std::uint32_t q, const char* what) const {
    if (q >= state_.size())
        throw LogicError(std::string("Scheduler::") + what + ": quantum " + std::to_string(q) + " out of range");
}

std::optional<std::uint32_t> Scheduler::next(int worker) {
    if (worker < 0 || worker >= numWorkers_)
        throw LogicError("Scheduler::next: worker " + std::to_string(worker) + " out of range");
    if (counts_[std::size_t(QuantumState::Ready)] == 0) return std::nullopt;
    std::optional<std::uint32_t> q;
    const std::uint32_t last = lastAffinity_[std::size_t(worker)];
    if (last != kNone) q = popReady(readyByAffinity_[last]);
    if (!q) q = popReady(ready_);
    if (!q) return std::nullopt;  // unreachable: the Ready count said otherwise
    setState(*q, QuantumState::Running);
    lastAffinity_[std::size_t(worker)] = affinity_[*q];
    return q;
}

void Scheduler::succeeded(std::uint32_t quantum) {
    checkIndex(quantum, "succeeded");
    if (state_[quantum] != QuantumState::Running)
        throw LogicError("Scheduler::succeeded: quantum " + std::to_string(quantum) + " is " +
                         quantumStateName(state_[quantum]) + ", not Running");
    setState(quantum, QuantumState::Succeeded);
    for (std::size_t e = downOffset_[quantum]; e < downOffset_[quantum + 1]; ++e) {
        std::uint32_t d = downstream_[e];
        if (state_[d] == QuantumState::Pending && --pending_[d] == 0) makeReady(d);
    }
}

std::vector<std::uint32_t> Scheduler::failed(std::uint32_t quantum) {
    checkIndex(quantum, "failed");
    if (state_[quantum] != QuantumState::Running)
        throw LogicError("Scheduler::failed: quantum " + std::to_string(quantum) + " is " +
                         quantumStateName(state_[quantum]) + ", not Running");
    setState(quantum, QuantumState::Failed);
    std::vector<std::uint32_t> blocked, stack{quantum};
    while (!stack.empty()) {
        std::uint32_t q = stack.back();
        stack.pop_back();
        for (std::size_t e = downOffset_[q]; e < downOffset_[q + 1]; ++e) {
            std::uint32_t d = downstream_[e];
            if (state_[d] != QuantumState::Pending) continue;  // already blocked, or Done (shields its dependents)
            if (tolerant_[d]) {  // this upstream is finished for it: it runs with what the others produce
                if (--pending_[d] == 0) makeReady(d);
                continue;
            }
            setState(d, QuantumState::Blocked);
            blocked.push_back(d);
            stack.push_back(d);
        }
    }
    std::sort(blocked.begin(), blocked.end());
    return blocked;
}

bool Scheduler::finished() const {
    return counts_[std::size_t(QuantumState::Pending)] == 0 && counts_[std::size_t(QuantumState::Ready)] == 0 &&
           counts_[std::size_t(QuantumState::Running)] == 0;
}

bool Scheduler::stalled() const {
    return counts_[std::size_t(QuantumState::Running)] == 0 && counts_[std::size_t(QuantumState::Ready)] == 0 &&
           counts_[std::size_t(QuantumState::Pending)] > 0;
}

QuantumState Scheduler::state(std::uint32_t quantum) const {
    checkIndex(quantum, "state");
    return state_[quantum];
}

std::size_t Scheduler::count(QuantumState s) const { return counts_[std::size_t(s)]; }
std::size_t Scheduler::size() const { return state_.size(); }

}  // namespace drp
