#include "drivers/sim/InstrumentModel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <numbers>
#include <random>
#include <set>
#include <sstream>

#include "core/Error.h"

namespace drp {

// ---------------------------------------------------------------------------------------------
// Random numbers: one small xoshiro256++ stream per (seed, detector, exposure, purpose, index...).

namespace {

std::uint64_t mix64(std::uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/// What a stream is for; the values are part of the model (changing them changes every simulation).
enum Purpose : std::uint64_t {
    kBiasLevel = 1,
    kRowPattern,
    kColumnPattern,
    kNonlinearity,
    kCrosstalk,
    kAmpGradient,
    kHotPixels,
    kBadColumns,
    kPixelResponse,
    kBandPixelResponse,
    kBandGradient,
    kSignal = 101,
    kCosmicRays,
    kBiasDrift,
    kReadout,
};

/// xoshiro256++ (Blackman & Vigna), seeded by hashing a list of keys. Satisfies UniformRandomBitGenerator.
class Rng {
public:
    using result_type = std::uint64_t;
    Rng(std::initializer_list<std::uint64_t> keys) {
        std::uint64_t h = 0x243f6a8885a308d3ULL;
        for (std::uint64_t k : keys) h = mix64(h ^ mix64(k));
        for (auto& s : s_) {
            h = mix64(h);
            s = h;
        }
    }
    static constexpr result_type min() { return 0; }
    static constexpr result_type max() { return std::numeric_limits<result_type>::max(); }
    result_type operator()() {
        const std::uint64_t result = rotl(s_[0] + s_[3], 23) + s_[0];
        const std::uint64_t t = s_[1] << 17;
        s_[2] ^= s_[0];
        s_[3] ^= s_[1];
        s_[1] ^= s_[2];
        s_[0] ^= s_[3];
        s_[2] ^= t;
        s_[3] = rotl(s_[3], 45);
        return result;
    }
    /// Uniform in [0, 1).
    double uniform() { return double((*this)() >> 11) * 0x1.0p-53; }
    /// Uniform in [-1, 1).
    double uniformPm1() { return 2.0 * uniform() - 1.0; }
    /// Standard normal (Marsaglia polar method).
    double normal() {
        if (haveSpare_) {
            haveSpare_ = false;
            return spare_;
        }
        double u, v, s;
        do {
            u = uniformPm1();
            v = uniformPm1();
            s = u * u + v * v;
        } while (s >= 1.0 || s == 0.0);
        const double f = std::sqrt(-2.0 * std::log(s) / s);
        spare_ = v * f;
        haveSpare_ = true;
        return u * f;
    }
    /// Poisson deviate of mean `lambda`: exact (multiplication method) below `threshold`, a rounded
    /// Gaussian N(lambda, lambda) (clipped at 0) at and above it.
    double poisson(double lambda, double threshold) {
        if (!(lambda > 0)) return 0.0;
        if (lambda >= threshold) {
            const double v = std::floor(lambda + std::sqrt(lambda) * normal() + 0.5);
            return v < 0 ? 0.0 : v;
        }
        const double limit = std::exp(-lambda);
        double p = uniform();
        int k = 0;
        while (p > limit) {
            p *= uniform();
            ++k;
        }
        return double(k);
    }

private:
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t s_[4];
    double spare_ = 0.0;
    bool haveSpare_ = false;
};

/// FNV-1a of a band name: a stable key for per-band streams.
std::uint64_t bandKey(const std::string& band) {
    std::uint64_t h = 0xcbf29ce484222325ULL;
    for (unsigned char c : band) h = (h ^ c) * 0x100000001b3ULL;
    return h;
}

std::uint64_t key(int i) { return std::uint64_t(std::int64_t(i)); }

}  // namespace

// ---------------------------------------------------------------------------------------------
// Config

void InstrumentConfig::validate() const {
    auto check = [](bool ok, const char* what) {
        if (!ok) throw ConfigError(std::string("InstrumentConfig: ") + what);
    };
    check(biasLevelAdu > 0 && biasLevelAdu <= 30000, "biasLevelAdu must be in (0, 30000]");
    check(biasLevelSpreadAdu >= 0 && biasLevelSpreadAdu < biasLevelAdu, "biasLevelSpreadAdu must be in [0, biasLevelAdu)");
    check(biasDriftAdu >= 0 && biasDriftAdu < 1000, "biasDriftAdu must be in [0, 1000)");
    check(biasRowNoiseAdu >= 0 && biasRowNoiseAdu < 1000, "biasRowNoiseAdu must be in [0, 1000)");
    check(biasRowPatternAdu >= 0 && biasRowPatternAdu < 1000, "biasRowPatternAdu must be in [0, 1000)");
    check(biasColumnPatternAdu >= 0 && biasColumnPatternAdu < 1000, "biasColumnPatternAdu must be in [0, 1000)");
    check(darkCurrentEPerS >= 0 && std::isfinite(darkCurrentEPerS), "darkCurrentEPerS must be finite and >= 0");
    check(hotPixelFraction >= 0 && hotPixelFraction <= 0.1, "hotPixelFraction must be in [0, 0.1]");
    check(hotPixelMinFactor >= 1 && std::isfinite(hotPixelMinFactor), "hotPixelMinFactor must be >= 1");
    check(hotPixelMaxFactor >= hotPixelMinFactor && std::isfinite(hotPixelMaxFactor),
          "hotPixelMaxFactor must be >= hotPixelMinFactor");
    check(badColumnsPerDetector >= 0, "badColumnsPerDetector must be >= 0");
    check(badColumnDeadFraction >= 0 && badColumnDeadFraction <= 1, "badColumnDeadFraction must be in [0, 1]");
    check(vignettingAmplitude >= 0 && vignettingAmplitude < 1, "vignettingAmplitude must be in [0, 1)");
    check(pixelResponseSigma >= 0 && pixelResponseSigma <= 0.2, "pixelResponseSigma must be in [0, 0.2]");
    check(ampPatternAmplitude >= 0 && ampPatternAmplitude < 0.5, "ampPatternAmplitude must be in [0, 0.5)");
    check(bandGradientAmplitude >= 0 && bandGradientAmplitude < 0.5, "bandGradientAmplitude must be in [0, 0.5)");
    check(bandPixelResponseFraction >= 0 && bandPixelResponseFraction <= 1, "bandPixelResponseFraction must be in [0, 1]");
    check(fullWellElectrons > 0 && std::isfinite(fullWellElectrons) && fullWellElectrons < 1e7,
          "fullWellElectrons must be in (0, 1e7)");
    check(std::isfinite(nonlinearityCoeff) && std::fabs(nonlinearityCoeff) * fullWellElectrons <= 0.25,
          "|nonlinearityCoeff| x fullWellElectrons must be <= 0.25");
    check(nonlinearitySpread >= 0 && nonlinearitySpread < 1, "nonlinearitySpread must be in [0, 1)");
    check(crosstalkCoeff >= 0 && crosstalkCoeff <= 0.01, "crosstalkCoeff must be in [0, 0.01]");
    check(crosstalkFalloff >= 0 && crosstalkFalloff <= 1, "crosstalkFalloff must be in [0, 1]");
    check(crosstalkSpread >= 0 && crosstalkSpread < 1, "crosstalkSpread must be in [0, 1)");
    check(cosmicRayRatePerCm2PerS >= 0 && cosmicRayRatePerCm2PerS < 1e4, "cosmicRayRatePerCm2PerS must be in [0, 1e4)");
    check(cosmicRayMinLengthPx >= 1, "cosmicRayMinLengthPx must be >= 1");
    check(cosmicRayMaxLengthPx >= cosmicRayMinLengthPx && cosmicRayMaxLengthPx <= 10000,
          "cosmicRayMaxLengthPx must be in [cosmicRayMinLengthPx, 10000]");
    check(cosmicRayMinElectrons > 0 && std::isfinite(cosmicRayMinElectrons), "cosmicRayMinElectrons must be > 0");
    check(cosmicRayMaxElectrons >= cosmicRayMinElectrons && std::isfinite(cosmicRayMaxElectrons),
          "cosmicRayMaxElectrons must be >= cosmicRayMinElectrons");
    check(cosmicRayDiffusion >= 0 && cosmicRayDiffusion <= 0.8, "cosmicRayDiffusion must be in [0, 0.8]");
    check(flatIlluminationElectrons > 0 && std::isfinite(flatIlluminationElectrons), "flatIlluminationElectrons must be > 0");
    for (const auto& [band, level] : flatIlluminationByBand) {
        if (!(level > 0 && std::isfinite(level)))
            throw ConfigError("InstrumentConfig: flatIlluminationByBand[" + band + "] must be > 0");
    }
    check(darkExposureTimeS > 0 && std::isfinite(darkExposureTimeS), "darkExposureTimeS must be > 0");
    check(flatExposureTimeS > 0 && std::isfinite(flatExposureTimeS), "flatExposureTimeS must be > 0");
    check(poissonGaussianThreshold >= 10 && poissonGaussianThreshold <= 1000, "poissonGaussianThreshold must be in [10, 1000]");
}

std::string exposureKindName(ExposureKind kind) {
    switch (kind) {
        case ExposureKind::Science: return "science";
        case ExposureKind::Bias: return "bias";
        case ExposureKind::Dark: return "dark";
        case ExposureKind::Flat: return "flat";
    }
    return "unknown";
}

std::string exposureKindImgType(ExposureKind kind) {
    switch (kind) {
        case ExposureKind::Science: return "OBJECT";
        case ExposureKind::Bias: return "BIAS";
        case ExposureKind::Dark: return "DARK";
        case ExposureKind::Flat: return "FLAT";
    }
    return "UNKNOWN";
}

// ---------------------------------------------------------------------------------------------
// Kernels

double invertNonlinearity(double measured, double coeff) {
    if (coeff == 0.0) return measured;
    const double disc = 1.0 + 4.0 * coeff * measured;
    if (disc <= 0.0) return -0.5 / coeff;  // beyond the turnover: the largest x on the monotonic branch
    return 2.0 * measured / (1.0 + std::sqrt(disc));
}

std::vector<Box2I> bleedSaturatedCharge(const ImageF& electrons, double fullWell, double* lostElectrons) {
    const int w = electrons.width(), h = electrons.height();
    const float well = float(fullWell);
    std::vector<char> columnHit(std::size_t(std::max(w, 0)), 0);
    for (int y = 0; y < h; ++y) {
        const float* row = electrons.row(y);
        for (int x = 0; x < w; ++x)
            if (row[x] > well) columnHit[std::size_t(x)] = 1;
    }
    std::vector<Box2I> runs;
    std::vector<double> excess(std::size_t(std::max(h, 0)));
    double lost = 0.0;
    const Point2I xy0 = electrons.xy0();
    for (int x = 0; x < w; ++x) {
        if (!columnHit[std::size_t(x)]) continue;
        for (int y = 0; y < h; ++y) {
            float& v = electrons(x, y);
            excess[std::size_t(y)] = v > well ? double(v) - double(well) : 0.0;
            if (v > well) v = well;
        }
        // Half of each excess flows up the column, half down; each fills the nearest pixels with room.
        for (int pass = 0; pass < 2; ++pass) {
            double carry = 0.0;
            for (int k = 0; k < h; ++k) {
                const int y = pass == 0 ? k : h - 1 - k;
                carry += 0.5 * excess[std::size_t(y)];
                if (carry <= 0.0) continue;
                float& v = electrons(x, y);
                const double room = double(well) - double(v);
                if (room <= 0.0) continue;
                if (carry >= room) {
                    v = well;
                    carry -= room;
                } else {
                    v = float(double(v) + carry);
                    carry = 0.0;
                }
            }
            lost += carry;
        }
        for (int y = 0; y < h;) {
            if (electrons(x, y) < well) {
                ++y;
                continue;
            }
            int y1 = y;
            while (y1 + 1 < h && electrons(x, y1 + 1) >= well) ++y1;
            runs.push_back(Box2I({x + xy0.x, y + xy0.y}, 1, y1 - y + 1));
            y = y1 + 1;
        }
    }
    if (lostElectrons) *lostElectrons += lost;
    return runs;
}

// ---------------------------------------------------------------------------------------------
// DetectorInstrument: fixed truth

struct DetectorInstrument::FlatCache {
    static constexpr std::size_t kCapacity = 2;  // bands kept (a full LSSTCam flat is 65 MB)
    std::mutex mutex;
    std::vector<std::pair<std::string, std::shared_ptr<const ImageF>>> flats;  // most recently used first
};

DetectorInstrument::DetectorInstrument(const Detector& detector, const InstrumentConfig& config,
                                       double focalPlaneRadiusMm)
    : detector_(detector), config_(config), focalPlaneRadiusMm_(focalPlaneRadiusMm),
      flatCache_(std::make_shared<FlatCache>()) {
    config_.validate();
    const auto& amps = detector_.amplifiers();
    if (amps.empty()) throw ConfigError("DetectorInstrument: detector " + detector_.name() + " has no amplifiers");
    const std::uint64_t seed = config_.seed, det = key(detector_.id());
    const int nAmp = int(amps.size());

    // Per-amplifier electronics.
    biasLevel_.resize(amps.size());
    nonlinearity_.resize(amps.size());
    ampGradX_.resize(amps.size());
    ampGradY_.resize(amps.size());
    rowPattern_.resize(amps.size());
    columnPattern_.resize(amps.size());
    for (int i = 0; i < nAmp; ++i) {
        const Amplifier& a = amps[std::size_t(i)];
        Rng levelRng({seed, det, 0, kBiasLevel, key(i)});
        biasLevel_[std::size_t(i)] = config_.biasLevelAdu + config_.biasLevelSpreadAdu * levelRng.uniformPm1();
        Rng nlRng({seed, det, 0, kNonlinearity, key(i)});
        nonlinearity_[std::size_t(i)] = config_.nonlinearityCoeff * (1.0 + config_.nonlinearitySpread * nlRng.uniformPm1());
        Rng gradRng({seed, det, 0, kAmpGradient, key(i)});
        ampGradX_[std::size_t(i)] = gradRng.uniformPm1();
        ampGradY_[std::size_t(i)] = gradRng.uniformPm1();
        Rng rowRng({seed, det, 0, kRowPattern, key(i)});
        auto& rows = rowPattern_[std::size_t(i)];
        rows.resize(std::size_t(a.rawBBox.height()));
        for (auto& r : rows) r = float(config_.biasRowPatternAdu * rowRng.normal());
        Rng colRng({seed, det, 0, kColumnPattern, key(i)});
        auto& cols = columnPattern_[std::size_t(i)];
        cols.assign(std::size_t(a.rawBBox.width()), 0.0f);
        for (int u = a.rawDataBBox.minX(); u <= a.rawDataBBox.maxX(); ++u)
            cols[std::size_t(u - a.rawBBox.minX())] = float(config_.biasColumnPatternAdu * colRng.normal());
    }

    // Crosstalk: falls off with separation in the amplifier grid (a step between amplifier rows counts 2).
    crosstalk_ = Eigen::MatrixXd::Zero(nAmp, nAmp);
    for (int v = 0; v < nAmp; ++v) {
        for (int s = 0; s < nAmp; ++s) {
            if (v == s) continue;
            const Box2I& a = amps[std::size_t(v)].bbox;
            const Box2I& b = amps[std::size_t(s)].bbox;
            const double dxc = std::fabs(0.5 * (a.minX() + a.maxX()) - 0.5 * (b.minX() + b.maxX()));
            const double dyc = std::fabs(0.5 * (a.minY() + a.maxY()) - 0.5 * (b.minY() + b.maxY()));
            const int steps = int(std::lround(dxc / a.width())) + 2 * int(std::lround(dyc / a.height()));
            Rng rng({seed, det, 0, kCrosstalk, key(v), key(s)});
            const double nominal = config_.crosstalkCoeff * std::pow(config_.crosstalkFalloff, std::max(steps, 1) - 1);
            const double spread = 1.0 + config_.crosstalkSpread * rng.uniformPm1();
            crosstalk_(v, s) = nominal < 0.999e-3 * config_.crosstalkCoeff ? 0.0 : nominal * spread;
        }
    }

    // Dark current with hot pixels.
    const Box2I bbox = detector_.bbox();
    darkRate_ = ImageF(bbox, float(config_.darkCurrentEPerS));
    {
        Rng rng({seed, det, 0, kHotPixels, 0});
        const double expected = config_.hotPixelFraction * double(bbox.area());
        const long n = expected > 0 ? std::poisson_distribution<long>(expected)(rng) : 0;
        std::set<std::pair<int, int>> seen;
        for (long k = 0; k < n; ++k) {
            const int x = std::min(int(rng.uniform() * bbox.width()), bbox.width() - 1);
            const int y = std::min(int(rng.uniform() * bbox.height()), bbox.height() - 1);
            const double factor =
                config_.hotPixelMinFactor * std::pow(config_.hotPixelMaxFactor / config_.hotPixelMinFactor, rng.uniform());
            if (!seen.insert({y, x}).second) continue;
            darkRate_(x, y) = float(config_.darkCurrentEPerS * factor);
        }
        for (const auto& [y, x] : seen) hotPixels_.push_back({x + bbox.minX(), y + bbox.minY()});
    }

    // Bad columns: a whole column, or from a random row to the top or bottom edge.
    {
        Rng rng({seed, det, 0, kBadColumns, 0});
        std::set<int> used;
        const int n = std::min(config_.badColumnsPerDetector, bbox.width());
        while (int(used.size()) < n) {
            const int x = std::min(int(rng.uniform() * bbox.width()), bbox.width() - 1);
            const double extent = rng.uniform();
            const int y0 = std::min(int(rng.uniform() * bbox.height()), bbox.height() - 1);
            const bool dead = rng.uniform() < config_.badColumnDeadFraction;
            const double low = 0.1 + 0.5 * rng.uniform();
            if (!used.insert(x).second) continue;
            Box2I box;
            if (extent < 0.5) {
                box = Box2I({bbox.minX() + x, bbox.minY()}, 1, bbox.height());
            } else if (extent < 0.75) {
                box = Box2I({bbox.minX() + x, bbox.minY() + y0}, 1, bbox.height() - y0);
            } else {
                box = Box2I({bbox.minX() + x, bbox.minY()}, 1, y0 + 1);
            }
            defects_.push_back(box);
            defectResponse_.push_back(dead ? 0.0f : float(low));
        }
    }
}

double DetectorInstrument::biasLevel(int amp) const { return biasLevel_.at(std::size_t(amp)); }
double DetectorInstrument::gain(int amp) const { return detector_.amplifiers().at(std::size_t(amp)).gain; }
double DetectorInstrument::readNoise(int amp) const { return detector_.amplifiers().at(std::size_t(amp)).readNoise; }
double DetectorInstrument::nonlinearity(int amp) const { return nonlinearity_.at(std::size_t(amp)); }
const std::vector<float>& DetectorInstrument::biasRowPattern(int amp) const { return rowPattern_.at(std::size_t(amp)); }
const std::vector<float>& DetectorInstrument::biasColumnPattern(int amp) const {
    return columnPattern_.at(std::size_t(amp));
}

double DetectorInstrument::saturationAdu(int amp) const {
    const double full = biasLevel(amp) + applyNonlinearity(config_.fullWellElectrons, nonlinearity(amp)) / gain(amp);
    const double rn = readNoise(amp) / gain(amp);
    const double sigma = std::sqrt(rn * rn + config_.biasDriftAdu * config_.biasDriftAdu +
                                   config_.biasRowNoiseAdu * config_.biasRowNoiseAdu +
                                   config_.biasRowPatternAdu * config_.biasRowPatternAdu +
                                   config_.biasColumnPatternAdu * config_.biasColumnPatternAdu);
    return std::min(65535.0, std::floor(full - 5.0 * sigma));
}

ImageF DetectorInstrument::fixedBias(int amp) const {
    const Amplifier& a = detector_.amplifiers().at(std::size_t(amp));
    ImageF out(a.rawBBox, 0.0f);
    const auto& rows = rowPattern_[std::size_t(amp)];
    const auto& cols = columnPattern_[std::size_t(amp)];
    for (int v = 0; v < out.height(); ++v)
        for (int u = 0; u < out.width(); ++u)
            out(u, v) = float(biasLevel_[std::size_t(amp)] + rows[std::size_t(v)] + cols[std::size_t(u)]);
    return out;
}

ImageF DetectorInstrument::buildFlat(const std::string& band) const {
    const Box2I bbox = detector_.bbox();
    const std::uint64_t seed = config_.seed, det = key(detector_.id()), bk = bandKey(band);
    ImageF f(bbox, 1.0f);
    const int w = bbox.width(), h = bbox.height();

    // Pixel response: a fixed pattern shared by all bands plus a band-specific part.
    const double sigma = config_.pixelResponseSigma, fb = config_.bandPixelResponseFraction;
    const double fa = std::sqrt(1.0 - fb * fb);
    if (sigma > 0) {
        for (int y = 0; y < h; ++y) {
            Rng common({seed, det, 0, kPixelResponse, key(y)});
            Rng own({seed, det, 0, kBandPixelResponse, bk, key(y)});
            float* row = f.row(y);
            for (int x = 0; x < w; ++x) {
                double g = fa * common.normal();
                if (fb > 0) g += fb * own.normal();
                row[x] = float(1.0 + sigma * g);
            }
        }
    }

    // Smooth gradient across each amplifier.
    const auto& amps = detector_.amplifiers();
    for (std::size_t i = 0; i < amps.size(); ++i) {
        const Box2I& b = amps[i].bbox;
        const double cx = 0.5 * (b.minX() + b.maxX()), cy = 0.5 * (b.minY() + b.maxY());
        const double hx = std::max(0.5 * (b.width() - 1), 0.5), hy = std::max(0.5 * (b.height() - 1), 0.5);
        for (int y = b.minY(); y <= b.maxY(); ++y) {
            float* row = f.row(y - bbox.minY()) - bbox.minX();
            const double vy = (y - cy) / hy;
            for (int x = b.minX(); x <= b.maxX(); ++x) {
                const double ux = (x - cx) / hx;
                row[x] *= float(1.0 + config_.ampPatternAmplitude * (ampGradX_[i] * ux + ampGradY_[i] * vy) * 0.5);
            }
        }
    }

    // Band gradient across the detector and vignetting across the focal plane.
    Rng gradRng({seed, det, 0, kBandGradient, bk});
    const double phi = 2.0 * std::numbers::pi * gradRng.uniform();
    const double gx = std::cos(phi), gy = std::sin(phi);
    const double cx = 0.5 * (bbox.minX() + bbox.maxX()), cy = 0.5 * (bbox.minY() + bbox.maxY());
    const double hx = std::max(0.5 * (w - 1), 0.5), hy = std::max(0.5 * (h - 1), 0.5);
    const bool vignette = focalPlaneRadiusMm_ > 0 && config_.vignettingAmplitude > 0;
    const double invR2 = vignette ? 1.0 / (focalPlaneRadiusMm_ * focalPlaneRadiusMm_) : 0.0;
    for (int y = 0; y < h; ++y) {
        float* row = f.row(y);
        const double py = bbox.minY() + y;
        for (int x = 0; x < w; ++x) {
            const double px = bbox.minX() + x;
            double factor = 1.0 + config_.bandGradientAmplitude * (gx * (px - cx) / hx + gy * (py - cy) / hy) * 0.5;
            if (vignette) {
                const Point2D mm = detector_.pixelToFocalPlane({px, py});
                factor *= std::max(0.0, 1.0 - config_.vignettingAmplitude * (mm.x * mm.x + mm.y * mm.y) * invR2);
            }
            row[x] *= float(factor);
        }
    }

    // Bad columns.
    for (std::size_t k = 0; k < defects_.size(); ++k) {
        const Box2I& d = defects_[k];
        for (int y = d.minY(); y <= d.maxY(); ++y)
            for (int x = d.minX(); x <= d.maxX(); ++x) f(x - bbox.minX(), y - bbox.minY()) *= defectResponse_[k];
    }
    return f;
}

std::shared_ptr<const ImageF> DetectorInstrument::cachedFlat(const std::string& band) const {
    FlatCache& cache = *flatCache_;
    {
        std::lock_guard<std::mutex> lock(cache.mutex);
        for (std::size_t i = 0; i < cache.flats.size(); ++i) {
            if (cache.flats[i].first != band) continue;
            std::rotate(cache.flats.begin(), cache.flats.begin() + std::ptrdiff_t(i), cache.flats.begin() + std::ptrdiff_t(i) + 1);
            return cache.flats.front().second;
        }
    }
    // Build outside the lock (deterministic, so a concurrent duplicate build is harmless).
    auto built = std::make_shared<const ImageF>(buildFlat(band));
    std::lock_guard<std::mutex> lock(cache.mutex);
    cache.flats.insert(cache.flats.begin(), {band, built});
    if (cache.flats.size() > FlatCache::kCapacity) cache.flats.resize(FlatCache::kCapacity);
    return built;
}

ImageF DetectorInstrument::flat(const std::string& band) const { return cachedFlat(band)->clone(); }

// ---------------------------------------------------------------------------------------------
// DetectorInstrument: one exposure

namespace {

/// Deposit cosmic-ray tracks into `electrons` (assembled frame); returns their records.
std::vector<CosmicRayRecord> addCosmicRays(const ImageF& electrons, const InstrumentConfig& config, double areaCm2,
                                           double darkTimeS, Rng& rng) {
    std::vector<CosmicRayRecord> out;
    const double expected = config.cosmicRayRatePerCm2PerS * darkTimeS * areaCm2;
    if (!(expected > 0)) return out;
    const long n = std::poisson_distribution<long>(expected)(rng);
    const int w = electrons.width(), h = electrons.height();
    const Point2I xy0 = electrons.xy0();
    const double logRange = std::log(config.cosmicRayMaxElectrons / config.cosmicRayMinElectrons);
    for (long k = 0; k < n; ++k) {
        double px = rng.uniform() * w, py = rng.uniform() * h;
        double theta = 2.0 * std::numbers::pi * rng.uniform();
        // Short tracks are the most common (steep incidence): length = min + (max - min + 1) u^2.
        const double u = rng.uniform();
        const int span = config.cosmicRayMaxLengthPx - config.cosmicRayMinLengthPx + 1;
        const int length = std::min(config.cosmicRayMinLengthPx + int(span * u * u), config.cosmicRayMaxLengthPx);
        std::vector<Point2I> track;
        for (int step = 0; int(track.size()) < length && step < 8 * length + 8; ++step) {
            const int ix = int(std::floor(px)), iy = int(std::floor(py));
            if (ix < 0 || iy < 0 || ix >= w || iy >= h) break;
            const Point2I p{ix, iy};
            if (std::find(track.begin(), track.end(), p) == track.end()) track.push_back(p);
            px += 0.7 * std::cos(theta);
            py += 0.7 * std::sin(theta);
            theta += 0.25 * rng.normal();  // worm-like wiggle
        }
        CosmicRayRecord rec;
        rec.start = {double(track.front().x + xy0.x), double(track.front().y + xy0.y)};
        rec.lengthPx = int(track.size());
        std::vector<Span> spans;
        for (const Point2I& p : track) {
            const double deposit = config.cosmicRayMinElectrons * std::exp(logRange * rng.uniform());
            const double halo = config.cosmicRayDiffusion * deposit * 0.25;
            electrons(p.x, p.y) += float(deposit - 4.0 * halo);
            rec.electrons += deposit - 4.0 * halo;
            spans.push_back({p.y + xy0.y, p.x + xy0.x, p.x + xy0.x});
            if (halo <= 0) continue;
            const Point2I nb[4] = {{p.x - 1, p.y}, {p.x + 1, p.y}, {p.x, p.y - 1}, {p.x, p.y + 1}};
            for (const Point2I& q : nb) {
                if (q.x < 0 || q.y < 0 || q.x >= w || q.y >= h) continue;
                electrons(q.x, q.y) += float(halo);
                rec.electrons += halo;
                spans.push_back({q.y + xy0.y, q.x + xy0.x, q.x + xy0.x});
            }
        }
        rec.pixels = SpanSet(std::move(spans));
        out.push_back(std::move(rec));
    }
    return out;
}

}  // namespace

RawExposure DetectorInstrument::simulate(const ImageF& incidentElectrons, double exposureTimeS, double darkTimeS,
                                         const std::string& band, ExposureKind kind, std::uint64_t exposureSeed,
                                         SimulationRecord* record) const {
    const Box2I bbox = detector_.bbox();
    const std::string where = "simulate(detector " + detector_.name() + ", " + exposureKindName(kind) + "): ";
    if (!(exposureTimeS >= 0) || !(darkTimeS >= 0) || !std::isfinite(exposureTimeS) || !std::isfinite(darkTimeS)) {
        throw InvalidInputError(where + "exposure and dark times must be finite and >= 0");
    }
    const bool light = kind == ExposureKind::Science || kind == ExposureKind::Flat;
    if (light && !incidentElectrons.bbox().contains(bbox)) {
        std::ostringstream os;
        os << where << "the incident image " << incidentElectrons.bbox() << " does not cover the detector " << bbox;
        throw InvalidInputError(os.str());
    }
    if (kind == ExposureKind::Bias) darkTimeS = 0.0;
    const std::uint64_t seed = config_.seed, det = key(detector_.id());
    const int w = bbox.width(), h = bbox.height();
    const double threshold = config_.poissonGaussianThreshold;

    // 1-2. Flat response and Poisson statistics of signal + dark current.
    ImageF electrons(bbox, 0.0f);
    const std::shared_ptr<const ImageF> flatImg = light ? cachedFlat(band) : nullptr;
    const bool dark = darkTimeS > 0;
    for (int y = 0; y < h; ++y) {
        Rng rng({seed, det, exposureSeed, kSignal, key(y)});
        float* out = electrons.row(y);
        const float* inc =
            light ? incidentElectrons.row(y + bbox.minY() - incidentElectrons.xy0().y) + (bbox.minX() - incidentElectrons.xy0().x)
                  : nullptr;
        const float* fl = light ? flatImg->row(y) : nullptr;
        const float* dr = darkRate_.row(y);
        for (int x = 0; x < w; ++x) {
            double lambda = 0.0;
            if (light && inc[x] > 0) lambda = double(inc[x]) * double(fl[x]);
            if (dark) lambda += double(dr[x]) * darkTimeS;
            out[x] = float(rng.poisson(lambda, threshold));
        }
    }

    // 3. Cosmic rays over the dark time.
    const double pixelCm = detector_.pixelSizeMicrons() * 1e-4;
    Rng crRng({seed, det, exposureSeed, kCosmicRays, 0});
    std::vector<CosmicRayRecord> cosmicRays =
        addCosmicRays(electrons, config_, double(bbox.area()) * pixelCm * pixelCm, darkTimeS, crRng);

    // 4. Full well and bleeding.
    double lost = 0.0;
    std::vector<Box2I> saturated = bleedSaturatedCharge(electrons, config_.fullWellElectrons, &lost);

    // 5-6. Per amplifier, in the raw frame: non-linearity, then e- -> ADU.
    const auto& amps = detector_.amplifiers();
    const int nAmp = int(amps.size());
    std::vector<ImageF> signal(amps.size());
    for (int i = 0; i < nAmp; ++i) {
        const Amplifier& a = amps[std::size_t(i)];
        signal[std::size_t(i)] = disassembleAmplifier<float>(a, electrons, 0.0f);
        const ImageF data = signal[std::size_t(i)].subImage(a.rawDataBBox);
        const double c = nonlinearity(i), g = gain(i);
        for (int v = 0; v < data.height(); ++v) {
            float* row = data.row(v);
            for (int u = 0; u < data.width(); ++u) row[u] = float(applyNonlinearity(row[u], c) / g);
        }
    }

    // 7. Crosstalk: each victim pixel picks up c x the signal read at the same moment (same raw data
    // position) by every other amplifier.
    if (crosstalk_.any()) {
        std::vector<ImageF> source(amps.size());
        for (int s = 0; s < nAmp; ++s)
            if (crosstalk_.col(s).any()) source[std::size_t(s)] = signal[std::size_t(s)].subImage(amps[std::size_t(s)].rawDataBBox).clone();
        for (int v = 0; v < nAmp; ++v) {
            const ImageF victim = signal[std::size_t(v)].subImage(amps[std::size_t(v)].rawDataBBox);
            for (int s = 0; s < nAmp; ++s) {
                const double c = crosstalk_(v, s);
                if (c == 0.0) continue;
                const ImageF& src = source[std::size_t(s)];
                const int cw = std::min(victim.width(), src.width()), ch = std::min(victim.height(), src.height());
                for (int r = 0; r < ch; ++r) {
                    float* out = victim.row(r);
                    const float* in = src.row(r);
                    for (int u = 0; u < cw; ++u) out[u] += float(c * in[u]);
                }
            }
        }
    }

    // 8-9. Readout: bias, drift, row structure, read noise; ADC.
    RawExposure raw;
    raw.detectorId = detector_.id();
    raw.amplifiers.resize(amps.size());
    std::vector<double> drifts(amps.size());
    std::vector<std::vector<float>> rowOffsets(amps.size());
    for (int i = 0; i < nAmp; ++i) {
        const Amplifier& a = amps[std::size_t(i)];
        const ImageF& sig = signal[std::size_t(i)];
        Rng driftRng({seed, det, exposureSeed, kBiasDrift, key(i)});
        const double drift = config_.biasDriftAdu * driftRng.normal();
        drifts[std::size_t(i)] = drift;
        const double noiseAdu = readNoise(i) / gain(i);
        const auto& rows = rowPattern_[std::size_t(i)];
        const auto& cols = columnPattern_[std::size_t(i)];
        Image<std::int32_t> out(a.rawBBox, 0);
        auto& offsets = rowOffsets[std::size_t(i)];
        offsets.resize(std::size_t(out.height()));
        for (int v = 0; v < out.height(); ++v) {
            Rng rng({seed, det, exposureSeed, kReadout, key(i), key(v)});
            const double rowOffset = config_.biasRowNoiseAdu * rng.normal();
            offsets[std::size_t(v)] = float(rowOffset);
            const double base = biasLevel_[std::size_t(i)] + drift + rowOffset + rows[std::size_t(v)];
            const float* in = sig.row(v);
            std::int32_t* o = out.row(v);
            for (int u = 0; u < out.width(); ++u) {
                double value = double(in[u]) + base + double(cols[std::size_t(u)]);
                if (noiseAdu > 0) value += noiseAdu * rng.normal();
                const double q = std::floor(value + 0.5);
                o[u] = std::int32_t(std::clamp(q, 0.0, 65535.0));
            }
        }
        raw.amplifiers[std::size_t(i)] = std::move(out);
    }

    raw.visitInfo.exposureTimeS = exposureTimeS;
    raw.visitInfo.darkTimeS = darkTimeS;
    raw.visitInfo.band = band;
    raw.metadata.set("IMGTYPE", exposureKindImgType(kind), "exposure type");

    if (record) {
        record->cosmicRays = std::move(cosmicRays);
        record->saturated = std::move(saturated);
        record->bleedElectronsLost = lost;
        record->biasDriftAdu = std::move(drifts);
        record->rowOffsetAdu = std::move(rowOffsets);
        record->electrons = record->keepElectrons ? electrons : ImageF();
    }
    return raw;
}

// ---------------------------------------------------------------------------------------------
// Calibration helpers

ImageF makeCalibrationIncident(const Detector& detector, ExposureKind kind, const std::string& band,
                               const InstrumentConfig& config) {
    switch (kind) {
        case ExposureKind::Bias:
        case ExposureKind::Dark: return ImageF(detector.bbox(), 0.0f);
        case ExposureKind::Flat: {
            auto it = config.flatIlluminationByBand.find(band);
            const double level = it != config.flatIlluminationByBand.end() ? it->second : config.flatIlluminationElectrons;
            return ImageF(detector.bbox(), float(level));
        }
        case ExposureKind::Science: break;
    }
    throw LogicError("makeCalibrationIncident: a science exposure is not a calibration");
}

CalibrationTiming calibrationTiming(ExposureKind kind, const InstrumentConfig& config) {
    switch (kind) {
        case ExposureKind::Bias: return {0.0, 0.0};
        case ExposureKind::Dark: return {config.darkExposureTimeS, config.darkExposureTimeS};
        case ExposureKind::Flat: return {config.flatExposureTimeS, config.flatExposureTimeS};
        case ExposureKind::Science: break;
    }
    throw LogicError("calibrationTiming: a science exposure is not a calibration");
}

}  // namespace drp
