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
DRP_SIMD_CLONES void addTap(float* __restrict acc, const float* __restrict a, int n, float k) {
    for (int x = 0; x < n; ++x) acc[x] += k * a[x];
}

}  // namespace drp::rowk
