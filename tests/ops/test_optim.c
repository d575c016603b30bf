/* Optimizers and gradient clipping on the device against the double-precision reference
 * (lib/ref/optim_ref.c), plus the API's promises: one launch per step, untouched
 * elements outside the groups, exact state round-trips, determinism and validation.
 *
 * Tolerance for 20-step trajectories: the kernel rounds every float32 operation (about
 * ten per element and step, each <= 2^-24 relative) and sees float32-rounded
 * hyper-parameters; the parameters move by ~lr per step. The accumulated difference to
 * the double reference stays below ~20 steps * 4 roundings * 6e-8 ~ 5e-6 relative to the
 * magnitudes involved (|p| <= ~2), so |got - ref| <= 2e-5 + 2e-5*|ref| has a 4x margin,
 * while any wrong formula (a missing bias correction, dampening or decay) moves the
 * parameters by >= 1e-4 within 20 steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "ref/optim_ref.h"
#include "testutil.h"

#define ATOL 2e-5
#define RTOL 2e-5
#define STEPS 20

/* n parameters inside a bigger buffer (canaries on both sides), grads at another offset */
typedef struct fixture {
    ct_context *ctx;
    ct_tensor *pbuf, *gbuf, *p, *g;
    size_t n, pad;
} fixture;

static void fixture_init(fixture *f, ct_context *ctx, size_t n)
{
    f->ctx = ctx;
    f->n = n;
    f->pad = 7;
    float *canary = malloc((n + 2 * f->pad) * sizeof *canary);
    cr_assert(canary);
    for (size_t i = 0; i < n + 2 * f->pad; i++)
        canary[i] = 1234.5f;
    f->pbuf = tu_tensor(ctx, TU_SHAPE(n + 2 * f->pad), canary);
    f->gbuf = tu_tensor(ctx, TU_SHAPE(n + 2 * f->pad + 3), NULL);
    TU_OK(ct_tensor_view(f->pbuf, f->pad, 1, (size_t[]){n}, &f->p));
    TU_OK(ct_tensor_view(f->gbuf, f->pad + 3, 1, (size_t[]){n}, &f->g));
    free(canary);
}

static void fixture_check_canaries(const fixture *f)
{
    float *all = tu_download(f->pbuf);
    for (size_t i = 0; i < f->pad; i++) {
        cr_assert(all[i] == 1234.5f, "canary before the view overwritten at %zu", i);
        cr_assert(all[f->pad + f->n + i] == 1234.5f, "canary after the view overwritten at %zu",
                  i);
    }
    free(all);
}

static void fixture_free(fixture *f)
{
    ct_tensor_free(f->p);
    ct_tensor_free(f->g);
    ct_tensor_free(f->pbuf);
    ct_tensor_free(f->gbuf);
}

static void upload_d(ct_tensor *t, const double *x, size_t n)
{
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    for (size_t i = 0; i < n; i++)
        h[i] = (float)x[i];
    TU_OK(ct_tensor_upload(t, h, n));
    free(h);
}

/* Runs STEPS steps of `o` on the device and on the reference from the same data, with a
 * learning rate change half-way through, and compares parameters and state buffers. */
