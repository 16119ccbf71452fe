#include <gtest/gtest.h>

#include <fitsio.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "core/Error.h"
#include "io/ExposureFits.h"
#include "io/FitsFile.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

template <typename T>
bool bitIdentical(const Image<T>& a, const Image<T>& b) {
    if (a.width() != b.width() || a.height() != b.height()) return false;
    for (int y = 0; y < a.height(); ++y)
        if (std::memcmp(a.row(y), b.row(y), sizeof(T) * std::size_t(a.width())) != 0) return false;
    return true;
}

double bitsToDouble(std::uint64_t bits) {
    double d;
    std::memcpy(&d, &bits, sizeof d);
    return d;
}

}  // namespace

TEST(FitsFile, HeaderRoundTripKeepsTypesValuesAndComments) {
    test::TempDir dir("fits-header");
    const fs::path path = dir / "h.fits";
    PropertyList md;
    md.set("FLAG", true, "a logical");
    md.set("NOFLAG", false);
    md.set("BIGINT", PropertyList::Value(std::int64_t(9007199254740993)), "2^53 + 1, not a double");
    md.set("NEGINT", PropertyList::Value(std::numeric_limits<std::int64_t>::min() + 1));
    md.set("TENTH", 0.1, "not exact in binary");
    md.set("THREE", 3.0, "a whole double stays a double");
    md.set("HUGE", 1.7976931348623157e308);
    md.set("TINY", 4.9406564584124654e-324);
    md.set("NEGZERO", -0.0);
    md.set("UNDEF", std::numeric_limits<double>::quiet_NaN(), "no value");
    md.set("QUOTES", "it's \"quoted\"", "with quotes");
    md.set("EMPTY", "");
    md.set("LEADSP", "  two leading spaces");
    std::string longText;
    for (int i = 0; i < 40; ++i) longText += "word" + std::to_string(i) + " ";
    longText += "end";
    md.set("LONGSTR", longText, "continued over several cards");
    md.set("MP_DETECTED_NEGATIVE", 6, "longer than 8: HIERARCH");
    md.set("HIERARCH.KEY.WITH.DOTS", 1.5);
    md.set("COMMENT", "first comment line\nsecond comment line");
    md.set("HISTORY", "made by a test");
    std::mt19937_64 rng(1234);
    for (int i = 0; i < 100; ++i) {
        double d;
        do d = bitsToDouble(rng()); while (!std::isfinite(d));
        md.set("RND" + std::to_string(i), d);
    }
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu({}, md);
        f.close();
    }
    FitsFile f(path, FitsFile::Mode::Read);
    PropertyList back = f.readHeader();
    ASSERT_EQ(back.size(), md.size());
    for (const auto& e : md.entries()) {
        ASSERT_TRUE(back.has(e.key)) << e.key;
        const auto& v = back.get(e.key);
        EXPECT_EQ(v.index(), e.value.index()) << e.key;
        if (e.key == "UNDEF") {
            EXPECT_TRUE(std::isnan(std::get<double>(v)));
        } else if (const double* d = std::get_if<double>(&e.value)) {
            // Bit-exact, including the sign of zero.
            double r = std::get<double>(v);
            EXPECT_EQ(std::memcmp(&r, d, sizeof r), 0) << e.key << " " << PropertyList::format(v);
        } else {
            EXPECT_EQ(v, e.value) << e.key;
        }
        EXPECT_EQ(back.comment(e.key), e.comment) << e.key;
    }
    // Structural keys are not metadata; without stripping they are there.
    EXPECT_FALSE(back.has("BITPIX"));
    EXPECT_TRUE(f.readHeader(false).has("BITPIX"));
}

