#include "core/MoffatPsf.h"
#include "core/Quadrature.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>
#include <vector>

#include "core/Error.h"

namespace drp {

namespace {

constexpr double kMaxEllipticity = 0.9;
constexpr int kMinKernel = 15, kMaxKernel = 101;

/// Gauss-Legendre nodes (on [-1/2, 1/2]) and weights (summing to 1) of order n, by Newton on P_n.
struct GaussLegendre {
    std::vector<double> x, w;
};

const GaussLegendre& gaussLegendre(int n) {
    static const std::vector<GaussLegendre> rules = [] {
        std::vector<GaussLegendre> r(17);
        for (int order = 1; order <= 16; ++order) {
            GaussLegendre& gl = r[std::size_t(order)];
            GaussLegendreRule rule = gaussLegendreRule(order);  // on [-1, 1]: map to [-1/2, 1/2]
            for (std::size_t k = 0; k < rule.nodes.size(); ++k) {
                gl.x.push_back(0.5 * rule.nodes[k]);
                gl.w.push_back(0.5 * rule.weights[k]);
            }
        }
        return r;
    }();
    return rules[std::size_t(std::clamp(n, 1, 16))];
}

/// (1 + rho^2)^(-beta), with a fast path for half-integer and integer beta.
struct MoffatFunction {
    double beta;
    int intPart;
    bool halfInteger, exact;
    explicit MoffatFunction(double b) : beta(b) {
        intPart = int(std::floor(b));
        const double frac = b - intPart;
        exact = intPart <= 12 && (frac == 0.0 || frac == 0.5);
        halfInteger = frac == 0.5;
    }
    double operator()(double rho2) const {
        const double v = 1.0 + rho2;
        if (!exact) return std::exp(-beta * std::log(v));
        double p = 1.0;
        for (int k = 0; k < intPart; ++k) p *= v;
        if (halfInteger) p *= std::sqrt(v);
        return 1.0 / p;
    }
};

/// w (1 + qa x^2 + by x + cy)^-(K + Half/2) over x[k0, k1): the integer power unrolled at compile time.
template <int K, bool Half>
void moffatRow(const double* xp, const double* wp, double* vp, int k0, int k1, double qa, double by, double cy) {
    for (int k = k0; k < k1; ++k) {
        const double x = xp[k], v = 1.0 + qa * x * x + by * x + cy;
        double p = v;
        for (int i = 1; i < K; ++i) p *= v;
        if constexpr (Half) p *= std::sqrt(v);
        vp[k] = wp[k] / p;
    }
}

void moffatRowDispatch(int k, bool half, const double* xp, const double* wp, double* vp, int k0, int k1, double qa,
                       double by, double cy) {
    switch (k * 2 + (half ? 1 : 0)) {
        case 2: return moffatRow<1, false>(xp, wp, vp, k0, k1, qa, by, cy);
        case 3: return moffatRow<1, true>(xp, wp, vp, k0, k1, qa, by, cy);
        case 4: return moffatRow<2, false>(xp, wp, vp, k0, k1, qa, by, cy);
        case 5: return moffatRow<2, true>(xp, wp, vp, k0, k1, qa, by, cy);
        case 6: return moffatRow<3, false>(xp, wp, vp, k0, k1, qa, by, cy);
        case 7: return moffatRow<3, true>(xp, wp, vp, k0, k1, qa, by, cy);
        case 8: return moffatRow<4, false>(xp, wp, vp, k0, k1, qa, by, cy);
        case 9: return moffatRow<4, true>(xp, wp, vp, k0, k1, qa, by, cy);
        case 10: return moffatRow<5, false>(xp, wp, vp, k0, k1, qa, by, cy);
        case 11: return moffatRow<5, true>(xp, wp, vp, k0, k1, qa, by, cy);
        case 12: return moffatRow<6, false>(xp, wp, vp, k0, k1, qa, by, cy);
        default: return moffatRow<6, true>(xp, wp, vp, k0, k1, qa, by, cy);
    }
}

/// The quadratic form rho^2 = qa x^2 + 2 qb x y + qc y^2 of the parameters, and the truncation.
struct MoffatGeometry {
    double alpha, qa, qb, qc, rhoTrunc2, gradMax, alphaMin;
};

MoffatGeometry geometry(const MoffatParameters& p, int kernelSize) {
    MoffatGeometry g{};
    g.alpha = MoffatPsf::alphaFromFwhm(p.fwhm, p.beta);
    const double e = std::sqrt(p.e1 * p.e1 + p.e2 * p.e2), f = 1.0 / std::sqrt(1.0 - e * e);
    const double a2 = g.alpha * g.alpha;
    // S^-1 = [[1 - e1, -e2], [-e2, 1 + e1]] / sqrt(1 - e^2)
    g.qa = f * (1.0 - p.e1) / a2;
    g.qb = -f * p.e2 / a2;
    g.qc = f * (1.0 + p.e1) / a2;
    const double lamMax = f * (1.0 + e), lamMin = f * (1.0 - e);  // eigenvalues of S
    const double half = 0.5 * (kernelSize - 1);
    const double rhoT = half / (g.alpha * std::sqrt(lamMax));
    g.rhoTrunc2 = rhoT * rhoT;
    g.gradMax = 1.0 / (g.alpha * std::sqrt(lamMin));  // max |grad rho| per pixel
    g.alphaMin = g.alpha * std::sqrt(lamMin);
    return g;
}

/// Gauss-Legendre order giving ~1e-7 relative accuracy on a unit pixel whose nearest complex singularity
/// of the Moffat profile lies ~sqrt(r^2 + alphaMin^2) away.
int quadratureOrder(double r, double alphaMin) {
    const double d = std::sqrt(r * r + alphaMin * alphaMin);
    const double rhoB = std::max(1.2, (2.0 * d + std::sqrt(4.0 * d * d + 1.0)) / 1.5);
    return std::clamp(int(std::ceil(8.1 / std::log(rhoB))), 2, 12);
}

double polynomial(const std::array<double, 6>& c, double u, double v) {
    return c[0] + c[1] * u + c[2] * v + c[3] * u * u + c[4] * u * v + c[5] * v * v;
}

void checkParameters(const MoffatParameters& p, const char* what) {
    if (!(p.fwhm > 0.0) || !std::isfinite(p.fwhm)) {
        throw InvalidInputError(std::string(what) + ": fwhm must be positive and finite");
    }
    const double esq = p.e1 * p.e1 + p.e2 * p.e2;
    if (!(esq < 1.0)) throw InvalidInputError(std::string(what) + ": e1^2 + e2^2 must be < 1");
}

int defaultKernelSize(double fwhm, double e) {
    const double major = fwhm * std::pow((1.0 + e) / (1.0 - e), 0.25);
    const double size = 2.0 * std::ceil(4.0 * major) + 1.0;
    return int(std::clamp(size, double(kMinKernel), double(kMaxKernel)));
}

std::shared_ptr<const Psf> makeFromRecord(const PsfRecord& r) {
    const double beta = r.scalar("beta"), size = r.scalar("kernelSize");
    if (!(size >= 3 && size <= 10001 && size == std::floor(size))) {
        throw InvalidInputError("MoffatPsf record: kernelSize is not a valid integer");
    }
    const auto& box = r.get("bbox");
    auto coeffs = [&](const char* name) {
        const auto& v = r.get(name);
        if (v.size() != 6) throw InvalidInputError(std::string("MoffatPsf record: '") + name + "' needs 6 values");
        std::array<double, 6> a{};
        std::copy(v.begin(), v.end(), a.begin());
        return a;
    };
    const auto f = coeffs("fwhm"), e1 = coeffs("e1"), e2 = coeffs("e2");
    if (box.size() != 4) throw InvalidInputError("MoffatPsf record: 'bbox' needs 4 values");
    if (box[2] == 0.0 && box[3] == 0.0) return MoffatPsf::make(f[0], beta, e1[0], e2[0], int(size));
    for (double b : box) {
        if (b != std::floor(b) || std::fabs(b) > 1e9) throw InvalidInputError("MoffatPsf record: bad bbox");
    }
    return MoffatPsf::make(Box2I({int(box[0]), int(box[1])}, int(box[2]), int(box[3])), beta, f, e1, e2, int(size));
}

}  // namespace

void registerMoffatPsf() {
    static const bool once = [] {
        Psf::registerType(MoffatPsf::kTypeName, makeFromRecord);
        return true;
    }();
    (void)once;
}

double MoffatPsf::alphaFromFwhm(double fwhm, double beta) {
    return fwhm / (2.0 * std::sqrt(std::exp2(1.0 / beta) - 1.0));
}

MoffatPsf::MoffatPsf(double fwhm, double beta, double e1, double e2, int kernelSize) : beta_(beta) {
    registerMoffatPsf();
    fwhm_[0] = fwhm;
    e1_[0] = e1;
    e2_[0] = e2;
    checkAndSizeKernel(kernelSize);
}

MoffatPsf::MoffatPsf(const Box2I& bbox, double beta, const std::array<double, 6>& fwhmCoeffs,
                     const std::array<double, 6>& e1Coeffs, const std::array<double, 6>& e2Coeffs, int kernelSize)
    : bbox_(bbox), beta_(beta), fwhm_(fwhmCoeffs), e1_(e1Coeffs), e2_(e2Coeffs) {
    registerMoffatPsf();
    if (bbox.empty()) throw InvalidInputError("MoffatPsf: the bbox of a spatially varying PSF must not be empty");
    checkAndSizeKernel(kernelSize);
}

void MoffatPsf::checkAndSizeKernel(int kernelSize) {
    if (!(beta_ > 1.0) || !std::isfinite(beta_)) throw InvalidInputError("MoffatPsf: beta must be > 1");
    for (const auto* c : {&fwhm_, &e1_, &e2_})
        for (double v : *c)
            if (!std::isfinite(v)) throw InvalidInputError("MoffatPsf: non-finite coefficient");
    // Check the parameters over the bbox (or the constant) and find the largest major-axis FWHM.
    int needed = 0;
    const int steps = isSpatiallyVarying() ? 9 : 1;
    for (int j = 0; j < steps; ++j) {
        for (int i = 0; i < steps; ++i) {
            Point2D p{};
            if (isSpatiallyVarying()) {
                p = {bbox_.minX() - 0.5 + bbox_.width() * i / double(steps - 1),
                     bbox_.minY() - 0.5 + bbox_.height() * j / double(steps - 1)};
            }
            const MoffatParameters mp = parametersAt(p);
            const double e = std::sqrt(mp.e1 * mp.e1 + mp.e2 * mp.e2);
            if (!(e < kMaxEllipticity)) {
                throw InvalidInputError("MoffatPsf: ellipticity must be < 0.9 over the bbox");
            }
            needed = std::max(needed, defaultKernelSize(mp.fwhm, e));
        }
    }
    kernelSize_ = kernelSize == 0 ? needed : kernelSize;
    if (kernelSize_ < 3 || kernelSize_ % 2 == 0) {
        throw InvalidInputError("MoffatPsf: kernelSize must be 0 or odd and >= 3, got " + std::to_string(kernelSize));
    }
}

MoffatParameters MoffatPsf::parametersAt(Point2D position) const {
    MoffatParameters p{fwhm_[0], beta_, e1_[0], e2_[0]};
    if (isSpatiallyVarying()) {
        const double cx = bbox_.minX() + 0.5 * (bbox_.width() - 1), cy = bbox_.minY() + 0.5 * (bbox_.height() - 1);
        const double u = (position.x - cx) / (0.5 * bbox_.width()), v = (position.y - cy) / (0.5 * bbox_.height());
        p.fwhm = polynomial(fwhm_, u, v);
        p.e1 = polynomial(e1_, u, v);
        p.e2 = polynomial(e2_, u, v);
    }
    checkParameters(p, "MoffatPsf::parametersAt");
    return p;
}

Image<double> MoffatPsf::renderPixelIntegrated(const MoffatParameters& p, int size, double dx, double dy) {
    checkParameters(p, "MoffatPsf::renderPixelIntegrated");
    if (size < 1 || size % 2 == 0) throw InvalidInputError("MoffatPsf::renderPixelIntegrated: size must be odd");
    const MoffatGeometry g = geometry(p, size);
    const MoffatFunction f(p.beta);
    const int half = size / 2;
    const double halfDiag = 0.5 * std::sqrt(2.0) * g.gradMax;
    const double rhoT = std::sqrt(g.rhoTrunc2);
    // One Gauss-Legendre order for the whole image, set by the core (the tails need fewer nodes, but a
    // single tensor grid of nodes keeps the inner loop branch-free and vectorisable).
    const GaussLegendre& gl = gaussLegendre(quadratureOrder(0.0, g.alphaMin));
    const int n = int(gl.x.size()), nx = size * n;
    std::vector<double> xs(std::size_t(nx), 0.0), wx(std::size_t(nx), 0.0), vals(std::size_t(nx), 0.0);
    for (int i = 0; i < size; ++i)
        for (int a = 0; a < n; ++a) {
            xs[std::size_t(i * n + a)] = i - half - dx + gl.x[std::size_t(a)];
            wx[std::size_t(i * n + a)] = gl.w[std::size_t(a)];
        }
    // Pixels by class: 0 wholly outside the truncation, 1 wholly inside, 2 crossed by it.
    auto rho2At = [&](double x, double y) { return g.qa * x * x + 2.0 * g.qb * x * y + g.qc * y * y; };
    std::vector<unsigned char> cls(std::size_t(size) * size);
    for (int j = 0; j < size; ++j)
        for (int i = 0; i < size; ++i) {
            const double rc = std::sqrt(rho2At(i - half - dx, j - half - dy));
            cls[std::size_t(j) * size + i] = rc - halfDiag > rhoT ? 0 : (rc + halfDiag <= rhoT ? 1 : 2);
        }

    // Half-height of the truncation ellipse: rhoT sqrt((Q^-1)_yy), Q^-1 = [[qc, -qb], [-qb, qa]] / det.
    const double yExt = rhoT * std::sqrt(g.qa / (g.qa * g.qc - g.qb * g.qb));
    Image<double> img(size, size, 0.0);
    for (int j = 0; j < size; ++j) {
        double* out = img.row(j);
        const unsigned char* c = &cls[std::size_t(j) * size];
        int i0 = 0, i1 = size - 1;  // the span of wholly-inside pixels of this row
        while (i0 < size && c[i0] != 1) ++i0;
        while (i1 >= 0 && c[i1] != 1) --i1;
        for (int b = 0; b < n && i0 <= i1; ++b) {
            const double y = j - half - dy + gl.x[std::size_t(b)], wy = gl.w[std::size_t(b)];
            const double cy = g.qc * y * y, by = 2.0 * g.qb * y;
            const int k0 = i0 * n, k1 = (i1 + 1) * n;
            double* vp = vals.data();
            const double* xp = xs.data();
            const double* wp = wx.data();
            // (1 + rho^2)^(-beta): branch-free loops the compiler vectorises for integer and half-integer beta.
            if (f.exact && f.intPart >= 1 && f.intPart <= 6) {
                moffatRowDispatch(f.intPart, f.halfInteger, xp, wp, vp, k0, k1, g.qa, by, cy);
            } else {
                for (int k = k0; k < k1; ++k) {
                    const double x = xp[k];
                    vp[k] = wp[k] * f(g.qa * x * x + by * x + cy);
                }
            }
            for (int i = i0; i <= i1; ++i) {
                double s = 0.0;
                for (int a = 0; a < n; ++a) s += vals[std::size_t(i * n + a)];
                out[i] += wy * s;
            }
        }
        for (int i = 0; i < size; ++i) {
            if (c[i] == 1 && i >= i0 && i <= i1) continue;
            out[i] = 0.0;
            if (c[i] != 2) continue;
            // Crossed by the truncation ellipse: for each y node, integrate exactly over the part of the
            // pixel's x range inside the ellipse (roots of the quadratic in x), by Gauss-Legendre.
            // Where the ellipse's top or bottom (y = +-yExt) lies in the pixel, the x range shrinks like a square
            // root of y: there the y integral is split into 16 pieces.
            const double xl = i - half - dx - 0.5, xr = xl + 1.0, yb = j - half - dy - 0.5;
            const double ayc = std::fabs(yb + 0.5);
            const int pieces = (ayc - 0.5 <= yExt && yExt <= ayc + 0.5) ? 16 : 1;
            double v = 0.0;
            for (int piece = 0; piece < pieces; ++piece) {
                const double y0 = yb + double(piece) / pieces, hgt = 1.0 / pieces;
                for (int b = 0; b < n; ++b) {
                    const double y = y0 + hgt * (0.5 + gl.x[std::size_t(b)]);
                    const double disc = g.qb * g.qb * y * y - g.qa * (g.qc * y * y - g.rhoTrunc2);
                    if (disc <= 0.0) continue;
                    const double sq = std::sqrt(disc);
                    const double lo = std::max(xl, (-g.qb * y - sq) / g.qa), hi = std::min(xr, (-g.qb * y + sq) / g.qa);
                    if (hi <= lo) continue;
                    double s = 0.0;
                    for (int a = 0; a < n; ++a) {
                        const double x = 0.5 * (lo + hi) + (hi - lo) * gl.x[std::size_t(a)];
                        s += gl.w[std::size_t(a)] * f(rho2At(x, y));
                    }
                    v += hgt * gl.w[std::size_t(b)] * (hi - lo) * s;
                }
            }
            out[i] = v;
        }
    }
    double sum = 0.0;
    for (int j = 0; j < size; ++j)
        for (int i = 0; i < size; ++i) sum += img(i, j);
    if (!(sum > 0.0)) throw NumericalError("MoffatPsf: the rendered kernel has no flux");
    img *= 1.0 / sum;
    return img;
}

PsfShape MoffatPsf::analyticShape(const MoffatParameters& p, int kernelSize) {
    checkParameters(p, "MoffatPsf::analyticShape");
    const MoffatGeometry g = geometry(p, kernelSize);
    const double t = g.rhoTrunc2, b = p.beta, l = std::log1p(t);
    // <u^2> = int_0^T t (1+t)^-b dt / int_0^T (1+t)^-b dt  (u = rho, t = u^2)
    auto powerIntegral = [&](double c) {  // int_0^T (1+t)^(-c) dt = ((1+T)^(1-c) - 1) / (1 - c)
        const double k = 1.0 - c;
        return std::fabs(k) < 1e-10 ? l : std::expm1(k * l) / k;
    };
    const double den = powerIntegral(b);
    const double num = powerIntegral(b - 1.0) - den;
    const double u2 = num / den;
    const double e = std::sqrt(p.e1 * p.e1 + p.e2 * p.e2), f = 1.0 / std::sqrt(1.0 - e * e);
    const double scale = 0.5 * g.alpha * g.alpha * u2;
    PsfShape s;
    s.ixx = scale * f * (1.0 + p.e1) + 1.0 / 12.0;
    s.iyy = scale * f * (1.0 - p.e1) + 1.0 / 12.0;
    s.ixy = scale * f * p.e2;
    return s;
}

Image<double> MoffatPsf::doComputeKernelImage(Point2D position) const {
    return renderPixelIntegrated(parametersAt(position), kernelSize_, 0.0, 0.0);
}

Image<double> MoffatPsf::doComputeImage(Point2D position) const {
    const double dx = position.x - std::floor(position.x + 0.5), dy = position.y - std::floor(position.y + 0.5);
    return renderPixelIntegrated(parametersAt(position), kernelSize_, dx, dy);
}

PsfShape MoffatPsf::doComputeShape(Point2D position) const { return analyticShape(parametersAt(position), kernelSize_); }

PsfRecord MoffatPsf::doToRecord() const {
    PsfRecord r;
    r.set("beta", {beta_});
    r.set("kernelSize", {double(kernelSize_)});
    r.set("bbox", {double(bbox_.minX()), double(bbox_.minY()), double(bbox_.width()), double(bbox_.height())});
    r.set("fwhm", std::vector<double>(fwhm_.begin(), fwhm_.end()));
    r.set("e1", std::vector<double>(e1_.begin(), e1_.end()));
    r.set("e2", std::vector<double>(e2_.begin(), e2_.end()));
    return r;
}

}  // namespace drp
