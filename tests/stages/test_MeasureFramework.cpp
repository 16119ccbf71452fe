// SingleFrameMeasurement as a stage: the schema it registers, one row per peak with parent/child links
// and packed ids, mask flags, sky coordinates, robustness to garbage, fatal errors, aperture correction.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <numbers>
#include <random>

#include "core/MoffatPsf.h"
#include "core/Psf.h"
#include "core/Render.h"
#include "core/Wcs.h"
#include "stages/measure/ApertureCorrection.h"
#include "stages/measure/SingleFrameMeasurement.h"

using namespace drp;

namespace {

/// A noisy sky-subtracted exposure (sky 1000 e-, read noise 9 e-) with stars of `fluxes` at `positions`.
Exposure makeExposure(int w, int h, const std::vector<Point2D>& positions, const std::vector<double>& fluxes,
                      std::uint64_t seed, std::shared_ptr<const Psf> psf = MoffatPsf::make(3.5, 3.5)) {
    MaskedImageF mi(Box2I({0, 0}, w, h));
    ImageF model(mi.bbox());
    for (std::size_t i = 0; i < positions.size(); ++i) addPointSource(model, positions[i], fluxes[i], *psf);
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> gauss(0.0, 1.0);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const double var = model(x, y) + 1000.0 + 81.0;
            mi.image()(x, y) = float(model(x, y) + std::sqrt(var) * gauss(rng));
            mi.variance()(x, y) = float(var);
        }
    return Exposure(mi, nullptr, std::move(psf));
}

PeakRecord peakAt(double x, double y, std::int64_t id) {
    PeakRecord p;
    p.id = id;
    p.ix = int(std::lround(x)), p.iy = int(std::lround(y));
    p.x = p.ix, p.y = p.iy;
    return p;
}

std::shared_ptr<const Footprint> circleFootprint(double x, double y, int r, std::vector<PeakRecord> peaks) {
    return std::make_shared<const Footprint>(
        SpanSet::fromShape(r, Stencil::CIRCLE, {int(std::lround(x)), int(std::lround(y))}), std::move(peaks));
}

}  // namespace

TEST(MeasureFramework, SchemaHasDocumentedColumnsWithUnits) {
    SingleFrameMeasurement meas(MeasurementConfig{});
    const Schema& s = meas.schema();
    for (const FieldInfo& f : s.fields()) EXPECT_FALSE(f.doc.empty()) << f.name;
    const std::vector<std::pair<std::string, std::string>> expected = {
        {"sourceId", ""},         {"ccdVisitId", ""},       {"parentSourceId", ""},    {"deblend_nChild", ""},
        {"x", "pixel"},           {"y", "pixel"},           {"xErr", "pixel"},         {"yErr", "pixel"},
        {"ixx", "pixel^2"},       {"iyyPSF", "pixel^2"},    {"psfFlux", "electron"},   {"psfFluxErr", "electron"},
        {"psfChi2", ""},          {"psfNdata", ""},         {"apCorr", ""},            {"apFlux_3", "electron"},
        {"apFlux_4_5Err", "electron"}, {"apFlux_35", "electron"}, {"kronFlux", "electron"}, {"kronRadius", "pixel"},
        {"sky", "electron/pixel"}, {"skyErr", "electron/pixel"}, {"extendedness", ""},    {"ra", "deg"},
        {"dec", "deg"},           {"coord_raErr", "deg"},   {"coord_decErr", "deg"},   {"psfFlux_flag", ""},
        {"psfFlux_flag_edge", ""}, {"psfFlux_flag_noGoodPixels", ""}, {"centroid_flag", ""},
        {"pixelFlags_edge", ""},  {"pixelFlags_saturatedCenter", ""}, {"pixelFlags_interpolatedCenter", ""},
        {"pixelFlags_bad", ""}};
    for (const auto& [name, unit] : expected) {
        ASSERT_TRUE(s.contains(name)) << name;
        EXPECT_EQ(s.field(s.indexOf(name)).unit, unit) << name;
    }
    // A reduced plugin list registers only its own columns.
    MeasurementConfig c;
    c.plugins = {"centroid", "psfFlux"};
    SingleFrameMeasurement small(c);
    EXPECT_TRUE(small.schema().contains("psfFlux"));
    EXPECT_FALSE(small.schema().contains("apFlux_3"));
    EXPECT_FALSE(small.schema().contains("extendedness"));
}

