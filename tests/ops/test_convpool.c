/* conv2d + ReLU + 2x2/2 max pool fused (ct_conv2d_pool_forward / _backward, kernels
 * conv_kv_pool, conv_unpool, conv_bwd_w_pool and conv_bwd_b's mask) on the device against
 * the double-precision references (lib/ref/conv_ref.c: conv2d, then max pooling) and
 * against the unfused device path (ct_conv2d_forward + ct_maxpool2d_forward, and
 * ct_maxpool2d_backward(relu_in) + ct_conv2d_backward), over the convolutions
 * ct_conv2d_pool_fusable accepts: MiniCNN's two convs, odd conv output sizes (floor mode
 * drops the last row or column), K = 26 and 31 (channel vectors padded), groups with
 * K/groups = 32, dilation with its largest padding, no padding, 1x1 and non-square
 * kernels, a 2x2 conv output (one window), no bias, no ReLU, batch 1, rows longer than
 * one run. Every tensor is a view at an odd offset inside a buffer of canaries; idx (one
 * byte per pooled element in a float tensor) too, and its bytes past the last pooled
 * element must keep the canary's.
 *
 * Forward, three checks per case: (a) y against the reference; (b) y bit for bit equal
 * to the unfused device path, since conv_kv_pool does conv_kv's FMAs in conv_kv's order
 * and pools with pool.cl's rule: any difference is a bug, not rounding; (c) idx equal to
 * each window's first maximum by pool.cl's rule (MAX_STEP: take v when v > m or v is
 * NaN; so ties keep the first, a NaN wins, of several NaNs the last), computed on the host
 * from the unfused conv output, and y equal to the value there; the eval-mode forward (idx
 * NULL) gives the same y bits. Backward: the reference gradient is built on the host from
 * the device's idx and y (the pooled gradient at idx, zero elsewhere, zero where the ReLU
 * cut (y <= 0), zero in the dropped rows and columns), then ct_ref_conv2d_backward; dx
 * starts from garbage (overwritten), dw and db from non-zero values (accumulated); runs
 * with dx and db, with dx NULL (a first layer), with db NULL, through the flat
 * backward-weight kernel (>= 32 taps) and conv_bwd_w_pool (fewer), single-chunk and
 * batch-chunked reductions; and the same backward twice gives the same bits.
 *
 * Tolerances are test_conv.c's: inputs are uniform in [-1, 1], so a conv output sums
 * L = C/groups*R*S products of magnitude <= 1 and float32 accumulation errs by about
 * L * 2^-24 / 3; atol = rtol = 1e-5 * sqrt(L) leaves ~30x margin, while a wrong tap,
 * channel or window moves values by O(0.1). Pooling picks one of the conv outputs, so the
 * pooled error is the conv error (the max of nearly equal values may pick another element
 * than the double reference, but then the two values are within the same bound).
 * Backward-data sums K/groups*R*S terms and backward-weight and bias at most N*P*Q terms;
 * the same rule with that L. The fused backward against the unfused device backward uses
 * the same tolerances (the flat dw kernel may read the gradient at another row pitch,
 * which reorders its sums). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "testutil.h"

/* stride is 1: the only one with a fused path */
typedef struct cp_case {
    size_t n, c, h, w, k, r, s;
    size_t ph, pw, dh, dw, g;
    bool bias, relu;
} cp_case;

