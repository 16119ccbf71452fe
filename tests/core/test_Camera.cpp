// Camera geometry: LSSTCam-like defaults, amplifier tiling, raw <-> assembled mapping, focal plane.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/Camera.h"
#include "core/Error.h"
#include "core/SpanSet.h"

using namespace drp;

namespace {

CameraConfig smallConfig() {
    CameraConfig c;
    c.name = "test";
    c.detectorWidth = 256;
    c.detectorHeight = 200;
    c.ampsX = 4;
    c.ampsY = 2;
    c.prescan = 2;
    c.serialOverscan = 8;
    c.parallelOverscan = 6;
    c.detectorsX = 2;
    c.detectorsY = 2;
    return c;
}

}  // namespace

TEST(Camera, LsstLikeDefaultsMirrorLsstCam) {
    const auto cam = makeLsstLikeCamera();
    EXPECT_EQ(cam->size(), 9u);  // one 3x3 raft
    EXPECT_DOUBLE_EQ(cam->plateScaleArcsecPerMm(), 20.0);
    for (const auto& det : cam->detectors()) {
        EXPECT_EQ(det->bbox(), Box2I({0, 0}, 4072, 4000));
        EXPECT_DOUBLE_EQ(det->pixelSizeMicrons(), 10.0);
        // 0.2 arcsec per pixel.
        EXPECT_NEAR(cam->plateScaleArcsecPerMm() * det->pixelSizeMicrons() * 1e-3, 0.2, 1e-12);
        ASSERT_EQ(det->amplifiers().size(), 16u);
        std::set<int> xs, ys;
        for (const Amplifier& a : det->amplifiers()) {
            EXPECT_EQ(a.bbox.width(), 509);
            EXPECT_EQ(a.bbox.height(), 2000);
            EXPECT_EQ(a.rawBBox, Box2I({0, 0}, 3 + 509 + 64, 2000 + 48));
            EXPECT_EQ(a.rawPrescanBBox.width(), 3);
            EXPECT_EQ(a.rawSerialOverscanBBox.width(), 64);
            EXPECT_EQ(a.rawParallelOverscanBBox.height(), 48);
            EXPECT_EQ(a.rawDataBBox, Box2I({3, 0}, 509, 2000));
            EXPECT_GT(a.gain, 1.5 * 0.95 - 1e-12);
            EXPECT_LT(a.gain, 1.5 * 1.05 + 1e-12);
            xs.insert(a.bbox.minX());
            ys.insert(a.bbox.minY());
        }
        EXPECT_EQ(xs.size(), 8u);  // 2 rows x 8 columns
        EXPECT_EQ(ys.size(), 2u);
    }
    EXPECT_EQ(cam->detector(4).name(), "R22_S11");  // the centre of the raft
    EXPECT_NEAR(cam->detector("R22_S11").focalPlaneCenter().x, 0.0, 1e-12);
    EXPECT_NEAR(cam->detector("R22_S11").focalPlaneCenter().y, 0.0, 1e-12);
    EXPECT_NO_THROW(cam->detector(4).amplifier("C17"));
}

TEST(Camera, AmplifiersTileEachDetectorExactly) {
    for (auto [w, h, ax, ay] : {std::tuple{256, 200, 4, 2}, std::tuple{4072, 4000, 8, 2}, std::tuple{90, 60, 3, 3},
                                std::tuple{64, 64, 1, 1}, std::tuple{100, 40, 5, 4}}) {
        CameraConfig c = smallConfig();
        c.detectorWidth = w;
        c.detectorHeight = h;
        c.ampsX = ax;
        c.ampsY = ay;
        const auto cam = makeLsstLikeCamera(c);
        for (const auto& det : cam->detectors()) {
            ASSERT_EQ(int(det->amplifiers().size()), ax * ay);
            std::int64_t total = 0;
            SpanSet covered;
            const auto& amps = det->amplifiers();
            for (std::size_t i = 0; i < amps.size(); ++i) {
                total += amps[i].bbox.area();
                for (std::size_t j = 0; j < i; ++j) EXPECT_FALSE(amps[i].bbox.overlaps(amps[j].bbox));
                covered = covered.unionWith(SpanSet(amps[i].bbox));
                // Raw regions are disjoint and inside the raw image.
                EXPECT_NO_THROW(amps[i].validate());
                EXPECT_EQ(amps[i].rawDataBBox.area() + amps[i].rawPrescanBBox.area() +
                              amps[i].rawSerialOverscanBBox.area() + amps[i].rawParallelOverscanBBox.area() +
                              std::int64_t(c.serialOverscan + c.prescan) * c.parallelOverscan,
                          amps[i].rawBBox.area());
            }
            EXPECT_EQ(total, det->bbox().area());
            EXPECT_EQ(covered, SpanSet(det->bbox()));
            for (int y = 0; y < h; y += 7)
                for (int x = 0; x < w; x += 5) EXPECT_GE(det->amplifierIndexAt({x, y}), 0);
            EXPECT_EQ(det->amplifierIndexAt({w, 0}), -1);
        }
    }
}

