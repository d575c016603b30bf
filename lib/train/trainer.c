/* The training driver (include/cltrain/trainer.h): one step fully enqueued, the loss
 * record on the device (kernels/train.cl), evaluation with a device-side confusion
 * matrix. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cltrain/trainer.h"
#include "core/internal.h"

/* Slots of the record; must match kernels/train.cl. */
enum {
    TS_LOSS = 0,
    TS_SUM = 1,
    TS_COMP = 2,
    TS_COUNT = 3,
    TS_NORM = 4,
    TS_BAD = 5,
    TS_FIRST = 6,
    TS_LASTBAD = 7,
    TS_EVSUM = 8,
    TS_EVCOMP = 9,
    TS_EVCOUNT = 10,
    TS_SLOTS = 16
};

struct ct_trainer {
    ct_context *ctx;
    ct_model *model;
    ct_optim *optim;
    ct_sched *sched;
    ct_sched_when when;
    ct_trainer_options o;
    ct_loss *loss;
    size_t outputs;    /* C: the model's output width */
    ct_tensor *stats;  /* (TS_SLOTS) */
    ct_tensor *v_loss; /* views of single slots */
    ct_tensor *v_norm;
    ct_tensor *v_epoch;   /* slots TS_SUM..TS_COUNT */
    ct_tensor *v_eval;    /* slots TS_EVSUM..TS_EVCOUNT */
    ct_tensor *eval_loss; /* (1) a batch's mean loss during evaluation */
    ct_tensor *hist;      /* (history) or a 1-float dummy */
    /* targets and dlogits for the current batch size: views of buffers of cap_rows rows */
    ct_tensor *tbuf, *gbuf;
    ct_tensor *tview, *gview;
    size_t cap_rows, view_rows;
    uint64_t step; /* steps attempted */
    uint64_t consecutive_skips;
};

ct_trainer_options ct_trainer_defaults(void)
{
    ct_trainer_options o;
    memset(&o, 0, sizeof o);
    o.loss = CT_LOSS_CROSS_ENTROPY;
    o.skip_limit = 100;
    o.check_every = 10;
    return o;
}

void ct_trainer_free(ct_trainer *tr)
{
    if (!tr)
        return;
    ct_tensor_free(tr->tview);
    ct_tensor_free(tr->gview);
    ct_tensor_free(tr->tbuf);
    ct_tensor_free(tr->gbuf);
    ct_tensor_free(tr->v_loss);
    ct_tensor_free(tr->v_norm);
    ct_tensor_free(tr->v_epoch);
    ct_tensor_free(tr->v_eval);
    ct_tensor_free(tr->stats);
    ct_tensor_free(tr->eval_loss);
    ct_tensor_free(tr->hist);
    ct_loss_free(tr->loss);
    free(tr);
}

static void record_init(float *host)
{
    uint32_t none = 0xffffffffu;
    memset(host, 0, TS_SLOTS * sizeof *host);
    memcpy(&host[TS_FIRST], &none, sizeof none);
}

