// The pure kernels of single-frame measurement against exact answers: exact circle/pixel overlap,
// adaptive moments of Gaussians of known covariance, the Gaussian-weighted centroid on noiseless
// sources, and the config's validation.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Psf.h"
#include "core/Render.h"
#include "stages/measure/AdaptiveMoments.h"
#include "stages/measure/CircleOverlap.h"
#include "stages/measure/GaussianCentroid.h"
#include "stages/measure/MeasurementConfig.h"

using namespace drp;

TEST(CircleOverlap, PixelWeightsSumToTheDiskArea) {
    // Sum of the exact pixel fractions over the plane = pi r^2 for any centre, to rounding.
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> off(-0.5, 0.5), rad(0.3, 40.0);
    for (int t = 0; t < 200; ++t) {
        const double cx = off(rng), cy = off(rng), r = rad(rng);
        const int n = int(std::ceil(r)) + 2;
        double sum = 0;
        for (int y = -n; y <= n; ++y)
            for (int x = -n; x <= n; ++x) sum += pixelCircleFraction(x - cx, y - cy, r);
        EXPECT_NEAR(sum, std::numbers::pi * r * r, 1e-9 * r * r) << "r = " << r;
    }
}

TEST(CircleOverlap, MatchesBruteForceSubsampling) {
    // Random rectangles against 2000x2000 sub-sampling (error ~ perimeter / 2000 per unit area).
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> u(-3.0, 3.0), w(0.1, 2.0), rad(0.2, 3.0);
    for (int t = 0; t < 30; ++t) {
        const double x0 = u(rng), y0 = u(rng), x1 = x0 + w(rng), y1 = y0 + w(rng), r = rad(rng);
        const int m = 2000;
        long inside = 0;
        for (int j = 0; j < m; ++j)
            for (int i = 0; i < m; ++i) {
                const double x = x0 + (x1 - x0) * (i + 0.5) / m, y = y0 + (y1 - y0) * (j + 0.5) / m;
                if (x * x + y * y <= r * r) ++inside;
            }
        const double brute = (x1 - x0) * (y1 - y0) * double(inside) / (double(m) * m);
        EXPECT_NEAR(circleRectangleOverlap(x0, x1, y0, y1, r), brute, 2e-3 * (x1 - x0) * (y1 - y0) + 1e-6);
    }
    // Exact special cases.
    EXPECT_NEAR(circleRectangleOverlap(-5, 5, -5, 5, 1.0), std::numbers::pi, 1e-12);
    EXPECT_NEAR(circleRectangleOverlap(0, 5, 0, 5, 2.0), std::numbers::pi, 1e-12);  // a quarter disk
    EXPECT_DOUBLE_EQ(circleRectangleOverlap(2, 3, 2, 3, 1.0), 0.0);
    EXPECT_DOUBLE_EQ(pixelCircleFraction(0, 0, 5.0), 1.0);
}

TEST(CircleOverlap, TheGridFormEqualsThePerPixelForm) {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> off(-0.5, 0.5), rad(0.4, 30.0);
    for (int t = 0; t < 40; ++t) {
        const Point2D c{50 + off(rng), 40 + off(rng)};
        const double r = rad(rng);
        const Box2I box = Box2I::fromCorners({int(c.x - r) - 2, int(c.y - r) - 2}, {int(c.x + r) + 2, int(c.y + r) + 2});
        CirclePixelGrid grid(c, r, box);
        for (int y = box.minY(); y <= box.maxY(); ++y)
            for (int x = box.minX(); x <= box.maxX(); ++x) {
                ASSERT_NEAR(grid.fraction(x, y), pixelCircleFraction(x - c.x, y - c.y, r), 1e-12) << x << "," << y;
            }
    }
}

TEST(AdaptiveMoments, RecoverTheCovarianceOfGaussians) {
    // Elliptical Gaussians of known covariance (GaussianPsf: ixx, iyy, ixy from sigma, e1, e2) drawn at
    // random sub-pixel centres: the adaptive moments equal the covariance to 1e-3 (relative to the trace).
    // Minor-axis sigma >= 1.5 pixels: below that the sampled (weight x light) product aliases at the
    // 1e-3 level (a sampling limit, not of the algorithm; a 1-pixel Gaussian is off by ~1%).
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> sig(2.0, 6.0), ell(-0.5, 0.5), off(-0.5, 0.5);
    double worst = 0;
    for (int t = 0; t < 60; ++t) {
        const double s = sig(rng), e1 = ell(rng), e2 = 0.6 * ell(rng);
        GaussianPsf g(s, 0, e1, e2);
        const PsfShape truth = g.computeShape();
        ImageF img(Box2I({0, 0}, 121, 121));
        const Point2D c{60 + off(rng), 60 + off(rng)};
        addPointSource(img, c, 1000.0, g);
        const AdaptiveMomentsResult r = computeAdaptiveMoments(img, c, SecondMoments::circle(2.0));
        ASSERT_TRUE(r.converged) << t;
        const double tr = truth.ixx + truth.iyy;
        worst = std::max({worst, std::fabs(r.moments.xx - truth.ixx) / tr, std::fabs(r.moments.yy - truth.iyy) / tr,
                          std::fabs(r.moments.xy - truth.ixy) / tr});
    }
    EXPECT_LT(worst, 1e-3);
    std::cout << "[adaptive moments] worst relative error over 60 Gaussians: " << worst << "\n";
}

