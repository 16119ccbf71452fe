// Tests of core/Wcs (FITS TAN and TAN-SIP): against wcslib (an independent implementation) over whole
// 4000x4000 images for many random WCSs (poles, the RA wrap, rotations, flips, SIP orders 2-5 with tens of
// pixels of distortion, with and without AP/BP, xy0 offsets), with the wcslib header built from our own
// toFitsMetadata; round trips; header parsing variants and errors.
#include <gtest/gtest.h>

#include <Eigen/Dense>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string>

#include "core/Error.h"
#include "core/Wcs.h"

#ifdef DRP_HAVE_WCSLIB
#include <wcslib/wcs.h>
#include <wcslib/wcshdr.h>
#endif

namespace drp {
namespace {

constexpr double kPi = std::numbers::pi;
constexpr int kSize = 4000;                    // image side, pixels
constexpr double kSkyTolArcsec = 1e-6;         // vs wcslib
constexpr double kPixTol = 1e-6;               // vs wcslib, pixels
constexpr double kRoundTripTol = 1e-8;         // our pixel -> sky -> pixel, pixels

double dist(Point2D a, Point2D b) { return std::hypot(a.x - b.x, a.y - b.y); }

// ---------------------------------------------------------------------------------------------------------
// Random WCSs.

struct Case {
    std::shared_ptr<const Wcs> wcs;
    Point2I xy0;
    Box2I box;  // the image, parent frame
    std::string label;
};

/// SIP coefficients for p+q in [2, order] giving about `amplitude` pixels of distortion at radius `radius`.
Eigen::MatrixXd randomSip(std::mt19937_64& rng, int order, double amplitude, double radius) {
    std::normal_distribution<double> g(0.0, 1.0);
    Eigen::MatrixXd c = Eigen::MatrixXd::Zero(order + 1, order + 1);
    for (int k = 2; k <= order; ++k) {
        double perTerm = amplitude / (k - 1) / std::sqrt(double(k + 1)) / std::pow(radius, k);
        for (int p = 0; p <= k; ++p) c(p, k - p) = g(rng) * perTerm;
    }
    return c;
}

/// crval kinds: 0 anywhere, 1 within 0.1 deg of a pole, 2 exactly at a pole, 3 RA within 0.01 deg of 0.
SpherePoint randomCrval(std::mt19937_64& rng, int kind) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    switch (kind) {
        case 1: return SpherePoint::fromDegrees(360 * u(rng), (u(rng) < 0.5 ? 1 : -1) * (90.0 - 0.1 * u(rng)));
        case 2: return SpherePoint::fromDegrees(360 * u(rng), u(rng) < 0.5 ? 90.0 : -90.0);
        case 3: return SpherePoint::fromDegrees(0.01 * (2 * u(rng) - 1), 170 * u(rng) - 85);
        default: return SpherePoint::fromDegrees(360 * u(rng), std::asin(2 * u(rng) - 1) * 180 / kPi);
    }
}

Case randomCase(std::mt19937_64& rng, int crvalKind, int sipOrder, bool inverseSip) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::uniform_int_distribution<int> offset(-6000, 6000);
    Case c;
    c.xy0 = {offset(rng), offset(rng)};
    c.box = Box2I(c.xy0, kSize, kSize);
    Point2D crpix{c.xy0.x + kSize * (0.3 + 0.4 * u(rng)), c.xy0.y + kSize * (0.3 + 0.4 * u(rng))};
    Angle scale = (0.2 * (0.8 + 0.4 * u(rng))) * arcseconds;
    Angle rotation = (360 * u(rng)) * degrees;
    bool flip = u(rng) < 0.75;
    auto tan = Wcs::makeTan(crpix, randomCrval(rng, crvalKind), scale, rotation, flip);
    c.wcs = tan;
    if (sipOrder > 0) {
        SipPolynomials sip;
        sip.order = sipOrder;
        double amplitude = 10.0 + 30.0 * u(rng);  // pixels at r = 2000
        sip.a = randomSip(rng, sipOrder, amplitude, 2000.0);
        sip.b = randomSip(rng, sipOrder, amplitude, 2000.0);
        c.wcs = std::make_shared<const Wcs>(crpix, tan->crval(), tan->cd(), sip);
        if (inverseSip) c.wcs = c.wcs->withInverseSip(c.box, std::min(sipOrder + 1, Wcs::maxSipOrder));
    }
    c.label = "kind=" + std::to_string(crvalKind) + " sip=" + std::to_string(sipOrder) + (inverseSip ? "+AP/BP" : "") +
              " crval=(" + std::to_string(tan->crval().ra().asDegrees()) + "," + std::to_string(tan->crval().dec().asDegrees()) +
              ") xy0=(" + std::to_string(c.xy0.x) + "," + std::to_string(c.xy0.y) + ")";
    return c;
}

