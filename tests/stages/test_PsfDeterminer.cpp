// PSF determination: adaptive moments, the sinc shift, star selection (galaxies and saturated stars from
// the simulator are rejected) and recovery of a spatially varying Moffat PSF (many seeds).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "core/PsfexPsf.h"
#include "core/Render.h"
#include "drivers/sim/Simulator.h"
#include "stages/characterize/PsfDeterminer.h"
#include "stages/characterize/SourceDetection.h"
#include "stages/measure/AdaptiveMoments.h"
#include "test_PsfSupport.h"

using namespace drp;
using namespace drp::psftest;

namespace {

/// ~n stars on a jittered grid at random sub-pixel positions, fluxes log-uniform in S/N [snMin, snMax].
StarField makeStarField(std::uint64_t seed, int size, int n, double skyVar, double snMin, double snMax) {
    StarField f;
    const Box2I box({0, 0}, size, size);
    // FWHM 4 px varying by ~+-5% over the image (quadratically), ellipticity gradients of 0.02.
    f.psf = MoffatPsf::make(box, 3.5, {4.0, 0.12, -0.08, 0.04, 0.02, -0.03}, {0.03, 0.02, -0.01, 0.0, 0.0, 0.0},
                            {-0.02, 0.0, 0.02, 0.0, 0.0, 0.0});
    f.image = MaskedImageF(box);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int grid = int(std::ceil(std::sqrt(double(n))));
    const double cell = double(size - 60) / grid;
    std::vector<std::pair<int, int>> cells;
    for (int j = 0; j < grid; ++j)
        for (int i = 0; i < grid; ++i) cells.push_back({i, j});
    std::shuffle(cells.begin(), cells.end(), rng);
    const double neaSky = 4.0 * 3.14159 * 1.9 * 1.9 * skyVar;  // noise-equivalent area x sky variance
    for (int k = 0; k < n && k < int(cells.size()); ++k) {
        const Point2D p{30.0 + (cells[std::size_t(k)].first + 0.3 + 0.4 * u(rng)) * cell,
                        30.0 + (cells[std::size_t(k)].second + 0.3 + 0.4 * u(rng)) * cell};
        const double sn = snMin * std::exp(std::log(snMax / snMin) * u(rng));
        addStarAtSnr(f, p, sn, neaSky);
    }
    addNoise(f.image, skyVar, seed * 7919 + 1);
    return f;
}

}  // namespace

TEST(AdaptiveMoments, RecentringRecoversAnEllipticalGaussianExactly) {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-0.5, 0.5);
    for (int trial = 0; trial < 20; ++trial) {
        const double sigma = 1.5 + 2.0 * (u(rng) + 0.5), e1 = 0.4 * u(rng), e2 = 0.4 * u(rng);
        const GaussianPsf g(sigma, 41, e1, e2);
        const Point2D p{100.0 + u(rng), 200.0 + u(rng)};
        const Image<double> img = g.computeImage(p);
        const AdaptiveMomentsResult m = recentredMoments(img, {p.x + 0.7, p.y - 0.6});
        const PsfShape s = g.computeShape();
        ASSERT_TRUE(m.converged);
        EXPECT_NEAR(m.centre.x, p.x, 1e-6);
        EXPECT_NEAR(m.centre.y, p.y, 1e-6);
        EXPECT_NEAR(m.moments.xx / s.ixx, 1.0, 1e-6);
        EXPECT_NEAR(m.moments.yy / s.iyy, 1.0, 1e-6);
        EXPECT_NEAR(m.moments.xy, s.ixy, 1e-6 * s.ixx);
        EXPECT_NEAR(m.amplitude, 1.0, 1e-6);
    }
}

TEST(PsfDeterminer, SincShiftMovesTheCentroidAndInverts) {
    const GaussianPsf g(2.0, 31);
    const Image<double> k = g.computeKernelImage();
    for (double dx : {-0.5, -0.23, 0.1, 0.37}) {
        const Image<double> s = sincShift(k, dx, -0.6 * dx);
        double sum = 0, sx = 0, sy = 0;
        for (int y = 0; y < s.height(); ++y)
            for (int x = 0; x < s.width(); ++x) {
                sum += s(x, y);
                sx += s(x, y) * (x - 15);
                sy += s(x, y) * (y - 15);
            }
        EXPECT_NEAR(sum, 1.0, 1e-12);
        EXPECT_NEAR(sx / sum, dx, 1e-8);  // the periodic wrap of the Gaussian tails
        EXPECT_NEAR(sy / sum, -0.6 * dx, 1e-8);
        const Image<double> back = sincShift(s, -dx, 0.6 * dx);
        double maxErr = 0;
        for (int y = 0; y < k.height(); ++y)
            for (int x = 0; x < k.width(); ++x) maxErr = std::max(maxErr, std::fabs(back(x, y) - k(x, y)));
        EXPECT_LT(maxErr, 1e-12);
    }
}

