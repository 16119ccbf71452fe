// PsfexPsf: a PSFEx-like pixel-basis PSF whose every pixel varies as a polynomial over the detector.
//
// Basis: the PSF is an N x N (N odd) stamp at native pixel resolution (no oversampling): pixel (i, j)
// holds the pixel-integrated PSF ("effective PSF") at integer offset (i - N/2, j - N/2) from the PSF
// centre. Native sampling is adequate for PSFs with FWHM >~ 2.5 pixels (Nyquist for the
// pixel-integrated profile); an undersampled PSF would need an oversampled basis.
//
// Spatial variation: pixel (i, j) of the kernel at position p is
//     K_ij(p) = sum_k c_{k,ij} T_k(u, v),   u = (x - cx) / hx,  v = (y - cy) / hy,
// with (cx, cy) the centre of the bbox the model was fit over, hx, hy half its width and height (so u, v
// in [-1, 1] on it), and T_k the monomials of total degree <= spatialOrder (0..3) in the order
//     1, u, v, u^2, u v, v^2, u^3, u^2 v, u v^2, v^3.
// computeKernelImage returns that stamp scaled to sum 1 (NumericalError if its sum is not positive).
// computeImage (sub-pixel positions) uses Psf's default: a band-limited (periodic-sinc, Fourier) shift of
// the kernel image, which conserves the sum and moves the centroid by exactly the sub-pixel offset; the
// PSF determiner (stages/characterize/PsfDeterminer.h) recentres the star stamps with the same
// interpolant, so data and model are shifted consistently.
//
// Persistence: type name "PsfexPsf", arrays "size" {N}, "spatialOrder" {order}, "bbox" {minX, minY, width,
// height}, "coefficients" (nTerms x N x N values: term-major, then row-major pixels). Drivers call
// registerPsfexPsf() at start-up; constructing a PsfexPsf also registers the type.
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

    /// @param bbox the region the polynomials are normalised over (non-empty)
    /// @param spatialOrder 0..3
    /// @param components numTerms(spatialOrder) images, all N x N with N odd >= 3, finite; component k
    ///        multiplies T_k. Throws InvalidInputError.
    PsfexPsf(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components);
    static std::shared_ptr<const PsfexPsf> make(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components) {
        return std::make_shared<const PsfexPsf>(bbox, spatialOrder, std::move(components));
    }

    /// (order + 1)(order + 2) / 2.
    static int numTerms(int spatialOrder) { return (spatialOrder + 1) * (spatialOrder + 2) / 2; }
    /// T_k(u, v), k = 0 .. numTerms(order) - 1, in the order of the header comment.
    static std::vector<double> polynomialTerms(int spatialOrder, double u, double v);
    /// (u, v) of a position for a given bbox (the normalisation of the header comment).
    static Point2D normalisedPosition(const Box2I& bbox, Point2D position);

    const Box2I& bbox() const { return bbox_; }
    int spatialOrder() const { return order_; }
    int stampSize() const { return size_; }
    const std::vector<Image<double>>& components() const { return components_; }
    /// The polynomial stamp at `position` before normalisation (its sum is the model's flux fraction).
    Image<double> evaluateUnnormalised(Point2D position) const;

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    /// The unweighted moments are linear in the components: from each component's sums of 1, x, y, x^2, y^2 and
    /// xy (computed once), without rendering the kernel image (the same moments as Psf::doComputeShape, to rounding).
    PsfShape doComputeShape(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;

    Box2I bbox_;
    int order_ = 0;
    int size_ = 0;
    std::vector<Image<double>> components_;
    std::vector<std::array<double, 6>> componentMoments_;  ///< per component: sums of 1, x, y, x^2, y^2, xy (centre 0)
};

}  // namespace drp
