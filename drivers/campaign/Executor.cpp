#include "drivers/campaign/Executor.h"

#include <cxxabi.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <typeinfo>

#include "core/Error.h"
#include "core/Log.h"

namespace drp {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kComponent = "executor";

// Message tags. A worker's first message on kTagReport is empty ("ready"); later ones carry the result
// of the quantum it just ran and ask for the next one.
constexpr int kTagReport = 7101;  // worker -> root
constexpr int kTagWork = 7102;    // root -> worker: one quantum
constexpr int kTagStop = 7103;    // root -> worker: the run is over (final counts, or the setup error)

/// How long rank 0's main thread sleeps between probes when nothing happened.
constexpr auto kRootPoll = std::chrono::microseconds(150);

double secondsSince(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// --- byte encoding of the messages -------------------------------------------------------------

class Writer {
public:
    Writer& u32(std::uint32_t v) { return raw(&v, sizeof v); }
    Writer& u64(std::uint64_t v) { return raw(&v, sizeof v); }
    Writer& f64(double v) { return raw(&v, sizeof v); }
    Writer& str(const std::string& s) {
        u64(s.size());
        buf_ += s;
        return *this;
    }
    std::string take() { return std::move(buf_); }

private:
    Writer& raw(const void* p, std::size_t n) {
        buf_.append(static_cast<const char*>(p), n);
        return *this;
    }
    std::string buf_;
};

class Reader {
public:
    explicit Reader(const std::string& s) : s_(s) {}
    std::uint32_t u32() { return get<std::uint32_t>(); }
    std::uint64_t u64() { return get<std::uint64_t>(); }
    double f64() { return get<double>(); }
    std::string str() {
        std::uint64_t n = u64();
        need(n);
        std::string out = s_.substr(pos_, std::size_t(n));
        pos_ += std::size_t(n);
        return out;
    }

private:
    template <class T>
    T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, s_.data() + pos_, sizeof v);
        pos_ += sizeof v;
        return v;
    }
    void need(std::uint64_t n) const {
        if (n > s_.size() - pos_) throw LogicError("executor: truncated message");
    }
    const std::string& s_;
    std::size_t pos_ = 0;
};

struct Job {
    std::uint32_t index = 0;
    std::string label;
    std::string payload;
};

struct JobResult {
    std::uint32_t index = 0;
    bool ok = false;
    double seconds = 0;
    std::string error;
    std::string result;
    int rank = -1;
};

std::string encodeJob(const Job& j) { return Writer().u32(j.index).str(j.label).str(j.payload).take(); }
Job decodeJob(const std::string& bytes) {
    Reader r(bytes);
    Job j;
    j.index = r.u32();
    j.label = r.str();
    j.payload = r.str();
    return j;
}
std::string encodeResult(const JobResult& x) {
    return Writer().u32(x.index).u32(x.ok ? 1 : 0).f64(x.seconds).str(x.error).str(x.result).take();
}
JobResult decodeResult(const std::string& bytes, int rank) {
    Reader r(bytes);
    JobResult x;
    x.index = r.u32();
    x.ok = r.u32() != 0;
    x.seconds = r.f64();
    x.error = r.str();
    x.result = r.str();
    x.rank = rank;
    return x;
}
std::string encodeStop(const ExecutionReport& rep) {
    return Writer().u32(1).u64(rep.succeeded).u64(rep.failed).u64(rep.blocked).u64(rep.alreadyDone).f64(rep.wallSeconds).take();
}
std::string encodeStopError(const std::string& message) { return Writer().u32(0).str(message).take(); }

// --- running one quantum -------------------------------------------------------------------------

std::string demangle(const char* name) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status), std::free);
    return status == 0 && out ? std::string(out.get()) : std::string(name);
}

