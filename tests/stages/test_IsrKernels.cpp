// ISR kernels (overscan, interpolation, crosstalk, non-linearity), configuration, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "tests/stages/test_IsrSupport.h"

using namespace drp;
using namespace drp::isrtest;

namespace {

/// A raw amplifier image: per-row level + Gaussian noise everywhere; garbage in the leading overscan columns.
Image<std::int32_t> syntheticRaw(const Amplifier& a, const std::vector<double>& level, double noise, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal;
    Image<std::int32_t> raw(a.rawBBox, 0);
    for (int v = 0; v < raw.height(); ++v)
        for (int u = 0; u < raw.width(); ++u) {
            double x = level[std::size_t(std::min(v, int(level.size()) - 1))] + noise * normal(rng);
            if (u == a.rawSerialOverscanBBox.minX() || u == a.rawSerialOverscanBBox.minX() + 1) x += 500;  // CTI trail
            raw(u, v) = std::int32_t(std::lround(x));
        }
    return raw;
}

RawExposure biasLike(const DetectorInstrument& inst, std::uint64_t seed) {
    return simulateCalibs(inst, ExposureKind::Bias, 1, seed).front();
}

IsrConfig overscanOnly() {
    IsrConfig c;
    c.doBias = c.doDark = c.doFlat = c.doCrosstalk = c.doLinearity = c.doDefects = c.doInterpolate = false;
    return c;
}

}  // namespace

TEST(IsrKernels, OverscanLevelsMeanMedianPolynomial) {
    const auto cam = tinyCamera();
    const Amplifier& a = cam->detector(0).amplifiers()[0];
    const int nRows = a.rawDataBBox.height();
    const double noise = 4.0;
    const int nCols = a.rawSerialOverscanBBox.width() - 2;
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        std::vector<double> level(std::size_t(a.rawBBox.height()));
        for (std::size_t v = 0; v < level.size(); ++v) level[v] = 1000 + 3 * std::sin(double(v) / 10.0) + double(seed);
        const Image<std::int32_t> raw = syntheticRaw(a, level, noise, seed);
        IsrConfig c;
        double measured = 0, levelVar = 0;
        const auto mean = isr::overscanLevels(a, raw, c, noise, &measured, &levelVar);
        ASSERT_EQ(int(mean.size()), nRows);
        double chi2 = 0;
        for (int v = 0; v < nRows; ++v) chi2 += std::pow(mean[std::size_t(v)] - level[std::size_t(v)], 2) / levelVar;
        chi2 /= nRows;
        EXPECT_NEAR(measured, std::sqrt(noise * noise + 1.0 / 12.0), 0.2);
        EXPECT_NEAR(levelVar, (noise * noise + 1.0 / 12.0) / nCols, 0.15 * levelVar);
        EXPECT_NEAR(chi2, 1.0, 0.3);
        c.overscanMethod = OverscanMethod::MedianPerRow;
        double medVar = 0;
        const auto med = isr::overscanLevels(a, raw, c, noise, nullptr, &medVar);
        double chi2m = 0;
        for (int v = 0; v < nRows; ++v) chi2m += std::pow(med[std::size_t(v)] - level[std::size_t(v)], 2) / medVar;
        EXPECT_NEAR(chi2m / nRows, 1.0, 0.35);
        EXPECT_NEAR(medVar / levelVar, std::numbers::pi / 2, 0.15);  // small-sample median efficiency
    }
    // A linear ramp is recovered by a first-order polynomial to well below the per-row noise.
    std::vector<double> ramp(std::size_t(a.rawBBox.height()));
    for (std::size_t v = 0; v < ramp.size(); ++v) ramp[v] = 1000 + 0.05 * double(v);
    IsrConfig c;
    c.overscanMethod = OverscanMethod::Polynomial;
    c.overscanOrder = 1;
    const auto poly = isr::overscanLevels(a, syntheticRaw(a, ramp, noise, 9), c, noise);
    for (int v = 0; v < nRows; v += 10) EXPECT_NEAR(poly[std::size_t(v)], ramp[std::size_t(v)], 0.4);
    // Unusable overscan pixels are ignored; a row without any takes the median level.
    Image<std::int32_t> raw = syntheticRaw(a, std::vector<double>(std::size_t(a.rawBBox.height()), 1000.0), noise, 3);
    for (int u = a.rawSerialOverscanBBox.minX(); u <= a.rawSerialOverscanBBox.maxX(); ++u) raw(u, 17) = -5;
    raw(a.rawSerialOverscanBBox.maxX(), 18) = 999999;
    const auto lv = isr::overscanLevels(a, raw, IsrConfig{}, noise);
    EXPECT_NEAR(lv[17], 1000.0, 1.0);
    EXPECT_NEAR(lv[18], 1000.0, 4.0);
}