TEST(FitsFile, LowerCaseKeysAreUpperCasedAndBadKeysRejected) {
    test::TempDir dir("fits-keys");
    FitsFile f(dir / "k.fits", FitsFile::Mode::Create);
    PropertyList md;
    md.set("lower", 1);
    f.writeEmptyHdu({}, md);
    EXPECT_TRUE(f.readHeader().has("LOWER"));
    PropertyList bad;
    bad.set("A=B", 1);
    EXPECT_THROW(f.writeHeader(bad), InvalidInputError);
    PropertyList nonAscii;
    nonAscii.set("NAME", "caf\xc3\xa9");
    try {
        f.writeHeader(nonAscii);
        FAIL() << "non-ASCII value accepted";
    } catch (const InvalidInputError& e) {
        EXPECT_EQ(e.file(), (dir / "k.fits").string());
    }
}

TEST(FitsFile, ImagesUseTheirNaturalBitpixAndRoundTripExactly) {
    test::TempDir dir("fits-img");
    const fs::path path = dir / "img.fits";
    std::mt19937 rng(5);
    ImageF f32(17, 11);
    ImageD f64(9, 4);
    ImageI i32(5, 6);
    ImageU u16(8, 3);
    for (int y = 0; y < f32.height(); ++y)
        for (int x = 0; x < f32.width(); ++x) f32(x, y) = std::bit_cast<float>(std::uint32_t(rng()) & 0x7f7fffffu);
    f32(3, 3) = std::numeric_limits<float>::quiet_NaN();
    f32(4, 3) = -std::numeric_limits<float>::infinity();
    f32(5, 3) = std::bit_cast<float>(0x7fc01234u);  // NaN with a payload
    for (int y = 0; y < f64.height(); ++y)
        for (int x = 0; x < f64.width(); ++x) f64(x, y) = std::ldexp(double(rng()), -int(rng() % 60));
    for (int y = 0; y < i32.height(); ++y)
        for (int x = 0; x < i32.width(); ++x) i32(x, y) = std::int32_t(rng());
    i32(0, 0) = std::numeric_limits<std::int32_t>::min();
    for (int y = 0; y < u16.height(); ++y)
        for (int x = 0; x < u16.width(); ++x) u16(x, y) = std::uint16_t(rng());
    u16(0, 0) = 0;
    u16(1, 0) = 65535;
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(f32, "F32");
        f.writeImage(f64, "F64");
        f.writeImage(i32, "I32");
        f.writeImage(u16, "U16");
        // A non-contiguous view is written row by row.
        ImageF big(40, 30);
        for (int y = 0; y < 30; ++y)
            for (int x = 0; x < 40; ++x) big(x, y) = float(x + 1000 * y);
        f.writeImage(big.subImage(Box2I({5, 7}, 17, 11)), "VIEW");
        f.close();
    }
    FitsFile f(path, FitsFile::Mode::Read);
    EXPECT_EQ(f.numHdus(), 6);
    f.moveToHdu("F32");
    EXPECT_EQ(f.imageInfo().bitpix, -32);
    EXPECT_TRUE(bitIdentical(f.readImage<float>(), f32));
    f.moveToHdu("f64");  // EXTNAME matching is case-insensitive
    EXPECT_EQ(f.imageInfo().bitpix, -64);
    EXPECT_TRUE(bitIdentical(f.readImage<double>(), f64));
    f.moveToHdu("I32");
    EXPECT_EQ(f.imageInfo().bitpix, 32);
    EXPECT_TRUE(bitIdentical(f.readImage<std::int32_t>(), i32));
    f.moveToHdu("U16");
    EXPECT_EQ(f.imageInfo().bitpix, 16);            // stored as int16 ...
    EXPECT_EQ(f.imageInfo().equivalentBitpix, 20);  // ... with BZERO = 32768: USHORT_IMG
    EXPECT_EQ(f.readHeader(false).getDouble("BZERO"), 32768.0);
    EXPECT_TRUE(bitIdentical(f.readImage<std::uint16_t>(), u16));
    // Conversions on read: uint16 -> float exact; int32 overflow into uint16 is an error, not garbage.
    ImageF asFloat = f.readImage<float>();
    EXPECT_EQ(asFloat(1, 0), 65535.0f);
    f.moveToHdu("I32");
    EXPECT_THROW(f.readImage<std::uint16_t>(), FitsError);
    f.moveToHdu(5);
    EXPECT_EQ(f.extname(), "VIEW");
    ImageF view = f.readImage<float>();
    EXPECT_EQ(view(0, 0), 5.0f + 7000.0f);
    EXPECT_EQ(view(16, 10), 21.0f + 17000.0f);
}

