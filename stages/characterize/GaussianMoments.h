// GaussianMoments: elliptical-Gaussian-weighted ("adaptive", Bernstein & Jarvis 2002; HSM) second moments
// of a compact source, used by the PSF determiner to select stars and to compare stars with the PSF model
// on the same footing.
//
// Definition: find the centre c and the matrix M = [[ixx, ixy], [ixy, iyy]] such that, with the weight
// w(p) = exp(-1/2 (p - c)^T M^-1 (p - c)) over pixel centres p,
//     sum w (I - b) (p - c) = 0     and     sum w (I - b) (p - c)(p - c)^T / sum w (I - b) = M / 2,
// where I is the image and b a constant background. For an elliptical Gaussian of covariance C the
// solution is M = C, c its centre: the "moments" are those of the best-matching Gaussian. Star and PSF
// model measured this way can be compared directly (the PSF model's moments at the star's sub-pixel
// position, on the same pixel grid).
//
// Iteration: the centre moves by twice the weighted first moment (exact for a Gaussian at M = C); the
// matrix takes the Gaussian fixed-point step M <- (Q^-1 - M^-1)^-1, Q the weighted second moments about
// the centre, or M <- 2Q where that inverse is not positive definite. Sums run over pixels within
// 7.5 sqrt(largest eigenvalue of M) of the centre, with weights below exp(-25) dropped (clipped to the image; pixels with any of `badMask` set
// are skipped).
#pragma once

#include "core/Box.h"
#include "core/Image.h"
#include "core/Mask.h"

namespace drp {

/// The result of measureGaussianMoments. Units: pixels, pixels^2, image units.
struct GaussianMoments {
    double x = 0.0, y = 0.0;                ///< centre (parent frame)
    double ixx = 0.0, iyy = 0.0, ixy = 0.0; ///< moments of the matching Gaussian
    double amplitude = 0.0;                 ///< flux of the matching Gaussian: 2 sum w (I - b) at convergence
    int iterations = 0;
    bool converged = false;
    /// ixx + iyy.
    double trace() const { return ixx + iyy; }
    /// (ixx - iyy) / (ixx + iyy).
    double e1() const { return (ixx - iyy) / (ixx + iyy); }
    /// 2 ixy / (ixx + iyy).
    double e2() const { return 2.0 * ixy / (ixx + iyy); }
};

/// Controls of measureGaussianMoments. Plain value; compare with ==.
struct GaussianMomentsControl {
    /// Initial weight sigma (pixels), > 0.
    double initialSigma = 2.0;
    /// Maximum number of iterations, >= 1.
    int maxIterations = 200;
    /// Convergence: change of the centre (pixels) and of M relative to its trace below this, > 0.
    double tolerance = 1e-8;
    /// Moments above this (pixels^2) fail (a runaway weight), > 0.
    double maxMoment = 1e4;
    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const GaussianMomentsControl&, const GaussianMomentsControl&) = default;
};

/// Adaptive moments of the source near `guess` (parent frame) in `image` after subtracting `background`.
/// `mask` (same bbox as the image, may be null) and `badMask` choose pixels to skip. Never throws for bad
/// data: converged is false when the iteration fails (no flux, runaway or no convergence).
template <typename T>
GaussianMoments measureGaussianMoments(const Image<T>& image, Point2D guess, const GaussianMomentsControl& ctrl = {},
                                       double background = 0.0, const Mask* mask = nullptr, MaskPixel badMask = 0);

}  // namespace drp
