// PsfexPsf: normalisation, exact polynomial evaluation, sub-pixel placement, persistence round trip and
// input checks. (Recovery of a spatially varying Moffat from noisy stars is in
// tests/stages/test_PsfDeterminer.cpp, which fits this model.)
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/PsfexPsf.h"
#include "tests/support/TestSupport.h"

using namespace drp;

namespace {

/// Components that make the model exactly a spatially varying Moffat along u at three points: a linear
/// (order 1) interpolation between two Moffat kernels.
std::vector<Image<double>> linearComponents(const Image<double>& a, const Image<double>& b, int order) {
    std::vector<Image<double>> c;
    Image<double> c0 = a.clone(), c1 = b.clone();
    c0 += b;
    c0 *= 0.5;
    c1 -= a;
    c1 *= 0.5;
    c0.setXY0({0, 0});
    c1.setXY0({0, 0});
    c.push_back(c0);
    c.push_back(c1);
    for (int k = 2; k < PsfexPsf::numTerms(order); ++k) c.push_back(Image<double>(a.width(), a.height(), 0.0));
    return c;
}

}  // namespace

TEST(PsfexPsf, PolynomialTermsAndNormalisation) {
    const auto t = PsfexPsf::polynomialTerms(3, 2.0, 3.0);
    const std::vector<double> expect{1, 2, 3, 4, 6, 9, 8, 12, 18, 27};
    EXPECT_EQ(t, expect);
    EXPECT_EQ(PsfexPsf::numTerms(0), 1);
    EXPECT_EQ(PsfexPsf::numTerms(2), 6);
    const Box2I box({10, 20}, 101, 51);
    const Point2D lo = PsfexPsf::normalisedPosition(box, {10, 20}), hi = PsfexPsf::normalisedPosition(box, {110, 70});
    EXPECT_DOUBLE_EQ(lo.x, -1.0);
    EXPECT_DOUBLE_EQ(lo.y, -1.0);
    EXPECT_DOUBLE_EQ(hi.x, 1.0);
    EXPECT_DOUBLE_EQ(hi.y, 1.0);
}

TEST(PsfexPsf, EvaluatesItsPolynomialsExactlyAndNormalises) {
    const Image<double> a = MoffatPsf(3.0, 3.5, 0.0, 0.0, 29).computeKernelImage(), b = MoffatPsf(4.0, 3.5, 0.1, 0.0, 29).computeKernelImage();
    ASSERT_EQ(a.width(), b.width());
    for (int order : {1, 2, 3}) {
        const Box2I box({0, 0}, 1001, 801);
        auto comps = linearComponents(a, b, order);
        for (auto& c : comps) c *= 3.0;  // an unnormalised basis: computeKernelImage must renormalise
        const PsfexPsf psf(box, order, comps);
        EXPECT_EQ(psf.stampSize(), a.width());
        // At u = -1 the model is a, at u = +1 it is b, halfway it is their mean.
        for (double y : {0.0, 400.0, 800.0}) {
            const Image<double> ka = psf.computeKernelImage({0, y}), kb = psf.computeKernelImage({1000, y});
            const Image<double> km = psf.computeKernelImage({500, y});
            double sum = 0, worst = 0;
            for (int j = 0; j < a.height(); ++j)
                for (int i = 0; i < a.width(); ++i) {
                    sum += km(i, j);
                    worst = std::max({worst, std::fabs(ka(i, j) - a(i, j)), std::fabs(kb(i, j) - b(i, j)),
                                      std::fabs(km(i, j) - 0.5 * (a(i, j) + b(i, j)))});
                }
            EXPECT_NEAR(sum, 1.0, 1e-12);
            EXPECT_LT(worst, 1e-14);
            EXPECT_EQ(ka.xy0(), (Point2I{-(a.width() / 2), -(a.height() / 2)}));
        }
    }
}

