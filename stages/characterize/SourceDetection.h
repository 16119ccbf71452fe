// SourceDetection: matched-filter detection of sources above a S/N threshold (meas_algorithms'
// SourceDetectionTask).
//
// Filter: the image is convolved with K, a unit-sum circular Gaussian of the PSF's sigma (half-width
// ceil(kernelHalfWidthSigma x sigma) pixels), and its variance plane with K^2 (core/Convolution.h), so
// the filtered noise at every pixel is sigma_f^2 = sum_k K_k^2 var_k (= var sum K^2 for a flat variance).
// A pixel's significance is filtered / sigma_f. For a point source of flux F whose PSF is the Gaussian K,
// the significance at its centre is F sqrt(sum K^2) / sqrt(var) = its optimal (PSF-flux) S/N, so
// thresholdSigma is a threshold on PSF-flux S/N (slightly conservative for a Moffat PSF of the same
// second moments, and for sources off a pixel centre).
//
// Footprints: connected pixels (8-connectivity) with significance >= thresholdSigma (and, with
// includeNegative, <= -thresholdSigma) with at least minPixels pixels; peaks are the local maxima of the
// significance image (core/Footprint.h, here row by row: stages/characterize/RowFootprints.h; peakValue and
// significance are both the S/N); then every footprint is grown by round(growFactor x sigma) pixels and
// touching footprints merged (FootprintSet::dilated).
// The grown footprints set DETECTED (DETECTED_NEGATIVE) in the image's mask, after clearing those planes.
//
// Edges: the pixels within the kernel half-width of the border (where the whole filter does not fit) get the
// EDGE plane; with detectAtEdges (default) they are filtered with the kernel truncated at the border (the
// significance stays exact), so sources there are detected, otherwise never. Pixels with any of badMaskPlanes set, or with a non-finite value
// or variance, get value 0 and variance 0 before filtering (they add neither signal nor noise, so the
// significance stays exact).
//
// Pruning (pruneByBound): for a normalised kernel K, Cauchy-Schwarz bounds the significance of a pixel by
// sqrt(chi2), chi2 = sum over its window of d^2 / var (usable pixels with d > 0; |d| > 0 with
// includeNegative). A cheap pass sums chi2 in 8x8-pixel blocks; output blocks whose windows' blocks sum
// below (0.95 thresholdSigma)^2 cannot be detected and are not filtered (their significance stays NaN, which
// neither forms nor vetoes a footprint or peak). At a high threshold (the bright pass at S/N 50) a few
// percent of the image is filtered; when more than a quarter of the blocks qualify, or noise alone can
// reach the bound, everything is filtered. noiseSigma is the median filtered noise of every 61st valid
// pixel when everything is filtered, of a grid of every 31st row and column when pruned.
//
// Background re-estimation (optional): after detection the background of the image with DETECTED masked
// is estimated with `background` and subtracted from the image (returned in DetectionResult so the driver
// can add it to the background model); detection is not repeated.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/Footprint.h"
#include "core/MaskedImage.h"
#include "core/Psf.h"
#include "stages/characterize/Background.h"

