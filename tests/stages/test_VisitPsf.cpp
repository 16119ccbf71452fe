// determineVisitPsf: one PSF model from the pooled stars of a mosaic of detectors (stages/characterize/VisitPsf.h).
//  * one detector at offset 0 through psfStarCutouts gives determinePsf's result on the whole image, bit for bit;
//    at a nonzero offset the same model, reframed, to rounding (a polynomial fit does not depend on its frame);
//  * a 3 x 3 mosaic with a focal-plane Moffat PSF (FWHM growing with radius, an ellipticity gradient) and 8-15 stars
//    per detector: the visit model's size error against the truth is well below the per-detector models' (several
//    seeds), with finite reserved residuals and per-detector indices that point at that detector's stars;
//  * an undersampled mosaic (FWHM 1.6-2 px) takes the oversampled fit;
//  * too few stars in the visit: NumericalError; a detector without candidates still gets the reframed model.
#include <gtest/gtest.h>

#include <Eigen/Dense>
#include <cmath>
#include <cstdio>
#include <random>

#include "core/Error.h"
#include "core/PsfexPsf.h"
#include "stages/characterize/VisitPsf.h"
#include "test_PsfSupport.h"

using namespace drp;
using namespace drp::psftest;

namespace {

constexpr double kSkyVar = 100.0;

/// A visit-frame Moffat over `visit`: FWHM f0 + f2 (u^2 + v^2) (radius squared), e1 and e2 linear.
std::shared_ptr<const MoffatPsf> focalPlanePsf(const Box2I& visit, double fwhmCentre, double fwhmCorner, double beta) {
    const double f2 = 0.5 * (fwhmCorner - fwhmCentre);  // u^2 + v^2 = 2 at the corners
    return MoffatPsf::make(visit, beta, {fwhmCentre, 0.0, 0.0, f2, 0.0, f2}, {0.01, 0.04, 0.0, 0.0, 0.0, 0.0},
                           {-0.01, 0.0, 0.03, 0.0, 0.0, 0.0}, 41);
}

/// The focal-plane PSF over one detector: the quadratics refitted in the detector's own frame (exact: an affine map of
/// a quadratic is a quadratic), checked against the visit PSF at p + offset.
std::shared_ptr<const MoffatPsf> detectorPsf(const MoffatPsf& visit, const Box2I& box, Point2D off) {
    const double cx = box.minX() + 0.5 * (box.width() - 1), cy = box.minY() + 0.5 * (box.height() - 1);
    const double hx = 0.5 * box.width(), hy = 0.5 * box.height();
    Eigen::MatrixXd a(25, 6), rhs(25, 3);
    int row = 0;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 5; ++i, ++row) {
            const double u = -1.0 + 0.5 * i, v = -1.0 + 0.5 * j;
            const MoffatParameters p = visit.parametersAt({cx + u * hx + off.x, cy + v * hy + off.y});
            a.row(row) << 1.0, u, v, u * u, u * v, v * v;
            rhs(row, 0) = p.fwhm, rhs(row, 1) = p.e1, rhs(row, 2) = p.e2;
        }
    const Eigen::MatrixXd c = a.colPivHouseholderQr().solve(rhs);
    std::array<double, 6> f{}, e1{}, e2{};
    for (int k = 0; k < 6; ++k) f[std::size_t(k)] = c(k, 0), e1[std::size_t(k)] = c(k, 1), e2[std::size_t(k)] = c(k, 2);
    auto psf = MoffatPsf::make(box, visit.beta(), f, e1, e2, visit.kernelSize());
    const Point2D probe{box.minX() + 0.3 * box.width(), box.minY() + 0.8 * box.height()};
    const MoffatParameters pd = psf->parametersAt(probe), pv = visit.parametersAt({probe.x + off.x, probe.y + off.y});
    EXPECT_NEAR(pd.fwhm, pv.fwhm, 1e-9);
    EXPECT_NEAR(pd.e1, pv.e1, 1e-9);
    return psf;
}

