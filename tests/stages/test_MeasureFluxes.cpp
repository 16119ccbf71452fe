// Aperture, Kron and local-sky measurements and extendedness against injected truth (many seeds):
// stars drawn with the true PSF and exponential disks (core/Render.h addGalaxy), Poisson + read noise,
// variance plane = expected variance.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>

#include "core/MoffatPsf.h"
#include "core/Psf.h"
#include "core/Render.h"
#include "stages/measure/ExtendednessPlugin.h"
#include "stages/measure/SingleFrameMeasurement.h"

using namespace drp;

namespace {

constexpr double kPixelScale = 0.2;  // arcsec per pixel

struct Injected {
    Point2D pos;
    double flux;
    bool galaxy;
    double hlrArcsec;
};

struct Scene {
    Exposure exposure;
    FootprintSet footprints;
    std::vector<Injected> truth;
};

/// Sources on a grid (one per `spacing` cell, random offsets of +-3 px); `draw(k, rng)` picks each one's
/// flux, type and size. Sky-subtracted image; `skyResidual` is added to every pixel (a background error).
template <typename Draw>
Scene makeScene(std::uint64_t seed, const std::shared_ptr<const Psf>& psf, int grid, int spacing, Draw draw,
                bool noiseless = false, double skyResidual = 0.0) {
    const double sky = 1000.0, readNoise = 9.0;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> off(-3.0, 3.0), ell(-0.3, 0.3);
    const int size = grid * spacing;
    MaskedImageF mi(Box2I({0, 0}, size, size));
    ImageF model(mi.bbox());
    Scene s;
    const Eigen::Matrix2d jac = Eigen::Matrix2d::Identity() / kPixelScale;
    std::vector<std::shared_ptr<const Footprint>> fps;
    for (int j = 0; j < grid; ++j)
        for (int i = 0; i < grid; ++i) {
            const Point2D c{spacing * (i + 0.5) + off(rng), spacing * (j + 0.5) + off(rng)};
            Injected in = draw(rng);
            in.pos = c;
            if (in.galaxy) {
                GalaxyShape shape;
                shape.bulgeFraction = 0.0;
                shape.diskHalfLightRadiusArcsec = in.hlrArcsec;
                shape.e1 = ell(rng);
                shape.e2 = ell(rng);
                addGalaxy(model, c, in.flux, shape, jac, *psf);
            } else {
                addPointSource(model, c, in.flux, *psf);
            }
            s.truth.push_back(in);
            const Point2I ci{int(std::lround(c.x)), int(std::lround(c.y))};
            PeakRecord peak;
            peak.id = std::int64_t(s.truth.size());
            peak.ix = ci.x, peak.iy = ci.y, peak.x = ci.x, peak.y = ci.y;
            fps.push_back(std::make_shared<const Footprint>(SpanSet::fromShape(spacing / 3, Stencil::CIRCLE, ci),
                                                            std::vector<PeakRecord>{peak}));
        }
    std::normal_distribution<double> gauss(0.0, readNoise);
    for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x) {
            const double mu = model(x, y) + sky + skyResidual;
            double v = model(x, y) + skyResidual;
            if (!noiseless) {
                std::poisson_distribution<long> pois(mu);
                v = double(pois(rng)) - sky + gauss(rng);
            }
            mi.image()(x, y) = float(v);
            mi.variance()(x, y) = float(mu + readNoise * readNoise);
        }
    s.exposure = Exposure(mi, nullptr, psf);
    s.footprints = FootprintSet(std::move(fps), mi.bbox());
    return s;
}

std::shared_ptr<const Psf> moffat() { return MoffatPsf::make(3.5, 3.5); }

}  // namespace

TEST(MeasureFluxes, ApertureFluxIsTheEnclosedPsfFraction) {
    // Noiseless stars: apFlux_r = F x (sum of the PSF image inside the circle, exact overlap) to 1e-6,
    // and the largest aperture holds the whole flux.
    SingleFrameMeasurement meas(MeasurementConfig{});
    auto psf = moffat();
    auto draw = [](std::mt19937_64&) { return Injected{{}, 1e5, false, 0}; };
    Scene s = makeScene(11, psf, 4, 90, draw, /*noiseless=*/true);
    const Table t = meas.measure(s.exposure, s.footprints, 1);
    for (double r : meas.config().apertureRadii) {
        auto ap = t.column<double>("apFlux_" + apertureName(r));
        for (std::size_t i = 0; i < t.size(); ++i) {
            const double f = ExtendednessPlugin::psfEnclosedFraction(psf->computeImage(s.truth[i].pos), s.truth[i].pos, r);
            EXPECT_NEAR(ap[i], s.truth[i].flux * f, 1e-6 * s.truth[i].flux) << "r = " << r;
            if (r >= 25) {
                EXPECT_NEAR(ap[i] / s.truth[i].flux, 1.0, 1e-6);
            }
        }
    }
}

