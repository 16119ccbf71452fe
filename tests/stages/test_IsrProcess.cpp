// Full ISR of simulated science exposures against the simulator's truth (the incident electrons):
// chi-square with truth calibrations and with masters built from simulated calibration exposures,
// crosstalk ghosts, non-linearity, saturation and bleed trails, defects.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <set>

#include "core/Error.h"
#include "drivers/sim/SimConfig.h"
#include "drivers/sim/Simulator.h"
#include "stages/isr/Defects.h"
#include "stages/isr/MasterCalibs.h"
#include "tests/stages/test_IsrSupport.h"

using namespace drp;
using namespace drp::isrtest;

namespace {

MaskPixel excluded(const Mask& m) { return m.planeBitMask(std::vector<std::string>{"BAD", "SAT", "INTRP", "NO_DATA"}); }

/// Incident electrons: uniform sky plus round Gaussian stars (x, y, total e-, sigma).
struct Star {
    double x, y, electrons, sigma;
};
ImageF starField(const Detector& det, double sky, const std::vector<Star>& stars) {
    ImageF img(det.bbox(), float(sky));
    for (const Star& s : stars) {
        const int r = int(std::ceil(6 * s.sigma));
        for (int y = std::max(0, int(s.y) - r); y <= std::min(img.height() - 1, int(s.y) + r); ++y)
            for (int x = std::max(0, int(s.x) - r); x <= std::min(img.width() - 1, int(s.x) + r); ++x) {
                const double d2 = (x - s.x) * (x - s.x) + (y - s.y) * (y - s.y);
                img(x, y) += float(s.electrons * std::exp(-0.5 * d2 / (s.sigma * s.sigma)) /
                                   (2 * std::numbers::pi * s.sigma * s.sigma));
            }
    }
    return img;
}

ImageF scaled(const ImageF& in, double f) {
    ImageF out = in.clone();
    out *= float(f);
    return out;
}

}  // namespace

TEST(IsrProcess, ScienceChiSquareWithTruthCalibrations) {
    for (std::uint64_t seed = 1; seed <= 2; ++seed) {
        const SimContext ctx(loadSimConfig("tiny", {}, {"seed=" + std::to_string(seed)}));
        for (std::size_t v = 0; v < ctx.visits().size(); ++v) {
            const int detId = int((v + seed) % 2);
            const SimulatedExposure sim = simulateScienceExposure(ctx, v, detId, true);
            const DetectorInstrument& inst = ctx.instrument(detId);
            const IsrConfig config;
            const TruthCalibs truth(inst, sim.raw.visitInfo.band, config);
            const Exposure out = runIsr(sim.raw, inst.detector(), truth.calibs, config);
            const ImageF expected = scaled(sim.incident, truth.flatMedian);
            const ChiStats s = chiStats(out.maskedImage(), expected, excluded(out.mask()), 6.0);
            const double biasSigma = s.meanResidual / std::sqrt(s.meanVariance);
            const double expectedChi = -0.5 / std::sqrt(s.meanVariance);
            std::printf("seed %llu visit %zu det %d band %s: sky~%.0f e-, n=%lld mean residual=%.4f sigma, mean chi=%.4f "
                        "(expected %.4f) chi2=%.4f noise ratio=%.4f outliers=%lld\n",
                        (unsigned long long)seed, v, detId, sim.raw.visitInfo.band.c_str(), double(sim.incident(5, 5)),
                        (long long)s.n, biasSigma, s.mean, expectedChi, s.chi2, s.noiseRatio, (long long)s.outliers);
            EXPECT_GT(s.n, 0.97 * out.bbox().area());
            EXPECT_LT(std::fabs(biasSigma), 0.015);
            EXPECT_NEAR(s.mean, expectedChi, 0.01);
            EXPECT_NEAR(s.chi2, 1.0, 0.03);
            EXPECT_NEAR(s.noiseRatio, 1.0, 0.05);  // the variance plane predicts the measured noise
            EXPECT_LT(double(s.outliers), 2e-3 * double(s.n));
            // Defects (bad columns and hot pixels) are BAD and interpolated.
            const MaskPixel bad = out.mask().planeBitMask("BAD"), intrp = out.mask().planeBitMask("INTRP");
            double sumChi2 = 0;
            std::int64_t nDef = 0;
            for (const Box2I& d : inst.defects())
                for (int y = d.minY(); y <= d.maxY(); ++y) {
                    const MaskPixel m = out.mask()(d.minX(), y);
                    EXPECT_TRUE((m & bad) && (m & intrp));
                    const double r = out.image()(d.minX(), y) - expected(d.minX(), y);
                    sumChi2 += r * r / out.variance()(d.minX(), y);
                    ++nDef;
                }
            // Interpolated along rows over smooth sky: within the noise of the neighbours (plus structure).
            EXPECT_LT(sumChi2 / double(nDef), 3.0);
            // Provenance.
            EXPECT_EQ(out.visitInfo(), sim.raw.visitInfo);
            EXPECT_EQ(out.wcs(), sim.raw.headerWcs);
            EXPECT_EQ(out.detector(), detId);
            EXPECT_EQ(out.metadata().getString("ISR_STEPS"),
                      "overscan,saturation,bias,crosstalk,linearity,dark,flat,defects,interpolate");
            EXPECT_TRUE(out.metadata().has("ISR_OSCAN_C00"));
        }
    }
}

