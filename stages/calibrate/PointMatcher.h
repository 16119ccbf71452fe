// PointMatcher: one-to-one nearest-neighbour matching of two planar point lists within a radius, with a
// uniform-grid index over the second list. Used by the pattern matcher (verification) and by the
// astrometric fit (re-matching after each solution).
#pragma once

#include <Eigen/Core>
#include <cstddef>
#include <vector>

namespace drp {

/// A pair (index into the first list, index into the second list) and its distance.
struct PointPair {
    std::size_t a = 0;
    std::size_t b = 0;
    double distance = 0.0;
};

/// A read-only grid index over points (non-finite points are ignored). Keeps a reference: the points must
/// outlive the grid.
class PointGrid {
public:
    /// @param maxRadius the largest search radius that will be asked for (> 0; sets the cell size)
    PointGrid(const std::vector<Eigen::Vector2d>& points, double maxRadius);
    /// Index of the nearest point within `radius` (<= maxRadius) of p, or -1; its distance in *distance.
    long nearest(const Eigen::Vector2d& p, double radius, double* distance = nullptr) const;
    std::size_t size() const { return points_.size(); }

private:
    const std::vector<Eigen::Vector2d>& points_;
    double x0_ = 0, y0_ = 0, cell_ = 1;
    long nx_ = 1, ny_ = 1;
    std::vector<std::size_t> start_;  // cell -> first entry in order_ (CSR layout), size nx*ny+1
    std::vector<std::size_t> order_;
};

/// One-to-one matches: each point of `a` takes its nearest point of `b` within radius[i] (or `radius` for all
/// when `radii` is empty); when several claim the same point of b the closest keeps it. Sorted by a.
std::vector<PointPair> matchNearest(const std::vector<Eigen::Vector2d>& a, const std::vector<Eigen::Vector2d>& b,
                                    double radius, const std::vector<double>& radii = {});
std::vector<PointPair> matchNearest(const std::vector<Eigen::Vector2d>& a, const PointGrid& bGrid, double radius,
                                    const std::vector<double>& radii = {});

/// An affine map y = linear * x + shift.
struct AffineTransform2 {
    Eigen::Matrix2d linear = Eigen::Matrix2d::Identity();
    Eigen::Vector2d shift = Eigen::Vector2d::Zero();
    Eigen::Vector2d operator()(const Eigen::Vector2d& x) const { return linear * x + shift; }
    /// Counter-clockwise rotation (radians) of the closest rotation-plus-scale: atan2(m10 - m01, m00 + m11).
    double rotation() const;
};

/// Unweighted least-squares similarity (rotation + scale + shift) taking x[a] to y[b]; false if fewer than 2 pairs
/// or degenerate.
bool fitSimilarity(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
                   const std::vector<PointPair>& pairs, AffineTransform2& out);
/// Unweighted least-squares affine map taking x[pairs.a] to y[pairs.b]; false if fewer than 3 pairs or the
/// points are degenerate (collinear).
bool fitAffine(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
               const std::vector<PointPair>& pairs, AffineTransform2& out);

}  // namespace drp
