#include "stages/coadd/Lanczos.h"

#include <array>
#include <cmath>
#include <mutex>
#include <numbers>

#include "core/Error.h"

namespace drp {

namespace {

double lanczos(double x, int n) {
    const double ax = std::fabs(x);
    if (ax >= n) return 0.0;
    if (ax < 1e-12) return 1.0;
    const double px = std::numbers::pi * x;
    return n * std::sin(px) * std::sin(px / n) / (px * px);
}

/// Exact Lanczos weights for phase f in [0, 1]: taps at offsets u_k = x - i = f + n - 1 - k, k = 0..2n-1.
/// Normalised to sum 1, then corrected to zero first moment (sum w_k u_k = 0) by adding h_k (alpha + beta u_k),
/// h_k = exp(-u_k^2 / 2), with alpha, beta keeping the sum at 1 (see Lanczos.h). The correction vanishes at
/// f = 0 and f = 1 (the first moment of the impulse is 0), so the kernel stays interpolating and continuous.
/// (The obvious w_k (alpha + beta u_k) fails: sum w_k u_k^2 is ~0 for a Lanczos kernel.)
void exactLanczosRow(double f, int n, double* w) {
    double s = 0.0;
    for (int k = 0; k < 2 * n; ++k) {
        w[k] = lanczos(f + n - 1 - k, n);
        s += w[k];
    }
    for (int k = 0; k < 2 * n; ++k) w[k] /= s;
    {
        double s1 = 0.0, h0 = 0.0, h1 = 0.0, h2 = 0.0, h[WarpingKernel::kMaxTaps];
        for (int k = 0; k < 2 * n; ++k) {
            const double u = f + n - 1 - k;
            s1 += w[k] * u;
            h[k] = std::exp(-0.5 * u * u);
            h0 += h[k], h1 += h[k] * u, h2 += h[k] * u * u;
        }
        const double beta = -s1 * h0 / (h0 * h2 - h1 * h1), alpha = -beta * h1 / h0;
        for (int k = 0; k < 2 * n; ++k) w[k] += h[k] * (alpha + beta * (f + n - 1 - k));
    }
}

std::shared_ptr<const std::vector<double>> lanczosTable(int n) {
    static std::mutex mutex;
    static std::array<std::shared_ptr<const std::vector<double>>, WarpingKernel::kMaxTaps / 2 + 1> tables;
    std::lock_guard lock(mutex);
    auto& t = tables[std::size_t(n)];
    if (!t) {
        auto v = std::make_shared<std::vector<double>>(std::size_t(WarpingKernel::kPhases + 1) * std::size_t(2 * n));
        for (int p = 0; p <= WarpingKernel::kPhases; ++p)
            exactLanczosRow(double(p) / WarpingKernel::kPhases, n, v->data() + std::size_t(p) * std::size_t(2 * n));
        t = std::move(v);
    }
    return t;
}

}  // namespace

bool WarpingKernel::isValidName(const std::string& name) {
    return name == "nearest" || name == "bilinear" || name == "lanczos2" || name == "lanczos3" || name == "lanczos4";
}

WarpingKernel::WarpingKernel(const std::string& name) : name_(name) {
    if (!isValidName(name)) {
        throw ConfigError("warping kernel '" + name + "' is not one of nearest, bilinear, lanczos2, lanczos3, lanczos4");
    }
    if (name == "nearest") {
        type_ = Type::Nearest, order_ = 0, taps_ = 1, support_ = 0.5;
    } else if (name == "bilinear") {
        type_ = Type::Bilinear, order_ = 1, taps_ = 2, support_ = 1.0;
    } else {
        type_ = Type::Lanczos, order_ = name.back() - '0', taps_ = 2 * order_, support_ = order_;
        table_ = lanczosTable(order_);
    }
}

double WarpingKernel::value(double x) const {
    switch (type_) {
        case Type::Nearest: return std::fabs(x) < 0.5 ? 1.0 : (std::fabs(x) == 0.5 ? 0.5 : 0.0);
        case Type::Bilinear: return std::max(0.0, 1.0 - std::fabs(x));
        case Type::Lanczos: return lanczos(x, order_);
    }
    return 0.0;
}

int WarpingKernel::computeWeights(double x, double* w) const {
    switch (type_) {
        case Type::Nearest: w[0] = 1.0; return int(std::floor(x + 0.5));
        case Type::Bilinear: {
            const double fl = std::floor(x), f = x - fl;
            w[0] = 1.0 - f, w[1] = f;
            return int(fl);
        }
        case Type::Lanczos: {
            const double fl = std::floor(x);
            const double t = (x - fl) * kPhases;
            int p = int(t);
            if (p >= kPhases) p = kPhases - 1;
            const double a = t - p;
            const double* r0 = table_->data() + std::size_t(p) * std::size_t(taps_);
            const double* r1 = r0 + taps_;
            for (int k = 0; k < taps_; ++k) w[k] = r0[k] + a * (r1[k] - r0[k]);
            return int(fl) - order_ + 1;
        }
    }
    return 0;
}

int WarpingKernel::computeExactWeights(double x, double* w) const {
    if (type_ != Type::Lanczos) return computeWeights(x, w);
    const double fl = std::floor(x);
    exactLanczosRow(x - fl, order_, w);
    return int(fl) - order_ + 1;
}

}  // namespace drp
