#include "stages/measure/LocalSkyPlugin.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace drp {

namespace {

/// The k-th smallest of a[0, n) (k < n; no NaN), partially reordering a: a quickselect whose partitions
/// have no data-dependent branch (the order statistic is a value, so any exact selection returns the
/// same bits as std::nth_element; the annulus pixels are noise, on which nth_element's comparisons are
/// coin flips for the branch predictor).
template <typename T>
T selectKth(T* a, std::size_t n, std::size_t k) {
    std::size_t lo = 0, hi = n;  // the k-th is in [lo, hi)
    while (hi - lo > 16) {
        T p0 = a[lo], p1 = a[lo + (hi - lo) / 2], p2 = a[hi - 1];
        if (p1 < p0) std::swap(p0, p1);
        if (p2 < p1) std::swap(p1, p2);
        if (p1 < p0) std::swap(p0, p1);
        const T pivot = p1;
        // [lo, j) < pivot
        std::size_t j = lo;
        for (std::size_t i = lo; i < hi; ++i) {
            const T v = a[i];
            const bool less = v < pivot;
            a[i] = a[j];
            a[j] = v;
            j += less;
        }
        if (k < j) {
            hi = j;
            continue;
        }
        if (j > lo) {
            lo = j;
            continue;
        }
        // Nothing was below the pivot (the minimum, maybe repeated): split off the values equal to it,
        // [j, j2) (the pivot is one of the values, so j2 > j and the range shrinks).
        std::size_t j2 = j;
        for (std::size_t i = j; i < hi; ++i) {
            const T v = a[i];
            const bool notAbove = !(pivot < v);
            a[i] = a[j2];
            a[j2] = v;
            j2 += notAbove;
        }
        if (k < j2) return pivot;
        lo = j2;
    }
    for (std::size_t i = lo + 1; i < hi; ++i) {  // insertion sort of the last few
        const T v = a[i];
        std::size_t m = i;
        while (m > lo && v < a[m - 1]) {
            a[m] = a[m - 1];
            --m;
        }
        a[m] = v;
    }
    return a[k];
}

}  // namespace

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
                const bool ok = (r2 > rin2) & (r2 <= rout2) & std::isfinite(d) & std::isfinite(v) & (v >= 0.0f) &
                                ((mrow[x] & exclude) == 0);
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
