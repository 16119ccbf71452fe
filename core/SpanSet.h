// SpanSet: a set of pixels stored as run-length spans, the geometric half of a Footprint.
//
// A Span is one run of pixels (y, x0..x1), both ends inclusive, in the parent pixel frame (the frame
// of Image::xy0, as in afw). A SpanSet holds its spans sorted by (y, x0), non-overlapping and merged:
// two spans of one row are always separated by at least one pixel that is not in the set. Every
// constructor normalises its input, so two SpanSets with the same pixels compare equal.
// A SpanSet is immutable after construction; every operation returns a new one. Share as
// std::shared_ptr<const SpanSet>.
//
// Connectivity (split, detection): FOUR joins pixels that share an edge; EIGHT also joins pixels
// that share only a corner (the afw / SExtractor default for detection).
#pragma once

#include <cstdint>
#include <memory>
#include <ostream>
#include <vector>

#include "core/Box.h"
#include "core/Image.h"

namespace drp {

/// One run of pixels on row y, from x0 to x1 inclusive (x1 >= x0 for a valid span).
struct Span {
    int y = 0;
    int x0 = 0;
    int x1 = -1;

    int width() const { return x1 - x0 + 1; }
    bool contains(int x) const { return x >= x0 && x <= x1; }
    friend bool operator==(const Span&, const Span&) = default;
    /// Raster order: by y, then x0, then x1.
    friend bool operator<(const Span& a, const Span& b) {
        if (a.y != b.y) return a.y < b.y;
        if (a.x0 != b.x0) return a.x0 < b.x0;
        return a.x1 < b.x1;
    }
    friend std::ostream& operator<<(std::ostream& os, const Span& s) {
        return os << "Span(y=" << s.y << ", x=" << s.x0 << ".." << s.x1 << ")";
    }
};

/// Shape of a structuring element of integer radius r centred on (0, 0).
enum class Stencil {
    CIRCLE,     ///< pixels with x^2 + y^2 <= r^2
    BOX,        ///< the (2r+1) x (2r+1) square
    MANHATTAN,  ///< pixels with |x| + |y| <= r (a diamond)
};

/// Pixel connectivity for connected components.
enum class Connectivity {
    FOUR,   ///< edge neighbours only
    EIGHT,  ///< edge and corner neighbours
};

class SpanSet {
public:
    /// The empty set.
    SpanSet() = default;
    /// From arbitrary spans (any order, overlapping or adjacent allowed; spans with x1 < x0 are dropped).
    explicit SpanSet(std::vector<Span> spans);
    /// All pixels of a box.
    explicit SpanSet(const Box2I& box);

    /// A structuring element of integer radius r >= 0 centred on `center` (default the origin).
    /// Throws LogicError for r < 0.
    static SpanSet fromShape(int radius, Stencil stencil = Stencil::CIRCLE, Point2I center = {0, 0});
    /// Pixels whose centres satisfy x'^2/a^2 + y'^2/b^2 <= 1, where (x', y') is the offset from `center`
    /// rotated by -theta (theta: angle of the a axis from +x, radians). Throws LogicError unless a, b > 0.
    static SpanSet fromEllipse(Point2D center, double a, double b, double theta = 0.0);
    /// Pixels of `mask` (parent frame) with any of `bits` set.
    static SpanSet fromMask(const Image<std::int32_t>& mask, std::int32_t bits);
    /// Pixels of `image` (parent frame) with value >= threshold, or, if `negative`, with
    /// -value >= threshold (i.e. value <= -threshold). NaN pixels are never included.
    template <typename T>
    static SpanSet fromThreshold(const Image<T>& image, double threshold, bool negative = false);

    // ---- geometry ----
    const std::vector<Span>& spans() const { return spans_; }
    std::vector<Span>::const_iterator begin() const { return spans_.begin(); }
    std::vector<Span>::const_iterator end() const { return spans_.end(); }
    std::size_t size() const { return spans_.size(); }  ///< number of spans
    bool empty() const { return spans_.empty(); }
    std::int64_t area() const { return area_; }  ///< number of pixels
    Box2I bbox() const { return bbox_; }
    bool contains(Point2I p) const;
    /// True if every pixel of `other` is in this set.
    bool contains(const SpanSet& other) const;
    bool overlaps(const SpanSet& other) const;
    /// Mean pixel position (unweighted). Throws LogicError for an empty set.
    Point2D centroid() const;
    /// Image-weighted mean position over the set (pixels must lie inside the image); throws
    /// LogicError if the set is not inside the image or the weights sum to zero.
    template <typename T>
    Point2D centroid(const Image<T>& image) const;

