// Convolution against a brute-force quadruple loop (true convolution, see core/Kernel.h), direct vs
// FFT, separable vs general, edges, masked images (variance by K^2, mask OR), flux conservation and
// concurrent FFT use.
//
// Tolerance: |ours - brute| <= tol * sum_{i,j} |K(i,j)| |in(...)| (the natural rounding scale of the
// sum), tol = 1e-5 for float and 1e-10 for double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "core/Convolution.h"
#include "core/Error.h"

using namespace drp;

namespace {

using Method = ConvolutionControl::Method;

template <typename T>
constexpr double tolerance() {
    return std::is_same_v<T, float> ? 1e-5 : 1e-10;
}

template <typename T>
Image<T> randomImage(std::mt19937_64& rng, int w, int h, double offset = 0.0) {
    std::normal_distribution<double> g(offset, 1.0);
    Image<T> img(w, h);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) img(x, y) = T(g(rng));
    return img;
}

Kernel randomKernel(std::mt19937_64& rng, int kw, int kh, bool separable, bool randomCentre) {
    std::uniform_real_distribution<double> u(-0.5, 1.0);
    Point2I c{(kw - 1) / 2, (kh - 1) / 2};
    if (randomCentre) c = {std::uniform_int_distribution<int>(0, kw - 1)(rng), std::uniform_int_distribution<int>(0, kh - 1)(rng)};
    if (separable) {
        std::vector<double> x(static_cast<std::size_t>(kw)), y(static_cast<std::size_t>(kh));
        for (double& v : x) v = u(rng);
        for (double& v : y) v = u(rng);
        return Kernel::separable(x, y, c);
    }
    ImageD k(kw, kh);
    for (int j = 0; j < kh; ++j)
        for (int i = 0; i < kw; ++i) k(i, j) = u(rng);
    return Kernel(k, c);
}

// out(x, y) = sum K(i, j) in(x - (i - cx), y - (j - cy)), and the L1 scale; NaN when off the image.
template <typename T>
void bruteForce(const Image<T>& in, const Kernel& k, ImageD& out, ImageD& scale) {
    out = ImageD(in.width(), in.height(), std::numeric_limits<double>::quiet_NaN());
    scale = ImageD(in.width(), in.height(), 0.0);
    const Point2I c = k.centre();
    for (int y = 0; y < in.height(); ++y)
        for (int x = 0; x < in.width(); ++x) {
            double sum = 0, l1 = 0;
            bool inside = true;
            for (int j = 0; j < k.height(); ++j)
                for (int i = 0; i < k.width(); ++i) {
                    int xx = x - (i - c.x), yy = y - (j - c.y);
                    if (xx < 0 || yy < 0 || xx >= in.width() || yy >= in.height()) {
                        inside = false;
                        continue;
                    }
                    sum += k(i, j) * double(in(xx, yy));
                    l1 += std::fabs(k(i, j) * double(in(xx, yy)));
                }
            if (inside) {
                out(x, y) = sum;
                scale(x, y) = l1;
            }
        }
}

template <typename T>
::testing::AssertionResult matchesBruteForce(const Image<T>& got, const ImageD& ref, const ImageD& scale, double tol) {
    for (int y = 0; y < ref.height(); ++y)
        for (int x = 0; x < ref.width(); ++x) {
            double r = ref(x, y), g = double(got(x, y));
            if (std::isnan(r)) {
                if (!std::isnan(g)) return ::testing::AssertionFailure() << "edge pixel " << x << "," << y << " = " << g;
                continue;
            }
            if (!(std::fabs(g - r) <= tol * std::max(scale(x, y), 1e-30)))
                return ::testing::AssertionFailure() << "pixel " << x << "," << y << ": " << g << " vs " << r
                                                     << " (scale " << scale(x, y) << ")";
        }
    return ::testing::AssertionSuccess();
}

template <typename T>
void checkBruteForce() {
    int runs = 0;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_int_distribution<int> ksz(1, 10), isz(12, 60);
        const int kw = ksz(rng), kh = ksz(rng);
        const int w = isz(rng), h = isz(rng);
        Image<T> in = randomImage<T>(rng, w + 3, h + 2, seed % 2 ? 5.0 : 0.0);
        if (seed % 3 == 0) in = in.subImage(Box2I({2, 1}, w, h));  // a non-contiguous view
        for (bool separable : {false, true}) {
            Kernel k = randomKernel(rng, kw, kh, separable, seed % 4 == 0);
            ImageD ref, scale;
            bruteForce(in, k, ref, scale);
            for (Method m : {Method::Direct, Method::Fft}) {
                ConvolutionControl ctrl;
                ctrl.method = m;
                ctrl.normalize = false;
                Image<T> out = convolved(in, k, ctrl);
                EXPECT_EQ(out.bbox(), in.bbox());
                EXPECT_TRUE(matchesBruteForce(out, ref, scale, tolerance<T>()))
                    << "seed " << seed << " kernel " << kw << "x" << kh << " centre " << k.centre().x << ","
                    << k.centre().y << " separable " << separable << " fft " << (m == Method::Fft);
                ++runs;
            }
        }
    }
    EXPECT_EQ(runs, 160);
}

}  // namespace

