// makeStatistics against brute force: full sorts and naive two-pass loops on random images with masks
// and NaNs, every pixel type, many seeds; clipped statistics against a straightforward reference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "core/Error.h"
#include "core/Statistics.h"

using namespace drp;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Used {
    std::vector<double> x;
    std::vector<double> w;  // inverse variances (only when weighted)
};

template <typename T>
Used usedPixels(const Image<T>& img, const Mask* mask, MaskPixel bad, const Image<float>* var, bool weighted) {
    Used u;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            double v = double(img(x, y));
            if (!std::isfinite(v)) continue;
            if (mask && ((*mask)(x, y) & bad)) continue;
            if (weighted) {
                double vv = (*var)(x, y);
                if (!(vv > 0) || !std::isfinite(vv)) continue;
                u.w.push_back(1.0 / vv);
            }
            u.x.push_back(v);
        }
    return u;
}

double refQuantile(std::vector<double> v, double q) {  // full sort, type 7
    if (v.empty()) return kNaN;
    std::sort(v.begin(), v.end());
    double h = q * double(v.size() - 1);
    auto k = std::size_t(std::floor(h));
    double frac = h - double(k);
    if (frac > 0 && k + 1 < v.size()) return v[k] + frac * (v[k + 1] - v[k]);
    return v[k];
}

struct RefMoments {
    double mean = kNaN, stdev = kNaN, sum = 0;
};

// Naive two-pass (weighted) mean and unbiased standard deviation of the entries with keep[i].
RefMoments refMoments(const std::vector<double>& x, const std::vector<double>& w, const std::vector<bool>& keep) {
    RefMoments r;
    double sw = 0, sw2 = 0, swx = 0, n = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!keep[i]) continue;
        double wi = w.empty() ? 1.0 : w[i];
        sw += wi;
        sw2 += wi * wi;
        swx += wi * x[i];
        n += 1;
    }
    r.sum = swx;
    if (n == 0) return r;
    r.mean = swx / sw;
    double ss = 0;
    for (std::size_t i = 0; i < x.size(); ++i) {
        if (!keep[i]) continue;
        double wi = w.empty() ? 1.0 : w[i];
        ss += wi * (x[i] - r.mean) * (x[i] - r.mean);
    }
    if (n >= 2) r.stdev = std::sqrt(ss / (sw - sw2 / sw));
    return r;
}

struct RefClip {
    double mean, stdev;
    std::int64_t count;
    int iterations;
};

// The documented clipping algorithm, written the obvious way (explicit kept sets).
RefClip refClip(const std::vector<double>& x, const std::vector<double>& w, const StatisticsControl& ctrl) {
    const std::size_t n = x.size();
    std::vector<bool> all(n, true);
    double median = refQuantile(x, 0.5);
    std::vector<double> dev(n);
    for (std::size_t i = 0; i < n; ++i) dev[i] = std::fabs(x[i] - median);
    double mad = 1.4826 * refQuantile(dev, 0.5);
    double sd = refMoments(x, w, all).stdev;
    double c = median, s = mad > 0 ? mad : sd;
    if (!(s >= 0)) s = 0;
    RefClip r{c, n >= 2 ? s : kNaN, std::int64_t(n), 0};
    std::vector<bool> prev;
    for (int it = 1; it <= ctrl.numIter; ++it) {
        std::vector<bool> keep(n);
        std::int64_t kept = 0;
        for (std::size_t i = 0; i < n; ++i) {
            keep[i] = std::fabs(x[i] - c) <= ctrl.numSigmaClip * s;
            kept += keep[i];
        }
        if (it > 1 && keep == prev) break;
        if (kept < 2) break;
        RefMoments m = refMoments(x, w, keep);
        r = {m.mean, m.stdev, kept, it};
        bool small = ctrl.convergenceTolerance > 0 && std::fabs(m.stdev - s) <= ctrl.convergenceTolerance * s;
        prev = keep;
        c = m.mean;
        s = m.stdev;
        if (small) break;
    }
    return r;
}

