// Tests of drivers/sim/SkyModel: number-count slopes and totals, the galaxy size-magnitude relation,
// stellar-locus and galaxy colours, shapes, proper motions and parallaxes, blends, light curves,
// asteroid trails, determinism and unique ids (many seeds), and the Gaia reference-star file read.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <set>

#include "core/Error.h"
#include "drivers/sim/SkyModel.h"
#include "io/FitsFile.h"
#include "sky/ReferenceCatalog.h"
#include "tests/support/TestSupport.h"

namespace drp {
namespace {

double median(std::vector<double> v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double capAreaDeg2(double radiusDeg) {
    return 2 * std::numbers::pi * (1 - std::cos(radiusDeg * std::numbers::pi / 180)) * std::pow(180 / std::numbers::pi, 2);
}

/// Least-squares slope of log10(counts per bin) against bin centre.
double countSlope(const std::vector<double>& mags, double lo, double hi, double binWidth) {
    const int nBins = int(std::lround((hi - lo) / binWidth));
    std::vector<double> counts(nBins, 0);
    for (double m : mags) {
        int b = int((m - lo) / binWidth);
        if (b >= 0 && b < nBins) counts[b] += 1;
    }
    double sx = 0, sy = 0, sxx = 0, sxy = 0, sw = 0;
    for (int b = 0; b < nBins; ++b) {
        if (counts[b] < 5) continue;
        const double x = lo + (b + 0.5) * binWidth, y = std::log10(counts[b]), w = counts[b];  // weight ~ 1/var(log N)
        sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
    }
    return (sw * sxy - sx * sy) / (sw * sxx - sx * sx);
}

SkyModelConfig quietConfig() {
    SkyModelConfig c;
    c.starDensityPerDeg2 = 0;
    c.galaxyDensityPerDeg2 = 0;
    c.transientsPerDeg2 = 0;
    c.asteroidsPerDeg2 = 0;
    return c;
}

TEST(SkyModel, DeterministicWithUniqueIdsManySeeds) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        SkyModelConfig c;
        c.seed = seed;
        c.radiusDeg = 0.25;
        c.transientsPerDeg2 = 100;
        c.asteroidsPerDeg2 = 50;
        const auto a = makeSkyCatalog(c);
        const auto b = makeSkyCatalog(c);
        ASSERT_EQ(a.size(), b.size());
        for (std::size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(a[i] == b[i]) << i;  // every field, bit for bit
        std::set<std::int64_t> ids;
        std::map<ObjectType, int> types;
        for (std::size_t i = 0; i < a.size(); ++i) {
            ASSERT_GT(a[i].id, 0);
            if (i > 0) {
                ASSERT_GT(a[i].id, a[i - 1].id);
            }
            ids.insert(a[i].id);
            ++types[a[i].type];
            // everything inside the simulated circle (transients sit in hosts near the edge: allow 10 arcsec)
            ASSERT_LE(SpherePoint::fromDegrees(a[i].raDeg, a[i].decDeg)
                          .separation(SpherePoint::fromDegrees(c.centerRaDeg, c.centerDecDeg))
                          .asDegrees(),
                      c.radiusDeg + 10.0 / 3600);
            for (double m : a[i].mag) ASSERT_TRUE(std::isfinite(m));
        }
        ASSERT_EQ(ids.size(), a.size());
        for (ObjectType t : {ObjectType::Star, ObjectType::Galaxy, ObjectType::VariableStar, ObjectType::Transient,
                             ObjectType::Asteroid})
            EXPECT_GT(types[t], 0) << objectTypeName(t) << " seed " << seed;
        SkyModelConfig other = c;
        other.seed = seed + 100;
        const auto d = makeSkyCatalog(other);
        EXPECT_TRUE(d.size() != a.size() || d[0].raDeg != a[0].raDeg);
    }
}

TEST(SkyModel, NumberCountsFollowTheConfiguredSlopesManySeeds) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        SkyModelConfig c = quietConfig();
        c.seed = seed;
        c.radiusDeg = 0.5;
        c.starDensityPerDeg2 = 40000;
        c.galaxyDensityPerDeg2 = 60000;
        c.blendFraction = 0;
        c.variableFraction = 0.1;
        const auto cat = makeSkyCatalog(c);
        std::vector<double> starR, galR;
        for (const auto& o : cat) {
            if (o.type == ObjectType::Star || o.type == ObjectType::VariableStar) starR.push_back(o.mag[2]);
            if (o.type == ObjectType::Galaxy) galR.push_back(o.mag[2]);
        }
        const double area = capAreaDeg2(c.radiusDeg);
        const double nStar = c.starDensityPerDeg2 * area, nGal = c.galaxyDensityPerDeg2 * area;
        EXPECT_NEAR(double(starR.size()), nStar, 5 * std::sqrt(nStar));
        EXPECT_NEAR(double(galR.size()), nGal, 5 * std::sqrt(nGal));
        EXPECT_NEAR(countSlope(starR, c.starMagBright, c.starMagFaint, 0.5), 0.3, 0.03) << "seed " << seed;
        EXPECT_NEAR(countSlope(galR, c.galaxyMagBright, c.galaxyMagFaint, 0.5), 0.4, 0.03) << "seed " << seed;
        EXPECT_GE(*std::min_element(starR.begin(), starR.end()), c.starMagBright);
        EXPECT_LE(*std::max_element(starR.begin(), starR.end()), c.starMagFaint);
        // the variable fraction
        const auto nVar = std::count_if(cat.begin(), cat.end(), [](const SimObject& o) { return o.type == ObjectType::VariableStar; });
        EXPECT_NEAR(double(nVar) / double(starR.size()), 0.1, 0.01);
    }
}

