// `drp datasets` lists what a repository holds; `drp verify` re-checksums every dataset against the
// manifest and reports missing, truncated or altered files (exit code 1 if any).
#include <algorithm>
#include <cstdio>
#include <map>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/Cli.h"
#include "io/Repository.h"

namespace po = boost::program_options;

namespace drp {
namespace {

DatasetQuery queryFrom(const po::variables_map& vm) {
    DatasetQuery q;
    if (vm.count("type")) q.datasetType = vm["type"].as<std::string>();
    if (vm.count("collection")) q.run = vm["collection"].as<std::string>();
    if (vm.count("where")) q.dataId = DataId::parse(vm["where"].as<std::string>());
    return q;
}

void addQueryOptions(po::options_description& d) {
    d.add_options()("repo", po::value<std::string>()->required(), "data repository directory")(
        "type", po::value<std::string>(), "only this dataset type")(
        "collection", po::value<std::string>(), "only this run")(
        "where", po::value<std::string>(), "only data IDs matching, e.g. \"band=r visit=12\"")(
        "checksums", po::bool_switch(), "print \"type<TAB>dataId<TAB>checksum\" per dataset (sorted; no run, to compare runs)");
}

int runDatasets(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    Repository repo = Repository::open(vm["repo"].as<std::string>());
    auto records = repo.query(queryFrom(vm));
    if (vm.count("checksums") && vm["checksums"].as<bool>()) {
        std::vector<std::string> lines;
        for (const auto& r : records) lines.push_back(r.datasetType + "\t" + r.dataId.toString() + "\t" + r.checksum);
        std::sort(lines.begin(), lines.end());
        for (const auto& l : lines) std::printf("%s\n", l.c_str());
        return 0;
    }
    std::map<std::string, std::pair<std::size_t, std::uint64_t>> perType;
    for (const auto& r : records) {
        std::printf("%-10s %-12s %-44s %12llu  %s\n", r.datasetType.c_str(), r.run.c_str(),
                    r.dataId.toString().c_str(), static_cast<unsigned long long>(r.size), r.relativePath.c_str());
        perType[r.datasetType].first += 1;
        perType[r.datasetType].second += r.size;
    }
    std::printf("%zu datasets", records.size());
    for (const auto& [t, c] : perType)
        std::printf("; %s: %zu (%.1f MB)", t.c_str(), c.first, double(c.second) / 1e6);
    std::printf("\n");
    return 0;
}

int runVerify(const po::variables_map& vm, const Communicator& comm) {
    if (!comm.isRoot()) return 0;
    Repository repo = Repository::open(vm["repo"].as<std::string>());
    auto records = repo.query(queryFrom(vm));
    std::size_t bad = 0;
    for (const auto& r : records) {
        VerifyStatus s = repo.verify(r);
        if (s != VerifyStatus::Ok) {
            ++bad;
            DRP_LOG_ERROR("verify", verifyStatusName(s) << ": " << r.datasetType << " " << r.dataId.toString()
                                                        << " run=" << r.run << " file " << r.relativePath);
        }
    }
    auto stats = repo.stats();
    std::printf("verified %zu datasets: %zu ok, %zu bad; manifest: %zu files, %zu corrupt lines ignored\n",
                records.size(), records.size() - bad, bad, stats.manifestFiles, stats.corruptLines);
    return bad == 0 ? 0 : 1;
}

}  // namespace

void registerRepositoryCommands() {
    registerCommand({"datasets", "list the datasets of a data repository", addQueryOptions, nullptr, runDatasets});
    registerCommand({"verify", "re-checksum every dataset of a repository against its manifest", addQueryOptions,
                     nullptr, runVerify});
}

}  // namespace drp
