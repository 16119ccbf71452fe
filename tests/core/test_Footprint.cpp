// Footprints and flood-fill detection against injected sources and brute-force labelling.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "core/Footprint.h"
#include "core/Mask.h"

using namespace drp;

namespace {

struct Source {
    double x, y, amp, sigma;
};

/// Sources at least `minSep` apart inside the image (parent frame), away from the edges.
std::vector<Source> randomSources(std::mt19937& rng, const Box2I& box, int n, double minSep) {
    std::uniform_real_distribution<double> ux(box.minX() + 12, box.maxX() - 12), uy(box.minY() + 12, box.maxY() - 12);
    std::uniform_real_distribution<double> amp(60, 600), sig(1.2, 2.5);
    std::vector<Source> out;
    for (int tries = 0; int(out.size()) < n && tries < 10000; ++tries) {
        Source s{ux(rng), uy(rng), amp(rng), sig(rng)};
        bool ok = true;
        for (const Source& o : out) ok = ok && std::hypot(o.x - s.x, o.y - s.y) >= minSep;
        if (ok) out.push_back(s);
    }
    return out;
}

void addSource(const ImageF& img, const Source& s, float sign = 1.0f) {
    const int r = int(std::ceil(6 * s.sigma));
    for (int y = int(s.y) - r; y <= int(s.y) + r; ++y)
        for (int x = int(s.x) - r; x <= int(s.x) + r; ++x) {
            if (!img.bbox().contains(Point2I{x, y})) continue;
            const double d2 = (x - s.x) * (x - s.x) + (y - s.y) * (y - s.y);
            img.atParent({x, y}) += sign * float(s.amp * std::exp(-0.5 * d2 / (s.sigma * s.sigma)));
        }
}

/// Brute-force peaks of one footprint per the documented definition.
std::vector<Point2I> brutePeaks(const ImageF& img, const SpanSet& fp, bool neg) {
    std::vector<Point2I> out;
    const float sgn = neg ? -1.0f : 1.0f;
    fp.forEachPixel([&](Point2I p) {
        const float v = sgn * img.atParent(p);
        bool peak = true;
        for (int dy = -1; dy <= 1; ++dy)
            for (int dx = -1; dx <= 1; ++dx) {
                if (dx == 0 && dy == 0) continue;
                const Point2I q{p.x + dx, p.y + dy};
                if (!fp.contains(q)) continue;
                const float n = sgn * img.atParent(q);
                const bool earlier = dy < 0 || (dy == 0 && dx < 0);
                if (earlier ? n >= v : n > v) peak = false;
            }
        if (peak) out.push_back(p);
    });
    return out;
}

}  // namespace

TEST(Detection, FindsInjectedGaussiansExactly) {
    for (int seed = 0; seed < 30; ++seed) {
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> off(-500, 500);
        const Box2I box({off(rng), off(rng)}, 220, 170);
        ImageF img(box, 0.0f);
        const auto sources = randomSources(rng, box, 15, 24.0);
        for (const Source& s : sources) addSource(img, s);
        DetectionConfig cfg;
        cfg.threshold = 5.0;
        Mask mask(box);
        const FootprintSet fs = detectFootprints(img, cfg, &mask);
        ASSERT_EQ(fs.size(), sources.size()) << "seed " << seed;
        EXPECT_EQ(fs.region(), box);
        // Footprints are exactly the 8-connected components of the thresholded image.
        const auto truth = SpanSet::fromThreshold(img, 5.0).split(Connectivity::EIGHT);
        ASSERT_EQ(truth.size(), fs.size());
        for (std::size_t i = 0; i < fs.size(); ++i) EXPECT_EQ(fs[i].spans(), truth[i]);
        EXPECT_EQ(mask.countBits(mask.planeBitMask("DETECTED")), fs.totalArea());
        EXPECT_EQ(mask.countBits(mask.planeBitMask("DETECTED_NEGATIVE")), 0);
        for (const Source& s : sources) {
            const Point2I nearest{int(std::lround(s.x)), int(std::lround(s.y))};
            int found = 0;
            for (std::size_t i = 0; i < fs.size(); ++i) {
                if (!fs[i].contains(nearest)) continue;
                ++found;
                // One peak, at the pixel nearest the injected centre, with the image value there.
                ASSERT_EQ(fs[i].peaks().size(), 1u) << "seed " << seed;
                const PeakRecord& p = fs[i].peaks()[0];
                EXPECT_EQ(p.ix, nearest.x);
                EXPECT_EQ(p.iy, nearest.y);
                EXPECT_EQ(p.peakValue, img.atParent(nearest));
                EXPECT_FALSE(p.significance.has_value());
                // Area ~ pi r^2 with the threshold radius r = sigma sqrt(2 ln(amp / threshold)).
                const double r = s.sigma * std::sqrt(2 * std::log(s.amp / 5.0));
                EXPECT_NEAR(double(fs[i].area()), std::numbers::pi * r * r, 0.12 * std::numbers::pi * r * r + 6)
                    << "seed " << seed;
            }
            EXPECT_EQ(found, 1);
        }
        // Ordered by first pixel in raster order, ids 1..n.
        for (std::size_t i = 1; i < fs.size(); ++i)
            EXPECT_LT(fs[i - 1].spans().spans().front(), fs[i].spans().spans().front());
        for (std::size_t i = 0; i < fs.size(); ++i) EXPECT_EQ(fs[i].peaks()[0].id, std::int64_t(i + 1));
    }
}