ct_status ct_trainer_create(ct_model *model, ct_optim *optim, ct_sched *sched, ct_sched_when when,
                            const ct_trainer_options *o, ct_trainer **out)
{
    ct_status st = CT_SUCCESS;
    ct_trainer *tr = NULL;
    float host[TS_SLOTS];
    size_t ndim = 0, oshape[3] = {0, 0, 0};

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_trainer_create: out is NULL");
    *out = NULL;
    CT_REQUIRE(model && optim && o, CT_ERR_INVALID_ARG,
               "ct_trainer_create: model, optimizer and options are required");
    CT_REQUIRE(o->loss == CT_LOSS_CROSS_ENTROPY || o->loss == CT_LOSS_MSE ||
                   o->loss == CT_LOSS_BCE_WITH_LOGITS,
               CT_ERR_INVALID_ARG,
               "trainer: the loss must be cross-entropy, MSE or BCE-with-logits (got kind %d)",
               (int)o->loss);
    CT_REQUIRE(o->check_every >= 1, CT_ERR_INVALID_ARG,
               "trainer: check_every must be at least 1, got %zu", o->check_every);
    CT_REQUIRE(o->clip_norm >= 0.0 && isfinite(o->clip_norm), CT_ERR_INVALID_ARG,
               "trainer: clip_norm must be finite and >= 0, got %g", o->clip_norm);
    CT_REQUIRE(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f, CT_ERR_INVALID_ARG,
               "trainer: label smoothing must be in [0, 1], got %g", (double)o->label_smoothing);
    CT_REQUIRE(o->label_smoothing == 0.0f || o->loss == CT_LOSS_CROSS_ENTROPY, CT_ERR_INVALID_ARG,
               "trainer: label smoothing applies to cross-entropy only");
    CT_REQUIRE(o->history <= 0xffffffffu, CT_ERR_INVALID_ARG,
               "trainer: history of %zu steps is too long", o->history);
    ct_model_output_shape(model, &ndim, oshape);
    CT_REQUIRE(ndim == 1 && oshape[0] >= 1, CT_ERR_SHAPE,
               "trainer: the model's output must be (N, C), one row of scores per sample");
    CT_REQUIRE(ct_tensor_numel(ct_model_params(model)) > 0 || ct_model_param_numel(model) == 0,
               CT_ERR_INVALID_ARG, "trainer: the model has no parameter tensor");
    CT_REQUIRE(o->loss != CT_LOSS_CROSS_ENTROPY || oshape[0] >= 2, CT_ERR_SHAPE,
               "trainer: cross-entropy needs at least 2 outputs, the model has %zu (use "
               "BCE-with-logits for one output)",
               oshape[0]);

    tr = calloc(1, sizeof *tr);
    CT_REQUIRE(tr != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    tr->ctx = ct_tensor_context(ct_model_params(model));
    tr->model = model;
    tr->optim = optim;
    tr->sched = sched;
    tr->when = when;
    tr->o = *o;
    tr->outputs = oshape[0];

    ct_loss_options lo = ct_loss_options_default(o->loss);
    lo.label_smoothing = o->label_smoothing;
    CT_TRY(ct_loss_create(tr->ctx, &lo, &tr->loss));

    CT_TRY(ct_tensor_create(tr->ctx, 1, (size_t[]){TS_SLOTS}, &tr->stats));
    record_init(host);
    CT_TRY(ct_tensor_upload(tr->stats, host, TS_SLOTS));
    CT_TRY(ct_tensor_view(tr->stats, TS_LOSS, 1, (size_t[]){1}, &tr->v_loss));
    CT_TRY(ct_tensor_view(tr->stats, TS_NORM, 1, (size_t[]){1}, &tr->v_norm));
    CT_TRY(ct_tensor_view(tr->stats, TS_SUM, 1, (size_t[]){3}, &tr->v_epoch));
    CT_TRY(ct_tensor_view(tr->stats, TS_EVSUM, 1, (size_t[]){3}, &tr->v_eval));
    CT_TRY(ct_tensor_create(tr->ctx, 1, (size_t[]){1}, &tr->eval_loss));
    CT_TRY(ct_tensor_zeros(tr->ctx, 1, (size_t[]){o->history ? o->history : 1}, &tr->hist));
    *out = tr;
    tr = NULL;
cleanup:
    ct_trainer_free(tr);
    return st;
}

/* Target and gradient views of `rows` rows, growing the buffers when needed. */
static ct_status batch_views(ct_trainer *tr, size_t rows)
{
    ct_status st = CT_SUCCESS;
    const size_t C = tr->outputs;
    if (rows == tr->view_rows && tr->tview)
        return CT_SUCCESS;
    ct_tensor_free(tr->tview);
    ct_tensor_free(tr->gview);
    tr->tview = tr->gview = NULL;
    tr->view_rows = 0;
    if (rows > tr->cap_rows) {
        ct_tensor_free(tr->tbuf);
        ct_tensor_free(tr->gbuf);
        tr->tbuf = tr->gbuf = NULL;
        tr->cap_rows = 0;
        CT_TRY(ct_tensor_create(tr->ctx, 1, (size_t[]){rows * C}, &tr->tbuf));
        CT_TRY(ct_tensor_create(tr->ctx, 1, (size_t[]){rows * C}, &tr->gbuf));
        tr->cap_rows = rows;
    }
    CT_TRY(ct_tensor_view(tr->tbuf, 0, 2, (size_t[]){rows, C}, &tr->tview));
    CT_TRY(ct_tensor_view(tr->gbuf, 0, 2, (size_t[]){rows, C}, &tr->gview));
    tr->view_rows = rows;
cleanup:
    return st;
}

/* The loss's target for labels y (n): y itself for cross-entropy, else tview filled by
 * train_targets. */
static ct_status make_targets(ct_trainer *tr, const ct_tensor *y, size_t n,
                              const ct_tensor **target)
{
    ct_status st = CT_SUCCESS;
    *target = y;
    if (tr->o.loss == CT_LOSS_CROSS_ENTROPY)
        goto cleanup;
    CT_TRY(CT_RUN1D(tr->ctx, "train.cl", "train_targets", n, CT_T(y), CT_T(tr->tview), CT_U32(n),
                    CT_U32(tr->outputs)));
    *target = tr->tview;
cleanup:
    return st;
}

static ct_status check_batch(const ct_trainer *tr, const ct_tensor *x, const ct_tensor *y,
                             size_t *n)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(tr && x && y, CT_ERR_INVALID_ARG, "trainer: NULL trainer, x or y");
    *n = ct_tensor_dim(x, 0);
    CT_REQUIRE(ct_tensor_ndim(y) == 1 && ct_tensor_dim(y, 0) == *n, CT_ERR_SHAPE,
               "trainer: labels y must be (N) with N = %zu, the batch size of x", *n);
    CT_REQUIRE(*n <= 0xffffffffu, CT_ERR_SHAPE, "trainer: batch of %zu samples is too large", *n);
cleanup:
    return st;
}

