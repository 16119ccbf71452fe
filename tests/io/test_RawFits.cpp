// Raw FITS files: bit-exact round trips, the LSST-like layout seen by astropy, typed errors for bad files.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "core/Error.h"
#include "io/FitsFile.h"
#include "io/RawFits.h"
#include "tests/support/TestSupport.h"

using namespace drp;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const Camera> camera(int width = 96, int height = 60) {
    CameraConfig c;
    c.detectorWidth = width;
    c.detectorHeight = height;
    c.ampsX = 4;
    c.ampsY = 2;
    c.prescan = 3;
    c.serialOverscan = 8;
    c.parallelOverscan = 4;
    c.detectorsX = 2;
    c.detectorsY = 1;
    return makeLsstLikeCamera(c);
}

std::shared_ptr<const Wcs> randomWcs(std::mt19937_64& rng, bool sip) {
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const Point2D crpix{96 * u(rng), 60 * u(rng)};
    const SpherePoint crval(Angle::fromRadians(6.28 * u(rng)), Angle::fromRadians(2.8 * u(rng) - 1.4));
    const double scale = 0.2 / 3600.0, rot = 6.28 * u(rng);
    Eigen::Matrix2d cd;
    cd << -scale * std::cos(rot), scale * std::sin(rot), scale * std::sin(rot), scale * std::cos(rot);
    if (!sip) return std::make_shared<const Wcs>(crpix, crval, cd);
    SipPolynomials s;
    s.order = 2;
    s.a = Eigen::MatrixXd::Zero(3, 3);
    s.b = Eigen::MatrixXd::Zero(3, 3);
    s.a(2, 0) = 1e-6 * (u(rng) - 0.5);
    s.a(1, 1) = 1e-6 * (u(rng) - 0.5);
    s.b(0, 2) = 1e-6 * (u(rng) - 0.5);
    return std::make_shared<const Wcs>(crpix, crval, cd, s);
}

/// A raw with random pixels over the whole ADC range (0 and 65535 included), metadata and visit info.
RawExposure randomRaw(const Detector& det, std::uint64_t seed, bool withWcs = true) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    RawExposure raw;
    raw.detectorId = det.id();
    for (const Amplifier& a : det.amplifiers()) {
        Image<std::int32_t> img(a.rawBBox, 0);
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) img(x, y) = std::int32_t(rng() % 65536);
        img(0, 0) = 0;
        img(1, 0) = 65535;
        img(2, 0) = 32768;
        img(3, 0) = 32767;
        raw.amplifiers.push_back(img);
    }
    raw.metadata.set("IMGTYPE", "OBJECT", "exposure type");
    raw.metadata.set("OBSID", "MC_O_20250101_" + std::to_string(seed), "observation id");
    raw.metadata.set("SEQNUM", std::int64_t(seed * 7 + 1), "sequence number");
    raw.metadata.set("CCDTEMP", -100.0 + u(rng), "[C] detector temperature");
    raw.metadata.set("SHUTTER", true, "shutter opened");
    VisitInfo& vi = raw.visitInfo;
    vi.exposureTimeS = 15.0 + u(rng);
    vi.darkTimeS = 15.5 + u(rng);
    vi.midExposureMjdTai = 60000.0 + 3000.0 * u(rng);
    vi.boresightRaDec = SpherePoint(Angle::fromRadians(6.2 * u(rng)), Angle::fromRadians(3.0 * u(rng) - 1.5));
    vi.boresightRotAngle = Angle::fromRadians(6.0 * u(rng) - 3.0);
    vi.boresightAirmass = 1.0 + u(rng);
    vi.band = "r";
    vi.physicalFilter = "r_57";
    vi.instrument = "LSSTCam-sim";
    vi.visit = std::int64_t(rng() >> 3);
    vi.dayObs = 20250101;
    if (withWcs) raw.headerWcs = randomWcs(rng, seed % 2 == 0);
    return raw;
}

std::string readBytes(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
}
void writeBytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

void expectSameRaw(const RawExposure& a, const RawExposure& b) {
    EXPECT_EQ(a.detectorId, b.detectorId);
    ASSERT_EQ(a.amplifiers.size(), b.amplifiers.size());
    for (std::size_t i = 0; i < a.amplifiers.size(); ++i) EXPECT_TRUE(a.amplifiers[i].identical(b.amplifiers[i])) << i;
    EXPECT_EQ(a.metadata, b.metadata);
    EXPECT_EQ(a.visitInfo, b.visitInfo);
    ASSERT_EQ(bool(a.headerWcs), bool(b.headerWcs));
    if (a.headerWcs) {
        EXPECT_TRUE(*a.headerWcs == *b.headerWcs);
    }
}

}  // namespace

