#include "stages/isr/IsrConfig.h"

#include <cmath>

#include "core/Error.h"
#include "core/Mask.h"

namespace drp {

namespace {

void check(bool ok, const char* owner, const char* what) {
    if (!ok) {
        std::string msg(owner);
        msg += ": ";
        msg += what;
        throw ConfigError(msg);
    }
}

}  // namespace

std::string overscanMethodName(OverscanMethod method) {
    switch (method) {
        case OverscanMethod::MeanPerRow: return "MEAN_PER_ROW";
        case OverscanMethod::MedianPerRow: return "MEDIAN_PER_ROW";
        case OverscanMethod::Polynomial: return "POLYNOMIAL";
    }
    return "UNKNOWN";
}

OverscanMethod overscanMethodFromName(const std::string& name) {
    for (OverscanMethod m : {OverscanMethod::MeanPerRow, OverscanMethod::MedianPerRow, OverscanMethod::Polynomial})
        if (overscanMethodName(m) == name) return m;
    std::string msg("unknown overscan method '");
    msg += name;
    msg += "' (MEAN_PER_ROW, MEDIAN_PER_ROW, POLYNOMIAL)";
    throw ConfigError(msg);
}

std::string interpolationMethodName(InterpolationMethod method) {
    switch (method) {
        case InterpolationMethod::RowLinear: return "ROW_LINEAR";
        case InterpolationMethod::GaussianAverage: return "GAUSSIAN_AVERAGE";
    }
    return "UNKNOWN";
}

InterpolationMethod interpolationMethodFromName(const std::string& name) {
    for (InterpolationMethod m : {InterpolationMethod::RowLinear, InterpolationMethod::GaussianAverage})
        if (interpolationMethodName(m) == name) return m;
    std::string msg("unknown interpolation method '");
    msg += name;
    msg += "' (ROW_LINEAR, GAUSSIAN_AVERAGE)";
    throw ConfigError(msg);
}

void IsrConfig::validate() const {
    const char* o = "IsrConfig";
    check(overscanOrder >= 0 && overscanOrder <= 20, o, "overscanOrder must be in [0, 20]");
    check(overscanSkipLeading >= 0, o, "overscanSkipLeading must be >= 0");
    check(overscanSkipTrailing >= 0, o, "overscanSkipTrailing must be >= 0");
    check(overscanClipSigma > 0 && std::isfinite(overscanClipSigma), o, "overscanClipSigma must be > 0");
    check(flatMinValue >= 0 && flatMinValue < 1, o, "flatMinValue must be in [0, 1)");
    check(!doFringe, o, "doFringe: fringe subtraction is not implemented (must be false)");
    check(saturationGrow >= 0 && saturationGrow <= 100, o, "saturationGrow must be in [0, 100]");
    check(interpolationSigma > 0 && interpolationSigma <= 20, o, "interpolationSigma must be in (0, 20]");
    check(interpolationMaxWidth >= 1, o, "interpolationMaxWidth must be >= 1");
    const auto& planes = defaultMaskPlanes();
    for (const auto& p : interpolateMaskPlanes) {
        bool known = false;
        for (const auto& q : planes) known = known || q == p;
        if (!known) {
            std::string msg("IsrConfig: interpolateMaskPlanes: unknown mask plane '");
            msg += p;
            msg += "'";
            throw ConfigError(msg);
        }
    }
}

void MasterConfig::validate() const {
    const char* o = "MasterConfig";
    check(clipSigma > 0 && std::isfinite(clipSigma), o, "clipSigma must be > 0");
    check(maxIterations >= 1 && maxIterations <= 100, o, "maxIterations must be in [1, 100]");
    check(minInputs >= 1, o, "minInputs must be >= 1");
    check(minKept >= 1, o, "minKept must be >= 1");
}

void DefectConfig::validate() const {
    const char* o = "DefectConfig";
    check(flatLowRatio > 0 && flatLowRatio < 1, o, "flatLowRatio must be in (0, 1)");
    check(flatHighRatio == 0 || (flatHighRatio > 1 && std::isfinite(flatHighRatio)), o,
          "flatHighRatio must be 0 (disabled) or > 1");
    check(localBoxSize >= 4 && localBoxSize <= 4096, o, "localBoxSize must be in [4, 4096]");
    check(hotSigma > 0 && std::isfinite(hotSigma), o, "hotSigma must be > 0");
    check(hotMinExcessEPerS >= 0 && std::isfinite(hotMinExcessEPerS), o, "hotMinExcessEPerS must be >= 0");
    check(columnGap >= 0 && columnGap <= 100, o, "columnGap must be in [0, 100]");
}

}  // namespace drp
