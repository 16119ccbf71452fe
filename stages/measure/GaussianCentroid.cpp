#include "stages/measure/GaussianCentroid.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "stages/measure/PixelRows.h"

namespace drp {

namespace {

struct PixelAccess {
    const MaskedImageF& mi;
    MaskPixel badBits;
    Box2I bbox;
};

/// Gaussian-smoothed value at integer pixel p (NaN if no usable pixel); g[k + r] = exp(-k^2 / 2 sigma^2).
double smoothedAt(const PixelAccess& px, Point2I p, const std::vector<double>& g) {
    const int r = int(g.size() / 2);
    const Box2I box = Box2I::fromCorners({p.x - r, p.y - r}, {p.x + r, p.y + r}).intersection(px.bbox);
    if (box.empty()) return std::nan("");
    const int ox = px.bbox.minX(), oy = px.bbox.minY();
    const double* gx = g.data() + (r - p.x);
    double s = 0, sw = 0;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double gy = g[std::size_t(y - p.y + r)];
        const float* irow = px.mi.image().row(y - oy) - ox;
        const float* vrow = px.mi.variance().row(y - oy) - ox;
        const MaskPixel* mrow = px.mi.mask().row(y - oy) - ox;
        for (int x = box.minX(); x <= box.maxX(); ++x) {
            const float v = irow[x];
            if (!usablePixel(v, vrow[x], mrow[x], px.badBits)) continue;
            const double w = gy * gx[x];
            s += w * v;
            sw += w;
        }
    }
    return sw > 0 ? s / sw : std::nan("");
}

/// SDSS-like first guess: climb the smoothed image to a local maximum, then a 3x3 quadratic.
Point2D sdssStart(const PixelAccess& px, Point2D start, double sigma) {
    Point2I p{int(std::floor(start.x + 0.5)), int(std::floor(start.y + 0.5))};
    const int r = int(std::ceil(3.0 * sigma));
    std::vector<double> g(std::size_t(2 * r + 1));
    for (int k = -r; k <= r; ++k) g[std::size_t(k + r)] = std::exp(-0.5 * k * k / (sigma * sigma));
    double s[3][3];
    // A climbing step moves the 3x3 block by one pixel: the values it shares with the last block are
    // taken from there.
    struct Known {
        Point2I at;
        double value;
    };
    Known known[9];
    int nKnown = 0;
    for (int step = 0; step < 4; ++step) {
        int bx = 1, by = 1;
        Known next[9];
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 3; ++i) {
                const Point2I q{p.x + i - 1, p.y + j - 1};
                double v = std::nan("");
                bool found = false;
                for (int k = 0; k < nKnown && !found; ++k)
                    if (known[k].at.x == q.x && known[k].at.y == q.y) v = known[k].value, found = true;
                if (!found) v = smoothedAt(px, q, g);
                s[j][i] = v;
                next[3 * j + i] = {q, v};
                if (!std::isfinite(s[j][i])) return start;
            }
        std::copy(next, next + 9, known);
        nKnown = 9;
        for (int j = 0; j < 3; ++j)
            for (int i = 0; i < 3; ++i)
                if (s[j][i] > s[by][bx]) bx = i, by = j;
        if (bx == 1 && by == 1) break;
        p = {p.x + bx - 1, p.y + by - 1};
        if (step == 3) return {double(p.x), double(p.y)};
    }
    const double dxx = s[1][0] - 2 * s[1][1] + s[1][2], dyy = s[0][1] - 2 * s[1][1] + s[2][1];
    double dx = dxx < 0 ? 0.5 * (s[1][0] - s[1][2]) / dxx : 0.0;
    double dy = dyy < 0 ? 0.5 * (s[0][1] - s[2][1]) / dyy : 0.0;
    dx = std::clamp(dx, -0.5, 0.5);
    dy = std::clamp(dy, -0.5, 0.5);
    return {p.x + dx, p.y + dy};
}

struct MomentSums {
    double jxx = 0, jyy = 0, jxy = 0;  // J
    double cxx = 0, cyy = 0, cxy = 0;  // Cov(f)
    double s0 = 0, sx = 0, sy = 0;     // sum w I, sum w I dx, ...: f(c) = (sx, sy)
    long n = 0;
    bool edge = false;
};

