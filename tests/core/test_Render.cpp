#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>
#include <vector>

#include <Eigen/Dense>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"

using namespace drp;

namespace {

struct Moments {
    double sum = 0, x = 0, y = 0, ixx = 0, iyy = 0, ixy = 0;
};

template <typename T>
Moments moments(const Image<T>& img) {
    Moments m;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const double v = img(x, y);
            m.sum += v, m.x += v * (x + img.xy0().x), m.y += v * (y + img.xy0().y);
        }
    m.x /= m.sum, m.y /= m.sum;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const double v = img(x, y), dx = x + img.xy0().x - m.x, dy = y + img.xy0().y - m.y;
            m.ixx += v * dx * dx, m.iyy += v * dy * dy, m.ixy += v * dx * dy;
        }
    m.ixx /= m.sum, m.iyy /= m.sum, m.ixy /= m.sum;
    return m;
}

double imageSum(const ImageF& img) {
    double s = 0.0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) s += img(x, y);
    return s;
}

/// A Jacobian d(pixel)/d(east, north arcsec) for `scale` arcsec/pixel: a rotation, a small shear and
/// optionally the east-left parity flip of a real sky image.
Eigen::Matrix2d randomJacobian(std::mt19937_64& rng, double scale) {
    std::uniform_real_distribution<double> ua(0.0, 2.0 * std::numbers::pi), us(-0.03, 0.03);
    const double a = ua(rng);
    Eigen::Matrix2d r;
    r << std::cos(a), -std::sin(a), std::sin(a), std::cos(a);
    Eigen::Matrix2d shear;
    shear << 1.0 + us(rng), us(rng), us(rng), 1.0 - us(rng);
    Eigen::Matrix2d flip = Eigen::Matrix2d::Identity();
    if (std::uniform_int_distribution<int>(0, 1)(rng)) flip(0, 0) = -1.0;
    return r * shear * flip / scale;
}

GalaxyShape randomGalaxy(std::mt19937_64& rng, double rMin = 0.2, double rMax = 1.5) {
    std::uniform_real_distribution<double> uf(0.0, 1.0), ue(-0.5, 0.5);
    std::uniform_real_distribution<double> ur(std::log(rMin), std::log(rMax));
    GalaxyShape g;
    const double kind = uf(rng);
    g.bulgeFraction = kind < 0.25 ? 0.0 : kind < 0.5 ? 1.0 : uf(rng);
    g.bulgeHalfLightRadiusArcsec = std::exp(ur(rng));
    g.diskHalfLightRadiusArcsec = std::exp(ur(rng));
    do {
        g.e1 = ue(rng), g.e2 = ue(rng);
    } while (g.e1 * g.e1 + g.e2 * g.e2 > 0.36);
    return g;
}

/// The galaxy's surface brightness per pixel^2 at a pixel offset, straight from the profile formulas.
struct PixelProfile {
    Eigen::Matrix2d q;  ///< rho^2 = d^T q d (arcsec^2)
    double pix2;        ///< arcsec^2 per pixel^2
    std::vector<SersicProfile> comps;
    std::vector<double> weights;
    PixelProfile(const GalaxyShape& g, const Eigen::Matrix2d& jac) {
        const Eigen::Matrix2d jInv = jac.inverse();
        q = jInv.transpose() * shapeMatrix(g.e1, g.e2).inverse() * jInv;
        pix2 = 1.0 / std::fabs(jac.determinant());
        if (g.bulgeFraction > 0) comps.push_back(bulgeProfile(g)), weights.push_back(g.bulgeFraction);
        if (g.bulgeFraction < 1) comps.push_back(diskProfile(g)), weights.push_back(1.0 - g.bulgeFraction);
        for (auto& c : comps) i0.push_back(c.centralSurfaceBrightness()), rs.push_back(c.scaleRadius()), b.push_back(c.bn());
    }
    std::vector<double> i0, rs, b;
    double operator()(double dx, double dy) const {
        const double rho = std::sqrt(q(0, 0) * dx * dx + (q(0, 1) + q(1, 0)) * dx * dy + q(1, 1) * dy * dy);
        double v = 0.0;
        for (std::size_t k = 0; k < comps.size(); ++k)
            if (rho <= comps[k].truncationRadius())
                v += weights[k] * i0[k] * std::exp(-b[k] * std::pow(rho / rs[k], 1.0 / comps[k].n));
        return v * pix2;
    }
};

