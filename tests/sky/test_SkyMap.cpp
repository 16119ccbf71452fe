// Tests of sky/SkyMap: the inner regions of the tracts partition the sphere (random points over several
// seeds, the poles, RA 0/360 and every tract's own boundary are in exactly one inner region, which is the
// one findTract returns); every point within tractOverlap of a tract's inner region projects into its bbox;
// patch inner boxes tile the tract and neighbouring outer boxes overlap by exactly 2 * border; findOverlaps
// of detector-sized polygons contains every (tract, patch) whose outer box holds a sampled point of the
// polygon (brute force over all tracts); the lsst_cells_v1 defaults give Rubin's tract count. Lazy tracts:
// maps of 2000 and 10000 rings (5.1 and 127 million tracts) construct without building tracts, and
// findTract / tract(id) / findPatch / findOverlaps agree with containsInner and with a brute force over the
// neighbouring tracts (own slice arithmetic); 4 threads calling tract() / findOverlaps on one cold map get
// the serial results; a copy and tracts() equal tract(id).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <random>
#include <set>
#include <thread>
#include <tuple>

#include "core/Error.h"
#include "sky/SkyMap.h"

namespace drp {
namespace {

SkyMapConfig smallConfig() {
    SkyMapConfig c;
    c.numRings = 12;
    c.pixelScaleArcsec = 1.0;
    c.tractOverlapArcmin = 6.0;
    c.patchInnerDimension = 400;
    c.patchBorder = 50;
    c.numPatchesPerSide = 0;
    c.raOffsetDeg = 7.5;
    return c;
}

const SkyMap& defaultMap() {
    static const SkyMap map;
    return map;
}

SpherePoint randomPoint(std::mt19937_64& rng) {
    std::normal_distribution<double> g;
    Eigen::Vector3d v;
    do v = Eigen::Vector3d(g(rng), g(rng), g(rng));
    while (v.norm() < 1e-6);
    return SpherePoint::fromVector(v);
}

bool insideBBox(const TractInfo& t, const SpherePoint& p) {
    Point2D q = t.wcs->skyToPixel(p);
    return Box2D(t.bbox).contains(q);
}

int countContaining(const SkyMap& map, const SpherePoint& p) {
    int n = 0;
    for (const auto& t : map.tracts()) n += t.containsInner(p) ? 1 : 0;
    return n;
}

TEST(SkyMapConfig, DefaultsAreLsstCellsV1AndValidate) {
    SkyMapConfig c;
    EXPECT_EQ(c.numRings, 120);
    EXPECT_DOUBLE_EQ(c.pixelScaleArcsec, 0.2);
    EXPECT_DOUBLE_EQ(c.tractOverlapArcmin, 1.0);
    EXPECT_EQ(c.patchInnerDimension, 3000);
    EXPECT_EQ(c.patchBorder, 200);
    EXPECT_EQ(c.numPatchesPerSide, 10);
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(c, SkyMapConfig{});
    auto bad = [](auto mutate) {
        SkyMapConfig b;
        mutate(b);
        return b;
    };
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.numRings = 0; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.pixelScaleArcsec = 0; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.pixelScaleArcsec = NAN; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.tractOverlapArcmin = -1; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.patchInnerDimension = 0; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.patchBorder = -1; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.numPatchesPerSide = -1; }).validate(), ConfigError);
    EXPECT_THROW(bad([](SkyMapConfig& b) { b.raOffsetDeg = INFINITY; }).validate(), ConfigError);
    EXPECT_NE(bad([](SkyMapConfig& b) { b.patchBorder = 100; }), SkyMapConfig{});
    EXPECT_THROW(SkyMap(bad([](SkyMapConfig& b) { b.numRings = -3; })), ConfigError);
}

