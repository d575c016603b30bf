/* GEMM, both implementations (CLBlast and kernels/gemm.cl, chosen with CLTRAIN_GEMM),
 * against a plain-C double-precision product, over awkward shapes, all transposes,
 * offsets, padded leading dimensions and strided batches. C lives inside a larger buffer
 * whose other elements are canaries that must survive untouched.
 *
 * Tolerance: each element sums k float32 products; with float32 accumulation the error
 * grows like sqrt(k) ulp of the partial sums, so atol = rtol = 2e-6 * (1 + sqrt(k))
 * (k = 129 gives ~2.5e-5 on values of order 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testutil.h"

#define CANARY 1234.5f

typedef struct gemm_case {
    size_t m, n, k, batch;
    bool ta, tb;
    size_t pad; /* extra columns in every leading dimension */
    size_t off; /* element offset of every operand inside its buffer */
    float alpha, beta;
} gemm_case;

static const char *const backends[] = {"own", "clblast"};

static void run_case_on(ct_context *ctx, gemm_case c, const char *backend)
{
    setenv("CLTRAIN_GEMM", backend, 1);
    size_t rows_a = c.ta ? c.k : c.m, cols_a = c.ta ? c.m : c.k;
    size_t rows_b = c.tb ? c.n : c.k, cols_b = c.tb ? c.k : c.n;
    size_t lda = cols_a + c.pad, ldb = cols_b + c.pad, ldc = c.n + c.pad;
    size_t sa = rows_a * lda + 3, sb = rows_b * ldb + 5, sc = c.m * ldc + 2; /* batch strides */
    size_t na = c.off + sa * c.batch, nb = c.off + sb * c.batch, nc = c.off + sc * c.batch + 7;
    float *ha = malloc(na * sizeof *ha), *hb = malloc(nb * sizeof *hb),
          *hc = malloc(nc * sizeof *hc);
    double *ref = malloc(nc * sizeof *ref);
    cr_assert(ha && hb && hc && ref);
    tu_fill_uniform(ha, na, 11 + c.m, -1, 1);
    tu_fill_uniform(hb, nb, 17 + c.n, -1, 1);
    for (size_t i = 0; i < nc; i++)
        hc[i] = CANARY;
    /* inside each C matrix: a random start value (beta != 0 must read it) */
    for (size_t b = 0; b < c.batch; b++)
        for (size_t i = 0; i < c.m; i++)
            for (size_t j = 0; j < c.n; j++)
                hc[c.off + b * sc + i * ldc + j] =
                    (float)(0.25 * sin((double)(i * 31 + j * 7 + b)));
    for (size_t i = 0; i < nc; i++)
        ref[i] = hc[i];
    for (size_t b = 0; b < c.batch; b++)
        for (size_t i = 0; i < c.m; i++)
            for (size_t j = 0; j < c.n; j++) {
                double s = 0;
                for (size_t p = 0; p < c.k; p++) {
                    double x =
                        c.ta ? ha[c.off + b * sa + p * lda + i] : ha[c.off + b * sa + i * lda + p];
                    double y =
                        c.tb ? hb[c.off + b * sb + j * ldb + p] : hb[c.off + b * sb + p * ldb + j];
                    s += x * y;
                }
                size_t at = c.off + b * sc + i * ldc + j;
                ref[at] = c.alpha * s + c.beta * ref[at];
            }

    ct_tensor *ba = tu_tensor(ctx, TU_SHAPE(na), ha), *bb = tu_tensor(ctx, TU_SHAPE(nb), hb),
              *bc = tu_tensor(ctx, TU_SHAPE(nc), hc);
    ct_tensor *va = NULL, *vb = NULL, *vc = NULL;
    TU_OK(ct_tensor_view(ba, c.off, 1, (size_t[]){na - c.off}, &va));
    TU_OK(ct_tensor_view(bb, c.off, 1, (size_t[]){nb - c.off}, &vb));
    TU_OK(ct_tensor_view(bc, c.off, 1, (size_t[]){nc - c.off}, &vc));
    if (c.batch == 1)
        TU_OK(ct_gemm(ctx, c.ta, c.tb, c.m, c.n, c.k, c.alpha, va, lda, vb, ldb, c.beta, vc, ldc));
    else
        TU_OK(ct_gemm_batched(ctx, c.ta, c.tb, c.m, c.n, c.k, c.alpha, va, lda, sa, vb, ldb, sb,
                              c.beta, vc, ldc, sc, c.batch));
    float *got = tu_download(bc);
    char what[160];
    snprintf(what, sizeof what, "gemm (%s) m=%zu n=%zu k=%zu batch=%zu ta=%d tb=%d pad=%zu off=%zu",
             backend, c.m, c.n, c.k, c.batch, c.ta, c.tb, c.pad, c.off);
    double tol = 2e-6 * (1.0 + sqrt((double)c.k));
    tu_assert_close(what, got, ref, nc, tol, tol); /* canaries compare exactly equal */
    free(got);
    ct_tensor_free(va);
    ct_tensor_free(vb);
    ct_tensor_free(vc);
    ct_tensor_free(ba);
    ct_tensor_free(bb);
    ct_tensor_free(bc);
    free(ha);
    free(hb);
    free(hc);
    free(ref);
    unsetenv("CLTRAIN_GEMM");
}

