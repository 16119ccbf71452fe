#include "core/MaskedImage.h"

#include "core/Error.h"

namespace drp {

template <typename T>
MaskedImage<T>::MaskedImage(Image<T> image, Mask mask, Image<VariancePixel> variance)
    : image_(std::move(image)), mask_(std::move(mask)), variance_(std::move(variance)) {
    if (!(image_.bbox() == mask_.bbox()) || !(image_.bbox() == variance_.bbox())) {
        throw LogicError("MaskedImage planes differ in dimensions or origin");
    }
}

template <typename T>
void MaskedImage<T>::setXY0(Point2I p) {
    image_.setXY0(p);
    mask_.setXY0(p);
    variance_.setXY0(p);
}

template <typename T>
MaskedImage<T> MaskedImage<T>::subImage(const Box2I& box) const {
    return MaskedImage(image_.subImage(box), mask_.subImage(box), variance_.subImage(box));
}

template <typename T>
MaskedImage<T> MaskedImage<T>::clone() const {
    return MaskedImage(image_.clone(), mask_.clone(), variance_.clone());
}

template <typename T>
bool MaskedImage<T>::identical(const MaskedImage& o) const {
    return image_.identical(o.image_) && mask_.identical(o.mask_) && variance_.identical(o.variance_) &&
           mask_.planes() == o.mask_.planes();
}

template class MaskedImage<float>;
template class MaskedImage<double>;

}  // namespace drp
