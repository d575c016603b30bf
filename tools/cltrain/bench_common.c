/* cltrain bench: helpers, synthetic data, the training rig, layer shapes and FLOPs. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_median(double *v, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double bench_min(const double *v, size_t n)
{
    double m = n ? v[0] : 0.0;
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

size_t bench_prod(size_t n, const size_t *v)
{
    size_t p = 1;
    for (size_t i = 0; i < n; i++)
        p *= v[i];
    return p;
}

uint64_t bench_splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

float bench_uniform(uint64_t *s)
{
    return (float)((double)(bench_splitmix64(s) >> 40) * 0x1p-24 * 2.0 - 1.0);
}

int bench_fail(const char *what)
{
    fprintf(stderr, "cltrain bench: %s: %s\n", what, ct_last_error());
    return 1;
}

void bench_csv(bench *b, const char *section, const char *item, size_t batch, const char *metric,
               double value)
{
    if (b->csv)
        fprintf(b->csv, "%s,%s,%zu,%s,%.6g\n", section, item, batch, metric, value);
}

double bench_pct(const bench *b, double gflops)
{
    return b->peak_gflops > 0 ? 100.0 * gflops / b->peak_gflops : NAN;
}

const char *bench_fmt_pct(char *buf, size_t cap, double p)
{
    if (isnan(p))
        snprintf(buf, cap, "%7s", "-");
    else
        snprintf(buf, cap, "%6.1f%%", p);
    return buf;
}

/* ---- option values -------------------------------------------------------------------- */

bool bench_parse_uint(const char *v, size_t lo, size_t hi, size_t *out)
{
    char *end = NULL;
    if (!v || !*v)
        return false;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || *end || x < lo || x > hi || v[0] == '-')
        return false;
    *out = (size_t)x;
    return true;
}

bool bench_parse_list(const char *v, size_t hi, size_t *out, size_t cap, size_t *n)
{
    char buf[256];
    if (!v || strlen(v) >= sizeof buf)
        return false;
    snprintf(buf, sizeof buf, "%s", v);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (*n == cap || !bench_parse_uint(tok, 1, hi, &out[*n]))
            return false;
        (*n)++;
    }
    return *n > 0;
}

void bench_model_defaults(bench_opts *o)
{
    o->model = "minicnn";
    o->in_ndim = 3;
    o->in_shape[0] = 1;
    o->in_shape[1] = o->in_shape[2] = 28;
    o->batch = 64;
}

bool bench_model_option(const char *a, const char *v, bench_opts *o, bool *ok)
{
    size_t x = 0;
    if (strcmp(a, "--model") == 0) {
        *ok = v && *v;
        o->model = v;
    } else if (strcmp(a, "--input") == 0) {
        *ok = bench_parse_list(v, 1u << 20, o->in_shape, 3, &o->in_ndim) &&
              (o->in_ndim == 3 || o->in_ndim == 1);
    } else if (strcmp(a, "--batch") == 0) {
        *ok = bench_parse_uint(v, 1, 1u << 20, &o->batch);
    } else if (strcmp(a, "--device") == 0) {
        *ok = v != NULL;
        o->device = v;
    } else if (strcmp(a, "--threads") == 0) {
        *ok = bench_parse_uint(v, 1, 4096, &x) && setenv("POCL_MAX_PTHREAD_COUNT", v, 1) == 0;
    } else {
        return false;
    }
    return true;
}

/* ---- data and the rig ------------------------------------------------------------------ */

void bench_data_free(bench_data *d)
{
    ct_tensor_free(d->x);
    ct_tensor_free(d->y);
    d->x = d->y = NULL;
}

ct_status bench_data_make(ct_context *ctx, const bench *b, size_t n, uint64_t seed, bench_data *d)
{
    ct_status st = CT_SUCCESS;
    size_t per = bench_prod(b->o.in_ndim, b->o.in_shape), shape[4] = {n, 0, 0, 0};
    memcpy(shape + 1, b->o.in_shape, b->o.in_ndim * sizeof *shape);
    float *hx = malloc(n * per * sizeof *hx), *hy = malloc(n * sizeof *hy);
    uint64_t s = seed;
    d->n = n;
    d->x = d->y = NULL;
    if (!hx || !hy) {
        st = CT_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < n * per; i++)
        hx[i] = bench_uniform(&s);
    for (size_t i = 0; i < n; i++)
        hy[i] = (float)(bench_splitmix64(&s) % b->classes);
    if ((st = ct_tensor_create(ctx, b->o.in_ndim + 1, shape, &d->x)) ||
        (st = ct_tensor_create(ctx, 1, &n, &d->y)) || (st = ct_tensor_upload(d->x, hx, n * per)) ||
        (st = ct_tensor_upload(d->y, hy, n)))
        bench_data_free(d);
done:
    free(hx);
    free(hy);
    return st;
}

