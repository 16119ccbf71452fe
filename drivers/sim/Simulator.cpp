#include "drivers/sim/Simulator.h"
#include "drivers/sim/SimRandom.h"

#include <array>
#include <Eigen/Dense>
#include <chrono>
#include <cmath>
#include <random>

#include "core/Error.h"
#include "core/Log.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"

namespace drp {
namespace {

constexpr double kAbMagOfOneNjy = 31.4;  // AB magnitude of 1 nJy
constexpr const char* kBands = "ugrizy";

double magToNjy(double mag) { return std::pow(10.0, -0.4 * (mag - kAbMagOfOneNjy)); }


/// Local Jacobian d(pixel)/d(offset arcsec east, north) of a WCS at a pixel.
Eigen::Matrix2d pixelsPerArcsec(const Wcs& wcs, Point2D p) {
    SpherePoint c = wcs.pixelToSky(p);
    Eigen::Matrix2d m;  // arcsec per pixel: columns = d(east, north)/dx, d(east, north)/dy
    for (int axis = 0; axis < 2; ++axis) {
        Point2D q = axis == 0 ? Point2D{p.x + 1.0, p.y} : Point2D{p.x, p.y + 1.0};
        SpherePoint s = wcs.pixelToSky(q);
        Angle bearing = c.bearingTo(s);
        double dist = c.separation(s).asArcseconds();
        m(0, axis) = dist * std::sin(bearing.asRadians());  // east
        m(1, axis) = dist * std::cos(bearing.asRadians());  // north
    }
    return m.inverse();
}

struct TruthKeys {
    Schema schema;
    Key<std::int64_t> id;
    Key<std::int32_t> type;
    Key<double> ra, dec, x, y, mag, fluxNjy, electrons, electronsInImage, xEnd, yEnd;
    TruthKeys() {
        id = schema.addField<std::int64_t>("id", "simulated object id (objects truth table)");
        type = schema.addField<std::int32_t>("type", "object type: 0 star, 1 galaxy, 2 variable star, 3 transient, 4 asteroid");
        ra = schema.addField<double>("ra", "true ICRS right ascension at the exposure mid-time", "deg");
        dec = schema.addField<double>("dec", "true ICRS declination at the exposure mid-time", "deg");
        x = schema.addField<double>("x", "true centroid x on the detector (trail start for asteroids)", "pixel");
        y = schema.addField<double>("y", "true centroid y on the detector (trail start for asteroids)", "pixel");
        xEnd = schema.addField<double>("xEnd", "trail end x (asteroids; = x otherwise)", "pixel");
        yEnd = schema.addField<double>("yEnd", "trail end y (asteroids; = y otherwise)", "pixel");
        mag = schema.addField<double>("mag", "true AB magnitude in the band at the exposure mid-time", "mag");
        fluxNjy = schema.addField<double>("flux", "true flux above the atmosphere", "nJy");
        electrons = schema.addField<double>("electrons", "expected photo-electrons of the source (before flat)", "electron");
        electronsInImage = schema.addField<double>("electronsInImage", "photo-electrons that landed on the detector", "electron");
    }
};

const TruthKeys& truthKeys() {
    static const TruthKeys keys;
    return keys;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
SimContext::SimContext(SimConfig config) : config_(std::move(config)) {
    registerMoffatPsf();
    camera_ = config_.makeCamera();
    SkyModelConfig sky = config_.sky;
    sky.seed = config_.skySeed();
    objects_ = makeSkyCatalog(sky);
    visits_ = makeObservingPlan(config_.observing, config_.planSeed());
    pixelScaleArcsec_ = camera_->plateScaleArcsecPerMm() * config_.camera.pixelSizeMicrons / 1000.0;
    for (const auto& det : camera_->detectors())
        for (const Point2D& c : det->focalPlaneCorners())
            focalPlaneRadiusMm_ = std::max(focalPlaneRadiusMm_, std::hypot(c.x, c.y));
}

const DetectorInstrument& SimContext::instrument(int detectorId) const {
    auto it = instruments_.find(detectorId);
    if (it == instruments_.end()) {
        // Keep at most two detectors' instrument truth (a full-size one holds ~200 MB of maps); quanta
        // come sorted by detector, so older ones are not needed again.
        while (instruments_.size() >= 2) {
            auto victim = instruments_.begin();
            if (victim->first == detectorId) ++victim;
            instruments_.erase(victim);
        }
        InstrumentConfig ic = config_.instrumentModel;
        ic.seed = config_.instrumentSeed();
        it = instruments_
                 .emplace(detectorId, std::make_unique<DetectorInstrument>(camera_->detector(detectorId), ic,
                                                                           focalPlaneRadiusMm_))
                 .first;
    }
    return *it->second;
}

std::shared_ptr<const Psf> truePsf(const SimContext& ctx, const VisitPlan& visit, const Detector& det) {
    // Fit fwhm, e1, e2 (quadratic in the MoffatPsf's u, v) to the focal-plane model on a 5x5 grid.
    const Box2I box = det.bbox();
    const double cx = box.minX() + 0.5 * (box.width() - 1), cy = box.minY() + 0.5 * (box.height() - 1);
    const double hx = 0.5 * box.width(), hy = 0.5 * box.height();
    Eigen::MatrixXd a(25, 6);
    Eigen::MatrixXd rhs(25, 3);
    int row = 0;
    for (int j = 0; j < 5; ++j)
        for (int i = 0; i < 5; ++i, ++row) {
            double u = -1.0 + 0.5 * i, v = -1.0 + 0.5 * j;
            Point2D pix{cx + u * hx, cy + v * hy};
            PsfAtPosition p = psfAt(visit, det.pixelToFocalPlane(pix), ctx.config().observing);
            a.row(row) << 1.0, u, v, u * u, u * v, v * v;
            rhs(row, 0) = p.fwhmArcsec / ctx.pixelScaleArcsec();
            rhs(row, 1) = p.e1;
            rhs(row, 2) = p.e2;
        }
    Eigen::MatrixXd coeffs = a.colPivHouseholderQr().solve(rhs);
    std::array<double, 6> f{}, e1{}, e2{};
    for (int k = 0; k < 6; ++k) {
        f[std::size_t(k)] = coeffs(k, 0);
        e1[std::size_t(k)] = coeffs(k, 1);
        e2[std::size_t(k)] = coeffs(k, 2);
    }
    return MoffatPsf::make(box, ctx.config().psfBeta, f, e1, e2);
}

std::shared_ptr<const Psf> truePsfFromMetadata(const PropertyList& md, const Box2I& bbox) {
    if (md.getString("PSFTYPE", "") != MoffatPsf::kTypeName || !md.has("PSFBETA")) return nullptr;
    std::array<double, 6> f{}, e1{}, e2{};
    for (std::size_t c = 0; c < 6; ++c) {
        const std::string k = std::to_string(c);
        f[c] = md.getDouble("PSFFWHM" + k);
        e1[c] = md.getDouble("PSFE1_" + k);
        e2[c] = md.getDouble("PSFE2_" + k);
    }
    return MoffatPsf::make(bbox, md.getDouble("PSFBETA"), f, e1, e2);
}

SimulatedExposure simulateScienceExposure(const SimContext& ctx, std::size_t visitIndex, int detectorId,
                                          bool keepIncident) {
    const SimConfig& cfg = ctx.config();
    const VisitPlan& visit = ctx.visits().at(visitIndex);
    const Detector& det = ctx.camera().detector(detectorId);
    const int bandIndex = simBandIndex(visit.band);
    SimulatedExposure out;
    out.trueWcs = trueWcs(visit, ctx.camera(), det, cfg.observing);
    out.psf = truePsf(ctx, visit, det);
    const Wcs& wcs = *out.trueWcs;
    const Box2I box = det.bbox();

    // Sky: linear in focal-plane position, hence in pixels; evaluate at three points.
    ImageF incident(box, 0.0f);
    auto sky = [&](double x, double y) {
        return skyElectronsPerPixel(visit, det.pixelToFocalPlane({x, y}), ctx.pixelScaleArcsec(), cfg.observing);
    };
    const double s0 = sky(box.minX(), box.minY());
    const double sx = (sky(box.maxX(), box.minY()) - s0) / std::max(1, box.width() - 1);
    const double sy = (sky(box.minX(), box.maxY()) - s0) / std::max(1, box.height() - 1);
    for (int y = 0; y < box.height(); ++y) {
        float* r = incident.row(y);
        for (int x = 0; x < box.width(); ++x) r[x] = float(std::max(0.0, s0 + sx * x + sy * y));
    }

    // Objects: cheap sky-distance cut, then the exact WCS.
    const SpherePoint centre = wcs.pixelToSky({box.minX() + 0.5 * (box.width() - 1), box.minY() + 0.5 * (box.height() - 1)});
    const double halfDiagonalArcsec = 0.5 * std::hypot(box.width(), box.height()) * ctx.pixelScaleArcsec();
    const Angle reach = (halfDiagonalArcsec + 120.0) * arcseconds;
    const double margin = 64.0;  // pixels: light from sources just off the detector still lands on it
    const Box2I near = box.grow(int(margin));
    const TruthKeys& k = truthKeys();
    Table truth(k.schema);
    const double halfExposureDays = 0.5 * visit.exposureTimeS / 86400.0;
    for (const SimObject& obj : ctx.objects()) {
        SpherePoint pos = positionAt(obj, visit.mjd);
        double extraReach = obj.type == ObjectType::Asteroid
                                ? std::hypot(obj.rateRaDegPerDay, obj.rateDecDegPerDay) * 3600.0 * halfExposureDays
                                : 0.0;
        if (centre.separation(pos).asArcseconds() > reach.asArcseconds() + extraReach) continue;
        Point2D p = wcs.skyToPixel(pos);
        if (!std::isfinite(p.x) || !near.contains(Point2I{int(std::floor(p.x)), int(std::floor(p.y))})) {
            if (obj.type != ObjectType::Asteroid) continue;
        }
        double mag = magnitudeAt(obj, bandIndex, visit.mjd);
        if (!std::isfinite(mag)) continue;  // a transient before its explosion
        double electrons = sourceElectrons(mag, visit, detectorId, cfg.observing, cfg.planSeed());
        double added = 0.0;
        Point2D pEnd = p;
        switch (obj.type) {
            case ObjectType::Star:
            case ObjectType::VariableStar:
            case ObjectType::Transient:
                added = addPointSource(incident, p, electrons, *out.psf);
                break;
            case ObjectType::Galaxy: {
                GalaxyShape shape;
                shape.bulgeFraction = obj.bulgeFraction;
                shape.bulgeHalfLightRadiusArcsec = std::max(obj.bulgeHlrArcsec, 1e-3);
                shape.diskHalfLightRadiusArcsec = std::max(obj.diskHlrArcsec, 1e-3);
                shape.e1 = obj.e1;
                shape.e2 = obj.e2;
                added = addGalaxy(incident, p, electrons, shape, pixelsPerArcsec(wcs, p), *out.psf, cfg.render);
                break;
            }
            case ObjectType::Asteroid: {
                Point2D a = wcs.skyToPixel(positionAt(obj, visit.mjd - halfExposureDays));
                Point2D b = wcs.skyToPixel(positionAt(obj, visit.mjd + halfExposureDays));
                if (!std::isfinite(a.x) || !std::isfinite(b.x)) continue;
                Box2D trailBox = Box2D().include(a).include(b);
                Box2D grown({trailBox.minX() - 1.0, trailBox.minY() - 1.0}, {trailBox.maxX() + 1.0, trailBox.maxY() + 1.0});
                if (Box2D(near).intersection(grown).empty()) continue;
                added = addTrail(incident, a, b, electrons, *out.psf, cfg.render);
                p = a;
                pEnd = b;
                break;
            }
        }
        std::size_t r = truth.addRow();
        truth.at(k.id, r) = obj.id;
        truth.at(k.type, r) = std::int32_t(obj.type);
        truth.at(k.ra, r) = pos.ra().asDegrees();
        truth.at(k.dec, r) = pos.dec().asDegrees();
        truth.at(k.x, r) = p.x;
        truth.at(k.y, r) = p.y;
        truth.at(k.xEnd, r) = pEnd.x;
        truth.at(k.yEnd, r) = pEnd.y;
        truth.at(k.mag, r) = mag;
        truth.at(k.fluxNjy, r) = magToNjy(mag);
        truth.at(k.electrons, r) = electrons;
        truth.at(k.electronsInImage, r) = added;
    }

    // The instrument, and the header a camera would write.
    const DetectorInstrument& instr = ctx.instrument(detectorId);
    out.raw = instr.simulate(incident, visit.exposureTimeS, visit.exposureTimeS, visit.band, ExposureKind::Science,
                             mixSeed(cfg.seed, std::uint64_t(visit.visit), std::uint64_t(detectorId)));
    VisitInfo& vi = out.raw.visitInfo;
    vi.exposureTimeS = visit.exposureTimeS;
    vi.darkTimeS = visit.exposureTimeS;
    vi.midExposureMjdTai = visit.mjd;
    vi.boresightRaDec = visit.commandedBoresight;
    vi.boresightRotAngle = visit.commandedRotation;
    vi.boresightAirmass = visit.airmass;
    vi.band = visit.band;
    vi.physicalFilter = visit.band + "_sim";
    vi.instrument = cfg.instrument;
    vi.visit = visit.visit;
    vi.dayObs = visit.dayObs;
    out.raw.headerWcs = headerWcs(visit, ctx.camera(), det, cfg.observing);
    out.raw.metadata.set("IMGTYPE", "science", "exposure type");

    PropertyList& md = truth.metadata();
    md.set("VISIT", visit.visit);
    md.set("DETECTOR", detectorId);
    md.set("BAND", visit.band);
    md.set("THRUPUT", detectorThroughputOffsetMag(cfg.observing, detectorId, visit.band, cfg.planSeed()),
           "true detector throughput offset, mag");
    md.set("ELPERNJY", sourceElectrons(kAbMagOfOneNjy, visit, detectorId, cfg.observing, cfg.planSeed()),
           "true photo-electrons per nJy (extinction, clouds, throughput included)");
    md.set("SKYELEC", s0, "sky e-/pixel at the first pixel");
    md.set("SKYDX", sx, "sky gradient, e-/pixel per pixel in x");
    md.set("SKYDY", sy, "sky gradient, e-/pixel per pixel in y");
    md.set("PSFTYPE", out.psf->typeName());
    // The true PSF: Moffat beta and the quadratic coefficients (1, u, v, u^2, uv, v^2 over the detector,
    // u = (x - cx) / (W/2)) of its FWHM (pixels) and ellipticity; Psf::fromRecord rebuilds it exactly.
    if (const auto* moffat = dynamic_cast<const MoffatPsf*>(out.psf.get())) {
        md.set("PSFBETA", moffat->beta(), "true PSF Moffat beta");
        for (int c = 0; c < 6; ++c) {
            md.set("PSFFWHM" + std::to_string(c), moffat->fwhmCoefficients()[std::size_t(c)], "true PSF FWHM coefficient (pixels)");
            md.set("PSFE1_" + std::to_string(c), moffat->e1Coefficients()[std::size_t(c)], "true PSF e1 coefficient");
            md.set("PSFE2_" + std::to_string(c), moffat->e2Coefficients()[std::size_t(c)], "true PSF e2 coefficient");
        }
    }
    if (keepIncident) out.incident = incident;
    out.truth = std::move(truth);
    return out;
}

}  // namespace drp