namespace drp {

/// Configuration of detectSources. Plain value; compare with ==; check with validate().
struct SourceDetectionConfig {
    /// Detection threshold on the matched-filter significance (PSF-flux S/N). Bounds: > 0. Default 5.
    double thresholdSigma = 5.0;
    /// Also detect negative sources (significance <= -thresholdSigma). Default false.
    bool includeNegative = false;
    /// Footprints are grown by round(growFactor x psf sigma) pixels (Rubin's nSigmaToGrow). Bounds: [0, 20].
    double growFactor = 2.4;
    /// Smallest footprint kept, counted before growing. Unit: pixels. Bounds: >= 1. Default 1.
    int minPixels = 1;
    /// Half-width of the smoothing kernel in units of the PSF sigma. Bounds: [2, 10]. Default 2.5: the S/N of a point
    /// source is within 0.05% of a wide filter's (1 - erf(2.5)^2 of a Gaussian filter's power is outside), and the
    /// filter costs 13 taps a pass instead of 4 sigmas' 21 for a 2.35 px PSF. It also sets the EDGE band's width.
    double kernelHalfWidthSigma = 2.5;
    /// Minimum distance between two peaks of one footprint (pixels, >= 0). Default 1.
    double minPeakSeparation = 1.0;
    /// Pixels with these planes (if the mask has them) are given zero weight before filtering.
    std::vector<std::string> badMaskPlanes{"BAD", "NO_DATA"};
    /// Re-estimate and subtract the background with the detections masked. Default false.
    bool reEstimateBackground = false;
    /// The configuration of that background.
    BackgroundConfig background{};
    /// Filter only where the significance can reach the threshold (the Cauchy-Schwarz bound of the header).
    /// Same footprints and peaks, bit for bit, as filtering everything; only noiseSigma then comes from a
    /// sparser sample (every 31st row and column). Pays off for high thresholds (the bright pass for PSF
    /// stars); below ~35 sigma the bound admits everything and the whole image is filtered. Default true.
    bool pruneByBound = true;
    /// Detect in the band along the image edges where the whole kernel does not fit too, with the filter
    /// truncated at the boundary (pixels beyond it weigh nothing, as masked ones do; the significance stays
    /// N(0, 1) on noise). Those pixels keep the EDGE mask bit. Default true (Rubin leaves this band out;
    /// SExtractor detects there).
    bool detectAtEdges = true;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const SourceDetectionConfig&, const SourceDetectionConfig&) = default;
};

/// What detectSources found.
struct DetectionResult {
    FootprintSet positive;   ///< grown footprints of positive detections (peak significance >= threshold)
    FootprintSet negative;   ///< the same for negative detections (empty unless includeNegative)
    double threshold = 0.0;  ///< the threshold in filtered-image units at the median filtered noise
    double noiseSigma = 0.0; ///< median filtered noise sigma_f over the valid pixels (image units)
    int kernelHalfWidth = 0; ///< half-width of the smoothing kernel (pixels); the EDGE border width
    std::optional<Background> background;  ///< the re-estimated background, if reEstimateBackground
};

/// Detect sources in `image` (background-subtracted; variance plane required) with a Gaussian matched
/// filter of sigma psfSigmaPixels (> 0). Modifies the mask (EDGE, DETECTED, DETECTED_NEGATIVE) and, with
/// reEstimateBackground, the image. Throws ConfigError / InvalidInputError.
/// The significance image is made in bands of 32 rows and thresholded row by row (RowFootprints.h): no
/// full-size plane besides the image's own.
DetectionResult detectSources(MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config);

/// The sigma of detectSources' Gaussian filter matched to `psf` at `position`: the determinant radius of the adaptive
/// moments of its kernel image, the Gaussian of its core (the stars' own size measure, and Rubin's PSF shape). Not
/// Psf::computeSigma, the unweighted moments, which count the wings: 1.27 x the core for the demo's Moffat stars (beta
/// 3.5), a filter that loses 3% of a faint point source's S/N. minWeightSigma (pixels, >= 0) holds the moments'
/// weight at least that wide (AdaptiveMomentsControl::minWeightVariance: a PSF sharper than a pixel has no plain
/// adaptive fixed point; the result is then the covariance the floored weight implies). NaN when the moments fail.
double matchedFilterSigma(const Psf& psf, Point2D position, double minWeightSigma = 0.0);

/// The significance image detectSources thresholds (filtered / filtered noise; NaN where it is not filtered,
/// outside the pruned regions and in the edge band without detectAtEdges, and where the window holds no usable
/// pixel), whole: detectSources' footprints
/// and peaks before growing are detectFootprints of it with threshold thresholdSigma (and noiseSigma 1). For
/// tests and inspection; the mask is not modified.
ImageF detectionSignificance(const MaskedImageF& image, double psfSigmaPixels, const SourceDetectionConfig& config);

}  // namespace drp
