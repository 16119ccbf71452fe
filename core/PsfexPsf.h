// PsfexPsf: a PSFEx-like pixel-basis PSF whose every pixel varies as a polynomial over the detector.
//
// Basis: the pixel-integrated PSF (the "effective PSF" e(x, y), whose value at a pixel's centre offset from the
// star is that pixel's share of the light) on an M x M grid (M odd) of step 1 / q image pixels, q the oversampling
// (1, 2 or 3), node (i, j) at offset ((i - M/2) / q, (j - M/2) / q) from the PSF centre.
//  * q = 1 (native sampling, as PSFEx with PSF_SAMPLING 1): node (i, j) holds e there, and the kernel stamp is the
//    components themselves, N = M. Adequate for FWHM >~ 2.5 pixels (Nyquist for the pixel-integrated profile).
//  * q > 1 (as PSFEx's PSF_SAMPLING < 1, for undersampled PSFs): the nodes are the coefficients of a separable cubic
//    B-spline of step 1 / q, e(x, y) = sum_ij c_ij B(q x - i + M/2) B(q y - j + M/2) (coefficients outside the grid
//    0; nodesFromSamples turns samples of e into coefficients). The model stamp is N x N native pixels, N = 2 floor(M/2
//    / q) + 1. A cubic spline reproduces polynomials to degree 3, so a sub-pixel shift moves the centroid exactly,
//    and at two nodes per pixel it follows an FWHM 1.9 pixel Gaussian to 1e-3 of its peak (a normalised Lanczos-3
//    kernel: 4e-3, with centroid errors of 0.01 pixel that depend on the phase). The PSF determiner fits the
//    coefficients through the same spline, so the model and its fit agree at every sub-pixel phase.
//
// Spatial variation: pixel (i, j) of the kernel at position p is
//     K_ij(p) = sum_k c_{k,ij} T_k(u, v),   u = (x - cx) / hx,  v = (y - cy) / hy,
// with (cx, cy) the centre of the bbox the model was fit over, hx, hy half its width and height (so u, v
// in [-1, 1] on it), and T_k the monomials of total degree <= spatialOrder (0..3) in the order
//     1, u, v, u^2, u v, v^2, u^3, u^2 v, u v^2, v^3.
// computeKernelImage returns the native stamp at phase 0 (q > 1: e at the pixel centres) scaled to sum 1
// (NumericalError if its sum is not positive).
// computeImage (sub-pixel positions):
//  * q = 1: Psf's default, a band-limited (periodic-sinc, Fourier) shift of the kernel image, which conserves the
//    sum and moves the centroid by exactly the sub-pixel offset; the PSF determiner (stages/characterize/
//    PsfDeterminer.h) recentres the star stamps with the same interpolant, so data and model are shifted consistently.
//    For an undersampled PSF the stamp is aliased and the sinc shift is not the PSF at the new phase;
//  * q > 1: e evaluated at the native pixels' offsets from the position (the spline above), scaled to sum 1.
//
// Persistence: type name "PsfexPsf", arrays "size" {M}, "spatialOrder" {order}, "bbox" {minX, minY, width,
// height}, "coefficients" (nTerms x M x M values: term-major, then row-major nodes), and "oversampling" {q} when
// q > 1 (a record without it has q = 1). Drivers call registerPsfexPsf() at start-up; constructing a PsfexPsf also
// registers the type.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "core/Box.h"
#include "core/Psf.h"

namespace drp {

/// Register "PsfexPsf" with Psf::registerType (idempotent, thread-safe).
void registerPsfexPsf();

class PsfexPsf final : public Psf {
public:
    static constexpr const char* kTypeName = "PsfexPsf";
    static constexpr int kMaxSpatialOrder = 3;
    static constexpr int kMaxOversampling = 3;
    static constexpr int kTaps = 4;  ///< nodes of the cubic B-spline per axis

