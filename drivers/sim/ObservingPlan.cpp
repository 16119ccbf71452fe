#include "drivers/sim/ObservingPlan.h"
#include "drivers/sim/SimRandom.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numbers>
#include <set>

#include "core/Error.h"
#include "drivers/sim/SkyModel.h"

namespace drp {

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kD2R = kPi / 180;
constexpr double kSiderealPerSolar = 1.00273790935;



std::size_t bandIndexOrThrow(const std::string& band) {
    const int b = simBandIndex(band);
    if (b < 0) throw InvalidInputError("unknown band '" + band + "' (expected one of u g r i z y)");
    return static_cast<std::size_t>(b);
}

/// Altitude (deg) of a source at declination dec seen at hour angle ha from latitude lat (all deg).
double altitudeDeg(double haDeg, double decDeg, double latDeg) {
    const double s = std::sin(latDeg * kD2R) * std::sin(decDeg * kD2R) +
                     std::cos(latDeg * kD2R) * std::cos(decDeg * kD2R) * std::cos(haDeg * kD2R);
    return std::asin(std::clamp(s, -1.0, 1.0)) / kD2R;
}

/// Largest |hour angle| (deg) at which the field stays at or below `maxAirmass`; 180 if it always does.
double hourAngleLimitDeg(double decDeg, double latDeg, double maxAirmass) {
    double lo = 0.5, hi = 90;  // altitude with airmass == maxAirmass
    for (int i = 0; i < 100; ++i) {
        const double mid = 0.5 * (lo + hi);
        (airmassFromAltitude(mid) > maxAirmass ? lo : hi) = mid;
    }
    const double altMin = hi;
    const double c = (std::sin(altMin * kD2R) - std::sin(latDeg * kD2R) * std::sin(decDeg * kD2R)) /
                     (std::cos(latDeg * kD2R) * std::cos(decDeg * kD2R));
    if (c <= -1) return 180;
    if (c >= 1) return 0;
    return std::acos(c) / kD2R;
}

/// Field-angle orientation on the sky: (east, north) = M (x, y) for focal-plane axes x, y.
Eigen::Matrix2d skyOrientation(Angle rotation) {
    const double c = std::cos(rotation.asRadians()), s = std::sin(rotation.asRadians());
    Eigen::Matrix2d m;
    m << -c, s, s, c;
    return m;
}

/// Linear part: degrees of field angle per detector pixel, in focal-plane axes.
Eigen::Matrix2d pixelToFieldDeg(const Camera& camera, const Detector& detector) {
    const double a = camera.plateScaleArcsecPerMm() * detector.pixelSizeMicrons() * 1e-3 / 3600.0;
    const double c = std::cos(detector.yaw()), s = std::sin(detector.yaw());
    Eigen::Matrix2d r;
    r << c, -s, s, c;
    return a * r;
}

/// Wrap degrees into (-180, 180].
double wrap180(double d) {
    d = std::fmod(d, 360.0);
    if (d <= -180) d += 360;
    if (d > 180) d -= 360;
    return d;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// time and sky helpers

std::int64_t dayObsFromMjd(double mjd) {
    // Civil date of mjd - 0.5 (the UTC-12h time zone), via the Fliegel & Van Flandern algorithm on its JDN.
    const std::int64_t jdn = static_cast<std::int64_t>(std::floor(mjd - 0.5)) + 2400001;
    std::int64_t l = jdn + 68569;
    const std::int64_t n = 4 * l / 146097;
    l = l - (146097 * n + 3) / 4;
    const std::int64_t i = 4000 * (l + 1) / 1461001;
    l = l - 1461 * i / 4 + 31;
    const std::int64_t j = 80 * l / 2447;
    const std::int64_t day = l - 2447 * j / 80;
    l = j / 11;
    const std::int64_t month = j + 2 - 12 * l;
    const std::int64_t year = 100 * (n - 49) + i + l;
    return year * 10000 + month * 100 + day;
}

double greenwichMeanSiderealTimeDeg(double mjd) {
    const double g = std::fmod(280.46061837 + 360.98564736629 * (mjd - 51544.5), 360.0);
    return g < 0 ? g + 360 : g;
}

double airmassFromAltitude(double altitudeDeg) {
    if (!(altitudeDeg > 0)) throw InvalidInputError("airmassFromAltitude: the altitude must be > 0");
    const double z = 90.0 - altitudeDeg;
    return 1.0 / (std::cos(z * kD2R) + 0.50572 * std::pow(96.07995 - z, -1.6364));
}

// ---------------------------------------------------------------------------------------------
// config

void ObservingConfig::validate() const {
    auto require = [](bool ok, const std::string& what) {
        if (!ok) throw ConfigError("ObservingConfig: " + what);
    };
    auto finite = [](double v) { return std::isfinite(v); };
    require(!bands.empty(), "bands must not be empty");
    std::set<std::string> seen;
    for (const auto& b : bands) {
        require(simBandIndex(b) >= 0, "band '" + b + "' is not one of u g r i z y");
        require(seen.insert(b).second, "band '" + b + "' is listed twice");
    }
    require(visitsPerBand >= 1 && visitsPerBand <= 100000, "visitsPerBand must be in [1, 100000]");
    require(nights >= 1 && nights <= 10000, "nights must be in [1, 10000]");
    require(finite(startMjd), "startMjd must be finite");
    require(nightLengthHours > 0 && nightLengthHours <= 14, "nightLengthHours must be in (0, 14]");
    require(maxHourAngleHours > 0 && maxHourAngleHours <= 6, "maxHourAngleHours must be in (0, 6]");
    require(maxAirmass >= 1.05 && maxAirmass <= 3, "maxAirmass must be in [1.05, 3]");
    require(std::fabs(siteLatitudeDeg) <= 90, "siteLatitudeDeg must be in [-90, 90]");
    require(std::fabs(siteLongitudeDeg) <= 180, "siteLongitudeDeg must be in [-180, 180]");
    require(exposureTimeS > 0 && exposureTimeS <= 3600, "exposureTimeS must be in (0, 3600]");
    require(visitGapS >= 0 && visitGapS <= 3600, "visitGapS must be in [0, 3600]");
    require(finite(fieldRaDeg) && fieldRaDeg >= 0 && fieldRaDeg < 360, "fieldRaDeg must be in [0, 360)");
    require(std::fabs(fieldDecDeg) <= 90, "fieldDecDeg must be in [-90, 90]");
    require(90 - std::fabs(fieldDecDeg - siteLatitudeDeg) > 25,
            "the field never rises above 25 deg altitude at the site latitude");
    require(airmassFromAltitude(90 - std::fabs(fieldDecDeg - siteLatitudeDeg)) < maxAirmass,
            "the field's airmass at transit exceeds maxAirmass");
    require(ditherRadiusDeg >= 0 && ditherRadiusDeg <= 5, "ditherRadiusDeg must be in [0, 5]");
    require(finite(rotationMinDeg) && rotationMaxDeg >= rotationMinDeg && rotationMaxDeg - rotationMinDeg <= 360,
            "need rotationMinDeg <= rotationMaxDeg <= rotationMinDeg + 360");
    require(seeingMedianArcsec > 0.2 && seeingMedianArcsec <= 5, "seeingMedianArcsec must be in (0.2, 5]");
    require(seeingScatter >= 0 && seeingScatter <= 1, "seeingScatter must be in [0, 1]");
    for (std::size_t b = 0; b < 6; ++b) {
        const std::string name = kSimBands[b];
        require(extinctionPerAirmass[b] >= 0 && extinctionPerAirmass[b] <= 2, "extinctionPerAirmass[" + name + "] must be in [0, 2]");
        require(wavelengthNm[b] > 0 && finite(wavelengthNm[b]), "wavelengthNm[" + name + "] must be > 0");
        require(skyMagPerArcsec2[b] >= 10 && skyMagPerArcsec2[b] <= 30, "skyMagPerArcsec2[" + name + "] must be in [10, 30]");
        require(zeroPointMag[b] >= 15 && zeroPointMag[b] <= 40, "zeroPointMag[" + name + "] must be in [15, 40]");
    }
    require(photometricFraction >= 0 && photometricFraction <= 1, "photometricFraction must be in [0, 1]");
    require(cloudMeanMag >= 0 && cloudMeanMag <= 2, "cloudMeanMag must be in [0, 2]");
    require(cloudMaxMag >= 0 && cloudMaxMag <= 5, "cloudMaxMag must be in [0, 5]");
    require(detectorThroughputRmsMag >= 0 && detectorThroughputRmsMag <= 0.1, "detectorThroughputRmsMag must be in [0, 0.1]");
    require(skyScatterMag >= 0 && skyScatterMag <= 2, "skyScatterMag must be in [0, 2]");
    require(skyGradientRms >= 0 && skyGradientRms <= 0.5, "skyGradientRms must be in [0, 0.5]");
    require(pointingErrorRmsArcsec >= 0 && pointingErrorRmsArcsec <= 60, "pointingErrorRmsArcsec must be in [0, 60]");
    require(rotationErrorRmsDeg >= 0 && rotationErrorRmsDeg <= 1, "rotationErrorRmsDeg must be in [0, 1]");
    require(std::fabs(distortionCoeffPerDeg2) <= 1, "distortionCoeffPerDeg2 must be in [-1, 1]");
    require(psfEllipticityRms >= 0 && psfEllipticityRms <= 0.2, "psfEllipticityRms must be in [0, 0.2]");
    require(psfEllipticityGradientRms >= 0 && psfEllipticityGradientRms <= 0.2, "psfEllipticityGradientRms must be in [0, 0.2]");
    require(psfFwhmRadialGrowth >= 0 && psfFwhmRadialGrowth <= 1, "psfFwhmRadialGrowth must be in [0, 1]");
}

// ---------------------------------------------------------------------------------------------
// the plan

std::vector<VisitPlan> makeObservingPlan(const ObservingConfig& config, std::uint64_t seed) {
    config.validate();
    // Round-robin assignment of each band's visits to nights.
    std::vector<std::vector<std::size_t>> perNight(static_cast<std::size_t>(config.nights));  // indices into bands
    for (std::size_t b = 0; b < config.bands.size(); ++b)
        for (int j = 0; j < config.visitsPerBand; ++j) perNight[static_cast<std::size_t>(j % config.nights)].push_back(b);

    const SpherePoint field = SpherePoint::fromDegrees(config.fieldRaDeg, config.fieldDecDeg);
    const double haLimitDeg =
        std::min(config.maxHourAngleHours * 15.0, hourAngleLimitDeg(config.fieldDecDeg, config.siteLatitudeDeg, config.maxAirmass));
    std::vector<VisitPlan> visits;
    std::uint64_t slot = 0;
    for (std::size_t n = 0; n < perNight.size(); ++n) {
        auto& order = perNight[n];
        if (order.empty()) continue;
        if (n % 2 == 1) std::reverse(order.begin(), order.end());  // alternate band order: decorrelates band and airmass
        const double nightCenter = config.startMjd + double(n) + config.nightLengthHours / 48.0;
        const double lst = greenwichMeanSiderealTimeDeg(nightCenter) + config.siteLongitudeDeg;
        const double transit = nightCenter + wrap180(config.fieldRaDeg - lst) / 360.0 / kSiderealPerSolar;
        const double k = double(order.size());
        const double minSpacingDeg = (config.exposureTimeS + config.visitGapS) / 86400.0 * 360.0 * kSiderealPerSolar;
        double spacingDeg = k > 1 ? 2 * haLimitDeg / k : 0.0;
        const double jitterDeg = spacingDeg > 1.5 * minSpacingDeg ? 0.25 * (spacingDeg - minSpacingDeg) : 0.0;
        spacingDeg = std::max(spacingDeg, minSpacingDeg);
        for (std::size_t i = 0; i < order.size(); ++i, ++slot) {
            SimRng rng(mixSeed(seed, slot + 1));
            VisitPlan v;
            const std::size_t bandIdx = bandIndexOrThrow(config.bands[order[i]]);
            v.band = config.bands[order[i]];
            v.night = static_cast<int>(n);
            v.exposureTimeS = config.exposureTimeS;
            const double ha = (double(i) - 0.5 * (k - 1)) * spacingDeg + jitterDeg * (2 * rng.uniform() - 1);
            v.mjd = transit + ha / 360.0 / kSiderealPerSolar;
            // pointing: a dither about the field centre; rotation uniform in its range
            const double ditherR = config.ditherRadiusDeg * std::sqrt(rng.uniform());
            v.boresight = field.offset(Angle::fromRadians(2 * kPi * rng.uniform()), ditherR * degrees);
            v.rotation = rng.uniform(config.rotationMinDeg, config.rotationMaxDeg) * degrees;
            v.pointingErrorRaArcsec = config.pointingErrorRmsArcsec * rng.normal();
            v.pointingErrorDecArcsec = config.pointingErrorRmsArcsec * rng.normal();
            v.rotationErrorDeg = config.rotationErrorRmsDeg * rng.normal();
            const double errTotal = std::hypot(v.pointingErrorRaArcsec, v.pointingErrorDecArcsec);
            v.commandedBoresight =
                errTotal > 0 ? v.boresight.offset(Angle::fromRadians(std::atan2(v.pointingErrorRaArcsec, v.pointingErrorDecArcsec)),
                                                  errTotal * arcseconds)
                             : v.boresight;
            v.commandedRotation = v.rotation + v.rotationErrorDeg * degrees;
            // where the boresight is in the sky
            const double lstV = greenwichMeanSiderealTimeDeg(v.mjd) + config.siteLongitudeDeg;
            v.hourAngleDeg = wrap180(lstV - v.boresight.ra().asDegrees());
            v.altitudeDeg = altitudeDeg(v.hourAngleDeg, v.boresight.dec().asDegrees(), config.siteLatitudeDeg);
            if (v.altitudeDeg < 10)
                throw ConfigError("ObservingConfig: too many visits per night for the field's time above the horizon");
            v.airmass = airmassFromAltitude(v.altitudeDeg);
            // conditions
            const double wl = config.wavelengthNm[bandIdx] / config.wavelengthNm[2];
            v.seeingFwhmArcsec = config.seeingMedianArcsec * std::pow(wl, -0.2) * std::pow(v.airmass, 0.6) *
                                 std::exp(config.seeingScatter * rng.normal());
            v.extinctionMag = config.extinctionPerAirmass[bandIdx] * v.airmass;
            const double uCloud = rng.uniform(), uDepth = rng.uniform();
            v.cloudMag = uCloud < config.photometricFraction
                             ? 0.0
                             : std::min(config.cloudMaxMag, -config.cloudMeanMag * std::log1p(-uDepth));
            v.skyMagPerArcsec2 = config.skyMagPerArcsec2[bandIdx] + config.skyScatterMag * rng.normal() -
                                 2.5 * std::log10(v.airmass);  // airglow brightens ~ X
            v.skyGradientX = config.skyGradientRms * rng.normal();
            v.skyGradientY = config.skyGradientRms * rng.normal();
            v.psfE1 = config.psfEllipticityRms * rng.normal();
            v.psfE2 = config.psfEllipticityRms * rng.normal();
            v.psfE1GradX = config.psfEllipticityGradientRms * rng.normal();
            v.psfE1GradY = config.psfEllipticityGradientRms * rng.normal();
            v.psfE2GradX = config.psfEllipticityGradientRms * rng.normal();
            v.psfE2GradY = config.psfEllipticityGradientRms * rng.normal();
            visits.push_back(std::move(v));
        }
    }
    std::stable_sort(visits.begin(), visits.end(), [](const VisitPlan& a, const VisitPlan& b) { return a.mjd < b.mjd; });
    std::map<std::int64_t, int> seq;
    for (auto& v : visits) {
        v.dayObs = dayObsFromMjd(v.mjd);
        v.seqNum = ++seq[v.dayObs];
        v.visit = v.dayObs * 100000 + v.seqNum;
    }
    return visits;
}

double detectorThroughputOffsetMag(const ObservingConfig& config, int detectorId, const std::string& band,
                                   std::uint64_t seed) {
    const std::uint64_t b = bandIndexOrThrow(band);
    SimRng rng(mixSeed(mixSeed(seed, 0x7468726f75676870ULL), (static_cast<std::uint64_t>(detectorId) << 8) | b));
    return config.detectorThroughputRmsMag * rng.normal();
}

// ---------------------------------------------------------------------------------------------
// geometry

Point2D focalPlaneToFieldAngle(Point2D mm, const Camera& camera, const ObservingConfig& config) {
    const Point2D phi = camera.focalPlaneToField(mm);  // arcsec
    const double rDeg = std::hypot(phi.x, phi.y) / 3600.0;
    const double f = 1 + config.distortionCoeffPerDeg2 * rDeg * rDeg;
    return {phi.x * f, phi.y * f};
}

Point2D fieldAngleToFocalPlane(Point2D field, const Camera& camera, const ObservingConfig& config) {
    const double t = std::hypot(field.x, field.y) / 3600.0;  // true radius, deg
    if (t == 0) return {0, 0};
    const double k = config.distortionCoeffPerDeg2;
    double r = t;
    for (int i = 0; i < 50; ++i) {  // solve r (1 + k r^2) = t
        const double g = r * (1 + k * r * r) - t, dg = 1 + 3 * k * r * r;
        if (!(dg > 0)) throw NumericalError("fieldAngleToFocalPlane: the distortion folds over at this radius");
        const double step = g / dg;
        r -= step;
        if (std::fabs(step) < 1e-15 * std::max(1.0, r)) break;
    }
    const double scale = r / t;  // nominal / true
    return camera.fieldToFocalPlane({field.x * scale, field.y * scale});
}

std::shared_ptr<const Wcs> trueWcs(const VisitPlan& visit, const Camera& camera, const Detector& detector,
                                   const ObservingConfig& config) {
    // TAN about the true boresight, with the optics' radial distortion as the camera model states it (exact
    // order-3 SIP about the optical axis, core/Camera.h).
    const Point2D crpix = detector.focalPlaneToPixel({0.0, 0.0});
    const Eigen::Matrix2d cd = skyOrientation(visit.rotation) * pixelToFieldDeg(camera, detector);
    const auto tan = std::make_shared<const Wcs>(crpix, visit.boresight, cd);
    return camera.withRadialDistortion(config.distortionCoeffPerDeg2)->distortedWcs(tan, detector);
}

std::shared_ptr<const Wcs> headerWcs(const VisitPlan& visit, const Camera& camera, const Detector& detector,
                                     const ObservingConfig& /*config*/) {
    const Point2D crpix = detector.focalPlaneToPixel({0.0, 0.0});
    const Eigen::Matrix2d cd = skyOrientation(visit.commandedRotation) * pixelToFieldDeg(camera, detector);
    return std::make_shared<const Wcs>(crpix, visit.commandedBoresight, cd);
}

// ---------------------------------------------------------------------------------------------
// PSF, sky, photometry

PsfAtPosition psfAt(const VisitPlan& visit, Point2D mm, const ObservingConfig& config) {
    const double x = mm.x / 100.0, y = mm.y / 100.0;
    PsfAtPosition p;
    p.fwhmArcsec = visit.seeingFwhmArcsec * (1 + config.psfFwhmRadialGrowth * (x * x + y * y));
    p.e1 = visit.psfE1 + visit.psfE1GradX * x + visit.psfE1GradY * y;
    p.e2 = visit.psfE2 + visit.psfE2GradX * x + visit.psfE2GradY * y;
    return p;
}

double skyElectronsPerPixel(const VisitPlan& visit, Point2D mm, double pixelScaleArcsec, const ObservingConfig& config) {
    const std::size_t b = bandIndexOrThrow(visit.band);
    const double perArcsec2 = std::pow(10.0, -0.4 * (visit.skyMagPerArcsec2 - config.zeroPointMag[b]));  // e-/s
    const double level = perArcsec2 * pixelScaleArcsec * pixelScaleArcsec * visit.exposureTimeS;
    const double factor = 1 + visit.skyGradientX * mm.x / 100.0 + visit.skyGradientY * mm.y / 100.0;
    return level * std::max(factor, 0.0);
}

double sourceElectrons(double abMag, const VisitPlan& visit, int detectorId, const ObservingConfig& config,
                       std::uint64_t seed) {
    const std::size_t b = bandIndexOrThrow(visit.band);
    const double offset = detectorThroughputOffsetMag(config, detectorId, visit.band, seed);
    const double m = abMag - config.zeroPointMag[b] + visit.extinctionMag + visit.cloudMag + offset;
    return visit.exposureTimeS * std::pow(10.0, -0.4 * m);
}

}  // namespace drp
