// Warping (stages/coadd/Warper.h): flux conservation and positions of injected stars, constancy, the
// propagated variance and its covariance correction against pure noise, NO_DATA coverage, mask
// propagation, determinism across threads. Many seeds, random rotations, shifts and scale changes.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <numbers>
#include <random>
#include <vector>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/Lanczos.h"
#include "stages/coadd/Warper.h"

using namespace drp;

namespace {

const SpherePoint kCentre = SpherePoint::fromDegrees(150.1, 2.2);

/// A TAN-SIP WCS for a w x h image: 0.2"/px, random rotation, mild quadratic distortion (~0.1 px at the corners).
std::shared_ptr<const Wcs> sourceWcs(std::mt19937_64& rng, int w, int h, bool sip = true) {
    std::uniform_real_distribution<double> rot(0.0, 360.0), s(-1.0, 1.0);
    auto tan = Wcs::makeTan({0.5 * (w - 1), 0.5 * (h - 1)}, kCentre, 0.2 * arcseconds, rot(rng) * degrees);
    if (!sip) return tan;
    SipPolynomials p;
    p.order = 2;
    p.a = Eigen::MatrixXd::Zero(3, 3), p.b = Eigen::MatrixXd::Zero(3, 3);
    p.a(2, 0) = 1e-6 * s(rng), p.a(1, 1) = 1e-6 * s(rng), p.a(0, 2) = 1e-6 * s(rng);
    p.b(2, 0) = 1e-6 * s(rng), p.b(1, 1) = 1e-6 * s(rng), p.b(0, 2) = 1e-6 * s(rng);
    return std::make_shared<const Wcs>(tan->crpix(), tan->crval(), tan->cd(), p);
}

/// A destination (patch-like) TAN WCS near the source centre: shifted by up to 20", rotated, pixel scale
/// 0.2" x (1 + scaleChange).
std::shared_ptr<const Wcs> destWcs(std::mt19937_64& rng, double scaleChange, Point2D crpix = {300, 300}) {
    std::uniform_real_distribution<double> rot(0.0, 360.0), off(0.0, 20.0), pa(0.0, 360.0);
    const SpherePoint c = kCentre.offset(pa(rng) * degrees, off(rng) * arcseconds);
    return Wcs::makeTan(crpix, c, 0.2 * (1.0 + scaleChange) * arcseconds, rot(rng) * degrees);
}

Point2D mapPoint(const Wcs& from, const Wcs& to, Point2D p) { return to.skyToPixel(from.pixelToSky(p)); }

/// |det| of d(src)/d(dest) at a destination pixel, by central differences of the exact mapping.
double relativeArea(const Wcs& src, const Wcs& dest, Point2D d) {
    const double h = 0.5;
    const Point2D x1 = mapPoint(dest, src, {d.x + h, d.y}), x0 = mapPoint(dest, src, {d.x - h, d.y});
    const Point2D y1 = mapPoint(dest, src, {d.x, d.y + h}), y0 = mapPoint(dest, src, {d.x, d.y - h});
    const double j00 = (x1.x - x0.x) / (2 * h), j01 = (y1.x - y0.x) / (2 * h);
    const double j10 = (x1.y - x0.y) / (2 * h), j11 = (y1.y - y0.y) / (2 * h);
    return std::fabs(j00 * j11 - j01 * j10);
}

MaskPixel noDataBit(const Mask& m) { return m.planeBitMask("NO_DATA"); }

}  // namespace

TEST(WarpingKernel, TabulatedWeightsMatchExactSumToOneAndHaveNoFirstMoment) {
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(-50.0, 50.0);
    for (const char* name : {"lanczos2", "lanczos3", "lanczos4", "bilinear", "nearest"}) {
        WarpingKernel k(name);
        double maxErr = 0.0;
        for (int t = 0; t < 20000; ++t) {
            const double x = u(rng);
            double w[WarpingKernel::kMaxTaps], e[WarpingKernel::kMaxTaps];
            const int f0 = k.computeWeights(x, w), f1 = k.computeExactWeights(x, e);
            ASSERT_EQ(f0, f1);
            double s = 0.0, m1 = 0.0;
            for (int i = 0; i < k.numTaps(); ++i) {
                s += w[i];
                m1 += w[i] * (x - (f0 + i));
                maxErr = std::max(maxErr, std::fabs(w[i] - e[i]));
                EXPECT_LT(std::fabs(x - (f0 + i)), k.support() + 1e-12);
            }
            EXPECT_NEAR(s, 1.0, 1e-13);
            if (k.name() != "nearest") {
                EXPECT_NEAR(m1, 0.0, 1e-6) << name << " at " << x;  // reproduces linear ramps (Lanczos.h)
            }
        }
        EXPECT_LT(maxErr, 2e-6) << name;
    }
    EXPECT_THROW(WarpingKernel("lanczos7"), ConfigError);
}

