// Science checks of the simulator against its own truth (many seeds).
#include <gtest/gtest.h>

#include <cmath>

#include "core/MoffatPsf.h"
#include "core/Statistics.h"
#include "drivers/sim/Simulator.h"
#include "sky/SpherePoint.h"

using namespace drp;

namespace {
// An instrument with no signature but noise: flat = 1, no dark structure, no crosstalk, no cosmic rays.
std::vector<std::string> cleanInstrument() {
    return {"instrument.pixel_response_sigma=0", "instrument.vignetting_amplitude=0",
            "instrument.amp_pattern_amplitude=0", "instrument.band_gradient_amplitude=0",
            "instrument.nonlinearity_coeff=0", "instrument.crosstalk_coeff=0", "instrument.hot_pixel_fraction=0",
            "instrument.bad_columns_per_detector=0", "instrument.cosmic_ray_rate_per_cm2_per_s=0",
            "instrument.bias_row_noise_adu=0", "instrument.bias_row_pattern_adu=0",
            "instrument.bias_column_pattern_adu=0", "instrument.bias_drift_adu=0", "instrument.dark_current_e_per_s=0",
            "observing.visits_per_band=1", "observing.bands=r"};
}
}  // namespace

TEST(Simulator, PixelNoiseMatchesTheTruthVariance) {
    // With every instrument effect but noise turned off, (raw - bias) * gain - incident over
    // sqrt(incident + readNoise^2) must be a unit-variance variable: chi^2 per pixel = 1.
    for (std::uint64_t seed : {11u, 12u, 13u, 14u}) {
        auto sets = cleanInstrument();
        sets.push_back("seed=" + std::to_string(seed));
        SimContext ctx(loadSimConfig("tiny", {}, sets));
        for (int det : {0, 1}) {
            SimulatedExposure sim = simulateScienceExposure(ctx, 0, det, /*keepIncident=*/true);
            const Detector& d = ctx.camera().detector(det);
            const DetectorInstrument& instr = ctx.instrument(det);
            ImageI data = sim.raw.assembleData(d);
            double chi2 = 0, n = 0;
            for (std::size_t a = 0; a < d.amplifiers().size(); ++a) {
                const Box2I& box = d.amplifiers()[a].bbox;
                double g = instr.gain(int(a)), rn = instr.readNoise(int(a)), bias = instr.biasLevel(int(a));
                for (int y = box.minY(); y <= box.maxY(); ++y)
                    for (int x = box.minX(); x <= box.maxX(); ++x) {
                        double e = (data.atParent({x, y}) - bias) * g;
                        double mu = sim.incident.atParent({x, y});
                        if (mu > 50000) continue;  // keep clear of saturation
                        chi2 += (e - mu) * (e - mu) / (mu + rn * rn + g * g / 12.0);
                        n += 1;
                    }
            }
            EXPECT_NEAR(chi2 / n, 1.0, 0.02) << "seed " << seed << " detector " << det << " over " << n << " pixels";
        }
    }
}

