// Single-frame measurement (stages/measure) on a 4072 x 4000 detector with ~10^4 detected sources
// (80% stars, 20% exponential disks; Moffat PSF, FWHM 3.5 px; sky-limited Gaussian noise), all plugins,
// then each plugin alone, on one core. Items processed = sources, so items/s is sources per second; the
// "Mpix/s" counter is detector pixels per second of wall time, the figure SExtractor quotes (about
// 29 Mpix/s for detection + measurement on this machine; SExtractor is not installed here, so it is not
// run in the same process).
// Baselines in the same run: a raw aperture loop (8 circular apertures by pixel-centre inclusion, no
// exact overlap, no masks, no variance) and the PSF image evaluation alone (Psf::computeImage per
// source), the floor of any PSF-based plugin. The aperture kernel (measureApertures) is also timed
// against its brute-force reference (pixelCircleFraction for every pixel and radius) on the first
// kKernelPeaks peaks. The detection's row-by-row thresholding (RowFootprintDetector, which never holds the
// image) is timed against detectFootprints on the whole image (same footprints and peaks), on the field's
// image at its 5-sigma threshold.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/Footprint.h"
#include "core/MoffatPsf.h"
#include "core/Render.h"
#include "stages/characterize/RowFootprints.h"
#include "stages/measure/ApertureFluxPlugin.h"
#include "stages/measure/CircleOverlap.h"
#include "stages/measure/SingleFrameMeasurement.h"

using namespace drp;

