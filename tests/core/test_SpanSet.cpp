// SpanSet against brute-force per-pixel sets on random shapes over many seeds.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <numbers>
#include <random>
#include <set>
#include <utility>

#include "core/Error.h"
#include "core/Mask.h"
#include "core/SpanSet.h"

using namespace drp;

namespace {

using PixelSet = std::set<std::pair<int, int>>;  // (y, x): raster order

PixelSet pixelsOf(const SpanSet& s) {
    PixelSet out;
    s.forEachPixel([&](Point2I p) { out.insert({p.y, p.x}); });
    return out;
}

SpanSet fromPixels(const PixelSet& pixels) {
    std::vector<Span> spans;
    for (auto [y, x] : pixels) spans.push_back({y, x, x});
    return SpanSet(std::move(spans));
}

/// A random shape in roughly [off, off + 40)^2: rectangles, ellipses and scattered pixels.
PixelSet randomShape(std::mt19937& rng, Point2I off) {
    std::uniform_int_distribution<int> pos(0, 39), size(1, 12), kind(0, 2), count(1, 6);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    PixelSet out;
    const int n = count(rng);
    for (int k = 0; k < n; ++k) {
        const int x0 = pos(rng) + off.x, y0 = pos(rng) + off.y;
        switch (kind(rng)) {
            case 0: {
                const int w = size(rng), h = size(rng);
                for (int y = y0; y < y0 + h; ++y)
                    for (int x = x0; x < x0 + w; ++x) out.insert({y, x});
                break;
            }
            case 1: {
                const double a = 1 + 6 * unit(rng), b = 1 + 6 * unit(rng), th = 3.2 * unit(rng);
                for (int y = y0 - 8; y <= y0 + 8; ++y)
                    for (int x = x0 - 8; x <= x0 + 8; ++x) {
                        const double dx = x - x0, dy = y - y0;
                        const double u = std::cos(th) * dx + std::sin(th) * dy, v = -std::sin(th) * dx + std::cos(th) * dy;
                        if (u * u / (a * a) + v * v / (b * b) <= 1) out.insert({y, x});
                    }
                break;
            }
            default: {
                const int m = 5 + size(rng) * 3;
                for (int i = 0; i < m; ++i) out.insert({pos(rng) + off.y, pos(rng) + off.x});
            }
        }
    }
    return out;
}

Point2I randomOffset(std::mt19937& rng) {
    std::uniform_int_distribution<int> d(-30, 30);
    return {d(rng), d(rng)};
}

void expectNormalized(const SpanSet& s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        ASSERT_LE(s.spans()[i].x0, s.spans()[i].x1);
        if (i > 0) {
            const Span& p = s.spans()[i - 1];
            const Span& q = s.spans()[i];
            ASSERT_TRUE(p.y < q.y || (p.y == q.y && p.x1 + 1 < q.x0)) << p << " then " << q;
        }
    }
}

Box2I bboxOf(const PixelSet& p) {
    Box2I b;
    for (auto [y, x] : p) b = b.include(Point2I{x, y});
    return b;
}

constexpr int kSeeds = 150;

}  // namespace

TEST(SpanSet, NormalisesArbitrarySpans) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> c(-20, 20), w(-2, 15);
        std::vector<Span> spans;
        PixelSet truth;
        for (int i = 0; i < 60; ++i) {
            Span s{c(rng), c(rng), 0};
            s.x1 = s.x0 + w(rng);  // some invalid (x1 < x0) spans are dropped
            spans.push_back(s);
            for (int x = s.x0; x <= s.x1; ++x) truth.insert({s.y, x});
        }
        std::shuffle(spans.begin(), spans.end(), rng);
        SpanSet ss(spans);
        expectNormalized(ss);
        EXPECT_EQ(pixelsOf(ss), truth) << "seed " << seed;
        EXPECT_EQ(ss.area(), std::int64_t(truth.size()));
        EXPECT_EQ(ss.bbox(), bboxOf(truth));
        EXPECT_EQ(ss, fromPixels(truth));  // same pixels => same representation
    }
}

