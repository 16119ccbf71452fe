// The visit-level PSF's datasets: psfStars (candidates and cutouts) and visitPsf (the model, the detectors' fits and
// their stars) written and read back exactly; forDetector gives the model reframed to the detector; a truncated file
// is an error naming it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/Error.h"
#include "core/MoffatPsf.h"
#include "drivers/singlevisit/VisitPsfIo.h"
#include "tests/support/TestSupport.h"

using namespace drp;

namespace {

PsfStars makeStars(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    PsfStars s;
    s.detector = 7;
    s.bbox = Box2I({0, 0}, 1024, 1000);
    s.metadata.set("SEEINGPX", 1.25, "seeing");
    s.metadata.set("NCR", std::int64_t(3), "cosmic rays");
    for (int i = 0; i < 6; ++i) {
        PsfCandidate c;
        c.position = {1000 * u(rng), 1000 * u(rng)};
        c.flux = 1e4 * (1 + u(rng));
        c.fluxErr = i == 2 ? -1.0 : 30 * u(rng);
        c.ixx = 2 + u(rng);
        c.iyy = 2 + u(rng);
        c.ixy = 0.1 * u(rng);
        c.saturated = i == 1;
        c.blended = i == 3;
        c.masked = i == 4;
        c.edge = i == 5;
        c.flagged = i == 0 && seed % 2 == 0;
        s.candidates.push_back(c);
        if (i % 2 == 1) {  // candidates without a cutout in between
            s.cutouts.emplace_back();
            continue;
        }
        MaskedImageF m(Box2I({int(c.position.x) - 9, int(c.position.y) - 11}, 19, 23));
        m.mask().addPlane("DETECTED");
        const MaskPixel sat = m.mask().planeBitMask("SAT"), det = m.mask().planeBitMask("DETECTED");
        for (int y = 0; y < m.height(); ++y)
            for (int x = 0; x < m.width(); ++x) {
                m.image()(x, y) = float(100 * u(rng) - 10);
                m.variance()(x, y) = float(50 + u(rng));
                m.mask()(x, y) = u(rng) < 0.05 ? sat : (u(rng) < 0.3 ? det : 0);
            }
        s.cutouts.push_back(std::move(m));
    }
    return s;
}

}  // namespace

TEST(VisitPsfIo, PsfStarsRoundTrip) {
    test::TempDir dir;
    const std::vector<std::string> badPlanes = PsfDeterminerConfig{}.badMaskPlanes;
    for (std::uint64_t seed : {1, 2, 3}) {
        const PsfStars s = makeStars(seed);
        const auto path = dir / ("stars" + std::to_string(seed) + ".h5");
        writePsfStars(path, s, badPlanes);
        const PsfStars r = readPsfStars(path);
        EXPECT_EQ(r.detector, 7);
        EXPECT_EQ(r.bbox, s.bbox);
        EXPECT_DOUBLE_EQ(r.metadata.getDouble("SEEINGPX"), 1.25);
        EXPECT_EQ(r.metadata.getInt("NCR"), 3);
        ASSERT_EQ(r.candidates.size(), s.candidates.size());
        ASSERT_EQ(r.cutouts.size(), s.cutouts.size());
        for (std::size_t i = 0; i < s.candidates.size(); ++i) {
            const PsfCandidate &a = s.candidates[i], &b = r.candidates[i];
            EXPECT_EQ(a.position.x, b.position.x);
            EXPECT_EQ(a.position.y, b.position.y);
            EXPECT_EQ(a.flux, b.flux);
            EXPECT_EQ(a.fluxErr, b.fluxErr);
            EXPECT_EQ(a.ixx, b.ixx);
            EXPECT_EQ(a.iyy, b.iyy);
            EXPECT_EQ(a.ixy, b.ixy);
            EXPECT_EQ(a.isCandidate(), b.isCandidate());
            EXPECT_EQ(std::tie(a.saturated, a.blended, a.masked, a.edge, a.flagged),
                      std::tie(b.saturated, b.blended, b.masked, b.edge, b.flagged));
            const MaskedImageF &m = s.cutouts[i], &n = r.cutouts[i];
            ASSERT_EQ(m.bbox(), n.bbox()) << i;
            if (m.width() == 0) continue;
            // Pixels exact; the mask reduced to BAD where any bad plane (SAT here) was set, nothing else.
            const MaskPixel sat = m.mask().planeBitMask("SAT"), bad = n.mask().planeBitMask("BAD");
            for (int y = 0; y < m.height(); ++y)
                for (int x = 0; x < m.width(); ++x) {
                    EXPECT_EQ(m.image()(x, y), n.image()(x, y));
                    EXPECT_EQ(m.variance()(x, y), n.variance()(x, y));
                    EXPECT_EQ(n.mask()(x, y), (m.mask()(x, y) & sat) ? bad : MaskPixel(0));
                }
        }
    }
    // A damaged file is an error that names it.
    const auto path = dir / "stars1.h5";
    std::filesystem::resize_file(path, std::filesystem::file_size(path) / 2);
    try {
        readPsfStars(path);
        FAIL() << "a truncated psfStars file was read";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("stars1.h5"), std::string::npos) << e.what();
    }
}

