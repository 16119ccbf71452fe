// Tests of drivers/sim/ObservingPlan: the schedule (counts, ids, day_obs, no overlapping exposures, airmass
// limits), the statistics of conditions against the config (many visits, several seeds), the header WCS
// offset from the true WCS by exactly the pointing and rotation errors, the true WCS against the direct
// chain pixel -> focal plane -> distortion -> tangent plane -> sky, the configured distortion at detector
// corners, the photometric chain, the sky and PSF across the focal plane, and determinism.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <random>
#include <set>

#include "core/Error.h"
#include "drivers/sim/ObservingPlan.h"
#include "drivers/sim/SkyModel.h"

namespace drp {
namespace {

constexpr double kPi = std::numbers::pi;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

double rms(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x * x;
    return std::sqrt(s / double(v.size()));
}

/// The direct chain, written independently of trueWcs: detector pixel -> focal plane (mm) -> nominal field
/// angle -> radial cubic distortion -> (east, north) tangent-plane offsets -> gnomonic deprojection about the
/// boresight.
SpherePoint directChain(const VisitPlan& v, const Camera& cam, const Detector& det, const ObservingConfig& cfg,
                        Point2D pixel) {
    const Point2D mm = det.pixelToFocalPlane(pixel);
    const double px = mm.x * cam.plateScaleArcsecPerMm() / 3600.0, py = mm.y * cam.plateScaleArcsecPerMm() / 3600.0;  // deg
    const double f = 1 + cfg.distortionCoeffPerDeg2 * (px * px + py * py);
    const double tx = px * f, ty = py * f;
    const double c = cos(v.rotation), s = sin(v.rotation);
    const double east = -c * tx + s * ty, north = s * tx + c * ty;  // +y at PA rotation, +x 90 deg west of it
    const double rho = std::hypot(east, north) * kPi / 180;          // tangent-plane radius (rad)
    if (rho == 0) return v.boresight;
    return v.boresight.offset(Angle::fromRadians(std::atan2(east, north)), Angle::fromRadians(std::atan(rho)));
}

double polyEval(const Eigen::MatrixXd& m, int order, double u, double v) {
    double s = 0;
    for (int p = 0; p <= order; ++p)
        for (int q = 0; p + q <= order; ++q) s += m(p, q) * std::pow(u, p) * std::pow(v, q);
    return s;
}

TEST(ObservingPlan, ScheduleIdsAndDayObs) {
    EXPECT_EQ(dayObsFromMjd(51544.5), 20000101);   // 2000-01-01 12:00 UTC
    EXPECT_EQ(dayObsFromMjd(51544.49), 19991231);  // before noon UTC it is still the previous night
    EXPECT_EQ(dayObsFromMjd(61000.0), 20251120);   // 2025-11-21 00:00 UTC: the night of 2025-11-20
    EXPECT_EQ(dayObsFromMjd(60369.7), 20240229);   // leap day
    EXPECT_EQ(dayObsFromMjd(60000.6), 20230225);   // MJD 60000 = 2023-02-25
    EXPECT_NEAR(greenwichMeanSiderealTimeDeg(51544.5), 280.46061837, 1e-9);
    EXPECT_NEAR(airmassFromAltitude(90), 1.0, 1e-3);
    EXPECT_NEAR(airmassFromAltitude(30), 1.995, 0.01);
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        ObservingConfig cfg;
        cfg.bands = {"u", "g", "r", "i", "z", "y"};
        cfg.visitsPerBand = 7;
        cfg.nights = 4;
        const auto plan = makeObservingPlan(cfg, seed);
        ASSERT_EQ(plan.size(), 42u);
        std::set<std::int64_t> ids;
        std::map<std::string, int> perBand;
        for (std::size_t i = 0; i < plan.size(); ++i) {
            const auto& v = plan[i];
            ids.insert(v.visit);
            ++perBand[v.band];
            ASSERT_EQ(v.visit, v.dayObs * 100000 + v.seqNum);
            ASSERT_EQ(v.dayObs, dayObsFromMjd(v.mjd));
            ASSERT_EQ(v.exposureTimeS, 30.0);
            ASSERT_GE(v.night, 0);
            ASSERT_LT(v.night, 4);
            if (i > 0) {
                ASSERT_GE(v.mjd - plan[i - 1].mjd, (cfg.exposureTimeS + cfg.visitGapS) / 86400 * 0.999);  // no overlap
                if (v.dayObs == plan[i - 1].dayObs) {
                    ASSERT_EQ(v.seqNum, plan[i - 1].seqNum + 1);
                }
            }
            ASSERT_GE(v.mjd, cfg.startMjd + v.night - 0.5);
            ASSERT_LE(v.mjd, cfg.startMjd + v.night + 1.5);
            ASSERT_GE(v.airmass, 1.0);
            ASSERT_LE(v.airmass, cfg.maxAirmass * 1.01);  // limit planned for the field centre; dithers move it a bit
            ASSERT_NEAR(v.airmass, airmassFromAltitude(v.altitudeDeg), 1e-12);
            // hour angle and altitude agree with the site and time
            const double lst = greenwichMeanSiderealTimeDeg(v.mjd) + cfg.siteLongitudeDeg;
            ASSERT_NEAR(std::remainder(lst - v.boresight.ra().asDegrees() - v.hourAngleDeg, 360.0), 0.0, 1e-9);
            const double lat = cfg.siteLatitudeDeg * kPi / 180, dec = v.boresight.dec().asRadians();
            const double sinAlt = std::sin(lat) * std::sin(dec) + std::cos(lat) * std::cos(dec) * std::cos(v.hourAngleDeg * kPi / 180);
            ASSERT_NEAR(std::sin(v.altitudeDeg * kPi / 180), sinAlt, 1e-12);
            ASSERT_LE(std::fabs(v.hourAngleDeg), cfg.maxHourAngleHours * 15 + 1);
            ASSERT_LE(v.boresight.separation(SpherePoint::fromDegrees(cfg.fieldRaDeg, cfg.fieldDecDeg)).asDegrees(),
                      cfg.ditherRadiusDeg + 1e-12);
        }
        ASSERT_EQ(ids.size(), plan.size());
        for (const auto& b : cfg.bands) ASSERT_EQ(perBand[b], 7);
    }
}

TEST(ObservingPlan, ConditionsFollowTheConfigManySeeds) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        ObservingConfig cfg;
        cfg.bands = {"g", "r", "i"};
        cfg.visitsPerBand = 300;
        cfg.nights = 60;
        cfg.pointingErrorRmsArcsec = 20;
        cfg.rotationErrorRmsDeg = 0.3;
        const auto plan = makeObservingPlan(cfg, seed);
        std::vector<double> errRa, errDec, errRot, seeingR, skyR, e1;
        int photometric = 0;
        double minX = 10, maxX = 0;
        for (const auto& v : plan) {
            const std::size_t b = static_cast<std::size_t>(simBandIndex(v.band));
            ASSERT_NEAR(v.extinctionMag, cfg.extinctionPerAirmass[b] * v.airmass, 1e-12);
            ASSERT_GE(v.cloudMag, 0.0);
            ASSERT_LE(v.cloudMag, cfg.cloudMaxMag);
            photometric += v.cloudMag == 0.0;
            errRa.push_back(v.pointingErrorRaArcsec);
            errDec.push_back(v.pointingErrorDecArcsec);
            errRot.push_back(v.rotationErrorDeg);
            e1.push_back(v.psfE1);
            minX = std::min(minX, v.airmass), maxX = std::max(maxX, v.airmass);
            ASSERT_GE(v.rotation.asDegrees(), cfg.rotationMinDeg);
            ASSERT_LE(v.rotation.asDegrees(), cfg.rotationMaxDeg);
            if (v.band == "r") {
                seeingR.push_back(v.seeingFwhmArcsec / std::pow(v.airmass, 0.6));
                skyR.push_back(v.skyMagPerArcsec2 + 2.5 * std::log10(v.airmass));
            }
        }
        const double n = double(plan.size());
        EXPECT_NEAR(photometric / n, cfg.photometricFraction, 0.06);
        EXPECT_NEAR(rms(errRa), cfg.pointingErrorRmsArcsec, 0.1 * cfg.pointingErrorRmsArcsec);
        EXPECT_NEAR(rms(errDec), cfg.pointingErrorRmsArcsec, 0.1 * cfg.pointingErrorRmsArcsec);
        EXPECT_NEAR(rms(errRot), cfg.rotationErrorRmsDeg, 0.1 * cfg.rotationErrorRmsDeg);
        EXPECT_NEAR(rms(e1), cfg.psfEllipticityRms, 0.15 * cfg.psfEllipticityRms);
        EXPECT_NEAR(median(seeingR), cfg.seeingMedianArcsec, 0.05);
        EXPECT_NEAR(median(skyR), cfg.skyMagPerArcsec2[2], 0.05);
        EXPECT_LT(minX, 1.2);  // airmass leverage for the extinction fit
        EXPECT_GT(maxX, 1.4);
    }
    // Seeing is worse in the blue.
    ObservingConfig cfg;
    cfg.bands = {"u", "y"};
    cfg.visitsPerBand = 400;
    cfg.nights = 200;  // seeing varies from night to night: many nights for a sharp median
    double meanRatio = 0;
    const int nSeeds = 6;
    for (int seed = 0; seed < nSeeds; ++seed) {
        std::vector<double> su, sy;
        for (const auto& v : makeObservingPlan(cfg, std::uint64_t(100 + seed)))
            (v.band == "u" ? su : sy).push_back(v.seeingFwhmArcsec / std::pow(v.airmass, 0.6));
        meanRatio += median(su) / median(sy) / nSeeds;
    }
    EXPECT_NEAR(meanRatio, std::pow(367.0 / 971.0, -0.2), 0.03);
}

