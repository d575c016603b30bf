/* tests/ops/test_act.c — activations and softmax against lib/ref (double precision).
 *
 * Shapes are chosen to hit every path of the float8 kernels: fewer than 8 elements, a
 * partial last chunk, exact multiples of 8, and a larger tensor; every tensor is a view
 * at an odd offset inside a canary-filled buffer. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/elem_ref.h"
#include "testutil.h"

static const size_t sizes[] = {1, 5, 8, 13, 64, 210, 1003};
#define NSIZES (sizeof sizes / sizeof sizes[0])

static const ct_act_kind kinds[] = {CT_ACT_RELU, CT_ACT_LEAKY_RELU, CT_ACT_SIGMOID, CT_ACT_TANH};
static const char *const kind_names[] = {"relu", "leaky_relu", "sigmoid", "tanh"};

/* Tolerances. ReLU is exact; LeakyReLU rounds one product (rtol 2^-23 covers it).
 * Sigmoid and tanh use OpenCL's exp/tanh (<= 3 and 5 ulp in OpenCL C 1.2) plus one
 * division: a few ulp of values bounded by 1, so atol 1e-6. The backward of sigmoid and
 * tanh works from the float output y, whose rounding (<= 1e-6 absolute) enters (1 - y)
 * and y*y; with |dy| <= 2 that is at most a few 1e-6. */
static void act_tol(ct_act_kind k, bool bwd, double *atol, double *rtol)
{
    if (k == CT_ACT_RELU || k == CT_ACT_LEAKY_RELU) {
        *atol = 0.0;
        *rtol = 1.2e-7;
    } else {
        *atol = bwd ? 4e-6 : 1e-6;
        *rtol = 1e-6;
    }
}

/* Inputs in [-6, 6] with some exact zeros (the kink of ReLU/LeakyReLU). */
static float *act_input(size_t n, uint64_t seed)
{
    float *x = tu_rand(n, seed, -6.0, 6.0);
    for (size_t i = 0; i < n; i += 7)
        x[i] = 0.0f;
    return x;
}

Test(act, forward_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t ki = 0; ki < 4; ki++) {
        for (size_t si = 0; si < NSIZES; si++) {
            size_t n = sizes[si];
            float slope = 0.01f + 0.1f * (float)si;
            float *x = act_input(n, 100 + si);
            double *ref = tu_zeros(n);
            ct_ref_act_forward((int)kinds[ki], slope, x, n, ref);
            tu_view tx = TU_VIEW(ctx, 3, x, n);
            tu_view ty = TU_VIEW(ctx, 5, NULL, n);
            TU_OK(ct_act_forward(ctx, kinds[ki], slope, tx.t, ty.t));
            float *y = tu_view_get("y", &ty);
            float *xa = tu_view_get("x", &tx);
            char what[64];
            snprintf(what, sizeof what, "%s forward n=%zu", kind_names[ki], n);
            double atol, rtol;
            act_tol(kinds[ki], false, &atol, &rtol);
            tu_assert_close(what, y, ref, n, atol, rtol);
            cr_assert(memcmp(xa, x, n * sizeof *x) == 0, "%s: x was modified", what);
            free(x), free(ref), free(y), free(xa);
            tu_view_free(&tx), tu_view_free(&ty);
        }
    }
    ct_context_free(ctx);
}

Test(act, forward_in_place)
{
    ct_context *ctx = tu_context();
    size_t n = 77;
    for (size_t ki = 0; ki < 4; ki++) {
        float *x = act_input(n, 7 + ki);
        double *ref = tu_zeros(n);
        ct_ref_act_forward((int)kinds[ki], 0.2, x, n, ref);
        tu_view t = TU_VIEW(ctx, 1, x, 7, 11);
        TU_OK(ct_act_forward(ctx, kinds[ki], 0.2f, t.t, t.t));
        float *y = tu_view_get("y", &t);
        double atol, rtol;
        act_tol(kinds[ki], false, &atol, &rtol);
        tu_assert_close(kind_names[ki], y, ref, n, atol, rtol);
        free(x), free(ref), free(y);
        tu_view_free(&t);
    }
    ct_context_free(ctx);
}