// |a - b| <= tol * scale, NaN matching NaN.
::testing::AssertionResult close(double a, double b, double tol, double scale) {
    if (std::isnan(a) && std::isnan(b)) return ::testing::AssertionSuccess();
    if (std::fabs(a - b) <= tol * scale) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << a << " vs " << b << " (diff " << (a - b) << ", allowed " << tol * scale << ")";
}

template <typename T>
T randomPixel(std::mt19937_64& rng, double offset, double sigma) {
    std::normal_distribution<double> g(offset, sigma);
    if constexpr (std::is_same_v<T, std::uint16_t>) {
        return T(std::clamp(std::lround(g(rng)), 0L, 65535L));
    } else if constexpr (std::is_same_v<T, std::int32_t>) {
        return T(std::lround(g(rng)));
    } else {
        return T(g(rng));
    }
}

// A random image (sometimes a non-contiguous sub-image view) with a mask and, for floating types, NaNs.
template <typename T>
struct Scene {
    Image<T> image;
    Mask mask;
    Image<float> variance;
};

template <typename T>
Scene<T> makeScene(std::uint64_t seed, double outlierFraction = 0.0) {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int> dim(1, 120);
    std::uniform_real_distribution<double> u(0, 1);
    int w = dim(rng), h = dim(rng);
    if (seed % 7 == 0) w = h = 1;  // tiny images too
    double offset = (seed % 3 == 0) ? 0.0 : 1000.0 * u(rng);
    double sigma = 1.0 + 50.0 * u(rng);
    Image<T> parent(w + 4, h + 3);
    Mask parentMask(w + 4, h + 3);
    Image<float> parentVar(w + 4, h + 3);
    const MaskPixel bad = parentMask.planeBitMask("BAD"), sat = parentMask.planeBitMask("SAT"),
                    det = parentMask.planeBitMask("DETECTED");
    for (int y = 0; y < parent.height(); ++y)
        for (int x = 0; x < parent.width(); ++x) {
            parent(x, y) = randomPixel<T>(rng, offset, sigma);
            if (u(rng) < outlierFraction) parent(x, y) = randomPixel<T>(rng, offset + 30 * sigma, 10 * sigma);
            double r = u(rng);
            parentMask(x, y) = r < 0.05 ? bad : r < 0.08 ? sat : r < 0.3 ? det : 0;
            if constexpr (std::is_floating_point_v<T>)
                if (u(rng) < 0.03) parent(x, y) = std::numeric_limits<T>::quiet_NaN();
            double vr = u(rng);
            parentVar(x, y) = vr < 0.02 ? 0.0f : vr < 0.03 ? -1.0f : float(sigma * sigma * (0.5 + u(rng)));
        }
    Box2I sub({1, 2}, w, h);
    if (seed % 2 == 0) return {parent.subImage(sub), parentMask.subImage(sub), parentVar.subImage(sub)};
    return {parent.subImage(sub).clone(), parentMask.subImage(sub).clone(), parentVar.subImage(sub).clone()};
}

