#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "core/Error.h"
#include "core/HugePages.h"
#include "core/MaskedImage.h"

using namespace drp;

TEST(Image, SubImageIsAViewWithoutCopy) {
    ImageF img(Box2I({10, 20}, 50, 40), 1.0f);
    ImageF sub = img.subImage(Box2I({15, 25}, 10, 5));
    EXPECT_TRUE(sub.sharesPixelsWith(img));
    EXPECT_EQ(sub.xy0(), (Point2I{15, 25}));
    sub(0, 0) = 7.0f;
    EXPECT_EQ(img.atParent({15, 25}), 7.0f);
    EXPECT_EQ(img(5, 5), 7.0f);
    EXPECT_THROW(img.subImage(Box2I({0, 0}, 10, 10)), LogicError);
}

TEST(Image, CloneIsIndependent) {
    ImageD img(8, 6, 2.0);
    ImageD c = img.clone();
    c(1, 1) = 3.0;
    EXPECT_EQ(img(1, 1), 2.0);
    EXPECT_FALSE(c.sharesPixelsWith(img));
}

TEST(Image, ArithmeticOnViews) {
    ImageI img(6, 6, 1);
    auto sub = img.subImage(Box2I({2, 2}, 2, 2));
    sub += 4;
    sub *= 2;
    int sum = 0;
    for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 6; ++x) sum += img(x, y);
    EXPECT_EQ(sum, 32 + 4 * 10);
    ImageU u = img.convertTo<std::uint16_t>();
    EXPECT_EQ(u(2, 2), 10);
}

TEST(Mask, NamedPlanesAndRuntimePlanes) {
    Mask m(10, 10);
    for (const auto& name : {"BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT",
                             "NO_DATA", "CLIPPED"})
        EXPECT_NO_THROW(m.planeBitMask(name)) << name;
    int bit = m.addPlane("STREAK");
    EXPECT_EQ(bit, 10);
    Mask view = m.subImage(Box2I({0, 0}, 3, 3));
    EXPECT_EQ(view.planeBitMask("STREAK"), 1 << 10);  // planes are shared among views
    view.setBits(m.planeBitMask(std::vector<std::string>{"SAT", "STREAK"}));
    EXPECT_EQ(m.countBits(m.planeBitMask("STREAK")), 9);
    EXPECT_THROW(m.planeBitMask("NOPE"), NotFoundError);
}

TEST(MaskedImage, PlanesMustAgree) {
    MaskedImageF mi(Box2I({5, 5}, 20, 10));
    auto sub = mi.subImage(Box2I({6, 6}, 4, 4));
    sub.image()(0, 0) = 3.0f;
    EXPECT_EQ(mi.image()(1, 1), 3.0f);
    EXPECT_THROW(MaskedImageF(ImageF(3, 3), Mask(4, 4), ImageF(3, 3)), LogicError);
    auto c = mi.clone();
    EXPECT_TRUE(c.identical(mi));
    c.variance()(0, 0) = 1.0f;
    EXPECT_FALSE(c.identical(mi));
}

// ---- storage: large images are mappings of their own (core/HugePages.h), zero-filled by the kernel

namespace {

/// Every pixel of `img` has exactly the bits of `v` (so -0.0 and NaN payloads are told apart).
template <typename T>
bool allBitsEqual(const Image<T>& img, T v) {
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const T p = img(x, y);
            if (std::memcmp(&p, &v, sizeof(T)) != 0) return false;
        }
    return true;
}

}  // namespace

