// SpherePoint: a point on the unit sphere as (longitude, latitude), e.g. ICRS (ra, dec).
// Separations and bearings use numerically stable forms (haversine / atan2 of vector products),
// accurate to 1e-10 rad at all separations from 0 to pi.
#pragma once

#include <Eigen/Core>
#include <ostream>

#include "sky/Angle.h"

namespace drp {

class SpherePoint {
public:
    SpherePoint() = default;
    /// Longitude is wrapped into [0, 2 pi); throws InvalidInputError for |latitude| > 90 deg or NaN.
    SpherePoint(Angle longitude, Angle latitude);
    /// From a (not necessarily unit) Cartesian vector; throws InvalidInputError for the zero vector.
    static SpherePoint fromVector(const Eigen::Vector3d& v);
    static SpherePoint fromDegrees(double lonDeg, double latDeg) { return {lonDeg * degrees, latDeg * degrees}; }

    Angle longitude() const { return lon_; }
    Angle latitude() const { return lat_; }
    Angle ra() const { return lon_; }
    Angle dec() const { return lat_; }
    /// The unit vector (x toward lon=0,lat=0; z toward the north pole).
    Eigen::Vector3d vector() const;

    /// Great-circle distance.
    Angle separation(const SpherePoint& other) const;
    /// Position angle of `other` as seen from this point: from north through east, in [0, 2 pi).
    Angle bearingTo(const SpherePoint& other) const;
    /// The point reached by travelling `distance` along the great circle that leaves this point
    /// at position angle `bearing` (north through east).
    SpherePoint offset(Angle bearing, Angle distance) const;

    friend bool operator==(const SpherePoint& a, const SpherePoint& b) {
        return a.lon_ == b.lon_ && a.lat_ == b.lat_;
    }

private:
    Angle lon_;
    Angle lat_;
};

std::ostream& operator<<(std::ostream& os, const SpherePoint& p);

}  // namespace drp
