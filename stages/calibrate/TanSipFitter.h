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

}  // namespace drp