/* Downloads the record into info; CT_ERR_NUMERIC (message set) when it shows a
 * non-finite step and that is an error in this mode. */
static ct_status read_record(ct_trainer *tr, ct_step_info *info, bool *last_bad)
{
    ct_status st = CT_SUCCESS;
    float host[TS_SLOTS];
    uint32_t bad, first, lastbad;
    CT_TRY(ct_tensor_download(tr->stats, host, TS_SLOTS));
    memcpy(&bad, &host[TS_BAD], sizeof bad);
    memcpy(&first, &host[TS_FIRST], sizeof first);
    memcpy(&lastbad, &host[TS_LASTBAD], sizeof lastbad);
    if (last_bad)
        *last_bad = lastbad != 0;
    info->read = true;
    info->step = tr->step;
    info->loss = host[TS_LOSS];
    info->epoch_steps = (uint64_t)host[TS_COUNT];
    info->epoch_loss = host[TS_COUNT] > 0.0f
                           ? ((double)host[TS_SUM] - (double)host[TS_COMP]) / host[TS_COUNT]
                           : NAN;
    info->grad_norm = (tr->o.clip_norm > 0.0 || tr->o.skip_nonfinite) ? host[TS_NORM] : NAN;
    info->nonfinite = bad;
    info->first_nonfinite = bad ? (uint64_t)first + 1 : 0;
    if (bad && !tr->o.skip_nonfinite)
        CT_FAIL(CT_ERR_NUMERIC, "the %s at step %llu (read back at step %llu)",
                isnan(info->loss)   ? "loss became NaN"
                : isinf(info->loss) ? "loss became infinite"
                                    : "loss or the gradient norm became non-finite",
                (unsigned long long)info->first_nonfinite, (unsigned long long)tr->step);
cleanup:
    return st;
}

ct_status ct_trainer_begin_epoch(ct_trainer *tr)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(tr != NULL, CT_ERR_INVALID_ARG, "ct_trainer_begin_epoch: NULL trainer");
    CT_TRY(ct_tensor_fill(tr->v_epoch, 0.0f));
cleanup:
    return st;
}

