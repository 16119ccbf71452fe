// WCS <-> FITS header with drp's exact companion keys. The standard keys (CRPIX in 1-based file
// pixels, CRVAL in degrees) cannot carry the in-memory parameters bit for bit, so drp also writes
// DRPCRPX1/2 (0-based parent-frame CRPIX) and DRPCRVR1/2 (CRVAL in radians); a reader uses them only
// when they agree with the standard keys (nobody edited the header since drp wrote it).
#pragma once

#include <memory>
#include <string>

#include "core/PropertyList.h"
#include "core/Wcs.h"

namespace drp {

/// Standard WCS keys for an image whose first pixel is parent pixel `xy0`, plus the exact companions.
PropertyList wcsToFitsMetadata(const Wcs& wcs, Point2I xy0 = {0, 0});
/// The WCS of a header, or null when it has none (`problem`, if given, receives the reason).
/// Throws InvalidInputError for a malformed or unsupported WCS.
std::shared_ptr<const Wcs> wcsFromFitsMetadata(const PropertyList& md, Point2I xy0 = {0, 0},
                                               std::string* problem = nullptr);

}  // namespace drp