TEST(Kernel, ConstructionAndConventions) {
    ImageD img(4, 3, 1.0);
    Kernel k(img);
    EXPECT_EQ(k.centre(), (Point2I{1, 1}));  // (w-1)/2, (h-1)/2
    EXPECT_FALSE(k.isSeparable());
    EXPECT_DOUBLE_EQ(k.sum(), 12.0);
    EXPECT_DOUBLE_EQ(k.normalized().sum(), 1.0);
    EXPECT_EQ(k.image().xy0(), (Point2I{-1, -1}));
    EXPECT_THROW(Kernel(img, Point2I{4, 0}), LogicError);
    const ImageD emptyImage;
    EXPECT_THROW(Kernel{emptyImage}, LogicError);
    EXPECT_THROW(Kernel(img).withCentre({0, 3}), LogicError);

    Kernel g = Kernel::gaussian(1.5);
    EXPECT_TRUE(g.isSeparable());
    EXPECT_EQ(g.width(), 2 * 6 + 1);
    EXPECT_EQ(g.centre(), (Point2I{6, 6}));
    EXPECT_NEAR(g.sum(), 1.0, 1e-15);
    EXPECT_DOUBLE_EQ(g(6, 6), g.xVector()[6] * g.yVector()[6]);
    Kernel g2 = g.squared();
    EXPECT_TRUE(g2.isSeparable());
    EXPECT_DOUBLE_EQ(g2(3, 5), g(3, 5) * g(3, 5));
    Kernel gen = g.toGeneral();
    EXPECT_FALSE(gen.isSeparable());
    EXPECT_DOUBLE_EQ(gen(2, 9), g(2, 9));
    EXPECT_THROW(Kernel::gaussian(0.0), LogicError);
    EXPECT_THROW(Kernel::separable({1.0, -1.0}, {1.0}).normalized(), InvalidInputError);
}

TEST(Convolution, FriendlySizesAndValidBox) {
    EXPECT_EQ(fftFriendlySize(1), 1);
    EXPECT_EQ(fftFriendlySize(11), 12);
    EXPECT_EQ(fftFriendlySize(4096), 4096);
    EXPECT_EQ(fftFriendlySize(4097), 4116);  // 2^2 3 7^3
    Kernel k(ImageD(5, 4, 1.0));             // centre (2, 1)
    EXPECT_EQ(validConvolutionBox(20, 10, k), Box2I::fromCorners({2, 2}, {17, 8}));
    EXPECT_TRUE(validConvolutionBox(4, 10, k).empty());
}

TEST(Convolution, MatchesBruteForceFloat) { checkBruteForce<float>(); }
TEST(Convolution, MatchesBruteForceDouble) { checkBruteForce<double>(); }

TEST(Convolution, IsTrueConvolutionNotCorrelation) {
    ImageD kimg(3, 3, 0.0);
    kimg(2, 1) = 1.0;  // one pixel right of the centre
    ImageD in(8, 8);
    for (int y = 0; y < 8; ++y)
        for (int x = 0; x < 8; ++x) in(x, y) = x + 100 * y;
    for (Method m : {Method::Direct, Method::Fft}) {
        ConvolutionControl ctrl;
        ctrl.method = m;
        ImageD out = convolved(in, Kernel(kimg), ctrl);
        EXPECT_DOUBLE_EQ(out(4, 4), in(3, 4));  // the image moved +1 in x
    }
}

TEST(Convolution, SeparableEqualsGeneralAndFftEqualsDirect) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        std::mt19937_64 rng(seed);
        const int ks = 3 + 2 * int(seed * 3 % 11);
        ImageF inF = randomImage<float>(rng, 200 + int(seed), 157, 10.0);
        ImageD inD = randomImage<double>(rng, 143, 211 + int(seed), 10.0);
        Kernel sep = randomKernel(rng, ks, ks + int(seed % 2), true, seed % 2 == 0);
        Kernel gen = sep.toGeneral();
        ConvolutionControl d, f;
        d.method = Method::Direct;
        f.method = Method::Fft;
        d.normalize = f.normalize = false;
        ImageD ref, scale;
        bruteForce(inF, gen, ref, scale);
        for (const auto& k : {sep, gen}) {
            for (const auto& c : {d, f}) {
                EXPECT_TRUE(matchesBruteForce(convolved(inF, k, c), ref, scale, 1e-5)) << seed;
            }
        }
        bruteForce(inD, gen, ref, scale);
        for (const auto& k : {sep, gen}) {
            for (const auto& c : {d, f}) {
                EXPECT_TRUE(matchesBruteForce(convolved(inD, k, c), ref, scale, 1e-10)) << seed;
            }
        }
    }
}