TEST(PsfDeterminer, RecoversASpatiallyVaryingMoffat) {
    const double skyVar = 400.0;
    for (std::uint64_t seed : {1u, 2u, 3u}) {
        StarField f = makeStarField(seed, 2048, 450, skyVar, 100.0, 3000.0);
        std::vector<PsfCandidate> cands;
        for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, skyVar));
        PsfDeterminerConfig cfg;
        cfg.seed = seed;
        const PsfDeterminationResult r = determinePsf(f.image, cands, cfg);
        ASSERT_TRUE(r.psf);
        EXPECT_EQ(r.psf->typeName(), "PsfexPsf");
        EXPECT_GE(r.nUsed, 300) << "seed " << seed;
        EXPECT_GE(r.reserved.size(), 80u);
        EXPECT_EQ(r.spatialOrder, 2);
        // Reserved stars: the size residual the issue requires.
        EXPECT_LT(std::fabs(r.reservedMedianSizeResidual), 1e-3) << "seed " << seed;
        EXPECT_LT(r.reservedEllipticityResidual, 5e-3) << "seed " << seed;
        // Model against truth at random positions.
        std::mt19937_64 rng(seed + 100);
        std::uniform_real_distribution<double> u(40.0, 2008.0);
        std::vector<double> dts;
        double worst = 0;
        for (int k = 0; k < 25; ++k) {
            const Point2D p{u(rng), u(rng)};
            const Image<double> km = r.psf->computeKernelImage(p);
            const Image<double> kt = f.psf->computeKernelImage(p);
            const int hm = km.width() / 2, ht = kt.width() / 2, h = std::min(hm, ht);
            const double peak = kt(ht, ht);
            for (int y = -h; y <= h; ++y)
                for (int x = -h; x <= h; ++x) worst = std::max(worst, std::fabs(km(hm + x, hm + y) - kt(ht + x, ht + y)) / peak);
            const Image<double> im = r.psf->computeImage(p), it = f.psf->computeImage(p);
            const AdaptiveMomentsResult mm = recentredMoments(im, p), mt = recentredMoments(it, p);
            ASSERT_TRUE(mm.converged && mt.converged);
            dts.push_back((mm.moments.trace() - mt.moments.trace()) / mt.moments.trace());
            EXPECT_NEAR(mm.centre.x, p.x, 0.01);
            EXPECT_NEAR(mm.centre.y, p.y, 0.01);
        }
        EXPECT_LT(worst, 0.01) << "seed " << seed;
        EXPECT_LT(std::fabs(medianOf(dts)), 1e-3) << "seed " << seed;
        std::cout << "seed " << seed << ": used " << r.nUsed << " reserved " << r.reserved.size() << " stamp " << r.stampSize
                  << " reserved median dT/T " << r.reservedMedianSizeResidual << " scatter " << r.reservedSizeResidualScatter
                  << " de " << r.reservedEllipticityResidual << " | truth: max |dK|/peak " << worst << " median dT/T "
                  << medianOf(dts) << "\n";
        // Persistence of the fitted model.
        const PsfRecord rec = r.psf->toRecord();
        auto back = Psf::fromRecord(rec);
        EXPECT_TRUE(back->equals(*r.psf));
        EXPECT_TRUE(back->computeKernelImage({300, 700}).identical(r.psf->computeKernelImage({300, 700})));
    }
}

