#include "stages/measure/KronFluxPlugin.h"

#include <algorithm>
#include <cmath>

namespace drp {

KronFluxPlugin::KronFluxPlugin(Schema& schema, const MeasurementConfig& config) {
    flux_ = schema.addField<double>("kronFlux", "flux in the Kron ellipse (kronRadiusFactor R_kron)", config.fluxUnit);
    fluxErr_ = schema.addField<double>("kronFluxErr", "standard error of kronFlux from the variance plane", config.fluxUnit);
    radius_ = schema.addField<double>("kronRadius", "Kron radius R_kron (first radial moment, geometric-mean radius)",
                                      "pixel");
    flag_ = schema.addField<bool>("kronFlux_flag", "Kron flux failed or its aperture was truncated");
    edge_ = schema.addField<bool>("kronFlux_flag_edge", "the Kron aperture crosses the image edge or unusable pixels");
    badRadius_ = schema.addField<bool>("kronFlux_flag_badRadius", "Kron radius undefined (non-positive light sum)");
    smallRadius_ = schema.addField<bool>("kronFlux_flag_smallRadius", "the minimum Kron aperture radius was used");
    noShape_ = schema.addField<bool>("kronFlux_flag_noShape", "no adaptive moments: a PSF-sized circle was used");
}

const std::string& KronFluxPlugin::name() const {
    static const std::string n = "kronFlux";
    return n;
}

void KronFluxPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Point2D c = ctx.centroid;
    if (!std::isfinite(c.x) || !std::isfinite(c.y)) {
        fail(ctx, table, row);
        return;
    }
    const bool haveShape = ctx.shape.has_value() && ctx.shape->isPositiveDefinite();
    const SecondMoments m = haveShape ? *ctx.shape : SecondMoments::circle(ctx.psfSigma());
    const double sigma = m.determinantRadius();
    const double s2 = sigma * sigma;
    const SecondMoments qInv = SecondMoments{m.xx / s2, m.yy / s2, m.xy / s2}.inverse();  // Q^-1, det 1
    table.column(noShape_)[row] = !haveShape;

    const Box2I img = ctx.exposure.bbox();
    const ImageF& image = ctx.exposure.image();
    const ImageF& var = ctx.exposure.variance();
    const Mask& mask = ctx.exposure.mask();
    // Half-extents of the ellipse r(d) = R: R sqrt(Q_xx), R sqrt(Q_yy) with Q = inverse of qInv.
    const SecondMoments q = qInv.inverse();
    auto ellipseBox = [&](double radius) {
        const double hx = radius * std::sqrt(q.xx) + 1.0, hy = radius * std::sqrt(q.yy) + 1.0;
        return Box2I::fromCorners({int(std::floor(c.x - hx)), int(std::floor(c.y - hy))},
                                  {int(std::ceil(c.x + hx)), int(std::ceil(c.y + hy))});
    };
    auto radiusOf = [&](double dx, double dy) {
        return std::sqrt(std::max(0.0, qInv.xx * dx * dx + 2 * qInv.xy * dx * dy + qInv.yy * dy * dy));
    };

    // The columns of row y where a predicate convex along rows holds (`test` true on an interval of x):
    // estimated from the ellipse x^T qInv x = rad^2 (+- 1 pixel) and then checked with `test` itself
    // (exactRowInterval), so the same pixels as a scan of the box.
    auto rowInterval = [&](int y, double rad, const Box2I& box, auto&& test) {
        const double dy = y - c.y;
        // qInv.xx dx^2 + 2 qInv.xy dy dx + qInv.yy dy^2 - rad^2 = 0
        // (A row the ellipse does not reach gets the estimate of a tangent one: the checks then find
        // nothing, or the pixel that rounding let in.)
        const double disc = std::max(0.0, qInv.xy * qInv.xy * dy * dy - qInv.xx * (qInv.yy * dy * dy - rad * rad));
        const double sq = std::sqrt(disc);
        return exactRowInterval(int(std::floor((-qInv.xy * dy - sq) / qInv.xx + c.x)) - 1,
                                int(std::ceil((-qInv.xy * dy + sq) / qInv.xx + c.x)) + 1, box.minX(), box.maxX(),
                                [&](int x) { return test(x, y); });
    };
    const int ox = img.minX(), oy = img.minY();

