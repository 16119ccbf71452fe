// Helpers shared by the ISR tests (test_Isr*.cpp): small simulated cameras, truth calibrations from the
// simulator's DetectorInstrument, and residual statistics against truth.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/Camera.h"
#include "core/Exposure.h"
#include "core/Statistics.h"
#include "drivers/sim/InstrumentModel.h"
#include "stages/isr/Isr.h"
#include "stages/isr/IsrCalibrations.h"

namespace drp::isrtest {

/// One 512 x 400 detector with 4 x 2 amplifiers (the `tiny` preset geometry), on the optical axis.
inline std::shared_ptr<const Camera> tinyCamera(std::uint64_t seed = 1) {
    CameraConfig c;
    c.detectorWidth = 512;
    c.detectorHeight = 400;
    c.ampsX = 4;
    c.ampsY = 2;
    c.prescan = 3;
    c.serialOverscan = 16;
    c.parallelOverscan = 8;
    c.detectorsX = 1;
    c.detectorsY = 1;
    c.seed = seed;
    return makeLsstLikeCamera(c);
}

inline double focalRadius(const Detector& d) {
    double r = 0;
    for (const Point2D& p : d.focalPlaneCorners()) r = std::max(r, std::hypot(p.x, p.y));
    return 3.0 * r;  // a detector near the centre of a larger focal plane
}

/// Per-amplifier characterisation from the simulator's truth.
inline std::vector<AmplifierCalib> truthAmplifiers(const DetectorInstrument& inst) {
    std::vector<AmplifierCalib> out;
    for (int i = 0; i < int(inst.detector().amplifiers().size()); ++i)
        out.push_back({inst.gain(i), inst.readNoise(i), inst.nonlinearity(i), inst.saturationAdu(i)});
    return out;
}

/// The noiseless master bias (e-) that the overscan convention of `config` implies: the fixed bias minus
/// its mean over the overscan columns used, times the gain, assembled.
inline ImageF truthBias(const DetectorInstrument& inst, const IsrConfig& config) {
    const Detector& det = inst.detector();
    ImageF out(det.bbox(), 0.0f);
    for (int i = 0; i < int(det.amplifiers().size()); ++i) {
        const Amplifier& a = det.amplifiers()[std::size_t(i)];
        const ImageF fb = inst.fixedBias(i);
        const int u0 = a.rawSerialOverscanBBox.minX() + config.overscanSkipLeading;
        const int u1 = a.rawSerialOverscanBBox.maxX() - config.overscanSkipTrailing;
        ImageF e(a.rawBBox, 0.0f);
        for (int v = 0; v < fb.height(); ++v) {
            double s = 0;
            for (int u = u0; u <= u1; ++u) s += fb(u, v);
            const double level = s / (u1 - u0 + 1);
            for (int u = 0; u < fb.width(); ++u) e(u, v) = float((fb(u, v) - level) * inst.gain(i));
        }
        assembleAmplifier(a, e, out);
    }
    return out;
}

/// Truth flat of a band normalised to median 1 (the master-flat convention); `median` receives the factor.
inline ImageF truthFlat(const DetectorInstrument& inst, const std::string& band, double* median = nullptr) {
    ImageF f = inst.flat(band);
    StatisticsControl sc;
    sc.properties = kStatMedian;
    const double m = makeStatistics(f, sc).median;
    f *= float(1.0 / m);
    if (median) *median = m;
    return f;
}

/// Noiseless truth calibrations (variance planes zero), kept alive by the holder.
struct TruthCalibs {
    Exposure bias, dark, flat;
    IsrCalibrations calibs;
    double flatMedian = 1.0;  ///< median of the un-normalised true flat
    TruthCalibs(const DetectorInstrument& inst, const std::string& band, const IsrConfig& config)
        : bias(inst.detector().bbox()), dark(inst.detector().bbox()), flat(inst.detector().bbox()) {
        bias.image().assign(truthBias(inst, config));
        dark.image().assign(inst.darkRate());
        flat.image().assign(truthFlat(inst, band, &flatMedian));
        calibs.bias = &bias;
        calibs.dark = &dark;
        calibs.flat = &flat;
        calibs.defects = inst.defects();
        for (const Point2I& p : inst.hotPixels()) calibs.defects.push_back(Box2I(p, 1, 1));
        calibs.crosstalk = inst.crosstalk();
        calibs.amplifiers = truthAmplifiers(inst);
    }
    TruthCalibs(const TruthCalibs&) = delete;
    TruthCalibs& operator=(const TruthCalibs&) = delete;
};

/// Calibration exposures of one kind (seeds base, base+1, ...).
inline std::vector<RawExposure> simulateCalibs(const DetectorInstrument& inst, ExposureKind kind, int n,
                                               std::uint64_t seedBase, const std::string& band = "r") {
    const ImageF incident = makeCalibrationIncident(inst.detector(), kind, band, inst.config());
    const CalibrationTiming t = calibrationTiming(kind, inst.config());
    std::vector<RawExposure> out;
    for (int k = 0; k < n; ++k)
        out.push_back(inst.simulate(incident, t.exposureTimeS, t.darkTimeS, band, kind, seedBase + std::uint64_t(k)));
    return out;
}

/// Residual statistics of (image - truth) / sqrt(variance) over pixels without `badBits`.
/// Note: with a variance computed from the measured signal, E[chi] = -1 / (2 sqrt(variance)) (a positive
/// residual comes with a larger variance); the mean residual itself is unbiased.
struct ChiStats {
    std::int64_t n = 0;
    double mean = 0, chi2 = 0;       ///< mean chi and mean chi^2
    double noiseRatio = 0;           ///< sum residual^2 / sum variance (measured / predicted noise power)
    double meanResidual = 0;         ///< mean residual (image units)
    double meanVariance = 0;         ///< mean variance
    std::int64_t outliers = 0;       ///< |chi| > clip (excluded from the sums)
};
inline ChiStats chiStats(const MaskedImageF& mi, const ImageF& truth, MaskPixel badBits, double clip = 1e30) {
    ChiStats s;
    double sr2 = 0, sv = 0;
    for (int y = 0; y < mi.height(); ++y)
        for (int x = 0; x < mi.width(); ++x) {
            if (mi.mask()(x, y) & badBits) continue;
            const double r = double(mi.image()(x, y)) - double(truth(x, y)), v = mi.variance()(x, y);
            if (!(v > 0)) continue;
            const double chi = r / std::sqrt(v);
            if (std::fabs(chi) > clip) {
                ++s.outliers;
                continue;
            }
            ++s.n;
            s.mean += chi;
            s.chi2 += chi * chi;
            sr2 += r * r;
            sv += v;
            s.meanResidual += r;
        }
    if (s.n > 0) {
        s.mean /= double(s.n);
        s.chi2 /= double(s.n);
        s.noiseRatio = sr2 / sv;
        s.meanResidual /= double(s.n);
        s.meanVariance = sv / double(s.n);
    }
    return s;
}

}  // namespace drp::isrtest
