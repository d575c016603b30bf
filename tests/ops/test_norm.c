/* tests/ops/test_norm.c — batch norm (2d over (N, C, H, W), 1d over (N, C) and (N, C, L))
 * against lib/ref (double precision): training forward (output, saved mean/invstd, the
 * running-stat update with the unbiased variance), several steps of running statistics,
 * eval mode on the running statistics, and the training-mode backward with dx overwritten
 * and dgamma/dbeta accumulated onto non-zero values. Every tensor is a view at an odd
 * offset inside a canary-filled buffer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/elem_ref.h"
#include "testutil.h"

typedef struct bn_case {
    size_t ndim, shape[4];
} bn_case;

static const bn_case cases[] = {
    {4, {1, 1, 2, 2}}, {4, {2, 3, 5, 7}},  {4, {4, 16, 8, 8}}, {4, {1, 5, 3, 3}},
    {4, {3, 7, 1, 1}}, {4, {2, 2, 33, 9}}, {2, {2, 1}},        {2, {5, 3}},
    {2, {8, 37}},      {2, {16, 24}},      {3, {3, 4, 10}},
};
#define NCASES (sizeof cases / sizeof cases[0])

static size_t case_numel(const bn_case *c)
{
    size_t n = 1;
    for (size_t i = 0; i < c->ndim; i++)
        n *= c->shape[i];
    return n;
}

static size_t case_hw(const bn_case *c)
{
    return case_numel(c) / (c->shape[0] * c->shape[1]);
}

static void case_str(const bn_case *c, char *buf, size_t len)
{
    size_t l = 0;
    for (size_t i = 0; i < c->ndim; i++)
        l += (size_t)snprintf(buf + l, len - l, "%s%zu", i ? "x" : "", c->shape[i]);
}

/* Inputs: uniform in [-2, 2] plus a per-channel offset up to 40 (so a one-pass
 * E[x^2] - E[x]^2 variance would lose digits; ours is two-pass). */
static float *bn_input(const bn_case *c, uint64_t seed)
{
    size_t numel = case_numel(c), ch = c->shape[1], hw = case_hw(c);
    float *x = tu_rand(numel, seed, -2.0, 2.0);
    for (size_t i = 0; i < numel; i++)
        x[i] += 10.0f * (float)((i / hw) % ch % 5) - 5.0f;
    return x;
}

/* Tolerances, forward. The mean and the variance are float sums of M <= 4096 terms in
 * 8 lanes and per-row partials (relative error ~1e-6 here); y = (x - mean) * invstd *
 * gamma + beta is O(3) for |gamma| <= 1.5, so atol 2e-5 + rtol 1e-5; invstd itself rtol
 * 1e-5; running stats rtol 1e-5 (they are linear in those). */
#define BN_Y_ATOL 2e-5
#define BN_Y_RTOL 1e-5

