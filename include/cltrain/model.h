/* cltrain/model.h — sequential models: layer descriptions, the text spec, and the
 * training-loop calls (zero_grad, forward, backward) with PyTorch's meaning.
 *
 * A model is a list of layers, each with the index it would have in a
 * torch.nn.Sequential, so parameter names match PyTorch's state_dict ("0.weight",
 * "3.bias", ...). All parameters live in ONE contiguous device tensor, in the order of
 * PyTorch's model.parameters() (per layer: weight, then bias), and all gradients in a
 * second tensor with the same layout; the optimizer works on these two flat tensors.
 * BatchNorm running statistics are model buffers, kept in a third flat tensor.
 *
 * Typical step (nothing here waits for the device):
 *
 *     ct_model_zero_grad(m);
 *     ct_model_forward(m, x, &logits);      // logits: (N, 10), owned by the model
 *     ... loss forward/backward giving dlogits ...
 *     ct_model_backward(m, dlogits);        // grads += d loss / d params
 *     ... optimizer step on ct_model_params(m), ct_model_grads(m) ...
 */
#ifndef CLTRAIN_MODEL_H
#define CLTRAIN_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cltrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- layer descriptions ---------------------------------------------------------- */

typedef enum ct_layer_kind {
    CT_LAYER_CONV2D,    /* torch.nn.Conv2d; in_channels inferred from the input */
    CT_LAYER_MAXPOOL2D, /* torch.nn.MaxPool2d */
    CT_LAYER_AVGPOOL2D, /* torch.nn.AvgPool2d */
    CT_LAYER_GAP,       /* global average pool: (N,C,H,W) -> (N,C), like
                           AdaptiveAvgPool2d(1) followed by Flatten */
    CT_LAYER_LINEAR,    /* torch.nn.Linear; in_features inferred from the input */
    CT_LAYER_RELU,
    CT_LAYER_LEAKY_RELU,
    CT_LAYER_SIGMOID,
    CT_LAYER_TANH,
    CT_LAYER_FLATTEN, /* (N, C, H, W) -> (N, C*H*W) */
    CT_LAYER_DROPOUT,
    CT_LAYER_BATCHNORM,   /* BatchNorm2d on (N,C,H,W) input, BatchNorm1d on (N,C) */
    CT_LAYER_SOFTMAX,     /* over the features of (N, F); inference only (no backward) */
    CT_LAYER_LOG_SOFTMAX, /* likewise */
    CT_LAYER_KIND_COUNT
} ct_layer_kind;

/* One layer. Start from ct_layer_desc_default(kind), which holds PyTorch's defaults,
 * and set the fields the kind uses; the others are ignored. */
typedef struct ct_layer_desc {
    ct_layer_kind kind;
    size_t out;                /* conv: out_channels; linear: out_features (required) */
    size_t kernel_h, kernel_w; /* conv, pools (required) */
    size_t stride_h, stride_w; /* conv: 1; pools: 0 means "= kernel" (PyTorch's None) */
    size_t pad_h, pad_w;       /* conv, pools: 0 */
    size_t dil_h, dil_w;       /* conv: 1 */
    size_t groups;             /* conv: 1 */
    bool bias;                 /* conv, linear: true */
    bool ceil_mode;            /* pools: false */
    bool count_include_pad;    /* avgpool: true */
    float negative_slope;      /* leaky relu: 0.01 */
    float p;                   /* dropout: 0.5 */
    float eps;                 /* batchnorm: 1e-5 */
    float momentum;            /* batchnorm: 0.1 */
    bool affine;               /* batchnorm: true (weight and bias parameters) */
} ct_layer_desc;

ct_layer_desc ct_layer_desc_default(ct_layer_kind kind);
/* Shorthands: square kernels, PyTorch defaults for everything else. */
ct_layer_desc ct_layer_conv2d(size_t out_channels, size_t kernel, size_t stride, size_t pad);
ct_layer_desc ct_layer_linear(size_t out_features);
ct_layer_desc ct_layer_maxpool2d(size_t kernel);

