// Galaxy light profiles: Sersic profiles (optionally truncated) and the bulge + disk galaxy model of the
// simulator, as analytic surface brightness normalised to unit total flux.
//
// Sersic profile of index n, scale radius r_s:  I(r) = I0 exp(-b_n (r / r_s)^(1/n)), with b_n fixed by
// P(2n, b_n) = 1/2 (P the regularised lower incomplete gamma function), so that for an untruncated profile
// r_s is the half-light radius. A truncated profile is cut sharply at r_t = truncation * halfLightRadius
// and renormalised to unit flux; as in GalSim (flux_untruncated = false), r_s is then solved for so that
// halfLightRadius stays the true half-light radius of the truncated profile.
//
// Ellipticity (galaxies and MoffatPsf alike): the distortion e = (a^2 - b^2) / (a^2 + b^2) of the axis ratio
// q = b / a, (e1, e2) = e (cos 2 theta, sin 2 theta), theta measured from the first coordinate axis
// towards the second. A circular profile f(|u|) is sheared to f(sqrt(x^T S^-1 x)) with the shape matrix
//     S = [[1 + e1, e2], [e2, 1 - e1]] / sqrt(1 - e^2),   det S = 1,
// so areas, total flux and the geometric-mean radius sqrt(a b) are unchanged ("radii are along the
// geometric-mean axis"). For galaxies the coordinates are sky offsets (east, north) in arcsec: e1 > 0
// elongates the galaxy east-west, e2 > 0 along the north-east / south-west diagonal.
#pragma once

#include <memory>

#include <Eigen/Core>

namespace drp {

/// The regularised lower incomplete gamma function P(a, x) = gamma(a, x) / Gamma(a), a > 0, x >= 0
/// (series / continued fraction; relative accuracy ~1e-14). Throws InvalidInputError for bad arguments.
double regularizedGammaP(double a, double x);

/// b_n of a Sersic profile: the root of P(2n, b) = 1/2 (Newton from the Ciotti & Bertin expansion,
/// converged to ~1e-14). n in [0.2, 20].
double sersicBn(double n);

/// The det-1 shape matrix S(e1, e2) of the distortion convention above. Throws InvalidInputError
/// unless e1^2 + e2^2 < 1.
Eigen::Matrix2d shapeMatrix(double e1, double e2);

/// A circular Sersic profile with unit total flux (lengths in any unit, e.g. arcsec or pixels).
struct SersicProfile {
    /// Sersic index. Bounds: [0.2, 20]. n = 1 is an exponential disk, n = 4 de Vaucouleurs.
    double n = 1.0;
    /// Half-light radius of the profile as drawn (of the truncated profile when truncated). Bounds: > 0.
    double halfLightRadius = 1.0;
    /// Truncation radius in units of halfLightRadius; 0 means no truncation. Bounds: 0 or > 1.5.
    double truncation = 0.0;