TEST(SkyModel, GalaxySizesShapesAndColoursManySeeds) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        SkyModelConfig c = quietConfig();
        c.seed = seed;
        c.radiusDeg = 0.4;
        c.galaxyDensityPerDeg2 = 40000;
        c.galaxyMagBright = 18;
        c.galaxyMagFaint = 26;
        c.galaxyCountSlope = 0.2;  // flatter, so the bright bins are populated
        const auto cat = makeSkyCatalog(c);
        std::map<int, std::vector<double>> sizeByMag;  // blue (disk-dominated) galaxies, 1-mag bins
        std::vector<double> e2sum;
        int brightRed = 0, bright = 0, faintRed = 0, faint = 0;
        for (const auto& o : cat) {
            ASSERT_EQ(o.type, ObjectType::Galaxy);
            ASSERT_GE(o.bulgeFraction, 0.0);
            ASSERT_LE(o.bulgeFraction, 1.0);
            ASSERT_GT(o.diskHlrArcsec, 0.0);
            ASSERT_GT(o.bulgeHlrArcsec, 0.0);
            const double e = std::hypot(o.e1, o.e2);
            ASSERT_LE(e, 0.8);
            e2sum.push_back(e * e);
            const double gr = o.mag[1] - o.mag[2];
            ASSERT_GT(gr, -0.6);
            ASSERT_LT(gr, 1.6);
            ASSERT_GT(o.mag[0] - o.mag[1], -0.5);  // u - g
            ASSERT_LT(o.mag[0] - o.mag[1], 3.0);
            const bool red = o.bulgeFraction >= 0.6;
            if (!red) sizeByMag[int(std::floor(o.mag[2]))].push_back(o.diskHlrArcsec);
            if (o.blendPartnerId != 0) continue;
            if (o.mag[2] < 20) ++bright, brightRed += gr > 0.7;
            if (o.mag[2] > 25) ++faint, faintRed += gr > 0.7;
        }
        // |e| rms
        double ms = 0;
        for (double v : e2sum) ms += v;
        EXPECT_NEAR(std::sqrt(ms / double(e2sum.size())), c.galaxyEllipticityRms, 0.02);
        // Size decreases with magnitude: ~1" at r = 20.5 to ~0.36" at r = 25.5 (blue galaxies are 1.1x the median).
        const double s20 = median(sizeByMag[20]), s25 = median(sizeByMag[25]);
        EXPECT_NEAR(s20, 1.1 * std::pow(10.0, -0.087 * 0.5), 0.1) << "seed " << seed;
        EXPECT_NEAR(s25 / s20, std::pow(10.0, -0.087 * 5), 0.06);
        for (int m = 19; m < 25; ++m) EXPECT_GT(median(sizeByMag[m]), median(sizeByMag[m + 1])) << m;
        // Red galaxies are common at the bright end and rare at the faint end.
        EXPECT_NEAR(double(brightRed) / bright, c.redFractionBright, 0.08);
        EXPECT_LT(double(faintRed) / faint, 0.2);
    }
}

