/* cltrain/loss.h — loss functions on the device, with PyTorch's exact semantics.
 *
 * A ct_loss is a configured loss (kind, reduction, weights, ...), created once and used
 * for every batch. Each call enqueues one or two kernels and never waits:
 *
 *     ct_loss_options o = ct_loss_options_default(CT_LOSS_CROSS_ENTROPY);
 *     ct_loss *loss;
 *     ct_loss_create(ctx, &o, &loss);
 *     ...
 *     ct_loss_forward_backward(loss, logits, labels, loss_value, dlogits);
 *     ct_model_backward(model, dlogits);
 *
 * `loss_value` stays on the device (a 1-element tensor); download it only when you want
 * to print it. For CrossEntropyLoss on (N, C) logits the softmax, the loss, its
 * reduction and the gradient are one kernel launch; a second launch (the reduction of the
 * per-work-group partial sums) is added beyond 512 positions (N*d1*d2) or 4096 elements,
 * see kernels/loss.cl. Reductions are deterministic: no float atomics, fixed summation
 * order, so the same inputs give bit-identical results on the same device.
 * Not supported: an unbatched (C) input (use (1, C)), more than 2^32 - 1 elements.
 *
 * THE LOGITS-VERSUS-PROBABILITIES TRAP. As in PyTorch:
 * - CT_LOSS_CROSS_ENTROPY takes RAW LOGITS (the last linear layer's output). Do not apply
 *   softmax first: the loss would still train, badly, with no error.
 * - CT_LOSS_NLL takes LOG-probabilities (the output of a log-softmax), not logits and
 *   not probabilities.
 * - CT_LOSS_BCE_WITH_LOGITS takes raw logits, not sigmoid outputs.
 * None of these mistakes can be told apart from valid input for sure, so none is
 * rejected. ct_loss_check() counts rows that look like the mistake (a cross-entropy
 * row that is already a probability vector; an NLL row with a positive "log-probability")
 * so a tool can warn. Inputs that are clearly invalid ARE errors: a class index that is
 * not an integer in [0, C) and not ignore_index, a BCE target outside [0, 1], a
 * negative class probability. Detecting them needs the data, which lives on the device,
 * so the kernels record them in an error flag of the loss object (the offending rows
 * count as ignored: no memory outside the tensors is read) and ct_loss_check() reads the
 * flag back. The normal training path never waits for the host.
 *
 * Shapes (float32 tensors, up to 4-D, views allowed):
 *     CROSS_ENTROPY  input (N, C) or (N, C, d1) or (N, C, d1, d2): logits over C classes
 *                    target (N) / (N, d1) / (N, d1, d2): class indices, or
 *                    target of the input's shape: class probabilities ("soft targets")
 *     NLL            input as above, holding log-probabilities; class-index targets only
 *     BCE_WITH_LOGITS, MSE, L1, SMOOTH_L1, HUBER: target of the input's shape
 *     output         reduction MEAN or SUM: 1 element. NONE: the target's shape for
 *                    class-index targets, (N, d1, d2) for soft targets, else the input's
 * Class indices are stored as float32 values: exact for indices below 2^24 (16.7 M
 * classes). A target 3.0f is class 3; 2.5f is an error.
 */
#ifndef CLTRAIN_LOSS_H
#define CLTRAIN_LOSS_H

#include <stddef.h>
#include <stdint.h>

#include "cltrain/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ct_loss_kind {
    CT_LOSS_CROSS_ENTROPY,   /* torch.nn.CrossEntropyLoss */
    CT_LOSS_BCE_WITH_LOGITS, /* torch.nn.BCEWithLogitsLoss */
    CT_LOSS_MSE,             /* torch.nn.MSELoss */
    CT_LOSS_NLL,             /* torch.nn.NLLLoss */
    CT_LOSS_L1,              /* torch.nn.L1Loss */
    CT_LOSS_SMOOTH_L1,       /* torch.nn.SmoothL1Loss(beta) */
    CT_LOSS_HUBER            /* torch.nn.HuberLoss(delta) */
} ct_loss_kind;

typedef enum ct_reduction {
    CT_REDUCTION_MEAN, /* PyTorch's default; see the weighted-mean rule below */
    CT_REDUCTION_SUM,
    CT_REDUCTION_NONE
} ct_reduction;

/* Options, with PyTorch's meaning. ALWAYS start from ct_loss_options_default(kind): a
 * zeroed struct would mean ignore_index 0 (silently dropping class 0) and beta 0, so
 * ct_loss_create() rejects options that did not come from it (`init` is its mark).
 *
 * MEAN reduction, as PyTorch:
 *   CROSS_ENTROPY / NLL with class indices: sum of per-position losses divided by the sum
 *     of weight[target] over the positions whose target is not ignore_index (the count
 *     of such positions without weights). Every target ignored gives 0/0 = NaN, and a
 *     zero gradient.
 *   CROSS_ENTROPY with class probabilities: divided by the number of positions N*d1*d2,
 *     whatever the weights.
 *   The element-wise losses: divided by the number of elements. */
