// Tests of the few-star path of stages/calibrate (FewStarMatcher, fitWcsCorrection, the fit-model choice in
// fitAstrometry) on detectors of the demo preset (1024x1024, 0.4"/px, default optical distortion, a header
// WCS without distortion off by up to 60" and 1 deg): 4, 5, 6, 8 and 12 detected stars among ~60 reference
// stars (the rest undetected), plus non-matching detections, 50 seeds per configuration — success rate and
// the WCS error against the true WCS over the detector; with a header that carries the distortion, the
// similarity correction of 4-5 stars is as good as the data. Fields whose sources do not correspond to the
// references (random positions; references from another field) give a NumericalError and never a WCS; the
// false-solution estimate E(k) bounds the rate of random solutions measured with the threshold switched off.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>

#include "core/Camera.h"
#include "core/Error.h"
#include "drivers/sim/ObservingPlan.h"
#include "drivers/sim/SimConfig.h"
#include "stages/calibrate/Astrometry.h"
#include "stages/calibrate/FewStarMatcher.h"
#include "stages/calibrate/TanSipFitter.h"
#include "stages/calibrate/TangentPlane.h"

namespace drp {
namespace {

constexpr double kPi = std::numbers::pi;

const Camera& demoCamera() {
    static const auto camera = makeLsstLikeCamera(loadSimConfig("demo", {}, {}).camera);
    return *camera;
}

struct FewField {
    std::vector<AstrometrySource> sources;
    std::vector<long> sourceRef;  // index of the reference star of each source, -1 for a spurious detection
    std::vector<AstrometryRef> refs;
    std::shared_ptr<const Wcs> truth, header, headerWithDistortion;
    Box2I bbox;
};

struct FewSpec {
    std::uint64_t seed = 1;
    int detector = 4;
    int stars = 6;              // detected reference stars
    int spurious = 0;           // detections with no reference star
    double centroidArcsec = 0.02;
    double pointingErrArcsec = 60;
    double rotationErrDeg = 1;
    double refsPerDetector = 25;  // reference density: stars per detector area (the demo u band: ~25)
    bool randomSources = false;   // sources unrelated to the references (uniform positions)
};

FewField makeFewField(const FewSpec& spec) {
    std::mt19937_64 rng(spec.seed * 104729 + std::uint64_t(spec.stars) * 31 + std::uint64_t(spec.spurious));
    std::uniform_real_distribution<double> u01(0, 1);
    std::normal_distribution<double> g(0, 1);
    const Camera& camera = demoCamera();
    const Detector& det = camera.detector(spec.detector);
    VisitPlan v;
    v.boresight = SpherePoint::fromDegrees(55.0 + 0.2 * u01(rng), -30.0 + 0.2 * u01(rng));
    v.rotation = Angle::fromDegrees(360 * u01(rng));
    v.commandedBoresight = v.boresight.offset(Angle::fromDegrees(360 * u01(rng)), spec.pointingErrArcsec * u01(rng) * arcseconds);
    v.commandedRotation = v.rotation + Angle::fromDegrees(spec.rotationErrDeg * (2 * u01(rng) - 1));
    const ObservingConfig cfg;
    FewField f;
    f.bbox = det.bbox();
    f.truth = trueWcs(v, camera, det, cfg);
    f.header = headerWcs(v, camera, det, cfg);
    VisitPlan commanded = v;
    commanded.boresight = v.commandedBoresight;
    commanded.rotation = v.commandedRotation;
    f.headerWithDistortion = trueWcs(commanded, camera, det, cfg);
    const double pixelArcsec = f.truth->pixelScale({512, 512}).asArcseconds();
    // References over the detector grown by 300 px on each side (the searched area is ~250 px wider).
    const double grow = 300;
    const Box2D area(f.bbox);
    const double w = area.width() + 2 * grow, h = area.height() + 2 * grow;
    const int nRefs = int(spec.refsPerDetector * w * h / (area.width() * area.height()));
    std::vector<Point2D> inside;
    std::vector<std::size_t> insideRef;
    for (int i = 0; i < nRefs; ++i) {
        const Point2D p{area.minX() - grow + u01(rng) * w, area.minY() - grow + u01(rng) * h};
        f.refs.push_back({f.truth->pixelToSky(p), 1.0, 14.0 + 6.0 * u01(rng)});
        if (area.contains(p)) {
            inside.push_back(p);
            insideRef.push_back(f.refs.size() - 1);
        }
    }
    // Detected stars: a random subset of the references on the detector (the others are missing).
    std::vector<std::size_t> order(inside.size());
    for (std::size_t k = 0; k < order.size(); ++k) order[k] = k;
    std::shuffle(order.begin(), order.end(), rng);
    const double sigmaPx = spec.centroidArcsec / pixelArcsec;
    for (int k = 0; k < spec.stars && std::size_t(k) < order.size(); ++k) {
        const Point2D p = inside[order[std::size_t(k)]];
        AstrometrySource s;
        s.position = spec.randomSources ? Point2D{area.minX() + u01(rng) * area.width(), area.minY() + u01(rng) * area.height()}
                                        : Point2D{p.x + sigmaPx * g(rng), p.y + sigmaPx * g(rng)};
        s.xErr = s.yErr = sigmaPx;
        s.flux = 1000.0 * (1.0 + 10.0 * u01(rng));
        f.sources.push_back(s);
        f.sourceRef.push_back(spec.randomSources ? -1 : long(insideRef[order[std::size_t(k)]]));
    }
    for (int k = 0; k < spec.spurious; ++k) {
        AstrometrySource s;
        s.position = {area.minX() + u01(rng) * area.width(), area.minY() + u01(rng) * area.height()};
        s.xErr = s.yErr = sigmaPx;
        s.flux = 1000.0 * (1.0 + 10.0 * u01(rng));
        f.sources.push_back(s);
        f.sourceRef.push_back(-1);
    }
    // Brightness ranks mixed between stars and spurious detections.
    std::vector<std::size_t> perm(f.sources.size());
    for (std::size_t k = 0; k < perm.size(); ++k) perm[k] = k;
    std::shuffle(perm.begin(), perm.end(), rng);
    FewField out = f;
    for (std::size_t k = 0; k < perm.size(); ++k) {
        out.sources[k] = f.sources[perm[k]];
        out.sourceRef[k] = f.sourceRef[perm[k]];
    }
    return out;
}

/// Max |fitted - true| (arcsec) over a 21x21 grid of the detector.
double maxWcsErrorArcsec(const Wcs& fit, const Wcs& truth, const Box2I& bbox) {
    double worst = 0;
    for (int iy = 0; iy <= 20; ++iy)
        for (int ix = 0; ix <= 20; ++ix) {
            const Point2D p{bbox.minX() + ix * (bbox.width() - 1) / 20.0, bbox.minY() + iy * (bbox.height() - 1) / 20.0};
            worst = std::max(worst, fit.pixelToSky(p).separation(truth.pixelToSky(p)).asArcseconds());
        }
    return worst;
}

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, std::size_t(q * double(v.size())))];
}

