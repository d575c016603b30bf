/* tests/ops/test_loss.c — the losses on random inputs against the double-precision
 * reference (lib/ref/loss_ref.c), the reference's gradient against central finite
 * differences, determinism, launch counts, the device error flag and argument checks.
 * PyTorch's own values are checked in tests/golden/test_loss_golden.c.
 *
 * Sizes cover both work splits of kernels/loss.cl: one work-group (one launch; MiniCNN's
 * (64, 10)) and several (3000 rows, 100003 elements: a second launch reduces the
 * partials). Every device tensor is a view at an odd offset inside a canary-filled
 * buffer, so misaligned vector loads and writes outside a tensor are caught. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/cltrain.h"
#include "ref/loss_ref.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

static size_t lt_numel(size_t ndim, const size_t *shape)
{
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* ---- test cases ------------------------------------------------------------------- */

typedef struct lt_case {
    const char *name;
    ct_loss_kind kind;
    size_t ndim;
    size_t shape[CT_MAX_DIMS];
    bool soft;          /* CE class-probability targets */
    size_t w_ndim;      /* weight: class weights (CE/NLL, 1 dim) or a BCE broadcast shape */
    size_t w_shape[CT_MAX_DIMS];
    size_t pw_ndim;     /* BCE pos_weight broadcast shape */
    size_t pw_shape[CT_MAX_DIMS];
    float ls;           /* label smoothing */
    int32_t ii;         /* ignore_index */
    double ign_frac;    /* fraction of class targets set to ii */
    float beta, delta;
    double xscale;      /* inputs uniform in [-xscale, xscale] */
} lt_case;

/* Inputs of a case, in float (what the device gets). t: class indices, probabilities or
 * element targets. w, pw: NULL when the case has none. */
typedef struct lt_data {
    size_t n, tn, wn, pwn;
    float *x, *t, *w, *pw;
    ct_loss_options o;
} lt_data;

static bool lt_class(ct_loss_kind k)
{
    return k == CT_LOSS_CROSS_ENTROPY || k == CT_LOSS_NLL;
}

static lt_data lt_generate(const lt_case *c, uint64_t seed)
{
    lt_data d;
    memset(&d, 0, sizeof d);
    tu_rng r = {seed};
    d.n = lt_numel(c->ndim, c->shape);
    d.x = malloc(d.n * sizeof *d.x);
    for (size_t i = 0; i < d.n; i++)
        d.x[i] = (float)tu_rng_uniform(&r, -c->xscale, c->xscale);
    d.o = ct_loss_options_default(c->kind);
    d.o.label_smoothing = c->ls;
    d.o.ignore_index = c->ii;
    d.o.beta = c->beta;
    d.o.delta = c->delta;
    if (lt_class(c->kind)) {
        const size_t N = c->shape[0], C = c->shape[1], S = d.n / (N * C);
        if (c->kind == CT_LOSS_NLL) {
            /* log-probabilities: log_softmax of the random logits */
            for (size_t n = 0; n < N; n++)
                for (size_t s = 0; s < S; s++) {
                    double m = -INFINITY, sum = 0.0;
                    for (size_t k = 0; k < C; k++)
                        m = fmax(m, d.x[(n * C + k) * S + s]);
                    for (size_t k = 0; k < C; k++)
                        sum += exp(d.x[(n * C + k) * S + s] - m);
                    for (size_t k = 0; k < C; k++)
                        d.x[(n * C + k) * S + s] =
                            (float)(d.x[(n * C + k) * S + s] - m - log(sum));
                }
        }
        if (c->soft) {
            d.tn = d.n;
            d.t = malloc(d.tn * sizeof *d.t);
            for (size_t n = 0; n < N; n++)
                for (size_t s = 0; s < S; s++) {
                    double sum = 0.0;
                    for (size_t k = 0; k < C; k++)
                        sum += d.t[(n * C + k) * S + s] = (float)tu_rng_uniform(&r, 0.0, 1.0);
                    for (size_t k = 0; k < C; k++)
                        d.t[(n * C + k) * S + s] = (float)(d.t[(n * C + k) * S + s] / sum);
                }
        } else {
            d.tn = N * S;
            d.t = malloc(d.tn * sizeof *d.t);
            for (size_t p = 0; p < d.tn; p++) {
                d.t[p] = (float)(tu_rng_next(&r) % C);
                if (tu_rng_uniform(&r, 0.0, 1.0) < c->ign_frac)
                    d.t[p] = (float)c->ii;
            }
        }
    } else {
        d.tn = d.n;
        d.t = malloc(d.tn * sizeof *d.t);
        for (size_t i = 0; i < d.n; i++) {
            if (c->kind == CT_LOSS_BCE_WITH_LOGITS)
                d.t[i] = i % 3 == 0 ? (float)tu_rng_uniform(&r, 0.0, 1.0)
                                    : (float)(tu_rng_next(&r) & 1);
            else
                d.t[i] = (float)tu_rng_uniform(&r, -c->xscale, c->xscale);
        }
    }
    if (c->w_ndim) {
        d.wn = lt_numel(c->w_ndim, c->w_shape);
        d.w = malloc(d.wn * sizeof *d.w);
        for (size_t i = 0; i < d.wn; i++)
            d.w[i] = (float)tu_rng_uniform(&r, 0.2, 2.0);
        d.o.weight = d.w;
        d.o.weight_ndim = c->w_ndim;
        memcpy(d.o.weight_shape, c->w_shape, sizeof c->w_shape);
    }
    if (c->pw_ndim) {
        d.pwn = lt_numel(c->pw_ndim, c->pw_shape);
        d.pw = malloc(d.pwn * sizeof *d.pw);
        for (size_t i = 0; i < d.pwn; i++)
            d.pw[i] = (float)tu_rng_uniform(&r, 0.2, 4.0);
        d.o.pos_weight = d.pw;
        d.o.pos_weight_ndim = c->pw_ndim;
        memcpy(d.o.pos_weight_shape, c->pw_shape, sizeof c->pw_shape);
    }
    return d;
}