template <typename T>
void checkExactAgainstBruteForce(std::uint64_t seed) {
    Scene<T> s = makeScene<T>(seed);
    StatisticsControl ctrl;
    ctrl.badMask = s.mask.planeBitMask(std::vector<std::string>{"BAD", "SAT"});
    ctrl.quantiles = {0.0, 0.1, 0.25, 0.25, 0.9, 0.5, 1.0, 0.999, 0.013};
    std::mt19937_64 rng(seed * 7 + 1);
    ctrl.quantiles.push_back(std::uniform_real_distribution<double>(0, 1)(rng));
    for (bool weighted : {false, true}) {
        ctrl.weighted = weighted;
        Statistics st = makeStatistics(s.image, &s.mask, &s.variance, ctrl);
        Used u = usedPixels(s.image, &s.mask, ctrl.badMask, &s.variance, weighted);
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " weighted " << weighted << " n " << u.x.size());
        ASSERT_EQ(st.count, std::int64_t(u.x.size()));
        std::vector<bool> all(u.x.size(), true);
        RefMoments m = refMoments(u.x, u.w, all);
        double scale = std::max({1e-300, std::fabs(m.mean), std::isnan(m.stdev) ? 0.0 : m.stdev});
        EXPECT_TRUE(close(st.mean, m.mean, 1e-12, scale));
        EXPECT_TRUE(close(st.stdev, m.stdev, 1e-12, std::isnan(m.stdev) ? 1.0 : std::max(m.stdev, 1e-300)));
        EXPECT_TRUE(close(st.sum, u.x.empty() ? 0.0 : m.sum, 1e-12, std::max(1.0, std::fabs(m.sum))));
        if (!u.x.empty()) {
            EXPECT_EQ(st.min, *std::min_element(u.x.begin(), u.x.end()));
            EXPECT_EQ(st.max, *std::max_element(u.x.begin(), u.x.end()));
        } else {
            EXPECT_TRUE(std::isnan(st.min) && std::isnan(st.max) && std::isnan(st.median));
        }
        double med = refQuantile(u.x, 0.5);
        EXPECT_TRUE(close(st.median, med, 1e-12, std::max(std::fabs(med), 1e-300)));
        ASSERT_EQ(st.quantiles.size(), ctrl.quantiles.size());
        for (std::size_t i = 0; i < ctrl.quantiles.size(); ++i) {
            double q = refQuantile(u.x, ctrl.quantiles[i]);
            EXPECT_TRUE(close(st.quantiles[i], q, 1e-12, std::max(std::fabs(q), 1e-300))) << "q=" << ctrl.quantiles[i];
        }
        std::vector<double> dev(u.x.size());
        for (std::size_t i = 0; i < dev.size(); ++i) dev[i] = std::fabs(u.x[i] - med);
        double mad = 1.4826 * refQuantile(dev, 0.5);
        EXPECT_TRUE(close(st.madSigma, mad, 1e-12, std::max(mad, 1e-300)));
        // Moments only: a path that makes no copy of the pixels must agree too.
        StatisticsControl momentsOnly = ctrl;
        momentsOnly.properties = kStatMean | kStatStdev | kStatMinMax | kStatSum;
        Statistics sm = makeStatistics(s.image, &s.mask, &s.variance, momentsOnly);
        EXPECT_EQ(sm.count, st.count);
        EXPECT_TRUE(close(sm.mean, m.mean, 1e-12, scale));
        EXPECT_TRUE(close(sm.stdev, m.stdev, 1e-12, std::isnan(m.stdev) ? 1.0 : std::max(m.stdev, 1e-300)));
        EXPECT_TRUE(close(sm.meanError, st.meanError, 1e-12, std::isnan(st.meanError) ? 1.0 : st.meanError));
        EXPECT_TRUE(sm.min == st.min || (std::isnan(sm.min) && std::isnan(st.min)));
        EXPECT_TRUE(sm.max == st.max || (std::isnan(sm.max) && std::isnan(st.max)));
        EXPECT_TRUE(std::isnan(sm.median));
        if (weighted && !u.x.empty()) {
            double sw = 0;
            for (double wi : u.w) sw += wi;
            EXPECT_TRUE(close(st.meanError, 1.0 / std::sqrt(sw), 1e-12, 1.0 / std::sqrt(sw)));
        }
    }
}

}  // namespace

TEST(Statistics, ExactQuantitiesMatchBruteForceFloat) {
    for (std::uint64_t seed = 1; seed <= 60; ++seed) checkExactAgainstBruteForce<float>(seed);
}
TEST(Statistics, ExactQuantitiesMatchBruteForceDouble) {
    for (std::uint64_t seed = 1; seed <= 60; ++seed) checkExactAgainstBruteForce<double>(seed);
}
TEST(Statistics, ExactQuantitiesMatchBruteForceInt32) {
    for (std::uint64_t seed = 1; seed <= 60; ++seed) checkExactAgainstBruteForce<std::int32_t>(seed);
}
TEST(Statistics, ExactQuantitiesMatchBruteForceUint16) {
    for (std::uint64_t seed = 1; seed <= 60; ++seed) checkExactAgainstBruteForce<std::uint16_t>(seed);
}

