#include "stages/measure/SkyCoordPlugin.h"

#include <cmath>

namespace drp {

SkyCoordPlugin::SkyCoordPlugin(Schema& schema, const MeasurementConfig&) {
    ra_ = schema.addField<double>("ra", "ICRS right ascension of the centroid", "deg");
    dec_ = schema.addField<double>("dec", "ICRS declination of the centroid", "deg");
    raErr_ = schema.addField<double>("coord_raErr", "standard error of ra (degrees of right ascension)", "deg");
    decErr_ = schema.addField<double>("coord_decErr", "standard error of dec", "deg");
    cov_ = schema.addField<double>("coord_ra_dec_Cov", "covariance of ra and dec", "deg^2");
    flag_ = schema.addField<bool>("coord_flag", "no Wcs, or the sky position could not be computed (NaN)");
}

const std::string& SkyCoordPlugin::name() const {
    static const std::string n = "coord";
    return n;
}

void SkyCoordPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Point2D c = ctx.centroid;
    if (!ctx.exposure.hasWcs() || !std::isfinite(c.x) || !std::isfinite(c.y)) {
        fail(ctx, table, row);
        return;
    }
    const Wcs& wcs = *ctx.exposure.wcs();
    const SpherePoint p = wcs.pixelToSky(c);
    const double ra = p.ra().asDegrees(), dec = p.dec().asDegrees();
    if (!std::isfinite(ra) || !std::isfinite(dec)) {
        fail(ctx, table, row);
        return;
    }
    auto wrap = [](double d) { return d - 360.0 * std::round(d / 360.0); };
    constexpr double h = 0.5;
    const SpherePoint px1 = wcs.pixelToSky({c.x + h, c.y}), px0 = wcs.pixelToSky({c.x - h, c.y});
    const SpherePoint py1 = wcs.pixelToSky({c.x, c.y + h}), py0 = wcs.pixelToSky({c.x, c.y - h});
    const double j00 = wrap(px1.ra().asDegrees() - px0.ra().asDegrees()) / (2 * h);
    const double j10 = (px1.dec().asDegrees() - px0.dec().asDegrees()) / (2 * h);
    const double j01 = wrap(py1.ra().asDegrees() - py0.ra().asDegrees()) / (2 * h);
    const double j11 = (py1.dec().asDegrees() - py0.dec().asDegrees()) / (2 * h);
    const double sxx = ctx.centroidXErr * ctx.centroidXErr, syy = ctx.centroidYErr * ctx.centroidYErr;
    const double sxy = std::isfinite(ctx.centroidXYCov) ? ctx.centroidXYCov : 0.0;
    const double vra = j00 * j00 * sxx + 2 * j00 * j01 * sxy + j01 * j01 * syy;
    const double vdec = j10 * j10 * sxx + 2 * j10 * j11 * sxy + j11 * j11 * syy;
    const double cov = j00 * j10 * sxx + (j00 * j11 + j01 * j10) * sxy + j01 * j11 * syy;
    table.column(ra_)[row] = ra;
    table.column(dec_)[row] = dec;
    table.column(raErr_)[row] = std::sqrt(vra);
    table.column(decErr_)[row] = std::sqrt(vdec);
    table.column(cov_)[row] = cov;
    table.column(flag_)[row] = false;
}

void SkyCoordPlugin::fail(const MeasurementContext&, Table& table, std::size_t row) const {
    for (auto k : {ra_, dec_, raErr_, decErr_, cov_}) table.column(k)[row] = kNaN;
    table.column(flag_)[row] = true;
}

}  // namespace drp
