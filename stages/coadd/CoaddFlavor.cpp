#include "stages/coadd/CoaddFlavor.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"
#include "core/Statistics.h"

namespace drp {

void CoaddFlavorConfig::validate() const {
    if (!(seeingQuantile > 0 && seeingQuantile <= 1)) throw ConfigError("CoaddFlavorConfig: seeingQuantile must be in (0, 1]");
    if (!(mjdEnd > mjdBegin)) throw ConfigError("CoaddFlavorConfig: mjdEnd must be > mjdBegin");
}

std::vector<std::size_t> selectCoaddInputs(const std::vector<WarpMetadata>& inputs, const CoaddFlavorConfig& config) {
    config.validate();
    std::vector<std::size_t> out;
    switch (config.kind) {
        case CoaddFlavorConfig::Kind::Deep:
            for (std::size_t i = 0; i < inputs.size(); ++i) out.push_back(i);
            break;
        case CoaddFlavorConfig::Kind::ShortPeriod:
            for (std::size_t i = 0; i < inputs.size(); ++i)
                if (inputs[i].mjd >= config.mjdBegin && inputs[i].mjd < config.mjdEnd) out.push_back(i);
            break;
        case CoaddFlavorConfig::Kind::BestSeeing: {
            if (inputs.empty()) break;
            std::vector<double> s;
            for (const auto& m : inputs) s.push_back(m.psfSigmaPx);
            const double q = quantile(s, config.seeingQuantile);
            for (std::size_t i = 0; i < inputs.size(); ++i)
                if (inputs[i].psfSigmaPx <= q) out.push_back(i);
            break;
        }
    }
    return out;
}

double bestSeeingThreshold(const std::vector<VisitSeeing>& visits, double q) {
    std::vector<double> s;
    for (const auto& v : visits) s.push_back(v.seeing);
    return quantile(s, q);  // of the finite seeings
}

std::vector<std::int64_t> selectBestSeeingVisits(const std::vector<VisitSeeing>& visits, double quantile) {
    if (!(quantile > 0 && quantile <= 1)) throw ConfigError("selectBestSeeingVisits: quantile must be in (0, 1]");
    const double q = bestSeeingThreshold(visits, quantile);
    std::vector<std::int64_t> out;
    for (const auto& v : visits)
        if (std::isfinite(v.seeing) && v.seeing <= q) out.push_back(v.visit);
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
}

MaskedImageF makeDetectionCoadd(const std::vector<MaskedImageF>& bands, DetectionCoaddKind kind) {
    if (bands.empty()) throw LogicError("makeDetectionCoadd: no band coadds");
    const Box2I box = bands.front().bbox();
    for (const auto& b : bands)
        if (b.bbox() != box) throw LogicError("makeDetectionCoadd: band coadds must share one bbox");
    MaskedImageF out(box);
    Mask& mask = out.mask();
    const MaskPixel noData = mask.planeBitMask("NO_DATA");
    // Band planes are mapped by name into the output's dictionary.
    std::vector<std::vector<std::pair<MaskPixel, MaskPixel>>> maps;
    std::vector<MaskPixel> bandNoData;
    for (const auto& b : bands) {
        std::vector<std::pair<MaskPixel, MaskPixel>> mp;
        for (const auto& [name, bit] : b.mask().planes())
            if (name != "NO_DATA") mp.emplace_back(MaskPixel(1u << bit), MaskPixel(1u << mask.addPlane(name)));
        maps.push_back(std::move(mp));
        bandNoData.push_back(b.mask().planeDict()->has("NO_DATA") ? b.mask().planeBitMask("NO_DATA") : 0);
    }
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (int y = 0; y < box.height(); ++y) {
        for (int x = 0; x < box.width(); ++x) {
            double sw = 0, swi = 0, chi2 = 0;
            int n = 0;
            MaskPixel bits = 0;
            for (std::size_t b = 0; b < bands.size(); ++b) {
                const float i = bands[b].image()(x, y), v = bands[b].variance()(x, y);
                const MaskPixel m = bands[b].mask()(x, y);
                if ((m & bandNoData[b]) || !std::isfinite(i) || !std::isfinite(v) || !(v > 0)) continue;
                ++n;
                sw += 1.0 / v;
                swi += i / v;
                chi2 += double(i) * i / v;
                for (const auto& [from, to] : maps[b])
                    if (m & from) bits |= to;
            }
            if (n == 0) {
                out.image()(x, y) = nan;
                out.variance()(x, y) = nan;
                mask(x, y) = noData;
                continue;
            }
            if (kind == DetectionCoaddKind::WeightedSum) {
                out.image()(x, y) = float(swi / sw);
                out.variance()(x, y) = float(1.0 / sw);
            } else {
                out.image()(x, y) = float(chi2 - n);
                out.variance()(x, y) = float(2 * n);
            }
            mask(x, y) = bits;
        }
    }
    return out;
}

}  // namespace drp
