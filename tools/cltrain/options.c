/* options — the option parser, value parsers and the shared setup of the training
 * commands; see options.h. */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

const char *const cli_dataset_names[] = {"fashion-mnist", "mnist", "cifar10", NULL};
const char *const cli_loss_names[] = {"ce", "bce", "mse", NULL};
const char *const cli_optim_names[] = {"sgd", "adam", "adamw", "rmsprop", "adagrad", NULL};
const char *const cli_schedule_names[] = {"none",   "step",     "multistep", "exp",
                                          "cosine", "onecycle", "plateau",   NULL};
const char *const cli_unit_names[] = {"epoch", "batch", NULL};

/* ---- messages and numbers ---------------------------------------------------------- */

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "cltrain %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_USAGE;
}

/* "a number > 0", "a number in [0, 1)", ... */
static void describe_range(char *buf, size_t cap, double lo, bool lo_open, double hi, bool hi_open)
{
    if (isinf(lo) && isinf(hi))
        snprintf(buf, cap, "a finite number");
    else if (isinf(hi))
        snprintf(buf, cap, "a number %s %g", lo_open ? ">" : ">=", lo);
    else if (isinf(lo))
        snprintf(buf, cap, "a number %s %g", hi_open ? "<" : "<=", hi);
    else
        snprintf(buf, cap, "a number in %c%g, %g%c", lo_open ? '(' : '[', lo, hi,
                 hi_open ? ')' : ']');
}

static bool parse_number(const char *text, double *out)
{
    char *end = NULL;
    if (!text || !*text || isspace((unsigned char)*text))
        return false;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

int cli_parse_double(const char *cmd, const char *what, const char *text, double lo, bool lo_open,
                     double hi, bool hi_open, double *out)
{
    double v = 0;
    char range[96];
    bool ok = parse_number(text, &v);
    if (ok)
        ok = (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
    if (!ok) {
        describe_range(range, sizeof range, lo, lo_open, hi, hi_open);
        return cli_usage_error(cmd, "%s expects %s, got '%s'", what, range, text ? text : "");
    }
    *out = v;
    return CLI_OK;
}

static bool parse_whole(const char *text, unsigned long long *out)
{
    char *end = NULL;
    if (!text || !isdigit((unsigned char)*text))
        return false;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || errno == ERANGE)
        return false;
    *out = v;
    return true;
}

int cli_parse_size(const char *cmd, const char *what, const char *text, size_t lo, size_t hi,
                   size_t *out)
{
    unsigned long long v = 0;
    if (!parse_whole(text, &v) || v < lo || v > hi) {
        if (hi == SIZE_MAX)
            return cli_usage_error(cmd, "%s expects a whole number >= %zu, got '%s'", what, lo,
                                   text ? text : "");
        return cli_usage_error(cmd, "%s expects a whole number from %zu to %zu, got '%s'", what, lo,
                               hi, text ? text : "");
    }
    *out = (size_t)v;
    return CLI_OK;
}

/* Splits a comma-separated list into at most cap pieces of at most 63 characters. */
static int split_list(const char *cmd, const char *what, const char *text, char (*items)[64],
                      size_t cap, size_t *n)
{
    *n = 0;
    const char *p = text ? text : "";
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (*n == cap)
            return cli_usage_error(cmd, "%s takes at most %zu values, got '%s'", what, cap, text);
        if (len == 0 || len >= 64)
            return cli_usage_error(cmd, "%s expects a comma-separated list, got '%s'", what,
                                   text ? text : "");
        memcpy(items[*n], p, len);
        items[*n][len] = '\0';
        (*n)++;
        if (!comma)
            break;
        p = comma + 1;
    }
    return CLI_OK;
}

int cli_parse_doubles(const char *cmd, const char *what, const char *text, double lo, bool lo_open,
                      double hi, bool hi_open, double *out, size_t cap, size_t *n)
{
    char items[16][64];
    int rc = split_list(cmd, what, text, items, cap < 16 ? cap : 16, n);
    for (size_t i = 0; rc == CLI_OK && i < *n; i++)
        rc = cli_parse_double(cmd, what, items[i], lo, lo_open, hi, hi_open, &out[i]);
    return rc;
}

int cli_parse_sizes(const char *cmd, const char *what, const char *text, size_t lo, size_t hi,
                    size_t *out, size_t cap, size_t *n)
{
    char items[16][64];
    int rc = split_list(cmd, what, text, items, cap < 16 ? cap : 16, n);
    for (size_t i = 0; rc == CLI_OK && i < *n; i++)
        rc = cli_parse_size(cmd, what, items[i], lo, hi, &out[i]);
    return rc;
}

/* ---- the parser -------------------------------------------------------------------- */

static void list_choices(char *buf, size_t cap, const char *const *choices)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; choices[i]; i++) {
        const char *sep = !choices[i + 1] && i ? " or " : i ? ", " : "";
        int w = snprintf(buf + len, cap - len, "%s%s", sep, choices[i]);
        if (w < 0 || (size_t)w >= cap - len)
            break;
        len += (size_t)w;
    }
}

