#include "io/RawFits.h"

#include <cmath>
#include <set>
#include <sstream>
#include <variant>

#include "core/Error.h"
#include "io/AtomicFile.h"
#include "io/FileContext.h"
#include "io/WcsFits.h"
#include "io/FitsFile.h"

namespace drp {

namespace {

constexpr std::int64_t kRawFormatVersion = 1;


const char* cornerName(ReadoutCorner c) {
    switch (c) {
        case ReadoutCorner::LL: return "LL";
        case ReadoutCorner::LR: return "LR";
        case ReadoutCorner::UL: return "UL";
        case ReadoutCorner::UR: return "UR";
    }
    return "LL";
}

/// Primary keys the writer derives from typed members (besides the WCS keys).
const std::set<std::string>& ownedPrimaryKeys() {
    static const std::set<std::string> keys = [] {
        std::set<std::string> k = {"DETECTOR", "DETNAME", "DETSIZE", "NAMPS", "DRPVERS", "RAWFMT",
                                   "DRPCRPX1", "DRPCRPX2", "DRPCRVR1", "DRPCRVR2"};
        for (const auto& v : VisitInfo::metadataKeys()) k.insert(v);
        return k;
    }();
    return keys;
}

PropertyList primaryHeader(const RawExposure& raw, const Detector& detector) {
    PropertyList md;
    for (const auto& e : raw.metadata.entries())
        if (!ownedPrimaryKeys().count(e.key)) md.set(e.key, e.value, e.comment);
    md.merge(raw.visitInfo.toMetadata());
    if (raw.headerWcs) md.merge(wcsToFitsMetadata(*raw.headerWcs));
    md.set("DETECTOR", detector.id(), "detector id");
    md.set("DETNAME", detector.name(), "detector name");
    md.set("DETSIZE", fitsSection(detector.bbox()), "assembled detector size");
    md.set("NAMPS", int(detector.amplifiers().size()), "number of amplifier HDUs");
    md.set("DRPVERS", DRP_VERSION, "drp version that wrote this file");
    md.set("RAWFMT", PropertyList::Value(kRawFormatVersion), "drp raw file layout version");
    return md;
}

PropertyList amplifierHeader(const Amplifier& a) {
    PropertyList md;
    md.set("DATASEC", fitsSection(a.rawDataBBox), "data section (raw amplifier frame)");
    md.set("BIASSEC", fitsSection(a.rawSerialOverscanBBox), "serial overscan section");
    if (!a.rawPrescanBBox.empty()) md.set("PRESCAN", fitsSection(a.rawPrescanBBox), "serial prescan section");
    if (!a.rawParallelOverscanBBox.empty())
        md.set("PBIASSEC", fitsSection(a.rawParallelOverscanBBox), "parallel overscan section");
    md.set("DETSEC", fitsSection(a.bbox, a.rawFlipX(), a.rawFlipY()), "DATASEC in the assembled detector");
    md.set("FLIPX", a.rawFlipX(), "raw x runs opposite to detector x");
    md.set("FLIPY", a.rawFlipY(), "raw y runs opposite to detector y");
    md.set("READCORN", cornerName(a.readoutCorner), "readout corner of the data section");
    md.set("GAIN", a.gain, "[e-/ADU] nominal gain");
    md.set("RDNOISE", a.readNoise, "[e-] nominal read noise");
    md.set("SATURATE", a.saturation, "[ADU] nominal saturation");
    md.set("BUNIT", "adu", "");
    return md;
}

void writeRawTo(const std::filesystem::path& tempPath, const RawExposure& raw, const Detector& detector) {
    FitsFile f(tempPath, FitsFile::Mode::Create);
    f.writeEmptyHdu({}, primaryHeader(raw, detector));
    const auto& amps = detector.amplifiers();
    for (std::size_t i = 0; i < amps.size(); ++i) {
        const Image<std::int32_t>& in = raw.amplifiers[i];
        Image<std::uint16_t> pixels(in.width(), in.height());
        for (int y = 0; y < in.height(); ++y) {
            const std::int32_t* src = in.row(y);
            std::uint16_t* dst = pixels.row(y);
            for (int x = 0; x < in.width(); ++x) dst[x] = std::uint16_t(src[x]);
        }
        f.writeImage(pixels, amps[i].name, amplifierHeader(amps[i]));
    }
    f.close();
}

/// The header WCS of the primary (null if absent), exact when drp's companions agree with the standard keys.
std::shared_ptr<const Wcs> parseHeaderWcs(const PropertyList& md) { return wcsFromFitsMetadata(md); }

}  // namespace

std::string fitsSection(const Box2I& box, bool flipX, bool flipY) {
    const int x1 = box.minX() + 1, x2 = box.maxX() + 1, y1 = box.minY() + 1, y2 = box.maxY() + 1;
    std::ostringstream os;
    os << '[' << (flipX ? x2 : x1) << ':' << (flipX ? x1 : x2) << ',' << (flipY ? y2 : y1) << ':' << (flipY ? y1 : y2)
       << ']';
    return os.str();
}

void writeRaw(const std::filesystem::path& path, const RawExposure& raw, const Detector& detector) {
    const std::string file = path.string();
    withFileContext(file, "writing a raw: ", [&] {
        raw.validate(detector);
        AtomicFile atomic(path);
        writeRawTo(atomic.tempPath(), raw, detector);
        atomic.commit();
    });
}

std::shared_ptr<const Wcs> readRawHeaderWcs(const std::filesystem::path& path) {
    const std::string file = path.string();
    FitsFile f = withFileContext(file, "reading a raw: ", [&] { return FitsFile(path, FitsFile::Mode::Read); });
    PropertyList primary = withFileContext(file, "HDU 0 (primary): ", [&] { return f.readHeader(); });
    return withFileContext(file, "HDU 0 (primary): ", [&] { return parseHeaderWcs(primary); });
}

RawExposure readRaw(const std::filesystem::path& path, const Detector& detector) {
    const std::string file = path.string();
    FitsFile f = withFileContext(file, "reading a raw: ", [&] { return FitsFile(path, FitsFile::Mode::Read); });
    RawExposure raw;
    raw.detectorId = detector.id();

    PropertyList primary = withFileContext(file, "HDU 0 (primary): ", [&] { return f.readHeader(); });
    withFileContext(file, "HDU 0 (primary): ", [&] {
        if (!primary.has("DETECTOR")) throw InvalidInputError("no DETECTOR key: not a raw of this layout");
        const std::int64_t id = primary.getInt("DETECTOR");
        if (id != detector.id()) {
            throw InvalidInputError("the raw is of detector " + std::to_string(id) + ", not of detector " +
                                    std::to_string(detector.id()) + " (" + detector.name() + ")");
        }
        raw.visitInfo = VisitInfo::fromMetadata(primary);
        raw.headerWcs = parseHeaderWcs(primary);
    });
    std::set<std::string> drop = ownedPrimaryKeys();
    if (raw.headerWcs)
        for (const auto& k : raw.headerWcs->toFitsMetadata().keys()) drop.insert(k);
    for (const auto& e : primary.entries())
        if (!drop.count(e.key)) raw.metadata.set(e.key, e.value, e.comment);

    for (const Amplifier& a : detector.amplifiers()) {
        if (!f.hasHdu(a.name)) {
            throw NotFoundError("no HDU with EXTNAME='" + a.name + "' (amplifier of detector " + detector.name() + ")",
                                file);
        }
        Image<std::int32_t> pixels = withFileContext(file, "amplifier " + a.name + ": ", [&] {
            f.moveToHdu(a.name);
            const std::string where = f.describeHdu() + ": ";
            const FitsImageInfo info = f.imageInfo();
            if (info.equivalentBitpix < 0 || info.equivalentBitpix == 64 || info.equivalentBitpix == 40) {
                throw InvalidInputError(where + "raw pixels must be integers of at most 32 bits, found BITPIX=" +
                                        std::to_string(info.bitpix));
            }
            if (info.width() != a.rawBBox.width() || info.height() != a.rawBBox.height()) {
                std::ostringstream os;
                os << where << "the image is " << info.width() << "x" << info.height() << ", but amplifier " << a.name
                   << " of detector " << detector.name() << " reads out " << a.rawBBox.width() << "x"
                   << a.rawBBox.height();
                throw InvalidInputError(os.str());
            }
            const PropertyList header = f.readHeader();
            if (header.has("DATASEC") && header.getString("DATASEC") != fitsSection(a.rawDataBBox)) {
                throw InvalidInputError(where + "DATASEC=" + header.getString("DATASEC") + " but the detector says " +
                                        fitsSection(a.rawDataBBox));
            }
            Image<std::int32_t> img = f.readImage<std::int32_t>();
            img.setXY0(a.rawBBox.min());
            return img;
        });
        raw.amplifiers.push_back(std::move(pixels));
    }
    withFileContext(file, "", [&] { raw.validate(detector); });
    return raw;
}

}  // namespace drp
