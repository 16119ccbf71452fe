// AdaptiveMoments: the HSM / Bernstein & Jarvis (2002) adaptive second moments of an image about a fixed
// centre, a pure kernel (no table, no plugin) used by the "shape" and "kronFlux" plugins.
//
// Definition. For a weight w(x) = exp(-x^T W^-1 x / 2) (x relative to the centre) the weighted moments are
//     M(W) = sum w I x x^T / sum w I.
// The adaptive moments are the W for which the weight matches the light, W = 2 M(W): for an elliptical
// Gaussian source of covariance S, M(W) = (S^-1 + W^-1)^-1, whose fixed point is exactly W = S, so the
// adaptive moments of a Gaussian are its covariance (pixels^2), whatever its size and ellipticity.
//
// Iteration. W <- (M(W)^-1 - W^-1)^-1 (exact in one step for a Gaussian; same fixed point as W <- 2 M(W)),
// falling back to W <- 2 M(W) when that is not positive definite; converged when every element of W
// changes by less than tolerance * trace(W) / 2. The sums run over pixels inside the ellipse
// x^T W^-1 x <= windowSigmas^2, clipped to the image (and to control.region); unusable pixels (non-finite, or with any of
// `badBits` in `mask` when a mask is given) are skipped and reported.
//
// Damping (control.dampOscillation, off by default): a step that reverses the previous one is halved;
// the fixed point is the same, and convergence is then judged on the step taken.
//
// Re-centring (control.recentre, off by default). The centre then moves too: each iteration it steps by
// twice the weighted first moment sum w I (x - c) / sum w I (exact for a Gaussian once W matches it),
// limited to one pixel per step, and convergence also needs the step to be below
// tolerance * sqrt(trace(W) / 2) pixels. The result is then the centre and covariance of the
// best-matching elliptical Gaussian (the PSF determiner's star and model moments).
//
// Weight floor (control.minWeightVariance = F, pixels^2, off by default). A star much sharper than a pixel
// (FWHM <~ 2 px) has no usable fixed point: the product w I of a weight matched to the light is then narrower
// than a pixel, its point-sampled moments depend on the sub-pixel phase, and at a pixel-centred phase they
// shrink faster than W, so W collapses along an axis (|e| -> 1, one eigenvalue -> 0; the re-centring then
// 2-cycles). With a floor, every update of W has its eigenvalues raised to at least F, so the weight is never
// narrower than about a pixel, and where it is held there the result is the covariance of the Gaussian that
// the weighted moments imply, S = (M^-1 - W^-1)^-1 (exact for a Gaussian whatever W: M = (S^-1 + W^-1)^-1),
// and the re-centring step is (1 + S W^-1) times the weighted first moment (2 at W = S). Where the light
// needs a weight wider than F the iteration, and so the result, is the plain one, bit for bit.
// Pixel-integrated Gaussians over sub-pixel phases at F = 1.21 (the shape plugin's and the PSF determiner's
// default): FWHM 1.4 px, T within -5%/+6% of the truth and |e| <= 0.05 (no fixed point without the floor at
// pixel-centred phases); FWHM 1.2 px, within 0.12 in both; FWHM 2 px, the phase scatter of e falls from 0.02 to
// 0.004 (test_AdaptiveMomentsFloor).
#pragma once

#include <cmath>
#include <limits>

#include "core/Box.h"
#include "core/Image.h"
#include "core/Mask.h"

namespace drp {

/// A symmetric 2x2 second-moment matrix (pixels^2).
struct SecondMoments {
    double xx = std::numeric_limits<double>::quiet_NaN();
    double yy = std::numeric_limits<double>::quiet_NaN();
    double xy = std::numeric_limits<double>::quiet_NaN();

    double determinant() const { return xx * yy - xy * xy; }
    double trace() const { return xx + yy; }
    /// det^(1/4): the sigma of the round Gaussian of the same area.
    double determinantRadius() const { return std::sqrt(std::sqrt(determinant())); }
    bool isPositiveDefinite() const { return std::isfinite(xx) && std::isfinite(yy) && std::isfinite(xy) && xx > 0 && yy > 0 && determinant() > 0; }
    /// The inverse matrix (NaN if singular).
    SecondMoments inverse() const {
        const double d = determinant();
        return {yy / d, xx / d, -xy / d};
    }
    static SecondMoments circle(double sigma) { return {sigma * sigma, sigma * sigma, 0.0}; }
    /// Ellipticity (xx - yy) / (xx + yy) (distortion).
    double e1() const { return (xx - yy) / (xx + yy); }
    /// Ellipticity 2 xy / (xx + yy) (distortion).
    double e2() const { return 2.0 * xy / (xx + yy); }
    friend bool operator==(const SecondMoments&, const SecondMoments&) = default;
};

/// Iteration control of computeAdaptiveMoments.
struct AdaptiveMomentsControl {
    int maxIter = 200;           ///< maximum iterations, >= 1
    double tolerance = 1e-7;     ///< relative convergence tolerance (see header)
    double windowSigmas = 5.0;   ///< window ellipse in weight sigmas
    double maxSigma = 100.0;     ///< give up when sqrt(largest eigenvalue of W) exceeds this (pixels)
    /// If not empty, only pixels inside this box (parent frame) are used (e.g. the footprint's box grown
    /// by a margin); a window crossing it is reported as truncated.
    Box2I region;
    /// Also iterate the centre (see header); off: the centre is held fixed.
    bool recentre = false;
    /// Halve a step of W that reverses the previous one (their element-wise dot product is negative): a
    /// 2-cycle of the Newton update (a faint, non-Gaussian source; eigenvalue near -1) then converges to
    /// the same fixed point instead of oscillating to maxIter. Off by default (the plain iteration).
    bool dampOscillation = false;
    /// Judge convergence on the distance to the fixed point extrapolated from the last two steps of W
    /// (a geometric series: |step| / (1 - rho), rho = |step| / |previous step|, max-abs norms; never
    /// converged while rho >= 1) instead of on the last step alone: a loose tolerance (a fraction of the
    /// moments' noise) then cannot stop a slow drift far from the fixed point. Off by default.
    bool extrapolateConvergence = false;
    /// Lower bound (pixels^2) on the eigenvalues of the weight W (see header): 0 (the default) for none; about
    /// 1.2 (a weight sigma of 1.1 pixels) keeps undersampled stars from collapsing. Bounds: [0, 100], finite.
    double minWeightVariance = 0.0;
    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const AdaptiveMomentsControl&, const AdaptiveMomentsControl&) = default;
};