static int set_value(const char *cmd, const opt_def *d, const char *v)
{
    switch (d->kind) {
    case OPT_STRING:
        if (!*v)
            return cli_usage_error(cmd, "%s expects a value, got an empty string", d->name);
        *(const char **)d->dst = v;
        return CLI_OK;
    case OPT_SIZE:
        return cli_parse_size(cmd, d->name, v, (size_t)d->lo,
                              d->hi >= (double)SIZE_MAX ? SIZE_MAX : (size_t)d->hi,
                              (size_t *)d->dst);
    case OPT_U64: {
        unsigned long long x = 0;
        if (!parse_whole(v, &x))
            return cli_usage_error(cmd, "%s expects a whole number >= 0, got '%s'", d->name, v);
        *(uint64_t *)d->dst = x;
        return CLI_OK;
    }
    case OPT_DOUBLE:
        return cli_parse_double(cmd, d->name, v, d->lo, d->lo_open, d->hi, d->hi_open,
                                (double *)d->dst);
    case OPT_CHOICE:
        for (int i = 0; d->choices[i]; i++) {
            if (strcmp(d->choices[i], v) == 0) {
                *(int *)d->dst = i;
                return CLI_OK;
            }
        }
        {
            char list[256];
            list_choices(list, sizeof list, d->choices);
            return cli_usage_error(cmd, "%s expects %s, got '%s'", d->name, list, v);
        }
    case OPT_LIST: {
        cli_strlist *l = d->dst;
        if (l->n == sizeof l->item / sizeof l->item[0])
            return cli_usage_error(cmd, "%s may be given at most %zu times", d->name,
                                   sizeof l->item / sizeof l->item[0]);
        if (!*v)
            return cli_usage_error(cmd, "%s expects a value, got an empty string", d->name);
        l->item[l->n++] = v;
        return CLI_OK;
    }
    case OPT_FLAG:
        break;
    }
    return cli_usage_error(cmd, "internal: option %s has no value kind", d->name);
}

int opts_parse(const char *cmd, int argc, char **argv, const opt_def *defs, size_t ndefs)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return CLI_HELP;
        if (strncmp(a, "--", 2) != 0)
            return cli_usage_error(cmd,
                                   "unexpected argument '%s' (options start with --; see "
                                   "'cltrain %s --help')",
                                   a, cmd);
        const char *eq = strchr(a, '=');
        size_t len = eq ? (size_t)(eq - a) : strlen(a);
        const opt_def *d = NULL;
        for (size_t k = 0; k < ndefs && !d; k++)
            if (strlen(defs[k].name) == len && strncmp(defs[k].name, a, len) == 0)
                d = &defs[k];
        if (!d)
            return cli_usage_error(cmd, "unknown option '%.*s' (see 'cltrain %s --help')", (int)len,
                                   a, cmd);
        if (d->given)
            *d->given = true;
        if (d->kind == OPT_FLAG) {
            if (eq)
                return cli_usage_error(cmd, "%s takes no value, got '%s'", d->name, eq + 1);
            *(bool *)d->dst = true;
            continue;
        }
        const char *v = NULL;
        if (eq) {
            v = eq + 1;
        } else {
            if (i + 1 >= argc)
                return cli_usage_error(cmd, "%s needs a value", d->name);
            v = argv[++i];
        }
        int rc = set_value(cmd, d, v);
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

/* ---- data ------------------------------------------------------------------------- */

void cli_data_defaults(cli_data_opts *d)
{
    memset(d, 0, sizeof *d);
    d->batch_size = 64;
    d->eval_batch_size = 256;
}

size_t cli_data_defs(cli_data_opts *d, bool train, bool *aug_on, bool *aug_off, opt_def *out)
{
    size_t n = 0;
    out[n++] = (opt_def){.name = "--data", .kind = OPT_STRING, .dst = &d->dir};
    out[n++] = (opt_def){
        .name = "--dataset", .kind = OPT_CHOICE, .dst = &d->dataset, .choices = cli_dataset_names};
    out[n++] = (opt_def){.name = "--classes", .kind = OPT_STRING, .dst = &d->classes};
    out[n++] = (opt_def){.name = "--mean", .kind = OPT_STRING, .dst = &d->mean};
    out[n++] = (opt_def){.name = "--std", .kind = OPT_STRING, .dst = &d->std};
    out[n++] = (opt_def){.name = "--no-normalize", .kind = OPT_FLAG, .dst = &d->no_normalize};
    out[n++] = (opt_def){.name = "--eval-batch-size",
                         .kind = OPT_SIZE,
                         .dst = &d->eval_batch_size,
                         .lo = 1,
                         .hi = 1 << 20};
    if (train) {
        out[n++] = (opt_def){
            .name = "--val", .kind = OPT_SIZE, .dst = &d->val, .lo = 0, .hi = (double)SIZE_MAX};
        out[n++] = (opt_def){.name = "--augment", .kind = OPT_FLAG, .dst = aug_on};
        out[n++] = (opt_def){.name = "--no-augment", .kind = OPT_FLAG, .dst = aug_off};
        out[n++] = (opt_def){.name = "--batch-size",
                             .kind = OPT_SIZE,
                             .dst = &d->batch_size,
                             .lo = 1,
                             .hi = 1 << 20};
        out[n++] = (opt_def){.name = "--no-shuffle", .kind = OPT_FLAG, .dst = &d->no_shuffle};
        out[n++] = (opt_def){.name = "--seed", .kind = OPT_U64, .dst = &d->seed};
    }
    return n;
}