TEST(MeasureFramework, OneRowPerPeakWithParentsAndPackedIds) {
    // Footprint A: one star. Footprint B: two stars 9 px apart (one footprint, two peaks).
    const std::vector<Point2D> pos = {{50.3, 60.1}, {140.2, 100.4}, {149.1, 101.0}};
    Exposure exp = makeExposure(200, 200, pos, {2e4, 3e4, 2e4}, 1);
    std::vector<std::shared_ptr<const Footprint>> fps = {
        circleFootprint(50, 60, 8, {peakAt(50.3, 60.1, 1)}),
        std::make_shared<const Footprint>(SpanSet(Box2I({130, 90}, 30, 22)),
                                          std::vector<PeakRecord>{peakAt(140.2, 100.4, 2), peakAt(149.1, 101.0, 3)})};
    SingleFrameMeasurement meas(MeasurementConfig{});
    const std::int64_t ccdVisitId = 123456;
    const Table t = meas.measure(exp, FootprintSet(fps, exp.bbox()), ccdVisitId);
    ASSERT_EQ(t.size(), 4u);
    auto id = t.column<std::int64_t>("sourceId"), parent = t.column<std::int64_t>("parentSourceId");
    auto nChild = t.column<std::int32_t>("deblend_nChild");
    auto skipped = t.column<bool>("deblend_skipped");
    auto peakId = t.column<std::int64_t>("peakId");
    auto x = t.column<double>("x"), y = t.column<double>("y");
    for (std::size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(id[i], (ccdVisitId << 20) | std::int64_t(i + 1));
        EXPECT_EQ(t.column<std::int64_t>("ccdVisitId")[i], ccdVisitId);
    }
    EXPECT_EQ(parent[0], 0);
    EXPECT_EQ(nChild[0], 0);
    EXPECT_FALSE(skipped[0]);
    EXPECT_EQ(parent[1], 0);  // the parent of the blend
    EXPECT_EQ(nChild[1], 2);
    EXPECT_TRUE(skipped[1]);
    EXPECT_EQ(peakId[1], 2);
    for (std::size_t i : {2u, 3u}) {
        EXPECT_EQ(parent[i], id[1]);
        EXPECT_EQ(nChild[i], 0);
        EXPECT_TRUE(skipped[i]);
    }
    EXPECT_EQ(peakId[2], 2);
    EXPECT_EQ(peakId[3], 3);
    // Each child is centred on its own star (the neighbour's light, not removed, pulls it slightly).
    EXPECT_NEAR(x[0], pos[0].x, 0.05);
    EXPECT_NEAR(x[2], pos[1].x, 0.3);
    EXPECT_NEAR(x[3], pos[2].x, 0.3);
    EXPECT_NEAR(y[3], pos[2].y, 0.3);
    // Ids out of range are fatal.
    EXPECT_THROW(meas.measure(exp, FootprintSet(fps, exp.bbox()), -1), FatalMeasurementError);
    EXPECT_THROW(meas.measure(exp, FootprintSet(fps, exp.bbox()), std::int64_t(1) << 43), FatalMeasurementError);
}

