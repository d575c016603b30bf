/* conv2d on the device against the double-precision reference (lib/ref/conv_ref.c):
 * forward with and without bias and fused ReLU, and backward (dx overwritten, dw and db
 * accumulated onto non-zero starting values), over awkward geometries: odd and
 * non-square sizes, strides 1..4, padding larger than the kernel, dilation, groups and
 * depthwise, 1x1, K not a multiple of the channel tile, rows longer than one pixel run,
 * batch 1 and more, with channel counts that select either direct kernel (conv_direct for
 * few output channels, conv_kv when they fill its vectors). Every tensor is a view at an
 * odd offset inside a buffer of canaries.
 *
 * Tolerance: inputs are uniform in [-1, 1], so an output sums L = C/groups*R*S products
 * of magnitude <= 1 and is itself of order sqrt(L)/3; float32 accumulation adds a
 * rounding error of about L * 2^-24 / 3 (a random walk of L steps of ulp(sqrt(L))).
 * atol = rtol = 1e-5 * sqrt(L) leaves a margin of ~30x over that (6e-6 for L = 288),
 * while a wrong tap, channel, offset or stride moves values by O(0.1).
 * Backward-data sums K/groups*R*S terms and backward-weight N*P*Q terms; the same rule
 * is applied with that L. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "testutil.h"

typedef struct conv_case {
    size_t n, c, h, w, k, r, s;
    size_t sh, sw, ph, pw, dh, dw, g;
    bool bias, relu;
} conv_case;

static const conv_case cases[] = {
    /* n  c   h   w   k  r  s  sh sw ph pw dh dw g  bias   relu */
    {2, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},  /* MiniCNN conv1, small K */
    {2, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true}, /* MiniCNN conv2, small */
    {3, 5, 7, 9, 6, 3, 3, 2, 1, 1, 0, 1, 1, 1, true, false},   /* stride 2x1, pad 1x0 */
    {2, 4, 11, 10, 5, 3, 3, 1, 1, 2, 1, 2, 3, 1, false, true}, /* dilation 2x3 */
    {2, 6, 8, 9, 9, 2, 3, 2, 2, 1, 1, 1, 1, 3, true, false},   /* groups 3, stride 2 */
    {1, 8, 9, 7, 8, 3, 3, 1, 1, 1, 1, 1, 1, 8, true, true},    /* depthwise */
    {2, 4, 10, 9, 8, 3, 3, 1, 2, 1, 1, 1, 1, 2, false, false}, /* groups 2, stride 1x2 */
    {1, 17, 5, 19, 33, 1, 1, 1, 1, 0, 0, 1, 1, 1, true, true}, /* 1x1, Q > one run */
    {1, 3, 10, 13, 4, 4, 2, 3, 3, 2, 1, 1, 1, 1, true, false}, /* stride 3, even kernel */
    {1, 2, 9, 6, 3, 5, 1, 1, 1, 2, 0, 1, 1, 1, false, false},  /* 5x1 kernel */
    {1, 2, 3, 40, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, false},  /* 40 wide: runs + tail */
    {2, 3, 6, 7, 13, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},   /* K = 13 */
    {2, 3, 5, 6, 4, 2, 2, 1, 1, 3, 3, 1, 1, 1, true, false},   /* pad > kernel */
    {2, 3, 17, 19, 5, 3, 2, 4, 5, 1, 2, 2, 3, 1, true, false}, /* stride 4x5, dil 2x3 */
    {3, 4, 6, 5, 6, 3, 3, 2, 3, 0, 1, 1, 1, 2, false, false},  /* stride 2x3, groups */
    /* output channels that fill the channel-vector kernel (conv_kv), forward or
     * backward-data (C is the backward pass's output channels) */
    {2, 4, 9, 10, 31, 3, 3, 2, 2, 1, 1, 1, 1, 1, true, true},   /* K = 31, stride 2 */
    {1, 6, 8, 13, 64, 3, 2, 1, 3, 2, 0, 2, 1, 2, true, false},  /* groups 2, dil, stride 1x3 */
    {2, 32, 7, 9, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, false, true},  /* C = K = 32 */
    {1, 64, 5, 17, 32, 1, 1, 1, 1, 0, 0, 1, 1, 1, true, false}, /* 1x1, C = 64 */
    {2, 32, 9, 8, 32, 3, 3, 3, 2, 2, 1, 2, 1, 1, true, false},  /* C = 32, stride 3x2, dil */
    /* and the weight gradient's channel-vector kernel (conv_bwd_w_kv: >= 26 output
     * channels per group, >= 32 taps) */
    {2, 8, 7, 6, 64, 3, 3, 1, 1, 1, 1, 1, 1, 2, true, false},   /* groups 2 of 32 */
    {1, 4, 6, 5, 60, 3, 3, 1, 1, 1, 1, 1, 1, 1, false, false},  /* 2 tiles, 4 channels short */
    {2, 4, 3, 2, 32, 3, 3, 1, 1, 2, 2, 1, 1, 1, true, false},   /* pad 2 > 2 wide: all checked */
    {1, 4, 9, 11, 32, 3, 3, 2, 3, 1, 2, 2, 1, 1, false, false}, /* stride 2x3, dil 2x1, pad 1x2 */
    /* both passes on conv_dyt's padded tiles (channels fill vectors on both sides) */
    {1, 64, 6, 7, 64, 3, 3, 1, 1, 2, 2, 2, 2, 2, true, false},  /* groups 2 of 32, dilation 2 */
    {2, 30, 5, 9, 60, 3, 3, 1, 1, 1, 0, 1, 1, 1, false, false}, /* 30 in, 60 out, pad 1x0 */
    /* kernels that are not 3x3 at stride 1: the kernel size as build constants (CONV_R,
     * CONV_S) in conv_kv both ways and, with R*S = CONV_BWK_T = 9, in conv_bwd_w_kv */
    {1, 4, 7, 9, 32, 2, 3, 1, 1, 1, 1, 1, 1, 1, true, false},  /* 2x3, forward */
    {1, 32, 5, 8, 32, 5, 1, 1, 1, 2, 0, 1, 1, 1, false, true}, /* 5x1, C = K = 32 */
    {2, 4, 4, 12, 32, 1, 9, 1, 1, 0, 4, 1, 1, 1, true, false}, /* 1x9: one row pointer */
    {1, 4, 3, 1, 32, 3, 3, 1, 1, 1, 2, 1, 1, 1, true, false},  /* 1 wide, pad 2: both ends */
};
#define NCASES (sizeof cases / sizeof cases[0])

