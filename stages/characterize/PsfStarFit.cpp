#include "stages/characterize/PsfStarFit.h"

#include <Eigen/Dense>
#include <boost/math/distributions/fisher_f.hpp>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <numeric>
#include <random>

#include "core/Error.h"
#include "stages/characterize/OversampledPsfFit.h"

namespace drp::psffit {

double median(std::vector<double> v) {
    if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
    const std::size_t n = v.size();
    auto mid = v.begin() + std::ptrdiff_t(n / 2);
    std::nth_element(v.begin(), mid, v.end());
    double m = *mid;
    if (n % 2 == 0) m = 0.5 * (m + *std::max_element(v.begin(), mid));
    return m;
}

double robustSigma(const std::vector<double>& v, double centre) {
    std::vector<double> d;
    d.reserve(v.size());
    for (double x : v) d.push_back(std::fabs(x - centre));
    return 1.4826 * median(std::move(d));
}

namespace {
/// A usable star: its recentred, unnormalised stamp and what the fit needs.
struct Star {
    std::size_t source = 0;    ///< the FitSource it comes from
    std::size_t index = 0;     ///< into that source's candidates
    const MaskedImageF* image = nullptr;  ///< the image its stamp is read from (own frame)
    Point2D offset{0.0, 0.0};  ///< own frame + offset = model frame
    Point2D centre;            ///< adaptive-moments centre (own frame)
    Point2D phase;             ///< centre minus the stamp's middle pixel (the oversampled fit's sub-pixel phase)
    SecondMoments moments;     ///< of the star in the image
    Image<double> data;        ///< N x N stamp recentred by the sinc shift (the native fit's data)
    Image<double> stamp;       ///< oversampled fit: the N x N stamp as it is (xy0 0)
    Image<double> padded;      ///< oversampled fit: the padded stamp (parent xy0), to recentre `data` after a move
    Box2I box;                 ///< the N x N stamp's box (parent frame)
    double meanVariance = 0.0; ///< mean of the variance plane over the stamp (the star's fit weight F^2 / this)
    double skyVariance = 0.0;  ///< v0: the variance of an empty pixel (median of the stamp's border)
    double gain = 0.0;         ///< g: variance per unit of signal (var = v0 + g x signal), >= 0
    std::vector<unsigned char> keep;  ///< per pixel: 1 = used, 0 = clipped (a neighbour, a defect)
    double flux = 0.0;
    double chi2 = 0.0;
    bool reserved = false;
    bool rejected = false;

