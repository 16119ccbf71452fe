// SeeingEstimate: the PSF width of an image from its brightest compact sources, before anything else is known —
// the size the first detection filters and the cosmic-ray test need, instead of a configured seeing guess.
//
// A guess broader than the real PSF is harmful twice over: the cosmic-ray test (CosmicRay.h) takes every star
// sharper than the guessed PSF for a hit and "repairs" its core (an undersampled star, FWHM 1.4 pixels, against
// a guess of 2.5 pixels: every star), and the matched filter loses signal. The estimate:
//  1. the peaks of significance thresholdSigma (50 by default: the PSF stars' bright pass) or more among given
//     footprints (the single-visit flow passes its first, background-masking detection's), or of a detection at
//     that threshold with a Gaussian filter of the guess;
//  2. for each such peak with no other peak of its footprint within the moments' window (windowSigmas x the
//     guess), no saturated, bad or no-data pixel within 2 pixels and at least that window from the image edge:
//     re-centring adaptive moments from a circle of the guess, converged and not truncated, within the footprint's
//     box grown by the window, with the PSF determiner's weight floor (its minWeightSigma: a star sharper than a
//     pixel has no plain adaptive fixed point at pixel-centred phases);
//  3. the stellar locus of those sizes (psfLocusSize of PsfDeterminer.h: the most compact populated ln T window,
//     which galaxies do not inflate; a cosmic ray is sharper than any star but the few hits of an exposure do
//     not form a populated window of their own), sigma = sqrt(T / 2).
// Measured (stages test_SeeingEstimate): within 0.1% of the stars' own adaptive width (with the same floor) at FWHM
// 1.4-5 pixels (without the floor, at 1.4 pixels the sizes scattered with the sub-pixel phase and the estimate sat
// 6-10% low; on a 0.55" demo detector it found no locus at all).
// NaN when fewer than minSources sizes are measured, fewer than minInLocus lie in the locus (within sizeWindow / 2 in
// ln T of its size) or none is found (a blank or star-poor field): the caller keeps its guess.
#pragma once

#include "core/Footprint.h"
#include "core/MaskedImage.h"
#include "stages/characterize/PsfDeterminer.h"

namespace drp {

/// Configuration of estimateSeeing. Plain value; compare with ==; check with validate().
struct SeeingEstimateConfig {
    /// Detection threshold of the sources measured. Unit: sigma. Bounds: [5, 1e6]. Default 50.
    double thresholdSigma = 50.0;
    /// Fewer measured sizes than this give NaN. Bounds: [2, 1000]. Default 5.
    int minSources = 5;
    /// Fewer of them in the stellar locus than this give NaN (undersampled sizes scatter with the sub-pixel phase,
    /// so the locus is thinly populated there). Bounds: [2, minSources]. Default 3.
    int minInLocus = 3;
    /// Mask planes that disqualify a source near its peak (those the mask has).
    std::vector<std::string> badMaskPlanes{"SAT", "BAD", "NO_DATA", "SUSPECT"};
    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const SeeingEstimateConfig&, const SeeingEstimateConfig&) = default;
};

/// What estimateSeeing found.
struct SeeingEstimate {
    double sigma = 0.0;  ///< PSF sigma = sqrt(T / 2) of the stellar locus (pixels); NaN if none
    int measured = 0;    ///< sources with a size
    int inLocus = 0;     ///< of them, within sizeWindow / 2 (in ln T) of the locus size
};

/// The PSF width of `image` (background-subtracted) from the bright compact sources among `sources` (footprints with
/// peak significances, as detectSources gives them; see the header); `guessSigma` (> 0, pixels) seeds the moments,
/// `locus` is the stellar locus configuration (its sizeWindow and compactLocusFraction). Throws ConfigError for a
/// bad configuration or guess.
SeeingEstimate estimateSeeing(const MaskedImageF& image, const FootprintSet& sources, double guessSigma,
                              const SeeingEstimateConfig& config, const PsfDeterminerConfig& locus);
/// The same from a detection of its own at config.thresholdSigma with a Gaussian filter of the guess (variance plane
/// required; sets DETECTED in the mask, which the caller's next detection resets).
SeeingEstimate estimateSeeing(MaskedImageF& image, double guessSigma, const SeeingEstimateConfig& config,
                              const PsfDeterminerConfig& locus);

}  // namespace drp
