// `drp build-calibs` (master bias, dark, flats and defects from raw calibration exposures) and
// `drp process-visit` (raw -> calexp + Source table), both dealing detectors over MPI ranks. A failing
// detector is logged with its data ID and the others go on; the command then exits non-zero.
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <tuple>
#include <algorithm>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/Cli.h"
#include "drivers/DatasetTypes.h"
#include "drivers/singlevisit/SingleVisit.h"
#include "drivers/sim/SimConfig.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/Hdf5File.h"
#include "io/RawFits.h"
#include "io/Repository.h"
#include "sky/HtmPixelization.h"
#include "sky/ReferenceCatalog.h"
#include "stages/isr/Defects.h"
#include "stages/isr/MasterCalibs.h"

namespace po = boost::program_options;

namespace drp {
namespace {

/// The camera of a simulated run, rebuilt from its recorded configuration.
std::shared_ptr<const Camera> cameraOfRun(const Repository& repo, const std::string& run, std::string* instrument) {
    auto records = repo.query({std::string("simConfig"), run, {}});
    if (records.empty())
        throw NotFoundError("run '" + run + "' has no simConfig dataset: cannot tell the camera geometry",
                            repo.root().string());
    SimConfig cfg = loadSimConfig("", {(repo.root() / records.front().relativePath).string()}, {});
    if (instrument) *instrument = cfg.instrument;
    return makeLsstLikeCamera(cfg.camera);
}

Table boxesTable(const std::vector<Box2I>& boxes) {
    Schema s;
    auto x0 = s.addField<std::int32_t>("x0", "box min x", "pixel");
    auto y0 = s.addField<std::int32_t>("y0", "box min y", "pixel");
    auto w = s.addField<std::int32_t>("width", "box width", "pixel");
    auto h = s.addField<std::int32_t>("height", "box height", "pixel");
    Table t(s, boxes.size());
    for (std::size_t i = 0; i < boxes.size(); ++i) {
        t.at(x0, i) = boxes[i].minX();
        t.at(y0, i) = boxes[i].minY();
        t.at(w, i) = boxes[i].width();
        t.at(h, i) = boxes[i].height();
    }
    return t;
}

std::vector<Box2I> boxesFromTable(const Table& t) {
    std::vector<Box2I> out;
    auto x0 = t.column<std::int32_t>("x0"), y0 = t.column<std::int32_t>("y0"), w = t.column<std::int32_t>("width"),
         h = t.column<std::int32_t>("height");
    for (std::size_t i = 0; i < t.size(); ++i) out.emplace_back(Point2I{x0[i], y0[i]}, w[i], h[i]);
    return out;
}

/// The camera characterisation (gains, read noise, non-linearity, saturation, crosstalk) measured in
/// the lab: for a simulated camera, taken from the simulator's instrument truth.
void readAmpCalib(const std::filesystem::path& path, IsrCalibrations& calibs, std::size_t nAmps) {
    Hdf5File f(path, Hdf5File::Mode::ReadOnly);
    Table amps = readTable(f, "amplifiers");
    Table xt = readTable(f, "crosstalk");
    auto gain = amps.column<double>("gain"), rn = amps.column<double>("readNoise"),
         nl = amps.column<double>("nonlinearity"), sat = amps.column<double>("saturation");
    calibs.amplifiers.clear();
    for (std::size_t a = 0; a < amps.size(); ++a) calibs.amplifiers.push_back({gain[a], rn[a], nl[a], sat[a]});
    calibs.crosstalk = Eigen::MatrixXd::Zero(Eigen::Index(nAmps), Eigen::Index(nAmps));
    auto v = xt.column<std::int32_t>("victim"), s = xt.column<std::int32_t>("source");
    auto c = xt.column<double>("coeff");
    for (std::size_t i = 0; i < xt.size(); ++i) calibs.crosstalk(v[i], s[i]) = c[i];
}

std::vector<RawExposure> readRaws(const Repository& repo, const std::string& type, const std::string& run,
                                  const DataId& where, const Detector& det) {
    std::vector<RawExposure> out;
    for (const auto& r : repo.query({type, run, where})) out.push_back(readRaw(repo.root() / r.relativePath, det));
    return out;
}

int runBuildCalibs(const po::variables_map& vm, const Communicator& comm) {
    const std::string input = vm["input-run"].as<std::string>(), output = vm["output-run"].as<std::string>();
    if (comm.isRoot()) openOrCreateRepository(vm["repo"].as<std::string>());
    comm.barrier();
    Repository repo = openOrCreateRepository(vm["repo"].as<std::string>());
    std::string inst;
    auto camera = cameraOfRun(repo, input, &inst);
    IsrConfig isr;
    MasterConfig master;
    DefectConfig defectCfg;
    std::int64_t failures = 0, built = 0;
    const auto& dets = camera->detectors();
    for (std::size_t i = std::size_t(comm.rank()); i < dets.size(); i += std::size_t(comm.size())) {
        const Detector& det = *dets[i];
        DataId id{{"instrument", inst}, {"detector", std::int64_t(det.id())}};
        LogContext ctx(id.toString());
        try {
            IsrCalibrations partial;
            auto truth = repo.query({std::string("truthInstrument"), input, id});
            if (truth.empty()) throw NotFoundError("no camera characterisation (truthInstrument) for this detector");
            readAmpCalib(repo.root() / truth.front().relativePath, partial, det.amplifiers().size());
            repo.put("ampCalib", output, id, [&](const std::filesystem::path& p) {
                std::filesystem::copy_file(repo.root() / truth.front().relativePath, p,
                                           std::filesystem::copy_options::overwrite_existing);
            });
            auto biases = readRaws(repo, "rawBias", input, id, det);
            if (biases.empty()) throw NotFoundError("no raw bias exposures in run " + input);
            Exposure bias = makeMasterBias(biases, det, partial, isr, master);
            auto darks = readRaws(repo, "rawDark", input, id, det);
            if (darks.empty()) throw NotFoundError("no raw dark exposures in run " + input);
            Exposure dark = makeMasterDark(darks, det, bias, partial, isr, master);
            repo.put("bias", output, id, [&](const auto& p) { writeExposure(p, bias); });
            repo.put("dark", output, id, [&](const auto& p) { writeExposure(p, dark); });
            std::set<std::string> bands;
            for (const auto& r : repo.query({std::string("rawFlat"), input, id})) bands.insert(r.dataId.getString(Dimension::Band));
            std::vector<Box2I> defects;
            bool first = true;
            for (const auto& band : bands) {
                DataId bid = id;
                bid.set(Dimension::Band, band);
                Exposure flat = makeMasterFlat(readRaws(repo, "rawFlat", input, bid, det), det, bias, dark, partial, isr, master);
                if (first) defects = findDefects(flat, dark, defectCfg);
                first = false;
                repo.put("flat", output, bid, [&](const auto& p) { writeExposure(p, flat); });
            }
            repo.put("defects", output, id, [&](const auto& p) { writeCatalog(p, "defects", boxesTable(defects)); });
            DRP_LOG_INFO("build-calibs", biases.size() << " biases, " << darks.size() << " darks, flats in " << bands.size()
                                                       << " bands, " << defects.size() << " defects");
            ++built;
        } catch (const Error& e) {
            ++failures;
            DRP_LOG_ERROR("build-calibs", e.kind() << ": " << e.what());
        }
    }
    failures = comm.allreduceSum(failures);
    built = comm.allreduceSum(built);
    if (comm.isRoot())
        std::printf("build-calibs: master calibrations for %lld detector(s) in run '%s'; %lld failed\n",
                    static_cast<long long>(built), output.c_str(), static_cast<long long>(failures));
    return failures == 0 ? 0 : 1;
}

/// The HTM levels of the reference-catalog shards a run holds (shard ids encode their level).
std::set<int> refcatLevels(const Repository& repo, const std::string& run) {
    std::set<int> levels;
    for (const auto& r : repo.query({std::string("refcat"), run, {}})) {
        int level = HtmPixelization::levelOf(std::uint64_t(r.dataId.getInt(Dimension::Htm)));
        if (level >= 0) levels.insert(level);
    }
    return levels;
}

Table loadReferenceCatalog(const Repository& repo, const std::string& run, const std::set<int>& levels,
                           const SpherePoint& center, Angle radius) {
    std::vector<Table> parts;
    for (int level : levels) {
        HtmPixelization htm(level);
        for (std::uint64_t shard : shardsForRegion(htm, center, radius)) {
            DataId id{{"htm", std::int64_t(shard)}};
            if (auto rec = repo.find("refcat", run, id)) parts.push_back(readCatalog(repo.root() / rec->relativePath, "refcat"));
        }
    }
    if (parts.empty()) return Table(referenceCatalogSchema({"u", "g", "r", "i", "z", "y"}));
    return filterToCircle(Table::concatenate(parts), center, radius);
}

int runProcessVisit(const po::variables_map& vm, const Communicator& comm) {
    const std::string input = vm["input-run"].as<std::string>(), calibRun = vm["calib-run"].as<std::string>(),
                      output = vm["output-run"].as<std::string>();
    const std::string refRun = vm.count("refcat-run") ? vm["refcat-run"].as<std::string>() : input;
    if (comm.isRoot()) openOrCreateRepository(vm["repo"].as<std::string>());
    comm.barrier();
    Repository repo = openOrCreateRepository(vm["repo"].as<std::string>());
    std::string inst;
    auto camera = cameraOfRun(repo, input, &inst);
    SingleVisitConfig cfg;
    ConfigBinder binder;
    cfg.bind(binder);
    if (vm.count("set"))
        for (const auto& s : vm["set"].as<std::vector<std::string>>()) binder.setAssignment(s);
    cfg.validate();

    DataId where;
    if (vm.count("visit")) where.set(Dimension::Visit, vm["visit"].as<std::int64_t>());
    if (vm.count("detector")) where.set(Dimension::Detector, vm["detector"].as<std::int64_t>());
    auto raws = repo.query({std::string("raw"), input, where});
    if (raws.empty()) throw NotFoundError("no raw datasets in run '" + input + "' matching " + where.toString());
    // By detector, then band: each rank's share then comes in runs that reuse the same calibrations.
    std::stable_sort(raws.begin(), raws.end(), [](const DatasetRecord& a, const DatasetRecord& b) {
        auto key = [](const DatasetRecord& r) {
            return std::make_tuple(r.dataId.getInt(Dimension::Detector), r.dataId.getString(Dimension::Band),
                                   r.dataId.getInt(Dimension::Visit));
        };
        return key(a) < key(b);
    });
    // The calibrations of the detector (and band) in hand, reloaded only when they change.
    struct CalibCache {
        std::int64_t detector = -1;
        std::string band;
        Exposure bias, dark, flat;
        IsrCalibrations calibs;
    } cache;

    const std::set<int> levels = refcatLevels(repo, refRun);
    if (levels.empty())
        DRP_LOG_WARN("process-visit", "run '" << refRun << "' has no reference catalog: no astrometric or photometric calibration");

    std::int64_t failures = 0, done = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (std::size_t i = std::size_t(comm.rank()); i < raws.size(); i += std::size_t(comm.size())) {
        const auto& rec = raws[i];
        const DataId& id = rec.dataId;
        LogContext ctx(id.toString());
        try {
            if (repo.exists("src", output, id)) {
                DRP_LOG_VERBOSE("process-visit", "already processed; skipped");
                ++done;
                continue;
            }
            const Detector& det = camera->detector(int(id.getInt(Dimension::Detector)));
            const std::string band = id.getString(Dimension::Band);
            RawExposure raw = readRaw(repo.root() / rec.relativePath, det);
            DataId detId{{"instrument", inst}, {"detector", id.getInt(Dimension::Detector)}};
            DataId flatId = detId;
            flatId.set(Dimension::Band, band);
            auto need = [&](const std::string& type, const DataId& cid) {
                auto r = repo.find(type, calibRun, cid);
                if (!r) throw NotFoundError("missing calibration: " + type + " for " + cid.toString() + " in run " + calibRun);
                std::filesystem::path path = repo.root() / r->relativePath;
                if (!std::filesystem::exists(path))
                    throw NotFoundError("missing calibration: " + type + " for " + cid.toString() + " is in the manifest of run " +
                                            calibRun + " but its file is gone",
                                        path.string());
                return path;
            };
            if (cache.detector != detId.getInt(Dimension::Detector)) {
                cache.detector = -1;  // stays invalid if loading fails
                cache.band.clear();
                cache.bias = readExposure(need("bias", detId));
                cache.dark = readExposure(need("dark", detId));
                cache.calibs = IsrCalibrations{};
                readAmpCalib(need("ampCalib", detId), cache.calibs, det.amplifiers().size());
                cache.calibs.defects = boxesFromTable(readCatalog(need("defects", detId), "defects"));
                cache.detector = detId.getInt(Dimension::Detector);
            }
            if (cache.band != band) {
                cache.band.clear();
                cache.flat = readExposure(need("flat", flatId));
                cache.band = band;
            }
            IsrCalibrations calibs = cache.calibs;
            calibs.bias = &cache.bias;
            calibs.dark = &cache.dark;
            calibs.flat = &cache.flat;

            // Reference stars around the detector (header WCS, with margin for pointing errors).
            ReferenceStars refs;
            bool haveRefs = false;
            if (raw.headerWcs) {
                Point2D c{det.bbox().minX() + 0.5 * det.bbox().width(), det.bbox().minY() + 0.5 * det.bbox().height()};
                SpherePoint centre = raw.headerWcs->pixelToSky(c);
                double radiusArcsec = 0.5 * std::hypot(det.bbox().width(), det.bbox().height()) *
                                          raw.headerWcs->pixelScale(c).asArcseconds() +
                                      cfg.astrometry.maxOffsetArcsec + 30.0;
                Table refcat = loadReferenceCatalog(repo, refRun, levels, centre, radiusArcsec * arcseconds);
                refs = prepareReferenceStars(refcat, centre, radiusArcsec * arcseconds,
                                             raw.visitInfo.midExposureMjdTai, band, cfg.photometry);
                haveRefs = !refs.astrometry.empty();
            }
            std::int64_t ccdVisitId = packCcdVisitId(id.getInt(Dimension::Visit), id.getInt(Dimension::Detector));
            SingleVisitResult res =
                processSingleVisit(raw, det, calibs, haveRefs ? &refs : nullptr, band, ccdVisitId, cfg);
            repo.put("calexp", output, id, [&](const auto& p) { writeExposure(p, res.calexp); });
            if (res.background)
                repo.put("calexpBackground", output, id,
                         [&](const auto& p) { writeCatalog(p, "background", res.background->toTable()); });
            repo.put("src", output, id, [&](const auto& p) { writeCatalog(p, "src", res.sources); });
            const auto& s = res.summary;
            DRP_LOG_INFO("process-visit", res.sources.size()
                                              << " sources; PSF dT/T " << s.getDouble("PSFDTT", NAN) << "; astrometry rms "
                                              << s.getDouble("ASTRMS", NAN) << " mas over " << s.getInt("ASTNMTCH", 0)
                                              << " stars; zero point " << s.getDouble("ZP", NAN));
            ++done;
        } catch (const Error& e) {
            ++failures;
            DRP_LOG_ERROR("process-visit", e.kind() << ": " << e.what());
        }
    }
    failures = comm.allreduceSum(failures);
    done = comm.allreduceSum(done);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (comm.isRoot())
        std::printf("process-visit: %lld detector-visit(s) processed into run '%s', %lld failed, %.1f s on %d rank(s)\n",
                    static_cast<long long>(done), output.c_str(), static_cast<long long>(failures), secs, comm.size());
    return failures == 0 ? 0 : 1;
}

}  // namespace

void registerSingleVisitCommands() {
    registerCommand({"build-calibs", "build master bias, dark, flats and defects from raw calibration exposures",
                     [](po::options_description& d) {
                         d.add_options()("repo", po::value<std::string>()->required(), "data repository")(
                             "input-run", po::value<std::string>()->default_value("sim"), "run with the raw calibrations")(
                             "output-run", po::value<std::string>()->default_value("calib"), "run to write the masters to");
                     },
                     nullptr, runBuildCalibs});
    registerCommand({"process-visit", "single-visit processing: raw exposures to calexps and Source tables",
                     [](po::options_description& d) {
                         d.add_options()("repo", po::value<std::string>()->required(), "data repository")(
                             "visit", po::value<std::int64_t>(), "only this visit (default: every raw of the input run)")(
                             "detector", po::value<std::int64_t>(), "only this detector")(
                             "input-run", po::value<std::string>()->default_value("sim"), "run with the raws")(
                             "calib-run", po::value<std::string>()->default_value("calib"), "run with the master calibrations")(
                             "refcat-run", po::value<std::string>(), "run with the reference catalog (default: input run)")(
                             "output-run", po::value<std::string>()->default_value("processed"), "run to write to")(
                             "set", po::value<std::vector<std::string>>()->composing(),
                             "override a processing option, e.g. --set detection.threshold_sigma=6");
                     },
                     nullptr, runProcessVisit});
}

}  // namespace drp