TEST(ObservingPlan, DeterministicInTheSeed) {
    ObservingConfig cfg;
    const auto a = makeObservingPlan(cfg, 17), b = makeObservingPlan(cfg, 17), c = makeObservingPlan(cfg, 18);
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        EXPECT_EQ(a[i].visit, b[i].visit);
        EXPECT_EQ(a[i].mjd, b[i].mjd);
        EXPECT_EQ(a[i].boresight, b[i].boresight);
        EXPECT_EQ(a[i].rotation, b[i].rotation);
        EXPECT_EQ(a[i].seeingFwhmArcsec, b[i].seeingFwhmArcsec);
        EXPECT_EQ(a[i].cloudMag, b[i].cloudMag);
        EXPECT_EQ(a[i].pointingErrorRaArcsec, b[i].pointingErrorRaArcsec);
        EXPECT_EQ(a[i].psfE2GradY, b[i].psfE2GradY);
    }
    EXPECT_NE(a[0].boresight, c[0].boresight);
    EXPECT_EQ(detectorThroughputOffsetMag(cfg, 4, "r", 3), detectorThroughputOffsetMag(cfg, 4, "r", 3));
    EXPECT_NE(detectorThroughputOffsetMag(cfg, 4, "r", 3), detectorThroughputOffsetMag(cfg, 4, "g", 3));
    EXPECT_NE(detectorThroughputOffsetMag(cfg, 4, "r", 3), detectorThroughputOffsetMag(cfg, 5, "r", 3));
}

