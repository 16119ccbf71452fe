// Instrument-model tests, part 2: bleeding, saturation, non-linearity, crosstalk, cosmic rays, layout, determinism.
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

TEST(Kernels, BleedingConservesChargeAlongColumnsAndRespectsFullWell) {
    std::mt19937_64 rng(7);
    for (int trial = 0; trial < 20; ++trial) {
        const double fullWell = 1000.0;
        ImageF img(Box2I({5, -3}, 30, 80), 0.0f);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) img(x, y) = float(int(600 * u(rng)));
        // A few bright sources (kept away from the column ends so nothing is lost).
        for (int k = 0; k < 3; ++k) {
            const int x = int(u(rng) * 30), y = 30 + int(u(rng) * 20);
            img(x, y) = float(int(3000 + 8000 * u(rng)));
        }
        std::vector<double> before(30, 0.0), after(30, 0.0);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) before[std::size_t(x)] += img(x, y);
        double lost = 0.0;
        const std::vector<Box2I> runs = bleedSaturatedCharge(img, fullWell, &lost);
        EXPECT_EQ(lost, 0.0);
        std::int64_t atWell = 0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                after[std::size_t(x)] += img(x, y);
                EXPECT_LE(img(x, y), float(fullWell));
                atWell += img(x, y) >= float(fullWell);
            }
        for (int x = 0; x < 30; ++x) EXPECT_NEAR(after[std::size_t(x)], before[std::size_t(x)], 0.01);
        std::int64_t runPixels = 0;
        for (const Box2I& b : runs) {
            EXPECT_EQ(b.width(), 1);
            EXPECT_TRUE(img.bbox().contains(b));
            for (int y = b.minY(); y <= b.maxY(); ++y) EXPECT_GE(img.atParent({b.minX(), y}), float(fullWell));
            runPixels += b.area();
        }
        EXPECT_EQ(runPixels, atWell);
        EXPECT_GE(runs.size(), 1u);
    }
    // Charge that reaches the end of a column is lost, and counted.
    ImageF col(1, 5, 0.0f);
    col(0, 0) = 4000.0f;
    double lost = 0.0;
    bleedSaturatedCharge(col, 1000.0, &lost);
    EXPECT_EQ(col(0, 0), 1000.0f);
    EXPECT_EQ(col(0, 1), 1000.0f);
    EXPECT_EQ(col(0, 2), 500.0f);
    EXPECT_DOUBLE_EQ(lost, 1500.0);  // the downward half
}

TEST(Simulate, BrightStarsSaturateBleedAndClip) {
    InstrumentConfig c;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const Detector& det = centralDetector();
    for (std::uint64_t s = 0; s < 5; ++s) {
        ImageF incident = uniformImage(det, 500.0);
        // A star of 2e7 e- (Gaussian, sigma 2 px) in the middle rows.
        const double cx = 40 + 30.0 * double(s), cy = 100, total = 2e7;
            for (int y = 0; y < incident.height(); ++y)
            for (int x = 0; x < incident.width(); ++x) {
                const double r2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                const float add = float(total * std::exp(-0.5 * r2 / 4.0) / (2 * std::numbers::pi * 4.0));
                incident(x, y) += add;
            }
        SimulationRecord rec;
        rec.keepElectrons = true;
        const RawExposure raw = inst.simulate(incident, 30.0, 30.0, "r", ExposureKind::Science, 900 + s, &rec);
        ASSERT_FALSE(rec.saturated.empty());
        ASSERT_FALSE(rec.electrons.empty());
        const ImageF flat = inst.flat("r");
        int longest = 0;
        for (const Box2I& b : rec.saturated) longest = std::max(longest, b.height());
        EXPECT_GT(longest, 30);  // a bleed trail, not just the core
        // No pixel above full well; charge conserved in the star's columns (nothing lost off the ends).
        EXPECT_EQ(rec.bleedElectronsLost, 0.0);
        double expectedCols = 0, gotCols = 0;
        for (int x = int(cx) - 8; x <= int(cx) + 8; ++x)
            for (int y = 0; y < det.bbox().height(); ++y) {
                EXPECT_LE(rec.electrons(x, y), float(c.fullWellElectrons));
                expectedCols += incident(x, y) * flat(x, y) + inst.darkRate()(x, y) * 30.0;
                gotCols += rec.electrons(x, y);
            }
        double crCharge = 0;
        for (const auto& cr : rec.cosmicRays) crCharge += cr.electrons;
        EXPECT_NEAR(gotCols, expectedCols, 6 * std::sqrt(expectedCols) + crCharge);
        // In the raw, every full-well pixel reads at or above saturationAdu (or was clipped at 65535).
        for (const Box2I& b : rec.saturated) {
            for (int y = b.minY(); y <= b.maxY(); ++y) {
                const int i = det.amplifierIndexAt({b.minX(), y});
                const Amplifier& a = det.amplifiers()[std::size_t(i)];
                const Point2I r = a.assembledToRaw(Point2I{b.minX(), y});
                EXPECT_GE(raw.amplifiers[std::size_t(i)](r.x, r.y), inst.saturationAdu(i));
                EXPECT_LE(raw.amplifiers[std::size_t(i)](r.x, r.y), 65535);
            }
        }
    }
}

