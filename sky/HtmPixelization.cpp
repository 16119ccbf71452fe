#include "sky/HtmPixelization.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <numbers>

#include "core/Error.h"

namespace drp {

namespace {

using Vec = Eigen::Vector3d;
using Tri = std::array<Vec, 3>;

const std::array<Vec, 6>& rootVertices() {
    static const std::array<Vec, 6> v = {Vec(0, 0, 1), Vec(1, 0, 0), Vec(0, 1, 0),
                                         Vec(-1, 0, 0), Vec(0, -1, 0), Vec(0, 0, -1)};
    return v;
}

/// Vertex indices of the roots S0..S3, N0..N3 (ids 8..15).
constexpr int kRootTriangles[8][3] = {{1, 5, 2}, {2, 5, 3}, {3, 5, 4}, {4, 5, 1},
                                      {1, 0, 4}, {4, 0, 3}, {3, 0, 2}, {2, 0, 1}};

Tri rootTriangle(int r) {
    const auto& v = rootVertices();
    return {v[kRootTriangles[r][0]], v[kRootTriangles[r][1]], v[kRootTriangles[r][2]]};
}

Vec midpoint(const Vec& a, const Vec& b) { return (a + b).normalized(); }

Tri child(const Tri& t, int k) {
    const Vec w0 = midpoint(t[1], t[2]), w1 = midpoint(t[0], t[2]), w2 = midpoint(t[0], t[1]);
    switch (k) {
        case 0: return {t[0], w2, w1};
        case 1: return {t[1], w0, w2};
        case 2: return {t[2], w1, w0};
        default: return {w0, w1, w2};
    }
}

double angleBetween(const Vec& a, const Vec& b) { return std::atan2(a.cross(b).norm(), a.dot(b)); }

bool insideTriangle(const Tri& t, const Vec& p, double tol) {
    for (int i = 0; i < 3; ++i) {
        const Vec n = t[i].cross(t[(i + 1) % 3]);
        if (p.dot(n) < -tol * n.norm()) return false;
    }
    return true;
}

/// Spherical distance from p to the great-circle arc a -> b (shorter than pi).
double distanceToArc(const Vec& p, const Vec& a, const Vec& b) {
    const Vec n = a.cross(b);
    const double nNorm = n.norm();
    if (nNorm > 0) {
        const Vec nn = n / nNorm;
        const double h = p.dot(nn);
        const Vec proj = p - h * nn;
        const double projNorm = proj.norm();
        if (projNorm == 0.0) return std::numbers::pi / 2;
        if (a.cross(proj).dot(n) >= 0 && proj.cross(b).dot(n) >= 0) return std::atan2(std::fabs(h), projNorm);
    }
    return std::min(angleBetween(p, a), angleBetween(p, b));
}

/// Distance from p to the (closed) spherical triangle: 0 inside.
double distanceToTriangle(const Tri& t, const Vec& p) {
    if (insideTriangle(t, p, 0.0)) return 0.0;
    double d = distanceToArc(p, t[0], t[1]);
    d = std::min(d, distanceToArc(p, t[1], t[2]));
    return std::min(d, distanceToArc(p, t[2], t[0]));
}

void requireValid(std::uint64_t id, const char* what) {
    if (HtmPixelization::levelOf(id) < 0)
        throw InvalidInputError(std::string("HtmPixelization::") + what + ": " + std::to_string(id) +
                                " is not a valid HTM id");
}

}  // namespace

HtmPixelization::HtmPixelization(int level) : level_(level) {
    if (level < 0 || level > maxLevel)
        throw InvalidInputError("HtmPixelization: level " + std::to_string(level) + " is outside [0, " +
                                std::to_string(maxLevel) + "]");
}

int HtmPixelization::levelOf(std::uint64_t id) {
    if (id == 0) return -1;
    const int bits = 64 - std::countl_zero(id);
    if (bits < 4 || bits % 2 != 0) return -1;
    const int level = (bits - 4) / 2;
    return level <= maxLevel ? level : -1;
}

std::uint64_t HtmPixelization::index(const SpherePoint& point) const { return index(point.vector()); }

std::uint64_t HtmPixelization::index(const Eigen::Vector3d& v) const {
    int root = -1;
    for (int r = 0; r < 8 && root < 0; ++r)
        if (insideTriangle(rootTriangle(r), v, 0.0)) root = r;
    if (root < 0) {  // only possible for a non-finite vector
        if (!v.allFinite() || v.norm() == 0)
            throw InvalidInputError("HtmPixelization::index: not a finite non-zero vector");
        root = 0;
    }
    std::uint64_t id = 8 + static_cast<std::uint64_t>(root);
    Tri t = rootTriangle(root);
    for (int l = 0; l < level_; ++l) {
        const Vec w0 = midpoint(t[1], t[2]), w1 = midpoint(t[0], t[2]), w2 = midpoint(t[0], t[1]);
        int k;
        if (v.dot(w2.cross(w1)) >= 0) {
            k = 0;
            t = {t[0], w2, w1};
        } else if (v.dot(w0.cross(w2)) >= 0) {
            k = 1;
            t = {t[1], w0, w2};
        } else if (v.dot(w1.cross(w0)) >= 0) {
            k = 2;
            t = {t[2], w1, w0};
        } else {
            k = 3;
            t = {w0, w1, w2};
        }
        id = 4 * id + static_cast<std::uint64_t>(k);
    }
    return id;
}

std::array<Eigen::Vector3d, 3> HtmPixelization::triangle(std::uint64_t id) {
    requireValid(id, "triangle");
    const int level = levelOf(id);
    Tri t = rootTriangle(static_cast<int>((id >> (2 * level)) - 8));
    for (int l = level - 1; l >= 0; --l) t = child(t, static_cast<int>((id >> (2 * l)) & 3));
    return t;
}

std::array<SpherePoint, 3> HtmPixelization::vertices(std::uint64_t id) {
    const Tri t = triangle(id);
    return {SpherePoint::fromVector(t[0]), SpherePoint::fromVector(t[1]), SpherePoint::fromVector(t[2])};
}

bool HtmPixelization::contains(std::uint64_t id, const Eigen::Vector3d& unitVector, double tolerance) {
    return insideTriangle(triangle(id), unitVector, tolerance);
}

std::string HtmPixelization::asString(std::uint64_t id) {
    requireValid(id, "asString");
    const int level = levelOf(id);
    const std::uint64_t root = (id >> (2 * level)) - 8;
    std::string s(1, root < 4 ? 'S' : 'N');
    s += static_cast<char>('0' + root % 4);
    for (int l = level - 1; l >= 0; --l) s += static_cast<char>('0' + ((id >> (2 * l)) & 3));
    return s;
}

std::array<std::uint64_t, 4> HtmPixelization::children(std::uint64_t id) {
    requireValid(id, "children");
    if (levelOf(id) >= maxLevel) throw InvalidInputError("HtmPixelization::children: id is at the deepest level");
    return {4 * id, 4 * id + 1, 4 * id + 2, 4 * id + 3};
}

std::uint64_t HtmPixelization::parent(std::uint64_t id) {
    requireValid(id, "parent");
    if (levelOf(id) == 0) throw InvalidInputError("HtmPixelization::parent: a root trixel has no parent");
    return id / 4;
}

std::vector<std::uint64_t> HtmPixelization::envelope(const SpherePoint& center, Angle radius) const {
    const double r = radius.asRadians();
    std::vector<std::uint64_t> out;
    if (!(r > 0)) {
        out.push_back(index(center));
        return out;
    }
    if (r >= std::numbers::pi) {
        for (std::uint64_t id = beginId(); id < endId(); ++id) out.push_back(id);
        return out;
    }
    constexpr double eps = 1e-12;
    const Vec c = center.vector();
    // Depth-first descent; a trixel wholly inside the circle contributes its whole id range at once.
    struct Item {
        std::uint64_t id;
        int level;
        Tri t;
    };
    std::vector<Item> stack;
    for (int k = 7; k >= 0; --k) stack.push_back({8 + static_cast<std::uint64_t>(k), 0, rootTriangle(k)});
    while (!stack.empty()) {
        Item it = std::move(stack.back());
        stack.pop_back();
        const Vec m = (it.t[0] + it.t[1] + it.t[2]).normalized();
        double boundR = 0;
        for (const Vec& v : it.t) boundR = std::max(boundR, angleBetween(m, v));
        const double dc = angleBetween(c, m);
        if (dc > r + boundR + eps) continue;  // the bounding cap misses the circle
        const int shift = 2 * (level_ - it.level);
        if (dc + boundR <= r) {  // wholly inside
            const std::uint64_t first = it.id << shift, last = (it.id + 1) << shift;
            for (std::uint64_t id = first; id < last; ++id) out.push_back(id);
            continue;
        }
        if (distanceToTriangle(it.t, c) > r + eps) continue;
        if (it.level == level_) {
            out.push_back(it.id);
            continue;
        }
        for (int k = 3; k >= 0; --k) stack.push_back({4 * it.id + static_cast<std::uint64_t>(k), it.level + 1,
                                                      child(it.t, k)});
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

}  // namespace drp