TEST(ObservingPlan, HeaderWcsIsOffByThePointingErrorManySeeds) {
    const auto cam = makeLsstLikeCamera();
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        ObservingConfig cfg;
        cfg.pointingErrorRmsArcsec = 30;
        cfg.rotationErrorRmsDeg = 0.5;
        for (const auto& v : makeObservingPlan(cfg, seed)) {
            const double expected = std::hypot(v.pointingErrorRaArcsec, v.pointingErrorDecArcsec);
            for (const auto& det : cam->detectors()) {
                const auto tw = trueWcs(v, *cam, *det, cfg);
                const auto hw = headerWcs(v, *cam, *det, cfg);
                ASSERT_FALSE(hw->hasSip());
                ASSERT_EQ(tw->crpix(), hw->crpix());
                // at the boresight's pixel: the true WCS gives the true boresight, the header the commanded one
                const Point2D bp = tw->crpix();
                const SpherePoint t = tw->pixelToSky(bp), h = hw->pixelToSky(bp);
                ASSERT_LT(t.separation(v.boresight).asArcseconds(), 1e-9);
                ASSERT_NEAR(t.separation(h).asArcseconds(), expected, 1e-6);
                // its components (east, north) are the configured errors
                const Angle pa = t.bearingTo(h);
                ASSERT_NEAR(expected * sin(pa), v.pointingErrorRaArcsec, 1e-5);
                ASSERT_NEAR(expected * cos(pa), v.pointingErrorDecArcsec, 1e-5);
                // the rotation differs by the rotation error: position angle of +y at the boresight pixel
                const SpherePoint tUp = tw->pixelToSky({bp.x - 100 * std::sin(det->yaw()), bp.y + 100 * std::cos(det->yaw())});
                const SpherePoint hUp = hw->pixelToSky({bp.x - 100 * std::sin(det->yaw()), bp.y + 100 * std::cos(det->yaw())});
                const double dRot = (h.bearingTo(hUp) - t.bearingTo(tUp)).wrapCtr().asDegrees();
                ASSERT_NEAR(dRot, v.rotationErrorDeg, 2e-4);  // the pointing offset changes north slightly
                ASSERT_NEAR(t.bearingTo(tUp).asDegrees(), v.rotation.wrap().asDegrees(), 1e-6);
            }
        }
    }
}

