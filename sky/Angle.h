// Angle: a plane angle stored in radians, with explicit units at every boundary.
//   Angle a = 30.0 * degrees;  a.asArcseconds();
#pragma once

#include <cmath>
#include <numbers>
#include <ostream>

namespace drp {

class Angle;

/// A unit of angle; multiply a number by it to make an Angle.
class AngleUnit {
public:
    constexpr explicit AngleUnit(double radiansPerUnit) : radiansPerUnit_(radiansPerUnit) {}
    constexpr double radiansPerUnit() const { return radiansPerUnit_; }

private:
    double radiansPerUnit_;
};

inline constexpr AngleUnit radians{1.0};
inline constexpr AngleUnit degrees{std::numbers::pi / 180.0};
inline constexpr AngleUnit hours{std::numbers::pi / 12.0};
inline constexpr AngleUnit arcminutes{std::numbers::pi / (180.0 * 60.0)};
inline constexpr AngleUnit arcseconds{std::numbers::pi / (180.0 * 3600.0)};
inline constexpr AngleUnit milliarcseconds{std::numbers::pi / (180.0 * 3600.0 * 1000.0)};

class Angle {
public:
    constexpr Angle() = default;
    constexpr Angle(double value, AngleUnit unit) : rad_(value * unit.radiansPerUnit()) {}
    static constexpr Angle fromRadians(double r) { return Angle(r, radians); }
    static constexpr Angle fromDegrees(double d) { return Angle(d, degrees); }

    constexpr double asRadians() const { return rad_; }
    constexpr double asDegrees() const { return rad_ / degrees.radiansPerUnit(); }
    constexpr double asHours() const { return rad_ / hours.radiansPerUnit(); }
    constexpr double asArcminutes() const { return rad_ / arcminutes.radiansPerUnit(); }
    constexpr double asArcseconds() const { return rad_ / arcseconds.radiansPerUnit(); }
    constexpr double asMilliarcseconds() const { return rad_ / milliarcseconds.radiansPerUnit(); }
    constexpr double as(AngleUnit u) const { return rad_ / u.radiansPerUnit(); }

    /// Wrapped into [0, 2 pi).
    Angle wrap() const;
    /// Wrapped into [-pi, pi).
    Angle wrapCtr() const;
    /// Wrapped into [ref - pi, ref + pi).
    Angle wrapNear(Angle ref) const;

    constexpr Angle operator-() const { return fromRadians(-rad_); }
    constexpr Angle operator+(Angle o) const { return fromRadians(rad_ + o.rad_); }
    constexpr Angle operator-(Angle o) const { return fromRadians(rad_ - o.rad_); }
    constexpr Angle operator*(double s) const { return fromRadians(rad_ * s); }
    constexpr Angle operator/(double s) const { return fromRadians(rad_ / s); }
    constexpr double operator/(Angle o) const { return rad_ / o.rad_; }
    Angle& operator+=(Angle o) { rad_ += o.rad_; return *this; }
    Angle& operator-=(Angle o) { rad_ -= o.rad_; return *this; }
    constexpr auto operator<=>(const Angle&) const = default;

private:
    double rad_ = 0.0;
};

constexpr Angle operator*(double v, AngleUnit u) { return Angle(v, u); }
constexpr Angle operator*(double s, Angle a) { return a * s; }
inline Angle abs(Angle a) { return Angle::fromRadians(std::fabs(a.asRadians())); }
inline double sin(Angle a) { return std::sin(a.asRadians()); }
inline double cos(Angle a) { return std::cos(a.asRadians()); }
inline double tan(Angle a) { return std::tan(a.asRadians()); }
std::ostream& operator<<(std::ostream& os, Angle a);  // prints degrees

}  // namespace drp
