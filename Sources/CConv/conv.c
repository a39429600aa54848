// oneDNN convolution primitives behind the small interface of cconv.h (see there). C, because oneDNN's
// C API passes argument arrays and descriptors by pointer: one place for that, the Swift side stays small.
#include "cconv.h"
#include <dlfcn.h>
#include <dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FWD, BWD_DATA, BWD_WEIGHTS, KINDS };

struct rm_conv {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    dnnl_primitive_t prim[KINDS];
    const char *impl[KINDS];
    dnnl_primitive_t to_blocked[2];     // OHWI -> the forward's / backward-data's weight layout (or NULL)
    dnnl_primitive_t from_blocked;      // the weight gradient's layout -> OHWI (or NULL)
    dnnl_memory_t x, y, w_plain, w_blocked[2], dw_blocked, scratch[KINDS];
    dnnl_primitive_desc_t pd[KINDS];
    // The primitives' own activations where they differ from our float32 NHWC (Winograd's blocked layout;
    // bf16's bfloat16 src and diff_dst), reordered from and to ours around each call, in the thread's
    // arena; NULL reorders where the primitive reads or writes ours directly.
    dnnl_primitive_t x_in, y_in, y_out, x_out;  // ours -> theirs (x, dy); theirs -> ours (y, dx)
    dnnl_memory_t src, dst, ddst, dsrc;          // theirs: views of the arena (0: src, dsrc; 1: dst, ddst)
    size_t arena_bytes[2];
};

// Two growing buffers per thread for the Winograd path's blocked activations (one for x or dx, one for y
// or dy): a layer needs them only during its own call, so one pair serves every layer of the thread
// (ranks run as threads in the tests). Freed when the thread ends.
struct arena { void *p[2]; size_t n[2]; };
static pthread_key_t arena_key;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;
static void arena_free(void *a) { struct arena *r = a; free(r->p[0]); free(r->p[1]); free(r); }
static void arena_init(void) { pthread_key_create(&arena_key, arena_free); }
static void *arena_get(int i, size_t bytes) {
    pthread_once(&arena_once, arena_init);
    struct arena *r = pthread_getspecific(arena_key);
    if (!r) { if (!(r = calloc(1, sizeof *r))) return NULL; pthread_setspecific(arena_key, r); }
    if (r->n[i] < bytes) {
        free(r->p[i]);
        if (posix_memalign(&r->p[i], 64, bytes)) { r->p[i] = NULL; r->n[i] = 0; return NULL; }
        r->n[i] = bytes;
    }
    return r->p[i];
}

// One CPU engine for every layer, created once: ranks run as threads in the tests, and two layers built
// at the same moment must not race on it.
static dnnl_engine_t shared_engine;
static dnnl_status_t shared_engine_status;
static pthread_once_t shared_engine_once = PTHREAD_ONCE_INIT;
static void create_shared_engine(void) { shared_engine_status = dnnl_engine_create(&shared_engine, dnnl_cpu, 0); }

static int fail(char *error, int size, const char *what, dnnl_status_t s) {
    if (error && size > 0) snprintf(error, size, "oneDNN %s failed (status %d)", what, (int)s);
    return 0;
}

#define TRY(call, what) do { dnnl_status_t s_ = (call); if (s_ != dnnl_success) { fail(error, error_size, what, s_); goto bad; } } while (0)

static dnnl_status_t reorder(dnnl_primitive_t *r, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                             dnnl_engine_t e) {
    *r = NULL;
    if (dnnl_memory_desc_equal(from, to)) return dnnl_success;
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_reorder_primitive_desc_create(&pd, from, e, to, e, NULL);
    if (s != dnnl_success) return s;
    s = dnnl_primitive_create(r, pd);
    dnnl_primitive_desc_destroy(pd);
    return s;
}