TEST(Convolution, EdgeModes) {
    std::mt19937_64 rng(3);
    ImageD in = randomImage<double>(rng, 30, 20);
    Kernel k = randomKernel(rng, 6, 5, false, true);
    const Box2I v = validConvolutionBox(30, 20, k);
    for (auto edge : {ConvolutionControl::Edge::Nan, ConvolutionControl::Edge::CopyInput, ConvolutionControl::Edge::Zero}) {
        ConvolutionControl ctrl;
        ctrl.edge = edge;
        ImageD out = convolved(in, k, ctrl);
        std::int64_t nanCount = 0;
        for (int y = 0; y < 20; ++y)
            for (int x = 0; x < 30; ++x) {
                if (v.contains(Point2I{x, y})) {
                    EXPECT_TRUE(std::isfinite(out(x, y)));
                    continue;
                }
                if (edge == ConvolutionControl::Edge::Nan) nanCount += std::isnan(out(x, y));
                if (edge == ConvolutionControl::Edge::CopyInput) {
                    EXPECT_EQ(out(x, y), in(x, y));
                }
                if (edge == ConvolutionControl::Edge::Zero) {
                    EXPECT_EQ(out(x, y), 0.0);
                }
            }
        if (edge == ConvolutionControl::Edge::Nan) {
            EXPECT_EQ(nanCount, 30 * 20 - v.area());
        }
    }
    // An image smaller than the kernel is all edge.
    ImageD tiny(3, 3, 1.0);
    ImageD out = convolved(tiny, Kernel::gaussian(2.0));
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 3; ++x) EXPECT_TRUE(std::isnan(out(x, y)));
}

TEST(Convolution, NormalisedKernelConservesFlux) {
    for (std::uint64_t seed = 1; seed <= 8; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_int_distribution<int> pos(25, 174);
        std::uniform_real_distribution<double> flux(10, 1000);
        ImageF inF(200, 200, 0.0f);
        ImageD inD(200, 200, 0.0);
        double total = 0;
        for (int s = 0; s < 30; ++s) {  // point sources well away from the edges
            int x = pos(rng), y = pos(rng);
            double f = flux(rng);
            inF(x, y) += float(f);
            inD(x, y) += f;
            total += f;
        }
        // An unnormalised asymmetric kernel: normalize = true (the default) scales it to sum 1.
        ImageD kimg(9 + int(seed % 3), 11);
        for (int j = 0; j < kimg.height(); ++j)
            for (int i = 0; i < kimg.width(); ++i) kimg(i, j) = std::uniform_real_distribution<double>(0.1, 1.0)(rng);
        Kernel k(kimg, Point2I{2, 7});
        std::vector<double> xv(9, 0.0);
        for (double& v : xv) v = std::uniform_real_distribution<double>(0.1, 2.0)(rng);
        Kernel sep = Kernel::separable(xv, {0.5, 1.0, 3.0});
        for (const Kernel& kk : {k, sep, Kernel::gaussian(2.5)})
            for (Method m : {Method::Direct, Method::Fft}) {
                ConvolutionControl ctrl;
                ctrl.method = m;
                ImageF oF = convolved(inF, kk, ctrl);
                ImageD oD = convolved(inD, kk, ctrl);
                double sF = 0, sD = 0;
                for (int y = 0; y < 200; ++y)
                    for (int x = 0; x < 200; ++x) {
                        if (std::isfinite(oF(x, y))) sF += oF(x, y);
                        if (std::isfinite(oD(x, y))) sD += oD(x, y);
                    }
                EXPECT_NEAR(sF, total, 1e-5 * total) << seed;
                EXPECT_NEAR(sD, total, 1e-11 * total) << seed;
            }
    }
}

