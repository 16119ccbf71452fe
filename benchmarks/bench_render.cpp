// Rendering benchmarks: one full LSSTCam-size detector (4072 x 4000 float) with 10^4 sources (70% bulge +
// disk galaxies, half-light radii 0.2-1.5 arcsec at 0.2 arcsec/pixel; 30% stars; magnitudes from a power
// law so most are faint) under a spatially varying MoffatPsf (FWHM ~3.5 px, beta 2.5), plus
// micro-benchmarks of addPointSource and addGalaxy beside their raw parts (the PSF kernel alone, a raw
// FFTW r2c + c2r pair of the same stamp size).
//
// Run (short min time; the machine is shared):
//   ./bench_render --benchmark_min_time=0.2
// Counters: "sources/s" for the detector; the per-call time for the micro-benchmarks.
//
// Measured (2-core AMD EPYC, shared with other jobs, SSE2 build; CPU time, one thread):
//   detector, 10^4 sources (~30% stars, ~70% galaxies)        2.45 s CPU (2.7-3.4 s wall under load) -> target < 5 s
//   addPointSource, beta 2.5 / 3.5 / 2.7 (generic pow)       ~75-95 / ~88 / ~165-215 us (the Moffat image is ~all)
//   MoffatPsf::computeKernelImage (31 x 31), beta 2.5 / 3.5 / 2.7   ~73-83 / ~83 / ~160-190 us
//   addGalaxy, e = 0.3, r = 0.2" / 0.5" / 1.5" (disk | bulge | half-half):
//       147 | 147 | 169 us (63x49 stamp); 188 | 259 | 306 us (75x63, 105x75); 521 | 760 | 921 us (147x125, 189x147)
//   raw FFTW r2c + c2r pair (pre-made plan): 63^2 29 us, 105^2 101 us, 189^2 457 us
//   (a galaxy costs its PSF kernel + 3 FFTs of its stamp + the tabulated transform at S^2 / 2 frequencies).
#include <benchmark/benchmark.h>

#include <fftw3.h>

#include <cmath>
#include <mutex>
#include <numbers>
#include <random>
#include <vector>

#include "core/Convolution.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"

using namespace drp;