TEST(IsrKernels, BiasVarianceMatchesForEachOverscanMethod) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    for (OverscanMethod m : {OverscanMethod::MeanPerRow, OverscanMethod::MedianPerRow}) {
        for (std::uint64_t seed = 1; seed <= 3; ++seed) {
            InstrumentConfig ic;
            ic.seed = seed;
            const DetectorInstrument inst(det, ic, focalRadius(det));
            IsrConfig c = overscanOnly();
            c.overscanMethod = m;
            IsrCalibrations calibs;
            calibs.amplifiers = truthAmplifiers(inst);
            const Exposure out = runIsr(biasLike(inst, seed), det, calibs, c);
            // The readout part of the variance (read noise + overscan level noise): the variance plane minus
            // its Poisson term max(signal, 0), which is biased high where the signal is pure noise.
            ImageF readout = out.variance().clone();
            for (int y = 0; y < readout.height(); ++y)
                for (int x = 0; x < readout.width(); ++x) readout(x, y) -= std::max(out.image()(x, y), 0.0f);
            const ChiStats s = chiStats(MaskedImageF(out.image(), out.mask(), readout), truthBias(inst, c), 0);
            std::printf("overscan %s seed %llu: bias chi mean %.4f chi2 %.4f\n", overscanMethodName(m).c_str(),
                        (unsigned long long)seed, s.mean, s.chi2);
            EXPECT_NEAR(s.chi2, 1.0, 0.04);
            EXPECT_LT(std::fabs(s.mean), 0.05);
        }
    }
}

TEST(IsrKernels, InterpolationRowLinearAndGaussian) {
    for (InterpolationMethod method : {InterpolationMethod::RowLinear, InterpolationMethod::GaussianAverage}) {
        MaskedImageF mi(60, 40);
        for (int y = 0; y < 40; ++y)
            for (int x = 0; x < 60; ++x) {
                mi.image()(x, y) = float(3.0 * x + 2.0 * y + 5.0);
                mi.variance()(x, y) = 10.0f;
            }
        Mask& m = mi.mask();
        const MaskPixel bad = m.planeBitMask("BAD"), intrp = m.planeBitMask("INTRP");
        for (int y = 5; y < 35; ++y) m(20, y) |= bad;  // a bad column
        m(40, 20) |= bad;
        m(41, 20) |= bad;                              // two adjacent pixels
        for (int y = 5; y < 35; ++y) mi.image()(20, y) = std::numeric_limits<float>::quiet_NaN();
        mi.image()(40, 20) = mi.image()(41, 20) = 1e6f;
        IsrConfig c;
        c.interpolationMethod = method;
        const std::int64_t n = isr::interpolateMaskedPixels(mi, bad, intrp, c);
        EXPECT_EQ(n, 32);
        // Exact on a plane where the good neighbourhood is symmetric (always, along a row).
        const bool gauss = method == InterpolationMethod::GaussianAverage;
        for (int y = 5; y < 35; ++y) {
            EXPECT_TRUE(m(20, y) & intrp);
            EXPECT_NEAR(mi.variance()(20, y), 10.0f, 1e-4);
            if (!gauss || (y >= 10 && y < 30)) {
                EXPECT_NEAR(mi.image()(20, y), 3.0 * 20 + 2.0 * y + 5.0, 1e-3);
            } else {
                EXPECT_NEAR(mi.image()(20, y), 3.0 * 20 + 2.0 * y + 5.0, 2.0);
            }
        }
        EXPECT_NEAR(mi.image()(40, 20), 3.0 * 40 + 2.0 * 20 + 5.0, gauss ? 0.5 : 1e-3);
        EXPECT_NEAR(mi.image()(41, 20), 3.0 * 41 + 2.0 * 20 + 5.0, gauss ? 0.5 : 1e-3);
        EXPECT_FALSE(m(19, 10) & intrp);
    }
    // Runs wider than the limit and fully masked rows are left alone; an edge run copies its neighbour.
    MaskedImageF mi(10, 3);
    for (int x = 0; x < 10; ++x) mi.image()(x, 0) = mi.image()(x, 1) = mi.image()(x, 2) = float(x);
    const MaskPixel bad = mi.mask().planeBitMask("BAD"), intrp = mi.mask().planeBitMask("INTRP");
    for (int x = 0; x < 10; ++x) mi.mask()(x, 0) |= bad;
    for (int x = 2; x < 8; ++x) mi.mask()(x, 1) |= bad;
    mi.mask()(0, 2) |= bad;
    IsrConfig c;
    c.interpolationMaxWidth = 5;
    EXPECT_EQ(isr::interpolateMaskedPixels(mi, bad, intrp, c), 1);
    EXPECT_FLOAT_EQ(mi.image()(0, 2), 1.0f);
    EXPECT_FALSE(mi.mask()(4, 1) & intrp);
    EXPECT_FALSE(mi.mask()(4, 0) & intrp);
}

