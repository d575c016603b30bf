/* tests/oclgrind/test_tiny.c — every kernel of the library at tiny shapes, each result
 * checked against lib/ref (double precision) or a few lines of host arithmetic.
 *
 * Written for .ci/oclgrind, which runs this suite under Oclgrind's API, data-race and
 * uninitialized-value checkers, where a kernel costs ~1e5 times its PoCL time: every
 * shape is a few elements per dimension, chosen to reach each code path of a kernel once
 * (a full vector chunk AND a partial one, each branch of a stride/padding/dilation/group
 * choice, the one-launch and the two-launch reductions). It is an ordinary suite
 * otherwise (~2 s on PoCL); the exhaustive sweeps live in tests/ops and tests/grad.
 *
 * What the Oclgrind run can see depends on how the buffers are made:
 *   - inputs are views at odd offsets inside buffers that the host wrote WHOLE (odd
 *     offsets exercise unaligned vector loads and the x_off arguments);
 *   - outputs are fresh tensors the host never wrote, so a kernel that reads an output
 *     (or any of its own scratch) before writing it is reported as reading an
 *     uninitialized value; accumulated gradients (dw, db, dgamma, dbeta: +=) start from
 *     host-written values, as their contract requires.
 * Tolerances are stated where they are used; every reference is independent of the
 * device code (lib/ref, or the formula written out here). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/cltrain.h"
#include "cltrain/trainer.h"
#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "ref/elem_ref.h"
#include "ref/loss_ref.h"
#include "ref/optim_ref.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------------------- */

#define CANARY 4242.0f

/* An input: `shape` at element `off` of a buffer written whole by the host (canaries
 * around the data), so its shadow is fully initialized under Oclgrind. */
typedef struct tt_in {
    ct_tensor *base, *t;
} tt_in;

static tt_in tt_input(ct_context *ctx, size_t ndim, const size_t *shape, size_t off,
                      const float *host)
{
    tt_in v = {NULL, NULL};
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++)
        n *= shape[i];
    size_t total = off + n + 3;
    float *img = malloc(total * sizeof *img);
    cr_assert(img != NULL);
    for (size_t i = 0; i < total; i++)
        img[i] = i >= off && i < off + n ? host[i - off] : CANARY;
    TU_OK(ct_tensor_create(ctx, 1, &total, &v.base));
    TU_OK(ct_tensor_upload(v.base, img, total));
    TU_OK(ct_tensor_view(v.base, off, ndim, shape, &v.t));
    free(img);
    return v;
}
#define TT_IN(ctx, off, host, ...)                                                                 \
    tt_input((ctx), sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__},     \
             (off), (host))

static void tt_in_free(tt_in *v)
{
    ct_tensor_free(v->t);
    ct_tensor_free(v->base);
}

/* A fresh output the host never writes. */
static ct_tensor *tt_out(ct_context *ctx, size_t ndim, const size_t *shape)
{
    ct_tensor *t = NULL;
    TU_OK(ct_tensor_create(ctx, ndim, shape, &t));
    return t;
}
#define TT_OUT(ctx, ...)                                                                           \
    tt_out((ctx), sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), (size_t[]){__VA_ARGS__})

static float *tt_rand(size_t n, uint64_t seed, double lo, double hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

static double *tt_widen(const float *f, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    cr_assert(d != NULL);
    for (size_t i = 0; i < n; i++)
        d[i] = f[i];
    return d;
}

static double *tt_dalloc(size_t n)
{
    double *d = calloc(n ? n : 1, sizeof *d);
    cr_assert(d != NULL);
    return d;
}

/* Downloads t and compares it with ref. */
static void tt_check(const char *what, const ct_tensor *t, const double *ref, double atol,
                     double rtol)
{
    float *h = tu_download(t);
    tu_assert_close(what, h, ref, ct_tensor_numel(t), atol, rtol);
    free(h);
}

/* ---- the stage's self-check --------------------------------------------------------- */

/* A ReLU over a tensor nobody wrote. On a real device it computes garbage and nothing is
 * checked; .ci/oclgrind runs it first and fails unless Oclgrind reports the uninitialized
 * read, which proves that the checkers, the log and the shim are in place (a stage that
 * silently ran on another device, or lost its log, would otherwise pass). */
Test(tiny, canary_uninitialized_read)
{
    ct_context *ctx = tu_context();
    ct_tensor *x = TT_OUT(ctx, 9), *y = TT_OUT(ctx, 9);
    TU_OK(ct_act_forward(ctx, CT_ACT_RELU, 0.0f, x, y));
    float *h = tu_download(y);
    free(h);
    ct_tensor_free(x), ct_tensor_free(y);
    ct_context_free(ctx);
}

/* ---- tensor.cl, batch.cl ---------------------------------------------------------- */

Test(tiny, fill_and_zeros)
{
    ct_context *ctx = tu_context();
    /* 1, 4 and 9 elements: no full chunk, exactly one, two and a partial one */
    const size_t sizes[] = {1, 4, 9};
    for (size_t i = 0; i < 3; i++) {
        ct_tensor *t = TT_OUT(ctx, sizes[i]), *z = NULL;
        TU_OK(ct_tensor_fill(t, -2.5f));
        TU_OK(ct_tensor_zeros(ctx, 1, &sizes[i], &z));
        double want[9], zero[9] = {0};
        for (size_t j = 0; j < 9; j++)
            want[j] = -2.5;
        tt_check("fill", t, want, 0.0, 0.0);
        tt_check("zeros", z, zero, 0.0, 0.0);
        ct_tensor_free(t);
        ct_tensor_free(z);
    }
    /* a view at an odd offset: only its elements change */
    float host[7] = {1, 2, 3, 4, 5, 6, 7};
    tt_in v = TT_IN(ctx, 3, host, 7);
    ct_tensor *inner = NULL;
    TU_OK(ct_tensor_view(v.t, 2, 1, (size_t[]){3}, &inner)); /* offset within the view */
    TU_OK(ct_tensor_fill(inner, 0.5f));
    double want[7] = {1, 2, 0.5, 0.5, 0.5, 6, 7};
    tt_check("fill of a view", v.t, want, 0.0, 0.0);
    ct_tensor_free(inner);
    tt_in_free(&v);
    ct_context_free(ctx);
}

#define TT_IMG_H 3
#define TT_IMG_W 4

/* 5 two-channel 3x4 images with distinct pixels, labels 0..2. */
static ct_dataset *tt_dataset(void)
{
    uint8_t img[5 * 2 * TT_IMG_H * TT_IMG_W], lab[5];
    for (size_t i = 0; i < sizeof img; i++)
        img[i] = (uint8_t)(i * 37 % 251);
    for (size_t i = 0; i < 5; i++)
        lab[i] = (uint8_t)(i % 3);
    ct_dataset *ds = NULL;
    TU_OK(ct_dataset_create("tiny", 5, 2, TT_IMG_H, TT_IMG_W, 3, img, lab, NULL, &ds));
    return ds;
}

/* Batch gathering: without augmentation every value is exactly (p/255 - mean)/std in
 * float (the same float operations as torchvision; rtol 1e-6 leaves room for a
 * contracted multiply-add only). With crop and flip every output row must be SOME
 * shift/flip of the source image's row (zero padding included), the label untouched. */
Test(tiny, batch_gather)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = tt_dataset();
    const uint8_t *pix = ct_dataset_images(ds), *lab = ct_dataset_labels(ds);
    const float mean[2] = {0.25f, 0.5f}, stdv[2] = {0.5f, 0.25f};
    const size_t plane = TT_IMG_H * TT_IMG_W;
    for (int aug = 0; aug < 2; aug++) {
        ct_loader_options o = {0};
        o.batch_size = 2;
        o.shuffle = true;
        o.seed = 77;
        o.normalize = true;
        o.mean = mean;
        o.std = stdv;
        o.crop_pad = aug ? 1 : 0;
        o.hflip = aug;
        ct_loader *l = NULL;
        TU_OK(ct_loader_create(ctx, ds, &o, &l));
        TU_OK(ct_loader_start_epoch(l, 1));
        size_t *order = malloc(5 * sizeof *order);
        cr_assert(order != NULL);
        ct_shuffle_permutation(77, 1, 5, order);
        size_t seen = 0;
        for (size_t b = 0; b < ct_loader_batch_count(l); b++) {
            ct_tensor *x = NULL, *y = NULL;
            TU_OK(ct_loader_batch(l, b, &x, &y));
            size_t n = ct_tensor_dim(x, 0);
            float *hx = tu_download(x), *hy = tu_download(y);
            for (size_t r = 0; r < n; r++, seen++) {
                size_t s = order[seen];
                cr_assert_eq(hy[r], (float)lab[s], "label of batch %zu row %zu", b, r);
                for (size_t c = 0; c < 2; c++)
                    for (size_t h = 0; h < TT_IMG_H; h++) {
                        const float *got = hx + ((r * 2 + c) * TT_IMG_H + h) * TT_IMG_W;
                        int any = 0;
                        for (int dy = -aug; dy <= aug && !any; dy++)
                            for (int dx = -aug; dx <= aug && !any; dx++)
                                for (int fl = 0; fl <= aug && !any; fl++) {
                                    int ok = 1;
                                    for (int w = 0; w < TT_IMG_W && ok; w++) {
                                        int sh = (int)h + dy;
                                        int sw = (fl ? TT_IMG_W - 1 - w : w) + dx;
                                        float v = 0.0f;
                                        if (sh >= 0 && sh < TT_IMG_H && sw >= 0 && sw < TT_IMG_W)
                                            v = (float)pix[s * 2 * plane + c * plane +
                                                           (size_t)sh * TT_IMG_W + (size_t)sw] /
                                                255.0f;
                                        float want = (v - mean[c]) / stdv[c];
                                        ok = fabsf(got[w] - want) <= 1e-6f * fabsf(want) + 1e-7f;
                                    }
                                    any = ok;
                                }
                        cr_assert(any,
                                  "aug %d batch %zu row %zu ch %zu line %zu matches no "
                                  "crop/flip of sample %zu",
                                  aug, b, r, c, h, s);
                    }
            }
            free(hx);
            free(hy);
        }
        cr_assert_eq(seen, 5u);
        free(order);
        ct_loader_free(l);
    }
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

/* ---- conv.cl ---------------------------------------------------------------------- */

typedef struct tt_conv {
    const char *name;
    size_t n, c, h, w, k, r, s, sh, sw, ph, pw, dh, dw, g;
    bool bias, relu;
} tt_conv;

/* Each geometry reaches different kernels of lib/nn/conv2d.c: stride 1 runs the flat
 * backward-weight kernel, other strides the row-wise one; output channels per group
 * >= 26 run conv_kv (vectors over channels) instead of conv_direct, for the forward
 * (K) or the backward-data pass (C); batches of more than one image split the weight
 * gradient into chunks that conv_reduce adds. */
static const tt_conv conv_cases[] = {
    {"3x3 pad 1, bias + relu", 2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, true},
    {"one input channel, 6x6", 2, 1, 6, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, true, false},
    {"stride 2x1, pad 1x2, dilation 2x1", 1, 2, 7, 6, 3, 3, 2, 2, 1, 1, 2, 2, 1, 1, true, false},
    {"groups 2, 1x3, stride 2", 2, 4, 4, 5, 6, 1, 3, 2, 2, 0, 1, 1, 1, 2, false, false},
    {"32 output channels (conv_kv forward)", 1, 2, 3, 4, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, true,
     false},
    {"32 input channels (conv_kv backward-data)", 2, 32, 3, 3, 2, 3, 3, 1, 1, 1, 1, 1, 1, 1, true,
     false},
    {"32 output channels, 36 taps, stride 2 (conv_dyt, conv_bwd_w_kv)", 2, 4, 5, 4, 32, 3, 3, 2, 1,
     1, 1, 1, 1, 1, true, false},
    {"1 wide, pad 2 (conv_bwd_w_kv: every pixel checks both ends)", 1, 4, 3, 1, 32, 3, 3, 1, 1, 1,
     2, 1, 1, 1, true, false},
};

/* Tolerances: every output is a float sum of at most C/g*R*S (forward), K/g*R*S (dx) or
 * N*P*Q (dw, db) <= 288 products of values in [-1, 1]; float32 accumulation of m such
 * terms errs by well under m * 2^-24 * max|partial sum| ~ 288 * 6e-8 * 20 ~ 3e-4 in the
 * worst case and ~1e-6 typically, so atol 1e-4 + rtol 1e-4; one wrong tap or channel
 * moves an output by ~0.1. */
#define CONV_ATOL 1e-4
#define CONV_RTOL 1e-4

/* Forward, and backward into dx (and dw, db += when `weights`), of one case. */
static void tt_conv_case(ct_context *ctx, const tt_conv *c, uint64_t seed, bool weights)
{
    ct_ref_conv g = {c->n,  c->c,  c->h,  c->w,  c->k,  c->r,  c->s,
                     c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
    ct_conv2d_params p = {c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
    size_t P = ct_ref_conv_out_size(c->h, c->r, c->sh, c->ph, c->dh);
    size_t Q = ct_ref_conv_out_size(c->w, c->s, c->sw, c->pw, c->dw);
    cr_assert(P > 0 && Q > 0);
    size_t nx = c->n * c->c * c->h * c->w, nw = c->k * (c->c / c->g) * c->r * c->s;
    size_t ny = c->n * c->k * P * Q;
    float *x = tt_rand(nx, seed, -1, 1), *w = tt_rand(nw, seed + 1, -1, 1);
    float *b = tt_rand(c->k, seed + 2, -1, 1), *dy = tt_rand(ny, seed + 3, -1, 1);
    float *dw0 = tt_rand(nw, seed + 4, -1, 1), *db0 = tt_rand(c->k, seed + 5, -1, 1);
    double *xd = tt_widen(x, nx), *wd = tt_widen(w, nw), *bd = tt_widen(b, c->k);
    double *dyd = tt_widen(dy, ny), *yr = tt_dalloc(ny), *dxr = tt_dalloc(nx);
    double *dwr = tt_widen(dw0, nw), *dbr = tt_widen(db0, c->k);
    ct_ref_conv2d_forward(&g, xd, wd, c->bias ? bd : NULL, c->relu, yr);
    ct_ref_conv2d_backward(&g, xd, wd, dyd, dxr, dwr, c->bias ? dbr : NULL);

    tt_in tx = TT_IN(ctx, 1, x, c->n, c->c, c->h, c->w);
    tt_in tw = TT_IN(ctx, 3, w, c->k, c->c / c->g, c->r, c->s);
    tt_in tb = TT_IN(ctx, 5, b, c->k);
    tt_in tdy = TT_IN(ctx, 7, dy, c->n, c->k, P, Q);
    ct_tensor *y = TT_OUT(ctx, c->n, c->k, P, Q), *dx = TT_OUT(ctx, c->n, c->c, c->h, c->w);
    ct_tensor *dw = tu_tensor(ctx, TU_SHAPE(c->k, c->c / c->g, c->r, c->s), dw0);
    ct_tensor *db = tu_tensor(ctx, TU_SHAPE(c->k), db0);
    TU_OK(ct_conv2d_forward(ctx, tx.t, tw.t, c->bias ? tb.t : NULL, &p, c->relu, y));
    TU_OK(ct_conv2d_backward(ctx, tx.t, tw.t, tdy.t, &p, dx, weights ? dw : NULL,
                             weights && c->bias ? db : NULL));
    char what[160];
    snprintf(what, sizeof what, "conv %s: y", c->name);
    tt_check(what, y, yr, CONV_ATOL, CONV_RTOL);
    snprintf(what, sizeof what, "conv %s: dx", c->name);
    tt_check(what, dx, dxr, CONV_ATOL, CONV_RTOL);
    if (weights) {
        snprintf(what, sizeof what, "conv %s: dw", c->name);
        tt_check(what, dw, dwr, CONV_ATOL, CONV_RTOL);
        snprintf(what, sizeof what, "conv %s: db", c->name);
        tt_check(what, db, dbr, CONV_ATOL, CONV_RTOL);
    }
    ct_tensor_free(y), ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
    tt_in_free(&tx), tt_in_free(&tw), tt_in_free(&tb), tt_in_free(&tdy);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0);
    free(xd), free(wd), free(bd), free(dyd), free(yr), free(dxr), free(dwr), free(dbr);
}

Test(tiny, conv2d_forward_backward)
{
    ct_context *ctx = tu_context();
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++)
        tt_conv_case(ctx, &conv_cases[ci], 10 + 10 * ci, true);
    ct_context_free(ctx);
}

/* The same without the weight and bias gradients and without a stride of 2 along the
 * width: the kernels that .ci/oclgrind can run under --uninitialized today (conv_pad,
 * conv_wt_fwd/bwd, conv_direct, conv_taps, conv_kv); see the stage's header. */
Test(tiny, conv2d_forward_input_grad)
{
    ct_context *ctx = tu_context();
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++)
        if (conv_cases[ci].sw != 2)
            tt_conv_case(ctx, &conv_cases[ci], 10 + 10 * ci, false);
    ct_context_free(ctx);
}

