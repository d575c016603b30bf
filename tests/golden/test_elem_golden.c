/* tests/golden/test_elem_golden.c — linear, activations, softmax and batch norm against
 * values computed by PyTorch 1.13 in float32 (tests/golden/gen_elem.py ->
 * tests/golden/data/elem.txt). Both sides are float32 with different summation orders, so
 * the tolerances are those of the op tests (see each). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "golden.h"
#include "nn/ops.h"
#include "testutil.h"

static void expect_gold(const tu_golden *g, const char *name, const ct_tensor *t, double atol,
                        double rtol)
{
    tu_gold_expect(name, t, tu_golden_get(g, name), atol, rtol);
}

/* Linear: float GEMMs of length <= 13 on values in [-1, 1]: atol 1e-5. */
Test(elem_golden, linear)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("elem.txt");
    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(g, "lin.x")),
              *w = tu_gold_upload(ctx, tu_golden_get(g, "lin.w"));
    ct_tensor *b = tu_gold_upload(ctx, tu_golden_get(g, "lin.b")),
              *dy = tu_gold_upload(ctx, tu_golden_get(g, "lin.dy"));
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(5, 7), NULL);
    ct_tensor *dx = tu_tensor(ctx, TU_SHAPE(5, 13), NULL);
    ct_tensor *dw = NULL, *db = NULL;
    TU_OK(ct_tensor_zeros(ctx, TU_SHAPE(7, 13), &dw));
    TU_OK(ct_tensor_zeros(ctx, TU_SHAPE(7), &db));
    TU_OK(ct_linear_forward(ctx, x, w, b, true, y));
    expect_gold(g, "lin.y", y, 1e-5, 1e-5);
    TU_OK(ct_linear_forward(ctx, x, w, NULL, false, y));
    expect_gold(g, "lin.y_nobias_norelu", y, 1e-5, 1e-5);
    TU_OK(ct_linear_backward(ctx, x, w, dy, dx, dw, db));
    expect_gold(g, "lin.dx", dx, 1e-5, 1e-5);
    expect_gold(g, "lin.dw", dw, 1e-5, 1e-5);
    expect_gold(g, "lin.db", db, 1e-5, 1e-5);
    ct_tensor_free(x), ct_tensor_free(w), ct_tensor_free(b), ct_tensor_free(dy),
        ct_tensor_free(y), ct_tensor_free(dx), ct_tensor_free(dw), ct_tensor_free(db);
    tu_golden_free(g);
    ct_context_free(ctx);
}

/* Activations, including the kinks (x == 0) and saturation (|x| = 12): ReLU/LeakyReLU
 * must match exactly up to one rounding (rtol 1.2e-7); sigmoid/tanh are within a few ulp
 * of PyTorch's (atol 1e-6 on values bounded by 1, 4e-6 for their gradients). */
Test(elem_golden, activations)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("elem.txt");
    static const struct {
        const char *name;
        ct_act_kind kind;
        float slope;
        double atol, rtol, gatol;
    } acts[] = {
        {"relu", CT_ACT_RELU, 0.0f, 0.0, 1.2e-7, 0.0},
        {"leaky001", CT_ACT_LEAKY_RELU, 0.01f, 0.0, 1.2e-7, 0.0},
        {"leaky02", CT_ACT_LEAKY_RELU, 0.2f, 0.0, 1.2e-7, 0.0},
        {"sigmoid", CT_ACT_SIGMOID, 0.0f, 1e-6, 1e-6, 4e-6},
        {"tanh", CT_ACT_TANH, 0.0f, 1e-6, 1e-6, 4e-6},
    };
    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(g, "act.x")),
              *dy = tu_gold_upload(ctx, tu_golden_get(g, "act.dy"));
    size_t n = ct_tensor_numel(x);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(n), NULL), *dx = tu_tensor(ctx, TU_SHAPE(n), NULL);
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        char name[64];
        TU_OK(ct_act_forward(ctx, acts[i].kind, acts[i].slope, x, y));
        snprintf(name, sizeof name, "act.%s.y", acts[i].name);
        expect_gold(g, name, y, acts[i].atol, acts[i].rtol);
        TU_OK(ct_act_backward(ctx, acts[i].kind, acts[i].slope, x, y, dy, dx));
        snprintf(name, sizeof name, "act.%s.dx", acts[i].name);
        expect_gold(g, name, dx, acts[i].gatol, acts[i].rtol);
    }
    ct_tensor_free(x), ct_tensor_free(dy), ct_tensor_free(y), ct_tensor_free(dx);
    tu_golden_free(g);
    ct_context_free(ctx);
}

/* Softmax rtol 4e-6 / atol 1e-7; log-softmax atol 1e-5 (as tests/ops/test_act.c). */
Test(elem_golden, softmax)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("elem.txt");
    ct_tensor *x = tu_gold_upload(ctx, tu_golden_get(g, "sm.x"));
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(5, 11), NULL);
    TU_OK(ct_softmax_forward(ctx, x, false, y));
    expect_gold(g, "sm.y", y, 1e-7, 4e-6);
    TU_OK(ct_softmax_forward(ctx, x, true, y));
    expect_gold(g, "lsm.y", y, 1e-5, 1e-6);
    ct_tensor_free(x), ct_tensor_free(y);
    tu_golden_free(g);
    ct_context_free(ctx);
}

/* Batch norm: three training steps from PyTorch's initial running stats (0, 1), the
 * backward of the third, then eval. Tolerances as tests/ops/test_norm.c: outputs atol
 * 2e-5 + rtol 1e-5, running stats rtol 1e-5, dx atol 5e-5 + rtol 1e-4, dgamma/dbeta
 * (sums of M <= 120 terms) atol 2e-4. */
static void bn_golden(const char *p, float eps, float momentum)
{
    ct_context *ctx = tu_context();
    tu_golden *g = tu_golden_load("elem.txt");
    char name[64];
#define GN(suffix) (snprintf(name, sizeof name, "%s.%s", p, suffix), name)
    ct_tensor *w = tu_gold_upload(ctx, tu_golden_get(g, GN("w"))),
              *b = tu_gold_upload(ctx, tu_golden_get(g, GN("b")));
    size_t c = ct_tensor_numel(w);
    const tu_gold_tensor *xr = tu_golden_get(g, GN("x0"));
    ct_tensor *y = tu_tensor(ctx, xr->ndim, xr->shape, NULL);
    ct_tensor *dx = tu_tensor(ctx, xr->ndim, xr->shape, NULL);
    ct_tensor *rm = NULL, *rv = NULL, *sm = NULL, *si = NULL, *dw = NULL, *db = NULL;
    TU_OK(ct_tensor_zeros(ctx, TU_SHAPE(c), &rm));
    TU_OK(ct_tensor_create(ctx, TU_SHAPE(c), &rv));
    TU_OK(ct_tensor_fill(rv, 1.0f));
    TU_OK(ct_tensor_create(ctx, TU_SHAPE(c), &sm));
    TU_OK(ct_tensor_create(ctx, TU_SHAPE(c), &si));
    TU_OK(ct_tensor_zeros(ctx, TU_SHAPE(c), &dw));
    TU_OK(ct_tensor_zeros(ctx, TU_SHAPE(c), &db));
    ct_bn_params prm = {.eps = eps, .momentum = momentum, .training = true};
    ct_tensor *x = NULL;
    for (int step = 0; step < 3; step++) {
        char xn[8];
        snprintf(xn, sizeof xn, "x%d", step);
        ct_tensor_free(x);
        x = tu_gold_upload(ctx, tu_golden_get(g, GN(xn)));
        TU_OK(ct_batchnorm_forward(ctx, x, w, b, rm, rv, &prm, sm, si, y));
    }
    expect_gold(g, GN("y2"), y, 2e-5, 1e-5);
    expect_gold(g, GN("rm"), rm, 1e-6, 1e-5);
    expect_gold(g, GN("rv"), rv, 1e-6, 1e-5);
    ct_tensor *dy = tu_gold_upload(ctx, tu_golden_get(g, GN("dy")));
    TU_OK(ct_batchnorm_backward(ctx, x, w, sm, si, dy, dx, dw, db));
    expect_gold(g, GN("dx"), dx, 5e-5, 1e-4);
    expect_gold(g, GN("dw"), dw, 2e-4, 1e-5);
    expect_gold(g, GN("db"), db, 2e-4, 1e-5);
    prm.training = false;
    ct_tensor *xe = tu_gold_upload(ctx, tu_golden_get(g, GN("xe")));
    TU_OK(ct_batchnorm_forward(ctx, xe, w, b, rm, rv, &prm, NULL, NULL, y));
    expect_gold(g, GN("ye"), y, 2e-5, 1e-5);
#undef GN
    ct_tensor_free(x), ct_tensor_free(xe), ct_tensor_free(dy), ct_tensor_free(w),
        ct_tensor_free(b), ct_tensor_free(y), ct_tensor_free(dx), ct_tensor_free(rm),
        ct_tensor_free(rv), ct_tensor_free(sm), ct_tensor_free(si), ct_tensor_free(dw),
        ct_tensor_free(db);
    tu_golden_free(g);
    ct_context_free(ctx);
}

Test(elem_golden, batchnorm2d)
{
    bn_golden("bn2d", 1e-5f, 0.1f);
}

Test(elem_golden, batchnorm1d)
{
    bn_golden("bn1d", 1e-3f, 0.25f);
}
