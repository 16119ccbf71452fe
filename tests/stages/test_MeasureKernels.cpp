// The pure kernels of single-frame measurement against exact answers: exact circle/pixel overlap,
// adaptive moments of Gaussians of known covariance, the Gaussian-weighted centroid on noiseless
// sources, the pixel-loop helpers (usablePixel, exactRowInterval against a scan) and the config's
// validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Psf.h"
#include "core/Render.h"
#include "stages/measure/AdaptiveMoments.h"
#include "stages/measure/ApertureFluxPlugin.h"
#include "stages/measure/CircleOverlap.h"
#include "stages/measure/GaussianCentroid.h"
#include "stages/measure/MeasurementConfig.h"
#include "stages/measure/MeasurementPlugin.h"

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

TEST(CircleOverlap, CoverIsTheCornerClassification) {
    // cover(): Inside exactly when the pixel's farthest point is within r, Outside exactly when its nearest
    // point is at r or beyond (computed here from the corners and the nearest point), and then fraction()
    // is 1, 0 or boundaryFraction(); random circles, some centred on integer and half-integer positions.
    std::mt19937_64 rng(6);
    std::uniform_real_distribution<double> off(-0.5, 0.5), rad(0.3, 12.0);
    for (int t = 0; t < 60; ++t) {
        Point2D c{20 + off(rng), -7 + off(rng)};
        if (t % 4 == 0) c = {20.0, -7.0};
        if (t % 4 == 1) c = {20.5, -7.0};
        const double r = t % 8 == 2 ? 2.5 : rad(rng);
        const Box2I box = Box2I::fromCorners({int(c.x - r) - 2, int(c.y - r) - 2}, {int(c.x + r) + 2, int(c.y + r) + 2});
        const CirclePixelGrid grid(c, r, box);
        for (int y = box.minY(); y <= box.maxY(); ++y)
            for (int x = box.minX(); x <= box.maxX(); ++x) {
                double far2 = 0, near2 = 0;
                for (double cx : {x - 0.5, x + 0.5})
                    for (double cy : {y - 0.5, y + 0.5})
                        far2 = std::max(far2, (cx - c.x) * (cx - c.x) + (cy - c.y) * (cy - c.y));
                const double nx = std::clamp(c.x, x - 0.5, x + 0.5) - c.x, ny = std::clamp(c.y, y - 0.5, y + 0.5) - c.y;
                near2 = nx * nx + ny * ny;
                const CirclePixelGrid::Cover cover = grid.cover(x, y);
                const CirclePixelGrid::Cover expected = far2 <= r * r   ? CirclePixelGrid::Cover::Inside
                                                        : near2 >= r * r ? CirclePixelGrid::Cover::Outside
                                                                         : CirclePixelGrid::Cover::Crossed;
                ASSERT_EQ(int(cover), int(expected)) << "t " << t << " pixel " << x << "," << y;
                const double want = cover == CirclePixelGrid::Cover::Inside    ? 1.0
                                    : cover == CirclePixelGrid::Cover::Outside ? 0.0
                                                                               : grid.boundaryFraction(x, y);
                EXPECT_EQ(grid.fraction(x, y), want);
            }
    }
}

