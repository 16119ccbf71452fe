// Simd: DRP_SIMD_CLONES marks a hot, element-wise loop function to be compiled twice, for AVX2 and for
// the baseline x86-64 (SSE2), the loader picking the AVX2 clone on machines that have it (GCC
// target_clones, through an ifunc). Only element-wise arithmetic without FMA goes in such functions
// ("avx2" does not enable FMA and no reassociation is allowed), so both clones give the same bits: a
// campaign on a mix of old and new nodes stays bit-identical.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define DRP_SIMD_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define DRP_SIMD_CLONES
#endif
