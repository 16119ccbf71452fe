#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numbers>
#include <random>
#include <vector>

#include <Eigen/Dense>

#include "core/Error.h"
#include "core/GalaxyProfile.h"

using namespace drp;

namespace {

/// Gauss-Legendre rule of order n on [-1, 1] (independent of the library's rules).
void gaussLegendre(int n, std::vector<double>& x, std::vector<double>& w) {
    x.assign(std::size_t(n), 0.0);
    w.assign(std::size_t(n), 0.0);
    for (int i = 0; i < n; ++i) {
        double z = std::cos(std::numbers::pi * (i + 0.75) / (n + 0.5)), pp = 0.0;
        for (int it = 0; it < 100; ++it) {
            double p1 = 1.0, p2 = 0.0;
            for (int j = 0; j < n; ++j) {
                const double p3 = p2;
                p2 = p1;
                p1 = ((2.0 * j + 1.0) * z * p2 - j * p3) / (j + 1);
            }
            pp = n * (z * p1 - p2) / (z * z - 1.0);
            const double z1 = z;
            z = z1 - p1 / pp;
            if (std::fabs(z - z1) < 1e-15) break;
        }
        x[std::size_t(i)] = z;
        w[std::size_t(i)] = 2.0 / ((1.0 - z * z) * pp * pp);
    }
}

/// int_a^b f by composite Gauss-Legendre (pieces x 32 points).
double integrate(const std::function<double(double)>& f, double a, double b, int pieces = 64) {
    std::vector<double> x, w;
    gaussLegendre(32, x, w);
    double s = 0.0;
    const double h = (b - a) / pieces;
    for (int p = 0; p < pieces; ++p) {
        const double c = a + (p + 0.5) * h;
        for (std::size_t i = 0; i < x.size(); ++i) s += w[i] * 0.5 * h * f(c + 0.5 * h * x[i]);
    }
    return s;
}

/// Flux of the 2-d function F(east, north) inside the elliptical isophote rho <= R of shape (e1, e2),
/// integrated in polar coordinates of the plane: theta uniform (periodic: spectrally accurate), radius with
/// r = r_max(theta) s^4 (smooths the r^(1/4) cusp); the radial range is split at `breaks` (isophote radii
/// where F jumps, e.g. truncations). With moment = 1, 2, 3 returns the x^2, y^2, x y moments instead.
double integrateEllipse(const std::function<double(double, double)>& f, double e1, double e2, double R,
                        std::vector<double> breaks, int moment = 0) {
    const Eigen::Matrix2d sInv = shapeMatrix(e1, e2).inverse();
    breaks.push_back(R);
    std::sort(breaks.begin(), breaks.end());
    const int nTheta = 96;
    double total = 0.0;
    for (int t = 0; t < nTheta; ++t) {
        const double th = 2.0 * std::numbers::pi * t / nTheta;
        const Eigen::Vector2d u(std::cos(th), std::sin(th));
        const double c = std::sqrt(u.dot(sInv * u));  // rho = r c
        double lo = 0.0;
        for (double br : breaks) {
            if (br > R) break;
            const double hi = br;
            if (hi <= lo) continue;
            // rho from lo to hi: rho = hi * s^4 for s in [(lo/hi)^(1/4), 1]
            const double s0 = std::pow(lo / hi, 0.25);
            total += integrate(
                [&](double s) {
                    const double rho = hi * s * s * s * s, r = rho / c;
                    const double x = r * u.x(), y = r * u.y();
                    double weight = 1.0;
                    if (moment == 1) weight = x * x;
                    if (moment == 2) weight = y * y;
                    if (moment == 3) weight = x * y;
                    // d(area) = r dr dtheta, dr = 4 hi s^3 ds / c
                    return f(x, y) * weight * r * 4.0 * hi * s * s * s / c;
                },
                s0 * 0.9999999999, 1.0, 6);
            lo = hi;
        }
    }
    return total * 2.0 * std::numbers::pi / nTheta;
}

}  // namespace

