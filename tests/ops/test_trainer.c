/* The training driver (cltrain/trainer.h) on a tiny model and a tiny synthetic dataset:
 *   - its step is bit for bit the manual zero_grad / forward / loss / backward / clip /
 *     optimizer sequence (three losses: CE with label smoothing, MSE on one-hot targets,
 *     BCE-with-logits on a binary task), and its recorded losses are those losses;
 *   - the loss falls over 30 steps on an easy task;
 *   - evaluation equals a host computation (argmax, confusion, mean CE in double);
 *   - a huge learning rate is detected as a non-finite loss within check_every steps;
 *     skip mode leaves the parameters untouched by a NaN batch;
 *   - resuming (parameters, buffers, dropout counter, optimizer state, schedule state,
 *     step count moved into FRESH objects) continues bit for bit like an uninterrupted
 *     run, including across an epoch boundary with shuffling and augmentation.
 * Equalities are exact (memcmp): the same kernels on the same inputs on the same device
 * must give the same bits; any other tolerance would hide a missing piece of state. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "cltrain/checkpoint.h"
#include "cltrain/trainer.h"
#include "testutil.h"

#define IMG      8
#define SPEC_CE  "conv(4,3,pad=1) relu maxpool(2) flatten linear(16) relu dropout(0.25) linear(3)"
#define SPEC_BIN "conv(4,3,pad=1) relu maxpool(2) flatten linear(16) relu linear(1)"

/* n images 1 x 8 x 8 of `classes` classes: class k lights up the band of rows
 * [2k, 2k+2) on top of uniform noise, so a small conv net separates them quickly. */
static ct_dataset *make_dataset(size_t n, size_t classes, uint64_t seed)
{
    uint8_t *img = malloc(n * IMG * IMG), *lab = malloc(n);
    cr_assert(img && lab);
    tu_rng r = {seed};
    for (size_t i = 0; i < n; i++) {
        size_t k = i % classes;
        lab[i] = (uint8_t)k;
        for (size_t p = 0; p < IMG * IMG; p++) {
            size_t row = p / IMG;
            unsigned v = (unsigned)(tu_rng_next(&r) % 96);
            if (row >= 2 * k && row < 2 * k + 2)
                v += 150;
            img[i * IMG * IMG + p] = (uint8_t)v;
        }
    }
    ct_dataset *ds = NULL;
    TU_OK(ct_dataset_create("synthetic", n, 1, IMG, IMG, classes, img, lab, NULL, &ds));
    free(img);
    free(lab);
    return ds;
}

static ct_loader *make_loader(ct_context *ctx, ct_dataset *ds, size_t batch, bool shuffle,
                              bool augment)
{
    ct_loader_options o = {0};
    o.batch_size = batch;
    o.shuffle = shuffle;
    o.seed = 1234;
    o.normalize = true;
    o.crop_pad = augment ? 1 : 0;
    o.hflip = augment;
    ct_loader *l = NULL;
    TU_OK(ct_loader_create(ctx, ds, &o, &l));
    return l;
}

static ct_model *make_model(ct_context *ctx, const char *spec, uint64_t seed)
{
    ct_model *m = NULL;
    TU_OK(ct_model_create_spec(ctx, spec, 3, (size_t[]){1, IMG, IMG}, seed, &m));
    return m;
}

static ct_optim *make_optim(ct_context *ctx, ct_model *m, ct_optim_kind kind, double lr)
{
    ct_optim_options o = ct_optim_defaults(kind);
    o.lr = lr;
    if (kind == CT_OPTIM_SGD)
        o.momentum = 0.9;
    ct_optim *opt = NULL;
    TU_OK(ct_optim_create(ctx, &o, ct_model_params(m), ct_model_grads(m), &opt));
    return opt;
}

/* ---- the step equals the manual sequence ------------------------------------------ */