// The requirement: the PSF model's size residual on reserved stars, |dT/T| < 1e-3, in mean and median,
// over many fields: seeing 0.6-1.2" at 0.2"/px (FWHM 3-6 px), Moffat beta 2.5 or 3.5 varying over the detector,
// 450 stars at random positions per 1536^2 field (close pairs flagged as blends; fainter neighbours left in),
// a star-count S/N distribution from 50 up; 20 fields, half of the stars reserved (pooled standard error of the
// mean ~3e-4). Also: the model against the truth at the reserved stars (noise-free), and the direct residual,
// whose mean carries the adaptive moments' noise bias (+1/SNR^2; the linear residual has none). In these
// crowded fields the reserved residual also holds the light of unflagged neighbours (about +5e-4 to +9e-4 in
// the mean over other seed sets; on isolated stars it equals the model's error against the truth, ~1e-4).
TEST(PsfDeterminer, ReservedStarSizeResidualIsBelow1e3OverManySeeds) {
    const double skyVar = 1200.0;
    std::vector<double> all, direct, truthRes, seedMedians;
    double sw = 0.0, swx = 0.0, swxx = 0.0, ssWithin = 0.0;  // the S/N-weighted pool, as drp assess pools detectors
    int fields = 0;
    std::size_t offered = 0;
    for (std::uint64_t seed = 101; seed < 121; ++seed) {
        std::mt19937_64 rng(seed * 31 + 7);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const double fwhm = (0.6 + 0.6 * u(rng)) / 0.2;
        const double beta = seed % 2 ? 2.5 : 3.5;
        StarField f = makeVaryingField(seed, 1536, 450, fwhm, beta, skyVar, 50.0, 3000.0);
        std::vector<PsfCandidate> cands;
        for (std::size_t k = 0; k < f.positions.size(); ++k) {
            PsfCandidate c = candidateAt(f.image, f.positions[k], skyVar);
            for (std::size_t j = 0; j < f.positions.size(); ++j)  // a deblender would flag close pairs
                if (j != k && std::hypot(f.positions[j].x - f.positions[k].x, f.positions[j].y - f.positions[k].y) < 2.0 * fwhm)
                    c.blended = true;
            cands.push_back(c);
        }
        PsfDeterminerConfig cfg;
        cfg.seed = seed;
        cfg.reserveFraction = 0.5;  // many reserved stars: the pooled mean's standard error is ~3e-4
        const PsfDeterminationResult r = determinePsf(f.image, cands, cfg);
        ASSERT_GE(r.reserved.size(), 80u) << "seed " << seed;
        std::vector<double> res;
        for (std::size_t i = 0; i < r.reserved.size(); ++i) {
            const double dt = r.reservedSizeResiduals[i];
            ++offered;
            if (!std::isfinite(dt)) continue;  // a bright neighbour on the core, or failed moments; counted below
            res.push_back(dt);
            all.push_back(dt);
            direct.push_back(r.reservedDirectSizeResiduals[i]);
            const Point2D p = cands[r.reserved[i]].position;
            const double tm = recentredMoments(r.psf->computeImage(p), p).moments.trace();
            const double tt = recentredMoments(f.psf->computeImage(p), p).moments.trace();
            truthRes.push_back((tm - tt) / tt);
        }
        seedMedians.push_back(medianOf(res));
        EXPECT_NEAR(r.reservedMedianSizeResidual, medianOf(res), 1e-15);
        {  // the weighted mean and its sums: a weight for every star with a residual, none for the others
            ASSERT_EQ(r.reservedSizeResidualWeights.size(), r.reserved.size());
            double w = 0.0, wx = 0.0;
            for (std::size_t i = 0; i < r.reserved.size(); ++i) {
                EXPECT_EQ(r.reservedSizeResidualWeights[i] > 0.0, std::isfinite(r.reservedSizeResiduals[i]));
                if (r.reservedSizeResidualWeights[i] > 0.0)
                    w += r.reservedSizeResidualWeights[i], wx += r.reservedSizeResidualWeights[i] * r.reservedSizeResiduals[i];
            }
            EXPECT_NEAR(r.reservedSizeResidualWeightSum, w, 1e-9 * w);
            EXPECT_NEAR(r.reservedWeightedMeanSizeResidual, wx / w, 1e-12);
            sw += w, swx += wx, swxx += w * std::pow(wx / w, 2), ssWithin += r.reservedSizeResidualWeightedSs;
        }
        EXPECT_LT(std::fabs(medianOf(res)), 5e-3) << "seed " << seed;
        ++fields;
    }
    auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); };
    const double meanAll = mean(all);
    double sd = 0.0;
    for (double x : all) sd += (x - meanAll) * (x - meanAll);
    sd = std::sqrt(sd / double(all.size() - 1));
    std::cout << fields << " fields, " << all.size() << " reserved stars: dT/T mean " << meanAll << " (+- " << sd / std::sqrt(double(all.size()))
              << ") median " << medianOf(all) << " sd " << sd << "; median of the per-field medians " << medianOf(seedMedians)
              << "; model vs truth at the reserved stars mean " << mean(truthRes) << " median " << medianOf(truthRes)
              << "; direct (noise-biased) dT/T mean " << mean(direct) << " median " << medianOf(direct) << "\n";
    // The weighted pool: chi^2 per star about its mean near (2.3 / 3)^2 = 0.6 (the weights' sizeNoise 3 against the
    // measured 2.3 / S/N: they follow the noise), and a smaller error than the plain mean's.
    const double wMean = swx / sw, chi2 = ssWithin + swxx - swx * swx / sw;
    const double reducedChi2 = chi2 / double(all.size() - 1), wErr = std::sqrt(reducedChi2 / sw);
    std::cout << "weighted: dT/T " << wMean << " +- " << wErr << ", chi^2 per star " << reducedChi2 << "\n";
    EXPECT_LT(std::fabs(wMean), 1e-3);
    EXPECT_GT(reducedChi2, 0.3);
    EXPECT_LT(reducedChi2, 1.2);
    EXPECT_LT(wErr, sd / std::sqrt(double(all.size())));
    EXPECT_GE(double(all.size()), 0.9 * double(offered));  // random positions: ~5% have a neighbour on the core
    EXPECT_LT(std::fabs(meanAll), 1e-3);
    EXPECT_LT(std::fabs(medianOf(all)), 1e-3);
    EXPECT_LT(std::fabs(medianOf(seedMedians)), 1e-3);
    EXPECT_LT(std::fabs(mean(truthRes)), 1e-3);
    EXPECT_LT(std::fabs(medianOf(truthRes)), 1e-3);
}