Point2D randomPixel(std::mt19937_64& rng, const Box2I& box) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    return {box.minX() - 0.5 + box.width() * u(rng), box.minY() - 0.5 + box.height() * u(rng)};
}

// ---------------------------------------------------------------------------------------------------------
// wcslib oracle, fed a FITS header rendered from a PropertyList as 80-character cards.

std::string fitsCards(const PropertyList& md) {
    std::string out;
    char card[200];
    for (const auto& e : md.entries()) {
        std::string value;
        if (auto s = std::get_if<std::string>(&e.value)) {
            std::string v = *s;
            while (v.size() < 8) v += ' ';
            value = "'" + v + "'";
        } else if (auto i = std::get_if<std::int64_t>(&e.value)) {
            std::snprintf(card, sizeof card, "%20lld", (long long)*i);
            value = card;
        } else if (auto d = std::get_if<double>(&e.value)) {
            std::snprintf(card, sizeof card, "%.17E", *d);
            value = card;
            if (value.size() < 20) value = std::string(20 - value.size(), ' ') + value;
        } else {
            value = std::string(19, ' ') + (std::get<bool>(e.value) ? "T" : "F");
        }
        std::snprintf(card, sizeof card, "%-8.8s= %s", e.key.c_str(), value.c_str());
        std::string c(card);
        c.resize(80, ' ');
        out += c;
    }
    std::string end = "END";
    end.resize(80, ' ');
    return out + end;
}

#ifdef DRP_HAVE_WCSLIB
class Wcslib {
public:
    explicit Wcslib(const PropertyList& md) {
        header_ = fitsCards(md);
        int nreject = 0;
        int status = wcspih(header_.data(), int(header_.size() / 80), WCSHDR_all, 0, &nreject, &nwcs_, &wcs_);
        if (status != 0 || nwcs_ < 1) throw std::runtime_error("wcspih failed: " + std::to_string(status));
        status = wcsset(wcs_);
        if (status != 0) throw std::runtime_error("wcsset failed: " + std::to_string(status));
    }
    ~Wcslib() { wcsvfree(&nwcs_, &wcs_); }
    Wcslib(const Wcslib&) = delete;
    Wcslib& operator=(const Wcslib&) = delete;

    /// 1-based FITS pixel of this image -> (ra, dec).
    SpherePoint pixelToSky(Point2D fitsPixel) {
        double pix[2] = {fitsPixel.x, fitsPixel.y}, img[2], phi, theta, world[2];
        int stat = 0;
        int status = wcsp2s(wcs_, 1, 2, pix, img, &phi, &theta, world, &stat);
        if (status != 0) throw std::runtime_error("wcsp2s failed: " + std::to_string(status));
        return SpherePoint::fromDegrees(world[wcs_->lng], world[wcs_->lat]);
    }
    Point2D skyToPixel(const SpherePoint& p) {
        double world[2], img[2], phi, theta, pix[2];
        world[wcs_->lng] = p.ra().asDegrees();
        world[wcs_->lat] = p.dec().asDegrees();
        int stat = 0;
        int status = wcss2p(wcs_, 1, 2, world, &phi, &theta, img, pix, &stat);
        if (status != 0) throw std::runtime_error("wcss2p failed: " + std::to_string(status));
        return {pix[0], pix[1]};
    }

private:
    std::string header_;
    int nwcs_ = 0;
    wcsprm* wcs_ = nullptr;
};

struct Discrepancy {
    double skyArcsec = 0, ourPixel = 0, theirPixel = 0, roundTrip = 0;
};

/// Compare `wcs` (parent frame) with wcslib reading `md` (a header for an image whose first pixel is xy0).
Discrepancy compareWithWcslib(const Wcs& wcs, const PropertyList& md, Point2I xy0, const Box2I& box,
                              std::mt19937_64& rng, int nPoints) {
    Wcslib ref(md);
    Discrepancy d;
    const Point2D toFits{1.0 - xy0.x, 1.0 - xy0.y};
    for (int i = 0; i < nPoints; ++i) {
        Point2D p = randomPixel(rng, box);
        SpherePoint ours = wcs.pixelToSky(p);
        SpherePoint theirs = ref.pixelToSky(p + toFits);
        d.skyArcsec = std::max(d.skyArcsec, ours.separation(theirs).asArcseconds());
        d.ourPixel = std::max(d.ourPixel, dist(wcs.skyToPixel(theirs), p));
        d.theirPixel = std::max(d.theirPixel, dist(ref.skyToPixel(ours) - toFits, p));
        d.roundTrip = std::max(d.roundTrip, dist(wcs.skyToPixel(ours), p));
    }
    return d;
}

