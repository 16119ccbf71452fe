// Tests of sky/ReferenceCatalog: the schema, sharding by HTM (the shards of a region hold every object of
// the region), circle selection against brute force, proper-motion propagation (identity, distance and
// direction moved, reversibility) and the parallax helpers (Earth's orbit, the parallactic ellipse).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <numbers>
#include <random>
#include <set>

#include "core/Error.h"
#include "sky/ReferenceCatalog.h"

namespace drp {
namespace {

Table randomCatalog(std::mt19937_64& rng, const SpherePoint& center, double radiusDeg, std::size_t n) {
    Table t(referenceCatalogSchema({"g", "r"}));
    ReferenceCatalogKeys k(t.schema());
    std::uniform_real_distribution<double> u(0, 1);
    t.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        const SpherePoint p = center.offset(360.0 * u(rng) * degrees, radiusDeg * std::sqrt(u(rng)) * degrees);
        t.column(k.id)[i] = std::int64_t(i) + 1;
        t.column(k.ra)[i] = p.ra().asDegrees();
        t.column(k.dec)[i] = p.dec().asDegrees();
        t.column(k.flux[1])[i] = 1000.0 * (i + 1);
        t.column(k.isStar)[i] = i % 2;
    }
    return t;
}

TEST(ReferenceCatalog, SchemaHasDocumentedColumns) {
    const Schema s = referenceCatalogSchema({"u", "g", "r", "i", "z", "y"});
    for (const char* name : {"id", "ra", "dec", "raErr", "decErr", "epoch", "pmRa", "pmDec", "pmRaErr", "pmDecErr",
                             "parallax", "parallaxErr", "isStar"})
        EXPECT_TRUE(s.contains(name)) << name;
    EXPECT_EQ(s.field(s.indexOf("id")).type, FieldType::Int64);
    EXPECT_EQ(s.field(s.indexOf("isStar")).type, FieldType::Flag);
    EXPECT_EQ(s.field(s.indexOf("ra")).unit, "deg");
    EXPECT_EQ(s.field(s.indexOf("raErr")).unit, "mas");
    EXPECT_EQ(s.field(s.indexOf("pmRa")).unit, "mas/yr");
    EXPECT_EQ(s.field(s.indexOf("parallax")).unit, "mas");
    for (const char* b : {"u", "g", "r", "i", "z", "y"}) {
        EXPECT_EQ(s.field(s.indexOf(std::string(b) + "_flux")).unit, "nJy");
        EXPECT_EQ(s.field(s.indexOf(std::string(b) + "_fluxErr")).unit, "nJy");
    }
    for (const auto& f : s.fields()) EXPECT_FALSE(f.doc.empty()) << f.name;
    ReferenceCatalogKeys keys(s);
    EXPECT_EQ(keys.bands, (std::vector<std::string>{"u", "g", "r", "i", "z", "y"}));
    EXPECT_EQ(keys.flux.size(), 6u);
    EXPECT_EQ(s.field(keys.fluxErr[3]).name, "i_fluxErr");
    EXPECT_THROW(referenceCatalogSchema({"g", "g"}), InvalidInputError);
    EXPECT_THROW(referenceCatalogSchema({""}), InvalidInputError);
    EXPECT_THROW(ReferenceCatalogKeys{Schema{}}, NotFoundError);
}

TEST(ReferenceCatalog, CircleSelectionMatchesBruteForceManySeeds) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        const SpherePoint c = SpherePoint::fromDegrees(360 * u(rng), -89 + 178 * u(rng));
        const Table t = randomCatalog(rng, c, 2.0, 3000);
        const Angle r = (0.1 + 2.0 * u(rng)) * degrees;
        const SpherePoint c2 = c.offset(30.0 * degrees, 0.5 * degrees);
        const Table sel = filterToCircle(t, c2, r);
        std::set<std::int64_t> expected;
        const auto ra = t.column<double>("ra");
        const auto dec = t.column<double>("dec");
        for (std::size_t i = 0; i < t.size(); ++i)
            if (SpherePoint::fromDegrees(ra[i], dec[i]).separation(c2) <= r) expected.insert(t.column<std::int64_t>("id")[i]);
        const auto ids = sel.column<std::int64_t>("id");
        ASSERT_EQ(std::set<std::int64_t>(ids.begin(), ids.end()), expected) << "seed " << seed;
        ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end()));  // original order kept
        ASSERT_EQ(sel.schema(), t.schema());
        // every column was carried along
        for (std::size_t k = 0; k < sel.size(); ++k) {
            const std::int64_t id = ids[k];
            ASSERT_EQ(sel.column<double>("r_flux")[k], 1000.0 * double(id));
            ASSERT_EQ(sel.column<bool>("isStar")[k], (id - 1) % 2);
        }
    }
}

