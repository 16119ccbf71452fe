// ObservingPlan: the simulated survey — when each visit is taken, in which band, where the telescope
// really points and where it thinks it points, and the conditions (seeing, airmass, extinction,
// clouds, sky) — plus the true and header WCS of every detector, the PSF and sky across the focal
// plane and the photometric chain from AB magnitude to electrons. Everything is a deterministic
// function of (config, seed); this is the truth the calibration stages are judged against.
//
// Geometry. Focal-plane millimetres map to *nominal* field angles phi = plateScale * mm (arcsec, the
// Camera's linear focalPlaneToField). The optics add a radial cubic distortion: the true field angle is
//     theta = phi * (1 + distortionCoeffPerDeg2 * |phi|^2)      (|phi| in degrees)
// which, because detector pixels map affinely to the focal plane, is exactly a TAN-SIP polynomial of
// order 3 in detector pixels. Field angles are gnomonic tangent-plane coordinates about the true
// boresight, with the focal-plane +y axis at position angle `rotation` (east of north) and +x 90 deg
// west of it (the usual parity: east to the left when north is up), as in Wcs::makeTan.
//
// Photometry. A source of AB magnitude m gives, per exposure,
//     electrons = exposureTime * 10^(-0.4 (m - zeroPoint[band] + extinction[band] * airmass + clouds + offset[detector, band]))
// with zeroPoint the magnitude giving 1 e-/s above the atmosphere. The sky (mag/arcsec^2, as observed)
// is not extinguished and not scaled by the detector offset (a star-flat residual).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Camera.h"
#include "core/Wcs.h"
#include "sky/Angle.h"
#include "sky/SpherePoint.h"

namespace drp {

/// Configuration of the simulated survey. Per-band arrays are indexed ugrizy (kSimBands).
struct ObservingConfig {
    std::vector<std::string> bands = {"g", "r", "i"};  ///< bands observed, a subset of ugrizy, no repeats
    int visitsPerBand = 6;              ///< visits in each band over the whole plan, [1, 100000]
    int nights = 3;                     ///< nights the visits are spread over (round robin), [1, 10000]
    double startMjd = 61000.0;          ///< MJD (UTC) of the start of the first night; night n starts at startMjd + n
    double nightLengthHours = 9.0;      ///< length of a night, hours (0, 14]; visits cluster about the field's transit near its middle
    double maxHourAngleHours = 4.0;     ///< visits span hour angles within +- this (shrunk to respect maxAirmass), hours (0, 6]
    double maxAirmass = 2.0;            ///< highest airmass planned, [1.05, 3]
    double siteLatitudeDeg = -30.2444;  ///< observatory latitude (Cerro Pachon), deg [-90, 90]
    double siteLongitudeDeg = -70.7494; ///< observatory longitude, east positive, deg [-180, 180]
    double exposureTimeS = 30.0;        ///< exposure time, s (0, 3600]
    double visitGapS = 10.0;            ///< minimum readout + slew time between exposures, s [0, 3600]
    double fieldRaDeg = 55.0;           ///< field centre, deg [0, 360)
    double fieldDecDeg = -30.0;         ///< deg [-90, 90]; must rise above 25 deg altitude at the site
    double ditherRadiusDeg = 0.05;      ///< boresights are uniform in a disc of this radius about the field centre, deg [0, 5]
    double rotationMinDeg = 0.0;        ///< rotSkyPos (position angle of focal-plane +y) range, deg
    double rotationMaxDeg = 360.0;      ///< deg (>= min, range <= 360)
    double seeingMedianArcsec = 0.8;    ///< median FWHM at zenith in r, arcsec (0.2, 5]; scales as X^0.6 and wavelength^-0.2
    double seeingScatter = 0.2;         ///< lognormal sigma (natural log) of the seeing, [0, 1]
    std::array<double, 6> extinctionPerAirmass = {0.45, 0.20, 0.12, 0.08, 0.05, 0.04};  ///< k, mag/airmass, [0, 2]
    std::array<double, 6> wavelengthNm = {367, 482, 622, 755, 869, 971};  ///< effective wavelengths, nm (> 0)
    double photometricFraction = 0.6;   ///< fraction of visits with no clouds, [0, 1]
    double cloudMeanMag = 0.15;         ///< mean grey cloud extinction of the others (exponential), mag [0, 2]
    double cloudMaxMag = 1.0;           ///< cloud extinction cap, mag [0, 5]
    double detectorThroughputRmsMag = 0.005;  ///< rms of the per-detector, per-band throughput offset, mag [0, 0.1]
    std::array<double, 6> skyMagPerArcsec2 = {22.9, 22.3, 21.2, 20.5, 19.6, 18.6};  ///< dark sky at zenith, mag/arcsec^2 [10, 30]
    double skyScatterMag = 0.15;        ///< rms visit-to-visit sky variation (moon, airglow), mag [0, 2]
    double skyGradientRms = 0.02;       ///< rms of the sky gradient components, fraction per 100 mm of focal plane, [0, 0.5]
    double pointingErrorRmsArcsec = 5.0;  ///< rms per axis of the (true - commanded) pointing, arcsec [0, 60]
    double rotationErrorRmsDeg = 0.05;  ///< rms of the (true - commanded) rotation, deg [0, 1]
    double distortionCoeffPerDeg2 = 0.01;  ///< radial cubic distortion k, 1/deg^2 [-1, 1]; 0.01 gives k r^3 = 1.5" at the edge (0.35 deg) and 4.2" at the corners (0.49 deg) of the default 3x3-detector camera
    double psfEllipticityRms = 0.03;    ///< rms per component of the visit's mean PSF ellipticity, [0, 0.2]
    double psfEllipticityGradientRms = 0.02;  ///< rms of the linear ellipticity pattern, per 100 mm, [0, 0.2]
    double psfFwhmRadialGrowth = 0.05;  ///< fractional FWHM increase at 100 mm from the axis (quadratic in radius), [0, 1]
    std::array<double, 6> zeroPointMag = {26.97, 28.71, 28.48, 28.25, 27.83, 26.86};  ///< AB mag giving 1 e-/s above the atmosphere (Rubin SMTN-002 X=1 values + k), [15, 40]