TEST(PsfDeterminer, ReserveSplitIsSeededAndDisjoint) {
    const double skyVar = 400.0;
    StarField f = makeStarField(9, 768, 100, skyVar, 200.0, 2000.0);
    std::vector<PsfCandidate> cands;
    for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, skyVar));
    PsfDeterminerConfig cfg;
    cfg.spatialOrder = 1;
    cfg.iterations = 1;
    cfg.seed = 42;
    const auto a = determinePsf(f.image, cands, cfg), b = determinePsf(f.image, cands, cfg);
    EXPECT_EQ(a.reserved, b.reserved);
    EXPECT_EQ(a.used, b.used);
    cfg.seed = 43;
    const auto c = determinePsf(f.image, cands, cfg);
    EXPECT_NE(a.reserved, c.reserved);
    for (std::size_t i : a.reserved) EXPECT_EQ(std::count(a.used.begin(), a.used.end(), i), 0);
    const double n = double(a.used.size() + a.reserved.size());
    EXPECT_NEAR(double(a.reserved.size()) / n, 0.2, 0.02);
}

TEST(PsfDeterminer, TooFewStarsIsANumericalError) {
    StarField f = makeStarField(4, 512, 6, 400.0, 200.0, 2000.0);
    std::vector<PsfCandidate> cands;
    for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, 400.0));
    EXPECT_THROW(determinePsf(f.image, cands, PsfDeterminerConfig{}), NumericalError);
    PsfDeterminerConfig bad;
    bad.spatialOrder = 4;
    EXPECT_THROW(bad.validate(), ConfigError);
}

TEST(PsfDeterminer, SelectorRejectsGalaxiesAndSaturatedStars) {
    int galaxiesSelected = 0, starsSelected = 0, saturatedSelected = 0, saturatedUsed = 0, galaxiesOffered = 0, saturatedOffered = 0;
    for (std::uint64_t seed : {31u, 32u}) {
        SimContext ctx(loadSimConfig("tiny", {}, {"seed=" + std::to_string(seed), "sky.star_density_per_deg2=100000",
                                                  "sky.star_mag_faint=21", "sky.galaxy_density_per_deg2=200000", "sky.galaxy_mag_faint=22.5", "camera.detector_width=1024",
                                                  "camera.detector_height=1024", "observing.visits_per_band=1",
                                                  "observing.bands=r"}));
        SimulatedExposure sim = simulateScienceExposure(ctx, 0, 0, true);
        const Table& t = sim.truth;
        const PropertyList& md = t.metadata();
        MaskedImageF mi(sim.incident.bbox());
        mi.image().assign(sim.incident);
        // Subtract the (known, linear) sky; noise from the incident image.
        const double s0 = md.getDouble("SKYELEC"), sx = md.getDouble("SKYDX"), sy = md.getDouble("SKYDY");
        std::mt19937_64 rng(seed);
        std::normal_distribution<double> g(0.0, 1.0);
        const double fullWell = 60000.0;
        const MaskPixel sat = mi.mask().planeBitMask("SAT");
        for (int y = 0; y < mi.height(); ++y)
            for (int x = 0; x < mi.width(); ++x) {
                double e = mi.image()(x, y);
                e += std::sqrt(std::max(e, 1.0)) * g(rng);
                mi.variance()(x, y) = float(std::max(double(mi.image()(x, y)), 1.0));
                if (e >= fullWell) {
                    e = fullWell;
                    mi.mask()(x, y) |= sat;
                }
                mi.image()(x, y) = float(e - (s0 + sx * x + sy * y));
            }
        const Image<double> k = sim.psf->computeKernelImage({512, 512});
        const double psfSigma = std::sqrt(0.5 * recentredMoments(k, {0, 0}).moments.trace());
        DetectionResult det = detectSources(mi, psfSigma, SourceDetectionConfig{});
        // Candidates from the detected peaks (one per footprint, as a deblender-free measurement would).
        std::vector<PsfCandidate> cands;
        std::vector<int> type;
        std::vector<bool> saturated;
        auto tx = t.column<double>("x");
        auto ty = t.column<double>("y");
        auto tt = t.column<std::int32_t>("type");
        for (std::size_t i = 0; i < det.positive.size(); ++i) {
            const Footprint& fp = det.positive[i];
            const PeakRecord& pk = fp.peaks().front();
            PsfCandidate c = candidateAt(mi, {pk.x, pk.y}, s0);
            c.blended = fp.peaks().size() > 1;
            bool anySat = false;
            fp.spans().forEachPixel([&](Point2I p) { anySat = anySat || (mi.mask().atParent(p) & sat); });
            // Truth match.
            int best = -1;
            double bd = 2.0;
            for (std::size_t r = 0; r < t.size(); ++r) {
                const double d = std::hypot(tx[r] - c.position.x, ty[r] - c.position.y);
                if (d < bd) bd = d, best = int(r);
            }
            if (best < 0) continue;
            // Half the saturated stars are not flagged: the determiner must still keep them out (size, mask).
            c.saturated = anySat && (i % 2 == 0);
            cands.push_back(c);
            type.push_back(tt[std::size_t(best)]);
            saturated.push_back(anySat);
            saturatedOffered += anySat;
        }
        PsfDeterminerConfig cfg;
        cfg.seed = seed;
        cfg.spatialOrder = 1;
        cfg.minSnr = 20.0;  // more (and fainter, harder) galaxies offered
        const auto sel = selectPsfStars(cands, cfg);
        for (std::size_t i : sel) {
            if (type[i] == 1) ++galaxiesSelected;
            if (type[i] == 0) ++starsSelected;
            if (saturated[i]) ++saturatedSelected;
        }
        for (std::size_t i = 0; i < cands.size(); ++i)
            if (type[i] == 1 && cands[i].isCandidate() && cands[i].fluxErr > 0 && cands[i].flux / cands[i].fluxErr > cfg.minSnr) ++galaxiesOffered;
        const auto r = determinePsf(mi, cands, cfg);
        for (std::size_t i : r.used) saturatedUsed += saturated[i];
        for (std::size_t i : r.reserved) saturatedUsed += saturated[i];
    }
    std::cout << "selected stars " << starsSelected << ", galaxies " << galaxiesSelected << " (of " << galaxiesOffered
              << " bright galaxies offered), saturated offered " << saturatedOffered << ", selected " << saturatedSelected << ", saturated used " << saturatedUsed << "\n";
    EXPECT_GE(starsSelected, 60);
    EXPECT_LE(double(galaxiesSelected), 0.05 * starsSelected);
    EXPECT_GT(saturatedOffered, 0);
    EXPECT_GT(galaxiesOffered, 10);
    EXPECT_EQ(saturatedSelected, 0);
    EXPECT_EQ(saturatedUsed, 0);
}