TEST(IsrKernels, CrosstalkUsesTheRawReadoutPosition) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const auto& amps = det.amplifiers();
    const int nAmp = int(amps.size());
    Eigen::MatrixXd xt = Eigen::MatrixXd::Zero(nAmp, nAmp);
    xt(5, 0) = 2e-3;  // victim C11 (upper row, read from the upper right) <- source C00 (lower left)
    std::vector<AmplifierCalib> cal;
    for (const Amplifier& a : amps) cal.push_back({a.gain, a.readNoise, 0.0, 65535.0});
    ImageF img(det.bbox(), 0.0f);
    Mask mask(det.bbox());
    const Point2I srcPix = amps[0].rawToAssembled(Point2I{amps[0].rawDataBBox.minX() + 5, 7});
    const Point2I vicPix = amps[5].rawToAssembled(Point2I{amps[5].rawDataBBox.minX() + 5, 7});
    EXPECT_EQ(vicPix.x, amps[5].bbox.maxX() - 5);
    EXPECT_EQ(vicPix.y, amps[5].bbox.maxY() - 7);
    img(srcPix.x, srcPix.y) = 1000.0f;
    const double ghost = 2e-3 * amps[5].gain / amps[0].gain * 1000.0;
    img(vicPix.x, vicPix.y) = float(ghost);
    isr::subtractCrosstalk(img, mask, 0, det, xt, cal);
    EXPECT_NEAR(img(vicPix.x, vicPix.y), 0.0, 1e-5);
    EXPECT_FLOAT_EQ(img(srcPix.x, srcPix.y), 1000.0f);
    EXPECT_THROW(isr::subtractCrosstalk(img, mask, 0, det, Eigen::MatrixXd::Zero(3, 3), cal), InvalidInputError);
}

TEST(IsrKernels, NonlinearityInverse) {
    for (double c : {0.0, -1e-7, -1.1e-7, 2e-7})
        for (double x : {0.0, 10.0, 1000.0, 50000.0, 100000.0})
            EXPECT_NEAR(isr::invertQuadraticNonlinearity(applyNonlinearity(x, c), c), x, 1e-6 * std::max(x, 1.0));
}

TEST(IsrKernels, ConfigValidationAndNames) {
    IsrConfig c;
    EXPECT_NO_THROW(c.validate());
    EXPECT_TRUE(c == IsrConfig{});
    auto bad = [](auto mutate) {
        IsrConfig x;
        mutate(x);
        EXPECT_THROW(x.validate(), ConfigError);
    };
    bad([](IsrConfig& x) { x.doFringe = true; });
    bad([](IsrConfig& x) { x.overscanOrder = -1; });
    bad([](IsrConfig& x) { x.overscanSkipLeading = -1; });
    bad([](IsrConfig& x) { x.overscanClipSigma = 0; });
    bad([](IsrConfig& x) { x.saturationGrow = 101; });
    bad([](IsrConfig& x) { x.flatMinValue = 1.0; });
    bad([](IsrConfig& x) { x.interpolationSigma = 0; });
    bad([](IsrConfig& x) { x.interpolationMaxWidth = 0; });
    bad([](IsrConfig& x) { x.interpolateMaskPlanes = {"NOPE"}; });
    c.doDark = false;
    EXPECT_FALSE(c == IsrConfig{});
    for (auto m : {OverscanMethod::MeanPerRow, OverscanMethod::MedianPerRow, OverscanMethod::Polynomial})
        EXPECT_EQ(overscanMethodFromName(overscanMethodName(m)), m);
    for (auto m : {InterpolationMethod::RowLinear, InterpolationMethod::GaussianAverage})
        EXPECT_EQ(interpolationMethodFromName(interpolationMethodName(m)), m);
    EXPECT_THROW(overscanMethodFromName("mean"), ConfigError);
    EXPECT_THROW(interpolationMethodFromName("x"), ConfigError);
}

