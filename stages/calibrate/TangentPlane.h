// TangentPlane: the gnomonic (TAN) projection about a tangent point, in the convention of core/Wcs
// (intermediate world coordinates with LONPOLE = 180 deg: x toward increasing RA (east), y toward north).
// The calibration stage matches and fits in this plane; a Wcs with CRVAL at the tangent point and CD = 1
// deg/pixel maps pixel (x, y) to exactly the sky point deproject({x, y}) (checked in the tests).
#pragma once

#include <Eigen/Core>

#include "sky/SpherePoint.h"

namespace drp {

class TangentPlane {
public:
    explicit TangentPlane(const SpherePoint& center);

    const SpherePoint& center() const { return center_; }
    /// (east, north) tangent-plane coordinates in degrees; (NaN, NaN) for a point 90 deg or more away.
    Eigen::Vector2d projectDegrees(const SpherePoint& p) const;
    /// The same in arcseconds.
    Eigen::Vector2d projectArcsec(const SpherePoint& p) const { return projectDegrees(p) * 3600.0; }
    /// Inverse of projectDegrees.
    SpherePoint deprojectDegrees(const Eigen::Vector2d& xy) const;
    SpherePoint deprojectArcsec(const Eigen::Vector2d& xy) const { return deprojectDegrees(xy / 3600.0); }

private:
    SpherePoint center_;
    Eigen::Vector3d c_, east_, north_;
};

}  // namespace drp
