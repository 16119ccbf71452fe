// Background: exactness on planes, recovery of a smooth background under sources (many seeds), masks,
// empty bins and the table round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/characterize/Background.h"
#include "stages/characterize/SourceDetection.h"

using namespace drp;

namespace {

double truthBackground(double x, double y) {
    // Gradient plus a low-order polynomial: ~130 e- of variation over 1000 x 900 pixels.
    const double u = (x - 500.0) / 500.0, v = (y - 450.0) / 450.0;
    return 1000.0 + 40.0 * u - 25.0 * v + 30.0 * u * u - 15.0 * u * v + 20.0 * v * v + 8.0 * u * u * v;
}

MaskedImageF makeImage(std::uint64_t seed, bool withSources, int w = 1000, int h = 900) {
    MaskedImageF mi(w, h);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::normal_distribution<double> g(0.0, 1.0);
    if (withSources) {
        const MoffatPsf psf(4.0, 3.5);
        for (int k = 0; k < 400; ++k) {
            const double flux = 300.0 * std::exp(std::log(3000.0) * u(rng));  // 300 .. 9e5 e-
            addPointSource(mi.image(), {u(rng) * w, u(rng) * h}, flux, psf);
        }
    }
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            const double mean = truthBackground(x, y) + mi.image()(x, y);
            mi.variance()(x, y) = float(mean);
            mi.image()(x, y) = float(mean + std::sqrt(mean) * g(rng));
        }
    return mi;
}

}  // namespace

TEST(Background, ReproducesAPlaneExactly) {
    for (auto interp : {BackgroundConfig::Interpolation::NaturalSpline, BackgroundConfig::Interpolation::Linear}) {
        MaskedImageF mi(700, 500);
        mi.setXY0({100, -40});
        for (int y = 0; y < 500; ++y)
            for (int x = 0; x < 700; ++x) mi.image()(x, y) = float(50.0 + 0.03 * (x + 100) - 0.02 * (y - 40));
        BackgroundConfig cfg;
        cfg.interpolation = interp;
        cfg.binSize = 64;
        const Background bg = estimateBackground(mi, cfg);
        const ImageF model = bg.image(mi.bbox());
        double worst = 0;
        for (int y = 0; y < 500; ++y)
            for (int x = 0; x < 700; ++x) worst = std::max(worst, std::fabs(double(model(x, y)) - mi.image()(x, y)));
        EXPECT_LT(worst, 2e-3);
        EXPECT_NEAR(bg.evaluate({300, 100}), 50.0 + 0.03 * 300 - 0.02 * 100, 2e-3);
    }
}

TEST(Background, RecoversASmoothBackgroundUnderSources) {
    // First pass unmasked, subtract, detect, second pass with DETECTED masked (the characterisation flow).
    for (std::uint64_t seed : {1u, 2u, 3u, 4u}) {
        MaskedImageF mi = makeImage(seed, true);
        const MaskedImageF original = mi.clone();
        const BackgroundConfig cfg;
        const Background first = estimateBackground(mi, cfg);
        subtractBackground(mi, first);
        detectSources(mi, 1.7, SourceDetectionConfig{});
        MaskedImageF second(original.image().clone(), mi.mask(), original.variance());
        const Background bg = estimateBackground(second, cfg);
        const ImageF model = bg.image();
        const ImageF firstModel = first.image();
        // Per bin: |model - truth| at the bin centres, in units of the pixel noise sigma there.
        double worstBin = 0, worstBinFirst = 0, meanBias = 0;
        for (int j = 0; j < bg.ny(); ++j)
            for (int i = 0; i < bg.nx(); ++i) {
                const double xc = bg.xCentres()[std::size_t(i)], yc = bg.yCentres()[std::size_t(j)];
                const double t = truthBackground(xc, yc), sigma = std::sqrt(t);
                const double m = model(int(std::lround(xc)), int(std::lround(yc)));
                const double m1 = firstModel(int(std::lround(xc)), int(std::lround(yc)));
                worstBin = std::max(worstBin, std::fabs(m - t) / sigma);
                worstBinFirst = std::max(worstBinFirst, std::fabs(m1 - t) / sigma);
                meanBias += (m - t) / sigma / (bg.nx() * bg.ny());
            }
        // Every pixel (edges included: linear extrapolation beyond the outer bin centres).
        double worstPixel = 0, sumSq = 0;
        for (int y = 0; y < mi.height(); ++y)
            for (int x = 0; x < mi.width(); ++x) {
                const double t = truthBackground(x, y), d = (model(x, y) - t) / std::sqrt(t);
                worstPixel = std::max(worstPixel, std::fabs(d));
                sumSq += d * d;
            }
        const double rms = std::sqrt(sumSq / (double(mi.width()) * mi.height()));
        std::cout << "seed " << seed << ": worst bin " << worstBin << " sigma (unmasked first pass " << worstBinFirst
                  << "), mean bias " << meanBias << ", worst pixel " << worstPixel << ", rms " << rms << "\n";
        EXPECT_LT(worstBin, 0.1) << "seed " << seed;
        EXPECT_GT(worstBinFirst, worstBin) << "masking the detections must matter";
        EXPECT_LT(std::fabs(meanBias), 0.02) << "seed " << seed;
        EXPECT_LT(rms, 0.05) << "seed " << seed;
        EXPECT_LT(worstPixel, 0.2) << "seed " << seed;
    }
}

