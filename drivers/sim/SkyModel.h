// SkyModel: the simulated sky — stars (optionally real Gaia stars from a FITS file), galaxies (bulge +
// disk, with close blended pairs), variable stars, supernova-like transients in host galaxies and
// trailing asteroids — as a deterministic function of a config and its seed. The catalog is the truth
// that every stage is judged against.
//
// Magnitudes are AB in the bands u, g, r, i, z, y (index 0..5, see kSimBands). A star's colours follow
// a stellar locus parametrised by g - i; galaxies are drawn from red and blue populations.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "sky/SpherePoint.h"

namespace drp {

/// The simulator's bands, in the order of SimObject::mag.
inline constexpr std::array<const char*, 6> kSimBands = {"u", "g", "r", "i", "z", "y"};
/// Index of a band name in kSimBands, or -1.
int simBandIndex(const std::string& band);

enum class ObjectType { Star, Galaxy, VariableStar, Transient, Asteroid };
/// "star", "galaxy", "variable_star", "transient", "asteroid".
const char* objectTypeName(ObjectType type);

/// One simulated object. Fields that do not apply to the type are zero.
struct SimObject {
    std::int64_t id = 0;                ///< unique, > 0
    ObjectType type = ObjectType::Star;
    double raDeg = 0, decDeg = 0;       ///< ICRS position at epochMjd (barycentric for stars)
    double epochMjd = 0;                ///< epoch of raDeg/decDeg (MJD TAI)
    double pmRaMasPerYr = 0;            ///< proper motion in ra, times cos(dec) (stars)
    double pmDecMasPerYr = 0;           ///< proper motion in dec (stars)
    double parallaxMas = 0;             ///< parallax (stars; >= 0)
    std::array<double, 6> mag{};        ///< AB mag in ugrizy: mean (variables), peak (transients), constant otherwise
    // Galaxy shape (also for blended companions). Ellipticity e = (1 - q) / (1 + q) for axis ratio q,
    // (e1, e2) = e (cos 2 theta, sin 2 theta), theta the major-axis position angle east of north.
    double bulgeFraction = 0;           ///< fraction of the flux in the de Vaucouleurs bulge, [0, 1]
    double bulgeHlrArcsec = 0;          ///< bulge half-light radius (semi-major axis), arcsec
    double diskHlrArcsec = 0;           ///< exponential disk half-light radius (semi-major axis), arcsec
    double e1 = 0, e2 = 0;              ///< ellipticity components (both bulge and disk)
    // Variable stars: m(t) = mean + 0.5 * amplitude * bandScale * lightCurve(phase(t)).
    double periodDays = 0;              ///< period, days
    double amplitudeMag = 0;            ///< peak-to-peak amplitude in r, mag
    double phase = 0;                   ///< phase at MJD 0, [0, 1)
    // Transients: flux rises as ((t - t0) / rise)^2 from t0 = peak - rise, declines exponentially after.
    double peakMjd = 0;                 ///< time of peak brightness (MJD)
    double riseDays = 0;                ///< explosion to peak, days
    double declineDays = 0;             ///< e-folding time of the decline in r, days
    std::int64_t hostId = 0;            ///< id of the host galaxy (0: hostless)
    // Asteroids: uniform motion along a great circle from (raDeg, decDeg) at epochMjd.
    double rateRaDegPerDay = 0;         ///< rate in ra, times cos(dec), deg/day
    double rateDecDegPerDay = 0;        ///< rate in dec, deg/day
    bool fromReferenceFile = false;     ///< a real star read from SkyModelConfig::referenceStarsFile
    std::int64_t referenceSourceId = 0; ///< its source_id in that file (0 otherwise)
    std::int64_t blendPartnerId = 0;    ///< for a galaxy placed as a close companion: the galaxy it blends with

