/* What the files of `cltrain bench` share: options, the run's state, synthetic data, the
 * training rig, and shapes and FLOP counts of the model's layers.
 *
 *   cmd_bench.c      options, the header, training and inference throughput, batch sweep
 *   bench_common.c   the helpers below
 *   bench_profile.c  per-layer-group and per-kernel device times (profiling events)
 *   bench_gemm.c     CLBlast GEMM at the linear layers' shapes; device memory
 *   bench_startup.c  a fresh process to its first training step, warm and cold caches
 *   bench_peak.c     the FP32 peak micro-kernel (kernels/peak.cl)
 */
#ifndef CLTRAIN_BENCH_H
#define CLTRAIN_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cltrain/cltrain.h"
#include "cltrain/trainer.h"

#define BENCH_MAX_BATCHES 32

typedef struct bench_opts {
    const char *model; /* spec or builtin name */
    size_t in_ndim, in_shape[3];
    size_t batch;
    size_t batches[BENCH_MAX_BATCHES], nbatches;
    size_t steps, runs, warmup;
    const char *device; /* NULL: the library's default choice */
    ct_optim_kind optim;
    double lr;
    double peak_gflops; /* --peak-gflops, 0: measure */
    const char *csv;
    uint64_t seed;
    bool peak, train, layers, gemm, memory, sweep, startup, startup_child;
} bench_opts;

typedef struct bench {
    bench_opts o;
    ct_layer_desc *layers;
    size_t nlayers;
    size_t classes;
    FILE *csv;                   /* --csv, or NULL */
    double peak_gflops;          /* 0 when not measured */
    double flops_fwd, flops_bwd; /* per image, conv and linear layers */
    double step_ms;              /* median training step at --batch, wall clock; 0 if not run */
    bool gemm_clblast;           /* ct_gemm runs CLBlast */
} bench;

/* ---- helpers (bench_common.c) ----------------------------------------------------- */

double bench_now(void);                   /* CLOCK_MONOTONIC seconds */
double bench_median(double *v, size_t n); /* sorts v */
double bench_min(const double *v, size_t n);
size_t bench_prod(size_t n, const size_t *v);
/* A uniform float in [-1, 1) from a splitmix64 stream. */
float bench_uniform(uint64_t *state);
uint64_t bench_splitmix64(uint64_t *state);
/* Prints "cltrain bench: WHAT: <last error>" and returns 1. */
int bench_fail(const char *what);
void bench_csv(bench *b, const char *section, const char *item, size_t batch, const char *metric,
               double value);
/* Percent of the measured peak, NAN without one; fmt_pct writes "  12.3%" or "      -". */
double bench_pct(const bench *b, double gflops);
const char *bench_fmt_pct(char *buf, size_t cap, double pct);

/* Option values, as `cltrain bench` and `cltrain tune` parse them: a whole number in
 * [lo, hi] (no sign, nothing after it), and "a,b,c" into out[0..*n), at most cap values,
 * each in [1, hi]. */
bool bench_parse_uint(const char *v, size_t lo, size_t hi, size_t *out);
bool bench_parse_list(const char *v, size_t hi, size_t *out, size_t cap, size_t *n);
/* The model options both commands take, and their defaults (minicnn, input 1,28,28,
 * batch 64): bench_model_option parses option `a` with value `v` into o when it is one of
 * --model, --input, --batch, --device, --threads (T sets POCL_MAX_PTHREAD_COUNT), setting
 * *ok to whether the value is good; false when `a` is none of them. */
void bench_model_defaults(bench_opts *o);
bool bench_model_option(const char *a, const char *v, bench_opts *o, bool *ok);

/* ---- data and the rig ----------------------------------------------------------------- */

typedef struct bench_data {
    ct_tensor *x, *y; /* x: (n, in_shape...) uniform in [-1, 1); y: (n) class indices */
    size_t n;
} bench_data;

ct_status bench_data_make(ct_context *ctx, const bench *b, size_t n, uint64_t seed, bench_data *d);
void bench_data_free(bench_data *d);

/* A model, its optimizer and a trainer (cross-entropy) that reads nothing back during
 * the timed steps. */
typedef struct bench_rig {
    ct_model *m;
    ct_optim *opt;
    ct_trainer *tr;
} bench_rig;

ct_status bench_rig_make(ct_context *ctx, const bench *b, bench_rig *r);
void bench_rig_free(bench_rig *r);
/* Times `runs` runs of `steps` training steps after `warmup` steps; t[run] = seconds per
 * step (a finish ends each run). */
ct_status bench_time_train(ct_context *ctx, bench_rig *r, const bench_data *d, size_t warmup,
                           size_t runs, size_t steps, double *t);

/* ---- layers --------------------------------------------------------------------------- */

/* Per-sample input shape of layer i (i == nlayers: the model's output). */
ct_status bench_layer_input(const bench *b, size_t i, size_t *ndim, size_t *shape);
/* The first layer with parameters (ct_model computes no input gradient for it). */
size_t bench_first_param_layer(const bench *b);
/* FLOPs per sample of layer i: forward; backward = weight gradient plus, above the first
 * parameter layer, the input gradient. Zero for layers other than conv and linear. */
void bench_layer_flops(const bench *b, size_t i, double *fwd, double *bwd);
/* A short name: "conv 1->32 3x3", "maxpool 2", "linear 3136->128". */
void bench_layer_name(const bench *b, size_t i, char *buf, size_t cap);

/* ---- GEMMs ------------------------------------------------------------------------------ */

/* One product as lib/nn/linear.c calls ct_gemm (row-major, lda/ldb/ldc unpadded). */
typedef struct bench_gemm_shape {
    size_t layer;
    const char *pass; /* "forward", "grad in", "grad w" */
    bool ta, tb;
    size_t m, n, k;
    float beta;
} bench_gemm_shape;

/* The GEMMs of one training step at batch n, in layer order: per linear layer the forward
 * y = x w^T, the input gradient dx = dy w (not for the first parameter layer) and the
 * weight gradient dw += dy^T x. Writes at most cap; returns how many there are, or
 * (size_t)-1 when the layer shapes cannot be computed. */
size_t bench_gemm_shapes(const bench *b, size_t n, bench_gemm_shape *out, size_t cap);

/* ---- sections ------------------------------------------------------------------------- */

int bench_section_layers(bench *b);                /* bench_profile.c */
int bench_section_gemm(bench *b, ct_context *ctx); /* bench_gemm.c */
void bench_section_memory(bench *b, ct_context *ctx, bench_rig *r, const bench_data *d);
int bench_section_startup(bench *b); /* bench_startup.c */
int bench_startup_child(bench *b);

#endif
