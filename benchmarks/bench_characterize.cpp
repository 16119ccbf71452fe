// Image characterisation of one full detector (4072 x 4000, ~10^4 sources, ~1000 cosmic rays): background,
// matched-filter detection, cosmic rays and PSF determination (~200 stars; native and oversampled models), each
// beside a raw baseline (one pass over the pixels; the Gaussian convolution detection is built on; nth_element over
// all pixels).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <random>

#include "core/Convolution.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/measure/AdaptiveMoments.h"
#include "stages/characterize/Background.h"
#include "stages/characterize/CosmicRay.h"
#include "stages/characterize/PsfDeterminer.h"
#include "stages/characterize/SourceDetection.h"

using namespace drp;

namespace {

constexpr int kW = 4072, kH = 4000;
constexpr double kSky = 1200.0;

struct Scene {
    MaskedImageF image;  ///< sky + sources + cosmic rays + noise (sky not subtracted)
    std::shared_ptr<const Psf> psf;
    std::vector<Point2D> stars;
    std::vector<double> starFlux;
    double psfSigma = 0;
};

const Scene& scene() {
    static const Scene s = [] {
        Scene sc;
        sc.image = MaskedImageF(kW, kH);
        const MoffatPsf moffat(4.0, 3.5);
        sc.psf = ImagePsf::make(moffat.computeKernelImage());  // fast sub-pixel placement (Fourier shift)
        sc.psfSigma = std::sqrt(0.5 * computeAdaptiveMoments(moffat.computeKernelImage(), {0, 0}, SecondMoments::circle(2.0),
                                                             PsfDeterminerConfig::defaultMomentsControl())
                                              .moments.trace());
        std::mt19937_64 rng(2024);
        std::uniform_real_distribution<double> u(0.0, 1.0);
        std::normal_distribution<double> g(0.0, 1.0);
        // ~10^4 point sources, N(>F) ~ F^-0.6 from 300 e- to 3e6 e-.
        for (int k = 0; k < 10000; ++k) {
            const Point2D p{20.0 + u(rng) * (kW - 40), 20.0 + u(rng) * (kH - 40)};
            const double flux = 300.0 * std::pow(1.0 - u(rng) * (1.0 - std::pow(1e4, -0.6)), -1.0 / 0.6);
            addPointSource(sc.image.image(), p, flux, *sc.psf);
            sc.stars.push_back(p);
            sc.starFlux.push_back(flux);
        }
        // ~1000 cosmic rays: straight-ish tracks of 1..15 pixels, 1000..5000 e- per pixel.
        for (int k = 0; k < 1000; ++k) {
            double px = 5 + u(rng) * (kW - 10), py = 5 + u(rng) * (kH - 10), th = 2 * std::numbers::pi * u(rng);
            const int len = 1 + int(15 * u(rng) * u(rng));
            for (int step = 0; step < len; ++step) {
                const int ix = int(px), iy = int(py);
                if (ix < 1 || iy < 1 || ix >= kW - 1 || iy >= kH - 1) break;
                sc.image.image()(ix, iy) += float(1000.0 * std::exp(std::log(5.0) * u(rng)));
                px += std::cos(th);
                py += std::sin(th);
            }
        }
        for (int y = 0; y < kH; ++y)
            for (int x = 0; x < kW; ++x) {
                const double mean = kSky + std::max(0.0f, sc.image.image()(x, y));
                sc.image.variance()(x, y) = float(mean);
                sc.image.image()(x, y) = float(mean + std::sqrt(mean) * g(rng));
            }
        return sc;
    }();
    return s;
}

/// Candidates for the PSF: bright (S/N > 100), isolated (no other source within 20 pixels) sources.
std::vector<PsfCandidate> psfCandidates(const MaskedImageF& image, std::size_t maxCount) {
    const Scene& sc = scene();
    std::vector<std::size_t> order(sc.stars.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return sc.starFlux[a] > sc.starFlux[b]; });
    std::vector<PsfCandidate> out;
    for (std::size_t i : order) {
        if (out.size() >= maxCount) break;
        const double f = sc.starFlux[i];
        if (f > 2e6) continue;  // stay linear
        bool isolated = true;
        for (std::size_t j = 0; j < sc.stars.size() && isolated; ++j)
            if (j != i && std::hypot(sc.stars[j].x - sc.stars[i].x, sc.stars[j].y - sc.stars[i].y) < 20 && sc.starFlux[j] > 0.001 * f) isolated = false;
        if (!isolated) continue;
        const AdaptiveMomentsResult m = computeAdaptiveMoments(image.image(), sc.stars[i], SecondMoments::circle(2.0),
                                                               PsfDeterminerConfig::defaultMomentsControl());
        if (!m.converged) continue;
        PsfCandidate c;
        c.position = m.centre;
        c.flux = m.amplitude;
        c.fluxErr = std::sqrt(4 * std::numbers::pi * 0.5 * m.moments.trace() * kSky + m.amplitude);
        c.ixx = m.moments.xx;
        c.iyy = m.moments.yy;
        c.ixy = m.moments.xy;
        out.push_back(c);
    }
    return out;
}

MaskedImageF subtractedImage() {
    MaskedImageF mi = scene().image.clone();
    mi.image() -= float(kSky);
    return mi;
}

void BM_RawPixelPass(benchmark::State& st) {
    const ImageF& img = scene().image.image();
    for (auto _ : st) {
        double s = 0;
        for (int y = 0; y < kH; ++y) {
            const float* r = img.row(y);
            for (int x = 0; x < kW; ++x) s += r[x];
        }
        benchmark::DoNotOptimize(s);
    }
}
BENCHMARK(BM_RawPixelPass)->Unit(benchmark::kMillisecond)->Iterations(5);