TEST(CircleOverlap, TangentEdgesAndAlignedCentres) {
    // A pixel edge tangent to the circle (|y| = r): the piece through the tangent point is curved, not
    // flat. The unit pixel [-0.5, 0.5] x [-4.5, -3.5] under r = 4.5 misses
    // int_{-1/2}^{1/2} (r - sqrt(r^2 - x^2)) dx.
    const double r = 4.5;
    const double missing = r - (0.5 * std::sqrt(r * r - 0.25) + r * r * std::asin(0.5 / r));
    EXPECT_NEAR(circleRectangleOverlap(-0.5, 0.5, -4.5, -3.5, r), 1.0 - missing, 1e-13);
    EXPECT_NEAR(pixelCircleFraction(0.0, -4.0, r), 1.0 - missing, 1e-13);
    // Integer and half-integer centres with integer and half-integer radii (every degenerate alignment of
    // pixel edges with the circle's extremes): the grid form equals the per-pixel form, and the weights
    // sum to the disk area.
    for (double cx : {0.0, 0.5}) {
        for (double cy : {0.0, 0.5}) {
            for (double rr : {0.5, 1.0, 1.5, 3.0, 4.5, 12.0, 17.5, 35.0}) {
                const Point2D c{100 + cx, 100 + cy};
                const Box2I box = Box2I::fromCorners({int(std::floor(c.x - rr - 0.5)), int(std::floor(c.y - rr - 0.5))},
                                                     {int(std::ceil(c.x + rr + 0.5)), int(std::ceil(c.y + rr + 0.5))});
                CirclePixelGrid grid(c, rr, box);
                double sum = 0;
                for (int y = box.minY(); y <= box.maxY(); ++y)
                    for (int x = box.minX(); x <= box.maxX(); ++x) {
                        const double f = grid.fraction(x, y);
                        ASSERT_NEAR(f, pixelCircleFraction(x - c.x, y - c.y, rr), 1e-12) << x << "," << y << " r " << rr;
                        sum += f;
                    }
                EXPECT_NEAR(sum, std::numbers::pi * rr * rr, 1e-10 * rr * rr) << "r " << rr;
            }
        }
    }
}