static void manual_equals_trainer(ct_loss_kind kind, const char *spec, size_t classes,
                                  float smoothing, double clip)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(80, classes, 7);
    ct_loader *l = make_loader(ctx, ds, 16, true, true);
    ct_model *ma = make_model(ctx, spec, 99), *mb = make_model(ctx, spec, 99);
    ct_optim *oa = make_optim(ctx, ma, CT_OPTIM_ADAM, 1e-2);
    ct_optim *ob = make_optim(ctx, mb, CT_OPTIM_ADAM, 1e-2);
    ct_trainer_options to = ct_trainer_defaults();
    to.loss = kind;
    to.label_smoothing = smoothing;
    to.clip_norm = clip;
    to.check_every = 1000; /* no reads inside the steps */
    to.history = 64;
    ct_trainer *tr = NULL;
    TU_OK(ct_trainer_create(ma, oa, NULL, CT_SCHED_PER_STEP, &to, &tr));

    ct_loss_options lo = ct_loss_options_default(kind);
    lo.label_smoothing = smoothing;
    ct_loss *loss = NULL;
    TU_OK(ct_loss_create(ctx, &lo, &loss));
    size_t C = kind == CT_LOSS_BCE_WITH_LOGITS ? 1 : classes;
    ct_tensor *lv = NULL;
    TU_OK(ct_tensor_create(ctx, 1, (size_t[]){1}, &lv));

    float manual[64];
    size_t steps = 0;
    for (uint64_t e = 0; e < 2; e++) {
        TU_OK(ct_loader_start_epoch(l, e));
        TU_OK(ct_trainer_begin_epoch(tr));
        for (size_t b = 0; b < ct_loader_batch_count(l); b++) {
            ct_tensor *x = NULL, *y = NULL, *logits = NULL, *dl = NULL, *t = NULL;
            TU_OK(ct_loader_batch(l, b, &x, &y));
            size_t n = ct_tensor_dim(x, 0);
            TU_OK(ct_trainer_step(tr, x, y, NULL));

            /* the same by hand; targets built on the host */
            float *hy = tu_download(y);
            const ct_tensor *target = y;
            if (kind != CT_LOSS_CROSS_ENTROPY) {
                float *ht = calloc(n * C, sizeof *ht);
                for (size_t i = 0; i < n; i++) {
                    if (C == 1)
                        ht[i] = hy[i];
                    else
                        ht[i * C + (size_t)hy[i]] = 1.0f;
                }
                t = tu_tensor(ctx, TU_SHAPE(n, C), ht);
                target = t;
                free(ht);
            }
            free(hy);
            TU_OK(ct_tensor_create(ctx, 2, (size_t[]){n, C}, &dl));
            TU_OK(ct_model_zero_grad(mb));
            TU_OK(ct_model_forward(mb, x, &logits));
            TU_OK(ct_loss_forward_backward(loss, logits, target, lv, dl));
            TU_OK(ct_model_backward(mb, dl));
            if (clip > 0)
                TU_OK(ct_clip_grad_norm(ctx, ct_model_grads(mb), clip, NULL));
            TU_OK(ct_optim_step(ob));
            TU_OK(ct_tensor_download(lv, &manual[steps], 1));
            steps++;
            ct_tensor_free(dl);
            ct_tensor_free(t);

            float *pa = tu_model_params(ma), *pb = tu_model_params(mb);
            cr_assert(memcmp(pa, pb, ct_model_param_numel(ma) * sizeof *pa) == 0,
                      "parameters differ after step %zu", steps);
            free(pa);
            free(pb);
        }
    }
    float rec[64];
    TU_OK(ct_trainer_history(tr, rec, steps));
    cr_assert(memcmp(rec, manual, steps * sizeof *rec) == 0, "recorded losses differ");
    ct_step_info info;
    TU_OK(ct_trainer_read(tr, &info));
    cr_assert(memcmp(&(float){(float)info.loss}, &manual[steps - 1], sizeof(float)) == 0);
    cr_assert_eq(info.step, steps);
    cr_assert_eq(info.nonfinite, 0);
    cr_assert_eq(info.epoch_steps, ct_loader_batch_count(l));
    if (clip > 0)
        cr_assert(isfinite(info.grad_norm) && info.grad_norm >= 0);

    ct_tensor_free(lv);
    ct_loss_free(loss);
    ct_trainer_free(tr);
    ct_optim_free(oa);
    ct_optim_free(ob);
    ct_model_free(ma);
    ct_model_free(mb);
    ct_loader_free(l);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(trainer, step_equals_manual_ce)
{
    manual_equals_trainer(CT_LOSS_CROSS_ENTROPY, SPEC_CE, 3, 0.1f, 0.5);
}