TEST(Background, ReEstimateAddedToTheFirstPassRemovesTheSourcesLight) {
    // The single-visit flow: a first pass over everything, a detection that re-estimates the background of the
    // subtracted image with its footprints masked, and the two models added (Background::operator+=). The first
    // pass sits above the truth (the sources' light beyond its clipping); the sum must not, and must be the model
    // the image was actually corrected by.
    for (std::uint64_t seed : {11u, 12u, 13u, 14u}) {
        MaskedImageF mi = makeImage(seed, true);
        const ImageF original = mi.image().clone();
        const BackgroundConfig cfg;
        Background total = estimateBackground(mi, cfg);
        const Background first = total;
        subtractBackground(mi, first);
        SourceDetectionConfig det;
        det.reEstimateBackground = true;
        const DetectionResult r = detectSources(mi, 1.7, det);
        ASSERT_TRUE(r.background.has_value());
        total += *r.background;
        EXPECT_EQ(total.counts(), r.background->counts());
        double biasFirst = 0, biasTotal = 0, worstSum = 0, worstImage = 0;
        const ImageF mFirst = first.image(), mTotal = total.image(), mSecond = r.background->image();
        for (int y = 0; y < mi.height(); ++y)
            for (int x = 0; x < mi.width(); ++x) {
                const double t = truthBackground(x, y), n = double(mi.width()) * mi.height() * std::sqrt(t);
                biasFirst += (mFirst(x, y) - t) / n;
                biasTotal += (mTotal(x, y) - t) / n;
                worstSum = std::max(worstSum, std::fabs(double(mTotal(x, y)) - mFirst(x, y) - mSecond(x, y)));
                worstImage = std::max(worstImage, std::fabs(double(original(x, y)) - mTotal(x, y) - mi.image()(x, y)) /
                                                      (1.0 + std::fabs(double(original(x, y)))));
            }
        std::cout << "seed " << seed << ": mean bias (sigma) first pass " << biasFirst << ", with the re-estimate " << biasTotal << "\n";
        EXPECT_GT(biasFirst, 0.01) << "seed " << seed;  // the first pass is biased high by the sources
        EXPECT_LT(std::fabs(biasTotal), 0.3 * biasFirst) << "seed " << seed;
        EXPECT_LT(worstSum, 1e-3);    // the sum model is the sum of the models (float rounding)
        EXPECT_LT(worstImage, 1e-6);  // and what was taken off the image (float rounding of the pixel)
    }
    // Different bins cannot be added.
    MaskedImageF a = makeImage(1, false);
    BackgroundConfig small;
    small.binSize = 64;
    Background b1 = estimateBackground(a, BackgroundConfig{});
    EXPECT_THROW(b1 += estimateBackground(a, small), InvalidInputError);
}

TEST(Background, SampledBinsAgreeWithAllPixelsWithinTheirNoise) {
    // sampleStep 2: a quarter of the pixels, the same bins; each bin value within the noise of the sample
    // (sigma sqrt(1000) / sqrt(n)) of the all-pixel value, and the same bins empty or not.
    for (std::uint64_t seed : {21u, 22u, 23u}) {
        MaskedImageF mi = makeImage(seed, false);
        const MaskPixel bad = mi.mask().planeBitMask("BAD");
        for (int y = 100; y < 400; ++y)  // a masked region: the samples must leave it out too
            for (int x = 0; x < 250; ++x) mi.mask()(x, y) |= bad;
        for (int y = 500; y < 502; ++y)  // (masked) outliers on a sampled row
            for (int x = 0; x < 1000; ++x) {
                mi.image()(x, y) = 1e6f;
                mi.mask()(x, y) |= bad;
            }
        BackgroundConfig all, sampled;
        sampled.sampleStep = 2;
        const Background a = estimateBackground(mi, all), s = estimateBackground(mi, sampled);
        ASSERT_EQ(a.xCentres(), s.xCentres());
        ASSERT_EQ(a.yCentres(), s.yCentres());
        double worst = 0;
        for (std::size_t k = 0; k < a.values().size(); ++k) {
            ASSERT_EQ(a.counts()[k] > 0, s.counts()[k] > 0);
            if (a.counts()[k] == 0) continue;
            EXPECT_NEAR(double(s.counts()[k]), 0.25 * double(a.counts()[k]), 0.02 * double(a.counts()[k]) + 130);
            worst = std::max(worst, std::fabs(s.values()[k] - a.values()[k]) / (std::sqrt(1100.0 / double(s.counts()[k]))));
        }
        std::cout << "seed " << seed << ": worst sampled bin " << worst << " sigma from the all-pixel value\n";
        EXPECT_LT(worst, 4.0);
    }
    BackgroundConfig badStep;
    badStep.sampleStep = 0;
    EXPECT_THROW(badStep.validate(), ConfigError);
}