/// "Kind: message" for the exception being handled: the drp::Error kind, else the C++ type name.
std::string describeCurrentException() {
    try {
        throw;
    } catch (const Error& e) {
        return std::string(e.kind()) + ": " + e.what();
    } catch (const std::exception& e) {
        return demangle(typeid(e).name()) + ": " + e.what();
    } catch (...) {
        return "UnknownException: something that is not a std::exception was thrown";
    }
}

/// Logs "still running <label> for N min" while one quantum runs longer than the period, then again
/// every period. Its own thread, so a quantum never waits for it (begin/end only take a mutex).
class Heartbeat {
public:
    explicit Heartbeat(double periodSeconds)
        : period_(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(periodSeconds))),
          thread_([this] { loop(); }) {}
    ~Heartbeat() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    Heartbeat(const Heartbeat&) = delete;
    Heartbeat& operator=(const Heartbeat&) = delete;

    void begin(const std::string& label) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            label_ = label;
            start_ = Clock::now();
            running_ = true;
            ++generation_;
        }
        cv_.notify_all();
    }
    void end() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            running_ = false;
        }
        cv_.notify_all();
    }

private:
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        while (!stop_) {
            cv_.wait(lock, [this] { return stop_ || running_; });
            if (stop_) break;
            const std::uint64_t gen = generation_;
            const Clock::time_point start = start_;
            const auto over = [&] { return stop_ || !running_ || generation_ != gen; };
            for (long k = 1;; ++k) {
                if (cv_.wait_until(lock, start + k * period_, over)) break;
                const std::string label = label_;
                const double minutes = secondsSince(start) / 60.0;
                lock.unlock();
                char text[32];
                std::snprintf(text, sizeof text, minutes < 10 ? "%.1f" : "%.0f", minutes);
                {
                    LogContext ctx(label);
                    DRP_LOG_INFO(kComponent, "still running " << label << " for " << text << " min");
                }
                lock.lock();
            }
        }
    }

    const Clock::duration period_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stop_ = false;
    bool running_ = false;
    std::uint64_t generation_ = 0;
    std::string label_;
    Clock::time_point start_;
    std::thread thread_;  // last: starts after the members above exist
};

JobResult runOne(const QuantumFunction& run, const Job& job, Heartbeat& heartbeat, int rank) {
    JobResult r;
    r.index = job.index;
    r.rank = rank;
    LogContext ctx(job.label);
    heartbeat.begin(job.label);
    const auto t0 = Clock::now();
    try {
        r.result = run(job.index, job.payload);
        r.ok = true;
    } catch (...) {
        r.error = describeCurrentException();
    }
    r.seconds = secondsSince(t0);
    heartbeat.end();
    return r;
}

/// Rank 0's worker: a thread that runs the quanta handed to it and makes no MPI call.
class LocalWorker {
public:
    LocalWorker(const QuantumFunction& run, Heartbeat& heartbeat)
        : run_(run), heartbeat_(heartbeat), thread_([this] { loop(); }) {}
    ~LocalWorker() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stop_ = true;
        }
        toWorker_.notify_all();
        thread_.join();
    }
    LocalWorker(const LocalWorker&) = delete;
    LocalWorker& operator=(const LocalWorker&) = delete;

    void submit(Job job) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            job_ = std::move(job);
        }
        toWorker_.notify_one();
    }
    std::optional<JobResult> take() {
        std::lock_guard<std::mutex> lock(mutex_);
        std::optional<JobResult> r = std::move(result_);
        result_.reset();
        return r;
    }
    /// Waits up to `d` for a result (returns at once if one is there).
    void waitFor(Clock::duration d) {
        std::unique_lock<std::mutex> lock(mutex_);
        toMain_.wait_for(lock, d, [this] { return result_.has_value(); });
    }

