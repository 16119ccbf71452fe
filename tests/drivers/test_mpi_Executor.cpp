// The MPI executor against the serial run of the same plan: random DAGs whose quanta compute a hash of
// their payload, some throwing, some sleeping unevenly; every rank agrees on the counts, rank 0's
// outcomes are identical to a serial run, failures block exactly their downstream quanta.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "core/Communicator.h"
#include "core/Error.h"
#include "core/Log.h"
#include "drivers/campaign/Executor.h"

using namespace drp;

namespace {

std::string fnv1a(const std::string& s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
}

/// What each quantum of a test plan does, decided by its payload: "i=<i> fail=<kind> sleep=<us>".
struct TestQuantum {
    int fail = 0;  // 0: succeed; 1: drp::NumericalError; 2: std::runtime_error; 3: throws an int
    int sleepMicros = 0;
};

std::string makePayload(std::uint32_t i, const TestQuantum& t) {
    return "i=" + std::to_string(i) + " fail=" + std::to_string(t.fail) + " sleep=" + std::to_string(t.sleepMicros);
}

std::atomic<int> g_calls{0};

std::string runTestQuantum(std::uint32_t index, const std::string& payload) {
    ++g_calls;
    std::istringstream in(payload);
    std::string a, b, c;
    in >> a >> b >> c;
    if (a != "i=" + std::to_string(index)) throw std::logic_error("payload of another quantum: " + payload);
    const int fail = std::stoi(b.substr(5)), sleep = std::stoi(c.substr(6));
    if (sleep > 0) std::this_thread::sleep_for(std::chrono::microseconds(sleep));
    DRP_LOG_DEBUG("test", "running " << index);
    switch (fail) {
        case 1: throw NumericalError("no convergence in quantum " + std::to_string(index));
        case 2: throw std::runtime_error("plain failure in quantum " + std::to_string(index));
        case 3: throw 42;
        default: break;
    }
    return fnv1a(payload);
}

struct TestPlan {
    ExecutionPlan plan;
    std::vector<TestQuantum> quanta;
};

TestPlan randomPlan(unsigned seed, std::size_t n, double failP, double doneP) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> u(0, 1);
    TestPlan tp;
    tp.quanta.resize(n);
    tp.plan.nodes.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        auto& node = tp.plan.nodes[i];
        if (i > 0) {
            const int k = int(rng() % 4);
            for (int j = 0; j < k; ++j) node.upstream.push_back(std::uint32_t(rng() % i));
        }
        node.affinity = std::uint32_t(rng() % 4);
        node.priority = double(rng() % 3);
        node.alreadyDone = u(rng) < doneP;
        auto& q = tp.quanta[i];
        if (u(rng) < failP) q.fail = 1 + int(rng() % 3);
        const double r = u(rng);
        q.sleepMicros = r < 0.6 ? 0 : r < 0.95 ? int(rng() % 2000) : 10000 + int(rng() % 20000);
    }
    auto quanta = tp.quanta;
    tp.plan.payload = [quanta](std::uint32_t i) { return makePayload(i, quanta.at(i)); };
    tp.plan.label = [](std::uint32_t i) { return "q" + std::to_string(i); };
    return tp;
}

ExecutorOptions quietOptions() {
    ExecutorOptions o;
    o.quiet = true;
    return o;
}

/// Quanta downstream of a failed one through quanta that are not already done.
std::set<std::uint32_t> downstreamOfFailures(const ExecutionPlan& plan, const std::set<std::uint32_t>& failed) {
    std::set<std::uint32_t> blocked;
    for (bool changed = true; changed;) {
        changed = false;
        for (std::uint32_t i = 0; i < plan.nodes.size(); ++i) {
            if (plan.nodes[i].alreadyDone || blocked.count(i) || failed.count(i)) continue;
            for (std::uint32_t up : plan.nodes[i].upstream)
                if (failed.count(up) || blocked.count(up)) {
                    blocked.insert(i);
                    changed = true;
                    break;
                }
        }
    }
    return blocked;
}

/// Every rank's counts are the same.
void expectSameCountsEverywhere(const Communicator& comm, const ExecutionReport& rep) {
    for (std::int64_t v : {std::int64_t(rep.succeeded), std::int64_t(rep.failed), std::int64_t(rep.blocked),
                           std::int64_t(rep.alreadyDone)}) {
        EXPECT_EQ(comm.allreduceMax(v), v);
        EXPECT_EQ(comm.allreduceMin(v), v);
    }
}

}  // namespace

