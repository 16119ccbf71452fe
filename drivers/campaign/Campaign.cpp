#include "drivers/campaign/Campaign.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/DatasetTypes.h"
#include "drivers/campaign/CampaignTasks.h"
#include "drivers/singlevisit/InputLoading.h"
#include "io/AtomicFile.h"
#include "io/RawFits.h"
#include "io/Repository.h"

namespace drp {
namespace {

/// A planning failure (raw whose header cannot be read): reported like a failed quantum.
struct PlanningFailure {
    std::string label;
    std::string error;
};

std::string errorText(const std::exception& e) {
    if (const auto* d = dynamic_cast<const Error*>(&e)) return std::string(d->kind()) + ": " + d->what();
    return e.what();
}

/// The raws to plan over, as rank 0 lists them: "relativePath\tdataId" lines.
std::string rawListing(const Repository& repo, const CampaignOptions& options) {
    auto raws = repo.query({std::string("raw"), options.runs.raw, options.where});
    if (raws.empty())
        throw NotFoundError("no raw datasets in run '" + options.runs.raw + "' matching '" + options.where.toString() + "'",
                            options.repo.string());
    std::string out;
    for (const auto& r : raws) out += r.relativePath + "\t" + r.dataId.toString() + "\n";
    return out;
}

std::vector<std::pair<std::string, DataId>> parseRawListing(const std::string& text) {
    std::vector<std::pair<std::string, DataId>> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        const auto tab = line.find('\t');
        out.emplace_back(line.substr(0, tab), DataId::parse(line.substr(tab + 1)));
    }
    return out;
}

/// Sky regions (header WCS) of this rank's share of the raws (every size-th from rank), as text lines:
/// "index\tOK\t<10 hex doubles: centre and 4 corners, ra dec in degrees>" or "index\tERR\t<error>".
/// Reading headers is the one planning step that grows with the number of files, so every rank helps.
std::string readRegionShare(const std::filesystem::path& root, const std::vector<std::pair<std::string, DataId>>& raws,
                            const Camera* camera, const std::string& cameraError, int rank, int size) {
    std::string out;
    char buf[64];
    for (std::size_t i = std::size_t(rank); i < raws.size(); i += std::size_t(size)) {
        const auto& [rel, id] = raws[i];
        out += std::to_string(i);
        try {
            if (!camera) throw NotFoundError(cameraError);
            auto wcs = readRawHeaderWcs(root / rel);
            if (!wcs) throw InvalidInputError("the raw's header has no WCS: cannot place it on the sky map", (root / rel).string());
            const Detector& det = camera->detector(int(id.getInt(Dimension::Detector)));
            const Box2D b(det.bbox());
            out += "\tOK";
            for (Point2D p : {Point2D{0.5 * (b.minX() + b.maxX()), 0.5 * (b.minY() + b.maxY())}, Point2D{b.minX(), b.minY()},
                              Point2D{b.maxX(), b.minY()}, Point2D{b.maxX(), b.maxY()}, Point2D{b.minX(), b.maxY()}}) {
                SpherePoint sp = wcs->pixelToSky(p);
                std::snprintf(buf, sizeof buf, "\t%a\t%a", sp.ra().asDegrees(), sp.dec().asDegrees());
                out += buf;
            }
        } catch (const std::exception& e) {
            std::string msg = errorText(e);
            std::replace(msg.begin(), msg.end(), '\n', ' ');
            out += "\tERR\t" + msg;
        }
        out += "\n";
    }
    return out;
}

/// Rank 0: regions in listing order; unreadable raws become planning failures.
std::vector<ExposureRegion> parseRegions(const std::vector<std::string>& shares,
                                         const std::vector<std::pair<std::string, DataId>>& raws,
                                         std::vector<PlanningFailure>& failures) {
    std::vector<std::string> lines(raws.size());
    for (const auto& share : shares) {
        std::istringstream in(share);
        for (std::string line; std::getline(in, line);) {
            if (line.empty()) continue;
            lines.at(std::stoull(line.substr(0, line.find('\t')))) = line;
        }
    }
    std::vector<ExposureRegion> out;
    for (std::size_t i = 0; i < raws.size(); ++i) {
        std::istringstream f(lines[i]);
        std::string index, status;
        std::getline(f, index, '\t');
        std::getline(f, status, '\t');
        if (status != "OK") {
            std::string err;
            std::getline(f, err);
            failures.push_back({"singleVisit " + raws[i].second.toString(), err.empty() ? "no region computed" : err});
            continue;
        }
        std::vector<SpherePoint> pts;
        for (int k = 0; k < 5; ++k) {
            std::string ra, dec;
            std::getline(f, ra, '\t');
            std::getline(f, dec, '\t');
            pts.emplace_back(std::strtod(ra.c_str(), nullptr) * degrees, std::strtod(dec.c_str(), nullptr) * degrees);
        }
        ExposureRegion reg;
        reg.dataId = raws[i].second;
        reg.center = pts[0];
        reg.corners.assign(pts.begin() + 1, pts.end());
        out.push_back(std::move(reg));
    }
    return out;
}

std::string utcStamp() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    return buf;
}

