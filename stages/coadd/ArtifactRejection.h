// ArtifactRejection: finding the regions of one warp that are artifacts (transients, asteroid trails,
// cosmic-ray residuals, satellite streaks) by comparing it with a reference built from the other warps,
// in the spirit of Rubin's CompareWarpAssembleCoadd (own code, different decision rule).
//
// Inputs (all on the patch grid, coadd flux units):
//     D   = warp - reference           (0 where the pixel is not comparable)
//     VD  = var(warp) + var(reference) (0 marks a pixel that is not comparable)
//     R   = the reference (leave-one-out inverse-variance mean of the other warps), VR its variance.
//
// Candidates: a pixel is a candidate when either
//   * smoothed test:  (G * D)(x) > detectionSigma * sqrt((G^2 * VD)(x)) + referenceFluxFraction * max((G * R)(x), 0)
//     with G a normalised Gaussian of `smoothingSigmaPx` (the matched filter of point-like and linear
//     artifacts; G^2 * VD is the exact variance of G * D for independent pixels), or
//   * sharp test:     D(x) > sharpSigma * sqrt(VD(x)) + referenceFluxFraction * max(R(x), 0)
//     (features sharper than any PSF: cosmic-ray residuals, hot pixels).
// Candidate pixels are joined into 8-connected regions C.
//
// Decision per region (why stars and galaxies survive varying seeing): a static source seen with a
// different PSF than the reference leaves a residual D that is positive in some places (the core of a
// sharper epoch, the wings of a blurrier one) but whose integral over the whole source is ~0, because
// convolution conserves flux. An artifact adds flux. So
//   * if the reference is faint over C (max over C of (G * R) / sqrt(sum(G^2) VR) < staticGuardSnr) there
//     is no static source to mistake: C is an artifact;
//   * otherwise C is an artifact only when the net flux over the neighbourhood N = C dilated by
//     netRadius = ceil(3 max(sigma_psf, sigma_smooth)) + 2 is both a large part of the positive flux in C,
//         sum_N D  >  minNetFluxFraction * sum_C max(D, 0),
//     and significant, sum_N D > netSigma * sqrt(sum_N VD).
// An artifact region is extended over the connected pixels where the smoothed test passes at extendSigma
// (hysteresis, so the faint wings of bright trails go too), then grown by growRadiusPx (0: ceil(2 sigma_psf)) to take its wings, and clipped to
// the image. The decision needs only this warp and the reference: no per-epoch state is kept, which is
// what lets the assembler stay O(patch) in memory.
#pragma once

#include <cstdint>
#include <vector>

#include "core/Image.h"
#include "core/SpanSet.h"

namespace drp {

/// Artifact-rejection parameters. Plain value; compare with ==; check with validate().
struct ArtifactRejectionConfig {
    /// Threshold of the smoothed (matched-filter) difference. Unit: sigma. Bounds: > 0. Default 5.
    double detectionSigma = 5.0;
    /// Threshold of the unsmoothed per-pixel difference. Unit: sigma. Bounds: > 0. Default 6.
    double sharpSigma = 6.0;
    /// Tolerance added to both thresholds, as a fraction of the (smoothed) reference flux. Bounds: >= 0.
    /// Default 0.05.
    double referenceFluxFraction = 0.05;
    /// Gaussian sigma of the smoothing filter. Unit: pixels. 0 = the weight-averaged input PSF sigma
    /// (sqrt of the weighted mean of sigma^2). Bounds: 0 or [0.3, 20].
    double smoothingSigmaPx = 0.0;
    /// Regions where the smoothed reference reaches this S/N get the flux-conservation test. Unit: sigma.
    /// Bounds: > 0. Default 5.
    double staticGuardSnr = 5.0;
    /// Net flux over the neighbourhood must exceed this fraction of the region's positive flux.
    /// Bounds: [0, 1]. Default 0.5.
    double minNetFluxFraction = 0.5;
    /// Net flux must also exceed this significance. Unit: sigma. Bounds: >= 0. Default 3.
    double netSigma = 3.0;
    /// A rejected region extends over the connected pixels whose smoothed excess exceeds this (the
    /// smoothed test's threshold with extendSigma in place of detectionSigma). Unit: sigma.
    /// Bounds: (0, detectionSigma]. Default 5 (= detectionSigma; 2 was tried: it did not reduce the
    /// residuals of the test scenes and tripled false clipping).
    double extendSigma = 5.0;
    /// Growth of a rejected region. Unit: pixels. 0 = ceil(2 * input PSF sigma). Bounds: [0, 100].
    int growRadiusPx = 0;
    /// Rejection needs at least this many inputs (with fewer, nothing is rejected). Bounds: >= 2. Default 3.
    int minInputs = 3;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const ArtifactRejectionConfig&, const ArtifactRejectionConfig&) = default;
};

/// What findArtifacts found in one warp.
struct ArtifactSearchResult {
    std::vector<SpanSet> artifacts;  ///< grown artifact regions, clipped to the image (may overlap)
    int candidateRegions = 0;        ///< connected candidate regions examined
    int staticRegions = 0;           ///< candidate regions kept as static-source residuals
};

/// Find the artifacts of one warp (see the header comment). All images share one bbox (LogicError
/// otherwise). `inputPsfSigmaPx` is the warp's PSF sigma, `smoothingSigmaPx` the filter's (both > 0).
ArtifactSearchResult findArtifacts(const ImageF& diff, const ImageF& diffVariance, const ImageF& reference,
                                   const ImageF& referenceVariance, double inputPsfSigmaPx,
                                   double smoothingSigmaPx, const ArtifactRejectionConfig& config);

/// Separable convolution with a normalised Gaussian of `sigmaPx` truncated at ceil(3.5 sigma), zero
/// outside the image; with `squaredKernel` the kernel is the element-wise square of that Gaussian (for
/// propagating a variance image). `out` gets the input's bbox.
void gaussianSmooth(const ImageF& in, ImageF& out, double sigmaPx, bool squaredKernel = false);

}  // namespace drp
