// ExposureHeader: what an exposure file (io/ExposureFits.h layout) says about its pixels without the
// pixels — the image size and xy0, the WCS, the PSF model, the VisitInfo, the PhotoCalib, the detector
// and the primary header. Reads only the primary header, the IMAGE header and the PSF table HDU: no
// pixel is read or decompressed (a coadd choosing its inputs by seeing or date pays no pixel I/O).
// Everything agrees with readExposure() of the same file (the same parsers and conventions).
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "core/Box.h"
#include "core/PhotoCalib.h"
#include "core/PropertyList.h"
#include "core/Psf.h"
#include "core/VisitInfo.h"
#include "core/Wcs.h"
#include "io/ExposureFits.h"

namespace drp {

/// The non-pixel content of an exposure file.
struct ExposureHeader {
    Box2I bbox;                                     ///< parent-frame box of the IMAGE plane (xy0 from LTV)
    PropertyList metadata;                          ///< primary header, owned keys removed (as readExposure)
    VisitInfo visitInfo;                            ///< from the primary header
    std::shared_ptr<const PhotoCalib> photoCalib;   ///< null if the file has none
    std::shared_ptr<const Wcs> wcs;                 ///< null if the IMAGE header has no celestial WCS
    std::shared_ptr<const Psf> psf;                 ///< null if there is no PSF HDU
    std::optional<int> detector;                    ///< DETECTOR key
};

/// Read the header part of an exposure written by writeExposure (plain or tile-compressed planes).
/// options.requireWcs / requirePsf: NotFoundError if missing. Errors are typed and name the file and HDU
/// like readExposure's.
ExposureHeader readExposureHeader(const std::filesystem::path& path, const ExposureReadOptions& options = {});

/// The primary and IMAGE headers of the exposure file open in `f` (named `file` in errors): every member
/// of ExposureHeader but psf (options.requireWcs: NotFoundError without a WCS). `f` is left at the IMAGE
/// HDU, its pixels unread. The one parser of those headers, shared by readExposureHeader and readExposure.
ExposureHeader readPrimaryAndImageHeaders(FitsFile& f, const std::string& file, const ExposureReadOptions& options);

}  // namespace drp
