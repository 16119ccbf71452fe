#include "stages/characterize/SeeingEstimate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/Error.h"
#include "stages/characterize/SourceDetection.h"
#include "stages/measure/AdaptiveMoments.h"

namespace drp {

void SeeingEstimateConfig::validate() const {
    if (!(thresholdSigma >= 5.0 && thresholdSigma <= 1e6)) throw ConfigError("SeeingEstimateConfig.thresholdSigma must be in [5, 1e6]");
    if (minSources < 2 || minSources > 1000) throw ConfigError("SeeingEstimateConfig.minSources must be in [2, 1000]");
    if (minInLocus < 2 || minInLocus > minSources) throw ConfigError("SeeingEstimateConfig.minInLocus must be in [2, minSources]");
    for (const auto& p : badMaskPlanes)
        if (p.empty()) throw ConfigError("SeeingEstimateConfig.badMaskPlanes has an empty name");
}

namespace {

void checkArguments(const SeeingEstimateConfig& config, double guessSigma) {
    config.validate();
    if (!(guessSigma > 0.0) || !std::isfinite(guessSigma)) throw ConfigError("estimateSeeing: the guess must be a positive width");
}

}  // namespace

SeeingEstimate estimateSeeing(const MaskedImageF& image, const FootprintSet& sources, double guessSigma,
                              const SeeingEstimateConfig& config, const PsfDeterminerConfig& locus) {
    checkArguments(config, guessSigma);
    const MaskPixel bad = image.mask().planeBitMaskIfPresent(config.badMaskPlanes);
    AdaptiveMomentsControl control;
    control.recentre = true;
    control.dampOscillation = true;
    // The PSF determiner's weight floor (AdaptiveMomentsControl::minWeightVariance): the plain adaptive moments of a star
    // sharper than a pixel collapse at pixel-centred phases, too few sizes are left for a locus, and the cosmic-ray
    // test then runs against the guess (a 0.55" demo detector: no estimate, 69 star cores "repaired").
    control.minWeightVariance = locus.minWeightSigma * locus.minWeightSigma;
    const double window = control.windowSigmas * guessSigma;
    const int reach = int(std::ceil(window));
    const Box2I bbox = image.bbox();
    const int margin = std::max(reach, 2);  // the window, and the 5 x 5 mask check below
    const Box2I inner = bbox.width() > 2 * margin && bbox.height() > 2 * margin ? bbox.grow(-margin) : Box2I();
    std::vector<PsfCandidate> sizes;
    for (const auto& fp : sources.footprints()) {
        const auto& peaks = fp->peaks();
        for (const PeakRecord& peak : peaks) {
            if (!(peak.significance.value_or(0.0f) >= config.thresholdSigma)) continue;
            if (inner.empty() || !inner.contains(Point2I{peak.ix, peak.iy})) continue;
            bool alone = true;
            for (const PeakRecord& other : peaks)
                if (&other != &peak && std::hypot(other.x - peak.x, other.y - peak.y) < window) alone = false;
            if (!alone) continue;
            if (image.mask().subImage(Box2I({peak.ix - 2, peak.iy - 2}, 5, 5)).countBits(bad) > 0) continue;
            control.region = fp->bbox().grow(reach).intersection(bbox);
            const AdaptiveMomentsResult m = computeAdaptiveMoments(image.image(), {peak.x, peak.y}, SecondMoments::circle(guessSigma),
                                                                   control, &image.mask(), bad);
            if (!m.converged || m.failed() || m.truncated || !(m.amplitude > 0.0)) continue;
            PsfCandidate c;
            c.position = m.centre;
            c.flux = m.amplitude;
            c.ixx = m.moments.xx;
            c.iyy = m.moments.yy;
            c.ixy = m.moments.xy;
            sizes.push_back(c);
        }
    }
    SeeingEstimate out;
    out.measured = int(sizes.size());
    out.sigma = std::numeric_limits<double>::quiet_NaN();
    if (out.measured < config.minSources) return out;
    const double t = psfLocusSize(sizes, locus);
    if (!(std::isfinite(t) && t > 0.0)) return out;
    for (const PsfCandidate& c : sizes) out.inLocus += std::fabs(std::log((c.ixx + c.iyy) / t)) <= 0.5 * locus.sizeWindow;
    if (out.inLocus >= config.minInLocus) out.sigma = std::sqrt(0.5 * t);
    return out;
}

SeeingEstimate estimateSeeing(MaskedImageF& image, double guessSigma, const SeeingEstimateConfig& config,
                              const PsfDeterminerConfig& locus) {
    checkArguments(config, guessSigma);
    SourceDetectionConfig det;
    det.thresholdSigma = config.thresholdSigma;
    det.detectAtEdges = false;
    const DetectionResult found = detectSources(image, guessSigma, det);
    return estimateSeeing(image, found.positive, guessSigma, config, locus);
}

}  // namespace drp
