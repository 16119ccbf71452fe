// The simulator driver: turns a SimConfig into raw science and calibration exposures, a sharded
// reference catalog and complete truth tables in a data repository. Work is cut into quanta (one per
// visit x detector, one per calibration exposure x detector, one per refcat shard) dealt round-robin
// over MPI ranks; every random draw is seeded from the config seed and the quantum's data ID, so the
// files are identical for any number of ranks.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/Communicator.h"
#include "core/RawExposure.h"
#include "core/Table.h"
#include "drivers/sim/SimConfig.h"

namespace drp {

class Repository;
class Psf;

/// Everything every rank needs, computed identically on each: camera, sky catalog, observing plan.
class SimContext {
public:
    explicit SimContext(SimConfig config);
    const SimConfig& config() const { return config_; }
    const Camera& camera() const { return *camera_; }
    const std::vector<SimObject>& objects() const { return objects_; }
    const std::vector<VisitPlan>& visits() const { return visits_; }
    /// Arcsec per pixel of the camera's detectors.
    double pixelScaleArcsec() const { return pixelScaleArcsec_; }
    /// Radius (mm) of the circle enclosing all detectors: the vignetting reference.
    double focalPlaneRadiusMm() const { return focalPlaneRadiusMm_; }
    /// The instrument truth of one detector (built on first use, at most two kept; the reference is valid
    /// until the next call for another detector; not thread-safe).
    const DetectorInstrument& instrument(int detectorId) const;

private:
    SimConfig config_;
    std::shared_ptr<const Camera> camera_;
    std::vector<SimObject> objects_;
    std::vector<VisitPlan> visits_;
    double pixelScaleArcsec_ = 0;
    double focalPlaneRadiusMm_ = 0;
    mutable std::map<int, std::unique_ptr<DetectorInstrument>> instruments_;
};

/// The result of simulating one science exposure of one detector.
struct SimulatedExposure {
    RawExposure raw;
    Table truth{Schema()};             ///< one row per object rendered (ids, true positions, fluxes)
    std::shared_ptr<const Psf> psf;    ///< the true PSF (pixels)
    std::shared_ptr<const Wcs> trueWcs;
    ImageF incident;                   ///< incident e- (sky + objects) before the instrument, when kept
};

/// Simulate visit `visitIndex` (into ctx.visits()) on one detector.
SimulatedExposure simulateScienceExposure(const SimContext& ctx, std::size_t visitIndex, int detectorId,
                                          bool keepIncident = false);
/// The true PSF of a detector in a visit: a MoffatPsf whose quadratic variation reproduces the
/// focal-plane model of the observing plan.
std::shared_ptr<const Psf> truePsf(const SimContext& ctx, const VisitPlan& visit, const Detector& detector);
/// The true PSF that simulateScienceExposure records in a truthSources table's metadata (PSFTYPE, PSFBETA,
/// PSFFWHMn, PSFE1_n, PSFE2_n: a MoffatPsf over the detector box `bbox`); nullptr when they hold none.
std::shared_ptr<const Psf> truePsfFromMetadata(const PropertyList& md, const Box2I& bbox);

struct SimSummary {
    std::int64_t scienceExposures = 0;
    std::int64_t calibrationExposures = 0;
    std::int64_t refcatShards = 0;
    std::int64_t refcatStars = 0;
    std::int64_t objects = 0;
    std::int64_t renderedSources = 0;
    double seconds = 0;
};

/// Run the whole simulation into `repo` under `run`. Collective over `comm`.
SimSummary runSimulation(const SimConfig& config, Repository& repo, const std::string& run, const Communicator& comm,
                         const std::string& effectiveConfig = {});

}  // namespace drp