Test(trainer, step_equals_manual_mse)
{
    manual_equals_trainer(CT_LOSS_MSE, SPEC_CE, 3, 0.0f, 0.0);
}

Test(trainer, step_equals_manual_bce)
{
    manual_equals_trainer(CT_LOSS_BCE_WITH_LOGITS, SPEC_BIN, 2, 0.0f, 1.0);
}

/* ---- training makes progress ------------------------------------------------------ */

Test(trainer, loss_falls)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(96, 3, 11);
    ct_loader *l = make_loader(ctx, ds, 16, true, false);
    ct_model *m = make_model(ctx, SPEC_CE, 5);
    ct_optim *o = make_optim(ctx, m, CT_OPTIM_ADAM, 1e-2);
    ct_trainer_options to = ct_trainer_defaults();
    to.history = 30;
    to.check_every = 5;
    ct_trainer *tr = NULL;
    TU_OK(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr));
    size_t steps = 0, reads = 0;
    for (uint64_t e = 0; steps < 30; e++) {
        TU_OK(ct_loader_start_epoch(l, e));
        TU_OK(ct_trainer_begin_epoch(tr));
        for (size_t b = 0; b < ct_loader_batch_count(l) && steps < 30; b++) {
            ct_tensor *x, *y;
            ct_step_info info;
            TU_OK(ct_loader_batch(l, b, &x, &y));
            TU_OK(ct_trainer_step(tr, x, y, &info));
            steps++;
            cr_assert_eq(info.read, steps % 5 == 0, "read at step %zu", steps);
            reads += info.read;
        }
    }
    cr_assert_eq(reads, 6);
    float h[30];
    TU_OK(ct_trainer_history(tr, h, 30));
    double first = 0, last = 0;
    for (int i = 0; i < 5; i++) {
        first += h[i] / 5.0;
        last += h[25 + i] / 5.0;
    }
    /* three classes: the loss starts near ln 3 = 1.10; an easy task must more than halve
     * it in 30 Adam steps (it reaches ~0.1 here), a broken update would not. */
    cr_assert(first > 0.8 && first < 1.5, "first losses %g, expected about ln 3", first);
    cr_assert(last < 0.5 * first, "loss did not fall: first 5 steps %g, last 5 steps %g", first,
              last);
    ct_eval_result r;
    TU_OK(ct_trainer_evaluate(tr, l, &r));
    cr_assert(r.accuracy > 0.9, "accuracy %g after 30 steps on an easy task", r.accuracy);
    cr_assert(ct_model_training(m), "evaluate must restore train mode");
    ct_eval_result_free(&r);
    ct_trainer_free(tr);
    ct_optim_free(o);
    ct_model_free(m);
    ct_loader_free(l);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

/* ---- evaluation against the host ------------------------------------------------- */