TEST(FitsFile, HduNavigationErrorsAreTypedAndNameTheFile) {
    test::TempDir dir("fits-nav");
    const fs::path path = dir / "nav.fits";
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(3, 3, 1.0f), "IMAGE");
    }
    FitsFile f(path, FitsFile::Mode::Read);
    EXPECT_TRUE(f.hasHdu("IMAGE"));
    EXPECT_FALSE(f.hasHdu("MASK"));
    EXPECT_EQ(f.currentHdu(), 0);  // hasHdu does not move
    try {
        f.moveToHdu("MASK");
        FAIL();
    } catch (const NotFoundError& e) {
        EXPECT_NE(std::string(e.what()).find("MASK"), std::string::npos);
        EXPECT_EQ(e.file(), path.string());
    }
    EXPECT_THROW(f.moveToHdu(2), NotFoundError);
    EXPECT_THROW(f.moveToHdu(-1), NotFoundError);
    f.moveToHdu(1);
    EXPECT_EQ(f.describeHdu(), "HDU 1 (EXTNAME='IMAGE')");
    // Creating over an existing file is refused.
    EXPECT_THROW(FitsFile(path, FitsFile::Mode::Create), FitsError);
    EXPECT_THROW(FitsFile(dir / "absent.fits", FitsFile::Mode::Read), FitsError);
}

TEST(FitsFile, IsMoveOnlyAndClosesOnDestruction) {
    test::TempDir dir("fits-move");
    const fs::path path = dir / "m.fits";
    FitsFile a(path, FitsFile::Mode::Create);
    a.writeImage(ImageI(2, 2, 7));
    FitsFile b(std::move(a));
    EXPECT_FALSE(a.isOpen());
    EXPECT_TRUE(b.isOpen());
    FitsFile c = std::move(b);
    c.close();
    EXPECT_FALSE(c.isOpen());
    EXPECT_THROW(c.numHdus(), LogicError);
    FitsFile r(path, FitsFile::Mode::Read);
    EXPECT_EQ(r.readImage<std::int32_t>()(1, 1), 7);
    static_assert(!std::is_copy_constructible_v<FitsFile>);
}

TEST(FitsFile, BinaryTablesWithScalarVectorAndStringColumns) {
    test::TempDir dir("fits-table");
    const fs::path path = dir / "t.fits";
    const std::vector<double> ra = {10.5, 20.25, std::nan(""), -0.0};
    const std::vector<std::int64_t> id = {1, std::numeric_limits<std::int64_t>::max(), -5, 0};
    const std::vector<float> flux = {1.5f, 2.5f, 3.5f, 4.5f};
    std::vector<double> vec(4 * 3);
    for (std::size_t i = 0; i < vec.size(); ++i) vec[i] = 0.5 * double(i);
    const std::vector<std::string> names = {"alpha", "beta gamma", "", "it's"};
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        PropertyList hdr;
        hdr.set("REFCAT", "test");
        f.createTable({{"ra", "1D", "deg"}, {"id", "1K", ""}, {"flux", "1E", "nJy"}, {"vec", "3D", ""},
                       {"name", "12A", ""}, {"empty", "0D", ""}},
                      4, "CAT", hdr);
        f.writeColumn<double>("ra", ra);
        f.writeColumn<std::int64_t>("id", id);
        f.writeColumn<float>("flux", flux);
        f.writeColumn<double>("vec", vec);
        f.writeStringColumn("name", names);
        EXPECT_THROW(f.writeColumn<double>("vec", std::vector<double>{1.0, 2.0}), LogicError);
    }
    FitsFile f(path, FitsFile::Mode::Read);
    f.moveToHdu("CAT");
    EXPECT_TRUE(f.isTableHdu());
    EXPECT_EQ(f.numRows(), 4);
    EXPECT_EQ(f.readHeader().getString("REFCAT"), "test");
    auto cols = f.columns();
    ASSERT_EQ(cols.size(), 6u);
    EXPECT_EQ(f.columnInfo("VEC").repeat, 3);
    EXPECT_EQ(f.columnInfo("empty").repeat, 0);
    auto raBack = f.readColumn<double>("ra");
    ASSERT_EQ(raBack.size(), 4u);
    EXPECT_EQ(std::memcmp(raBack.data(), ra.data(), 4 * sizeof(double)), 0);  // NaN and -0 kept
    EXPECT_EQ(f.readColumn<std::int64_t>("id"), id);
    EXPECT_EQ(f.readColumn<float>("flux"), flux);
    EXPECT_EQ(f.readColumn<double>("flux")[2], 3.5);  // converted
    EXPECT_EQ(f.readColumn<double>("vec"), vec);
    EXPECT_TRUE(f.readColumn<double>("empty").empty());
    EXPECT_EQ(f.readStringColumn("name"), names);
    EXPECT_THROW(f.readColumn<double>("nope"), NotFoundError);
    EXPECT_THROW(f.readColumn<double>("name"), InvalidInputError);
    f.moveToHdu(0);
    EXPECT_THROW(f.columns(), InvalidInputError);
}

