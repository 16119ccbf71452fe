// ReferenceCatalog: the schema of the engine's astrometric/photometric reference catalog, its HTM
// sharding, circle selection, and the space-motion helpers (proper motion, parallax) used to bring
// reference positions to the epoch of an observation.
//
// Columns (referenceCatalogSchema), all 64-bit unless noted:
//   id           int64  unique object id
//   ra, dec      deg    ICRS position at `epoch`
//   raErr        mas    standard error of ra * cos(dec) (an angle on the sky, not a coordinate difference)
//   decErr       mas    standard error of dec
//   epoch        d      epoch of ra/dec, MJD (TAI)
//   pmRa         mas/yr proper motion in ra, multiplied by cos(dec) (so it is an angular rate on the sky)
//   pmDec        mas/yr proper motion in dec
//   pmRaErr, pmDecErr       mas/yr
//   parallax, parallaxErr   mas
//   <b>_flux, <b>_fluxErr   nJy, for each band b given (e.g. "u".."y"); AB: m = 31.4 - 2.5 log10(flux/nJy)
//   isStar       flag   a point source with reliable astrometry (usable for astrometric calibration)
// The driver writes one table per HTM shard (dataset type "refcat", data ID {htm: id}) at the level
// given by kReferenceCatalogHtmLevel unless configured otherwise.
// Years in proper motions are Julian years (365.25 days).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <string>
#include <vector>

#include "core/Schema.h"
#include "core/Table.h"
#include "sky/Angle.h"
#include "sky/HtmPixelization.h"
#include "sky/SpherePoint.h"

namespace drp {

/// Default HTM level of reference-catalog shards (as the LSST pipelines: level 7 trixels are ~0.6 deg across).
inline constexpr int kReferenceCatalogHtmLevel = 7;
/// Days per Julian year.
inline constexpr double kDaysPerJulianYear = 365.25;
/// MJD of J2000.0 (TT; the TAI/TT difference is irrelevant at the accuracy of these helpers).
inline constexpr double kMjdJ2000 = 51544.5;

/// The schema described above, with the flux columns of `bands` in the order given. Throws
/// InvalidInputError for an empty or duplicated band name.
Schema referenceCatalogSchema(const std::vector<std::string>& bands);

/// Typed keys of a reference catalog schema (found by name; NotFoundError if a column is missing).
struct ReferenceCatalogKeys {
    Key<std::int64_t> id;
    Key<double> ra, dec, raErr, decErr, epoch;
    Key<double> pmRa, pmDec, pmRaErr, pmDecErr, parallax, parallaxErr;
    Key<bool> isStar;
    std::vector<std::string> bands;  ///< bands with <b>_flux and <b>_fluxErr columns, in schema order
    std::vector<Key<double>> flux, fluxErr;  ///< parallel to bands

    explicit ReferenceCatalogKeys(const Schema& schema);
};

/// The shard ids (HTM trixels at pixelization.level()) that may hold objects within `radius` of `center`.
std::vector<std::uint64_t> shardsForRegion(const HtmPixelization& pixelization, const SpherePoint& center,
                                           Angle radius);

/// Row indices of `table` (a reference catalog) whose (ra, dec) lie within `radius` of `center` (inclusive).
std::vector<std::size_t> rowsInCircle(const Table& table, const SpherePoint& center, Angle radius);
/// The rows of `table` within `radius` of `center`, in their original order (same schema and metadata).
Table filterToCircle(const Table& table, const SpherePoint& center, Angle radius);
/// The rows of `table` at the given indices, in the given order.
Table selectRows(const Table& table, const std::vector<std::size_t>& rows);

/// Position at `toEpochMjd` of an object at (ra, dec) at `fromEpochMjd` moving with proper motion
/// (pmRa includes cos dec), along the great circle of the initial motion (exact for uniform motion on
/// the sky). Parallax is accepted for a uniform signature but not applied (see parallaxOffset);
/// radial velocity / perspective acceleration are neglected.
SpherePoint propagate(Angle ra, Angle dec, double pmRaMasPerYr, double pmDecMasPerYr, double parallaxMas,
                      double fromEpochMjd, double toEpochMjd);
SpherePoint propagate(const SpherePoint& position, double pmRaMasPerYr, double pmDecMasPerYr, double parallaxMas,
                      double fromEpochMjd, double toEpochMjd);

/// Approximate barycentric position of the Earth in ICRS equatorial Cartesian coordinates (AU), from a
/// low-precision solar ephemeris (the Astronomical Almanac's: solar longitude good to ~0.01 deg,
/// 1950-2050); the Sun-barycentre offset (~0.01 AU) is neglected.
Eigen::Vector3d earthPositionAu(double mjd);
/// Apparent (geocentric) position of a star with `parallaxMas` whose barycentric position is `position`,
/// as seen at `mjd`: the star is displaced toward the anti-Earth direction by parallax * sin(angle).
SpherePoint parallaxOffset(const SpherePoint& position, double parallaxMas, double mjd);

}  // namespace drp