TEST(IsrKernels, MissingAndMisshapenCalibrations) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    InstrumentConfig ic;
    const DetectorInstrument inst(det, ic, focalRadius(det));
    const IsrConfig config;
    const TruthCalibs truth(inst, "r", config);
    RawExposure raw = inst.simulate(ImageF(det.bbox(), 1000.0f), 30, 30, "r", ExposureKind::Science, 5);
    EXPECT_NO_THROW(runIsr(raw, det, truth.calibs, config));

    auto expectNotFound = [&](IsrCalibrations c, const std::string& words) {
        try {
            runIsr(raw, det, c, config);
            ADD_FAILURE() << "no NotFoundError for " << words;
        } catch (const NotFoundError& e) {
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    IsrCalibrations c = truth.calibs;
    c.flat = nullptr;
    expectNotFound(c, "master flat for band r");
    c = truth.calibs;
    c.bias = nullptr;
    expectNotFound(c, "master bias");
    c = truth.calibs;
    c.dark = nullptr;
    expectNotFound(c, "master dark");
    c = truth.calibs;
    c.crosstalk = Eigen::MatrixXd();
    expectNotFound(c, "crosstalk");
    c = truth.calibs;
    c.amplifiers.clear();
    expectNotFound(c, "linearity");

    // Wrong shapes.
    const Exposure small(Box2I({0, 0}, 100, 100));
    c = truth.calibs;
    c.flat = &small;
    EXPECT_THROW(runIsr(raw, det, c, config), InvalidInputError);
    c = truth.calibs;
    c.crosstalk = Eigen::MatrixXd::Zero(3, 3);
    EXPECT_THROW(runIsr(raw, det, c, config), InvalidInputError);
    c = truth.calibs;
    c.amplifiers.pop_back();
    EXPECT_THROW(runIsr(raw, det, c, config), InvalidInputError);
    RawExposure wrong = raw;
    wrong.amplifiers[2] = Image<std::int32_t>(10, 10, 1000);
    EXPECT_THROW(runIsr(wrong, det, truth.calibs, config), InvalidInputError);
    wrong = raw;
    wrong.amplifiers.pop_back();
    EXPECT_THROW(runIsr(wrong, det, truth.calibs, config), InvalidInputError);
    wrong = raw;
    wrong.detectorId = 99;
    EXPECT_THROW(runIsr(wrong, det, truth.calibs, config), InvalidInputError);
    wrong = raw;
    wrong.visitInfo.darkTimeS = std::numeric_limits<double>::quiet_NaN();
    EXPECT_THROW(runIsr(wrong, det, truth.calibs, config), InvalidInputError);
    IsrConfig fringe = config;
    fringe.doFringe = true;
    EXPECT_THROW(runIsr(raw, det, truth.calibs, fringe), ConfigError);
}

TEST(IsrKernels, InvalidRawPixelsAndCalibrationNaNsBecomeBad) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const DetectorInstrument inst(det, InstrumentConfig{}, focalRadius(det));
    const IsrConfig config;
    const TruthCalibs truth(inst, "r", config);
    RawExposure raw = inst.simulate(ImageF(det.bbox(), 1000.0f), 30, 30, "r", ExposureKind::Science, 6);
    // The integer raw's "NaN": values outside the ADC range (a reader's BLANK, a corrupted readout).
    const Amplifier& a1 = det.amplifiers()[1];
    std::int64_t nInvalid = 0;
    for (int v = 10; v < 20; ++v)
        for (int u = a1.rawDataBBox.minX() + 10; u < a1.rawDataBBox.minX() + 20; ++u, ++nInvalid)
            raw.amplifiers[1](u, v) = std::numeric_limits<std::int32_t>::min();
    for (int v = 0; v < a1.rawDataBBox.height(); ++v, ++nInvalid) raw.amplifiers[1](a1.rawDataBBox.minX() + 40, v) = 70000;
    raw.amplifiers[1](a1.rawSerialOverscanBBox.maxX(), 3) = -1;  // an overscan pixel: ignored, not counted
    const Amplifier& a6 = det.amplifiers()[6];
    raw.amplifiers[6].fill(-1);  // a dead amplifier (overscan included)
    nInvalid += a6.bbox.area();
    // A master flat with NaN and zero pixels.
    Exposure flat = truth.flat.clone();
    flat.image()(5, 300) = std::numeric_limits<float>::quiet_NaN();
    flat.image()(6, 300) = 0.0f;
    IsrCalibrations c = truth.calibs;
    c.flat = &flat;
    Exposure out;
    ASSERT_NO_THROW(out = runIsr(raw, det, c, config));
    const MaskPixel bad = out.mask().planeBitMask("BAD"), intrp = out.mask().planeBitMask("INTRP");
    EXPECT_EQ(out.metadata().getInt("ISR_NINVALID"), nInvalid);
    const Point2I p = a1.rawToAssembled(Point2I{a1.rawDataBBox.minX() + 15, 15});
    EXPECT_TRUE(out.mask()(p.x, p.y) & bad);
    EXPECT_EQ(out.mask().subImage(a6.bbox).countBits(bad), a6.bbox.area());
    EXPECT_TRUE(out.mask()(5, 300) & bad);
    EXPECT_TRUE(out.mask()(6, 300) & bad);
    // Interpolated: every pixel finite, the dead amplifier filled from its neighbours along rows.
    std::int64_t nonFinite = 0;
    for (int y = 0; y < out.height(); ++y)
        for (int x = 0; x < out.width(); ++x)
            if (!std::isfinite(out.image()(x, y)) || !std::isfinite(out.variance()(x, y))) ++nonFinite;
    EXPECT_EQ(nonFinite, 0);
    EXPECT_TRUE(out.mask()(p.x, p.y) & intrp);
    // Without interpolation the BAD pixels stay NaN (never silently zero).
    IsrConfig noInterp = config;
    noInterp.doInterpolate = false;
    const Exposure raw2 = runIsr(raw, det, c, noInterp);
    EXPECT_TRUE(std::isnan(raw2.image()(p.x, p.y)));
    // Other amplifiers are unaffected by the dead one (crosstalk skips BAD sources).
    EXPECT_EQ(out.mask().subImage(det.amplifiers()[7].bbox).countBits(bad),
              runIsr(inst.simulate(ImageF(det.bbox(), 1000.0f), 30, 30, "r", ExposureKind::Science, 6), det,
                     truth.calibs, config)
                  .mask()
                  .subImage(det.amplifiers()[7].bbox)
                  .countBits(bad));
}