TEST(Simulate, NonlinearityCurveIsAppliedAsSpecified) {
    EXPECT_DOUBLE_EQ(applyNonlinearity(1e5, -1e-7), 1e5 - 1e3);
    for (double x : {0.0, 1.0, 1234.5, 5e4, 1e5}) {
        EXPECT_NEAR(invertNonlinearity(applyNonlinearity(x, -1.1e-7), -1.1e-7), x, 1e-9 * (1 + x));
        EXPECT_EQ(invertNonlinearity(x, 0.0), x);
    }
    InstrumentConfig c = quietConfig();
    c.nonlinearityCoeff = -2e-7;  // 2% at full well
    c.darkCurrentEPerS = 0.0;
    c.fullWellElectrons = 150000;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const ImageF flat = inst.flat("z");
    const auto& amps = centralDetector().amplifiers();
    for (double level : {5000.0, 20000.0, 40000.0, 60000.0}) {
        const RawExposure raw =
            inst.simulate(uniformImage(centralDetector(), level), 10.0, 10.0, "z", ExposureKind::Science, 77, nullptr);
        for (int i = 0; i < 8; ++i) {
            const Amplifier& a = amps[std::size_t(i)];
            const auto rows = overscanRowMeans(raw.amplifiers[std::size_t(i)], a);
            double measured = 0, predicted = 0, linear = 0, n = 0;
            for (int v = a.rawDataBBox.minY(); v <= a.rawDataBBox.maxY(); ++v)
                for (int u = a.rawDataBBox.minX(); u <= a.rawDataBBox.maxX(); ++u) {
                    const Point2I p = a.rawToAssembled(Point2I{u, v});
                    const double lambda = level * flat(p.x, p.y);
                    measured += raw.amplifiers[std::size_t(i)](u, v) - rows[std::size_t(v)] -
                                inst.biasColumnPattern(i)[std::size_t(u)];
                    predicted += applyNonlinearity(lambda, inst.nonlinearity(i)) / inst.gain(i);
                    linear += lambda / inst.gain(i);
                    n += 1;
                }
            const double sigma = std::sqrt(level / n) / inst.gain(i) + 0.05;
            EXPECT_NEAR(measured / n, predicted / n, 5 * sigma) << "level " << level << " amp " << i;
            // The effect is resolved: at 60000 e- the deficit is ~1.2% (hundreds of sigma).
            if (level >= 40000) {
                EXPECT_GT((linear - measured) / n, 20 * sigma);
            }
        }
    }
}