/* The GPUs' paths on this device: every pass as im2col + GEMM (conv_im2col, gemm,
 * conv_gemm_out; 1 MiB chunks), the bias gradient and the weight gradient of fewer than
 * 32 taps by work-groups (conv_bwd_b_wg, conv_bwd_w_wg), for the ungrouped cases
 * (grouped convolutions keep their kernels, but for conv_bwd_w_wg). */
Test(tiny, conv2d_as_gemm)
{
    ct_context *ctx = tu_context();
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=7 -DCONV_GEMM_MB=1 -DCONV_BB_WG=16 -DCONV_BW_WG=16", 1);
    for (size_t ci = 0; ci < sizeof conv_cases / sizeof conv_cases[0]; ci++)
        if (conv_cases[ci].g == 1)
            tt_conv_case(ctx, &conv_cases[ci], 10 + 10 * ci, true);
    unsetenv("CLTRAIN_TUNE");
    ct_context_free(ctx);
}

/* ---- conv.cl: conv + ReLU + 2x2 max pool, fused ------------------------------------- */

typedef struct tt_convpool {
    const char *name;
    size_t n, c, h, w, k, r, s, ph, pw, dh, dw;
    bool bias, relu, dx;
} tt_convpool;

/* ct_conv2d_pool_fusable wants stride 1 and K/groups filling conv_kv's 32-channel vectors
 * (K >= 26): K = 32, one group, tiny images. What each case reaches (lib/nn/conv2d.c):
 * conv_kv_pool forward (CONV_PP = 2 pooled pixels per work-item: PW = 3 leaves a partial
 * tile); backward-data through conv_unpool into the padded layout, then conv_direct (C < 26)
 * or conv_kv (C = 32); dw through conv_bwd_w_pool (C*R*S < 32 taps, the gradient unpooled
 * in registers) or conv_bwd_w_flat (>= 32 taps) on the backward-data pass's layout when it
 * fits, else on its own conv_unpool copy; db summed by conv_bwd_w_pool or conv_bwd_w_kv
 * beside dw (and conv_reduce with more than one chunk), else by conv_bwd_b, with its mask
 * (y, with ReLU) or without (no ReLU). */
static const tt_convpool convpool_cases[] = {
    /* 5x7 conv output: floor mode drops the last row and column; 18 taps, with dx */
    {"3x3 pad 1, odd 5x7 conv output, 18 taps, dx", 1, 2, 5, 7, 32, 3, 3, 1, 1, 1, 1, true, true,
     true},
    /* a first layer: no dx, so conv_bwd_w_pool alone; two images (two dw chunks) */
    {"one input channel, valid, no ReLU, dx NULL", 2, 1, 6, 6, 32, 3, 3, 0, 0, 1, 1, true, false,
     false},
    /* 17 conv columns -> 8 pooled: unpool_run's whole-vector loads (CONV_QV/2 windows) */
    {"one channel, 2x17 conv output (8 windows a row), dx", 1, 1, 4, 19, 32, 3, 3, 0, 0, 1, 1,
     false, true, true},
    /* 36 taps with dx: conv_bwd_w_kv (conv_dyt unpooling), or with CONV_BWK=0
     * conv_bwd_w_flat on conv_unpool's layout of the backward-data pass */
    {"4 channels, 3x3 pad 1, 36 taps, dx", 1, 4, 4, 6, 32, 3, 3, 1, 1, 1, 1, true, true, true},
    /* 36 taps without dx: the same, conv_bwd_w_flat on its own conv_unpool copy; dilation 2 */
    {"4 channels, 3x3 dilation 2 pad 2, dx NULL", 1, 4, 5, 5, 32, 3, 3, 2, 2, 2, 2, true, true,
     false},
    /* 32 input channels: backward-data by conv_kv; its layout too small for the flat dw */
    {"32 input channels, 1x1, no bias, dx", 1, 32, 3, 5, 32, 1, 1, 0, 0, 1, 1, false, true,
     true},
};

