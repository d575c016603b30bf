/* options — what `cltrain train`, `compare` and `eval` share: a small table-driven
 * option parser with one-line errors, value parsers, and the setup every command does
 * the same way (datasets with class selection, validation split and normalisation; the
 * model spec fitted to the task; optimizer and schedule options; hyper-parameters as the
 * string map a checkpoint keeps).
 *
 * Usage errors print exactly one line on stderr, "cltrain CMD: <what was wrong>", and
 * make the command exit with status 2 (CLI_USAGE); runtime failures exit with 1. */
#ifndef CLTRAIN_OPTIONS_H
#define CLTRAIN_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cltrain/checkpoint.h"
#include "cltrain/cltrain.h"
#include "cltrain/optim.h"
#include "cltrain/sched.h"
#include "cltrain/trainer.h"

enum { CLI_OK = 0, CLI_RUNTIME = 1, CLI_USAGE = 2, CLI_HELP = -1 };

/* ---- the parser ------------------------------------------------------------------- */

typedef enum opt_kind {
    OPT_FLAG,   /* no value: *(bool *)dst = true */
    OPT_STRING, /* *(const char **)dst = the argument (argv memory) */
    OPT_SIZE,   /* *(size_t *)dst, a whole number in [lo, hi] */
    OPT_U64,    /* *(uint64_t *)dst, any whole number >= 0 */
    OPT_DOUBLE, /* *(double *)dst, finite, within the bounds below */
    OPT_CHOICE, /* *(int *)dst = index of the argument in choices */
    OPT_LIST    /* repeatable string: appended to (cli_strlist *)dst */
} opt_kind;

typedef struct cli_strlist {
    const char *item[16];
    size_t n;
} cli_strlist;

typedef struct opt_def {
    const char *name; /* "--lr" */
    opt_kind kind;
    void *dst;
    double lo, hi;              /* OPT_SIZE, OPT_DOUBLE: allowed range */
    bool lo_open;               /* OPT_DOUBLE: lo itself is not allowed (x > lo) */
    bool hi_open;               /* OPT_DOUBLE: x < hi */
    const char *const *choices; /* OPT_CHOICE: NULL-terminated */
    bool *given;                /* when not NULL: set when the option appears */
} opt_def;

/* Parses argv[1..argc) against the table. "--name value" and "--name=value" are both
 * accepted; "--help"/"-h" returns CLI_HELP. Returns CLI_OK or CLI_USAGE (message printed,
 * prefixed "cltrain <cmd>: "). */
int opts_parse(const char *cmd, int argc, char **argv, const opt_def *defs, size_t ndefs);

/* Prints "cltrain <cmd>: <message>" on stderr and returns CLI_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Numbers and lists given as text (also inside --config). On failure they print one
 * line naming `what` and return CLI_USAGE. */
int cli_parse_double(const char *cmd, const char *what, const char *text, double lo, bool lo_open,
                     double hi, bool hi_open, double *out);
int cli_parse_size(const char *cmd, const char *what, const char *text, size_t lo, size_t hi,
                   size_t *out);
/* A comma-separated list of numbers: at most cap values, each within the bounds. */
int cli_parse_doubles(const char *cmd, const char *what, const char *text, double lo, bool lo_open,
                      double hi, bool hi_open, double *out, size_t cap, size_t *n);
int cli_parse_sizes(const char *cmd, const char *what, const char *text, size_t lo, size_t hi,
                    size_t *out, size_t cap, size_t *n);

/* ---- data ------------------------------------------------------------------------- */

extern const char *const cli_dataset_names[]; /* "fashion-mnist", "mnist", "cifar10", NULL */
extern const char *const cli_loss_names[];    /* "ce", "bce", "mse", NULL */

