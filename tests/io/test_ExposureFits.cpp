#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/Error.h"
#include "io/AtomicFile.h"
#include "io/ExposureFits.h"
#include "io/ExposureHeader.h"
#include "stages/coadd/CoaddPsf.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

template <typename T>
bool bitIdentical(const Image<T>& a, const Image<T>& b) {
    if (a.width() != b.width() || a.height() != b.height() || !(a.xy0() == b.xy0())) return false;
    for (int y = 0; y < a.height(); ++y)
        if (std::memcmp(a.row(y), b.row(y), sizeof(T) * std::size_t(a.width())) != 0) return false;
    return true;
}

std::shared_ptr<const Wcs> randomWcs(std::mt19937_64& rng, Box2I bbox, bool sip) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const Point2D crpix{bbox.minX() + bbox.width() * u(rng), bbox.minY() + bbox.height() * u(rng)};
    const SpherePoint crval(Angle::fromRadians(6.28 * u(rng)), Angle::fromRadians(2.8 * u(rng) - 1.4));
    const double scale = (0.1 + 0.3 * u(rng)) / 3600.0;
    const double rot = 6.28 * u(rng);
    Eigen::Matrix2d cd;
    cd << -scale * std::cos(rot), scale * std::sin(rot), scale * std::sin(rot), scale * std::cos(rot);
    cd(0, 1) *= 1.0 + 0.01 * u(rng);  // slightly non-orthogonal
    if (!sip) return std::make_shared<const Wcs>(crpix, crval, cd);
    SipPolynomials s;
    s.order = 2 + int(rng() % 2);
    s.a = Eigen::MatrixXd::Zero(s.order + 1, s.order + 1);
    s.b = Eigen::MatrixXd::Zero(s.order + 1, s.order + 1);
    for (int p = 0; p <= s.order; ++p)
        for (int q = 0; p + q <= s.order; ++q)
            if (p + q >= 2) {
                const double size = std::pow(1e-3, p + q - 1);
                s.a(p, q) = size * (u(rng) - 0.5);
                s.b(p, q) = size * (u(rng) - 0.5);
            }
    if (rng() % 2) {
        s.inverseOrder = s.order + 1;
        s.ap = Eigen::MatrixXd::Zero(s.inverseOrder + 1, s.inverseOrder + 1);
        s.bp = Eigen::MatrixXd::Zero(s.inverseOrder + 1, s.inverseOrder + 1);
        for (int p = 0; p <= s.inverseOrder; ++p)
            for (int q = 0; p + q <= s.inverseOrder; ++q) {
                s.ap(p, q) = std::pow(1e-3, p + q) * (u(rng) - 0.5);
                s.bp(p, q) = std::pow(1e-3, p + q) * (u(rng) - 0.5);
            }
    }
    return std::make_shared<const Wcs>(crpix, crval, cd, s);
}