TEST(MeasureFramework, EdgeAndSaturationFlags) {
    const std::vector<Point2D> pos = {{2.4, 50.2}, {60.3, 50.6}, {110.1, 49.8}, {160.5, 50.5}};
    Exposure exp = makeExposure(200, 100, pos, {3e4, 3e4, 3e4, 3e4}, 2);
    const MaskPixel sat = exp.mask().planeBitMask("SAT"), intrp = exp.mask().planeBitMask("INTRP");
    exp.mask()(60, 51) |= sat;   // at the centre of star 1 (a SAT pixel: excluded from the fits)
    exp.mask()(60, 50) |= sat;
    exp.mask()(111, 50) |= intrp;  // next to the centre pixel of star 2: interpolated centre
    exp.mask()(166, 50) |= sat;    // in the footprint of star 3 but not at its centre
    std::vector<std::shared_ptr<const Footprint>> fps;
    for (std::size_t i = 0; i < pos.size(); ++i)
        fps.push_back(std::make_shared<const Footprint>(
            SpanSet::fromShape(8, Stencil::CIRCLE, {int(std::lround(pos[i].x)), int(std::lround(pos[i].y))})
                .clippedTo(exp.bbox()),
            std::vector<PeakRecord>{peakAt(pos[i].x, pos[i].y, std::int64_t(i + 1))}));
    SingleFrameMeasurement meas(MeasurementConfig{});
    const Table t = meas.measure(exp, FootprintSet(fps, exp.bbox()), 1);
    auto edge = t.column<bool>("pixelFlags_edge"), satC = t.column<bool>("pixelFlags_saturatedCenter");
    auto satAny = t.column<bool>("pixelFlags_saturated"), intC = t.column<bool>("pixelFlags_interpolatedCenter");
    auto psfEdge = t.column<bool>("psfFlux_flag_edge"), apTrunc = t.column<bool>("apFlux_3_flag_apertureTruncated");
    auto flux = t.column<double>("psfFlux"), err = t.column<double>("psfFluxErr");
    EXPECT_TRUE(edge[0]);
    EXPECT_TRUE(psfEdge[0]);
    EXPECT_TRUE(apTrunc[0]);
    EXPECT_TRUE(std::isfinite(flux[0]));
    for (std::size_t i = 1; i < 4; ++i) {
        EXPECT_FALSE(edge[i]);
        EXPECT_FALSE(psfEdge[i]);
    }
    EXPECT_TRUE(satC[1]);
    EXPECT_TRUE(satAny[1]);
    EXPECT_TRUE(apTrunc[1]);  // the SAT pixels are not usable
    EXPECT_NEAR(flux[1], 3e4, 4 * err[1]);  // the fit does without them
    EXPECT_FALSE(satC[2]);
    EXPECT_TRUE(intC[2]);
    EXPECT_FALSE(satC[3]);
    EXPECT_TRUE(satAny[3]);
    EXPECT_FALSE(satC[0] || satAny[0] || satAny[2]);
}

TEST(MeasureFramework, GarbageNeverThrows) {
    const std::vector<Point2D> pos = {{30, 30}, {80, 30}, {130, 30}, {30, 80}, {80, 80}, {130, 80}};
    Exposure exp = makeExposure(160, 110, pos, std::vector<double>(pos.size(), 2e4), 3);
    const Box2I img = exp.bbox();
    // Star 0: NaN pixels over its core; star 1: zero variance; star 2: negative image; star 3: all NaN
    // variance; star 4: infinite pixels.
    for (int y = 27; y <= 33; ++y)
        for (int x = 27; x <= 33; ++x) exp.maskedImage().image()(x, y) = std::nanf("");
    for (int y = 15; y <= 45; ++y)
        for (int x = 65; x <= 95; ++x) exp.maskedImage().variance()(x, y) = 0.0f;
    for (int y = 15; y <= 45; ++y)
        for (int x = 115; x <= 145; ++x) exp.maskedImage().image()(x, y) = -50.0f;
    for (int y = 65; y <= 95; ++y)
        for (int x = 15; x <= 45; ++x) exp.maskedImage().variance()(x, y) = std::nanf("");
    exp.maskedImage().image()(80, 80) = INFINITY;
    std::vector<std::shared_ptr<const Footprint>> fps;
    for (std::size_t i = 0; i < pos.size(); ++i) fps.push_back(circleFootprint(pos[i].x, pos[i].y, 6, {peakAt(pos[i].x, pos[i].y, 1)}));
    fps.push_back(std::make_shared<const Footprint>(SpanSet(), std::vector<PeakRecord>{peakAt(100, 50, 9)}));  // empty
    fps.push_back(std::make_shared<const Footprint>(SpanSet(Box2I({60, 60}, 5, 5))));  // no peaks
    fps.push_back(circleFootprint(-50, -50, 3, {peakAt(-50, -50, 10)}));               // off the image
    PeakRecord nanPeak = peakAt(10, 10, 11);
    nanPeak.x = std::nan("");
    fps.push_back(circleFootprint(10, 10, 3, {nanPeak}));
    fps.push_back(circleFootprint(1000, 10, 3, {peakAt(1000, 10, 12)}));
    SingleFrameMeasurement meas(MeasurementConfig{});
    Table t(meas.schemaPtr());
    ASSERT_NO_THROW(t = meas.measure(exp, FootprintSet(fps, img), 5));
    EXPECT_EQ(t.size(), fps.size());
    auto flux = t.column<double>("psfFlux");
    auto flag = t.column<bool>("psfFlux_flag");
    for (std::size_t i = 0; i < t.size(); ++i) {
        // Either a finite measurement or a flag, never an unflagged NaN.
        EXPECT_TRUE(std::isfinite(flux[i]) || flag[i]) << "row " << i;
    }
    EXPECT_TRUE(t.column<bool>("pixelFlags_offimage")[8]);
    EXPECT_TRUE(flag[8]);
    // An all-NaN exposure and an empty one.
    Exposure nan = exp.clone();
    nan.maskedImage().image().fill(std::nanf(""));
    EXPECT_NO_THROW(meas.measure(nan, FootprintSet(fps, img), 5));
    Exposure zeroVar = exp.clone();
    zeroVar.maskedImage().variance().fill(0.0f);
    EXPECT_NO_THROW(meas.measure(zeroVar, FootprintSet(fps, img), 5));
    EXPECT_EQ(meas.measure(exp, FootprintSet({}, img), 5).size(), 0u);
}

