// Physics of the simulator's instrument model, asserted against the model's own truth over many seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>

#include "core/Error.h"
#include "drivers/sim/InstrumentModel.h"

using namespace drp;
#include "tests/drivers/InstrumentTestSupport.h"

using namespace drp::test::instrument;

// ---------------------------------------------------------------------------------------------
// Config and fixed truth

TEST(InstrumentConfig, DefaultsValidateAndBoundsAreChecked) {
    InstrumentConfig c;
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(c, InstrumentConfig{});
    auto expectBad = [](auto mutate) {
        InstrumentConfig bad;
        mutate(bad);
        EXPECT_THROW(bad.validate(), ConfigError);
        EXPECT_FALSE(bad == InstrumentConfig{});
    };
    expectBad([](InstrumentConfig& b) { b.biasLevelAdu = -1; });
    expectBad([](InstrumentConfig& b) { b.darkCurrentEPerS = -0.1; });
    expectBad([](InstrumentConfig& b) { b.hotPixelMaxFactor = 5; });
    expectBad([](InstrumentConfig& b) { b.vignettingAmplitude = 1.0; });
    expectBad([](InstrumentConfig& b) { b.nonlinearityCoeff = -1e-5; });
    expectBad([](InstrumentConfig& b) { b.crosstalkCoeff = 0.5; });
    expectBad([](InstrumentConfig& b) { b.fullWellElectrons = 0; });
    expectBad([](InstrumentConfig& b) { b.cosmicRayMaxLengthPx = 0; });
    expectBad([](InstrumentConfig& b) { b.flatIlluminationByBand["r"] = -5; });
    expectBad([](InstrumentConfig& b) { b.poissonGaussianThreshold = 1; });
    InstrumentConfig other;
    other.seed = 2;
    EXPECT_FALSE(other == c);
    InstrumentConfig negative;
    negative.biasLevelAdu = -3;
    EXPECT_THROW(DetectorInstrument(centralDetector(), negative, 1.0), ConfigError);
}

TEST(DetectorInstrument, FixedTruthIsDeterministicPerSeedAndDetector) {
    InstrumentConfig c;
    const DetectorInstrument a(centralDetector(), c, focalRadius());
    const DetectorInstrument b(centralDetector(), c, focalRadius());
    EXPECT_TRUE(a.flat("r").identical(b.flat("r")));
    // The flat cache keeps two bands: evicted flats are rebuilt identically.
    const ImageF firstG = a.flat("g");
    (void)a.flat("i");
    (void)a.flat("z");
    EXPECT_TRUE(a.flat("g").identical(firstG));
    EXPECT_FALSE(a.flat("g").identical(a.flat("z")));
    EXPECT_TRUE(a.darkRate().identical(b.darkRate()));
    EXPECT_EQ(a.defects(), b.defects());
    EXPECT_EQ(a.hotPixels(), b.hotPixels());
    EXPECT_EQ(a.crosstalk(), b.crosstalk());
    for (int i = 0; i < 8; ++i) {
        EXPECT_EQ(a.biasLevel(i), b.biasLevel(i));
        EXPECT_EQ(a.nonlinearity(i), b.nonlinearity(i));
        EXPECT_TRUE(a.fixedBias(i).identical(b.fixedBias(i)));
    }
    c.seed = 99;
    const DetectorInstrument other(centralDetector(), c, focalRadius());
    EXPECT_FALSE(a.flat("r").identical(other.flat("r")));
    EXPECT_FALSE(a.darkRate().identical(other.darkRate()));
    EXPECT_NE(a.biasLevel(0), other.biasLevel(0));
    const DetectorInstrument neighbour(smallCamera()->detector(3), InstrumentConfig{}, focalRadius());
    EXPECT_NE(a.biasLevel(0), neighbour.biasLevel(0));
}