int cli_data_finish(const char *cmd, cli_data_opts *d, bool aug_on, bool aug_off)
{
    if (aug_on && aug_off)
        return cli_usage_error(cmd, "--augment and --no-augment contradict each other");
    if (d->no_normalize && (d->mean || d->std))
        return cli_usage_error(cmd, "--no-normalize contradicts --%s", d->mean ? "mean" : "std");
    d->augment = aug_on ? 1 : aug_off ? -1 : 0;
    return CLI_OK;
}

void cli_data_help(FILE *to, bool train)
{
    fprintf(to,
            "data:\n"
            "  --dataset NAME        fashion-mnist (default), mnist or cifar10\n"
            "  --data DIR            where its files are (default " CT_DATA_DEFAULT_ROOT "/NAME)\n"
            "  --classes A,B,...     keep only these classes, relabelled 0, 1, ... in this\n"
            "                        order (--loss bce: default 0,6)\n"
            "  --mean M[,M,M]        normalisation (x - mean) / std per channel; default: the\n"
            "  --std S[,S,S]         training set's own mean and standard deviation\n"
            "  --no-normalize        only scale pixels to [0, 1]\n"
            "  --eval-batch-size N   batch size of evaluation passes (default 256)\n");
    if (train)
        fprintf(
            to,
            "  --val N               hold out N training images (a seeded random choice) for\n"
            "                        validation: early stopping, the best checkpoint and\n"
            "                        --schedule plateau watch it (default 0: none)\n"
            "  --augment             random crop (zero padding 4 for 32x32 images, 2 for\n"
            "                        28x28) and horizontal flip (not for mnist: digits are not\n"
            "                        mirror-symmetric); default on for cifar10 only\n"
            "  --no-augment          no augmentation\n"
            "  --batch-size N        training batch size (default 64; the last batch of an\n"
            "                        epoch may be smaller)\n"
            "  --no-shuffle          visit the training set in file order\n"
            "  --seed N              seeds the initial weights, dropout, the order of the\n"
            "                        batches, augmentation and --val (default 0)\n");
}

void cli_data_free(cli_data *d)
{
    if (!d)
        return;
    ct_dataset_free(d->train);
    ct_dataset_free(d->val);
    ct_dataset_free(d->test);
    memset(d, 0, sizeof *d);
}

/* The samples of `ds` whose class is one of keep[0..k), relabelled to their position. */
static ct_status keep_classes(const ct_dataset *ds, const size_t *keep, size_t k,
                              const char *const *names, ct_dataset **out)
{
    size_t shape[4];
    ct_dataset_shape(ds, shape);
    size_t per = shape[1] * shape[2] * shape[3], n = 0;
    const uint8_t *img = ct_dataset_images(ds), *lab = ct_dataset_labels(ds);
    uint8_t map[256];
    memset(map, 0xff, sizeof map);
    for (size_t i = 0; i < k; i++)
        map[keep[i]] = (uint8_t)i;
    for (size_t i = 0; i < shape[0]; i++)
        n += map[lab[i]] != 0xff;
    uint8_t *ni = malloc(n * per + 1), *nl = malloc(n + 1);
    if (!ni || !nl) {
        free(ni);
        free(nl);
        fprintf(stderr, "cltrain: out of host memory\n");
        return CT_ERR_OUT_OF_MEMORY;
    }
    size_t j = 0;
    for (size_t i = 0; i < shape[0]; i++) {
        if (map[lab[i]] == 0xff)
            continue;
        memcpy(ni + j * per, img + i * per, per);
        nl[j++] = map[lab[i]];
    }
    ct_status st = n ? ct_dataset_create(ct_dataset_name(ds), n, shape[1], shape[2], shape[3], k,
                                         ni, nl, names, out)
                     : CT_ERR_INVALID_ARG;
    free(ni);
    free(nl);
    return st;
}

/* --mean/--std: one value for every channel or one per channel, into out[0..channels). */
static int per_channel(const char *cmd, const char *what, const char *text, double lo, bool lo_open,
                       size_t channels, float *out)
{
    double v[4];
    size_t n = 0;
    int rc = cli_parse_doubles(cmd, what, text, lo, lo_open, INFINITY, false, v, 4, &n);
    if (rc != CLI_OK)
        return rc;
    if (n != 1 && n != channels)
        return cli_usage_error(cmd, "%s expects 1 or %zu values (one per channel), got '%s'", what,
                               channels, text);
    for (size_t c = 0; c < channels; c++)
        out[c] = (float)v[n == 1 ? 0 : c];
    return CLI_OK;
}