    friend bool operator==(const SimObject&, const SimObject&) = default;
};

/// Configuration of makeSkyCatalog. Magnitude limits are in r (AB). Densities are per square degree of sky.
struct SkyModelConfig {
    double centerRaDeg = 55.0;                ///< centre of the simulated region, deg [0, 360)
    double centerDecDeg = -30.0;              ///< deg [-90, 90]
    double radiusDeg = 0.6;                   ///< radius of the simulated circle, deg (0, 10]
    double epochMjd = 57205.875;              ///< epoch of star positions (J2015.5, as Gaia DR2), MJD
    // Stars: dN/dm ∝ 10^(slope m) between the limits.
    double starDensityPerDeg2 = 3000;         ///< stars between starMagBright and starMagFaint, [0, 1e6]
    double starMagBright = 16.0;              ///< bright limit, r mag
    double starMagFaint = 24.5;               ///< faint limit, r mag (> starMagBright)
    double starCountSlope = 0.3;              ///< d log10 N / dm for stars, [0, 1]
    double starTangentialVelocityKms = 40.0;  ///< median tangential velocity of stars (sets proper motions), km/s (> 0)
    double starHighVelocityFraction = 0.1;    ///< fraction of halo-like stars with 5x the velocity, [0, 1]
    double variableFraction = 0.03;           ///< fraction of synthetic stars that are variable, [0, 1]
    double variablePeriodMinDays = 0.2;       ///< shortest period, days (> 0)
    double variablePeriodMaxDays = 20.0;      ///< longest period, days (>= min)
    double variableAmplitudeMinMag = 0.1;     ///< smallest peak-to-peak r amplitude, mag (> 0)
    double variableAmplitudeMaxMag = 1.0;     ///< largest, mag (>= min)
    // Galaxies: dN/dm ∝ 10^(slope m); half-light radius median hlr20 * 10^(hlrSlope (m - 20)), lognormal scatter.
    double galaxyDensityPerDeg2 = 30000;      ///< galaxies between galaxyMagBright and galaxyMagFaint, [0, 1e7]
    double galaxyMagBright = 18.0;            ///< bright limit, r mag
    double galaxyMagFaint = 25.0;             ///< faint limit, r mag (> galaxyMagBright)
    double galaxyCountSlope = 0.4;            ///< d log10 N / dm for galaxies, [0, 1]
    double galaxyHlrAtMag20Arcsec = 1.0;      ///< median half-light radius at r = 20, arcsec (> 0)
    double galaxyHlrSlopeDexPerMag = -0.087;  ///< d log10(hlr) / dm (-0.087: 1.0" at r=20 -> 0.3" at r=26), [-0.5, 0]
    double galaxyHlrScatterDex = 0.15;        ///< lognormal scatter of the radius, dex [0, 1]
    double galaxyEllipticityRms = 0.3;        ///< rms of |e| (truncated at 0.8), [0, 0.6]
    double redFractionBright = 0.4;           ///< fraction of red (bulge-dominated) galaxies at galaxyMagBright, [0, 1]
    double redFractionFaint = 0.1;            ///< at galaxyMagFaint (linear in between), [0, 1]
    double blendFraction = 0.05;              ///< fraction of galaxies given a close companion galaxy, [0, 1]
    double blendSeparationMinArcsec = 1.0;    ///< companion separation range, arcsec (> 0)
    double blendSeparationMaxArcsec = 3.0;    ///< arcsec (>= min)
    // Time-domain objects: transients peak and asteroids cross the field within [timeStartMjd, timeEndMjd].
    double timeStartMjd = 61000.0;            ///< MJD
    double timeEndMjd = 61010.0;              ///< MJD (>= timeStartMjd)
    double transientsPerDeg2 = 10.0;          ///< supernova-like transients (in random host galaxies), [0, 1e5]
    double transientPeakMagBright = 20.0;     ///< brightest peak r mag
    double transientPeakMagFaint = 23.5;      ///< faintest peak r mag (> bright)
    double asteroidsPerDeg2 = 5.0;            ///< asteroids crossing the field at timeStart..timeEnd, [0, 1e5]
    double asteroidRateMinDegPerDay = 0.5;    ///< slowest rate (0.5 deg/day trails 3 px in 30 s at 0.2"/px), (0, 20]
    double asteroidRateMaxDegPerDay = 2.0;    ///< fastest rate, deg/day (>= min)
    double asteroidMagBright = 19.0;          ///< brightest r mag
    double asteroidMagFaint = 22.5;           ///< faintest r mag (> bright)
    // Real stars: a FITS binary table with Gaia columns ra, dec (deg), pmra, pmdec (mas/yr), parallax (mas),
    // phot_g_mean_mag, phot_bp_mean_mag, phot_rp_mean_mag, optional source_id and ref_epoch (Julian year).
    // Where it has stars (HTM trixels holding at least one, at a level chosen so that occupied trixels hold ~10
    // on average) synthetic stars are only added fainter than referenceCompletenessMag; elsewhere as usual.
    std::string referenceStarsFile;           ///< "" for none
    std::vector<std::string> extraReferenceStarsFiles;  ///< more files of the same kind (e.g. neighbouring chunks)
    double referenceCompletenessMag = 20.0;   ///< r mag to which the files are taken as complete
    std::uint64_t seed = 1;                   ///< every random draw derives from it

    /// Throws ConfigError for out-of-bounds or inconsistent values (a missing file is reported by makeSkyCatalog).
    void validate() const;
    friend bool operator==(const SkyModelConfig&, const SkyModelConfig&) = default;
};

/// The simulated catalog: deterministic in the config (seed included), ids unique and increasing in
/// the order stars (reference, then synthetic), galaxies (companions right after their primary),
/// transients, asteroids. Throws ConfigError (validate) and IoError/NotFoundError for an unreadable file.
std::vector<SimObject> makeSkyCatalog(const SkyModelConfig& config);

/// AB magnitude in band `bandIndex` (0..5, ugrizy) at `mjd`: variables follow their periodic light curve
/// (a skewed, RR Lyrae-like shape, larger in the blue), transients rise and decline (+infinity before
/// the explosion), everything else is constant. Throws InvalidInputError for a bad band index.
double magnitudeAt(const SimObject& object, int bandIndex, double mjd);

/// Apparent position at `mjd`: stars with proper motion and parallax (geocentric), asteroids moving at
/// their rate, everything else fixed.
SpherePoint positionAt(const SimObject& object, double mjd);

/// AB magnitude -> flux in nJy, and back (m = 31.4 - 2.5 log10 f).
double abMagToNanojansky(double mag);
double nanojanskyToAbMag(double fluxNjy);

}  // namespace drp
