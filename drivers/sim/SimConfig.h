// The simulator's whole configuration: camera, instrument signature, sky, observing plan, rendering,
// calibration exposures and reference catalog. Filled from a preset (tiny, demo, bench: the files in
// drivers/sim/presets, compiled in), then config files, then --set key=value overrides.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/Camera.h"
#include "core/Render.h"
#include "drivers/ConfigBinder.h"
#include "drivers/sim/InstrumentModel.h"
#include "drivers/sim/ObservingPlan.h"
#include "drivers/sim/SkyModel.h"

namespace drp {

struct SimConfig {
    std::string instrument = "SimCam";  ///< instrument name in data IDs and headers
    std::uint64_t seed = 1;             ///< master seed: the sky, plan and instrument seeds derive from it
    CameraConfig camera;
    InstrumentConfig instrumentModel;
    SkyModelConfig sky;
    ObservingConfig observing;
    RenderConfig render;
    double psfBeta = 3.5;               ///< Moffat beta of the PSF, (1, 20]
    int biasExposures = 2;              ///< raw bias frames per detector, [0, 1000]
    int darkExposures = 2;              ///< raw dark frames per detector, [0, 1000]
    int flatExposuresPerBand = 2;       ///< raw flats per detector and band, [0, 1000]
    int htmLevel = 7;                   ///< HTM level of the reference-catalog shards, [0, 20]
    double refcatMagLimit = 21.0;       ///< faintest r magnitude of stars in the reference catalog
    double refcatPositionErrorMas = 0.1;   ///< position error at r = 17, mas; grows as 10^(0.2 (r - 17))
    double refcatPmErrorMasPerYr = 0.1;    ///< proper-motion error at r = 17, mas/yr; same scaling
    double refcatFluxErrorFraction = 0.003;  ///< fractional flux error at r = 17; same scaling
    bool writeFlatTruth = true;         ///< write the true flat field of each detector and band (FITS)

    void validate() const;
    /// Bind every field to "section.key" names.
    void bind(ConfigBinder& binder);
    /// Seeds of the sub-models derived from the master seed.
    std::uint64_t skySeed() const;
    std::uint64_t planSeed() const;
    /// The camera: the geometry of `camera` with the optics' radial distortion (observing.distortion_coeff_per_deg2)
    /// as its camera model. The simulator and the processing of its raws share it.
    std::shared_ptr<const Camera> makeCamera() const;
    std::uint64_t instrumentSeed() const;
};

/// The compiled-in presets (name -> INI text).
const std::map<std::string, std::string>& simPresets();
/// Preset, then files, then key=value overrides; validated. `effective` receives the dump for provenance.
SimConfig loadSimConfig(const std::string& preset, const std::vector<std::string>& files,
                        const std::vector<std::string>& overrides, std::string* effective = nullptr);

}  // namespace drp
