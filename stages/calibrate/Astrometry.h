// Astrometry: the astrometric calibration of one detector — a TAN-SIP Wcs fitted to reference stars,
// starting from a header WCS that may be wrong by an arcminute and a degree.
//
//  1. Frame. Sources are placed on the sky with the initial WCS and everything is projected onto the tangent
//     plane about the sky position of the detector centre (arcsec, east/north). Reference stars are kept if
//     they fall in the detector grown by the searched offset and rotation.
//  2. Pattern matching (PatternMatcher.h) of the brightest sources against the brightest references gives a
//     shift, a rotation and an affine refinement (absorbing the header's scale error and local distortion).
//     Few-star path (fewStarEnabled): when there are fewer usable sources or references than minMatches, or
//     the pattern matcher finds no solution, the exhaustive few-star matcher (FewStarMatcher.h) is tried: a
//     similarity accepted with >= fewStarMinMatches matches within fewStarMatchRadiusArcsec only if the
//     expected number of false solutions, computed from the reference density, is <= fewStarMaxFalseSolutions.
//     The fit loop then needs fewStarMinMatches matches instead of minMatches.
//  3. Fit loop (fitIterations times): one-to-one nearest matching within the current radius; weighted fit
//     of a model chosen from the number n of matches (AstrometryFitModel):
//       n >= 3 x (SIP terms of order 2) = 18 and sipOrder >= 2: TAN-SIP (TanSipFitter.h; CRPIX at the detector
//                                centre, SIP order lowered while there are fewer than 3 matches per coefficient);
//       n >= affineMinMatches:   when the header WCS has no SIP: plain TAN (CRVAL + general CD, CRPIX at the
//                                detector centre), or TAN + one radial distortion coefficient about the header's
//                                CRPIX (the optical axis in a mosaic camera's header; TanSipFitter.h, fitTanRadial;
//                                radialDistortion, sipOrder >= 3) when an F test says the extra term lowers the
//                                chi^2 enough (radialMinF); when the header WCS has SIP, the header with its CRPIX
//                                and SIP kept and CRVAL and an affine correction of CD fitted (TanSipFitter.h,
//                                fitWcsCorrection);
//       otherwise (>= fewStarMinMatches): the header with CRVAL and a rotation + scale of CD fitted (its SIP,
//                                i.e. its distortion, and the shape of its CD kept).
//     Sigma clipping (a match is rejected when |residual| / sigma exceeds rejectSigma times max(1, robust
//     scale of the normalised residuals); refit until stable, never below the matches needed); the next radius is max(matchRadiusMinArcsec, min(radius, matchRadiusRmsFactor * rms)).
//     Per-match sigma^2 = (pixel scale * centroid error)^2 + refErr^2 + errorFloor^2 per axis.
//     Few-star solutions with fewer than minMatches matches are first cleaned by leave-one-out: the match whose
//     left-out residual most exceeds max(rejectSigma x rms of the others, matchRadiusMinArcsec) is dropped,
//     while more than fewStarMinMatches remain (a chance match of a spurious source cannot hide in the
//     systematic residuals of a low-order model).
//  4. Inverse SIP (AP/BP, inverseSipOrder) fitted over the detector for FITS readers.
// Failure — too few sources or references (fewer than fewStarMinMatches, or minMatches without the few-star
// path), no pattern, too few matches — throws NumericalError whose message names the problem and the counts;
// the driver records it per detector and goes on.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/Box.h"
#include "core/Wcs.h"
#include "sky/SpherePoint.h"
#include "stages/calibrate/FewStarMatcher.h"
#include "stages/calibrate/PatternMatcher.h"

namespace drp {

struct AstrometryConfig {
    double maxOffsetArcsec = 90.0;       ///< pointing uncertainty searched (shift of the detector centre), arcsec (0, 3600]
    double maxRotationDeg = 2.0;         ///< rotation uncertainty searched, deg [0, 45]
    int numBrightestSources = 60;        ///< brightest sources used as pattern points, [3, 5000]
    int numBrightestRefs = 100;          ///< brightest reference stars (in the searched area) used as pattern points, [3, 5000]
    double patternToleranceArcsec = 1.0; ///< absolute tolerance of pattern spoke lengths, arcsec (0, 60]
    double patternScaleTolerance = 0.01; ///< relative tolerance of spoke lengths (header scale error + distortion), [0, 0.2]
    int minPatternSpokes = 4;            ///< rotation-consistent spokes a pattern needs, [2, 100]
    int patternAttempts = 3;             ///< pattern searches, each with bright lists twice as long as the last, [1, 10]
    double patternMinMatchFraction = 0.1;  ///< a pattern solution must match this fraction of the shorter list (sources, references in the searched area), [0, 1]
    double matchRadiusArcsec = 1.5;      ///< match radius after the pattern solution (first fit), arcsec (0, 60]
    double matchRadiusMinArcsec = 0.3;   ///< the radius never shrinks below this, arcsec (0, matchRadiusArcsec]
    double matchRadiusRmsFactor = 5.0;   ///< next radius = this x the rms residual of the last fit (capped as above), [1, 100]
    int sipOrder = 3;                    ///< SIP A/B order; 0 or 1: TAN only, [0, 9]
    int inverseSipOrder = 5;             ///< AP/BP order fitted for readers (when SIP is used), [1, 9]
    int fitIterations = 4;               ///< match-fit-clip iterations, [1, 100]
    int clipIterations = 5;              ///< clip-refit rounds within an iteration, [0, 100]
    double rejectSigma = 3.0;            ///< clipping threshold on |residual| / sigma in robust-scale units, (1, 100]
    double errorFloorMas = 0.5;          ///< added in quadrature to every match's per-axis error, mas [0, 1000]
    int minMatches = 10;                 ///< matches a solution needs (pattern-matcher path), [3, 1000000]
    bool fewStarEnabled = true;          ///< try the few-star path when the pattern matcher cannot (see above)
    int fewStarMinMatches = 4;           ///< matches a few-star solution needs (fewer: NumericalError), [3, minMatches]
    double fewStarMatchRadiusArcsec = 1.0;   ///< few-star verification radius and first fit radius, arcsec (0, matchRadiusArcsec]
    int fewStarMaxSources = 30;          ///< brightest sources the few-star matcher uses, [3, 1000]
    int fewStarMaxRefs = 200;            ///< brightest references (in the searched area) it uses, [3, 5000]
    double fewStarMaxFalseSolutions = 1e-4;  ///< largest expected number of false few-star solutions accepted, (0, 0.1]
    int affineMinMatches = 6;            ///< matches for a general linear (affine) fit; below: shift + rotation + scale of the header WCS, [3, 1000000]
    bool radialDistortion = true;        ///< below the TAN-SIP match count, with a header WCS without SIP and sipOrder >= 3: try TAN + a radial distortion about the header's CRPIX besides plain TAN
    double radialMinF = 9.0;             ///< the radial term is kept if it lowers chi^2 by more than this x (chi^2 / dof of the radial fit): an F test with 1 dof, [0, 1e6]

