#include "stages/coadd/CoaddAssembler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"
#include "stages/coadd/RejectionKernels.h"

namespace drp {

void WarpMetadata::validate() const {
    auto fail = [this](const std::string& what) {
        throw InvalidInputError("WarpMetadata: " + what, {}, "input=" + std::to_string(id));
    };
    if (!(exposureTimeS >= 0)) fail("exposureTimeS must be >= 0");
    if (!(psfSigmaPx > 0)) fail("psfSigmaPx must be > 0");
    if (!(photoScale > 0) || !std::isfinite(photoScale)) fail("photoScale must be finite and > 0");
    if (!(covarianceFactor > 0) || !std::isfinite(covarianceFactor)) fail("covarianceFactor must be finite and > 0");
    if (!(weight >= 0) || !std::isfinite(weight)) fail("weight must be finite and >= 0");
}

void CoaddConfig::validate() const {
    for (const auto& [name, t] : maskPropagationThresholds)
        if (!(t > 0 && t <= 1))
            throw ConfigError("CoaddConfig: maskPropagationThresholds[" + name + "] must be in (0, 1]");
    if (maskPropagationThresholds.size() > 16) throw ConfigError("CoaddConfig: at most 16 tracked mask planes");
    rejection.validate();
}

CoaddAssembler::CoaddAssembler(const Box2I& bbox, CoaddConfig config) : bbox_(bbox), config_(std::move(config)) {
    config_.validate();
    if (bbox_.empty()) throw LogicError("CoaddAssembler: empty patch bbox");
    const std::size_t n = std::size_t(bbox_.width()) * std::size_t(bbox_.height());
    for (const auto& [name, t] : config_.maskPropagationThresholds) {
        trackedPlanes_.push_back(name);
        thresholds_.push_back(t);
    }
    sumWI_.assign(n, 0.0);
    sumW_px_.assign(n, 0.0);
    sumW2V_.assign(n, 0.0f);
    nUsed_.assign(n, 0);
    coverW_.assign(n, 0.0f);
    planeW_.assign(n * trackedPlanes_.size(), 0.0f);
    if (config_.rejectArtifacts) {
        rejWI_.assign(n, 0.0f);
        rejW_.assign(n, 0.0f);
        rejW2V_.assign(n, 0.0f);
        nRejected_.assign(n, 0);
        const int d = config_.rejection.psfRegressionDegree;
        nMom_ = 2 * d + 1;
        nCoef_ = d + 1;
        globalMom_.assign(std::size_t(nMom_), 0.0);
        missMom_.assign(n * std::size_t(nMom_), 0.0f);
        rhs_.assign(n * std::size_t(nCoef_), 0.0f);
    }
}

std::size_t CoaddAssembler::pixelStateBytes() const {
    const std::size_t n = sumWI_.size();
    std::size_t perPixel = 2 * sizeof(double) + 2 * sizeof(float) + sizeof(std::uint16_t) +
                           trackedPlanes_.size() * sizeof(float);
    if (config_.rejectArtifacts)  // rejection sums, template normal equations and coefficients, scatter, flags
        perPixel += 3 * sizeof(float) + sizeof(std::uint16_t) + std::size_t(nMom_ + 2 * nCoef_) * sizeof(float) +
                    2 * sizeof(float) + 3 * sizeof(std::uint16_t);
    return n * perPixel;
}

double CoaddAssembler::meanPsfSigmaPx() const { return sumW_ > 0 ? std::sqrt(sumWSigma2_ / sumW_) : 0.0; }

MaskPixel CoaddAssembler::excludedBits(const Mask& mask) const {
    return mask.planeBitMaskIfPresent(config_.excludedMaskPlanes);
}

double CoaddAssembler::inputWeight(const MaskedImageF& warp, const WarpMetadata& meta, MaskPixel excluded) {
    if (meta.weight > 0) return meta.weight;
    const double s2c = meta.photoScale * meta.photoScale * meta.covarianceFactor;
    std::vector<float> v;
    v.reserve(std::size_t(warp.width()) * std::size_t(warp.height()));
    for (int y = 0; y < warp.height(); ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = warp.mask().row(y);
        for (int x = 0; x < warp.width(); ++x)
            if (!(m[x] & excluded) && std::isfinite(im[x]) && std::isfinite(var[x]) && var[x] > 0) v.push_back(var[x]);
    }
    if (v.empty()) return 0.0;
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    return 1.0 / (double(*mid) * s2c);
}

void CoaddAssembler::beginPass(int pass) {
    if (finished_) throw LogicError("CoaddAssembler: already finished");
    if (pass != pass_ + 1 || pass >= numPasses())
        throw LogicError("CoaddAssembler: passes must run 0.." + std::to_string(numPasses() - 1) + " in order");
    if (pass_ >= 0)
        for (std::size_t i = 0; i < seenThisPass_.size(); ++i)
            if (!seenThisPass_[i])
                throw LogicError("CoaddAssembler: input " + std::to_string(inputs_[i].id) + " missing from pass " +
                                 std::to_string(pass_));
    pass_ = pass;
    seenThisPass_.assign(inputs_.size(), 0);
    if (pass >= 1) beginComparison(pass);
}

double CoaddAssembler::add(const MaskedImageF& warp, const WarpMetadata& meta) {
    if (pass_ < 0 || finished_) throw LogicError("CoaddAssembler::add outside a pass");
    if (warp.bbox() != bbox_) throw LogicError("CoaddAssembler::add: warp bbox differs from the patch bbox");
    meta.validate();
    const auto it = index_.find(meta.id);
    if (pass_ == 0) {
        if (it != index_.end()) throw LogicError("CoaddAssembler: input " + std::to_string(meta.id) + " added twice");
        if (inputs_.size() >= 65535) throw LogicError("CoaddAssembler: at most 65535 inputs");
        index_[meta.id] = inputs_.size();
        inputs_.push_back(CoaddInputSummary{meta.id, 0.0, meta.psfSigmaPx});
        seenThisPass_.push_back(1);
        addPass0(warp, meta, inputs_.back());
        return inputs_.back().weight;
    }
    if (it == index_.end()) throw LogicError("CoaddAssembler: input " + std::to_string(meta.id) + " not in pass 0");
    if (seenThisPass_[it->second]) throw LogicError("CoaddAssembler: input " + std::to_string(meta.id) + " added twice");
    seenThisPass_[it->second] = 1;
    CoaddInputSummary& in = inputs_[it->second];
    if (active_ && in.weight > 0) addCompare(warp, meta, it->second);
    return in.weight;
}

void CoaddAssembler::addPass0(const MaskedImageF& warp, const WarpMetadata& meta, CoaddInputSummary& in) {
    const Mask& mask = warp.mask();
    const MaskPixel excluded = excludedBits(mask);
    const MaskPixel noData = mask.planeDict()->has("NO_DATA") ? mask.planeBitMask("NO_DATA") : 0;
    std::vector<MaskPixel> planeBits;
    for (const auto& p : trackedPlanes_) planeBits.push_back(mask.planeDict()->has(p) ? mask.planeBitMask(p) : 0);
    const double ws = inputWeight(warp, meta, excluded);
    in.weight = ws;
    if (!(ws > 0)) return;  // nothing usable
    sumW_ += ws;
    sumWSigma2_ += ws * meta.psfSigmaPx * meta.psfSigmaPx;
    // Template normal equations (u^k, k < nMom_; the first usable input fixes the origin of u).
    const bool reg = config_.rejectArtifacts;
    double up[2 * PsfSizeFit::kMaxDegree + 1] = {1};
    float wu[2 * PsfSizeFit::kMaxDegree + 1] = {};
    if (reg) {
        if (sumW_ == ws) refLog2Sigma_ = std::log2(meta.psfSigmaPx);
        const double u = std::log2(meta.psfSigmaPx) - refLog2Sigma_;
        for (int k = 1; k < nMom_; ++k) up[k] = up[k - 1] * u;
        for (int k = 0; k < nMom_; ++k) {
            globalMom_[std::size_t(k)] += ws * up[k];
            wu[k] = float(ws * up[k]);
        }
    }
    const std::size_t nm = std::size_t(nMom_), nc = std::size_t(nCoef_);
    const double s = meta.photoScale, s2c = s * s * meta.covarianceFactor;
    const bool perPixel = config_.weighting == CoaddConfig::Weighting::PerPixel;
    const std::size_t npix = sumWI_.size();
    const int wd = bbox_.width();
    std::int64_t used = 0;
    for (int y = 0; y < bbox_.height(); ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = mask.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            const std::size_t k = base + std::size_t(x);
            if (m[x] & noData) {
                if (reg)
                    for (std::size_t q = 0; q < nm; ++q) missMom_[k * nm + q] += wu[q];
                continue;
            }
            coverW_[k] += float(ws);
            for (std::size_t p = 0; p < planeBits.size(); ++p)
                if (m[x] & planeBits[p]) planeW_[p * npix + k] += float(ws);
            const double v = double(var[x]) * s2c;
            if ((m[x] & excluded) || !std::isfinite(im[x]) || !std::isfinite(var[x]) || var[x] < 0 ||
                (perPixel && !(v > 0))) {
                if (reg)
                    for (std::size_t q = 0; q < nm; ++q) missMom_[k * nm + q] += wu[q];
                continue;
            }
            const double w = perPixel ? 1.0 / v : ws;
            if (reg) {
                const float val = float(s * double(im[x]));
                for (std::size_t q = 0; q < nc; ++q) rhs_[k * nc + q] += wu[q] * val;
            }
            sumWI_[k] += w * s * double(im[x]);
            sumW_px_[k] += w;
            sumW2V_[k] += float(w * w * v);
            ++nUsed_[k];
            ++used;
        }
    }
    in.usedPixels = used;
}

