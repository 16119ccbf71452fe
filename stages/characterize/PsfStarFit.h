// PsfStarFit: the PSF determiner's fit (PsfDeterminer.h: stamps, reserve split, native or oversampled fit, clipping,
// outlier rejection, order selection, size check, reserved-star residuals) over the stars of one or several images
// that share one model frame. Internal to the characterize stage: determinePsf (one image, offset 0) and
// determineVisitPsf (VisitPsf.h: the detectors of a visit) are its two callers.
//
// Frames. Each source (a detector) has its own pixel frame; its position p is p + offset in the model frame (axes
// parallel). A star's stamp, variances, moments and residuals are read from its own image in its own frame (the whole
// detector image, or a cutout holding the star's stamp and moments window); only the polynomials see the model frame:
// the fit's terms T_k are evaluated at the star's centre + offset over the fit box, the union of the sources' boxes
// shifted into the model frame (rounded outwards). Where the model is compared with a star (flux, clipping, chi^2,
// recentring, residuals) it is the model re-expressed in the star's frame (PsfexPsf::reframed), so the sub-pixel phase
// is the star's own. With one source at offset 0 every step is the single-image determiner's, bit for bit (reframed
// is then a copy).
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "core/MaskedImage.h"
#include "core/PsfexPsf.h"
#include "stages/characterize/PsfDeterminer.h"

namespace drp::psffit {

/// Median (NaN if empty); the mean of the two middle values for an even count.
double median(std::vector<double> v);
/// 1.4826 x the median absolute deviation from `centre`.
double robustSigma(const std::vector<double>& v, double centre);

/// The model stamp side for stars of Gaussian sigma `sigma` (config.stampSize, or 2 ceil(stampRadiusSigma sigma) + 1
/// clamped to [15, 61]).
int stampSizeFor(double sigma, const PsfDeterminerConfig& config);
/// sqrt(T / 2) of the median T = ixx + iyy of the candidates at `indices` (NaN if none).
double medianSigma(const std::vector<PsfCandidate>& candidates, const std::vector<std::size_t>& indices);

/// One image's stars (see the header).
struct FitSource {
    Box2I bbox;                  ///< the image's full box, own frame (its part of the fit box)
    Point2D offset{0.0, 0.0};    ///< own-frame position + offset = model-frame position
    const std::vector<PsfCandidate>* candidates = nullptr;
    std::vector<std::size_t> selected;        ///< the stars offered (selectPsfStars' choice), indices into *candidates
    std::vector<const MaskedImageF*> images;  ///< per selected star: the image its stamp is read from (own frame)
};

/// The fit's outcome.
struct FitOutput {
    std::shared_ptr<const PsfexPsf> model;        ///< in the model frame, over the fit box
    std::vector<PsfDeterminationResult> sources;  ///< per source: psf = model reframed into it; its stars' indices and residuals
    PsfDeterminationResult pooled;                ///< every star's residual statistics pooled (no indices; psf = model)
};

/// Fit one model to the sources' stars. maxStampSize > 0 caps the stamp side (the cutouts' reach); `who` prefixes the
/// NumericalError messages (fewer than config.minStars usable stars; the size consistency check).
FitOutput fitPsfStars(const std::vector<FitSource>& sources, const PsfDeterminerConfig& config, int maxStampSize,
                      const std::string& who);

}  // namespace drp::psffit