    /// The centre in the model frame (where the polynomials are evaluated).
    Point2D modelCentre() const { return {centre.x + offset.x, centre.y + offset.y}; }
    /// The stamp the model is compared with: `data` (at phase 0) for the native model, `stamp` (at `phase`) otherwise.
    const Image<double>& observed(int oversampling) const { return oversampling == 1 ? data : stamp; }
    /// `data` from `padded` at the current phase.
    void recentreData() {
        data = sincShift(padded, -phase.x, -phase.y).subImage(box).clone();
        data.setXY0({0, 0});
    }
    /// S/N of the star's flux in its stamp, F / sqrt(2 pi T v0 + g F) (the size noise is sizeNoise / this).
    double snr() const { return flux / std::sqrt(2.0 * std::numbers::pi * moments.trace() * skyVariance + gain * flux); }
};

/// The expected variance of a stamp pixel whose model signal is `signal`: sky + photon noise (from the variance
/// plane's sky level and slope, so it does not follow the pixel's own noise) + the model's relative accuracy.
double pixelVariance(const Star& s, double signal, double accuracy) {
    const double sig = std::max(0.0, signal);
    return s.skyVariance + s.gain * sig + accuracy * accuracy * sig * sig;
}

/// Oversampled fit: move each star's phase to its least-squares position against the model (Gauss-Newton on flux and
/// position, two steps of at most 0.2 pixels, with the pixel variances of the flux fit and the star's kept pixels), then
/// take away the used stars' mean move, so the ensemble keeps the adaptive-moments centres (whose phase-dependent error
/// averages out over random phases) and the model does not drift. An undersampled star's adaptive-moments centre is
/// off by up to a tenth of a pixel depending on its phase; fitting the nodes at those phases blurs the model (+1e-2
/// in dT/T at FWHM 1.6 pixels).
void recentreOnModel(const std::vector<std::shared_ptr<const PsfexPsf>>& frames, std::vector<Star>& stars, int n, double accuracy) {
    constexpr double h = 1e-3, maxStep = 0.2;
    std::vector<Point2D> moves(stars.size(), Point2D{0.0, 0.0});
    double sx = 0.0, sy = 0.0;
    int used = 0;
    for (std::size_t i = 0; i < stars.size(); ++i) {
        Star& st = stars[i];
        if (st.rejected) continue;
        const PsfexPsf& model = *frames[st.source];
        Point2D phase = st.phase;
        bool ok = true;
        for (int step = 0; step < 2 && ok; ++step) {
            const Point2D uvPos{st.centre.x + phase.x - st.phase.x, st.centre.y + phase.y - st.phase.y};
            const Image<double> grid = model.evaluateUnnormalised(uvPos);
            const Image<double> m0 = PsfexPsf::renderNodes(grid, model.oversampling(), n, phase.x, phase.y);
            const Image<double> mx = PsfexPsf::renderNodes(grid, model.oversampling(), n, phase.x + h, phase.y);
            const Image<double> my = PsfexPsf::renderNodes(grid, model.oversampling(), n, phase.x, phase.y + h);
            Eigen::Matrix3d a = Eigen::Matrix3d::Zero();
            Eigen::Vector3d b = Eigen::Vector3d::Zero();
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    if (!st.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)]) continue;
                    const double w = 1.0 / pixelVariance(st, st.flux * m0(x, y), accuracy);
                    // d ~ F m0 + F dm/dx dx + F dm/dy dy: unknowns F, F dx, F dy.
                    const Eigen::Vector3d g(m0(x, y), (mx(x, y) - m0(x, y)) / h, (my(x, y) - m0(x, y)) / h);
                    a += w * g * g.transpose();
                    b += w * g * st.stamp(x, y);
                }
            const Eigen::Vector3d sol = a.ldlt().solve(b);
            if (!(sol(0) > 0.0) || !sol.allFinite()) {
                ok = false;
                break;
            }
            phase.x += std::clamp(sol(1) / sol(0), -maxStep, maxStep);
            phase.y += std::clamp(sol(2) / sol(0), -maxStep, maxStep);
        }
        if (!ok) continue;
        moves[i] = {phase.x - st.phase.x, phase.y - st.phase.y};
        if (!st.reserved) sx += moves[i].x, sy += moves[i].y, ++used;
    }
    if (used == 0) return;
    const double mx = sx / used, my = sy / used;
    for (std::size_t i = 0; i < stars.size(); ++i) {
        if (stars[i].rejected) continue;
        // The stamp stays on its pixel: the phase stays in [-0.5, 0.5).
        const double px = std::clamp(stars[i].phase.x + moves[i].x - mx, -0.5, 0.4999);
        const double py = std::clamp(stars[i].phase.y + moves[i].y - my, -0.5, 0.4999);
        stars[i].centre.x += px - stars[i].phase.x, stars[i].centre.y += py - stars[i].phase.y;
        stars[i].phase = {px, py};
    }
}

/// Adaptive-moments trace of `img` about `centre` (re-centring), NaN unless converged.
double momentsTrace(const Image<double>& img, Point2D centre, double sigma, const AdaptiveMomentsControl& control) {
    const AdaptiveMomentsResult r = computeAdaptiveMoments(img, centre, SecondMoments::circle(sigma), control);
    return r.converged ? r.moments.trace() : std::numeric_limits<double>::quiet_NaN();
}

/// The lowest spatial order up to maxOrder whose variation the stars' ln T, e1 and e2 show (PsfDeterminer.h): nested
/// F-tests of each order against the best so far, on the weighted residuals of the three quantities pooled.
int orderShownByStars(const std::vector<Star*>& use, int maxOrder, const Box2I& fitBox, const PsfDeterminerConfig& config) {
    std::vector<Point2D> uv;
    std::vector<std::array<double, 3>> q;
    std::vector<double> w;
    for (const Star* s : use) {
        const double t = s->moments.trace();
        if (!(t > 0.0) || !(s->flux > 0.0)) continue;
        const double snr = s->snr();
        if (!(snr > 0.0) || !std::isfinite(snr)) continue;
        uv.push_back(PsfexPsf::normalisedPosition(fitBox, s->modelCentre()));
        q.push_back({std::log(t), (s->moments.xx - s->moments.yy) / t, 2.0 * s->moments.xy / t});
        w.push_back(1.0 / (std::pow(config.sizeNoise / snr, 2) + config.modelAccuracy * config.modelAccuracy));
    }
    const std::size_t n = uv.size();
    // Weighted residual sum of squares of the three quantities at order `ord`.
    auto rss = [&](int ord) {
        const int nt = PsfexPsf::numTerms(ord);
        Eigen::MatrixXd a(Eigen::Index(n), nt);
        Eigen::MatrixXd b(Eigen::Index(n), 3);
        for (std::size_t i = 0; i < n; ++i) {
            const double sw = std::sqrt(w[i]);
            const auto t = PsfexPsf::polynomialTerms(ord, uv[i].x, uv[i].y);
            for (int k = 0; k < nt; ++k) a(Eigen::Index(i), k) = sw * t[std::size_t(k)];
            for (int c = 0; c < 3; ++c) b(Eigen::Index(i), c) = sw * q[i][std::size_t(c)];
        }
        const Eigen::MatrixXd coef = a.colPivHouseholderQr().solve(b);
        return (a * coef - b).squaredNorm();
    };
    const double p = std::erfc(config.orderSelectionSigma / std::numbers::sqrt2);
    int best = 0;
    double rssBest = rss(0);
    for (int o = 1; o <= maxOrder; ++o) {
        const int k = PsfexPsf::numTerms(o), kBest = PsfexPsf::numTerms(best);
        if (n <= std::size_t(k) + 1) break;
        const double rssO = rss(o);
        if (!(rssO > 0.0)) break;
        const double d1 = 3.0 * double(k - kBest), d2 = 3.0 * (double(n) - double(k));
        const double f = ((rssBest - rssO) / d1) / (rssO / d2);
        if (f > boost::math::quantile(boost::math::fisher_f_distribution<double>(d1, d2), 1.0 - p)) best = o, rssBest = rssO;
    }
    return best;
}