namespace {
// `im` over `box` filled with `value`, reusing its pixels when it already covers `box` (the per-warp scratch
// of passes 1-3: a fresh 3000 x 3000 image per plane per warp costs more in page faults than in arithmetic).
template <typename T>
void resetImage(Image<T>& im, const Box2I& box, T value) {
    if (im.bbox() == box && !im.empty())
        im.fill(value);
    else
        im = Image<T>(box, value);
}
}  // namespace

// The usable pixels of a warp in coadd units: image (0 where unusable), variance and a validity flag.
// Returns false when every pixel is usable (valid is then left empty).
bool CoaddAssembler::scaledPlanes(const MaskedImageF& warp, const WarpMetadata& meta, ImageF& image, ImageF& variance,
                                  ImageF& valid) const {
    const Mask& mask = warp.mask();
    const MaskPixel excluded = excludedBits(mask) |
                               (mask.planeDict()->has("NO_DATA") ? mask.planeBitMask("NO_DATA") : 0);
    const double s = meta.photoScale, s2c = s * s * meta.covarianceFactor;
    if (image.bbox() != bbox_ || image.empty()) image = ImageF(bbox_, 0.0f);  // every pixel is written below
    if (variance.bbox() != bbox_ || variance.empty()) variance = ImageF(bbox_, 0.0f);
    bool anyBad = false;
    for (int y = 0; y < bbox_.height(); ++y)
        anyBad |= rejection::scaledRow(image.row(y), variance.row(y), warp.image().row(y), warp.variance().row(y),
                                       mask.row(y), excluded, s, s2c, bbox_.width()) > 0;
    if (!anyBad) {
        valid = ImageF();
        return false;
    }
    resetImage(valid, bbox_, 0.0f);
    for (int y = 0; y < bbox_.height(); ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = mask.row(y);
        float* v = valid.row(y);
        for (int x = 0; x < bbox_.width(); ++x)
            v[x] = ((m[x] & excluded) || !std::isfinite(im[x]) || !std::isfinite(var[x]) || var[x] < 0) ? 0.0f : 1.0f;
    }
    return true;
}