TEST(FitsFile, CfitsioErrorsBecomeFitsErrorsWithStatusFileAndHdu) {
    test::TempDir dir("fits-err");
    const fs::path path = dir / "e.fits";
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(4, 4), "IMAGE");
    }
    FitsFile f(path, FitsFile::Mode::Read);
    f.moveToHdu("IMAGE");
    PropertyList one;
    one.set("X", 1);
    EXPECT_THROW(f.writeHeader(one), FitsError);  // opened read-only
    // A CFITSIO failure (reading into a type the values do not fit) carries status, file and HDU.
    {
        FitsFile w(dir / "big.fits", FitsFile::Mode::Create);
        w.writeImage(ImageI(3, 3, 1 << 20), "BIG");
    }
    FitsFile g(dir / "big.fits", FitsFile::Mode::Read);
    g.moveToHdu(0);
    try {
        g.readImage<std::uint16_t>();
        FAIL();
    } catch (const FitsError& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("CFITSIO status 412"), std::string::npos) << msg;  // NUM_OVERFLOW
        EXPECT_NE(msg.find("HDU 0"), std::string::npos) << msg;
        EXPECT_NE(msg.find("EXTNAME='BIG'"), std::string::npos) << msg;
        EXPECT_EQ(e.file(), (dir / "big.fits").string());
    }
}

TEST(FitsFile, ReadWriteModeUpdatesKeysInPlace) {
    test::TempDir dir("fits-rw");
    const fs::path path = dir / "rw.fits";
    {
        FitsFile f(path, FitsFile::Mode::Create);
        PropertyList md;
        md.set("GAIN", 1.0);
        f.writeEmptyHdu({}, md);
    }
    {
        FitsFile f(path, FitsFile::Mode::ReadWrite);
        PropertyList md;
        md.set("GAIN", 2.5, "updated");
        f.writeHeader(md);
        f.close();
    }
    FitsFile f(path, FitsFile::Mode::Read);
    PropertyList md = f.readHeader();
    EXPECT_EQ(md.getDouble("GAIN"), 2.5);
    EXPECT_EQ(md.comment("GAIN"), "updated");
    EXPECT_EQ(md.size(), 1u);
}

