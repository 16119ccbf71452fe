// One bounds check for the calibrate stages' config structs, so every validate() reports the same way:
// "<Config>.<field> = <value> is outside [lo, hi]" (or "(lo, hi]" for an open lower bound), as a ConfigError.
#pragma once

#include <sstream>

#include "core/Error.h"

namespace drp::calibrate_detail {

template <typename T>
void checkConfigRange(const char* config, const char* name, T value, T lo, T hi, bool openLow = false) {
    const bool ok = (openLow ? value > lo : value >= lo) && value <= hi;
    if (!ok) {
        std::ostringstream os;
        os << config << "." << name << " = " << value << " is outside " << (openLow ? "(" : "[") << lo << ", " << hi << "]";
        throw ConfigError(os.str());
    }
}

}  // namespace drp::calibrate_detail