TEST(Simulate, CrosstalkGhostsAppearAtTheSameReadoutPosition) {
    InstrumentConfig c = quietConfig();
    c.crosstalkCoeff = 1e-3;
    c.darkCurrentEPerS = 0.0;
    const Detector& det = centralDetector();
    const auto& amps = det.amplifiers();
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        c.seed = seed;
        const DetectorInstrument inst(det, c, focalRadius());
        const Eigen::MatrixXd xt = inst.crosstalk();
        const int source = int(seed % 8);
        const Amplifier& sa = amps[std::size_t(source)];
        // A bright 20 x 20 block (no saturation) in the source amplifier, nothing else.
        ImageF incident(det.bbox(), 0.0f);
        const Box2I block({sa.bbox.minX() + 10, sa.bbox.minY() + 20}, 20, 20);
        for (int y = block.minY(); y <= block.maxY(); ++y)
            for (int x = block.minX(); x <= block.maxX(); ++x) incident(x, y) = 50000.0f;
        const RawExposure raw = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, seed, nullptr);
        const Box2I rawBlock = sa.assembledToRaw(block);
        // Same raw columns shifted away from the ghost: a control region in the same rows (same row offsets).
        const Box2I control = rawBlock.shift({30, 0});
        auto regionMean = [&](int i, const Box2I& b) {
            double s = 0;
            for (int v = b.minY(); v <= b.maxY(); ++v)
                for (int u = b.minX(); u <= b.maxX(); ++u)
                    s += raw.amplifiers[std::size_t(i)](u, v) - inst.biasColumnPattern(i)[std::size_t(u)];
            return s / double(b.area());
        };
        const double sourceAdu = regionMean(source, rawBlock) - regionMean(source, control);
        const ImageF flat = inst.flat("r");
        double expectedSource = 0;
        for (int y = block.minY(); y <= block.maxY(); ++y)
            for (int x = block.minX(); x <= block.maxX(); ++x) expectedSource += 50000.0 * flat(x, y) / inst.gain(source) / 400.0;
        EXPECT_NEAR(sourceAdu, expectedSource, 5 * std::sqrt(50000.0 / 400) / inst.gain(source) + 0.5);
        for (int v = 0; v < 8; ++v) {
            if (v == source) continue;
            const double ghost = regionMean(v, rawBlock) - regionMean(v, control);
            const double noise = std::sqrt(2.0 / 400.0) * (inst.readNoise(v) / inst.gain(v));
            EXPECT_NEAR(ghost, xt(v, source) * sourceAdu, 5 * noise + 0.03 * xt(v, source) * sourceAdu)
                << "victim " << v << " source " << source;
        }
        // The nearest neighbour in the same row shows a clear ghost at the mirrored (same readout) position.
        const int neighbour = (source % 4 == 0) ? source + 1 : source - 1;
        EXPECT_GT(regionMean(neighbour, rawBlock) - regionMean(neighbour, control), 10.0);
        // Assembled: in the same row of amplifiers (same readout corner) the ghost is the block translated by
        // the amplifier offset; in the amplifier across the midline (read from the opposite corner) it is the
        // block mirrored through the amplifier centre.
        const Image<std::int32_t> assembled = raw.assembleData(det);
        const int across = (source + 4) % 8;
        const Amplifier& na = amps[std::size_t(neighbour)];
        const Amplifier& aa = amps[std::size_t(across)];
        const Box2I translated = block.shift(na.bbox.min() - sa.bbox.min());
        const Box2I mirrored = Box2I::fromCorners(
            {aa.bbox.maxX() - (block.maxX() - sa.bbox.minX()), aa.bbox.maxY() - (block.maxY() - sa.bbox.minY())},
            {aa.bbox.maxX() - (block.minX() - sa.bbox.minX()), aa.bbox.maxY() - (block.minY() - sa.bbox.minY())});
        EXPECT_EQ(na.rawToAssembled(rawBlock), translated);
        EXPECT_EQ(aa.rawToAssembled(rawBlock), mirrored);
        auto assembledMean = [&](const Box2I& b) {
            double s = 0;
            for (int y = b.minY(); y <= b.maxY(); ++y)
                for (int x = b.minX(); x <= b.maxX(); ++x) s += assembled(x, y);
            return s / double(b.area());
        };
        for (const auto& [victim, box] : {std::pair{neighbour, translated}, std::pair{across, mirrored}}) {
            const Amplifier& va = amps[std::size_t(victim)];
            // Reference: the same rows of the victim, 30 columns towards its interior.
            const int dx = (box.minX() - va.bbox.minX() < va.bbox.maxX() - box.maxX()) ? 30 : -30;
            const Box2I beside = box.shift({dx, 0});
            double colPattern = 0;
            for (int x = box.minX(); x <= box.maxX(); ++x) {
                const Point2I rp = va.assembledToRaw(Point2I{x, box.minY()});
                const Point2I rq = va.assembledToRaw(Point2I{x + dx, box.minY()});
                colPattern += (inst.biasColumnPattern(victim)[std::size_t(rp.x)] -
                               inst.biasColumnPattern(victim)[std::size_t(rq.x)]) / box.width();
            }
            const double ghost = assembledMean(box) - assembledMean(beside) - colPattern;
            const double noise = std::sqrt(2.0 / 400.0) * (inst.readNoise(victim) / inst.gain(victim));
            EXPECT_GT(xt(victim, source), 0.0);
            EXPECT_NEAR(ghost, xt(victim, source) * sourceAdu, 5 * noise + 0.03 * xt(victim, source) * sourceAdu)
                << "victim " << victim << " source " << source;
            EXPECT_GT(ghost, 5 * noise);
        }
        // Farther amplifiers see less.
        EXPECT_LT(xt(across, source), xt(neighbour, source));
    }
}