TEST(Detection, NoisyImagesFindEverySource) {
    for (int seed = 0; seed < 20; ++seed) {
        std::mt19937 rng(100 + seed);
        const Box2I box({7, -3}, 256, 200);
        ImageF img(box, 0.0f);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) img(x, y) = g(rng);
        auto sources = randomSources(rng, box, 20, 28.0);
        for (Source& s : sources) {
            s.amp = std::max(s.amp, 150.0);
            addSource(img, s);
        }
        DetectionConfig cfg;
        cfg.threshold = 5.0;
        cfg.minPixels = 5;
        cfg.minPeakSeparation = 3.0;
        cfg.noiseSigma = 1.0;
        const FootprintSet fs = detectFootprints(img, cfg);
        for (const Source& s : sources) {
            const Point2I nearest{int(std::lround(s.x)), int(std::lround(s.y))};
            int found = 0;
            for (std::size_t i = 0; i < fs.size(); ++i) {
                if (!fs[i].contains(nearest)) continue;
                ++found;
                const PeakRecord& p = fs[i].peaks().at(0);  // brightest first
                EXPECT_LE(std::hypot(p.x - s.x, p.y - s.y), 1.5) << "seed " << seed;
                ASSERT_TRUE(p.significance.has_value());
                EXPECT_FLOAT_EQ(*p.significance, p.peakValue);
            }
            EXPECT_EQ(found, 1) << "seed " << seed;
        }
        for (std::size_t i = 0; i < fs.size(); ++i) {
            EXPECT_GE(fs[i].area(), 5);
            for (std::size_t k = 1; k < fs[i].peaks().size(); ++k) {
                EXPECT_GE(fs[i].peaks()[k - 1].peakValue, fs[i].peaks()[k].peakValue);
                for (std::size_t j = 0; j < k; ++j)
                    EXPECT_GE(std::hypot(fs[i].peaks()[k].x - fs[i].peaks()[j].x, fs[i].peaks()[k].y - fs[i].peaks()[j].y),
                              3.0);
            }
        }
    }
}

