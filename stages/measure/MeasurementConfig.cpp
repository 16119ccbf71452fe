#include "stages/measure/MeasurementConfig.h"

#include <cmath>
#include <cstdio>
#include <set>

#include "core/Error.h"

namespace drp {

namespace {

const std::set<std::string>& knownPlugins() {
    static const std::set<std::string> names = {"centroid", "pixelFlags", "shape", "psfFlux",  "apFlux",
                                                "kronFlux", "sky",        "extendedness", "coord"};
    return names;
}

void require(bool ok, const std::string& what) {
    if (!ok) throw ConfigError("MeasurementConfig." + what);
}

}  // namespace

std::string apertureName(double radius) {
    if (!std::isfinite(radius)) return "nan";
    if (radius == std::floor(radius) && std::fabs(radius) < 1e9) return std::to_string(static_cast<long long>(radius));
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", radius);
    std::string s(buf);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    for (char& c : s)
        if (c == '.') c = '_';
    return s;
}

void MeasurementConfig::validate() const {
    std::set<std::string> seen;
    for (const auto& p : plugins) {
        require(knownPlugins().count(p) > 0, "plugins: unknown plugin '" + p + "'");
        require(seen.insert(p).second, "plugins: '" + p + "' listed twice");
    }
    if (seen.count("extendedness")) {
        auto pos = [&](const std::string& n) {
            for (std::size_t i = 0; i < plugins.size(); ++i)
                if (plugins[i] == n) return static_cast<long>(i);
            return -1L;
        };
        require(pos("psfFlux") >= 0 && pos("psfFlux") < pos("extendedness"),
                "plugins: 'extendedness' needs 'psfFlux' earlier in the list");
        require(pos("apFlux") >= 0 && pos("apFlux") < pos("extendedness"),
                "plugins: 'extendedness' needs 'apFlux' earlier in the list");
        bool found = false;
        for (double r : apertureRadii) found = found || r == extendednessApertureRadius;
        require(found, "extendednessApertureRadius must be one of apertureRadii");
    }
    require(!fluxUnit.empty(), "fluxUnit must not be empty");
    for (const auto& n : badMaskPlanes) require(!n.empty(), "badMaskPlanes: empty plane name");
    for (const auto& n : skyExcludeMaskPlanes) require(!n.empty(), "skyExcludeMaskPlanes: empty plane name");

    require(centroidWeightSigma == 0.0 || (centroidWeightSigma >= 0.3 && centroidWeightSigma <= 50.0),
            "centroidWeightSigma must be 0 or in [0.3, 50] pixels");
    require(centroidMaxIter >= 1 && centroidMaxIter <= 1000, "centroidMaxIter must be in [1, 1000]");
    require(centroidTolerance > 0.0 && centroidTolerance <= 0.1, "centroidTolerance must be in (0, 0.1] pixels");
    require(centroidMaxShift >= 0.5 && centroidMaxShift <= 20.0, "centroidMaxShift must be in [0.5, 20] pixels");
    require(defaultPsfSigma >= 0.3 && defaultPsfSigma <= 50.0, "defaultPsfSigma must be in [0.3, 50] pixels");

    require(shapeMaxIter >= 1 && shapeMaxIter <= 10000, "shapeMaxIter must be in [1, 10000]");
    require(shapeTolerance > 0.0 && shapeTolerance <= 0.01, "shapeTolerance must be in (0, 0.01]");
    require(shapeNoiseCheckIter >= 1 && shapeNoiseCheckIter <= 10000, "shapeNoiseCheckIter must be in [1, 10000]");
    require(shapeNoiseTolerance >= 0.0 && shapeNoiseTolerance <= 0.1, "shapeNoiseTolerance must be in [0, 0.1]");
    require(shapeWindowSigmas >= 3.0 && shapeWindowSigmas <= 10.0, "shapeWindowSigmas must be in [3, 10]");
    require(shapeMaxSigma >= 1.0 && shapeMaxSigma <= 1000.0, "shapeMaxSigma must be in [1, 1000] pixels");
    require(shapeMinWeightSigma >= 0.0 && shapeMinWeightSigma <= 5.0, "shapeMinWeightSigma must be in [0, 5] pixels");

    require(!apertureRadii.empty() && apertureRadii.size() <= 20, "apertureRadii must hold 1 to 20 radii");
    std::set<std::string> names;
    for (std::size_t i = 0; i < apertureRadii.size(); ++i) {
        const double r = apertureRadii[i];
        require(r > 0.0 && r <= 500.0, "apertureRadii: each radius must be in (0, 500] pixels");
        require(i == 0 || r > apertureRadii[i - 1], "apertureRadii must be strictly increasing");
        require(names.insert(apertureName(r)).second, "apertureRadii: two radii give the same column name");
    }

    require(kronRadiusFactor >= 1.0 && kronRadiusFactor <= 10.0, "kronRadiusFactor must be in [1, 10]");
    require(kronMinRadiusSigmas >= 0.0 && kronMinRadiusSigmas <= 20.0, "kronMinRadiusSigmas must be in [0, 20]");
    require(kronMomentSigmas >= 2.0 && kronMomentSigmas <= 20.0, "kronMomentSigmas must be in [2, 20]");

    require(skyInnerRadius >= 0.0 && skyOuterRadius > skyInnerRadius && skyOuterRadius <= 500.0,
            "skyInnerRadius/skyOuterRadius must satisfy 0 <= inner < outer <= 500 pixels");
    require(skyMinPixels >= 3 && skyMinPixels <= 1000000, "skyMinPixels must be in [3, 1e6]");
    require(skyClipSigma > 1.0 && skyClipSigma <= 20.0, "skyClipSigma must be in (1, 20]");
    require(skyClipIter >= 0 && skyClipIter <= 100, "skyClipIter must be in [0, 100]");

    require(extendednessThreshold > 0.0 && extendednessThreshold <= 1.5, "extendednessThreshold must be in (0, 1.5]");
    require(extendednessNSigma >= 0.0 && extendednessNSigma <= 100.0, "extendednessNSigma must be in [0, 100]");
}

}  // namespace drp