TEST(SkyModel, StarsFollowTheLocusWithRealisticMotionsManySeeds) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        SkyModelConfig c = quietConfig();
        c.seed = seed;
        c.starDensityPerDeg2 = 20000;
        c.radiusDeg = 0.3;
        const auto cat = makeSkyCatalog(c);
        std::vector<double> pmBright, plxBright;
        for (const auto& o : cat) {
            const double ug = o.mag[0] - o.mag[1], gr = o.mag[1] - o.mag[2], ri = o.mag[2] - o.mag[3];
            const double iz = o.mag[3] - o.mag[4], zy = o.mag[4] - o.mag[5];
            ASSERT_GE(gr, -0.4);
            ASSERT_LE(gr, 1.55);
            ASSERT_GE(ug, 0.9);
            ASSERT_LE(ug, 2.75);
            ASSERT_GE(ri, -0.2);
            ASSERT_LE(ri, 2.2);
            ASSERT_GE(iz, -0.2);
            ASSERT_LE(iz, 1.2);
            ASSERT_GE(zy, -0.1);
            ASSERT_LE(zy, 0.6);
            // a locus: redder in g - r means redder in r - i (monotonic)
            if (gr > 1.2) {
                ASSERT_GT(ri, 0.4);
            }
            if (gr < 0.5) {
                ASSERT_LT(ri, 0.3);
            }
            ASSERT_GT(o.parallaxMas, 0.0);
            ASSERT_LT(o.parallaxMas, 100.0);
            if (o.mag[2] < 21) {
                pmBright.push_back(std::hypot(o.pmRaMasPerYr, o.pmDecMasPerYr));
                plxBright.push_back(o.parallaxMas);
            }
        }
        // proper motions of a few mas/yr with a tail; parallaxes 0.1 - 10 mas
        const double pmMed = median(pmBright);
        EXPECT_GT(pmMed, 0.5);
        EXPECT_LT(pmMed, 10.0);
        std::sort(pmBright.begin(), pmBright.end());
        EXPECT_GT(pmBright[pmBright.size() * 99 / 100], 4 * pmMed);
        std::sort(plxBright.begin(), plxBright.end());
        EXPECT_GT(plxBright[plxBright.size() / 20], 0.03);
        EXPECT_LT(plxBright[plxBright.size() / 20], 0.3);
        EXPECT_GT(plxBright[plxBright.size() * 95 / 100], 1.0);
        EXPECT_LT(plxBright[plxBright.size() * 95 / 100], 15.0);
    }
}

TEST(SkyModel, BlendedPairsAtArcsecondSeparations) {
    SkyModelConfig c = quietConfig();
    c.galaxyDensityPerDeg2 = 20000;
    c.radiusDeg = 0.3;
    c.blendFraction = 0.1;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        c.seed = seed;
        const auto cat = makeSkyCatalog(c);
        std::map<std::int64_t, const SimObject*> byId;
        for (const auto& o : cat) byId[o.id] = &o;
        int companions = 0;
        for (const auto& o : cat) {
            if (o.blendPartnerId == 0) continue;
            ++companions;
            const SimObject* p = byId.at(o.blendPartnerId);
            const double sep = SpherePoint::fromDegrees(o.raDeg, o.decDeg)
                                   .separation(SpherePoint::fromDegrees(p->raDeg, p->decDeg))
                                   .asArcseconds();
            ASSERT_GE(sep, c.blendSeparationMinArcsec - 1e-6);
            ASSERT_LE(sep, c.blendSeparationMaxArcsec + 1e-6);
            ASSERT_GE(o.mag[2], p->mag[2]);  // companions are the fainter member
        }
        const double primaries = double(cat.size() - companions);
        EXPECT_NEAR(companions / primaries, c.blendFraction, 4 * std::sqrt(c.blendFraction / primaries));
    }
}

