#include "stages/calibrate/FewStarMatcher.h"

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
    calibrate_detail::checkConfigRange("FewStarMatchConfig", name, value, lo, hi, openLow);
}

struct RefSpoke {
    double length;
    double angle;  // atan2(north, east), radians
    std::size_t end;
};

struct Candidate {
    AffineTransform2 transform;
    std::vector<PointPair> matches;
    double rms = 0.0;
};

/// The larger displacement of a field point between two transforms, over the used sources.
double maxDisagreement(const AffineTransform2& t1, const AffineTransform2& t2, const std::vector<Eigen::Vector2d>& pts) {
    double d = 0.0;
    for (const auto& p : pts) d = std::max(d, (t1(p) - t2(p)).norm());
    return d;
}

bool better(const Candidate& a, const Candidate& b) {
    if (a.matches.size() != b.matches.size()) return a.matches.size() > b.matches.size();
    return a.rms < b.rms;
}

}  // namespace

void FewStarMatchConfig::validate() const {
    checkRange("maxOffsetArcsec", maxOffsetArcsec, 0.0, 3600.0, true);
    checkRange("maxRotationDeg", maxRotationDeg, 0.0, 45.0);
    checkRange("scaleTolerance", scaleTolerance, 0.0, 0.2);
    checkRange("matchRadiusArcsec", matchRadiusArcsec, 0.0, 60.0, true);
    checkRange("minBaselineArcsec", minBaselineArcsec, 0.0, 3600.0);
    checkRange("maxSources", maxSources, 2, 1000);
    checkRange("maxRefs", maxRefs, 2, 5000);
    checkRange("minMatches", minMatches, 3, 1000);
    checkRange("maxFalseSolutions", maxFalseSolutions, 0.0, 0.1, true);
}

double fewStarFalseSolutions(double hypothesesExpected, int nSources, double p, int k) {
    const int trials = nSources - 2, need = k - 2;
    if (need <= 0) return hypothesesExpected;
    if (need > trials) return 0.0;
    p = std::clamp(p, 0.0, 1.0);
    if (p == 0.0) return 0.0;
    if (p == 1.0) return hypothesesExpected;
    double tail = 0.0;
    for (int j = need; j <= trials; ++j)
        tail += std::exp(std::lgamma(trials + 1.0) - std::lgamma(j + 1.0) - std::lgamma(trials - j + 1.0) +
                         j * std::log(p) + (trials - j) * std::log1p(-p));
    return hypothesesExpected * std::min(tail, 1.0);
}

