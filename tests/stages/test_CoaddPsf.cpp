// CoaddPsf (stages/coadd/CoaddPsf.h) against brute force: for 1..5 inputs with different PSFs (Moffat,
// Gaussian; sizes, ellipticities), WCS rotations, pixel scales and weights, the CoaddPsf image at several
// coadd positions equals the weighted mean of the inputs' star images warped onto the coadd grid by
// warpMaskedImage (each normalised to sum 1), to 1e-3 of the peak; their adaptive sizes agree to 1%.
// And the FITS round trip of an exposure whose PSF is a CoaddPsf (io/ExposureFits).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <unistd.h>
#include <random>
#include <vector>

#include "core/Exposure.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "io/ExposureFits.h"
#include "stages/coadd/CoaddPsf.h"
#include "stages/coadd/Warper.h"
#include "stages/measure/AdaptiveMoments.h"

using namespace drp;

namespace {

const SpherePoint kCentre = SpherePoint::fromDegrees(210.3, -5.1);

/// An input WCS: random rotation, pixel scale 0.2" x (1 +- 3%), pointing within 10" of the coadd centre,
/// mild SIP distortion.
std::shared_ptr<const Wcs> inputWcs(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> rot(0.0, 360.0), sc(-0.03, 0.03), off(0.0, 10.0), s(-1.0, 1.0);
    const SpherePoint c = kCentre.offset(rot(rng) * degrees, off(rng) * arcseconds);
    auto tan = Wcs::makeTan({200.0, 200.0}, c, 0.2 * (1.0 + sc(rng)) * arcseconds, rot(rng) * degrees);
    SipPolynomials p;
    p.order = 2;
    p.a = Eigen::MatrixXd::Zero(3, 3), p.b = Eigen::MatrixXd::Zero(3, 3);
    p.a(2, 0) = 1e-6 * s(rng), p.a(1, 1) = 1e-6 * s(rng), p.b(0, 2) = 1e-6 * s(rng);
    return std::make_shared<const Wcs>(tan->crpix(), tan->crval(), tan->cd(), p);
}

std::shared_ptr<const Psf> randomPsf(std::mt19937_64& rng, int i) {
    std::uniform_real_distribution<double> e(-0.2, 0.2), fw(3.5, 6.0), sg(1.5, 2.5);
    if (i % 2 == 0) return MoffatPsf::make(fw(rng), 3.0, e(rng), e(rng));
    return GaussianPsf::make(sg(rng), 0, e(rng), e(rng));
}

double peakOf(const Image<double>& img) {
    double p = 0.0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) p = std::max(p, img(x, y));
    return p;
}

double adaptiveRadius(const Image<double>& img, Point2D centre) {
    AdaptiveMomentsResult r = computeAdaptiveMoments(img, centre, SecondMoments::circle(2.0));
    EXPECT_FALSE(r.failed());
    return r.moments.determinantRadius();
}

}  // namespace

