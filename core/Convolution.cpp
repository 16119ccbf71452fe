#include "core/Convolution.h"

#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/Error.h"

namespace drp {

namespace {

// ---------------------------------------------------------------------------------------------
// FFTW, wrapped once: precision traits, aligned buffers, and a process-wide plan cache.

template <typename T>
struct Fftw;

template <>
struct Fftw<double> {
    using Plan = fftw_plan;
    using Complex = fftw_complex;
    static void* alloc(std::size_t bytes) { return fftw_malloc(bytes); }
    static void release(void* p) { fftw_free(p); }
    static Plan planR2c(int n0, int n1, double* in, Complex* out) {
        return fftw_plan_dft_r2c_2d(n0, n1, in, out, FFTW_ESTIMATE);
    }
    static Plan planC2r(int n0, int n1, Complex* in, double* out) {
        return fftw_plan_dft_c2r_2d(n0, n1, in, out, FFTW_ESTIMATE);
    }
    static void r2c(Plan p, double* in, Complex* out) { fftw_execute_dft_r2c(p, in, out); }
    static void c2r(Plan p, Complex* in, double* out) { fftw_execute_dft_c2r(p, in, out); }
};

template <>
struct Fftw<float> {
    using Plan = fftwf_plan;
    using Complex = fftwf_complex;
    static void* alloc(std::size_t bytes) { return fftwf_malloc(bytes); }
    static void release(void* p) { fftwf_free(p); }
    static Plan planR2c(int n0, int n1, float* in, Complex* out) {
        return fftwf_plan_dft_r2c_2d(n0, n1, in, out, FFTW_ESTIMATE);
    }
    static Plan planC2r(int n0, int n1, Complex* in, float* out) {
        return fftwf_plan_dft_c2r_2d(n0, n1, in, out, FFTW_ESTIMATE);
    }
    static void r2c(Plan p, float* in, Complex* out) { fftwf_execute_dft_r2c(p, in, out); }
    static void c2r(Plan p, Complex* in, float* out) { fftwf_execute_dft_c2r(p, in, out); }
};

/// An FFTW-aligned array (fftw_malloc aligns every buffer alike, which the new-array execute
/// functions require).
template <typename T, typename E>
class FftwBuffer {
public:
    explicit FftwBuffer(std::size_t n) : p_(static_cast<E*>(Fftw<T>::alloc(n * sizeof(E)))) {
        if (!p_) throw NumericalError("fftw_malloc failed for " + std::to_string(n * sizeof(E)) + " bytes");
    }
    ~FftwBuffer() { Fftw<T>::release(p_); }
    FftwBuffer(const FftwBuffer&) = delete;
    FftwBuffer& operator=(const FftwBuffer&) = delete;
    E* get() const { return p_; }

private:
    E* p_;
};

template <typename T>
struct PlanPair {
    typename Fftw<T>::Plan r2c;
    typename Fftw<T>::Plan c2r;
};

/// The cached plans for an ny x nx real transform. Plans are never destroyed (they are few and small);
/// planning holds fftwPlannerMutex(); executing a plan with new arrays is thread-safe.
template <typename T>
PlanPair<T> cachedPlans(int ny, int nx) {
    static std::map<std::pair<int, int>, PlanPair<T>> cache;  // guarded by fftwPlannerMutex()
    std::lock_guard<std::mutex> lock(fftwPlannerMutex());
    auto key = std::make_pair(ny, nx);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
    const std::size_t nReal = std::size_t(ny) * nx, nCplx = std::size_t(ny) * (nx / 2 + 1);
    FftwBuffer<T, T> real(nReal);
    FftwBuffer<T, typename Fftw<T>::Complex> cplx(nCplx);
    PlanPair<T> plans{Fftw<T>::planR2c(ny, nx, real.get(), cplx.get()), Fftw<T>::planC2r(ny, nx, cplx.get(), real.get())};
    if (!plans.r2c || !plans.c2r)
        throw NumericalError("FFTW could not plan a " + std::to_string(ny) + "x" + std::to_string(nx) + " transform");
    cache.emplace(key, plans);
    return plans;
}

// ---------------------------------------------------------------------------------------------
// Kernels of the convolution. Each writes only the valid box `v` of `out`.

template <typename T>
void convolveFft(const Image<T>& out, const Image<T>& in, const Kernel& k, const Box2I& v) {
    using Complex = typename Fftw<T>::Complex;
    const int W = in.width(), H = in.height();
    const int nx = fftFriendlySize(W), ny = fftFriendlySize(H);
    const int nxc = nx / 2 + 1;
    const std::size_t nReal = std::size_t(ny) * nx, nCplx = std::size_t(ny) * nxc;
    PlanPair<T> plans = cachedPlans<T>(ny, nx);

    // Kernel spectrum: K(i, j) placed at ((i - cx) mod nx, (j - cy) mod ny). For a valid output pixel
    // no input index wraps, so the circular convolution equals the linear one there.
    FftwBuffer<T, Complex> kSpec(nCplx);
    {
        FftwBuffer<T, T> kReal(nReal);
        std::fill(kReal.get(), kReal.get() + nReal, T(0));
        const Point2I c = k.centre();
        for (int j = 0; j < k.height(); ++j) {
            int yy = ((j - c.y) % ny + ny) % ny;
            for (int i = 0; i < k.width(); ++i) {
                int xx = ((i - c.x) % nx + nx) % nx;
                kReal.get()[std::size_t(yy) * nx + xx] = T(k(i, j));
            }
        }
        Fftw<T>::r2c(plans.r2c, kReal.get(), kSpec.get());
    }
    FftwBuffer<T, T> real(nReal);
    FftwBuffer<T, Complex> spec(nCplx);
    for (int y = 0; y < ny; ++y) {
        T* dst = real.get() + std::size_t(y) * nx;
        if (y < H) {
            std::copy(in.row(y), in.row(y) + W, dst);
            std::fill(dst + W, dst + nx, T(0));
        } else {
            std::fill(dst, dst + nx, T(0));
        }
    }
    Fftw<T>::r2c(plans.r2c, real.get(), spec.get());
    const T scale = T(1) / (T(nx) * T(ny));
    Complex* a = spec.get();
    const Complex* b = kSpec.get();
    for (std::size_t n = 0; n < nCplx; ++n) {
        T re = a[n][0] * b[n][0] - a[n][1] * b[n][1];
        T im = a[n][0] * b[n][1] + a[n][1] * b[n][0];
        a[n][0] = re * scale;
        a[n][1] = im * scale;
    }
    Fftw<T>::c2r(plans.c2r, spec.get(), real.get());
    for (int y = v.minY(); y <= v.maxY(); ++y) {
        const T* src = real.get() + std::size_t(y) * nx;
        std::copy(src + v.minX(), src + v.maxX() + 1, out.row(y) + v.minX());
    }
}

constexpr int kBlock = 512;  // x block of the direct loops, so that the accumulator stays in L1

template <typename T>
void convolveDirectGeneral(const Image<T>& out, const Image<T>& in, const Kernel& k, const Box2I& v) {
    const int kw = k.width(), kh = k.height();
    const Point2I c = k.centre();
    std::vector<T> kv(std::size_t(kw) * kh);
    for (int j = 0; j < kh; ++j)
        for (int i = 0; i < kw; ++i) kv[std::size_t(j) * kw + i] = T(k(i, j));
    std::vector<T> accBuf(kBlock);
    T* __restrict acc = accBuf.data();
    for (int y = v.minY(); y <= v.maxY(); ++y) {
        for (int xb = v.minX(); xb <= v.maxX(); xb += kBlock) {
            const int nb = std::min(kBlock, v.maxX() + 1 - xb);
            std::fill(acc, acc + nb, T(0));
            for (int j = 0; j < kh; ++j) {
                const T* inRow = in.row(y - j + c.y);
                for (int i = 0; i < kw; ++i) {
                    const T kval = kv[std::size_t(j) * kw + i];
                    if (kval == T(0)) continue;
                    const T* __restrict src = inRow + (xb - i + c.x);
                    for (int x = 0; x < nb; ++x) acc[x] += kval * src[x];
                }
            }
            std::copy(acc, acc + nb, out.row(y) + xb);
        }
    }
}

// Separable kernels (and the mask OR) go through a ring of kh horizontally-filtered rows.
template <typename T, typename HorizontalOp, typename VerticalOp>
void separablePass(const Image<T>& out, int kh, int cy, const Box2I& v, HorizontalOp horizontal,
                   VerticalOp vertical) {
    const int nx = v.width();
    const int down = kh - 1 - cy;
    std::vector<T> ring(std::size_t(kh) * nx);
    std::vector<const T*> rows(static_cast<std::size_t>(kh), nullptr);
    auto slot = [&](int yIn) { return ring.data() + std::size_t(((yIn % kh) + kh) % kh) * nx; };
    for (int yIn = v.minY() - down; yIn < v.minY() + cy; ++yIn) horizontal(yIn, slot(yIn));
    for (int y = v.minY(); y <= v.maxY(); ++y) {
        horizontal(y + cy, slot(y + cy));
        for (int j = 0; j < kh; ++j) rows[std::size_t(j)] = slot(y - j + cy);
        vertical(rows.data(), out.row(y) + v.minX());
    }
}

template <typename T>
void convolveDirectSeparable(const Image<T>& out, const Image<T>& in, const Kernel& k, const Box2I& v) {
    const int kw = k.width(), kh = k.height();
    const Point2I c = k.centre();
    std::vector<T> kx(k.xVector().begin(), k.xVector().end()), ky(k.yVector().begin(), k.yVector().end());
    const int nx = v.width(), x0 = v.minX();
    auto horizontal = [&](int yIn, T* __restrict dst) {
        const T* inRow = in.row(yIn);
        std::fill(dst, dst + nx, T(0));
        for (int i = 0; i < kw; ++i) {
            const T kval = kx[std::size_t(i)];
            const T* __restrict src = inRow + (x0 - i + c.x);
            for (int x = 0; x < nx; ++x) dst[x] += kval * src[x];
        }
    };
    std::vector<T> accBuf(kBlock);
    auto vertical = [&](const T* const* rows, T* dst) {
        T* __restrict acc = accBuf.data();
        for (int xb = 0; xb < nx; xb += kBlock) {
            const int nb = std::min(kBlock, nx - xb);
            std::fill(acc, acc + nb, T(0));
            for (int j = 0; j < kh; ++j) {
                const T kval = ky[std::size_t(j)];
                const T* __restrict src = rows[j] + xb;
                for (int x = 0; x < nb; ++x) acc[x] += kval * src[x];
            }
            std::copy(acc, acc + nb, dst + xb);
        }
    };
    separablePass(out, kh, c.y, v, horizontal, vertical);
}

/// Mask of valid pixels: OR of the input over the kernel's bounding box.
void orMaskOverFootprint(const Image<MaskPixel>& out, const Image<MaskPixel>& in, const Kernel& k, const Box2I& v) {
    const int kw = k.width(), kh = k.height();
    const Point2I c = k.centre();
    const int nx = v.width(), x0 = v.minX();
    auto horizontal = [&](int yIn, MaskPixel* __restrict dst) {
        const MaskPixel* inRow = in.row(yIn);
        std::fill(dst, dst + nx, 0);
        for (int i = 0; i < kw; ++i) {
            const MaskPixel* __restrict src = inRow + (x0 - i + c.x);
            for (int x = 0; x < nx; ++x) dst[x] |= src[x];
        }
    };
    auto vertical = [&](const MaskPixel* const* rows, MaskPixel* __restrict dst) {
        std::fill(dst, dst + nx, 0);
        for (int j = 0; j < kh; ++j) {
            const MaskPixel* __restrict src = rows[j];
            for (int x = 0; x < nx; ++x) dst[x] |= src[x];
        }
    };
    separablePass(out, kh, c.y, v, horizontal, vertical);
}

template <typename T>
bool allFinite(const Image<T>& img) {
    for (int y = 0; y < img.height(); ++y) {
        const T* r = img.row(y);
        bool ok = true;
        for (int x = 0; x < img.width(); ++x) ok &= std::isfinite(r[x]);
        if (!ok) return false;
    }
    return true;
}

/// Set every pixel of `out` outside the valid box per the edge rule.
template <typename T>
void fillEdges(const Image<T>& out, const Image<T>& in, const Box2I& v, ConvolutionControl::Edge edge) {
    for (int y = 0; y < out.height(); ++y) {
        T* o = out.row(y);
        const T* src = in.row(y);
        const bool fullRow = v.empty() || y < v.minY() || y > v.maxY();
        auto fillRange = [&](int xa, int xb) {  // [xa, xb)
            for (int x = xa; x < xb; ++x) {
                switch (edge) {
                    case ConvolutionControl::Edge::Nan: o[x] = std::numeric_limits<T>::quiet_NaN(); break;
                    case ConvolutionControl::Edge::CopyInput: o[x] = src[x]; break;
                    case ConvolutionControl::Edge::Zero: o[x] = T(0); break;
                }
            }
        };
        if (fullRow) {
            fillRange(0, out.width());
        } else {
            fillRange(0, v.minX());
            fillRange(v.maxX() + 1, out.width());
        }
    }
}

template <typename T>
void checkArgs(const Image<T>& out, const Image<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl) {
    ctrl.validate();
    if (kernel.empty()) throw LogicError("convolve: empty kernel");
    if (out.width() != in.width() || out.height() != in.height())
        throw LogicError("convolve: output and input shapes differ");
    if (out.sharesPixelsWith(in) && !in.empty()) throw LogicError("convolve: output shares pixels with the input");
}

/// Convolve one plane; `k` is already normalised (or not) as the caller wants.
template <typename T>
void convolvePlane(const Image<T>& out, const Image<T>& in, const Kernel& k, const ConvolutionControl& ctrl) {
    const Box2I v = validConvolutionBox(in.width(), in.height(), k);
    if (!v.empty()) {
        ConvolutionControl::Method m = ctrl.method;
        if (m == ConvolutionControl::Method::Auto) {
            m = chooseConvolutionMethod(k, ctrl);
            if (m == ConvolutionControl::Method::Fft && !allFinite(in)) m = ConvolutionControl::Method::Direct;
        }
        if (m == ConvolutionControl::Method::Fft)
            convolveFft(out, in, k, v);
        else if (k.isSeparable())
            convolveDirectSeparable(out, in, k, v);
        else
            convolveDirectGeneral(out, in, k, v);
    }
    fillEdges(out, in, v, ctrl.edge);
}

}  // namespace

// -------------------------------------------------------------------------------------------------

std::mutex& fftwPlannerMutex() {
    static std::mutex m;
    return m;
}

int fftFriendlySize(int minimum) {
    if (minimum <= 1) return 1;
    for (int n = minimum;; ++n) {
        int r = n;
        for (int p : {2, 3, 5, 7})
            while (r % p == 0) r /= p;
        if (r == 1) return n;
    }
}

void ConvolutionControl::validate() const {
    if (fftCrossoverArea < 1)
        throw ConfigError("ConvolutionControl.fftCrossoverArea must be >= 1, got " + std::to_string(fftCrossoverArea));
    if (fftCrossoverSeparable < 2)
        throw ConfigError("ConvolutionControl.fftCrossoverSeparable must be >= 2, got " +
                          std::to_string(fftCrossoverSeparable));
    if (edgeMaskPlane.empty()) throw ConfigError("ConvolutionControl.edgeMaskPlane must not be empty");
}

ConvolutionControl::Method chooseConvolutionMethod(const Kernel& kernel, const ConvolutionControl& ctrl) {
    if (ctrl.method != ConvolutionControl::Method::Auto) return ctrl.method;
    bool fft = kernel.isSeparable() ? kernel.width() + kernel.height() >= ctrl.fftCrossoverSeparable
                                    : std::int64_t(kernel.width()) * kernel.height() >= ctrl.fftCrossoverArea;
    return fft ? ConvolutionControl::Method::Fft : ConvolutionControl::Method::Direct;
}

Box2I validConvolutionBox(int width, int height, const Kernel& kernel) {
    const int x0 = kernel.maxOffsetLeft(), x1 = width - 1 - kernel.maxOffsetRight();
    const int y0 = kernel.maxOffsetDown(), y1 = height - 1 - kernel.maxOffsetUp();
    if (x1 < x0 || y1 < y0) return {};
    return Box2I::fromCorners({x0, y0}, {x1, y1});
}

template <typename T>
void convolve(const Image<T>& out, const Image<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl) {
    checkArgs(out, in, kernel, ctrl);
    const Kernel k = ctrl.normalize ? kernel.normalized() : kernel;
    convolvePlane(out, in, k, ctrl);
}

template <typename T>
Image<T> convolved(const Image<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl) {
    Image<T> out(in.bbox());
    convolve(out, in, kernel, ctrl);
    return out;
}

template <typename T>
void convolve(MaskedImage<T>& out, const MaskedImage<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl) {
    checkArgs(out.image(), in.image(), kernel, ctrl);
    if (out.variance().sharesPixelsWith(in.variance()) || out.mask().sharesPixelsWith(in.mask()))
        throw LogicError("convolve: output shares pixels with the input");
    const Kernel k = ctrl.normalize ? kernel.normalized() : kernel;
    const Kernel k2 = k.squared();
    convolvePlane(out.image(), in.image(), k, ctrl);
    convolvePlane(out.variance(), in.variance(), k2, ctrl);
    const Box2I v = validConvolutionBox(in.width(), in.height(), k);
    if (!v.empty()) orMaskOverFootprint(out.mask(), in.mask(), k, v);
    const MaskPixel edgeBit = MaskPixel(1u << out.mask().addPlane(ctrl.edgeMaskPlane));
    for (int y = 0; y < out.height(); ++y) {
        MaskPixel* o = out.mask().row(y);
        const MaskPixel* src = in.mask().row(y);
        for (int x = 0; x < out.width(); ++x)
            if (!v.contains(Point2I{x, y})) o[x] = src[x] | edgeBit;
    }
}

template <typename T>
MaskedImage<T> convolved(const MaskedImage<T>& in, const Kernel& kernel, const ConvolutionControl& ctrl) {
    MaskedImage<T> out(in.bbox());
    // The output mask uses a copy of the input's plane dictionary, so plane bits agree.
    out = MaskedImage<T>(out.image(), Mask(out.mask(), std::make_shared<MaskPlaneDict>(*in.mask().planeDict())),
                         out.variance());
    convolve(out, in, kernel, ctrl);
    return out;
}

#define DRP_INSTANTIATE_CONVOLUTION(T)                                                                      \
    template void convolve<T>(const Image<T>&, const Image<T>&, const Kernel&, const ConvolutionControl&);  \
    template Image<T> convolved<T>(const Image<T>&, const Kernel&, const ConvolutionControl&);              \
    template void convolve<T>(MaskedImage<T>&, const MaskedImage<T>&, const Kernel&, const ConvolutionControl&); \
    template MaskedImage<T> convolved<T>(const MaskedImage<T>&, const Kernel&, const ConvolutionControl&);

DRP_INSTANTIATE_CONVOLUTION(float)
DRP_INSTANTIATE_CONVOLUTION(double)

#undef DRP_INSTANTIATE_CONVOLUTION

}  // namespace drp