void expectAgreement(const Discrepancy& d, const std::string& label) {
    EXPECT_LT(d.skyArcsec, kSkyTolArcsec) << label;
    EXPECT_LT(d.ourPixel, kPixTol) << label;
    EXPECT_LT(d.theirPixel, kPixTol) << label;
    EXPECT_LT(d.roundTrip, kRoundTripTol) << label;
}

TEST(WcsVsWcslib, RandomTanAndSipOverWholeImages) {
    Discrepancy worst;
    int nCases = 0;
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        std::mt19937_64 rng(seed);
        for (int kind = 0; kind < 4; ++kind) {
            for (int order : {0, 2, 3, 4, 5}) {
                for (bool inverse : {false, true}) {
                    if (order == 0 && inverse) continue;
                    Case c = randomCase(rng, kind, order, inverse);
                    Discrepancy d = compareWithWcslib(*c.wcs, c.wcs->toFitsMetadata(c.xy0), c.xy0, c.box, rng, 150);
                    expectAgreement(d, c.label + " seed=" + std::to_string(seed));
                    worst.skyArcsec = std::max(worst.skyArcsec, d.skyArcsec);
                    worst.ourPixel = std::max(worst.ourPixel, d.ourPixel);
                    worst.theirPixel = std::max(worst.theirPixel, d.theirPixel);
                    worst.roundTrip = std::max(worst.roundTrip, d.roundTrip);
                    ++nCases;
                }
            }
        }
    }
    std::printf("wcslib comparison over %d WCSs: worst sky %.3g arcsec, our skyToPixel %.3g px, wcslib s2p %.3g px, "
                "round trip %.3g px\n", nCases, worst.skyArcsec, worst.ourPixel, worst.theirPixel, worst.roundTrip);
}

TEST(WcsVsWcslib, PcCdeltCrotaLonpoleAndSwappedAxes) {
    std::mt19937_64 rng(77);
    for (int trial = 0; trial < 20; ++trial) {
        Case c = randomCase(rng, trial % 4, trial % 2 ? 3 : 0, false);
        PropertyList base = c.wcs->toFitsMetadata(c.xy0);
        const Eigen::Matrix2d& cd = c.wcs->cd();

        // PC + CDELT (CDELT chosen as the column norms, so PC is not the identity).
        PropertyList pc = base;
        for (const char* k : {"CD1_1", "CD1_2", "CD2_1", "CD2_2"}) pc.remove(k);
        double cdelt[2] = {-std::hypot(cd(0, 0), cd(0, 1)), std::hypot(cd(1, 0), cd(1, 1))};
        pc.set("CDELT1", PropertyList::Value(cdelt[0]));
        pc.set("CDELT2", PropertyList::Value(cdelt[1]));
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 2; ++j)
                pc.set("PC" + std::to_string(i + 1) + "_" + std::to_string(j + 1), PropertyList::Value(cd(i, j) / cdelt[i]));
        auto fromPc = Wcs::fromFitsMetadata(pc, c.xy0);
        EXPECT_LT((fromPc->cd() - cd).norm(), 1e-15 * cd.norm());
        expectAgreement(compareWithWcslib(*fromPc, pc, c.xy0, c.box, rng, 50), "PC+CDELT " + c.label);

        // A non-default LONPOLE, which for TAN rotates the plane about crpix.
        PropertyList lp = base;
        lp.set("LONPOLE", PropertyList::Value(360.0 * (trial + 0.5) / 20));
        auto fromLp = Wcs::fromFitsMetadata(lp, c.xy0);
        expectAgreement(compareWithWcslib(*fromLp, lp, c.xy0, c.box, rng, 50), "LONPOLE " + c.label);

        // No LONPOLE: the default is 180 deg, or 0 when crval is the north pole.
        PropertyList nolp = base;
        nolp.remove("LONPOLE");
        auto fromNoLp = Wcs::fromFitsMetadata(nolp, c.xy0);
        expectAgreement(compareWithWcslib(*fromNoLp, nolp, c.xy0, c.box, rng, 50), "no LONPOLE " + c.label);

        // Latitude on axis 1.
        PropertyList sw = base;
        std::string t1 = base.getString("CTYPE1"), t2 = base.getString("CTYPE2");
        sw.set("CTYPE1", t2);
        sw.set("CTYPE2", t1);
        sw.set("CRVAL1", base.get("CRVAL2"));
        sw.set("CRVAL2", base.get("CRVAL1"));
        sw.set("CD1_1", base.get("CD2_1"));
        sw.set("CD1_2", base.get("CD2_2"));
        sw.set("CD2_1", base.get("CD1_1"));
        sw.set("CD2_2", base.get("CD1_2"));
        auto fromSw = Wcs::fromFitsMetadata(sw, c.xy0);
        EXPECT_TRUE(*fromSw == *Wcs::fromFitsMetadata(base, c.xy0)) << c.label;
        expectAgreement(compareWithWcslib(*fromSw, sw, c.xy0, c.box, rng, 50), "swapped " + c.label);
    }
    // Old-style CDELT + CROTA2.
    for (double crota : {0.0, 30.0, 90.0, 200.0, -45.0}) {
        PropertyList md;
        md.set("CTYPE1", "RA---TAN");
        md.set("CTYPE2", "DEC--TAN");
        md.set("CRPIX1", PropertyList::Value(1000.5));
        md.set("CRPIX2", PropertyList::Value(900.25));
        md.set("CRVAL1", PropertyList::Value(150.1));
        md.set("CRVAL2", PropertyList::Value(2.2));
        md.set("CDELT1", PropertyList::Value(-5.5e-5));
        md.set("CDELT2", PropertyList::Value(5.6e-5));
        md.set("CROTA2", PropertyList::Value(crota));
        auto w = Wcs::fromFitsMetadata(md);
        expectAgreement(compareWithWcslib(*w, md, {0, 0}, Box2I({0, 0}, 2000, 2000), rng, 100),
                        "CROTA2=" + std::to_string(crota));
    }
}
#endif  // DRP_HAVE_WCSLIB