static void run_case(const char *what, const ct_optim_options *o, size_t n, uint64_t seed)
{
    ct_context *ctx = tu_context();
    fixture f;
    fixture_init(&f, ctx, n);
    double *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
    float *pf = malloc(n * sizeof *pf), *gf = malloc(n * sizeof *gf);
    cr_assert(p && g && pf && gf);
    tu_fill_uniform(pf, n, seed, -1.0, 1.0);
    for (size_t i = 0; i < n; i++)
        p[i] = pf[i];
    TU_OK(ct_tensor_upload(f.p, pf, n));

    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, o, f.p, f.g, &opt));
    ct_ref_optim ref;
    cr_assert(ct_ref_optim_init(&ref, o, n) == 0);

    for (int s = 0; s < STEPS; s++) {
        tu_fill_uniform(gf, n, seed * 1000 + (uint64_t)s, -1.0, 1.0);
        for (size_t i = 0; i < n; i++)
            g[i] = gf[i];
        upload_d(f.g, g, n);
        if (s == STEPS / 2) {
            for (size_t k = 0; k < ct_optim_group_count(opt); k++) {
                double lr;
                TU_OK(ct_optim_get_lr(opt, k, &lr));
                TU_OK(ct_optim_set_lr(opt, k, lr * 0.5));
                ref.lr[k] = lr * 0.5;
            }
        }
        TU_OK(ct_optim_step(opt));
        ct_ref_optim_step(&ref, p, g);
    }
    cr_assert(ct_optim_get_step(opt) == STEPS);
    float *got = tu_download(f.p);
    tu_assert_close(what, got, p, n, ATOL, RTOL);
    /* elements outside every range: bit-identical to the start */
    for (size_t i = 0; i < n; i++)
        if (ref.group[i] < 0)
            cr_assert(got[i] == pf[i], "%s: element %zu outside the groups changed", what, i);
    /* state buffers against the reference */
    for (size_t e = 0; e < ct_optim_state_count(opt); e++) {
        ct_optim_state_info info;
        TU_OK(ct_optim_state_info_at(opt, e, &info));
        if (info.dtype != CT_STATE_F32)
            continue;
        const double *want = NULL;
        if (!strcmp(info.name, "momentum_buffer"))
            want = o->kind == CT_OPTIM_SGD ? ref.s0 : ref.s1;
        else if (!strcmp(info.name, "exp_avg") || !strcmp(info.name, "square_avg") ||
                 !strcmp(info.name, "sum"))
            want = ref.s0;
        else if (!strcmp(info.name, "exp_avg_sq"))
            want = ref.s1;
        else if (!strcmp(info.name, "max_exp_avg_sq") || !strcmp(info.name, "grad_avg"))
            want = ref.s2;
        cr_assert(want != NULL, "%s: unexpected state %s", what, info.name);
        float *st = malloc(n * sizeof *st);
        cr_assert(st);
        TU_OK(ct_optim_state_get(opt, info.name, st, n));
        char label[128];
        snprintf(label, sizeof label, "%s state %s", what, info.name);
        tu_assert_close(label, st, want, n, ATOL, RTOL);
        free(st);
    }
    fixture_check_canaries(&f);
    free(got);
    ct_ref_optim_free(&ref);
    ct_optim_free(opt);
    fixture_free(&f);
    free(p);
    free(g);
    free(pf);
    free(gf);
    ct_context_free(ctx);
}

/* Three groups over interleaved ranges (weights, biases, norm parameters), with a hole
 * that belongs to no group. n = 1000 spans several chunks on every device. */
static const ct_optim_group groups3[] = {{0.02, 0.01}, {0.05, 0.0}, {0.01, 0.03}};
static const ct_optim_range ranges3[] = {
    {0, 301, 0}, {301, 17, 1}, {318, 250, 0}, {568, 33, 1}, {601, 9, 2}, {640, 360, 2},
};
#define N3 1000

static ct_optim_options with_groups(ct_optim_options o)
{
    o.groups = groups3;
    o.n_groups = 3;
    o.ranges = ranges3;
    o.n_ranges = sizeof ranges3 / sizeof ranges3[0];
    return o;
}

Test(optim, sgd_variants)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    o.lr = 0.05;
    run_case("sgd plain", &o, 37, 1);
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    run_case("sgd momentum+wd", &o, 1001, 2);
    o.dampening = 0.3;
    o.maximize = true;
    run_case("sgd dampening+maximize", &o, 129, 3);
    o.dampening = 0;
    o.nesterov = true;
    run_case("sgd nesterov groups", (ct_optim_options[]){with_groups(o)}, N3, 4);
}

Test(optim, adam_variants)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_ADAM);
    o.lr = 0.01;
    run_case("adam", &o, 37, 5);
    o.weight_decay = 0.05;
    o.amsgrad = true;
    run_case("adam wd+amsgrad", &o, 1001, 6);
    o.beta1 = 0.8;
    o.beta2 = 0.99;
    o.eps = 1e-6;
    o.maximize = true;
    run_case("adam betas+maximize groups", (ct_optim_options[]){with_groups(o)}, N3, 7);
    o.eps = 0.2;
    run_case("adam big eps", &o, 37, 16);
}

Test(optim, adamw_variants)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_ADAMW);
    o.lr = 0.01;
    run_case("adamw", &o, 37, 8);
    o.amsgrad = true;
    o.weight_decay = 0.1;
    run_case("adamw amsgrad groups", (ct_optim_options[]){with_groups(o)}, N3, 9);
}