TEST(MeasureFluxes, ApertureErrorsMatchTheScatter) {
    // Pulls (apFlux_r - F f(r)) / apFlux_rErr over 480 stars and 15 seeds: mean 0, stdev 1 +- 0.1.
    SingleFrameMeasurement meas(MeasurementConfig{});
    auto psf = moffat();
    auto draw = [](std::mt19937_64& rng) {
        std::uniform_real_distribution<double> lf(std::log(3e3), std::log(1e6));
        return Injected{{}, std::exp(lf(rng)), false, 0};
    };
    const std::vector<double> radii = {3, 6, 12, 25};
    std::vector<double> sum(radii.size()), sum2(radii.size());
    double n = 0;
    for (std::uint64_t seed = 300; seed < 315; ++seed) {
        Scene s = makeScene(seed, psf, 6, 60, draw);
        const Table t = meas.measure(s.exposure, s.footprints, 1);
        for (std::size_t i = 0; i < t.size(); ++i) {
            const Point2D c{t.column<double>("x")[i], t.column<double>("y")[i]};
            for (std::size_t k = 0; k < radii.size(); ++k) {
                const std::string col = "apFlux_" + apertureName(radii[k]);
                // The aperture sits at the measured centroid: compare with the PSF light inside it there.
                const double f = ExtendednessPlugin::psfEnclosedFraction(psf->computeImage(s.truth[i].pos), c, radii[k]);
                const double pull = (t.column<double>(col)[i] - s.truth[i].flux * f) / t.column<double>(col + "Err")[i];
                sum[k] += pull, sum2[k] += pull * pull;
            }
            n += 1;
        }
    }
    for (std::size_t k = 0; k < radii.size(); ++k) {
        const double mean = sum[k] / n, sd = std::sqrt(sum2[k] / n - mean * mean);
        std::cout << "[apFlux_" << apertureName(radii[k]) << "] " << n << " stars: pull mean " << mean << ", stdev " << sd
                  << "\n";
        EXPECT_LT(std::fabs(mean), 0.15);
        EXPECT_NEAR(sd, 1.0, 0.1);
    }
}

TEST(MeasureFluxes, KronFluxRecoversMostOfTheLightOfExponentialDisks) {
    // Exponential disks (half-light radius 0.4-1.5 arcsec at 0.2 arcsec/pixel, |e| < 0.42) at S/N ~ 300:
    // kronFlux / true flux > 0.9 for every galaxy.
    SingleFrameMeasurement meas(MeasurementConfig{});
    auto draw = [](std::mt19937_64& rng) {
        std::uniform_real_distribution<double> hlr(0.4, 1.5);
        return Injected{{}, 2e5, true, hlr(rng)};
    };
    double sumFrac = 0, minFrac = 10, n = 0;
    for (std::uint64_t seed = 400; seed < 405; ++seed) {
        Scene s = makeScene(seed, moffat(), 4, 110, draw);
        const Table t = meas.measure(s.exposure, s.footprints, 1);
        auto kf = t.column<double>("kronFlux"), kfe = t.column<double>("kronFluxErr");
        auto kr = t.column<double>("kronRadius");
        auto flag = t.column<bool>("kronFlux_flag");
        for (std::size_t i = 0; i < t.size(); ++i) {
            ASSERT_FALSE(flag[i]);
            const double frac = kf[i] / s.truth[i].flux;
            EXPECT_GT(frac, 0.9) << "hlr " << s.truth[i].hlrArcsec << " R_kron " << kr[i] << " err " << kfe[i];
            EXPECT_LT(frac, 1.0 + 4 * kfe[i] / s.truth[i].flux);
            sumFrac += frac, minFrac = std::min(minFrac, frac), n += 1;
        }
    }
    std::cout << "[kronFlux] " << n << " exponential disks: mean fraction " << sumFrac / n << ", min " << minFrac << "\n";
}

