#ifndef RMTRAIN_CCONV_H
#define RMTRAIN_CCONV_H
/// oneDNN convolutions for one layer shape, NHWC activations and [Cout, kh, kw, Cin] (OHWI) weights,
/// float32. Primitives are created once per shape and reused; the weights are reordered to oneDNN's
/// blocked layout on each call (they change every step), the weight gradient back to OHWI. Scratch
/// memory is owned by the caller's handle (no allocation inside a step after the first).
typedef struct rm_conv rm_conv;

/// NULL when oneDNN cannot build the primitives (the caller uses its portable path); `error` gets why.
/// `winograd` non-zero: oneDNN's Winograd F(4,3) (3×3 stride 1 only) on its own blocked activation
/// layout, reordered from and to NHWC inside each call; otherwise direct convolution on NHWC.
/// `bf16` non-zero: direct convolution on bfloat16 copies of x, the weights and dy (rounded to nearest
/// even inside each call), accumulating in float32; y, dx and dw stay float32 (no Winograd).
rm_conv *rm_conv_create(int n, int h, int w, int cin, int cout, int kernel, int stride, int pad, int winograd,
                        int bf16, char *error, int error_size);
void rm_conv_destroy(rm_conv *conv);
/// y = conv(x, w). 0 on success, else a oneDNN status.
int rm_conv_forward(rm_conv *conv, const float *x, const float *w, float *y);
/// dw = Σ over the batch of x ⊗ dy, in OHWI (overwritten); then, when dx is not NULL,
/// dx = conv_transpose(dy, w) (overwritten).
int rm_conv_backward(rm_conv *conv, const float *x, const float *dy, const float *w, float *dx, float *dw);
/// The implementation oneDNN chose: kind 0 forward, 1 backward data, 2 backward weights.
const char *rm_conv_impl(const rm_conv *conv, int kind);
/// Threads of oneDNN's OpenMP runtime (omp_set_num_threads, found at run time).
void rm_conv_set_threads(int threads);
/// oneDNN's version, "major.minor.patch".
const char *rm_conv_version(void);
/// The widest ISA oneDNN may dispatch to here (the CPU's, or less under DNNL_MAX_CPU_ISA), e.g. "avx512_core_bf16".
const char *rm_conv_isa(void);

/// One core's peak GFLOP/s in float32 FMA (`fp32`) and in AVX512-BF16 dot products (`bf16`), from
/// register-only loops (best of 7 alternating ~1 ms rounds). 0, or -1 without AVX512-BF16 (nothing written).
int rm_dot_rates(double *fp32, double *bf16);

/// Runs fn(ctx, task) for task in [0, tasks) on `threads` threads of oneDNN's OpenMP runtime (libgomp's
/// GOMP_parallel, found at run time): thread t runs tasks t, t + threads, … Our own parallel loops then
/// share oneDNN's threads instead of a second pool that would compete with its spinning workers.
/// Returns 0, or -1 when libgomp is not loaded (the caller runs its own pool).
typedef void (*rm_task_fn)(void *ctx, int task);
int rm_parallel_for(int tasks, int threads, rm_task_fn fn, void *ctx);
#endif