private:
    void loop() {
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            toWorker_.wait(lock, [this] { return stop_ || job_.has_value(); });
            if (!job_) return;  // stop, nothing left
            Job job = std::move(*job_);
            job_.reset();
            lock.unlock();
            JobResult r = runOne(run_, job, heartbeat_, 0);
            lock.lock();
            result_ = std::move(r);
            toMain_.notify_one();
        }
    }

    const QuantumFunction& run_;
    Heartbeat& heartbeat_;
    std::mutex mutex_;
    std::condition_variable toWorker_, toMain_;
    std::optional<Job> job_;
    std::optional<JobResult> result_;
    bool stop_ = false;
    std::thread thread_;  // last
};

// --- progress ------------------------------------------------------------------------------------

std::string formatDuration(double s) {
    if (!(s >= 0) || s > 1e8) return "?";
    long t = long(s + 0.5);
    char buf[48];
    if (t >= 3600)
        std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else if (t >= 60)
        std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
    else
        std::snprintf(buf, sizeof buf, "%lds", t);
    return buf;
}

class Progress {
public:
    Progress(const ExecutorOptions& o, std::size_t total)
        : options_(o), total_(total), start_(Clock::now()), lastLine_(start_) {
        bar_ = !o.quiet && o.progressBar && isatty(fileno(stderr));
    }

    void update(const Scheduler& s) {
        if (options_.quiet) return;
        const auto now = Clock::now();
        if (bar_) {
            if (now - lastLine_ < std::chrono::milliseconds(250)) return;
            lastLine_ = now;
            drawBar(s);
        } else if (options_.progressIntervalSeconds > 0 &&
                   std::chrono::duration<double>(now - lastLine_).count() >= options_.progressIntervalSeconds) {
            lastLine_ = now;
            DRP_LOG_INFO(kComponent, "progress: " << summary(s));
        }
    }
    /// Time until update() may print again (a bound for sleeping).
    Clock::duration untilNext() const {
        if (options_.quiet) return std::chrono::seconds(1);
        if (bar_) return std::chrono::milliseconds(250);
        if (options_.progressIntervalSeconds <= 0) return std::chrono::seconds(1);
        auto due = lastLine_ + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(options_.progressIntervalSeconds));
        auto now = Clock::now();
        return due > now ? due - now : Clock::duration::zero();
    }
    void finish(const Scheduler& s) {
        if (options_.quiet) return;
        if (bar_) {
            drawBar(s);
            std::fputc('\n', stderr);
            std::fflush(stderr);
        } else {
            DRP_LOG_INFO(kComponent, "finished: " << summary(s) << " in " << formatDuration(secondsSince(start_)));
        }
    }

private:
    std::string summary(const Scheduler& s) const {
        const std::size_t done = s.count(QuantumState::Succeeded) + s.count(QuantumState::Done);
        const std::size_t failed = s.count(QuantumState::Failed), blocked = s.count(QuantumState::Blocked);
        const std::size_t executed = s.count(QuantumState::Succeeded) + failed;
        const std::size_t left =
            s.count(QuantumState::Pending) + s.count(QuantumState::Ready) + s.count(QuantumState::Running);
        const double elapsed = secondsSince(start_);
        const double rate = elapsed > 0 ? double(executed) / elapsed : 0;
        char buf[256];
        std::snprintf(buf, sizeof buf, "%zu/%zu done, %zu failed, %zu blocked, %.1f quanta/s, ETA %s", done, total_,
                      failed, blocked, rate,
                      left == 0 ? "0s" : rate > 0 ? formatDuration(double(left) / rate).c_str() : "?");
        return buf;
    }
    void drawBar(const Scheduler& s) {
        const std::size_t finished = total_ - s.count(QuantumState::Pending) - s.count(QuantumState::Ready) -
                                     s.count(QuantumState::Running);
        constexpr int kWidth = 30;
        const int filled = total_ ? int(double(finished) / double(total_) * kWidth) : kWidth;
        std::string bar(std::size_t(filled), '#');
        bar.resize(kWidth, '.');
        std::fprintf(stderr, "\r[%s] %s\x1b[K", bar.c_str(), summary(s).c_str());
        std::fflush(stderr);
    }

    const ExecutorOptions& options_;
    std::size_t total_;
    Clock::time_point start_, lastLine_;
    bool bar_ = false;
};

