// TanSipFitter: weighted linear least-squares fit of a TAN-SIP Wcs to matched (pixel, sky) pairs.
//
// With CRPIX fixed (the detector centre) and the sky points projected gnomonically about the current CRVAL,
// the TAN-SIP model is a pair of polynomials of total degree `order` in the pixel offsets (u, v):
//     (xi, eta) = CD (u + A(u, v), v + B(u, v)),   A, B with terms of degree 2..order,
// i.e. general polynomials P_xi, P_eta whose constant terms are zero when CRVAL is right. The fit solves for
// all coefficients including the constants (QR on the weighted, scale-normalised design matrix), moves CRVAL
// to the deprojection of the constants and repeats until they vanish (|constant| < 1e-10 arcsec; 2-4
// passes). Then CD = the linear terms and (A_pq, B_pq) = CD^-1 (P_xi,pq, P_eta,pq) for p + q >= 2.
// Order 0 or 1 fits a plain TAN Wcs (CRVAL and CD).
//
// fitTanRadial: TAN plus one radial distortion coefficient about a given CRPIX (the optical axis, where the
// header WCS of a mosaic camera puts it): (xi, eta) = CD (d + kappa |d|^2 d), d = pixel - CRPIX, i.e. SIP
// A = kappa (u^3 + u v^2), B = kappa (u^2 v + v^3). 7 parameters (CRVAL, CD, kappa), fitted by Gauss-Newton
// from a plain TAN fit, moving CRVAL to the fitted origin each pass (the exact weighted least-squares
// solution, 3-6 passes). The third-order optical distortion of a wide field is mostly this; on a detector
// off the axis a plain TAN leaves its quadratic part (~0.1-0.2" over an LSST-like detector at 0.1-0.3 deg),
// which a full SIP fit needs many more matches to remove.
//
// fitWcsCorrection: the low-order alternative for few matches. The model is a given (header) Wcs whose CRPIX
// and SIP (the optical distortion it carries, if any) are kept, with CRVAL moved and CD multiplied on the left
// by a 2x2 matrix M: a similarity (shift + rotation + scale: 4 parameters, >= 2 points) or a general linear
// map (shift + affine: 6 parameters, >= 3 non-collinear points). Each pass projects the sky points and the
// current model's pixel positions about the current CRVAL (where the model is exactly x = CD (u + SIP)),
// fits y = M x + t by weighted least squares, moves CRVAL to the deprojection of t and sets CD = M CD; it
// stops when |t| < 1e-9 arcsec and |M - 1| < 1e-12 (2-4 passes): the exact weighted least-squares solution.
#pragma once

#include <memory>
#include <vector>

#include "core/Box.h"
#include "core/Wcs.h"
#include "sky/SpherePoint.h"

namespace drp {

/// Number of coefficients of a polynomial of total degree `order` in two variables: (order+1)(order+2)/2.
int polynomialTermCount(int order);

/// Fit a TAN-SIP Wcs (no inverse AP/BP) with CRPIX `crpix` to pixels[i] -> sky[i], weights[i] >= 0 (inverse
/// variances; empty: all 1). `crvalGuess` starts the CRVAL iteration (e.g. the sky position of crpix under a
/// rough WCS). Throws LogicError for mismatched sizes or order outside [0, Wcs::maxSipOrder]; NumericalError
/// when there are fewer usable (finite, positive-weight) points than coefficients or the design is singular.
std::shared_ptr<const Wcs> fitTanSip(const std::vector<Point2D>& pixels, const std::vector<SpherePoint>& sky,
                                     const std::vector<double>& weights, Point2D crpix, const SpherePoint& crvalGuess,
                                     int order);

/// Fit TAN + radial distortion about `crpix` (see the header comment) to pixels[i] -> sky[i] with weights
/// (empty: all 1). The result has SIP order 3 (no inverse AP/BP). Throws LogicError for mismatched sizes;
/// NumericalError with fewer than 4 usable points, a degenerate design (e.g. all points at one radius from
/// crpix) or no convergence.
std::shared_ptr<const Wcs> fitTanRadial(const std::vector<Point2D>& pixels, const std::vector<SpherePoint>& sky,
                                        const std::vector<double>& weights, Point2D crpix, const SpherePoint& crvalGuess);

/// The parameters fitWcsCorrection adjusts.
enum class WcsCorrection {
    Similarity,  ///< CRVAL, and CD rotated and scaled (4 parameters)
    Affine,      ///< CRVAL, and CD multiplied by a general 2x2 matrix (6 parameters)
};

/// Fit a correction of `base` (see the header comment) to pixels[i] -> sky[i] with weights (empty: all 1).
/// The result keeps base's CRPIX and SIP (forward and inverse). Throws LogicError for mismatched sizes;
/// NumericalError with too few usable points (2 for Similarity, 3 for Affine), degenerate points, or no
/// convergence.
std::shared_ptr<const Wcs> fitWcsCorrection(const Wcs& base, const std::vector<Point2D>& pixels,
                                            const std::vector<SpherePoint>& sky, const std::vector<double>& weights,
                                            WcsCorrection kind);

}  // namespace drp
