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

/* A model's parameters or buffers (ct_model_get_params / _buffers) in a new malloc'd
 * array (never NULL, even when the model has none). */
float *tu_model_params(ct_model *m);
float *tu_model_buffers(ct_model *m);

/* A device tensor `t` that is a view of `shape` at element `off` of a larger buffer
 * `base` whose other elements (`off` before the view, TU_VIEW_PAD after it) hold
 * TU_CANARY, so a kernel that ignores the offset, misaligns a vector access or writes
 * past the end is caught by tu_view_get. */
#define TU_CANARY   1234.5f
#define TU_VIEW_PAD 13
typedef struct tu_view {
    ct_tensor *base; /* owns the storage */
    ct_tensor *t;    /* the view the op sees */
    size_t off, numel;
} tu_view;

/* host: numel floats, or NULL to leave the canary inside the view too. */
tu_view tu_view_new(ct_context *ctx, size_t off, size_t ndim, const size_t *shape,
                    const float *host);
#define TU_VIEW(ctx, off, host, ...) tu_view_new((ctx), (off), TU_SHAPE(__VA_ARGS__), (host))

/* The view's contents (malloc'd); fails the test when an element outside it changed. */
float *tu_view_get(const char *what, const tu_view *v);
void tu_view_free(tu_view *v);

/* malloc'd arrays (never NULL, even for n == 0): uniform random floats in [lo, hi), NaNs
 * (the start value of an output that must be overwritten), a float array widened to
 * double, and zeros. */
float *tu_rand(size_t n, uint64_t seed, double lo, double hi);
float *tu_nans(size_t n);
double *tu_widen(const float *x, size_t n);
double *tu_zeros(size_t n);

/* Asserts |got[i] - ref[i]| <= atol + rtol*|ref[i]| for all i; on failure reports the
 * count of mismatches and the worst one with its index. */
void tu_assert_close(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol);
void tu_assert_close_f(const char *what, const float *got, const float *ref, size_t n,
                       double atol, double rtol);
/* The same for a double-precision result (a reference's gradient against finite
 * differences). */
void tu_assert_close_d(const char *what, const double *got, const double *ref, size_t n,
                       double atol, double rtol);

/* ---- files -------------------------------------------------------------------------- */

/* A fresh temporary folder for each test: tu_tmpdir_setup makes "$TMPDIR/ct_test_XXXXXX"
 * (/tmp when TMPDIR is unset or empty), tu_tmpdir_teardown deletes it with everything
 * inside. Meant as a suite's .init and .fini. */
void tu_tmpdir_setup(void);
void tu_tmpdir_teardown(void);
const char *tu_tmpdir(void);

/* "<tu_tmpdir()>/<name>" in static storage: four rotating slots, so up to four paths
 * are valid at once. */
const char *tu_tmp_path(const char *name);

/* Deletes `dir` and everything under it; read-only subfolders are made writable first. */
void tu_rmtree(const char *dir);

/* Writes (creates or truncates) `path` with len bytes; fails the test on any error. */
void tu_write_file(const char *path, const void *bytes, size_t len);

/* The whole file, malloc'd, with a NUL byte after its last byte; *len (when len is not
 * NULL) its size. Fails the test when the file cannot be read. */
void *tu_read_file(const char *path, size_t *len);

#endif