// --- rank 0 ----------------------------------------------------------------------------------------

std::string safeLabel(const ExecutionPlan& plan, std::uint32_t i) {
    if (plan.label) {
        try {
            return plan.label(i);
        } catch (...) {
        }
    }
    return "quantum " + std::to_string(i);
}

ExecutionReport runRoot(const Communicator& comm, int size, const ExecutionPlan& plan, const QuantumFunction& run,
                        const ExecutorOptions& options, Heartbeat& heartbeat) {
    const auto t0 = Clock::now();
    const bool mpi = size > 1;
    std::optional<Scheduler> sched;
    std::string setupError;
    try {
        sched.emplace(plan.nodes, size);
    } catch (const Error& e) {
        setupError = std::string(e.kind()) + ": " + e.what();
    }
    // Every worker announces itself before it listens; answer each announcement once.
    std::vector<char> idle(std::size_t(size), 0);
    idle[0] = 1;
    int announced = 1;
    const auto receiveReports = [&](const std::function<void(const JobResult&)>& onResult) {
        bool any = false;
        int from = 0;
        while (auto msg = comm.tryRecv(-1, kTagReport, &from)) {
            any = true;
            if (!msg->empty()) onResult(decodeResult(*msg, from));
            else ++announced;
            idle[std::size_t(from)] = 1;
        }
        return any;
    };
    if (!sched) {
        if (mpi) {
            while (announced < size)
                if (!receiveReports([](const JobResult&) {})) std::this_thread::sleep_for(kRootPoll);
            for (int w = 1; w < size; ++w) comm.send(encodeStopError(setupError), w, kTagStop);
        }
        throw LogicError("executeQuanta: " + setupError);
    }

    ExecutionReport rep;
    const std::size_t n = sched->size();
    rep.outcomes.resize(n);
    for (std::uint32_t i = 0; i < n; ++i)
        if (sched->state(i) == QuantumState::Done) rep.outcomes[i].state = QuantumState::Done;

    const auto record = [&](const JobResult& r) {
        QuantumOutcome& o = rep.outcomes.at(r.index);
        o.seconds = r.seconds;
        o.rank = r.rank;
        if (r.ok) {
            o.state = QuantumState::Succeeded;
            o.result = r.result;
            sched->succeeded(r.index);
            return;
        }
        o.state = QuantumState::Failed;
        o.error = r.error;
        const std::string label = safeLabel(plan, r.index);
        const std::vector<std::uint32_t> blocked = sched->failed(r.index);
        DRP_LOG_WARN(kComponent, label << " failed on rank " << r.rank << ": " << r.error
                                       << (blocked.empty() ? std::string()
                                                           : "; blocking " + std::to_string(blocked.size()) +
                                                                 " downstream quanta"));
        for (std::uint32_t b : blocked) {
            rep.outcomes[b].state = QuantumState::Blocked;
            rep.outcomes[b].error = "upstream " + label + " failed";
        }
    };

    Progress progress(options, n);
    {
        LocalWorker local(run, heartbeat);
        for (;;) {
            bool progressed = mpi && receiveReports(record);
            if (auto r = local.take()) {
                record(*r);
                idle[0] = 1;
                progressed = true;
            }
            for (int w = 0; w < size && sched->count(QuantumState::Ready) > 0; ++w) {
                if (!idle[std::size_t(w)]) continue;
                const auto q = sched->next(w);
                if (!q) break;
                Job job;
                job.index = *q;
                job.label = safeLabel(plan, *q);
                progressed = true;
                try {
                    if (plan.payload) job.payload = plan.payload(*q);
                } catch (...) {  // it cannot run anywhere: a failure of this quantum; w stays idle
                    JobResult r;
                    r.index = *q;
                    r.rank = 0;
                    r.error = describeCurrentException();
                    record(r);
                    --w;
                    continue;
                }
                idle[std::size_t(w)] = 0;
                if (w == 0)
                    local.submit(std::move(job));
                else
                    comm.send(encodeJob(job), w, kTagWork);
            }
            if (sched->finished() && announced == size && idle[0]) {
                bool all = true;
                for (char c : idle) all = all && c;
                if (all) break;
            }
            progress.update(*sched);
            if (!progressed) local.waitFor(mpi ? Clock::duration(kRootPoll) : progress.untilNext());
        }
    }
    rep.succeeded = sched->count(QuantumState::Succeeded);
    rep.failed = sched->count(QuantumState::Failed);
    rep.blocked = sched->count(QuantumState::Blocked);
    rep.alreadyDone = sched->count(QuantumState::Done);
    rep.wallSeconds = secondsSince(t0);
    progress.finish(*sched);
    if (mpi)
        for (int w = 1; w < size; ++w) comm.send(encodeStop(rep), w, kTagStop);
    return rep;
}

