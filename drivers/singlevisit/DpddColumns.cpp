#include "drivers/singlevisit/DpddColumns.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numbers>
#include <span>
#include <string>

#include "stages/measure/MeasurementConfig.h"

namespace drp {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Local Jacobian (arcsec per pixel; rows east, north) of the WCS at `p`.
std::array<double, 4> localJacobian(const Wcs& wcs, Point2D p) {
    const SpherePoint c = wcs.pixelToSky(p);
    const double cosDec = std::cos(c.dec().asRadians());
    auto offset = [&](Point2D q) {
        const SpherePoint s = wcs.pixelToSky(q);
        double dRa = s.ra().asDegrees() - c.ra().asDegrees();
        if (dRa > 180) dRa -= 360;
        if (dRa < -180) dRa += 360;
        return std::array<double, 2>{dRa * cosDec * 3600.0, (s.dec().asDegrees() - c.dec().asDegrees()) * 3600.0};
    };
    const auto xp = offset({p.x + 0.5, p.y}), xm = offset({p.x - 0.5, p.y});
    const auto yp = offset({p.x, p.y + 0.5}), ym = offset({p.x, p.y - 0.5});
    return {xp[0] - xm[0], yp[0] - ym[0], xp[1] - xm[1], yp[1] - ym[1]};
}

}  // namespace

