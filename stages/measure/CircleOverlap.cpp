#include "stages/measure/CircleOverlap.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace drp {

namespace {

/// Antiderivative of sqrt(r^2 - x^2) on [-r, r] (odd in x).
double chordIntegral(double x, double r) {
    const double t = std::clamp(x / r, -1.0, 1.0);
    const double h = std::sqrt(std::max(0.0, r * r - x * x));
    return 0.5 * (x * h + r * r * std::asin(t));
}

struct Break {
    double x;
    double g;  // chordIntegral(x, r)
};

/// The piecewise integral of the header comment over break points already clipped to [-r, r] and
/// carrying their chord integrals. `pts` holds a, b and the circle crossings of y = y0, y1 inside (a, b).
double integrate(Break* pts, int n, double y0, double y1, double r) {
    for (int i = 1; i < n; ++i) {  // insertion sort by x (at most 6 points)
        const Break v = pts[i];
        int j = i - 1;
        while (j >= 0 && pts[j].x > v.x) {
            pts[j + 1] = pts[j];
            --j;
        }
        pts[j + 1] = v;
    }
    double area = 0.0;
    for (int i = 0; i + 1 < n; ++i) {
        const double u = pts[i].x, v = pts[i + 1].x;
        if (!(v > u)) continue;
        const double xm = 0.5 * (u + v);
        const double hm = std::sqrt(std::max(0.0, r * r - xm * xm));
        // upper edge: min(max(+h, y0), y1); lower edge: min(max(-h, y0), y1)
        const bool upperCurved = hm < y1 && hm > y0, lowerCurved = -hm > y0 && -hm < y1;
        const double hInt = pts[i + 1].g - pts[i].g;
        const double upper = upperCurved ? hInt : (hm >= y1 ? y1 : y0) * (v - u);
        const double lower = lowerCurved ? -hInt : (-hm <= y0 ? y0 : y1) * (v - u);
        area += upper - lower;
    }
    return std::max(0.0, area);
}

/// 0 or 1 when the unit pixel centred at (dx, dy) is wholly outside or inside the disk, else -1.
double trivialFraction(double dx, double dy, double r) {
    const double ax = std::fabs(dx), ay = std::fabs(dy);
    const double fx = ax + 0.5, fy = ay + 0.5;
    if (fx * fx + fy * fy <= r * r) return 1.0;
    const double nx = std::max(ax - 0.5, 0.0), ny = std::max(ay - 0.5, 0.0);
    if (nx * nx + ny * ny >= r * r) return 0.0;
    return -1.0;
}

}  // namespace

double circleRectangleOverlap(double x0, double x1, double y0, double y1, double r) {
    if (!(r > 0) || !(x1 > x0) || !(y1 > y0)) return 0.0;
    const double a = std::max(x0, -r), b = std::min(x1, r);
    if (!(b > a)) return 0.0;
    Break pts[6];
    int n = 0;
    pts[n++] = {a, chordIntegral(a, r)};
    pts[n++] = {b, chordIntegral(b, r)};
    for (double yy : {y0, y1}) {
        // A tangent edge (|yy| = r) also gets its touching point x = 0: the pieces are classified by their
        // midpoints, and a piece through the tangent point would be taken as flat.
        if (std::fabs(yy) <= r) {
            const double xb = std::sqrt(r * r - yy * yy);
            const double g = chordIntegral(xb, r);
            if (xb > a && xb < b) pts[n++] = {xb, g};
            if (-xb > a && -xb < b) pts[n++] = {-xb, -g};
        }
    }
    return integrate(pts, n, y0, y1, r);
}

double pixelCircleFraction(double dx, double dy, double r) {
    const double t = trivialFraction(dx, dy, r);
    if (t >= 0) return t;
    return circleRectangleOverlap(dx - 0.5, dx + 0.5, dy - 0.5, dy + 0.5, r);
}

void CirclePixelGrid::reset(Point2D centre, double radius, const Box2I& box) {
    centre_ = centre;
    r_ = radius;
    box_ = box;
    gQuarter_ = 0.25 * std::numbers::pi * radius * radius;
    colE_.clear(), colG_.clear(), rowF_.clear(), rowX_.clear(), rowG_.clear();
    if (box.empty() || !(radius > 0)) return;
    colE_.resize(std::size_t(box.width() + 1));
    colG_.resize(std::size_t(box.width() + 1));
    for (int i = 0; i <= box.width(); ++i) {
        const double e = box.minX() + i - 0.5 - centre.x;
        colE_[std::size_t(i)] = e;
        colG_[std::size_t(i)] = e <= -r_ ? -gQuarter_ : (e >= r_ ? gQuarter_ : chordIntegral(e, r_));
    }
    rowF_.resize(std::size_t(box.height() + 1));
    rowX_.resize(std::size_t(box.height() + 1));
    rowG_.resize(std::size_t(box.height() + 1));
    for (int j = 0; j <= box.height(); ++j) {
        const double f = box.minY() + j - 0.5 - centre.y;
        rowF_[std::size_t(j)] = f;
        if (std::fabs(f) < r_) {
            const double xb = std::sqrt(r_ * r_ - f * f);
            rowX_[std::size_t(j)] = xb;
            rowG_[std::size_t(j)] = chordIntegral(xb, r_);
        } else {
            rowX_[std::size_t(j)] = -1.0;
            rowG_[std::size_t(j)] = 0.0;
        }
    }
}

double CirclePixelGrid::stripIntegral(std::size_t i, std::size_t j) const {
    // The column clipped to the disk's extent, [a, b], with G at both ends.
    const double e0 = colE_[i], e1 = colE_[i + 1];
    const double a = std::max(e0, -r_), b = std::min(e1, r_);
    if (!(b > a)) return 0.0;
    const double ga = e0 > -r_ ? colG_[i] : -gQuarter_, gb = e1 < r_ ? colG_[i + 1] : gQuarter_;
    const double y = rowF_[j], xb = rowX_[j];
    if (xb < 0) return y > 0 ? gb - ga : ga - gb;  // |y| >= r: clip(y, -h, h) = sign(y) h everywhere
    const double gx = rowG_[j];
    // |x| >= xb: clip = sign(y) h; |x| < xb: clip = y.
    double arcs = 0.0;
    if (b > xb) arcs += gb - (a > xb ? ga : gx);
    if (a < -xb) arcs += (b < -xb ? gb : -gx) - ga;
    const double len = std::max(0.0, std::min(b, xb) - std::max(a, -xb));
    return y * len + (y > 0 ? arcs : -arcs);
}

double CirclePixelGrid::boundaryFraction(int x, int y) const {
    const std::size_t i = std::size_t(x - box_.minX()), j = std::size_t(y - box_.minY());
    return std::clamp(stripIntegral(i, j + 1) - stripIntegral(i, j), 0.0, 1.0);
}

CirclePixelGrid::Cover CirclePixelGrid::cover(int x, int y) const {
    const double t = trivialFraction(x - centre_.x, y - centre_.y, r_);
    return t > 0 ? Cover::Inside : (t == 0 ? Cover::Outside : Cover::Crossed);
}

double CirclePixelGrid::fraction(int x, int y) const {
    const double t = trivialFraction(x - centre_.x, y - centre_.y, r_);
    if (t >= 0) return t;
    return boundaryFraction(x, y);
}

}  // namespace drp