/// Galaxy cell integrals on an independent brute-force grid of `over` cells per pixel over w x h pixels
/// from (x0, y0): each cell by 2 x 2 Gauss-Legendre, cells within 1.5 cells of the centre by 64 x 64
/// midpoint samples (the n = 4 cusp).
std::vector<double> bruteForceGalaxy(const PixelProfile& f, Point2D centre, int x0, int y0, int w, int h, int over) {
    const int fw = w * over, fh = h * over;
    std::vector<double> cells(std::size_t(fw) * fh, 0.0);
    const double c = 1.0 / over, g = 0.5 / std::sqrt(3.0);
    for (int b = 0; b < fh; ++b)
        for (int a = 0; a < fw; ++a) {
            const double cx = x0 - 0.5 + (a + 0.5) * c - centre.x, cy = y0 - 0.5 + (b + 0.5) * c - centre.y;
            double s = 0.0;
            if (std::hypot(cx, cy) < 1.5 * c) {
                const int n = 64;
                for (int j = 0; j < n; ++j)
                    for (int i = 0; i < n; ++i) s += f(cx - 0.5 * c + (i + 0.5) * c / n, cy - 0.5 * c + (j + 0.5) * c / n);
                s /= n * n;
            } else {
                s = 0.25 * (f(cx - g * c, cy - g * c) + f(cx + g * c, cy - g * c) + f(cx - g * c, cy + g * c) + f(cx + g * c, cy + g * c));
            }
            cells[std::size_t(b) * fw + a] = s * c * c;
        }
    return cells;
}

}  // namespace

TEST(Render, ConfigValidation) {
    RenderConfig c;
    EXPECT_NO_THROW(c.validate());
    EXPECT_TRUE(c == RenderConfig{});
    c.oversample = 17;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.maxStampHalfWidth = 1;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.oversample = -1;
    EXPECT_THROW(c.validate(), ConfigError);
    EXPECT_FALSE(c == RenderConfig{});
}

TEST(Render, PointSourcesConserveFlux) {
    std::mt19937_64 rng(10);
    std::uniform_real_distribution<double> uf(10.0, 1e5), upos(-20.0, 220.0);
    const auto psf = MoffatPsf::make(Box2I({0, 0}, 200, 180), 2.5, {3.5, 0.3, -0.2, 0, 0, 0.1}, {0.02, 0.01, 0, 0, 0, 0},
                                     {0.0, 0, 0.02, 0, 0, 0});
    for (int trial = 0; trial < 60; ++trial) {
        ImageF img(Box2I({0, 0}, 200, 180), 0.0f);
        const Point2D pos{upos(rng), upos(rng) * 0.9};
        const double flux = uf(rng);
        const double added = addPointSource(img, pos, flux, *psf);
        EXPECT_NEAR(imageSum(img), added, 1e-6 * flux);
        const bool inside = pos.x > 20 && pos.x < 180 && pos.y > 20 && pos.y < 160;
        if (inside) {
            EXPECT_NEAR(added, flux, 1e-9 * flux);
            const Moments m = moments(img);
            EXPECT_NEAR(m.x, pos.x, 1e-3);
            EXPECT_NEAR(m.y, pos.y, 1e-3);
        } else {
            EXPECT_LE(added, flux * (1 + 1e-12));
        }
    }
}

