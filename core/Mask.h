// Mask: an int32 image whose bits are named planes (BAD, SAT, ...). Planes can be added at run time;
// all views of one mask share the same plane dictionary.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/Image.h"

namespace drp {

using MaskPixel = std::int32_t;

/// The ordered plane names every mask starts with (bit i is the i-th name).
const std::vector<std::string>& defaultMaskPlanes();

/// Plane name -> bit index. Shared (by pointer) among all views of a mask.
class MaskPlaneDict {
public:
    MaskPlaneDict();
    /// The bit of `name`, adding the plane if it is new. Throws LogicError when 31 planes are used.
    int add(const std::string& name);
    /// The bit of `name`; throws NotFoundError if there is no such plane.
    int bit(const std::string& name) const;
    bool has(const std::string& name) const { return bits_.count(name) > 0; }
    const std::map<std::string, int>& planes() const { return bits_; }

private:
    std::map<std::string, int> bits_;
};

class Mask : public Image<MaskPixel> {
public:
    Mask() : planes_(std::make_shared<MaskPlaneDict>()) {}
    Mask(int width, int height) : Image(width, height, 0), planes_(std::make_shared<MaskPlaneDict>()) {}
    explicit Mask(const Box2I& bbox) : Image(bbox, 0), planes_(std::make_shared<MaskPlaneDict>()) {}
    /// Wrap pixels with a given plane dictionary (used by readers and sub-views).
    Mask(const Image<MaskPixel>& pixels, std::shared_ptr<MaskPlaneDict> planes)
        : Image(pixels), planes_(std::move(planes)) {}

    Mask subImage(const Box2I& bbox) const { return Mask(Image::subImage(bbox), planes_); }
    /// Deep copy of pixels and of the plane dictionary.
    Mask clone() const { return Mask(Image::clone(), std::make_shared<MaskPlaneDict>(*planes_)); }

    int addPlane(const std::string& name) { return planes_->add(name); }
    MaskPixel planeBitMask(const std::string& name) const { return MaskPixel(1u << planes_->bit(name)); }
    MaskPixel planeBitMask(const std::vector<std::string>& names) const;
    /// The bits of those of `names` the mask has (the others are skipped, not an error): a configured list of
    /// planes to ignore or exclude.
    MaskPixel planeBitMaskIfPresent(const std::vector<std::string>& names) const;
    const std::map<std::string, int>& planes() const { return planes_->planes(); }
    const std::shared_ptr<MaskPlaneDict>& planeDict() const { return planes_; }

    /// OR `bits` into every pixel of the view.
    void setBits(MaskPixel bits) const;
    /// Number of pixels with any of `bits` set.
    std::int64_t countBits(MaskPixel bits) const;

private:
    std::shared_ptr<MaskPlaneDict> planes_;
};

}  // namespace drp