namespace {

/// A sparse field like the demo survey's u band: a 1024^2 detector, Moffat PSF (beta 3.5) of FWHM `fwhm` pixels, sky
/// variance 250, `nStars` stars with S/N starSnr to 3 starSnr and `nGalaxies` galaxies (elliptical Gaussians of
/// adaptive size T from galMinRatio to galMaxRatio times the PSF's, S/N galSnr to 5 galSnr) at random positions. Returns the candidates (adaptive moments) and the
/// truth (galaxy or not) per candidate.
struct SparseField {
    MaskedImageF image;
    std::shared_ptr<const MoffatPsf> psf;
    std::vector<PsfCandidate> candidates;
    std::vector<bool> galaxy;
    double trueT = 0.0;  ///< adaptive T of the PSF at the centre
};

SparseField makeSparseField(std::uint64_t seed, int nStars, int nGalaxies, double fwhm, double starSnr = 20.0, double galMinRatio = 1.3,
                            double galMaxRatio = 8.0, double galSnr = 20.0) {
    SparseField f;
    const Box2I box({0, 0}, 1024, 1024);
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    f.psf = MoffatPsf::make(box, 3.5, {fwhm, 0.01 * fwhm, -0.01 * fwhm, 0.0, 0.0, 0.0}, {0.02, 0.0, 0.0, 0.0, 0.0, 0.0},
                            {-0.01, 0.0, 0.0, 0.0, 0.0, 0.0});
    f.image = MaskedImageF(box);
    const double skyVar = 250.0;
    const Image<double> k = f.psf->computeImage({512.0, 512.0});
    f.trueT = recentredMoments(k, {512.0, 512.0}).moments.trace();
    std::vector<Point2D> pos;
    std::vector<bool> gal;
    auto place = [&]() {
        for (;;) {
            const Point2D p{40.0 + u(rng) * 944.0, 40.0 + u(rng) * 944.0};
            bool ok = true;
            for (const Point2D& q : pos) ok = ok && std::hypot(p.x - q.x, p.y - q.y) > 30.0;
            if (ok) return p;
        }
    };
    const double nea = 2.0 * 3.14159 * f.trueT;  // 4 pi sigma^2
    auto fluxAt = [&](double sn, double area) { return 0.5 * (sn * sn + sn * std::sqrt(sn * sn + 4.0 * area * skyVar)); };
    for (int s = 0; s < nStars; ++s) {
        const Point2D p = place();
        addPointSource(f.image.image(), p, fluxAt(starSnr * std::pow(3.0, u(rng)), nea), *f.psf);
        pos.push_back(p);
        gal.push_back(false);
    }
    for (int g = 0; g < nGalaxies; ++g) {
        const Point2D p = place();
        const double ratio = galMinRatio * std::pow(galMaxRatio / galMinRatio, u(rng));  // T_gal / T_psf
        const double sigma = std::sqrt(0.5 * ratio * f.trueT);
        const GaussianPsf shape(sigma, 2 * int(std::ceil(6.0 * sigma)) + 1, 0.3 * (u(rng) - 0.5), 0.3 * (u(rng) - 0.5));
        addPointSource(f.image.image(), p, fluxAt(galSnr * std::pow(5.0, u(rng)), nea * ratio), shape);
        pos.push_back(p);
        gal.push_back(true);
    }
    addNoise(f.image, skyVar, seed * 7919 + 3);
    for (std::size_t i = 0; i < pos.size(); ++i) {
        f.candidates.push_back(candidateAt(f.image, pos[i], skyVar));
        f.galaxy.push_back(gal[i]);
    }
    return f;
}

/// The determiner as the single-visit driver runs it in a sparse field (constant model from >= 3 stars).
PsfDeterminerConfig sparseConfig(std::uint64_t seed) {
    PsfDeterminerConfig cfg;
    cfg.seed = seed;
    cfg.spatialOrder = 0;
    cfg.minStars = 3;
    cfg.minStarsPerTerm = 3;
    return cfg;
}

}  // namespace

