// Convolution benchmarks: direct vs FFT across kernel sizes (the crossover that sets
// ConvolutionControl::fftCrossoverArea), a raw-FFTW baseline (pre-made plan, r2c + multiply + c2r)
// beside our FFT convolution on the same input, and separable vs general kernels.
//
// Run (short min time; the machine is shared):
//   ./bench_convolution --benchmark_min_time=0.2
// Filter one family with e.g. --benchmark_filter='General<float>'. Counter "Mpix/s" is output pixels
// per second (CPU time).
//
// Measured (2-core AMD EPYC, shared, SSE2 build; CPU ms per convolution, float):
//   k x k general     1024^2: direct  k=9 12.8, k=11 18.4 | FFT ~15.5 (any k)   -> crossover k ~ 10
//                     2048^2: direct k=11 75,   k=13 105  | FFT ~96              -> crossover k ~ 12-13
//                     4096^2: direct k=15 557,  k=17 709  | FFT ~730             -> crossover k ~ 17
//   double: 1024^2 k=9 26 vs FFT 26; 2048^2 k=11 151 / k=13 206 vs FFT ~182 (same crossover).
//   => ConvolutionControl::fftCrossoverArea = 169 (13 x 13).
//   separable Gaussian 2048^2: direct 6.9 (k=3) .. 40 ms (k=41); as general kernel 974 ms at k=41;
//   FFT ~80 ms  => separable direct always wins up to 41 (fftCrossoverSeparable = 180, extrapolated).
//   raw FFTW (pre-made plan, precomputed kernel spectrum) vs ours, 15x15: 1024^2 7.7 vs 13.7,
//   2048^2 51 vs 79, 4096^2 426 vs 753 ms (ours also transforms the kernel: 3 FFTs instead of 2).
#include <benchmark/benchmark.h>

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <random>
#include <vector>

#include "core/Convolution.h"

using namespace drp;

namespace {

template <typename T>
Image<T> randomImage(int n, std::uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> g(100.0, 10.0);
    Image<T> img(n, n);
    for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) img(x, y) = T(g(rng));
    return img;
}

Kernel generalKernel(int k) {
    // A non-separable kernel: a Gaussian with an elliptical, rotated profile.
    ImageD img(k, k);
    const double c = (k - 1) / 2.0, s = std::max(1.0, k / 6.0);
    for (int j = 0; j < k; ++j)
        for (int i = 0; i < k; ++i) {
            double dx = i - c, dy = j - c;
            img(i, j) = std::exp(-0.5 * (dx * dx + 1.7 * dx * dy + 2.0 * dy * dy) / (s * s));
        }
    return Kernel(img);
}

void setCounters(benchmark::State& state, int n) {
    state.counters["Mpix/s"] = benchmark::Counter(double(n) * n / 1e6, benchmark::Counter::kIsIterationInvariantRate);
}

void crossoverArgs(benchmark::internal::Benchmark* b) {
    for (int n : {1024, 2048, 4096})
        for (int k : {3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 25, 31, 41}) b->Args({n, k});
    b->Unit(benchmark::kMillisecond);
}

template <typename T>
void BM_General(benchmark::State& state, ConvolutionControl::Method method) {
    const int n = int(state.range(0)), k = int(state.range(1));
    Image<T> in = randomImage<T>(n);
    Image<T> out(n, n);
    Kernel kernel = generalKernel(k);
    ConvolutionControl ctrl;
    ctrl.method = method;
    for (auto _ : state) {
        convolve(out, in, kernel, ctrl);
        benchmark::DoNotOptimize(out.data());
    }
    setCounters(state, n);
}

template <typename T>
void BM_GeneralDirect(benchmark::State& state) { BM_General<T>(state, ConvolutionControl::Method::Direct); }
template <typename T>
void BM_GeneralFft(benchmark::State& state) { BM_General<T>(state, ConvolutionControl::Method::Fft); }

BENCHMARK_TEMPLATE(BM_GeneralDirect, float)->Apply(crossoverArgs);
BENCHMARK_TEMPLATE(BM_GeneralFft, float)->Apply(crossoverArgs);
BENCHMARK_TEMPLATE(BM_GeneralDirect, double)->Apply(crossoverArgs);
BENCHMARK_TEMPLATE(BM_GeneralFft, double)->Apply(crossoverArgs);

