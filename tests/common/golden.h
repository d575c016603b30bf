/* tests/common/golden.h — reads the golden vectors written by tests/golden/gen_*.py.
 *
 * File format (text, one record per line, '#' starts a comment line):
 *     NAME NDIM D0 .. D{NDIM-1} : V0 V1 ...
 * NAME has no spaces; values are Python reprs of float32 numbers (exact), or nan/inf/-inf.
 * A scalar is NDIM 0 with one value. Files live in tests/golden/data/. */
#ifndef CLTRAIN_GOLDEN_H
#define CLTRAIN_GOLDEN_H

#include <stddef.h>

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

#endif