Exposure randomExposure(unsigned seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const int w = 20 + int(rng() % 150), h = 15 + int(rng() % 120);
    const Point2I xy0{int(rng() % 4000) - 1000, int(rng() % 4000) - 1000};
    Exposure exp(Box2I(xy0, w, h));
    // Run-time mask planes beyond the defaults.
    std::vector<std::string> extra = {"STREAK", "INJECTED", "SPIKE", "UNMASKEDNAN"};
    for (unsigned i = 0; i < 1 + seed % extra.size(); ++i) exp.mask().addPlane(extra[i]);
    const int nBits = int(exp.mask().planes().size());
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            exp.image()(x, y) = float(1000.0 * (u(rng) - 0.3));
            exp.variance()(x, y) = float(10.0 * u(rng));
            exp.mask()(x, y) = MaskPixel(rng() & ((1u << nBits) - 1));
        }
    // NaNs of several kinds in the image and variance.
    for (int i = 0; i < 10; ++i) {
        exp.image()(int(rng() % w), int(rng() % h)) = std::numeric_limits<float>::quiet_NaN();
        exp.image()(int(rng() % w), int(rng() % h)) = std::bit_cast<float>(0xffc00abcu);
        exp.variance()(int(rng() % w), int(rng() % h)) = std::numeric_limits<float>::infinity();
    }
    exp.setWcs(randomWcs(rng, exp.bbox(), seed % 3 != 0));
    if (seed % 2 == 0) {
        exp.setPsf(GaussianPsf::make(1.0 + 3.0 * u(rng), 0, 0.3 * (u(rng) - 0.5), 0.3 * (u(rng) - 0.5)));
    } else {
        Image<double> pix(2 * int(3 + rng() % 10) + 1, 2 * int(3 + rng() % 10) + 1);
        for (int y = 0; y < pix.height(); ++y)
            for (int x = 0; x < pix.width(); ++x) pix(x, y) = u(rng) + 1e-3;
        exp.setPsf(ImagePsf::make(pix));
    }
    exp.setPhotoCalib(std::make_shared<const PhotoCalib>(0.1 + u(rng), 0.01 * u(rng)));
    VisitInfo vi;
    vi.exposureTimeS = 15.0 + u(rng);
    vi.darkTimeS = 15.5 + u(rng);
    vi.midExposureMjdTai = 60000.0 + 3000.0 * u(rng);
    vi.boresightRaDec = SpherePoint(Angle::fromRadians(6.2 * u(rng)), Angle::fromRadians(3.0 * u(rng) - 1.5));
    vi.boresightRotAngle = Angle::fromRadians(6.0 * u(rng) - 3.0);
    vi.boresightAirmass = 1.0 + u(rng);
    vi.band = std::string(1, "gri"[seed % 3]);
    vi.physicalFilter = vi.band + "_0" + std::to_string(seed % 7);
    vi.instrument = "LSSTCam-imSim";
    vi.visit = std::int64_t(rng() >> 3);
    vi.dayObs = 20250101 + seed;
    exp.setVisitInfo(vi);
    exp.setDetector(int(seed % 189));
    PropertyList& md = exp.metadata();
    md.set("OBJECT", "field " + std::to_string(seed), "target");
    md.set("SEEING", u(rng), "[arcsec]");
    md.set("NCOMBINE", int(rng() % 100));
    md.set("ISSIM", true);
    md.set("HISTORY", "step one\nstep two");
    md.set("A_VERY_LONG_METADATA_KEY", "a value for a HIERARCH key");
    return exp;
}

std::string dump(const PropertyList& md) {
    std::string out;
    for (const auto& e : md.entries()) out += e.key + " = " + PropertyList::format(e.value) + " / " + e.comment + "\n";
    return out;
}

void expectIdentical(const Exposure& a, const Exposure& b, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(a.xy0(), b.xy0());
    EXPECT_TRUE(bitIdentical(a.image(), b.image()));
    EXPECT_TRUE(bitIdentical(static_cast<const Image<MaskPixel>&>(a.mask()), static_cast<const Image<MaskPixel>&>(b.mask())));
    EXPECT_TRUE(bitIdentical(a.variance(), b.variance()));
    EXPECT_EQ(a.mask().planes(), b.mask().planes());
    ASSERT_EQ(a.hasWcs(), b.hasWcs());
    if (a.hasWcs()) {
        EXPECT_TRUE(*a.wcs() == *b.wcs());
    }
    ASSERT_EQ(a.hasPsf(), b.hasPsf());
    if (a.hasPsf()) {
        EXPECT_TRUE(a.psf()->toRecord() == b.psf()->toRecord());
    }
    ASSERT_EQ(a.hasPhotoCalib(), b.hasPhotoCalib());
    if (a.hasPhotoCalib()) {
        EXPECT_EQ(*a.photoCalib(), *b.photoCalib());
    }
    EXPECT_EQ(a.visitInfo(), b.visitInfo());
    EXPECT_EQ(a.metadata(), b.metadata()) << dump(a.metadata()) << "\n---\n" << dump(b.metadata());
    EXPECT_EQ(a.detector(), b.detector());
}

