// ApertureCorrection: the ratio of a reference aperture flux to the PSF flux, fitted over the detector on
// PSF stars, and its application to psfFlux (the PSF model's flux is put on the scale of the large
// aperture that calibration uses).
//
// Fit: ratio_i = apFlux_ref / psfFlux for the given star rows that have finite, positive fluxes, finite
// errors, finite x, y and no psfFlux_flag / <ref>_flag; sigma_i^2 = ratio_i^2 ((e_ap/ap)^2 + (e_psf/psf)^2).
// A polynomial of total degree `order` (0..2) in u = (x - cx) / hx, v = (y - cy) / hy (the centre and
// half-size of `bbox`, or of the stars' box when bbox is empty), terms 1, u, v, u^2, u v, v^2, is fitted by
// weighted least squares with weights 1 / (sigma_i^2 + s^2), where s is the intrinsic scatter (re-estimated
// each pass from the residuals so that chi^2 / dof = 1 when the ratio errors do not explain the scatter),
// with up to 5 passes rejecting stars more than 3 sqrt(sigma_i^2 + s^2) from the fit. `order` is the highest
// order considered (lowered until there are at least 2 more stars than terms); a higher order than 0 is used
// only where it lowers the weighted residuals (stars and weights of the constant fit) significantly, by a
// nested F-test at 3 sigma: with a handful of noisy stars a fitted gradient extrapolates to the detector's
// corners with errors larger than the scatter it removes. Throws InvalidInputError if no usable star is left,
// NotFoundError if a column is missing, LogicError for an order outside [0, 2].
#pragma once

#include <cstddef>
#include <limits>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Table.h"

namespace drp {

struct ApertureCorrectionResult {
    std::string refApertureColumn;   ///< e.g. "apFlux_12"
    int order = 0;                   ///< polynomial order fitted (may be lower than requested)
    std::vector<double> coefficients;  ///< terms 1, u, v, u^2, u v, v^2 (as many as the order needs)
    Point2D center;                  ///< normalisation: u = (x - center.x) / halfSize.x, v likewise
    Point2D halfSize{1.0, 1.0};
    std::size_t nStars = 0;          ///< stars kept in the final fit
    std::size_t nRejected = 0;       ///< usable stars rejected by the clipping
    double intrinsicScatter = 0.0;   ///< s (ratio units)
    double rms = std::numeric_limits<double>::quiet_NaN();  ///< rms of the kept stars' residuals

    /// The aperture correction at a pixel (parent frame).
    double value(Point2D position) const;
};

ApertureCorrectionResult measureApertureCorrection(const Table& sources, const std::vector<std::size_t>& starRows,
                                                   const std::string& refApertureColumn, int order,
                                                   const Box2I& bbox = {});

/// psfFlux and psfFluxErr of every row with finite x, y are multiplied by result.value(x, y), recorded in
/// apCorr (NaN for rows without a position). Throws NotFoundError if a column (x, y, psfFlux, psfFluxErr,
/// apCorr) is missing and LogicError if some row already has a finite apCorr (applied twice).
void applyApertureCorrection(Table& table, const ApertureCorrectionResult& result);

}  // namespace drp