void bench_rig_free(bench_rig *r)
{
    ct_trainer_free(r->tr);
    ct_optim_free(r->opt);
    ct_model_free(r->m);
    memset(r, 0, sizeof *r);
}

ct_status bench_rig_make(ct_context *ctx, const bench *b, bench_rig *r)
{
    ct_status st;
    memset(r, 0, sizeof *r);
    ct_optim_options oo = ct_optim_defaults(b->o.optim);
    oo.lr = b->o.lr;
    ct_trainer_options to = ct_trainer_defaults();
    to.check_every = (size_t)1 << 30; /* no host read inside the timed loops */
    if ((st = ct_model_create(ctx, b->layers, b->nlayers, b->o.in_ndim, b->o.in_shape, b->o.seed,
                              &r->m)) ||
        (st = ct_optim_create(ctx, &oo, ct_model_params(r->m), ct_model_grads(r->m), &r->opt)) ||
        (st = ct_trainer_create(r->m, r->opt, NULL, CT_SCHED_PER_STEP, &to, &r->tr)))
        bench_rig_free(r);
    return st;
}

ct_status bench_time_train(ct_context *ctx, bench_rig *r, const bench_data *d, size_t warmup,
                           size_t runs, size_t steps, double *t)
{
    ct_status st = CT_SUCCESS;
    for (size_t i = 0; i < warmup && !st; i++)
        st = ct_trainer_step(r->tr, d->x, d->y, NULL);
    if (!st)
        st = ct_context_finish(ctx);
    for (size_t run = 0; run < runs && !st; run++) {
        double t0 = bench_now();
        for (size_t i = 0; i < steps && !st; i++)
            st = ct_trainer_step(r->tr, d->x, d->y, NULL);
        if (!st)
            st = ct_context_finish(ctx);
        t[run] = (bench_now() - t0) / (double)steps;
    }
    return st;
}

/* ---- layers ------------------------------------------------------------------------------- */

ct_status bench_layer_input(const bench *b, size_t i, size_t *ndim, size_t *shape)
{
    if (i == 0) {
        *ndim = b->o.in_ndim;
        memcpy(shape, b->o.in_shape, sizeof b->o.in_shape);
        return CT_SUCCESS;
    }
    return ct_layers_check(b->layers, i, b->o.in_ndim, b->o.in_shape, ndim, shape, NULL);
}

size_t bench_first_param_layer(const bench *b)
{
    for (size_t i = 0; i < b->nlayers; i++) {
        ct_layer_kind k = b->layers[i].kind;
        if (k == CT_LAYER_CONV2D || k == CT_LAYER_LINEAR ||
            (k == CT_LAYER_BATCHNORM && b->layers[i].affine))
            return i;
    }
    return b->nlayers;
}

void bench_layer_flops(const bench *b, size_t i, double *fwd, double *bwd)
{
    size_t nd, in[3] = {0, 0, 0}, ond, out[3] = {0, 0, 0};
    const ct_layer_desc *l = &b->layers[i];
    *fwd = *bwd = 0.0;
    if (bench_layer_input(b, i, &nd, in) || bench_layer_input(b, i + 1, &ond, out))
        return;
    if (l->kind == CT_LAYER_CONV2D) /* 2 C/g R S per output element */
        *fwd = 2.0 * (double)(in[0] / l->groups) * (double)(l->kernel_h * l->kernel_w) *
               (double)bench_prod(ond, out);
    else if (l->kind == CT_LAYER_LINEAR)
        *fwd = 2.0 * (double)bench_prod(nd, in) * (double)out[0];
    *bwd = *fwd * (i > bench_first_param_layer(b) ? 2.0 : 1.0);
}

void bench_layer_name(const bench *b, size_t i, char *buf, size_t cap)
{
    size_t nd, in[3] = {0, 0, 0};
    const ct_layer_desc *l = &b->layers[i];
    if (bench_layer_input(b, i, &nd, in))
        nd = 1;
    switch (l->kind) {
    case CT_LAYER_CONV2D:
        snprintf(buf, cap, "conv %zu->%zu %zux%zu", in[0], l->out, l->kernel_h, l->kernel_w);
        break;
    case CT_LAYER_LINEAR:
        snprintf(buf, cap, "linear %zu->%zu", bench_prod(nd, in), l->out);
        break;
    case CT_LAYER_MAXPOOL2D:
    case CT_LAYER_AVGPOOL2D:
        snprintf(buf, cap, "%s %zu", ct_layer_kind_name(l->kind), l->kernel_h);
        break;
    default:
        snprintf(buf, cap, "%s", ct_layer_kind_name(l->kind));
    }
}
