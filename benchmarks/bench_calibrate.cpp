// Single-detector calibration (stages/calibrate): fitAstrometry on a full-size LSSTCam-like corner detector
// with the simulator's true distorted WCS, 2000 sources (30% of them spurious) and 1000 reference stars, the
// header WCS off by 60 arcsec and 1 deg (also with bright spurious sources crowding the pattern lists); its two parts (pattern matching, the TAN-SIP fit loop) apart; the
// TAN-SIP least-squares fit of 1000 matches beside a raw baseline (one Eigen QR solve of the same design,
// no CRVAL iteration); fitZeroPoint on 500 stars.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "core/Camera.h"
#include "drivers/sim/ObservingPlan.h"
#include "stages/calibrate/Astrometry.h"
#include "stages/calibrate/PatternMatcher.h"
#include "stages/calibrate/Photometry.h"
#include "stages/calibrate/TanSipFitter.h"
#include "stages/calibrate/TangentPlane.h"

#include <Eigen/Dense>

namespace {

using namespace drp;

struct Field {
    std::vector<AstrometrySource> sources;
    std::vector<AstrometryRef> refs;
    std::shared_ptr<const Wcs> truth, header;
    Box2I bbox;
};

/// brightSpurious: the 600 spurious sources are uniform in 16 < mag < 23 (most of the 60 brightest sources are
/// spurious, so the pattern search needs its second or third attempt); otherwise they follow the magnitudes of
/// the detected stars.
Field makeField(bool brightSpurious) {
    Field out;
    const auto camera = makeLsstLikeCamera();
    const Detector& det = camera->detector(0);  // a corner: the strongest distortion
    VisitPlan v;
    v.boresight = SpherePoint::fromDegrees(55.0, -30.0);
    v.rotation = 20.0 * degrees;
    v.commandedBoresight = v.boresight.offset(70.0 * degrees, 60.0 * arcseconds);
    v.commandedRotation = v.rotation + 1.0 * degrees;
    const ObservingConfig cfg;
    out.bbox = det.bbox();
    out.truth = trueWcs(v, *camera, det, cfg);
    out.header = headerWcs(v, *camera, det, cfg);
    std::mt19937_64 rng(42);
    std::uniform_real_distribution<double> u01(0, 1);
    std::normal_distribution<double> g(0, 1);
    const Box2D area(out.bbox);
    const Box2D grown(Point2D{area.minX() - 600, area.minY() - 600}, Point2D{area.maxX() + 600, area.maxY() + 600});
    // 1000 reference stars over the detector grown by 600 px (~ the searched area), r < 21; 1400 of the
    // stars on the detector detected (incl. fainter ones) + 600 spurious sources.
    while (out.refs.size() < 1000) {
        const Point2D p{grown.minX() + u01(rng) * grown.width(), grown.minY() + u01(rng) * grown.height()};
        const double mag = 16 + 5 * std::pow(u01(rng), 0.3);
        out.refs.push_back({out.truth->pixelToSky(p), 1.0, mag});
        if (area.contains(p) && u01(rng) < 0.7) {
            out.sources.push_back({{p.x + 0.02 * g(rng), p.y + 0.02 * g(rng)}, 0.02, 0.02,
                                   std::pow(10.0, -0.4 * (mag + 0.1 * g(rng) - 30))});
        }
    }
    while (out.sources.size() < 1400) {  // fainter stars, not in the reference catalog
        const Point2D p{area.minX() + u01(rng) * area.width(), area.minY() + u01(rng) * area.height()};
        out.sources.push_back({{p.x + 0.05 * g(rng), p.y + 0.05 * g(rng)}, 0.05, 0.05,
                               std::pow(10.0, -0.4 * (21 + 2 * u01(rng) - 30))});
    }
    const std::size_t nReal = out.sources.size();
    while (out.sources.size() < 2000) {  // spurious
        const Point2D p{area.minX() + u01(rng) * area.width(), area.minY() + u01(rng) * area.height()};
        const double flux = brightSpurious ? std::pow(10.0, -0.4 * (16 + 7 * u01(rng) - 30))
                                           : out.sources[std::size_t(u01(rng) * double(nReal)) % nReal].flux;
        out.sources.push_back({p, 0.1, 0.1, flux});
    }
    return out;
}

const Field& field() {
    static const Field f = makeField(false);
    return f;
}

const Field& brightSpuriousField() {
    static const Field f = makeField(true);
    return f;
}

void BM_fitAstrometry(benchmark::State& state, bool brightSpurious) {
    const Field& f = brightSpurious ? brightSpuriousField() : field();
    AstrometryConfig cfg;
    AstrometryResult r;
    for (auto _ : state) {
        r = fitAstrometry(f.sources, f.refs, *f.header, f.bbox, cfg);
        benchmark::DoNotOptimize(r.wcs);
    }
    state.counters["matches"] = r.nMatches;
    state.counters["rms_mas"] = r.rmsResidualMas;
    state.SetItemsProcessed(state.iterations() * std::int64_t(f.sources.size()));
}
BENCHMARK_CAPTURE(BM_fitAstrometry, realistic, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_fitAstrometry, bright_spurious, true)->Unit(benchmark::kMillisecond);

void BM_matchPatterns(benchmark::State& state) {
    // The pattern-matching step alone, on the same tangent-plane inputs fitAstrometry builds.
    const Field& f = field();
    const Point2D c{2035.5, 1999.5};
    const TangentPlane tp(f.header->pixelToSky(c));
    std::vector<std::pair<double, Eigen::Vector2d>> s, r;
    for (const auto& src : f.sources) s.emplace_back(-src.flux, tp.projectArcsec(f.header->pixelToSky(src.position)));
    for (const auto& ref : f.refs) r.emplace_back(ref.mag, tp.projectArcsec(ref.position));
    auto byKey = [](const auto& a, const auto& b) { return a.first < b.first; };
    std::sort(s.begin(), s.end(), byKey);
    std::sort(r.begin(), r.end(), byKey);
    std::vector<Eigen::Vector2d> sp, rp;
    for (auto& x : s) sp.push_back(x.second);
    for (auto& x : r) rp.push_back(x.second);
    const PatternMatchConfig cfg = AstrometryConfig{}.patternConfig();
    for (auto _ : state) benchmark::DoNotOptimize(matchPatterns(sp, rp, cfg));
}
BENCHMARK(BM_matchPatterns)->Unit(benchmark::kMillisecond);

struct FitInput {
    std::vector<Point2D> pix;
    std::vector<SpherePoint> sky;
    std::vector<double> w;
};

const FitInput& fitInput() {
    static const FitInput in = [] {
        const Field& f = field();
        FitInput out;
        std::mt19937_64 rng(3);
        std::uniform_real_distribution<double> ux(0, 4071), uy(0, 3999);
        for (int i = 0; i < 1000; ++i) {
            out.pix.push_back({ux(rng), uy(rng)});
            out.sky.push_back(f.truth->pixelToSky(out.pix.back()));
            out.w.push_back(1.0);
        }
        return out;
    }();
    return in;
}

void BM_fitTanSip_order3_1000(benchmark::State& state) {
    const FitInput& in = fitInput();
    const Point2D crpix{2035.5, 1999.5};
    const SpherePoint guess = field().header->pixelToSky(crpix);
    for (auto _ : state) benchmark::DoNotOptimize(fitTanSip(in.pix, in.sky, in.w, crpix, guess, 3));
}
BENCHMARK(BM_fitTanSip_order3_1000)->Unit(benchmark::kMicrosecond);

void BM_rawQrSolve_order3_1000(benchmark::State& state) {
    // Baseline: one projection about a fixed point and one QR solve of the same 1000 x 10 design.
    const FitInput& in = fitInput();
    const Point2D crpix{2035.5, 1999.5};
    const TangentPlane tp(field().truth->pixelToSky(crpix));
    for (auto _ : state) {
        Eigen::MatrixXd a(1000, 10), b(1000, 2);
        for (int i = 0; i < 1000; ++i) {
            const double u = (in.pix[std::size_t(i)].x - crpix.x) / 2036, v = (in.pix[std::size_t(i)].y - crpix.y) / 2036;
            int k = 0;
            for (int d = 0; d <= 3; ++d)
                for (int q = 0; q <= d; ++q) a(i, k++) = std::pow(u, d - q) * std::pow(v, q);
            b.row(i) = tp.projectDegrees(in.sky[std::size_t(i)]).transpose();
        }
        Eigen::MatrixXd x = a.colPivHouseholderQr().solve(b);
        benchmark::DoNotOptimize(x.data());
    }
}
BENCHMARK(BM_rawQrSolve_order3_1000)->Unit(benchmark::kMicrosecond);

void BM_fitZeroPoint_500(benchmark::State& state) {
    std::mt19937_64 rng(9);
    std::uniform_real_distribution<double> u01(0, 1);
    std::normal_distribution<double> g(0, 1);
    std::vector<PhotometryMatch> m;
    for (int i = 0; i < 500; ++i) {
        const double mag = 16 + 6 * u01(rng);
        const double ref = std::pow(10.0, -0.4 * (mag - 31.4)), e = std::pow(10.0, -0.4 * (mag - 28.3));
        const double err = std::sqrt(e + 3000);
        m.push_back({e + err * g(rng), err, ref * (1 + 0.003 * g(rng)), 0.003 * ref, 0.5});
    }
    const PhotometryConfig cfg;
    for (auto _ : state) benchmark::DoNotOptimize(fitZeroPoint(m, "r", cfg));
}
BENCHMARK(BM_fitZeroPoint_500)->Unit(benchmark::kMicrosecond);

}  // namespace