// Passes 1 and 2: fix the template's coordinate v and degree (pass 1), solve the per-pixel templates.
void CoaddAssembler::beginComparison(int pass) {
    if (!config_.rejectArtifacts) return;
    const std::size_t npix = sumWI_.size();
    if (pass == 1) {
        int usable = 0;
        double lo = 0, hi = 0;
        u_.assign(inputs_.size(), 0.0);
        for (std::size_t i = 0; i < inputs_.size(); ++i) {
            if (!(inputs_[i].weight > 0)) continue;
            u_[i] = std::log2(inputs_[i].psfSigmaPx) - refLog2Sigma_;
            lo = usable ? std::min(lo, u_[i]) : u_[i];
            hi = usable ? std::max(hi, u_[i]) : u_[i];
            ++usable;
        }
        active_ = usable >= config_.rejection.minInputs;
        if (!active_) return;
        vCentre_ = 0.5 * (lo + hi);
        vHalf_ = 0.5 * (hi - lo);
        fitDegree_ = psfRegressionDegree(usable, config_.rejection.psfRegressionDegree);
        if (vHalf_ < 0.005) {  // PSF sizes within 0.7%: a weighted mean
            fitDegree_ = 0;
            vHalf_ = 1;
        }
        momentShift_ = PowerMomentShift(nMom_, vCentre_, vHalf_);
        // Leverage of each input in the all-inputs template (the in-sample residual's variance is (1 - h) v).
        double m[2 * PsfSizeFit::kMaxDegree + 1], b[PsfSizeFit::kMaxDegree + 1] = {};
        shiftPowerMoments(globalMom_.data(), nMom_, vCentre_, vHalf_, m);
        // Each input is compared with the template of the highest degree in which its leverage is at most
        // maxLeverage (an input whose PSF size is far from all others is otherwise fitted by itself).
        PsfSizeFit fit;
        leverage_.assign(inputs_.size(), 0.0);
        epochDegree_.assign(inputs_.size(), 0);
        for (int d = 0; d <= fitDegree_; ++d) {
            if (!fit.solve(m, b, d) || fit.degree() < d) break;
            for (std::size_t i = 0; i < inputs_.size(); ++i) {
                if (!(inputs_[i].weight > 0) || epochDegree_[i] < d - 1) continue;
                const double h = inputs_[i].weight * fit.leverage((u_[i] - vCentre_) / vHalf_);
                if (d == 0 || h <= config_.rejection.maxLeverage) {
                    epochDegree_[i] = d;
                    leverage_[i] = h;
                }
            }
        }
        coef_.assign(npix * std::size_t(nCoef_), 0.0f);
        chiSum_.assign(npix, 0.0f);
        chiMax_.assign(npix, 0.0f);
        chiN_.assign(npix, 0);
        nFlag1_.assign(npix, 0);
        flags1_.assign(inputs_.size(), SpanSet());
        flagValues1_.assign(inputs_.size(), std::vector<float>());
        rejected_.assign(inputs_.size(), SpanSet());
        rejValues_.assign(inputs_.size(), std::vector<float>());
        rejVariances_.assign(inputs_.size(), std::vector<float>());
        rejInFit_.assign(inputs_.size(), std::vector<std::uint8_t>());
    }
    if (active_ && pass == 2) {  // take the footprints of pass 1 out of the template's sums
        for (std::size_t i = 0; i < inputs_.size(); ++i)
            moveTemplateSums(i, flags1_[i], flagValues1_[i], true, [](int, int, std::size_t) { return false; });
    }
    if (active_ && pass <= 2) solveTemplates();
    if (active_ && pass == 2) nFlag2_.assign(npix, 0);
}