TEST(MeasureFramework, NoPsfIsFatalButNoWcsIsAFlag) {
    Exposure exp = makeExposure(100, 100, {{50, 50}}, {1e4}, 4);
    std::vector<std::shared_ptr<const Footprint>> fps = {circleFootprint(50, 50, 6, {peakAt(50, 50, 1)})};
    SingleFrameMeasurement meas(MeasurementConfig{});
    const Table t = meas.measure(exp, FootprintSet(fps, exp.bbox()), 1);
    EXPECT_TRUE(t.column<bool>("coord_flag")[0]);
    EXPECT_TRUE(std::isnan(t.column<double>("ra")[0]));
    Exposure noPsf = exp.clone();
    noPsf.setPsf(nullptr);
    EXPECT_THROW(meas.measure(noPsf, FootprintSet(fps, exp.bbox()), 1), FatalMeasurementError);
    MeasurementConfig c;
    c.plugins = {"centroid", "shape", "apFlux", "kronFlux", "sky", "pixelFlags"};
    SingleFrameMeasurement noPsfPlugins(c);
    const Table t2 = noPsfPlugins.measure(noPsf, FootprintSet(fps, exp.bbox()), 1);
    EXPECT_NEAR(t2.column<double>("x")[0], 50, 0.1);
    EXPECT_TRUE(t2.column<bool>("shape_flag_psf")[0]);
}

TEST(MeasureFramework, SkyCoordinatesFollowTheWcs) {
    // 0.2 arcsec pixels, rotated 30 degrees: ra, dec are the Wcs of the centroid; the errors are the
    // centroid errors times the pixel scale.
    std::vector<Point2D> pos;
    for (int i = 0; i < 6; ++i) pos.push_back({30.0 + 40 * i + 0.37, 50.0 + 0.61 * i});
    Exposure exp = makeExposure(260, 100, pos, std::vector<double>(pos.size(), 5e4), 5);
    auto wcs = Wcs::makeTan({130, 50}, SpherePoint::fromDegrees(150.0, 2.0), 0.2 * arcseconds, 30.0 * degrees);
    exp.setWcs(wcs);
    std::vector<std::shared_ptr<const Footprint>> fps;
    for (std::size_t i = 0; i < pos.size(); ++i) fps.push_back(circleFootprint(pos[i].x, pos[i].y, 8, {peakAt(pos[i].x, pos[i].y, 1)}));
    SingleFrameMeasurement meas(MeasurementConfig{});
    const Table t = meas.measure(exp, FootprintSet(fps, exp.bbox()), 1);
    const double scaleDeg = 0.2 / 3600.0, cosDec = std::cos(2.0 * std::numbers::pi / 180);
    for (std::size_t i = 0; i < t.size(); ++i) {
        const Point2D c{t.column<double>("x")[i], t.column<double>("y")[i]};
        const SpherePoint p = wcs->pixelToSky(c);
        EXPECT_DOUBLE_EQ(t.column<double>("ra")[i], p.ra().asDegrees());
        EXPECT_DOUBLE_EQ(t.column<double>("dec")[i], p.dec().asDegrees());
        const double xe = t.column<double>("xErr")[i], ye = t.column<double>("yErr")[i];
        const double cxy = t.column<double>("x_y_Cov")[i];
        const double raErr = t.column<double>("coord_raErr")[i], decErr = t.column<double>("coord_decErr")[i];
        // Trace and determinant of the covariance are invariant under the rotation.
        const double trSky = raErr * raErr * cosDec * cosDec + decErr * decErr;
        EXPECT_NEAR(trSky, (xe * xe + ye * ye) * scaleDeg * scaleDeg, 1e-3 * trSky);
        const double detXY = xe * xe * ye * ye - cxy * cxy;
        const double covSky = t.column<double>("coord_ra_dec_Cov")[i] * cosDec;
        const double detSky = raErr * raErr * cosDec * cosDec * decErr * decErr - covSky * covSky;
        EXPECT_NEAR(detSky, detXY * std::pow(scaleDeg, 4), 2e-3 * detSky);
        EXPECT_FALSE(t.column<bool>("coord_flag")[i]);
    }
}