TEST(Simulate, CosmicRaysArriveAtTheImpliedRate) {
    InstrumentConfig c;
    c.cosmicRayRatePerCm2PerS = 20.0;
    const DetectorInstrument inst(centralDetector(), c, focalRadius());
    const double areaCm2 = 256 * 200 * 1e-6;  // 10 um pixels
    const double darkTime = 10.0;
    const double expected = c.cosmicRayRatePerCm2PerS * darkTime * areaCm2;
    const int n = 150;
    double sum = 0, sum2 = 0;
    const ImageF none;
    for (int s = 0; s < n; ++s) {
        SimulationRecord rec;
        rec.keepElectrons = s < 10;
        inst.simulate(none, darkTime, darkTime, "r", ExposureKind::Dark, 4000 + std::uint64_t(s), &rec);
        const double k = double(rec.cosmicRays.size());
        sum += k;
        sum2 += k * k;
        for (const CosmicRayRecord& cr : rec.cosmicRays) {
            EXPECT_GE(cr.lengthPx, 1);
            EXPECT_LE(cr.lengthPx, c.cosmicRayMaxLengthPx);
            EXPECT_GE(cr.electrons, cr.lengthPx * c.cosmicRayMinElectrons * 0.999 * (1 - c.cosmicRayDiffusion));
            EXPECT_LE(cr.electrons, cr.lengthPx * c.cosmicRayMaxElectrons * 1.001);
            EXPECT_TRUE(centralDetector().bbox().contains(cr.pixels.bbox()));
        }
        if (rec.keepElectrons && !rec.cosmicRays.empty()) {
            // The deposited charge is in the image: union of CR pixels minus the dark expectation.
            std::set<std::pair<int, int>> pix;
            double deposited = 0;
            for (const auto& cr : rec.cosmicRays) {
                deposited += cr.electrons;
                for (const Span& sp : cr.pixels.spans())
                    for (int x = sp.x0; x <= sp.x1; ++x) pix.insert({x, sp.y});
            }
            double got = 0, darkExpect = 0;
            for (const auto& [x, y] : pix) {
                got += rec.electrons(x, y);
                darkExpect += inst.darkRate()(x, y) * darkTime;
            }
            EXPECT_NEAR(got - darkExpect, deposited, 6 * std::sqrt(darkExpect + 1) + 0.01 * deposited);
        }
    }
    const double mean = sum / n, var = sum2 / n - mean * mean;
    EXPECT_NEAR(mean, expected, 4 * std::sqrt(expected / n));
    EXPECT_NEAR(var / mean, 1.0, 0.4);  // Poisson dispersion
    // No cosmic rays in a bias (no integration time).
    SimulationRecord rec;
    inst.simulate(none, 0, 10, "r", ExposureKind::Bias, 1, &rec);
    EXPECT_TRUE(rec.cosmicRays.empty());
}

// ---------------------------------------------------------------------------------------------
// Raw layout, determinism, helpers