// The size noise of the consistency check: sigma(ln T) x S/N of isolated Moffat stars at S/N 20-60 must be below
// sizeNoise (the check would otherwise reject fields of pure stars), and not far below (it would not see galaxies).
TEST(PsfDeterminer, StarSizeNoiseMatchesTheConsistencyCheck) {
    std::vector<double> z;
    for (std::uint64_t seed = 300; seed < 310; ++seed) {
        SparseField f = makeSparseField(seed, 40, 0, 3.0);
        for (std::size_t i = 0; i < f.candidates.size(); ++i) {
            const PsfCandidate& c = f.candidates[i];
            if (c.flagged) continue;
            const double snr = c.flux / c.fluxErr;
            z.push_back(std::log((c.ixx + c.iyy) / f.trueT) * snr);
        }
    }
    std::vector<double> a;
    for (double x : z) a.push_back(std::fabs(x - medianOf(z)));
    const double scatter = 1.4826 * medianOf(a);
    std::cout << z.size() << " stars: sigma(ln T) x S/N = " << scatter << " (sizeNoise " << PsfDeterminerConfig{}.sizeNoise << ")\n";
    EXPECT_LT(scatter, PsfDeterminerConfig{}.sizeNoise);
    EXPECT_GT(scatter, 0.4 * PsfDeterminerConfig{}.sizeNoise);
}

// The sparse fields (demo u band): 3-6 stars among 10-30 galaxies of many sizes, 60 seeds. The determiner
// must give a model whose size matches the true PSF within its noise (3 sigma, sigma = 2.6 / sqrt(sum S/N^2) of the
// used stars, at least 2%), or report failure (NumericalError) - and then psfLocusSize, the caller's fallback size,
// must be the PSF's within 20% (one or two stars of S/N 10-20: sigma(ln T) ~ 0.1-0.2). Printed: the same fields
// with the old selection (densest window, no consistency check), whose models were off by up to 130% (galaxies).
TEST(PsfDeterminer, SparseFieldsGiveTheStellarSizeOrFail) {
    int models = 0, failures = 0, sizeFailures = 0, badModels = 0, badFallbacks = 0, oldModels = 0, oldBad = 0;
    double worst = 0.0;
    for (std::uint64_t seed = 400; seed < 460; ++seed) {
        std::mt19937_64 rng(seed);
        const int nStars = 3 + int(rng() % 4), nGal = 10 + int(rng() % 21);
        const double fwhm = 2.6 + 0.1 * double(rng() % 10);
        SparseField f = makeSparseField(seed, nStars, nGal, fwhm);
        const PsfDeterminerConfig cfg = sparseConfig(seed);
        const double locusT = psfLocusSize(f.candidates, cfg);
        try {
            const PsfDeterminationResult r = determinePsf(f.image, f.candidates, cfg);
            ++models;
            const Image<double> m = r.psf->computeImage({512.0, 512.0});
            const double dt = recentredMoments(m, {512.0, 512.0}).moments.trace() / f.trueT - 1.0;
            double sumSnr2 = 0.0;
            for (std::size_t i : r.used) sumSnr2 += std::pow(f.candidates[i].flux / f.candidates[i].fluxErr, 2);
            const double tol = 3.0 * std::hypot(2.6 / std::sqrt(sumSnr2), 0.02);
            worst = std::max(worst, std::fabs(dt) / tol);
            for (std::size_t i : r.used) EXPECT_FALSE(f.galaxy[i]) << "seed " << seed;
            if (std::fabs(dt) > tol) {
                ++badModels;
                std::cout << "seed " << seed << ": " << nStars << " stars, " << nGal << " galaxies: model dT/T " << dt << "\n";
            }
        } catch (const NumericalError& e) {
            ++failures;
            sizeFailures += std::string(e.what()).find("disagree in size") != std::string::npos;
            if (!(std::fabs(std::log(locusT / f.trueT)) < 0.2)) {
                ++badFallbacks;
                std::cout << "seed " << seed << ": " << e.what() << "; locus T / true T " << locusT / f.trueT << "\n";
            }
        }
        PsfDeterminerConfig old = cfg;
        old.compactLocusFraction = 1.0;
        old.sizeCheckMaxStars = 0;
        try {
            const PsfDeterminationResult r = determinePsf(f.image, f.candidates, old);
            ++oldModels;
            const double dt = recentredMoments(r.psf->computeImage({512.0, 512.0}), {512.0, 512.0}).moments.trace() / f.trueT - 1.0;
            double sumSnr2 = 0.0;
            for (std::size_t i : r.used) sumSnr2 += std::pow(f.candidates[i].flux / f.candidates[i].fluxErr, 2);
            if (std::fabs(dt) > 3.0 * std::hypot(2.6 / std::sqrt(sumSnr2), 0.02)) ++oldBad;
        } catch (const NumericalError&) {
        }
    }
    std::cout << "60 sparse fields: " << models << " models (" << badModels << " off by > 3 sigma, worst |dT/T| / 3 sigma " << worst << "), "
              << failures << " failures (" << sizeFailures << " by the size check; " << badFallbacks << " with the locus size off by > 20%); old selection: "
              << oldModels << " models, " << oldBad << " off by > 3 sigma\n";
    EXPECT_EQ(badModels, 0);
    EXPECT_EQ(badFallbacks, 0);
    EXPECT_GE(models, 12);  // most failures: fewer than 3 stars above S/N 20
}

