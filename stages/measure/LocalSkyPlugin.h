// LocalSkyPlugin ("sky"): the local background per pixel in an annulus about the centroid
// (config.skyInnerRadius < r <= config.skyOuterRadius, pixel centres), from the usable pixels that carry
// none of config.skyExcludeMaskPlanes (default DETECTED: other sources). Estimate: start from the median
// and 1.4826 MAD, then config.skyClipIter iterations of clipping at config.skyClipSigma keeping the mean
// and standard deviation s of the kept pixels:
//     sky = clipped mean (image units per pixel), skyErr = s / sqrt(n) (its standard error).
// The image is assumed background-subtracted, so sky is the residual background at the source. The
// driver converts to nJy/arcsec^2 (DPDD sky, skyErr) with the calibration and the pixel area.
//
// Columns: sky, skyErr (config.fluxUnit/pixel), sky_flag (failure: values NaN),
//   sky_flag_noGoodPixels (fewer than config.skyMinPixels usable pixels), sky_flag_edge (the annulus
//   crosses the image edge; not a failure by itself)
#pragma once

#include <string>
#include <vector>

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class LocalSkyPlugin final : public MeasurementPlugin {
public:
    LocalSkyPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;

private:
    Key<double> sky_, skyErr_;
    Key<bool> flag_, noGoodPixels_, edge_;
    std::vector<std::string> excludePlanes_;
};

}  // namespace drp
