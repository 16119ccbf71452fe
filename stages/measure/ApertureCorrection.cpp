#include "stages/measure/ApertureCorrection.h"

#include <Eigen/Dense>
#include <boost/math/distributions/fisher_f.hpp>
#include <algorithm>
#include <cmath>
#include <limits>

#include "core/Error.h"

namespace drp {

namespace {

int termCount(int order) { return (order + 1) * (order + 2) / 2; }

void terms(double u, double v, int order, double* out) {
    out[0] = 1.0;
    if (order >= 1) out[1] = u, out[2] = v;
    if (order >= 2) out[3] = u * u, out[4] = u * v, out[5] = v * v;
}

struct Star {
    double x, y, ratio, sigma;
};

}  // namespace

double ApertureCorrectionResult::value(Point2D p) const {
    if (coefficients.empty()) return std::numeric_limits<double>::quiet_NaN();
    double t[6];
    terms((p.x - center.x) / halfSize.x, (p.y - center.y) / halfSize.y, order, t);
    double s = 0;
    for (int i = 0; i < termCount(order); ++i) s += coefficients[i] * t[i];
    return s;
}

ApertureCorrectionResult measureApertureCorrection(const Table& sources, const std::vector<std::size_t>& starRows,
                                                   const std::string& refApertureColumn, int order,
                                                   const Box2I& bbox) {
    if (order < 0 || order > 2) throw LogicError("measureApertureCorrection: order must be 0, 1 or 2");
    const Schema& schema = sources.schema();
    const auto x = sources.column<double>("x"), y = sources.column<double>("y");
    const auto psf = sources.column<double>("psfFlux"), psfErr = sources.column<double>("psfFluxErr");
    const auto ap = sources.column<double>(refApertureColumn), apErr = sources.column<double>(refApertureColumn + "Err");
    std::span<const std::uint8_t> psfFlag, apFlag;
    if (schema.contains("psfFlux_flag")) psfFlag = sources.column<bool>("psfFlux_flag");
    if (schema.contains(refApertureColumn + "_flag")) apFlag = sources.column<bool>(refApertureColumn + "_flag");

    std::vector<Star> stars;
    for (std::size_t r : starRows) {
        if (r >= sources.size()) throw LogicError("measureApertureCorrection: star row out of range");
        if (!psfFlag.empty() && psfFlag[r]) continue;
        if (!apFlag.empty() && apFlag[r]) continue;
        if (!(psf[r] > 0) || !(ap[r] > 0) || !std::isfinite(psf[r]) || !std::isfinite(ap[r])) continue;
        if (!std::isfinite(psfErr[r]) || !std::isfinite(apErr[r]) || !std::isfinite(x[r]) || !std::isfinite(y[r])) continue;
        const double ratio = ap[r] / psf[r];
        const double sigma = ratio * std::hypot(apErr[r] / ap[r], psfErr[r] / psf[r]);
        stars.push_back({x[r], y[r], ratio, sigma});
    }
    if (stars.empty()) throw InvalidInputError("measureApertureCorrection: no usable star for " + refApertureColumn);

    ApertureCorrectionResult res;
    res.refApertureColumn = refApertureColumn;
    Box2D box;
    if (!bbox.empty()) {
        box = Box2D(bbox);
    } else {
        for (const Star& s : stars) box = box.include({s.x, s.y});
    }
    res.center = {0.5 * (box.minX() + box.maxX()), 0.5 * (box.minY() + box.maxY())};
    res.halfSize = {std::max(0.5 * (box.maxX() - box.minX()), 1.0), std::max(0.5 * (box.maxY() - box.minY()), 1.0)};

    // Highest order with at least 2 more stars than terms.
    int maxOrd = order;
    while (maxOrd > 0 && stars.size() < std::size_t(termCount(maxOrd) + 2)) --maxOrd;
    auto termsOf = [&](const Star& s, int ord, double* t) {
        terms((s.x - res.center.x) / res.halfSize.x, (s.y - res.center.y) / res.halfSize.y, ord, t);
    };

    // Weighted least squares over the kept stars (weights 1 / (sigma^2 + s2)); *n counts them.
    auto weight = [&](const Star& s, double s2) { return 1.0 / std::max(s.sigma * s.sigma + s2, 1e-30); };
    auto solve = [&](int ord, const std::vector<char>& keep, double s2, std::size_t* n) {
        const int nt = termCount(ord);
        Eigen::MatrixXd a = Eigen::MatrixXd::Zero(nt, nt);
        Eigen::VectorXd b = Eigen::VectorXd::Zero(nt);
        *n = 0;
        for (std::size_t i = 0; i < stars.size(); ++i) {
            if (!keep[i]) continue;
            double t[6] = {};
            termsOf(stars[i], ord, t);
            const double w = weight(stars[i], s2);
            for (int j = 0; j < nt; ++j) {
                b(j) += w * t[j] * stars[i].ratio;
                for (int k = 0; k < nt; ++k) a(j, k) += w * t[j] * t[k];
            }
            ++*n;
        }
        return Eigen::VectorXd(a.ldlt().solve(b));
    };
    auto model = [&](int ord, const Eigen::VectorXd& coef, const Star& s) {
        double t[6] = {};
        termsOf(s, ord, t);
        double m = 0;
        for (int j = 0; j < termCount(ord); ++j) m += coef(j) * t[j];
        return m;
    };

    // The fit at one order, with clipping and intrinsic scatter.
    struct Fit {
        Eigen::VectorXd coef;
        std::vector<char> keep;
        double s2 = 0.0;
    };
    auto fitOrder = [&](int ord) {
        const int nt = termCount(ord);
        Fit f{Eigen::VectorXd::Zero(nt), std::vector<char>(stars.size(), 1), 0.0};
        for (int pass = 0; pass < 5; ++pass) {
            std::size_t n = 0;
            f.coef = solve(ord, f.keep, f.s2, &n);
            if (n == 0) throw InvalidInputError("measureApertureCorrection: every star was rejected");
            // Residuals, intrinsic scatter, clipping.
            double chi2 = 0, sumSigma2 = 0;
            std::vector<double> res2(stars.size());
            for (std::size_t i = 0; i < stars.size(); ++i) {
                const double d = stars[i].ratio - model(ord, f.coef, stars[i]);
                res2[i] = d * d;
                if (f.keep[i]) chi2 += res2[i], sumSigma2 += stars[i].sigma * stars[i].sigma;
            }
            const double dof = std::max<double>(1.0, double(n) - nt);
            f.s2 = std::max(0.0, (chi2 - sumSigma2 * dof / double(n)) / dof);
            bool changed = false;
            for (std::size_t i = 0; i < stars.size(); ++i) {
                const bool k = res2[i] <= 9.0 * (stars[i].sigma * stars[i].sigma + f.s2);
                if (bool(f.keep[i]) != k) changed = true;
                f.keep[i] = k;
            }
            if (std::count(f.keep.begin(), f.keep.end(), 1) == 0) std::fill(f.keep.begin(), f.keep.end(), 1);
            if (!changed) break;
        }
        return f;
    };

    // Weighted residual sum of squares of an order, on the stars and with the weights of the constant fit.
    auto rss = [&](int ord, const Fit& base, std::size_t* count) {
        const Eigen::VectorXd coef = solve(ord, base.keep, base.s2, count);
        double sum = 0;
        for (std::size_t i = 0; i < stars.size(); ++i) {
            if (!base.keep[i]) continue;
            const double e = stars[i].ratio - model(ord, coef, stars[i]);
            sum += e * e * weight(stars[i], base.s2);
        }
        return sum;
    };

    // The order: a higher one only where the stars show it, by a nested F-test at 3 sigma (p < 0.0027). A
    // gradient fitted to a handful of noisy stars extrapolates to the detector's corners with errors larger
    // than the scatter it removes.
    Fit fit = fitOrder(0);
    int ord = 0;
    if (maxOrd > 0) {
        std::size_t n = 0;
        double rssBest = rss(0, fit, &n);
        for (int o = 1; o <= maxOrd; ++o) {
            const int k = termCount(o), kBest = termCount(ord);
            const double rssO = rss(o, fit, &n);
            if (n <= std::size_t(k) || !(rssO > 0)) break;
            const double dof = double(n) - k;
            const double f = ((rssBest - rssO) / double(k - kBest)) / (rssO / dof);
            const double critical =
                boost::math::quantile(boost::math::fisher_f_distribution<double>(double(k - kBest), dof), 1.0 - 0.0027);
            if (f > critical) ord = o, rssBest = rssO;
        }
        if (ord > 0) fit = fitOrder(ord);
    }
    res.order = ord;
    const int nt = termCount(ord);
    const std::vector<char>& keep = fit.keep;
    const Eigen::VectorXd& coef = fit.coef;
    const double s2 = fit.s2;
    res.coefficients.assign(coef.data(), coef.data() + nt);
    res.intrinsicScatter = std::sqrt(s2);
    double sum = 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < stars.size(); ++i) {
        if (!keep[i]) continue;
        const double d = stars[i].ratio - res.value({stars[i].x, stars[i].y});
        sum += d * d;
        ++n;
    }
    res.nStars = n;
    res.nRejected = stars.size() - n;
    res.rms = n > 0 ? std::sqrt(sum / n) : std::numeric_limits<double>::quiet_NaN();
    return res;
}

