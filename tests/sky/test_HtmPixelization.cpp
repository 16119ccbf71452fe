// Tests of sky/HtmPixelization: every point lies in its trixel at every level, children partition their
// parents (areas add up, sampled points fall in exactly one child), the envelope of a circle contains
// every trixel a point of the circle falls in and no trixel far from it (against a brute-force sampled
// distance), and ids agree with real LSST HTM-indexed reference-catalog shards.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numbers>
#include <random>
#include <set>

#include "core/Error.h"
#include "io/FitsFile.h"
#include "sky/HtmPixelization.h"
#include "tests/support/TestSupport.h"

namespace drp {
namespace {

using Vec = Eigen::Vector3d;

Vec randomUnit(std::mt19937_64& rng) {
    std::normal_distribution<double> g;
    Vec v;
    do v = Vec(g(rng), g(rng), g(rng));
    while (v.norm() < 1e-6);
    return v.normalized();
}

/// A random point within `radius` (rad) of `c`, uniform in area.
Vec randomInCap(std::mt19937_64& rng, const Vec& c, double radius) {
    std::uniform_real_distribution<double> u(0, 1);
    const double cosR = std::cos(radius);
    const double z = 1 - u(rng) * (1 - cosR);
    const double phi = 2 * std::numbers::pi * u(rng);
    Vec e1 = (std::fabs(c.z()) < 0.9 ? Vec(0, 0, 1) : Vec(1, 0, 0)).cross(c).normalized();
    Vec e2 = c.cross(e1);
    const double s = std::sqrt(std::max(0.0, 1 - z * z));
    return (z * c + s * std::cos(phi) * e1 + s * std::sin(phi) * e2).normalized();
}

double angle(const Vec& a, const Vec& b) { return std::atan2(a.cross(b).norm(), a.dot(b)); }

/// Spherical excess (area in sr) of a triangle.
double area(const std::array<Vec, 3>& t) {
    return 2 * std::atan2(std::fabs(t[0].dot(t[1].cross(t[2]))), 1 + t[0].dot(t[1]) + t[1].dot(t[2]) + t[2].dot(t[0]));
}

/// Distance from p to a triangle by brute force: 0 if inside, else the minimum over densely sampled edge
/// points refined by a golden-section search around the best sample.
double sampledDistance(const std::array<Vec, 3>& t, const Vec& p) {
    bool inside = true;
    for (int i = 0; i < 3; ++i) inside = inside && p.dot(t[i].cross(t[(i + 1) % 3])) >= 0;
    if (inside) return 0;
    double best = 10;
    for (int i = 0; i < 3; ++i) {
        const Vec& a = t[i];
        const Vec& b = t[(i + 1) % 3];
        auto at = [&](double s) { return angle(p, ((1 - s) * a + s * b).normalized()); };
        const int n = 400;
        int bestK = 0;
        double bestD = 10;
        for (int k = 0; k <= n; ++k) {
            double d = at(double(k) / n);
            if (d < bestD) bestD = d, bestK = k;
        }
        double lo = std::max(0.0, (bestK - 1.0) / n), hi = std::min(1.0, (bestK + 1.0) / n);
        for (int it = 0; it < 100; ++it) {
            double m1 = lo + (hi - lo) * 0.382, m2 = lo + (hi - lo) * 0.618;
            if (at(m1) < at(m2)) hi = m2; else lo = m1;
        }
        best = std::min({best, bestD, at(0.5 * (lo + hi))});
    }
    return best;
}

TEST(HtmPixelization, IdLayoutAndNames) {
    for (int level = 0; level <= HtmPixelization::maxLevel; ++level) {
        HtmPixelization h(level);
        EXPECT_EQ(h.level(), level);
        EXPECT_EQ(h.beginId(), 8ULL << (2 * level));
        EXPECT_EQ(h.numPixels(), h.endId() - h.beginId());
        EXPECT_EQ(HtmPixelization::levelOf(h.beginId()), level);
        EXPECT_EQ(HtmPixelization::levelOf(h.endId() - 1), level);
    }
    EXPECT_THROW(HtmPixelization(-1), InvalidInputError);
    EXPECT_THROW(HtmPixelization(HtmPixelization::maxLevel + 1), InvalidInputError);
    for (std::uint64_t bad : {0ULL, 1ULL, 7ULL, 16ULL, 31ULL, 64ULL, 127ULL, 1ULL << 62}) {
        EXPECT_EQ(HtmPixelization::levelOf(bad), -1) << bad;
        EXPECT_THROW(HtmPixelization::triangle(bad), InvalidInputError) << bad;
    }
    EXPECT_EQ(HtmPixelization::asString(8), "S0");
    EXPECT_EQ(HtmPixelization::asString(15), "N3");
    EXPECT_EQ(HtmPixelization::asString(4 * (4 * 13 + 2) + 1), "N121");
    EXPECT_EQ(HtmPixelization::parent(4 * 13 + 2), 13u);
    EXPECT_THROW(HtmPixelization::parent(13), InvalidInputError);
    // The octants: N3 holds (+x, +y, +z), S0 (+x, +y, -z), N0 (+x, -y, +z), S2 (-x, -y, -z).
    HtmPixelization h0(0);
    EXPECT_EQ(h0.index(Vec(1, 1, 1).normalized()), 15u);
    EXPECT_EQ(h0.index(Vec(1, 1, -1).normalized()), 8u);
    EXPECT_EQ(h0.index(Vec(1, -1, 1).normalized()), 12u);
    EXPECT_EQ(h0.index(Vec(-1, -1, -1).normalized()), 10u);
}

TEST(HtmPixelization, EveryPointLiesInItsTrixelManySeeds) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        for (int level : {0, 1, 3, 7, 8, 12, 16, 20}) {
            HtmPixelization h(level);
            for (int i = 0; i < 100; ++i) {
                Vec p = randomUnit(rng);
                if (i % 10 == 0) p = Vec(std::round(p.x()), p.y(), std::round(p.z())).normalized();  // on planes
                const std::uint64_t id = h.index(p);
                ASSERT_EQ(HtmPixelization::levelOf(id), level);
                ASSERT_TRUE(HtmPixelization::contains(id, p, 1e-13)) << "seed " << seed << " level " << level;
                if (level > 0) {
                    ASSERT_EQ(HtmPixelization(level - 1).index(p), id / 4);  // nested
                }
                const SpherePoint sp = SpherePoint::fromVector(p);
                ASSERT_EQ(h.index(sp), h.index(sp.vector()));
            }
        }
    }
}

