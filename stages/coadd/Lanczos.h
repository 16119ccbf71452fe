// WarpingKernel: the separable 1-d interpolation kernels used to resample images onto another pixel
// grid (stages/coadd/Warper.h) and to warp PSF images (stages/coadd/CoaddPsf.h).
//
// Kernels (the `name` of WarpConfig::kernel):
//  * "lanczosN", N = 2, 3, 4: L(x) = sinc(x) sinc(x / N) for |x| < N, 0 beyond (sinc(x) = sin(pi x)/(pi x)),
//    2N taps per axis;
//  * "bilinear": 1 - |x| for |x| < 1, 2 taps;
//  * "nearest": the nearest pixel, 1 tap.
// Pixel i of a row is centred at coordinate i (the project's convention: pixel i covers [i - 1/2, i + 1/2)).
// To interpolate at a coordinate x the taps are the pixels first, first + 1, ..., first + numTaps() - 1
// with first = floor(x) - N + 1 (lanczos), floor(x) (bilinear), floor(x + 1/2) (nearest). Lanczos weights
// are L(x - i) normalised to sum exactly 1 at every x (a constant image stays constant; the raw sum wanders
// by up to ~1% with the phase) and then corrected to zero first moment, sum_i w_i (x - i) = 0 (a linear ramp
// is reproduced exactly), by adding h_i (alpha + beta (x - i)) with h_i = exp(-(x - i)^2 / 2) and alpha,
// beta fixed by the two moment conditions. The raw normalised Lanczos kernel has a first moment of up to
// 0.031 / 0.020 / 0.015 px (lanczos2 / 3 / 4), a phase-dependent shift of the interpolated position; its
// Fourier transform then has a non-zero slope at the integer frequencies, so when a warp's destination grid
// is nearly aligned with the source grid the two beat (a moire of the total weight each input pixel gives
// the output, rms 0.15-0.4%) and the flux and centroid of a star change by up to 0.4% and 0.03 px. With the
// correction: < 1.5e-4 and < 2e-3 px at every orientation (tests/stages/test_Warp.cpp). The correction
// vanishes at integer x (the kernel still interpolates) and is at most ~0.01 per tap.
//
// Speed: the weights depend only on the phase f = x - floor(x). They are tabulated at kPhases + 1 phases
// (normalised rows) and linearly interpolated between rows, so computeWeights costs a few multiply-adds
// per tap and no trigonometry; the interpolated weights still sum to 1 (to rounding) and differ from the
// exact normalised kernel by < 2e-6 (lanczos3; checked in tests/stages/test_Warp.cpp). Tables are built
// once per kernel type and shared by every copy (immutable, thread-safe).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace drp {

class WarpingKernel {
public:
    /// Largest numTaps() of any kernel (lanczos4).
    static constexpr int kMaxTaps = 8;
    /// Number of tabulated phase intervals per pixel.
    static constexpr int kPhases = 1024;

    /// Throws ConfigError for a name that is not one of the kernels above.
    explicit WarpingKernel(const std::string& name = "lanczos3");
    /// True for "nearest", "bilinear", "lanczos2", "lanczos3", "lanczos4".
    static bool isValidName(const std::string& name);

    const std::string& name() const { return name_; }
    /// Taps per axis: 1 (nearest), 2 (bilinear), 2N (lanczosN).
    int numTaps() const { return taps_; }
    /// How far the taps reach from x: every tap i satisfies |x - i| < support() (N, 1, or 0.5).
    double support() const { return support_; }

    /// Fill w[0 .. numTaps()-1] with the normalised (tabulated) weights of the taps first, first+1, ...
    /// for coordinate x, and return first. x must be finite.
    int computeWeights(double x, double* w) const;
    /// The same with the exact, untabulated kernel (sum 1, first moment 0); for tests and PSF work.
    int computeExactWeights(double x, double* w) const;
    /// The raw 1-d kernel L(x) (not normalised, no moment correction).
    double value(double x) const;

    friend bool operator==(const WarpingKernel& a, const WarpingKernel& b) { return a.name_ == b.name_; }

private:
    enum class Type { Nearest, Bilinear, Lanczos };
    Type type_ = Type::Lanczos;
    int order_ = 3;
    int taps_ = 6;
    double support_ = 3.0;
    std::string name_;
    std::shared_ptr<const std::vector<double>> table_;  ///< (kPhases + 1) rows of taps_ weights (lanczos)
};

}  // namespace drp