int cli_data_load(const char *cmd, const cli_data_opts *d, bool need_train, cli_data *out)
{
    const char *name = cli_dataset_names[d->dataset];
    ct_dataset *full_train = NULL, *full_test = NULL, *sel = NULL;
    size_t keep[256], nkeep = 0, shape[4];
    int rc = CLI_OK;
    ct_status st;

    memset(out, 0, sizeof *out);
    if (need_train) {
        st = ct_dataset_load(name, d->dir, CT_SPLIT_TRAIN, &full_train);
        if (st != CT_SUCCESS) {
            rc = cli_fail("loading the training set", st);
            goto done;
        }
    }
    st = ct_dataset_load(name, d->dir, CT_SPLIT_TEST, &full_test);
    if (st != CT_SUCCESS) {
        rc = cli_fail("loading the test set", st);
        goto done;
    }
    const ct_dataset *ref = full_train ? full_train : full_test;
    size_t nclass = ct_dataset_num_classes(ref);
    ct_dataset_shape(ref, shape);

    /* --classes */
    if (d->classes) {
        rc = cli_parse_sizes(cmd, "--classes", d->classes, 0, SIZE_MAX, keep, 16, &nkeep);
        if (rc != CLI_OK)
            goto done;
        for (size_t i = 0; i < nkeep; i++) {
            if (keep[i] >= nclass) {
                rc = cli_usage_error(cmd, "--classes: unknown class %zu (%s has classes 0 to %zu)",
                                     keep[i], name, nclass - 1);
                goto done;
            }
            for (size_t j = 0; j < i; j++) {
                if (keep[j] == keep[i]) {
                    rc = cli_usage_error(cmd, "--classes: class %zu is listed twice", keep[i]);
                    goto done;
                }
            }
        }
        if (nkeep < 2) {
            rc = cli_usage_error(cmd, "--classes needs at least two classes, got '%s'", d->classes);
            goto done;
        }
    } else {
        for (size_t i = 0; i < nclass; i++)
            keep[nkeep++] = i;
    }
    out->classes = nkeep;
    for (size_t i = 0; i < nkeep; i++) {
        out->orig_class[i] = keep[i];
        out->class_name[i] = ct_dataset_class_name(ref, keep[i]);
    }
    if (d->classes) {
        st = CT_SUCCESS;
        if (full_train)
            st = keep_classes(full_train, keep, nkeep, out->class_name, &sel);
        if (st == CT_SUCCESS) {
            ct_dataset_free(full_train);
            full_train = sel;
            sel = NULL;
            /* the names were borrowed from the dataset just freed: take the new copies */
            if (full_train)
                for (size_t i = 0; i < nkeep; i++)
                    out->class_name[i] = ct_dataset_class_name(full_train, i);
            st = keep_classes(full_test, keep, nkeep, out->class_name, &sel);
        }
        if (st != CT_SUCCESS) {
            rc = cli_fail("selecting --classes", st);
            goto done;
        }
        ct_dataset_free(full_test);
        full_test = sel;
        sel = NULL;
        /* the names now belong to the new datasets */
        for (size_t i = 0; i < nkeep; i++)
            out->class_name[i] = ct_dataset_class_name(full_test, i);
    }

    /* --val */
    if (d->val && full_train) {
        size_t n = ct_dataset_count(full_train);
        if (d->val >= n) {
            rc = cli_usage_error(
                cmd, "--val %zu must be smaller than the training set (%zu images)", d->val, n);
            goto done;
        }
        st = ct_dataset_split(full_train, d->val, 1, d->seed, &out->train, &out->val);
        if (st != CT_SUCCESS) {
            rc = cli_fail("splitting off the validation set", st);
            goto done;
        }
        ct_dataset_free(full_train);
        full_train = NULL;
    } else {
        out->train = full_train;
        full_train = NULL;
    }
    out->test = full_test;
    full_test = NULL;

    /* normalisation */
    out->channels = shape[1];
    out->in_shape[0] = shape[1];
    out->in_shape[1] = shape[2];
    out->in_shape[2] = shape[3];
    out->normalize = !d->no_normalize;
    for (size_t c = 0; c < 4; c++) {
        out->mean[c] = 0.0f;
        out->std[c] = 1.0f;
    }
    if (out->normalize) {
        for (size_t c = 0; c < shape[1] && out->train; c++) {
            out->mean[c] = (float)ct_dataset_mean(out->train, c);
            out->std[c] = (float)ct_dataset_std(out->train, c);
        }
        if (!out->train && (!d->mean || !d->std)) {
            for (size_t c = 0; c < shape[1]; c++) {
                out->mean[c] = (float)ct_dataset_mean(out->test, c);
                out->std[c] = (float)ct_dataset_std(out->test, c);
            }
        }
        if (d->mean) {
            rc = per_channel(cmd, "--mean", d->mean, -INFINITY, false, shape[1], out->mean);
            if (rc != CLI_OK)
                goto done;
        }
        if (d->std) {
            rc = per_channel(cmd, "--std", d->std, 0, true, shape[1], out->std);
            if (rc != CLI_OK)
                goto done;
        }
    }

    /* augmentation: on by default for CIFAR-10 only */
    bool aug = d->augment > 0 || (d->augment == 0 && d->dataset == 2);
    if (aug) {
        out->crop_pad = shape[2] >= 32 ? 4 : 2;
        out->hflip = d->dataset != 1; /* digits are not mirror-symmetric */
    }
done:
    ct_dataset_free(full_train);
    ct_dataset_free(full_test);
    ct_dataset_free(sel);
    if (rc != CLI_OK)
        cli_data_free(out);
    return rc;
}

ct_status cli_loader(ct_context *ctx, const cli_data *data, const cli_data_opts *d,
                     const ct_dataset *ds, bool train, ct_loader **out)
{
    ct_loader_options o;
    memset(&o, 0, sizeof o);
    o.batch_size = train ? d->batch_size : d->eval_batch_size;
    o.shuffle = train && !d->no_shuffle;
    o.seed = d->seed;
    o.normalize = data->normalize;
    o.mean = data->normalize ? data->mean : NULL;
    o.std = data->normalize ? data->std : NULL;
    o.crop_pad = train ? data->crop_pad : 0;
    o.hflip = train && data->hflip;
    return ct_loader_create(ctx, ds, &o, out);
}

size_t cli_task_outputs(int loss, size_t classes)
{
    return loss == 1 && classes == 2 ? 1 : classes;
}

