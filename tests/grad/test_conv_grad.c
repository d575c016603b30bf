/* conv2d gradients against central finite differences of a scalar loss L = sum(y * g)
 * (g fixed random), for every element of x, w and b:
 *
 * 1. The reference (lib/ref/conv_ref.c) in double: its backward against differences of
 *    its own forward, so the reference the op tests trust is itself checked. Conv is
 *    linear in each argument, so central differences have no truncation error; with
 *    h = 1e-6 the rounding error is about 1e-16 * |L| / h ~ 1e-9: atol = rtol = 1e-7.
 *    With the fused ReLU, backward of the masked dy (dy * (y > 0)), as the contract asks
 *    of callers, must match differences of the forward with ReLU (random data keeps
 *    pre-activations far from 0 compared with h).
 * 2. The device op in float: ct_conv2d_backward against differences of ct_conv2d_forward.
 *    Linearity again allows a large step, h = 0.5 (exact in float), and the forward is
 *    deterministic, so outputs that do not depend on the perturbed element cancel
 *    exactly; the rest carry float rounding of ~1e-7 * |y| each, over 2h = 1:
 *    atol = rtol = 1e-4 leaves a wide margin and still catches any gradient error of one
 *    term (~|x w| ~ 0.1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "testutil.h"

typedef struct gcase {
    size_t n, c, h, w, k, r, s, sh, sw, ph, pw, dh, dw, g;
} gcase;

static const gcase cases[] = {
    {2, 4, 5, 6, 6, 3, 3, 2, 1, 1, 1, 1, 1, 2}, /* stride 2x1, groups 2 */
    {1, 3, 7, 6, 4, 2, 3, 1, 2, 2, 1, 2, 1, 1}, /* dilation 2x1, stride 1x2, pad 2x1 */
    {2, 2, 6, 5, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* plain 3x3 same */
    {1, 4, 5, 5, 4, 3, 1, 3, 1, 0, 0, 1, 1, 4}, /* depthwise, stride 3 */
};
#define NCASES (sizeof cases / sizeof cases[0])

