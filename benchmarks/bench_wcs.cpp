// Throughput of Wcs::pixelToSky / skyToPixel for TAN and TAN-SIP (order 4, ~20 px of distortion), the SIP
// inverse with and without AP/BP, beside a raw baseline (the bare gnomonic formulas with no SIP, written
// inline) and, when the binary is linked to wcslib (DRP_HAVE_WCSLIB), wcslib on the same points.
// Items/s are points per second; each iteration transforms 4096 points of a 4000x4000 image.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "core/Wcs.h"

#ifdef DRP_HAVE_WCSLIB
#include <wcslib/wcs.h>
#include <wcslib/wcshdr.h>
#endif

namespace {

using namespace drp;

constexpr int kPoints = 4096;

std::shared_ptr<const Wcs> makeWcs(int sipOrder, bool inverse) {
    auto tan = Wcs::makeTan({2000.3, 1999.7}, SpherePoint::fromDegrees(150.1, 2.2), 0.2 * arcseconds, 17.0 * degrees);
    if (sipOrder == 0) return tan;
    std::mt19937_64 rng(1);
    std::normal_distribution<double> g(0.0, 1.0);
    SipPolynomials sip;
    sip.order = sipOrder;
    sip.a = Eigen::MatrixXd::Zero(sipOrder + 1, sipOrder + 1);
    sip.b = Eigen::MatrixXd::Zero(sipOrder + 1, sipOrder + 1);
    for (int k = 2; k <= sipOrder; ++k)
        for (int p = 0; p <= k; ++p) {
            sip.a(p, k - p) = g(rng) * 10.0 / std::pow(2000.0, k);
            sip.b(p, k - p) = g(rng) * 10.0 / std::pow(2000.0, k);
        }
    auto w = std::make_shared<const Wcs>(tan->crpix(), tan->crval(), tan->cd(), sip);
    return inverse ? w->withInverseSip(Box2I({0, 0}, 4000, 4000), sipOrder + 1) : w;
}

std::vector<Point2D> pixels() {
    std::mt19937_64 rng(2);
    std::uniform_real_distribution<double> u(0.0, 4000.0);
    std::vector<Point2D> out(kPoints);
    for (auto& p : out) p = {u(rng), u(rng)};
    return out;
}

void pixelToSky(benchmark::State& state, int sipOrder) {
    auto wcs = makeWcs(sipOrder, false);
    auto pix = pixels();
    for (auto _ : state) {
        for (const auto& p : pix) benchmark::DoNotOptimize(wcs->pixelToSky(p));
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}

void skyToPixel(benchmark::State& state, int sipOrder, bool inverse) {
    auto wcs = makeWcs(sipOrder, inverse);
    auto sky = wcs->pixelToSky(pixels());
    for (auto _ : state) {
        for (const auto& s : sky) benchmark::DoNotOptimize(wcs->skyToPixel(s));
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}

BENCHMARK_CAPTURE(pixelToSky, Tan, 0);
BENCHMARK_CAPTURE(pixelToSky, TanSip4, 4);
BENCHMARK_CAPTURE(skyToPixel, Tan, 0, false);
BENCHMARK_CAPTURE(skyToPixel, TanSip4_Newton, 4, false);
BENCHMARK_CAPTURE(skyToPixel, TanSip4_ApBpThenNewton, 4, true);

void vectorPixelToSky(benchmark::State& state) {
    auto wcs = makeWcs(4, true);
    auto pix = pixels();
    for (auto _ : state) benchmark::DoNotOptimize(wcs->pixelToSky(pix));
    state.SetItemsProcessed(state.iterations() * kPoints);
}
BENCHMARK(vectorPixelToSky);

// Raw baseline: TAN pixel -> sky with the textbook spherical formulas (no classes, no SIP, no validation).
void rawTanPixelToSky(benchmark::State& state) {
    auto wcs = makeWcs(0, false);
    auto pix = pixels();
    const double d2r = std::numbers::pi / 180.0;
    const double ra0 = wcs->crval().ra().asRadians(), dec0 = wcs->crval().dec().asRadians();
    const double s0 = std::sin(dec0), c0 = std::cos(dec0);
    const Eigen::Matrix2d cd = wcs->cd() * d2r;
    const Point2D crpix = wcs->crpix();
    for (auto _ : state) {
        for (const auto& p : pix) {
            double u = p.x - crpix.x, v = p.y - crpix.y;
            double x = cd(0, 0) * u + cd(0, 1) * v, y = cd(1, 0) * u + cd(1, 1) * v;
            double den = c0 - y * s0;
            double ra = ra0 + std::atan2(x, den);
            double dec = std::atan2(s0 + y * c0, std::hypot(x, den));
            benchmark::DoNotOptimize(ra);
            benchmark::DoNotOptimize(dec);
        }
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}
BENCHMARK(rawTanPixelToSky);

#ifdef DRP_HAVE_WCSLIB
std::string fitsCards(const PropertyList& md) {
    std::string out;
    char card[200];
    for (const auto& e : md.entries()) {
        if (auto s = std::get_if<std::string>(&e.value)) {
            std::snprintf(card, sizeof card, "%-8.8s= '%-8s'", e.key.c_str(), s->c_str());
        } else if (auto i = std::get_if<std::int64_t>(&e.value)) {
            std::snprintf(card, sizeof card, "%-8.8s= %20lld", e.key.c_str(), (long long)*i);
        } else if (auto d = std::get_if<double>(&e.value)) {
            std::snprintf(card, sizeof card, "%-8.8s= %.17E", e.key.c_str(), *d);
        } else {
            std::snprintf(card, sizeof card, "%-8.8s= %20s", e.key.c_str(), std::get<bool>(e.value) ? "T" : "F");
        }
        std::string c(card);
        c.resize(80, ' ');
        out += c;
    }
    std::string end = "END";
    end.resize(80, ' ');
    return out + end;
}

struct WcslibHandle {
    wcsprm* wcs = nullptr;
    int nwcs = 0;
    explicit WcslibHandle(const Wcs& w) {
        std::string hdr = fitsCards(w.toFitsMetadata());
        int nreject = 0;
        wcspih(hdr.data(), int(hdr.size() / 80), WCSHDR_all, 0, &nreject, &nwcs, &wcs);
        wcsset(wcs);
    }
    ~WcslibHandle() { wcsvfree(&nwcs, &wcs); }
};

void wcslibPixelToSky(benchmark::State& state, int sipOrder) {
    auto w = makeWcs(sipOrder, false);
    WcslibHandle h(*w);
    auto pix = pixels();
    std::vector<double> in(2 * kPoints), img(2 * kPoints), phi(kPoints), theta(kPoints), world(2 * kPoints);
    std::vector<int> stat(kPoints);
    for (int i = 0; i < kPoints; ++i) in[2 * i] = pix[i].x + 1, in[2 * i + 1] = pix[i].y + 1;
    for (auto _ : state) {
        wcsp2s(h.wcs, kPoints, 2, in.data(), img.data(), phi.data(), theta.data(), world.data(), stat.data());
        benchmark::DoNotOptimize(world.data());
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}

void wcslibSkyToPixel(benchmark::State& state, int sipOrder, bool inverse) {
    auto w = makeWcs(sipOrder, inverse);
    WcslibHandle h(*w);
    auto sky = w->pixelToSky(pixels());
    std::vector<double> world(2 * kPoints), img(2 * kPoints), phi(kPoints), theta(kPoints), out(2 * kPoints);
    std::vector<int> stat(kPoints);
    for (int i = 0; i < kPoints; ++i) world[2 * i] = sky[i].ra().asDegrees(), world[2 * i + 1] = sky[i].dec().asDegrees();
    for (auto _ : state) {
        wcss2p(h.wcs, kPoints, 2, world.data(), phi.data(), theta.data(), img.data(), out.data(), stat.data());
        benchmark::DoNotOptimize(out.data());
    }
    state.SetItemsProcessed(state.iterations() * kPoints);
}

BENCHMARK_CAPTURE(wcslibPixelToSky, Tan, 0);
BENCHMARK_CAPTURE(wcslibPixelToSky, TanSip4, 4);
BENCHMARK_CAPTURE(wcslibSkyToPixel, Tan, 0, false);
BENCHMARK_CAPTURE(wcslibSkyToPixel, TanSip4, 4, false);
BENCHMARK_CAPTURE(wcslibSkyToPixel, TanSip4_ApBp, 4, true);
#endif

}  // namespace