Test(batchnorm, training_forward_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t ci = 0; ci < NCASES; ci++) {
        const bn_case *c = &cases[ci];
        size_t numel = case_numel(c), ch = c->shape[1], hw = case_hw(c), n = c->shape[0];
        if (n * hw < 2)
            continue;
        float *x = bn_input(c, 100 + ci);
        float *g = tu_rand(ch, 200 + ci, 0.5, 1.5);
        float *b = tu_rand(ch, 300 + ci, -1.0, 1.0);
        float *rm0 = tu_rand(ch, 400 + ci, -1.0, 1.0);
        float *rv0 = tu_rand(ch, 500 + ci, 0.5, 2.0);
        for (int affine = 0; affine < 2; affine++) {
            char what[128], sh[48];
            case_str(c, sh, sizeof sh);
            ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = true};
            double *ry = tu_zeros(numel), *rmean = tu_zeros(ch), *rinv = tu_zeros(ch);
            double *rrm = tu_zeros(ch), *rrv = tu_zeros(ch);
            for (size_t i = 0; i < ch; i++)
                rrm[i] = rm0[i], rrv[i] = rv0[i];
            ct_ref_batchnorm_forward(x, affine ? g : NULL, affine ? b : NULL, n, ch, hw, p.eps,
                                     p.momentum, true, rrm, rrv, rmean, rinv, ry);

            tu_view tx = tu_view_new(ctx, 3, c->ndim, c->shape, x);
            tu_view ty = tu_view_new(ctx, 1, c->ndim, c->shape, NULL);
            tu_view tg = TU_VIEW(ctx, 5, g, ch), tb = TU_VIEW(ctx, 2, b, ch);
            tu_view trm = TU_VIEW(ctx, 7, rm0, ch), trv = TU_VIEW(ctx, 1, rv0, ch);
            tu_view tsm = TU_VIEW(ctx, 3, NULL, ch), tsi = TU_VIEW(ctx, 9, NULL, ch);
            TU_OK(ct_batchnorm_forward(ctx, tx.t, affine ? tg.t : NULL, affine ? tb.t : NULL,
                                       trm.t, trv.t, &p, tsm.t, tsi.t, ty.t));
            float *y = tu_view_get("y", &ty), *sm = tu_view_get("save_mean", &tsm);
            float *si = tu_view_get("save_invstd", &tsi), *rm = tu_view_get("running_mean", &trm);
            float *rv = tu_view_get("running_var", &trv);
            snprintf(what, sizeof what, "bn train %s affine=%d", sh, affine);
            cr_log_info("%s", what);
            tu_assert_close("y", y, ry, numel, BN_Y_ATOL, BN_Y_RTOL);
            tu_assert_close("save_mean", sm, rmean, ch, 1e-5, 1e-5);
            tu_assert_close("save_invstd", si, rinv, ch, 0.0, 1e-5);
            tu_assert_close("running_mean", rm, rrm, ch, 1e-6, 1e-5);
            tu_assert_close("running_var", rv, rrv, ch, 1e-6, 1e-5);
            free(y), free(sm), free(si), free(rm), free(rv);
            free(ry), free(rmean), free(rinv), free(rrm), free(rrv);
            tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tg), tu_view_free(&tb),
                tu_view_free(&trm), tu_view_free(&trv), tu_view_free(&tsm), tu_view_free(&tsi);
        }
        free(x), free(g), free(b), free(rm0), free(rv0);
    }
    ct_context_free(ctx);
}

/* Five training steps on different batches, momentum 0.3: the running statistics follow
 * the reference's exponential averages (started from PyTorch's 0 and 1). Then eval mode
 * normalises with them, and leaves them unchanged. */
Test(batchnorm, running_stats_over_steps_then_eval)
{
    ct_context *ctx = tu_context();
    const bn_case c = {4, {6, 5, 4, 3}};
    size_t numel = case_numel(&c), ch = 5, hw = 12, n = 6;
    ct_bn_params p = {.eps = 1e-3f, .momentum = 0.3f, .training = true};
    float *g = tu_rand(ch, 1, 0.5, 1.5), *b = tu_rand(ch, 2, -1.0, 1.0);
    float zeros[5] = {0}, ones[5] = {1, 1, 1, 1, 1};
    double rrm[5] = {0}, rrv[5] = {1, 1, 1, 1, 1};
    double *ry = tu_zeros(numel);
    tu_view tx = tu_view_new(ctx, 1, c.ndim, c.shape, NULL);
    tu_view ty = tu_view_new(ctx, 2, c.ndim, c.shape, NULL);
    tu_view tg = TU_VIEW(ctx, 3, g, ch), tb = TU_VIEW(ctx, 4, b, ch);
    tu_view trm = TU_VIEW(ctx, 5, zeros, ch), trv = TU_VIEW(ctx, 6, ones, ch);
    tu_view tsm = TU_VIEW(ctx, 7, NULL, ch), tsi = TU_VIEW(ctx, 8, NULL, ch);
    for (int step = 0; step < 5; step++) {
        float *x = bn_input(&c, 50 + (uint64_t)step);
        TU_OK(ct_tensor_upload(tx.t, x, numel));
        TU_OK(ct_batchnorm_forward(ctx, tx.t, tg.t, tb.t, trm.t, trv.t, &p, tsm.t, tsi.t, ty.t));
        ct_ref_batchnorm_forward(x, g, b, n, ch, hw, p.eps, p.momentum, true, rrm, rrv, NULL,
                                 NULL, ry);
        free(x);
    }
    float *rm = tu_view_get("running_mean", &trm), *rv = tu_view_get("running_var", &trv);
    tu_assert_close("running_mean after 5 steps", rm, rrm, ch, 1e-5, 1e-5);
    tu_assert_close("running_var after 5 steps", rv, rrv, ch, 1e-6, 1e-5);

    /* eval: the reference normalises with the device's running stats (as floats) */
    ct_bn_params pe = p;
    pe.training = false;
    float *x = bn_input(&c, 77);
    TU_OK(ct_tensor_upload(tx.t, x, numel));
    TU_OK(ct_batchnorm_forward(ctx, tx.t, tg.t, tb.t, trm.t, trv.t, &pe, NULL, NULL, ty.t));
    double erm[5], erv[5];
    for (size_t i = 0; i < ch; i++)
        erm[i] = rm[i], erv[i] = rv[i];
    ct_ref_batchnorm_forward(x, g, b, n, ch, hw, pe.eps, pe.momentum, false, erm, erv, NULL,
                             NULL, ry);
    float *y = tu_view_get("eval y", &ty);
    tu_assert_close("eval y", y, ry, numel, BN_Y_ATOL, BN_Y_RTOL);
    float *rm2 = tu_view_get("running_mean", &trm), *rv2 = tu_view_get("running_var", &trv);
    cr_assert(memcmp(rm, rm2, ch * sizeof *rm) == 0 && memcmp(rv, rv2, ch * sizeof *rv) == 0,
              "eval mode changed the running statistics");
    free(x), free(y), free(rm), free(rv), free(rm2), free(rv2), free(g), free(b), free(ry);
    tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tg), tu_view_free(&tb), tu_view_free(&trm),
        tu_view_free(&trv), tu_view_free(&tsm), tu_view_free(&tsi);
    ct_context_free(ctx);
}

