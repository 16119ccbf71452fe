// Instrument signature removal on one full-size LSSTCam-like detector (4072 x 4000, 16 amplifiers):
// the full runIsr (overscan, saturation, bias, crosstalk, linearity, dark, flat, defects, interpolation),
// overscan + gain only, beside a raw baseline on the same input (a hand-written loop doing the minimum:
// per-row overscan mean, subtract, multiply by the gain, write into the assembled frame), and the
// master-bias combination of three raw biases.
//
// Run: ./bench_isr --benchmark_min_time=1     (counter "Mpix/s" = assembled pixels per second)
#include <benchmark/benchmark.h>

#include <cmath>
#include <memory>
#include <vector>

#include "core/Statistics.h"
#include "drivers/sim/InstrumentModel.h"
#include "stages/isr/Isr.h"
#include "stages/isr/MasterCalibs.h"

using namespace drp;

namespace {

/// Built once: the detector, its instrument truth, a raw science exposure and truth calibrations.
struct Setup {
    std::shared_ptr<const Camera> camera = makeLsstLikeCamera();
    const Detector& det = camera->detector(4);
    DetectorInstrument inst{det, InstrumentConfig{}, 350.0};
    RawExposure raw;
    Exposure bias{det.bbox()}, dark{det.bbox()}, flat{det.bbox()};
    IsrCalibrations calibs;
    Setup() {
        // Sky (1000 e-) and a grid of bright stars, some saturated with bleed trails.
        ImageF incident(det.bbox(), 1000.0f);
        for (int sy = 100; sy < det.bbox().height(); sy += 400)
            for (int sx = 100; sx < det.bbox().width(); sx += 400) {
                const double flux = 2e5 * std::pow(10.0, (sx + sy) % 5);
                for (int y = sy - 15; y <= sy + 15; ++y)
                    for (int x = sx - 15; x <= sx + 15; ++x)
                        incident(x, y) += float(flux * std::exp(-0.5 * ((x - sx) * (x - sx) + (y - sy) * (y - sy)) / 4.0) /
                                                (2 * 3.14159265 * 4.0));
            }
        raw = inst.simulate(incident, 30, 30, "r", ExposureKind::Science, 1);
        dark.image().assign(inst.darkRate());
        ImageF f = inst.flat("r");
        StatisticsControl sc;
        sc.properties = kStatMedian;
        f *= float(1.0 / makeStatistics(f, sc).median);
        flat.image().assign(f);
        calibs.bias = &bias;
        calibs.dark = &dark;
        calibs.flat = &flat;
        calibs.defects = inst.defects();
        for (const Point2I& p : inst.hotPixels()) calibs.defects.push_back(Box2I(p, 1, 1));
        calibs.crosstalk = inst.crosstalk();
        for (int i = 0; i < int(det.amplifiers().size()); ++i)
            calibs.amplifiers.push_back({inst.gain(i), inst.readNoise(i), inst.nonlinearity(i), inst.saturationAdu(i)});
    }
};

const Setup& setup() {
    static const Setup s;
    return s;
}

void setCounters(benchmark::State& state, const Detector& det) {
    state.counters["Mpix/s"] =
        benchmark::Counter(double(det.bbox().area()) * double(state.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

void BM_RunIsr_Full(benchmark::State& state) {
    const Setup& s = setup();
    const IsrConfig config;
    for (auto _ : state) {
        Exposure out = runIsr(s.raw, s.det, s.calibs, config);
        benchmark::DoNotOptimize(out.image().data());
    }
    setCounters(state, s.det);
}
BENCHMARK(BM_RunIsr_Full)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_RunIsr_OverscanGainOnly(benchmark::State& state) {
    const Setup& s = setup();
    IsrConfig config;
    config.doBias = config.doDark = config.doFlat = config.doCrosstalk = config.doLinearity = false;
    config.doDefects = config.doInterpolate = config.doSaturation = false;
    for (auto _ : state) {
        Exposure out = runIsr(s.raw, s.det, s.calibs, config);
        benchmark::DoNotOptimize(out.image().data());
    }
    setCounters(state, s.det);
}
BENCHMARK(BM_RunIsr_OverscanGainOnly)->Unit(benchmark::kMillisecond)->UseRealTime();

/// Raw baseline: the least any ISR must do (overscan mean per row, subtract, gain, assemble).
void BM_Baseline_OverscanGainLoop(benchmark::State& state) {
    const Setup& s = setup();
    for (auto _ : state) {
        ImageF out(s.det.bbox(), 0.0f);
        for (std::size_t i = 0; i < s.det.amplifiers().size(); ++i) {
            const Amplifier& a = s.det.amplifiers()[i];
            const Image<std::int32_t>& r = s.raw.amplifiers[i];
            const float g = float(a.gain);
            for (int v = 0; v < a.rawDataBBox.height(); ++v) {
                const std::int32_t* row = r.row(v);
                double sum = 0;
                for (int u = a.rawSerialOverscanBBox.minX(); u <= a.rawSerialOverscanBBox.maxX(); ++u) sum += row[u];
                const float level = float(sum / a.rawSerialOverscanBBox.width());
                const int ay = a.rawFlipY() ? a.bbox.maxY() - v : a.bbox.minY() + v;
                float* o = out.row(ay);
                const std::int32_t* in = row + a.rawDataBBox.minX();
                const int w = a.rawDataBBox.width();
                if (a.rawFlipX()) {
                    for (int u = 0; u < w; ++u) o[a.bbox.maxX() - u] = (float(in[u]) - level) * g;
                } else {
                    for (int u = 0; u < w; ++u) o[a.bbox.minX() + u] = (float(in[u]) - level) * g;
                }
            }
        }
        benchmark::DoNotOptimize(out.data());
    }
    setCounters(state, s.det);
}
BENCHMARK(BM_Baseline_OverscanGainLoop)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MakeMasterBias_3(benchmark::State& state) {
    const Setup& s = setup();
    const ImageF none;
    std::vector<RawExposure> biases;
    for (int k = 0; k < 3; ++k) biases.push_back(s.inst.simulate(none, 0, 0, "r", ExposureKind::Bias, 100 + k));
    for (auto _ : state) {
        Exposure m = makeMasterBias(biases, s.det, s.calibs, IsrConfig{}, MasterConfig{});
        benchmark::DoNotOptimize(m.image().data());
    }
    setCounters(state, s.det);
}
BENCHMARK(BM_MakeMasterBias_3)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace
