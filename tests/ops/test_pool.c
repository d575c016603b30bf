/* Max, average and global average pooling on the device against the double-precision
 * reference (lib/ref/pool_ref.c): output sizes (floor and ceil mode, PyTorch's rule that
 * the last window must start inside the input or the left padding), padding, strides
 * smaller and larger than the window, count_include_pad on and off, and max-pool ties
 * (inputs drawn from a handful of levels, so most windows hold several maxima: the
 * gradient must go to the first one in scan order), with the fused ReLU mask.
 * Every tensor is a view at an odd offset inside a buffer of canaries.
 *
 * Tolerances: max pooling moves values without arithmetic, so forward and backward of
 * non-overlapping windows are exact; overlapping windows add at most KH*KW/(SH*SW) float
 * dy values of magnitude <= 1: atol 1e-6. Average pooling sums <= KH*KW values of
 * magnitude <= 1 and divides once: atol = rtol = 1e-6 (a few ulp of values <= 1 for the
 * windows used here), far below the 1/(KH*KW) change of a wrong divisor. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/conv_ref.h"
#include "testutil.h"

typedef struct pool_case {
    size_t n, c, h, w;
    size_t kh, kw, sh, sw, ph, pw;
    bool ceil, include_pad;
} pool_case;

static const pool_case cases[] = {
    /* n  c   h   w  kh kw sh sw ph pw ceil  incl */
    {2, 3, 28, 28, 2, 2, 2, 2, 0, 0, false, true}, /* MiniCNN */
    {2, 3, 7, 7, 2, 2, 2, 2, 0, 0, false, true},   /* odd size, floor drops a row */
    {2, 3, 7, 7, 2, 2, 2, 2, 0, 0, true, true},    /* ceil keeps a clipped window */
    {1, 2, 9, 8, 3, 3, 2, 2, 1, 1, false, true},   /* overlapping, padded */
    {1, 2, 9, 8, 3, 3, 2, 2, 1, 1, false, false},  /* same, padding not counted */
    {2, 2, 6, 5, 3, 2, 2, 2, 1, 1, true, true},    /* ceil + pad: last window clipped at pad */
    {2, 2, 6, 5, 3, 2, 2, 2, 1, 1, true, false},
    {1, 3, 5, 5, 2, 2, 3, 3, 1, 1, true, true},    /* ceil mode drops a window past the input */
    {1, 2, 10, 11, 3, 3, 1, 1, 1, 1, false, true}, /* stride 1, 3x3, pad 1 */
    {2, 1, 8, 13, 2, 4, 2, 3, 1, 2, true, false},  /* non-square everything */
    {1, 2, 4, 9, 4, 1, 1, 2, 2, 0, false, true},   /* stride 1x2, pad 2x0 */
    {1, 1, 1, 1, 2, 2, 1, 1, 1, 1, false, true},   /* one pixel, all windows mostly pad */
    {3, 2, 13, 6, 3, 3, 3, 3, 0, 0, true, false},  /* ceil with stride = kernel */
    {2, 3, 9, 35, 2, 2, 2, 2, 0, 0, false, true},  /* 2x2/2 kernels: 2 vector steps + tail,
                                                      odd H and W left uncovered */
    {1, 2, 16, 32, 2, 2, 2, 2, 0, 0, true, false}, /* 2x2/2, ceil mode changes nothing */
    {2, 3, 14, 14, 2, 2, 2, 2, 0, 0, false, true}, /* 2x2/2 rows of 7 outputs: runs of 4, the
                                                      last one shifted back (MiniCNN's pool 2) */
    {1, 2, 6, 6, 2, 2, 2, 2, 0, 0, false, true},   /* rows of 3 outputs: the scalar path */
    {1, 2, 8, 42, 2, 2, 2, 2, 0, 0, false, true},  /* rows of 21: runs of 8, last shifted */
};
#define NCASES (sizeof cases / sizeof cases[0])

