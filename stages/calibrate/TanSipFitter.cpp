#include "stages/calibrate/TanSipFitter.h"

#include <Eigen/Dense>
#include <cmath>
#include <sstream>

#include "core/Error.h"
#include "stages/calibrate/TangentPlane.h"

namespace drp {

int polynomialTermCount(int order) { return (order + 1) * (order + 2) / 2; }

namespace {

/// Indices of the points a fit can use: finite pixel position, finite positive weight (no weights: all).
std::vector<std::size_t> usablePoints(const std::vector<Point2D>& pixels, const std::vector<double>& weights) {
    std::vector<std::size_t> use;
    for (std::size_t i = 0; i < pixels.size(); ++i) {
        const double w = weights.empty() ? 1.0 : weights[i];
        if (!(w > 0.0) || !std::isfinite(w) || !std::isfinite(pixels[i].x) || !std::isfinite(pixels[i].y)) continue;
        use.push_back(i);
    }
    return use;
}

/// fitTanSip over the points `use` (usablePoints) of sizes already checked, order in [0, Wcs::maxSipOrder].
std::shared_ptr<const Wcs> fitTanSipOf(const std::vector<Point2D>& pixels, const std::vector<SpherePoint>& sky,
                                       const std::vector<double>& weights, const std::vector<std::size_t>& use,
                                       Point2D crpix, const SpherePoint& crvalGuess, int order) {
    const int deg = std::max(order, 1);
    const int nTerms = polynomialTermCount(deg);
    // Term k <-> (p, q), ordered by total degree: (0,0), (1,0), (0,1), (2,0), (1,1), (0,2), ...
    std::vector<std::pair<int, int>> terms;
    for (int d = 0; d <= deg; ++d)
        for (int q = 0; q <= d; ++q) terms.emplace_back(d - q, q);

    double scale = 1.0;
    for (std::size_t i : use) scale = std::max({scale, std::fabs(pixels[i].x - crpix.x), std::fabs(pixels[i].y - crpix.y)});
    if (use.size() < std::size_t(nTerms)) {
        std::ostringstream os;
        os << "fitTanSip: " << use.size() << " usable points for an order-" << deg << " fit with " << nTerms
           << " coefficients per axis";
        throw NumericalError(os.str());
    }
    const Eigen::Index n = Eigen::Index(use.size());
    Eigen::MatrixXd design(n, nTerms);
    Eigen::VectorXd sqrtW(n);
    for (Eigen::Index r = 0; r < n; ++r) {
        const std::size_t i = use[std::size_t(r)];
        const double u = (pixels[i].x - crpix.x) / scale, v = (pixels[i].y - crpix.y) / scale;
        sqrtW(r) = std::sqrt(weights.empty() ? 1.0 : weights[i]);
        for (int k = 0; k < nTerms; ++k)
            design(r, k) = sqrtW(r) * std::pow(u, terms[std::size_t(k)].first) * std::pow(v, terms[std::size_t(k)].second);
    }
    const Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(design);
    if (qr.rank() < nTerms) {
        std::ostringstream os;
        os << "fitTanSip: the " << use.size() << " points do not constrain an order-" << deg
           << " fit (rank " << qr.rank() << " < " << nTerms << ")";
        throw NumericalError(os.str());
    }

    SpherePoint crval = crvalGuess;
    Eigen::MatrixXd coeff;
    constexpr double kConvergedDeg = 1e-10 / 3600.0;
    for (int pass = 0; pass < 20; ++pass) {
        const TangentPlane tp(crval);
        Eigen::MatrixXd rhs(n, 2);
        for (Eigen::Index r = 0; r < n; ++r) {
            const Eigen::Vector2d xy = tp.projectDegrees(sky[use[std::size_t(r)]]);
            if (!xy.allFinite()) throw NumericalError("fitTanSip: a sky point is 90 deg or more from the tangent point");
            rhs.row(r) = sqrtW(r) * xy.transpose();
        }
        coeff = qr.solve(rhs);
        if (!coeff.allFinite()) throw NumericalError("fitTanSip: the least-squares solution is not finite");
        const Eigen::Vector2d c0 = coeff.row(0).transpose();
        crval = tp.deprojectDegrees(c0);
        if (c0.norm() < kConvergedDeg) break;
        if (pass == 19) throw NumericalError("fitTanSip: CRVAL did not converge");
    }
    // The last pass's constants are below 1e-10 arcsec: the other coefficients hold for the updated CRVAL.
    Eigen::Matrix2d cd;
    cd << coeff(1, 0) / scale, coeff(2, 0) / scale, coeff(1, 1) / scale, coeff(2, 1) / scale;
    if (!(std::fabs(cd.determinant()) > 0.0)) throw NumericalError("fitTanSip: the fitted CD matrix is singular");
    if (order < 2) return std::make_shared<const Wcs>(crpix, crval, cd);
    const Eigen::Matrix2d cdInv = cd.inverse();
    SipPolynomials sip;
    sip.order = order;
    sip.a = Eigen::MatrixXd::Zero(order + 1, order + 1);
    sip.b = Eigen::MatrixXd::Zero(order + 1, order + 1);
    for (int k = 3; k < nTerms; ++k) {
        const auto [p, q] = terms[std::size_t(k)];
        const double f = std::pow(scale, -(p + q));
        const Eigen::Vector2d h(coeff(k, 0) * f, coeff(k, 1) * f);
        const Eigen::Vector2d ab = cdInv * h;
        sip.a(p, q) = ab.x();
        sip.b(p, q) = ab.y();
    }
    return std::make_shared<const Wcs>(crpix, crval, cd, sip);
}

}  // namespace

std::shared_ptr<const Wcs> fitTanSip(const std::vector<Point2D>& pixels, const std::vector<SpherePoint>& sky,
                                     const std::vector<double>& weights, Point2D crpix, const SpherePoint& crvalGuess,
                                     int order) {
    if (pixels.size() != sky.size() || (!weights.empty() && weights.size() != pixels.size()))
        throw LogicError("fitTanSip: pixels, sky and weights differ in size");
    if (order < 0 || order > Wcs::maxSipOrder) {
        std::ostringstream os;
        os << "fitTanSip: order " << order << " is outside [0, " << Wcs::maxSipOrder << "]";
        throw LogicError(os.str());
    }
    return fitTanSipOf(pixels, sky, weights, usablePoints(pixels, weights), crpix, crvalGuess, order);
}

std::shared_ptr<const Wcs> fitTanRadial(const std::vector<Point2D>& pixels, const std::vector<SpherePoint>& sky,
                                        const std::vector<double>& weights, Point2D crpix, const SpherePoint& crvalGuess) {
    if (pixels.size() != sky.size() || (!weights.empty() && weights.size() != pixels.size()))
        throw LogicError("fitTanRadial: pixels, sky and weights differ in size");
    const std::vector<std::size_t> use = usablePoints(pixels, weights);
    double scale = 1.0;
    for (std::size_t i : use) scale = std::max(scale, std::hypot(pixels[i].x - crpix.x, pixels[i].y - crpix.y));
    if (use.size() < 4) {
        std::ostringstream os;
        os << "fitTanRadial: " << use.size() << " usable points for 7 parameters (at least 4 are needed)";
        throw NumericalError(os.str());
    }
    // Start from the plain TAN fit (of the same points); work with d / scale (so kappa' = kappa scale^2 and
    // CD' = CD scale are O(1)).
    const auto tan = fitTanSipOf(pixels, sky, weights, use, crpix, crvalGuess, 1);
    SpherePoint crval = tan->crval();
    Eigen::Matrix2d cdn = tan->cd() * scale;
    double kn = 0.0;
    const Eigen::Index n = Eigen::Index(use.size());
    constexpr double kConvergedDeg = 1e-10 / 3600.0;
    for (int pass = 0;; ++pass) {
        const TangentPlane tp(crval);
        Eigen::MatrixXd jac(2 * n, 7);
        Eigen::VectorXd res(2 * n);
        for (Eigen::Index r = 0; r < n; ++r) {
            const std::size_t i = use[std::size_t(r)];
            const double sw = std::sqrt(weights.empty() ? 1.0 : weights[i]);
            const Eigen::Vector2d d((pixels[i].x - crpix.x) / scale, (pixels[i].y - crpix.y) / scale);
            const double r2 = d.squaredNorm();
            const Eigen::Vector2d g = d * (1.0 + kn * r2);
            const Eigen::Vector2d y = tp.projectDegrees(sky[i]);
            if (!y.allFinite()) throw NumericalError("fitTanRadial: a sky point is 90 deg or more from the tangent point");
            const Eigen::Vector2d dk = cdn * d * r2;
            const Eigen::Vector2d e = y - cdn * g;
            for (int a = 0; a < 2; ++a) {
                const Eigen::Index row = 2 * r + a;
                jac.row(row).setZero();
                jac(row, a) = sw;              // origin shift t
                jac(row, 2 + 2 * a) = sw * g.x();  // CD'(a, 0)
                jac(row, 3 + 2 * a) = sw * g.y();  // CD'(a, 1)
                jac(row, 6) = sw * dk(a);      // kappa'
                res(row) = sw * e(a);
            }
        }
        const Eigen::ColPivHouseholderQR<Eigen::MatrixXd> qr(jac);
        if (qr.rank() < 7) throw NumericalError("fitTanRadial: the points do not constrain CD and the radial term");
        const Eigen::VectorXd delta = qr.solve(res);
        if (!delta.allFinite()) throw NumericalError("fitTanRadial: the least-squares solution is not finite");
        const Eigen::Vector2d t(delta(0), delta(1));
        cdn(0, 0) += delta(2);
        cdn(0, 1) += delta(3);
        cdn(1, 0) += delta(4);
        cdn(1, 1) += delta(5);
        kn += delta(6);
        crval = tp.deprojectDegrees(t);
        if (t.norm() < kConvergedDeg && std::fabs(delta(6)) < 1e-12) break;
        if (pass == 29) throw NumericalError("fitTanRadial: did not converge");
    }
    const Eigen::Matrix2d cd = cdn / scale;
    if (!(std::fabs(cd.determinant()) > 0.0)) throw NumericalError("fitTanRadial: the fitted CD matrix is singular");
    const double kappa = kn / (scale * scale);
    return std::make_shared<const Wcs>(crpix, crval, cd, SipPolynomials::radialCubic(kappa));
}

std::shared_ptr<const Wcs> fitWcsCorrection(const Wcs& base, const std::vector<Point2D>& pixels,
                                            const std::vector<SpherePoint>& sky, const std::vector<double>& weights,
                                            WcsCorrection kind) {
    if (pixels.size() != sky.size() || (!weights.empty() && weights.size() != pixels.size()))
        throw LogicError("fitWcsCorrection: pixels, sky and weights differ in size");
    const bool similarity = kind == WcsCorrection::Similarity;
    const std::size_t needed = similarity ? 2 : 3;
    const std::vector<std::size_t> use = usablePoints(pixels, weights);
    const char* name = similarity ? "similarity" : "affine";
    if (use.size() < needed) {
        std::ostringstream os;
        os << "fitWcsCorrection: " << use.size() << " usable points for a " << name << " correction (at least "
           << needed << " are needed)";
        throw NumericalError(os.str());
    }
    SpherePoint crval = base.crval();
    Eigen::Matrix2d cd = base.cd();
    const std::optional<SipPolynomials>& sip = base.sip();
    for (int pass = 0; pass < 20; ++pass) {
        const Wcs current(base.crpix(), crval, cd, sip);
        const TangentPlane tp(crval);
        // Weighted centroids, then the centred normal equations (arcsec).
        std::vector<Eigen::Vector2d> x(use.size()), y(use.size());
        double sw = 0.0;
        Eigen::Vector2d mx = Eigen::Vector2d::Zero(), my = Eigen::Vector2d::Zero();
        for (std::size_t k = 0; k < use.size(); ++k) {
            const std::size_t i = use[k];
            const double w = weights.empty() ? 1.0 : weights[i];
            x[k] = tp.projectArcsec(current.pixelToSky(pixels[i]));
            y[k] = tp.projectArcsec(sky[i]);
            if (!x[k].allFinite() || !y[k].allFinite())
                throw NumericalError("fitWcsCorrection: a point is 90 deg or more from the tangent point");
            sw += w;
            mx += w * x[k];
            my += w * y[k];
        }
        mx /= sw;
        my /= sw;
        Eigen::Matrix2d m;
        Eigen::Matrix2d sxx = Eigen::Matrix2d::Zero(), syx = Eigen::Matrix2d::Zero();
        double sDot = 0.0, sCross = 0.0, sNorm = 0.0;
        for (std::size_t k = 0; k < use.size(); ++k) {
            const double w = weights.empty() ? 1.0 : weights[use[k]];
            const Eigen::Vector2d dx = x[k] - mx, dy = y[k] - my;
            sxx += w * dx * dx.transpose();
            syx += w * dy * dx.transpose();
            sDot += w * dx.dot(dy);
            sCross += w * (dx.x() * dy.y() - dx.y() * dy.x());
            sNorm += w * dx.squaredNorm();
        }
        if (similarity) {
            if (!(sNorm > 0.0)) throw NumericalError("fitWcsCorrection: the points coincide");
            const double a = sDot / sNorm, b = sCross / sNorm;
            m << a, -b, b, a;
        } else {
            const double det = sxx.determinant();
            if (!(std::fabs(det) > 1e-12 * sxx.squaredNorm()) || !std::isfinite(det))
                throw NumericalError("fitWcsCorrection: the points are collinear (an affine correction is undetermined)");
            m = syx * sxx.inverse();
        }
        const Eigen::Vector2d t = my - m * mx;
        if (!m.allFinite() || !t.allFinite() || !(std::fabs(m.determinant()) > 0.0))
            throw NumericalError("fitWcsCorrection: the least-squares solution is singular");
        crval = tp.deprojectArcsec(t);
        cd = m * cd;
        if (t.norm() < 1e-9 && (m - Eigen::Matrix2d::Identity()).norm() < 1e-12) break;
        if (pass == 19 && t.norm() > 1e-6) throw NumericalError("fitWcsCorrection: did not converge");
    }
    return std::make_shared<const Wcs>(base.crpix(), crval, cd, sip);
}

}  // namespace drp
