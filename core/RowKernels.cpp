#include "core/RowKernels.h"

#include "core/Simd.h"

namespace drp::rowk {

DRP_SIMD_CLONES void setTap(float* __restrict out, const float* __restrict in, int n, float k) {
    for (int x = 0; x < n; ++x) out[x] = k * in[x];
}
DRP_SIMD_CLONES void addFoldedTap(float* __restrict acc, const float* __restrict a, const float* __restrict b, int n,
                                  float k) {
    for (int x = 0; x < n; ++x) acc[x] += k * (a[x] + b[x]);
}
DRP_SIMD_CLONES void addFoldedTaps4(float* __restrict acc, const float* __restrict a0, const float* __restrict b0,
                                    float k0, const float* __restrict a1, const float* __restrict b1, float k1,
                                    const float* __restrict a2, const float* __restrict b2, float k2,
                                    const float* __restrict a3, const float* __restrict b3, float k3, int n) {
    for (int x = 0; x < n; ++x) {
        float s = acc[x];
        s += k0 * (a0[x] + b0[x]);
        s += k1 * (a1[x] + b1[x]);
        s += k2 * (a2[x] + b2[x]);
        s += k3 * (a3[x] + b3[x]);
        acc[x] = s;
    }
}
DRP_SIMD_CLONES void addTap(float* __restrict acc, const float* __restrict a, int n, float k) {
    for (int x = 0; x < n; ++x) acc[x] += k * a[x];
}

}  // namespace drp::rowk
