#include "stages/measure/ExtendednessPlugin.h"

#include <cmath>

#include "stages/measure/CircleOverlap.h"

namespace drp {

ExtendednessPlugin::ExtendednessPlugin(Schema& schema, const MeasurementConfig& config)
    : radius_(config.extendednessApertureRadius) {
    const std::string ap = "apFlux_" + apertureName(radius_);
    if (!schema.contains("psfFlux") || !schema.contains(ap)) {
        throw ConfigError("extendedness needs the psfFlux and " + ap + " columns (run psfFlux and apFlux before it)");
    }
    psfFlux_ = schema.find<double>("psfFlux");
    psfFluxErr_ = schema.find<double>("psfFluxErr");
    psfFlag_ = schema.find<bool>("psfFlux_flag");
    apFlux_ = schema.find<double>(ap);
    apFluxErr_ = schema.find<double>(ap + "Err");
    apFlag_ = schema.find<bool>(ap + "_flag");
    value_ = schema.addField<double>("extendedness",
                                     "1 if psfFlux is significantly below 0.985 x the point-source total implied by " +
                                         ap + ", else 0");
    flag_ = schema.addField<bool>("extendedness_flag", "extendedness failed (NaN) or one of its input fluxes is flagged");
}

const std::string& ExtendednessPlugin::name() const {
    static const std::string n = "extendedness";
    return n;
}

double ExtendednessPlugin::psfEnclosedFraction(const ImageD& psf, Point2D c, double radius) {
    double f = 0;
    for (int y = 0; y < psf.height(); ++y)
        for (int x = 0; x < psf.width(); ++x)
            f += psf(x, y) * pixelCircleFraction(x + psf.xy0().x - c.x, y + psf.xy0().y - c.y, radius);
    return f;
}

void ExtendednessPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const double p = table.column(psfFlux_)[row], pe = table.column(psfFluxErr_)[row];
    const double a = table.column(apFlux_)[row], ae = table.column(apFluxErr_)[row];
    const ImageD* psf = ctx.psfImage();
    if (psf == nullptr || !std::isfinite(p) || !std::isfinite(pe) || !std::isfinite(a) || !std::isfinite(ae)) {
        fail(ctx, table, row);
        return;
    }
    const double f = psfEnclosedFraction(*psf, ctx.centroid, radius_);
    if (!(f > 0.05)) {
        fail(ctx, table, row);
        return;
    }
    const double t = ctx.config.extendednessThreshold;
    const double total = a / f, totalErr = ae / f;
    const double delta = t * total - p;
    const double var = std::max(0.0, t * t * totalErr * totalErr + (1.0 - 2.0 * t) * pe * pe);
    const bool extended = delta > ctx.config.extendednessNSigma * std::sqrt(var);
    table.column(value_)[row] = extended ? 1.0 : 0.0;
    table.column(flag_)[row] = table.column(psfFlag_)[row] || table.column(apFlag_)[row];
}

void ExtendednessPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    table.column(value_)[row] = kNaN;
    table.column(flag_)[row] = true;
}

}  // namespace drp