ct_loss_kind cli_loss_kind(int loss)
{
    return loss == 1 ? CT_LOSS_BCE_WITH_LOGITS : loss == 2 ? CT_LOSS_MSE : CT_LOSS_CROSS_ENTROPY;
}

int cli_model_layers(const char *cmd, const char *spec, size_t outputs, const size_t in_shape[3],
                     ct_layer_desc **layers, size_t *count)
{
    size_t ondim = 0, oshape[3] = {0, 0, 0};
    *layers = NULL;
    if (ct_spec_parse(spec, layers, count) != CT_SUCCESS)
        return cli_usage_error(cmd, "--model: %s", ct_last_error());
    for (size_t i = *count; i-- > 0;) {
        if ((*layers)[i].kind == CT_LAYER_LINEAR) {
            (*layers)[i].out = outputs;
            break;
        }
    }
    if (ct_layers_check(*layers, *count, 3, in_shape, &ondim, oshape, NULL) != CT_SUCCESS) {
        free(*layers);
        *layers = NULL;
        return cli_usage_error(cmd, "--model: %s", ct_last_error());
    }
    if (ondim != 1 || oshape[0] != outputs) {
        free(*layers);
        *layers = NULL;
        return cli_usage_error(cmd,
                               "--model: the model gives %s per image, the task needs %zu "
                               "scores; end the spec with a linear layer",
                               ondim == 1 ? "a vector" : "a feature map", outputs);
    }
    return CLI_OK;
}

/* ---- optimizer -------------------------------------------------------------------- */

void cli_optim_defaults(cli_optim_opts *o)
{
    memset(o, 0, sizeof *o);
    o->kind = 1; /* adam */
}

static const ct_optim_kind optim_kinds[] = {CT_OPTIM_SGD, CT_OPTIM_ADAM, CT_OPTIM_ADAMW,
                                            CT_OPTIM_RMSPROP, CT_OPTIM_ADAGRAD};

int cli_optim_resolve(const char *cmd, cli_optim_opts *o, ct_optim_options *out)
{
    ct_optim_kind k = optim_kinds[o->kind];
    const char *name = cli_optim_names[o->kind];
    ct_optim_options d = ct_optim_defaults(k);
    bool adam = k == CT_OPTIM_ADAM || k == CT_OPTIM_ADAMW;
    if (!o->lr_given)
        o->lr = k == CT_OPTIM_SGD ? 1e-2 : d.lr;
    if (!o->wd_given)
        o->weight_decay = d.weight_decay;
    if (!o->eps_given)
        o->eps = d.eps;
    if (!o->alpha_given)
        o->alpha = d.alpha;
    if (!o->momentum_given)
        o->momentum = d.momentum;
    if (o->momentum_given && k != CT_OPTIM_SGD && k != CT_OPTIM_RMSPROP)
        return cli_usage_error(cmd, "--momentum applies to sgd and rmsprop, not %s%s", name,
                               adam ? " (it has --betas)" : "");
    if (o->nesterov && k != CT_OPTIM_SGD)
        return cli_usage_error(cmd, "--nesterov applies to sgd, not %s", name);
    if (o->nesterov && o->momentum <= 0)
        return cli_usage_error(cmd, "--nesterov needs --momentum > 0");
    if ((o->betas || o->beta1_given || o->beta2_given) && !adam)
        return cli_usage_error(cmd, "--betas applies to adam and adamw, not %s", name);
    if (o->amsgrad && !adam)
        return cli_usage_error(cmd, "--amsgrad applies to adam and adamw, not %s", name);
    if ((o->alpha_given || o->centered) && k != CT_OPTIM_RMSPROP)
        return cli_usage_error(cmd, "--%s applies to rmsprop, not %s",
                               o->centered ? "centered" : "alpha", name);
    if (o->eps_given && k == CT_OPTIM_SGD)
        return cli_usage_error(cmd, "--eps does not apply to sgd");
    if (!o->beta1_given)
        o->beta1 = d.beta1;
    if (!o->beta2_given)
        o->beta2 = d.beta2;
    if (o->betas) {
        double b[2];
        size_t n = 0;
        int rc = cli_parse_doubles(cmd, "--betas", o->betas, 0, false, 1, true, b, 2, &n);
        if (rc != CLI_OK)
            return rc;
        if (n != 2)
            return cli_usage_error(cmd,
                                   "--betas expects two numbers in [0, 1) such as "
                                   "0.9,0.999, got '%s'",
                                   o->betas);
        o->beta1 = b[0];
        o->beta2 = b[1];
    }
    *out = d;
    out->lr = o->lr;
    out->weight_decay = o->weight_decay;
    out->momentum = o->momentum;
    out->nesterov = o->nesterov;
    out->beta1 = o->beta1;
    out->beta2 = o->beta2;
    out->eps = o->eps;
    out->alpha = o->alpha;
    out->centered = o->centered;
    out->amsgrad = o->amsgrad;
    return CLI_OK;
}

static int config_bool(const char *cmd, const char *key, const char *v, bool *out)
{
    if (!v || strcmp(v, "1") == 0 || strcmp(v, "true") == 0) {
        *out = true;
        return CLI_OK;
    }
    if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0) {
        *out = false;
        return CLI_OK;
    }
    return cli_usage_error(cmd, "--config: %s expects 0 or 1, got '%s'", key, v);
}