static const cp_case cases[] = {
    /* n  c   h   w   k  r  s ph pw dh dw g  bias   relu */
    {4, 1, 28, 28, 32, 3, 3, 1, 1, 1, 1, 1, true, true},  /* MiniCNN conv1 (9 taps) */
    {2, 32, 14, 14, 64, 3, 3, 1, 1, 1, 1, 1, true, true}, /* MiniCNN conv2 (288 taps) */
    {2, 3, 15, 13, 32, 3, 3, 1, 1, 1, 1, 1, true, true},  /* 15x13 -> 7x6, row+col dropped */
    {2, 4, 10, 12, 31, 3, 3, 1, 1, 1, 1, 1, true, true},  /* K = 31: vector padding */
    {1, 3, 9, 7, 26, 3, 3, 1, 1, 1, 1, 1, true, false},   /* K = 26: most padding allowed */
    {2, 8, 9, 11, 64, 3, 3, 1, 1, 1, 1, 2, true, true},   /* groups 2, K/groups = 32 */
    {2, 3, 10, 10, 96, 3, 3, 1, 1, 1, 1, 3, true, true},  /* groups 3, C/groups = 1 */
    {2, 5, 12, 11, 32, 3, 3, 2, 2, 2, 2, 1, true, true},  /* dilation 2, pad 2 */
    {1, 4, 13, 12, 32, 3, 3, 4, 1, 2, 1, 1, false, true}, /* dil 2x1, pad 4x1: the most */
    {1, 4, 11, 14, 32, 3, 3, 0, 0, 1, 1, 1, true, false}, /* valid: 9x12 -> 4x6 */
    {2, 3, 8, 9, 32, 3, 3, 1, 1, 1, 1, 1, false, true},   /* no bias, odd Q */
    {2, 8, 6, 7, 32, 1, 1, 0, 0, 1, 1, 1, true, true},    /* 1x1 */
    {1, 3, 9, 10, 32, 2, 3, 1, 2, 1, 1, 1, true, false},  /* 2x3 kernel, pad 1x2 */
    {1, 2, 5, 41, 32, 3, 3, 1, 1, 1, 1, 1, true, false},  /* 41 wide: runs + tail, 18 taps */
    {1, 6, 6, 40, 32, 3, 3, 1, 1, 1, 1, 1, true, true},   /* 40 wide, 54 taps */
    {3, 2, 4, 4, 32, 3, 3, 0, 0, 1, 1, 1, true, true},    /* conv 2x2 -> one window */
    {1, 4, 8, 12, 32, 2, 5, 1, 2, 1, 1, 1, true, true},   /* 2x5, 40 taps: not square */
    {2, 4, 4, 1, 32, 3, 3, 1, 2, 1, 1, 1, true, true},    /* 1 wide, pad 2: narrow dw */
};
#define NCASES (sizeof cases / sizeof cases[0])

static const ct_pool2d_params pool22 = {2, 2, 2, 2, 0, 0, false, true};

static ct_ref_conv ref_geom(const cp_case *c)
{
    return (ct_ref_conv){c->n, c->c, c->h,  c->w,  c->k,  c->r,  c->s,
                         1,    1,    c->ph, c->pw, c->dh, c->dw, c->g};
}

static ct_conv2d_params dev_params(const cp_case *c)
{
    return (ct_conv2d_params){1, 1, c->ph, c->pw, c->dh, c->dw, c->g};
}

static void describe(char *buf, size_t n, const char *what, const cp_case *c)
{
    snprintf(buf, n,
             "%s: n=%zu c=%zu h=%zu w=%zu k=%zu r=%zu s=%zu pad=%zux%zu dil=%zux%zu groups=%zu "
             "bias=%d relu=%d",
             what, c->n, c->c, c->h, c->w, c->k, c->r, c->s, c->ph, c->pw, c->dh, c->dw, c->g,
             c->bias, c->relu);
}

/* pool.cl's MAX_STEP over a window in scan order: take v when v > m or v is NaN. */
static unsigned first_max(const float v[4])
{
    float m = -INFINITY;
    unsigned a = 0;
    for (unsigned e = 0; e < 4; e++)
        if (v[e] > m || isnan(v[e]))
            m = v[e], a = e;
    return a;
}

/* Equal bits, or both NaN (a NaN's payload is no result). */
static bool same_float(float a, float b)
{
    return memcmp(&a, &b, sizeof a) == 0 || (isnan(a) && isnan(b));
}

/* got and want (pooled tensors (N, K, PH, PW)) the same bits element by element. */
static void assert_same_bits(const char *what, const float *got, const float *want, size_t K,
                             size_t PH, size_t PW, size_t n)
{
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (!same_float(got[i], want[i]) && bad++ == 0)
            first = i;
    if (bad) {
        size_t q = first % PW, p = first / PW % PH, k = first / (PW * PH) % K;
        size_t b = first / (PW * PH * K);
        cr_assert_fail("%s: %zu of %zu elements differ; first [%zu] (n=%zu k=%zu ph=%zu pw=%zu): "
                       "got %a, expected %a",
                       what, bad, n, first, b, k, p, q, (double)got[first], (double)want[first]);
    }
}

/* The device tensors of one case (views at odd offsets) and its sizes. */
typedef struct cp_run {
    size_t P, Q, PH, PW, nx, nw, ny, nc, nidx;
    float *hx, *hw, *hb;
    tu_view x, w, b, y, idx;
} cp_run;

