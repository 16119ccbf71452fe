// Convolution of images and masked images by a Kernel (core/Kernel.h), directly or through FFTW.
//
// Definition (true convolution, not correlation):
//     out(x, y) = sum_{i,j} K(i, j) * in(x - (i - cx), y - (j - cy))
// with (cx, cy) the kernel centre and x, y local (0-based) indices; the output has the input's bbox.
//
// Edges: an output pixel is "valid" when its whole kernel footprint (the kernel's bounding box,
// zero entries included) lies inside the input, i.e.
//     width - 1 - cx <= x <= W - 1 - cx   and   height - 1 - cy <= y <= H - 1 - cy.
// Other ("edge") pixels are set by ConvolutionControl::edge: NaN (default), a copy of the input pixel,
// or 0. For a MaskedImage, edge pixels also get the EDGE mask plane (ConvolutionControl::edgeMaskPlane,
// added if missing) OR-ed into the input mask pixel; their variance follows the same edge rule as the
// image (NaN / copy / 0).
//
// Masked images: the image is convolved with K, the variance with K^2 (element-wise square), and the
// mask of a valid pixel is the OR of the input mask over the kernel's bounding box.
//
// Methods: direct (O(N * kernel area), or O(N * (width + height)) for a separable kernel) or FFT
// (FFTW r2c/c2r of the image padded to a 2^a 3^b 5^c 7^d size; O(N log N) whatever the kernel).
// Both give the same valid pixels to rounding. Float images use single-precision FFTW (fftw3f) and
// single-precision accumulation; double images use double. FFT plans are created with FFTW_ESTIMATE,
// cached per (precision, shape) for the life of the process, and created under fftwPlannerMutex(),
// so convolve() may be called from several threads at once.
//
// NaN / inf input pixels: with the direct method they spoil only the outputs whose footprint holds
// them; with FFT they spoil the whole output. Method::Auto therefore uses the direct method whenever the
// input has a non-finite pixel.
#pragma once

#include <mutex>
#include <string>

#include "core/Image.h"
#include "core/Kernel.h"
#include "core/MaskedImage.h"

namespace drp {

/// How to convolve. Plain value; compare with ==; check with validate().
struct ConvolutionControl {
    enum class Method {
        Auto,    ///< direct below the crossover, FFT above (and direct whenever the input has NaN/inf)
        Direct,  ///< always direct summation
        Fft,     ///< always FFT
    };
    enum class Edge {
        Nan,        ///< edge pixels are NaN (image and variance)
        CopyInput,  ///< edge pixels copy the input pixel (image and variance)
        Zero,       ///< edge pixels are 0 (image and variance)
    };

    /// Direct or FFT; Auto chooses by the crossovers below.
    Method method = Method::Auto;
    /// Scale the kernel to sum to 1 before use (throws InvalidInputError for a zero-sum kernel).
    bool normalize = true;
    /// What edge pixels (footprint not inside the input) are set to.
    Edge edge = Edge::Nan;
    /// Auto: a general kernel uses FFT when width * height >= this. Unit: kernel pixels. Bounds: >= 1.
    /// Default 169 (13 x 13), measured with benchmarks/bench_convolution (2-core EPYC, SSE2 build):
    /// square k x k kernels, direct vs FFT break even at k ~ 10 on 1024^2, k ~ 12-13 on 2048^2 and
    /// k ~ 17 on 4096^2 images, for float and double alike.
    int fftCrossoverArea = 169;
    /// Auto: a separable kernel uses FFT when width + height >= this. Unit: pixels. Bounds: >= 2.
    /// Default 180: direct separable was 2x faster than FFT even at 41 + 41 on 2048^2 (40 vs 80 ms);
    /// its linear cost extrapolates to break even near width + height = 180.
    int fftCrossoverSeparable = 180;
    /// Mask plane set on edge pixels of a masked image (added to the mask's planes if missing).
    std::string edgeMaskPlane = "EDGE";

    /// Throws ConfigError naming the first field out of bounds.
    void validate() const;
    friend bool operator==(const ConvolutionControl&, const ConvolutionControl&) = default;
};

/// Convolve `in` by `kernel` into `out` (same width and height; must not share pixels with `in`).
/// Throws LogicError on shape mismatch, shared pixels or an empty kernel.
template <typename T>
void convolve(const Image<T>& out, const Image<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl = {});
/// The convolution of `in` by `kernel` as a new image with the same bbox.
template <typename T>
Image<T> convolved(const Image<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl = {});

/// Convolve a masked image (see header comment). `out` must have the shape of `in` and share no pixels.
template <typename T>
void convolve(MaskedImage<T>& out, const MaskedImage<T>& in, const Kernel& kernel,
              const ConvolutionControl& ctrl = {});
template <typename T>
MaskedImage<T> convolved(const MaskedImage<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl = {});

/// The method Auto would use for this kernel and an all-finite input (Direct or Fft).
ConvolutionControl::Method chooseConvolutionMethod(const Kernel& kernel, const ConvolutionControl& ctrl);

/// The box of valid output pixels (local indices of the input) for an image of this size.
Box2I validConvolutionBox(int width, int height, const Kernel& kernel);

/// The smallest n >= minimum of the form 2^a 3^b 5^c 7^d (fast FFTW sizes).
int fftFriendlySize(int minimum);

/// The one mutex that guards FFTW planning (fftw_plan_* and fftw_destroy_plan are not thread-safe).
/// Any code in the engine that makes FFTW plans must hold it while planning.
std::mutex& fftwPlannerMutex();

}  // namespace drp
