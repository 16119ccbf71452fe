#include <gtest/gtest.h>

#include <random>

#include "core/Box.h"

using namespace drp;

TEST(Box2I, IntersectionAndIncludeMatchBruteForce) {
    std::mt19937 rng(7);
    std::uniform_int_distribution<int> pos(-20, 20), size(0, 15);
    for (int trial = 0; trial < 500; ++trial) {
        Box2I a({pos(rng), pos(rng)}, size(rng), size(rng));
        Box2I b({pos(rng), pos(rng)}, size(rng), size(rng));
        Box2I inter = a.intersection(b), uni = a.include(b);
        for (int y = -25; y < 40; ++y) {
            for (int x = -25; x < 40; ++x) {
                bool inA = a.contains(Point2I{x, y}), inB = b.contains(Point2I{x, y});
                ASSERT_EQ(inter.contains(Point2I{x, y}), inA && inB);
                if (inA || inB) {
                    ASSERT_TRUE(uni.contains(Point2I{x, y}));
                }
            }
        }
        EXPECT_TRUE(uni.contains(a));
        EXPECT_TRUE(uni.contains(b));
        EXPECT_EQ(a.overlaps(b), !inter.empty());
    }
}

TEST(Box2I, GrowShiftAndPixelBoxes) {
    Box2I b({2, 3}, 4, 5);
    EXPECT_EQ(b.grow(2), Box2I({0, 1}, 8, 9));
    EXPECT_TRUE(b.grow(-3).empty());
    EXPECT_EQ(b.shift({1, -1}), Box2I({3, 2}, 4, 5));
    Box2D d(b);
    EXPECT_DOUBLE_EQ(d.minX(), 1.5);
    EXPECT_DOUBLE_EQ(d.maxY(), 7.5);
    EXPECT_EQ(d.pixelsInside(), b);
    EXPECT_EQ(b.area(), 20);
}
