// Astrometry: the astrometric calibration of one detector — a TAN-SIP Wcs fitted to reference stars,
// starting from a header WCS that may be wrong by an arcminute and a degree.
//
//  1. Frame. Sources are placed on the sky with the initial WCS and everything is projected onto the tangent
//     plane about the sky position of the detector centre (arcsec, east/north). Reference stars are kept if
//     they fall in the detector grown by the searched offset and rotation.
//  2. Pattern matching (PatternMatcher.h) of the brightest sources against the brightest references gives a
//     shift, a rotation and an affine refinement (absorbing the header's scale error and local distortion).
//  3. Fit loop (fitIterations times): one-to-one nearest matching within the current radius; weighted
//     TAN-SIP fit (TanSipFitter.h; CRPIX at the detector centre, SIP order lowered when there are fewer than
//     3 matches per coefficient); sigma clipping (a match is rejected when |residual| / sigma exceeds
//     rejectSigma times max(1, robust scale of the normalised residuals); refit until stable); the next radius
//     is max(matchRadiusMinArcsec, min(radius, matchRadiusRmsFactor * rms)).
//     Per-match sigma^2 = (pixel scale * centroid error)^2 + refErr^2 + errorFloor^2 per axis.
//  4. Inverse SIP (AP/BP, inverseSipOrder) fitted over the detector for FITS readers.
// Failure — too few sources or references, no pattern, too few matches — throws NumericalError whose message
// names the problem and the counts; the driver records it per detector and goes on.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "core/Box.h"
#include "core/Wcs.h"
#include "sky/SpherePoint.h"
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
    int minMatches = 10;                 ///< matches a solution needs, [3, 1000000]

    /// Throws ConfigError for values outside the bounds above.
    void validate() const;
    /// The pattern-matcher settings implied by this config.
    PatternMatchConfig patternConfig() const;
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

struct AstrometryMatch {
    std::size_t source = 0;          ///< index into the sources given
    std::size_t ref = 0;             ///< index into the references given
    double separationArcsec = 0.0;   ///< after the final fit
};

struct AstrometryResult {
    std::shared_ptr<const Wcs> wcs;          ///< fitted TAN-SIP (CRPIX at the detector centre), with AP/BP
    std::vector<AstrometryMatch> matches;    ///< matches kept by the final fit
    double rmsResidualMas = 0.0;             ///< sqrt(mean |residual|^2) (2-d) of the kept matches
    double medianResidualMas = 0.0;          ///< median |residual| of the kept matches
    int nMatches = 0;                        ///< kept matches
    int nRejected = 0;                       ///< matches within the final radius rejected by clipping
    Point2D offsetArcsec;                    ///< pattern shift: (east, north) of the true position of the detector centre relative to the initial WCS
    double rotationDeg = 0.0;                ///< pattern rotation: true minus initial position angle (north through east)
    int sipOrder = 0;                        ///< SIP order actually fitted (lowered when matches are few)
    double finalMatchRadiusArcsec = 0.0;     ///< radius of the last matching
    int patternConfirmations = 0;            ///< independent patterns agreeing with the pattern solution
};

/// Fit the astrometric solution of one detector (see the header comment). `bbox` is the detector's pixel box.
/// Throws ConfigError (validate), InvalidInputError (empty bbox), NumericalError (no solution).
AstrometryResult fitAstrometry(const std::vector<AstrometrySource>& sources, const std::vector<AstrometryRef>& refs,
                               const Wcs& initialWcs, const Box2I& bbox, const AstrometryConfig& config);

}  // namespace drp
