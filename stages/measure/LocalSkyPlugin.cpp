#include "stages/measure/LocalSkyPlugin.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/Statistics.h"

namespace drp {

LocalSkyPlugin::LocalSkyPlugin(Schema& schema, const MeasurementConfig& config)
    : excludePlanes_(config.skyExcludeMaskPlanes) {
    const std::string unit = config.fluxUnit + "/pixel";
    sky_ = schema.addField<double>("sky", "local background per pixel (clipped mean in an annulus)", unit);
    skyErr_ = schema.addField<double>("skyErr", "standard error of sky", unit);
    flag_ = schema.addField<bool>("sky_flag", "local background failed (values NaN)");
    noGoodPixels_ = schema.addField<bool>("sky_flag_noGoodPixels", "too few usable pixels in the sky annulus");
    edge_ = schema.addField<bool>("sky_flag_edge", "the sky annulus crosses the image edge");
}

const std::string& LocalSkyPlugin::name() const {
    static const std::string n = "sky";
    return n;
}

void LocalSkyPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Point2D c = ctx.centroid;
    if (!std::isfinite(c.x) || !std::isfinite(c.y)) {
        fail(ctx, table, row);
        return;
    }
    const MeasurementConfig& cfg = ctx.config;
    const Mask& mask = ctx.exposure.mask();
    MaskPixel exclude = ctx.badBits;
    for (const auto& p : excludePlanes_) {
        auto it = mask.planes().find(p);
        if (it != mask.planes().end()) exclude |= MaskPixel(1u << it->second);
    }
    const Box2I img = ctx.exposure.bbox();
    const double rin2 = cfg.skyInnerRadius * cfg.skyInnerRadius, rout = cfg.skyOuterRadius, rout2 = rout * rout;
    const Box2I full = Box2I::fromCorners({int(std::floor(c.x - rout)), int(std::floor(c.y - rout))},
                                          {int(std::ceil(c.x + rout)), int(std::ceil(c.y + rout))});
    const Box2I box = full.intersection(img);
    table.column(edge_)[row] = !(box == full);
    thread_local std::vector<double> values;
    values.resize(std::size_t(box.width()) * std::size_t(box.height()));
    std::size_t count = 0;
    const ImageF& image = ctx.exposure.image();
    const ImageF& var = ctx.exposure.variance();
    // Per row only the columns that can be in the annulus are visited: outside the outer circle's span
    // (with a one-pixel margin for rounding) and inside the inner circle's span less one pixel (there
    // |dx| <= rInner - 1, so r2 < rin2 with a wide margin) no pixel qualifies. The exact test below then
    // selects the same pixels, in the same order, as a scan of the whole box (each pixel is written and
    // kept only if it qualifies: no branch on the data).
    const double rin = cfg.skyInnerRadius;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y;
        const double outerSq = rout2 - dy * dy;
        if (outerSq < 0) continue;  // r2 >= dy^2 > rout2 for the whole row
        const double so = std::sqrt(outerSq);
        const int xa = std::max(box.minX(), int(std::floor(c.x - so)) - 1);
        const int xb = std::min(box.maxX(), int(std::ceil(c.x + so)) + 1);
        int skipLo = xb + 1, skipHi = xb;  // columns surely inside the inner circle: [skipLo, skipHi]
        const double innerSq = rin * rin - dy * dy;
        if (innerSq > 0) {
            const double si = std::sqrt(innerSq);
            skipLo = int(std::ceil(c.x - si)) + 1;
            skipHi = int(std::floor(c.x + si)) - 1;
        }
        const int ly = y - img.minY();
        const float* irow = image.row(ly) - img.minX();
        const float* vrow = var.row(ly) - img.minX();
        const MaskPixel* mrow = mask.row(ly) - img.minX();
        auto take = [&](int x0, int x1) {
            for (int x = x0; x <= x1; ++x) {
                const double dx = x - c.x, r2 = dx * dx + dy * dy;
                const float d = irow[x], v = vrow[x];
                const bool ok = (r2 > rin2) & (r2 <= rout2) & usablePixel(d, v, mrow[x], exclude);
                values[count] = d;
                count += ok;
            }
        };
        if (skipLo > skipHi) {
            take(xa, xb);
        } else {
            take(xa, std::min(xb, skipLo - 1));
            take(std::max(xa, skipHi + 1), xb);
        }
    }
    values.resize(count);
    if (count < std::size_t(cfg.skyMinPixels)) {
        fail(ctx, table, row);
        table.column(noGoodPixels_)[row] = true;
        return;
    }
    // Median and MAD start.
    const std::size_t n = values.size();
    thread_local std::vector<double> work;
    work.assign(values.begin(), values.end());
    double centre = selectKth(work.data(), n, n / 2);
    for (double& w : work) w = std::fabs(w - centre);
    double width = 1.4826 * selectKth(work.data(), n, n / 2);
    double mean = centre, stdev = width;
    std::size_t kept = n;
    if (!(width > 0) || cfg.skyClipIter == 0) {  // no clipping (or constant pixels): plain statistics
        double s = 0, s2 = 0;
        for (double v : values) s += v, s2 += v * v;
        mean = s / n;
        stdev = std::sqrt(std::max(0.0, (s2 - n * mean * mean) / std::max<double>(1, n - 1)));
    } else {
        for (int it = 0; it < cfg.skyClipIter; ++it) {
            double s = 0, s2 = 0;
            std::size_t k = 0;
            for (double v : values)
                if (std::fabs(v - centre) <= cfg.skyClipSigma * width) s += v, s2 += v * v, ++k;
            if (k < 2) break;
            mean = s / k;
            stdev = std::sqrt(std::max(0.0, (s2 - k * mean * mean) / (k - 1)));
            kept = k;
            centre = mean;
            width = stdev;
            if (!(width > 0)) break;
        }
    }
    table.column(sky_)[row] = mean;
    table.column(skyErr_)[row] = stdev / std::sqrt(double(kept));
    table.column(flag_)[row] = false;
    table.column(noGoodPixels_)[row] = false;
}

void LocalSkyPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    table.column(sky_)[row] = kNaN;
    table.column(skyErr_)[row] = kNaN;
    table.column(flag_)[row] = true;
}

}  // namespace drp
