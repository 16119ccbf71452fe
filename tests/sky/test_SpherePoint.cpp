// Tests of sky/Angle and sky/SpherePoint: separations and bearings against long-double references and exact
// constructions at every separation from 1e-9 rad to pi - 1e-7 rad, poles, the RA wrap, the wrap functions.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "sky/Angle.h"
#include "sky/SpherePoint.h"

namespace drp {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr long double kPiL = std::numbers::pi_v<long double>;
constexpr long double kPiLoL = -5.0165576126683320235e-20L;  // pi - kPiL
constexpr double kTol = 1e-10;                               // rad

// ---- long-double references, evaluated on the exact double coordinates of the points ----

/// lon2 - lon1 wrapped into (-pi, pi]; the subtraction of 2 pi is exact (Sterbenz) and its low part is added.
long double lonDiffL(double lon2, double lon1) {
    long double d = (long double)lon2 - (long double)lon1;
    if (d > kPiL) return (((long double)lon2 - 2 * kPiL) - lon1) - 2 * kPiLoL;
    if (d <= -kPiL) return ((long double)lon2 - ((long double)lon1 - 2 * kPiL)) + 2 * kPiLoL;
    return d;
}

long double separationL(const SpherePoint& a, const SpherePoint& b) {
    auto vec = [](const SpherePoint& p, long double v[3]) {
        long double lon = p.longitude().asRadians(), lat = p.latitude().asRadians();
        v[0] = cosl(lat) * cosl(lon);
        v[1] = cosl(lat) * sinl(lon);
        v[2] = sinl(lat);
    };
    long double u[3], v[3];
    vec(a, u);
    vec(b, v);
    long double cx = u[1] * v[2] - u[2] * v[1], cy = u[2] * v[0] - u[0] * v[2], cz = u[0] * v[1] - u[1] * v[0];
    return atan2l(sqrtl(cx * cx + cy * cy + cz * cz), u[0] * v[0] + u[1] * v[1] + u[2] * v[2]);
}

long double bearingL(const SpherePoint& a, const SpherePoint& b) {
    long double dLon = lonDiffL(b.longitude().asRadians(), a.longitude().asRadians());
    long double lat1 = a.latitude().asRadians(), lat2 = b.latitude().asRadians();
    long double y = sinl(dLon) * cosl(lat2);
    long double h = sinl(0.5L * dLon);
    long double x = sinl(lat2 - lat1) + 2 * sinl(lat1) * cosl(lat2) * h * h;
    return atan2l(y, x);
}

/// |a - b| modulo 2 pi.
double angleDiff(double a, double b) { return std::fabs(Angle::fromRadians(a - b).wrapCtr().asRadians()); }

SpherePoint randomPoint(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return {Angle::fromRadians(2 * kPi * u(rng)), Angle::fromRadians(std::asin(2 * u(rng) - 1))};
}

/// Log-uniform separation in [1e-9, pi - 1e-7], with the two ends well represented.
double randomDistance(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    double t = u(rng);
    if (t < 0.4) return std::exp(std::log(1e-9) + (std::log(1.0) - std::log(1e-9)) * u(rng));
    if (t < 0.8) return kPi - std::exp(std::log(1e-7) + (std::log(1.0) - std::log(1e-7)) * u(rng));
    return 1e-9 + (kPi - 1e-7 - 1e-9) * u(rng);
}

// ---- Angle ----

TEST(Angle, UnitsConvert) {
    Angle a = 1.5 * degrees;
    EXPECT_DOUBLE_EQ(a.asArcseconds(), 5400.0);
    EXPECT_DOUBLE_EQ(a.asArcminutes(), 90.0);
    EXPECT_DOUBLE_EQ((12.0 * hours).asDegrees(), 180.0);
    EXPECT_DOUBLE_EQ((1000.0 * milliarcseconds).asArcseconds(), 1.0);
    EXPECT_DOUBLE_EQ((kPi * radians).asDegrees(), 180.0);
}

TEST(Angle, WrapRanges) {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> u(-50.0, 50.0);
    for (int i = 0; i < 20000; ++i) {
        double r = u(rng) * (i % 3 == 0 ? 1e-12 : 1.0);
        Angle a = Angle::fromRadians(r);
        double w = a.wrap().asRadians(), c = a.wrapCtr().asRadians();
        ASSERT_GE(w, 0.0);
        ASSERT_LT(w, 2 * kPi);
        ASSERT_GE(c, -kPi);
        ASSERT_LT(c, kPi);
        // Same angle: the sine and cosine agree to the rounding of r (and of 2 pi in double).
        double tol = 1e-15 * (1 + std::fabs(r));
        ASSERT_NEAR(std::sin(w), std::sin(r), tol) << r;
        ASSERT_NEAR(std::cos(w), std::cos(r), tol) << r;
        ASSERT_NEAR(std::sin(c), std::sin(r), tol) << r;
        ASSERT_NEAR(std::cos(c), std::cos(r), tol) << r;
        Angle ref = Angle::fromRadians(u(rng));
        double n = a.wrapNear(ref).asRadians();
        ASSERT_GE(n, ref.asRadians() - kPi);
        ASSERT_LT(n, ref.asRadians() + kPi);
        ASSERT_NEAR(std::sin(n), std::sin(r), 1e-14 * (1 + std::fabs(r) + std::fabs(ref.asRadians()))) << r;
        ASSERT_NEAR(std::cos(n), std::cos(r), 1e-14 * (1 + std::fabs(r) + std::fabs(ref.asRadians()))) << r;
    }
}

TEST(Angle, WrapKeepsInRangeValuesExactly) {
    for (double r : {0.0, 1e-300, 1e-12, 1.0, 3.0, 2 * kPi - 1e-15}) EXPECT_EQ(Angle::fromRadians(r).wrap().asRadians(), r);
    for (double r : {-kPi, -1e-300, -1e-20, -1e-12, 0.0, 1e-12, 3.14159})
        EXPECT_EQ(Angle::fromRadians(r).wrapCtr().asRadians(), r) << r;
    EXPECT_EQ(Angle::fromRadians(kPi).wrapCtr().asRadians(), -kPi);
    EXPECT_EQ(Angle::fromRadians(2 * kPi).wrap().asRadians(), 0.0);
    EXPECT_EQ(Angle::fromRadians(-1e-20).wrap().asRadians(), 0.0);  // 2 pi - 1e-20 rounds to 2 pi -> 0
    EXPECT_NEAR((370.0 * degrees).wrap().asDegrees(), 10.0, 1e-12);
    EXPECT_NEAR((-10.0 * degrees).wrap().asDegrees(), 350.0, 1e-12);
    EXPECT_NEAR((190.0 * degrees).wrapCtr().asDegrees(), -170.0, 1e-12);
    EXPECT_NEAR((-190.0 * degrees).wrapCtr().asDegrees(), 170.0, 1e-12);
    EXPECT_NEAR((359.0 * degrees).wrapNear(1.0 * degrees).asDegrees(), -1.0, 1e-12);
    EXPECT_NEAR((1.0 * degrees).wrapNear(359.0 * degrees).asDegrees(), 361.0, 1e-12);
    EXPECT_TRUE(std::isnan(Angle::fromRadians(std::nan("")).wrap().asRadians()));
}

// ---- SpherePoint ----

TEST(SpherePoint, InvalidLatitudeThrows) {
    EXPECT_THROW(SpherePoint::fromDegrees(10.0, 90.0001), InvalidInputError);
    EXPECT_THROW(SpherePoint::fromDegrees(10.0, -91.0), InvalidInputError);
    EXPECT_THROW(SpherePoint::fromDegrees(10.0, std::nan("")), InvalidInputError);
    EXPECT_THROW(SpherePoint::fromDegrees(std::nan(""), 0.0), InvalidInputError);
    EXPECT_THROW(SpherePoint::fromDegrees(INFINITY, 0.0), InvalidInputError);
    EXPECT_THROW(SpherePoint::fromVector(Eigen::Vector3d::Zero()), InvalidInputError);
    EXPECT_NO_THROW(SpherePoint::fromDegrees(10.0, 90.0));
    EXPECT_NO_THROW(SpherePoint::fromDegrees(10.0, -90.0));
}

TEST(SpherePoint, LongitudeWrapsAndVectorRoundTrips) {
    auto p = SpherePoint::fromDegrees(-30.0, 20.0);
    EXPECT_NEAR(p.ra().asDegrees(), 330.0, 1e-12);
    EXPECT_NEAR(SpherePoint::fromDegrees(720.5, 0.0).ra().asDegrees(), 0.5, 1e-12);
    std::mt19937_64 rng(5);
    for (int i = 0; i < 2000; ++i) {
        SpherePoint a = randomPoint(rng);
        Eigen::Vector3d v = a.vector();
        ASSERT_NEAR(v.norm(), 1.0, 1e-15);
        SpherePoint b = SpherePoint::fromVector(3.7 * v);
        ASSERT_LT(a.separation(b).asRadians(), 1e-15);
    }
    auto pole = SpherePoint::fromVector({0.0, 0.0, 2.0});
    EXPECT_EQ(pole.dec().asRadians(), kPi / 2);
    EXPECT_EQ(pole.ra().asRadians(), 0.0);
}

TEST(SpherePoint, SeparationAndBearingMatchLongDoubleEverywhere) {
    // Points at every separation, including both sides of RA = 0 and near the poles, against references
    // computed in long double from the very same (double) coordinates.
    double worstSep = 0, worstBearing = 0;
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int i = 0; i < 4000; ++i) {
            SpherePoint a = randomPoint(rng);
            if (i % 7 == 0) a = SpherePoint(Angle::fromRadians(1e-9 * u(rng)), a.latitude());           // RA just above 0
            if (i % 7 == 1) a = SpherePoint(Angle::fromRadians(2 * kPi - 1e-9 * u(rng)), a.latitude());  // just below 2 pi
            if (i % 7 == 2) a = SpherePoint(a.longitude(), Angle::fromRadians((u(rng) < 0.5 ? 1 : -1) * (kPi / 2 - 1e-6 * u(rng))));
            double d = randomDistance(rng), b = 2 * kPi * u(rng);
            SpherePoint c = a.offset(Angle::fromRadians(b), Angle::fromRadians(d));
            double sep = a.separation(c).asRadians();
            double err = std::fabs(sep - (double)separationL(a, c));
            worstSep = std::max(worstSep, err);
            ASSERT_LT(err, kTol) << a << " -> " << c << " d=" << d;
            double berr = angleDiff(a.bearingTo(c).asRadians(), (double)bearingL(a, c));
            worstBearing = std::max(worstBearing, berr);
            ASSERT_LT(berr, kTol) << a << " -> " << c << " d=" << d;
        }
    }
    std::printf("worst separation error %.3g rad, worst bearing error %.3g rad\n", worstSep, worstBearing);
}