TEST(ObservingPlan, TrueWcsReproducesTheDirectChainManySeeds) {
    CameraConfig cc;
    cc.detectorWidth = 4072;
    const auto cam = makeLsstLikeCamera(cc);
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        ObservingConfig cfg;
        cfg.distortionCoeffPerDeg2 = 0.01 + 0.01 * double(seed);
        cfg.fieldDecDeg = -30 + 10 * double(seed % 3);
        const auto plan = makeObservingPlan(cfg, seed);
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        double worst = 0, worstInv = 0;
        for (const auto& v : plan) {
            for (const auto& det : cam->detectors()) {
                const auto w = trueWcs(v, *cam, *det, cfg);
                ASSERT_TRUE(w->hasSip());
                ASSERT_EQ(w->sip()->order, 3);
                ASSERT_GT(w->sip()->inverseOrder, 0);
                const Box2I bb = det->bbox();
                for (int k = 0; k < 30; ++k) {
                    const Point2D p{bb.minX() - 0.5 + bb.width() * u(rng), bb.minY() - 0.5 + bb.height() * u(rng)};
                    const SpherePoint sky = directChain(v, *cam, *det, cfg, p);
                    const Point2D back = w->skyToPixel(sky);
                    worst = std::max(worst, std::hypot(back.x - p.x, back.y - p.y));
                    ASSERT_LT(w->pixelToSky(p).separation(sky).asArcseconds(), 2e-5);  // 1e-4 px of 0.2"
                    // the fitted inverse polynomials AP/BP are accurate over the detector
                    const auto& sip = *w->sip();
                    const double du = p.x - w->crpix().x, dv = p.y - w->crpix().y;
                    const double U = du + polyEval(sip.a, sip.order, du, dv), V = dv + polyEval(sip.b, sip.order, du, dv);
                    const double du2 = U + polyEval(sip.ap, sip.inverseOrder, U, V), dv2 = V + polyEval(sip.bp, sip.inverseOrder, U, V);
                    worstInv = std::max(worstInv, std::hypot(du2 - du, dv2 - dv));
                }
            }
        }
        EXPECT_LT(worst, 1e-4) << "seed " << seed;
        EXPECT_LT(worstInv, 1e-3) << "seed " << seed;
    }
}

TEST(ObservingPlan, DistortionAtTheCornersIsTheConfiguredAmount) {
    const auto cam = makeLsstLikeCamera();
    for (double k : {0.01, -0.05, 0.1}) {
        ObservingConfig cfg;
        cfg.distortionCoeffPerDeg2 = k;
        const auto plan = makeObservingPlan(cfg, 5);
        const VisitPlan& v = plan.front();
        double maxShift = 0;
        for (const auto& det : cam->detectors()) {
            const auto w = trueWcs(v, *cam, *det, cfg);
            const Wcs undistorted(w->crpix(), w->crval(), w->cd());
            const Box2I bb = det->bbox();
            for (Point2D corner : {Point2D{bb.minX() - 0.5, bb.minY() - 0.5}, Point2D{bb.maxX() + 0.5, bb.minY() - 0.5},
                                   Point2D{bb.maxX() + 0.5, bb.maxY() + 0.5}, Point2D{bb.minX() - 0.5, bb.maxY() + 0.5}}) {
                const Point2D mm = det->pixelToFocalPlane(corner);
                const double phiDeg = std::hypot(mm.x, mm.y) * cam->plateScaleArcsecPerMm() / 3600;
                const double expectedArcsec = std::fabs(k) * std::pow(phiDeg, 3) * 3600;
                const SpherePoint a = w->pixelToSky(corner), b = undistorted.pixelToSky(corner);
                ASSERT_NEAR(a.separation(b).asArcseconds(), expectedArcsec, 1e-3 + 1e-4 * expectedArcsec);
                // radial: outward for k > 0
                const double ra = v.boresight.separation(a).asRadians(), rb = v.boresight.separation(b).asRadians();
                ASSERT_EQ(ra > rb, k > 0);
                maxShift = std::max(maxShift, expectedArcsec);
            }
        }
        // the default camera's corners are 87.7 mm = 0.487 deg from the axis: 4.17" for k = 0.01
        EXPECT_NEAR(maxShift, std::fabs(k) / 0.01 * 4.17, std::fabs(k) / 0.01 * 0.05);
    }
    // focalPlaneToFieldAngle and its inverse
    ObservingConfig cfg;
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-70, 70);
    for (int i = 0; i < 1000; ++i) {
        const Point2D mm{u(rng), u(rng)};
        const Point2D f = focalPlaneToFieldAngle(mm, *cam, cfg);
        const Point2D back = fieldAngleToFocalPlane(f, *cam, cfg);
        ASSERT_NEAR(back.x, mm.x, 1e-9);
        ASSERT_NEAR(back.y, mm.y, 1e-9);
    }
}