TEST(RawFits, RoundTripIsBitExact) {
    const auto cam = camera();
    test::TempDir dir("rawfits");
    for (std::uint64_t seed = 1; seed <= 6; ++seed) {
        const Detector& det = cam->detector(int(seed % 2));
        const RawExposure raw = randomRaw(det, seed, seed != 3);
        const fs::path path = dir / ("raw" + std::to_string(seed) + ".fits");
        writeRaw(path, raw, det);
        const RawExposure back = readRaw(path, det);
        expectSameRaw(raw, back);
        // Rewriting what was read gives the same file content (no drift through the header).
        const fs::path again = dir / ("again" + std::to_string(seed) + ".fits");
        writeRaw(again, back, det);
        expectSameRaw(readRaw(again, det), raw);
    }
    // Replacing an existing file works and leaves no temp files behind.
    const Detector& det = cam->detector(0);
    const fs::path path = dir / "replace.fits";
    writeRaw(path, randomRaw(det, 10), det);
    writeRaw(path, randomRaw(det, 11), det);
    expectSameRaw(readRaw(path, det), randomRaw(det, 11));
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) files += e.path().filename().string()[0] == '.';
    EXPECT_EQ(files, 0);
}

TEST(RawFits, LayoutFollowsLsstRaws) {
    const auto cam = camera();
    const Detector& det = cam->detector(1);
    test::TempDir dir("rawfits-layout");
    const fs::path path = dir / "raw.fits";
    const RawExposure raw = randomRaw(det, 5);
    writeRaw(path, raw, det);
    FitsFile f(path, FitsFile::Mode::Read);
    ASSERT_EQ(f.numHdus(), 1 + int(det.amplifiers().size()));
    const PropertyList primary = f.readHeader();
    EXPECT_EQ(primary.getInt("DETECTOR"), det.id());
    EXPECT_EQ(primary.getString("DETNAME"), det.name());
    EXPECT_EQ(primary.getString("DETSIZE"), "[1:96,1:60]");
    EXPECT_EQ(primary.getString("IMGTYPE"), "OBJECT");
    EXPECT_EQ(primary.getDouble("EXPTIME"), raw.visitInfo.exposureTimeS);
    EXPECT_TRUE(primary.has("CTYPE1"));
    for (std::size_t i = 0; i < det.amplifiers().size(); ++i) {
        const Amplifier& a = det.amplifiers()[i];
        f.moveToHdu(int(i) + 1);
        EXPECT_EQ(f.extname(), a.name);
        const FitsImageInfo info = f.imageInfo();
        EXPECT_EQ(info.bitpix, 16);
        EXPECT_EQ(info.equivalentBitpix, 20);  // unsigned 16-bit via BZERO = 32768
        EXPECT_EQ(info.width(), a.rawBBox.width());
        EXPECT_EQ(info.height(), a.rawBBox.height());
        const PropertyList h = f.readHeader(false);
        EXPECT_EQ(h.getDouble("BZERO"), 32768.0);
        // 24 x 30 data, 3 prescan, 8 serial overscan, 4 parallel overscan rows.
        EXPECT_EQ(h.getString("DATASEC"), "[4:27,1:30]");
        EXPECT_EQ(h.getString("BIASSEC"), "[28:35,1:30]");
        EXPECT_EQ(h.getString("PRESCAN"), "[1:3,1:30]");
        EXPECT_EQ(h.getString("PBIASSEC"), "[4:27,31:34]");
        const int x1 = a.bbox.minX() + 1, x2 = a.bbox.maxX() + 1, y1 = a.bbox.minY() + 1, y2 = a.bbox.maxY() + 1;
        std::ostringstream detsec;
        if (a.rawFlipX())
            detsec << '[' << x2 << ':' << x1 << ',' << y2 << ':' << y1 << ']';
        else
            detsec << '[' << x1 << ':' << x2 << ',' << y1 << ':' << y2 << ']';
        EXPECT_EQ(h.getString("DETSEC"), detsec.str()) << a.name;
        EXPECT_EQ(h.getBool("FLIPX"), a.rawFlipX());
        EXPECT_EQ(h.getBool("FLIPY"), a.rawFlipY());
        EXPECT_EQ(h.getDouble("GAIN"), a.gain);
        EXPECT_EQ(h.getDouble("RDNOISE"), a.readNoise);
        EXPECT_EQ(h.getString("BUNIT"), "adu");
        EXPECT_TRUE(f.readImage<std::int32_t>().identical(
            [&] { Image<std::int32_t> c = raw.amplifiers[i].clone(); c.setXY0({0, 0}); return c; }()));
    }
    EXPECT_EQ(fitsSection(Box2I({0, 0}, 10, 5)), "[1:10,1:5]");
    EXPECT_EQ(fitsSection(Box2I({2, 3}, 10, 5), true, true), "[12:3,8:4]");
}