    /// Throws InvalidInputError naming the first field out of bounds.
    void validate() const;
    double bn() const { return sersicBn(n); }
    /// r_s in I0 exp(-b_n (r / r_s)^(1/n)); equals halfLightRadius when untruncated. Memoised per (n, truncation).
    double scaleRadius() const;
    /// truncation * halfLightRadius, or +infinity when untruncated.
    double truncationRadius() const;
    /// Surface brightness at radius r (flux per unit area, unit total flux); 0 beyond the truncation.
    double surfaceBrightness(double r) const;
    /// Central surface brightness I0 (flux per unit area).
    double centralSurfaceBrightness() const;
    /// Fraction of the profile's (unit) flux inside radius r (1 at and beyond the truncation radius).
    double enclosedFlux(double r) const;
    /// Fraction of the flux of the UNtruncated profile with the same scale radius that lies inside the
    /// truncation radius: the factor by which truncation removes flux before renormalisation.
    double untruncatedFluxFractionInside() const;
    /// <r^2> of the (truncated) profile: the trace of the 2-d second-moment matrix, so a round profile has
    /// Ixx = Iyy = meanSquareRadius() / 2.
    double meanSquareRadius() const;
    /// The 2-d Fourier transform of the unit-flux profile at wavenumber k (radians per length unit):
    /// F(k) = 2 pi int_0^R I(r) J0(k r) r dr, F(0) = 1. From a table per (n, truncation), built once on first
    /// use (~30-60 ms; thread-safe): the Abel projection of the profile, sampled at r_e / 2048 out to the
    /// truncation (untruncated profiles: out to the radius enclosing 1 - 1e-9 of the flux), zero-padded
    /// 16x and FFT'd, then interpolated with cubic Lagrange polynomials. Accuracy ~1e-6 of F(0) up to
    /// k r_e = 800, beyond which the table returns 0.
    double fourierTransform(double k) const;
};

namespace detail {
struct TransformTable;
}

/// A handle on the Fourier-transform table of one profile, for evaluating F(k) many times without the
/// per-call lookup of SersicProfile::fourierTransform (which builds or finds the table each call).
class SersicTransform {
public:
    explicit SersicTransform(const SersicProfile& profile);
    /// F(k), k in radians per length unit of the profile's halfLightRadius.
    double operator()(double k) const;

private:
    std::shared_ptr<const detail::TransformTable> table_;
    double radius_;
};

/// Default truncation of the simulator's bulge (n = 4), in half-light radii. The untruncated de
/// Vaucouleurs profile has 94.3% of its flux inside 8 r_e (its r^(1/4) wings fall very slowly: 99.9% needs
/// 43 r_e). Truncated at 8 r_e and renormalised, with r_s re-solved (r_s = 1.1355 r_e) so that r_e stays the
/// true half-light radius: the cut removes 7.0% of the light of the untruncated profile of that r_s.
inline constexpr double kBulgeTruncation = 8.0;
/// Default truncation of the simulator's disk (n = 1), in half-light radii: 99.95% of the untruncated
/// exponential's flux lies inside 6 r_e; renormalised likewise (r_s = 1.00045 r_e).
inline constexpr double kDiskTruncation = 6.0;

/// The simulator's galaxy model: a de Vaucouleurs bulge (n = 4) plus an exponential disk (n = 1), same
/// centre and same ellipticity.
struct GalaxyShape {
    /// Fraction of the flux in the bulge. Bounds: [0, 1].
    double bulgeFraction = 0.0;
    /// Bulge half-light radius along the geometric-mean axis, arcsec. Bounds: > 0 when bulgeFraction > 0.
    double bulgeHalfLightRadiusArcsec = 0.5;
    /// Disk half-light radius along the geometric-mean axis, arcsec. Bounds: > 0 when bulgeFraction < 1.
    double diskHalfLightRadiusArcsec = 1.0;
    /// Distortion components (see the header comment) in the (east, north) frame. Bounds: e1^2 + e2^2 < 1.
    double e1 = 0.0;
    double e2 = 0.0;

    /// Throws InvalidInputError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const GalaxyShape&, const GalaxyShape&) = default;
};

/// The bulge component {4, bulgeHalfLightRadiusArcsec, kBulgeTruncation}.
SersicProfile bulgeProfile(const GalaxyShape& shape);
/// The disk component {1, diskHalfLightRadiusArcsec, kDiskTruncation}.
SersicProfile diskProfile(const GalaxyShape& shape);

/// Surface brightness (per arcsec^2, unit total flux) at the sky offset (east, north) in arcsec from the
/// galaxy centre.
double galaxySurfaceBrightness(const GalaxyShape& shape, double eastArcsec, double northArcsec);

/// Fraction of the galaxy's flux inside the elliptical isophote of geometric-mean radius `radiusArcsec`.
double galaxyEnclosedFlux(const GalaxyShape& shape, double radiusArcsec);

/// Analytic second-moment matrix of the galaxy (arcsec^2, (east, north) axes, about the centre).
Eigen::Matrix2d galaxySecondMoments(const GalaxyShape& shape);

/// Largest geometric-mean radius (arcsec) at which the galaxy has light: the larger truncation radius of
/// the components present.
double galaxyTruncationRadiusArcsec(const GalaxyShape& shape);

}  // namespace drp