// ---------------------------------------------------------------------------------------------------------
// Self-consistency.

TEST(Wcs, RoundTripsToTinyFractionsOfAPixel) {
    double worst = 0;
    for (std::uint64_t seed = 10; seed < 16; ++seed) {
        std::mt19937_64 rng(seed);
        for (int kind = 0; kind < 4; ++kind) {
            for (int order : {0, 2, 3, 4, 5, 7}) {
                for (bool inverse : {false, true}) {
                    if (order == 0 && inverse) continue;
                    Case c = randomCase(rng, kind, order, inverse);
                    // The whole image and a margin of 10% around it.
                    Box2I big = c.box.grow(kSize / 10);
                    std::vector<Point2D> pixels;
                    for (int i = 0; i < 300; ++i) pixels.push_back(randomPixel(rng, big));
                    auto sky = c.wcs->pixelToSky(pixels);
                    auto back = c.wcs->skyToPixel(sky);
                    ASSERT_EQ(back.size(), pixels.size());
                    for (std::size_t i = 0; i < pixels.size(); ++i) {
                        // Vector overloads agree exactly with the scalar ones.
                        ASSERT_TRUE(sky[i] == c.wcs->pixelToSky(pixels[i]));
                        ASSERT_TRUE(back[i] == c.wcs->skyToPixel(sky[i]));
                        double e = dist(back[i], pixels[i]);
                        worst = std::max(worst, e);
                        ASSERT_LT(e, kRoundTripTol) << c.label;
                    }
                }
            }
        }
    }
    std::printf("worst pixel -> sky -> pixel error %.3g px\n", worst);
}

TEST(Wcs, InverseSipIsOnlyAStartingGuess) {
    // A deliberately poor AP/BP (order 1) must still give a full-precision inverse, and a good one must too.
    std::mt19937_64 rng(4);
    Case c = randomCase(rng, 0, 4, false);
    for (int order : {1, 2, 5}) {
        auto w = c.wcs->withInverseSip(c.box, order);
        ASSERT_EQ(w->sip()->inverseOrder, order);
        for (int i = 0; i < 500; ++i) {
            Point2D p = randomPixel(rng, c.box);
            ASSERT_LT(dist(w->skyToPixel(w->pixelToSky(p)), p), kRoundTripTol);
            ASSERT_LT(dist(w->skyToPixel(c.wcs->pixelToSky(p)), p), kRoundTripTol);
        }
    }
    // The fitted AP/BP by itself (what other FITS readers use) is good to well under 0.01 px at order 6.
    auto w = c.wcs->withInverseSip(c.box, 6);
    const auto& s = *w->sip();
    double worst = 0;
    for (int i = 0; i < 500; ++i) {
        Point2D p = randomPixel(rng, c.box);
        double u = p.x - w->crpix().x, v = p.y - w->crpix().y;
        double up = u, vp = v;
        for (int a = 0; a <= s.order; ++a)
            for (int b = 0; a + b <= s.order; ++b) {
                up += s.a(a, b) * std::pow(u, a) * std::pow(v, b);
                vp += s.b(a, b) * std::pow(u, a) * std::pow(v, b);
            }
        double ui = up, vi = vp;
        for (int a = 0; a <= s.inverseOrder; ++a)
            for (int b = 0; a + b <= s.inverseOrder; ++b) {
                ui += s.ap(a, b) * std::pow(up, a) * std::pow(vp, b);
                vi += s.bp(a, b) * std::pow(up, a) * std::pow(vp, b);
            }
        worst = std::max(worst, std::hypot(ui - u, vi - v));
    }
    EXPECT_LT(worst, 0.01);
    EXPECT_THROW(Wcs::makeTan({0, 0}, SpherePoint::fromDegrees(1, 2), 1.0 * arcseconds, Angle())->withInverseSip(c.box, 3),
                 InvalidInputError);
}

