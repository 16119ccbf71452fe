#include "sky/Angle.h"

namespace drp {

Angle Angle::wrap() const {
    constexpr double twoPi = 2.0 * std::numbers::pi;
    double r = std::fmod(rad_, twoPi);
    if (r < 0.0) r += twoPi;
    if (r >= twoPi) r = 0.0;  // fmod of a tiny negative number can round up to 2 pi
    return fromRadians(r);
}

Angle Angle::wrapCtr() const {
    constexpr double pi = std::numbers::pi;
    double r = wrap().asRadians();
    if (r >= pi) r -= 2.0 * pi;
    return fromRadians(r);
}

Angle Angle::wrapNear(Angle ref) const { return ref + (*this - ref).wrapCtr(); }

std::ostream& operator<<(std::ostream& os, Angle a) { return os << a.asDegrees() << " deg"; }

}  // namespace drp