TEST(VisitPsfIo, VisitPsfRoundTripAndReframe) {
    test::TempDir dir;
    registerPsfexPsf();
    const std::vector<Image<double>> comps = test::noisyPsfComponents(MoffatPsf(3.0, 3.5).computeKernelImage(), 2, 5, 1e-4);
    VisitPsfData data;
    data.model = PsfexPsf::make(Box2I({-1700, -1700}, 3400, 3400), 2, comps);
    data.nUsed = 123;
    data.spatialOrder = 2;
    data.metadata.set("DRPVERS", std::string("test"), "provenance");
    for (int d = 0; d < 3; ++d) {
        VisitPsfData::DetectorFit f;
        f.id = 10 + d;
        f.offset = {-1100.5 + 1100.25 * d, 37.75};
        f.bbox = Box2I({0, 0}, 1024, 1024);
        f.fit.nUsed = 40 + d;
        f.fit.stampSize = 21;
        f.fit.oversampling = 1;
        f.fit.spatialOrder = 2;
        f.fit.reservedMedianSizeResidual = 1e-3 * d;
        f.fit.reservedWeightedMeanSizeResidual = -2e-4;
        f.fit.reservedSizeResidualWeightSum = 1e5;
        f.fit.sizeChi2 = 17.5;
        for (int k = 0; k < 5; ++k) f.selected.push_back({10.0 * k + d, 20.0 * k});
        f.used = {f.selected[0], f.selected[1], f.selected[3]};
        f.reserved = {f.selected[2]};
        f.fit.reservedSizeResiduals = {0.004 * (d - 1)};
        f.fit.reservedDirectSizeResiduals = {0.01};
        f.fit.reservedSizeResidualWeights = {d == 2 ? 0.0 : 5e4};
        data.detectors.push_back(f);
    }
    const auto path = dir / "visitPsf.h5";
    writeVisitPsf(path, data);
    const VisitPsfData r = readVisitPsf(path);
    ASSERT_TRUE(r.model);
    EXPECT_TRUE(r.model->equals(*data.model));
    EXPECT_EQ(r.nUsed, 123);
    EXPECT_EQ(r.spatialOrder, 2);
    EXPECT_EQ(r.metadata.getString("DRPVERS"), "test");
    ASSERT_EQ(r.detectors.size(), 3u);
    for (std::size_t d = 0; d < 3; ++d) {
        const auto &w = data.detectors[d], &b = r.detectors[d];
        EXPECT_EQ(b.id, w.id);
        EXPECT_EQ(b.offset.x, w.offset.x);
        EXPECT_EQ(b.offset.y, w.offset.y);
        EXPECT_EQ(b.bbox, w.bbox);
        EXPECT_EQ(b.fit.nUsed, w.fit.nUsed);
        EXPECT_EQ(b.fit.stampSize, 21);
        EXPECT_EQ(b.fit.reservedMedianSizeResidual, w.fit.reservedMedianSizeResidual);
        EXPECT_EQ(b.fit.sizeChi2, 17.5);
        EXPECT_EQ(b.fit.reservedSizeResiduals, w.fit.reservedSizeResiduals);
        EXPECT_EQ(b.fit.reservedDirectSizeResiduals, w.fit.reservedDirectSizeResiduals);
        EXPECT_EQ(b.fit.reservedSizeResidualWeights, w.fit.reservedSizeResidualWeights);
        ASSERT_EQ(b.selected.size(), 5u);
        EXPECT_EQ(b.used.size(), 3u);
        EXPECT_EQ(b.reserved.size(), 1u);
        EXPECT_EQ(b.reserved[0].x, w.reserved[0].x);
        // The model for the detector: the visit model reframed, with the detector's stars and QA.
        const auto det = r.forDetector(w.id);
        ASSERT_TRUE(det);
        ASSERT_TRUE(det->fit.psf);
        EXPECT_EQ(det->visitStars, 123);
        EXPECT_EQ(det->visitDetectors, 3);
        EXPECT_EQ(det->used.size(), 3u);
        for (Point2D p : {Point2D{0, 0}, Point2D{511.5, 700.25}, Point2D{1023, 1023}}) {
            const Image<double> here = det->fit.psf->computeKernelImage(p);
            const Image<double> there = data.model->computeKernelImage({p.x + w.offset.x, p.y + w.offset.y});
            for (int y = 0; y < here.height(); ++y)
                for (int x = 0; x < here.width(); ++x) EXPECT_NEAR(here(x, y), there(x, y), 1e-12);
        }
    }
    EXPECT_FALSE(r.forDetector(99));
    // No model: the reason is kept and no detector gets one.
    VisitPsfData none;
    none.reason = "only 4 PSF stars in the visit";
    none.detectors.push_back({3, {1.0, 2.0}, Box2I({0, 0}, 10, 10), {}, {}, {}, {}});
    writeVisitPsf(dir / "none.h5", none);
    const VisitPsfData n = readVisitPsf(dir / "none.h5");
    EXPECT_FALSE(n.model);
    EXPECT_EQ(n.reason, none.reason);
    EXPECT_EQ(n.detectors.size(), 1u);
    EXPECT_FALSE(n.forDetector(3));
}
