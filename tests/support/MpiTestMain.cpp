// main() for MPI test binaries: owns MPI_Init/Finalize, silences the default printer on ranks other
// than 0 but prints their failures with the rank, and max-reduces the result over ranks.
#include <gtest/gtest.h>
#include <mpi.h>

#include <iostream>

namespace {
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
public:
    explicit RankFailurePrinter(int rank) : rank_(rank) {}
    void OnTestPartResult(const ::testing::TestPartResult& r) override {
        if (r.failed())
            std::cerr << "[rank " << rank_ << "] FAILURE " << (r.file_name() ? r.file_name() : "?") << ":"
                      << r.line_number() << "\n"
                      << r.summary() << std::endl;
    }

private:
    int rank_;
};
}  // namespace

int main(int argc, char** argv) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    ::testing::InitGoogleTest(&argc, argv);
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    if (rank != 0) {
        delete listeners.Release(listeners.default_result_printer());
        listeners.Append(new RankFailurePrinter(rank));
    }
    int rc = RUN_ALL_TESTS();
    int global = 0;
    MPI_Allreduce(&rc, &global, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Finalize();
    return global;
}
