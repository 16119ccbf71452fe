// Raw exposures <-> multi-extension FITS in the layout of LSST raws (obs_lsst):
//
//   HDU 0  primary, no data: the raw's metadata, VisitInfo keys (EXPTIME, DARKTIME, MJD-AVG, ...), the
//          header WCS in standard keys (Wcs::toFitsMetadata, assembled detector frame) with exact
//          companions DRPCRPX1/2 and DRPCRVR1/2, DETECTOR (id), DETNAME, DETSIZE, NAMPS, DRPVERS, RAWFMT
//   HDU 1.. one image HDU per amplifier, in Detector::amplifiers() order, EXTNAME = amplifier name,
//          unsigned 16-bit (BITPIX 16, BZERO 32768), the whole raw amplifier frame (Amplifier::rawBBox),
//          with IRAF-style 1-based sections:
//            DATASEC   data pixels (raw frame)
//            BIASSEC   serial overscan (raw frame)
//            PRESCAN   serial prescan (raw frame; only when non-empty)
//            PBIASSEC  parallel overscan (raw frame; only when non-empty)
//            DETSEC    where DATASEC lands in the assembled detector; a reversed range (x1 > x2) marks a
//                      readout flip, as in LSST raws
//            FLIPX, FLIPY (logical) the flips spelt out; READCORN the readout corner (LL, LR, UL, UR)
//            GAIN [e-/ADU], RDNOISE [e-], SATURATE [ADU]: the camera's nominal values; BUNIT = 'adu'
//
// Reading validates against the Detector: every amplifier HDU present (NotFoundError naming the file and
// the EXTNAME), integer pixels of the raw frame's shape and DATASEC as the Detector says, DETECTOR equal
// to the detector's id (InvalidInputError naming the file). CFITSIO failures (truncated or non-FITS
// files) are FitsErrors naming the file. A round trip is bit-exact for pixels, metadata, VisitInfo and
// the header WCS.
//
// Writing goes to a temporary file renamed into place when complete (io/AtomicFile.h).
#pragma once

#include <filesystem>

#include "core/Camera.h"
#include "core/RawExposure.h"

namespace drp {

/// Write `raw` (validated against `detector` first: InvalidInputError for a wrong shape or a value outside
/// [0, 65535]) to `path`, replacing an existing file atomically. Keys of raw.metadata that the writer owns
/// (VisitInfo keys, WCS keys, DETECTOR, DETNAME, DETSIZE, NAMPS, DRPVERS, RAWFMT) are overwritten by the
/// typed members.
void writeRaw(const std::filesystem::path& path, const RawExposure& raw, const Detector& detector);

/// Read a raw written by writeRaw (or any file of the same layout) for `detector`.
RawExposure readRaw(const std::filesystem::path& path, const Detector& detector);

/// Only the primary header's WCS (the telescope's idea of it), without reading any pixels; null when the
/// header has none. For planning (which tract a raw falls in) over many files.
std::shared_ptr<const Wcs> readRawHeaderWcs(const std::filesystem::path& path);

/// "[x1:x2,y1:y2]", 1-based inclusive, of a box (raw or assembled frame); with flipX/flipY the range is
/// written reversed.
std::string fitsSection(const Box2I& box, bool flipX = false, bool flipY = false);

}  // namespace drp
