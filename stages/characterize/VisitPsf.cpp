#include "stages/characterize/VisitPsf.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/Error.h"
#include "stages/characterize/PsfStarFit.h"

namespace drp {

namespace {

/// The stamp side the cutouts of a detector whose selected stars have median sigma `sigma` allow (see the header).
int cutoutStampCap(double sigma, const PsfDeterminerConfig& config) {
    return psffit::stampSizeFor(kCutoutSigmaFactor * sigma, config);
}

}  // namespace

void VisitPsfConfig::validate() const {
    if (spatialOrder < 0 || spatialOrder > PsfexPsf::kMaxSpatialOrder) throw ConfigError("VisitPsfConfig.spatialOrder must be in [0, 3]");
}

std::vector<MaskedImageF> psfStarCutouts(const MaskedImageF& image, const std::vector<PsfCandidate>& candidates,
                                         const PsfDeterminerConfig& config) {
    const std::vector<std::size_t> selected = selectPsfStars(candidates, config);
    std::vector<MaskedImageF> out(candidates.size());
    if (selected.empty()) return out;
    const int cap = cutoutStampCap(psffit::medianSigma(candidates, selected), config);
    const double floorSigma = std::max(config.minWeightSigma, std::sqrt(config.moments.minWeightVariance));
    for (std::size_t i : selected) {
        const PsfCandidate& c = candidates[i];
        const double mean = 0.5 * (c.ixx + c.iyy), diff = 0.5 * (c.ixx - c.iyy);
        const double sigmaMax = std::max({std::sqrt(mean + std::hypot(diff, c.ixy)), floorSigma, 0.5});
        const int h = std::max(cap / 2 + config.padding + 3, int(std::ceil(2.0 * config.moments.windowSigmas * sigmaMax)) + 3);
        const int ix = int(std::floor(c.position.x + 0.5)), iy = int(std::floor(c.position.y + 0.5));
        const Box2I box = Box2I({ix - h, iy - h}, 2 * h + 1, 2 * h + 1).intersection(image.bbox());
        if (!box.empty()) out[i] = image.subImage(box).clone();
    }
    return out;
}

VisitPsfResult determineVisitPsf(const std::vector<VisitPsfDetector>& detectors, const PsfDeterminerConfig& psf,
                                 const VisitPsfConfig& config) {
    psf.validate();
    config.validate();
    PsfDeterminerConfig fitConfig = psf;
    fitConfig.spatialOrder = config.spatialOrder;
    std::vector<psffit::FitSource> sources;
    int cap = 0;
    for (const VisitPsfDetector& d : detectors) {
        const std::string id = "determineVisitPsf: detector " + std::to_string(d.detector);
        if (d.bbox.empty()) throw InvalidInputError(id + " has an empty bbox");
        if (!std::isfinite(d.offset.x) || !std::isfinite(d.offset.y)) throw InvalidInputError(id + " has a non-finite offset");
        if (d.cutouts.size() != d.candidates.size()) {
            throw InvalidInputError(id + ": " + std::to_string(d.cutouts.size()) + " cutouts for " +
                                    std::to_string(d.candidates.size()) + " candidates");
        }
        psffit::FitSource s;
        s.bbox = d.bbox;
        s.offset = d.offset;
        s.candidates = &d.candidates;
        // Selection with the detector's own settings (its size-locus fit uses the per-detector order).
        s.selected = selectPsfStars(d.candidates, psf);
        for (std::size_t i : s.selected) {
            const MaskedImageF& cut = d.cutouts[i];
            if (cut.bbox().empty()) throw InvalidInputError(id + ": selected candidate " + std::to_string(i) + " has no cutout");
            s.images.push_back(&cut);
        }
        if (!s.selected.empty()) {
            const int c = cutoutStampCap(psffit::medianSigma(d.candidates, s.selected), psf);
            cap = cap == 0 ? c : std::min(cap, c);
        }
        sources.push_back(std::move(s));
    }
    psffit::FitOutput fit = psffit::fitPsfStars(sources, fitConfig, cap, "determineVisitPsf");
    VisitPsfResult r;
    r.model = fit.model;
    r.detectors = std::move(fit.sources);
    r.pooled = std::move(fit.pooled);
    for (const PsfDeterminationResult& d : r.detectors) r.detectorsWithStars += d.nUsed > 0 ? 1 : 0;
    return r;
}

}  // namespace drp