TEST(Detection, MatchesBruteForceOnNoiseForBothPolaritiesAndConnectivities) {
    for (int seed = 0; seed < 25; ++seed) {
        std::mt19937 rng(200 + seed);
        std::uniform_int_distribution<int> off(-50, 50), dim(1, 90);
        const Box2I box({off(rng), off(rng)}, dim(rng), dim(rng));
        ImageF img(box);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) img(x, y) = std::round(g(rng) * 4.0f) / 4.0f;  // ties happen
        if (img.width() > 3 && img.height() > 3) img(2, 2) = std::nanf("");
        for (bool neg : {false, true})
            for (Connectivity conn : {Connectivity::FOUR, Connectivity::EIGHT})
                for (int minPix : {1, 4}) {
                    DetectionConfig cfg;
                    cfg.threshold = 0.5;
                    cfg.negative = neg;
                    cfg.connectivity = conn;
                    cfg.minPixels = minPix;
                    Mask mask(box);
                    const FootprintSet fs = detectFootprints(img, cfg, &mask);
                    std::vector<SpanSet> truth;
                    for (const SpanSet& s : SpanSet::fromThreshold(img, 0.5, neg).split(conn))
                        if (s.area() >= minPix) truth.push_back(s);
                    ASSERT_EQ(fs.size(), truth.size()) << "seed " << seed;
                    SpanSet all;
                    for (std::size_t i = 0; i < fs.size(); ++i) {
                        ASSERT_EQ(fs[i].spans(), truth[i]) << "seed " << seed << " footprint " << i;
                        auto want = brutePeaks(img, truth[i], neg);
                        std::vector<Point2I> got;
                        for (const PeakRecord& p : fs[i].peaks()) {
                            got.push_back({p.ix, p.iy});
                            EXPECT_EQ(p.peakValue, img.atParent({p.ix, p.iy}));
                            if (neg) {
                                EXPECT_LE(p.peakValue, -0.5f);
                            } else {
                                EXPECT_GE(p.peakValue, 0.5f);
                            }
                        }
                        auto byRaster = [](Point2I a, Point2I b) { return a.y != b.y ? a.y < b.y : a.x < b.x; };
                        std::sort(got.begin(), got.end(), byRaster);
                        std::sort(want.begin(), want.end(), byRaster);
                        EXPECT_EQ(got, want) << "seed " << seed << " footprint " << i;
                        EXPECT_FALSE(fs[i].peaks().empty());  // ties resolved: every footprint has a peak
                        all = all.unionWith(fs[i].spans());
                    }
                    const MaskPixel bit = mask.planeBitMask(neg ? "DETECTED_NEGATIVE" : "DETECTED");
                    EXPECT_EQ(SpanSet::fromMask(mask, bit), all);
                    EXPECT_EQ(mask.countBits(~bit), 0);
                }
    }
}

TEST(Detection, PlateauHasOnePeakAndRunsAreDeterministic) {
    ImageF img(Box2I({-4, 9}, 30, 20), 0.0f);
    for (int y = 5; y < 9; ++y)
        for (int x = 5; x < 12; ++x) img(x, y) = 10.0f;
    DetectionConfig cfg;
    cfg.threshold = 1.0;
    const FootprintSet a = detectFootprints(img, cfg);
    ASSERT_EQ(a.size(), 1u);
    ASSERT_EQ(a[0].peaks().size(), 1u);
    EXPECT_EQ(a[0].peaks()[0].ix, 5 - 4);  // the first plateau pixel in raster order
    EXPECT_EQ(a[0].peaks()[0].iy, 5 + 9);
    EXPECT_EQ(a[0].area(), 28);
    const FootprintSet b = detectFootprints(img, cfg);
    EXPECT_EQ(a[0], b[0]);
    Mask wrong(Box2I({0, 0}, 30, 20));
    EXPECT_THROW(detectFootprints(img, cfg, &wrong), LogicError);
}

TEST(Detection, MinimumPeakSeparation) {
    ImageF img(80, 60, 0.0f);
    addSource(img, {30, 30, 100, 1.5});
    addSource(img, {36, 30, 80, 1.5});
    DetectionConfig cfg;
    cfg.threshold = 2.0;
    auto fs = detectFootprints(img, cfg);
    ASSERT_EQ(fs.size(), 1u);
    ASSERT_EQ(fs[0].peaks().size(), 2u);
    EXPECT_EQ(fs[0].peaks()[0].ix, 30);  // brightest first
    EXPECT_EQ(fs[0].peaks()[1].ix, 36);
    cfg.minPeakSeparation = 7.0;
    fs = detectFootprints(img, cfg);
    ASSERT_EQ(fs[0].peaks().size(), 1u);
    EXPECT_EQ(fs[0].peaks()[0].ix, 30);
    cfg.minPeakSeparation = 0.0;
    cfg.maxPeaksPerFootprint = 1;
    EXPECT_EQ(detectFootprints(img, cfg)[0].peaks().size(), 1u);
}