/* Eval on (N, C) and non-affine, with hand-picked running stats. */
Test(batchnorm, eval_1d_uses_running_stats)
{
    ct_context *ctx = tu_context();
    size_t n = 3, ch = 11;
    float *x = tu_rand(n * ch, 4, -3.0, 3.0);
    float *rm = tu_rand(ch, 5, -1.0, 1.0), *rv = tu_rand(ch, 6, 0.1, 4.0);
    double drm[11], drv[11];
    for (size_t i = 0; i < ch; i++)
        drm[i] = rm[i], drv[i] = rv[i];
    double *ry = tu_zeros(n * ch);
    ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = false};
    ct_ref_batchnorm_forward(x, NULL, NULL, n, ch, 1, p.eps, p.momentum, false, drm, drv, NULL,
                             NULL, ry);
    tu_view tx = TU_VIEW(ctx, 1, x, n, ch), ty = TU_VIEW(ctx, 3, NULL, n, ch);
    tu_view trm = TU_VIEW(ctx, 1, rm, ch), trv = TU_VIEW(ctx, 2, rv, ch);
    TU_OK(ct_batchnorm_forward(ctx, tx.t, NULL, NULL, trm.t, trv.t, &p, NULL, NULL, ty.t));
    float *y = tu_view_get("y", &ty);
    /* |y| <= 3/sqrt(0.1) ~ 10: rtol dominates */
    tu_assert_close("bn1d eval y", y, ry, n * ch, BN_Y_ATOL, BN_Y_RTOL);
    free(x), free(rm), free(rv), free(ry), free(y);
    tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&trm), tu_view_free(&trv);
    ct_context_free(ctx);
}

/* Tolerances, backward. dx = a*(dy - mean(dy) - (x - mean)*k) with a = gamma*invstd <= 1.5
 * / std: each term O(a*2) and the float sums carry ~1e-6 relative error, so atol 5e-5
 * and rtol 1e-4 (the subtraction can cancel). dgamma/dbeta are sums of M terms O(2):
 * atol 2e-6 * M. */