int cli_optim_parse_config(const char *cmd, const char *text, cli_optim_opts *o)
{
    char items[16][64];
    size_t n = 0;
    int rc = split_list(cmd, "--config", text, items, 16, &n);
    if (rc != CLI_OK)
        return rc;
    cli_optim_defaults(o);
    o->kind = -1;
    for (int i = 0; cli_optim_names[i]; i++)
        if (strcmp(items[0], cli_optim_names[i]) == 0)
            o->kind = i;
    if (o->kind < 0)
        return cli_usage_error(cmd,
                               "--config '%s': starts with the optimizer (sgd, adam, adamw, "
                               "rmsprop or adagrad), got '%s'",
                               text, items[0]);
    for (size_t i = 1; i < n; i++) {
        char *key = items[i], *v = strchr(key, '=');
        char what[96];
        if (v)
            *v++ = '\0';
        snprintf(what, sizeof what, "--config: %s", key);
        if (strcmp(key, "lr") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, true, INFINITY, false, &o->lr);
            o->lr_given = true;
        } else if (strcmp(key, "momentum") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, INFINITY, false, &o->momentum);
            o->momentum_given = true;
        } else if (strcmp(key, "wd") == 0 || strcmp(key, "weight_decay") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, INFINITY, false, &o->weight_decay);
            o->wd_given = true;
        } else if (strcmp(key, "beta1") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, 1, true, &o->beta1);
            o->beta1_given = true;
        } else if (strcmp(key, "beta2") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, 1, true, &o->beta2);
            o->beta2_given = true;
        } else if (strcmp(key, "eps") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, INFINITY, false, &o->eps);
            o->eps_given = true;
        } else if (strcmp(key, "alpha") == 0) {
            rc = cli_parse_double(cmd, what, v, 0, false, INFINITY, false, &o->alpha);
            o->alpha_given = true;
        } else if (strcmp(key, "nesterov") == 0) {
            rc = config_bool(cmd, key, v, &o->nesterov);
        } else if (strcmp(key, "nodecay") == 0) {
            rc = config_bool(cmd, key, v, &o->no_decay_1d);
        } else if (strcmp(key, "centered") == 0) {
            rc = config_bool(cmd, key, v, &o->centered);
        } else if (strcmp(key, "amsgrad") == 0) {
            rc = config_bool(cmd, key, v, &o->amsgrad);
        } else {
            rc = cli_usage_error(cmd,
                                 "--config '%s': unknown key '%s' (lr, momentum, nesterov, nodecay, "
                                 "wd, beta1, beta2, eps, alpha, centered, amsgrad)",
                                 text, key);
        }
        if (rc != CLI_OK)
            return rc;
    }
    return CLI_OK;
}

void cli_optim_describe(const cli_optim_opts *o, char *buf, size_t cap)
{
    size_t len = 0;
#define ADD(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(buf + len, cap - len, __VA_ARGS__);                                      \
        if (w_ > 0 && (size_t)w_ < cap - len)                                                      \
            len += (size_t)w_;                                                                     \
    } while (0)
    ADD("%s lr=%g", cli_optim_names[o->kind], o->lr);
    if (o->momentum > 0)
        ADD(" momentum=%g", o->momentum);
    if (o->nesterov)
        ADD(" nesterov");
    if (o->no_decay_1d)
        ADD(" nodecay");
    if (o->weight_decay > 0)
        ADD(" wd=%g", o->weight_decay);
    if (o->betas || o->beta1_given || o->beta2_given)
        ADD(" betas=%g,%g", o->beta1, o->beta2);
    if (o->amsgrad)
        ADD(" amsgrad");
    if (o->centered)
        ADD(" centered");
    if (o->alpha_given)
        ADD(" alpha=%g", o->alpha);
    if (o->eps_given)
        ADD(" eps=%g", o->eps);
#undef ADD
}

/* ---- schedule --------------------------------------------------------------------- */

void cli_sched_defaults(cli_sched_opts *s)
{
    memset(s, 0, sizeof *s);
    s->gamma = 0.1;
    s->pct_start = 0.3;
    s->patience = 2;
    s->factor = 0.1;
}

