// PatternMatcher: finds the shift and rotation between detected sources and reference stars whose
// positions are known only roughly (pointing error up to ~1 arcmin, rotation up to ~1 deg), robust to
// missing and spurious sources — an optimistic pattern matcher in the spirit of Tabur (2007) and its
// "B" variant in LSST meas_astrom, written from the description, not the code.
//
// Both lists are planar (east, north) tangent-plane positions in arcseconds about the same tangent point,
// the sources placed with the initial (header) WCS. Each list is ordered brightest first.
//
//  1. Patterns. For a bright source s (one of the numBrightestSources brightest) its spokes are the vectors
//     to the other bright sources. For a bright reference r that s can reach under the searched shift and
//     rotation, the reference spokes (to the other numBrightestRefs brightest) with a length within
//     tolerance (spokeToleranceArcsec + scaleTolerance * length) and an angle within maxRotationDeg are
//     candidates; each gives a rotation. The largest set of candidates that agree on the rotation (each
//     within its own angular tolerance) and use distinct source spokes is the pattern; it needs at least
//     minPatternSpokes spokes.
//  2. Verification. The rotation and shift fitted to the pattern points predict every source; they are
//     matched to the references in three passes (bright lists with a radius growing with the distance from
//     the pattern centre; all points at 2x and then 1x matchRadiusArcsec), each followed by a clipped
//     affine fit, which absorbs the plate-scale error and local distortion of the header WCS. A candidate
//     goes on to the passes over all points only if, after the first, at least two bright stars beyond the
//     pattern's own (or the number a solution needs, if smaller) agree within 2 x matchRadiusArcsec.
//  3. Acceptance. A solution needs at least minMatches matches, minMatchFraction of the shorter list, and
//     many more than chance would give (mean mu = sources x reference density x pi r^2; needed:
//     mu + 6 sqrt(mu) + 3; the fraction guards against the look-elsewhere effect of many candidates, each
//     refined by an affine fit). The search stops
//     early when `confirmations` independent patterns agree with the best solution; otherwise every pattern
//     is tried and the solution with most matches wins. Without any, the search is repeated with bright lists
//     twice as long (up to patternAttempts times: bright lists crowded by spurious sources); then NumericalError.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "stages/calibrate/PointMatcher.h"

namespace drp {

struct PatternMatchConfig {
    double maxOffsetArcsec = 90.0;       ///< largest shift of the field searched, arcsec (0, 3600]
    double maxRotationDeg = 2.0;         ///< largest rotation searched, deg [0, 45]
    int numBrightestSources = 60;        ///< sources used as pattern points, [3, 5000]
    int numBrightestRefs = 100;          ///< reference stars used as pattern points, [3, 5000]
    double spokeToleranceArcsec = 1.0;   ///< absolute tolerance of spoke lengths, arcsec (0, 60]
    double scaleTolerance = 0.01;        ///< relative tolerance of spoke lengths (scale error, distortion), [0, 0.2]
    double minSpokeLengthArcsec = 10.0;  ///< shorter spokes carry too little angle information and are skipped, arcsec [0, 3600]
    int minPatternSpokes = 4;            ///< rotation-consistent spokes a pattern needs, [2, 100]
    double matchRadiusArcsec = 1.5;      ///< radius of the last verification match, arcsec (0, 60]
    int minMatches = 10;                 ///< matches a solution needs, [3, 1000000]
    double minMatchFraction = 0.1;       ///< and at least this fraction of the shorter list (sources or references), [0, 1]
    int confirmations = 2;               ///< patterns that must agree with the best solution to stop early, [1, 1000]
    int patternAttempts = 3;             ///< attempts, each with twice the bright lists of the last, before giving up, [1, 10]

    /// Throws ConfigError for values outside the bounds above.
    void validate() const;
    friend bool operator==(const PatternMatchConfig&, const PatternMatchConfig&) = default;
};

struct PatternMatchResult {
    AffineTransform2 transform;       ///< reference position ~ transform(source position), arcsec
    std::vector<PointPair> matches;   ///< (source index, reference index) within matchRadiusArcsec
    double expectedRandomMatches = 0; ///< mu: matches expected by chance at matchRadiusArcsec
    int confirmations = 0;            ///< patterns that found this solution
    int candidates = 0;               ///< patterns tried (verified or confirmed)

    /// Position of the tangent point (the origin of the source frame) in the reference frame:
    /// (east, north) arcsec.
    Eigen::Vector2d offsetArcsec() const { return transform.shift; }
    /// Position-angle change (deg, north through east) taking the source pattern onto the references:
    /// minus the counter-clockwise rotation of the (east, north) plane.
    double rotationDeg() const;
};

/// Throws NumericalError (with the counts in the message) when no acceptable solution exists, including
/// when either list has fewer than minPatternSpokes + 1 usable points; ConfigError from validate().
PatternMatchResult matchPatterns(const std::vector<Eigen::Vector2d>& sources, const std::vector<Eigen::Vector2d>& refs,
                                 const PatternMatchConfig& config);

}  // namespace drp
