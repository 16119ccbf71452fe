// KronFluxPlugin ("kronFlux"): the SExtractor FLUX_AUTO-like Kron flux.
//
// Ellipse: the source's adaptive moments M (MeasurementContext::shape; a circle of the PSF sigma when the
// "shape" plugin failed or did not run: kronFlux_flag_noShape), written as M = sigma^2 Q with
// sigma = det(M)^(1/4) and det Q = 1. The elliptical radius of an offset d is r(d) = sqrt(d^T Q^-1 d), a
// geometric-mean radius in pixels.
//   R_kron = sum r I / sum I   over usable pixels with r <= config.kronMomentSigmas * sigma (pixel centres);
//   aperture radius R = max(config.kronRadiusFactor * R_kron, config.kronMinRadiusSigmas * sigma);
//   kronFlux = sum_i a_i d_i, kronFluxErr = sqrt(sum_i a_i^2 V_i) with a_i the fraction of pixel i inside
//   r <= R (1 or 0 away from the boundary; 8x8 sub-pixel sampling for pixels the ellipse crosses).
// The error treats R as fixed (as SExtractor does).
//
// Columns: kronFlux, kronFluxErr (config.fluxUnit), kronRadius (R_kron, pixel);
//   kronFlux_flag              failure (NaN values) or edge
//   kronFlux_flag_edge         the aperture crosses the image edge or unusable pixels (flux biased low)
//   kronFlux_flag_badRadius    R_kron undefined (non-positive light sum in the moment ellipse): failure
//   kronFlux_flag_smallRadius  the minimum radius was used (not a failure)
//   kronFlux_flag_noShape      no adaptive moments: a PSF-sized circle was used (not a failure)
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class KronFluxPlugin final : public MeasurementPlugin {
public:
    KronFluxPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    Key<double> flux_, fluxErr_, radius_;
    Key<bool> flag_, edge_, badRadius_, smallRadius_, noShape_;
};

}  // namespace drp