// computeShape from the components' moments (no kernel image) equals the moments of the rendered kernel image.
TEST(PsfexPsf, ShapeFromComponentMomentsEqualsTheKernelImageMoments) {
    const Image<double> a = MoffatPsf(3.0, 3.5, 0.05, -0.02, 31).computeKernelImage(),
                        b = MoffatPsf(4.2, 2.5, -0.1, 0.08, 31).computeKernelImage();
    for (int order : {0, 1, 2, 3}) {
        const Box2I box({100, -50}, 1001, 801);
        auto comps = linearComponents(a, b, std::max(order, 1));
        comps.resize(std::size_t(PsfexPsf::numTerms(order)));
        if (order == 0) comps[0] += b;
        for (std::size_t k = 2; k < comps.size(); ++k) {  // every term varies (b - a sums to 0: the sum stays 1)
            Image<double> d = b.clone();
            d -= a;
            d *= 0.02 * double(k);
            d.setXY0({0, 0});
            comps[k] += d;
        }
        const PsfexPsf psf(box, order, comps);
        for (const Point2D p : {Point2D{100, -50}, Point2D{600.3, 350.7}, Point2D{1100, 750}, Point2D{321.5, 10.25}}) {
            const PsfShape fast = psf.computeShape(p);
            EXPECT_GT(fast.ixx, 0.3);  // a PSF-like model everywhere
            EXPECT_GT(fast.iyy, 0.3);
            const Image<double> k = psf.computeKernelImage(p);
            double s = 0, sx = 0, sy = 0;
            for (int y = 0; y < k.height(); ++y)
                for (int x = 0; x < k.width(); ++x) s += k(x, y), sx += k(x, y) * x, sy += k(x, y) * y;
            const double mx = sx / s, my = sy / s;
            double ixx = 0, iyy = 0, ixy = 0;
            for (int y = 0; y < k.height(); ++y)
                for (int x = 0; x < k.width(); ++x) {
                    ixx += k(x, y) * (x - mx) * (x - mx), iyy += k(x, y) * (y - my) * (y - my), ixy += k(x, y) * (x - mx) * (y - my);
                }
            EXPECT_NEAR(fast.ixx, ixx / s, 1e-12 * std::fabs(ixx / s)) << "order " << order;
            EXPECT_NEAR(fast.iyy, iyy / s, 1e-12 * std::fabs(iyy / s)) << "order " << order;
            EXPECT_NEAR(fast.ixy, ixy / s, 1e-12 * std::fabs((ixx + iyy) / s)) << "order " << order;
        }
    }
}

TEST(PsfexPsf, ComputeImagePlacesTheCentroidAtTheSubPixelPosition) {
    // A basis whose wings vanish at the stamp edge (a truncated Moffat's periodic continuation moves the
    // unweighted centroid by ~1e-4 pixel).
    const Image<double> k = GaussianPsf(2.0, 31, 0.1, -0.05).computeKernelImage();
    std::vector<Image<double>> comps{k.clone()};
    comps[0].setXY0({0, 0});
    const PsfexPsf psf(Box2I({0, 0}, 100, 100), 0, comps);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(10.0, 90.0);
    for (int trial = 0; trial < 20; ++trial) {
        const Point2D p{u(rng), u(rng)};
        const Image<double> img = psf.computeImage(p);
        double s = 0, sx = 0, sy = 0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                s += img(x, y);
                sx += img(x, y) * (x + img.xy0().x);
                sy += img(x, y) * (y + img.xy0().y);
            }
        EXPECT_NEAR(s, 1.0, 1e-12);
        EXPECT_NEAR(sx / s, p.x, 1e-8);
        EXPECT_NEAR(sy / s, p.y, 1e-8);
    }
}

TEST(PsfexPsf, PersistenceRoundTripIsExact) {
    registerPsfexPsf();
    EXPECT_TRUE(Psf::isRegistered(PsfexPsf::kTypeName));
    const std::vector<Image<double>> comps = test::noisyPsfComponents(MoffatPsf(3.0, 3.5).computeKernelImage(), 2, 9, 1e-4);
    const auto psf = PsfexPsf::make(Box2I({-5, 7}, 4072, 4000), 2, comps);
    const PsfRecord rec = psf->toRecord();
    EXPECT_EQ(rec.typeName, "PsfexPsf");
    const auto back = Psf::fromRecord(rec);
    EXPECT_EQ(back->typeName(), "PsfexPsf");
    EXPECT_TRUE(back->toRecord() == rec);
    EXPECT_TRUE(back->equals(*psf));
    for (Point2D p : {Point2D{0, 0}, Point2D{1234.5, 3000.25}, Point2D{4000, 10}}) {
        EXPECT_TRUE(back->computeKernelImage(p).identical(psf->computeKernelImage(p)));
        EXPECT_TRUE(back->computeImage(p).identical(psf->computeImage(p)));
    }
    PsfRecord bad = rec;
    bad.set("size", {28.0});
    EXPECT_THROW(Psf::fromRecord(bad), InvalidInputError);
    bad = rec;
    bad.set("coefficients", {1.0, 2.0});
    EXPECT_THROW(Psf::fromRecord(bad), InvalidInputError);
    bad = rec;
    bad.arrays.erase(bad.arrays.begin());
    EXPECT_THROW(Psf::fromRecord(bad), InvalidInputError);
}

