#include "drivers/sim/SkyModel.h"
#include "drivers/sim/SimRandom.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "core/Error.h"
#include "io/FitsFile.h"
#include "sky/HtmPixelization.h"
#include "sky/ReferenceCatalog.h"

namespace drp {

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kDeg2PerSr = (180.0 / kPi) * (180.0 / kPi);

/// A uniform point in the cap of `radiusDeg` about `center`.
SpherePoint uniformInCap(SimRng& rng, const SpherePoint& center, double radiusDeg) {
    const double cosR = std::cos(radiusDeg * kPi / 180);
    const double z = 1 - rng.uniform() * (1 - cosR);
    const double theta = std::acos(std::clamp(z, -1.0, 1.0));
    return center.offset(Angle::fromRadians(2 * kPi * rng.uniform()), Angle::fromRadians(theta));
}

/// A magnitude drawn from dN/dm ∝ 10^(slope m) on [lo, hi].
double powerLawMag(SimRng& rng, double lo, double hi, double slope) {
    if (slope <= 1e-9) return rng.uniform(lo, hi);
    const double a = std::pow(10.0, slope * lo), b = std::pow(10.0, slope * hi);
    return std::log10(a + rng.uniform() * (b - a)) / slope;
}

/// Stellar locus: ugrizy magnitudes of a star of magnitude r and colour x = g - i (main sequence, SDSS-like).
std::array<double, 6> stellarLocus(double r, double x) {
    x = std::clamp(x, -0.5, 3.5);
    const double gr = x < 1.2 ? 0.77 * x : std::min(0.924 + 0.45 * (x - 1.2), 1.5);
    const double ri = x - gr;
    const double ug = std::min(1.0 + 1.2 * std::max(gr, 0.0), 2.7);
    const double iz = 0.53 * ri;
    const double zy = 0.45 * iz;
    const double g = r + gr, i = r - ri;
    return {g + ug, g, r, i, i - iz, i - iz - zy};
}

/// Absolute r magnitude of a main-sequence star of colour g - i (a rough photometric parallax relation).
double absoluteMagR(double gi) { return 2.8 + 3.0 * std::clamp(gi, -0.5, 3.5); }

double ellipticityDraw(SimRng& rng, double rms, double& e1, double& e2) {
    const double sigma = rms / std::sqrt(2.0);
    do {
        e1 = sigma * rng.normal();
        e2 = sigma * rng.normal();
    } while (std::hypot(e1, e2) > 0.8);
    return std::hypot(e1, e2);
}

struct ReferenceStar {
    SimObject object;
    Eigen::Vector3d vector;
};

std::vector<ReferenceStar> readReferenceStars(const std::string& path) {
    FitsFile f(path, FitsFile::Mode::Read);
    int hdu = 1;
    while (hdu < f.numHdus()) {
        f.moveToHdu(hdu);
        if (f.isTableHdu()) break;
        ++hdu;
    }
    if (hdu >= f.numHdus()) throw NotFoundError("no binary table in reference stars file", path);
    const auto ra = f.readColumn<double>("ra");
    const auto dec = f.readColumn<double>("dec");
    const auto gMag = f.readColumn<double>("phot_g_mean_mag");
    auto optional = [&](const char* name, double fill) {
        return f.hasColumn(name) ? f.readColumn<double>(name) : std::vector<double>(ra.size(), fill);
    };
    const auto bp = optional("phot_bp_mean_mag", std::numeric_limits<double>::quiet_NaN());
    const auto rp = optional("phot_rp_mean_mag", std::numeric_limits<double>::quiet_NaN());
    const auto pmra = optional("pmra", 0.0);
    const auto pmdec = optional("pmdec", 0.0);
    const auto plx = optional("parallax", 0.0);
    const auto refEpoch = optional("ref_epoch", 2015.5);
    std::vector<std::int64_t> sourceId(ra.size(), 0);
    if (f.hasColumn("source_id")) sourceId = f.readColumn<std::int64_t>("source_id");
    std::vector<ReferenceStar> out;
    out.reserve(ra.size());
    for (std::size_t i = 0; i < ra.size(); ++i) {
        if (!std::isfinite(ra[i]) || !std::isfinite(dec[i]) || !std::isfinite(gMag[i])) continue;
        SimObject o;
        o.type = ObjectType::Star;
        o.raDeg = ra[i];
        o.decDeg = dec[i];
        o.epochMjd = kMjdJ2000 + ((std::isfinite(refEpoch[i]) ? refEpoch[i] : 2015.5) - 2000.0) * kDaysPerJulianYear;
        o.pmRaMasPerYr = std::isfinite(pmra[i]) ? pmra[i] : 0.0;
        o.pmDecMasPerYr = std::isfinite(pmdec[i]) ? pmdec[i] : 0.0;
        o.parallaxMas = std::isfinite(plx[i]) ? std::max(plx[i], 0.0) : 0.0;  // truth must be physical
        // Gaia -> SDSS-like g, r, i (Evans et al. 2018, Gaia DR2 documentation), then u, z, y from the locus.
        const double x = std::isfinite(bp[i]) && std::isfinite(rp[i]) ? std::clamp(bp[i] - rp[i], -0.5, 2.75) : 0.8;
        const double G = gMag[i];
        const double g = G - (0.13518 - 0.46245 * x - 0.25171 * x * x + 0.021349 * x * x * x);
        const double r = G - (-0.12879 + 0.24662 * x - 0.027464 * x * x - 0.049465 * x * x * x);
        const double iMag = G - (-0.29676 + 0.64728 * x - 0.10141 * x * x);
        const auto locus = stellarLocus(r, g - iMag);
        o.mag = {locus[0] - locus[1] + g, g, r, iMag, iMag - (locus[3] - locus[4]), iMag - (locus[3] - locus[5])};
        o.fromReferenceFile = true;
        o.referenceSourceId = sourceId[i];
        out.push_back({o, SpherePoint::fromDegrees(ra[i], dec[i]).vector()});
    }
    return out;
}

}  // namespace