TEST(Wcs, FarSideAndUninvertibleGiveNaN) {
    auto w = Wcs::makeTan({100, 100}, SpherePoint::fromDegrees(10, 20), 0.2 * arcseconds, 30.0 * degrees);
    Point2D p = w->skyToPixel(SpherePoint::fromDegrees(190, -20));  // antipode
    EXPECT_TRUE(std::isnan(p.x) && std::isnan(p.y));
    p = w->skyToPixel(SpherePoint::fromDegrees(130, 20));  // more than 90 deg away
    EXPECT_TRUE(std::isnan(p.x));
    p = w->skyToPixel(SpherePoint::fromDegrees(50, 20));  // far but on the near side: finite
    EXPECT_TRUE(std::isfinite(p.x));
}

TEST(Wcs, MakeTanOrientationAndScale) {
    std::mt19937_64 rng(8);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    for (int i = 0; i < 200; ++i) {
        Angle scale = (0.1 + u(rng)) * arcseconds, rot = (360 * u(rng)) * degrees;
        bool flip = i % 2 == 0;
        SpherePoint crval = randomCrval(rng, i % 4 == 2 ? 1 : 0);
        Point2D crpix{1000 * u(rng), 1000 * u(rng)};
        auto w = Wcs::makeTan(crpix, crval, scale, rot, flip);
        EXPECT_NEAR(w->pixelScale(crpix).asArcseconds(), scale.asArcseconds(), 1e-12 * scale.asArcseconds());
        SpherePoint c = w->pixelToSky(crpix);
        EXPECT_LT(c.separation(crval).asArcseconds(), 1e-9);
        SpherePoint up = w->pixelToSky(crpix + Point2D{0, 1}), right = w->pixelToSky(crpix + Point2D{1, 0});
        EXPECT_NEAR(c.separation(up).asArcseconds(), scale.asArcseconds(), 1e-9);
        auto angleDiff = [](Angle a, Angle b) { return std::fabs((a - b).wrapCtr().asDegrees()); };
        EXPECT_LT(angleDiff(c.bearingTo(up), rot), 1e-6);
        EXPECT_LT(angleDiff(c.bearingTo(right), rot + (flip ? -90.0 : 90.0) * degrees), 1e-6);
        EXPECT_EQ(w->cd().determinant() < 0, flip);
    }
    EXPECT_THROW(Wcs::makeTan({0, 0}, SpherePoint(), Angle(), Angle()), InvalidInputError);
}

TEST(Wcs, PixelScaleMatchesFiniteDifferences) {
    for (std::uint64_t seed = 20; seed < 24; ++seed) {
        std::mt19937_64 rng(seed);
        Case c = randomCase(rng, int(seed % 4), int(seed % 3) + 3, false);
        for (int i = 0; i < 100; ++i) {
            Point2D p = randomPixel(rng, c.box.grow(2000));
            SpherePoint s = c.wcs->pixelToSky(p);
            double lon = s.ra().asRadians(), lat = s.dec().asRadians();
            Eigen::Vector3d east(-std::sin(lon), std::cos(lon), 0), north(-std::sin(lat) * std::cos(lon),
                                                                         -std::sin(lat) * std::sin(lon), std::cos(lat));
            const double h = 0.5;
            Eigen::Vector3d dx = (c.wcs->pixelToSky(p + Point2D{h, 0}).vector() - c.wcs->pixelToSky(p - Point2D{h, 0}).vector()) / (2 * h);
            Eigen::Vector3d dy = (c.wcs->pixelToSky(p + Point2D{0, h}).vector() - c.wcs->pixelToSky(p - Point2D{0, h}).vector()) / (2 * h);
            double det = dx.dot(east) * dy.dot(north) - dx.dot(north) * dy.dot(east);
            double expected = std::sqrt(std::fabs(det));
            ASSERT_NEAR(c.wcs->pixelScale(p).asRadians(), expected, 1e-6 * expected) << c.label;
        }
    }
}