typedef struct ct_loss_options {
    uint32_t init; /* set by ct_loss_options_default(); leave it alone */
    ct_loss_kind kind;
    ct_reduction reduction; /* default MEAN */

    /* CROSS_ENTROPY, NLL: a weight per class, weight_shape = {C}, weight_ndim = 1.
     * BCE_WITH_LOGITS: weights multiplying each element's loss, broadcast against the
     * input as numpy does (weight_ndim <= the input's ndim, each dim 1 or the input's).
     * NULL: no weights. Copied by ct_loss_create(); the caller keeps ownership. */
    const float *weight;
    size_t weight_ndim;
    size_t weight_shape[CT_MAX_DIMS];

    /* BCE_WITH_LOGITS: weight of the positive term, broadcast like `weight` (usually
     * one per class: pos_weight_shape = {C} for a (N, C) input). NULL: none. Copied. */
    const float *pos_weight;
    size_t pos_weight_ndim;
    size_t pos_weight_shape[CT_MAX_DIMS];

    /* CROSS_ENTROPY, NLL with class indices: positions whose target equals this value
     * contribute nothing to the loss, its gradient or the mean's denominator. It may be a
     * valid class. Default -100. */
    int32_t ignore_index;
    /* CROSS_ENTROPY: mixes the target with the uniform distribution,
     * target' = (1 - label_smoothing) * target + label_smoothing / C. In [0, 1]. */
    float label_smoothing;
    /* SMOOTH_L1: quadratic below beta, linear above (beta >= 0; 0 is L1). Default 1. */
    float beta;
    /* HUBER: quadratic below delta, linear above (delta > 0). Default 1. */
    float delta;
} ct_loss_options;

/* PyTorch's defaults for `kind`: reduction MEAN, no weights, ignore_index -100,
 * label_smoothing 0, beta 1, delta 1. */
ct_loss_options ct_loss_options_default(ct_loss_kind kind);

typedef struct ct_loss ct_loss;

/* Creates a loss on ctx, copying the weight arrays to the device (this call waits for
 * that upload). Invalid options are CT_ERR_INVALID_ARG. The caller owns *out and frees
 * it with ct_loss_free(), before the context. */
ct_status ct_loss_create(ct_context *ctx, const ct_loss_options *opts, ct_loss **out);
void ct_loss_free(ct_loss *loss);

/* The output shape for this input and target (see the table above) into shape[0..*ndim);
 * a scalar (MEAN, SUM) is ndim 1, shape {1}. Checks the shapes: CT_ERR_SHAPE. */
ct_status ct_loss_output_shape(const ct_loss *loss, const ct_tensor *input,
                               const ct_tensor *target, size_t *ndim,
                               size_t shape[CT_MAX_DIMS]);

/* out <- loss(input, target). `out` must have the output's number of elements. */
ct_status ct_loss_forward(ct_loss *loss, const ct_tensor *input, const ct_tensor *target,
                          ct_tensor *out);

/* The training call: out_loss <- loss(input, target) and grad_input <- d out_loss / d input
 * (OVERWRITTEN, the input's shape), fused. out_loss may be NULL when only the gradient is
 * wanted. With reduction NONE the gradient is that of the sum of the outputs (every
 * grad_output 1); use ct_loss_backward() for other grad_outputs. */
ct_status ct_loss_forward_backward(ct_loss *loss, const ct_tensor *input,
                                   const ct_tensor *target, ct_tensor *out_loss,
                                   ct_tensor *grad_input);

/* grad_input <- grad_output * d loss / d input (OVERWRITTEN), recomputing what the forward
 * needs. grad_output has the output's number of elements (NONE), or 1 element, or is NULL
 * for 1 (MEAN, SUM). Stays on the device: grad_output is read by the kernel. */
ct_status ct_loss_backward(ct_loss *loss, const ct_tensor *input, const ct_tensor *target,
                           const ct_tensor *grad_output, ct_tensor *grad_input);

/* What the kernels recorded since the loss was created or last checked. */
enum {
    CT_LOSS_ERR_CLASS_INDEX = 1u << 0, /* a class index not an integer in [0, C) and not ignore_index */
    CT_LOSS_ERR_BCE_TARGET = 1u << 1,  /* a BCE target outside [0, 1] (or NaN) */
    CT_LOSS_ERR_NEGATIVE_PROB = 1u << 2 /* a class-probability target below 0 */
};
typedef struct ct_loss_report {
    unsigned errors;        /* CT_LOSS_ERR_* bits */
    size_t first_error;     /* smallest flat index into a target with an error, over
                             * the calls since the last check; SIZE_MAX when none */
    size_t suspicious_rows; /* CROSS_ENTROPY: rows that already look like probabilities
                             * (all in [0, 1], summing to 1 within 1e-3): softmax applied
                             * twice? NLL: rows with an entry > 0, impossible for
                             * log-probabilities: raw logits given to NLL? */
    size_t rows;            /* positions (CE, NLL) or elements seen in that time */
} ct_loss_report;

/* Reads the error flag back (waits for the queue), resets it, and fills *report (may be
 * NULL). Returns CT_ERR_INVALID_ARG with a message naming the first bad target when an
 * error was recorded, else CT_SUCCESS: suspicious rows alone are not an error. */
ct_status ct_loss_check(ct_loss *loss, ct_loss_report *report);

#ifdef __cplusplus
}
#endif
#endif
