/* lib/train/checkpoint.c — training checkpoints as two safetensors files.
 *
 * The weights file is a PyTorch state_dict of the equivalent torch.nn.Sequential:
 *     "<i>.weight", "<i>.bias"                       F32, the parameter's shape
 *     "<i>.running_mean", "<i>.running_var"          F32, (C)
 *     "<i>.num_batches_tracked"                      I64, rank 0
 * with metadata {"format": "pt"}.
 *
 * The state file (ct_checkpoint_state_path) holds, as __metadata__ strings,
 *     format = "cltrain.checkpoint", cltrain.version = "1",
 *     weights.file (base name), weights.fnv1a64 (16 hex digits, hash of the weights file),
 *     model.identity ("cltrain-model 2: input (C,H,W); " and each layer's
 *     ct_layer_desc_format; older files: ct_model_layer_describe lines, compared without
 *     their fusion notes), model.spec (if given),
 *     model.rng_seed, model.rng_counter,
 *     train.epoch, train.step, train.batch, train.data_seed,
 *     sched.present ("0"/"1"), sched.last_epoch, sched.num_bad_epochs,
 *     sched.cooldown_counter, optim.kind (when an optimizer is saved),
 *     hparam.<key> for each hyper-parameter
 * integers in decimal, so they are exact whatever their size; and as tensors
 *     train.best_metric, sched.best   F64, rank 0 (exact, NaN and inf included)
 *     optim.<name>                    each optimizer state entry, F32 or F64, 1-D
 */
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"
#include "train/st_internal.h"

#define STATE_FORMAT  "cltrain.checkpoint"
#define STATE_VERSION "1"
#define ST_SUFFIX     ".safetensors"
#define STATE_SUFFIX  ".state.safetensors"
/* num_batches_tracked lives in a float on the device: exact up to 2^24. */
#define MAX_TRACKED 16777216.0

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

void ct_train_state_clear(ct_train_state *s)
{
    if (!s)
        return;
    free(s->spec);
    free(s->hparams_json);
    memset(s, 0, sizeof *s);
}

ct_status ct_checkpoint_state_path(const char *path, char *buf, size_t cap)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(path != NULL && buf != NULL, CT_ERR_INVALID_ARG, "checkpoint_state_path: NULL");
    size_t n = strlen(path), sl = strlen(ST_SUFFIX);
    if (n > sl && strcmp(path + n - sl, ST_SUFFIX) == 0)
        n -= sl;
    CT_REQUIRE(n + strlen(STATE_SUFFIX) < cap, CT_ERR_INVALID_ARG,
               "checkpoint state path of %s does not fit in %zu bytes", path, cap);
    memcpy(buf, path, n);
    strcpy(buf + n, STATE_SUFFIX);
cleanup:
    return st;
}

static char *state_path_alloc(const char *path)
{
    size_t cap = strlen(path) + strlen(STATE_SUFFIX) + 1;
    char *p = malloc(cap);
    if (p && ct_checkpoint_state_path(path, p, cap) != CT_SUCCESS) {
        free(p);
        p = NULL;
    }
    return p;
}

/* ---- model identity --------------------------------------------------------------- */

/* What the model computes, not how this device runs it: "cltrain-model 2: input (1,28,28);
 * conv(32,3x3,stride=1x1,pad=1x1,dil=1x1,groups=1,bias=1); relu; ..." (every layer's
 * options spelled out by ct_layer_desc_format), so that a checkpoint moves between
 * devices whose fusions differ (a GPU keeps conv and pool apart) and a change of
 * batch-norm eps or pooling mode is caught. malloc'd. */
#define IDENTITY_V2 "cltrain-model 2: "

