// Integer and floating-point points and axis-aligned boxes in pixel coordinates.
// Convention (as in afw): integer pixel (x, y) covers [x-0.5, x+0.5) in floating coordinates.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <ostream>

namespace drp {

struct Point2I {
    int x = 0;
    int y = 0;
    friend bool operator==(const Point2I&, const Point2I&) = default;
    Point2I operator+(const Point2I& o) const { return {x + o.x, y + o.y}; }
    Point2I operator-(const Point2I& o) const { return {x - o.x, y - o.y}; }
};

struct Point2D {
    double x = 0.0;
    double y = 0.0;
    friend bool operator==(const Point2D&, const Point2D&) = default;
    Point2D operator+(const Point2D& o) const { return {x + o.x, y + o.y}; }
    Point2D operator-(const Point2D& o) const { return {x - o.x, y - o.y}; }
};

/// An integer box: the pixels [minX, minX+width) x [minY, minY+height). Empty when width or height is 0.
class Box2I {
public:
    Box2I() = default;
    Box2I(Point2I min, int width, int height) : min_(min), width_(std::max(width, 0)), height_(std::max(height, 0)) {
        if (width_ == 0 || height_ == 0) width_ = height_ = 0;
    }
    /// The box spanning the two corners, inclusive.
    static Box2I fromCorners(Point2I minCorner, Point2I maxCorner) {
        return Box2I(minCorner, maxCorner.x - minCorner.x + 1, maxCorner.y - minCorner.y + 1);
    }

    int minX() const { return min_.x; }
    int minY() const { return min_.y; }
    int maxX() const { return min_.x + width_ - 1; }  ///< inclusive
    int maxY() const { return min_.y + height_ - 1; } ///< inclusive
    int width() const { return width_; }
    int height() const { return height_; }
    Point2I min() const { return min_; }
    Point2I max() const { return {maxX(), maxY()}; }
    std::int64_t area() const { return std::int64_t(width_) * height_; }
    bool empty() const { return width_ == 0; }

    bool contains(Point2I p) const { return p.x >= minX() && p.x <= maxX() && p.y >= minY() && p.y <= maxY(); }
    bool contains(const Box2I& b) const { return b.empty() || (!empty() && contains(b.min()) && contains(b.max())); }
    bool overlaps(const Box2I& b) const { return !intersection(b).empty(); }

    Box2I intersection(const Box2I& b) const {
        if (empty() || b.empty()) return {};
        int x0 = std::max(minX(), b.minX()), y0 = std::max(minY(), b.minY());
        int x1 = std::min(maxX(), b.maxX()), y1 = std::min(maxY(), b.maxY());
        if (x1 < x0 || y1 < y0) return {};
        return fromCorners({x0, y0}, {x1, y1});
    }
    /// The smallest box containing both.
    Box2I include(const Box2I& b) const {
        if (empty()) return b;
        if (b.empty()) return *this;
        return fromCorners({std::min(minX(), b.minX()), std::min(minY(), b.minY())},
                           {std::max(maxX(), b.maxX()), std::max(maxY(), b.maxY())});
    }
    Box2I include(Point2I p) const { return include(Box2I(p, 1, 1)); }
    /// Grown by n pixels on every side (shrunk for negative n).
    Box2I grow(int n) const {
        if (empty()) return {};
        return Box2I({minX() - n, minY() - n}, width_ + 2 * n, height_ + 2 * n);
    }
    Box2I shift(Point2I d) const { return empty() ? Box2I() : Box2I(min_ + d, width_, height_); }

    friend bool operator==(const Box2I& a, const Box2I& b) {
        return (a.empty() && b.empty()) || (a.min_ == b.min_ && a.width_ == b.width_ && a.height_ == b.height_);
    }
    friend std::ostream& operator<<(std::ostream& os, const Box2I& b) {
        return os << "Box2I(min=(" << b.minX() << "," << b.minY() << "), " << b.width() << "x" << b.height() << ")";
    }

private:
    Point2I min_{};
    int width_ = 0;
    int height_ = 0;
};

/// A floating-point box [minX, maxX) x [minY, maxY).
class Box2D {
public:
    Box2D() : min_{std::numeric_limits<double>::infinity(), std::numeric_limits<double>::infinity()},
              max_{-std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()} {}
    Box2D(Point2D min, Point2D max) : min_(min), max_(max) {}
    /// The floating box covered by the pixels of an integer box.
    explicit Box2D(const Box2I& b)
        : Box2D(b.empty() ? Box2D() : Box2D({b.minX() - 0.5, b.minY() - 0.5}, {b.maxX() + 0.5, b.maxY() + 0.5})) {}

    double minX() const { return min_.x; }
    double minY() const { return min_.y; }
    double maxX() const { return max_.x; }
    double maxY() const { return max_.y; }
    double width() const { return empty() ? 0.0 : max_.x - min_.x; }
    double height() const { return empty() ? 0.0 : max_.y - min_.y; }
    bool empty() const { return !(max_.x > min_.x && max_.y > min_.y); }
    Point2D center() const { return {0.5 * (min_.x + max_.x), 0.5 * (min_.y + max_.y)}; }
    bool contains(Point2D p) const { return p.x >= min_.x && p.x < max_.x && p.y >= min_.y && p.y < max_.y; }
    Box2D include(Point2D p) const {
        return Box2D({std::min(min_.x, p.x), std::min(min_.y, p.y)}, {std::max(max_.x, p.x), std::max(max_.y, p.y)});
    }
    Box2D intersection(const Box2D& b) const {
        return Box2D({std::max(min_.x, b.min_.x), std::max(min_.y, b.min_.y)},
                     {std::min(max_.x, b.max_.x), std::min(max_.y, b.max_.y)});
    }
    /// The integer pixels whose centres lie inside this box.
    Box2I pixelsInside() const {
        if (empty()) return {};
        int x0 = int(std::ceil(min_.x)), y0 = int(std::ceil(min_.y));
        int x1 = int(std::ceil(max_.x)) - 1, y1 = int(std::ceil(max_.y)) - 1;
        if (x1 < x0 || y1 < y0) return {};
        return Box2I::fromCorners({x0, y0}, {x1, y1});
    }

private:
    Point2D min_;
    Point2D max_;
};

}  // namespace drp
