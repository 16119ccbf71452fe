#include "stages/characterize/OversampledPsfFit.h"

#include <Eigen/Dense>
#include <algorithm>
#include <array>
#include <cmath>

#include "core/Error.h"
#include "core/PsfexPsf.h"

namespace drp {

namespace {

using Grids = std::vector<Image<double>>;

Grids zeros(int nt, int m) {
    Grids g;
    for (int k = 0; k < nt; ++k) g.emplace_back(m, m, 0.0);
    return g;
}

double dot(const Grids& a, const Grids& b) {
    double s = 0.0;
    for (std::size_t k = 0; k < a.size(); ++k)
        for (int y = 0; y < a[k].height(); ++y) {
            const double* p = a[k].row(y);
            const double* q = b[k].row(y);
            for (int x = 0; x < a[k].width(); ++x) s += p[x] * q[x];
        }
    return s;
}

/// a += f b
void axpy(Grids& a, double f, const Grids& b) {
    for (std::size_t k = 0; k < a.size(); ++k)
        for (int y = 0; y < a[k].height(); ++y) {
            double* p = a[k].row(y);
            const double* q = b[k].row(y);
            for (int x = 0; x < a[k].width(); ++x) p[x] += f * q[x];
        }
}

/// sum_k t_k g_k
Image<double> combine(const Grids& g, const std::vector<double>& t) {
    const int m = g.front().width();
    Image<double> out(m, m, 0.0);
    for (std::size_t k = 0; k < g.size(); ++k) {
        const double c = t[k];
        for (int y = 0; y < m; ++y) {
            const double* s = g[k].row(y);
            double* o = out.row(y);
            for (int x = 0; x < m; ++x) o[x] += c * s[x];
        }
    }
    return out;
}

/// g_k += t_k a
void spread(Grids& g, const std::vector<double>& t, const Image<double>& a) {
    const int m = a.width();
    for (std::size_t k = 0; k < g.size(); ++k) {
        const double c = t[k];
        for (int y = 0; y < m; ++y) {
            const double* s = a.row(y);
            double* o = g[k].row(y);
            for (int x = 0; x < m; ++x) o[x] += c * s[x];
        }
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

OversampledFitResult fitOversampledPsf(const std::vector<OversampledStar>& stars, int order, int q, int gridSize,
                                       const std::vector<Image<double>>& warmStart, const OversampledFitControl& control) {
    if (q < 1 || q > PsfexPsf::kMaxOversampling) throw LogicError("fitOversampledPsf: oversampling must be in [1, 3]");
    if (gridSize < 3 || gridSize % 2 == 0) throw LogicError("fitOversampledPsf: the grid size must be odd and >= 3");
    const int nt = PsfexPsf::numTerms(order), m = gridSize;
    std::vector<std::vector<double>> terms;
    for (const OversampledStar& s : stars) terms.push_back(PsfexPsf::polynomialTerms(order, s.uv.x, s.uv.y));

    // Right-hand side A^T W D and the diagonal blocks of A^T W A.
    Grids rhs = zeros(nt, m);
    const std::size_t nodes = std::size_t(m) * std::size_t(m);
    std::vector<double> blocks(nodes * std::size_t(nt * nt), 0.0);
    for (std::size_t i = 0; i < stars.size(); ++i) {
        const OversampledStar& s = stars[i];
        Image<double> wd = s.data.clone();
        for (int y = 0; y < wd.height(); ++y)
            for (int x = 0; x < wd.width(); ++x) wd(x, y) *= s.weight(x, y);
        Image<double> g(m, m, 0.0), d(m, m, 0.0);
        PsfexPsf::accumulateNodes(wd, q, s.phase.x, s.phase.y, g);
        PsfexPsf::accumulateNodes(s.weight, q, s.phase.x, s.phase.y, d, true);
        spread(rhs, terms[i], g);
        const std::vector<double>& t = terms[i];
        for (int y = 0; y < m; ++y)
            for (int x = 0; x < m; ++x) {
                const double v = d(x, y);
                if (v == 0.0) continue;
                double* b = &blocks[(std::size_t(y) * std::size_t(m) + std::size_t(x)) * std::size_t(nt * nt)];
                for (int k = 0; k < nt; ++k)
                    for (int l = 0; l < nt; ++l) b[k * nt + l] += v * t[std::size_t(k)] * t[std::size_t(l)];
            }
    }
    // Mean diagonal of each term over the nodes the stars reach: the scale of the ridge and of the smoothness term.
    std::vector<double> meanDiag(std::size_t(nt), 0.0);
    double diagSum = 0.0;
    std::size_t diagCount = 0;
    for (int k = 0; k < nt; ++k) {
        double sum = 0.0;
        std::size_t count = 0;
        for (std::size_t j = 0; j < nodes; ++j) {
            const double v = blocks[j * std::size_t(nt * nt) + std::size_t(k * nt + k)];
            if (v > 0.0) sum += v, ++count;
        }
        meanDiag[std::size_t(k)] = count ? sum / double(count) : 0.0;
        diagSum += sum, diagCount += count;
    }
    OversampledFitResult result;
    if (diagCount == 0) throw NumericalError("fitOversampledPsf: no star pixel has weight");
    const double ridge = control.ridgeFraction * diagSum / double(diagCount);
    std::vector<double> smooth(std::size_t(nt), 0.0);
    for (int k = 0; k < nt; ++k) smooth[std::size_t(k)] = (k == 0 ? control.smoothness : control.variationSmoothness) * meanDiag[std::size_t(k)] / 20.0;
    // The inverse of each node's block (symmetric positive definite with the ridge), applied without allocation.
    const std::size_t bs = std::size_t(nt * nt);
    std::vector<double> inverse(nodes * bs);
    for (std::size_t j = 0; j < nodes; ++j) {
        Eigen::MatrixXd b = Eigen::Map<const Eigen::MatrixXd>(&blocks[j * bs], nt, nt);
        for (int k = 0; k < nt; ++k) b(k, k) += ridge + 20.0 * smooth[std::size_t(k)];
        const Eigen::MatrixXd inv = b.ldlt().solve(Eigen::MatrixXd::Identity(nt, nt));
        std::copy(inv.data(), inv.data() + bs, &inverse[j * bs]);
    }
    auto precondition = [&](const Grids& r) {
        Grids z = zeros(nt, m);
        for (int y = 0; y < m; ++y)
            for (int x = 0; x < m; ++x) {
                const std::size_t j = std::size_t(y) * std::size_t(m) + std::size_t(x);
                const double* inv = &inverse[j * bs];
                for (int k = 0; k < nt; ++k) {
                    double acc = 0.0;
                    for (int l = 0; l < nt; ++l) acc += inv[std::size_t(k * nt + l)] * r[std::size_t(l)](x, y);
                    z[std::size_t(k)](x, y) = acc;
                }
            }
        return z;
    };
    // (A^T W A + ridge) x, star by star.
    const int n = stars.empty() ? 0 : stars.front().data.width();
    auto apply = [&](const Grids& x) {
        Grids out = zeros(nt, m);
        for (std::size_t i = 0; i < stars.size(); ++i) {
            const OversampledStar& s = stars[i];
            // One term (the constant, T_0 = 1): render from and accumulate into the grids themselves.
            Image<double> r = PsfexPsf::renderNodes(nt == 1 ? x[0] : combine(x, terms[i]), q, n, s.phase.x, s.phase.y);
            for (int y = 0; y < n; ++y)
                for (int xx = 0; xx < n; ++xx) r(xx, y) *= s.weight(xx, y);
            if (nt == 1) {
                PsfexPsf::accumulateNodes(r, q, s.phase.x, s.phase.y, out[0]);
                continue;
            }
            Image<double> g(m, m, 0.0);
            PsfexPsf::accumulateNodes(r, q, s.phase.x, s.phase.y, g);
            spread(out, terms[i], g);
        }
        axpy(out, ridge, x);
        for (int k = 0; k < nt; ++k) {
            if (!(smooth[std::size_t(k)] > 0.0)) continue;
            const Image<double> ll = laplacian(laplacian(x[std::size_t(k)]));
            Grids one(1, ll);
            Grids target(1, out[std::size_t(k)]);
            axpy(target, smooth[std::size_t(k)], one);
        }
        return out;
    };

    Grids x = zeros(nt, m);
    bool warm = int(warmStart.size()) == nt;
    for (const auto& w : warmStart) warm = warm && w.width() == m && w.height() == m;
    if (warm)
        for (int k = 0; k < nt; ++k) x[std::size_t(k)] = warmStart[std::size_t(k)].clone(), x[std::size_t(k)].setXY0({0, 0});
    Grids r = rhs;
    for (auto& g : r) g = g.clone();
    if (warm) axpy(r, -1.0, apply(x));
    const double bNorm = std::sqrt(dot(rhs, rhs));
    if (!(bNorm > 0.0)) throw NumericalError("fitOversampledPsf: the stars carry no signal");
    Grids z = precondition(r);
    Grids p = z;
    for (auto& g : p) g = g.clone();
    double rz = dot(r, z);
    int it = 0;
    double rNorm = std::sqrt(dot(r, r));
    for (; it < control.maxIterations && rNorm > control.tolerance * bNorm; ++it) {
        const Grids ap = apply(p);
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
        for (int k = 0; k < nt; ++k) {
            Image<double>& pk = p[std::size_t(k)];
            const Image<double>& zk = z[std::size_t(k)];
            for (int y = 0; y < m; ++y)
                for (int xx = 0; xx < m; ++xx) pk(xx, y) = zk(xx, y) + beta * pk(xx, y);
        }
    }
    result.components = std::move(x);
    result.iterations = it;
    result.relativeResidual = rNorm / bNorm;
    return result;
}

}  // namespace drp