TEST(ObservingPlan, SourceElectronsFollowTheExtinctionChain) {
    ObservingConfig cfg;
    // realistic extinction, ordered u > g > r > i > z > y
    for (std::size_t b = 0; b + 1 < 6; ++b) EXPECT_GT(cfg.extinctionPerAirmass[b], cfg.extinctionPerAirmass[b + 1]);
    cfg.bands = {"u", "g", "r", "i", "z", "y"};
    cfg.visitsPerBand = 20;
    cfg.nights = 2;
    const std::uint64_t seed = 11;
    const auto plan = makeObservingPlan(cfg, seed);
    for (const auto& v : plan) {
        const std::size_t b = static_cast<std::size_t>(simBandIndex(v.band));
        for (int det : {0, 4, 8}) {
            const double off = detectorThroughputOffsetMag(cfg, det, v.band, seed);
            for (double m : {15.0, 20.0, 24.5}) {
                const double e = sourceElectrons(m, v, det, cfg, seed);
                const double expect = v.exposureTimeS *
                                      std::pow(10.0, -0.4 * (m - cfg.zeroPointMag[b] + cfg.extinctionPerAirmass[b] * v.airmass + v.cloudMag + off));
                ASSERT_NEAR(e / expect, 1.0, 1e-12);
                ASSERT_NEAR(sourceElectrons(m + 1, v, det, cfg, seed) / e, std::pow(10.0, -0.4), 1e-12);
            }
        }
    }
    // Same airmass, no clouds: the u band loses the most.
    VisitPlan v;
    v.exposureTimeS = 30;
    v.airmass = 1.5;
    std::vector<double> loss;
    for (const char* band : {"u", "g", "r", "i", "z", "y"}) {
        v.band = band;
        v.extinctionMag = cfg.extinctionPerAirmass[static_cast<std::size_t>(simBandIndex(band))] * v.airmass;
        VisitPlan above = v;
        above.extinctionMag = 0;
        loss.push_back(sourceElectrons(20, above, 0, cfg, 1) / sourceElectrons(20, v, 0, cfg, 1));
    }
    for (std::size_t i = 0; i + 1 < loss.size(); ++i) EXPECT_GT(loss[i], loss[i + 1]);
    // Clouds are grey: 0.3 mag of cloud costs the same fraction in every band.
    v.band = "r";
    VisitPlan cloudy = v;
    cloudy.cloudMag = 0.3;
    EXPECT_NEAR(sourceElectrons(20, cloudy, 3, cfg, 1) / sourceElectrons(20, v, 3, cfg, 1), std::pow(10.0, -0.12), 1e-12);
    // Per-detector offsets scatter with the configured rms.
    std::vector<double> offs;
    for (int det = 0; det < 400; ++det) offs.push_back(detectorThroughputOffsetMag(cfg, det, "i", 5));
    EXPECT_NEAR(rms(offs), cfg.detectorThroughputRmsMag, 0.1 * cfg.detectorThroughputRmsMag);
    // A realistic r-band rate: a 24th-magnitude star gives a few hundred electrons in 30 s at X = 1.2.
    VisitPlan r;
    r.band = "r";
    r.exposureTimeS = 30;
    r.airmass = 1.2;
    r.extinctionMag = 0.12 * 1.2;
    const double e24 = sourceElectrons(24, r, 0, cfg, 1);
    EXPECT_GT(e24, 500);
    EXPECT_LT(e24, 2000);
}

