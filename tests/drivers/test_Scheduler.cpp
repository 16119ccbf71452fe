// The Scheduler's bookkeeping against brute force: random DAGs, many seeds, simulated workers that
// finish in random order, some quanta failing.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <set>

#include "core/Error.h"
#include "drivers/campaign/Scheduler.h"

using namespace drp;
using Node = Scheduler::Node;

namespace {

Node node(std::vector<std::uint32_t> up, std::uint32_t affinity = 0, double priority = 0, bool done = false) {
    Node n;
    n.upstream = std::move(up);
    n.affinity = affinity;
    n.priority = priority;
    n.alreadyDone = done;
    return n;
}

/// A random DAG whose indices are shuffled (no topological order assumed), with some quanta already done and some that
/// tolerate failed upstream.
std::vector<Node> randomDag(std::mt19937& rng, std::size_t n, double doneFraction, double tolerantFraction = 0.0) {
    std::vector<std::uint32_t> perm(n);
    std::iota(perm.begin(), perm.end(), 0u);
    std::shuffle(perm.begin(), perm.end(), rng);  // topological position t lives at index perm[t]
    std::vector<Node> nodes(n);
    std::uniform_real_distribution<double> u(0, 1);
    std::uniform_int_distribution<int> nUp(0, 4);
    for (std::size_t t = 0; t < n; ++t) {
        Node& nd = nodes[perm[t]];
        if (t > 0) {
            int k = nUp(rng);
            std::uniform_int_distribution<std::size_t> pick(t > 8 ? t - 8 : 0, t - 1);  // mostly local, like a campaign
            std::uniform_int_distribution<std::size_t> far(0, t - 1);
            for (int j = 0; j < k; ++j) nd.upstream.push_back(perm[u(rng) < 0.8 ? pick(rng) : far(rng)]);
        }
        nd.affinity = std::uint32_t(rng() % 5);
        nd.priority = double(rng() % 4);
        nd.alreadyDone = u(rng) < doneFraction;
        nd.toleratesFailedUpstream = u(rng) < tolerantFraction;
    }
    return nodes;
}

/// Quanta reachable from a failed one through quanta that are not already done and do not tolerate failed upstream (the
/// failed ones excluded).
std::set<std::uint32_t> bruteForceBlocked(const std::vector<Node>& nodes, const std::set<std::uint32_t>& failed) {
    std::set<std::uint32_t> blocked;
    bool changed = true;
    while (changed) {
        changed = false;
        for (std::uint32_t i = 0; i < nodes.size(); ++i) {
            if (nodes[i].alreadyDone || nodes[i].toleratesFailedUpstream || blocked.count(i) || failed.count(i)) continue;
            for (std::uint32_t up : nodes[i].upstream) {
                if (failed.count(up) || blocked.count(up)) {
                    blocked.insert(i);
                    changed = true;
                    break;
                }
            }
        }
    }
    return blocked;
}

struct SimResult {
    std::vector<std::uint32_t> handedOut;  // in order
    std::set<std::uint32_t> failed;
};

/// Workers take quanta whenever idle and finish a random running one; quanta in `willFail` fail.
SimResult simulate(Scheduler& s, const std::vector<Node>& nodes, int workers, std::mt19937& rng,
                   const std::set<std::uint32_t>& willFail) {
    SimResult out;
    std::vector<int> timesHanded(nodes.size(), 0);
    std::vector<std::optional<std::uint32_t>> running(static_cast<std::size_t>(workers), std::nullopt);
    for (;;) {
        for (int w = 0; w < workers; ++w) {
            if (running[std::size_t(w)]) continue;
            auto q = s.next(w);
            if (!q) continue;
            EXPECT_LT(*q, nodes.size());
            EXPECT_EQ(s.state(*q), QuantumState::Running);
            EXPECT_FALSE(nodes[*q].alreadyDone) << "already-done quantum " << *q << " handed out";
            EXPECT_EQ(++timesHanded[*q], 1) << "quantum " << *q << " handed out twice";
            for (std::uint32_t up : nodes[*q].upstream) {
                QuantumState st = s.state(up);
                const bool finished = st == QuantumState::Succeeded || st == QuantumState::Done ||
                                      (nodes[*q].toleratesFailedUpstream && (st == QuantumState::Failed || st == QuantumState::Blocked));
                EXPECT_TRUE(finished) << "quantum " << *q << " handed out while upstream " << up << " is " << quantumStateName(st);
            }
            running[std::size_t(w)] = *q;
            out.handedOut.push_back(*q);
        }
        std::vector<int> busy;
        for (int w = 0; w < workers; ++w)
            if (running[std::size_t(w)]) busy.push_back(w);
        if (busy.empty()) {
            EXPECT_TRUE(s.finished());
            EXPECT_FALSE(s.stalled());
            break;
        }
        EXPECT_FALSE(s.finished());
        int w = busy[rng() % busy.size()];
        std::uint32_t q = *running[std::size_t(w)];
        running[std::size_t(w)].reset();
        if (willFail.count(q)) {
            const std::size_t pendingBefore = s.count(QuantumState::Pending), readyBefore = s.count(QuantumState::Ready);
            auto blocked = s.failed(q);
            EXPECT_TRUE(std::is_sorted(blocked.begin(), blocked.end()));
            // Pending quanta become Blocked, or Ready when they tolerate the failure and it was their last upstream.
            EXPECT_EQ(s.count(QuantumState::Pending), pendingBefore - blocked.size() - (s.count(QuantumState::Ready) - readyBefore));
            for (std::uint32_t b : blocked) EXPECT_EQ(s.state(b), QuantumState::Blocked);
            out.failed.insert(q);
        } else {
            s.succeeded(q);
        }
    }
    return out;
}

}  // namespace

