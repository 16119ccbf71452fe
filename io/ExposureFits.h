// Exposure <-> FITS in the layout of DESIGN.md section 5, readable by astropy and ds9:
//
//   HDU 0  primary, no data: the exposure metadata, VisitInfo keys (EXPTIME, MJD-AVG, BORE-RA, ...),
//          PhotoCalib keys (CALIBMN, CALIBERR, MAGZERO), DETECTOR, provenance (DRPVERS, DRPFMT)
//   HDU 1  EXTNAME='IMAGE'     float32 (BITPIX -32)
//   HDU 2  EXTNAME='MASK'      int32 (BITPIX 32), one MP_<NAME> = bit key per mask plane
//   HDU 3  EXTNAME='VARIANCE'  float32
//   HDU 4  EXTNAME='PSF'       (only with a PSF) binary table, one row, one double vector column per
//          array of the PsfRecord; PSFTYPE = the registered PSF type name
//
// Each image HDU carries the WCS in standard keywords (Wcs::toFitsMetadata(xy0), TAN or TAN-SIP), the
// IRAF LTV1/LTV2 = -xy0 keys and an alternate linear WCS 'A' giving parent pixel coordinates, so xy0
// round-trips. A round trip is bit-exact: pixels (NaN payloads included), mask planes, variance, WCS
// parameters (exact companions DRPCRPXn / DRPCRVRn are written beside CRPIXn / CRVALn, whose decimal
// degree and 1-based forms are not always exact), PSF record, calibration, visit info, detector, xy0.
//
// With ExposureWriteOptions::compressed() the three planes are tile-compressed HDUs (FitsCompression:
// lossless GZIP_2 for IMAGE and VARIANCE, RICE_1 for MASK), each still named IMAGE / MASK / VARIANCE
// with the same header cards; the reader finds the planes by EXTNAME, so it reads both layouts, as do
// astropy (CompImageHDU), ds9 and fitsio. A round trip is bit-exact either way. Large NO_DATA regions
// (a coadd at a field's edge) shrink to almost nothing; noisy float pixels compress little (~10-20%).
//
// Writing goes to a temporary file in the destination directory, renamed into place only when complete
// (io/AtomicFile.h): a failed or killed write leaves no partial file and any old file untouched.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "core/Exposure.h"
#include "io/FitsFile.h"

namespace drp {

/// What readExposure insists on.
struct ExposureReadOptions {
    /// Without a celestial WCS in the IMAGE header: true -> NotFoundError, false -> wcs() is null.
    bool requireWcs = false;
    /// Without a PSF HDU: true -> NotFoundError, false -> psf() is null.
    bool requirePsf = false;
};

/// How writeExposure stores the pixel planes. Plain value; compare with ==; check with validate().
struct ExposureWriteOptions {
    /// Tile compression of the IMAGE plane (float32). Rice is refused (lossy for floats). Default None.
    FitsCompression image = FitsCompression::None;
    /// Tile compression of the MASK plane (int32). Default None.
    FitsCompression mask = FitsCompression::None;
    /// Tile compression of the VARIANCE plane (float32). Rice is refused. Default None.
    FitsCompression variance = FitsCompression::None;

    /// The lossless compressed layout: GZIP_2 (unquantised) for IMAGE and VARIANCE, RICE_1 for MASK.
    static ExposureWriteOptions compressed();
    /// Throws ConfigError if a float plane asks for Rice.
    void validate() const;
    friend bool operator==(const ExposureWriteOptions&, const ExposureWriteOptions&) = default;
};

/// Write `exposure` to `path` (replacing an existing file atomically). Throws FitsError/IoError for I/O
/// problems and InvalidInputError for metadata FITS cannot hold; the message names `path`.
void writeExposure(const std::filesystem::path& path, const Exposure& exposure, const ExposureWriteOptions& options = {});

/// Read an exposure written by writeExposure (or any file with IMAGE/MASK/VARIANCE HDUs). Errors
/// (typed, naming the file and the HDU): FitsError for unreadable, truncated or non-FITS files;
/// NotFoundError for a missing HDU (or a missing WCS/PSF when required); InvalidInputError for a plane of
/// the wrong type (e.g. MASK stored as float), mismatched plane sizes, a malformed WCS or PSF record.
Exposure readExposure(const std::filesystem::path& path, const ExposureReadOptions& options = {});

/// Conventions of the exposure file shared with io/ExposureHeader: the primary-header keys that the writer
/// derives from the Exposure's typed members (the reader removes them from metadata), and xy0 = -LTV (IRAF;
/// (0, 0) without LTV keys; InvalidInputError for a non-integer offset).
bool isOwnedPrimaryKey(const std::string& key);
Point2I readXy0(const PropertyList& md);

/// The PSF of an exposure file from its "PSF" table HDU (f is left there): nullptr when there is none, unless
/// `required` (NotFoundError). Errors name `file` and the HDU. Shared by readExposure and readExposureHeader.
std::shared_ptr<const Psf> readExposurePsf(FitsFile& f, const std::string& file, bool required);

/// How a weight image encodes the per-pixel noise.
enum class WeightKind { Variance, InverseVariance, Sigma };

/// One image HDU of an arbitrary FITS file.
struct FitsImage {
    ImageF image;                     ///< pixels as float32 (any BITPIX; BSCALE/BZERO applied; BLANK -> NaN)
    PropertyList metadata;            ///< the HDU's header (structural keys stripped)
    std::shared_ptr<const Wcs> wcs;   ///< null if the header has no usable TAN/TAN-SIP WCS
    std::string wcsProblem;           ///< why wcs is null ("" if it is not)
    int hdu = 0;                      ///< the 0-based HDU index read
    FitsImageInfo info;               ///< BITPIX, shape, compression of that HDU
};

/// Read a 2-d image from HDU `hdu` (0-based) of any FITS file, or with hdu = -1 from the first HDU that
/// holds a 2-d image (the primary array, else the first image extension; tile-compressed images count).
/// xy0 is taken from LTV1/LTV2 when present. Integer images (int16, uint16 via BZERO=32768, int32, ...)
/// are converted exactly when representable in float32.
FitsImage readImage(const std::filesystem::path& path, int hdu = -1);

/// Read a noise image and convert it to variance (inverse variance <= 0 or non-finite -> +inf).
ImageF readVariance(const std::filesystem::path& path, int hdu, WeightKind kind);

/// A calibrated single image as an Exposure: pixels from `imagePath`/`imageHdu`; variance from
/// `weightPath`/`weightHdu` converted per `kind` (if `weightPath` is empty the variance is NaN =
/// unknown); NO_DATA set where the image is not finite or the variance is not finite/positive; the
/// header becomes metadata and, where its keys parse, VisitInfo.
Exposure readImageAsExposure(const std::filesystem::path& imagePath, int imageHdu = -1,
                             const std::filesystem::path& weightPath = {}, int weightHdu = -1,
                             WeightKind kind = WeightKind::InverseVariance);

/// An image read with readImage, with a uniform noise, as an Exposure (the pixels are shared, not copied):
/// variance = `variance` and no mask bit where the pixel is finite, variance +inf and NO_DATA where it is
/// not; the header becomes metadata and, where its keys parse, VisitInfo. One pass builds both planes;
/// `finitePixels` (if not null) receives the number of finite pixels.
Exposure imageAsExposure(FitsImage in, float variance, std::int64_t* finitePixels = nullptr);

}  // namespace drp
