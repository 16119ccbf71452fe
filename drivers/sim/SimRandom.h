// The simulator's random numbers: a small portable generator (a splitmix64 stream) whose draws are
// the same on every platform and standard library, and seed mixing so that every quantum, object and
// detector draws from its own stream derived from the one master seed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>

namespace drp {

class SimRng {
public:
    explicit SimRng(std::uint64_t seed) : state_(seed) {}
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    /// Uniform in [0, 1).
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
    /// Standard normal (Box-Muller, one draw per call).
    double normal() {
        double u1 = uniform();
        while (u1 <= 0.0) u1 = uniform();
        return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * uniform());
    }
    /// Poisson deviate: exact (multiplication method) below mean 50, rounded normal above.
    std::int64_t poisson(double mean) {
        if (!(mean > 0)) return 0;
        if (mean >= 50) return std::max<std::int64_t>(0, std::llround(mean + std::sqrt(mean) * normal()));
        const double limit = std::exp(-mean);
        std::int64_t k = 0;
        double p = uniform();
        while (p > limit) {
            ++k;
            p *= uniform();
        }
        return k;
    }

private:
    std::uint64_t state_;
};

/// A sub-seed of `seed` for `tag`: different tags give independent streams.
inline std::uint64_t mixSeed(std::uint64_t seed, std::uint64_t tag) {
    SimRng r(seed ^ (tag * 0xd1b54a32d192ed03ULL));
    r.next();
    return r.next();
}
/// A sub-seed for a pair of tags (e.g. visit and detector).
inline std::uint64_t mixSeed(std::uint64_t seed, std::uint64_t a, std::uint64_t b) { return mixSeed(mixSeed(seed, a), b); }

}  // namespace drp
