// Footprint detection and dilation on a 4096 x 4096 image with ~10^4 Gaussian sources over unit noise.
// Baselines in the same run: a bare threshold count (memory-bandwidth floor), a per-pixel stack-based
// flood fill (the classic algorithm the run-based union-find replaces), and a per-pixel mask dilation.
// Items processed = pixels, so the items/s column is pixels per second.
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/Footprint.h"
#include "core/Mask.h"

using namespace drp;

namespace {

constexpr int kSize = 4096;
constexpr int kSources = 10000;
constexpr double kThreshold = 5.0;

const ImageF& field() {
    static const ImageF img = [] {
        ImageF im(kSize, kSize, 0.0f);
        std::mt19937 rng(12345);
        std::normal_distribution<float> noise(0.0f, 1.0f);
        for (int y = 0; y < kSize; ++y) {
            float* r = im.row(y);
            for (int x = 0; x < kSize; ++x) r[x] = noise(rng);
        }
        std::uniform_real_distribution<double> pos(8, kSize - 8), lf(0, 1), sig(1.2, 2.5);
        for (int k = 0; k < kSources; ++k) {
            const double cx = pos(rng), cy = pos(rng), s = sig(rng);
            const double amp = 10.0 * std::pow(100.0, lf(rng));  // 10..1000 sigma, log-uniform
            const int rad = int(std::ceil(5 * s));
            for (int y = int(cy) - rad; y <= int(cy) + rad; ++y)
                for (int x = int(cx) - rad; x <= int(cx) + rad; ++x) {
                    if (x < 0 || y < 0 || x >= kSize || y >= kSize) continue;
                    const double d2 = (x - cx) * (x - cx) + (y - cy) * (y - cy);
                    im(x, y) += float(amp * std::exp(-0.5 * d2 / (s * s)));
                }
        }
        return im;
    }();
    return img;
}

DetectionConfig detectionConfig() {
    DetectionConfig cfg;
    cfg.threshold = kThreshold;
    cfg.minPixels = 5;
    cfg.noiseSigma = 1.0;
    return cfg;
}

void BM_DetectFootprints(benchmark::State& state) {
    const ImageF& img = field();
    const DetectionConfig cfg = detectionConfig();
    std::size_t n = 0, peaks = 0;
    for (auto _ : state) {
        FootprintSet fs = detectFootprints(img, cfg);
        n = fs.size();
        peaks = fs.totalPeaks();
        benchmark::DoNotOptimize(fs);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(kSize) * kSize);
    state.counters["footprints"] = double(n);
    state.counters["peaks"] = double(peaks);
}
BENCHMARK(BM_DetectFootprints)->Unit(benchmark::kMillisecond);

void BM_DetectFootprintsWithMask(benchmark::State& state) {
    const ImageF& img = field();
    const DetectionConfig cfg = detectionConfig();
    Mask mask(kSize, kSize);
    for (auto _ : state) {
        FootprintSet fs = detectFootprints(img, cfg, &mask);
        benchmark::DoNotOptimize(fs);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(kSize) * kSize);
}
BENCHMARK(BM_DetectFootprintsWithMask)->Unit(benchmark::kMillisecond);

/// Baseline: count pixels above threshold (the memory-bandwidth floor of any detector).
void BM_BaselineThresholdCount(benchmark::State& state) {
    const ImageF& img = field();
    const float t = float(kThreshold);
    for (auto _ : state) {
        std::int64_t n = 0;
        for (int y = 0; y < kSize; ++y) {
            const float* r = img.row(y);
            for (int x = 0; x < kSize; ++x) n += r[x] >= t;
        }
        benchmark::DoNotOptimize(n);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(kSize) * kSize);
}
BENCHMARK(BM_BaselineThresholdCount)->Unit(benchmark::kMillisecond);

/// Baseline: the classic per-pixel flood fill with an explicit stack and a label image
/// (8-connectivity), returning the component count. No peaks.
void BM_BaselinePerPixelFloodFill(benchmark::State& state) {
    const ImageF& img = field();
    const float t = float(kThreshold);
    std::vector<std::int32_t> label(std::size_t(kSize) * kSize);
    std::vector<std::int32_t> stack;
    std::int64_t ncomp = 0;
    for (auto _ : state) {
        std::fill(label.begin(), label.end(), 0);
        ncomp = 0;
        for (int y = 0; y < kSize; ++y) {
            const float* r = img.row(y);
            for (int x = 0; x < kSize; ++x) {
                const std::size_t i = std::size_t(y) * kSize + x;
                if (r[x] < t || label[i]) continue;
                ++ncomp;
                label[i] = std::int32_t(ncomp);
                stack.assign(1, std::int32_t(i));
                while (!stack.empty()) {
                    const std::int32_t p = stack.back();
                    stack.pop_back();
                    const int px = p % kSize, py = p / kSize;
                    for (int dy = -1; dy <= 1; ++dy)
                        for (int dx = -1; dx <= 1; ++dx) {
                            const int qx = px + dx, qy = py + dy;
                            if (qx < 0 || qy < 0 || qx >= kSize || qy >= kSize) continue;
                            const std::size_t q = std::size_t(qy) * kSize + qx;
                            if (label[q] || img(qx, qy) < t) continue;
                            label[q] = std::int32_t(ncomp);
                            stack.push_back(std::int32_t(q));
                        }
                }
            }
        }
        benchmark::DoNotOptimize(ncomp);
    }
    state.SetItemsProcessed(state.iterations() * std::int64_t(kSize) * kSize);
    state.counters["components"] = double(ncomp);
}
BENCHMARK(BM_BaselinePerPixelFloodFill)->Unit(benchmark::kMillisecond);

const FootprintSet& detected() {
    static const FootprintSet fs = detectFootprints(field(), detectionConfig());
    return fs;
}

/// Grow every footprint by a circle of radius r and merge the ones that touch (afw's FootprintSet grow).
void BM_FootprintSetDilate(benchmark::State& state) {
    const FootprintSet& fs = detected();
    const int r = int(state.range(0));
    std::size_t n = 0;
    for (auto _ : state) {
        FootprintSet g = fs.dilated(r);
        n = g.size();
        benchmark::DoNotOptimize(g);
    }
    state.counters["footprints_in"] = double(fs.size());
    state.counters["footprints_out"] = double(n);
    state.SetItemsProcessed(state.iterations() * fs.totalArea());
}
BENCHMARK(BM_FootprintSetDilate)->Arg(2)->Arg(6)->Unit(benchmark::kMillisecond);

/// The union of all footprints dilated as one SpanSet (per-span Minkowski sum).
void BM_SpanSetDilate(benchmark::State& state) {
    const FootprintSet& fs = detected();
    std::vector<Span> all;
    for (const auto& f : fs.footprints()) all.insert(all.end(), f->spans().begin(), f->spans().end());
    const SpanSet ss(std::move(all));
    const SpanSet element = SpanSet::fromShape(int(state.range(0)), Stencil::CIRCLE);
    for (auto _ : state) {
        SpanSet d = ss.dilated(element);
        benchmark::DoNotOptimize(d);
    }
    state.counters["spans"] = double(ss.size());
    state.SetItemsProcessed(state.iterations() * ss.area());
}
BENCHMARK(BM_SpanSetDilate)->Arg(2)->Arg(6)->Unit(benchmark::kMillisecond);

/// Baseline: per-pixel dilation of the DETECTED mask (OR the circular stencil at every set pixel).
void BM_BaselinePerPixelMaskDilate(benchmark::State& state) {
    const FootprintSet& fs = detected();
    Mask mask(kSize, kSize);
    const MaskPixel bit = mask.planeBitMask("DETECTED");
    fs.setMask(mask, bit);
    const SpanSet element = SpanSet::fromShape(int(state.range(0)), Stencil::CIRCLE);
    std::vector<Point2I> offsets;
    element.forEachPixel([&](Point2I p) { offsets.push_back(p); });
    Mask out(kSize, kSize);
    for (auto _ : state) {
        out.fill(0);
        for (int y = 0; y < kSize; ++y) {
            const MaskPixel* r = mask.row(y);
            for (int x = 0; x < kSize; ++x) {
                if (!(r[x] & bit)) continue;
                for (const Point2I& o : offsets) {
                    const int qx = x + o.x, qy = y + o.y;
                    if (qx >= 0 && qy >= 0 && qx < kSize && qy < kSize) out(qx, qy) |= bit;
                }
            }
        }
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * fs.totalArea());
}
BENCHMARK(BM_BaselinePerPixelMaskDilate)->Arg(2)->Arg(6)->Unit(benchmark::kMillisecond);

}  // namespace
