#include "core/Render.h"

#include <fftw3.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <complex>
#include <map>
#include <mutex>
#include <numbers>
#include <string>
#include <tuple>
#include <vector>

#include <Eigen/Dense>

#include "core/Convolution.h"
#include "core/Error.h"

namespace drp {

namespace {

// ---------------------------------------------------------------- FFTW helpers

/// An fftw_malloc'ed array (every such buffer has FFTW's SIMD alignment, as new-array execute requires).
template <typename E>
class FftwArray {
public:
    explicit FftwArray(std::size_t n) : n_(n), p_(static_cast<E*>(fftw_malloc(std::max<std::size_t>(n, 1) * sizeof(E)))) {
        if (!p_) throw NumericalError("fftw_malloc failed for " + std::to_string(n * sizeof(E)) + " bytes");
    }
    ~FftwArray() { fftw_free(p_); }
    FftwArray(const FftwArray&) = delete;
    FftwArray& operator=(const FftwArray&) = delete;
    FftwArray(FftwArray&& o) noexcept : n_(o.n_), p_(o.p_) { o.p_ = nullptr, o.n_ = 0; }
    FftwArray& operator=(FftwArray&&) = delete;
    E* get() const { return p_; }
    std::size_t size() const { return n_; }

private:
    std::size_t n_;
    E* p_;
};

/// Cached FFTW_ESTIMATE plans by (rows, cols, forward); made under fftwPlannerMutex().
fftw_plan cachedPlan(int rows, int cols, bool forward) {
    static std::map<std::tuple<int, int, bool>, fftw_plan> cache;  // guarded by fftwPlannerMutex()
    std::lock_guard lock(fftwPlannerMutex());
    auto key = std::make_tuple(rows, cols, forward);
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    FftwArray<double> real(std::size_t(rows) * cols);
    FftwArray<fftw_complex> spec(std::size_t(rows) * (cols / 2 + 1));
    fftw_plan p = forward ? fftw_plan_dft_r2c_2d(rows, cols, real.get(), spec.get(), FFTW_ESTIMATE)
                          : fftw_plan_dft_c2r_2d(rows, cols, spec.get(), real.get(), FFTW_ESTIMATE);
    if (!p) throw NumericalError("FFTW could not plan a " + std::to_string(rows) + "x" + std::to_string(cols) + " transform");
    cache.emplace(key, p);
    return p;
}

/// The smallest odd n >= minimum whose prime factors are 3, 5 and 7 (odd sizes have no Nyquist bin).
int oddFftSize(int minimum) {
    for (int n = std::max(1, minimum | 1);; n += 2) {
        int r = n;
        for (int f : {3, 5, 7})
            while (r % f == 0) r /= f;
        if (r == 1) return n;
    }
}

double sinc(double x) { return std::fabs(x) < 1e-8 ? 1.0 - x * x / 6.0 : std::sin(x) / x; }

// ---------------------------------------------------------------- the oversampled source grid

/// An m-times oversampled grid of cells over a coarse stamp of sx x sy pixels (both odd) whose local pixel
/// (0, 0) is parent pixel `origin`. The centre of fine cell (a, b) is at parent (x0 + a / m, y0 + b / m),
/// with x0 in [origin.x - 1/2, origin.x - 1/2 + 1/m) (and likewise y0): the cells may be shifted so that a
/// source's centre falls on a cell centre (the grid is periodic over the stamp, so any shift is allowed).
struct FineGrid {
    int m, sx, sy;
    Point2I origin;
    double x0, y0;
    FftwArray<double> cells;
    FineGrid(int m_, int sx_, int sy_, Point2I origin_, double x0_, double y0_)
        : m(m_), sx(sx_), sy(sy_), origin(origin_), x0(x0_), y0(y0_), cells(std::size_t(m_) * sx_ * std::size_t(m_) * sy_) {
        std::fill_n(cells.get(), cells.size(), 0.0);
    }
    /// A grid whose cells are aligned so that `centre` is a cell centre.
    static FineGrid centredOn(int m, int sx, int sy, Point2I origin, Point2D centre) {
        const double fx = std::floor((centre.x - (origin.x - 0.5)) * m), fy = std::floor((centre.y - (origin.y - 0.5)) * m);
        return FineGrid(m, sx, sy, origin, centre.x - fx / m, centre.y - fy / m);
    }
    int fineWidth() const { return m * sx; }
    int fineHeight() const { return m * sy; }
    double& at(int a, int b) { return cells.get()[std::size_t(b) * fineWidth() + a]; }
    /// Parent coordinate of the centre of fine column a / row b.
    double xCentre(int a) const { return x0 + double(a) / m; }
    double yCentre(int b) const { return y0 + double(b) / m; }
    double sum() const {
        double s = 0.0;
        for (std::size_t i = 0; i < cells.size(); ++i) s += cells.get()[i];
        return s;
    }
};

/// Convolve the (cell-integrated) source on `grid` with the effective-PSF kernel image `kernel` (centred,
/// odd) in Fourier space; returns the coarse stamp (xy0 = grid.origin) scaled by `scale`.
/// The DFT of the kernel image (centred, odd) on an sx x sy periodic grid with its centre at index 0.
FftwArray<fftw_complex> kernelSpectrum(const ImageD& kernel, int sx, int sy, FftwArray<double>& work) {
    std::fill_n(work.get(), work.size(), 0.0);
    const int kcx = kernel.width() / 2, kcy = kernel.height() / 2;
    for (int j = 0; j < kernel.height(); ++j) {
        const int yy = ((j - kcy) % sy + sy) % sy;
        for (int i = 0; i < kernel.width(); ++i) {
            const int xx = ((i - kcx) % sx + sx) % sx;
            work.get()[std::size_t(yy) * sx + xx] += kernel(i, j);
        }
    }
    FftwArray<fftw_complex> spec(std::size_t(sy) * (sx / 2 + 1));
    fftw_execute_dft_r2c(cachedPlan(sy, sx, true), work.get(), spec.get());
    return spec;
}

/// Multiply the kernel spectrum by the source's transform source(jy, jx) (frequency indices of the sx x sy
/// grid, positions relative to coarse pixel 0), inverse transform, and return the stamp scaled by `scale`.
template <typename SourceTransform>
ImageD convolveSpectrum(const ImageD& kernel, int sx, int sy, Point2I origin, double scale, SourceTransform&& source) {
    FftwArray<double> coarse(std::size_t(sx) * sy);
    FftwArray<fftw_complex> spec = kernelSpectrum(kernel, sx, sy, coarse);
    const int chc = sx / 2 + 1;
    const double norm = scale / (double(sx) * sy);
    for (int jy = 0; jy < sy; ++jy) {
        fftw_complex* k = spec.get() + std::size_t(jy) * chc;
        for (int jx = 0; jx < chc; ++jx) {
            const std::complex<double> v = norm * source(jy, jx) * std::complex<double>(k[jx][0], k[jx][1]);
            k[jx][0] = v.real();
            k[jx][1] = v.imag();
        }
    }
    fftw_execute_dft_c2r(cachedPlan(sy, sx, false), spec.get(), coarse.get());
    ImageD out(Box2I(origin, sx, sy));
    for (int y = 0; y < sy; ++y)
        for (int x = 0; x < sx; ++x) out(x, y) = coarse.get()[std::size_t(y) * sx + x];
    return out;
}

/// Signed frequency (radians per pixel) of index j of an n-point DFT.
double frequency(int j, int n) { return 2.0 * std::numbers::pi * (j <= n / 2 ? j : j - n) / n; }

/// Convolve the (cell-integrated) source on `grid` with the effective-PSF kernel image `kernel` (centred,
/// odd) in Fourier space; returns the coarse stamp (xy0 = grid.origin) scaled by `scale`.
ImageD convolveGrid(FineGrid& grid, const ImageD& kernel, double scale) {
    const int m = grid.m, sx = grid.sx, sy = grid.sy, fw = grid.fineWidth(), fh = grid.fineHeight();
    const int fhc = fw / 2 + 1;
    FftwArray<fftw_complex> fineSpec(std::size_t(fh) * fhc);
    fftw_execute_dft_r2c(cachedPlan(fh, fw, true), grid.cells.get(), fineSpec.get());
    // Per-axis factor: the phase exp(-i k t0) of the first cell centre t0 (relative to coarse pixel 0) over
    // the cell box sinc(k / 2m).
    auto axisFactor = [&](int j, int n, double t0) {
        const double k = frequency(j, n);
        return std::polar(1.0 / sinc(k / (2.0 * m)), -k * t0);
    };
    std::vector<std::complex<double>> fx(static_cast<std::size_t>(sx / 2 + 1)), fy(static_cast<std::size_t>(sy));
    for (int j = 0; j <= sx / 2; ++j) fx[std::size_t(j)] = axisFactor(j, sx, grid.x0 - grid.origin.x);
    for (int j = 0; j < sy; ++j) fy[std::size_t(j)] = axisFactor(j, sy, grid.y0 - grid.origin.y);
    return convolveSpectrum(kernel, sx, sy, grid.origin, scale, [&](int jy, int jx) {
        const int js = jy <= sy / 2 ? jy : jy - sy;
        const fftw_complex& g = fineSpec.get()[std::size_t((js % fh + fh) % fh) * fhc + jx];
        return std::complex<double>(g[0], g[1]) * fx[std::size_t(jx)] * fy[std::size_t(jy)];
    });
}

/// The stamp around a source whose light (before the PSF) lies within half-extents (hx, hy) pixels of
/// `centre`: odd FFT-friendly sizes, padded by the kernel half-width so the convolution cannot wrap.
struct StampGeometry {
    int sx, sy;
    Point2I origin;
    int hx, hy;       ///< the source grid covers coarse pixels within (hx, hy) of `centrePixel`
    Point2I centrePixel;
};

StampGeometry stampGeometry(Point2D centre, double hx, double hy, const ImageD& kernel) {
    StampGeometry s{};
    s.centrePixel = {int(std::floor(centre.x + 0.5)), int(std::floor(centre.y + 0.5))};
    s.hx = int(std::ceil(hx + 1.0));
    s.hy = int(std::ceil(hy + 1.0));
    const int wx = s.hx + kernel.width() / 2, wy = s.hy + kernel.height() / 2;
    s.sx = oddFftSize(2 * wx + 1);
    s.sy = oddFftSize(2 * wy + 1);
    s.origin = {s.centrePixel.x - wx, s.centrePixel.y - wy};
    return s;
}

// ---------------------------------------------------------------- galaxy cubature

/// One Sersic component in pixel coordinates: amplitude * exp(-b (rho / rs)^(1/n)) for rho <= rhoMax,
/// rho^2 = d^T Q d (d the pixel offset), amplitude in flux per pixel^2.
struct Component {
    double n, b, rs, rhoMax, amplitude;
    double value(double rho) const {
        if (rho > rhoMax) return 0.0;  // cells crossed by the truncation are handled by integrateCell
        const double t = rho / rs;
        double p;
        if (n == 1.0) p = t;
        else if (n == 4.0) p = std::sqrt(std::sqrt(t));
        else p = std::pow(t, 1.0 / n);
        return amplitude * std::exp(-b * p);
    }
    /// The e-folding length of the profile at rho (in rho units): n rho / (b (rho / rs)^(1/n)).
    double scale(double rho) const {
        if (n == 1.0) return rs / b;
        const double t = std::max(rho, 1e-300) / rs;
        return n * rho / (b * (n == 4.0 ? std::sqrt(std::sqrt(t)) : std::pow(t, 1.0 / n)));
    }
};

struct GalaxyModel {
    std::vector<Component> comps;
    double qa, qb, qc;  ///< rho^2 = qa dx^2 + 2 qb dx dy + qc dy^2 (arcsec^2, pixel offsets)
    double gradMax;     ///< max |grad rho| per pixel
    double rhoMax;      ///< largest truncation radius
    double rho(double dx, double dy) const { return std::sqrt(std::max(0.0, qa * dx * dx + 2.0 * qb * dx * dy + qc * dy * dy)); }
};

constexpr std::array<double, 2> kGl2x{-0.28867513459481287, 0.28867513459481287};
constexpr std::array<double, 4> kGl4x{-0.43056815579702629, -0.16999052179242813, 0.16999052179242813,
                                      0.43056815579702629};
constexpr std::array<double, 4> kGl4w{0.17392742256872693, 0.32607257743127307, 0.32607257743127307,
                                      0.17392742256872693};

// Cubature rule by the ratio of the profile's smoothness scale to the cell size.
constexpr double kMidpointAbove = 8.0, kGl2Above = 2.5, kSplitBelow = 1.0;
constexpr int kMaxDepth = 12;

/// Integral of component `c` over the square cell of side `size` centred on offset (dx, dy): adaptive
/// (midpoint, 2x2 or 4x4 Gauss-Legendre by the profile's e-folding length relative to the cell, splitting
/// cells near the centre and where that length is below half the cell).
double integrateCell(const GalaxyModel& g, const Component& c, double dx, double dy, double size, int depth) {
    const double rc = g.rho(dx, dy);
    const double reach = 0.70710678118654752 * size * g.gradMax;
    const double rmin = std::max(0.0, rc - reach);
    if (rmin > c.rhoMax) return 0.0;
    const double area = size * size;
    if (rc + reach > c.rhoMax) {
        // Crossed by the truncation ellipse (where the profile is smooth): the value at the centre times the
        // fraction of the cell inside, from the signed distance to the boundary (straight-edge ramp; exact
        // for edges along the axes and symmetric, so the centroid is not biased).
        const double gx = (g.qa * dx + g.qb * dy) / std::max(rc, 1e-300), gy = (g.qb * dx + g.qc * dy) / std::max(rc, 1e-300);
        const double grad = std::hypot(gx, gy);
        const double dist = (rc - c.rhoMax) / grad;  // > 0 outside
        const double w = 0.5 * size * (std::fabs(gx) + std::fabs(gy)) / grad;
        const double inside = std::clamp(0.5 - 0.5 * dist / w, 0.0, 1.0);
        const double t = rc / c.rs;
        const double p = c.n == 1.0 ? t : c.n == 4.0 ? std::sqrt(std::sqrt(t)) : std::pow(t, 1.0 / c.n);
        return area * inside * c.amplitude * std::exp(-c.b * p);
    }
    // The profile is smooth on the smaller of its e-folding length and the distance to its centre (the
    // cusp of n = 4 and the kink of n = 1 there): Gauss-Legendre converges on that scale.
    const double ratio = std::min(c.scale(rmin), rmin) / (g.gradMax * size);
    if (ratio < kSplitBelow && depth < kMaxDepth) {
        const double q = 0.25 * size, h = 0.5 * size;
        return integrateCell(g, c, dx - q, dy - q, h, depth + 1) + integrateCell(g, c, dx + q, dy - q, h, depth + 1) +
               integrateCell(g, c, dx - q, dy + q, h, depth + 1) + integrateCell(g, c, dx + q, dy + q, h, depth + 1);
    }
    auto value = [&](double x, double y) { return c.value(g.rho(x, y)); };
    if (ratio >= kMidpointAbove) return area * value(dx, dy);
    double s = 0.0;
    if (ratio >= kGl2Above) {
        for (double oy : kGl2x)
            for (double ox : kGl2x) s += value(dx + ox * size, dy + oy * size);
        return 0.25 * area * s;
    }
    for (int j = 0; j < 4; ++j) {
        double row = 0.0;
        for (int i = 0; i < 4; ++i) row += kGl4w[std::size_t(i)] * value(dx + kGl4x[std::size_t(i)] * size, dy + kGl4x[std::size_t(j)] * size);
        s += kGl4w[std::size_t(j)] * row;
    }
    return area * s;
}

GalaxyModel galaxyModel(const GalaxyShape& shape, const Eigen::Matrix2d& pixelsPerArcsec) {
    const double det = pixelsPerArcsec.determinant();
    if (!std::isfinite(det) || std::fabs(det) < 1e-12) throw InvalidInputError("render: pixelsPerArcsec is singular");
    const Eigen::Matrix2d jInv = pixelsPerArcsec.inverse();
    const Eigen::Matrix2d q = jInv.transpose() * shapeMatrix(shape.e1, shape.e2).inverse() * jInv;
    GalaxyModel g{};
    g.qa = q(0, 0);
    g.qb = 0.5 * (q(0, 1) + q(1, 0));
    g.qc = q(1, 1);
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix2d> es(q);
    g.gradMax = std::sqrt(std::max(es.eigenvalues()(1), 0.0));
    const double arcsec2PerPixel = 1.0 / std::fabs(det);
    g.rhoMax = 0.0;
    auto add = [&](const SersicProfile& p, double fraction) {
        if (!(fraction > 0.0)) return;
        Component c{p.n, p.bn(), p.scaleRadius(), p.truncationRadius(), fraction * p.centralSurfaceBrightness() * arcsec2PerPixel};
        g.comps.push_back(c);
        g.rhoMax = std::max(g.rhoMax, c.rhoMax);
    };
    add(bulgeProfile(shape), shape.bulgeFraction);
    add(diskProfile(shape), 1.0 - shape.bulgeFraction);
    return g;
}

}  // namespace

// ---------------------------------------------------------------- public API

void RenderConfig::validate() const {
    if (oversample < 0 || oversample > 16) throw ConfigError("RenderConfig.oversample must be in [0, 16]");
    if (!(maxStampHalfWidth >= 4 && maxStampHalfWidth <= 4096)) {
        throw ConfigError("RenderConfig.maxStampHalfWidth must be in [4, 4096] pixels");
    }
}

double addStamp(const ImageF& image, const ImageD& stamp) {
    const Box2I overlap = image.bbox().intersection(stamp.bbox());
    if (overlap.empty()) return 0.0;
    double added = 0.0;
    for (int y = overlap.minY(); y <= overlap.maxY(); ++y) {
        float* out = image.row(y - image.xy0().y) + (overlap.minX() - image.xy0().x);
        const double* in = stamp.row(y - stamp.xy0().y) + (overlap.minX() - stamp.xy0().x);
        for (int x = 0; x < overlap.width(); ++x) {
            out[x] += float(in[x]);
            added += in[x];
        }
    }
    return added;
}

double addPointSource(const ImageF& image, Point2D position, double flux, const Psf& psf) {
    if (!std::isfinite(flux)) throw InvalidInputError("addPointSource: flux is not finite");
    if (flux == 0.0) return 0.0;
    ImageD stamp = psf.computeImage(position);
    if (!image.bbox().overlaps(stamp.bbox())) return 0.0;
    stamp *= flux;
    return addStamp(image, stamp);
}

ImageD renderGalaxyStamp(Point2D position, double flux, const GalaxyShape& shape, const Eigen::Matrix2d& pixelsPerArcsec,
                         const Psf& psf, const RenderConfig& config) {
    config.validate();
    shape.validate();
    if (!std::isfinite(position.x) || !std::isfinite(position.y) || !std::isfinite(flux)) {
        throw InvalidInputError("renderGalaxyStamp: position and flux must be finite");
    }
    const GalaxyModel model = galaxyModel(shape, pixelsPerArcsec);
    // Half-extents of the truncation ellipse: rhoMax sqrt((Q^-1)_xx), Q^-1 = J S J^T.
    const Eigen::Matrix2d shapeS = shapeMatrix(shape.e1, shape.e2);
    const Eigen::Matrix2d qInv = pixelsPerArcsec * shapeS * pixelsPerArcsec.transpose();
    double hx = model.rhoMax * std::sqrt(qInv(0, 0)), hy = model.rhoMax * std::sqrt(qInv(1, 1));
    const bool clipped = hx > config.maxStampHalfWidth || hy > config.maxStampHalfWidth;
    hx = std::min(hx, config.maxStampHalfWidth);
    hy = std::min(hy, config.maxStampHalfWidth);

    if (config.oversample == 0 && !clipped) {
        // Fourier space: G(k) = sum_c f_c F_c(sqrt(q^T S q)) exp(-i k.t), q = J^T k (the sky wavevector),
        // F_c the tabulated transforms of the truncated Sersic components (GalaxyProfile.h).
        const ImageD kernel = psf.computeKernelImage(position);
        const StampGeometry geo = stampGeometry(position, hx, hy, kernel);
        std::vector<std::pair<double, SersicTransform>> comps;
        if (shape.bulgeFraction > 0.0) comps.emplace_back(shape.bulgeFraction, SersicTransform(bulgeProfile(shape)));
        if (shape.bulgeFraction < 1.0) comps.emplace_back(1.0 - shape.bulgeFraction, SersicTransform(diskProfile(shape)));
        std::vector<std::complex<double>> px(std::size_t(geo.sx / 2 + 1)), py(std::size_t(geo.sy));
        for (int j = 0; j <= geo.sx / 2; ++j) px[std::size_t(j)] = std::polar(1.0, -frequency(j, geo.sx) * (position.x - geo.origin.x));
        for (int j = 0; j < geo.sy; ++j) py[std::size_t(j)] = std::polar(1.0, -frequency(j, geo.sy) * (position.y - geo.origin.y));
        const Eigen::Matrix2d& jac = pixelsPerArcsec;
        return convolveSpectrum(kernel, geo.sx, geo.sy, geo.origin, flux, [&](int jy, int jx) {
            const double kx = frequency(jx, geo.sx), ky = frequency(jy, geo.sy);
            const double qx = jac(0, 0) * kx + jac(1, 0) * ky, qy = jac(0, 1) * kx + jac(1, 1) * ky;
            const double kappa = std::sqrt(std::max(0.0, shapeS(0, 0) * qx * qx + 2.0 * shapeS(0, 1) * qx * qy + shapeS(1, 1) * qy * qy));
            double g = 0.0;
            for (const auto& [f, transform] : comps) g += f * transform(kappa);
            return g * px[std::size_t(jx)] * py[std::size_t(jy)];
        });
    }
    // Real space (oversample > 0, or light clipped by maxStampHalfWidth): the cell-integrated grid.
    const int m = std::max(1, config.oversample);
    const ImageD kernel = psf.computeKernelImage(position);
    const StampGeometry geo = stampGeometry(position, hx, hy, kernel);
    // Cells centred on the galaxy: its centre (the cusp) is a cell centre and the cells pair up
    // symmetrically about it, so the profile's point symmetry keeps the centroid exact.
    FineGrid grid = FineGrid::centredOn(m, geo.sx, geo.sy, geo.origin, position);
    const double h = 1.0 / m;
    // Fine columns / rows covering coarse pixels within (geo.hx, geo.hy) of the centre pixel, and within
    // (hx, hy) of the centre (light beyond is clipped).
    const int a0 = std::max(0, (geo.centrePixel.x - geo.hx - geo.origin.x) * m - 1);
    const int a1 = std::min(grid.fineWidth(), (geo.centrePixel.x + geo.hx - geo.origin.x + 1) * m + 1);
    const int b0 = std::max(0, (geo.centrePixel.y - geo.hy - geo.origin.y) * m - 1);
    const int b1 = std::min(grid.fineHeight(), (geo.centrePixel.y + geo.hy - geo.origin.y + 1) * m + 1);
    for (int b = b0; b < b1; ++b) {
        const double dy = grid.yCentre(b) - position.y;
        if (std::fabs(dy) > hy + h) continue;
        for (int a = a0; a < a1; ++a) {
            const double dx = grid.xCentre(a) - position.x;
            if (std::fabs(dx) > hx + h) continue;
            double v = 0.0;
            for (const Component& c : model.comps) v += integrateCell(model, c, dx, dy, h, 0);
            grid.at(a, b) = v;
        }
    }
    const double total = grid.sum();
    if (!(total > 0.0)) throw NumericalError("renderGalaxyStamp: the galaxy has no light on the grid");
    return convolveGrid(grid, kernel, clipped ? flux : flux / total);
}

ImageD renderTrailStamp(Point2D start, Point2D end, double flux, const Psf& psf, const RenderConfig& config) {
    config.validate();
    if (!std::isfinite(start.x) || !std::isfinite(start.y) || !std::isfinite(end.x) || !std::isfinite(end.y) ||
        !std::isfinite(flux)) {
        throw InvalidInputError("renderTrailStamp: start, end and flux must be finite");
    }
    const double length = std::hypot(end.x - start.x, end.y - start.y);
    if (length > 2.0 * config.maxStampHalfWidth) {
        throw InvalidInputError("renderTrailStamp: trail longer than 2 * maxStampHalfWidth pixels");
    }
    const Point2D mid{0.5 * (start.x + end.x), 0.5 * (start.y + end.y)};
    const ImageD kernel = psf.computeKernelImage(mid);
    const StampGeometry geo = stampGeometry(mid, 0.5 * std::fabs(end.x - start.x), 0.5 * std::fabs(end.y - start.y), kernel);
    // The segment's transform is analytic: exp(-i k.(mid - origin)) sinc(k.(end - start) / 2).
    const double tx = mid.x - geo.origin.x, ty = mid.y - geo.origin.y, lx = end.x - start.x, ly = end.y - start.y;
    return convolveSpectrum(kernel, geo.sx, geo.sy, geo.origin, flux, [&](int jy, int jx) {
        const double kx = frequency(jx, geo.sx), ky = frequency(jy, geo.sy);
        return std::polar(sinc(0.5 * (kx * lx + ky * ly)), -(kx * tx + ky * ty));
    });
}

double addGalaxy(const ImageF& image, Point2D position, double flux, const GalaxyShape& shape,
                 const Eigen::Matrix2d& pixelsPerArcsec, const Psf& psf, const RenderConfig& config) {
    if (flux == 0.0) return 0.0;
    return addStamp(image, renderGalaxyStamp(position, flux, shape, pixelsPerArcsec, psf, config));
}

double addTrail(const ImageF& image, Point2D start, Point2D end, double flux, const Psf& psf, const RenderConfig& config) {
    if (flux == 0.0) return 0.0;
    return addStamp(image, renderTrailStamp(start, end, flux, psf, config));
}

}  // namespace drp