TEST(ReferenceCatalog, ShardsOfARegionHoldAllItsObjectsManySeeds) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        const SpherePoint c = SpherePoint::fromDegrees(360 * u(rng), -80 + 160 * u(rng));
        const Table all = randomCatalog(rng, c, 3.0, 5000);
        for (int level : {5, kReferenceCatalogHtmLevel, 9}) {
            HtmPixelization htm(level);
            // Write the catalog as shards, as the driver does.
            std::map<std::uint64_t, std::vector<std::size_t>> shardRows;
            const auto ra = all.column<double>("ra");
            const auto dec = all.column<double>("dec");
            for (std::size_t i = 0; i < all.size(); ++i)
                shardRows[htm.index(SpherePoint::fromDegrees(ra[i], dec[i]))].push_back(i);
            // A query region: read its shards, then cut to the circle.
            const SpherePoint q = c.offset(360.0 * u(rng) * degrees, 1.0 * degrees);
            const Angle radius = (0.2 + 1.5 * u(rng)) * degrees;
            std::vector<Table> pieces;
            for (std::uint64_t shard : shardsForRegion(htm, q, radius)) {
                auto it = shardRows.find(shard);
                if (it != shardRows.end()) pieces.push_back(selectRows(all, it->second));
            }
            ASSERT_FALSE(pieces.empty());
            const Table got = filterToCircle(Table::concatenate(pieces), q, radius);
            const Table want = filterToCircle(all, q, radius);
            const auto gotIds = got.column<std::int64_t>("id");
            const auto wantIds = want.column<std::int64_t>("id");
            ASSERT_EQ(std::set<std::int64_t>(gotIds.begin(), gotIds.end()),
                      std::set<std::int64_t>(wantIds.begin(), wantIds.end()))
                << "seed " << seed << " level " << level;
            ASSERT_EQ(got.size(), want.size());
        }
    }
}

TEST(ReferenceCatalog, ZeroMotionIsTheIdentity) {
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(0, 1);
    for (int i = 0; i < 200; ++i) {
        const SpherePoint p = SpherePoint::fromDegrees(360 * u(rng), -90 + 180 * u(rng));
        EXPECT_EQ(propagate(p.ra(), p.dec(), 0.0, 0.0, 5.0, 51544.5, 61544.5), p);
        EXPECT_EQ(propagate(p, 12.0, -7.0, 1.0, 57000.0, 57000.0), p);
    }
}

TEST(ReferenceCatalog, ProperMotionMovesTheExpectedDistanceManySeeds) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        for (int i = 0; i < 50; ++i) {
            const SpherePoint p = SpherePoint::fromDegrees(360 * u(rng), -89.9 + 179.8 * u(rng));
            const double pmRa = 200 * (u(rng) - 0.5), pmDec = 200 * (u(rng) - 0.5);
            const double from = 57205.875, to = from + 10 * kDaysPerJulianYear;  // 10 Julian years
            const SpherePoint q = propagate(p.ra(), p.dec(), pmRa, pmDec, 1.0, from, to);
            const double expectedMas = 10 * std::hypot(pmRa, pmDec);
            ASSERT_NEAR(p.separation(q).asMilliarcseconds(), expectedMas, 1e-6) << "seed " << seed;
            // Direction: the displacement's position angle is atan2(pmRa, pmDec).
            const double pa = p.bearingTo(q).asRadians(), want = std::atan2(pmRa, pmDec);
            ASSERT_NEAR(std::remainder(pa - want, 2 * std::numbers::pi), 0.0, 1e-6);
            // Small-angle components: dRA cos(dec) and dDec.
            if (std::fabs(p.dec().asDegrees()) < 80) {
                const double dRa = (q.ra() - p.ra()).wrapCtr().asMilliarcseconds() * cos(p.dec());
                const double dDec = (q.dec() - p.dec()).asMilliarcseconds();
                ASSERT_NEAR(dRa, 10 * pmRa, 1e-3 * expectedMas + 1e-6);
                ASSERT_NEAR(dDec, 10 * pmDec, 1e-3 * expectedMas + 1e-6);
            }
            // Backwards from the new epoch returns to the start, up to the second-order change of the motion's
            // direction along the great circle, ~ tan(dec) (mu t)^2 (< 1e-4 mas here).
            const SpherePoint back = propagate(q, pmRa, pmDec, 1.0, to, from);
            const double muT = (expectedMas * milliarcseconds).asRadians();
            const double tol = (muT * muT * (1 + std::fabs(tan(p.dec()))) * radians).asMilliarcseconds() + 1e-6;
            ASSERT_LT(back.separation(p).asMilliarcseconds(), tol);
        }
    }
}