TEST(RawFits, AstropyReadsExtnamesAndUint16Values) {
    const std::string python = test::pythonWith("astropy,numpy");
    if (python.empty()) GTEST_SKIP() << "/usr/bin/python3 with astropy and numpy is not available";
    const auto cam = camera();
    const Detector& det = cam->detector(0);
    test::TempDir dir("rawfits-astropy");
    const fs::path path = dir / "raw.fits";
    const RawExposure raw = randomRaw(det, 8);
    writeRaw(path, raw, det);
    const fs::path script = dir / "check.py";
    std::ofstream(script) << "import sys, warnings\n"
                             "warnings.simplefilter('ignore')\n"
                             "from astropy.io import fits\n"
                             "h = fits.open(sys.argv[1])\n"
                             "print('RES names', ','.join(x.name for x in h[1:]))\n"
                             "print('RES det', h[0].header['DETECTOR'], h[0].header['DETNAME'])\n"
                             "for x in h[1:]:\n"
                             "    d = x.data\n"
                             "    print('RES amp', x.name, d.dtype.kind, d.dtype.itemsize, d.shape[0], d.shape[1],"
                             " int(d[0, 0]), int(d[0, 1]), int(d[5, 7]), int(d.sum()), x.header['DATASEC'],"
                             " x.header['DETSEC'])\n";
    std::string out;
    ASSERT_EQ(test::runCommand(python + " " + script.string() + " " + path.string(), &out), 0) << out;
    std::istringstream lines(out);
    std::string line;
    std::string names;
    std::map<std::string, std::vector<std::string>> amps;
    bool sawDet = false;
    while (std::getline(lines, line)) {
        if (line.rfind("RES ", 0) != 0) continue;
        std::istringstream is(line.substr(4));
        std::string tag;
        is >> tag;
        if (tag == "names") is >> names;
        if (tag == "det") {
            int id;
            std::string name;
            is >> id >> name;
            EXPECT_EQ(id, det.id());
            EXPECT_EQ(name, det.name());
            sawDet = true;
        }
        if (tag == "amp") {
            std::string name, field;
            is >> name;
            while (is >> field) amps[name].push_back(field);
        }
    }
    EXPECT_TRUE(sawDet) << out;
    std::string expectNames;
    for (const Amplifier& a : det.amplifiers()) expectNames += (expectNames.empty() ? "" : ",") + a.name;
    EXPECT_EQ(names, expectNames) << out;
    for (std::size_t i = 0; i < det.amplifiers().size(); ++i) {
        const Amplifier& a = det.amplifiers()[i];
        ASSERT_EQ(amps[a.name].size(), 10u) << out;
        const auto& v = amps[a.name];
        const auto& img = raw.amplifiers[i];
        std::int64_t sum = 0;
        for (int y = 0; y < img.height(); ++y)
            for (int x = 0; x < img.width(); ++x) sum += img(x, y);
        EXPECT_EQ(v[0], "u");  // unsigned
        EXPECT_EQ(v[1], "2");  // 16-bit
        EXPECT_EQ(std::stoi(v[2]), a.rawBBox.height());
        EXPECT_EQ(std::stoi(v[3]), a.rawBBox.width());
        EXPECT_EQ(std::stoi(v[4]), img(0, 0));
        EXPECT_EQ(std::stoi(v[5]), img(1, 0));
        EXPECT_EQ(std::stoi(v[6]), img(7, 5));
        EXPECT_EQ(std::stoll(v[7]), sum);
        EXPECT_EQ(v[8], fitsSection(a.rawDataBBox));
        EXPECT_EQ(v[9], fitsSection(a.bbox, a.rawFlipX(), a.rawFlipY()));
    }
}