Test(optim, rmsprop_variants)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_RMSPROP);
    run_case("rmsprop", &o, 37, 10);
    o.momentum = 0.9;
    o.weight_decay = 0.01;
    run_case("rmsprop momentum+wd", &o, 1001, 11);
    o.centered = true;
    o.alpha = 0.9;
    o.maximize = true;
    run_case("rmsprop centered groups", (ct_optim_options[]){with_groups(o)}, N3, 12);
    o.eps = 0.3;
    run_case("rmsprop big eps", &o, 37, 17);
}

Test(optim, adagrad_variants)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_ADAGRAD);
    o.lr = 0.1;
    run_case("adagrad", &o, 37, 13);
    o.lr_decay = 0.05;
    o.initial_accumulator_value = 0.5;
    o.weight_decay = 0.1;
    o.maximize = true;
    run_case("adagrad decay+init groups", (ct_optim_options[]){with_groups(o)}, N3, 14);
    o.eps = 0.3; /* where eps is added shows only when it is large */
    run_case("adagrad big eps", &o, 37, 15);
}

/* One launch per step, whatever the number of groups. */
Test(optim, one_launch_per_step)
{
    ct_context *ctx = tu_context_flags(CT_CONTEXT_PROFILING);
    fixture f;
    fixture_init(&f, ctx, N3);
    TU_OK(ct_tensor_fill(f.g, 0.5f));
    ct_optim_options o = with_groups(ct_optim_defaults(CT_OPTIM_ADAM));
    o.amsgrad = true;
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, f.p, f.g, &opt));
    TU_OK(ct_context_finish(ctx));
    ct_profile_reset(ctx);
    for (int s = 0; s < 3; s++)
        TU_OK(ct_optim_step(opt));
    ct_profile_entry *e = NULL;
    size_t n = 0;
    TU_OK(ct_profile_collect(ctx, &e, &n));
    unsigned launches = 0;
    for (size_t i = 0; i < n; i++)
        launches += e[i].launches;
    cr_assert(n == 1 && launches == 3, "expected one label with 3 launches, got %zu labels, %u "
                                       "launches (first: %s)",
              n, launches, n ? e[0].label : "-");
    free(e);
    ct_optim_free(opt);
    fixture_free(&f);
    ct_context_free(ctx);
}

/* Export after 7 steps, import into a fresh optimizer over a copy of the parameters, run
 * both 13 more steps: bit-identical parameters and state. */
static void roundtrip(ct_optim_options o)
{
    ct_context *ctx = tu_context();
    const size_t n = N3;
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    tu_fill_uniform(h, n, 77, -1, 1);
    ct_tensor *pa = tu_tensor(ctx, TU_SHAPE(n), h), *pb = tu_tensor(ctx, TU_SHAPE(n), NULL);
    ct_tensor *g = tu_tensor(ctx, TU_SHAPE(n), NULL);
    ct_optim *a = NULL, *b = NULL;
    TU_OK(ct_optim_create(ctx, &o, pa, g, &a));
    for (int s = 0; s < 20; s++) {
        tu_fill_uniform(h, n, 500 + (uint64_t)s, -1, 1);
        TU_OK(ct_tensor_upload(g, h, n));
        if (s == 7) {
            TU_OK(ct_optim_set_lr(a, 1, 0.123));
            TU_OK(ct_tensor_copy(pb, pa));
            TU_OK(ct_optim_create(ctx, &o, pb, g, &b));
            for (size_t e = 0; e < ct_optim_state_count(a); e++) {
                ct_optim_state_info info;
                TU_OK(ct_optim_state_info_at(a, e, &info));
                size_t bytes = info.numel * (info.dtype == CT_STATE_F64 ? 8 : 4);
                void *buf = malloc(bytes);
                cr_assert(buf);
                TU_OK(ct_optim_state_get(a, info.name, buf, info.numel));
                TU_OK(ct_optim_state_set(b, info.name, buf, info.numel));
                free(buf);
            }
            cr_assert(ct_optim_state_count(a) == ct_optim_state_count(b));
        }
        TU_OK(ct_optim_step(a));
        if (b)
            TU_OK(ct_optim_step(b));
    }
    float *ga = tu_download(pa), *gb = tu_download(pb);
    cr_assert(memcmp(ga, gb, n * sizeof *ga) == 0, "%s: resumed trajectory differs",
              ct_optim_kind_name(o.kind));
    cr_assert(ct_optim_get_step(b) == 20);
    free(ga);
    free(gb);
    ct_optim_free(a);
    ct_optim_free(b);
    ct_tensor_free(pa);
    ct_tensor_free(pb);
    ct_tensor_free(g);
    free(h);
    ct_context_free(ctx);
}

