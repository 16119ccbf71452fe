// Image<T>: a 2-d pixel array with an origin (xy0) in its parent's pixel frame.
// Copies and sub-images are views that share pixels; clone() makes an independent deep copy.
//
// Storage: pixels come from calloc (a zero fill of 1 MiB or more: glibc clears only memory not already
// zero, so a fresh full-size plane is not written twice) or malloc (any other fill, or NoFill); with
// transparent huge pages requested (core/HugePages.h) an image of at least kHugePageMinBlockBytes bytes is
// a huge-page block. An image made with the SharedFill tag (4 MiB or more) is a uniform block: its pages
// share a few physical pages holding the value until written (copy-on-write; core/HugePages.h).
#pragma once

#include <cstdint>
#include <memory>

#include "core/Box.h"

namespace drp {

/// Constructor tag: leave the pixels unset (indeterminate). Only for an image whose every pixel is written
/// before any is read (a copy, a conversion, a decode): it saves one pass over the memory.
struct NoFill {
    explicit NoFill() = default;
};
inline constexpr NoFill kNoFill{};

/// Constructor tag: the pixels start as one value held in a few physical pages shared by the whole image
/// (core/HugePages.h, allocateUniformBlock), each page copied on its first write. The same pixels as
/// Image(bbox, value); cheaper for a large plane that is mostly read (a uniform variance: ~1/15 of the page
/// faults and no fill pass), dearer for one that is mostly written (a written page costs twice an ordinary
/// page fault). Images under kUniformMinBlockBytes, or where no such block can be made, are filled as usual.
struct SharedFill {
    explicit SharedFill() = default;
};
inline constexpr SharedFill kSharedFill{};

template <typename T>
class Image {
public:
    using Pixel = T;

    Image() = default;
    /// A width x height image with its origin at (0, 0), filled with `initial`.
    Image(int width, int height, T initial = T{});
    /// An image covering `bbox` (xy0 = bbox.min()), filled with `initial`.
    explicit Image(const Box2I& bbox, T initial = T{});
    /// A width x height image with its origin at (0, 0) whose pixels are unset (see NoFill).
    Image(int width, int height, NoFill);
    /// An image covering `bbox` whose pixels are unset (see NoFill).
    Image(const Box2I& bbox, NoFill);
    /// An image covering `bbox` filled with `value` in shared copy-on-write pages (see SharedFill).
    Image(const Box2I& bbox, T value, SharedFill);

    /// A view of the pixels of `bbox` (in the parent frame: xy0-relative coordinates) of this image.
    /// Throws LogicError if `bbox` is not inside bbox().
    Image subImage(const Box2I& bbox) const;
    /// An independent, contiguous copy of the pixels.
    Image clone() const;
    /// A copy converted to another pixel type (static_cast per pixel).
    template <typename U>
    Image<U> convertTo() const;

    int width() const { return width_; }
    int height() const { return height_; }
    /// Distance in pixels between the starts of consecutive rows.
    std::int64_t stride() const { return stride_; }
    Point2I xy0() const { return xy0_; }
    Box2I bbox() const { return Box2I(xy0_, width_, height_); }
    bool empty() const { return width_ == 0 || height_ == 0; }
    bool isContiguous() const { return stride_ == width_; }
    /// Move the origin; pixels are unchanged.
    void setXY0(Point2I xy0) { xy0_ = xy0; }
    /// True if both are views of the same pixels.
    bool sharesPixelsWith(const Image& other) const { return storage_ && storage_ == other.storage_; }

    /// Pixel at local (0-based) indices; no bounds check.
    T& operator()(int x, int y) const { return data_[std::int64_t(y) * stride_ + x]; }
    /// Pixel at local indices with a bounds check (throws LogicError).
    T& at(int x, int y) const;
    /// Pixel at a position in the parent frame (i.e. including xy0), bounds-checked.
    T& atParent(Point2I p) const { return at(p.x - xy0_.x, p.y - xy0_.y); }
    T* row(int y) const { return data_ + std::int64_t(y) * stride_; }
    T* data() const { return data_; }

    void fill(T value) const;
    /// Copy pixels from an image of the same dimensions (xy0 may differ).
    void assign(const Image& other) const;

    const Image& operator+=(T v) const;
    const Image& operator-=(T v) const;
    const Image& operator*=(T v) const;
    const Image& operator+=(const Image& o) const;
    const Image& operator-=(const Image& o) const;
    const Image& operator*=(const Image& o) const;

    /// Pixel-by-pixel equality of values and dimensions (NaN equals NaN); xy0 is compared too.
    bool identical(const Image& o) const;

private:
    void requireSameShape(const Image& o, const char* what) const;
    /// Allocate width_ x height_ pixels (zero-filled if `wantZero`); returns true if they are zero-filled.
    bool allocate(bool wantZero);

    std::shared_ptr<T[]> storage_;
    T* data_ = nullptr;
    int width_ = 0;
    int height_ = 0;
    std::int64_t stride_ = 0;
    Point2I xy0_{};
};

extern template class Image<float>;
extern template class Image<double>;
extern template class Image<std::int32_t>;
extern template class Image<std::uint16_t>;

using ImageF = Image<float>;
using ImageD = Image<double>;
using ImageI = Image<std::int32_t>;
using ImageU = Image<std::uint16_t>;

}  // namespace drp
