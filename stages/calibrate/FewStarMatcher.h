// FewStarMatcher: shift + rotation (+ scale) between a handful of detected sources and the reference stars,
// for fields where the pattern matcher (PatternMatcher.h) cannot work — fewer sources than its minMatches,
// or too few of them in common with the references (shallow exposures: a u-band detector may have 4-15
// sources at S/N > 10). Exhaustive, and judged by an explicit false-solution probability.
//
// Both lists are planar (east, north) tangent-plane positions in arcseconds about the same tangent point (the
// detector centre under the header WCS), brightest first; the header WCS's scale is taken as right to
// within scaleTolerance (its distortion, if any, already applied by the caller).
//
//  1. Hypotheses. Every ordered pair of used sources (s1, s2) at least minBaselineArcsec apart, and every pair
//     of used references (r1, r2) with r1 within the searched shift of s1 and r2 - r1 of the same length
//     (within r + scaleTolerance L, r = matchRadiusArcsec) and direction (within maxRotationDeg + r / L) as
//     s2 - s1, gives the similarity taking s1 -> r1, s2 -> r2. Its rotation, scale and shift must be within
//     the searched bounds.
//  2. Verification. Every used source is predicted and matched one-to-one to the used references within r;
//     a similarity refitted to the matches predicts again (twice). k = the matches of the final prediction.
//  3. Significance. With the references spread uniformly at density rho = N / A (A: their bounding box),
//     a wrong hypothesis matches each of the other n - 2 sources by chance with p = rho pi r^2, so the
//     expected number of false solutions with >= k matches is at most
//         E(k) = H * P(Binomial(n - 2, p) >= k - 2),
//     H = sum over the ordered source pairs of (references within the shift reach of s1: rho pi reach^2,
//     at most N) x (references in the annular sector allowed for r2: rho 4 tolL (maxRot L + tolL)) — the
//     expected number of hypotheses (a union bound: each false solution is counted once per pair of its
//     matches, so E over-estimates). The best hypothesis (most matches, then smallest rms) is accepted if
//     k >= minMatches and E(k) <= maxFalseSolutions, and no different solution (one that moves a point of
//     the field by more than 2 r) has as many matches (an ambiguous field gives no solution).
// Example (the demo survey's u band: n = 6 sources, N = 47 references over A = 4e5 arcsec^2, r = 1", shift
// 90", rotation 2 deg): H ~ 4, p ~ 4e-4, E(4) ~ 3e-6, E(3) ~ 5e-3.
#pragma once

#include <Eigen/Core>
#include <vector>

#include "stages/calibrate/PointMatcher.h"

namespace drp {

struct FewStarMatchConfig {
    double maxOffsetArcsec = 90.0;     ///< largest shift of the tangent point searched, arcsec (0, 3600]
    double maxRotationDeg = 2.0;       ///< largest rotation searched, deg [0, 45]
    double scaleTolerance = 0.01;      ///< largest relative scale error (header scale, distortion), [0, 0.2]
    double matchRadiusArcsec = 1.0;    ///< verification match radius r, arcsec (0, 60]
    double minBaselineArcsec = 10.0;   ///< anchor pairs (s1, s2) closer than this are not hypotheses, arcsec [0, 3600]
    int maxSources = 30;               ///< brightest sources used, [2, 1000]
    int maxRefs = 200;                 ///< brightest references used, [2, 5000]
    int minMatches = 4;                ///< matches a solution needs, [3, 1000]
    double maxFalseSolutions = 1e-4;   ///< largest accepted expected number of false solutions E(k), (0, 0.1]

    /// Throws ConfigError for values outside the bounds above.
    void validate() const;
    friend bool operator==(const FewStarMatchConfig&, const FewStarMatchConfig&) = default;
};

struct FewStarMatchResult {
    AffineTransform2 transform;       ///< reference position ~ transform(source position): a similarity, arcsec
    std::vector<PointPair> matches;   ///< (source index, reference index) within matchRadiusArcsec
    double falseSolutionsExpected = 0;///< E(k) for the accepted k = matches.size()
    double hypothesesExpected = 0;    ///< H: hypotheses expected from unrelated lists
    double chanceMatchProbability = 0;///< p: chance that a wrong hypothesis matches a given source
    int hypotheses = 0;               ///< hypotheses actually verified
    int runnerUpMatches = 0;          ///< matches of the best different solution (0 if none)
    int sourcesUsed = 0, refsUsed = 0;
};

/// Expected number of false solutions with at least k matches (the E(k) of the header comment) for n used
/// sources, H expected hypotheses and a chance-match probability p per source.
double fewStarFalseSolutions(double hypothesesExpected, int nSources, double p, int k);

/// Throws NumericalError (with the counts, the best k and "H = ..., p = ..." in the message) when no acceptable solution
/// exists; ConfigError from validate().
FewStarMatchResult matchFewStars(const std::vector<Eigen::Vector2d>& sources, const std::vector<Eigen::Vector2d>& refs,
                                 const FewStarMatchConfig& config);

}  // namespace drp
