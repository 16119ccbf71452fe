// DpddColumns: the Source table's columns in the units of the Data Products Definition Document
// (section 4.3.2), derived after calibration from the measurement columns (pixel units, instrumental
// fluxes) with the fitted WCS and the photometric calibration.
//
// Per source, J is the WCS's local Jacobian at the centroid (arcsec per pixel, axes east and north, by
// central differences of pixelToSky over +-0.5 pixel) and A = |det J| the pixel area (arcsec^2):
//   lxx, lyy, lxy (+ lxxPSF, lyyPSF, lxyPSF)  arcsec^2: L = J I J^T from ixx, iyy, ixy (and the PSF's);
//   lcov_xx_xx, lcov_yy_yy, lcov_xy_xy, lcov_xx_yy, lcov_xx_xy, lcov_yy_xy  arcsec^4: T Cov(I) T^T with
//     T the linear map (ixx, iyy, ixy) -> (lxx, lyy, lxy) (DPDD lcov);
//   sky, skyErr          converted in place from instrumental units per pixel to nJy/arcsec^2
//                        (x nJyPerInstFlux / A);
//   apMeanSb_<i>, apMeanSbSigma_<i>  nJy/arcsec^2, i = 0..n-1 for the n aperture radii r_i (sorted): the
//     mean surface brightness in the annulus r_{i-1} < r <= r_i (a disk for i = 0) from the calibrated
//     aperture fluxes, (F_i - F_{i-1}) / (pi (r_i^2 - r_{i-1}^2) A); its standard error from
//     the aperture errors, sqrt(max(0, E_i^2 - E_{i-1}^2)) / area (the annuli hold disjoint pixels).
//     Metadata APNANN = n (DPDD apNann) and APRAD<i> = r_i (pixels).
// NaN where an input is NaN. Columns missing from the input (e.g. a plugin not run) are skipped.
#pragma once

#include <vector>

#include "core/Table.h"
#include "core/Wcs.h"

namespace drp {

/// The table with the DPDD-unit columns added (see header). `nJyPerInstFlux` converts the instrumental
/// image units to nJy (PhotoCalib::calibrationMean); `apertureRadii` are the radii (pixels) of the
/// apFlux_<r> columns, which must already be calibrated to nJy.
Table addDpddColumns(const Table& in, const Wcs& wcs, double nJyPerInstFlux, const std::vector<double>& apertureRadii);

}  // namespace drp
