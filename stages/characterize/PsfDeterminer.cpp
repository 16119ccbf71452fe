#include "stages/characterize/PsfDeterminer.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numbers>
#include <limits>

#include "core/Error.h"
#include "core/PsfexPsf.h"
#include "stages/characterize/PsfStarFit.h"

namespace drp {

using psffit::median;
using psffit::robustSigma;

namespace {

double periodicSinc(double t, int n) {
    const double den = n * std::sin(std::numbers::pi * t / n);
    if (std::fabs(den) < 1e-300) return 1.0;
    return std::sin(std::numbers::pi * t) / den;
}

/// Least-squares polynomial (order <= 2) of values over (u, v); returns coefficients (PsfexPsf term order).
std::vector<double> fitSurface(const std::vector<Point2D>& uv, const std::vector<double>& values, int order) {
    const int nt = PsfexPsf::numTerms(order);
    Eigen::MatrixXd a(Eigen::Index(uv.size()), nt);
    Eigen::VectorXd b(Eigen::Index(uv.size()));
    for (std::size_t i = 0; i < uv.size(); ++i) {
        const auto t = PsfexPsf::polynomialTerms(order, uv[i].x, uv[i].y);
        for (int k = 0; k < nt; ++k) a(Eigen::Index(i), k) = t[std::size_t(k)];
        b(Eigen::Index(i)) = values[i];
    }
    Eigen::VectorXd c = a.colPivHouseholderQr().solve(b);
    return std::vector<double>(c.data(), c.data() + c.size());
}

double evalSurface(const std::vector<double>& c, int order, Point2D uv) {
    const auto t = PsfexPsf::polynomialTerms(order, uv.x, uv.y);
    double s = 0;
    for (std::size_t k = 0; k < t.size(); ++k) s += c[k] * t[k];
    return s;
}

}  // namespace

AdaptiveMomentsControl PsfDeterminerConfig::defaultMomentsControl() {
    AdaptiveMomentsControl c;
    c.tolerance = 2e-8;
    c.windowSigmas = std::sqrt(50.0);
    c.recentre = true;
    return c;
}

void PsfDeterminerConfig::validate() const {
    auto fail = [](const std::string& m) { throw ConfigError("PsfDeterminerConfig." + m); };
    if (stampSize != 0 && (stampSize < 7 || stampSize > 201 || stampSize % 2 == 0)) fail("stampSize must be 0 or odd in [7, 201]");
    if (!(stampRadiusSigma >= 3.0 && stampRadiusSigma <= 20.0)) fail("stampRadiusSigma must be in [3, 20]");
    if (padding < 2 || padding > 64) fail("padding must be in [2, 64]");
    if (oversampling < 0 || oversampling > PsfexPsf::kMaxOversampling) fail("oversampling must be in [0, 3]");
    if (!(oversampleBelowFwhm >= 0.0 && oversampleBelowFwhm <= 10.0)) fail("oversampleBelowFwhm must be in [0, 10]");
    if (spatialOrder < 0 || spatialOrder > PsfexPsf::kMaxSpatialOrder) fail("spatialOrder must be in [0, 3]");
    if (!(reserveFraction >= 0.0 && reserveFraction <= 0.9)) fail("reserveFraction must be in [0, 0.9]");
    if (!(minSnr >= 0.0) || !std::isfinite(minSnr)) fail("minSnr must be >= 0");
    if (!(sizeWindow > 0.0 && sizeWindow <= 2.0)) fail("sizeWindow must be in (0, 2]");
    if (!(compactLocusFraction > 0.0 && compactLocusFraction <= 1.0)) fail("compactLocusFraction must be in (0, 1]");
    if (!(sizeNoise > 0.0 && sizeNoise <= 10.0)) fail("sizeNoise must be in (0, 10]");
    if (sizeCheckMaxStars < 0) fail("sizeCheckMaxStars must be >= 0");
    if (!(sizeCheckSigma > 0.0) || !std::isfinite(sizeCheckSigma)) fail("sizeCheckSigma must be > 0");
    if (!(sizeClipSigma > 0.0) || !std::isfinite(sizeClipSigma)) fail("sizeClipSigma must be > 0");
    if (!(minSizeTolerance > 0.0 && minSizeTolerance <= maxSizeTolerance && maxSizeTolerance <= 1.0)) {
        fail("size tolerances must satisfy 0 < minSizeTolerance <= maxSizeTolerance <= 1");
    }
    if (!(maxEllipticityDeviation > 0.0)) fail("maxEllipticityDeviation must be > 0");
    if (maxStars < 1) fail("maxStars must be >= 1");
    if (minStars < 1) fail("minStars must be >= 1");
    if (minStarsPerTerm < 1) fail("minStarsPerTerm must be >= 1");
    if (!(orderSelectionSigma >= 0.0) || !std::isfinite(orderSelectionSigma)) fail("orderSelectionSigma must be >= 0");
    if (iterations < 1 || iterations > 20) fail("iterations must be in [1, 20]");
    if (!(outlierSigma > 0.0) || !std::isfinite(outlierSigma)) fail("outlierSigma must be > 0");
    if (!(modelAccuracy >= 0.0 && modelAccuracy <= 0.5)) fail("modelAccuracy must be in [0, 0.5]");
    if (!(pixelClipSigma >= 3.0) || !std::isfinite(pixelClipSigma)) fail("pixelClipSigma must be >= 3");
    if (!(maxClippedFraction > 0.0 && maxClippedFraction <= 1.0)) fail("maxClippedFraction must be in (0, 1]");
    for (const auto& p : badMaskPlanes)
        if (p.empty()) fail("badMaskPlanes has an empty name");
    moments.validate();
    if (!moments.recentre) fail("moments.recentre must be true (the determiner measures star centres)");
    if (!(minWeightSigma >= 0.0 && minWeightSigma <= 5.0)) fail("minWeightSigma must be in [0, 5] pixels");
}

Image<double> sincShift(const Image<double>& in, double dx, double dy) {
    const int w = in.width(), h = in.height();
    if (w % 2 == 0 || h % 2 == 0) throw LogicError("sincShift: odd dimensions required");
    std::vector<double> sx(std::size_t(w) * std::size_t(w)), sy(std::size_t(h) * std::size_t(h));
    for (int u = 0; u < w; ++u)
        for (int k = 0; k < w; ++k) sx[std::size_t(u) * std::size_t(w) + std::size_t(k)] = periodicSinc(u - k - dx, w);
    for (int v = 0; v < h; ++v)
        for (int k = 0; k < h; ++k) sy[std::size_t(v) * std::size_t(h) + std::size_t(k)] = periodicSinc(v - k - dy, h);
    Image<double> tmp(w, h, 0.0), out(w, h, 0.0);
    for (int y = 0; y < h; ++y) {
        const double* row = in.row(y);
        for (int u = 0; u < w; ++u) {
            const double* s = &sx[std::size_t(u) * std::size_t(w)];
            double acc = 0.0;
            for (int k = 0; k < w; ++k) acc += row[k] * s[k];
            tmp(u, y) = acc;
        }
    }
    for (int v = 0; v < h; ++v) {
        const double* s = &sy[std::size_t(v) * std::size_t(h)];
        double* o = out.row(v);
        for (int k = 0; k < h; ++k) {
            const double* t = tmp.row(k);
            const double c = s[k];
            for (int u = 0; u < w; ++u) o[u] += c * t[u];
        }
    }
    out.setXY0(in.xy0());
    return out;
}

namespace {

/// Steps 1 and 2 of the selection: the candidates passing the flag, flux, size and S/N cuts (`pool`), their extent,
/// and the stellar locus in ln T (`locus`, its members; `centre`, its ln T).
struct SizeLocus {
    std::vector<std::size_t> pool;
    Box2D extent;
    std::vector<std::size_t> locus;
    double centre = std::numeric_limits<double>::quiet_NaN();
    double compactSize = std::numeric_limits<double>::quiet_NaN();  ///< median T of the most compact window's members
};

SizeLocus findSizeLocus(const std::vector<PsfCandidate>& candidates, const PsfDeterminerConfig& config) {
    SizeLocus out;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        const PsfCandidate& c = candidates[i];
        const double t = c.ixx + c.iyy;
        if (!c.isCandidate() || !(c.flux > 0.0) || !std::isfinite(t) || !(t > 0.0) || !(c.ixx * c.iyy - c.ixy * c.ixy > 0.0)) continue;
        if (!std::isfinite(c.position.x) || !std::isfinite(c.position.y)) continue;
        if (c.fluxErr > 0.0 && c.flux / c.fluxErr < config.minSnr) continue;
        out.pool.push_back(i);
        out.extent = out.extent.include(c.position);
    }
    if (out.pool.empty()) return out;
    std::vector<double> sizes;
    for (std::size_t i : out.pool) sizes.push_back(std::log(candidates[i].ixx + candidates[i].iyy));
    std::sort(sizes.begin(), sizes.end());
    // Windows [s_a, s_a + sizeWindow] from each candidate; count[a] candidates in each.
    std::vector<std::size_t> count(sizes.size());
    std::size_t bestCount = 0;
    for (std::size_t a = 0, b = 0; a < sizes.size(); ++a) {
        while (b < sizes.size() && sizes[b] - sizes[a] <= config.sizeWindow) ++b;
        count[a] = b - a;
        bestCount = std::max(bestCount, count[a]);
    }
    // The most compact populated window: the first (smallest ln T) holding at least compactLocusFraction of the
    // densest one's count, and at least 2 candidates when the densest has 2 or more. Stars are the smallest objects
    // that pass the cuts (cosmic rays are flagged); with few stars among many galaxies, the galaxies can crowd a
    // window at larger sizes more densely than the stars.
    const std::size_t need = std::min(bestCount, std::max<std::size_t>(2, std::size_t(std::ceil(config.compactLocusFraction * double(bestCount)))));
    std::size_t first = 0;
    while (count[first] < need) ++first;
    // Its densest overlapping window (the local mode: in a dense field the global one), centred on its middle member.
    std::size_t best = first;
    for (std::size_t a = first; a < sizes.size() && sizes[a] - sizes[first] <= config.sizeWindow; ++a)
        if (count[a] > count[best]) best = a;
    out.centre = sizes[best + count[best] / 2];
    out.compactSize = std::exp(median(std::vector<double>(sizes.begin() + std::ptrdiff_t(first), sizes.begin() + std::ptrdiff_t(first + count[first]))));
    for (std::size_t i : out.pool)
        if (std::fabs(std::log(candidates[i].ixx + candidates[i].iyy) - out.centre) <= 0.5 * config.sizeWindow) out.locus.push_back(i);
    return out;
}

}  // namespace

