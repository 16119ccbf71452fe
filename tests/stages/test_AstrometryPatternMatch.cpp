// Tests of stages/calibrate pattern matching through fitAstrometry and matchPatterns: 30 seeds of a
// full-size LSSTCam-like detector (any of the 9, corners included, with the simulator's optical distortion)
// whose header WCS is off by up to 60 arcsec and 1 deg, with 30% of the stars missing, 30% spurious
// sources and brightness ranks perturbed by 0.1 mag of noise: the right solution is always found (no false
// match, the true pairs matched, offset and rotation recovered). Unrelated catalogs give no solution
// (NumericalError); empty and nearly empty fields give a NumericalError that names the problem.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>

#include "core/Camera.h"
#include "core/Error.h"
#include "drivers/sim/ObservingPlan.h"
#include "drivers/sim/SkyModel.h"
#include "stages/calibrate/Astrometry.h"
#include "stages/calibrate/PatternMatcher.h"
#include "stages/calibrate/TangentPlane.h"

namespace drp {
namespace {

constexpr double kPi = std::numbers::pi;

/// A simulated detector field: sources (with the index of their star, -1 for spurious) and references.
struct Field {
    std::vector<AstrometrySource> sources;
    std::vector<long> sourceStar;
    std::vector<AstrometryRef> refs;
    std::vector<long> refStar;
    std::shared_ptr<const Wcs> trueWcs, headerWcs;
    Box2I bbox;
    VisitPlan visit;
};

struct FieldSpec {
    std::uint64_t seed = 1;
    int detector = 4;
    double pointingErrorArcsec = 60;   // magnitude of the commanded - true pointing
    double rotationErrorDeg = 1;       // commanded - true rotation
    double missingFraction = 0.3;
    double spuriousFraction = 0.3;
    double brightnessNoiseMag = 0.1;
    double starDensityPerDeg2 = 40000; // stars with 16 < r < 24.5 (about 3500 per deg2 to r = 21)
    double sourceMagLimit = 23.0;
    double refMagLimit = 21.0;
};

Field makeField(const FieldSpec& spec) {
    std::mt19937_64 rng(spec.seed * 7919 + 17);
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::normal_distribution<double> gauss(0.0, 1.0);
    static const auto camera = makeLsstLikeCamera();
    const Detector& det = camera->detector(spec.detector);
    ObservingConfig cfg;  // default optical distortion (0.01 / deg^2)
    Field f;
    f.bbox = det.bbox();
    VisitPlan& v = f.visit;
    v.boresight = SpherePoint::fromDegrees(55.0 + 0.3 * (uni(rng) - 0.5), -30.0 + 0.3 * (uni(rng) - 0.5));
    v.rotation = Angle::fromDegrees(360.0 * uni(rng));
    v.commandedBoresight = v.boresight.offset(Angle::fromDegrees(360.0 * uni(rng)), spec.pointingErrorArcsec * arcseconds);
    const double rotSign = uni(rng) < 0.5 ? -1.0 : 1.0;
    v.commandedRotation = v.rotation + Angle::fromDegrees(rotSign * spec.rotationErrorDeg);
    f.trueWcs = trueWcs(v, *camera, det, cfg);
    f.headerWcs = headerWcs(v, *camera, det, cfg);

    SkyModelConfig sky;
    const SpherePoint c = f.trueWcs->pixelToSky({0.5 * f.bbox.maxX(), 0.5 * f.bbox.maxY()});
    sky.centerRaDeg = c.ra().asDegrees();
    sky.centerDecDeg = c.dec().asDegrees();
    sky.radiusDeg = 0.2;
    sky.starDensityPerDeg2 = spec.starDensityPerDeg2;
    sky.galaxyDensityPerDeg2 = 0;
    sky.transientsPerDeg2 = 0;
    sky.asteroidsPerDeg2 = 0;
    sky.variableFraction = 0;
    sky.seed = spec.seed;
    const auto objects = makeSkyCatalog(sky);

    const Box2D area(f.bbox);
    std::vector<double> detectedMags;
    for (std::size_t i = 0; i < objects.size(); ++i) {
        const SimObject& o = objects[i];
        const double mag = o.mag[2];
        const SpherePoint pos = SpherePoint::fromDegrees(o.raDeg, o.decDeg);
        if (mag < spec.refMagLimit) {
            const double errMas = 0.1 * std::pow(10.0, 0.2 * (mag - 17.0));
            const SpherePoint noisy = pos.offset(Angle::fromDegrees(360.0 * uni(rng)),
                                                 std::fabs(gauss(rng)) * std::sqrt(2.0) * errMas * milliarcseconds);
            f.refs.push_back({noisy, errMas, mag});
            f.refStar.push_back(long(i));
        }
        const Point2D p = f.trueWcs->skyToPixel(pos);
        if (mag > spec.sourceMagLimit || !area.contains(p)) continue;
        if (uni(rng) < spec.missingFraction) continue;
        const double sigma = std::max(0.005, 0.17 * std::pow(10.0, 0.4 * (mag - 23.0)));  // px
        AstrometrySource s;
        s.position = {p.x + sigma * gauss(rng), p.y + sigma * gauss(rng)};
        s.xErr = s.yErr = sigma;
        s.flux = std::pow(10.0, -0.4 * (mag + spec.brightnessNoiseMag * gauss(rng) - 30.0));
        f.sources.push_back(s);
        f.sourceStar.push_back(long(i));
        detectedMags.push_back(mag);
    }
    const std::size_t nSpurious = std::size_t(spec.spuriousFraction * double(f.sources.size()) + 0.5);
    for (std::size_t k = 0; k < nSpurious && !detectedMags.empty(); ++k) {
        AstrometrySource s;
        s.position = {area.minX() + uni(rng) * area.width(), area.minY() + uni(rng) * area.height()};
        s.xErr = s.yErr = 0.1;
        const double mag = detectedMags[std::size_t(uni(rng) * double(detectedMags.size())) % detectedMags.size()];
        s.flux = std::pow(10.0, -0.4 * (mag + spec.brightnessNoiseMag * gauss(rng) - 30.0));
        f.sources.push_back(s);
        f.sourceStar.push_back(-1);
    }
    return f;
}

/// True (east, north) position (arcsec) of the detector centre in the header's tangent plane, and the true
/// position-angle change of the detector axes (deg).
void truth(const Field& f, Eigen::Vector2d& offset, double& rotationDeg) {
    const Point2D c{0.5 * (f.bbox.minX() + f.bbox.maxX()), 0.5 * (f.bbox.minY() + f.bbox.maxY())};
    const TangentPlane tp(f.headerWcs->pixelToSky(c));
    offset = tp.projectArcsec(f.trueWcs->pixelToSky(c));
    double sum = 0.0;
    for (const Point2D d : {Point2D{200.0, 0.0}, Point2D{0.0, 200.0}}) {
        const Eigen::Vector2d h = tp.projectArcsec(f.headerWcs->pixelToSky(c + d)) - tp.projectArcsec(f.headerWcs->pixelToSky(c));
        const Eigen::Vector2d t = tp.projectArcsec(f.trueWcs->pixelToSky(c + d)) - tp.projectArcsec(f.trueWcs->pixelToSky(c));
        // Position angle = atan2(east, north).
        sum += std::remainder(std::atan2(t.x(), t.y()) - std::atan2(h.x(), h.y()), 2 * kPi);
    }
    rotationDeg = 0.5 * sum * 180.0 / kPi;
}

TEST(AstrometryPatternMatch, ThirtySeedsWithLargeErrorsMissingAndSpuriousSources) {
    double worstOffset = 0, worstRotation = 0, worstFraction = 1, worstMedian = 0;
    int totalFalse = 0;
    for (std::uint64_t seed = 1; seed <= 30; ++seed) {
        FieldSpec spec;
        spec.seed = seed;
        spec.detector = int(seed % 9);
        std::mt19937_64 rng(seed);
        spec.pointingErrorArcsec = 60.0 * std::sqrt(std::uniform_real_distribution<double>(0.0, 1.0)(rng));
        spec.rotationErrorDeg = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
        if (seed <= 3) spec.pointingErrorArcsec = 60.0, spec.rotationErrorDeg = 1.0;  // the extremes
        const Field f = makeField(spec);
        AstrometryResult r;
        ASSERT_NO_THROW(r = fitAstrometry(f.sources, f.refs, *f.headerWcs, f.bbox, AstrometryConfig{})) << "seed " << seed;

        // Every match is a true pair; the true pairs are matched.
        int nFalse = 0;
        for (const auto& m : r.matches) nFalse += f.sourceStar[m.source] != f.refStar[m.ref];
        std::vector<long> starToRef;
        std::size_t nTrue = 0;
        {
            std::vector<long> refOf;  // star index -> ref index
            for (std::size_t j = 0; j < f.refStar.size(); ++j) {
                if (std::size_t(f.refStar[j]) >= refOf.size()) refOf.resize(std::size_t(f.refStar[j]) + 1, -1);
                refOf[std::size_t(f.refStar[j])] = long(j);
            }
            for (long s : f.sourceStar)
                if (s >= 0 && std::size_t(s) < refOf.size() && refOf[std::size_t(s)] >= 0) ++nTrue;
        }
        const double fraction = double(r.matches.size() - std::size_t(nFalse)) / double(nTrue);
        EXPECT_EQ(nFalse, 0) << "seed " << seed;
        EXPECT_GE(fraction, 0.97) << "seed " << seed;

        Eigen::Vector2d offset;
        double rot;
        truth(f, offset, rot);
        const double dOffset = (Eigen::Vector2d(r.offsetArcsec.x, r.offsetArcsec.y) - offset).norm();
        const double dRot = std::fabs(r.rotationDeg - rot);
        EXPECT_LT(dOffset, 2.0) << "seed " << seed;
        EXPECT_LT(dRot, 0.01) << "seed " << seed;
        // The rotation found is about minus the commanded-minus-true rotation error (off-axis detectors see up
        // to ~0.01 deg more from the different tangent points; `rot` above is the exact local truth).
        EXPECT_NEAR(r.rotationDeg, (f.visit.rotation - f.visit.commandedRotation).asDegrees(), 0.02) << "seed " << seed;

        // And the final WCS is right.
        std::vector<double> err;
        for (int iy = 0; iy <= 10; ++iy)
            for (int ix = 0; ix <= 10; ++ix) {
                const Point2D p{f.bbox.minX() + ix * 0.1 * (f.bbox.width() - 1), f.bbox.minY() + iy * 0.1 * (f.bbox.height() - 1)};
                err.push_back(r.wcs->pixelToSky(p).separation(f.trueWcs->pixelToSky(p)).asMilliarcseconds());
            }
        std::sort(err.begin(), err.end());
        EXPECT_LT(err[err.size() / 2], 10.0) << "seed " << seed;

        worstOffset = std::max(worstOffset, dOffset);
        worstRotation = std::max(worstRotation, dRot);
        worstFraction = std::min(worstFraction, fraction);
        worstMedian = std::max(worstMedian, err[err.size() / 2]);
        totalFalse += nFalse;
        if (seed <= 3)
            std::printf("seed %d det %d: %zu sources %zu refs, %d matches + %d clipped (true pairs %zu), offset %.1f\" "
                        "rot %.3f deg, rms %.2f mas, confirmations %d\n",
                        int(seed), spec.detector, f.sources.size(), f.refs.size(), r.nMatches, r.nRejected, nTrue,
                        offset.norm(), rot, r.rmsResidualMas, r.patternConfirmations);
    }
    std::printf("30 seeds: worst offset error %.3f arcsec, worst rotation error %.5f deg, min true-pair fraction %.4f, "
                "false matches %d, worst median WCS error %.2f mas\n",
                worstOffset, worstRotation, worstFraction, totalFalse, worstMedian);
}

TEST(AstrometryPatternMatch, UnrelatedCatalogsGiveNoSolution) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        FieldSpec spec;
        spec.seed = seed;
        spec.detector = int(seed % 9);
        Field f = makeField(spec);
        // References from another part of the sky, moved onto this field: same counts and magnitudes,
        // unrelated positions.
        FieldSpec other = spec;
        other.seed = seed + 1000;
        const Field g = makeField(other);
        const TangentPlane tpg(g.headerWcs->pixelToSky({2036, 2000})), tpf(f.headerWcs->pixelToSky({2036, 2000}));
        f.refs = g.refs;
        for (auto& ref : f.refs) ref.position = tpf.deprojectArcsec(tpg.projectArcsec(ref.position));
        try {
            fitAstrometry(f.sources, f.refs, *f.headerWcs, f.bbox, AstrometryConfig{});
            ADD_FAILURE() << "seed " << seed << ": a solution was reported for unrelated catalogs";
        } catch (const NumericalError& e) {
            EXPECT_NE(std::string(e.what()).find("no solution"), std::string::npos) << e.what();
        }
    }
}

