// Peak multiply-add rates of one core: float32 FMA against bfloat16 dot products (issue #24). Whether
// bf16-mixed pays depends on the second against the first, and that is a property of the core, not of
// having the instructions: on AMD Zen 4 oneDNN's bf16 convolutions ran at ~2× fp32 direct (PLATFORM_NOTES);
// an Intel Xeon without AMX (family 6 model 207) runs VDPBF16PS at half its FMA rate (README, "Mixed precision"). Register-only loops with 12
// independent accumulators, enough to cover the latency of two pipes; no memory traffic.
#include "cconv.h"
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static volatile float sink;

#define ACC12(OP) OP(0) OP(1) OP(2) OP(3) OP(4) OP(5) OP(6) OP(7) OP(8) OP(9) OP(10) OP(11)

__attribute__((target("avx512f"))) static double fp32_run(long iterations) {
    __m512 a = _mm512_set1_ps(1e-7f), b = _mm512_set1_ps(0.999f);
#define DECL(i) __m512 c##i = _mm512_set1_ps((float)i);
#define STEP(i) c##i = _mm512_fmadd_ps(a, b, c##i);
#define SUM(i) s = _mm512_add_ps(s, c##i);
    ACC12(DECL)
    double t0 = seconds();
    // The empty asm makes a and b unknown to the compiler every iteration: it cannot hoist a·b out of the
    // loop and turn the multiply-adds into adds (clang did, reading 1.55× the FMA peak).
    for (long k = 0; k < iterations; k++) { __asm__ volatile("" : "+v"(a), "+v"(b)); ACC12(STEP) }
    double t = seconds() - t0;
    __m512 s = _mm512_setzero_ps();
    ACC12(SUM)
    sink = _mm512_reduce_add_ps(s);
    return iterations * 12.0 * 32 / t / 1e9;        // 16 lanes × (multiply + add)
}

__attribute__((target("avx512f,avx512bf16"))) static double bf16_run(long iterations) {
    __m512bh a = (__m512bh)_mm512_set1_epi16(0x3c00), b = (__m512bh)_mm512_set1_epi16(0x3f80);
#define BSTEP(i) c##i = _mm512_dpbf16_ps(c##i, a, b);
    ACC12(DECL)
    double t0 = seconds();
    for (long k = 0; k < iterations; k++) { __asm__ volatile("" : "+v"(a), "+v"(b)); ACC12(BSTEP) }
    double t = seconds() - t0;
    __m512 s = _mm512_setzero_ps();
    ACC12(SUM)
    sink = _mm512_reduce_add_ps(s);
    return iterations * 12.0 * 64 / t / 1e9;        // 16 lanes × 2 pairs × (multiply + add)
}

int rm_dot_rates(double *fp32, double *bf16) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bf16")) return -1;
    // Alternating rounds of ~1 ms each, the best of each kind: a neighbour's burst can only slow a round
    // down, so the maximum is the core's own rate, and alternation keeps frequency changes out of the ratio.
    double best32 = 0, best16 = 0;
    fp32_run(20000);
    bf16_run(20000);
    for (int round = 0; round < 7; round++) {
        double r32 = fp32_run(40000), r16 = bf16_run(40000);
        if (r32 > best32) best32 = r32;
        if (r16 > best16) best16 = r16;
    }
    *fp32 = best32;
    *bf16 = best16;
    return 0;
}
#else
int rm_dot_rates(double *fp32, double *bf16) { (void)fp32; (void)bf16; return -1; }
#endif
