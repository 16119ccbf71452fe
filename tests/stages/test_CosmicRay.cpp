// Cosmic rays: injected worm-like tracks (as the simulator deposits them) are found and repaired, while
// the cores of bright stars (Moffat PSFs, FWHM 2 to 5 pixels, random sub-pixel positions) are never
// flagged; pure noise gives no hit.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/characterize/CosmicRay.h"

using namespace drp;

namespace {

constexpr double kSky = 800.0;  // e- per pixel: noise sigma ~28 e-

struct Track {
    std::vector<Point2I> pixels;
    std::vector<double> deposits;
};

/// A worm-like track: steps of 0.7 pixel with a random wiggle, 1000..5000 e- per pixel (log-uniform), 10%
/// of each deposit diffusing into the 4 edge neighbours.
Track addTrack(ImageF& img, std::mt19937_64& rng, Point2D start, int length) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::normal_distribution<double> g(0.0, 1.0);
    Track t;
    double px = start.x, py = start.y, theta = 2.0 * std::numbers::pi * u(rng);
    for (int step = 0; int(t.pixels.size()) < length && step < 8 * length + 8; ++step) {
        const Point2I p{int(std::floor(px)), int(std::floor(py))};
        if (std::find(t.pixels.begin(), t.pixels.end(), p) == t.pixels.end()) t.pixels.push_back(p);
        px += 0.7 * std::cos(theta);
        py += 0.7 * std::sin(theta);
        theta += 0.25 * g(rng);
    }
    for (const Point2I& p : t.pixels) {
        const double dep = 1000.0 * std::exp(std::log(5.0) * u(rng)), halo = 0.1 * dep * 0.25;
        img(p.x, p.y) += float(dep - 4 * halo);
        t.deposits.push_back(dep - 4 * halo);
        for (Point2I q : {Point2I{p.x - 1, p.y}, Point2I{p.x + 1, p.y}, Point2I{p.x, p.y - 1}, Point2I{p.x, p.y + 1}}) img(q.x, q.y) += float(halo);
    }
    return t;
}

void addNoise(MaskedImageF& mi, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0.0, 1.0);
    for (int y = 0; y < mi.height(); ++y)
        for (int x = 0; x < mi.width(); ++x) {
            const double mean = mi.image()(x, y);
            mi.variance()(x, y) = float(mean);
            mi.image()(x, y) = float(mean + std::sqrt(mean) * g(rng));
        }
}

}  // namespace