struct Stats {
    int runs = 0, successes = 0, falseSolutions = 0, wrongMatches = 0;
    std::vector<double> maxErr;
    std::vector<int> models = std::vector<int>(5, 0);
};

/// `detector` < 0: cycle through all nine (the corners have the strongest distortion).
Stats runConfiguration(FewSpec spec, int seeds, bool distortedHeader = false, int detector = -1) {
    Stats st;
    for (int seed = 1; seed <= seeds; ++seed) {
        spec.seed = std::uint64_t(seed);
        spec.detector = detector < 0 ? seed % 9 : detector;
        const FewField f = makeFewField(spec);
        ++st.runs;
        try {
            const Wcs& header = distortedHeader ? *f.headerWithDistortion : *f.header;
            const AstrometryResult r = fitAstrometry(f.sources, f.refs, header, f.bbox, AstrometryConfig{});
            ++st.successes;
            const double err = maxWcsErrorArcsec(*r.wcs, *f.truth, f.bbox);
            st.maxErr.push_back(err);
            if (err > 1.0) ++st.falseSolutions;
            int wrong = 0;
            for (const auto& m : r.matches) wrong += f.sourceRef[m.source] != long(m.ref);
            st.wrongMatches += wrong;
            if (err > 1.0 || wrong > 0) {
                std::printf("  seed %d detector %d: |err| %.3f\", %d matches (%d wrong), model %s, few-star %d, "
                            "E %.2e, rms %.1f mas\n",
                            seed, spec.detector, err, r.nMatches, wrong, toString(r.fitModel), int(r.fewStars),
                            r.falseSolutionsExpected, r.rmsResidualMas);
                for (const auto& m : r.matches)
                    std::printf("    source %zu (ref %ld) -> ref %zu, %.3f\"\n", m.source, f.sourceRef[m.source], m.ref,
                                m.separationArcsec);
            }
            st.models[std::size_t(r.fitModel)] += 1;
            EXPECT_TRUE(r.fewStars || r.nMatches >= AstrometryConfig{}.minMatches);
        } catch (const NumericalError&) {
        }
    }
    return st;
}

