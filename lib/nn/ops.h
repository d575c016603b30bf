/* lib/nn/ops.h — the network's functional operations on device tensors.
 *
 * Layers (lib/nn/model.c) are thin objects around these. Conventions for all of them:
 * - Shapes are NCHW for images and (N, F) for features; every function checks the shapes
 *   it is given and returns CT_ERR_SHAPE with a message naming the tensor otherwise.
 * - Forward writes its output; backward OVERWRITES the input gradient `dx` and
 *   ACCUMULATES (+=) parameter gradients (dw, db, dgamma, dbeta), as PyTorch's .grad does,
 *   so zero_grad() before backward gives plain gradients and skipping it accumulates.
 * - Optional tensors are NULL when not wanted (dx of the first layer, a missing bias).
 * - Everything is enqueued on the context's queue; nothing waits.
 * - Scratch memory comes from ct_scratch_get(); no allocation in steady state.
 */
#ifndef CLTRAIN_NN_OPS_H
#define CLTRAIN_NN_OPS_H

#include <stdbool.h>
#include <stdint.h>

#include "core/internal.h"

/* ---- conv2d (lib/nn/conv2d.c, kernels/conv.cl) ------------------------------------ */

typedef struct ct_conv2d_params {
    size_t stride_h, stride_w; /* >= 1 */
    size_t pad_h, pad_w;       /* zero padding on both sides */
    size_t dil_h, dil_w;       /* >= 1 */
    size_t groups;             /* >= 1, divides C and K */
} ct_conv2d_params;

/* Output size of one spatial dimension: (in + 2*pad - dil*(k-1) - 1)/stride + 1, or 0
 * when the kernel does not fit. */
size_t ct_conv_out_size(size_t in, size_t k, size_t stride, size_t pad, size_t dil);

/* y = conv(x, w) + b, then max(y, 0) when `relu`.
 * x: (N, C, H, W)  w: (K, C/groups, R, S)  b: (K) or NULL  y: (N, K, P, Q) */
ct_status ct_conv2d_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                            const ct_tensor *b, const ct_conv2d_params *p, bool relu, ct_tensor *y);

/* Gradients of conv (without the fused ReLU: the caller passes dy already masked).
 * dy: (N, K, P, Q); dx: like x (overwritten) or NULL; dw: like w (+=); db: (K) (+=) or NULL. */
ct_status ct_conv2d_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                             const ct_tensor *dy, const ct_conv2d_params *p, ct_tensor *dx,
                             ct_tensor *dw, ct_tensor *db);

/* Conv2d, its ReLU (when `relu`) and a 2x2 max pool at stride 2 without padding, fused:
 * the conv output is never stored. y: (N, K, P/2, Q/2), the pooled output (floor mode);
 * idx: NULL (inference) or a tensor of at least N*K*(P/2)*(Q/2) BYTES (numel * 4 >= that),
 * receiving each window's first maximum in scan order (0..3, kernels/pool.cl's rule).
 * Only for convolutions ct_conv2d_pool_fusable() accepts; CT_ERR_UNSUPPORTED otherwise. */
ct_status ct_conv2d_pool_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                                 const ct_tensor *b, const ct_conv2d_params *p, bool relu,
                                 ct_tensor *y, ct_tensor *idx);
/* The gradients of that block from the pooled gradient dy (like y), the pooled output y
 * and the idx of its training forward: dx (overwritten) or NULL, dw (+=), db (+=) or NULL.
 * The same numbers as maxpool2d_backward(relu_in) followed by conv2d_backward. */
ct_status ct_conv2d_pool_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                                  const ct_tensor *dy, const ct_tensor *y, const ct_tensor *idx,
                                  const ct_conv2d_params *p, bool relu, ct_tensor *dx,
                                  ct_tensor *dw, ct_tensor *db);
/* Whether a conv with per-sample input in_chw, k output channels and an r x s kernel has
 * the fused kernels: stride 1, output channels per group filling conv_kv's vectors
 * (at most a fifth of padding), padding <= (kernel-1)*dilation, output at least 2x2. */
bool ct_conv2d_pool_fusable(const ct_context *ctx, const size_t in_chw[3], size_t k, size_t r,
                            size_t s, const ct_conv2d_params *p);
/* Whether ct_conv2d_forward runs this convolution as im2col + GEMM (CONV_GEMM bit 2 of its
 * path: the GPUs' default, ungrouped layers): a model then keeps its pool apart, since the
 * GEMM has no pool fused and is faster than the fused kernel there. */
bool ct_conv2d_forward_as_gemm(const ct_context *ctx, const size_t in_chw[3], size_t k, size_t r,
                               size_t s, const ct_conv2d_params *p);

/* ---- pooling (lib/nn/pool.c, kernels/pool.cl) ------------------------------------- */

typedef struct ct_pool2d_params {
    size_t kernel_h, kernel_w;
    size_t stride_h, stride_w; /* PyTorch's default stride is the kernel size */
    size_t pad_h, pad_w;       /* <= kernel/2, as PyTorch requires */
    bool ceil_mode;
    bool count_include_pad; /* AvgPool2d only; PyTorch's default is true */
} ct_pool2d_params;

/* Output size of one spatial dimension, PyTorch's pooling_output_shape (dilation 1):
 * floor or ceil of (in + 2*pad - k)/stride, plus one; in ceil mode a last window starting
 * past the input and left padding is dropped. 0 when no window fits. */
size_t ct_pool_out_size(size_t in, size_t k, size_t stride, size_t pad, bool ceil_mode);

