/* tests/ops/test_linear.c — the fully connected layer against lib/ref (double precision):
 * forward with and without bias and fused ReLU, backward with dx overwritten and dw/db
 * accumulated onto non-zero values, over awkward shapes (batch 1, odd feature counts),
 * every tensor a view at an odd offset inside a canary-filled buffer. The forward runs on
 * both GEMM implementations (CLTRAIN_GEMM): kernels/gemm.cl applies bias and ReLU in its
 * epilogue, CLBlast's path through linear_bias_act. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/elem_ref.h"
#include "testutil.h"

typedef struct lin_shape {
    size_t n, in, out;
} lin_shape;

static const lin_shape shapes[] = {{1, 1, 1},  {1, 7, 3},   {4, 13, 9},
                                   {5, 33, 17}, {32, 100, 10}, {3, 64, 16}};
#define NSHAPES (sizeof shapes / sizeof shapes[0])

/* Float GEMM of length K on values in [-1, 1]: the rounding error is a random walk of K
 * steps of ~2^-24 times partial sums of size ~sqrt(K); atol 1e-5 per 16 terms is far
 * above that and far below the O(0.1) error of any wrong index. */
static double gemm_atol(size_t k)
{
    return 1e-5 * (double)((k + 15) / 16);
}

Test(linear, forward_matches_ref)
{
    ct_context *ctx = tu_context();
    for (size_t si = 0; si < 2 * NSHAPES; si++) {
        setenv("CLTRAIN_GEMM", si < NSHAPES ? "own" : "clblast", 1);
        lin_shape s = shapes[si % NSHAPES];
        float *x = tu_rand(s.n * s.in, 10 + si, -1.0, 1.0);
        float *w = tu_rand(s.out * s.in, 20 + si, -1.0, 1.0);
        float *b = tu_rand(s.out, 30 + si, -1.0, 1.0);
        /* y starts as NaN: the GEMM (beta = 0) must overwrite, not scale, it */
        float *yinit = tu_nans(s.n * s.out);
        for (int variant = 0; variant < 4; variant++) {
            bool has_b = variant & 1, relu = variant & 2;
            double *ref = tu_zeros(s.n * s.out);
            ct_ref_linear_forward(x, w, has_b ? b : NULL, relu, s.n, s.in, s.out, ref);
            tu_view tx = TU_VIEW(ctx, 3, x, s.n, s.in);
            tu_view tw = TU_VIEW(ctx, 1, w, s.out, s.in);
            tu_view tb = TU_VIEW(ctx, 5, b, s.out);
            tu_view ty = TU_VIEW(ctx, 7, yinit, s.n, s.out);
            TU_OK(ct_linear_forward(ctx, tx.t, tw.t, has_b ? tb.t : NULL, relu, ty.t));
            float *y = tu_view_get("y", &ty);
            char what[96];
            snprintf(what, sizeof what, "linear forward (%s) n=%zu in=%zu out=%zu bias=%d relu=%d",
                     getenv("CLTRAIN_GEMM"), s.n, s.in, s.out, has_b, relu);
            tu_assert_close(what, y, ref, s.n * s.out, gemm_atol(s.in), 1e-5);
            if (relu)
                for (size_t i = 0; i < s.n * s.out; i++)
                    cr_assert(y[i] >= 0.0f, "%s: y[%zu] = %g < 0", what, i, (double)y[i]);
            free(ref), free(y);
            tu_view_free(&tx), tu_view_free(&tw), tu_view_free(&tb), tu_view_free(&ty);
        }
        free(x), free(w), free(b), free(yinit);
    }
    unsetenv("CLTRAIN_GEMM");
    ct_context_free(ctx);
}

/* x straight from a conv, (N, C, H, W), is read as (N, C*H*W). */
Test(linear, forward_flattens_image_input)
{
    ct_context *ctx = tu_context();
    size_t n = 2, c = 3, h = 4, wd = 5, in = c * h * wd, out = 6;
    float *x = tu_rand(n * in, 1, -1.0, 1.0);
    float *w = tu_rand(out * in, 2, -1.0, 1.0);
    float *b = tu_rand(out, 3, -1.0, 1.0);
    double *ref = tu_zeros(n * out);
    ct_ref_linear_forward(x, w, b, true, n, in, out, ref);
    tu_view tx = TU_VIEW(ctx, 1, x, n, c, h, wd);
    tu_view tw = TU_VIEW(ctx, 0, w, out, in);
    tu_view tb = TU_VIEW(ctx, 0, b, out);
    tu_view ty = TU_VIEW(ctx, 0, NULL, n, out);
    TU_OK(ct_linear_forward(ctx, tx.t, tw.t, tb.t, true, ty.t));
    float *y = tu_view_get("y", &ty);
    tu_assert_close("linear forward (N,C,H,W) input", y, ref, n * out, gemm_atol(in), 1e-5);
    free(x), free(w), free(b), free(ref), free(y);
    tu_view_free(&tx), tu_view_free(&tw), tu_view_free(&tb), tu_view_free(&ty);
    ct_context_free(ctx);
}