struct MosaicDetector {
    VisitPsfDetector input;
    MaskedImageF image;
    std::shared_ptr<const MoffatPsf> truth;
    std::vector<Point2D> stars;  ///< true positions (candidate i is star i)
};

/// A 3 x 3 mosaic of 512 x 512 detectors with gaps of ~40 px and fractional offsets (visit frame centred near 0), with
/// nMin..nMax stars each (S/N from snMin to snMax, star-count slope), noise and sky variance kSkyVar. Detector
/// `empty` (or -1) has no stars.
std::vector<MosaicDetector> makeMosaic(std::uint64_t seed, const MoffatPsf& visit, int nMin, int nMax, double snMin, double snMax,
                                       int empty = -1) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<MosaicDetector> dets;
    const int size = 512, step = 552;
    for (int j = 0; j < 3; ++j)
        for (int i = 0; i < 3; ++i) {
            MosaicDetector d;
            d.input.detector = int(dets.size());
            d.input.bbox = Box2I({0, 0}, size, size);
            d.input.offset = {(i - 1) * step - 0.5 * size + (u(rng) - 0.5), (j - 1) * step - 0.5 * size + (u(rng) - 0.5)};
            d.truth = detectorPsf(visit, d.input.bbox, d.input.offset);
            d.image = MaskedImageF(d.input.bbox);
            StarField f;
            f.image = MaskedImageF(d.input.bbox);
            f.psf = d.truth;
            const double sigma = 3.0 / 2.3548, neaSky = 4.0 * 3.14159 * sigma * sigma * kSkyVar;
            const int n = d.input.detector == empty ? 0 : nMin + int(u(rng) * (nMax - nMin + 1));
            for (int k = 0; k < n; ++k) {
                const Point2D p{30.0 + u(rng) * (size - 60), 30.0 + u(rng) * (size - 60)};
                const double sn = snMin * std::pow(1.0 - u(rng) * (1.0 - std::pow(snMax / snMin, -0.6)), -1.0 / 0.6);
                addStarAtSnr(f, p, sn, neaSky);
            }
            addNoise(f.image, kSkyVar, seed * 7919 + std::uint64_t(d.input.detector) * 104729 + 3);
            d.image = f.image;
            d.stars = f.positions;
            for (const Point2D& p : f.positions) d.input.candidates.push_back(candidateAt(d.image, p, kSkyVar));
            dets.push_back(std::move(d));
        }
    return dets;
}

void cutAll(std::vector<MosaicDetector>& dets, const PsfDeterminerConfig& cfg) {
    for (MosaicDetector& d : dets) d.input.cutouts = psfStarCutouts(d.image, d.input.candidates, cfg);
}

std::vector<VisitPsfDetector> inputs(const std::vector<MosaicDetector>& dets) {
    std::vector<VisitPsfDetector> v;
    for (const MosaicDetector& d : dets) v.push_back(d.input);
    return v;
}

/// Mean |dT/T| of `model` against `truth` (re-centring adaptive moments of the kernel images) on a 5 x 5 grid over box.
double meanSizeError(const Psf& model, const Psf& truth, const Box2I& box) {
    double s = 0.0;
    int n = 0;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 5; ++i) {
            const Point2D p{box.minX() + (0.05 + 0.225 * i) * box.width(), box.minY() + (0.05 + 0.225 * j) * box.height()};
            // With the determiner's weight floor (an undersampled kernel has no fixed point without it).
            AdaptiveMomentsControl ctl = PsfDeterminerConfig{}.moments;
            ctl.minWeightVariance = 1.21;
            const AdaptiveMomentsResult m = computeAdaptiveMoments(model.computeKernelImage(p), {0.0, 0.0}, SecondMoments::circle(1.5), ctl);
            const AdaptiveMomentsResult t = computeAdaptiveMoments(truth.computeKernelImage(p), {0.0, 0.0}, SecondMoments::circle(1.5), ctl);
            EXPECT_TRUE(m.converged && t.converged);
            s += std::fabs(m.moments.trace() / t.moments.trace() - 1.0);
            ++n;
        }
    return s / n;
}