/// One star's outcome (the residual loop's output).
struct StarRecord {
    std::size_t source = 0;
    std::size_t index = 0;
    bool reserved = false;
    double dt = std::numeric_limits<double>::quiet_NaN();      ///< linear dT/T
    double direct = std::numeric_limits<double>::quiet_NaN();  ///< direct dT/T
    double de = std::numeric_limits<double>::quiet_NaN();      ///< |e_star - e_psf|
    double weight = 0.0;                                       ///< weight of dt as a reserved star
    double sizeChi2 = 0.0;                                     ///< its term of the size check
    bool sizeTerm = false;
};

/// Indices and residual statistics of the records of `source` (all records for -1), in record order.
void summariseResiduals(const std::vector<StarRecord>& records, int source, PsfDeterminationResult& result) {
    std::vector<double> usedRes, resRes, resDe, resDirect;
    double sizeChi2 = 0.0;
    int sizeTerms = 0;
    for (const StarRecord& s : records) {
        if (source >= 0 && s.source != std::size_t(source)) continue;
        if (s.sizeTerm) sizeChi2 += s.sizeChi2, ++sizeTerms;
        const double dt = s.dt;
        if (s.reserved) {
            result.reserved.push_back(s.index);
            result.reservedSizeResiduals.push_back(dt);
            result.reservedSizeResidualWeights.push_back(s.weight);
            result.reservedDirectSizeResiduals.push_back(s.direct);
            if (std::isfinite(dt)) {
                resRes.push_back(dt);
                resDe.push_back(s.de);
            }
            if (std::isfinite(s.direct)) resDirect.push_back(s.direct);
        } else {
            result.used.push_back(s.index);
            if (std::isfinite(dt)) usedRes.push_back(dt);
        }
    }
    result.nUsed = int(result.used.size());
    result.sizeChi2 = sizeChi2;
    result.sizeChi2Terms = sizeTerms;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.reservedMeanSizeResidual = resRes.empty() ? nan : std::accumulate(resRes.begin(), resRes.end(), 0.0) / double(resRes.size());
    {
        double sw = 0.0, swx = 0.0;
        for (std::size_t k = 0; k < result.reserved.size(); ++k) {
            const double w = result.reservedSizeResidualWeights[k];
            if (w > 0.0) sw += w, swx += w * result.reservedSizeResiduals[k];
        }
        const double mean = sw > 0.0 ? swx / sw : nan;
        double ss = 0.0;
        for (std::size_t k = 0; k < result.reserved.size(); ++k) {
            const double w = result.reservedSizeResidualWeights[k];
            if (w > 0.0) ss += w * std::pow(result.reservedSizeResiduals[k] - mean, 2);
        }
        result.reservedWeightedMeanSizeResidual = mean;
        result.reservedSizeResidualWeightSum = sw;
        result.reservedSizeResidualWeightedSs = ss;
    }
    result.reservedDirectMedianSizeResidual = resDirect.empty() ? nan : median(resDirect);
    result.reservedMedianSizeResidual = resRes.empty() ? nan : median(resRes);
    result.reservedSizeResidualScatter = resRes.empty() ? nan : robustSigma(resRes, result.reservedMedianSizeResidual);
    result.reservedEllipticityResidual = resDe.empty() ? nan : median(resDe);
    result.usedMedianSizeResidual = usedRes.empty() ? nan : median(usedRes);
}

}  // namespace

int stampSizeFor(double sigma, const PsfDeterminerConfig& config) {
    if (config.stampSize != 0) return config.stampSize;
    return std::clamp(2 * int(std::ceil(config.stampRadiusSigma * sigma)) + 1, 15, 61);
}