static ct_ref_conv ref_geom(const conv_case *c)
{
    return (ct_ref_conv){c->n,  c->c,  c->h,  c->w,  c->k,  c->r,  c->s,
                         c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
}

static ct_conv2d_params dev_params(const conv_case *c)
{
    return (ct_conv2d_params){c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
}

static void describe(char *buf, size_t n, const char *what, const conv_case *c)
{
    snprintf(buf, n,
             "%s: n=%zu c=%zu h=%zu w=%zu k=%zu r=%zu s=%zu stride=%zux%zu pad=%zux%zu "
             "dil=%zux%zu groups=%zu bias=%d relu=%d",
             what, c->n, c->c, c->h, c->w, c->k, c->r, c->s, c->sh, c->sw, c->ph, c->pw, c->dh,
             c->dw, c->g, c->bias, c->relu);
}

static void forward_case(ct_context *ctx, const conv_case *c, size_t idx)
{
    ct_ref_conv g = ref_geom(c);
    ct_conv2d_params p = dev_params(c);
    size_t P = ct_ref_conv_out_size(c->h, c->r, c->sh, c->ph, c->dh);
    size_t Q = ct_ref_conv_out_size(c->w, c->s, c->sw, c->pw, c->dw);
    cr_assert(P > 0 && Q > 0);
    size_t nx = c->n * c->c * c->h * c->w, nw = c->k * (c->c / c->g) * c->r * c->s;
    size_t ny = c->n * c->k * P * Q;
    float *hx = tu_rand(nx, 100 + idx, -1, 1), *hw = tu_rand(nw, 200 + idx, -1, 1);
    float *hb = tu_rand(c->k, 300 + idx, -1, 1);
    double *dx = tu_widen(hx, nx), *dw = tu_widen(hw, nw), *db = tu_widen(hb, c->k);
    double *ref = tu_zeros(ny);
    ct_ref_conv2d_forward(&g, dx, dw, c->bias ? db : NULL, c->relu, ref);

    tu_view x = tu_view_new(ctx, 3 + idx, 4, (size_t[]){c->n, c->c, c->h, c->w}, hx);
    tu_view w = tu_view_new(ctx, 1, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, hw);
    tu_view b = tu_view_new(ctx, 7, 1, (size_t[]){c->k}, hb);
    tu_view y = tu_view_new(ctx, 5 + 2 * idx, 4, (size_t[]){c->n, c->k, P, Q}, NULL);
    TU_OK(ct_conv2d_forward(ctx, x.t, w.t, c->bias ? b.t : NULL, &p, c->relu, y.t));
    char what[256];
    describe(what, sizeof what, "conv2d forward", c);
    float *got = tu_view_get(what, &y);
    double tol = 1e-5 * sqrt((double)((c->c / c->g) * c->r * c->s));
    tu_assert_close(what, got, ref, ny, tol, tol);

    free(got);
    tu_view_free(&x), tu_view_free(&w), tu_view_free(&b), tu_view_free(&y);
    free(hx), free(hw), free(hb), free(dx), free(dw), free(db), free(ref);
}

static void backward_case(ct_context *ctx, const conv_case *c, size_t idx)
{
    ct_ref_conv g = ref_geom(c);
    ct_conv2d_params p = dev_params(c);
    size_t P = ct_ref_conv_out_size(c->h, c->r, c->sh, c->ph, c->dh);
    size_t Q = ct_ref_conv_out_size(c->w, c->s, c->sw, c->pw, c->dw);
    size_t nx = c->n * c->c * c->h * c->w, nw = c->k * (c->c / c->g) * c->r * c->s;
    size_t ny = c->n * c->k * P * Q;
    float *hx = tu_rand(nx, 400 + idx, -1, 1), *hw = tu_rand(nw, 500 + idx, -1, 1);
    float *hdy = tu_rand(ny, 600 + idx, -1, 1);
    /* starting values: dx must be overwritten, dw and db accumulated onto */
    float *hdx0 = tu_rand(nx, 700 + idx, 5, 9), *hdw0 = tu_rand(nw, 800 + idx, -2, 2);
    float *hdb0 = tu_rand(c->k, 900 + idx, -2, 2);
    double *x = tu_widen(hx, nx), *w = tu_widen(hw, nw), *dy = tu_widen(hdy, ny);
    double *rdx = tu_zeros(nx), *rdw = tu_widen(hdw0, nw), *rdb = tu_widen(hdb0, c->k);
    ct_ref_conv2d_backward(&g, x, w, dy, rdx, rdw, rdb);

    tu_view sx = tu_view_new(ctx, 2, 4, (size_t[]){c->n, c->c, c->h, c->w}, hx);
    tu_view sw = tu_view_new(ctx, 3, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, hw);
    tu_view sdy = tu_view_new(ctx, 1 + idx, 4, (size_t[]){c->n, c->k, P, Q}, hdy);
    tu_view sdx = tu_view_new(ctx, 9, 4, (size_t[]){c->n, c->c, c->h, c->w}, hdx0);
    tu_view sdw = tu_view_new(ctx, 11, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, hdw0);
    tu_view sdb = tu_view_new(ctx, 13, 1, (size_t[]){c->k}, hdb0);
    TU_OK(ct_conv2d_backward(ctx, sx.t, sw.t, sdy.t, &p, sdx.t, sdw.t, sdb.t));
    char what[256];
    describe(what, sizeof what, "conv2d backward dx", c);
    float *got = tu_view_get(what, &sdx);
    double tol = 1e-5 * sqrt((double)((c->k / c->g) * c->r * c->s));
    tu_assert_close(what, got, rdx, nx, tol, tol);
    free(got);
    describe(what, sizeof what, "conv2d backward dw (+=)", c);
    got = tu_view_get(what, &sdw);
    tol = 1e-5 * sqrt((double)(c->n * P * Q));
    tu_assert_close(what, got, rdw, nw, tol, tol);
    free(got);
    describe(what, sizeof what, "conv2d backward db (+=)", c);
    got = tu_view_get(what, &sdb);
    tu_assert_close(what, got, rdb, c->k, tol, tol);
    free(got);

    tu_view_free(&sx), tu_view_free(&sw), tu_view_free(&sdy);
    tu_view_free(&sdx), tu_view_free(&sdw), tu_view_free(&sdb);
    free(hx), free(hw), free(hdy), free(hdx0), free(hdw0), free(hdb0);
    free(x), free(w), free(dy), free(rdx), free(rdw), free(rdb);
}

Test(conv, out_size)
{
    /* (in + 2*pad - dil*(k-1) - 1)/stride + 1, checked by hand */
    cr_assert_eq(ct_conv_out_size(28, 3, 1, 1, 1), 28);
    cr_assert_eq(ct_conv_out_size(28, 3, 2, 1, 1), 14);
    cr_assert_eq(ct_conv_out_size(7, 3, 2, 0, 1), 3);
    cr_assert_eq(ct_conv_out_size(11, 3, 1, 2, 2), 11);
    cr_assert_eq(ct_conv_out_size(17, 3, 4, 1, 2), 4);
    cr_assert_eq(ct_conv_out_size(5, 2, 1, 3, 1), 10);
    cr_assert_eq(ct_conv_out_size(3, 5, 1, 0, 1), 0); /* does not fit */
    cr_assert_eq(ct_conv_out_size(3, 3, 1, 0, 2), 0);
    cr_assert_eq(ct_conv_out_size(1, 1, 7, 0, 1), 1);
}

Test(conv, forward)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        forward_case(ctx, &cases[i], i);
    ct_context_free(ctx);
}

/* Every case's backward pass against the reference, with CLTRAIN_TUNE as it is set. */
static void backward_cases(ct_context *ctx)
{
    for (size_t i = 0; i < NCASES; i++)
        backward_case(ctx, &cases[i], i);
}

Test(conv, backward)
{
    ct_context *ctx = tu_context();
    backward_cases(ctx);
    ct_context_free(ctx);
}

/* Every case's backward pass once more with the weight gradient's other kernels
 * (CONV_BWK=0: conv_bwd_w_flat, conv_bwd_w; what a GPU runs without CONV_GEMM). */
Test(conv, backward_without_kv_weight_kernel)
{
    ct_context *ctx = tu_context();
    setenv("CLTRAIN_TUNE", "-DCONV_BWK=0", 1);
    backward_cases(ctx);
    unsetenv("CLTRAIN_TUNE");
    ct_context_free(ctx);
}

/* The GPUs' weight gradient for layers of fewer than 32 taps (conv_bwd_w_wg: a work-group
 * per element of dw, CONV_BW_WG), forced here with work-groups of 16: every case's
 * backward pass against the reference, and MiniCNN's first layer at full batch. */
Test(conv, weight_gradient_by_work_groups)
{
    ct_context *ctx = tu_context();
    setenv("CLTRAIN_TUNE", "-DCONV_BW_WG=16", 1);
    backward_cases(ctx);
    const conv_case first = {64, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true};
    backward_case(ctx, &first, 50);
    unsetenv("CLTRAIN_TUNE");
    ct_context_free(ctx);
}

/* The MiniCNN shapes at full batch: the backward-weight reduction over 64*14*14 and
 * 64*28*28 terms takes the single-chunk and the chunked paths. */
Test(conv, minicnn_shapes)
{
    ct_context *ctx = tu_context();
    const conv_case big[] = {
        {64, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},
        {64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},
    };
    for (size_t i = 0; i < 2; i++) {
        forward_case(ctx, &big[i], 50 + i);
        backward_case(ctx, &big[i], 50 + i);
    }
    ct_context_free(ctx);
}

/* Optional outputs: dx, dw or db NULL compute the rest; the same call twice gives the
 * same bits (fixed reduction order). */
Test(conv, optional_and_deterministic)
{
    ct_context *ctx = tu_context();
    const conv_case c = {5, 6, 9, 11, 10, 3, 3, 1, 1, 1, 1, 1, 1, 2, true, false};
    ct_conv2d_params p = dev_params(&c);
    size_t P = ct_conv_out_size(c.h, c.r, c.sh, c.ph, c.dh);
    size_t Q = ct_conv_out_size(c.w, c.s, c.sw, c.pw, c.dw);
    size_t nx = c.n * c.c * c.h * c.w, nw = c.k * (c.c / c.g) * c.r * c.s, ny = c.n * c.k * P * Q;
    float *hx = tu_rand(nx, 1, -1, 1), *hw = tu_rand(nw, 2, -1, 1), *hdy = tu_rand(ny, 3, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(c.n, c.c, c.h, c.w), hx);
    ct_tensor *w = tu_tensor(ctx, TU_SHAPE(c.k, c.c / c.g, c.r, c.s), hw);
    ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(c.n, c.k, P, Q), hdy);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(c.n, c.c, c.h, c.w), NULL);
    ct_tensor *dw1 = NULL, *dw2 = NULL, *db = NULL;
    TU_OK(ct_tensor_zeros(ctx, 4, (size_t[]){c.k, c.c / c.g, c.r, c.s}, &dw1));
    TU_OK(ct_tensor_zeros(ctx, 4, (size_t[]){c.k, c.c / c.g, c.r, c.s}, &dw2));
    TU_OK(ct_tensor_zeros(ctx, 1, (size_t[]){c.k}, &db));
    TU_OK(ct_conv2d_backward(ctx, x, w, dy, &p, NULL, dw1, NULL));
    TU_OK(ct_conv2d_backward(ctx, x, w, dy, &p, dx, dw2, db));
    float *a = tu_download(dw1), *b = tu_download(dw2);
    cr_assert(memcmp(a, b, nw * sizeof *a) == 0, "dw differs between two identical calls");
    free(a), free(b);
    TU_OK(ct_conv2d_backward(ctx, x, w, dy, &p, dx, NULL, NULL));

    ct_tensor_free(x), ct_tensor_free(w), ct_tensor_free(dy), ct_tensor_free(dx);
    ct_tensor_free(dw1), ct_tensor_free(dw2), ct_tensor_free(db);
    free(hx), free(hw), free(hdy);
    ct_context_free(ctx);
}

