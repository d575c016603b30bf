/* lib/nn/layer.h — the layer objects a ct_model is made of.
 *
 * Every layer kind fills one small operations table; the model loop only calls through
 * it. A layer holds views into the model's flat parameter, gradient and buffer tensors
 * (never memory of its own, apart from BatchNorm's saved statistics), and knows the
 * per-sample shapes of its input and output.
 *
 * Shapes in this file are per sample (no N): (C, H, W) for images, (F) for features.
 */
#ifndef CLTRAIN_NN_LAYER_H
#define CLTRAIN_NN_LAYER_H

#include <stdbool.h>
#include <stdint.h>

#include "cltrain/model.h"
#include "nn/ops.h"

#define CT_LAYER_MAX_PARAMS  2 /* weight, bias */
#define CT_LAYER_MAX_BUFFERS 3 /* running_mean, running_var, num_batches_tracked */
#define CT_LAYER_NAME_MAX    48

/* How backward treats the gradient buffers (chosen by the model when it is built). */
typedef enum ct_grad_mode {
    CT_GRAD_NEW,     /* dx goes to a different buffer than dy */
    CT_GRAD_INPLACE, /* dx may overwrite dy (element-wise ops) */
    CT_GRAD_SKIP     /* nothing to compute: dx is dy, possibly reshaped */
} ct_grad_mode;

/* A named tensor inside one of the model's flat tensors. */
typedef struct ct_named_slot {
    char name[CT_LAYER_NAME_MAX]; /* "3.weight" */
    size_t ndim;                  /* 0 for a scalar */
    size_t shape[CT_MAX_DIMS];
    size_t numel;
    size_t offset; /* element offset in the flat tensor */
} ct_named_slot;

typedef struct ct_layer ct_layer;

typedef struct ct_layer_ops {
    /* Host only: from desc and the input shape, set the output shape, the parameter
     * and buffer shapes (offsets are assigned by the model) and the op parameters.
     * CT_ERR_SHAPE with a message naming the layer when the input does not fit. */
    ct_status (*setup)(ct_layer *l);
    /* x: (N, in_shape...)  y: (N, out_shape...). */
    ct_status (*forward)(ct_layer *l, ct_context *ctx, const ct_tensor *x, ct_tensor *y,
                         bool training);
    /* dy: like y; dx: like x, overwritten, or NULL when no layer below needs it.
     * Parameter gradients are accumulated. NULL for kinds without a backward. */
    ct_status (*backward)(ct_layer *l, ct_context *ctx, const ct_tensor *x, const ct_tensor *y,
                          const ct_tensor *dy, ct_tensor *dx);
    /* Releases what setup/bind made (views, saved statistics); not the struct itself. */
    void (*free)(ct_layer *l);
} ct_layer_ops;

struct ct_layer {
    const ct_layer_ops *ops;
    ct_layer_desc desc;
    size_t index; /* position in the torch.nn.Sequential */

    size_t in_ndim, in_shape[3];
    size_t out_ndim, out_shape[3];

    /* parameters, in model.parameters() order, and their views (param[i], grad[i]) */
    size_t nparams;
    ct_named_slot param_slot[CT_LAYER_MAX_PARAMS];
    double init_bound[CT_LAYER_MAX_PARAMS]; /* > 0: U(-b, b); else constant init_value */
    float init_value[CT_LAYER_MAX_PARAMS];
    ct_tensor *param[CT_LAYER_MAX_PARAMS];
    ct_tensor *grad[CT_LAYER_MAX_PARAMS];

    size_t nbuffers;
    ct_named_slot buffer_slot[CT_LAYER_MAX_BUFFERS];
    float buffer_init[CT_LAYER_MAX_BUFFERS];
    ct_tensor *buffer[CT_LAYER_MAX_BUFFERS];
    uint64_t batches_tracked; /* host copy of num_batches_tracked */

    /* op parameters */
    ct_conv2d_params conv;
    ct_pool2d_params pool;
    ct_act_kind act;
    ct_tensor *save_mean, *save_invstd; /* batchnorm, (C) each */

    /* decided by the model */
    bool fused_relu;    /* conv/linear: ReLU applied in forward (the next layer is a no-op) */
    bool relu_is_fused; /* relu: its work is done by the conv/linear before it */
    bool relu_in;       /* maxpool: its input came out of a ReLU, whose backward it does */
    bool alias_output;  /* output is the input's storage (fused relu, flatten) */
    /* conv: its (ReLU and) 2x2 max pool run inside it (ct_conv2d_pool_forward); the
     * block ends at layer pool_end, whose output it writes; its own output is never
     * stored, only pool_idx (per batch: the argmax bytes for backward) */
    bool pool_fused;
    size_t pool_end;
    ct_tensor *pool_idx;
    bool in_pool_block; /* relu/maxpool whose work a pool_fused conv does */
    ct_grad_mode grad_mode;
    uint64_t rng_seed, rng_counter; /* dropout: set by the model before each forward */
};

/* The operations table of a kind (NULL for an invalid kind). lib/nn/model.c */
const ct_layer_ops *ct_layer_ops_for(ct_layer_kind kind);

/* Initialises l for desc at Sequential index `index`, input shape in_shape, and runs
 * setup. Host only. lib/nn/model.c */
ct_status ct_layer_setup(ct_layer *l, const ct_layer_desc *desc, size_t index, size_t in_ndim,
                         const size_t *in_shape);

/* Host-side initialisation (lib/nn/init.c). */
typedef struct ct_init_rng {
    uint64_t s;
} ct_init_rng;
uint64_t ct_init_rng_next(ct_init_rng *r);
/* Fills n floats: U(-bound, bound) from r when bound > 0, else `value`. */
void ct_init_fill(float *dst, size_t n, double bound, float value, ct_init_rng *r);

#endif
