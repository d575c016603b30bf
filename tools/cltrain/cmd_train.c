/* cltrain train — trains a model on an image dataset, with logs, plots, checkpoints,
 * resume, early stopping and non-finite loss handling, on the library's trainer
 * (cltrain/trainer.h). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "csvlog.h"
#include "options.h"
#include "plot.h"
#include "progress.h"
#include "tboard.h"

#define CMD "train"

static void help(void)
{
    printf("usage: cltrain train [OPTIONS]\n"
           "\n"
           "Trains a model on an image dataset and reports its test accuracy. With no options:\n"
           "MiniCNN on Fashion-MNIST, Adam lr 1e-3, batch 64, 5 epochs.\n"
           "\n");
    cli_data_help(stdout, true);
    printf("\n"
           "model and loss:\n"
           "  --model SPEC          a builtin name (minicnn, the default) or a layer list such\n"
           "                        as \"conv(16,3,pad=1) relu maxpool(2) flatten linear(10)\";\n"
           "                        the last linear layer's width is set to what the task\n"
           "                        needs (the number of classes; 1 for --loss bce)\n"
           "  --loss ce|bce|mse     cross-entropy on the logits (default); binary\n"
           "                        cross-entropy with logits on a two-class task (--classes,\n"
           "                        one output, targets 0/1); mean squared error against\n"
           "                        one-hot targets\n"
           "  --label-smoothing X   cross-entropy label smoothing in [0, 1] (default 0)\n"
           "\n"
           "optimizer (torch.optim semantics):\n"
           "  --optimizer NAME      sgd, adam (default), adamw, rmsprop or adagrad\n"
           "  --lr X                learning rate > 0 (default 1e-3; sgd 1e-2, rmsprop and\n"
           "                        adagrad 1e-2)\n"
           "  --momentum X          sgd, rmsprop: momentum >= 0 (default 0)\n"
           "  --nesterov            sgd: Nesterov momentum (needs --momentum > 0)\n"
           "  --weight-decay X      L2 penalty >= 0 (default 0; adamw: decoupled, 1e-2)\n"
           "  --no-decay-bias       no weight decay on biases and batch-norm parameters\n"
           "                        (two parameter groups, as PyTorch recipes write them)\n"
           "  --betas B1,B2         adam, adamw: each in [0, 1) (default 0.9,0.999)\n"
           "  --eps X               adam, adamw, rmsprop, adagrad: >= 0 (default 1e-8; adagrad\n"
           "                        1e-10)\n"
           "  --alpha X             rmsprop: smoothing constant (default 0.99)\n"
           "  --centered            rmsprop: centered variant\n"
           "  --amsgrad             adam, adamw: AMSGrad variant\n"
           "  --clip-norm X         clip the gradient's global L2 norm to X > 0 before each\n"
           "                        step (clip_grad_norm_)\n"
           "\n");
    printf("learning-rate schedule (torch.optim.lr_scheduler semantics):\n"
           "  --schedule NAME       none (default), step, multistep, exp, cosine, onecycle or\n"
           "                        plateau\n"
           "  --schedule-unit U     epoch (default) or batch: when the schedule steps, and the\n"
           "                        unit of --step-size, --milestones, --t-max and --warmup\n"
           "                        (onecycle always steps per batch)\n"
           "  --step-size N         step: decay every N units (default: a third of the run)\n"
           "  --gamma X             step, multistep: factor > 0 (default 0.1); exp: factor per\n"
           "                        unit (default: the one that ends the run at lr/10)\n"
           "  --milestones A,B,..   multistep: units where the lr is multiplied by gamma\n"
           "                        (default: half and three quarters of the run)\n"
           "  --t-max N             cosine: half-period (default: the whole run)\n"
           "  --eta-min X           cosine: lowest learning rate (default 0)\n"
           "  --max-lr X            onecycle: peak learning rate (default: --lr)\n"
           "  --pct-start X         onecycle: fraction of the run spent rising (default 0.3)\n"
           "  --patience N          plateau: epochs without improvement before reducing\n"
           "                        (default 2; PyTorch's is 10); it watches the validation\n"
           "                        loss with --val, else the training loss\n"
           "  --factor X            plateau: factor in (0, 1) (default 0.1)\n"
           "  --warmup N            linear warm-up from lr/3 over N units before the schedule\n"
           "                        (SequentialLR with LinearLR; alone: constant lr after it)\n"
           "\n");
    printf("run:\n"
           "  --epochs N            epochs (default 5)\n"
           "  --max-steps N         stop after N optimizer steps in all (a checkpoint taken\n"
           "                        then resumes mid-epoch)\n"
           "  --device D            device index or name substring (see 'cltrain devices')\n"
           "  --early-stop N        stop after N epochs without a better validation accuracy\n"
           "                        (needs --val)\n"
           "  --skip-nonfinite      skip (and count) steps whose loss or gradient is NaN or\n"
           "                        infinite instead of stopping; this reads the loss back\n"
           "                        after every step\n"
           "\n");
    printf("output:\n"
           "  --log FILE.csv        per-batch rows (every --log-every steps) and per-epoch rows\n"
           "  --log-every N         read the loss back from the device every N steps (default\n"
           "                        10); a NaN is noticed at these reads\n"
           "  --plot FILE.svg       loss curve and test accuracy, rewritten every epoch\n"
           "  --tensorboard DIR     TensorBoard event file with the same scalars\n"
           "  --save FILE           checkpoint after every epoch (and on Ctrl-C, and at\n"
           "                        --max-steps): FILE holds the weights as torch.nn.Sequential's\n"
           "                        state_dict (safetensors), FILE's .state.safetensors\n"
           "                        companion the optimizer and loop state; the best epoch (by\n"
           "                        validation accuracy, or test accuracy without --val) also\n"
           "                        goes to FILE with .best before .safetensors (or appended)\n"
           "  --resume FILE         continue a run saved with --save: the same command line\n"
           "                        plus --resume gives the same losses as an uninterrupted run\n"
           "                        (the data seed comes from the checkpoint; --epochs and\n"
           "                        --max-steps count from the start of the original run);\n"
           "                        with the run's --log, its rows up to the checkpoint stay\n"
           "                        and the new ones follow (later rows are dropped)\n"
           "  --quiet               no progress output (the summary still goes to stdout)\n"
           "  --verbose             model summary, learning rate and timing per epoch, and a\n"
           "                        line every 10 s when stderr is not a terminal\n"
           "\n"
           "Progress goes to stderr (a bar on a terminal, one line per epoch otherwise;\n"
           "NO_COLOR is honoured), the summary to stdout. Ctrl-C saves a checkpoint (with\n"
           "--save) and exits with status 130. Exit status: 0 done, 1 runtime error or a\n"
           "non-finite loss, 2 bad options.\n");
}

typedef struct train_cfg {
    cli_data_opts data;
    bool aug_on, aug_off;
    const char *model;
    int loss;
    double label_smoothing;
    bool ls_given;
    cli_optim_opts optim;
    cli_sched_opts sched;
    bool sched_param_given[9];
    double clip_norm;
    size_t epochs;
    size_t max_steps;
    const char *device;
    const char *log, *plot, *tensorboard, *save, *resume;
    size_t log_every;
    bool quiet, verbose;
    size_t early_stop;
    bool skip_nonfinite;
} train_cfg;

static int parse(int argc, char **argv, train_cfg *c)
{
    opt_def defs[64];
    size_t n;
    bool *g = c->sched_param_given;

    memset(c, 0, sizeof *c);
    cli_data_defaults(&c->data);
    cli_optim_defaults(&c->optim);
    cli_sched_defaults(&c->sched);
    c->model = "minicnn";
    c->epochs = 5;
    c->log_every = 10;
    n = cli_data_defs(&c->data, true, &c->aug_on, &c->aug_off, defs);
#define D(...) defs[n++] = (opt_def){__VA_ARGS__}
    D(.name = "--model", .kind = OPT_STRING, .dst = &c->model);
    D(.name = "--loss", .kind = OPT_CHOICE, .dst = &c->loss, .choices = cli_loss_names);
    D(.name = "--label-smoothing", .kind = OPT_DOUBLE, .dst = &c->label_smoothing, .lo = 0, .hi = 1,
      .given = &c->ls_given);
    D(.name = "--optimizer", .kind = OPT_CHOICE, .dst = &c->optim.kind, .choices = cli_optim_names);
    D(.name = "--lr", .kind = OPT_DOUBLE, .dst = &c->optim.lr, .lo = 0, .lo_open = true,
      .hi = INFINITY, .given = &c->optim.lr_given);
    D(.name = "--momentum", .kind = OPT_DOUBLE, .dst = &c->optim.momentum, .lo = 0, .hi = INFINITY,
      .given = &c->optim.momentum_given);
    D(.name = "--nesterov", .kind = OPT_FLAG, .dst = &c->optim.nesterov);
    D(.name = "--no-decay-bias", .kind = OPT_FLAG, .dst = &c->optim.no_decay_1d);
    D(.name = "--weight-decay", .kind = OPT_DOUBLE, .dst = &c->optim.weight_decay, .lo = 0,
      .hi = INFINITY, .given = &c->optim.wd_given);
    D(.name = "--betas", .kind = OPT_STRING, .dst = &c->optim.betas);
    D(.name = "--eps", .kind = OPT_DOUBLE, .dst = &c->optim.eps, .lo = 0, .hi = INFINITY,
      .given = &c->optim.eps_given);
    D(.name = "--alpha", .kind = OPT_DOUBLE, .dst = &c->optim.alpha, .lo = 0, .hi = INFINITY,
      .given = &c->optim.alpha_given);
    D(.name = "--centered", .kind = OPT_FLAG, .dst = &c->optim.centered);
    D(.name = "--amsgrad", .kind = OPT_FLAG, .dst = &c->optim.amsgrad);
    D(.name = "--clip-norm", .kind = OPT_DOUBLE, .dst = &c->clip_norm, .lo = 0, .lo_open = true,
      .hi = INFINITY);
    D(.name = "--schedule", .kind = OPT_CHOICE, .dst = &c->sched.kind,
      .choices = cli_schedule_names);
    D(.name = "--schedule-unit", .kind = OPT_CHOICE, .dst = &c->sched.unit,
      .choices = cli_unit_names);
    D(.name = "--step-size", .kind = OPT_SIZE, .dst = &c->sched.step_size, .lo = 1,
      .hi = (double)SIZE_MAX, .given = &g[0]);
    D(.name = "--gamma", .kind = OPT_DOUBLE, .dst = &c->sched.gamma, .lo = 0, .lo_open = true,
      .hi = INFINITY, .given = &c->sched.gamma_given);
    D(.name = "--milestones", .kind = OPT_STRING, .dst = &c->sched.milestones, .given = &g[1]);
    D(.name = "--t-max", .kind = OPT_SIZE, .dst = &c->sched.t_max, .lo = 1, .hi = (double)SIZE_MAX,
      .given = &g[2]);
    D(.name = "--eta-min", .kind = OPT_DOUBLE, .dst = &c->sched.eta_min, .lo = 0, .hi = INFINITY,
      .given = &g[3]);
    D(.name = "--max-lr", .kind = OPT_DOUBLE, .dst = &c->sched.max_lr, .lo = 0, .lo_open = true,
      .hi = INFINITY, .given = &g[4]);
    D(.name = "--pct-start", .kind = OPT_DOUBLE, .dst = &c->sched.pct_start, .lo = 0, .hi = 1,
      .given = &g[5]);
    D(.name = "--patience", .kind = OPT_SIZE, .dst = &c->sched.patience, .lo = 0,
      .hi = (double)SIZE_MAX, .given = &g[6]);
    D(.name = "--factor", .kind = OPT_DOUBLE, .dst = &c->sched.factor, .lo = 0, .lo_open = true,
      .hi = 1, .hi_open = true, .given = &g[7]);
    D(.name = "--warmup", .kind = OPT_SIZE, .dst = &c->sched.warmup, .lo = 0,
      .hi = (double)SIZE_MAX);
    D(.name = "--epochs", .kind = OPT_SIZE, .dst = &c->epochs, .lo = 1, .hi = 1000000);
    D(.name = "--max-steps", .kind = OPT_SIZE, .dst = &c->max_steps, .lo = 1, .hi = 0xffffffffu);
    D(.name = "--device", .kind = OPT_STRING, .dst = &c->device);
    D(.name = "--early-stop", .kind = OPT_SIZE, .dst = &c->early_stop, .lo = 1,
      .hi = (double)SIZE_MAX);
    D(.name = "--skip-nonfinite", .kind = OPT_FLAG, .dst = &c->skip_nonfinite);
    D(.name = "--log", .kind = OPT_STRING, .dst = &c->log);
    D(.name = "--log-every", .kind = OPT_SIZE, .dst = &c->log_every, .lo = 1, .hi = 0xffffffffu);
    D(.name = "--plot", .kind = OPT_STRING, .dst = &c->plot);
    D(.name = "--tensorboard", .kind = OPT_STRING, .dst = &c->tensorboard);
    D(.name = "--save", .kind = OPT_STRING, .dst = &c->save);
    D(.name = "--resume", .kind = OPT_STRING, .dst = &c->resume);
    D(.name = "--quiet", .kind = OPT_FLAG, .dst = &c->quiet);
    D(.name = "--verbose", .kind = OPT_FLAG, .dst = &c->verbose);
#undef D
    int rc = opts_parse(CMD, argc, argv, defs, n);
    if (rc != CLI_OK)
        return rc;
    rc = cli_data_finish(CMD, &c->data, c->aug_on, c->aug_off);
    if (rc != CLI_OK)
        return rc;

    /* combinations */
    static const char *const sched_opt[] = {"--step-size", "--milestones", "--t-max",
                                            "--eta-min",   "--max-lr",     "--pct-start",
                                            "--patience",  "--factor"};
    static const int sched_of[] = {1, 2, 4, 4, 5, 5, 6, 6};
    for (size_t i = 0; i < 8; i++)
        if (g[i] && c->sched.kind != sched_of[i])
            return cli_usage_error(CMD, "%s applies to --schedule %s", sched_opt[i],
                                   cli_schedule_names[sched_of[i]]);
    if (c->sched.gamma_given && c->sched.kind != 1 && c->sched.kind != 2 && c->sched.kind != 3)
        return cli_usage_error(CMD, "--gamma applies to --schedule step, multistep or exp");
    if (c->quiet && c->verbose)
        return cli_usage_error(CMD, "--quiet and --verbose contradict each other");
    if (c->ls_given && c->loss != 0)
        return cli_usage_error(CMD, "--label-smoothing applies to --loss ce only");
    if (c->early_stop && !c->data.val)
        return cli_usage_error(CMD, "--early-stop needs a validation split (--val N): the test "
                                    "set must not choose when to stop");
    if (c->loss == 1 && !c->data.classes)
        c->data.classes = "0,6";
    if (c->save && c->resume && strcmp(c->save, c->resume) != 0 && c->verbose)
        fprintf(stderr, "cltrain train: resuming from %s, saving to %s\n", c->resume, c->save);
    return CLI_OK;
}

