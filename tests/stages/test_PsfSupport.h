// Helpers shared by the PSF determiner tests (test_PsfDeterminer.cpp, test_PsfUndersampled.cpp): noisy star fields
// with a known, spatially varying Moffat PSF, and candidates measured as the pipeline measures them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "core/MaskedImage.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/characterize/PsfDeterminer.h"
#include "stages/measure/AdaptiveMoments.h"

namespace drp::psftest {

inline double medianOf(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}


/// Gaussian noise with variance sky + signal; the variance plane holds the true variance.
inline void addNoise(MaskedImageF& mi, double skyVar, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(0.0, 1.0);
    for (int y = 0; y < mi.height(); ++y)
        for (int x = 0; x < mi.width(); ++x) {
            const double v = skyVar + std::max(0.0, double(mi.image()(x, y)));
            mi.variance()(x, y) = float(v);
            mi.image()(x, y) = float(mi.image()(x, y) + std::sqrt(v) * g(rng));
        }
}

struct StarField {
    MaskedImageF image;
    std::shared_ptr<const MoffatPsf> psf;
    std::vector<Point2D> positions;
    std::vector<double> fluxes;
};

/// A star of S/N `sn` at `p` (flux / sqrt(neaSky + flux) = sn), recorded in the field.
inline void addStarAtSnr(StarField& f, Point2D p, double sn, double neaSky) {
    const double flux = 0.5 * (sn * sn + sn * std::sqrt(sn * sn + 4.0 * neaSky));
    addPointSource(f.image.image(), p, flux, *f.psf);
    f.positions.push_back(p);
    f.fluxes.push_back(flux);
}


/// ~n stars at random positions on a size^2 image with a Moffat PSF of geometric-mean FWHM `fwhm` pixels (beta
/// `beta`) whose FWHM varies by ~+-5% and ellipticity by ~0.03 over the image; S/N drawn from N(> S/N) ~ S/N^-0.6
/// (a star-count slope) between snMin and snMax.
inline StarField makeVaryingField(std::uint64_t seed, int size, int n, double fwhm, double beta, double skyVar, double snMin,
                           double snMax) {
    StarField f;
    const Box2I box({0, 0}, size, size);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    auto pm = [&](double a) { return a * (2.0 * u(rng) - 1.0); };
    f.psf = MoffatPsf::make(box, beta, {fwhm, pm(0.03) * fwhm, pm(0.03) * fwhm, pm(0.02) * fwhm, pm(0.01) * fwhm, pm(0.02) * fwhm},
                            {pm(0.03), pm(0.02), pm(0.02), 0.0, 0.0, 0.0}, {pm(0.03), pm(0.02), pm(0.02), 0.0, 0.0, 0.0});
    f.image = MaskedImageF(box);
    const double sigma = fwhm / 2.3548;
    const double neaSky = 4.0 * 3.14159 * sigma * sigma * skyVar;
    const double slope = 0.6;
    for (int k = 0; k < n; ++k) {
        const Point2D p{20.0 + u(rng) * (size - 40), 20.0 + u(rng) * (size - 40)};
        const double sn = snMin * std::pow(1.0 - u(rng) * (1.0 - std::pow(snMax / snMin, -slope)), -1.0 / slope);
        addStarAtSnr(f, p, sn, neaSky);
    }
    addNoise(f.image, skyVar, seed * 7919 + 1);
    return f;
}

/// Re-centring adaptive moments with the PSF determiner's settings, from a 2-pixel circular weight.
inline AdaptiveMomentsResult recentredMoments(const Image<double>& img, Point2D guess) {
    return computeAdaptiveMoments(img, guess, SecondMoments::circle(2.0), PsfDeterminerConfig{}.moments);
}
inline AdaptiveMomentsResult recentredMoments(const Image<float>& img, Point2D guess) {
    return computeAdaptiveMoments(img, guess, SecondMoments::circle(2.0), PsfDeterminerConfig{}.moments);
}

inline PsfCandidate candidateAt(const MaskedImageF& mi, Point2D p, double skyVar) {
    PsfCandidate c;
    const AdaptiveMomentsResult m = recentredMoments(mi.image(), p);
    c.position = m.converged ? m.centre : p;
    c.ixx = m.moments.xx;
    c.iyy = m.moments.yy;
    c.ixy = m.moments.xy;
    c.flux = m.amplitude;
    c.fluxErr = std::sqrt(4.0 * 3.14159 * 0.5 * m.moments.trace() * skyVar + std::max(0.0, m.amplitude));
    c.flagged = !m.converged;
    return c;
}

}  // namespace drp::psftest