ct_status ct_trainer_step(ct_trainer *tr, const ct_tensor *x, const ct_tensor *y,
                          ct_step_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_step_info local;
    ct_tensor *logits = NULL;
    const ct_tensor *target = NULL;
    size_t n = 0;
    bool use_norm;

    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->loss = info->epoch_loss = info->grad_norm = NAN;
    CT_TRY(check_batch(tr, x, y, &n));
    CT_REQUIRE(tr->step < 0xffffffffu, CT_ERR_INVALID_ARG,
               "trainer: more than 2^32-1 steps are not supported");
    use_norm = tr->o.clip_norm > 0.0 || tr->o.skip_nonfinite;

    ct_model_set_training(tr->model, true);
    CT_TRY(ct_model_zero_grad(tr->model));
    CT_TRY(ct_model_forward(tr->model, x, &logits));
    CT_TRY(batch_views(tr, n));
    CT_TRY(make_targets(tr, y, n, &target));
    CT_TRY(ct_loss_forward_backward(tr->loss, logits, target, tr->v_loss, tr->gview));
    CT_TRY(ct_model_backward(tr->model, tr->gview));
    if (tr->o.clip_norm > 0.0)
        CT_TRY(ct_clip_grad_norm(tr->ctx, ct_model_grads(tr->model), tr->o.clip_norm, tr->v_norm));
    else if (tr->o.skip_nonfinite)
        CT_TRY(ct_grad_norm(tr->ctx, ct_model_grads(tr->model), tr->v_norm));
    CT_TRY(CT_RUN1D(tr->ctx, "train.cl", "train_record", 1, CT_T(tr->stats), CT_T(tr->hist),
                    CT_U32(tr->o.history), CT_U32(tr->step), CT_U32(use_norm ? 1 : 0)));
    tr->step++;
    info->step = tr->step;

    if (tr->o.skip_nonfinite) {
        bool lastbad = false;
        CT_TRY(read_record(tr, info, &lastbad));
        if (lastbad) {
            info->skipped = true;
            tr->consecutive_skips++;
            CT_REQUIRE(tr->o.skip_limit == 0 || tr->consecutive_skips <= tr->o.skip_limit,
                       CT_ERR_NUMERIC,
                       "%llu consecutive steps had a non-finite loss or gradient (the last at "
                       "step %llu): the parameters are probably no longer finite",
                       (unsigned long long)tr->consecutive_skips, (unsigned long long)tr->step);
            goto cleanup;
        }
        tr->consecutive_skips = 0;
    }
    CT_TRY(ct_optim_step(tr->optim));
    if (tr->sched && tr->when == CT_SCHED_PER_STEP)
        CT_TRY(ct_sched_step(tr->sched, 0.0));
    if (!tr->o.skip_nonfinite && tr->step % tr->o.check_every == 0)
        CT_TRY(read_record(tr, info, NULL));
cleanup:
    return st;
}

ct_status ct_trainer_read(ct_trainer *tr, ct_step_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_step_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    CT_REQUIRE(tr != NULL, CT_ERR_INVALID_ARG, "ct_trainer_read: NULL trainer");
    CT_TRY(read_record(tr, info, NULL));
cleanup:
    return st;
}

ct_status ct_trainer_end_epoch(ct_trainer *tr, double metric, ct_step_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_step_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    CT_REQUIRE(tr != NULL, CT_ERR_INVALID_ARG, "ct_trainer_end_epoch: NULL trainer");
    CT_TRY(read_record(tr, info, NULL));
    CT_TRY(ct_loss_check(tr->loss, NULL));
    if (tr->sched && tr->when == CT_SCHED_PER_EPOCH)
        CT_TRY(ct_sched_step(tr->sched, metric));
cleanup:
    return st;
}

ct_status ct_trainer_history(ct_trainer *tr, float *out, size_t count)
{
    ct_status st = CT_SUCCESS;
    float *all = NULL;
    CT_REQUIRE(tr && (out || count == 0), CT_ERR_INVALID_ARG, "ct_trainer_history: NULL argument");
    CT_REQUIRE(count <= tr->o.history && count <= tr->step, CT_ERR_INVALID_ARG,
               "trainer history: %zu steps asked, %zu kept and %llu taken", count, tr->o.history,
               (unsigned long long)tr->step);
    if (count == 0)
        goto cleanup;
    all = malloc(tr->o.history * sizeof *all);
    CT_REQUIRE(all != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    CT_TRY(ct_tensor_download(tr->hist, all, tr->o.history));
    for (size_t i = 0; i < count; i++) {
        uint64_t s = tr->step - count + i;
        out[i] = all[s % tr->o.history];
    }
cleanup:
    free(all);
    return st;
}

uint64_t ct_trainer_get_step(const ct_trainer *tr)
{
    return tr ? tr->step : 0;
}

void ct_trainer_set_step(ct_trainer *tr, uint64_t step)
{
    if (tr)
        tr->step = step;
}

ct_status ct_trainer_get_epoch_sum(ct_trainer *tr, float *sum, float *comp, float *count)
{
    ct_status st = CT_SUCCESS;
    float v[3];
    CT_REQUIRE(tr && sum && comp && count, CT_ERR_INVALID_ARG,
               "ct_trainer_get_epoch_sum: NULL argument");
    CT_TRY(ct_tensor_download(tr->v_epoch, v, 3));
    *sum = v[0];
    *comp = v[1];
    *count = v[2];
cleanup:
    return st;
}

ct_status ct_trainer_set_epoch_sum(ct_trainer *tr, float sum, float comp, float count)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(tr != NULL, CT_ERR_INVALID_ARG, "ct_trainer_set_epoch_sum: NULL trainer");
    CT_TRY(ct_tensor_upload(tr->v_epoch, (float[]){sum, comp, count}, 3));
cleanup:
    return st;
}