/* The margin that makes the pooling's choices unambiguous: the device's conv outputs are
 * within ~1e-6 of the double reference (sums of <= 36 products of values in [-1, 1]), so
 * when every raw conv output under a window is farther than this from 0 (the ReLU's cut)
 * and the window's values differ pairwise by more than this (unless the ReLU made both
 * exactly 0: such ties are exact on both sides and go to the first), the device must
 * pick the reference's argmax and apply the reference's ReLU mask. The seeds below were
 * chosen so that no window comes closer (asserted, not assumed). */
#define CONVPOOL_MARGIN 1e-4

/* Forward (pooled y, argmax bytes), and with `backward` the gradients dx (or NULL), dw +=
 * and db += (with bias) of one case, from the pooled gradient dy. */
static void tt_convpool_case(ct_context *ctx, const tt_convpool *c, uint64_t seed, bool backward)
{
    ct_ref_conv g = {c->n, c->c, c->h, c->w, c->k, c->r, c->s, 1, 1, c->ph, c->pw, c->dh, c->dw, 1};
    ct_conv2d_params p = {1, 1, c->ph, c->pw, c->dh, c->dw, 1};
    size_t P = ct_ref_conv_out_size(c->h, c->r, 1, c->ph, c->dh);
    size_t Q = ct_ref_conv_out_size(c->w, c->s, 1, c->pw, c->dw);
    cr_assert(ct_conv2d_pool_fusable(ctx, (size_t[]){c->c, c->h, c->w}, c->k, c->r, c->s, &p),
              "%s: not fusable", c->name);
    const size_t PH = P / 2, PW = Q / 2, nk = c->n * c->k;
    size_t nx = c->n * c->c * c->h * c->w, nw = c->k * c->c * c->r * c->s;
    size_t ny = nk * P * Q, npool = nk * PH * PW;
    float *x = tt_rand(nx, seed, -1, 1), *w = tt_rand(nw, seed + 1, -1, 1);
    float *b = tt_rand(c->k, seed + 2, -1, 1), *dy = tt_rand(npool, seed + 3, -1, 1);
    float *dw0 = tt_rand(nw, seed + 4, -1, 1), *db0 = tt_rand(c->k, seed + 5, -1, 1);
    double *xd = tt_widen(x, nx), *wd = tt_widen(w, nw), *bd = tt_widen(b, c->k);
    double *raw = tt_dalloc(ny), *act = tt_dalloc(ny), *yr = tt_dalloc(npool);
    double *dense = tt_dalloc(ny), *dxr = tt_dalloc(nx);
    double *dwr = tt_widen(dw0, nw), *dbr = tt_widen(db0, c->k);
    unsigned char *ir = malloc(npool);
    cr_assert(ir != NULL);

    /* references: conv (+ bias) without and with the ReLU, then 2x2/2 max pooling */
    ct_ref_conv2d_forward(&g, xd, wd, c->bias ? bd : NULL, false, raw);
    ct_ref_conv2d_forward(&g, xd, wd, c->bias ? bd : NULL, c->relu, act);
    ct_ref_pool pg = {c->n, c->k, P, Q, 2, 2, 2, 2, 0, 0, false, true};
    ct_ref_maxpool2d_forward(&pg, act, yr);
    /* argmax: each window's first maximum in scan order (pool.cl's rule, no NaN here),
     * after asserting that no choice is a near-tie */
    for (size_t pl = 0; pl < nk; pl++)
        for (size_t i = 0; i < PH; i++)
            for (size_t j = 0; j < PW; j++) {
                size_t at[4];
                double v[4];
                for (int e = 0; e < 4; e++) {
                    at[e] = (pl * P + 2 * i + e / 2) * Q + 2 * j + e % 2;
                    v[e] = act[at[e]];
                    if (c->relu)
                        cr_assert(fabs(raw[at[e]]) > CONVPOOL_MARGIN,
                                  "%s: conv output %g too close to the ReLU's cut", c->name,
                                  raw[at[e]]);
                }
                int best = 0;
                for (int e = 0; e < 4; e++) {
                    for (int f = e + 1; f < 4; f++)
                        cr_assert((v[e] == 0.0 && v[f] == 0.0) ||
                                      fabs(v[e] - v[f]) > CONVPOOL_MARGIN,
                                  "%s: near-tie %g, %g in a window", c->name, v[e], v[f]);
                    if (v[e] > v[best])
                        best = e;
                }
                const size_t o = (pl * PH + i) * PW + j;
                ir[o] = (unsigned char)best;
                cr_assert(v[best] == yr[o]);
                /* the dense conv-output gradient: dy at the argmax, cut where the ReLU was */
                if (!c->relu || yr[o] > 0.0)
                    dense[at[best]] = dy[o];
            }
    ct_ref_conv2d_backward(&g, xd, wd, dense, c->dx ? dxr : NULL, dwr, c->bias ? dbr : NULL);

    tt_in tx = TT_IN(ctx, 1, x, c->n, c->c, c->h, c->w);
    tt_in tw = TT_IN(ctx, 3, w, c->k, c->c, c->r, c->s);
    tt_in tb = TT_IN(ctx, 5, b, c->k);
    tt_in tdy = TT_IN(ctx, 7, dy, c->n, c->k, PH, PW);
    ct_tensor *y = TT_OUT(ctx, c->n, c->k, PH, PW), *dx = TT_OUT(ctx, c->n, c->c, c->h, c->w);
    /* idx: one byte per pooled element in a float tensor, a view at offset 3 of a fresh
     * buffer (the kernels' idx_off) */
    const size_t nif = (npool + 3) / 4;
    ct_tensor *ibase = TT_OUT(ctx, 3 + nif + 2), *idx = NULL;
    TU_OK(ct_tensor_view(ibase, 3, 1, &nif, &idx));
    ct_tensor *dw = tu_tensor(ctx, TU_SHAPE(c->k, c->c, c->r, c->s), dw0);
    ct_tensor *db = tu_tensor(ctx, TU_SHAPE(c->k), db0);

    TU_OK(ct_conv2d_pool_forward(ctx, tx.t, tw.t, c->bias ? tb.t : NULL, &p, c->relu, y, idx));
    char what[160];
    snprintf(what, sizeof what, "conv+pool %s: y", c->name);
    tt_check(what, y, yr, CONV_ATOL, CONV_RTOL);
    float *ih = tu_download(idx);
    const unsigned char *ib = (const unsigned char *)ih;
    for (size_t o = 0; o < npool; o++)
        cr_assert(ib[o] == ir[o], "conv+pool %s: idx[%zu] = %u, want %u", c->name, o, ib[o],
                  ir[o]);
    free(ih);
    if (backward) {
        TU_OK(ct_conv2d_pool_backward(ctx, tx.t, tw.t, tdy.t, y, idx, &p, c->relu,
                                      c->dx ? dx : NULL, dw, c->bias ? db : NULL));
        if (c->dx) {
            snprintf(what, sizeof what, "conv+pool %s: dx", c->name);
            tt_check(what, dx, dxr, CONV_ATOL, CONV_RTOL);
        }
        snprintf(what, sizeof what, "conv+pool %s: dw", c->name);
        tt_check(what, dw, dwr, CONV_ATOL, CONV_RTOL);
        snprintf(what, sizeof what, "conv+pool %s: db", c->name);
        tt_check(what, db, dbr, CONV_ATOL, CONV_RTOL);
    }
    ct_tensor_free(y), ct_tensor_free(dx), ct_tensor_free(idx), ct_tensor_free(ibase);
    ct_tensor_free(dw), ct_tensor_free(db);
    tt_in_free(&tx), tt_in_free(&tw), tt_in_free(&tb), tt_in_free(&tdy);
    free(x), free(w), free(b), free(dy), free(dw0), free(db0), free(ir);
    free(xd), free(wd), free(bd), free(raw), free(act), free(yr), free(dense), free(dxr);
    free(dwr), free(dbr);
}

/* The forward alone: conv_pad, conv_wt_fwd, conv_taps, conv_kv_pool (runs under
 * --uninitialized). Tolerances: CONV_ATOL/RTOL (pooling picks one conv output, whose
 * error is a conv sum's: <= 36 products here); idx exact. */
Test(tiny, conv2d_pool_forward)
{
    ct_context *ctx = tu_context();
    for (size_t ci = 0; ci < sizeof convpool_cases / sizeof convpool_cases[0]; ci++)
        tt_convpool_case(ctx, &convpool_cases[ci], 200 + 10 * ci, false);
    ct_context_free(ctx);
}

/* Forward and backward. The backward kernels (conv_unpool, conv_bwd_w_pool: unpool_run's
 * shuffle2 interleave; conv_bwd_w_pool, conv_bwd_w_flat, conv_bwd_b: vsum's v.hi) hit
 * Oclgrind's float16 shuffle bug, so .ci/oclgrind runs this test without --uninitialized
 * (see its no_uninit list). Tolerances: CONV_ATOL/RTOL; dx sums K*R*S <= 288 products,
 * dw and db at most 32 non-zero terms (the conv outputs under the pooling windows). */
Test(tiny, conv2d_pool_backward)
{
    ct_context *ctx = tu_context();
    for (int bwk = 1; bwk >= 0; bwk--) {
        setenv("CLTRAIN_TUNE", bwk ? "-DCONV_BWK=1" : "-DCONV_BWK=0", 1);
        for (size_t ci = 0; ci < sizeof convpool_cases / sizeof convpool_cases[0]; ci++)
            tt_convpool_case(ctx, &convpool_cases[ci], 200 + 10 * ci, true);
    }
    unsetenv("CLTRAIN_TUNE");
    ct_context_free(ctx);
}

/* ---- pool.cl ---------------------------------------------------------------------- */

typedef struct tt_pool {
    const char *name;
    bool max;
    size_t n, c, h, w, kh, kw, sh, sw, ph, pw;
    bool ceil, include_pad, relu_in;
} tt_pool;

