#include "stages/measure/ShapePlugin.h"

#include <algorithm>
#include <cmath>

namespace drp {

ShapePlugin::ShapePlugin(Schema& schema, const MeasurementConfig&) {
    // (With the weight floored at shapeMinWeightSigma for sources sharper than that: the covariance of the
    // Gaussian the weighted moments imply; see AdaptiveMoments.h.)
    ixx_ = schema.addField<double>("ixx", "adaptive second moment of the source, xx", "pixel^2");
    iyy_ = schema.addField<double>("iyy", "adaptive second moment of the source, yy", "pixel^2");
    ixy_ = schema.addField<double>("ixy", "adaptive second moment of the source, xy", "pixel^2");
    ixxErr_ = schema.addField<double>("ixxErr", "standard error of ixx (propagated pixel noise)", "pixel^2");
    iyyErr_ = schema.addField<double>("iyyErr", "standard error of iyy (propagated pixel noise)", "pixel^2");
    ixyErr_ = schema.addField<double>("ixyErr", "standard error of ixy (propagated pixel noise)", "pixel^2");
    ixxIyyCov_ = schema.addField<double>("ixx_iyy_Cov", "noise covariance of ixx and iyy", "pixel^4");
    ixxIxyCov_ = schema.addField<double>("ixx_ixy_Cov", "noise covariance of ixx and ixy", "pixel^4");
    iyyIxyCov_ = schema.addField<double>("iyy_ixy_Cov", "noise covariance of iyy and ixy", "pixel^4");
    ixxPsf_ = schema.addField<double>("ixxPSF", "adaptive second moment of the PSF at the centroid, xx", "pixel^2");
    iyyPsf_ = schema.addField<double>("iyyPSF", "adaptive second moment of the PSF at the centroid, yy", "pixel^2");
    ixyPsf_ = schema.addField<double>("ixyPSF", "adaptive second moment of the PSF at the centroid, xy", "pixel^2");
    flag_ = schema.addField<bool>("shape_flag", "adaptive moments of the source failed (values NaN)");
    noPixels_ = schema.addField<bool>("shape_flag_noPixels", "no usable pixel or non-positive weighted flux");
    singular_ = schema.addField<bool>("shape_flag_singular", "weighted moments not positive definite");
    maxSize_ = schema.addField<bool>("shape_flag_maxSize", "the adaptive weight grew beyond shapeMaxSigma");
    notConverged_ = schema.addField<bool>("shape_flag_notConverged", "adaptive-moment iteration hit shapeMaxIter");
    noiseStop_ = schema.addField<bool>("shape_flag_noiseStop",
                                       "damped iteration stopped within shapeNoiseTolerance of the moments' standard "
                                       "error of the extrapolated fixed point, before reaching shapeTolerance");
    edge_ = schema.addField<bool>("shape_flag_edge", "the moment window crossed the image edge or unusable pixels");
    psf_ = schema.addField<bool>("shape_flag_psf", "adaptive moments of the PSF failed or there is no PSF");
}

const std::string& ShapePlugin::name() const {
    static const std::string n = "shape";
    return n;
}

void ShapePlugin::measure(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    AdaptiveMomentsControl control;
    control.maxIter = ctx.config.shapeMaxIter;
    control.tolerance = ctx.config.shapeTolerance;
    control.windowSigmas = ctx.config.shapeWindowSigmas;
    control.minWeightVariance = ctx.config.shapeMinWeightSigma * ctx.config.shapeMinWeightSigma;
    // The weight may not outgrow the footprint: a faint peak on the wing of a bright neighbour would
    // otherwise grow its weight over the neighbour (slow, and meaningless). The cap is the larger of half
    // the footprint box's longer side and 4 PSF sigmas, and at most config.shapeMaxSigma.
    const Box2I fb = ctx.footprint.bbox();
    const double fpSize = fb.empty() ? 0.0 : double(std::max(fb.width(), fb.height()));
    control.maxSigma = std::min(ctx.config.shapeMaxSigma, std::max(0.5 * fpSize, 4.0 * ctx.psfSigma()));
    SecondMoments start = SecondMoments::circle(ctx.psfSigma());

    // The PSF first: its moments are the starting weight of the source (a star then converges in a few
    // iterations).
    bool psfFailed = true;
    if (const ImageD* psf = ctx.psfImage()) {
        const AdaptiveMomentsResult p = computeAdaptiveMoments(*psf, ctx.centroid, start, control);
        if (!p.failed()) {
            psfFailed = false;
            table.column(ixxPsf_)[row] = p.moments.xx;
            table.column(iyyPsf_)[row] = p.moments.yy;
            table.column(ixyPsf_)[row] = p.moments.xy;
            start = p.moments;
        }
    }
    if (psfFailed) {
        for (auto k : {ixxPsf_, iyyPsf_, ixyPsf_}) table.column(k)[row] = kNaN;
    }
    table.column(psf_)[row] = psfFailed;

    // Sums over the footprint's box grown by 2 PSF sigmas + 2 pixels (all pixels for an empty footprint).
    if (!fb.empty()) control.region = fb.grow(int(std::ceil(2.0 * ctx.psfSigma())) + 2);
    const MeasurementConfig& cfg = ctx.config;
    const int firstIter = std::min(cfg.shapeMaxIter, cfg.shapeNoiseCheckIter);
    AdaptiveMomentsControl first = control;
    first.maxIter = firstIter;
    AdaptiveMomentsResult r = computeAdaptiveMoments(ctx.exposure.image(), ctx.centroid, start, first,
                                                     &ctx.exposure.mask(), ctx.badBits);
    bool noiseStop = false;
    if (!r.failed() && !r.converged && cfg.shapeMaxIter > firstIter) {
        // Not converged yet (a faint source; usually a 2-cycle of the Newton update): go on with damped
        // steps, and stop once every moment is within shapeNoiseTolerance of its standard error (at this
        // iterate) of the fixed point extrapolated from the last two steps, when that is looser than
        // shapeTolerance.
        AdaptiveMomentsControl second = control;
        second.maxIter = cfg.shapeMaxIter - firstIter;
        second.dampOscillation = true;
        double noiseTolerance = 0.0;
        if (cfg.shapeNoiseTolerance > 0) {
            const MomentsCovariance c0 = computeAdaptiveMomentsCovariance(
                ctx.exposure.image(), ctx.exposure.variance(), ctx.centroid, r.moments, control, &ctx.exposure.mask(),
                ctx.badBits);
            const double sigmaMin = std::sqrt(std::min({c0.xx_xx, c0.yy_yy, c0.xy_xy}));
            const double halfTrace = 0.5 * r.moments.trace();
            if (std::isfinite(sigmaMin) && sigmaMin > 0 && halfTrace > 0)
                noiseTolerance = cfg.shapeNoiseTolerance * sigmaMin / halfTrace;
        }
        second.tolerance = std::max(cfg.shapeTolerance, noiseTolerance);
        second.extrapolateConvergence = second.tolerance > cfg.shapeTolerance;
        const int done = r.iterations;
        r = computeAdaptiveMoments(ctx.exposure.image(), ctx.centroid, r.moments, second, &ctx.exposure.mask(),
                                   ctx.badBits);
        r.iterations += done;
        noiseStop = r.converged && second.tolerance > cfg.shapeTolerance;
    }
    const bool failed = r.failed();
    table.column(ixx_)[row] = failed ? kNaN : r.moments.xx;
    table.column(iyy_)[row] = failed ? kNaN : r.moments.yy;
    table.column(ixy_)[row] = failed ? kNaN : r.moments.xy;
    MomentsCovariance cov;
    if (!failed)
        cov = computeAdaptiveMomentsCovariance(ctx.exposure.image(), ctx.exposure.variance(), ctx.centroid, r.moments,
                                               control, &ctx.exposure.mask(), ctx.badBits);
    table.column(ixxErr_)[row] = std::sqrt(cov.xx_xx);
    table.column(iyyErr_)[row] = std::sqrt(cov.yy_yy);
    table.column(ixyErr_)[row] = std::sqrt(cov.xy_xy);
    table.column(ixxIyyCov_)[row] = cov.xx_yy;
    table.column(ixxIxyCov_)[row] = cov.xx_xy;
    table.column(iyyIxyCov_)[row] = cov.yy_xy;
    table.column(flag_)[row] = failed;
    table.column(noPixels_)[row] = r.noPixels;
    table.column(singular_)[row] = r.singular;
    table.column(maxSize_)[row] = r.maxSize;
    table.column(notConverged_)[row] = !failed && !r.converged;
    table.column(noiseStop_)[row] = !failed && noiseStop;
    table.column(edge_)[row] = r.truncated;
    if (failed) ctx.shape.reset();
    else ctx.shape = r.moments;
}

void ShapePlugin::fail(const MeasurementContext& ctx, Table& table, std::size_t row) const {
    for (auto k : {ixx_, iyy_, ixy_, ixxErr_, iyyErr_, ixyErr_, ixxIyyCov_, ixxIxyCov_, iyyIxyCov_, ixxPsf_, iyyPsf_,
                   ixyPsf_})
        table.column(k)[row] = kNaN;
    table.column(flag_)[row] = true;
    table.column(psf_)[row] = true;
    ctx.shape.reset();
}

}  // namespace drp