TEST(IsrKernels, DeterministicAndDetectorDefaults) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const DetectorInstrument inst(det, InstrumentConfig{}, focalRadius(det));
    const IsrConfig config;
    const TruthCalibs truth(inst, "g", config);
    const RawExposure raw = inst.simulate(ImageF(det.bbox(), 500.0f), 30, 30, "g", ExposureKind::Science, 8);
    const Exposure a = runIsr(raw, det, truth.calibs, config);
    const Exposure b = runIsr(raw, det, truth.calibs, config);
    EXPECT_TRUE(a.maskedImage().identical(b.maskedImage()));
    EXPECT_TRUE(a.metadata() == b.metadata());
    // Without per-amplifier calibrations (and without linearity) the Detector's gains are used.
    IsrCalibrations c = truth.calibs;
    c.amplifiers.clear();
    IsrConfig noLin = config;
    noLin.doLinearity = false;
    const Exposure d = runIsr(raw, det, c, noLin);
    EXPECT_DOUBLE_EQ(d.metadata().getDouble("ISR_GAIN_C00"), det.amplifiers()[0].gain);
    const auto eff = effectiveAmplifierCalibs(det, c);
    EXPECT_EQ(eff.size(), det.amplifiers().size());
    EXPECT_DOUBLE_EQ(eff[0].saturationAdu, 65535.0);
}