TEST(Scheduler, ChainRunsInOrderOneAtATime) {
    std::vector<Node> nodes{node({}), node({0}), node({1}), node({2})};
    Scheduler s(nodes, 2);
    EXPECT_EQ(s.count(QuantumState::Ready), 1u);
    EXPECT_EQ(s.count(QuantumState::Pending), 3u);
    for (std::uint32_t i = 0; i < 4; ++i) {
        auto q = s.next(1);
        ASSERT_TRUE(q);
        EXPECT_EQ(*q, i);
        EXPECT_FALSE(s.next(0)) << "only one quantum of a chain is ever ready";
        EXPECT_FALSE(s.finished());
        s.succeeded(*q);
    }
    EXPECT_TRUE(s.finished());
    EXPECT_EQ(s.count(QuantumState::Succeeded), 4u);
    EXPECT_EQ(s.size(), 4u);
}

TEST(Scheduler, DiamondFailureBlocksOnlyTheJoin) {
    //   0 -> {1, 2} -> 3 ; 4 independent
    std::vector<Node> nodes{node({}), node({0}), node({0}), node({1, 2}), node({})};
    Scheduler s(nodes, 2);
    auto a = s.next(0), b = s.next(1);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, 0u);
    EXPECT_EQ(*b, 4u);
    s.succeeded(0);
    s.succeeded(4);
    auto c = s.next(0), d = s.next(1);
    ASSERT_TRUE(c && d);
    EXPECT_EQ(std::set<std::uint32_t>({*c, *d}), std::set<std::uint32_t>({1, 2}));
    auto blocked = s.failed(1);
    EXPECT_EQ(blocked, std::vector<std::uint32_t>({3}));
    EXPECT_EQ(s.state(3), QuantumState::Blocked);
    EXPECT_FALSE(s.finished());  // 2 still running
    s.succeeded(2);
    EXPECT_TRUE(s.finished());
    EXPECT_FALSE(s.next(0));
    EXPECT_EQ(s.count(QuantumState::Succeeded), 3u);
    EXPECT_EQ(s.count(QuantumState::Failed), 1u);
    EXPECT_EQ(s.count(QuantumState::Blocked), 1u);
}