TEST(CoaddPsf, MatchesWeightedMeanOfWarpedInputStars) {
    auto coaddWcs = Wcs::makeTan({200.0, 200.0}, kCentre, 0.2 * arcseconds, 0.0 * degrees);
    double worstPixel = 0.0, worstSize = 0.0;
    for (int numInputs = 1; numInputs <= 5; ++numInputs) {
        for (std::uint64_t seed = 0; seed < 2; ++seed) {
            std::mt19937_64 rng(700 + 10 * numInputs + seed);
            std::uniform_real_distribution<double> wgt(0.3, 3.0), pos(150.0, 250.0);
            std::vector<CoaddPsfInput> inputs;
            for (int i = 0; i < numInputs; ++i) {
                CoaddPsfInput in;
                in.psf = randomPsf(rng, i + int(seed));
                in.wcs = inputWcs(rng);
                in.weight = wgt(rng);
                in.id = 100 + i;
                inputs.push_back(in);
            }
            auto coaddPsf = CoaddPsf::make(coaddWcs, inputs);
            for (int k = 0; k < 3; ++k) {
                const Point2D p{pos(rng), pos(rng)};
                const int cx = int(std::floor(p.x + 0.5)), cy = int(std::floor(p.y + 0.5));
                const Box2I box({cx - 30, cy - 30}, 61, 61);
                Image<double> mean(box, 0.0);
                double wsum = 0.0;
                for (const auto& in : inputs) {
                    const Point2D pi = in.wcs->skyToPixel(coaddWcs->pixelToSky(p));
                    MaskedImageF star(400, 400);
                    star.variance().fill(1.0f);
                    addPointSource(star.image(), pi, 1.0, *in.psf);
                    WarpConfig cfg;
                    cfg.interpLength = 0;
                    MaskedImageF warped = warpMaskedImage(star, *in.wcs, *coaddWcs, box, cfg);
                    double s = 0.0;
                    for (int y = 0; y < box.height(); ++y)
                        for (int x = 0; x < box.width(); ++x) s += warped.image()(x, y);
                    ASSERT_NEAR(s, 1.0, 1e-3);  // flux conservation of the warp (Warper.h)
                    for (int y = 0; y < box.height(); ++y)
                        for (int x = 0; x < box.width(); ++x) mean(x, y) += in.weight * warped.image()(x, y) / s;
                    wsum += in.weight;
                }
                mean *= 1.0 / wsum;
                const Image<double> model = coaddPsf->computeImage(p);
                const double peak = peakOf(mean);
                double worst = 0.0;
                for (int y = box.minY(); y <= box.maxY(); ++y)
                    for (int x = box.minX(); x <= box.maxX(); ++x) {
                        const double m = model.bbox().contains(Point2I{x, y}) ? model.atParent({x, y}) : 0.0;
                        worst = std::max(worst, std::fabs(m - mean.atParent({x, y})));
                    }
                EXPECT_LT(worst, 1e-3 * peak) << numInputs << " inputs, seed " << seed << ", position " << k;
                const double rModel = adaptiveRadius(model, p), rMean = adaptiveRadius(mean, p);
                EXPECT_NEAR(rModel / rMean, 1.0, 0.01) << numInputs << " inputs, seed " << seed;
                worstPixel = std::max(worstPixel, worst / peak);
                worstSize = std::max(worstSize, std::fabs(rModel / rMean - 1.0));
            }
        }
    }
    std::cout << "[coaddpsf] worst |model - warped mean| / peak = " << worstPixel
              << ", worst adaptive size ratio - 1 = " << worstSize << "\n";
}

TEST(CoaddPsf, FitsRoundTripThroughExposure) {
    registerCoaddPsf();
    registerMoffatPsf();
    std::mt19937_64 rng(42);
    auto coaddWcs = Wcs::makeTan({200.0, 200.0}, kCentre, 0.2 * arcseconds, 0.0 * degrees);
    std::vector<CoaddPsfInput> inputs;
    for (int i = 0; i < 3; ++i) {
        CoaddPsfInput in;
        in.psf = randomPsf(rng, i);
        in.wcs = inputWcs(rng);
        in.weight = 0.5 + i;
        in.validBox = i == 1 ? Box2I({0, 0}, 300, 400) : Box2I{};
        in.id = 9000 + i;
        inputs.push_back(in);
    }
    auto coaddPsf = CoaddPsf::make(coaddWcs, inputs);
    Exposure exp(64, 64);
    exp.setWcs(coaddWcs);
    exp.setPsf(coaddPsf);
    const auto path = std::filesystem::temp_directory_path() / ("test_CoaddPsf_" + std::to_string(::getpid()) + ".fits");
    writeExposure(path, exp);
    Exposure back = readExposure(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(back.hasPsf());
    EXPECT_EQ(back.psf()->typeName(), "CoaddPsf");
    EXPECT_TRUE(back.psf()->equals(*coaddPsf));
    for (const Point2D p : {Point2D{31.3, 30.8}, Point2D{200.0, 200.0}, Point2D{350.6, 120.2}}) {
        const Image<double> a = coaddPsf->computeImage(p), b = back.psf()->computeImage(p);
        ASSERT_EQ(a.bbox(), b.bbox());
        for (int y = 0; y < a.height(); ++y)
            for (int x = 0; x < a.width(); ++x) ASSERT_EQ(a(x, y), b(x, y));
    }
}
