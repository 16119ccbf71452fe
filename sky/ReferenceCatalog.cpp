#include "sky/ReferenceCatalog.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <set>
#include <type_traits>
#include <variant>

#include "core/Error.h"

namespace drp {

Schema referenceCatalogSchema(const std::vector<std::string>& bands) {
    Schema s;
    s.addField<std::int64_t>("id", "unique object id");
    s.addField<double>("ra", "ICRS right ascension at epoch", "deg");
    s.addField<double>("dec", "ICRS declination at epoch", "deg");
    s.addField<double>("raErr", "standard error of ra * cos(dec)", "mas");
    s.addField<double>("decErr", "standard error of dec", "mas");
    s.addField<double>("epoch", "epoch of ra, dec (MJD, TAI)", "d");
    s.addField<double>("pmRa", "proper motion in ra, times cos(dec)", "mas/yr");
    s.addField<double>("pmDec", "proper motion in dec", "mas/yr");
    s.addField<double>("pmRaErr", "standard error of pmRa", "mas/yr");
    s.addField<double>("pmDecErr", "standard error of pmDec", "mas/yr");
    s.addField<double>("parallax", "parallax", "mas");
    s.addField<double>("parallaxErr", "standard error of parallax", "mas");
    std::set<std::string> seen;
    for (const std::string& b : bands) {
        if (b.empty()) throw InvalidInputError("referenceCatalogSchema: empty band name");
        if (!seen.insert(b).second) throw InvalidInputError("referenceCatalogSchema: band '" + b + "' given twice");
        std::string flux = b;
        flux += "_flux";
        std::string fluxErr = flux;
        fluxErr += "Err";
        std::string doc = "mean flux in band ";
        doc += b;
        s.addField<double>(flux, doc, "nJy");
        std::string docErr = "standard error of ";
        docErr += flux;
        s.addField<double>(fluxErr, docErr, "nJy");
    }
    s.addField<bool>("isStar", "point source usable as an astrometric reference");
    return s;
}

ReferenceCatalogKeys::ReferenceCatalogKeys(const Schema& schema)
    : id(schema.find<std::int64_t>("id")),
      ra(schema.find<double>("ra")),
      dec(schema.find<double>("dec")),
      raErr(schema.find<double>("raErr")),
      decErr(schema.find<double>("decErr")),
      epoch(schema.find<double>("epoch")),
      pmRa(schema.find<double>("pmRa")),
      pmDec(schema.find<double>("pmDec")),
      pmRaErr(schema.find<double>("pmRaErr")),
      pmDecErr(schema.find<double>("pmDecErr")),
      parallax(schema.find<double>("parallax")),
      parallaxErr(schema.find<double>("parallaxErr")),
      isStar(schema.find<bool>("isStar")) {
    const std::string suffix = "_flux";
    for (const FieldInfo& f : schema.fields()) {
        if (f.name.size() <= suffix.size() || f.name.compare(f.name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string band = f.name.substr(0, f.name.size() - suffix.size());
        std::string errName = f.name;
        errName += "Err";
        if (!schema.contains(errName)) continue;
        bands.push_back(band);
        flux.push_back(schema.find<double>(f.name));
        fluxErr.push_back(schema.find<double>(errName));
    }
}

std::vector<std::uint64_t> shardsForRegion(const HtmPixelization& pixelization, const SpherePoint& center,
                                           Angle radius) {
    return pixelization.envelope(center, radius);
}

std::vector<std::size_t> rowsInCircle(const Table& table, const SpherePoint& center, Angle radius) {
    const auto ra = table.column<double>("ra");
    const auto dec = table.column<double>("dec");
    const Eigen::Vector3d c = center.vector();
    // Compare chord lengths (monotonic in angle up to pi) with a final exact check near the edge.
    const double r = std::min(radius.asRadians(), std::numbers::pi);
    std::vector<std::size_t> out;
    if (r < 0) return out;
    const double d2r = std::numbers::pi / 180;
    for (std::size_t i = 0; i < table.size(); ++i) {
        const double cd = std::cos(dec[i] * d2r);
        const Eigen::Vector3d v(cd * std::cos(ra[i] * d2r), cd * std::sin(ra[i] * d2r), std::sin(dec[i] * d2r));
        const double sep = std::atan2(c.cross(v).norm(), c.dot(v));
        if (sep <= r) out.push_back(i);
    }
    return out;
}

Table selectRows(const Table& table, const std::vector<std::size_t>& rows) {
    Table out(table.schemaPtr(), rows.size());
    for (std::size_t f = 0; f < table.schema().size(); ++f) {
        std::visit(
            [&](const auto& src) {
                auto& dst = std::get<std::decay_t<decltype(src)>>(out.columnData(f));
                for (std::size_t k = 0; k < rows.size(); ++k) {
                    if (rows[k] >= src.size()) throw LogicError("selectRows: row index out of range");
                    dst[k] = src[rows[k]];
                }
            },
            table.columnData(f));
    }
    out.metadata() = table.metadata();
    return out;
}

Table filterToCircle(const Table& table, const SpherePoint& center, Angle radius) {
    return selectRows(table, rowsInCircle(table, center, radius));
}

SpherePoint propagate(const SpherePoint& position, double pmRaMasPerYr, double pmDecMasPerYr, double /*parallaxMas*/,
                      double fromEpochMjd, double toEpochMjd) {
    const double years = (toEpochMjd - fromEpochMjd) / kDaysPerJulianYear;
    const double mu = std::hypot(pmRaMasPerYr, pmDecMasPerYr);
    if (mu == 0.0 || years == 0.0) return position;
    const Angle bearing = Angle::fromRadians(std::atan2(pmRaMasPerYr, pmDecMasPerYr));
    return position.offset(bearing, (mu * years) * milliarcseconds);
}

SpherePoint propagate(Angle ra, Angle dec, double pmRaMasPerYr, double pmDecMasPerYr, double parallaxMas,
                      double fromEpochMjd, double toEpochMjd) {
    return propagate(SpherePoint(ra, dec), pmRaMasPerYr, pmDecMasPerYr, parallaxMas, fromEpochMjd, toEpochMjd);
}

Eigen::Vector3d earthPositionAu(double mjd) {
    const double d2r = std::numbers::pi / 180;
    const double n = mjd - kMjdJ2000;                          // days from J2000.0
    const double meanLon = 280.460 + 0.9856474 * n;            // deg
    const double g = (357.528 + 0.9856003 * n) * d2r;          // mean anomaly
    const double lambda = (meanLon + 1.915 * std::sin(g) + 0.020 * std::sin(2 * g)) * d2r;  // ecliptic longitude
    const double r = 1.00014 - 0.01671 * std::cos(g) - 0.00014 * std::cos(2 * g);          // AU
    const double eps = (23.439 - 0.0000004 * n) * d2r;                                       // obliquity
    const Eigen::Vector3d sun(r * std::cos(lambda), r * std::cos(eps) * std::sin(lambda),
                              r * std::sin(eps) * std::sin(lambda));
    return -sun;  // the Earth as seen from the Sun
}

SpherePoint parallaxOffset(const SpherePoint& position, double parallaxMas, double mjd) {
    if (parallaxMas == 0.0) return position;
    const double p = (parallaxMas * milliarcseconds).asRadians();  // 1 AU / distance
    const Eigen::Vector3d u = position.vector();
    return SpherePoint::fromVector(u - p * earthPositionAu(mjd));
}

}  // namespace drp
