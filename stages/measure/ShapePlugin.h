// ShapePlugin ("shape"): adaptive second moments (AdaptiveMoments.h) of the source about the centroid,
// and of the PSF image at the centroid (Psf::computeImage, same algorithm, so a point source has
// ixx = ixxPSF etc. to within noise). The PSF's moments (from a circle of the PSF's determinant radius) are
// the source's starting weight (a circle of that radius without a PSF). The source's
// sums use the pixels of the footprint's box grown by 2 PSF sigmas + 2 (light outside the footprint is
// noise; this also bounds the cost). Sets MeasurementContext::shape when the source moments succeed.
//
// Columns: ixx, iyy, ixy, ixxPSF, iyyPSF, ixyPSF (pixel^2; DPDD Ixx.. before the driver converts to
// arcsec^2); ixxErr, iyyErr, ixyErr (pixel^2) and ixx_iyy_Cov, ixx_ixy_Cov, iyy_ixy_Cov (pixel^4): the noise
// covariance of the source's moments (computeAdaptiveMomentsCovariance; DPDD lcov before conversion);
//   shape_flag                 the source moments failed (values NaN)
//   shape_flag_noPixels        no usable pixel or non-positive weighted flux
//   shape_flag_singular        the weighted moments were not positive definite (noise)
//   shape_flag_maxSize         the weight's sigma grew beyond the cap: the larger of half the footprint
//                              box's longer side and 4 PSF sigmas, at most config.shapeMaxSigma (a faint
//                              peak on a bright neighbour's wing; keeps the cost bounded)
//   shape_flag_notConverged    config.shapeMaxIter reached (last values kept, not a failure)
//   shape_flag_noiseStop       not converged after config.shapeNoiseCheckIter iterations; the damped
//                              iteration that followed stopped once every moment was within
//                              config.shapeNoiseTolerance of its standard error of the fixed point
//                              extrapolated from the last two steps (values kept, not a failure)
//   shape_flag_edge            the final window crossed the image edge or unusable pixels (kept)
//   shape_flag_psf             the PSF moments failed or there is no PSF (PSF values NaN)
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class ShapePlugin final : public MeasurementPlugin {
public:
    ShapePlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    Key<double> ixx_, iyy_, ixy_, ixxErr_, iyyErr_, ixyErr_, ixxIyyCov_, ixxIxyCov_, iyyIxyCov_, ixxPsf_, iyyPsf_, ixyPsf_;
    Key<bool> flag_, noPixels_, singular_, maxSize_, notConverged_, noiseStop_, edge_, psf_;
};

}  // namespace drp