typedef struct cli_data_opts {
    int dataset;         /* index into cli_dataset_names */
    const char *dir;     /* NULL: CT_DATA_DEFAULT_ROOT/<name> */
    const char *classes; /* "0,6": keep these classes, relabelled 0..k-1; NULL: all */
    const char *mean;    /* one value per channel, or one for all; NULL: the train set's */
    const char *std;
    bool no_normalize;
    size_t val;  /* validation samples taken from the training set (0: none) */
    int augment; /* -1 off, 0 the dataset's default, 1 on */
    size_t batch_size;
    size_t eval_batch_size;
    bool no_shuffle;
    uint64_t seed;
} cli_data_opts;

void cli_data_defaults(cli_data_opts *d);

/* The data options' table entries (--data, --dataset, --classes, --val, --mean, --std,
 * --no-normalize, --augment, --no-augment, --batch-size, --eval-batch-size, --no-shuffle,
 * --seed), written to out (room for CLI_DATA_DEFS); returns how many. `train` false
 * leaves out those that only training uses. aug_on/aug_off receive the two flags;
 * call cli_data_finish after parsing. */
#define CLI_DATA_DEFS 13
size_t cli_data_defs(cli_data_opts *d, bool train, bool *aug_on, bool *aug_off, opt_def *out);
int cli_data_finish(const char *cmd, cli_data_opts *d, bool aug_on, bool aug_off);
/* Their --help lines. */
void cli_data_help(FILE *to, bool train);

typedef struct cli_data {
    ct_dataset *train, *val, *test; /* val NULL without --val; test NULL when absent */
    size_t classes;                 /* classes of the task after --classes */
    const char *class_name[256];    /* borrowed from the datasets */
    size_t orig_class[256];         /* the dataset's class index of each task class */
    float mean[4], std[4];          /* the normalisation in use (train set's by default) */
    size_t channels;
    bool normalize;
    size_t crop_pad;
    bool hflip;
    size_t in_shape[3]; /* C, H, W */
} cli_data;

/* Loads the dataset's splits, keeps --classes, takes the validation split, resolves the
 * normalisation and the augmentation. Usage errors (unknown class, --val too large...)
 * return CLI_USAGE, I/O errors CLI_RUNTIME (message printed). `need_train` false loads
 * only the test split (for eval, when mean and std are known). */
int cli_data_load(const char *cmd, const cli_data_opts *d, bool need_train, cli_data *out);
void cli_data_free(cli_data *d);

/* A loader over `ds` with the task's normalisation; `train` adds shuffling (unless
 * --no-shuffle) and augmentation. */
ct_status cli_loader(ct_context *ctx, const cli_data *data, const cli_data_opts *d,
                     const ct_dataset *ds, bool train, ct_loader **out);

/* Number of model outputs the task needs: 1 for bce over two classes, else classes. */
size_t cli_task_outputs(int loss, size_t classes);
ct_loss_kind cli_loss_kind(int loss);

/* The layers of `spec` with the last linear layer's width set to `outputs`; checks that
 * the model fits the input (message with the spec's own error). *layers is malloc'd. */
int cli_model_layers(const char *cmd, const char *spec, size_t outputs, const size_t in_shape[3],
                     ct_layer_desc **layers, size_t *count);

/* ---- optimizer and schedule ------------------------------------------------------- */

extern const char *const cli_optim_names[];    /* "sgd", "adam", "adamw", "rmsprop", "adagrad" */
extern const char *const cli_schedule_names[]; /* "none", "step", "multistep", "exp",
                                                  "cosine", "onecycle", "plateau" */
extern const char *const cli_unit_names[];     /* "epoch", "batch" */

typedef struct cli_optim_opts {
    int kind; /* index into cli_optim_names */
    double lr, momentum, weight_decay, beta1, beta2, eps, alpha;
    bool nesterov, centered, amsgrad;
    bool no_decay_1d; /* --no-decay-bias: weight decay only on conv/linear weights */
    bool lr_given, wd_given, eps_given, alpha_given, momentum_given, beta1_given, beta2_given;
    const char *betas; /* "0.9,0.999" as given */
} cli_optim_opts;

void cli_optim_defaults(cli_optim_opts *o);
/* Applies PyTorch's per-kind defaults to what was not given, validates the combination
 * (nesterov needs momentum, betas in [0, 1)...), and fills *out. */
