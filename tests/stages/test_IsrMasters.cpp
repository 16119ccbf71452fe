// Master calibrations (bias, dark, flat) and defects built from simulated raw calibration exposures,
// checked against the simulator's instrument truth over several seeds.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <set>

#include "core/Error.h"
#include "stages/isr/Defects.h"
#include "stages/isr/MasterCalibs.h"
#include "tests/stages/test_IsrSupport.h"

using namespace drp;
using namespace drp::isrtest;

namespace {

constexpr int kInputs = 5;

InstrumentConfig instrumentConfig(std::uint64_t seed) {
    InstrumentConfig c;
    c.seed = seed;
    return c;
}

IsrCalibrations partialCalibs(const DetectorInstrument& inst) {
    IsrCalibrations p;
    p.crosstalk = inst.crosstalk();
    p.amplifiers = truthAmplifiers(inst);
    return p;
}

/// Pixels of the detector frame in any of the boxes.
std::set<std::pair<int, int>> pixelsOf(const std::vector<Box2I>& boxes) {
    std::set<std::pair<int, int>> out;
    for (const Box2I& b : boxes)
        for (int y = b.minY(); y <= b.maxY(); ++y)
            for (int x = b.minX(); x <= b.maxX(); ++x) out.insert({x, y});
    return out;
}

}  // namespace

TEST(IsrMasters, MasterBiasEqualsFixedBiasPatternWithinNoise) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const IsrConfig config;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        const DetectorInstrument inst(det, instrumentConfig(seed), focalRadius(det));
        const auto biases = simulateCalibs(inst, ExposureKind::Bias, kInputs, 100 * seed);
        const Exposure master = makeMasterBias(biases, det, partialCalibs(inst), config, MasterConfig{});
        const ImageF truth = truthBias(inst, config);
        const ChiStats s = chiStats(master.maskedImage(), truth, master.mask().planeBitMask("NO_DATA"));
        std::printf("bias seed %llu: n=%lld mean chi=%.4f chi2=%.4f noise ratio=%.4f clipfrac=%.4g\n",
                    (unsigned long long)seed, (long long)s.n, s.mean, s.chi2, s.noiseRatio,
                    master.metadata().getDouble("CLIPFRAC"));
        EXPECT_EQ(s.n, det.bbox().area());
        EXPECT_LT(std::fabs(s.mean), 0.03);
        EXPECT_NEAR(s.chi2, 1.0, 0.05);
        EXPECT_EQ(master.metadata().getInt("NINPUTS"), kInputs);
        EXPECT_EQ(master.metadata().getString("CALIBTYP"), "bias");
        EXPECT_EQ(master.detector(), det.id());
        // The fixed column pattern is really there (rms 0.5 ADU) and recovered: correlation with truth.
        double sxy = 0, sxx = 0;
        for (int y = 0; y < truth.height(); ++y)
            for (int x = 0; x < truth.width(); ++x) {
                sxy += double(master.image()(x, y)) * truth(x, y);
                sxx += double(truth(x, y)) * truth(x, y);
            }
        EXPECT_NEAR(sxy / sxx, 1.0, 0.05);
    }
}

TEST(IsrMasters, MasterBiasWithDetectorGainsMatchesPartialOverload) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const DetectorInstrument inst(det, instrumentConfig(7), focalRadius(det));
    const auto biases = simulateCalibs(inst, ExposureKind::Bias, 3, 7);
    const Exposure a = makeMasterBias(biases, det, IsrConfig{}, MasterConfig{});
    IsrCalibrations p;
    for (const Amplifier& amp : det.amplifiers()) p.amplifiers.push_back({amp.gain, amp.readNoise, 0.0, 65535.0});
    const Exposure b = makeMasterBias(biases, det, p, IsrConfig{}, MasterConfig{});
    EXPECT_TRUE(a.maskedImage().identical(b.maskedImage()));
}