TEST(Statistics, ClippedMatchesReferenceImplementation) {
    int iterationsSeen[8] = {};
    for (std::uint64_t seed = 1; seed <= 80; ++seed) {
        Scene<float> s = makeScene<float>(seed, 0.1);
        StatisticsControl ctrl;
        ctrl.badMask = s.mask.planeBitMask("BAD");
        ctrl.numSigmaClip = 2.0 + double(seed % 4) * 0.5;
        ctrl.numIter = 1 + int(seed % 7);
        ctrl.convergenceTolerance = (seed % 3 == 0) ? 0.01 : 0.0;
        ctrl.weighted = seed % 2 == 0;
        Statistics st = makeStatistics(s.image, &s.mask, &s.variance, ctrl);
        Used u = usedPixels(s.image, &s.mask, ctrl.badMask, &s.variance, ctrl.weighted);
        RefClip r = refClip(u.x, u.w, ctrl);
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " n " << u.x.size());
        EXPECT_EQ(st.clipIterations, r.iterations);
        EXPECT_EQ(st.clippedCount, r.count);
        double scale = std::max({1e-300, std::fabs(r.mean), std::isnan(r.stdev) ? 0.0 : r.stdev});
        EXPECT_TRUE(close(st.clippedMean, r.mean, 1e-10, scale));
        EXPECT_TRUE(close(st.clippedStdev, r.stdev, 1e-10, std::isnan(r.stdev) ? 1.0 : std::max(r.stdev, 1e-300)));
        ++iterationsSeen[std::min(r.iterations, 7)];
    }
    // The seeds exercise early convergence as well as running out of iterations.
    int distinct = 0;
    for (int c : iterationsSeen) distinct += c > 0;
    EXPECT_GE(distinct, 4);
}

TEST(Statistics, ClippingRecoversGaussianUnderOutliers) {
    for (std::uint64_t seed = 1; seed <= 10; ++seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> g(1000.0, 5.0);
        std::uniform_real_distribution<double> u(0, 1);
        ImageF img(300, 300);
        for (int y = 0; y < 300; ++y)
            for (int x = 0; x < 300; ++x) img(x, y) = float(u(rng) < 0.05 ? 1000.0 + 200.0 * (1 + u(rng)) : g(rng));
        StatisticsControl ctrl;
        ctrl.numIter = 20;
        Statistics st = makeStatistics(img, ctrl);
        // 3-sigma clipping of a Gaussian keeps 99.73 %: the clipped stdev is 0.986 sigma.
        EXPECT_NEAR(st.clippedMean, 1000.0, 0.1) << seed;
        EXPECT_NEAR(st.clippedStdev, 5.0 * 0.986, 0.1) << seed;
        EXPECT_GT(st.mean, 1010.0);  // the plain mean is pulled by the outliers
        EXPECT_NEAR(st.madSigma, 5.0 * 1.06, 0.4) << seed;
        EXPECT_LT(st.clipIterations, 20);  // converged before running out
    }
}

// clipStartStride: the clipping starts from the median and MAD of every k-th used value. On a 128 x 128 bin of
// Gaussian noise with 5% outliers (a background bin) the clipped mean is the stride-1 one to a small fraction
// of its own error (sigma / 128), over many seeds; the median and MAD, not asked for, are NaN; asked for, they are
// of all values and the stride is not used.
TEST(Statistics, ClippingFromAStridedStartConvergesToTheSameMean) {
    double worst = 0;
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> g(100.0, 5.0);
        std::uniform_real_distribution<double> u(0, 1);
        ImageF img(128, 128);
        Mask mask(128, 128);
        const MaskPixel bad = mask.planeBitMask("BAD");
        for (int y = 0; y < 128; ++y)
            for (int x = 0; x < 128; ++x) {
                img(x, y) = float(u(rng) < 0.05 ? 100.0 + 60.0 * (1 + u(rng)) : g(rng));
                if (u(rng) < 0.1) mask(x, y) = bad;
            }
        StatisticsControl ctrl;
        ctrl.numIter = 3;
        ctrl.badMask = bad;
        ctrl.properties = kStatClipped;
        const Statistics all = makeStatistics(img, mask, ctrl);
        ctrl.clipStartStride = 4;
        const Statistics strided = makeStatistics(img, mask, ctrl);
        EXPECT_TRUE(std::isnan(strided.median) && std::isnan(strided.madSigma));
        EXPECT_EQ(strided.count, all.count);
        const double error = 5.0 / std::sqrt(double(all.count));
        worst = std::max(worst, std::fabs(strided.clippedMean - all.clippedMean) / error);
        EXPECT_NEAR(strided.clippedStdev, all.clippedStdev, 0.02 * all.clippedStdev) << seed;
        ctrl.properties = kStatClipped | kStatMedian;
        const Statistics withMedian = makeStatistics(img, mask, ctrl);
        EXPECT_EQ(withMedian.clippedMean, all.clippedMean) << seed;
        EXPECT_EQ(withMedian.median, all.median) << seed;
    }
    EXPECT_LT(worst, 0.1);
    StatisticsControl bad;
    bad.clipStartStride = 0;
    EXPECT_THROW(bad.validate(), ConfigError);
    bad.clipStartStride = 65;
    EXPECT_THROW(bad.validate(), ConfigError);
}