TEST(DetectorInstrument, ElectronicsTruthHasTheConfiguredSizes) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        InstrumentConfig c;
        c.seed = seed;
        const DetectorInstrument inst(centralDetector(), c, focalRadius());
        const auto& amps = centralDetector().amplifiers();
        for (int i = 0; i < 8; ++i) {
            EXPECT_LE(std::fabs(inst.biasLevel(i) - c.biasLevelAdu), c.biasLevelSpreadAdu);
            EXPECT_EQ(inst.gain(i), amps[std::size_t(i)].gain);
            EXPECT_EQ(inst.readNoise(i), amps[std::size_t(i)].readNoise);
            EXPECT_LT(inst.nonlinearity(i), 0.0);
            EXPECT_NEAR(inst.nonlinearity(i), c.nonlinearityCoeff, std::fabs(c.nonlinearityCoeff) * c.nonlinearitySpread);
            // Non-linearity is ~1% at full well.
            const double loss = 1.0 - applyNonlinearity(c.fullWellElectrons, inst.nonlinearity(i)) / c.fullWellElectrons;
            EXPECT_GT(loss, 0.008);
            EXPECT_LT(loss, 0.012);
            EXPECT_LE(inst.saturationAdu(i), 65535.0);
            EXPECT_GT(inst.saturationAdu(i), inst.biasLevel(i) + 0.9 * c.fullWellElectrons / inst.gain(i) - 1000);
        }
        // Crosstalk: zero diagonal, nearest neighbours in a row ~ crosstalkCoeff, farther smaller.
        const Eigen::MatrixXd xt = inst.crosstalk();
        ASSERT_EQ(xt.rows(), 8);
        for (int v = 0; v < 8; ++v) {
            EXPECT_EQ(xt(v, v), 0.0);
            for (int s = 0; s < 8; ++s) {
                if (v == s) continue;
                const int dx = std::abs(v % 4 - s % 4), dy = std::abs(v / 4 - s / 4);
                const double nominal = c.crosstalkCoeff * std::pow(c.crosstalkFalloff, dx + 2 * dy - 1);
                if (nominal < 0.999e-3 * c.crosstalkCoeff) {
                    EXPECT_EQ(xt(v, s), 0.0);
                } else {
                    EXPECT_NEAR(xt(v, s), nominal, nominal * c.crosstalkSpread * 1.0001);
                    EXPECT_GT(xt(v, s), 0.0);
                }
            }
        }
        // Hot pixels: ~fraction x area, each 10-1000x the dark current; bad columns as configured.
        const ImageF& dark = inst.darkRate();
        for (const Point2I& p : inst.hotPixels()) {
            const double f = dark(p.x, p.y) / c.darkCurrentEPerS;
            EXPECT_GE(f, c.hotPixelMinFactor * 0.999);
            EXPECT_LE(f, c.hotPixelMaxFactor * 1.001);
        }
        std::size_t elevated = 0;
        for (int y = 0; y < dark.height(); ++y)
            for (int x = 0; x < dark.width(); ++x) elevated += dark(x, y) > float(c.darkCurrentEPerS);
        EXPECT_EQ(elevated, inst.hotPixels().size());
        EXPECT_EQ(int(inst.defects().size()), c.badColumnsPerDetector);
        for (const Box2I& d : inst.defects()) {
            EXPECT_EQ(d.width(), 1);
            EXPECT_TRUE(centralDetector().bbox().contains(d));
        }
    }
    // Hot-pixel count over many detectors: Poisson with mean fraction x area.
    double total = 0;
    const int n = 40;
    for (int k = 0; k < n; ++k) {
        InstrumentConfig c;
        c.seed = 1000 + std::uint64_t(k);
        c.hotPixelFraction = 1e-3;
        total += double(DetectorInstrument(centralDetector(), c, 0.0).hotPixels().size());
    }
    const double expected = 1e-3 * 256 * 200;
    EXPECT_NEAR(total / n, expected, 5 * std::sqrt(expected / n));
}

