/* lib/ref/loss_ref.h — plain-C double-precision reference of the losses of
 * include/cltrain/loss.h (the device code is lib/train/loss.c and kernels/loss.cl).
 *
 * Written from PyTorch's definitions, one loop per formula, for clarity rather than speed,
 * so the tests have an independent answer. Everything is double, inputs included, so the
 * gradient can itself be checked against central finite differences of the forward.
 * Layouts are dense row-major. No OpenCL here.
 */
#ifndef CLTRAIN_REF_LOSS_REF_H
#define CLTRAIN_REF_LOSS_REF_H

#include <stdbool.h>
#include <stddef.h>

#include "cltrain/loss.h"

/* The loss of `o` (kind, reduction, weight/pos_weight with their shapes, ignore_index,
 * label_smoothing, beta, delta; o->init is not looked at) on input x of shape
 * shape[0..ndim). target t: class indices of shape (N, d...) or, with `soft`, class
 * probabilities of x's shape (cross entropy); x's shape for the element-wise losses.
 * out: ct_ref_loss_out_numel() values (1 for MEAN and SUM).
 * grad (may be NULL): d(sum_i go[i] * out[i]) / d x, with go = grad_output of out's size,
 * or NULL for all ones. Class indices must be valid (or ignore_index).
 * Returns 0, or -1 when the shapes or options do not fit. */
int ct_ref_loss(const ct_loss_options *o, size_t ndim, const size_t *shape, const double *x,
                const double *t, bool soft, const double *go, double *out, double *grad);

/* Number of values the loss outputs for this input shape. */
size_t ct_ref_loss_out_numel(const ct_loss_options *o, size_t ndim, const size_t *shape);

#endif