static void check_evaluate(ct_loss_kind kind, const char *spec, size_t classes)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(70, classes, 3);
    ct_loader *l = make_loader(ctx, ds, 16, false, false); /* 70 = 4 x 16 + 6 */
    ct_loader *all = make_loader(ctx, ds, 70, false, false);
    ct_model *m = make_model(ctx, spec, 21);
    ct_optim *o = make_optim(ctx, m, CT_OPTIM_SGD, 1e-2);
    ct_trainer_options to = ct_trainer_defaults();
    to.loss = kind;
    ct_trainer *tr = NULL;
    TU_OK(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr));
    /* one training step so that predictions are not all of one class */
    ct_tensor *x, *y, *logits;
    TU_OK(ct_loader_start_epoch(l, 0));
    TU_OK(ct_loader_batch(l, 0, &x, &y));
    TU_OK(ct_trainer_step(tr, x, y, NULL));

    ct_eval_result r;
    TU_OK(ct_trainer_evaluate(tr, l, &r));

    /* host: logits of all 70 samples in one eval-mode forward */
    ct_model_set_training(m, false);
    TU_OK(ct_loader_start_epoch(all, 0));
    TU_OK(ct_loader_batch(all, 0, &x, &y));
    TU_OK(ct_model_forward(m, x, &logits));
    float *hl = tu_download(logits), *hy = tu_download(y);
    size_t C = kind == CT_LOSS_BCE_WITH_LOGITS ? 1 : classes, K = C == 1 ? 2 : C;
    uint64_t conf[16] = {0};
    double loss = 0;
    for (size_t i = 0; i < 70; i++) {
        const float *row = hl + i * C;
        size_t t = (size_t)hy[i], pred = 0;
        if (C == 1) {
            pred = row[0] > 0;
            double z = row[0];
            loss += (1 - t) * z + log1p(exp(-fabs(z))) + fmax(-z, 0);
        } else {
            double mx = row[0], s = 0;
            for (size_t c = 1; c < C; c++) {
                if (row[c] > row[pred])
                    pred = c;
                mx = fmax(mx, row[c]);
            }
            for (size_t c = 0; c < C; c++)
                s += exp(row[c] - mx);
            if (kind == CT_LOSS_CROSS_ENTROPY) {
                loss += mx + log(s) - row[t];
            } else {
                for (size_t c = 0; c < C; c++) {
                    double d = row[c] - (c == t);
                    loss += d * d / (double)C;
                }
            }
        }
        conf[t * K + pred]++;
    }
    loss /= 70.0;
    cr_assert_eq(r.num_classes, K);
    cr_assert_eq(r.count, 70);
    size_t correct = 0;
    for (size_t k = 0; k < K; k++)
        correct += conf[k * K + k];
    for (size_t i = 0; i < K * K; i++)
        cr_assert_eq(r.confusion[i], conf[i], "confusion cell %zu: %llu vs %llu", i,
                     (unsigned long long)r.confusion[i], (unsigned long long)conf[i]);
    cr_assert_eq(r.correct, correct);
    cr_assert(fabs(r.accuracy - (double)correct / 70.0) < 1e-12);
    /* float32 batch means (each summing <= 16*3 terms) times n, added with compensation:
     * a relative error of a few float ulps, 1e-5 is ample; a wrong weighting of the
     * short last batch would be off by percents. */
    cr_assert(fabs(r.loss - loss) <= 1e-5 * fabs(loss) + 1e-7, "eval loss %.9g, host %.9g", r.loss,
              loss);
    ct_eval_result_free(&r);
    free(hl);
    free(hy);
    ct_trainer_free(tr);
    ct_optim_free(o);
    ct_model_free(m);
    ct_loader_free(l);
    ct_loader_free(all);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(trainer, evaluate_ce)
{
    check_evaluate(CT_LOSS_CROSS_ENTROPY, SPEC_CE, 3);
}

Test(trainer, evaluate_mse)
{
    check_evaluate(CT_LOSS_MSE, SPEC_CE, 3);
}

Test(trainer, evaluate_bce_binary)
{
    check_evaluate(CT_LOSS_BCE_WITH_LOGITS, SPEC_BIN, 2);
}

/* ---- non-finite losses ------------------------------------------------------------- */

