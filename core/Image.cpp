#include "core/Image.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <sstream>
#include <type_traits>

#include "core/Error.h"
#include "core/HugePages.h"

namespace drp {

namespace {

/// Zero-filled images at least this large come from calloc (see allocate).
constexpr std::size_t kCallocMinBytes = std::size_t(1) << 20;

}  // namespace

template <typename T>
Image<T>::Image(int width, int height, T initial) : Image(Box2I({0, 0}, width, height), initial) {}

template <typename T>
Image<T>::Image(const Box2I& bbox, T initial)
    : width_(bbox.width()), height_(bbox.height()), stride_(bbox.width()), xy0_(bbox.min()) {
    // All zero bits (not -0.0): zero-filled memory already holds `initial`.
    static constexpr T zero{};
    const bool zeroBits = std::memcmp(&initial, &zero, sizeof(T)) == 0;
    if (allocate(zeroBits) && zeroBits) return;
    if (data_) std::fill_n(data_, bbox.area(), initial);
}

template <typename T>
Image<T>::Image(int width, int height, NoFill tag) : Image(Box2I({0, 0}, width, height), tag) {}

template <typename T>
Image<T>::Image(const Box2I& bbox, NoFill)
    : width_(bbox.width()), height_(bbox.height()), stride_(bbox.width()), xy0_(bbox.min()) {
    allocate(false);
}

template <typename T>
Image<T>::Image(const Box2I& bbox, T value, SharedFill)
    : width_(bbox.width()), height_(bbox.height()), stride_(bbox.width()), xy0_(bbox.min()) {
    if (width_ <= 0 || height_ <= 0) return;
    const std::size_t n = std::size_t(width_) * std::size_t(height_);
    if (n <= SIZE_MAX / sizeof(T) && n * sizeof(T) >= kUniformMinBlockBytes) {
        if (std::shared_ptr<std::byte[]> block = allocateUniformBlock(n * sizeof(T), &value, sizeof(T))) {
            storage_ = std::shared_ptr<T[]>(block, reinterpret_cast<T*>(block.get()));
            data_ = storage_.get();
            return;
        }
    }
    *this = Image(bbox, value);
}

template <typename T>
bool Image<T>::allocate(bool wantZero) {
    if (width_ <= 0 || height_ <= 0) return false;
    const std::size_t n = std::size_t(width_) * std::size_t(height_);
    if (n > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
    bool zeroed = false;
    if (transparentHugePages() && n * sizeof(T) >= kHugePageMinBlockBytes) {
        std::shared_ptr<std::byte[]> block = allocateHugePageBlock(n * sizeof(T));
        zeroed = true;
        storage_ = std::shared_ptr<T[]>(block, reinterpret_cast<T*>(block.get()));
    } else {
        // calloc clears only memory that is not known to be zero (a fresh mapping of glibc's is not cleared
        // again); for small images the caller's fill is cheaper. Both keep glibc's reuse of freed heap
        // memory. The pixel types are trivial.
        zeroed = wantZero && n * sizeof(T) >= kCallocMinBytes;
        void* p = zeroed ? std::calloc(n, sizeof(T)) : std::malloc(n * sizeof(T));
        if (!p) throw std::bad_alloc();
        storage_ = std::shared_ptr<T[]>(static_cast<T*>(p), [](T* q) { std::free(q); });
    }
    data_ = storage_.get();
    return zeroed;
}

template <typename T>
Image<T> Image<T>::subImage(const Box2I& box) const {
    if (!bbox().contains(box)) {
        std::ostringstream os;
        os << "subImage " << box << " is not inside the image " << bbox();
        throw LogicError(os.str());
    }
    Image out(*this);
    out.width_ = box.width();
    out.height_ = box.height();
    out.xy0_ = box.min();
    out.data_ = box.empty() ? nullptr : data_ + std::int64_t(box.minY() - xy0_.y) * stride_ + (box.minX() - xy0_.x);
    return out;
}

template <typename T>
Image<T> Image<T>::clone() const {
    Image out(bbox(), kNoFill);
    out.assign(*this);
    return out;
}

template <typename T>
template <typename U>
Image<U> Image<T>::convertTo() const {
    Image<U> out(bbox(), kNoFill);
    for (int y = 0; y < height_; ++y) {
        const T* in = row(y);
        U* o = out.row(y);
        for (int x = 0; x < width_; ++x) o[x] = static_cast<U>(in[x]);
    }
    return out;
}

template <typename T>
T& Image<T>::at(int x, int y) const {
    if (x < 0 || y < 0 || x >= width_ || y >= height_) {
        std::ostringstream os;
        os << "pixel (" << x << ", " << y << ") is outside a " << width_ << "x" << height_ << " image";
        throw LogicError(os.str());
    }
    return (*this)(x, y);
}

template <typename T>
void Image<T>::fill(T value) const {
    for (int y = 0; y < height_; ++y) std::fill_n(row(y), width_, value);
}

template <typename T>
void Image<T>::requireSameShape(const Image& o, const char* what) const {
    if (o.width_ != width_ || o.height_ != height_) {
        std::ostringstream os;
        os << what << ": image dimensions differ (" << width_ << "x" << height_ << " vs " << o.width_ << "x"
           << o.height_ << ")";
        throw LogicError(os.str());
    }
}

template <typename T>
void Image<T>::assign(const Image& o) const {
    requireSameShape(o, "assign");
    for (int y = 0; y < height_; ++y) std::memmove(row(y), o.row(y), sizeof(T) * std::size_t(width_));
}

#define DRP_IMAGE_SCALAR_OP(op)                                   \
    template <typename T>                                         \
    const Image<T>& Image<T>::operator op(T v) const {            \
        for (int y = 0; y < height_; ++y) {                       \
            T* r = row(y);                                        \
            for (int x = 0; x < width_; ++x) r[x] op v;           \
        }                                                         \
        return *this;                                             \
    }                                                             \
    template <typename T>                                         \
    const Image<T>& Image<T>::operator op(const Image& o) const { \
        requireSameShape(o, #op);                                 \
        for (int y = 0; y < height_; ++y) {                       \
            T* r = row(y);                                        \
            const T* s = o.row(y);                                \
            for (int x = 0; x < width_; ++x) r[x] op s[x];        \
        }                                                         \
        return *this;                                             \
    }
DRP_IMAGE_SCALAR_OP(+=)
DRP_IMAGE_SCALAR_OP(-=)
DRP_IMAGE_SCALAR_OP(*=)
#undef DRP_IMAGE_SCALAR_OP

template <typename T>
bool Image<T>::identical(const Image& o) const {
    if (o.width_ != width_ || o.height_ != height_ || !(o.xy0_ == xy0_)) return false;
    for (int y = 0; y < height_; ++y) {
        const T* a = row(y);
        const T* b = o.row(y);
        for (int x = 0; x < width_; ++x) {
            if constexpr (std::is_floating_point_v<T>) {
                if (std::isnan(a[x]) && std::isnan(b[x])) continue;
            }
            if (a[x] != b[x]) return false;
        }
    }
    return true;
}

#define DRP_INSTANTIATE_CONVERT(T, U) template Image<U> Image<T>::convertTo<U>() const;
#define DRP_INSTANTIATE_IMAGE(T)                 \
    template class Image<T>;                     \
    DRP_INSTANTIATE_CONVERT(T, float)            \
    DRP_INSTANTIATE_CONVERT(T, double)           \
    DRP_INSTANTIATE_CONVERT(T, std::int32_t)     \
    DRP_INSTANTIATE_CONVERT(T, std::uint16_t)

DRP_INSTANTIATE_IMAGE(float)
DRP_INSTANTIATE_IMAGE(double)
DRP_INSTANTIATE_IMAGE(std::int32_t)
DRP_INSTANTIATE_IMAGE(std::uint16_t)

}  // namespace drp