TEST(SkyMap, DefaultLayoutMatchesRubin) {
    const SkyMap& map = defaultMap();
    // Rubin's lsst_cells_v1 (RingsSkyMap, 120 rings) has 18938 tracts.
    EXPECT_EQ(map.numTracts(), 18938u);
    EXPECT_NEAR(map.ringSize().asDegrees(), 180.0 / 121.0, 1e-12);
    int sum = 2;
    for (int r = 0; r < map.numRings(); ++r) sum += map.numTractsInRing(r);
    EXPECT_EQ(std::size_t(sum), map.numTracts());
    // Symmetric about the equator.
    for (int r = 0; r < map.numRings(); ++r) {
        EXPECT_EQ(map.numTractsInRing(r), map.numTractsInRing(map.numRings() - 1 - r));
    }
    int fixed = 0;
    for (const auto& t : map.tracts()) {
        fixed += (t.numPatchesX == 10 && t.numPatchesY == 10) ? 1 : 0;
        EXPECT_EQ(t.bbox, Box2I({0, 0}, t.numPatchesX * 3000, t.numPatchesY * 3000));
    }
    EXPECT_EQ(fixed, int(map.numTracts())) << "every lsst_cells_v1 tract should be 10x10 patches";
    const TractInfo& t = map.tract(5000);
    EXPECT_EQ(map.patch(t, 0, 0).outerBBox, Box2I({-200, -200}, 3400, 3400));
    EXPECT_THROW(map.tract(-1), NotFoundError);
    EXPECT_THROW(map.tract(int(map.numTracts())), NotFoundError);
    EXPECT_EQ(map.findTract(SpherePoint::fromDegrees(12.0, -90.0)), 0);
    EXPECT_EQ(map.findTract(SpherePoint::fromDegrees(12.0, 90.0)), int(map.numTracts()) - 1);
}

TEST(SkyMap, SmallMapPartitionsTheSphere) {
    const SkyMap map(smallConfig());
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 4000; ++i) {
            SpherePoint p = randomPoint(rng);
            int id = map.findTract(p);
            ASSERT_EQ(countContaining(map, p), 1) << p;
            const TractInfo& t = map.tract(id);
            ASSERT_TRUE(t.containsInner(p)) << p;
            ASSERT_TRUE(insideBBox(t, p)) << p << " tract " << id;
            PatchInfo patch = map.findPatch(t, p);
            Point2D q = t.wcs->skyToPixel(p);
            ASSERT_TRUE(Box2D(patch.innerBBox).contains(q) || !Box2D(t.bbox).contains(q));
        }
    }
}

TEST(SkyMap, SpecialPointsAndBoundariesBelongToExactlyOneTract) {
    const SkyMap smallMap(smallConfig());
    for (const SkyMap* mapPtr : {&smallMap, &defaultMap()}) {
        const SkyMap& map = *mapPtr;
        const SkyMapConfig& cfg = map.config();
        const bool small = cfg.numRings < 20;
        std::vector<SpherePoint> pts;
        for (double ra : {0.0, 1e-13, 359.9999999999, 360.0 - 1e-13, 180.0, cfg.raOffsetDeg}) {
            for (double dec : {-90.0, -89.999, -45.0, 0.0, 1e-14, -1e-14, 45.0, 89.999, 90.0}) {
                pts.push_back(SpherePoint::fromDegrees(ra, dec));
            }
        }
        // Corners and edge midpoints of every (small) or every 37th (default) tract's inner region.
        for (const auto& t : map.tracts()) {
            if (!small && t.id % 37 != 0) continue;
            for (double f : {0.0, 0.5, 1.0}) {
                double ra = t.raMinDeg + f * (t.raMaxDeg - t.raMinDeg), dec = t.decMinDeg + f * (t.decMaxDeg - t.decMinDeg);
                pts.push_back(SpherePoint::fromDegrees(ra, t.decMinDeg));
                pts.push_back(SpherePoint::fromDegrees(ra, t.decMaxDeg));
                pts.push_back(SpherePoint::fromDegrees(t.raMinDeg, dec));
                pts.push_back(SpherePoint::fromDegrees(t.raMaxDeg, dec));
            }
        }
        for (const auto& p : pts) {
            int id = map.findTract(p);
            EXPECT_TRUE(map.tract(id).containsInner(p)) << p;
            EXPECT_EQ(countContaining(map, p), 1) << p;
            EXPECT_TRUE(insideBBox(map.tract(id), p)) << p;
        }
    }
}