void applyApertureCorrection(Table& table, const ApertureCorrectionResult& result) {
    const Schema& schema = table.schema();
    const auto xk = schema.find<double>("x"), yk = schema.find<double>("y");
    const auto fk = schema.find<double>("psfFlux"), ek = schema.find<double>("psfFluxErr");
    const auto ck = schema.find<double>("apCorr");
    auto x = table.column(xk), y = table.column(yk), f = table.column(fk), e = table.column(ek), c = table.column(ck);
    // The flux-position covariances of the point-source model scale with the flux.
    std::vector<decltype(table.column(fk))> fluxCov;
    for (const char* name : {"psfFlux_x_Cov", "psfFlux_y_Cov"})
        if (schema.contains(name)) fluxCov.push_back(table.column(schema.find<double>(name)));
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (std::isfinite(c[i])) throw LogicError("applyApertureCorrection: apCorr is already set (applied twice?)");
    }
    for (std::size_t i = 0; i < table.size(); ++i) {
        if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
            c[i] = std::numeric_limits<double>::quiet_NaN();
            continue;
        }
        const double v = result.value({x[i], y[i]});
        f[i] *= v;
        e[i] *= v;
        for (auto& cov : fluxCov) cov[i] *= v;
        c[i] = v;
    }
}

}  // namespace drp