Test(trainer, huge_lr_is_detected)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(96, 3, 2);
    ct_loader *l = make_loader(ctx, ds, 16, true, false);
    ct_model *m = make_model(ctx, SPEC_CE, 1);
    ct_optim *o = make_optim(ctx, m, CT_OPTIM_SGD, 1e30);
    ct_trainer_options to = ct_trainer_defaults();
    to.check_every = 4;
    ct_trainer *tr = NULL;
    TU_OK(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr));
    ct_status st = CT_SUCCESS;
    ct_step_info info;
    size_t steps = 0;
    for (uint64_t e = 0; e < 10 && st == CT_SUCCESS; e++) {
        TU_OK(ct_loader_start_epoch(l, e));
        for (size_t b = 0; b < ct_loader_batch_count(l) && st == CT_SUCCESS; b++) {
            ct_tensor *x, *y;
            TU_OK(ct_loader_batch(l, b, &x, &y));
            st = ct_trainer_step(tr, x, y, &info);
            steps++;
        }
    }
    cr_assert_eq(st, CT_ERR_NUMERIC, "a learning rate of 1e30 went unnoticed for %zu steps", steps);
    cr_assert(info.read && steps % 4 == 0, "detected at step %zu, reads every 4", steps);
    cr_assert(info.first_nonfinite >= 1 && info.first_nonfinite <= steps &&
                  steps - info.first_nonfinite < 4,
              "first bad step %llu, detected at %zu", (unsigned long long)info.first_nonfinite,
              steps);
    cr_assert(strstr(ct_last_error(), "step") != NULL, "message: %s", ct_last_error());
    ct_trainer_free(tr);
    ct_optim_free(o);
    ct_model_free(m);
    ct_loader_free(l);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(trainer, skip_mode_skips_a_nan_batch)
{
    ct_context *ctx = tu_context();
    ct_model *m = make_model(ctx, SPEC_CE, 4);
    ct_optim *o = make_optim(ctx, m, CT_OPTIM_ADAM, 1e-3);
    ct_trainer_options to = ct_trainer_defaults();
    to.skip_nonfinite = true;
    to.skip_limit = 2;
    ct_trainer *tr = NULL;
    TU_OK(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr));
    float hx[4 * IMG * IMG], hy[4] = {0, 1, 2, 1};
    tu_fill_uniform(hx, 4 * IMG * IMG, 8, -1, 1);
    ct_tensor *x = tu_tensor(ctx, TU_SHAPE(4, 1, IMG, IMG), hx);
    hx[IMG * IMG + 5] = NAN; /* sample 1 */
    ct_tensor *xbad = tu_tensor(ctx, TU_SHAPE(4, 1, IMG, IMG), hx);
    ct_tensor *y = tu_tensor(ctx, TU_SHAPE(4), hy);
    ct_step_info info;

    TU_OK(ct_trainer_step(tr, x, y, &info));
    cr_assert(info.read && !info.skipped && isfinite(info.loss) && isfinite(info.grad_norm));
    float *before = tu_model_params(m);
    TU_OK(ct_trainer_step(tr, xbad, y, &info));
    cr_assert(info.read && info.skipped, "the NaN batch was not skipped");
    cr_assert_eq(info.nonfinite, 1);
    cr_assert_eq(info.first_nonfinite, 2);
    float *after = tu_model_params(m);
    cr_assert(memcmp(before, after, ct_model_param_numel(m) * sizeof *before) == 0,
              "a skipped step changed the parameters");
    cr_assert_eq(ct_optim_get_step(o), 1);
    TU_OK(ct_trainer_step(tr, x, y, &info));
    cr_assert(!info.skipped && info.nonfinite == 1);
    cr_assert_eq(ct_optim_get_step(o), 2);
    /* the mean holds the two finite steps only */
    cr_assert_eq(info.epoch_steps, 2);
    /* three bad steps in a row exceed skip_limit 2 */
    TU_OK(ct_trainer_step(tr, xbad, y, &info));
    TU_OK(ct_trainer_step(tr, xbad, y, &info));
    cr_assert_eq(ct_trainer_step(tr, xbad, y, &info), CT_ERR_NUMERIC);
    free(before);
    free(after);
    ct_tensor_free(x);
    ct_tensor_free(xbad);
    ct_tensor_free(y);
    ct_trainer_free(tr);
    ct_optim_free(o);
    ct_model_free(m);
    ct_context_free(ctx);
}

/* ---- resume --------------------------------------------------------------------- */

typedef struct saved {
    float *params;
    size_t np;
    uint64_t rng_seed, rng_counter, step;
    float sum, comp, count;
    ct_sched_state sched;
    size_t nstate;
    char names[16][32];
    void *state[16];
    size_t state_n[16];
    ct_state_dtype dtype[16];
} saved;

typedef struct run {
    ct_model *m;
    ct_optim *o;
    ct_sched *s;
    ct_trainer *tr;
    ct_loader *l;
} run;

static run run_create(ct_context *ctx, ct_dataset *ds, uint64_t init_seed)
{
    run r;
    r.m = make_model(ctx, SPEC_CE, init_seed);
    r.o = make_optim(ctx, r.m, CT_OPTIM_ADAM, 5e-3);
    ct_sched_options so = ct_sched_defaults(CT_SCHED_COSINE);
    so.t_max = 20;
    so.warmup_iters = 3;
    TU_OK(ct_sched_create(&so, r.o, &r.s));
    ct_trainer_options to = ct_trainer_defaults();
    to.history = 32;
    to.clip_norm = 2.0;
    TU_OK(ct_trainer_create(r.m, r.o, r.s, CT_SCHED_PER_STEP, &to, &r.tr));
    r.l = make_loader(ctx, ds, 16, true, true); /* 88 samples: 6 batches, the last of 8 */
    return r;
}