TEST(SkyMap, DefaultMapRandomPointsInExactlyOneTract) {
    const SkyMap& map = defaultMap();
    for (std::uint64_t seed : {11u, 12u, 13u}) {
        std::mt19937_64 rng(seed);
        for (int i = 0; i < 3000; ++i) {
            SpherePoint p = randomPoint(rng);
            int id = map.findTract(p);
            const TractInfo& t = map.tract(id);
            ASSERT_TRUE(t.containsInner(p)) << p;
            ASSERT_TRUE(insideBBox(t, p)) << p;
            // No other tract of this ring or the neighbouring rings (or a cap) claims the point.
            int claims = 0;
            for (const auto& o : map.tracts()) {
                if (std::abs(o.ring - t.ring) <= 1) claims += o.containsInner(p) ? 1 : 0;
            }
            ASSERT_EQ(claims, 1) << p;
            PatchInfo patch = map.findPatch(t, p);
            EXPECT_TRUE(Box2D(patch.innerBBox).contains(t.wcs->skyToPixel(p)));
        }
        // A smaller sample against every tract.
        for (int i = 0; i < 200; ++i) {
            SpherePoint p = randomPoint(rng);
            ASSERT_EQ(countContaining(map, p), 1) << p;
        }
    }
}

/// Every point within `overlap` of tract T's inner region lies in T's bbox: take a random point q (in
/// tract T = findTract(q)) and a point p within the overlap distance of q; p must project into T's bbox.
void checkOverlap(const SkyMap& map, std::uint64_t seed, int n) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const Angle overlap = map.config().tractOverlapArcmin * arcminutes;
    int crossed = 0;
    for (int i = 0; i < n; ++i) {
        SpherePoint q = randomPoint(rng);
        // Half the samples sit near a tract boundary (random RA, dec near a ring edge) so crossings happen.
        if (i % 2 == 0 && std::fabs(q.dec().asDegrees()) < 80.0) {
            const TractInfo& tq = map.tract(map.findTract(q));
            double edge = u(rng) < 0.5 ? tq.decMinDeg : tq.decMaxDeg;
            double dec = edge + (u(rng) - 0.5) * 2.0 * overlap.asDegrees();
            if (i % 4 == 0) {  // RA boundary instead
                double ra = (u(rng) < 0.5 ? tq.raMinDeg : tq.raMaxDeg) +
                            (u(rng) - 0.5) * 2.0 * overlap.asDegrees() / std::cos(q.dec().asRadians());
                q = SpherePoint::fromDegrees(ra, q.dec().asDegrees());
            } else {
                q = SpherePoint::fromDegrees(q.ra().asDegrees(), dec);
            }
        }
        const TractInfo& t = map.tract(map.findTract(q));
        SpherePoint p = q.offset(u(rng) * 360.0 * degrees, u(rng) * 0.999 * overlap);
        crossed += map.findTract(p) != t.id ? 1 : 0;
        ASSERT_TRUE(insideBBox(t, p)) << "tract " << t.id << " q=" << q << " p=" << p;
        ASSERT_NO_THROW(map.findPatch(t, p));
    }
    EXPECT_GT(crossed, n / 20) << "the test should exercise boundary crossings";
}

TEST(SkyMap, TractsOverlapByAtLeastTheConfiguredMargin) {
    checkOverlap(SkyMap(smallConfig()), 21, 20000);
    checkOverlap(defaultMap(), 22, 20000);
}

void checkPatchGrid(const SkyMap& map, const TractInfo& t) {
    const int border = map.config().patchBorder, inner = map.config().patchInnerDimension;
    std::int64_t area = 0;
    for (int y = 0; y < t.numPatchesY; ++y) {
        for (int x = 0; x < t.numPatchesX; ++x) {
            PatchInfo p = map.patch(t, x, y);
            EXPECT_EQ(map.patch(t, p.index), p);
            EXPECT_EQ(p.innerBBox.width(), inner);
            EXPECT_EQ(p.outerBBox, p.innerBBox.grow(border));
            EXPECT_TRUE(t.bbox.contains(p.innerBBox));
            area += p.innerBBox.area();
            if (x + 1 < t.numPatchesX) {
                PatchInfo r = map.patch(t, x + 1, y);
                EXPECT_TRUE(p.innerBBox.intersection(r.innerBBox).empty());
                EXPECT_EQ(r.innerBBox.minX(), p.innerBBox.maxX() + 1);
                Box2I ov = p.outerBBox.intersection(r.outerBBox);
                EXPECT_EQ(ov.width(), 2 * border);
                EXPECT_EQ(ov.height(), inner + 2 * border);
            }
            if (y + 1 < t.numPatchesY) {
                PatchInfo u = map.patch(t, x, y + 1);
                EXPECT_EQ(u.innerBBox.minY(), p.innerBBox.maxY() + 1);
                EXPECT_EQ(p.outerBBox.intersection(u.outerBBox).height(), 2 * border);
            }
        }
    }
    EXPECT_EQ(area, t.bbox.area());  // disjoint neighbours + full area => exact tiling
    EXPECT_THROW(map.patch(t, t.numPatchesX, 0), NotFoundError);
    EXPECT_THROW(map.patch(t, t.numPatches()), NotFoundError);
}