TEST(AstrometryPatternMatch, UniformRandomReferencesGiveNoSolution) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        FieldSpec spec;
        spec.seed = seed;
        Field f = makeField(spec);
        std::mt19937_64 rng(seed + 99);
        std::uniform_real_distribution<double> uni(-1.0, 1.0);
        const SpherePoint c = f.headerWcs->pixelToSky({2036, 2000});
        const TangentPlane tp(c);
        for (auto& ref : f.refs) ref.position = tp.deprojectArcsec(Eigen::Vector2d(1500 * uni(rng), 1500 * uni(rng)));
        EXPECT_THROW(fitAstrometry(f.sources, f.refs, *f.headerWcs, f.bbox, AstrometryConfig{}), NumericalError)
            << "seed " << seed;
    }
}

TEST(AstrometryPatternMatch, EmptyAndNearlyEmptyFieldsGiveClearErrors) {
    FieldSpec spec;
    const Field f = makeField(spec);
    auto message = [&](const std::vector<AstrometrySource>& s, const std::vector<AstrometryRef>& r) -> std::string {
        try {
            fitAstrometry(s, r, *f.headerWcs, f.bbox, AstrometryConfig{});
        } catch (const NumericalError& e) {
            return e.what();
        }
        return "no exception";
    };
    std::string m = message({}, f.refs);
    EXPECT_NE(m.find("only 0 usable sources"), std::string::npos) << m;
    std::vector<AstrometrySource> three(f.sources.begin(), f.sources.begin() + 3);
    m = message(three, f.refs);
    EXPECT_NE(m.find("only 3 usable sources"), std::string::npos) << m;
    EXPECT_NE(m.find("too few stars"), std::string::npos) << m;
    m = message(f.sources, {});
    EXPECT_NE(m.find("only 0 reference stars"), std::string::npos) << m;
    std::vector<AstrometryRef> fewRefs(f.refs.begin(), f.refs.begin() + 3);
    m = message(f.sources, fewRefs);
    EXPECT_NE(m.find("reference stars"), std::string::npos) << m;
    // NaN positions are not usable.
    std::vector<AstrometrySource> nan(20);
    for (auto& s : nan) s.position = {std::nan(""), 1.0};
    m = message(nan, f.refs);
    EXPECT_NE(m.find("only 0 usable sources (of 20"), std::string::npos) << m;
    // 12 real stars: enough to try, too few for a pattern-verified solution -> still a NumericalError (most are
    // fainter than the reference catalog, so the few-star path finds no significant solution either; without
    // it the pattern matcher's message is given alone).
    std::vector<AstrometrySource> twelve;
    for (std::size_t i = 0; i < f.sources.size() && twelve.size() < 12; ++i)
        if (f.sourceStar[i] >= 0) twelve.push_back(f.sources[i]);
    EXPECT_THROW(fitAstrometry(twelve, f.refs, *f.headerWcs, f.bbox, AstrometryConfig{}), NumericalError);
    AstrometryConfig patternOnly;
    patternOnly.fewStarEnabled = false;
    EXPECT_THROW(fitAstrometry(twelve, f.refs, *f.headerWcs, f.bbox, patternOnly), NumericalError);
}

