// MoffatPsf: an elliptical Moffat PSF, constant or varying quadratically over the image, integrated over
// pixels (the profile GalSim's Moffat draws with method "auto").
//
// Profile: I(x) ∝ (1 + rho^2)^(-beta), rho^2 = x^T S^-1 x / alpha^2, with S the det-1 shape matrix of the
// distortion (e1, e2) (core/GalaxyProfile.h: e = (1 - q^2) / (1 + q^2), GalSim's "e"), alpha the scale
// radius: FWHM = 2 alpha sqrt(2^(1/beta) - 1), where FWHM is the geometric-mean FWHM sqrt(FWHM_major *
// FWHM_minor) in pixels.
//
// Truncation: the profile is cut at the largest ellipse of the same shape that fits in the kernel image,
// i.e. semi-major axis (kernelSize - 1) / 2 pixels about the PSF centre (also for computeImage, whose centre
// is off the middle pixel by up to half a pixel, so the ellipse still fits), and renormalised to unit sum.
// Default kernelSize: 2 ceil(4 FWHM_major) + 1, FWHM_major = FWHM ((1+e)/(1-e))^(1/4) (the largest over
// the bbox for a varying PSF), clipped to [15, 101]. For beta = 2.5, FWHM = 3.5 that is 29 x 29 and the
// cut removes ~1% of the untruncated Moffat's light.
//
// Pixel integration: each pixel value is the integral of the profile over the pixel, by Gauss-Legendre
// quadrature on a tensor grid of nodes, of an order chosen from the profile's core scale (relative accuracy
// ~1e-7); in pixels that the truncation ellipse crosses, each row of nodes integrates exactly over the
// part of the pixel inside the ellipse.
//
// Spatial variation: fwhm, e1, e2 are each a polynomial of total order <= 2 in u = (x - cx) / hx,
// v = (y - cy) / hy, with (cx, cy) the bbox centre and hx, hy half its width and height; coefficient order
// 1, u, v, u^2, u v, v^2. beta is constant.
//
// Persistence: type name "MoffatPsf", arrays beta, kernelSize, bbox (minX, minY, width, height; empty for a
// constant PSF), fwhm, e1, e2 (6 coefficients each). Drivers call registerMoffatPsf() at start-up so a
// MoffatPsf can be read before any has been constructed (constructing one also registers the type).
#pragma once

#include <array>
#include <memory>

#include "core/Box.h"
#include "core/Psf.h"

namespace drp {

/// The Moffat parameters at one position.
struct MoffatParameters {
    double fwhm;  ///< geometric-mean FWHM, pixels
    double beta;  ///< Moffat index (> 1)
    double e1;    ///< distortion components
    double e2;
};

/// Register "MoffatPsf" with Psf::registerType (idempotent, thread-safe).
void registerMoffatPsf();

class MoffatPsf final : public Psf {
public:
    static constexpr const char* kTypeName = "MoffatPsf";

    /// A constant PSF. fwhm > 0 (pixels), beta > 1, e1^2 + e2^2 < 1 (at most 0.9^2), kernelSize 0 (default
    /// above) or odd >= 3. Throws InvalidInputError.
    MoffatPsf(double fwhm, double beta, double e1 = 0.0, double e2 = 0.0, int kernelSize = 0);
    /// A spatially varying PSF over `bbox` (non-empty). Throws InvalidInputError if fwhm <= 0 or e >= 0.9
    /// anywhere on a 9 x 9 grid spanning the bbox.
    MoffatPsf(const Box2I& bbox, double beta, const std::array<double, 6>& fwhmCoeffs,
              const std::array<double, 6>& e1Coeffs, const std::array<double, 6>& e2Coeffs, int kernelSize = 0);

    static std::shared_ptr<const MoffatPsf> make(double fwhm, double beta, double e1 = 0.0, double e2 = 0.0,
                                                 int kernelSize = 0) {
        return std::make_shared<const MoffatPsf>(fwhm, beta, e1, e2, kernelSize);
    }
    static std::shared_ptr<const MoffatPsf> make(const Box2I& bbox, double beta, const std::array<double, 6>& fwhmCoeffs,
                                                 const std::array<double, 6>& e1Coeffs,
                                                 const std::array<double, 6>& e2Coeffs, int kernelSize = 0) {
        return std::make_shared<const MoffatPsf>(bbox, beta, fwhmCoeffs, e1Coeffs, e2Coeffs, kernelSize);
    }

    /// The parameters at `position` (parent pixel frame; the polynomials are extrapolated outside the
    /// bbox). Throws InvalidInputError if they are invalid there (fwhm <= 0 or e >= 1).
    MoffatParameters parametersAt(Point2D position) const;

    double beta() const { return beta_; }
    int kernelSize() const { return kernelSize_; }
    bool isSpatiallyVarying() const { return !bbox_.empty(); }
    const Box2I& bbox() const { return bbox_; }
    const std::array<double, 6>& fwhmCoefficients() const { return fwhm_; }
    const std::array<double, 6>& e1Coefficients() const { return e1_; }
    const std::array<double, 6>& e2Coefficients() const { return e2_; }

    /// alpha = fwhm / (2 sqrt(2^(1/beta) - 1)).
    static double alphaFromFwhm(double fwhm, double beta);
    /// Second moments of the pixel-integrated, truncated profile with these parameters and kernel size
    /// (analytic: truncated-Moffat moments plus 1/12 pixel^2 per axis for the pixel).
    static PsfShape analyticShape(const MoffatParameters& p, int kernelSize);
    /// The pixel-integrated, truncated profile on a size x size grid whose middle pixel is offset by
    /// (dx, dy) from the profile centre (|dx|, |dy| <= 0.5), normalised to sum 1; xy0 = (0, 0).
    static Image<double> renderPixelIntegrated(const MoffatParameters& p, int size, double dx, double dy);

private:
    Image<double> doComputeKernelImage(Point2D position) const override;
    Image<double> doComputeImage(Point2D position) const override;
    PsfShape doComputeShape(Point2D position) const override;
    std::string doTypeName() const override { return kTypeName; }
    PsfRecord doToRecord() const override;
    void checkAndSizeKernel(int kernelSize);

    Box2I bbox_;  ///< empty for a constant PSF
    double beta_;
    std::array<double, 6> fwhm_{}, e1_{}, e2_{};
    int kernelSize_ = 0;
};

}  // namespace drp
