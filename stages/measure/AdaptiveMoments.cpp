#include "stages/measure/AdaptiveMoments.h"

#include <algorithm>
#include <vector>

#include "core/Error.h"
#include "stages/measure/PixelRows.h"

namespace drp {

namespace {

struct WeightedSums {
    double s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    long n = 0;
    bool truncated = false;
};

template <typename T>
WeightedSums accumulate(const Image<T>& image, Point2D c, const SecondMoments& w, double windowSigmas, const Box2I& region,
                        const Mask* mask, MaskPixel badBits) {
    WeightedSums s;
    const SecondMoments inv = w.inverse();
    const double hx = windowSigmas * std::sqrt(w.xx), hy = windowSigmas * std::sqrt(w.yy);
    const double limit = windowSigmas * windowSigmas;
    const Box2I full = Box2I::fromCorners({int(std::floor(c.x - hx)), int(std::floor(c.y - hy))},
                                          {int(std::ceil(c.x + hx)), int(std::ceil(c.y + hy))});
    const Box2I box = full.intersection(region.empty() ? image.bbox() : image.bbox().intersection(region));
    if (!(box == full)) s.truncated = true;
    if (box.empty()) return s;
    const bool useMask = mask != nullptr && badBits != 0 && mask->bbox() == image.bbox();
    const Point2I o = image.xy0();
    // Per row (fixed dy) the ellipse q(dx) = A dx^2 + 2 B dx dy + C dy^2 <= limit spans an interval of dx;
    // along the row the weight follows the recurrence w(dx + 1) = w(dx) g(dx), g(dx + 1) = g(dx) exp(-A),
    // so each row costs two exp() calls. With dy fixed a row needs only sum w I, sum w I dx and sum w I dx^2
    // (the dy terms are those times dy, dy^2): five multiplications and three additions a pixel. An unusable
    // pixel (non-finite, masked) adds 0, without a branch.
    const double A = inv.xx, B = inv.xy, C = inv.yy;
    const double stepRatio = std::exp(-A);
    // The sums live in locals (registers) for the whole loop: kept in the struct, they went through memory
    // on every pixel.
    double s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    long n = 0;
    bool truncated = s.truncated;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y;
        // A dx^2 + 2 B dy dx + (C dy^2 - limit) <= 0
        const double disc = B * B * dy * dy - A * (C * dy * dy - limit);
        if (disc < 0) continue;
        const double sq = std::sqrt(disc);
        const double lo = (-B * dy - sq) / A + c.x, hi = (-B * dy + sq) / A + c.x;
        const int x0 = std::max(box.minX(), int(std::ceil(lo))), x1 = std::min(box.maxX(), int(std::floor(hi)));
        if (x1 < x0) continue;
        const T* row = image.row(y - o.y) - o.x;
        const MaskPixel* mrow = useMask ? mask->row(y - o.y) - o.x : nullptr;
        double dx = x0 - c.x;
        double wt = std::exp(-0.5 * (A * dx * dx + 2.0 * B * dx * dy + C * dy * dy));
        double g = std::exp(-0.5 * (A * (2.0 * dx + 1.0) + 2.0 * B * dy));
        double r0 = 0, r1 = 0, r2 = 0;
        long used = 0;
        for (int x = x0; x <= x1; ++x, dx += 1.0, wt *= g, g *= stepRatio) {
            const double v = row[x];
            const bool ok = std::isfinite(v) & !(mrow && (mrow[x] & badBits));
            const double wi = ok ? wt * v : 0.0;
            const double t = wi * dx;
            r0 += wi;
            r1 += t;
            r2 += t * dx;
            used += ok;
        }
        truncated |= used < long(x1 - x0 + 1);
        n += used;
        s0 += r0;
        sx += r1;
        sy += r0 * dy;
        sxx += r2;
        syy += r0 * dy * dy;
        sxy += r1 * dy;
    }
    s.s0 = s0, s.sx = sx, s.sy = sy, s.sxx = sxx, s.syy = syy, s.sxy = sxy;
    s.n = n;
    s.truncated = truncated;
    return s;
}

/// A Gaussian of flux F and covariance S gives sum w I = F sqrt(det W / det(S + W)) under a weight W centred on
/// it, F / 2 at W = S: the factor turning the amplitude 2 sum w I into F when W != S.
double flooredAmplitudeFactor(const SecondMoments& s, const SecondMoments& w) {
    const SecondMoments sum{s.xx + w.xx, s.yy + w.yy, s.xy + w.xy};
    return 0.5 * std::sqrt(sum.determinant() / w.determinant());
}

}  // namespace

