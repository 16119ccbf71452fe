#include "io/ExposureFits.h"
#include "io/ExposureHeader.h"
#include "io/FileContext.h"
#include "io/WcsFits.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <utility>

#include "core/Error.h"
#include "io/AtomicFile.h"

namespace drp {

namespace {

constexpr const char* kImageExt = "IMAGE";
constexpr const char* kMaskExt = "MASK";
constexpr const char* kVarianceExt = "VARIANCE";
constexpr const char* kPsfExt = "PSF";
constexpr std::int64_t kFormatVersion = 1;


/// Header cards shared by the three image planes: WCS, exact WCS companions, xy0.
PropertyList planeHeader(const Exposure& exposure) {
    const Point2I xy0 = exposure.xy0();
    PropertyList md;
    if (exposure.hasWcs()) {
        md = wcsToFitsMetadata(*exposure.wcs(), xy0);
    }
    md.set("LTV1", -xy0.x, "IRAF: image pixel = physical pixel + LTV");
    md.set("LTV2", -xy0.y, "IRAF: image pixel = physical pixel + LTV");
    md.set("LTM1_1", 1.0, "IRAF physical-to-image scale");
    md.set("LTM2_2", 1.0, "IRAF physical-to-image scale");
    md.set("WCSNAMEA", "PARENT", "parent-frame pixel coordinates (0-based)");
    md.set("CTYPE1A", "LINEAR", "");
    md.set("CTYPE2A", "LINEAR", "");
    md.set("CRPIX1A", 1.0, "");
    md.set("CRPIX2A", 1.0, "");
    md.set("CRVAL1A", double(xy0.x), "parent x of the first pixel");
    md.set("CRVAL2A", double(xy0.y), "parent y of the first pixel");
    md.set("CUNIT1A", "PIXEL", "");
    md.set("CUNIT2A", "PIXEL", "");
    return md;
}

std::shared_ptr<const Wcs> parseWcs(const PropertyList& md, Point2I xy0, std::string* problem) {
    return wcsFromFitsMetadata(md, xy0, problem);
}

/// Rebuild the mask plane dictionary from MP_<NAME> keys, remapping pixel bits when the file's bit
/// assignment differs from the one this build gives those names. Bits without an MP_ key are kept
/// only when the file declares no planes at all.
Mask buildMask(Image<MaskPixel> pixels, const PropertyList& md) {
    std::map<int, std::string> fileBits;
    for (const auto& e : md.entries()) {
        if (e.key.size() <= 3 || e.key.compare(0, 3, "MP_") != 0) continue;
        const std::int64_t bit = md.getInt(e.key);
        if (bit < 0 || bit > 30) throw InvalidInputError("mask plane key " + e.key + " has bit " + std::to_string(bit) + " outside 0..30");
        if (fileBits.count(int(bit))) {
            throw InvalidInputError("mask planes " + fileBits[int(bit)] + " and " + e.key.substr(3) + " share bit " +
                                    std::to_string(bit));
        }
        fileBits[int(bit)] = e.key.substr(3);
    }
    Mask mask(pixels, std::make_shared<MaskPlaneDict>());
    if (fileBits.empty()) return mask;
    MaskPixel translate[31] = {0};
    bool identity = true;
    MaskPixel declared = 0;
    for (const auto& [bit, name] : fileBits) {
        const int newBit = mask.addPlane(name);
        translate[bit] = MaskPixel(1u << newBit);
        declared |= MaskPixel(1u << bit);
        identity = identity && newBit == bit;
    }
    if (identity) return mask;
    for (int y = 0; y < mask.height(); ++y) {
        MaskPixel* row = mask.row(y);
        for (int x = 0; x < mask.width(); ++x) {
            const MaskPixel v = row[x] & declared;
            MaskPixel out = 0;
            for (int b = 0; b < 31; ++b)
                if (v & MaskPixel(1u << b)) out |= translate[b];
            row[x] = out;
        }
    }
    return mask;
}

void writeExposureTo(const std::filesystem::path& tempPath, const Exposure& exposure, const ExposureWriteOptions& options) {
    FitsFile f(tempPath, FitsFile::Mode::Create);

    PropertyList primary = exposure.metadata();
    primary.merge(exposure.visitInfo().toMetadata());
    if (exposure.hasPhotoCalib()) primary.merge(exposure.photoCalib()->toMetadata());
    if (exposure.detector()) primary.set("DETECTOR", *exposure.detector(), "detector id");
    primary.set("DRPVERS", DRP_VERSION, "drp version that wrote this file");
    primary.set("DRPFMT", PropertyList::Value(kFormatVersion), "drp exposure file layout version");
    f.writeEmptyHdu({}, primary);

    const PropertyList plane = planeHeader(exposure);
    PropertyList imageHeader = plane;
    imageHeader.set("EXTTYPE", "IMAGE", "");
    f.writeImage(exposure.image(), kImageExt, imageHeader, options.image);

    PropertyList maskHeader = plane;
    maskHeader.set("EXTTYPE", "MASK", "");
    std::vector<std::pair<int, std::string>> planes;
    for (const auto& [name, bit] : exposure.mask().planes()) planes.emplace_back(bit, name);
    std::sort(planes.begin(), planes.end());
    for (const auto& [bit, name] : planes) maskHeader.set("MP_" + name, bit, "mask plane bit");
    f.writeImage(static_cast<const Image<MaskPixel>&>(exposure.mask()), kMaskExt, maskHeader, options.mask);

    PropertyList varianceHeader = plane;
    varianceHeader.set("EXTTYPE", "VARIANCE", "");
    f.writeImage(exposure.variance(), kVarianceExt, varianceHeader, options.variance);

    if (exposure.hasPsf()) {
        const PsfRecord record = exposure.psf()->toRecord();
        std::vector<FitsColumn> columns;
        for (const auto& [name, values] : record.arrays) {
            columns.push_back({name, std::to_string(values.size()) + "D", ""});
        }
        PropertyList psfHeader;
        psfHeader.set("PSFTYPE", record.typeName, "registered drp PSF type");
        psfHeader.set("PSFNARR", int(record.arrays.size()), "number of arrays (columns) in the record");
        f.createTable(columns, 1, kPsfExt, psfHeader);
        for (const auto& [name, values] : record.arrays) {
            f.writeColumn<double>(name, std::span<const double>(values), 0);
        }
    }
    f.close();
}

}  // namespace

// Keys the writer derives from the Exposure's typed members; the reader removes them from metadata.
bool isOwnedPrimaryKey(const std::string& key) {
    if (key == "DRPVERS" || key == "DRPFMT") return true;
    for (const auto& k : VisitInfo::metadataKeys())
        if (k == key) return true;
    for (const auto& k : PhotoCalib::metadataKeys())
        if (k == key) return true;
    return false;
}

// xy0 = -LTV (IRAF convention); (0,0) without LTV keys.
Point2I readXy0(const PropertyList& md) {
    Point2I xy0{0, 0};
    const char* keys[2] = {"LTV1", "LTV2"};
    int* out[2] = {&xy0.x, &xy0.y};
    for (int i = 0; i < 2; ++i) {
        if (!md.has(keys[i])) continue;
        const double v = md.getDouble(keys[i]);
        if (!(std::fabs(v) < 1e9) || v != std::floor(v)) {
            throw InvalidInputError(std::string(keys[i]) + " is not an integer pixel offset");
        }
        *out[i] = -int(v);
    }
    return xy0;
}


ExposureWriteOptions ExposureWriteOptions::compressed() {
    ExposureWriteOptions o;
    o.image = FitsCompression::Gzip2;
    o.mask = FitsCompression::Rice;
    o.variance = FitsCompression::Gzip2;
    return o;
}

void ExposureWriteOptions::validate() const {
    if (image == FitsCompression::Rice) throw ConfigError("ExposureWriteOptions.image: RICE_1 cannot hold float pixels losslessly; use gzip2");
    if (variance == FitsCompression::Rice) {
        throw ConfigError("ExposureWriteOptions.variance: RICE_1 cannot hold float pixels losslessly; use gzip2");
    }
}

void writeExposure(const std::filesystem::path& path, const Exposure& exposure, const ExposureWriteOptions& options) {
    options.validate();
    withFileContext(path.string(), "writing an exposure: ", [&] {
        AtomicFile atomic(path);
        writeExposureTo(atomic.tempPath(), exposure, options);
        atomic.commit();
    });
}

Exposure readExposure(const std::filesystem::path& path, const ExposureReadOptions& options) {
    const std::string file = path.string();
    FitsFile f = withFileContext(file, "", [&] { return FitsFile(path, FitsFile::Mode::Read); });

    // Primary and IMAGE headers (io/ExposureHeader): metadata, visit info, calibration, detector, xy0, WCS;
    // then the IMAGE pixels.
    ExposureHeader header = readPrimaryAndImageHeaders(f, file, options);
    ImageF image = f.readImage<float>();

    // MASK: must hold integers.
    f.moveToHdu(kMaskExt);
    const std::string maskWhere = f.describeHdu() + ": ";
    const FitsImageInfo maskInfo = f.imageInfo();
    if (maskInfo.equivalentBitpix != 8 && maskInfo.equivalentBitpix != 16 &&
        maskInfo.equivalentBitpix != 32) {
        throw InvalidInputError(maskWhere + "the mask must hold 8, 16 or 32-bit signed integers, found BITPIX=" +
                                    std::to_string(maskInfo.bitpix) +
                                    (maskInfo.equivalentBitpix != maskInfo.bitpix
                                         ? " (scaled to " + std::to_string(maskInfo.equivalentBitpix) + ")"
                                         : std::string()),
                                file);
    }
    Image<MaskPixel> maskPixels = f.readImage<MaskPixel>();
    const PropertyList maskHeader = f.readHeader();
    Mask mask = withFileContext(file, maskWhere, [&] { return buildMask(maskPixels, maskHeader); });

    f.moveToHdu(kVarianceExt);
    const std::string varianceWhere = f.describeHdu() + ": ";
    ImageF variance = f.readImage<float>();

    if (!(mask.bbox() == image.bbox()) || !(variance.bbox() == image.bbox())) {
        throw InvalidInputError("IMAGE (" + std::to_string(image.width()) + "x" + std::to_string(image.height()) +
                                    "), MASK (" + std::to_string(mask.width()) + "x" + std::to_string(mask.height()) +
                                    ") and VARIANCE (" + std::to_string(variance.width()) + "x" +
                                    std::to_string(variance.height()) + ") differ in size",
                                file);
    }
    const Point2I xy0 = header.bbox.min();
    image.setXY0(xy0);
    mask.setXY0(xy0);
    variance.setXY0(xy0);
    Exposure exposure(MaskedImageF(image, mask, variance), std::move(header.wcs));
    exposure.setVisitInfo(std::move(header.visitInfo));
    exposure.setPhotoCalib(std::move(header.photoCalib));
    exposure.setDetector(header.detector);
    exposure.setMetadata(std::move(header.metadata));

    // PSF (optional).
    if (auto psf = readExposurePsf(f, file, options.requirePsf)) exposure.setPsf(std::move(psf));
    return exposure;
}

std::shared_ptr<const Psf> readExposurePsf(FitsFile& f, const std::string& file, bool required) {
    if (!f.hasHdu(kPsfExt)) {
        if (required) throw NotFoundError("no HDU with EXTNAME='PSF', and a PSF is required", file);
        return nullptr;
    }
    f.moveToHdu(kPsfExt);
    const std::string psfWhere = f.describeHdu() + ": ";
    return withFileContext(file, psfWhere, [&] {
        const PropertyList header = f.readHeader();
        PsfRecord record;
        record.typeName = header.getString("PSFTYPE");
        if (f.numRows() != 1) throw InvalidInputError("the PSF table must have exactly one row");
        for (const auto& column : f.columns()) record.set(column.name, f.readColumn<double>(column.name));
        return Psf::fromRecord(record);
    });
}

// ---------------------------------------------------------------- single images

FitsImage readImage(const std::filesystem::path& path, int hdu) {
    const std::string file = path.string();
    FitsFile f(path, FitsFile::Mode::Read);
    if (hdu >= 0) {
        f.moveToHdu(hdu);
    } else {
        const int n = f.numHdus();
        bool found = false;
        for (int i = 0; i < n && !found; ++i) {
            f.moveToHdu(i);
            found = f.isImageHdu() && f.imageInfo().width() > 0;
        }
        if (!found) throw NotFoundError("no HDU holds a 2-d image", file);
    }
    FitsImage out;
    out.hdu = f.currentHdu();
    out.info = f.imageInfo();
    out.image = f.readImage<float>();
    out.metadata = f.readHeader();
    const std::string where = f.describeHdu() + ": ";
    if (out.hdu > 0) {
        // Extensions inherit the primary header's keys they do not override (exposure-level keys of MEF files).
        f.moveToHdu(0);
        const PropertyList primary = f.readHeader();
        for (const auto& e : primary.entries())
            if (!out.metadata.has(e.key)) out.metadata.set(e.key, e.value, e.comment);
    }
    const Point2I xy0 = withFileContext(file, where, [&] { return readXy0(out.metadata); });
    out.image.setXY0(xy0);
    try {
        out.wcs = parseWcs(out.metadata, xy0, &out.wcsProblem);
    } catch (const Error& e) {
        out.wcs = nullptr;
        out.wcsProblem = e.message();
    }
    return out;
}

ImageF readVariance(const std::filesystem::path& path, int hdu, WeightKind kind) {
    ImageF w = readImage(path, hdu).image;
    const float inf = std::numeric_limits<float>::infinity();
    for (int y = 0; y < w.height(); ++y) {
        float* row = w.row(y);
        for (int x = 0; x < w.width(); ++x) {
            const float v = row[x];
            switch (kind) {
                case WeightKind::Variance: break;
                case WeightKind::InverseVariance: row[x] = (v > 0.0f && std::isfinite(v)) ? 1.0f / v : inf; break;
                case WeightKind::Sigma: row[x] = std::isfinite(v) ? v * v : inf; break;
            }
        }
    }
    return w;
}

namespace {

/// The Exposure of a single image whose mask and variance planes have been built: the header becomes
/// metadata and, where its keys parse, VisitInfo.
Exposure exposureOfImage(FitsImage& in, const Mask& mask, const ImageF& variance) {
    Exposure exposure(MaskedImageF(in.image, mask, variance), in.wcs);
    try {
        exposure.setVisitInfo(VisitInfo::fromMetadata(in.metadata));
    } catch (const InvalidInputError&) {
        // a foreign header whose keys do not mean what ours do: keep them as plain metadata only
    }
    exposure.setMetadata(std::move(in.metadata));
    return exposure;
}

}  // namespace

Exposure readImageAsExposure(const std::filesystem::path& imagePath, int imageHdu,
                             const std::filesystem::path& weightPath, int weightHdu, WeightKind kind) {
    FitsImage in = readImage(imagePath, imageHdu);
    const bool haveWeight = !weightPath.empty();
    ImageF variance;
    if (haveWeight) {
        variance = readVariance(weightPath, weightHdu, kind);
        if (variance.width() != in.image.width() || variance.height() != in.image.height()) {
            throw InvalidInputError("the weight image (" + std::to_string(variance.width()) + "x" +
                                        std::to_string(variance.height()) + ") does not match the image (" +
                                        std::to_string(in.image.width()) + "x" + std::to_string(in.image.height()) + ")",
                                    weightPath.string());
        }
        variance.setXY0(in.image.xy0());  // the plane itself, not a copy: only its pixels are the weight's
    } else {
        variance = ImageF(in.image.bbox(), std::numeric_limits<float>::quiet_NaN());
    }
    // Every pixel of the mask is written below.
    Mask mask(Image<MaskPixel>(in.image.bbox(), kNoFill), std::make_shared<MaskPlaneDict>());
    const MaskPixel noData = mask.planeBitMask("NO_DATA");
    // Row by row, branch-free (|x| <= FLT_MAX is isfinite(x), false for NaN), so the loops vectorise.
    constexpr float big = std::numeric_limits<float>::max();
    for (int y = 0; y < mask.height(); ++y) {
        const float* ir = in.image.row(y);
        const float* vr = variance.row(y);
        MaskPixel* mr = mask.row(y);
        const int w = mask.width();
        if (haveWeight) {
            for (int x = 0; x < w; ++x) {
                const bool good = (std::fabs(ir[x]) <= big) & (vr[x] > 0.0f) & (vr[x] <= big);
                mr[x] = good ? MaskPixel(0) : noData;
            }
        } else {
            for (int x = 0; x < w; ++x) mr[x] = std::fabs(ir[x]) <= big ? MaskPixel(0) : noData;
        }
    }
    return exposureOfImage(in, mask, variance);
}

Exposure imageAsExposure(FitsImage in, float variance, std::int64_t* finitePixels) {
    // The mask is written in full below; the variance is uniform (shared pages, core/Image.h SharedFill) but
    // for the +inf written at non-finite pixels.
    Mask mask(Image<MaskPixel>(in.image.bbox(), kNoFill), std::make_shared<MaskPlaneDict>());
    ImageF var(in.image.bbox(), variance, kSharedFill);
    const MaskPixel noData = mask.planeBitMask("NO_DATA");
    const float inf = std::numeric_limits<float>::infinity();
    constexpr float big = std::numeric_limits<float>::max();
    std::int64_t finite = 0;
    // Row by row, branch-free (|x| <= FLT_MAX is isfinite(x), false for NaN), so the loop vectorises.
    const int w = in.image.width(), h = in.image.height();
    for (int y = 0; y < h; ++y) {
        const float* __restrict ir = in.image.row(y);
        float* __restrict vr = var.row(y);
        MaskPixel* __restrict mr = mask.row(y);
        int n = 0;
        for (int x = 0; x < w; ++x) {
            const bool ok = std::fabs(ir[x]) <= big;
            mr[x] = ok ? MaskPixel(0) : noData;
            n += ok;
        }
        if (n < w)
            for (int x = 0; x < w; ++x)
                if (!(std::fabs(ir[x]) <= big)) vr[x] = inf;
        finite += n;
    }
    if (finitePixels) *finitePixels = finite;
    return exposureOfImage(in, mask, var);
}

}  // namespace drp