static ct_ref_conv ref_geom(const gcase *c)
{
    return (ct_ref_conv){c->n,  c->c,  c->h,  c->w,  c->k,  c->r,  c->s,
                         c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
}

typedef struct sizes {
    size_t p, q, nx, nw, ny;
} sizes;

static sizes sizes_of(const gcase *c)
{
    sizes z;
    z.p = ct_ref_conv_out_size(c->h, c->r, c->sh, c->ph, c->dh);
    z.q = ct_ref_conv_out_size(c->w, c->s, c->sw, c->pw, c->dw);
    z.nx = c->n * c->c * c->h * c->w;
    z.nw = c->k * (c->c / c->g) * c->r * c->s;
    z.ny = c->n * c->k * z.p * z.q;
    return z;
}

static double ref_loss(const ct_ref_conv *g, const double *x, const double *w, const double *b,
                       bool relu, const double *gy, double *y, size_t ny)
{
    ct_ref_conv2d_forward(g, x, w, b, relu, y);
    double l = 0.0;
    for (size_t i = 0; i < ny; i++)
        l += y[i] * gy[i];
    return l;
}

/* d L / d v[i] for every i, by central differences of ref_loss, into fd. */
static void ref_fd(const ct_ref_conv *g, double *x, double *w, double *b, bool relu,
                   const double *gy, double *y, size_t ny, double *v, size_t nv, double *fd)
{
    const double h = 1e-6;
    for (size_t i = 0; i < nv; i++) {
        double keep = v[i];
        v[i] = keep + h;
        double lp = ref_loss(g, x, w, b, relu, gy, y, ny);
        v[i] = keep - h;
        double lm = ref_loss(g, x, w, b, relu, gy, y, ny);
        v[i] = keep;
        fd[i] = (lp - lm) / (2 * h);
    }
}

static void ref_case(const gcase *c, size_t idx, bool relu)
{
    ct_ref_conv g = ref_geom(c);
    sizes z = sizes_of(c);
    float *fx = tu_rand(z.nx, 10 + idx, -1, 1), *fw = tu_rand(z.nw, 20 + idx, -1, 1);
    float *fb = tu_rand(c->k, 30 + idx, -1, 1), *fg = tu_rand(z.ny, 40 + idx, -1, 1);
    double *x = tu_widen(fx, z.nx), *w = tu_widen(fw, z.nw), *b = tu_widen(fb, c->k);
    double *gy = tu_widen(fg, z.ny), *y = tu_zeros(z.ny);
    double *dx = tu_zeros(z.nx), *dw = tu_zeros(z.nw), *db = tu_zeros(c->k);
    double *fdx = tu_zeros(z.nx), *fdw = tu_zeros(z.nw), *fdb = tu_zeros(c->k);

    /* dy = g, masked by the ReLU when the forward had one */
    ct_ref_conv2d_forward(&g, x, w, b, relu, y);
    double *dy = tu_zeros(z.ny);
    for (size_t i = 0; i < z.ny; i++)
        dy[i] = relu && !(y[i] > 0.0) ? 0.0 : gy[i];
    ct_ref_conv2d_backward(&g, x, w, dy, dx, dw, db);
    ref_fd(&g, x, w, b, relu, gy, y, z.ny, x, z.nx, fdx);
    ref_fd(&g, x, w, b, relu, gy, y, z.ny, w, z.nw, fdw);
    ref_fd(&g, x, w, b, relu, gy, y, z.ny, b, c->k, fdb);
    char what[96];
    snprintf(what, sizeof what, "ref conv case %zu%s dx", idx, relu ? " relu" : "");
    tu_assert_close_d(what, dx, fdx, z.nx, 1e-7, 1e-7);
    snprintf(what, sizeof what, "ref conv case %zu%s dw", idx, relu ? " relu" : "");
    tu_assert_close_d(what, dw, fdw, z.nw, 1e-7, 1e-7);
    snprintf(what, sizeof what, "ref conv case %zu%s db", idx, relu ? " relu" : "");
    tu_assert_close_d(what, db, fdb, c->k, 1e-7, 1e-7);

    free(fx), free(fw), free(fb), free(fg), free(x), free(w), free(b), free(gy), free(y);
    free(dy), free(dx), free(dw), free(db), free(fdx), free(fdw), free(fdb);
}

Test(conv_grad, reference_vs_finite_differences)
{
    for (size_t i = 0; i < NCASES; i++) {
        ref_case(&cases[i], i, false);
        ref_case(&cases[i], i, true);
    }
}

/* ---- the device op ---------------------------------------------------------------- */

typedef struct dev {
    ct_context *ctx;
    ct_conv2d_params p;
    ct_tensor *x, *w, *b, *y;
    float *hx, *hw, *hb, *hg;
    sizes z;
} dev;

static double dev_loss(dev *d)
{
    TU_OK(ct_tensor_upload(d->x, d->hx, d->z.nx));
    TU_OK(ct_tensor_upload(d->w, d->hw, d->z.nw));
    TU_OK(ct_tensor_upload(d->b, d->hb, ct_tensor_numel(d->b)));
    TU_OK(ct_conv2d_forward(d->ctx, d->x, d->w, d->b, &d->p, false, d->y));
    float *y = tu_download(d->y);
    double l = 0.0;
    for (size_t i = 0; i < d->z.ny; i++)
        l += (double)y[i] * d->hg[i];
    free(y);
    return l;
}

static void dev_fd(dev *d, float *v, size_t nv, double *fd)
{
    const float h = 0.5f;
    for (size_t i = 0; i < nv; i++) {
        float keep = v[i];
        v[i] = keep + h;
        double lp = dev_loss(d);
        float up = v[i];
        v[i] = keep - h;
        double lm = dev_loss(d);
        float down = v[i];
        v[i] = keep;
        fd[i] = (lp - lm) / ((double)up - (double)down);
    }
}

static void dev_case(ct_context *ctx, const gcase *c, size_t idx)
{
    dev d = {0};
    d.ctx = ctx;
    d.p = (ct_conv2d_params){c->sh, c->sw, c->ph, c->pw, c->dh, c->dw, c->g};
    d.z = sizes_of(c);
    d.hx = tu_rand(d.z.nx, 50 + idx, -1, 1);
    d.hw = tu_rand(d.z.nw, 60 + idx, -1, 1);
    d.hb = tu_rand(c->k, 70 + idx, -1, 1);
    d.hg = tu_rand(d.z.ny, 80 + idx, -1, 1);
    d.x = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), d.hx);
    d.w = tu_tensor(ctx, TU_SHAPE(c->k, c->c / c->g, c->r, c->s), d.hw);
    d.b = tu_tensor(ctx, TU_SHAPE(c->k), d.hb);
    d.y = tu_tensor(ctx, TU_SHAPE(c->n, c->k, d.z.p, d.z.q), NULL);
    ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(c->n, c->k, d.z.p, d.z.q), d.hg);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(c->n, c->c, c->h, c->w), NULL), *dw = NULL, *db = NULL;
    TU_OK(ct_tensor_zeros(ctx, 4, (size_t[]){c->k, c->c / c->g, c->r, c->s}, &dw));
    TU_OK(ct_tensor_zeros(ctx, 1, (size_t[]){c->k}, &db));
    TU_OK(ct_conv2d_backward(ctx, d.x, d.w, dy, &d.p, dx, dw, db));
    float *gdx = tu_download(dx), *gdw = tu_download(dw), *gdb = tu_download(db);

    double *fdx = tu_zeros(d.z.nx), *fdw = tu_zeros(d.z.nw), *fdb = tu_zeros(c->k);
    dev_fd(&d, d.hx, d.z.nx, fdx);
    dev_fd(&d, d.hw, d.z.nw, fdw);
    dev_fd(&d, d.hb, c->k, fdb);
    char what[96];
    snprintf(what, sizeof what, "device conv case %zu dx vs finite differences", idx);
    tu_assert_close(what, gdx, fdx, d.z.nx, 1e-4, 1e-4);
    snprintf(what, sizeof what, "device conv case %zu dw vs finite differences", idx);
    tu_assert_close(what, gdw, fdw, d.z.nw, 1e-4, 1e-4);
    snprintf(what, sizeof what, "device conv case %zu db vs finite differences", idx);
    tu_assert_close(what, gdb, fdb, c->k, 1e-4, 1e-4);

    free(gdx), free(gdw), free(gdb), free(fdx), free(fdw), free(fdb);
    free(d.hx), free(d.hw), free(d.hb), free(d.hg);
    ct_tensor_free(d.x), ct_tensor_free(d.w), ct_tensor_free(d.b), ct_tensor_free(d.y);
    ct_tensor_free(dy), ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
}

Test(conv_grad, device_vs_finite_differences)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        dev_case(ctx, &cases[i], i);
    ct_context_free(ctx);
}