TEST(Executor, RandomDagsMatchSerialRun) {
    Communicator comm = Communicator::world();
    std::set<int> ranksThatRan;
    for (unsigned seed = 1; seed <= 8; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        const std::size_t n = 20 + (seed * 37) % 150;
        TestPlan tp = randomPlan(seed, n, seed % 4 == 0 ? 0.0 : 0.06, seed % 3 == 0 ? 0.15 : 0.0);
        ExecutionPlan plan = comm.isRoot() ? tp.plan : ExecutionPlan{};  // other ranks need no plan
        g_calls = 0;
        ExecutionReport rep = executeQuanta(comm, plan, runTestQuantum, quietOptions());
        expectSameCountsEverywhere(comm, rep);
        const std::int64_t calls = comm.allreduceSum(std::int64_t(g_calls.load()));
        EXPECT_EQ(calls, std::int64_t(rep.succeeded + rep.failed)) << "each handed-out quantum ran exactly once";
        EXPECT_EQ(rep.succeeded + rep.failed + rep.blocked + rep.alreadyDone, n);
        if (!comm.isRoot()) {
            EXPECT_TRUE(rep.outcomes.empty());
            continue;
        }
        ASSERT_EQ(rep.outcomes.size(), n);
        ExecutionReport ser = executeQuanta(Communicator::serial(), tp.plan, runTestQuantum, quietOptions());
        ASSERT_EQ(ser.outcomes.size(), n);
        EXPECT_EQ(ser.succeeded, rep.succeeded);
        EXPECT_EQ(ser.failed, rep.failed);
        EXPECT_EQ(ser.blocked, rep.blocked);
        EXPECT_EQ(ser.alreadyDone, rep.alreadyDone);

        std::set<std::uint32_t> failed;
        for (std::uint32_t i = 0; i < n; ++i) {
            const QuantumOutcome& o = rep.outcomes[i];
            EXPECT_EQ(o.state, ser.outcomes[i].state) << "quantum " << i;
            EXPECT_EQ(o.result, ser.outcomes[i].result) << "quantum " << i;
            if (o.state != QuantumState::Blocked) {  // a blocked one names whichever upstream failure came first
                EXPECT_EQ(o.error, ser.outcomes[i].error) << "quantum " << i;
            }
            if (o.state == QuantumState::Succeeded) {
                EXPECT_EQ(o.result, fnv1a(makePayload(i, tp.quanta[i])));
                EXPECT_TRUE(o.error.empty());
                EXPECT_GE(o.rank, 0);
                EXPECT_LT(o.rank, comm.size());
                EXPECT_GE(o.seconds, tp.quanta[i].sleepMicros * 1e-6 * 0.99);
                ranksThatRan.insert(o.rank);
            }
            if (o.state == QuantumState::Failed) {
                failed.insert(i);
                EXPECT_NE(tp.quanta[i].fail, 0);
                EXPECT_GE(o.rank, 0);
                ranksThatRan.insert(o.rank);
                switch (tp.quanta[i].fail) {
                    case 1:
                        EXPECT_EQ(o.error, "NumericalError: no convergence in quantum " + std::to_string(i));
                        break;
                    case 2:
                        EXPECT_EQ(o.error, "std::runtime_error: plain failure in quantum " + std::to_string(i));
                        break;
                    default:
                        EXPECT_NE(o.error.find("UnknownException"), std::string::npos) << o.error;
                        break;
                }
            }
            if (o.state == QuantumState::Done) {
                EXPECT_TRUE(tp.plan.nodes[i].alreadyDone);
                EXPECT_EQ(o.rank, -1);
            }
            if (tp.quanta[i].fail != 0 && !tp.plan.nodes[i].alreadyDone) {
                EXPECT_TRUE(o.state == QuantumState::Failed || o.state == QuantumState::Blocked) << "quantum " << i;
            }
        }
        const std::set<std::uint32_t> expectBlocked = downstreamOfFailures(tp.plan, failed);
        std::set<std::uint32_t> blocked;
        for (std::uint32_t i = 0; i < n; ++i) {
            const QuantumOutcome& o = rep.outcomes[i];
            if (o.state != QuantumState::Blocked) continue;
            blocked.insert(i);
            EXPECT_EQ(o.rank, -1);
            // "upstream q<k> failed" where q<k> is a failed quantum upstream of i.
            ASSERT_EQ(o.error.rfind("upstream q", 0), 0u) << o.error;
            ASSERT_GT(o.error.size(), std::string("upstream q failed").size());
            const std::uint32_t k = std::uint32_t(std::stoul(o.error.substr(10)));
            EXPECT_EQ(o.error, "upstream q" + std::to_string(k) + " failed");
            EXPECT_TRUE(failed.count(k)) << o.error;
            EXPECT_TRUE(downstreamOfFailures(tp.plan, {k}).count(i)) << "quantum " << i << ": " << o.error;
        }
        EXPECT_EQ(blocked, expectBlocked);
        EXPECT_EQ(rep.ok(), failed.empty());
    }
    if (comm.isRoot() && comm.size() > 1) {
        EXPECT_GT(ranksThatRan.size(), 1u) << "with " << comm.size() << " ranks only one rank ran quanta";
    }
    comm.barrier();
}