TEST(Camera, RawAssembledRoundTripForEveryPixel) {
    const auto cam = makeLsstLikeCamera(smallConfig());
    for (const auto& det : cam->detectors()) {
        std::set<std::pair<int, int>> hit;
        for (std::size_t k = 0; k < det->amplifiers().size(); ++k) {
            const Amplifier& a = det->amplifiers()[k];
            for (int y = a.rawDataBBox.minY(); y <= a.rawDataBBox.maxY(); ++y)
                for (int x = a.rawDataBBox.minX(); x <= a.rawDataBBox.maxX(); ++x) {
                    const Point2I p = a.rawToAssembled(Point2I{x, y});
                    ASSERT_TRUE(a.bbox.contains(p));
                    ASSERT_EQ(a.assembledToRaw(p), (Point2I{x, y}));
                    ASSERT_TRUE(hit.insert({p.y, p.x}).second) << "two raw pixels map to one assembled pixel";
                }
            // The first pixel read (first data column, row 0) sits at the readout corner.
            const Point2I first = a.rawToAssembled(a.rawDataBBox.min());
            const bool upper = 2 * (a.bbox.minY() / a.bbox.height()) >= 2;
            EXPECT_EQ(first, upper ? a.bbox.max() : a.bbox.min()) << a.name;
            EXPECT_EQ(a.rawToAssembled(a.rawDataBBox), a.bbox);
            EXPECT_EQ(a.assembledToRaw(a.bbox), a.rawDataBBox);
            EXPECT_THROW(a.rawToAssembled(Point2I{0, 0}), LogicError);  // prescan is not data
        }
        EXPECT_EQ(std::int64_t(hit.size()), det->bbox().area());  // a bijection onto the detector
    }
}

TEST(Camera, AssembleAndDisassembleImages) {
    const auto cam = makeLsstLikeCamera(smallConfig());
    const Detector& det = cam->detector(0);
    ImageF truth(det.bbox());
    for (int y = 0; y < truth.height(); ++y)
        for (int x = 0; x < truth.width(); ++x) truth(x, y) = float(y * 1000 + x);
    ImageF rebuilt(det.bbox(), -1.0f);
    for (const Amplifier& a : det.amplifiers()) {
        const ImageF raw = disassembleAmplifier(a, truth, 7.0f);
        EXPECT_EQ(raw.bbox(), a.rawBBox);
        for (int y = a.rawDataBBox.minY(); y <= a.rawDataBBox.maxY(); y += 3)
            for (int x = a.rawDataBBox.minX(); x <= a.rawDataBBox.maxX(); x += 3)
                ASSERT_EQ(raw.atParent({x, y}), truth.atParent(a.rawToAssembled(Point2I{x, y})));
        EXPECT_EQ(raw.atParent(a.rawSerialOverscanBBox.min()), 7.0f);
        EXPECT_EQ(raw.atParent(a.rawParallelOverscanBBox.max()), 7.0f);
        assembleAmplifier(a, raw, rebuilt);
    }
    EXPECT_TRUE(rebuilt.identical(truth));
    ImageU small(10, 10);
    EXPECT_THROW(assembleAmplifier(det.amplifiers()[0], small, small), LogicError);
}

