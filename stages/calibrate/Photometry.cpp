#include "stages/calibrate/Photometry.h"

#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <numbers>
#include <sstream>

#include "core/Error.h"
#include "stages/calibrate/ConfigRange.h"

namespace drp {

namespace {

const double kMagPerLn = 2.5 / std::numbers::ln10;  // 1.0857...

template <typename T>
void checkRange(const char* name, T value, T lo, T hi, bool openLow = false) {
    calibrate_detail::checkConfigRange("PhotometryConfig", name, value, lo, hi, openLow);
}

double median(std::vector<double> v) {
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + long(mid), v.end());
    double m = v[mid];
    if (v.size() % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), v.begin() + long(mid)));
    return m;
}

}  // namespace

void PhotometryConfig::validate() const {
    for (const auto& [band, term] : colourTerms) {
        if (band.empty() || term.blueBand.empty() || term.redBand.empty())
            throw ConfigError("PhotometryConfig.colourTerms: band names must not be empty (band '" + band + "')");
        if (!(std::fabs(term.coefficient) <= 10.0))
            throw ConfigError("PhotometryConfig.colourTerms[" + band + "].coefficient is outside [-10, 10]");
    }
    checkRange("minSourceSnr", minSourceSnr, 0.0, 1e9);
    checkRange("minRefSnr", minRefSnr, 0.0, 1e9);
    checkRange("rejectSigma", rejectSigma, 1.0, 100.0, true);
    checkRange("iterations", iterations, 1, 100);
    checkRange("minStars", minStars, 2, 1000000);
    checkRange("errorFloorMag", errorFloorMag, 0.0, 1.0);
}

ColourTerm PhotometryConfig::colourTerm(const std::string& band) const {
    auto it = colourTerms.find(band);
    return it == colourTerms.end() ? ColourTerm{} : it->second;
}