Test(optim, state_roundtrip)
{
    ct_optim_options o = with_groups(ct_optim_defaults(CT_OPTIM_SGD));
    o.momentum = 0.9;
    o.dampening = 0.5; /* makes the first-step rule visible */
    roundtrip(o);
    o = with_groups(ct_optim_defaults(CT_OPTIM_ADAMW));
    o.amsgrad = true;
    roundtrip(o);
    o = with_groups(ct_optim_defaults(CT_OPTIM_RMSPROP));
    o.centered = true;
    o.momentum = 0.5;
    roundtrip(o);
    o = with_groups(ct_optim_defaults(CT_OPTIM_ADAGRAD));
    o.lr_decay = 0.1;
    roundtrip(o);
}

/* SGD created without momentum, given one later (as OneCycleLR does): the buffer starts
 * with PyTorch's first-step rule at that step. */
Test(optim, sgd_momentum_set_later)
{
    ct_context *ctx = tu_context();
    const size_t n = 300;
    float *h = malloc(n * sizeof *h);
    double *p = malloc(n * sizeof *p), *gd = malloc(n * sizeof *gd);
    cr_assert(h && p && gd);
    tu_fill_uniform(h, n, 9, -1, 1);
    for (size_t i = 0; i < n; i++)
        p[i] = h[i];
    ct_tensor *pt = tu_tensor(ctx, TU_SHAPE(n), h), *g = tu_tensor(ctx, TU_SHAPE(n), NULL);
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    o.lr = 0.1;
    o.dampening = 0.25;
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, pt, g, &opt));
    ct_ref_optim ref;
    cr_assert(ct_ref_optim_init(&ref, &o, n) == 0);
    for (int s = 0; s < 8; s++) {
        if (s == 3) {
            TU_OK(ct_optim_set_momentum(opt, 0, 0.9));
            ref.mom[0] = 0.9;
        }
        tu_fill_uniform(h, n, 900 + (uint64_t)s, -1, 1);
        for (size_t i = 0; i < n; i++)
            gd[i] = h[i];
        TU_OK(ct_tensor_upload(g, h, n));
        TU_OK(ct_optim_step(opt));
        ct_ref_optim_step(&ref, p, gd);
    }
    float *got = tu_download(pt);
    tu_assert_close("sgd momentum set at step 3", got, p, n, ATOL, RTOL);
    free(got);
    ct_ref_optim_free(&ref);
    ct_optim_free(opt);
    ct_tensor_free(pt);
    ct_tensor_free(g);
    free(h);
    free(p);
    free(gd);
    ct_context_free(ctx);
}

static void expect_invalid(ct_context *ctx, ct_tensor *p, ct_tensor *g, ct_optim_options o,
                           const char *option)
{
    ct_optim *opt = NULL;
    ct_status st = ct_optim_create(ctx, &o, p, g, &opt);
    cr_assert(st == CT_ERR_INVALID_ARG, "bad %s accepted (%s)", option, ct_status_str(st));
    cr_assert(opt == NULL);
    cr_assert(strstr(ct_last_error(), option) != NULL, "message '%s' does not name %s",
              ct_last_error(), option);
}