TEST(IsrProcess, ScienceChiSquareWithSimulatedMasters) {
    const SimContext ctx(loadSimConfig("tiny", {}, {"seed=3"}));
    const IsrConfig config;
    for (int detId = 0; detId < 2; ++detId) {
        const DetectorInstrument& inst = ctx.instrument(detId);
        const Detector& det = inst.detector();
        IsrCalibrations calibs;
        calibs.crosstalk = inst.crosstalk();
        calibs.amplifiers = truthAmplifiers(inst);
        const Exposure bias = makeMasterBias(simulateCalibs(inst, ExposureKind::Bias, 5, 11), det, calibs, config, {});
        const Exposure dark =
            makeMasterDark(simulateCalibs(inst, ExposureKind::Dark, 5, 22), det, bias, calibs, config, {});
        calibs.bias = &bias;
        calibs.dark = &dark;
        for (std::size_t v = 0; v < ctx.visits().size(); ++v) {
            const std::string band = ctx.visits()[v].band;
            const Exposure flat =
                makeMasterFlat(simulateCalibs(inst, ExposureKind::Flat, 5, 33, band), det, bias, dark, calibs, config, {});
            calibs.flat = &flat;
            calibs.defects = findDefects(flat, dark, DefectConfig{});
            const SimulatedExposure sim = simulateScienceExposure(ctx, v, detId, true);
            const Exposure out = runIsr(sim.raw, det, calibs, config);
            // The flat normalisation is a convention: output = incident x trueFlat / masterFlat.
            const ImageF trueFlat = inst.flat(band);
            std::vector<double> ratio;
            for (int y = 0; y < trueFlat.height(); y += 3)
                for (int x = 0; x < trueFlat.width(); x += 3)
                    if (flat.image()(x, y) > 0.5f) ratio.push_back(trueFlat(x, y) / flat.image()(x, y));
            const double norm = makeStatistics(std::span<const double>(ratio)).median;
            const ChiStats s = chiStats(out.maskedImage(), scaled(sim.incident, norm), excluded(out.mask()), 6.0);
            const double biasSigma = s.meanResidual / std::sqrt(s.meanVariance);
            std::printf("masters det %d visit %zu band %s: %zu defect boxes, n=%lld mean residual=%.4f sigma, mean "
                        "chi=%.4f chi2=%.4f noise ratio=%.4f outliers=%lld\n",
                        detId, v, band.c_str(), calibs.defects.size(), (long long)s.n, biasSigma, s.mean, s.chi2,
                        s.noiseRatio, (long long)s.outliers);
            EXPECT_GT(s.n, 0.97 * out.bbox().area());
            EXPECT_LT(std::fabs(biasSigma), 0.03);
            EXPECT_NEAR(s.mean, -0.5 / std::sqrt(s.meanVariance), 0.02);
            EXPECT_NEAR(s.chi2, 1.0, 0.04);
            EXPECT_NEAR(s.noiseRatio, 1.0, 0.05);
            EXPECT_LT(double(s.outliers), 2e-3 * double(s.n));
            // Every true bad column is masked.
            const MaskPixel bad = out.mask().planeBitMask("BAD");
            for (const Box2I& d : inst.defects()) {
                EXPECT_EQ(out.mask().subImage(d).countBits(bad), d.area());
            }
        }
    }
}