static void run_free(run *r)
{
    ct_trainer_free(r->tr);
    ct_sched_free(r->s);
    ct_optim_free(r->o);
    ct_model_free(r->m);
    ct_loader_free(r->l);
}

/* Steps [from, to) of the global step count, epochs of `per` batches. */
static void run_steps(run *r, size_t from, size_t to, size_t per)
{
    for (size_t s = from; s < to; s++) {
        size_t e = s / per, b = s % per;
        if (b == 0 || s == from) {
            TU_OK(ct_loader_start_epoch(r->l, e));
            if (b == 0)
                TU_OK(ct_trainer_begin_epoch(r->tr));
        }
        ct_tensor *x, *y;
        TU_OK(ct_loader_batch(r->l, b, &x, &y));
        TU_OK(ct_trainer_step(r->tr, x, y, NULL));
    }
}

static void save(run *r, saved *sv)
{
    memset(sv, 0, sizeof *sv);
    sv->np = ct_model_param_numel(r->m);
    sv->params = tu_model_params(r->m);
    ct_model_get_rng(r->m, &sv->rng_seed, &sv->rng_counter);
    sv->step = ct_trainer_get_step(r->tr);
    TU_OK(ct_trainer_get_epoch_sum(r->tr, &sv->sum, &sv->comp, &sv->count));
    TU_OK(ct_sched_state_get(r->s, &sv->sched));
    sv->nstate = ct_optim_state_count(r->o);
    cr_assert(sv->nstate <= 16);
    for (size_t i = 0; i < sv->nstate; i++) {
        ct_optim_state_info info;
        TU_OK(ct_optim_state_info_at(r->o, i, &info));
        snprintf(sv->names[i], sizeof sv->names[i], "%s", info.name);
        sv->state_n[i] = info.numel;
        sv->dtype[i] = info.dtype;
        sv->state[i] = malloc(info.numel * (info.dtype == CT_STATE_F64 ? 8 : 4));
        TU_OK(ct_optim_state_get(r->o, info.name, sv->state[i], info.numel));
    }
}

static void load(run *r, const saved *sv)
{
    TU_OK(ct_model_set_params(r->m, sv->params, sv->np));
    ct_model_set_rng(r->m, sv->rng_seed, sv->rng_counter);
    for (size_t i = 0; i < sv->nstate; i++)
        TU_OK(ct_optim_state_set(r->o, sv->names[i], sv->state[i], sv->state_n[i]));
    TU_OK(ct_sched_state_set(r->s, &sv->sched, NULL, NULL));
    ct_trainer_set_step(r->tr, sv->step);
    TU_OK(ct_trainer_set_epoch_sum(r->tr, sv->sum, sv->comp, sv->count));
}

Test(trainer, resume_is_bitwise)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(88, 3, 5);
    const size_t per = 6, K = 15, k = 8; /* k: mid-epoch 2 */

    run a = run_create(ctx, ds, 77);
    run_steps(&a, 0, K, per);
    float la[32];
    TU_OK(ct_trainer_history(a.tr, la, K));
    float *pa = tu_model_params(a.m);
    ct_step_info ia;
    TU_OK(ct_trainer_read(a.tr, &ia));

    run b = run_create(ctx, ds, 77);
    run_steps(&b, 0, k, per);
    saved sv;
    save(&b, &sv);
    run_free(&b);

    /* fresh objects, a different initialisation: everything must come from `sv` */
    run c = run_create(ctx, ds, 12345);
    load(&c, &sv);
    run_steps(&c, k, K, per);
    float lc[32];
    TU_OK(ct_trainer_history(c.tr, lc, K - k));
    float *pc = tu_model_params(c.m);
    ct_step_info ic;
    TU_OK(ct_trainer_read(c.tr, &ic));

    cr_assert(memcmp(la + k, lc, (K - k) * sizeof *la) == 0,
              "losses after the resume differ from the uninterrupted run");
    cr_assert(memcmp(pa, pc, sv.np * sizeof *pa) == 0, "final parameters differ");
    cr_assert_eq(ic.step, K);
    cr_assert_eq(ic.epoch_steps, ia.epoch_steps);
    cr_assert(ic.epoch_loss == ia.epoch_loss, "epoch mean %.9g vs %.9g", ic.epoch_loss,
              ia.epoch_loss);
    double lra, lrc;
    TU_OK(ct_optim_get_lr(a.o, 0, &lra));
    TU_OK(ct_optim_get_lr(c.o, 0, &lrc));
    cr_assert(lra == lrc, "learning rate %.17g vs %.17g", lra, lrc);

    for (size_t i = 0; i < sv.nstate; i++)
        free(sv.state[i]);
    free(sv.params);
    free(pa);
    free(pc);
    run_free(&a);
    run_free(&c);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

