#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"

using namespace drp;

namespace {

struct Moments {
    double sum = 0, x = 0, y = 0, ixx = 0, iyy = 0, ixy = 0;
};

/// Brute-force centroid and second moments of an image in its parent frame.
Moments moments(const Image<double>& img) {
    Moments m;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            m.sum += img(x, y);
            m.x += img(x, y) * (x + img.xy0().x);
            m.y += img(x, y) * (y + img.xy0().y);
        }
    m.x /= m.sum, m.y /= m.sum;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const double dx = x + img.xy0().x - m.x, dy = y + img.xy0().y - m.y;
            m.ixx += img(x, y) * dx * dx, m.iyy += img(x, y) * dy * dy, m.ixy += img(x, y) * dx * dy;
        }
    m.ixx /= m.sum, m.iyy /= m.sum, m.ixy /= m.sum;
    return m;
}

MoffatParameters randomParameters(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> uf(2.0, 6.0), ub(1.6, 5.0), ue(-0.2, 0.2);
    return {uf(rng), ub(rng), ue(rng), ue(rng)};
}

/// An independent brute-force pixel integral: n x n midpoint sub-samples of the truncated Moffat defined
/// directly from the documented formulas (alpha from the FWHM, distortion shape, truncation ellipse).
Image<double> bruteForceMoffat(const MoffatParameters& p, int size, double dx, double dy, int n) {
    const double alpha = p.fwhm / (2.0 * std::sqrt(std::pow(2.0, 1.0 / p.beta) - 1.0));
    const double e = std::hypot(p.e1, p.e2);
    const double s = 1.0 / std::sqrt(1.0 - e * e);
    // Half maximum at half the FWHM along the geometric-mean axis (documented definition of alpha).
    EXPECT_NEAR(std::pow(1.0 + std::pow(0.5 * p.fwhm / alpha, 2), -p.beta), 0.5, 1e-12);
    const double semiMajorPerRho = alpha * std::sqrt(s * (1.0 + e));
    const double rhoT = 0.5 * (size - 1) / semiMajorPerRho;
    Image<double> img(size, size, 0.0);
    double sum = 0.0;
    for (int j = 0; j < size; ++j)
        for (int i = 0; i < size; ++i) {
            auto rho2At = [&](double x, double y) {
                return s * ((1.0 - p.e1) * x * x - 2.0 * p.e2 * x * y + (1.0 + p.e1) * y * y) / (alpha * alpha);
            };
            // Pixels the truncation crosses (a corner or the centre on each side) get 8x finer sampling.
            int inside = 0;
            for (double cy : {-0.5, 0.0, 0.5})
                for (double cx : {-0.5, 0.0, 0.5}) inside += rho2At(i - size / 2 + cx - dx, j - size / 2 + cy - dy) <= rhoT * rhoT;
            const int m = (inside > 0 && inside < 9) ? 6 * n : n;
            double v = 0.0;
            for (int b = 0; b < m; ++b)
                for (int a = 0; a < m; ++a) {
                    const double x = i - size / 2 - 0.5 + (a + 0.5) / m - dx, y = j - size / 2 - 0.5 + (b + 0.5) / m - dy;
                    const double rho2 = rho2At(x, y);
                    if (rho2 <= rhoT * rhoT) v += std::pow(1.0 + rho2, -p.beta);
                }
            img(i, j) = v / (double(m) * m);
            sum += img(i, j);
        }
    img *= 1.0 / sum;
    return img;
}

}  // namespace

TEST(MoffatPsf, RegistrationAndRecordRoundTrip) {
    registerMoffatPsf();
    EXPECT_TRUE(Psf::isRegistered(MoffatPsf::kTypeName));
    const auto constant = MoffatPsf::make(3.5, 2.5, 0.05, -0.03);
    auto back = Psf::fromRecord(constant->toRecord());
    EXPECT_TRUE(back->equals(*constant));
    EXPECT_EQ(back->typeName(), "MoffatPsf");
    EXPECT_TRUE(back->computeKernelImage({10, 20}).identical(constant->computeKernelImage({10, 20})));

    const Box2I box({0, 0}, 4072, 4000);
    const auto varying = MoffatPsf::make(box, 3.2, {3.5, 0.2, -0.1, 0.05, 0.02, -0.04}, {0.01, 0.02, 0.0, 0.01, 0.0, 0.0},
                                         {-0.02, 0.0, 0.03, 0.0, 0.01, 0.0}, 0);
    auto back2 = Psf::fromRecord(varying->toRecord());
    EXPECT_TRUE(back2->equals(*varying));
    EXPECT_FALSE(back2->equals(*constant));
    const auto* m = dynamic_cast<const MoffatPsf*>(back2.get());
    ASSERT_NE(m, nullptr);
    EXPECT_TRUE(m->isSpatiallyVarying());
    EXPECT_EQ(m->bbox(), box);
    EXPECT_TRUE(back2->computeImage({1234.3, 77.8}).identical(varying->computeImage({1234.3, 77.8})));

    PsfRecord bad = varying->toRecord();
    bad.set("fwhm", {1.0, 2.0});
    EXPECT_THROW(Psf::fromRecord(bad), InvalidInputError);
}