static void run_setup(ct_context *ctx, const cp_case *c, size_t seed, const float *hx_given,
                      cp_run *r)
{
    memset(r, 0, sizeof *r);
    r->P = ct_ref_conv_out_size(c->h, c->r, 1, c->ph, c->dh);
    r->Q = ct_ref_conv_out_size(c->w, c->s, 1, c->pw, c->dw);
    cr_assert(r->P >= 2 && r->Q >= 2);
    r->PH = r->P / 2, r->PW = r->Q / 2;
    r->nx = c->n * c->c * c->h * c->w, r->nw = c->k * (c->c / c->g) * c->r * c->s;
    r->nc = c->n * c->k * r->P * r->Q, r->ny = c->n * c->k * r->PH * r->PW;
    r->nidx = (r->ny + 3) / 4;
    r->hx = tu_rand(r->nx, 100 + seed, -1, 1);
    if (hx_given)
        memcpy(r->hx, hx_given, r->nx * sizeof *r->hx);
    r->hw = tu_rand(r->nw, 200 + seed, -1, 1);
    r->hb = tu_rand(c->k, 300 + seed, -1, 1);
    r->x = tu_view_new(ctx, 3 + seed, 4, (size_t[]){c->n, c->c, c->h, c->w}, r->hx);
    r->w = tu_view_new(ctx, 1, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, r->hw);
    r->b = tu_view_new(ctx, 7, 1, (size_t[]){c->k}, r->hb);
    r->y = tu_view_new(ctx, 5 + 2 * seed, 4, (size_t[]){c->n, c->k, r->PH, r->PW}, NULL);
    r->idx = tu_view_new(ctx, 9 + seed, 1, (size_t[]){r->nidx}, NULL);
}

static void run_free(cp_run *r)
{
    tu_view_free(&r->x), tu_view_free(&r->w), tu_view_free(&r->b);
    tu_view_free(&r->y), tu_view_free(&r->idx);
    free(r->hx), free(r->hw), free(r->hb);
}

/* The fused training forward into r->y / r->idx, checked against the unfused device path
 * bit for bit, idx against the host rule on the unfused conv output, and the eval-mode
 * forward against it. Returns the fused y and (in *idx_out) the idx bytes, malloc'd. */
static float *fused_forward_checked(ct_context *ctx, const cp_case *c, cp_run *r, uint8_t **idx_out)
{
    ct_conv2d_params p = dev_params(c);
    char what[256];
    describe(what, sizeof what, "conv2d+maxpool fusable", c);
    cr_assert(ct_conv2d_pool_fusable(ctx, (size_t[]){c->c, c->h, c->w}, c->k, c->r, c->s, &p),
              "%s: false", what);
    const ct_tensor *bias = c->bias ? r->b.t : NULL;
    TU_OK(ct_conv2d_pool_forward(ctx, r->x.t, r->w.t, bias, &p, c->relu, r->y.t, r->idx.t));
    describe(what, sizeof what, "conv2d+maxpool forward y", c);
    float *got = tu_view_get(what, &r->y);
    describe(what, sizeof what, "conv2d+maxpool forward idx", c);
    float *gidx = tu_view_get(what, &r->idx);
    uint8_t *ib = malloc(r->nidx * sizeof(float));
    cr_assert(ib != NULL);
    memcpy(ib, gidx, r->nidx * sizeof(float));
    free(gidx);
    const float canary = TU_CANARY;
    for (size_t i = r->ny; i < r->nidx * sizeof(float); i++)
        cr_assert(ib[i] == ((const uint8_t *)&canary)[i % sizeof(float)],
                  "%s: byte %zu past the %zu pooled elements was overwritten", what, i, r->ny);

    /* (b) the unfused device path: conv_kv with its ReLU, then maxpool2_fwd */
    ct_tensor *yc = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r->P, r->Q), NULL);
    ct_tensor *yp = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r->PH, r->PW), NULL);
    TU_OK(ct_conv2d_forward(ctx, r->x.t, r->w.t, bias, &p, c->relu, yc));
    TU_OK(ct_maxpool2d_forward(ctx, yc, &pool22, yp));
    float *conv = tu_download(yc), *unf = tu_download(yp);
    describe(what, sizeof what, "conv2d+maxpool forward y vs the unfused device path (bits)", c);
    assert_same_bits(what, got, unf, c->k, r->PH, r->PW, r->ny);

    /* (c) idx: each window's first maximum in the unfused conv output, by pool.cl's rule */
    describe(what, sizeof what, "conv2d+maxpool forward idx", c);
    for (size_t i = 0; i < r->ny; i++) {
        size_t pw = i % r->PW, ph = i / r->PW % r->PH, plane = i / (r->PW * r->PH);
        const float *w0 = conv + plane * r->P * r->Q + 2 * ph * r->Q + 2 * pw;
        const float v[4] = {w0[0], w0[1], w0[r->Q], w0[r->Q + 1]};
        unsigned e = first_max(v);
        cr_assert(ib[i] == e,
                  "%s: pooled element [%zu] (n=%zu k=%zu ph=%zu pw=%zu): idx %u, expected %u "
                  "(window %a %a / %a %a)",
                  what, i, plane / c->k, plane % c->k, ph, pw, (unsigned)ib[i], e, (double)v[0],
                  (double)v[1], (double)v[2], (double)v[3]);
        cr_assert(same_float(got[i], v[e]),
                  "%s: pooled element [%zu]: y %a, but the window's maximum is %a", what, i,
                  (double)got[i], (double)v[e]);
    }

    /* 2. eval mode: idx NULL, the same y */
    tu_view y2 = tu_view_new(ctx, 11, 4, (size_t[]){c->n, c->k, r->PH, r->PW}, NULL);
    TU_OK(ct_conv2d_pool_forward(ctx, r->x.t, r->w.t, bias, &p, c->relu, y2.t, NULL));
    describe(what, sizeof what, "conv2d+maxpool eval forward (idx NULL) vs training (bits)", c);
    float *got2 = tu_view_get(what, &y2);
    assert_same_bits(what, got2, got, c->k, r->PH, r->PW, r->ny);

    free(got2), free(conv), free(unf);
    tu_view_free(&y2);
    ct_tensor_free(yc), ct_tensor_free(yp);
    *idx_out = ib;
    return got;
}