TEST(Convolution, MaskedImageVarianceMaskAndEdge) {
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        std::mt19937_64 rng(seed);
        const int w = 40, h = 33;
        MaskedImageF in(Box2I({100, 200}, w, h));
        std::uniform_real_distribution<double> u(0.5, 2.0);
        in.image().assign(randomImage<float>(rng, w, h, 3.0));
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) in.variance()(x, y) = float(u(rng));
        const MaskPixel cr = in.mask().planeBitMask("CR"), sat = in.mask().planeBitMask("SAT");
        const Point2I p1{17, 12}, p2{3, 30};
        in.mask()(p1.x, p1.y) = cr;
        in.mask()(p2.x, p2.y) = sat;
        Kernel k = randomKernel(rng, 4 + int(seed % 3), 5, seed % 2 == 0, seed % 3 == 0);
        for (Method m : {Method::Direct, Method::Fft}) {
            ConvolutionControl ctrl;
            ctrl.method = m;
            ctrl.normalize = false;
            MaskedImageF out = convolved(in, k, ctrl);
            EXPECT_EQ(out.bbox(), in.bbox());
            ImageD ref, scale;
            bruteForce(in.image(), k, ref, scale);
            EXPECT_TRUE(matchesBruteForce(out.image(), ref, scale, 1e-5));
            bruteForce(in.variance(), k.squared(), ref, scale);
            EXPECT_TRUE(matchesBruteForce(out.variance(), ref, scale, 1e-5));
            const Box2I v = validConvolutionBox(w, h, k);
            const MaskPixel edge = out.mask().planeBitMask("EDGE");
            const Point2I c = k.centre();
            for (int y = 0; y < h; ++y)
                for (int x = 0; x < w; ++x) {
                    MaskPixel got = out.mask()(x, y);
                    if (!v.contains(Point2I{x, y})) {
                        EXPECT_EQ(got, in.mask()(x, y) | edge) << x << "," << y;
                        continue;
                    }
                    // The footprint box of (x, y) covers input x - (kw-1-cx) .. x + cx.
                    auto covers = [&](Point2I p) {
                        return p.x >= x - (k.width() - 1 - c.x) && p.x <= x + c.x && p.y >= y - (k.height() - 1 - c.y) &&
                               p.y <= y + c.y;
                    };
                    MaskPixel want = (covers(p1) ? cr : 0) | (covers(p2) ? sat : 0);
                    EXPECT_EQ(got, want) << x << "," << y;
                }
        }
    }
}

TEST(Convolution, AutoAvoidsFftForNonFiniteInput) {
    std::mt19937_64 rng(5);
    ImageF in = randomImage<float>(rng, 80, 70);
    in(40, 35) = std::numeric_limits<float>::quiet_NaN();
    Kernel k = randomKernel(rng, 21, 21, false, false);
    ConvolutionControl ctrl;
    ctrl.normalize = false;
    ASSERT_EQ(chooseConvolutionMethod(k, ctrl), Method::Fft);  // a 21x21 kernel is above the crossover
    ImageF out = convolved(in, k, ctrl);
    int nanCount = 0;
    for (int y = 10; y < 60; ++y)
        for (int x = 10; x < 70; ++x) nanCount += std::isnan(out(x, y));
    EXPECT_EQ(nanCount, 21 * 21);  // only the footprint of the NaN pixel
}

TEST(Convolution, ConcurrentFftCallsAgreeWithSerial) {
    std::mt19937_64 rng(11);
    std::vector<ImageF> inputs;
    for (int s = 0; s < 6; ++s) inputs.push_back(randomImage<float>(rng, 90 + 7 * s, 64 + 5 * (s % 3)));
    Kernel k = Kernel::gaussian(3.0);
    ConvolutionControl ctrl;
    ctrl.method = Method::Fft;
    std::vector<ImageF> serial;
    for (const auto& in : inputs) serial.push_back(convolved(in, k, ctrl));
    std::vector<ImageF> parallel(inputs.size());
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t)
        threads.emplace_back([&, t] {
            for (std::size_t i = std::size_t(t); i < inputs.size(); i += 3) parallel[i] = convolved(inputs[i], k, ctrl);
        });
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < inputs.size(); ++i) EXPECT_TRUE(parallel[i].identical(serial[i])) << i;
}

TEST(Convolution, ErrorsAndControl) {
    ImageF a(10, 10), b(9, 10);
    Kernel k = Kernel::gaussian(1.0);
    EXPECT_THROW(convolve(b, a, k), LogicError);
    EXPECT_THROW(convolve(a, a, k), LogicError);
    EXPECT_THROW(convolve(a.subImage(Box2I({0, 0}, 10, 10)), a, k), LogicError);
    EXPECT_THROW(convolved(a, Kernel()), LogicError);
    ImageD zeroSum(3, 1, 0.0);
    zeroSum(0, 0) = 1;
    zeroSum(2, 0) = -1;
    EXPECT_THROW(convolved(a, Kernel(zeroSum)), InvalidInputError);
    ConvolutionControl noNorm;
    noNorm.normalize = false;
    EXPECT_NO_THROW(convolved(a, Kernel(zeroSum), noNorm));

    ConvolutionControl c1, c2;
    EXPECT_EQ(c1, c2);
    c2.fftCrossoverArea = 0;
    EXPECT_NE(c1, c2);
    EXPECT_THROW(c2.validate(), ConfigError);
    c2 = c1;
    c2.edgeMaskPlane.clear();
    EXPECT_THROW(c2.validate(), ConfigError);
    c2 = c1;
    c2.fftCrossoverSeparable = 1;
    EXPECT_THROW(c2.validate(), ConfigError);
}
