// Single-visit processing of one detector: ISR, background, cosmic rays, PSF, detection, measurement,
// aperture correction, astrometric and photometric calibration. This chains the stages; like them it
// does no file I/O and sees no MPI (the commands in drivers/ read and write, the executor distributes).
#pragma once

#include <optional>
#include <string>

#include "core/Camera.h"
#include "core/Exposure.h"
#include "core/RawExposure.h"
#include "core/Table.h"
#include "drivers/ConfigBinder.h"
#include "stages/calibrate/Astrometry.h"
#include "stages/calibrate/Photometry.h"
#include "stages/characterize/Background.h"
#include "stages/characterize/CosmicRay.h"
#include "stages/characterize/PsfDeterminer.h"
#include "stages/characterize/SeeingEstimate.h"
#include "stages/characterize/SourceDetection.h"
#include "stages/characterize/VisitPsf.h"
#include "stages/isr/IsrCalibrations.h"
#include "stages/isr/IsrConfig.h"
#include "stages/measure/MeasurementConfig.h"

namespace drp {

struct SingleVisitConfig {
    IsrConfig isr;
    BackgroundConfig background;
    /// Re-estimate the background once more with the sources of a first detection (at detection's S/N, with the
    /// seeing guess) masked, before the PSF: the first estimate counts the light of every source beyond its
    /// clipping in its bins and sits too high; the wings of the stars and galaxies then bias faint stars' sizes
    /// and fluxes low (Rubin's reEstimateBackground).
    bool reEstimateBackground = true;
    CosmicRayConfig cosmicRay;
    SourceDetectionConfig detection;          ///< the final detection (S/N 5 by default)
    double psfStarThresholdSigma = 50.0;      ///< detection S/N of the bright pass that finds PSF stars, [5, 1e6]
    /// A sparse field (a faint sky band, a short exposure) whose bright pass finds fewer than
    /// psf.minStars usable candidates is searched again at this S/N, [5, psfStarThresholdSigma].
    double psfStarThresholdSigmaFallback = 15.0;
    MeasurementConfig measurement;
    PsfDeterminerConfig psf;
    /// Fit the PSF once per visit, from the stars of all its detectors (stages/characterize/VisitPsf.h; the campaign's
    /// characterizeImage and measureVisitPsf tasks); false: every detector fits its own (psf, with its fallbacks).
    bool visitLevelPsf = true;
    VisitPsfConfig visitPsf;
    AstrometryConfig astrometry;
    PhotometryConfig photometry;
    double initialPsfFwhmArcsec = 1.0;        ///< guess of the seeing before the PSF is measured, arcsec (0, 10]
    /// Measure the seeing on the bright compact sources first (SeeingEstimate.h) and use it instead of the guess
    /// for the first detections; the cosmic-ray test uses the sharper of the two.
    bool measureSeeing = true;
    SeeingEstimateConfig seeing;
    std::string apCorrAperture = "apFlux_17"; ///< the large aperture PSF fluxes are corrected to
    int apCorrOrder = 1;                      ///< polynomial order of the aperture correction over the detector, [0, 2]
    double astrometrySourceMinSnr = 10.0;     ///< sources used for astrometry: psfFlux S/N above this
    double astrometrySourceMinSnrFallback = 5.0;  ///< with fewer than astrometryMinSourcesBeforeFallback such sources, use S/N above this instead, (0, astrometrySourceMinSnr]
    int astrometryMinSourcesBeforeFallback = 20;  ///< see above, [0, 100000]
    bool doAstrometry = true;                 ///< fit the WCS against the reference catalog
    bool doPhotometry = true;                 ///< fit the zero point against the reference catalog