TEST(DetectorInstrument, FlatHasUnitMeanPixelResponseVignettingAndBandDifferences) {
    InstrumentConfig c;
    c.badColumnsPerDetector = 0;
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        c.seed = seed;
        const DetectorInstrument centre(centralDetector(), c, focalRadius());
        const ImageF r = centre.flat("r"), g = centre.flat("g");
        double sum = 0, sumDiff2 = 0, sumBand2 = 0;
        std::int64_t nDiff = 0;
        for (int y = 0; y < r.height(); ++y)
            for (int x = 0; x < r.width(); ++x) {
                sum += r(x, y);
                sumBand2 += double(r(x, y) - g(x, y)) * (r(x, y) - g(x, y));
                if (x + 1 < r.width() && centralDetector().amplifierIndexAt({x, y}) ==
                                             centralDetector().amplifierIndexAt({x + 1, y})) {
                    sumDiff2 += double(r(x + 1, y) - r(x, y)) * (r(x + 1, y) - r(x, y));
                    ++nDiff;
                }
            }
        const double n = double(r.width()) * r.height();
        // The central detector sees almost no vignetting: mean response ~1.
        EXPECT_NEAR(sum / n, 1.0, 0.01);
        // Pixel-to-pixel rms from neighbour differences (the smooth terms cancel): var(diff) = 2 sigma^2.
        EXPECT_NEAR(std::sqrt(sumDiff2 / nDiff / 2.0), c.pixelResponseSigma, 0.05 * c.pixelResponseSigma);
        // Bands differ (band-specific pixel response and gradient) but not by more than the model allows.
        const double bandRms = std::sqrt(sumBand2 / n);
        EXPECT_GT(bandRms, 0.5 * c.pixelResponseSigma * c.bandPixelResponseFraction);
        EXPECT_LT(bandRms, 2 * c.pixelResponseSigma + c.bandGradientAmplitude);
        // Corner detector: vignetting as specified at its centre.
        const Detector& corner = smallCamera()->detector(0);
        const DetectorInstrument edge(corner, c, focalRadius());
        const ImageF fe = edge.flat("r");
        double se = 0;
        for (int y = 0; y < fe.height(); ++y)
            for (int x = 0; x < fe.width(); ++x) se += fe(x, y);
        const Point2D mm = corner.pixelToFocalPlane({127.5, 99.5});
        const double rr = (mm.x * mm.x + mm.y * mm.y) / (focalRadius() * focalRadius());
        EXPECT_NEAR(se / n, 1.0 - c.vignettingAmplitude * rr, 0.01);
        EXPECT_LT(se / n, 0.96);
    }
    // Bad columns: low or dead response where defects() says.
    InstrumentConfig bad;
    bad.badColumnsPerDetector = 6;
    const DetectorInstrument inst(centralDetector(), bad, 0.0);
    const ImageF f = inst.flat("i");
    for (const Box2I& d : inst.defects())
        for (int y = d.minY(); y <= d.maxY(); ++y) EXPECT_LE(f(d.minX(), y), 0.7f);
    EXPECT_EQ(inst.defects().size(), 6u);
}

// ---------------------------------------------------------------------------------------------
// Calibration exposures

