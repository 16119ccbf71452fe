// RowKernels: the element-wise row loops of the separable filters (the detection's matched filter, the
// artifact rejection's Gaussian smoothing), compiled for AVX2 and the baseline (core/Simd.h: no FMA, so both
// clones give the same bits). Out of line, in RowKernels.cpp, so the target_clones dispatch is made once.
#pragma once

namespace drp::rowk {

/// out[x] = k in[x].
void setTap(float* __restrict out, const float* __restrict in, int n, float k);
/// acc[x] += k (a[x] + b[x]): a symmetric kernel's pair of taps folded.
void addFoldedTap(float* __restrict acc, const float* __restrict a, const float* __restrict b, int n, float k);
/// acc[x] += k a[x].
void addTap(float* __restrict acc, const float* __restrict a, int n, float k);

}  // namespace drp::rowk
