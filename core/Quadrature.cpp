#include "core/Quadrature.h"

#include <cmath>
#include <numbers>

#include "core/Error.h"

namespace drp {

GaussLegendreRule gaussLegendreRule(int order) {
    if (order < 1) throw LogicError("gaussLegendreRule: the order must be >= 1");
    GaussLegendreRule rule;
    for (int i = 0; i < order; ++i) {
        double z = std::cos(std::numbers::pi * (i + 0.75) / (order + 0.5)), dp = 0.0;
        for (int it = 0; it < 100; ++it) {
            double p0 = 1.0, p1 = 0.0;
            for (int k = 1; k <= order; ++k) {
                const double p2 = p1;
                p1 = p0;
                p0 = ((2.0 * k - 1.0) * z * p1 - (k - 1.0) * p2) / k;
            }
            dp = order * (z * p0 - p1) / (z * z - 1.0);
            const double dz = p0 / dp;
            z -= dz;
            if (std::fabs(dz) < 1e-16) break;
        }
        rule.nodes.push_back(z);
        rule.weights.push_back(2.0 / ((1.0 - z * z) * dp * dp));
    }
    return rule;
}

}  // namespace drp