TEST(MeasureFluxes, LocalSkyFindsAResidualBackground) {
    // A residual background of 7 e-/pixel under stars: sky recovers it, skyErr matches the scatter.
    SingleFrameMeasurement meas(MeasurementConfig{});
    auto draw = [](std::mt19937_64&) { return Injected{{}, 3e4, false, 0}; };
    double sum = 0, sum2 = 0, n = 0;
    for (std::uint64_t seed = 500; seed < 506; ++seed) {
        Scene s = makeScene(seed, moffat(), 5, 70, draw, false, 7.0);
        const Table t = meas.measure(s.exposure, s.footprints, 1);
        auto sky = t.column<double>("sky"), err = t.column<double>("skyErr");
        auto flag = t.column<bool>("sky_flag");
        for (std::size_t i = 0; i < t.size(); ++i) {
            ASSERT_FALSE(flag[i]);
            // Annuli of neighbouring stars share no pixels (spacing 70 > 2 x 30 only partly): pulls are
            // nearly independent.
            const double pull = (sky[i] - 7.0) / err[i];
            sum += pull, sum2 += pull * pull, n += 1;
        }
    }
    const double mean = sum / n, sd = std::sqrt(sum2 / n - mean * mean);
    std::cout << "[sky] " << n << " sources: pull mean " << mean << ", stdev " << sd << "\n";
    EXPECT_LT(std::fabs(mean), 0.3);
    EXPECT_NEAR(sd, 1.0, 0.2);
}

TEST(MeasureFluxes, LocalSkyEqualsTheReferenceStatistics) {
    // The sky plugin (branch-free annulus gather, quickselect) against the plain computation with
    // std::nth_element of the documented statistic, bit for bit: the median and MAD start, then
    // skyClipIter sigma-clipped means. Values rounded to integers (many ties for the selection), some
    // annulus pixels masked DETECTED (excluded) or NaN, sources near the edges.
    MeasurementConfig cfg;
    cfg.plugins = {"sky"};
    SingleFrameMeasurement meas(cfg);
    auto draw = [](std::mt19937_64&) { return Injected{{}, 3e4, false, 0}; };
    for (std::uint64_t seed = 700; seed < 704; ++seed) {
        Scene s = makeScene(seed, moffat(), 4, 50, draw, false, 3.0);
        MaskedImageF& mi = s.exposure.maskedImage();
        const MaskPixel detected = MaskPixel(1u << mi.mask().addPlane("DETECTED"));
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int y = 0; y < mi.height(); ++y)
            for (int x = 0; x < mi.width(); ++x) {
                mi.image()(x, y) = std::round(mi.image()(x, y) / (seed % 2 ? 1.0f : 20.0f));
                const double p = u(rng);
                if (p < 0.05) mi.mask()(x, y) |= detected;
                if (p > 0.998) mi.image()(x, y) = std::nanf("");
            }
        const Table t = meas.measure(s.exposure, s.footprints, 1);
        auto sky = t.column<double>("sky"), err = t.column<double>("skyErr");
        for (std::size_t i = 0; i < t.size(); ++i) {
            const double cx = s.footprints[i].peaks()[0].x, cy = s.footprints[i].peaks()[0].y;
            std::vector<double> values;
            for (int y = 0; y < mi.height(); ++y)
                for (int x = 0; x < mi.width(); ++x) {
                    const double dx = x - cx, dy = y - cy, r2 = dx * dx + dy * dy;
                    if (r2 <= cfg.skyInnerRadius * cfg.skyInnerRadius || r2 > cfg.skyOuterRadius * cfg.skyOuterRadius)
                        continue;
                    const float d = mi.image()(x, y), v = mi.variance()(x, y);
                    if (!std::isfinite(d) || !std::isfinite(v) || v < 0 || (mi.mask()(x, y) & detected)) continue;
                    values.push_back(d);
                }
            const std::size_t n = values.size();
            ASSERT_GE(n, std::size_t(cfg.skyMinPixels));
            std::vector<double> work(values);
            std::nth_element(work.begin(), work.begin() + n / 2, work.end());
            double centre = work[n / 2];
            for (double& w : work) w = std::fabs(w - centre);
            std::nth_element(work.begin(), work.begin() + n / 2, work.end());
            double width = 1.4826 * work[n / 2], mean = centre, stdev = width;
            std::size_t kept = n;
            if (!(width > 0)) {
                double s1 = 0, s2 = 0;
                for (double v : values) s1 += v, s2 += v * v;
                mean = s1 / n;
                stdev = std::sqrt(std::max(0.0, (s2 - n * mean * mean) / std::max<double>(1, n - 1)));
            } else {
                for (int it = 0; it < cfg.skyClipIter; ++it) {
                    double s1 = 0, s2 = 0;
                    std::size_t k = 0;
                    for (double v : values)
                        if (std::fabs(v - centre) <= cfg.skyClipSigma * width) s1 += v, s2 += v * v, ++k;
                    if (k < 2) break;
                    mean = s1 / k;
                    stdev = std::sqrt(std::max(0.0, (s2 - k * mean * mean) / (k - 1)));
                    kept = k, centre = mean, width = stdev;
                    if (!(width > 0)) break;
                }
            }
            EXPECT_EQ(sky[i], mean) << "seed " << seed << " source " << i;
            EXPECT_EQ(err[i], stdev / std::sqrt(double(kept))) << "seed " << seed << " source " << i;
        }
    }
}