void BM_RawMedianAllPixels(benchmark::State& st) {
    const ImageF& img = scene().image.image();
    for (auto _ : st) {
        std::vector<float> v(img.data(), img.data() + std::size_t(kW) * kH);
        std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
        benchmark::DoNotOptimize(v[v.size() / 2]);
    }
}
BENCHMARK(BM_RawMedianAllPixels)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_RawGaussianConvolution(benchmark::State& st) {
    const ImageF& img = scene().image.image();
    const Kernel k = Kernel::gaussian(scene().psfSigma, int(std::ceil(4 * scene().psfSigma)));
    for (auto _ : st) benchmark::DoNotOptimize(convolved(img, k));
}
BENCHMARK(BM_RawGaussianConvolution)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Background(benchmark::State& st) {
    for (auto _ : st) {
        st.PauseTiming();
        MaskedImageF mi = scene().image.clone();
        st.ResumeTiming();
        const Background bg = estimateBackground(mi, BackgroundConfig{});
        subtractBackground(mi, bg);
        benchmark::DoNotOptimize(mi.image()(0, 0));
    }
}
BENCHMARK(BM_Background)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Detection(benchmark::State& st) {
    std::size_t n = 0;
    for (auto _ : st) {
        st.PauseTiming();
        MaskedImageF mi = subtractedImage();
        st.ResumeTiming();
        n = detectSources(mi, scene().psfSigma, SourceDetectionConfig{}).positive.size();
    }
    st.counters["footprints"] = double(n);
}
BENCHMARK(BM_Detection)->Unit(benchmark::kMillisecond)->Iterations(3);

/// The bright pass for PSF stars (S/N 50): filtering only where the Cauchy-Schwarz bound allows a
/// detection (arg 1, the default) against filtering the whole image (arg 0); the same footprints.
void BM_BrightPass(benchmark::State& st) {
    SourceDetectionConfig cfg;
    cfg.thresholdSigma = 50.0;
    cfg.pruneByBound = st.range(0) != 0;
    std::size_t n = 0;
    for (auto _ : st) {
        st.PauseTiming();
        MaskedImageF mi = subtractedImage();
        st.ResumeTiming();
        n = detectSources(mi, scene().psfSigma, cfg).positive.size();
    }
    st.counters["footprints"] = double(n);
}
BENCHMARK(BM_BrightPass)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_CosmicRays(benchmark::State& st) {
    int n = 0;
    for (auto _ : st) {
        st.PauseTiming();
        MaskedImageF mi = subtractedImage();
        st.ResumeTiming();
        n = findCosmicRays(mi, *scene().psf, 0.0, CosmicRayConfig{});
    }
    st.counters["cosmicRays"] = n;
}
BENCHMARK(BM_CosmicRays)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_PsfDetermination(benchmark::State& st) {
    const MaskedImageF mi = subtractedImage();
    const auto cands = psfCandidates(mi, 250);
    PsfDeterminationResult r;
    for (auto _ : st) r = determinePsf(mi, cands, PsfDeterminerConfig{});
    st.counters["candidates"] = double(cands.size());
    st.counters["used"] = r.nUsed;
    st.counters["reservedMedianDTT"] = r.reservedMedianSizeResidual;
    st.counters["reservedMeanDTT"] = r.reservedMeanSizeResidual;
    st.counters["reservedDirectMedianDTT"] = r.reservedDirectMedianSizeResidual;
}
BENCHMARK(BM_PsfDetermination)->Unit(benchmark::kMillisecond)->Iterations(3);

/// The same stars with the model's sampling forced: 1 (native, the per-pixel fit of sinc-recentred stamps) against 2
/// and 3 (the oversampled fit, OversampledPsfFit.h, that undersampled PSFs get automatically): the cost of the
/// oversampled solve on ~200 stars.
void BM_PsfDeterminationSampling(benchmark::State& st) {
    const MaskedImageF mi = subtractedImage();
    const auto cands = psfCandidates(mi, 250);
    PsfDeterminerConfig cfg;
    cfg.oversampling = int(st.range(0));
    PsfDeterminationResult r;
    for (auto _ : st) r = determinePsf(mi, cands, cfg);
    st.counters["used"] = r.nUsed;
    st.counters["stamp"] = r.stampSize;
    st.counters["cgIterations"] = r.solverIterations;
    st.counters["reservedMeanDTT"] = r.reservedMeanSizeResidual;
}
BENCHMARK(BM_PsfDeterminationSampling)->Arg(1)->Arg(2)->Arg(3)->Unit(benchmark::kMillisecond)->Iterations(2);

/// Background, detection, cosmic rays, background again with detections masked, PSF.
void BM_CharacterizeDetector(benchmark::State& st) {
    const auto cands = psfCandidates(subtractedImage(), 250);
    for (auto _ : st) {
        st.PauseTiming();
        MaskedImageF mi = scene().image.clone();
        st.ResumeTiming();
        Background bg = estimateBackground(mi, BackgroundConfig{});
        subtractBackground(mi, bg);
        findCosmicRays(mi, *scene().psf, 0.0, CosmicRayConfig{});
        detectSources(mi, scene().psfSigma, SourceDetectionConfig{});
        subtractBackground(mi, estimateBackground(mi, BackgroundConfig{}));
        benchmark::DoNotOptimize(determinePsf(mi, cands, PsfDeterminerConfig{}).nUsed);
    }
}
BENCHMARK(BM_CharacterizeDetector)->Unit(benchmark::kMillisecond)->Iterations(2);

}  // namespace