TEST(HtmPixelization, ChildrenPartitionParents) {
    // Areas: the 8 roots cover 4 pi; the four children of any trixel add up to it.
    double total = 0;
    for (std::uint64_t id = 8; id < 16; ++id) total += area(HtmPixelization::triangle(id));
    EXPECT_NEAR(total, 4 * std::numbers::pi, 1e-12);
    double level4 = 0;
    HtmPixelization h4(4);
    for (std::uint64_t id = h4.beginId(); id < h4.endId(); ++id) level4 += area(HtmPixelization::triangle(id));
    EXPECT_NEAR(level4, 4 * std::numbers::pi, 1e-11);
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        for (int trial = 0; trial < 20; ++trial) {
            const int level = int(rng() % 12);
            const std::uint64_t parentId = HtmPixelization(level).index(randomUnit(rng));
            const auto pt = HtmPixelization::triangle(parentId);
            double childArea = 0;
            for (std::uint64_t c : HtmPixelization::children(parentId)) {
                ASSERT_EQ(HtmPixelization::parent(c), parentId);
                childArea += area(HtmPixelization::triangle(c));
            }
            ASSERT_NEAR(childArea / area(pt), 1.0, 1e-7) << "level " << level;
            // Points inside the parent lie in exactly one child (away from the children's shared edges), and
            // index() at the child level picks that child.
            for (int k = 0; k < 50; ++k) {
                double a = u(rng), b = u(rng);
                if (a + b > 1) a = 1 - a, b = 1 - b;
                const Vec p = (pt[0] + a * (pt[1] - pt[0]) + b * (pt[2] - pt[0])).normalized();
                int inside = 0;
                std::uint64_t which = 0;
                for (std::uint64_t c : HtmPixelization::children(parentId))
                    if (HtmPixelization::contains(c, p, -1e-12)) ++inside, which = c;  // strictly inside
                int loose = 0;
                for (std::uint64_t c : HtmPixelization::children(parentId)) loose += HtmPixelization::contains(c, p, 1e-12);
                ASSERT_GE(loose, 1);
                ASSERT_LE(inside, 1);
                if (inside == 1) {
                    ASSERT_EQ(HtmPixelization(level + 1).index(p), which);
                }
            }
        }
    }
}

