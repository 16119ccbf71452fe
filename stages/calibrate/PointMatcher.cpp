#include "stages/calibrate/PointMatcher.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"

namespace drp {

PointGrid::PointGrid(const std::vector<Eigen::Vector2d>& points, double maxRadius) : points_(points) {
    if (!(maxRadius > 0.0) || !std::isfinite(maxRadius)) throw LogicError("PointGrid: maxRadius must be > 0 and finite");
    double x1 = -std::numeric_limits<double>::infinity(), y1 = x1;
    x0_ = y0_ = std::numeric_limits<double>::infinity();
    std::size_t nFinite = 0;
    for (const auto& p : points_) {
        if (!p.allFinite()) continue;
        ++nFinite;
        x0_ = std::min(x0_, p.x());
        y0_ = std::min(y0_, p.y());
        x1 = std::max(x1, p.x());
        y1 = std::max(y1, p.y());
    }
    if (nFinite == 0) {
        x0_ = y0_ = 0.0;
        x1 = y1 = 0.0;
    }
    // Cells no smaller than the radius (so a search visits 3x3 cells) and at most ~512 per axis.
    const double extent = std::max(x1 - x0_, y1 - y0_);
    cell_ = std::max(maxRadius, extent / 512.0);
    nx_ = long((x1 - x0_) / cell_) + 1;
    ny_ = long((y1 - y0_) / cell_) + 1;
    std::vector<std::size_t> cellOf(points_.size(), std::size_t(-1));
    start_.assign(std::size_t(nx_ * ny_) + 1, 0);
    for (std::size_t i = 0; i < points_.size(); ++i) {
        const auto& p = points_[i];
        if (!p.allFinite()) continue;
        const long cx = std::min(nx_ - 1, long((p.x() - x0_) / cell_));
        const long cy = std::min(ny_ - 1, long((p.y() - y0_) / cell_));
        cellOf[i] = std::size_t(cy * nx_ + cx);
        ++start_[cellOf[i] + 1];
    }
    for (std::size_t c = 1; c < start_.size(); ++c) start_[c] += start_[c - 1];
    order_.resize(nFinite);
    std::vector<std::size_t> fill(start_.begin(), start_.end() - 1);
    for (std::size_t i = 0; i < points_.size(); ++i)
        if (cellOf[i] != std::size_t(-1)) order_[fill[cellOf[i]]++] = i;
}

long PointGrid::nearest(const Eigen::Vector2d& p, double radius, double* distance) const {
    if (!p.allFinite() || order_.empty()) return -1;
    const long span = long(std::ceil(radius / cell_));
    const long cx = long(std::floor((p.x() - x0_) / cell_)), cy = long(std::floor((p.y() - y0_) / cell_));
    double best2 = radius * radius;
    long best = -1;
    for (long y = std::max(0L, cy - span); y <= std::min(ny_ - 1, cy + span); ++y) {
        for (long x = std::max(0L, cx - span); x <= std::min(nx_ - 1, cx + span); ++x) {
            const std::size_t c = std::size_t(y * nx_ + x);
            for (std::size_t k = start_[c]; k < start_[c + 1]; ++k) {
                const double d2 = (points_[order_[k]] - p).squaredNorm();
                if (d2 <= best2 && (best < 0 || d2 < best2 || long(order_[k]) < best)) {
                    best2 = d2;
                    best = long(order_[k]);
                }
            }
        }
    }
    if (best >= 0 && distance) *distance = std::sqrt(best2);
    return best;
}

std::vector<PointPair> matchNearest(const std::vector<Eigen::Vector2d>& a, const std::vector<Eigen::Vector2d>& b,
                                    double radius, const std::vector<double>& radii) {
    double maxRadius = radius;
    for (double r : radii) maxRadius = std::max(maxRadius, r);
    PointGrid grid(b, maxRadius > 0 ? maxRadius : 1.0);
    return matchNearest(a, grid, maxRadius, radii);
}

std::vector<PointPair> matchNearest(const std::vector<Eigen::Vector2d>& a, const PointGrid& bGrid, double radius,
                                    const std::vector<double>& radii) {
    if (!radii.empty() && radii.size() != a.size()) throw LogicError("matchNearest: radii and points differ in size");
    std::vector<long> owner(bGrid.size(), -1);
    std::vector<double> ownerDist(bGrid.size(), 0.0);
    for (std::size_t i = 0; i < a.size(); ++i) {
        const double r = radii.empty() ? radius : radii[i];
        if (!(r > 0.0)) continue;
        double d = 0.0;
        const long j = bGrid.nearest(a[i], r, &d);
        if (j < 0) continue;
        if (owner[std::size_t(j)] < 0 || d < ownerDist[std::size_t(j)]) {
            owner[std::size_t(j)] = long(i);
            ownerDist[std::size_t(j)] = d;
        }
    }
    std::vector<PointPair> out;
    for (std::size_t j = 0; j < owner.size(); ++j)
        if (owner[j] >= 0) out.push_back({std::size_t(owner[j]), j, ownerDist[j]});
    std::sort(out.begin(), out.end(), [](const PointPair& p, const PointPair& q) { return p.a < q.a; });
    return out;
}

double AffineTransform2::rotation() const {
    return std::atan2(linear(1, 0) - linear(0, 1), linear(0, 0) + linear(1, 1));
}

namespace {

/// Centroids of the paired points of x and y.
void pairCentroids(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
                   const std::vector<PointPair>& pairs, Eigen::Vector2d& mx, Eigen::Vector2d& my) {
    mx = Eigen::Vector2d::Zero();
    my = Eigen::Vector2d::Zero();
    for (const auto& p : pairs) {
        mx += x[p.a];
        my += y[p.b];
    }
    mx /= double(pairs.size());
    my /= double(pairs.size());
}

}  // namespace

bool fitSimilarity(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
                   const std::vector<PointPair>& pairs, AffineTransform2& out) {
    if (pairs.size() < 2) return false;
    Eigen::Vector2d mx, my;
    pairCentroids(x, y, pairs, mx, my);
    double sDot = 0.0, sCross = 0.0, sNorm = 0.0;
    for (const auto& p : pairs) {
        const Eigen::Vector2d dx = x[p.a] - mx, dy = y[p.b] - my;
        sDot += dx.dot(dy);
        sCross += dx.x() * dy.y() - dx.y() * dy.x();
        sNorm += dx.squaredNorm();
    }
    if (!(sNorm > 0.0)) return false;
    const double a = sDot / sNorm, b = sCross / sNorm;
    out.linear << a, -b, b, a;
    out.shift = my - out.linear * mx;
    return out.linear.allFinite() && out.shift.allFinite();
}

bool fitAffine(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
               const std::vector<PointPair>& pairs, AffineTransform2& out) {
    if (pairs.size() < 3) return false;
    // Centre both sets for conditioning.
    Eigen::Vector2d mx, my;
    pairCentroids(x, y, pairs, mx, my);
    Eigen::Matrix2d sxx = Eigen::Matrix2d::Zero(), syx = Eigen::Matrix2d::Zero();
    for (const auto& p : pairs) {
        const Eigen::Vector2d dx = x[p.a] - mx, dy = y[p.b] - my;
        sxx += dx * dx.transpose();
        syx += dy * dx.transpose();
    }
    const double det = sxx.determinant();
    if (!(std::fabs(det) > 1e-12 * sxx.squaredNorm()) || !std::isfinite(det)) return false;
    out.linear = syx * sxx.inverse();
    out.shift = my - out.linear * mx;
    return out.linear.allFinite() && out.shift.allFinite();
}

}  // namespace drp