TEST(WarpConfig, ValidateAndCompare) {
    WarpConfig c;
    EXPECT_NO_THROW(c.validate());
    WarpConfig d = c;
    EXPECT_EQ(c, d);
    d.kernel = "cubic";
    EXPECT_THROW(d.validate(), ConfigError);
    EXPECT_NE(c, d);
    d = c, d.interpLength = -1;
    EXPECT_THROW(d.validate(), ConfigError);
    d = c, d.maxBadFraction = 1.0;
    EXPECT_THROW(d.validate(), ConfigError);
    d = c, d.maskWeightThreshold = -0.1;
    EXPECT_THROW(d.validate(), ConfigError);
    d = c, d.numThreads = 0;
    EXPECT_THROW(d.validate(), ConfigError);
}

// Stars of known flux, separated by > 55 px, in a TAN-SIP calexp; warped onto rotated, shifted grids with
// pixel scales 2% smaller to 3% larger, Moffat FWHM 4-5.5 px (0.8-1.1" at 0.2"/px), for every kernel of the
// Lanczos family, with the exact and the grid-interpolated mapping, 36 seeds: the total flux of each star is
// conserved to 0.1% and its centroid lands on the mapped true position to < 3e-3 px.
// Two earlier failures of this test, both fixed: (1) the kernel (Lanczos.h): without the first-moment
// correction, grids within ~5 degrees of alignment beat against each other and errors reached 0.4% and
// 0.03 px; (2) the aperture must hold the whole warped star: the Moffat stamps are truncated at an ellipse
// of radius (kernelSize - 1) / 2 = 20 source px, so the warped light reaches at most 20 x 1.03 + 3 (kernel
// support) < 24 destination px from the centre; the aperture radius is 27 px (the nearest other star's
// light starts > 55 - 24 = 31 px away). An aperture of the size of the stamp cuts the ellipse's tips.
TEST(Warp, StarFluxAndPositionConserved) {
    double worstFlux = 0.0, worstPos = 0.0, worstFluxAligned = 0.0, worstPosAligned = 0.0;
    int nStars = 0;
    const int numSeeds = 36;
    for (std::uint64_t seed = 0; seed < numSeeds; ++seed) {
        std::mt19937_64 rng(1000 + seed);
        const int w = 420, h = 400;
        auto sw = sourceWcs(rng, w, h);
        std::uniform_real_distribution<double> fw(4.0, 5.5), e(-0.15, 0.15), sc(-0.02, 0.03);
        const double fwhm = fw(rng);
        auto psf = MoffatPsf::make(fwhm, 2.5, e(rng), e(rng), 41);
        Exposure src(w, h);
        src.variance().fill(1.0f);
        std::vector<Point2D> stars;
        std::uniform_real_distribution<double> ux(30.0, w - 30.0), uy(30.0, h - 30.0);
        for (int t = 0; t < 400 && stars.size() < 24; ++t) {
            const Point2D p{ux(rng), uy(rng)};
            bool ok = true;
            for (const auto& q : stars) ok = ok && std::hypot(p.x - q.x, p.y - q.y) > 55.0;
            if (ok) stars.push_back(p);
        }
        for (const auto& p : stars) addPointSource(src.image(), p, 1e4, *psf);
        src.setWcs(sw);
        auto dw = destWcs(rng, sc(rng));
        const Box2I box = destinationBBox(src.bbox(), *sw, *dw, {}, 10);
        const char* kernels[] = {"lanczos3", "lanczos2", "lanczos4"};
        WarpConfig cfg;
        cfg.kernel = kernels[seed % 3];
        cfg.interpLength = (seed / 3) % 2 ? 10 : 0;
        WarpInfo info;
        Exposure warp = warpExposure(src, dw, box, cfg, &info);
        const ImageF& img = warp.image();
        // Rotation of the destination grid relative to the source grid, folded to [0, 45] degrees.
        const Point2D o = mapPoint(*dw, *sw, {0.0, 0.0}), ex = mapPoint(*dw, *sw, {1.0, 0.0});
        double rotation = std::fmod(std::atan2(ex.y - o.y, ex.x - o.x) * 180.0 / std::numbers::pi + 360.0, 90.0);
        rotation = std::min(rotation, 90.0 - rotation);
        const bool aligned = rotation < 10.0;  // the case a kernel without first-moment correction fails
        for (const auto& p : stars) {
            const Point2D d = mapPoint(*sw, *dw, p);
            double s = 0.0, sx = 0.0, sy = 0.0;
            bool ok = true;
            const int r = 27;
            for (int y = int(d.y) - r - 1; y <= int(d.y) + r + 1; ++y)
                for (int x = int(d.x) - r - 1; x <= int(d.x) + r + 1; ++x) {
                    if (std::hypot(x - d.x, y - d.y) > r) continue;
                    if (!box.contains(Point2I{x, y})) {
                        ok = false;
                        continue;
                    }
                    const double v = img.atParent({x, y});
                    if (!std::isfinite(v)) {
                        ok = false;
                        continue;
                    }
                    s += v, sx += v * x, sy += v * y;
                }
            if (!ok) continue;  // the aperture leaves the warp (a star near the calexp edge)
            const double fluxErr = std::fabs(s / 1e4 - 1.0);
            const double posErr = std::hypot(sx / s - d.x, sy / s - d.y);
            // The 1e-3 in flux; 3e-3 px in position (worst seen 1.0e-4 and 1.3e-3 px).
            EXPECT_LT(fluxErr, 1e-3) << "seed " << seed << " kernel " << cfg.kernel << " rotation " << rotation;
            EXPECT_LT(posErr, 3e-3) << "seed " << seed << " kernel " << cfg.kernel << " rotation " << rotation;
            if (aligned) {
                worstFluxAligned = std::max(worstFluxAligned, fluxErr), worstPosAligned = std::max(worstPosAligned, posErr);
            } else {
                worstFlux = std::max(worstFlux, fluxErr), worstPos = std::max(worstPos, posErr);
            }
            ++nStars;
        }
    }
    EXPECT_GT(nStars, 20 * numSeeds / 2);
    std::cout << "[warp] " << nStars << " stars: worst |flux ratio - 1| = " << worstFlux
              << ", worst centroid error = " << worstPos << " px (grids rotated >= 10 deg); "
              << worstFluxAligned << ", " << worstPosAligned << " px (grids within 10 deg of aligned)\n";
}