static void run_case(ct_context *ctx, gemm_case c)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        run_case_on(ctx, c, backends[i]);
}

Test(gemm, awkward_shapes_all_transposes)
{
    ct_context *ctx = tu_context();
    const size_t shapes[][3] = {{1, 1, 1},     {7, 5, 3},     {1, 129, 7},  {129, 1, 65},
                                {33, 65, 129}, {64, 128, 96}, {17, 64, 16}, {8, 32, 40}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int t = 0; t < 4; t++)
            run_case(ctx, (gemm_case){shapes[s][0], shapes[s][1], shapes[s][2], 1, t & 1, t & 2, 0,
                                      0, 1.0f, 0.0f});
    ct_context_free(ctx);
}

Test(gemm, offsets_leading_dims_alpha_beta)
{
    ct_context *ctx = tu_context();
    run_case(ctx, (gemm_case){7, 9, 13, 1, false, false, 3, 5, 0.5f, 1.0f});
    run_case(ctx, (gemm_case){7, 9, 13, 1, true, true, 1, 1, -2.0f, 0.25f});
    run_case(ctx, (gemm_case){129, 7, 33, 1, false, true, 2, 17, 1.0f, 1.0f});
    run_case(ctx, (gemm_case){16, 200, 3, 1, true, false, 0, 3, 1.0f, -1.0f});
    ct_context_free(ctx);
}

Test(gemm, strided_batches)
{
    ct_context *ctx = tu_context();
    run_case(ctx, (gemm_case){5, 6, 7, 3, false, false, 0, 0, 1.0f, 0.0f});
    run_case(ctx, (gemm_case){9, 4, 11, 4, true, false, 2, 3, 1.0f, 1.0f});
    run_case(ctx, (gemm_case){3, 17, 2, 5, false, true, 1, 7, 0.5f, 0.5f});
    ct_context_free(ctx);
}

Test(gemm, bad_arguments_are_errors)
{
    ct_context *ctx = tu_context();
    ct_tensor *a = tu_tensor(ctx, TU_SHAPE(6), NULL), *b = tu_tensor(ctx, TU_SHAPE(6), NULL),
              *c = tu_tensor(ctx, TU_SHAPE(4), NULL);
    /* 2x3 * 3x2 = 2x2 fits; a leading dimension below the row length does not */
    TU_OK(ct_gemm(ctx, false, false, 2, 2, 3, 1, a, 3, b, 2, 0, c, 2));
    cr_assert_eq(ct_gemm(ctx, false, false, 2, 2, 3, 1, a, 2, b, 2, 0, c, 2), CT_ERR_SHAPE);
    /* C too small for 3x2 */
    cr_assert_eq(ct_gemm(ctx, false, false, 3, 2, 2, 1, a, 2, b, 2, 0, c, 2), CT_ERR_SHAPE);
    cr_assert(strstr(ct_last_error(), "C needs") != NULL, "%s", ct_last_error());
    cr_assert_eq(ct_gemm(ctx, false, false, 0, 2, 2, 1, a, 2, b, 2, 0, c, 2), CT_ERR_SHAPE);
    cr_assert_eq(ct_gemm(ctx, false, false, 2, 2, 2, 1, NULL, 2, b, 2, 0, c, 2),
                 CT_ERR_INVALID_ARG);
    ct_tensor_free(a);
    ct_tensor_free(b);
    ct_tensor_free(c);
    ct_context_free(ctx);
}

