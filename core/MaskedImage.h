// MaskedImage<T>: image, mask and variance planes of the same shape and origin.
#pragma once

#include "core/Mask.h"

namespace drp {

template <typename T>
class MaskedImage {
public:
    using VariancePixel = float;

    MaskedImage() = default;
    MaskedImage(int width, int height) : MaskedImage(Box2I({0, 0}, width, height)) {}
    explicit MaskedImage(const Box2I& bbox) : image_(bbox, T{}), mask_(bbox), variance_(bbox, 0.0f) {}
    /// Assemble from planes; throws LogicError unless they share dimensions and xy0.
    MaskedImage(Image<T> image, Mask mask, Image<VariancePixel> variance);

    const Image<T>& image() const { return image_; }
    const Mask& mask() const { return mask_; }
    Mask& mask() { return mask_; }
    const Image<VariancePixel>& variance() const { return variance_; }

    int width() const { return image_.width(); }
    int height() const { return image_.height(); }
    Box2I bbox() const { return image_.bbox(); }
    Point2I xy0() const { return image_.xy0(); }
    void setXY0(Point2I p);

    /// A view of `bbox` (parent frame) sharing pixels with this one.
    MaskedImage subImage(const Box2I& bbox) const;
    MaskedImage clone() const;
    bool identical(const MaskedImage& o) const;

private:
    Image<T> image_;
    Mask mask_;
    Image<VariancePixel> variance_;
};

extern template class MaskedImage<float>;
extern template class MaskedImage<double>;

using MaskedImageF = MaskedImage<float>;
using MaskedImageD = MaskedImage<double>;

}  // namespace drp