// A constant (flux per pixel) image becomes c x (destination pixel area in source pixels) away from the
// edges, to 1e-6, with the grid-interpolated mapping (interpLength 10) and with the exact one.
TEST(Warp, ConstantImageStaysConstant) {
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        std::mt19937_64 rng(2000 + seed);
        const int w = 300, h = 280;
        auto sw = sourceWcs(rng, w, h);
        std::uniform_real_distribution<double> sc(-0.03, 0.03);
        auto dw = destWcs(rng, sc(rng), {150, 150});
        MaskedImageF src(w, h);
        src.image().fill(7.5f);
        src.variance().fill(2.0f);
        WarpConfig cfg;
        cfg.interpLength = seed % 2 ? 10 : 0;
        cfg.kernel = seed % 3 == 2 ? "bilinear" : "lanczos3";
        const Box2I box = destinationBBox(src.bbox(), *sw, *dw);
        MaskedImageF out = warpMaskedImage(src, *sw, *dw, box, cfg);
        double worst = 0.0;
        int n = 0;
        for (int y = box.minY(); y <= box.maxY(); y += 3)
            for (int x = box.minX(); x <= box.maxX(); x += 3) {
                if (out.mask().atParent({x, y}) & noDataBit(out.mask())) continue;
                const double a = relativeArea(*sw, *dw, {double(x), double(y)});
                worst = std::max(worst, std::fabs(out.image().atParent({x, y}) / (7.5 * a) - 1.0));
                ++n;
            }
        EXPECT_GT(n, 3000);
        EXPECT_LT(worst, 1e-6) << "seed " << seed;
    }
}

// The interpolated mapping (interpLength 10) agrees with the exact one on a star field to 1e-4 of the peak.
TEST(Warp, InterpolatedMappingMatchesExact) {
    std::mt19937_64 rng(77);
    const int w = 300, h = 300;
    auto sw = sourceWcs(rng, w, h);
    auto dw = destWcs(rng, 0.01, {150, 150});
    MaskedImageF src(w, h);
    auto psf = MoffatPsf::make(3.5, 2.5);
    std::uniform_real_distribution<double> u(20.0, 280.0);
    for (int i = 0; i < 30; ++i) addPointSource(src.image(), {u(rng), u(rng)}, 1e4, *psf);
    const Box2I box = destinationBBox(src.bbox(), *sw, *dw);
    WarpConfig exact;
    exact.interpLength = 0;
    MaskedImageF a = warpMaskedImage(src, *sw, *dw, box, exact), b = warpMaskedImage(src, *sw, *dw, box, WarpConfig{});
    double peak = 0.0, diff = 0.0;
    for (int y = 0; y < a.height(); ++y)
        for (int x = 0; x < a.width(); ++x) {
            const double va = a.image()(x, y), vb = b.image()(x, y);
            if (!std::isfinite(va) || !std::isfinite(vb)) continue;
            peak = std::max(peak, std::fabs(va));
            diff = std::max(diff, std::fabs(va - vb));
        }
    EXPECT_LT(diff, 1e-4 * peak);
}