/* 2x2/2 without padding runs the maxpool2 kernels (here below 16 columns: their scalar
 * step only; the vector step has its own test), everything else the general ones (index
 * pass + gather for the max backward). */
static const tt_pool pool_cases[] = {
    {"max 2x2/2", true, 1, 2, 4, 6, 2, 2, 2, 2, 0, 0, false, true, false},
    {"max 2x2/2 relu_in", true, 2, 1, 4, 4, 2, 2, 2, 2, 0, 0, false, true, true},
    {"max 3x3/2 pad 1 ceil", true, 1, 2, 5, 6, 3, 3, 2, 2, 1, 1, true, true, false},
    {"max 3x2/1x2 pad 1x0 relu_in", true, 2, 1, 4, 5, 3, 2, 1, 2, 1, 0, false, true, true},
    {"avg 3x3/2 pad 1 ceil include_pad", false, 1, 2, 5, 6, 3, 3, 2, 2, 1, 1, true, true, false},
    {"avg 3x3/2 pad 1 exclude_pad", false, 2, 1, 5, 4, 3, 3, 2, 2, 1, 1, false, false, false},
    {"avg 2x2/2", false, 1, 2, 4, 4, 2, 2, 2, 2, 0, 0, false, true, false},
};

/* Max pooling forward moves values without arithmetic: exact. Its backward adds the dy of
 * every window whose maximum an input is (overlapping windows: up to 4 here), and average
 * pooling is a float sum of <= 9 values in [-1, 1] and one division: atol 1e-6, rtol
 * 1e-6 (~16 ulps of the sums). */