TEST(Camera, FocalPlaneMappingAndLayout) {
    CameraConfig c = smallConfig();
    c.detectorsX = 3;
    c.detectorsY = 2;
    c.nDetectors = 5;
    c.firstDetectorId = 100;
    const auto cam = makeLsstLikeCamera(c);
    ASSERT_EQ(cam->size(), 5u);
    for (int id = 100; id < 105; ++id) EXPECT_TRUE(cam->hasDetector(id));
    EXPECT_FALSE(cam->hasDetector(105));
    EXPECT_THROW(cam->detector(99), NotFoundError);
    EXPECT_THROW(cam->detector("nope"), NotFoundError);
    const double pitchX = 256 * 0.01 + 1.5;
    EXPECT_NEAR(cam->detector(101).focalPlaneCenter().x - cam->detector(100).focalPlaneCenter().x, pitchX, 1e-12);
    for (const auto& det : cam->detectors()) {
        EXPECT_EQ(&cam->detector(det->name()), det.get());
        for (double y = -0.5; y < 200; y += 13.7)
            for (double x = -0.5; x < 256; x += 17.3) {
                const Point2D mm = det->pixelToFocalPlane({x, y});
                const Point2D back = det->focalPlaneToPixel(mm);
                EXPECT_NEAR(back.x, x, 1e-9);
                EXPECT_NEAR(back.y, y, 1e-9);
                if (x >= 0 && y >= 0) { EXPECT_EQ(cam->detectorIdAt(mm), det->id()); }
            }
        // Pixel steps are 10 microns in the focal plane.
        const Point2D a = det->pixelToFocalPlane({10, 10}), b = det->pixelToFocalPlane({11, 10});
        EXPECT_NEAR(std::hypot(b.x - a.x, b.y - a.y), 0.010, 1e-12);
        const auto corners = det->focalPlaneCorners();
        EXPECT_NEAR(corners[2].x - corners[0].x, 2.56, 1e-12);
        EXPECT_NEAR(corners[2].y - corners[0].y, 2.00, 1e-12);
    }
    EXPECT_EQ(cam->detectorIdAt({1e4, 0}), -1);
    // Field angle: 20 arcsec/mm.
    EXPECT_NEAR(cam->focalPlaneToField({1.0, -2.0}).y, -40.0, 1e-12);
    EXPECT_NEAR(cam->fieldToFocalPlane(cam->focalPlaneToField({1.5, 2.5})).x, 1.5, 1e-12);
    // A rotated detector round-trips too.
    Detector rot(7, "rot", Box2I({0, 0}, 50, 40), 15.0, {3.0, -4.0}, 0.3, {});
    const Point2D p = rot.focalPlaneToPixel(rot.pixelToFocalPlane({12.25, 33.5}));
    EXPECT_NEAR(p.x, 12.25, 1e-9);
    EXPECT_NEAR(p.y, 33.5, 1e-9);
    const Point2D ctr = rot.pixelToFocalPlane({24.5, 19.5});
    EXPECT_NEAR(ctr.x, 3.0, 1e-12);
    EXPECT_NEAR(ctr.y, -4.0, 1e-12);
}

TEST(Camera, PerAmplifierVariationIsDeterministic) {
    CameraConfig c = smallConfig();
    c.gainScatter = 0.1;
    c.readNoiseScatter = 0.2;
    const auto a = makeLsstLikeCamera(c), b = makeLsstLikeCamera(c);
    c.seed = 2;
    const auto other = makeLsstLikeCamera(c);
    int differ = 0;
    double sumGain = 0;
    int n = 0;
    std::set<double> gains;
    for (std::size_t d = 0; d < a->size(); ++d)
        for (std::size_t k = 0; k < a->detectors()[d]->amplifiers().size(); ++k) {
            const Amplifier& x = a->detectors()[d]->amplifiers()[k];
            EXPECT_EQ(x, b->detectors()[d]->amplifiers()[k]);
            const Amplifier& y = other->detectors()[d]->amplifiers()[k];
            differ += x.gain != y.gain;
            EXPECT_GE(x.gain, 1.5 * 0.9);
            EXPECT_LE(x.gain, 1.5 * 1.1);
            EXPECT_GE(x.readNoise, 6.0 * 0.8);
            EXPECT_LE(x.readNoise, 6.0 * 1.2);
            sumGain += x.gain;
            gains.insert(x.gain);
            ++n;
        }
    EXPECT_EQ(differ, n);
    EXPECT_EQ(int(gains.size()), n);  // every amplifier differs
    EXPECT_NEAR(sumGain / n, 1.5, 0.1);
    c.gainScatter = 0;
    c.readNoiseScatter = 0;
    const auto flat = makeLsstLikeCamera(c);
    for (const auto& det : flat->detectors())
        for (const Amplifier& amp : det->amplifiers()) {
            EXPECT_EQ(amp.gain, 1.5);
            EXPECT_EQ(amp.readNoise, 6.0);
        }
}

TEST(Camera, ConfigValidation) {
    EXPECT_NO_THROW(CameraConfig{}.validate());
    CameraConfig c;
    c.detectorWidth = 4073;  // not divisible by 8
    EXPECT_THROW(makeLsstLikeCamera(c), ConfigError);
    c = {};
    c.nDetectors = 10;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.gainScatter = 1.0;
    EXPECT_THROW(c.validate(), ConfigError);
    c = {};
    c.pixelSizeMicrons = 0;
    EXPECT_THROW(c.validate(), ConfigError);
    EXPECT_TRUE(CameraConfig{} == CameraConfig{});
    // Overlapping amplifiers or duplicate detectors are refused.
    Amplifier a = makeLsstLikeCamera(smallConfig())->detector(0).amplifiers()[0];
    EXPECT_THROW(Detector(0, "d", Box2I({0, 0}, 256, 200), 10.0, {0, 0}, 0.0, {a, a}), ConfigError);
    auto d = std::make_shared<const Detector>(0, "d", Box2I({0, 0}, 256, 200), 10.0, Point2D{0, 0}, 0.0,
                                              std::vector<Amplifier>{a});
    EXPECT_THROW(Camera("c", {d, d}, 20.0), ConfigError);
    EXPECT_THROW(Camera("c", {d}, 0.0), ConfigError);
}