    /// Throws ConfigError for out-of-bounds or inconsistent values.
    void validate() const;
    friend bool operator==(const ObservingConfig&, const ObservingConfig&) = default;
};

/// One visit (one exposure of the whole focal plane).
struct VisitPlan {
    std::int64_t visit = 0;             ///< dayObs * 100000 + seqNum (as Rubin exposure ids)
    std::string band;                   ///< "u".."y"
    std::int64_t dayObs = 0;            ///< YYYYMMDD of the observing night (UTC-12h date of mjd)
    int seqNum = 0;                     ///< 1-based sequence number within dayObs
    int night = 0;                      ///< 0-based night index
    double mjd = 0;                     ///< middle of the exposure, MJD
    double exposureTimeS = 0;           ///< s
    SpherePoint boresight;              ///< TRUE pointing (tangent point of the true WCS)
    Angle rotation;                     ///< TRUE rotSkyPos: position angle of focal-plane +y, east of north
    SpherePoint commandedBoresight;     ///< pointing the telescope reports = boresight + pointing error
    Angle commandedRotation;            ///< rotation + rotation error
    double hourAngleDeg = 0;            ///< of the boresight at mjd, deg (-180, 180]
    double altitudeDeg = 0;             ///< of the boresight at mjd, deg
    double seeingFwhmArcsec = 0;        ///< PSF FWHM on the optical axis, arcsec
    double airmass = 0;                 ///< of the boresight (Kasten & Young 1989)
    double extinctionMag = 0;           ///< extinctionPerAirmass[band] * airmass, mag
    double cloudMag = 0;                ///< grey cloud extinction, mag (0 if photometric)
    double skyMagPerArcsec2 = 0;        ///< sky brightness on the axis, mag/arcsec^2
    double skyGradientX = 0, skyGradientY = 0;  ///< fractional sky change per 100 mm of focal plane in x, y
    double pointingErrorRaArcsec = 0;   ///< commanded - true pointing, east component (includes cos dec), arcsec
    double pointingErrorDecArcsec = 0;  ///< commanded - true pointing, north component, arcsec
    double rotationErrorDeg = 0;        ///< commanded - true rotation, deg
    double psfE1 = 0, psfE2 = 0;        ///< PSF ellipticity on the axis
    double psfE1GradX = 0, psfE1GradY = 0;  ///< d e1 / d (x, y) per 100 mm of focal plane
    double psfE2GradX = 0, psfE2GradY = 0;  ///< d e2 / d (x, y) per 100 mm
};

/// The visits, sorted by mjd. Deterministic in (config, seed). Throws ConfigError (validate).
std::vector<VisitPlan> makeObservingPlan(const ObservingConfig& config, std::uint64_t seed);

/// Per-detector, per-band throughput offset (mag, added to the source magnitude): N(0, rms), deterministic in
/// (seed, detectorId, band).
double detectorThroughputOffsetMag(const ObservingConfig& config, int detectorId, const std::string& band,
                                   std::uint64_t seed);

/// True field angle (arcsec, focal-plane axes) of a focal-plane position: the distortion applied to plateScale * mm.
Point2D focalPlaneToFieldAngle(Point2D focalPlaneMm, const Camera& camera, const ObservingConfig& config);
/// Inverse of focalPlaneToFieldAngle (Newton on the radial cubic; NumericalError where it has no inverse).
Point2D fieldAngleToFocalPlane(Point2D fieldArcsec, const Camera& camera, const ObservingConfig& config);

/// The true pixel -> sky mapping of a detector in a visit: TAN about the true boresight with CRPIX at the
/// boresight's position in this detector's pixel frame, CD from the plate scale, pixel size, detector yaw and
/// rotation, and the distortion as exact order-3 SIP (A/B) with fitted inverse AP/BP (order 5).
std::shared_ptr<const Wcs> trueWcs(const VisitPlan& visit, const Camera& camera, const Detector& detector,
                                   const ObservingConfig& config);
/// The WCS a camera would write in the header: plain TAN (no distortion) about the commanded pointing and
/// rotation, same CRPIX and plate scale.
std::shared_ptr<const Wcs> headerWcs(const VisitPlan& visit, const Camera& camera, const Detector& detector,
                                     const ObservingConfig& config);

/// PSF parameters at a focal-plane position (mm).
struct PsfAtPosition {
    double fwhmArcsec = 0;  ///< FWHM, arcsec: seeing * (1 + psfFwhmRadialGrowth * (r / 100 mm)^2)
    double e1 = 0, e2 = 0;  ///< ellipticity: the visit's mean plus its linear pattern in x, y
};
PsfAtPosition psfAt(const VisitPlan& visit, Point2D focalPlaneMm, const ObservingConfig& config);

/// Sky background, electrons per pixel per exposure, at a focal-plane position (mm), for pixels of
/// `pixelScaleArcsec`: 10^(-0.4 (sky - zeroPoint)) * scale^2 * exposureTime * (1 + gradient . mm / 100), >= 0.
double skyElectronsPerPixel(const VisitPlan& visit, Point2D focalPlaneMm, double pixelScaleArcsec,
                            const ObservingConfig& config);

/// Electrons collected from a source of AB magnitude `abMag` in this visit on this detector (see the header).
double sourceElectrons(double abMag, const VisitPlan& visit, int detectorId, const ObservingConfig& config,
                       std::uint64_t seed);

/// Rubin day_obs (YYYYMMDD of the UTC-12h civil date) of an MJD.
std::int64_t dayObsFromMjd(double mjd);
/// Greenwich mean sidereal time, degrees [0, 360).
double greenwichMeanSiderealTimeDeg(double mjd);
/// Airmass at an altitude (Kasten & Young 1989); altitude in degrees (> 0).
double airmassFromAltitude(double altitudeDeg);

}  // namespace drp
