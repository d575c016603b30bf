/* Pooling gradients against central finite differences of L = sum(y * g), g fixed random,
 * for every input element:
 *
 * 1. The reference (lib/ref/pool_ref.c) in double, h = 1e-7. Max pooling is piecewise
 *    linear: with distinct random inputs no perturbation of 1e-7 changes a window's
 *    argmax, and average pooling is linear, so differences carry rounding only
 *    (~1e-16 * |L| / h ~ 1e-8): atol = rtol = 1e-6. The fused ReLU of max-pool backward
 *    is checked as the gradient of z -> maxpool(relu(z)).
 * 2. The device ops in float. Max-pool inputs sit on a grid of multiples of 1/64, all
 *    distinct and away from 0, and the step is h = 1/256 (exact in float): no argmax or
 *    ReLU changes side, y copies inputs exactly and L sums exact products in double, so
 *    the differences are exact up to double rounding: atol 1e-6. Average pooling (linear)
 *    uses h = 0.5; each affected output carries ~1e-7 of float rounding: atol = rtol = 1e-5.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "testutil.h"

typedef struct pcase {
    size_t n, c, h, w, kh, kw, sh, sw, ph, pw;
    bool ceil, include_pad;
} pcase;

static const pcase cases[] = {
    {2, 2, 6, 6, 2, 2, 2, 2, 0, 0, false, true},  /* MiniCNN-like */
    {1, 2, 7, 6, 3, 3, 2, 2, 1, 1, true, true},   /* overlapping, padded, ceil */
    {1, 2, 7, 6, 3, 3, 2, 2, 1, 1, true, false},  /* same without counting padding */
    {2, 1, 5, 8, 3, 2, 1, 3, 1, 1, false, false}, /* stride 1 rows, non-square */
    {1, 3, 5, 5, 2, 2, 3, 3, 1, 1, true, true},   /* ceil drops a window */
};
#define NCASES (sizeof cases / sizeof cases[0])

