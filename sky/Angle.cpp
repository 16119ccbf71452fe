#include "sky/Angle.h"

namespace drp {

namespace {
constexpr double kPi = std::numbers::pi;
constexpr double kTwoPi = 2.0 * std::numbers::pi;
}  // namespace

Angle Angle::wrap() const {
    double r = std::fmod(rad_, kTwoPi);  // exact; in (-2 pi, 2 pi)
    if (r < 0.0) r += kTwoPi;
    if (r >= kTwoPi) r = 0.0;  // a tiny negative number plus 2 pi can round up to 2 pi
    return fromRadians(r);
}

Angle Angle::wrapCtr() const {
    // An angle already in range is returned unchanged (going through [0, 2 pi) would round tiny negatives).
    double r = rad_;
    if (r >= -kPi && r < kPi) return *this;
    r = std::fmod(r, kTwoPi);  // exact; in (-2 pi, 2 pi)
    if (r < -kPi) {
        r += kTwoPi;
        if (r >= kPi) r = -kPi;  // rounded up to pi
    } else if (r >= kPi) {
        r -= kTwoPi;
        if (r < -kPi) r = -kPi;
    }
    return fromRadians(r);
}

Angle Angle::wrapNear(Angle ref) const {
    double r = ref.rad_ + (*this - ref).wrapCtr().rad_;
    // Rounding in the sum can land just outside [ref - pi, ref + pi).
    if (r >= ref.rad_ + kPi) r -= kTwoPi;
    if (r < ref.rad_ - kPi) r += kTwoPi;
    return fromRadians(r);
}

std::ostream& operator<<(std::ostream& os, Angle a) { return os << a.asDegrees() << " deg"; }

}  // namespace drp