static ct_status append(char **s, size_t *cap, size_t *len, const char *text)
{
    ct_status st = CT_SUCCESS;
    size_t n = strlen(text);
    if (*len + n + 1 > *cap) {
        char *g = realloc(*s, 2 * (*len + n + 1));
        CT_REQUIRE(g != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        *s = g, *cap = 2 * (*len + n + 1);
    }
    memcpy(*s + *len, text, n + 1);
    *len += n;
cleanup:
    return st;
}

/* legacy: the ct_model_layer_describe lines of files written before "cltrain-model 2" */
static ct_status model_identity(const ct_model *m, bool legacy, char **out)
{
    ct_status st = CT_SUCCESS;
    char line[512];
    size_t nd, shape[3], cap = 256, len = 0;
    char *s = malloc(cap);
    CT_REQUIRE(s != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    s[0] = '\0';
    ct_model_input_shape(m, &nd, shape);
    CT_TRY(append(&s, &cap, &len, legacy ? "input (" : IDENTITY_V2 "input ("));
    for (size_t i = 0; i < nd; i++) {
        snprintf(line, sizeof line, "%s%zu", i ? "," : "", shape[i]);
        CT_TRY(append(&s, &cap, &len, line));
    }
    CT_TRY(append(&s, &cap, &len, ")"));
    for (size_t i = 0; i < ct_model_layer_count(m); i++) {
        if (legacy) {
            CT_TRY(ct_model_layer_describe(m, i, line, sizeof line));
        } else {
            ct_layer_desc d;
            CT_TRY(ct_model_layer_desc(m, i, &d));
            CT_TRY(ct_layer_desc_format(&d, line, sizeof line));
        }
        CT_TRY(append(&s, &cap, &len, "; "));
        CT_TRY(append(&s, &cap, &len, line));
    }
    *out = s;
    s = NULL;
cleanup:
    free(s);
    return st;
}

/* A legacy identity without the device's fusion notes (" +relu", " +maxpool",
 * " (fused)"), which said how it ran, not what it computes. In place. */
static void strip_plan_notes(char *s)
{
    static const char *const notes[] = {" +relu", " +maxpool", " (fused)"};
    for (size_t i = 0; i < sizeof notes / sizeof notes[0]; i++) {
        size_t n = strlen(notes[i]);
        for (char *at = strstr(s, notes[i]); at; at = strstr(at, notes[i]))
            memmove(at, at + n, strlen(at + n) + 1);
    }
}

static void first_difference(const char *a, const char *b, char *da, char *db, size_t cap)
{
    while (*a && *b) {
        size_t la = strcspn(a, ";"), lb = strcspn(b, ";");
        if (la != lb || memcmp(a, b, la) != 0)
            break;
        a += la + (a[la] == ';' ? 2 : 0);
        b += lb + (b[lb] == ';' ? 2 : 0);
    }
    snprintf(da, cap, "%.*s", (int)strcspn(a, ";"), *a ? a : "(nothing)");
    snprintf(db, cap, "%.*s", (int)strcspn(b, ";"), *b ? b : "(nothing)");
}

/* ---- metadata helpers ------------------------------------------------------------- */

static ct_status meta_set(json_t *o, const char *key, const char *value)
{
    if (json_object_set_new(o, key, json_string(value)) != 0)
        return ct_error_set(CT_ERR_OUT_OF_MEMORY, __FILE__, __LINE__,
                            "checkpoint: out of memory (metadata '%s')", key);
    return CT_SUCCESS;
}

static ct_status meta_u64(json_t *o, const char *key, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return meta_set(o, key, b);
}

static ct_status meta_i64(json_t *o, const char *key, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRId64, v);
    return meta_set(o, key, b);
}

static ct_status get_meta(const ct_safetensors *f, const char *key, const char **out)
{
    *out = ct_safetensors_metadata_get(f, key);
    if (!*out)
        return ct_error_set(CT_ERR_FORMAT, __FILE__, __LINE__, "%s: metadata '%s' is missing",
                            ct_safetensors_path(f), key);
    return CT_SUCCESS;
}

/* Strict decimal: digits only (after an optional '-' when `sign`), no overflow. */
static ct_status get_meta_int(const ct_safetensors *f, const char *key, bool sign, uint64_t *u,
                              int64_t *i)
{
    ct_status st = CT_SUCCESS;
    const char *s;
    CT_TRY(get_meta(f, key, &s));
    bool neg = sign && s[0] == '-';
    const char *d = s + neg;
    uint64_t v = 0;
    CT_REQUIRE(*d != '\0', CT_ERR_FORMAT, "%s: metadata '%s' = \"%s\" is not an integer",
               ct_safetensors_path(f), key, s);
    for (; *d; d++) {
        CT_REQUIRE(*d >= '0' && *d <= '9' && v <= (UINT64_MAX - (uint64_t)(*d - '0')) / 10,
                   CT_ERR_FORMAT, "%s: metadata '%s' = \"%s\" is not a%s 64-bit integer",
                   ct_safetensors_path(f), key, s, sign ? " signed" : "n unsigned");
        v = v * 10 + (uint64_t)(*d - '0');
    }
    if (u)
        *u = v;
    if (i) {
        CT_REQUIRE(v <= (uint64_t)INT64_MAX + (neg ? 1u : 0u), CT_ERR_FORMAT,
                   "%s: metadata '%s' = \"%s\" does not fit a signed 64-bit integer",
                   ct_safetensors_path(f), key, s);
        *i = neg ? (int64_t)(0 - v) : (int64_t)v;
    }
cleanup:
    return st;
}

/* ---- save ------------------------------------------------------------------------- */

/* Host copies of everything a save writes, gathered before the first file is touched. */
typedef struct ckpt_host {
    float *params, *buffers;
    int64_t *tracked; /* one per num_batches_tracked buffer */
    size_t nparams, nbuffers;
    ct_st_tensor *wt; /* weights-file tensors */
    size_t nwt;
    size_t (*wshape)[CT_MAX_DIMS];
    void **ostate; /* optimizer state arrays */
    size_t nostate;
    ct_st_tensor *stt; /* state-file tensors */
    size_t nstt;
    size_t *oshape;
    char **onames;
} ckpt_host;

static void host_free(ckpt_host *h)
{
    free(h->params);
    free(h->buffers);
    free(h->tracked);
    free(h->wt);
    free(h->wshape);
    for (size_t i = 0; i < h->nostate; i++) {
        free(h->ostate[i]);
        free(h->onames[i]);
    }
    free(h->ostate);
    free(h->onames);
    free(h->oshape);
    free(h->stt);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* Reads the model's parameters and buffers back and lays out the weights file. */
static ct_status gather_weights(ct_model *m, ckpt_host *h)
{
    ct_status st = CT_SUCCESS;
    size_t np = ct_model_param_count(m), nb = ct_model_buffer_count(m);
    h->nparams = ct_model_param_numel(m);
    h->nbuffers = ct_model_buffer_numel(m);
    h->params = malloc((h->nparams ? h->nparams : 1) * sizeof(float));
    h->buffers = malloc((h->nbuffers ? h->nbuffers : 1) * sizeof(float));
    h->tracked = malloc((nb ? nb : 1) * sizeof *h->tracked);
    h->wt = calloc(np + nb + 1, sizeof *h->wt);
    h->wshape = calloc(np + nb + 1, sizeof *h->wshape);
    CT_REQUIRE(h->params && h->buffers && h->tracked && h->wt && h->wshape, CT_ERR_OUT_OF_MEMORY,
               "checkpoint: out of memory");
    if (h->nparams)
        CT_TRY(ct_model_get_params(m, h->params, h->nparams));
    if (h->nbuffers)
        CT_TRY(ct_model_get_buffers(m, h->buffers, h->nbuffers));
    for (size_t i = 0; i < np + nb; i++) {
        const char *name;
        size_t nd, off, numel = 1;
        bool is_param = i < np;
        if (is_param)
            CT_TRY(ct_model_param_info(m, i, &name, &nd, h->wshape[i], &off));
        else
            CT_TRY(ct_model_buffer_info(m, i - np, &name, &nd, h->wshape[i], &off));
        for (size_t d = 0; d < nd; d++)
            numel *= h->wshape[i][d];
        ct_st_tensor *t = &h->wt[h->nwt++];
        t->name = name;
        t->ndim = nd;
        t->shape = h->wshape[i];
        if (!is_param && ends_with(name, ".num_batches_tracked")) {
            /* PyTorch keeps this count as int64 */
            float v = h->buffers[off];
            CT_REQUIRE(numel == 1 && v >= 0 && v == floorf(v), CT_ERR_INTERNAL,
                       "checkpoint: %s = %g is not a count", name, (double)v);
            h->tracked[i - np] = (int64_t)v;
            t->dtype = CT_ST_I64;
            t->data = &h->tracked[i - np];
            t->nbytes = 8;
        } else {
            t->dtype = CT_ST_F32;
            t->data = (is_param ? h->params : h->buffers) + off;
            t->nbytes = numel * sizeof(float);
        }
    }
cleanup:
    return st;
}

static ct_status gather_optim(ct_optim *opt, ckpt_host *h)
{
    ct_status st = CT_SUCCESS;
    size_t n = ct_optim_state_count(opt);
    h->ostate = calloc(n + 1, sizeof *h->ostate);
    h->onames = calloc(n + 1, sizeof *h->onames);
    h->oshape = calloc(n + 1, sizeof *h->oshape);
    h->stt = calloc(n + 3, sizeof *h->stt);
    CT_REQUIRE(h->ostate && h->onames && h->oshape && h->stt, CT_ERR_OUT_OF_MEMORY,
               "checkpoint: out of memory");
    for (size_t i = 0; i < n; i++) {
        ct_optim_state_info info;
        CT_TRY(ct_optim_state_info_at(opt, i, &info));
        size_t es = info.dtype == CT_STATE_F64 ? 8 : 4;
        h->ostate[i] = malloc(info.numel ? info.numel * es : 1);
        h->onames[i] = malloc(strlen(info.name) + 7);
        h->nostate = i + 1;
        CT_REQUIRE(h->ostate[i] && h->onames[i], CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        sprintf(h->onames[i], "optim.%s", info.name);
        CT_TRY(ct_optim_state_get(opt, info.name, h->ostate[i], info.numel));
        h->oshape[i] = info.numel;
        h->stt[h->nstt++] = (ct_st_tensor){h->onames[i],
                                           info.dtype == CT_STATE_F64 ? CT_ST_F64 : CT_ST_F32,
                                           1,
                                           &h->oshape[i],
                                           h->ostate[i],
                                           info.numel * es};
    }
cleanup:
    return st;
}

/* The state file's metadata as JSON text (malloc'd). */
static ct_status state_metadata(const char *path, ct_model *m, ct_optim *opt,
                                const ct_train_state *s, const char *identity, uint64_t whash,
                                char **out)
{
    ct_status st = CT_SUCCESS;
    json_t *o = json_object(), *hp = NULL;
    json_error_t jerr;
    char buf[64], key[512];
    CT_REQUIRE(o != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    const char *slash = strrchr(path, '/');
    uint64_t seed, counter;
    ct_model_get_rng(m, &seed, &counter);
    CT_TRY(meta_set(o, "format", STATE_FORMAT));
    CT_TRY(meta_set(o, "cltrain.version", STATE_VERSION));
    CT_TRY(meta_set(o, "weights.file", slash ? slash + 1 : path));
    snprintf(buf, sizeof buf, "%016" PRIx64, whash);
    CT_TRY(meta_set(o, "weights.fnv1a64", buf));
    CT_TRY(meta_set(o, "model.identity", identity));
    if (s && s->spec)
        CT_TRY(meta_set(o, "model.spec", s->spec));
    CT_TRY(meta_u64(o, "model.rng_seed", seed));
    CT_TRY(meta_u64(o, "model.rng_counter", counter));
    if (opt)
        CT_TRY(meta_set(o, "optim.kind", ct_optim_kind_name(ct_optim_get_kind(opt))));
    if (s) {
        CT_TRY(meta_u64(o, "train.epoch", s->epoch));
        CT_TRY(meta_u64(o, "train.step", s->step));
        CT_TRY(meta_u64(o, "train.batch", s->batch));
        CT_TRY(meta_u64(o, "train.data_seed", s->data_seed));
        CT_TRY(meta_set(o, "sched.present", s->has_sched ? "1" : "0"));
        if (s->has_sched) {
            CT_TRY(meta_i64(o, "sched.last_epoch", s->sched.last_epoch));
            CT_TRY(meta_i64(o, "sched.num_bad_epochs", s->sched.num_bad_epochs));
            CT_TRY(meta_i64(o, "sched.cooldown_counter", s->sched.cooldown_counter));
        }
        if (s->hparams_json) {
            hp = json_loads(s->hparams_json, JSON_REJECT_DUPLICATES, &jerr);
            CT_REQUIRE(hp != NULL && json_is_object(hp), CT_ERR_INVALID_ARG,
                       "checkpoint %s: hparams_json is not a JSON object: %s", path,
                       hp ? "another JSON value" : jerr.text);
            const char *k;
            json_t *v;
            json_object_foreach(hp, k, v)
            {
                CT_REQUIRE(json_is_string(v), CT_ERR_INVALID_ARG,
                           "checkpoint %s: hyper-parameter '%s' is not a string", path, k);
                CT_REQUIRE(strlen(k) + 8 < sizeof key, CT_ERR_INVALID_ARG,
                           "checkpoint %s: hyper-parameter name '%.40s...' is too long", path, k);
                snprintf(key, sizeof key, "hparam.%s", k);
                CT_TRY(meta_set(o, key, json_string_value(v)));
            }
        }
    }
    *out = json_dumps(o, JSON_COMPACT);
    CT_REQUIRE(*out != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
cleanup:
    json_decref(hp);
    json_decref(o);
    return st;
}

ct_status ct_checkpoint_save(const char *path, ct_model *model, ct_optim *optim,
                             const ct_train_state *state)
{
    ct_status st = CT_SUCCESS;
    ckpt_host h = {0};
    char *spath = NULL, *identity = NULL, *meta = NULL;
    uint64_t whash = 0;
    double best = 0, sched_best = 0;
    const size_t *scalar = NULL;

    CT_REQUIRE(path != NULL && model != NULL, CT_ERR_INVALID_ARG,
               "checkpoint_save: NULL path or model");
    CT_REQUIRE(host_is_little_endian(), CT_ERR_UNSUPPORTED,
               "checkpoint_save: safetensors files are little-endian; this host is not");
    spath = state_path_alloc(path);
    CT_REQUIRE(spath != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    CT_TRY(model_identity(model, false, &identity));

    /* Everything is read back first, so a failure here leaves both files untouched. */
    CT_TRY(gather_weights(model, &h));
    if (optim) {
        CT_TRY(gather_optim(optim, &h));
    } else {
        h.stt = calloc(3, sizeof *h.stt);
        CT_REQUIRE(h.stt != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
    }
    if (state) {
        best = state->best_metric;
        h.stt[h.nstt++] = (ct_st_tensor){"train.best_metric", CT_ST_F64, 0, scalar, &best, 8};
        if (state->has_sched) {
            sched_best = state->sched.best;
            h.stt[h.nstt++] = (ct_st_tensor){"sched.best", CT_ST_F64, 0, scalar, &sched_best, 8};
        }
    }

    CT_TRY(ct_st_write_hashed(path, h.nwt, h.wt, "{\"format\":\"pt\"}", &whash));
    CT_TRY(state_metadata(path, model, optim, state, identity, whash, &meta));
    CT_TRY(ct_safetensors_write(spath, h.nstt, h.stt, meta));
cleanup:
    host_free(&h);
    free(meta);
    free(identity);
    free(spath);
    return st;
}

/* ---- load ------------------------------------------------------------------------- */

/* Checks that `f` holds exactly the model's parameters and buffers, and reads them into
 * params/buffers (host, the model's flat layouts). */
static ct_status read_weights(const ct_safetensors *f, ct_model *m, float *params, float *buffers)
{
    ct_status st = CT_SUCCESS;
    const char *path = ct_safetensors_path(f);
    size_t np = ct_model_param_count(m), nb = ct_model_buffer_count(m);
    char a[128], b[128];
    for (size_t i = 0; i < np + nb; i++) {
        const char *name;
        size_t nd, shape[CT_MAX_DIMS], off, numel = 1;
        bool is_param = i < np;
        if (is_param)
            CT_TRY(ct_model_param_info(m, i, &name, &nd, shape, &off));
        else
            CT_TRY(ct_model_buffer_info(m, i - np, &name, &nd, shape, &off));
        for (size_t d = 0; d < nd; d++)
            numel *= shape[d];
        const ct_st_tensor *t = ct_safetensors_find(f, name);
        ct_st_fmt_shape(b, sizeof b, nd, shape);
        CT_REQUIRE(t != NULL, CT_ERR_FORMAT, "%s: missing tensor '%s' (the model has it, shape %s)",
                   path, name, b);
        bool same = t->ndim == nd;
        for (size_t d = 0; same && d < nd; d++)
            same = t->shape[d] == shape[d];
        ct_st_fmt_shape(a, sizeof a, t->ndim, t->shape);
        CT_REQUIRE(same, CT_ERR_SHAPE, "%s: tensor '%s' has shape %s, the model's is %s", path,
                   name, a, b);
        float *dst = (is_param ? params : buffers) + off;
        if (!is_param && ends_with(name, ".num_batches_tracked")) {
            int64_t n = 0;
            double d = 0;
            st = ct_safetensors_get_i64(f, name, nd, shape, &n, 1);
            if (st == CT_ERR_UNSUPPORTED) {
                CT_TRY(ct_safetensors_get_f64(f, name, nd, shape, &d, 1));
                CT_REQUIRE(d == floor(d), CT_ERR_FORMAT, "%s: %s = %g is not a count", path, name,
                           d);
            } else {
                CT_TRY(st);
                d = (double)n;
            }
            CT_REQUIRE(d >= 0 && d <= MAX_TRACKED, CT_ERR_UNSUPPORTED,
                       "%s: %s = %.0f is outside 0..2^24, which cltrain counts exactly", path, name,
                       d);
            *dst = (float)d;
        } else {
            CT_TRY(ct_safetensors_get_f32(f, name, nd, shape, dst, numel));
        }
    }
    /* strict=True: nothing the model does not have */
    for (size_t i = 0; i < ct_safetensors_count(f); i++) {
        const char *name = ct_safetensors_at(f, i)->name;
        bool known = false;
        for (size_t k = 0; !known && k < np + nb; k++) {
            const char *mine;
            if (k < np)
                CT_TRY(ct_model_param_info(m, k, &mine, NULL, NULL, NULL));
            else
                CT_TRY(ct_model_buffer_info(m, k - np, &mine, NULL, NULL, NULL));
            known = strcmp(mine, name) == 0;
        }
        CT_REQUIRE(known, CT_ERR_FORMAT,
                   "%s: unexpected tensor '%s' (the model has no such "
                   "parameter or buffer)",
                   path, name);
    }
cleanup:
    return st;
}

/* Whether the state file `s` was written together with the weights file `w`. */
static ct_status same_save(const ct_safetensors *s, const ct_safetensors *w, bool *same)
{
    ct_status st = CT_SUCCESS;
    const char *v, *h;
    char want[32];
    CT_TRY(get_meta(s, "format", &v));
    CT_REQUIRE(strcmp(v, STATE_FORMAT) == 0, CT_ERR_FORMAT,
               "%s: metadata format = \"%s\", expected \"%s\"", ct_safetensors_path(s), v,
               STATE_FORMAT);
    CT_TRY(get_meta(s, "cltrain.version", &v));
    CT_REQUIRE(strcmp(v, STATE_VERSION) == 0, CT_ERR_UNSUPPORTED,
               "%s: checkpoint version %s, this cltrain reads version %s", ct_safetensors_path(s),
               v, STATE_VERSION);
    CT_TRY(get_meta(s, "weights.fnv1a64", &h));
    snprintf(want, sizeof want, "%016" PRIx64, ct_st_file_hash(w));
    *same = strcmp(h, want) == 0;
cleanup:
    return st;
}

/* Optimizer state: validated into host arrays first (names, counts, dtypes), applied by
 * apply_optim afterwards. */
typedef struct optim_load {
    const ct_st_tensor **t;
    char **names; /* without the "optim." prefix */
    void **data;
    size_t *numel;
    size_t n;
} optim_load;

static void optim_load_free(optim_load *o)
{
    for (size_t i = 0; i < o->n; i++) {
        free(o->names[i]);
        free(o->data[i]);
    }
    free(o->t);
    free(o->names);
    free(o->data);
    free(o->numel);
}

static ct_status check_optim(const ct_safetensors *s, const char *path, const ct_model *m,
                             ct_optim *opt, optim_load *ol)
{
    ct_status st = CT_SUCCESS;
    const char *kind, *spath = ct_safetensors_path(s);
    ct_optim_kind k = ct_optim_get_kind(opt);
    kind = ct_safetensors_metadata_get(s, "optim.kind");
    CT_REQUIRE(kind != NULL, CT_ERR_FORMAT, "checkpoint %s holds no optimizer state (%s)", path,
               spath);
    CT_REQUIRE(strcmp(kind, ct_optim_kind_name(k)) == 0, CT_ERR_INVALID_ARG,
               "checkpoint %s holds %s optimizer state, this optimizer is %s", path, kind,
               ct_optim_kind_name(k));
    size_t n = ct_safetensors_count(s);
    ol->t = calloc(n + 1, sizeof *ol->t);
    ol->names = calloc(n + 1, sizeof *ol->names);
    ol->data = calloc(n + 1, sizeof *ol->data);
    ol->numel = calloc(n + 1, sizeof *ol->numel);
    CT_REQUIRE(ol->t && ol->names && ol->data && ol->numel, CT_ERR_OUT_OF_MEMORY,
               "checkpoint: out of memory");
    /* every entry this optimizer keeps must be in the file, with its count and dtype */
    size_t have = ct_optim_state_count(opt);
    for (size_t i = 0; i < have; i++) {
        ct_optim_state_info info;
        char key[96];
        CT_TRY(ct_optim_state_info_at(opt, i, &info));
        snprintf(key, sizeof key, "optim.%s", info.name);
        CT_REQUIRE(ct_safetensors_find(s, key) != NULL, CT_ERR_FORMAT,
                   "%s: missing tensor '%s' (this %s optimizer keeps it)", spath, key, kind);
    }
    for (size_t i = 0; i < n; i++) {
        const ct_st_tensor *t = ct_safetensors_at(s, i);
        if (strncmp(t->name, "optim.", 6) != 0)
            continue;
        const char *name = t->name + 6;
        ct_optim_state_info info = {0};
        bool found = false;
        for (size_t j = 0; !found && j < have; j++) {
            CT_TRY(ct_optim_state_info_at(opt, j, &info));
            found = strcmp(info.name, name) == 0;
        }
        if (!found) {
            /* SGD and RMSprop create their momentum buffer when momentum is set, which the
             * restored "momentum" entry does just before the buffers are applied. */
            bool later = strcmp(name, "momentum_buffer") == 0 &&
                         (k == CT_OPTIM_SGD || k == CT_OPTIM_RMSPROP);
            CT_REQUIRE(later, CT_ERR_FORMAT,
                       "%s: tensor '%s' is no state of this %s optimizer (created with other "
                       "options?)",
                       spath, t->name, kind);
            info = (ct_optim_state_info){name, ct_model_param_numel(m), CT_STATE_F32};
        }
        size_t numel = 1;
        for (size_t d = 0; d < t->ndim; d++)
            numel *= t->shape[d];
        CT_REQUIRE(t->ndim == 1 && numel == info.numel, CT_ERR_SHAPE,
                   "%s: tensor '%s' has %zu values (rank %zu), this optimizer keeps %zu", spath,
                   t->name, numel, t->ndim, info.numel);
        size_t k2 = ol->n;
        ol->names[k2] = strdup(name);
        ol->data[k2] = malloc(numel ? numel * (info.dtype == CT_STATE_F64 ? 8 : 4) : 1);
        ol->numel[k2] = numel;
        ol->t[k2] = t;
        ol->n++;
        CT_REQUIRE(ol->names[k2] && ol->data[k2], CT_ERR_OUT_OF_MEMORY,
                   "checkpoint: out of memory");
        if (info.dtype == CT_STATE_F64) {
            CT_REQUIRE(t->dtype == CT_ST_F64, CT_ERR_FORMAT, "%s: tensor '%s' is %s, expected F64",
                       spath, t->name, ct_st_dtype_name(t->dtype));
            CT_TRY(ct_safetensors_get_f64(s, t->name, 1, &numel, ol->data[k2], numel));
        } else {
            CT_TRY(ct_safetensors_get_f32(s, t->name, 1, &numel, ol->data[k2], numel));
        }
    }
cleanup:
    return st;
}

static ct_status apply_optim(ct_optim *opt, const optim_load *ol)
{
    ct_status st = CT_SUCCESS;
    /* scalars first: a restored momentum may create the momentum buffer */
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < ol->n; i++)
            if ((ol->t[i]->dtype == CT_ST_F64) == (pass == 0))
                CT_TRY(ct_optim_state_set(opt, ol->names[i], ol->data[i], ol->numel[i]));
cleanup:
    return st;
}

static ct_status read_train_state(const ct_safetensors *s, ct_train_state *out, uint64_t *rng_seed,
                                  uint64_t *rng_counter)
{
    ct_status st = CT_SUCCESS;
    ct_train_state t = {0};
    json_t *hp = NULL;
    const char *v;
    CT_TRY(get_meta_int(s, "model.rng_seed", false, rng_seed, NULL));
    CT_TRY(get_meta_int(s, "model.rng_counter", false, rng_counter, NULL));
    if (out) {
        CT_TRY(get_meta_int(s, "train.epoch", false, &t.epoch, NULL));
        CT_TRY(get_meta_int(s, "train.step", false, &t.step, NULL));
        CT_TRY(get_meta_int(s, "train.batch", false, &t.batch, NULL));
        CT_TRY(get_meta_int(s, "train.data_seed", false, &t.data_seed, NULL));
        CT_TRY(ct_safetensors_get_f64(s, "train.best_metric", 0, NULL, &t.best_metric, 1));
        CT_TRY(get_meta(s, "sched.present", &v));
        CT_REQUIRE(strcmp(v, "0") == 0 || strcmp(v, "1") == 0, CT_ERR_FORMAT,
                   "%s: metadata 'sched.present' = \"%s\", expected \"0\" or \"1\"",
                   ct_safetensors_path(s), v);
        t.has_sched = v[0] == '1';
        if (t.has_sched) {
            CT_TRY(get_meta_int(s, "sched.last_epoch", true, NULL, &t.sched.last_epoch));
            CT_TRY(get_meta_int(s, "sched.num_bad_epochs", true, NULL, &t.sched.num_bad_epochs));
            CT_TRY(
                get_meta_int(s, "sched.cooldown_counter", true, NULL, &t.sched.cooldown_counter));
            CT_TRY(ct_safetensors_get_f64(s, "sched.best", 0, NULL, &t.sched.best, 1));
        }
        v = ct_safetensors_metadata_get(s, "model.spec");
        if (v) {
            t.spec = strdup(v);
            CT_REQUIRE(t.spec != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        }
        hp = json_object();
        CT_REQUIRE(hp != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        for (size_t i = 0; i < ct_safetensors_metadata_count(s); i++) {
            const char *k;
            CT_TRY(ct_safetensors_metadata_at(s, i, &k, &v));
            if (strncmp(k, "hparam.", 7) == 0)
                CT_REQUIRE(json_object_set_new(hp, k + 7, json_string(v)) == 0,
                           CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        }
        if (json_object_size(hp) > 0) {
            t.hparams_json = json_dumps(hp, JSON_COMPACT);
            CT_REQUIRE(t.hparams_json != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
        }
        *out = t;
        memset(&t, 0, sizeof t);
    }
cleanup:
    json_decref(hp);
    ct_train_state_clear(&t);
    return st;
}

ct_status ct_checkpoint_load(const char *path, ct_model *model, ct_optim *optim,
                             ct_train_state *state)
{
    ct_status st = CT_SUCCESS;
    ct_safetensors *w = NULL, *s = NULL;
    char *spath = NULL, *identity = NULL, *saved_copy = NULL;
    float *params = NULL, *buffers = NULL;
    optim_load ol = {0};
    ct_train_state ts = {0};
    uint64_t rng_seed = 0, rng_counter = 0;
    bool want_state = optim != NULL || state != NULL, use_state = false;
    char da[512], db[512];

    CT_REQUIRE(path != NULL && model != NULL, CT_ERR_INVALID_ARG,
               "checkpoint_load: NULL path or model");
    CT_REQUIRE(host_is_little_endian(), CT_ERR_UNSUPPORTED,
               "checkpoint_load: safetensors files are little-endian; this host is not");
    spath = state_path_alloc(path);
    CT_REQUIRE(spath != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");

    CT_TRY(ct_safetensors_read(path, &w));
    size_t np = ct_model_param_numel(model), nb = ct_model_buffer_numel(model);
    params = malloc((np ? np : 1) * sizeof *params);
    buffers = malloc((nb ? nb : 1) * sizeof *buffers);
    CT_REQUIRE(params && buffers, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");

    if (want_state) {
        CT_TRY(ct_safetensors_read(spath, &s));
        bool same;
        CT_TRY(same_save(s, w, &same));
        CT_REQUIRE(same, CT_ERR_FORMAT,
                   "checkpoint %s: the state file %s was written with other weights (an "
                   "interrupted save?); load the weights alone, or an intact checkpoint",
                   path, spath);
        use_state = true;
    } else if (access(spath, F_OK) == 0) {
        /* A state file beside a weights file, if it is theirs, names the model. */
        bool same = false;
        if (ct_safetensors_read(spath, &s) == CT_SUCCESS && same_save(s, w, &same) == CT_SUCCESS &&
            same)
            use_state = true;
        ct_error_clear();
    }
    if (use_state) {
        const char *saved;
        CT_TRY(get_meta(s, "model.identity", &saved));
        const bool legacy = strncmp(saved, IDENTITY_V2, strlen(IDENTITY_V2)) != 0;
        CT_TRY(model_identity(model, legacy, &identity));
        if (legacy) {
            saved_copy = strdup(saved);
            CT_REQUIRE(saved_copy != NULL, CT_ERR_OUT_OF_MEMORY, "checkpoint: out of memory");
            strip_plan_notes(saved_copy);
            strip_plan_notes(identity);
            saved = saved_copy;
        }
        first_difference(saved, identity, da, db, sizeof da);
        CT_REQUIRE(strcmp(saved, identity) == 0, CT_ERR_SHAPE,
                   "checkpoint %s was saved for model %s, this model is %s (first difference: "
                   "'%s' vs '%s')",
                   path, saved, identity, da, db);
    }
    CT_TRY(read_weights(w, model, params, buffers));
    if (want_state) {
        if (optim)
            CT_TRY(check_optim(s, path, model, optim, &ol));
        CT_TRY(read_train_state(s, state ? &ts : NULL, &rng_seed, &rng_counter));
    }

    /* everything checked: apply */
    if (np)
        CT_TRY(ct_model_set_params(model, params, np));
    if (nb)
        CT_TRY(ct_model_set_buffers(model, buffers, nb));
    if (want_state) {
        ct_model_set_rng(model, rng_seed, rng_counter);
        if (optim)
            CT_TRY(apply_optim(optim, &ol));
        if (state) {
            *state = ts;
            memset(&ts, 0, sizeof ts);
        }
    }
cleanup:
    ct_train_state_clear(&ts);
    optim_load_free(&ol);
    free(params);
    free(buffers);
    free(identity);
    free(saved_copy);
    free(spath);
    ct_safetensors_free(w);
    ct_safetensors_free(s);
    return st;
}
