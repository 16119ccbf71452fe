// The shape plugin's adaptive moments of undersampled stars (Moffat beta 3.5, FWHM 1.2-1.5 pixels, the 0.5-0.6" seeing
// of 0.4" pixels), through the measurement framework as the single-visit pipeline runs it: with the weight floor
// (MeasurementConfig::shapeMinWeightSigma) no star fails or collapses, the sizes T = ixx + iyy of the bright stars form
// a locus narrow enough for the PSF star selection (its size window, 0.2 in ln T; its ellipticity cut, 0.1), and ixxPSF
// is measured the same way. Without the floor (shapeMinWeightSigma 0, the earlier behaviour) many stars are flagged
// or collapse (|e| near 1), and those are what the PSF star selection lost.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>

#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/measure/SingleFrameMeasurement.h"
#include "tests/support/TestSupport.h"

using namespace drp;

namespace {

/// A 6 x 6 grid of stars at random sub-pixel positions, S/N ~ 50-500 (flux from the noise-equivalent area), sky 1000
/// and Gaussian noise of the expected variance; one footprint (a circle of radius 8) per star.
std::pair<Exposure, FootprintSet> starGrid(std::uint64_t seed, std::shared_ptr<const Psf> psf, std::vector<double>& snr) {
    const double sky = 1000.0;
    const int grid = 6, spacing = 40, size = grid * spacing;
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> off(-3.0, 3.0), logSn(std::log(50.0), std::log(500.0));
    std::normal_distribution<double> g(0.0, 1.0);
    MaskedImageF mi(Box2I({0, 0}, size, size));
    ImageF model(mi.bbox());
    std::vector<Point2D> pos;
    for (int j = 0; j < grid; ++j)
        for (int i = 0; i < grid; ++i) {
            const Point2D c{spacing * (i + 0.5) + off(rng), spacing * (j + 0.5) + off(rng)};
            const ImageD p = psf->computeImage(c);
            double s2 = 0.0;
            for (int y = 0; y < p.height(); ++y)
                for (int x = 0; x < p.width(); ++x) s2 += p(x, y) * p(x, y);
            const double sn = std::exp(logSn(rng)), nea = 1.0 / s2;
            const double flux = 0.5 * (sn * sn + sn * std::sqrt(sn * sn + 4.0 * nea * sky));
            addPointSource(model, c, flux, *psf);
            pos.push_back(c);
            snr.push_back(sn);
        }
    for (int y = 0; y < size; ++y)
        for (int x = 0; x < size; ++x) {
            const double v = sky + std::max(0.0, double(model(x, y)));
            mi.image()(x, y) = float(model(x, y) + std::sqrt(v) * g(rng));
            mi.variance()(x, y) = float(v);
        }
    std::vector<std::shared_ptr<const Footprint>> fps;
    for (std::size_t k = 0; k < pos.size(); ++k) fps.push_back(test::starFootprint(mi.image(), pos[k], 8, std::int64_t(k + 1)));
    const Box2I box = mi.bbox();
    return {Exposure(std::move(mi), nullptr, std::move(psf)), FootprintSet(std::move(fps), box)};
}

double medianOf(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? std::nan("") : v[v.size() / 2];
}

}  // namespace

TEST(ShapePluginUndersampled, StarsKeepACompactSizeLocus) {
    int plainBad = 0, plainTotal = 0;
    for (double fwhm : {1.2, 1.3, 1.4, 1.5}) {
        const auto psf = MoffatPsf::make(fwhm, 3.5);
        for (std::uint64_t seed = 1; seed <= 4; ++seed) {
            std::vector<double> snr;
            auto [exposure, footprints] = starGrid(seed + std::uint64_t(100 * fwhm), psf, snr);
            // With the floor (the default).
            const Table t = SingleFrameMeasurement(MeasurementConfig{}).measure(exposure, footprints, 7);
            auto ixx = t.column<double>("ixx"), iyy = t.column<double>("iyy"), ixy = t.column<double>("ixy");
            auto pxx = t.column<double>("ixxPSF"), pyy = t.column<double>("iyyPSF");
            auto flag = t.column<bool>("shape_flag");
            std::vector<double> lnT, e;
            for (std::size_t i = 0; i < t.size(); ++i) {
                ASSERT_FALSE(flag[i]) << "FWHM " << fwhm << " seed " << seed << " star " << i;
                ASSERT_TRUE(std::isfinite(pxx[i]) && std::isfinite(pyy[i]));
                const double tr = ixx[i] + iyy[i];
                ASSERT_GT(ixx[i] * iyy[i] - ixy[i] * ixy[i], 0.0);
                // The stars' ln T about the PSF's at the same centroid (measured the same way).
                lnT.push_back(std::log(tr / (pxx[i] + pyy[i])));
                e.push_back(std::hypot((ixx[i] - iyy[i]) / tr, 2.0 * ixy[i] / tr));
            }
            const double m = medianOf(lnT);
            const std::size_t inWindow =
                std::size_t(std::count_if(lnT.begin(), lnT.end(), [&](double v) { return std::fabs(v - m) <= 0.1; }));
            const std::size_t round = std::size_t(std::count_if(e.begin(), e.end(), [](double v) { return v <= 0.1; }));
            EXPECT_NEAR(m, 0.0, 0.03) << "FWHM " << fwhm << " seed " << seed;
            EXPECT_GE(inWindow, std::size_t(0.85 * double(t.size()))) << "FWHM " << fwhm << " seed " << seed;
            EXPECT_GE(round, std::size_t(0.85 * double(t.size()))) << "FWHM " << fwhm << " seed " << seed;

            // Without the floor.
            MeasurementConfig plain;
            plain.shapeMinWeightSigma = 0.0;
            const Table tp = SingleFrameMeasurement(plain).measure(exposure, footprints, 7);
            auto pf = tp.column<bool>("shape_flag");
            auto qxx = tp.column<double>("ixx"), qyy = tp.column<double>("iyy"), qxy = tp.column<double>("ixy");
            for (std::size_t i = 0; i < tp.size(); ++i) {
                ++plainTotal;
                const double tr = qxx[i] + qyy[i];
                if (pf[i] || !(std::hypot((qxx[i] - qyy[i]) / tr, 2.0 * qxy[i] / tr) <= 0.1)) ++plainBad;
            }
        }
    }
    std::cout << "[shape, FWHM 1.2-1.5] without the weight floor " << plainBad << " of " << plainTotal
              << " stars flagged or with |e| > 0.1\n";
    EXPECT_GT(plainBad, plainTotal / 4);
}