TEST(Scheduler, FailureBlocksTransitively) {
    // 0 -> 1 -> 2 -> 3, 0 -> 4, 5 -> 3 ; 5 independent of 0
    std::vector<Node> nodes{node({}), node({0}), node({1}), node({2, 5}), node({0}), node({})};
    Scheduler s(nodes, 1);
    auto q = s.next(0);
    ASSERT_TRUE(q);
    EXPECT_EQ(*q, 0u);
    EXPECT_EQ(s.failed(0), std::vector<std::uint32_t>({1, 2, 3, 4}));
    q = s.next(0);
    ASSERT_TRUE(q);
    EXPECT_EQ(*q, 5u);
    s.succeeded(5);
    EXPECT_TRUE(s.finished());
    EXPECT_EQ(s.count(QuantumState::Blocked), 4u);
}

TEST(Scheduler, ToleratingQuantumRunsWithWhatItsUpstreamProduced) {
    // A visit's detectors 0, 1, 2 -> visit-level gather 3 (tolerant) -> the detectors' second steps 4, 5, 6, which also
    // need their own detector's first step.
    std::vector<Node> nodes{node({}), node({}), node({}), node({0, 1, 2}), node({0, 3}), node({1, 3}), node({2, 3})};
    nodes[3].toleratesFailedUpstream = true;
    Scheduler s(nodes, 1);
    for (std::uint32_t want : {0u, 1u}) {
        auto q = s.next(0);
        ASSERT_TRUE(q);
        EXPECT_EQ(*q, want);
        s.succeeded(*q);
    }
    auto q = s.next(0);
    ASSERT_TRUE(q);
    EXPECT_EQ(*q, 2u);
    EXPECT_EQ(s.failed(2), std::vector<std::uint32_t>({6}));  // only the failed detector's own second step
    EXPECT_EQ(s.state(3), QuantumState::Ready);
    q = s.next(0);
    ASSERT_TRUE(q);
    EXPECT_EQ(*q, 3u);
    s.succeeded(3);
    for (std::uint32_t want : {4u, 5u}) {
        q = s.next(0);
        ASSERT_TRUE(q);
        EXPECT_EQ(*q, want);
        s.succeeded(*q);
    }
    EXPECT_TRUE(s.finished());
    // The gather itself failing blocks everything after it.
    Scheduler t(nodes, 1);
    for (int i = 0; i < 3; ++i) t.succeeded(*t.next(0));
    ASSERT_EQ(*t.next(0), 3u);
    EXPECT_EQ(t.failed(3), std::vector<std::uint32_t>({4, 5, 6}));
    // Every upstream failed: it still runs (and can fail for want of inputs).
    Scheduler u(nodes, 1);
    for (int i = 0; i < 3; ++i) u.failed(*u.next(0));
    EXPECT_EQ(u.state(3), QuantumState::Ready);
}

TEST(Scheduler, AlreadyDoneIsNeverHandedOutButSatisfiesDependents) {
    // 0 (done) -> 1 ; 2 -> 3 (done) -> 4 : 4 is ready at once, and a failure of 2 does not block it.
    std::vector<Node> nodes{node({}, 0, 0, true), node({0}), node({}), node({2}, 0, 0, true), node({3})};
    Scheduler s(nodes, 1);
    EXPECT_EQ(s.count(QuantumState::Done), 2u);
    EXPECT_EQ(s.state(0), QuantumState::Done);
    EXPECT_EQ(s.state(1), QuantumState::Ready);
    EXPECT_EQ(s.state(4), QuantumState::Ready);
    std::set<std::uint32_t> got;
    while (auto q = s.next(0)) {
        got.insert(*q);
        if (*q == 2) {
            EXPECT_TRUE(s.failed(2).empty());
        } else {
            s.succeeded(*q);
        }
    }
    EXPECT_EQ(got, std::set<std::uint32_t>({1, 2, 4}));
    EXPECT_TRUE(s.finished());
    EXPECT_EQ(s.state(3), QuantumState::Done);
}