struct AdaptiveMomentsResult {
    SecondMoments moments;             ///< the adaptive moments W (NaN on failure)
    /// The final weight W: equal to `moments` unless `floored` (NaN on failure).
    SecondMoments weight;
    Point2D centre;                    ///< the centre used: the input one, or the re-centred one (control.recentre)
    /// Flux of the matching Gaussian, 2 sum w I with the last weight (exact for a Gaussian at W = its
    /// covariance; image units; NaN on failure).
    double amplitude = std::numeric_limits<double>::quiet_NaN();
    int iterations = 0;
    bool converged = false;      ///< false: maxIter reached (the last W is returned) or failure
    bool noPixels = false;       ///< no usable pixel, or the weighted flux sum was <= 0: failure
    bool singular = false;       ///< the weighted moments were not positive definite: failure
    bool maxSize = false;        ///< the weight grew beyond maxSigma: failure
    bool truncated = false;      ///< the final window crossed the image edge or unusable pixels
    /// The final weight was held at control.minWeightVariance along at least one axis; `moments` is then the
    /// Gaussian-equivalent covariance (M^-1 - W^-1)^-1 (W itself when that is not positive definite).
    bool floored = false;
    bool failed() const { return noPixels || singular || maxSize; }
};

/// `m` with its eigenvalues raised to at least `floor` (unchanged, bit for bit, when they already are);
/// `raised` says whether it changed.
SecondMoments floorEigenvalues(const SecondMoments& m, double floor, bool* raised = nullptr);

/// Adaptive moments of `image` (parent frame) about `centre`, starting from the weight `initial`
/// (must be positive definite; a circle of 1 pixel is used otherwise). Never throws for bad data.
template <typename T>
AdaptiveMomentsResult computeAdaptiveMoments(const Image<T>& image, Point2D centre, SecondMoments initial,
                                             const AdaptiveMomentsControl& control = {}, const Mask* mask = nullptr,
                                             MaskPixel badBits = 0);

/// Noise covariance of adaptive moments W (pixels^4): the unique elements of the 3x3 covariance of
/// (xx, yy, xy).
struct MomentsCovariance {
    double xx_xx = std::numeric_limits<double>::quiet_NaN();
    double yy_yy = std::numeric_limits<double>::quiet_NaN();
    double xy_xy = std::numeric_limits<double>::quiet_NaN();
    double xx_yy = std::numeric_limits<double>::quiet_NaN();
    double xx_xy = std::numeric_limits<double>::quiet_NaN();
    double yy_xy = std::numeric_limits<double>::quiet_NaN();
};

/// Noise covariance of the adaptive moments `w` (a converged result about `centre`) from the per-pixel
/// `variance` (same frame and box as `image`), by linear propagation. With the weight held at w, the
/// weighted moments M = sum w I q / sum w I (q = dx^2, dy^2, dx dy) respond to pixel noise as
///     dM = sum w (q - M) dI / sum w I,   Cov(M) = sum w^2 (q - M)(q - M)^T V / (sum w I)^2,
/// and at the adaptive fixed point of a Gaussian (M = (S^-1 + W^-1)^-1, W = S) dM = dW / 4 when the weight
/// follows the light, so dW = 2 dM + 2 dW / 4, i.e. dW = 4 dM and Cov(W) = 16 Cov(M) (the Gaussian
/// linearisation, as in SDSS-like shape codes). With control.minWeightVariance, a `w` with an eigenvalue below
/// it is a floored result: the weight is then the floored w, held fixed, and the covariance is that of
/// S = (M^-1 - W^-1)^-1, dS = S M^-1 dM M^-1 S (in one direction only floored, the floored propagation is
/// used for both: an approximation). Same window, region and pixel rejection as
/// computeAdaptiveMoments; pixels with non-finite or negative variance are skipped. NaN if `w` is not
/// positive definite or the weighted flux is not positive.
template <typename T>
MomentsCovariance computeAdaptiveMomentsCovariance(const Image<T>& image, const Image<float>& variance, Point2D centre,
                                                   const SecondMoments& w, const AdaptiveMomentsControl& control = {},
                                                   const Mask* mask = nullptr, MaskPixel badBits = 0);

extern template MomentsCovariance computeAdaptiveMomentsCovariance<float>(const Image<float>&, const Image<float>&,
                                                                          Point2D, const SecondMoments&,
                                                                          const AdaptiveMomentsControl&, const Mask*,
                                                                          MaskPixel);

extern template AdaptiveMomentsResult computeAdaptiveMoments<float>(const Image<float>&, Point2D, SecondMoments,
                                                                    const AdaptiveMomentsControl&, const Mask*,
                                                                    MaskPixel);
extern template AdaptiveMomentsResult computeAdaptiveMoments<double>(const Image<double>&, Point2D, SecondMoments,
                                                                     const AdaptiveMomentsControl&, const Mask*,
                                                                     MaskPixel);

}  // namespace drp