static void lt_data_free(lt_data *d)
{
    free(d->x), free(d->t), free(d->w), free(d->pw);
}

/* The target's shape for a case. */
static size_t lt_tshape(const lt_case *c, size_t *shape)
{
    if (!lt_class(c->kind) || c->soft) {
        memcpy(shape, c->shape, sizeof c->shape);
        return c->ndim;
    }
    shape[0] = c->shape[0];
    for (size_t i = 2; i < c->ndim; i++)
        shape[i - 1] = c->shape[i];
    return c->ndim - 1;
}

#define CE(nm, nd, ...) .name = nm, .kind = CT_LOSS_CROSS_ENTROPY, .ndim = nd, .shape = {__VA_ARGS__}
#define KIND(nm, k, nd, ...) .name = nm, .kind = k, .ndim = nd, .shape = {__VA_ARGS__}

static const lt_case cases[] = {
    /* MiniCNN's batch: one work-group, one launch */
    {CE("ce_64x10", 2, 64, 10), .ii = -100, .xscale = 4},
    {CE("ce_64x10_w_ign_ls", 2, 64, 10), .w_ndim = 1, .w_shape = {10}, .ls = 0.1f, .ii = -100,
     .ign_frac = 0.2, .xscale = 4},
    {CE("ce_64x10_ign_class", 2, 64, 10), .w_ndim = 1, .w_shape = {10}, .ii = 3, .xscale = 4},
    /* several work-groups: ce_finish rescales the rows by the weight sum */
    {CE("ce_3000x10_w_ign_ls", 2, 3000, 10), .w_ndim = 1, .w_shape = {10}, .ls = 0.2f,
     .ii = -100, .ign_frac = 0.1, .xscale = 6},
    {CE("ce_3000x10", 2, 3000, 10), .ii = -100, .xscale = 3},
    {CE("ce_spatial_4x5x30x30", 4, 4, 5, 30, 30), .w_ndim = 1, .w_shape = {5}, .ls = 0.05f,
     .ii = -100, .ign_frac = 0.1, .xscale = 5},
    {CE("ce_spatial_3d", 3, 3, 7, 11), .ii = 0, .ign_frac = 0.2, .xscale = 3},
    {CE("ce_soft_700x12_w_ls", 2, 700, 12), .soft = true, .w_ndim = 1, .w_shape = {12},
     .ls = 0.1f, .ii = -100, .xscale = 4},
    {CE("ce_soft_spatial", 4, 2, 3, 5, 7), .soft = true, .ii = -100, .xscale = 4},
    {CE("ce_big_logits", 2, 50, 9), .ls = 0.1f, .ii = -100, .xscale = 2e4},
    {KIND("nll_3000x7_w_ign", CT_LOSS_NLL, 2, 3000, 7), .w_ndim = 1, .w_shape = {7}, .ii = -100,
     .ign_frac = 0.1, .xscale = 4},
    {KIND("nll_spatial", CT_LOSS_NLL, 3, 5, 4, 6), .ii = -100, .ign_frac = 0.1, .xscale = 4},
    {KIND("bce_500x37_w_pw", CT_LOSS_BCE_WITH_LOGITS, 2, 500, 37), .w_ndim = 1,
     .w_shape = {37}, .pw_ndim = 1, .pw_shape = {37}, .xscale = 6},
    {KIND("bce_4d_bcast", CT_LOSS_BCE_WITH_LOGITS, 4, 3, 4, 5, 6), .w_ndim = 3,
     .w_shape = {4, 1, 1}, .pw_ndim = 2, .pw_shape = {5, 6}, .xscale = 6},
    {KIND("bce_big_logits", CT_LOSS_BCE_WITH_LOGITS, 2, 20, 10), .pw_ndim = 1, .pw_shape = {10},
     .xscale = 2e4},
    {KIND("bce_1", CT_LOSS_BCE_WITH_LOGITS, 1, 1), .xscale = 3},
    {KIND("mse_1", CT_LOSS_MSE, 1, 1), .xscale = 3},
    {KIND("mse_7", CT_LOSS_MSE, 1, 7), .xscale = 3},
    {KIND("mse_10x100", CT_LOSS_MSE, 2, 10, 100), .xscale = 3},
    {KIND("mse_100003", CT_LOSS_MSE, 1, 100003), .xscale = 3},
    {KIND("l1_10x101", CT_LOSS_L1, 2, 10, 101), .xscale = 3},
    {KIND("smoothl1_33x33", CT_LOSS_SMOOTH_L1, 2, 33, 33), .beta = 0.7f, .xscale = 2},
    {KIND("smoothl1_beta0", CT_LOSS_SMOOTH_L1, 2, 9, 9), .beta = 0.0f, .xscale = 2},
    {KIND("huber_257x5", CT_LOSS_HUBER, 2, 257, 5), .delta = 1.3f, .xscale = 3},
    {KIND("huber_100003", CT_LOSS_HUBER, 3, 7, 7, 2041), .delta = 0.5f, .xscale = 3},
};
#define NCASES (sizeof cases / sizeof cases[0])