TEST(ReferenceCatalog, EarthOrbitFromTheSolarEphemeris) {
    const double d2r = std::numbers::pi / 180;
    // March equinox 2024-03-20 03:06 UTC: the Sun at ecliptic longitude 0, so the Earth is at -x.
    const Eigen::Vector3d e1 = earthPositionAu(60389.129);
    EXPECT_NEAR(std::acos(-e1.normalized().x()), 0.0, 0.5 * d2r);
    // June solstice 2024-06-20 20:51 UTC: the Sun at longitude 90 (north of the equator), the Earth opposite.
    const Eigen::Vector3d e2 = earthPositionAu(60481.869).normalized();
    const double eps = 23.439 * d2r;
    EXPECT_LT(std::acos(e2.dot(Eigen::Vector3d(0, -std::cos(eps), -std::sin(eps)))), 0.5 * d2r);
    // Perihelion in early January, aphelion in early July.
    EXPECT_NEAR(earthPositionAu(60313.0).norm(), 0.9833, 0.001);  // 2024-01-03
    EXPECT_NEAR(earthPositionAu(60497.0).norm(), 1.0167, 0.001);  // 2024-07-05
    for (double mjd = 50000; mjd < 70000; mjd += 37.3) {
        const double r = earthPositionAu(mjd).norm();
        ASSERT_GT(r, 0.982);
        ASSERT_LT(r, 1.018);
        ASSERT_NEAR(earthPositionAu(mjd).dot(Eigen::Vector3d(0, -std::sin(eps), std::cos(eps))), 0.0, 1e-3);  // ecliptic
    }
}

TEST(ReferenceCatalog, ParallaxTracesTheParallacticEllipse) {
    // At the ecliptic pole the star circles its mean position at radius parallax * r(AU) all year.
    const double eps = 23.439 * std::numbers::pi / 180;
    const SpherePoint pole = SpherePoint::fromVector(Eigen::Vector3d(0, -std::sin(eps), std::cos(eps)));
    for (double mjd = 60000; mjd < 60365; mjd += 7) {
        const double shift = parallaxOffset(pole, 10.0, mjd).separation(pole).asMilliarcseconds();
        ASSERT_NEAR(shift, 10.0 * earthPositionAu(mjd).norm(), 1e-6);
    }
    // On the ecliptic the shift ranges from ~0 (Earth along the line of sight) to ~parallax.
    const SpherePoint onEcliptic = SpherePoint::fromDegrees(0, 0);  // the March-equinox direction
    double lo = 1e9, hi = 0;
    for (double mjd = 60300; mjd < 60665; mjd += 1) {
        const double s = parallaxOffset(onEcliptic, 5.0, mjd).separation(onEcliptic).asMilliarcseconds();
        lo = std::min(lo, s);
        hi = std::max(hi, s);
    }
    EXPECT_LT(lo, 0.1);
    EXPECT_NEAR(hi, 5.0, 0.1);
    // The star is displaced away from the Earth's position (toward the Sun's direction as seen from Earth).
    const double mjd = 60481.869;
    const SpherePoint star = SpherePoint::fromDegrees(90, 0);
    const SpherePoint moved = parallaxOffset(star, 100.0, mjd);
    EXPECT_LT((moved.vector() - star.vector()).dot(earthPositionAu(mjd)), 0.0);
    EXPECT_EQ(parallaxOffset(star, 0.0, mjd), star);
}

}  // namespace
}  // namespace drp
