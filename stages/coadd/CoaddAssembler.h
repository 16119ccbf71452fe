// CoaddAssembler: streaming assembly of a deep coadd from warps on one patch grid, with inverse-variance
// weights and artifact rejection (stages/coadd/ArtifactRejection.h). Pure stage code: the driver reads
// each warp, calls add(), and lets it go; the assembler never holds more than one warp.
//
// Units: a warp's image times WarpMetadata::photoScale is in coadd units (its variance times
// photoScale^2). Below, I_i and v_i are the scaled image and variance (v_i also times covarianceFactor).
//
// Weights (CoaddConfig::weighting):
//   * PerInput (default, as Rubin's AssembleCoaddTask): one weight per input, w_i = 1 / median(v_i) over
//     its usable pixels (or WarpMetadata::weight when > 0). A weight that does not depend on the pixel
//     keeps the coadd linear in the sources: a star's flux is unbiased even though the variance plane
//     grows with its own Poisson noise.
//   * PerPixel: w_i(x) = 1 / v_i(x) (optimal for sky-limited pixels, biased low for bright sources).
// Coadd:  I(x) = sum_i w_i I_i / sum_i w_i,   V(x) = sum_i w_i^2 v_i / (sum_i w_i)^2
// over the inputs that contribute at x (not NO_DATA, no excluded plane, finite, not rejected). For
// PerPixel weights V reduces to 1 / sum_i w_i.
//
// Passes and memory. Without artifact rejection numPasses() == 1. With it numPasses() == 3 and the
// driver streams every input three times (3x the reads, never more than one warp in memory):
//   pass 0 accumulates S = sum w I (double), W = sum w (double), Q = sum w^2 v (float), the number of
//          contributing inputs (uint16) and the mask-plane weights; it also fixes the common PSF sigma
//          s_t = max s_i of the usable inputs;
//   pass 1 PSF-matches each warp to s_t (ArtifactRejection.h) and accumulates the robust template's
//          state: sum w J, sum w (float), count (uint16) and the K = maxOutlierEpochs largest values per
//          pixel with their input indices (float + uint16 each). beginPass(2) turns them into the
//          template T (and G * T) and releases the top-K state;
//   pass 2 compares each PSF-matched, smoothed warp with G * T (findArtifacts) and finds sharp pixels
//          (findSharpPixels, against the leave-one-out mean of pass 0); inside the regions found the
//          input's pixels are removed (or, over a static source brighter than the artifact, corrected by
//          subtracting J - T) through separate "rejected" sums (dS, dW, dQ float; rejected-count uint16).
//   finish() returns (S - dS) / (W - dW) and (Q - dQ) / (W - dW)^2.
// Per pixel that is 8 + 8 + 4 + 2 + 4 + 4 per tracked plane (coadd sums, 50 bytes with the 6 default
// planes) + 14 (rejected sums) + 10 + 6 K (template state, pass 1 only; pass 2 keeps 8: T and G * T):
// 92 bytes with K = 3 (0.83 GB for a 3000 x 3000 patch) plus ~12 float images of per-warp scratch in
// passes 1-2, whatever the number of inputs; per input only a few scalars are kept (inputs()).
// pixelStateBytes() reports the peak pixel state.
//
// Masks: pixels with an excluded plane (default NO_DATA, BAD, SAT, EDGE) do not contribute. A tracked
// plane p is set in the coadd where the weight of the inputs that cover the pixel (not NO_DATA) and
// have p set, over the weight of all covering inputs, reaches maskPropagationThresholds[p] (the
// per-input weight is used for this fraction in both weighting modes). CLIPPED is set where any input's
// pixel was rejected as an artifact; NO_DATA (and NaN image and variance) where no input contributes.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/Box.h"
#include "core/MaskedImage.h"
#include "stages/coadd/ArtifactRejection.h"

namespace drp {

/// What the assembler needs to know about one warp besides its pixels.
struct WarpMetadata {
    /// Identifier of the input (e.g. the visit), unique within one coadd.
    std::int64_t id = 0;
    /// Band of the input (informational; flavour selection and multi-band coadds use it).
    std::string band;
    /// Exposure time. Unit: seconds. Bounds: >= 0.
    double exposureTimeS = 0.0;
    /// Gaussian-equivalent PSF sigma of the warp on the patch grid. Unit: pixels. Bounds: > 0.
    double psfSigmaPx = 1.0;
    /// Mid-exposure time. Unit: MJD (TAI).
    double mjd = 0.0;
    /// Sky level that was subtracted from the warp. Unit: warp flux units per pixel.
    double skyLevel = 0.0;
    /// Multiplies the warp's image into coadd units (variance by its square). Bounds: > 0.
    double photoScale = 1.0;
    /// Multiplies the (scaled) variance plane in the coadd's variance and in the weights, e.g. a
    /// correction for a variance plane known to be mis-estimated. Bounds: > 0. Default 1.
    double covarianceFactor = 1.0;
    /// The input's weight; 0 = computed (1 / median scaled variance). Bounds: >= 0.
    double weight = 0.0;