static const char *const red_names[3] = {"mean", "sum", "none"};

/* ---- device against the double reference ------------------------------------------ */

/* Tolerances, float32 device against the double reference.
 * Loss: rtol 2e-5. A reduced loss is a float sum of up to 1e5 terms, each carrying a few
 * ulps (exp/log are <= 3-4 ulp in OpenCL C); the fixed grid-stride + tree order keeps the
 * error near (terms per work-item + log2 of the tree) * 2^-24 ~ 100 * 6e-8 = 6e-6
 * relative. A per-position loss of large logits (|x| ~ 2e4) is (m - x) + log(sum),
 * one rounding of 2e4: relative 1e-7. atol 1e-6 for losses that are ~0.
 * Gradient: each entry is p*A - a, which cancels when p ~ a (a confident correct
 * class), so its error scales with the largest entry of the gradient, not with the entry
 * itself: atol = 1e-5 * max|ref| (~100 float32 ulps of that scale), rtol 1e-5. */
#define DEV_LOSS_ATOL 1e-6
#define DEV_LOSS_RTOL 2e-5
#define DEV_GRAD_SCALE 1e-5
#define DEV_GRAD_RTOL 1e-5

static double lt_maxabs(const double *v, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i]))
            m = fmax(m, fabs(v[i]));
    return m;
}

static void lt_run_device(ct_context *ctx, const lt_case *c, uint64_t seed)
{
    lt_data d = lt_generate(c, seed);
    size_t tshape[CT_MAX_DIMS];
    size_t tnd = lt_tshape(c, tshape);
    double *xd = tu_widen(d.x, d.n), *td = tu_widen(d.t, d.tn);
    tu_view x = tu_view_new(ctx, 3, c->ndim, c->shape, d.x);
    tu_view t = tu_view_new(ctx, 1, tnd, tshape, d.t);
    tu_view g = tu_view_new(ctx, 5, c->ndim, c->shape, NULL);
    for (int red = 0; red < 3; red++) {
        char what[160];
        d.o.reduction = (ct_reduction)red;
        ct_loss *loss = NULL;
        TU_OK(ct_loss_create(ctx, &d.o, &loss));
        size_t ond = 0, oshape[CT_MAX_DIMS];
        TU_OK(ct_loss_output_shape(loss, x.t, t.t, &ond, oshape));
        const size_t on = lt_numel(ond, oshape);
        cr_assert_eq(on, ct_ref_loss_out_numel(&d.o, c->ndim, c->shape), "%s: output size",
                     c->name);
        /* a random grad_output */
        float *gof = malloc(on * sizeof *gof);
        tu_fill_uniform(gof, on, seed + 99, -1.0, 2.0);
        double *god = tu_widen(gof, on);
        tu_view out = tu_view_new(ctx, 2, ond, oshape, NULL);
        tu_view go = tu_view_new(ctx, 7, ond, oshape, gof);

        double *ref_out = malloc(on * sizeof *ref_out);
        double *ref_g = malloc(d.n * sizeof *ref_g), *ref_ggo = malloc(d.n * sizeof *ref_ggo);
        cr_assert_eq(ct_ref_loss(&d.o, c->ndim, c->shape, xd, td, c->soft, NULL, ref_out, ref_g),
                     0, "%s: reference failed", c->name);
        cr_assert_eq(ct_ref_loss(&d.o, c->ndim, c->shape, xd, td, c->soft, god, ref_out,
                                 ref_ggo),
                     0);

        TU_OK(ct_loss_forward_backward(loss, x.t, t.t, out.t, g.t));
        float *h = tu_view_get("out", &out);
        snprintf(what, sizeof what, "%s %s loss", c->name, red_names[red]);
        tu_assert_close(what, h, ref_out, on, DEV_LOSS_ATOL, DEV_LOSS_RTOL);
        free(h);
        h = tu_view_get("grad", &g);
        snprintf(what, sizeof what, "%s %s grad", c->name, red_names[red]);
        tu_assert_close(what, h, ref_g, d.n, DEV_GRAD_SCALE * lt_maxabs(ref_g, d.n),
                        DEV_GRAD_RTOL);
        free(h);

        /* forward alone gives the same value */
        TU_OK(ct_tensor_fill(out.t, -1.0f));
        TU_OK(ct_loss_forward(loss, x.t, t.t, out.t));
        h = tu_view_get("out", &out);
        snprintf(what, sizeof what, "%s %s forward", c->name, red_names[red]);
        tu_assert_close(what, h, ref_out, on, DEV_LOSS_ATOL, DEV_LOSS_RTOL);
        free(h);

        /* backward with grad_output (a 1-element tensor for mean/sum) */
        TU_OK(ct_loss_backward(loss, x.t, t.t, go.t, g.t));
        h = tu_view_get("grad", &g);
        snprintf(what, sizeof what, "%s %s grad(grad_output)", c->name, red_names[red]);
        tu_assert_close(what, h, ref_ggo, d.n, DEV_GRAD_SCALE * lt_maxabs(ref_ggo, d.n),
                        DEV_GRAD_RTOL);
        free(h);

        ct_loss_report rep;
        TU_OK(ct_loss_check(loss, &rep));
        cr_assert_eq(rep.errors, 0u);
        cr_assert_eq(rep.suspicious_rows, 0u, "%s: %zu suspicious rows", c->name,
                     rep.suspicious_rows);

        free(ref_out), free(ref_g), free(ref_ggo), free(gof), free(god);
        tu_view_free(&go);
        tu_view_free(&out);
        ct_loss_free(loss);
    }
    tu_view_free(&g);
    tu_view_free(&t);
    tu_view_free(&x);
    free(xd), free(td);
    lt_data_free(&d);
}