Test(conv, shape_errors)
{
    ct_context *ctx = tu_context();
    ct_conv2d_params p = {1, 1, 1, 1, 1, 1, 1};
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(2, 4, 8, 8), NULL);
    ct_tensor *w = tu_tensor(ctx, TU_SHAPE(6, 4, 3, 3), NULL);
    ct_tensor *wg = tu_tensor(ctx, TU_SHAPE(6, 3, 3, 3), NULL);
    ct_tensor *b = tu_tensor(ctx, TU_SHAPE(5), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(2, 6, 8, 8), NULL);
    ct_tensor *ybad = tu_tensor(ctx, TU_SHAPE(2, 6, 8, 7), NULL);
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, NULL, &p, false, ybad), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, b, &p, false, y), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_forward(ctx, x, wg, NULL, &p, false, y), CT_ERR_SHAPE);
    ct_conv2d_params p2 = {1, 1, 1, 1, 1, 1, 2}; /* C/groups = 2, w says 4 */
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, NULL, &p2, false, y), CT_ERR_SHAPE);
    ct_conv2d_params p3 = {1, 1, 1, 1, 1, 1, 4}; /* 4 does not divide K = 6 */
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, NULL, &p3, false, y), CT_ERR_SHAPE);
    ct_conv2d_params p0 = {0, 1, 1, 1, 1, 1, 1};
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, NULL, &p0, false, y), CT_ERR_INVALID_ARG);
    ct_conv2d_params pbig = {1, 1, 0, 0, 5, 5, 1}; /* dilated kernel spans 11 > 8 */
    cr_assert_eq(ct_conv2d_forward(ctx, x, w, NULL, &pbig, false, y), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_backward(ctx, x, w, ybad, &p, NULL, w, NULL), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_backward(ctx, x, w, y, &p, y, w, NULL), CT_ERR_SHAPE);
    ct_error_clear();
    ct_tensor_free(x), ct_tensor_free(w), ct_tensor_free(wg), ct_tensor_free(b);
    ct_tensor_free(y), ct_tensor_free(ybad);
    ct_context_free(ctx);
}

