/* tests/grad/test_elem_grad.c — gradients of linear, activations, dropout and batch norm
 * against central finite differences.
 *
 * The scalar is L = sum_i r_i * y_i with fixed random r, so dL/dy = r is the dy given to
 * the backward. Finite differences are taken on the double-precision reference forward
 * (lib/ref): dL/dv ~ (L(v + h) - L(v - h)) / (v+h - v-h), with the two perturbed values
 * rounded to float first (the reference reads float inputs) and the actual step used as
 * the denominator. h = 2^-10: the truncation error h^2/6 * |L'''| is ~1e-7 for these
 * smooth, O(1)-scaled functions, and L is evaluated in double, so the difference quotient
 * is good to ~1e-6. Two checks per gradient:
 *   - the reference backward (double) against it: atol 1e-5, rtol 1e-4 (validates the
 *     reference's formulas, which the op tests rely on);
 *   - the device backward (float) against it: atol 1e-4, rtol 1e-3 (float sums of at most
 *     a few dozen terms, ~1e-6 relative, plus the finite-difference error).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/elem_ref.h"
#include "testutil.h"

#define FD_H 0x1p-10
#define REF_ATOL 1e-5
#define REF_RTOL 1e-4
#define DEV_ATOL 1e-4
#define DEV_RTOL 1e-3

typedef double (*loss_fn)(void *u);

/* Central differences of f with respect to each of the n floats of v. */
static void fd_grad(float *v, size_t n, loss_fn f, void *u, double *out)
{
    for (size_t i = 0; i < n; i++) {
        float save = v[i];
        float vp = (float)((double)save + FD_H), vm = (float)((double)save - FD_H);
        v[i] = vp;
        double lp = f(u);
        v[i] = vm;
        double lm = f(u);
        v[i] = save;
        out[i] = (lp - lm) / ((double)vp - (double)vm);
    }
}

static double dot(const float *r, const double *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (double)r[i] * y[i];
    return s;
}

static void check_both(const char *what, const float *dev, const double *ref_bwd,
                       const double *fd, size_t n)
{
    char buf[96];
    snprintf(buf, sizeof buf, "%s: reference backward vs finite differences", what);
    tu_assert_close_d(buf, ref_bwd, fd, n, REF_ATOL, REF_RTOL);
    snprintf(buf, sizeof buf, "%s: device backward vs finite differences", what);
    tu_assert_close(buf, dev, fd, n, DEV_ATOL, DEV_RTOL);
}

/* ---- linear ---------------------------------------------------------------------- */

typedef struct lin_u {
    float *x, *w, *b, *r;
    size_t n, in, out;
    double *y;
} lin_u;

static double lin_loss(void *p)
{
    lin_u *u = p;
    ct_ref_linear_forward(u->x, u->w, u->b, false, u->n, u->in, u->out, u->y);
    return dot(u->r, u->y, u->n * u->out);
}

Test(grad, linear)
{
    ct_context *ctx = tu_context();
    lin_u u = {.n = 3, .in = 5, .out = 4};
    size_t nx = u.n * u.in, nw = u.out * u.in, ny = u.n * u.out;
    u.x = tu_rand(nx, 1, -1, 1), u.w = tu_rand(nw, 2, -1, 1), u.b = tu_rand(u.out, 3, -1, 1);
    u.r = tu_rand(ny, 4, -1, 1), u.y = tu_zeros(ny);
    double *fx = tu_zeros(nx), *fw = tu_zeros(nw), *fb = tu_zeros(u.out);
    fd_grad(u.x, nx, lin_loss, &u, fx);
    fd_grad(u.w, nw, lin_loss, &u, fw);
    fd_grad(u.b, u.out, lin_loss, &u, fb);
    double *rx = tu_zeros(nx), *rw = tu_zeros(nw), *rb = tu_zeros(u.out);
    ct_ref_linear_backward(u.x, u.w, u.r, u.n, u.in, u.out, rx, rw, rb);

    tu_view tx = TU_VIEW(ctx, 1, u.x, u.n, u.in), tw = TU_VIEW(ctx, 2, u.w, u.out, u.in);
    tu_view tdy = TU_VIEW(ctx, 3, u.r, u.n, u.out), tdx = TU_VIEW(ctx, 4, NULL, u.n, u.in);
    float zw[20] = {0}, zb[4] = {0};
    tu_view tdw = TU_VIEW(ctx, 5, zw, u.out, u.in), tdb = TU_VIEW(ctx, 6, zb, u.out);
    TU_OK(ct_linear_backward(ctx, tx.t, tw.t, tdy.t, tdx.t, tdw.t, tdb.t));
    float *dx = tu_view_get("dx", &tdx), *dw = tu_view_get("dw", &tdw),
          *db = tu_view_get("db", &tdb);
    check_both("linear dx", dx, rx, fx, nx);
    check_both("linear dw", dw, rw, fw, nw);
    check_both("linear db", db, rb, fb, u.out);
    free(dx), free(dw), free(db), free(fx), free(fw), free(fb), free(rx), free(rw), free(rb);
    free(u.x), free(u.w), free(u.b), free(u.r), free(u.y);
    tu_view_free(&tx), tu_view_free(&tw), tu_view_free(&tdy), tu_view_free(&tdx),
        tu_view_free(&tdw), tu_view_free(&tdb);
    ct_context_free(ctx);
}

