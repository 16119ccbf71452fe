#include "io/ExposureHeader.h"

#include <cmath>
#include <string>
#include <variant>

#include "core/Error.h"
#include "io/ExposureFits.h"
#include "io/FileContext.h"
#include "io/FitsFile.h"
#include "io/WcsFits.h"

namespace drp {

ExposureHeader readPrimaryAndImageHeaders(FitsFile& f, const std::string& file, const ExposureReadOptions& options) {
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
    return out;
}

ExposureHeader readExposureHeader(const std::filesystem::path& path, const ExposureReadOptions& options) {
    const std::string file = path.string();
    FitsFile f = withFileContext(file, "", [&] { return FitsFile(path, FitsFile::Mode::Read); });
    ExposureHeader out = readPrimaryAndImageHeaders(f, file, options);
    out.psf = readExposurePsf(f, file, options.requirePsf);
    return out;
}

}  // namespace drp
