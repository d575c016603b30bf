/* cltrain/optim.h — optimizers over a flat parameter buffer, and gradient clipping.
 *
 * A model keeps all its parameters in one contiguous device tensor and all gradients in
 * another of the same layout. An optimizer updates that buffer with one kernel launch per
 * step, following PyTorch 1.13's single-tensor (foreach=False) update rules of
 * torch.optim operation by operation (2.x computes Adam's first moment with lerp_, which
 * rounds differently in the last bit): the per-step scalars (bias corrections, step sizes)
 * are computed on the host in double and handed to the kernel as float, and float32
 * arithmetic happens in PyTorch's order, with a fused multiply-add wherever PyTorch's CPU
 * kernels use one (`add(x, alpha=a)` and `addcmul`).
 *
 * Parameter groups carry a learning rate, a weight decay and a momentum (beta1 for
 * Adam/AdamW); element ranges [offset, offset + length) of the flat buffer are assigned to
 * groups, any number of ranges per group (a model's biases are scattered between its
 * weights). Elements outside every range are left alone, like parameters not handed to a
 * torch optimizer.
 *
 * Everything is enqueued on the context's queue; no call here waits, except the state
 * getters, which read device memory back. On PoCL (IEEE sqrt and division) the
 * trajectories are bit-identical to torch on the CPU; see tests/golden/test_optim_golden.c.
 */
#ifndef CLTRAIN_OPTIM_H
#define CLTRAIN_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "cltrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Groups per optimizer: their scalars travel as kernel arguments, so a step stays one
 * launch. Ranges are unlimited (they live in a small device table written once). */
#define CT_OPTIM_MAX_GROUPS 16

typedef enum ct_optim_kind {
    CT_OPTIM_SGD = 0,
    CT_OPTIM_ADAM,
    CT_OPTIM_ADAMW,
    CT_OPTIM_RMSPROP,
    CT_OPTIM_ADAGRAD
} ct_optim_kind;

typedef struct ct_optim_group {
    double lr;           /* > 0 */
    double weight_decay; /* >= 0; 0 for biases and norm parameters, typically */
} ct_optim_group;

typedef struct ct_optim_range {
    size_t offset, length; /* elements [offset, offset + length) of the flat buffers */
    size_t group;          /* index into ct_optim_options.groups */
} ct_optim_range;

/* Hyper-parameters, named and defaulted as in torch.optim. Fields an optimizer does not
 * use are ignored. */
typedef struct ct_optim_options {
    ct_optim_kind kind;
    double lr;           /* > 0. SGD 1e-3 (torch 2.x), Adam/AdamW 1e-3, RMSprop/Adagrad 1e-2 */
    double weight_decay; /* >= 0. L2 added to the gradient; AdamW: decoupled, default 1e-2 */
    bool maximize;       /* ascend instead of descend */
    double momentum;     /* SGD, RMSprop: >= 0, default 0 */
    double dampening;    /* SGD: default 0 */
    bool nesterov;       /* SGD: needs momentum > 0 and dampening 0 */
    double beta1, beta2; /* Adam, AdamW: in [0, 1), default 0.9, 0.999 */
    double eps;          /* >= 0. Adam/AdamW/RMSprop 1e-8, Adagrad 1e-10 */
    bool amsgrad;        /* Adam, AdamW */
    double alpha;        /* RMSprop: smoothing constant >= 0, default 0.99 */
    bool centered;       /* RMSprop */
    double lr_decay;     /* Adagrad: >= 0, default 0 */
    double initial_accumulator_value; /* Adagrad: >= 0, default 0 */
    /* Parameter groups and the ranges that belong to them (both copied). n_groups == 0:
     * one group with `lr` and `weight_decay` above. n_ranges == 0: the whole buffer
     * belongs to group 0 (only allowed with at most one group). Ranges must not overlap;
     * at most CT_OPTIM_MAX_GROUPS groups. */
    const ct_optim_group *groups;
    size_t n_groups;
    const ct_optim_range *ranges;
    size_t n_ranges;
} ct_optim_options;

/* PyTorch's defaults for `kind`, one group over everything. */
ct_optim_options ct_optim_defaults(ct_optim_kind kind);

/* "sgd", "adam", "adamw", "rmsprop", "adagrad". */
const char *ct_optim_kind_name(ct_optim_kind kind);

typedef struct ct_optim ct_optim;

/* Creates an optimizer for `params` (updated in place at each step) driven by `grads`
 * (same numel, same context; read only). The optimizer keeps pointers to both tensors,
 * which must outlive it; it owns its state buffers. Invalid options are
 * CT_ERR_INVALID_ARG with a message naming the option and its value. */