TEST(Simulate, BiasFramesCarryBiasLevelRowStructureAndReadNoise) {
    const InstrumentConfig c;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const auto& amps = centralDetector().amplifiers();
    const int nSeeds = 30;
    std::vector<double> meanOfMeans(8, 0.0);
    std::vector<double> chi2(8, 0.0), nChi(8, 0.0), rowChi2(8, 0.0), nRow(8, 0.0), rowVar(8, 0.0);
    const ImageF none;
    for (int s = 0; s < nSeeds; ++s) {
        SimulationRecord rec;
        const RawExposure raw = inst.simulate(none, 0.0, 0.0, "r", ExposureKind::Bias, std::uint64_t(s) + 1, &rec);
        ASSERT_EQ(raw.amplifiers.size(), 8u);
        EXPECT_NO_THROW(raw.validate(centralDetector()));
        EXPECT_EQ(raw.metadata.getString("IMGTYPE"), "BIAS");
        ASSERT_EQ(rec.rowOffsetAdu.size(), 8u);
        EXPECT_TRUE(rec.cosmicRays.empty());
        for (int i = 0; i < 8; ++i) {
            const Amplifier& a = amps[std::size_t(i)];
            const Image<std::int32_t>& img = raw.amplifiers[std::size_t(i)];
            const double noiseAdu = inst.readNoise(i) / inst.gain(i);
            const double var = noiseAdu * noiseAdu + 1.0 / 12.0;  // read noise + ADC quantisation
            // Every pixel, data included: truth bias + read noise only.
            for (int v = 0; v < img.height(); ++v)
                for (int u = 0; u < img.width(); ++u) {
                    const double r = img(u, v) - trueBias(inst, rec, i, u, v);
                    chi2[std::size_t(i)] += r * r / var;
                    nChi[std::size_t(i)] += 1;
                }
            // Overscan mean = bias level + this exposure's drift + mean row structure.
            const std::vector<double> rows = overscanRowMeans(img, a);
            double mean = 0, rowTruthMean = 0;
            for (int v = a.rawSerialOverscanBBox.minY(); v <= a.rawSerialOverscanBBox.maxY(); ++v) {
                mean += rows[std::size_t(v)];
                const double truth = rec.rowOffsetAdu[std::size_t(i)][std::size_t(v)] + inst.biasRowPattern(i)[std::size_t(v)];
                rowTruthMean += truth;
                // Row structure: per-row overscan means follow the recorded row offsets.
                const double d = rows[std::size_t(v)] - inst.biasLevel(i) - rec.biasDriftAdu[std::size_t(i)] - truth;
                rowChi2[std::size_t(i)] += d * d / (var / a.rawSerialOverscanBBox.width());
                nRow[std::size_t(i)] += 1;
                rowVar[std::size_t(i)] += std::pow(rows[std::size_t(v)] - inst.biasLevel(i) - rec.biasDriftAdu[std::size_t(i)], 2);
            }
            const int h = a.rawSerialOverscanBBox.height();
            mean /= h;
            rowTruthMean /= h;
            const double sigmaMean = std::sqrt(var / (double(h) * a.rawSerialOverscanBBox.width()) +
                                               c.biasRowNoiseAdu * c.biasRowNoiseAdu / h);
            EXPECT_NEAR(mean, inst.biasLevel(i) + rec.biasDriftAdu[std::size_t(i)] + rowTruthMean, 5 * sigmaMean);
            meanOfMeans[std::size_t(i)] += mean / nSeeds;
        }
    }
    for (int i = 0; i < 8; ++i) {
        SCOPED_TRACE("amp " + std::to_string(i));
        const Amplifier& a = amps[std::size_t(i)];
        const double h = a.rawSerialOverscanBBox.height();
        double pattern = 0;
        for (int v = 0; v < int(h); ++v) pattern += inst.biasRowPattern(i)[std::size_t(v)] / h;
        // Averaged over exposures the overscan level converges on biasLevel (+ the fixed row pattern).
        const double sigma = std::sqrt((c.biasDriftAdu * c.biasDriftAdu + c.biasRowNoiseAdu * c.biasRowNoiseAdu / h) / nSeeds);
        EXPECT_NEAR(meanOfMeans[std::size_t(i)], inst.biasLevel(i) + pattern, 5 * sigma + 0.05);
        // Noise in ADU is readNoise / gain: chi-square per pixel ~ 1.
        EXPECT_NEAR(chi2[std::size_t(i)] / nChi[std::size_t(i)], 1.0, 0.03);
        EXPECT_NEAR(rowChi2[std::size_t(i)] / nRow[std::size_t(i)], 1.0, 0.15);
        // The row structure is really there: per-row overscan means scatter by more than read noise allows.
        const double noiseAdu = inst.readNoise(i) / inst.gain(i);
        const double expectRowVar = c.biasRowNoiseAdu * c.biasRowNoiseAdu + c.biasRowPatternAdu * c.biasRowPatternAdu +
                                    (noiseAdu * noiseAdu + 1.0 / 12) / a.rawSerialOverscanBBox.width();
        EXPECT_NEAR(rowVar[std::size_t(i)] / nRow[std::size_t(i)], expectRowVar, 0.15 * expectRowVar);
    }
}