TEST(RawFits, BadInputGivesTypedErrorsNamingTheFile) {
    const auto cam = camera();
    const Detector& det = cam->detector(0);
    test::TempDir dir("rawfits-bad");
    const fs::path good = dir / "good.fits";
    writeRaw(good, randomRaw(det, 3), det);

    // Missing file.
    try {
        readRaw(dir / "absent.fits", det);
        ADD_FAILURE() << "read a missing file";
    } catch (const IoError& e) {
        EXPECT_NE(std::string(e.what()).find("absent.fits"), std::string::npos) << e.what();
    }

    // Truncated files: in the primary header, inside an amplifier's data, before the last amplifier HDU.
    const std::string bytes = readBytes(good);
    ASSERT_EQ(bytes.size() % 2880, 0u);
    for (std::size_t cut : {std::size_t(1000), std::size_t(2880 * 3 + 500), bytes.size() - 2880 * 3, bytes.size() - 1}) {
        SCOPED_TRACE("cut at " + std::to_string(cut));
        const fs::path path = dir / ("cut" + std::to_string(cut) + ".fits");
        writeBytes(path, bytes.substr(0, cut));
        try {
            readRaw(path, det);
            ADD_FAILURE() << "a truncated file was read";
        } catch (const FitsError& e) {
            EXPECT_EQ(e.file(), path.string());
        } catch (const NotFoundError& e) {  // the cut removed a whole amplifier HDU
            EXPECT_EQ(e.file(), path.string());
            EXPECT_NE(std::string(e.what()).find("EXTNAME"), std::string::npos);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "wrong exception type: " << e.what();
        }
    }

    // A missing amplifier HDU.
    {
        const fs::path path = dir / "missing-amp.fits";
        {
            FitsFile in(good, FitsFile::Mode::Read);
            FitsFile out(path, FitsFile::Mode::Create);
            out.writeEmptyHdu({}, in.readHeader());
            for (int i = 1; i < in.numHdus(); ++i) {
                in.moveToHdu(i);
                if (in.extname() == "C01") continue;
                out.writeImage(in.readImage<std::uint16_t>(), in.extname(), in.readHeader());
            }
            out.close();
        }
        try {
            readRaw(path, det);
            ADD_FAILURE() << "read a raw without C01";
        } catch (const NotFoundError& e) {
            EXPECT_EQ(e.file(), path.string());
            EXPECT_NE(std::string(e.what()).find("EXTNAME='C01'"), std::string::npos) << e.what();
        }
    }

    // The wrong shape: read for a detector of another size (same id and amplifier names).
    {
        const auto other = camera(104, 60);
        try {
            readRaw(good, other->detector(0));
            ADD_FAILURE() << "read a raw of the wrong shape";
        } catch (const InvalidInputError& e) {
            EXPECT_EQ(e.file(), good.string());
            EXPECT_NE(std::string(e.what()).find("C00"), std::string::npos) << e.what();
        }
    }
    // The wrong detector.
    EXPECT_THROW(readRaw(good, cam->detector(1)), InvalidInputError);
    // Floating-point pixels are not a raw.
    {
        const fs::path path = dir / "float.fits";
        {
            FitsFile in(good, FitsFile::Mode::Read);
            FitsFile out(path, FitsFile::Mode::Create);
            out.writeEmptyHdu({}, in.readHeader());
            for (int i = 1; i < in.numHdus(); ++i) {
                in.moveToHdu(i);
                out.writeImage(in.readImage<float>(), in.extname(), in.readHeader());
            }
            out.close();
        }
        EXPECT_THROW(readRaw(path, det), InvalidInputError);
    }

    // Writing bad raws: nothing is written, an existing file stays intact.
    const std::string before = readBytes(good);
    RawExposure bad = randomRaw(det, 4);
    bad.amplifiers[2](5, 5) = 70000;
    EXPECT_THROW(writeRaw(good, bad, det), InvalidInputError);
    bad = randomRaw(det, 4);
    bad.amplifiers.pop_back();
    EXPECT_THROW(writeRaw(good, bad, det), InvalidInputError);
    bad = randomRaw(det, 4);
    bad.amplifiers[0] = Image<std::int32_t>(3, 3, 0);
    EXPECT_THROW(writeRaw(good, bad, det), InvalidInputError);
    bad = randomRaw(det, 4);
    bad.detectorId = 7;
    EXPECT_THROW(writeRaw(good, bad, det), InvalidInputError);
    EXPECT_EQ(readBytes(good), before);
    EXPECT_FALSE(fs::exists(dir / "never.fits"));
    EXPECT_THROW(writeRaw(dir / "never.fits", bad, det), InvalidInputError);
    EXPECT_FALSE(fs::exists(dir / "never.fits"));
}