TEST(SpanSet, BoxAndEmpty) {
    SpanSet b(Box2I({-3, 4}, 5, 7));
    EXPECT_EQ(b.area(), 35);
    EXPECT_EQ(b.size(), 7u);
    EXPECT_EQ(b.bbox(), Box2I({-3, 4}, 5, 7));
    SpanSet e;
    EXPECT_TRUE(e.empty());
    EXPECT_EQ(e.area(), 0);
    EXPECT_TRUE(e.bbox().empty());
    EXPECT_TRUE(b.unionWith(e) == b);
    EXPECT_TRUE(b.intersection(e).empty());
    EXPECT_EQ(b.difference(e), b);
    EXPECT_THROW(e.centroid(), LogicError);
}

TEST(SpanSet, SetOperationsMatchBruteForce) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(1000 + seed);
        const PixelSet pa = randomShape(rng, randomOffset(rng)), pb = randomShape(rng, randomOffset(rng));
        const SpanSet a = fromPixels(pa), b = fromPixels(pb);
        PixelSet u, in, d;
        std::set_union(pa.begin(), pa.end(), pb.begin(), pb.end(), std::inserter(u, u.end()));
        std::set_intersection(pa.begin(), pa.end(), pb.begin(), pb.end(), std::inserter(in, in.end()));
        std::set_difference(pa.begin(), pa.end(), pb.begin(), pb.end(), std::inserter(d, d.end()));
        const SpanSet su = a.unionWith(b), si = a.intersection(b), sd = a.difference(b);
        expectNormalized(su);
        expectNormalized(si);
        expectNormalized(sd);
        EXPECT_EQ(pixelsOf(su), u) << "seed " << seed;
        EXPECT_EQ(pixelsOf(si), in) << "seed " << seed;
        EXPECT_EQ(pixelsOf(sd), d) << "seed " << seed;
        // Identities.
        EXPECT_EQ(su.area(), a.area() + b.area() - si.area());
        EXPECT_EQ(sd.unionWith(si), a);
        EXPECT_EQ(su, b.unionWith(a));
        EXPECT_EQ(si, b.intersection(a));
        EXPECT_EQ(a.overlaps(b), !in.empty());
        EXPECT_EQ(a.contains(si), true);
        EXPECT_EQ(a.contains(b), std::includes(pa.begin(), pa.end(), pb.begin(), pb.end()));
        // Complement within a box containing both.
        const Box2I box = su.bbox().grow(2);
        const SpanSet ca = a.complement(box);
        EXPECT_EQ(ca.area(), box.area() - a.area());
        EXPECT_FALSE(ca.overlaps(a));
        EXPECT_EQ(ca.complement(box), a);
        // De Morgan: complement(A u B) == complement(A) n complement(B).
        EXPECT_EQ(su.complement(box), ca.intersection(b.complement(box)));
    }
}

TEST(SpanSet, ContainsShiftClip) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(2000 + seed);
        const PixelSet pa = randomShape(rng, randomOffset(rng));
        const SpanSet a = fromPixels(pa);
        const Box2I box = a.bbox().grow(3);
        for (int y = box.minY(); y <= box.maxY(); ++y)
            for (int x = box.minX(); x <= box.maxX(); ++x)
                ASSERT_EQ(a.contains(Point2I{x, y}), pa.count({y, x}) > 0) << x << "," << y << " seed " << seed;
        std::uniform_int_distribution<int> d(-10, 10);
        const int dx = d(rng), dy = d(rng);
        PixelSet shifted;
        for (auto [y, x] : pa) shifted.insert({y + dy, x + dx});
        EXPECT_EQ(pixelsOf(a.shift(dx, dy)), shifted);
        const Box2I clip(Point2I{a.bbox().minX() + d(rng) + 10, a.bbox().minY() + d(rng) + 10}, 15, 12);
        PixelSet clipped;
        for (auto [y, x] : pa)
            if (clip.contains(Point2I{x, y})) clipped.insert({y, x});
        const SpanSet c = a.clippedTo(clip);
        expectNormalized(c);
        EXPECT_EQ(pixelsOf(c), clipped);
    }
}