static ct_ref_pool ref_geom(const pool_case *c)
{
    return (ct_ref_pool){c->n,  c->c,  c->h,  c->w,  c->kh,   c->kw,
                         c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
}

static ct_pool2d_params dev_params(const pool_case *c)
{
    return (ct_pool2d_params){c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->ceil, c->include_pad};
}

static void describe(char *buf, size_t n, const char *what, const pool_case *c)
{
    snprintf(buf, n,
             "%s: n=%zu c=%zu h=%zu w=%zu kernel=%zux%zu stride=%zux%zu pad=%zux%zu ceil=%d "
             "count_include_pad=%d",
             what, c->n, c->c, c->h, c->w, c->kh, c->kw, c->sh, c->sw, c->ph, c->pw, c->ceil,
             c->include_pad);
}

/* Values from 5 levels in [-1, 1]: ties in most windows, and some non-positive ones for
 * the ReLU mask. */
static float *tied_values(size_t n, uint64_t seed)
{
    float *x = tu_rand(n, seed, 0, 5);
    for (size_t i = 0; i < n; i++)
        x[i] = -1.0f + 0.5f * floorf(x[i]);
    return x;
}

static void max_case(ct_context *ctx, const pool_case *c, size_t idx, bool ties, bool relu_in)
{
    ct_ref_pool g = ref_geom(c);
    ct_pool2d_params p = dev_params(c);
    size_t P = ct_ref_pool_out_size(c->h, c->kh, c->sh, c->ph, c->ceil);
    size_t Q = ct_ref_pool_out_size(c->w, c->kw, c->sw, c->pw, c->ceil);
    size_t nx = c->n * c->c * c->h * c->w, ny = c->n * c->c * P * Q;
    float *hx = ties ? tied_values(nx, 10 + idx) : tu_rand(nx, 10 + idx, -1, 1);
    float *hdy = tu_rand(ny, 20 + idx, -1, 1), *hdx0 = tu_rand(nx, 30 + idx, 3, 4);
    double *x = tu_widen(hx, nx), *dy = tu_widen(hdy, ny);
    double *ry = tu_zeros(ny), *rdx = tu_zeros(nx);
    ct_ref_maxpool2d_forward(&g, x, ry);
    ct_ref_maxpool2d_backward(&g, x, dy, relu_in, rdx);

    tu_view sx = tu_view_new(ctx, 1 + idx, 4, (size_t[]){c->n, c->c, c->h, c->w}, hx);
    tu_view sy = tu_view_new(ctx, 3, 4, (size_t[]){c->n, c->c, P, Q}, NULL);
    tu_view sdy = tu_view_new(ctx, 5, 4, (size_t[]){c->n, c->c, P, Q}, hdy);
    tu_view sdx = tu_view_new(ctx, 7, 4, (size_t[]){c->n, c->c, c->h, c->w}, hdx0);
    TU_OK(ct_maxpool2d_forward(ctx, sx.t, &p, sy.t));
    TU_OK(ct_maxpool2d_backward(ctx, sx.t, sy.t, sdy.t, &p, relu_in, sdx.t));
    char what[256];
    describe(what, sizeof what, ties ? "maxpool forward (ties)" : "maxpool forward", c);
    float *got = tu_view_get(what, &sy);
    tu_assert_close(what, got, ry, ny, 0.0, 0.0);
    free(got);
    describe(what, sizeof what,
             relu_in ? "maxpool backward with ReLU mask"
                     : (ties ? "maxpool backward (ties)" : "maxpool backward"),
             c);
    got = tu_view_get(what, &sdx);
    tu_assert_close(what, got, rdx, nx, 1e-6, 0.0);
    free(got);

    tu_view_free(&sx), tu_view_free(&sy), tu_view_free(&sdy), tu_view_free(&sdx);
    free(hx), free(hdy), free(hdx0), free(x), free(dy), free(ry), free(rdx);
}

static void avg_case(ct_context *ctx, const pool_case *c, size_t idx)
{
    ct_ref_pool g = ref_geom(c);
    ct_pool2d_params p = dev_params(c);
    size_t P = ct_ref_pool_out_size(c->h, c->kh, c->sh, c->ph, c->ceil);
    size_t Q = ct_ref_pool_out_size(c->w, c->kw, c->sw, c->pw, c->ceil);
    size_t nx = c->n * c->c * c->h * c->w, ny = c->n * c->c * P * Q;
    float *hx = tu_rand(nx, 40 + idx, -1, 1), *hdy = tu_rand(ny, 50 + idx, -1, 1);
    float *hdx0 = tu_rand(nx, 60 + idx, 3, 4);
    double *x = tu_widen(hx, nx), *dy = tu_widen(hdy, ny);
    double *ry = tu_zeros(ny), *rdx = tu_zeros(nx);
    ct_ref_avgpool2d_forward(&g, x, ry);
    ct_ref_avgpool2d_backward(&g, dy, rdx);

    tu_view sx = tu_view_new(ctx, 2 + idx, 4, (size_t[]){c->n, c->c, c->h, c->w}, hx);
    tu_view sy = tu_view_new(ctx, 1, 4, (size_t[]){c->n, c->c, P, Q}, NULL);
    tu_view sdy = tu_view_new(ctx, 9, 4, (size_t[]){c->n, c->c, P, Q}, hdy);
    tu_view sdx = tu_view_new(ctx, 4, 4, (size_t[]){c->n, c->c, c->h, c->w}, hdx0);
    TU_OK(ct_avgpool2d_forward(ctx, sx.t, &p, sy.t));
    TU_OK(ct_avgpool2d_backward(ctx, sdy.t, &p, sdx.t));
    char what[256];
    describe(what, sizeof what, "avgpool forward", c);
    float *got = tu_view_get(what, &sy);
    tu_assert_close(what, got, ry, ny, 1e-6, 1e-6);
    free(got);
    describe(what, sizeof what, "avgpool backward", c);
    got = tu_view_get(what, &sdx);
    tu_assert_close(what, got, rdx, nx, 1e-6, 1e-6);
    free(got);

    tu_view_free(&sx), tu_view_free(&sy), tu_view_free(&sdy), tu_view_free(&sdx);
    free(hx), free(hdy), free(hdx0), free(x), free(dy), free(ry), free(rdx);
}

/* Output sizes by hand, PyTorch's rule (checked against torch 1.13's MaxPool2d shapes). */
Test(pool, out_size)
{
    cr_assert_eq(ct_ref_pool_out_size(28, 2, 2, 0, false), 14);
    cr_assert_eq(ct_ref_pool_out_size(7, 2, 2, 0, false), 3);
    cr_assert_eq(ct_ref_pool_out_size(7, 2, 2, 0, true), 4);
    cr_assert_eq(ct_ref_pool_out_size(5, 2, 3, 1, true), 2); /* a 3rd would start at 6 >= 5+1 */
    cr_assert_eq(ct_ref_pool_out_size(5, 2, 3, 1, false), 2);
    cr_assert_eq(ct_ref_pool_out_size(6, 3, 2, 1, true), 4);
    cr_assert_eq(ct_ref_pool_out_size(6, 3, 2, 1, false), 3);
    cr_assert_eq(ct_ref_pool_out_size(1, 2, 1, 1, false), 2);
    cr_assert_eq(ct_ref_pool_out_size(1, 3, 1, 0, false), 0);
}

Test(pool, maxpool)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++) {
        max_case(ctx, &cases[i], i, false, false);
        max_case(ctx, &cases[i], i, true, false);
        max_case(ctx, &cases[i], i, true, true);
    }
    ct_context_free(ctx);
}

Test(pool, avgpool)
{
    ct_context *ctx = tu_context();
    for (size_t i = 0; i < NCASES; i++)
        avg_case(ctx, &cases[i], i);
    ct_context_free(ctx);
}

/* Hand-made windows with ties and NaNs: the gradient goes to the first maximum; a NaN is
 * the maximum, and of two NaNs the last one (PyTorch: `val > max || isnan(val)`). One
 * 2 x 2Q plane of 2x2 windows at stride 2, Q = 10: windows alternate between
 * [[1, 3], [3, 2]] (first maximum at (0, 1)) and [[nan, 1], [0, nan]] (the last NaN,
 * (1, 1)), through the vectorised steps and the scalar tail of the 2x2 kernels. With the
 * ReLU mask (relu_in: x is a ReLU's output) the same dx: 3 > 0, and a NaN passes as in
 * torch's ReLU backward (threshold_backward cuts only where the output is <= 0). Then a
 * 3x3 window at stride 3 (the general kernel): [[0, nan, -1], [nan, 2, 0], [1, 1, 1]]
 * sends its gradient to the second NaN, with and without the mask. */
Test(pool, maxpool_tie_and_nan_rules)
{
    ct_context *ctx = tu_context();
    enum { Q = 10, W = 2 * Q };
    const float pat[2][4] = {{1, 3, 3, 2}, {NAN, 1, 0, NAN}}; /* (0,0) (0,1) (1,0) (1,1) */
    float hx[2 * W], hdy[Q], want[2 * W], want_y[Q];
    for (int q = 0; q < Q; q++) {
        const float *w = pat[q % 2];
        for (int t = 0; t < 4; t++) {
            hx[(t / 2) * W + 2 * q + t % 2] = w[t];
            want[(t / 2) * W + 2 * q + t % 2] = 0.0f;
        }
        hdy[q] = (float)(10 + q);
        want[q % 2 ? W + 2 * q + 1 : 2 * q + 1] = hdy[q];
        want_y[q] = q % 2 ? NAN : 3.0f;
    }
    ct_pool2d_params p = {2, 2, 2, 2, 0, 0, false, true};
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(1, 1, 2, W), hx);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(1, 1, 1, Q), NULL);
    ct_tensor *dy = tu_tensor(ctx, TU_SHAPE(1, 1, 1, Q), hdy);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(1, 1, 2, W), NULL);
    TU_OK(ct_maxpool2d_forward(ctx, x, &p, y));
    float *gy = tu_download(y);
    for (int q = 0; q < Q; q++)
        cr_assert(gy[q] == want_y[q] || (isnan(gy[q]) && isnan(want_y[q])), "y[%d] = %g", q,
                  (double)gy[q]);
    for (int relu_in = 0; relu_in < 2; relu_in++) {
        TU_OK(ct_maxpool2d_backward(ctx, x, y, dy, &p, relu_in, dx));
        float *gdx = tu_download(dx);
        for (int i = 0; i < 2 * W; i++)
            cr_assert(gdx[i] == want[i], "dx[%d] = %g, expected %g (relu_in %d)", i, (double)gdx[i],
                      (double)want[i], relu_in);
        free(gdx);
    }
    free(gy);
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(dy), ct_tensor_free(dx);

    const float h3[9] = {0, NAN, -1, NAN, 2, 0, 1, 1, 1}, g3 = 5.0f;
    ct_pool2d_params p3 = {3, 3, 3, 3, 0, 0, false, true};
    x = tu_tensor(ctx, TU_SHAPE(1, 1, 3, 3), h3);
    y = tu_tensor(ctx, TU_SHAPE(1, 1, 1, 1), NULL);
    dy = tu_tensor(ctx, TU_SHAPE(1, 1, 1, 1), &g3);
    dx = tu_tensor(ctx, TU_SHAPE(1, 1, 3, 3), NULL);
    TU_OK(ct_maxpool2d_forward(ctx, x, &p3, y));
    for (int relu_in = 0; relu_in < 2; relu_in++) {
        TU_OK(ct_maxpool2d_backward(ctx, x, y, dy, &p3, relu_in, dx));
        float *gdx = tu_download(dx);
        for (int i = 0; i < 9; i++)
            cr_assert(gdx[i] == (i == 3 ? g3 : 0.0f), "3x3: dx[%d] = %g (relu_in %d)", i,
                      (double)gdx[i], relu_in);
        free(gdx);
    }
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(dy), ct_tensor_free(dx);
    ct_context_free(ctx);
}

