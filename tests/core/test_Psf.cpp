#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/Error.h"
#include "core/Psf.h"

using namespace drp;

namespace {

double sum(const Image<double>& img) {
    double s = 0.0;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) s += img(x, y);
    return s;
}

/// Centroid and second moments of an image in its parent frame (brute force).
struct Moments {
    double x = 0, y = 0, ixx = 0, iyy = 0, ixy = 0;
};
Moments moments(const Image<double>& img) {
    Moments m;
    const double s = sum(img);
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            m.x += img(x, y) * (x + img.xy0().x);
            m.y += img(x, y) * (y + img.xy0().y);
        }
    m.x /= s, m.y /= s;
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const double dx = x + img.xy0().x - m.x, dy = y + img.xy0().y - m.y;
            m.ixx += img(x, y) * dx * dx, m.iyy += img(x, y) * dy * dy, m.ixy += img(x, y) * dx * dy;
        }
    m.ixx /= s, m.iyy /= s, m.ixy /= s;
    return m;
}

/// A PSF that breaks the contract in a chosen way, to prove the base class checks it.
class BrokenPsf final : public Psf {
public:
    enum Fault { EvenSize, NotNormalised, NonFinite };
    explicit BrokenPsf(Fault f) : fault_(f) {}

private:
    Image<double> doComputeKernelImage(Point2D) const override {
        if (fault_ == EvenSize) return Image<double>(4, 4, 1.0 / 16);
        Image<double> img(5, 5, fault_ == NotNormalised ? 0.1 : 1.0 / 25);
        if (fault_ == NonFinite) img(2, 2) = std::nan("");
        return img;
    }
    std::string doTypeName() const override { return "BrokenPsf"; }
    PsfRecord doToRecord() const override { return {}; }
    Fault fault_;
};

/// A user-defined type added through the registry (stands in for the later PSFEx-like PSF).
class BoxPsf final : public Psf {
public:
    explicit BoxPsf(int halfWidth) : half_(halfWidth) {}
    int half() const { return half_; }

private:
    Image<double> doComputeKernelImage(Point2D) const override {
        const int n = 2 * half_ + 1;
        return Image<double>(n, n, 1.0 / (n * n));
    }
    std::string doTypeName() const override { return "BoxPsf"; }
    PsfRecord doToRecord() const override {
        PsfRecord r;
        r.set("halfWidth", {double(half_)});
        return r;
    }
    int half_;
};

}  // namespace

TEST(GaussianPsf, KernelIsOddCentredNormalisedWithAnalyticMoments) {
    for (unsigned seed = 1; seed <= 25; ++seed) {
        std::mt19937 rng(seed);
        const double sigma = std::uniform_real_distribution<double>(1.2, 4.0)(rng);
        const double e1 = std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
        const double e2 = std::uniform_real_distribution<double>(-0.3, 0.3)(rng);
        const int size = 2 * int(std::ceil(9 * sigma)) + 1;  // wide enough that truncation is < 1e-12
        GaussianPsf psf(sigma, size, e1, e2);
        Image<double> k = psf.computeKernelImage();
        ASSERT_EQ(k.width(), size);
        ASSERT_EQ(k.height(), size);
        EXPECT_EQ(k.xy0(), (Point2I{-(size / 2), -(size / 2)}));
        EXPECT_NEAR(sum(k), 1.0, 1e-12);
        // Peak at the centre pixel (parent (0,0)); point symmetry k(x,y) = k(-x,-y).
        const double peak = k.atParent({0, 0});
        for (int y = 0; y < size; ++y)
            for (int x = 0; x < size; ++x) {
                EXPECT_LE(k(x, y), peak);
                EXPECT_NEAR(k(x, y), k(size - 1 - x, size - 1 - y), 1e-15);
            }
        // Brute-force moments of the sampled kernel equal the analytic shape (well-sampled Gaussian).
        const Moments m = moments(k);
        const PsfShape s = psf.computeShape();
        EXPECT_NEAR(m.x, 0.0, 1e-12);
        EXPECT_NEAR(m.y, 0.0, 1e-12);
        EXPECT_NEAR(m.ixx, s.ixx, 1e-8 * s.ixx);
        EXPECT_NEAR(m.iyy, s.iyy, 1e-8 * s.iyy);
        EXPECT_NEAR(m.ixy, s.ixy, 1e-8 * s.ixx);
        // Determinant radius equals sigma whatever the ellipticity; ellipticity recovered.
        EXPECT_NEAR(psf.computeSigma(), sigma, 1e-12);
        EXPECT_NEAR((m.ixx - m.iyy) / (m.ixx + m.iyy), e1, 1e-8);
        EXPECT_NEAR(2 * m.ixy / (m.ixx + m.iyy), e2, 1e-8);
    }
}