    /// @param bbox the region the polynomials are normalised over (non-empty)
    /// @param spatialOrder 0..3
    /// @param components numTerms(spatialOrder) images, all M x M with M odd >= 3 (and M/2 >= oversampling), finite;
    ///        component k multiplies T_k. Throws InvalidInputError.
    /// @param oversampling q, nodes per image pixel: 1..3
    PsfexPsf(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components, int oversampling = 1);
    static std::shared_ptr<const PsfexPsf> make(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components,
                                                int oversampling = 1) {
        return std::make_shared<const PsfexPsf>(bbox, spatialOrder, std::move(components), oversampling);
    }

    /// (order + 1)(order + 2) / 2.
    static int numTerms(int spatialOrder) { return (spatialOrder + 1) * (spatialOrder + 2) / 2; }
    /// T_k(u, v), k = 0 .. numTerms(order) - 1, in the order of the header comment.
    static std::vector<double> polynomialTerms(int spatialOrder, double u, double v);
    /// (u, v) of a position for a given bbox (the normalisation of the header comment).
    static Point2D normalisedPosition(const Box2I& bbox, Point2D position);

    const Box2I& bbox() const { return bbox_; }
    int spatialOrder() const { return order_; }
    /// The native stamp side N (see the header).
    int stampSize() const { return size_; }
    int oversampling() const { return q_; }
    /// The node grid side M (N when q = 1).
    int gridSize() const { return gridSize_; }
    const std::vector<Image<double>>& components() const { return components_; }
    /// The same PSF over `bbox` (another frame, e.g. one detector's), where position p there is p + offset in this
    /// model's frame: every polynomial re-expanded exactly in the new frame's (u', v') (u = a_x u' + b_x, an affine map,
    /// so the same order suffices), renormalised over `bbox`. computeKernelImage / computeImage at p equal this model's at
    /// p + offset to rounding (the sub-pixel phase is that of p: offsets with fractions move the pixel grid, not the
    /// PSF). With bbox == this->bbox() and a zero offset the components are copied, bit for bit. Throws
    /// InvalidInputError for an empty bbox or a non-finite offset.
    std::shared_ptr<const PsfexPsf> reframed(const Box2I& bbox, Point2D offset) const;

    /// The polynomial node grid (M x M) at `position` before normalisation (q = 1: the stamp, whose sum is the model's
    /// flux fraction; q > 1: spline coefficients).
    Image<double> evaluateUnnormalised(Point2D position) const;

    /// The cubic B-spline weights of the nodes floor(t) - 1 .. floor(t) + 2 at grid coordinate t (they sum to 1).
    static std::array<double, kTaps> interpolationWeights(double t);
    /// The spline coefficients (same size) whose spline passes through `samples` at the nodes (coefficients beyond
    /// the grid 0): separable tridiagonal solves.
    static Image<double> nodesFromSamples(const Image<double>& samples);
    /// Render the spline coefficients `nodes` (M x M, step 1 / q) as the N x N native stamp whose middle pixel is offset
    /// by (-dx, -dy) from the PSF centre (that is, the image of a point source at (dx, dy) from the middle pixel's
    /// centre): out(i, j) = e(i - N/2 - dx, j - N/2 - dy), unnormalised.
    static Image<double> renderNodes(const Image<double>& nodes, int q, int n, double dx, double dy);
    /// The adjoint of renderNodes: adds to `nodes` (M x M) the transpose of the interpolation applied to `pixels`
    /// (N x N). With `squared`, the squares of the weights (the diagonal of the normal matrix, per pixel weight).
    static void accumulateNodes(const Image<double>& pixels, int q, double dx, double dy, Image<double>& nodes,
                                bool squared = false);

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    /// q > 1: the interpolated model at the position's sub-pixel phase (see the header); q = 1: Psf's default.
    Image<double> doComputeImage(Point2D position) const override;
    /// The unweighted moments are linear in the components: from each component's sums of 1, x, y, x^2, y^2 and
    /// xy (computed once), without rendering the kernel image (the same moments as Psf::doComputeShape, to rounding).
    PsfShape doComputeShape(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;

    Box2I bbox_;
    int order_ = 0;
    int q_ = 1;
    int gridSize_ = 0;
    int size_ = 0;
    std::vector<Image<double>> components_;
    std::vector<std::array<double, 6>> componentMoments_;  ///< per component: sums over the native stamp's nodes of 1, x, y, x^2, y^2, xy (centre 0)
};

}  // namespace drp