TEST(SkyModel, LightCurves) {
    SimObject v;
    v.type = ObjectType::VariableStar;
    v.mag = {19.5, 18.5, 18.0, 17.8, 17.7, 17.6};
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        v.periodDays = 0.3 + seed;
        v.amplitudeMag = 0.1 * double(seed);
        v.phase = 0.07 * double(seed);
        // periodic, mean = the catalog magnitude, peak-to-peak = the amplitude in r, larger in u
        double mean = 0, lo = 1e9, hi = -1e9, loU = 1e9, hiU = -1e9;
        const int n = 4000;
        for (int k = 0; k < n; ++k) {
            const double t = 61000 + v.periodDays * k / n;
            const double m = magnitudeAt(v, 2, t);
            ASSERT_NEAR(magnitudeAt(v, 2, t + 3 * v.periodDays), m, 1e-9);
            mean += m / n;
            lo = std::min(lo, m), hi = std::max(hi, m);
            loU = std::min(loU, magnitudeAt(v, 0, t)), hiU = std::max(hiU, magnitudeAt(v, 0, t));
        }
        EXPECT_NEAR(mean, 18.0, 1e-3);
        EXPECT_NEAR(hi - lo, v.amplitudeMag, 1e-4);
        EXPECT_GT(hiU - loU, hi - lo);
    }
    SimObject sn;
    sn.type = ObjectType::Transient;
    sn.mag = {22.5, 21.95, 22.0, 22.3, 22.4, 22.5};
    sn.peakMjd = 61020;
    sn.riseDays = 15;
    sn.declineDays = 30;
    for (int b = 0; b < 6; ++b) {
        EXPECT_TRUE(std::isinf(magnitudeAt(sn, b, 61000)));  // before explosion
        EXPECT_TRUE(std::isinf(magnitudeAt(sn, b, 61005)));  // at explosion
        EXPECT_NEAR(magnitudeAt(sn, b, 61020), sn.mag[b], 1e-12);
        double prev = 1e9;
        for (double t = 61005.5; t <= 61020; t += 0.5) {  // brightening
            const double m = magnitudeAt(sn, b, t);
            ASSERT_LT(m, prev);
            prev = m;
        }
        for (double t = 61020.5; t < 61100; t += 0.5) {  // fading
            const double m = magnitudeAt(sn, b, t);
            ASSERT_GT(m, prev);
            prev = m;
        }
    }
    // r fades by 2.5 log10(e) mag per e-folding time; u fades faster (reddening)
    EXPECT_NEAR(magnitudeAt(sn, 2, 61050) - sn.mag[2], 2.5 / std::log(10.0), 1e-9);
    EXPECT_GT(magnitudeAt(sn, 0, 61050) - sn.mag[0], magnitudeAt(sn, 2, 61050) - sn.mag[2]);
    SimObject g;
    g.type = ObjectType::Galaxy;
    g.mag = {23, 22, 21, 20.5, 20.3, 20.2};
    EXPECT_EQ(magnitudeAt(g, 3, 61234.5), 20.5);
    EXPECT_THROW(magnitudeAt(g, 6, 0), InvalidInputError);
}

TEST(SkyModel, PositionsOverTimeManySeeds) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        SkyModelConfig c;
        c.seed = seed;
        c.radiusDeg = 0.2;
        c.galaxyDensityPerDeg2 = 1000;
        c.asteroidsPerDeg2 = 300;
        const auto cat = makeSkyCatalog(c);
        int asteroids = 0;
        for (const auto& o : cat) {
            const SpherePoint p0 = SpherePoint::fromDegrees(o.raDeg, o.decDeg);
            if (o.type == ObjectType::Asteroid) {
                ++asteroids;
                const double rate = std::hypot(o.rateRaDegPerDay, o.rateDecDegPerDay);
                ASSERT_GE(rate, c.asteroidRateMinDegPerDay);
                ASSERT_LE(rate, c.asteroidRateMaxDegPerDay);
                ASSERT_GE(o.epochMjd, c.timeStartMjd);
                ASSERT_LE(o.epochMjd, c.timeEndMjd);
                ASSERT_NEAR(positionAt(o, o.epochMjd + 0.25).separation(p0).asDegrees(), 0.25 * rate, 1e-9);
                ASSERT_NEAR(positionAt(o, o.epochMjd - 0.25).separation(p0).asDegrees(), 0.25 * rate, 1e-9);
                // trails at least 3 pixels of 0.2 arcsec in a 30 s exposure
                const double trailPx = positionAt(o, o.epochMjd + 15.0 / 86400)
                                           .separation(positionAt(o, o.epochMjd - 15.0 / 86400))
                                           .asArcseconds() / 0.2;
                ASSERT_GE(trailPx, 3.0);
                // the motion's direction
                const double pa = p0.bearingTo(positionAt(o, o.epochMjd + 0.01)).asRadians();
                ASSERT_NEAR(std::remainder(pa - std::atan2(o.rateRaDegPerDay, o.rateDecDegPerDay), 2 * std::numbers::pi), 0, 1e-6);
            } else if (o.type == ObjectType::Star || o.type == ObjectType::VariableStar) {
                // after 10 years the star has moved by pm * 10 yr, up to the parallax
                const double t = o.epochMjd + 10 * kDaysPerJulianYear;
                const double moved = positionAt(o, t).separation(p0).asMilliarcseconds();
                const double pm = 10 * std::hypot(o.pmRaMasPerYr, o.pmDecMasPerYr);
                ASSERT_NEAR(moved, pm, 1.0001 * 1.02 * o.parallaxMas + 1e-6);
            } else {
                ASSERT_EQ(positionAt(o, 70000.0), p0);
            }
        }
        EXPECT_GT(asteroids, 0);
    }
}