TEST(Simulate, FlatsReproduceTheTrueFlatWithinPoissonNoise) {
    InstrumentConfig c;  // everything on: crosstalk, non-linearity, dark, cosmic rays, defects
    c.badColumnsPerDetector = 3;
    for (std::uint64_t iseed : {1u, 2u, 3u}) {
        c.seed = iseed;
        const DetectorInstrument inst(smallCamera()->detector(1), c, focalRadius());
        const Detector& det = inst.detector();
        const auto& amps = det.amplifiers();
        for (const std::string band : {"g", "r"}) {
            const ImageF incident = makeCalibrationIncident(det, ExposureKind::Flat, band, c);
            const CalibrationTiming t = calibrationTiming(ExposureKind::Flat, c);
            const double level = c.flatIlluminationElectrons;
            SimulationRecord rec;
            const RawExposure raw =
                inst.simulate(incident, t.exposureTimeS, t.darkTimeS, band, ExposureKind::Flat, 17 + iseed, &rec);
            EXPECT_EQ(raw.metadata.getString("IMGTYPE"), "FLAT");
            EXPECT_EQ(raw.visitInfo.band, band);
            const ImageF flat = inst.flat(band);
            const auto crs = cosmicRayPixels(rec);
            // Mini-ISR with the truth: overscan (per row), crosstalk, linearity, gain, dark.
            std::vector<ImageF> adu(8);
            for (int i = 0; i < 8; ++i) {
                const Amplifier& a = amps[std::size_t(i)];
                const auto rows = overscanRowMeans(raw.amplifiers[std::size_t(i)], a);
                adu[std::size_t(i)] = ImageF(a.rawDataBBox.width(), a.rawDataBBox.height());
                for (int v = 0; v < a.rawDataBBox.height(); ++v)
                    for (int u = 0; u < a.rawDataBBox.width(); ++u) {
                        const int ru = a.rawDataBBox.minX() + u, rv = a.rawDataBBox.minY() + v;
                        adu[std::size_t(i)](u, v) =
                            float(raw.amplifiers[std::size_t(i)](ru, rv) - rows[std::size_t(rv)] -
                                  inst.biasColumnPattern(i)[std::size_t(ru)]);
                    }
            }
            const Eigen::MatrixXd xt = inst.crosstalk();
            double chi2 = 0, n = 0;
            for (int i = 0; i < 8; ++i) {
                const Amplifier& a = amps[std::size_t(i)];
                const double g = inst.gain(i), rn = inst.readNoise(i);
                for (int v = 0; v < a.rawDataBBox.height(); ++v)
                    for (int u = 0; u < a.rawDataBBox.width(); ++u) {
                        double value = adu[std::size_t(i)](u, v);
                        for (int s = 0; s < 8; ++s) value -= xt(i, s) * adu[std::size_t(s)](u, v);
                        const double e = invertNonlinearity(value * g, inst.nonlinearity(i));
                        const Point2I p = a.rawToAssembled(Point2I{a.rawDataBBox.minX() + u, a.rawDataBBox.minY() + v});
                        if (crs.count({p.x, p.y})) continue;
                        const double darkE = inst.darkRate()(p.x, p.y) * t.darkTimeS;
                        const double f = flat(p.x, p.y);
                        const double variance = f * level + darkE + rn * rn * (1.0 + 1.0 / a.rawSerialOverscanBBox.width()) +
                                                g * g / 12.0;
                        const double r = (e - darkE) / level - f;
                        chi2 += r * r / (variance / (level * level));
                        n += 1;
                    }
            }
            EXPECT_NEAR(chi2 / n, 1.0, 0.03) << "seed " << iseed << " band " << band;
        }
    }
}

