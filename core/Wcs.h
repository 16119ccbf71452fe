// Wcs: the FITS TAN (gnomonic) projection with optional SIP distortion polynomials.
// Pixel coordinates are 0-based in the parent frame (pixel (0,0) centre = FITS pixel (1,1) of an
// image with xy0 = (0,0)). Immutable; share as std::shared_ptr<const Wcs>.
#pragma once

#include <Eigen/Core>
#include <memory>
#include <optional>
#include <vector>

#include "core/Box.h"
#include "core/PropertyList.h"
#include "sky/SpherePoint.h"

namespace drp {

/// SIP polynomial coefficients (Shupe et al. 2005). a(p,q) multiplies u^p v^q; order is p+q max.
struct SipPolynomials {
    int order = 0;            ///< A/B order (0: none)
    Eigen::MatrixXd a, b;     ///< (order+1) x (order+1), forward: pixel offset -> intermediate pixel
    int inverseOrder = 0;     ///< AP/BP order (0: no inverse given; skyToPixel iterates)
    Eigen::MatrixXd ap, bp;   ///< (inverseOrder+1) x (inverseOrder+1)
    friend bool operator==(const SipPolynomials&, const SipPolynomials&) = default;
    /// The exact order-3 SIP of a radial cubic distortion about CRPIX, f(u) = kappa |u|^2 u (u in pixels):
    /// A = kappa (u^3 + u v^2), B = kappa (u^2 v + v^3); no inverse.
    static SipPolynomials radialCubic(double kappa);
};

class Wcs {
public:
    /// @param crpix reference pixel, 0-based parent-frame coordinates
    /// @param crval reference sky point
    /// @param cd    CD matrix in degrees per pixel
    /// @param sip   optional SIP distortion
    Wcs(Point2D crpix, SpherePoint crval, const Eigen::Matrix2d& cd, std::optional<SipPolynomials> sip = {});

    /// A TAN WCS with square pixels of `scale`, rotated by `rotation` (angle of +y from north, east of north),
    /// with RA increasing to the left (the usual sky orientation) unless `flipX` is false.
    static std::shared_ptr<const Wcs> makeTan(Point2D crpix, SpherePoint crval, Angle scale, Angle rotation,
                                              bool flipX = true);

    /// Highest SIP order accepted (A/B and AP/BP), as in wcslib.
    static constexpr int maxSipOrder = 9;

    SpherePoint pixelToSky(Point2D pixel) const;
    /// Exact inverse of pixelToSky (Newton iteration on the SIP polynomials, to ~1e-10 px; AP/BP, when given,
    /// only supply the first guess). Returns (NaN, NaN) for a point on the far side of the tangent plane
    /// (90 deg or more from crval) and where the SIP polynomials cannot be inverted (far outside their domain).
    Point2D skyToPixel(const SpherePoint& sky) const;
    std::vector<SpherePoint> pixelToSky(const std::vector<Point2D>& pixels) const;
    std::vector<Point2D> skyToPixel(const std::vector<SpherePoint>& points) const;

    /// Local pixel scale (square root of the Jacobian determinant) at a pixel.
    Angle pixelScale(Point2D pixel) const;

    Point2D crpix() const { return crpix_; }
    SpherePoint crval() const { return crval_; }
    const Eigen::Matrix2d& cd() const { return cd_; }
    bool hasSip() const { return sip_.has_value() && sip_->order > 0; }
    const std::optional<SipPolynomials>& sip() const { return sip_; }

    /// FITS keywords (WCSAXES, CTYPEi 'RA---TAN'/'RA---TAN-SIP', CRPIXi, CRVALi, CDi_j, CUNITi, RADESYS,
    /// A_ORDER/A_p_q/B_..., AP_/BP_...) for an image whose first pixel is parent pixel `xy0`.
    PropertyList toFitsMetadata(Point2I xy0 = {0, 0}) const;
    /// Parse the celestial WCS of a FITS header (CD or PC+CDELT, optional SIP) for an image whose first
    /// pixel is parent pixel `xy0`. Throws NotFoundError if the header has no celestial WCS,
    /// InvalidInputError if it is not TAN/TAN-SIP or is singular.
    static std::shared_ptr<const Wcs> fromFitsMetadata(const PropertyList& md, Point2I xy0 = {0, 0});

    /// The same WCS with pixel coordinates shifted: new pixel = old pixel + shift.
    std::shared_ptr<const Wcs> shiftedPixelOrigin(Point2D shift) const;

    /// The same WCS with inverse SIP polynomials (AP/BP, all terms p+q <= order) fitted by least squares to
    /// the exact inverse on a grid over `bbox` (grown by 5% on each side), for FITS readers that need them.
    /// Throws InvalidInputError if there is no forward SIP, the box is empty or order is out of [1, maxSipOrder].
    std::shared_ptr<const Wcs> withInverseSip(const Box2I& bbox, int order) const;

    /// Equal parameters (exactly). A FITS header round trip keeps CD and SIP coefficients bit-exact; CRVAL
    /// (radians <-> degrees) and CRPIX (0-based parent <-> 1-based file) may move by an ulp.
    friend bool operator==(const Wcs& a, const Wcs& b);

private:
    Point2D crpix_;
    SpherePoint crval_;
    Eigen::Matrix2d cd_;
    Eigen::Matrix2d cdInverse_;
    std::optional<SipPolynomials> sip_;
    Eigen::Matrix3d rotation_;  // native spherical frame -> celestial frame
};

}  // namespace drp