int simBandIndex(const std::string& band) {
    for (std::size_t i = 0; i < kSimBands.size(); ++i)
        if (band == kSimBands[i]) return static_cast<int>(i);
    return -1;
}

const char* objectTypeName(ObjectType type) {
    switch (type) {
        case ObjectType::Star: return "star";
        case ObjectType::Galaxy: return "galaxy";
        case ObjectType::VariableStar: return "variable_star";
        case ObjectType::Transient: return "transient";
        case ObjectType::Asteroid: return "asteroid";
    }
    return "unknown";
}

double abMagToNanojansky(double mag) { return std::pow(10.0, -0.4 * (mag - 31.4)); }
double nanojanskyToAbMag(double fluxNjy) { return 31.4 - 2.5 * std::log10(fluxNjy); }

void SkyModelConfig::validate() const {
    auto require = [](bool ok, const std::string& what) {
        if (!ok) throw ConfigError("SkyModelConfig: " + what);
    };
    auto finite = [](double v) { return std::isfinite(v); };
    require(finite(centerRaDeg) && centerRaDeg >= 0 && centerRaDeg < 360, "centerRaDeg must be in [0, 360)");
    require(finite(centerDecDeg) && std::fabs(centerDecDeg) <= 90, "centerDecDeg must be in [-90, 90]");
    require(radiusDeg > 0 && radiusDeg <= 10, "radiusDeg must be in (0, 10]");
    require(finite(epochMjd), "epochMjd must be finite");
    require(starDensityPerDeg2 >= 0 && starDensityPerDeg2 <= 1e6, "starDensityPerDeg2 must be in [0, 1e6]");
    require(finite(starMagBright) && starMagFaint > starMagBright && starMagFaint < 40, "need starMagBright < starMagFaint < 40");
    require(starCountSlope >= 0 && starCountSlope <= 1, "starCountSlope must be in [0, 1]");
    require(starTangentialVelocityKms > 0 && starTangentialVelocityKms < 1000, "starTangentialVelocityKms must be in (0, 1000)");
    require(starHighVelocityFraction >= 0 && starHighVelocityFraction <= 1, "starHighVelocityFraction must be in [0, 1]");
    require(variableFraction >= 0 && variableFraction <= 1, "variableFraction must be in [0, 1]");
    require(variablePeriodMinDays > 0 && variablePeriodMaxDays >= variablePeriodMinDays && finite(variablePeriodMaxDays),
            "need 0 < variablePeriodMinDays <= variablePeriodMaxDays");
    require(variableAmplitudeMinMag > 0 && variableAmplitudeMaxMag >= variableAmplitudeMinMag && variableAmplitudeMaxMag <= 5,
            "need 0 < variableAmplitudeMinMag <= variableAmplitudeMaxMag <= 5");
    require(galaxyDensityPerDeg2 >= 0 && galaxyDensityPerDeg2 <= 1e7, "galaxyDensityPerDeg2 must be in [0, 1e7]");
    require(finite(galaxyMagBright) && galaxyMagFaint > galaxyMagBright && galaxyMagFaint < 40,
            "need galaxyMagBright < galaxyMagFaint < 40");
    require(galaxyCountSlope >= 0 && galaxyCountSlope <= 1, "galaxyCountSlope must be in [0, 1]");
    require(galaxyHlrAtMag20Arcsec > 0 && galaxyHlrAtMag20Arcsec < 60, "galaxyHlrAtMag20Arcsec must be in (0, 60)");
    require(galaxyHlrSlopeDexPerMag >= -0.5 && galaxyHlrSlopeDexPerMag <= 0, "galaxyHlrSlopeDexPerMag must be in [-0.5, 0]");
    require(galaxyHlrScatterDex >= 0 && galaxyHlrScatterDex <= 1, "galaxyHlrScatterDex must be in [0, 1]");
    require(galaxyEllipticityRms >= 0 && galaxyEllipticityRms <= 0.6, "galaxyEllipticityRms must be in [0, 0.6]");
    require(redFractionBright >= 0 && redFractionBright <= 1 && redFractionFaint >= 0 && redFractionFaint <= 1,
            "red fractions must be in [0, 1]");
    require(blendFraction >= 0 && blendFraction <= 1, "blendFraction must be in [0, 1]");
    require(blendSeparationMinArcsec > 0 && blendSeparationMaxArcsec >= blendSeparationMinArcsec &&
                blendSeparationMaxArcsec <= 60,
            "need 0 < blendSeparationMinArcsec <= blendSeparationMaxArcsec <= 60");
    require(finite(timeStartMjd) && finite(timeEndMjd) && timeEndMjd >= timeStartMjd, "need timeStartMjd <= timeEndMjd");
    require(transientsPerDeg2 >= 0 && transientsPerDeg2 <= 1e5, "transientsPerDeg2 must be in [0, 1e5]");
    require(finite(transientPeakMagBright) && transientPeakMagFaint > transientPeakMagBright,
            "need transientPeakMagBright < transientPeakMagFaint");
    require(asteroidsPerDeg2 >= 0 && asteroidsPerDeg2 <= 1e5, "asteroidsPerDeg2 must be in [0, 1e5]");
    require(asteroidRateMinDegPerDay > 0 && asteroidRateMaxDegPerDay >= asteroidRateMinDegPerDay &&
                asteroidRateMaxDegPerDay <= 20,
            "need 0 < asteroidRateMinDegPerDay <= asteroidRateMaxDegPerDay <= 20");
    require(finite(asteroidMagBright) && asteroidMagFaint > asteroidMagBright, "need asteroidMagBright < asteroidMagFaint");
    require(finite(referenceCompletenessMag), "referenceCompletenessMag must be finite");
    for (const auto& f : extraReferenceStarsFiles) require(!f.empty(), "extraReferenceStarsFiles has an empty path");
}

