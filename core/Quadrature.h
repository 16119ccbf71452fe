// Gauss-Legendre quadrature rules, shared by the profile and PSF integrators.
#pragma once

#include <vector>

namespace drp {

/// Nodes and weights of the order-n Gauss-Legendre rule on [-1, 1] (weights sum to 2), computed by
/// Newton iteration on the Legendre polynomial P_n to machine precision. n >= 1.
struct GaussLegendreRule {
    std::vector<double> nodes;
    std::vector<double> weights;
};
GaussLegendreRule gaussLegendreRule(int n);

}  // namespace drp
