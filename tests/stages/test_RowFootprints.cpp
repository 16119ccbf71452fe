// RowFootprintDetector (the detection's row-by-row thresholding) against detectFootprints on the whole image:
// the same footprints and peaks, bit for bit, on many random images (smooth sources, noise, plateaus of
// equal values, NaN), both polarities, every peak option, odd shapes and origins.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/Error.h"
#include "core/Footprint.h"
#include "stages/characterize/RowFootprints.h"

using namespace drp;

namespace {

/// Noise plus Gaussian blobs of both signs; with `quantum` > 0 the values are rounded to multiples of it
/// (flat tops and ties between neighbours); a few NaN pixels.
ImageF randomImage(std::uint64_t seed, const Box2I& box, double quantum) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0.0, 1.0);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    ImageF im(box, kNoFill);
    for (int y = 0; y < im.height(); ++y)
        for (int x = 0; x < im.width(); ++x) im(x, y) = float(g(rng));
    const int n = 3 + int(u(rng) * 0.002 * double(box.area()));
    for (int k = 0; k < n; ++k) {
        const double cx = u(rng) * im.width(), cy = u(rng) * im.height(), s = 0.7 + 3.0 * u(rng);
        const double a = (u(rng) < 0.3 ? -1.0 : 1.0) * (3.0 + 60.0 * u(rng));
        for (int y = std::max(0, int(cy - 5 * s)); y < std::min(im.height(), int(cy + 5 * s) + 1); ++y)
            for (int x = std::max(0, int(cx - 5 * s)); x < std::min(im.width(), int(cx + 5 * s) + 1); ++x)
                im(x, y) += float(a * std::exp(-0.5 * ((x - cx) * (x - cx) + (y - cy) * (y - cy)) / (s * s)));
    }
    if (quantum > 0)
        for (int y = 0; y < im.height(); ++y)
            for (int x = 0; x < im.width(); ++x) im(x, y) = float(std::round(im(x, y) / quantum) * quantum);
    for (int k = 0; k < box.area() / 500; ++k)
        im(int(u(rng) * im.width()), int(u(rng) * im.height())) = std::numeric_limits<float>::quiet_NaN();
    return im;
}

FootprintSet byRows(const ImageF& im, const DetectionConfig& dc) {
    RowFootprintDetector d(im.bbox(), dc);
    for (int y = 0; y < im.height(); ++y) d.addRow(im.row(y));
    return d.finish();
}

void expectSame(const FootprintSet& a, const FootprintSet& b, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_EQ(a.region(), b.region()) << what;
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i] == b[i]) << what << " footprint " << i;
}

}  // namespace

TEST(RowFootprints, SameFootprintsAndPeaksAsDetectFootprints) {
    const Box2I boxes[] = {Box2I({0, 0}, 200, 150), Box2I({-17, 40}, 131, 77), Box2I({5, 5}, 1, 60), Box2I({3, -2}, 90, 1),
                           Box2I({0, 0}, 1, 1)};
    int nonEmpty = 0, withTies = 0;
    for (std::uint64_t seed = 1; seed <= 12; ++seed)
        for (const Box2I& box : boxes) {
            const double quantum = seed % 3 == 0 ? 0.5 : 0.0;
            const ImageF im = randomImage(seed * 7919 + std::uint64_t(box.width()), box, quantum);
            for (bool negative : {false, true})
                for (double thr : {2.5, 4.0, 10.0})
                    for (int variant = 0; variant < 3; ++variant) {
                        DetectionConfig dc;
                        dc.threshold = thr;
                        dc.negative = negative;
                        dc.minPixels = variant == 1 ? 4 : 1;
                        dc.minPeakSeparation = variant == 2 ? 2.5 : (variant == 1 ? 1.0 : 0.0);
                        dc.maxPeaksPerFootprint = variant == 2 ? 2 : 10000;
                        dc.noiseSigma = variant == 0 ? 0.0 : 1.7;
                        const FootprintSet ref = detectFootprints(im, dc);
                        nonEmpty += ref.size() > 0;
                        withTies += quantum > 0 && ref.totalPeaks() > 0;
                        expectSame(byRows(im, dc), ref,
                                   "seed " + std::to_string(seed) + " box " + std::to_string(box.width()) + "x" +
                                       std::to_string(box.height()) + " neg " + std::to_string(negative) + " thr " +
                                       std::to_string(thr) + " variant " + std::to_string(variant));
                    }
        }
    EXPECT_GT(nonEmpty, 200);  // the comparisons were not of empty sets
    EXPECT_GT(withTies, 20);
}

TEST(RowFootprints, RefusesWhatItCannotDo) {
    DetectionConfig dc;
    dc.threshold = 1.0;
    dc.connectivity = Connectivity::FOUR;
    EXPECT_THROW(RowFootprintDetector(Box2I({0, 0}, 4, 4), dc), ConfigError);
    dc.connectivity = Connectivity::EIGHT;
    EXPECT_THROW(RowFootprintDetector(Box2I({0, 0}, 0, 4), dc), InvalidInputError);
    RowFootprintDetector d(Box2I({0, 0}, 3, 2), dc);
    const float row[3] = {0.0f, 2.0f, 0.0f};
    d.addRow(row);
    EXPECT_THROW(d.finish(), LogicError);  // a row missing
    d.addRow(row);
    EXPECT_THROW(d.addRow(row), LogicError);  // one row too many
    const FootprintSet fs = d.finish();
    ASSERT_EQ(fs.size(), 1u);
    EXPECT_EQ(fs[0].area(), 2);
    ASSERT_EQ(fs[0].peaks().size(), 1u);  // a flat top: the first pixel in raster order
    EXPECT_EQ(fs[0].peaks()[0].iy, 0);
    EXPECT_THROW(d.finish(), LogicError);
}