void CoaddAssembler::solveTemplates() {
    const std::size_t npix = sumWI_.size(), nm = std::size_t(nMom_), nc = std::size_t(nCoef_);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    double mu[2 * PsfSizeFit::kMaxDegree + 1], bu[PsfSizeFit::kMaxDegree + 1];
    double m[2 * PsfSizeFit::kMaxDegree + 1], b[PsfSizeFit::kMaxDegree + 1];
    PsfSizeFit fit;
    for (std::size_t k = 0; k < npix; ++k) {
        float* c = &coef_[k * nc];
        const int n = int(nUsed_[k]) - int(nFlag1_[k]);
        if (n < config_.rejection.minInputs) {
            c[0] = nan;
            continue;
        }
        for (std::size_t q = 0; q < nm; ++q) mu[q] = globalMom_[q] - double(missMom_[k * nm + q]);
        for (std::size_t q = 0; q < nc; ++q) bu[q] = double(rhs_[k * nc + q]);
        momentShift_.apply(mu, m);
        momentShift_.apply(bu, b, nCoef_);
        if (!fit.solve(m, b, psfRegressionDegree(n, fitDegree_))) {
            c[0] = nan;
            continue;
        }
        for (std::size_t q = 0; q < nc; ++q) c[q] = float(fit.coefficients()[q]);
    }
}