Test(loss, cross_entropy_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        if (cases[i].kind == CT_LOSS_CROSS_ENTROPY)
            lt_run_device(ctx, &cases[i], 1000 + i);
    ct_context_free(ctx);
}

Test(loss, nll_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        if (cases[i].kind == CT_LOSS_NLL)
            lt_run_device(ctx, &cases[i], 2000 + i);
    ct_context_free(ctx);
}

Test(loss, bce_with_logits_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        if (cases[i].kind == CT_LOSS_BCE_WITH_LOGITS)
            lt_run_device(ctx, &cases[i], 3000 + i);
    ct_context_free(ctx);
}

Test(loss, regression_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        if (!lt_class(cases[i].kind) && cases[i].kind != CT_LOSS_BCE_WITH_LOGITS)
            lt_run_device(ctx, &cases[i], 4000 + i);
    ct_context_free(ctx);
}

/* ---- the reference against central finite differences ----------------------------- */

/* Small versions of the cases, every option. The reference is double: with h = 1e-5
 * the central difference's truncation error is ~h^2 * f''' ~ 1e-10 and its rounding
 * ~1e-16 * |L| / h ~ 1e-10, so atol 1e-7 + rtol 1e-6 is tight and still 1000x above
 * the noise. Regression inputs keep |x - y| at least 0.05 away from the kinks (0, beta,
 * delta), where the loss is not differentiable. */
static const lt_case fd_cases[] = {
    {CE("fd_ce", 2, 3, 4), .ii = -100, .xscale = 3},
    {CE("fd_ce_w_ign_ls", 2, 5, 4), .w_ndim = 1, .w_shape = {4}, .ls = 0.3f, .ii = -100,
     .ign_frac = 0.3, .xscale = 3},
    {CE("fd_ce_ign_class_ls", 3, 3, 4, 2), .ls = 0.2f, .ii = 1, .xscale = 3},
    {CE("fd_ce_4d_w", 4, 2, 3, 2, 2), .w_ndim = 1, .w_shape = {3}, .ls = 0.1f, .ii = -100,
     .ign_frac = 0.2, .xscale = 3},
    {CE("fd_ce_soft_w_ls", 2, 3, 5), .soft = true, .w_ndim = 1, .w_shape = {5}, .ls = 0.2f,
     .ii = -100, .xscale = 3},
    {CE("fd_ce_soft_3d", 3, 2, 3, 3), .soft = true, .ii = -100, .xscale = 3},
    {KIND("fd_nll_w_ign", CT_LOSS_NLL, 2, 5, 4), .w_ndim = 1, .w_shape = {4}, .ii = -100,
     .ign_frac = 0.3, .xscale = 3},
    {KIND("fd_bce_w_pw", CT_LOSS_BCE_WITH_LOGITS, 3, 2, 3, 4), .w_ndim = 2, .w_shape = {3, 1},
     .pw_ndim = 1, .pw_shape = {4}, .xscale = 4},
    {KIND("fd_mse", CT_LOSS_MSE, 2, 3, 5), .xscale = 2},
    {KIND("fd_l1", CT_LOSS_L1, 2, 3, 5), .xscale = 2},
    {KIND("fd_smoothl1", CT_LOSS_SMOOTH_L1, 2, 4, 5), .beta = 0.8f, .xscale = 2},
    {KIND("fd_huber", CT_LOSS_HUBER, 2, 4, 5), .delta = 0.6f, .xscale = 2},
};