TEST(Background, NoiseOnlyBinsAreUnbiasedForBothStatistics) {
    for (auto stat : {BackgroundConfig::Statistic::ClippedMean, BackgroundConfig::Statistic::Median}) {
        double bias = 0;
        int n = 0;
        for (std::uint64_t seed : {11u, 12u, 13u}) {
            MaskedImageF mi = makeImage(seed, false);
            BackgroundConfig cfg;
            cfg.statistic = stat;
            const Background bg = estimateBackground(mi, cfg);
            for (int j = 0; j < bg.ny(); ++j)
                for (int i = 0; i < bg.nx(); ++i) {
                    const double xc = bg.xCentres()[std::size_t(i)], yc = bg.yCentres()[std::size_t(j)];
                    // The bin value is the bin's mean background: compare with the mean of the truth over the bin.
                    const double t = truthBackground(xc, yc);
                    bias += (bg.value(i, j) - t) / std::sqrt(t);
                    ++n;
                }
        }
        EXPECT_LT(std::fabs(bias / n), 0.01);
    }
}

TEST(Background, MaskedPixelsAndEmptyBinsAreIgnored) {
    MaskedImageF mi = makeImage(21, false, 512, 512);
    const Background clean = estimateBackground(mi, BackgroundConfig{});
    // Garbage under BAD, a whole bin BAD, NaNs.
    const MaskPixel bad = mi.mask().planeBitMask("BAD");
    for (int y = 0; y < 512; ++y)
        for (int x = 0; x < 512; ++x)
            if ((x > 300 && x < 340) || (x < 128 && y < 128)) {
                mi.image()(x, y) = 1e6f;
                mi.mask()(x, y) |= bad;
            }
    mi.image()(400, 400) = std::numeric_limits<float>::quiet_NaN();
    const Background bg = estimateBackground(mi, BackgroundConfig{});
    EXPECT_EQ(bg.counts()[0], 0);  // the empty bin, filled from its neighbours
    for (int j = 0; j < bg.ny(); ++j)
        for (int i = 0; i < bg.nx(); ++i) {
            if (i == 0 && j == 0) continue;
            EXPECT_NEAR(bg.value(i, j), clean.value(i, j), 1.0);  // 1 e- = 0.03 sigma
        }
    EXPECT_NEAR(bg.value(0, 0), truthBackground(64, 64), 10.0);
    MaskedImageF allBad(64, 64);
    allBad.mask().setBits(bad);
    EXPECT_THROW(estimateBackground(allBad, BackgroundConfig{}), InvalidInputError);
}

TEST(Background, TableRoundTripIsExact) {
    MaskedImageF mi = makeImage(31, true, 777, 555);
    mi.setXY0({10, 20});
    for (auto interp : {BackgroundConfig::Interpolation::NaturalSpline, BackgroundConfig::Interpolation::Linear}) {
        BackgroundConfig cfg;
        cfg.interpolation = interp;
        const Background bg = estimateBackground(mi, cfg);
        const Table t = bg.toTable();
        EXPECT_EQ(t.size(), std::size_t(bg.nx() * bg.ny()));
        const Background back = Background::fromTable(t);
        EXPECT_TRUE(back == bg);
        EXPECT_TRUE(back.image().identical(bg.image()));
    }
    Table broken = estimateBackground(mi, BackgroundConfig{}).toTable();
    broken.metadata().set("BKG_NX", std::int64_t(99));
    EXPECT_THROW(Background::fromTable(broken), InvalidInputError);
}

TEST(Background, ConfigValidation) {
    BackgroundConfig c;
    EXPECT_NO_THROW(c.validate());
    c.binSize = 2;
    EXPECT_THROW(c.validate(), ConfigError);
    c = BackgroundConfig{};
    c.clipSigma = 0;
    EXPECT_THROW(c.validate(), ConfigError);
    EXPECT_TRUE(BackgroundConfig{} == BackgroundConfig{});
}