// Pure white noise: the measured per-pixel variance of the warp equals the propagated variance plane (to 2%),
// and the noise of large-area sums exceeds the sum of per-pixel variances by WarpInfo::covarianceFactor,
// measured as the sum over lags |dx|, |dy| <= 9 of the autocovariance / mean propagated variance (lanczos3
// footprints overlap up to 6 sqrt(2) / 1.015 < 9 destination pixels apart at any rotation).
// The lag-sum estimator is unbiased but noisy: its relative standard deviation is ~sqrt(2 x 19^2 / N) for N
// pixels, ~5% for one 420 x 420 warp. An earlier version of this test used 4 such warps, with the same noise
// realisations for every kernel: a common 2-sigma fluctuation then looked like a systematic "5.5%"
// shortfall of the prediction. Here each kernel gets its own 24 realisations of 640 x 640 (sigma ~0.9%), and
// the tolerance is 3 sigma; the deterministic check is CovarianceFactorMatchesExactCovariance below.
TEST(Warp, PropagatedVarianceAndCovarianceFactor) {
    std::uint64_t kernelSeed = 0;
    for (const char* kernel : {"lanczos3", "bilinear", "lanczos2"}) {
        double sumPix = 0, sumProp = 0, sumLag = 0, factor = 0;
        std::int64_t n = 0;
        const int seeds = 24;
        ++kernelSeed;
        for (int seed = 0; seed < seeds; ++seed) {
            std::mt19937_64 rng(3000 + 100 * kernelSeed + seed);
            const int w = 640, h = 640;
            auto sw = sourceWcs(rng, w, h, false);
            auto dw = destWcs(rng, 0.015, {320, 320});
            MaskedImageF src(w, h);
            std::normal_distribution<double> g(0.0, 1.0);
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x) src.image()(x, y) = float(g(rng));
            src.variance().fill(1.0f);
            WarpConfig cfg;
            cfg.kernel = kernel;
            WarpInfo info;
            const Box2I box = destinationBBox(src.bbox(), *sw, *dw);
            MaskedImageF out = warpMaskedImage(src, *sw, *dw, box, cfg, &info);
            factor += info.covarianceFactor / seeds;
            // Summed-area tables of the image (0 where NO_DATA) and of the NO_DATA indicator.
            const int W = out.width(), H = out.height(), L = 9;
            const MaskPixel nd = noDataBit(out.mask());
            std::vector<double> sat(std::size_t(W + 1) * (H + 1), 0.0), bad(sat.size(), 0.0);
            auto at = [&](std::vector<double>& t, int x, int y) -> double& { return t[std::size_t(y) * (W + 1) + x]; };
            for (int y = 0; y < H; ++y)
                for (int x = 0; x < W; ++x) {
                    const bool isBad = out.mask()(x, y) & nd;
                    at(sat, x + 1, y + 1) = (isBad ? 0.0 : double(out.image()(x, y))) + at(sat, x, y + 1) +
                                            at(sat, x + 1, y) - at(sat, x, y);
                    at(bad, x + 1, y + 1) = (isBad ? 1.0 : 0.0) + at(bad, x, y + 1) + at(bad, x + 1, y) - at(bad, x, y);
                }
            auto box2 = [&](std::vector<double>& t, int x, int y) {
                return at(t, x + L + 1, y + L + 1) - at(t, x - L, y + L + 1) - at(t, x + L + 1, y - L) + at(t, x - L, y - L);
            };
            for (int y = L; y < H - L; ++y)
                for (int x = L; x < W - L; ++x) {
                    if (box2(bad, x, y) != 0.0) continue;
                    const double v = out.image()(x, y);
                    sumPix += v * v, sumLag += v * box2(sat, x, y), sumProp += out.variance()(x, y);
                    ++n;
                }
        }
        const double pixRatio = sumPix / sumProp, covRatio = sumLag / sumProp;
        std::cout << "[warp] " << kernel << ": measured/propagated pixel variance = " << pixRatio
                  << ", measured large-sum factor = " << covRatio << ", predicted covarianceFactor = " << factor
                  << " (" << n << " pixels)\n";
        EXPECT_NEAR(pixRatio, 1.0, 0.02) << kernel;
        // 3 sigma of the estimator (seen: -1.9%, -0.4%, -1.2%); the exact check below agrees to 1e-4.
        EXPECT_NEAR(covRatio / factor, 1.0, 0.03) << kernel;
        EXPECT_GT(factor, 1.1) << kernel;
    }
}

