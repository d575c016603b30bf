/* cltrain/tensor.h — float32 device tensors of up to 4 dimensions (NCHW, row-major).
 *
 * A tensor either owns a device buffer or is a view: an element offset and a shape
 * inside another tensor's buffer. A view does not own memory and must be freed before
 * the tensor it looks into. Kernels receive (buffer, element offset) pairs, so views need
 * no alignment.
 */
#ifndef CLTRAIN_TENSOR_H
#define CLTRAIN_TENSOR_H

#include <stddef.h>

#include "cltrain/device.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CT_MAX_DIMS 4

typedef struct ct_tensor ct_tensor;

/* New tensor of the given shape (1 <= ndim <= 4, every dim >= 1), contents undefined.
 * Checked against the device's max allocation and global memory before allocating. */
ct_status ct_tensor_create(ct_context *ctx, size_t ndim, const size_t *shape, ct_tensor **out);
/* Same, filled with zeros (enqueued, not waited for). */
ct_status ct_tensor_zeros(ct_context *ctx, size_t ndim, const size_t *shape, ct_tensor **out);

/* A view of `base`: `shape` elements starting at element `offset` of base's storage.
 * The view must fit inside base's storage. The caller frees it (before base). */
ct_status ct_tensor_view(ct_tensor *base, size_t offset, size_t ndim, const size_t *shape,
                         ct_tensor **out);

void ct_tensor_free(ct_tensor *t);

/* Changes the shape of a tensor in place, keeping numel (e.g. flatten (N,C,H,W) -> (N,CHW)). */
ct_status ct_tensor_reshape(ct_tensor *t, size_t ndim, const size_t *shape);

/* Copies `count` floats (must equal numel) host -> device. Blocking: `host` may be reused
 * as soon as it returns. */
ct_status ct_tensor_upload(ct_tensor *t, const float *host, size_t count);
/* Copies `count` floats (must equal numel) device -> host. Waits for the queue. */
ct_status ct_tensor_download(const ct_tensor *t, float *host, size_t count);
/* Sets every element to `value` (enqueued). */
ct_status ct_tensor_fill(ct_tensor *t, float value);
/* dst <- src, same numel (enqueued). */
ct_status ct_tensor_copy(ct_tensor *dst, const ct_tensor *src);

size_t ct_tensor_ndim(const ct_tensor *t);
size_t ct_tensor_dim(const ct_tensor *t, size_t i); /* 0 when i >= ndim */
size_t ct_tensor_numel(const ct_tensor *t);
ct_context *ct_tensor_context(const ct_tensor *t);

#ifdef __cplusplus
}
#endif
#endif
