#include "stages/calibrate/Astrometry.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <numeric>
#include <sstream>
#include <string>

#include "core/Error.h"
#include "stages/calibrate/ConfigRange.h"
#include "stages/calibrate/PointMatcher.h"
#include "stages/calibrate/TanSipFitter.h"
#include "stages/calibrate/TangentPlane.h"

namespace drp {

namespace {

constexpr double kRadPerDeg = std::numbers::pi / 180.0;

template <typename T>
void checkRange(const char* name, T value, T lo, T hi, bool openLow = false) {
    calibrate_detail::checkConfigRange("AstrometryConfig", name, value, lo, hi, openLow);
}

double finiteOr(double v, double fallback) { return std::isfinite(v) ? v : fallback; }

double medianOf(std::vector<double> v) {
    if (v.empty()) return 0.0;
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + long(mid), v.end());
    double m = v[mid];
    if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + long(mid)));
    return m;
}

/// Largest SIP order <= requested with at least 3 matches per coefficient (0: TAN only).
int effectiveSipOrder(int requested, std::size_t nMatches) {
    for (int o = requested; o >= 2; --o)
        if (std::size_t(3 * polynomialTermCount(o)) <= nMatches) return o;
    return 0;
}

}  // namespace

const char* toString(AstrometryFitModel model) {
    switch (model) {
        case AstrometryFitModel::TanSip: return "tan-sip";
        case AstrometryFitModel::Tan: return "tan";
        case AstrometryFitModel::TanRadial: return "tan-radial";
        case AstrometryFitModel::HeaderAffine: return "header-affine";
        case AstrometryFitModel::HeaderSimilarity: return "header-similarity";
    }
    return "unknown";
}

void AstrometryConfig::validate() const {
    checkRange("maxOffsetArcsec", maxOffsetArcsec, 0.0, 3600.0, true);
    checkRange("maxRotationDeg", maxRotationDeg, 0.0, 45.0);
    checkRange("numBrightestSources", numBrightestSources, 3, 5000);
    checkRange("numBrightestRefs", numBrightestRefs, 3, 5000);
    checkRange("patternToleranceArcsec", patternToleranceArcsec, 0.0, 60.0, true);
    checkRange("patternScaleTolerance", patternScaleTolerance, 0.0, 0.2);
    checkRange("minPatternSpokes", minPatternSpokes, 2, 100);
    checkRange("patternAttempts", patternAttempts, 1, 10);
    checkRange("patternMinMatchFraction", patternMinMatchFraction, 0.0, 1.0);
    checkRange("matchRadiusArcsec", matchRadiusArcsec, 0.0, 60.0, true);
    checkRange("matchRadiusMinArcsec", matchRadiusMinArcsec, 0.0, matchRadiusArcsec, true);
    checkRange("matchRadiusRmsFactor", matchRadiusRmsFactor, 1.0, 100.0);
    checkRange("sipOrder", sipOrder, 0, Wcs::maxSipOrder);
    checkRange("inverseSipOrder", inverseSipOrder, 1, Wcs::maxSipOrder);
    checkRange("fitIterations", fitIterations, 1, 100);
    checkRange("clipIterations", clipIterations, 0, 100);
    checkRange("rejectSigma", rejectSigma, 1.0, 100.0, true);
    checkRange("errorFloorMas", errorFloorMas, 0.0, 1000.0);
    checkRange("minMatches", minMatches, 3, 1000000);
    checkRange("fewStarMinMatches", fewStarMinMatches, 3, minMatches);
    checkRange("fewStarMatchRadiusArcsec", fewStarMatchRadiusArcsec, 0.0, matchRadiusArcsec, true);
    checkRange("fewStarMaxSources", fewStarMaxSources, 3, 1000);
    checkRange("fewStarMaxRefs", fewStarMaxRefs, 3, 5000);
    checkRange("fewStarMaxFalseSolutions", fewStarMaxFalseSolutions, 0.0, 0.1, true);
    checkRange("affineMinMatches", affineMinMatches, 3, 1000000);
    checkRange("radialMinF", radialMinF, 0.0, 1e6);
}