double medianSigma(const std::vector<PsfCandidate>& candidates, const std::vector<std::size_t>& indices) {
    std::vector<double> ts;
    for (std::size_t i : indices) ts.push_back(candidates[i].ixx + candidates[i].iyy);
    return std::sqrt(0.5 * median(ts));
}

FitOutput fitPsfStars(const std::vector<FitSource>& sources, const PsfDeterminerConfig& config, int maxStampSize,
                      const std::string& who) {
    // The moments of the stars, the model and the residuals, with the weight floor (PsfDeterminer.h).
    AdaptiveMomentsControl momentsControl = config.moments;
    momentsControl.minWeightVariance = std::max(momentsControl.minWeightVariance, config.minWeightSigma * config.minWeightSigma);
    FitOutput out;
    out.sources.resize(sources.size());
    // Stamp size and sampling, from the median of every offered star.
    std::size_t nSelected = 0;
    double starSigma = 0.0;
    {
        std::vector<double> ts;
        for (const FitSource& src : sources) {
            if (src.images.size() != src.selected.size()) throw LogicError("fitPsfStars: one image per selected star");
            for (std::size_t i : src.selected) ts.push_back((*src.candidates)[i].ixx + (*src.candidates)[i].iyy);
        }
        nSelected = ts.size();
        starSigma = std::sqrt(0.5 * median(ts));
    }
    if (int(nSelected) < config.minStars) {
        throw NumericalError(who + ": only " + std::to_string(nSelected) + " PSF stars selected (minStars " +
                             std::to_string(config.minStars) + ")");
    }
    int n = stampSizeFor(starSigma, config);
    if (maxStampSize > 0 && n > maxStampSize) n = maxStampSize % 2 ? maxStampSize : maxStampSize - 1;
    const int ovs = config.oversampling > 0 ? config.oversampling : (2.3548 * starSigma < config.oversampleBelowFwhm ? 2 : 1);
    const int gridSize = (ovs * n) % 2 ? ovs * n : ovs * n + 1;
    const int half = n / 2, pad = config.padding, big = n + 2 * pad, bigHalf = big / 2;
    // The fit box: the sources' boxes in the model frame (rounded outwards), united.
    Box2I fitBox;
    for (const FitSource& src : sources) {
        if (src.bbox.empty()) throw LogicError("fitPsfStars: a source has an empty bbox");
        const Point2I lo{int(std::floor(src.bbox.minX() + src.offset.x)), int(std::floor(src.bbox.minY() + src.offset.y))};
        const Point2I hi{int(std::ceil(src.bbox.maxX() + src.offset.x)), int(std::ceil(src.bbox.maxY() + src.offset.y))};
        fitBox = fitBox.include(Box2I::fromCorners(lo, hi));
    }

    // Stamps.
    std::vector<Star> stars;
    for (std::size_t si = 0; si < sources.size(); ++si) {
        const FitSource& src = sources[si];
        const std::vector<PsfCandidate>& candidates = *src.candidates;
        out.sources[si].selected = src.selected;
        for (std::size_t k = 0; k < src.selected.size(); ++k) {
            const std::size_t idx = src.selected[k];
            const MaskedImageF& image = *src.images[k];
            const Mask& mask = image.mask();
            const MaskPixel bad = mask.planeBitMaskIfPresent(config.badMaskPlanes);
            const Box2I bbox = image.bbox();
            const PsfCandidate& c = candidates[idx];
            const SecondMoments start = SecondMoments::circle(std::max(0.5, std::sqrt(0.5 * (c.ixx + c.iyy))));
            const AdaptiveMomentsResult am = computeAdaptiveMoments(image.image(), c.position, start, momentsControl, &mask, bad);
            if (!am.converged || std::hypot(am.centre.x - c.position.x, am.centre.y - c.position.y) > 2.0) continue;
            const Point2D m = am.centre;
            const int ix = int(std::floor(m.x + 0.5)), iy = int(std::floor(m.y + 0.5));
            const Box2I bigBox({ix - bigHalf, iy - bigHalf}, big, big), box({ix - half, iy - half}, n, n);
            if (!bbox.contains(bigBox)) continue;
            const Mask sub = mask.subImage(box);
            if (sub.countBits(bad) > 0) continue;
            Image<double> raw = image.image().subImage(bigBox).convertTo<double>();
            bool finite = true;
            for (int y = 0; y < big && finite; ++y)
                for (int x = 0; x < big; ++x)
                    if (!std::isfinite(raw(x, y))) {
                        finite = false;
                        break;
                    }
            if (!finite) continue;
            Star s;
            s.source = si;
            s.index = idx;
            s.image = &image;
            s.offset = src.offset;
            s.centre = m;
            s.moments = am.moments;
            s.phase = {m.x - ix, m.y - iy};
            s.box = box;
            s.data = sincShift(raw, -s.phase.x, -s.phase.y).subImage(box).clone();
            s.data.setXY0({0, 0});
            if (ovs > 1) {
                s.stamp = raw.subImage(box).clone();
                s.stamp.setXY0({0, 0});
                s.padded = raw;
            }
            const Image<double> var = image.variance().subImage(box).convertTo<double>();
            // v0: median variance of the stamp's border pixels; g: slope of (variance - v0) against the signal
            // (least squares over the pixels above 5 sqrt(v0)), so the fit's weights follow the model, not the noise.
            std::vector<double> border;
            double fs = 0.0;
            bool okVar = true;
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    const double v = var(x, y);
                    if (!(v > 0.0) || !std::isfinite(v)) okVar = false;
                    if (x < 2 || y < 2 || x >= n - 2 || y >= n - 2) border.push_back(v);
                    fs += s.data(x, y);
                }
            if (!okVar || !(fs > 0.0)) continue;
            s.skyVariance = median(border);
            {
                double vs = 0.0;
                for (int y = 0; y < n; ++y)
                    for (int x = 0; x < n; ++x) vs += var(x, y);
                s.meanVariance = vs / double(n * n);
            }
            double sdv = 0.0, sdd = 0.0;
            const double floorSignal = 5.0 * std::sqrt(s.skyVariance);
            for (int y = box.minY(); y <= box.maxY(); ++y)
                for (int x = box.minX(); x <= box.maxX(); ++x) {
                    const double d = image.image().atParent({x, y});
                    if (d > floorSignal) {
                        sdv += (image.variance().atParent({x, y}) - s.skyVariance) * d;
                        sdd += d * d;
                    }
                }
            s.gain = sdd > 0.0 && sdv > 0.0 ? sdv / sdd : 0.0;
            s.keep.assign(std::size_t(n) * std::size_t(n), 1);
            s.flux = fs;
            stars.push_back(std::move(s));
        }
    }

    // Reserve split: seeded Fisher-Yates over the usable stars (in selection order).
    {
        std::vector<std::size_t> order(stars.size());
        std::iota(order.begin(), order.end(), std::size_t(0));
        std::mt19937_64 rng(config.seed ^ 0x9E3779B97F4A7C15ULL);
        for (std::size_t i = order.size(); i > 1; --i) {
            const std::size_t j = std::size_t(rng() % i);
            std::swap(order[i - 1], order[j]);
        }
        const std::size_t nReserve = std::size_t(std::floor(config.reserveFraction * double(stars.size()) + 0.5));
        for (std::size_t k = 0; k < nReserve && k < order.size(); ++k) stars[order[k]].reserved = true;
    }

    int order = config.spatialOrder;
    std::vector<Image<double>> components;
    const std::size_t npix = std::size_t(n) * std::size_t(n);
    auto active = [&]() {
        std::vector<Star*> a;
        for (Star& s : stars)
            if (!s.reserved && !s.rejected) a.push_back(&s);
        return a;
    };
    int solverIterations = 0;
    Image<double> previousMean;  // the oversampled constant term of the previous round (the fit's warm start)
    auto fitNative = [&](int ord, const std::vector<Star*>& use) {
        const int nt = PsfexPsf::numTerms(ord);
        const int ntri = nt * (nt + 1) / 2;
        // Per pixel p, weighted least squares over the stars s of D_sp / F_s = sum_k c_kp T_k(s), weight
        // F_s^2 / (mean stamp variance) for unclipped pixels. The weight of a star is the same at every pixel: with
        // per-pixel (photon-noise) weights the cores would lean on the faint stars and the wings on the bright
        // ones, and the noise of the faint stars' D / F (a ratio, biased at order 1/SNR^2) would change the shape.
        std::vector<double> normal(npix * std::size_t(ntri), 0.0), rhs(npix * std::size_t(nt), 0.0);
        for (const Star* sp : use) {
            const Star& st = *sp;
            const Point2D uv = PsfexPsf::normalisedPosition(fitBox, st.modelCentre());
            const auto t = PsfexPsf::polynomialTerms(ord, uv.x, uv.y);
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    const std::size_t pix = std::size_t(y) * std::size_t(n) + std::size_t(x);
                    if (!st.keep[pix]) continue;
                    const double w = st.flux * st.flux / st.meanVariance;
                    const double d = st.data(x, y) / st.flux;
                    double* nm = &normal[pix * std::size_t(ntri)];
                    double* r = &rhs[pix * std::size_t(nt)];
                    for (int k = 0, q = 0; k < nt; ++k) {
                        const double wk = w * t[std::size_t(k)];
                        r[k] += wk * d;
                        for (int l = k; l < nt; ++l) nm[q++] += wk * t[std::size_t(l)];
                    }
                }
        }
        std::vector<Image<double>> comps;
        for (int k = 0; k < nt; ++k) comps.emplace_back(n, n, 0.0);
        Eigen::MatrixXd am(nt, nt);
        Eigen::VectorXd bv(nt);
        for (std::size_t pix = 0; pix < npix; ++pix) {
            const double* nm = &normal[pix * std::size_t(ntri)];
            for (int k = 0, q = 0; k < nt; ++k)
                for (int l = k; l < nt; ++l, ++q) am(k, l) = am(l, k) = nm[q];
            for (int k = 0; k < nt; ++k) bv(k) = rhs[pix * std::size_t(nt) + std::size_t(k)];
            if (!(am(0, 0) > 0.0)) continue;  // every star clipped here: the pixel stays 0
            const Eigen::VectorXd c = am.colPivHouseholderQr().solve(bv);
            const int x = int(pix % std::size_t(n)), y = int(pix / std::size_t(n));
            for (int k = 0; k < nt; ++k) comps[std::size_t(k)](x, y) = c(k);
        }
        return comps;
    };
    // Oversampled: the spatial variation (terms k > 0) from the native fit, upsampled to the nodes (it is smooth, and
    // a difference of stamps at the same phases, so aliasing does not bias it); the constant term fitted on the nodes
    // to the stamps as they are, less the variation, through the interpolant at each star's phase.
    auto fitOversampled = [&](int ord, const std::vector<Star*>& use) {
        const std::vector<Image<double>> native = fitNative(ord, use);
        std::vector<Image<double>> comps{Image<double>(gridSize, gridSize, 0.0)};
        for (std::size_t k = 1; k < native.size(); ++k) comps.push_back(upsampleToNodes(native[k], ovs, gridSize));
        std::vector<OversampledStar> os;
        for (const Star* sp : use) {
            const Star& st = *sp;
            OversampledStar o;
            o.phase = st.phase;
            o.data = st.stamp.clone();
            o.data *= 1.0 / st.flux;
            if (comps.size() > 1) {
                const Point2D uv = PsfexPsf::normalisedPosition(fitBox, st.modelCentre());
                const std::vector<double> t = PsfexPsf::polynomialTerms(ord, uv.x, uv.y);
                Image<double> variation(gridSize, gridSize, 0.0);
                for (std::size_t k = 1; k < comps.size(); ++k)
                    for (int y = 0; y < gridSize; ++y)
                        for (int x = 0; x < gridSize; ++x) variation(x, y) += t[k] * comps[k](x, y);
                const Image<double> v = PsfexPsf::renderNodes(variation, ovs, n, o.phase.x, o.phase.y);
                for (int y = 0; y < n; ++y)
                    for (int x = 0; x < n; ++x) o.data(x, y) -= v(x, y);
            }
            o.weight = Image<double>(n, n, 0.0);
            const double w = st.flux * st.flux / st.meanVariance;
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) o.weight(x, y) = st.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)] ? w : 0.0;
            os.push_back(std::move(o));
        }
        // Warm start: the previous round's solution, or the native constant term upsampled (the same PSF but for the
        // aliasing the oversampled fit corrects).
        const Image<double> warm = previousMean.empty() ? upsampleToNodes(native[0], ovs, gridSize) : previousMean;
        OversampledFitResult fit = fitOversampledPsf(os, ovs, gridSize, warm, OversampledFitControl{});
        solverIterations += fit.iterations;
        comps[0] = std::move(fit.nodes);
        previousMean = comps[0];
        return comps;
    };
    auto fitComponents = [&](int ord, const std::vector<Star*>& use) { return ovs > 1 ? fitOversampled(ord, use) : fitNative(ord, use); };
    const double acc = config.modelAccuracy;
    for (int iter = 0; iter < config.iterations; ++iter) {
        std::vector<Star*> use = active();
        if (int(use.size()) < config.minStars) {
            throw NumericalError("determinePsf: only " + std::to_string(use.size()) + " usable PSF stars (minStars " +
                                 std::to_string(config.minStars) + ")");
        }
        order = config.spatialOrder;
        while (order > 0 && int(use.size()) < config.minStarsPerTerm * PsfexPsf::numTerms(order)) --order;
        if (order > 0 && config.orderSelectionSigma > 0.0) order = orderShownByStars(use, order, fitBox, config);
        components = fitComponents(order, use);
        const PsfexPsf model(fitBox, order, components, ovs);
        // The model in each source's frame (a copy for one source at offset 0).
        std::vector<std::shared_ptr<const PsfexPsf>> frames;
        for (const FitSource& src : sources) frames.push_back(model.reframed(src.bbox, src.offset));
        if (ovs > 1 && iter + 1 < config.iterations) {
            recentreOnModel(frames, stars, n, acc);
            for (Star& st : stars)
                if (!st.rejected) st.recentreData();
        }
        // Fluxes, pixel clipping and chi^2 of every star (reserved ones too, for the record).
        for (Star& st : stars) {
            if (st.rejected) continue;
            // The model on the star's stamp: at phase 0 for the recentred native stamps, at the star's phase otherwise.
            const PsfexPsf& sm = *frames[st.source];
            const Image<double> m = ovs == 1 ? sm.computeKernelImage(st.centre) : sm.computeImage(st.centre);
            const Image<double>& obs = st.observed(ovs);
            double smd = 0, smm = 0;
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    if (!st.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)]) continue;
                    const double w = 1.0 / pixelVariance(st, st.flux * m(x, y), acc);
                    smd += w * m(x, y) * obs(x, y);
                    smm += w * m(x, y) * m(x, y);
                }
            if (smm > 0.0 && smd > 0.0) st.flux = smd / smm;
            // From the second round on, clip pixels above the model by more than pixelClipSigma (neighbours, cosmic
            // rays: light the PSF does not have), grown by one pixel.
            std::vector<unsigned char> off(npix, 0);
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    const double d = obs(x, y) - st.flux * m(x, y);
                    if (iter > 0 && d > 0.0 && d * d > config.pixelClipSigma * config.pixelClipSigma * pixelVariance(st, st.flux * m(x, y), acc))
                        off[std::size_t(y) * std::size_t(n) + std::size_t(x)] = 1;
                }
            std::size_t nKeep = 0;
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    bool near = false;
                    for (int dy = -1; dy <= 1 && !near; ++dy)
                        for (int dx = -1; dx <= 1; ++dx) {
                            const int xx = x + dx, yy = y + dy;
                            if (xx >= 0 && yy >= 0 && xx < n && yy < n && off[std::size_t(yy) * std::size_t(n) + std::size_t(xx)]) {
                                near = true;
                                break;
                            }
                        }
                    st.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)] = near ? 0 : 1;
                    nKeep += near ? 0 : 1;
                }
            double chi2 = 0;
            for (int y = 0; y < n; ++y)
                for (int x = 0; x < n; ++x) {
                    if (!st.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)]) continue;
                    const double d = obs(x, y) - st.flux * m(x, y);
                    chi2 += d * d / pixelVariance(st, st.flux * m(x, y), acc);
                }
            st.chi2 = nKeep > 1 ? chi2 / double(nKeep - 1) : std::numeric_limits<double>::infinity();
            // A star that loses more than maxClippedFraction of its pixels is not a clean PSF star.
            if (!st.reserved && double(nKeep) < (1.0 - config.maxClippedFraction) * double(npix) && int(active().size()) > config.minStars)
                st.rejected = true;
        }
        if (iter + 1 == config.iterations) break;
        use = active();
        std::vector<double> chis;
        for (const Star* sp : use) chis.push_back(sp->chi2);
        const double med = median(chis), sig = robustSigma(chis, med);
        const double limit = med + config.outlierSigma * std::max(sig, 1e-12);
        std::vector<Star*> order2 = use;
        std::sort(order2.begin(), order2.end(), [](const Star* p, const Star* q) { return p->chi2 > q->chi2; });
        int remaining = int(use.size());
        for (Star* sp : order2) {
            if (sp->chi2 <= limit || remaining <= config.minStars) break;
            sp->rejected = true;
            --remaining;
        }
    }
    out.model = PsfexPsf::make(fitBox, order, components, ovs);
    std::vector<std::shared_ptr<const PsfexPsf>> finalFrames;
    for (const FitSource& src : sources) finalFrames.push_back(out.model->reframed(src.bbox, src.offset));

    // Residuals. P = the model at the star's centre on the image grid, I = the image over the same box, F = the
    // star's fitted flux, R = I / F - P. The direct residual compares the adaptive moments of I and P; the
    // linear one is the first-order change of T(P) along R by a central difference,
    //   dT/T = (T(P + eps R) - T(P - eps R)) / (2 eps T(P)),
    // which cancels the even-order terms, so the (always positive) second-order noise bias of T(I) is absent.
    constexpr double eps = 0.1;
    constexpr double kReservedSizeFloor = 0.003;  // of a reserved star's dT/T noise, in its weight (header)
    std::vector<StarRecord> records;
    double sizeChi2 = 0.0;
    int sizeTerms = 0;
    for (const Star& s : stars) {
        if (s.rejected) continue;
        const PsfexPsf& psf = *finalFrames[s.source];
        const MaskedImageF& image = *s.image;
        StarRecord rec;
        rec.source = s.source;
        rec.index = s.index;
        rec.reserved = s.reserved;
        const Image<double> pimg = psf.computeImage(s.centre);
        const double sigma0 = std::sqrt(0.5 * s.moments.trace());
        const AdaptiveMomentsResult pr = computeAdaptiveMoments(pimg, s.centre, SecondMoments::circle(sigma0), momentsControl);
        const SecondMoments& pm = pr.moments;
        if (pr.converged && pm.trace() > 0.0 && s.flux > 0.0) {
            // Size consistency: the star's ln T against the model's, with the star's size noise.
            const double snr = s.snr();
            const double var = std::pow(config.sizeNoise / snr, 2) + config.minSizeTolerance * config.minSizeTolerance;
            rec.sizeChi2 = std::pow(std::log(s.moments.trace() / pm.trace()), 2) / var;
            rec.sizeTerm = true;
            sizeChi2 += rec.sizeChi2;
            ++sizeTerms;
        }
        const double nan = std::numeric_limits<double>::quiet_NaN();
        double dt = nan, de = nan, direct = nan;
        const std::size_t nKept = std::size_t(std::count(s.keep.begin(), s.keep.end(), 1));
        bool clean = double(nKept) >= (1.0 - config.maxClippedFraction) * double(npix);
        for (int y = half - 1; y <= half + 1; ++y)  // and the core is not clipped
            for (int x = half - 1; x <= half + 1; ++x) clean = clean && s.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)];
        if (pr.converged && image.bbox().contains(pimg.bbox()) && s.flux > 0.0 && clean) {
            direct = (s.moments.trace() - pm.trace()) / pm.trace();
            de = std::hypot(s.moments.e1() - pm.e1(), s.moments.e2() - pm.e2());
            const Image<double> data = image.image().subImage(pimg.bbox()).convertTo<double>();
            Image<double> plus(pimg.width(), pimg.height(), 0.0), minus(pimg.width(), pimg.height(), 0.0);
            for (int y = 0; y < pimg.height(); ++y)
                for (int x = 0; x < pimg.width(); ++x) {
                    // Pixels clipped from the star's stamp (same box: the nearest pixel's N x N) are neighbours or
                    // defects, not the PSF: no residual there.
                    const bool kept = pimg.width() != n || s.keep[std::size_t(y) * std::size_t(n) + std::size_t(x)];
                    const double r = kept ? data(x, y) / s.flux - pimg(x, y) : 0.0;
                    plus(x, y) = pimg(x, y) + eps * r;
                    minus(x, y) = pimg(x, y) - eps * r;
                }
            plus.setXY0(pimg.xy0());
            minus.setXY0(pimg.xy0());
            const double tp = momentsTrace(plus, s.centre, sigma0, momentsControl);
            const double tm = momentsTrace(minus, s.centre, sigma0, momentsControl);
            dt = (tp - tm) / (2.0 * eps * pm.trace());
        }
        rec.dt = dt;
        rec.direct = direct;
        rec.de = de;
        rec.weight = std::isfinite(dt) ? 1.0 / (std::pow(config.sizeNoise / s.snr(), 2) + kReservedSizeFloor * kReservedSizeFloor) : 0.0;
        records.push_back(rec);
    }
    int nUsed = 0;
    for (const StarRecord& r : records) nUsed += r.reserved ? 0 : 1;
    if (nUsed < config.sizeCheckMaxStars && sizeTerms > 0) {
        // chi^2 quantile at sizeCheckSigma normal deviates for sizeTerms degrees of freedom (Wilson-Hilferty).
        const double k = double(sizeTerms), h = 2.0 / (9.0 * k);
        const double limit = k * std::pow(1.0 - h + config.sizeCheckSigma * std::sqrt(h), 3);
        if (sizeChi2 > limit) {
            throw NumericalError(who + ": the " + std::to_string(sizeTerms) + " PSF stars disagree in size (chi^2 " +
                                 std::to_string(sizeChi2) + " > " + std::to_string(limit) + "): galaxies among them");
        }
    }
    auto fill = [&](PsfDeterminationResult& r, std::shared_ptr<const Psf> psf) {
        r.psf = std::move(psf);
        r.stampSize = n;
        r.oversampling = ovs;
        r.spatialOrder = order;
        r.solverIterations = solverIterations;
    };
    for (std::size_t si = 0; si < sources.size(); ++si) {
        fill(out.sources[si], finalFrames[si]);
        summariseResiduals(records, int(si), out.sources[si]);
    }
    fill(out.pooled, out.model);
    summariseResiduals(records, -1, out.pooled);
    out.pooled.used.clear();
    out.pooled.reserved.clear();
    return out;
}

}  // namespace drp::psffit
