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

/// The same exact pixel fractions for one circle over a box of pixels, with no transcendental call per
/// pixel. The chord integrals G(x) = int_0^x h are computed once at the column lines and at the circle's
/// crossings of the row lines; the area of a pixel is then T(y1) - T(y0) with
///     T(y) = int_{x0}^{x1} clip(y, -h(x), h(x)) dx,
/// which is y times the length of the part of [x0, x1] where |x| < sqrt(r^2 - y^2) plus +-(differences of G)
/// over the rest. Results equal pixelCircleFraction(x - cx, y - cy, r) to rounding (absolute differences
/// of a few 1e-13 at r = 35; the test asserts 1e-12).
class CirclePixelGrid {
public:
    CirclePixelGrid() = default;
    /// The circle of `radius` about `centre` (parent frame) over the pixels of `box`.
    CirclePixelGrid(Point2D centre, double radius, const Box2I& box) { reset(centre, radius, box); }
    /// Re-initialise for another circle or box (reusing the storage).
    void reset(Point2D centre, double radius, const Box2I& box);
    /// Where pixel (x, y) lies, from the distances of its farthest and nearest points to the centre.
    enum class Cover {
        Outside,  ///< wholly outside the circle: fraction 0
        Inside,   ///< wholly inside: fraction 1
        Crossed,  ///< crossed by the circle: fraction boundaryFraction(x, y)
    };
    Cover cover(int x, int y) const;
    /// Fraction of pixel (x, y) (inside the box) within the circle.
    double fraction(int x, int y) const;
    /// The same for a pixel known to be crossed by the circle (Cover::Crossed): skips the classification.
    double boundaryFraction(int x, int y) const;

private:
    /// T(y) of the header over column i (lines i and i + 1) at row line j.
    double stripIntegral(std::size_t i, std::size_t j) const;

    Point2D centre_;
    double r_ = 0.0;
    Box2I box_;
    double gQuarter_ = 0.0;            // chord integral at x = r: pi r^2 / 4
    std::vector<double> colE_, colG_;  // offset of each column line from the centre and its chord integral
    std::vector<double> rowF_, rowX_, rowG_;  // per row line: offset, crossing abscissa (>= 0, or -1: none), G
};

}  // namespace drp
