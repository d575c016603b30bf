/* tests/common/testutil.h — what every Criterion suite shares: a device context that
 * skips cleanly when no OpenCL device exists, deterministic random data, tensors from
 * host arrays, and the tolerance check |got - ref| <= atol + rtol*|ref|. */
#ifndef CLTRAIN_TESTUTIL_H
#define CLTRAIN_TESTUTIL_H

#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>

#include "cltrain/cltrain.h"

/* A context on the default device (CLTRAIN_DEVICE honoured). Skips the test with a clear
 * message when the machine has no OpenCL device; fails it on any other error. */
ct_context *tu_context(void);
ct_context *tu_context_flags(unsigned flags);

/* Fails the test with ct_last_error() when st != CT_SUCCESS. */
#define TU_OK(expr)                                                                        \
    do {                                                                                   \
        ct_status tu_st_ = (expr);                                                         \
        cr_assert(tu_st_ == CT_SUCCESS, "%s -> %s: %s", #expr, ct_status_str(tu_st_),     \
                  ct_last_error());                                                        \
    } while (0)

/* Deterministic generator (splitmix64) for test data. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
uint64_t tu_rng_next(tu_rng *r);
double tu_rng_uniform(tu_rng *r, double lo, double hi);
void tu_fill_uniform(float *x, size_t n, uint64_t seed, double lo, double hi);

/* New tensor with the given shape holding `host` (numel floats). */
ct_tensor *tu_tensor(ct_context *ctx, size_t ndim, const size_t *shape, const float *host);
#define TU_SHAPE(...) (sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t)), ((size_t[]){__VA_ARGS__})

/* Downloads a tensor into a new malloc'd array. */
float *tu_download(const ct_tensor *t);

/* Asserts |got[i] - ref[i]| <= atol + rtol*|ref[i]| for all i; on failure reports the
 * count of mismatches and the worst one with its index. */
void tu_assert_close(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol);
void tu_assert_close_f(const char *what, const float *got, const float *ref, size_t n,
                       double atol, double rtol);

#endif