MomentSums sums(const PixelAccess& px, Point2D c, double sigma) {
    MomentSums m;
    const double rad = 5.0 * sigma, rad2 = rad * rad, a = -0.5 / (sigma * sigma), is2 = 1.0 / (sigma * sigma);
    const Box2I full = Box2I::fromCorners({int(std::floor(c.x - rad)), int(std::floor(c.y - rad))},
                                          {int(std::ceil(c.x + rad)), int(std::ceil(c.y + rad))});
    const Box2I box = full.intersection(px.bbox);
    if (!(box == full)) m.edge = true;
    if (box.empty()) return m;
    // The circular weight is separable: exp(a dx^2) exp(a dy^2), one exp() per column and per row.
    thread_local std::vector<double> wx;
    wx.resize(std::size_t(box.width()));
    for (int x = box.minX(); x <= box.maxX(); ++x) wx[std::size_t(x - box.minX())] = std::exp(a * (x - c.x) * (x - c.x));
    const MaskedImageF& mi = px.mi;
    // The sums in locals (registers), not in the struct (memory) on every pixel.
    double s0 = 0, sx = 0, sy = 0, jxx = 0, jyy = 0, jxy = 0, cxx = 0, cyy = 0, cxy = 0;
    long n = 0;
    bool edge = m.edge;
    const int ox = px.bbox.minX(), oy = px.bbox.minY();
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y;
        const double wy = std::exp(a * dy * dy);
        // The pixels of this row inside the circle, dx^2 + dy^2 <= rad2: an interval, estimated and then
        // checked with the same expression, so exactly those a scan of the box would take.
        auto inside = [&](int x) {
            const double dx = x - c.x;
            return dx * dx + dy * dy <= rad2;
        };
        const double half = std::sqrt(std::max(0.0, rad2 - dy * dy));
        const auto [x0, x1] =
            exactRowInterval(int(std::ceil(c.x - half)), int(std::floor(c.x + half)), box.minX(), box.maxX(), inside);
        const float* irow = mi.image().row(y - oy) - ox;
        const float* vrow = mi.variance().row(y - oy) - ox;
        const MaskPixel* mrow = mi.mask().row(y - oy) - ox;
        const double* wxr = wx.data() - box.minX();
        for (int x = x0; x <= x1; ++x) {
            const double dx = x - c.x;
            const float v = irow[x], var = vrow[x];
            if (!usablePixel(v, var, mrow[x], px.badBits)) {
                edge = true;
                continue;
            }
            const double w = wxr[x] * wy, wi = w * v;
            s0 += wi;
            sx += wi * dx;
            sy += wi * dy;
            jxx += wi * (dx * dx * is2 - 1.0);
            jyy += wi * (dy * dy * is2 - 1.0);
            jxy += wi * dx * dy * is2;
            const double w2v = w * w * var;
            cxx += w2v * dx * dx;
            cyy += w2v * dy * dy;
            cxy += w2v * dx * dy;
            ++n;
        }
    }
    m.s0 = s0, m.sx = sx, m.sy = sy, m.jxx = jxx, m.jyy = jyy, m.jxy = jxy, m.cxx = cxx, m.cyy = cyy, m.cxy = cxy;
    m.n = n;
    m.edge = edge;
    return m;
}

}  // namespace

GaussianCentroidResult measureGaussianCentroid(const MaskedImageF& image, Point2D start,
                                               const GaussianCentroidControl& control, MaskPixel badBits) {
    GaussianCentroidResult r;
    r.position = start;
    const double sigma = control.sigma;
    if (!std::isfinite(start.x) || !std::isfinite(start.y) || !(sigma > 0) || image.bbox().empty()) {
        r.noPixels = true;
        return r;
    }
    PixelAccess px{image, badBits, image.bbox()};
    Point2D c = sdssStart(px, start, sigma);
    MomentSums m;
    bool converged = false;
    for (int iter = 1; iter <= control.maxIter; ++iter) {
        r.iterations = iter;
        m = sums(px, c, sigma);
        if (m.n == 0 || !(m.s0 > 0)) {
            r.noPixels = true;
            return r;
        }
        const double det = m.jxx * m.jyy - m.jxy * m.jxy;
        Point2D step;
        if (m.jxx < 0 && det > 0) {  // negative definite: Newton step c -= J^-1 f, f = (sx, sy)
            step.x = -(m.jyy * m.sx - m.jxy * m.sy) / det;
            step.y = -(-m.jxy * m.sx + m.jxx * m.sy) / det;
        } else {  // weighted-mean step
            step.x = m.sx / m.s0;
            step.y = m.sy / m.s0;
        }
        const double len = std::hypot(step.x, step.y);
        if (len > 1.0) step = {step.x / len, step.y / len};  // trust region of one pixel
        c = c + step;
        if (!std::isfinite(c.x) || !std::isfinite(c.y) || std::hypot(c.x - start.x, c.y - start.y) > control.maxShift) {
            r.resetToPeak = true;
            r.position = start;
            return r;
        }
        if (len < control.tolerance) {
            converged = true;
            break;
        }
    }
    m = sums(px, c, sigma);  // at the final position, for the errors
    r.position = c;
    r.edge = m.edge;
    r.notConverged = !converged;
    const double det = m.jxx * m.jyy - m.jxy * m.jxy;
    if (!(m.jxx < 0 && det > 0)) {
        r.noSecondDerivative = true;
        return r;
    }
    // Cov(c) = J^-1 C J^-T with J^-1 = [[jyy, -jxy], [-jxy, jxx]] / det.
    const double ixx = m.jyy / det, iyy = m.jxx / det, ixy = -m.jxy / det;
    const double a11 = ixx * m.cxx + ixy * m.cxy, a12 = ixx * m.cxy + ixy * m.cyy;
    const double a21 = ixy * m.cxx + iyy * m.cxy, a22 = ixy * m.cxy + iyy * m.cyy;
    const double vxx = a11 * ixx + a12 * ixy, vyy = a21 * ixy + a22 * iyy, vxy = a11 * ixy + a12 * iyy;
    r.xErr = std::sqrt(vxx);
    r.yErr = std::sqrt(vyy);
    r.xyCov = vxy;
    return r;
}

}  // namespace drp