TEST(SkyMap, PatchesTileTheTractAndOverlapByTheBorder) {
    const SkyMap small(smallConfig());
    for (const auto& t : small.tracts()) checkPatchGrid(small, t);
    const SkyMap& map = defaultMap();
    for (int id : {0, 1, 500, 9469, 18000, 18937}) checkPatchGrid(map, map.tract(id));
    // findPatch agrees with the pixel grid on random pixel centres.
    std::mt19937_64 rng(5);
    for (int id : {0, 700, 9469}) {
        const TractInfo& t = map.tract(id);
        std::uniform_int_distribution<int> ux(0, t.bbox.width() - 1), uy(0, t.bbox.height() - 1);
        for (int i = 0; i < 2000; ++i) {
            Point2I ip{ux(rng), uy(rng)};
            PatchInfo p = map.findPatch(t, t.wcs->pixelToSky(Point2D{double(ip.x), double(ip.y)}));
            EXPECT_TRUE(p.innerBBox.contains(ip)) << ip.x << "," << ip.y;
        }
    }
}

TEST(SkyMap, PolygonsMatchTheRegions) {
    const SkyMap map(smallConfig());
    for (const auto& t : map.tracts()) {
        std::vector<SpherePoint> poly = map.tractPolygon(t.id);
        ASSERT_GE(poly.size(), 4u);
        for (const auto& v : poly) {
            // A point nudged from the corner toward the centre is inside.
            SpherePoint in = v.offset(v.bearingTo(t.center), 1.0 * arcseconds);
            EXPECT_TRUE(t.containsInner(in)) << t.id << " " << v;
        }
        PatchInfo p = map.patch(t, t.numPatches() - 1);
        auto corners = map.patchPolygon(t, p, true);
        ASSERT_EQ(corners.size(), 4u);
        Point2D c2 = t.wcs->skyToPixel(corners[2]);
        EXPECT_NEAR(c2.x, p.outerBBox.maxX() + 0.5, 1e-6);
        EXPECT_NEAR(c2.y, p.outerBBox.maxY() + 0.5, 1e-6);
    }
}

/// A detector-like square polygon of side `sideDeg` at `center`, rotated by `rot`, with its TAN WCS.
std::shared_ptr<const Wcs> detectorWcs(const SpherePoint& center, double sideDeg, Angle rot, int npix) {
    return Wcs::makeTan({0.5 * (npix - 1), 0.5 * (npix - 1)}, center, sideDeg / npix * degrees, rot);
}

