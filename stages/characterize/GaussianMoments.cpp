#include "stages/characterize/GaussianMoments.h"

#include <algorithm>
#include <cmath>

#include "core/Error.h"

namespace drp {

void GaussianMomentsControl::validate() const {
    if (!(initialSigma > 0.0) || !std::isfinite(initialSigma)) throw ConfigError("GaussianMomentsControl.initialSigma must be > 0");
    if (maxIterations < 1) throw ConfigError("GaussianMomentsControl.maxIterations must be >= 1");
    if (!(tolerance > 0.0)) throw ConfigError("GaussianMomentsControl.tolerance must be > 0");
    if (!(maxMoment > 0.0)) throw ConfigError("GaussianMomentsControl.maxMoment must be > 0");
}

template <typename T>
GaussianMoments measureGaussianMoments(const Image<T>& image, Point2D guess, const GaussianMomentsControl& ctrl,
                                       double background, const Mask* mask, MaskPixel badMask) {
    GaussianMoments r;
    r.x = guess.x;
    r.y = guess.y;
    double mxx = ctrl.initialSigma * ctrl.initialSigma, myy = mxx, mxy = 0.0;
    const Box2I bbox = image.bbox();
    if (mask && mask->bbox() != bbox) throw LogicError("measureGaussianMoments: mask and image bboxes differ");
    const int x0 = bbox.minX(), y0 = bbox.minY();
    for (int it = 1; it <= ctrl.maxIterations; ++it) {
        r.iterations = it;
        const double det = mxx * myy - mxy * mxy;
        if (!(det > 0.0) || !std::isfinite(det)) return r;
        const double ixx = myy / det, iyy = mxx / det, ixy = -mxy / det;  // M^-1
        const double lmax = 0.5 * (mxx + myy) + std::sqrt(0.25 * (mxx - myy) * (mxx - myy) + mxy * mxy);
        const double rad = 7.5 * std::sqrt(lmax);  // beyond the q > 50 cut: the sums do not jump with the box
        const int xa = std::max(bbox.minX(), int(std::floor(r.x - rad))), xb = std::min(bbox.maxX(), int(std::ceil(r.x + rad)));
        const int ya = std::max(bbox.minY(), int(std::floor(r.y - rad))), yb = std::min(bbox.maxY(), int(std::ceil(r.y + rad)));
        if (xa > xb || ya > yb) return r;
        double s0 = 0, sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
        for (int y = ya; y <= yb; ++y) {
            const T* row = image.row(y - y0);
            const MaskPixel* mrow = mask ? mask->row(y - y0) : nullptr;
            const double dy = y - r.y;
            for (int x = xa; x <= xb; ++x) {
                if (mrow && (mrow[x - x0] & badMask)) continue;
                const double v = double(row[x - x0]) - background;
                if (!std::isfinite(v)) continue;
                const double dx = x - r.x;
                const double q = ixx * dx * dx + 2.0 * ixy * dx * dy + iyy * dy * dy;
                if (q > 50.0) continue;
                const double wv = std::exp(-0.5 * q) * v;
                s0 += wv;
                sx += wv * dx;
                sy += wv * dy;
                sxx += wv * dx * dx;
                syy += wv * dy * dy;
                sxy += wv * dx * dy;
            }
        }
        if (!(s0 > 0.0)) return r;
        const double mx = sx / s0, my = sy / s0;
        const double qxx = sxx / s0, qyy = syy / s0, qxy = sxy / s0;
        // Gaussian fixed point: C = (Q^-1 - M^-1)^-1 (exact for a Gaussian); fall back to 2Q.
        double nxx = 2.0 * qxx, nyy = 2.0 * qyy, nxy = 2.0 * qxy;
        const double qdet = qxx * qyy - qxy * qxy;
        if (qdet > 0.0) {
            const double axx = qyy / qdet - ixx, ayy = qxx / qdet - iyy, axy = -qxy / qdet - ixy;
            const double adet = axx * ayy - axy * axy;
            if (adet > 0.0 && axx > 0.0) {
                nxx = ayy / adet;
                nyy = axx / adet;
                nxy = -axy / adet;
            }
        }
        if (!(nxx > 0.0 && nyy > 0.0 && nxx * nyy - nxy * nxy > 0.0) || nxx > ctrl.maxMoment || nyy > ctrl.maxMoment) {
            return r;
        }
        // Weighted-centroid step: exact (factor 2) for a Gaussian when M = C; limited to one pixel per step.
        double stepX = 2.0 * mx, stepY = 2.0 * my;
        const double stepLen = std::hypot(stepX, stepY);
        if (stepLen > 1.0) {
            stepX /= stepLen;
            stepY /= stepLen;
        }
        r.x += stepX;
        r.y += stepY;
        const double change = std::max({std::fabs(nxx - mxx), std::fabs(nyy - myy), std::fabs(nxy - mxy)}) / (nxx + nyy);
        mxx = nxx;
        myy = nyy;
        mxy = nxy;
        r.ixx = mxx;
        r.iyy = myy;
        r.ixy = mxy;
        r.amplitude = 2.0 * s0;
        if (change < ctrl.tolerance && stepLen < ctrl.tolerance) {
            r.converged = true;
            return r;
        }
    }
    return r;
}

template GaussianMoments measureGaussianMoments(const Image<float>&, Point2D, const GaussianMomentsControl&, double,
                                                const Mask*, MaskPixel);
template GaussianMoments measureGaussianMoments(const Image<double>&, Point2D, const GaussianMomentsControl&, double,
                                                const Mask*, MaskPixel);

}  // namespace drp
