// PsfFluxPlugin ("psfFlux"): the amplitude of the PSF model at the centroid (Psf::computeImage, unit sum)
// fitted to the pixels of the PSF image's box by linear least squares (DPDD psFlux, psChi2, psNdata):
//     weights w_i = 1 / V_i (config.psfFluxUseVarianceWeights; else w_i = 1),
//     psfFlux    = sum w P d / sum w P^2,
//     psfFluxErr = sqrt(sum w^2 P^2 V) / sum w P^2   (= 1 / sqrt(sum P^2 / V) when weighted),
//     psfChi2    = sum (d - psfFlux P)^2 / V,  psfNdata = number of pixels used.
// Pixels used: inside the image, usable (MeasurementContext::usable) and, when weighted, with V > 0.
// The flux is the total flux of the PSF model (no aperture correction: see ApertureCorrection.h, which
// fills apCorr and rescales psfFlux and psfFluxErr).
//
// With the same pixels (V > 0): psfLnL = -psfChi2 / 2 - sum ln(2 pi V) / 2 (DPDD psLnL, in the image's
// units), and the point-source model covariance (DPDD psCov) from the Fisher matrix of (flux, x, y) with
// derivatives P, -psfFlux dP/dx, -psfFlux dP/dy: psf_xErr, psf_yErr, psf_x_y_Cov, psfFlux_x_Cov,
// psfFlux_y_Cov (the flux variance is psfFluxErr^2; for a symmetric PSF the flux decouples from x, y).
//
// Columns: psfFlux, psfFluxErr (config.fluxUnit), psfChi2, psfNdata (int32), apCorr, psfLnL, psf_xErr,
// psf_yErr (pixel), psf_x_y_Cov (pixel^2), psfFlux_x_Cov, psfFlux_y_Cov (config.fluxUnit pixel);
//   psfFlux_flag               failure, or a partial fit (edge): check the specific flags
//   psfFlux_flag_edge          the PSF box crossed the image edge (fitted to the pixels inside)
//   psfFlux_flag_noGoodPixels  no usable pixel, or the used pixels hold < 20% of the PSF (values NaN)
#pragma once

#include "stages/measure/MeasurementPlugin.h"

namespace drp {

class PsfFluxPlugin final : public MeasurementPlugin {
public:
    PsfFluxPlugin(Schema& schema, const MeasurementConfig& config);
    const std::string& name() const override;
    void measure(const MeasurementContext& context, Table& table, std::size_t row) const override;
    void fail(const MeasurementContext& context, Table& table, std::size_t row) const override;
    bool requiresPsf() const override { return true; }

private:
    Key<double> flux_, fluxErr_, chi2_, lnL_, xErr_, yErr_, xyCov_, fluxXCov_, fluxYCov_, apCorr_;
    Key<std::int32_t> ndata_;
    Key<bool> flag_, edge_, noGoodPixels_;
};

}  // namespace drp