TEST(Render, GalaxiesConserveFlux) {
    // Bulge-only, disk-only and mixed galaxies, small and large, elliptical, random Jacobians with parity
    // flips; rendered well inside the image the added flux is the flux; near the edges the returned flux is
    // what landed in the image.
    std::mt19937_64 rng(11);
    std::uniform_real_distribution<double> uf(100.0, 1e5), upos(-10.0, 310.0);
    const auto psf = MoffatPsf::make(3.2, 3.0, 0.03, -0.02);
    for (int trial = 0; trial < 40; ++trial) {
        const GalaxyShape g = randomGalaxy(rng, 0.1, trial % 4 == 0 ? 3.0 : 1.5);
        const Eigen::Matrix2d jac = randomJacobian(rng, 0.2);
        const double flux = uf(rng);
        const Point2D centre{150.0 + upos(rng) * 1e-3, 140.0 - upos(rng) * 1e-3};
        ImageF img(Box2I({0, 0}, 300, 280), 0.0f);
        const ImageD stamp = renderGalaxyStamp(centre, flux, g, jac, *psf);
        double s = 0.0;
        for (int y = 0; y < stamp.height(); ++y)
            for (int x = 0; x < stamp.width(); ++x) s += stamp(x, y);
        EXPECT_NEAR(s, flux, 1e-9 * flux) << "trial " << trial;
        if (img.bbox().contains(stamp.bbox())) {
            const double added = addGalaxy(img, centre, flux, g, jac, *psf);
            EXPECT_NEAR(added, flux, 1e-9 * flux);
            EXPECT_NEAR(imageSum(img), flux, 1e-5 * flux);
            const Moments m = moments(img);
            EXPECT_NEAR(m.x, centre.x, 2e-3) << "trial " << trial;
            EXPECT_NEAR(m.y, centre.y, 2e-3) << "trial " << trial;
        }
        // Near or across the edges.
        ImageF img2(Box2I({0, 0}, 300, 280), 0.0f);
        const Point2D edge{upos(rng), upos(rng)};
        const double added = addGalaxy(img2, edge, flux, g, jac, *psf);
        EXPECT_NEAR(imageSum(img2), added, 1e-5 * flux);
        EXPECT_LE(added, flux * 1.001);
    }
}

TEST(Render, ConvolvedMomentsAddUp) {
    // Exact property of convolution: moments(galaxy (x) PSF) = moments(galaxy) + moments(PSF kernel).
    std::mt19937_64 rng(12);
    std::uniform_real_distribution<double> us(1.2, 2.5), uo(-0.5, 0.5);
    for (int trial = 0; trial < 24; ++trial) {
        const GalaxyShape g = randomGalaxy(rng);
        const Eigen::Matrix2d jac = randomJacobian(rng, 0.2);
        const GaussianPsf psf(us(rng));
        const Point2D centre{1000.0 + uo(rng), -300.0 + uo(rng)};
        const ImageD stamp = renderGalaxyStamp(centre, 1.0, g, jac, psf);
        const Moments m = moments(stamp);
        const Eigen::Matrix2d gm = jac * galaxySecondMoments(g) * jac.transpose();
        const Moments k = moments(psf.computeKernelImage());
        const double ixx = gm(0, 0) + k.ixx, iyy = gm(1, 1) + k.iyy, ixy = gm(0, 1) + k.ixy;
        const double tr = ixx + iyy;
        EXPECT_NEAR(m.ixx / ixx, 1.0, 0.01) << "trial " << trial;
        EXPECT_NEAR(m.iyy / iyy, 1.0, 0.01) << "trial " << trial;
        EXPECT_NEAR(m.ixy, ixy, 0.005 * tr) << "trial " << trial;
        EXPECT_NEAR(m.x, centre.x, 2e-3);
        EXPECT_NEAR(m.y, centre.y, 2e-3);
    }
}