/* ---- Ctrl-C ------------------------------------------------------------------------ */

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void install_sigint(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* ---- checkpoints ------------------------------------------------------------------- */

typedef struct loop_state {
    uint64_t epoch;   /* epochs completed */
    uint64_t batch;   /* batches done in the current epoch */
    double best;      /* best monitored accuracy (-1: none yet) */
    double best_loss; /* its loss, which breaks ties between equal accuracies */
    uint64_t best_epoch;
    uint64_t bad_epochs;
} loop_state;

/* "v0,v1,..." with every float exact (%.9g) into buf; returns buf. */
static const char *join_floats(char *buf, size_t cap, const float *v, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%.9g", i ? "," : "", (double)v[i]);
    return buf;
}

static void fill_hparams(const train_cfg *c, const cli_data *data, size_t outputs, cli_kv *kv)
{
    char buf[256];
    size_t len = 0;
    memset(kv, 0, sizeof *kv);
    cli_kv_set(kv, "dataset", "%s", cli_dataset_names[c->data.dataset]);
    buf[0] = '\0';
    for (size_t i = 0; i < data->classes && len < sizeof buf - 8; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%zu", i ? "," : "",
                                data->orig_class[i]);
    cli_kv_set(kv, "classes", "%s", c->data.classes ? buf : "all");
    cli_kv_set(kv, "loss", "%s", cli_loss_names[c->loss]);
    cli_kv_set(kv, "outputs", "%zu", outputs);
    cli_kv_set(kv, "model", "%s", c->model);
    cli_kv_set(kv, "normalize", "%d", data->normalize ? 1 : 0);
    cli_kv_set(kv, "mean", "%s", join_floats(buf, sizeof buf, data->mean, data->channels));
    cli_kv_set(kv, "std", "%s", join_floats(buf, sizeof buf, data->std, data->channels));
    cli_kv_set(kv, "seed", "%llu", (unsigned long long)c->data.seed);
    cli_kv_set(kv, "val", "%zu", c->data.val);
    cli_kv_set(kv, "batch_size", "%zu", c->data.batch_size);
    cli_optim_describe(&c->optim, buf, sizeof buf);
    cli_kv_set(kv, "optimizer", "%s", buf);
    cli_kv_set(kv, "schedule", "%s", cli_schedule_names[c->sched.kind]);
    cli_kv_set(kv, "epochs", "%zu", c->epochs);
}

static int save_checkpoint(const char *path, cli_run *r, const train_cfg *c, cli_kv *kv,
                           const loop_state *ls)
{
    ct_train_state s;
    ct_sched_state ss;
    float sum = 0, comp = 0, count = 0;
    char *json = NULL;
    ct_status st;

    memset(&s, 0, sizeof s);
    st = ct_trainer_get_epoch_sum(r->trainer, &sum, &comp, &count);
    if (st != CT_SUCCESS)
        return cli_fail("saving a checkpoint", st);
    cli_kv_set(kv, "trainer.step", "%llu", (unsigned long long)ct_trainer_get_step(r->trainer));
    cli_kv_set(kv, "trainer.sum", "%.9g", (double)sum);
    cli_kv_set(kv, "trainer.comp", "%.9g", (double)comp);
    cli_kv_set(kv, "trainer.count", "%.9g", (double)count);
    cli_kv_set(kv, "loop.best_epoch", "%llu", (unsigned long long)ls->best_epoch);
    cli_kv_set(kv, "loop.bad_epochs", "%llu", (unsigned long long)ls->bad_epochs);
    cli_kv_set(kv, "loop.best_loss", "%.17g", ls->best_loss);
    if (r->sched) {
        st = ct_sched_state_get(r->sched, &ss);
        if (st != CT_SUCCESS)
            return cli_fail("saving a checkpoint", st);
        s.has_sched = true;
        s.sched = ss;
    }
    json = cli_kv_json(kv);
    if (!json) {
        fprintf(stderr, "cltrain train: out of memory saving a checkpoint\n");
        return CLI_RUNTIME;
    }
    s.epoch = ls->epoch;
    s.batch = ls->batch;
    s.step = ct_optim_get_step(r->optim);
    s.data_seed = c->data.seed;
    s.best_metric = ls->best;
    s.spec = (char *)c->model;
    s.hparams_json = json;
    st = ct_checkpoint_save(path, r->model, r->optim, &s);
    free(json);
    if (st != CT_SUCCESS)
        return cli_fail("saving a checkpoint", st);
    return CLI_OK;
}

static bool kv_double(const cli_kv *kv, const char *key, double *out)
{
    const char *v = cli_kv_get(kv, key);
    char *end = NULL;
    if (!v)
        return false;
    double x = strtod(v, &end);
    if (end == v || *end)
        return false;
    *out = x;
    return true;
}

/* Restores weights, optimizer, dropout counter (ct_checkpoint_load) and the loop's own
 * state (trainer step and epoch sum, schedule, early-stopping counters). */
static int resume(const char *path, cli_run *r, loop_state *ls)
{
    ct_train_state s;
    cli_kv kv;
    double v;
    memset(&s, 0, sizeof s);
    ct_status st = ct_checkpoint_load(path, r->model, r->optim, &s);
    if (st != CT_SUCCESS)
        return cli_fail("--resume", st);
    if (cli_kv_parse_json(s.hparams_json, &kv) != 0) {
        ct_train_state_clear(&s);
        fprintf(stderr, "cltrain train: --resume %s: its state holds no cltrain loop state\n",
                path);
        return CLI_RUNTIME;
    }
    ls->epoch = s.epoch;
    ls->batch = s.batch;
    ls->best = s.best_metric;
    bool has_sched = s.has_sched;
    ct_sched_state ss = s.sched;
    ct_train_state_clear(&s);
    if (has_sched != (r->sched != NULL)) {
        fprintf(stderr,
                "cltrain train: --resume %s: the checkpoint was trained %s a learning-rate "
                "schedule, this run %s one; give the same --schedule options\n",
                path, has_sched ? "with" : "without", r->sched ? "has" : "has not");
        return CLI_USAGE;
    }
    ls->best_epoch = kv_double(&kv, "loop.best_epoch", &v) ? (uint64_t)v : 0;
    ls->bad_epochs = kv_double(&kv, "loop.bad_epochs", &v) ? (uint64_t)v : 0;
    ls->best_loss = kv_double(&kv, "loop.best_loss", &v) ? v : INFINITY;
    if (kv_double(&kv, "trainer.step", &v))
        ct_trainer_set_step(r->trainer, (uint64_t)v);
    double sum = 0, comp = 0, count = 0;
    kv_double(&kv, "trainer.sum", &sum);
    kv_double(&kv, "trainer.comp", &comp);
    kv_double(&kv, "trainer.count", &count);
    st = ct_trainer_set_epoch_sum(r->trainer, (float)sum, (float)comp, (float)count);
    if (st == CT_SUCCESS && r->sched)
        st = ct_sched_state_set(r->sched, &ss, NULL, NULL);
    if (st != CT_SUCCESS)
        return cli_fail("--resume", st);
    return CLI_OK;
}

/* ---- the run ----------------------------------------------------------------------- */

/* ct_last_error() without its " (CT_ERR_..., file.c:line)" tail: for messages about the
 * run (a diverging loss), not about the program. */
static const char *plain_error(void)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", ct_last_error());
    char *tail = strrchr(buf, '(');
    if (tail && tail > buf && tail[-1] == ' ' && strncmp(tail, "(CT_", 4) == 0 &&
        tail[strlen(tail) - 1] == ')')
        tail[-1] = '\0';
    return buf;
}

