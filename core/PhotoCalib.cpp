#include "core/PhotoCalib.h"

#include <cmath>
#include <limits>
#include <numbers>

#include "core/Error.h"

namespace drp {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
// 2.5 / ln(10): d(mag) / d(ln flux)
const double kMagPerLn = 2.5 / std::numbers::ln10;
}  // namespace

double PhotoCalib::abMagnitudeOfOneNanojansky() {
    static const double v = 2.5 * std::log10(3631.0e9);
    return v;
}

PhotoCalib::PhotoCalib(double calibrationMean, double calibrationErr) : mean_(calibrationMean), err_(calibrationErr) {
    if (!(calibrationMean > 0.0) || !std::isfinite(calibrationMean)) {
        throw InvalidInputError("PhotoCalib: the calibration mean must be positive and finite");
    }
    if (!(calibrationErr >= 0.0) || !std::isfinite(calibrationErr)) {
        throw InvalidInputError("PhotoCalib: the calibration error must be non-negative and finite");
    }
}

PhotoCalib PhotoCalib::fromZeroPoint(double zeroPointMag, double zeroPointErr) {
    const double mean = abMagnitudeToNanojansky(zeroPointMag);
    return PhotoCalib(mean, mean * zeroPointErr / kMagPerLn);
}

double PhotoCalib::zeroPoint() const { return nanojanskyToAbMagnitude(mean_); }

Measurement PhotoCalib::instFluxToNanojansky(double instFlux, double instFluxErr) const {
    return {instFlux * mean_, std::hypot(instFluxErr * mean_, instFlux * err_)};
}

Measurement PhotoCalib::instFluxToMagnitude(double instFlux, double instFluxErr) const {
    const Measurement f = instFluxToNanojansky(instFlux, instFluxErr);
    return nanojanskyToAbMagnitude(f.value, f.error);
}

double PhotoCalib::nanojanskyToAbMagnitude(double nJy) {
    if (!(nJy > 0.0)) return kNaN;
    return abMagnitudeOfOneNanojansky() - 2.5 * std::log10(nJy);
}

Measurement PhotoCalib::nanojanskyToAbMagnitude(double nJy, double nJyErr) {
    return {nanojanskyToAbMagnitude(nJy), nJy > 0.0 ? kMagPerLn * nJyErr / nJy : kNaN};
}

double PhotoCalib::abMagnitudeToNanojansky(double mag) {
    return std::pow(10.0, -0.4 * (mag - abMagnitudeOfOneNanojansky()));
}

Measurement PhotoCalib::abMagnitudeToNanojansky(double mag, double magErr) {
    const double f = abMagnitudeToNanojansky(mag);
    return {f, f * magErr / kMagPerLn};
}

PropertyList PhotoCalib::toMetadata() const {
    PropertyList md;
    md.set("CALIBMN", mean_, "[nJy/ADU] photometric calibration mean");
    md.set("CALIBERR", err_, "[nJy/ADU] photometric calibration error");
    md.set("MAGZERO", zeroPoint(), "[mag] AB magnitude of 1 ADU (from CALIBMN)");
    return md;
}

std::optional<PhotoCalib> PhotoCalib::fromMetadata(const PropertyList& md) {
    if (!md.has("CALIBMN")) return std::nullopt;
    try {
        return PhotoCalib(md.getDouble("CALIBMN"), md.getDouble("CALIBERR", 0.0));
    } catch (const LogicError&) {
        throw InvalidInputError("PhotoCalib: CALIBMN/CALIBERR are not numbers");
    }
}

const std::vector<std::string>& PhotoCalib::metadataKeys() {
    static const std::vector<std::string> keys = {"CALIBMN", "CALIBERR", "MAGZERO"};
    return keys;
}

}  // namespace drp