TEST(Wcs, ShiftedPixelOrigin) {
    std::mt19937_64 rng(31);
    Case c = randomCase(rng, 0, 4, true);
    Point2D shift{123.25, -4567.5};
    auto s = c.wcs->shiftedPixelOrigin(shift);
    EXPECT_EQ(s->crpix(), c.wcs->crpix() + shift);
    EXPECT_TRUE(*s->sip() == *c.wcs->sip());
    for (int i = 0; i < 200; ++i) {
        Point2D p = randomPixel(rng, c.box);
        EXPECT_LT(s->pixelToSky(p + shift).separation(c.wcs->pixelToSky(p)).asArcseconds(), 1e-9);
        EXPECT_LT(dist(s->skyToPixel(c.wcs->pixelToSky(p)), p + shift), kRoundTripTol);
    }
    EXPECT_TRUE(*c.wcs->shiftedPixelOrigin({0, 0}) == *c.wcs);
}

TEST(Wcs, Equality) {
    std::mt19937_64 rng(41);
    Case c = randomCase(rng, 0, 3, true);
    Wcs copy = *c.wcs;
    EXPECT_TRUE(copy == *c.wcs);
    SipPolynomials sip = *c.wcs->sip();
    sip.a(1, 1) = std::nextafter(sip.a(1, 1), 1.0);
    EXPECT_FALSE(Wcs(c.wcs->crpix(), c.wcs->crval(), c.wcs->cd(), sip) == *c.wcs);
    EXPECT_FALSE(Wcs(c.wcs->crpix(), c.wcs->crval(), c.wcs->cd()) == *c.wcs);  // no SIP
    Eigen::Matrix2d cd = c.wcs->cd();
    cd(0, 1) *= 1.0000001;
    EXPECT_FALSE(Wcs(c.wcs->crpix(), c.wcs->crval(), cd, c.wcs->sip()) == *c.wcs);
    EXPECT_FALSE(Wcs(c.wcs->crpix() + Point2D{1e-9, 0}, c.wcs->crval(), c.wcs->cd(), c.wcs->sip()) == *c.wcs);
    // A SIP of order 0 is no SIP.
    SipPolynomials none;
    Wcs a(c.wcs->crpix(), c.wcs->crval(), c.wcs->cd(), none), b(c.wcs->crpix(), c.wcs->crval(), c.wcs->cd());
    EXPECT_TRUE(a == b);
    EXPECT_FALSE(a.hasSip());
}

TEST(Wcs, ConstructorRejectsBadInput) {
    SpherePoint crval = SpherePoint::fromDegrees(10, 10);
    Eigen::Matrix2d singular;
    singular << 1e-5, 2e-5, 0.5e-5, 1e-5;
    EXPECT_THROW(Wcs({0, 0}, crval, singular), InvalidInputError);
    Eigen::Matrix2d nan = Eigen::Matrix2d::Identity() * 1e-5;
    nan(1, 0) = std::nan("");
    EXPECT_THROW(Wcs({0, 0}, crval, nan), InvalidInputError);
    EXPECT_THROW(Wcs({std::nan(""), 0}, crval, Eigen::Matrix2d::Identity()), InvalidInputError);
    SipPolynomials bad;
    bad.order = 2;
    bad.a = Eigen::MatrixXd::Zero(2, 2);  // wrong size
    bad.b = Eigen::MatrixXd::Zero(3, 3);
    EXPECT_THROW(Wcs({0, 0}, crval, Eigen::Matrix2d::Identity() * 1e-5, bad), InvalidInputError);
    bad.a = Eigen::MatrixXd::Zero(3, 3);
    bad.a(2, 2) = 1e-9;  // p + q > order
    EXPECT_THROW(Wcs({0, 0}, crval, Eigen::Matrix2d::Identity() * 1e-5, bad), InvalidInputError);
    bad.a(2, 2) = 0;
    bad.order = Wcs::maxSipOrder + 1;
    EXPECT_THROW(Wcs({0, 0}, crval, Eigen::Matrix2d::Identity() * 1e-5, bad), InvalidInputError);
}

// ---------------------------------------------------------------------------------------------------------
// FITS headers.

