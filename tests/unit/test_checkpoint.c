/* tests/unit/test_checkpoint.c — ct_checkpoint_save / ct_checkpoint_load.
 *
 * References, independent of the code under test:
 *   - a state_dict saved by PyTorch itself (tests/golden/data/safetensors/model.safetensors,
 *     from tests/golden/gen_safetensors.py) for
 *         Sequential(Conv2d(1,4,3,padding=1), BatchNorm2d(4), ReLU(), MaxPool2d(2),
 *                    Flatten(), Linear(64,3))
 *     our weights file must have exactly its names, dtypes and shapes, and loading it must
 *     give its values bit for bit (tests/golden/data/safetensors.txt);
 *   - the model and optimizer's own state before a save: after a load into a model and
 *     optimizer built with other seeds, parameters, buffers, optimizer state and the
 *     steps that follow are bit-identical (no tolerance: a resume must be exact);
 *   - hand-made mismatches (other model, other optimizer, missing, unexpected or
 *     misshapen tensors, a state file from another save), each refused with the status
 *     and message the header promises, leaving the model untouched.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cltrain/cltrain.h"
#include "golden.h"
#include "testutil.h"

#define ST_DIR CT_GOLDEN_DIR "/safetensors"
#define SPEC   "conv(4,3,pad=1) bn relu maxpool(2) flatten linear(3)"
static const size_t IN_SHAPE[3] = {1, 8, 8};

TestSuite(checkpoint, .init = tu_tmpdir_setup, .fini = tu_tmpdir_teardown);

static ct_model *make_model(ct_context *ctx, const char *spec, uint64_t seed)
{
    ct_model *m = NULL;
    TU_OK(ct_model_create_spec(ctx, spec, 3, IN_SHAPE, seed, &m));
    return m;
}

static void assert_bits(const char *what, const void *a, const void *b, size_t bytes)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < bytes; i++)
        cr_assert_eq(x[i], y[i], "%s: byte %zu differs", what, i);
}

static void assert_error(ct_status st, ct_status want, const char *n1, const char *n2)
{
    cr_assert_eq(st, want, "expected %s, got %s: %s", ct_status_str(want), ct_status_str(st),
                 ct_last_error());
    cr_assert(strstr(ct_last_error(), n1), "message lacks '%s': %s", n1, ct_last_error());
    if (n2)
        cr_assert(strstr(ct_last_error(), n2), "message lacks '%s': %s", n2, ct_last_error());
}

/* Fills the model's gradient with a fixed pattern for step k, then takes an optimizer step. */
static void step_with(ct_model *m, ct_optim *opt, int k)
{
    size_t n = ct_model_param_numel(m);
    float *g = malloc(n * sizeof *g);
    tu_fill_uniform(g, n, 1000 + (uint64_t)k, -1.0, 1.0);
    TU_OK(ct_tensor_upload(ct_model_grads(m), g, n));
    TU_OK(ct_optim_step(opt));
    free(g);
}

/* Every optimizer state entry, concatenated as bytes. */
static unsigned char *optim_bytes(ct_optim *opt, size_t *len)
{
    size_t total = 0, n = ct_optim_state_count(opt);
    for (size_t i = 0; i < n; i++) {
        ct_optim_state_info info;
        TU_OK(ct_optim_state_info_at(opt, i, &info));
        total += info.numel * (info.dtype == CT_STATE_F64 ? 8 : 4);
    }
    unsigned char *b = malloc(total + 1), *at = b;
    for (size_t i = 0; i < n; i++) {
        ct_optim_state_info info;
        TU_OK(ct_optim_state_info_at(opt, i, &info));
        TU_OK(ct_optim_state_get(opt, info.name, at, info.numel));
        at += info.numel * (info.dtype == CT_STATE_F64 ? 8 : 4);
    }
    *len = total;
    return b;
}

Test(checkpoint, state_path_naming)
{
    char b[64];
    TU_OK(ct_checkpoint_state_path("run/m.safetensors", b, sizeof b));
    cr_assert_str_eq(b, "run/m.state.safetensors");
    TU_OK(ct_checkpoint_state_path("ckpt", b, sizeof b));
    cr_assert_str_eq(b, "ckpt.state.safetensors");
    TU_OK(ct_checkpoint_state_path(".safetensors", b, sizeof b));
    cr_assert_str_eq(b, ".safetensors.state.safetensors");
    TU_OK(ct_checkpoint_state_path("a.safetensors.bak", b, sizeof b));
    cr_assert_str_eq(b, "a.safetensors.bak.state.safetensors");
    cr_assert_eq(ct_checkpoint_state_path("m.safetensors", b, 19), CT_ERR_INVALID_ARG);
    TU_OK(ct_checkpoint_state_path("m.safetensors", b, 20)); /* 19 characters and the NUL */
}

