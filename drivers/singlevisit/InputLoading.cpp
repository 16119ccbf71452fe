#include "drivers/singlevisit/InputLoading.h"

#include <cmath>

#include "core/Error.h"
#include "drivers/sim/SimConfig.h"
#include "io/ExposureFits.h"
#include "io/Hdf5Catalog.h"
#include "io/Hdf5File.h"
#include "sky/HtmPixelization.h"
#include "sky/ReferenceCatalog.h"

namespace drp {

std::shared_ptr<const Camera> cameraOfRun(const Repository& repo, const std::string& run, std::string* instrument) {
    auto records = repo.query({std::string("simConfig"), run, {}});
    if (records.empty())
        throw NotFoundError("run '" + run + "' has no simConfig dataset: cannot tell the camera geometry",
                            repo.root().string());
    SimConfig cfg = loadSimConfig("", {(repo.root() / records.front().relativePath).string()}, {});
    if (instrument) *instrument = cfg.instrument;
    return cfg.makeCamera();
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

std::set<int> refcatLevels(const Repository& repo, const std::string& run) {
    std::set<int> levels;
    for (const auto& r : repo.query({std::string("refcat"), run, {}})) {
        int level = HtmPixelization::levelOf(std::uint64_t(r.dataId.getInt(Dimension::Htm)));
        if (level >= 0) levels.insert(level);
    }
    return levels;
}

Table loadReferenceCatalog(const Repository& repo, const std::string& run, const std::set<int>& levels,
                           const SpherePoint& center, Angle radius, std::vector<DatasetRecord>* used) {
    std::vector<Table> parts;
    for (int level : levels) {
        HtmPixelization htm(level);
        for (std::uint64_t shard : shardsForRegion(htm, center, radius)) {
            DataId id{{"htm", std::int64_t(shard)}};
            if (auto rec = repo.find("refcat", run, id)) {
                parts.push_back(readCatalog(repo.root() / rec->relativePath, "refcat"));
                if (used) used->push_back(*rec);
            }
        }
    }
    if (parts.empty()) return Table(referenceCatalogSchema({"u", "g", "r", "i", "z", "y"}));
    return filterToCircle(Table::concatenate(parts), center, radius);
}

namespace {

DatasetRecord needCalibration(const Repository& repo, const std::string& type, const std::string& run, const DataId& id) {
    auto r = repo.find(type, run, id);
    if (!r) throw NotFoundError("missing calibration: " + type + " for " + id.toString() + " in run " + run);
    if (!std::filesystem::exists(repo.root() / r->relativePath))
        throw NotFoundError("missing calibration: " + type + " for " + id.toString() + " is in the manifest of run " + run +
                                " but its file is gone",
                            (repo.root() / r->relativePath).string());
    return *r;
}

}  // namespace

IsrCalibrations CalibrationCache::get(const Repository& repo, const std::string& calibRun, const std::string& instrument,
                                      const Detector& det, const std::string& band, std::vector<DatasetRecord>* used) {
    DataId detId{{"instrument", instrument}, {"detector", std::int64_t(det.id())}};
    if (detector_ != det.id()) {
        detector_ = -1;  // stays invalid if loading fails
        band_.clear();
        detectorRecords_.clear();
        std::vector<DatasetRecord> recs;
        for (const char* type : {"bias", "dark", "ampCalib", "defects"}) recs.push_back(needCalibration(repo, type, calibRun, detId));
        bias_ = readExposure(repo.root() / recs[0].relativePath);
        dark_ = readExposure(repo.root() / recs[1].relativePath);
        calibs_ = IsrCalibrations{};
        readAmpCalib(repo.root() / recs[2].relativePath, calibs_, det.amplifiers().size());
        calibs_.defects = boxesFromTable(readCatalog(repo.root() / recs[3].relativePath, "defects"));
        detectorRecords_ = recs;
        detector_ = det.id();
    }
    if (band_ != band) {
        band_.clear();
        DataId flatId = detId;
        flatId.set(Dimension::Band, band);
        DatasetRecord rec = needCalibration(repo, "flat", calibRun, flatId);
        flat_ = readExposure(repo.root() / rec.relativePath);
        flatRecord_ = {rec};
        band_ = band;
    }
    if (used) {
        used->insert(used->end(), detectorRecords_.begin(), detectorRecords_.end());
        used->insert(used->end(), flatRecord_.begin(), flatRecord_.end());
    }
    IsrCalibrations calibs = calibs_;
    calibs.bias = &bias_;
    calibs.dark = &dark_;
    calibs.flat = &flat_;
    return calibs;
}

}  // namespace drp