TEST(FitsFile, TileCompressedImagesReadTransparently) {
    test::TempDir dir("fits-cmp");
    const fs::path path = dir / "c.fits";
    ImageI img(50, 40);
    for (int y = 0; y < 40; ++y)
        for (int x = 0; x < 50; ++x) img(x, y) = (x * 37 + y * 101) % 5000 - 1000;
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        int status = 0;
        fits_set_compression_type(static_cast<fitsfile*>(f.handle()), RICE_1, &status);
        ASSERT_EQ(status, 0);
        PropertyList md;
        md.set("OBJECT", "compressed");
        f.writeImage(img, "SCI", md);
        f.close();
    }
    FitsFile f(path, FitsFile::Mode::Read);
    f.moveToHdu("SCI");
    EXPECT_TRUE(f.isImageHdu());
    EXPECT_FALSE(f.isTableHdu());
    EXPECT_TRUE(f.imageInfo().compressed);
    EXPECT_EQ(f.imageInfo().bitpix, 32);
    EXPECT_TRUE(bitIdentical(f.readImage<std::int32_t>(), img));
    PropertyList md = f.readHeader();  // the image header, not the table's
    EXPECT_EQ(md.getString("OBJECT"), "compressed");
    EXPECT_FALSE(md.has("ZIMAGE"));
    EXPECT_FALSE(md.has("TTYPE1"));
    // readImage finds it as the first 2-d image.
    FitsImage fi = readImage(path);
    EXPECT_EQ(fi.hdu, 1);
    EXPECT_EQ(fi.image(10, 20), float(img(10, 20)));
}

TEST(FitsFile, WriteImageTileCompressesLosslessly) {
    test::TempDir dir("fits-wcmp");
    const fs::path path = dir / "w.fits";
    std::mt19937_64 rng(11);
    std::normal_distribution<double> g(0.0, 100.0);
    ImageF f32(61, 37);
    ImageD f64(33, 20);
    ImageI i32(70, 45);
    Image<std::uint16_t> u16(25, 19);
    for (int y = 0; y < f32.height(); ++y)
        for (int x = 0; x < f32.width(); ++x) f32(x, y) = x > 40 ? std::numeric_limits<float>::quiet_NaN() : float(g(rng));
    f32(0, 0) = std::bit_cast<float>(0xffc00abcu);
    f32(1, 0) = std::numeric_limits<float>::infinity();
    f32(2, 0) = -0.0f;
    f32(3, 0) = std::numeric_limits<float>::denorm_min();
    for (int y = 0; y < f64.height(); ++y)
        for (int x = 0; x < f64.width(); ++x) f64(x, y) = g(rng) * 1e-200;
    f64(5, 5) = bitsToDouble(0x7ff8000000012345ull);
    for (int y = 0; y < i32.height(); ++y)
        for (int x = 0; x < i32.width(); ++x) i32(x, y) = y < 30 ? 256 : std::int32_t(rng() & 0x7fffffff) - 0x40000000;
    for (int y = 0; y < u16.height(); ++y)
        for (int x = 0; x < u16.width(); ++x) u16(x, y) = std::uint16_t(rng());
    {
        FitsFile f(path, FitsFile::Mode::Create);
        PropertyList md;
        md.set("OBJECT", "compressed float");
        EXPECT_THROW(f.writeImage(f32, "PRIM", md, FitsCompression::Gzip2), LogicError);  // not as the primary
        f.writeEmptyHdu();
        f.writeImage(f32, "F32", md, FitsCompression::Gzip2);
        f.writeImage(f64, "F64", {}, FitsCompression::Gzip2);
        f.writeImage(i32, "I32R", {}, FitsCompression::Rice);
        f.writeImage(i32, "I32G", {}, FitsCompression::Gzip2);
        f.writeImage(u16, "U16R", {}, FitsCompression::Rice);
        EXPECT_THROW(f.writeImage(f32, "F32R", {}, FitsCompression::Rice), InvalidInputError);
        f.writeImage(f32, "PLAIN");  // compression does not carry over to later HDUs
        f.close();
    }
    FitsFile f(path, FitsFile::Mode::Read);
    EXPECT_EQ(f.numHdus(), 7);
    auto cmptype = [&] {
        char v[FLEN_VALUE] = {0};
        int st = 0;
        fits_read_key_str(static_cast<fitsfile*>(f.handle()), "ZCMPTYPE", v, nullptr, &st);
        return st == 0 ? std::string(v) : std::string("(none)");
    };
    auto expectCompressed = [&](const std::string& name, int bitpix, bool compressed) {
        f.moveToHdu(name);
        EXPECT_TRUE(f.isImageHdu()) << name;
        EXPECT_EQ(f.imageInfo().compressed, compressed) << name;
        EXPECT_EQ(f.imageInfo().bitpix, bitpix) << name;
    };
    expectCompressed("F32", -32, true);
    EXPECT_TRUE(bitIdentical(f.readImage<float>(), f32));
    EXPECT_EQ(f.readHeader().getString("OBJECT"), "compressed float");
    EXPECT_FALSE(f.readHeader().has("ZCMPTYPE"));
    EXPECT_EQ(cmptype(), "GZIP_2");
    expectCompressed("F64", -64, true);
    EXPECT_TRUE(bitIdentical(f.readImage<double>(), f64));
    expectCompressed("I32R", 32, true);
    EXPECT_EQ(cmptype(), "RICE_1");
    EXPECT_TRUE(bitIdentical(f.readImage<std::int32_t>(), i32));
    expectCompressed("I32G", 32, true);
    EXPECT_TRUE(bitIdentical(f.readImage<std::int32_t>(), i32));
    expectCompressed("U16R", 16, true);
    EXPECT_TRUE(bitIdentical(f.readImage<std::uint16_t>(), u16));
    expectCompressed("PLAIN", -32, false);
    EXPECT_TRUE(bitIdentical(f.readImage<float>(), f32));
}