TEST(Statistics, PlainVectorMatchesImageOfDoubles) {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        Scene<double> s = makeScene<double>(seed, 0.05);
        std::vector<double> v;
        for (int y = 0; y < s.image.height(); ++y)
            for (int x = 0; x < s.image.width(); ++x) v.push_back(s.image(x, y));
        StatisticsControl ctrl;
        ctrl.quantiles = {0.2, 0.7};
        Statistics a = makeStatistics(s.image, ctrl);
        Statistics b = makeStatistics(v, ctrl);
        EXPECT_EQ(a.count, b.count);
        const std::pair<double, double> pairs[] = {{a.mean, b.mean},         {a.stdev, b.stdev},
                                                   {a.median, b.median},     {a.madSigma, b.madSigma},
                                                   {a.clippedMean, b.clippedMean},
                                                   {a.clippedStdev, b.clippedStdev},
                                                   {a.quantiles[1], b.quantiles[1]}};
        for (auto [p, q] : pairs)
            EXPECT_TRUE(close(p, q, 1e-12, std::max(std::fabs(q), 1.0)));
    }
}

TEST(Statistics, MaskedImageUsesItsVarianceForWeights) {
    MaskedImageF mi(3, 1);
    mi.image()(0, 0) = 1.0f;
    mi.image()(1, 0) = 2.0f;
    mi.image()(2, 0) = 100.0f;
    mi.variance()(0, 0) = 1.0f;
    mi.variance()(1, 0) = 0.5f;
    mi.variance()(2, 0) = 1.0f;
    mi.mask()(2, 0) = mi.mask().planeBitMask("BAD");
    StatisticsControl ctrl;
    ctrl.badMask = mi.mask().planeBitMask("BAD");
    ctrl.weighted = true;
    Statistics st = makeStatistics(mi, ctrl);
    EXPECT_EQ(st.count, 2);
    EXPECT_DOUBLE_EQ(st.mean, (1.0 * 1 + 2.0 * 2) / 3.0);
    EXPECT_DOUBLE_EQ(st.meanError, 1.0 / std::sqrt(3.0));
    EXPECT_DOUBLE_EQ(st.sum, 5.0);
    EXPECT_DOUBLE_EQ(st.median, 1.5);  // never weighted
}

TEST(Statistics, EmptyAndSinglePixel) {
    ImageF img(4, 4, std::numeric_limits<float>::quiet_NaN());
    Statistics st = makeStatistics(img);
    EXPECT_EQ(st.count, 0);
    EXPECT_TRUE(std::isnan(st.mean) && std::isnan(st.median) && std::isnan(st.clippedMean));
    EXPECT_EQ(st.sum, 0.0);
    img(2, 3) = 7.0f;
    st = makeStatistics(img);
    EXPECT_EQ(st.count, 1);
    EXPECT_EQ(st.mean, 7.0);
    EXPECT_EQ(st.median, 7.0);
    EXPECT_EQ(st.clippedMean, 7.0);
    EXPECT_TRUE(std::isnan(st.stdev));
    EXPECT_EQ(st.madSigma, 0.0);
    img(0, 0) = std::numeric_limits<float>::infinity();  // inf is ignored like NaN
    EXPECT_EQ(makeStatistics(img).count, 1);
}

