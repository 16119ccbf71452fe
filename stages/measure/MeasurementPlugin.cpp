#include "stages/measure/MeasurementPlugin.h"

#include <cmath>

namespace drp {

MeasurementPlugin::~MeasurementPlugin() = default;

MeasurementContext::MeasurementContext(const Exposure& exposure_, const Footprint& footprint_,
                                       const PeakRecord& peak_, const MeasurementConfig& config_, MaskPixel badBits_)
    : exposure(exposure_), footprint(footprint_), peak(peak_), config(config_), badBits(badBits_),
      centroid{peak_.x, peak_.y} {}

bool MeasurementContext::usable(int x, int y) const {
    const Box2I box = exposure.bbox();
    if (!box.contains(Point2I{x, y})) return false;
    const int lx = x - box.minX(), ly = y - box.minY();
    return usablePixel(exposure.image()(lx, ly), exposure.variance()(lx, ly), exposure.mask()(lx, ly), badBits);
}

double MeasurementContext::psfSigma() const {
    if (psfSigmaPosition_ && *psfSigmaPosition_ == centroid) return psfSigma_;
    double s = config.defaultPsfSigma;
    if (exposure.hasPsf() && std::isfinite(centroid.x) && std::isfinite(centroid.y)) {
        try {
            const double v = exposure.psf()->computeSigma(centroid);
            if (std::isfinite(v) && v > 0) s = v;
        } catch (const std::exception&) {
            // keep the default: a PSF that cannot be evaluated here is reported by the PSF plugins
        }
    }
    psfSigmaPosition_ = centroid;
    psfSigma_ = s;
    return s;
}

const ImageD* MeasurementContext::psfImage() const {
    if (psfImagePosition_ && *psfImagePosition_ == centroid) return psfImageValid_ ? &psfImage_ : nullptr;
    psfImagePosition_ = centroid;
    psfImageValid_ = false;
    if (!exposure.hasPsf() || !std::isfinite(centroid.x) || !std::isfinite(centroid.y)) return nullptr;
    try {
        psfImage_ = exposure.psf()->computeImage(centroid);
        psfImageValid_ = !psfImage_.empty();
    } catch (const std::exception&) {
        psfImageValid_ = false;
    }
    return psfImageValid_ ? &psfImage_ : nullptr;
}

}  // namespace drp