TEST(GaussianPsf, ComputeImageIsCentredOnTheSubPixelPosition) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> pos(-500.0, 4500.0);
    for (int trial = 0; trial < 40; ++trial) {
        const double sigma = 1.5 + 0.05 * trial;
        GaussianPsf psf(sigma, 2 * int(std::ceil(9 * sigma)) + 1, 0.1, -0.05);
        const Point2D p{pos(rng), pos(rng)};
        Image<double> img = psf.computeImage(p);
        EXPECT_NEAR(sum(img), 1.0, 1e-12);
        EXPECT_EQ(img.width() % 2, 1);
        // The image lines up with the parent pixel grid and contains the pixel nearest p at its centre.
        const Point2I nearest{int(std::floor(p.x + 0.5)), int(std::floor(p.y + 0.5))};
        EXPECT_EQ(img.xy0().x + img.width() / 2, nearest.x);
        EXPECT_EQ(img.xy0().y + img.height() / 2, nearest.y);
        const Moments m = moments(img);
        EXPECT_NEAR(m.x, p.x, 1e-6);
        EXPECT_NEAR(m.y, p.y, 1e-6);
    }
}

TEST(ImagePsf, ShiftedImageKeepsFluxAndMovesTheCentroid) {
    // An ImagePsf made from a well-sampled Gaussian: its Lanczos-shifted image must match the analytic
    // Gaussian evaluated at the shifted position.
    GaussianPsf g(2.0, 41);
    ImagePsf psf(g.computeKernelImage());
    for (double dx : {-0.5, -0.31, 0.0, 0.17, 0.49}) {
        for (double dy : {-0.4, 0.0, 0.25}) {
            const Point2D p{100.0 + dx, -37.0 + dy};
            Image<double> img = psf.computeImage(p);
            Image<double> truth = g.computeImage(p);
            ASSERT_EQ(img.bbox(), truth.bbox());
            EXPECT_NEAR(sum(img), 1.0, 1e-12);
            double maxDiff = 0.0;
            for (int y = 0; y < img.height(); ++y)
                for (int x = 0; x < img.width(); ++x) maxDiff = std::max(maxDiff, std::fabs(img(x, y) - truth(x, y)));
            EXPECT_LT(maxDiff, 1e-9) << "dx=" << dx << " dy=" << dy;  // peak is ~0.04
            const Moments m = moments(img);
            EXPECT_NEAR(m.x, p.x, 1e-7);
            EXPECT_NEAR(m.y, p.y, 1e-7);
        }
    }
    // At an integer position the image is the kernel, moved.
    Image<double> k = psf.computeKernelImage();
    Image<double> at = psf.computeImage({12.0, 8.0});
    EXPECT_EQ(at.xy0(), (Point2I{12 - 20, 8 - 20}));
    for (int y = 0; y < k.height(); ++y)
        for (int x = 0; x < k.width(); ++x) EXPECT_EQ(at(x, y), k(x, y));
}

TEST(ImagePsf, NormalisesAndValidatesItsImage) {
    Image<double> img(5, 3, 2.0);
    ImagePsf psf(img);
    EXPECT_NEAR(sum(psf.computeKernelImage()), 1.0, 1e-15);
    EXPECT_THROW(ImagePsf(Image<double>(4, 5, 1.0)), InvalidInputError);
    EXPECT_THROW(ImagePsf(Image<double>(5, 5, 0.0)), InvalidInputError);
    Image<double> bad(5, 5, 1.0);
    bad(1, 1) = std::numeric_limits<double>::infinity();
    EXPECT_THROW((ImagePsf(bad)), InvalidInputError);
    EXPECT_THROW(ImagePsf(Image<double>(5, 5, 1.0), false), InvalidInputError);  // not normalised
}

TEST(GaussianPsf, RejectsBadParameters) {
    EXPECT_THROW(GaussianPsf(0.0), InvalidInputError);
    EXPECT_THROW(GaussianPsf(-1.0), InvalidInputError);
    EXPECT_THROW(GaussianPsf(std::nan("")), InvalidInputError);
    EXPECT_THROW(GaussianPsf(2.0, 10), InvalidInputError);
    EXPECT_THROW(GaussianPsf(2.0, 0, 0.8, 0.7), InvalidInputError);
    EXPECT_EQ(GaussianPsf(2.0).kernelSize(), 21);  // 2 ceil(5 sigma) + 1
}