TEST(Detection, NegativePolarityMirrorsPositive) {
    std::mt19937 rng(9);
    const Box2I box({3, 4}, 120, 100);
    ImageF img(box, 0.0f);
    for (const Source& s : randomSources(rng, box, 6, 25.0)) addSource(img, s, -1.0f);
    ImageF flipped = img.clone();
    flipped *= -1.0f;
    DetectionConfig cfg;
    cfg.threshold = 5.0;
    Mask mask(box);
    const auto pos = detectFootprints(flipped, cfg);
    cfg.negative = true;
    const auto neg = detectFootprints(img, cfg, &mask);
    ASSERT_EQ(pos.size(), 6u);
    ASSERT_EQ(neg.size(), pos.size());
    for (std::size_t i = 0; i < pos.size(); ++i) {
        EXPECT_EQ(neg[i].spans(), pos[i].spans());
        ASSERT_EQ(neg[i].peaks().size(), pos[i].peaks().size());
        EXPECT_EQ(neg[i].peaks()[0].ix, pos[i].peaks()[0].ix);
        EXPECT_EQ(neg[i].peaks()[0].peakValue, -pos[i].peaks()[0].peakValue);
    }
    EXPECT_EQ(mask.countBits(mask.planeBitMask("DETECTED_NEGATIVE")), neg.totalArea());
    EXPECT_EQ(mask.countBits(mask.planeBitMask("DETECTED")), 0);
}

TEST(Detection, ConfigValidation) {
    DetectionConfig c;
    EXPECT_NO_THROW(c.validate());
    c.minPixels = 0;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.negative = true;
    EXPECT_THROW(c.validate(), ConfigError);  // negative needs a positive threshold
    c = {};
    c.threshold = std::nan("");
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.minPeakSeparation = -1;
    EXPECT_THROW(c.validate(), ConfigError);
    EXPECT_TRUE(DetectionConfig{} == DetectionConfig{});
}

namespace {

PeakRecord peakAt(int x, int y, float v, std::int64_t id) {
    PeakRecord p;
    p.id = id;
    p.x = x;
    p.y = y;
    p.ix = x;
    p.iy = y;
    p.peakValue = v;
    return p;
}

}  // namespace

TEST(Footprint, DilateClipMergeSort) {
    const Footprint f(SpanSet::fromShape(3, Stencil::CIRCLE, {10, 10}), {peakAt(10, 10, 5, 1), peakAt(12, 10, 9, 2)});
    // Dilation keeps the peaks and equals the SpanSet dilation.
    const Footprint d = f.dilated(2);
    EXPECT_EQ(d.peaks(), f.peaks());
    EXPECT_EQ(d.spans(), f.spans().dilated(SpanSet::fromShape(2)));
    EXPECT_TRUE(d.spans().contains(f.spans()));
    // The footprint shares its SpanSet on copy and peak changes.
    const Footprint g = f.withPeaks({});
    EXPECT_EQ(g.spanSetPtr(), f.spanSetPtr());
    // Sorting peaks.
    const Footprint s = f.withSortedPeaks();
    EXPECT_EQ(s.peaks()[0].id, 2);
    EXPECT_EQ(f.withSortedPeaks(true).peaks()[0].id, 1);
    EXPECT_EQ(f.peaks()[0].id, 1);  // the original is unchanged
    // Clipping drops peaks outside the box.
    const Box2I box({7, 7}, 5, 7);
    const Footprint c = f.clippedTo(box);
    EXPECT_EQ(c.spans(), f.spans().clippedTo(box));
    ASSERT_EQ(c.peaks().size(), 1u);
    EXPECT_EQ(c.peaks()[0].id, 1);
    // Merging: union of spans; peaks closer than the separation are dropped.
    const Footprint other(SpanSet::fromShape(3, Stencil::BOX, {14, 11}), {peakAt(12, 11, 7, 3), peakAt(16, 12, 4, 4)});
    const Footprint m = f.merged(other, 1.5);
    EXPECT_EQ(m.spans(), f.spans().unionWith(other.spans()));
    ASSERT_EQ(m.peaks().size(), 3u);  // peak 3 is within 1.5 px of peak 2
    EXPECT_EQ(m.peaks()[2].id, 4);
    EXPECT_EQ(f.merged(other, 0.5).peaks().size(), 4u);
    const Footprint mm = Footprint::merge({f, other, f}, 1.5);
    EXPECT_EQ(mm.spans(), m.spans());
    EXPECT_EQ(mm.peaks(), m.peaks());
    EXPECT_TRUE(Footprint::merge({}).empty());
}