// The camera model's WCS: a plain-TAN pointing plus the optics' radial distortion about the optical axis must
// put every pixel where the focal-plane geometry says it is seen: pixel -> mm -> distorted field angle -> the
// nominal pixel that field angle has under the pointing's TAN.
TEST(Camera, DistortedWcsMatchesFocalPlaneGeometry) {
    CameraConfig c;  // LSSTCam-like 3x3 raft: the corners sit 0.49 deg off axis
    for (double k : {0.01, -0.02, 0.05}) {
        const auto cam = makeLsstLikeCamera(c)->withRadialDistortion(k);
        EXPECT_EQ(cam->radialDistortionPerDeg2(), k);
        const double scaleArcsec = cam->plateScaleArcsecPerMm() * c.pixelSizeMicrons * 1e-3;
        for (const auto& det : cam->detectors()) {
            for (double rotDeg : {0.0, 37.0, -120.0}) {
                const Point2D axis = det->focalPlaneToPixel({0.0, 0.0});
                const auto tan = Wcs::makeTan(axis, SpherePoint(Angle::fromDegrees(150.1), Angle::fromDegrees(2.2)),
                                              (scaleArcsec * arcseconds), Angle::fromDegrees(rotDeg));
                const auto wcs = cam->distortedWcs(tan, *det);
                ASSERT_TRUE(wcs->hasSip());
                double worst = 0, largestShift = 0;
                for (int y = 0; y <= c.detectorHeight; y += c.detectorHeight / 8)
                    for (int x = 0; x <= c.detectorWidth; x += c.detectorWidth / 8) {
                        const Point2D mm = det->pixelToFocalPlane({double(x), double(y)});
                        const Point2D field = cam->focalPlaneToDistortedField(mm);
                        const Point2D nominal = det->focalPlaneToPixel(cam->fieldToFocalPlane(field));
                        const SpherePoint truth = tan->pixelToSky(nominal);
                        const SpherePoint got = wcs->pixelToSky({double(x), double(y)});
                        worst = std::max(worst, got.separation(truth).asArcseconds());
                        largestShift = std::max(largestShift, std::hypot(nominal.x - x, nominal.y - y) * scaleArcsec);
                        // The inverse returns the pixel.
                        const Point2D back = wcs->skyToPixel(got);
                        EXPECT_NEAR(back.x, x, 1e-6);
                        EXPECT_NEAR(back.y, y, 1e-6);
                    }
                EXPECT_LT(worst, 1e-4) << "detector " << det->id() << " k " << k;  // 0.1 mas
                if (det->id() == 0) { EXPECT_GT(largestShift, 3.0 * std::fabs(k) / 0.01); }  // 4.2" at the raft corner for k = 0.01
            }
        }
    }
}

TEST(Camera, DistortedWcsRecentresAndLeavesOthersAlone) {
    CameraConfig c;
    const auto plain = makeLsstLikeCamera(c);
    const auto cam = plain->withRadialDistortion(0.01);
    const Detector& det = cam->detector(0);
    const Point2D axis = det.focalPlaneToPixel({0.0, 0.0});
    const SpherePoint centre(Angle::fromDegrees(10), Angle::fromDegrees(-30));
    // A camera without distortion and a pointing that already has SIP come back unchanged.
    const auto tan = Wcs::makeTan(axis, centre, (0.2 * arcseconds), Angle::fromDegrees(12));
    EXPECT_EQ(plain->distortedWcs(tan, det), tan);
    const auto distorted = cam->distortedWcs(tan, det);
    EXPECT_EQ(cam->distortedWcs(distorted, det), distorted);
    EXPECT_THROW(cam->distortedWcs(nullptr, det), InvalidInputError);
    EXPECT_THROW(makeLsstLikeCamera(c)->withRadialDistortion(2.0), ConfigError);
    // A pointing whose CRPIX is off the axis is re-centred there: the axis keeps its sky position and the
    // distortion grows from the axis, not from the header's CRPIX.
    const auto off = Wcs::makeTan({axis.x + 300, axis.y - 200}, centre, (0.2 * arcseconds), Angle::fromDegrees(12));
    const auto w = cam->distortedWcs(off, det);
    EXPECT_NEAR(w->crpix().x, axis.x, 1e-9);
    EXPECT_NEAR(w->crpix().y, axis.y, 1e-9);
    EXPECT_LT(w->pixelToSky(axis).separation(off->pixelToSky(axis)).asArcseconds(), 1e-9);
    // Near the axis both agree; at the detector's far corner the distortion moves the pixel by arcseconds.
    const Point2D corner{0, 0};
    EXPECT_GT(w->pixelToSky(corner).separation(off->pixelToSky(corner)).asArcseconds(), 1.0);
}
