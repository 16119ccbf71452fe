#include "stages/coadd/SurveyProperty.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "core/Error.h"

namespace drp {

void SurveyPropertyConfig::validate() const {
    if (binSize < 1 || binSize > 4096) throw ConfigError("SurveyPropertyConfig: binSize must be in [1, 4096]");
    if (!std::isfinite(zeroPointMag)) throw ConfigError("SurveyPropertyConfig: zeroPointMag must be finite");
}

SurveyPropertyAccumulator::SurveyPropertyAccumulator(const Box2I& patchBox, SurveyPropertyConfig config)
    : box_(patchBox), config_(std::move(config)) {
    config_.validate();
    if (box_.empty()) throw LogicError("SurveyPropertyAccumulator: empty patch bbox");
    nx_ = (box_.width() + config_.binSize - 1) / config_.binSize;
    ny_ = (box_.height() + config_.binSize - 1) / config_.binSize;
    const std::size_t nb = std::size_t(nx_) * std::size_t(ny_);
    n_.assign(nb, 0.0);
    t_.assign(nb, 0.0);
    w_.assign(nb, 0.0);
    wPsf2_.assign(nb, 0.0);
    wSky_.assign(nb, 0.0);
    counts_.assign(nb, 0);
}

void SurveyPropertyAccumulator::add(const MaskedImageF& warp, const WarpMetadata& meta, double weight) {
    if (warp.bbox() != box_) throw LogicError("SurveyPropertyAccumulator::add: warp bbox differs from the patch bbox");
    meta.validate();
    const MaskPixel excluded = warp.mask().planeBitMaskIfPresent(config_.excludedMaskPlanes);
    std::fill(counts_.begin(), counts_.end(), 0);
    const int b = config_.binSize;
    for (int y = 0; y < box_.height(); ++y) {
        const float* im = warp.image().row(y);
        const float* var = warp.variance().row(y);
        const MaskPixel* m = warp.mask().row(y);
        std::int32_t* c = counts_.data() + std::size_t(y / b) * std::size_t(nx_);
        for (int x = 0; x < box_.width(); ++x)
            if (!(m[x] & excluded) && std::isfinite(im[x]) && std::isfinite(var[x])) ++c[x / b];
    }
    const double s2 = meta.psfSigmaPx * meta.psfSigmaPx, sky = meta.skyLevel * meta.photoScale;
    for (int j = 0; j < ny_; ++j) {
        const int h = std::min(b, box_.height() - j * b);
        for (int i = 0; i < nx_; ++i) {
            const std::size_t k = std::size_t(j) * std::size_t(nx_) + std::size_t(i);
            if (!counts_[k]) continue;
            const double area = double(h) * double(std::min(b, box_.width() - i * b));
            const double c = counts_[k];
            n_[k] += c / area;
            t_[k] += meta.exposureTimeS * c / area;
            w_[k] += weight * c;
            wPsf2_[k] += weight * c * s2;
            wSky_[k] += weight * c * sky;
        }
    }
}

SurveyPropertyMaps SurveyPropertyAccumulator::finish(const MaskedImageF& coadd) const {
    if (coadd.bbox() != box_) throw LogicError("SurveyPropertyAccumulator::finish: coadd bbox differs from the patch");
    SurveyPropertyMaps maps;
    maps.patchBox = box_;
    maps.binSize = config_.binSize;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    maps.nInputs = ImageF(nx_, ny_, 0.0f);
    maps.exposureTime = ImageF(nx_, ny_, 0.0f);
    maps.psfSigma = ImageF(nx_, ny_, nan);
    maps.skyBackground = ImageF(nx_, ny_, nan);
    maps.depth = ImageF(nx_, ny_, nan);
    const int b = config_.binSize;
    ImageD vs(nx_, ny_, 0.0), vn(nx_, ny_, 0.0);  // sum and count of finite coadd variances per bin
    for (int y = 0; y < box_.height(); ++y) {
        const float* v = coadd.variance().row(y);
        double* s = vs.row(y / b);
        double* c = vn.row(y / b);
        for (int x = 0; x < box_.width(); ++x)
            if (std::isfinite(v[x]) && v[x] > 0) {
                s[x / b] += v[x];
                c[x / b] += 1.0;
            }
    }
    for (int j = 0; j < ny_; ++j)
        for (int i = 0; i < nx_; ++i) {
            const std::size_t k = std::size_t(j) * std::size_t(nx_) + std::size_t(i);
            maps.nInputs(i, j) = float(n_[k]);
            maps.exposureTime(i, j) = float(t_[k]);
            if (!(w_[k] > 0)) continue;
            const double sig2 = wPsf2_[k] / w_[k];
            maps.psfSigma(i, j) = float(std::sqrt(sig2));
            maps.skyBackground(i, j) = float(wSky_[k] / w_[k]);
            if (vn(i, j) > 0) {
                const double vbar = vs(i, j) / vn(i, j);
                const double neff = 4.0 * std::numbers::pi * sig2;
                maps.depth(i, j) = float(config_.zeroPointMag - 2.5 * std::log10(5.0 * std::sqrt(vbar * neff)));
            }
        }
    return maps;
}

namespace {

// Viridis at 9 evenly spaced stops (matplotlib's table), interpolated linearly.
constexpr std::array<std::array<double, 3>, 9> kViridis{{{68, 1, 84},
                                                         {71, 44, 122},
                                                         {59, 81, 139},
                                                         {44, 113, 142},
                                                         {33, 144, 141},
                                                         {39, 173, 129},
                                                         {92, 200, 99},
                                                         {170, 220, 50},
                                                         {253, 231, 37}}};

}  // namespace

ImageBuffer8 renderMap(const ImageF& map, const MapRenderConfig& config) {
    ImageBuffer8 out;
    out.width = map.width();
    out.height = map.height();
    out.channels = config.colormap == MapRenderConfig::Colormap::Grey ? 1 : 3;
    out.pixels.assign(std::size_t(out.width) * std::size_t(out.height) * std::size_t(out.channels), 0);
    double lo = config.vmin, hi = config.vmax;
    if (std::isnan(lo) || std::isnan(hi)) {
        std::vector<float> v;
        for (int y = 0; y < map.height(); ++y)
            for (int x = 0; x < map.width(); ++x)
                if (std::isfinite(map(x, y))) v.push_back(map(x, y));
        if (v.empty()) return out;
        std::sort(v.begin(), v.end());
        auto pct = [&](double q) { return double(v[std::size_t(q * double(v.size() - 1) + 0.5)]); };
        if (std::isnan(lo)) lo = pct(0.01);
        if (std::isnan(hi)) hi = pct(0.99);
    }
    const double span = hi > lo ? hi - lo : 1.0;
    for (int y = 0; y < map.height(); ++y) {
        std::uint8_t* row = out.pixels.data() + std::size_t(map.height() - 1 - y) * std::size_t(out.width) * std::size_t(out.channels);
        for (int x = 0; x < map.width(); ++x) {
            const float v = map(x, y);
            if (!std::isfinite(v)) continue;
            const double t = std::clamp((double(v) - lo) / span, 0.0, 1.0);
            if (out.channels == 1) {
                row[x] = std::uint8_t(std::lround(255.0 * t));
            } else {
                const double pos = t * double(kViridis.size() - 1);
                const std::size_t i0 = std::min(std::size_t(pos), kViridis.size() - 2);
                const double f = pos - double(i0);
                for (int c = 0; c < 3; ++c)
                    row[3 * x + c] = std::uint8_t(std::lround(kViridis[i0][c] * (1 - f) + kViridis[i0 + 1][c] * f));
            }
        }
    }
    return out;
}

}  // namespace drp