static void forward_case(ct_context *ctx, const cp_case *c, size_t seed)
{
    cp_run r;
    run_setup(ctx, c, seed, NULL, &r);
    ct_ref_conv g = ref_geom(c);
    ct_ref_pool gp = {c->n, c->k, r.P, r.Q, 2, 2, 2, 2, 0, 0, false, true};
    double *dx = tu_widen(r.hx, r.nx), *dw = tu_widen(r.hw, r.nw), *db = tu_widen(r.hb, c->k);
    double *conv = tu_zeros(r.nc), *ref = tu_zeros(r.ny);
    ct_ref_conv2d_forward(&g, dx, dw, c->bias ? db : NULL, c->relu, conv);
    ct_ref_maxpool2d_forward(&gp, conv, ref);

    uint8_t *ib = NULL;
    float *got = fused_forward_checked(ctx, c, &r, &ib);
    char what[256];
    describe(what, sizeof what, "conv2d+maxpool forward y vs reference", c);
    double tol = 1e-5 * sqrt((double)((c->c / c->g) * c->r * c->s));
    tu_assert_close(what, got, ref, r.ny, tol, tol);

    free(got), free(ib), free(dx), free(dw), free(db), free(conv), free(ref);
    run_free(&r);
}

/* The backward of one case with dx and db present or NULL. */
static void backward_case(ct_context *ctx, const cp_case *c, size_t seed, bool want_dx,
                          bool want_db)
{
    cp_run r;
    run_setup(ctx, c, seed, NULL, &r);
    ct_ref_conv g = ref_geom(c);
    ct_conv2d_params p = dev_params(c);
    const ct_tensor *bias = c->bias ? r.b.t : NULL;
    uint8_t *ib = NULL;
    float *gy = fused_forward_checked(ctx, c, &r, &ib);

    float *hdy = tu_rand(r.ny, 600 + seed, -1, 1);
    float *hdx0 = tu_rand(r.nx, 700 + seed, 5, 9), *hdw0 = tu_rand(r.nw, 800 + seed, -2, 2);
    float *hdb0 = tu_rand(c->k, 900 + seed, -2, 2);

    /* the dense conv-output gradient from the device's idx and y */
    double *dense = tu_zeros(r.nc);
    for (size_t i = 0; i < r.ny; i++) {
        size_t pw = i % r.PW, ph = i / r.PW % r.PH, plane = i / (r.PW * r.PH);
        cr_assert(ib[i] < 4, "idx[%zu] = %u", i, (unsigned)ib[i]);
        if (c->relu && gy[i] <= 0.0f)
            continue;
        dense[plane * r.P * r.Q + (2 * ph + ib[i] / 2) * r.Q + 2 * pw + ib[i] % 2] = hdy[i];
    }
    double *x = tu_widen(r.hx, r.nx), *w = tu_widen(r.hw, r.nw);
    double *rdx = tu_zeros(r.nx), *rdw = tu_widen(hdw0, r.nw), *rdb = tu_widen(hdb0, c->k);
    ct_ref_conv2d_backward(&g, x, w, dense, want_dx ? rdx : NULL, rdw, want_db ? rdb : NULL);

    tu_view sdy = tu_view_new(ctx, 1 + seed, 4, (size_t[]){c->n, c->k, r.PH, r.PW}, hdy);
    tu_view sdx = tu_view_new(ctx, 13, 4, (size_t[]){c->n, c->c, c->h, c->w}, hdx0);
    tu_view sdw = tu_view_new(ctx, 15, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, hdw0);
    tu_view sdb = tu_view_new(ctx, 17, 1, (size_t[]){c->k}, hdb0);
    TU_OK(ct_conv2d_pool_backward(ctx, r.x.t, r.w.t, sdy.t, r.y.t, r.idx.t, &p, c->relu,
                                  want_dx ? sdx.t : NULL, sdw.t, want_db ? sdb.t : NULL));

    /* the unfused device path: maxpool2_bwd with the ReLU mask, then conv2d backward */
    ct_tensor *yc = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r.P, r.Q), NULL);
    ct_tensor *yp = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r.PH, r.PW), NULL);
    ct_tensor *dc = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r.P, r.Q), NULL);
    ct_tensor *udx = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), hdx0);
    ct_tensor *udw = tu_tensor(ctx, TU_SHAPE(c->k, c->c / c->g, c->r, c->s), hdw0);
    ct_tensor *udb = tu_tensor(ctx, TU_SHAPE(c->k), hdb0);
    TU_OK(ct_conv2d_forward(ctx, r.x.t, r.w.t, bias, &p, c->relu, yc));
    TU_OK(ct_maxpool2d_forward(ctx, yc, &pool22, yp));
    TU_OK(ct_maxpool2d_backward(ctx, yc, yp, sdy.t, &pool22, c->relu, dc));
    TU_OK(ct_conv2d_backward(ctx, r.x.t, r.w.t, dc, &p, want_dx ? udx : NULL, udw,
                             want_db ? udb : NULL));

    char what[256], head[128];
    const char *mode = want_dx ? (want_db ? "" : ", db NULL") : (want_db ? ", dx NULL" : "");
    snprintf(head, sizeof head, "conv2d+maxpool backward dx%s", mode);
    describe(what, sizeof what, head, c);
    float *got = tu_view_get(what, &sdx), *unf = NULL;
    if (want_dx) {
        double tol = 1e-5 * sqrt((double)((c->k / c->g) * c->r * c->s));
        tu_assert_close(what, got, rdx, r.nx, tol, tol);
        unf = tu_download(udx);
        strncat(what, " vs the unfused device path", sizeof what - strlen(what) - 1);
        tu_assert_close_f(what, got, unf, r.nx, tol, tol);
        free(unf);
    } else {
        cr_assert(memcmp(got, hdx0, r.nx * sizeof *got) == 0, "%s: dx changed while NULL", what);
    }
    free(got);

    double tol = 1e-5 * sqrt((double)(c->n * r.P * r.Q));
    snprintf(head, sizeof head, "conv2d+maxpool backward dw (+=)%s", mode);
    describe(what, sizeof what, head, c);
    got = tu_view_get(what, &sdw);
    tu_assert_close(what, got, rdw, r.nw, tol, tol);
    unf = tu_download(udw);
    strncat(what, " vs the unfused device path", sizeof what - strlen(what) - 1);
    tu_assert_close_f(what, got, unf, r.nw, tol, tol);
    free(got), free(unf);

    snprintf(head, sizeof head, "conv2d+maxpool backward db (+=)%s", mode);
    describe(what, sizeof what, head, c);
    got = tu_view_get(what, &sdb);
    tu_assert_close(what, got, rdb, c->k, tol, tol);
    unf = tu_download(udb);
    strncat(what, " vs the unfused device path", sizeof what - strlen(what) - 1);
    tu_assert_close_f(what, got, unf, c->k, tol, tol);
    free(got), free(unf);

    ct_tensor_free(yc), ct_tensor_free(yp), ct_tensor_free(dc);
    ct_tensor_free(udx), ct_tensor_free(udw), ct_tensor_free(udb);
    tu_view_free(&sdy), tu_view_free(&sdx), tu_view_free(&sdw), tu_view_free(&sdb);
    free(gy), free(ib), free(hdy), free(hdx0), free(hdw0), free(hdb0), free(dense);
    free(x), free(w), free(rdx), free(rdw), free(rdb);
    run_free(&r);
}

