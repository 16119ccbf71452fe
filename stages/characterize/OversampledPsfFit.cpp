#include "stages/characterize/OversampledPsfFit.h"

#include <array>
#include <cmath>

#include "core/Error.h"
#include "core/PsfexPsf.h"

namespace drp {

namespace {

double dot(const Image<double>& a, const Image<double>& b) {
    double s = 0.0;
    for (int y = 0; y < a.height(); ++y) {
        const double* p = a.row(y);
        const double* q = b.row(y);
        for (int x = 0; x < a.width(); ++x) s += p[x] * q[x];
    }
    return s;
}

/// a += f b
void axpy(Image<double>& a, double f, const Image<double>& b) {
    for (int y = 0; y < a.height(); ++y) {
        double* p = a.row(y);
        const double* q = b.row(y);
        for (int x = 0; x < a.width(); ++x) p[x] += f * q[x];
    }
}

/// The 5-point Laplacian of a grid (nodes outside it are 0).
Image<double> laplacian(const Image<double>& g) {
    const int m = g.width();
    Image<double> out(m, m, 0.0);
    for (int y = 0; y < m; ++y)
        for (int x = 0; x < m; ++x) {
            double v = -4.0 * g(x, y);
            if (x > 0) v += g(x - 1, y);
            if (x + 1 < m) v += g(x + 1, y);
            if (y > 0) v += g(x, y - 1);
            if (y + 1 < m) v += g(x, y + 1);
            out(x, y) = v;
        }
    return out;
}

}  // namespace

Image<double> upsampleToNodes(const Image<double>& native, int q, int gridSize) {
    const int n = native.width(), h = n / 2, c = gridSize / 2;
    const Image<double> coef = PsfexPsf::nodesFromSamples(native);  // the native spline (step 1)
    // Per node j: the first native coefficient of its taps and their weights (the same along x and y).
    std::vector<int> first(std::size_t(gridSize), 0);
    std::vector<std::array<double, PsfexPsf::kTaps>> w(std::size_t(gridSize), std::array<double, PsfexPsf::kTaps>{});
    for (int j = 0; j < gridSize; ++j) {
        const double t = double(h) + double(j - c) / double(q);
        first[std::size_t(j)] = int(std::floor(t)) - 1;
        w[std::size_t(j)] = PsfexPsf::interpolationWeights(t);
    }
    Image<double> tmp(gridSize, n, 0.0);  // along x
    for (int y = 0; y < n; ++y)
        for (int j = 0; j < gridSize; ++j) {
            double acc = 0.0;
            for (int a = 0; a < PsfexPsf::kTaps; ++a) {
                const int x = first[std::size_t(j)] + a;
                if (x >= 0 && x < n) acc += w[std::size_t(j)][std::size_t(a)] * coef(x, y);
            }
            tmp(j, y) = acc;
        }
    Image<double> samples(gridSize, gridSize, 0.0);
    for (int i = 0; i < gridSize; ++i)
        for (int a = 0; a < PsfexPsf::kTaps; ++a) {
            const int y = first[std::size_t(i)] + a;
            if (y < 0 || y >= n) continue;
            const double wy = w[std::size_t(i)][std::size_t(a)];
            for (int j = 0; j < gridSize; ++j) samples(j, i) += wy * tmp(j, y);
        }
    return PsfexPsf::nodesFromSamples(samples);
}

OversampledFitResult fitOversampledPsf(const std::vector<OversampledStar>& stars, int q, int gridSize, const Image<double>& warmStart,
                                       const OversampledFitControl& control) {
    if (q < 1 || q > PsfexPsf::kMaxOversampling) throw LogicError("fitOversampledPsf: oversampling must be in [1, 3]");
    if (gridSize < 3 || gridSize % 2 == 0) throw LogicError("fitOversampledPsf: the grid size must be odd and >= 3");
    const int m = gridSize;

    // Right-hand side A^T W D and the diagonal of A^T W A, star by star.
    Image<double> rhs(m, m, 0.0), diag(m, m, 0.0);
    for (const OversampledStar& s : stars) {
        Image<double> wd = s.data.clone();
        wd *= s.weight;
        Image<double> g(m, m, 0.0), d(m, m, 0.0);
        PsfexPsf::accumulateNodes(wd, q, s.phase.x, s.phase.y, g);
        PsfexPsf::accumulateNodes(s.weight, q, s.phase.x, s.phase.y, d, true);
        rhs += g;
        diag += d;
    }
    // The mean diagonal over the nodes the stars reach: the scale of the ridge and of the smoothness term.
    double diagSum = 0.0;
    std::size_t diagCount = 0;
    for (int y = 0; y < m; ++y)
        for (int x = 0; x < m; ++x)
            if (diag(x, y) > 0.0) diagSum += diag(x, y), ++diagCount;
    if (diagCount == 0) throw NumericalError("fitOversampledPsf: no star pixel has weight");
    const double ridge = control.ridgeFraction * diagSum / double(diagCount);
    const double smooth = control.smoothness * (diagSum / double(diagCount)) / 20.0;
    // Jacobi preconditioner: the inverse of the diagonal with the ridge and the smoothness term's diagonal.
    Image<double> inverse(m, m, 0.0);
    for (int y = 0; y < m; ++y)
        for (int x = 0; x < m; ++x) inverse(x, y) = 1.0 / (diag(x, y) + (ridge + 20.0 * smooth));
    auto precondition = [&](const Image<double>& r) {
        Image<double> z = r.clone();
        z *= inverse;
        return z;
    };
    // (A^T W A + ridge + smooth L^T L) x, star by star.
    const int n = stars.empty() ? 0 : stars.front().data.width();
    auto apply = [&](const Image<double>& x) {
        Image<double> out(m, m, 0.0);
        for (const OversampledStar& s : stars) {
            Image<double> r = PsfexPsf::renderNodes(x, q, n, s.phase.x, s.phase.y);
            r *= s.weight;
            PsfexPsf::accumulateNodes(r, q, s.phase.x, s.phase.y, out);
        }
        axpy(out, ridge, x);
        if (smooth > 0.0) axpy(out, smooth, laplacian(laplacian(x)));
        return out;
    };

    Image<double> x(m, m, 0.0);
    const bool warm = warmStart.width() == m && warmStart.height() == m;
    if (warm) {
        x = warmStart.clone();
        x.setXY0({0, 0});
    }
    Image<double> r = rhs.clone();
    if (warm) axpy(r, -1.0, apply(x));
    const double bNorm = std::sqrt(dot(rhs, rhs));
    if (!(bNorm > 0.0)) throw NumericalError("fitOversampledPsf: the stars carry no signal");
    Image<double> z = precondition(r);
    Image<double> p = z.clone();
    double rz = dot(r, z);
    int it = 0;
    double rNorm = std::sqrt(dot(r, r));
    for (; it < control.maxIterations && rNorm > control.tolerance * bNorm; ++it) {
        const Image<double> ap = apply(p);
        const double pap = dot(p, ap);
        if (!(pap > 0.0)) break;
        const double alpha = rz / pap;
        axpy(x, alpha, p);
        axpy(r, -alpha, ap);
        rNorm = std::sqrt(dot(r, r));
        z = precondition(r);
        const double rzNew = dot(r, z);
        const double beta = rzNew / rz;
        rz = rzNew;
        for (int y = 0; y < m; ++y)
            for (int xx = 0; xx < m; ++xx) p(xx, y) = z(xx, y) + beta * p(xx, y);
    }
    OversampledFitResult result;
    result.nodes = std::move(x);
    result.iterations = it;
    result.relativeResidual = rNorm / bNorm;
    return result;
}

}  // namespace drp
