// FitsFile: the one wrapper of CFITSIO. An RAII, move-only handle on one FITS file; every CFITSIO
// status becomes a drp::FitsError naming the file, the HDU (0-based index and EXTNAME) and CFITSIO's
// own error text.
//
// Conventions:
//  * HDU indices are 0-based (0 = primary), as in astropy.
//  * File names are taken literally (fits_open_diskfile / fits_create_diskfile): no CFITSIO
//    extended-filename syntax ("file.fits[1]", "!file", "mem://") is interpreted.
//  * Header keys are upper-cased by CFITSIO; keys longer than 8 characters use the HIERARCH convention.
//  * Image arrays map to Image<T>: FITS axis 1 is x (columns), axis 2 is y (rows); FITS pixel (1,1)
//    is local pixel (0,0).
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "core/Image.h"
#include "core/PropertyList.h"

namespace drp {

/// Shape and storage type of an image HDU.
struct FitsImageInfo {
    int bitpix = 0;            ///< BITPIX as stored (ZBITPIX for tile-compressed images)
    int equivalentBitpix = 0;  ///< the type CFITSIO reports after BSCALE/BZERO (e.g. 20 = uint16)
    std::vector<std::int64_t> shape;  ///< NAXISn, n = 1..NAXIS
    bool compressed = false;
    /// Width and height of a 2-d image (trailing axes of length 1 are allowed). 0 if not 2-d.
    int width() const;
    int height() const;
};

/// Tile compression of an image HDU written by FitsFile::writeImage. Only lossless modes: floating-point
/// pixels are never quantised, so a compressed image reads back bit-exactly (NaN payloads included).
/// Tiles are 16 full-width rows (ZTILE2 = 16), each gzip- or Rice-compressed on its own.
/// A compressed image is stored as a BINTABLE extension with ZIMAGE = T (the FITS tile-compression
/// convention); every reader here (and astropy, ds9, fitsio) sees it as an image HDU with its EXTNAME.
enum class FitsCompression {
    None,   ///< a plain image HDU
    Gzip2,  ///< GZIP_2 (gzip of byte-shuffled pixels): any pixel type; the lossless choice for floats
    Rice,   ///< RICE_1: integer pixel types only (InvalidInputError for float or double images)
};

/// One column of a binary table. `format` is a FITS TFORM: "1D", "25D", "1E", "1J", "1K", "1I", "1B",
/// "1L", "16A" ...; the repeat count gives a fixed-length vector per row.
struct FitsColumn {
    std::string name;
    std::string format;
    std::string unit;
};

/// What a table column holds (from TFORM).
struct FitsColumnInfo {
    int index = 0;            ///< 1-based column number
    std::string name;
    int typecode = 0;         ///< CFITSIO type code (TDOUBLE, TFLOAT, TLONG, TLONGLONG, TSTRING...)
    std::int64_t repeat = 0;  ///< elements per row (string width for strings)
    std::int64_t width = 0;   ///< bytes per element
};

class FitsFile {
public:
    enum class Mode {
        Read,       ///< existing file, read only
        ReadWrite,  ///< existing file, read and modify/append
        Create      ///< a new file; fails if the path already exists
    };

    FitsFile(const std::filesystem::path& path, Mode mode);
    /// Closes the file; errors at this point are swallowed (call close() to see them).
    ~FitsFile();
    FitsFile(FitsFile&& other) noexcept;
    FitsFile& operator=(FitsFile&& other) noexcept;
    FitsFile(const FitsFile&) = delete;
    FitsFile& operator=(const FitsFile&) = delete;

    /// Flush and close, throwing FitsError if CFITSIO reports a problem (e.g. a full disk).
    void close();
    bool isOpen() const { return fptr_ != nullptr; }
    const std::filesystem::path& path() const { return path_; }
    /// The raw CFITSIO handle (a `fitsfile*`; fitsio.h is kept out of this header), for calls this class
    /// does not wrap.
    void* handle() const { return fptr_; }

    // ---- HDUs
    int numHdus() const;
    /// 0-based index of the current HDU.
    int currentHdu() const;
    /// EXTNAME of the current HDU ("" if none; "PRIMARY" is not implied).
    std::string extname() const;
    /// Move to HDU `index` (0-based). Throws NotFoundError if there is no such HDU.
    void moveToHdu(int index);
    /// Move to the first HDU whose EXTNAME is `extname` (case-insensitive). NotFoundError if absent.
    void moveToHdu(const std::string& extname);
    bool hasHdu(const std::string& extname) const;
    /// True if the current HDU is an image (including a tile-compressed image).
    bool isImageHdu() const;
    /// True if the current HDU is a binary or ASCII table (tile-compressed images excluded).
    bool isTableHdu() const;
    /// "HDU 2 (EXTNAME='MASK')" for messages.
    std::string describeHdu() const;