TEST(CircleOverlap, FastAperturesEqualThePerPixelSums) {
    // ApertureFluxPlugin::measureApertures (intervals per row, weights from the grid form, cumulative
    // bins) against the brute-force sum over every pixel with pixelCircleFraction: fluxes and variances to
    // rounding, the same truncation flags. Random centres (some on integer and half-integer positions),
    // unusable pixels (NaN value, NaN or negative variance, a bad mask bit) and image edges.
    std::mt19937_64 rng(17);
    std::uniform_real_distribution<double> pos(-5.0, 85.0), u(0.0, 1.0), val(-50.0, 5000.0);
    const std::vector<double> radii = MeasurementConfig{}.apertureRadii;
    for (int t = 0; t < 60; ++t) {
        MaskedImageF mi(Box2I({10, 20}, 80, 70));  // xy0 != 0
        for (int y = 0; y < 70; ++y)
            for (int x = 0; x < 80; ++x) {
                mi.image()(x, y) = float(val(rng));
                mi.variance()(x, y) = float(10 + 100 * u(rng));
                mi.mask()(x, y) = 0;
                const double p = u(rng);
                if (t % 3 == 0 && p < 0.004) mi.image()(x, y) = std::nanf("");
                if (t % 3 == 0 && p > 0.996) mi.variance()(x, y) = -1.0f;
                if (t % 3 == 1 && p < 0.005) mi.mask()(x, y) = 4;
                if (t % 3 == 1 && p > 0.999) mi.mask()(x, y) = 1;  // a bit that is not bad
            }
        Point2D c{10 + pos(rng), 20 + pos(rng)};
        if (t % 5 == 0) c = {std::floor(c.x), std::floor(c.y)};
        if (t % 5 == 1) c = {std::floor(c.x) + 0.5, std::floor(c.y)};
        const MaskPixel bad = 4 | 2;
        const ApertureFluxPlugin::Sums fast = ApertureFluxPlugin::measureApertures(mi, c, radii, bad);
        for (std::size_t k = 0; k < radii.size(); ++k) {
            const double r = radii[k];
            double f = 0, v = 0;
            bool truncated = c.x - r < 9.5 || c.x + r > 89.5 || c.y - r < 19.5 || c.y + r > 89.5;
            for (int y = 20; y < 90; ++y)
                for (int x = 10; x < 90; ++x) {
                    const double a = pixelCircleFraction(x - c.x, y - c.y, r);
                    if (a == 0) continue;
                    const float d = mi.image()(x - 10, y - 20), var = mi.variance()(x - 10, y - 20);
                    if (!std::isfinite(d) || !std::isfinite(var) || var < 0 || (mi.mask()(x - 10, y - 20) & bad)) {
                        truncated = true;
                        continue;
                    }
                    f += a * d;
                    v += a * a * var;
                }
            const double scale = 5000.0 * std::numbers::pi * (r + 1) * (r + 1);
            EXPECT_NEAR(fast.flux[k], f, 1e-12 * scale) << "t " << t << " r " << r;
            EXPECT_NEAR(fast.variance[k], v, 1e-12 * scale) << "t " << t << " r " << r;
            EXPECT_EQ(bool(fast.truncated[k]), truncated) << "t " << t << " r " << r;
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

TEST(MeasurementHelpers, UsablePixelIsTheDocumentedTest) {
    const float nan = std::nanf(""), inf = std::numeric_limits<float>::infinity();
    const MaskPixel bad = 4 | 16;
    EXPECT_TRUE(usablePixel(1.5f, 2.0f, 0, bad));
    EXPECT_TRUE(usablePixel(-3.0f, 0.0f, 0, bad));   // a zero variance is usable
    EXPECT_TRUE(usablePixel(-3.0f, -0.0f, 0, bad));  // so is -0
    EXPECT_TRUE(usablePixel(1.0f, 1.0f, 1 | 8, bad));  // bits that are not bad
    EXPECT_TRUE(usablePixel(1.0e300, 1.0f, 0, bad));   // a double value is tested as a double
    EXPECT_FALSE(usablePixel(nan, 1.0f, 0, bad));
    EXPECT_FALSE(usablePixel(inf, 1.0f, 0, bad));
    EXPECT_FALSE(usablePixel(-inf, 1.0f, 0, bad));
    EXPECT_FALSE(usablePixel(1.0f, nan, 0, bad));
    EXPECT_FALSE(usablePixel(1.0f, inf, 0, bad));
    EXPECT_FALSE(usablePixel(1.0f, -1e-30f, 0, bad));
    EXPECT_FALSE(usablePixel(1.0f, 1.0f, 16, bad));
    EXPECT_FALSE(usablePixel(1.0f, 1.0f, 4 | 1, bad));
    EXPECT_FALSE(usablePixel(std::nan(""), 1.0f, 0, bad));
}

TEST(MeasurementHelpers, ExactRowIntervalEqualsAScan) {
    // Random ellipses q(dx, dy) = A dx^2 + 2 B dx dy + C dy^2 <= L, every row of a random box, estimates from
    // the roots of q = L moved by up to one column in or two out at each end (rows the ellipse misses get the
    // tangent estimate): the interval is exactly the columns a scan of the box selects.
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<int> shiftLo(-2, 1), shiftHi(-1, 2);
    long rows = 0, empty = 0;
    for (int t = 0; t < 400; ++t) {
        const double sx = 0.5 + 8 * u(rng), sy = 0.5 + 8 * u(rng), rho = 1.8 * u(rng) - 0.9;
        const double det = sx * sx * sy * sy * (1 - rho * rho);
        const double A = sy * sy / det, C = sx * sx / det, B = -rho * sx * sy / det, L = 1 + 9 * u(rng);
        Point2D c{30 * u(rng) - 5, 30 * u(rng) - 5};
        if (t % 5 == 0) c = {std::floor(c.x), std::floor(c.y) + 0.5};
        const int minX = int(std::floor(20 * u(rng))) - 10, maxX = minX + int(std::floor(30 * u(rng))) - 1;
        for (int y = -40; y <= 40; ++y) {
            const double dy = y - c.y;
            auto inside = [&](int x) {
                const double dx = x - c.x;
                return A * dx * dx + 2 * B * dx * dy + C * dy * dy <= L;
            };
            const double sq = std::sqrt(std::max(0.0, B * B * dy * dy - A * (C * dy * dy - L)));
            const int e0 = int(std::floor((-B * dy - sq) / A + c.x)) + shiftLo(rng);
            const int e1 = int(std::ceil((-B * dy + sq) / A + c.x)) + shiftHi(rng);
            const auto [x0, x1] = exactRowInterval(e0, e1, minX, maxX, inside);
            int lo = maxX + 1, hi = minX - 1;
            for (int x = minX; x <= maxX; ++x)
                if (inside(x)) lo = std::min(lo, x), hi = std::max(hi, x);
            ++rows;
            if (lo > hi) {
                ++empty;
                EXPECT_GT(x0, x1) << "t " << t << " y " << y;
            } else {
                EXPECT_EQ(x0, lo) << "t " << t << " y " << y;
                EXPECT_EQ(x1, hi) << "t " << t << " y " << y;
            }
        }
    }
    EXPECT_GT(empty, rows / 10);  // both cases are exercised
    EXPECT_LT(empty, rows - rows / 10);
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