/* Tolerance: a mean of H*W <= 784 values in [-1, 1] in float32, 8 partial sums: error
 * around sqrt(HW)*2^-24 of the partial sums; atol = rtol = 1e-6. */
Test(pool, global_average)
{
    ct_context *ctx = tu_context();
    const size_t shapes[][4] = {{2, 3, 28, 28}, {1, 5, 1, 1}, {3, 2, 3, 5}, {2, 4, 7, 9}};
    for (size_t i = 0; i < 4; i++) {
        size_t n = shapes[i][0], c = shapes[i][1], h = shapes[i][2], w = shapes[i][3];
        float *hx = tu_rand(n * c * h * w, 70 + i, -1, 1), *hdy = tu_rand(n * c, 80 + i, -1, 1);
        double *x = tu_widen(hx, n * c * h * w), *dy = tu_widen(hdy, n * c);
        double *ry = tu_zeros(n * c), *rdx = tu_zeros(n * c * h * w);
        ct_ref_gap_forward(n, c, h, w, x, ry);
        ct_ref_gap_backward(n, c, h, w, dy, rdx);
        tu_view sx = tu_view_new(ctx, 3, 4, (size_t[]){n, c, h, w}, hx);
        tu_view sy = tu_view_new(ctx, 5, 2, (size_t[]){n, c}, NULL);
        tu_view sdy = tu_view_new(ctx, 1, 2, (size_t[]){n, c}, hdy);
        tu_view sdx = tu_view_new(ctx, 7, 4, (size_t[]){n, c, h, w}, NULL);
        TU_OK(ct_gap_forward(ctx, sx.t, sy.t));
        TU_OK(ct_gap_backward(ctx, sdy.t, sdx.t));
        float *gy = tu_view_get("gap forward", &sy), *gdx = tu_view_get("gap backward", &sdx);
        tu_assert_close("gap forward", gy, ry, n * c, 1e-6, 1e-6);
        tu_assert_close("gap backward", gdx, rdx, n * c * h * w, 1e-7, 1e-6);
        free(gy), free(gdx), free(hx), free(hdy), free(x), free(dy), free(ry), free(rdx);
        tu_view_free(&sx), tu_view_free(&sy), tu_view_free(&sdy), tu_view_free(&sdx);
    }
    ct_context_free(ctx);
}