TEST(GalaxyProfile, IncompleteGammaMatchesClosedForms) {
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> ux(0.0, 40.0);
    for (int i = 0; i < 200; ++i) {
        const double x = ux(rng);
        EXPECT_NEAR(regularizedGammaP(1.0, x), -std::expm1(-x), 1e-14);
        EXPECT_NEAR(regularizedGammaP(2.0, x), 1.0 - std::exp(-x) * (1.0 + x), 1e-14);
        EXPECT_NEAR(regularizedGammaP(0.5, x), std::erf(std::sqrt(x)), 1e-14);
        EXPECT_NEAR(regularizedGammaP(3.0, x), 1.0 - std::exp(-x) * (1.0 + x + 0.5 * x * x), 1e-13);
    }
    EXPECT_EQ(regularizedGammaP(3.0, 0.0), 0.0);
    EXPECT_THROW(regularizedGammaP(0.0, 1.0), InvalidInputError);
    EXPECT_THROW(regularizedGammaP(1.0, -1.0), InvalidInputError);
}

TEST(GalaxyProfile, SersicBnHalvesTheFlux) {
    // Published values (Ciotti & Bertin 1999; MacArthur et al. 2003).
    EXPECT_NEAR(sersicBn(1.0), 1.678346990, 2e-9);
    EXPECT_NEAR(sersicBn(4.0), 7.669249443, 2e-9);
    for (double n = 0.5; n <= 6.0001; n += 0.25) {
        const double b = sersicBn(n);
        EXPECT_NEAR(regularizedGammaP(2.0 * n, b), 0.5, 1e-12) << "n=" << n;
        // Independent: integrate 2 pi r exp(-b r^(1/n)) numerically with r = t^n (no incomplete gamma).
        auto ring = [&](double t) { return 2.0 * std::numbers::pi * n * std::pow(t, 2.0 * n - 1.0) * std::exp(-b * t); };
        const double inside = integrate(ring, 0.0, 1.0);
        const double total = inside + integrate(ring, 1.0, 1.0 + 80.0 / b, 256);
        EXPECT_NEAR(inside / total, 0.5, 1e-6) << "n=" << n;
    }
    EXPECT_THROW(sersicBn(0.1), InvalidInputError);
}

TEST(GalaxyProfile, TruncatedProfilesKeepTheirHalfLightRadius) {
    for (double n : {0.5, 1.0, 2.0, 4.0, 6.0}) {
        for (double trunc : {0.0, 3.0, 6.0, 8.0}) {
            const SersicProfile p{n, 1.7, trunc};
            p.validate();
            EXPECT_NEAR(p.enclosedFlux(p.halfLightRadius), 0.5, 1e-9) << n << " " << trunc;
            // Independent: the 1-d integral of 2 pi r I(r) over the truncated profile is 1 and half of it is
            // inside the half-light radius.
            auto ring = [&](double t) {  // r = t^n
                const double r = std::pow(t, n);
                return 2.0 * std::numbers::pi * r * p.surfaceBrightness(r) * n * std::pow(t, n - 1.0);
            };
            const double rMax = trunc > 0 ? p.truncationRadius() : 1e300;
            const double tHalf = std::pow(p.halfLightRadius, 1.0 / n);
            const double tMax = trunc > 0 ? std::pow(rMax, 1.0 / n) : tHalf * (1.0 + 60.0 / p.bn());
            const double inside = integrate(ring, 0.0, tHalf, 128);
            const double total = inside + integrate(ring, tHalf, tMax, 512);
            EXPECT_NEAR(total, 1.0, 1e-7) << n << " " << trunc;
            EXPECT_NEAR(inside, 0.5, 1e-7) << n << " " << trunc;
            // <r^2> against the same numerical integral.
            auto ring2 = [&](double t) {
                const double r = std::pow(t, n);
                return ring(t) * r * r;
            };
            const double r2 = integrate(ring2, 0.0, tHalf, 128) + integrate(ring2, tHalf, tMax, 512);
            EXPECT_NEAR(r2 / p.meanSquareRadius(), 1.0, 1e-6) << n << " " << trunc;
            // enclosedFlux at a few radii against the integral.
            for (double f : {0.3, 2.0, 4.5}) {
                const double r = f * p.halfLightRadius;
                if (r > rMax) continue;
                EXPECT_NEAR(p.enclosedFlux(r), integrate(ring, 0.0, std::pow(r, 1.0 / n), 256), 1e-7);
            }
        }
    }
    // The documented default truncations.
    const SersicProfile bulge{4.0, 1.0, kBulgeTruncation}, disk{1.0, 1.0, kDiskTruncation};
    EXPECT_NEAR(bulge.untruncatedFluxFractionInside(), 0.92999, 1e-5);
    EXPECT_NEAR(bulge.scaleRadius(), 1.1355, 1e-4);
    EXPECT_NEAR(regularizedGammaP(8.0, sersicBn(4.0) * std::pow(8.0, 0.25)), 0.9430, 1e-4);
    EXPECT_GT(disk.untruncatedFluxFractionInside(), 0.9995);
    EXPECT_EQ(bulge.enclosedFlux(8.0), 1.0);
    EXPECT_EQ(bulge.surfaceBrightness(8.01), 0.0);
    EXPECT_THROW((SersicProfile{4.0, -1.0, 0.0}.validate()), InvalidInputError);
    EXPECT_THROW((SersicProfile{4.0, 1.0, 1.0}.validate()), InvalidInputError);
}