PatternMatchConfig AstrometryConfig::patternConfig() const {
    PatternMatchConfig p;
    p.maxOffsetArcsec = maxOffsetArcsec;
    p.maxRotationDeg = maxRotationDeg;
    p.numBrightestSources = numBrightestSources;
    p.numBrightestRefs = numBrightestRefs;
    p.spokeToleranceArcsec = patternToleranceArcsec;
    p.scaleTolerance = patternScaleTolerance;
    p.minPatternSpokes = minPatternSpokes;
    p.patternAttempts = patternAttempts;
    p.minMatchFraction = patternMinMatchFraction;
    p.matchRadiusArcsec = matchRadiusArcsec;
    p.minMatches = minMatches;
    return p;
}

FewStarMatchConfig AstrometryConfig::fewStarConfig() const {
    FewStarMatchConfig f;
    f.maxOffsetArcsec = maxOffsetArcsec;
    f.maxRotationDeg = maxRotationDeg;
    f.scaleTolerance = patternScaleTolerance;
    f.matchRadiusArcsec = fewStarMatchRadiusArcsec;
    f.maxSources = fewStarMaxSources;
    f.maxRefs = fewStarMaxRefs;
    f.minMatches = fewStarMinMatches;
    f.maxFalseSolutions = fewStarMaxFalseSolutions;
    return f;
}

