/* Gradient clipping on the flat gradient buffer: by global L2 norm
 * (torch.nn.utils.clip_grad_norm_) and by value (clip_grad_value_), all on the device.
 *
 * The norm takes three launches and no host round-trip: per-chunk partial sums of
 * squares, one work-item adding them in order and deriving the coefficient, and a scale
 * that reads the coefficient from device memory. Scratch slot SLOT_PART holds the
 * partials, then the coefficient (and the norm when the caller does not want it).
 */
#include <math.h>

#include "cltrain/optim.h"
#include "core/internal.h"

/* lib/train/optim.c: the options kernels/optim.cl is built with, and the elements per
 * work-item of its element-wise kernels. */
unsigned ct_optim_chunk(const ct_context *ctx);
const char *ct_optim_build_options(const ct_context *ctx);

#define CLIP_CHUNK 1024u /* must match -DCLIP_CHUNK in ct_optim_build_options() */
#define SLOT_PART 0

static ct_status run(ct_context *ctx, const char *name, size_t n, size_t nargs,
                     const ct_arg *args)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_TRY(ct_kernel_get(ctx, "optim.cl", name, ct_optim_build_options(ctx), &k));
    CT_TRY(ct_kernel_setargs(k, name, nargs, args));
    CT_TRY(ct_launch(ctx, k, name, 1, &n, NULL));
cleanup:
    return st;
}
#define RUN(ctx, name, n, ...)                                                             \
    run((ctx), (name), (n), sizeof((ct_arg[]){__VA_ARGS__}) / sizeof(ct_arg),              \
        (ct_arg[]){__VA_ARGS__})

static ct_status check_grads(ct_context *ctx, const ct_tensor *grads, const char *what)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ctx != NULL && grads != NULL, CT_ERR_INVALID_ARG, "%s: NULL context or grads",
               what);
    CT_REQUIRE(grads->ctx == ctx, CT_ERR_INVALID_ARG, "%s: grads belong to another context",
               what);
    CT_REQUIRE(grads->numel <= 0xffffffffu - CLIP_CHUNK, CT_ERR_UNSUPPORTED,
               "%s: %zu elements exceed the kernels' 32-bit indices", what, grads->numel);
cleanup:
    return st;
}

static ct_status norm_and_clip(ct_context *ctx, ct_tensor *grads, double max_norm, bool clip,
                               ct_tensor *norm_out, const char *what)
{
    ct_status st = CT_SUCCESS;
    cl_mem part = NULL;
    CT_TRY(check_grads(ctx, grads, what));
    CT_REQUIRE(!(max_norm < 0) && !isnan(max_norm), CT_ERR_INVALID_ARG,
               "%s: max_norm must be >= 0, got %g", what, max_norm);
    CT_REQUIRE(norm_out == NULL || (norm_out->ctx == ctx && norm_out->numel == 1), CT_ERR_SHAPE,
               "%s: norm_out must be a 1-element tensor of the same context", what);
    const size_t n = grads->numel;
    const size_t nparts = (n + CLIP_CHUNK - 1) / CLIP_CHUNK;
    CT_TRY(ct_scratch_get(ctx, SLOT_PART, (nparts + 2) * sizeof(float), &part));
    CT_TRY(RUN(ctx, "clip_sumsq", nparts, CT_T(grads), CT_U32(n), CT_MEM(part)));
    if (norm_out)
        CT_TRY(RUN(ctx, "clip_finish", 1, CT_MEM(part), CT_U32(nparts), CT_T(norm_out),
                   CT_F32(max_norm)));
    else
        CT_TRY(RUN(ctx, "clip_finish", 1, CT_MEM(part), CT_U32(nparts), CT_MEM(part),
                   CT_U32(nparts + 1), CT_F32(max_norm)));
    if (clip) {
        const size_t chunk = ct_optim_chunk(ctx);
        CT_TRY(RUN(ctx, "clip_scale", (n + chunk - 1) / chunk, CT_T(grads), CT_U32(n),
                   CT_MEM(part), CT_U32(nparts)));
    }
cleanup:
    return st;
}

ct_status ct_clip_grad_norm(ct_context *ctx, ct_tensor *grads, double max_norm,
                            ct_tensor *norm_out)
{
    return norm_and_clip(ctx, grads, max_norm, true, norm_out, "ct_clip_grad_norm");
}

ct_status ct_grad_norm(ct_context *ctx, const ct_tensor *grads, ct_tensor *norm_out)
{
    /* the grads are only read when clip is false */
    return norm_and_clip(ctx, (ct_tensor *)grads, INFINITY, false, norm_out, "ct_grad_norm");
}

ct_status ct_clip_grad_value(ct_context *ctx, ct_tensor *grads, double clip_value)
{
    ct_status st = CT_SUCCESS;
    CT_TRY(check_grads(ctx, grads, "ct_clip_grad_value"));
    CT_REQUIRE(clip_value >= 0, CT_ERR_INVALID_ARG,
               "ct_clip_grad_value: clip_value must be >= 0, got %g", clip_value);
    const size_t n = grads->numel, chunk = ct_optim_chunk(ctx);
    /* torch clamps with the value converted to the tensor's dtype */
    const float v = (float)clip_value;
    CT_TRY(RUN(ctx, "clip_value", (n + chunk - 1) / chunk, CT_T(grads), CT_U32(n), CT_F32(-v),
               CT_F32(v)));
cleanup:
    return st;
}
