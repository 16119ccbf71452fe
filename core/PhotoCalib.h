// PhotoCalib: the photometric calibration of an exposure, a spatially constant factor converting
// instrumental flux (ADU, counts) to calibrated flux in nanojansky, with its uncertainty.
// AB magnitudes: m = -2.5 log10(f / 3631 Jy) = 31.4 - 2.5 log10(f / nJy).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "core/PropertyList.h"

namespace drp {

/// A value and its standard error.
struct Measurement {
    double value = 0.0;
    double error = 0.0;
    friend bool operator==(const Measurement&, const Measurement&) = default;
};

class PhotoCalib {
public:
    /// The AB magnitude of 1 nJy: 2.5 log10(3631e9) = 31.40004...
    static double abMagnitudeOfOneNanojansky();

    /// @param calibrationMean nJy per ADU (> 0, finite); @param calibrationErr its standard error (>= 0)
    explicit PhotoCalib(double calibrationMean, double calibrationErr = 0.0);
    /// From the AB magnitude of a source of 1 ADU (the instrumental zero point).
    static PhotoCalib fromZeroPoint(double zeroPointMag, double zeroPointErr = 0.0);

    double calibrationMean() const { return mean_; }
    double calibrationErr() const { return err_; }
    /// The AB magnitude of a source of 1 ADU.
    double zeroPoint() const;

    double instFluxToNanojansky(double instFlux) const { return instFlux * mean_; }
    /// error^2 = (instFluxErr * mean)^2 + (instFlux * calibrationErr)^2
    Measurement instFluxToNanojansky(double instFlux, double instFluxErr) const;
    double nanojanskyToInstFlux(double nJy) const { return nJy / mean_; }

    double instFluxToMagnitude(double instFlux) const { return nanojanskyToAbMagnitude(instFluxToNanojansky(instFlux)); }
    Measurement instFluxToMagnitude(double instFlux, double instFluxErr) const;
    double magnitudeToInstFlux(double mag) const { return nanojanskyToInstFlux(abMagnitudeToNanojansky(mag)); }

    /// AB magnitude of a flux in nJy (NaN for flux <= 0).
    static double nanojanskyToAbMagnitude(double nJy);
    /// Magnitude error = 2.5 / ln(10) * fluxErr / flux.
    static Measurement nanojanskyToAbMagnitude(double nJy, double nJyErr);
    static double abMagnitudeToNanojansky(double mag);
    static Measurement abMagnitudeToNanojansky(double mag, double magErr);

    /// FITS-safe keys: CALIBMN (nJy/ADU), CALIBERR, and (informational, not read back) MAGZERO.
    PropertyList toMetadata() const;
    /// Empty if there is no CALIBMN key; InvalidInputError if it is not a positive number.
    static std::optional<PhotoCalib> fromMetadata(const PropertyList& md);
    /// The keys toMetadata writes (so a reader can strip them from generic metadata).
    static const std::vector<std::string>& metadataKeys();

    friend bool operator==(const PhotoCalib&, const PhotoCalib&) = default;

private:
    double mean_;
    double err_;
};

}  // namespace drp