Test(act, backward_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t ki = 0; ki < 4; ki++) {
        for (size_t si = 0; si < NSIZES; si++) {
            size_t n = sizes[si];
            float slope = 0.05f;
            float *x = act_input(n, 200 + si);
            float *dy = tu_rand(n, 300 + si, -2.0, 2.0);
            double *ref = tu_zeros(n);
            ct_ref_act_backward((int)kinds[ki], slope, x, dy, n, ref);
            tu_view tx = TU_VIEW(ctx, 1, x, n);
            tu_view ty = TU_VIEW(ctx, 2, NULL, n);
            tu_view tdy = TU_VIEW(ctx, 3, dy, n);
            tu_view tdx = TU_VIEW(ctx, 9, NULL, n);
            TU_OK(ct_act_forward(ctx, kinds[ki], slope, tx.t, ty.t));
            TU_OK(ct_act_backward(ctx, kinds[ki], slope, tx.t, ty.t, tdy.t, tdx.t));
            float *dx = tu_view_get("dx", &tdx);
            char what[64];
            snprintf(what, sizeof what, "%s backward n=%zu", kind_names[ki], n);
            double atol, rtol;
            act_tol(kinds[ki], true, &atol, &rtol);
            tu_assert_close(what, dx, ref, n, atol, rtol);
            free(x), free(dy), free(ref), free(dx);
            tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tdy), tu_view_free(&tdx);
        }
    }
    ct_context_free(ctx);
}

/* dx may alias dy (the model runs element-wise backwards in place); the unused input
 * (y for ReLU, x for sigmoid) may be NULL. */
Test(act, backward_in_place_and_null_unused)
{
    ct_context *ctx = tu_context();
    size_t n = 45;
    for (size_t ki = 0; ki < 4; ki++) {
        bool relu_like = kinds[ki] == CT_ACT_RELU || kinds[ki] == CT_ACT_LEAKY_RELU;
        float *x = act_input(n, 50 + ki);
        float *dy = tu_rand(n, 60 + ki, -1.0, 1.0);
        double *ref = tu_zeros(n);
        ct_ref_act_backward((int)kinds[ki], 0.3, x, dy, n, ref);
        tu_view tx = TU_VIEW(ctx, 0, x, 5, 9);
        tu_view ty = TU_VIEW(ctx, 0, NULL, 5, 9);
        tu_view tg = TU_VIEW(ctx, 3, dy, 5, 9);
        TU_OK(ct_act_forward(ctx, kinds[ki], 0.3f, tx.t, ty.t));
        TU_OK(ct_act_backward(ctx, kinds[ki], 0.3f, relu_like ? tx.t : NULL,
                              relu_like ? NULL : ty.t, tg.t, tg.t));
        float *dx = tu_view_get("dx", &tg);
        double atol, rtol;
        act_tol(kinds[ki], true, &atol, &rtol);
        tu_assert_close(kind_names[ki], dx, ref, n, atol, rtol);
        free(x), free(dy), free(ref), free(dx);
        tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tg);
    }
    ct_context_free(ctx);
}

/* PyTorch's choices at the edges: relu(NaN) = NaN, relu'(0) = 0 (and NaN passes dy:
 * threshold_backward tests `x <= 0`), leaky'(0) = slope,
 * sigmoid saturates to exactly 0 and 1 without NaN, tanh(+-inf) = +-1. */