/* MiniCNN's linear shapes (full register tiles of kernels/gemm.cl), and beta = 0 never
 * reads C: NaN there must not reach the result, on either implementation. */
Test(gemm, model_shapes_and_beta_zero_ignores_c)
{
    ct_context *ctx = tu_context();
    run_case(ctx, (gemm_case){64, 128, 3136, 1, false, true, 0, 0, 1.0f, 0.0f});
    run_case(ctx, (gemm_case){64, 3136, 128, 1, false, false, 0, 0, 1.0f, 0.0f});
    run_case(ctx, (gemm_case){128, 3136, 64, 1, true, false, 0, 0, 1.0f, 1.0f});
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++) {
        setenv("CLTRAIN_GEMM", backends[i], 1);
        const size_t shapes[][4] = {{9, 40, 5, 0}, {9, 40, 5, 1}, {9, 40, 5, 2}, {9, 40, 5, 3}};
        for (size_t s = 0; s < 4; s++) {
            size_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            bool ta = shapes[s][3] & 1, tb = shapes[s][3] & 2;
            float *ha = tu_rand(m * k, 11 + s, -1, 1), *hb = tu_rand(k * n, 12 + s, -1, 1);
            float *hc = tu_nans(m * n);
            ct_tensor *a = tu_tensor(ctx, TU_SHAPE(m * k), ha),
                      *b = tu_tensor(ctx, TU_SHAPE(k * n), hb);
            ct_tensor *c = tu_tensor(ctx, TU_SHAPE(m * n), hc);
            TU_OK(ct_gemm(ctx, ta, tb, m, n, k, 1.0f, a, ta ? m : k, b, tb ? k : n, 0.0f, c, n));
            float *got = tu_download(c);
            for (size_t e = 0; e < m * n; e++)
                cr_assert(isfinite(got[e]),
                          "gemm (%s) ta=%d tb=%d: C[%zu] = %g with beta 0 over NaN", backends[i],
                          ta, tb, e, (double)got[e]);
            free(got), free(ha), free(hb), free(hc);
            ct_tensor_free(a), ct_tensor_free(b), ct_tensor_free(c);
        }
    }
    unsetenv("CLTRAIN_GEMM");
    ct_context_free(ctx);
}

/* Profiling a CLBlast GEMM: one "gemm" record per call, from a marker enqueued before it to
 * its last kernel's end (CLBlast's own event is its last kernel's alone; an indirect GEMM
 * pads and transposes its operands in kernels before it); the spans lie within the
 * calls' wall time. */
Test(gemm, profiled_clblast_span)
{
    setenv("CLTRAIN_GEMM", "clblast", 1);
    ct_context *ctx = tu_context_flags(CT_CONTEXT_PROFILING);
    const size_t m = 130, n = 120, k = 300;
    float *ha = tu_rand(m * k, 1, -1, 1), *hb = tu_rand(k * n, 2, -1, 1);
    ct_tensor *a = tu_tensor(ctx, TU_SHAPE(m, k), ha), *b = tu_tensor(ctx, TU_SHAPE(k, n), hb);
    ct_tensor *c = tu_tensor(ctx, TU_SHAPE(m, n), NULL);
    TU_OK(ct_gemm(ctx, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n)); /* compiles */
    TU_OK(ct_context_finish(ctx));
    ct_profile_reset(ctx);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 2; i++)
        TU_OK(ct_gemm(ctx, true, true, m, n, k, 1.0f, a, m, b, k, 0.0f, c, n));
    TU_OK(ct_context_finish(ctx));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall_ms =
        (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
    ct_profile_entry *e = NULL;
    size_t ne = 0;
    TU_OK(ct_profile_collect(ctx, &e, &ne));
    cr_assert_eq(ne, 1, "one label, got %zu", ne);
    cr_assert_str_eq(e[0].label, "gemm");
    cr_assert_eq(e[0].launches, 2);
    /* device clocks against the host's: 1% and 0.05 ms of slack */
    cr_assert(e[0].total_ms > 0.0 && e[0].total_ms <= wall_ms * 1.01 + 0.05,
              "%g ms profiled in %g ms of wall time", e[0].total_ms, wall_ms);
    free(e);
    unsetenv("CLTRAIN_GEMM");
    ct_tensor_free(a), ct_tensor_free(b), ct_tensor_free(c);
    free(ha), free(hb);
    ct_context_free(ctx);
}
