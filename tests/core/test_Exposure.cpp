#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/Error.h"
#include "core/Exposure.h"

using namespace drp;

namespace {

Exposure makeExposure() {
    Exposure exp(Box2I({100, -20}, 30, 20));
    for (int y = 0; y < exp.height(); ++y)
        for (int x = 0; x < exp.width(); ++x) {
            exp.image()(x, y) = float(x + 100 * y);
            exp.variance()(x, y) = float(x * y);
            exp.mask()(x, y) = x % 4;
        }
    exp.setWcs(Wcs::makeTan({115, -10}, SpherePoint::fromDegrees(150.0, 2.0), 0.2 * arcseconds, 10 * degrees));
    exp.setPsf(GaussianPsf::make(2.0));
    exp.setPhotoCalib(std::make_shared<const PhotoCalib>(0.5, 0.01));
    VisitInfo vi;
    vi.exposureTimeS = 30.0;
    vi.band = "r";
    exp.setVisitInfo(vi);
    exp.metadata().set("OBSERVER", "me");
    exp.setDetector(42);
    return exp;
}

}  // namespace

TEST(Exposure, SubExposureIsAViewSharingImmutables) {
    Exposure exp = makeExposure();
    Exposure sub = exp.subExposure(Box2I({110, -15}, 5, 4));
    EXPECT_EQ(sub.xy0(), (Point2I{110, -15}));
    EXPECT_EQ(sub.width(), 5);
    EXPECT_TRUE(sub.image().sharesPixelsWith(exp.image()));
    EXPECT_TRUE(sub.mask().sharesPixelsWith(exp.mask()));
    EXPECT_TRUE(sub.variance().sharesPixelsWith(exp.variance()));
    EXPECT_EQ(sub.image()(0, 0), exp.image().atParent({110, -15}));
    // Same Wcs/Psf objects: they are defined in the parent frame, so they stay valid for the view.
    EXPECT_EQ(sub.wcs(), exp.wcs());
    EXPECT_EQ(sub.psf(), exp.psf());
    EXPECT_EQ(sub.photoCalib(), exp.photoCalib());
    EXPECT_EQ(sub.visitInfo(), exp.visitInfo());
    EXPECT_EQ(sub.metadata(), exp.metadata());
    EXPECT_EQ(sub.detector(), std::optional<int>(42));
    sub.image()(1, 1) = -7.0f;
    EXPECT_EQ(exp.image().atParent({111, -14}), -7.0f);
    // Mask planes added through the view are seen by the parent (one plane dictionary).
    sub.mask().addPlane("STREAK");
    EXPECT_TRUE(exp.mask().planes().count("STREAK"));
    EXPECT_THROW(exp.subExposure(Box2I({0, 0}, 5, 5)), LogicError);
}

TEST(Exposure, CloneIsDeep) {
    Exposure exp = makeExposure();
    Exposure c = exp.clone();
    EXPECT_TRUE(c.maskedImage().identical(exp.maskedImage()));
    EXPECT_FALSE(c.image().sharesPixelsWith(exp.image()));
    c.image()(0, 0) = 1e6f;
    c.mask().addPlane("ONLY_IN_CLONE");
    c.metadata().set("OBSERVER", "you");
    EXPECT_NE(exp.image()(0, 0), 1e6f);
    EXPECT_FALSE(exp.mask().planes().count("ONLY_IN_CLONE"));
    EXPECT_EQ(exp.metadata().getString("OBSERVER"), "me");
    EXPECT_EQ(c.wcs(), exp.wcs());  // immutable: shared
}

TEST(Exposure, DefaultHasNoAttachments) {
    Exposure exp(10, 5);
    EXPECT_FALSE(exp.hasWcs());
    EXPECT_FALSE(exp.hasPsf());
    EXPECT_FALSE(exp.hasPhotoCalib());
    EXPECT_FALSE(exp.detector());
    EXPECT_TRUE(std::isnan(exp.visitInfo().exposureTimeS));
    EXPECT_EQ(exp.bbox(), Box2I({0, 0}, 10, 5));
}

TEST(PhotoCalib, ConvertsInstrumentalFluxWithErrorPropagation) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> u(0.01, 10.0);
    for (int i = 0; i < 200; ++i) {
        const double mean = u(rng), err = 0.05 * u(rng), flux = 1000 * u(rng), fluxErr = 10 * u(rng);
        PhotoCalib c(mean, err);
        const Measurement m = c.instFluxToNanojansky(flux, fluxErr);
        EXPECT_DOUBLE_EQ(m.value, flux * mean);
        // Relative errors add in quadrature for a product.
        const double rel = std::sqrt(std::pow(fluxErr / flux, 2) + std::pow(err / mean, 2));
        EXPECT_NEAR(m.error, rel * flux * mean, 1e-12 * m.error);
        EXPECT_NEAR(c.nanojanskyToInstFlux(m.value), flux, 1e-12 * flux);
        // Magnitudes: m = zp - 2.5 log10(flux).
        EXPECT_NEAR(c.instFluxToMagnitude(flux), c.zeroPoint() - 2.5 * std::log10(flux), 1e-12);
        EXPECT_NEAR(c.magnitudeToInstFlux(c.instFluxToMagnitude(flux)), flux, 1e-10 * flux);
        const Measurement mag = c.instFluxToMagnitude(flux, fluxErr);
        EXPECT_NEAR(mag.error, 2.5 / std::log(10.0) * rel, 1e-12);
    }
    // A zero flux still has an error (the calibration error does not contribute).
    EXPECT_DOUBLE_EQ(PhotoCalib(2.0, 0.1).instFluxToNanojansky(0.0, 3.0).error, 6.0);
}