/* The unfused device path the fused kernels are checked against bit for bit is the conv
 * kernels' (CONV_GEMM=0): GPUs default to GEMMs, which sum in another order. */
static void kernels_not_gemm(void)
{
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=0", 1);
}
TestSuite(convpool, .init = kernels_not_gemm);

Test(convpool, forward)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        forward_case(ctx, &cases[i], i);
    ct_context_free(ctx);
}

/* dx and db present; dx NULL (a first layer: dw alone); db NULL. */
Test(convpool, backward)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++) {
        backward_case(ctx, &cases[i], i, true, true);
        backward_case(ctx, &cases[i], 20 + i, false, true);
        backward_case(ctx, &cases[i], 40 + i, true, false);
    }
    ct_context_free(ctx);
}

/* The same backward twice, from the same starting values, gives the same bits: the
 * fixed-order reductions of the flat kernel (MiniCNN conv2, one chunk), conv_bwd_w_pool
 * (MiniCNN conv1: 9 taps, the batch cut into chunks; and the 41-wide case with dx) and
 * conv_bwd_b's masked sum. */
Test(convpool, deterministic)
{
    ct_context *ctx = tu_context();
    const size_t pick[] = {0, 1, 13};
    for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++) {
        const cp_case *c = &cases[pick[i]];
        cp_run r;
        run_setup(ctx, c, 60 + i, NULL, &r);
        ct_conv2d_params p = dev_params(c);
        TU_OK(ct_conv2d_pool_forward(ctx, r.x.t, r.w.t, c->bias ? r.b.t : NULL, &p, c->relu, r.y.t,
                                     r.idx.t));
        float *hdy = tu_rand(r.ny, 70 + i, -1, 1), *hdw0 = tu_rand(r.nw, 80 + i, -2, 2);
        float *hdb0 = tu_rand(c->k, 90 + i, -2, 2);
        ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(c->n, c->k, r.PH, r.PW), hdy);
        float *out[2][3];
        for (int t = 0; t < 2; t++) {
            ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), r.hx);
            ct_tensor *dw = tu_tensor(ctx, TU_SHAPE(c->k, c->c / c->g, c->r, c->s), hdw0);
            ct_tensor *db = tu_tensor(ctx, TU_SHAPE(c->k), hdb0);
            TU_OK(ct_conv2d_pool_backward(ctx, r.x.t, r.w.t, dy, r.y.t, r.idx.t, &p, c->relu,
                                          c->c > 1 ? dx : NULL, dw, db));
            out[t][0] = tu_download(dx), out[t][1] = tu_download(dw), out[t][2] = tu_download(db);
            ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
        }
        char what[256];
        describe(what, sizeof what, "conv2d+maxpool backward twice", c);
        cr_assert(memcmp(out[0][0], out[1][0], r.nx * sizeof(float)) == 0, "%s: dx differs", what);
        cr_assert(memcmp(out[0][1], out[1][1], r.nw * sizeof(float)) == 0, "%s: dw differs", what);
        cr_assert(memcmp(out[0][2], out[1][2], c->k * sizeof(float)) == 0, "%s: db differs", what);
        for (int t = 0; t < 2; t++)
            free(out[t][0]), free(out[t][1]), free(out[t][2]);
        ct_tensor_free(dy);
        free(hdy), free(hdw0), free(hdb0);
        run_free(&r);
    }
    ct_context_free(ctx);
}

