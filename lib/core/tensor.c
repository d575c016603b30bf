/* Device tensors: allocation, views, transfers, fill and copy. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static ct_status check_shape(size_t ndim, const size_t *shape, size_t *numel)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(ndim >= 1 && ndim <= CT_MAX_DIMS, CT_ERR_SHAPE,
               "tensor rank %zu outside 1..%d", ndim, CT_MAX_DIMS);
    CT_REQUIRE(shape != NULL, CT_ERR_INVALID_ARG, "tensor shape is NULL");
    size_t n = 1;
    for (size_t i = 0; i < ndim; i++) {
        CT_REQUIRE(shape[i] >= 1, CT_ERR_SHAPE, "tensor dimension %zu is 0", i);
        CT_REQUIRE(n <= SIZE_MAX / sizeof(float) / shape[i], CT_ERR_OUT_OF_MEMORY,
                   "tensor shape overflows the address space at dimension %zu", i);
        n *= shape[i];
    }
    *numel = n;
cleanup:
    return st;
}

ct_status ct_tensor_create(ct_context *ctx, size_t ndim, const size_t *shape, ct_tensor **out)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *t = NULL;
    size_t numel = 0;
    CT_REQUIRE(ctx != NULL && out != NULL, CT_ERR_INVALID_ARG, "ct_tensor_create: NULL argument");
    *out = NULL;
    CT_TRY(check_shape(ndim, shape, &numel));
    t = calloc(1, sizeof *t);
    CT_REQUIRE(t != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    t->ctx = ctx;
    t->ndim = ndim;
    memcpy(t->shape, shape, ndim * sizeof *shape);
    t->numel = numel;
    t->capacity = numel;
    CT_TRY(ct_buffer_alloc(ctx, numel * sizeof(float), &t->mem));
    *out = t;
    t = NULL;
cleanup:
    free(t);
    return st;
}

ct_status ct_tensor_zeros(ct_context *ctx, size_t ndim, const size_t *shape, ct_tensor **out)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *t = NULL;
    CT_TRY(ct_tensor_create(ctx, ndim, shape, &t));
    CT_TRY(ct_tensor_fill(t, 0.0f));
    *out = t;
    t = NULL;
cleanup:
    ct_tensor_free(t);
    return st;
}

ct_status ct_tensor_view(ct_tensor *base, size_t offset, size_t ndim, const size_t *shape,
                         ct_tensor **out)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *t = NULL;
    size_t numel = 0;
    CT_REQUIRE(base != NULL && out != NULL, CT_ERR_INVALID_ARG, "ct_tensor_view: NULL argument");
    *out = NULL;
    CT_TRY(check_shape(ndim, shape, &numel));
    /* A view stays inside the elements of the tensor it is taken from. */
    CT_REQUIRE(offset <= base->numel && numel <= base->numel - offset, CT_ERR_SHAPE,
               "view of %zu elements at offset %zu exceeds its base of %zu elements", numel,
               offset, base->numel);
    size_t start = base->offset + offset;
    t = calloc(1, sizeof *t);
    CT_REQUIRE(t != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    t->ctx = base->ctx;
    t->mem = base->mem;
    t->base = base;
    t->offset = start;
    t->capacity = base->capacity;
    t->ndim = ndim;
    memcpy(t->shape, shape, ndim * sizeof *shape);
    t->numel = numel;
    *out = t;
cleanup:
    return st;
}

void ct_tensor_free(ct_tensor *t)
{
    if (!t)
        return;
    if (!t->base)
        ct_buffer_free(t->ctx, t->mem, t->capacity * sizeof(float));
    free(t);
}

ct_status ct_tensor_reshape(ct_tensor *t, size_t ndim, const size_t *shape)
{
    ct_status st = CT_SUCCESS;
    size_t numel = 0;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "ct_tensor_reshape: NULL tensor");
    CT_TRY(check_shape(ndim, shape, &numel));
    CT_REQUIRE(numel == t->numel, CT_ERR_SHAPE, "reshape to %zu elements of a tensor of %zu",
               numel, t->numel);
    t->ndim = ndim;
    memcpy(t->shape, shape, ndim * sizeof *shape);
