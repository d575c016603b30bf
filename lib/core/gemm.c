/* GEMM through CLBlast, on the context's queue, with tensors and views.
 *
 * CLBlast keeps its compiled kernels in memory only; PoCL's own cache (~/.cache/pocl)
 * makes the second process fast. On devices CLBlast has no tuning for, lib/core/tune.c
 * supplies parameters through CLBlastOverrideParameters before the first call. */
#include <clblast_c.h>
#include <stdio.h>

#include "core/internal.h"

void ct_tune_clblast(ct_context *ctx); /* tune.c */

static ct_status check_operand(const char *name, const ct_tensor *t, bool trans, size_t rows,
                               size_t cols, size_t ld, size_t stride, size_t batch)
{
    ct_status st = CT_SUCCESS;
    /* stored row-major: op(X) rows x cols means X is (cols x rows) when transposed */
    size_t srows = trans ? cols : rows, scols = trans ? rows : cols;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "gemm: %s is NULL", name);
    CT_REQUIRE(ld >= scols, CT_ERR_SHAPE, "gemm: ld%s=%zu is smaller than its row length %zu",
               name, ld, scols);
    size_t need = (srows - 1) * ld + scols + (batch - 1) * stride;
    CT_REQUIRE(need <= t->numel, CT_ERR_SHAPE,
               "gemm: %s needs %zu elements but the tensor has %zu", name, need, t->numel);
cleanup:
    return st;
}

static ct_status clblast_status(int s, const char *what)
{
    if (s == 0)
        return CT_SUCCESS;
    return ct_error_set((ct_status)s, __FILE__, __LINE__, "%s failed", what);
}

ct_status ct_gemm_batched(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n,
                          size_t k, float alpha, const ct_tensor *a, size_t lda, size_t stride_a,
                          const ct_tensor *b, size_t ldb, size_t stride_b, float beta,
                          ct_tensor *c, size_t ldc, size_t stride_c, size_t batch)
{
    ct_status st = CT_SUCCESS;
    cl_event ev = NULL;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "gemm: NULL context");
    CT_REQUIRE(m && n && k && batch, CT_ERR_SHAPE, "gemm: m=%zu n=%zu k=%zu batch=%zu must be >= 1",
               m, n, k, batch);
    CT_TRY(check_operand("A", a, trans_a, m, k, lda, stride_a, batch));
    CT_TRY(check_operand("B", b, trans_b, k, n, ldb, stride_b, batch));
    CT_TRY(check_operand("C", c, false, m, n, ldc, stride_c, batch));
    ct_tune_clblast(ctx);
    CLBlastTranspose ta = trans_a ? CLBlastTransposeYes : CLBlastTransposeNo;
    CLBlastTranspose tb = trans_b ? CLBlastTransposeYes : CLBlastTransposeNo;
    if (batch == 1) {
        CT_TRY(clblast_status(CLBlastSgemm(CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, a->mem,
                                           a->offset, lda, b->mem, b->offset, ldb, beta, c->mem,
                                           c->offset, ldc, &ctx->queue, &ev),
                              "CLBlastSgemm"));
    } else {
        CT_TRY(clblast_status(CLBlastSgemmStridedBatched(
                                  CLBlastLayoutRowMajor, ta, tb, m, n, k, alpha, a->mem, a->offset,
                                  lda, stride_a, b->mem, b->offset, ldb, stride_b, beta, c->mem,
                                  c->offset, ldc, stride_c, batch, &ctx->queue, &ev),
                              "CLBlastSgemmStridedBatched"));
    }
    ct_profile_add(ctx, "gemm", ev);
    ev = NULL;
cleanup:
    if (ev)
        clReleaseEvent(ev);
    return st;
}

ct_status ct_gemm(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, const ct_tensor *a, size_t lda, const ct_tensor *b, size_t ldb,
                  float beta, ct_tensor *c, size_t ldc)
{
    return ct_gemm_batched(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
                           ldc, 0, 1);
}
