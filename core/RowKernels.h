// RowKernels: the element-wise row loops of the separable filters (the detection's matched filter, the
// artifact rejection's Gaussian smoothing), compiled for AVX2 and the baseline (core/Simd.h: no FMA, so both
// clones give the same bits). Out of line, in RowKernels.cpp, so the target_clones dispatch is made once.
#pragma once

namespace drp::rowk {

/// out[x] = k in[x].
void setTap(float* __restrict out, const float* __restrict in, int n, float k);
/// acc[x] += k (a[x] + b[x]): a symmetric kernel's pair of taps folded.
void addFoldedTap(float* __restrict acc, const float* __restrict a, const float* __restrict b, int n, float k);
/// acc[x] += k0 (a0[x] + b0[x]), then += k1 (a1[x] + b1[x]), += k2 (...), += k3 (...): four folded taps in
/// one pass, each element summed in that order (the same bits as four addFoldedTap calls, with a quarter of
/// the loads and stores of acc).
void addFoldedTaps4(float* __restrict acc, const float* __restrict a0, const float* __restrict b0, float k0,
                    const float* __restrict a1, const float* __restrict b1, float k1, const float* __restrict a2,
                    const float* __restrict b2, float k2, const float* __restrict a3, const float* __restrict b3, float k3,
                    int n);
/// acc[x] += k a[x].
void addTap(float* __restrict acc, const float* __restrict a, int n, float k);

}  // namespace drp::rowk