int cli_optim_resolve(const char *cmd, cli_optim_opts *o, ct_optim_options *out);
/* "adam,lr=1e-3,wd=5e-4" (--config of compare): kind first, then key=value with keys
 * lr, momentum, nesterov, nodecay, wd (weight_decay), beta1, beta2, eps, alpha, centered,
 * amsgrad. */
int cli_optim_parse_config(const char *cmd, const char *text, cli_optim_opts *o);
/* A short description: "adam lr=0.001" + the options that differ from the defaults. */
void cli_optim_describe(const cli_optim_opts *o, char *buf, size_t cap);

typedef struct cli_sched_opts {
    int kind; /* index into cli_schedule_names; 0: none */
    int unit; /* 0: epoch, 1: batch (onecycle is always per batch) */
    size_t step_size;
    double gamma;
    const char *milestones;
    size_t t_max; /* 0: the whole run in the schedule's unit */
    double eta_min;
    double max_lr; /* onecycle; 0: --lr */
    double pct_start;
    size_t patience;
    double factor;
    size_t warmup; /* warm-up length in the schedule's unit; 0: none */
    bool gamma_given;
} cli_sched_opts;

void cli_sched_defaults(cli_sched_opts *s);
/* Builds the schedule options for a run of `epochs` epochs of `batches` batches. *when
 * tells the trainer when to step it. milestones[] backs o->milestones. Returns CLI_OK with
 * *enabled false when there is no schedule. */
int cli_sched_resolve(const char *cmd, const cli_sched_opts *s, double lr, size_t epochs,
                      size_t batches, ct_sched_options *o, size_t *milestones, size_t cap,
                      ct_sched_when *when, bool *enabled);

/* ---- the objects of one training run ------------------------------------------- */

typedef struct cli_run {
    ct_model *model;
    ct_optim *optim;
    ct_sched *sched; /* NULL without a schedule */
    ct_trainer *trainer;
    ct_sched_when when;
    size_t milestones[16];
} cli_run;

/* Model (from layers, initialised from `seed`), optimizer, schedule and trainer for a
 * run of `epochs` epochs of `batches` batches. Usage errors print and return CLI_USAGE,
 * library errors CLI_RUNTIME. */
int cli_run_create(const char *cmd, ct_context *ctx, const ct_layer_desc *layers, size_t nl,
                   const size_t in_shape[3], uint64_t seed, cli_optim_opts *oo,
                   const cli_sched_opts *so, size_t epochs, size_t batches,
                   const ct_trainer_options *to, cli_run *out);
void cli_run_free(cli_run *r);

/* ---- hyper-parameters: the string map a checkpoint stores ------------------------- */

typedef struct cli_kv {
    char key[48][32];
    char val[48][512];
    size_t n;
} cli_kv;

void cli_kv_set(cli_kv *kv, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
const char *cli_kv_get(const cli_kv *kv, const char *key);
/* The map as a JSON object of strings (malloc'd). */
char *cli_kv_json(const cli_kv *kv);
/* Reads a flat JSON object of strings (what ct_checkpoint_load gives back); 0 or -1. */
int cli_kv_parse_json(const char *json, cli_kv *kv);
/* The hyper-parameters a checkpoint's state file keeps under "hparam.<key>", into kv
 * (cleared first), read without a model: to learn the task before anything is built.
 * With `found` NULL the state file must exist; otherwise a checkpoint without one (a
 * bare weights file) is no error and *found says whether there was one. `opt` names the
 * option in messages ("--resume"). Returns CLI_OK, CLI_USAGE or CLI_RUNTIME (printed). */
int cli_kv_from_checkpoint(const char *cmd, const char *opt, const char *path, cli_kv *kv,
                           bool *found);

/* ---- small things ------------------------------------------------------------------ */

double cli_now(void); /* monotonic seconds */
/* "m.safetensors" -> "m.best.safetensors"; "ckpt" -> "ckpt.best". */
void cli_best_path(const char *path, char *buf, size_t cap);

#endif