int cli_sched_resolve(const char *cmd, const cli_sched_opts *s, double lr, size_t epochs,
                      size_t batches, ct_sched_options *o, size_t *milestones, size_t cap,
                      ct_sched_when *when, bool *enabled)
{
    static const ct_sched_kind kinds[] = {CT_SCHED_LINEAR,      CT_SCHED_STEP,   CT_SCHED_MULTISTEP,
                                          CT_SCHED_EXPONENTIAL, CT_SCHED_COSINE, CT_SCHED_ONECYCLE,
                                          CT_SCHED_PLATEAU};
    const char *name = cli_schedule_names[s->kind];
    bool per_batch = s->unit == 1 || s->kind == 5;
    size_t total = per_batch ? epochs * batches : epochs;
    *enabled = s->kind != 0 || s->warmup > 0;
    *when = per_batch ? CT_SCHED_PER_STEP : CT_SCHED_PER_EPOCH;
    if (!*enabled)
        return CLI_OK;
    if (s->kind == 6 && s->unit == 1)
        return cli_usage_error(cmd, "--schedule plateau steps once per epoch (it watches a "
                                    "validation metric); drop --schedule-unit batch");
    if (s->warmup && (s->kind == 5 || s->kind == 6))
        return cli_usage_error(cmd, "--warmup does not combine with --schedule %s", name);
    *o = ct_sched_defaults(kinds[s->kind]);
    if (s->gamma_given)
        o->gamma = s->gamma;
    switch (s->kind) {
    case 0: /* warm-up alone: constant afterwards */
        o->start_factor = 1.0;
        o->end_factor = 1.0;
        o->total_iters = 1;
        break;
    case 1:
        o->step_size = s->step_size ? s->step_size : (total + 2) / 3;
        break;
    case 2: {
        size_t n = 0;
        if (s->milestones) {
            int rc = cli_parse_sizes(cmd, "--milestones", s->milestones, 1, SIZE_MAX, milestones,
                                     cap, &n);
            if (rc != CLI_OK)
                return rc;
            for (size_t i = 1; i < n; i++)
                if (milestones[i] <= milestones[i - 1])
                    return cli_usage_error(cmd, "--milestones must increase, got '%s'",
                                           s->milestones);
        } else {
            milestones[n++] = total / 2 ? total / 2 : 1;
            if (total * 3 / 4 > milestones[0])
                milestones[n++] = total * 3 / 4;
        }
        o->milestones = milestones;
        o->n_milestones = n;
        break;
    }
    case 3:
        o->gamma = s->gamma_given ? s->gamma : pow(0.1, 1.0 / (double)(total ? total : 1));
        break;
    case 4:
        o->t_max = s->t_max ? s->t_max : total;
        o->eta_min = s->eta_min;
        break;
    case 5:
        o->max_lr = s->max_lr > 0 ? s->max_lr : lr;
        o->total_steps = total;
        o->pct_start = s->pct_start;
        break;
    case 6:
        o->factor = s->factor;
        o->patience = s->patience;
        break;
    default:
        break;
    }
    if (s->warmup) {
        o->warmup_iters = s->warmup;
        o->warmup_start_factor = 1.0 / 3.0;
    }
    return CLI_OK;
}

/* ---- the objects of one run ------------------------------------------------------ */

void cli_run_free(cli_run *r)
{
    if (!r)
        return;
    ct_trainer_free(r->trainer);
    ct_sched_free(r->sched);
    ct_optim_free(r->optim);
    ct_model_free(r->model);
    memset(r, 0, sizeof *r);
}

int cli_run_create(const char *cmd, ct_context *ctx, const ct_layer_desc *layers, size_t nl,
                   const size_t in_shape[3], uint64_t seed, cli_optim_opts *oo,
                   const cli_sched_opts *so, size_t epochs, size_t batches,
                   const ct_trainer_options *to, cli_run *out)
{
    ct_optim_options opt;
    ct_sched_options sch;
    bool with_sched = false;
    int rc;
    memset(out, 0, sizeof *out);
    rc = cli_optim_resolve(cmd, oo, &opt);
    if (rc == CLI_OK)
        rc = cli_sched_resolve(cmd, so, oo->lr, epochs, batches, &sch, out->milestones, 16,
                               &out->when, &with_sched);
    if (rc != CLI_OK)
        return rc;
    if (with_sched && so->kind == 5) {
        /* OneCycleLR cycles the momentum (beta1) only when the optimizer has one */
        ct_optim_kind k = opt.kind;
        sch.cycle_momentum = k == CT_OPTIM_ADAM || k == CT_OPTIM_ADAMW ||
                             ((k == CT_OPTIM_SGD || k == CT_OPTIM_RMSPROP) && opt.momentum > 0);
    }
    ct_status st = ct_model_create(ctx, layers, nl, 3, in_shape, seed, &out->model);
    if (st != CT_SUCCESS) {
        rc = cli_fail("creating the model", st);
        goto fail;
    }
    /* --no-decay-bias: PyTorch's two param_groups, biases and norm parameters without
     * weight decay (ct_model_decay_ranges) */
    ct_optim_range *ranges = NULL;
    ct_optim_group groups[2] = {{opt.lr, opt.weight_decay}, {opt.lr, 0.0}};
    if (oo->no_decay_1d) {
        size_t np = ct_model_param_count(out->model), nr = 0;
        ranges = calloc(np ? np : 1, sizeof *ranges);
        if (!ranges) {
            rc = cli_fail("setting up parameter groups", CT_ERR_OUT_OF_MEMORY);
            goto fail;
        }
        st = ct_model_decay_ranges(out->model, ranges, np, &nr);
        if (st != CT_SUCCESS) {
            free(ranges);
            rc = cli_fail("setting up parameter groups", st);
            goto fail;
        }
        opt.groups = groups;
        opt.n_groups = 2;
        opt.ranges = ranges;
        opt.n_ranges = nr;
    }
    st = ct_optim_create(ctx, &opt, ct_model_params(out->model), ct_model_grads(out->model),
                         &out->optim);
    free(ranges); /* the optimizer keeps its own copy */
    if (st != CT_SUCCESS) {
        rc = cli_usage_error(cmd, "optimizer: %s", ct_last_error());
        goto fail;
    }
    if (with_sched) {
        st = ct_sched_create(&sch, out->optim, &out->sched);
        if (st != CT_SUCCESS) {
            rc = cli_usage_error(cmd, "--schedule %s: %s", cli_schedule_names[so->kind],
                                 ct_last_error());
            goto fail;
        }
    }
    st = ct_trainer_create(out->model, out->optim, out->sched, out->when, to, &out->trainer);
    if (st != CT_SUCCESS) {
        rc = cli_fail("setting up training", st);
        goto fail;
    }
    return CLI_OK;
fail:
    cli_run_free(out);
    return rc;
}

/* ---- hyper-parameter map --------------------------------------------------------- */

void cli_kv_set(cli_kv *kv, const char *key, const char *fmt, ...)
{
    size_t i = 0;
    while (i < kv->n && strcmp(kv->key[i], key) != 0)
        i++;
    if (i == kv->n) {
        if (kv->n == sizeof kv->key / sizeof kv->key[0])
            return;
        snprintf(kv->key[i], sizeof kv->key[i], "%s", key);
        kv->n++;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(kv->val[i], sizeof kv->val[i], fmt, ap);
    va_end(ap);
}

const char *cli_kv_get(const cli_kv *kv, const char *key)
{
    for (size_t i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], key) == 0)
            return kv->val[i];
    return NULL;
}

static size_t json_escape(char *dst, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            if (dst) {
                dst[n] = '\\';
                dst[n + 1] = (char)c;
            }
            n += 2;
        } else if (c < 0x20) {
            if (dst)
                snprintf(dst + n, 7, "\\u%04x", c);
            n += 6;
        } else {
            if (dst)
                dst[n] = (char)c;
            n++;
        }
    }
    return n;
}

char *cli_kv_json(const cli_kv *kv)
{
    size_t len = 3;
    for (size_t i = 0; i < kv->n; i++)
        len += json_escape(NULL, kv->key[i]) + json_escape(NULL, kv->val[i]) + 6;
    char *out = malloc(len);
    if (!out)
        return NULL;
    size_t n = 0;
    out[n++] = '{';
    for (size_t i = 0; i < kv->n; i++) {
        if (i)
            out[n++] = ',';
        out[n++] = '"';
        n += json_escape(out + n, kv->key[i]);
        out[n++] = '"';
        out[n++] = ':';
        out[n++] = '"';
        n += json_escape(out + n, kv->val[i]);
        out[n++] = '"';
    }
    out[n++] = '}';
    out[n] = '\0';
    return out;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}

/* A JSON string at p (at its opening quote) into buf; returns the position after it. */
static const char *json_string(const char *p, char *buf, size_t cap)
{
    size_t n = 0;
    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        char c = *p++;
        if (c == '\\') {
            c = *p++;
            switch (c) {
            case 'n':
                c = '\n';
                break;
            case 't':
                c = '\t';
                break;
            case 'r':
                c = '\r';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'u': {
                unsigned v = 0;
                if (sscanf(p, "%4x", &v) != 1)
                    return NULL;
                p += 4;
                c = v < 0x80 ? (char)v : '?';
                break;
            }
            case '"':
            case '\\':
            case '/':
                break;
            default:
                return NULL;
            }
        }
        if (n + 1 < cap)
            buf[n++] = c;
    }
    if (*p != '"')
        return NULL;
    buf[n] = '\0';
    return p + 1;
}

int cli_kv_parse_json(const char *json, cli_kv *kv)
{
    char key[64], val[512];
    memset(kv, 0, sizeof *kv);
    if (!json)
        return -1;
    const char *p = skip_ws(json);
    if (*p++ != '{')
        return -1;
    p = skip_ws(p);
    if (*p == '}')
        return 0;
    for (;;) {
        p = json_string(skip_ws(p), key, sizeof key);
        if (!p)
            return -1;
        p = skip_ws(p);
        if (*p++ != ':')
            return -1;
        p = json_string(skip_ws(p), val, sizeof val);
        if (!p)
            return -1;
        cli_kv_set(kv, key, "%s", val);
        p = skip_ws(p);
        if (*p == '}')
            return 0;
        if (*p++ != ',')
            return -1;
    }
}

int cli_kv_from_checkpoint(const char *cmd, const char *opt, const char *path, cli_kv *kv,
                           bool *found)
{
    char sp[4096];
    ct_safetensors *f = NULL;
    memset(kv, 0, sizeof *kv);
    if (found)
        *found = false;
    if (ct_checkpoint_state_path(path, sp, sizeof sp) != CT_SUCCESS)
        return cli_usage_error(cmd, "%s: path too long", opt);
    if (found) {
        FILE *probe = fopen(sp, "rb");
        if (!probe)
            return CLI_OK; /* a bare weights file */
        fclose(probe);
    }
    ct_status st = ct_safetensors_read(sp, &f);
    if (st != CT_SUCCESS) {
        char what[96];
        if (found)
            snprintf(what, sizeof what, "reading the checkpoint's state");
        else
            snprintf(what, sizeof what, "%s needs the checkpoint's state file", opt);
        return cli_fail(what, st);
    }
    for (size_t i = 0; i < ct_safetensors_metadata_count(f); i++) {
        const char *k = NULL, *v = NULL;
        if (ct_safetensors_metadata_at(f, i, &k, &v) == CT_SUCCESS && strncmp(k, "hparam.", 7) == 0)
            cli_kv_set(kv, k + 7, "%s", v);
    }
    ct_safetensors_free(f);
    if (found)
        *found = true;
    return CLI_OK;
}

/* ---- small things ------------------------------------------------------------------ */

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void cli_best_path(const char *path, char *buf, size_t cap)
{
    const char *ext = ".safetensors";
    size_t n = strlen(path), e = strlen(ext);
    if (n > e && strcmp(path + n - e, ext) == 0)
        snprintf(buf, cap, "%.*s.best%s", (int)(n - e), path, ext);
    else
        snprintf(buf, cap, "%s.best", path);
}