cleanup:
    return st;
}

ct_status ct_tensor_upload(ct_tensor *t, const float *host, size_t count)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(t != NULL && host != NULL, CT_ERR_INVALID_ARG, "ct_tensor_upload: NULL argument");
    CT_REQUIRE(count == t->numel, CT_ERR_SHAPE, "upload of %zu floats into a tensor of %zu",
               count, t->numel);
    CT_CL(clEnqueueWriteBuffer(t->ctx->queue, t->mem, CL_TRUE, t->offset * sizeof(float),
                               count * sizeof(float), host, 0, NULL, NULL));
cleanup:
    return st;
}

ct_status ct_tensor_download(const ct_tensor *t, float *host, size_t count)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(t != NULL && host != NULL, CT_ERR_INVALID_ARG, "ct_tensor_download: NULL argument");
    CT_REQUIRE(count == t->numel, CT_ERR_SHAPE, "download of %zu floats from a tensor of %zu",
               count, t->numel);
    CT_CL(clEnqueueReadBuffer(t->ctx->queue, t->mem, CL_TRUE, t->offset * sizeof(float),
                              count * sizeof(float), host, 0, NULL, NULL));
cleanup:
    return st;
}

ct_status ct_tensor_fill(ct_tensor *t, float value)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "ct_tensor_fill: NULL tensor");
    CT_TRY(CT_RUN1D(t->ctx, "tensor.cl", "ct_fill", (t->numel + 3) / 4, CT_T(t),
                    CT_U32(t->numel), CT_F32(value)));
cleanup:
    return st;
}

ct_status ct_tensor_copy(ct_tensor *dst, const ct_tensor *src)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(dst != NULL && src != NULL, CT_ERR_INVALID_ARG, "ct_tensor_copy: NULL tensor");
    CT_REQUIRE(dst->numel == src->numel, CT_ERR_SHAPE, "copy of %zu elements into %zu",
               src->numel, dst->numel);
    CT_REQUIRE(dst->ctx == src->ctx, CT_ERR_INVALID_ARG, "copy between two contexts");
    CT_CL(clEnqueueCopyBuffer(dst->ctx->queue, src->mem, dst->mem, src->offset * sizeof(float),
                              dst->offset * sizeof(float), src->numel * sizeof(float), 0, NULL,
                              NULL));
cleanup:
    return st;
}

ct_status ct_tensor_expect(const ct_tensor *t, const char *what, size_t ndim, const size_t *shape)
{
    ct_status st = CT_SUCCESS;
    char want[96] = "", got[96] = "";
    size_t wl = 0, gl = 0;
    CT_REQUIRE(t != NULL, CT_ERR_INVALID_ARG, "%s is NULL", what);
    int same = t->ndim == ndim;
    for (size_t i = 0; i < ndim; i++) {
        wl += (size_t)snprintf(want + wl, sizeof want - wl, "%s%zu", i ? "x" : "", shape[i]);
        if (same && t->shape[i] != shape[i])
            same = 0;
    }
    if (same)
        goto cleanup;
    for (size_t i = 0; i < t->ndim; i++)
        gl += (size_t)snprintf(got + gl, sizeof got - gl, "%s%zu", i ? "x" : "", t->shape[i]);
    CT_FAIL(CT_ERR_SHAPE, "%s has shape %s, expected %s", what, got, want);
cleanup:
    return st;
}

size_t ct_tensor_ndim(const ct_tensor *t) { return t ? t->ndim : 0; }
size_t ct_tensor_dim(const ct_tensor *t, size_t i) { return (t && i < t->ndim) ? t->shape[i] : 0; }
size_t ct_tensor_numel(const ct_tensor *t) { return t ? t->numel : 0; }
ct_context *ct_tensor_context(const ct_tensor *t) { return t ? t->ctx : NULL; }