TEST(CosmicRay, FindsTracksAndSparesStarCores) {
    int tracks = 0, tracksFound = 0, starPixelsFlagged = 0, stars = 0;
    std::int64_t trackPixels = 0, trackPixelsFlagged = 0, repaired = 0, repairedFar = 0;
    double repairedSumSq = 0;
    for (double fwhm : {2.0, 3.0, 4.0, 5.0}) {
        for (std::uint64_t seed : {1u, 2u, 3u}) {
            const int w = 800, h = 800;
            MaskedImageF mi(w, h);
            mi.image().fill(float(kSky));
            const MoffatPsf psf(fwhm, 3.0);
            std::mt19937_64 rng(seed * 100 + std::uint64_t(fwhm));
            std::uniform_real_distribution<double> u(0.0, 1.0);
            // Stars on the even cells of a 40-pixel grid, tracks on the odd cells (they never overlap).
            std::vector<Point2D> starPos;
            std::vector<Track> hits;
            for (int j = 0; j < h / 40; ++j)
                for (int i = 0; i < w / 40; ++i) {
                    const Point2D c{40.0 * i + 20.0 + u(rng) - 0.5, 40.0 * j + 20.0 + u(rng) - 0.5};
                    if (i == 0 || j == 0 || i == w / 40 - 1 || j == h / 40 - 1) continue;
                    if ((i + j) % 2 == 0) {
                        // Bright, unsaturated: peaks from ~2e3 to ~1e6 e- above the sky.
                        const double flux = 2e4 * std::exp(std::log(100.0) * u(rng));
                        addPointSource(mi.image(), c, flux, psf);
                        starPos.push_back(c);
                    } else {
                        ImageF img = mi.image();
                        hits.push_back(addTrack(img, rng, {c.x - 3.0, c.y - 3.0}, 1 + int(12 * u(rng) * u(rng))));
                    }
                }
            addNoise(mi, seed + 7);
            const int n = findCosmicRays(mi, psf, kSky, CosmicRayConfig{});
            EXPECT_GT(n, 0);
            const MaskPixel cr = mi.mask().planeBitMask("CR");
            for (const Point2D& p : starPos) {
                ++stars;
                for (int dy = -6; dy <= 6; ++dy)
                    for (int dx = -6; dx <= 6; ++dx)
                        if (mi.mask()(int(std::lround(p.x)) + dx, int(std::lround(p.y)) + dy) & cr) ++starPixelsFlagged;
            }
            const double sigma = std::sqrt(kSky);
            for (const Track& t : hits) {
                ++tracks;
                bool any = false;
                for (std::size_t k = 0; k < t.pixels.size(); ++k) {
                    const Point2I p = t.pixels[k];
                    const bool flagged = mi.mask()(p.x, p.y) & cr;
                    any = any || flagged;
                    if (t.deposits[k] > 6.0 * sigma) {
                        ++trackPixels;
                        trackPixelsFlagged += flagged;
                    }
                    if (flagged) {
                        ++repaired;
                        const double d = (mi.image()(p.x, p.y) - kSky) / sigma;
                        repairedSumSq += d * d;
                        repairedFar += std::fabs(d) > 5.0;
                    }
                }
                tracksFound += any;
            }
        }
    }
    const double rmsRepaired = std::sqrt(repairedSumSq / double(repaired));
    std::cout << "tracks found " << tracksFound << "/" << tracks << ", track pixels flagged " << trackPixelsFlagged << "/"
              << trackPixels << ", star-core pixels flagged " << starPixelsFlagged << " around " << stars
              << " stars, repaired rms " << rmsRepaired << " sigma, " << repairedFar << " of " << repaired << " beyond 5 sigma\n";
    EXPECT_GT(double(tracksFound) / tracks, 0.95);
    EXPECT_GT(double(trackPixelsFlagged) / double(trackPixels), 0.95);
    EXPECT_EQ(starPixelsFlagged, 0);
    EXPECT_LT(rmsRepaired, 2.0);
    EXPECT_LT(double(repairedFar), 0.01 * double(repaired));
}

TEST(CosmicRay, NoHitsInPureNoiseAndMaskedPixelsAreLeftAlone) {
    for (std::uint64_t seed : {11u, 12u, 13u}) {
        MaskedImageF mi(1024, 1024);
        mi.image().fill(float(kSky));
        addNoise(mi, seed);
        const MoffatPsf psf(3.0, 3.0);
        EXPECT_EQ(findCosmicRays(mi, psf, kSky, CosmicRayConfig{}), 0);
        // A hot pixel that is already BAD is not a cosmic ray.
        mi.image()(500, 500) = 1e5f;
        mi.mask()(500, 500) |= mi.mask().planeBitMask("BAD");
        EXPECT_EQ(findCosmicRays(mi, psf, kSky, CosmicRayConfig{}), 0);
        // The same pixel unmasked is one, and is repaired to near the sky with CR and INTRP set.
        mi.mask()(500, 500) = 0;
        EXPECT_EQ(findCosmicRays(mi, psf, kSky, CosmicRayConfig{}), 1);
        EXPECT_NEAR(mi.image()(500, 500), kSky, 3.0 * std::sqrt(kSky));
        EXPECT_TRUE(mi.mask()(500, 500) & mi.mask().planeBitMask("INTRP"));
    }
}

TEST(CosmicRay, ContrastRatiosComeFromTheSharpestPsf) {
    const MoffatPsf wide(5.0, 3.0), narrow(2.0, 3.0);
    const auto rw = psfContrastRatios(wide, Box2I({0, 0}, 10, 10)), rn = psfContrastRatios(narrow, Box2I({0, 0}, 10, 10));
    for (int d = 0; d < 4; ++d) {
        EXPECT_LT(rn[std::size_t(d)], rw[std::size_t(d)]);
        EXPECT_GT(rn[std::size_t(d)], 0.0);
    }
    CosmicRayConfig c;
    c.contrastFactor = 1.5;
    EXPECT_THROW(c.validate(), ConfigError);
}