std::vector<SimObject> makeSkyCatalog(const SkyModelConfig& config) {
    config.validate();
    const SpherePoint center = SpherePoint::fromDegrees(config.centerRaDeg, config.centerDecDeg);
    const double capRadius = config.radiusDeg * kPi / 180;
    const double areaDeg2 = 2 * kPi * (1 - std::cos(capRadius)) * kDeg2PerSr;
    const Eigen::Vector3d centerVec = center.vector();
    auto inCap = [&](const Eigen::Vector3d& v) { return std::atan2(centerVec.cross(v).norm(), centerVec.dot(v)) <= capRadius; };
    std::vector<SimObject> out;
    std::int64_t nextId = 1;

    // ---- real stars
    std::vector<std::string> files;
    if (!config.referenceStarsFile.empty()) files.push_back(config.referenceStarsFile);
    files.insert(files.end(), config.extraReferenceStarsFiles.begin(), config.extraReferenceStarsFiles.end());
    std::vector<ReferenceStar> refStars;
    std::unordered_set<std::int64_t> seenSourceIds;
    for (const auto& path : files) {
        for (auto& s : readReferenceStars(path)) {
            if (s.object.referenceSourceId != 0 && !seenSourceIds.insert(s.object.referenceSourceId).second) continue;
            refStars.push_back(std::move(s));
        }
    }
    // Coverage: trixels holding reference stars, at the finest level where occupied trixels hold >= 10 on average.
    std::unordered_set<std::uint64_t> covered;
    int coverageLevel = 4;
    if (!refStars.empty()) {
        for (int level = 12; level >= 4; --level) {
            HtmPixelization htm(level);
            std::unordered_set<std::uint64_t> occ;
            for (const auto& s : refStars) occ.insert(htm.index(s.vector));
            coverageLevel = level;
            covered = std::move(occ);
            if (double(refStars.size()) / double(covered.size()) >= 10.0) break;
        }
    }
    const HtmPixelization coverageHtm(coverageLevel);
    for (const auto& s : refStars) {
        if (!inCap(s.vector)) continue;
        out.push_back(s.object);
        out.back().id = nextId++;
    }

    // ---- synthetic stars
    {
        SimRng rng(mixSeed(config.seed, 1));
        const std::int64_t n = rng.poisson(config.starDensityPerDeg2 * areaDeg2);
        for (std::int64_t k = 0; k < n; ++k) {
            const SpherePoint p = uniformInCap(rng, center, config.radiusDeg);
            const double r = powerLawMag(rng, config.starMagBright, config.starMagFaint, config.starCountSlope);
            // colour: 70% disk/halo turn-off stars, 30% M dwarfs
            const double gi = rng.uniform() < 0.7 ? std::clamp(0.75 + 0.25 * rng.normal(), -0.4, 1.6) : rng.uniform(1.6, 3.2);
            const double vScale = rng.uniform() < config.starHighVelocityFraction ? 5.0 : 1.0;
            const double vt = config.starTangentialVelocityKms * vScale * std::exp(0.4 * rng.normal());
            const double pmAngle = 2 * kPi * rng.uniform();
            const bool variable = rng.uniform() < config.variableFraction;
            const double period = config.variablePeriodMinDays *
                                  std::pow(config.variablePeriodMaxDays / config.variablePeriodMinDays, rng.uniform());
            const double amplitude = rng.uniform(config.variableAmplitudeMinMag, config.variableAmplitudeMaxMag);
            const double phase = rng.uniform();
            if (!covered.empty() && r <= config.referenceCompletenessMag && covered.count(coverageHtm.index(p)))
                continue;  // the reference file already holds the bright stars here
            SimObject o;
            o.id = nextId++;
            o.type = variable ? ObjectType::VariableStar : ObjectType::Star;
            o.raDeg = p.ra().asDegrees();
            o.decDeg = p.dec().asDegrees();
            o.epochMjd = config.epochMjd;
            o.mag = stellarLocus(r, gi);
            const double distancePc = std::pow(10.0, (r - absoluteMagR(gi) + 5) / 5);
            o.parallaxMas = 1000.0 / distancePc;
            const double mu = vt * o.parallaxMas / 4.74047;  // mas/yr
            o.pmRaMasPerYr = mu * std::sin(pmAngle);
            o.pmDecMasPerYr = mu * std::cos(pmAngle);
            if (variable) {
                o.periodDays = period;
                o.amplitudeMag = amplitude;
                o.phase = phase;
            }
            out.push_back(o);
        }
    }

    // ---- galaxies (and blended companions)
    std::vector<std::size_t> galaxyIndex;
    {
        SimRng rng(mixSeed(config.seed, 2));
        auto makeGalaxy = [&](const SpherePoint& p, double r) {
            SimObject o;
            o.type = ObjectType::Galaxy;
            o.raDeg = p.ra().asDegrees();
            o.decDeg = p.dec().asDegrees();
            o.epochMjd = config.epochMjd;
            const double t = std::clamp((r - config.galaxyMagBright) / (config.galaxyMagFaint - config.galaxyMagBright), 0.0, 1.0);
            const bool red = rng.uniform() < config.redFractionBright + t * (config.redFractionFaint - config.redFractionBright);
            // colours: red sequence vs blue cloud, with a common shift mimicking redshift
            const double z = rng.normal();
            const double s = red ? 0.06 : 0.15;
            const std::array<double, 5> base = red ? std::array<double, 5>{1.8, 0.9, 0.45, 0.3, 0.15}
                                                   : std::array<double, 5>{0.8, 0.4, 0.25, 0.15, 0.1};
            const double ug = base[0] + s * (rng.normal() + 0.5 * z), gr = base[1] + s * (rng.normal() + 0.5 * z);
            const double ri = base[2] + s * (rng.normal() + 0.5 * z), iz = base[3] + 0.7 * s * rng.normal();
            const double zy = base[4] + 0.5 * s * rng.normal();
            o.mag = {r + gr + ug, r + gr, r, r - ri, r - ri - iz, r - ri - iz - zy};
            const double hlr = config.galaxyHlrAtMag20Arcsec * (red ? 0.8 : 1.1) *
                               std::pow(10.0, config.galaxyHlrSlopeDexPerMag * (r - 20) + config.galaxyHlrScatterDex * rng.normal());
            o.bulgeFraction = red ? rng.uniform(0.6, 1.0) : rng.uniform(0.0, 0.3);
            o.diskHlrArcsec = red ? 1.3 * hlr : hlr;
            o.bulgeHlrArcsec = red ? 0.8 * hlr : 0.5 * hlr;
            ellipticityDraw(rng, config.galaxyEllipticityRms, o.e1, o.e2);
            return o;
        };
        const std::int64_t n = rng.poisson(config.galaxyDensityPerDeg2 * areaDeg2);
        for (std::int64_t k = 0; k < n; ++k) {
            const SpherePoint p = uniformInCap(rng, center, config.radiusDeg);
            const double r = powerLawMag(rng, config.galaxyMagBright, config.galaxyMagFaint, config.galaxyCountSlope);
            SimObject o = makeGalaxy(p, r);
            o.id = nextId++;
            galaxyIndex.push_back(out.size());
            out.push_back(o);
            if (rng.uniform() < config.blendFraction) {
                const double sep = rng.uniform(config.blendSeparationMinArcsec, config.blendSeparationMaxArcsec);
                const SpherePoint q = p.offset(Angle::fromRadians(2 * kPi * rng.uniform()), sep * arcseconds);
                SimObject c = makeGalaxy(q, r + rng.uniform(0.0, 2.0));
                c.id = nextId++;
                c.blendPartnerId = o.id;
                galaxyIndex.push_back(out.size());
                out.push_back(c);
            }
        }
    }

    // ---- transients
    {
        SimRng rng(mixSeed(config.seed, 3));
        const std::int64_t n = rng.poisson(config.transientsPerDeg2 * areaDeg2);
        for (std::int64_t k = 0; k < n; ++k) {
            SimObject o;
            o.type = ObjectType::Transient;
            SpherePoint p;
            if (!galaxyIndex.empty()) {
                const SimObject& host = out[galaxyIndex[rng.next() % galaxyIndex.size()]];
                o.hostId = host.id;
                const double offsetArcsec = host.diskHlrArcsec * std::fabs(rng.normal());
                p = SpherePoint::fromDegrees(host.raDeg, host.decDeg)
                        .offset(Angle::fromRadians(2 * kPi * rng.uniform()), offsetArcsec * arcseconds);
            } else {
                p = uniformInCap(rng, center, config.radiusDeg);
            }
            o.raDeg = p.ra().asDegrees();
            o.decDeg = p.dec().asDegrees();
            o.epochMjd = config.epochMjd;
            const double peak = rng.uniform(config.transientPeakMagBright, config.transientPeakMagFaint);
            const std::array<double, 6> colour = {0.5, -0.05, 0.0, 0.3, 0.4, 0.5};  // SN-like peak colours vs r
            for (int b = 0; b < 6; ++b) o.mag[b] = peak + colour[b] + 0.05 * rng.normal();
            o.peakMjd = rng.uniform(config.timeStartMjd, config.timeEndMjd);
            o.riseDays = rng.uniform(12.0, 20.0);
            o.declineDays = rng.uniform(20.0, 40.0);
            o.id = nextId++;
            out.push_back(o);
        }
    }

    // ---- asteroids
    {
        SimRng rng(mixSeed(config.seed, 4));
        const std::int64_t n = rng.poisson(config.asteroidsPerDeg2 * areaDeg2);
        for (std::int64_t k = 0; k < n; ++k) {
            SimObject o;
            o.type = ObjectType::Asteroid;
            const SpherePoint p = uniformInCap(rng, center, config.radiusDeg);
            o.raDeg = p.ra().asDegrees();
            o.decDeg = p.dec().asDegrees();
            o.epochMjd = rng.uniform(config.timeStartMjd, config.timeEndMjd);
            const double rate = rng.uniform(config.asteroidRateMinDegPerDay, config.asteroidRateMaxDegPerDay);
            const double pa = 2 * kPi * rng.uniform();
            o.rateRaDegPerDay = rate * std::sin(pa);
            o.rateDecDegPerDay = rate * std::cos(pa);
            const double r = rng.uniform(config.asteroidMagBright, config.asteroidMagFaint);
            const std::array<double, 6> colour = {1.95, 0.5, 0.0, -0.15, -0.15, -0.15};  // solar-like reflectance
            for (int b = 0; b < 6; ++b) o.mag[b] = r + colour[b];
            o.id = nextId++;
            out.push_back(o);
        }
    }
    return out;
}