TEST(SpanSet, StencilsAndEllipsesMatchTheirPredicates) {
    for (int r = 0; r <= 12; ++r) {
        const SpanSet circle = SpanSet::fromShape(r, Stencil::CIRCLE);
        const SpanSet box = SpanSet::fromShape(r, Stencil::BOX);
        const SpanSet diamond = SpanSet::fromShape(r, Stencil::MANHATTAN, {3, -2});
        for (int y = -r - 2; y <= r + 2; ++y)
            for (int x = -r - 2; x <= r + 2; ++x) {
                EXPECT_EQ(circle.contains(Point2I{x, y}), x * x + y * y <= r * r);
                EXPECT_EQ(box.contains(Point2I{x, y}), std::abs(x) <= r && std::abs(y) <= r);
                EXPECT_EQ(diamond.contains(Point2I{x + 3, y - 2}), std::abs(x) + std::abs(y) <= r);
            }
        EXPECT_EQ(box.area(), (2 * r + 1) * (2 * r + 1));
        EXPECT_EQ(circle.reflected(), circle);
    }
    EXPECT_THROW(SpanSet::fromShape(-1), LogicError);
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int k = 0; k < 200; ++k) {
        const Point2D c{20 * u(rng) - 10, 20 * u(rng) - 10};
        const double a = 0.3 + 9 * u(rng), b = 0.3 + 9 * u(rng), th = 6.3 * u(rng);
        const SpanSet e = SpanSet::fromEllipse(c, a, b, th);
        expectNormalized(e);
        std::int64_t n = 0;
        for (int y = -25; y <= 25; ++y)
            for (int x = -25; x <= 25; ++x) {
                const double dx = x - c.x, dy = y - c.y;
                const double p = std::cos(th) * dx + std::sin(th) * dy, q = -std::sin(th) * dx + std::cos(th) * dy;
                const bool in = p * p / (a * a) + q * q / (b * b) <= 1.0;
                n += in;
                ASSERT_EQ(e.contains(Point2I{x, y}), in) << "ellipse " << k << " at " << x << "," << y;
            }
        EXPECT_EQ(e.area(), n);
        // Area tends to pi a b for large ellipses.
        if (a > 4 && b > 4) { EXPECT_NEAR(double(e.area()) / (std::numbers::pi * a * b), 1.0, 0.15); }
    }
    EXPECT_THROW(SpanSet::fromEllipse({0, 0}, 0.0, 1.0), LogicError);
}

TEST(SpanSet, DilationIsTheMinkowskiSumAndErosionItsDual) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(3000 + seed);
        const PixelSet pa = randomShape(rng, randomOffset(rng));
        const SpanSet a = fromPixels(pa);
        // Structuring element: a stencil, or a random small (possibly non-convex, off-centre) set.
        SpanSet s;
        std::uniform_int_distribution<int> pick(0, 3), rad(0, 4), off(-3, 3);
        switch (pick(rng)) {
            case 0: s = SpanSet::fromShape(rad(rng), Stencil::CIRCLE); break;
            case 1: s = SpanSet::fromShape(rad(rng), Stencil::BOX); break;
            case 2: s = SpanSet::fromShape(rad(rng), Stencil::MANHATTAN); break;
            default: {
                PixelSet ps;
                for (int i = 0; i < 6; ++i) ps.insert({off(rng), off(rng)});
                s = fromPixels(ps);
            }
        }
        const PixelSet ps = pixelsOf(s);
        PixelSet sum;
        for (auto [y, x] : pa)
            for (auto [sy, sx] : ps) sum.insert({y + sy, x + sx});
        const SpanSet dil = a.dilated(s);
        expectNormalized(dil);
        ASSERT_EQ(pixelsOf(dil), sum) << "seed " << seed;

        // Erosion by definition: p such that p + S lies inside A.
        PixelSet er;
        const Box2I box = a.bbox().grow(6);
        for (int y = box.minY(); y <= box.maxY(); ++y)
            for (int x = box.minX(); x <= box.maxX(); ++x) {
                bool all = true;
                for (auto [sy, sx] : ps)
                    if (!pa.count({y + sy, x + sx})) {
                        all = false;
                        break;
                    }
                if (all) er.insert({y, x});
            }
        const SpanSet ero = a.eroded(s);
        expectNormalized(ero);
        ASSERT_EQ(pixelsOf(ero), er) << "seed " << seed;
        // Duality: A (-) S == complement(complement(A) (+) (-S)) inside a big enough box.
        const Box2I big = a.bbox().grow(12);
        EXPECT_EQ(ero, a.complement(big).dilated(s.reflected()).complement(big).intersection(SpanSet(a.bbox().grow(6))));
        // Opening is anti-extensive, closing extensive.
        EXPECT_TRUE(a.contains(ero.dilated(s)));
        if (s.contains(Point2I{0, 0})) { EXPECT_TRUE(dil.contains(a)); }
    }
    EXPECT_THROW(SpanSet(Box2I({0, 0}, 3, 3)).eroded(SpanSet()), LogicError);
    EXPECT_TRUE(SpanSet(Box2I({0, 0}, 3, 3)).dilated(SpanSet()).empty());
    // A box eroded by a box stencil is the smaller box.
    EXPECT_EQ(SpanSet(Box2I({0, 0}, 10, 8)).eroded(2, Stencil::BOX), SpanSet(Box2I({2, 2}, 6, 4)));
}