TEST(IsrMasters, MasterDarkEqualsDarkRateAndIsRobustToCosmicRays) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const IsrConfig config;
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        InstrumentConfig ic = instrumentConfig(seed);
        ic.cosmicRayRatePerCm2PerS = 1.0;  // 40x the default: ~6 tracks per dark on this small detector
        const DetectorInstrument inst(det, ic, focalRadius(det));
        const Exposure bias =
            makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, kInputs, 1000 * seed), det, partialCalibs(inst), config,
                           MasterConfig{});
        const auto darks = simulateCalibs(inst, ExposureKind::Dark, kInputs, 2000 * seed);
        const Exposure dark = makeMasterDark(darks, det, bias, partialCalibs(inst), config, MasterConfig{});
        // Its error: its own noise (variance plane) + the master bias noise it inherits (x DKBIASF^2).
        const double a = dark.metadata().getDouble("DKBIASF");
        EXPECT_NEAR(a, 1.0 / ic.darkExposureTimeS, 1e-12);
        ImageF total = dark.variance().clone();
        for (int y = 0; y < total.height(); ++y)
            for (int x = 0; x < total.width(); ++x) total(x, y) += float(a * a) * bias.variance()(x, y);
        const ChiStats s = chiStats(MaskedImageF(dark.image(), dark.mask(), total), inst.darkRate(),
                                    dark.mask().planeBitMask("NO_DATA"), 6.0);
        std::printf("dark seed %llu: n=%lld mean chi=%.4f chi2=%.4f outliers(>6 sigma)=%lld clipfrac=%.4g\n",
                    (unsigned long long)seed, (long long)s.n, s.mean, s.chi2, (long long)s.outliers,
                    dark.metadata().getDouble("CLIPFRAC"));
        EXPECT_LT(std::fabs(s.mean), 0.03);
        EXPECT_NEAR(s.chi2, 1.0, 0.05);
        EXPECT_LE(s.outliers, 3);  // cosmic rays rejected (a 6-sigma Gaussian tail is ~0.4 pixel here)
        EXPECT_GT(dark.metadata().getDouble("CLIPFRAC"), 0.0);

        // Hot pixels: every one well above the detection threshold is found; few false ones.
        const std::vector<Box2I> found = findDefects(Exposure(), dark, DefectConfig{});
        const auto foundPixels = pixelsOf(found);
        StatisticsControl sc;
        sc.properties = kStatMedian | kStatMadSigma;
        const Statistics st = makeStatistics(dark.image(), sc);
        const double threshold = st.median + 5.0 * st.madSigma;
        int strong = 0, strongFound = 0;
        std::set<std::pair<int, int>> truthHot;
        for (const Point2I& p : inst.hotPixels()) {
            truthHot.insert({p.x, p.y});
            if (inst.darkRate()(p.x, p.y) > threshold + 5.0 * std::sqrt(dark.variance()(p.x, p.y))) {
                ++strong;
                if (foundPixels.count({p.x, p.y})) ++strongFound;
            }
        }
        int falsePixels = 0;
        for (const auto& p : foundPixels)
            if (!truthHot.count(p)) ++falsePixels;
        std::printf("  hot pixels: %zu true, %d strong, %d strong found, %d false\n", inst.hotPixels().size(), strong,
                    strongFound, falsePixels);
        EXPECT_GT(strong, 5);
        EXPECT_EQ(strongFound, strong);
        EXPECT_LE(falsePixels, 3);
    }
}

TEST(IsrMasters, MasterFlatEqualsTrueFlatWithinNoise) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const IsrConfig config;
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        const DetectorInstrument inst(det, instrumentConfig(seed), focalRadius(det));
        const IsrCalibrations partial = partialCalibs(inst);
        const Exposure bias =
            makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, kInputs, 10 * seed), det, partial, config, MasterConfig{});
        const Exposure dark = makeMasterDark(simulateCalibs(inst, ExposureKind::Dark, kInputs, 20 * seed), det, bias,
                                             partial, config, MasterConfig{});
        for (const std::string band : {"g", "r"}) {
            const auto flats = simulateCalibs(inst, ExposureKind::Flat, kInputs, 30 * seed, band);
            const Exposure flat = makeMasterFlat(flats, det, bias, dark, partial, config, MasterConfig{});
            EXPECT_EQ(flat.metadata().getString("BAND"), band);
            EXPECT_EQ(flat.visitInfo().band, band);
            // Median 1 over the usable pixels.
            StatisticsControl sc;
            sc.properties = kStatMedian;
            EXPECT_NEAR(makeStatistics(flat.image(), sc).median, 1.0, 1e-6);
            // Against the true flat (same normalisation), away from the bad columns (response ~0 there).
            ImageF truth = truthFlat(inst, band);
            Mask skip(det.bbox());
            const MaskPixel bad = skip.planeBitMask("BAD");
            for (const Box2I& d : inst.defects()) skip.subImage(d).setBits(bad);
            MaskedImageF mi(flat.image(), skip, flat.variance());
            const ChiStats s = chiStats(mi, truth, bad);
            std::printf("flat seed %llu band %s: n=%lld mean chi=%.4f chi2=%.4f\n", (unsigned long long)seed,
                        band.c_str(), (long long)s.n, s.mean, s.chi2);
            EXPECT_LT(std::fabs(s.mean), 0.03);
            EXPECT_NEAR(s.chi2, 1.0, 0.05);
            // Expected per-pixel error ~ 1/sqrt(5 x 20000) = 0.3%.
            const double sigma = std::sqrt(flat.variance()(100, 100));
            EXPECT_NEAR(sigma, 1.0 / std::sqrt(kInputs * 20000.0), 0.0008);
        }
    }
}

