#include <gtest/gtest.h>

#include "core/Communicator.h"

using namespace drp;

TEST(Communicator, ReductionsAgreeWithClosedForms) {
    Communicator comm = Communicator::world();
    int n = comm.size(), r = comm.rank();
    EXPECT_EQ(comm.allreduceSum(std::int64_t(r + 1)), std::int64_t(n) * (n + 1) / 2);
    EXPECT_DOUBLE_EQ(comm.allreduceMax(double(r)), double(n - 1));
    EXPECT_EQ(comm.allreduceMin(std::int64_t(r)), 0);
    auto v = comm.allreduceSum(std::vector<double>{1.0, double(r)});
    EXPECT_DOUBLE_EQ(v[0], n);
    EXPECT_DOUBLE_EQ(v[1], n * (n - 1) / 2.0);
}

TEST(Communicator, GatherAndBroadcastBytes) {
    Communicator comm = Communicator::world();
    std::string mine(std::size_t(comm.rank()), char('a' + comm.rank()));  // rank 0 sends nothing
    auto parts = comm.gather(mine, 0);
    if (comm.isRoot()) {
        ASSERT_EQ(int(parts.size()), comm.size());
        for (int i = 0; i < comm.size(); ++i) EXPECT_EQ(parts[std::size_t(i)], std::string(std::size_t(i), char('a' + i)));
    } else {
        EXPECT_TRUE(parts.empty());
    }
    auto all = comm.allgather(mine);
    ASSERT_EQ(int(all.size()), comm.size());
    EXPECT_EQ(all[std::size_t(comm.rank())], mine);
    EXPECT_EQ(comm.broadcast(comm.isRoot() ? std::string("from root") : std::string()), "from root");
    auto ints = comm.allgather(std::int64_t(10 * comm.rank()));
    for (int i = 0; i < comm.size(); ++i) EXPECT_EQ(ints[std::size_t(i)], 10 * i);
}

TEST(Communicator, SplitAndPointToPoint) {
    Communicator comm = Communicator::world();
    Communicator half = comm.split(comm.rank() % 2, comm.rank());
    EXPECT_EQ(half.size(), (comm.size() + 1 - comm.rank() % 2) / 2);
    EXPECT_EQ(half.rank(), comm.rank() / 2);
    if (comm.size() > 1) {
        if (comm.rank() == 1) comm.send("ping", 0, 7);
        if (comm.rank() == 0) {
            int from = -1, tag = -1;
            EXPECT_EQ(comm.recv(-1, -1, &from, &tag), "ping");
            EXPECT_EQ(from, 1);
            EXPECT_EQ(tag, 7);
        }
    }
    comm.barrier();
    EXPECT_TRUE(Communicator::serial().isSerial());
    EXPECT_EQ(Communicator::serial().allreduceSum(std::int64_t(5)), 5);
}
