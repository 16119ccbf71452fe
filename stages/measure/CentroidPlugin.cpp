#include "stages/measure/CentroidPlugin.h"

#include "stages/measure/GaussianCentroid.h"

namespace drp {

CentroidPlugin::CentroidPlugin(Schema& schema, const MeasurementConfig&) {
    x_ = schema.addField<double>("x", "centroid x (parent frame; the peak position when centroid_flag)", "pixel");
    y_ = schema.addField<double>("y", "centroid y (parent frame; the peak position when centroid_flag)", "pixel");
    xErr_ = schema.addField<double>("xErr", "standard error of x, propagated from the variance plane", "pixel");
    yErr_ = schema.addField<double>("yErr", "standard error of y, propagated from the variance plane", "pixel");
    xyCov_ = schema.addField<double>("x_y_Cov", "covariance of x and y", "pixel^2");
    flag_ = schema.addField<bool>("centroid_flag", "centroid failed: x, y are the peak position, errors NaN");
    edge_ = schema.addField<bool>("centroid_flag_edge", "centroid window crossed the image edge or unusable pixels");
    noPixels_ = schema.addField<bool>("centroid_flag_noPixels", "no usable pixel or non-positive flux in the centroid window");
    noSecondDerivative_ = schema.addField<bool>("centroid_flag_noSecondDerivative",
                                                "the weighted first moment has no maximum near the peak");
    resetToPeak_ = schema.addField<bool>("centroid_flag_resetToPeak", "centroid moved too far from the peak: reset to it");
    notConverged_ = schema.addField<bool>("centroid_flag_notConverged", "centroid iteration reached its maximum count");
}

const std::string& CentroidPlugin::name() const {
    static const std::string n = "centroid";
    return n;
}

void CentroidPlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    const Point2D peak{ctx.peak.x, ctx.peak.y};
    GaussianCentroidControl control;
    control.sigma = ctx.config.centroidWeightSigma > 0 ? ctx.config.centroidWeightSigma : ctx.psfSigma();
    control.maxIter = ctx.config.centroidMaxIter;
    control.tolerance = ctx.config.centroidTolerance;
    control.maxShift = ctx.config.centroidMaxShift;
    const GaussianCentroidResult r = measureGaussianCentroid(ctx.exposure.maskedImage(), peak, control, ctx.badBits);
    const bool failed = r.failed();
    const Point2D p = failed ? peak : r.position;
    table.column(x_)[row] = p.x;
    table.column(y_)[row] = p.y;
    table.column(xErr_)[row] = failed ? kNaN : r.xErr;
    table.column(yErr_)[row] = failed ? kNaN : r.yErr;
    table.column(xyCov_)[row] = failed ? kNaN : r.xyCov;
    table.column(flag_)[row] = failed;
    table.column(edge_)[row] = r.edge;
    table.column(noPixels_)[row] = r.noPixels;
    table.column(noSecondDerivative_)[row] = r.noSecondDerivative;
    table.column(resetToPeak_)[row] = r.resetToPeak;
    table.column(notConverged_)[row] = r.notConverged;
    ctx.centroid = p;
    ctx.centroidXErr = failed ? kNaN : r.xErr;
    ctx.centroidYErr = failed ? kNaN : r.yErr;
    ctx.centroidXYCov = failed ? kNaN : r.xyCov;
}

void CentroidPlugin::fail(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    table.column(x_)[row] = ctx.peak.x;
    table.column(y_)[row] = ctx.peak.y;
    ctx.centroid = {ctx.peak.x, ctx.peak.y};
    ctx.centroidXErr = ctx.centroidYErr = ctx.centroidXYCov = kNaN;
    for (auto k : {xErr_, yErr_, xyCov_}) table.column(k)[row] = kNaN;
    table.column(flag_)[row] = true;
}

}  // namespace drp