FewStarMatchResult matchFewStars(const std::vector<Eigen::Vector2d>& sources, const std::vector<Eigen::Vector2d>& refs,
                                 const FewStarMatchConfig& config) {
    config.validate();
    // The brightest finite points (the lists are brightest first).
    std::vector<std::size_t> sIdx, rIdx;
    for (std::size_t i = 0; i < sources.size() && sIdx.size() < std::size_t(config.maxSources); ++i)
        if (sources[i].allFinite()) sIdx.push_back(i);
    for (std::size_t j = 0; j < refs.size() && rIdx.size() < std::size_t(config.maxRefs); ++j)
        if (refs[j].allFinite()) rIdx.push_back(j);
    const std::size_t minMatches = std::size_t(config.minMatches);
    if (sIdx.size() < minMatches || rIdx.size() < minMatches) {
        std::ostringstream os;
        os << "few-star matching: too few points for a solution (" << sIdx.size() << " sources, " << rIdx.size()
           << " reference stars; at least minMatches = " << minMatches << " of each are needed)";
        throw NumericalError(os.str());
    }
    std::vector<Eigen::Vector2d> sp(sIdx.size()), rp(rIdx.size());
    for (std::size_t k = 0; k < sIdx.size(); ++k) sp[k] = sources[sIdx[k]];
    for (std::size_t k = 0; k < rIdx.size(); ++k) rp[k] = refs[rIdx[k]];
    const std::size_t nS = sp.size(), nR = rp.size();

    const double r = config.matchRadiusArcsec, scaleTol = config.scaleTolerance;
    const double maxRot = config.maxRotationDeg * kRadPerDeg;
    Eigen::Vector2d lo = rp[0], hi = rp[0];
    for (const auto& p : rp) {
        lo = lo.cwiseMin(p);
        hi = hi.cwiseMax(p);
    }
    const double area = std::max((hi - lo).prod(), 1.0);
    const double rho = double(nR) / area;
    const double pChance = std::min(1.0, rho * kPi * r * r);

    // Reference spokes, sorted by length.
    std::vector<std::vector<RefSpoke>> spokes(nR);
    for (std::size_t a = 0; a < nR; ++a) {
        for (std::size_t b = 0; b < nR; ++b) {
            if (a == b) continue;
            const Eigen::Vector2d d = rp[b] - rp[a];
            spokes[a].push_back({d.norm(), std::atan2(d.y(), d.x()), b});
        }
        std::sort(spokes[a].begin(), spokes[a].end(), [](const RefSpoke& x, const RefSpoke& y) { return x.length < y.length; });
    }
    const PointGrid grid(rp, r);

    double hExpected = 0.0;
    int hypotheses = 0;
    std::vector<Candidate> solutions;
    std::vector<Eigen::Vector2d> pred(nS);
    for (std::size_t s1 = 0; s1 < nS; ++s1) {
        const double reach = config.maxOffsetArcsec + (maxRot + scaleTol) * sp[s1].norm() + r;
        const double refsInReach = std::min(double(nR), rho * kPi * reach * reach);
        for (std::size_t s2 = 0; s2 < nS; ++s2) {
            if (s2 == s1) continue;
            const Eigen::Vector2d dS = sp[s2] - sp[s1];
            const double len = dS.norm();
            if (len < config.minBaselineArcsec || len == 0.0) continue;
            const double tolL = r + scaleTol * len, tolAngle = maxRot + tolL / len;
            hExpected += refsInReach * std::min(double(nR), rho * 4.0 * tolL * (maxRot * len + tolL));
            const double angS = std::atan2(dS.y(), dS.x());
            for (std::size_t r1 = 0; r1 < nR; ++r1) {
                if ((rp[r1] - sp[s1]).norm() > reach) continue;
                const auto& rs = spokes[r1];
                auto it = std::lower_bound(rs.begin(), rs.end(), len - tolL,
                                           [](const RefSpoke& a, double v) { return a.length < v; });
                for (; it != rs.end() && it->length <= len + tolL; ++it) {
                    if (std::fabs(std::remainder(it->angle - angS, 2.0 * kPi)) > tolAngle) continue;
                    // The similarity s1 -> r1, s2 -> r2.
                    const Eigen::Vector2d dR = rp[it->end] - rp[r1];
                    const double a = dS.dot(dR) / (len * len), b = (dS.x() * dR.y() - dS.y() * dR.x()) / (len * len);
                    AffineTransform2 t;
                    t.linear << a, -b, b, a;
                    t.shift = rp[r1] - t.linear * sp[s1];
                    if (std::fabs(std::hypot(a, b) - 1.0) > scaleTol + tolL / len ||
                        std::fabs(std::atan2(b, a)) > tolAngle || t.shift.norm() > config.maxOffsetArcsec + r)
                        continue;
                    ++hypotheses;
                    // Quick count before the one-to-one matching and refits.
                    std::size_t count = 0;
                    for (std::size_t i = 0; i < nS; ++i) count += grid.nearest(t(sp[i]), r) >= 0;
                    if (count < minMatches) continue;
                    Candidate c;
                    c.transform = t;
                    for (int round = 0; round < 3; ++round) {
                        for (std::size_t i = 0; i < nS; ++i) pred[i] = c.transform(sp[i]);
                        c.matches = matchNearest(pred, grid, r);
                        if (round == 2 || c.matches.size() < 2) break;
                        AffineTransform2 refit;
                        if (!fitSimilarity(sp, rp, c.matches, refit)) break;
                        c.transform = refit;
                    }
                    if (c.matches.size() < minMatches) continue;
                    double sum2 = 0.0;
                    for (const auto& m : c.matches) sum2 += m.distance * m.distance;
                    c.rms = std::sqrt(sum2 / double(c.matches.size()));
                    bool merged = false;
                    for (auto& s : solutions) {
                        if (maxDisagreement(s.transform, c.transform, sp) <= 2.0 * r) {
                            if (better(c, s)) s = c;
                            merged = true;
                            break;
                        }
                    }
                    if (!merged) solutions.push_back(std::move(c));
                }
            }
        }
    }

    // The matches needed for E(k) <= maxFalseSolutions.
    std::size_t needed = minMatches;
    while (needed <= nS && fewStarFalseSolutions(hExpected, int(nS), pChance, int(needed)) > config.maxFalseSolutions)
        ++needed;
    FewStarMatchResult result;
    result.hypothesesExpected = hExpected;
    result.chanceMatchProbability = pChance;
    result.hypotheses = hypotheses;
    result.sourcesUsed = int(nS);
    result.refsUsed = int(nR);
    long best = -1;
    for (std::size_t k = 0; k < solutions.size(); ++k)
        if (best < 0 || better(solutions[k], solutions[std::size_t(best)])) best = long(k);
    std::size_t runnerUp = 0;
    if (best >= 0)
        for (std::size_t k = 0; k < solutions.size(); ++k)
            if (long(k) != best &&
                maxDisagreement(solutions[k].transform, solutions[std::size_t(best)].transform, sp) > 2.0 * r)
                runnerUp = std::max(runnerUp, solutions[k].matches.size());
    const std::size_t bestK = best >= 0 ? solutions[std::size_t(best)].matches.size() : 0;
    if (best < 0 || bestK < needed || runnerUp >= bestK) {
        std::ostringstream os;
        os << "few-star matching found no solution: " << hypotheses << " hypotheses from the " << nS
           << " brightest sources and " << nR << " brightest reference stars; ";
        if (best < 0)
            os << "none matched >= " << minMatches << " sources within " << r << " arcsec";
        else if (runnerUp >= bestK)
            os << "ambiguous: two different solutions match " << bestK << " sources within " << r << " arcsec";
        else
            os << "the best matched " << bestK << " sources within " << r << " arcsec, but " << needed
               << " are needed for a false-solution probability <= " << config.maxFalseSolutions << " (E(" << bestK
               << ") = " << fewStarFalseSolutions(hExpected, int(nS), pChance, int(bestK)) << ")";
        os << " (hypotheses expected from unrelated lists H = " << hExpected << ", chance-match probability p = "
           << pChance << ")";
        throw NumericalError(os.str());
    }
    const Candidate& sol = solutions[std::size_t(best)];
    result.transform = sol.transform;
    result.falseSolutionsExpected = fewStarFalseSolutions(hExpected, int(nS), pChance, int(bestK));
    result.runnerUpMatches = int(runnerUp);
    for (const auto& m : sol.matches) result.matches.push_back({sIdx[m.a], rIdx[m.b], m.distance});
    return result;
}

}  // namespace drp