TEST(IsrProcess, CrosstalkGhostsRemoved) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        InstrumentConfig ic;
        ic.seed = seed;
        ic.crosstalkCoeff = 1e-3;
        ic.cosmicRayRatePerCm2PerS = 0;
        const DetectorInstrument inst(det, ic, focalRadius(det));
        // A bright saturated star and a bright extended (unsaturated) galaxy in amplifier C01 (x in [128, 256),
        // lower row, read from the lower left).
        const ImageF incident = starField(det, 200.0, {{192.3, 60.7, 3e7, 3.0}, {190.2, 140.4, 2e8, 18.0}});
        SimulationRecord rec;
        rec.keepElectrons = true;
        const RawExposure raw = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, 77 + seed, &rec);
        IsrConfig config;
        const TruthCalibs truth(inst, "r", config);
        const Exposure with = runIsr(raw, det, truth.calibs, config);
        config.doCrosstalk = false;
        const Exposure without = runIsr(raw, det, truth.calibs, config);
        const ImageF expected = scaled(incident, truth.flatMedian);
        const ImageF trueFlat = inst.flat("r");
        const MaskPixel masked = excluded(with.mask());
        // Victims: amplifiers C00 and C02, same raw position (both read from the lower left: x -+ 128).
        const int src = 1;
        const double gSrc = inst.gain(src), cSrc = inst.nonlinearity(src);
        for (int victim : {0, 2}) {
            const double c = inst.crosstalk()(victim, src);
            // The overscan level error is common to a row: count its covariance.
            const double osVar = inst.readNoise(victim) * inst.readNoise(victim) /
                                 (det.amplifiers()[std::size_t(victim)].rawSerialOverscanBBox.width() - config.overscanSkipLeading);
            double ghost = 0, resWith = 0, resWithout = 0, var = 0;
            int n = 0;
            for (int y = 0; y < 200; ++y) {
                int nRow = 0;
                for (int x = 128; x < 256; ++x) {
                    const double e = rec.electrons(x, y);
                    const int vx = x + (victim - src) * 128;
                    if (e < 2000 || (with.mask()(x, y) & masked) || (with.mask()(vx, y) & masked)) continue;
                    const double measured = e + cSrc * e * e;  // non-linear e-, as the source amplifier saw them
                    ghost += c * inst.gain(victim) / gSrc * measured / trueFlat(vx, y) * truth.flatMedian;
                    resWith += with.image()(vx, y) - expected(vx, y);
                    resWithout += without.image()(vx, y) - expected(vx, y);
                    var += with.variance()(vx, y);
                    ++n;
                    ++nRow;
                }
                var += double(nRow) * double(nRow - 1) * osVar;
            }
            const double sigma = std::sqrt(var);
            std::printf("seed %llu victim %d: %d pixels, ghost %.0f e-, residual without %.0f, with %.0f (+- %.0f)\n",
                        (unsigned long long)seed, victim, n, ghost, resWithout, resWith, sigma);
            ASSERT_GT(n, 1000);
            EXPECT_GT(ghost, 30 * sigma);  // a clear ghost
            EXPECT_NEAR(resWithout, ghost, 5 * sigma);
            EXPECT_LT(std::fabs(resWith), 5 * sigma);
            EXPECT_LT(std::fabs(resWith), 0.03 * ghost);
        }
    }
}

