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

/// True when the CPU has AVX2, for kernels written with AVX2 intrinsics under __attribute__((target("avx2"))) and
/// dispatched at run time (checked once). False off x86-64 / GCC.
inline bool cpuHasAvx2() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
    static const bool yes = __builtin_cpu_supports("avx2");
    return yes;
#else
    return false;
#endif
}