TEST(ImageStorage, FillValuesHoldOnBothSidesOfTheLargeBlockThreshold) {
    // Heights giving a float plane just below, at and above kHugePageMinBlockBytes, plus a full-size one.
    const int width = 2048, side = int(kHugePageMinBlockBytes / sizeof(float) / std::size_t(width));
    for (bool huge : {false, true}) {
        setTransparentHugePages(huge);
        for (int h : {side - 1, side, side + 1, 4000}) {
            const Box2I box({-7, 11}, h == 4000 ? 4072 : width, h);
            EXPECT_TRUE(allBitsEqual(ImageF(box), 0.0f)) << h;
            EXPECT_TRUE(allBitsEqual(ImageF(box, -0.0f), -0.0f)) << h;  // zero value, not zero bits
            EXPECT_TRUE(allBitsEqual(ImageF(box, std::numeric_limits<float>::quiet_NaN()),
                                     std::numeric_limits<float>::quiet_NaN()))
                << h;
            EXPECT_TRUE(allBitsEqual(ImageI(box, 0), 0)) << h;
            EXPECT_TRUE(allBitsEqual(ImageI(box, -1), -1)) << h;
            EXPECT_TRUE(allBitsEqual(ImageD(box, 2.5), 2.5)) << h;
            EXPECT_TRUE(allBitsEqual(ImageU(box), std::uint16_t(0))) << h;
            const Mask m(box);
            EXPECT_TRUE(allBitsEqual<MaskPixel>(m, 0)) << h;
            EXPECT_EQ(m.countBits(~0), 0) << h;
        }
    }
    setTransparentHugePages(false);
}

TEST(ImageStorage, NoFillImagesHaveTheShapeAndCloneAndConvertAreExact) {
    std::mt19937_64 rng(20251121);
    std::normal_distribution<float> g(100.0f, 30.0f);
    for (int h : {3, 6000}) {  // a small image and one above the block threshold
        const Box2I box({5, -3}, 1400, h);
        ImageF a(box, kNoFill);
        EXPECT_EQ(a.bbox(), box);
        EXPECT_TRUE(a.isContiguous());
        for (int y = 0; y < a.height(); ++y)
            for (int x = 0; x < a.width(); ++x) a(x, y) = g(rng);
        a(3, 1) = std::numeric_limits<float>::quiet_NaN();
        a(4, 1) = -0.0f;
        ImageF c = a.clone();
        EXPECT_FALSE(c.sharesPixelsWith(a));
        EXPECT_TRUE(c.identical(a));
        EXPECT_TRUE(std::signbit(c(4, 1)));
        ImageD d = a.convertTo<double>();
        EXPECT_EQ(d.bbox(), box);
        for (int y = 0; y < a.height(); y += 7)
            for (int x = 0; x < a.width(); x += 3) {
                if (std::isnan(a(x, y))) {
                    EXPECT_TRUE(std::isnan(d(x, y)));
                } else {
                    EXPECT_EQ(d(x, y), double(a(x, y)));
                }
            }
        // A view of a large image keeps its storage alive.
        ImageF view = ImageF(box, 3.0f).subImage(Box2I({6, -2}, 10, 1));
        EXPECT_TRUE(allBitsEqual(view, 3.0f));
    }
    ImageF empty(Box2I({0, 0}, 0, 5), kNoFill);
    EXPECT_TRUE(empty.empty());
    EXPECT_EQ(empty.data(), nullptr);
}

TEST(HugePages, BlocksAreZeroAlignedAndWritable) {
    for (bool huge : {false, true}) {
        setTransparentHugePages(huge);
        EXPECT_EQ(transparentHugePages(), huge);
        for (std::size_t bytes : {std::size_t(1), std::size_t(4097), kHugePageMinBlockBytes + 12345, std::size_t(65152000)}) {
            std::shared_ptr<std::byte[]> b = allocateHugePageBlock(bytes);
            ASSERT_NE(b.get(), nullptr);
            EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.get()) % kHugePageBytes, 0u);
            std::size_t nonZero = 0;
            for (std::size_t i = 0; i < bytes; i += 1 + i / 64) nonZero += b[i] != std::byte{0};
            EXPECT_EQ(nonZero + std::size_t(b[bytes - 1] != std::byte{0}), 0u) << bytes;
            std::memset(b.get(), 0xab, bytes);  // the whole block is writable
            EXPECT_EQ(b[bytes - 1], std::byte{0xab});
        }
    }
    setTransparentHugePages(false);
    EXPECT_THROW(allocateHugePageBlock(0), LogicError);
}