Test(checkpoint, weights_file_has_pytorchs_state_dict_layout)
{
    ct_context *ctx = tu_context();
    ct_model *m = make_model(ctx, SPEC, 5);
    const char *p = tu_tmp_path("w.safetensors");
    TU_OK(ct_checkpoint_save(p, m, NULL, NULL));
    ct_safetensors *ours = NULL, *torch = NULL;
    TU_OK(ct_safetensors_read(p, &ours));
    TU_OK(ct_safetensors_read(ST_DIR "/model.safetensors", &torch));
    cr_assert_eq(ct_safetensors_count(ours), ct_safetensors_count(torch));
    for (size_t i = 0; i < ct_safetensors_count(torch); i++) {
        const ct_st_tensor *t = ct_safetensors_at(torch, i);
        const ct_st_tensor *o = ct_safetensors_find(ours, t->name);
        cr_assert(o != NULL, "our file lacks %s", t->name);
        cr_assert_eq(o->dtype, t->dtype, "%s: dtype %s, PyTorch's %s", t->name,
                     ct_st_dtype_name(o->dtype), ct_st_dtype_name(t->dtype));
        cr_assert_eq(o->ndim, t->ndim, "%s: rank", t->name);
        for (size_t d = 0; d < t->ndim; d++)
            cr_assert_eq(o->shape[d], t->shape[d], "%s: dim %zu", t->name, d);
    }
    /* the whole file equals what Python would write for the same tensors: same order */
    for (size_t i = 0; i < ct_safetensors_count(torch); i++)
        cr_assert_str_eq(ct_safetensors_at(ours, i)->name, ct_safetensors_at(torch, i)->name);
    /* a fresh model: num_batches_tracked = 0 as int64 */
    int64_t nbt = -1;
    TU_OK(ct_safetensors_get_i64(ours, "1.num_batches_tracked", 0, NULL, &nbt, 1));
    cr_assert_eq(nbt, 0);
    /* the state file exists beside it */
    char sp[512];
    TU_OK(ct_checkpoint_state_path(p, sp, sizeof sp));
    cr_assert_eq(access(sp, R_OK), 0);
    ct_safetensors_free(ours);
    ct_safetensors_free(torch);
    ct_model_free(m);
    ct_context_free(ctx);
}

Test(checkpoint, loads_a_state_dict_saved_by_pytorch)
{
    ct_context *ctx = tu_context();
    ct_model *m = make_model(ctx, SPEC, 5);
    tu_golden *g = tu_golden_load("safetensors.txt");
    TU_OK(ct_checkpoint_load(ST_DIR "/model.safetensors", m, NULL, NULL));
    float *p = tu_model_params(m), *b = tu_model_buffers(m);
    for (size_t i = 0; i < ct_model_param_count(m) + ct_model_buffer_count(m); i++) {
        const char *name;
        size_t nd, shape[4], off;
        bool is_param = i < ct_model_param_count(m);
        if (is_param)
            TU_OK(ct_model_param_info(m, i, &name, &nd, shape, &off));
        else
            TU_OK(ct_model_buffer_info(m, i - ct_model_param_count(m), &name, &nd, shape, &off));
        char gname[96];
        snprintf(gname, sizeof gname, "model.%s", name);
        const tu_gold_tensor *gt = tu_golden_get(g, gname);
        const float *got = (is_param ? p : b) + off;
        for (size_t k = 0; k < gt->numel; k++) {
            float want = (float)gt->v[k];
            cr_assert(memcmp(&got[k], &want, 4) == 0, "%s[%zu] = %a, PyTorch %a", name, k,
                      (double)got[k], (double)want);
        }
    }
    free(p);
    free(b);
    tu_golden_free(g);
    ct_model_free(m);
    ct_context_free(ctx);
}

/* Save after some steps, keep training; a model and optimizer loaded from the save must
 * reach bit-identical parameters. */