TEST(Simulate, RawAssemblyPutsSignalInTheDataSectionOnly) {
    const Detector& det = centralDetector();
    // disassemble -> assemble reproduces the data section.
    std::mt19937 rng(3);
    Image<std::int32_t> image(det.bbox(), 0);
    for (int y = 0; y < image.height(); ++y)
        for (int x = 0; x < image.width(); ++x) image(x, y) = std::int32_t(rng() % 65536);
    Image<std::int32_t> back(det.bbox(), -1);
    for (const Amplifier& a : det.amplifiers()) assembleAmplifier(a, disassembleAmplifier(a, image, -7), back);
    EXPECT_TRUE(back.identical(image));

    InstrumentConfig c = quietConfig();
    const DetectorInstrument inst(det, c, focalRadius());
    for (std::uint64_t s = 0; s < 3; ++s) {
        // One bright spot near a corner of every amplifier: assembled, it must come back where it was put.
        ImageF incident(det.bbox(), 0.0f);
        std::vector<Point2I> spots;
        const ImageF flatR = inst.flat("r");
        for (const Amplifier& a : det.amplifiers()) {
            Point2I p{a.bbox.minX() + 3 + int(s), a.bbox.minY() + 5 + 2 * int(s)};
            while (flatR(p.x, p.y) < 0.8f) ++p.x;  // not on a bad column
            spots.push_back(p);
            incident(p.x, p.y) = 30000.0f;
        }
        SimulationRecord rec;
        const RawExposure raw = inst.simulate(incident, 1.0, 1.0, "r", ExposureKind::Science, s, &rec);
        const Image<std::int32_t> assembled = raw.assembleData(det);
        for (std::size_t i = 0; i < spots.size(); ++i) {
            const Amplifier& a = det.amplifiers()[i];
            Point2I best{};
            int bestValue = -1;
            for (int y = a.bbox.minY(); y <= a.bbox.maxY(); ++y)
                for (int x = a.bbox.minX(); x <= a.bbox.maxX(); ++x)
                    if (assembled(x, y) > bestValue) {
                        bestValue = assembled(x, y);
                        best = {x, y};
                    }
            EXPECT_EQ(best, spots[i]) << a.name;
        }
        // A bright flat: prescan and serial/parallel overscan hold bias structure + read noise only.
        const RawExposure flat = inst.simulate(uniformImage(det, 60000.0), 1.0, 1.0, "r", ExposureKind::Flat, 50 + s, &rec);
        for (int i = 0; i < 8; ++i) {
            const Amplifier& a = det.amplifiers()[std::size_t(i)];
            const double var = std::pow(inst.readNoise(i) / inst.gain(i), 2) + 1.0 / 12;
            for (const Box2I& region : {a.rawPrescanBBox, a.rawSerialOverscanBBox, a.rawParallelOverscanBBox}) {
                double chi2 = 0, sum = 0;
                for (int v = region.minY(); v <= region.maxY(); ++v)
                    for (int u = region.minX(); u <= region.maxX(); ++u) {
                        const double r = flat.amplifiers[std::size_t(i)](u, v) - trueBias(inst, rec, i, u, v);
                        chi2 += r * r / var;
                        sum += r;
                    }
                const double n = double(region.area());
                EXPECT_NEAR(sum / n, 0.0, 5 * std::sqrt(var / n)) << a.name;
                EXPECT_NEAR(chi2 / n, 1.0, 6 * std::sqrt(2.0 / n)) << a.name;
            }
            // The data section does carry the signal.
            double dataMean = 0;
            const Box2I& d = a.rawDataBBox;
            for (int v = d.minY(); v <= d.maxY(); ++v)
                for (int u = d.minX(); u <= d.maxX(); ++u) dataMean += flat.amplifiers[std::size_t(i)](u, v) / double(d.area());
            EXPECT_GT(dataMean - inst.biasLevel(i), 0.8 * 60000.0 / inst.gain(i));
        }
    }
}

TEST(Simulate, SameSeedsGiveIdenticalRawsAndOtherSeedsOtherNoise) {
    const Detector& det = centralDetector();
    InstrumentConfig c;
    c.cosmicRayRatePerCm2PerS = 5.0;
    const DetectorInstrument a(det, c, focalRadius());
    const DetectorInstrument b(det, c, focalRadius());
    const ImageF incident = uniformImage(det, 1000.0);
    // Order of simulation and instance do not matter.
    const RawExposure x1 = a.simulate(incident, 30, 30, "r", ExposureKind::Science, 42);
    const RawExposure y1 = a.simulate(incident, 30, 30, "g", ExposureKind::Science, 43);
    const RawExposure y2 = b.simulate(incident, 30, 30, "g", ExposureKind::Science, 43);
    const RawExposure x2 = b.simulate(incident, 30, 30, "r", ExposureKind::Science, 42);
    for (int i = 0; i < 8; ++i) {
        EXPECT_TRUE(x1.amplifiers[std::size_t(i)].identical(x2.amplifiers[std::size_t(i)]));
        EXPECT_TRUE(y1.amplifiers[std::size_t(i)].identical(y2.amplifiers[std::size_t(i)]));
    }
    EXPECT_EQ(x1.metadata, x2.metadata);
    EXPECT_EQ(x1.visitInfo, x2.visitInfo);
    // A different exposure seed changes the noise everywhere, not the expectation.
    const RawExposure z = a.simulate(incident, 30, 30, "r", ExposureKind::Science, 44);
    for (int i = 0; i < 8; ++i) {
        const auto& p = x1.amplifiers[std::size_t(i)];
        const auto& q = z.amplifiers[std::size_t(i)];
        std::int64_t same = 0, n = 0;
        std::vector<int> diffs;
        for (int v = 0; v < p.height(); ++v)
            for (int u = 0; u < p.width(); ++u) {
                same += p(u, v) == q(u, v);
                diffs.push_back(p(u, v) - q(u, v));
                ++n;
            }
        EXPECT_LT(double(same) / double(n), 0.2);
        // Median difference ~0 (cosmic rays land elsewhere, so the mean is not a fair test).
        std::nth_element(diffs.begin(), diffs.begin() + diffs.size() / 2, diffs.end());
        EXPECT_NEAR(diffs[diffs.size() / 2], 0.0, 4.0);
    }
    // A different instrument seed changes the instrument.
    InstrumentConfig other = c;
    other.seed = 2;
    const RawExposure w = DetectorInstrument(det, other, focalRadius()).simulate(incident, 30, 30, "r", ExposureKind::Science, 42);
    EXPECT_FALSE(w.amplifiers[0].identical(x1.amplifiers[0]));
}

