/* GEMM on the context's queue, with tensors and views: CLBlast, or on CPU devices the
 * register-tiled kernels of kernels/gemm.cl.
 *
 * On PoCL's CPU device CLBlast runs untuned parameters (it takes PoCL for an AMD GPU),
 * sends small products through copy kernels, and takes 10-70 s to compile a routine
 * cold. kernels/gemm.cl measured 3-5x faster at MiniCNN's linear shapes (bench/README.md)
 * and compiles in about a second, so CPU devices use it; GPUs keep CLBlast, whose
 * database knows them. CLTRAIN_GEMM=clblast or =own forces one side.
 *
 * CLBlast keeps its compiled kernels in memory only; PoCL's own cache (~/.cache/pocl)
 * makes the second process fast. Before a context's first call, lib/core/tune.c passes
 * CLBlast the parameters cltrain chose for the device (cltrain/tune.h). */
#include <clblast_c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static ct_status check_operand(const char *name, const ct_tensor *t, bool trans, size_t rows,
                               size_t cols, size_t ld, size_t stride, size_t batch)
{
    ct_status st = CT_SUCCESS;
    /* stored row-major: op(X) rows x cols means X is (cols x rows) when transposed */
    size_t srows = trans ? cols : rows, scols = trans ? rows : cols;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "gemm: %s is NULL", name);
    CT_REQUIRE(ld >= scols, CT_ERR_SHAPE, "gemm: ld%s=%zu is smaller than its row length %zu", name,
               ld, scols);
    size_t need = (srows - 1) * ld + scols + (batch - 1) * stride;
    CT_REQUIRE(need <= t->numel, CT_ERR_SHAPE, "gemm: %s needs %zu elements but the tensor has %zu",
               name, need, t->numel);
cleanup:
    return st;
}

static ct_status clblast_status(int s, const char *what)
{
    if (s == 0)
        return CT_SUCCESS;
    return ct_error_set((ct_status)s, __FILE__, __LINE__, "%s failed", what);
}

ct_gemm_backend_kind ct_gemm_backend(const ct_context *ctx)
{
    const char *env = getenv("CLTRAIN_GEMM");
    if (env && strcmp(env, "clblast") == 0)
        return CT_GEMM_CLBLAST;
    if (env && strcmp(env, "own") == 0)
        return CT_GEMM_OWN;
    return ctx && !ctx->info.is_gpu ? CT_GEMM_OWN : CT_GEMM_CLBLAST;
}

/* kernels/gemm.cl. B with contiguous columns (not transposed): gemm_bc with A or A^T
 * through its strides. B^T with A: gemm_dot. B^T with A^T: C^T = B A computed by gemm_bc
 * (B's rows broadcast, A's rows as vectors) and stored through C's strides transposed. */
static ct_status own_gemm(ct_context *ctx, bool ta, bool tb, size_t m, size_t n, size_t k,
                          float alpha, const ct_tensor *a, size_t lda, size_t sa,
                          const ct_tensor *b, size_t ldb, size_t sb, float beta, ct_tensor *c,
                          size_t ldc, size_t sc, size_t batch, const ct_tensor *bias, bool relu)
{
    ct_status st = CT_SUCCESS;
    cl_kernel kern = NULL;
    const size_t mt = ct_tune_value(ctx, "GEMM_MT", 8), nv = ct_tune_value(ctx, "GEMM_NV", 2);
    const size_t dm = ct_tune_value(ctx, "GEMM_DM", 4), dn = ct_tune_value(ctx, "GEMM_DN", 6);
    char opts[128];
    snprintf(opts, sizeof opts, "-DGEMM_MT=%zu -DGEMM_NV=%zu -DGEMM_DM=%zu -DGEMM_DN=%zu", mt, nv,
             dm, dn);
    size_t sizes[] = {m, n, k, lda, ldb, ldc, sa, sb, sc, a->offset, b->offset, c->offset};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        CT_REQUIRE(sizes[i] <= 0xffffffffu, CT_ERR_UNSUPPORTED,
                   "gemm: size or offset %zu exceeds the kernels' 32-bit indices", sizes[i]);
    if (tb && !ta) {
        size_t global[3] = {(n + dn - 1) / dn, (m + dm - 1) / dm, batch};
        CT_TRY(ct_kernel_get(ctx, "gemm.cl", "gemm_dot", opts, &kern));
        CT_TRY(CT_SETARGS(kern, "gemm_dot", CT_T(a), CT_T(b), CT_T(c), CT_T(bias ? bias : c),
                          CT_U32(m), CT_U32(n), CT_U32(k), CT_U32(lda), CT_U32(ldb), CT_U32(ldc),
                          CT_U32(sa), CT_U32(sb), CT_U32(sc), CT_F32(alpha), CT_F32(beta),
                          CT_U32((bias ? 1u : 0u) | (relu ? 2u : 0u))));
        CT_TRY(ct_launch(ctx, kern, "gemm", 3, global, (size_t[]){1, 1, 1}));
        goto cleanup;
    }
    /* gemm_bc's operands: X broadcast (rows i, strides sxi, sxk), Y in rows (ldy) */
    const ct_tensor *x = a, *y = b;
    size_t mi = m, nj = n, sxi = ta ? 1 : lda, sxk = ta ? lda : 1, ldy = ldb, csi = ldc, csj = 1;
    size_t sx = sa, sy = sb;
    if (tb) { /* and ta: C^T (n x m) = B (n x k) A (k x m) */
        x = b, y = a, mi = n, nj = m, sxi = ldb, sxk = 1, ldy = lda, csi = 1, csj = ldc;
        sx = sb, sy = sa;
    }
    size_t global[3] = {(mi + mt - 1) / mt, (nj + 16 * nv - 1) / (16 * nv), batch};
    CT_TRY(ct_kernel_get(ctx, "gemm.cl", "gemm_bc", opts, &kern));
    CT_TRY(CT_SETARGS(kern, "gemm_bc", CT_T(x), CT_T(y), CT_T(c), CT_U32(mi), CT_U32(nj), CT_U32(k),
                      CT_U32(sxi), CT_U32(sxk), CT_U32(ldy), CT_U32(csi), CT_U32(csj), CT_U32(sx),
                      CT_U32(sy), CT_U32(sc), CT_F32(alpha), CT_F32(beta)));
    CT_TRY(ct_launch(ctx, kern, "gemm", 3, global, (size_t[]){1, 1, 1}));
cleanup:
    return st;
}