// The prediction against the exact, noise-free covariance of the warp: for a block of destination pixels d,
// sum_{d'} Cov(d, d') / Var(d) from the kernel weights (brute force over lags up to 9), over a region large
// enough (64 x 64) to average the moire of the two grids' phases. Agrees to 1e-3 (seen: 3e-5).
TEST(Warp, CovarianceFactorMatchesExactCovariance) {
    for (const char* kernel : {"lanczos3", "bilinear"}) {
        for (std::uint64_t seed = 0; seed < 2; ++seed) {
            std::mt19937_64 rng(3500 + seed);
            const int w = 300, h = 300;
            auto sw = sourceWcs(rng, w, h, false);
            auto dw = destWcs(rng, 0.015, {150, 150});
            WarpConfig cfg;
            cfg.kernel = kernel;
            WarpInfo info;
            MaskedImageF src(w, h);
            src.variance().fill(1.0f);
            (void)warpMaskedImage(src, *sw, *dw, destinationBBox(src.bbox(), *sw, *dw), cfg, &info);
            WarpingKernel k(kernel);
            const int T = k.numTaps();
            struct Taps {
                int ix, iy;
                double wx[8], wy[8];
            };
            const int x0 = 118, y0 = 118, N = 64, L = 9, M = N + 2 * L;
            std::vector<Taps> taps(std::size_t(M) * M);
            for (int y = 0; y < M; ++y)
                for (int x = 0; x < M; ++x) {
                    const Point2D d{double(x0 - L + x), double(y0 - L + y)};
                    const Point2D s = mapPoint(*dw, *sw, d);
                    Taps& t = taps[std::size_t(y) * M + x];
                    t.ix = k.computeWeights(s.x, t.wx), t.iy = k.computeWeights(s.y, t.wy);
                    const double a = relativeArea(*sw, *dw, d);
                    for (int i = 0; i < T; ++i) t.wx[i] *= a;
                }
            auto cov = [&](const Taps& p, const Taps& q) {
                double cx = 0.0, cy = 0.0;
                for (int i = 0; i < T; ++i) {
                    const int j = p.ix + i - q.ix;
                    if (j >= 0 && j < T) cx += p.wx[i] * q.wx[j];
                    const int l = p.iy + i - q.iy;
                    if (l >= 0 && l < T) cy += p.wy[i] * q.wy[l];
                }
                return cx * cy;
            };
            double sumC = 0.0, sumV = 0.0;
            for (int y = L; y < L + N; ++y)
                for (int x = L; x < L + N; ++x) {
                    const Taps& p = taps[std::size_t(y) * M + x];
                    for (int dy = -L; dy <= L; ++dy)
                        for (int dx = -L; dx <= L; ++dx) sumC += cov(p, taps[std::size_t(y + dy) * M + x + dx]);
                    sumV += cov(p, p);
                }
            std::cout << "[warp] " << kernel << " seed " << seed << ": exact window factor " << sumC / sumV
                      << ", predicted " << info.covarianceFactor << "\n";
            EXPECT_NEAR(sumC / sumV / info.covarianceFactor, 1.0, 1e-3) << kernel << " seed " << seed;
        }
    }
}

