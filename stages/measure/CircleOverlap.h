// CircleOverlap: the exact area of the intersection of a disk with an axis-aligned rectangle, the pixel
// weights of the circular apertures.
//
// With the disk centred at the origin, radius r, and the rectangle [x0, x1] x [y0, y1]:
//     area = int_{x0}^{x1} ( clip(+h(x), y0, y1) - clip(-h(x), y0, y1) ) dx,   h(x) = sqrt(r^2 - x^2),
// which is piecewise either a constant or +-h(x) between the break points x = +-sqrt(r^2 - y0^2),
// +-sqrt(r^2 - y1^2); each piece is integrated in closed form with
//     int h = (x h(x) + r^2 asin(x / r)) / 2.
// Exact to rounding (no sub-pixel sampling).
#pragma once

#include <vector>

#include "core/Box.h"

namespace drp {

/// Area of {x^2 + y^2 <= r^2} intersected with [x0, x1] x [y0, y1] (x0 <= x1, y0 <= y1, r >= 0).
double circleRectangleOverlap(double x0, double x1, double y0, double y1, double r);

/// The fraction of the unit pixel centred at (dx, dy) (offset from the disk centre) inside the disk
/// of radius r: 1 for pixels entirely inside, 0 entirely outside, the exact overlap otherwise.
double pixelCircleFraction(double dx, double dy, double r);

/// The same exact pixel fractions for one circle over a box of pixels, with the chord integrals at the
/// pixel-grid lines (and at the circle's crossings of the row lines) computed once: the break points of
/// neighbouring pixels are shared, so a boundary pixel costs no transcendental call. Results equal
/// pixelCircleFraction(x - cx, y - cy, r) to rounding.
class CirclePixelGrid {
public:
    /// The circle of `radius` about `centre` (parent frame) over the pixels of `box`.
    CirclePixelGrid(Point2D centre, double radius, const Box2I& box);
    /// Fraction of pixel (x, y) (inside the box) within the circle.
    double fraction(int x, int y) const;

private:
    Point2D centre_;
    double r_;
    Box2I box_;
    double gQuarter_;                  // chord integral at x = r: pi r^2 / 4
    std::vector<double> colG_;         // at the left edge of each column (and the right edge of the last)
    std::vector<double> rowX_, rowG_;  // crossing abscissa (>= 0, or -1: none) and its chord integral per row edge
};

}  // namespace drp
