/* tests/ops/conv_util.h — helpers shared by the conv and pooling suites (tests/ops and
 * tests/grad): device tensors that are views at an odd offset inside a larger buffer
 * whose other elements are canaries, and float <-> double conversions. */
#ifndef CLTRAIN_TESTS_CONV_UTIL_H
#define CLTRAIN_TESTS_CONV_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define CU_CANARY 1234.5f

/* A view of `ndim`/`shape` at element `off` of a buffer with `off` canaries before it
 * and 5 after it. */
typedef struct cu_slab {
    ct_tensor *base, *view;
    size_t off, n, total;
} cu_slab;

/* host (n floats) or, when NULL, canaries inside too. */
static inline cu_slab cu_slab_new(ct_context *ctx, size_t ndim, const size_t *shape,
                                  const float *host, size_t off)
{
    cu_slab s = {0};
    s.n = 1;
    for (size_t i = 0; i < ndim; i++)
        s.n *= shape[i];
    s.off = off;
    s.total = off + s.n + 5;
    float *h = malloc(s.total * sizeof *h);
    cr_assert(h != NULL);
    for (size_t i = 0; i < s.total; i++)
        h[i] = CU_CANARY;
    if (host)
        memcpy(h + off, host, s.n * sizeof *h);
    s.base = tu_tensor(ctx, 1, &s.total, h);
    TU_OK(ct_tensor_view(s.base, off, ndim, shape, &s.view));
    free(h);
    return s;
}

/* The view's contents; fails the test when a canary around it changed. */
static inline float *cu_slab_get(const cu_slab *s, const char *what)
{
    float *all = tu_download(s->base);
    for (size_t i = 0; i < s->total; i++)
        if (i < s->off || i >= s->off + s->n)
            cr_assert(all[i] == CU_CANARY, "%s: canary at %zd (relative to the view) is %g", what,
                      (ptrdiff_t)i - (ptrdiff_t)s->off, (double)all[i]);
    float *v = malloc(s->n * sizeof *v);
    cr_assert(v != NULL);
    memcpy(v, all + s->off, s->n * sizeof *v);
    free(all);
    return v;
}

static inline void cu_slab_free(cu_slab *s)
{
    ct_tensor_free(s->view);
    ct_tensor_free(s->base);
}

static inline float *cu_rand(size_t n, uint64_t seed, double lo, double hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static inline double *cu_to_double(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    cr_assert(d != NULL);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

static inline double *cu_zeros(size_t n)
{
    double *d = calloc(n ? n : 1, sizeof *d);
    cr_assert(d != NULL);
    return d;
}

#endif
