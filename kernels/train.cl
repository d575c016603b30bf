/* kernels/train.cl — the training driver's small kernels: targets for the element-wise
 * losses, the per-step loss bookkeeping (running sum, non-finite flag, history) and the
 * evaluation counts (loss sum, confusion matrix).
 *
 * Host side: lib/train/trainer.c; the contract: include/cltrain/trainer.h.
 *
 * Layouts (float32 unless said; every tensor arrives as (buffer, element offset)):
 *   y      (N)      class indices stored as floats, as the loader gives them
 *   t      (N, C)   targets: one-hot rows for C > 1, y itself for C == 1
 *   logits (N, C)   the model's output, row-major
 *   stats  (16)     the driver's device-side record, one slot each (TS_* below). Slots
 *                   TS_BAD.. hold uint bit patterns (as_float / as_uint), so the host reads
 *                   all of it with one download.
 *   hist   (cap)    the loss of step s at hist[s % cap]
 *   conf   uint (K, K)  confusion counts, row = true class, column = predicted class
 *
 * Work split: train_targets has one work-item per sample (it writes the C values of its
 * row). train_record and eval_loss are one work-item: they touch a handful of scalars in
 * a fixed order (Kahan-compensated sums, so the epoch mean over thousands of steps keeps
 * float precision). eval_confusion has one work-item per TRUE class k: it scans the batch
 * in order and increments only row k of the matrix, so no two work-items write the same
 * counter and no atomics are needed.
 *
 * Predictions follow torch.argmax: the first index of the maximum, a NaN counting as the
 * maximum (the first NaN wins). With one output column (a binary task with a
 * BCE-with-logits loss) the prediction is class 1 when the logit is > 0.
 */

#define TS_LOSS 0     /* the last step's loss */
#define TS_SUM 1      /* Kahan sum of the finite losses since the epoch began */
#define TS_COMP 2     /* its compensation */
#define TS_COUNT 3    /* number of finite losses summed (exact below 2^24) */
#define TS_NORM 4     /* the last gradient norm, when one was computed */
#define TS_BAD 5      /* uint: steps whose loss (or norm) was not finite */
#define TS_FIRST 6    /* uint: the first such step (0xffffffff: none yet) */
#define TS_LASTBAD 7  /* uint: 1 when the last recorded step was not finite */
#define TS_EVSUM 8    /* evaluation: Kahan sum of batch_mean * n */
#define TS_EVCOMP 9
#define TS_EVCOUNT 10 /* evaluation: samples seen */

/* t[i, :] from y[i]: one-hot when C > 1 (a label outside [0, C) gives a zero row), the
 * label itself when C == 1. */
__kernel void train_targets(CT_CARG(y), CT_ARG(t), const uint n, const uint C)
{
    y += y_off;
    t += t_off;
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    const float label = y[i];
    if (C == 1u) {
        t[i] = label;
        return;
    }
    __global float *row = t + (size_t)i * C;
    for (uint c = 0; c < C; c++)
        row[c] = label == (float)c ? 1.0f : 0.0f;
}

static void kahan_add(__global float *stats, const uint sum, const uint comp, const float v)
{
    const float y = v - stats[comp];
    const float s = stats[sum] + y;
    stats[comp] = (s - stats[sum]) - y;
    stats[sum] = s;
}

/* After a step's loss (stats[TS_LOSS]) and, when use_norm, its gradient norm
 * (stats[TS_NORM]) were written: add a finite loss to the epoch's sum, or count the step
 * as non-finite; store the loss in the history ring when cap > 0. */
__kernel void train_record(CT_ARG(stats), CT_ARG(hist), const uint cap, const uint step,
                           const uint use_norm)
{
    stats += stats_off;
    hist += hist_off;
    const float loss = stats[TS_LOSS];
    const int finite = isfinite(loss) && (!use_norm || isfinite(stats[TS_NORM]));
    if (finite) {
        kahan_add(stats, TS_SUM, TS_COMP, loss);
        stats[TS_COUNT] += 1.0f;
        stats[TS_LASTBAD] = as_float(0u);
    } else {
        stats[TS_BAD] = as_float(as_uint(stats[TS_BAD]) + 1u);
        if (as_uint(stats[TS_FIRST]) == 0xffffffffu)
            stats[TS_FIRST] = as_float(step);
        stats[TS_LASTBAD] = as_float(1u);
    }
    if (cap > 0u)
        hist[step % cap] = loss;
}

/* Evaluation: sum += loss * n (loss is the batch's mean) and count += n. */
__kernel void eval_loss(CT_ARG(stats), CT_CARG(loss), const uint n)
{
    stats += stats_off;
    loss += loss_off;
    kahan_add(stats, TS_EVSUM, TS_EVCOMP, loss[0] * (float)n);
    stats[TS_EVCOUNT] += (float)n;
}

/* conf[k, pred] += 1 for every row of the batch whose label is k. K is the number of
 * classes (2 when C == 1). */
__kernel void eval_confusion(CT_CARG(logits), CT_CARG(y), __global uint *conf, const uint n,
                             const uint C, const uint K)
{
    logits += logits_off;
    y += y_off;
    const uint k = (uint)get_global_id(0);
    if (k >= K)
        return;
    for (uint i = 0; i < n; i++) {
        if (y[i] != (float)k)
            continue;
        __global const float *row = logits + (size_t)i * C;
        uint pred = 0;
        if (C == 1u) {
            pred = row[0] > 0.0f ? 1u : 0u;
        } else {
            float best = row[0];
            for (uint c = 1; c < C && !isnan(best); c++) {
                const float v = row[c];
                if (isnan(v) || v > best) {
                    best = v;
                    pred = c;
                }
            }
        }
        if (pred < K)
            conf[k * K + pred] += 1u;
    }
}
