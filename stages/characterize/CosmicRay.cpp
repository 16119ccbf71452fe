#include "stages/characterize/CosmicRay.h"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "core/Error.h"
#include "core/Simd.h"
#include "core/SpanSet.h"

namespace drp {

void CosmicRayConfig::validate() const {
    if (!(minSigma > 0.0) || !std::isfinite(minSigma)) throw ConfigError("CosmicRayConfig.minSigma must be > 0");
    if (!(minElectrons >= 0.0) || !std::isfinite(minElectrons)) throw ConfigError("CosmicRayConfig.minElectrons must be >= 0");
    if (!(contrastFactor > 0.0 && contrastFactor <= 1.0)) throw ConfigError("CosmicRayConfig.contrastFactor must be in (0, 1]");
    if (!(noiseFactor >= 0.0) || !std::isfinite(noiseFactor)) throw ConfigError("CosmicRayConfig.noiseFactor must be >= 0");
    if (!(growSigma > 0.0) || !std::isfinite(growSigma)) throw ConfigError("CosmicRayConfig.growSigma must be > 0");
    if (growIterations < 0 || growIterations > 100) throw ConfigError("CosmicRayConfig.growIterations must be in [0, 100]");
    if (maxRepairDistance < 1 || maxRepairDistance > 1000) throw ConfigError("CosmicRayConfig.maxRepairDistance must be in [1, 1000]");
    if (maxCosmicRays < 1) throw ConfigError("CosmicRayConfig.maxCosmicRays must be >= 1");
    for (const auto& p : badMaskPlanes)
        if (p.empty()) throw ConfigError("CosmicRayConfig.badMaskPlanes has an empty name");
}

std::vector<double> psfContrastRatios(const Psf& psf, const Box2I& bbox) {
    std::vector<double> r(4, 1.0);
    std::vector<Point2D> where{{0.5 * (bbox.minX() + bbox.maxX()), 0.5 * (bbox.minY() + bbox.maxY())}};
    if (!bbox.empty()) {
        for (int cx : {bbox.minX(), bbox.maxX()})
            for (int cy : {bbox.minY(), bbox.maxY()}) where.push_back({double(cx), double(cy)});
    }
    for (const Point2D& p : where) {
        const Image<double> k = psf.computeKernelImage(p);
        const int c = k.width() / 2, d = k.height() / 2;
        if (k.width() < 3 || k.height() < 3) continue;
        const double peak = k(c, d);
        if (!(peak > 0.0)) throw InvalidInputError("psfContrastRatios: the PSF kernel has no central peak");
        const double ratios[4] = {0.5 * (k(c - 1, d) + k(c + 1, d)) / peak, 0.5 * (k(c, d - 1) + k(c, d + 1)) / peak,
                                  0.5 * (k(c - 1, d - 1) + k(c + 1, d + 1)) / peak,
                                  0.5 * (k(c - 1, d + 1) + k(c + 1, d - 1)) / peak};
        for (int i = 0; i < 4; ++i) r[std::size_t(i)] = std::min(r[std::size_t(i)], std::max(ratios[i], 0.0));
    }
    return r;
}

namespace {

/// The first x0 + 4k (k >= 0) such that one of row[x0 + 4k .. x0 + 4k + 3] has double(row[i]) - b >
/// minE (the seed test's first condition), or the first x0 + 4k with fewer than four pixels left
/// before xEnd. Element-wise, no FMA: both clones give the same answer.
using V4d = double __attribute__((vector_size(32)));
using V4f = float __attribute__((vector_size(16)));
using V4l = long long __attribute__((vector_size(32)));
DRP_SIMD_CLONES int skipNotAbove(const float* row, int x0, int xEnd, float b, double minE) {
    int x = x0;
    for (; x + 4 <= xEnd; x += 4) {
        V4f f;
        std::memcpy(&f, row + x, sizeof f);
        const V4d v = __builtin_convertvector(f, V4d) - double(b);
        const V4l above = v > minE;
        if ((above[0] | above[1] | above[2] | above[3]) != 0) break;
    }
    return x;
}

}  // namespace

int findCosmicRays(MaskedImageF& image, const Psf& psf, double background, const CosmicRayConfig& config) {
    config.validate();
    if (!std::isfinite(background)) throw InvalidInputError("findCosmicRays: background must be finite");
    const int w = image.width(), h = image.height();
    if (w < 3 || h < 3) return 0;
    const std::vector<double> ratio = psfContrastRatios(psf, image.bbox());
    Mask& mask = image.mask();
    const MaskPixel bad = mask.planeBitMaskIfPresent(config.badMaskPlanes);
    const MaskPixel crBit = MaskPixel(1u << mask.addPlane("CR"));
    const MaskPixel intrpBit = MaskPixel(1u << mask.addPlane("INTRP"));
    const ImageF& img = image.image();
    const ImageF& var = image.variance();
    const float b = float(background);

    auto usable = [&](int x, int y) {
        return !(mask(x, y) & bad) && std::isfinite(img(x, y)) && std::isfinite(var(x, y)) && var(x, y) >= 0.0f;
    };
    // 1. Seeds.
    // The flagged pixels (index y w + x): a handful in an image, so a set rather than a plane (a 16 MB byte
    // plane was 4,000 page faults and a scan of every byte for nothing).
    std::unordered_set<std::int64_t> flagged;
    auto index = [w](int x, int y) { return std::int64_t(y) * w + x; };
    std::vector<Point2I> frontier;
    const int dxs[4] = {1, 0, 1, 1}, dys[4] = {0, 1, 1, -1};
    const double minS = config.minSigma, minE = config.minElectrons, cf = config.contrastFactor, nf = config.noiseFactor;
    for (int y = 1; y < h - 1; ++y) {
        const float* row = img.row(y);
        const float* vrow = var.row(y);
        int xNext = 1;
        for (int x = 1; x < w - 1; ++x) {
            // Skip the run of pixels that are not above minE (most of the sky) four at a time; then
            // test the next four one by one.
            if (x >= xNext) {
                x = skipNotAbove(row, x, w - 1, b, minE);
                xNext = x + 4;
                if (x >= w - 1) break;
            }
            const double v = double(row[x]) - b;
            if (!(v > minE)) continue;
            const double vv = vrow[x];
            if (!(vv >= 0.0) || v * v <= minS * minS * vv || v <= minS * std::sqrt(vv)) continue;
            if (!usable(x, y)) continue;
            const double sig = std::sqrt(vv);
            bool seed = false;
            for (int d = 0; d < 4 && !seed; ++d) {
                const int x1 = x - dxs[d], y1 = y - dys[d], x2 = x + dxs[d], y2 = y + dys[d];
                if (!usable(x1, y1) || !usable(x2, y2)) continue;
                const double m = 0.5 * (double(img(x1, y1)) + double(img(x2, y2))) - b;
                const double s = 0.5 * std::sqrt(double(var(x1, y1)) + double(var(x2, y2)));
                if (cf * ratio[std::size_t(d)] * (v - nf * sig) > m + nf * s) seed = true;
            }
            if (seed) {
                flagged.insert(index(x, y));
                frontier.push_back({x, y});
            }
        }
    }
    // 2. Growth into bright 8-neighbours.
    for (int it = 0; it < config.growIterations && !frontier.empty(); ++it) {
        std::vector<Point2I> next;
        for (const Point2I& p : frontier) {
            for (int dy = -1; dy <= 1; ++dy)
                for (int dx = -1; dx <= 1; ++dx) {
                    const int x = p.x + dx, y = p.y + dy;
                    if (x < 0 || y < 0 || x >= w || y >= h) continue;
                    if (flagged.count(index(x, y)) || !usable(x, y)) continue;
                    const double v = double(img(x, y)) - b;
                    if (v > config.growSigma * std::sqrt(double(var(x, y)))) {
                        flagged.insert(index(x, y));
                        next.push_back({x, y});
                    }
                }
        }
        frontier.swap(next);
    }
    // 3. Count hits. The flagged pixels in raster order, as runs.
    std::vector<std::int64_t> order(flagged.begin(), flagged.end());
    std::sort(order.begin(), order.end());
    std::vector<Span> spans;
    for (std::size_t i = 0; i < order.size();) {
        const int y = int(order[i] / w), x0 = int(order[i] % w);
        std::size_t j = i + 1;
        while (j < order.size() && order[j] == order[j - 1] + 1 && order[j] % w != 0) ++j;
        spans.push_back({y + image.xy0().y, x0 + image.xy0().x, x0 + int(j - i) - 1 + image.xy0().x});
        i = j;
    }
    if (spans.empty()) return 0;
    std::size_t nHits = 0;
    SpanSet::fromNormalizedSpans(std::move(spans)).componentLabels(Connectivity::EIGHT, &nHits);
    if (nHits > std::size_t(config.maxCosmicRays)) {
        throw NumericalError("findCosmicRays: " + std::to_string(nHits) + " hits exceed maxCosmicRays; wrong PSF or background?");
    }
    // 4. Repair: interpolate along rows and columns between the nearest usable non-CR pixels.
    auto good = [&](int x, int y) {
        return x >= 0 && y >= 0 && x < w && y < h && !flagged.count(index(x, y)) && usable(x, y);
    };
    struct Fix {
        int x, y;
        float value, variance;
    };
    std::vector<Fix> fixes;
    const int maxD = config.maxRepairDistance;
    for (const std::int64_t k : order) {
        const int x = int(k % w), y = int(k / w);
        double sum = 0.0, vsum = 0.0;
        int n = 0, nv = 0;
        for (int axis = 0; axis < 2; ++axis) {
            const int ax = axis == 0 ? 1 : 0, ay = axis == 0 ? 0 : 1;
            int lo = 0, hi = 0;
            for (int d = 1; d <= maxD; ++d)
                if (good(x - ax * d, y - ay * d)) {
                    lo = d;
                    break;
                }
            for (int d = 1; d <= maxD; ++d)
                if (good(x + ax * d, y + ay * d)) {
                    hi = d;
                    break;
                }
            if (lo && hi) {
                const double a = img(x - ax * lo, y - ay * lo), c = img(x + ax * hi, y + ay * hi);
                sum += (a * hi + c * lo) / (lo + hi);
                vsum += 0.5 * (double(var(x - ax * lo, y - ay * lo)) + double(var(x + ax * hi, y + ay * hi)));
                ++n;
                ++nv;
            } else if (lo || hi) {
                const int d = lo ? -lo : hi;
                sum += img(x + ax * d, y + ay * d);
                vsum += var(x + ax * d, y + ay * d);
                ++n;
                ++nv;
            }
        }
        const float value = n ? float(sum / n) : b;
        const float variance = nv ? float(vsum / nv) : var(x, y);
        fixes.push_back({x, y, value, variance});
    }
    for (const Fix& f : fixes) {
        img(f.x, f.y) = f.value;
        // Not written when it is already the repaired value (a uniform variance stays in shared pages,
        // core/Image.h SharedFill): the same bits either way.
        if (std::bit_cast<std::uint32_t>(var(f.x, f.y)) != std::bit_cast<std::uint32_t>(f.variance)) var(f.x, f.y) = f.variance;
        mask(f.x, f.y) |= crBit | intrpBit;
    }
    return int(nHits);
}

}  // namespace drp