TEST(SkyModel, ReadsGaiaStarsInTheirRegion) {
    const auto dir = test::realDataDir() / "legacysurvey" / "testcase3" / "gaia";
    if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no shared data at " << dir;
    std::vector<std::string> files;
    for (const char* f : {"chunk-04759.fits", "chunk-04886.fits", "chunk-04887.fits", "chunk-05015.fits"})
        files.push_back((dir / f).string());
    for (double radius : {0.05, 0.1}) {
        SkyModelConfig c = quietConfig();
        c.centerRaDeg = 244.725;
        c.centerDecDeg = 12.0;
        c.radiusDeg = radius;
        c.starDensityPerDeg2 = 20000;
        c.referenceStarsFile = files[0];
        c.extraReferenceStarsFiles = {files.begin() + 1, files.end()};
        const SpherePoint center = SpherePoint::fromDegrees(c.centerRaDeg, c.centerDecDeg);
        // Direct count of the file rows inside the circle.
        std::set<std::int64_t> expected;
        std::map<std::int64_t, double> gMag;
        for (const auto& path : files) {
            FitsFile f(path, FitsFile::Mode::Read);
            f.moveToHdu(1);
            const auto ra = f.readColumn<double>("ra");
            const auto dec = f.readColumn<double>("dec");
            const auto sid = f.readColumn<std::int64_t>("source_id");
            const auto g = f.readColumn<double>("phot_g_mean_mag");
            for (std::size_t i = 0; i < ra.size(); ++i)
                if (SpherePoint::fromDegrees(ra[i], dec[i]).separation(center).asDegrees() <= radius) {
                    expected.insert(sid[i]);
                    gMag[sid[i]] = g[i];
                }
        }
        ASSERT_GT(expected.size(), 20u);
        const auto cat = makeSkyCatalog(c);
        std::set<std::int64_t> got;
        int syntheticBright = 0, syntheticFaint = 0;
        for (const auto& o : cat) {
            if (o.fromReferenceFile) {
                got.insert(o.referenceSourceId);
                ASSERT_EQ(o.type, ObjectType::Star);
                ASSERT_NEAR(o.epochMjd, 57205.875, 1e-6);  // Gaia DR2 epoch J2015.5
                ASSERT_NEAR(o.mag[2], gMag.at(o.referenceSourceId), 1.0);  // r within a magnitude of G
                ASSERT_GE(o.parallaxMas, 0.0);
            } else {
                (o.mag[2] <= c.referenceCompletenessMag ? syntheticBright : syntheticFaint)++;
            }
        }
        EXPECT_EQ(got, expected) << "radius " << radius;
        // Synthetic stars fill in only below the file's completeness limit inside its footprint.
        const double area = capAreaDeg2(radius);
        EXPECT_GT(syntheticFaint, 0);
        EXPECT_LT(syntheticBright, 0.05 * c.starDensityPerDeg2 * area * 0.1);  // << the ~10% that would be bright
    }
    SkyModelConfig bad = quietConfig();
    bad.referenceStarsFile = "/nonexistent/gaia.fits";
    EXPECT_THROW(makeSkyCatalog(bad), Error);
}

TEST(SkyModel, ValidateRejectsBadConfigs) {
    EXPECT_NO_THROW(SkyModelConfig().validate());
    auto expectBad = [](auto mutate) {
        SkyModelConfig c;
        mutate(c);
        EXPECT_THROW(c.validate(), ConfigError);
    };
    expectBad([](SkyModelConfig& c) { c.radiusDeg = 0; });
    expectBad([](SkyModelConfig& c) { c.centerDecDeg = 91; });
    expectBad([](SkyModelConfig& c) { c.starMagFaint = c.starMagBright; });
    expectBad([](SkyModelConfig& c) { c.galaxyCountSlope = -0.1; });
    expectBad([](SkyModelConfig& c) { c.blendSeparationMaxArcsec = 0.5; });
    expectBad([](SkyModelConfig& c) { c.asteroidRateMinDegPerDay = 0; });
    expectBad([](SkyModelConfig& c) { c.timeEndMjd = c.timeStartMjd - 1; });
    expectBad([](SkyModelConfig& c) { c.variableFraction = 1.5; });
    EXPECT_EQ(simBandIndex("u"), 0);
    EXPECT_EQ(simBandIndex("y"), 5);
    EXPECT_EQ(simBandIndex("q"), -1);
    EXPECT_NEAR(abMagToNanojansky(31.4), 1.0, 1e-12);
    EXPECT_NEAR(nanojanskyToAbMag(abMagToNanojansky(22.7)), 22.7, 1e-12);
    EXPECT_NEAR(abMagToNanojansky(0.0), 3631e9, 3631e9 * 1e-3);  // 3631 Jy
}

}  // namespace
}  // namespace drp
