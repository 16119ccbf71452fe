// The Source table's DPDD-unit columns (drivers/singlevisit/DpddColumns) against exact answers on a
// rotated, flipped TAN WCS of 0.2"/pixel: moments scale by s^2 with trace and determinant invariant under
// the rotation, an isotropic moment noise stays isotropic (lcov), the sky and the annulus surface
// brightnesses of a uniform surface brightness come out in nJy/arcsec^2 with the right errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "drivers/singlevisit/DpddColumns.h"
#include "stages/measure/MeasurementConfig.h"

using namespace drp;

namespace {

constexpr double kScale = 0.2;  // arcsec per pixel

Wcs rotatedWcs(double thetaDeg, double decDeg) {
    const double t = thetaDeg * std::numbers::pi / 180, s = kScale / 3600.0;
    Eigen::Matrix2d cd;
    cd << -s * std::cos(t), s * std::sin(t), s * std::sin(t), s * std::cos(t);
    return Wcs({1000, 1000}, SpherePoint(Angle::fromDegrees(150.0), Angle::fromDegrees(decDeg)), cd);
}

}  // namespace

TEST(DpddColumns, MomentsSkyAndAnnuliInSkyUnits) {
    const std::vector<double> radii = {3, 6, 12};
    Schema s;
    for (const char* n : {"x", "y", "ixx", "iyy", "ixy", "ixxPSF", "iyyPSF", "ixyPSF", "ixxErr", "iyyErr", "ixyErr",
                          "ixx_iyy_Cov", "ixx_ixy_Cov", "iyy_ixy_Cov", "sky", "skyErr"})
        s.addField<double>(n, "");
    for (double r : radii) {
        s.addField<double>("apFlux_" + apertureName(r), "");
        s.addField<double>("apFlux_" + apertureName(r) + "Err", "");
    }
    const double calib = 2.0;         // nJy per instrumental unit
    const double sbInst = 10.0;       // instrumental units per pixel
    const double varPerPixel = 25.0;  // per pixel, calibrated nJy^2 in the aperture errors
    for (double theta : {0.0, 30.0, 117.0}) {
        for (double dec : {-30.0, 0.0, 60.0}) {
            Table t(s, 1);
            auto set = [&](const std::string& n, double v) { t.column<double>(n)[0] = v; };
            set("x", 900.5), set("y", 1100.25);
            set("ixx", 6.0), set("iyy", 3.0), set("ixy", 1.2);
            set("ixxPSF", 4.0), set("iyyPSF", 4.0), set("ixyPSF", 0.0);
            // Isotropic noise: ixx and iyy fully correlated with equal variance v, ixy noiseless.
            const double v = 0.09;
            set("ixxErr", std::sqrt(v)), set("iyyErr", std::sqrt(v)), set("ixyErr", 0.0);
            set("ixx_iyy_Cov", v), set("ixx_ixy_Cov", 0.0), set("iyy_ixy_Cov", 0.0);
            set("sky", sbInst), set("skyErr", 0.5);
            for (double r : radii) {
                set("apFlux_" + apertureName(r), calib * sbInst * std::numbers::pi * r * r);
                set("apFlux_" + apertureName(r) + "Err", std::sqrt(varPerPixel * std::numbers::pi * r * r));
            }
            const Table out = addDpddColumns(t, rotatedWcs(theta, dec), calib, radii);
            auto get = [&](const std::string& n) { return out.column<double>(n)[0]; };
            const double s2 = kScale * kScale, tol = 1e-6;
            SCOPED_TRACE("theta " + std::to_string(theta) + " dec " + std::to_string(dec));
            EXPECT_NEAR(get("lxx") + get("lyy"), s2 * 9.0, tol * s2);
            EXPECT_NEAR(get("lxx") * get("lyy") - get("lxy") * get("lxy"), s2 * s2 * (18.0 - 1.44), tol * s2 * s2);
            EXPECT_NEAR(get("lxxPSF"), s2 * 4.0, tol * s2);
            EXPECT_NEAR(get("lyyPSF"), s2 * 4.0, tol * s2);
            EXPECT_NEAR(get("lxyPSF"), 0.0, tol * s2);
            const double s4v = s2 * s2 * v;
            for (const char* n : {"lcov_xx_xx", "lcov_yy_yy", "lcov_xx_yy"}) EXPECT_NEAR(get(n), s4v, 1e-5 * s4v) << n;
            for (const char* n : {"lcov_xy_xy", "lcov_xx_xy", "lcov_yy_xy"}) EXPECT_NEAR(get(n), 0.0, 1e-5 * s4v) << n;
            EXPECT_NEAR(get("sky"), sbInst * calib / s2, 1e-5 * sbInst * calib / s2);
            EXPECT_NEAR(get("skyErr"), 0.5 * calib / s2, 1e-5 * calib / s2);
            double prev = 0;
            for (std::size_t i = 0; i < radii.size(); ++i) {
                const double ringPix = std::numbers::pi * (radii[i] * radii[i] - prev * prev);
                EXPECT_NEAR(get("apMeanSb_" + std::to_string(i)), sbInst * calib / s2, 1e-5 * sbInst * calib / s2);
                EXPECT_NEAR(get("apMeanSbSigma_" + std::to_string(i)), std::sqrt(varPerPixel * ringPix) / (ringPix * s2),
                            1e-5 * std::sqrt(varPerPixel) / s2);
                prev = radii[i];
            }
            EXPECT_EQ(out.metadata().getInt("APNANN"), 3);
            EXPECT_EQ(out.schema().find<double>("sky").index(), t.schema().find<double>("sky").index());
            EXPECT_EQ(out.schema().field(out.schema().find<double>("sky")).unit, "nJy/arcsec^2");
        }
    }
}

TEST(DpddColumns, NonFiniteCentroidGivesNaN) {
    Schema s;
    for (const char* n : {"x", "y", "ixx", "iyy", "ixy", "sky"}) s.addField<double>(n, "");
    Table t(s, 1);
    t.column<double>("x")[0] = std::nan("");
    t.column<double>("y")[0] = 5;
    t.column<double>("ixx")[0] = t.column<double>("iyy")[0] = 4;
    t.column<double>("sky")[0] = 1;
    const Table out = addDpddColumns(t, rotatedWcs(10, 0), 1.0, {3, 6});
    EXPECT_TRUE(std::isnan(out.column<double>("lxx")[0]));
    EXPECT_TRUE(std::isnan(out.column<double>("sky")[0]));
    EXPECT_FALSE(out.schema().contains("apMeanSb_0"));  // no aperture columns in the input
    EXPECT_FALSE(out.schema().contains("lcov_xx_xx"));
}