Test(batchnorm, backward_matches_ref_and_accumulates)
{
    ct_context *ctx = tu_context();
    for (size_t ci = 0; ci < NCASES; ci++) {
        const bn_case *c = &cases[ci];
        size_t numel = case_numel(c), ch = c->shape[1], hw = case_hw(c), n = c->shape[0];
        if (n * hw < 2)
            continue;
        float *x = bn_input(c, 600 + ci);
        float *dy = tu_rand(numel, 700 + ci, -2.0, 2.0);
        float *g = tu_rand(ch, 800 + ci, 0.5, 1.5);
        float *dg0 = tu_rand(ch, 900 + ci, -1.0, 1.0), *db0 = tu_rand(ch, 950 + ci, -1.0, 1.0);
        float *nanv = tu_nans(numel);
        for (int affine = 0; affine < 2; affine++) {
            char sh[48];
            case_str(c, sh, sizeof sh);
            cr_log_info("bn backward %s affine=%d", sh, affine);
            double *rdx = tu_zeros(numel), *rdg = tu_zeros(ch), *rdb = tu_zeros(ch);
            double *rmean = tu_zeros(ch), *rinv = tu_zeros(ch), *ry = tu_zeros(numel);
            for (size_t i = 0; i < ch; i++)
                rdg[i] = dg0[i], rdb[i] = db0[i];
            ct_ref_batchnorm_backward(x, affine ? g : NULL, dy, n, ch, hw, 1e-5, rdx, rdg, rdb);

            /* the saved statistics come from the device's own forward */
            ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = true};
            tu_view tx = tu_view_new(ctx, 3, c->ndim, c->shape, x);
            tu_view ty = tu_view_new(ctx, 0, c->ndim, c->shape, NULL);
            tu_view tdy = tu_view_new(ctx, 5, c->ndim, c->shape, dy);
            tu_view tdx = tu_view_new(ctx, 1, c->ndim, c->shape, nanv);
            tu_view tg = TU_VIEW(ctx, 5, g, ch);
            tu_view tdg = TU_VIEW(ctx, 3, dg0, ch), tdb = TU_VIEW(ctx, 1, db0, ch);
            tu_view tsm = TU_VIEW(ctx, 3, NULL, ch), tsi = TU_VIEW(ctx, 9, NULL, ch);
            TU_OK(ct_batchnorm_forward(ctx, tx.t, affine ? tg.t : NULL, NULL, NULL, NULL, &p,
                                       tsm.t, tsi.t, ty.t));
            TU_OK(ct_batchnorm_backward(ctx, tx.t, affine ? tg.t : NULL, tsm.t, tsi.t, tdy.t,
                                        tdx.t, tdg.t, tdb.t));
            float *dx = tu_view_get("dx", &tdx), *dg = tu_view_get("dgamma", &tdg);
            float *db = tu_view_get("dbeta", &tdb);
            double m = (double)(n * hw);
            tu_assert_close("bn dx", dx, rdx, numel, 5e-5, 1e-4);
            tu_assert_close("bn dgamma", dg, rdg, ch, 2e-6 * m, 1e-5);
            tu_assert_close("bn dbeta", db, rdb, ch, 2e-6 * m, 1e-5);
            free(dx), free(dg), free(db);

            /* in place (dx aliasing dy), and without dgamma/dbeta */
            TU_OK(ct_batchnorm_backward(ctx, tx.t, affine ? tg.t : NULL, tsm.t, tsi.t, tdy.t,
                                        tdy.t, NULL, NULL));
            dx = tu_view_get("dx in place", &tdy);
            tu_assert_close("bn dx in place", dx, rdx, numel, 5e-5, 1e-4);
            free(dx);
            /* only parameter gradients: accumulated a second time */
            TU_OK(ct_tensor_upload(tdy.t, dy, numel));
            TU_OK(ct_batchnorm_backward(ctx, tx.t, affine ? tg.t : NULL, tsm.t, tsi.t, tdy.t,
                                        NULL, tdg.t, tdb.t));
            ct_ref_batchnorm_backward(x, affine ? g : NULL, dy, n, ch, hw, 1e-5, NULL, rdg, rdb);
            dg = tu_view_get("dgamma", &tdg);
            db = tu_view_get("dbeta", &tdb);
            tu_assert_close("bn dgamma (twice)", dg, rdg, ch, 4e-6 * m, 1e-5);
            tu_assert_close("bn dbeta (twice)", db, rdb, ch, 4e-6 * m, 1e-5);
            free(dg), free(db);

            free(rdx), free(rdg), free(rdb), free(rmean), free(rinv), free(ry);
            tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tdy), tu_view_free(&tdx),
                tu_view_free(&tg), tu_view_free(&tdg), tu_view_free(&tdb), tu_view_free(&tsm),
                tu_view_free(&tsi);
        }
        free(x), free(dy), free(g), free(dg0), free(db0), free(nanv);
    }
    ct_context_free(ctx);
}

