// Reading what single-visit processing needs from a repository: the camera of a simulated run, master
// calibrations (with the detector's calibrations cached across quanta), reference-catalog shards around
// a detector. Shared by `drp build-calibs`, `drp process-visit` and the campaign's singleVisit task.
#pragma once

#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/Camera.h"
#include "core/Exposure.h"
#include "core/Table.h"
#include "io/Repository.h"
#include "sky/SpherePoint.h"
#include "stages/isr/IsrCalibrations.h"

namespace drp {

/// The camera of a simulated run, rebuilt from its recorded configuration (simConfig dataset), with the
/// optics' radial distortion (observing.distortion_coeff_per_deg2) as its camera model.
/// NotFoundError if the run has none.
std::shared_ptr<const Camera> cameraOfRun(const Repository& repo, const std::string& run, std::string* instrument);

/// Defect boxes <-> table (x0, y0, width, height).
Table boxesTable(const std::vector<Box2I>& boxes);
std::vector<Box2I> boxesFromTable(const Table& t);

/// The lab characterisation of a detector (gains, read noise, non-linearity, saturation, crosstalk).
void readAmpCalib(const std::filesystem::path& path, IsrCalibrations& calibs, std::size_t nAmps);

/// The HTM levels of the reference-catalog shards a run holds (shard ids encode their level).
std::set<int> refcatLevels(const Repository& repo, const std::string& run);

/// Reference stars within `radius` of `center` from every shard of `run` at `levels`; `used` (if given)
/// receives the records of the shards read (for provenance).
Table loadReferenceCatalog(const Repository& repo, const std::string& run, const std::set<int>& levels,
                           const SpherePoint& center, Angle radius, std::vector<DatasetRecord>* used = nullptr);

/// A detector's master calibrations, loaded once and reused while quanta of the same detector (and
/// band, for the flat) follow each other. Missing ones are NotFoundErrors "missing calibration: <type>
/// for <data ID> in run <run>" naming the file when the manifest lists it but it is gone.
class CalibrationCache {
public:
    /// Calibrations for (detector, band) of `instrument`; the pointers in the result stay valid until the
    /// next call. `used` (if given) receives the records of the calibrations (for provenance).
    IsrCalibrations get(const Repository& repo, const std::string& calibRun, const std::string& instrument,
                        const Detector& det, const std::string& band, std::vector<DatasetRecord>* used = nullptr);

private:
    std::int64_t detector_ = -1;
    std::string band_;
    Exposure bias_, dark_, flat_;
    IsrCalibrations calibs_;
    std::vector<DatasetRecord> detectorRecords_, flatRecord_;
};

}  // namespace drp