TEST(WcsFits, HeaderRoundTrip) {
    for (std::uint64_t seed = 50; seed < 56; ++seed) {
        std::mt19937_64 rng(seed);
        for (int kind = 0; kind < 4; ++kind) {
            for (int order : {0, 2, 5}) {
                Case c = randomCase(rng, kind, order, order == 5);
                PropertyList md = c.wcs->toFitsMetadata(c.xy0);
                EXPECT_EQ(md.getString("CTYPE1"), order ? "RA---TAN-SIP" : "RA---TAN");
                EXPECT_EQ(md.getString("CTYPE2"), order ? "DEC--TAN-SIP" : "DEC--TAN");
                EXPECT_EQ(md.getString("RADESYS"), "ICRS");
                EXPECT_EQ(md.getString("CUNIT1"), "deg");
                // xy0 convention: FITS CRPIX is 1-based in this image.
                EXPECT_NEAR(md.getDouble("CRPIX1"), c.wcs->crpix().x - c.xy0.x + 1, 1e-9);
                EXPECT_NEAR(md.getDouble("CRPIX2"), c.wcs->crpix().y - c.xy0.y + 1, 1e-9);
                auto back = Wcs::fromFitsMetadata(md, c.xy0);
                // CD and SIP are bit-exact; CRPIX and CRVAL may move by an ulp (unit and origin changes).
                EXPECT_TRUE(back->cd() == c.wcs->cd());
                EXPECT_EQ(back->hasSip(), c.wcs->hasSip());
                if (order) {
                    EXPECT_TRUE(*back->sip() == *c.wcs->sip());
                }
                EXPECT_NEAR(back->crpix().x, c.wcs->crpix().x, 4e-16 * (std::fabs(c.wcs->crpix().x) + kSize));
                EXPECT_NEAR(back->crpix().y, c.wcs->crpix().y, 4e-16 * (std::fabs(c.wcs->crpix().y) + kSize));
                EXPECT_LT(back->crval().separation(c.wcs->crval()).asRadians(), 1e-15);
                // A WCS that came from a header goes through another header round trip exactly.
                auto again = Wcs::fromFitsMetadata(back->toFitsMetadata(c.xy0), c.xy0);
                EXPECT_TRUE(*again == *back) << c.label;
                EXPECT_TRUE(again->toFitsMetadata(c.xy0) == back->toFitsMetadata(c.xy0));
                // A WCS with representable parameters round-trips exactly.
                Wcs exact({std::round(c.wcs->crpix().x) + 0.5, std::round(c.wcs->crpix().y) - 0.25}, back->crval(),
                          c.wcs->cd(), c.wcs->sip());
                EXPECT_TRUE(*Wcs::fromFitsMetadata(exact.toFitsMetadata(c.xy0), c.xy0) == exact);
                // Reading the same header with another xy0 shifts the pixel frame.
                auto shifted = Wcs::fromFitsMetadata(md, c.xy0 + Point2I{10, -3});
                EXPECT_NEAR(shifted->crpix().x - back->crpix().x, 10.0, 1e-9);
                EXPECT_NEAR(shifted->crpix().y - back->crpix().y, -3.0, 1e-9);
            }
        }
    }
}

TEST(WcsFits, XyZeroConvention) {
    // Parent pixel (xy0.x + i, xy0.y + j) is FITS pixel (i + 1, j + 1) of the image.
    auto w = Wcs::makeTan({2100.0, 3200.0}, SpherePoint::fromDegrees(45, -30), 0.2 * arcseconds, 10.0 * degrees);
    PropertyList md = w->toFitsMetadata({2000, 3000});
    EXPECT_EQ(md.getDouble("CRPIX1"), 101.0);
    EXPECT_EQ(md.getDouble("CRPIX2"), 201.0);
    EXPECT_TRUE(*Wcs::fromFitsMetadata(md, {2000, 3000}) == *w);
    auto local = Wcs::fromFitsMetadata(md);  // the same header read as a stand-alone image
    EXPECT_EQ(local->crpix().x, 100.0);
    EXPECT_EQ(local->crpix().y, 200.0);
    EXPECT_LT(local->pixelToSky({5.0, 7.0}).separation(w->pixelToSky({2005.0, 3007.0})).asArcseconds(), 1e-9);
}

PropertyList minimalHeader() {
    PropertyList md;
    md.set("CTYPE1", "RA---TAN");
    md.set("CTYPE2", "DEC--TAN");
    md.set("CRPIX1", PropertyList::Value(100.0));
    md.set("CRPIX2", PropertyList::Value(100.0));
    md.set("CRVAL1", PropertyList::Value(10.0));
    md.set("CRVAL2", PropertyList::Value(20.0));
    md.set("CD1_1", PropertyList::Value(-5e-5));
    md.set("CD1_2", PropertyList::Value(0.0));
    md.set("CD2_1", PropertyList::Value(0.0));
    md.set("CD2_2", PropertyList::Value(5e-5));
    return md;
}

