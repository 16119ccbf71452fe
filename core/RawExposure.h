// RawExposure: one detector's raw readout as the camera delivers it — one integer ADU image per
// amplifier in the raw amplifier frame (data + prescan + serial and parallel overscan), before any
// instrument signature removal.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/Camera.h"
#include "core/Image.h"
#include "core/PropertyList.h"
#include "core/VisitInfo.h"
#include "core/Wcs.h"

namespace drp {

struct RawExposure {
    /// Id of the Detector this readout comes from.
    int detectorId = -1;
    /// One image per amplifier, in Detector::amplifiers() order. Each covers the amplifier's
    /// Amplifier::rawBBox (raw frame, origin (0, 0) = the first pixel read); values are ADU in
    /// [0, 65535] (the range of the 16-bit ADC).
    std::vector<Image<std::int32_t>> amplifiers;
    /// Free-form header cards (e.g. IMGTYPE). Keys owned by the FITS writer (VisitInfo keys, WCS keys,
    /// DETECTOR, DETNAME, DETSIZE) must not be stored here: the typed members win.
    PropertyList metadata;
    /// Timing, pointing and identifiers of the exposure.
    VisitInfo visitInfo;
    /// The telescope's idea of the WCS (assembled detector frame); may be null.
    std::shared_ptr<const Wcs> headerWcs;

    /// Throws InvalidInputError (naming the detector) unless detectorId matches, there is one image per
    /// amplifier, each covers exactly Amplifier::rawBBox, and every value lies in [0, 65535].
    void validate(const Detector& detector) const;
    /// The data pixels of every amplifier, assembled into the detector frame (Detector::bbox()).
    /// Calls validate() first.
    Image<std::int32_t> assembleData(const Detector& detector) const;
};

}  // namespace drp
