#include "core/PsfexPsf.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <utility>

#include "core/Error.h"

namespace drp {

namespace {

std::shared_ptr<const Psf> makeFromRecord(const PsfRecord& r) {
    const double size = r.scalar("size"), order = r.scalar("spatialOrder");
    if (!(size >= 3 && size <= 1001 && size == std::floor(size)) || int(size) % 2 == 0) {
        throw InvalidInputError("PsfexPsf record: size must be an odd integer >= 3");
    }
    if (!(order >= 0 && order <= PsfexPsf::kMaxSpatialOrder && order == std::floor(order))) {
        throw InvalidInputError("PsfexPsf record: spatialOrder must be an integer in [0, 3]");
    }
    const auto& bb = r.get("bbox");
    if (bb.size() != 4) throw InvalidInputError("PsfexPsf record: bbox must have 4 values");
    for (double v : bb)
        if (!(std::fabs(v) < 1e9 && v == std::floor(v))) throw InvalidInputError("PsfexPsf record: bbox values must be integers");
    const Box2I bbox({int(bb[0]), int(bb[1])}, int(bb[2]), int(bb[3]));
    double q = 1.0;
    if (r.has("oversampling")) {
        q = r.scalar("oversampling");
        if (!(q >= 1 && q <= PsfexPsf::kMaxOversampling && q == std::floor(q))) {
            throw InvalidInputError("PsfexPsf record: oversampling must be an integer in [1, 3]");
        }
    }
    const int n = int(size), nt = PsfexPsf::numTerms(int(order));
    const auto& c = r.get("coefficients");
    if (c.size() != std::size_t(nt) * std::size_t(n) * std::size_t(n)) {
        throw InvalidInputError("PsfexPsf record: coefficients must have nTerms x size x size values");
    }
    std::vector<Image<double>> comps;
    std::size_t k = 0;
    for (int t = 0; t < nt; ++t) {
        Image<double> img(n, n, 0.0);
        for (int y = 0; y < n; ++y)
            for (int x = 0; x < n; ++x) img(x, y) = c[k++];
        comps.push_back(std::move(img));
    }
    return PsfexPsf::make(bbox, int(order), std::move(comps), int(q));
}

/// The centred cubic B-spline.
double bspline3(double x) {
    const double ax = std::fabs(x);
    if (ax < 1.0) return 2.0 / 3.0 - ax * ax + 0.5 * ax * ax * ax;
    if (ax < 2.0) return (2.0 - ax) * (2.0 - ax) * (2.0 - ax) / 6.0;
    return 0.0;
}

/// In place: the coefficients c of the cubic B-spline through the samples v (c_{i-1} / 6 + 2 c_i / 3 + c_{i+1} / 6 = v_i,
/// coefficients beyond the ends 0), by the tridiagonal (Thomas) solve. `work` has v's size.
void bsplinePrefilter(double* v, int n, std::ptrdiff_t stride, std::vector<double>& work) {
    constexpr double a = 1.0 / 6.0, b = 2.0 / 3.0;
    work[0] = a / b;
    v[0] /= b;
    for (int i = 1; i < n; ++i) {
        const double den = b - a * work[std::size_t(i - 1)];
        work[std::size_t(i)] = a / den;
        v[i * stride] = (v[i * stride] - a * v[(i - 1) * stride]) / den;
    }
    for (int i = n - 2; i >= 0; --i) v[i * stride] -= work[std::size_t(i)] * v[(i + 1) * stride];
}

/// Node index of the first of the six taps of native pixel i (middle pixel h) at sub-pixel offset d, and the weights.
struct Taps {
    int first0 = 0;  ///< first tap of pixel 0; pixel i adds q i
    std::array<double, PsfexPsf::kTaps> w{};
};

Taps tapsFor(int q, int gridSize, int n, double d) {
    const int c = gridSize / 2, h = n / 2;
    const double t0 = double(c - q * h) - double(q) * d;  // grid coordinate of pixel 0's centre
    const double fl = std::floor(t0);
    Taps taps;
    taps.first0 = int(fl) - 1;
    taps.w = PsfexPsf::interpolationWeights(t0);
    return taps;
}

}  // namespace

void registerPsfexPsf() {
    static const bool once = [] {
        Psf::registerType(PsfexPsf::kTypeName, makeFromRecord);
        return true;
    }();
    (void)once;
}

std::vector<double> PsfexPsf::polynomialTerms(int order, double u, double v) {
    std::vector<double> t;
    t.reserve(std::size_t(numTerms(order)));
    for (int deg = 0; deg <= order; ++deg)
        for (int py = 0; py <= deg; ++py) t.push_back(std::pow(u, deg - py) * std::pow(v, py));
    return t;
}

Point2D PsfexPsf::normalisedPosition(const Box2I& bbox, Point2D p) {
    const double cx = 0.5 * (bbox.minX() + bbox.maxX()), cy = 0.5 * (bbox.minY() + bbox.maxY());
    const double hx = std::max(0.5, 0.5 * (bbox.width() - 1)), hy = std::max(0.5, 0.5 * (bbox.height() - 1));
    return {(p.x - cx) / hx, (p.y - cy) / hy};
}

std::array<double, PsfexPsf::kTaps> PsfexPsf::interpolationWeights(double t) {
    const double frac = t - std::floor(t);
    std::array<double, kTaps> w{};
    for (int a = 0; a < kTaps; ++a) w[std::size_t(a)] = bspline3(frac + 1.0 - double(a));
    return w;
}

Image<double> PsfexPsf::nodesFromSamples(const Image<double>& samples) {
    Image<double> c = samples.clone();
    c.setXY0({0, 0});
    const int w = c.width(), h = c.height();
    std::vector<double> work(std::size_t(std::max(w, h)));
    for (int y = 0; y < h; ++y) bsplinePrefilter(c.row(y), w, 1, work);
    if (h > 1) {
        const std::ptrdiff_t stride = c.row(1) - c.row(0);
        for (int x = 0; x < w; ++x) bsplinePrefilter(c.row(0) + x, h, stride, work);
    }
    return c;
}

namespace {

/// The pixels i in [lo, hi) whose taps first + q i .. + kTaps - 1 all lie in [0, m) (the others need bounds checks).
std::pair<int, int> interiorPixels(int first, int q, int n, int m) {
    const int lo = first >= 0 ? 0 : (-first + q - 1) / q;
    const int last = m - PsfexPsf::kTaps - first;  // q i <= last
    const int hi = last < 0 ? 0 : std::min(n, last / q + 1);
    return {std::min(lo, hi), hi};
}

}  // namespace

Image<double> PsfexPsf::renderNodes(const Image<double>& nodes, int q, int n, double dx, double dy) {
    const int m = nodes.width();
    const Taps tx = tapsFor(q, m, n, dx), ty = tapsFor(q, m, n, dy);
    const auto [iLo, iHi] = interiorPixels(tx.first0, q, n, m);
    const double w0 = tx.w[0], w1 = tx.w[1], w2 = tx.w[2], w3 = tx.w[3];
    // Rows first: tmp(i, y) for the node rows the columns pass reads.
    const int yLo = std::max(0, ty.first0), yHi = std::min(m - 1, ty.first0 + q * (n - 1) + kTaps - 1);
    Image<double> tmp(n, m, 0.0);
    for (int y = yLo; y <= yHi; ++y) {
        const double* row = nodes.row(y);
        double* t = tmp.row(y);
        auto checked = [&](int i) {
            const int f = tx.first0 + q * i;
            double acc = 0.0;
            for (int a = 0; a < kTaps; ++a) {
                const int x = f + a;
                if (x >= 0 && x < m) acc += tx.w[std::size_t(a)] * row[x];
            }
            t[i] = acc;
        };
        for (int i = 0; i < iLo; ++i) checked(i);
        for (int i = iLo; i < iHi; ++i) {
            const double* r = row + tx.first0 + q * i;
            t[i] = w0 * r[0] + w1 * r[1] + w2 * r[2] + w3 * r[3];
        }
        for (int i = iHi; i < n; ++i) checked(i);
    }
    Image<double> out(n, n, 0.0);
    for (int j = 0; j < n; ++j) {
        const int f = ty.first0 + q * j;
        double* o = out.row(j);
        for (int a = 0; a < kTaps; ++a) {
            const int y = f + a;
            if (y < 0 || y >= m) continue;
            const double w = ty.w[std::size_t(a)];
            const double* t = tmp.row(y);
            for (int i = 0; i < n; ++i) o[i] += w * t[i];
        }
    }
    return out;
}

void PsfexPsf::accumulateNodes(const Image<double>& pixels, int q, double dx, double dy, Image<double>& nodes, bool squared) {
    const int m = nodes.width(), n = pixels.width();
    Taps tx = tapsFor(q, m, n, dx), ty = tapsFor(q, m, n, dy);
    if (squared)
        for (int a = 0; a < kTaps; ++a) tx.w[std::size_t(a)] *= tx.w[std::size_t(a)], ty.w[std::size_t(a)] *= ty.w[std::size_t(a)];
    const auto [iLo, iHi] = interiorPixels(tx.first0, q, n, m);
    const double w0 = tx.w[0], w1 = tx.w[1], w2 = tx.w[2], w3 = tx.w[3];
    const int yLo = std::max(0, ty.first0), yHi = std::min(m - 1, ty.first0 + q * (n - 1) + kTaps - 1);
    Image<double> tmp(n, m, 0.0);  // tmp(i, y) = sum_j wy(j -> y) pixels(i, j)
    for (int j = 0; j < n; ++j) {
        const int f = ty.first0 + q * j;
        const double* p = pixels.row(j);
        for (int a = 0; a < kTaps; ++a) {
            const int y = f + a;
            if (y < 0 || y >= m) continue;
            const double w = ty.w[std::size_t(a)];
            double* t = tmp.row(y);
            for (int i = 0; i < n; ++i) t[i] += w * p[i];
        }
    }
    for (int y = yLo; y <= yHi; ++y) {
        const double* t = tmp.row(y);
        double* row = nodes.row(y);
        auto checked = [&](int i) {
            const int f = tx.first0 + q * i;
            for (int a = 0; a < kTaps; ++a) {
                const int x = f + a;
                if (x >= 0 && x < m) row[x] += tx.w[std::size_t(a)] * t[i];
            }
        };
        for (int i = 0; i < iLo; ++i) checked(i);
        for (int i = iLo; i < iHi; ++i) {
            double* r = row + tx.first0 + q * i;
            const double v = t[i];
            r[0] += w0 * v, r[1] += w1 * v, r[2] += w2 * v, r[3] += w3 * v;
        }
        for (int i = iHi; i < n; ++i) checked(i);
    }
}

PsfexPsf::PsfexPsf(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components, int oversampling)
    : bbox_(bbox), order_(spatialOrder), q_(oversampling), components_(std::move(components)) {
    registerPsfexPsf();
    if (bbox_.empty()) throw InvalidInputError("PsfexPsf: the bbox must not be empty");
    if (order_ < 0 || order_ > kMaxSpatialOrder) throw InvalidInputError("PsfexPsf: spatialOrder must be in [0, 3]");
    if (int(components_.size()) != numTerms(order_)) {
        throw InvalidInputError("PsfexPsf: expected " + std::to_string(numTerms(order_)) + " components, got " +
                                std::to_string(components_.size()));
    }
    if (q_ < 1 || q_ > kMaxOversampling) throw InvalidInputError("PsfexPsf: oversampling must be in [1, 3]");
    gridSize_ = components_.front().width();
    if (gridSize_ < 3 || gridSize_ % 2 == 0) throw InvalidInputError("PsfexPsf: the grid size must be odd and >= 3");
    const int c0 = gridSize_ / 2, h = c0 / q_;
    if (h < 1) throw InvalidInputError("PsfexPsf: the grid must reach at least one pixel from the centre");
    size_ = 2 * h + 1;
    for (auto& c : components_) {
        if (c.width() != gridSize_ || c.height() != gridSize_) throw InvalidInputError("PsfexPsf: components must all be M x M");
        c = c.clone();
        c.setXY0({0, 0});
        for (int y = 0; y < gridSize_; ++y)
            for (int x = 0; x < gridSize_; ++x)
                if (!std::isfinite(c(x, y))) throw InvalidInputError("PsfexPsf: non-finite component pixel");
        // Moments of the component's stamp at phase 0 (the kernel image is linear in the components).
        const Image<double> stamp = q_ == 1 ? c : renderNodes(c, q_, size_, 0.0, 0.0);
        std::array<double, 6> m{};
        for (int v = -h; v <= h; ++v)
            for (int u = -h; u <= h; ++u) {
                const double val = stamp(h + u, h + v), px = u, py = v;
                m[0] += val, m[1] += val * px, m[2] += val * py, m[3] += val * px * px, m[4] += val * py * py, m[5] += val * px * py;
            }
        componentMoments_.push_back(m);
    }
}

std::shared_ptr<const PsfexPsf> PsfexPsf::reframed(const Box2I& bbox, Point2D offset) const {
    if (bbox.empty()) throw InvalidInputError("PsfexPsf::reframed: the bbox must not be empty");
    if (!std::isfinite(offset.x) || !std::isfinite(offset.y)) throw InvalidInputError("PsfexPsf::reframed: non-finite offset");
    if (bbox == bbox_ && offset.x == 0.0 && offset.y == 0.0) return make(bbox_, order_, components_, q_);
    // Both normalisations are affine, so u = a_x u' + b_x (and v likewise): a and b from two points a pixel apart, each
    // normalised in the new frame (u') and, shifted by the offset, in this one (u).
    const Point2D p0{double(bbox.minX()), double(bbox.minY())}, p1{p0.x + 1.0, p0.y + 1.0};
    const Point2D n0 = normalisedPosition(bbox, p0), n1 = normalisedPosition(bbox, p1);
    const Point2D m0 = normalisedPosition(bbox_, {p0.x + offset.x, p0.y + offset.y});
    const Point2D m1 = normalisedPosition(bbox_, {p1.x + offset.x, p1.y + offset.y});
    const double ax = (m1.x - m0.x) / (n1.x - n0.x), bx = m0.x - ax * n0.x;
    const double ay = (m1.y - m0.y) / (n1.y - n0.y), by = m0.y - ay * n0.y;
    // Term index of u^i v^j (the header's order: degree-major, then by the power of v).
    auto termIndex = [](int i, int j) { const int d = i + j; return d * (d + 1) / 2 + j; };
    auto binomial = [](int n, int k) {
        double c = 1.0;
        for (int t = 1; t <= k; ++t) c = c * double(n - k + t) / double(t);
        return c;
    };
    auto power = [](double x, int e) {
        double r = 1.0;
        for (int t = 0; t < e; ++t) r *= x;
        return r;
    };
    const int nt = numTerms(order_);
    // T_(i,j)(u, v) = (a_x u' + b_x)^i (a_y v' + b_y)^j = sum_{i' <= i, j' <= j} C(i, i') C(j, j') a_x^i' b_x^(i-i')
    // a_y^j' b_y^(j-j') u'^i' v'^j': new component (i', j') = sum over (i, j) of that factor times component (i, j).
    std::vector<Image<double>> comps;
    for (int k = 0; k < nt; ++k) comps.emplace_back(gridSize_, gridSize_, 0.0);
    for (int d = 0; d <= order_; ++d)
        for (int j = 0; j <= d; ++j) {
            const int i = d - j;
            const Image<double>& src = components_[std::size_t(termIndex(i, j))];
            for (int i2 = 0; i2 <= i; ++i2)
                for (int j2 = 0; j2 <= j; ++j2) {
                    const double f = binomial(i, i2) * power(ax, i2) * power(bx, i - i2) * binomial(j, j2) * power(ay, j2) *
                                     power(by, j - j2);
                    if (f == 0.0) continue;
                    Image<double>& dst = comps[std::size_t(termIndex(i2, j2))];
                    for (int y = 0; y < gridSize_; ++y) {
                        const double* s = src.row(y);
                        double* o = dst.row(y);
                        for (int x = 0; x < gridSize_; ++x) o[x] += f * s[x];
                    }
                }
        }
    return make(bbox, order_, std::move(comps), q_);
}

PsfShape PsfexPsf::doComputeShape(Point2D position) const {
    const Point2D uv = normalisedPosition(bbox_, position);
    const std::vector<double> t = polynomialTerms(order_, uv.x, uv.y);
    std::array<double, 6> m{};
    for (std::size_t k = 0; k < t.size(); ++k)
        for (std::size_t j = 0; j < 6; ++j) m[j] += t[k] * componentMoments_[k][j];
    if (!(m[0] > 0.0) || !std::isfinite(m[0])) throw NumericalError("PsfexPsf: the model has a non-positive sum at this position");
    const double mx = m[1] / m[0], my = m[2] / m[0];
    PsfShape shape;
    shape.ixx = m[3] / m[0] - mx * mx;
    shape.iyy = m[4] / m[0] - my * my;
    shape.ixy = m[5] / m[0] - mx * my;
    return shape;
}

Image<double> PsfexPsf::evaluateUnnormalised(Point2D position) const {
    const Point2D uv = normalisedPosition(bbox_, position);
    const std::vector<double> t = polynomialTerms(order_, uv.x, uv.y);
    Image<double> out(gridSize_, gridSize_, 0.0);
    for (std::size_t k = 0; k < t.size(); ++k) {
        const double c = t[k];
        const Image<double>& comp = components_[k];
        for (int y = 0; y < gridSize_; ++y) {
            const double* src = comp.row(y);
            double* dst = out.row(y);
            for (int x = 0; x < gridSize_; ++x) dst[x] += c * src[x];
        }
    }
    return out;
}

namespace {

void normaliseModel(Image<double>& k) {
    double s = 0.0;
    for (int y = 0; y < k.height(); ++y)
        for (int x = 0; x < k.width(); ++x) s += k(x, y);
    if (!(s > 0.0) || !std::isfinite(s)) throw NumericalError("PsfexPsf: the model has a non-positive sum at this position");
    k *= 1.0 / s;
}

}  // namespace

Image<double> PsfexPsf::doComputeKernelImage(Point2D position) const {
    Image<double> k = evaluateUnnormalised(position);
    if (q_ > 1) k = renderNodes(k, q_, size_, 0.0, 0.0);
    normaliseModel(k);
    return k;
}

Image<double> PsfexPsf::doComputeImage(Point2D position) const {
    if (q_ == 1) return Psf::doComputeImage(position);
    const double dx = position.x - std::floor(position.x + 0.5), dy = position.y - std::floor(position.y + 0.5);
    Image<double> k = renderNodes(evaluateUnnormalised(position), q_, size_, dx, dy);
    normaliseModel(k);
    return k;
}

PsfRecord PsfexPsf::doToRecord() const {
    PsfRecord r;
    r.set("size", {double(gridSize_)});
    r.set("spatialOrder", {double(order_)});
    r.set("bbox", {double(bbox_.minX()), double(bbox_.minY()), double(bbox_.width()), double(bbox_.height())});
    std::vector<double> c;
    c.reserve(components_.size() * std::size_t(gridSize_) * std::size_t(gridSize_));
    for (const auto& comp : components_)
        for (int y = 0; y < gridSize_; ++y)
            for (int x = 0; x < gridSize_; ++x) c.push_back(comp(x, y));
    r.set("coefficients", std::move(c));
    if (q_ > 1) r.set("oversampling", {double(q_)});
    return r;
}

}  // namespace drp
