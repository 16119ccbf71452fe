#include "stages/calibrate/TangentPlane.h"

#include <cmath>
#include <limits>
#include <numbers>

namespace drp {

namespace {
constexpr double kDegPerRad = 180.0 / std::numbers::pi;
}

TangentPlane::TangentPlane(const SpherePoint& center) : center_(center) {
    const double a = center.ra().asRadians(), d = center.dec().asRadians();
    const double ca = std::cos(a), sa = std::sin(a), cd = std::cos(d), sd = std::sin(d);
    c_ = Eigen::Vector3d(cd * ca, cd * sa, sd);
    east_ = Eigen::Vector3d(-sa, ca, 0.0);
    north_ = Eigen::Vector3d(-sd * ca, -sd * sa, cd);
}

Eigen::Vector2d TangentPlane::projectDegrees(const SpherePoint& p) const {
    const Eigen::Vector3d v = p.vector();
    const double w = v.dot(c_);
    if (!(w > 0.0)) {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        return {nan, nan};
    }
    return Eigen::Vector2d(v.dot(east_) / w, v.dot(north_) / w) * kDegPerRad;
}

SpherePoint TangentPlane::deprojectDegrees(const Eigen::Vector2d& xy) const {
    const Eigen::Vector2d r = xy / kDegPerRad;
    return SpherePoint::fromVector(c_ + r.x() * east_ + r.y() * north_);
}

}  // namespace drp