static ct_ref_pool ref_geom(const pcase *c)
{
    return (ct_ref_pool){c->n,  c->c,  c->h,  c->w,  c->kh,   c->kw,
                         c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
}

enum { OP_MAX, OP_MAX_RELU, OP_AVG };
static const char *op_name[] = {"maxpool", "maxpool(relu)", "avgpool"};

static void ref_forward(int op, const ct_ref_pool *g, const double *z, double *xbuf, double *y)
{
    size_t n = g->n * g->c * g->h * g->w;
    if (op == OP_AVG) {
        ct_ref_avgpool2d_forward(g, z, y);
        return;
    }
    for (size_t i = 0; i < n; i++)
        xbuf[i] = op == OP_MAX_RELU && !(z[i] > 0.0) ? 0.0 : z[i];
    ct_ref_maxpool2d_forward(g, xbuf, y);
}

static void ref_case(const pcase *c, size_t idx, int op)
{
    ct_ref_pool g = ref_geom(c);
    size_t P = ct_ref_pool_out_size(c->h, c->kh, c->sh, c->ph, c->ceil);
    size_t Q = ct_ref_pool_out_size(c->w, c->kw, c->sw, c->pw, c->ceil);
    size_t nx = c->n * c->c * c->h * c->w, ny = c->n * c->c * P * Q;
    float *fz = tu_rand(nx, 5 + idx, -1, 1), *fg = tu_rand(ny, 15 + idx, -1, 1);
    double *z = tu_widen(fz, nx), *gy = tu_widen(fg, ny);
    double *xbuf = tu_zeros(nx), *y = tu_zeros(ny), *dx = tu_zeros(nx), *fd = tu_zeros(nx);

    if (op == OP_AVG) {
        ct_ref_avgpool2d_backward(&g, gy, dx);
    } else {
        for (size_t i = 0; i < nx; i++)
            xbuf[i] = op == OP_MAX_RELU && !(z[i] > 0.0) ? 0.0 : z[i];
        ct_ref_maxpool2d_backward(&g, xbuf, gy, op == OP_MAX_RELU, dx);
    }
    const double h = 1e-7;
    for (size_t i = 0; i < nx; i++) {
        double keep = z[i], lp = 0.0, lm = 0.0;
        z[i] = keep + h;
        ref_forward(op, &g, z, xbuf, y);
        for (size_t j = 0; j < ny; j++)
            lp += y[j] * gy[j];
        z[i] = keep - h;
        ref_forward(op, &g, z, xbuf, y);
        for (size_t j = 0; j < ny; j++)
            lm += y[j] * gy[j];
        z[i] = keep;
        fd[i] = (lp - lm) / (2 * h);
    }
    char what[96];
    snprintf(what, sizeof what, "ref %s case %zu dx", op_name[op], idx);
    tu_assert_close_d(what, dx, fd, nx, 1e-6, 1e-6);
    free(fz), free(fg), free(z), free(gy), free(xbuf), free(y), free(dx), free(fd);
}

Test(pool_grad, reference_vs_finite_differences)
{
    for (size_t i = 0; i < NCASES; i++)
        for (int op = OP_MAX; op <= OP_AVG; op++)
            ref_case(&cases[i], i, op);
    /* global average pooling: linear, so exact up to rounding */
    const size_t n = 2, c = 3, h = 4, w = 5, nx = n * c * h * w;
    float *fx = tu_rand(nx, 1, -1, 1), *fg = tu_rand(n * c, 2, -1, 1);
    double *x = tu_widen(fx, nx), *gy = tu_widen(fg, n * c), *y = tu_zeros(n * c);
    double *dx = tu_zeros(nx), *fd = tu_zeros(nx);
    ct_ref_gap_backward(n, c, h, w, gy, dx);
    for (size_t i = 0; i < nx; i++) {
        double keep = x[i], lp = 0.0, lm = 0.0;
        x[i] = keep + 1e-7;
        ct_ref_gap_forward(n, c, h, w, x, y);
        for (size_t j = 0; j < n * c; j++)
            lp += y[j] * gy[j];
        x[i] = keep - 1e-7;
        ct_ref_gap_forward(n, c, h, w, x, y);
        for (size_t j = 0; j < n * c; j++)
            lm += y[j] * gy[j];
        x[i] = keep;
        fd[i] = (lp - lm) / 2e-7;
    }
    tu_assert_close_d("ref global average pool dx", dx, fd, nx, 1e-6, 1e-6);
    free(fx), free(fg), free(x), free(gy), free(y), free(dx), free(fd);
}

/* ---- the device ops ----------------------------------------------------------------- */

/* Distinct values k/64 (k != 0), shuffled: no ties, none near 0. */
static float *grid_values(size_t n, uint64_t seed)
{
    float *v = malloc(n * sizeof *v);
    cr_assert(v != NULL);
    for (size_t i = 0; i < n; i++) {
        long k = (long)i - (long)(n / 2);
        v[i] = (float)(k >= 0 ? k + 1 : k) / 64.0f;
    }
    tu_rng r = {seed};
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(tu_rng_next(&r) % i);
        float t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
    return v;
}

static double dev_loss(ct_context *ctx, int op, const ct_pool2d_params *p, ct_tensor *x,
                       ct_tensor *y, const float *hz, const float *hg, size_t nx, size_t ny)
{
    float *hx = malloc(nx * sizeof *hx);
    cr_assert(hx != NULL);
    for (size_t i = 0; i < nx; i++)
        hx[i] = op == OP_MAX_RELU && !(hz[i] > 0.0f) ? 0.0f : hz[i];
    TU_OK(ct_tensor_upload(x, hx, nx));
    if (op == OP_AVG)
        TU_OK(ct_avgpool2d_forward(ctx, x, p, y));
    else
        TU_OK(ct_maxpool2d_forward(ctx, x, p, y));
    float *hy = tu_download(y);
    double l = 0.0;
    for (size_t i = 0; i < ny; i++)
        l += (double)hy[i] * hg[i];
    free(hy), free(hx);
    return l;
}

static void dev_case(ct_context *ctx, const pcase *c, size_t idx, int op)
{
    ct_pool2d_params p = {c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
    size_t P = ct_ref_pool_out_size(c->h, c->kh, c->sh, c->ph, c->ceil);
    size_t Q = ct_ref_pool_out_size(c->w, c->kw, c->sw, c->pw, c->ceil);
    size_t nx = c->n * c->c * c->h * c->w, ny = c->n * c->c * P * Q;
    float *hz = op == OP_AVG ? tu_rand(nx, 25 + idx, -1, 1) : grid_values(nx, 25 + idx);
    float *hg = tu_rand(ny, 35 + idx, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(c->n, c->c, P, Q), NULL);
    ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(c->n, c->c, P, Q), hg);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), NULL);
    (void)dev_loss(ctx, op, &p, x, y, hz, hg, nx, ny); /* x (after the ReLU) and y */
    if (op == OP_AVG)
        TU_OK(ct_avgpool2d_backward(ctx, dy, &p, dx));
    else
        TU_OK(ct_maxpool2d_backward(ctx, x, y, dy, &p, op == OP_MAX_RELU, dx));
    float *gdx = tu_download(dx);

    double *fd = tu_zeros(nx);
    const float h = op == OP_AVG ? 0.5f : 1.0f / 256;
    for (size_t i = 0; i < nx; i++) {
        float keep = hz[i];
        hz[i] = keep + h;
        double lp = dev_loss(ctx, op, &p, x, y, hz, hg, nx, ny);
        float up = hz[i];
        hz[i] = keep - h;
        double lm = dev_loss(ctx, op, &p, x, y, hz, hg, nx, ny);
        float down = hz[i];
        hz[i] = keep;
        fd[i] = (lp - lm) / ((double)up - (double)down);
    }
    char what[96];
    snprintf(what, sizeof what, "device %s case %zu dx vs finite differences", op_name[op], idx);
    if (op == OP_AVG)
        tu_assert_close(what, gdx, fd, nx, 1e-5, 1e-5);
    else
        tu_assert_close(what, gdx, fd, nx, 1e-6, 0.0);
    free(hz), free(hg), free(gdx), free(fd);
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(dy), ct_tensor_free(dx);
}