/* ---- activations ----------------------------------------------------------------- */

typedef struct act_u {
    int kind;
    float slope, *x, *r;
    size_t n;
    double *y;
} act_u;

static double act_loss(void *p)
{
    act_u *u = p;
    ct_ref_act_forward(u->kind, u->slope, u->x, u->n, u->y);
    return dot(u->r, u->y, u->n);
}

Test(grad, activations)
{
    ct_context *ctx = tu_context();
    static const ct_act_kind kinds[] = {CT_ACT_RELU, CT_ACT_LEAKY_RELU, CT_ACT_SIGMOID,
                                        CT_ACT_TANH};
    const size_t n = 37;
    for (int k = 0; k < 4; k++) {
        act_u u = {.kind = (int)kinds[k], .slope = 0.1f, .n = n};
        u.x = tu_rand(n, 10 + (uint64_t)k, -3, 3), u.r = tu_rand(n, 20 + (uint64_t)k, -1, 1);
        /* keep clear of the kink at 0, where the difference quotient straddles it */
        for (size_t i = 0; i < n; i++)
            if (fabsf(u.x[i]) < 0.01f)
                u.x[i] = 0.5f;
        u.y = tu_zeros(n);
        double *fd = tu_zeros(n), *rb = tu_zeros(n);
        fd_grad(u.x, n, act_loss, &u, fd);
        ct_ref_act_backward(u.kind, u.slope, u.x, u.r, n, rb);
        tu_view tx = TU_VIEW(ctx, 1, u.x, n), ty = TU_VIEW(ctx, 2, NULL, n);
        tu_view tdy = TU_VIEW(ctx, 3, u.r, n), tdx = TU_VIEW(ctx, 4, NULL, n);
        TU_OK(ct_act_forward(ctx, kinds[k], u.slope, tx.t, ty.t));
        TU_OK(ct_act_backward(ctx, kinds[k], u.slope, tx.t, ty.t, tdy.t, tdx.t));
        float *dx = tu_view_get("dx", &tdx);
        char what[32];
        snprintf(what, sizeof what, "activation %d dx", k);
        check_both(what, dx, rb, fd, n);
        free(dx), free(fd), free(rb), free(u.x), free(u.r), free(u.y);
        tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tdy), tu_view_free(&tdx);
    }
    ct_context_free(ctx);
}

/* ---- dropout ------------------------------------------------------------------- */

typedef struct drop_u {
    float *x, *r, p;
    unsigned char *keep;
    size_t n;
} drop_u;

static double drop_loss(void *v)
{
    drop_u *u = v;
    double s = 0.0, scale = ct_ref_dropout_scale(u->p);
    for (size_t i = 0; i < u->n; i++)
        s += (double)u->r[i] * (u->keep[i] ? (double)u->x[i] * scale : 0.0);
    return s;
}

Test(grad, dropout)
{
    ct_context *ctx = tu_context();
    drop_u u = {.n = 71, .p = 0.3f};
    u.x = tu_rand(u.n, 30, -2, 2), u.r = tu_rand(u.n, 31, -1, 1);
    u.keep = malloc(u.n);
    cr_assert(u.keep != NULL);
    ct_ref_dropout_mask(u.n, u.p, 555, 9, u.keep);
    double *fd = tu_zeros(u.n), *rb = tu_zeros(u.n);
    fd_grad(u.x, u.n, drop_loss, &u, fd);
    for (size_t i = 0; i < u.n; i++)
        rb[i] = u.keep[i] ? (double)u.r[i] * ct_ref_dropout_scale(u.p) : 0.0;
    tu_view tdy = TU_VIEW(ctx, 3, u.r, u.n), tdx = TU_VIEW(ctx, 4, NULL, u.n);
    TU_OK(ct_dropout_backward(ctx, tdy.t, u.p, 555, 9, tdx.t));
    float *dx = tu_view_get("dx", &tdx);
    check_both("dropout dx", dx, rb, fd, u.n);
    free(dx), free(fd), free(rb), free(u.x), free(u.r), free(u.keep);
    tu_view_free(&tdy), tu_view_free(&tdx);
    ct_context_free(ctx);
}

/* ---- batch norm ------------------------------------------------------------------ */

typedef struct bn_u {
    float *x, *g, *b, *r;
    size_t n, c, hw;
    double *y;
} bn_u;

static double bn_loss(void *v)
{
    bn_u *u = v;
    ct_ref_batchnorm_forward(u->x, u->g, u->b, u->n, u->c, u->hw, 1e-5, 0.1, true, NULL, NULL,
                             NULL, NULL, u->y);
    return dot(u->r, u->y, u->n * u->c * u->hw);
}

static void bn_grad_case(ct_context *ctx, size_t ndim, const size_t *shape, bool affine)
{
    bn_u u = {.n = shape[0], .c = shape[1], .hw = 1};
    for (size_t i = 2; i < ndim; i++)
        u.hw *= shape[i];
    size_t numel = u.n * u.c * u.hw;
    u.x = tu_rand(numel, 40, -2, 2), u.r = tu_rand(numel, 41, -1, 1);
    u.g = tu_rand(u.c, 42, 0.5, 1.5), u.b = tu_rand(u.c, 43, -1, 1);
    u.y = tu_zeros(numel);
    float *gmem = u.g, *bmem = u.b, *g = affine ? u.g : NULL;
    if (!affine)
        u.g = u.b = NULL;
    double *fx = tu_zeros(numel), *fg = tu_zeros(u.c), *fb = tu_zeros(u.c);
    fd_grad(u.x, numel, bn_loss, &u, fx);
    if (affine) {
        fd_grad(u.g, u.c, bn_loss, &u, fg);
        fd_grad(u.b, u.c, bn_loss, &u, fb);
    }
    double *rx = tu_zeros(numel), *rg = tu_zeros(u.c), *rb = tu_zeros(u.c);
    ct_ref_batchnorm_backward(u.x, g, u.r, u.n, u.c, u.hw, 1e-5, rx, rg, rb);

    ct_bn_params p = {.eps = 1e-5f, .momentum = 0.1f, .training = true};
    tu_view tx = tu_view_new(ctx, 1, ndim, shape, u.x), ty = tu_view_new(ctx, 2, ndim, shape, NULL);
    tu_view tdy = tu_view_new(ctx, 3, ndim, shape, u.r),
            tdx = tu_view_new(ctx, 4, ndim, shape, NULL);
    tu_view tg = TU_VIEW(ctx, 1, affine ? u.g : NULL, u.c);
    tu_view tb = TU_VIEW(ctx, 2, affine ? u.b : NULL, u.c);
    float *zeros = calloc(u.c, sizeof *zeros);
    cr_assert(zeros != NULL);
    tu_view tdg = TU_VIEW(ctx, 3, zeros, u.c), tdb = TU_VIEW(ctx, 4, zeros, u.c);
    tu_view tsm = TU_VIEW(ctx, 5, NULL, u.c), tsi = TU_VIEW(ctx, 6, NULL, u.c);
    TU_OK(ct_batchnorm_forward(ctx, tx.t, affine ? tg.t : NULL, affine ? tb.t : NULL, NULL, NULL,
                               &p, tsm.t, tsi.t, ty.t));
    TU_OK(ct_batchnorm_backward(ctx, tx.t, affine ? tg.t : NULL, tsm.t, tsi.t, tdy.t, tdx.t,
                                tdg.t, tdb.t));
    float *dx = tu_view_get("dx", &tdx), *dg = tu_view_get("dgamma", &tdg),
          *db = tu_view_get("dbeta", &tdb);
    char what[64];
    snprintf(what, sizeof what, "batchnorm %zu-d affine=%d dx", ndim, affine);
    check_both(what, dx, rx, fx, numel);
    if (affine) {
        check_both("batchnorm dgamma", dg, rg, fg, u.c);
        check_both("batchnorm dbeta", db, rb, fb, u.c);
    }
    free(dx), free(dg), free(db), free(fx), free(fg), free(fb), free(rx), free(rg), free(rb);
    free(zeros), free(u.x), free(u.r), free(u.y), free(gmem), free(bmem);
    tu_view_free(&tx), tu_view_free(&ty), tu_view_free(&tdy), tu_view_free(&tdx), tu_view_free(&tg),
        tu_view_free(&tb), tu_view_free(&tdg), tu_view_free(&tdb), tu_view_free(&tsm),
        tu_view_free(&tsi);
}

Test(grad, batchnorm2d)
{
    ct_context *ctx = tu_context();
    bn_grad_case(ctx, 4, (size_t[]){3, 2, 3, 2}, true);
    bn_grad_case(ctx, 4, (size_t[]){2, 3, 1, 3}, false);
    ct_context_free(ctx);
}

Test(grad, batchnorm1d)
{
    ct_context *ctx = tu_context();
    bn_grad_case(ctx, 2, (size_t[]){6, 5}, true);
    bn_grad_case(ctx, 2, (size_t[]){4, 9}, false);
    ct_context_free(ctx);
}