rm_conv *rm_conv_create(int n, int h, int w, int cin, int cout, int k, int stride, int pad, int winograd,
                        int bf16, char *error, int error_size) {
    rm_conv *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_once(&shared_engine_once, create_shared_engine);
    TRY(shared_engine_status, "engine");
    c->engine = shared_engine;
    TRY(dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags), "stream");
    int oh = (h + 2 * pad - k) / stride + 1, ow = (w + 2 * pad - k) / stride + 1;
    dnnl_dims_t xd = {n, cin, h, w}, wd = {cout, cin, k, k}, yd = {n, cout, oh, ow};
    // Right/bottom padding as oneDNN defines it: what makes the output size exact (0 or negative for a
    // stride-2 layer on an even input, whose last row or column no window reaches).
    dnnl_dims_t strides = {stride, stride}, pads = {pad, pad},
                pads_r = {(oh - 1) * stride + k - h - pad, (ow - 1) * stride + k - w - pad};
    dnnl_memory_desc_t xmd, ymd, xlo, ylo, xact, yact, wany, wlo, wplain;
    TRY(dnnl_memory_desc_init_by_tag(&xmd, 4, xd, dnnl_f32, dnnl_nhwc), "src desc");
    TRY(dnnl_memory_desc_init_by_tag(&ymd, 4, yd, dnnl_f32, dnnl_nhwc), "dst desc");
    // Winograd lets oneDNN pick the activation layout (it has no NHWC kernel); direct runs on NHWC.
    if (winograd && bf16) TRY(dnnl_unimplemented, "Winograd in bf16 (oneDNN has none)");
    dnnl_format_tag_t act = winograd ? dnnl_format_tag_any : dnnl_nhwc;
    dnnl_alg_kind_t alg = winograd ? dnnl_convolution_winograd : dnnl_convolution_direct;
    // bf16: the multiplications' inputs (src, weights, diff_dst) in bfloat16, what they produce (dst,
    // diff_src, diff_weights) in float32, accumulated in float32 (PyTorch's autocast keeps the output in
    // bf16; we keep float32 so that BatchNorm's statistics see the accumulated value).
    dnnl_data_type_t lo = bf16 ? dnnl_bf16 : dnnl_f32;
    TRY(dnnl_memory_desc_init_by_tag(&xlo, 4, xd, lo, act), "src desc");
    TRY(dnnl_memory_desc_init_by_tag(&ylo, 4, yd, lo, act), "dst desc");
    TRY(dnnl_memory_desc_init_by_tag(&xact, 4, xd, dnnl_f32, act), "src desc");
    TRY(dnnl_memory_desc_init_by_tag(&yact, 4, yd, dnnl_f32, act), "dst desc");
    TRY(dnnl_memory_desc_init_by_tag(&wlo, 4, wd, lo, dnnl_format_tag_any), "weights desc");
    TRY(dnnl_memory_desc_init_by_tag(&wany, 4, wd, dnnl_f32, dnnl_format_tag_any), "weights desc");
    TRY(dnnl_memory_desc_init_by_tag(&wplain, 4, wd, dnnl_f32, dnnl_ohwi), "weights desc");
    dnnl_primitive_attr_t attr;
    TRY(dnnl_primitive_attr_create(&attr), "attr");
    TRY(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user), "scratchpad mode");
    dnnl_convolution_desc_t d[KINDS];
    TRY(dnnl_convolution_forward_desc_init(&d[FWD], dnnl_forward_training, alg, &xlo, &wlo,
                                           NULL, &yact, strides, pads, pads_r), "forward desc");
    TRY(dnnl_convolution_backward_data_desc_init(&d[BWD_DATA], alg, &xact, &wlo, &ylo,
                                                 strides, pads, pads_r), "backward-data desc");
    TRY(dnnl_convolution_backward_weights_desc_init(&d[BWD_WEIGHTS], alg, &xlo, &wany, NULL,
                                                    &ylo, strides, pads, pads_r), "backward-weights desc");
    for (int kind = 0; kind < KINDS; kind++) {
        TRY(dnnl_primitive_desc_create(&c->pd[kind], &d[kind], attr, c->engine, kind ? c->pd[FWD] : NULL),
            "primitive desc");
        TRY(dnnl_primitive_create(&c->prim[kind], c->pd[kind]), "primitive");
        dnnl_primitive_desc_query(c->pd[kind], dnnl_query_impl_info_str, 0, &c->impl[kind]);
        const dnnl_memory_desc_t *sp = dnnl_primitive_desc_query_md(c->pd[kind], dnnl_query_scratchpad_md, 0);
        TRY(dnnl_memory_create(&c->scratch[kind], sp, c->engine, DNNL_MEMORY_ALLOCATE), "scratchpad");
    }
    dnnl_primitive_attr_destroy(attr);
    attr = NULL;
    const dnnl_memory_desc_t *wf = dnnl_primitive_desc_query_md(c->pd[FWD], dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *wb = dnnl_primitive_desc_query_md(c->pd[BWD_DATA], dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *dw = dnnl_primitive_desc_query_md(c->pd[BWD_WEIGHTS], dnnl_query_diff_weights_md, 0);
    TRY(reorder(&c->to_blocked[0], &wplain, wf, c->engine), "weights reorder");
    TRY(reorder(&c->to_blocked[1], &wplain, wb, c->engine), "weights reorder");
    TRY(reorder(&c->from_blocked, dw, &wplain, c->engine), "weight-gradient reorder");
    TRY(dnnl_memory_create(&c->x, &xmd, c->engine, DNNL_MEMORY_NONE), "memory");
    TRY(dnnl_memory_create(&c->y, &ymd, c->engine, DNNL_MEMORY_NONE), "memory");
    TRY(dnnl_memory_create(&c->w_plain, &wplain, c->engine, DNNL_MEMORY_NONE), "memory");
    TRY(dnnl_memory_create(&c->w_blocked[0], wf, c->engine, DNNL_MEMORY_ALLOCATE), "memory");
    TRY(dnnl_memory_create(&c->w_blocked[1], wb, c->engine, DNNL_MEMORY_ALLOCATE), "memory");
    TRY(dnnl_memory_create(&c->dw_blocked, dw, c->engine, DNNL_MEMORY_ALLOCATE), "memory");
    const dnnl_memory_desc_t *src = dnnl_primitive_desc_query_md(c->pd[FWD], dnnl_query_src_md, 0);
    const dnnl_memory_desc_t *dst = dnnl_primitive_desc_query_md(c->pd[FWD], dnnl_query_dst_md, 0);
    const dnnl_memory_desc_t *ddst = dnnl_primitive_desc_query_md(c->pd[BWD_DATA], dnnl_query_diff_dst_md, 0);
    const dnnl_memory_desc_t *dsrc = dnnl_primitive_desc_query_md(c->pd[BWD_DATA], dnnl_query_diff_src_md, 0);
    // The weight gradient reads the forward's src and the backward-data's diff_dst, converted once.
    if (!dnnl_memory_desc_equal(src, dnnl_primitive_desc_query_md(c->pd[BWD_WEIGHTS], dnnl_query_src_md, 0)) ||
        !dnnl_memory_desc_equal(ddst, dnnl_primitive_desc_query_md(c->pd[BWD_WEIGHTS], dnnl_query_diff_dst_md, 0))) {
        TRY(dnnl_unimplemented, "convolution (its passes want different activation layouts)");
    }
    TRY(reorder(&c->x_in, &xmd, src, c->engine), "activation reorder");
    TRY(reorder(&c->y_out, dst, &ymd, c->engine), "activation reorder");
    TRY(reorder(&c->y_in, &ymd, ddst, c->engine), "activation reorder");
    TRY(reorder(&c->x_out, dsrc, &xmd, c->engine), "activation reorder");
    const dnnl_memory_desc_t *theirs[4] = {src, dsrc, dst, ddst};
    dnnl_primitive_t converts[4] = {c->x_in, c->x_out, c->y_out, c->y_in};
    dnnl_memory_t *mine[4] = {&c->src, &c->dsrc, &c->dst, &c->ddst};
    for (int i = 0; i < 4; i++) {
        if (!converts[i]) continue;
        TRY(dnnl_memory_create(mine[i], theirs[i], c->engine, DNNL_MEMORY_NONE), "memory");
        size_t bytes = dnnl_memory_desc_get_size(theirs[i]);
        if (bytes > c->arena_bytes[i / 2]) c->arena_bytes[i / 2] = bytes;
    }
    return c;
bad:
    rm_conv_destroy(c);
    return NULL;
}

void rm_conv_destroy(rm_conv *c) {
    if (!c) return;
    for (int k = 0; k < KINDS; k++) {
        if (c->prim[k]) dnnl_primitive_destroy(c->prim[k]);
        if (c->pd[k]) dnnl_primitive_desc_destroy(c->pd[k]);
        if (c->scratch[k]) dnnl_memory_destroy(c->scratch[k]);
    }
    for (int i = 0; i < 2; i++) {
        if (c->to_blocked[i]) dnnl_primitive_destroy(c->to_blocked[i]);
        if (c->w_blocked[i]) dnnl_memory_destroy(c->w_blocked[i]);
    }
    if (c->from_blocked) dnnl_primitive_destroy(c->from_blocked);
    if (c->dw_blocked) dnnl_memory_destroy(c->dw_blocked);
    if (c->x) dnnl_memory_destroy(c->x);
    if (c->y) dnnl_memory_destroy(c->y);
    if (c->w_plain) dnnl_memory_destroy(c->w_plain);
    dnnl_primitive_t r[4] = {c->x_in, c->y_in, c->y_out, c->x_out};
    dnnl_memory_t m[4] = {c->src, c->dst, c->ddst, c->dsrc};
    for (int i = 0; i < 4; i++) {
        if (r[i]) dnnl_primitive_destroy(r[i]);
        if (m[i]) dnnl_memory_destroy(m[i]);
    }
    if (c->stream) dnnl_stream_destroy(c->stream);
    free(c);
}

static int run(rm_conv *c, dnnl_primitive_t p, int nargs, dnnl_exec_arg_t *args) {
    dnnl_status_t s = dnnl_primitive_execute(p, c->stream, nargs, args);
    return s == dnnl_success ? 0 : (int)s;
}

/// The weights in the layout of primitive `which` (0 forward, 1 backward data): reordered, or the plain ones.
static dnnl_memory_t weights_for(rm_conv *c, int which, const float *w, int *status) {
    dnnl_memory_set_data_handle(c->w_plain, (void *)w);
    if (!c->to_blocked[which]) return c->w_plain;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, c->w_plain}, {DNNL_ARG_TO, c->w_blocked[which]}};
    *status = run(c, c->to_blocked[which], 2, a);
    return c->w_blocked[which];
}