ct_loss *ct_trainer_loss(ct_trainer *tr)
{
    return tr ? tr->loss : NULL;
}

void ct_eval_result_free(ct_eval_result *r)
{
    if (!r)
        return;
    free(r->confusion);
    memset(r, 0, sizeof *r);
}

ct_status ct_trainer_evaluate(ct_trainer *tr, ct_loader *loader, ct_eval_result *out)
{
    ct_status st = CT_SUCCESS;
    cl_mem conf = NULL;
    uint32_t *host_conf = NULL;
    size_t K = 0, conf_bytes = 0;
    bool was_training = true;
    float ev[3];

    CT_REQUIRE(out != NULL, CT_ERR_INVALID_ARG, "ct_trainer_evaluate: out is NULL");
    memset(out, 0, sizeof *out);
    CT_REQUIRE(tr && loader, CT_ERR_INVALID_ARG, "ct_trainer_evaluate: NULL trainer or loader");
    was_training = ct_model_training(tr->model);
    K = tr->outputs == 1 ? 2 : tr->outputs;
    conf_bytes = K * K * sizeof(uint32_t);
    CT_TRY(ct_buffer_alloc(tr->ctx, conf_bytes, &conf));
    CT_CL(clEnqueueFillBuffer(tr->ctx->queue, conf, (cl_uint[]){0}, sizeof(cl_uint), 0, conf_bytes,
                              0, NULL, NULL));
    CT_TRY(ct_tensor_fill(tr->v_eval, 0.0f));
    ct_model_set_training(tr->model, false);
    CT_TRY(ct_loader_start_epoch(loader, 0));
    for (size_t b = 0; b < ct_loader_batch_count(loader); b++) {
        ct_tensor *x = NULL, *y = NULL, *logits = NULL;
        const ct_tensor *target = NULL;
        size_t n = 0;
        CT_TRY(ct_loader_batch(loader, b, &x, &y));
        CT_TRY(check_batch(tr, x, y, &n));
        CT_TRY(ct_model_forward(tr->model, x, &logits));
        CT_TRY(batch_views(tr, n));
        CT_TRY(make_targets(tr, y, n, &target));
        CT_TRY(ct_loss_forward(tr->loss, logits, target, tr->eval_loss));
        CT_TRY(CT_RUN1D(tr->ctx, "train.cl", "eval_loss", 1, CT_T(tr->stats), CT_T(tr->eval_loss),
                        CT_U32(n)));
        CT_TRY(CT_RUN1D(tr->ctx, "train.cl", "eval_confusion", K, CT_T(logits), CT_T(y),
                        CT_MEM(conf), CT_U32(n), CT_U32(tr->outputs), CT_U32(K)));
    }
    CT_TRY(ct_tensor_download(tr->v_eval, ev, 3));
    host_conf = malloc(conf_bytes);
    out->confusion = calloc(K * K, sizeof *out->confusion);
    CT_REQUIRE(host_conf && out->confusion, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    CT_CL(clEnqueueReadBuffer(tr->ctx->queue, conf, CL_TRUE, 0, conf_bytes, host_conf, 0, NULL,
                              NULL));
    out->num_classes = K;
    out->count = (size_t)ev[2];
    for (size_t i = 0; i < K * K; i++)
        out->confusion[i] = host_conf[i];
    for (size_t k = 0; k < K; k++)
        out->correct += (size_t)out->confusion[k * K + k];
    out->loss = out->count ? ((double)ev[0] - (double)ev[1]) / (double)out->count : NAN;
    out->accuracy = out->count ? (double)out->correct / (double)out->count : NAN;
    CT_TRY(ct_loss_check(tr->loss, NULL));
cleanup:
    if (tr && tr->model)
        ct_model_set_training(tr->model, was_training);
    if (conf)
        ct_buffer_free(tr->ctx, conf, conf_bytes);
    free(host_conf);
    if (st != CT_SUCCESS && out)
        ct_eval_result_free(out);
    return st;
}
