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

Angle SpherePoint::bearingTo(const SpherePoint& other) const {
    double dLon = (other.lon_ - lon_).asRadians();
    double lat1 = lat_.asRadians(), lat2 = other.lat_.asRadians();
    double y = std::sin(dLon) * std::cos(lat2);
    double x = std::cos(lat1) * std::sin(lat2) - std::sin(lat1) * std::cos(lat2) * std::cos(dLon);
    return Angle::fromRadians(std::atan2(y, x)).wrap();
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