/* Which convolutions have the fused path, and the errors of the two calls. */
Test(convpool, errors)
{
    ct_context *ctx = tu_context();
    const size_t in[3] = {32, 14, 14};
    ct_conv2d_params p = {1, 1, 1, 1, 1, 1, 1};
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &p));
    cr_assert(!ct_conv2d_pool_fusable(NULL, in, 64, 3, 3, &p));
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, NULL));
    ct_conv2d_params s2 = {2, 2, 1, 1, 1, 1, 1}, s12 = {1, 2, 1, 1, 1, 1, 1};
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &s2), "stride 2");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &s12), "stride 1x2");
    /* padding up to (kernel-1)*dilation */
    ct_conv2d_params pad2 = {1, 1, 2, 2, 1, 1, 1}, pad3 = {1, 1, 3, 1, 1, 1, 1};
    ct_conv2d_params pad4d = {1, 1, 4, 4, 2, 2, 1}, pad5d = {1, 1, 1, 5, 2, 2, 1};
    ct_conv2d_params pad1x1 = {1, 1, 0, 1, 1, 1, 1}, pad0 = {1, 1, 0, 0, 1, 1, 1};
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &pad2), "pad 2, 3x3");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &pad3), "pad 3x1, 3x3");
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &pad4d), "pad 4, dilation 2");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &pad5d), "pad 1x5, dilation 2");
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 1, 1, &pad0), "1x1, pad 0");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 1, 1, &pad1x1), "1x1, pad 0x1");
    /* output channels per group filling the vectors (round_up(K/groups, 32)*4 <= 5*K/groups) */
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 8, 3, 3, &p), "K = 8");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 25, 3, 3, &p), "K = 25");
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 26, 3, 3, &p), "K = 26");
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 31, 3, 3, &p), "K = 31");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 48, 3, 3, &p), "K = 48");
    ct_conv2d_params g2 = {1, 1, 1, 1, 1, 1, 2}, g4 = {1, 1, 1, 1, 1, 1, 4};
    cr_assert(ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &g2), "K/groups = 32");
    cr_assert(!ct_conv2d_pool_fusable(ctx, in, 64, 3, 3, &g4), "K/groups = 16");
    /* conv output at least 2x2 */
    cr_assert(ct_conv2d_pool_fusable(ctx, (size_t[]){4, 4, 4}, 32, 3, 3, &pad0), "2x2 output");
    cr_assert(!ct_conv2d_pool_fusable(ctx, (size_t[]){4, 4, 3}, 32, 3, 3, &pad0), "2x1 output");

    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(2, 4, 8, 8), NULL);
    ct_tensor *w = tu_tensor(ctx, TU_SHAPE(32, 4, 3, 3), NULL);
    ct_tensor *w8 = tu_tensor(ctx, TU_SHAPE(8, 4, 3, 3), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(2, 32, 4, 4), NULL);
    ct_tensor *y8 = tu_tensor(ctx, TU_SHAPE(2, 8, 4, 4), NULL);
    ct_tensor *ys2 = tu_tensor(ctx, TU_SHAPE(2, 32, 2, 2), NULL);
    ct_tensor *ybad = tu_tensor(ctx, TU_SHAPE(2, 32, 4, 3), NULL);
    ct_tensor *yconv = tu_tensor(ctx, TU_SHAPE(2, 32, 8, 8), NULL); /* the unpooled shape */
    ct_tensor *idx = tu_tensor(ctx, TU_SHAPE(256), NULL);           /* 1024 bytes: exact */
    ct_tensor *idx_small = tu_tensor(ctx, TU_SHAPE(255), NULL);
    ct_tensor *dw = tu_tensor(ctx, TU_SHAPE(32, 4, 3, 3), NULL);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, NULL, &s2, true, ys2, idx), CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, NULL, &pad3, true, y, idx), CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w8, NULL, &p, true, y8, idx), CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w8, y8, y8, idx, &p, true, NULL, w8, NULL),
                 CT_ERR_UNSUPPORTED);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, NULL, &p, true, ybad, idx), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, NULL, &p, true, yconv, idx), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, NULL, &p, true, y, idx_small), CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_pool_forward(ctx, x, w, w, &p, true, y, idx), CT_ERR_SHAPE); /* bias */
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w, y, y, NULL, &p, true, NULL, dw, NULL),
                 CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w, y, NULL, idx, &p, true, NULL, dw, NULL),
                 CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w, y, y, idx_small, &p, true, NULL, dw, NULL),
                 CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w, ybad, y, idx, &p, true, NULL, dw, NULL),
                 CT_ERR_SHAPE);
    cr_assert_eq(ct_conv2d_pool_backward(ctx, x, w, y, y, idx, &p, true, NULL, w8, NULL),
                 CT_ERR_SHAPE);
    ct_error_clear();
    /* idx of exactly one byte per pooled element is enough */
    TU_OK(ct_conv2d_pool_forward(ctx, x, w, NULL, &p, true, y, idx));
    TU_OK(ct_conv2d_pool_backward(ctx, x, w, y, y, idx, &p, true, NULL, dw, NULL));
    ct_tensor_free(x), ct_tensor_free(w), ct_tensor_free(w8), ct_tensor_free(y);
    ct_tensor_free(y8), ct_tensor_free(ys2), ct_tensor_free(ybad), ct_tensor_free(yconv);
    ct_tensor_free(idx), ct_tensor_free(idx_small), ct_tensor_free(dw);
    ct_context_free(ctx);
}