/// Runs reorder `r` from `from` to `to`; a no-op when r is NULL (the two layouts are the same).
static int convert(rm_conv *c, dnnl_primitive_t r, dnnl_memory_t from, dnnl_memory_t to) {
    if (!r) return 0;
    dnnl_exec_arg_t a[2] = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
    return run(c, r, 2, a);
}

/// Points the converted activations' views at the thread's arena; 0, or -1 when memory ran out.
static int bind_arena(rm_conv *c) {
    dnnl_memory_t views[2][2] = {{c->src, c->dsrc}, {c->dst, c->ddst}};
    for (int i = 0; i < 2; i++) {
        if (!c->arena_bytes[i]) continue;
        void *a = arena_get(i, c->arena_bytes[i]);
        if (!a) return -1;
        for (int j = 0; j < 2; j++) if (views[i][j]) dnnl_memory_set_data_handle(views[i][j], a);
    }
    return 0;
}

int rm_conv_forward(rm_conv *c, const float *x, const float *w, float *y) {
    int s = 0;
    dnnl_memory_t wm = weights_for(c, 0, w, &s);
    if (s || (s = bind_arena(c))) return s;
    dnnl_memory_set_data_handle(c->x, (void *)x);
    dnnl_memory_set_data_handle(c->y, y);
    dnnl_memory_t xs = c->src ? c->src : c->x, ys = c->dst ? c->dst : c->y;
    if ((s = convert(c, c->x_in, c->x, xs))) return s;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, ys},
                            {DNNL_ARG_SCRATCHPAD, c->scratch[FWD]}};
    if ((s = run(c, c->prim[FWD], 4, a))) return s;
    if ((s = convert(c, c->y_out, ys, c->y))) return s;
    return dnnl_stream_wait(c->stream) == dnnl_success ? 0 : -1;
}

