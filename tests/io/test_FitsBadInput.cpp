// Bad input to the FITS layer: every case gives a typed drp::Error naming the file (and the HDU where
// one is involved), never a crash or a silently wrong result; failed writes leave nothing behind.
#include <gtest/gtest.h>

#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/Error.h"
#include "io/AtomicFile.h"
#include "io/ExposureFits.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

Exposure smallExposure(bool withPsf = true) {
    Exposure exp(Box2I({10, 20}, 64, 48));
    for (int y = 0; y < exp.height(); ++y)
        for (int x = 0; x < exp.width(); ++x) {
            exp.image()(x, y) = float(x * 0.5 + y);
            exp.variance()(x, y) = 1.0f + float(x % 3);
            exp.mask()(x, y) = (x + y) % 7;
        }
    exp.setWcs(Wcs::makeTan({40, 40}, SpherePoint::fromDegrees(10.0, -45.0), 0.2 * arcseconds, 0.0 * degrees));
    if (withPsf) exp.setPsf(GaussianPsf::make(1.7));
    return exp;
}

std::string readBytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}

void writeBytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

/// Files in `dir` other than `keep` (temp files of failed writes would show up here).
std::vector<std::string> strayFiles(const fs::path& dir, const std::vector<std::string>& keep) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        const std::string name = e.path().filename().string();
        if (std::find(keep.begin(), keep.end(), name) == keep.end()) out.push_back(name);
    }
    return out;
}

/// Run `fn`, expecting a drp::Error of type E whose file() is `file` and whose text contains each of `words`.
template <typename E, typename Fn>
void expectError(Fn&& fn, const fs::path& file, std::initializer_list<std::string> words = {}) {
    try {
        fn();
        ADD_FAILURE() << "no exception for " << file;
    } catch (const E& e) {
        EXPECT_EQ(e.file(), file.string()) << e.what();
        const std::string msg = e.what();
        for (const auto& w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' not in: " << msg;
    } catch (const std::exception& e) {
        ADD_FAILURE() << "wrong exception type: " << e.what();
    }
}

/// A PSF whose persistence fails — to make a write fail after the pixels are already written.
class ExplodingPsf final : public Psf {
    Image<double> doComputeKernelImage(Point2D) const override { return Image<double>(3, 3, 1.0 / 9); }
    std::string doTypeName() const override { return "ExplodingPsf"; }
    PsfRecord doToRecord() const override { throw NumericalError("this PSF cannot be persisted"); }
};

/// A PSF type that is never registered, so files holding it cannot be read back.
class UnregisteredPsf final : public Psf {
    Image<double> doComputeKernelImage(Point2D) const override { return Image<double>(3, 3, 1.0 / 9); }
    std::string doTypeName() const override { return "UnregisteredTestPsf"; }
    PsfRecord doToRecord() const override {
        PsfRecord r;
        r.set("x", {1.0});
        return r;
    }
};

}  // namespace

TEST(FitsBadInput, TruncatedFilesGiveFitsErrorsNamingFileAndHdu) {
    test::TempDir dir("bad-trunc");
    const fs::path good = dir / "good.fits";
    writeExposure(good, smallExposure());
    const std::string bytes = readBytes(good);
    ASSERT_EQ(bytes.size() % 2880, 0u);
    // Cut inside the primary header, inside IMAGE data, on a block boundary before MASK, inside the PSF.
    for (std::size_t cut : {std::size_t(1000), std::size_t(2880 * 2 + 5000), std::size_t(2880 * 4),
                            bytes.size() - 2880 + 100, bytes.size() - 1}) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        const fs::path path = dir / ("cut" + std::to_string(cut) + ".fits");
        writeBytes(path, bytes.substr(0, cut));
        try {
            readExposure(path);
            ADD_FAILURE() << "a truncated file was read";
        } catch (const FitsError& e) {
            EXPECT_EQ(e.file(), path.string());
        } catch (const NotFoundError& e) {  // the HDU the cut removed entirely
            EXPECT_EQ(e.file(), path.string());
        } catch (const std::exception& e) {
            ADD_FAILURE() << "wrong exception type: " << e.what();
        }
    }
    // Cut inside the IMAGE pixels: CFITSIO reports end of file, and the message says which HDU.
    const fs::path mid = dir / "mid.fits";
    writeBytes(mid, bytes.substr(0, 2880 * 3 + 100));
    expectError<FitsError>([&] { readExposure(mid); }, mid, {"EXTNAME='IMAGE'", "CFITSIO status"});
    expectError<FitsError>([&] { readImage(mid, 1); }, mid, {"HDU 1"});
}