struct Plan {
    QuantumGraph graph{std::vector<TaskDef>{}};
    std::vector<std::uint32_t> planToGraph;        // plan index -> graph quantum
    std::vector<PlanningFailure> planningFailures;
    std::vector<std::pair<std::uint32_t, std::string>> preBlocked;  // graph quantum, reason
    std::vector<char> datasetRecorded;             // per dataset node: in the manifest when planning
    std::size_t selected = 0;
};

}  // namespace

int runCampaign(const CampaignOptions& options, const Communicator& comm) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string& cmd = options.command;
    // ---- planning on rank 0; errors are broadcast so every rank leaves together ----
    Plan plan;
    std::string planError;
    std::string verifyList;  // newline-separated "type\trun\tdataId" of recorded outputs to verify
    // The raws (rank 0 lists them), and their sky regions (every rank reads a share of the headers).
    std::string listing;
    if (comm.isRoot()) {
        try {
            listing = rawListing(openOrCreateRepository(options.repo), options);
        } catch (const std::exception& e) {
            planError = errorText(e);
        }
    }
    planError = comm.broadcast(planError);
    if (!planError.empty()) {
        if (comm.isRoot()) std::fprintf(stderr, "%s: cannot plan: %s\n", cmd.c_str(), planError.c_str());
        return 2;
    }
    const auto raws = parseRawListing(comm.broadcast(listing));
    std::vector<std::string> regionShares;
    {
        std::shared_ptr<const Camera> camera;
        std::string cameraError;
        try {
            camera = cameraOfRun(Repository::open(options.repo), options.runs.raw, nullptr);
        } catch (const std::exception& e) {
            cameraError = errorText(e);
        }
        regionShares = comm.gather(readRegionShare(options.repo, raws, camera.get(), cameraError, comm.rank(), comm.size()));
    }
    if (comm.isRoot()) {
        try {
            Repository repo = openOrCreateRepository(options.repo);
            std::vector<TaskDef> tasks = pipelineByName(options.pipeline);
            // psf.visit_level=false: every detector fits its own PSF (no visit-level quanta between their steps).
            if (effectiveProcessingConfig(options.settings).at("psf.visit_level") == "false") withoutVisitPsf(tasks);
            // Optional coadd flavours, when the coadd config asks for them and the pipeline coadds.
            // The survey-wide best-seeing selection is a global quantum; a pipeline that makes calexps but
            // no coadds (a Slurm campaign's first stage) records it too, so that the coadd stage, a later
            // job whose array tasks run no global quanta, finds it done in the repository.
            {
                CampaignCoaddConfig coadd;
                applyCoaddSettings(options.settings, coadd);
                auto has = [&](auto pred) { return std::any_of(tasks.begin(), tasks.end(), pred); };
                if (has([](const TaskDef& t) { return t.name == "assembleCoadd" && t.implemented; })) {
                    for (auto& t : coaddFlavourTasks(coadd.bestSeeing(), coadd.shortPeriod())) tasks.push_back(std::move(t));
                } else if (coadd.bestSeeing() && has([](const TaskDef& t) {
                               return t.implemented && std::count(t.outputs.begin(), t.outputs.end(), "calexp") > 0;
                           })) {
                    tasks.push_back(bestSeeingSelectionTask());
                }
            }
            if (!options.onlyTasks.empty())
                tasks.erase(std::remove_if(tasks.begin(), tasks.end(),
                                           [&](const TaskDef& t) {
                                               return std::find(options.onlyTasks.begin(), options.onlyTasks.end(), t.name) ==
                                                      options.onlyTasks.end();
                                           }),
                            tasks.end());
            if (!options.dryRun) {
                std::string missing;
                for (const auto& t : tasks)
                    if (!t.implemented) missing += (missing.empty() ? "" : ", ") + t.name;
                if (!missing.empty())
                    throw ConfigError("pipeline '" + options.pipeline + "' has tasks without an implementation yet (" + missing +
                                      "): plan it with --dry-run, or run the 'single-visit' pipeline");
            }
            auto regions = parseRegions(regionShares, raws, plan.planningFailures);
            SkyMap skyMap(options.skymap);
            GraphBuildOptions gopt;
            gopt.skymapName = options.skymapName;
            plan.graph = buildQuantumGraph(tasks, std::move(regions), skyMap, options.runs, gopt);
            const QuantumGraph& g = plan.graph;

            if (options.dryRun) {
                std::printf("%s --dry-run: pipeline '%s', %zu quanta over %zu tract(s)\n", cmd.c_str(), options.pipeline.c_str(),
                            g.size(), g.tractCosts().size());
                std::printf("  %-24s %10s  %s\n", "task", "quanta", "level");
                for (const auto& [name, n] : g.countsPerTask()) {
                    const TaskDef* td = nullptr;
                    for (const auto& t : g.tasks())
                        if (t.name == name) td = &t;
                    std::printf("  %-24s %10zu  %s%s\n", name.c_str(), n, td ? quantumLevelName(td->level) : "",
                                td && !td->implemented ? " (not implemented yet)" : "");
                }
                if (options.arrayCount > 0) {
                    const auto tractCosts = g.tractCosts();
                    auto shares = shardTracts(tractCosts, options.arrayCount);
                    std::map<int, double> cost(tractCosts.begin(), tractCosts.end());
                    for (std::size_t s = 0; s < shares.size(); ++s) {
                        double c = 0;
                        for (int t : shares[s]) c += cost[t];
                        std::printf("  share %zu/%d: %zu tract(s), cost %.1f\n", s, options.arrayCount, shares[s].size(), c);
                    }
                }
                for (const auto& f : plan.planningFailures) std::printf("  cannot plan %s: %s\n", f.label.c_str(), f.error.c_str());
            } else {
                // Which quanta this job runs.
                std::vector<char> selected(g.size(), 1);
                if (options.arrayCount > 0) {
                    auto shares = shardTracts(g.tractCosts(), options.arrayCount);
                    std::set<int> mine(shares[std::size_t(options.arrayIndex)].begin(), shares[std::size_t(options.arrayIndex)].end());
                    for (std::size_t q = 0; q < g.size(); ++q) selected[q] = g.quanta()[q].tract >= 0 && mine.count(g.quanta()[q].tract);
                    plan.planningFailures.clear();  // the global job reports unplaceable raws
                } else if (options.globalOnly) {
                    for (std::size_t q = 0; q < g.size(); ++q) selected[q] = g.quanta()[q].tract < 0;
                    plan.planningFailures.clear();
                }
                // What is recorded already.
                // (The manifest is consulted once per output here; everything below reuses the answer.)
                std::vector<char> recorded(g.size(), 0), anyRecorded(g.size(), 0);
                plan.datasetRecorded.assign(g.datasets().size(), 0);
                std::size_t selectedWithOutputs = 0;
                for (std::size_t q = 0; q < g.size(); ++q) {
                    bool all = true, any = false;
                    for (std::uint32_t d : g.quanta()[q].outputs) {
                        DatasetRef ref = g.ref(d);
                        const bool e = repo.exists(ref.datasetType, ref.run, ref.dataId);
                        plan.datasetRecorded[d] = e;
                        all = all && e;
                        any = any || e;
                    }
                    recorded[q] = all;
                    anyRecorded[q] = any;
                    if (selected[q] && any) ++selectedWithOutputs;
                }
                if (selectedWithOutputs > 0 && !options.resume)
                    throw ConflictError("output run '" + options.runs.output + "' already holds outputs of " +
                                        std::to_string(selectedWithOutputs) +
                                        " quanta of this job: add --resume to continue it, or choose another --output-run");
                // Pre-block selected quanta whose upstream lies outside the selection and is not done.
                std::vector<char> blocked(g.size(), 0);
                for (std::size_t q = 0; q < g.size(); ++q) {
                    if (!selected[q]) continue;
                    for (std::uint32_t u : g.quanta()[q].upstream) {
                        if (blocked[u] || (!selected[u] && !recorded[u])) {
                            blocked[q] = 1;
                            plan.preBlocked.push_back({std::uint32_t(q), blocked[u] ? "upstream " + g.label(u) + " blocked"
                                                                                     : "upstream " + g.label(u) +
                                                                                           " is not done (it is outside this job)"});
                            break;
                        }
                    }
                }
                for (std::size_t q = 0; q < g.size(); ++q) {
                    if (!selected[q]) continue;
                    ++plan.selected;
                    if (blocked[q]) continue;
                    plan.planToGraph.push_back(std::uint32_t(q));
                    if (anyRecorded[q]) {
                        for (std::uint32_t d : g.quanta()[q].outputs) {
                            if (!plan.datasetRecorded[d]) continue;
                            DatasetRef ref = g.ref(d);
                            verifyList += ref.datasetType + "\t" + ref.run + "\t" + ref.dataId.toString() + "\n";
                        }
                    }
                }
            }
        } catch (const std::exception& e) {
            planError = errorText(e);
        }
    }
    planError = comm.broadcast(planError);
    if (!planError.empty()) {
        if (comm.isRoot()) {
            DRP_LOG_ERROR(cmd, planError);
            std::fprintf(stderr, "%s: cannot plan: %s\n", cmd.c_str(), planError.c_str());
        }
        return 2;
    }
    if (options.dryRun) return 0;

    // ---- --resume: every rank verifies a share of the recorded outputs against their checksums ----
    verifyList = comm.broadcast(verifyList);
    std::vector<std::string> toVerify;
    {
        std::istringstream in(verifyList);
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) toVerify.push_back(line);
    }
    std::string badLocal;
    if (!toVerify.empty()) {
        Repository repo = Repository::open(options.repo);
        for (std::size_t i = std::size_t(comm.rank()); i < toVerify.size(); i += std::size_t(comm.size())) {
            std::istringstream f(toVerify[i]);
            std::string type, run, id;
            std::getline(f, type, '\t');
            std::getline(f, run, '\t');
            std::getline(f, id);
            if (repo.verify(type, run, DataId::parse(id)) != VerifyStatus::Ok) badLocal += toVerify[i] + "\n";
        }
    }
    std::set<std::string> bad;
    for (const auto& part : comm.allgather(badLocal)) {
        std::istringstream in(part);
        for (std::string line; std::getline(in, line);)
            if (!line.empty()) bad.insert(line);
    }

    // ---- execution plan (rank 0) ----
    ExecutionPlan exec;
    std::size_t resumed = 0;
    if (comm.isRoot()) {
        const QuantumGraph& g = plan.graph;
        std::map<std::uint32_t, std::uint32_t> graphToPlan;
        for (std::uint32_t i = 0; i < plan.planToGraph.size(); ++i) graphToPlan[plan.planToGraph[i]] = i;
        for (std::uint32_t gq : plan.planToGraph) {
            const auto& q = g.quanta()[gq];
            Scheduler::Node node;
            for (std::uint32_t u : q.upstream)
                if (auto it = graphToPlan.find(u); it != graphToPlan.end()) node.upstream.push_back(it->second);
            node.affinity = q.dataId.has(Dimension::Detector) ? std::uint32_t(q.dataId.getInt(Dimension::Detector) + 1) : 0;
            node.priority = 0;
            node.toleratesFailedUpstream = g.tasks()[q.task].toleratesFailedInputs;
            bool done = !q.outputs.empty();
            for (std::uint32_t d : q.outputs) {
                if (!plan.datasetRecorded[d]) {
                    done = false;
                    break;
                }
                if (!bad.empty()) {
                    DatasetRef ref = g.ref(d);
                    if (bad.count(ref.datasetType + "\t" + ref.run + "\t" + ref.dataId.toString())) done = false;
                }
            }
            node.alreadyDone = done;
            resumed += done;
            exec.nodes.push_back(std::move(node));
        }
        exec.payload = [&plan](std::uint32_t i) { return plan.graph.spec(plan.planToGraph[i]).toBytes(); };
        exec.label = [&plan](std::uint32_t i) { return plan.graph.label(plan.planToGraph[i]); };
        if (options.arrayCount > 0)
            std::printf("%s: share %d of %d: %zu quanta (%zu already done)\n", cmd.c_str(), options.arrayIndex, options.arrayCount,
                        plan.selected, resumed);
        else
            std::printf("%s: %zu quanta to consider (%zu already done) on %d rank(s)\n", cmd.c_str(), plan.selected, resumed,
                        comm.size());
        std::fflush(stdout);
    }

    // ---- run ----
    CampaignWorkerSetup setup{options.repo, options.runs, options.refcatRun, options.settings, options.skymap};
    std::unique_ptr<CampaignWorker> worker;
    std::string workerError;
    QuantumFunction fn = [&](std::uint32_t, const std::string& payload) -> std::string {
        if (!worker && workerError.empty()) {
            try {
                worker = std::make_unique<CampaignWorker>(setup);
            } catch (const std::exception& e) {
                workerError = errorText(e);
            }
        }
        if (!worker) throw Error("this rank cannot run quanta: " + workerError);
        return worker->run(QuantumSpec::fromBytes(payload));
    };
    ExecutionReport report = executeQuanta(comm, exec, fn, options.executor);

    // ---- summary (rank 0) ----
    int code = 0;
    if (comm.isRoot()) {
        const QuantumGraph& g = plan.graph;
        struct Row { std::size_t total = 0, run = 0, resumed = 0, failed = 0, blocked = 0; };
        std::map<std::string, Row> rows;
        std::vector<std::string> order;
        for (const auto& t : g.tasks()) order.push_back(t.name);
        std::vector<std::pair<std::string, std::string>> failures;  // label, error
        std::ostringstream tsv;
        tsv << "quantum\tstate\trank\tseconds\tresult_or_error\n";
        for (std::size_t i = 0; i < report.outcomes.size(); ++i) {
            const auto& o = report.outcomes[i];
            const auto& q = g.quanta()[plan.planToGraph[i]];
            Row& r = rows[g.tasks()[q.task].name];
            ++r.total;
            if (o.state == QuantumState::Succeeded) ++r.run;
            if (o.state == QuantumState::Done) ++r.resumed;
            if (o.state == QuantumState::Failed) { ++r.failed; failures.push_back({g.label(plan.planToGraph[i]), o.error}); }
            if (o.state == QuantumState::Blocked) ++r.blocked;
            tsv << g.label(plan.planToGraph[i]) << '\t' << quantumStateName(o.state) << '\t' << o.rank << '\t' << o.seconds << '\t'
                << (o.state == QuantumState::Succeeded ? o.result : o.error) << '\n';
        }
        for (const auto& [q, why] : plan.preBlocked) {
            Row& r = rows[g.tasks()[g.quanta()[q].task].name];
            ++r.total;
            ++r.blocked;
            tsv << g.label(q) << "\tBlocked\t-1\t0\t" << why << '\n';
        }
        for (const auto& f : plan.planningFailures) {
            Row& r = rows["singleVisit"];
            ++r.total;
            ++r.failed;
            failures.push_back({f.label, f.error});
            tsv << f.label << "\tFailed\t-1\t0\t" << f.error << '\n';
        }
        Row sum;
        for (const auto& [n, r] : rows) {
            sum.total += r.total; sum.run += r.run; sum.resumed += r.resumed; sum.failed += r.failed; sum.blocked += r.blocked;
        }
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::string reportPath;
        try {
            std::string name = utcStamp();
            if (options.arrayCount > 0) name += "-share-" + std::to_string(options.arrayIndex) + "-of-" + std::to_string(options.arrayCount);
            if (options.globalOnly) name += "-global";
            std::filesystem::path dir = options.repo / "_campaigns" / options.runs.output;
            std::filesystem::create_directories(dir);
            std::filesystem::path p = dir / (name + ".tsv");
            AtomicFile f(p);
            std::ofstream(f.tempPath()) << tsv.str();
            f.commit();
            reportPath = p.string();
        } catch (const std::exception& e) {
            DRP_LOG_WARN(cmd, "could not write the campaign report: " << e.what());
        }
        if (cmd == "process-visit") {
            // Detector-visits: the singleVisit quanta; the visit-level PSF's steps are counted apart when they failed.
            const Row sv = rows.count("singleVisit") ? rows.at("singleVisit") : Row{};
            const std::size_t otherFailed = sum.failed + sum.blocked - sv.failed - sv.blocked;
            std::printf("process-visit: %zu detector-visit(s) processed into run '%s', %zu failed%s, %.1f s on %d rank(s)\n",
                        sv.run + sv.resumed, options.runs.output.c_str(), sv.failed + sv.blocked,
                        otherFailed > 0 ? (" (and " + std::to_string(otherFailed) + " step(s) of the visit-level PSF)").c_str() : "",
                        secs, comm.size());
        } else {
            std::printf("%s: %zu quanta: %zu run, %zu already done, %zu failed, %zu blocked; %.1f s on %d rank(s)\n", cmd.c_str(),
                        sum.total, sum.run, sum.resumed, sum.failed, sum.blocked, secs, comm.size());
            std::printf("  %-24s %8s %8s %8s %8s %8s\n", "task", "quanta", "run", "resumed", "failed", "blocked");
            for (const auto& n : order)
                if (auto it = rows.find(n); it != rows.end())
                    std::printf("  %-24s %8zu %8zu %8zu %8zu %8zu\n", n.c_str(), it->second.total, it->second.run, it->second.resumed,
                                it->second.failed, it->second.blocked);
        }
        const std::size_t shown = std::min<std::size_t>(failures.size(), 20);
        for (std::size_t i = 0; i < shown; ++i)
            std::printf("  FAILED %s: %s\n", failures[i].first.c_str(), failures[i].second.c_str());
        if (failures.size() > shown) std::printf("  ... and %zu more failures\n", failures.size() - shown);
        if (!reportPath.empty()) std::printf("  report: %s\n", reportPath.c_str());
        std::fflush(stdout);
        code = (sum.failed + sum.blocked) == 0 ? 0 : 1;
    }
    return int(comm.allreduceMax(std::int64_t(code)));
}

}  // namespace drp
