// ExtendednessPlugin ("extendedness"): point source (0) or extended (1) from the PSF flux and a reference
// aperture flux (config.extendednessApertureRadius, one of the apertures).
//
// For a point source the aperture holds the fraction f of its light that the PSF puts inside the
// aperture, f = sum_i a_i P_i (P the PSF image at the centroid, a_i the exact pixel/circle overlap), so
// F_ap = apFlux_ref / f estimates the total flux, as psfFlux does. An extended source has
// psfFlux < F_ap. With t = config.extendednessThreshold (0.985, the meas_base value) and
//     Delta = t F_ap - psfFlux,
//     Var(Delta) = t^2 Var(F_ap) + (1 - 2t) Var(psfFlux)   (the inverse-variance PSF fit and the
//                                                            aperture share pixels: Cov = Var(psfFlux)),
// extendedness = 1 if Delta > config.extendednessNSigma * sqrt(Var(Delta)), else 0: "point-like unless
// significantly more light than a point source would put in the aperture". Faint galaxies whose
// extent the noise hides are therefore 0. NaN (and the flag) when either flux is missing.
//
// Columns: extendedness (0 or 1; NaN on failure), extendedness_flag (failure, or a flagged input flux:
// then the value is computed but less reliable).
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class ExtendednessPlugin final : public MeasurementPlugin {
public:
    /// Needs psfFlux and apFlux_<ref> columns already in `schema` (ConfigError otherwise).
    ExtendednessPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;
    bool requiresPsf() const override { return true; }

    /// The fraction of a unit-sum PSF image inside the circle of `radius` about `centre` (exact overlap).
    static double psfEnclosedFraction(const ImageD& psf, Point2D centre, double radius);

private:
    double radius_;
    Key<double> value_;
    Key<bool> flag_;
    Key<double> psfFlux_, psfFluxErr_, apFlux_, apFluxErr_;
    Key<bool> psfFlag_, apFlag_;
};

}  // namespace drp
