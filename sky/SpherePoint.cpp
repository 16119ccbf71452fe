#include "sky/SpherePoint.h"

#include <Eigen/Geometry>
#include <cmath>
#include <sstream>

#include "core/Error.h"

namespace drp {

SpherePoint::SpherePoint(Angle longitude, Angle latitude) {
    double lat = latitude.asRadians();
    if (!(std::fabs(lat) <= std::numbers::pi / 2) || !std::isfinite(longitude.asRadians())) {
        std::ostringstream os;
        os << "invalid sky position: longitude " << longitude.asDegrees() << " deg, latitude "
           << latitude.asDegrees() << " deg";
        throw InvalidInputError(os.str());
    }
    lon_ = longitude.wrap();
    lat_ = latitude;
}

SpherePoint SpherePoint::fromVector(const Eigen::Vector3d& v) {
    double rho2 = v.x() * v.x() + v.y() * v.y();
    if (rho2 == 0.0 && v.z() == 0.0) throw InvalidInputError("cannot make a sky position from the zero vector");
    double lon = rho2 == 0.0 ? 0.0 : std::atan2(v.y(), v.x());
    double lat = std::atan2(v.z(), std::sqrt(rho2));
    return {Angle::fromRadians(lon), Angle::fromRadians(lat)};
}

Eigen::Vector3d SpherePoint::vector() const {
    double cl = std::cos(lat_.asRadians());
    return {cl * std::cos(lon_.asRadians()), cl * std::sin(lon_.asRadians()), std::sin(lat_.asRadians())};
}

Angle SpherePoint::separation(const SpherePoint& other) const {
    // atan2(|a x b|, a . b) is accurate at every separation, tiny and near-antipodal alike.
    Eigen::Vector3d a = vector(), b = other.vector();
    return Angle::fromRadians(std::atan2(a.cross(b).norm(), a.dot(b)));
}

namespace {
/// lon2 - lon1 in (-pi, pi], accurate to rounding of the result even across the wrap at 0 / 2 pi
/// (2 pi is subtracted in two parts so that its rounding error does not swamp a tiny difference).
double longitudeDifference(double lon2, double lon1) {
    constexpr double twoPiHi = 2.0 * std::numbers::pi;
    constexpr double twoPiLo = 2.4492935982947064e-16;  // 2 pi - twoPiHi
    double d = lon2 - lon1;
    if (d > std::numbers::pi) return ((lon2 - twoPiHi) - lon1) - twoPiLo;
    if (d <= -std::numbers::pi) return (lon2 - (lon1 - twoPiHi)) + twoPiLo;
    return d;
}
}  // namespace

Angle SpherePoint::bearingTo(const SpherePoint& other) const {
    constexpr double piHi = std::numbers::pi, piLo = 1.2246467991473532e-16;  // pi = piHi + piLo
    double dLon = longitudeDifference(other.lon_.asRadians(), lon_.asRadians());
    double lat1 = lat_.asRadians(), lat2 = other.lat_.asRadians();
    // Beyond 90 deg, aim at the antipode of `other` (which is near) and turn round: the bearing to a nearly
    // antipodal point is then as accurate as the bearing to a nearby one.
    const bool far = std::sin(lat1) * std::sin(lat2) + std::cos(lat1) * std::cos(lat2) * std::cos(dLon) < 0.0;
    if (far) {
        // lon2 - lon1 -/+ pi, grouped so that the subtractions are exact when the result is small.
        double lon1 = lon_.asRadians(), lon2 = other.lon_.asRadians();
        dLon = lon2 >= lon1 ? ((lon2 - piHi) - lon1) - piLo : (lon2 - (lon1 - piHi)) + piLo;
        lat2 = -lat2;
    }
    double y = std::sin(dLon) * std::cos(lat2);
    // cos1 sin2 - sin1 cos2 cos(dLon), rewritten without cancellation for nearby points.
    double h = std::sin(0.5 * dLon);
    double x = std::sin(lat2 - lat1) + 2.0 * std::sin(lat1) * std::cos(lat2) * h * h;
    double bearing = std::atan2(y, x);
    if (far) bearing += piHi;
    return Angle::fromRadians(bearing).wrap();
}

SpherePoint SpherePoint::offset(Angle bearing, Angle distance) const {
    // Move along the great circle: p' = p cos d + t sin d, with t the unit tangent at p toward `bearing`.
    Eigen::Vector3d p = vector();
    double lon = lon_.asRadians(), lat = lat_.asRadians();
    Eigen::Vector3d north(-std::sin(lat) * std::cos(lon), -std::sin(lat) * std::sin(lon), std::cos(lat));
    Eigen::Vector3d east(-std::sin(lon), std::cos(lon), 0.0);
    if (std::fabs(lat) == std::numbers::pi / 2) {  // at a pole "north" is ill-defined: use the meridian of lon
        north = Eigen::Vector3d(-std::copysign(1.0, lat) * std::cos(lon), -std::copysign(1.0, lat) * std::sin(lon), 0.0);
    }
    Eigen::Vector3d t = north * cos(bearing) + east * sin(bearing);
    return fromVector(p * cos(distance) + t * sin(distance));
}

std::ostream& operator<<(std::ostream& os, const SpherePoint& p) {
    return os << "(" << p.longitude().asDegrees() << ", " << p.latitude().asDegrees() << ") deg";
}

}  // namespace drp