/* sum_i go[i] * out[i] at x */
static double lt_objective(const ct_loss_options *o, const lt_case *c, const double *x,
                           const double *t, const double *go, double *out)
{
    cr_assert_eq(ct_ref_loss(o, c->ndim, c->shape, x, t, c->soft, NULL, out, NULL), 0);
    size_t on = ct_ref_loss_out_numel(o, c->ndim, c->shape);
    double s = 0.0;
    for (size_t i = 0; i < on; i++)
        s += go[i] * out[i];
    return s;
}

Test(loss, reference_gradient_matches_finite_differences)
{
    const double h = 1e-5;
    size_t checked = 0;
    for (size_t ci = 0; ci < sizeof fd_cases / sizeof fd_cases[0]; ci++) {
        const lt_case *c = &fd_cases[ci];
        lt_data d = lt_generate(c, 500 + ci);
        double *x = tu_widen(d.x, d.n), *t = tu_widen(d.t, d.tn);
        if (!lt_class(c->kind) && c->kind != CT_LOSS_BCE_WITH_LOGITS) {
            /* move x - y off the kinks */
            double kink = c->kind == CT_LOSS_SMOOTH_L1 ? c->beta
                          : c->kind == CT_LOSS_HUBER  ? c->delta
                                                      : 0.0;
            for (size_t i = 0; i < d.n; i++) {
                double diff = x[i] - t[i];
                if (fabs(fabs(diff) - kink) < 0.05 || fabs(diff) < 0.05)
                    x[i] += 0.2;
            }
        }
        for (int red = 0; red < 3; red++) {
            d.o.reduction = (ct_reduction)red;
            size_t on = ct_ref_loss_out_numel(&d.o, c->ndim, c->shape);
            double *go = malloc(on * sizeof *go), *out = malloc(on * sizeof *out);
            double *grad = malloc(d.n * sizeof *grad), *fd = malloc(d.n * sizeof *fd);
            tu_rng r = {77 + ci};
            for (size_t i = 0; i < on; i++)
                go[i] = tu_rng_uniform(&r, -1.0, 2.0);
            cr_assert_eq(ct_ref_loss(&d.o, c->ndim, c->shape, x, t, c->soft, go, out, grad), 0);
            for (size_t j = 0; j < d.n; j++) {
                double keep = x[j];
                x[j] = keep + h;
                double lp = lt_objective(&d.o, c, x, t, go, out);
                x[j] = keep - h;
                double lm = lt_objective(&d.o, c, x, t, go, out);
                x[j] = keep;
                fd[j] = (lp - lm) / (2.0 * h);
            }
            for (size_t j = 0; j < d.n; j++) {
                cr_assert(fabs(grad[j] - fd[j]) <= 1e-7 + 1e-6 * fabs(fd[j]),
                          "%s %s: d/dx[%zu] analytic %.12g, finite difference %.12g", c->name,
                          red_names[red], j, grad[j], fd[j]);
                checked++;
            }
            free(go), free(out), free(grad), free(fd);
        }
        free(x), free(t);
        lt_data_free(&d);
    }
    cr_assert_gt(checked, 500u);
}

/* ---- determinism, launches -------------------------------------------------------- */

Test(loss, bitwise_deterministic)
{
    ct_context *ctx = tu_context();
    /* one multi-group case per kernel */
    const char *names[] = {"ce_3000x10_w_ign_ls", "bce_500x37_w_pw", "huber_100003"};
    for (size_t k = 0; k < 3; k++) {
        const lt_case *c = NULL;
        for (size_t i = 0; i < NCASES; i++)
            if (strcmp(cases[i].name, names[k]) == 0)
                c = &cases[i];
        cr_assert(c != NULL);
        lt_data d = lt_generate(c, 42);
        size_t tshape[CT_MAX_DIMS], one = 1;
        size_t tnd = lt_tshape(c, tshape);
        ct_tensor *x = tu_tensor(ctx, c->ndim, c->shape, d.x);
        ct_tensor *t = tu_tensor(ctx, tnd, tshape, d.t);
        ct_tensor *g = tu_tensor(ctx, c->ndim, c->shape, NULL);
        ct_tensor *out = tu_tensor(ctx, 1, &one, NULL);
        ct_loss *loss = NULL;
        TU_OK(ct_loss_create(ctx, &d.o, &loss));
        float *first_g = NULL, first_l = 0.0f;
        for (int rep = 0; rep < 3; rep++) {
            TU_OK(ct_loss_forward_backward(loss, x, t, out, g));
            float *hg = tu_download(g), *hl = tu_download(out);
            if (rep == 0) {
                first_g = hg;
                first_l = hl[0];
            } else {
                cr_assert(memcmp(&first_l, hl, sizeof first_l) == 0, "%s: loss differs", c->name);
                cr_assert(memcmp(first_g, hg, d.n * sizeof *hg) == 0, "%s: grad differs",
                          c->name);
                free(hg);
            }
            free(hl);
        }
        free(first_g);
        ct_loss_free(loss);
        ct_tensor_free(out), ct_tensor_free(g), ct_tensor_free(t), ct_tensor_free(x);
        lt_data_free(&d);
    }
    ct_context_free(ctx);
}