bool sameDoubles(const std::vector<double>& a, const std::vector<double>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t k = 0; k < a.size(); ++k)
        if (!(a[k] == b[k] || (std::isnan(a[k]) && std::isnan(b[k])))) return false;
    return true;
}

bool sameDouble(double a, double b) { return a == b || (std::isnan(a) && std::isnan(b)); }

}  // namespace

// One detector at offset 0 through its cutouts: determinePsf's result on the whole image, bit for bit (native and
// oversampled, several seeds and orders).
TEST(VisitPsf, OneDetectorFromCutoutsIsDeterminePsfBitForBit) {
    struct Case { std::uint64_t seed; double fwhm; int order; int n; };
    int compared = 0;
    for (const Case& c : {Case{1, 3.2, 2, 50}, Case{2, 3.6, 3, 120}, Case{3, 1.8, 2, 60}, Case{4, 2.8, 1, 40}, Case{5, 1.6, 3, 90}}) {
        StarField f = makeVaryingField(c.seed, 512, c.n, c.fwhm, 3.0, kSkyVar, 30.0, 500.0);
        std::vector<PsfCandidate> cands;
        for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, kSkyVar));
        PsfDeterminerConfig cfg;
        cfg.spatialOrder = c.order;
        cfg.seed = c.seed * 17;
        cfg.minStars = 5;
        cfg.sizeCheckMaxStars = 0;
        const PsfDeterminationResult ref = determinePsf(f.image, cands, cfg);
        VisitPsfDetector d;
        d.bbox = f.image.bbox();
        d.candidates = cands;
        d.cutouts = psfStarCutouts(f.image, cands, cfg);
        for (const auto& cut : d.cutouts) EXPECT_LT(cut.bbox().width(), 100);  // a star's surroundings, not the image
        const VisitPsfResult v = determineVisitPsf({d}, cfg, VisitPsfConfig{c.order});
        ASSERT_EQ(v.detectors.size(), 1u);
        const auto& a = dynamic_cast<const PsfexPsf&>(*ref.psf);
        const PsfexPsf& b = *v.model;
        ASSERT_EQ(a.spatialOrder(), b.spatialOrder());
        ASSERT_EQ(a.oversampling(), b.oversampling());
        EXPECT_EQ(a.bbox(), b.bbox());
        for (std::size_t k = 0; k < a.components().size(); ++k) EXPECT_TRUE(a.components()[k].identical(b.components()[k]));
        const auto& bd = dynamic_cast<const PsfexPsf&>(*v.detectors[0].psf);
        for (std::size_t k = 0; k < a.components().size(); ++k) EXPECT_TRUE(a.components()[k].identical(bd.components()[k]));
        const PsfDeterminationResult& r = v.detectors[0];
        EXPECT_EQ(r.selected, ref.selected);
        EXPECT_EQ(r.used, ref.used);
        EXPECT_EQ(r.reserved, ref.reserved);
        EXPECT_TRUE(sameDoubles(r.reservedSizeResiduals, ref.reservedSizeResiduals));
        EXPECT_TRUE(sameDoubles(r.reservedDirectSizeResiduals, ref.reservedDirectSizeResiduals));
        EXPECT_TRUE(sameDoubles(r.reservedSizeResidualWeights, ref.reservedSizeResidualWeights));
        EXPECT_TRUE(sameDouble(r.reservedWeightedMeanSizeResidual, ref.reservedWeightedMeanSizeResidual));
        EXPECT_TRUE(sameDouble(r.reservedMedianSizeResidual, ref.reservedMedianSizeResidual));
        EXPECT_TRUE(sameDouble(r.usedMedianSizeResidual, ref.usedMedianSizeResidual));
        EXPECT_TRUE(sameDouble(r.sizeChi2, ref.sizeChi2));
        EXPECT_EQ(r.stampSize, ref.stampSize);
        EXPECT_EQ(r.solverIterations, ref.solverIterations);
        EXPECT_EQ(v.pooled.nUsed, ref.nUsed);
        EXPECT_TRUE(sameDouble(v.pooled.reservedWeightedMeanSizeResidual, ref.reservedWeightedMeanSizeResidual));
        ++compared;
    }
    EXPECT_EQ(compared, 5);
}

