/* cltrain/trainer.h — the training driver: one step, one epoch's bookkeeping, one
 * evaluation pass, on top of a model, a loss, an optimizer and an optional schedule.
 *
 * A step is, all enqueued on the context's queue with no host wait:
 *
 *     zero_grad -> forward -> targets (MSE, BCE) -> loss forward+backward -> backward
 *       -> [clip_grad_norm_] -> record (loss sum, non-finite flag, history) -> optimizer
 *       step -> [per-step schedule step]
 *
 * which is, operation for operation, what a PyTorch loop does:
 *
 *     opt.zero_grad(); loss = crit(model(x), t); loss.backward();
 *     [clip_grad_norm_(model.parameters(), max_norm)]; opt.step(); [sched.step()]
 *
 * The loss stays on the device in a small record (trainer.cl). The host reads it back
 * only every `check_every` steps (and at an epoch's end): that read is where a non-finite
 * loss is noticed, so up to check_every - 1 steps may run after the first bad one. With
 * skip_nonfinite the record is read after EVERY step's backward (one small blocking read
 * per step), and a step whose loss or gradient norm is not finite is not applied: no
 * optimizer step, no schedule step, like torch.cuda.amp.GradScaler skipping a step.
 *
 * Targets. The loader gives class indices as floats, y (N). The model's output must be
 * (N, C):
 *   CT_LOSS_CROSS_ENTROPY    y as it is (class indices), label smoothing allowed
 *   CT_LOSS_MSE              one-hot rows (N, C); with C == 1 the label itself
 *   CT_LOSS_BCE_WITH_LOGITS  with C == 1 the label itself (a binary task: labels 0 and 1);
 *                            with C > 1 one-hot rows (one independent sigmoid per class)
 *
 * Evaluation runs the model in eval mode over a whole loader (the loader's batch size is
 * the evaluation batch size) and returns the mean loss, the accuracy and the confusion
 * matrix; predictions are torch.argmax of the output row (with C == 1: logit > 0).
 *
 * Everything the driver adds is deterministic: sums in a fixed order, integer counts
 * without atomics, so two runs from the same state give bit-identical losses and
 * parameters on the same device.
 */
#ifndef CLTRAIN_TRAINER_H
#define CLTRAIN_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cltrain/loader.h"
#include "cltrain/loss.h"
#include "cltrain/model.h"
#include "cltrain/optim.h"
#include "cltrain/sched.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_trainer_options {
    ct_loss_kind loss;     /* CROSS_ENTROPY (default), MSE or BCE_WITH_LOGITS */
    float label_smoothing; /* cross-entropy only, in [0, 1]; default 0 */
    double clip_norm;      /* > 0: clip_grad_norm_(max_norm) before each step; 0: off */
    bool skip_nonfinite;   /* read every step and skip non-finite ones (see above) */
    size_t skip_limit;     /* with skip_nonfinite: fail after this many consecutive
                              skipped steps (default 100; 0: never) */
    size_t check_every;    /* read the record every N steps (>= 1, default 10) */
    size_t history;        /* keep the last `history` step losses on the device for
                              ct_trainer_history (0, the default: none) */
} ct_trainer_options;

ct_trainer_options ct_trainer_defaults(void);

/* When the schedule steps. */
typedef enum ct_sched_when {
    CT_SCHED_PER_STEP = 0, /* after every applied optimizer step (OneCycleLR, warm-ups) */
    CT_SCHED_PER_EPOCH     /* in ct_trainer_end_epoch (StepLR, ReduceLROnPlateau, ...) */
} ct_sched_when;

typedef struct ct_trainer ct_trainer;

/* A driver for `model` and `optim` (which must have been created over the model's
 * parameter and gradient tensors). `sched` may be NULL. The trainer creates and owns the
 * loss; it borrows the model, the optimizer and the schedule, which must outlive it.
 * Device memory: a 16-float record, the history, and targets/gradient buffers for the
 * largest batch seen (grown on demand, never shrunk). The caller frees *out with
 * ct_trainer_free(). */
ct_status ct_trainer_create(ct_model *model, ct_optim *optim, ct_sched *sched, ct_sched_when when,
                            const ct_trainer_options *o, ct_trainer **out);
void ct_trainer_free(ct_trainer *tr);