namespace {

/// Brute-force BFS labelling: the components as pixel sets, ordered by first pixel.
std::vector<PixelSet> bfsComponents(const PixelSet& pixels, bool eight) {
    std::set<std::pair<int, int>> unseen = pixels;
    std::vector<PixelSet> out;
    for (auto [y0, x0] : pixels) {
        if (!unseen.count({y0, x0})) continue;
        PixelSet comp;
        std::deque<std::pair<int, int>> queue{{y0, x0}};
        unseen.erase({y0, x0});
        while (!queue.empty()) {
            auto [y, x] = queue.front();
            queue.pop_front();
            comp.insert({y, x});
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx) {
                    if ((dx == 0 && dy == 0) || (!eight && dx != 0 && dy != 0)) continue;
                    auto it = unseen.find({y + dy, x + dx});
                    if (it != unseen.end()) {
                        queue.push_back(*it);
                        unseen.erase(it);
                    }
                }
        }
        out.push_back(comp);
    }
    return out;
}

}  // namespace

TEST(SpanSet, SplitMatchesBfsLabelling) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(4000 + seed);
        const PixelSet pa = randomShape(rng, randomOffset(rng));
        const SpanSet a = fromPixels(pa);
        for (bool eight : {false, true}) {
            const auto truth = bfsComponents(pa, eight);
            const auto parts = a.split(eight ? Connectivity::EIGHT : Connectivity::FOUR);
            ASSERT_EQ(parts.size(), truth.size()) << "seed " << seed << " eight " << eight;
            std::int64_t total = 0;
            for (std::size_t i = 0; i < parts.size(); ++i) {
                expectNormalized(parts[i]);
                EXPECT_EQ(pixelsOf(parts[i]), truth[i]) << "component " << i << " seed " << seed;
                total += parts[i].area();
            }
            EXPECT_EQ(total, a.area());
            // Labels agree with split, and findSpan finds the span holding each pixel.
            std::size_t n = 0;
            const auto labels = a.componentLabels(eight ? Connectivity::EIGHT : Connectivity::FOUR, &n);
            ASSERT_EQ(n, parts.size());
            for (std::size_t k = 0; k < a.size(); ++k) {
                const Span& s = a.spans()[k];
                EXPECT_TRUE(parts[labels[k]].contains(Point2I{s.x0, s.y}));
                EXPECT_EQ(a.findSpan({s.x1, s.y}), std::int64_t(k));
                EXPECT_EQ(a.findSpan({s.x1 + 1, s.y}), -1);
            }
        }
    }
    // A diagonal pair: one component with 8-connectivity, two with 4.
    SpanSet diag(std::vector<Span>{{0, 0, 0}, {1, 1, 1}});
    EXPECT_EQ(diag.split(Connectivity::EIGHT).size(), 1u);
    EXPECT_EQ(diag.split(Connectivity::FOUR).size(), 2u);
}