TEST(Simulate, DarksFollowTheDarkRateAndShowHotPixels) {
    InstrumentConfig c;
    c.hotPixelFraction = 5e-3;
    c.darkExposureTimeS = 600.0;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const auto& amps = centralDetector().amplifiers();
    const CalibrationTiming t = calibrationTiming(ExposureKind::Dark, c);
    EXPECT_EQ(t.darkTimeS, 600.0);
    const int nSeeds = 6;
    const Box2I bbox = centralDetector().bbox();
    ImageD sum(bbox, 0.0), count(bbox, 0.0);
    double normalSum = 0, normalSum2 = 0, normalN = 0;
    for (int s = 0; s < nSeeds; ++s) {
        SimulationRecord rec;
        const RawExposure raw = inst.simulate(makeCalibrationIncident(centralDetector(), ExposureKind::Dark, "r", c),
                                              t.exposureTimeS, t.darkTimeS, "r", ExposureKind::Dark, 100 + s, &rec);
        EXPECT_EQ(raw.metadata.getString("IMGTYPE"), "DARK");
        const auto crs = cosmicRayPixels(rec);
        for (int i = 0; i < 8; ++i) {
            const Amplifier& a = amps[std::size_t(i)];
            const auto rows = overscanRowMeans(raw.amplifiers[std::size_t(i)], a);
            for (int v = a.rawDataBBox.minY(); v <= a.rawDataBBox.maxY(); ++v)
                for (int u = a.rawDataBBox.minX(); u <= a.rawDataBBox.maxX(); ++u) {
                    const Point2I p = a.rawToAssembled(Point2I{u, v});
                    if (crs.count({p.x, p.y})) continue;
                    const double e = invertNonlinearity(
                        (raw.amplifiers[std::size_t(i)](u, v) - rows[std::size_t(v)] - inst.biasColumnPattern(i)[std::size_t(u)]) *
                            inst.gain(i),
                        inst.nonlinearity(i));
                    sum(p.x, p.y) += e;
                    count(p.x, p.y) += 1;
                    if (inst.darkRate()(p.x, p.y) == float(c.darkCurrentEPerS)) {
                        normalSum += e;
                        normalSum2 += e * e;
                        normalN += 1;
                    }
                }
        }
    }
    // Mean dark signal = darkRate x darkTime, and (Poisson regime) variance = mean + read noise^2.
    const double expected = c.darkCurrentEPerS * t.darkTimeS;
    double rn2 = 0;
    for (int i = 0; i < 8; ++i) rn2 += inst.readNoise(i) * inst.readNoise(i) / 8;
    const double mean = normalSum / normalN;
    const double var = normalSum2 / normalN - mean * mean;
    EXPECT_NEAR(mean, expected, 5 * std::sqrt((expected + rn2) / normalN) + 0.02);
    EXPECT_NEAR(var, expected + rn2 * (1 + 1.0 / 24) + 1.5 * 1.5 / 12, 0.06 * (expected + rn2));
    // Hot pixels sit where darkRate says, with the signal it says.
    ASSERT_GT(inst.hotPixels().size(), 150u);
    double chi2 = 0;
    int nHot = 0;
    for (const Point2I& p : inst.hotPixels()) {
        if (count(p.x, p.y) < nSeeds) continue;  // touched by a cosmic ray
        const double lambda = inst.darkRate()(p.x, p.y) * t.darkTimeS;
        const double m = sum(p.x, p.y) / count(p.x, p.y);
        const double sigma = std::sqrt((lambda + rn2 * 1.1 + 0.5) / count(p.x, p.y));
        const double relNl = 2e-7 * lambda;  // allowance for the linearity inversion's per-amp accuracy
        chi2 += std::pow((m - lambda) / std::hypot(sigma, relNl * lambda), 2);
        ++nHot;
    }
    EXPECT_NEAR(chi2 / nHot, 1.0, 0.35);
    // ...and nowhere else: no normal pixel reads like a (10x) hot pixel.
    const double sigmaNormal = std::sqrt((expected + rn2 * 1.1) / nSeeds);
    int outliers = 0;
    for (int y = 0; y < bbox.height(); ++y)
        for (int x = 0; x < bbox.width(); ++x)
            if (count(x, y) == nSeeds && inst.darkRate()(x, y) == float(c.darkCurrentEPerS) &&
                sum(x, y) / nSeeds > expected + 6 * sigmaNormal)
                ++outliers;
    EXPECT_LE(outliers, 1);
}