Table addDpddColumns(const Table& in, const Wcs& wcs, double nJyPerInstFlux, const std::vector<double>& apertureRadii) {
    const Schema& inSchema = in.schema();
    Schema schema;
    for (const FieldInfo& f : inSchema.fields()) {
        FieldInfo g = f;
        if (g.name == "sky" || g.name == "skyErr") {
            g.unit = "nJy/arcsec^2";
            g.doc = g.name == "sky" ? "local background surface brightness at the centroid (clipped mean in an annulus)"
                                    : "standard error of sky";
        }
        schema.addField(g);
    }
    const bool haveMoments = inSchema.contains("ixx") && inSchema.contains("iyy") && inSchema.contains("ixy");
    const bool havePsfMoments = inSchema.contains("ixxPSF");
    const bool haveCov = inSchema.contains("ixxErr") && inSchema.contains("ixx_iyy_Cov");
    std::array<Key<double>, 3> l{}, lPsf{};
    std::array<Key<double>, 6> lcov{};
    if (haveMoments) {
        l = {schema.addField<double>("lxx", "adaptive second moment of the source, xx (east)", "arcsec^2"),
             schema.addField<double>("lyy", "adaptive second moment of the source, yy (north)", "arcsec^2"),
             schema.addField<double>("lxy", "adaptive second moment of the source, xy", "arcsec^2")};
    }
    if (havePsfMoments) {
        lPsf = {schema.addField<double>("lxxPSF", "adaptive second moment of the PSF, xx (east)", "arcsec^2"),
                schema.addField<double>("lyyPSF", "adaptive second moment of the PSF, yy (north)", "arcsec^2"),
                schema.addField<double>("lxyPSF", "adaptive second moment of the PSF, xy", "arcsec^2")};
    }
    if (haveMoments && haveCov) {
        const char* names[6] = {"lcov_xx_xx", "lcov_yy_yy", "lcov_xy_xy", "lcov_xx_yy", "lcov_xx_xy", "lcov_yy_xy"};
        for (int k = 0; k < 6; ++k)
            lcov[std::size_t(k)] =
                schema.addField<double>(names[k], "noise covariance of (lxx, lyy, lxy), element " + std::string(names[k] + 5),
                                        "arcsec^4");
    }
    std::vector<double> radii = apertureRadii;
    std::sort(radii.begin(), radii.end());
    std::vector<std::string> apNames;
    for (double r : radii)
        if (inSchema.contains("apFlux_" + apertureName(r)) && inSchema.contains("apFlux_" + apertureName(r) + "Err"))
            apNames.push_back(apertureName(r));
        else
            apNames.clear(), radii.clear();  // an incomplete aperture set: no annuli
    std::vector<Key<double>> sb, sbSigma;
    for (std::size_t i = 0; i < radii.size(); ++i) {
        const std::string ring = i == 0 ? "disk r <= " + apNames[0] + " px" : "annulus " + apNames[i - 1] + " < r <= " + apNames[i] + " px";
        sb.push_back(schema.addField<double>("apMeanSb_" + std::to_string(i), "mean surface brightness in the " + ring,
                                             "nJy/arcsec^2"));
        sbSigma.push_back(schema.addField<double>("apMeanSbSigma_" + std::to_string(i),
                                                  "standard error of apMeanSb_" + std::to_string(i), "nJy/arcsec^2"));
    }

    Table out(schema, in.size());
    for (std::size_t i = 0; i < inSchema.size(); ++i) out.columnData(i) = in.columnData(i);
    out.metadata() = in.metadata();
    out.metadata().set("APNANN", std::int64_t(radii.size()), "number of apMeanSb annuli (DPDD apNann)");
    for (std::size_t i = 0; i < radii.size(); ++i)
        out.metadata().set("APRAD" + std::to_string(i), radii[i], "outer radius of apMeanSb_" + std::to_string(i) + " (pixels)");

    using Span = std::span<const double>;
    auto col = [&](const std::string& name) { return inSchema.contains(name) ? in.column<double>(name) : Span{}; };
    const Span x = col("x"), y = col("y");
    const Span ixx = col("ixx"), iyy = col("iyy"), ixy = col("ixy"), pxx = col("ixxPSF"), pyy = col("iyyPSF"),
               pxy = col("ixyPSF");
    const Span exx = col("ixxErr"), eyy = col("iyyErr"), exy = col("ixyErr"), cxxyy = col("ixx_iyy_Cov"),
               cxxxy = col("ixx_ixy_Cov"), cyyxy = col("iyy_ixy_Cov");
    const Span skyIn = col("sky"), skyErrIn = col("skyErr");
    std::span<double> skyOut, skyErrOut;
    if (!skyIn.empty()) skyOut = out.column<double>("sky");
    if (!skyErrIn.empty()) skyErrOut = out.column<double>("skyErr");
    std::vector<Span> apFlux, apErr;
    for (const std::string& n : apNames) {
        apFlux.push_back(col("apFlux_" + n));
        apErr.push_back(col("apFlux_" + n + "Err"));
    }
    for (std::size_t r = 0; r < in.size(); ++r) {
        std::array<double, 4> J{kNaN, kNaN, kNaN, kNaN};
        if (std::isfinite(x[r]) && std::isfinite(y[r])) J = localJacobian(wcs, {x[r], y[r]});
        const double a = J[0], b = J[1], c = J[2], d = J[3];
        const double area = std::fabs(a * d - b * c);
        // T: (ixx, iyy, ixy) -> (lxx, lyy, lxy).
        const double T[3][3] = {{a * a, b * b, 2 * a * b}, {c * c, d * d, 2 * c * d}, {a * c, b * d, a * d + b * c}};
        auto transform = [&](double vxx, double vyy, double vxy, const std::array<Key<double>, 3>& keys) {
            const double v[3] = {vxx, vyy, vxy};
            for (int i = 0; i < 3; ++i)
                out.at(keys[std::size_t(i)], r) = T[i][0] * v[0] + T[i][1] * v[1] + T[i][2] * v[2];
        };
        if (haveMoments) transform(ixx[r], iyy[r], ixy[r], l);
        if (havePsfMoments) transform(pxx[r], pyy[r], pxy[r], lPsf);
        if (haveMoments && haveCov) {
            const double C[3][3] = {{exx[r] * exx[r], cxxyy[r], cxxxy[r]},
                                    {cxxyy[r], eyy[r] * eyy[r], cyyxy[r]},
                                    {cxxxy[r], cyyxy[r], exy[r] * exy[r]}};
            double TC[3][3] = {}, L[3][3] = {};
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    for (int k = 0; k < 3; ++k) TC[i][j] += T[i][k] * C[k][j];
            for (int i = 0; i < 3; ++i)
                for (int j = 0; j < 3; ++j)
                    for (int k = 0; k < 3; ++k) L[i][j] += TC[i][k] * T[j][k];
            const double vals[6] = {L[0][0], L[1][1], L[2][2], L[0][1], L[0][2], L[1][2]};
            for (int k = 0; k < 6; ++k) out.at(lcov[std::size_t(k)], r) = vals[k];
        }
        if (!skyOut.empty()) skyOut[r] = skyIn[r] * nJyPerInstFlux / area;
        if (!skyErrOut.empty()) skyErrOut[r] = skyErrIn[r] * nJyPerInstFlux / area;
        double prevFlux = 0, prevErr2 = 0, prevR = 0;
        for (std::size_t i = 0; i < radii.size(); ++i) {
            const double f = apFlux[i][r], e = apErr[i][r];
            const double ringArea = std::numbers::pi * (radii[i] * radii[i] - prevR * prevR) * area;
            out.at(sb[i], r) = (f - prevFlux) / ringArea;
            out.at(sbSigma[i], r) = std::sqrt(std::max(0.0, e * e - prevErr2)) / ringArea;
            prevFlux = f;
            prevErr2 = e * e;
            prevR = radii[i];
        }
    }
    return out;
}

}  // namespace drp
