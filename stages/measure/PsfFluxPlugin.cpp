#include "stages/measure/PsfFluxPlugin.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <tuple>
#include <vector>

namespace drp {

PsfFluxPlugin::PsfFluxPlugin(Schema& schema, const MeasurementConfig& config) {
    flux_ = schema.addField<double>("psfFlux", "flux of the PSF model fitted at the centroid (instrumental)",
                                    config.fluxUnit);
    fluxErr_ = schema.addField<double>("psfFluxErr", "standard error of psfFlux from the variance plane", config.fluxUnit);
    chi2_ = schema.addField<double>("psfChi2", "chi^2 of the PSF-model fit over the pixels used");
    ndata_ = schema.addField<std::int32_t>("psfNdata", "number of pixels used in the PSF-model fit");
    lnL_ = schema.addField<double>("psfLnL",
                                   "ln likelihood of the pixels given the fitted PSF model: -chi2/2 - sum ln(2 pi V)/2");
    xErr_ = schema.addField<double>("psf_xErr", "point-source model: standard error of x (Fisher matrix)", "pixel");
    yErr_ = schema.addField<double>("psf_yErr", "point-source model: standard error of y (Fisher matrix)", "pixel");
    xyCov_ = schema.addField<double>("psf_x_y_Cov", "point-source model: covariance of x and y", "pixel^2");
    fluxXCov_ = schema.addField<double>("psfFlux_x_Cov", "point-source model: covariance of psfFlux and x",
                                        config.fluxUnit + " pixel");
    fluxYCov_ = schema.addField<double>("psfFlux_y_Cov", "point-source model: covariance of psfFlux and y",
                                        config.fluxUnit + " pixel");
    apCorr_ = schema.addField<double>("apCorr",
                                      "aperture correction applied to psfFlux and psfFluxErr (NaN: not applied)");
    flag_ = schema.addField<bool>("psfFlux_flag", "PSF flux failed, or fitted to a partial PSF box (edge)");
    edge_ = schema.addField<bool>("psfFlux_flag_edge", "the PSF box crossed the image edge");
    noGoodPixels_ = schema.addField<bool>("psfFlux_flag_noGoodPixels",
                                          "no usable pixel, or the usable pixels hold < 20% of the PSF");
}

const std::string& PsfFluxPlugin::name() const {
    static const std::string n = "psfFlux";
    return n;
}

void PsfFluxPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    table.column(apCorr_)[row] = kNaN;
    const ImageD* psf = ctx.psfImage();
    if (psf == nullptr) {
        fail(ctx, table, row);
        return;
    }
    const bool weighted = ctx.config.psfFluxUseVarianceWeights;
    const Box2I img = ctx.exposure.bbox();
    const Box2I box = psf->bbox().intersection(img);
    const bool edge = !(box == psf->bbox());
    double spd = 0, spp = 0, sppv = 0, spUsed = 0;
    long n = 0;
    const ImageF& image = ctx.exposure.image();
    const ImageF& variance = ctx.exposure.variance();
    const Mask& mask = ctx.exposure.mask();
    // Row y's PSF, image, variance and mask pointers at the box's first column.
    auto rowsAt = [&](int y) {
        const int ox = box.minX() - img.minX(), oy = y - img.minY();
        return std::tuple(psf->row(y - psf->xy0().y) + (box.minX() - psf->xy0().x), image.row(oy) + ox, variance.row(oy) + ox,
                          mask.row(oy) + ox);
    };
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const auto [prow, drow, vrow, mrow] = rowsAt(y);
        for (int x = 0; x < box.width(); ++x) {
            if (!usablePixel(drow[x], vrow[x], mrow[x], ctx.badBits)) continue;
            const double d = drow[x], v = vrow[x], p = prow[x];
            if (weighted && !(v > 0)) continue;
            const double w = weighted ? 1.0 / v : 1.0;
            spd += w * p * d;
            spp += w * p * p;
            sppv += w * w * p * p * v;
            spUsed += p;
            ++n;
        }
    }
    table.column(edge_)[row] = edge;
    if (n == 0 || !(spp > 0) || spUsed < 0.2) {
        for (auto k : {flux_, fluxErr_, chi2_, lnL_, xErr_, yErr_, xyCov_, fluxXCov_, fluxYCov_}) table.column(k)[row] = kNaN;
        table.column(ndata_)[row] = std::int32_t(n);
        table.column(flag_)[row] = true;
        table.column(noGoodPixels_)[row] = true;
        return;
    }
    const double flux = spd / spp;
    // chi^2 = sum (d - f p)^2 / V, evaluated in a second pass (cheap: the PSF box only), with the
    // normalisation of the likelihood and the Fisher matrix of (flux, x, y): the model's derivatives are
    // P, -f dP/dx, -f dP/dy (central differences of the PSF image; one-sided at its edge).
    double chi2 = 0, sumLnV = 0;
    // log(2 pi v) of the previous pixel: a flat or smooth variance plane repeats values, so most pixels
    // reuse it (the same bits as calling log again).
    double lastV = std::numeric_limits<double>::quiet_NaN(), lastLn = 0.0;
    double F[3][3] = {};
    double f00 = 0, f01 = 0, f02 = 0, f11 = 0, f12 = 0, f22 = 0;  // its upper triangle, summed in registers
    const int pw = psf->width(), ph = psf->height();
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const auto [prow, drow, vrow, mrow] = rowsAt(y);
        // The PSF rows about y for the derivative along y (inside the PSF image), and pixel 0's column in it.
        const int iy = y - psf->xy0().y, ix0 = box.minX() - psf->xy0().x;
        const int yl = std::max(iy - 1, 0), yh = std::min(iy + 1, ph - 1);
        const double *pcur = psf->row(iy), *pyl = psf->row(yl), *pyh = psf->row(yh);
        for (int x = 0; x < box.width(); ++x) {
            const double d = drow[x], v = vrow[x];
            if (!usablePixel(drow[x], vrow[x], mrow[x], ctx.badBits) || !(v > 0)) continue;
            const double r = d - flux * prow[x];
            chi2 += r * r / v;
            if (!(v == lastV)) {
                lastV = v;
                lastLn = std::log(2.0 * std::numbers::pi * v);
            }
            sumLnV += lastLn;
            // (ix, iy) is inside the PSF image, and so are the neighbours xl..xh, yl..yh.
            const int ix = ix0 + x;
            const int xl = std::max(ix - 1, 0), xh = std::min(ix + 1, pw - 1);
            const double g[3] = {prow[x], xh > xl ? -flux * (pcur[xh] - pcur[xl]) / (xh - xl) : 0.0,
                                 yh > yl ? -flux * (pyh[ix] - pyl[ix]) / (yh - yl) : 0.0};
            // One division: the Fisher matrix's six terms are products with 1 / V (equal to rounding).
            const double iv = 1.0 / v;
            f00 += g[0] * g[0] * iv, f01 += g[0] * g[1] * iv, f02 += g[0] * g[2] * iv;
            f11 += g[1] * g[1] * iv, f12 += g[1] * g[2] * iv, f22 += g[2] * g[2] * iv;
        }
    }
    F[0][0] = f00, F[0][1] = f01, F[0][2] = f02, F[1][1] = f11, F[1][2] = f12, F[2][2] = f22;
    // Invert the symmetric Fisher matrix (cofactors); NaN if singular.
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < a; ++b) F[a][b] = F[b][a];
    const double c00 = F[1][1] * F[2][2] - F[1][2] * F[2][1], c01 = F[0][2] * F[2][1] - F[0][1] * F[2][2],
                 c02 = F[0][1] * F[1][2] - F[0][2] * F[1][1], c11 = F[0][0] * F[2][2] - F[0][2] * F[2][0],
                 c12 = F[0][2] * F[1][0] - F[0][0] * F[1][2], c22 = F[0][0] * F[1][1] - F[0][1] * F[1][0];
    const double det = F[0][0] * c00 + F[0][1] * c01 + F[0][2] * c02;
    const double inv = det > 0 ? 1.0 / det : kNaN;
    table.column(lnL_)[row] = -0.5 * chi2 - 0.5 * sumLnV;
    table.column(xErr_)[row] = std::sqrt(c11 * inv);
    table.column(yErr_)[row] = std::sqrt(c22 * inv);
    table.column(xyCov_)[row] = c12 * inv;
    table.column(fluxXCov_)[row] = c01 * inv;
    table.column(fluxYCov_)[row] = c02 * inv;
    table.column(flux_)[row] = flux;
    table.column(fluxErr_)[row] = std::sqrt(sppv) / spp;
    table.column(chi2_)[row] = chi2;
    table.column(ndata_)[row] = std::int32_t(n);
    table.column(flag_)[row] = edge;
    table.column(noGoodPixels_)[row] = false;
}

void PsfFluxPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    for (auto k : {flux_, fluxErr_, chi2_, lnL_, xErr_, yErr_, xyCov_, fluxXCov_, fluxYCov_, apCorr_})
        table.column(k)[row] = kNaN;
    table.column(ndata_)[row] = 0;
    table.column(flag_)[row] = true;
}

}  // namespace drp