/// A coadd-like exposure: a patch whose inputs cover only a slanted band (the rest NO_DATA: NaN image,
/// infinite variance, NO_DATA mask, as at a field's edge), noisy float pixels where covered, a few
/// masked pixels, a CoaddPsf of two inputs, a TAN WCS, coadd metadata.
Exposure coaddLikeExposure(unsigned seed, int width = 400, int height = 300, double coveredFraction = 0.15) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> noise(0.0f, 7.5f);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Exposure exp(Box2I({int(rng() % 3000), int(rng() % 3000)}, width, height));
    const MaskPixel noData = exp.mask().planeBitMask("NO_DATA");
    const MaskPixel bad = exp.mask().planeBitMask("BAD") | exp.mask().planeBitMask("INTRP");
    const double slope = 0.5 * (u(rng) - 0.5);
    for (int y = 0; y < height; ++y)
        for (int x = 0; x < width; ++x) {
            const double edge = width * coveredFraction + slope * (y - height / 2.0);
            if (x < edge) {
                exp.image()(x, y) = noise(rng) + (x % 37 == 0 && y % 41 == 0 ? 5000.0f : 0.0f);
                exp.variance()(x, y) = 56.0f + float(u(rng));
                exp.mask()(x, y) = rng() % 500 == 0 ? bad : 0;
            } else {
                exp.image()(x, y) = std::numeric_limits<float>::quiet_NaN();
                exp.variance()(x, y) = std::numeric_limits<float>::infinity();
                exp.mask()(x, y) = noData;
            }
        }
    exp.image()(0, 0) = std::bit_cast<float>(0x7fc12345u);  // a NaN payload must survive
    exp.image()(1, 0) = -0.0f;
    exp.image()(2, 0) = std::numeric_limits<float>::denorm_min();
    exp.setWcs(randomWcs(rng, exp.bbox(), false));
    std::vector<CoaddPsfInput> inputs;  // two inputs on the coadd's own grid, both covering it
    for (int i = 0; i < 2; ++i) inputs.push_back({GaussianPsf::make(1.5 + u(rng)), exp.wcs(), 0.5 + u(rng), exp.bbox(), 1000 + i});
    exp.setPsf(CoaddPsf::make(exp.wcs(), inputs, "lanczos3"));
    exp.setPhotoCalib(std::make_shared<const PhotoCalib>(1.0));
    exp.metadata().set("BUNIT", "nJy", "pixel unit");
    exp.metadata().set("NINPUTS", 2, "calexps contributing to the coadd");
    exp.metadata().set("WARPCOVF", 1.2174, "large-area sum variance / pixel variances");
    return exp;
}

std::uintmax_t fileSize(const fs::path& p) { return fs::file_size(p); }

}  // namespace

TEST(ExposureFits, RoundTripIsBitExactForManySeeds) {
    test::TempDir dir("expfits");
    for (unsigned seed = 0; seed < 24; ++seed) {
        const Exposure exp = randomExposure(seed);
        const fs::path path = dir / ("exp" + std::to_string(seed) + ".fits");
        writeExposure(path, exp);
        const Exposure back = readExposure(path, {.requireWcs = true, .requirePsf = true});
        expectIdentical(exp, back, "seed " + std::to_string(seed));
        // The PSF reproduces the same images.
        EXPECT_TRUE(back.psf()->computeKernelImage({1.0, 2.0}).identical(exp.psf()->computeKernelImage({1.0, 2.0})));
        // The WCS maps pixels identically.
        const Point2D p{exp.xy0().x + 3.5, exp.xy0().y + 7.25};
        EXPECT_EQ(back.wcs()->pixelToSky(p), exp.wcs()->pixelToSky(p));
    }
}