TEST(IsrProcess, NonlinearityCorrectedOnBrightFlat) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        InstrumentConfig ic;
        ic.seed = seed;
        const DetectorInstrument inst(det, ic, focalRadius(det));
        const double level = 60000.0;
        const ImageF incident(det.bbox(), float(level));
        const RawExposure raw = inst.simulate(incident, 5, 5, "r", ExposureKind::Flat, 500 + seed);
        IsrConfig config;
        const TruthCalibs truth(inst, "r", config);
        const Exposure lin = runIsr(raw, det, truth.calibs, config);
        config.doLinearity = false;
        const Exposure nonlin = runIsr(raw, det, truth.calibs, config);
        for (int i = 0; i < int(det.amplifiers().size()); ++i) {
            const Box2I b = det.amplifiers()[std::size_t(i)].bbox;
            StatisticsControl sc;
            sc.badMask = excluded(lin.mask());
            sc.properties = kStatMean;
            const double mLin = makeStatistics(lin.image().subImage(b), lin.mask().subImage(b), sc).mean;
            const double mNon = makeStatistics(nonlin.image().subImage(b), nonlin.mask().subImage(b), sc).mean;
            const double expected = level * truth.flatMedian;
            std::printf("seed %llu amp %d: corrected/true - 1 = %+.2e, uncorrected %+.2e (c x level = %+.2e)\n",
                        (unsigned long long)seed, i, mLin / expected - 1.0, mNon / expected - 1.0,
                        inst.nonlinearity(i) * level);
            // Without correction: measured/true - 1 = c x (x ~ level x flat), about -0.6%.
            EXPECT_LT(mNon / expected - 1.0, 0.5 * inst.nonlinearity(i) * level);
            EXPECT_NEAR(mLin / expected, 1.0, 3e-4) << "amplifier " << i;
        }
    }
}

TEST(IsrProcess, SaturatedStarsAndBleedTrailsMaskedSat) {
    const auto cam = tinyCamera();
    const Detector& det = cam->detector(0);
    for (std::uint64_t seed = 1; seed <= 3; ++seed) {
        InstrumentConfig ic;
        ic.seed = seed;
        const DetectorInstrument inst(det, ic, focalRadius(det));
        const std::vector<Star> stars = {{100.2, 60.5, 5e7, 2.5}, {300.7, 250.1, 2e7, 2.0}, {450.4, 330.6, 3e6, 1.5}};
        const ImageF incident = starField(det, 500.0, stars);
        SimulationRecord rec;
        rec.keepElectrons = true;
        const RawExposure raw = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, 900 + seed, &rec);
        const IsrConfig config;
        const TruthCalibs truth(inst, "r", config);
        const Exposure out = runIsr(raw, det, truth.calibs, config);
        const MaskPixel sat = out.mask().planeBitMask("SAT"), intrp = out.mask().planeBitMask("INTRP");
        // Every pixel at full well (cores and bleed trails) is SAT and interpolated.
        ASSERT_FALSE(rec.saturated.empty());
        int longest = 0;
        for (const Box2I& b : rec.saturated) {
            longest = std::max(longest, b.height());
            for (int y = b.minY(); y <= b.maxY(); ++y) {
                const MaskPixel m = out.mask()(b.minX(), y);
                EXPECT_TRUE((m & sat) && (m & intrp));
            }
        }
        EXPECT_GT(longest, 15);  // a bleed trail along the column
        // No SAT far from charge near full well (grown by saturationGrow).
        int stray = 0;
        const double nearFull = 0.9 * ic.fullWellElectrons;
        for (int y = 0; y < out.height(); ++y)
            for (int x = 0; x < out.width(); ++x) {
                if (!(out.mask()(x, y) & sat)) continue;
                bool ok = false;
                for (int dy = -config.saturationGrow; dy <= config.saturationGrow && !ok; ++dy)
                    for (int dx = -config.saturationGrow; dx <= config.saturationGrow && !ok; ++dx) {
                        const int xx = x + dx, yy = y + dy;
                        ok = xx >= 0 && yy >= 0 && xx < out.width() && yy < out.height() && rec.electrons(xx, yy) >= nearFull;
                    }
                if (!ok) ++stray;
            }
        std::printf("seed %llu: %zu full-well runs, longest %d px, %lld SAT pixels, %d stray\n", (unsigned long long)seed,
                    rec.saturated.size(), longest, (long long)out.mask().countBits(sat), stray);
        EXPECT_EQ(stray, 0);
        EXPECT_EQ(out.metadata().getInt("ISR_NSAT"), out.mask().countBits(sat));
        // Without the saturation step nothing is SAT.
        IsrConfig noSat = config;
        noSat.doSaturation = false;
        EXPECT_EQ(runIsr(raw, det, truth.calibs, noSat).mask().countBits(sat), 0);
    }
}
