// SkyCoordPlugin ("coord"): ICRS position of the centroid through the exposure's Wcs, and its
// covariance from the centroid's (xErr, yErr, x_y_Cov) through the local Jacobian of the Wcs
// (finite differences of +-0.5 pixel):
//     Cov(ra, dec) = J Cov(x, y) J^T,  J = d(ra, dec)/d(x, y)  (degrees per pixel).
// coord_raErr is in degrees of right ascension (multiply by cos(dec) for the great-circle error).
// Without a Wcs (or when the transform fails) every value is NaN and coord_flag is set; without
// centroid errors only the errors are NaN.
//
// Columns: ra, dec (deg), coord_raErr, coord_decErr (deg), coord_ra_dec_Cov (deg^2), coord_flag.
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class SkyCoordPlugin final : public MeasurementPlugin {
public:
    SkyCoordPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    Key<double> ra_, dec_, raErr_, decErr_, cov_;
    Key<bool> flag_;
};

}  // namespace drp