TEST(MeasureFluxes, LocalSkyWithoutUsablePixelsIsFlagged) {
    // Every annulus pixel excluded (DETECTED): no sky, sky_flag and sky_flag_noGoodPixels set.
    MeasurementConfig cfg;
    cfg.plugins = {"sky"};
    SingleFrameMeasurement meas(cfg);
    auto draw = [](std::mt19937_64&) { return Injected{{}, 3e4, false, 0}; };
    Scene s = makeScene(710, moffat(), 4, 50, draw, false, 3.0);
    MaskedImageF& mi = s.exposure.maskedImage();
    const MaskPixel detected = MaskPixel(1u << mi.mask().addPlane("DETECTED"));
    for (int y = 0; y < mi.height(); ++y)
        for (int x = 0; x < mi.width(); ++x) mi.mask()(x, y) |= detected;
    const Table t = meas.measure(s.exposure, s.footprints, 1);
    ASSERT_GT(t.size(), 0u);
    auto sky = t.column<double>("sky");
    auto flag = t.column<bool>("sky_flag"), none = t.column<bool>("sky_flag_noGoodPixels");
    for (std::size_t i = 0; i < t.size(); ++i) {
        EXPECT_TRUE(std::isnan(sky[i])) << i;
        EXPECT_TRUE(flag[i]) << i;
        EXPECT_TRUE(none[i]) << i;
    }
}

TEST(MeasureFluxes, ExtendednessSeparatesStarsFromGalaxies) {
    // Stars (S/N 20-1000) are 0; exponential disks with half-light radius >= 0.5 arcsec and PSF S/N > 30
    // are 1 (>= 95% of each).
    SingleFrameMeasurement meas(MeasurementConfig{});
    auto draw = [](std::mt19937_64& rng) {
        std::uniform_real_distribution<double> u(0, 1), lf(std::log(3e3), std::log(1e6)), hlr(0.5, 1.5);
        const bool galaxy = u(rng) < 0.5;
        return Injected{{}, std::exp(lf(rng)), galaxy, galaxy ? hlr(rng) : 0.0};
    };
    double stars = 0, starsExtended = 0, galaxies = 0, galaxiesExtended = 0, faint = 0, faintExtended = 0;
    for (std::uint64_t seed = 600; seed < 610; ++seed) {
        Scene s = makeScene(seed, moffat(), 5, 90, draw);
        const Table t = meas.measure(s.exposure, s.footprints, 1);
        auto ext = t.column<double>("extendedness");
        auto pf = t.column<double>("psfFlux"), pfe = t.column<double>("psfFluxErr");
        for (std::size_t i = 0; i < t.size(); ++i) {
            ASSERT_TRUE(ext[i] == 0.0 || ext[i] == 1.0);
            if (!s.truth[i].galaxy) {
                stars += 1, starsExtended += ext[i];
            } else if (pf[i] / pfe[i] > 30) {
                galaxies += 1, galaxiesExtended += ext[i];
            } else {
                faint += 1, faintExtended += ext[i];
            }
        }
    }
    std::cout << "[extendedness] stars " << starsExtended << " / " << stars << " extended; galaxies (S/N > 30) "
              << galaxiesExtended << " / " << galaxies << " extended; fainter galaxies " << faintExtended << " / "
              << faint << "\n";
    ASSERT_GT(stars, 50);
    ASSERT_GT(galaxies, 50);
    EXPECT_LE(starsExtended / stars, 0.05);
    EXPECT_GE(galaxiesExtended / galaxies, 0.95);
}