    // ---- set operations (all O(number of spans)) ----
    SpanSet unionWith(const SpanSet& other) const;
    SpanSet intersection(const SpanSet& other) const;
    /// Pixels of this set that are not in `other`.
    SpanSet difference(const SpanSet& other) const;
    /// Pixels of `box` not in this set.
    SpanSet complement(const Box2I& box) const;
    SpanSet shift(int dx, int dy) const;
    SpanSet clippedTo(const Box2I& box) const;

    // ---- morphology (per-span Minkowski sums: O(spans x element spans), never per pixel) ----
    /// Minkowski sum with a structuring element given relative to (0, 0).
    SpanSet dilated(const SpanSet& element) const;
    SpanSet dilated(int radius, Stencil stencil = Stencil::CIRCLE) const;
    /// Minkowski difference: pixels p such that p + element lies inside this set. Dual of dilation:
    /// A.eroded(S) == A.complement(B).dilated(-S).complement(B) for any box B containing A grown by S.
    SpanSet eroded(const SpanSet& element) const;
    SpanSet eroded(int radius, Stencil stencil = Stencil::CIRCLE) const;
    /// The element reflected through the origin (-S), as needed by the duality above.
    SpanSet reflected() const;

    /// Connected components, ordered by their first pixel in raster order.
    std::vector<SpanSet> split(Connectivity connectivity = Connectivity::EIGHT) const;
    /// The component of every span (index into spans()), numbered as in split(); `nComponents`
    /// (if given) receives the number of components.
    std::vector<std::uint32_t> componentLabels(Connectivity connectivity = Connectivity::EIGHT,
                                               std::size_t* nComponents = nullptr) const;
    /// Index of the span containing p, or -1.
    std::int64_t findSpan(Point2I p) const;

    // ---- pixel access (spans outside the image are an error unless stated) ----
    /// OR `bits` into the mask over the set, clipped to the mask's bbox.
    void setMask(const Image<std::int32_t>& mask, std::int32_t bits) const;
    /// Clear `bits` in the mask over the set, clipped to the mask's bbox.
    void clearMask(const Image<std::int32_t>& mask, std::int32_t bits) const;
    /// Image values over the set in span order (raster order). Throws LogicError unless the set is
    /// inside image.bbox().
    template <typename T>
    std::vector<T> flatten(const Image<T>& image) const;
    /// Write values (in span order, size area()) back into the image: inverse of flatten.
    template <typename T>
    void unflatten(const Image<T>& image, const std::vector<T>& values) const;
    /// Call f(Point2I) for every pixel in raster order.
    template <typename F>
    void forEachPixel(F&& f) const {
        for (const Span& s : spans_)
            for (int x = s.x0; x <= s.x1; ++x) f(Point2I{x, s.y});
    }

    friend bool operator==(const SpanSet& a, const SpanSet& b) { return a.spans_ == b.spans_; }
    friend std::ostream& operator<<(std::ostream& os, const SpanSet& s);

    /// Wrap spans that the caller guarantees are already normalised (sorted, disjoint, merged).
    /// Checked in debug builds only. Used by fast producers (detection).
    static SpanSet fromNormalizedSpans(std::vector<Span> spans);

private:
    void computeSummary();
    void requireInside(const Box2I& box, const char* what) const;

    std::vector<Span> spans_;
    Box2I bbox_;
    std::int64_t area_ = 0;
};

/// Union-find over span (run) indices with the smallest index as root (SpanSet::split, footprint detection).
struct RunUnionFind {
    std::vector<std::uint32_t> parent;
    /// n singletons.
    explicit RunUnionFind(std::size_t n = 0) : parent(n) {
        for (std::size_t i = 0; i < n; ++i) parent[i] = std::uint32_t(i);
    }
    std::uint32_t find(std::uint32_t i) {
        std::uint32_t r = i;
        while (parent[r] != r) r = parent[r];
        while (parent[i] != r) {
            const std::uint32_t next = parent[i];
            parent[i] = r;
            i = next;
        }
        return r;
    }
    void unite(std::uint32_t a, std::uint32_t b) {
        a = find(a);
        b = find(b);
        if (a < b) parent[b] = a;
        else if (b < a) parent[a] = b;
    }
};

}  // namespace drp