namespace {

/// A table with the measurement schema and `n` synthetic stars whose apFlux_12 / psfFlux follows
/// `truth(x, y)` with 0.3% noise; stars spread over a 4000 x 4000 detector.
Table apCorrTable(std::size_t n, std::uint64_t seed, const std::function<double(double, double)>& truth) {
    SingleFrameMeasurement meas(MeasurementConfig{});
    Table t(meas.schemaPtr(), n);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0, 4000), lf(std::log(1e4), std::log(1e6));
    std::normal_distribution<double> g(0, 1);
    for (std::size_t i = 0; i < n; ++i) {
        const double x = u(rng), y = u(rng), f = std::exp(lf(rng));
        t.column<double>("x")[i] = x;
        t.column<double>("y")[i] = y;
        t.column<double>("psfFlux")[i] = f;
        t.column<double>("psfFluxErr")[i] = 0.002 * f;
        t.column<double>("apFlux_12")[i] = f * truth(x, y) * (1 + 0.002 * g(rng));
        t.column<double>("apFlux_12Err")[i] = 0.002 * f;
        t.column<double>("apCorr")[i] = std::nan("");
    }
    return t;
}

}  // namespace

TEST(MeasureFramework, ApertureCorrectionRecoversAConstantAndAGradient) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        // A constant, fitted at order 0 and with order 2 allowed (the leave-one-out choice may keep a lower one).
        Table t = apCorrTable(300, seed, [](double, double) { return 0.953; });
        std::vector<std::size_t> rows(t.size());
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
        for (int order : {0, 2}) {
            const ApertureCorrectionResult r = measureApertureCorrection(t, rows, "apFlux_12", order, Box2I({0, 0}, 4000, 4000));
            EXPECT_LE(r.order, order);
            for (Point2D p : {Point2D{0, 0}, Point2D{2000, 2000}, Point2D{4000, 100}}) {
                EXPECT_NEAR(r.value(p), 0.953, r.order == 0 ? 5e-4 : 1.5e-3);
            }
        }
        // A linear gradient, with 10% outliers (galaxies among the "stars") that the clipping rejects.
        auto grad = [](double x, double y) { return 0.95 + 2e-5 * (x - 2000) - 1e-5 * (y - 2000); };
        Table g = apCorrTable(400, seed + 10, grad);
        for (std::size_t i = 0; i < g.size(); i += 10) g.column<double>("apFlux_12")[i] *= 1.3;
        std::vector<std::size_t> gRows(g.size());
        for (std::size_t i = 0; i < gRows.size(); ++i) gRows[i] = i;
        const ApertureCorrectionResult r = measureApertureCorrection(g, gRows, "apFlux_12", 1);
        EXPECT_EQ(r.order, 1);  // a real gradient is kept
        EXPECT_EQ(r.nRejected, 40u);
        for (Point2D p : {Point2D{100, 100}, Point2D{2000, 2000}, Point2D{3900, 200}, Point2D{300, 3800}}) {
            EXPECT_NEAR(r.value(p), grad(p.x, p.y), 1e-3);
        }
        // Application: psfFlux and its error scaled, apCorr recorded; a second application is refused.
        const double f0 = g.column<double>("psfFlux")[5], x5 = g.column<double>("x")[5], y5 = g.column<double>("y")[5];
        applyApertureCorrection(g, r);
        EXPECT_DOUBLE_EQ(g.column<double>("apCorr")[5], r.value({x5, y5}));
        EXPECT_DOUBLE_EQ(g.column<double>("psfFlux")[5], f0 * r.value({x5, y5}));
        EXPECT_THROW(applyApertureCorrection(g, r), LogicError);
    }
    // Too few stars lower the order; none is an error.
    Table t = apCorrTable(3, 9, [](double, double) { return 1.0; });
    EXPECT_EQ(measureApertureCorrection(t, {0, 1, 2}, "apFlux_12", 2).order, 0);
    EXPECT_THROW(measureApertureCorrection(t, {}, "apFlux_12", 1), InvalidInputError);
}