TEST(WcsFits, ParsesVariants) {
    EXPECT_NO_THROW(Wcs::fromFitsMetadata(minimalHeader()));
    // Missing CD elements are zero; padded and lower-case strings are accepted; A_ORDER may be a float.
    PropertyList md = minimalHeader();
    md.remove("CD1_2");
    md.remove("CD2_1");
    md.set("CTYPE1", "ra---tan-sip  ");
    md.set("CTYPE2", "DEC--TAN-SIP");
    md.set("CUNIT1", "DEG");
    md.set("A_ORDER", PropertyList::Value(2.0));
    md.set("B_ORDER", 2);
    md.set("A_2_0", PropertyList::Value(1e-6));
    md.set("B_0_2", PropertyList::Value(-2e-6));
    md.set("RADESYS", "FK5");
    auto w = Wcs::fromFitsMetadata(md);
    ASSERT_TRUE(w->hasSip());
    EXPECT_EQ(w->sip()->order, 2);
    EXPECT_EQ(w->sip()->a(2, 0), 1e-6);
    EXPECT_EQ(w->sip()->b(0, 2), -2e-6);
    EXPECT_EQ(w->sip()->inverseOrder, 0);
    EXPECT_EQ(w->cd()(0, 1), 0.0);
    // SIP keywords without the -SIP suffix are ignored (as wcslib does).
    PropertyList plain = minimalHeader();
    plain.set("A_ORDER", 2);
    plain.set("A_2_0", PropertyList::Value(1e-6));
    EXPECT_FALSE(Wcs::fromFitsMetadata(plain)->hasSip());
    // PV1_3 is an alias of LONPOLE.
    PropertyList pv = minimalHeader();
    pv.set("PV1_3", PropertyList::Value(0.0));
    auto rotated = Wcs::fromFitsMetadata(pv);
    EXPECT_TRUE(rotated->cd() == -Wcs::fromFitsMetadata(minimalHeader())->cd());
}

TEST(WcsFits, Errors) {
    EXPECT_THROW(Wcs::fromFitsMetadata(PropertyList()), NotFoundError);
    PropertyList linear;
    linear.set("CTYPE1", "LINEAR");
    linear.set("CTYPE2", "LINEAR");
    EXPECT_THROW(Wcs::fromFitsMetadata(linear), NotFoundError);

    auto expectInvalid = [](const PropertyList& md, const char* what) {
        EXPECT_THROW(Wcs::fromFitsMetadata(md), InvalidInputError) << what;
    };
    for (const char* proj : {"TPV", "ZPN", "SIN", "ZEA"}) {
        PropertyList md = minimalHeader();
        md.set("CTYPE1", std::string("RA---") + proj);
        md.set("CTYPE2", std::string("DEC--") + proj);
        expectInvalid(md, proj);
    }
    PropertyList md = minimalHeader();
    md.set("PV2_1", PropertyList::Value(1.0));  // TPV-style coefficients on a TAN header
    expectInvalid(md, "PV2_1");
    md = minimalHeader();
    md.set("CD2_2", PropertyList::Value(0.0));
    md.set("CD1_1", PropertyList::Value(0.0));
    expectInvalid(md, "singular CD");
    md = minimalHeader();
    md.set("CD1_2", PropertyList::Value(-5e-5));
    md.set("CD2_1", PropertyList::Value(5e-5));
    md.set("CD2_2", PropertyList::Value(5e-5));  // rows proportional: rank 1
    expectInvalid(md, "rank-1 CD");
    md = minimalHeader();
    md.set("CD1_1", PropertyList::Value(std::nan("")));
    expectInvalid(md, "NaN CD");
    md = minimalHeader();
    md.set("CTYPE1", "GLON-TAN");
    md.set("CTYPE2", "GLAT-TAN");
    expectInvalid(md, "galactic");
    md = minimalHeader();
    md.set("CTYPE2", "LINEAR");
    expectInvalid(md, "lone RA axis");
    md = minimalHeader();
    md.set("CTYPE1", "RA---TAN-SIP");
    md.set("CTYPE2", "DEC--TAN-SIP");
    expectInvalid(md, "SIP without A_ORDER");
    md.set("A_ORDER", 12);
    md.set("B_ORDER", 2);
    expectInvalid(md, "A_ORDER too large");
    md = minimalHeader();
    md.set("RADESYS", "FK4");
    expectInvalid(md, "FK4");
    md = minimalHeader();
    md.set("CUNIT1", "rad");
    expectInvalid(md, "radians");
    md = minimalHeader();
    md.set("CRVAL2", PropertyList::Value(95.0));
    expectInvalid(md, "CRVAL2 > 90");
    md = minimalHeader();
    md.set("CRVAL1", "ten");
    expectInvalid(md, "string CRVAL1");
}

}  // namespace
}  // namespace drp
