// Render: drawing point sources, PSF-convolved bulge + disk galaxies and moving-object trails into images,
// in the parent pixel frame, clipped to the image (pixel (x, y) covers [x - 1/2, x + 1/2)).
//
// Point sources: flux * psf.computeImage(position) (the PSF at the sub-pixel position as the Psf draws it).
//
// Galaxies and trails are drawn in Fourier space on a stamp of odd FFT-friendly size that holds all of the
// source's (truncated) light padded by the PSF kernel's half-width, so the periodic convolution never
// wraps:
//     stamp = IDFT[ G(k) K(k) ],  K = DFT of psf.computeKernelImage(position)
// where the kernel image is the PSF already integrated over pixels (the "effective PSF") on integer
// offsets, so the stamp is (source (x) PSF (x) pixel) sampled at pixel centres. It is exact up to the
// aliasing of K (negligible for a PSF with FWHM >~ 2 pixels; an undersampled PSF would need its own
// oversampled image) and conserves flux to rounding (G(0) = 1, K sums to 1).
//  * Galaxies (default, RenderConfig::oversample = 0): G(k) = sum_c f_c F_c(sqrt(q^T S q)) exp(-i k.x0),
//    q = J^T k the sky wavevector for the Jacobian J = pixelsPerArcsec, S the shape matrix, F_c the
//    tabulated transforms of the truncated n = 4 and n = 1 components (SersicTransform, accurate to
//    ~1e-6): no sampling of the cusp, no oversampling, exact sub-pixel centring by the phase.
//  * Galaxies, real space (oversample = m >= 1, and any galaxy whose light is clipped by
//    maxStampHalfWidth): the profile is integrated over the cells of an m-times oversampled grid aligned
//    so the centre is a cell centre (adaptive Gauss-Legendre cubature, subdividing where the profile
//    varies within a cell; cells crossed by a truncation take the fraction inside), then G(k) = DFT / the
//    cell box sinc(kx/2m) sinc(ky/2m). Independent of the tables, it cross-checks them in the tests; the
//    aliasing of the n = 4 cusp needs m r_e >~ 6 pixels for 1e-3 accuracy.
//  * Trails: G(k) = exp(-i k.mid) sinc(k.(end - start) / 2), analytic.

#pragma once

#include <Eigen/Core>

#include "core/Box.h"
#include "core/GalaxyProfile.h"
#include "core/Image.h"
#include "core/Psf.h"

namespace drp {

/// How to render extended sources. Plain value; compare with ==; check with validate().
struct RenderConfig {
    /// Galaxy method: 0 = Fourier space with the tabulated Sersic transforms (exact; the default);
    /// m >= 1 = the real-space cell grid oversampled m times per pixel (a cross-check). Bounds: [0, 16].
    int oversample = 0;
    /// Largest half-width (pixels) of a galaxy's light footprint before the PSF: light of larger galaxies
    /// beyond it is dropped (real-space path, not renormalised). Trails longer than twice this are refused.
    /// Bounds: [4, 4096].
    double maxStampHalfWidth = 256;

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const RenderConfig&, const RenderConfig&) = default;
};

/// Add flux * PSF centred at `position` (pixels, parent frame) into `image`. Returns the flux actually
/// added inside the image.
double addPointSource(const ImageF& image, Point2D position, double flux, const Psf& psf);

/// Add a PSF-convolved bulge + disk galaxy of total `flux` centred at `position`. `pixelsPerArcsec` is the
/// local Jacobian d(pixel)/d(offset), offset = (east, north) in arcsec on the tangent plane at the galaxy.
/// Returns the flux actually added inside the image (equal to `flux` to rounding for a stamp inside it).
double addGalaxy(const ImageF& image, Point2D position, double flux, const GalaxyShape& shape,
                 const Eigen::Matrix2d& pixelsPerArcsec, const Psf& psf, const RenderConfig& config = {});

/// Add a point source moving uniformly from `start` to `end` during the exposure (total `flux`),
/// convolved with the PSF at the trail's midpoint. Returns the flux actually added inside the image.
double addTrail(const ImageF& image, Point2D start, Point2D end, double flux, const Psf& psf,
                const RenderConfig& config = {});

/// The rendered galaxy as a stamp in the parent frame (xy0 set) that contains all of its light; sums to
/// `flux` unless the light was clipped by config.maxStampHalfWidth.
ImageD renderGalaxyStamp(Point2D position, double flux, const GalaxyShape& shape,
                         const Eigen::Matrix2d& pixelsPerArcsec, const Psf& psf, const RenderConfig& config = {});

/// The rendered trail as a stamp in the parent frame.
ImageD renderTrailStamp(Point2D start, Point2D end, double flux, const Psf& psf, const RenderConfig& config = {});

/// Add `stamp` (parent frame) into `image`, clipped to the image. Returns the sum of the added pixels.
double addStamp(const ImageF& image, const ImageD& stamp);

}  // namespace drp