TEST(Simulator, TruthAgreesWithTheImageAndTheWcs) {
    for (std::uint64_t seed : {21u, 22u, 23u}) {
        SimContext ctx(loadSimConfig("tiny", {}, {"seed=" + std::to_string(seed)}));
        for (std::size_t v = 0; v < ctx.visits().size(); ++v) {
            SimulatedExposure sim = simulateScienceExposure(ctx, v, 0, true);
            const Table& t = sim.truth;
            ASSERT_GT(t.size(), 0u);
            auto ra = t.column<double>("ra"), dec = t.column<double>("dec"), x = t.column<double>("x"),
                 y = t.column<double>("y"), el = t.column<double>("electrons"),
                 inImage = t.column<double>("electronsInImage");
            auto type = t.column<std::int32_t>("type");
            const Box2I box = ctx.camera().detector(0).bbox();
            double sumIn = 0;
            for (std::size_t i = 0; i < t.size(); ++i) {
                sumIn += inImage[i];
                if (type[i] == 4) continue;  // asteroids: x, y is the trail start
                Point2D p = sim.trueWcs->skyToPixel(SpherePoint::fromDegrees(ra[i], dec[i]));
                EXPECT_NEAR(p.x, x[i], 1e-6);
                EXPECT_NEAR(p.y, y[i], 1e-6);
                // Sources well inside the detector land entirely on it (flux conserved to 0.1%).
                if (x[i] > box.minX() + 60 && x[i] < box.maxX() - 60 && y[i] > box.minY() + 60 &&
                    y[i] < box.maxY() - 60) {
                    EXPECT_NEAR(inImage[i], el[i], 1e-3 * el[i] + 1e-6);
                }
            }
            // The incident image holds exactly the sky plus what the sources put on it.
            double total = 0, sky = 0;
            const auto& md = t.metadata();
            double s0 = md.getDouble("SKYELEC"), sx = md.getDouble("SKYDX"), sy = md.getDouble("SKYDY");
            for (int yy = 0; yy < box.height(); ++yy)
                for (int xx = 0; xx < box.width(); ++xx) {
                    total += sim.incident(xx, yy);
                    sky += std::max(0.0, s0 + sx * xx + sy * yy);
                }
            EXPECT_NEAR(total - sky, sumIn, 1e-4 * total);
        }
    }
}

TEST(Simulator, TruePsfIsRecordedAndFollowsTheFocalPlaneModel) {
    SimContext ctx(loadSimConfig("tiny", {}, {"seed=5"}));
    const VisitPlan& v = ctx.visits().front();
    for (int det : {0, 1}) {
        SimulatedExposure sim = simulateScienceExposure(ctx, 0, det);
        const auto& md = sim.truth.metadata();
        const auto& moffat = dynamic_cast<const MoffatPsf&>(*sim.psf);
        for (int c = 0; c < 6; ++c) {
            EXPECT_EQ(md.getDouble("PSFFWHM" + std::to_string(c)), moffat.fwhmCoefficients()[std::size_t(c)]);
        }
        // The quadratic fit reproduces the observing plan's focal-plane PSF model across the detector.
        const Detector& d = ctx.camera().detector(det);
        for (Point2D p : {Point2D{10, 10}, Point2D{250, 200}, Point2D{500, 390}}) {
            PsfAtPosition truth = psfAt(v, d.pixelToFocalPlane(p), ctx.config().observing);
            MoffatParameters m = moffat.parametersAt(p);
            EXPECT_NEAR(m.fwhm * ctx.pixelScaleArcsec(), truth.fwhmArcsec, 1e-4 * truth.fwhmArcsec);
            EXPECT_NEAR(m.e1, truth.e1, 1e-5);
            EXPECT_NEAR(m.e2, truth.e2, 1e-5);
        }
    }
}

TEST(Simulator, ExtinctionCloudsAndThroughputScaleTheSourceElectrons) {
    SimContext ctx(loadSimConfig("tiny", {}, {}));
    for (std::size_t v = 0; v < ctx.visits().size(); ++v) {
        const VisitPlan& vp = ctx.visits()[v];
        SimulatedExposure sim = simulateScienceExposure(ctx, v, 1);
        double elPerNjy = sim.truth.metadata().getDouble("ELPERNJY");
        auto flux = sim.truth.column<double>("flux"), el = sim.truth.column<double>("electrons");
        for (std::size_t i = 0; i < sim.truth.size(); ++i) {
            EXPECT_NEAR(el[i], flux[i] * elPerNjy, 1e-9 * el[i]);
        }
        // e-/nJy falls by the extinction, clouds and throughput offset relative to above the atmosphere.
        int b = simBandIndex(vp.band);
        double above = std::pow(10.0, -0.4 * (31.4 - ctx.config().observing.zeroPointMag[std::size_t(b)])) * vp.exposureTimeS;
        double dm = vp.extinctionMag + vp.cloudMag + sim.truth.metadata().getDouble("THRUPUT");
        EXPECT_NEAR(elPerNjy / above, std::pow(10.0, -0.4 * dm), 1e-9);
    }
}
