#include "stages/measure/PsfFluxPlugin.h"

#include <cmath>

namespace drp {

PsfFluxPlugin::PsfFluxPlugin(Schema& schema, const MeasurementConfig& config) {
    flux_ = schema.addField<double>("psfFlux", "flux of the PSF model fitted at the centroid (instrumental)",
                                    config.fluxUnit);
    fluxErr_ = schema.addField<double>("psfFluxErr", "standard error of psfFlux from the variance plane", config.fluxUnit);
    chi2_ = schema.addField<double>("psfChi2", "chi^2 of the PSF-model fit over the pixels used");
    ndata_ = schema.addField<std::int32_t>("psfNdata", "number of pixels used in the PSF-model fit");
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
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double* prow = psf->row(y - psf->xy0().y) + (box.minX() - psf->xy0().x);
        const float* drow = image.row(y - img.minY()) + (box.minX() - img.minX());
        const float* vrow = variance.row(y - img.minY()) + (box.minX() - img.minX());
        const MaskPixel* mrow = mask.row(y - img.minY()) + (box.minX() - img.minX());
        for (int x = 0; x < box.width(); ++x) {
            const double d = drow[x], v = vrow[x], p = prow[x];
            if (!std::isfinite(d) || !std::isfinite(v) || v < 0 || (mrow[x] & ctx.badBits)) continue;
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
        for (auto k : {flux_, fluxErr_, chi2_}) table.column(k)[row] = kNaN;
        table.column(ndata_)[row] = std::int32_t(n);
        table.column(flag_)[row] = true;
        table.column(noGoodPixels_)[row] = true;
        return;
    }
    const double flux = spd / spp;
    // chi^2 = sum (d - f p)^2 / V, evaluated in a second pass (cheap: the PSF box only).
    double chi2 = 0;
    for (int y = box.minY(); y <= box.maxY(); ++y) {
        const double* prow = psf->row(y - psf->xy0().y) + (box.minX() - psf->xy0().x);
        const float* drow = image.row(y - img.minY()) + (box.minX() - img.minX());
        const float* vrow = variance.row(y - img.minY()) + (box.minX() - img.minX());
        const MaskPixel* mrow = mask.row(y - img.minY()) + (box.minX() - img.minX());
        for (int x = 0; x < box.width(); ++x) {
            const double d = drow[x], v = vrow[x];
            if (!std::isfinite(d) || !std::isfinite(v) || !(v > 0) || (mrow[x] & ctx.badBits)) continue;
            const double r = d - flux * prow[x];
            chi2 += r * r / v;
        }
    }
    table.column(flux_)[row] = flux;
    table.column(fluxErr_)[row] = std::sqrt(sppv) / spp;
    table.column(chi2_)[row] = chi2;
    table.column(ndata_)[row] = std::int32_t(n);
    table.column(flag_)[row] = edge;
    table.column(noGoodPixels_)[row] = false;
}

void PsfFluxPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    for (auto k : {flux_, fluxErr_, chi2_, apCorr_}) table.column(k)[row] = kNaN;
    table.column(ndata_)[row] = 0;
    table.column(flag_)[row] = true;
}

}  // namespace drp
