// Communicator: the engine's only view of MPI. A small value type (shared handle) over an MPI
// communicator; drivers create it, stages never see it. Only core/Communicator.cpp and
// core/MpiNative.h include mpi.h.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace drp {

/// RAII for MPI_Init/MPI_Finalize. Create one in main() of an MPI program.
class MpiSession {
public:
    MpiSession(int* argc, char*** argv);
    ~MpiSession();
    MpiSession(const MpiSession&) = delete;
    MpiSession& operator=(const MpiSession&) = delete;
    static bool initialized();
    /// True when this process was started by an MPI launcher (mpirun/mpiexec of Open MPI, MPICH or Intel MPI,
    /// or srun with PMI/PMIx), or when DRP_MPI=1 asks for MPI anyway; DRP_MPI=0 says no. A process started
    /// on its own is one rank: the CLI then skips MPI_Init (0.5-3 s of start-up for a singleton) and runs
    /// with a serial communicator.
    static bool launchedByMpi();
};

class Communicator {
public:
    /// MPI_COMM_WORLD if MPI is initialised, otherwise a one-rank serial communicator.
    static Communicator world();
    /// A one-rank communicator that needs no MPI at all.
    static Communicator serial();

    int rank() const;
    int size() const;
    bool isRoot() const { return rank() == 0; }
    bool isSerial() const { return !impl_; }

    void barrier() const;
    /// Ranks with the same colour form a new communicator, ordered by key.
    Communicator split(int color, int key) const;

    double allreduceSum(double v) const;
    std::int64_t allreduceSum(std::int64_t v) const;
    std::vector<double> allreduceSum(const std::vector<double>& v) const;
    double allreduceMax(double v) const;
    std::int64_t allreduceMax(std::int64_t v) const;
    std::int64_t allreduceMin(std::int64_t v) const;

    /// Broadcast bytes from root; every rank returns root's bytes.
    std::string broadcast(const std::string& bytes, int root = 0) const;
    /// Gather every rank's bytes on root (index = rank); other ranks get an empty vector.
    std::vector<std::string> gather(const std::string& bytes, int root = 0) const;
    /// Every rank gets every rank's bytes.
    std::vector<std::string> allgather(const std::string& bytes) const;
    std::vector<std::int64_t> allgather(std::int64_t v) const;

    /// Point-to-point messages of bytes (for schedulers).
    void send(const std::string& bytes, int dest, int tag) const;
    /// Receive from `source` (-1: any) with `tag` (-1: any); sets *fromRank and *gotTag when given.
    std::string recv(int source, int tag, int* fromRank = nullptr, int* gotTag = nullptr) const;
    /// Non-blocking: is a message from `source` (-1: any) with `tag` (-1: any) waiting? Sets *fromRank
    /// and *gotTag when given and a message is waiting. Lets a polling loop sleep between probes
    /// instead of spinning inside a blocking receive (Open MPI busy-polls there).
    bool probe(int source, int tag, int* fromRank = nullptr, int* gotTag = nullptr) const;
    /// Non-blocking receive: the waiting message's bytes, or nothing if none is waiting.
    std::optional<std::string> tryRecv(int source, int tag, int* fromRank = nullptr, int* gotTag = nullptr) const;

    struct Impl;
    const std::shared_ptr<Impl>& impl() const { return impl_; }

private:
    explicit Communicator(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
    std::shared_ptr<Impl> impl_;  // null: serial
};

}  // namespace drp