void checkOverlaps(const SkyMap& map, std::uint64_t seed, int nPolygons, double sideDeg, bool bruteForce) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int npix = 4000;
    for (int k = 0; k < nPolygons; ++k) {
        SpherePoint c = randomPoint(rng);
        if (k % 5 == 0) c = SpherePoint::fromDegrees(360.0 * u(rng), (u(rng) < 0.5 ? -1 : 1) * (90.0 - 2.0 * u(rng)));
        auto dw = detectorWcs(c, sideDeg, u(rng) * 360.0 * degrees, npix);
        std::vector<SpherePoint> poly;
        for (Point2D q : {Point2D{-0.5, -0.5}, Point2D{npix - 0.5, -0.5}, Point2D{npix - 0.5, npix - 0.5},
                          Point2D{-0.5, npix - 0.5}}) {
            poly.push_back(dw->pixelToSky(q));
        }
        auto result = map.findOverlaps(poly);
        std::map<int, std::set<int>> got;
        for (const auto& [tid, patches] : result) {
            EXPECT_FALSE(patches.empty());
            EXPECT_TRUE(std::is_sorted(patches.begin(), patches.end()));
            got[tid].insert(patches.begin(), patches.end());
        }
        EXPECT_EQ(got.size(), result.size());
        // Centre and corners: their own tract and patch are listed.
        std::vector<SpherePoint> samples = poly;
        samples.push_back(c);
        for (int i = 0; i < (bruteForce ? 300 : 0); ++i) {
            samples.push_back(dw->pixelToSky(Point2D{u(rng) * npix - 0.5, u(rng) * npix - 0.5}));
        }
        for (std::size_t i = 0; i < samples.size(); ++i) {
            const SpherePoint& s = samples[i];
            const TractInfo& t = map.tract(map.findTract(s));
            PatchInfo p = map.findPatch(t, s);
            ASSERT_TRUE(got.count(t.id)) << "tract " << t.id << " missing for " << s;
            EXPECT_TRUE(got[t.id].count(p.index)) << "patch " << p.index << " of tract " << t.id << " missing";
        }
        if (!bruteForce) continue;
        // Brute force: every (tract, patch) whose outer box holds a sample is listed.
        for (const auto& t : map.tracts()) {
            if (t.center.separation(c).asDegrees() > t.outerRadiusDeg + sideDeg) continue;
            for (const auto& s : samples) {
                Point2D q = t.wcs->skyToPixel(s);
                if (!std::isfinite(q.x)) continue;
                const int inner = map.config().patchInnerDimension;
                const int cx = int(std::floor((q.x + 0.5) / inner)), cy = int(std::floor((q.y + 0.5) / inner));
                for (int py = std::max(0, cy - 1); py <= std::min(t.numPatchesY - 1, cy + 1); ++py) {
                    for (int px = std::max(0, cx - 1); px <= std::min(t.numPatchesX - 1, cx + 1); ++px) {
                        PatchInfo p = map.patch(t, px, py);
                        if (Box2D(p.outerBBox).contains(q)) {
                            EXPECT_TRUE(got.count(t.id) && got[t.id].count(p.index))
                                << "tract " << t.id << " patch " << p.index << " holds " << s;
                        }
                    }
                }
            }
        }
        // Nothing absurd: a detector smaller than a patch touches a handful of patches per tract.
        for (const auto& [tid, patches] : got) {
            EXPECT_LE(patches.size(), 9u) << "tract " << tid;
        }
    }
}

TEST(SkyMap, FindOverlapsOfDetectorPolygons) {
    // Small map: 400 px patches at 1"/px = 6.7'; a 4000-px detector of side 5' (never more than 3x3 patches).
    checkOverlaps(SkyMap(smallConfig()), 31, 150, 5.0 / 60.0, true);
    // Default map: a Rubin detector (4000 px at 0.2" = 13.3').
    checkOverlaps(defaultMap(), 32, 300, 4000 * 0.2 / 3600.0, false);
    EXPECT_THROW(defaultMap().findOverlaps({SpherePoint::fromDegrees(0, 0)}), InvalidInputError);
}