// ---------------------------------------------------------------------------------------------
// Noise, saturation, non-linearity, crosstalk, cosmic rays

TEST(Simulate, PixelVarianceIsPoissonPlusReadNoiseOverGainSquared) {
    InstrumentConfig c;  // crosstalk and non-linearity on: the truth prediction includes them
    c.cosmicRayRatePerCm2PerS = 0.05;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const auto& amps = centralDetector().amplifiers();
    const Eigen::MatrixXd xt = inst.crosstalk();
    for (double level : {300.0, 5000.0, 40000.0}) {
        const ImageF incident = uniformImage(centralDetector(), level);
        const ImageF flat = inst.flat("i");
        double pooled = 0, pooledN = 0;
        std::vector<double> perAmp(8, 0.0), perAmpN(8, 0.0);
        for (std::uint64_t s = 0; s < 4; ++s) {
            SimulationRecord rec;
            const RawExposure raw = inst.simulate(incident, 30.0, 31.0, "i", ExposureKind::Science, 500 + s, &rec);
            EXPECT_EQ(raw.metadata.getString("IMGTYPE"), "OBJECT");
            const auto crs = cosmicRayPixels(rec);
            // Expected signal of every amplifier's data pixel (raw data frame), in ADU.
            std::vector<ImageD> expectedAdu(8);
            for (int i = 0; i < 8; ++i) {
                const Amplifier& a = amps[std::size_t(i)];
                expectedAdu[std::size_t(i)] = ImageD(a.rawDataBBox.width(), a.rawDataBBox.height());
                for (int v = 0; v < a.rawDataBBox.height(); ++v)
                    for (int u = 0; u < a.rawDataBBox.width(); ++u) {
                        const Point2I p = a.rawToAssembled(Point2I{a.rawDataBBox.minX() + u, a.rawDataBBox.minY() + v});
                        const double lambda = level * flat(p.x, p.y) + inst.darkRate()(p.x, p.y) * 31.0;
                        expectedAdu[std::size_t(i)](u, v) = applyNonlinearity(lambda, inst.nonlinearity(i)) / inst.gain(i);
                    }
            }
            for (int i = 0; i < 8; ++i) {
                const Amplifier& a = amps[std::size_t(i)];
                const double g = inst.gain(i), rn = inst.readNoise(i);
                for (int v = 0; v < a.rawDataBBox.height(); ++v)
                    for (int u = 0; u < a.rawDataBBox.width(); ++u) {
                        const int ru = a.rawDataBBox.minX() + u, rv = a.rawDataBBox.minY() + v;
                        const Point2I p = a.rawToAssembled(Point2I{ru, rv});
                        if (crs.count({p.x, p.y})) continue;
                        double mu = expectedAdu[std::size_t(i)](u, v) + trueBias(inst, rec, i, ru, rv);
                        for (int s2 = 0; s2 < 8; ++s2) mu += xt(i, s2) * expectedAdu[std::size_t(s2)](u, v);
                        const double lambda = level * flat(p.x, p.y) + inst.darkRate()(p.x, p.y) * 31.0;
                        const double slope = 1.0 + 2.0 * inst.nonlinearity(i) * lambda;
                        const double predicted = (lambda * slope * slope + rn * rn) / (g * g) + 1.0 / 12.0;
                        const double r = raw.amplifiers[std::size_t(i)](ru, rv) - mu;
                        pooled += r * r / predicted;
                        pooledN += 1;
                        perAmp[std::size_t(i)] += r * r / predicted;
                        perAmpN[std::size_t(i)] += 1;
                    }
            }
        }
        EXPECT_NEAR(pooled / pooledN, 1.0, 0.03) << "level " << level;
        for (int i = 0; i < 8; ++i) EXPECT_NEAR(perAmp[std::size_t(i)] / perAmpN[std::size_t(i)], 1.0, 0.05) << "level " << level << " amp " << i;
    }
}