// ---------------------------------------------------------------- real files

class RealFits : public ::testing::Test {
protected:
    void SetUp() override {
        root_ = test::realDataDir();
        if (root_.empty()) GTEST_SKIP() << "no real data directory (DRP_SHARED_DATA/real)";
    }
    fs::path file(const std::string& rel) {
        fs::path p = root_ / rel;
        if (!fs::exists(p)) ADD_FAILURE() << "missing real file " << p;
        return p;
    }
    fs::path root_;
};

// Expected pixel values were read independently with astropy (data[y, x]).
TEST_F(RealFits, Int16PrimaryImage) {
    FitsImage img = readImage(file("iraf_devpix/M51_devpix.fits"));
    EXPECT_EQ(img.hdu, 0);
    EXPECT_EQ(img.info.bitpix, 16);
    EXPECT_EQ(img.image.width(), 512);
    EXPECT_EQ(img.image.height(), 512);
    EXPECT_EQ(img.image(20, 10), 41.0f);
    EXPECT_EQ(img.image(300, 255), 254.0f);
}

TEST_F(RealFits, Uint16ViaBzeroAndScaledInt16) {
    FitsImage u = readImage(file("raw_isr/saao1m_a8280271.fits"));
    EXPECT_EQ(u.info.bitpix, 16);
    EXPECT_EQ(u.info.equivalentBitpix, 20);  // uint16 through BZERO = 32768
    EXPECT_EQ(u.image.width(), 536);
    EXPECT_EQ(u.image.height(), 520);
    EXPECT_EQ(u.image(0, 0), 187.0f);
    EXPECT_EQ(u.image(100, 200), 306.0f);
    EXPECT_EQ(u.image(535, 519), 216.0f);
    EXPECT_FALSE(u.wcs);  // this raw frame has no WCS
    EXPECT_FALSE(u.wcsProblem.empty());

    FitsImage s = readImage(file("sextractor_ref/image.fits"));  // int16 with BSCALE/BZERO
    EXPECT_EQ(s.info.bitpix, 16);
    EXPECT_EQ(s.info.equivalentBitpix, -32);
    EXPECT_FLOAT_EQ(s.image(0, 0), 7010.5156f);
    EXPECT_FLOAT_EQ(s.image(100, 200), 6759.16f);
    EXPECT_FALSE(s.metadata.has("BSCALE"));  // applied, not metadata
}