    // ---- headers
    /// All cards of the current HDU: typed values (logical, integer, float; an undefined value reads as
    /// NaN), comments, long strings (CONTINUE) joined, COMMENT/HISTORY joined with '\n'. For
    /// tile-compressed images the image header is returned. With `stripStructural`, keys that describe
    /// the data layout (SIMPLE, BITPIX, NAXISn, EXTEND, XTENSION, PCOUNT, GCOUNT, TFIELDS, Txxxxn,
    /// BSCALE, BZERO, BLANK, CHECKSUM, DATASUM, Z* compression keys) are omitted.
    PropertyList readHeader(bool stripStructural = true) const;
    /// Write (update) every entry of `md` into the current HDU. Doubles are written with 17 significant
    /// digits (exact round trip); NaN and infinities become undefined values; strings longer than a
    /// card use the CONTINUE convention; COMMENT/HISTORY values are split on '\n'. Structural keys are
    /// skipped. Throws InvalidInputError for a key or string that FITS cannot hold (non-printable
    /// or non-ASCII characters, '=' in a key).
    void writeHeader(const PropertyList& md);

    // ---- images
    /// Shape and type of the image in the current HDU; InvalidInputError if the HDU is a table.
    FitsImageInfo imageInfo() const;
    /// Read the 2-d image in the current HDU, converting any BITPIX to T (BSCALE/BZERO applied). For a
    /// float or double T, integer pixels equal to BLANK become NaN. Throws InvalidInputError if the HDU
    /// is not a 2-d image and FitsError if CFITSIO fails (e.g. a truncated file or a value overflowing T).
    template <typename T>
    Image<T> readImage() const;
    /// Append an image HDU holding `image` with its natural BITPIX (float -32, double -64, int32 32,
    /// uint16 16 with BZERO=32768) and, if given, EXTNAME and header cards. The first HDU written to a
    /// new file is the primary HDU. With `compression` the HDU is tile-compressed (see FitsCompression);
    /// a compressed image cannot be the primary HDU (LogicError: write an empty primary first).
    template <typename T>
    void writeImage(const Image<T>& image, const std::string& extname = {}, const PropertyList& header = {},
                    FitsCompression compression = FitsCompression::None);
    /// Append an image HDU with no data (NAXIS=0) — e.g. a primary HDU that only carries metadata.
    void writeEmptyHdu(const std::string& extname = {}, const PropertyList& header = {});

    // ---- binary tables
    /// Append a binary-table HDU with `columns` and `numRows` rows (filled later by writeColumn).
    void createTable(const std::vector<FitsColumn>& columns, std::int64_t numRows, const std::string& extname = {},
                     const PropertyList& header = {});
    std::int64_t numRows() const;
    std::vector<FitsColumnInfo> columns() const;
    /// Column by name (case-insensitive, exact); NotFoundError if absent.
    FitsColumnInfo columnInfo(const std::string& name) const;
    bool hasColumn(const std::string& name) const;
    /// Write `values` into column `name` starting at 0-based row `firstRow`; a vector column of repeat r
    /// takes r values per row (row-major). T: double, float, int16_t, int32_t, int64_t, uint8_t.
    template <typename T>
    void writeColumn(const std::string& name, std::span<const T> values, std::int64_t firstRow = 0);
    /// Read a whole numeric column (all rows x repeat values), converting to T (TSCAL/TZERO applied).
    /// A bit ('X') column gives one 0/1 value per bit.
    template <typename T>
    std::vector<T> readColumn(const std::string& name) const;
    void writeStringColumn(const std::string& name, const std::vector<std::string>& values, std::int64_t firstRow = 0);
    std::vector<std::string> readStringColumn(const std::string& name) const;

    /// Throw a FitsError for CFITSIO `status`, describing `action`, the file and the current HDU, with
    /// CFITSIO's error-message stack (which is then cleared).
    [[noreturn]] void throwFitsError(int status, const std::string& action) const;

private:
    void check(int status, const std::string& action) const {
        if (status != 0) throwFitsError(status, action);
    }
    void requireOpen(const char* what) const;
    void requireWritable(const char* what) const;
    void writeKeyValue(const std::string& key, const PropertyList::Value& value, const std::string& comment);

    void* fptr_ = nullptr;  // fitsfile*
    std::filesystem::path path_;
    Mode mode_ = Mode::Read;
};

}  // namespace drp