TEST(AstrometryFewStars, WcsCorrectionRecoversManufacturedSolutionsExactly) {
    const Camera& camera = demoCamera();
    const ObservingConfig cfg;
    VisitPlan v;
    v.boresight = SpherePoint::fromDegrees(55.1, -30.2);
    v.rotation = Angle::fromDegrees(33.0);
    const auto base = trueWcs(v, camera, camera.detector(8), cfg);  // TAN-SIP with CRPIX at the boresight
    ASSERT_TRUE(base->hasSip());
    for (const WcsCorrection kind : {WcsCorrection::Similarity, WcsCorrection::Affine}) {
        // The truth: CRVAL moved by 50", CD rotated by 0.8 deg and scaled by 1.002 (plus a shear for Affine).
        const double t = 0.8 * kPi / 180;
        Eigen::Matrix2d m;
        m << std::cos(t), -std::sin(t), std::sin(t), std::cos(t);
        m *= 1.002;
        if (kind == WcsCorrection::Affine) m(0, 1) += 3e-4;
        const Wcs truth(base->crpix(), base->crval().offset(Angle::fromDegrees(120), 50 * arcseconds), m * base->cd(),
                        base->sip());
        std::vector<Point2D> pix;
        std::vector<SpherePoint> sky;
        for (const Point2D p : {Point2D{10, 20}, Point2D{1000, 40}, Point2D{500, 990}, Point2D{900, 800}})
            pix.push_back(p), sky.push_back(truth.pixelToSky(p));
        const auto fit = fitWcsCorrection(*base, pix, sky, {}, kind);
        EXPECT_EQ(fit->crpix().x, base->crpix().x);
        EXPECT_TRUE(fit->sip() == base->sip());
        EXPECT_LT(maxWcsErrorArcsec(*fit, truth, camera.detector(8).bbox()) * 1000, 1e-4);
    }
    std::vector<Point2D> two{{10, 20}, {1000, 40}};
    std::vector<SpherePoint> sky2{base->pixelToSky(two[0]), base->pixelToSky(two[1])};
    EXPECT_NO_THROW(fitWcsCorrection(*base, two, sky2, {}, WcsCorrection::Similarity));
    EXPECT_THROW(fitWcsCorrection(*base, two, sky2, {}, WcsCorrection::Affine), NumericalError);
    EXPECT_THROW(fitWcsCorrection(*base, two, sky2, {1.0}, WcsCorrection::Affine), LogicError);
}

void printStats(const char* what, int stars, int spurious, const Stats& st) {
    std::printf("%-22s %5d %8d  %3d/%-3d  %5d  %12d  %9.3f  %9.3f  %9.3f  %d,%d,%d,%d,%d\n", what, stars, spurious,
                st.successes, st.runs, st.falseSolutions, st.wrongMatches, percentile(st.maxErr, 0.5),
                percentile(st.maxErr, 0.95), percentile(st.maxErr, 1.0), st.models[0], st.models[1], st.models[2],
                st.models[3], st.models[4]);
}

void printHeading() {
    std::printf("%-22s stars spurious  success  false  wrongMatches  p50|err|\"  p95|err|\"  max|err|\"  "
                "models(tan-sip,tan,hdr-aff,hdr-sim,tan-radial)\n", "header / detectors");
}