Test(act, special_values)
{
    ct_context *ctx = tu_context();
    float x[4] = {NAN, 0.0f, -INFINITY, INFINITY};
    float dy[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    ct_tensor *tx = tu_tensor(ctx, TU_SHAPE(4), x);
    ct_tensor *ty = tu_tensor(ctx, TU_SHAPE(4), NULL);
    ct_tensor *tdy = tu_tensor(ctx, TU_SHAPE(4), dy);
    ct_tensor *tdx = tu_tensor(ctx, TU_SHAPE(4), NULL);

    TU_OK(ct_act_forward(ctx, CT_ACT_RELU, 0.0f, tx, ty));
    float *y = tu_download(ty);
    cr_expect(isnan(y[0]) && y[1] == 0.0f && y[2] == 0.0f && isinf(y[3]), "relu: %g %g %g %g",
              y[0], y[1], y[2], y[3]);
    free(y);
    TU_OK(ct_act_backward(ctx, CT_ACT_RELU, 0.0f, tx, ty, tdy, tdx));
    float *g = tu_download(tdx);
    cr_expect(g[0] == 1.0f && g[1] == 0.0f && g[2] == 0.0f && g[3] == 1.0f,
              "relu backward: %g %g %g %g", g[0], g[1], g[2], g[3]);
    free(g);
    TU_OK(ct_act_backward(ctx, CT_ACT_LEAKY_RELU, 0.25f, tx, ty, tdy, tdx));
    g = tu_download(tdx);
    cr_expect(g[1] == 0.25f && g[3] == 1.0f, "leaky backward at 0 / +inf: %g %g", g[1], g[3]);
    free(g);
    TU_OK(ct_act_forward(ctx, CT_ACT_SIGMOID, 0.0f, tx, ty));
    y = tu_download(ty);
    cr_expect(y[1] == 0.5f && y[2] == 0.0f && y[3] == 1.0f, "sigmoid: %g %g %g", y[1], y[2],
              y[3]);
    free(y);
    TU_OK(ct_act_forward(ctx, CT_ACT_TANH, 0.0f, tx, ty));
    y = tu_download(ty);
    cr_expect(y[1] == 0.0f && y[2] == -1.0f && y[3] == 1.0f, "tanh: %.9g %.9g %.9g", y[1], y[2], y[3]);
    free(y);
    ct_tensor_free(tx), ct_tensor_free(ty), ct_tensor_free(tdy), ct_tensor_free(tdx);
    ct_context_free(ctx);
}

Test(act, rejects_bad_arguments)
{
    ct_context *ctx = tu_context();
    ct_tensor *a = tu_tensor(ctx, TU_SHAPE(10), NULL);
    ct_tensor *b = tu_tensor(ctx, TU_SHAPE(11), NULL);
    cr_expect_eq(ct_act_forward(ctx, CT_ACT_RELU, 0.0f, a, b), CT_ERR_SHAPE);
    cr_expect_eq(ct_act_forward(ctx, (ct_act_kind)42, 0.0f, a, a), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_act_backward(ctx, CT_ACT_TANH, 0.0f, a, NULL, a, a), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_softmax_forward(ctx, a, false, a), CT_ERR_SHAPE);
    ct_error_clear();
    ct_tensor_free(a), ct_tensor_free(b);
    ct_context_free(ctx);
}

/* ---- softmax --------------------------------------------------------------------- */

/* Softmax: exp (<= 3 ulp) and one division per value, the sum of <= 1000 terms in float
 * (relative error ~ 1e-6 at worst): rtol 4e-6 on values in (0, 1], atol 1e-7 for the tiny
 * ones. Log-softmax: (x - max) is exact-ish, log(sum) carries ~1e-6 relative error of a
 * value <= log(1000) ~ 7: atol 1e-5. */
Test(softmax, matches_ref)
{
    ct_context *ctx = tu_context();
    static const size_t shapes[][2] = {{1, 1}, {1, 10}, {4, 37}, {3, 8}, {7, 16}, {2, 1000}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        size_t n = shapes[si][0], f = shapes[si][1];
        float *x = tu_rand(n * f, 900 + si, -8.0, 8.0);
        /* rows with a large common offset: only a max-subtracting softmax survives */
        for (size_t r = 0; r < n; r++)
            for (size_t j = 0; j < f; j++)
                x[r * f + j] += (r % 2) ? 90.0f : -70.0f;
        for (int lg = 0; lg < 2; lg++) {
            double *ref = tu_zeros(n * f);
            ct_ref_softmax(x, n, f, lg, ref);
            tu_view tx = TU_VIEW(ctx, 3, x, n, f);
            tu_view ty = TU_VIEW(ctx, 1, NULL, n, f);
            TU_OK(ct_softmax_forward(ctx, tx.t, lg, ty.t));
            float *y = tu_view_get("softmax y", &ty);
            char what[64];
            snprintf(what, sizeof what, "%ssoftmax %zux%zu", lg ? "log_" : "", n, f);
            if (lg)
                tu_assert_close(what, y, ref, n * f, 1e-5, 1e-6);
            else
                tu_assert_close(what, y, ref, n * f, 1e-7, 4e-6);
            free(ref), free(y);
            tu_view_free(&tx), tu_view_free(&ty);
        }
        free(x);
    }
    ct_context_free(ctx);
}