/* Launches of one forward_backward, counted by the profiler. */
static unsigned lt_launches(ct_context *ctx, const lt_case *c)
{
    lt_data d = lt_generate(c, 7);
    size_t tshape[CT_MAX_DIMS], one = 1;
    size_t tnd = lt_tshape(c, tshape);
    ct_tensor *x = tu_tensor(ctx, c->ndim, c->shape, d.x);
    ct_tensor *t = tu_tensor(ctx, tnd, tshape, d.t);
    ct_tensor *g = tu_tensor(ctx, c->ndim, c->shape, NULL);
    ct_tensor *out = tu_tensor(ctx, 1, &one, NULL);
    ct_loss *loss = NULL;
    TU_OK(ct_loss_create(ctx, &d.o, &loss));
    TU_OK(ct_context_finish(ctx));
    ct_profile_reset(ctx);
    TU_OK(ct_loss_forward_backward(loss, x, t, out, g));
    ct_profile_entry *e = NULL;
    size_t ne = 0;
    TU_OK(ct_profile_collect(ctx, &e, &ne));
    unsigned n = 0;
    for (size_t i = 0; i < ne; i++)
        n += e[i].launches;
    free(e);
    ct_loss_free(loss);
    ct_tensor_free(out), ct_tensor_free(g), ct_tensor_free(t), ct_tensor_free(x);
    lt_data_free(&d);
    return n;
}

Test(loss, launch_counts)
{
    ct_context *ctx = tu_context_flags(CT_CONTEXT_PROFILING);
    const struct {
        const char *name;
        unsigned launches;
    } want[] = {
        /* CE (64, 10) mean: softmax + loss + weighted mean + gradient, one kernel */
        {"ce_64x10", 1},
        {"ce_64x10_w_ign_ls", 1},
        {"ce_3000x10_w_ign_ls", 2}, /* several groups: rows, then ce_finish */
        {"ce_3000x10", 2},
        {"bce_500x37_w_pw", 2}, /* several groups: elements, then loss_finish */
        {"mse_10x100", 1},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const lt_case *c = NULL;
        for (size_t j = 0; j < NCASES; j++)
            if (strcmp(cases[j].name, want[i].name) == 0)
                c = &cases[j];
        cr_assert(c != NULL, "no case %s", want[i].name);
        unsigned n = lt_launches(ctx, c);
        cr_assert_eq(n, want[i].launches, "%s: %u launches, expected %u", c->name, n,
                     want[i].launches);
    }
    ct_context_free(ctx);
}

/* ---- the error flag ---------------------------------------------------------------- */

Test(loss, bad_class_index_is_flagged_and_ignored)
{
    ct_context *ctx = tu_context();
    const size_t N = 6, C = 4;
    float x[24], tgt[6] = {0, 3, 1, 2, 1, 0};
    tu_fill_uniform(x, N * C, 11, -2, 2);
    const float bad[] = {4.0f, 2.5f, -1.0f, 1e9f, NAN};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        float tb[6];
        memcpy(tb, tgt, sizeof tb);
        tb[3] = bad[b];
        tb[5] = bad[b];
        ct_loss_options o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
        ct_loss *loss = NULL;
        TU_OK(ct_loss_create(ctx, &o, &loss));
        ct_tensor *tx = tu_tensor(ctx, TU_SHAPE(6, 4), x);
        ct_tensor *tt = tu_tensor(ctx, TU_SHAPE(6), tb);
        ct_tensor *g = tu_tensor(ctx, TU_SHAPE(6, 4), NULL);
        ct_tensor *out = tu_tensor(ctx, TU_SHAPE(1), NULL);
        TU_OK(ct_loss_forward_backward(loss, tx, tt, out, g));
        ct_loss_report rep;
        ct_status st = ct_loss_check(loss, &rep);
        cr_assert_eq(st, CT_ERR_INVALID_ARG, "target %g: %s", (double)bad[b], ct_status_str(st));
        cr_assert(strstr(ct_last_error(), "class index") != NULL, "%s", ct_last_error());
        cr_assert_eq(rep.errors, (unsigned)CT_LOSS_ERR_CLASS_INDEX);
        cr_assert_eq(rep.first_error, 3u);
        cr_assert_eq(rep.rows, N);
        /* the bad rows count as ignored: same as ignore_index there */
        double xd[24], td[6], ref, refg[24];
        for (size_t i = 0; i < 24; i++)
            xd[i] = x[i];
        for (size_t i = 0; i < 6; i++)
            td[i] = tgt[i];
        td[3] = td[5] = -100;
        cr_assert_eq(ct_ref_loss(&o, 2, (size_t[]){6, 4}, xd, td, false, NULL, &ref, refg), 0);
        float *hl = tu_download(out), *hg = tu_download(g);
        tu_assert_close("loss with bad rows ignored", hl, &ref, 1, 1e-6, 1e-5);
        tu_assert_close("grad with bad rows ignored", hg, refg, 24, 1e-6, 1e-5);
        free(hl), free(hg);
        /* the flag was reset by the check */
        TU_OK(ct_loss_check(loss, &rep));
        cr_assert_eq(rep.errors, 0u);
        cr_assert_eq(rep.first_error, SIZE_MAX);
        ct_tensor_free(out), ct_tensor_free(g), ct_tensor_free(tt), ct_tensor_free(tx);
        ct_loss_free(loss);
    }
    ct_context_free(ctx);
}

