#include "core/Mask.h"

#include "core/Error.h"

namespace drp {

const std::vector<std::string>& defaultMaskPlanes() {
    static const std::vector<std::string> names = {"BAD",       "SAT",     "INTRP",   "CR",      "EDGE",
                                                   "DETECTED",  "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA",
                                                   "CLIPPED"};
    return names;
}

MaskPlaneDict::MaskPlaneDict() {
    for (const auto& n : defaultMaskPlanes()) add(n);
}

int MaskPlaneDict::add(const std::string& name) {
    if (auto it = bits_.find(name); it != bits_.end()) return it->second;
    if (name.empty()) throw LogicError("a mask plane needs a name");
    int next = 0;
    for (const auto& [n, b] : bits_) next = std::max(next, b + 1);
    if (next >= 31) throw LogicError("no free bit for mask plane '" + name + "': 31 planes are in use");
    bits_[name] = next;
    return next;
}

int MaskPlaneDict::bit(const std::string& name) const {
    auto it = bits_.find(name);
    if (it == bits_.end()) throw NotFoundError("no mask plane named '" + name + "'");
    return it->second;
}

MaskPixel Mask::planeBitMask(const std::vector<std::string>& names) const {
    MaskPixel bits = 0;
    for (const auto& n : names) bits |= planeBitMask(n);
    return bits;
}

MaskPixel Mask::planeBitMaskIfPresent(const std::vector<std::string>& names) const {
    MaskPixel bits = 0;
    for (const auto& n : names)
        if (planes_->has(n)) bits |= planeBitMask(n);
    return bits;
}

void Mask::setBits(MaskPixel bits) const {
    for (int y = 0; y < height(); ++y) {
        MaskPixel* r = row(y);
        for (int x = 0; x < width(); ++x) r[x] |= bits;
    }
}

std::int64_t Mask::countBits(MaskPixel bits) const {
    std::int64_t n = 0;
    for (int y = 0; y < height(); ++y) {
        const MaskPixel* r = row(y);
        for (int x = 0; x < width(); ++x) n += (r[x] & bits) != 0;
    }
    return n;
}

}  // namespace drp