// The same detector at a nonzero (fractional) visit offset: the polynomial fit does not depend on its frame, so the
// visit model reframed into the detector is determinePsf's to rounding.
TEST(VisitPsf, OffsetDoesNotChangeTheModel) {
    for (std::uint64_t seed : {11u, 12u, 13u}) {
        StarField f = makeVaryingField(seed, 512, 80, 3.0 + 0.3 * double(seed % 3), 3.0, kSkyVar, 30.0, 500.0);
        std::vector<PsfCandidate> cands;
        for (const Point2D& p : f.positions) cands.push_back(candidateAt(f.image, p, kSkyVar));
        PsfDeterminerConfig cfg;
        cfg.spatialOrder = 2;
        cfg.orderSelectionSigma = 0.0;  // the full order, so every term is compared
        cfg.seed = seed;
        const PsfDeterminationResult ref = determinePsf(f.image, cands, cfg);
        VisitPsfDetector d;
        d.bbox = f.image.bbox();
        d.offset = {-1234.37, 987.61};
        d.candidates = cands;
        d.cutouts = psfStarCutouts(f.image, cands, cfg);
        const VisitPsfResult v = determineVisitPsf({d}, cfg, VisitPsfConfig{2});
        EXPECT_EQ(v.model->bbox(), Box2I::fromCorners({-1235, 987}, {-723, 1499}));
        EXPECT_EQ(v.detectors[0].used, ref.used);
        EXPECT_EQ(v.detectors[0].reserved, ref.reserved);
        const auto& a = dynamic_cast<const PsfexPsf&>(*ref.psf);
        const auto& b = dynamic_cast<const PsfexPsf&>(*v.detectors[0].psf);
        EXPECT_EQ(b.bbox(), d.bbox);
        ASSERT_EQ(a.spatialOrder(), b.spatialOrder());
        for (const Point2D p : {Point2D{10, 20}, Point2D{256.3, 256.8}, Point2D{500, 30}, Point2D{40, 490}}) {
            const Image<double> ka = a.computeKernelImage(p), kb = b.computeKernelImage(p);
            double worst = 0.0;
            for (int y = 0; y < ka.height(); ++y)
                for (int x = 0; x < ka.width(); ++x) worst = std::max(worst, std::fabs(ka(x, y) - kb(x, y)));
            EXPECT_LT(worst, 1e-9) << "seed " << seed;
        }
        for (std::size_t k = 0; k < ref.reservedSizeResiduals.size(); ++k)
            if (std::isfinite(ref.reservedSizeResiduals[k])) {
                EXPECT_NEAR(v.detectors[0].reservedSizeResiduals[k], ref.reservedSizeResiduals[k], 1e-6);
            }
    }
}