TEST(Scheduler, AllDoneIsFinishedAtOnce) {
    Scheduler s({node({}, 0, 0, true), node({0}, 0, 0, true)}, 3);
    EXPECT_TRUE(s.finished());
    EXPECT_FALSE(s.next(2));
    Scheduler empty({}, 1);
    EXPECT_TRUE(empty.finished());
    EXPECT_FALSE(empty.stalled());
}

TEST(Scheduler, PriorityThenIndex) {
    std::vector<Node> nodes{node({}, 0, 1), node({}, 0, 5), node({}, 0, 1), node({}, 0, 5), node({}, 0, 0)};
    Scheduler s(nodes, 1);
    std::vector<std::uint32_t> order;
    while (auto q = s.next(0)) {
        order.push_back(*q);
        s.succeeded(*q);
    }
    EXPECT_EQ(order, std::vector<std::uint32_t>({1, 3, 0, 2, 4}));
}

TEST(Scheduler, WorkerKeepsItsAffinity) {
    // Two detectors (affinity 10 and 20), three visits each, all independent; detector 20 quanta have
    // the higher priority, but a worker that ran detector 10 keeps taking detector 10 while there is one.
    std::vector<Node> nodes;
    for (int v = 0; v < 3; ++v) {
        nodes.push_back(node({}, 10, 1));
        nodes.push_back(node({}, 20, 2));
    }
    Scheduler s(nodes, 2);
    auto a = s.next(0);  // highest priority first: a detector-20 quantum
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 1u);
    s.succeeded(*a);
    // Worker 1 has no history: takes the best remaining (detector 20 again), then keeps detector 20.
    auto b = s.next(1);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, 3u);
    s.succeeded(*b);
    auto c = s.next(1);
    ASSERT_TRUE(c);
    EXPECT_EQ(*c, 5u);
    s.succeeded(*c);
    // Detector 20 is exhausted: worker 0 falls back to the best remaining (detector 10).
    auto d = s.next(0);
    ASSERT_TRUE(d);
    EXPECT_EQ(nodes[*d].affinity, 10u);
    s.succeeded(*d);
    // Two workers, two keys: each worker's history only matters once it has run something.
    std::vector<Node> mixed{node({}, 10, 1), node({}, 10, 0), node({}, 20, 9), node({}, 20, 8)};
    Scheduler m(mixed, 2);
    auto e = m.next(0);
    ASSERT_TRUE(e);
    EXPECT_EQ(*e, 2u);  // no history: highest priority
    m.succeeded(*e);
    auto f = m.next(1);
    ASSERT_TRUE(f);
    EXPECT_EQ(*f, 3u);  // no history: highest priority remaining
    m.succeeded(*f);
    auto g = m.next(0);  // worker 0's affinity 20 is exhausted: best remaining
    ASSERT_TRUE(g);
    EXPECT_EQ(*g, 0u);
    m.succeeded(*g);
    auto h = m.next(0);
    ASSERT_TRUE(h);
    EXPECT_EQ(*h, 1u);
}

TEST(Scheduler, AffinityBeatsPriority) {
    std::vector<Node> nodes{node({}, 7, 5), node({}, 7, 0), node({}, 8, 3)};
    Scheduler s(nodes, 1);
    auto a = s.next(0);
    ASSERT_TRUE(a);
    EXPECT_EQ(*a, 0u);
    s.succeeded(*a);
    auto b = s.next(0);
    ASSERT_TRUE(b);
    EXPECT_EQ(*b, 1u) << "same affinity as the worker's last quantum wins over a higher priority";
}

