/* Mini-batches gathered on the device from a dataset uploaded once (kernels/batch.cl). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/loader.h"
#include "core/internal.h"

struct ct_loader {
    ct_context *ctx;
    ct_loader_options o;
    size_t n, c, h, w;
    cl_mem images, labels, order; /* N*C*H*W bytes, N bytes, N uint32 */
    size_t *perm;                 /* host copy of the order */
    uint32_t *perm32;
    ct_tensor *xbuf, *ybuf;       /* (batch, C, H, W) and (batch) */
    ct_tensor *x, *y;             /* views for the current batch */
    float mean[4], std[4];
    uint64_t epoch;
    int started;
};

void ct_loader_free(ct_loader *l)
{
    if (!l)
        return;
    ct_tensor_free(l->x);
    ct_tensor_free(l->y);
    ct_tensor_free(l->xbuf);
    ct_tensor_free(l->ybuf);
    ct_buffer_free(l->ctx, l->images, l->n * l->c * l->h * l->w);
    ct_buffer_free(l->ctx, l->labels, l->n);
    ct_buffer_free(l->ctx, l->order, l->n * sizeof(uint32_t));
    free(l->perm);
    free(l->perm32);
    free(l);
}

ct_status ct_loader_create(ct_context *ctx, const ct_dataset *ds, const ct_loader_options *o,
                           ct_loader **out)
{
    ct_status st = CT_SUCCESS;
    ct_loader *l = NULL;
    size_t shape[4];

    CT_REQUIRE(ctx && ds && o && out, CT_ERR_INVALID_ARG, "ct_loader_create: NULL argument");
    *out = NULL;
    CT_REQUIRE(o->batch_size >= 1, CT_ERR_INVALID_ARG, "batch size must be at least 1, got %zu",
               o->batch_size);
    ct_dataset_shape(ds, shape);
    CT_REQUIRE(shape[0] >= 1 && shape[0] <= 0xffffffffu, CT_ERR_INVALID_ARG,
               "dataset of %zu samples: the loader takes 1 to 2^32-1", shape[0]);
    CT_REQUIRE(shape[1] >= 1 && shape[1] <= 4, CT_ERR_UNSUPPORTED,
               "the loader takes 1 to 4 channels, the dataset has %zu", shape[1]);
    CT_REQUIRE(o->crop_pad < shape[2] && o->crop_pad < shape[3], CT_ERR_INVALID_ARG,
               "crop padding %zu must be smaller than the image (%zux%zu)", o->crop_pad,
               shape[2], shape[3]);
    l = calloc(1, sizeof *l);
    CT_REQUIRE(l != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    l->ctx = ctx;
    l->o = *o;
    l->o.mean = l->o.std = NULL; /* copied below; the caller's arrays need not live on */
    l->n = shape[0];
    l->c = shape[1];
    l->h = shape[2];
    l->w = shape[3];
    for (size_t c = 0; c < 4; c++) {
        l->mean[c] = 0.0f;
        l->std[c] = 1.0f;
    }
    if (o->normalize) {
        for (size_t c = 0; c < l->c; c++) {
            l->mean[c] = o->mean ? o->mean[c] : (float)ct_dataset_mean(ds, c);
            l->std[c] = o->std ? o->std[c] : (float)ct_dataset_std(ds, c);
            CT_REQUIRE(l->std[c] > 0.0f && isfinite(l->std[c]) && isfinite(l->mean[c]),
                       CT_ERR_INVALID_ARG,
                       "normalisation of channel %zu: std must be finite and > 0, got %g", c,
                       (double)l->std[c]);
        }
    }
    size_t img_bytes = l->n * l->c * l->h * l->w;
    CT_TRY(ct_buffer_alloc(ctx, img_bytes, &l->images));
    CT_TRY(ct_buffer_alloc(ctx, l->n, &l->labels));
    CT_TRY(ct_buffer_alloc(ctx, l->n * sizeof(uint32_t), &l->order));
    CT_CL(clEnqueueWriteBuffer(ctx->queue, l->images, CL_TRUE, 0, img_bytes,
                               ct_dataset_images(ds), 0, NULL, NULL));
    CT_CL(clEnqueueWriteBuffer(ctx->queue, l->labels, CL_TRUE, 0, l->n, ct_dataset_labels(ds), 0,
                               NULL, NULL));
    l->perm = malloc(l->n * sizeof *l->perm);
    l->perm32 = malloc(l->n * sizeof *l->perm32);
    CT_REQUIRE(l->perm && l->perm32, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    size_t b = o->batch_size < l->n ? o->batch_size : l->n;
    CT_TRY(ct_tensor_create(ctx, 4, (size_t[]){b, l->c, l->h, l->w}, &l->xbuf));
    CT_TRY(ct_tensor_create(ctx, 1, (size_t[]){b}, &l->ybuf));
    *out = l;
    l = NULL;
cleanup:
    ct_loader_free(l);
    return st;
}

ct_status ct_loader_start_epoch(ct_loader *l, uint64_t epoch)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(l != NULL, CT_ERR_INVALID_ARG, "ct_loader_start_epoch: NULL loader");
    if (l->o.shuffle) {
        ct_shuffle_permutation(l->o.seed, epoch, l->n, l->perm);
    } else {
        for (size_t i = 0; i < l->n; i++)
            l->perm[i] = i;
    }
    for (size_t i = 0; i < l->n; i++)
        l->perm32[i] = (uint32_t)l->perm[i];
    /* Blocking: the host array is rewritten next epoch, while earlier batches may still
     * be queued; once per epoch this costs nothing measurable. */
    CT_CL(clEnqueueWriteBuffer(l->ctx->queue, l->order, CL_TRUE, 0, l->n * sizeof(uint32_t),
                               l->perm32, 0, NULL, NULL));
    l->epoch = epoch;
    l->started = 1;
cleanup:
    return st;
}

size_t ct_loader_batch_count(const ct_loader *l)
{
    if (!l)
        return 0;
    size_t b = l->o.batch_size;
    return l->o.drop_last ? l->n / b : (l->n + b - 1) / b;
}

size_t ct_loader_sample_count(const ct_loader *l)
{
    return l ? l->n : 0;
}

ct_status ct_loader_batch(ct_loader *l, size_t b, ct_tensor **x, ct_tensor **y)
{
    ct_status st = CT_SUCCESS;
    cl_kernel k = NULL;
    CT_REQUIRE(l && x && y, CT_ERR_INVALID_ARG, "ct_loader_batch: NULL argument");
    CT_REQUIRE(l->started, CT_ERR_INVALID_ARG, "ct_loader_batch before ct_loader_start_epoch");
    CT_REQUIRE(b < ct_loader_batch_count(l), CT_ERR_INVALID_ARG,
               "batch %zu out of range: the epoch has %zu", b, ct_loader_batch_count(l));
    size_t start = b * l->o.batch_size;
    size_t n = l->n - start < l->o.batch_size ? l->n - start : l->o.batch_size;
    ct_tensor_free(l->x);
    ct_tensor_free(l->y);
    l->x = l->y = NULL;
    CT_TRY(ct_tensor_view(l->xbuf, 0, 4, (size_t[]){n, l->c, l->h, l->w}, &l->x));
    CT_TRY(ct_tensor_view(l->ybuf, 0, 1, (size_t[]){n}, &l->y));
    cl_float4 mean = {{l->mean[0], l->mean[1], l->mean[2], l->mean[3]}};
    cl_float4 sd = {{l->std[0], l->std[1], l->std[2], l->std[3]}};
    CT_TRY(ct_kernel_get(l->ctx, "batch.cl", "ct_gather_batch", NULL, &k));
    CT_TRY(CT_SETARGS(k, "ct_gather_batch", CT_MEM(l->images), CT_MEM(l->labels),
                      CT_MEM(l->order), CT_U32(start), CT_U32(n), CT_U32(l->c), CT_U32(l->h),
                      CT_U32(l->w), CT_T(l->x), CT_T(l->y)));
    /* float4 arguments have no ct_arg kind: set them by index after the 12 above. */
    CT_CL(clSetKernelArg(k, 12, sizeof mean, &mean));
    CT_CL(clSetKernelArg(k, 13, sizeof sd, &sd));
    CT_TRY(CT_SETARGS_AT(k, "ct_gather_batch", 14, CT_U32(l->o.crop_pad), CT_U32(l->o.hflip),
                         CT_U32(l->o.seed & 0xffffffffu), CT_U32(l->o.seed >> 32),
                         CT_U32(l->epoch)));
    size_t rows = n * l->c * l->h;
    CT_TRY(ct_launch(l->ctx, k, "gather_batch", 1, &rows, NULL));
    *x = l->x;
    *y = l->y;
cleanup:
    return st;
}

const float *ct_loader_mean(const ct_loader *l)
{
    return l ? l->mean : NULL;
}

const float *ct_loader_std(const ct_loader *l)
{
    return l ? l->std : NULL;
}