TEST(AdaptiveMoments, FailuresAreReportedNotThrown) {
    ImageF img(Box2I({0, 0}, 31, 31));
    AdaptiveMomentsResult r = computeAdaptiveMoments(img, {15, 15}, SecondMoments::circle(2.0));
    EXPECT_TRUE(r.noPixels);  // zero light
    img.fill(std::nanf(""));
    r = computeAdaptiveMoments(img, {15, 15}, SecondMoments::circle(2.0));
    EXPECT_TRUE(r.failed());
    r = computeAdaptiveMoments(img, {std::nan(""), 3}, SecondMoments::circle(2.0));
    EXPECT_TRUE(r.failed());
    img.fill(1.0f);  // flat: the weight grows until the image edge truncates the window
    r = computeAdaptiveMoments(img, {15, 15}, SecondMoments::circle(2.0));
    EXPECT_TRUE(r.failed() || !r.converged || r.truncated);
}

TEST(GaussianCentroid, NoiselessSourcesAreCentredExactly) {
    // Gaussian and Moffat PSFs, round and elliptical, at random sub-pixel positions: the weighted
    // centroid is the symmetry centre (< 1e-4 pixel), from a start up to a pixel away.
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<double> off(-0.5, 0.5), start(-1.0, 1.0);
    std::vector<std::shared_ptr<const Psf>> psfs = {GaussianPsf::make(1.5), GaussianPsf::make(2.2, 0, 0.2, -0.1),
                                                    MoffatPsf::make(3.5, 3.5), MoffatPsf::make(4.0, 2.5, 0.1, 0.05)};
    double worst = 0;
    for (const auto& psf : psfs) {
        for (int t = 0; t < 25; ++t) {
            MaskedImageF mi(Box2I({0, 0}, 61, 61));
            const Point2D c{30 + off(rng), 30 + off(rng)};
            addPointSource(mi.image(), c, 1e4, *psf);
            mi.variance().fill(1.0f);
            GaussianCentroidControl ctl;
            ctl.sigma = psf->computeSigma();
            const GaussianCentroidResult r = measureGaussianCentroid(mi, {c.x + start(rng), c.y + start(rng)}, ctl);
            ASSERT_FALSE(r.failed());
            worst = std::max({worst, std::fabs(r.position.x - c.x), std::fabs(r.position.y - c.y)});
        }
    }
    EXPECT_LT(worst, 1e-4);
}

TEST(GaussianCentroid, GarbageNeverThrows) {
    MaskedImageF mi(Box2I({0, 0}, 21, 21));
    GaussianCentroidControl ctl;
    EXPECT_TRUE(measureGaussianCentroid(mi, {10, 10}, ctl).failed());  // no light
    mi.image().fill(std::nanf(""));
    EXPECT_TRUE(measureGaussianCentroid(mi, {10, 10}, ctl).failed());
    EXPECT_TRUE(measureGaussianCentroid(mi, {-100, 10}, ctl).failed());
    EXPECT_TRUE(measureGaussianCentroid(mi, {std::nan(""), 10}, ctl).failed());
}

TEST(MeasurementConfig, ValidatesAndNamesApertures) {
    MeasurementConfig c;
    EXPECT_NO_THROW(c.validate());
    EXPECT_EQ(apertureName(3.0), "3");
    EXPECT_EQ(apertureName(4.5), "4_5");
    EXPECT_EQ(apertureName(12.25), "12_25");
    MeasurementConfig bad = c;
    bad.apertureRadii = {3, 2};
    EXPECT_THROW(bad.validate(), ConfigError);
    bad = c;
    bad.plugins = {"centroid", "bogus"};
    EXPECT_THROW(bad.validate(), ConfigError);
    bad = c;
    bad.plugins = {"extendedness", "psfFlux", "apFlux"};
    EXPECT_THROW(bad.validate(), ConfigError);
    bad = c;
    bad.extendednessApertureRadius = 7;
    EXPECT_THROW(bad.validate(), ConfigError);
    bad = c;
    bad.skyInnerRadius = 40;
    EXPECT_THROW(bad.validate(), ConfigError);
    EXPECT_TRUE(c == MeasurementConfig{});
    EXPECT_FALSE(c == bad);
}
