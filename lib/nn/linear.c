/* lib/nn/linear.c — the fully connected layer: y = x w^T + b (+ ReLU).
 *
 * The products are ct_gemm calls (row-major; kernels/gemm.cl on CPU devices, CLBlast on
 * GPUs); the bias gradient, and with CLBlast the bias and fused ReLU, are small kernels
 * in kernels/linear.cl (kernels/gemm.cl applies bias and ReLU in the product's epilogue).
 *   forward:  y  = x w^T                 gemm(N, OUT, IN, x, w^T), then bias + ReLU in place
 *   backward: dx = dy w                  gemm(N, IN, OUT, beta = 0: overwrite)
 *             dw += dy^T x               gemm(OUT, IN, N, beta = 1: accumulate)
 * (dx, dw and db may each be NULL when not wanted.)
 *             db += column sums of dy    linear_bias_grad, rows added in order
 * x may be any tensor of N rows (e.g. (N, C, H, W) straight from a conv): it is read as
 * (N, numel/N), which must equal IN.
 */
#include "nn/ops.h"

/* t is n rows of f values: t->shape[0] == n and numel == n*f. */
static ct_status expect_rows(const ct_tensor *t, const char *what, size_t n, size_t f)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "linear: %s is NULL", what);
    CT_REQUIRE(t->ndim >= 2 && t->shape[0] == n && t->numel == n * f, CT_ERR_SHAPE,
               "linear: %s must be (%zu, %zu) (%zu dims, first %zu, %zu elements)", what, n, f,
               t->ndim, t->shape[0], t->numel);
cleanup:
    return st;
}

static ct_status expect_vec(const ct_tensor *t, const char *what, size_t f)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(t->ndim == 1 && t->numel == f, CT_ERR_SHAPE,
               "linear: %s must be (%zu) (%zu dims, %zu elements)", what, f, t->ndim, t->numel);
cleanup:
    return st;
}

ct_status ct_linear_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                            const ct_tensor *b, bool relu, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_REQUIRE(ctx && x && w && y, CT_ERR_INVALID_ARG, "linear forward: NULL argument");
    CT_REQUIRE(w->ndim == 2, CT_ERR_SHAPE, "linear: w must be (OUT, IN), has %zu dims", w->ndim);
    size_t out = w->shape[0], in = w->shape[1], n = x->shape[0];
    CT_TRY(expect_rows(x, "x", n, in));
    CT_TRY(expect_rows(y, "y", n, out));
    if (b)
        CT_TRY(expect_vec(b, "b", out));
    CT_REQUIRE(y->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED, "linear: y has more than 2^32 elements");

    /* y (N, OUT) = x (N, IN) * w^T (IN, OUT), with bias and ReLU when the GEMM fuses them */
    bool fused = false;
    CT_TRY(ct_gemm_nt_bias_act(ctx, n, out, in, x, w, b, relu, y, &fused));
    if (!fused && (b || relu)) {
        size_t global[2] = {(out + 7) / 8, n};
        CT_TRY(ct_kernel_get(ctx, "linear.cl", "linear_bias_act", NULL, &k));
        CT_TRY(CT_SETARGS(k, "linear_bias_act", CT_T(y), CT_T(b ? b : y), CT_U32(n), CT_U32(out),
                          CT_U32(b != NULL), CT_U32(relu)));
        CT_TRY(ct_launch(ctx, k, "linear_bias_act", 2, global, NULL));
    }
cleanup:
    return st;
}

ct_status ct_linear_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                             const ct_tensor *dy, ct_tensor *dx, ct_tensor *dw, ct_tensor *db)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_REQUIRE(ctx && x && w && dy, CT_ERR_INVALID_ARG, "linear backward: NULL argument");
    CT_REQUIRE(w->ndim == 2, CT_ERR_SHAPE, "linear: w must be (OUT, IN), has %zu dims", w->ndim);
    size_t out = w->shape[0], in = w->shape[1], n = x->shape[0];
    CT_TRY(expect_rows(x, "x", n, in));
    CT_TRY(expect_rows(dy, "dy", n, out));
    if (dw)
        CT_TRY(ct_tensor_expect(dw, "linear dw", 2, w->shape));
    if (dx)
        CT_TRY(expect_rows(dx, "dx", n, in));
    if (db)
        CT_TRY(expect_vec(db, "db", out));
    CT_REQUIRE(dy->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED, "linear: dy has more than 2^32 elements");

    if (dx) /* dx (N, IN) = dy (N, OUT) * w (OUT, IN) */
        CT_TRY(ct_gemm(ctx, false, false, n, in, out, 1.0f, dy, out, w, in, 0.0f, dx, in));
    if (dw) /* dw (OUT, IN) += dy^T (OUT, N) * x (N, IN) */
        CT_TRY(ct_gemm(ctx, true, false, out, in, n, 1.0f, dy, out, x, in, 1.0f, dw, in));
    if (db) {
        size_t global = (out + 7) / 8;
        CT_TRY(ct_kernel_get(ctx, "linear.cl", "linear_bias_grad", NULL, &k));
        CT_TRY(CT_SETARGS(k, "linear_bias_grad", CT_T(dy), CT_T(db), CT_U32(n), CT_U32(out)));
        CT_TRY(ct_launch(ctx, k, "linear_bias_grad", 1, &global, NULL));
    }
cleanup:
    return st;
}