static void resume_is_exact(ct_optim_options o)
{
    ct_context *ctx = tu_context();
    ct_model *a = make_model(ctx, SPEC, 11);
    ct_optim *oa = NULL;
    TU_OK(ct_optim_create(ctx, &o, ct_model_params(a), ct_model_grads(a), &oa));
    for (int k = 0; k < 3; k++)
        step_with(a, oa, k);
    /* non-trivial buffers and RNG */
    size_t nb = ct_model_buffer_numel(a);
    float *bufs = tu_model_buffers(a);
    for (size_t i = 0; i < nb; i++)
        if (bufs[i] == 0.0f || bufs[i] == 1.0f)
            bufs[i] += 0.125f * (float)(i % 5);
    for (size_t i = 0; i < ct_model_buffer_count(a); i++) {
        const char *name;
        size_t off;
        TU_OK(ct_model_buffer_info(a, i, &name, NULL, NULL, &off));
        if (strstr(name, "num_batches_tracked"))
            bufs[off] = 7;
    }
    TU_OK(ct_model_set_buffers(a, bufs, nb));
    ct_model_set_rng(a, 0xFEEDFACECAFEBEEFULL, 12345678901234ULL);

    const char *p = tu_tmp_path("resume.safetensors");
    ct_train_state s = {
        .epoch = 4,
        .step = 123,
        .batch = 17,
        .data_seed = UINT64_MAX - 3,
        .best_metric = NAN,
        .has_sched = true,
        .sched = {.last_epoch = -1, .best = INFINITY, .num_bad_epochs = 2, .cooldown_counter = 0},
        .spec = SPEC,
        .hparams_json = "{\"lr\":\"0.01\",\"batch\":\"64\"}"};
    TU_OK(ct_checkpoint_save(p, a, oa, &s));
    float *pa = tu_model_params(a);
    size_t ola;
    unsigned char *osa = optim_bytes(oa, &ola);
    for (int k = 3; k < 6; k++)
        step_with(a, oa, k);
    float *after_a = tu_model_params(a);

    ct_model *b = make_model(ctx, SPEC, 99);
    ct_optim *ob = NULL;
    TU_OK(ct_optim_create(ctx, &o, ct_model_params(b), ct_model_grads(b), &ob));
    ct_train_state r;
    memset(&r, 0, sizeof r);
    TU_OK(ct_checkpoint_load(p, b, ob, &r));
    size_t n = ct_model_param_numel(a);
    float *pb = tu_model_params(b), *bb = tu_model_buffers(b);
    assert_bits("params", pa, pb, n * 4);
    assert_bits("buffers", bufs, bb, nb * 4);
    size_t olb;
    unsigned char *osb = optim_bytes(ob, &olb);
    cr_assert_eq(olb, ola);
    assert_bits("optimizer state", osa, osb, ola);
    uint64_t seed, counter;
    ct_model_get_rng(b, &seed, &counter);
    cr_assert(seed == 0xFEEDFACECAFEBEEFULL && counter == 12345678901234ULL);
    cr_assert(r.epoch == 4 && r.step == 123 && r.batch == 17 && r.data_seed == UINT64_MAX - 3);
    cr_assert(isnan(r.best_metric));
    cr_assert(r.has_sched && r.sched.last_epoch == -1 && isinf(r.sched.best) &&
              r.sched.num_bad_epochs == 2 && r.sched.cooldown_counter == 0);
    cr_assert_str_eq(r.spec, SPEC);
    cr_assert_str_eq(r.hparams_json, "{\"lr\":\"0.01\",\"batch\":\"64\"}");
    ct_train_state_clear(&r);

    for (int k = 3; k < 6; k++)
        step_with(b, ob, k);
    float *after_b = tu_model_params(b);
    assert_bits("params after resumed steps", after_a, after_b, n * 4);

    free(pa);
    free(pb);
    free(bb);
    free(bufs);
    free(osa);
    free(osb);
    free(after_a);
    free(after_b);
    ct_optim_free(oa);
    ct_optim_free(ob);
    ct_model_free(a);
    ct_model_free(b);
    ct_context_free(ctx);
}

Test(checkpoint, adam_amsgrad_resume_is_bit_exact)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_ADAM);
    o.amsgrad = true;
    o.weight_decay = 1e-3;
    resume_is_exact(o);
}

Test(checkpoint, sgd_nesterov_resume_is_bit_exact)
{
    ct_optim_options o = ct_optim_defaults(CT_OPTIM_SGD);
    o.lr = 0.05;
    o.momentum = 0.9;
    o.nesterov = true;
    resume_is_exact(o);
}