typedef struct series {
    double *step, *loss;
    size_t n, cap;
    double epoch_step[4096], epoch_acc[4096];
    size_t nepochs;
} series;

static void series_add(series *s, double step, double loss)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        double *a = realloc(s->step, cap * sizeof *a), *b = NULL;
        if (a)
            s->step = a;
        b = a ? realloc(s->loss, cap * sizeof *b) : NULL;
        if (!a || !b)
            return; /* the plot just loses points */
        s->loss = b;
        s->cap = cap;
    }
    s->step[s->n] = step;
    s->loss[s->n++] = loss;
}

/* --resume with --log: the earlier run's rows up to the checkpoint's step are written
 * to the new log again (rows after it, which the resumed run computes once more, are
 * dropped) and feed the plot; *elapsed0 is their last elapsed time, from which the new
 * rows go on. */
static int log_keep(csvlog *log, const char *path, const csvlog_data *old, uint64_t step,
                    series *ser, double *elapsed0)
{
    for (size_t i = 0; i < old->nrows; i++) {
        const csvlog_row *w = &old->rows[i];
        if (w->step > (long long)step)
            continue;
        int r = w->kind == CSVLOG_BATCH
                    ? csvlog_batch(log, NULL, w->epoch, w->step, w->loss, w->lr, w->images_per_s,
                                   w->elapsed_s)
                    : csvlog_epoch(log, NULL, w->epoch, w->step, w->elapsed_s, w->train_loss,
                                   w->test_loss, w->test_accuracy);
        if (r != 0) {
            fprintf(stderr, "cltrain train: writing %s: %s\n", path, strerror(errno));
            return CLI_RUNTIME;
        }
        if (w->kind == CSVLOG_BATCH && isfinite(w->loss))
            series_add(ser, (double)w->step, w->loss);
        if (w->kind == CSVLOG_EPOCH &&
            ser->nepochs < sizeof ser->epoch_step / sizeof ser->epoch_step[0]) {
            ser->epoch_step[ser->nepochs] = (double)w->step;
            ser->epoch_acc[ser->nepochs++] = w->test_accuracy;
        }
        if (isfinite(w->elapsed_s) && w->elapsed_s > *elapsed0)
            *elapsed0 = w->elapsed_s;
    }
    return CLI_OK;
}