TEST(AstrometryPatternMatch, PlanarPatternsExactRotationAndShift) {
    // Direct test of matchPatterns: references are a rotated, shifted copy of 70% of the sources plus 30%
    // unrelated points; the transform is recovered to numerical precision.
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> uni(-400.0, 400.0), u01(0.0, 1.0);
        const double theta = (2 * u01(rng) - 1) * 1.5 * kPi / 180, dx = 80 * (2 * u01(rng) - 1), dy = 80 * (2 * u01(rng) - 1);
        Eigen::Matrix2d rot;
        rot << std::cos(theta), -std::sin(theta), std::sin(theta), std::cos(theta);
        std::vector<Eigen::Vector2d> src, ref;
        std::vector<long> refOfSrc;
        for (int i = 0; i < 150; ++i) src.emplace_back(uni(rng), uni(rng));
        for (int i = 0; i < 150; ++i) {
            if (u01(rng) < 0.3) {
                ref.emplace_back(uni(rng), uni(rng));
                refOfSrc.push_back(-1);
            } else {
                ref.push_back(rot * src[std::size_t(i)] + Eigen::Vector2d(dx, dy));
                refOfSrc.push_back(i);
            }
        }
        const PatternMatchResult r = matchPatterns(src, ref, PatternMatchConfig{});
        EXPECT_NEAR(r.transform.shift.x(), dx, 1e-6);
        EXPECT_NEAR(r.transform.shift.y(), dy, 1e-6);
        EXPECT_NEAR(r.rotationDeg(), -theta * 180 / kPi, 1e-8);
        std::size_t good = 0;
        for (const auto& p : r.matches) good += refOfSrc[p.b] == long(p.a);
        EXPECT_EQ(good, r.matches.size());
        EXPECT_GE(r.matches.size(), 90u);
    }
}

TEST(AstrometryPatternMatch, ConfigValidation) {
    AstrometryConfig c;
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(c, AstrometryConfig{});
    c.maxOffsetArcsec = 0;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.matchRadiusMinArcsec = 2 * c.matchRadiusArcsec;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.sipOrder = 10;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.minMatches = 2;
    EXPECT_THROW(c.validate(), ConfigError);
    PatternMatchConfig p;
    p.minPatternSpokes = 1;
    EXPECT_THROW(p.validate(), ConfigError);
    const Field f = makeField(FieldSpec{});
    EXPECT_THROW(fitAstrometry(f.sources, f.refs, *f.headerWcs, Box2I(), AstrometryConfig{}), InvalidInputError);
}

}  // namespace
}  // namespace drp