// A sparse detector (a shallow band: 6-15 aperture-correction stars, 4% scatter each from neighbours in the big
// aperture) must not get a gradient that the stars do not show: fitted to noise it extrapolates to the corners
// with errors of several percent (the demo's z band had corrections from 0.97 to 1.16 on one detector). A
// real gradient of +-8% across the detector is still found from 15 stars of 1% scatter.
TEST(MeasureFramework, ApertureCorrectionOrderFollowsTheEvidence) {
    const Box2I box({0, 0}, 4000, 4000);
    const std::vector<Point2D> corners{{0, 0}, {3999, 0}, {0, 3999}, {3999, 3999}, {2000, 2000}};
    double sumSq = 0, sumSqMean = 0;
    int n = 0, gradientsChosen = 0, trials = 0;
    for (std::uint64_t seed = 1; seed <= 200; ++seed) {
        const std::size_t nStars = 6 + seed % 10;
        Table t = apCorrTable(nStars, 1000 + seed, [](double, double) { return 1.06; });
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> g(0, 0.04);
        double mean = 0;
        for (std::size_t i = 0; i < t.size(); ++i) {
            t.column<double>("apFlux_12")[i] *= 1 + g(rng);
            mean += t.column<double>("apFlux_12")[i] / t.column<double>("psfFlux")[i] / double(t.size());
        }
        std::vector<std::size_t> rows(t.size());
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
        const ApertureCorrectionResult r = measureApertureCorrection(t, rows, "apFlux_12", 2, box);
        gradientsChosen += r.order > 0;
        ++trials;
        for (Point2D p : corners) {
            sumSq += (r.value(p) - 1.06) * (r.value(p) - 1.06);
            sumSqMean += (mean - 1.06) * (mean - 1.06);
            ++n;
        }
    }
    const double rms = std::sqrt(sumSq / n), rmsMean = std::sqrt(sumSqMean / n);
    // The plain mean of the ratios errs by 0.04 / sqrt(N) ~ 1.3%; the fit may not do much worse anywhere.
    EXPECT_LT(rms, 1.3 * rmsMean) << "rms " << rms << " vs mean-only " << rmsMean;
    EXPECT_LT(gradientsChosen, trials / 4);

    auto grad = [](double x, double) { return 1.0 + 4e-5 * (x - 2000); };  // 0.92 .. 1.08
    int found = 0;
    for (std::uint64_t seed = 1; seed <= 50; ++seed) {
        Table t = apCorrTable(15, 5000 + seed, grad);
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> g(0, 0.01);
        for (std::size_t i = 0; i < t.size(); ++i) t.column<double>("apFlux_12")[i] *= 1 + g(rng);
        std::vector<std::size_t> rows(t.size());
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = i;
        const ApertureCorrectionResult r = measureApertureCorrection(t, rows, "apFlux_12", 2, box);
        found += r.order >= 1;
        for (Point2D p : {Point2D{200, 2000}, Point2D{3800, 2000}}) EXPECT_NEAR(r.value(p), grad(p.x, p.y), 0.03);
    }
    EXPECT_EQ(found, 50);
}