static void write_plot(const char *path, const series *s, const char *subtitle, progress *pr)
{
    plot_series ps = {NULL, s->step, s->loss, s->n, s->epoch_step, s->epoch_acc, s->nepochs};
    plot_options po;
    memset(&po, 0, sizeof po);
    po.title = "training loss";
    po.subtitle = subtitle;
    char *svg = plot_loss_svg(&ps, 1, &po);
    if (!svg || plot_save(path, svg) != 0)
        progress_note(pr, "cltrain train: could not write the plot %s: %s", path,
                      svg ? strerror(errno) : "out of memory");
    free(svg);
}

int cli_train(int argc, char **argv)
{
    train_cfg c;
    cli_data data;
    cli_run r;
    cli_kv kv, peek;
    ct_context *ctx = NULL;
    ct_loader *tl = NULL, *vl = NULL, *el = NULL;
    ct_layer_desc *layers = NULL;
    size_t nl = 0;
    csvlog *log = NULL;
    tboard *tb = NULL;
    progress *pr = NULL;
    series ser;
    loop_state ls = {0, 0, -1.0, INFINITY, 0, 0};
    char subtitle[512], best_path[4096], desc[256];
    ct_eval_result test_res, val_res;
    int rc = CLI_OK;
    ct_status st = CT_SUCCESS;
    bool stop = false, have_test = false;
    double t0 = 0, train_s = 0, elapsed0 = 0;
    uint64_t images = 0;
    csvlog_data old_log = {0};

    memset(&data, 0, sizeof data);
    memset(&r, 0, sizeof r);
    memset(&ser, 0, sizeof ser);
    memset(&test_res, 0, sizeof test_res);
    memset(&val_res, 0, sizeof val_res);
    rc = parse(argc, argv, &c);
    if (rc == CLI_HELP) {
        help();
        return 0;
    }
    if (rc != CLI_OK)
        return rc;
    cli_set_quiet(c.quiet);

    if (c.resume) {
        rc = cli_kv_from_checkpoint(CMD, "--resume", c.resume, &peek, NULL);
        if (rc != CLI_OK)
            return rc;
        const char *v = cli_kv_get(&peek, "dataset");
        if (v && strcmp(v, cli_dataset_names[c.data.dataset]) != 0)
            return cli_usage_error(CMD, "--resume: %s was trained on %s, this run uses %s",
                                   c.resume, v, cli_dataset_names[c.data.dataset]);
        v = cli_kv_get(&peek, "loss");
        if (v && strcmp(v, cli_loss_names[c.loss]) != 0)
            return cli_usage_error(CMD,
                                   "--resume: %s was trained with --loss %s, this run "
                                   "uses %s",
                                   c.resume, v, cli_loss_names[c.loss]);
        v = cli_kv_get(&peek, "seed");
        if (v) {
            unsigned long long s = strtoull(v, NULL, 10);
            if (s != c.data.seed && !c.quiet)
                fprintf(stderr, "cltrain train: resuming with the checkpoint's seed %llu\n", s);
            c.data.seed = s;
        }
    }

    rc = cli_data_load(CMD, &c.data, true, &data);
    if (rc != CLI_OK)
        goto done;
    size_t outputs = cli_task_outputs(c.loss, data.classes);
    rc = cli_model_layers(CMD, c.model, outputs, data.in_shape, &layers, &nl);
    if (rc != CLI_OK)
        goto done;
    size_t ntrain = ct_dataset_count(data.train);
    size_t nbatches = (ntrain + c.data.batch_size - 1) / c.data.batch_size;

    st = cli_context(c.device, 0, &ctx);
    if (st != CT_SUCCESS) {
        rc = cli_fail("opening the device", st);
        goto done;
    }
    ct_trainer_options to = ct_trainer_defaults();
    to.loss = cli_loss_kind(c.loss);
    to.label_smoothing = (float)c.label_smoothing;
    to.clip_norm = c.clip_norm;
    to.skip_nonfinite = c.skip_nonfinite;
    to.check_every = c.log_every;
    rc = cli_run_create(CMD, ctx, layers, nl, data.in_shape, c.data.seed, &c.optim, &c.sched,
                        c.epochs, nbatches, &to, &r);
    if (rc != CLI_OK)
        goto done;
    if (c.resume) {
        rc = resume(c.resume, &r, &ls);
        if (rc != CLI_OK)
            goto done;
    }
    st = cli_loader(ctx, &data, &c.data, data.train, true, &tl);
    if (st == CT_SUCCESS && data.val)
        st = cli_loader(ctx, &data, &c.data, data.val, false, &vl);
    if (st == CT_SUCCESS && data.test)
        st = cli_loader(ctx, &data, &c.data, data.test, false, &el);
    if (st != CT_SUCCESS) {
        rc = cli_fail("uploading the dataset", st);
        goto done;
    }
    fill_hparams(&c, &data, outputs, &kv);

    /* outputs */
    {
        progress_options po;
        memset(&po, 0, sizeof po);
        po.level = c.quiet ? PROGRESS_QUIET : c.verbose ? PROGRESS_VERBOSE : PROGRESS_NORMAL;
        pr = progress_create(stderr, &po);
        if (!pr) {
            fprintf(stderr, "cltrain train: out of memory\n");
            rc = CLI_RUNTIME;
            goto done;
        }
    }
    struct stat log_st;
    if (c.log && c.resume && stat(c.log, &log_st) == 0 && log_st.st_size > 0) {
        /* the log of the run being resumed: its rows are kept, so it must be one (an
         * empty file has nothing to keep) */
        char err[512] = "";
        if (csvlog_read(c.log, &old_log, err, sizeof err) != 0 || old_log.nruns != 1 ||
            old_log.runs[0][0]) {
            fprintf(stderr,
                    "cltrain train: --log %s: not the log of one 'cltrain train' run (%s); "
                    "with --resume its rows up to the checkpoint are kept, so name the run's "
                    "log or a new file\n",
                    c.log, err[0] ? err : "it has a run column");
            rc = CLI_USAGE;
            goto done;
        }
    }
    if (c.log && csvlog_open(c.log, 0, &log) != 0) {
        fprintf(stderr, "cltrain train: --log %s: %s\n", c.log, strerror(errno));
        rc = CLI_RUNTIME;
        goto done;
    }
    if (log && old_log.nrows) {
        rc = log_keep(log, c.log, &old_log, ct_trainer_get_step(r.trainer), &ser, &elapsed0);
        if (rc != CLI_OK)
            goto done;
    }
    if (c.tensorboard && tboard_open(c.tensorboard, &tb) != 0) {
        fprintf(stderr, "cltrain train: --tensorboard %s: %s\n", c.tensorboard, strerror(errno));
        rc = CLI_RUNTIME;
        goto done;
    }
    if (c.save)
        cli_best_path(c.save, best_path, sizeof best_path);
    cli_optim_describe(&c.optim, desc, sizeof desc);
    snprintf(subtitle, sizeof subtitle, "%s on %s, %s, batch %zu%s%s%s", c.model,
             cli_dataset_names[c.data.dataset], desc, c.data.batch_size,
             c.sched.kind ? ", schedule " : "",
             c.sched.kind ? cli_schedule_names[c.sched.kind] : "",
             c.clip_norm > 0 ? ", clipped" : "");
    {
        char counts[96];
        if (data.val)
            snprintf(counts, sizeof counts, "%zu train / %zu val / %zu test", ntrain,
                     ct_dataset_count(data.val), data.test ? ct_dataset_count(data.test) : 0);
        else
            snprintf(counts, sizeof counts, "%zu train / %zu test", ntrain,
                     data.test ? ct_dataset_count(data.test) : 0);
        progress_note(pr,
                      "training %s (%zu parameters) on %s (%s images), %s, batch %zu, %zu "
                      "epoch%s on %s",
                      c.model, ct_model_param_numel(r.model), cli_dataset_names[c.data.dataset],
                      counts, desc, c.data.batch_size, c.epochs, c.epochs == 1 ? "" : "s",
                      ct_context_device(ctx)->name);
    }
    if (c.verbose) {
        char line[256];
        progress_note(pr, "GEMM: %s; CLBlast parameters: %s",
                      ct_gemm_backend(ctx) == CT_GEMM_CLBLAST
                          ? "CLBlast"
                          : "kernels/gemm.cl (CLTRAIN_GEMM=clblast for CLBlast)",
                      ct_context_clblast_source(ctx));
        progress_note(pr, "conv path: %s", ct_context_conv_path_source(ctx));
        for (size_t i = 0; i < ct_model_layer_count(r.model); i++)
            if (ct_model_layer_describe(r.model, i, line, sizeof line) == CT_SUCCESS)
                progress_note(pr, "  %s", line);
        if (data.normalize)
            progress_note(pr, "normalisation: mean %.4f std %.4f (channel 0)", (double)data.mean[0],
                          (double)data.std[0]);
        if (data.crop_pad || data.hflip)
            progress_note(pr, "augmentation: random crop (padding %zu)%s", data.crop_pad,
                          data.hflip ? ", horizontal flip" : "");
    }
    if (ls.epoch >= c.epochs) {
        progress_note(pr,
                      "the checkpoint has already done %llu of %zu epochs: nothing to do "
                      "(raise --epochs)",
                      (unsigned long long)ls.epoch, c.epochs);
        goto summary;
    }
    if (c.max_steps && ct_trainer_get_step(r.trainer) >= c.max_steps) {
        progress_note(pr,
                      "the checkpoint has already done %llu steps: nothing to do (raise "
                      "--max-steps)",
                      (unsigned long long)ct_trainer_get_step(r.trainer));
        goto summary;
    }
    install_sigint();

    t0 = cli_now();
    double last_read_t = t0, last_read_images = 0;
    double running = NAN;
    bool first = true;
    for (uint64_t e = ls.epoch; e < c.epochs && !stop; e++) {
        double te = cli_now();
        uint64_t epoch_images = 0;
        st = ct_loader_start_epoch(tl, e);
        if (st == CT_SUCCESS && ls.batch == 0)
            st = ct_trainer_begin_epoch(r.trainer);
        if (st != CT_SUCCESS) {
            rc = cli_fail("starting an epoch", st);
            goto done;
        }
        for (size_t b = (size_t)ls.batch; b < nbatches; b++) {
            ct_tensor *x = NULL, *y = NULL;
            ct_step_info info;
            double lr = NAN;
            ct_optim_get_lr(r.optim, 0, &lr);
            st = ct_loader_batch(tl, b, &x, &y);
            if (st != CT_SUCCESS) {
                rc = cli_fail("gathering a batch", st);
                goto done;
            }
            if (first) {
                cli_note_gemm_build(ctx);
                first = false;
            }
            st = ct_trainer_step(r.trainer, x, y, &info);
            if (st == CT_SUCCESS && c.save &&
                (interrupted || (c.max_steps && ct_trainer_get_step(r.trainer) >= c.max_steps)))
                st = ct_trainer_read(r.trainer, &info); /* never save a diverged model */
            if (st == CT_ERR_NUMERIC) {
                progress_free(pr);
                pr = NULL;
                fprintf(stderr,
                        "cltrain train: %s; the learning rate (%g) is probably too high for "
                        "this model: try a smaller --lr, --clip-norm 1, or --skip-nonfinite%s%s\n",
                        plain_error(), lr, c.save ? "; kept the last good checkpoint " : "",
                        c.save ? c.save : "");
                rc = CLI_RUNTIME;
                goto done;
            }
            if (st != CT_SUCCESS) {
                rc = cli_fail("training step", st);
                goto done;
            }
            size_t n = ct_tensor_dim(x, 0);
            images += n;
            epoch_images += n;
            ls.batch = b + 1;
            uint64_t step = ct_trainer_get_step(r.trainer);
            double now = cli_now();
            if (info.read) {
                running = info.epoch_loss;
                if (step % c.log_every == 0 && !info.skipped) {
                    double ips = (double)(images - last_read_images) / (now - last_read_t);
                    last_read_t = now;
                    last_read_images = (double)images;
                    if (log && csvlog_batch(log, NULL, (int)e + 1, (long long)step, info.loss, lr,
                                            ips, elapsed0 + (now - t0)) != 0) {
                        fprintf(stderr, "cltrain train: writing %s: %s\n", c.log, strerror(errno));
                        rc = CLI_RUNTIME;
                        goto done;
                    }
                    if (tb) {
                        tboard_scalar(tb, "train/loss", (long long)step, info.loss, -1);
                        tboard_scalar(tb, "train/lr", (long long)step, lr, -1);
                    }
                    series_add(&ser, (double)step, info.loss);
                }
            }
            progress_state ps = {(int)e + 1,       (int)c.epochs,
                                 (long long)b + 1, (long long)nbatches,
                                 running,          (double)epoch_images / (now - te),
                                 now - t0};
            progress_update(pr, &ps);
            if (interrupted || (c.max_steps && step >= c.max_steps)) {
                stop = true;
                if (c.save) {
                    ls.epoch = e;
                    rc = save_checkpoint(c.save, &r, &c, &kv, &ls);
                    if (rc != CLI_OK)
                        goto done;
                }
                if (interrupted) {
                    progress_free(pr);
                    pr = NULL;
                    fprintf(stderr, "cltrain train: interrupted at step %llu%s%s\n",
                            (unsigned long long)step, c.save ? "; saved " : "",
                            c.save ? c.save : "");
                    rc = 130;
                    goto done;
                }
                progress_note(pr, "stopping at --max-steps %zu%s%s", c.max_steps,
                              c.save ? "; saved " : "", c.save ? c.save : "");
                break;
            }
        }
        train_s += cli_now() - te;
        if (stop)
            break;

        /* the epoch's end */
        ct_step_info info;
        double epoch_s = cli_now() - te;
        st = ct_trainer_read(r.trainer, &info);
        if (st == CT_SUCCESS && vl)
            st = ct_trainer_evaluate(r.trainer, vl, &val_res);
        if (st == CT_SUCCESS && el) {
            ct_eval_result_free(&test_res);
            st = ct_trainer_evaluate(r.trainer, el, &test_res);
            have_test = st == CT_SUCCESS;
        }
        if (st == CT_SUCCESS)
            st = ct_trainer_end_epoch(r.trainer, vl ? val_res.loss : info.epoch_loss, NULL);
        if (st != CT_SUCCESS) {
            if (st == CT_ERR_NUMERIC) {
                progress_free(pr);
                pr = NULL;
                fprintf(stderr,
                        "cltrain train: %s; the learning rate is probably too high: try "
                        "a smaller --lr, --clip-norm 1, or --skip-nonfinite\n",
                        plain_error());
                rc = CLI_RUNTIME;
            } else {
                rc = cli_fail("end of epoch", st);
            }
            goto done;
        }
        double elapsed = cli_now() - t0, lr_end = NAN;
        ct_optim_get_lr(r.optim, 0, &lr_end);
        double tacc = have_test ? test_res.accuracy : NAN, tloss = have_test ? test_res.loss : NAN;
        if (log && csvlog_epoch(log, NULL, (int)e + 1, (long long)ct_trainer_get_step(r.trainer),
                                elapsed0 + elapsed, info.epoch_loss, tloss, tacc) != 0) {
            fprintf(stderr, "cltrain train: writing %s: %s\n", c.log, strerror(errno));
            rc = CLI_RUNTIME;
            goto done;
        }
        if (tb) {
            long long s = (long long)ct_trainer_get_step(r.trainer);
            tboard_scalar(tb, "epoch/train_loss", s, info.epoch_loss, -1);
            if (have_test) {
                tboard_scalar(tb, "test/loss", s, tloss, -1);
                tboard_scalar(tb, "test/accuracy", s, tacc, -1);
            }
            if (vl) {
                tboard_scalar(tb, "val/loss", s, val_res.loss, -1);
                tboard_scalar(tb, "val/accuracy", s, val_res.accuracy, -1);
            }
        }
        if (ser.nepochs < sizeof ser.epoch_step / sizeof ser.epoch_step[0]) {
            ser.epoch_step[ser.nepochs] = (double)ct_trainer_get_step(r.trainer);
            ser.epoch_acc[ser.nepochs++] = tacc;
        }
        progress_epoch pe = {(int)e + 1, (int)c.epochs, info.epoch_loss,
                             tloss,      tacc,          (double)epoch_images / epoch_s,
                             epoch_s,    elapsed,       lr_end};
        progress_epoch_end(pr, &pe);
        if (vl)
            progress_note(pr, "  validation: loss %.4f, accuracy %.2f%%", val_res.loss,
                          100.0 * val_res.accuracy);
        if (info.nonfinite)
            progress_note(pr, "  %llu step(s) with a non-finite loss skipped so far",
                          (unsigned long long)info.nonfinite);

        /* best, early stopping, checkpoints */
        double metric = vl ? val_res.accuracy : tacc, mloss = vl ? val_res.loss : tloss;
        bool improved =
            isfinite(metric) && (metric > ls.best || (metric == ls.best && mloss < ls.best_loss));
        if (improved) {
            ls.best = metric;
            ls.best_loss = mloss;
            ls.best_epoch = e + 1;
            ls.bad_epochs = 0;
        } else {
            ls.bad_epochs++;
        }
        ls.epoch = e + 1;
        ls.batch = 0;
        if (c.save) {
            rc = save_checkpoint(c.save, &r, &c, &kv, &ls);
            if (rc == CLI_OK && improved)
                rc = save_checkpoint(best_path, &r, &c, &kv, &ls);
            if (rc != CLI_OK)
                goto done;
        }
        if (c.plot)
            write_plot(c.plot, &ser, subtitle, pr);
        if (c.early_stop && ls.bad_epochs >= c.early_stop) {
            progress_note(pr,
                          "early stop: no better validation accuracy (or equal accuracy "
                          "with a lower loss) for %llu epochs (best %.2f%% at epoch %llu)",
                          (unsigned long long)ls.bad_epochs, 100.0 * ls.best,
                          (unsigned long long)ls.best_epoch);
            stop = true;
        }
        if (interrupted) {
            progress_free(pr);
            pr = NULL;
            fprintf(stderr, "cltrain train: interrupted after epoch %llu%s%s\n",
                    (unsigned long long)(e + 1), c.save ? "; saved " : "", c.save ? c.save : "");
            rc = 130;
            goto done;
        }
    }
    if (stop && !have_test && el) {
        /* stopped mid-epoch: evaluate once for the summary */
        st = ct_trainer_evaluate(r.trainer, el, &test_res);
        if (st != CT_SUCCESS) {
            rc = cli_fail("evaluating", st);
            goto done;
        }
        have_test = true;
    }
    if (c.plot && ser.n)
        write_plot(c.plot, &ser, subtitle, pr);

summary:
    progress_free(pr);
    pr = NULL;
    if (have_test)
        printf("test accuracy %.2f%% (%zu/%zu), test loss %.4f\n", 100.0 * test_res.accuracy,
               test_res.correct, test_res.count, test_res.loss);
    if (t0 > 0) {
        double total = cli_now() - t0;
        ct_step_info info;
        memset(&info, 0, sizeof info);
        ct_trainer_read(r.trainer, &info);
        printf("trained %llu steps in %.1f s (%.0f images/s while training)\n",
               (unsigned long long)ct_trainer_get_step(r.trainer), total,
               train_s > 0 ? (double)images / train_s : (double)images / total);
        if (info.nonfinite)
            printf("skipped %llu step(s) with a non-finite loss\n",
                   (unsigned long long)info.nonfinite);
    }
    if (c.save)
        printf("checkpoint %s%s%s\n", c.save, ls.best_epoch ? ", best epoch in " : "",
               ls.best_epoch ? best_path : "");
done:
    progress_free(pr);
    ct_eval_result_free(&test_res);
    ct_eval_result_free(&val_res);
    csvlog_data_free(&old_log);
    if (log && csvlog_close(log) != 0 && rc == CLI_OK) {
        fprintf(stderr, "cltrain train: writing %s: %s\n", c.log, strerror(errno));
        rc = CLI_RUNTIME;
    }
    if (tb && tboard_close(tb) != 0 && rc == CLI_OK) {
        fprintf(stderr, "cltrain train: writing %s: %s\n", c.tensorboard, strerror(errno));
        rc = CLI_RUNTIME;
    }
    free(ser.step);
    free(ser.loss);
    ct_loader_free(tl);
    ct_loader_free(vl);
    ct_loader_free(el);
    cli_run_free(&r);
    free(layers);
    cli_data_free(&data);
    ct_context_free(ctx);
    return rc;
}