TEST(IsrMasters, DefectsRecoveredFromMasters) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const IsrConfig config;
    int totalColumns = 0, totalFalse = 0;
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        InstrumentConfig ic = instrumentConfig(seed);
        ic.badColumnsPerDetector = 4;
        const DetectorInstrument inst(det, ic, focalRadius(det));
        const IsrCalibrations partial = partialCalibs(inst);
        const Exposure bias =
            makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, kInputs, 1 + seed), det, partial, config, MasterConfig{});
        const Exposure dark = makeMasterDark(simulateCalibs(inst, ExposureKind::Dark, kInputs, 50 + seed), det, bias,
                                             partial, config, MasterConfig{});
        const Exposure flat = makeMasterFlat(simulateCalibs(inst, ExposureKind::Flat, kInputs, 90 + seed), det, bias,
                                             dark, partial, config, MasterConfig{});
        const std::vector<Box2I> found = findDefects(flat, dark, DefectConfig{});
        const auto foundPixels = pixelsOf(found);
        // Every bad-column pixel is found, and each bad column is one box.
        for (const Box2I& d : inst.defects()) {
            ++totalColumns;
            int covered = 0;
            for (int y = d.minY(); y <= d.maxY(); ++y) covered += int(foundPixels.count({d.minX(), y}));
            EXPECT_EQ(covered, d.height()) << "bad column " << d;
            bool oneBox = false;
            for (const Box2I& b : found) oneBox = oneBox || b.contains(d);
            EXPECT_TRUE(oneBox) << "bad column " << d << " split into several boxes";
        }
        // Found pixels are bad columns or hot pixels (few false ones).
        std::set<std::pair<int, int>> truth = pixelsOf(inst.defects());
        for (const Point2I& p : inst.hotPixels()) truth.insert({p.x, p.y});
        int falsePixels = 0;
        for (const auto& p : foundPixels)
            if (!truth.count(p)) ++falsePixels;
        totalFalse += falsePixels;
        std::printf("defects seed %llu: %zu true columns, %zu boxes found, %d false pixels\n", (unsigned long long)seed,
                    inst.defects().size(), found.size(), falsePixels);
        EXPECT_LE(falsePixels, 5);
    }
    EXPECT_EQ(totalColumns, 20);
    EXPECT_LE(totalFalse, 10);
}

TEST(IsrMasters, CombineClipsOutliersAndPropagatesVariance) {
    std::mt19937_64 rng(42);
    std::normal_distribution<double> normal;
    const int n = 5;
    std::vector<Exposure> inputs;
    for (int k = 0; k < n; ++k) {
        Exposure e(64, 64);
        for (int y = 0; y < 64; ++y)
            for (int x = 0; x < 64; ++x) {
                e.maskedImage().image()(x, y) = float(10.0 + 2.0 * normal(rng));
                e.maskedImage().variance()(x, y) = 4.0f + std::max(e.image()(x, y), 0.0f);  // readout 4 + signal
            }
        inputs.push_back(e);
    }
    // A cosmic ray in input 2, a masked pixel in input 3, a pixel masked everywhere.
    inputs[2].maskedImage().image()(10, 10) = 5000.0f;
    inputs[2].maskedImage().variance()(10, 10) = 5004.0f;
    const MaskPixel bad = inputs[3].mask().planeBitMask("BAD");
    inputs[3].mask()(20, 20) = bad;
    inputs[3].maskedImage().image()(20, 20) = 1e6f;
    for (auto& e : inputs) e.mask()(30, 30) = bad;
    double clipFrac = 0;
    const Exposure m = isr::combineExposures(inputs, std::vector<double>(n, 1.0), bad, MasterConfig{}, &clipFrac);
    EXPECT_LT(std::fabs(m.image()(10, 10) - 10.0), 4.0);
    EXPECT_LT(std::fabs(m.image()(20, 20) - 10.0), 4.0);
    EXPECT_TRUE(std::isnan(m.image()(30, 30)));
    EXPECT_TRUE(m.mask()(30, 30) & m.mask().planeBitMask("NO_DATA"));
    EXPECT_GT(clipFrac, 0.0);
    EXPECT_LT(clipFrac, 0.01);
    // Variance of the mean of 5: (4 + 10) / 5.
    EXPECT_NEAR(m.variance()(40, 40), 14.0 / 5.0, 0.5);
    // Scales divide values and variances.
    const Exposure half = isr::combineExposures(inputs, std::vector<double>(n, 2.0), bad, MasterConfig{});
    EXPECT_NEAR(half.image()(40, 40), 0.5 * m.image()(40, 40), 1e-4);
    EXPECT_THROW(isr::combineExposures({}, {}, bad, MasterConfig{}), InvalidInputError);
}