TEST(MoffatPsf, KernelSumsToOneAndMatchesBruteForce) {
    std::mt19937_64 rng(1);
    for (int trial = 0; trial < 10; ++trial) {
        MoffatParameters p = randomParameters(rng);
        if (trial < 4) p.beta = 1.5 + 0.5 * trial;  // the unrolled integer / half-integer paths (1.5 .. 3)
        MoffatPsf psf(p.fwhm, p.beta, p.e1, p.e2);
        const Image<double> k = psf.computeKernelImage();
        EXPECT_EQ(k.width() % 2, 1);
        double s = 0.0, peak = 0.0;
        for (int y = 0; y < k.height(); ++y)
            for (int x = 0; x < k.width(); ++x) s += k(x, y), peak = std::max(peak, k(x, y));
        EXPECT_NEAR(s, 1.0, 1e-12);
        // Default size: 2 ceil(4 FWHM_major) + 1 clipped to [15, 101].
        const double e = std::hypot(p.e1, p.e2);
        const int expected = std::clamp(2 * int(std::ceil(4.0 * p.fwhm * std::pow((1 + e) / (1 - e), 0.25))) + 1, 15, 101);
        EXPECT_EQ(k.width(), expected);
        EXPECT_EQ(k.xy0(), Point2I(-(k.width() / 2), -(k.height() / 2)));
        // Pixel by pixel against a 24 x 24 midpoint brute force: pixel integration, FWHM, shape, truncation.
        const Image<double> ref = bruteForceMoffat(p, k.width(), 0.0, 0.0, 24);
        double maxDiff = 0.0;
        for (int y = 0; y < k.height(); ++y)
            for (int x = 0; x < k.width(); ++x) maxDiff = std::max(maxDiff, std::fabs(k(x, y) - ref(x, y)));
        EXPECT_LT(maxDiff, 3e-4 * peak) << "trial " << trial;
    }
}

TEST(MoffatPsf, MomentsMatchTheAnalyticTruncatedMoffat) {
    std::mt19937_64 rng(2);
    for (int trial = 0; trial < 30; ++trial) {
        MoffatParameters p = randomParameters(rng);
        if (trial == 0) p.beta = 2.0;  // the logarithmic branch of the analytic moments
        MoffatPsf psf(p.fwhm, p.beta, p.e1, p.e2);
        const Moments m = moments(psf.computeKernelImage());
        const PsfShape a = psf.computeShape();
        const double tr = a.ixx + a.iyy;
        EXPECT_NEAR(m.ixx, a.ixx, 2e-3 * tr) << "trial " << trial;
        EXPECT_NEAR(m.iyy, a.iyy, 2e-3 * tr) << "trial " << trial;
        EXPECT_NEAR(m.ixy, a.ixy, 2e-3 * tr) << "trial " << trial;
        // Ellipticity recovered from the moments of the continuous profile (pixel box removed).
        const double cxx = m.ixx - 1.0 / 12, cyy = m.iyy - 1.0 / 12;
        EXPECT_NEAR((cxx - cyy) / (cxx + cyy), p.e1, 3e-3) << "trial " << trial;
        EXPECT_NEAR(2.0 * m.ixy / (cxx + cyy), p.e2, 3e-3) << "trial " << trial;
    }
    // The analytic truncated-Moffat <rho^2> against direct numerical radial integration.
    for (double beta : {1.5, 2.0, 2.5, 4.765}) {
        const MoffatParameters p{4.0, beta, 0.0, 0.0};
        const int size = 41;
        const double alpha = MoffatPsf::alphaFromFwhm(p.fwhm, beta), rT = 20.0;
        double num = 0.0, den = 0.0;
        const int n = 200000;
        for (int i = 0; i < n; ++i) {
            const double r = (i + 0.5) * rT / n, w = r * std::pow(1.0 + r * r / (alpha * alpha), -beta);
            num += w * r * r, den += w;
        }
        const PsfShape a = MoffatPsf::analyticShape(p, size);
        EXPECT_NEAR(a.ixx - 1.0 / 12, 0.5 * num / den, 1e-6 * num / den) << beta;
        EXPECT_NEAR(a.ixy, 0.0, 1e-15);
    }
    // Continuity through beta = 2.
    const PsfShape s0 = MoffatPsf::analyticShape({3.0, 2.0, 0, 0}, 25), s1 = MoffatPsf::analyticShape({3.0, 2.0 + 1e-7, 0, 0}, 25);
    EXPECT_NEAR(s0.ixx, s1.ixx, 1e-5);
}