// Monte Carlo of WARPCOVF across pixel-scale ratios r = destination / source pixel: 0.5 (upsample), 1, 1.5,
// 2, 3 (3 is a 0.2"/px calexp onto a 0.6"/px patch), for grids at a random rotation and for aligned grids
// (rotation 0, random sub-pixel offset: the usual case of north-up calexps and tracts, where the factor
// depends strongly on the phase of the two grids). Pure white noise of known variance (4), 16 seeds per case.
// Measured: (a) the output pixel variance against the propagated VARIANCE plane; (b) the variance of sums
// over non-overlapping N x N boxes of destination pixels (N r = 20 and 40 source pixels), the quantity
// WARPCOVF corrects, against WARPCOVF (of each warp) x the sum of the VARIANCE plane over each box. Box
// sums have zero mean, so their variance is the mean of their squares, with relative 1-sigma sqrt(2 / n)
// for n boxes (printed). A finite box misses the covariance across its edges: a deficit where neighbours
// correlate (WARPCOVF > 1), an excess where they anti-correlate (WARPCOVF < 1), shrinking as 1 / N. With
// 120-160 seeds: r = 1 rotated lanczos3 0.9996 +- 0.005 (20^2 boxes) and 0.9998 +- 0.010 (40^2); r = 3
// 0.996 +- 0.005 (7^2) and 1.016 +- 0.010 (13^2); r = 1.5 lanczos3 (WARPCOVF 0.56-0.66) +3.7% / +4.7% on
// the 13^2 boxes (the edge excess) but +1.7 +- 1.2% / -0.4 +- 1.2% on the 27^2 boxes. So the prediction holds
// from WARPCOVF 0.40 to 9, and values below 1 are real: downsampling with a kernel defined on source pixels
// makes each output pixel's variance a^2 S var larger than its share a var of the flux-conserving
// large-area sum (r = 2, aligned grids, output centres between input pixels: WARPCOVF 0.40, measured 0.43
// +- 0.01); the formula needs no change. Tolerance: 4 sigma + 6% on the small boxes (edge effect up to 5%),
// 4 sigma + 2% on the large ones.
TEST(Warp, CovarianceFactorMonteCarloAcrossScales) {
    struct Case {
        double ratio;
        bool aligned;
        const char* kernel;
    };
    std::vector<Case> cases;
    for (const double r : {0.5, 1.0, 1.5, 2.0, 3.0}) {
        cases.push_back({r, false, "lanczos3"});
        cases.push_back({r, true, "lanczos3"});
        cases.push_back({r, false, "bilinear"});
    }
    double minFactor = 1e9, maxFactor = 0;
    for (std::size_t ci = 0; ci < cases.size(); ++ci) {
        const Case& c = cases[ci];
        const int seeds = 16;
        const int w = c.ratio < 1 ? 320 : 480, h = w;
        const double inVar = 4.0;
        double sumPix = 0, sumProp = 0, factor = 0;
        std::int64_t nPix = 0;
        struct BoxStats {
            int n = 0;
            double sumS2 = 0, sumPred = 0;
            std::int64_t count = 0;
        } boxes[2];
        boxes[0].n = std::max(2, int(std::lround(20.0 / c.ratio)));
        boxes[1].n = std::max(2, int(std::lround(40.0 / c.ratio)));
        for (int seed = 0; seed < seeds; ++seed) {
            std::mt19937_64 rng(7000 + 100 * ci + std::uint64_t(seed));
            std::shared_ptr<const Wcs> sw, dw;
            if (c.aligned) {
                std::uniform_real_distribution<double> off(0.0, 1.0);
                sw = Wcs::makeTan({0.5 * (w - 1), 0.5 * (h - 1)}, kCentre, 0.2 * arcseconds, 0.0 * degrees);
                const SpherePoint centre = sw->pixelToSky({0.5 * (w - 1) + off(rng), 0.5 * (h - 1) + off(rng)});
                dw = Wcs::makeTan({100.0, 100.0}, centre, 0.2 * c.ratio * arcseconds, 0.0 * degrees);
            } else {
                sw = sourceWcs(rng, w, h, false);
                dw = destWcs(rng, c.ratio - 1.0, {0.5 * w / c.ratio, 0.5 * h / c.ratio});
            }
            MaskedImageF src(w, h);
            std::normal_distribution<double> g(0.0, std::sqrt(inVar));
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x) src.image()(x, y) = float(g(rng));
            src.variance().fill(float(inVar));
            WarpConfig cfg;
            cfg.kernel = c.kernel;
            WarpInfo info;
            const MaskedImageF out = warpMaskedImage(src, *sw, *dw, destinationBBox(src.bbox(), *sw, *dw), cfg, &info);
            factor += info.covarianceFactor / seeds;
            minFactor = std::min(minFactor, info.covarianceFactor), maxFactor = std::max(maxFactor, info.covarianceFactor);
            const MaskPixel nd = noDataBit(out.mask());
            for (int y = 0; y < out.height(); ++y)
                for (int x = 0; x < out.width(); ++x) {
                    if (out.mask()(x, y) & nd) continue;
                    const double v = out.image()(x, y);
                    sumPix += v * v, sumProp += out.variance()(x, y);
                    ++nPix;
                }
            for (auto& b : boxes) {
                for (int y0 = 0; y0 + b.n <= out.height(); y0 += b.n)
                    for (int x0 = 0; x0 + b.n <= out.width(); x0 += b.n) {
                        double sum = 0, var = 0;
                        bool good = true;
                        for (int y = y0; good && y < y0 + b.n; ++y)
                            for (int x = x0; x < x0 + b.n; ++x) {
                                if (out.mask()(x, y) & nd) {
                                    good = false;
                                    break;
                                }
                                sum += out.image()(x, y), var += out.variance()(x, y);
                            }
                        if (!good) continue;
                        b.sumS2 += sum * sum, b.sumPred += info.covarianceFactor * var;
                        ++b.count;
                    }
            }
        }
        const double pixRatio = sumPix / sumProp;
        std::cout << "[warp MC] r " << c.ratio << (c.aligned ? " aligned " : " rotated ") << c.kernel << ": mean WARPCOVF "
                  << factor << ", pixel var / VARIANCE " << pixRatio;
        EXPECT_NEAR(pixRatio, 1.0, 0.01) << c.kernel << " r " << c.ratio << " aligned " << c.aligned;
        for (const auto& b : boxes) {
            const double r = b.sumS2 / b.sumPred, sigma = std::sqrt(2.0 / double(b.count));
            std::cout << "; " << b.n << "^2 box-sum var / (WARPCOVF x sum VARIANCE) " << r << " +- " << sigma << " (" << b.count
                      << ")";
            ASSERT_GT(b.count, 300) << c.kernel << " r " << c.ratio;
            EXPECT_NEAR(r, 1.0, 4 * sigma + (&b == &boxes[0] ? 0.06 : 0.02))
                << c.kernel << " r " << c.ratio << " aligned " << c.aligned << " box " << b.n;
        }
        std::cout << "\n";
    }
    // The cases span factors well below and above 1, so the comparison has power.
    EXPECT_LT(minFactor, 0.6);
    EXPECT_GT(maxFactor, 2.0);
}