TEST(IsrMasters, MergeColumnRunsAndLocalMedian) {
    const Box2I box({10, 20}, 4, 10);
    std::vector<char> flags(40, 0);
    auto set = [&](int x, int y) { flags[std::size_t(y * 4 + x)] = 1; };
    for (int y = 0; y < 4; ++y) set(1, y);
    set(1, 6);  // gap of 2 -> merged with columnGap 2, not with 1
    set(3, 9);
    auto boxes = isr::mergeColumnRuns(flags, box, 2);
    ASSERT_EQ(boxes.size(), 2u);
    EXPECT_EQ(boxes[0], Box2I({11, 20}, 1, 7));
    EXPECT_EQ(boxes[1], Box2I({13, 29}, 1, 1));
    boxes = isr::mergeColumnRuns(flags, box, 1);
    EXPECT_EQ(boxes.size(), 3u);

    ImageF img(100, 80, 2.0f);
    Mask mask(100, 80);
    for (int y = 0; y < 80; ++y) img(37, y) = 0.0f;  // a dead column does not move the local level
    const ImageF local = isr::localMedian(img, mask, 0, 16);
    for (int y = 0; y < 80; y += 7)
        for (int x = 0; x < 100; x += 9) EXPECT_FLOAT_EQ(local(x, y), 2.0f);
}

TEST(IsrMasters, BadInputs) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    const DetectorInstrument inst(det, instrumentConfig(3), focalRadius(det));
    MasterConfig two;
    two.minInputs = 2;
    EXPECT_THROW(makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, 1, 1), det, IsrConfig{}, two),
                 InvalidInputError);
    EXPECT_THROW(makeMasterBias({}, det, IsrConfig{}, MasterConfig{}), InvalidInputError);
    const Exposure bias = makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, 2, 1), det, IsrConfig{}, MasterConfig{});
    // A dark without a dark time.
    auto darks = simulateCalibs(inst, ExposureKind::Dark, 2, 5);
    darks[1].visitInfo.darkTimeS = std::nan("");
    EXPECT_THROW(makeMasterDark(darks, det, bias, partialCalibs(inst), IsrConfig{}, MasterConfig{}), InvalidInputError);
    // Flats of two bands.
    auto flats = simulateCalibs(inst, ExposureKind::Flat, 1, 9, "g");
    flats.push_back(simulateCalibs(inst, ExposureKind::Flat, 1, 10, "r").front());
    const Exposure dark = makeMasterDark(simulateCalibs(inst, ExposureKind::Dark, 2, 5), det, bias, partialCalibs(inst),
                                         IsrConfig{}, MasterConfig{});
    EXPECT_THROW(makeMasterFlat(flats, det, bias, dark, partialCalibs(inst), IsrConfig{}, MasterConfig{}),
                 InvalidInputError);
    // Defects need at least one master; mismatched boxes are refused.
    EXPECT_THROW(findDefects(Exposure(), Exposure(), DefectConfig{}), InvalidInputError);
    EXPECT_THROW(findDefects(Exposure(10, 10), dark, DefectConfig{}), InvalidInputError);
    DefectConfig dc;
    dc.flatLowRatio = 1.5;
    EXPECT_THROW(dc.validate(), ConfigError);
    MasterConfig mc;
    mc.clipSigma = 0;
    EXPECT_THROW(mc.validate(), ConfigError);
    EXPECT_TRUE(MasterConfig{} == MasterConfig{});
    EXPECT_FALSE(mc == MasterConfig{});
}