// psfLocusSize takes the compact locus even when galaxies outnumber the stars in a denser window, and one star
// against one galaxy.
TEST(PsfDeterminer, LocusSizeIsTheMostCompactPopulatedWindow) {
    auto cand = [](double t, double x) {
        PsfCandidate c;
        c.position = {x, 100.0};
        c.ixx = c.iyy = 0.5 * t;
        c.flux = 1000.0;
        c.fluxErr = 20.0;
        return c;
    };
    std::vector<PsfCandidate> cs{cand(5.0, 1), cand(5.1, 2), cand(5.05, 3), cand(9.0, 4), cand(9.2, 5), cand(9.4, 6), cand(9.3, 7), cand(20, 8)};
    PsfDeterminerConfig cfg;
    EXPECT_NEAR(psfLocusSize(cs, cfg), 5.05, 1e-9);
    cfg.compactLocusFraction = 1.0;  // the densest window: the galaxies
    EXPECT_GT(psfLocusSize(cs, cfg), 9.0);
    EXPECT_NEAR(psfLocusSize({cand(5.0, 1), cand(19.0, 2)}, PsfDeterminerConfig{}), 5.0, 1e-9);
    EXPECT_TRUE(std::isnan(psfLocusSize({}, PsfDeterminerConfig{})));
    const auto sel = selectPsfStars(cs, PsfDeterminerConfig{});
    EXPECT_EQ(sel.size(), 3u);
    for (std::size_t i : sel) EXPECT_LT(i, 3u);
}

// The size consistency check: bright compact galaxies (T 1.12-1.2 x the PSF's, inside the stellar locus window) among
// as many bright stars, 20 seeds. Without the check, models that mix stars and galaxies (|dT/T| > 3%) pass; with it,
// most of them are reported as failures. Stars alone pass (no false failures).
TEST(PsfDeterminer, SizeCheckRejectsCompactGalaxiesAndPassesStars) {
    int sizeFailures = 0, badModels = 0, oldBadModels = 0, starFailures = 0;
    for (std::uint64_t seed = 500; seed < 520; ++seed) {
        SparseField f = makeSparseField(seed, 4, 4, 3.0, 100.0, 1.12, 1.2, 60.0);
        auto modelError = [&](const PsfDeterminerConfig& cfg) {
            const PsfDeterminationResult r = determinePsf(f.image, f.candidates, cfg);
            return recentredMoments(r.psf->computeImage({512.0, 512.0}), {512.0, 512.0}).moments.trace() / f.trueT - 1.0;
        };
        try {
            const double dt = modelError(sparseConfig(seed));
            if (std::fabs(dt) > 0.03) {
                ++badModels;
                std::cout << "seed " << seed << ": a model of dT/T " << dt << " passed the size check\n";
            }
        } catch (const NumericalError& e) {
            sizeFailures += std::string(e.what()).find("disagree in size") != std::string::npos;
        }
        PsfDeterminerConfig old = sparseConfig(seed);
        old.sizeCheckMaxStars = 0;
        try {
            oldBadModels += std::fabs(modelError(old)) > 0.03;
        } catch (const NumericalError&) {
        }
        SparseField s = makeSparseField(seed + 1000, 8, 0, 3.0, 30.0);
        try {
            (void)determinePsf(s.image, s.candidates, sparseConfig(seed));
        } catch (const NumericalError& e) {
            ++starFailures;
            std::cout << "stars only, seed " << seed + 1000 << ": " << e.what() << "\n";
        }
    }
    std::cout << "20 fields of 4 stars + 4 compact galaxies: models off by > 3% " << badModels << " (" << oldBadModels
              << " without the size check), " << sizeFailures << " size-check failures; 20 star-only fields: " << starFailures
              << " failures\n";
    EXPECT_LT(badModels, oldBadModels);
    EXPECT_LE(badModels, 2);
    EXPECT_LE(starFailures, 1);
}