SecondMoments floorEigenvalues(const SecondMoments& m, double floor, bool* raised) {
    if (raised) *raised = false;
    const double t = 0.5 * (m.xx + m.yy), h = 0.5 * (m.xx - m.yy);
    const double r = std::sqrt(h * h + m.xy * m.xy);
    if (!(t - r < floor)) return m;  // (NaN passes through)
    if (raised) *raised = true;
    const double l1 = std::max(t + r, floor), l2 = std::max(t - r, floor);
    if (!(r > 0.0)) return SecondMoments{l2, l2, 0.0};
    // Same eigenvectors: m = t I + r (cos 2a, sin 2a; sin 2a, -cos 2a).
    const double c2 = h / r, s2 = m.xy / r, tt = 0.5 * (l1 + l2), d = 0.5 * (l1 - l2);
    return SecondMoments{tt + d * c2, tt - d * c2, d * s2};
}

void AdaptiveMomentsControl::validate() const {
    if (maxIter < 1) throw ConfigError("AdaptiveMomentsControl.maxIter must be >= 1");
    if (!(tolerance > 0.0) || !std::isfinite(tolerance)) throw ConfigError("AdaptiveMomentsControl.tolerance must be > 0");
    if (!(windowSigmas > 0.0) || !std::isfinite(windowSigmas)) throw ConfigError("AdaptiveMomentsControl.windowSigmas must be > 0");
    if (!(maxSigma > 0.0)) throw ConfigError("AdaptiveMomentsControl.maxSigma must be > 0");
    if (!(minWeightVariance >= 0.0 && minWeightVariance <= 100.0))
        throw ConfigError("AdaptiveMomentsControl.minWeightVariance must be in [0, 100] pixels^2");
}