AstrometryResult fitAstrometry(const std::vector<AstrometrySource>& sources, const std::vector<AstrometryRef>& refs,
                               const Wcs& initialWcs, const Box2I& bbox, const AstrometryConfig& config) {
    config.validate();
    if (bbox.empty()) throw InvalidInputError("astrometry: the detector bounding box is empty");
    const Point2D centre{0.5 * (bbox.minX() + bbox.maxX()), 0.5 * (bbox.minY() + bbox.maxY())};
    const SpherePoint centreSky = initialWcs.pixelToSky(centre);
    const TangentPlane tp0(centreSky);
    const double pixelScaleArcsec = initialWcs.pixelScale(centre).asArcseconds();

    // The fewest matches any solution needs.
    const int minNeeded = config.fewStarEnabled ? config.fewStarMinMatches : config.minMatches;
    const char* minNeededName = config.fewStarEnabled ? "fewStarMinMatches" : "minMatches";

    // Usable sources, brightest first.
    std::vector<std::size_t> srcIdx;
    for (std::size_t i = 0; i < sources.size(); ++i)
        if (std::isfinite(sources[i].position.x) && std::isfinite(sources[i].position.y)) srcIdx.push_back(i);
    if (srcIdx.size() < std::size_t(minNeeded)) {
        std::ostringstream os;
        os << "astrometry: only " << srcIdx.size() << " usable sources (of " << sources.size()
           << " given); at least " << minNeededName << " = " << minNeeded
           << " are needed: too few stars for an astrometric solution";
        throw NumericalError(os.str());
    }
    auto fluxKey = [&](std::size_t i) { return std::isfinite(sources[i].flux) ? sources[i].flux : -1e300; };
    std::stable_sort(srcIdx.begin(), srcIdx.end(), [&](std::size_t a, std::size_t b) { return fluxKey(a) > fluxKey(b); });

    // Reference stars inside the detector grown by the searched offset and rotation (initial WCS pixels).
    const double halfDiagArcsec = 0.5 * std::hypot(double(bbox.width()), double(bbox.height())) * pixelScaleArcsec;
    const double marginPx = (config.maxOffsetArcsec + config.maxRotationDeg * kRadPerDeg * halfDiagArcsec +
                             config.matchRadiusArcsec) / pixelScaleArcsec;
    const Box2D searchBox({bbox.minX() - 0.5 - marginPx, bbox.minY() - 0.5 - marginPx},
                          {bbox.maxX() + 0.5 + marginPx, bbox.maxY() + 0.5 + marginPx});
    std::vector<std::size_t> refIdx;
    for (std::size_t j = 0; j < refs.size(); ++j) {
        if (tp0.projectDegrees(refs[j].position).hasNaN()) continue;
        const Point2D p = initialWcs.skyToPixel(refs[j].position);
        if (std::isfinite(p.x) && std::isfinite(p.y) && searchBox.contains(p)) refIdx.push_back(j);
    }
    if (refIdx.size() < std::size_t(minNeeded)) {
        std::ostringstream os;
        os << "astrometry: only " << refIdx.size() << " reference stars (of " << refs.size()
           << " given) in the searched area around the detector; at least " << minNeededName << " = " << minNeeded
           << " are needed";
        throw NumericalError(os.str());
    }
    auto magKey = [&](std::size_t j) { return std::isfinite(refs[j].mag) ? refs[j].mag : 1e300; };
    std::stable_sort(refIdx.begin(), refIdx.end(), [&](std::size_t a, std::size_t b) { return magKey(a) < magKey(b); });

    const std::size_t nSrc = srcIdx.size(), nRef = refIdx.size();
    std::vector<Point2D> srcPix(nSrc);
    std::vector<Eigen::Vector2d> srcTan(nSrc), refTan(nRef);
    std::vector<double> srcVarMas2(nSrc), refVarMas2(nRef);
    const double pixelScaleMas = pixelScaleArcsec * 1000.0;
    for (std::size_t k = 0; k < nSrc; ++k) {
        const AstrometrySource& s = sources[srcIdx[k]];
        srcPix[k] = s.position;
        srcTan[k] = tp0.projectArcsec(initialWcs.pixelToSky(s.position));
        const double ex = std::fabs(finiteOr(s.xErr, 0.0)), ey = std::fabs(finiteOr(s.yErr, 0.0));
        srcVarMas2[k] = pixelScaleMas * pixelScaleMas * 0.5 * (ex * ex + ey * ey);
    }
    for (std::size_t k = 0; k < nRef; ++k) {
        const AstrometryRef& r = refs[refIdx[k]];
        refTan[k] = tp0.projectArcsec(r.position);
        const double e = std::fabs(finiteOr(r.errMas, 0.0));
        refVarMas2[k] = e * e;
    }

    // 1. Pattern matching; the few-star matcher when the pattern matcher has too few points or no solution.
    AstrometryResult result;
    AffineTransform2 patternTransform;
    std::string patternFailure;
    const std::size_t patternNeeded = std::size_t(std::max(config.minPatternSpokes + 1, config.minMatches));
    if (nSrc >= patternNeeded && nRef >= patternNeeded) {
        try {
            const PatternMatchResult pattern = matchPatterns(srcTan, refTan, config.patternConfig());
            patternTransform = pattern.transform;
            result.patternConfirmations = pattern.confirmations;
        } catch (const NumericalError& e) {
            if (!config.fewStarEnabled) throw NumericalError("astrometry: " + e.message());
            patternFailure = e.message();
        }
    } else {
        std::ostringstream os;
        os << "too few points for pattern matching (" << nSrc << " sources, " << nRef << " reference stars; "
           << patternNeeded << " of each are needed)";
        patternFailure = os.str();
    }
    if (!patternFailure.empty()) {
        try {
            const FewStarMatchResult few = matchFewStars(srcTan, refTan, config.fewStarConfig());
            patternTransform = few.transform;
            result.fewStars = true;
            result.falseSolutionsExpected = few.falseSolutionsExpected;
        } catch (const NumericalError& e) {
            throw NumericalError("astrometry: " + patternFailure + "; " + e.message());
        }
    }
    const std::size_t required = std::size_t(result.fewStars ? config.fewStarMinMatches : config.minMatches);
    const Eigen::Vector2d patternShift = patternTransform.shift;
    result.offsetArcsec = {patternShift.x(), patternShift.y()};
    result.rotationDeg = -patternTransform.rotation() / kRadPerDeg;

    // 2. Match, fit, clip.

    const PointGrid refGrid(refTan, config.matchRadiusArcsec);
    std::vector<Eigen::Vector2d> predicted(nSrc);
    std::shared_ptr<const Wcs> wcs;
    double radius = result.fewStars ? config.fewStarMatchRadiusArcsec : config.matchRadiusArcsec;
    AstrometryFitModel model = AstrometryFitModel::TanSip;
    std::vector<PointPair> pairs, kept;
    std::vector<double> residMas;  // |residual| per pair of `pairs`, for the current fit
    const double floor2 = config.errorFloorMas * config.errorFloorMas;
    int order = 0;

    for (int iter = 0; iter < config.fitIterations; ++iter) {
        for (std::size_t k = 0; k < nSrc; ++k)
            predicted[k] = wcs ? tp0.projectArcsec(wcs->pixelToSky(srcPix[k])) : patternTransform(srcTan[k]);
        pairs = matchNearest(predicted, refGrid, radius);
        if (pairs.size() < required) {
            std::ostringstream os;
            os << "astrometry: only " << pairs.size() << " matches within " << radius << " arcsec in fit iteration "
               << iter << " (" << (result.fewStars ? "fewStarMinMatches" : "minMatches") << " = " << required << ")";
            throw NumericalError(os.str());
        }
        const SpherePoint crvalGuess = wcs ? wcs->crval() : tp0.deprojectArcsec(patternShift);
        kept = pairs;
        std::vector<double> sigma(pairs.size());
        for (std::size_t m = 0; m < pairs.size(); ++m)
            sigma[m] = std::sqrt(srcVarMas2[pairs[m].a] + refVarMas2[pairs[m].b] + floor2);
        std::vector<char> keep(pairs.size(), 1);
        // Fit the model chosen from the number of pairs kept (header comment, step 3).
        auto fitKept = [&](const std::vector<char>& use, AstrometryFitModel& usedModel, int& usedOrder) {
            std::vector<Point2D> pix;
            std::vector<SpherePoint> sky;
            std::vector<double> w;
            for (std::size_t m = 0; m < pairs.size(); ++m) {
                if (!use[m]) continue;
                pix.push_back(srcPix[pairs[m].a]);
                sky.push_back(refs[refIdx[pairs[m].b]].position);
                w.push_back(sigma[m] > 0.0 ? 1.0 / (sigma[m] * sigma[m]) : 1.0);
            }
            usedOrder = effectiveSipOrder(config.sipOrder, pix.size());
            if (usedOrder >= 2) {
                usedModel = AstrometryFitModel::TanSip;
                return fitTanSip(pix, sky, w, centre, crvalGuess, usedOrder);
            }
            if (pix.size() >= std::size_t(config.affineMinMatches) && !initialWcs.hasSip()) {
                auto tan = fitTanSip(pix, sky, w, centre, crvalGuess, 0);
                usedModel = AstrometryFitModel::Tan;
                if (!config.radialDistortion || config.sipOrder < 3) return tan;
                std::shared_ptr<const Wcs> radial;
                try {
                    radial = fitTanRadial(pix, sky, w, initialWcs.crpix(), crvalGuess);
                } catch (const NumericalError&) {
                    return tan;  // degenerate for the radial term
                }
                // F test of the one extra parameter: chi^2 (weighted, arcsec^2) of both fits.
                auto chi2 = [&](const Wcs& candidate) {
                    double c = 0.0;
                    for (std::size_t i = 0; i < pix.size(); ++i)
                        c += w[i] * TangentPlane(sky[i]).projectArcsec(candidate.pixelToSky(pix[i])).squaredNorm();
                    return c;
                };
                const double cTan = chi2(*tan), cRadial = chi2(*radial);
                const double dof = 2.0 * double(pix.size()) - 7.0;
                if (cTan - cRadial > config.radialMinF * cRadial / dof) {
                    usedModel = AstrometryFitModel::TanRadial;
                    return radial;
                }
                return tan;
            }
            if (pix.size() >= std::size_t(config.affineMinMatches)) {
                usedModel = AstrometryFitModel::HeaderAffine;
                return fitWcsCorrection(initialWcs, pix, sky, w, WcsCorrection::Affine);
            }
            usedModel = AstrometryFitModel::HeaderSimilarity;
            return fitWcsCorrection(initialWcs, pix, sky, w, WcsCorrection::Similarity);
        };
        auto residualMas = [&](const Wcs& w, std::size_t m) {
            return ((refTan[pairs[m].b] - tp0.projectArcsec(w.pixelToSky(srcPix[pairs[m].a]))) * 1000.0).eval();
        };
        // Few-star regime: the normalised residuals of a handful of matches say little (a low-order model
        // leaves systematic residuals), so a chance match is found by leaving each match out in turn: the worst
        // is rejected while its left-out residual exceeds max(rejectSigma x the rms of the others,
        // matchRadiusMinArcsec) and more than `required` matches remain.
        if (result.fewStars) {
            std::size_t nKeep = pairs.size();
            while (nKeep > required && nKeep < std::size_t(config.minMatches)) {
                double worstExcess = 0.0;
                long worst = -1;
                for (std::size_t m = 0; m < pairs.size(); ++m) {
                    if (!keep[m]) continue;
                    std::vector<char> without = keep;
                    without[m] = 0;
                    AstrometryFitModel mm;
                    int oo = 0;
                    std::shared_ptr<const Wcs> loo;
                    try {
                        loo = fitKept(without, mm, oo);
                    } catch (const NumericalError&) {
                        continue;
                    }
                    double sum2 = 0.0;
                    for (std::size_t q = 0; q < pairs.size(); ++q)
                        if (without[q]) sum2 += residualMas(*loo, q).squaredNorm();
                    const double rmsOthers = std::sqrt(sum2 / double(nKeep - 1));
                    const double limit = std::max(config.rejectSigma * rmsOthers, 1000.0 * config.matchRadiusMinArcsec);
                    const double excess = residualMas(*loo, m).norm() / limit;
                    if (excess > 1.0 && excess > worstExcess) {
                        worstExcess = excess;
                        worst = long(m);
                    }
                }
                if (worst < 0) break;
                keep[std::size_t(worst)] = 0;
                --nKeep;
            }
        }
        std::shared_ptr<const Wcs> fitted;
        for (int round = 0;; ++round) {
            fitted = fitKept(keep, model, order);
            residMas.assign(pairs.size(), 0.0);
            std::vector<double> z2Kept;
            for (std::size_t m = 0; m < pairs.size(); ++m) {
                const Eigen::Vector2d d = residualMas(*fitted, m);
                residMas[m] = d.norm();
                if (keep[m]) z2Kept.push_back(d.squaredNorm() / (sigma[m] * sigma[m]));
            }
            if (round >= config.clipIterations) break;
            // Robust per-axis scale of the normalised residuals (the median of chi^2 with 2 dof is 2 ln 2), never
            // below 1: residuals far below the stated errors (noiseless data) are not clipped on their shape.
            const double scale = std::max(1.0, std::sqrt(medianOf(z2Kept) / (2.0 * std::log(2.0))));
            if (!std::isfinite(scale)) break;
            std::vector<char> next(pairs.size(), 0);
            std::size_t nNext = 0;
            for (std::size_t m = 0; m < pairs.size(); ++m) {
                next[m] = residMas[m] <= config.rejectSigma * scale * sigma[m];
                nNext += std::size_t(next[m]);
            }
            if (next == keep || nNext < required) break;
            keep.swap(next);
        }
        wcs = fitted;
        kept.clear();
        double sum2 = 0.0;
        std::vector<double> keptResid;
        for (std::size_t m = 0; m < pairs.size(); ++m) {
            if (!keep[m]) continue;
            kept.push_back(pairs[m]);
            sum2 += residMas[m] * residMas[m];
            keptResid.push_back(residMas[m]);
        }
        result.rmsResidualMas = std::sqrt(sum2 / double(kept.size()));
        result.medianResidualMas = medianOf(keptResid);
        result.nRejected = int(pairs.size() - kept.size());
        result.finalMatchRadiusArcsec = radius;
        radius = std::max(config.matchRadiusMinArcsec,
                          std::min(radius, config.matchRadiusRmsFactor * result.rmsResidualMas / 1000.0));
    }

    // 3. Output.
    result.fitModel = model;
    result.sipOrder = wcs->hasSip() ? wcs->sip()->order : 0;
    result.nMatches = int(kept.size());
    result.matches.reserve(kept.size());
    for (const auto& p : kept) {
        const std::size_t si = srcIdx[p.a], rj = refIdx[p.b];
        result.matches.push_back(
            {si, rj, refs[rj].position.separation(wcs->pixelToSky(sources[si].position)).asArcseconds()});
    }
    std::sort(result.matches.begin(), result.matches.end(),
              [](const AstrometryMatch& a, const AstrometryMatch& b) { return a.source < b.source; });
    result.wcs = wcs->hasSip() ? wcs->withInverseSip(bbox, config.inverseSipOrder) : wcs;
    return result;
}

}  // namespace drp