TEST(FitsBadInput, EmptyAndNonFitsFiles) {
    test::TempDir dir("bad-notfits");
    const fs::path empty = dir / "empty.fits";
    writeBytes(empty, "");
    expectError<FitsError>([&] { readExposure(empty); }, empty, {"CFITSIO status"});
    expectError<FitsError>([&] { readImage(empty); }, empty);

    const fs::path text = dir / "notes.fits";
    writeBytes(text, "This is not a FITS file, just some text that happens to end in .fits\n");
    expectError<FitsError>([&] { readExposure(text); }, text, {"CFITSIO status"});

    std::string garbage(2880 * 3, '\0');
    for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = char((i * 7919) % 251);
    const fs::path bin = dir / "garbage.fits";
    writeBytes(bin, garbage);
    expectError<FitsError>([&] { readExposure(bin); }, bin);

    expectError<FitsError>([&] { readExposure(dir / "absent.fits"); }, dir / "absent.fits", {"no such file"});
    expectError<FitsError>([&] { readExposure(dir.path()); }, dir.path(), {"directory"});
}

TEST(FitsBadInput, MissingHduIsNotFound) {
    test::TempDir dir("bad-hdu");
    const fs::path path = dir / "nomask.fits";
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(8, 8, 1.0f), "IMAGE");
        f.writeImage(ImageF(8, 8, 1.0f), "VARIANCE");
    }
    expectError<NotFoundError>([&] { readExposure(path); }, path, {"MASK"});
    expectError<NotFoundError>([&] { readImage(path, 7); }, path, {"HDU 7"});
    // A table where an image is expected.
    const fs::path tab = dir / "table.fits";
    {
        FitsFile f(tab, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.createTable({{"a", "1D", ""}}, 2, "IMAGE");
    }
    expectError<InvalidInputError>([&] { readExposure(tab); }, tab, {"EXTNAME='IMAGE'", "table"});
    expectError<NotFoundError>([&] { readImage(tab); }, tab, {"2-d image"});
}

TEST(FitsBadInput, MaskStoredAsFloatIsRejected) {
    test::TempDir dir("bad-bitpix");
    const fs::path path = dir / "floatmask.fits";
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(8, 8, 1.0f), "IMAGE");
        f.writeImage(ImageF(8, 8, 3.0f), "MASK");
        f.writeImage(ImageF(8, 8, 1.0f), "VARIANCE");
    }
    expectError<InvalidInputError>([&] { readExposure(path); }, path, {"EXTNAME='MASK'", "BITPIX=-32"});
    // Planes of different sizes.
    const fs::path sizes = dir / "sizes.fits";
    {
        FitsFile f(sizes, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(8, 8, 1.0f), "IMAGE");
        f.writeImage(ImageI(8, 7, 0), "MASK");
        f.writeImage(ImageF(8, 8, 1.0f), "VARIANCE");
    }
    expectError<InvalidInputError>([&] { readExposure(sizes); }, sizes, {"differ in size"});
}

TEST(FitsBadInput, HeaderWithoutWcsGivesNoWcsOrAClearErrorWhenRequired) {
    test::TempDir dir("bad-wcs");
    Exposure exp = smallExposure();
    exp.setWcs(nullptr);
    const fs::path path = dir / "nowcs.fits";
    writeExposure(path, exp);
    const Exposure back = readExposure(path);
    EXPECT_FALSE(back.hasWcs());
    EXPECT_EQ(back.xy0(), exp.xy0());  // xy0 does not depend on the WCS
    expectError<NotFoundError>([&] { readExposure(path, {.requireWcs = true}); }, path, {"WCS", "EXTNAME='IMAGE'"});

    // A WCS that is present but unusable (singular CD matrix) is an error, not "no WCS".
    const fs::path singular = dir / "singular.fits";
    writeExposure(singular, smallExposure());
    {
        FitsFile f(singular, FitsFile::Mode::ReadWrite);
        f.moveToHdu("IMAGE");
        PropertyList md;
        md.set("CD1_1", 0.0);
        md.set("CD1_2", 0.0);
        f.writeHeader(md);
        f.close();
    }
    expectError<InvalidInputError>([&] { readExposure(singular); }, singular, {"EXTNAME='IMAGE'"});
}