TEST(PsfexPsf, RejectsBadInput) {
    const Image<double> a = MoffatPsf(3.0, 3.5).computeKernelImage();
    EXPECT_THROW(PsfexPsf(Box2I(), 0, {a}), InvalidInputError);
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 1, {a}), InvalidInputError);   // 1 component for 3 terms
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 4, {a}), InvalidInputError);   // order 4
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 0, {Image<double>(4, 4, 1.0)}), InvalidInputError);  // even
    Image<double> nan = a.clone();
    nan(3, 3) = std::nan("");
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 0, {nan}), InvalidInputError);
    Image<double> negative = a.clone();
    negative *= -1.0;
    const PsfexPsf neg(Box2I({0, 0}, 10, 10), 0, {negative});
    EXPECT_THROW(neg.computeKernelImage({1, 1}), NumericalError);
}

namespace {

/// The effective (pixel-integrated) PSF of a round Gaussian of sigma s at offset (x, y), on nodes of step 1 / q.
Image<double> gaussianEpsfNodes(int q, int gridSize, double s) {
    auto axis = [s](double t) {
        const double k = 1.0 / (std::sqrt(2.0) * s);
        return 0.5 * (std::erf((t + 0.5) * k) - std::erf((t - 0.5) * k));
    };
    Image<double> g(gridSize, gridSize, 0.0);
    const int c = gridSize / 2;
    for (int j = 0; j < gridSize; ++j)
        for (int i = 0; i < gridSize; ++i) g(i, j) = axis(double(i - c) / q) * axis(double(j - c) / q);
    return g;
}

}  // namespace

// Oversampled model (q = 2), the spline through the effective PSF of a Gaussian of sigma 0.8 px (FWHM 1.9 px) sampled
// at the nodes: the kernel image is that PSF at the pixel centres (the spline passes through the samples);
// computeImage at a sub-pixel position is the effective PSF at the pixels' offsets to 2e-3 of its peak, with its
// centroid at the position (a cubic spline reproduces linear functions); the record carries the oversampling and
// round-trips.
TEST(PsfexPsf, OversampledModelInterpolatesTheEffectivePsf) {
    registerPsfexPsf();
    const int q = 2, n = 15, m = 31;
    const double sigma = 0.8;
    const Image<double> samples = gaussianEpsfNodes(q, m, sigma);
    const Image<double> nodes = PsfexPsf::nodesFromSamples(samples);
    const auto psf = PsfexPsf::make(Box2I({0, 0}, 200, 200), 0, {nodes}, q);
    EXPECT_EQ(psf->stampSize(), n);
    EXPECT_EQ(psf->gridSize(), m);
    EXPECT_EQ(psf->oversampling(), q);
    const Image<double> k = psf->computeKernelImage({50, 50});
    ASSERT_EQ(k.width(), n);
    double ks = 0.0;
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) ks += samples(m / 2 + q * (x - n / 2), m / 2 + q * (y - n / 2));
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) EXPECT_NEAR(k(x, y), samples(m / 2 + q * (x - n / 2), m / 2 + q * (y - n / 2)) / ks, 1e-14);
    const Image<double> fine = gaussianEpsfNodes(1, 1, sigma);  // peak of the effective PSF
    std::mt19937_64 rng(4);
    std::uniform_real_distribution<double> u(20.0, 180.0);
    for (int trial = 0; trial < 20; ++trial) {
        const Point2D p{u(rng), u(rng)};
        const Image<double> img = psf->computeImage(p);
        double s = 0, sx = 0, sy = 0, worst = 0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                const double px = x + img.xy0().x, py = y + img.xy0().y;
                s += img(x, y), sx += img(x, y) * px, sy += img(x, y) * py;
                auto axis = [sigma](double t) {
                    const double kk = 1.0 / (std::sqrt(2.0) * sigma);
                    return 0.5 * (std::erf((t + 0.5) * kk) - std::erf((t - 0.5) * kk));
                };
                worst = std::max(worst, std::fabs(img(x, y) - axis(px - p.x) * axis(py - p.y)));
            }
        EXPECT_NEAR(s, 1.0, 1e-12);
        EXPECT_LT(worst, 2e-3 * fine(0, 0));
        EXPECT_NEAR(sx / s, p.x, 1e-9);
        EXPECT_NEAR(sy / s, p.y, 1e-9);
    }
    const PsfRecord rec = psf->toRecord();
    ASSERT_TRUE(rec.has("oversampling"));
    EXPECT_EQ(rec.scalar("oversampling"), 2.0);
    const auto back = Psf::fromRecord(rec);
    EXPECT_TRUE(back->toRecord() == rec);
    EXPECT_TRUE(back->computeImage({33.3, 44.7}).identical(psf->computeImage({33.3, 44.7})));
    // A native model's record has no oversampling entry (records written before it existed read back unchanged).
    EXPECT_FALSE(PsfexPsf::make(Box2I({0, 0}, 10, 10), 0, {gaussianEpsfNodes(1, 15, 1.5)})->toRecord().has("oversampling"));
    PsfRecord bad = rec;
    bad.set("oversampling", {4.0});
    EXPECT_THROW(Psf::fromRecord(bad), InvalidInputError);
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 0, {nodes}, 0), InvalidInputError);
    EXPECT_THROW(PsfexPsf(Box2I({0, 0}, 10, 10), 0, {Image<double>(3, 3, 1.0)}, 3), InvalidInputError);  // no pixel reach
}