Test(pool_grad, device_vs_finite_differences)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        for (int op = OP_MAX; op <= OP_AVG; op++)
            dev_case(ctx, &cases[i], i, op);

    /* global average pooling (linear): h = 0.5, atol = rtol = 1e-5 as average pooling */
    const size_t n = 2, c = 3, h = 4, w = 5, nx = n * c * h * w;
    float *hx = tu_rand(nx, 3, -1, 1), *hg = tu_rand(n * c, 4, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(n, c, h, w), hx);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(n, c), NULL), *dy = tu_tensor(ctx, TU_SHAPE(n, c), hg);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(n, c, h, w), NULL);
    TU_OK(ct_gap_backward(ctx, dy, dx));
    float *gdx = tu_download(dx);
    double *fd = tu_zeros(nx);
    for (size_t i = 0; i < nx; i++) {
        double l[2];
        float keep = hx[i], v[2] = {keep + 0.5f, keep - 0.5f};
        for (int sgn = 0; sgn < 2; sgn++) {
            hx[i] = v[sgn];
            TU_OK(ct_tensor_upload(x, hx, nx));
            TU_OK(ct_gap_forward(ctx, x, y));
            float *hy = tu_download(y);
            l[sgn] = 0.0;
            for (size_t j = 0; j < n * c; j++)
                l[sgn] += (double)hy[j] * hg[j];
            free(hy);
        }
        hx[i] = keep;
        fd[i] = (l[0] - l[1]) / ((double)v[0] - (double)v[1]);
    }
    tu_assert_close("device global average pool dx vs finite differences", gdx, fd, nx, 1e-5, 1e-5);
    free(hx), free(hg), free(gdx), free(fd);
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(dy), ct_tensor_free(dx);
    ct_context_free(ctx);
}