ct_status ct_optim_create(ct_context *ctx, const ct_optim_options *o, ct_tensor *params,
                          ct_tensor *grads, ct_optim **out);
void ct_optim_free(ct_optim *opt);

/* One update of every group from the current gradients: a single kernel launch. */
ct_status ct_optim_step(ct_optim *opt);

ct_optim_kind ct_optim_get_kind(const ct_optim *opt);
size_t ct_optim_group_count(const ct_optim *opt);
/* Steps taken so far (PyTorch's state['step']). */
uint64_t ct_optim_get_step(const ct_optim *opt);

/* Learning rate of a group (what schedules set): any finite value, as in torch. */
ct_status ct_optim_set_lr(ct_optim *opt, size_t group, double lr);
ct_status ct_optim_get_lr(const ct_optim *opt, size_t group, double *lr);
ct_status ct_optim_set_weight_decay(ct_optim *opt, size_t group, double weight_decay);
/* Momentum of a group for SGD and RMSprop, beta1 for Adam and AdamW (what OneCycleLR
 * cycles); CT_ERR_UNSUPPORTED for Adagrad. Setting a non-zero momentum on an SGD or
 * RMSprop optimizer created without one allocates its momentum buffer. */
ct_status ct_optim_set_momentum(ct_optim *opt, size_t group, double momentum);
ct_status ct_optim_get_momentum(const ct_optim *opt, size_t group, double *momentum);

/* ---- state, for checkpoints ------------------------------------------------------ *
 * The optimizer's state is a list of named host arrays, to be written wherever the caller
 * likes (a safetensors checkpoint) and read back into an optimizer created with the same
 * options over a buffer of the same size; the steps that follow are then bit-identical to
 * those of the optimizer it came from. Names follow torch.optim's state keys:
 *   "step"           F64, 1 value: steps taken (an integer)
 *   "lr"             F64, one per group
 *   "weight_decay"   F64, one per group
 *   "momentum"       F64, one per group (SGD, RMSprop) / "beta1" (Adam, AdamW)
 *   "momentum_buffer_ready" F64, one per group, 0 or 1 (SGD: PyTorch's buffer-is-None)
 *   F32, numel of the parameter buffer each: "momentum_buffer" (SGD, RMSprop with
 *   momentum), "exp_avg", "exp_avg_sq", "max_exp_avg_sq" (amsgrad), "square_avg",
 *   "grad_avg" (centered), "sum" (Adagrad). */
typedef enum ct_state_dtype { CT_STATE_F32 = 0, CT_STATE_F64 = 1 } ct_state_dtype;

typedef struct ct_optim_state_info {
    const char *name; /* static string */
    size_t numel;
    ct_state_dtype dtype; /* the host array is float (F32) or double (F64) */
} ct_optim_state_info;

size_t ct_optim_state_count(const ct_optim *opt);
ct_status ct_optim_state_info_at(const ct_optim *opt, size_t index, ct_optim_state_info *out);
/* Copies entry `name` into `host` (`count` must equal its numel; float* or double* by its
 * dtype). Buffers are read back from the device: this waits for the queue. */
ct_status ct_optim_state_get(ct_optim *opt, const char *name, void *host, size_t count);
/* Replaces entry `name` from `host` (blocking upload for buffers). Unknown names are
 * CT_ERR_NOT_FOUND; a wrong count CT_ERR_SHAPE. */
ct_status ct_optim_state_set(ct_optim *opt, const char *name, const void *host, size_t count);

/* ---- gradient clipping ------------------------------------------------------------ */

/* torch.nn.utils.clip_grad_norm_(max_norm, norm_type=2) over the whole flat gradient:
 * total = ||grads||_2, coef = max_norm / (total + 1e-6) clamped to at most 1, grads *=
 * coef, all on the device (no host round-trip). The norm is reduced in a fixed order
 * (per-chunk partial sums, then one work-item), so results are reproducible. When
 * `norm_out` (1 element, may be a view) is not NULL the total norm is written there;
 * read it with ct_tensor_download() only when needed. max_norm >= 0. */
ct_status ct_clip_grad_norm(ct_context *ctx, ct_tensor *grads, double max_norm,
                            ct_tensor *norm_out);
/* Same norm, without clipping. */
ct_status ct_grad_norm(ct_context *ctx, const ct_tensor *grads, ct_tensor *norm_out);
/* torch.nn.utils.clip_grad_value_: grads = clamp(grads, -clip_value, clip_value), NaN
 * kept. clip_value >= 0. */
ct_status ct_clip_grad_value(ct_context *ctx, ct_tensor *grads, double clip_value);

#ifdef __cplusplus
}
#endif
#endif