TEST(ExposureFits, HeaderReaderAgreesWithTheFullReader) {
    // readExposureHeader and readExposure share one parser of the primary and IMAGE headers: on every seed
    // (plain and compressed layouts, with and without SIP, both PSF kinds) the header reader returns exactly
    // the non-pixel members the full reader does, and the written ones.
    test::TempDir dir("expfits-hdr");
    for (unsigned seed = 0; seed < 12; ++seed) {
        SCOPED_TRACE("seed " + std::to_string(seed));
        const Exposure exp = randomExposure(seed);
        const fs::path path = dir / ("exp" + std::to_string(seed) + ".fits");
        writeExposure(path, exp, seed % 2 ? ExposureWriteOptions::compressed() : ExposureWriteOptions{});
        const Exposure back = readExposure(path, {.requireWcs = true, .requirePsf = true});
        const ExposureHeader h = readExposureHeader(path, {.requireWcs = true, .requirePsf = true});
        EXPECT_EQ(h.bbox, back.bbox());
        EXPECT_EQ(h.bbox, exp.bbox());
        ASSERT_TRUE(h.wcs && back.hasWcs());
        EXPECT_TRUE(*h.wcs == *back.wcs());
        ASSERT_TRUE(h.psf && back.hasPsf());
        EXPECT_TRUE(h.psf->toRecord() == back.psf()->toRecord());
        ASSERT_TRUE(h.photoCalib && back.hasPhotoCalib());
        EXPECT_EQ(*h.photoCalib, *back.photoCalib());
        EXPECT_EQ(h.visitInfo, back.visitInfo());
        EXPECT_EQ(h.visitInfo, exp.visitInfo());
        EXPECT_EQ(h.metadata, back.metadata()) << dump(h.metadata) << "\n---\n" << dump(back.metadata());
        EXPECT_EQ(h.metadata, exp.metadata());
        EXPECT_EQ(h.detector, back.detector());
        EXPECT_EQ(h.detector, exp.detector());
    }
    // Without a WCS or PSF: null members, or NotFoundError from both readers when required.
    Exposure bare = randomExposure(3);
    bare.setWcs(nullptr);
    bare.setPsf(nullptr);
    const fs::path path = dir / "bare.fits";
    writeExposure(path, bare);
    const ExposureHeader h = readExposureHeader(path);
    EXPECT_FALSE(h.wcs);
    EXPECT_FALSE(h.psf);
    EXPECT_EQ(h.bbox, bare.bbox());
    EXPECT_THROW(readExposureHeader(path, {.requireWcs = true}), NotFoundError);
    EXPECT_THROW(readExposure(path, {.requireWcs = true}), NotFoundError);
    EXPECT_THROW(readExposureHeader(path, {.requirePsf = true}), NotFoundError);
    EXPECT_THROW(readExposure(path, {.requirePsf = true}), NotFoundError);
}

TEST(ExposureFits, CompressedRoundTripIsBitExactForManySeeds) {
    test::TempDir dir("expfits-cmp");
    const ExposureWriteOptions cmp = ExposureWriteOptions::compressed();
    for (unsigned seed = 0; seed < 12; ++seed) {
        const Exposure exp = randomExposure(seed);
        const fs::path path = dir / ("exp" + std::to_string(seed) + ".fits");
        writeExposure(path, exp, cmp);
        expectIdentical(exp, readExposure(path, {.requireWcs = true, .requirePsf = true}), "seed " + std::to_string(seed));
        const Exposure coadd = coaddLikeExposure(seed, 120 + 7 * int(seed), 90 + 5 * int(seed), 0.1 + 0.07 * seed);
        writeExposure(path, coadd, cmp);
        const Exposure back = readExposure(path, {.requireWcs = true, .requirePsf = true});
        expectIdentical(coadd, back, "coadd-like seed " + std::to_string(seed));
        EXPECT_EQ(std::bit_cast<std::uint32_t>(back.image()(0, 0)), 0x7fc12345u);
        const Point2D c{coadd.xy0().x + 0.5 * coadd.width(), coadd.xy0().y + 0.5 * coadd.height()};
        EXPECT_TRUE(back.psf()->computeKernelImage(c).identical(coadd.psf()->computeKernelImage(c)));
    }
    // Each plane on its own, and a view (non-contiguous rows).
    const Exposure exp = coaddLikeExposure(99);
    for (int plane = 0; plane < 3; ++plane) {
        ExposureWriteOptions o;
        (plane == 0 ? o.image : plane == 1 ? o.mask : o.variance) = FitsCompression::Gzip2;
        writeExposure(dir / "one.fits", exp, o);
        expectIdentical(exp, readExposure(dir / "one.fits"), "plane " + std::to_string(plane));
    }
    const Exposure view = exp.subExposure(Box2I({exp.xy0().x + 11, exp.xy0().y + 3}, 101, 77));
    writeExposure(dir / "view.fits", view, cmp);
    expectIdentical(view, readExposure(dir / "view.fits"), "view");
}