/// Tract ids that may hold `p` by brute force over the neighbours: both caps, and in the rings of dec
/// index (from the test's own arithmetic) -1..+1 around p's, the slices -2..+2 around p's RA slice.
std::vector<int> candidateTracts(const SkyMap& map, const SpherePoint& p) {
    const int nr = map.numRings();
    const double s = map.ringSize().asRadians();
    const double t = (p.dec().asRadians() + 0.5 * std::numbers::pi - 0.5 * s) / s;
    const int r0 = int(std::floor(t));
    std::vector<int> ids{0, int(map.numTracts()) - 1};
    int first = 1;
    std::vector<int> firsts(nr);
    for (int r = 0; r < nr; ++r) {
        firsts[r] = first;
        first += map.numTractsInRing(r);
    }
    for (int r = r0 - 1; r <= r0 + 1; ++r) {
        if (r < 0 || r >= nr) continue;
        const int n = map.numTractsInRing(r);
        const double ra = p.ra().asRadians() - map.config().raOffsetDeg * std::numbers::pi / 180.0;
        const int j0 = int(std::floor(ra / (2.0 * std::numbers::pi) * n + 0.5));
        for (int d = -2; d <= 2; ++d) ids.push_back(firsts[r] + ((j0 + d) % n + n) % n);
    }
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

/// A square polygon of side `sideDeg` about `c`.
std::vector<SpherePoint> squareAround(const SpherePoint& c, double sideDeg, Angle rot) {
    auto w = detectorWcs(c, sideDeg, rot, 1000);
    std::vector<SpherePoint> poly;
    for (Point2D q : {Point2D{-0.5, -0.5}, Point2D{999.5, -0.5}, Point2D{999.5, 999.5}, Point2D{-0.5, 999.5}})
        poly.push_back(w->pixelToSky(q));
    return poly;
}

/// lsst_cells_v1 with more rings and a derived patch grid (the fixed 10 x 10 grid of 1.7 deg would make
/// every tract's bbox tens of tracts wide: each polygon would overlap hundreds of tracts).
SkyMapConfig manyRingsConfig(int numRings) {
    SkyMapConfig cfg;
    cfg.numRings = numRings;
    cfg.numPatchesPerSide = 0;
    return cfg;
}

void checkLargeMap(int numRings, std::size_t expectedTracts, std::uint64_t seed) {
    const SkyMapConfig cfg = manyRingsConfig(numRings);
    const SkyMap map(cfg);
    EXPECT_EQ(map.numTracts(), expectedTracts);
    // Construction builds at most a handful of tracts (none for these configs: the analytic bounds suffice).
    EXPECT_LE(map.numCachedTracts(), 4u);
    std::size_t sum = 2;
    for (int r = 0; r < map.numRings(); ++r) sum += std::size_t(map.numTractsInRing(r));
    EXPECT_EQ(sum, map.numTracts());
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int i = 0; i < 400; ++i) {
        SpherePoint p = randomPoint(rng);
        if (i % 10 == 0) p = SpherePoint::fromDegrees(360.0 * u(rng), (u(rng) < 0.5 ? -1 : 1) * (90.0 - 0.05 * u(rng)));
        const int id = map.findTract(p);
        const TractInfo& t = map.tract(id);
        ASSERT_EQ(t.id, id);
        ASSERT_TRUE(t.containsInner(p)) << p;
        ASSERT_TRUE(insideBBox(t, p)) << p;
        int claims = 0, claimant = -1;
        for (int c : candidateTracts(map, p)) {
            if (map.tract(c).containsInner(p)) {
                ++claims;
                claimant = c;
            }
        }
        ASSERT_EQ(claims, 1) << p;
        ASSERT_EQ(claimant, id) << p;
        const PatchInfo patch = map.findPatch(t, p);
        EXPECT_TRUE(Box2D(patch.innerBBox).contains(t.wcs->skyToPixel(p)));
        // A polygon about p (from a tenth of a ring to two rings wide) lists p's tract and patch, and every
        // candidate-neighbour (tract, patch) whose outer box holds a polygon vertex or p.
        const double side = map.ringSize().asDegrees() * (0.1 + 1.9 * u(rng));
        const auto poly = squareAround(p, side, u(rng) * 360.0 * degrees);
        const auto overlaps = map.findOverlaps(poly);
        std::map<int, std::set<int>> got;
        for (const auto& [tid, patches] : overlaps) got[tid].insert(patches.begin(), patches.end());
        ASSERT_TRUE(got.count(id)) << p;
        EXPECT_TRUE(got[id].count(patch.index)) << p;
        std::vector<SpherePoint> samples = poly;
        samples.push_back(p);
        for (const auto& sp : samples) {
            for (int c : candidateTracts(map, sp)) {
                const TractInfo& ct = map.tract(c);
                const Point2D q = ct.wcs->skyToPixel(sp);
                if (!std::isfinite(q.x) || !Box2D(ct.bbox.grow(cfg.patchBorder)).contains(q)) continue;
                const int inner = cfg.patchInnerDimension;
                const int cx = int(std::floor((q.x + 0.5) / inner)), cy = int(std::floor((q.y + 0.5) / inner));
                for (int py = std::max(0, cy - 1); py <= std::min(ct.numPatchesY - 1, cy + 1); ++py) {
                    for (int px = std::max(0, cx - 1); px <= std::min(ct.numPatchesX - 1, cx + 1); ++px) {
                        const PatchInfo pp = map.patch(ct, px, py);
                        if (Box2D(pp.outerBBox).contains(q)) {
                            EXPECT_TRUE(got.count(c) && got[c].count(pp.index)) << "tract " << c << " patch " << pp.index;
                        }
                    }
                }
            }
        }
    }
    // Only the tracts near the points were built (a few hundred per polygon: a 3000-px patch is several
    // of these tracts wide, so each tract's bbox reaches over its neighbours).
    EXPECT_LT(map.numCachedTracts(), map.numTracts() / 20);
    EXPECT_THROW(map.tract(int(map.numTracts())), NotFoundError);
    const TractInfo& last = map.tract(int(map.numTracts()) - 1);
    EXPECT_EQ(last.ring, numRings);
    EXPECT_EQ(map.findTract(SpherePoint::fromDegrees(3.0, 90.0)), last.id);
}