TEST(Simulate, CalibrationHelpersAndBadInput) {
    const Detector& det = centralDetector();
    InstrumentConfig c;
    c.flatIlluminationByBand["u"] = 5000.0;
    const ImageF flatR = makeCalibrationIncident(det, ExposureKind::Flat, "r", c);
    const ImageF flatU = makeCalibrationIncident(det, ExposureKind::Flat, "u", c);
    const ImageF bias = makeCalibrationIncident(det, ExposureKind::Bias, "r", c);
    EXPECT_EQ(flatR.bbox(), det.bbox());
    EXPECT_EQ(flatR(10, 10), float(c.flatIlluminationElectrons));
    EXPECT_EQ(flatU(10, 10), 5000.0f);
    EXPECT_EQ(bias(10, 10), 0.0f);
    EXPECT_THROW(makeCalibrationIncident(det, ExposureKind::Science, "r", c), LogicError);
    EXPECT_THROW(calibrationTiming(ExposureKind::Science, c), LogicError);
    EXPECT_EQ(calibrationTiming(ExposureKind::Bias, c).darkTimeS, 0.0);
    EXPECT_EQ(calibrationTiming(ExposureKind::Flat, c).exposureTimeS, c.flatExposureTimeS);
    EXPECT_EQ(exposureKindName(ExposureKind::Dark), "dark");
    EXPECT_EQ(exposureKindImgType(ExposureKind::Science), "OBJECT");

    const DetectorInstrument inst(det, c, focalRadius());
    EXPECT_THROW(inst.simulate(ImageF(10, 10), 1, 1, "r", ExposureKind::Science, 1), InvalidInputError);
    EXPECT_THROW(inst.simulate(ImageF(), 1, 1, "r", ExposureKind::Flat, 1), InvalidInputError);
    EXPECT_THROW(inst.simulate(flatR, -1, 1, "r", ExposureKind::Science, 1), InvalidInputError);
    EXPECT_THROW(inst.simulate(flatR, 1, std::nan(""), "r", ExposureKind::Science, 1), InvalidInputError);
    // NaN and negative incident values count as no light; the raw stays in the ADC range.
    ImageF weird = uniformImage(det, 100.0);
    weird(3, 3) = std::nanf("");
    weird(4, 4) = -1e6f;
    weird(5, 5) = 1e12f;
    const RawExposure raw = inst.simulate(weird, 1, 1, "r", ExposureKind::Science, 9);
    EXPECT_NO_THROW(raw.validate(det));
    EXPECT_EQ(raw.detectorId, det.id());
    EXPECT_EQ(raw.visitInfo.exposureTimeS, 1.0);
}

// Not a test: times one LSSTCam-size detector (4072 x 4000, 16 amplifiers). Run with
// --gtest_also_run_disabled_tests --gtest_filter='*FullDetector*'.
TEST(Simulate, DISABLED_FullDetectorTiming) {
    CameraConfig cc;
    cc.nDetectors = 1;
    const auto camera = makeLsstLikeCamera(cc);
    const Detector& det = camera->detector(0);
    using clock = std::chrono::steady_clock;
    auto t0 = clock::now();
    const DetectorInstrument inst(det, InstrumentConfig{}, 300.0);
    auto t1 = clock::now();
    (void)inst.flat("r");
    auto t2 = clock::now();
    const ImageF incident = uniformImage(det, 1500.0);
    const RawExposure raw = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, 1);
    auto t3 = clock::now();
    const RawExposure raw2 = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, 2);
    auto t4 = clock::now();
    auto s = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("construct %.3f s, flat(r) %.3f s, simulate %.3f s, simulate (flat cached) %.3f s\n", s(t0, t1),
                s(t1, t2), s(t2, t3), s(t3, t4));
    EXPECT_EQ(raw.amplifiers.size(), 16u);
    EXPECT_EQ(raw2.amplifiers.size(), 16u);
}