    /// Throws ConfigError for values outside the bounds above.
    void validate() const;
    /// The pattern-matcher settings implied by this config.
    PatternMatchConfig patternConfig() const;
    /// The few-star matcher settings implied by this config.
    FewStarMatchConfig fewStarConfig() const;
    friend bool operator==(const AstrometryConfig&, const AstrometryConfig&) = default;
};

/// A detected source: pixel centroid (parent frame, pixel centres at integers), its errors and a flux used
/// only to rank sources by brightness (any unit).
struct AstrometrySource {
    Point2D position;
    double xErr = 0.0;  ///< pixels (>= 0)
    double yErr = 0.0;  ///< pixels (>= 0)
    double flux = 0.0;
};

/// A reference star, already propagated to the observation epoch by the caller.
struct AstrometryRef {
    SpherePoint position;
    double errMas = 0.0;  ///< per-axis position error at the epoch, mas (>= 0)
    double mag = 0.0;     ///< used only to rank by brightness
};

/// The model fitted by the last iteration (see the header comment, step 3).
enum class AstrometryFitModel {
    TanSip,            ///< TAN-SIP fitted, CRPIX at the detector centre
    Tan,               ///< TAN (CRVAL + general CD) fitted, CRPIX at the detector centre
    HeaderAffine,      ///< the header WCS (CRPIX and SIP kept) with CRVAL and an affine correction of CD
    HeaderSimilarity,  ///< the header WCS (CRPIX, SIP and CD shape kept) with CRVAL and a rotation + scale of CD
    TanRadial,         ///< TAN + one radial distortion coefficient (SIP order 3) fitted, CRPIX the header's
};
/// "tan-sip", "tan", "header-affine", "header-similarity", "tan-radial".
const char* toString(AstrometryFitModel model);

struct AstrometryMatch {
    std::size_t source = 0;          ///< index into the sources given
    std::size_t ref = 0;             ///< index into the references given
    double separationArcsec = 0.0;   ///< after the final fit
};

struct AstrometryResult {
    std::shared_ptr<const Wcs> wcs;          ///< fitted TAN-SIP (CRPIX at the detector centre; the header's for tan-radial and header-*), with AP/BP
    std::vector<AstrometryMatch> matches;    ///< matches kept by the final fit
    double rmsResidualMas = 0.0;             ///< sqrt(mean |residual|^2) (2-d) of the kept matches
    double medianResidualMas = 0.0;          ///< median |residual| of the kept matches
    int nMatches = 0;                        ///< kept matches
    int nRejected = 0;                       ///< matches within the final radius rejected by clipping
    Point2D offsetArcsec;                    ///< pattern shift: (east, north) of the true position of the detector centre relative to the initial WCS
    double rotationDeg = 0.0;                ///< pattern rotation: true minus initial position angle (north through east)
    int sipOrder = 0;                        ///< SIP order of the result: fitted (lowered when matches are few), or the header's kept by a Header* model
    AstrometryFitModel fitModel = AstrometryFitModel::TanSip;  ///< model of the last fit
    bool fewStars = false;                   ///< the solution came from the few-star path (FewStarMatcher.h)
    double falseSolutionsExpected = 0.0;     ///< few-star path: expected number of false solutions with as many matches (0 otherwise)
    double finalMatchRadiusArcsec = 0.0;     ///< radius of the last matching
    int patternConfirmations = 0;            ///< independent patterns agreeing with the pattern solution
};

/// Fit the astrometric solution of one detector (see the header comment). `bbox` is the detector's pixel box.
/// Throws ConfigError (validate), InvalidInputError (empty bbox), NumericalError (no solution).
AstrometryResult fitAstrometry(const std::vector<AstrometrySource>& sources, const std::vector<AstrometryRef>& refs,
                               const Wcs& initialWcs, const Box2I& bbox, const AstrometryConfig& config);

}  // namespace drp