/* A NaN input pixel (without ReLU) makes the 3x3 block of conv outputs around it NaN in
 * every channel. With x[0, 0, 1, 1] NaN and pad 1 that block is rows and columns 0..2: it
 * fills window (0, 0) and touches windows (0, 1), (1, 0) and (1, 1), whose maxima are
 * then NaN at the last NaN in scan order (pool.cl's rule, the reference's too): idx 3, 2
 * (of (0, 2) and (1, 2)), 1 (of (2, 0) and (2, 1)) and 0. Windows further away are
 * finite. The second sample is all finite. The checks of the forward cases also run
 * (unfused path bit for bit, NaN for NaN; idx by the rule). With ReLU the same: ReLU
 * keeps a NaN (`a < 0 ? 0 : a`, torch.relu's rule, in both device paths and in the
 * reference), and its backward passes a NaN's gradient (torch's threshold_backward cuts
 * only where the output is <= 0), so db sums the pooled gradient of every window whose
 * pooled output is NaN or > 0 (torch 2.15, for reference: a 4x4 input with a NaN at
 * (1, 1) through Conv2d(1, 2, 3, padding=1), ReLU and a 2x2 pool gives four NaN windows
 * per channel and, for a gradient of ones, db = 4 per channel). */
Test(convpool, nan)
{
    ct_context *ctx = tu_context();
    for (int relu = 0; relu < 2; relu++) {
        const cp_case c = {2, 2, 6, 9, 32, 3, 3, 1, 1, 1, 1, 1, true, relu};
        size_t nx = c.n * c.c * c.h * c.w;
        float *hx = tu_rand(nx, 5, -1, 1);
        hx[1 * c.w + 1] = NAN;
        cp_run r;
        run_setup(ctx, &c, 30 + relu, hx, &r);
        ct_ref_conv g = ref_geom(&c);
        ct_ref_pool gp = {c.n, c.k, r.P, r.Q, 2, 2, 2, 2, 0, 0, false, true};
        double *dx = tu_widen(r.hx, r.nx), *dw = tu_widen(r.hw, r.nw), *db = tu_widen(r.hb, c.k);
        double *conv = tu_zeros(r.nc), *ref = tu_zeros(r.ny);
        ct_ref_conv2d_forward(&g, dx, dw, db, c.relu, conv);
        ct_ref_maxpool2d_forward(&gp, conv, ref);

        uint8_t *ib = NULL;
        float *got = fused_forward_checked(ctx, &c, &r, &ib);
        char what[256];
        describe(what, sizeof what, "conv2d+maxpool forward with a NaN input", &c);
        double tol = 1e-5 * sqrt((double)(c.c * c.r * c.s));
        tu_assert_close(what, got, ref, r.ny, tol, tol);
        for (size_t i = 0; i < r.ny; i++) {
            size_t pw = i % r.PW, ph = i / r.PW % r.PH, n = i / (r.PW * r.PH * c.k);
            bool hit = n == 0 && ph <= 1 && pw <= 1;
            cr_assert(hit ? isnan(got[i]) : !isnan(got[i]), "%s: y[%zu] (ph=%zu pw=%zu) = %g", what,
                      i, ph, pw, (double)got[i]);
            if (hit)
                cr_assert_eq(ib[i], (unsigned)(3 - (2 * ph + pw)),
                             "%s: idx[%zu] (ph=%zu pw=%zu) = %u", what, i, ph, pw, (unsigned)ib[i]);
        }

        /* db alone (dw gets NaN from the NaN input; dx not asked for) */
        float *hdy = tu_rand(r.ny, 40 + relu, -1, 1);
        double *rdb = tu_zeros(c.k);
        for (size_t i = 0; i < r.ny; i++)
            if (!(relu && got[i] <= 0.0f))
                rdb[i / (r.PH * r.PW) % c.k] += hdy[i];
        tu_view sdy = tu_view_new(ctx, 2, 4, (size_t[]){c.n, c.k, r.PH, r.PW}, hdy);
        ct_tensor *sdw = tu_tensor(ctx, TU_SHAPE(c.k, c.c, c.r, c.s), NULL);
        ct_tensor *sdb = tu_tensor(ctx, TU_SHAPE(c.k), NULL);
        TU_OK(ct_tensor_fill(sdw, 0.0f));
        TU_OK(ct_tensor_fill(sdb, 0.0f));
        ct_conv2d_params p = dev_params(&c);
        TU_OK(ct_conv2d_pool_backward(ctx, r.x.t, r.w.t, sdy.t, r.y.t, r.idx.t, &p, relu, NULL, sdw,
                                      sdb));
        describe(what, sizeof what, "conv2d+maxpool backward db with a NaN input", &c);
        float *gdb = tu_download(sdb);
        double tb = 1e-5 * sqrt((double)(c.n * r.P * r.Q));
        tu_assert_close(what, gdb, rdb, c.k, tb, tb);
        free(gdb), free(hdy), free(rdb);
        ct_tensor_free(sdw), ct_tensor_free(sdb), tu_view_free(&sdy);

        free(got), free(ib), free(hx), free(dx), free(dw), free(db), free(conv), free(ref);
        run_free(&r);
    }
    ct_context_free(ctx);
}