TEST(AstrometryFewStars, FewStarsWithMissingAndSpuriousSourcesSucceed) {
    // The simulator's header WCS: plain TAN, no distortion. With 4-5 stars a similarity correction leaves the
    // distortion's shear (up to ~0.4" at the far corner of a corner detector), with 6+ an affine TAN leaves
    // its quadratic part (~0.15-0.25") unless the F test keeps the radial term about the header's CRPIX
    // (tan-radial: with 12 stars on ~1/3 of the detectors, median max |error| 0.10" -> 0.07"); on the central
    // detector (little distortion) 6+ stars give a median max |error| over the detector < 0.06" (the max is
    // dominated by extrapolating 0.02" centroid errors).
    printHeading();
    for (const int stars : {4, 5, 6, 8, 12}) {
        for (const int spurious : {0, 2, stars / 2 + 1}) {
            FewSpec spec;
            spec.stars = stars;
            spec.spurious = spurious;
            const Stats st = runConfiguration(spec, 50);
            printStats("TAN / all 9", stars, spurious, st);
            EXPECT_EQ(st.falseSolutions, 0) << stars << " stars, " << spurious << " spurious";
            EXPECT_EQ(st.wrongMatches, 0) << stars << " stars, " << spurious << " spurious";
            EXPECT_GE(st.successes, stars >= 6 ? 49 : 45) << stars << " stars, " << spurious << " spurious";
            EXPECT_LT(percentile(st.maxErr, 0.5), stars >= 6 ? 0.15 : 0.2) << stars << " stars, " << spurious;
            EXPECT_LT(percentile(st.maxErr, 1.0), stars >= 6 ? 0.35 : 0.6) << stars << " stars, " << spurious;
            if (stars >= 6) {
                const Stats centre = runConfiguration(spec, 50, false, 4);
                printStats("TAN / centre", stars, spurious, centre);
                EXPECT_EQ(centre.falseSolutions, 0);
                EXPECT_GE(centre.successes, 49);
                EXPECT_LT(percentile(centre.maxErr, 0.5), 0.06) << stars << " stars, " << spurious;
                EXPECT_LT(percentile(centre.maxErr, 0.95), 0.15) << stars << " stars, " << spurious;
            }
        }
    }
}

TEST(AstrometryFewStars, AHeaderWithTheDistortionGivesTheWcsToTheAccuracyOfTheData) {
    // A header WCS that carries the optical distortion (wrong pointing and rotation only): the header-similarity
    // (4-5 stars) and header-affine (6+) corrections keep it, and the WCS is as good as 0.02" centroids allow.
    printHeading();
    for (const int stars : {4, 5, 6, 8, 12}) {
        FewSpec spec;
        spec.stars = stars;
        spec.spurious = 1;
        const Stats st = runConfiguration(spec, 50, true);
        printStats("SIP / all 9", stars, 1, st);
        EXPECT_EQ(st.falseSolutions, 0);
        EXPECT_EQ(st.wrongMatches, 0);
        EXPECT_EQ(st.models[std::size_t(stars >= 6 ? AstrometryFitModel::HeaderAffine : AstrometryFitModel::HeaderSimilarity)],
                  st.successes);
        EXPECT_GE(st.successes, stars >= 6 ? 49 : 45);
        EXPECT_LT(percentile(st.maxErr, 0.5), 0.06);
        EXPECT_LT(percentile(st.maxErr, 0.95), 0.15);
    }
}

TEST(AstrometryFewStars, SourcesUnrelatedToTheReferencesGiveNoSolution) {
    int runs = 0, solutions = 0;
    for (const int stars : {4, 5, 6, 8, 12, 20}) {
        for (const double density : {25.0, 100.0}) {
            for (int seed = 1; seed <= 50; ++seed) {
                FewSpec spec;
                spec.seed = std::uint64_t(seed);
                spec.detector = seed % 9;
                spec.stars = stars;
                spec.spurious = seed % 3;
                spec.refsPerDetector = density;
                spec.randomSources = true;
                const FewField f = makeFewField(spec);
                ++runs;
                try {
                    fitAstrometry(f.sources, f.refs, *f.header, f.bbox, AstrometryConfig{});
                    ++solutions;
                    ADD_FAILURE() << "a solution for random sources: " << stars << " sources, density " << density
                                  << ", seed " << seed;
                } catch (const NumericalError& e) {
                    const std::string m = e.what();
                    EXPECT_TRUE(m.find("no solution") != std::string::npos || m.find("matches within") != std::string::npos)
                        << m;
                }
            }
        }
    }
    std::printf("random sources: %d solutions in %d fields\n", solutions, runs);
}