/* Whether p is a 2x2 window at stride 2 without padding whose windows tile an h x w
 * input exactly (floor of h/2, w/2 outputs): the vectorised maxpool2_* kernels, and the
 * pool a conv can fuse (ct_conv2d_pool_*). */
bool ct_pool2d_is_2x2(const ct_pool2d_params *p, size_t h, size_t w);

/* x: (N, C, H, W) -> y: (N, C, P, Q). Padding counts as -inf for max. */
ct_status ct_maxpool2d_forward(ct_context *ctx, const ct_tensor *x, const ct_pool2d_params *p,
                               ct_tensor *y);
/* dx (overwritten) from dy, routing each dy to the first maximum of its window in scan
 * order (PyTorch's choice). With `relu_in` (x itself came out of a ReLU) the result is
 * additionally multiplied by (x > 0): the ReLU backward fused into the pooling backward. */
ct_status ct_maxpool2d_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                                const ct_tensor *dy, const ct_pool2d_params *p, bool relu_in,
                                ct_tensor *dx);
ct_status ct_avgpool2d_forward(ct_context *ctx, const ct_tensor *x, const ct_pool2d_params *p,
                               ct_tensor *y);
ct_status ct_avgpool2d_backward(ct_context *ctx, const ct_tensor *dy, const ct_pool2d_params *p,
                                ct_tensor *dx);
/* Global average pooling: x (N, C, H, W) -> y (N, C). */
ct_status ct_gap_forward(ct_context *ctx, const ct_tensor *x, ct_tensor *y);
ct_status ct_gap_backward(ct_context *ctx, const ct_tensor *dy, ct_tensor *dx);

/* ---- linear (lib/nn/linear.c; GEMM through CLBlast) -------------------------------- */

/* y = x w^T + b, then ReLU when `relu`. x: (N, IN)  w: (OUT, IN)  b: (OUT) or NULL  y: (N, OUT) */
ct_status ct_linear_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                            const ct_tensor *b, bool relu, ct_tensor *y);
/* dy: (N, OUT) (already ReLU-masked); dx (N, IN) overwritten or NULL; dw (+=); db (+=) or NULL. */
ct_status ct_linear_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *w,
                             const ct_tensor *dy, ct_tensor *dx, ct_tensor *dw, ct_tensor *db);

/* ---- element-wise activations (lib/nn/act.c, kernels/act.cl) ---------------------- */

typedef enum ct_act_kind {
    CT_ACT_RELU,
    CT_ACT_LEAKY_RELU, /* slope = negative_slope (PyTorch default 0.01) */
    CT_ACT_SIGMOID,
    CT_ACT_TANH
} ct_act_kind;

/* y = act(x), any shape, x and y same numel (y may be x: in place). */
ct_status ct_act_forward(ct_context *ctx, ct_act_kind kind, float negative_slope,
                         const ct_tensor *x, ct_tensor *y);
/* dx = dy * act'(.), using x for ReLU/LeakyReLU and y for Sigmoid/Tanh (both given).
 * dx may alias dy. */
ct_status ct_act_backward(ct_context *ctx, ct_act_kind kind, float negative_slope,
                          const ct_tensor *x, const ct_tensor *y, const ct_tensor *dy,
                          ct_tensor *dx);

/* Row-wise softmax / log-softmax over the last dimension of (N, F). Inference only. */
ct_status ct_softmax_forward(ct_context *ctx, const ct_tensor *x, bool log, ct_tensor *y);

/* ---- dropout (lib/nn/dropout.c, kernels/dropout.cl) ------------------------------- */

/* Training-mode dropout: y = x * keep / (1 - p), keep ~ Bernoulli(1-p) drawn by a
 * counter-based RNG from (seed, counter), so the same seed and counter give the same
 * mask on every device. The mask is not stored: backward regenerates it.
 * p in [0, 1); p == 0 copies. */
ct_status ct_dropout_forward(ct_context *ctx, const ct_tensor *x, float p, uint64_t seed,
                             uint64_t counter, ct_tensor *y);
ct_status ct_dropout_backward(ct_context *ctx, const ct_tensor *dy, float p, uint64_t seed,
                              uint64_t counter, ct_tensor *dx);

/* ---- batch norm (lib/nn/norm.c, kernels/norm.cl) ---------------------------------- */

/* BatchNorm over (N, C, H, W) (BatchNorm2d) or (N, C) (BatchNorm1d), per channel C.
 * Training: batch statistics (biased variance to normalise, unbiased for the running
 * update: running = (1-momentum)*running + momentum*stat, as PyTorch), saves mean and
 * inverse std for backward. Eval: running statistics. gamma/beta (C) may be NULL
 * (affine=false). save_mean/save_invstd: (C) scratch owned by the layer. */
typedef struct ct_bn_params {
    float eps;      /* 1e-5 */
    float momentum; /* 0.1 */
    bool training;
} ct_bn_params;
ct_status ct_batchnorm_forward(ct_context *ctx, const ct_tensor *x, const ct_tensor *gamma,
                               const ct_tensor *beta, ct_tensor *running_mean,
                               ct_tensor *running_var, const ct_bn_params *p, ct_tensor *save_mean,
                               ct_tensor *save_invstd, ct_tensor *y);
/* Training-mode backward. dx overwritten (or NULL); dgamma, dbeta (+=) or NULL. */
ct_status ct_batchnorm_backward(ct_context *ctx, const ct_tensor *x, const ct_tensor *gamma,
                                const ct_tensor *save_mean, const ct_tensor *save_invstd,
                                const ct_tensor *dy, ct_tensor *dx, ct_tensor *dgamma,
                                ct_tensor *dbeta);

#endif