TEST(HtmPixelization, EnvelopeContainsEveryPointOfTheCircleManySeeds) {
    for (std::uint64_t seed = 1; seed <= 30; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        const Vec c = randomUnit(rng);
        // radii from 1 arcsec to 20 deg, log-uniform; the level is chosen so that the circle covers
        // between ~1 and ~3000 trixels.
        const double radius = (1.0 * arcseconds).asRadians() * std::pow(72000.0, u(rng));
        const double capArea = 2 * std::numbers::pi * (1 - std::cos(radius));
        int level = 0;
        while (level < 20 && capArea / (4 * std::numbers::pi / (8.0 * std::pow(4.0, level + 1))) < 1000 * u(rng) + 10)
            ++level;
        HtmPixelization h(level);
        const auto env = h.envelope(SpherePoint::fromVector(c), Angle::fromRadians(radius));
        ASSERT_TRUE(std::is_sorted(env.begin(), env.end()));
        ASSERT_FALSE(env.empty());
        std::set<std::uint64_t> envSet(env.begin(), env.end());
        ASSERT_EQ(envSet.size(), env.size());
        for (int i = 0; i < 2000; ++i) {
            const Vec p = randomInCap(rng, c, radius * (i % 4 == 0 ? 0.999999 : u(rng)));
            ASSERT_TRUE(envSet.count(h.index(p))) << "seed " << seed << " level " << level << " radius " << radius;
        }
        // Tight: every trixel returned comes within the radius of the centre (brute-force distance).
        ASSERT_LT(env.size(), 20000u);
        for (std::size_t k = 0; k < env.size(); k += 1 + env.size() / 200) {
            const std::uint64_t id = env[k];
            ASSERT_LE(sampledDistance(HtmPixelization::triangle(id), c), radius + 1e-9) << "seed " << seed;
        }
    }
    // Degenerate radii.
    HtmPixelization h(5);
    const SpherePoint p = SpherePoint::fromDegrees(10, 20);
    EXPECT_EQ(h.envelope(p, Angle()), std::vector<std::uint64_t>{h.index(p)});
    EXPECT_EQ(h.envelope(p, 200.0 * degrees).size(), h.numPixels());
}

TEST(HtmPixelization, EnvelopeMatchesBruteForceAtLevel5) {
    HtmPixelization h(5);
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        std::mt19937_64 rng(seed);
        const Vec c = randomUnit(rng);
        const double radius = (0.5 + 2.5 * double(rng() % 1000) / 1000) * std::numbers::pi / 180;
        const auto env = h.envelope(SpherePoint::fromVector(c), Angle::fromRadians(radius));
        std::set<std::uint64_t> envSet(env.begin(), env.end());
        for (std::uint64_t id = h.beginId(); id < h.endId(); ++id) {
            const auto t = HtmPixelization::triangle(id);
            if (angle(c, (t[0] + t[1] + t[2]).normalized()) > radius + 0.1) continue;  // far (trixels ~2 deg)
            const double d = sampledDistance(t, c);
            if (d < radius - 1e-9) {
                ASSERT_TRUE(envSet.count(id)) << "missing " << id << " seed " << seed;
            }
            if (d > radius + 1e-9) {
                ASSERT_FALSE(envSet.count(id)) << "extra " << id << " seed " << seed;
            }
        }
    }
}

TEST(HtmPixelization, AgreesWithLsstReferenceCatalogShards) {
    // SDSS stars ingested by the LSST pipelines into level-8 HTM shards named <id>.fits (coord_ra/dec, rad).
    const auto dir = test::realDataDir() / "refcat" / "sdss_dr_meas_astrom" / "ref_cats" / "cal_ref_cat";
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared data at " << dir;
    HtmPixelization h(8);
    int files = 0;
    std::size_t rows = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        const std::string stem = entry.path().stem().string();
        if (entry.path().extension() != ".fits" || stem.find_first_not_of("0123456789") != std::string::npos)
            continue;
        const std::uint64_t shard = std::stoull(stem);
        ASSERT_EQ(HtmPixelization::levelOf(shard), 8);
        FitsFile f(entry.path(), FitsFile::Mode::Read);
        f.moveToHdu(1);
        const auto ra = f.readColumn<double>("coord_ra");
        const auto dec = f.readColumn<double>("coord_dec");
        ASSERT_EQ(ra.size(), dec.size());
        for (std::size_t i = 0; i < ra.size(); ++i) {
            const SpherePoint p(ra[i] * radians, dec[i] * radians);
            ASSERT_EQ(h.index(p), shard) << entry.path() << " row " << i;
        }
        ++files;
        rows += ra.size();
    }
    EXPECT_GE(files, 13);
    EXPECT_GT(rows, 1000u);
}

}  // namespace
}  // namespace drp
