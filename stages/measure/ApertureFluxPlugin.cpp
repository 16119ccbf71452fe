#include "stages/measure/ApertureFluxPlugin.h"

#include <algorithm>
#include <cmath>

#include "stages/measure/CircleOverlap.h"

namespace drp {

ApertureFluxPlugin::ApertureFluxPlugin(Schema& schema, const MeasurementConfig& config) : radii_(config.apertureRadii) {
    for (double r : radii_) {
        const std::string stem = "apFlux_" + apertureName(r);
        const std::string where = "circular aperture of radius " + apertureName(r) + " pixels at the centroid";
        flux_.push_back(schema.addField<double>(stem, "flux in the " + where, config.fluxUnit));
        fluxErr_.push_back(schema.addField<double>(stem + "Err", "standard error of " + stem + " from the variance plane",
                                                   config.fluxUnit));
        flag_.push_back(schema.addField<bool>(stem + "_flag", "aperture flux failed or truncated"));
        truncated_.push_back(schema.addField<bool>(stem + "_flag_apertureTruncated",
                                                   "the aperture crosses the image edge or unusable pixels"));
    }
}

const std::string& ApertureFluxPlugin::name() const {
    static const std::string n = "apFlux";
    return n;
}

ApertureFluxPlugin::Sums ApertureFluxPlugin::measureApertures(const MaskedImageF& mi, Point2D c,
                                                              const std::vector<double>& radii, MaskPixel badBits) {
    const std::size_t nr = radii.size();
    Sums out;
    out.flux.assign(nr, 0.0);
    out.variance.assign(nr, 0.0);
    out.truncated.assign(nr, false);
    if (nr == 0) return out;
    std::vector<double> fullFlux(nr + 1, 0.0), fullVar(nr + 1, 0.0);
    const double rmax = radii.back();
    const Box2I img = mi.bbox();
    // Apertures reaching beyond the image are truncated.
    for (std::size_t k = 0; k < nr; ++k) {
        const double r = radii[k];
        if (c.x - r < img.minX() - 0.5 || c.x + r > img.maxX() + 0.5 || c.y - r < img.minY() - 0.5 ||
            c.y + r > img.maxY() + 0.5) {
            out.truncated[k] = true;
        }
    }
    const Box2I full = Box2I::fromCorners({int(std::floor(c.x - rmax - 0.5)), int(std::floor(c.y - rmax - 0.5))},
                                          {int(std::ceil(c.x + rmax + 0.5)), int(std::ceil(c.y + rmax + 0.5))});
    const Box2I box = full.intersection(img);
    const ImageF& image = mi.image();
    const ImageF& var = mi.variance();
    const Mask& mask = mi.mask();
    const double rmax2 = rmax * rmax;
    std::vector<CirclePixelGrid> grids;
    grids.reserve(nr);
    for (std::size_t k = 0; k < nr; ++k) {  // each over the pixels its circle can touch
        const double r = radii[k];
        const Box2I bk = Box2I::fromCorners({int(std::floor(c.x - r - 0.5)), int(std::floor(c.y - r - 0.5))},
                                            {int(std::ceil(c.x + r + 0.5)), int(std::ceil(c.y + r + 0.5))});
        grids.emplace_back(c, r, bk.intersection(box));
    }
    std::vector<double> r2(nr);
    for (std::size_t k = 0; k < nr; ++k) r2[k] = radii[k] * radii[k];
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y, ady = std::fabs(dy);
        const double ny = std::max(ady - 0.5, 0.0), fy = ady + 0.5;
        if (ny * ny >= rmax2) continue;
        // Columns whose pixels can touch the largest circle on this row.
        const double half = std::sqrt(rmax2 - ny * ny) + 0.5;
        const int xa = std::max(box.minX(), int(std::floor(c.x - half))), xb = std::min(box.maxX(), int(std::ceil(c.x + half)));
        const float* drow = image.row(y - img.minY());
        const float* vrow = var.row(y - img.minY());
        const MaskPixel* mrow = mask.row(y - img.minY());
        const int ox = img.minX();
        // Apertures [kmin, k0) cross the pixel; from k0 on they hold all of it: kmin is the first k with
        // r2[k] > dmin2, k0 the first with r2[k] >= dmax2 (r2 increases). Both change by a step or two
        // from one pixel to the next, so they are tracked from the previous pixel's values.
        std::size_t kmin = 0, k0 = 0;
        for (int x = xa; x <= xb; ++x) {
            const double dx = x - c.x, adx = std::fabs(dx);
            const double nx = std::max(adx - 0.5, 0.0);
            const double dmin2 = nx * nx + ny * ny;
            if (dmin2 >= rmax2) continue;
            const double fx = adx + 0.5;
            const double dmax2 = fx * fx + fy * fy;
            while (kmin > 0 && r2[kmin - 1] > dmin2) --kmin;
            while (r2[kmin] <= dmin2) ++kmin;  // terminates: r2[nr - 1] > dmin2
            while (k0 > 0 && r2[k0 - 1] >= dmax2) --k0;
            while (k0 < nr && r2[k0] < dmax2) ++k0;
            const float d = drow[x - ox], v = vrow[x - ox];
            const bool good = std::isfinite(d) && std::isfinite(v) && v >= 0.0f && !(mrow[x - ox] & badBits);
            if (!good) {
                for (std::size_t k = kmin; k < nr; ++k) out.truncated[k] = true;
                continue;
            }
            fullFlux[k0] += d;
            fullVar[k0] += v;
            for (std::size_t k = kmin; k < k0; ++k) {
                const double a = grids[k].fraction(x, y);
                out.flux[k] += a * d;
                out.variance[k] += a * a * v;
            }
        }
    }
    double cf = 0, cv = 0;
    for (std::size_t k = 0; k < nr; ++k) {
        cf += fullFlux[k];
        cv += fullVar[k];
        out.flux[k] += cf;
        out.variance[k] += cv;
    }
    return out;
}

void ApertureFluxPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Point2D c = ctx.centroid;
    if (!std::isfinite(c.x) || !std::isfinite(c.y)) {
        fail(ctx, table, row);
        return;
    }
    const Sums s = measureApertures(ctx.exposure.maskedImage(), c, radii_, ctx.badBits);
    for (std::size_t k = 0; k < radii_.size(); ++k) {
        table.column(flux_[k])[row] = s.flux[k];
        table.column(fluxErr_[k])[row] = std::sqrt(s.variance[k]);
        table.column(flag_[k])[row] = s.truncated[k];
        table.column(truncated_[k])[row] = s.truncated[k];
    }
}

void ApertureFluxPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    for (std::size_t k = 0; k < radii_.size(); ++k) {
        table.column(flux_[k])[row] = kNaN;
        table.column(fluxErr_[k])[row] = kNaN;
        table.column(flag_[k])[row] = true;
    }
}

}  // namespace drp
