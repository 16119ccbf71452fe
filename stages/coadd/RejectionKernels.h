// RejectionKernels: element-wise row kernels of the coadd's artifact rejection (CoaddAssembler's comparison
// passes). Pure functions over one row, branch-free so that they vectorise; compiled for AVX2 and the baseline
// (DRP_SIMD_CLONES, core/Simd.h) without FMA, so both give the same bits.
#pragma once

#include <cstdint>

#include "core/Mask.h"

namespace drp::rejection {

/// One warp row in coadd units: o = s * in, ov = s2c * var where the pixel is usable (no `excluded` bit, finite
/// value and variance, variance >= 0), 0 elsewhere. Returns the number of unusable pixels.
int scaledRow(float* o, float* ov, const float* in, const float* var, const MaskPixel* mask, MaskPixel excluded,
              double s, double s2c, int n);

/// Residual of one row against the template c(v) = sum_q coef[x * nc + q] v^q (nc in 1..4, evaluated in double):
/// r = image - c(v), rv = variance * resFactor, ok = 1 where comparable (valid > 0, variance > 0 when `perPixel`,
/// template defined: coef[x * nc] finite); r = rv = ok = 0 elsewhere. Returns the number of comparable pixels.
int residualRow(float* r, float* rv, float* ok, const float* image, const float* variance, const float* valid,
                const float* coef, int nc, double v, float resFactor, bool perPixel, int n);

/// Smoothed residual near pixels that are not comparable: where ok > 0 and the smoothed validity c >= minCover,
/// r /= c and sv /= c^2 (c >= 0.999 counts as 1); sv = 0 elsewhere or where sv <= 0.
void coverRow(float* r, float* sv, const float* smoothedOk, const float* ok, float minCover, int n);

/// Empirical scatter sums: where sv > 0, chi2 = min(r^2 / sv, clip2) is added to sum, max-ed into mx, and count
/// incremented.
void scatterRow(float* sum, float* mx, std::uint16_t* count, const float* r, const float* sv, float clip2, int n);

/// sv *= max(1, (sum - mx) / (count - 1)) where count >= 3.
void inflateRow(float* sv, const float* sum, const float* mx, const std::uint16_t* count, int n);

/// c[x] = 1 where the 4-neighbour excess e = row - (left + right + up + down) / 4 satisfies e > 0, v > 0 and
/// e^2 > k2 v (e > sqrt(k2 v)), 0 elsewhere. Returns the number of candidates.
int sharpCandidateRow(std::uint8_t* c, const float* row, const float* left, const float* right, const float* up,
                      const float* dn, const float* v, float k2, int n);

/// Hysteresis marks of one row: 1 where d > sqrt(lo2 v), 3 where also d > sqrt(hi2 v) (v > 0, d > 0), 0
/// elsewhere. Returns the number of seeds (3s).
int markRow(std::int32_t* mk, const float* d, const float* v, float lo2, float hi2, int n);

}  // namespace drp::rejection