PhotometryResult fitZeroPoint(const std::vector<PhotometryMatch>& matches, const std::string& band,
                              const PhotometryConfig& config) {
    config.validate();
    const ColourTerm term = config.colourTerm(band);
    const bool needColour = config.fitColourTerm || term.coefficient != 0.0;
    const int nParams = config.fitColourTerm ? 2 : 1;
    const std::size_t needed = std::size_t(config.minStars + nParams - 1);
    const double abOneNjy = PhotoCalib::abMagnitudeOfOneNanojansky();
    const double floor2 = config.errorFloorMag * config.errorFloorMag;

    auto tooFew = [&](std::size_t have, const char* stage) {
        std::ostringstream os;
        os << "photometry (band " << band << "): only " << have << " usable stars " << stage << " (of "
           << matches.size() << " matches; source S/N >= " << config.minSourceSnr << ", reference S/N >= "
           << config.minRefSnr << "); at least " << needed << " are needed for a zero point";
        throw NumericalError(os.str());
    };

    // Valid stars: positive finite fluxes, finite errors, reference S/N, colour when needed.
    struct Star {
        std::size_t index;
        double mRef;     // reference magnitude, corrected for the log bias 0.543 e_ref^2
        double mInst;    // instrumental magnitude
        double instErr;  // instFluxErr
        double refVar;   // (1.0857 e_ref)^2
        double colour;
    };
    std::vector<Star> valid;
    for (std::size_t i = 0; i < matches.size(); ++i) {
        const PhotometryMatch& m = matches[i];
        if (!(m.instFlux > 0.0) || !(m.refFluxNjy > 0.0) || !std::isfinite(m.instFlux) || !std::isfinite(m.refFluxNjy))
            continue;
        if (!(m.instFluxErr >= 0.0) || !(m.refFluxErrNjy >= 0.0) || !std::isfinite(m.instFluxErr) ||
            !std::isfinite(m.refFluxErrNjy))
            continue;
        if (m.refFluxNjy < config.minRefSnr * m.refFluxErrNjy) continue;
        if (needColour && !std::isfinite(m.refColourMag)) continue;
        const double eRef = m.refFluxErrNjy / m.refFluxNjy;
        valid.push_back({i, abOneNjy - 2.5 * std::log10(m.refFluxNjy) - 0.5 * kMagPerLn * eRef * eRef,
                         -2.5 * std::log10(m.instFlux), m.instFluxErr, kMagPerLn * kMagPerLn * eRef * eRef,
                         needColour ? m.refColourMag : 0.0});
    }
    if (valid.size() < needed) tooFew(valid.size(), "after the validity and reference S/N cuts");

    // Preliminary zero point: median over the stars whose measured S/N passes; it predicts each star's
    // instrumental flux, and the source S/N cut and the weights use the prediction, not the measurement (a
    // cut or weight on the measured flux would favour upward fluctuations and bias the zero point).
    double zp = 0.0, k = term.coefficient;
    {
        std::vector<double> z, zAll;
        for (const Star& s : valid) {
            const double v = s.mRef + k * s.colour - s.mInst;
            zAll.push_back(v);
            if (std::pow(10.0, -0.4 * s.mInst) >= config.minSourceSnr * s.instErr) z.push_back(v);
        }
        zp = median(z.empty() ? zAll : z);
    }
    auto predictedFlux = [&](const Star& s, double zpNow, double kNow) {
        return std::pow(10.0, -0.4 * (s.mRef + kNow * s.colour - zpNow));
    };
    std::vector<Star> stars;
    for (const Star& s : valid)
        if (predictedFlux(s, zp, k) >= config.minSourceSnr * s.instErr) stars.push_back(s);
    const std::size_t n = stars.size();
    if (n < needed) tooFew(n, "after the S/N cuts");

    // Per star, for the current (zp, k): y = m_ref - m_inst + 0.543 e^2 (+ k colour for a fixed k), sigma.
    std::vector<double> y(n), sigma(n), resid(n);
    auto evaluate = [&](double zpNow, double kNow) {
        for (std::size_t j = 0; j < n; ++j) {
            const double e = stars[j].instErr / predictedFlux(stars[j], zpNow, kNow);
            y[j] = stars[j].mRef - stars[j].mInst + 0.5 * kMagPerLn * e * e +
                   (config.fitColourTerm ? 0.0 : kNow * stars[j].colour);
            sigma[j] = std::max(std::sqrt(kMagPerLn * kMagPerLn * e * e + stars[j].refVar + floor2), 1e-6);
        }
    };

    // Round 0 clips about the median (robust against variables and blends); a fitted colour term spreads y,
    // so then every star starts in.
    evaluate(zp, k);
    std::vector<char> keep(n, 1);
    if (!config.fitColourTerm) {
        std::vector<double> z(n);
        for (std::size_t j = 0; j < n; ++j) z[j] = std::fabs(y[j] - zp) / sigma[j];
        const double scale = std::max(1.0, 1.4826 * median(z));
        std::size_t nKeep = 0;
        for (std::size_t j = 0; j < n; ++j) nKeep += (keep[j] = z[j] <= config.rejectSigma * scale);
        if (nKeep < needed) std::fill(keep.begin(), keep.end(), 1);
    }
    Eigen::Vector2d beta = Eigen::Vector2d::Zero();
    Eigen::Matrix2d cov = Eigen::Matrix2d::Zero();
    double chi2 = 0.0;
    std::size_t nKept = 0;
    for (int round = 0; round < config.iterations; ++round) {
        // Weighted least squares for (ZP[, -k]).
        Eigen::MatrixXd ata = Eigen::MatrixXd::Zero(nParams, nParams);
        Eigen::VectorXd atb = Eigen::VectorXd::Zero(nParams);
        nKept = 0;
        for (std::size_t j = 0; j < n; ++j) {
            if (!keep[j]) continue;
            ++nKept;
            const double w = 1.0 / (sigma[j] * sigma[j]);
            Eigen::VectorXd row(nParams);
            row(0) = 1.0;
            if (nParams == 2) row(1) = stars[j].colour;
            ata += w * row * row.transpose();
            atb += w * row * y[j];
        }
        if (nKept < needed) tooFew(nKept, "after clipping");
        const Eigen::LDLT<Eigen::MatrixXd> ldlt(ata);
        const Eigen::VectorXd sol = ldlt.solve(atb);
        const Eigen::MatrixXd inv = ldlt.solve(Eigen::MatrixXd::Identity(nParams, nParams));
        if (!sol.allFinite() || !inv.allFinite() || ldlt.info() != Eigen::Success || !(inv(0, 0) > 0.0))
            throw NumericalError("photometry (band " + band + "): the zero-point fit is singular (no colour spread?)");
        const double zpChange = std::fabs(sol(0) - beta(0));
        beta.setZero();
        cov.setZero();
        beta.head(nParams) = sol;
        cov.topLeftCorner(nParams, nParams) = inv;
        chi2 = 0.0;
        std::vector<double> zKept;
        for (std::size_t j = 0; j < n; ++j) {
            resid[j] = y[j] - beta(0) - (nParams == 2 ? beta(1) * stars[j].colour : 0.0);
            if (keep[j]) {
                chi2 += resid[j] * resid[j] / (sigma[j] * sigma[j]);
                zKept.push_back(std::fabs(resid[j]) / sigma[j]);
            }
        }
        const double scale = std::max(1.0, 1.4826 * median(zKept));
        std::vector<char> next(n);
        std::size_t nNext = 0;
        for (std::size_t j = 0; j < n; ++j)
            nNext += (next[j] = std::fabs(resid[j]) / sigma[j] <= config.rejectSigma * scale);
        const bool stable = next == keep && zpChange < 1e-7;
        if (stable || nNext < needed || round == config.iterations - 1) break;
        keep.swap(next);
        // Weights and bias corrections follow the new solution.
        evaluate(beta(0), config.fitColourTerm ? -beta(1) : k);
    }

    PhotometryResult r;
    const double dof = double(nKept) - double(nParams);
    r.reducedChi2 = dof > 0 ? chi2 / dof : 0.0;
    const double inflate = std::max(1.0, std::sqrt(r.reducedChi2));
    r.zeroPointMag = beta(0);
    r.zeroPointErrMag = std::sqrt(cov(0, 0)) * inflate;
    if (config.fitColourTerm) {
        r.colourTerm = -beta(1);
        r.colourTermErr = std::sqrt(cov(1, 1)) * inflate;
    } else {
        r.colourTerm = term.coefficient;
    }
    r.photoCalib = PhotoCalib::fromZeroPoint(r.zeroPointMag, r.zeroPointErrMag);
    r.nCandidates = int(n);
    r.nUsed = int(nKept);
    r.nRejected = int(n - nKept);
    double sum2 = 0.0;
    r.used.assign(matches.size(), false);
    for (std::size_t j = 0; j < n; ++j)
        if (keep[j]) {
            sum2 += resid[j] * resid[j];
            r.used[stars[j].index] = true;
        }
    r.rmsMag = std::sqrt(sum2 / double(nKept));
    return r;
}

}  // namespace drp
