/* lib/nn/dropout.c — training-mode dropout whose mask is a pure function of
 * (seed, counter, element index): Philox-4x32-10, the stream documented in
 * kernels/dropout.cl. Nothing is stored between forward and backward; both run the same
 * kernel, so the backward multiplies dy by exactly the forward's mask. */
#include <math.h>

#include "nn/ops.h"

/* Keep when the element's 32-bit word < thr: P(keep) = thr / 2^32 = 1 - p (to 2^-32). */
static cl_uint keep_threshold(float p)
{
    double t = floor((1.0 - (double)p) * 4294967296.0);
    if (t >= 4294967295.0)
        return 0xFFFFFFFFu;
    return t <= 0.0 ? 0u : (cl_uint)t;
}

static ct_status dropout_apply(ct_context *ctx, const char *what, const ct_tensor *in, float p,
                               uint64_t seed, uint64_t counter, ct_tensor *out)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx && in && out, CT_ERR_INVALID_ARG, "dropout %s: NULL argument", what);
    CT_REQUIRE(p >= 0.0f && p < 1.0f, CT_ERR_INVALID_ARG,
               "dropout %s: p = %g must be in [0, 1)", what, (double)p);
    CT_REQUIRE(in->numel == out->numel, CT_ERR_SHAPE, "dropout %s: %zu elements in, %zu out",
               what, in->numel, out->numel);
    CT_REQUIRE(in->numel <= UINT32_MAX, CT_ERR_UNSUPPORTED, "dropout %s: more than 2^32 elements",
               what);
    if (p == 0.0f) {
        if (in != out && !(in->mem == out->mem && in->offset == out->offset))
            CT_TRY(ct_tensor_copy(out, in));
        goto cleanup;
    }
    /* PyTorch: scale = 1 / (1 - p) in double, applied to a float tensor. */
    float scale = (float)(1.0 / (1.0 - (double)p));
    CT_TRY(CT_RUN1D(ctx, "dropout.cl", "dropout_apply", (in->numel + 31) / 32, CT_T(in),
                    CT_T(out), CT_U32(in->numel), CT_U32((uint32_t)seed),
                    CT_U32((uint32_t)(seed >> 32)), CT_U32((uint32_t)counter),
                    CT_U32((uint32_t)(counter >> 32)), CT_U32(keep_threshold(p)),
                    CT_F32(scale)));
cleanup:
    return st;
}

ct_status ct_dropout_forward(ct_context *ctx, const ct_tensor *x, float p, uint64_t seed,
                             uint64_t counter, ct_tensor *y)
{
    return dropout_apply(ctx, "forward", x, p, seed, counter, y);
}

ct_status ct_dropout_backward(ct_context *ctx, const ct_tensor *dy, float p, uint64_t seed,
                              uint64_t counter, ct_tensor *dx)
{
    return dropout_apply(ctx, "backward", dy, p, seed, counter, dx);
}