Test(optim, validation)
{
    ct_context *ctx = tu_context();
    ct_tensor *p = tu_tensor(ctx, TU_SHAPE(100), NULL), *g = tu_tensor(ctx, TU_SHAPE(100), NULL);
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    o.lr = 0;
    expect_invalid(ctx, p, g, o, "lr");
    o.lr = -1;
    expect_invalid(ctx, p, g, o, "lr");
    o = ct_optim_defaults(CT_OPTIM_SGD);
    o.momentum = -0.1;
    expect_invalid(ctx, p, g, o, "momentum");
    o.momentum = 0;
    o.nesterov = true;
    expect_invalid(ctx, p, g, o, "nesterov");
    o.momentum = 0.9;
    o.dampening = 0.1;
    expect_invalid(ctx, p, g, o, "dampening");
    o = ct_optim_defaults(CT_OPTIM_SGD);
    o.weight_decay = -1;
    expect_invalid(ctx, p, g, o, "weight_decay");
    o = ct_optim_defaults(CT_OPTIM_ADAM);
    o.beta1 = 1.0;
    expect_invalid(ctx, p, g, o, "beta1");
    o.beta1 = 0.9;
    o.beta2 = -0.5;
    expect_invalid(ctx, p, g, o, "beta2");
    o.beta2 = 0.999;
    o.eps = -1e-8;
    expect_invalid(ctx, p, g, o, "eps");
    o = ct_optim_defaults(CT_OPTIM_RMSPROP);
    o.alpha = -0.5;
    expect_invalid(ctx, p, g, o, "alpha");
    o = ct_optim_defaults(CT_OPTIM_ADAGRAD);
    o.lr_decay = -1;
    expect_invalid(ctx, p, g, o, "lr_decay");
    o = ct_optim_defaults(CT_OPTIM_ADAGRAD);
    o.initial_accumulator_value = -1;
    expect_invalid(ctx, p, g, o, "initial_accumulator_value");
    /* groups and ranges */
    ct_optim_group gr[2] = {{0.1, 0}, {0.1, 0}};
    ct_optim_range rg[2] = {{0, 60, 0}, {50, 50, 1}};
    o = ct_optim_defaults(CT_OPTIM_SGD);
    o.groups = gr;
    o.n_groups = 2;
    expect_invalid(ctx, p, g, o, "ranges"); /* several groups need ranges */
    o.ranges = rg;
    o.n_ranges = 2;
    expect_invalid(ctx, p, g, o, "overlap");
    rg[1] = (ct_optim_range){60, 41, 1};
    expect_invalid(ctx, p, g, o, "outside");
    rg[1] = (ct_optim_range){60, 40, 2};
    expect_invalid(ctx, p, g, o, "group");
    gr[1].lr = 0;
    rg[1].group = 1;
    expect_invalid(ctx, p, g, o, "groups[1].lr");
    /* accessors */
    ct_optim *opt = NULL;
    o = ct_optim_defaults(CT_OPTIM_ADAGRAD);
    TU_OK(ct_optim_create(ctx, &o, p, g, &opt));
    cr_assert(ct_optim_set_lr(opt, 1, 0.1) == CT_ERR_INVALID_ARG);
    cr_assert(ct_optim_set_lr(opt, 0, NAN) == CT_ERR_INVALID_ARG);
    cr_assert(ct_optim_set_momentum(opt, 0, 0.9) == CT_ERR_UNSUPPORTED);
    float buf[100];
    cr_assert(ct_optim_state_get(opt, "exp_avg", buf, 100) == CT_ERR_NOT_FOUND);
    cr_assert(ct_optim_state_get(opt, "sum", buf, 99) == CT_ERR_SHAPE);
    ct_optim_free(opt);
    ct_tensor *g2 = tu_tensor(ctx, TU_SHAPE(99), NULL);
    o = ct_optim_defaults(CT_OPTIM_SGD);
    cr_assert(ct_optim_create(ctx, &o, p, g2, &opt) == CT_ERR_SHAPE);
    ct_tensor_free(g2);
    ct_tensor_free(p);
    ct_tensor_free(g);
    ct_context_free(ctx);
}

/* ---- clipping -------------------------------------------------------------------- */

/* The norm of n float32 values, summed in chunks of 1024 then compensated: relative
 * error <= ~70 roundings of 2^-24 in the worst case per chunk and two in the final sum;
 * rtol 1e-5 holds that with margin. The clipped gradients then differ from g*coef_ref by
 * the norm's error plus one rounding: same tolerance. */
#define NORM_RTOL 1e-5