TEST(GalaxyProfile, ShapeMatrixIsTheDistortion) {
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> ue(-0.65, 0.65);
    for (int i = 0; i < 100; ++i) {
        const double e1 = ue(rng), e2 = ue(rng);
        if (e1 * e1 + e2 * e2 >= 0.95) continue;
        const Eigen::Matrix2d s = shapeMatrix(e1, e2);
        EXPECT_NEAR(s.determinant(), 1.0, 1e-12);
        // Axis ratio q from the eigenvalues (a^2, b^2 proportional to them): e = (1 - q^2) / (1 + q^2).
        const double tr = s.trace(), disc = std::sqrt(0.25 * tr * tr - 1.0);
        const double q2 = (0.5 * tr - disc) / (0.5 * tr + disc);
        EXPECT_NEAR((1.0 - q2) / (1.0 + q2), std::hypot(e1, e2), 1e-12);
    }
    EXPECT_THROW(shapeMatrix(0.8, 0.7), InvalidInputError);
}

TEST(GalaxyProfile, GalaxyFluxAndMomentsBy2dIntegration) {
    // Many random bulge + disk galaxies: the 2-d integral of the surface brightness over the plane is 1,
    // the enclosed flux matches, and the second moments match galaxySecondMoments.
    std::mt19937_64 rng(2024);
    std::uniform_real_distribution<double> uf(0.0, 1.0), ur(0.15, 2.0), ue(-0.5, 0.5);
    for (int trial = 0; trial < 8; ++trial) {
        GalaxyShape g;
        g.bulgeFraction = trial == 0 ? 0.0 : trial == 1 ? 1.0 : uf(rng);
        g.bulgeHalfLightRadiusArcsec = ur(rng);
        g.diskHalfLightRadiusArcsec = ur(rng);
        g.e1 = ue(rng);
        g.e2 = ue(rng);
        g.validate();
        auto sb = [&](double x, double y) { return galaxySurfaceBrightness(g, x, y); };
        std::vector<double> breaks{bulgeProfile(g).truncationRadius(), diskProfile(g).truncationRadius()};
        const double rMax = galaxyTruncationRadiusArcsec(g);
        EXPECT_NEAR(integrateEllipse(sb, g.e1, g.e2, rMax, breaks), 1.0, 1e-6) << trial;
        const double r = 0.8 * std::sqrt(g.bulgeHalfLightRadiusArcsec * g.diskHalfLightRadiusArcsec);
        EXPECT_NEAR(integrateEllipse(sb, g.e1, g.e2, r, breaks), galaxyEnclosedFlux(g, r), 1e-6) << trial;
        const Eigen::Matrix2d mom = galaxySecondMoments(g);
        const double scale = mom.trace();
        EXPECT_NEAR(integrateEllipse(sb, g.e1, g.e2, rMax, breaks, 1), mom(0, 0), 1e-5 * scale) << trial;
        EXPECT_NEAR(integrateEllipse(sb, g.e1, g.e2, rMax, breaks, 2), mom(1, 1), 1e-5 * scale) << trial;
        EXPECT_NEAR(integrateEllipse(sb, g.e1, g.e2, rMax, breaks, 3), mom(0, 1), 1e-5 * scale) << trial;
        // The moments encode the ellipticity: (Ixx - Iyy) / (Ixx + Iyy) = e1, 2 Ixy / (Ixx + Iyy) = e2.
        EXPECT_NEAR((mom(0, 0) - mom(1, 1)) / scale, g.e1, 1e-12);
        EXPECT_NEAR(2.0 * mom(0, 1) / scale, g.e2, 1e-12);
    }
}