// Pass 1: find footprints against the all-inputs template and take them out of the template's sums.
// Pass 2: against the clean template, count the epochs flagged per pixel and accumulate the empirical
// scatter. Pass 3: find footprints against the clean template (noise inflated by the scatter), keep the
// transient ones and keep their pixels for finish() (replaceRejected).
void CoaddAssembler::addCompare(const MaskedImageF& warp, const WarpMetadata& meta, std::size_t index) {
    CoaddInputSummary& in = inputs_[index];
    Scratch& sc = scratch_;
    ImageF &image = sc.image, &variance = sc.variance, &valid = sc.valid;
    scaledPlanes(warp, meta, image, variance, valid);
    const bool masked = !valid.empty();
    const bool perPixel = config_.weighting == CoaddConfig::Weighting::PerPixel;
    const ArtifactRejectionConfig& rc = config_.rejection;
    const int wd = bbox_.width(), ht = bbox_.height();
    const std::size_t nm = std::size_t(nMom_), nc = std::size_t(nCoef_);
    const double v = (u_[index] - vCentre_) / vHalf_;
    const float resFactor = float(std::max(0.05, 1.0 - leverage_[index]));
    const int degree = epochDegree_[index];
    PsfSizeFit fit;
    double mu[2 * PsfSizeFit::kMaxDegree + 1], bu[PsfSizeFit::kMaxDegree + 1];
    double m[2 * PsfSizeFit::kMaxDegree + 1], b[PsfSizeFit::kMaxDegree + 1];
    // Residual against the template's prediction for this epoch, its variance, and where it is defined.
    ImageF &resid = sc.resid, &rvar = sc.rvar, &ok = sc.ok;
    std::int64_t nOk = 0;
    if (degree == fitDegree_) {  // the all-inputs template's degree: its coefficients, row-vectorised
        for (ImageF* im : {&resid, &rvar, &ok})
            if (im->bbox() != bbox_ || im->empty()) *im = ImageF(bbox_, 0.0f);  // every pixel is written below
        if (!masked) sc.ones.assign(std::size_t(wd), 1.0f);  // every pixel valid
        for (int y = 0; y < ht; ++y)
            nOk += rejection::residualRow(resid.row(y), rvar.row(y), ok.row(y), image.row(y), variance.row(y),
                                          masked ? valid.row(y) : sc.ones.data(),
                                          &coef_[std::size_t(y) * std::size_t(wd) * nc], int(nc), v, resFactor,
                                          perPixel, wd);
    } else {  // a lower-degree template for this input, solved per pixel
        resetImage(resid, bbox_, 0.0f);
        resetImage(rvar, bbox_, 0.0f);
        resetImage(ok, bbox_, 0.0f);
        for (int y = 0; y < ht; ++y) {
            const float *im = image.row(y), *var = variance.row(y);
            const float* va = masked ? valid.row(y) : nullptr;
            float *r = resid.row(y), *rv = rvar.row(y), *o = ok.row(y);
            const std::size_t base = std::size_t(y) * std::size_t(wd);
            for (int x = 0; x < wd; ++x) {
                if ((va && !(va[x] > 0)) || (perPixel && !(var[x] > 0))) continue;
                const std::size_t k = base + std::size_t(x);
                if (!std::isfinite(coef_[k * nc])) continue;
                for (std::size_t q = 0; q < nm; ++q) mu[q] = globalMom_[q] - double(missMom_[k * nm + q]);
                for (std::size_t q = 0; q < nc; ++q) bu[q] = double(rhs_[k * nc + q]);
                momentShift_.apply(mu, m);
                momentShift_.apply(bu, b, nCoef_);
                const int n = int(nUsed_[k]) - int(nFlag1_[k]);
                if (!fit.solve(m, b, std::min(degree, psfRegressionDegree(n, fitDegree_)))) continue;
                r[x] = float(double(im[x]) - fit.predict(v));
                rv[x] = var[x] * resFactor;
                o[x] = 1.0f;
                ++nOk;
            }
        }
    }
    const double g = rc.smoothingSigmaPx > 0 ? rc.smoothingSigmaPx : std::max(0.5, meta.psfSigmaPx);
    ImageF &sR = sc.sR, &sV = sc.sV, &sOk = sc.sOk;
    gaussianSmoothNormalized(resid, sR, g, false, &sc.smoothTmp);
    gaussianSmoothNormalized(rvar, sV, g, true, &sc.smoothTmp);
    const bool allOk = nOk == std::int64_t(wd) * ht;  // every pixel comparable: the smoothed validity is 1
    if (!allOk) gaussianSmoothNormalized(ok, sOk, g, false, &sc.smoothTmp);
    const float clip2 = float(rc.scatterClipSigma * rc.scatterClipSigma);
    Image<std::int32_t>& flag = sc.flag;
    resetImage(flag, bbox_, std::int32_t(0));
    if (pass_ >= 2) flags1_[index].setMask(flag, 2);  // pixels already out of the template
    // Near pixels that are not comparable (the epoch's NO_DATA edge, masked pixels) the smoothed residual is
    // the filter's mean over the comparable pixels only: sR / sOk, variance sV / sOk^2 (the same separable
    // weights enter both), used where the pixel itself is comparable and at least kMinFilterCover of the
    // filter's weight falls on comparable pixels (an artifact at a detector edge is then still found whole).
    constexpr float kMinFilterCover = 0.5f;
    for (int y = 0; y < ht; ++y) {
        float *r = sR.row(y), *sv = sV.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        if (!allOk) rejection::coverRow(r, sv, sOk.row(y), ok.row(y), kMinFilterCover, wd);
        if (pass_ == 2)
            rejection::scatterRow(&chiSum_[base], &chiMax_[base], &chiN_[base], r, sv, clip2, wd);
        else if (pass_ == 3)
            rejection::inflateRow(sv, &chiSum_[base], &chiMax_[base], &chiN_[base], wd);
    }
    const ArtifactSearchResult found = findArtifacts(sR, sV, rc.detectionSigma, rc, &sc.mark);
    const SpanSet sharp = findSharpPixels(image, resid, variance, ok, rc, std::min(1.0, double(resFactor)));
    const int grow = rc.growRadiusPx > 0 ? rc.growRadiusPx : int(std::ceil(1.5 * meta.psfSigmaPx));
    int kept = 0, rejectedRegions = 0;
    for (const SpanSet& cand : found.candidates) {
        if (pass_ == 3 && !isTransientFootprint(cand, bbox_, nFlag2_.data(), nUsed_.data(), rc)) {
            ++kept;
            continue;
        }
        cand.dilated(grow).clippedTo(bbox_).setMask(flag, 1);
        ++rejectedRegions;
    }
    sharp.setMask(flag, 1);
    if (pass_ == 3) {
        in.artifactRegions = rejectedRegions;
        in.staticRegions = kept;
    }
    std::int64_t count = 0;
    std::vector<float> values, variances;  // the flagged pixels' values (and pass 3 variances), raster order
    std::vector<std::uint8_t> inFitFlags;  // pass 3: 1 where the pixel is still in the template's sums
    for (int y = 0; y < ht; ++y) {
        const float *im = image.row(y), *var = variance.row(y);
        const float* va = masked ? valid.row(y) : nullptr;
        std::int32_t* f = flag.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            if (!(f[x] & 1) || (va && !(va[x] > 0)) || (perPixel && !(var[x] > 0))) {
                f[x] = 0;
                continue;
            }
            const std::size_t k = base + std::size_t(x);
            if (pass_ == 1) {  // taken out of the template's sums at the start of pass 2
                values.push_back(im[x]);
                ++count;
                continue;
            }
            if (pass_ == 2) {  // counted for the temporal decision
                if (nFlag2_[k] < 65535) ++nFlag2_[k];
                continue;
            }
            // Pass 3: kept with its value and variance; finish() replaces it (order-independent).
            values.push_back(im[x]);
            variances.push_back(var[x]);
            inFitFlags.push_back(f[x] & 2 ? 0 : 1);
            ++count;
        }
    }
    if (pass_ == 1) {
        in.flaggedPixels = count;
        if (count > 0) {
            flags1_[index] = SpanSet::fromMask(flag, 1);
            flagValues1_[index] = std::move(values);
        }
    } else if (pass_ == 3) {
        in.rejectedPixels = count;
        if (count > 0) {
            rejected_[index] = SpanSet::fromMask(flag, 1);
            rejValues_[index] = std::move(values);
            rejVariances_[index] = std::move(variances);
            rejInFit_[index] = std::move(inFitFlags);
        }
    }
}