/* The passes over the batch in slices (CONV_SLICE KiB of padded copies per slice, forced
 * down here to 1, 4 and 64 KiB; a slice may always hold as much as the layer's input, 5.8
 * KiB here: the forward passes run in slices of 2 and 3 images, the backward passes in
 * slices of 1 image with dx at 1 and 4 KiB, of 2 without, and of 2 with dx at 64 KiB, so
 * the weight gradient's partial sums (2 chunks) carry over from slice to slice and the
 * last slice is short) give what one pass over the whole batch gives: y, its argmax bytes
 * and dx exactly (each image's are its own), dw and db up to the order of their sums.
 * Dense and fused-pool gradients, with and without dx. The same for db summed by
 * work-groups (CONV_BB_WG=64, the GPUs' conv_bwd_b_wg) instead of one work-item per
 * channel. */
Test(conv, passes_in_batch_slices)
{
    ct_context *ctx = tu_context();
    const size_t n = 5, c = 3, h = 9, w = 11, k = 32;
    ct_conv2d_params p = {1, 1, 1, 1, 1, 1, 1};
    float *hx = tu_rand(n * c * h * w, 71, -1, 1), *hw = tu_rand(k * c * 9, 72, -1, 1);
    float *hdy = tu_rand(n * k * h * w, 73, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(n, c, h, w), hx);
    ct_tensor *wt = tu_tensor(ctx, TU_SHAPE(k, c, 3, 3), hw);
    ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(n, k, h, w), hdy);
    ct_tensor *gp = tu_tensor(ctx, TU_SHAPE(n, k, h / 2, w / 2), hdy);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(n, k, h / 2, w / 2), NULL);
    ct_tensor *idx = tu_tensor(ctx, TU_SHAPE((n * k * (h / 2) * (w / 2) + 3) / 4), NULL);
    TU_OK(ct_conv2d_pool_forward(ctx, x, wt, NULL, &p, true, y, idx));
    {
        /* the forward passes, fused pool and plain, in slices */
        ct_tensor *y1 = tu_tensor(ctx, TU_SHAPE(n, k, h / 2, w / 2), NULL);
        ct_tensor *idx1 = tu_tensor(ctx, TU_SHAPE((n * k * (h / 2) * (w / 2) + 3) / 4), NULL);
        ct_tensor *yf = tu_tensor(ctx, TU_SHAPE(n, k, h, w), NULL);
        ct_tensor *yf1 = tu_tensor(ctx, TU_SHAPE(n, k, h, w), NULL);
        TU_OK(ct_conv2d_forward(ctx, x, wt, NULL, &p, true, yf));
        setenv("CLTRAIN_TUNE", "-DCONV_SLICE=1", 1);
        TU_OK(ct_conv2d_pool_forward(ctx, x, wt, NULL, &p, true, y1, idx1));
        TU_OK(ct_conv2d_forward(ctx, x, wt, NULL, &p, true, yf1));
        unsetenv("CLTRAIN_TUNE");
        ct_tensor *pairs[3][2] = {{y, y1}, {idx, idx1}, {yf, yf1}};
        const char *names[3] = {"sliced pooled y", "sliced argmax bytes", "sliced y"};
        for (int i = 0; i < 3; i++) {
            float *a = tu_download(pairs[i][0]), *b = tu_download(pairs[i][1]);
            size_t bytes = ct_tensor_numel(pairs[i][0]) * sizeof(float);
            if (pairs[i][0] == idx) /* the bytes past the last argmax are not written */
                bytes = n * k * (h / 2) * (w / 2);
            cr_assert(memcmp(a, b, bytes) == 0, "%s differs from one pass", names[i]);
            free(a), free(b);
        }
        ct_tensor_free(y1), ct_tensor_free(idx1), ct_tensor_free(yf), ct_tensor_free(yf1);
    }
    for (int pooled = 0; pooled < 2; pooled++) {
        for (int with_dx = 0; with_dx < 2; with_dx++) {
            static const char *variant[] = {NULL, "-DCONV_SLICE=1", "-DCONV_SLICE=4",
                                            "-DCONV_SLICE=64", "-DCONV_BB_WG=64"};
            enum { NV = sizeof variant / sizeof variant[0] };
            float *got[NV][3];
            for (int sliced = 0; sliced < NV; sliced++) {
                if (variant[sliced])
                    setenv("CLTRAIN_TUNE", variant[sliced], 1);
                ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(n, c, h, w), NULL), *dw = NULL, *db = NULL;
                TU_OK(ct_tensor_zeros(ctx, 4, (size_t[]){k, c, 3, 3}, &dw));
                TU_OK(ct_tensor_zeros(ctx, 1, (size_t[]){k}, &db));
                if (pooled)
                    TU_OK(ct_conv2d_pool_backward(ctx, x, wt, gp, y, idx, &p, true,
                                                  with_dx ? dx : NULL, dw, db));
                else
                    TU_OK(ct_conv2d_backward(ctx, x, wt, dy, &p, with_dx ? dx : NULL, dw, db));
                unsetenv("CLTRAIN_TUNE");
                got[sliced][0] = with_dx ? tu_download(dx) : NULL;
                got[sliced][1] = tu_download(dw);
                got[sliced][2] = tu_download(db);
                ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
            }
            char what[96];
            /* dw, db: sums of n*h*w terms in another order; 1e-5 * sqrt(terms) as above */
            double tol = 1e-5 * sqrt((double)(n * h * w));
            for (int v = 1; v < NV - 1; v++) {
                if (with_dx) {
                    snprintf(what, sizeof what, "sliced dx (%s, pooled=%d)", variant[v], pooled);
                    tu_assert_close_f(what, got[v][0], got[0][0], n * c * h * w, 0.0, 0.0);
                }
                snprintf(what, sizeof what, "sliced dw (%s, pooled=%d dx=%d)", variant[v], pooled,
                         with_dx);
                tu_assert_close_f(what, got[v][1], got[0][1], k * c * 9, tol, tol);
                snprintf(what, sizeof what, "sliced db (%s, pooled=%d dx=%d)", variant[v], pooled,
                         with_dx);
                tu_assert_close_f(what, got[v][2], got[0][2], k, tol, tol);
            }
            snprintf(what, sizeof what, "work-group db (pooled=%d dx=%d)", pooled, with_dx);
            tu_assert_close_f(what, got[NV - 1][2], got[0][2], k, tol, tol);
            for (int s = 0; s < NV; s++)
                for (int j = 0; j < 3; j++)
                    free(got[s][j]);
        }
    }
    ct_tensor_free(x), ct_tensor_free(wt), ct_tensor_free(dy), ct_tensor_free(gp);
    ct_tensor_free(y), ct_tensor_free(idx);
    free(hx), free(hw), free(hdy);
    ct_context_free(ctx);
}