static void tt_pool_case(ct_context *ctx, const tt_pool *c, uint64_t seed)
{
    ct_ref_pool g = {c->n,  c->c,  c->h,  c->w,  c->kh,   c->kw,
                     c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
    ct_pool2d_params p = {c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
    size_t P = ct_ref_pool_out_size(c->h, c->kh, c->sh, c->ph, c->ceil);
    size_t Q = ct_ref_pool_out_size(c->w, c->kw, c->sw, c->pw, c->ceil);
    size_t nx = c->n * c->c * c->h * c->w, ny = c->n * c->c * P * Q;
    float *x = tt_rand(nx, seed, -1, 1), *dy = tt_rand(ny, seed + 1, -1, 1);
    if (c->relu_in) /* x came out of a ReLU: zeros included */
        for (size_t i = 0; i < nx; i++)
            x[i] = x[i] < 0.0f ? 0.0f : x[i];
    double *xd = tt_widen(x, nx), *dyd = tt_widen(dy, ny);
    double *yr = tt_dalloc(ny), *dxr = tt_dalloc(nx);
    tt_in tx = TT_IN(ctx, 3, x, c->n, c->c, c->h, c->w);
    tt_in tdy = TT_IN(ctx, 1, dy, c->n, c->c, P, Q);
    ct_tensor *y = TT_OUT(ctx, c->n, c->c, P, Q), *dx = TT_OUT(ctx, c->n, c->c, c->h, c->w);
    double ytol = c->max ? 0.0 : 1e-6;
    if (c->max) {
        ct_ref_maxpool2d_forward(&g, xd, yr);
        ct_ref_maxpool2d_backward(&g, xd, dyd, c->relu_in, dxr);
        TU_OK(ct_maxpool2d_forward(ctx, tx.t, &p, y));
        TU_OK(ct_maxpool2d_backward(ctx, tx.t, y, tdy.t, &p, c->relu_in, dx));
    } else {
        ct_ref_avgpool2d_forward(&g, xd, yr);
        ct_ref_avgpool2d_backward(&g, dyd, dxr);
        TU_OK(ct_avgpool2d_forward(ctx, tx.t, &p, y));
        TU_OK(ct_avgpool2d_backward(ctx, tdy.t, &p, dx));
    }
    char what[160];
    snprintf(what, sizeof what, "%s: y", c->name);
    tt_check(what, y, yr, ytol, ytol);
    snprintf(what, sizeof what, "%s: dx", c->name);
    tt_check(what, dx, dxr, 1e-6, 1e-6);
    ct_tensor_free(y), ct_tensor_free(dx);
    tt_in_free(&tx), tt_in_free(&tdy);
    free(x), free(dy), free(xd), free(dyd), free(yr), free(dxr);
}

Test(tiny, pooling_forward_backward)
{
    ct_context *ctx = tu_context();
    for (size_t pi = 0; pi < sizeof pool_cases / sizeof pool_cases[0]; pi++)
        tt_pool_case(ctx, &pool_cases[pi], 70 + 2 * pi);

    /* global average pooling over 3x5 planes: a float sum of 15 values, one division */
    const size_t n = 2, c = 3, h = 3, w = 5;
    float *x = tt_rand(n * c * h * w, 90, -1, 1), *dy = tt_rand(n * c, 91, -1, 1);
    double *xd = tt_widen(x, n * c * h * w), *dyd = tt_widen(dy, n * c);
    double *yr = tt_dalloc(n * c), *dxr = tt_dalloc(n * c * h * w);
    ct_ref_gap_forward(n, c, h, w, xd, yr);
    ct_ref_gap_backward(n, c, h, w, dyd, dxr);
    tt_in tx = TT_IN(ctx, 5, x, n, c, h, w), tdy = TT_IN(ctx, 3, dy, n, c);
    ct_tensor *y = TT_OUT(ctx, n, c), *dx = TT_OUT(ctx, n, c, h, w);
    TU_OK(ct_gap_forward(ctx, tx.t, y));
    TU_OK(ct_gap_backward(ctx, tdy.t, dx));
    tt_check("gap y", y, yr, 1e-6, 1e-6);
    tt_check("gap dx", dx, dxr, 1e-6, 1e-6);
    ct_tensor_free(y), ct_tensor_free(dx);
    tt_in_free(&tx), tt_in_free(&tdy);
    free(x), free(dy), free(xd), free(dyd), free(yr), free(dxr);
    ct_context_free(ctx);
}

/* 2x2/2 windows over rows of >= 16 columns reach the vectorised step of maxpool2_fwd/bwd
 * (8 outputs per step, then one by one; odd H and W leave a row and a column that no
 * window covers, which the backward must zero). */
Test(tiny, maxpool_2x2_vector_path)
{
    static const tt_pool wide[] = {
        {"max 2x2/2 vector path, odd H and W", true, 1, 2, 5, 19, 2, 2, 2, 2, 0, 0, false, true,
         false},
        {"max 2x2/2 vector path, relu_in", true, 2, 1, 2, 16, 2, 2, 2, 2, 0, 0, false, true, true},
    };
    ct_context *ctx = tu_context();
    for (size_t pi = 0; pi < 2; pi++)
        tt_pool_case(ctx, &wide[pi], 95 + 2 * pi);
    ct_context_free(ctx);
}

/* ---- linear.cl (and CLBlast's GEMM) ----------------------------------------------- */

/* OUT = 11 features: one full float8 chunk of linear_bias_act / linear_bias_grad and a
 * partial one; N = 3 rows, IN = 5. Sums of <= 5 (y, dx) or 3 (dw, db) products of values
 * in [-1, 1]: atol 1e-5, rtol 1e-5 (~100 float ulps). Run with and without bias/ReLU. */
Test(tiny, linear_forward_backward)
{
    ct_context *ctx = tu_context();
    const size_t n = 3, in = 5, out = 11;
    for (int variant = 0; variant < 2; variant++) {
        const bool bias = variant == 0, relu = variant == 0;
        float *x = tt_rand(n * in, 100 + variant, -1, 1), *w = tt_rand(out * in, 101, -1, 1);
        float *b = tt_rand(out, 102, -1, 1), *dy = tt_rand(n * out, 103, -1, 1);
        float *dw0 = tt_rand(out * in, 104, -1, 1), *db0 = tt_rand(out, 105, -1, 1);
        double *yr = tt_dalloc(n * out), *dxr = tt_dalloc(n * in);
        double *dwr = tt_widen(dw0, out * in), *dbr = tt_widen(db0, out);
        ct_ref_linear_forward(x, w, bias ? b : NULL, relu, n, in, out, yr);
        ct_ref_linear_backward(x, w, dy, n, in, out, dxr, dwr, bias ? dbr : NULL);
        tt_in tx = TT_IN(ctx, 1, x, n, in), tw = TT_IN(ctx, 3, w, out, in);
        tt_in tb = TT_IN(ctx, 5, b, out), tdy = TT_IN(ctx, 7, dy, n, out);
        ct_tensor *y = TT_OUT(ctx, n, out), *dx = TT_OUT(ctx, n, in);
        ct_tensor *dw = tu_tensor(ctx, TU_SHAPE(out, in), dw0);
        ct_tensor *db = tu_tensor(ctx, TU_SHAPE(out), db0);
        TU_OK(ct_linear_forward(ctx, tx.t, tw.t, bias ? tb.t : NULL, relu, y));
        TU_OK(ct_linear_backward(ctx, tx.t, tw.t, tdy.t, dx, dw, bias ? db : NULL));
        tt_check("linear y", y, yr, 1e-5, 1e-5);
        tt_check("linear dx", dx, dxr, 1e-5, 1e-5);
        tt_check("linear dw", dw, dwr, 1e-5, 1e-5);
        tt_check("linear db", db, dbr, 1e-5, 1e-5);
        ct_tensor_free(y), ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
        tt_in_free(&tx), tt_in_free(&tw), tt_in_free(&tb), tt_in_free(&tdy);
        free(x), free(w), free(b), free(dy), free(dw0), free(db0);
        free(yr), free(dxr), free(dwr), free(dbr);
    }
    ct_context_free(ctx);
}

/* ---- gemm.cl (cltrain's own GEMM kernels) ----------------------------------------- */

typedef struct tt_gemm {
    const char *name;
    bool ta, tb;
    size_t m, n, k, lda, ldb, ldc, batch, sa, sb, sc;
    float alpha, beta;
} tt_gemm;

/* lib/core/gemm.c: B not transposed -> gemm_bc (A or A^T through its strides; rows of 8,
 * columns in tiles of 32: full tiles by vector loads, the last one element-wise); A B^T
 * -> gemm_dot (4 x 6 dot products, k in vectors of 16 and a scalar tail); A^T B^T ->
 * gemm_bc computing C^T = B A, stored through C's strides transposed. beta 0 leaves C
 * fresh (never written by the host): a read of it would be reported by Oclgrind; beta != 0
 * takes C host-written with gaps between rows and matrices, which must keep their values.
 * Leading dimensions and batch strides exceed the minimum, so the gaps are read past. */
static const tt_gemm gemm_bc_cases[] = {
    {"A B, 9x32x5 (row tile + 1, one full column tile), beta 0", false, false, 9, 32, 5, 5, 32,
     32, 1, 0, 0, 0, 1.0f, 0.0f},
    {"A B, 3x40x2 (full + partial column tile), batch 2, beta 1", false, false, 3, 40, 2, 3, 41,
     43, 2, 9, 85, 131, -0.5f, 1.0f},
    {"A^T B, 9x35x3, batch 2, beta 0.5", true, false, 9, 35, 3, 11, 37, 36, 2, 37, 113, 329,
     -0.75f, 0.5f},
    {"A^T B^T (C^T = B A), 5x9x4: C^T rows 8 + 1, partial column tile, beta 0", true, true, 5, 9,
     4, 6, 4, 9, 1, 0, 0, 0, 1.5f, 0.0f},
    {"A^T B^T, 32x3x3: C^T one full column tile, batch 2, beta -1", true, true, 32, 3, 3, 33, 5,
     4, 2, 101, 17, 130, 1.0f, -1.0f},
};
static const tt_gemm gemm_dot_cases[] = {
    {"A B^T, 5x7x19 (rows 4 + 1, columns 6 + 1, k 16 + 3), beta 0", false, true, 5, 7, 19, 19,
     19, 7, 1, 0, 0, 0, 1.0f, 0.0f},
    {"A B^T, 6x12x16 (k without tail), batch 2, beta 0.25", false, true, 6, 12, 16, 17, 18, 13, 2,
     105, 219, 80, 2.0f, 0.25f},
    {"A B^T, 3x2x5 (k tail only), batch 2, beta 0", false, true, 3, 2, 5, 5, 6, 2, 2, 15, 12, 6,
     -1.0f, 0.0f},
};

/* Elements one operand spans: `batch` matrices of rows x cols at row pitch ld, stride s. */
static size_t tt_span(size_t rows, size_t cols, size_t ld, size_t batch, size_t s)
{
    return (batch - 1) * s + (rows - 1) * ld + cols;
}

/* One product through ct_gemm_batched against the definition in double. Sums of <= 19
 * products of values in [-1, 1], scaled by |alpha| <= 2, plus beta*C: atol 1e-5, rtol
 * 1e-5 (~100 float ulps of the sums); one wrong k or row moves a value by ~0.1. */
static void tt_gemm_case(ct_context *ctx, const tt_gemm *c, uint64_t seed)
{
    const size_t ar = c->ta ? c->k : c->m, ac = c->ta ? c->m : c->k;
    const size_t br = c->tb ? c->n : c->k, bc = c->tb ? c->k : c->n;
    const size_t na = tt_span(ar, ac, c->lda, c->batch, c->sa);
    const size_t nb = tt_span(br, bc, c->ldb, c->batch, c->sb);
    const size_t nc = tt_span(c->m, c->n, c->ldc, c->batch, c->sc);
    float *a = tt_rand(na, seed, -1, 1), *b = tt_rand(nb, seed + 1, -1, 1);
    float *c0 = tt_rand(nc, seed + 2, -1, 1);
    double *ref = tt_widen(c0, nc);
    for (size_t e = 0; e < c->batch; e++)
        for (size_t i = 0; i < c->m; i++)
            for (size_t j = 0; j < c->n; j++) {
                double s = 0.0;
                for (size_t l = 0; l < c->k; l++) {
                    double av = a[e * c->sa + (c->ta ? l * c->lda + i : i * c->lda + l)];
                    double bv = b[e * c->sb + (c->tb ? j * c->ldb + l : l * c->ldb + j)];
                    s += av * bv;
                }
                double *o = &ref[e * c->sc + i * c->ldc + j];
                *o = c->alpha * s + (c->beta != 0.0f ? c->beta * *o : 0.0);
            }
    tt_in ta = TT_IN(ctx, 1, a, na), tb = TT_IN(ctx, 3, b, nb), tc0 = {NULL, NULL};
    ct_tensor *cbase = NULL, *ct = NULL;
    if (c->beta != 0.0f) {
        tc0 = TT_IN(ctx, 5, c0, nc);
        ct = tc0.t;
    } else {
        /* fresh, every element written by the product (no gaps): a view at offset 2 */
        cr_assert(c->ldc == c->n && (c->batch == 1 || c->sc == c->m * c->n));
        cbase = TT_OUT(ctx, nc + 4);
        TU_OK(ct_tensor_view(cbase, 2, 1, &nc, &ct));
    }
    TU_OK(ct_gemm_batched(ctx, c->ta, c->tb, c->m, c->n, c->k, c->alpha, ta.t, c->lda, c->sa, tb.t,
                          c->ldb, c->sb, c->beta, ct, c->ldc, c->sc, c->batch));
    char what[160];
    snprintf(what, sizeof what, "gemm %s", c->name);
    tt_check(what, ct, ref, 1e-5, 1e-5);
    if (cbase) {
        ct_tensor_free(ct);
        ct_tensor_free(cbase);
    } else {
        tt_in_free(&tc0);
    }
    tt_in_free(&ta), tt_in_free(&tb);
    free(a), free(b), free(c0), free(ref);
}

/* A context whose ct_gemm runs kernels/gemm.cl (CLTRAIN_GEMM=own: Oclgrind presents
 * itself as a GPU, where ct_gemm would call CLBlast); tt_gemm_own_end unsets it. */
static ct_context *tt_gemm_own_begin(void)
{
    cr_assert(setenv("CLTRAIN_GEMM", "own", 1) == 0);
    ct_context *ctx = tu_context();
    cr_assert(ct_gemm_backend(ctx) == CT_GEMM_OWN);
    return ctx;
}

static void tt_gemm_own_end(ct_context *ctx)
{
    ct_context_free(ctx);
    unsetenv("CLTRAIN_GEMM");
}

/* gemm_bc: every product whose B (or, for A^T B^T, A) is read in rows. */
Test(tiny, gemm_own_bc)
{
    ct_context *ctx = tt_gemm_own_begin();
    for (size_t i = 0; i < sizeof gemm_bc_cases / sizeof gemm_bc_cases[0]; i++)
        tt_gemm_case(ctx, &gemm_bc_cases[i], 140 + 3 * i);
    tt_gemm_own_end(ctx);
}

/* gemm_dot: A B^T, and a linear layer's forward, whose bias and ReLU gemm_dot applies in
 * its epilogue (ct_linear_forward through ct_gemm_nt_bias_act): N = 5 rows (4 + 1), IN =
 * 19 (16 + 3), OUT = 7 (6 + 1); y fresh. Sums of 19 products in [-1, 1] plus a bias:
 * atol 1e-5, rtol 1e-5. gemm_dot's lane sum (gemm_vsum: v.hi of a float16) hits
 * Oclgrind's shuffle bug, so .ci/oclgrind runs this test without --uninitialized (its
 * no_uninit list); the beta-0 reads of C it would catch are gemm_out's, shared with
 * gemm_bc, whose test runs with the check. */
Test(tiny, gemm_own_dot)
{
    ct_context *ctx = tt_gemm_own_begin();
    for (size_t i = 0; i < sizeof gemm_dot_cases / sizeof gemm_dot_cases[0]; i++)
        tt_gemm_case(ctx, &gemm_dot_cases[i], 160 + 3 * i);

    const size_t n = 5, in = 19, out = 7;
    float *x = tt_rand(n * in, 170, -1, 1), *w = tt_rand(out * in, 171, -1, 1);
    float *b = tt_rand(out, 172, -1, 1);
    tt_in tx = TT_IN(ctx, 1, x, n, in), tw = TT_IN(ctx, 3, w, out, in), tb = TT_IN(ctx, 5, b, out);
    for (int variant = 0; variant < 3; variant++) {
        const bool bias = variant != 2, relu = variant != 1;
        double yr[5 * 7];
        ct_ref_linear_forward(x, w, bias ? b : NULL, relu, n, in, out, yr);
        ct_tensor *y = TT_OUT(ctx, n, out);
        TU_OK(ct_linear_forward(ctx, tx.t, tw.t, bias ? tb.t : NULL, relu, y));
        char what[80];
        snprintf(what, sizeof what, "linear on gemm_dot, bias %d relu %d", bias, relu);
        tt_check(what, y, yr, 1e-5, 1e-5);
        ct_tensor_free(y);
    }
    tt_in_free(&tx), tt_in_free(&tw), tt_in_free(&tb);
    free(x), free(w), free(b);
    tt_gemm_own_end(ctx);
}

/* ---- act.cl ----------------------------------------------------------------------- */

/* 13 elements: one float8 chunk and a partial one, at odd offsets. ReLU and LeakyReLU are
 * exact up to the one product x * slope (rtol 1e-7); sigmoid and tanh go through exp
 * (OpenCL C allows 3-4 ulp; PoCL's are closer): atol 1e-6, rtol 1e-6. The backward of
 * sigmoid/tanh reads the forward output y, the reference recomputes from x: same bound. */
Test(tiny, activations_forward_backward)
{
    ct_context *ctx = tu_context();
    const size_t n = 13;
    const ct_act_kind kinds[4] = {CT_ACT_RELU, CT_ACT_LEAKY_RELU, CT_ACT_SIGMOID, CT_ACT_TANH};
    const int ref_kinds[4] = {CT_REF_RELU, CT_REF_LEAKY_RELU, CT_REF_SIGMOID, CT_REF_TANH};
    const float slope = 0.125f;
    float *x = tt_rand(n, 110, -3, 3), *dy = tt_rand(n, 111, -1, 1);
    x[2] = 0.0f; /* the kink: PyTorch's ReLU'(0) = 0, LeakyReLU'(0) = slope */
    for (int k = 0; k < 4; k++) {
        double *yr = tt_dalloc(n), *dxr = tt_dalloc(n);
        ct_ref_act_forward(ref_kinds[k], slope, x, n, yr);
        ct_ref_act_backward(ref_kinds[k], slope, x, dy, n, dxr);
        tt_in tx = TT_IN(ctx, 3, x, n), tdy = TT_IN(ctx, 1, dy, n);
        ct_tensor *y = TT_OUT(ctx, n), *dx = TT_OUT(ctx, n);
        TU_OK(ct_act_forward(ctx, kinds[k], slope, tx.t, y));
        TU_OK(ct_act_backward(ctx, kinds[k], slope, tx.t, y, tdy.t, dx));
        char what[64];
        double tol = k < 2 ? 1e-7 : 1e-6;
        snprintf(what, sizeof what, "activation %d forward", k);
        tt_check(what, y, yr, tol, tol);
        snprintf(what, sizeof what, "activation %d backward", k);
        tt_check(what, dx, dxr, tol, tol);
        ct_tensor_free(y), ct_tensor_free(dx);
        tt_in_free(&tx), tt_in_free(&tdy);
        free(yr), free(dxr);
    }
    free(x), free(dy);
    ct_context_free(ctx);
}

/* Rows of 11 features (an 8-wide chunk and a 3-element tail). exp/log of values in
 * [-4, 4] and a float sum of 11 terms: atol 1e-6, rtol 1e-5. */
Test(tiny, softmax_and_log_softmax)
{
    ct_context *ctx = tu_context();
    const size_t n = 3, f = 11;
    float *x = tt_rand(n * f, 120, -4, 4);
    for (int lg = 0; lg < 2; lg++) {
        double *yr = tt_dalloc(n * f);
        ct_ref_softmax(x, n, f, lg, yr);
        tt_in tx = TT_IN(ctx, 5, x, n, f);
        ct_tensor *y = TT_OUT(ctx, n, f);
        TU_OK(ct_softmax_forward(ctx, tx.t, lg, y));
        tt_check(lg ? "log_softmax" : "softmax", y, yr, 1e-6, 1e-5);
        ct_tensor_free(y);
        tt_in_free(&tx);
        free(yr);
    }
    free(x);
    ct_context_free(ctx);
}

/* ---- dropout.cl ------------------------------------------------------------------- */

/* 45 elements: one full 32-element chunk and a partial one. The mask comes from the
 * reference Philox stream and the kept values are x * (float)(1/(1-p)): exact. */
Test(tiny, dropout_forward_backward)
{
    ct_context *ctx = tu_context();
    const size_t n = 45;
    const float p = 0.3f;
    const uint64_t seed = 0x123456789abcdefULL, counter = 0x100000003ULL;
    float *x = tt_rand(n, 130, -1, 1), *dy = tt_rand(n, 131, -1, 1);
    unsigned char keep[45];
    ct_ref_dropout_mask(n, p, seed, counter, keep);
    const float scale = ct_ref_dropout_scale(p);
    double yr[45], dxr[45];
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        yr[i] = keep[i] ? (double)(x[i] * scale) : 0.0;
        dxr[i] = keep[i] ? (double)(dy[i] * scale) : 0.0;
        kept += keep[i];
    }
    cr_assert(kept > 0 && kept < n, "the mask should drop some and keep some");
    tt_in tx = TT_IN(ctx, 3, x, n), tdy = TT_IN(ctx, 5, dy, n);
    ct_tensor *y = TT_OUT(ctx, n), *dx = TT_OUT(ctx, n);
    TU_OK(ct_dropout_forward(ctx, tx.t, p, seed, counter, y));
    TU_OK(ct_dropout_backward(ctx, tdy.t, p, seed, counter, dx));
    tt_check("dropout forward", y, yr, 0.0, 0.0);
    tt_check("dropout backward", dx, dxr, 0.0, 0.0);
    ct_tensor_free(y), ct_tensor_free(dx);
    tt_in_free(&tx), tt_in_free(&tdy);
    free(x), free(dy);
    ct_context_free(ctx);
}

/* ---- norm.cl ---------------------------------------------------------------------- */

/* BatchNorm2d on (2, 3, 3, 3) (rows of 9: a float8 chunk and a tail) and BatchNorm1d on
 * (4, 11) (channels: a float8 chunk and a tail), affine and not: training forward (y,
 * saved mean and invstd, running statistics), eval forward, training backward (dx
 * overwritten, dgamma/dbeta accumulated). Values are sums of <= 18 terms of size ~2 in
 * float: atol 1e-5, rtol 1e-5 (the normalised y and dx are O(1); invstd O(1)). */
Test(tiny, batchnorm_train_eval_backward)
{
    ct_context *ctx = tu_context();
    const size_t shapes[2][4] = {{2, 3, 3, 3}, {4, 11, 1, 1}};
    for (int si = 0; si < 2; si++)
        for (int affine = 0; affine < 2; affine++) {
            const size_t n = shapes[si][0], c = shapes[si][1], hw = shapes[si][2] * shapes[si][3];
            const size_t nx = n * c * hw;
            const double eps = 1e-5, mom = 0.1;
            float *x = tt_rand(nx, 140 + si, -2, 2), *dy = tt_rand(nx, 141 + si, -1, 1);
            float *gm = tt_rand(c, 142, 0.5, 1.5), *bt = tt_rand(c, 143, -1, 1);
            float *rm0 = tt_rand(c, 144, -1, 1), *rv0 = tt_rand(c, 145, 0.5, 2);
            float *dg0 = tt_rand(c, 146, -1, 1), *db0 = tt_rand(c, 147, -1, 1);
            double *rmr = tt_widen(rm0, c), *rvr = tt_widen(rv0, c), *meanr = tt_dalloc(c);
            double *isr = tt_dalloc(c), *yr = tt_dalloc(nx), *dxr = tt_dalloc(nx);
            double *dgr = tt_widen(dg0, c), *dbr = tt_widen(db0, c), *yer = tt_dalloc(nx);
            ct_ref_batchnorm_forward(x, affine ? gm : NULL, affine ? bt : NULL, n, c, hw, eps, mom,
                                     true, rmr, rvr, meanr, isr, yr);
            ct_ref_batchnorm_backward(x, affine ? gm : NULL, dy, n, c, hw, eps, dxr,
                                      affine ? dgr : NULL, affine ? dbr : NULL);
            /* eval mode on the updated running statistics */
            ct_ref_batchnorm_forward(x, affine ? gm : NULL, affine ? bt : NULL, n, c, hw, eps, mom,
                                     false, rmr, rvr, NULL, NULL, yer);

            const size_t nd = si == 0 ? 4 : 2;
            tt_in tx = tt_input(ctx, nd, shapes[si], 3, x);
            tt_in tdy = tt_input(ctx, nd, shapes[si], 1, dy);
            tt_in tg = TT_IN(ctx, 5, gm, c), tb = TT_IN(ctx, 7, bt, c);
            ct_tensor *rm = tu_tensor(ctx, TU_SHAPE(c), rm0),
                      *rv = tu_tensor(ctx, TU_SHAPE(c), rv0);
            ct_tensor *dg = tu_tensor(ctx, TU_SHAPE(c), dg0),
                      *db = tu_tensor(ctx, TU_SHAPE(c), db0);
            ct_tensor *sm = TT_OUT(ctx, c), *sis = TT_OUT(ctx, c);
            ct_tensor *y = tt_out(ctx, nd, shapes[si]), *ye = tt_out(ctx, nd, shapes[si]);
            ct_tensor *dx = tt_out(ctx, nd, shapes[si]);
            ct_bn_params p = {(float)eps, (float)mom, true};
            TU_OK(ct_batchnorm_forward(ctx, tx.t, affine ? tg.t : NULL, affine ? tb.t : NULL, rm,
                                       rv, &p, sm, sis, y));
            TU_OK(ct_batchnorm_backward(ctx, tx.t, affine ? tg.t : NULL, sm, sis, tdy.t, dx,
                                        affine ? dg : NULL, affine ? db : NULL));
            p.training = false;
            TU_OK(ct_batchnorm_forward(ctx, tx.t, affine ? tg.t : NULL, affine ? tb.t : NULL, rm,
                                       rv, &p, NULL, NULL, ye));
            char what[96];
#define BN_CHECK(t, ref, label)                                                                    \
    do {                                                                                           \
        snprintf(what, sizeof what, "bn %s affine=%d: %s", si ? "1d" : "2d", affine, label);       \
        tt_check(what, t, ref, 1e-5, 1e-5);                                                        \
    } while (0)
            BN_CHECK(y, yr, "y");
            BN_CHECK(sm, meanr, "saved mean");
            BN_CHECK(sis, isr, "saved invstd");
            BN_CHECK(rm, rmr, "running mean");
            BN_CHECK(rv, rvr, "running var");
            BN_CHECK(dx, dxr, "dx");
            BN_CHECK(ye, yer, "eval y");
            if (affine) {
                BN_CHECK(dg, dgr, "dgamma");
                BN_CHECK(db, dbr, "dbeta");
            }
#undef BN_CHECK
            ct_tensor_free(rm), ct_tensor_free(rv), ct_tensor_free(dg), ct_tensor_free(db);
            ct_tensor_free(sm), ct_tensor_free(sis), ct_tensor_free(y), ct_tensor_free(ye);
            ct_tensor_free(dx);
            tt_in_free(&tx), tt_in_free(&tdy), tt_in_free(&tg), tt_in_free(&tb);
            free(x), free(dy), free(gm), free(bt), free(rm0), free(rv0), free(dg0), free(db0);
            free(rmr), free(rvr), free(meanr), free(isr), free(yr), free(dxr), free(dgr);
            free(dbr), free(yer);
        }
    ct_context_free(ctx);
}

/* ---- loss.cl ---------------------------------------------------------------------- */

typedef struct tt_loss {
    const char *name;
    ct_loss_kind kind;
    size_t ndim, shape[4];
    bool soft;
    size_t w_ndim, w_shape[4], pw_ndim, pw_shape[4];
    float smoothing;
    int ignored; /* class targets: every ignored-th position gets ignore_index (0: none) */
} tt_loss;

/* Every kind and option once at a few elements (one work-group: the one-launch path,
 * float4 chunks plus a partial one for the element-wise losses), and three sizes just
 * past one work-group, where per-group partial sums are finished by a second launch:
 * ce_finish (class-index mean with a gradient), loss_finish (the others). */
static const tt_loss loss_cases[] = {
    {"ce w ign ls", CT_LOSS_CROSS_ENTROPY, 2, {3, 4}, false, 1, {4}, 0, {0}, 0.1f, 2},
    {"ce spatial", CT_LOSS_CROSS_ENTROPY, 3, {2, 3, 2}, false, 0, {0}, 0, {0}, 0.0f, 0},
    {"ce soft w ls", CT_LOSS_CROSS_ENTROPY, 3, {2, 3, 2}, true, 1, {3}, 0, {0}, 0.2f, 0},
    {"nll w ign", CT_LOSS_NLL, 3, {2, 3, 2}, false, 1, {3}, 0, {0}, 0.0f, 3},
    {"bce w pw", CT_LOSS_BCE_WITH_LOGITS, 2, {3, 5}, false, 2, {3, 1}, 1, {5}, 0.0f, 0},
    {"mse", CT_LOSS_MSE, 1, {7}, false, 0, {0}, 0, {0}, 0.0f, 0},
    {"l1", CT_LOSS_L1, 2, {2, 5}, false, 0, {0}, 0, {0}, 0.0f, 0},
    {"smoothl1", CT_LOSS_SMOOTH_L1, 1, {9}, false, 0, {0}, 0, {0}, 0.0f, 0},
    {"huber", CT_LOSS_HUBER, 1, {6}, false, 0, {0}, 0, {0}, 0.0f, 0},
    {"ce 520 rows (two groups)",
     CT_LOSS_CROSS_ENTROPY,
     2,
     {520, 2},
     false,
     0,
     {0},
     0,
     {0},
     0.0f,
     7},
    {"bce 4100 (two groups)",
     CT_LOSS_BCE_WITH_LOGITS,
     2,
     {4100, 1},
     false,
     0,
     {0},
     0,
     {0},
     0.0f,
     0},
    {"mse 4101 (two groups)", CT_LOSS_MSE, 1, {4101}, false, 0, {0}, 0, {0}, 0.0f, 0},
};

static size_t tt_numel(size_t ndim, const size_t *shape)
{
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* Tolerances, float32 against double: a loss is a float sum of <= 4101 terms (each a
 * few ulps from exp/log), so rtol 2e-5 (~4101 * 2^-24 / 10) and atol 1e-6 for losses near
 * 0; a gradient entry is one or two roundings of O(1) values times the grad_output and
 * the 1/count factor: atol 1e-6, rtol 1e-5. */
Test(tiny, losses_every_kind)
{
    ct_context *ctx = tu_context();
    for (size_t li = 0; li < sizeof loss_cases / sizeof loss_cases[0]; li++) {
        const tt_loss *c = &loss_cases[li];
        const bool cls = c->kind == CT_LOSS_CROSS_ENTROPY || c->kind == CT_LOSS_NLL;
        const size_t n = tt_numel(c->ndim, c->shape);
        size_t tshape[4], tnd = c->ndim;
        memcpy(tshape, c->shape, sizeof tshape);
        if (cls && !c->soft) { /* (N, C, d...) -> (N, d...) */
            tnd = c->ndim - 1;
            for (size_t i = 1; i < tnd; i++)
                tshape[i] = c->shape[i + 1];
        }
        const size_t tn = tt_numel(tnd, tshape), C = cls ? c->shape[1] : 1;
        float *x = tt_rand(n, 200 + li, -3, 3), *t = tt_rand(tn, 300 + li, 0, 1);
        if (c->kind == CT_LOSS_NLL) /* log-probabilities: log_softmax over C */
            for (size_t i = 0; i < n; i++)
                x[i] = -fabsf(x[i]) - 0.05f;
        if (cls && !c->soft) {
            for (size_t p = 0; p < tn; p++)
                t[p] =
                    c->ignored && p % (size_t)c->ignored == 1 ? -100.0f : (float)((p * 7 + li) % C);
        } else if (c->soft) { /* rows of class probabilities */
            size_t S = n / (c->shape[0] * C);
            for (size_t a = 0; a < c->shape[0]; a++)
                for (size_t s = 0; s < S; s++) {
                    float sum = 0.0f;
                    for (size_t k = 0; k < C; k++)
                        sum += t[(a * C + k) * S + s];
                    for (size_t k = 0; k < C; k++)
                        t[(a * C + k) * S + s] /= sum;
                }
        } else if (c->kind != CT_LOSS_BCE_WITH_LOGITS) {
            for (size_t i = 0; i < n; i++)
                t[i] = 6.0f * t[i] - 3.0f;
        }
        float *w = NULL, *pw = NULL;
        ct_loss_options o = ct_loss_options_default(c->kind);
        o.label_smoothing = c->smoothing;
        o.beta = 0.5f;
        o.delta = 0.7f;
        if (c->w_ndim) {
            w = tt_rand(tt_numel(c->w_ndim, c->w_shape), 400 + li, 0.2, 2);
            o.weight = w;
            o.weight_ndim = c->w_ndim;
            memcpy(o.weight_shape, c->w_shape, sizeof o.weight_shape);
        }
        if (c->pw_ndim) {
            pw = tt_rand(tt_numel(c->pw_ndim, c->pw_shape), 500 + li, 0.2, 3);
            o.pos_weight = pw;
            o.pos_weight_ndim = c->pw_ndim;
            memcpy(o.pos_weight_shape, c->pw_shape, sizeof o.pos_weight_shape);
        }
        double *xd = tt_widen(x, n), *td = tt_widen(t, tn);
        tt_in tx = tt_input(ctx, c->ndim, c->shape, 3, x), tt = tt_input(ctx, tnd, tshape, 1, t);
        for (int red = 0; red < 3; red++) {
            o.reduction = (ct_reduction)red;
            ct_loss *loss = NULL;
            TU_OK(ct_loss_create(ctx, &o, &loss));
            size_t ond = 0, oshape[CT_MAX_DIMS];
            TU_OK(ct_loss_output_shape(loss, tx.t, tt.t, &ond, oshape));
            const size_t on = tt_numel(ond, oshape);
            cr_assert_eq(on, ct_ref_loss_out_numel(&o, c->ndim, c->shape));
            float *go = tt_rand(on, 600 + li, -1, 2);
            double *god = tt_widen(go, on), *outr = tt_dalloc(on), *gr = tt_dalloc(n);
            double *ggr = tt_dalloc(n);
            cr_assert_eq(ct_ref_loss(&o, c->ndim, c->shape, xd, td, c->soft, NULL, outr, gr), 0);
            cr_assert_eq(ct_ref_loss(&o, c->ndim, c->shape, xd, td, c->soft, god, outr, ggr), 0);
            tt_in tgo = tt_input(ctx, ond, oshape, 5, go);
            ct_tensor *out = tt_out(ctx, ond, oshape), *out2 = tt_out(ctx, ond, oshape);
            ct_tensor *g = tt_out(ctx, c->ndim, c->shape), *g2 = tt_out(ctx, c->ndim, c->shape);
            TU_OK(ct_loss_forward_backward(loss, tx.t, tt.t, out, g));
            TU_OK(ct_loss_forward(loss, tx.t, tt.t, out2));
            TU_OK(ct_loss_backward(loss, tx.t, tt.t, tgo.t, g2));
            char what[128];
            snprintf(what, sizeof what, "%s reduction %d: loss", c->name, red);
            tt_check(what, out, outr, 1e-6, 2e-5);
            snprintf(what, sizeof what, "%s reduction %d: forward alone", c->name, red);
            tt_check(what, out2, outr, 1e-6, 2e-5);
            snprintf(what, sizeof what, "%s reduction %d: gradient", c->name, red);
            tt_check(what, g, gr, 1e-6, 1e-5);
            snprintf(what, sizeof what, "%s reduction %d: gradient with grad_output", c->name, red);
            tt_check(what, g2, ggr, 1e-6, 1e-5);
            ct_loss_report rep;
            TU_OK(ct_loss_check(loss, &rep));
            cr_assert_eq(rep.errors, 0u, "%s: error flag %u", c->name, rep.errors);
            ct_tensor_free(out), ct_tensor_free(out2), ct_tensor_free(g), ct_tensor_free(g2);
            tt_in_free(&tgo);
            free(go), free(god), free(outr), free(gr), free(ggr);
            ct_loss_free(loss);
        }
        tt_in_free(&tx), tt_in_free(&tt);
        free(x), free(t), free(w), free(pw), free(xd), free(td);
    }
    ct_context_free(ctx);
}

/* ---- optim.cl --------------------------------------------------------------------- */

/* 13 parameters (three float4 chunks and a partial one) in two groups over three
 * ranges, element 12 in none (it must not move); three steps of every optimizer with
 * its options switched on, against the double reference. The device runs PyTorch's
 * float32 operation order: after 3 steps of O(lr) updates the float/double gap is a few
 * ulps of O(1) values: atol 2e-6, rtol 2e-5 (tests/ops/test_optim.c uses 2e-5 for 40
 * steps). */
Test(tiny, optimizers_every_kind)
{
    ct_context *ctx = tu_context();
    const size_t n = 13;
    const ct_optim_group groups[2] = {{0.1, 0.01}, {0.05, 0.0}};
    const ct_optim_range ranges[3] = {{0, 5, 0}, {5, 4, 1}, {9, 3, 0}};
    for (int kind = CT_OPTIM_SGD; kind <= CT_OPTIM_ADAGRAD; kind++) {
        ct_optim_options o = ct_optim_defaults((ct_optim_kind)kind);
        o.groups = groups;
        o.n_groups = 2;
        o.ranges = ranges;
        o.n_ranges = 3;
        o.momentum = kind == CT_OPTIM_SGD || kind == CT_OPTIM_RMSPROP ? 0.9 : 0.0;
        o.nesterov = kind == CT_OPTIM_SGD;
        o.amsgrad = kind == CT_OPTIM_ADAM;
        o.centered = kind == CT_OPTIM_RMSPROP;
        o.maximize = kind == CT_OPTIM_ADAMW;
        o.lr_decay = kind == CT_OPTIM_ADAGRAD ? 0.1 : 0.0;
        o.initial_accumulator_value = kind == CT_OPTIM_ADAGRAD ? 0.5 : 0.0;
        float *p0 = tt_rand(n, 700 + kind, -1, 1);
        double *pr = tt_widen(p0, n);
        ct_tensor *p = tu_tensor(ctx, TU_SHAPE(n), p0), *g = TT_OUT(ctx, n);
        ct_optim *opt = NULL;
        TU_OK(ct_optim_create(ctx, &o, p, g, &opt));
        ct_ref_optim ref;
        cr_assert_eq(ct_ref_optim_init(&ref, &o, n), 0);
        for (int s = 0; s < 3; s++) {
            float *gf = tt_rand(n, 800 + 10 * kind + s, -1, 1);
            double *gd = tt_widen(gf, n);
            TU_OK(ct_tensor_upload(g, gf, n));
            TU_OK(ct_optim_step(opt));
            ct_ref_optim_step(&ref, pr, gd);
            free(gf), free(gd);
        }
        char what[64];
        snprintf(what, sizeof what, "%s after 3 steps", ct_optim_kind_name((ct_optim_kind)kind));
        tt_check(what, p, pr, 2e-6, 2e-5);
        float *got = tu_download(p);
        cr_assert_eq(got[12], p0[12], "%s moved an element outside every range", what);
        free(got);
        ct_ref_optim_free(&ref);
        ct_optim_free(opt);
        ct_tensor_free(p), ct_tensor_free(g);
        free(p0), free(pr);
    }
    ct_context_free(ctx);
}

/* Clipping by norm on 13 values at an odd offset: the norm is a float sum of 13 squares
 * (rtol 1e-6), the clipped values one multiplication more (rtol 2e-6). */
Test(tiny, gradient_clip_by_norm)
{
    ct_context *ctx = tu_context();
    const size_t n = 13;
    float *gf = tt_rand(n, 900, -2, 2);
    double norm = 0.0;
    for (size_t i = 0; i < n; i++)
        norm += (double)gf[i] * gf[i];
    norm = sqrt(norm);
    const double max_norm = 0.5 * norm, coef = max_norm / (norm + 1e-6);
    double clipped[13];
    for (size_t i = 0; i < n; i++)
        clipped[i] = gf[i] * coef;
    tt_in g = TT_IN(ctx, 3, gf, n);
    ct_tensor *nrm = TT_OUT(ctx, 1), *nrm2 = TT_OUT(ctx, 1);
    TU_OK(ct_grad_norm(ctx, g.t, nrm2));
    TU_OK(ct_clip_grad_norm(ctx, g.t, max_norm, nrm));
    tt_check("grad norm", nrm2, &norm, 0.0, 1e-6);
    tt_check("clip_grad_norm's norm", nrm, &norm, 0.0, 1e-6);
    tt_check("clipped by norm", g.t, clipped, 0.0, 2e-6);
    ct_tensor_free(nrm), ct_tensor_free(nrm2);
    tt_in_free(&g);
    free(gf);
    ct_context_free(ctx);
}

/* Clamping by value: exact (against the float the device compares with). */
Test(tiny, gradient_clip_by_value)
{
    ct_context *ctx = tu_context();
    const size_t n = 13;
    float *gf = tt_rand(n, 901, -2, 2);
    double clamped[13];
    for (size_t i = 0; i < n; i++)
        clamped[i] = fmin(fmax(gf[i], -(double)0.7f), (double)0.7f);
    tt_in h = TT_IN(ctx, 1, gf, n);
    TU_OK(ct_clip_grad_value(ctx, h.t, (double)0.7f));
    tt_check("clipped by value", h.t, clamped, 0.0, 0.0);
    tt_in_free(&h);
    free(gf);
    ct_context_free(ctx);
}

/* ---- train.cl --------------------------------------------------------------------- */

/* Host logits of "flatten linear(C)" for the rows of x (n, F), parameters W (C, F), b (C). */
static void tt_logits(const float *x, size_t n, size_t F, const float *params, size_t C,
                      double *out)
{
    for (size_t r = 0; r < n; r++)
        for (size_t k = 0; k < C; k++) {
            double s = params[C * F + k];
            for (size_t f = 0; f < F; f++)
                s += (double)params[k * F + f] * x[r * F + f];
            out[r * C + k] = s;
        }
}

/* The mean loss of `kind` on logits (n, C) and labels y, as the trainer's targets make it:
 * class indices for cross entropy, one-hot rows (C > 1) or the label (C == 1) for MSE and
 * BCE-with-logits. */
static double tt_host_loss(ct_loss_kind kind, const double *z, const float *y, size_t n, size_t C)
{
    double sum = 0.0;
    for (size_t r = 0; r < n; r++) {
        const double *zr = z + r * C;
        if (kind == CT_LOSS_CROSS_ENTROPY) {
            double m = zr[0], se = 0.0;
            for (size_t k = 1; k < C; k++)
                m = fmax(m, zr[k]);
            for (size_t k = 0; k < C; k++)
                se += exp(zr[k] - m);
            sum += m + log(se) - zr[(size_t)y[r]];
            continue;
        }
        for (size_t k = 0; k < C; k++) {
            double t = C == 1 ? y[r] : (y[r] == (float)k ? 1.0 : 0.0);
            sum += kind == CT_LOSS_MSE ? (zr[k] - t) * (zr[k] - t)
                                       : fmax(zr[k], 0.0) - zr[k] * t + log1p(exp(-fabs(zr[k])));
        }
    }
    return kind == CT_LOSS_CROSS_ENTROPY ? sum / (double)n : sum / (double)(n * C);
}

/* One training step per loss (targets, record) and an evaluation pass (loss sum,
 * confusion matrix) of a linear model on 5 two-channel 3x4 images, each checked against
 * the same computation on the host from the downloaded batch and parameters: the loss
 * is a float sum of a few terms (rtol 1e-5), the confusion counts exact. */
Test(tiny, trainer_step_and_evaluate)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = tt_dataset();
    const size_t F = 2 * TT_IMG_H * TT_IMG_W;
    const ct_loss_kind kinds[3] = {CT_LOSS_CROSS_ENTROPY, CT_LOSS_MSE, CT_LOSS_BCE_WITH_LOGITS};
    for (int ki = 0; ki < 3; ki++) {
        const ct_loss_kind kind = kinds[ki];
        /* BCE on one output column needs 0/1 labels: classes 0..2 become (label > 0) */
        const size_t C = kind == CT_LOSS_BCE_WITH_LOGITS ? 1 : 3;
        ct_dataset *use = ds;
        if (C == 1) {
            uint8_t lab[5];
            for (size_t i = 0; i < 5; i++)
                lab[i] = ct_dataset_labels(ds)[i] > 0;
            TU_OK(ct_dataset_create("binary", 5, 2, TT_IMG_H, TT_IMG_W, 2, ct_dataset_images(ds),
                                    lab, NULL, &use));
        }
        ct_loader_options lo = {0};
        lo.batch_size = 3;
        lo.normalize = true;
        ct_loader *l = NULL;
        TU_OK(ct_loader_create(ctx, use, &lo, &l));
        TU_OK(ct_loader_start_epoch(l, 0));
        char spec[32];
        snprintf(spec, sizeof spec, "flatten linear(%zu)", C);
        ct_model *m = NULL;
        TU_OK(ct_model_create_spec(ctx, spec, 3, (size_t[]){2, TT_IMG_H, TT_IMG_W}, 5, &m));
        ct_optim_options oo = ct_optim_defaults(CT_OPTIM_SGD);
        oo.lr = 0.1;
        ct_optim *opt = NULL;
        TU_OK(ct_optim_create(ctx, &oo, ct_model_params(m), ct_model_grads(m), &opt));
        ct_trainer_options to = ct_trainer_defaults();
        to.loss = kind;
        to.check_every = 1;
        to.history = 4;
        ct_trainer *tr = NULL;
        TU_OK(ct_trainer_create(m, opt, NULL, CT_SCHED_PER_STEP, &to, &tr));
        TU_OK(ct_trainer_begin_epoch(tr));

        const size_t np = ct_model_param_numel(m);
        float *params = malloc(np * sizeof *params);
        cr_assert(params != NULL);
        double z[5 * 3];
        ct_tensor *x = NULL, *y = NULL;
        TU_OK(ct_loader_batch(l, 0, &x, &y));
        const size_t n = ct_tensor_dim(x, 0);
        float *hx = tu_download(x), *hy = tu_download(y);
        TU_OK(ct_model_get_params(m, params, np));
        tt_logits(hx, n, F, params, C, z);
        const double want = tt_host_loss(kind, z, hy, n, C);
        ct_step_info info;
        TU_OK(ct_trainer_step(tr, x, y, &info));
        cr_assert(info.read, "check_every 1 reads every step");
        tu_assert_close("trainer step loss", (float[]){(float)info.loss}, &want, 1, 1e-6, 1e-5);
        float hist;
        TU_OK(ct_trainer_history(tr, &hist, 1));
        tu_assert_close("trainer history", &hist, &want, 1, 1e-6, 1e-5);
        free(hx), free(hy);

        /* evaluation over both batches with the updated parameters */
        TU_OK(ct_model_get_params(m, params, np));
        ct_eval_result res;
        TU_OK(ct_trainer_evaluate(tr, l, &res));
        const size_t K = C == 1 ? 2 : C;
        uint64_t conf[9] = {0};
        double lsum = 0.0;
        size_t count = 0;
        for (size_t b = 0; b < ct_loader_batch_count(l); b++) {
            TU_OK(ct_loader_batch(l, b, &x, &y));
            const size_t nb = ct_tensor_dim(x, 0);
            hx = tu_download(x), hy = tu_download(y);
            tt_logits(hx, nb, F, params, C, z);
            lsum += tt_host_loss(kind, z, hy, nb, C) * (double)nb;
            count += nb;
            for (size_t r = 0; r < nb; r++) {
                size_t pred = 0;
                if (C == 1) {
                    pred = z[r] > 0.0;
                } else {
                    for (size_t k = 1; k < C; k++)
                        if (z[r * C + k] > z[r * C + pred])
                            pred = k;
                }
                conf[(size_t)hy[r] * K + pred]++;
            }
            free(hx), free(hy);
        }
        cr_assert_eq(res.count, count);
        cr_assert_eq(res.num_classes, K);
        for (size_t i = 0; i < K * K; i++)
            cr_assert_eq(res.confusion[i], conf[i], "loss %d: confusion[%zu] %llu, host %llu",
                         (int)kind, i, (unsigned long long)res.confusion[i],
                         (unsigned long long)conf[i]);
        const double mean = lsum / (double)count;
        tu_assert_close("evaluation loss", (float[]){(float)res.loss}, &mean, 1, 1e-6, 1e-5);

        ct_eval_result_free(&res);
        free(params);
        ct_trainer_free(tr);
        ct_optim_free(opt);
        ct_model_free(m);
        ct_loader_free(l);
        if (use != ds)
            ct_dataset_free(use);
    }
    ct_dataset_free(ds);
    ct_context_free(ctx);
}
