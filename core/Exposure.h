// Exposure: a calibrated (or raw) image of one detector with everything needed to interpret it:
// MaskedImage<float> pixels, the WCS, the PSF, the photometric calibration, the visit information,
// free-form metadata and the detector id. Wcs, Psf and PhotoCalib are immutable and shared.
#pragma once

#include <memory>
#include <optional>

#include "core/MaskedImage.h"
#include "core/PhotoCalib.h"
#include "core/PropertyList.h"
#include "core/Psf.h"
#include "core/VisitInfo.h"
#include "core/Wcs.h"

namespace drp {

class Exposure {
public:
    Exposure() = default;
    Exposure(int width, int height) : maskedImage_(width, height) {}
    explicit Exposure(const Box2I& bbox) : maskedImage_(bbox) {}
    explicit Exposure(MaskedImageF maskedImage, std::shared_ptr<const Wcs> wcs = {},
                      std::shared_ptr<const Psf> psf = {})
        : maskedImage_(std::move(maskedImage)), wcs_(std::move(wcs)), psf_(std::move(psf)) {}

    const MaskedImageF& maskedImage() const { return maskedImage_; }
    MaskedImageF& maskedImage() { return maskedImage_; }
    const ImageF& image() const { return maskedImage_.image(); }
    const Mask& mask() const { return maskedImage_.mask(); }
    Mask& mask() { return maskedImage_.mask(); }
    const ImageF& variance() const { return maskedImage_.variance(); }
    void setMaskedImage(MaskedImageF mi) { maskedImage_ = std::move(mi); }

    int width() const { return maskedImage_.width(); }
    int height() const { return maskedImage_.height(); }
    Box2I bbox() const { return maskedImage_.bbox(); }
    Point2I xy0() const { return maskedImage_.xy0(); }

    const std::shared_ptr<const Wcs>& wcs() const { return wcs_; }
    bool hasWcs() const { return wcs_ != nullptr; }
    void setWcs(std::shared_ptr<const Wcs> wcs) { wcs_ = std::move(wcs); }

    const std::shared_ptr<const Psf>& psf() const { return psf_; }
    bool hasPsf() const { return psf_ != nullptr; }
    void setPsf(std::shared_ptr<const Psf> psf) { psf_ = std::move(psf); }

    const std::shared_ptr<const PhotoCalib>& photoCalib() const { return photoCalib_; }
    bool hasPhotoCalib() const { return photoCalib_ != nullptr; }
    void setPhotoCalib(std::shared_ptr<const PhotoCalib> calib) { photoCalib_ = std::move(calib); }

    const VisitInfo& visitInfo() const { return visitInfo_; }
    void setVisitInfo(VisitInfo info) { visitInfo_ = std::move(info); }

    const PropertyList& metadata() const { return metadata_; }
    PropertyList& metadata() { return metadata_; }
    void setMetadata(PropertyList md) { metadata_ = std::move(md); }

    const std::optional<int>& detector() const { return detector_; }
    void setDetector(std::optional<int> id) { detector_ = id; }

    /// A view of `bbox` (parent frame): shares pixels with this exposure; the Wcs and Psf (defined in
    /// the parent frame) are shared unchanged; metadata and visit info are copied.
    /// Throws LogicError if `bbox` is not inside bbox().
    Exposure subExposure(const Box2I& bbox) const;
    /// A deep copy of the pixels and of the mutable parts; immutable Wcs/Psf/PhotoCalib stay shared.
    Exposure clone() const;

private:
    MaskedImageF maskedImage_;
    std::shared_ptr<const Wcs> wcs_;
    std::shared_ptr<const Psf> psf_;
    std::shared_ptr<const PhotoCalib> photoCalib_;
    VisitInfo visitInfo_;
    PropertyList metadata_;
    std::optional<int> detector_;
};

}  // namespace drp