// renderNodes and accumulateNodes are each other's transpose (<R x, y> = <x, R^T y>), and the squared form is the
// diagonal of R^T R, at random phases and q = 2, 3.
TEST(PsfexPsf, RenderAndAccumulateAreAdjoint) {
    std::mt19937_64 rng(8);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    for (int q : {2, 3}) {
        const int n = 9, m = (q * n) % 2 ? q * n : q * n + 1;
        for (int trial = 0; trial < 5; ++trial) {
            const double dx = u(rng), dy = u(rng);
            Image<double> x(m, m, 0.0), y(n, n, 0.0);
            for (int j = 0; j < m; ++j)
                for (int i = 0; i < m; ++i) x(i, j) = u(rng);
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < n; ++i) y(i, j) = u(rng);
            const Image<double> rx = PsfexPsf::renderNodes(x, q, n, dx, dy);
            Image<double> rty(m, m, 0.0);
            PsfexPsf::accumulateNodes(y, q, dx, dy, rty);
            double a = 0.0, b = 0.0;
            for (int j = 0; j < n; ++j)
                for (int i = 0; i < n; ++i) a += rx(i, j) * y(i, j);
            for (int j = 0; j < m; ++j)
                for (int i = 0; i < m; ++i) b += x(i, j) * rty(i, j);
            EXPECT_NEAR(a, b, 1e-12 * std::fabs(a) + 1e-12);
            // Diagonal of R^T R at a few nodes: the squared accumulation of a unit image.
            Image<double> diag(m, m, 0.0);
            PsfexPsf::accumulateNodes(Image<double>(n, n, 1.0), q, dx, dy, diag, true);
            for (int node : {m / 2, m / 2 + 1, 3}) {
                Image<double> e(m, m, 0.0);
                e(node, m / 2) = 1.0;
                const Image<double> col = PsfexPsf::renderNodes(e, q, n, dx, dy);
                double c2 = 0.0;
                for (int j = 0; j < n; ++j)
                    for (int i = 0; i < n; ++i) c2 += col(i, j) * col(i, j);
                EXPECT_NEAR(diag(node, m / 2), c2, 1e-14);
            }
        }
    }
}