    void validate() const;
    void bind(ConfigBinder& binder);
};

/// Reference stars near a detector, already propagated to the observation epoch.
struct ReferenceStars {
    std::vector<AstrometryRef> astrometry;
    std::vector<double> fluxNjy, fluxErrNjy;   ///< in the exposure's band
    std::vector<double> colourMag;             ///< the band's colour-term colour (0 when not configured)
};

/// A compact 42-bit ccdVisitId from a Rubin-style exposure id (dayObs * 100000 + seqNum) and a detector:
/// (days since 2020-01-01) << 26 | seqNum << 9 | detector, so source ids (ccdVisitId << 20 | index) fit
/// in 63 bits. Throws InvalidInputError for ids outside that packing (seqNum >= 100000, detector >= 512,
/// dates before 2020).
std::int64_t packCcdVisitId(std::int64_t visit, std::int64_t detector);

/// The PSF settings of a fallback to spatial order `order` when the configured order had too few stars: as few as
/// 3 stars per polynomial term (and at least 3 stars) instead of minStarsPerTerm and minStars. Star selection is
/// unchanged. Used by a detector's own PSF and by the visit's.
PsfDeterminerConfig fewStarPsfConfig(PsfDeterminerConfig config, int order);

/// Select and prepare the reference stars of a reference-catalog table (sky/ReferenceCatalog.h schema)
/// for an exposure: within `radius` of `center`, propagated by proper motion to `mjd`.
ReferenceStars prepareReferenceStars(const Table& refcat, const SpherePoint& center, Angle radius, double mjd,
                                     const std::string& band, const PhotometryConfig& photometry);

/// One detector's PSF stars: what characterizeImage writes (the psfStars dataset, VisitPsfIo.h) for its visit's PSF.
struct PsfStars {
    int detector = 0;
    Box2I bbox;                              ///< the detector's pixels
    std::vector<PsfCandidate> candidates;    ///< every bright-pass candidate
    std::vector<MaskedImageF> cutouts;       ///< same length: the selected stars' cutouts (psfStarCutouts), empty for the others
    PropertyList metadata;                   ///< the characterisation's summary (SEEINGPX, PSFTHRSH, NCR, ...)
};

/// The visit-level PSF as one detector uses it (VisitPsfData::forDetector).
struct DetectorVisitPsf {
    PsfDeterminationResult fit;          ///< psf: the visit model in the detector's frame; QA on its stars (indices empty)
    std::vector<Point2D> selected, used, reserved;  ///< the detector's PSF stars (detector frame)
    int visitStars = 0;                  ///< stars in the visit's fit
    int visitDetectors = 0;              ///< detectors that contributed
};

struct SingleVisitResult {
    Exposure calexp;
    Table sources{Schema()};                 ///< Source table: instrumental fluxes calibrated to nJy
    std::optional<Background> background;
    PsfDeterminationResult psf;
    std::optional<AstrometryResult> astrometry;
    std::optional<PhotometryResult> photometry;
    int nCosmicRays = 0;
    double apCorr = 1.0;                     ///< aperture correction at the detector centre
    PropertyList summary;                    ///< quality numbers, also written into the table metadata
};

/// Raw to calexp + Source table. `refs` may be null (no astrometry/photometry then, flagged in the summary).
/// `visitPsf` (optional): the visit's PSF model for this detector, used instead of a fit of its own when it passes the
/// same checks as a fitted model (PSFVISIT 1 in the summary; otherwise the detector fits its own, PSFVISIT 0).
SingleVisitResult processSingleVisit(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                                     const ReferenceStars* refs, const std::string& band, std::int64_t ccdVisitId,
                                     const SingleVisitConfig& config, const DetectorVisitPsf* visitPsf = nullptr);

/// The first half of processSingleVisit, up to the PSF stars: ISR, background, seeing, cosmic rays, the bright pass and
/// the PSF star selection, with the selected stars' cutouts (deterministic: singleVisit repeats these steps and finds
/// the same stars).
PsfStars characterizePsfStars(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                              std::int64_t ccdVisitId, const SingleVisitConfig& config);

/// Characterise and measure an already calibrated image (background, cosmic rays, PSF, detection,
/// measurement, aperture correction): what `drp measure-image` runs on a user's own image. `visitPsf` as in
/// processSingleVisit.
SingleVisitResult characterizeAndMeasure(Exposure exposure, std::int64_t ccdVisitId, const SingleVisitConfig& config,
                                         double pixelScaleArcsec, const DetectorVisitPsf* visitPsf = nullptr);

/// The table with every instrumental flux column (psfFlux, apFlux_*, kronFlux and their Err) converted
/// to nJy by `calib`; the instrumental PSF flux is kept as psfInstFlux/psfInstFluxErr.
Table calibrateFluxColumns(const Table& sources, const PhotoCalib& calib);

}  // namespace drp
