#include "core/VisitInfo.h"

#include <cmath>
#include <cstdio>

#include "core/Error.h"

namespace drp {

namespace {

bool sameDouble(double a, double b) { return (std::isnan(a) && std::isnan(b)) || a == b; }

void setIfKnown(PropertyList& md, const std::string& key, double v, const std::string& comment) {
    if (std::isfinite(v)) md.set(key, v, comment);
}

double readDouble(const PropertyList& md, const std::string& key) {
    if (!md.has(key)) return VisitInfo::kUnknown;
    try {
        return md.getDouble(key);
    } catch (const LogicError&) {
        throw InvalidInputError("VisitInfo: header key '" + key + "' is not a number");
    }
}

std::string readString(const PropertyList& md, const std::string& key) {
    if (!md.has(key)) return {};
    try {
        return md.getString(key);
    } catch (const LogicError&) {
        throw InvalidInputError("VisitInfo: header key '" + key + "' is not a string");
    }
}

std::optional<std::int64_t> readInt(const PropertyList& md, const std::string& key) {
    if (!md.has(key)) return std::nullopt;
    try {
        return md.getInt(key);
    } catch (const LogicError&) {
        throw InvalidInputError("VisitInfo: header key '" + key + "' is not an integer");
    }
}

/// Radians from the exact key if present, else degrees from the display key.
double readAngleRad(const PropertyList& md, const std::string& radKey, const std::string& degKey) {
    double r = readDouble(md, radKey);
    if (!std::isnan(r)) return r;
    double d = readDouble(md, degKey);
    return std::isnan(d) ? d : (d * degrees).asRadians();
}

}  // namespace

std::string VisitInfo::mjdToIso(double mjd) {
    if (!std::isfinite(mjd)) return {};
    // Days since 1970-01-01 (MJD 40587), then the civil-from-days algorithm (H. Hinnant).
    double dayFloor = std::floor(mjd);
    long long days = (long long)dayFloor - 40587;
    double msOfDay = std::round((mjd - dayFloor) * 86400000.0);
    if (msOfDay >= 86400000.0) {
        msOfDay -= 86400000.0;
        ++days;
    }
    days += 719468;
    const long long era = (days >= 0 ? days : days - 146096) / 146097;
    const long long doe = days - era * 146097;
    const long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long y = yoe + era * 400;
    const long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const long long mp = (5 * doy + 2) / 153;
    const long long d = doy - (153 * mp + 2) / 5 + 1;
    const long long m = mp < 10 ? mp + 3 : mp - 9;
    if (m <= 2) ++y;
    const long long ms = (long long)msOfDay;
    char buf[160];
    std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%03lld", y, m, d, ms / 3600000,
                  (ms / 60000) % 60, (ms / 1000) % 60, ms % 1000);
    return buf;
}

PropertyList VisitInfo::toMetadata() const {
    PropertyList md;
    setIfKnown(md, "EXPTIME", exposureTimeS, "[s] exposure time");
    setIfKnown(md, "DARKTIME", darkTimeS, "[s] dark time");
    if (std::isfinite(midExposureMjdTai)) {
        md.set("MJD-AVG", midExposureMjdTai, "[d] mid-exposure MJD");
        md.set("TIMESYS", "TAI", "time scale of MJD-AVG and DATE-AVG");
        md.set("DATE-AVG", mjdToIso(midExposureMjdTai), "mid-exposure date (TAI)");
    }
    if (boresightRaDec) {
        md.set("BORE-RA", boresightRaDec->ra().asDegrees(), "[deg] boresight ICRS RA");
        md.set("BORE-DEC", boresightRaDec->dec().asDegrees(), "[deg] boresight ICRS Dec");
        md.set("BORE-RA-RAD", boresightRaDec->ra().asRadians(), "[rad] boresight RA, exact");
        md.set("BORE-DEC-RAD", boresightRaDec->dec().asRadians(), "[rad] boresight Dec, exact");
    }
    if (std::isfinite(boresightRotAngle.asRadians())) {
        md.set("ROTPA", boresightRotAngle.asDegrees(), "[deg] boresight rotation angle (sky)");
        md.set("ROTPA-RAD", boresightRotAngle.asRadians(), "[rad] boresight rotation angle, exact");
    }
    setIfKnown(md, "AIRMASS", boresightAirmass, "boresight airmass");
    if (!band.empty()) md.set("BAND", band, "band");
    if (!physicalFilter.empty()) md.set("FILTER", physicalFilter, "physical filter");
    if (!instrument.empty()) md.set("INSTRUME", instrument, "instrument");
    if (visit) md.set("VISIT", PropertyList::Value(*visit), "visit id");
    if (dayObs) md.set("DAYOBS", PropertyList::Value(*dayObs), "observing day YYYYMMDD");
    return md;
}

VisitInfo VisitInfo::fromMetadata(const PropertyList& md) {
    VisitInfo v;
    v.exposureTimeS = readDouble(md, "EXPTIME");
    v.darkTimeS = readDouble(md, "DARKTIME");
    v.midExposureMjdTai = readDouble(md, "MJD-AVG");
    const double ra = readAngleRad(md, "BORE-RA-RAD", "BORE-RA");
    const double dec = readAngleRad(md, "BORE-DEC-RAD", "BORE-DEC");
    if (std::isfinite(ra) && std::isfinite(dec)) {
        try {
            v.boresightRaDec = SpherePoint(Angle::fromRadians(ra), Angle::fromRadians(dec));
        } catch (const Error& e) {
            throw InvalidInputError("VisitInfo: bad boresight: " + e.message());
        }
    }
    v.boresightRotAngle = Angle::fromRadians(readAngleRad(md, "ROTPA-RAD", "ROTPA"));
    v.boresightAirmass = readDouble(md, "AIRMASS");
    v.band = readString(md, "BAND");
    v.physicalFilter = readString(md, "FILTER");
    v.instrument = readString(md, "INSTRUME");
    v.visit = readInt(md, "VISIT");
    v.dayObs = readInt(md, "DAYOBS");
    return v;
}

const std::vector<std::string>& VisitInfo::metadataKeys() {
    static const std::vector<std::string> keys = {
        "EXPTIME", "DARKTIME", "MJD-AVG", "TIMESYS", "DATE-AVG", "BORE-RA", "BORE-DEC", "BORE-RA-RAD",
        "BORE-DEC-RAD", "ROTPA", "ROTPA-RAD", "AIRMASS", "BAND", "FILTER", "INSTRUME", "VISIT", "DAYOBS"};
    return keys;
}

bool operator==(const VisitInfo& a, const VisitInfo& b) {
    return sameDouble(a.exposureTimeS, b.exposureTimeS) && sameDouble(a.darkTimeS, b.darkTimeS) &&
           sameDouble(a.midExposureMjdTai, b.midExposureMjdTai) && a.boresightRaDec == b.boresightRaDec &&
           sameDouble(a.boresightRotAngle.asRadians(), b.boresightRotAngle.asRadians()) &&
           sameDouble(a.boresightAirmass, b.boresightAirmass) && a.band == b.band &&
           a.physicalFilter == b.physicalFilter && a.instrument == b.instrument && a.visit == b.visit &&
           a.dayObs == b.dayObs;
}

}  // namespace drp
