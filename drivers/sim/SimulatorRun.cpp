// runSimulation: the quanta of a simulation, dealt round-robin over MPI ranks, each writing its
// datasets into the repository; failures are recorded per quantum and the run goes on.
#include <chrono>
#include <cmath>
#include <random>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/sim/Simulator.h"
#include "drivers/sim/SimRandom.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/Hdf5File.h"
#include "io/RawFits.h"
#include "io/Repository.h"
#include "sky/HtmPixelization.h"
#include "sky/ReferenceCatalog.h"

namespace drp {
namespace {

constexpr double kAbMagOfOneNjy = 31.4;
const std::vector<std::string> kAllBands = {"u", "g", "r", "i", "z", "y"};


enum class QuantumKind { Global, Refcat, InstrumentTruth, FlatTruth, Calibration, Science };

struct Quantum {
    QuantumKind kind = QuantumKind::Global;
    int detector = -1;
    std::size_t visitIndex = 0;  // Science
    ExposureKind calibKind = ExposureKind::Bias;
    std::string band{};
    int index = 0;               // calibration sequence number
    std::uint64_t shard = 0;     // refcat shard
};

Quantum makeQuantum(QuantumKind kind, int detector = -1) {
    Quantum q;
    q.kind = kind;
    q.detector = detector;
    return q;
}

/// Calibration exposure ids: dayObs*100000 + 90000 (bias), 91000 (dark), 92000 + 1000*band (flat) + k.
std::int64_t calibrationExposureId(std::int64_t dayObs, ExposureKind kind, const std::string& band, int k) {
    std::int64_t base = dayObs * 100000 + 90000;
    switch (kind) {
        case ExposureKind::Bias: return base + k;
        case ExposureKind::Dark: return base + 1000 + k;
        case ExposureKind::Flat: return base + 2000 + 1000 * simBandIndex(band) + k;
        case ExposureKind::Science: break;
    }
    throw LogicError("not a calibration exposure kind");
}

Table objectsTable(const std::vector<SimObject>& objects) {
    Schema s;
    auto id = s.addField<std::int64_t>("id", "simulated object id");
    auto type = s.addField<std::int32_t>("type", "0 star, 1 galaxy, 2 variable star, 3 transient, 4 asteroid");
    auto ra = s.addField<double>("ra", "ICRS right ascension at epoch", "deg");
    auto dec = s.addField<double>("dec", "ICRS declination at epoch", "deg");
    auto epoch = s.addField<double>("epoch", "epoch of ra, dec", "MJD");
    auto pmRa = s.addField<double>("pmRa", "proper motion in ra (times cos dec)", "mas/yr");
    auto pmDec = s.addField<double>("pmDec", "proper motion in dec", "mas/yr");
    auto plx = s.addField<double>("parallax", "parallax", "mas");
    std::vector<Key<double>> mags;
    for (const auto& b : kAllBands)
        mags.push_back(s.addField<double>(b + "_mag", "AB magnitude in " + b + " (mean for variables, peak for transients)", "mag"));
    auto bf = s.addField<double>("bulgeFraction", "bulge (n=4) flux fraction");
    auto bh = s.addField<double>("bulgeHlr", "bulge half-light radius", "arcsec");
    auto dh = s.addField<double>("diskHlr", "disk (n=1) half-light radius", "arcsec");
    auto e1 = s.addField<double>("e1", "ellipticity component 1 (distortion)");
    auto e2 = s.addField<double>("e2", "ellipticity component 2 (distortion)");
    auto per = s.addField<double>("period", "variable period", "day");
    auto amp = s.addField<double>("amplitude", "variable peak-to-peak amplitude in r", "mag");
    auto pha = s.addField<double>("phase", "variable phase at MJD 0");
    auto peak = s.addField<double>("peakMjd", "transient peak time", "MJD");
    auto rise = s.addField<double>("riseDays", "transient rise time", "day");
    auto decl = s.addField<double>("declineDays", "transient decline e-folding time in r", "day");
    auto host = s.addField<std::int64_t>("hostId", "transient host galaxy id (0: none)");
    auto rra = s.addField<double>("rateRa", "asteroid rate in ra (times cos dec)", "deg/day");
    auto rdec = s.addField<double>("rateDec", "asteroid rate in dec", "deg/day");
    auto blend = s.addField<std::int64_t>("blendPartnerId", "galaxy this one was placed next to (0: none)");
    auto ref = s.addField<std::int64_t>("referenceSourceId", "source id in the reference-stars file (0: synthetic)");
    Table t(s, objects.size());
    for (std::size_t i = 0; i < objects.size(); ++i) {
        const SimObject& o = objects[i];
        t.at(id, i) = o.id;
        t.at(type, i) = std::int32_t(o.type);
        t.at(ra, i) = o.raDeg;
        t.at(dec, i) = o.decDeg;
        t.at(epoch, i) = o.epochMjd;
        t.at(pmRa, i) = o.pmRaMasPerYr;
        t.at(pmDec, i) = o.pmDecMasPerYr;
        t.at(plx, i) = o.parallaxMas;
        for (std::size_t b = 0; b < 6; ++b) t.at(mags[b], i) = o.mag[b];
        t.at(bf, i) = o.bulgeFraction;
        t.at(bh, i) = o.bulgeHlrArcsec;
        t.at(dh, i) = o.diskHlrArcsec;
        t.at(e1, i) = o.e1;
        t.at(e2, i) = o.e2;
        t.at(per, i) = o.periodDays;
        t.at(amp, i) = o.amplitudeMag;
        t.at(pha, i) = o.phase;
        t.at(peak, i) = o.peakMjd;
        t.at(rise, i) = o.riseDays;
        t.at(decl, i) = o.declineDays;
        t.at(host, i) = o.hostId;
        t.at(rra, i) = o.rateRaDegPerDay;
        t.at(rdec, i) = o.rateDecDegPerDay;
        t.at(blend, i) = o.blendPartnerId;
        t.at(ref, i) = o.referenceSourceId;
    }
    return t;
}

Table visitsTable(const std::vector<VisitPlan>& visits) {
    Schema s;
    auto visit = s.addField<std::int64_t>("visit", "visit (exposure) id");
    auto band = s.addField<std::string>("band", "band");
    auto dayObs = s.addField<std::int64_t>("dayObs", "observing day YYYYMMDD");
    auto mjd = s.addField<double>("mjd", "mid-exposure time", "MJD");
    auto exptime = s.addField<double>("exposureTime", "exposure time", "s");
    auto ra = s.addField<double>("boresightRa", "TRUE boresight right ascension", "deg");
    auto dec = s.addField<double>("boresightDec", "TRUE boresight declination", "deg");
    auto rot = s.addField<double>("rotation", "TRUE rotSkyPos", "deg");
    auto cra = s.addField<double>("commandedRa", "commanded (header) boresight right ascension", "deg");
    auto cdec = s.addField<double>("commandedDec", "commanded (header) boresight declination", "deg");
    auto crot = s.addField<double>("commandedRotation", "commanded (header) rotSkyPos", "deg");
    auto pera = s.addField<double>("pointingErrorRa", "commanded - true pointing, east", "arcsec");
    auto pedec = s.addField<double>("pointingErrorDec", "commanded - true pointing, north", "arcsec");
    auto rerr = s.addField<double>("rotationError", "commanded - true rotation", "deg");
    auto seeing = s.addField<double>("seeing", "PSF FWHM on the optical axis", "arcsec");
    auto airmass = s.addField<double>("airmass", "airmass of the boresight");
    auto ext = s.addField<double>("extinction", "atmospheric extinction (k X)", "mag");
    auto cloud = s.addField<double>("cloud", "grey cloud extinction", "mag");
    auto sky = s.addField<double>("skyBrightness", "sky brightness on the axis", "mag/arcsec^2");
    auto e1 = s.addField<double>("psfE1", "PSF ellipticity e1 on the axis");
    auto e2 = s.addField<double>("psfE2", "PSF ellipticity e2 on the axis");
    Table t(s, visits.size());
    for (std::size_t i = 0; i < visits.size(); ++i) {
        const VisitPlan& v = visits[i];
        t.at(visit, i) = v.visit;
        t.at(band, i) = v.band;
        t.at(dayObs, i) = v.dayObs;
        t.at(mjd, i) = v.mjd;
        t.at(exptime, i) = v.exposureTimeS;
        t.at(ra, i) = v.boresight.ra().asDegrees();
        t.at(dec, i) = v.boresight.dec().asDegrees();
        t.at(rot, i) = v.rotation.asDegrees();
        t.at(cra, i) = v.commandedBoresight.ra().asDegrees();
        t.at(cdec, i) = v.commandedBoresight.dec().asDegrees();
        t.at(crot, i) = v.commandedRotation.asDegrees();
        t.at(pera, i) = v.pointingErrorRaArcsec;
        t.at(pedec, i) = v.pointingErrorDecArcsec;
        t.at(rerr, i) = v.rotationErrorDeg;
        t.at(seeing, i) = v.seeingFwhmArcsec;
        t.at(airmass, i) = v.airmass;
        t.at(ext, i) = v.extinctionMag;
        t.at(cloud, i) = v.cloudMag;
        t.at(sky, i) = v.skyMagPerArcsec2;
        t.at(e1, i) = v.psfE1;
        t.at(e2, i) = v.psfE2;
    }
    return t;
}

/// The reference catalog: stars brighter than the limit, at the catalog epoch, with noise drawn per
/// object (seeded by its id, so shards are independent of how they are dealt out).
Table referenceCatalog(const SimContext& ctx) {
    const SimConfig& cfg = ctx.config();
    Schema schema = referenceCatalogSchema(kAllBands);
    ReferenceCatalogKeys k(schema);
    Table t(schema);
    for (const SimObject& o : ctx.objects()) {
        if (o.type != ObjectType::Star && o.type != ObjectType::VariableStar) continue;
        const double r = o.mag[2];
        if (!(r <= cfg.refcatMagLimit)) continue;
        std::mt19937_64 rng(mixSeed(cfg.seed, std::uint64_t(o.id), std::uint64_t(99)));
        std::normal_distribution<double> n01(0.0, 1.0);
        const double scale = std::pow(10.0, 0.2 * (r - 17.0));
        const double posErr = cfg.refcatPositionErrorMas * scale, pmErr = cfg.refcatPmErrorMasPerYr * scale;
        SpherePoint truePos = SpherePoint::fromDegrees(o.raDeg, o.decDeg);
        double dEast = posErr * n01(rng), dNorth = posErr * n01(rng);
        SpherePoint pos = truePos.offset(Angle::fromRadians(std::atan2(dEast, dNorth)),
                                         std::hypot(dEast, dNorth) * milliarcseconds);
        std::size_t row = t.addRow();
        t.at(k.id, row) = o.id;
        t.at(k.ra, row) = pos.ra().asDegrees();
        t.at(k.dec, row) = pos.dec().asDegrees();
        t.at(k.raErr, row) = posErr;
        t.at(k.decErr, row) = posErr;
        t.at(k.epoch, row) = o.epochMjd;
        t.at(k.pmRa, row) = o.pmRaMasPerYr + pmErr * n01(rng);
        t.at(k.pmDec, row) = o.pmDecMasPerYr + pmErr * n01(rng);
        t.at(k.pmRaErr, row) = pmErr;
        t.at(k.pmDecErr, row) = pmErr;
        t.at(k.parallax, row) = o.parallaxMas + pmErr * n01(rng);
        t.at(k.parallaxErr, row) = pmErr;
        t.at(k.isStar, row) = true;
        for (std::size_t b = 0; b < k.bands.size(); ++b) {
            double fluxErrFrac = cfg.refcatFluxErrorFraction * std::pow(10.0, 0.2 * (o.mag[b] - 17.0));
            double flux = std::pow(10.0, -0.4 * (o.mag[b] - kAbMagOfOneNjy));
            t.at(k.flux[b], row) = flux * (1.0 + fluxErrFrac * n01(rng));
            t.at(k.fluxErr[b], row) = flux * fluxErrFrac;
        }
    }
    return t;
}

Table instrumentTables(const DetectorInstrument& instr, const Detector& det, Table* crosstalk, Table* defects,
                       Table* hotPixels) {
    Schema s;
    auto idx = s.addField<std::int32_t>("amp", "amplifier index in the detector");
    auto name = s.addField<std::string>("name", "amplifier name");
    auto gain = s.addField<double>("gain", "gain", "electron/adu");
    auto rn = s.addField<double>("readNoise", "read noise", "electron");
    auto bias = s.addField<double>("biasLevel", "mean bias level", "adu");
    auto nl = s.addField<double>("nonlinearity", "c of measured = x + c x^2 (x in e-)", "1/electron");
    auto sat = s.addField<double>("saturation", "raw level treated as saturated", "adu");
    Table amps(s, det.amplifiers().size());
    for (std::size_t a = 0; a < det.amplifiers().size(); ++a) {
        int ai = int(a);
        amps.at(idx, a) = ai;
        amps.at(name, a) = det.amplifiers()[a].name;
        amps.at(gain, a) = instr.gain(ai);
        amps.at(rn, a) = instr.readNoise(ai);
        amps.at(bias, a) = instr.biasLevel(ai);
        amps.at(nl, a) = instr.nonlinearity(ai);
        amps.at(sat, a) = instr.saturationAdu(ai);
    }
    Schema xs;
    auto victim = xs.addField<std::int32_t>("victim", "amplifier receiving the signal");
    auto source = xs.addField<std::int32_t>("source", "amplifier sending the signal");
    auto coeff = xs.addField<double>("coeff", "crosstalk coefficient", "adu/adu");
    *crosstalk = Table(xs);
    Eigen::MatrixXd m = instr.crosstalk();
    for (int v = 0; v < m.rows(); ++v)
        for (int so = 0; so < m.cols(); ++so) {
            if (m(v, so) == 0.0) continue;
            std::size_t r = crosstalk->addRow();
            crosstalk->at(victim, r) = v;
            crosstalk->at(source, r) = so;
            crosstalk->at(coeff, r) = m(v, so);
        }
    Schema ds;
    auto x0 = ds.addField<std::int32_t>("x0", "defect box min x", "pixel");
    auto y0 = ds.addField<std::int32_t>("y0", "defect box min y", "pixel");
    auto w = ds.addField<std::int32_t>("width", "defect box width", "pixel");
    auto h = ds.addField<std::int32_t>("height", "defect box height", "pixel");
    *defects = Table(ds);
    for (const Box2I& b : instr.defects()) {
        std::size_t r = defects->addRow();
        defects->at(x0, r) = b.minX();
        defects->at(y0, r) = b.minY();
        defects->at(w, r) = b.width();
        defects->at(h, r) = b.height();
    }
    Schema hs;
    auto hx = hs.addField<std::int32_t>("x", "hot pixel x", "pixel");
    auto hy = hs.addField<std::int32_t>("y", "hot pixel y", "pixel");
    auto rate = hs.addField<double>("darkRate", "dark current", "electron/s");
    *hotPixels = Table(hs);
    for (const Point2I& p : instr.hotPixels()) {
        std::size_t r = hotPixels->addRow();
        hotPixels->at(hx, r) = p.x;
        hotPixels->at(hy, r) = p.y;
        hotPixels->at(rate, r) = instr.darkRate().atParent(p);
    }
    return amps;
}

}  // namespace

SimSummary runSimulation(const SimConfig& config, Repository& repo, const std::string& run, const Communicator& comm,
                         const std::string& effectiveConfig) {
    auto t0 = std::chrono::steady_clock::now();
    SimContext ctx(config);
    const std::string& inst = config.instrument;
    const Camera& camera = ctx.camera();
    HtmPixelization htm(config.htmLevel);

    // The reference catalog, and its shards, computed identically on every rank.
    Table refcat = referenceCatalog(ctx);
    ReferenceCatalogKeys rk(refcat.schema());
    std::map<std::uint64_t, std::vector<std::size_t>> shardRows;
    for (std::size_t i = 0; i < refcat.size(); ++i)
        shardRows[htm.index(SpherePoint::fromDegrees(refcat.at(rk.ra, i), refcat.at(rk.dec, i)))].push_back(i);

    // Quanta, in a fixed order; science sorted by detector then band so flats stay cached.
    std::vector<Quantum> quanta;
    quanta.push_back(makeQuantum(QuantumKind::Global));
    for (const auto& [shard, rows] : shardRows) {
        Quantum q = makeQuantum(QuantumKind::Refcat);
        q.shard = shard;
        quanta.push_back(q);
    }
    const std::int64_t calibDayObs = ctx.visits().empty() ? 20000101 : ctx.visits().front().dayObs;
    std::vector<std::string> bands = config.observing.bands;
    for (const auto& det : camera.detectors()) {
        int d = det->id();
        auto calib = [&](ExposureKind kind, const std::string& band, int k) {
            Quantum q = makeQuantum(QuantumKind::Calibration, d);
            q.calibKind = kind;
            q.band = band;
            q.index = k;
            quanta.push_back(q);
        };
        quanta.push_back(makeQuantum(QuantumKind::InstrumentTruth, d));
        for (int k = 0; k < config.biasExposures; ++k) calib(ExposureKind::Bias, "", k);
        for (int k = 0; k < config.darkExposures; ++k) calib(ExposureKind::Dark, "", k);
        for (const auto& b : bands) {
            if (config.writeFlatTruth) {
                Quantum q = makeQuantum(QuantumKind::FlatTruth, d);
                q.band = b;
                quanta.push_back(q);
            }
            for (int k = 0; k < config.flatExposuresPerBand; ++k) calib(ExposureKind::Flat, b, k);
            for (std::size_t v = 0; v < ctx.visits().size(); ++v) {
                if (ctx.visits()[v].band != b) continue;
                Quantum q = makeQuantum(QuantumKind::Science, d);
                q.visitIndex = v;
                quanta.push_back(q);
            }
        }
    }

    SimSummary local;
    std::int64_t failures = 0;
    const std::size_t nq = quanta.size();
    for (std::size_t qi = std::size_t(comm.rank()); qi < nq; qi += std::size_t(comm.size())) {
        const Quantum& q = quanta[qi];
        DataId id;
        try {
            switch (q.kind) {
                case QuantumKind::Global: {
                    id = DataId{{"instrument", inst}};
                    LogContext ctxLog(id.toString());
                    repo.putBytes("simConfig", run, id, effectiveConfig);
                    repo.put("truthObjects", run, id, [&](const auto& p) { writeCatalog(p, "objects", objectsTable(ctx.objects())); });
                    repo.put("truthVisits", run, id, [&](const auto& p) { writeCatalog(p, "visits", visitsTable(ctx.visits())); });
                    local.objects = std::int64_t(ctx.objects().size());
                    break;
                }
                case QuantumKind::Refcat: {
                    id = DataId{{"htm", std::int64_t(q.shard)}};
                    LogContext ctxLog(id.toString());
                    Table shard = selectRows(refcat, shardRows.at(q.shard));
                    shard.metadata().set("HTMLEVEL", config.htmLevel);
                    shard.metadata().set("HTMID", std::int64_t(q.shard));
                    repo.put("refcat", run, id, [&](const auto& p) { writeCatalog(p, "refcat", shard); });
                    local.refcatShards += 1;
                    local.refcatStars += std::int64_t(shard.size());
                    break;
                }
                case QuantumKind::InstrumentTruth: {
                    id = DataId{{"instrument", inst}, {"detector", std::int64_t(q.detector)}};
                    LogContext ctxLog(id.toString());
                    const Detector& det = camera.detector(q.detector);
                    Table xt{Schema()}, defects{Schema()}, hot{Schema()};
                    Table amps = instrumentTables(ctx.instrument(q.detector), det, &xt, &defects, &hot);
                    repo.put("truthInstrument", run, id, [&](const std::filesystem::path& p) {
                        Hdf5File f(p, Hdf5File::Mode::Create);
                        writeTable(f, "amplifiers", amps);
                        writeTable(f, "crosstalk", xt);
                        writeTable(f, "defects", defects);
                        writeTable(f, "hotPixels", hot);
                    });
                    break;
                }
                case QuantumKind::FlatTruth: {
                    id = DataId{{"instrument", inst}, {"band", q.band}, {"detector", std::int64_t(q.detector)}};
                    LogContext ctxLog(id.toString());
                    const DetectorInstrument& instr = ctx.instrument(q.detector);
                    Exposure flat(instr.flat(q.band).bbox());
                    flat.maskedImage().image().assign(instr.flat(q.band));
                    MaskPixel bad = flat.mask().planeBitMask("BAD");
                    for (const Box2I& b : instr.defects()) flat.mask().subImage(b.intersection(flat.bbox())).setBits(bad);
                    flat.setDetector(q.detector);
                    repo.put("truthFlat", run, id, [&](const auto& p) { writeExposure(p, flat); });
                    break;
                }
                case QuantumKind::Calibration: {
                    std::int64_t exposureId = calibrationExposureId(calibDayObs, q.calibKind, q.band, q.index);
                    id = DataId{{"instrument", inst}, {"visit", exposureId}, {"detector", std::int64_t(q.detector)}};
                    if (q.calibKind == ExposureKind::Flat) id.set(Dimension::Band, q.band);
                    LogContext ctxLog(id.toString());
                    const Detector& det = camera.detector(q.detector);
                    const DetectorInstrument& instr = ctx.instrument(q.detector);
                    CalibrationTiming timing = calibrationTiming(q.calibKind, config.instrumentModel);
                    std::string band = q.calibKind == ExposureKind::Flat ? q.band : (bands.empty() ? "r" : bands.front());
                    RawExposure raw = instr.simulate(makeCalibrationIncident(det, q.calibKind, band, config.instrumentModel),
                                                     timing.exposureTimeS, timing.darkTimeS, band, q.calibKind,
                                                     mixSeed(config.seed, exposureId, q.detector));
                    raw.visitInfo.exposureTimeS = timing.exposureTimeS;
                    raw.visitInfo.darkTimeS = timing.darkTimeS;
                    raw.visitInfo.instrument = inst;
                    raw.visitInfo.visit = exposureId;
                    raw.visitInfo.dayObs = calibDayObs;
                    if (q.calibKind == ExposureKind::Flat) {
                        raw.visitInfo.band = q.band;
                        raw.visitInfo.physicalFilter = q.band + "_sim";
                    }
                    raw.metadata.set("IMGTYPE", exposureKindImgType(q.calibKind), "exposure type");
                    const char* type = q.calibKind == ExposureKind::Bias   ? "rawBias"
                                       : q.calibKind == ExposureKind::Dark ? "rawDark"
                                                                           : "rawFlat";
                    repo.put(type, run, id, [&](const auto& p) { writeRaw(p, raw, det); });
                    local.calibrationExposures += 1;
                    break;
                }
                case QuantumKind::Science: {
                    const VisitPlan& v = ctx.visits()[q.visitIndex];
                    id = DataId{{"instrument", inst}, {"band", v.band}, {"visit", v.visit}, {"detector", std::int64_t(q.detector)}};
                    LogContext ctxLog(id.toString());
                    SimulatedExposure sim = simulateScienceExposure(ctx, q.visitIndex, q.detector);
                    const Detector& det = camera.detector(q.detector);
                    repo.put("raw", run, id, [&](const auto& p) { writeRaw(p, sim.raw, det); });
                    repo.put("truthSources", run, id, [&](const auto& p) { writeCatalog(p, "sources", sim.truth); });
                    local.scienceExposures += 1;
                    local.renderedSources += std::int64_t(sim.truth.size());
                    DRP_LOG_VERBOSE("sim", "raw written with " << sim.truth.size() << " sources");
                    break;
                }
            }
        } catch (const Error& e) {
            ++failures;
            DRP_LOG_ERROR("sim", "quantum " << qi << " (" << id.toString() << ") failed: " << e.kind() << ": " << e.what());
        }
    }

    SimSummary total;
    total.scienceExposures = comm.allreduceSum(local.scienceExposures);
    total.calibrationExposures = comm.allreduceSum(local.calibrationExposures);
    total.refcatShards = comm.allreduceSum(local.refcatShards);
    total.refcatStars = comm.allreduceSum(local.refcatStars);
    total.objects = comm.allreduceSum(local.objects);
    total.renderedSources = comm.allreduceSum(local.renderedSources);
    failures = comm.allreduceSum(failures);
    total.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (failures > 0)
        throw Error(std::to_string(failures) + " simulation quanta failed (see the errors above); the others were written");
    return total;
}

}  // namespace drp