// Separable (Gaussian) kernel: direct separable, the same kernel as a general kernel (direct), and FFT.
template <typename T>
void BM_Separable(benchmark::State& state, int variant) {
    const int n = int(state.range(0)), k = int(state.range(1));
    Image<T> in = randomImage<T>(n);
    Image<T> out(n, n);
    Kernel sep = Kernel::gaussian(std::max(0.5, k / 8.0), (k - 1) / 2);
    Kernel kernel = variant == 1 ? sep.toGeneral() : sep;
    ConvolutionControl ctrl;
    ctrl.method = variant == 2 ? ConvolutionControl::Method::Fft : ConvolutionControl::Method::Direct;
    for (auto _ : state) {
        convolve(out, in, kernel, ctrl);
        benchmark::DoNotOptimize(out.data());
    }
    setCounters(state, n);
}
template <typename T>
void BM_SeparableDirect(benchmark::State& state) { BM_Separable<T>(state, 0); }
template <typename T>
void BM_SeparableAsGeneralDirect(benchmark::State& state) { BM_Separable<T>(state, 1); }
template <typename T>
void BM_SeparableFft(benchmark::State& state) { BM_Separable<T>(state, 2); }

void separableArgs(benchmark::internal::Benchmark* b) {
    for (int k : {3, 9, 17, 25, 41}) b->Args({2048, k});
    b->Unit(benchmark::kMillisecond);
}
BENCHMARK_TEMPLATE(BM_SeparableDirect, float)->Apply(separableArgs);
BENCHMARK_TEMPLATE(BM_SeparableAsGeneralDirect, float)->Apply(separableArgs);
BENCHMARK_TEMPLATE(BM_SeparableFft, float)->Apply(separableArgs);

// Raw FFTW baseline, float: a plan made once outside the timing loop, the kernel spectrum precomputed,
// then per iteration only r2c(image) + complex multiply + c2r (what an expert hand-writes). Compare with
// BM_GeneralFft<float> at the same size (which also transforms the kernel and copies in and out).
void BM_RawFftwFloat(benchmark::State& state) {
    const int n = int(state.range(0)), k = 15;
    const int nc = n / 2 + 1;
    const std::size_t nReal = std::size_t(n) * n, nCplx = std::size_t(n) * nc;
    float* real = fftwf_alloc_real(nReal);
    fftwf_complex* spec = fftwf_alloc_complex(nCplx);
    fftwf_complex* kspec = fftwf_alloc_complex(nCplx);
    fftwf_plan r2c, c2r;
    {
        std::lock_guard<std::mutex> lock(fftwPlannerMutex());
        r2c = fftwf_plan_dft_r2c_2d(n, n, real, spec, FFTW_ESTIMATE);
        c2r = fftwf_plan_dft_c2r_2d(n, n, spec, real, FFTW_ESTIMATE);
    }
    Kernel kernel = generalKernel(k).normalized();
    std::fill(real, real + nReal, 0.0f);
    for (int j = 0; j < k; ++j)
        for (int i = 0; i < k; ++i)
            real[std::size_t((j - k / 2 + n) % n) * n + std::size_t((i - k / 2 + n) % n)] = float(kernel(i, j));
    fftwf_execute_dft_r2c(r2c, real, kspec);
    ImageF in = randomImage<float>(n);
    const float scale = 1.0f / (float(n) * float(n));
    for (auto _ : state) {
        for (int y = 0; y < n; ++y) std::copy(in.row(y), in.row(y) + n, real + std::size_t(y) * n);
        fftwf_execute_dft_r2c(r2c, real, spec);
        for (std::size_t i = 0; i < nCplx; ++i) {
            float re = spec[i][0] * kspec[i][0] - spec[i][1] * kspec[i][1];
            float im = spec[i][0] * kspec[i][1] + spec[i][1] * kspec[i][0];
            spec[i][0] = re * scale;
            spec[i][1] = im * scale;
        }
        fftwf_execute_dft_c2r(c2r, spec, real);
        benchmark::DoNotOptimize(real);
    }
    setCounters(state, n);
    {
        std::lock_guard<std::mutex> lock(fftwPlannerMutex());
        fftwf_destroy_plan(r2c);
        fftwf_destroy_plan(c2r);
    }
    fftwf_free(real);
    fftwf_free(spec);
    fftwf_free(kspec);
}
BENCHMARK(BM_RawFftwFloat)->Arg(1024)->Arg(2048)->Arg(4096)->Unit(benchmark::kMillisecond);

void BM_OursFftFloat(benchmark::State& state) {  // same size, same 15x15 kernel as the raw baseline
    const int n = int(state.range(0));
    ImageF in = randomImage<float>(n);
    ImageF out(n, n);
    Kernel kernel = generalKernel(15);
    ConvolutionControl ctrl;
    ctrl.method = ConvolutionControl::Method::Fft;
    for (auto _ : state) {
        convolve(out, in, kernel, ctrl);
        benchmark::DoNotOptimize(out.data());
    }
    setCounters(state, n);
}
BENCHMARK(BM_OursFftFloat)->Arg(1024)->Arg(2048)->Arg(4096)->Unit(benchmark::kMillisecond);

}  // namespace