double magnitudeAt(const SimObject& o, int bandIndex, double mjd) {
    if (bandIndex < 0 || bandIndex >= 6) throw InvalidInputError("magnitudeAt: band index must be in [0, 5]");
    const double m = o.mag[static_cast<std::size_t>(bandIndex)];
    switch (o.type) {
        case ObjectType::VariableStar: {
            static constexpr std::array<double, 6> scale = {1.4, 1.25, 1.0, 0.85, 0.75, 0.7};
            double ph = mjd / o.periodDays + o.phase;
            ph -= std::floor(ph);
            // phase 0 = maximum light; slow decline over 80% of the cycle, fast rise over 20%; mean offset 0.
            constexpr double w = 0.2;
            const double d = ph < 1 - w ? -std::cos(kPi * ph / (1 - w)) : std::cos(kPi * (ph - (1 - w)) / w);
            return m + 0.5 * o.amplitudeMag * scale[static_cast<std::size_t>(bandIndex)] * d;
        }
        case ObjectType::Transient: {
            const double t0 = o.peakMjd - o.riseDays;
            if (mjd <= t0) return std::numeric_limits<double>::infinity();
            if (mjd <= o.peakMjd) return m - 5.0 * std::log10((mjd - t0) / o.riseDays);
            static constexpr std::array<double, 6> declineScale = {0.6, 0.8, 1.0, 1.3, 1.4, 1.5};
            return m + 2.5 / std::log(10.0) * (mjd - o.peakMjd) /
                           (o.declineDays * declineScale[static_cast<std::size_t>(bandIndex)]);
        }
        default:
            return m;
    }
}

SpherePoint positionAt(const SimObject& o, double mjd) {
    const SpherePoint p0 = SpherePoint::fromDegrees(o.raDeg, o.decDeg);
    switch (o.type) {
        case ObjectType::Star:
        case ObjectType::VariableStar: {
            const SpherePoint p = propagate(p0, o.pmRaMasPerYr, o.pmDecMasPerYr, o.parallaxMas, o.epochMjd, mjd);
            return parallaxOffset(p, o.parallaxMas, mjd);
        }
        case ObjectType::Asteroid: {
            const double dt = mjd - o.epochMjd;
            const double rate = std::hypot(o.rateRaDegPerDay, o.rateDecDegPerDay);
            if (rate == 0 || dt == 0) return p0;
            Angle pa = Angle::fromRadians(std::atan2(o.rateRaDegPerDay, o.rateDecDegPerDay));
            if (dt < 0) pa = pa + Angle::fromRadians(kPi);
            return p0.offset(pa, rate * std::fabs(dt) * degrees);
        }
        default:
            return p0;
    }
}

}  // namespace drp
