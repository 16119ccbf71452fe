#include "stages/coadd/CoaddAssembler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"

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
    }
}

std::size_t CoaddAssembler::pixelStateBytes() const {
    const std::size_t n = sumWI_.size();
    std::size_t perPixel = 2 * sizeof(double) + 2 * sizeof(float) + sizeof(std::uint16_t) +
                           trackedPlanes_.size() * sizeof(float);
    if (config_.rejectArtifacts)  // rejected sums + template state at its peak (pass 1)
        perPixel += 3 * sizeof(float) + sizeof(std::uint16_t) + 2 * sizeof(float) + sizeof(std::uint16_t) +
                    std::size_t(config_.rejection.maxOutlierEpochs) * (sizeof(float) + sizeof(std::uint16_t));
    return n * perPixel;
}

double CoaddAssembler::meanPsfSigmaPx() const { return sumW_ > 0 ? std::sqrt(sumWSigma2_ / sumW_) : 0.0; }

double CoaddAssembler::smoothingSigmaPx() const {
    return config_.rejection.smoothingSigmaPx > 0 ? config_.rejection.smoothingSigmaPx
                                                  : std::max(0.3, targetSigma_ > 0 ? targetSigma_ : meanPsfSigmaPx());
}

MaskPixel CoaddAssembler::excludedBits(const Mask& mask) const {
    MaskPixel bits = 0;
    for (const auto& name : config_.excludedMaskPlanes)
        if (mask.planeDict()->has(name)) bits |= mask.planeBitMask(name);
    return bits;
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
    const bool active = int(inputs_.size()) >= config_.rejection.minInputs;
    if (pass == 1) {
        targetSigma_ = 0;
        for (const auto& in : inputs_)
            if (in.weight > 0) targetSigma_ = std::max(targetSigma_, in.psfSigmaPx);
        rawSigma_.assign(inputs_.size(), 0.0);
        matchedSigma_.assign(inputs_.size(), 0.0);
        if (active) {
            const std::size_t n = sumWI_.size(), K = std::size_t(config_.rejection.maxOutlierEpochs);
            tA_.assign(n, 0.0f);
            tW_.assign(n, 0.0f);
            tN_.assign(n, 0);
            topV_.assign(n * K, 0.0f);
            topI_.assign(n * K, 0);
        }
    } else if (pass == 2 && active) {
        buildTemplate();
    }
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
    if (int(inputs_.size()) >= config_.rejection.minInputs && in.weight > 0) {
        if (pass_ == 1)
            addTemplate(warp, meta, it->second);
        else if (rawSigma_[it->second] > 0)
            addCompare(warp, meta, in);
    }
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
            if (m[x] & noData) continue;
            const std::size_t k = base + std::size_t(x);
            coverW_[k] += float(ws);
            for (std::size_t p = 0; p < planeBits.size(); ++p)
                if (m[x] & planeBits[p]) planeW_[p * npix + k] += float(ws);
            if ((m[x] & excluded) || !std::isfinite(im[x]) || !std::isfinite(var[x]) || var[x] < 0) continue;
            const double v = double(var[x]) * s2c;
            double w = ws;
            if (perPixel) {
                if (!(v > 0)) continue;
                w = 1.0 / v;
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

// The usable pixels of a warp in coadd units: image (0 where unusable), variance and a validity flag.
// Returns false when every pixel is usable (valid is then left empty).
bool CoaddAssembler::scaledPlanes(const MaskedImageF& warp, const WarpMetadata& meta, ImageF& image, ImageF& variance,
                                  ImageF& valid) const {
    const Mask& mask = warp.mask();
    const MaskPixel excluded = excludedBits(mask) |
                               (mask.planeDict()->has("NO_DATA") ? mask.planeBitMask("NO_DATA") : 0);
    const double s = meta.photoScale, s2c = s * s * meta.covarianceFactor;
    image = ImageF(bbox_, 0.0f);
    variance = ImageF(bbox_, 0.0f);
    bool anyBad = false;
    for (int y = 0; y < bbox_.height(); ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = mask.row(y);
        float *o = image.row(y), *ov = variance.row(y);
        for (int x = 0; x < bbox_.width(); ++x) {
            if ((m[x] & excluded) || !std::isfinite(im[x]) || !std::isfinite(var[x]) || var[x] < 0) {
                anyBad = true;
                continue;
            }
            o[x] = float(s * double(im[x]));
            ov[x] = float(double(var[x]) * s2c);
        }
    }
    if (!anyBad) {
        valid = ImageF();
        return false;
    }
    valid = ImageF(bbox_, 0.0f);
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

void CoaddAssembler::addTemplate(const MaskedImageF& warp, const WarpMetadata& meta, std::size_t index) {
    ImageF image, variance, valid;
    const bool masked = scaledPlanes(warp, meta, image, variance, valid);
    // Per-input noise sigma of the PSF-matched warp (median variance; Poisson excess ignored).
    std::vector<float> v;
    v.reserve(std::size_t(bbox_.width()) * std::size_t(bbox_.height()) / 4 + 1);
    for (int y = 0; y < bbox_.height(); y += 2)
        for (int x = y % 4 / 2; x < bbox_.width(); x += 2) {
            const float vv = variance(x, y);
            if (vv > 0 && (!masked || valid(x, y) > 0)) v.push_back(vv);
        }
    if (v.empty()) return;
    auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
    std::nth_element(v.begin(), mid, v.end());
    const double ks = config_.rejection.matchingKernelScale * psfMatchingSigma(meta.psfSigmaPx, targetSigma_);
    rawSigma_[index] = std::sqrt(double(*mid));
    matchedSigma_[index] = rawSigma_[index] * std::sqrt(gaussianKernelSquaredSum(ks));
    ImageF J, JV;
    gaussianSmoothNormalized(image, J, ks);
    if (masked) gaussianSmoothNormalized(valid, JV, ks);
    const int K = config_.rejection.maxOutlierEpochs;
    const float w = float(inputs_[index].weight);
    const std::uint16_t id = std::uint16_t(index);
    const int wd = bbox_.width();
    for (int y = 0; y < bbox_.height(); ++y) {
        const float* j = J.row(y);
        const float* jv = masked ? JV.row(y) : nullptr;
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            if (jv && jv[x] < 0.999f) continue;
            const std::size_t k = base + std::size_t(x);
            tA_[k] += w * j[x];
            tW_[k] += w;
            ++tN_[k];
            float* top = &topV_[k * std::size_t(K)];
            std::uint16_t* ti = &topI_[k * std::size_t(K)];
            const int filled = std::min<int>(tN_[k] - 1, K);
            int pos = filled;  // insert j[x] into the descending list of the first `filled` values
            while (pos > 0 && top[pos - 1] < j[x]) --pos;
            if (pos >= K) continue;
            for (int q = std::min(filled, K - 1); q > pos; --q) {
                top[q] = top[q - 1];
                ti[q] = ti[q - 1];
            }
            top[pos] = j[x];
            ti[pos] = id;
        }
    }
}

void CoaddAssembler::buildTemplate() {
    const int K = config_.rejection.maxOutlierEpochs;
    const double g = smoothingSigmaPx();
    const std::size_t npix = tA_.size();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    ImageF T(bbox_, 0.0f);
    std::vector<double> tw(static_cast<std::size_t>(K)), ts(static_cast<std::size_t>(K));
    const int wd = bbox_.width();
    for (std::size_t k = 0; k < npix; ++k) {
        const int n = tN_[k];
        if (n == 0) continue;
        const int kk = std::min(n, K);
        for (int q = 0; q < kk; ++q) {
            const std::size_t idx = topI_[k * std::size_t(K) + std::size_t(q)];
            tw[std::size_t(q)] = inputs_[idx].weight;
            ts[std::size_t(q)] = matchedSigma_[idx];
        }
        T(int(k % std::size_t(wd)), int(k / std::size_t(wd))) =
            float(robustTemplateValue(tA_[k], tW_[k], n, &topV_[k * std::size_t(K)], tw.data(), ts.data(), kk,
                                      config_.rejection.templateClipSigma, config_.rejection.templateFluxFraction));
    }
    ImageF sT;
    gaussianSmoothNormalized(T, sT, g);
    tT_.assign(npix, 0.0f);
    for (std::size_t k = 0; k < npix; ++k) {
        tA_[k] = tN_[k] == 0 ? nan : sT(int(k % std::size_t(wd)), int(k / std::size_t(wd)));
        tT_[k] = tN_[k] == 0 ? nan : T(int(k % std::size_t(wd)), int(k / std::size_t(wd)));
    }
    // Variance of G*T (per-input noise, uniform weights over the patch): sum (w/W)^2 s^2 sum(G*K)^2.
    double W = 0, Q = 0, Q0 = 0;
    for (std::size_t i = 0; i < inputs_.size(); ++i)
        if (inputs_[i].weight > 0 && rawSigma_[i] > 0) W += inputs_[i].weight;
    for (std::size_t i = 0; i < inputs_.size(); ++i)
        if (inputs_[i].weight > 0 && rawSigma_[i] > 0) {
            const double ks = config_.rejection.matchingKernelScale * psfMatchingSigma(inputs_[i].psfSigmaPx, targetSigma_);
            const double f = inputs_[i].weight / W;
            Q += f * f * rawSigma_[i] * rawSigma_[i] * gaussianKernelSquaredSum(std::sqrt(ks * ks + g * g));
            Q0 += f * f * rawSigma_[i] * rawSigma_[i] * gaussianKernelSquaredSum(ks);
        }
    templateSmoothedVar_ = Q;
    templateVar_ = Q0;
    // The top-K state is no longer needed.
    std::vector<float>().swap(tW_);
    std::vector<std::uint16_t>().swap(tN_);
    std::vector<float>().swap(topV_);
    std::vector<std::uint16_t>().swap(topI_);
}

void CoaddAssembler::addCompare(const MaskedImageF& warp, const WarpMetadata& meta, CoaddInputSummary& in) {
    ImageF image, variance, valid;
    const bool masked = scaledPlanes(warp, meta, image, variance, valid);
    const double g = smoothingSigmaPx();
    const double ks = config_.rejection.matchingKernelScale * psfMatchingSigma(meta.psfSigmaPx, targetSigma_);
    const double sc = std::sqrt(ks * ks + g * g);  // PSF matching then the detection filter
    ImageF sD, sV, sValid, J, JV, JValid;
    gaussianSmoothNormalized(image, sD, sc);
    gaussianSmoothNormalized(variance, sV, sc, true);
    gaussianSmoothNormalized(image, J, ks);
    gaussianSmoothNormalized(variance, JV, ks, true);
    if (masked) {
        gaussianSmoothNormalized(valid, sValid, sc);
        gaussianSmoothNormalized(valid, JValid, ks);
    }
    ImageF sT(bbox_, 0.0f), T(bbox_, 0.0f);
    const int wd = bbox_.width(), ht = bbox_.height();
    const float tv = float(templateSmoothedVar_), tvRaw = float(templateVar_);
    for (int y = 0; y < ht; ++y) {
        float *d = sD.row(y), *v = sV.row(y), *t = sT.row(y), *j = J.row(y), *jv = JV.row(y), *tr = T.row(y);
        const float* ok = masked ? sValid.row(y) : nullptr;
        const float* okJ = masked ? JValid.row(y) : nullptr;
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            const float tt = tA_[base + std::size_t(x)], traw = tT_[base + std::size_t(x)];
            if (!std::isfinite(tt) || (ok && ok[x] < 0.999f)) {
                d[x] = 0;
                v[x] = 0;
            } else {
                t[x] = tt;
                d[x] -= tt;
                v[x] += tv;
            }
            if (!std::isfinite(traw) || (okJ && okJ[x] < 0.999f)) {
                j[x] = 0;
                jv[x] = 0;
            } else {
                tr[x] = traw;
                j[x] -= traw;
                jv[x] += tvRaw;
            }
        }
    }
    const int grow = config_.rejection.growRadiusPx > 0 ? config_.rejection.growRadiusPx : int(std::ceil(targetSigma_));
    const ArtifactSearchResult found =
        findArtifacts(sD, sV, sT, config_.rejection.detectionSigma, grow, config_.rejection);
    // Raw residual against the leave-one-out mean of the other epochs (pass-0 sums) for the sharp test.
    ImageF resid(bbox_, 0.0f), residVar(bbox_, 0.0f);
    {
        const bool pp = config_.weighting == CoaddConfig::Weighting::PerPixel;
        for (int y = 0; y < ht; ++y) {
            const float *im = image.row(y), *var = variance.row(y);
            const float* ok = masked ? valid.row(y) : nullptr;
            float *r = resid.row(y), *rv = residVar.row(y);
            const std::size_t base = std::size_t(y) * std::size_t(wd);
            for (int x = 0; x < wd; ++x) {
                if (ok && !(ok[x] > 0)) continue;
                const std::size_t k = base + std::size_t(x);
                const double w = pp ? (var[x] > 0 ? 1.0 / var[x] : 0.0) : in.weight;
                const double Wo = sumW_px_[k] - w;
                if (!(w > 0) || nUsed_[k] < 2 || !(Wo > 1e-6 * sumW_px_[k])) continue;
                const double m = (sumWI_[k] - w * double(im[x])) / Wo;
                const double mv = std::max(0.0, (double(sumW2V_[k]) - w * w * double(var[x])) / (Wo * Wo));
                r[x] = float(double(im[x]) - m);
                rv[x] = float(double(var[x]) + mv);
            }
        }
    }
    const SpanSet sharp = findSharpPixels(image, resid, variance, valid, config_.rejection);
    in.artifactRegions = int(found.artifacts.size());
    in.staticRegions = found.candidateRegions - in.artifactRegions;
    if (found.artifacts.empty() && sharp.empty()) return;
    // Union of the (possibly overlapping) grown regions, then remove (or correct) this input's pixels there.
    Image<std::int32_t> flag(bbox_, 0);
    for (const SpanSet& a : found.artifacts) a.setMask(flag, 1);
    sharp.setMask(flag, 2);
    const bool perPixel = config_.weighting == CoaddConfig::Weighting::PerPixel;
    const double ws = in.weight;
    const float ratio = float(config_.rejection.removeOverStaticRatio);
    std::int64_t rejected = 0;
    for (int y = 0; y < ht; ++y) {
        const float* im = image.row(y);
        const float* var = variance.row(y);
        const float* ok = masked ? valid.row(y) : nullptr;
        const float *d = sD.row(y), *t = sT.row(y), *j = J.row(y), *jv = JV.row(y);
        const std::int32_t* f = flag.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            if (!f[x] || (ok && !(ok[x] > 0))) continue;
            const double v = var[x];
            double w = ws;
            if (perPixel) {
                if (!(v > 0)) continue;
                w = 1.0 / v;
            }
            const std::size_t k = base + std::size_t(x);
            if (f[x] == 1 && jv[x] > 0 && t[x] > 0 && d[x] < ratio * t[x]) {
                rejWI_[k] += float(w * double(j[x]));  // correct: the epoch's value becomes I - (J - T)
            } else {
                rejWI_[k] += float(w * double(im[x]));
                rejW_[k] += float(w);
                rejW2V_[k] += float(w * w * v);
            }
            ++nRejected_[k];
            ++rejected;
        }
    }
    in.rejectedPixels = rejected;
}

MaskedImageF CoaddAssembler::finish() {
    if (finished_) throw LogicError("CoaddAssembler::finish called twice");
    if (pass_ != numPasses() - 1) throw LogicError("CoaddAssembler::finish before the last pass");
    for (std::size_t i = 0; i < seenThisPass_.size(); ++i)
        if (!seenThisPass_[i])
            throw LogicError("CoaddAssembler: input " + std::to_string(inputs_[i].id) + " missing from the last pass");
    finished_ = true;
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