    // First radial moment.
    const double rMoment = ctx.config.kronMomentSigmas * sigma;
    const Box2I mbox = ellipseBox(rMoment).intersection(img);
    double sumI = 0, sumRI = 0;
    auto inMoment = [&](int x, int y) { return !(radiusOf(x - c.x, y - c.y) > rMoment); };
    for (int y = mbox.minY(); y <= mbox.maxY(); ++y) {
        const auto [x0, x1] = rowInterval(y, rMoment, mbox, inMoment);
        const float* irow = image.row(y - oy) - ox;
        const float* vrow = var.row(y - oy) - ox;
        const MaskPixel* mrow = mask.row(y - oy) - ox;
        for (int x = x0; x <= x1; ++x) {
            const double r = radiusOf(x - c.x, y - c.y);
            const float d = irow[x];
            if (!usablePixel(d, vrow[x], mrow[x], ctx.badBits)) continue;
            sumI += d;
            sumRI += r * d;
        }
    }
    const double rKron = sumRI / sumI;
    if (!(sumI > 0) || !(rKron > 0) || !std::isfinite(rKron)) {
        fail(ctx, table, row);
        table.column(badRadius_)[row] = true;
        table.column(noShape_)[row] = !haveShape;
        return;
    }
    double radius = ctx.config.kronRadiusFactor * rKron;
    const double rMin = ctx.config.kronMinRadiusSigmas * sigma;
    const bool small = radius < rMin;
    if (small) radius = rMin;

    // Flux in r <= radius; pixels the boundary crosses are sub-sampled 8 x 8.
    const Box2I full = ellipseBox(radius);
    const Box2I box = full.intersection(img);
    const double ex = radius * std::sqrt(q.xx), ey = radius * std::sqrt(q.yy);
    bool edge = c.x - ex < img.minX() - 0.5 || c.x + ex > img.maxX() + 0.5 || c.y - ey < img.minY() - 0.5 ||
                c.y + ey > img.maxY() + 0.5;
    // Largest change of r across half a pixel diagonal: sqrt(lambda_max(Q^-1)) * sqrt(2) / 2.
    const double lmax = 0.5 * (qInv.xx + qInv.yy) +
                        std::sqrt(0.25 * (qInv.xx - qInv.yy) * (qInv.xx - qInv.yy) + qInv.xy * qInv.xy);
    const double margin = std::sqrt(lmax) * 0.7072;
    constexpr int kSub = 8;
    auto radius2Of = [&](double dx, double dy) { return qInv.xx * dx * dx + 2 * qInv.xy * dx * dy + qInv.yy * dy * dy; };
    const double inner2 = radius > margin ? (radius - margin) * (radius - margin) : -1.0;
    const double outer2 = (radius + margin) * (radius + margin), radius2 = radius * radius;
    auto sample = [&](double dx, double dy, int i, int j) {
        return radius2Of(dx - 0.5 + (i + 0.5) / kSub, dy - 0.5 + (j + 0.5) / kSub) <= radius2;
    };
    // Sub-samples of a boundary pixel inside the ellipse. The ellipse is convex: with its four corner
    // samples inside, all 64 are (they lie in the corners' hull, strictly inside the ellipse by far more
    // than rounding); otherwise on each sub-row the inside samples form one run, found from both ends.
    auto insideCount = [&](double dx, double dy) {
        if (sample(dx, dy, 0, 0) && sample(dx, dy, kSub - 1, 0) && sample(dx, dy, 0, kSub - 1) &&
            sample(dx, dy, kSub - 1, kSub - 1))
            return kSub * kSub;
        int inside = 0;
        for (int j = 0; j < kSub; ++j) {
            int lo = 0;
            while (lo < kSub && !sample(dx, dy, lo, j)) ++lo;
            if (lo == kSub) continue;
            int hi = kSub - 1;
            while (hi > lo && !sample(dx, dy, hi, j)) --hi;
            inside += hi - lo + 1;
        }
        return inside;
    };
    auto inOuter = [&](int x, int y) { return !(radius2Of(x - c.x, y - c.y) > outer2); };
    double flux = 0, variance = 0;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const auto [x0, x1] = rowInterval(y, radius + margin, box, inOuter);
        const float* irow = image.row(y - oy) - ox;
        const float* vrow = var.row(y - oy) - ox;
        const MaskPixel* mrow = mask.row(y - oy) - ox;
        for (int x = x0; x <= x1; ++x) {
            const double dx = x - c.x, dy = y - c.y;
            const double r2 = radius2Of(dx, dy);
            double a = 1.0;
            if (r2 > inner2) {  // the boundary may cross this pixel: sub-sample it
                const int inside = insideCount(dx, dy);
                a = double(inside) / (kSub * kSub);
                if (inside == 0) continue;
            }
            const float d = irow[x], v = vrow[x];
            if (!usablePixel(d, v, mrow[x], ctx.badBits)) {
                edge = true;
                continue;
            }
            flux += a * d;
            variance += a * a * v;
        }
    }
    table.column(flux_)[row] = flux;
    table.column(fluxErr_)[row] = std::sqrt(variance);
    table.column(radius_)[row] = rKron;
    table.column(flag_)[row] = edge;
    table.column(edge_)[row] = edge;
    table.column(badRadius_)[row] = false;
    table.column(smallRadius_)[row] = small;
}

void KronFluxPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    for (auto k : {flux_, fluxErr_, radius_}) table.column(k)[row] = kNaN;
    table.column(flag_)[row] = true;
}

}  // namespace drp