TEST(Scheduler, RejectsCyclesAndBadIndices) {
    EXPECT_THROW(Scheduler({node({1}), node({0})}, 1), LogicError);
    EXPECT_THROW(Scheduler({node({0})}, 1), LogicError);                       // self loop
    EXPECT_THROW(Scheduler({node({}), node({2}), node({3}), node({1})}, 1), LogicError);  // 3-cycle
    EXPECT_THROW(Scheduler({node({}), node({5})}, 1), LogicError);             // out of range
    EXPECT_THROW(Scheduler({node({})}, 0), LogicError);                        // no worker
    Scheduler s({node({}), node({0})}, 2);
    EXPECT_THROW(s.next(2), LogicError);
    EXPECT_THROW(s.next(-1), LogicError);
    EXPECT_THROW(s.succeeded(1), LogicError);  // not running
    EXPECT_THROW(s.failed(0), LogicError);     // not running yet
    EXPECT_THROW(s.state(9), LogicError);
    auto q = s.next(0);
    ASSERT_TRUE(q);
    s.succeeded(*q);
    EXPECT_THROW(s.succeeded(*q), LogicError);  // twice
}

TEST(Scheduler, RandomDagsAgainstBruteForce) {
    for (unsigned seed = 1; seed <= 300; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        std::mt19937 rng(seed);
        const std::size_t n = 1 + rng() % 200;
        const double doneFraction = (seed % 3 == 0) ? 0.2 : 0.0;
        std::vector<Node> nodes = randomDag(rng, n, doneFraction, seed % 2 == 0 ? 0.15 : 0.0);
        std::set<std::uint32_t> willFail;
        const double failP = (seed % 4 == 0) ? 0.0 : 0.05;
        for (std::uint32_t i = 0; i < n; ++i)
            if (std::uniform_real_distribution<double>(0, 1)(rng) < failP) willFail.insert(i);
        const int workers = 1 + int(rng() % 6);

        Scheduler s(nodes, workers);
        std::mt19937 simRng(seed * 7919u);
        SimResult r = simulate(s, nodes, workers, simRng, willFail);

        // Deterministic for the same call sequence.
        Scheduler again(nodes, workers);
        std::mt19937 simRng2(seed * 7919u);
        EXPECT_EQ(simulate(again, nodes, workers, simRng2, willFail).handedOut, r.handedOut);

        const std::set<std::uint32_t> blocked = bruteForceBlocked(nodes, r.failed);
        std::set<std::uint32_t> handed(r.handedOut.begin(), r.handedOut.end());
        std::size_t done = 0;
        for (std::uint32_t i = 0; i < n; ++i) {
            QuantumState expected = nodes[i].alreadyDone ? QuantumState::Done
                                    : r.failed.count(i)  ? QuantumState::Failed
                                    : blocked.count(i)   ? QuantumState::Blocked
                                                         : QuantumState::Succeeded;
            EXPECT_EQ(s.state(i), expected) << "quantum " << i;
            // Handed out exactly the quanta that are neither done nor blocked.
            EXPECT_EQ(handed.count(i) == 1, !nodes[i].alreadyDone && !blocked.count(i)) << "quantum " << i;
            done += nodes[i].alreadyDone;
        }
        for (std::uint32_t f : r.failed) EXPECT_TRUE(willFail.count(f));
        EXPECT_EQ(s.count(QuantumState::Failed), r.failed.size());
        EXPECT_EQ(s.count(QuantumState::Blocked), blocked.size());
        EXPECT_EQ(s.count(QuantumState::Done), done);
        EXPECT_EQ(s.count(QuantumState::Succeeded), n - done - r.failed.size() - blocked.size());
        EXPECT_EQ(s.count(QuantumState::Pending) + s.count(QuantumState::Ready) + s.count(QuantumState::Running), 0u);
        EXPECT_TRUE(s.finished());
    }
}

TEST(Scheduler, StateNames) {
    EXPECT_STREQ(quantumStateName(QuantumState::Blocked), "Blocked");
    EXPECT_STREQ(quantumStateName(QuantumState::Done), "Done");
    EXPECT_STREQ(quantumStateName(QuantumState::Pending), "Pending");
}
