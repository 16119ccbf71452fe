#include "core/PsfexPsf.h"

#include <algorithm>
#include <cmath>
#include <string>

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
    return PsfexPsf::make(bbox, int(order), std::move(comps));
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

PsfexPsf::PsfexPsf(const Box2I& bbox, int spatialOrder, std::vector<Image<double>> components)
    : bbox_(bbox), order_(spatialOrder), components_(std::move(components)) {
    registerPsfexPsf();
    if (bbox_.empty()) throw InvalidInputError("PsfexPsf: the bbox must not be empty");
    if (order_ < 0 || order_ > kMaxSpatialOrder) throw InvalidInputError("PsfexPsf: spatialOrder must be in [0, 3]");
    if (int(components_.size()) != numTerms(order_)) {
        throw InvalidInputError("PsfexPsf: expected " + std::to_string(numTerms(order_)) + " components, got " +
                                std::to_string(components_.size()));
    }
    size_ = components_.front().width();
    if (size_ < 3 || size_ % 2 == 0) throw InvalidInputError("PsfexPsf: the stamp size must be odd and >= 3");
    for (auto& c : components_) {
        if (c.width() != size_ || c.height() != size_) throw InvalidInputError("PsfexPsf: components must all be N x N");
        c = c.clone();
        c.setXY0({0, 0});
        for (int y = 0; y < size_; ++y)
            for (int x = 0; x < size_; ++x)
                if (!std::isfinite(c(x, y))) throw InvalidInputError("PsfexPsf: non-finite component pixel");
        std::array<double, 6> m{};
        for (int y = 0; y < size_; ++y)
            for (int x = 0; x < size_; ++x) {
                const double v = c(x, y), px = x - size_ / 2, py = y - size_ / 2;
                m[0] += v, m[1] += v * px, m[2] += v * py, m[3] += v * px * px, m[4] += v * py * py, m[5] += v * px * py;
            }
        componentMoments_.push_back(m);
    }
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
    Image<double> out(size_, size_, 0.0);
    for (std::size_t k = 0; k < t.size(); ++k) {
        const double c = t[k];
        const Image<double>& comp = components_[k];
        for (int y = 0; y < size_; ++y) {
            const double* src = comp.row(y);
            double* dst = out.row(y);
            for (int x = 0; x < size_; ++x) dst[x] += c * src[x];
        }
    }
    return out;
}

Image<double> PsfexPsf::doComputeKernelImage(Point2D position) const {
    Image<double> k = evaluateUnnormalised(position);
    double s = 0.0;
    for (int y = 0; y < size_; ++y)
        for (int x = 0; x < size_; ++x) s += k(x, y);
    if (!(s > 0.0) || !std::isfinite(s)) throw NumericalError("PsfexPsf: the model has a non-positive sum at this position");
    k *= 1.0 / s;
    return k;
}

PsfRecord PsfexPsf::doToRecord() const {
    PsfRecord r;
    r.set("size", {double(size_)});
    r.set("spatialOrder", {double(order_)});
    r.set("bbox", {double(bbox_.minX()), double(bbox_.minY()), double(bbox_.width()), double(bbox_.height())});
    std::vector<double> c;
    c.reserve(components_.size() * std::size_t(size_) * std::size_t(size_));
    for (const auto& comp : components_)
        for (int y = 0; y < size_; ++y)
            for (int x = 0; x < size_; ++x) c.push_back(comp(x, y));
    r.set("coefficients", std::move(c));
    return r;
}

}  // namespace drp