static void clip_case(size_t n, double max_norm, double scale, uint64_t seed)
{
    ct_context *ctx = tu_context();
    float *h = malloc(n * sizeof *h);
    double *ref = malloc(n * sizeof *ref);
    cr_assert(h && ref);
    tu_fill_uniform(h, n, seed, -scale, scale);
    for (size_t i = 0; i < n; i++)
        ref[i] = h[i];
    ct_tensor *g = tu_tensor(ctx, TU_SHAPE(n), h);
    ct_tensor *g2 = tu_tensor(ctx, TU_SHAPE(n), h);
    ct_tensor *norm = tu_tensor(ctx, TU_SHAPE(1), NULL);
    ct_tensor *norm2 = tu_tensor(ctx, TU_SHAPE(1), NULL);
    const double total = ct_ref_l2norm(ref, n);
    double coef = max_norm / (total + 1e-6);
    if (coef > 1)
        coef = 1;
    TU_OK(ct_grad_norm(ctx, g, norm2));
    TU_OK(ct_clip_grad_norm(ctx, g, max_norm, norm));
    TU_OK(ct_clip_grad_norm(ctx, g2, max_norm, NULL));
    float got_norm, got_norm2;
    TU_OK(ct_tensor_download(norm, &got_norm, 1));
    TU_OK(ct_tensor_download(norm2, &got_norm2, 1));
    tu_assert_close("clip norm", &got_norm, &total, 1, 0, NORM_RTOL);
    cr_assert(got_norm == got_norm2, "ct_grad_norm and ct_clip_grad_norm disagree");
    for (size_t i = 0; i < n; i++)
        ref[i] *= coef;
    float *got = tu_download(g), *got2 = tu_download(g2);
    tu_assert_close("clipped grads", got, ref, n, 1e-30, NORM_RTOL);
    cr_assert(memcmp(got, got2, n * sizeof *got) == 0, "clipping with and without norm_out "
                                                       "differs");
    if (coef == 1)
        cr_assert(memcmp(got, h, n * sizeof *got) == 0, "unclipped grads changed");
    free(got);
    free(got2);
    ct_tensor_free(g);
    ct_tensor_free(g2);
    ct_tensor_free(norm);
    ct_tensor_free(norm2);
    free(h);
    free(ref);
    ct_context_free(ctx);
}

Test(clip, grad_norm)
{
    clip_case(37, 1.0, 1.0, 1);          /* clips */
    clip_case(5000, 1.0, 1.0, 2);        /* several chunks, clips */
    clip_case(5000, 1e3, 1.0, 3);        /* below max_norm: unchanged */
    clip_case(100003, 0.5, 1e-3, 4);     /* odd size, small values */
    clip_case(1, 2.0, 10.0, 5);
    clip_case(40, 1e-7, 1e-7, 6);        /* the + 1e-6 dominates */
}

/* Same bits on repeated runs (fixed reduction order). */
Test(clip, deterministic)
{
    ct_context *ctx = tu_context();
    const size_t n = 70001;
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    tu_fill_uniform(h, n, 42, -3, 3);
    float first = 0;
    for (int r = 0; r < 3; r++) {
        ct_tensor *g = tu_tensor(ctx, TU_SHAPE(n), h), *norm = tu_tensor(ctx, TU_SHAPE(1), NULL);
        TU_OK(ct_clip_grad_norm(ctx, g, 1.0, norm));
        float v;
        TU_OK(ct_tensor_download(norm, &v, 1));
        if (r == 0)
            first = v;
        cr_assert(memcmp(&v, &first, sizeof v) == 0, "run %d: norm %.9g != %.9g", r, v, first);
        ct_tensor_free(g);
        ct_tensor_free(norm);
    }
    free(h);
    ct_context_free(ctx);
}

/* clamp to [-v, v], exactly, NaN kept */
Test(clip, grad_value)
{
    ct_context *ctx = tu_context();
    const size_t n = 1031;
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    tu_fill_uniform(h, n, 7, -2, 2);
    h[5] = NAN;
    h[6] = INFINITY;
    h[7] = -INFINITY;
    ct_tensor *g = tu_tensor(ctx, TU_SHAPE(n), h);
    TU_OK(ct_clip_grad_value(ctx, g, 0.75));
    float *got = tu_download(g);
    for (size_t i = 0; i < n; i++) {
        float want = h[i] < -0.75f ? -0.75f : h[i] > 0.75f ? 0.75f : h[i];
        if (isnan(h[i]))
            cr_assert(isnan(got[i]), "NaN at %zu not kept", i);
        else
            cr_assert(got[i] == want, "[%zu]: %g clamped to %g, want %g", i, h[i], got[i], want);
    }
    cr_assert(ct_clip_grad_value(ctx, g, -1) == CT_ERR_INVALID_ARG);
    cr_assert(ct_clip_grad_norm(ctx, g, -1, NULL) == CT_ERR_INVALID_ARG);
    free(got);
    free(h);
    ct_tensor_free(g);
    ct_context_free(ctx);
}
