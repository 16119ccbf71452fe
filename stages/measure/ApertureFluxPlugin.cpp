#include "stages/measure/ApertureFluxPlugin.h"

#include <algorithm>
#include <cmath>
#include <tuple>

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
    thread_local std::vector<double> fullFlux, fullVar, r2;
    thread_local std::vector<CirclePixelGrid> grids;
    thread_local std::vector<int> insideLo, insideHi, touchLo, touchHi;
    fullFlux.assign(nr, 0.0);
    fullVar.assign(nr, 0.0);
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
    if (box.empty()) return out;
    const ImageF& image = mi.image();
    const ImageF& var = mi.variance();
    const Mask& mask = mi.mask();
    const double rmax2 = rmax * rmax;
    if (grids.size() < nr) grids.resize(nr);
    r2.resize(nr);
    insideLo.resize(nr), insideHi.resize(nr), touchLo.resize(nr), touchHi.resize(nr);
    for (std::size_t k = 0; k < nr; ++k) {  // each over the pixels its circle can touch
        const double r = radii[k];
        const Box2I bk = Box2I::fromCorners({int(std::floor(c.x - r - 0.5)), int(std::floor(c.y - r - 0.5))},
                                            {int(std::ceil(c.x + r + 0.5)), int(std::ceil(c.y + r + 0.5))});
        grids[k].reset(c, r, bk.intersection(box));
        r2[k] = r * r;
    }
    const int ox = img.minX();
    // A pixel is wholly inside circle k when its farthest corner is, (|dx| + 1/2)^2 + (|dy| + 1/2)^2 <= r_k^2,
    // and touches it when its nearest point is inside, nx^2 + ny^2 < r_k^2. On each row both sets are
    // intervals, nested in k. Every pixel goes to the flux bin of the first circle holding all of it (the
    // bins are summed cumulatively at the end) and gets exact weights in the circles that cross it. The
    // sums are taken row by row in increasing x, the order of a plain scan, so every accumulator sees the
    // same additions in the same order as a per-pixel loop.
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y, ady = std::fabs(dy);
        const double ny = std::max(ady - 0.5, 0.0), fy = ady + 0.5;
        const double ny2 = ny * ny, fy2 = fy * fy;
        if (ny2 >= rmax2) continue;
        auto dmax2 = [&](int x) {
            const double fx = std::fabs(x - c.x) + 0.5;
            return fx * fx + fy2;
        };
        auto dmin2 = [&](int x) {
            const double nx = std::max(std::fabs(x - c.x) - 0.5, 0.0);
            return nx * nx + ny2;
        };
        // Both sets are {|x - cx| <= s}: estimated from s, then made exact (exactRowInterval).
        auto interval = [&](double s, auto&& test) {
            return exactRowInterval(int(std::ceil(c.x - s)), int(std::floor(c.x + s)), box.minX(), box.maxX(), test);
        };
        for (std::size_t k = 0; k < nr; ++k) {
            const double rk2 = r2[k];
            std::tie(insideLo[k], insideHi[k]) =
                interval(std::sqrt(std::max(0.0, rk2 - fy2)) - 0.5, [&](int x) { return dmax2(x) <= rk2; });
            std::tie(touchLo[k], touchHi[k]) =
                interval(std::sqrt(std::max(0.0, rk2 - ny2)) + 0.5, [&](int x) { return dmin2(x) < rk2; });
        }
        const float* drow = image.row(y - img.minY()) - ox;
        const float* vrow = var.row(y - img.minY()) - ox;
        const MaskPixel* mrow = mask.row(y - img.minY()) - ox;
        // An unusable pixel truncates every aperture that touches it.
        auto markTruncated = [&](int x) {
            for (std::size_t k = 0; k < nr; ++k)
                if (x >= touchLo[k] && x <= touchHi[k]) out.truncated[k] = true;
        };
        auto addFull = [&](std::size_t k, int x0, int x1) {
            double f = fullFlux[k], w = fullVar[k];
            for (int x = x0; x <= x1; ++x) {
                const float d = drow[x], v = vrow[x];
                if (!usablePixel(d, v, mrow[x], badBits)) {
                    markTruncated(x);
                    continue;
                }
                f += d;
                w += v;
            }
            fullFlux[k] = f, fullVar[k] = w;
        };
        auto addPartial = [&](std::size_t k, int x0, int x1) {
            const CirclePixelGrid& grid = grids[k];
            double f = out.flux[k], w = out.variance[k];
            for (int x = x0; x <= x1; ++x) {
                const float d = drow[x], v = vrow[x];
                if (!usablePixel(d, v, mrow[x], badBits)) {
                    markTruncated(x);
                    continue;
                }
                const double a = grid.boundaryFraction(x, y);
                f += a * d;
                w += a * a * v;
            }
            out.flux[k] = f, out.variance[k] = w;
        };
        // The pixels in interval k but not in interval k - 1 (nested), left part then right part.
        auto ring = [](int lo, int hi, int innerLo, int innerHi, auto&& add) {
            if (lo > hi) return;
            if (innerLo > innerHi) {
                add(lo, hi);
                return;
            }
            if (lo < innerLo) add(lo, innerLo - 1);
            if (innerHi < hi) add(innerHi + 1, hi);
        };
        for (std::size_t k = 0; k < nr; ++k) {
            const int pLo = k > 0 ? insideLo[k - 1] : 1, pHi = k > 0 ? insideHi[k - 1] : 0;
            ring(insideLo[k], insideHi[k], pLo, pHi, [&](int x0, int x1) { addFull(k, x0, x1); });
            ring(touchLo[k], touchHi[k], insideLo[k], insideHi[k], [&](int x0, int x1) { addPartial(k, x0, x1); });
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