// The mosaic with few stars per detector: the visit model's size error is well below the per-detector models'.
TEST(VisitPsf, MosaicModelBeatsPerDetectorModelsWithFewStars) {
    double sumVisit = 0.0, sumDet = 0.0;
    int nSeeds = 0;
    for (std::uint64_t seed = 1; seed <= 4; ++seed) {
        const Box2I visitBox({-800, -800}, 1600, 1600);
        // The simulator's growth is 5% of FWHM at 100 mm (quadratic in radius): +8% at the mosaic's corners here.
        const double fwhm = 2.6 + 0.3 * double(seed - 1);
        const auto truth = focalPlanePsf(visitBox, fwhm, 1.08 * fwhm, 3.0);
        std::vector<MosaicDetector> dets = makeMosaic(seed, *truth, 8, 15, 30.0, 300.0, seed == 2 ? 4 : -1);
        PsfDeterminerConfig cfg;
        cfg.seed = seed;
        cutAll(dets, cfg);
        const VisitPsfResult v = determineVisitPsf(inputs(dets), cfg, VisitPsfConfig{});
        ASSERT_EQ(v.detectors.size(), dets.size());
        EXPECT_GT(v.pooled.nUsed, 50);
        EXPECT_EQ(v.pooled.oversampling, 1);
        // Per-detector fits with the default config (few succeed at minStars 10) and with minStars 5.
        PsfDeterminerConfig few = cfg;
        few.minStars = 5;
        double errVisit = 0.0, errDet = 0.0;
        int nDet = 0, nDefaultOk = 0, reservedFinite = 0, reservedTotal = 0;
        for (std::size_t i = 0; i < dets.size(); ++i) {
            const MosaicDetector& d = dets[i];
            const PsfDeterminationResult& r = v.detectors[i];
            ASSERT_TRUE(r.psf);
            // Bookkeeping: indices point at this detector's candidates, which are its stars.
            EXPECT_EQ(r.nUsed, int(r.used.size()));
            EXPECT_EQ(r.reservedSizeResiduals.size(), r.reserved.size());
            for (const auto* idx : {&r.used, &r.reserved})
                for (std::size_t k : *idx) {
                    ASSERT_LT(k, d.input.candidates.size());
                    EXPECT_NE(std::find(r.selected.begin(), r.selected.end(), k), r.selected.end());
                    // A star of this detector (candidate k was measured near star k; its moments may have moved to a
                    // close neighbour).
                    double nearest = 1e9;
                    for (const Point2D& t : d.stars) nearest = std::min(nearest, std::hypot(d.input.candidates[k].position.x - t.x, d.input.candidates[k].position.y - t.y));
                    EXPECT_LT(nearest, 0.5);
                }
            for (double dt : r.reservedSizeResiduals) reservedFinite += std::isfinite(dt) ? 1 : 0;
            reservedTotal += int(r.reserved.size());
            // The detector's model is the visit model in its frame.
            const Point2D p{200.5, 300.25};
            const Image<double> kd = r.psf->computeKernelImage(p), kv = v.model->computeKernelImage({p.x + d.input.offset.x, p.y + d.input.offset.y});
            for (int y = 0; y < kd.height(); ++y)
                for (int x = 0; x < kd.width(); ++x) ASSERT_NEAR(kd(x, y), kv(x, y), 1e-12);
            if (d.stars.empty()) {
                EXPECT_EQ(r.nUsed, 0);
                EXPECT_TRUE(r.used.empty() && r.reserved.empty());
                continue;
            }
            try {
                (void)determinePsf(d.image, d.input.candidates, cfg);
                ++nDefaultOk;
            } catch (const NumericalError&) {
            }
            try {
                const PsfDeterminationResult own = determinePsf(d.image, d.input.candidates, few);
                errDet += meanSizeError(*own.psf, *d.truth, d.input.bbox);
                errVisit += meanSizeError(*r.psf, *d.truth, d.input.bbox);
                ++nDet;
            } catch (const NumericalError& e) {
                std::printf("  detector %zu alone (minStars 5): %s\n", i, e.what());
            }
        }
        ASSERT_GE(nDet, 4);
        errVisit /= nDet, errDet /= nDet;
        std::printf("seed %llu: visit order %d, %d stars used, %d reserved (%d finite); detectors fitted alone: %d/9 at minStars 10, "
                    "%d at 5; mean |dT/T| vs truth over those: visit %.2e, per-detector %.2e; pooled reserved dT/T weighted mean %.2e\n",
                    (unsigned long long)seed, v.pooled.spatialOrder, v.pooled.nUsed, int(v.pooled.reservedSizeResiduals.size()), reservedFinite, nDefaultOk, nDet, errVisit, errDet,
                    v.pooled.reservedWeightedMeanSizeResidual);
        EXPECT_GE(reservedFinite, reservedTotal / 2);
        EXPECT_TRUE(std::isfinite(v.pooled.reservedWeightedMeanSizeResidual));
        EXPECT_LT(errVisit, 0.6 * errDet) << "seed " << seed;
        EXPECT_LT(errVisit, 1.2e-2) << "seed " << seed;  // the photon noise of ~70 stars of median S/N ~95 in 6 terms
        sumVisit += errVisit, sumDet += errDet, ++nSeeds;
    }
    std::printf("over %d seeds: mean |dT/T| visit %.2e, per-detector %.2e\n", nSeeds, sumVisit / nSeeds, sumDet / nSeeds);
    EXPECT_LT(sumVisit, 0.4 * sumDet);
}

