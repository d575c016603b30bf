/* tests/common/golden.h — reads the golden vectors written by tests/golden/gen_*.py.
 *
 * File format (text, one record per line, '#' starts a comment line):
 *     NAME NDIM D0 .. D{NDIM-1} : V0 V1 ...
 * NAME has no spaces; values are Python reprs of float32 numbers (exact), or nan/inf/-inf.
 * A scalar is NDIM 0 with one value. Files live in tests/golden/data/. */
#ifndef CLTRAIN_GOLDEN_H
#define CLTRAIN_GOLDEN_H

#include <stddef.h>

#include "cltrain/cltrain.h"

typedef struct tu_gold_tensor {
    char *name;
    size_t ndim;
    size_t shape[8];
    size_t numel;
    double *v;
} tu_gold_tensor;

typedef struct tu_golden {
    tu_gold_tensor *t;
    size_t count;
} tu_golden;

/* Loads tests/golden/data/<file>; fails the running test on any error. */
tu_golden *tu_golden_load(const char *file);
void tu_golden_free(tu_golden *g);
/* The record named `name`; fails the test when absent. */
const tu_gold_tensor *tu_golden_get(const tu_golden *g, const char *name);
/* Same, or NULL when absent. */
const tu_gold_tensor *tu_golden_find(const tu_golden *g, const char *name);
/* Copy of a record's values as float32 (malloc'd). */
float *tu_gold_floats(const tu_gold_tensor *t);
/* A new device tensor of the record's shape (a scalar as shape (1)) holding its values
 * as float32. */
ct_tensor *tu_gold_upload(ct_context *ctx, const tu_gold_tensor *t);
/* Asserts that device tensor t has the record's element count and values within
 * atol + rtol*|ref| (tu_assert_close, reported as `what`). */
void tu_gold_expect(const char *what, const ct_tensor *t, const tu_gold_tensor *ref, double atol,
                    double rtol);

/* A parameter-shaped array v (ndim, shape) against its record "<prefix><key>", or, when
 * there is none, a 2-D one against the three records gen_minicnn.py's write_big_or_full
 * keeps for a big tensor: "<prefix>sub.<key>" (every `stride`-th element of the flat
 * tensor), "<prefix>rowsum.<key>" and "<prefix>colsum.<key>" (sums taken here in double,
 * compared as float). Elements pass within atol + rtol*|ref|, sums within
 * sum_atol + rtol*|ref|. */
void tu_golden_check_param(const tu_golden *g, const char *prefix, const char *key, const float *v,
                           size_t ndim, const size_t *shape, size_t stride, double atol,
                           double sum_atol, double rtol);

#endif
