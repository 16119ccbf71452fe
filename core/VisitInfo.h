// VisitInfo: what the telescope did for one exposure (timing, pointing, conditions, identifiers).
// A plain value; unknown numbers are NaN, unknown identifiers are empty optionals / strings.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/PropertyList.h"
#include "sky/Angle.h"
#include "sky/SpherePoint.h"

namespace drp {

struct VisitInfo {
    static constexpr double kUnknown = std::numeric_limits<double>::quiet_NaN();

    double exposureTimeS = kUnknown;      ///< shutter-open time [s]
    double darkTimeS = kUnknown;          ///< time since the detector was last cleared [s]
    double midExposureMjdTai = kUnknown;  ///< mid-exposure time, MJD in the TAI scale [day]
    std::optional<SpherePoint> boresightRaDec;       ///< ICRS pointing of the boresight
    Angle boresightRotAngle = Angle::fromRadians(kUnknown);  ///< sky position angle of the focal plane
    double boresightAirmass = kUnknown;   ///< airmass at the boresight (>= 1)
    std::string band;                     ///< abstract band, e.g. "r"
    std::string physicalFilter;           ///< the filter in the beam, e.g. "r_03"
    std::string instrument;               ///< e.g. "LSSTCam-imSim"
    std::optional<std::int64_t> visit;    ///< visit id
    std::optional<std::int64_t> dayObs;   ///< observing day as YYYYMMDD

    /// FITS-safe header keys (all <= 8 characters except the exact-radian HIERARCH companions):
    /// EXPTIME, DARKTIME, MJD-AVG (+ TIMESYS='TAI', DATE-AVG ISO text, informational), BORE-RA,
    /// BORE-DEC, ROTPA [deg] (+ BORE-RA-RAD, BORE-DEC-RAD, ROTPA-RAD [rad], exact), AIRMASS, BAND,
    /// FILTER, INSTRUME, VISIT, DAYOBS. Unknown values are omitted.
    PropertyList toMetadata() const;
    /// Parse the keys of toMetadata; absent keys stay unknown. The *-RAD keys win over the degree keys
    /// (so a round trip is bit-exact). Throws InvalidInputError for a key of the wrong type.
    static VisitInfo fromMetadata(const PropertyList& md);
    /// Every key toMetadata can write.
    static const std::vector<std::string>& metadataKeys();
    /// MJD -> "YYYY-MM-DDThh:mm:ss.sss" (no time-scale conversion).
    static std::string mjdToIso(double mjd);

    /// Field-by-field equality where NaN equals NaN.
    friend bool operator==(const VisitInfo& a, const VisitInfo& b);
};

}  // namespace drp