/* dx is overwritten (starts NaN); dw and db start non-zero and are accumulated onto. */
Test(linear, backward_matches_ref_and_accumulates)
{
    ct_context *ctx = tu_context();
    for (size_t si = 0; si < NSHAPES; si++) {
        lin_shape s = shapes[si];
        float *x = tu_rand(s.n * s.in, 40 + si, -1.0, 1.0);
        float *w = tu_rand(s.out * s.in, 50 + si, -1.0, 1.0);
        float *dy = tu_rand(s.n * s.out, 60 + si, -1.0, 1.0);
        float *dw0 = tu_rand(s.out * s.in, 70 + si, -0.5, 0.5);
        float *db0 = tu_rand(s.out, 80 + si, -0.5, 0.5);
        float *dxinit = tu_nans(s.n * s.in);
        double *rdx = tu_zeros(s.n * s.in), *rdw = tu_zeros(s.out * s.in), *rdb = tu_zeros(s.out);
        for (size_t i = 0; i < s.out * s.in; i++)
            rdw[i] = dw0[i];
        for (size_t i = 0; i < s.out; i++)
            rdb[i] = db0[i];
        ct_ref_linear_backward(x, w, dy, s.n, s.in, s.out, rdx, rdw, rdb);

        tu_view tx = TU_VIEW(ctx, 3, x, s.n, s.in);
        tu_view tw = TU_VIEW(ctx, 1, w, s.out, s.in);
        tu_view tdy = TU_VIEW(ctx, 9, dy, s.n, s.out);
        tu_view tdx = TU_VIEW(ctx, 5, dxinit, s.n, s.in);
        tu_view tdw = TU_VIEW(ctx, 11, dw0, s.out, s.in);
        tu_view tdb = TU_VIEW(ctx, 2, db0, s.out);
        TU_OK(ct_linear_backward(ctx, tx.t, tw.t, tdy.t, tdx.t, tdw.t, tdb.t));
        float *dx = tu_view_get("dx", &tdx), *dw = tu_view_get("dw", &tdw),
              *db = tu_view_get("db", &tdb);
        char what[96];
        snprintf(what, sizeof what, "n=%zu in=%zu out=%zu", s.n, s.in, s.out);
        cr_log_info("linear backward %s", what);
        tu_assert_close("linear dx", dx, rdx, s.n * s.in, gemm_atol(s.out), 1e-5);
        tu_assert_close("linear dw", dw, rdw, s.out * s.in, gemm_atol(s.n), 1e-5);
        /* db: a sum of n values in [-1, 1] in float, added to db0 */
        tu_assert_close("linear db", db, rdb, s.out, 1e-6 * (double)(s.n + 1), 1e-6);
        free(dx), free(dw), free(db);

        /* optional outputs: dx and db NULL leave only dw, accumulated a second time */
        ct_ref_linear_backward(x, w, dy, s.n, s.in, s.out, NULL, rdw, NULL);
        TU_OK(ct_linear_backward(ctx, tx.t, tw.t, tdy.t, NULL, tdw.t, NULL));
        dw = tu_view_get("dw", &tdw);
        db = tu_view_get("db", &tdb);
        tu_assert_close("linear dw (second accumulation)", dw, rdw, s.out * s.in,
                        2 * gemm_atol(s.n), 1e-5);
        tu_assert_close("linear db (untouched)", db, rdb, s.out, 1e-6 * (double)(s.n + 1), 1e-6);
        free(dw), free(db);

        free(x), free(w), free(dy), free(dw0), free(db0), free(dxinit), free(rdx), free(rdw),
            free(rdb);
        tu_view_free(&tx), tu_view_free(&tw), tu_view_free(&tdy), tu_view_free(&tdx),
            tu_view_free(&tdw), tu_view_free(&tdb);
    }
    ct_context_free(ctx);
}

Test(linear, rejects_bad_shapes)
{
    ct_context *ctx = tu_context();
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(4, 6), NULL);
    ct_tensor *w = tu_tensor(ctx, TU_SHAPE(3, 6), NULL);
    ct_tensor *wbad = tu_tensor(ctx, TU_SHAPE(3, 5), NULL);
    ct_tensor *b = tu_tensor(ctx, TU_SHAPE(3), NULL);
    ct_tensor *bbad = tu_tensor(ctx, TU_SHAPE(4), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(4, 3), NULL);
    ct_tensor *ybad = tu_tensor(ctx, TU_SHAPE(5, 3), NULL);
    cr_expect_eq(ct_linear_forward(ctx, x, wbad, b, false, y), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_forward(ctx, x, w, bbad, false, y), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_forward(ctx, x, w, b, false, ybad), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_backward(ctx, x, w, y, NULL, wbad, NULL), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_backward(ctx, x, w, ybad, NULL, w, NULL), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_backward(ctx, x, w, y, NULL, w, bbad), CT_ERR_SHAPE);
    cr_expect_eq(ct_linear_forward(ctx, NULL, w, b, false, y), CT_ERR_INVALID_ARG);
    ct_error_clear();
    ct_tensor_free(x), ct_tensor_free(w), ct_tensor_free(wbad), ct_tensor_free(b),
        ct_tensor_free(bbad), ct_tensor_free(y), ct_tensor_free(ybad);
    ct_context_free(ctx);
}