TEST(FootprintSet, DilationMergesTouchingFootprints) {
    ImageF img(Box2I({-20, 30}, 100, 60), 0.0f);
    addSource(img, {0, 50, 100, 1.5});
    addSource(img, {12, 50, 100, 1.5});
    addSource(img, {60, 70, 100, 1.5});
    addSource(img, {78, 85, 100, 1.5});  // near the edge: the dilation is clipped to the region
    DetectionConfig cfg;
    cfg.threshold = 5.0;
    const FootprintSet fs = detectFootprints(img, cfg);
    ASSERT_EQ(fs.size(), 4u);
    const FootprintSet grown = fs.dilated(4);
    ASSERT_EQ(grown.size(), 3u);
    EXPECT_EQ(grown[0].peaks().size(), 2u);
    EXPECT_EQ(grown.totalPeaks(), 4u);
    SpanSet all;
    for (std::size_t i = 0; i < fs.size(); ++i) all = all.unionWith(fs[i].spans());
    SpanSet allGrown;
    for (std::size_t i = 0; i < grown.size(); ++i) allGrown = allGrown.unionWith(grown[i].spans());
    EXPECT_EQ(allGrown, all.dilated(4).clippedTo(img.bbox()));
    EXPECT_EQ(grown.totalArea(), allGrown.area());
    EXPECT_EQ(fs.dilated(1).size(), 4u);
}

TEST(FootprintSet, DilationMatchesUnionOfPerFootprintDilations) {
    for (int seed = 0; seed < 40; ++seed) {
        std::mt19937 rng(700 + seed);
        std::uniform_int_distribution<int> c(-10, 60), r(0, 4);
        std::vector<std::shared_ptr<const Footprint>> fps;
        for (int k = 0; k < 8; ++k) {
            const Point2I p{c(rng), c(rng)};
            fps.push_back(std::make_shared<const Footprint>(SpanSet::fromShape(r(rng), Stencil::BOX, p),
                                                            std::vector<PeakRecord>{peakAt(p.x, p.y, 1.0f, k + 1)}));
        }
        // With a region (some footprints stick out of it) and without one.
        for (Box2I region : {Box2I({0, 0}, 50, 50), Box2I()}) {
            const FootprintSet fs(fps, region);
            const int radius = r(rng);
            const FootprintSet grown = fs.dilated(radius, Stencil::CIRCLE, Connectivity::EIGHT, 0.0);
            SpanSet expect;
            for (const auto& f : fps) {
                SpanSet g = f->spans().dilated(radius);
                expect = expect.unionWith(region.empty() ? g : g.clippedTo(region));
            }
            const auto parts = expect.split(Connectivity::EIGHT);
            ASSERT_EQ(grown.size(), parts.size()) << "seed " << seed;
            std::size_t peaks = 0;
            for (std::size_t i = 0; i < parts.size(); ++i) {
                EXPECT_EQ(grown[i].spans(), parts[i]);
                peaks += grown[i].peaks().size();
                // Each peak's footprint overlaps the component that received it.
                for (const PeakRecord& p : grown[i].peaks())
                    EXPECT_TRUE(fps[std::size_t(p.id - 1)]->spans().dilated(radius).overlaps(parts[i]));
            }
            std::size_t survivors = 0;
            for (const auto& f : fps) {
                SpanSet g = f->spans().dilated(radius);
                survivors += !(region.empty() ? g : g.clippedTo(region)).empty();
            }
            EXPECT_EQ(peaks, survivors);
        }
    }
}