// --- ranks > 0 -------------------------------------------------------------------------------------

/// Waits for rank 0's next message without spinning in a blocking receive (Open MPI busy-polls there,
/// which would steal the core of another rank on an oversubscribed node): probes with yields for the
/// first 20 us, then every ~50 us for 5 ms (the answer to a report usually comes within a few hundred
/// microseconds), then backs off to one probe per millisecond while rank 0 has nothing ready.
std::string awaitRoot(const Communicator& comm, int* tag) {
    const auto t0 = Clock::now();
    auto sleep = std::chrono::microseconds(50);
    for (;;) {
        if (comm.probe(0, -1, nullptr, tag)) return comm.recv(0, *tag);
        const auto waited = Clock::now() - t0;
        if (waited < std::chrono::microseconds(20)) {
            std::this_thread::yield();
            continue;
        }
        if (waited > std::chrono::milliseconds(5)) sleep = std::min(sleep * 2, std::chrono::microseconds(1000));
        std::this_thread::sleep_for(sleep);
    }
}

ExecutionReport runWorker(const Communicator& comm, int rank, const QuantumFunction& run, Heartbeat& heartbeat) {
    comm.send(std::string(), 0, kTagReport);
    for (;;) {
        int tag = 0;
        const std::string msg = awaitRoot(comm, &tag);
        if (tag == kTagWork) {
            const JobResult r = runOne(run, decodeJob(msg), heartbeat, rank);
            comm.send(encodeResult(r), 0, kTagReport);
            continue;
        }
        if (tag != kTagStop) throw LogicError("executeQuanta: unexpected message tag " + std::to_string(tag));
        Reader in(msg);
        if (in.u32() == 0) throw LogicError("executeQuanta: " + in.str());
        ExecutionReport rep;
        rep.succeeded = std::size_t(in.u64());
        rep.failed = std::size_t(in.u64());
        rep.blocked = std::size_t(in.u64());
        rep.alreadyDone = std::size_t(in.u64());
        rep.wallSeconds = in.f64();
        return rep;
    }
}

}  // namespace

ExecutionReport executeQuanta(const Communicator& comm, const ExecutionPlan& plan, const QuantumFunction& run,
                              const ExecutorOptions& options) {
    if (!(options.heartbeatSeconds > 0))
        throw ConfigError("executeQuanta: heartbeatSeconds must be > 0, got " + std::to_string(options.heartbeatSeconds));
    if (!run) throw LogicError("executeQuanta: no quantum function");
    const int size = comm.size();
    const int rank = comm.rank();
    Heartbeat heartbeat(options.heartbeatSeconds);
    return rank == 0 ? runRoot(comm, size, plan, run, options, heartbeat) : runWorker(comm, rank, run, heartbeat);
}

}  // namespace drp