/* The spec name of a kind ("conv", "maxpool", ...), or "?" for an invalid kind. */
const char *ct_layer_kind_name(ct_layer_kind kind);
/* The layer as spec text with every option spelled out (a pool's default stride as the
 * kernel size), e.g. "conv(32,3x3,stride=1x1,pad=1x1,dil=1x1,groups=1,bias=1)" or
 * "bn(eps=1e-05,momentum=0.100000001,affine=1)"; ct_spec_parse reads it back to the same
 * description. CT_ERR_INVALID_ARG when it does not fit `cap`. */
ct_status ct_layer_desc_format(const ct_layer_desc *d, char *buf, size_t cap);

/* ---- the text spec ---------------------------------------------------------------- */

/* A spec is a whitespace-separated list of layers, each `name` or `name(args)`, args
 * positional first, then key=value, separated by commas. A size may be `3` or `3x5`
 * (height x width). Names and their arguments:
 *     conv(out, kernel[, stride, pad], dil=1, groups=1, bias=1)
 *     maxpool(kernel[, stride, pad], ceil=0)        stride defaults to kernel
 *     avgpool(kernel[, stride, pad], ceil=0, count_include_pad=1)
 *     gap            linear(out, bias=1)       flatten
 *     relu   leakyrelu(slope=0.01)   sigmoid   tanh
 *     dropout(p=0.5)     bn(eps=1e-5, momentum=0.1, affine=1)
 *     softmax   logsoftmax
 * Aliases: conv2d, maxpool2d, avgpool2d, fc, dense, leaky_relu, batchnorm, batchnorm2d,
 * batchnorm1d, bn2d, bn1d, log_softmax, globalavgpool. Keyword aliases: stride, padding/pad,
 * dilation/dil, kernel_size/kernel/k.
 * The whole spec may instead be a builtin name: "minicnn" is
 *     conv(32,3,pad=1) relu maxpool(2) conv(64,3,pad=1) relu maxpool(2) flatten
 *     linear(128) relu linear(10)
 * On error the message (ct_last_error) is one line naming the token and its 1-based
 * character position, e.g. "spec: unknown layer 'convv' at position 13".
 * *layers is malloc'd; free() it. */
ct_status ct_spec_parse(const char *spec, ct_layer_desc **layers, size_t *count);

/* The spec a builtin name stands for, or NULL when `name` is not a builtin. */
const char *ct_spec_builtin(const char *name);

/* Host-only shape check of a layer list for one sample of shape in_shape (in_ndim 3:
 * (C, H, W); in_ndim 1: (F)). Gives the output shape of one sample and the number of
 * parameter floats; fails with CT_ERR_SHAPE naming the layer that does not fit. Any of
 * the out-pointers may be NULL. */
ct_status ct_layers_check(const ct_layer_desc *layers, size_t count, size_t in_ndim,
                          const size_t *in_shape, size_t *out_ndim, size_t *out_shape,
                          size_t *param_numel);

/* ---- the model -------------------------------------------------------------------- */

typedef struct ct_model ct_model;

/* Builds a model for inputs of per-sample shape in_shape (in_ndim 3: (C, H, W), or 1:
 * (F)), allocates its parameters and initialises them as PyTorch's defaults from `seed`
 * (see ct_model_init_params). `seed` also seeds dropout. The caller owns *out and frees
 * it with ct_model_free() before the context; every tensor the model hands out is freed
 * with it. */
ct_status ct_model_create(ct_context *ctx, const ct_layer_desc *layers, size_t count,
                          size_t in_ndim, const size_t *in_shape, uint64_t seed, ct_model **out);
/* Same from a text spec (see ct_spec_parse). */
ct_status ct_model_create_spec(ct_context *ctx, const char *spec, size_t in_ndim,
                               const size_t *in_shape, uint64_t seed, ct_model **out);
void ct_model_free(ct_model *m);

/* PyTorch's default initialisation from `seed`: conv and linear weights and biases
 * U(-1/sqrt(fan_in), +1/sqrt(fan_in)) (kaiming_uniform_ with a=sqrt(5), fan_in =
 * in_channels/groups * kh * kw or in_features); batchnorm weight 1, bias 0, running
 * mean 0, running var 1, num_batches_tracked 0. The numbers come from a splitmix64
 * stream seeded with `seed`, drawn in parameter order, u = (next() >> 40) * 2^-24,
 * value = bound * (2u - 1). Generated on the host and uploaded once (blocking). */
ct_status ct_model_init_params(ct_model *m, uint64_t seed);