int rm_conv_backward(rm_conv *c, const float *x, const float *dy, const float *w, float *dx, float *dw) {
    int s;
    if ((s = bind_arena(c))) return s;
    dnnl_memory_set_data_handle(c->x, (void *)x);
    dnnl_memory_set_data_handle(c->y, (void *)dy);
    dnnl_memory_set_data_handle(c->w_plain, dw);
    dnnl_memory_t xs = c->src ? c->src : c->x, dys = c->ddst ? c->ddst : c->y;
    if ((s = convert(c, c->x_in, c->x, xs)) || (s = convert(c, c->y_in, c->y, dys))) return s;
    dnnl_memory_t target = c->from_blocked ? c->dw_blocked : c->w_plain;
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, xs}, {DNNL_ARG_DIFF_DST, dys}, {DNNL_ARG_DIFF_WEIGHTS, target},
                            {DNNL_ARG_SCRATCHPAD, c->scratch[BWD_WEIGHTS]}};
    if ((s = run(c, c->prim[BWD_WEIGHTS], 4, a))) return s;
    if ((s = convert(c, c->from_blocked, c->dw_blocked, c->w_plain))) return s;
    if (dx) {
        // The input gradient's own layout reuses src's arena buffer: the weight gradient above was its last reader.
        dnnl_memory_t wm = weights_for(c, 1, w, &s);
        if (s) return s;
        dnnl_memory_set_data_handle(c->x, dx);
        dnnl_memory_t dxs = c->dsrc ? c->dsrc : c->x;
        dnnl_exec_arg_t b[4] = {{DNNL_ARG_DIFF_DST, dys}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, dxs},
                                {DNNL_ARG_SCRATCHPAD, c->scratch[BWD_DATA]}};
        if ((s = run(c, c->prim[BWD_DATA], 4, b))) return s;
        if ((s = convert(c, c->x_out, dxs, c->x))) return s;
    }
    return dnnl_stream_wait(c->stream) == dnnl_success ? 0 : -1;
}

const char *rm_conv_impl(const rm_conv *c, int kind) { return (kind >= 0 && kind < KINDS) ? c->impl[kind] : ""; }

void rm_conv_set_threads(int threads) {
    void (*set)(int) = (void (*)(int))dlsym(RTLD_DEFAULT, "omp_set_num_threads");
    if (set) set(threads);
}

const char *rm_conv_version(void) {
    static char text[32];
    const dnnl_version_t *v = dnnl_version();
    snprintf(text, sizeof text, "%d.%d.%d", v->major, v->minor, v->patch);
    return text;
}

const char *rm_conv_isa(void) {
    switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_sse41: return "sse41";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx512_mic: return "avx512_mic";
    case dnnl_cpu_isa_avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_all: return "all";
    default: return "unknown";
    }
}
