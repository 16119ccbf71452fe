#include "core/Exposure.h"

namespace drp {

Exposure Exposure::subExposure(const Box2I& bbox) const {
    Exposure out(*this);
    out.maskedImage_ = maskedImage_.subImage(bbox);
    return out;
}

Exposure Exposure::clone() const {
    Exposure out(*this);
    out.maskedImage_ = maskedImage_.clone();
    return out;
}

}  // namespace drp
