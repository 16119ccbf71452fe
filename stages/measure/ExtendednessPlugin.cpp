#include "stages/measure/ExtendednessPlugin.h"

#include <algorithm>
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
    // Only the pixels the circle can touch (the others have weight 0); exact weights for those it
    // crosses (CirclePixelGrid), 1 for those wholly inside.
    const Box2I touch = Box2I::fromCorners({int(std::floor(c.x - radius - 0.5)), int(std::floor(c.y - radius - 0.5))},
                                           {int(std::ceil(c.x + radius + 0.5)), int(std::ceil(c.y + radius + 0.5))});
    const Box2I box = touch.intersection(psf.bbox());
    if (box.empty() || !(radius > 0)) return 0.0;
    thread_local CirclePixelGrid grid;
    grid.reset(c, radius, box);
    double f = 0;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double* row = psf.row(y - psf.xy0().y) - psf.xy0().x;
        for (int x = box.minX(); x <= box.maxX(); ++x) {
            switch (grid.cover(x, y)) {
                case CirclePixelGrid::Cover::Inside: f += row[x]; break;
                case CirclePixelGrid::Cover::Crossed: f += row[x] * grid.boundaryFraction(x, y); break;
                case CirclePixelGrid::Cover::Outside: break;
            }
        }
    }
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
