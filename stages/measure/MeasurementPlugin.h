// MeasurementPlugin: one measurement algorithm of single-frame measurement (the meas_base design).
//
// A plugin registers its columns (name, type, unit, doc) in the schema when it is constructed and keeps
// the keys. measure() fills its columns of one row; a per-source problem (edge, no good pixels, no
// convergence, NaN data) is data: it sets the plugin's documented flag columns, writes NaN values and
// returns. A plugin never throws for bad pixels; if anything else it calls throws, the framework
// (SingleFrameMeasurement) calls fail() for that row (the general flag, NaN values) and goes on. Only a
// FatalMeasurementError (e.g. a plugin that needs a PSF run on an exposure without one) escapes.
//
// MeasurementContext: what a plugin sees of one source. The centroid, its errors and the source's
// adaptive moments are results of earlier plugins that later ones use; plugins receive the context by
// const reference, so those members are `mutable` (filled by the "centroid" and "shape" plugins).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "core/Error.h"
#include "core/Exposure.h"
#include "core/Footprint.h"
#include "core/Table.h"
#include "stages/measure/AdaptiveMoments.h"
#include "stages/measure/MeasurementConfig.h"
#include "stages/measure/PixelRows.h"

namespace drp {

/// A per-source failure that a plugin may throw instead of setting flags itself; the framework sets the
/// plugin's general flag and goes on.
class MeasurementError : public Error {
public:
    using Error::Error;
    const char* kind() const noexcept override { return "MeasurementError"; }
};

/// An error that makes measuring the whole exposure meaningless; escapes SingleFrameMeasurement.
class FatalMeasurementError : public Error {
public:
    using Error::Error;
    const char* kind() const noexcept override { return "FatalMeasurementError"; }
};

struct MeasurementContext {
    MeasurementContext(const Exposure& exposure_, const Footprint& footprint_, const PeakRecord& peak_,
                       const MeasurementConfig& config_, MaskPixel badBits_);

    const Exposure& exposure;
    const Footprint& footprint;   ///< the (parent) footprint the peak belongs to
    const PeakRecord& peak;
    const MeasurementConfig& config;
    MaskPixel badBits;            ///< mask bits that make a pixel unusable (config.badMaskPlanes)

    /// The position later plugins measure at: the peak position until the "centroid" plugin replaces it.
    mutable Point2D centroid;
    /// Errors of the centroid (pixels; NaN when taken from the peak or when the centroid failed).
    mutable double centroidXErr = std::numeric_limits<double>::quiet_NaN();
    mutable double centroidYErr = std::numeric_limits<double>::quiet_NaN();
    mutable double centroidXYCov = std::numeric_limits<double>::quiet_NaN();
    /// The source's adaptive moments (pixels^2), set by the "shape" plugin when it succeeds.
    mutable std::optional<SecondMoments> shape;

    /// True if (ix, iy) (parent frame) is inside the exposure and usable (usablePixel: finite value,
    /// finite variance >= 0, no bad bit).
    bool usable(int x, int y) const;
    /// The PSF determinant radius at the centroid (pixels), or config.defaultPsfSigma without a PSF.
    double psfSigma() const;
    /// The PSF image at the current centroid (Psf::computeImage; parent frame, sums to 1), computed once
    /// per centroid and cached; nullptr without a PSF or if the PSF cannot be evaluated there.
    const ImageD* psfImage() const;

private:
    mutable std::optional<Point2D> psfImagePosition_;
    mutable ImageD psfImage_;
    mutable bool psfImageValid_ = false;
    mutable std::optional<Point2D> psfSigmaPosition_;
    mutable double psfSigma_ = 0.0;
};

class MeasurementPlugin {
public:
    virtual ~MeasurementPlugin();
    MeasurementPlugin() = default;
    MeasurementPlugin(const MeasurementPlugin&) = delete;
    MeasurementPlugin& operator=(const MeasurementPlugin&) = delete;

    /// The plugin name (the config name, also the prefix of its flag columns).
    virtual const std::string& name() const = 0;
    /// Measure one source into `row` of `table` (whose schema extends the one this plugin registered in).
    virtual void measure(const MeasurementContext& context, Table& table, std::size_t row) const = 0;
    /// Mark `row` as failed: the general flag set, every value NaN. Called by the framework when measure()
    /// throws anything but a FatalMeasurementError.
    virtual void fail(const MeasurementContext& context, Table& table, std::size_t row) const = 0;
    /// True if the plugin cannot run without a PSF (the framework then refuses an exposure with none).
    virtual bool requiresPsf() const { return false; }
};

/// NaN of the right type for a float or double column.
inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace drp