TEST(Render, MatchesBruteForceRealSpaceConvolution) {
    // Against a 15x-oversampled real-space convolution with the Gaussian effective PSF (separable).
    std::mt19937_64 rng(13);
    std::uniform_real_distribution<double> us(1.3, 2.2), uo(-0.5, 0.5);
    for (int trial = 0; trial < 6; ++trial) {
        GalaxyShape g = randomGalaxy(rng, 0.2, 0.8);
        if (trial == 0) g.bulgeFraction = 0.0;  // exponential disk
        if (trial == 1) g.bulgeFraction = 1.0;  // de Vaucouleurs
        const Eigen::Matrix2d jac = randomJacobian(rng, 0.2);
        const double sigma = us(rng);
        const GaussianPsf psf(sigma);
        const Point2D centre{50.0 + uo(rng), 60.0 + uo(rng)};
        for (int method : {0, 8}) {  // Fourier space, and the real-space grid 8x oversampled
        RenderConfig config;
        config.oversample = method;
        const ImageD stamp = renderGalaxyStamp(centre, 1.0, g, jac, psf, config);
        // Reference over the central 31 x 31 pixels: galaxy light within 15 + 6 sigma pixels contributes.
        const int over = 15, half = 15, reach = half + int(std::ceil(6 * sigma)) + 1;
        const int x0 = int(std::floor(centre.x + 0.5)) - half, y0 = int(std::floor(centre.y + 0.5)) - half;
        const int gx0 = x0 - (reach - half), gy0 = y0 - (reach - half), gw = 2 * reach + 1, gh = gw;
        const std::vector<double> cells = bruteForceGalaxy(PixelProfile(g, jac), centre, gx0, gy0, gw, gh, over);
        const int fw = gw * over, fh = gh * over, n = 2 * half + 1;
        auto gauss = [&](double d) { return std::exp(-0.5 * d * d / (sigma * sigma)); };
        double norm = 0.0;
        for (int k = -50; k <= 50; ++k) norm += gauss(k);
        std::vector<double> wx(std::size_t(n) * fw), wy(std::size_t(n) * fh);
        for (int i = 0; i < n; ++i)
            for (int a = 0; a < fw; ++a) wx[std::size_t(i) * fw + a] = gauss(x0 + i - (gx0 - 0.5 + (a + 0.5) / over)) / norm;
        for (int j = 0; j < n; ++j)
            for (int b = 0; b < fh; ++b) wy[std::size_t(j) * fh + b] = gauss(y0 + j - (gy0 - 0.5 + (b + 0.5) / over)) / norm;
        std::vector<double> tmp(std::size_t(n) * fh);  // tmp(b, i) = sum_a cells(a, b) wx(i, a)
        for (int b = 0; b < fh; ++b)
            for (int i = 0; i < n; ++i) {
                double s = 0.0;
                for (int a = 0; a < fw; ++a) s += cells[std::size_t(b) * fw + a] * wx[std::size_t(i) * fw + a];
                tmp[std::size_t(b) * n + i] = s;
            }
        double maxDiff = 0.0, peak = 0.0;
        for (int j = 0; j < n; ++j)
            for (int i = 0; i < n; ++i) {
                double s = 0.0;
                for (int b = 0; b < fh; ++b) s += tmp[std::size_t(b) * n + i] * wy[std::size_t(j) * fh + b];
                const double v = stamp.atParent({x0 + i, y0 + j});
                maxDiff = std::max(maxDiff, std::fabs(v - s));
                peak = std::max(peak, s);
            }
        EXPECT_LT(maxDiff, 1e-3 * peak) << "trial " << trial << " bulge " << g.bulgeFraction << " oversample " << method;
        }
    }
}

TEST(Render, FourierAndRealSpaceMethodsAgree) {
    // Two independent galaxy renderers (tabulated Sersic transforms vs the 12x-oversampled real-space cell
    // grid) for the smallest, most elliptical and most concentrated galaxies of the simulator, with a
    // realistic Moffat PSF, at random sub-pixel positions and Jacobians.
    std::mt19937_64 rng(14);
    std::uniform_real_distribution<double> uo(-0.5, 0.5);
    const auto psf = MoffatPsf::make(3.5, 2.5, 0.02, 0.01);
    RenderConfig fine;
    fine.oversample = 12;
    for (int trial = 0; trial < 8; ++trial) {
        GalaxyShape g = randomGalaxy(rng, 0.15, 0.6);
        if (trial < 3) g.bulgeFraction = 1.0;
        const Eigen::Matrix2d jac = randomJacobian(rng, 0.2);
        const Point2D centre{10.0 + uo(rng), 20.0 + uo(rng)};
        const ImageD a = renderGalaxyStamp(centre, 1.0, g, jac, *psf);
        const ImageD b = renderGalaxyStamp(centre, 1.0, g, jac, *psf, fine);
        ASSERT_EQ(a.bbox(), b.bbox());
        double maxDiff = 0.0, peak = 0.0;
        for (int y = 0; y < a.height(); ++y)
            for (int x = 0; x < a.width(); ++x) {
                maxDiff = std::max(maxDiff, std::fabs(a(x, y) - b(x, y)));
                peak = std::max(peak, b(x, y));
            }
        EXPECT_LT(maxDiff, 1e-3 * peak) << "trial " << trial << " bulge " << g.bulgeFraction;
    }
}

