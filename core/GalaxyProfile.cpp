#include "core/GalaxyProfile.h"
#include "core/Quadrature.h"

#include <cmath>
#include <limits>
#include <algorithm>
#include <map>
#include <mutex>
#include <numbers>
#include <string>
#include <utility>

#include <Eigen/Dense>

#include <fftw3.h>

#include <memory>
#include <vector>

#include "core/Convolution.h"
#include "core/Error.h"

namespace drp {

namespace {

/// P(a, x) by its power series (x < a + 1).
double gammaSeries(double a, double x) {
    double term = 1.0 / a, sum = term, ap = a;
    for (int i = 0; i < 100000; ++i) {
        ap += 1.0;
        term *= x / ap;
        sum += term;
        if (std::fabs(term) < std::fabs(sum) * 1e-16) break;
    }
    return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

/// Q(a, x) = 1 - P(a, x) by its continued fraction (modified Lentz; x >= a + 1).
double gammaContinuedFraction(double a, double x) {
    constexpr double tiny = 1e-300;
    double b = x + 1.0 - a, c = 1.0 / tiny, d = 1.0 / b, h = d;
    for (int i = 1; i < 100000; ++i) {
        const double an = -i * (i - a);
        b += 2.0;
        d = an * d + b;
        if (std::fabs(d) < tiny) d = tiny;
        c = b + an / c;
        if (std::fabs(c) < tiny) c = tiny;
        d = 1.0 / d;
        const double del = d * c;
        h *= del;
        if (std::fabs(del - 1.0) < 1e-16) break;
    }
    return std::exp(-x + a * std::log(x) - std::lgamma(a)) * h;
}

/// Memoised x1 = b_n (r_e / r_s)^(1/n) of a truncated profile, keyed by (n, truncation).
std::mutex memoMutex;
std::map<std::pair<double, double>, double>& scaleMemo() {
    static std::map<std::pair<double, double>, double> memo;
    return memo;
}
std::map<double, double>& bnMemo() {
    static std::map<double, double> memo;
    return memo;
}

double computeBn(double n) {
    const double a = 2.0 * n;
    // Ciotti & Bertin (1999) asymptotic expansion as the starting point.
    double b = 2.0 * n - 1.0 / 3.0 + 4.0 / (405.0 * n) + 46.0 / (25515.0 * n * n);
    if (!(b > 0.0)) b = 0.5 * a;
    for (int it = 0; it < 100; ++it) {
        const double f = regularizedGammaP(a, b) - 0.5;
        const double df = std::exp((a - 1.0) * std::log(b) - b - std::lgamma(a));
        double step = f / df;
        if (step > 0.5 * b) step = 0.5 * b;  // stay positive
        b -= step;
        if (std::fabs(step) < 1e-15 * b) break;
    }
    return b;
}

/// Solve P(2n, x1) = P(2n, x1 T^(1/n)) / 2 for x1 in (0, b_n) by bisection on the log.
double solveTruncatedX1(double n, double truncation) {
    const double a = 2.0 * n, stretch = std::pow(truncation, 1.0 / n);
    double lo = 1e-12, hi = sersicBn(n);
    for (int it = 0; it < 200 && hi - lo > 1e-15 * hi; ++it) {
        const double mid = 0.5 * (lo + hi);
        const double f = regularizedGammaP(a, mid) - 0.5 * regularizedGammaP(a, mid * stretch);
        (f > 0.0 ? hi : lo) = mid;
    }
    return 0.5 * (lo + hi);
}

}  // namespace

/// F(kappa) of a unit-half-light-radius profile on a uniform kappa grid.
struct detail::TransformTable {
    double dk = 0.0;
    std::vector<double> values;  ///< F(j dk), j = 0 .. size - 1
    double operator()(double kappa) const {
        const double t = std::fabs(kappa) / dk;
        const std::size_t j = std::size_t(t);
        if (j + 2 >= values.size()) return 0.0;
        // 4-point Lagrange interpolation on nodes j-1 .. j+2 (F is even: F(-dk) = F(dk) at j = 0).
        const double u = t - double(j);
        const double fm = values[j == 0 ? 1 : j - 1], f0 = values[j], f1 = values[j + 1], f2 = values[j + 2];
        const double wm = -u * (u - 1.0) * (u - 2.0) / 6.0, w0 = (u + 1.0) * (u - 1.0) * (u - 2.0) / 2.0;
        const double w1 = -(u + 1.0) * u * (u - 2.0) / 2.0, w2 = (u + 1.0) * u * (u - 1.0) / 6.0;
        return wm * fm + w0 * f0 + w1 * f1 + w2 * f2;
    }
};

namespace {

using detail::TransformTable;

/// Build the table of a profile with unit half-light radius (see SersicProfile::fourierTransform).
std::shared_ptr<const TransformTable> buildTransformTable(const SersicProfile& unit) {
    const double n = unit.n, b = unit.bn(), rs = unit.scaleRadius(), i0 = unit.centralSurfaceBrightness();
    double rMax = unit.truncationRadius();
    if (!std::isfinite(rMax)) {  // untruncated: out to where 1 - 1e-9 of the flux is enclosed
        double lo = 1.0, hi = 2.0;
        while (unit.enclosedFlux(hi) < 1.0 - 1e-9 && hi < 1e6) hi *= 2.0;
        for (int it = 0; it < 60; ++it) {
            const double mid = 0.5 * (lo + hi);
            (unit.enclosedFlux(mid) < 1.0 - 1e-9 ? lo : hi) = mid;
        }
        rMax = hi;
    }
    // Sampling p at dx aliases the transform of the n = 4 cusp (~k^-2.25, a large coefficient since I0 is
    // ~100 I(r_e)) into F at ~1e-4 for dx = 1/256; dx = 1/2048 brings that below 1e-6.
    const double dx = std::min(1.0 / 2048.0, rMax / 16384.0);
    const int nHalf = int(std::ceil(rMax / dx));
    const int nFft = 32 * nHalf;  // period 32 rMax: zero-padded 16x beyond the support [-rMax, rMax]
    // Abel projection p(x) = 2 int_0^sqrt(R^2 - x^2) I(sqrt(x^2 + y^2)) dy with y = Y s^4 (nodes cluster at
    // y = 0, where the n = 4 cusp and the n = 1 kink sit for small x), 4 x 24-point Gauss-Legendre in s.
    const GaussLegendreRule gl24 = gaussLegendreRule(24);
    const std::vector<double>& glx = gl24.nodes;
    const std::vector<double>& glw = gl24.weights;
    auto profile = [&](double r) {
        const double t = r / rs;
        return i0 * std::exp(-b * (n == 1.0 ? t : n == 4.0 ? std::sqrt(std::sqrt(t)) : std::pow(t, 1.0 / n)));
    };
    double* real = fftw_alloc_real(std::size_t(nFft));
    fftw_complex* spec = fftw_alloc_complex(std::size_t(nFft / 2 + 1));
    if (!real || !spec) throw NumericalError("SersicProfile::fourierTransform: fftw_alloc failed");
    std::fill_n(real, nFft, 0.0);
    for (int i = 0; i <= nHalf; ++i) {
        const double x = i * dx;
        if (x >= rMax) continue;
        const double ymax = std::sqrt(rMax * rMax - x * x);
        double p = 0.0;
        constexpr int pieces = 4;
        for (int piece = 0; piece < pieces; ++piece) {
            const double s0 = double(piece) / pieces, s1 = double(piece + 1) / pieces;
            for (std::size_t q = 0; q < glx.size(); ++q) {
                const double s = 0.5 * (s0 + s1) + 0.5 * (s1 - s0) * glx[q];
                const double s3 = s * s * s, y = ymax * s3 * s;
                p += 0.5 * (s1 - s0) * glw[q] * profile(std::sqrt(x * x + y * y)) * 4.0 * ymax * s3;
            }
        }
        real[i] = 2.0 * p * dx;
        if (i > 0) real[nFft - i] = real[i];
    }
    fftw_plan plan;
    {
        std::lock_guard lock(fftwPlannerMutex());
        plan = fftw_plan_dft_r2c_1d(nFft, real, spec, FFTW_ESTIMATE);
    }
    fftw_execute(plan);
    auto table = std::make_shared<TransformTable>();
    table->dk = 2.0 * std::numbers::pi / (nFft * dx);
    const int kMax = std::min(nFft / 2, int(800.0 / table->dk) + 3);
    table->values.resize(std::size_t(kMax));
    const double norm = spec[0][0];  // the numerical flux (1 to ~1e-9): F(0) = 1 exactly
    for (int j = 0; j < kMax; ++j) table->values[std::size_t(j)] = spec[j][0] / norm;
    {
        std::lock_guard lock(fftwPlannerMutex());
        fftw_destroy_plan(plan);
    }
    fftw_free(real);
    fftw_free(spec);
    return table;
}

std::map<std::pair<double, double>, std::shared_ptr<const TransformTable>>& transformMemo() {
    static std::map<std::pair<double, double>, std::shared_ptr<const TransformTable>> memo;
    return memo;
}
std::mutex transformMutex;  ///< held while building a table (one build per key)


std::shared_ptr<const TransformTable> transformTable(const SersicProfile& p) {
    std::lock_guard lock(transformMutex);
    auto& memo = transformMemo();
    auto it = memo.find({p.n, p.truncation});
    if (it == memo.end()) {
        p.validate();
        it = memo.emplace(std::make_pair(p.n, p.truncation), buildTransformTable(SersicProfile{p.n, 1.0, p.truncation})).first;
    }
    return it->second;
}

}  // namespace

double SersicProfile::fourierTransform(double k) const { return (*transformTable(*this))(k * halfLightRadius); }

SersicTransform::SersicTransform(const SersicProfile& profile)
    : table_(transformTable(profile)), radius_(profile.halfLightRadius) {}

double SersicTransform::operator()(double k) const { return (*table_)(k * radius_); }

double regularizedGammaP(double a, double x) {
    if (!(a > 0.0) || !(x >= 0.0) || !std::isfinite(a)) {
        throw InvalidInputError("regularizedGammaP: needs a > 0 and x >= 0");
    }
    if (x == 0.0) return 0.0;
    if (std::isinf(x)) return 1.0;
    if (x < a + 1.0) return gammaSeries(a, x);
    return 1.0 - gammaContinuedFraction(a, x);
}

double sersicBn(double n) {
    if (!(n >= 0.2 && n <= 20.0)) throw InvalidInputError("sersicBn: n must be in [0.2, 20]");
    std::lock_guard lock(memoMutex);
    auto& memo = bnMemo();
    auto it = memo.find(n);
    if (it != memo.end()) return it->second;
    const double b = computeBn(n);
    memo.emplace(n, b);
    return b;
}

Eigen::Matrix2d shapeMatrix(double e1, double e2) {
    const double esq = e1 * e1 + e2 * e2;
    if (!(esq < 1.0)) throw InvalidInputError("shapeMatrix: ellipticity e1^2 + e2^2 must be < 1");
    const double f = 1.0 / std::sqrt(1.0 - esq);
    Eigen::Matrix2d s;
    s << f * (1.0 + e1), f * e2, f * e2, f * (1.0 - e1);
    return s;
}

// ---------------------------------------------------------------- SersicProfile

void SersicProfile::validate() const {
    if (!(n >= 0.2 && n <= 20.0)) throw InvalidInputError("SersicProfile.n must be in [0.2, 20]");
    if (!(halfLightRadius > 0.0) || !std::isfinite(halfLightRadius)) {
        throw InvalidInputError("SersicProfile.halfLightRadius must be positive and finite");
    }
    if (!(truncation == 0.0 || (truncation > 1.5 && std::isfinite(truncation)))) {
        throw InvalidInputError("SersicProfile.truncation must be 0 (none) or > 1.5 half-light radii");
    }
}

double SersicProfile::scaleRadius() const {
    if (truncation == 0.0) return halfLightRadius;
    double x1;
    {
        std::lock_guard lock(memoMutex);
        auto it = scaleMemo().find({n, truncation});
        x1 = it == scaleMemo().end() ? -1.0 : it->second;
    }
    if (x1 < 0.0) {
        x1 = solveTruncatedX1(n, truncation);
        std::lock_guard lock(memoMutex);
        scaleMemo().emplace(std::make_pair(n, truncation), x1);
    }
    // x1 = b (r_e / r_s)^(1/n)  =>  r_s = r_e (b / x1)^n
    return halfLightRadius * std::pow(bn() / x1, n);
}

double SersicProfile::truncationRadius() const {
    return truncation == 0.0 ? std::numeric_limits<double>::infinity() : truncation * halfLightRadius;
}

double SersicProfile::untruncatedFluxFractionInside() const {
    if (truncation == 0.0) return 1.0;
    return regularizedGammaP(2.0 * n, bn() * std::pow(truncationRadius() / scaleRadius(), 1.0 / n));
}

double SersicProfile::centralSurfaceBrightness() const {
    // Untruncated flux: 2 pi n r_s^2 Gamma(2n) / b^(2n).
    const double rs = scaleRadius(), b = bn();
    const double logFlux = std::log(2.0 * std::numbers::pi * n * rs * rs) + std::lgamma(2.0 * n) - 2.0 * n * std::log(b);
    return std::exp(-logFlux) / untruncatedFluxFractionInside();
}

double SersicProfile::surfaceBrightness(double r) const {
    if (r > truncationRadius()) return 0.0;
    return centralSurfaceBrightness() * std::exp(-bn() * std::pow(std::fabs(r) / scaleRadius(), 1.0 / n));
}

double SersicProfile::enclosedFlux(double r) const {
    if (!(r > 0.0)) return 0.0;
    if (r >= truncationRadius()) return 1.0;
    const double x = bn() * std::pow(r / scaleRadius(), 1.0 / n);
    return regularizedGammaP(2.0 * n, x) / untruncatedFluxFractionInside();
}

double SersicProfile::meanSquareRadius() const {
    // int_0^R r^3 e^{-b (r/rs)^{1/n}} dr / int_0^R r e^{..} dr = rs^2 b^{-2n} gamma(4n, xR) / gamma(2n, xR)
    const double b = bn(), rs = scaleRadius();
    const double xR = truncation == 0.0 ? std::numeric_limits<double>::infinity()
                                        : b * std::pow(truncationRadius() / rs, 1.0 / n);
    const double logRatio = std::lgamma(4.0 * n) - std::lgamma(2.0 * n) - 2.0 * n * std::log(b);
    return rs * rs * std::exp(logRatio) * regularizedGammaP(4.0 * n, xR) / regularizedGammaP(2.0 * n, xR);
}

// ---------------------------------------------------------------- GalaxyShape

void GalaxyShape::validate() const {
    if (!(bulgeFraction >= 0.0 && bulgeFraction <= 1.0)) {
        throw InvalidInputError("GalaxyShape.bulgeFraction must be in [0, 1]");
    }
    if (bulgeFraction > 0.0 && !(bulgeHalfLightRadiusArcsec > 0.0 && std::isfinite(bulgeHalfLightRadiusArcsec))) {
        throw InvalidInputError("GalaxyShape.bulgeHalfLightRadiusArcsec must be positive");
    }
    if (bulgeFraction < 1.0 && !(diskHalfLightRadiusArcsec > 0.0 && std::isfinite(diskHalfLightRadiusArcsec))) {
        throw InvalidInputError("GalaxyShape.diskHalfLightRadiusArcsec must be positive");
    }
    if (!(e1 * e1 + e2 * e2 < 1.0)) throw InvalidInputError("GalaxyShape: e1^2 + e2^2 must be < 1");
}

SersicProfile bulgeProfile(const GalaxyShape& shape) {
    return SersicProfile{4.0, shape.bulgeHalfLightRadiusArcsec, kBulgeTruncation};
}

SersicProfile diskProfile(const GalaxyShape& shape) {
    return SersicProfile{1.0, shape.diskHalfLightRadiusArcsec, kDiskTruncation};
}

double galaxySurfaceBrightness(const GalaxyShape& shape, double eastArcsec, double northArcsec) {
    shape.validate();
    const Eigen::Matrix2d sInv = shapeMatrix(shape.e1, shape.e2).inverse();
    const Eigen::Vector2d d(eastArcsec, northArcsec);
    const double rho = std::sqrt(std::max(0.0, d.dot(sInv * d)));
    double sb = 0.0;
    if (shape.bulgeFraction > 0.0) sb += shape.bulgeFraction * bulgeProfile(shape).surfaceBrightness(rho);
    if (shape.bulgeFraction < 1.0) sb += (1.0 - shape.bulgeFraction) * diskProfile(shape).surfaceBrightness(rho);
    return sb;
}

double galaxyEnclosedFlux(const GalaxyShape& shape, double radiusArcsec) {
    shape.validate();
    double f = 0.0;
    if (shape.bulgeFraction > 0.0) f += shape.bulgeFraction * bulgeProfile(shape).enclosedFlux(radiusArcsec);
    if (shape.bulgeFraction < 1.0) f += (1.0 - shape.bulgeFraction) * diskProfile(shape).enclosedFlux(radiusArcsec);
    return f;
}

Eigen::Matrix2d galaxySecondMoments(const GalaxyShape& shape) {
    shape.validate();
    double r2 = 0.0;
    if (shape.bulgeFraction > 0.0) r2 += shape.bulgeFraction * bulgeProfile(shape).meanSquareRadius();
    if (shape.bulgeFraction < 1.0) r2 += (1.0 - shape.bulgeFraction) * diskProfile(shape).meanSquareRadius();
    return 0.5 * r2 * shapeMatrix(shape.e1, shape.e2);
}

double galaxyTruncationRadiusArcsec(const GalaxyShape& shape) {
    double r = 0.0;
    if (shape.bulgeFraction > 0.0) r = std::max(r, bulgeProfile(shape).truncationRadius());
    if (shape.bulgeFraction < 1.0) r = std::max(r, diskProfile(shape).truncationRadius());
    return r;
}

}  // namespace drp