namespace {

// In-place sum over the (2r + 1)^2 box around each pixel of a w x h plane (zero outside).
void boxSum(float* plane, int w, int h, int r) {
    std::vector<double> line(std::size_t(std::max(w, h)) + 1);
    auto run = [&](float* p, int n, std::size_t stride) {
        line[0] = 0;
        for (int i = 0; i < n; ++i) line[std::size_t(i) + 1] = line[std::size_t(i)] + double(p[std::size_t(i) * stride]);
        for (int i = 0; i < n; ++i)
            p[std::size_t(i) * stride] =
                float(line[std::size_t(std::min(n, i + r + 1))] - line[std::size_t(std::max(0, i - r))]);
    };
    for (int y = 0; y < h; ++y) run(plane + std::size_t(y) * std::size_t(w), w, 1);
    for (int x = 0; x < w; ++x) run(plane + x, h, std::size_t(w));
}

}  // namespace

// After pass 3: every rejected pixel of every epoch is taken out of the template's sums (those of pass 1
// already are), then each is replaced by the template without them evaluated at its epoch's PSF size (the
// static scene through that epoch's PSF; the epoch's own pixel is out, so it is a leave-one-out prediction,
// and other epochs' artifacts at the same pixel cannot leak into it, whatever the input order).
//
// Degree of the replacement: a cubic in log PSF size is needed near bright sources, but where it is not
// needed its extrapolation to an epoch at the end of the PSF-size range (all the more when the epochs there
// were rejected too) amplifies the noise and any undetected artifact wing of the other epochs. Per pixel,
// the prediction of each lower degree d is compared with each higher e through z^2 = (p_e - p_d)^2 /
// ((lev_e - lev_d) v) (nested fits: the variance of their difference); z^2 is pooled over a box of
// radius max(2, 2 sigma_PSF) of the epoch's rejected pixels (a PSF-size residual is coherent over a
// source, noise is not), and the lowest degree that agrees with every higher one (pooled sum Z over N
// pixels below N + kReplaceSigma sqrt(2N)) is used.
template <class Skip>
void CoaddAssembler::moveTemplateSums(std::size_t i, const SpanSet& spans, const std::vector<float>& values, bool out,
                                      Skip skip) {
    const std::size_t nm = std::size_t(nMom_), nc = std::size_t(nCoef_), wd = std::size_t(bbox_.width());
    double up[2 * PsfSizeFit::kMaxDegree + 1] = {1};
    for (std::size_t q = 1; q < nm; ++q) up[q] = up[q - 1] * u_[i];
    const double ws = out ? inputs_[i].weight : -inputs_[i].weight;  // the sign is exact: same bits either way
    std::size_t j = 0;
    for (const Span& sp : spans) {
        const std::size_t base = std::size_t(sp.y - bbox_.minY()) * wd;
        for (int x = sp.x0; x <= sp.x1; ++x, ++j) {
            if (skip(x, sp.y, j)) continue;
            const std::size_t k = base + std::size_t(x - bbox_.minX());
            for (std::size_t q = 0; q < nm; ++q) missMom_[k * nm + q] += float(ws * up[q]);
            for (std::size_t q = 0; q < nc; ++q) rhs_[k * nc + q] -= float(ws * up[q] * values[j]);
            if (out) ++nFlag1_[k];
            else --nFlag1_[k];
        }
    }
}