TEST(ExposureFits, CompressionShrinksMostlyEmptyCoaddsAndRefusesLossyModes) {
    test::TempDir dir("expfits-size");
    const Exposure exp = coaddLikeExposure(3, 1000, 800, 0.1);  // ~90% NO_DATA
    writeExposure(dir / "plain.fits", exp);
    writeExposure(dir / "cmp.fits", exp, ExposureWriteOptions::compressed());
    const double plain = double(fileSize(dir / "plain.fits")), cmp = double(fileSize(dir / "cmp.fits"));
    std::printf("1000x800 coadd-like exposure, 90%% NO_DATA: %.0f bytes plain, %.0f compressed (%.3f)\n", plain, cmp,
                cmp / plain);
    EXPECT_GT(plain, 12.0 * 1000 * 800);
    EXPECT_LT(cmp, 0.2 * plain);
    expectIdentical(exp, readExposure(dir / "cmp.fits"), "large");

    // A fully covered noisy exposure still round-trips and does not grow by more than the table overhead.
    const Exposure full = coaddLikeExposure(4, 300, 200, 2.0);
    writeExposure(dir / "full.fits", full);
    writeExposure(dir / "fullc.fits", full, ExposureWriteOptions::compressed());
    EXPECT_LT(fileSize(dir / "fullc.fits"), fileSize(dir / "full.fits"));
    expectIdentical(full, readExposure(dir / "fullc.fits"), "full");

    ExposureWriteOptions lossy;
    lossy.image = FitsCompression::Rice;
    EXPECT_THROW(writeExposure(dir / "lossy.fits", exp, lossy), ConfigError);
    EXPECT_FALSE(fs::exists(dir / "lossy.fits"));
    EXPECT_EQ(ExposureWriteOptions(), ExposureWriteOptions());
    EXPECT_FALSE(ExposureWriteOptions() == ExposureWriteOptions::compressed());
}

TEST(ExposureFits, CompressedLayoutKeepsNamesHeadersAndTypes) {
    test::TempDir dir("expfits-cmp-layout");
    const Exposure exp = randomExposure(4);
    const fs::path path = dir / "layout.fits";
    writeExposure(path, exp, ExposureWriteOptions::compressed());
    FitsFile f(path, FitsFile::Mode::Read);
    ASSERT_EQ(f.numHdus(), 5);
    const char* names[] = {"IMAGE", "MASK", "VARIANCE"};
    const int bitpix[] = {-32, 32, -32};
    for (int i = 0; i < 3; ++i) {
        f.moveToHdu(i + 1);
        EXPECT_EQ(f.extname(), names[i]);
        EXPECT_TRUE(f.isImageHdu());
        EXPECT_FALSE(f.isTableHdu());
        EXPECT_TRUE(f.imageInfo().compressed);
        EXPECT_EQ(f.imageInfo().bitpix, bitpix[i]);
        PropertyList md = f.readHeader();
        EXPECT_EQ(md.getString("CTYPE1"), "RA---TAN-SIP");
        EXPECT_EQ(md.getInt("LTV1"), -exp.xy0().x);
        EXPECT_FALSE(md.has("ZIMAGE"));
        EXPECT_FALSE(md.has("ZQUANTIZ"));
    }
    f.moveToHdu(4);
    EXPECT_EQ(f.extname(), "PSF");
    EXPECT_TRUE(f.isTableHdu());
    // The generic single-image reader sees the compressed IMAGE as the first 2-d image.
    const FitsImage fi = readImage(path);
    EXPECT_EQ(fi.hdu, 1);
    EXPECT_TRUE(fi.info.compressed);
    EXPECT_TRUE(bitIdentical(fi.image, exp.image()));
}

TEST(ExposureFits, LayoutFollowsTheDesign) {
    test::TempDir dir("expfits-layout");
    const Exposure exp = randomExposure(4);
    const fs::path path = dir / "layout.fits";
    writeExposure(path, exp);
    FitsFile f(path, FitsFile::Mode::Read);
    ASSERT_EQ(f.numHdus(), 5);
    EXPECT_EQ(f.imageInfo().shape.size(), 0u);  // primary: metadata only
    PropertyList primary = f.readHeader();
    EXPECT_EQ(primary.getDouble("EXPTIME"), exp.visitInfo().exposureTimeS);
    EXPECT_EQ(primary.getDouble("CALIBMN"), exp.photoCalib()->calibrationMean());
    EXPECT_EQ(primary.getInt("DETECTOR"), *exp.detector());
    EXPECT_TRUE(primary.has("DRPVERS"));
    const char* names[] = {"IMAGE", "MASK", "VARIANCE"};
    const int bitpix[] = {-32, 32, -32};
    for (int i = 0; i < 3; ++i) {
        f.moveToHdu(i + 1);
        EXPECT_EQ(f.extname(), names[i]);
        EXPECT_EQ(f.imageInfo().bitpix, bitpix[i]);
        PropertyList md = f.readHeader();
        EXPECT_EQ(md.getString("CTYPE1"), "RA---TAN-SIP");
        EXPECT_EQ(md.getInt("LTV1"), -exp.xy0().x);
        EXPECT_EQ(md.getInt("LTV2"), -exp.xy0().y);
        if (i == 1) {
            for (const auto& [name, bit] : exp.mask().planes()) EXPECT_EQ(md.getInt("MP_" + name), bit) << name;
        }
    }
    f.moveToHdu(4);
    EXPECT_EQ(f.extname(), "PSF");
    EXPECT_TRUE(f.isTableHdu());
    EXPECT_EQ(f.readHeader().getString("PSFTYPE"), "GaussianPsf");
}

