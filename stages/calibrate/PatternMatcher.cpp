#include "stages/calibrate/PatternMatcher.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "core/Error.h"
#include "stages/calibrate/ConfigRange.h"

namespace drp {

namespace {

constexpr double kPi = std::numbers::pi;
constexpr double kRadPerDeg = kPi / 180.0;

template <typename T>
void checkRange(const char* name, T value, T lo, T hi, bool openLow = false) {
    calibrate_detail::checkConfigRange("PatternMatchConfig", name, value, lo, hi, openLow);
}

struct Spoke {
    double length;
    double angle;     // atan2(north, east) of the spoke, radians
    std::size_t end;  // index of the far point
};

std::vector<Spoke> spokesFrom(const std::vector<Eigen::Vector2d>& pts, std::size_t centre, std::size_t n,
                              double minLength) {
    std::vector<Spoke> out;
    out.reserve(n);
    for (std::size_t j = 0; j < n; ++j) {
        if (j == centre || !pts[j].allFinite()) continue;
        const Eigen::Vector2d d = pts[j] - pts[centre];
        const double len = d.norm();
        if (len < minLength || len == 0.0) continue;
        out.push_back({len, std::atan2(d.y(), d.x()), j});
    }
    return out;
}

struct SpokeMatch {
    double dAngle;     // reference angle - source angle, wrapped to [-pi, pi]
    double tolerance;  // angular tolerance of this spoke pair, radians
    std::size_t sourceEnd, refEnd;
};

Eigen::Matrix2d rotationMatrix(double theta) {
    Eigen::Matrix2d m;
    m << std::cos(theta), -std::sin(theta), std::sin(theta), std::cos(theta);
    return m;
}

/// Affine fit with clipping of pairs whose residual exceeds max(3 x 1.4826 x median residual, floor).
bool fitAffineClipped(const std::vector<Eigen::Vector2d>& x, const std::vector<Eigen::Vector2d>& y,
                      std::vector<PointPair> pairs, double floor, AffineTransform2& out) {
    if (!fitAffine(x, y, pairs, out)) return false;
    for (int round = 0; round < 3; ++round) {
        std::vector<double> res(pairs.size());
        for (std::size_t k = 0; k < pairs.size(); ++k) res[k] = (out(x[pairs[k].a]) - y[pairs[k].b]).norm();
        std::vector<double> sorted = res;
        std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
        const double limit = std::max(3.0 * 1.4826 * sorted[sorted.size() / 2], floor);
        std::vector<PointPair> kept;
        for (std::size_t k = 0; k < pairs.size(); ++k)
            if (res[k] <= limit) kept.push_back(pairs[k]);
        if (kept.size() == pairs.size()) break;
        AffineTransform2 next;
        if (!fitAffine(x, y, kept, next)) break;
        out = next;
        pairs.swap(kept);
    }
    return true;
}

struct Solution {
    AffineTransform2 transform;
    std::vector<PointPair> matches;
    int confirmations = 1;
};

}  // namespace

void PatternMatchConfig::validate() const {
    checkRange("maxOffsetArcsec", maxOffsetArcsec, 0.0, 3600.0, true);
    checkRange("maxRotationDeg", maxRotationDeg, 0.0, 45.0);
    checkRange("numBrightestSources", numBrightestSources, 3, 5000);
    checkRange("numBrightestRefs", numBrightestRefs, 3, 5000);
    checkRange("spokeToleranceArcsec", spokeToleranceArcsec, 0.0, 60.0, true);
    checkRange("scaleTolerance", scaleTolerance, 0.0, 0.2);
    checkRange("minSpokeLengthArcsec", minSpokeLengthArcsec, 0.0, 3600.0);
    checkRange("minPatternSpokes", minPatternSpokes, 2, 100);
    checkRange("matchRadiusArcsec", matchRadiusArcsec, 0.0, 60.0, true);
    checkRange("minMatches", minMatches, 3, 1000000);
    checkRange("confirmations", confirmations, 1, 1000);
    checkRange("patternAttempts", patternAttempts, 1, 10);
    checkRange("minMatchFraction", minMatchFraction, 0.0, 1.0);
}

double PatternMatchResult::rotationDeg() const { return -transform.rotation() / kRadPerDeg; }

PatternMatchResult matchPatterns(const std::vector<Eigen::Vector2d>& sources, const std::vector<Eigen::Vector2d>& refs,
                                 const PatternMatchConfig& config) {
    config.validate();
    auto countFinite = [](const std::vector<Eigen::Vector2d>& v) {
        return std::size_t(std::count_if(v.begin(), v.end(), [](const Eigen::Vector2d& p) { return p.allFinite(); }));
    };
    const std::size_t nSourcesFinite = countFinite(sources), nRefsFinite = countFinite(refs);
    const std::size_t needed = std::size_t(std::max(config.minPatternSpokes + 1, config.minMatches));
    if (nSourcesFinite < needed || nRefsFinite < needed) {
        std::ostringstream os;
        os << "pattern matching: too few points for a solution (" << nSourcesFinite << " sources, " << nRefsFinite
           << " reference stars; at least " << needed << " of each are needed)";
        throw NumericalError(os.str());
    }
    const double tol = config.spokeToleranceArcsec, scaleTol = config.scaleTolerance;
    const double maxRot = config.maxRotationDeg * kRadPerDeg;
    const PointGrid refGrid(refs, 2.0 * config.matchRadiusArcsec);

    // Chance matches: reference density over the references' bounding box.
    Eigen::Vector2d lo = Eigen::Vector2d::Constant(1e300), hi = Eigen::Vector2d::Constant(-1e300);
    for (const auto& p : refs)
        if (p.allFinite()) {
            lo = lo.cwiseMin(p);
            hi = hi.cwiseMax(p);
        }
    const double area = std::max((hi - lo).prod(), 1.0);
    const double mu = double(nSourcesFinite) * double(nRefsFinite) / area * kPi * config.matchRadiusArcsec *
                      config.matchRadiusArcsec;
    const double threshold =
        std::max({double(config.minMatches), std::ceil(mu + 6.0 * std::sqrt(mu) + 3.0),
                  std::ceil(config.minMatchFraction * double(std::min(nSourcesFinite, nRefsFinite)))});

    std::vector<Eigen::Vector2d> predicted(sources.size());
    std::vector<Solution> solutions;
    long best = -1;
    int candidates = 0;
    std::size_t nSUsed = 0, nRUsed = 0;
    // Attempt k uses the 2^k x numBrightest brightest points (bright lists dominated by spurious sources).
    for (int attempt = 0; attempt < config.patternAttempts && best < 0; ++attempt) {
        const std::size_t nS = std::min<std::size_t>(std::size_t(config.numBrightestSources) << attempt, sources.size());
        const std::size_t nR = std::min<std::size_t>(std::size_t(config.numBrightestRefs) << attempt, refs.size());
        if (attempt > 0 && nS == nSUsed && nR == nRUsed) break;
        nSUsed = nS;
        nRUsed = nR;

        // Reference spokes of every bright reference, sorted by length.
        std::vector<std::vector<Spoke>> refSpokes(nR);
        for (std::size_t r = 0; r < nR; ++r) {
            if (!refs[r].allFinite()) continue;
            refSpokes[r] = spokesFrom(refs, r, nR, config.minSpokeLengthArcsec);
            std::sort(refSpokes[r].begin(), refSpokes[r].end(), [](const Spoke& a, const Spoke& b) { return a.length < b.length; });
        }

        // Grids: the bright references (pass 1) and all references (passes 2, 3).
        const std::vector<Eigen::Vector2d> brightRefs(refs.begin(), refs.begin() + long(nR));
        double sourceExtent = 0.0;
        for (const auto& p : sources)
            if (p.allFinite()) sourceExtent = std::max(sourceExtent, p.norm());
        const double pass1MaxRadius = tol + scaleTol * 2.0 * sourceExtent + config.matchRadiusArcsec;
        const PointGrid brightGrid(brightRefs, pass1MaxRadius);

        auto verify = [&](const AffineTransform2& start, std::size_t centre, std::size_t patternSize, Solution& out) -> bool {
            // Pass 1: bright lists, radius growing with the distance from the pattern centre.
            std::vector<Eigen::Vector2d> brightPred(nS);
            std::vector<double> radii(nS);
            for (std::size_t i = 0; i < nS; ++i) {
                brightPred[i] = start(sources[i]);
                radii[i] = sources[i].allFinite() ? tol + scaleTol * (sources[i] - sources[centre]).norm() : 0.0;
            }
            AffineTransform2 t = start;
            auto pairs = matchNearest(brightPred, brightGrid, pass1MaxRadius, radii);
            if (pairs.size() >= 3) {
                AffineTransform2 fitted;
                if (fitAffineClipped(sources, brightRefs, pairs, tol, fitted)) t = fitted;
            }
            // Cheap gate before all points are tried: two bright stars beyond the pattern itself must agree (or as
            // many as a solution needs, when the pattern already spans that many).
            for (std::size_t i = 0; i < nS; ++i) brightPred[i] = t(sources[i]);
            const double gate = std::min(double(patternSize + 2), threshold);
            if (double(matchNearest(brightPred, brightGrid, 2.0 * config.matchRadiusArcsec).size()) < gate) return false;
            // Passes 2 and 3: all points.
            for (double radius : {2.0 * config.matchRadiusArcsec, config.matchRadiusArcsec}) {
                for (std::size_t i = 0; i < sources.size(); ++i) predicted[i] = t(sources[i]);
                pairs = matchNearest(predicted, refGrid, radius);
                if (double(pairs.size()) < threshold) return false;
                AffineTransform2 fitted;
                if (!fitAffineClipped(sources, refs, pairs, 0.5 * radius, fitted)) return false;
                t = fitted;
            }
            for (std::size_t i = 0; i < sources.size(); ++i) predicted[i] = t(sources[i]);
            pairs = matchNearest(predicted, refGrid, config.matchRadiusArcsec);
            if (double(pairs.size()) < threshold) return false;
            out.transform = t;
            out.matches = std::move(pairs);
            out.confirmations = 1;
            return true;
        };

        std::vector<SpokeMatch> cand;
        std::vector<char> used(nS, 0);
        bool done = false;
        for (std::size_t s = 0; s < nS && !done; ++s) {
            if (!sources[s].allFinite()) continue;
            const std::vector<Spoke> srcSpokes = spokesFrom(sources, s, nS, config.minSpokeLengthArcsec);
            if (srcSpokes.size() < std::size_t(config.minPatternSpokes)) continue;
            const double reach = config.maxOffsetArcsec + (maxRot + scaleTol) * sources[s].norm() + tol;
            for (std::size_t r = 0; r < nR && !done; ++r) {
                if (!refs[r].allFinite() || (refs[r] - sources[s]).norm() > reach) continue;
                const auto& rs = refSpokes[r];
                cand.clear();
                for (const Spoke& sp : srcSpokes) {
                    const double tolLen = tol + scaleTol * sp.length;
                    const double tolAngle = tolLen / sp.length;
                    auto it = std::lower_bound(rs.begin(), rs.end(), sp.length - tolLen,
                                               [](const Spoke& a, double v) { return a.length < v; });
                    for (; it != rs.end() && it->length <= sp.length + tolLen; ++it) {
                        const double d = std::remainder(it->angle - sp.angle, 2.0 * kPi);
                        if (std::fabs(d) <= maxRot + tolAngle) cand.push_back({d, tolAngle, sp.end, it->end});
                    }
                }
                if (cand.size() < std::size_t(config.minPatternSpokes)) continue;
                // The largest rotation-consistent set with distinct source spokes (and distinct reference ends).
                std::size_t bestCount = 0, bestAnchor = 0;
                for (std::size_t a = 0; a < cand.size(); ++a) {
                    std::fill(used.begin(), used.end(), 0);
                    std::size_t count = 0;
                    for (const auto& c : cand) {
                        if (std::fabs(c.dAngle - cand[a].dAngle) > c.tolerance + cand[a].tolerance) continue;
                        if (!used[c.sourceEnd]) {
                            used[c.sourceEnd] = 1;
                            ++count;
                        }
                    }
                    if (count > bestCount) {
                        bestCount = count;
                        bestAnchor = a;
                    }
                }
                if (bestCount < std::size_t(config.minPatternSpokes)) continue;
                // Pattern pairs: the centre, and for each source spoke the member closest in rotation to the anchor.
                const double anchor = cand[bestAnchor].dAngle, anchorTol = cand[bestAnchor].tolerance;
                std::vector<std::pair<std::size_t, std::size_t>> pat{{s, r}};
                std::vector<double> bestDiff(nS, 1e300);
                std::vector<long> bestRef(nS, -1);
                for (const auto& c : cand) {
                    const double diff = std::fabs(c.dAngle - anchor);
                    if (diff > c.tolerance + anchorTol) continue;
                    if (diff < bestDiff[c.sourceEnd]) {
                        bestDiff[c.sourceEnd] = diff;
                        bestRef[c.sourceEnd] = long(c.refEnd);
                    }
                }
                for (std::size_t j = 0; j < nS; ++j)
                    if (bestRef[j] >= 0) pat.emplace_back(j, std::size_t(bestRef[j]));
                // Rotation + shift fitted to the pattern points.
                Eigen::Vector2d ms = Eigen::Vector2d::Zero(), mr = Eigen::Vector2d::Zero();
                for (const auto& [i, j] : pat) {
                    ms += sources[i];
                    mr += refs[j];
                }
                ms /= double(pat.size());
                mr /= double(pat.size());
                double sDot = 0.0, sCross = 0.0;
                for (const auto& [i, j] : pat) {
                    const Eigen::Vector2d a = sources[i] - ms, b = refs[j] - mr;
                    sDot += a.dot(b);
                    sCross += a.x() * b.y() - a.y() * b.x();
                }
                const double theta = std::atan2(sCross, sDot);
                AffineTransform2 start;
                start.linear = rotationMatrix(theta);
                start.shift = mr - start.linear * ms;
                if (std::fabs(theta) > maxRot + tol / std::max(sourceExtent, 1.0) ||
                    start.shift.norm() > config.maxOffsetArcsec + tol)
                    continue;
                ++candidates;
                // Does an accepted solution already explain this pattern?
                bool confirmed = false;
                for (std::size_t k = 0; k < solutions.size() && !confirmed; ++k) {
                    std::size_t agree = 0;
                    for (const auto& [i, j] : pat)
                        if ((solutions[k].transform(sources[i]) - refs[j]).norm() <= 2.0 * config.matchRadiusArcsec) ++agree;
                    const bool centreAgrees =
                        (solutions[k].transform(sources[s]) - refs[r]).norm() <= 2.0 * config.matchRadiusArcsec;
                    if (centreAgrees && agree >= std::min(pat.size(), std::size_t(config.minPatternSpokes) + 1)) {
                        confirmed = true;
                        ++solutions[k].confirmations;
                    }
                }
                if (!confirmed) {
                    Solution sol;
                    if (verify(start, s, pat.size(), sol)) {
                        solutions.push_back(std::move(sol));
                        if (best < 0 || solutions.back().matches.size() > solutions[std::size_t(best)].matches.size())
                            best = long(solutions.size()) - 1;
                    }
                }
                if (best >= 0 && solutions[std::size_t(best)].confirmations >= config.confirmations) done = true;
            }
        }
    }
    if (best < 0) {
        std::ostringstream os;
        os << "pattern matching found no solution: " << candidates << " candidate patterns from the " << nSUsed
           << " brightest of " << nSourcesFinite << " sources and " << nRUsed << " brightest of " << nRefsFinite
           << " reference stars, none verified with >= " << threshold << " matches within " << config.matchRadiusArcsec
           << " arcsec (offsets searched up to " << config.maxOffsetArcsec << " arcsec, rotations up to "
           << config.maxRotationDeg << " deg)";
        throw NumericalError(os.str());
    }
    PatternMatchResult result;
    const Solution& sol = solutions[std::size_t(best)];
    result.transform = sol.transform;
    result.matches = sol.matches;
    result.expectedRandomMatches = mu;
    result.confirmations = sol.confirmations;
    result.candidates = candidates;
    return result;
}

}  // namespace drp
