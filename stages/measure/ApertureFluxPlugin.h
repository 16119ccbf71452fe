// ApertureFluxPlugin ("apFlux"): circular aperture fluxes about the centroid at every radius of
// config.apertureRadii, with exact pixel weights (the area of each pixel inside the circle,
// CircleOverlap.h; no sub-pixel sampling):
//     apFlux_<r> = sum_i a_i d_i,   apFlux_<r>Err = sqrt(sum_i a_i^2 V_i).
// All radii are done in one pass over the largest aperture's box: a pixel wholly inside radius r_k is
// binned at the first such k and the bins are summed cumulatively; only the pixels the circles cross
// get exact overlap weights. Unusable pixels (MeasurementContext::usable) contribute nothing.
//
// Columns per radius r (stem apertureName(r)): apFlux_<r>, apFlux_<r>Err (config.fluxUnit);
//   apFlux_<r>_flag                      failure (values NaN: the centroid is not finite) or truncation
//   apFlux_<r>_flag_apertureTruncated    the circle crosses the image edge or unusable pixels
//                                        (the sum is over the usable part; biased low)
#pragma once

#include <vector>

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class ApertureFluxPlugin final : public MeasurementPlugin {
public:
    ApertureFluxPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

    /// The fluxes and variances of the apertures `radii` (increasing) about `centre`, and whether each
    /// was truncated. Exposed for tests and for other plugins.
    struct Sums {
        std::vector<double> flux, variance;
        std::vector<bool> truncated;
    };
    static Sums measureApertures(const MaskedImageF& image, Point2D centre, const std::vector<double>& radii,
                                 MaskPixel badBits);

private:
    std::vector<double> radii_;
    std::vector<Key<double>> flux_, fluxErr_;
    std::vector<Key<bool>> flag_, truncated_;
};

}  // namespace drp