/* The passes as im2col + GEMM (CONV_GEMM, the GPUs' default), forced here with 1 MiB
 * chunks: every case, forward and backward, against the double-precision reference
 * (ungrouped layers take it; the MiniCNN conv2 shape runs in chunks of a few images); the
 * switch a model reads to keep its pools apart; and the weight gradient alone as a GEMM
 * under a fused pool, with and without dx, against the default path. */
Test(conv, passes_as_gemm)
{
    ct_context *ctx = tu_context();
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=7 -DCONV_GEMM_MB=1", 1);
    for (size_t i = 0; i < NCASES; i++) {
        forward_case(ctx, &cases[i], i);
        backward_case(ctx, &cases[i], i);
    }
    const conv_case big = {64, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true};
    forward_case(ctx, &big, 51);
    backward_case(ctx, &big, 51);
    ct_conv2d_params p = {1, 1, 1, 1, 1, 1, 1};
    const size_t in[3] = {32, 14, 14};
    cr_assert(ct_conv2d_forward_as_gemm(ctx, in, 64, 3, 3, &p),
              "CONV_GEMM=7: the forward pass as a GEMM");
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &p), "the fused kernel stays available");
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=5", 1);
    cr_assert_not(ct_conv2d_forward_as_gemm(ctx, in, 64, 3, 3, &p),
                  "CONV_GEMM=5: the forward pass's kernels");
    unsetenv("CLTRAIN_TUNE");

    const size_t n = 3, c = 5, h = 10, w = 12, k = 32;
    float *hx = tu_rand(n * c * h * w, 81, -1, 1), *hw = tu_rand(k * c * 9, 82, -1, 1);
    float *hg = tu_rand(n * k * (h / 2) * (w / 2), 83, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(n, c, h, w), hx);
    ct_tensor *wt = tu_tensor(ctx, TU_SHAPE(k, c, 3, 3), hw);
    ct_tensor *gp = tu_tensor(ctx, TU_SHAPE(n, k, h / 2, w / 2), hg);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(n, k, h / 2, w / 2), NULL);
    ct_tensor *idx = tu_tensor(ctx, TU_SHAPE((n * k * (h / 2) * (w / 2) + 3) / 4), NULL);
    TU_OK(ct_conv2d_pool_forward(ctx, x, wt, NULL, &p, true, y, idx));
    for (int with_dx = 0; with_dx < 2; with_dx++) {
        float *got[2];
        for (int as_gemm = 0; as_gemm < 2; as_gemm++) {
            setenv("CLTRAIN_TUNE", as_gemm ? "-DCONV_GEMM=1 -DCONV_GEMM_MB=1" : "-DCONV_GEMM=0", 1);
            ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(n, c, h, w), NULL), *dw = NULL;
            TU_OK(ct_tensor_zeros(ctx, 4, (size_t[]){k, c, 3, 3}, &dw));
            TU_OK(ct_conv2d_pool_backward(ctx, x, wt, gp, y, idx, &p, true, with_dx ? dx : NULL, dw,
                                          NULL));
            unsetenv("CLTRAIN_TUNE");
            got[as_gemm] = tu_download(dw);
            ct_tensor_free(dx), ct_tensor_free(dw);
        }
        /* sums of n*h*w terms in another order; 1e-5 * sqrt(terms) as above */
        double tol = 1e-5 * sqrt((double)(n * h * w));
        char what[64];
        snprintf(what, sizeof what, "pooled dw as GEMM (dx=%d)", with_dx);
        tu_assert_close_f(what, got[1], got[0], k * c * 9, tol, tol);
        free(got[0]), free(got[1]);
    }
    ct_tensor_free(x), ct_tensor_free(wt), ct_tensor_free(gp), ct_tensor_free(y);
    ct_tensor_free(idx);
    free(hx), free(hw), free(hg);
    ct_context_free(ctx);
}
