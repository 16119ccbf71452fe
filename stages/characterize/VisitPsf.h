// VisitPsf: one PSF model for all the detectors of a visit, fitted to their pooled PSF stars (as Rubin's piff
// "visit-level" PSF and DES's PSFEx-on-the-focal-plane), then handed to each detector in its own frame.
//
// Why: a detector of a sparse band (u, y) has 6-20 PSF stars, and a per-detector pixel model carries their photon
// noise (model size error dT/T 2-4e-3 per detector). The telescope's PSF is a smooth function of the focal plane, so
// one model over the union of the stars, whose polynomials vary over the whole visit, averages that noise down by the
// number of detectors while still following the PSF's variation over the focal plane.
//
// Frames. The "visit frame" is a pixel frame whose axes are parallel to every detector's pixel axes: detector pixel p
// is visit-frame pixel p + offset_d (offsets may have fractions; a camera whose detectors are rotated against each
// other needs the WCS, which this model does not hold). The model (PsfexPsf) is fitted over the union of the
// detectors' boxes in the visit frame; each detector receives model->reframed(bbox_d, offset_d), the same polynomials
// re-expanded over its own box (exact to rounding), so a detector's PSF is an ordinary PsfexPsf in its own pixels.
//
// Algorithm: selectPsfStars on each detector's candidates (as determinePsf), then the determinePsf fit over the union
// (PsfStarFit.h): each star's stamp, variance, moments and residuals come from its own cutout in its detector's frame,
// its polynomial terms from its visit-frame position. The stamp size and sampling are chosen from the median of all
// selected stars; the reserve split (seeded by PsfDeterminerConfig::seed) runs over all usable stars, detector by
// detector; minStars, minStarsPerTerm, the outlier and size checks apply to the visit's stars. The spatial order is
// VisitPsfConfig::spatialOrder (PsfDeterminerConfig::spatialOrder is the per-detector one), lowered as determinePsf
// lowers it (stars per term, then the order the stars' sizes and ellipticities show).
//
// Cutouts (psfStarCutouts): the driver cuts, per detector, a small deep-copied MaskedImageF around each selected star,
// so that only those pixels travel to wherever the visit is fitted. Side 2 h + 1 about the candidate's nearest pixel,
// h = max(N_cap / 2 + padding + 3, ceil(2 windowSigmas sigma_max) + 3), clipped to the image, with
//  * N_cap: the stamp side for stars kCutoutSigmaFactor (1.5) times the detector's median selected sigma
//    (config.stampSize when set): the visit's median star can be larger than this detector's (the FWHM grows with
//    focal-plane radius), and determineVisitPsf caps the stamp side at the smallest N_cap of the detectors;
//  * +3: the moments' re-centred centre may move 2 pixels from the candidate (farther, the star is dropped), and the
//    stamp is centred on its nearest pixel;
//  * 2 windowSigmas sigma_max: the adaptive-moments window of a weight up to twice the star's largest sigma (the
//    candidate's moments), so the moments see the same pixels as on the whole image.
// A star whose stamp leaves the detector is dropped by the fit, as determinePsf drops it. With one detector at offset
// 0 and its cutouts, determineVisitPsf gives determinePsf's result on the whole image, bit for bit (a test).
#pragma once

#include <memory>
#include <vector>

#include "core/MaskedImage.h"
#include "core/PsfexPsf.h"
#include "stages/characterize/PsfDeterminer.h"

namespace drp {

/// Configuration of determineVisitPsf (the star selection and fit settings are the PsfDeterminerConfig's). Plain value;
/// compare with ==; check with validate().
struct VisitPsfConfig {
    /// Order of the visit-frame polynomials (the fit lowers it as determinePsf does: stars per term, and the order the
    /// stars' sizes and ellipticities show). Bounds: [0, 3]. Default 2: the simulator's FWHM is quadratic in the
    /// focal-plane radius and its ellipticity linear, so the cubic terms only add noise (test_VisitPsf's mosaic, 4
    /// seeds: mean |dT/T| against the truth 6.3e-3 with order 2, 6.5e-3 with 3, 2.9e-2 with 1).
    int spatialOrder = 2;
    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const VisitPsfConfig&, const VisitPsfConfig&) = default;
};

/// One detector's contribution.
struct VisitPsfDetector {
    int detector = 0;                      ///< id, for messages
    Box2I bbox;                            ///< the detector's pixel box (its own frame)
    Point2D offset{0.0, 0.0};              ///< detector pixel + offset = visit-frame pixel
    std::vector<PsfCandidate> candidates;  ///< every candidate of the detector (detector frame), as determinePsf takes them
    std::vector<MaskedImageF> cutouts;     ///< same length as candidates: psfStarCutouts' cutout of each selected one, 0x0 otherwise
};

struct VisitPsfResult {
    std::shared_ptr<const PsfexPsf> model;          ///< in the visit frame (over the detectors' union)
    /// Aligned with the input: psf = model->reframed(bbox, offset); selected / used / reserved index THAT detector's
    /// candidates; its reserved stars' residuals and their statistics; nUsed (its stars in the fit), stampSize,
    /// oversampling, spatialOrder, solverIterations (the visit fit's).
    std::vector<PsfDeterminationResult> detectors;
    /// The whole visit: psf = model; nUsed, spatialOrder, stampSize, oversampling, the size-consistency chi^2 over all
    /// the visit's stars, and every reserved star's linear dT/T pooled over the detectors (the statistics as
    /// PsfDeterminationResult defines them; no indices).
    PsfDeterminationResult pooled;
    int detectorsWithStars = 0;  ///< detectors with at least one star in the fit
};

/// Stamp-side factor of the cutouts over the detector's median selected star (see the header).
inline constexpr double kCutoutSigmaFactor = 1.5;

/// Cutouts (deep copies, detector-frame xy0) around the candidates selectPsfStars(candidates, config) selects, large
/// enough for any stamp determineVisitPsf can choose for these stars and for their moments' window (the header's
/// rule); indices as `candidates`, an empty MaskedImageF for the others. Clipped to the image.
std::vector<MaskedImageF> psfStarCutouts(const MaskedImageF& image, const std::vector<PsfCandidate>& candidates,
                                         const PsfDeterminerConfig& config);

/// Star selection per detector, then one fit over the union in the visit frame (see the header). Throws ConfigError,
/// InvalidInputError (cutouts not aligned with the candidates, a selected star without its cutout, an empty bbox,
/// a non-finite offset), or NumericalError like determinePsf when the visit has too few usable stars or its stars
/// fail the size consistency check. A detector without stars still gets the reframed model.
VisitPsfResult determineVisitPsf(const std::vector<VisitPsfDetector>& detectors, const PsfDeterminerConfig& psf,
                                 const VisitPsfConfig& config);

}  // namespace drp
