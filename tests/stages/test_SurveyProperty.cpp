// Survey property maps against brute-force per-pixel values (binned and unbinned), the depth formula,
// and the 8-bit rendering.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "stages/coadd/CoaddAssembler.h"
#include "stages/coadd/SurveyProperty.h"

using namespace drp;

namespace {

const Box2I kBox({500, 700}, 37, 29);  // not a multiple of the bin sizes

struct Input {
    MaskedImageF warp;
    WarpMetadata meta;
    double weight;
};

std::vector<Input> makeInputs(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<Input> in;
    for (int e = 0; e < 7; ++e) {
        Input i{MaskedImageF(kBox), WarpMetadata{}, 0.1 + u(rng)};
        i.warp.variance().fill(1.0f);
        const Mask& m = i.warp.mask();
        // Random coverage: NO_DATA outside a random box, a few BAD pixels.
        const int x0 = int(u(rng) * 15), y0 = int(u(rng) * 10);
        for (int y = 0; y < kBox.height(); ++y)
            for (int x = 0; x < kBox.width(); ++x) {
                if (x < x0 || y < y0) m(x, y) |= m.planeBitMask("NO_DATA");
                if (u(rng) < 0.03) m(x, y) |= m.planeBitMask("BAD");
            }
        i.meta.id = e;
        i.meta.exposureTimeS = 15 + 30 * u(rng);
        i.meta.psfSigmaPx = 1 + u(rng);
        i.meta.skyLevel = 100 + 900 * u(rng);
        i.meta.photoScale = 0.5 + u(rng);
        in.push_back(std::move(i));
    }
    return in;
}

}  // namespace

TEST(SurveyProperty, MapsEqualBruteForce) {
    for (std::uint64_t seed = 1; seed <= 5; ++seed) {
        const auto in = makeInputs(seed);
        // Brute-force per-pixel maps.
        const int W = kBox.width(), H = kBox.height();
        std::vector<double> n(W * H, 0), t(W * H, 0), w(W * H, 0), wp(W * H, 0), ws(W * H, 0);
        for (const auto& i : in)
            for (int y = 0; y < H; ++y)
                for (int x = 0; x < W; ++x) {
                    if (i.warp.mask()(x, y)) continue;  // NO_DATA or BAD
                    const int k = y * W + x;
                    n[k] += 1;
                    t[k] += i.meta.exposureTimeS;
                    w[k] += i.weight;
                    wp[k] += i.weight * i.meta.psfSigmaPx * i.meta.psfSigmaPx;
                    ws[k] += i.weight * i.meta.skyLevel * i.meta.photoScale;
                }
        MaskedImageF coadd(kBox);
        for (int y = 0; y < H; ++y)
            for (int x = 0; x < W; ++x) coadd.variance()(x, y) = float(0.01 * (1 + x + y));
        for (int bin : {1, 4}) {
            SurveyPropertyConfig cfg;
            cfg.binSize = bin;
            cfg.zeroPointMag = 31.4;
            SurveyPropertyAccumulator acc(kBox, cfg);
            for (const auto& i : in) acc.add(i.warp, i.meta, i.weight);
            const SurveyPropertyMaps maps = acc.finish(coadd);
            ASSERT_EQ(maps.nInputs.width(), (W + bin - 1) / bin);
            ASSERT_EQ(maps.nInputs.height(), (H + bin - 1) / bin);
            for (int j = 0; j < maps.nInputs.height(); ++j)
                for (int i = 0; i < maps.nInputs.width(); ++i) {
                    double sn = 0, st = 0, sw = 0, swp = 0, sws = 0, sv = 0, area = 0;
                    for (int y = j * bin; y < std::min(H, (j + 1) * bin); ++y)
                        for (int x = i * bin; x < std::min(W, (i + 1) * bin); ++x) {
                            const int k = y * W + x;
                            sn += n[k];
                            st += t[k];
                            sw += w[k];
                            swp += wp[k];
                            sws += ws[k];
                            sv += coadd.variance()(x, y);
                            area += 1;
                        }
                    EXPECT_NEAR(maps.nInputs(i, j), sn / area, 1e-5);
                    EXPECT_NEAR(maps.exposureTime(i, j), st / area, 1e-3);
                    if (sw > 0) {
                        const double sig2 = swp / sw;
                        EXPECT_NEAR(maps.psfSigma(i, j), std::sqrt(sig2), 1e-5);
                        EXPECT_NEAR(maps.skyBackground(i, j), sws / sw, 1e-3);
                        const double depth = 31.4 - 2.5 * std::log10(5 * std::sqrt(sv / area * 4 * std::numbers::pi * sig2));
                        EXPECT_NEAR(maps.depth(i, j), depth, 1e-4);
                    } else {
                        EXPECT_TRUE(std::isnan(maps.psfSigma(i, j)));
                        EXPECT_EQ(maps.nInputs(i, j), 0.0f);
                    }
                }
        }
    }
}

TEST(SurveyProperty, DepthOfAKnownCoadd) {
    // 1 nJy^2 variance per pixel, Gaussian PSF sigma 2 px: PSF-flux error sqrt(4 pi 4) = 7.09 nJy,
    // 5 sigma = 35.4 nJy = 27.53 AB.
    MaskedImageF warp(kBox), coadd(kBox);
    warp.variance().fill(1.0f);
    coadd.variance().fill(1.0f);
    WarpMetadata m;
    m.psfSigmaPx = 2.0;
    SurveyPropertyAccumulator acc(kBox);
    acc.add(warp, m, 1.0);
    const auto maps = acc.finish(coadd);
    EXPECT_NEAR(maps.depth(3, 3), 31.4 - 2.5 * std::log10(5 * std::sqrt(16 * std::numbers::pi)), 1e-5);
    EXPECT_NEAR(maps.depth(3, 3), 27.53, 0.01);
    SurveyPropertyConfig bad;
    bad.binSize = 0;
    EXPECT_THROW(SurveyPropertyAccumulator(kBox, bad), ConfigError);
}

TEST(SurveyProperty, RenderMap) {
    ImageF map(4, 3, 0.0f);
    for (int y = 0; y < 3; ++y)
        for (int x = 0; x < 4; ++x) map(x, y) = float(x + 4 * y);
    map(0, 0) = std::nanf("");
    MapRenderConfig cfg;
    cfg.vmin = 1;
    cfg.vmax = 11;
    const ImageBuffer8 g = renderMap(map, cfg);
    ASSERT_EQ(g.channels, 1);
    ASSERT_EQ(g.pixels.size(), 12u);
    // Row 0 of the buffer is the map's top row (y = 2).
    EXPECT_EQ(g.pixels[0], std::uint8_t(std::lround(255 * 7 / 10.0)));  // value 8
    EXPECT_EQ(g.pixels[3], 255);                                          // value 11
    EXPECT_EQ(g.pixels[8], 0);                                            // NaN
    EXPECT_EQ(g.pixels[9], 0);                                            // value 1
    cfg.colormap = MapRenderConfig::Colormap::Viridis;
    const ImageBuffer8 c = renderMap(map, cfg);
    ASSERT_EQ(c.channels, 3);
    EXPECT_EQ(c.pixels[9 * 3 + 0], 68);  // the low end of viridis
    EXPECT_EQ(c.pixels[3 * 3 + 1], 231);  // the high end
    const ImageBuffer8 a = renderMap(map);  // automatic range
    EXPECT_EQ(a.pixels.size(), 12u);
}