Test(loss, bad_bce_target_and_negative_probability_are_flagged)
{
    ct_context *ctx = tu_context();
    float x[12], y[12];
    tu_fill_uniform(x, 12, 5, -2, 2);
    tu_fill_uniform(y, 12, 6, 0, 1);
    y[7] = 1.5f;
    y[9] = -0.5f;
    ct_loss_options o = ct_loss_options_default(CT_LOSS_BCE_WITH_LOGITS);
    ct_loss *loss = NULL;
    TU_OK(ct_loss_create(ctx, &o, &loss));
    ct_tensor *tx = tu_tensor(ctx, TU_SHAPE(3, 4), x);
    ct_tensor *ty = tu_tensor(ctx, TU_SHAPE(3, 4), y);
    ct_tensor *out = tu_tensor(ctx, TU_SHAPE(1), NULL);
    TU_OK(ct_loss_forward(loss, tx, ty, out));
    ct_loss_report rep;
    cr_assert_eq(ct_loss_check(loss, &rep), CT_ERR_INVALID_ARG);
    cr_assert_eq(rep.errors, (unsigned)CT_LOSS_ERR_BCE_TARGET);
    cr_assert_eq(rep.first_error, 7u);
    ct_loss_free(loss);

    /* soft cross-entropy target below 0 */
    o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    TU_OK(ct_loss_create(ctx, &o, &loss));
    TU_OK(ct_loss_forward(loss, tx, ty, out));
    cr_assert_eq(ct_loss_check(loss, &rep), CT_ERR_INVALID_ARG);
    cr_assert_eq(rep.errors, (unsigned)CT_LOSS_ERR_NEGATIVE_PROB);
    cr_assert_eq(rep.first_error, 9u);
    ct_loss_free(loss);
    ct_tensor_free(out), ct_tensor_free(ty), ct_tensor_free(tx);
    ct_context_free(ctx);
}

Test(loss, probability_inputs_are_reported_as_suspicious)
{
    ct_context *ctx = tu_context();
    const size_t N = 8, C = 5;
    float x[40], p[40], tgt[8];
    tu_fill_uniform(x, N * C, 9, -3, 3);
    for (size_t n = 0; n < N; n++) {
        double s = 0;
        for (size_t c = 0; c < C; c++)
            s += exp(x[n * C + c]);
        for (size_t c = 0; c < C; c++)
            p[n * C + c] = (float)(exp(x[n * C + c]) / s);
        tgt[n] = (float)(n % C);
    }
    ct_tensor *tp = tu_tensor(ctx, TU_SHAPE(8, 5), p);
    ct_tensor *tx = tu_tensor(ctx, TU_SHAPE(8, 5), x);
    ct_tensor *tt = tu_tensor(ctx, TU_SHAPE(8), tgt);
    ct_tensor *out = tu_tensor(ctx, TU_SHAPE(1), NULL);
    ct_loss_report rep;
    /* softmax output fed to cross entropy: every row looks like probabilities */
    ct_loss_options o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    ct_loss *loss = NULL;
    TU_OK(ct_loss_create(ctx, &o, &loss));
    TU_OK(ct_loss_forward(loss, tp, tt, out));
    TU_OK(ct_loss_check(loss, &rep)); /* a warning, not an error */
    cr_assert_eq(rep.suspicious_rows, N);
    TU_OK(ct_loss_forward(loss, tx, tt, out));
    TU_OK(ct_loss_check(loss, &rep));
    cr_assert_eq(rep.suspicious_rows, 0u);
    ct_loss_free(loss);
    /* raw logits fed to NLL: positive "log-probabilities" */
    o = ct_loss_options_default(CT_LOSS_NLL);
    TU_OK(ct_loss_create(ctx, &o, &loss));
    TU_OK(ct_loss_forward(loss, tx, tt, out));
    TU_OK(ct_loss_check(loss, &rep));
    cr_assert_gt(rep.suspicious_rows, 0u);
    ct_loss_free(loss);
    ct_tensor_free(out), ct_tensor_free(tt), ct_tensor_free(tx), ct_tensor_free(tp);
    ct_context_free(ctx);
}

/* ---- arguments --------------------------------------------------------------------- */