// Undersampled seeing (FWHM 1.6-1.9 px at the centre, +8% at the corners): the visit fit takes the oversampled model.
TEST(VisitPsf, UndersampledMosaicUsesTheOversampledFit) {
    for (std::uint64_t seed = 21; seed <= 23; ++seed) {
        const Box2I visitBox({-800, -800}, 1600, 1600);
        const double fwhm = 1.6 + 0.15 * double(seed - 21);
        const auto truth = focalPlanePsf(visitBox, fwhm, 1.08 * fwhm, 3.0);
        std::vector<MosaicDetector> dets = makeMosaic(seed, *truth, 10, 15, 40.0, 400.0);
        PsfDeterminerConfig cfg;
        cfg.seed = seed;
        cutAll(dets, cfg);
        const VisitPsfResult v = determineVisitPsf(inputs(dets), cfg, VisitPsfConfig{});
        EXPECT_EQ(v.pooled.oversampling, 2);
        double err = 0.0;
        for (std::size_t i = 0; i < dets.size(); ++i) {
            EXPECT_EQ(v.detectors[i].oversampling, 2);
            err += meanSizeError(*v.detectors[i].psf, *dets[i].truth, dets[i].input.bbox);
        }
        err /= double(dets.size());
        std::printf("undersampled seed %llu: order %d, %d used, mean |dT/T| vs truth %.2e, reserved weighted mean %.2e\n",
                    (unsigned long long)seed, v.pooled.spatialOrder, v.pooled.nUsed, err, v.pooled.reservedWeightedMeanSizeResidual);
        EXPECT_LT(err, 1e-2);
        EXPECT_TRUE(std::isfinite(v.pooled.reservedWeightedMeanSizeResidual));
    }
}

// Too few stars in the whole visit: NumericalError; bad inputs: InvalidInputError / ConfigError.
TEST(VisitPsf, TooFewStarsAndBadInputs) {
    const Box2I visitBox({-800, -800}, 1600, 1600);
    const auto truth = focalPlanePsf(visitBox, 2.8, 3.5, 3.0);
    std::vector<MosaicDetector> dets = makeMosaic(5, *truth, 1, 1, 50.0, 200.0);
    PsfDeterminerConfig cfg;
    cutAll(dets, cfg);
    EXPECT_THROW(determineVisitPsf(inputs(dets), cfg, VisitPsfConfig{}), NumericalError);
    EXPECT_THROW(determineVisitPsf({}, cfg, VisitPsfConfig{}), NumericalError);
    std::vector<VisitPsfDetector> in = inputs(dets);
    in[0].cutouts.clear();
    if (!in[0].candidates.empty()) {
        EXPECT_THROW(determineVisitPsf(in, cfg, VisitPsfConfig{}), InvalidInputError);
    }
    in = inputs(dets);
    in[1].bbox = Box2I();
    EXPECT_THROW(determineVisitPsf(in, cfg, VisitPsfConfig{}), InvalidInputError);
    EXPECT_THROW(determineVisitPsf(inputs(dets), cfg, VisitPsfConfig{4}), ConfigError);
    EXPECT_TRUE(VisitPsfConfig{} == VisitPsfConfig{});
    EXPECT_FALSE(VisitPsfConfig{} == VisitPsfConfig{1});
}
