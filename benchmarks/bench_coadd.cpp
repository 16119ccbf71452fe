// Coadd assembly throughput and memory: a 3000 x 3000 patch from N warps streamed four times
// (artifact rejection on: pass 0 sums and template normal equations, pass 1 first comparison, pass 2
// comparison with the clean template: counts and scatter, pass 3 final comparison; finish() replaces the
// rejected pixels) or once (off), one warp in memory at a time, as a driver would. 2-core VM shared with
// other jobs (load ~8), 20 inputs, CPU time: 3000^2 off 2.7 s, 0.72 GB peak; on 12.8 s, 1.72 GB peak (20.5 s
// before issue 6's row kernels; 41 s before the per-warp scratch was reused). The comparison passes are now
// memory-bound, so CPU time under load overstates them; instructions (callgrind, the 1000^2 case, counting
// add/beginPass/finish only): off 3.30 G, on 9.71 G (2.9x; 25.1 G = 7.6x before).
//   valgrind --tool=callgrind --collect-atstart=no
//     '--toggle-collect=drp::CoaddAssembler::add(drp::MaskedImage<float> const&, drp::WarpMetadata const&)'
//     '--toggle-collect=drp::CoaddAssembler::beginPass(int)' '--toggle-collect=drp::CoaddAssembler::finish()'
//     bench_coadd --benchmark_filter=BM_CoaddAssemble/20/1/1000      (one command line)
// Warps are noise (a shared bank, offset per input) plus a grid of stars and one satellite streak in every
// 7th input; their generation is outside the timed region. Counters: seconds per input per Mpix (all passes) and
// the process's peak RSS (getrusage; includes the benchmark's own warp and noise bank). The memory case,
// 100 inputs with rejection (BM_CoaddAssemble/100/1/3000): 55.8 s, peak RSS 1.73 GB, the same as 20 inputs.
//
//   build/benchmarks/bench_coadd --benchmark_filter=Coadd
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/coadd/CoaddAssembler.h"

using namespace drp;

namespace {

constexpr int kSide = 3000;

const std::vector<float>& noiseBank() {
    static const std::vector<float> bank = [] {
        std::vector<float> b(std::size_t(kSide) * kSide + 65536);
        std::mt19937 rng(1);
        std::normal_distribution<float> g(0.0f, 1.0f);
        for (auto& v : b) v = g(rng);
        return b;
    }();
    return bank;
}

const ImageF& starField() {
    static const ImageF field = [] {
        ImageF f(kSide, kSide, 0.0f);
        const MoffatPsf psf(3.5, 3.0);
        std::mt19937 rng(2);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int k = 0; k < 3000; ++k)
            addPointSource(f, {20 + u(rng) * (kSide - 40), 20 + u(rng) * (kSide - 40)}, 1e3 * std::exp(6 * u(rng)), psf);
        return f;
    }();
    return field;
}

// Warp i over the side x side top-left corner of the star field (side <= kSide).
void makeWarp(MaskedImageF& w, int i) {
    const auto& bank = noiseBank();
    const auto& stars = starField();
    const std::size_t off = std::size_t(i) * 4099 % 65536;
    const float sigma = 10.0f + float(i % 5);
    const int side = w.width();
    for (int y = 0; y < side; ++y) {
        float* im = w.image().row(y);
        float* var = w.variance().row(y);
        const float* s = stars.row(y);
        const float* n = bank.data() + off + std::size_t(y) * kSide;
        for (int x = 0; x < side; ++x) {
            var[x] = sigma * sigma + std::max(s[x], 0.0f);
            im[x] = s[x] + std::sqrt(var[x]) * n[x];
        }
    }
    if (i % 7 == 3) {
        const MoffatPsf psf(3.0, 3.0);
        const int y0 = side / 3 + i;
        addTrail(w.image().subImage(Box2I({0, y0}, side, 400)), {0.0, y0 + 100.0}, {double(side - 1), y0 + 200.0},
                 300.0 * side, psf, RenderConfig{0, 2048});
    }
}

double peakRssMb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return double(ru.ru_maxrss) / 1024.0;
}

void BM_CoaddAssemble(benchmark::State& state) {
    const int n = int(state.range(0));
    const bool reject = state.range(1) != 0;
    const int side = state.range(2) > 0 ? int(state.range(2)) : kSide;
    noiseBank();
    starField();
    MaskedImageF warp(side, side);
    for (auto _ : state) {
        CoaddConfig cfg;
        cfg.rejectArtifacts = reject;
        CoaddAssembler a(Box2I({0, 0}, side, side), cfg);
        for (int p = 0; p < a.numPasses(); ++p) {
            a.beginPass(p);
            for (int i = 0; i < n; ++i) {
                state.PauseTiming();
                makeWarp(warp, i);
                WarpMetadata m;
                m.id = i;
                m.psfSigmaPx = 1.3 + 0.1 * (i % 5);
                state.ResumeTiming();
                a.add(warp, m);
            }
        }
        MaskedImageF c = a.finish();
        benchmark::DoNotOptimize(c.image().data());
        state.counters["pixel_state_MB"] = double(a.pixelStateBytes()) / 1048576.0;
    }
    const double mpix = double(side) * side / 1e6;
    state.counters["s_per_input_Mpix"] =
        benchmark::Counter(double(n) * mpix * double(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["peak_rss_MB"] = peakRssMb();
}

}  // namespace

// Args: inputs, rejection on/off, patch side (1000: the callgrind-sized case, 3000: the production patch).
BENCHMARK(BM_CoaddAssemble)->Args({20, 0, 3000})->Args({20, 1, 3000})->Args({20, 0, 1000})->Args({20, 1, 1000})->Args({100, 1, 3000})->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
