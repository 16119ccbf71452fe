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
// Passes and memory. Without artifact rejection numPasses() == 1. With it numPasses() == 4 and the
// driver streams every input four times (4x the reads, never more than one warp in memory):
//   pass 0 accumulates S = sum w I (double), W = sum w (double), Q = sum w^2 v (float), the number of
//          contributing inputs (uint16) and the mask-plane weights, and the normal equations of the
//          per-pixel PSF-size template (ArtifactRejection.h): sum w u^k I (float, k <= d) per pixel, and
//          sum w u^k (k <= 2d) once per patch (double) minus, per pixel (float), the inputs that do not
//          contribute there; u = log2(psfSigma) - log2(psfSigma of the first input), w the per-input weight;
//   pass 1 solves the templates (d + 1 coefficients per pixel, float), compares each epoch with its
//          prediction and keeps the pixels of every footprint it finds (a SpanSet and the values per input:
//          memory proportional to the flagged area only); beginPass(2) takes them out of the template's
//          sums (counting them per pixel, uint16) and re-solves the templates;
//   pass 2 compares each epoch with the clean template, counts per pixel the epochs with a footprint there
//          (uint16, for the temporal decision) and accumulates the empirical scatter of the smoothed
//          residuals (sum and max of clamped chi^2, float, and a count, uint16);
//   pass 3 compares again (noise inflated by the scatter), keeps the footprints that are transient and the
//          sharp pixels, grows them, and keeps their pixels' values and variances (a SpanSet per input:
//          memory proportional to the rejected area only);
//   finish() puts back into the template's sums the pass-1 pixels that pass 3 did not reject (an epoch that
//          differed from a template pulled by another epoch's artifact), takes every rejected pixel out of
//          them and replaces each by the template's
//          prediction for its epoch (the static scene through the epoch's own PSF, so the coadd's PSF is
//          unchanged; degree chosen as in ArtifactRejection.h) through separate sums dS, dQ, dW (float) and a
//          rejected count (uint16); where fewer than 2 inputs remain in the template the pixels are removed
//          instead. It returns (S - dS) / (W - dW) and (Q - dQ) / (W - dW)^2; a replaced pixel keeps its
//          weight and its w^2 v in Q becomes w^2 v (2 + lev): the prediction's variance (leverage lev times the
//          pixel's variance) plus twice its covariance with the epochs it was fitted to, which stay in the
//          coadd (sum_j w_j c_j v_j = w v, as the fit reproduces constants and w_j v_j ~ w v).
// Cost (bench_coadd, 20 inputs): the comparison passes run element-wise row kernels (RejectionKernels.h,
// AVX2 clones) and a folded separable Gaussian; callgrind 1000^2 patch: 3.3 G instructions without rejection,
// ~10 G with it (25 G before issue 6's vectorisation).
// Per pixel that is 8 + 8 + 4 + 2 + 4 + 4 per tracked plane (coadd sums, 50 bytes with the 6 default
// planes) + 14 (rejection sums) + 4 (2d + 1) + 8 (d + 1) + 14 (template normal equations, coefficients,
// scatter, two flag counts): 138 bytes with d = 3 (1.24 GB for a 3000 x 3000 patch) plus ~12 float images
// of per-warp scratch in passes 1-3, whatever the number of inputs; per input only a few scalars and its
// pass-1 and pass-3 footprints are kept (inputs()). pixelStateBytes() reports the per-pixel state.
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
    /// Reject artifacts (four passes over the inputs). Default true.
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
    std::int64_t rejectedPixels = 0;   ///< pixels rejected (replaced or removed) as artifacts (pass 2)
    int artifactRegions = 0;           ///< transient footprints rejected (pass 2)
    int staticRegions = 0;             ///< footprints found but kept as not transient (pass 2)
    std::int64_t flaggedPixels = 0;    ///< pixels taken out of the template in pass 1
};

class CoaddAssembler {
public:
    /// An assembler for the patch `bbox` (non-empty). Throws ConfigError for a bad config.
    CoaddAssembler(const Box2I& bbox, CoaddConfig config = {});

    /// 4 with artifact rejection, 1 without.
    int numPasses() const { return config_.rejectArtifacts ? 4 : 1; }
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
    /// Degree of the PSF-size template polynomial used for artifact rejection (after pass 0; -1 before or
    /// when rejection is off or has too few inputs).
    int templateDegree() const { return fitDegree_; }
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
    void beginComparison(int pass);
    void solveTemplates();
    void addCompare(const MaskedImageF& warp, const WarpMetadata& meta, std::size_t index);
    void replaceRejected();
    /// Take epoch i's pixels of `spans` (values in span order) out of the template's sums (out = true:
    /// their moments become missing, their values leave the right-hand side, the flag count rises) or put
    /// them back (out = false); pixels j with skip(x, y, j) are left alone.
    template <class Skip>
    void moveTemplateSums(std::size_t i, const SpanSet& spans, const std::vector<float>& values, bool out, Skip skip);

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
    // Artifact rejection (ArtifactRejection.h). The template's normal equations in u = log2(sigma) - ref:
    // globalMom_ = sum over usable inputs of w u^k (k < nMom_), missMom_ (per pixel) the part of it from the
    // inputs that do not enter that pixel's template, rhs_ (per pixel) sum w u^k I (k < nCoef_). coef_ holds
    // the solved template per pixel in v = (u - vCentre_) / vHalf_ (NaN: no template there).
    int nMom_ = 0, nCoef_ = 0, fitDegree_ = -1;
    bool active_ = false;
    double refLog2Sigma_ = 0, vCentre_ = 0, vHalf_ = 1;
    std::vector<double> globalMom_, u_, leverage_;
    std::vector<float> missMom_, rhs_, coef_, chiSum_, chiMax_;
    std::vector<std::uint16_t> chiN_, nFlag1_, nFlag2_;
    std::vector<int> epochDegree_;
    PowerMomentShift momentShift_;  // u-moments to v-moments (fixed once vCentre_, vHalf_ are)
    // Pass 1's footprints per input and their values (out of the template from pass 2; those pass 3 does not
    // reject go back in for the replacement in finish()).
    std::vector<SpanSet> flags1_;
    std::vector<std::vector<float>> flagValues1_;
    // Pass 3's rejected pixels per input (replaced in finish()): values, variances, whether still in the fit.
    std::vector<SpanSet> rejected_;
    std::vector<std::vector<float>> rejValues_, rejVariances_;
    std::vector<std::vector<std::uint8_t>> rejInFit_;
    // Per-warp scratch of passes 1-3 (reused from warp to warp; no state carried between warps).
    struct Scratch {
        ImageF image, variance, valid, resid, rvar, ok, sR, sV, sOk, smoothTmp;
        Image<std::int32_t> flag, mark;
        std::vector<float> ones;  // a row of 1 (the validity of an unmasked warp)
    } scratch_;
};

}  // namespace drp