template <typename T>
AdaptiveMomentsResult computeAdaptiveMoments(const Image<T>& image, Point2D centre, SecondMoments initial,
                                             const AdaptiveMomentsControl& control, const Mask* mask,
                                             MaskPixel badBits) {
    AdaptiveMomentsResult result;
    result.centre = centre;
    if (!std::isfinite(centre.x) || !std::isfinite(centre.y) || image.empty()) {
        result.noPixels = true;
        return result;
    }
    SecondMoments w = initial.isPositiveDefinite() ? initial : SecondMoments::circle(1.0);
    const double floorVar = control.minWeightVariance;
    bool wFloored = false;  // w was raised to the floor
    if (floorVar > 0.0) w = floorEigenvalues(w, floorVar, &wFloored);
    SecondMoments gauss;  // (M^-1 - W^-1)^-1 with the last weight (floored results)
    // The result of weight `weight`: itself, or where it is floored the Gaussian covariance S and the flux under it.
    auto finish = [&](const SecondMoments& weight, bool floored) {
        result.floored = floored;
        result.weight = weight;
        result.moments = floored && gauss.isPositiveDefinite() ? gauss : weight;
        if (floored) result.amplitude *= flooredAmplitudeFactor(result.moments, weight);
        return result;
    };
    const double maxVar = control.maxSigma * control.maxSigma;
    double lastStep[3] = {0.0, 0.0, 0.0};  // the previous step of W (dampOscillation)
    double lastStepNorm = std::numeric_limits<double>::quiet_NaN();  // extrapolateConvergence
    for (int iter = 1; iter <= std::max(1, control.maxIter); ++iter) {
        result.iterations = iter;
        const WeightedSums s = accumulate(image, result.centre, w, control.windowSigmas, control.region, mask, badBits);
        result.truncated = s.truncated;
        if (s.n == 0 || !(s.s0 > 0)) {
            result.noPixels = true;
            result.moments = SecondMoments{};
            result.amplitude = std::numeric_limits<double>::quiet_NaN();
            return result;
        }
        result.amplitude = 2.0 * s.s0;
        const SecondMoments m{s.sxx / s.s0, s.syy / s.s0, s.sxy / s.s0};
        if (!m.isPositiveDefinite()) {
            result.singular = true;
            result.moments = SecondMoments{};
            result.amplitude = std::numeric_limits<double>::quiet_NaN();
            return result;
        }
        // Newton-like update (exact for a Gaussian): W' = (M^-1 - W^-1)^-1; fall back to W' = 2 M.
        const SecondMoments mi = m.inverse(), wi = w.inverse();
        SecondMoments next = SecondMoments{mi.xx - wi.xx, mi.yy - wi.yy, mi.xy - wi.xy};
        if (next.isPositiveDefinite()) {
            next = next.inverse();
        }
        gauss = next.isPositiveDefinite() ? next : SecondMoments{};
        if (!next.isPositiveDefinite() || next.xx > 4 * maxVar || next.yy > 4 * maxVar) {
            next = SecondMoments{2 * m.xx, 2 * m.yy, 2 * m.xy};
        }
        const double half = 0.5 * (next.xx + next.yy) + std::sqrt(0.25 * (next.xx - next.yy) * (next.xx - next.yy) +
                                                                  next.xy * next.xy);
        if (!(half <= maxVar)) {
            result.maxSize = true;
            result.moments = SecondMoments{};
            result.amplitude = std::numeric_limits<double>::quiet_NaN();
            return result;
        }
        bool nextFloored = false;
        if (floorVar > 0.0) next = floorEigenvalues(next, floorVar, &nextFloored);
        if (control.dampOscillation) {
            const double step[3] = {next.xx - w.xx, next.yy - w.yy, next.xy - w.xy};
            if (step[0] * lastStep[0] + step[1] * lastStep[1] + step[2] * lastStep[2] < 0.0) {
                // A convex combination of two positive-definite matrices stays positive definite.
                next = SecondMoments{w.xx + 0.5 * step[0], w.yy + 0.5 * step[1], w.xy + 0.5 * step[2]};
            }
            lastStep[0] = next.xx - w.xx, lastStep[1] = next.yy - w.yy, lastStep[2] = next.xy - w.xy;
        }
        const double scale = control.tolerance * 0.5 * (w.xx + w.yy);
        bool done = std::fabs(next.xx - w.xx) < scale && std::fabs(next.yy - w.yy) < scale &&
                    std::fabs(next.xy - w.xy) < scale;
        if (control.extrapolateConvergence) {
            const double stepNorm =
                std::max({std::fabs(next.xx - w.xx), std::fabs(next.yy - w.yy), std::fabs(next.xy - w.xy)});
            const double rho = stepNorm / lastStepNorm;  // NaN on the first iteration: not done
            done = rho < 1.0 && stepNorm / (1.0 - rho) < scale;
            lastStepNorm = stepNorm;
        }
        if (control.recentre) {
            // Weighted-centroid step (exact, with the factor 2, for a Gaussian at W = its covariance),
            // at most one pixel.
            double stepX = 2.0 * s.sx / s.s0, stepY = 2.0 * s.sy / s.s0;
            if (wFloored && gauss.isPositiveDefinite()) {
                // The weight is not the light's: the Gaussian step (1 + S W^-1) m1 (header).
                const double m1x = s.sx / s.s0, m1y = s.sy / s.s0;
                const double a = 1.0 + gauss.xx * wi.xx + gauss.xy * wi.xy, b = gauss.xx * wi.xy + gauss.xy * wi.yy;
                const double c = gauss.xy * wi.xx + gauss.yy * wi.xy, d = 1.0 + gauss.xy * wi.xy + gauss.yy * wi.yy;
                stepX = a * m1x + b * m1y;
                stepY = c * m1x + d * m1y;
            }
            const double stepLen = std::hypot(stepX, stepY);
            if (stepLen > 1.0) {
                stepX /= stepLen;
                stepY /= stepLen;
            }
            result.centre = {result.centre.x + stepX, result.centre.y + stepY};
            done = done && stepLen < control.tolerance * std::sqrt(0.5 * (w.xx + w.yy));
        }
        // The result belongs to the weight it was measured with: a floored w reports S from this iteration.
        const bool measuredFloored = wFloored;
        const SecondMoments measuredWith = w;
        w = next;
        wFloored = nextFloored;
        if (done) {
            result.converged = true;
            if (measuredFloored) return finish(measuredWith, true);
            break;
        }
    }
    return finish(w, wFloored);
}