TEST(GalaxyProfile, ValidateRejectsBadShapes) {
    GalaxyShape g;
    EXPECT_NO_THROW(g.validate());
    g.bulgeFraction = 1.5;
    EXPECT_THROW(g.validate(), InvalidInputError);
    g.bulgeFraction = 0.5;
    g.bulgeHalfLightRadiusArcsec = 0.0;
    EXPECT_THROW(g.validate(), InvalidInputError);
    g.bulgeHalfLightRadiusArcsec = 1.0;
    g.e1 = 0.9;
    g.e2 = 0.5;
    EXPECT_THROW(g.validate(), InvalidInputError);
    // A pure disk does not need a bulge radius.
    GalaxyShape disk{0.0, 0.0, 1.0, 0.1, 0.0};
    EXPECT_NO_THROW(disk.validate());
    EXPECT_NEAR(galaxyEnclosedFlux(disk, 1.0), 0.5, 1e-9);
}

TEST(GalaxyProfile, FourierTransformMatchesTheHankelIntegral) {
    // F(k) = 2 pi int_0^R I(r) J0(k r) r dr by direct quadrature (r = t^n substitution, fine pieces), for the
    // simulator's bulge and disk and a few other profiles; F(0) = 1 and F''(0) = -<r^2> / 2.
    std::mt19937_64 rng(5);
    for (const SersicProfile& p : {SersicProfile{4.0, 1.3, kBulgeTruncation}, SersicProfile{1.0, 0.7, kDiskTruncation},
                                   SersicProfile{2.5, 1.0, 5.0}, SersicProfile{1.0, 1.0, 0.0}}) {
        EXPECT_NEAR(p.fourierTransform(0.0), 1.0, 1e-12);
        // Small k: F(k) = 1 - k^2 <r^2> / 4 + k^4 <r^4> / 64 - ..., <r^4> from the incomplete gamma function.
        const double a = 2.0 * p.n, rs = p.scaleRadius(), b = p.bn();
        const double xR = p.truncation > 0 ? b * std::pow(p.truncationRadius() / rs, 1.0 / p.n) : 1e300;
        const double r4 = std::pow(rs, 4) * std::exp(std::lgamma(3 * a) - std::lgamma(a) - 2 * a * std::log(b)) *
                          regularizedGammaP(3 * a, xR) / regularizedGammaP(a, xR);
        const double h = 0.05 / p.halfLightRadius;
        const double expected = 0.25 * h * h * p.meanSquareRadius() - std::pow(h, 4) * r4 / 64.0;
        EXPECT_NEAR(1.0 - p.fourierTransform(h), expected, 2e-3 * expected) << "n=" << p.n << " T=" << p.truncation;
        const double tMax = p.truncation > 0 ? std::pow(p.truncationRadius(), 1.0 / p.n)
                                             : std::pow(p.halfLightRadius, 1.0 / p.n) * (1.0 + 60.0 / p.bn());
        std::uniform_real_distribution<double> uk(0.0, 40.0 / p.halfLightRadius);
        for (int i = 0; i < 8; ++i) {
            const double k = uk(rng);
            auto f = [&](double t) {
                const double r = std::pow(t, p.n);
                return 2.0 * std::numbers::pi * r * p.surfaceBrightness(r) * std::cyl_bessel_j(0.0, k * r) * p.n * std::pow(t, p.n - 1.0);
            };
            const double direct = integrate(f, 0.0, tMax, 400);
            EXPECT_NEAR(p.fourierTransform(k), direct, 2e-6) << "n=" << p.n << " k=" << k;
        }
    }
    // The exponential's closed form (untruncated): (1 + (k r_s / b)^2)^(-3/2).
    const SersicProfile disk{1.0, 1.0, 0.0};
    for (double k : {0.1, 1.0, 3.0, 10.0}) {
        EXPECT_NEAR(disk.fourierTransform(k), std::pow(1.0 + std::pow(k / disk.bn(), 2), -1.5), 1e-6) << k;
    }
}
