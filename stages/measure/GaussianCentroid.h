// GaussianCentroid: the centroid kernel of the "centroid" plugin (pure: an image in, a position out).
//
// 1. SDSS-like start: the image is smoothed with a circular Gaussian of `sigma` at the 3x3 pixels around
//    the start pixel; the start moves to the smoothed maximum (at most a few steps) and a quadratic through
//    the smoothed 3x3 gives a sub-pixel first guess (clamped to +-0.5 pixel).
// 2. Refinement: the root c of the Gaussian-weighted first moment
//        f(c) = sum_i w_i(c) I_i (x_i - c),   w_i(c) = exp(-|x_i - c|^2 / (2 sigma^2)),
//    over pixels within 5 sigma of c, by Newton steps with the analytic Jacobian
//        J = df/dc = sum_i w_i I_i [ (x_i - c)(x_i - c)^T / sigma^2 - 1 ],
//    (a plain weighted-mean step when J is not negative definite). For any source symmetric about its
//    centre the root is the centre (no bias from the weight), and a sampled PSF needs no correction.
// 3. Errors: linear propagation of the pixel noise through the root, Cov(c) = J^-1 Cov(f) J^-T with
//    Cov(f) = sum_i w_i^2 V_i (x_i - c)(x_i - c)^T from the variance plane V.
#pragma once

#include <limits>

#include "core/Box.h"
#include "core/MaskedImage.h"

namespace drp {

struct GaussianCentroidResult {
    Point2D position;            ///< the centroid (the start when the refinement failed)
    double xErr = std::numeric_limits<double>::quiet_NaN();
    double yErr = std::numeric_limits<double>::quiet_NaN();
    double xyCov = std::numeric_limits<double>::quiet_NaN();
    int iterations = 0;
    bool noPixels = false;            ///< no usable pixel or non-positive weighted flux: failure
    bool noSecondDerivative = false;  ///< J not negative definite at the end (not at a maximum): failure
    bool notConverged = false;        ///< maxIter reached
    bool resetToPeak = false;         ///< moved farther than maxShift: position reset to the start: failure
    bool edge = false;                ///< the window crossed the image edge or unusable pixels
    bool failed() const { return noPixels || noSecondDerivative || resetToPeak; }
};

struct GaussianCentroidControl {
    double sigma = 2.0;        ///< weight sigma, pixels
    int maxIter = 30;
    double tolerance = 1e-5;   ///< pixels
    double maxShift = 2.0;     ///< pixels from the start
};

/// Centroid of the light of `image` near `start` (parent frame). Pixels that are non-finite, have a
/// non-finite or negative variance, or have any of `badBits` set are skipped. Never throws for bad data.
GaussianCentroidResult measureGaussianCentroid(const MaskedImageF& image, Point2D start,
                                               const GaussianCentroidControl& control, MaskPixel badBits = 0);

}  // namespace drp
