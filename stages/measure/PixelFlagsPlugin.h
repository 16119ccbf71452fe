// PixelFlagsPlugin ("pixelFlags"): mask-plane summaries of a source (meas_base PixelFlags).
// "In the footprint" means any pixel of the source's (parent) footprint inside the image; "at the
// centre" means any of the 3x3 pixels around the centroid. Planes missing from the mask never set a flag.
//
// Columns (all flags):
//   pixelFlags_offimage            the centroid is outside the image
//   pixelFlags_edge                the footprint touches the image boundary or leaves the image, or has
//                                  EDGE or NO_DATA pixels
//   pixelFlags_bad, _saturated, _interpolated, _cr, _suspect
//                                  BAD / SAT / INTRP / CR / SUSPECT pixels in the footprint
//   pixelFlags_saturatedCenter, _interpolatedCenter, _crCenter, _suspectCenter, _badCenter
//                                  the same planes at the centre
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class PixelFlagsPlugin final : public MeasurementPlugin {
public:
    PixelFlagsPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    static constexpr int kPlanes = 5;  // BAD, SAT, INTRP, CR, SUSPECT
    Key<bool> offimage_, edge_;
    Key<bool> any_[kPlanes], center_[kPlanes];
};

}  // namespace drp