TEST(ExposureFits, SubExposureViewAndBareExposureRoundTrip) {
    test::TempDir dir("expfits-view");
    const Exposure exp = randomExposure(7);
    const Box2I box({exp.xy0().x + 3, exp.xy0().y + 5}, exp.width() / 2, exp.height() / 3);
    const Exposure view = exp.subExposure(box);
    ASSERT_FALSE(view.image().isContiguous());
    writeExposure(dir / "view.fits", view);
    expectIdentical(view, readExposure(dir / "view.fits"), "view");

    Exposure bare(Box2I({-5, 9}, 13, 7));
    bare.image().fill(std::numeric_limits<float>::quiet_NaN());
    writeExposure(dir / "bare.fits", bare);
    const Exposure back = readExposure(dir / "bare.fits");
    expectIdentical(bare, back, "bare");
    EXPECT_FALSE(back.hasWcs());
    EXPECT_FALSE(back.hasPsf());
    EXPECT_FALSE(back.hasPhotoCalib());
    EXPECT_FALSE(back.detector());
}

TEST(ExposureFits, OverwriteReplacesAtomicallyAndLeavesNoTempFiles) {
    test::TempDir dir("expfits-over");
    const fs::path path = dir / "calexp.fits";
    writeExposure(path, randomExposure(1));
    const Exposure second = randomExposure(2);
    writeExposure(path, second);
    expectIdentical(second, readExposure(path), "overwritten");
    int files = 0;
    for (const auto& entry : fs::directory_iterator(dir.path())) {
        ++files;
        EXPECT_FALSE(AtomicFile::isTempName(entry.path())) << entry.path();
    }
    EXPECT_EQ(files, 1);
}