TEST(Statistics, PropertiesSubsetLeavesOthersNaN) {
    ImageD img(10, 10);
    for (int y = 0; y < 10; ++y)
        for (int x = 0; x < 10; ++x) img(x, y) = x + 10 * y;
    StatisticsControl ctrl;
    ctrl.properties = kStatMedian;
    Statistics st = makeStatistics(img, ctrl);
    EXPECT_EQ(st.count, 100);
    EXPECT_EQ(st.median, 49.5);
    EXPECT_TRUE(std::isnan(st.mean) && std::isnan(st.stdev) && std::isnan(st.clippedMean) && std::isnan(st.min));
    EXPECT_TRUE(st.quantiles.empty());
}

TEST(Statistics, IntegerPixelsAreExact) {
    ImageU img(2, 2);
    img(0, 0) = 65535;
    img(1, 0) = 65534;
    img(0, 1) = 0;
    img(1, 1) = 1;
    Statistics st = makeStatistics(img);
    EXPECT_EQ(st.max, 65535.0);
    EXPECT_EQ(st.median, (1.0 + 65534.0) / 2);
    EXPECT_EQ(st.sum, 131070.0);
}

TEST(Statistics, ErrorsAndControl) {
    ImageF img(5, 5, 1.0f);
    Mask m(4, 5);
    StatisticsControl ctrl;
    EXPECT_THROW(makeStatistics(img, m, ctrl), LogicError);
    ctrl.weighted = true;
    EXPECT_THROW(makeStatistics(img, ctrl), ConfigError);
    std::vector<double> v = {1, 2, 3};
    EXPECT_THROW(makeStatistics(v, ctrl), ConfigError);
    EXPECT_THROW(makeStatistics(v, StatisticsControl{}, std::vector<double>{1.0}), LogicError);

    StatisticsControl a, b;
    EXPECT_EQ(a, b);
    EXPECT_NO_THROW(a.validate());
    b.numSigmaClip = 0;
    EXPECT_NE(a, b);
    EXPECT_THROW(b.validate(), ConfigError);
    b = a;
    b.numIter = 0;
    EXPECT_THROW(b.validate(), ConfigError);
    b = a;
    b.convergenceTolerance = 1.0;
    EXPECT_THROW(b.validate(), ConfigError);
    b = a;
    b.quantiles = {0.5, 1.5};
    EXPECT_THROW(b.validate(), ConfigError);
    b = a;
    b.properties = 1u << 20;
    EXPECT_THROW(b.validate(), ConfigError);
}

// The float fast paths (vectorised gather, bracket selection and clipping with float window bounds)
// against the generic double path on the same used values: equal bit for bit.
TEST(Statistics, FloatFastPathsMatchGenericDoublePathExactly) {
    auto check = [](const ImageF& image, const Mask& mask, MaskPixel bad, int numIter, const std::string& what) {
        StatisticsControl ctrl;
        ctrl.badMask = bad;
        ctrl.numIter = numIter;
        ctrl.properties = kStatClipped | kStatMedian | kStatMadSigma | kStatMinMax;
        const Statistics a = makeStatistics(image, mask, ctrl);
        const Used u = usedPixels(image, &mask, bad, nullptr, false);
        const Statistics b = makeStatistics(std::span<const double>(u.x), ctrl);
        SCOPED_TRACE(what);
        EXPECT_EQ(a.count, b.count);
        auto same = [](double p, double q) { return (std::isnan(p) && std::isnan(q)) || p == q; };
        EXPECT_TRUE(same(a.median, b.median)) << a.median << " " << b.median;
        EXPECT_TRUE(same(a.madSigma, b.madSigma)) << a.madSigma << " " << b.madSigma;
        EXPECT_TRUE(same(a.clippedMean, b.clippedMean)) << a.clippedMean << " " << b.clippedMean;
        EXPECT_TRUE(same(a.clippedStdev, b.clippedStdev)) << a.clippedStdev << " " << b.clippedStdev;
        EXPECT_TRUE(same(a.min, b.min));
        EXPECT_TRUE(same(a.max, b.max));
        EXPECT_EQ(a.clippedCount, b.clippedCount);
        EXPECT_EQ(a.clipIterations, b.clipIterations);
    };
    for (std::uint64_t seed = 1; seed <= 40; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0, 1);
        const int w = 1 + int(u(rng) * 300), h = 1 + int(u(rng) * 200);
        const double offset = seed % 4 == 0 ? 0.0 : 1e4 * u(rng), sigma = seed % 5 == 0 ? 0.0 : 0.01 + 100 * u(rng);
        std::normal_distribution<double> noise(offset, sigma);
        ImageF image(w, h);
        Mask mask(w, h);
        const MaskPixel bad = mask.planeBitMask("BAD"), det = mask.planeBitMask("DETECTED");
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                const double r = u(rng);
                image(x, y) = float(r < 0.05 ? offset + 40 * sigma * u(rng) : noise(rng));
                if (seed % 3 == 0) image(x, y) = float(std::round(image(x, y)));  // many ties
                if (u(rng) < 0.02) image(x, y) = u(rng) < 0.5 ? std::numeric_limits<float>::quiet_NaN()
                                                              : std::numeric_limits<float>::infinity();
                const double m = u(rng);
                mask(x, y) = m < 0.05 ? bad : m < 0.2 ? det : 0;
            }
        for (int numIter : {1, 3, 20}) {
            check(image, mask, bad, numIter, "seed " + std::to_string(seed) + " numIter " + std::to_string(numIter));
            check(image, mask, 0, numIter, "no mask bits, seed " + std::to_string(seed));
        }
    }
}