// Coverage: destination pixels whose kernel footprint leaves the source (or touches NO_DATA) are NO_DATA
// with NaN image and infinite variance; all others have data. With maxBadFraction > 0 the edge pixels are
// kept (renormalised kernel) and a constant stays constant there.
TEST(Warp, NoDataWhereNoCoverage) {
    for (std::uint64_t seed = 0; seed < 6; ++seed) {
        std::mt19937_64 rng(4000 + seed);
        const int w = 200, h = 180;
        auto sw = sourceWcs(rng, w, h);
        auto dw = destWcs(rng, 0.0, {100, 100});
        MaskedImageF src(w, h);
        src.image().fill(3.0f);
        src.variance().fill(1.0f);
        // A NO_DATA hole.
        const Box2I hole({80, 70}, 10, 12);
        src.mask().subImage(hole).setBits(src.mask().planeBitMask("NO_DATA"));
        const Box2I box = destinationBBox(src.bbox(), *sw, *dw, {}, 10);
        WarpConfig cfg;
        cfg.interpLength = 0;
        MaskedImageF out = warpMaskedImage(src, *sw, *dw, box, cfg);
        const MaskPixel nd = noDataBit(out.mask());
        const int n = 3;  // lanczos3
        int checked = 0;
        for (int y = box.minY(); y <= box.maxY(); ++y)
            for (int x = box.minX(); x <= box.maxX(); ++x) {
                const Point2D s = mapPoint(*dw, *sw, {double(x), double(y)});
                const bool noData = out.mask().atParent({x, y}) & nd;
                const double fx = s.x - std::floor(s.x), fy = s.y - std::floor(s.y);
                if (std::min(fx, 1 - fx) < 1e-3 || std::min(fy, 1 - fy) < 1e-3) continue;  // near-zero weights
                const int ix0 = int(std::floor(s.x)) - n + 1, iy0 = int(std::floor(s.y)) - n + 1;
                const Box2I foot({ix0, iy0}, 2 * n, 2 * n);
                const bool expected = !src.bbox().contains(foot) || foot.overlaps(hole);
                ASSERT_EQ(noData, expected) << "seed " << seed << " at " << x << "," << y;
                if (noData) {
                    EXPECT_TRUE(std::isnan(out.image().atParent({x, y})));
                    EXPECT_TRUE(std::isinf(out.variance().atParent({x, y})));
                    EXPECT_EQ(out.mask().atParent({x, y}), nd);
                } else {
                    EXPECT_TRUE(std::isfinite(out.image().atParent({x, y})));
                }
                ++checked;
            }
        EXPECT_GT(checked, 20000);

        cfg.maxBadFraction = 0.4;
        WarpInfo strictInfo, looseInfo;
        (void)warpMaskedImage(src, *sw, *dw, box, WarpConfig{}, &strictInfo);
        MaskedImageF loose = warpMaskedImage(src, *sw, *dw, box, cfg, &looseInfo);
        EXPECT_GT(looseInfo.numGoodPixels, strictInfo.numGoodPixels);
        for (int y = 0; y < loose.height(); ++y)
            for (int x = 0; x < loose.width(); ++x) {
                if (loose.mask()(x, y) & nd) continue;
                const Point2D d{double(x + box.minX()), double(y + box.minY())};
                EXPECT_NEAR(loose.image()(x, y) / relativeArea(*sw, *dw, d), 3.0, 1e-5);
            }
    }
}