TEST_F(RealFits, Float64AndMultiExtensionFloat32AndInt32) {
    FitsImage d = readImage(file("diffim/sfft_decam_i/input_data/DEC-OBS04a.mini.fits"));
    EXPECT_EQ(d.info.bitpix, -64);
    EXPECT_EQ(d.image(0, 0), -81.13232421875f);
    EXPECT_EQ(d.image(100, 200), -3.5205078125f);

    const std::string base = "legacysurvey/testcase3/images/decam/CP/V4.8.2a/CP20140818/c4d_140818_232043_";
    FitsImage ooi = readImage(file(base + "ooi_z_ls9.N12.fits"));
    EXPECT_EQ(ooi.hdu, 1);  // the primary holds no data
    EXPECT_EQ(ooi.info.bitpix, -32);
    EXPECT_EQ(ooi.image.width(), 41);
    EXPECT_EQ(ooi.image.height(), 51);
    EXPECT_FLOAT_EQ(ooi.image(7, 5), 2883.3271f);
    EXPECT_FLOAT_EQ(ooi.image(30, 20), 2954.787f);
    EXPECT_EQ(ooi.metadata.getString("EXTNAME"), "N12");
    EXPECT_EQ(ooi.metadata.getDouble("EXPTIME"), 118.0);  // inherited from the primary header
    EXPECT_FALSE(ooi.wcs);  // TPV is not TAN-SIP: reported, not guessed
    EXPECT_FALSE(ooi.wcsProblem.empty());

    FitsImage ood = readImage(file(base + "ood_z_ls9.N12.fits"), 1);
    EXPECT_EQ(ood.info.bitpix, 32);
    EXPECT_EQ(ood.image(7, 5), 0.0f);

    // Image + inverse-variance weight as an Exposure.
    Exposure e = readImageAsExposure(file(base + "ooi_z_ls9.N12.fits"), -1, file(base + "oow_z_ls9.N12.fits"), 1,
                                     WeightKind::InverseVariance);
    EXPECT_NEAR(e.variance()(7, 5), 1.0 / 0.0013294178, 1e-2);
    EXPECT_EQ(e.visitInfo().exposureTimeS, 118.0);
    EXPECT_EQ(e.mask().countBits(e.mask().planeBitMask("NO_DATA")), 0);
}

TEST_F(RealFits, SipWcsSample) {
    FitsImage img = readImage(file("wcs_images/galsim_sipsample.fits"));
    EXPECT_EQ(img.info.bitpix, -32);
    ASSERT_TRUE(img.wcs) << img.wcsProblem;
    EXPECT_TRUE(img.wcs->hasSip());
}

TEST_F(RealFits, ReferenceCatalogTable) {
    FitsFile f(file("refcat/brightstars_hip_astrometrynet.fits"), FitsFile::Mode::Read);
    f.moveToHdu(1);
    EXPECT_EQ(f.numRows(), 3344);
    auto hip = f.readColumn<std::int64_t>("hip");
    auto ra = f.readColumn<double>("ra");
    auto vmag = f.readColumn<float>("vmag");
    ASSERT_EQ(hip.size(), 3344u);
    EXPECT_EQ(hip[0], 677);
    EXPECT_EQ(hip.back(), 105966);
    EXPECT_EQ(ra[0], 2.09691071340105);
    EXPECT_EQ(ra.back(), 321.916906145056);
    EXPECT_FLOAT_EQ(vmag[0], 2.07f);
    EXPECT_EQ(f.columnInfo("name1").repeat, 34);
}

TEST_F(RealFits, LsstReferenceCatalogShardWithBitFlags) {
    FitsFile f(file("refcat/sdss_dr_meas_astrom/ref_cats/cal_ref_cat/903253.fits"), FitsFile::Mode::Read);
    f.moveToHdu(1);
    ASSERT_EQ(f.numRows(), 2);
    EXPECT_EQ(f.readColumn<std::int64_t>("id")[0], 1237661416602927671LL);
    EXPECT_EQ(f.readColumn<double>("coord_ra")[0], 3.7710392174680867);
    EXPECT_EQ(f.readColumn<double>("coord_dec")[0], 0.9180572056088903);
    const auto flags = f.readColumn<std::uint8_t>("flags");  // '2X': two bits per row
    EXPECT_EQ(flags, (std::vector<std::uint8_t>{0, 1, 0, 1}));  // astropy: [[False, True], [False, True]]
}