TEST(Executor, SlowQuantumDoesNotStallTheOthers) {
    // One 400 ms quantum and 60 x 5 ms ones, all independent: with two or more workers the short ones
    // flow around the long one, so the run takes about max(400, 700 / workers) ms, not 700 ms.
    Communicator comm = Communicator::world();
    ExecutionPlan plan;
    std::vector<TestQuantum> quanta(61);
    quanta[0].sleepMicros = 400000;
    for (std::size_t i = 1; i < quanta.size(); ++i) quanta[i].sleepMicros = 5000;
    plan.nodes.resize(quanta.size());
    plan.nodes[0].priority = 10;  // handed out first
    plan.payload = [quanta](std::uint32_t i) { return makePayload(i, quanta.at(i)); };
    ExecutionReport rep = executeQuanta(comm, plan, runTestQuantum, quietOptions());
    expectSameCountsEverywhere(comm, rep);
    EXPECT_EQ(rep.succeeded, quanta.size());
    if (comm.isRoot()) {
        std::map<int, int> perRank;
        for (const auto& o : rep.outcomes) ++perRank[o.rank];
        if (comm.size() > 1) {
            EXPECT_GT(perRank.size(), 1u);
            EXPECT_LT(rep.wallSeconds, 0.6) << "the slow quantum stalled the run";
            // The rank that ran the slow quantum ran fewer quanta than the busiest other one.
            const int slowRank = rep.outcomes[0].rank;
            int busiestOther = 0;
            for (auto [r, c] : perRank)
                if (r != slowRank) busiestOther = std::max(busiestOther, c);
            EXPECT_LT(perRank[slowRank], busiestOther);
        }
        // Default label is "quantum <i>".
        EXPECT_EQ(rep.outcomes[0].error, "");
    }
    comm.barrier();
}

TEST(Executor, HeartbeatAndLogContext) {
    Communicator comm = Communicator::world();
    std::ostringstream captured;
    Log::setStream(&captured);
    const LogLevel before = Log::level();
    Log::setLevel(LogLevel::DEBUG);
    ExecutionPlan plan;
    std::vector<TestQuantum> quanta(3);
    quanta[1].sleepMicros = 150000;  // 7 heartbeat periods
    plan.nodes.resize(quanta.size());
    plan.payload = [quanta](std::uint32_t i) { return makePayload(i, quanta.at(i)); };
    plan.label = [](std::uint32_t i) { return "task=heart quantum=" + std::to_string(i); };
    ExecutorOptions o = quietOptions();
    o.heartbeatSeconds = 0.02;
    ExecutionReport rep = executeQuanta(comm, plan, runTestQuantum, o);
    Log::setStream(nullptr);
    Log::setLevel(before);
    expectSameCountsEverywhere(comm, rep);
    const std::string text = captured.str();
    // The rank that ran quantum 1 logged heartbeats carrying its label as the context.
    const std::int64_t beats = [&] {
        std::int64_t c = 0;
        for (std::size_t p = 0; (p = text.find("still running task=heart quantum=1 for ", p)) != std::string::npos; ++p) ++c;
        return c;
    }();
    const std::int64_t total = comm.allreduceSum(beats);
    EXPECT_GE(total, 3) << "expected several heartbeats for a 150 ms quantum with a 20 ms period";
    EXPECT_LE(total, 8);
    if (beats > 0) {
        EXPECT_NE(text.find("[task=heart quantum=1] executor: still running task=heart quantum=1 for 0.0 min"),
                  std::string::npos)
            << text;
    }
    // The quantum's own log lines carry its label (quantum 0 and 2 never sleep: no heartbeat for them).
    EXPECT_EQ(text.find("still running task=heart quantum=0"), std::string::npos);
    std::int64_t contexts = 0;
    for (int i = 0; i < 3; ++i)
        contexts += text.find("[task=heart quantum=" + std::to_string(i) + "] test: running " + std::to_string(i)) !=
                    std::string::npos;
    EXPECT_EQ(comm.allreduceSum(contexts), 3) << text;
    comm.barrier();
}