void CoaddAssembler::replaceRejected() {
    constexpr double kReplaceSigma = 3.0;
    const std::size_t nm = std::size_t(nMom_), nc = std::size_t(nCoef_), wd = std::size_t(bbox_.width());
    const bool perPixel = config_.weighting == CoaddConfig::Weighting::PerPixel;
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
        // Pass 1's footprints that pass 3 did not reject (a template pulled by an artifact of another epoch
        // makes an epoch differ from it there) go back into the template: the replacement is then fitted to
        // every epoch that stays in the coadd.
        moveTemplateSums(i, flags1_[i], flagValues1_[i], false,
                         [&](int x, int y, std::size_t) { return rejected_[i].contains(Point2I{x, y}); });
        flags1_[i] = SpanSet();
        std::vector<float>().swap(flagValues1_[i]);
        moveTemplateSums(i, rejected_[i], rejValues_[i], true, [&](int, int, std::size_t j) { return !rejInFit_[i][j]; });
    }
    constexpr int kD = PsfSizeFit::kMaxDegree + 1, kPairs = kD * (kD - 1) / 2;
    struct Prediction {
        double p[kD], l[kD];
        int lowest = 0, top = -1;  // degrees available: lowest .. top (top < 0: not predictable)
    };
    PsfSizeFit fit;
    double mu[2 * PsfSizeFit::kMaxDegree + 1], bu[PsfSizeFit::kMaxDegree + 1];
    double m[2 * PsfSizeFit::kMaxDegree + 1], b[PsfSizeFit::kMaxDegree + 1];
    int pairIndex[kD][kD] = {};
    for (int d = 0, q = 0; d < kD; ++d)
        for (int e = d + 1; e < kD; ++e) pairIndex[d][e] = q++;
    std::vector<Prediction> pred;
    std::vector<float> z, cnt;
    for (std::size_t i = 0; i < inputs_.size(); ++i) {
        const SpanSet& rs = rejected_[i];
        if (rs.area() == 0) continue;
        const double ws = inputs_[i].weight, v = (u_[i] - vCentre_) / vHalf_;
        const int degree = epochDegree_[i];
        const Box2I eb = rs.bbox();
        const int ew = eb.width(), eh = eb.height();
        const std::size_t enpix = std::size_t(ew) * std::size_t(eh);
        // Predictions of every degree at every rejected pixel, and their pairwise z^2.
        pred.assign(std::size_t(rs.area()), Prediction{});
        z.assign(enpix * kPairs, 0.0f);
        cnt.assign(enpix * kPairs, 0.0f);
        std::size_t j = 0;
        for (const Span& sp : rs) {
            const std::size_t base = std::size_t(sp.y - bbox_.minY()) * wd;
            for (int x = sp.x0; x <= sp.x1; ++x, ++j) {
                const std::size_t k = base + std::size_t(x - bbox_.minX());
                const int n = int(nUsed_[k]) - int(nFlag1_[k]);
                if (n < 2) continue;
                for (std::size_t q = 0; q < nm; ++q) mu[q] = globalMom_[q] - double(missMom_[k * nm + q]);
                for (std::size_t q = 0; q < nc; ++q) bu[q] = double(rhs_[k * nc + q]);
                momentShift_.apply(mu, m);
                momentShift_.apply(bu, b, nCoef_);
                Prediction& pr = pred[j];
                const int maxD = std::min(degree, psfRegressionDegree(n, fitDegree_));
                for (int d = 0; d <= maxD; ++d) {
                    if (!fit.solve(m, b, d) || fit.degree() < d) break;
                    pr.p[d] = fit.predict(v);
                    pr.l[d] = ws * fit.leverage(v);
                    if (!std::isfinite(pr.p[d])) break;
                    pr.top = d;
                }
                const double vv = rejVariances_[i][j];
                const std::size_t loc = std::size_t(sp.y - eb.minY()) * std::size_t(ew) + std::size_t(x - eb.minX());
                for (int d = 0; d <= pr.top; ++d)
                    for (int e = d + 1; e <= pr.top; ++e) {
                        const double dv = std::max(pr.l[e] - pr.l[d], 1e-6) * vv;
                        const double dp = pr.p[e] - pr.p[d];
                        const std::size_t q = std::size_t(pairIndex[d][e]) * enpix + loc;
                        z[q] = float(std::min(dp * dp / dv, 1e6));
                        cnt[q] = 1.0f;
                    }
            }
        }
        const int r = std::max(2, int(std::ceil(2.0 * inputs_[i].psfSigmaPx)));
        for (int q = 0; q < kPairs; ++q) {
            boxSum(z.data() + std::size_t(q) * enpix, ew, eh, r);
            boxSum(cnt.data() + std::size_t(q) * enpix, ew, eh, r);
        }
        j = 0;
        for (const Span& sp : rs) {
            const std::size_t base = std::size_t(sp.y - bbox_.minY()) * wd;
            for (int x = sp.x0; x <= sp.x1; ++x, ++j) {
                const std::size_t k = base + std::size_t(x - bbox_.minX());
                const double val = rejValues_[i][j], vv = rejVariances_[i][j];
                const Prediction& pr = pred[j];
                const std::size_t loc = std::size_t(sp.y - eb.minY()) * std::size_t(ew) + std::size_t(x - eb.minX());
                int chosen = pr.top;
                for (int d = 0; d < pr.top && chosen == pr.top; ++d) {
                    bool agrees = true;
                    for (int e = d + 1; e <= pr.top && agrees; ++e) {
                        const std::size_t q = std::size_t(pairIndex[d][e]) * enpix + loc;
                        const double nz = cnt[q];
                        agrees = double(z[q]) <= nz + kReplaceSigma * std::sqrt(2.0 * nz);
                    }
                    if (agrees) chosen = d;
                }
                const bool replaced = chosen >= 0;
                const double p = replaced ? pr.p[chosen] : 0.0, lev = replaced ? std::min(pr.l[chosen], 4.0) : 0.0;
                const double w = perPixel ? 1.0 / vv : ws;
                if (replaced) {  // the epoch's value becomes the prediction (weight unchanged)
                    // Variance: the epoch's w^2 v out, w^2 Var(p) = w^2 v lev in, and the covariance of p = sum_j c_j
                    // I_j with the template's epochs, all in the coadd: 2 w sum_j w_j c_j v_j = 2 w^2 v (sum_j c_j = 1,
                    // w_j v_j ~ w v): the coadd's variance grows by w^2 v (1 + lev).
                    rejWI_[k] += float(w * (val - p));
                    rejW2V_[k] -= float(w * w * vv * (1.0 + lev));
                } else {  // removed
                    rejWI_[k] += float(w * val);
                    rejW_[k] += float(w);
                    rejW2V_[k] += float(w * w * vv);
                }
                ++nRejected_[k];
            }
        }
        rejected_[i] = SpanSet();
        std::vector<float>().swap(rejValues_[i]);
        std::vector<float>().swap(rejVariances_[i]);
        std::vector<std::uint8_t>().swap(rejInFit_[i]);
    }
}