TEST(SpherePoint, OffsetThenSeparationAndBearingRecoverTheConstruction) {
    // c = a.offset(b, d): separation must give d and bearingTo must give b. The stored c is rounded to
    // about 1e-16 rad, which limits the bearing at tiny (and nearly antipodal) separations to ~1e-16 / sin(d).
    for (std::uint64_t seed = 100; seed < 108; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int i = 0; i < 4000; ++i) {
            SpherePoint a = randomPoint(rng);
            double d = randomDistance(rng), b = 2 * kPi * u(rng);
            SpherePoint c = a.offset(Angle::fromRadians(b), Angle::fromRadians(d));
            ASSERT_NEAR(a.separation(c).asRadians(), d, kTol) << a << " d=" << d;
            double bearingTol = kTol + 2e-15 / std::sin(d);
            ASSERT_LT(angleDiff(a.bearingTo(c).asRadians(), b), bearingTol) << a << " d=" << d << " b=" << b;
            // And the way back: the reverse bearing points at a from c.
            ASSERT_NEAR(c.separation(a).asRadians(), d, kTol);
        }
    }
}

TEST(SpherePoint, AcrossRaZero) {
    auto a = SpherePoint::fromDegrees(359.9999, 10.0), b = SpherePoint::fromDegrees(0.0001, 10.0);
    double expected = (0.0002 * degrees).asRadians() * std::cos((10.0 * degrees).asRadians());
    EXPECT_NEAR(a.separation(b).asRadians(), expected, 1e-13);
    EXPECT_NEAR(a.bearingTo(b).asDegrees(), 90.0, 1e-3);  // east, across the wrap
    EXPECT_NEAR(b.bearingTo(a).asDegrees(), 270.0, 1e-3);
    // Tiny separations straddling 0: bearing exactly east/west.
    auto c = SpherePoint(Angle::fromRadians(2 * kPi - 1e-10), Angle::fromRadians(0.0));
    auto e = SpherePoint(Angle::fromRadians(1e-10), Angle::fromRadians(0.0));
    // 2e-10 plus (2 pi - double(2 pi)) = 2.4e-16 and the rounding of c's longitude.
    EXPECT_NEAR(c.separation(e).asRadians(), (double)separationL(c, e), 1e-20);
    EXPECT_NEAR(c.separation(e).asRadians(), 2e-10, 1e-15);
    EXPECT_NEAR(c.bearingTo(e).asRadians(), kPi / 2, 1e-6);
    EXPECT_NEAR(e.bearingTo(c).asRadians(), 3 * kPi / 2, 1e-6);
}

