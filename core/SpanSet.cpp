#include "core/SpanSet.h"

#include <algorithm>
#include <cassert>
#include <climits>
#include <cmath>
#include <sstream>

#include "core/Error.h"

namespace drp {

namespace {

/// Sort and merge overlapping or adjacent spans of the same row, dropping invalid spans.
void normalize(std::vector<Span>& spans) {
    std::erase_if(spans, [](const Span& s) { return s.x1 < s.x0; });
    if (!std::is_sorted(spans.begin(), spans.end())) std::sort(spans.begin(), spans.end());
    std::size_t out = 0;
    for (std::size_t i = 0; i < spans.size(); ++i) {
        if (out > 0 && spans[out - 1].y == spans[i].y && spans[i].x0 <= spans[out - 1].x1 + 1) {
            spans[out - 1].x1 = std::max(spans[out - 1].x1, spans[i].x1);
        } else {
            spans[out++] = spans[i];
        }
    }
    spans.resize(out);
}

/// One row of a span list: spans [begin, end) all have this y.
struct Row {
    int y;
    std::uint32_t begin;
    std::uint32_t end;
};

std::vector<Row> rowsOf(const std::vector<Span>& spans) {
    std::vector<Row> rows;
    for (std::uint32_t i = 0; i < spans.size(); ++i) {
        if (rows.empty() || rows.back().y != spans[i].y) rows.push_back({spans[i].y, i, i});
        rows.back().end = i + 1;
    }
    return rows;
}

}  // namespace

SpanSet::SpanSet(std::vector<Span> spans) : spans_(std::move(spans)) {
    normalize(spans_);
    computeSummary();
}

SpanSet::SpanSet(const Box2I& box) {
    if (!box.empty()) {
        spans_.reserve(std::size_t(box.height()));
        for (int y = box.minY(); y <= box.maxY(); ++y) spans_.push_back({y, box.minX(), box.maxX()});
    }
    computeSummary();
}

SpanSet SpanSet::fromNormalizedSpans(std::vector<Span> spans) {
    SpanSet out;
    out.spans_ = std::move(spans);
#ifndef NDEBUG
    for (std::size_t i = 0; i < out.spans_.size(); ++i) {
        assert(out.spans_[i].x1 >= out.spans_[i].x0);
        if (i > 0) {
            const Span& p = out.spans_[i - 1];
            assert(p.y < out.spans_[i].y || (p.y == out.spans_[i].y && p.x1 + 1 < out.spans_[i].x0));
        }
    }
#endif
    out.computeSummary();
    return out;
}

void SpanSet::computeSummary() {
    area_ = 0;
    if (spans_.empty()) {
        bbox_ = Box2I();
        return;
    }
    int x0 = INT_MAX, x1 = INT_MIN;
    for (const Span& s : spans_) {
        area_ += s.width();
        x0 = std::min(x0, s.x0);
        x1 = std::max(x1, s.x1);
    }
    bbox_ = Box2I::fromCorners({x0, spans_.front().y}, {x1, spans_.back().y});
}

void SpanSet::requireInside(const Box2I& box, const char* what) const {
    if (!empty() && !box.contains(bbox_)) {
        std::ostringstream os;
        os << what << ": span set " << bbox_ << " is not inside the image " << box;
        throw LogicError(os.str());
    }
}

// ---------------------------------------------------------------------------------------------
// Constructors from shapes, masks and thresholds

SpanSet SpanSet::fromShape(int radius, Stencil stencil, Point2I center) {
    if (radius < 0) throw LogicError("SpanSet::fromShape: radius must be >= 0, got " + std::to_string(radius));
    std::vector<Span> spans;
    spans.reserve(std::size_t(2 * radius + 1));
    const std::int64_t r2 = std::int64_t(radius) * radius;
    for (int dy = -radius; dy <= radius; ++dy) {
        int w = 0;
        switch (stencil) {
            case Stencil::BOX: w = radius; break;
            case Stencil::MANHATTAN: w = radius - std::abs(dy); break;
            case Stencil::CIRCLE: {
                const std::int64_t rem = r2 - std::int64_t(dy) * dy;
                auto iw = std::int64_t(std::sqrt(double(rem)));
                while (iw * iw > rem) --iw;
                while ((iw + 1) * (iw + 1) <= rem) ++iw;
                w = int(iw);
                break;
            }
        }
        spans.push_back({center.y + dy, center.x - w, center.x + w});
    }
    return fromNormalizedSpans(std::move(spans));
}

SpanSet SpanSet::fromEllipse(Point2D center, double a, double b, double theta) {
    if (!(a > 0) || !(b > 0)) throw LogicError("SpanSet::fromEllipse: semi-axes must be positive");
    const double c = std::cos(theta), s = std::sin(theta);
    auto inside = [&](int x, int y) {
        const double dx = x - center.x, dy = y - center.y;
        const double u = c * dx + s * dy, v = -s * dx + c * dy;
        return u * u / (a * a) + v * v / (b * b) <= 1.0;
    };
    const double qa = c * c / (a * a) + s * s / (b * b);
    const double halfHeight = std::sqrt(a * a * s * s + b * b * c * c);
    std::vector<Span> spans;
    const int y0 = int(std::floor(center.y - halfHeight)) - 1, y1 = int(std::ceil(center.y + halfHeight)) + 1;
    for (int y = y0; y <= y1; ++y) {
        const double dy = y - center.y;
        const double qb = 2.0 * dy * c * s * (1.0 / (a * a) - 1.0 / (b * b));
        const double qc = dy * dy * (s * s / (a * a) + c * c / (b * b)) - 1.0;
        const double disc = qb * qb - 4.0 * qa * qc;
        const double mid = center.x - qb / (2.0 * qa);
        int x0, x1;
        if (disc < 0) {
            x0 = x1 = int(std::lround(mid));
            if (!inside(x0, y)) continue;
        } else {
            const double half = std::sqrt(disc) / (2.0 * qa);
            x0 = int(std::ceil(mid - half));
            x1 = int(std::floor(mid + half));
        }
        // Make the ends agree exactly with the per-pixel predicate (the row's intersection is convex).
        while (inside(x0 - 1, y)) --x0;
        while (x0 <= x1 && !inside(x0, y)) ++x0;
        while (inside(x1 + 1, y)) ++x1;
        while (x1 >= x0 && !inside(x1, y)) --x1;
        if (x1 >= x0) spans.push_back({y, x0, x1});
    }
    return fromNormalizedSpans(std::move(spans));
}

SpanSet SpanSet::fromMask(const Image<std::int32_t>& mask, std::int32_t bits) {
    std::vector<Span> spans;
    const int w = mask.width();
    for (int j = 0; j < mask.height(); ++j) {
        const std::int32_t* row = mask.row(j);
        const int y = j + mask.xy0().y;
        int i = 0;
        while (i < w) {
            while (i < w && !(row[i] & bits)) ++i;
            if (i == w) break;
            const int start = i;
            while (i < w && (row[i] & bits)) ++i;
            spans.push_back({y, start + mask.xy0().x, i - 1 + mask.xy0().x});
        }
    }
    return fromNormalizedSpans(std::move(spans));
}

template <typename T>
SpanSet SpanSet::fromThreshold(const Image<T>& image, double threshold, bool negative) {
    std::vector<Span> spans;
    const int w = image.width();
    const double sign = negative ? -1.0 : 1.0;
    auto above = [&](T v) { return sign * double(v) >= threshold; };  // false for NaN
    for (int j = 0; j < image.height(); ++j) {
        const T* row = image.row(j);
        const int y = j + image.xy0().y;
        int i = 0;
        while (i < w) {
            while (i < w && !above(row[i])) ++i;
            if (i == w) break;
            const int start = i;
            while (i < w && above(row[i])) ++i;
            spans.push_back({y, start + image.xy0().x, i - 1 + image.xy0().x});
        }
    }
    return fromNormalizedSpans(std::move(spans));
}

// ---------------------------------------------------------------------------------------------
// Queries

bool SpanSet::contains(const SpanSet& other) const { return other.difference(*this).empty(); }

bool SpanSet::overlaps(const SpanSet& other) const {
    if (!bbox_.overlaps(other.bbox_)) return false;
    std::size_t i = 0, j = 0;
    const auto& a = spans_;
    const auto& b = other.spans_;
    while (i < a.size() && j < b.size()) {
        if (a[i].y != b[j].y) {
            (a[i].y < b[j].y) ? ++i : ++j;
            continue;
        }
        if (std::max(a[i].x0, b[j].x0) <= std::min(a[i].x1, b[j].x1)) return true;
        (a[i].x1 < b[j].x1) ? ++i : ++j;
    }
    return false;
}

Point2D SpanSet::centroid() const {
    if (empty()) throw LogicError("SpanSet::centroid: empty set");
    double sx = 0, sy = 0;
    for (const Span& s : spans_) {
        const double n = s.width();
        sx += n * 0.5 * (double(s.x0) + double(s.x1));
        sy += n * s.y;
    }
    return {sx / double(area_), sy / double(area_)};
}

template <typename T>
Point2D SpanSet::centroid(const Image<T>& image) const {
    requireInside(image.bbox(), "SpanSet::centroid");
    double sw = 0, sx = 0, sy = 0;
    for (const Span& s : spans_) {
        const T* row = image.row(s.y - image.xy0().y) - image.xy0().x;
        for (int x = s.x0; x <= s.x1; ++x) {
            const double v = double(row[x]);
            sw += v;
            sx += v * x;
            sy += v * s.y;
        }
    }
    if (sw == 0 || !std::isfinite(sw)) throw LogicError("SpanSet::centroid: weights sum to zero or are not finite");
    return {sx / sw, sy / sw};
}

// ---------------------------------------------------------------------------------------------
// Set operations

SpanSet SpanSet::unionWith(const SpanSet& other) const {
    if (other.empty()) return *this;
    if (empty()) return other;
    std::vector<Span> out(spans_.size() + other.spans_.size());
    std::merge(spans_.begin(), spans_.end(), other.spans_.begin(), other.spans_.end(), out.begin());
    normalize(out);  // already sorted: a single merging pass
    return fromNormalizedSpans(std::move(out));
}

SpanSet SpanSet::intersection(const SpanSet& other) const {
    std::vector<Span> out;
    if (!bbox_.overlaps(other.bbox_)) return SpanSet();
    const auto& a = spans_;
    const auto& b = other.spans_;
    std::size_t i = 0, j = 0;
    while (i < a.size() && j < b.size()) {
        if (a[i].y != b[j].y) {
            (a[i].y < b[j].y) ? ++i : ++j;
            continue;
        }
        const int lo = std::max(a[i].x0, b[j].x0), hi = std::min(a[i].x1, b[j].x1);
        if (lo <= hi) out.push_back({a[i].y, lo, hi});
        (a[i].x1 < b[j].x1) ? ++i : ++j;
    }
    // Pieces of merged inputs are never adjacent: the result is already normalised.
    return fromNormalizedSpans(std::move(out));
}

SpanSet SpanSet::difference(const SpanSet& other) const {
    if (!bbox_.overlaps(other.bbox_)) return *this;
    std::vector<Span> out;
    out.reserve(spans_.size());
    const auto& b = other.spans_;
    std::size_t j = 0;
    for (const Span& a : spans_) {
        while (j < b.size() && (b[j].y < a.y || (b[j].y == a.y && b[j].x1 < a.x0))) ++j;
        int cur = a.x0;
        for (std::size_t k = j; k < b.size() && b[k].y == a.y && b[k].x0 <= a.x1; ++k) {
            if (b[k].x0 > cur) out.push_back({a.y, cur, b[k].x0 - 1});
            cur = std::max(cur, b[k].x1 + 1);
        }
        if (cur <= a.x1) out.push_back({a.y, cur, a.x1});
    }
    return fromNormalizedSpans(std::move(out));
}

SpanSet SpanSet::complement(const Box2I& box) const { return SpanSet(box).difference(*this); }

SpanSet SpanSet::shift(int dx, int dy) const {
    std::vector<Span> out(spans_);
    for (Span& s : out) {
        s.y += dy;
        s.x0 += dx;
        s.x1 += dx;
    }
    return fromNormalizedSpans(std::move(out));
}

SpanSet SpanSet::clippedTo(const Box2I& box) const {
    if (box.contains(bbox_)) return *this;
    std::vector<Span> out;
    if (box.empty()) return SpanSet();
    for (const Span& s : spans_) {
        if (s.y < box.minY() || s.y > box.maxY()) continue;
        const int x0 = std::max(s.x0, box.minX()), x1 = std::min(s.x1, box.maxX());
        if (x0 <= x1) out.push_back({s.y, x0, x1});
    }
    return fromNormalizedSpans(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Morphology

SpanSet SpanSet::dilated(const SpanSet& element) const {
    if (empty() || element.empty()) return SpanSet();
    const std::vector<Row> rows = rowsOf(spans_);
    const std::vector<Row> eRows = rowsOf(element.spans_);
    const std::size_t k = eRows.size();
    // Output row Y receives (row Y - dy of this set) (+) (element row dy) for every element row dy.
    // One pointer per element row walks this set's rows in step with Y.
    std::vector<std::size_t> ptr(k, 0);
    std::vector<Span> out;
    out.reserve(spans_.size() * k);
    std::vector<Span> cur, tmp;
    while (true) {
        int Y = INT_MAX;
        for (std::size_t e = 0; e < k; ++e)
            if (ptr[e] < rows.size()) Y = std::min(Y, rows[ptr[e]].y + eRows[e].y);
        if (Y == INT_MAX) break;
        // Union, one element span at a time, of the (sorted) shifted-and-widened input rows: each step
        // is a linear merge of two x-sorted lists, so a row costs O(element spans x row spans).
        cur.clear();
        for (std::size_t e = 0; e < k; ++e) {
            if (ptr[e] >= rows.size() || rows[ptr[e]].y + eRows[e].y != Y) continue;
            const Row& r = rows[ptr[e]];
            for (std::uint32_t ie = eRows[e].begin; ie < eRows[e].end; ++ie) {
                const int e0 = element.spans_[ie].x0, e1 = element.spans_[ie].x1;
                tmp.clear();
                std::size_t a = 0;
                std::uint32_t b = r.begin;
                auto push = [&tmp](int x0, int x1) {
                    if (!tmp.empty() && x0 <= tmp.back().x1 + 1) tmp.back().x1 = std::max(tmp.back().x1, x1);
                    else tmp.push_back({0, x0, x1});
                };
                while (a < cur.size() || b < r.end) {
                    if (b == r.end || (a < cur.size() && cur[a].x0 <= spans_[b].x0 + e0)) {
                        push(cur[a].x0, cur[a].x1);
                        ++a;
                    } else {
                        push(spans_[b].x0 + e0, spans_[b].x1 + e1);
                        ++b;
                    }
                }
                cur.swap(tmp);
            }
            ++ptr[e];
        }
        for (const Span& sp : cur) out.push_back({Y, sp.x0, sp.x1});
    }
    return fromNormalizedSpans(std::move(out));
}

SpanSet SpanSet::dilated(int radius, Stencil stencil) const { return dilated(fromShape(radius, stencil)); }

SpanSet SpanSet::eroded(const SpanSet& element) const {
    if (element.empty()) throw LogicError("SpanSet::eroded: the structuring element is empty");
    if (empty()) return SpanSet();
    // A (-) S = intersection over element spans s = (dy, e0, e1) of { p : p + s inside A }, and for one
    // span that set is, per span (y, a0, a1) of A wide enough, the span (y - dy, a0 - e0, a1 - e1).
    SpanSet result;
    bool first = true;
    std::vector<Span> part;
    for (const Span& es : element.spans_) {
        part.clear();
        const int need = es.width();
        for (const Span& a : spans_)
            if (a.width() >= need) part.push_back({a.y - es.y, a.x0 - es.x0, a.x1 - es.x1});
        SpanSet p = fromNormalizedSpans(part);
        result = first ? std::move(p) : result.intersection(p);
        first = false;
        if (result.empty()) break;
    }
    return result;
}

SpanSet SpanSet::eroded(int radius, Stencil stencil) const { return eroded(fromShape(radius, stencil)); }

SpanSet SpanSet::reflected() const {
    std::vector<Span> out;
    out.reserve(spans_.size());
    for (auto it = spans_.rbegin(); it != spans_.rend(); ++it) out.push_back({-it->y, -it->x1, -it->x0});
    return fromNormalizedSpans(std::move(out));
}

// ---------------------------------------------------------------------------------------------
// Connected components

std::vector<std::uint32_t> SpanSet::componentLabels(Connectivity connectivity, std::size_t* nComponents) const {
    std::vector<std::uint32_t> label(spans_.size());
    const int slack = connectivity == Connectivity::EIGHT ? 1 : 0;
    const std::vector<Row> rows = rowsOf(spans_);
    RunUnionFind uf(spans_.size());
    for (std::size_t r = 1; r < rows.size(); ++r) {
        if (rows[r].y != rows[r - 1].y + 1) continue;
        std::uint32_t i = rows[r - 1].begin, j = rows[r].begin;
        while (i < rows[r - 1].end && j < rows[r].end) {
            const Span& p = spans_[i];
            const Span& q = spans_[j];
            if (p.x0 <= q.x1 + slack && q.x0 <= p.x1 + slack) uf.unite(i, j);
            (p.x1 < q.x1) ? ++i : ++j;
        }
    }
    // Roots are the smallest span index of each component, so numbering roots in span order orders
    // the components by their first pixel in raster order. A root precedes its members, so its label
    // is known when a member is reached.
    std::uint32_t n = 0;
    for (std::uint32_t i = 0; i < spans_.size(); ++i) {
        const std::uint32_t root = uf.find(i);
        label[i] = root == i ? n++ : label[root];
    }
    if (nComponents) *nComponents = n;
    return label;
}

std::vector<SpanSet> SpanSet::split(Connectivity connectivity) const {
    std::size_t n = 0;
    const std::vector<std::uint32_t> label = componentLabels(connectivity, &n);
    std::vector<std::vector<Span>> parts(n);
    for (std::size_t i = 0; i < spans_.size(); ++i) parts[label[i]].push_back(spans_[i]);
    std::vector<SpanSet> result;
    result.reserve(n);
    for (auto& p : parts) result.push_back(fromNormalizedSpans(std::move(p)));
    return result;
}

std::int64_t SpanSet::findSpan(Point2I p) const {
    if (!bbox_.contains(p)) return -1;
    auto it = std::upper_bound(spans_.begin(), spans_.end(), Span{p.y, p.x, INT_MAX});
    if (it == spans_.begin()) return -1;
    --it;
    if (it->y == p.y && it->x0 <= p.x && p.x <= it->x1) return it - spans_.begin();
    return -1;
}

bool SpanSet::contains(Point2I p) const { return findSpan(p) >= 0; }

// ---------------------------------------------------------------------------------------------
// Pixel access

void SpanSet::setMask(const Image<std::int32_t>& mask, std::int32_t bits) const {
    const Box2I box = mask.bbox();
    for (const Span& s : spans_) {
        if (s.y < box.minY() || s.y > box.maxY()) continue;
        const int x0 = std::max(s.x0, box.minX()), x1 = std::min(s.x1, box.maxX());
        std::int32_t* row = mask.row(s.y - box.minY()) - box.minX();
        for (int x = x0; x <= x1; ++x) row[x] |= bits;
    }
}

void SpanSet::clearMask(const Image<std::int32_t>& mask, std::int32_t bits) const {
    const Box2I box = mask.bbox();
    for (const Span& s : spans_) {
        if (s.y < box.minY() || s.y > box.maxY()) continue;
        const int x0 = std::max(s.x0, box.minX()), x1 = std::min(s.x1, box.maxX());
        std::int32_t* row = mask.row(s.y - box.minY()) - box.minX();
        for (int x = x0; x <= x1; ++x) row[x] &= ~bits;
    }
}

template <typename T>
std::vector<T> SpanSet::flatten(const Image<T>& image) const {
    requireInside(image.bbox(), "SpanSet::flatten");
    std::vector<T> out(static_cast<std::size_t>(area_));
    T* o = out.data();
    for (const Span& s : spans_) {
        const T* row = image.row(s.y - image.xy0().y) + (s.x0 - image.xy0().x);
        o = std::copy(row, row + s.width(), o);
    }
    return out;
}

template <typename T>
void SpanSet::unflatten(const Image<T>& image, const std::vector<T>& values) const {
    requireInside(image.bbox(), "SpanSet::unflatten");
    if (std::int64_t(values.size()) != area_)
        throw LogicError("SpanSet::unflatten: " + std::to_string(values.size()) + " values for " +
                         std::to_string(area_) + " pixels");
    const T* v = values.data();
    for (const Span& s : spans_) {
        T* row = image.row(s.y - image.xy0().y) + (s.x0 - image.xy0().x);
        std::copy(v, v + s.width(), row);
        v += s.width();
    }
}

std::ostream& operator<<(std::ostream& os, const SpanSet& s) {
    os << "SpanSet(" << s.size() << " spans, area " << s.area() << ", " << s.bbox() << ")";
    return os;
}

#define DRP_INSTANTIATE_SPANSET(T)                                                              \
    template SpanSet SpanSet::fromThreshold<T>(const Image<T>&, double, bool);                  \
    template Point2D SpanSet::centroid<T>(const Image<T>&) const;                               \
    template std::vector<T> SpanSet::flatten<T>(const Image<T>&) const;                         \
    template void SpanSet::unflatten<T>(const Image<T>&, const std::vector<T>&) const;

DRP_INSTANTIATE_SPANSET(float)
DRP_INSTANTIATE_SPANSET(double)
DRP_INSTANTIATE_SPANSET(std::int32_t)
DRP_INSTANTIATE_SPANSET(std::uint16_t)

#undef DRP_INSTANTIATE_SPANSET

}  // namespace drp