Test(checkpoint, other_model_is_refused_by_name)
{
    ct_context *ctx = tu_context();
    ct_model *a = make_model(ctx, SPEC, 1);
    ct_model *b = make_model(ctx, "conv(4,3,pad=1) bn relu maxpool(2) flatten linear(5)", 2);
    char sp[512];
    const char *p = tu_tmp_path("a.safetensors");
    ct_train_state s = {0};
    TU_OK(ct_checkpoint_save(p, a, NULL, &s));
    float *before = tu_model_params(b);

    ct_train_state r = {0};
    ct_status st = ct_checkpoint_load(p, b, NULL, &r);
    assert_error(st, CT_ERR_SHAPE, "was saved for model", p);
    cr_assert(strstr(ct_last_error(), "this model is"), "%s", ct_last_error());
    cr_assert(strstr(ct_last_error(), "linear(3,bias=1)") &&
                  strstr(ct_last_error(), "linear(5,bias=1)"),
              "%s", ct_last_error());
    /* the state file names the model even for a weights-only load */
    assert_error(ct_checkpoint_load(p, b, NULL, NULL), CT_ERR_SHAPE, "was saved for model", p);
    /* without it, the shapes do */
    TU_OK(ct_checkpoint_state_path(p, sp, sizeof sp));
    cr_assert_eq(unlink(sp), 0);
    assert_error(ct_checkpoint_load(p, b, NULL, NULL), CT_ERR_SHAPE, "tensor '5.weight' has shape",
                 "[3, 64]");
    /* and asking for the state now fails on the missing file */
    assert_error(ct_checkpoint_load(p, a, NULL, &r), CT_ERR_IO, sp, NULL);
    float *after = tu_model_params(b);
    assert_bits("untouched params", before, after, ct_model_param_numel(b) * 4);
    free(before);
    free(after);
    ct_model_free(a);
    ct_model_free(b);
    ct_context_free(ctx);
}

/* Replaces the state file's model.identity (a safetensors header entry) with `identity`,
 * as a file written before "cltrain-model 2" has it; the tensors stay where they are. */