namespace {

constexpr int kWidth = 4072;
constexpr int kHeight = 4000;
constexpr int kSources = 11000;

struct Field {
    Exposure exposure;
    FootprintSet footprints;
};

/// The field's sky variance (e-^2) and its detection configuration (5 sigma of the sky, 5 pixels).
constexpr float kSkyVar = 1000.0f + 81.0f;
DetectionConfig fieldDetection() {
    DetectionConfig dc;
    dc.threshold = 5.0 * std::sqrt(kSkyVar);
    dc.minPixels = 5;
    dc.noiseSigma = std::sqrt(kSkyVar);
    return dc;
}

const Field& field() {
    static const Field f = [] {
        auto psf = MoffatPsf::make(3.5, 3.5);
        MaskedImageF mi(Box2I({0, 0}, kWidth, kHeight));
        ImageF model(mi.bbox());
        std::mt19937_64 rng(2024);
        std::uniform_real_distribution<double> px(10, kWidth - 10), py(10, kHeight - 10), u(0, 1),
            lf(std::log(2e3), std::log(1e6)), hlr(0.3, 1.5), ell(-0.3, 0.3);
        const Eigen::Matrix2d jac = Eigen::Matrix2d::Identity() / 0.2;
        for (int k = 0; k < kSources; ++k) {
            const Point2D c{px(rng), py(rng)};
            const double flux = std::exp(lf(rng));
            if (u(rng) < 0.2) {
                GalaxyShape g;
                g.diskHalfLightRadiusArcsec = hlr(rng);
                g.e1 = ell(rng);
                g.e2 = ell(rng);
                addGalaxy(model, c, flux, g, jac, *psf);
            } else {
                addPointSource(model, c, flux, *psf);
            }
        }
        std::normal_distribution<float> g(0.0f, 1.0f);
        const float skyVar = kSkyVar;
        for (int y = 0; y < kHeight; ++y)
            for (int x = 0; x < kWidth; ++x) {
                const float var = skyVar + std::max(0.0f, model(x, y));
                mi.image()(x, y) = model(x, y) + std::sqrt(var) * g(rng);
                mi.variance()(x, y) = var;
            }
        const DetectionConfig dc = fieldDetection();
        Mask& mask = mi.mask();
        FootprintSet fs = detectFootprints(mi.image(), dc, &mask).dilated(2);
        return Field{Exposure(mi, nullptr, psf), std::move(fs)};
    }();
    return f;
}

void runMeasurement(benchmark::State& state, const MeasurementConfig& config) {
    const Field& f = field();
    SingleFrameMeasurement meas(config);
    std::size_t rows = 0;
    for (auto _ : state) {
        Table t = meas.measure(f.exposure, f.footprints, 1);
        rows = t.size();
        benchmark::DoNotOptimize(t);
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * rows));
    state.counters["sources"] = double(rows);
    state.counters["footprints"] = double(f.footprints.size());
    state.counters["Mpix/s"] = benchmark::Counter(double(kWidth) * kHeight * 1e-6 * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

void BM_MeasureAllPlugins(benchmark::State& state) { runMeasurement(state, MeasurementConfig{}); }

void BM_MeasureOnePlugin(benchmark::State& state, std::vector<std::string> plugins) {
    MeasurementConfig c;
    c.plugins = std::move(plugins);
    runMeasurement(state, c);
}

/// Calls fn(peak) for the field's peaks in order, at most `limit` of them; returns how many.
template <typename F>
std::size_t forEachPeak(const Field& f, std::size_t limit, F&& fn) {
    std::size_t n = 0;
    for (const auto& fp : f.footprints.footprints())
        for (const PeakRecord& p : fp->peaks()) {
            if (n == limit) return n;
            fn(p);
            ++n;
        }
    return n;
}

/// Time perPeak(peak) -> double over the first `limit` peaks of the field (their sum kept from the optimiser).
template <typename F>
void timePerPeak(benchmark::State& state, std::size_t limit, F&& perPeak) {
    const Field& f = field();
    std::size_t n = 0;
    for (auto _ : state) {
        double total = 0;
        n = forEachPeak(f, limit, [&](const PeakRecord& p) { total += perPeak(p); });
        benchmark::DoNotOptimize(total);
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * n));
}

/// The default aperture radii (8: the raw loops below keep one sum per radius).
const std::vector<double>& apertureRadii() {
    static const std::vector<double> radii = [] {
        std::vector<double> r = MeasurementConfig{}.apertureRadii;
        if (r.size() != 8) throw std::logic_error("bench_measure: the raw aperture loops expect 8 radii");
        return r;
    }();
    return radii;
}

/// Raw baseline: 8 apertures by pixel-centre inclusion at the peaks (no exact overlap, masks, variance).
void BM_RawApertureLoop(benchmark::State& state) {
    const std::vector<double>& radii = apertureRadii();
    const ImageF& img = field().exposure.image();
    timePerPeak(state, SIZE_MAX, [&](const PeakRecord& p) {
        double sums[8] = {};
        const int r = int(std::ceil(radii.back()));
        for (int y = std::max(0, p.iy - r); y <= std::min(kHeight - 1, p.iy + r); ++y)
            for (int x = std::max(0, p.ix - r); x <= std::min(kWidth - 1, p.ix + r); ++x) {
                const double d2 = double(x - p.ix) * (x - p.ix) + double(y - p.iy) * (y - p.iy);
                for (std::size_t k = 0; k < radii.size(); ++k)
                    if (d2 <= radii[k] * radii[k]) sums[k] += img(x, y);
            }
        return sums[7];
    });
}

/// Floor of the PSF plugins: one Psf::computeImage per peak.
void BM_PsfImagePerSource(benchmark::State& state) {
    const Field& f = field();
    const Psf& psf = *f.exposure.psf();
    std::size_t n = 0;
    for (auto _ : state) {
        n = forEachPeak(f, SIZE_MAX, [&](const PeakRecord& p) {
            ImageD im = psf.computeImage({p.x + 0.3, p.y - 0.2});
            benchmark::DoNotOptimize(im);
        });
    }
    state.SetItemsProcessed(std::int64_t(state.iterations() * n));
}

/// Peaks used by the two aperture-kernel benchmarks (the brute-force reference is slow).
constexpr std::size_t kKernelPeaks = 1000;

/// The aperture kernel (ApertureFluxPlugin::measureApertures: per-row intervals, cumulative bins, exact
/// weights for the crossed pixels only) at every peak, 8 radii.
void BM_ApertureKernel(benchmark::State& state) {
    const std::vector<double>& radii = apertureRadii();
    const MaskedImageF& mi = field().exposure.maskedImage();
    timePerPeak(state, kKernelPeaks, [&](const PeakRecord& p) {
        return ApertureFluxPlugin::measureApertures(mi, {p.x + 0.3, p.y - 0.2}, radii, 0).flux.back();
    });
}

/// Its brute-force reference: every pixel of the largest box, every radius, pixelCircleFraction each.
void BM_AperturePerPixelReference(benchmark::State& state) {
    const std::vector<double>& radii = apertureRadii();
    const ImageF& img = field().exposure.image();
    timePerPeak(state, kKernelPeaks, [&](const PeakRecord& p) {
        const Point2D c{p.x + 0.3, p.y - 0.2};
        double sums[8] = {};
        const int r = int(std::ceil(radii.back())) + 1;
        for (int y = std::max(0, p.iy - r); y <= std::min(kHeight - 1, p.iy + r); ++y)
            for (int x = std::max(0, p.ix - r); x <= std::min(kWidth - 1, p.ix + r); ++x)
                for (std::size_t k = 0; k < radii.size(); ++k)
                    sums[k] += pixelCircleFraction(x - c.x, y - c.y, radii[k]) * img(x, y);
        return sums[7];
    });
}

/// Baseline: detectFootprints on the whole image.
void BM_DetectFootprintsWholeImage(benchmark::State& state) {
    const Field& f = field();
    const DetectionConfig dc = fieldDetection();
    std::size_t n = 0;
    for (auto _ : state) {
        FootprintSet fs = detectFootprints(f.exposure.image(), dc);
        n = fs.size();
        benchmark::DoNotOptimize(fs);
    }
    state.counters["footprints"] = double(n);
    state.counters["Mpix/s"] = benchmark::Counter(double(kWidth) * kHeight * 1e-6 * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

/// The same footprints row by row (each row copied into the detector, as the detection's bands hand them over).
void BM_RowFootprintDetector(benchmark::State& state) {
    const Field& f = field();
    const DetectionConfig dc = fieldDetection();
    const ImageF& im = f.exposure.image();
    std::size_t n = 0;
    for (auto _ : state) {
        RowFootprintDetector d(im.bbox(), dc);
        for (int y = 0; y < im.height(); ++y) d.addRow(im.row(y));
        FootprintSet fs = d.finish();
        n = fs.size();
        benchmark::DoNotOptimize(fs);
    }
    state.counters["footprints"] = double(n);
    state.counters["Mpix/s"] = benchmark::Counter(double(kWidth) * kHeight * 1e-6 * double(state.iterations()),
                                                  benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK(BM_MeasureAllPlugins)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, centroid, {"centroid"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, pixelFlags, {"pixelFlags"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, shape, {"shape"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, psfFlux, {"psfFlux"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, apFlux, {"apFlux"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, kronFlux, {"kronFlux"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK_CAPTURE(BM_MeasureOnePlugin, sky, {"sky"})->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_RawApertureLoop)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_PsfImagePerSource)->Unit(benchmark::kMillisecond)->Iterations(2);
BENCHMARK(BM_ApertureKernel)->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_AperturePerPixelReference)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_DetectFootprintsWholeImage)->Unit(benchmark::kMillisecond)->Iterations(5);
BENCHMARK(BM_RowFootprintDetector)->Unit(benchmark::kMillisecond)->Iterations(5);