TEST(Render, TrailsHaveTheirFluxCentroidAndLength) {
    std::mt19937_64 rng(15);
    std::uniform_real_distribution<double> ul(0.0, 60.0), ua(0.0, 2.0 * std::numbers::pi), uo(-0.5, 0.5);
    const GaussianPsf psf(1.6);
    const Moments k = moments(psf.computeKernelImage());
    for (int trial = 0; trial < 20; ++trial) {
        const double len = trial == 0 ? 0.0 : ul(rng), ang = ua(rng);
        const Point2D mid{120.0 + uo(rng), 110.0 + uo(rng)};
        const Point2D d{0.5 * len * std::cos(ang), 0.5 * len * std::sin(ang)};
        ImageF img(Box2I({0, 0}, 240, 220), 0.0f);
        const double added = addTrail(img, mid - d, mid + d, 5000.0, psf);
        EXPECT_NEAR(added, 5000.0, 1e-6);
        EXPECT_NEAR(imageSum(img), 5000.0, 0.05);
        const Moments m = moments(img);
        EXPECT_NEAR(m.x, mid.x, 2e-3) << trial;
        EXPECT_NEAR(m.y, mid.y, 2e-3) << trial;
        // Along the trail: L^2 / 12 + PSF; across: the PSF alone.
        const double c = std::cos(ang), s = std::sin(ang);
        const double along = c * c * m.ixx + 2 * c * s * m.ixy + s * s * m.iyy;
        const double across = s * s * m.ixx - 2 * c * s * m.ixy + c * c * m.iyy;
        EXPECT_NEAR(along, len * len / 12.0 + k.ixx, 0.01 * (len * len / 12.0 + k.ixx)) << trial;
        EXPECT_NEAR(across, k.ixx, 0.01 * k.ixx) << trial;
        EXPECT_NEAR(std::sqrt(12.0 * std::max(0.0, along - k.ixx)), len, 0.02 * len + 0.3) << trial;
    }
    // Partly outside: the returned flux is what landed.
    ImageF img(Box2I({0, 0}, 100, 100), 0.0f);
    const double added = addTrail(img, {80.0, 50.0}, {130.0, 60.0}, 1000.0, psf);
    EXPECT_NEAR(imageSum(img), added, 1e-3);
    EXPECT_LT(added, 600.0);
    EXPECT_GT(added, 300.0);
}

TEST(Render, ClippedGiantGalaxyLosesLightButNeverWraps) {
    GalaxyShape g{0.0, 0.5, 30.0, 0.0, 0.0};  // disk of 150 pixels half-light radius: 900 px truncation
    Eigen::Matrix2d jac = Eigen::Matrix2d::Identity() * 5.0;
    RenderConfig cfg;
    cfg.maxStampHalfWidth = 40;
    const GaussianPsf psf(1.5);
    const ImageD stamp = renderGalaxyStamp({0.0, 0.0}, 1.0, g, jac, psf, cfg);
    double s = 0.0;
    for (int y = 0; y < stamp.height(); ++y)
        for (int x = 0; x < stamp.width(); ++x) s += stamp(x, y);
    EXPECT_LT(s, 0.1);  // most of the light lies beyond 40 pixels
    EXPECT_GT(s, 0.0);
    EXPECT_LE(stamp.width(), 2 * (40 + 2 + 8) + 1 + 10);
}