TEST(HugePages, UniformBlocksReadAsTheirPatternAndCopyOnWrite) {
    const float a = 3.25f, b = -7.5f;
    const std::size_t chunkFloats = kUniformChunkBytes / sizeof(float);
    for (std::size_t bytes : {std::size_t(4), kUniformChunkBytes, 3 * kUniformChunkBytes + 4 * 4097, std::size_t(65152000)}) {
        auto pa = allocateUniformBlock(bytes, &a, sizeof a);
        auto pb = allocateUniformBlock(bytes, &b, sizeof b);  // another file: no sharing with the first
        ASSERT_NE(pa.get(), nullptr);
        ASSERT_NE(pb.get(), nullptr);
        const std::size_t n = bytes / sizeof(float);
        auto* fa = reinterpret_cast<float*>(pa.get());
        auto* fb = reinterpret_cast<float*>(pb.get());
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < n; i += 1 + i / 32) wrong += (fa[i] != a) + (fb[i] != b);
        EXPECT_EQ(wrong + (fa[n - 1] != a) + (fb[n - 1] != b), 0u) << bytes;
        // A write changes that pixel only: not the same offset of the other chunks, nor the other block.
        fa[0] = 1.0f;
        if (n > chunkFloats) {
            fa[chunkFloats + 1] = 2.0f;
            EXPECT_EQ(fa[chunkFloats], a);
            EXPECT_EQ(fa[chunkFloats + 1], 2.0f);
            EXPECT_EQ(fa[1], a);
        }
        EXPECT_EQ(fa[0], 1.0f);
        EXPECT_EQ(fb[0], b);
        if (n > 1) {
            EXPECT_EQ(fa[n - 1], a);
        }
        std::memset(pa.get(), 0, bytes);  // the whole block is writable
        EXPECT_EQ(fa[n - 1], 0.0f);
    }
    // More than 1024 chunks: larger chunks, the same contents (sparse reads of a 258 MB block).
    const std::int16_t v = -12345;
    const std::size_t big = 1030 * kUniformChunkBytes + 6;
    auto pv = allocateUniformBlock(big, &v, sizeof v);
    ASSERT_NE(pv.get(), nullptr);
    auto* iv = reinterpret_cast<std::int16_t*>(pv.get());
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < big / 2; i += 4093) wrong += iv[i] != v;
    EXPECT_EQ(wrong + (iv[big / 2 - 1] != v), 0u);
    const char three[3] = {1, 2, 3};
    EXPECT_THROW(allocateUniformBlock(12, three, 3), LogicError);
    EXPECT_THROW(allocateUniformBlock(0, &a, sizeof a), LogicError);
}

TEST(Image, SharedFillHoldsTheSamePixelsAsAFill) {
    // Below and above kUniformMinBlockBytes (1000 x 1100 floats = 4.4 MB), every pixel type.
    for (int h : {10, 1100}) {
        const Box2I box({-3, 7}, 1000, h);
        ImageF f(box, 2.5f, kSharedFill);
        EXPECT_EQ(f.bbox(), box);
        EXPECT_TRUE(f.isContiguous());
        EXPECT_TRUE(f.identical(ImageF(box, 2.5f)));
        f(999, h - 1) = -1.0f;  // written pixels are the image's own
        f(0, 0) = 4.0f;
        ImageF g(box, 2.5f);
        g(999, h - 1) = -1.0f;
        g(0, 0) = 4.0f;
        EXPECT_TRUE(f.identical(g));
        ImageF c = f.clone();
        EXPECT_TRUE(c.identical(g));
        f(1, 0) = 9.0f;
        EXPECT_EQ(c(1, 0), 2.5f);
        EXPECT_EQ(f.subImage(Box2I({-2, 7}, 1, 1))(0, 0), 9.0f);
        EXPECT_TRUE(ImageD(box, -0.0, kSharedFill).identical(ImageD(box, -0.0)));
        EXPECT_TRUE(allBitsEqual(ImageD(box, -0.0, kSharedFill), -0.0));
        EXPECT_TRUE(ImageI(box, -5, kSharedFill).identical(ImageI(box, -5)));
        EXPECT_TRUE(ImageU(box, 65535, kSharedFill).identical(ImageU(box, 65535)));
        const float nan = std::numeric_limits<float>::quiet_NaN();
        EXPECT_TRUE(allBitsEqual(ImageF(box, nan, kSharedFill), nan));
    }
    EXPECT_TRUE(ImageF(Box2I({0, 0}, 0, 5), 1.0f, kSharedFill).empty());
}