/* What the host knows after a read of the record. */
typedef struct ct_step_info {
    bool read;                /* the fields below were read back by this call */
    bool skipped;             /* skip_nonfinite: this step was not applied */
    uint64_t step;            /* steps attempted so far (this one included) */
    double loss;              /* the last step's loss */
    double epoch_loss;        /* mean of the finite losses since ct_trainer_begin_epoch */
    uint64_t epoch_steps;     /* how many losses that mean holds */
    double grad_norm;         /* the last gradient norm (clip_norm or skip mode), else NaN */
    uint64_t nonfinite;       /* steps with a non-finite loss or norm, over the whole run */
    uint64_t first_nonfinite; /* the first of them (1-based step number), 0 when none */
} ct_step_info;

/* Resets the epoch's loss sum (enqueued). */
ct_status ct_trainer_begin_epoch(ct_trainer *tr);

/* One training step on x (N, ...) and y (N) from a loader. The model is put in train
 * mode. `info` may be NULL; its `read` tells whether the record was read at this step
 * (every check_every steps, or every step with skip_nonfinite). When a read finds a
 * non-finite loss without skip_nonfinite, or more than skip_limit consecutive skips, the
 * step returns CT_ERR_NUMERIC with a message naming the first bad step; the parameters
 * then hold whatever the bad steps made of them. */
ct_status ct_trainer_step(ct_trainer *tr, const ct_tensor *x, const ct_tensor *y,
                          ct_step_info *info);

/* Reads the record now (waits for the queue). Fails like ct_trainer_step when it holds a
 * non-finite loss (without skip_nonfinite); `info` is filled either way. */
ct_status ct_trainer_read(ct_trainer *tr, ct_step_info *info);

/* Ends an epoch: reads the record (as ct_trainer_read), checks the loss's target
 * validation flag (ct_loss_check: a label out of range is an error here), and steps a
 * CT_SCHED_PER_EPOCH schedule with `metric` (ReduceLROnPlateau's monitored value; ignored
 * by the others). */
ct_status ct_trainer_end_epoch(ct_trainer *tr, double metric, ct_step_info *info);

/* Copies the losses of the last `count` steps (count <= history and <= steps taken),
 * oldest first, into out. Waits for the queue. */
ct_status ct_trainer_history(ct_trainer *tr, float *out, size_t count);

/* Steps attempted so far, and setting it (to continue a resumed run: the non-finite
 * record names steps by this count, the history ring is indexed by it). */
uint64_t ct_trainer_get_step(const ct_trainer *tr);
void ct_trainer_set_step(ct_trainer *tr, uint64_t step);
/* The epoch's loss sum and count, to carry a mid-epoch save across a resume (the sum is
 * kept in float on the device, compensated; `comp` is that compensation). Reading
 * waits for the queue. */
ct_status ct_trainer_get_epoch_sum(ct_trainer *tr, float *sum, float *comp, float *count);
ct_status ct_trainer_set_epoch_sum(ct_trainer *tr, float sum, float comp, float count);

/* The loss the trainer created (for ct_loss_check and the like). */
ct_loss *ct_trainer_loss(ct_trainer *tr);

typedef struct ct_eval_result {
    double loss;     /* mean loss over the samples */
    double accuracy; /* correct / count */
    size_t count;    /* samples seen */
    size_t correct;
    size_t num_classes;  /* K: the output width C, or 2 when C == 1 */
    uint64_t *confusion; /* K x K, row = true class, column = predicted; malloc'd */
} ct_eval_result;

/* One pass over every batch of `loader` in eval mode (no dropout, running batch-norm
 * statistics); the model's previous mode is restored afterwards. Labels >= K are left out
 * of the confusion matrix and the accuracy's numerator but counted in `count`. The
 * caller releases the result with ct_eval_result_free(). */
ct_status ct_trainer_evaluate(ct_trainer *tr, ct_loader *loader, ct_eval_result *out);
void ct_eval_result_free(ct_eval_result *r);

/* Parameter groups of the common recipe "no weight decay on biases and norm parameters"
 * (in PyTorch: two param_groups, the second with weight_decay=0): one range per
 * parameter of the model, group 0 for those with two or more dimensions (conv and linear
 * weights), group 1 for one-dimensional ones (biases, batch-norm weight and bias). Give
 * the ranges to ct_optim_options with two groups, the second with weight_decay 0.
 * `cap` must be at least ct_model_param_count(m); *count receives that number. */
ct_status ct_model_decay_ranges(const ct_model *m, ct_optim_range *ranges, size_t cap,
                                size_t *count);

#ifdef __cplusplus
}
#endif
#endif