/* The same through checkpoint files (cltrain/checkpoint.h): weights, optimizer state,
 * dropout counter and schedule state go to disk; the trainer's own step count and epoch
 * sum travel beside them as the tool carries them (here: variables). */
Test(trainer, resume_through_checkpoint_is_bitwise)
{
    ct_context *ctx = tu_context();
    ct_dataset *ds = make_dataset(88, 3, 9);
    const size_t per = 6, K = 13, k = 7;
    char path[] = "/tmp/ct_trainer_ckpt_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);

    run a = run_create(ctx, ds, 31);
    run_steps(&a, 0, K, per);
    float la[32];
    TU_OK(ct_trainer_history(a.tr, la, K));
    float *pa = tu_model_params(a.m);

    run b = run_create(ctx, ds, 31);
    run_steps(&b, 0, k, per);
    ct_train_state st;
    memset(&st, 0, sizeof st);
    st.epoch = k / per;
    st.batch = k % per;
    st.step = k;
    st.has_sched = true;
    TU_OK(ct_sched_state_get(b.s, &st.sched));
    TU_OK(ct_checkpoint_save(path, b.m, b.o, &st));
    uint64_t step = ct_trainer_get_step(b.tr);
    float sum, comp, count;
    TU_OK(ct_trainer_get_epoch_sum(b.tr, &sum, &comp, &count));
    run_free(&b);

    run c = run_create(ctx, ds, 4242);
    ct_train_state back;
    memset(&back, 0, sizeof back);
    TU_OK(ct_checkpoint_load(path, c.m, c.o, &back));
    cr_assert(back.has_sched && back.epoch == st.epoch && back.batch == st.batch);
    TU_OK(ct_sched_state_set(c.s, &back.sched, NULL, NULL));
    ct_train_state_clear(&back);
    ct_trainer_set_step(c.tr, step);
    TU_OK(ct_trainer_set_epoch_sum(c.tr, sum, comp, count));
    run_steps(&c, k, K, per);
    float lc[32];
    TU_OK(ct_trainer_history(c.tr, lc, K - k));
    float *pc = tu_model_params(c.m);
    cr_assert(memcmp(la + k, lc, (K - k) * sizeof *la) == 0,
              "losses after a checkpoint round trip differ from the uninterrupted run");
    cr_assert(memcmp(pa, pc, ct_model_param_numel(a.m) * sizeof *pa) == 0,
              "final parameters differ");

    char sp[4096];
    TU_OK(ct_checkpoint_state_path(path, sp, sizeof sp));
    unlink(path);
    unlink(sp);
    free(pa);
    free(pc);
    run_free(&a);
    run_free(&c);
    ct_dataset_free(ds);
    ct_context_free(ctx);
}

Test(trainer, rejects_bad_options)
{
    ct_context *ctx = tu_context();
    ct_model *m = make_model(ctx, SPEC_BIN, 1);
    ct_optim *o = make_optim(ctx, m, CT_OPTIM_SGD, 1e-2);
    ct_trainer *tr = NULL;
    ct_trainer_options to = ct_trainer_defaults();
    /* cross-entropy over one output is meaningless */
    cr_assert_eq(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr), CT_ERR_SHAPE);
    to.loss = CT_LOSS_BCE_WITH_LOGITS;
    to.check_every = 0;
    cr_assert_eq(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr), CT_ERR_INVALID_ARG);
    to.check_every = 1;
    to.label_smoothing = 0.1f;
    cr_assert_eq(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr), CT_ERR_INVALID_ARG);
    to.label_smoothing = 0;
    to.loss = CT_LOSS_L1;
    cr_assert_eq(ct_trainer_create(m, o, NULL, CT_SCHED_PER_STEP, &to, &tr), CT_ERR_INVALID_ARG);
    cr_assert_null(tr);
    ct_optim_free(o);
    ct_model_free(m);
    ct_context_free(ctx);
}
