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
    return sumWI_.size() * sizeof(double) + sumW_px_.size() * sizeof(double) + sumW2V_.size() * sizeof(float) +
           nUsed_.size() * sizeof(std::uint16_t) + coverW_.size() * sizeof(float) + planeW_.size() * sizeof(float) +
           (rejWI_.size() + rejW_.size() + rejW2V_.size()) * sizeof(float) + nRejected_.size() * sizeof(std::uint16_t);
}

double CoaddAssembler::meanPsfSigmaPx() const { return sumW_ > 0 ? std::sqrt(sumWSigma2_ / sumW_) : 0.0; }

double CoaddAssembler::smoothingSigmaPx() const {
    return config_.rejection.smoothingSigmaPx > 0 ? config_.rejection.smoothingSigmaPx
                                                  : std::max(0.3, meanPsfSigmaPx());
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
    if (int(inputs_.size()) >= config_.rejection.minInputs && in.weight > 0) addPass1(warp, meta, in);
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

void CoaddAssembler::addPass1(const MaskedImageF& warp, const WarpMetadata& meta, CoaddInputSummary& in) {
    const Mask& mask = warp.mask();
    const MaskPixel excluded = excludedBits(mask) |
                               (mask.planeDict()->has("NO_DATA") ? mask.planeBitMask("NO_DATA") : 0);
    const double ws = in.weight;
    const double s = meta.photoScale, s2c = s * s * meta.covarianceFactor;
    const bool perPixel = config_.weighting == CoaddConfig::Weighting::PerPixel;
    const int wd = bbox_.width(), ht = bbox_.height();
    ImageF diff(bbox_, 0.0f), diffVar(bbox_, 0.0f), ref(bbox_, 0.0f), refVar(bbox_, 0.0f);
    auto weightAt = [&](float imv, float varv, MaskPixel m, double& w, double& v) {
        if ((m & excluded) || !std::isfinite(imv) || !std::isfinite(varv) || varv < 0) return false;
        v = double(varv) * s2c;
        w = ws;
        if (perPixel) {
            if (!(v > 0)) return false;
            w = 1.0 / v;
        }
        return true;
    };
    for (int y = 0; y < ht; ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = mask.row(y);
        float *d = diff.row(y), *dv = diffVar.row(y), *r = ref.row(y), *rv = refVar.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            const std::size_t k = base + std::size_t(x);
            const double W = sumW_px_[k];
            if (!(W > 0)) continue;
            double w = 0, v = 0;
            const bool usable = weightAt(im[x], var[x], m[x], w, v);
            if (!usable) {  // the reference here is already the mean of the others
                r[x] = float(sumWI_[k] / W);
                rv[x] = float(sumW2V_[k] / (W * W));
                continue;
            }
            const double Wo = W - w;
            if (nUsed_[k] < 2 || !(Wo > 1e-6 * W)) continue;  // no other input to compare with
            const double rr = (sumWI_[k] - w * s * double(im[x])) / Wo;
            const double rvv = std::max(0.0, (double(sumW2V_[k]) - w * w * v) / (Wo * Wo));
            r[x] = float(rr);
            rv[x] = float(rvv);
            d[x] = float(s * double(im[x]) - rr);
            dv[x] = float(v + rvv);
        }
    }
    const ArtifactSearchResult found =
        findArtifacts(diff, diffVar, ref, refVar, meta.psfSigmaPx, smoothingSigmaPx(), config_.rejection);
    in.artifactRegions = int(found.artifacts.size());
    in.staticRegions = found.staticRegions;
    if (found.artifacts.empty()) return;
    // Union of the (possibly overlapping) grown regions, then remove this input's pixels there.
    Image<std::int32_t> flag(bbox_, 0);
    for (const SpanSet& a : found.artifacts) a.setMask(flag, 1);
    std::int64_t rejected = 0;
    for (int y = 0; y < ht; ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = mask.row(y);
        const std::int32_t* f = flag.row(y);
        const std::size_t base = std::size_t(y) * std::size_t(wd);
        for (int x = 0; x < wd; ++x) {
            if (!f[x]) continue;
            double w = 0, v = 0;
            if (!weightAt(im[x], var[x], m[x], w, v)) continue;
            const std::size_t k = base + std::size_t(x);
            rejWI_[k] += float(w * s * double(im[x]));
            rejW_[k] += float(w);
            rejW2V_[k] += float(w * w * v);
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
            const int n = nUsed_[k] - nr;
            const double W = sumW_px_[k] - (rej ? double(rejW_[k]) : 0.0);
            if (nr > 0) bits |= clipped;
            if (n <= 0 || !(W > 0)) {
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
