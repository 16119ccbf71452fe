// The two datasets of the visit-level PSF (stages/characterize/VisitPsf.h) and their HDF5 files.
//
// psfStars (one per visit and detector, written by characterizeImage): the bright-pass PSF candidates of the
// detector with a cutout around each star the PSF selection chose. Groups:
//   candidates  one row per candidate (detector frame): x, y, flux, fluxErr, ixx, iyy, ixy, the five candidate
//               flags, and its cutout's box (cutoutMinX/MinY/Width/Height, width 0: none) and first row in `pixels`;
//               metadata DETECTOR, the detector's bbox (BBOXX0, BBOXY0, BBOXW, BBOXH) and the characterisation's
//               summary (SEEINGPX, PSFTHRSH, NCR, ...)
//   pixels      the cutouts' pixels, cutout after cutout, row-major: image, variance (float32) and bad (a flag: any
//               of the PSF determiner's badMaskPlanes was set; read back as the BAD plane, which those planes include)
// visitPsf (one per visit, written by measureVisitPsf): the model over the focal plane, or why there is none.
//   detectors   one row per detector that contributed: detector, offset (visit frame = detector pixel + offset),
//               bbox, and the fit on its stars (nUsed, stamp size, oversampling, spatial order, the reserved stars'
//               dT/T statistics as PsfDeterminationResult holds them); metadata: VPSFOK (a model or not), VPSFWHY
//               (the reason when not), VPSFNUSE (stars in the fit), VPSFORDR (its spatial order), PSFTYPE; the task
//               adds VPSFNDST (detectors with stars), VPSFNRES and VPSFDTT (reserved stars, their weighted mean dT/T)
//   stars       the PSF stars: detector, x, y (detector frame), role (0 selected: one row for every selected star; 1
//               used, 2 reserved: one more row each), and a reserved star's linear and direct dT/T and weight
//   model_<a>   each array `a` of the model's PsfRecord, as one float64 column "value"
// Readers throw Hdf5Error / NotFoundError naming the file for a damaged or incomplete file.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/PropertyList.h"
#include "core/PsfexPsf.h"
#include "drivers/singlevisit/SingleVisit.h"

namespace drp {

/// The psfStars dataset (PsfStars, SingleVisit.h); `badMaskPlanes`: the PSF determiner's (PsfDeterminerConfig).
void writePsfStars(const std::filesystem::path& path, const PsfStars& stars, const std::vector<std::string>& badMaskPlanes);
/// The cutouts' masks have only the BAD plane set (where any bad plane was set when written).
PsfStars readPsfStars(const std::filesystem::path& path);

/// The visitPsf dataset.
struct VisitPsfData {
    std::shared_ptr<const PsfexPsf> model;  ///< visit frame; null when there is none
    std::string reason;                     ///< why there is none ("" with a model)
    struct DetectorFit {
        int id = 0;
        Point2D offset;                     ///< visit frame = detector pixel + offset
        Box2I bbox;
        PsfDeterminationResult fit;         ///< psf unset; indices empty; the QA numbers and reserved residuals
        std::vector<Point2D> selected, used, reserved;
    };
    std::vector<DetectorFit> detectors;
    int nUsed = 0;
    int spatialOrder = 0;
    PropertyList metadata;                  ///< provenance

    /// The model for detector `id` (reframed to its bbox), or nothing when there is no model or the detector did not
    /// contribute.
    std::optional<DetectorVisitPsf> forDetector(int id) const;
};

void writeVisitPsf(const std::filesystem::path& path, const VisitPsfData& data);
VisitPsfData readVisitPsf(const std::filesystem::path& path);

}  // namespace drp