namespace {
template <typename T>
MomentsCovariance covarianceOfMoments(const Image<T>& image, const Image<float>& variance, Point2D c,
                                      const SecondMoments& w, const AdaptiveMomentsControl& control, const Mask* mask,
                                      MaskPixel badBits, bool fixedWeight);
}  // namespace

template <typename T>
MomentsCovariance computeAdaptiveMomentsCovariance(const Image<T>& image, const Image<float>& variance, Point2D c,
                                                   const SecondMoments& w, const AdaptiveMomentsControl& control,
                                                   const Mask* mask, MaskPixel badBits) {
    MomentsCovariance out;
    if (!w.isPositiveDefinite() || !std::isfinite(c.x) || !std::isfinite(c.y) || image.empty() ||
        !(variance.bbox() == image.bbox()))
        return out;
    // A floored result: the weight is the floored w, held fixed (header).
    // (floorEigenvalues returns w itself, bit for bit, when it is not floored.)
    bool floored = false;
    const SecondMoments wUsed = floorEigenvalues(w, control.minWeightVariance, &floored);
    return covarianceOfMoments(image, variance, c, wUsed, control, mask, badBits, floored);
}

namespace {

template <typename T>
MomentsCovariance covarianceOfMoments(const Image<T>& image, const Image<float>& variance, Point2D c,
                                      const SecondMoments& w, const AdaptiveMomentsControl& control, const Mask* mask,
                                      MaskPixel badBits, bool fixedWeight) {
    MomentsCovariance out;
    const SecondMoments inv = w.inverse();
    const double hx = control.windowSigmas * std::sqrt(w.xx), hy = control.windowSigmas * std::sqrt(w.yy);
    const double limit = control.windowSigmas * control.windowSigmas;
    const Box2I full = Box2I::fromCorners({int(std::floor(c.x - hx)), int(std::floor(c.y - hy))},
                                          {int(std::ceil(c.x + hx)), int(std::ceil(c.y + hy))});
    const Box2I box =
        full.intersection(control.region.empty() ? image.bbox() : image.bbox().intersection(control.region));
    if (box.empty()) return out;
    const bool useMask = mask != nullptr && badBits != 0 && mask->bbox() == image.bbox();
    const Point2I o = image.xy0();
    // Two passes over the window: the weighted moments M, then the propagated sums. Per row the window
    // q(dx) <= limit is an interval of dx (the roots of the quadratic, then the ends checked with q itself);
    // along it the weight follows the recurrence of accumulate() (two exp() calls per row).
    struct Pixel {
        double w, v, q[3];
    };
    thread_local std::vector<Pixel> pixels;
    pixels.clear();
    const double A = inv.xx, B = inv.xy, C = inv.yy;
    const double stepRatio = std::exp(-A);
    double s0 = 0, s[3] = {0, 0, 0};
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double dy = y - c.y;
        auto qOf = [&](int x) {
            const double dx = x - c.x;
            return inv.xx * dx * dx + 2.0 * inv.xy * dx * dy + inv.yy * dy * dy;
        };
        // (A row the ellipse does not reach gets the estimate of a tangent one: the checks then find
        // nothing, or the pixel that rounding let in.)
        const double disc = std::max(0.0, B * B * dy * dy - A * (C * dy * dy - limit));
        const double sq = std::sqrt(disc);
        const auto [x0, x1] = exactRowInterval(int(std::floor((-B * dy - sq) / A + c.x)),
                                               int(std::ceil((-B * dy + sq) / A + c.x)), box.minX(), box.maxX(),
                                               [&](int x) { return qOf(x) <= limit; });
        if (x1 < x0) continue;
        const T* row = image.row(y - o.y);
        const float* vrow = variance.row(y - o.y);
        const MaskPixel* mrow = useMask ? mask->row(y - o.y) : nullptr;
        double dx = x0 - c.x;
        double wt = std::exp(-0.5 * (A * dx * dx + 2.0 * B * dx * dy + C * dy * dy));
        double g = std::exp(-0.5 * (A * (2.0 * dx + 1.0) + 2.0 * B * dy));
        for (int x = x0; x <= x1; ++x, dx += 1.0, wt *= g, g *= stepRatio) {
            const double d = row[x - o.x], v = vrow[x - o.x];
            if (!usablePixel(row[x - o.x], vrow[x - o.x], mrow ? mrow[x - o.x] : 0, badBits)) continue;
            const Pixel p{wt, v, {dx * dx, dy * dy, dx * dy}};
            s0 += wt * d;
            for (int k = 0; k < 3; ++k) s[k] += wt * d * p.q[k];
            pixels.push_back(p);
        }
    }
    if (!(s0 > 0)) return out;
    const double m[3] = {s[0] / s0, s[1] / s0, s[2] / s0};
    double c00 = 0, c01 = 0, c02 = 0, c11 = 0, c12 = 0, c22 = 0;
    for (const Pixel& p : pixels) {
        const double r0 = p.q[0] - m[0], r1 = p.q[1] - m[1], r2 = p.q[2] - m[2];
        const double ww = p.w * p.w * p.v;
        c00 += ww * r0 * r0, c01 += ww * r0 * r1, c02 += ww * r0 * r2;
        c11 += ww * r1 * r1, c12 += ww * r1 * r2, c22 += ww * r2 * r2;
    }
    if (fixedWeight) {
        // S = (M^-1 - W^-1)^-1 with W fixed: dS = A dM A^T, A = S M^-1; J maps (dMxx, dMyy, dMxy) to dS.
        const SecondMoments mm{m[0], m[1], m[2]};
        const SecondMoments mi = mm.inverse(), wi = w.inverse();
        const SecondMoments sg = SecondMoments{mi.xx - wi.xx, mi.yy - wi.yy, mi.xy - wi.xy}.inverse();
        if (!sg.isPositiveDefinite()) return out;
        const double a00 = sg.xx * mi.xx + sg.xy * mi.xy, a01 = sg.xx * mi.xy + sg.xy * mi.yy;
        const double a10 = sg.xy * mi.xx + sg.yy * mi.xy, a11 = sg.xy * mi.xy + sg.yy * mi.yy;
        double jac[3][3];
        const double basis[3][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}};
        for (int k = 0; k < 3; ++k) {
            const double dxx = basis[k][0], dyy = basis[k][1], dxy = basis[k][2];
            // (A dM)
            const double b00 = a00 * dxx + a01 * dxy, b01 = a00 * dxy + a01 * dyy;
            const double b10 = a10 * dxx + a11 * dxy, b11 = a10 * dxy + a11 * dyy;
            // (A dM) A^T
            jac[0][k] = b00 * a00 + b01 * a01;
            jac[1][k] = b10 * a10 + b11 * a11;
            jac[2][k] = b00 * a10 + b01 * a11;
        }
        const double cm[3][3] = {{c00, c01, c02}, {c01, c11, c12}, {c02, c12, c22}};
        double cs[3][3] = {};
        for (int i = 0; i < 3; ++i)
            for (int j = 0; j < 3; ++j)
                for (int k = 0; k < 3; ++k)
                    for (int l = 0; l < 3; ++l) cs[i][j] += jac[i][k] * cm[k][l] * jac[j][l];
        const double f = 1.0 / (s0 * s0);
        out.xx_xx = f * cs[0][0];
        out.yy_yy = f * cs[1][1];
        out.xy_xy = f * cs[2][2];
        out.xx_yy = f * cs[0][1];
        out.xx_xy = f * cs[0][2];
        out.yy_xy = f * cs[1][2];
        return out;
    }
    const double f = 16.0 / (s0 * s0);
    out.xx_xx = f * c00;
    out.yy_yy = f * c11;
    out.xy_xy = f * c22;
    out.xx_yy = f * c01;
    out.xx_xy = f * c02;
    out.yy_xy = f * c12;
    return out;
}

}  // namespace

template MomentsCovariance computeAdaptiveMomentsCovariance<float>(const Image<float>&, const Image<float>&, Point2D,
                                                                   const SecondMoments&, const AdaptiveMomentsControl&,
                                                                   const Mask*, MaskPixel);

template AdaptiveMomentsResult computeAdaptiveMoments<float>(const Image<float>&, Point2D, SecondMoments,
                                                             const AdaptiveMomentsControl&, const Mask*, MaskPixel);
template AdaptiveMomentsResult computeAdaptiveMoments<double>(const Image<double>&, Point2D, SecondMoments,
                                                              const AdaptiveMomentsControl&, const Mask*, MaskPixel);

}  // namespace drp