TEST(ObservingPlan, SkyAndPsfAcrossTheFocalPlane) {
    ObservingConfig cfg;
    cfg.skyGradientRms = 0.05;
    for (const auto& v : makeObservingPlan(cfg, 21)) {
        const std::size_t b = static_cast<std::size_t>(simBandIndex(v.band));
        const double s0 = skyElectronsPerPixel(v, {0, 0}, 0.2, cfg);
        ASSERT_NEAR(s0, std::pow(10.0, -0.4 * (v.skyMagPerArcsec2 - cfg.zeroPointMag[b])) * 0.04 * 30, 1e-9 * s0);
        ASSERT_NEAR(skyElectronsPerPixel(v, {100, 0}, 0.2, cfg) / s0, 1 + v.skyGradientX, 1e-12);
        ASSERT_NEAR(skyElectronsPerPixel(v, {0, -50}, 0.2, cfg) / s0, 1 - 0.5 * v.skyGradientY, 1e-12);
        ASSERT_NEAR(skyElectronsPerPixel(v, {0, 0}, 0.4, cfg) / s0, 4.0, 1e-12);
        if (v.band == "r") {  // ~1000 e-/pixel in 30 s of dark r-band sky (LSST), within the sky scatter
            ASSERT_GT(s0, 300);
            ASSERT_LT(s0, 4000);
        }
        const PsfAtPosition c = psfAt(v, {0, 0}, cfg);
        ASSERT_EQ(c.fwhmArcsec, v.seeingFwhmArcsec);
        ASSERT_EQ(c.e1, v.psfE1);
        ASSERT_EQ(c.e2, v.psfE2);
        const PsfAtPosition edge = psfAt(v, {60, -80}, cfg);  // 100 mm from the axis
        ASSERT_NEAR(edge.fwhmArcsec, v.seeingFwhmArcsec * (1 + cfg.psfFwhmRadialGrowth), 1e-12);
        const PsfAtPosition a = psfAt(v, {30, 20}, cfg), m = psfAt(v, {-30, -20}, cfg);
        ASSERT_NEAR(0.5 * (a.e1 + m.e1), v.psfE1, 1e-12);  // linear pattern
        ASSERT_NEAR(0.5 * (a.e2 + m.e2), v.psfE2, 1e-12);
        ASSERT_NEAR(a.e1 - c.e1, 0.3 * v.psfE1GradX + 0.2 * v.psfE1GradY, 1e-12);
    }
}

TEST(ObservingPlan, ValidateRejectsBadConfigs) {
    EXPECT_NO_THROW(ObservingConfig().validate());
    auto expectBad = [](auto mutate) {
        ObservingConfig c;
        mutate(c);
        EXPECT_THROW(c.validate(), ConfigError);
        EXPECT_THROW(makeObservingPlan(c, 1), ConfigError);
    };
    expectBad([](ObservingConfig& c) { c.bands = {}; });
    expectBad([](ObservingConfig& c) { c.bands = {"r", "r"}; });
    expectBad([](ObservingConfig& c) { c.bands = {"V"}; });
    expectBad([](ObservingConfig& c) { c.visitsPerBand = 0; });
    expectBad([](ObservingConfig& c) { c.pointingErrorRmsArcsec = 61; });
    expectBad([](ObservingConfig& c) { c.rotationErrorRmsDeg = 1.5; });
    expectBad([](ObservingConfig& c) { c.fieldDecDeg = 70; });  // never rises at Cerro Pachon
    expectBad([](ObservingConfig& c) { c.extinctionPerAirmass[0] = -0.1; });
    expectBad([](ObservingConfig& c) { c.exposureTimeS = 0; });
    expectBad([](ObservingConfig& c) { c.rotationMaxDeg = c.rotationMinDeg - 1; });
    EXPECT_THROW(detectorThroughputOffsetMag(ObservingConfig(), 0, "V", 1), InvalidInputError);
}

}  // namespace
}  // namespace drp