TEST(ExposureFits, ReadableByAstropy) {
    const std::string python = test::pythonWith("astropy,numpy");
    if (python.empty()) GTEST_SKIP() << "/usr/bin/python3 with astropy and numpy is not available";
    test::TempDir dir("expfits-astropy");
    Exposure exp = randomExposure(5);  // SIP WCS, xy0 != 0, extra planes, NaNs, image PSF
    ASSERT_TRUE(exp.wcs()->hasSip());
    exp.image()(6, 4) = 123.25f;
    for (const bool compressed : {false, true}) {
        SCOPED_TRACE(compressed ? "tile-compressed" : "plain");
        const fs::path path = dir / (compressed ? "astropy-c.fits" : "astropy.fits");
        writeExposure(path, exp, compressed ? ExposureWriteOptions::compressed() : ExposureWriteOptions());

        // Local (0-based, astropy) pixel positions to test; ours are local + xy0.
        const std::vector<Point2D> local = {{0, 0}, {5.5, 3.25}, {double(exp.width() - 1), double(exp.height() - 1)},
                                            {exp.width() / 2.0, 1.0}};
        std::ostringstream script;
        script.precision(17);
        script << "import sys, warnings\n"
                  "warnings.simplefilter('ignore')\n"
                  "import numpy as np\n"
                  "from astropy.io import fits\n"
                  "from astropy.wcs import WCS\n"
                  "h = fits.open(sys.argv[1])\n"
                  "print('RES names', ','.join(x.name for x in h))\n"
                  "print('RES shape', h['IMAGE'].data.shape[0], h['IMAGE'].data.shape[1], h['IMAGE'].data.dtype.str)\n"
                  "print('RES maskdtype', h['MASK'].data.dtype.str)\n"
                  "print('RES pixel', repr(float(h['IMAGE'].data[4, 6])))\n"
                  "print('RES mask', int(h['MASK'].data[4, 6]))\n"
                  "print('RES var', repr(float(h['VARIANCE'].data[4, 6])))\n"
                  "print('RES nan', int(np.isnan(h['IMAGE'].data).sum()))\n"
                  "mh = h['MASK'].header\n"
                  "for k in mh:\n"
                  "    if k.startswith('MP_'): print('RES plane', k[3:], mh[k])\n"
                  "w = WCS(h['IMAGE'].header)\n";
        for (const auto& p : local) {
            script << "ra, dec = w.all_pix2world(" << p.x << ", " << p.y << ", 0)\n"
                   << "print('RES sky', repr(float(ra)), repr(float(dec)))\n";
        }
        const fs::path scriptPath = dir / "check.py";
        {
            std::ofstream(scriptPath) << script.str();
        }
        std::string out;
        const int rc = test::runCommand(python + " " + scriptPath.string() + " " + path.string(), &out);
        ASSERT_EQ(rc, 0) << out;

        std::istringstream lines(out);
        std::string line;
        std::map<std::string, int> planes;
        std::vector<std::pair<double, double>> sky;
        int nanCount = -1;
        bool sawShape = false, sawPixel = false, sawNames = false;
        while (std::getline(lines, line)) {
            if (line.rfind("RES ", 0) != 0) continue;
            std::istringstream is(line.substr(4));
            std::string tag;
            is >> tag;
            if (tag == "names") {
                std::string names;
                is >> names;
                EXPECT_EQ(names, "PRIMARY,IMAGE,MASK,VARIANCE,PSF");
                sawNames = true;
            } else if (tag == "shape") {
                int rows, cols;
                std::string dtype;
                is >> rows >> cols >> dtype;
                EXPECT_EQ(rows, exp.height());
                EXPECT_EQ(cols, exp.width());
                EXPECT_EQ(dtype.substr(1), "f4");  // astropy gives native order for compressed HDUs
                sawShape = true;
            } else if (tag == "maskdtype") {
                std::string dtype;
                is >> dtype;
                EXPECT_EQ(dtype.substr(1), "i4");
            } else if (tag == "pixel") {
                double v;
                is >> v;
                EXPECT_EQ(float(v), exp.image()(6, 4));
                sawPixel = true;
            } else if (tag == "mask") {
                int m;
                is >> m;
                EXPECT_EQ(m, exp.mask()(6, 4));
            } else if (tag == "var") {
                double v;
                is >> v;
                EXPECT_EQ(float(v), exp.variance()(6, 4));
            } else if (tag == "nan") {
                is >> nanCount;
            } else if (tag == "plane") {
                std::string name;
                int bit;
                is >> name >> bit;
                planes[name] = bit;
            } else if (tag == "sky") {
                double ra, dec;
                is >> ra >> dec;
                sky.emplace_back(ra, dec);
            }
        }
        EXPECT_TRUE(sawNames && sawShape && sawPixel) << out;
        int expectedNan = 0;
        for (int y = 0; y < exp.height(); ++y)
            for (int x = 0; x < exp.width(); ++x) expectedNan += std::isnan(exp.image()(x, y));
        EXPECT_EQ(nanCount, expectedNan);
        std::map<std::string, int> ours(exp.mask().planes().begin(), exp.mask().planes().end());
        EXPECT_EQ(planes, ours);
        ASSERT_EQ(sky.size(), local.size()) << out;
        for (std::size_t i = 0; i < local.size(); ++i) {
            const Point2D parent{local[i].x + exp.xy0().x, local[i].y + exp.xy0().y};
            const SpherePoint mine = exp.wcs()->pixelToSky(parent);
            const SpherePoint theirs = SpherePoint::fromDegrees(sky[i].first, sky[i].second);
            EXPECT_LT(mine.separation(theirs).asArcseconds(), 1e-6) << "pixel " << i;
        }
    }
}

// ---- single images (measure-image's read path)

namespace {

/// A noisy float image with NaN, +-inf and -0.0 pixels sprinkled in, written as the only image HDU.
ImageF writeSingleImage(const fs::path& path, std::uint64_t seed, Box2I box) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> g(500.0f, 20.0f);
    std::uniform_int_distribution<int> pick(0, 99);
    ImageF img(box);
    for (int y = 0; y < img.height(); ++y)
        for (int x = 0; x < img.width(); ++x) {
            const int p = pick(rng);
            img(x, y) = p == 0   ? std::numeric_limits<float>::quiet_NaN()
                        : p == 1 ? std::numeric_limits<float>::infinity()
                        : p == 2 ? -std::numeric_limits<float>::infinity()
                        : p == 3 ? -0.0f
                                 : g(rng);
        }
    FitsFile f(path, FitsFile::Mode::Create);
    f.writeImage(img);
    f.close();
    return img;
}

}  // namespace