TEST(Psf, BaseClassChecksTheKernelContract) {
    EXPECT_THROW(BrokenPsf(BrokenPsf::EvenSize).computeKernelImage(), NumericalError);
    EXPECT_THROW(BrokenPsf(BrokenPsf::NotNormalised).computeKernelImage(), NumericalError);
    EXPECT_THROW(BrokenPsf(BrokenPsf::NonFinite).computeKernelImage(), NumericalError);
    EXPECT_THROW(BrokenPsf(BrokenPsf::EvenSize).computeImage({3.2, 1.0}), NumericalError);
    EXPECT_THROW(GaussianPsf(2.0).computeImage({std::nan(""), 1.0}), InvalidInputError);
}

TEST(Psf, CachedKernelCannotBeModifiedByTheCaller) {
    GaussianPsf psf(2.0);
    Image<double> a = psf.computeKernelImage({10, 10});
    const double centre = a.atParent({0, 0});
    a.fill(-1.0);
    Image<double> b = psf.computeKernelImage({10, 10});
    EXPECT_EQ(b.atParent({0, 0}), centre);
    EXPECT_FALSE(a.sharesPixelsWith(b));
}

TEST(Psf, RecordsRoundTripThroughTheRegistry) {
    std::mt19937 rng(99);
    for (int trial = 0; trial < 10; ++trial) {
        std::uniform_real_distribution<double> u(0.0, 1.0);
        auto g = GaussianPsf::make(0.8 + 3 * u(rng), 0, 0.4 * u(rng) - 0.2, 0.4 * u(rng) - 0.2);
        auto g2 = Psf::fromRecord(g->toRecord());
        EXPECT_EQ(g2->typeName(), "GaussianPsf");
        EXPECT_TRUE(g2->equals(*g));
        EXPECT_TRUE(g2->computeKernelImage().identical(g->computeKernelImage()));

        Image<double> pix(7, 9);
        for (int y = 0; y < 9; ++y)
            for (int x = 0; x < 7; ++x) pix(x, y) = u(rng);
        auto im = ImagePsf::make(pix);
        auto im2 = Psf::fromRecord(im->toRecord());
        EXPECT_EQ(im2->typeName(), "ImagePsf");
        EXPECT_TRUE(im2->equals(*im));
        EXPECT_TRUE(im2->computeKernelImage().identical(im->computeKernelImage()));
        EXPECT_FALSE(im2->equals(*g));
    }
}

TEST(Psf, RegistryAcceptsNewTypesAndRejectsUnknownOrMalformedRecords) {
    EXPECT_FALSE(Psf::isRegistered("BoxPsf"));
    Psf::registerType("BoxPsf", [](const PsfRecord& r) { return std::make_shared<const BoxPsf>(int(r.scalar("halfWidth"))); });
    EXPECT_TRUE(Psf::isRegistered("BoxPsf"));
    BoxPsf box(3);
    auto back = Psf::fromRecord(box.toRecord());
    EXPECT_EQ(back->typeName(), "BoxPsf");
    EXPECT_EQ(back->computeKernelImage().width(), 7);

    PsfRecord unknown;
    unknown.typeName = "NoSuchPsf";
    EXPECT_THROW(Psf::fromRecord(unknown), NotFoundError);

    PsfRecord missing = GaussianPsf(2.0).toRecord();
    missing.arrays.pop_back();
    EXPECT_THROW(Psf::fromRecord(missing), InvalidInputError);

    PsfRecord badSize = ImagePsf(Image<double>(3, 3, 1.0)).toRecord();
    badSize.set("width", {5.0});
    EXPECT_THROW(Psf::fromRecord(badSize), InvalidInputError);

    PsfRecord notOne = GaussianPsf(2.0).toRecord();
    notOne.set("sigma", {1.0, 2.0});
    EXPECT_THROW(Psf::fromRecord(notOne), InvalidInputError);
}

TEST(PsfRecord, EqualityIsBitwise) {
    PsfRecord a;
    a.typeName = "X";
    a.set("v", {1.0, std::nan("")});
    PsfRecord b = a;
    EXPECT_TRUE(a == b);
    b.set("v", {1.0, -std::nan("")});
    EXPECT_FALSE(a == b);
    b = a;
    b.set("v", {std::nextafter(1.0, 2.0), std::nan("")});
    EXPECT_FALSE(a == b);
}
