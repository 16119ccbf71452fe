// OversampledPsfFit: the least-squares fit of an oversampled PsfexPsf's node grid to undersampled star stamps
// (super-resolution, as PSFEx with PSF_SAMPLING < 1 and the effective-PSF method of Anderson & King 2000).
//
// A star s at sub-pixel phase (dx, dy) from its stamp's middle pixel sees the model m_s = R(dx, dy) C, with C the
// M x M node grid (step 1 / q pixels, core/PsfexPsf.h) and R the separable cubic B-spline rendering of the nodes at
// the stamp's pixels (PsfexPsf::renderNodes). The fit minimises
//     sum_s sum_p W_sp (D_sp - m_sp)^2 + ridge |C|^2 + smooth |Laplacian(C)|^2
// over every node at once: stars at different phases fill in the nodes between the pixel centres, so the model holds
// the PSF's shape at every phase instead of the aliased average of sinc-shifted stamps. (The PSF determiner fits the
// constant term this way and takes the spatial variation from its native fit: PsfDeterminer.h.) The normal equations
// are solved by conjugate gradients, applying A (renderNodes) and A^T (accumulateNodes) star by star (the M^2 x M^2
// matrix is never formed), preconditioned by its diagonal. The ridge, ridgeFraction x the mean diagonal, only keeps
// nodes that no star's pixels reach at 0; it is too small to bias the others.
// Pure: no I/O, deterministic (fixed summation order).
#pragma once

#include <vector>

#include "core/Box.h"
#include "core/Image.h"

namespace drp {

/// One star's part of the fit.
struct OversampledStar {
    Image<double> data;    ///< N x N: the stamp over its flux (the fit's target)
    Image<double> weight;  ///< N x N: per-pixel weight (0 for clipped pixels)
    Point2D phase;         ///< centre minus the middle pixel's centre, each in [-0.5, 0.5]
};

struct OversampledFitControl {
    int maxIterations = 400;       ///< conjugate-gradient iterations at most
    double tolerance = 1e-6;       ///< stop when |residual| <= tolerance x |right-hand side|
    double ridgeFraction = 1e-9;   ///< ridge as a fraction of the mean diagonal of the normal matrix
    /// Weight of the roughness penalty sum |Laplacian(C)|^2, as a fraction of the mean diagonal / 20 (20: the diagonal
    /// of the squared 5-point Laplacian). Damps the node patterns that the stars' phases leave unconstrained; it widens
    /// a well-constrained model by under 1e-4 in T.
    double smoothness = 3e-4;
};

struct OversampledFitResult {
    Image<double> nodes;  ///< M x M
    int iterations = 0;
    double relativeResidual = 0.0;  ///< |residual| / |right-hand side| at the end
};

/// The M x M spline coefficients (step 1 / q, PsfexPsf) of a native-pixel stamp (N x N values at pixel centres): the
/// cubic spline through the stamp's values, sampled at the nodes and turned into coefficients; rendered at phase 0 it
/// gives the stamp back. The oversampled form of a native-sampled PSF component.
Image<double> upsampleToNodes(const Image<double>& native, int q, int gridSize);

/// Fit the node grid (M = gridSize, odd) of oversampling q to the stars. `warmStart`, when M x M, is the starting point
/// (the previous round's solution); otherwise the fit starts from 0.
OversampledFitResult fitOversampledPsf(const std::vector<OversampledStar>& stars, int q, int gridSize, const Image<double>& warmStart,
                                       const OversampledFitControl& control);

}  // namespace drp