// reframed: the polynomials re-expanded in another frame give the same PSF at p as the original at p + offset (orders
// 0-3, native and oversampled, offsets with fractions, boxes of other sizes), and the identity reframing is a copy.
TEST(PsfexPsf, ReframedModelEqualsTheOriginalAtTheOffsetPosition) {
    registerPsfexPsf();
    for (std::uint64_t seed = 1; seed <= 3; ++seed)
        for (int q = 1; q <= 2; ++q)
            for (int order = 0; order <= PsfexPsf::kMaxSpatialOrder; ++order) {
                std::mt19937_64 rng(seed * 31 + std::uint64_t(q * 7 + order));
                std::uniform_real_distribution<double> u(-1.0, 1.0);
                const int m = q == 1 ? 21 : 41;
                // A positive base profile plus small random variations on every term (the model stays positive on
                // the visit box: |T_k| <= 1 there).
                std::vector<Image<double>> comps;
                for (int k = 0; k < PsfexPsf::numTerms(order); ++k) {
                    Image<double> c = gaussianEpsfNodes(q, m, 1.6);
                    if (q > 1) c = PsfexPsf::nodesFromSamples(c);
                    if (k > 0) {
                        for (int y = 0; y < m; ++y)
                            for (int x = 0; x < m; ++x) c(x, y) *= 0.02 * u(rng);
                    }
                    comps.push_back(std::move(c));
                }
                const Box2I visit({-700, -650}, 1650, 1580);
                const auto psf = PsfexPsf::make(visit, order, comps, q);
                // The identity is an exact copy.
                const auto same = psf->reframed(visit, {0.0, 0.0});
                for (std::size_t k = 0; k < comps.size(); ++k) EXPECT_TRUE(same->components()[k].identical(psf->components()[k]));
                for (int trial = 0; trial < 4; ++trial) {
                    const Box2I det({int(20 * u(rng)), int(20 * u(rng))}, 512 + int(40 * u(rng)), 480 + int(40 * u(rng)));
                    const bool integral = trial % 2 == 0;
                    Point2D off{-650.0 + 1100.0 * (0.5 + 0.5 * u(rng)), -600.0 + 1050.0 * (0.5 + 0.5 * u(rng))};
                    if (integral) off = {std::floor(off.x), std::floor(off.y)};
                    const auto r = psf->reframed(det, off);
                    EXPECT_EQ(r->bbox(), det);
                    EXPECT_EQ(r->spatialOrder(), order);
                    EXPECT_EQ(r->oversampling(), q);
                    EXPECT_EQ(r->gridSize(), m);
                    for (int s = 0; s < 6; ++s) {
                        const Point2D p{det.minX() + (0.5 + 0.5 * u(rng)) * det.width(), det.minY() + (0.5 + 0.5 * u(rng)) * det.height()};
                        const Point2D pv{p.x + off.x, p.y + off.y};
                        // The node grids (unnormalised) agree to rounding, hence the kernel images.
                        const Image<double> a = r->evaluateUnnormalised(p), b = psf->evaluateUnnormalised(pv);
                        const Image<double> ka = r->computeKernelImage(p), kb = psf->computeKernelImage(pv);
                        double worst = 0.0, worstK = 0.0, peak = 0.0;
                        for (int y = 0; y < m; ++y)
                            for (int x = 0; x < m; ++x) worst = std::max(worst, std::fabs(a(x, y) - b(x, y))), peak = std::max(peak, std::fabs(b(x, y)));
                        for (int y = 0; y < ka.height(); ++y)
                            for (int x = 0; x < ka.width(); ++x) worstK = std::max(worstK, std::fabs(ka(x, y) - kb(x, y)));
                        EXPECT_LT(worst, 1e-13 * peak) << "order " << order << " q " << q;
                        EXPECT_LT(worstK, 1e-13) << "order " << order << " q " << q;
                        // With an integral offset the pixel grids coincide: computeImage agrees too, on the shifted box.
                        if (integral) {
                            const Image<double> ia = r->computeImage(p), ib = psf->computeImage(pv);
                            ASSERT_EQ(ia.width(), ib.width());
                            EXPECT_EQ(ia.xy0().x + int(off.x), ib.xy0().x);
                            EXPECT_EQ(ia.xy0().y + int(off.y), ib.xy0().y);
                            double wi = 0.0;
                            for (int y = 0; y < ia.height(); ++y)
                                for (int x = 0; x < ia.width(); ++x) wi = std::max(wi, std::fabs(ia(x, y) - ib(x, y)));
                            EXPECT_LT(wi, 1e-12) << "order " << order << " q " << q;
                        }
                        // The moments (from the components' moments) agree.
                        const PsfShape sa = r->computeShape(p), sb = psf->computeShape(pv);
                        EXPECT_NEAR(sa.ixx, sb.ixx, 1e-11);
                        EXPECT_NEAR(sa.iyy, sb.iyy, 1e-11);
                        EXPECT_NEAR(sa.ixy, sb.ixy, 1e-11);
                    }
                }
                EXPECT_THROW(psf->reframed(Box2I(), {0.0, 0.0}), InvalidInputError);
                EXPECT_THROW(psf->reframed(visit, {std::nan(""), 0.0}), InvalidInputError);
            }
}