// Large inputs are bracketed twice (a bracket's gathered values are bracketed again): every quantile, the
// median and the MAD must still be exactly the order statistics, for floats (vectorised passes) and doubles,
// with ties, constant runs and heavy tails.
TEST(Statistics, NestedBracketsGiveExactOrderStatistics) {
    for (std::uint64_t seed = 1; seed <= 24; ++seed) {
        std::mt19937_64 rng(seed * 1013);
        std::uniform_real_distribution<double> u(0, 1);
        const int w = 64 + int(u(rng) * 400), h = 16 + int(u(rng) * 200);  // 1,024 .. 92,000 values
        std::normal_distribution<double> noise(1e3 * u(rng), 0.1 + 30 * u(rng));
        ImageF image(w, h);
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) {
                double v = noise(rng);
                if (u(rng) < 0.03) v += 1e4 * u(rng);                   // sources
                if (seed % 3 == 0) v = std::round(v);                   // many ties
                if (seed % 8 == 0 && u(rng) < 0.7) v = 17.0;            // mostly one value
                image(x, y) = float(v);
            }
        if (seed == 5) image.fill(3.0f);  // all equal: the bracket cannot shrink
        std::vector<double> values;
        for (int y = 0; y < h; ++y)
            for (int x = 0; x < w; ++x) values.push_back(double(image(x, y)));
        StatisticsControl ctrl;
        ctrl.properties = kStatMedian | kStatMadSigma | kStatQuantiles;
        for (int i = 0; i <= 40; ++i) ctrl.quantiles.push_back(i / 40.0);
        ctrl.quantiles.push_back(0.5 + 0.5 / double(values.size()));
        const Statistics fromFloat = makeStatistics(image, ctrl);
        const Statistics fromDouble = makeStatistics(std::span<const double>(values), ctrl);
        SCOPED_TRACE(::testing::Message() << "seed " << seed << " n " << values.size());
        const double med = refQuantile(values, 0.5);
        std::vector<double> dev(values.size());
        for (std::size_t i = 0; i < dev.size(); ++i) dev[i] = std::fabs(values[i] - med);
        const double mad = 1.4826 * refQuantile(dev, 0.5);
        for (const Statistics& st : {fromFloat, fromDouble}) {
            EXPECT_EQ(st.median, med);
            EXPECT_EQ(st.madSigma, mad);
            ASSERT_EQ(st.quantiles.size(), ctrl.quantiles.size());
            for (std::size_t i = 0; i < ctrl.quantiles.size(); ++i)
                EXPECT_EQ(st.quantiles[i], refQuantile(values, ctrl.quantiles[i])) << "q=" << ctrl.quantiles[i];
        }
    }
}

