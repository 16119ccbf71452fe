// CentroidPlugin ("centroid"): the source position by measureGaussianCentroid (GaussianCentroid.h): an
// SDSS-like smoothed-peak start refined to the root of the Gaussian-weighted first moment (weight sigma =
// the PSF's determinant radius unless config.centroidWeightSigma is set), with errors propagated from the
// variance plane. It sets MeasurementContext::centroid (and its errors) for the plugins after it.
//
// Columns: x, y (pixel, parent frame), xErr, yErr (pixel), x_y_Cov (pixel^2);
//   centroid_flag                     general failure: x, y are the peak position, errors NaN
//   centroid_flag_edge                the weight window crossed the image edge or unusable pixels
//   centroid_flag_noPixels            no usable pixel or non-positive flux in the window (failure)
//   centroid_flag_noSecondDerivative  the weighted moment has no maximum there (failure)
//   centroid_flag_resetToPeak         moved more than config.centroidMaxShift from the peak (failure)
//   centroid_flag_notConverged        config.centroidMaxIter reached (values kept, not a failure)
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class CentroidPlugin final : public MeasurementPlugin {
public:
    CentroidPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    Key<double> x_, y_, xErr_, yErr_, xyCov_;
    Key<bool> flag_, edge_, noPixels_, noSecondDerivative_, resetToPeak_, notConverged_;
};

}  // namespace drp
