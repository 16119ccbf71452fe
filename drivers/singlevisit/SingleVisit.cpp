#include "drivers/singlevisit/SingleVisit.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "core/Error.h"
#include "core/Log.h"
#include "drivers/singlevisit/DpddColumns.h"
#include "sky/ReferenceCatalog.h"
#include "stages/characterize/SeeingEstimate.h"
#include "stages/isr/Isr.h"
#include "stages/measure/AdaptiveMoments.h"
#include "stages/measure/ApertureCorrection.h"
#include "stages/measure/SingleFrameMeasurement.h"

namespace drp {
namespace {

constexpr double kFwhmPerSigma = 2.354820045030949;

bool flag(const Table& t, const std::string& name, std::size_t row) {
    auto idx = t.schema().tryIndexOf(name);
    return idx && t.at(t.schema().find<bool>(name), row) != 0;
}

std::vector<PsfCandidate> psfCandidates(const Table& t) {
    std::vector<PsfCandidate> out(t.size());
    auto x = t.column<double>("x"), y = t.column<double>("y"), f = t.column<double>("psfFlux"),
         fe = t.column<double>("psfFluxErr"), ixx = t.column<double>("ixx"), iyy = t.column<double>("iyy"),
         ixy = t.column<double>("ixy");
    auto parent = t.column<std::int64_t>("parentSourceId");
    auto nChild = t.column<std::int32_t>("deblend_nChild");
    for (std::size_t i = 0; i < t.size(); ++i) {
        PsfCandidate& c = out[i];
        c.position = {x[i], y[i]};
        c.flux = f[i];
        c.fluxErr = fe[i];
        c.ixx = ixx[i];
        c.iyy = iyy[i];
        c.ixy = ixy[i];
        c.saturated = flag(t, "pixelFlags_saturated", i);
        c.blended = parent[i] != 0 || nChild[i] > 0;
        c.masked = flag(t, "pixelFlags_interpolatedCenter", i) || flag(t, "pixelFlags_crCenter", i) ||
                   flag(t, "pixelFlags_badCenter", i);
        c.edge = flag(t, "pixelFlags_edge", i) || flag(t, "centroid_flag_edge", i);
        c.flagged = flag(t, "centroid_flag", i) || flag(t, "shape_flag", i) || flag(t, "psfFlux_flag", i) ||
                    !std::isfinite(x[i]) || !std::isfinite(ixx[i]);
    }
    return out;
}

/// Rows of `t` within `radius` pixels of each position (nearest), for carrying PSF-star selections
/// from the bright pass to the final catalog.
std::vector<std::size_t> rowsNear(const Table& t, const std::vector<Point2D>& positions, double radius) {
    auto x = t.column<double>("x"), y = t.column<double>("y");
    std::vector<std::size_t> out;
    for (const Point2D& p : positions) {
        double best = radius * radius;
        std::size_t bi = SIZE_MAX;
        for (std::size_t i = 0; i < t.size(); ++i) {
            double d2 = (x[i] - p.x) * (x[i] - p.x) + (y[i] - p.y) * (y[i] - p.y);
            if (d2 < best) best = d2, bi = i;
        }
        if (bi != SIZE_MAX) out.push_back(bi);
    }
    return out;
}

bool isInstrumentalFluxColumn(const std::string& name) {
    if (name.find("_flag") != std::string::npos) return false;
    auto base = name.size() > 3 && name.compare(name.size() - 3, 3, "Err") == 0 ? name.substr(0, name.size() - 3) : name;
    return base == "psfFlux" || base == "kronFlux" || base.rfind("apFlux_", 0) == 0 || name == "psfFlux_x_Cov" ||
           name == "psfFlux_y_Cov";
}

}  // namespace

PsfDeterminerConfig fewStarPsfConfig(PsfDeterminerConfig c, int order) {
    const int terms = (order + 1) * (order + 2) / 2;
    c.minStarsPerTerm = std::min(c.minStarsPerTerm, 3);
    c.minStars = std::min(c.minStars, std::max(3, terms * c.minStarsPerTerm));
    return c;
}

std::int64_t packCcdVisitId(std::int64_t visit, std::int64_t detector) {
    const std::int64_t dayObs = visit / 100000, seq = visit % 100000;
    const int y = int(dayObs / 10000), m = int(dayObs / 100 % 100), d = int(dayObs % 100);
    auto civilDays = [](int yy, int mm, int dd) {  // days since 1970-01-01 (proleptic Gregorian)
        yy -= mm <= 2;
        const int era = (yy >= 0 ? yy : yy - 399) / 400;
        const int yoe = yy - era * 400;
        const int doy = (153 * (mm + (mm > 2 ? -3 : 9)) + 2) / 5 + dd - 1;
        const int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        return std::int64_t(era) * 146097 + doe - 719468;
    };
    const std::int64_t days = civilDays(y, m, d) - civilDays(2020, 1, 1);
    if (m < 1 || m > 12 || d < 1 || d > 31 || days < 0 || days >= (1 << 16) || detector < 0 || detector >= 512)
        throw InvalidInputError("cannot pack visit " + std::to_string(visit) + " detector " + std::to_string(detector) +
                                " into a ccdVisitId (needs dayObs*100000+seq with dayObs >= 20200101, detector < 512)");
    return (days << 26) | (seq << 9) | detector;
}

void SingleVisitConfig::validate() const {
    isr.validate();
    background.validate();
    cosmicRay.validate();
    detection.validate();
    seeing.validate();
    measurement.validate();
    psf.validate();
    visitPsf.validate();
    astrometry.validate();
    photometry.validate();
    if (!(psfStarThresholdSigma >= 5 && psfStarThresholdSigma <= 1e6))
        throw ConfigError("single visit: psf_star_threshold_sigma must be in [5, 1e6]");
    if (!(psfStarThresholdSigmaFallback >= 5 && psfStarThresholdSigmaFallback <= psfStarThresholdSigma))
        throw ConfigError("single visit: psf_star_threshold_sigma_fallback must be in [5, psf_star_threshold_sigma]");
    if (!(initialPsfFwhmArcsec > 0 && initialPsfFwhmArcsec <= 10))
        throw ConfigError("single visit: initial_psf_fwhm_arcsec must be in (0, 10]");
    if (apCorrOrder < 0 || apCorrOrder > 2) throw ConfigError("single visit: apcorr_order must be in [0, 2]");
    if (!(astrometrySourceMinSnrFallback > 0 && astrometrySourceMinSnrFallback <= astrometrySourceMinSnr))
        throw ConfigError("single visit: astrometry.min_source_snr_fallback must be in (0, astrometry.min_source_snr]");
    if (astrometryMinSourcesBeforeFallback < 0 || astrometryMinSourcesBeforeFallback > 100000)
        throw ConfigError("single visit: astrometry.min_sources_before_fallback must be in [0, 100000]");
}

void SingleVisitConfig::bind(ConfigBinder& b) {
    b.bind("detection.threshold_sigma", detection.thresholdSigma, "detection S/N threshold of the PSF-matched filter");
    b.bind("detection.psf_star_threshold_sigma", psfStarThresholdSigma, "S/N threshold of the bright pass for PSF stars");
    b.bind("detection.psf_star_threshold_sigma_fallback", psfStarThresholdSigmaFallback,
           "S/N threshold of a second bright pass when the first finds fewer than psf.minStars candidates");
    b.bind("detection.include_negative", detection.includeNegative, "also detect negative sources");
    b.bind("detection.kernel_half_width_sigma", detection.kernelHalfWidthSigma,
           "half-width of the matched filter, in PSF sigmas (the filter is the PSF Gaussian truncated there)");
    b.bind("background.bin_size", background.binSize, "background bin size, pixels");
    b.bind("background.clip_start_stride", background.clipStartStride,
           "the clipped mean of a background bin starts from the median and MAD of every n-th usable pixel");
    b.bind("background.re_estimate", reEstimateBackground,
           "estimate the background again with the sources of a first detection masked, before the PSF");
    b.bind("psf.spatial_order", psf.spatialOrder, "polynomial order of the PSF variation over the detector");
    b.bind("psf.visit_level", visitLevelPsf,
           "fit the PSF once per visit from the stars of all its detectors (false: each detector fits its own)");
    b.bind("psf.visit_spatial_order", visitPsf.spatialOrder, "polynomial order of the visit-level PSF over the focal plane");
    b.bind("psf.reserve_fraction", psf.reserveFraction, "fraction of PSF stars reserved for validation");
    b.bind("psf.oversampling", psf.oversampling, "PSF model nodes per pixel: 1, 2, 3, or 0 = 2 below psf.oversample_below_fwhm");
    b.bind("psf.min_weight_sigma", psf.minWeightSigma, "smallest weight sigma of the PSF determiner's adaptive moments, pixels (0: none)");
    b.bind("measurement.shape_min_weight_sigma", measurement.shapeMinWeightSigma,
           "smallest weight sigma of the shape plugin's adaptive moments, pixels (0: none)");
    b.bind("psf.oversample_below_fwhm", psf.oversampleBelowFwhm, "FWHM (pixels) below which psf.oversampling 0 oversamples the PSF model");
    b.bind("psf.initial_fwhm_arcsec", initialPsfFwhmArcsec, "seeing guess before the PSF is measured, arcsec");
    b.bind("psf.measure_seeing", measureSeeing, "measure the seeing on the bright compact sources before cosmic rays and detection");
    b.bind("apcorr.aperture", apCorrAperture, "aperture column PSF fluxes are corrected to");
    b.bind("apcorr.order", apCorrOrder, "polynomial order of the aperture correction");
    b.bind("astrometry.enabled", doAstrometry, "fit the WCS against the reference catalog");
    b.bind("astrometry.max_offset_arcsec", astrometry.maxOffsetArcsec, "pointing error searched, arcsec");
    b.bind("astrometry.max_rotation_deg", astrometry.maxRotationDeg, "rotation error searched, deg");
    b.bind("astrometry.sip_order", astrometry.sipOrder, "SIP order of the fitted WCS");
    b.bind("astrometry.min_source_snr", astrometrySourceMinSnr, "S/N of sources used for astrometry");
    b.bind("astrometry.min_source_snr_fallback", astrometrySourceMinSnrFallback,
           "S/N cut used instead when fewer than astrometry.min_sources_before_fallback sources pass the first");
    b.bind("astrometry.min_sources_before_fallback", astrometryMinSourcesBeforeFallback,
           "sources above astrometry.min_source_snr below which the fallback cut is used");
    b.bind("astrometry.few_star_enabled", astrometry.fewStarEnabled, "try the few-star matcher when pattern matching cannot work");
    b.bind("astrometry.few_star_min_matches", astrometry.fewStarMinMatches, "matches a few-star solution needs");
    b.bind("astrometry.affine_min_matches", astrometry.affineMinMatches,
           "matches for an affine correction of the header WCS (fewer: shift + rotation + scale)");
    b.bind("astrometry.radial_distortion", astrometry.radialDistortion,
           "below the TAN-SIP match count, with a header without SIP: try TAN + a radial distortion about CRPIX");
    b.bind("astrometry.radial_min_f", astrometry.radialMinF, "F-test threshold for keeping the radial term");
    b.bind("astrometry.few_star_max_false_solutions", astrometry.fewStarMaxFalseSolutions,
           "expected number of false few-star solutions accepted");
    b.bind("photometry.enabled", doPhotometry, "fit the zero point against the reference catalog");
    b.bind("photometry.min_source_snr", photometry.minSourceSnr, "S/N of sources used for the zero point");
}

ReferenceStars prepareReferenceStars(const Table& refcat, const SpherePoint& center, Angle radius, double mjd,
                                     const std::string& band, const PhotometryConfig& photometry) {
    ReferenceStars out;
    if (refcat.empty()) return out;
    ReferenceCatalogKeys k(refcat.schema());
    auto bandIndex = [&](const std::string& b) -> int {
        for (std::size_t i = 0; i < k.bands.size(); ++i)
            if (k.bands[i] == b) return int(i);
        return -1;
    };
    int bi = bandIndex(band);
    ColourTerm ct = photometry.colourTerm(band);
    int blue = bandIndex(ct.blueBand), red = bandIndex(ct.redBand);
    for (std::size_t i : rowsInCircle(refcat, center, radius)) {
        SpherePoint p = propagate(refcat.at(k.ra, i) * degrees, refcat.at(k.dec, i) * degrees, refcat.at(k.pmRa, i),
                                  refcat.at(k.pmDec, i), refcat.at(k.parallax, i), refcat.at(k.epoch, i), mjd);
        double yrs = std::fabs(mjd - refcat.at(k.epoch, i)) / 365.25;
        double err = std::hypot(refcat.at(k.raErr, i), yrs * refcat.at(k.pmRaErr, i));
        double flux = bi >= 0 ? refcat.at(k.flux[std::size_t(bi)], i) : std::numeric_limits<double>::quiet_NaN();
        double fluxErr = bi >= 0 ? refcat.at(k.fluxErr[std::size_t(bi)], i) : std::numeric_limits<double>::quiet_NaN();
        double mag = flux > 0 ? -2.5 * std::log10(flux) + 31.4 : 99.0;
        double colour = 0.0;
        if (blue >= 0 && red >= 0) {
            double fb = refcat.at(k.flux[std::size_t(blue)], i), fr = refcat.at(k.flux[std::size_t(red)], i);
            if (fb > 0 && fr > 0) colour = -2.5 * std::log10(fb / fr);
        }
        out.astrometry.push_back({p, err, mag});
        out.fluxNjy.push_back(flux);
        out.fluxErrNjy.push_back(fluxErr);
        out.colourMag.push_back(colour);
    }
    return out;
}

Table calibrateFluxColumns(const Table& in, const PhotoCalib& calib) {
    Schema schema;
    std::vector<std::size_t> src;
    for (std::size_t i = 0; i < in.schema().size(); ++i) {
        FieldInfo f = in.schema().field(i);
        if (isInstrumentalFluxColumn(f.name) && f.type == FieldType::Float64) {
            f.unit = f.name.ends_with("_Cov") ? "nJy pixel" : "nJy";
            f.doc = f.doc + " (calibrated)";
        }
        schema.addField(f);
        src.push_back(i);
    }
    auto kInst = schema.addField<double>("psfInstFlux", "PSF flux before photometric calibration", "electron");
    auto kInstErr = schema.addField<double>("psfInstFluxErr", "error of psfInstFlux", "electron");
    Table out(schema, in.size());
    for (std::size_t i = 0; i < src.size(); ++i) out.columnData(i) = in.columnData(src[i]);
    auto inst = in.column<double>("psfFlux"), instErr = in.column<double>("psfFluxErr");
    for (std::size_t r = 0; r < in.size(); ++r) {
        out.at(kInst, r) = inst[r];
        out.at(kInstErr, r) = instErr[r];
    }
    for (std::size_t i = 0; i < schema.size(); ++i) {
        const FieldInfo& f = schema.field(i);
        if (!isInstrumentalFluxColumn(f.name) || f.type != FieldType::Float64) continue;
        bool isErr = f.name.size() > 3 && f.name.compare(f.name.size() - 3, 3, "Err") == 0;
        auto col = out.column<double>(f.name);
        if (isErr) {
            auto value = in.column<double>(f.name.substr(0, f.name.size() - 3));
            for (std::size_t r = 0; r < col.size(); ++r)
                col[r] = calib.instFluxToNanojansky(value[r], col[r]).error;
        } else {
            for (std::size_t r = 0; r < col.size(); ++r) col[r] = calib.instFluxToNanojansky(col[r]);
        }
    }
    out.metadata() = in.metadata();
    return out;
}

/// Quality numbers go into the Source table; wall times (T_* keys) stay in the summary only, so the file
/// is the same bytes whichever rank, machine load or rerun produced it.
PropertyList withoutTimings(const PropertyList& summary) {
    PropertyList quality = summary;
    for (const auto& key : summary.keys())
        if (key.rfind("T_", 0) == 0) quality.remove(key);
    return quality;
}

/// Wall time of each step, logged at VERBOSE and kept in the summary (T_<STEP> keys, seconds).
class StepTimer {
public:
    explicit StepTimer(PropertyList& summary) : summary_(summary), last_(std::chrono::steady_clock::now()) {}
    void mark(const std::string& step) {
        auto now = std::chrono::steady_clock::now();
        double s = std::chrono::duration<double>(now - last_).count();
        last_ = now;
        summary_.set("T_" + step, s, "wall time of this step (s)");
        DRP_LOG_VERBOSE("timing", step << ": " << s << " s");
    }

private:
    PropertyList& summary_;
    std::chrono::steady_clock::time_point last_;
};

namespace {

/// Candidates with no flag set.
std::ptrdiff_t usableCandidates(const std::vector<PsfCandidate>& cs) {
    return std::count_if(cs.begin(), cs.end(), [](const PsfCandidate& c) { return c.isCandidate(); });
}

/// The pixel scale (arcsec) at the centre of a post-ISR exposure, from its header WCS; InvalidInputError without one.
double headerPixelScaleArcsec(const Exposure& post) {
    if (!post.hasWcs()) throw InvalidInputError("the raw has no header WCS: astrometry needs a starting point");
    return post.wcs()->pixelScale({post.bbox().minX() + 0.5 * post.width(), post.bbox().minY() + 0.5 * post.height()}).asArcseconds();
}

/// Characterisation up to the PSF stars (background and its re-estimate, seeing, cosmic rays, the bright pass): what
/// the PSF determination needs and what the rest of characterizeAndMeasure reuses. Sets res.background,
/// res.nCosmicRays and the summary's SEEINGPX, PSFTHRSH; the exposure's PSF is the seeing's Gaussian.
struct PsfStarsStage {
    Background bkg;
    double sigma0 = 0.0;            ///< the seeing's sigma (or the guess), pixels
    Table brightTable{Schema()};    ///< the bright pass's catalogue
    std::vector<PsfCandidate> candidates;
};

PsfStarsStage characterizeToPsfStars(Exposure& exposure, std::int64_t ccdVisitId, const SingleVisitConfig& cfg,
                                     double pixelScaleArcsec, SingleVisitResult& res, StepTimer& timer) {
    MaskedImageF& mi = exposure.maskedImage();
    // With a re-estimate to follow, the first estimate is from a quarter of the pixels (BackgroundConfig::sampleStep):
    // the sum of both has the re-estimate's noise.
    BackgroundConfig firstPass = cfg.background;
    if (cfg.reEstimateBackground) firstPass.sampleStep = 2;
    Background bkg = estimateBackground(mi, firstPass);
    subtractBackground(mi, bkg);
    timer.mark("BKG");

    // The re-estimate: a detection with the seeing guess masks the sources.
    const double sigmaGuess = cfg.initialPsfFwhmArcsec / pixelScaleArcsec / kFwhmPerSigma;
    std::optional<DetectionResult> first;
    if (cfg.reEstimateBackground) {
        // Only the mask of this detection is kept (the bright pass below clears and sets DETECTED again).
        SourceDetectionConfig masking = cfg.detection;
        masking.includeNegative = false;
        masking.reEstimateBackground = true;
        masking.background = cfg.background;
        try {
            first = detectSources(mi, sigmaGuess, masking);
            if (first->background) bkg += *first->background;
        } catch (const InvalidInputError& e) {  // no bin left with unmasked sky (a field full of one object)
            DRP_LOG_WARN("characterize", "background not re-estimated: " << e.message());
        }
        timer.mark("BKG2");
    }
    res.background = bkg;
    // The seeing, measured on the bright compact sources (SeeingEstimate.h; those of the first detection when there
    // is one); the configured guess without them. It sets the bright pass's filter and Gaussian PSF.
    double sigma0 = sigmaGuess;
    if (cfg.measureSeeing) {
        SeeingEstimate seeing;
        if (first) seeing = estimateSeeing(mi, first->positive, sigmaGuess, cfg.seeing, cfg.psf);
        // Without that detection, or too few isolated bright peaks in its footprints (which merge neighbours and
        // noise peaks at 5 sigma): a detection of its own at the bright pass's threshold.
        if (!first || !std::isfinite(seeing.sigma)) seeing = estimateSeeing(mi, sigmaGuess, cfg.seeing, cfg.psf);
        if (std::isfinite(seeing.sigma)) sigma0 = seeing.sigma;
        res.summary.set("SEEINGPX", seeing.sigma, "PSF sigma of the bright compact sources before the PSF model (pixels)");
        timer.mark("SEEING");
    }
    auto psf0 = GaussianPsf::make(sigma0);
    // The cosmic-ray test with a PSF no broader than the guess or the measurement: against a broader PSF than the
    // real one every star looks too sharp and has its core "repaired".
    res.nCosmicRays = findCosmicRays(mi, *GaussianPsf::make(std::min(sigma0, sigmaGuess)), 0.0, cfg.cosmicRay);
    exposure.setPsf(psf0);
    timer.mark("CR");

    // Bright pass: PSF stars, measured by the plugins the star selection reads (psfCandidates) and no others.
    MeasurementConfig brightMeasurement = cfg.measurement;
    std::erase_if(brightMeasurement.plugins, [](const std::string& p) {
        return p != "centroid" && p != "pixelFlags" && p != "shape" && p != "psfFlux";
    });
    SingleFrameMeasurement brightSfm(brightMeasurement);
    SourceDetectionConfig brightCfg = cfg.detection;
    brightCfg.thresholdSigma = cfg.psfStarThresholdSigma;
    brightCfg.includeNegative = false;
    brightCfg.detectAtEdges = false;  // PSF stars must not touch the edge: no need to search the band there
    // (Detection clears and resets its mask planes, so the final pass below replaces these.)
    DetectionResult bright = detectSources(mi, sigma0, brightCfg);
    Table brightTable = brightSfm.measure(exposure, bright.positive, ccdVisitId);
    std::vector<PsfCandidate> candidates = psfCandidates(brightTable);
    // A sparse field (faint sky band, short exposure): too few stars above the bright threshold for any
    // pixel model; search again lower (the PSF determiner keeps its own S/N cut, 20 by default), so the
    // PSF is measured from the stars there are instead of falling back to the seeing guess.
    double brightThreshold = cfg.psfStarThresholdSigma;
    if (usableCandidates(candidates) < cfg.psf.minStars && cfg.psfStarThresholdSigmaFallback < cfg.psfStarThresholdSigma) {
        brightCfg.thresholdSigma = cfg.psfStarThresholdSigmaFallback;
        bright = detectSources(mi, sigma0, brightCfg);
        brightTable = brightSfm.measure(exposure, bright.positive, ccdVisitId);
        candidates = psfCandidates(brightTable);
        brightThreshold = cfg.psfStarThresholdSigmaFallback;
    }
    res.summary.set("PSFTHRSH", brightThreshold, "S/N threshold of the bright pass that found the PSF stars");
    timer.mark("BRIGHT");
    return PsfStarsStage{std::move(bkg), sigma0, std::move(brightTable), std::move(candidates)};
}

}  // namespace

PsfStars characterizePsfStars(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                              std::int64_t ccdVisitId, const SingleVisitConfig& cfg) {
    Exposure post = runIsr(raw, detector, calibs, cfg.isr);
    const double scale = headerPixelScaleArcsec(post);
    SingleVisitResult res;
    StepTimer timer(res.summary);
    PsfStarsStage st = characterizeToPsfStars(post, ccdVisitId, cfg, scale, res, timer);
    PsfStars out;
    out.detector = detector.id();
    out.bbox = post.bbox();
    out.cutouts = psfStarCutouts(post.maskedImage(), st.candidates, cfg.psf);
    out.candidates = std::move(st.candidates);
    res.summary.set("NCR", res.nCosmicRays, "cosmic rays repaired");
    res.summary.set("NPSFCAND", std::int64_t(out.candidates.size()), "bright-pass PSF candidates");
    std::int64_t nCut = 0;
    for (const auto& c : out.cutouts) nCut += c.width() > 0 ? 1 : 0;
    res.summary.set("NPSFSEL", nCut, "selected PSF stars (with cutouts)");
    out.metadata = withoutTimings(res.summary);
    return out;
}

SingleVisitResult characterizeAndMeasure(Exposure exposure, std::int64_t ccdVisitId, const SingleVisitConfig& cfg,
                                         double pixelScaleArcsec, const DetectorVisitPsf* visitPsf) {
    SingleVisitResult res;
    StepTimer timer(res.summary);
    MaskedImageF& mi = exposure.maskedImage();
    PsfStarsStage st = characterizeToPsfStars(exposure, ccdVisitId, cfg, pixelScaleArcsec, res, timer);
    const Background& bkg = st.bkg;
    const double sigma0 = st.sigma0;
    const Table& brightTable = st.brightTable;
    const std::vector<PsfCandidate>& candidates = st.candidates;
    SingleFrameMeasurement sfm(cfg.measurement);
    const Point2D centre{exposure.bbox().minX() + 0.5 * (exposure.width() - 1),
                         exposure.bbox().minY() + 0.5 * (exposure.height() - 1)};
    // The model's core width (matchedFilterSigma, with the determiner's weight floor): the check of a fitted model below
    // and the final detection's filter; NaN until measured for the model kept.
    double coreSigma = std::numeric_limits<double>::quiet_NaN();
    // The visit's model, when there is one: it must have both widths defined here, as a fitted model must (below).
    bool fromVisit = false;
    if (visitPsf && visitPsf->fit.psf) {
        double core = std::numeric_limits<double>::quiet_NaN(), unweighted = core;
        try {
            core = matchedFilterSigma(*visitPsf->fit.psf, centre, cfg.psf.minWeightSigma);
            unweighted = visitPsf->fit.psf->computeSigma(centre);
        } catch (const NumericalError&) {  // a kernel with no positive sum here: not usable
        }
        if (std::isfinite(core) && std::isfinite(unweighted) && unweighted > 0) {
            res.psf = visitPsf->fit;
            coreSigma = core;
            fromVisit = true;
        } else {
            DRP_LOG_WARN("characterize", "the visit's PSF model has width " << core << " px (unweighted " << unweighted
                                                                            << " px) here: the detector fits its own");
        }
    }
    // The PSF of the detector's own stars (without a usable visit model): the configured model; with too few stars for
    // its spatial order, the next lower order (linear, then constant); with fewer still a Gaussian of the stars' median
    // size (or the seeing guess). PSFFALLBK records how far it fell: 0 as configured, 1 a lower order, 2 Gaussian.
    int fallback = 0;
    bool fitted = fromVisit;
    std::string lastError;
    for (int order = cfg.psf.spatialOrder; order >= 0 && !fitted; --order) {
        PsfDeterminerConfig c = cfg.psf;
        c.spatialOrder = order;
        if (order < cfg.psf.spatialOrder) {
            c = fewStarPsfConfig(c, order);
            fallback = 1;
        }
        try {
            res.psf = determinePsf(mi, candidates, c);
            fitted = true;
        } catch (const NumericalError& e) {
            lastError = e.message();
            DRP_LOG_VERBOSE("characterize", "PSF of spatial order " << order << " not possible: " << lastError);
        }
    }
    // The stellar locus size T = Ixx + Iyy of the candidates (psfLocusSize: the most compact populated ln T window,
    // which galaxies do not inflate; NaN without any): the width of the Gaussian of last resort, and the check of a
    // lower-order model.
    const double starT = psfLocusSize(candidates, cfg.psf);
    const std::size_t nSized = std::isfinite(starT) ? std::size_t(usableCandidates(candidates)) : 0;
    // The Gaussian of last resort: the stellar locus size, or the seeing guess.
    auto gaussianFallback = [&](const std::string& why) {
        const double sigmaFallback = nSized > 0 ? std::sqrt(0.5 * starT) : sigma0;
        DRP_LOG_WARN("characterize", "no pixel PSF model (" << why << "): Gaussian of sigma " << sigmaFallback << " px from "
                                                            << nSized << " stars");
        res.psf = PsfDeterminationResult{};
        res.psf.psf = GaussianPsf::make(sigmaFallback);
        res.psf.reservedMedianSizeResidual = std::numeric_limits<double>::quiet_NaN();
        res.psf.reservedSizeResidualScatter = std::numeric_limits<double>::quiet_NaN();
        coreSigma = std::numeric_limits<double>::quiet_NaN();
        fallback = 2;
    };
    if (!fitted) gaussianFallback(lastError);
    if (fitted && !fromVisit) {
        // A model fitted from very few stars can be degenerate (zero or undefined width at the centre): both its
        // adaptive width (with the determiner's weight floor) and its unweighted one (Psf::computeSigma, which the coadd
        // and the survey-property maps read from the calexp) must be defined. The unweighted moments of a model from a
        // few stars follow the photon noise of its wings (a negative determinant on 5 of 35 detectors at 0.55"; on 7
        // u-band demo detectors a model with an undefined unweighted width stopped their coadds).
        coreSigma = matchedFilterSigma(*res.psf.psf, centre, cfg.psf.minWeightSigma);
        const double unweighted = res.psf.psf->computeSigma(centre);
        if (!std::isfinite(coreSigma) || !std::isfinite(unweighted) || unweighted <= 0) {
            gaussianFallback("the fitted model from " + std::to_string(res.psf.nUsed) + " stars has width " + std::to_string(coreSigma) +
                             " px (unweighted " + std::to_string(unweighted) + " px) at the centre");
        } else if (fallback > 0) {
            // A lower-order model from few, faint stars (a sparse field) must still have the stars' size:
            // its adaptive size at the centre against the median of the candidates' (S/N > 20).
            AdaptiveMomentsControl mc;  // measured as the candidates' sizes are (the shape plugin's weight floor)
            mc.minWeightVariance = cfg.measurement.shapeMinWeightSigma * cfg.measurement.shapeMinWeightSigma;
            const AdaptiveMomentsResult m =
                computeAdaptiveMoments(res.psf.psf->computeKernelImage(centre), {0.0, 0.0}, SecondMoments::circle(coreSigma), mc);
            if (nSized > 0 && !m.failed()) {
                const double ratio = m.moments.trace() / starT;
                if (!(ratio > 0.75 && ratio < 1.33))
                    gaussianFallback("the lower-order model's size is " + std::to_string(ratio) + " x the stars' median");
            }
        }
    }
    exposure.setPsf(res.psf.psf);
    timer.mark("PSF");
    res.summary.set("PSFFALLBK", fallback, "PSF fallback: 0 none, 1 constant pixel model, 2 Gaussian from moments");
    res.summary.set("PSFVISIT", std::int64_t(fromVisit ? 1 : 0), "1: the visit-level PSF model (fitted to every detector's stars)");
    if (fromVisit) {
        res.summary.set("PSFVNSTR", std::int64_t(visitPsf->visitStars), "stars in the visit-level PSF fit");
        res.summary.set("PSFVNDET", std::int64_t(visitPsf->visitDetectors), "detectors in the visit-level PSF fit");
    }
    const double sigma = res.psf.psf->computeSigma(centre);
    // The final detection's filter: the PSF's core (the unweighted `sigma` counts the wings: demo r band completeness
    // at S/N 5-6 64.4% with it, 67.9% with the core); measured here only for a Gaussian of last resort.
    if (!std::isfinite(coreSigma)) coreSigma = matchedFilterSigma(*res.psf.psf, centre, cfg.psf.minWeightSigma);
    const double detSigma = std::isfinite(coreSigma) ? coreSigma : sigma;

    // Final detection and measurement with the measured PSF.
    DetectionResult det = detectSources(mi, detSigma, cfg.detection);
    timer.mark("DETECT");
    Table src = sfm.measure(exposure, det.positive, ccdVisitId);
    timer.mark("MEASURE");

    // The PSF stars in the final catalog (the bright pass's rows are the candidates' indices; the visit's model lists
    // the detector's stars by position): Rubin's calib_psf_candidate (chosen by the star selection), calib_psf_used (in
    // the fit), calib_psf_reserved.
    const auto finalRows = [&](const std::vector<std::size_t>& brightRows, const std::vector<Point2D>& visitStars) {
        if (fromVisit) return rowsNear(src, visitStars, 1.0);
        auto bx = brightTable.column<double>("x"), by = brightTable.column<double>("y");
        std::vector<Point2D> positions;
        for (std::size_t i : brightRows) positions.push_back({bx[i], by[i]});
        return rowsNear(src, positions, 1.0);
    };
    static const DetectorVisitPsf kNoVisitPsf;
    const DetectorVisitPsf& vp = fromVisit ? *visitPsf : kNoVisitPsf;
    const std::vector<std::size_t> starRows = finalRows(res.psf.used, vp.used);
    for (const auto& [name, doc, rows] :
         {std::tuple{"calib_psf_candidate", "chosen by the PSF star selection", finalRows(res.psf.selected, vp.selected)},
          std::tuple{"calib_psf_used", "used in the PSF model fit (and the aperture correction)", starRows},
          std::tuple{"calib_psf_reserved", "a PSF star kept out of the fit to validate the model", finalRows(res.psf.reserved, vp.reserved)}}) {
        auto flag = src.column(src.addColumn<bool>(name, doc));
        for (std::size_t r : rows) flag[r] = 1;
    }
    // Aperture correction from the PSF stars actually used.
    ApertureCorrectionResult apc;
    try {
        apc = measureApertureCorrection(src, starRows, cfg.apCorrAperture, cfg.apCorrOrder, exposure.bbox());
        applyApertureCorrection(src, apc);
        res.apCorr = apc.value(centre);
    } catch (const Error& e) {  // too few stars: PSF fluxes stay uncorrected, and the summary says so
        DRP_LOG_WARN("characterize", "no aperture correction: " << e.message());
        res.apCorr = std::numeric_limits<double>::quiet_NaN();
    }

    PropertyList& s = res.summary;
    s.set("NSOURCE", std::int64_t(src.size()), "sources measured");
    s.set("NCR", res.nCosmicRays, "cosmic rays repaired");
    s.set("BKGMEAN", bkg.image(Box2I(Point2I{int(centre.x), int(centre.y)}, 1, 1))(0, 0), "background at the centre (image units)");
    s.set("PSFSIGMA", sigma, "PSF sigma at the centre (pixels)");
    s.set("DETSIGMA", detSigma, "sigma of the final detection's Gaussian filter: the PSF core's adaptive size (pixels)");
    s.set("PSFNUSED", res.psf.nUsed, "PSF stars used");
    s.set("PSFOVSMP", std::int64_t(res.psf.oversampling), "PSF model nodes per pixel");
    s.set("PSFDTT", res.psf.reservedMedianSizeResidual, "median dT/T of the PSF model on reserved stars");
    s.set("PSFDTTSC", res.psf.reservedSizeResidualScatter, "scatter of dT/T on reserved stars");
    {  // mean and count, so that the reserved stars of many detectors can be pooled (drp assess)
        std::int64_t n = 0;
        for (double r : res.psf.reservedSizeResiduals) n += std::isfinite(r) ? 1 : 0;
        s.set("PSFDTTN", n, "reserved stars with a dT/T");
        s.set("PSFDTTMN", n > 0 ? res.psf.reservedMeanSizeResidual : std::numeric_limits<double>::quiet_NaN(),
              "mean dT/T of the PSF model on reserved stars");
        s.set("PSFDTTWM", n > 0 ? res.psf.reservedWeightedMeanSizeResidual : std::numeric_limits<double>::quiet_NaN(),
              "S/N-weighted mean dT/T on reserved stars");
        s.set("PSFDTTW", res.psf.reservedSizeResidualWeightSum, "sum of the reserved stars' dT/T weights");
        s.set("PSFDTTWS", res.psf.reservedSizeResidualWeightedSs, "sum of weight x (dT/T - PSFDTTWM)^2");
    }
    s.set("APCORR", res.apCorr, "aperture correction at the centre");
    s.set("APCNSTAR", std::int64_t(apc.nStars), "stars in the aperture correction");
    s.set("DETTHRSH", det.threshold, "detection threshold (filtered image units)");
    src.metadata().merge(withoutTimings(s));
    res.sources = std::move(src);
    res.calexp = std::move(exposure);
    return res;
}

SingleVisitResult processSingleVisit(const RawExposure& raw, const Detector& detector, const IsrCalibrations& calibs,
                                     const ReferenceStars* refs, const std::string& band, std::int64_t ccdVisitId,
                                     const SingleVisitConfig& cfg, const DetectorVisitPsf* visitPsf) {
    Exposure post = runIsr(raw, detector, calibs, cfg.isr);
    const double scale = headerPixelScaleArcsec(post);
    SingleVisitResult res = characterizeAndMeasure(std::move(post), ccdVisitId, cfg, scale, visitPsf);
    Table& src = res.sources;

    if (refs && cfg.doAstrometry) {
        auto x = src.column<double>("x"), y = src.column<double>("y"), xe = src.column<double>("xErr"),
             ye = src.column<double>("yErr"), f = src.column<double>("psfFlux"), fe = src.column<double>("psfFluxErr");
        std::vector<AstrometrySource> sources;
        std::vector<std::size_t> rowOf;
        // Sources above the S/N cut; a shallow field with too few of them uses the fallback cut.
        auto select = [&](double minSnr) {
            sources.clear();
            rowOf.clear();
            for (std::size_t i = 0; i < src.size(); ++i) {
                if (!(f[i] / fe[i] > minSnr) || !std::isfinite(x[i]) || !std::isfinite(xe[i])) continue;
                if (flag(src, "pixelFlags_saturatedCenter", i) || flag(src, "centroid_flag", i)) continue;
                sources.push_back({{x[i], y[i]}, xe[i], ye[i], f[i]});
                rowOf.push_back(i);
            }
        };
        select(cfg.astrometrySourceMinSnr);
        double snrUsed = cfg.astrometrySourceMinSnr;
        if (int(sources.size()) < cfg.astrometryMinSourcesBeforeFallback && cfg.astrometrySourceMinSnrFallback < snrUsed) {
            select(cfg.astrometrySourceMinSnrFallback);
            snrUsed = cfg.astrometrySourceMinSnrFallback;
        }
        AstrometryResult astrom = fitAstrometry(sources, refs->astrometry, *res.calexp.wcs(), res.calexp.bbox(), cfg.astrometry);
        res.calexp.setWcs(astrom.wcs);
        // Positions on the sky with the fitted WCS.
        auto ra = src.column<double>("ra"), dec = src.column<double>("dec");
        for (std::size_t i = 0; i < src.size(); ++i) {
            if (!std::isfinite(x[i])) continue;
            SpherePoint p = astrom.wcs->pixelToSky({x[i], y[i]});
            ra[i] = p.ra().asDegrees();
            dec[i] = p.dec().asDegrees();
        }
        res.summary.set("ASTNMTCH", astrom.nMatches, "astrometric matches");
        res.summary.set("ASTRMS", astrom.rmsResidualMas, "astrometric rms residual (mas)");
        res.summary.set("ASTMED", astrom.medianResidualMas, "astrometric median residual (mas)");
        res.summary.set("ASTOFFX", astrom.offsetArcsec.x, "pointing offset found, east (arcsec)");
        res.summary.set("ASTOFFY", astrom.offsetArcsec.y, "pointing offset found, north (arcsec)");
        res.summary.set("ASTROT", astrom.rotationDeg, "rotation offset found (deg)");
        res.summary.set("ASTMODE", std::string(toString(astrom.fitModel)), "astrometric model fitted");
        res.summary.set("ASTFEW", std::int64_t(astrom.fewStars ? 1 : 0), "1: few-star astrometric solution");
        res.summary.set("ASTSNR", snrUsed, "S/N cut of the sources used for astrometry");

        if (cfg.doPhotometry) {
            std::vector<PhotometryMatch> pm;
            for (const AstrometryMatch& m : astrom.matches) {
                std::size_t row = rowOf[m.source];
                pm.push_back({f[row], fe[row], refs->fluxNjy[m.ref], refs->fluxErrNjy[m.ref], refs->colourMag[m.ref]});
            }
            // A shallow field with too few stars above the photometric S/N cut uses the astrometric
            // fallback cut and accepts as few as 3 stars (the zero point is then noisier: ZPSNR, ZPNSTAR
            // and ZPERR say so).
            PhotometryConfig pcfg = cfg.photometry;
            PhotometryResult photom;
            try {
                photom = fitZeroPoint(pm, band, pcfg);
            } catch (const NumericalError& e) {
                if (!(cfg.astrometrySourceMinSnrFallback < pcfg.minSourceSnr)) throw;
                DRP_LOG_VERBOSE("calibrate", e.message() << "; retrying with source S/N >= " << cfg.astrometrySourceMinSnrFallback);
                pcfg.minSourceSnr = cfg.astrometrySourceMinSnrFallback;
                pcfg.minStars = std::min(pcfg.minStars, 3);
                photom = fitZeroPoint(pm, band, pcfg);
            }
            res.summary.set("ZPSNR", pcfg.minSourceSnr, "S/N cut of the zero-point stars");
            res.calexp.setPhotoCalib(std::make_shared<PhotoCalib>(photom.photoCalib));
            res.summary.set("ZP", photom.zeroPointMag, "photometric zero point (AB mag of 1 e-)");
            res.summary.set("ZPERR", photom.zeroPointErrMag, "zero point error (mag)");
            res.summary.set("ZPRMS", photom.rmsMag, "rms of the zero-point stars (mag)");
            res.summary.set("ZPNSTAR", photom.nUsed, "zero-point stars");
            res.photometry = photom;
        }
        res.astrometry = std::move(astrom);
    }
    if (res.calexp.hasPhotoCalib()) {
        src = calibrateFluxColumns(src, *res.calexp.photoCalib());
        if (res.calexp.hasWcs())
            src = addDpddColumns(src, *res.calexp.wcs(), res.calexp.photoCalib()->calibrationMean(),
                                 cfg.measurement.apertureRadii);
    }
    src.metadata().merge(withoutTimings(res.summary));
    return res;
}

}  // namespace drp