    /// Throws InvalidInputError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const WarpMetadata&, const WarpMetadata&) = default;
};

/// Configuration of CoaddAssembler. Plain value; compare with ==; check with validate().
struct CoaddConfig {
    enum class Weighting {
        PerInput,  ///< one weight per input: 1 / median variance (default)
        PerPixel,  ///< w(x) = 1 / variance(x)
    };
    /// How inputs are weighted. Default PerInput.
    Weighting weighting = Weighting::PerInput;
    /// Pixels with any of these planes do not contribute (planes a warp lacks are skipped).
    std::vector<std::string> excludedMaskPlanes{"NO_DATA", "BAD", "SAT", "EDGE"};
    /// Tracked planes and the weight fraction at which each is set in the coadd. Bounds: (0, 1].
    std::map<std::string, double> maskPropagationThresholds{{"BAD", 0.1},   {"SAT", 0.1}, {"EDGE", 0.1},
                                                             {"INTRP", 0.5}, {"CR", 0.5}, {"SUSPECT", 0.5}};
    /// Reject artifacts (two passes over the inputs). Default true.
    bool rejectArtifacts = true;
    /// Artifact-rejection parameters.
    ArtifactRejectionConfig rejection{};

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const CoaddConfig&, const CoaddConfig&) = default;
};

/// Per-input bookkeeping (a few scalars per input).
struct CoaddInputSummary {
    std::int64_t id = 0;
    double weight = 0.0;               ///< the per-input weight (PerPixel: 1 / median variance, for masks)
    double psfSigmaPx = 0.0;
    std::int64_t usedPixels = 0;       ///< contributing pixels (pass 0)
    std::int64_t rejectedPixels = 0;   ///< pixels rejected (removed or corrected) as artifacts (pass 2)
    int artifactRegions = 0;           ///< smoothed-difference artifact regions found (pass 2)
    int staticRegions = 0;             ///< extended-threshold regions without a seed, not rejected (pass 2)
};

class CoaddAssembler {
public:
    /// An assembler for the patch `bbox` (non-empty). Throws ConfigError for a bad config.
    CoaddAssembler(const Box2I& bbox, CoaddConfig config = {});

    /// 3 with artifact rejection, 1 without.
    int numPasses() const { return config_.rejectArtifacts ? 3 : 1; }
    /// Start pass `pass` (0 .. numPasses() - 1, in order). Every input must be added once in
    /// every pass, in any order. Throws LogicError out of order or when an input of pass 0 is missing.
    void beginPass(int pass);
    /// Add one warp (bbox equal to the patch bbox; LogicError otherwise) in the current pass. Returns the
    /// input's weight (the per-input weight in PerPixel mode). Throws LogicError for a repeated id in a
    /// pass or an id in pass 1 not seen in pass 0, InvalidInputError for bad metadata.
    double add(const MaskedImageF& warp, const WarpMetadata& meta);
    /// The coadd (after the last pass; LogicError before). Can be called once.
    MaskedImageF finish();

    const Box2I& bbox() const { return bbox_; }
    const CoaddConfig& config() const { return config_; }
    const std::vector<CoaddInputSummary>& inputs() const { return inputs_; }
    /// sqrt(sum w sigma^2 / sum w) over the inputs of pass 0: the second-moment size of the coadd PSF.
    double meanPsfSigmaPx() const;
    /// The common (worst) PSF sigma the epochs are matched to for artifact rejection (after pass 0).
    double targetPsfSigmaPx() const { return targetSigma_; }
    /// The smoothing sigma used by artifact rejection (config value, or targetPsfSigmaPx() once known).
    double smoothingSigmaPx() const;
    /// Bytes held in per-pixel state at its peak (independent of the number of inputs).
    std::size_t pixelStateBytes() const;
    /// Mask bits of the excluded planes in a warp's mask (planes it lacks are skipped).
    MaskPixel excludedBits(const Mask& mask) const;
    /// Weight of an input as add() computes it (PerInput rule; meta.weight when > 0).
    static double inputWeight(const MaskedImageF& warp, const WarpMetadata& meta, MaskPixel excludedBits);

private:
    void addPass0(const MaskedImageF& warp, const WarpMetadata& meta, CoaddInputSummary& in);
    bool scaledPlanes(const MaskedImageF& warp, const WarpMetadata& meta, ImageF& image, ImageF& variance,
                      ImageF& valid) const;
    void addTemplate(const MaskedImageF& warp, const WarpMetadata& meta, std::size_t index);
    void buildTemplate();
    void addCompare(const MaskedImageF& warp, const WarpMetadata& meta, CoaddInputSummary& in);

    Box2I bbox_;
    CoaddConfig config_;
    int pass_ = -1;
    bool finished_ = false;
    std::vector<std::string> trackedPlanes_;
    std::vector<double> thresholds_;
    std::vector<CoaddInputSummary> inputs_;
    std::map<std::int64_t, std::size_t> index_;
    std::vector<char> seenThisPass_;
    double sumW_ = 0, sumWSigma2_ = 0;
    // Per-pixel state (row-major over bbox_).
    std::vector<double> sumWI_, sumW_px_;
    std::vector<float> sumW2V_;
    std::vector<std::uint16_t> nUsed_;
    std::vector<float> coverW_;
    std::vector<float> planeW_;  // trackedPlanes_.size() x npix
    std::vector<float> rejWI_, rejW_, rejW2V_;
    std::vector<std::uint16_t> nRejected_;
    // Artifact rejection: per input the raw and PSF-matched noise sigmas (pass 1); per pixel the template
    // sums and top-K values (pass 1; released at the start of pass 2, when tA_ becomes G * template).
    double targetSigma_ = 0, templateSmoothedVar_ = 0, templateVar_ = 0;
    std::vector<double> rawSigma_, matchedSigma_;
    std::vector<float> tA_, tW_, topV_, tT_;
    std::vector<std::uint16_t> tN_, topI_;
};

}  // namespace drp
