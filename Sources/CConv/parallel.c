// Our parallel loops on libgomp's thread team (see cconv.h). GOMP_parallel is the entry point gcc
// compiles `#pragma omp parallel` into (libgomp ≥ 4.9); it is looked up with dlsym so that this file needs
// neither -fopenmp nor libgomp's headers, only the libgomp that oneDNN already loads.
#include "cconv.h"
#include <dlfcn.h>
#include <pthread.h>

typedef void (*gomp_parallel_fn)(void (*)(void *), void *, unsigned, unsigned);
static gomp_parallel_fn gomp_parallel;
static int (*thread_num)(void);
static int (*num_threads)(void);
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void resolve(void) {
    gomp_parallel = (gomp_parallel_fn)dlsym(RTLD_DEFAULT, "GOMP_parallel");
    thread_num = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_thread_num");
    num_threads = (int (*)(void))dlsym(RTLD_DEFAULT, "omp_get_num_threads");
}

struct team { rm_task_fn fn; void *ctx; int tasks; };

static void body(void *p) {
    const struct team *t = p;
    int n = num_threads(), me = thread_num();
    for (int k = me; k < t->tasks; k += n) t->fn(t->ctx, k);
}

int rm_parallel_for(int tasks, int threads, rm_task_fn fn, void *ctx) {
    pthread_once(&once, resolve);
    if (!gomp_parallel || !thread_num || !num_threads) return -1;
    struct team t = {fn, ctx, tasks};
    gomp_parallel(body, &t, (unsigned)threads, 0);
    return 0;
}
