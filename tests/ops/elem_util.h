/* tests/ops/elem_util.h — helpers shared by the linear/activation/dropout/batch-norm
 * suites (tests/ops/test_{linear,act,dropout,norm}.c, tests/grad/test_elem_grad.c):
 * tensors placed as views at an odd offset inside a larger buffer whose other elements
 * hold a canary value, so a kernel that ignores the offset or writes past the end fails. */
#ifndef CLTRAIN_TESTS_ELEM_UTIL_H
#define CLTRAIN_TESTS_ELEM_UTIL_H

#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "testutil.h"

#define EU_CANARY 1234.5f
#define EU_PAD 13 /* canary elements after the view */

typedef struct eu_tensor {
    ct_tensor *base; /* owns the storage */
    ct_tensor *t;    /* the view the op sees (== base when offset == 0 and no padding) */
    size_t offset, numel;
} eu_tensor;

/* A view of `shape` at element `offset` of a canary-filled buffer, holding `host`
 * (numel floats; NULL leaves the canary there too). */
static inline eu_tensor eu_make(ct_context *ctx, size_t offset, size_t ndim, const size_t *shape,
                                const float *host)
{
    eu_tensor e = {0};
    size_t numel = 1;
    for (size_t i = 0; i < ndim; i++)
        numel *= shape[i];
    size_t total = offset + numel + EU_PAD;
    float *h = malloc(total * sizeof *h);
    cr_assert(h != NULL);
    for (size_t i = 0; i < total; i++)
        h[i] = EU_CANARY;
    if (host)
        memcpy(h + offset, host, numel * sizeof *h);
    e.base = tu_tensor(ctx, 1, &total, h);
    TU_OK(ct_tensor_view(e.base, offset, ndim, shape, &e.t));
    e.offset = offset;
    e.numel = numel;
    free(h);
    return e;
}
#define EU_MAKE(ctx, off, host, ...) eu_make((ctx), (off), TU_SHAPE(__VA_ARGS__), (host))

/* Downloads the view's contents (malloc'd) and checks that every element outside the
 * view still holds the canary. */
static inline float *eu_get(const char *what, const eu_tensor *e)
{
    float *all = tu_download(e->base);
    size_t total = e->offset + e->numel + EU_PAD;
    for (size_t i = 0; i < total; i++) {
        if (i >= e->offset && i < e->offset + e->numel)
            continue;
        cr_assert(all[i] == EU_CANARY, "%s: element %zu outside the view was overwritten (%g)",
                  what, i, (double)all[i]);
    }
    float *v = malloc(e->numel * sizeof *v);
    cr_assert(v != NULL);
    memcpy(v, all + e->offset, e->numel * sizeof *v);
    free(all);
    return v;
}

static inline void eu_free(eu_tensor *e)
{
    ct_tensor_free(e->t);
    ct_tensor_free(e->base);
    e->t = e->base = NULL;
}

static inline float *eu_randf(size_t n, uint64_t seed, double lo, double hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static inline double *eu_zerod(size_t n)
{
    double *x = calloc(n ? n : 1, sizeof *x);
    cr_assert(x != NULL);
    return x;
}

#endif