double psfLocusSize(const std::vector<PsfCandidate>& candidates, const PsfDeterminerConfig& config) {
    config.validate();
    SizeLocus l = findSizeLocus(candidates, config);
    if (l.pool.size() < 2) {
        PsfDeterminerConfig fainter = config;
        fainter.minSnr = 0.5 * config.minSnr;
        SizeLocus f = findSizeLocus(candidates, fainter);
        if (f.pool.size() >= 2) l = std::move(f);
    }
    return l.compactSize;
}

std::vector<std::size_t> selectPsfStars(const std::vector<PsfCandidate>& candidates, const PsfDeterminerConfig& config) {
    config.validate();
    // 1, 2. Flags, flux, size, S/N; the most compact populated size locus.
    const SizeLocus sl = findSizeLocus(candidates, config);
    const std::vector<std::size_t>& pool = sl.pool;
    const Box2D extent = sl.extent;
    if (pool.empty()) return {};
    auto lnT = [&](std::size_t i) { return std::log(candidates[i].ixx + candidates[i].iyy); };
    const std::vector<std::size_t>& locus = sl.locus;
    // 3. Spatial fit of the size locus, clip, twice.
    const Box2I box = extent.empty() ? Box2I({0, 0}, 1, 1)
                                     : Box2I::fromCorners({int(std::floor(extent.minX())), int(std::floor(extent.minY()))},
                                                          {int(std::ceil(extent.maxX())), int(std::ceil(extent.maxY()))});
    const int order = std::min(config.spatialOrder, 2);
    std::vector<std::size_t> stars = locus;
    for (int round = 0; round < 2; ++round) {
        int ord = order;
        while (ord > 0 && int(stars.size()) < 3 * PsfexPsf::numTerms(ord)) --ord;
        if (stars.empty()) break;
        std::vector<Point2D> uv;
        std::vector<double> vals;
        for (std::size_t i : stars) {
            uv.push_back(PsfexPsf::normalisedPosition(box, candidates[i].position));
            vals.push_back(lnT(i));
        }
        const std::vector<double> coeff = fitSurface(uv, vals, ord);
        std::vector<double> res;
        for (std::size_t k = 0; k < stars.size(); ++k) res.push_back(vals[k] - evalSurface(coeff, ord, uv[k]));
        const double tol = std::clamp(config.sizeClipSigma * robustSigma(res, 0.0), config.minSizeTolerance, config.maxSizeTolerance);
        std::vector<std::size_t> next;
        for (std::size_t i : pool) {
            const double r = lnT(i) - evalSurface(coeff, ord, PsfexPsf::normalisedPosition(box, candidates[i].position));
            if (std::fabs(r) <= tol) next.push_back(i);
        }
        stars.swap(next);
    }
    // 4. Ellipticity.
    if (!stars.empty()) {
        std::vector<double> e1s, e2s;
        for (std::size_t i : stars) {
            const PsfCandidate& c = candidates[i];
            e1s.push_back((c.ixx - c.iyy) / (c.ixx + c.iyy));
            e2s.push_back(2.0 * c.ixy / (c.ixx + c.iyy));
        }
        const double m1 = median(e1s), m2 = median(e2s);
        std::vector<std::size_t> next;
        for (std::size_t k = 0; k < stars.size(); ++k)
            if (std::hypot(e1s[k] - m1, e2s[k] - m2) <= config.maxEllipticityDeviation) next.push_back(stars[k]);
        stars.swap(next);
    }
    // 5. Brightest first.
    std::stable_sort(stars.begin(), stars.end(), [&](std::size_t a, std::size_t b) { return candidates[a].flux > candidates[b].flux; });
    if (int(stars.size()) > config.maxStars) stars.resize(std::size_t(config.maxStars));
    return stars;
}

PsfDeterminationResult determinePsf(const MaskedImageF& image, const std::vector<PsfCandidate>& candidates,
                                    const PsfDeterminerConfig& config) {
    config.validate();
    psffit::FitSource source;
    source.bbox = image.bbox();
    source.candidates = &candidates;
    source.selected = selectPsfStars(candidates, config);
    source.images.assign(source.selected.size(), &image);
    psffit::FitOutput fit = psffit::fitPsfStars({source}, config, 0, "determinePsf");
    return std::move(fit.sources.front());
}

}  // namespace drp
