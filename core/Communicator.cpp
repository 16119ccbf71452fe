#include "core/Communicator.h"

#include <mpi.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/Error.h"
#include "core/MpiNative.h"

namespace drp {
namespace {
void check(int rc, const char* what) {
    if (rc != MPI_SUCCESS) {
        char msg[MPI_MAX_ERROR_STRING];
        int len = 0;
        MPI_Error_string(rc, msg, &len);
        throw Error(std::string("MPI call ") + what + " failed: " + std::string(msg, std::size_t(len)));
    }
}
bool g_sessionOwnsMpi = false;
}  // namespace

MpiSession::MpiSession(int* argc, char*** argv) {
    int init = 0;
    MPI_Initialized(&init);
    if (!init) {
        int provided = 0;
        check(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
        g_sessionOwnsMpi = true;
    }
}

MpiSession::~MpiSession() {
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_sessionOwnsMpi && !fin) MPI_Finalize();
}

bool MpiSession::launchedByMpi() {
    if (const char* force = std::getenv("DRP_MPI")) {
        if (std::string(force) == "1") return true;
        if (std::string(force) == "0") return false;
    }
    for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS",
                            "HYDRA_CONTROL_FD", "MV2_COMM_WORLD_SIZE"})
        if (std::getenv(var)) return true;
    return false;
}

bool MpiSession::initialized() {
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

Communicator Communicator::world() {
    if (!MpiSession::initialized()) return serial();
    auto impl = std::make_shared<Impl>();
    impl->comm = MPI_COMM_WORLD;
    return Communicator(impl);
}

Communicator Communicator::serial() { return Communicator(nullptr); }

int Communicator::rank() const {
    if (!impl_) return 0;
    int r = 0;
    check(MPI_Comm_rank(impl_->comm, &r), "MPI_Comm_rank");
    return r;
}

int Communicator::size() const {
    if (!impl_) return 1;
    int s = 1;
    check(MPI_Comm_size(impl_->comm, &s), "MPI_Comm_size");
    return s;
}

void Communicator::barrier() const {
    if (impl_) check(MPI_Barrier(impl_->comm), "MPI_Barrier");
}

Communicator Communicator::split(int color, int key) const {
    if (!impl_) return serial();
    auto impl = std::make_shared<Impl>();
    check(MPI_Comm_split(impl_->comm, color, key, &impl->comm), "MPI_Comm_split");
    impl->owned = true;
    return Communicator(impl);
}

#define DRP_ALLREDUCE(T, MPITYPE, OP, NAME)                                                   \
    T Communicator::NAME(T v) const {                                                         \
        if (!impl_) return v;                                                                 \
        T out{};                                                                              \
        check(MPI_Allreduce(&v, &out, 1, MPITYPE, OP, impl_->comm), "MPI_Allreduce");         \
        return out;                                                                           \
    }
DRP_ALLREDUCE(double, MPI_DOUBLE, MPI_SUM, allreduceSum)
DRP_ALLREDUCE(std::int64_t, MPI_INT64_T, MPI_SUM, allreduceSum)
DRP_ALLREDUCE(double, MPI_DOUBLE, MPI_MAX, allreduceMax)
DRP_ALLREDUCE(std::int64_t, MPI_INT64_T, MPI_MAX, allreduceMax)
DRP_ALLREDUCE(std::int64_t, MPI_INT64_T, MPI_MIN, allreduceMin)
#undef DRP_ALLREDUCE

std::vector<double> Communicator::allreduceSum(const std::vector<double>& v) const {
    if (!impl_ || v.empty()) return v;
    std::vector<double> out(v.size());
    check(MPI_Allreduce(v.data(), out.data(), int(v.size()), MPI_DOUBLE, MPI_SUM, impl_->comm), "MPI_Allreduce");
    return out;
}

std::string Communicator::broadcast(const std::string& bytes, int root) const {
    if (!impl_) return bytes;
    std::int64_t n = std::int64_t(bytes.size());
    check(MPI_Bcast(&n, 1, MPI_INT64_T, root, impl_->comm), "MPI_Bcast");
    std::string out = rank() == root ? bytes : std::string(std::size_t(n), '\0');
    if (n > 0) check(MPI_Bcast(out.data(), int(n), MPI_BYTE, root, impl_->comm), "MPI_Bcast");
    return out;
}

std::vector<std::string> Communicator::gather(const std::string& bytes, int root) const {
    if (!impl_) return {bytes};
    int n = int(bytes.size());
    int sz = size();
    std::vector<int> counts(rank() == root ? std::size_t(sz) : 0);
    check(MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, impl_->comm), "MPI_Gather");
    std::vector<int> displs;
    std::string all;
    if (rank() == root) {
        displs.resize(std::size_t(sz));
        long total = 0;
        for (int i = 0; i < sz; ++i) {
            displs[std::size_t(i)] = int(total);
            total += counts[std::size_t(i)];
        }
        all.resize(std::size_t(total));
    }
    check(MPI_Gatherv(bytes.data(), n, MPI_BYTE, all.data(), counts.data(), displs.data(), MPI_BYTE, root,
                      impl_->comm),
          "MPI_Gatherv");
    std::vector<std::string> out;
    if (rank() == root) {
        for (int i = 0; i < sz; ++i) out.push_back(all.substr(std::size_t(displs[std::size_t(i)]), std::size_t(counts[std::size_t(i)])));
    }
    return out;
}