// selectKth against a full sort: the k-th value, the partition around it (as std::nth_element leaves it)
// and the same multiset, for floats and doubles, many sizes (the insertion-sort tail, one and several
// partition rounds) and orders that trouble pivot choices: sorted, reversed, organ pipe, sawtooth, all
// equal, a few distinct values, zeros of both signs.
template <typename T>
void checkSelectKth(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0.0, 1.0);
    for (std::size_t n : {1, 2, 3, 16, 17, 18, 100, 1000, 5000}) {
        for (int pattern = 0; pattern < 8; ++pattern) {
            std::vector<T> v(n);
            for (std::size_t i = 0; i < n; ++i) {
                const double x = double(i), m = double(n);
                switch (pattern) {
                    case 0: v[i] = T(100 + 10 * g(rng)); break;
                    case 1: v[i] = T(x); break;
                    case 2: v[i] = T(m - x); break;
                    case 3: v[i] = T(std::min(x, m - x)); break;
                    case 4: v[i] = T(std::fmod(x, 7.0)); break;
                    case 5: v[i] = T(3); break;
                    case 6: v[i] = T(int(rng() % 3)); break;
                    default: v[i] = rng() % 2 ? T(0.0) : T(-0.0); break;
                }
            }
            std::vector<T> sorted = v;
            std::sort(sorted.begin(), sorted.end());
            for (std::size_t k : {std::size_t(0), n / 2, n - 1, std::size_t(rng() % n)}) {
                std::vector<T> a = v;
                const T r = selectKth(a.data(), n, k);
                SCOPED_TRACE(::testing::Message() << "n " << n << " pattern " << pattern << " k " << k);
                ASSERT_EQ(r, sorted[k]);
                ASSERT_EQ(std::signbit(r), std::signbit(a[k]));  // the value returned is the one at k
                ASSERT_EQ(r, a[k]);
                for (std::size_t i = 0; i < k; ++i) ASSERT_LE(a[i], r);
                for (std::size_t i = k + 1; i < n; ++i) ASSERT_GE(a[i], r);
                std::sort(a.begin(), a.end());
                ASSERT_EQ(a, sorted);
            }
        }
    }
}

TEST(Statistics, SelectKthIsTheOrderStatisticAndPartitions) {
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        checkSelectKth<float>(seed);
        checkSelectKth<double>(seed);
    }
}

// quantile() of plain values: the type-7 quantile of the finite entries (the full-sort reference), the
// same value as makeStatistics' quantiles, NaN with no finite entry, ConfigError for q outside [0, 1].
TEST(Statistics, QuantileOfValuesIsTheTypeSevenQuantileOfTheFiniteOnes) {
    const double kInf = std::numeric_limits<double>::infinity();
    std::mt19937_64 rng(21);
    std::uniform_real_distribution<double> u(0, 1);
    for (int t = 0; t < 300; ++t) {
        const std::size_t n = 1 + rng() % (t % 10 == 0 ? 20000 : 200);
        std::vector<double> values, finite;
        for (std::size_t i = 0; i < n; ++i) {
            double x = 50 * u(rng) - 10;
            if (t % 3 == 0) x = std::round(x);  // ties
            if (u(rng) < 0.05) x = i % 3 == 0 ? kNaN : (i % 3 == 1 ? kInf : -kInf);
            values.push_back(x);
            if (std::isfinite(x)) finite.push_back(x);
        }
        for (double q : {0.0, 1.0, 0.5, 0.25, u(rng), u(rng)}) {
            const double got = quantile(values, q);
            if (finite.empty()) {
                EXPECT_TRUE(std::isnan(got));
                continue;
            }
            EXPECT_EQ(got, refQuantile(finite, q)) << "t " << t << " q " << q;
            StatisticsControl ctrl;
            ctrl.properties = kStatQuantiles;
            ctrl.quantiles = {q};
            EXPECT_EQ(got, makeStatistics(std::span<const double>(values), ctrl).quantiles[0]);
        }
    }
    EXPECT_TRUE(std::isnan(quantile({}, 0.5)));
    const std::vector<double> some{3.0, 1.0, 2.0};
    EXPECT_EQ(quantile(some, 0.5), 2.0);
    EXPECT_EQ(quantile(some, 0.75), 2.5);
    EXPECT_THROW(quantile(some, -0.1), ConfigError);
    EXPECT_THROW(quantile(some, 1.5), ConfigError);
    EXPECT_THROW(quantile(some, kNaN), ConfigError);
}