TEST(PhotoCalib, AbMagnitudes) {
    // 3631 Jy is AB magnitude 0; a factor 100 in flux is 5 magnitudes.
    EXPECT_NEAR(PhotoCalib::nanojanskyToAbMagnitude(3631e9), 0.0, 1e-12);
    EXPECT_NEAR(PhotoCalib::nanojanskyToAbMagnitude(1.0), 31.4000, 1e-4);
    EXPECT_NEAR(PhotoCalib::nanojanskyToAbMagnitude(3631e9 / 100), 5.0, 1e-12);
    EXPECT_NEAR(PhotoCalib::abMagnitudeToNanojansky(23.9), 1000.0, 0.1);  // 23.9 mag ~ 1 uJy
    EXPECT_TRUE(std::isnan(PhotoCalib::nanojanskyToAbMagnitude(-1.0)));
    const Measurement m = PhotoCalib::abMagnitudeToNanojansky(20.0, 0.01);
    EXPECT_NEAR(PhotoCalib::nanojanskyToAbMagnitude(m.value, m.error).error, 0.01, 1e-14);
    // Zero point: a source of 1 ADU has magnitude zp.
    PhotoCalib c = PhotoCalib::fromZeroPoint(27.0, 0.02);
    EXPECT_NEAR(c.zeroPoint(), 27.0, 1e-12);
    EXPECT_NEAR(c.instFluxToMagnitude(1.0), 27.0, 1e-12);
    EXPECT_NEAR(c.instFluxToMagnitude(1.0, 0.0).error, 0.02, 1e-12);
}

TEST(PhotoCalib, MetadataRoundTripAndValidation) {
    PhotoCalib c(0.123456789012345678, 0.0042);
    auto back = PhotoCalib::fromMetadata(c.toMetadata());
    ASSERT_TRUE(back);
    EXPECT_EQ(*back, c);
    EXPECT_FALSE(PhotoCalib::fromMetadata(PropertyList{}));
    EXPECT_THROW(PhotoCalib(0.0), InvalidInputError);
    EXPECT_THROW(PhotoCalib(1.0, -1.0), InvalidInputError);
    EXPECT_THROW(PhotoCalib(std::nan("")), InvalidInputError);
    PropertyList bad;
    bad.set("CALIBMN", "text");
    EXPECT_THROW(PhotoCalib::fromMetadata(bad), InvalidInputError);
}

TEST(VisitInfo, MetadataRoundTripIsExactForManySeeds) {
    for (unsigned seed = 0; seed < 50; ++seed) {
        std::mt19937_64 rng(seed);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        VisitInfo v;
        v.exposureTimeS = 30 * u(rng);
        v.darkTimeS = 31 * u(rng);
        v.midExposureMjdTai = 60000 + 1000 * u(rng);
        v.boresightRaDec = SpherePoint(Angle::fromRadians(6.28 * u(rng)), Angle::fromRadians(3.14 * u(rng) - 1.57));
        v.boresightRotAngle = Angle::fromRadians(6 * u(rng) - 3);
        v.boresightAirmass = 1 + u(rng);
        v.band = std::string("i");
        v.physicalFilter = std::string("i_39");
        v.instrument = std::string("LSSTCam-imSim");
        v.visit = std::int64_t(rng() >> 2);
        v.dayObs = 20240101 + seed;
        if (seed % 3 == 0) v.darkTimeS = VisitInfo::kUnknown;
        if (seed % 4 == 0) v.boresightRaDec.reset();
        if (seed % 5 == 0) v.visit.reset();
        const PropertyList md = v.toMetadata();
        for (const auto& key : md.keys()) {
            EXPECT_TRUE(std::find(VisitInfo::metadataKeys().begin(), VisitInfo::metadataKeys().end(), key) !=
                        VisitInfo::metadataKeys().end())
                << key;
        }
        EXPECT_EQ(VisitInfo::fromMetadata(md), v) << "seed " << seed;
        EXPECT_EQ(md.has("DARKTIME"), seed % 3 != 0);
    }
    EXPECT_EQ(VisitInfo::fromMetadata(PropertyList{}), VisitInfo{});
}

TEST(VisitInfo, ReadsDegreeKeysWithoutExactCompanionsAndRejectsWrongTypes) {
    PropertyList md;
    md.set("BORE-RA", 150.25);
    md.set("BORE-DEC", -30.5);
    md.set("EXPTIME", 15);  // an integer is fine for a number
    VisitInfo v = VisitInfo::fromMetadata(md);
    ASSERT_TRUE(v.boresightRaDec);
    EXPECT_NEAR(v.boresightRaDec->ra().asDegrees(), 150.25, 1e-12);
    EXPECT_NEAR(v.boresightRaDec->dec().asDegrees(), -30.5, 1e-12);
    EXPECT_EQ(v.exposureTimeS, 15.0);
    md.set("VISIT", "not-a-number");
    EXPECT_THROW(VisitInfo::fromMetadata(md), InvalidInputError);
}

TEST(VisitInfo, MjdToIso) {
    EXPECT_EQ(VisitInfo::mjdToIso(51544.5), "2000-01-01T12:00:00.000");
    EXPECT_EQ(VisitInfo::mjdToIso(60000.0), "2023-02-25T00:00:00.000");
    EXPECT_EQ(VisitInfo::mjdToIso(40587.25), "1970-01-01T06:00:00.000");
    EXPECT_EQ(VisitInfo::mjdToIso(std::nan("")), "");
}