TEST(SpherePoint, Poles) {
    auto north = SpherePoint::fromDegrees(0.0, 90.0), south = SpherePoint::fromDegrees(0.0, -90.0);
    EXPECT_NEAR(north.separation(south).asRadians(), kPi, 1e-15);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int i = 0; i < 1000; ++i) {
        SpherePoint p = randomPoint(rng);
        ASSERT_NEAR(north.separation(p).asRadians(), kPi / 2 - p.dec().asRadians(), 1e-14);
        ASSERT_NEAR(south.separation(p).asRadians(), kPi / 2 + p.dec().asRadians(), 1e-14);
        // Everything is south of the north pole and north of the south pole... seen from p.
        if (p.dec().asDegrees() < 89.9 && p.dec().asDegrees() > -89.9) {
            ASSERT_LT(angleDiff(p.bearingTo(north).asRadians(), 0.0), 1e-12);
            ASSERT_LT(angleDiff(p.bearingTo(south).asRadians(), kPi), 1e-12);
        }
        // Leaving a pole: the bearing is measured from the pole's own meridian (the limit of "north" there),
        // so from the north pole at longitude L, bearing b leads down the meridian L + pi - b.
        double lonPole = 2 * kPi * u(rng), b = 2 * kPi * u(rng), d = 1e-6 + (kPi - 2e-6) * u(rng);
        SpherePoint np(Angle::fromRadians(lonPole), Angle::fromRadians(kPi / 2));
        SpherePoint q = np.offset(Angle::fromRadians(b), Angle::fromRadians(d));
        ASSERT_NEAR(q.dec().asRadians(), kPi / 2 - d, 1e-12);
        ASSERT_LT(angleDiff(q.ra().asRadians(), lonPole + kPi - b), 1e-9);
        ASSERT_LT(angleDiff(np.bearingTo(q).asRadians(), b), 1e-9);
        SpherePoint sp(Angle::fromRadians(lonPole), Angle::fromRadians(-kPi / 2));
        SpherePoint r = sp.offset(Angle::fromRadians(b), Angle::fromRadians(d));
        ASSERT_NEAR(r.dec().asRadians(), -kPi / 2 + d, 1e-12);
        ASSERT_LT(angleDiff(r.ra().asRadians(), lonPole + b), 1e-9);
        ASSERT_LT(angleDiff(sp.bearingTo(r).asRadians(), b), 1e-9);
    }
}