ct_status ct_gemm_batched(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                          float alpha, const ct_tensor *a, size_t lda, size_t stride_a,
                          const ct_tensor *b, size_t ldb, size_t stride_b, float beta, ct_tensor *c,
                          size_t ldc, size_t stride_c, size_t batch)
{
    ct_status st = CT_SUCCESS;
    cl_event ev = NULL, mark = NULL;
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "gemm: NULL context");
    CT_REQUIRE(m && n && k && batch, CT_ERR_SHAPE, "gemm: m=%zu n=%zu k=%zu batch=%zu must be >= 1",
               m, n, k, batch);
    CT_TRY(check_operand("A", a, trans_a, m, k, lda, stride_a, batch));
    CT_TRY(check_operand("B", b, trans_b, k, n, ldb, stride_b, batch));
    CT_TRY(check_operand("C", c, false, m, n, ldc, stride_c, batch));
    if (ct_gemm_backend(ctx) == CT_GEMM_OWN) {
        CT_TRY(own_gemm(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b,
                        beta, c, ldc, stride_c, batch, NULL, false));
        goto cleanup;
    }
    ct_tune_clblast(ctx);
    /* CLBlast's event is its last kernel's (an indirect GEMM pads and transposes first): a
     * marker before the call makes the profiled span cover them all */
    if (ctx->flags & CT_CONTEXT_PROFILING)
        clEnqueueMarkerWithWaitList(ctx->queue, 0, NULL, &mark);
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
    ct_profile_add_span(ctx, "gemm", mark, ev);
    ev = mark = NULL;
cleanup:
    if (ev)
        clReleaseEvent(ev);
    if (mark)
        clReleaseEvent(mark);
    return st;
}

ct_status ct_gemm(ct_context *ctx, bool trans_a, bool trans_b, size_t m, size_t n, size_t k,
                  float alpha, const ct_tensor *a, size_t lda, const ct_tensor *b, size_t ldb,
                  float beta, ct_tensor *c, size_t ldc)
{
    return ct_gemm_batched(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c,
                           ldc, 0, 1);
}

ct_status ct_gemm_nt_bias_act(ct_context *ctx, size_t m, size_t n, size_t k, const ct_tensor *a,
                              const ct_tensor *b, const ct_tensor *bias, bool relu, ct_tensor *c,
                              bool *fused)
{
    ct_status st = CT_SUCCESS;
    *fused = false;
    if (ct_gemm_backend(ctx) != CT_GEMM_OWN)
        return ct_gemm(ctx, false, true, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
    CT_REQUIRE(m && n && k, CT_ERR_SHAPE, "gemm: m=%zu n=%zu k=%zu must be >= 1", m, n, k);
    CT_TRY(check_operand("A", a, false, m, k, k, 0, 1));
    CT_TRY(check_operand("B", b, true, k, n, k, 0, 1));
    CT_TRY(check_operand("C", c, false, m, n, n, 0, 1));
    CT_REQUIRE(!bias || bias->numel >= n, CT_ERR_SHAPE, "gemm: bias has %zu elements, needs %zu",
               bias ? bias->numel : 0, n);
    CT_TRY(
        own_gemm(ctx, false, true, m, n, k, 1.0f, a, k, 0, b, k, 0, 0.0f, c, n, 0, 1, bias, relu));
    *fused = true;
cleanup:
    return st;
}