/* The same shape and data give bit-identical results run after run. */
Test(batchnorm, deterministic)
{
    ct_context *ctx = tu_context();
    const bn_case c = {4, {8, 3, 16, 16}};
    size_t numel = case_numel(&c);
    float *x = bn_input(&c, 9), *dy = tu_rand(numel, 10, -1.0, 1.0);
    ct_tensor *tx = tu_tensor(ctx, c.ndim, c.shape, x), *ty = tu_tensor(ctx, c.ndim, c.shape, NULL);
    ct_tensor *tdy = tu_tensor(ctx, c.ndim, c.shape, dy), *tdx = tu_tensor(ctx, c.ndim, c.shape, NULL);
    ct_tensor *sm = tu_tensor(ctx, TU_SHAPE(3), NULL), *si = tu_tensor(ctx, TU_SHAPE(3), NULL);
    ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = true};
    float *first[2] = {NULL, NULL};
    for (int run = 0; run < 3; run++) {
        TU_OK(ct_batchnorm_forward(ctx, tx, NULL, NULL, NULL, NULL, &p, sm, si, ty));
        TU_OK(ct_batchnorm_backward(ctx, tx, NULL, sm, si, tdy, tdx, NULL, NULL));
        float *y = tu_download(ty), *dx = tu_download(tdx);
        if (run == 0) {
            first[0] = y, first[1] = dx;
            continue;
        }
        cr_assert(memcmp(y, first[0], numel * sizeof *y) == 0, "y differs on run %d", run);
        cr_assert(memcmp(dx, first[1], numel * sizeof *dx) == 0, "dx differs on run %d", run);
        free(y), free(dx);
    }
    free(first[0]), free(first[1]), free(x), free(dy);
    ct_tensor_free(tx), ct_tensor_free(ty), ct_tensor_free(tdy), ct_tensor_free(tdx),
        ct_tensor_free(sm), ct_tensor_free(si);
    ct_context_free(ctx);
}

Test(batchnorm, rejects_bad_arguments)
{
    ct_context *ctx = tu_context();
    ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = true};
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(2, 3, 4, 4), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(2, 3, 4, 4), NULL);
    ct_tensor *ybad = tu_tensor(ctx, TU_SHAPE(2, 3, 16), NULL);
    ct_tensor *c3 = tu_tensor(ctx, TU_SHAPE(3), NULL), *c4 = tu_tensor(ctx, TU_SHAPE(4), NULL);
    ct_tensor *one = tu_tensor(ctx, TU_SHAPE(1, 3), NULL);
    cr_expect_eq(ct_batchnorm_forward(ctx, x, c4, NULL, NULL, NULL, &p, c3, c3, y), CT_ERR_SHAPE);
    cr_expect_eq(ct_batchnorm_forward(ctx, x, NULL, NULL, NULL, NULL, &p, c3, c3, ybad),
                 CT_ERR_SHAPE);
    /* one value per channel cannot be normalised in training (PyTorch raises too) */
    cr_expect_eq(ct_batchnorm_forward(ctx, one, NULL, NULL, NULL, NULL, &p, c3, c3, one),
                 CT_ERR_SHAPE);
    cr_expect_eq(ct_batchnorm_forward(ctx, x, NULL, NULL, NULL, NULL, &p, NULL, NULL, y),
                 CT_ERR_INVALID_ARG);
    p.training = false;
    cr_expect_eq(ct_batchnorm_forward(ctx, x, NULL, NULL, NULL, NULL, &p, NULL, NULL, y),
                 CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_batchnorm_backward(ctx, x, NULL, c3, c3, ybad, NULL, c3, NULL), CT_ERR_SHAPE);
    cr_expect_eq(ct_batchnorm_backward(ctx, x, NULL, c3, c4, y, NULL, c3, NULL), CT_ERR_SHAPE);
    ct_error_clear();
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(ybad), ct_tensor_free(c3),
        ct_tensor_free(c4), ct_tensor_free(one);
    ct_context_free(ctx);
}