TEST(FitsBadInput, NanPixelsRoundTripBitForBit) {
    test::TempDir dir("bad-nan");
    Exposure exp = smallExposure();
    const float nans[] = {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::quiet_NaN(),
                          std::bit_cast<float>(0x7fa00001u) /* signalling */, std::bit_cast<float>(0xffc12345u),
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()};
    for (int i = 0; i < 6; ++i) {
        exp.image()(i, 0) = nans[i];
        exp.variance()(i, 1) = nans[i];
    }
    exp.image().subImage(Box2I({30, 30}, 10, 10)).fill(std::numeric_limits<float>::quiet_NaN());
    const fs::path path = dir / "nan.fits";
    writeExposure(path, exp);
    const Exposure back = readExposure(path);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(std::bit_cast<std::uint32_t>(back.image()(i, 0)), std::bit_cast<std::uint32_t>(nans[i])) << i;
        EXPECT_EQ(std::bit_cast<std::uint32_t>(back.variance()(i, 1)), std::bit_cast<std::uint32_t>(nans[i])) << i;
    }
    EXPECT_TRUE(back.maskedImage().identical(exp.maskedImage()));
}

TEST(FitsBadInput, UnwritablePathsGiveErrorsNamingTheDestination) {
    test::TempDir dir("bad-write");
    const Exposure exp = smallExposure();
    // Missing directory.
    const fs::path missing = dir / "no" / "such" / "dir" / "calexp.fits";
    expectError<FitsError>([&] { writeExposure(missing, exp); }, missing, {"cannot create"});
    EXPECT_FALSE(fs::exists(missing));
    // A parent that is a regular file.
    writeBytes(dir / "plainfile", "x");
    const fs::path underFile = dir / "plainfile" / "calexp.fits";
    expectError<FitsError>([&] { writeExposure(underFile, exp); }, underFile);
    // The destination is an existing directory: the rename fails, the directory stays, no temp is left.
    fs::create_directory(dir / "adir.fits");
    try {
        writeExposure(dir / "adir.fits", exp);
        ADD_FAILURE() << "wrote over a directory";
    } catch (const IoError& e) {
        EXPECT_EQ(e.file(), (dir / "adir.fits").string());
    }
    EXPECT_TRUE(fs::is_directory(dir / "adir.fits"));
    EXPECT_EQ(strayFiles(dir.path(), {"plainfile", "adir.fits"}), std::vector<std::string>{});
}