TEST(Executor, ProgressLinesOnRankZero) {
    Communicator comm = Communicator::world();
    std::ostringstream captured;
    Log::setStream(&captured);
    TestPlan tp = randomPlan(99, 40, 0.1, 0.1);
    ExecutorOptions o;
    o.progressBar = false;
    o.progressIntervalSeconds = 0.005;
    ExecutionReport rep = executeQuanta(comm, comm.isRoot() ? tp.plan : ExecutionPlan{}, runTestQuantum, o);
    Log::setStream(nullptr);
    const std::string text = captured.str();
    if (comm.isRoot()) {
        EXPECT_NE(text.find("executor: progress: "), std::string::npos) << text;
        const std::string total = "/" + std::to_string(tp.plan.nodes.size()) + " done, ";
        EXPECT_NE(text.find(total), std::string::npos) << text;
        EXPECT_NE(text.find("quanta/s, ETA"), std::string::npos) << text;
        const std::string fin = "executor: finished: " + std::to_string(rep.succeeded + rep.alreadyDone) + total +
                                std::to_string(rep.failed) + " failed, " + std::to_string(rep.blocked) + " blocked";
        EXPECT_NE(text.find(fin), std::string::npos) << text;
    } else {
        EXPECT_EQ(text.find("progress:"), std::string::npos);
    }
    comm.barrier();
}

TEST(Executor, EmptyPlanAndAllDone) {
    Communicator comm = Communicator::world();
    ExecutionReport rep = executeQuanta(comm, ExecutionPlan{}, runTestQuantum, quietOptions());
    expectSameCountsEverywhere(comm, rep);
    EXPECT_EQ(rep.succeeded + rep.failed + rep.blocked + rep.alreadyDone, 0u);
    EXPECT_TRUE(rep.ok());
    ExecutionPlan done;
    done.nodes.resize(5);
    for (auto& n : done.nodes) n.alreadyDone = true;
    g_calls = 0;
    rep = executeQuanta(comm, done, runTestQuantum, quietOptions());
    expectSameCountsEverywhere(comm, rep);
    EXPECT_EQ(rep.alreadyDone, 5u);
    EXPECT_EQ(comm.allreduceSum(std::int64_t(g_calls.load())), 0);
    comm.barrier();
}

TEST(Executor, BadGraphThrowsOnEveryRank) {
    Communicator comm = Communicator::world();
    ExecutionPlan plan;
    plan.nodes.resize(2);
    plan.nodes[0].upstream = {1};
    plan.nodes[1].upstream = {0};
    EXPECT_THROW(executeQuanta(comm, plan, runTestQuantum, quietOptions()), LogicError);
    ExecutorOptions bad = quietOptions();
    bad.heartbeatSeconds = 0;
    EXPECT_THROW(executeQuanta(comm, ExecutionPlan{}, runTestQuantum, bad), ConfigError);
    // The communicator is still usable afterwards.
    ExecutionReport rep = executeQuanta(comm, ExecutionPlan{}, runTestQuantum, quietOptions());
    expectSameCountsEverywhere(comm, rep);
    comm.barrier();
}

TEST(Executor, PayloadThatThrowsFailsItsQuantum) {
    Communicator comm = Communicator::world();
    ExecutionPlan plan;
    plan.nodes.resize(3);
    plan.nodes[2].upstream = {1};
    plan.payload = [](std::uint32_t i) -> std::string {
        if (i == 1) throw NotFoundError("no raw for quantum 1");
        return makePayload(i, TestQuantum{});
    };
    ExecutionReport rep = executeQuanta(comm, plan, runTestQuantum, quietOptions());
    expectSameCountsEverywhere(comm, rep);
    EXPECT_EQ(rep.succeeded, 1u);
    EXPECT_EQ(rep.failed, 1u);
    EXPECT_EQ(rep.blocked, 1u);
    if (comm.isRoot()) {
        EXPECT_EQ(rep.outcomes[1].error, "NotFoundError: no raw for quantum 1");
        EXPECT_EQ(rep.outcomes[2].error, "upstream quantum 1 failed");
    }
    comm.barrier();
}