MaskedImageF CoaddAssembler::finish() {
    if (finished_) throw LogicError("CoaddAssembler::finish called twice");
    if (pass_ != numPasses() - 1) throw LogicError("CoaddAssembler::finish before the last pass");
    for (std::size_t i = 0; i < seenThisPass_.size(); ++i)
        if (!seenThisPass_[i])
            throw LogicError("CoaddAssembler: input " + std::to_string(inputs_[i].id) + " missing from the last pass");
    finished_ = true;
    scratch_ = Scratch{};
    if (active_) replaceRejected();
    MaskedImageF out(bbox_);
    Mask& mask = out.mask();
    std::vector<MaskPixel> planeBits;
    for (const auto& p : trackedPlanes_) planeBits.push_back(MaskPixel(1u << mask.addPlane(p)));
    const MaskPixel noData = mask.planeBitMask("NO_DATA"), clipped = mask.planeBitMask("CLIPPED");
    const bool rej = !nRejected_.empty();
    const std::size_t npix = sumWI_.size();
    const int wd = bbox_.width();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int y = 0; y < bbox_.height(); ++y) {
        float* im = out.image().row(y);
        float* var = out.variance().row(y);
        MaskPixel* m = mask.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            const std::size_t k = base + std::size_t(x);
            MaskPixel bits = 0;
            const int nr = rej ? nRejected_[k] : 0;
            const double W = sumW_px_[k] - (rej ? double(rejW_[k]) : 0.0);
            if (nr > 0) bits |= clipped;
            if (nUsed_[k] == 0 || !(W > 1e-5 * sumW_px_[k])) {
                im[x] = nan;
                var[x] = nan;
                bits |= noData;
            } else {
                const double S = sumWI_[k] - (rej ? double(rejWI_[k]) : 0.0);
                const double Q = double(sumW2V_[k]) - (rej ? double(rejW2V_[k]) : 0.0);
                im[x] = float(S / W);
                var[x] = float(std::max(Q, 0.0) / (W * W));
            }
            if (coverW_[k] > 0)
                for (std::size_t p = 0; p < planeBits.size(); ++p)
                    if (planeW_[p * npix + k] >= thresholds_[p] * coverW_[k] * (1 - 1e-6)) bits |= planeBits[p];
            m[x] = bits;
        }
    }
    return out;
}

}  // namespace drp
