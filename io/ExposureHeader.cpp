#include "io/ExposureHeader.h"

#include <cmath>
#include <string>
#include <variant>

#include "core/Error.h"
#include "io/FileContext.h"
#include "io/FitsFile.h"
#include "io/WcsFits.h"

namespace drp {

namespace {

// The same conventions as io/ExposureFits.cpp (whose helpers are private to it): primary keys the
// typed members own, and xy0 = -LTV.
bool isOwnedPrimaryKey(const std::string& key) {
    if (key == "DRPVERS" || key == "DRPFMT") return true;
    for (const auto& k : VisitInfo::metadataKeys())
        if (k == key) return true;
    for (const auto& k : PhotoCalib::metadataKeys())
        if (k == key) return true;
    return false;
}

Point2I readXy0(const PropertyList& md) {
    Point2I xy0{0, 0};
    const char* keys[2] = {"LTV1", "LTV2"};
    int* out[2] = {&xy0.x, &xy0.y};
    for (int i = 0; i < 2; ++i) {
        if (!md.has(keys[i])) continue;
        const double v = md.getDouble(keys[i]);
        if (!(std::fabs(v) < 1e9) || v != std::floor(v))
            throw InvalidInputError(std::string(keys[i]) + " is not an integer pixel offset");
        *out[i] = -int(v);
    }
    return xy0;
}

}  // namespace

ExposureHeader readExposureHeader(const std::filesystem::path& path, const ExposureReadOptions& options) {
    const std::string file = path.string();
    FitsFile f = withFileContext(file, "", [&] { return FitsFile(path, FitsFile::Mode::Read); });
    ExposureHeader out;

    PropertyList primary = withFileContext(file, "", [&] { return f.readHeader(); });
    withFileContext(file, "HDU 0 (primary): ", [&] {
        out.visitInfo = VisitInfo::fromMetadata(primary);
        if (auto calib = PhotoCalib::fromMetadata(primary)) out.photoCalib = std::make_shared<const PhotoCalib>(*calib);
    });
    if (primary.has("DETECTOR") && std::holds_alternative<std::int64_t>(primary.get("DETECTOR"))) {
        out.detector = int(primary.getInt("DETECTOR"));
        primary.remove("DETECTOR");
    }
    for (const auto& key : primary.keys())
        if (isOwnedPrimaryKey(key)) primary.remove(key);
    out.metadata = std::move(primary);

    // IMAGE: size, xy0 and WCS from the header only (no pixels read).
    withFileContext(file, "", [&] { f.moveToHdu("IMAGE"); });
    const std::string imageWhere = f.describeHdu() + ": ";
    const FitsImageInfo info = withFileContext(file, imageWhere, [&] { return f.imageInfo(); });
    if (info.width() <= 0 || info.height() <= 0)
        throw InvalidInputError(imageWhere + "not a 2-d image", file);
    const PropertyList imageHeader = withFileContext(file, imageWhere, [&] { return f.readHeader(); });
    const Point2I xy0 = withFileContext(file, imageWhere, [&] { return readXy0(imageHeader); });
    out.bbox = Box2I(xy0, info.width(), info.height());
    std::string wcsProblem;
    out.wcs = withFileContext(file, imageWhere, [&] { return wcsFromFitsMetadata(imageHeader, xy0, &wcsProblem); });
    if (!out.wcs && options.requireWcs)
        throw NotFoundError(imageWhere + "no celestial WCS, and one is required (" + wcsProblem + ")", file);

    if (f.hasHdu("PSF")) {
        f.moveToHdu("PSF");
        const std::string psfWhere = f.describeHdu() + ": ";
        out.psf = withFileContext(file, psfWhere, [&] {
            const PropertyList header = f.readHeader();
            PsfRecord record;
            record.typeName = header.getString("PSFTYPE");
            if (f.numRows() != 1) throw InvalidInputError("the PSF table must have exactly one row");
            for (const auto& column : f.columns()) record.set(column.name, f.readColumn<double>(column.name));
            return Psf::fromRecord(record);
        });
    } else if (options.requirePsf) {
        throw NotFoundError("no HDU with EXTNAME='PSF', and a PSF is required", file);
    }
    return out;
}

}  // namespace drp
