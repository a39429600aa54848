#ifndef RMTRAIN_COPENBLAS_SHIM_H
#define RMTRAIN_COPENBLAS_SHIM_H
#include <cblas.h>
// Declared by OpenBLAS's cblas.h; listed here so the dependency is explicit.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
char *openblas_get_corename(void);

/// The widest x86 vector ISA this CPU runs: 2 = AVX-512 (F, BW, DQ, VL: OpenBLAS's SkylakeX kernels),
/// 1 = AVX2 + FMA (Haswell kernels), 0 = neither or not x86.
static inline int rmtrain_cpu_vector_level(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

/// 1 when the CPU has AVX512-BF16 (bf16 dot products: Cooper Lake, Sapphire Rapids, Zen 4), else 0.
static inline int rmtrain_cpu_has_avx512_bf16(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") ? 1 : 0;
#else
    return 0;
#endif
}
#endif