Test(loss, invalid_options_and_shapes_are_rejected)
{
    ct_context *ctx = tu_context();
    ct_loss *loss = NULL;
    ct_loss_options o;
    memset(&o, 0, sizeof o);
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    cr_assert(strstr(ct_last_error(), "ct_loss_options_default") != NULL, "%s", ct_last_error());

    o = ct_loss_options_default(CT_LOSS_MSE);
    o.label_smoothing = 0.1f;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    o.label_smoothing = 1.5f;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    o = ct_loss_options_default(CT_LOSS_HUBER);
    o.delta = 0.0f;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    o = ct_loss_options_default(CT_LOSS_SMOOTH_L1);
    o.beta = -1.0f;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    float w[3] = {1, 2, 3};
    o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    o.pos_weight = w;
    o.pos_weight_ndim = 1;
    o.pos_weight_shape[0] = 3;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    o = ct_loss_options_default(CT_LOSS_L1);
    o.weight = w;
    o.weight_ndim = 1;
    o.weight_shape[0] = 3;
    cr_assert_eq(ct_loss_create(ctx, &o, &loss), CT_ERR_INVALID_ARG);
    cr_assert(loss == NULL);

    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(4, 3), NULL);
    ct_tensor *t_bad = tu_tensor(ctx, TU_SHAPE(3), NULL);
    ct_tensor *t_ok = tu_tensor(ctx, TU_SHAPE(4), NULL);
    ct_tensor *soft = tu_tensor(ctx, TU_SHAPE(4, 3), NULL);
    ct_tensor *out2 = tu_tensor(ctx, TU_SHAPE(2), NULL);
    ct_tensor *g_bad = tu_tensor(ctx, TU_SHAPE(3, 4), NULL);
    ct_tensor *go = tu_tensor(ctx, TU_SHAPE(4), NULL);
    TU_OK(ct_tensor_fill(t_ok, 1.0f));
    TU_OK(ct_tensor_fill(x, 0.5f));

    o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    TU_OK(ct_loss_create(ctx, &o, &loss));
    cr_assert_eq(ct_loss_forward(loss, x, t_bad, out2), CT_ERR_SHAPE);
    cr_assert_eq(ct_loss_forward(loss, x, t_ok, out2), CT_ERR_SHAPE); /* mean: 1 element */
    cr_assert_eq(ct_loss_forward_backward(loss, x, t_ok, NULL, g_bad), CT_ERR_SHAPE);
    cr_assert_eq(ct_loss_backward(loss, x, t_ok, go, x), CT_ERR_SHAPE); /* go: 1 element */
    ct_loss_free(loss);

    o = ct_loss_options_default(CT_LOSS_NLL);
    o.reduction = CT_REDUCTION_NONE;
    TU_OK(ct_loss_create(ctx, &o, &loss));
    cr_assert_eq(ct_loss_forward(loss, x, soft, go), CT_ERR_SHAPE); /* NLL: indices only */
    cr_assert_eq(ct_loss_backward(loss, x, t_ok, NULL, x), CT_ERR_INVALID_ARG);
    ct_loss_free(loss);

    o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    o.weight = w;
    o.weight_ndim = 1;
    o.weight_shape[0] = 2; /* 2 class weights, 3 classes */
    TU_OK(ct_loss_create(ctx, &o, &loss));
    ct_tensor *one = tu_tensor(ctx, TU_SHAPE(1), NULL);
    cr_assert_eq(ct_loss_forward(loss, x, t_ok, one), CT_ERR_SHAPE);
    ct_loss_free(loss);

    o = ct_loss_options_default(CT_LOSS_BCE_WITH_LOGITS);
    o.weight = w;
    o.weight_ndim = 1;
    o.weight_shape[0] = 2; /* does not broadcast to (4, 3) */
    TU_OK(ct_loss_create(ctx, &o, &loss));
    cr_assert_eq(ct_loss_forward(loss, x, soft, one), CT_ERR_SHAPE);
    ct_loss_free(loss);

    ct_tensor_free(one), ct_tensor_free(go), ct_tensor_free(g_bad), ct_tensor_free(out2);
    ct_tensor_free(soft), ct_tensor_free(t_ok), ct_tensor_free(t_bad), ct_tensor_free(x);
    ct_context_free(ctx);
}

Test(loss, output_shapes)
{
    ct_context *ctx = tu_context();
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(2, 5, 3, 4), NULL);
    ct_tensor *t = tu_tensor(ctx, TU_SHAPE(2, 3, 4), NULL);
    ct_loss_options o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
    o.reduction = CT_REDUCTION_NONE;
    ct_loss *loss = NULL;
    TU_OK(ct_loss_create(ctx, &o, &loss));
    size_t nd = 0, shape[CT_MAX_DIMS];
    TU_OK(ct_loss_output_shape(loss, x, t, &nd, shape));
    cr_assert_eq(nd, 3u);
    cr_assert(shape[0] == 2 && shape[1] == 3 && shape[2] == 4);
    TU_OK(ct_loss_output_shape(loss, x, x, &nd, shape)); /* soft targets */
    cr_assert(nd == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 4);
    ct_loss_free(loss);
    o.reduction = CT_REDUCTION_SUM;
    TU_OK(ct_loss_create(ctx, &o, &loss));
    TU_OK(ct_loss_output_shape(loss, x, t, &nd, shape));
    cr_assert(nd == 1 && shape[0] == 1);
    ct_loss_free(loss);
    ct_tensor_free(t), ct_tensor_free(x);
    ct_context_free(ctx);
}