namespace {

constexpr int kWidth = 4072, kHeight = 4000;
constexpr double kPixelScale = 0.2;  // arcsec / pixel

struct Source {
    bool star;
    Point2D position;
    double flux;
    GalaxyShape shape;
};

std::shared_ptr<const MoffatPsf> detectorPsf(double beta = 2.5) {
    return MoffatPsf::make(Box2I({0, 0}, kWidth, kHeight), beta, {3.5, 0.15, -0.1, 0.05, 0.03, -0.05},
                           {0.02, 0.01, -0.01, 0.0, 0.005, 0.0}, {-0.01, 0.0, 0.015, 0.005, 0.0, 0.0});
}

Eigen::Matrix2d jacobian() {
    // East to the left (-x), north up (+y): the usual sky parity; a small rotation.
    const double a = 0.3 * std::numbers::pi / 180.0;
    Eigen::Matrix2d j;
    j << -std::cos(a), std::sin(a), std::sin(a), std::cos(a);
    return j / kPixelScale;
}

/// A realistic scene: magnitudes m in [16, 26] with dN/dm ∝ 10^(0.3 m) (mostly faint), zero point 31.
std::vector<Source> scene(int n, std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    std::vector<Source> out;
    out.reserve(std::size_t(n));
    const double a = 0.3 * std::log(10.0), lo = std::exp(a * 16.0), hi = std::exp(a * 26.0);
    for (int i = 0; i < n; ++i) {
        Source s{};
        s.star = u(rng) < 0.3;
        s.position = {u(rng) * kWidth - 0.5, u(rng) * kHeight - 0.5};
        const double mag = std::log(lo + u(rng) * (hi - lo)) / a;
        s.flux = std::pow(10.0, 0.4 * (31.0 - mag));
        if (!s.star) {
            const double kind = u(rng);
            s.shape.bulgeFraction = kind < 0.3 ? 0.0 : kind < 0.4 ? 1.0 : u(rng);
            s.shape.diskHalfLightRadiusArcsec = 0.2 * std::pow(7.5, u(rng));  // log-uniform 0.2 - 1.5
            s.shape.bulgeHalfLightRadiusArcsec = std::max(0.2, s.shape.diskHalfLightRadiusArcsec * (0.3 + 0.4 * u(rng)));
            const double e = 0.5 * std::sqrt(u(rng)), th = std::numbers::pi * u(rng);
            s.shape.e1 = e * std::cos(2 * th);
            s.shape.e2 = e * std::sin(2 * th);
        }
        out.push_back(s);
    }
    return out;
}

void BM_RenderDetector(benchmark::State& state) {
    const int n = int(state.range(0));
    const auto psf = detectorPsf();
    const auto sources = scene(n, 7);
    const Eigen::Matrix2d jac = jacobian();
    ImageF image(kWidth, kHeight, 0.0f);
    double added = 0.0;
    for (auto _ : state) {
        image.fill(0.0f);
        for (const Source& s : sources) {
            if (s.star) added += addPointSource(image, s.position, s.flux, *psf);
            else added += addGalaxy(image, s.position, s.flux, s.shape, jac, *psf);
        }
        benchmark::DoNotOptimize(added);
    }
    state.counters["sources/s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_RenderDetector)->Arg(10000)->Unit(benchmark::kMillisecond)->Iterations(1)->UseRealTime();

void BM_AddPointSource(benchmark::State& state) {
    const auto psf = detectorPsf(state.range(0) / 10.0);
    ImageF image(512, 512, 0.0f);
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(40.0, 470.0);
    for (auto _ : state) benchmark::DoNotOptimize(addPointSource(image, {u(rng), u(rng)}, 1000.0, *psf));
    state.SetLabel("beta=" + std::to_string(state.range(0) / 10.0).substr(0, 3));
}
BENCHMARK(BM_AddPointSource)->Arg(25)->Arg(35)->Arg(27)->Unit(benchmark::kMicrosecond);

/// Raw part: the PSF kernel alone (what every source pays).
void BM_MoffatKernelImage(benchmark::State& state) {
    const auto psf = detectorPsf(state.range(0) / 10.0);
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> u(0.0, 4000.0);
    for (auto _ : state) benchmark::DoNotOptimize(psf->computeKernelImage({u(rng), u(rng)}));
    state.SetLabel("beta=" + std::to_string(state.range(0) / 10.0).substr(0, 3));
}
BENCHMARK(BM_MoffatKernelImage)->Arg(25)->Arg(35)->Arg(27)->Unit(benchmark::kMicrosecond);

/// addGalaxy by half-light radius (arg / 10 arcsec) and kind (0 disk, 1 bulge, 2 half-half), e = 0.3.
void BM_AddGalaxy(benchmark::State& state) {
    const auto psf = detectorPsf();
    const double r = state.range(0) / 10.0;
    const int kind = int(state.range(1));
    GalaxyShape g{kind == 0 ? 0.0 : kind == 1 ? 1.0 : 0.5, r, r, 0.3, 0.1};
    const Eigen::Matrix2d jac = jacobian();
    ImageF image(1024, 1024, 0.0f);
    std::mt19937_64 rng(3);
    std::uniform_real_distribution<double> u(300.0, 700.0);
    for (auto _ : state) benchmark::DoNotOptimize(addGalaxy(image, {u(rng), u(rng)}, 1000.0, g, jac, *psf));
    const ImageD stamp = renderGalaxyStamp({500.3, 500.6}, 1.0, g, jac, *psf);
    state.SetLabel("stamp=" + std::to_string(stamp.width()) + "x" +
                   std::to_string(stamp.height()));
}
BENCHMARK(BM_AddGalaxy)
    ->Args({2, 0})->Args({2, 1})->Args({2, 2})
    ->Args({5, 0})->Args({5, 1})->Args({5, 2})
    ->Args({15, 0})->Args({15, 1})->Args({15, 2})
    ->Unit(benchmark::kMicrosecond);

/// Raw baseline: an FFTW r2c + c2r pair (pre-made plan) on an n x n double stamp.
void BM_RawFftwPair(benchmark::State& state) {
    const int n = int(state.range(0));
    double* real = fftw_alloc_real(std::size_t(n) * n);
    fftw_complex* spec = fftw_alloc_complex(std::size_t(n) * (n / 2 + 1));
    fftw_plan fwd, inv;
    {
        std::lock_guard lock(fftwPlannerMutex());
        fwd = fftw_plan_dft_r2c_2d(n, n, real, spec, FFTW_ESTIMATE);
        inv = fftw_plan_dft_c2r_2d(n, n, spec, real, FFTW_ESTIMATE);
    }
    for (int i = 0; i < n * n; ++i) real[i] = 1.0 / (1 + i % 17);
    for (auto _ : state) {
        fftw_execute(fwd);
        fftw_execute(inv);
        benchmark::DoNotOptimize(real[0]);
    }
    {
        std::lock_guard lock(fftwPlannerMutex());
        fftw_destroy_plan(fwd);
        fftw_destroy_plan(inv);
    }
    fftw_free(real);
    fftw_free(spec);
}
BENCHMARK(BM_RawFftwPair)->Arg(63)->Arg(105)->Arg(189)->Unit(benchmark::kMicrosecond);

}  // namespace