// A BAD pixel's bit reaches exactly the destination pixels where its kernel weight exceeds the threshold.
TEST(Warp, MaskBitsPropagate) {
    for (double thr : {0.01, 0.0}) {
        for (std::uint64_t seed = 0; seed < 4; ++seed) {
            std::mt19937_64 rng(5000 + seed);
            const int w = 120, h = 120;
            auto sw = sourceWcs(rng, w, h);
            auto dw = destWcs(rng, 0.02, {60, 60});
            MaskedImageF src(w, h);
            src.variance().fill(1.0f);
            const MaskPixel bad = src.mask().planeBitMask("BAD");
            const int bx = 50 + int(seed), by = 61 - int(seed);
            src.mask()(bx, by) = bad;
            WarpConfig cfg;
            cfg.interpLength = 0;
            cfg.maskWeightThreshold = thr;
            const Box2I box = destinationBBox(src.bbox(), *sw, *dw);
            MaskedImageF out = warpMaskedImage(src, *sw, *dw, box, cfg);
            WarpingKernel k(cfg.kernel);
            int flagged = 0;
            for (int y = box.minY(); y <= box.maxY(); ++y)
                for (int x = box.minX(); x <= box.maxX(); ++x) {
                    const Point2D s = mapPoint(*dw, *sw, {double(x), double(y)});
                    double wx[8], wy[8];
                    const int ix = k.computeWeights(s.x, wx), iy = k.computeWeights(s.y, wy);
                    double wgt = 0.0;
                    if (bx >= ix && bx < ix + k.numTaps() && by >= iy && by < iy + k.numTaps()) {
                        wgt = std::fabs(wx[bx - ix] * wy[by - iy]);
                    }
                    if (std::fabs(wgt - thr) < 1e-6) continue;  // borderline
                    const bool has = out.mask().atParent({x, y}) & bad;
                    EXPECT_EQ(has, wgt > thr) << x << "," << y << " weight " << wgt;
                    flagged += has;
                }
            EXPECT_GE(flagged, thr > 0 ? 4 : 25);
            if (thr == 0.0) {
                EXPECT_LE(flagged, 40);
            } else {
                EXPECT_LE(flagged, 20);
            }
        }
    }
}

// The same result, bit for bit, for 1 and 3 threads; and warpExposure's WCS, PSF and metadata.
TEST(Warp, ThreadsAreDeterministicAndExposureIsComplete) {
    std::mt19937_64 rng(6000);
    const int w = 300, h = 260;
    auto sw = sourceWcs(rng, w, h);
    auto dw = destWcs(rng, 0.01, {150, 150});
    Exposure src(w, h);
    std::normal_distribution<double> g(0.0, 1.0);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) src.image()(x, y) = float(g(rng));
    src.variance().fill(1.0f);
    src.setWcs(sw);
    src.setPsf(MoffatPsf::make(4.0, 2.5));
    src.setDetector(7);
    const Box2I box = destinationBBox(src.bbox(), *sw, *dw, {}, 6);
    WarpConfig one, three;
    three.numThreads = 3;
    WarpInfo i1, i3;
    Exposure a = warpExposure(src, dw, box, one, &i1), b = warpExposure(src, dw, box, three, &i3);
    EXPECT_TRUE(a.maskedImage().identical(b.maskedImage()));
    EXPECT_EQ(i1.covarianceFactor, i3.covarianceFactor);
    EXPECT_EQ(i1.numGoodPixels, i3.numGoodPixels);
    EXPECT_EQ(i1.goodBBox, i3.goodBBox);
    EXPECT_EQ(i1.numGoodPixels + i1.numNoDataPixels, box.area());
    EXPECT_TRUE(box.contains(i1.goodBBox));
    EXPECT_EQ(a.bbox(), box);
    EXPECT_EQ(a.wcs(), dw);
    ASSERT_TRUE(a.hasPsf());
    EXPECT_EQ(a.psf()->typeName(), "CoaddPsf");
    EXPECT_EQ(a.detector(), std::optional<int>(7));
    EXPECT_EQ(a.metadata().getString("WARPKERN"), "lanczos3");
    EXPECT_DOUBLE_EQ(a.metadata().getDouble("WARPCOVF"), i1.covarianceFactor);
    EXPECT_EQ(a.metadata().getInt("WARPNGOD"), i1.numGoodPixels);
    Exposure noWcs(10, 10);
    EXPECT_THROW(warpExposure(noWcs, dw, box), InvalidInputError);
    EXPECT_THROW(warpMaskedImage(src.maskedImage(), *sw, *dw, Box2I{}), InvalidInputError);
}