static void rewrite_identity(const char *state_path, const char *identity)
{
    FILE *f = fopen(state_path, "rb");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    size_t size = (size_t)ftell(f);
    rewind(f);
    unsigned char *b = malloc(size);
    cr_assert_eq(fread(b, 1, size, f), size);
    fclose(f);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | b[i];
    char *h = strndup((const char *)b + 8, hl);
    const char *key = "\"model.identity\":\"";
    char *at = strstr(h, key);
    cr_assert_not_null(at, "%s", h);
    at += strlen(key);
    char *end = strchr(at, '"');
    size_t nh = (size_t)(at - h) + strlen(identity) + strlen(end);
    char *nhdr = malloc(nh + 8);
    snprintf(nhdr, nh + 8, "%.*s%s%s", (int)(at - h), h, identity, end);
    while (nh % 8)
        nhdr[nh++] = ' ';
    f = fopen(state_path, "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)nh >> (8 * i) & 0xff), f);
    cr_assert_eq(fwrite(nhdr, 1, nh, f), nh);
    cr_assert_eq(fwrite(b + 8 + hl, 1, size - 8 - hl, f), size - 8 - hl);
    fclose(f);
    free(b), free(h), free(nhdr);
}

/* The identity a state file checks is what the model computes: a checkpoint saved where
 * conv and pool run apart (CONV_GEMM=7, a GPU's default) loads where they run fused (a
 * CPU's), as a file of the older format with the fusion notes does; a batch-norm eps
 * or a pooling mode that differs is refused. */
Test(checkpoint, identity_is_what_the_model_computes)
{
    ct_context *ctx = tu_context();
    const char *spec = "conv(32,3,pad=1) relu maxpool(2) flatten linear(3)";
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=7", 1);
    ct_model *a = make_model(ctx, spec, 1);
    setenv("CLTRAIN_TUNE", "-DCONV_GEMM=0", 1); /* fused, on a GPU too */
    ct_model *b = make_model(ctx, spec, 2);
    char da[512], db[512];
    TU_OK(ct_model_layer_describe(a, 0, da, sizeof da));
    TU_OK(ct_model_layer_describe(b, 0, db, sizeof db));
    cr_assert(!strstr(da, "+maxpool") && strstr(db, "+maxpool"), "plans: '%s', '%s'", da, db);
    const char *p = tu_tmp_path("plan.safetensors");
    char sp[512];
    TU_OK(ct_checkpoint_state_path(p, sp, sizeof sp));
    ct_train_state s = {0};
    TU_OK(ct_checkpoint_save(p, a, NULL, &s));
    ct_train_state r = {0};
    TU_OK(ct_checkpoint_load(p, b, NULL, &r));
    ct_train_state_clear(&r);
    float *pa = tu_model_params(a), *pb = tu_model_params(b);
    assert_bits("params across plans", pa, pb, ct_model_param_numel(a) * 4);
    free(pb);

    /* the older format: ct_model_layer_describe lines, with the saving device's notes */
    char legacy[4096] = "input (1,8,8)";
    for (size_t i = 0; i < ct_model_layer_count(a); i++) {
        TU_OK(ct_model_layer_describe(a, i, da, sizeof da));
        strcat(legacy, "; ");
        strcat(legacy, da);
    }
    rewrite_identity(sp, legacy);
    ct_model *c = make_model(ctx, spec, 3);
    unsetenv("CLTRAIN_TUNE");
    TU_OK(ct_checkpoint_load(p, c, NULL, &r));
    ct_train_state_clear(&r);
    float *pc = tu_model_params(c);
    assert_bits("params from the older format", pa, pc, ct_model_param_numel(a) * 4);
    free(pc);
    /* ... which still tells models apart */
    ct_model *d = make_model(ctx, "conv(32,3,pad=1) relu maxpool(2) flatten linear(4)", 4);
    assert_error(ct_checkpoint_load(p, d, NULL, &r), CT_ERR_SHAPE, "was saved for model",
                 "linear(512->3)");

    /* what the fused notes never showed */
    static const char *const pairs[][2] = {
        {"conv(4,3,pad=1) bn relu flatten linear(3)",
         "conv(4,3,pad=1) bn(eps=1e-3) relu flatten linear(3)"},
        {"conv(4,3) maxpool(3,2) flatten linear(3)",
         "conv(4,3) maxpool(3,2,ceil=1) flatten linear(3)"},
        {"conv(4,3) avgpool(2,pad=1) flatten linear(3)",
         "conv(4,3) avgpool(2,pad=1,count_include_pad=0) flatten linear(3)"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        ct_model *x = make_model(ctx, pairs[i][0], 5), *y = make_model(ctx, pairs[i][1], 6);
        const char *q = tu_tmp_path("pair.safetensors");
        TU_OK(ct_checkpoint_save(q, x, NULL, &s));
        assert_error(ct_checkpoint_load(q, y, NULL, &r), CT_ERR_SHAPE, "was saved for model",
                     "first difference");
        ct_model_free(x), ct_model_free(y);
    }
    free(pa);
    ct_model_free(a), ct_model_free(b), ct_model_free(c), ct_model_free(d);
    ct_context_free(ctx);
}

Test(checkpoint, other_optimizer_is_refused_and_nothing_changes)
{
    ct_context *ctx = tu_context();
    ct_model *a = make_model(ctx, SPEC, 1), *b = make_model(ctx, SPEC, 2);
    ct_optim_options adam = ct_optim_defaults(CT_OPTIM_ADAM);
    ct_optim_options sgd = ct_optim_defaults(CT_OPTIM_SGD);
    ct_optim *oa = NULL, *ob = NULL, *oc = NULL;
    TU_OK(ct_optim_create(ctx, &adam, ct_model_params(a), ct_model_grads(a), &oa));
    TU_OK(ct_optim_create(ctx, &sgd, ct_model_params(b), ct_model_grads(b), &ob));
    const char *p = tu_tmp_path("o.safetensors");
    TU_OK(ct_checkpoint_save(p, a, oa, NULL));
    float *before = tu_model_params(b);
    assert_error(ct_checkpoint_load(p, b, ob, NULL), CT_ERR_INVALID_ARG,
                 "holds adam optimizer state, this optimizer is sgd", p);
    float *after = tu_model_params(b);
    assert_bits("untouched params", before, after, ct_model_param_numel(b) * 4);
    /* an Adam with amsgrad keeps max_exp_avg_sq, which this save lacks */
    adam.amsgrad = true;
    TU_OK(ct_optim_create(ctx, &adam, ct_model_params(b), ct_model_grads(b), &oc));
    assert_error(ct_checkpoint_load(p, b, oc, NULL), CT_ERR_FORMAT, "optim.max_exp_avg_sq", NULL);
    /* a save without an optimizer cannot restore one */
    TU_OK(ct_checkpoint_save(p, a, NULL, NULL));
    assert_error(ct_checkpoint_load(p, b, ob, NULL), CT_ERR_FORMAT, "holds no optimizer state", p);
    free(before);
    free(after);
    ct_optim_free(oa);
    ct_optim_free(ob);
    ct_optim_free(oc);
    ct_model_free(a);
    ct_model_free(b);
    ct_context_free(ctx);
}

Test(checkpoint, missing_unexpected_and_wrong_tensors_are_named)
{
    ct_context *ctx = tu_context();
    ct_model *m = make_model(ctx, SPEC, 1);
    ct_safetensors *torch = NULL;
    TU_OK(ct_safetensors_read(ST_DIR "/model.safetensors", &torch));
    size_t n = ct_safetensors_count(torch);
    ct_st_tensor *t = calloc(n + 1, sizeof *t);
    for (size_t i = 0; i < n; i++)
        t[i] = *ct_safetensors_at(torch, i);
    const char *p = tu_tmp_path("edit.safetensors");
    float *before = tu_model_params(m);

    /* drop 5.bias */
    size_t k = 0;
    ct_st_tensor *u = calloc(n + 1, sizeof *u);
    for (size_t i = 0; i < n; i++)
        if (strcmp(t[i].name, "5.bias") != 0)
            u[k++] = t[i];
    TU_OK(ct_safetensors_write(p, k, u, NULL));
    assert_error(ct_checkpoint_load(p, m, NULL, NULL), CT_ERR_FORMAT, "missing tensor '5.bias'", p);

    /* an extra tensor */
    float extra = 1;
    memcpy(u, t, n * sizeof *t);
    u[n] = (ct_st_tensor){"6.weight", CT_ST_F32, 0, NULL, &extra, 4};
    TU_OK(ct_safetensors_write(p, n + 1, u, NULL));
    assert_error(ct_checkpoint_load(p, m, NULL, NULL), CT_ERR_FORMAT,
                 "unexpected tensor '6.weight'", p);

    /* a parameter stored as F64 */
    memcpy(u, t, n * sizeof *t);
    double d3[3] = {0};
    static const size_t s3[1] = {3}, s1[1] = {1};
    for (size_t i = 0; i < n; i++)
        if (strcmp(u[i].name, "5.bias") == 0)
            u[i] = (ct_st_tensor){"5.bias", CT_ST_F64, 1, s3, d3, 24};
    TU_OK(ct_safetensors_write(p, n, u, NULL));
    assert_error(ct_checkpoint_load(p, m, NULL, NULL), CT_ERR_UNSUPPORTED,
                 "unsupported dtype F64 for tensor 5.bias", p);

    /* num_batches_tracked of the wrong rank */
    memcpy(u, t, n * sizeof *t);
    int64_t one[1] = {1};
    for (size_t i = 0; i < n; i++)
        if (strcmp(u[i].name, "1.num_batches_tracked") == 0)
            u[i] = (ct_st_tensor){"1.num_batches_tracked", CT_ST_I64, 1, s1, one, 8};
    TU_OK(ct_safetensors_write(p, n, u, NULL));
    assert_error(ct_checkpoint_load(p, m, NULL, NULL), CT_ERR_SHAPE,
                 "tensor '1.num_batches_tracked' has shape [1]", "[]");

    float *after = tu_model_params(m);
    assert_bits("untouched params", before, after, ct_model_param_numel(m) * 4);
    free(before);
    free(after);
    free(u);
    free(t);
    ct_safetensors_free(torch);
    ct_model_free(m);
    ct_context_free(ctx);
}

Test(checkpoint, interrupted_save_pair_is_detected)
{
    ct_context *ctx = tu_context();
    ct_model *a = make_model(ctx, SPEC, 1), *b = make_model(ctx, SPEC, 2);
    const char *p = tu_tmp_path("c.safetensors"), *q = tu_tmp_path("d.safetensors");
    ct_train_state s = {.epoch = 1};
    TU_OK(ct_checkpoint_save(p, a, NULL, &s));
    TU_OK(ct_checkpoint_save(q, b, NULL, &s));
    /* new weights beside the old state: what a crash between the two renames leaves */
    cr_assert_eq(rename(q, p), 0);
    ct_train_state r = {0};
    assert_error(ct_checkpoint_load(p, a, NULL, &r), CT_ERR_FORMAT,
                 "was written with other weights", p);
    /* the weights alone still load, and are b's */
    TU_OK(ct_checkpoint_load(p, a, NULL, NULL));
    float *pa = tu_model_params(a), *pb = tu_model_params(b);
    assert_bits("weights", pa, pb, ct_model_param_numel(a) * 4);
    free(pa);
    free(pb);
    ct_model_free(a);
    ct_model_free(b);
    ct_context_free(ctx);
}
