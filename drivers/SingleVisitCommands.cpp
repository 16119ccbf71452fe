// `drp build-calibs` (master bias, dark, flats and defects from raw calibration exposures, detectors
// dealt over MPI ranks) and `drp process-visit` (raw -> calexp + Source table: the campaign's single-visit
// tasks alone (characterizeImage, measureVisitPsf and singleVisit; singleVisit alone with psf.visit_level=false),
// through the same executor, keeping what is already processed). With --detector, the visit's PSF is fitted
// from that detector's stars alone. A failing detector is
// logged with its data ID and the others go on; the command then exits non-zero.
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
#include "drivers/campaign/Campaign.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/singlevisit/InputLoading.h"
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

int runProcessVisit(const po::variables_map& vm, const Communicator& comm) {
    CampaignOptions o;
    o.command = "process-visit";
    o.repo = vm["repo"].as<std::string>();
    o.runs.raw = vm["input-run"].as<std::string>();
    o.runs.calib = vm["calib-run"].as<std::string>();
    o.runs.output = vm["output-run"].as<std::string>();
    o.refcatRun = vm.count("refcat-run") ? vm["refcat-run"].as<std::string>() : o.runs.raw;
    o.onlyTasks = {"characterizeImage", "measureVisitPsf", "singleVisit"};  // with the visit-level PSF when it is on
    if (vm.count("visit")) o.where.set(Dimension::Visit, vm["visit"].as<std::int64_t>());
    if (vm.count("detector")) o.where.set(Dimension::Detector, vm["detector"].as<std::int64_t>());
    if (vm.count("set")) o.settings = vm["set"].as<std::vector<std::string>>();
    effectiveProcessingConfig(o.settings);
    o.resume = true;  // what is already processed is kept
    o.executor.quiet = true;
    return runCampaign(o, comm);
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
