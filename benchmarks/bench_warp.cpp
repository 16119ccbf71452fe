// Warping throughput (stages/coadd/Warper.h): a 4072 x 4000 calexp (TAN-SIP, rotated 30 degrees) warped
// onto a 3400 x 3400 patch grid that it covers, for lanczos3 vs bilinear, interpLength 0 (exact WCS at every
// pixel) vs 10, 1 vs 2 threads. Counter Mpix_per_s = destination pixels / s. Baseline: one plain separable
// lanczos3 pass with a constant (identity-shift) mapping on the same pixel count, the floor the warp's
// kernel arithmetic cannot beat.
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "core/Exposure.h"
#include "stages/coadd/Lanczos.h"
#include "stages/coadd/Warper.h"

using namespace drp;

namespace {

struct Setup {
    Exposure calexp;
    std::shared_ptr<const Wcs> patchWcs;
    Box2I patchBox;
};

const Setup& setup() {
    static const Setup s = [] {
        Setup st;
        const int w = 4072, h = 4000;
        const SpherePoint c = SpherePoint::fromDegrees(150.1, 2.2);
        auto tan = Wcs::makeTan({0.5 * (w - 1), 0.5 * (h - 1)}, c, 0.2 * arcseconds, 30.0 * degrees);
        SipPolynomials p;
        p.order = 2;
        p.a = Eigen::MatrixXd::Zero(3, 3), p.b = Eigen::MatrixXd::Zero(3, 3);
        p.a(2, 0) = 2e-8, p.b(0, 2) = -1e-8, p.a(1, 1) = 1e-8;
        st.calexp = Exposure(w, h);
        std::mt19937_64 rng(1);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (int y = 0; y < h; ++y) {
            float* r = st.calexp.image().row(y);
            for (int x = 0; x < w; ++x) r[x] = g(rng);
        }
        st.calexp.variance().fill(1.0f);
        st.calexp.setWcs(std::make_shared<const Wcs>(tan->crpix(), tan->crval(), tan->cd(), p));
        // Patch grid: 0.2"/px, unrotated, centred on the calexp: the 3400 x 3400 patch lies inside it.
        st.patchWcs = Wcs::makeTan({1700.0, 1700.0}, c, 0.2 * arcseconds, 0.0 * degrees);
        st.patchBox = Box2I({0, 0}, 3400, 3400);
        return st;
    }();
    return s;
}

/// Args: kernel (0 lanczos3, 1 bilinear), interpLength, numThreads.
void BM_Warp(benchmark::State& state) {
    const Setup& s = setup();
    WarpConfig cfg;
    cfg.kernel = state.range(0) == 0 ? "lanczos3" : "bilinear";
    cfg.interpLength = int(state.range(1));
    cfg.numThreads = int(state.range(2));
    WarpInfo info;
    for (auto _ : state) {
        MaskedImageF out = warpMaskedImage(s.calexp.maskedImage(), *s.calexp.wcs(), *s.patchWcs, s.patchBox, cfg, &info);
        benchmark::DoNotOptimize(out.image().row(0));
    }
    state.SetLabel(cfg.kernel + " L=" + std::to_string(cfg.interpLength) + " threads=" + std::to_string(cfg.numThreads));
    state.counters["Mpix_per_s"] = benchmark::Counter(double(s.patchBox.area()) * 1e-6 * double(state.iterations()),
                                                      benchmark::Counter::kIsRate);
    state.counters["good_frac"] = double(info.numGoodPixels) / double(s.patchBox.area());
}

/// Raw baseline: lanczos3 weights + 36-tap sums at a fixed sub-pixel shift over the same number of pixels
/// (image only: no variance, mask, mapping or statistics).
void BM_RawLanczos3Shift(benchmark::State& state) {
    const Setup& s = setup();
    const ImageF& in = s.calexp.image();
    std::vector<float> out(std::size_t(3400) * 3400);
    WarpingKernel k("lanczos3");
    for (auto _ : state) {
        for (int y = 0; y < 3400; ++y) {
            for (int x = 0; x < 3400; ++x) {
                double wx[8], wy[8];
                const int ix = k.computeWeights(x + 300.37, wx), iy = k.computeWeights(y + 300.61, wy);
                double v = 0.0;
                for (int j = 0; j < 6; ++j) {
                    const float* r = in.row(iy + j) + ix;
                    double sr = 0.0;
                    for (int i = 0; i < 6; ++i) sr += wx[i] * r[i];
                    v += wy[j] * sr;
                }
                out[std::size_t(y) * 3400 + std::size_t(x)] = float(v);
            }
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.counters["Mpix_per_s"] = benchmark::Counter(3400.0 * 3400.0 * 1e-6 * double(state.iterations()),
                                                      benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_Warp)
    ->ArgsProduct({{0, 1}, {0, 10}, {1, 2}})
    ->Iterations(2)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_RawLanczos3Shift)->Iterations(2)->Unit(benchmark::kMillisecond)->UseRealTime();