TEST(SkyMap, LargeMapsAreLazy) {
    checkLargeMap(2000, 5103077u, 41);
    checkLargeMap(10000, 127374394u, 42);
}

TEST(SkyMap, LazyTractsEqualEagerCopiesAndCopies) {
    const SkyMap map(smallConfig());
    EXPECT_EQ(map.numCachedTracts(), 0u);
    const TractInfo& t7 = map.tract(7);
    EXPECT_EQ(&map.tract(7), &t7) << "a tract is built once and stays put";
    const std::vector<TractInfo>& all = map.tracts();
    ASSERT_EQ(all.size(), map.numTracts());
    EXPECT_EQ(map.numCachedTracts(), map.numTracts());
    const SkyMap copy(map);  // empty cache, same layout
    EXPECT_EQ(copy.numCachedTracts(), 0u);
    for (std::size_t id = 0; id < all.size(); ++id) {
        const TractInfo& a = all[id];
        const TractInfo& b = copy.tract(int(id));
        EXPECT_EQ(a.id, b.id);
        EXPECT_EQ(a.bbox, b.bbox);
        EXPECT_TRUE(*a.wcs == *b.wcs);
        EXPECT_EQ(a.outerRadiusDeg, b.outerRadiusDeg);
        EXPECT_EQ(a.raMinDeg, b.raMinDeg);
        EXPECT_EQ(a.decMaxDeg, b.decMaxDeg);
        EXPECT_EQ(a.numPatches(), b.numPatches());
    }
}

TEST(SkyMap, ConcurrentLazyAccessMatchesSerial) {
    const SkyMapConfig cfg = manyRingsConfig(2000);
    // Polygons clustered in a few fields so that the threads race for the same tracts.
    std::mt19937_64 rng(51);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<std::vector<SpherePoint>> polys;
    std::vector<SpherePoint> pts;
    for (int f = 0; f < 4; ++f) {
        const SpherePoint field = randomPoint(rng);
        for (int k = 0; k < 150; ++k) {
            const SpherePoint c = field.offset(u(rng) * 360.0 * degrees, u(rng) * 1.0 * degrees);
            polys.push_back(squareAround(c, 0.2, u(rng) * 360.0 * degrees));
            pts.push_back(c);
        }
    }
    std::vector<std::vector<std::pair<int, std::vector<int>>>> serial;
    std::vector<std::tuple<int, int, double>> serialTracts;
    {
        const SkyMap ref(cfg);
        for (const auto& p : polys) serial.push_back(ref.findOverlaps(p));
        for (const auto& p : pts) {
            const TractInfo& t = ref.tract(ref.findTract(p));
            serialTracts.emplace_back(t.id, ref.findPatch(t, p).index, t.outerRadiusDeg);
        }
    }
    const SkyMap map(cfg);  // cold
    constexpr int kThreads = 4;
    std::vector<std::vector<std::vector<std::pair<int, std::vector<int>>>>> got(kThreads);
    std::vector<std::vector<std::tuple<int, int, double>>> gotTracts(kThreads);
    std::vector<std::thread> threads;
    for (int k = 0; k < kThreads; ++k) {
        threads.emplace_back([&, k] {
            // Each thread walks the polygons from a different start so first uses interleave.
            const std::size_t n = polys.size();
            got[k].resize(n);
            gotTracts[k].resize(n);
            for (std::size_t i0 = 0; i0 < n; ++i0) {
                const std::size_t i = (i0 + std::size_t(k) * n / kThreads) % n;
                if (k % 2 == 0) {
                    got[k][i] = map.findOverlaps(polys[i]);
                    const TractInfo& t = map.tract(map.findTract(pts[i]));
                    gotTracts[k][i] = {t.id, map.findPatch(t, pts[i]).index, t.outerRadiusDeg};
                } else {
                    const TractInfo& t = map.tract(map.findTract(pts[i]));
                    gotTracts[k][i] = {t.id, map.findPatch(t, pts[i]).index, t.outerRadiusDeg};
                    got[k][i] = map.findOverlaps(polys[i]);
                }
            }
        });
    }
    for (auto& t : threads) t.join();
    for (int k = 0; k < kThreads; ++k) {
        EXPECT_TRUE(got[k] == serial) << "thread " << k;
        EXPECT_TRUE(gotTracts[k] == serialTracts) << "thread " << k;
    }
}

}  // namespace
}  // namespace drp