TEST(ExposureFits, ImageAsExposureMatchesTheReaderPlusUniformNoise) {
    test::TempDir dir;
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        const Box2I box({0, 0}, 37 + int(seed) * 13, 29 + int(seed) * 7);
        const fs::path path = dir / ("single" + std::to_string(seed) + ".fits");
        const ImageF truth = writeSingleImage(path, seed, box);
        const float var = 17.25f * float(seed);
        std::int64_t finite = -1;
        const Exposure e = imageAsExposure(readImage(path), var, &finite);
        // The reference: the generic reader, then the uniform noise on the finite pixels (what measure-image did).
        const Exposure r = readImageAsExposure(path);
        const MaskPixel noData = r.mask().planeBitMask("NO_DATA");
        std::int64_t expectFinite = 0;
        ASSERT_EQ(e.bbox(), box);
        EXPECT_TRUE(bitIdentical(e.image(), truth));
        EXPECT_TRUE(bitIdentical(e.image(), r.image()));
        EXPECT_EQ(e.mask().planes(), r.mask().planes());
        for (int y = 0; y < box.height(); ++y)
            for (int x = 0; x < box.width(); ++x) {
                const bool ok = std::isfinite(truth(x, y));
                expectFinite += ok;
                EXPECT_EQ(e.mask()(x, y), ok ? 0 : noData);
                EXPECT_EQ(e.mask()(x, y), r.mask()(x, y));
                EXPECT_EQ(e.variance()(x, y), ok ? var : std::numeric_limits<float>::infinity());
                EXPECT_TRUE(std::isnan(r.variance()(x, y)));  // no weight map: unknown
            }
        EXPECT_EQ(finite, expectFinite);
    }
}

TEST(ExposureFits, ReadImageAsExposureTakesTheWeightPlaneItself) {
    test::TempDir dir;
    const Box2I box({0, 0}, 61, 45);
    const fs::path image = dir / "image.fits", weight = dir / "weight.fits";
    writeSingleImage(image, 7, box);
    std::mt19937_64 rng(8);
    std::uniform_real_distribution<float> u(-0.1f, 2.0f);
    ImageF w(box);
    for (int y = 0; y < box.height(); ++y)
        for (int x = 0; x < box.width(); ++x) w(x, y) = u(rng);  // some <= 0: infinite variance, NO_DATA
    w(3, 4) = std::numeric_limits<float>::quiet_NaN();
    {
        FitsFile f(weight, FitsFile::Mode::Create);
        PropertyList md;
        md.set("LTV1", -100, "");  // the weight's own origin does not move the exposure
        f.writeImage(w, "", md);
        f.close();
    }
    for (WeightKind kind : {WeightKind::InverseVariance, WeightKind::Variance, WeightKind::Sigma}) {
        const Exposure e = readImageAsExposure(image, -1, weight, -1, kind);
        const ImageF v = readVariance(weight, -1, kind);
        const MaskPixel noData = e.mask().planeBitMask("NO_DATA");
        EXPECT_EQ(e.bbox(), box);
        EXPECT_EQ(e.variance().bbox(), box);
        for (int y = 0; y < box.height(); ++y)
            for (int x = 0; x < box.width(); ++x) {
                const float vv = v(x, y);
                EXPECT_EQ(std::memcmp(&e.variance()(x, y), &vv, sizeof(float)), 0);
                const bool good = std::isfinite(e.image()(x, y)) && vv > 0.0f && std::isfinite(vv);
                EXPECT_EQ(e.mask()(x, y), good ? 0 : noData);
            }
    }
    // A weight map of another shape is refused, naming the weight file.
    const fs::path small = dir / "small.fits";
    {
        FitsFile f(small, FitsFile::Mode::Create);
        f.writeImage(ImageF(10, 10, 1.0f));
        f.close();
    }
    EXPECT_THROW(readImageAsExposure(image, -1, small, -1, WeightKind::Variance), InvalidInputError);
}