TEST(SpanSet, MaskThresholdFlattenRoundTrip) {
    for (int seed = 0; seed < 40; ++seed) {
        std::mt19937 rng(5000 + seed);
        const Point2I off = randomOffset(rng);
        const Box2I box(off, 50, 45);
        ImageF img(box);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) img(x, y) = g(rng);
        img(3, 4) = std::nanf("");
        for (bool neg : {false, true}) {
            const SpanSet t = SpanSet::fromThreshold(img, 0.7, neg);
            expectNormalized(t);
            for (int y = 0; y < img.height(); ++y)
                for (int x = 0; x < img.width(); ++x) {
                    const float v = img(x, y);
                    ASSERT_EQ(t.contains(Point2I{x + off.x, y + off.y}), neg ? -v >= 0.7f : v >= 0.7f);
                }
        }
        // Mask round trip: setMask then fromMask gives the set back; clearMask removes it.
        const SpanSet shape = fromPixels(randomShape(rng, {off.x + 5, off.y + 2})).clippedTo(box);
        Mask mask(box);
        const MaskPixel bit = mask.planeBitMask("DETECTED");
        shape.setMask(mask, bit);
        EXPECT_EQ(mask.countBits(bit), shape.area());
        EXPECT_EQ(SpanSet::fromMask(mask, bit), shape);
        EXPECT_TRUE(SpanSet::fromMask(mask, mask.planeBitMask("BAD")).empty());
        shape.clearMask(mask, bit);
        EXPECT_EQ(mask.countBits(bit), 0);
        // Flatten / unflatten: values in span order, bit-exact round trip, other pixels untouched.
        const std::vector<float> values = shape.flatten(img);
        ASSERT_EQ(std::int64_t(values.size()), shape.area());
        std::size_t k = 0;
        bool order = true;
        shape.forEachPixel([&](Point2I p) {
            const float v = img.atParent(p);
            order = order && (std::isnan(v) ? std::isnan(values[k]) : values[k] == v);
            ++k;
        });
        EXPECT_TRUE(order);
        ImageF copy(box, -99.0f);
        shape.unflatten(copy, values);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) {
                const Point2I p{x + off.x, y + off.y};
                if (shape.contains(p)) {
                    if (!std::isnan(img(x, y))) { ASSERT_EQ(copy(x, y), img(x, y)); }
                } else {
                    ASSERT_EQ(copy(x, y), -99.0f);
                }
            }
        EXPECT_EQ(shape.flatten(copy).size(), values.size());
        ImageI ints(box, 3);
        EXPECT_EQ(shape.flatten(ints), std::vector<std::int32_t>(values.size(), 3));
    }
    SpanSet outside(Box2I({100, 100}, 3, 3));
    ImageF img(10, 10);
    EXPECT_THROW(outside.flatten(img), LogicError);
    EXPECT_THROW(SpanSet(Box2I({0, 0}, 2, 2)).unflatten(img, std::vector<float>(3)), LogicError);
}

TEST(SpanSet, CentroidMatchesBruteForce) {
    for (int seed = 0; seed < kSeeds; ++seed) {
        std::mt19937 rng(6000 + seed);
        const PixelSet pa = randomShape(rng, randomOffset(rng));
        const SpanSet a = fromPixels(pa);
        double sx = 0, sy = 0;
        for (auto [y, x] : pa) {
            sx += x;
            sy += y;
        }
        const Point2D c = a.centroid();
        EXPECT_NEAR(c.x, sx / double(pa.size()), 1e-9);
        EXPECT_NEAR(c.y, sy / double(pa.size()), 1e-9);
        // Weighted by an image of ones equals the unweighted centroid.
        ImageD ones(a.bbox(), 1.0);
        const Point2D cw = a.centroid(ones);
        EXPECT_NEAR(cw.x, c.x, 1e-9);
        EXPECT_NEAR(cw.y, c.y, 1e-9);
    }
}