// The spatial order by evidence (orderSelectionSigma): 36 stars (S/N 50-1000, star-count slope) on a 1024^2
// detector. With a PSF that does not vary over it, the F-test keeps the constant model in (nearly) every field, and the
// model is closer to the truth than the order-2 model that 18+ stars allow at 3 stars per term (its six terms per pixel
// carry the stars' photon noise to every pixel): 1.2e-3 against 8.0e-3. With a PSF whose FWHM changes linearly by
// up to +-13% over the detector, a varying model is chosen in every field (order 1: the stars' moments cannot show
// the 1-2% quadratic part of T at the corners, which the forced order 2 follows, so the chosen model is 1.4x
// further from the truth there: 1.09e-2 against 7.7e-3; the price of the constant fields' 6x).
TEST(PsfDeterminer, SpatialOrderFollowsTheEvidence) {
    const double skyVar = 400.0;
    auto field = [&](std::uint64_t seed, bool varying) {
        StarField f;
        const Box2I box({0, 0}, 1024, 1024);
        f.psf = varying ? MoffatPsf::make(box, 3.5, {4.0, 0.32, -0.2, 0.0, 0.0, 0.0}, {0.03, 0.0, 0.0, 0.0, 0.0, 0.0},
                                          {-0.02, 0.0, 0.0, 0.0, 0.0, 0.0})
                        : MoffatPsf::make(box, 3.5, {4.0, 0.0, 0.0, 0.0, 0.0, 0.0}, {0.03, 0.0, 0.0, 0.0, 0.0, 0.0},
                                          {-0.02, 0.0, 0.0, 0.0, 0.0, 0.0});
        f.image = MaskedImageF(box);
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        const double neaSky = 4.0 * 3.14159 * 1.7 * 1.7 * skyVar;
        for (int k = 0; k < 36; ++k) {
            const Point2D p{40.0 + u(rng) * 944.0, 40.0 + u(rng) * 944.0};
            const double sn = 50.0 * std::pow(1.0 - u(rng) * (1.0 - std::pow(20.0, -0.6)), -1.0 / 0.6);
            addStarAtSnr(f, p, sn, neaSky);
        }
        addNoise(f.image, skyVar, seed * 7919 + 1);
        return f;
    };
    // Mean |dT/T| of the model against the truth on a 4 x 4 grid.
    auto truthError = [](const Psf& model, const Psf& truth) {
        double sum = 0.0;
        for (int j = 0; j < 4; ++j)
            for (int i = 0; i < 4; ++i) {
                const Point2D p{100.0 + 275.0 * i, 100.0 + 275.0 * j};
                const double tm = recentredMoments(model.computeImage(p), p).moments.trace();
                const double tt = recentredMoments(truth.computeImage(p), p).moments.trace();
                sum += std::fabs(tm / tt - 1.0);
            }
        return sum / 16.0;
    };
    for (bool varying : {false, true}) {
        int constantModels = 0, fields = 0;
        double errorChosen = 0.0, errorOrder2 = 0.0;
        for (std::uint64_t seed = 301; seed < 313; ++seed) {
            StarField f = field(seed, varying);
            std::vector<PsfCandidate> cands;
            for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, skyVar));
            PsfDeterminerConfig cfg;
            cfg.seed = seed;
            cfg.minStarsPerTerm = 3;  // 24 stars may carry order 2
            const PsfDeterminationResult chosen = determinePsf(f.image, cands, cfg);
            cfg.orderSelectionSigma = 0.0;
            const PsfDeterminationResult forced = determinePsf(f.image, cands, cfg);
            ASSERT_EQ(forced.spatialOrder, 2) << "seed " << seed;
            constantModels += chosen.spatialOrder == 0;
            errorChosen += truthError(*chosen.psf, *f.psf);
            errorOrder2 += truthError(*forced.psf, *f.psf);
            ++fields;
        }
        errorChosen /= fields;
        errorOrder2 /= fields;
        std::cout << (varying ? "varying" : "constant") << " PSF, " << fields << " fields of 36 stars: " << constantModels
                  << " constant models; model vs truth mean |dT/T| " << errorChosen << " (forced order 2: " << errorOrder2 << ")\n";
        if (!varying) {
            EXPECT_GE(constantModels, 9);
            EXPECT_LT(errorChosen, 0.75 * errorOrder2);
        } else {
            EXPECT_EQ(constantModels, 0);
            EXPECT_LT(errorChosen, 1.6 * errorOrder2);
        }
    }
}
