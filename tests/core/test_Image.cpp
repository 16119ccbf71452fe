#include <gtest/gtest.h>

#include "core/Error.h"
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