std::vector<std::string> Communicator::allgather(const std::string& bytes) const {
    auto parts = gather(bytes, 0);
    std::string packed;
    if (rank() == 0) {
        for (const auto& p : parts) {
            std::int64_t n = std::int64_t(p.size());
            packed.append(reinterpret_cast<const char*>(&n), sizeof n);
            packed += p;
        }
    }
    packed = broadcast(packed, 0);
    std::vector<std::string> out;
    std::size_t pos = 0;
    while (pos < packed.size()) {
        std::int64_t n = 0;
        std::memcpy(&n, packed.data() + pos, sizeof n);
        pos += sizeof n;
        out.push_back(packed.substr(pos, std::size_t(n)));
        pos += std::size_t(n);
    }
    return out;
}

std::vector<std::int64_t> Communicator::allgather(std::int64_t v) const {
    if (!impl_) return {v};
    std::vector<std::int64_t> out(static_cast<std::size_t>(size()));
    check(MPI_Allgather(&v, 1, MPI_INT64_T, out.data(), 1, MPI_INT64_T, impl_->comm), "MPI_Allgather");
    return out;
}

void Communicator::send(const std::string& bytes, int dest, int tag) const {
    if (!impl_) throw LogicError("send on a serial communicator");
    check(MPI_Send(bytes.data(), int(bytes.size()), MPI_BYTE, dest, tag, impl_->comm), "MPI_Send");
}

std::string Communicator::recv(int source, int tag, int* fromRank, int* gotTag) const {
    if (!impl_) throw LogicError("recv on a serial communicator");
    MPI_Status st;
    check(MPI_Probe(source < 0 ? MPI_ANY_SOURCE : source, tag < 0 ? MPI_ANY_TAG : tag, impl_->comm, &st), "MPI_Probe");
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::string out(std::size_t(n), '\0');
    check(MPI_Recv(out.data(), n, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, impl_->comm, MPI_STATUS_IGNORE), "MPI_Recv");
    if (fromRank) *fromRank = st.MPI_SOURCE;
    if (gotTag) *gotTag = st.MPI_TAG;
    return out;
}

bool Communicator::probe(int source, int tag, int* fromRank, int* gotTag) const {
    if (!impl_) throw LogicError("probe on a serial communicator");
    MPI_Status st;
    int flag = 0;
    check(MPI_Iprobe(source < 0 ? MPI_ANY_SOURCE : source, tag < 0 ? MPI_ANY_TAG : tag, impl_->comm, &flag, &st),
          "MPI_Iprobe");
    if (!flag) return false;
    if (fromRank) *fromRank = st.MPI_SOURCE;
    if (gotTag) *gotTag = st.MPI_TAG;
    return true;
}

std::optional<std::string> Communicator::tryRecv(int source, int tag, int* fromRank, int* gotTag) const {
    int from = 0, got = 0;
    if (!probe(source, tag, &from, &got)) return std::nullopt;
    // A later receive from the same (source, tag) gets the probed message: MPI keeps pairwise order.
    return recv(from, got, fromRank, gotTag);
}

}  // namespace drp
