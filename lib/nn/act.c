/* lib/nn/act.c — element-wise activations (ReLU, LeakyReLU, Sigmoid, Tanh) and row-wise
 * softmax / log-softmax. The kernels and their exact formulas are in kernels/act.cl. */
#include <stdio.h>

#include "nn/ops.h"

static const char *act_name(ct_act_kind kind)
{
    switch (kind) {
    case CT_ACT_RELU: return "relu";
    case CT_ACT_LEAKY_RELU: return "leaky";
    case CT_ACT_SIGMOID: return "sigmoid";
    case CT_ACT_TANH: return "tanh";
    }
    return NULL;
}

ct_status ct_act_forward(ct_context *ctx, ct_act_kind kind, float negative_slope,
                         const ct_tensor *x, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    char kname[32];
    const char *name = act_name(kind);
    CT_REQUIRE(ctx && x && y, CT_ERR_INVALID_ARG, "activation forward: NULL argument");
    CT_REQUIRE(name != NULL, CT_ERR_INVALID_ARG, "activation forward: unknown kind %d", (int)kind);
    CT_REQUIRE(x->numel == y->numel, CT_ERR_SHAPE,
               "activation forward: x has %zu elements, y %zu", x->numel, y->numel);
    CT_REQUIRE(x->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED,
               "activation forward: more than 2^32 elements");
    snprintf(kname, sizeof kname, "act_%s_fwd", name);
    CT_TRY(CT_RUN1D(ctx, "act.cl", kname, (x->numel + 7) / 8, CT_T(x), CT_T(y),
                    CT_U32(x->numel), CT_F32(negative_slope)));
cleanup:
    return st;
}

ct_status ct_act_backward(ct_context *ctx, ct_act_kind kind, float negative_slope,
                          const ct_tensor *x, const ct_tensor *y, const ct_tensor *dy,
                          ct_tensor *dx)
{
    ct_status st = CT_SUCCESS;
    char kname[32];
    const char *name = act_name(kind);
    CT_REQUIRE(ctx && dy && dx, CT_ERR_INVALID_ARG, "activation backward: NULL argument");
    CT_REQUIRE(name != NULL, CT_ERR_INVALID_ARG, "activation backward: unknown kind %d", (int)kind);
    /* ReLU-like kinds need x, the smooth ones their output y (as PyTorch saves them). */
    const ct_tensor *src = (kind == CT_ACT_RELU || kind == CT_ACT_LEAKY_RELU) ? x : y;
    CT_REQUIRE(src != NULL, CT_ERR_INVALID_ARG, "activation backward (%s): %s is NULL", name,
               src == x ? "x" : "y");
    CT_REQUIRE(src->numel == dy->numel && dx->numel == dy->numel, CT_ERR_SHAPE,
               "activation backward: %s %zu, dy %zu, dx %zu elements", src == x ? "x" : "y",
               src->numel, dy->numel, dx->numel);
    CT_REQUIRE(dy->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED,
               "activation backward: more than 2^32 elements");
    snprintf(kname, sizeof kname, "act_%s_bwd", name);
    CT_TRY(CT_RUN1D(ctx, "act.cl", kname, (dy->numel + 7) / 8, CT_T(src), CT_T(dy), CT_T(dx),
                    CT_U32(dy->numel), CT_F32(negative_slope)));
cleanup:
    return st;
}

ct_status ct_softmax_forward(ct_context *ctx, const ct_tensor *x, bool log, ct_tensor *y)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx && x && y, CT_ERR_INVALID_ARG, "softmax: NULL argument");
    CT_REQUIRE(x->ndim == 2, CT_ERR_SHAPE, "softmax: x must be (N, F), has %zu dims", x->ndim);
    CT_TRY(ct_tensor_expect(y, "softmax y", 2, x->shape));
    CT_REQUIRE(x->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED, "softmax: more than 2^32 elements");
    CT_TRY(CT_RUN1D(ctx, "act.cl", "softmax_fwd", x->shape[0], CT_T(x), CT_T(y),
                    CT_U32(x->shape[0]), CT_U32(x->shape[1]), CT_U32(log)));
cleanup:
    return st;
}