TEST(SpherePoint, KnownValues) {
    auto a = SpherePoint::fromDegrees(0.0, 0.0);
    EXPECT_NEAR(a.separation(SpherePoint::fromDegrees(90.0, 0.0)).asDegrees(), 90.0, 1e-12);
    EXPECT_NEAR(a.bearingTo(SpherePoint::fromDegrees(90.0, 0.0)).asDegrees(), 90.0, 1e-12);
    EXPECT_NEAR(a.bearingTo(SpherePoint::fromDegrees(0.0, 10.0)).asDegrees(), 0.0, 1e-12);
    EXPECT_NEAR(a.bearingTo(SpherePoint::fromDegrees(0.0, -10.0)).asDegrees(), 180.0, 1e-12);
    EXPECT_NEAR(a.bearingTo(SpherePoint::fromDegrees(-10.0, 0.0)).asDegrees(), 270.0, 1e-12);
    EXPECT_NEAR(a.separation(SpherePoint::fromDegrees(180.0, 0.0)).asDegrees(), 180.0, 1e-12);
    EXPECT_EQ(a.separation(a).asRadians(), 0.0);
    // Offset by zero is the identity (to rounding).
    auto b = SpherePoint::fromDegrees(123.0, -45.0);
    EXPECT_LT(b.separation(b.offset(30.0 * degrees, Angle())).asRadians(), 1e-15);
}

}  // namespace
}  // namespace drp