/* Train mode (the default) keeps what backward needs and uses batch statistics and
 * dropout; eval mode uses running statistics, no dropout, and keeps no backward state. */
void ct_model_set_training(ct_model *m, bool training);
bool ct_model_training(const ct_model *m);

/* Zeroes the gradient tensor (one fill, enqueued). */
ct_status ct_model_zero_grad(ct_model *m);

/* y = model(x). x: (N, in_shape...) with any N >= 1. *y is owned by the model and valid
 * until the next forward. In train mode x must stay unchanged until backward, which
 * reads it. Activations are allocated on the first forward and again only when N
 * changes. Nothing waits for the device. */
ct_status ct_model_forward(ct_model *m, const ct_tensor *x, ct_tensor **y);

/* Back-propagates dy (the shape of the last forward's output) through the last
 * train-mode forward, ACCUMULATING into the gradient tensor (as PyTorch's backward).
 * Fails with CT_ERR_INVALID_ARG when the last forward was in eval mode. */
ct_status ct_model_backward(ct_model *m, const ct_tensor *dy);

/* The flat parameter and gradient tensors, 1-D of ct_model_param_numel() floats. */
ct_tensor *ct_model_params(ct_model *m);
ct_tensor *ct_model_grads(ct_model *m);
size_t ct_model_param_numel(const ct_model *m);

/* Named parameter tensors, in model.parameters() order. shape must hold CT_MAX_DIMS
 * values; offset is the element offset inside the flat tensors. Any out-pointer may be
 * NULL. `name` stays valid while the model lives. */
size_t ct_model_param_count(const ct_model *m);
ct_status ct_model_param_info(const ct_model *m, size_t i, const char **name, size_t *ndim,
                              size_t *shape, size_t *offset);

/* Copies all parameters host <-> device; n must equal ct_model_param_numel(). Blocking. */
ct_status ct_model_set_params(ct_model *m, const float *host, size_t n);
ct_status ct_model_get_params(ct_model *m, float *host, size_t n);

/* Buffers (BatchNorm running_mean, running_var, num_batches_tracked — the latter a
 * count stored as a float, ndim 0), in state_dict order, in one flat tensor (NULL when
 * the model has none). */
size_t ct_model_buffer_count(const ct_model *m);
size_t ct_model_buffer_numel(const ct_model *m);
ct_status ct_model_buffer_info(const ct_model *m, size_t i, const char **name, size_t *ndim,
                               size_t *shape, size_t *offset);
ct_tensor *ct_model_buffers(ct_model *m);
ct_status ct_model_set_buffers(ct_model *m, const float *host, size_t n);
ct_status ct_model_get_buffers(ct_model *m, float *host, size_t n);

/* Dropout randomness: masks come from (seed, counter); each train-mode forward uses one
 * counter value per dropout layer and advances it. Saved and restored by checkpoints. */
void ct_model_get_rng(const ct_model *m, uint64_t *seed, uint64_t *counter);
void ct_model_set_rng(ct_model *m, uint64_t seed, uint64_t counter);

/* Shapes of one sample (without N). shape must hold 3 values. */
void ct_model_input_shape(const ct_model *m, size_t *ndim, size_t *shape);
void ct_model_output_shape(const ct_model *m, size_t *ndim, size_t *shape);

/* Layers, for summaries: a one-line description of layer i such as
 * "0 conv(1->32, 3x3, stride 1, pad 1) +relu -> (32,28,28), 320 params". */
size_t ct_model_layer_count(const ct_model *m);
ct_status ct_model_layer_describe(const ct_model *m, size_t i, char *buf, size_t cap);
/* Layer i's description as the model was built from it. */
ct_status ct_model_layer_desc(const ct_model *m, size_t i, ct_layer_desc *out);

/* Device memory the model holds for its batches (0 before the first forward): `saved`, the
 * layer outputs kept for backward (with the argmax bytes of fused max pools), made for the
 * largest batch the model has run, and `grads`, its two gradient buffers, made for the
 * largest batch it has run in training mode (an evaluation needs none). Smaller batches
 * (an epoch's last batch, evaluation batches) reuse them, nothing is reallocated. Either
 * pointer may be NULL. */
void ct_model_batch_memory(const ct_model *m, size_t *saved, size_t *grads);

#ifdef __cplusplus
}
#endif
#endif