TEST(AstrometryFewStars, FalseSolutionEstimateBoundsTheMeasuredRate) {
    // Random sources against random references: the matcher with minMatches = 3 reports the best k of every
    // field (accepted or not, from the result or the error message) and H, p; the measured rate of random
    // fields reaching k matches stays below the mean union bound E(k).
    const int seeds = 300;
    for (const int n : {6, 12}) {
        int hits3 = 0, hits4 = 0;
        double e3 = 0, e4 = 0;
        for (int seed = 1; seed <= seeds; ++seed) {
            std::mt19937_64 rng(std::uint64_t(seed) * 7 + std::uint64_t(n));
            std::uniform_real_distribution<double> u(-320, 320), s(-205, 205);
            std::vector<Eigen::Vector2d> src(static_cast<std::size_t>(n)), ref(60);
            for (auto& p : src) p = {s(rng), s(rng)};
            for (auto& p : ref) p = {u(rng), u(rng)};
            FewStarMatchConfig c;
            c.minMatches = 3;
            c.maxFalseSolutions = 0.1;
            // E(k) of this field (the hypotheses expected are reported in the error message and the result);
            // a solution with k matches is counted whether or not E(k) passes.
            double hExpected = 0, p = 0;
            int bestK = 0;
            try {
                const FewStarMatchResult r = matchFewStars(src, ref, c);
                hExpected = r.hypothesesExpected;
                p = r.chanceMatchProbability;
                bestK = int(r.matches.size());
            } catch (const NumericalError& e) {
                const std::string m = e.what();
                const auto pos = m.find("the best matched ");
                if (pos != std::string::npos) bestK = std::stoi(m.substr(pos + 17));
                else if (m.find("ambiguous: two different solutions match ") != std::string::npos)
                    bestK = std::stoi(m.substr(m.find("solutions match ") + 16));
                const auto hp = m.find("H = ");
                if (hp != std::string::npos) hExpected = std::stod(m.substr(hp + 4));
                const auto pp = m.find("probability p = ");
                if (pp != std::string::npos) p = std::stod(m.substr(pp + 16));
            }
            e3 += fewStarFalseSolutions(hExpected, n, p, 3);
            e4 += fewStarFalseSolutions(hExpected, n, p, 4);
            hits3 += bestK >= 3;
            hits4 += bestK >= 4;
        }
        std::printf("random fields, %d sources, 60 references: P(k>=3) measured %.4f, E(3) %.4f; P(k>=4) measured %.4f, "
                    "E(4) %.2e\n",
                    n, double(hits3) / seeds, e3 / seeds, double(hits4) / seeds, e4 / seeds);
        EXPECT_GT(e3, 0.0);
        EXPECT_LE(double(hits3) / seeds, 1.5 * e3 / seeds + 3.0 / seeds);
        EXPECT_EQ(hits4, 0);
    }
}

TEST(AstrometryFewStars, TooFewStarsGiveAClearError) {
    FewSpec spec;
    spec.stars = 3;
    const FewField f = makeFewField(spec);
    try {
        fitAstrometry(f.sources, f.refs, *f.header, f.bbox, AstrometryConfig{});
        ADD_FAILURE() << "3 sources gave a solution";
    } catch (const NumericalError& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("only 3 usable sources"), std::string::npos) << m;
        EXPECT_NE(m.find("fewStarMinMatches = 4"), std::string::npos) << m;
    }
    // Without the few-star path, 6 stars are too few (minMatches = 10).
    spec.stars = 6;
    const FewField g = makeFewField(spec);
    AstrometryConfig off;
    off.fewStarEnabled = false;
    EXPECT_THROW(fitAstrometry(g.sources, g.refs, *g.header, g.bbox, off), NumericalError);
    const AstrometryResult r = fitAstrometry(g.sources, g.refs, *g.header, g.bbox, AstrometryConfig{});
    EXPECT_TRUE(r.fewStars);
    EXPECT_EQ(r.nMatches, 6);
    EXPECT_EQ(r.fitModel, AstrometryFitModel::Tan);
    EXPECT_STREQ(toString(r.fitModel), "tan");
    EXPECT_GT(r.falseSolutionsExpected, 0.0);
    EXPECT_LT(r.falseSolutionsExpected, 1e-3);
}

TEST(AstrometryFewStars, ConfigValidation) {
    AstrometryConfig c;
    c.fewStarMinMatches = 2;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.fewStarMinMatches = c.minMatches + 1;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.fewStarMatchRadiusArcsec = 2 * c.matchRadiusArcsec;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.fewStarMaxFalseSolutions = 0.5;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.affineMinMatches = 2;
    EXPECT_THROW(c.validate(), ConfigError);
    FewStarMatchConfig f;
    EXPECT_NO_THROW(f.validate());
    f.minMatches = 2;
    EXPECT_THROW(f.validate(), ConfigError);
}

}  // namespace
}  // namespace drp
