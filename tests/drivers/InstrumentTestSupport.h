// Shared helpers of the instrument-model tests (tests/drivers/test_Instrument*.cpp).
#pragma once

#include <gtest/gtest.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include "core/Error.h"
#include "drivers/sim/InstrumentModel.h"

namespace drp::test::instrument {

/// A 3x3 grid of small detectors (256 x 200, 4 x 2 amplifiers of 64 x 100; upper row read from UR).
inline std::shared_ptr<const Camera> smallCamera() {
    static const auto camera = [] {
        CameraConfig c;
        c.detectorWidth = 256;
        c.detectorHeight = 200;
        c.ampsX = 4;
        c.ampsY = 2;
        c.prescan = 3;
        c.serialOverscan = 24;
        c.parallelOverscan = 8;
        c.detectorsX = 3;
        c.detectorsY = 3;
        return makeLsstLikeCamera(c);
    }();
    return camera;
}

/// The central detector (on the optical axis).
const Detector& centralDetector() { return smallCamera()->detector(4); }
/// Focal-plane radius used for vignetting: the corner of the 3x3 grid.
inline double focalRadius() {
    double r = 0;
    for (const auto& d : smallCamera()->detectors())
        for (const Point2D& p : d->focalPlaneCorners()) r = std::max(r, std::hypot(p.x, p.y));
    return r;
}

ImageF uniformImage(const Detector& d, double level) { return ImageF(d.bbox(), float(level)); }

/// Per-row mean of the serial overscan (the standard overscan estimate), raw rows.
inline std::vector<double> overscanRowMeans(const Image<std::int32_t>& raw, const Amplifier& a) {
    std::vector<double> out(std::size_t(raw.height()), 0.0);
    const Box2I& os = a.rawSerialOverscanBBox;
    for (int v = os.minY(); v <= os.maxY(); ++v) {
        double s = 0;
        for (int u = os.minX(); u <= os.maxX(); ++u) s += raw(u, v);
        out[std::size_t(v)] = s / os.width();
    }
    return out;
}

/// True bias (noise-free) of raw pixel (u, v) of amplifier i in this exposure.
inline double trueBias(const DetectorInstrument& inst, const SimulationRecord& rec, int i, int u, int v) {
    return inst.biasLevel(i) + rec.biasDriftAdu[std::size_t(i)] + rec.rowOffsetAdu[std::size_t(i)][std::size_t(v)] +
           inst.biasRowPattern(i)[std::size_t(v)] + inst.biasColumnPattern(i)[std::size_t(u)];
}

/// Pixels (assembled frame) touched by a cosmic ray, grown by one pixel.
inline std::set<std::pair<int, int>> cosmicRayPixels(const SimulationRecord& rec) {
    std::set<std::pair<int, int>> out;
    for (const auto& cr : rec.cosmicRays)
        for (const Span& s : cr.pixels.spans())
            for (int x = s.x0 - 1; x <= s.x1 + 1; ++x)
                for (int dy = -1; dy <= 1; ++dy) out.insert({x, s.y + dy});
    return out;
}

inline InstrumentConfig quietConfig() {
    InstrumentConfig c;
    c.cosmicRayRatePerCm2PerS = 0.0;
    c.crosstalkCoeff = 0.0;
    c.nonlinearityCoeff = 0.0;
    return c;
}

}  // namespace drp::test::instrument