TEST(FitsBadInput, ReadOnlyDirectory) {
    // Only meaningful when not running as root (root ignores permissions).
    test::TempDir dir("bad-ro");
    const Exposure exp = smallExposure();
    const fs::path ro = dir / "readonly";
    fs::create_directory(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    if (::access(ro.c_str(), W_OK) == 0) {
        fs::permissions(ro, fs::perms::owner_all);
        GTEST_SKIP() << "running as root: permissions are not enforced, read-only case not testable";
    }
    expectError<FitsError>([&] { writeExposure(ro / "calexp.fits", exp); }, ro / "calexp.fits");
    fs::permissions(ro, fs::perms::owner_all);
    EXPECT_TRUE(fs::is_empty(ro));
}

TEST(FitsBadInput, FailedWriteLeavesNoPartialFileAndKeepsTheOldOne) {
    test::TempDir dir("bad-partial");
    Exposure bad = smallExposure(false);
    bad.setPsf(std::make_shared<const ExplodingPsf>());  // fails after IMAGE/MASK/VARIANCE are written

    // No file before: none after, and no temp file either.
    const fs::path fresh = dir / "fresh.fits";
    expectError<InvalidInputError>([&] { writeExposure(fresh, bad); }, fresh, {"cannot be persisted"});
    EXPECT_FALSE(fs::exists(fresh));
    EXPECT_TRUE(fs::is_empty(dir.path()));

    // An existing file is left byte-for-byte unchanged.
    const fs::path existing = dir / "existing.fits";
    const Exposure good = smallExposure();
    writeExposure(existing, good);
    const std::string before = readBytes(existing);
    expectError<InvalidInputError>([&] { writeExposure(existing, bad); }, existing);
    EXPECT_EQ(readBytes(existing), before);
    EXPECT_EQ(strayFiles(dir.path(), {"existing.fits"}), std::vector<std::string>{});

    // Metadata FITS cannot hold fails the same way.
    Exposure badMeta = smallExposure();
    badMeta.metadata().set("OBSERVER", "Ren\xc3\xa9");
    expectError<InvalidInputError>([&] { writeExposure(existing, badMeta); }, existing, {"OBSERVER"});
    EXPECT_EQ(readBytes(existing), before);
    EXPECT_EQ(strayFiles(dir.path(), {"existing.fits"}), std::vector<std::string>{});
    // And the surviving file still reads.
    EXPECT_TRUE(readExposure(existing).maskedImage().identical(good.maskedImage()));
}

TEST(FitsBadInput, UnknownPsfTypeAndBadMaskPlaneKeys) {
    test::TempDir dir("bad-psf");
    Exposure exp = smallExposure(false);
    exp.setPsf(std::make_shared<const UnregisteredPsf>());
    const fs::path path = dir / "unknownpsf.fits";
    writeExposure(path, exp);  // writing needs no registry
    expectError<NotFoundError>([&] { readExposure(path); }, path, {"UnregisteredTestPsf", "EXTNAME='PSF'"});

    const fs::path psfless = dir / "nopsf.fits";
    writeExposure(psfless, smallExposure(false));
    EXPECT_FALSE(readExposure(psfless).hasPsf());
    expectError<NotFoundError>([&] { readExposure(psfless, {.requirePsf = true}); }, psfless, {"PSF"});

    // MP_ keys with an impossible bit, or two planes on one bit.
    for (const auto& [key, bit] : {std::pair<std::string, int>{"MP_WEIRD", 40}, {"MP_DUPLICATE", 0}}) {
        const fs::path p = dir / (key + ".fits");
        writeExposure(p, smallExposure());
        {
            FitsFile f(p, FitsFile::Mode::ReadWrite);
            f.moveToHdu("MASK");
            PropertyList md;
            md.set(key, bit);
            f.writeHeader(md);
        }
        expectError<InvalidInputError>([&] { readExposure(p); }, p, {"EXTNAME='MASK'"});
    }
}

TEST(FitsBadInput, ForeignMaskBitAssignmentsAreRemapped) {
    // A file whose writer put the planes on other bits: names win, pixel bits are translated.
    test::TempDir dir("bad-remap");
    const fs::path path = dir / "remap.fits";
    ImageI maskPixels(4, 1, 0);
    maskPixels(0, 0) = 1 << 0;             // file bit 0 = SAT
    maskPixels(1, 0) = 1 << 1;             // file bit 1 = BAD
    maskPixels(2, 0) = 1 << 5;             // file bit 5 = MYPLANE
    maskPixels(3, 0) = (1 << 0) | (1 << 5);
    {
        FitsFile f(path, FitsFile::Mode::Create);
        f.writeEmptyHdu();
        f.writeImage(ImageF(4, 1, 0.0f), "IMAGE");
        PropertyList md;
        md.set("MP_SAT", 0);
        md.set("MP_BAD", 1);
        md.set("MP_MYPLANE", 5);
        f.writeImage(maskPixels, "MASK", md);
        f.writeImage(ImageF(4, 1, 1.0f), "VARIANCE");
    }
    const Exposure e = readExposure(path);
    const Mask& m = e.mask();
    EXPECT_EQ(m(0, 0), m.planeBitMask("SAT"));
    EXPECT_EQ(m(1, 0), m.planeBitMask("BAD"));
    EXPECT_EQ(m(2, 0), m.planeBitMask("MYPLANE"));
    EXPECT_EQ(m(3, 0), m.planeBitMask("SAT") | m.planeBitMask("MYPLANE"));
}
