// CosmicRay: find cosmic-ray hits on a single exposure by their sharpness, flag them CR and repair them
// (after meas_algorithms' findCosmicRays, the van Dokkum / LSST "condition 3" test).
//
// A pixel p of value I (background b removed, noise sigma = sqrt(variance)) is a CR seed when
//   1. I - b > minSigma x sigma  and  I - b > minElectrons (the "image units" floor), and
//   2. for at least one of the four directions d (horizontal, vertical, two diagonals), with m_d the
//      mean of the two neighbours of p along d (background removed) and s_d its noise,
//          contrastFactor x r_d x (I - b - noiseFactor x sigma) > m_d + noiseFactor x s_d,
//      where r_d = PSF(neighbour along d) / PSF(centre) of the PSF kernel image: the smallest
//      neighbour-to-peak ratio the PSF allows. A star centred on a pixel has m_d / (I - b) = r_d, and
//      an off-centre star more, so with contrastFactor < 1 a star never qualifies; a CR deposited in
//      one pixel, or a narrow track seen across its length, does.
// The PSF's r_d is taken as the minimum over its kernel images at the centre and corners of the image
// (the sharpest PSF decides).
// Pixels with any of badMaskPlanes (BAD, SAT, NO_DATA by default) are never seeds and are not used as
// neighbours (the direction is then skipped).
// Growth: the seeds of each hit are grown by up to `growIterations` rounds into 8-neighbours that are
// above growSigma x sigma (the rest of a track, its diffusion halo), so a track two pixels wide is taken
// whole.
// Repair: every CR pixel is replaced by the mean of linear interpolations across the hit along rows and
// columns, between the nearest usable non-CR pixels on each side (within maxRepairDistance pixels; the
// background b where there is none); its variance is set to the mean variance of those pixels. Repaired
// pixels get CR and INTRP.
#pragma once

#include <string>
#include <vector>

#include "core/MaskedImage.h"
#include "core/Psf.h"

namespace drp {

/// Configuration of findCosmicRays. Plain value; compare with ==; check with validate().
struct CosmicRayConfig {
    /// Seed threshold above the background. Unit: sigma. Bounds: > 0. Default 6 (Rubin's minSigma).
    double minSigma = 6.0;
    /// Seed floor above the background. Unit: image units (electrons). Bounds: >= 0. Default 150 (Rubin's min_DN).
    double minElectrons = 150.0;
    /// The PSF-contrast fudge factor (Rubin's cond3_fac2). Bounds: (0, 1]. Default 0.6.
    double contrastFactor = 0.6;
    /// Noise allowance of the contrast test (Rubin's cond3_fac). Unit: sigma. Bounds: >= 0. Default 2.5.
    double noiseFactor = 2.5;
    /// Growth threshold for the rest of a hit. Unit: sigma. Bounds: > 0. Default 3.
    double growSigma = 3.0;
    /// Growth rounds. Bounds: [0, 100]. Default 3.
    int growIterations = 3;
    /// Farthest a repair looks for a usable pixel along a row or column. Unit: pixels. Bounds: [1, 1000]. Default 20.
    int maxRepairDistance = 20;
    /// More hits than this is a failure (a wrong PSF or background): NumericalError. Bounds: >= 1.
    int maxCosmicRays = 1000000;
    /// Mask planes whose pixels are neither seeds nor neighbours.
    std::vector<std::string> badMaskPlanes{"BAD", "SAT", "NO_DATA", "EDGE"};

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const CosmicRayConfig&, const CosmicRayConfig&) = default;
};

/// Find, flag (CR) and repair (INTRP) cosmic rays in `image` (variance plane required), whose background
/// level is `background` (0 for a background-subtracted image). Returns the number of hits (8-connected
/// groups of CR pixels). Throws ConfigError, or NumericalError beyond maxCosmicRays.
int findCosmicRays(MaskedImageF& image, const Psf& psf, double background, const CosmicRayConfig& config);

/// The four neighbour-to-peak ratios r_d (horizontal, vertical, diagonal, anti-diagonal) of the PSF used by
/// findCosmicRays for an image covering `bbox` (minimum over centre and corners).
std::vector<double> psfContrastRatios(const Psf& psf, const Box2I& bbox);

}  // namespace drp