Test(pool, errors)
{
    ct_context *ctx = tu_context();
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(1, 2, 6, 6), NULL);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(1, 2, 3, 3), NULL);
    ct_tensor *ybad = tu_tensor(ctx, TU_SHAPE(1, 2, 3, 2), NULL);
    ct_tensor *g = tu_tensor(ctx, TU_SHAPE(1, 3), NULL);
    ct_pool2d_params p = {2, 2, 2, 2, 0, 0, false, true};
    ct_pool2d_params bigpad = {2, 2, 2, 2, 2, 0, false, true}; /* pad > kernel/2 */
    cr_assert_eq(ct_maxpool2d_forward(ctx, x, &p, ybad), CT_ERR_SHAPE);
    cr_assert_eq(ct_avgpool2d_forward(ctx, x, &p, ybad), CT_ERR_SHAPE);
    cr_assert_eq(ct_maxpool2d_forward(ctx, x, &bigpad, y), CT_ERR_INVALID_ARG);
    cr_assert_eq(ct_avgpool2d_backward(ctx, ybad, &p, x), CT_ERR_SHAPE);
    cr_assert_eq(ct_maxpool2d_backward(ctx, x, y, ybad, &p, false, x), CT_ERR_SHAPE);
    cr_assert_eq(ct_gap_forward(ctx, x, g), CT_ERR_SHAPE);
    cr_assert_eq(ct_gap_backward(ctx, g, x), CT_ERR_SHAPE);
    ct_error_clear();
    ct_tensor_free(x), ct_tensor_free(y), ct_tensor_free(ybad), ct_tensor_free(g);
    ct_context_free(ctx);
}