TEST(MoffatPsf, ComputeImageIsCentredAtTheSubPixelPosition) {
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> upos(-500.0, 500.0);
    for (int trial = 0; trial < 40; ++trial) {
        const MoffatParameters p = randomParameters(rng);
        MoffatPsf psf(p.fwhm, p.beta, p.e1, p.e2);
        const Point2D pos{upos(rng), upos(rng)};
        const Image<double> img = psf.computeImage(pos);
        const Moments m = moments(img);
        EXPECT_NEAR(m.sum, 1.0, 1e-12);
        EXPECT_NEAR(m.x, pos.x, 1e-3) << "trial " << trial;
        EXPECT_NEAR(m.y, pos.y, 1e-3) << "trial " << trial;
        // The pixels line up with the exposure: the centre pixel is the nearest integer pixel.
        EXPECT_EQ(img.xy0().x + img.width() / 2, int(std::floor(pos.x + 0.5)));
        EXPECT_EQ(img.xy0().y + img.height() / 2, int(std::floor(pos.y + 0.5)));
        // Same shape as the kernel image (it is the same profile, shifted).
        const PsfShape a = psf.computeShape(pos);
        EXPECT_NEAR(m.ixx, a.ixx, 2e-3 * (a.ixx + a.iyy));
        EXPECT_NEAR(m.iyy, a.iyy, 2e-3 * (a.ixx + a.iyy));
        // And pixel by pixel against the brute force at the offset (the first trials: it is slow).
        if (trial >= 12) continue;
        const double dx = pos.x - std::floor(pos.x + 0.5), dy = pos.y - std::floor(pos.y + 0.5);
        const Image<double> ref = bruteForceMoffat(p, img.width(), dx, dy, 24);
        double maxDiff = 0.0, peak = 0.0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                maxDiff = std::max(maxDiff, std::fabs(img(x, y) - ref(x, y)));
                peak = std::max(peak, img(x, y));
            }
        EXPECT_LT(maxDiff, 3e-4 * peak);
    }
}

TEST(MoffatPsf, SpatialVariationFollowsThePolynomials) {
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<double> uc(-0.05, 0.05);
    const Box2I box({100, -50}, 2001, 1001);
    for (int trial = 0; trial < 5; ++trial) {
        std::array<double, 6> f{3.5, 0.3, -0.2, 0.1, 0.05, -0.1}, e1{}, e2{};
        for (int i = 0; i < 6; ++i) e1[std::size_t(i)] = uc(rng), e2[std::size_t(i)] = uc(rng);
        f[1] += 4 * uc(rng);
        MoffatPsf psf(box, 2.7, f, e1, e2);
        EXPECT_GE(psf.kernelSize(), 2 * int(std::ceil(4.0 * 3.5)) + 1);
        std::uniform_real_distribution<double> ux(box.minX(), box.maxX()), uy(box.minY(), box.maxY());
        for (int k = 0; k < 20; ++k) {
            const Point2D pos{ux(rng), uy(rng)};
            const double u = (pos.x - 1100.0) / 1000.5, v = (pos.y - 450.0) / 500.5;
            auto poly = [&](const std::array<double, 6>& c) {
                return c[0] + c[1] * u + c[2] * v + c[3] * u * u + c[4] * u * v + c[5] * v * v;
            };
            const MoffatParameters p = psf.parametersAt(pos);
            EXPECT_NEAR(p.fwhm, poly(f), 1e-12);
            EXPECT_NEAR(p.e1, poly(e1), 1e-12);
            EXPECT_NEAR(p.e2, poly(e2), 1e-12);
            EXPECT_EQ(p.beta, 2.7);
            if (k < 4) {  // the kernel there is the constant PSF of those parameters
                MoffatPsf local(p.fwhm, p.beta, p.e1, p.e2, psf.kernelSize());
                EXPECT_TRUE(psf.computeKernelImage(pos).identical(local.computeKernelImage(pos)));
                const Moments m = moments(psf.computeKernelImage(pos));
                EXPECT_NEAR(m.ixx, psf.computeShape(pos).ixx, 2e-3 * (m.ixx + m.iyy));
            }
        }
        // At the bbox centre the parameters are the constant terms.
        const MoffatParameters c = psf.parametersAt({1100.0, 450.0});
        EXPECT_NEAR(c.fwhm, f[0], 1e-12);
        EXPECT_NEAR(c.e1, e1[0], 1e-12);
    }
}

TEST(MoffatPsf, RejectsInvalidParameters) {
    EXPECT_THROW(MoffatPsf(-1.0, 2.5), InvalidInputError);
    EXPECT_THROW(MoffatPsf(3.0, 1.0), InvalidInputError);
    EXPECT_THROW(MoffatPsf(3.0, 2.5, 0.95, 0.0), InvalidInputError);
    EXPECT_THROW(MoffatPsf(3.0, 2.5, 0.0, 0.0, 20), InvalidInputError);
    EXPECT_THROW(MoffatPsf(Box2I(), 2.5, {3, 0, 0, 0, 0, 0}, {}, {}), InvalidInputError);
    // fwhm going negative inside the bbox
    EXPECT_THROW(MoffatPsf(Box2I({0, 0}, 100, 100), 2.5, {1, 2, 0, 0, 0, 0}, {}, {}), InvalidInputError);
    MoffatPsf ok(3.0, 2.5, 0.0, 0.0, 21);
    EXPECT_EQ(ok.computeKernelImage().width(), 21);
}
