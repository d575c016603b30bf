/* The convolution path (cltrain/tune.h): which passes run as im2col + GEMM (CONV_GEMM),
 * for a device and per layer shape, as `cltrain tune --conv` measured it; the file, and a
 * context's choice. Host-only, like tune_file.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

#define CONV_MAGIC  "cltrain-conv-path 2"
#define CONV_MAGIC1 "cltrain-conv-path 1" /* the same without layer lines */

enum { K_DEVICE, K_PLATFORM, K_DRIVER, K_DATE, K_MEASURED, K_COUNT };
static const char *const keys[K_COUNT] = {"device", "platform", "driver", "date", "measured"};

unsigned ct_conv_path_default(const ct_device_info *dev)
{
    /* every pass as GEMMs on GPUs, where a conv_bwd_w_flat work-item holds too many
     * accumulators (H200, CIFAR-shaped model: 58.1 ms per step with the CPU kernels, 23.0
     * with the weight gradient as GEMMs, 19.3 with the input gradient too, 16.3 with the
     * forward pass too, its pools then apart); on CPUs the kernels (the same model on
     * PoCL, 2 cores: 372 ms, and 857 / 1478 / 2057 ms) */
    return dev && dev->is_gpu ? 7u : 0u;
}

void ct_conv_path_init(ct_conv_path *cp, unsigned conv_gemm)
{
    memset(cp, 0, sizeof *cp);
    cp->conv_gemm = conv_gemm & 7u;
}

static bool shape_equal(const ct_conv_shape *a, const ct_conv_shape *b)
{
    return a->c == b->c && a->h == b->h && a->w == b->w && a->k == b->k && a->r == b->r &&
           a->s == b->s && a->stride_h == b->stride_h && a->stride_w == b->stride_w &&
           a->pad_h == b->pad_h && a->pad_w == b->pad_w && a->dil_h == b->dil_h &&
           a->dil_w == b->dil_w && a->groups == b->groups;
}

/* The index of shape s among cp's first n layer shapes, or -1. */
static long path_find(const ct_conv_path *cp, size_t n, const ct_conv_shape *s)
{
    for (size_t i = 0; s && i < n && i < CT_CONV_PATH_MAX_LAYERS; i++)
        if (shape_equal(&cp->layer[i], s))
            return (long)i;
    return -1;
}

unsigned ct_conv_path_lookup(const ct_conv_path *cp, const ct_conv_shape *s)
{
    long i = path_find(cp, cp->nlayers, s);
    return i >= 0 ? cp->layer_gemm[i] : cp->conv_gemm;
}

static bool shape_valid(const ct_conv_shape *s)
{
    const unsigned pos[] = {s->c,        s->h,        s->w,     s->k,     s->r,     s->s,
                            s->stride_h, s->stride_w, s->dil_h, s->dil_w, s->groups};
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i] < 1 || pos[i] > 65535)
            return false;
    return s->pad_h <= 65535 && s->pad_w <= 65535;
}

ct_status ct_conv_path_set(ct_conv_path *cp, const ct_conv_shape *s, unsigned conv_gemm)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(cp && s, CT_ERR_INVALID_ARG, "ct_conv_path_set: NULL argument");
    CT_REQUIRE(conv_gemm <= 7, CT_ERR_INVALID_ARG, "CONV_GEMM=%u is not 0..7", conv_gemm);
    CT_REQUIRE(shape_valid(s), CT_ERR_INVALID_ARG,
               "a convolution shape needs sizes 1..65535 (padding 0..65535)");
    long i = path_find(cp, cp->nlayers, s);
    if (i >= 0) {
        cp->layer_gemm[i] = conv_gemm;
        goto cleanup;
    }
    CT_REQUIRE(cp->nlayers < CT_CONV_PATH_MAX_LAYERS, CT_ERR_INVALID_ARG,
               "the convolution path holds at most %d layer shapes", CT_CONV_PATH_MAX_LAYERS);
    cp->layer[cp->nlayers] = *s;
    cp->layer_gemm[cp->nlayers++] = conv_gemm;
cleanup:
    return st;
}

/* CT_ERR_INVALID_ARG unless every value of cp is 0..7 and its layer shapes are valid and
 * distinct (what ct_conv_path_set keeps true); `who` starts the message. */
static ct_status path_check(const ct_conv_path *cp, const char *who)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(cp->conv_gemm <= 7, CT_ERR_INVALID_ARG, "%s: CONV_GEMM=%u is not 0..7", who,
               cp->conv_gemm);
    CT_REQUIRE(cp->nlayers <= CT_CONV_PATH_MAX_LAYERS, CT_ERR_INVALID_ARG,
               "%s: %zu layer shapes, at most %d", who, cp->nlayers, CT_CONV_PATH_MAX_LAYERS);
    for (size_t i = 0; i < cp->nlayers; i++) {
        CT_REQUIRE(cp->layer_gemm[i] <= 7 && shape_valid(&cp->layer[i]), CT_ERR_INVALID_ARG,
                   "%s: layer shape %zu has CONV_GEMM=%u or sizes out of range", who, i,
                   cp->layer_gemm[i]);
        CT_REQUIRE(path_find(cp, i, &cp->layer[i]) < 0, CT_ERR_INVALID_ARG,
                   "%s: layer shape %zu is given twice", who, i);
    }
cleanup:
    return st;
}

ct_status ct_conv_shape_format(const ct_conv_shape *s, char *buf, size_t cap)
{
    ct_status st = CT_SUCCESS;
    CT_REQUIRE(s && buf, CT_ERR_INVALID_ARG, "ct_conv_shape_format: NULL argument");
    int n = snprintf(buf, cap, "%ux%ux%u k%u r%ux%u s%ux%u p%ux%u d%ux%u g%u", s->c, s->h, s->w,
                     s->k, s->r, s->s, s->stride_h, s->stride_w, s->pad_h, s->pad_w, s->dil_h,
                     s->dil_w, s->groups);
    CT_REQUIRE(n >= 0 && (size_t)n < cap, CT_ERR_INVALID_ARG,
               "ct_conv_shape_format: %zu bytes are too few", cap);
cleanup:
    return st;
}

/* A "layer SHAPE CONV_GEMM=N" line (without "layer "): read with sscanf, then required
 * to be exactly what ct_conv_shape_format writes, so that signs, spaces and leading zeros
 * are refused. */
static bool parse_layer(const char *s, size_t n, ct_conv_shape *shape, unsigned *v)
{
    char line[CT_TUNE_LINE_MAX], shape_text[CT_TUNE_LINE_MAX], again[CT_TUNE_LINE_MAX];
    ct_conv_shape t;
    int used = -1;
    if (n >= sizeof line)
        return false;
    memcpy(line, s, n);
    line[n] = '\0';
    if (sscanf(line, "%ux%ux%u k%u r%ux%u s%ux%u p%ux%u d%ux%u g%u CONV_GEMM=%u%n", &t.c, &t.h,
               &t.w, &t.k, &t.r, &t.s, &t.stride_h, &t.stride_w, &t.pad_h, &t.pad_w, &t.dil_h,
               &t.dil_w, &t.groups, v, &used) != 14 ||
        used != (int)n || *v > 7 || !shape_valid(&t) ||
        ct_conv_shape_format(&t, shape_text, sizeof shape_text) != CT_SUCCESS)
        return false;
    snprintf(again, sizeof again, "%s CONV_GEMM=%u", shape_text, *v);
    *shape = t;
    return strcmp(again, line) == 0;
}

/* The key lines of the header, CONV_GEMM=N and "layer ..." lines, into fi and *cp. */
static ct_status parse_body(const char *text, size_t len, bool layers, ct_conv_path *cp,
                            ct_tune_file_info *fi)
{
    ct_status st = CT_SUCCESS;
    bool have[K_COUNT] = {false}, have_value = false;
    size_t at = 0, lineno = 0, n = 0;
    for (const char *s; (s = ct_next_line(text, len, &at, &lineno, &n));) {
        static const char value_key[] = "CONV_GEMM=", layer_key[] = "layer ";
        if (n >= sizeof value_key - 1 && memcmp(s, value_key, sizeof value_key - 1) == 0) {
            CT_REQUIRE(!have_value, CT_ERR_FORMAT, "line %zu: CONV_GEMM given twice", lineno);
            const char *v = s + sizeof value_key - 1;
            CT_REQUIRE(n == sizeof value_key && *v >= '0' && *v <= '7', CT_ERR_FORMAT,
                       "line %zu: '%.*s' is not CONV_GEMM=0..7", lineno, (int)(n < 40 ? n : 40), s);
            cp->conv_gemm = (unsigned)(*v - '0');
            have_value = true;
            continue;
        }
        if (layers && n >= sizeof layer_key - 1 &&
            memcmp(s, layer_key, sizeof layer_key - 1) == 0) {
            ct_conv_shape shape;
            unsigned v = 0;
            const size_t kl = sizeof layer_key - 1;
            CT_REQUIRE(parse_layer(s + kl, n - kl, &shape, &v), CT_ERR_FORMAT,
                       "line %zu: '%.*s' is not 'layer CxHxW kK rRxS sSHxSW pPHxPW dDHxDW gG "
                       "CONV_GEMM=0..7'",
                       lineno, (int)(n < 80 ? n : 80), s);
            CT_REQUIRE(path_find(cp, cp->nlayers, &shape) < 0, CT_ERR_FORMAT,
                       "line %zu: the shape is given twice", lineno);
            CT_REQUIRE(cp->nlayers < CT_CONV_PATH_MAX_LAYERS, CT_ERR_FORMAT,
                       "line %zu: more than %d layer lines", lineno, CT_CONV_PATH_MAX_LAYERS);
            cp->layer[cp->nlayers] = shape;
            cp->layer_gemm[cp->nlayers++] = v;
            continue;
        }
        const char *sp = memchr(s, ' ', n);
        size_t kl = sp ? (size_t)(sp - s) : n, rl = sp ? n - kl - 1 : 0;
        int k = -1;
        for (int i = 0; i < K_COUNT; i++)
            if (strlen(keys[i]) == kl && memcmp(keys[i], s, kl) == 0)
                k = i;
        CT_REQUIRE(k >= 0, CT_ERR_FORMAT,
                   "line %zu: unknown line '%.*s' (expected a header key, %s)", lineno,
                   (int)(kl < 40 ? kl : 40), s,
                   layers ? "CONV_GEMM=N or a layer line" : "or CONV_GEMM=N");
        CT_REQUIRE(!have[k], CT_ERR_FORMAT, "line %zu: '%s' given twice", lineno, keys[k]);
        char *dst[K_COUNT] = {fi->device, fi->platform, fi->driver, fi->date, fi->shapes};
        size_t cap[K_COUNT] = {sizeof fi->device, sizeof fi->platform, sizeof fi->driver,
                               sizeof fi->date, sizeof fi->shapes};
        CT_REQUIRE(rl < cap[k], CT_ERR_FORMAT, "line %zu: the %s is longer than %zu bytes", lineno,
                   keys[k], cap[k] - 1);
        memcpy(dst[k], sp ? sp + 1 : s + n, rl);
        dst[k][rl] = '\0';
        have[k] = true;
    }
    for (int k = 0; k < K_COUNT; k++)
        CT_REQUIRE(have[k], CT_ERR_FORMAT, "no '%s' line (truncated?)", keys[k]);
    CT_REQUIRE(have_value, CT_ERR_FORMAT, "no CONV_GEMM line (truncated?)");
cleanup:
    return st;
}

ct_status ct_conv_path_file(const ct_device_info *dev, char *buf, size_t cap)
{
    return ct_device_file(dev, "cltrain conv path", "conv", buf, cap);
}

ct_status ct_conv_path_parse(const char *text, size_t len, ct_conv_path *out,
                             ct_tune_file_info *info)
{
    ct_status st = CT_SUCCESS;
    ct_tune_file_info fi;
    ct_conv_path cp;
    memset(&fi, 0, sizeof fi);
    ct_conv_path_init(&cp, 0);
    CT_REQUIRE(text != NULL && out != NULL, CT_ERR_INVALID_ARG,
               "ct_conv_path_parse: NULL argument");
    const bool v1 =
        len > strlen(CONV_MAGIC1) && memcmp(text, CONV_MAGIC1 "\n", strlen(CONV_MAGIC1) + 1) == 0;
    CT_TRY(ct_text_check(text, len, v1 ? CONV_MAGIC1 : CONV_MAGIC));
    CT_TRY(parse_body(text, len, !v1, &cp, &fi));
    *out = cp;
    if (info)
        *info = fi;
cleanup:
    return st;
}

ct_status ct_conv_path_read(const char *path, const ct_device_info *dev, ct_conv_path *out)
{
    ct_status st = CT_SUCCESS;
    char *text = NULL;
    size_t n = 0;
    ct_conv_path cp;
    ct_tune_file_info fi;
    CT_REQUIRE(path && dev && out, CT_ERR_INVALID_ARG, "ct_conv_path_read: NULL argument");
    CT_TRY(ct_read_small_file(path, &text, &n));
    CT_TRY(ct_conv_path_parse(text, n, &cp, &fi));
    CT_TRY(ct_tune_file_same_device(&fi, dev, "cltrain tune --conv"));
    *out = cp;
cleanup:
    free(text);
    return st;
}

ct_status ct_conv_path_write(const char *path, const ct_device_info *dev, const ct_conv_path *cp,
                             const char *measured)
{
    ct_status st = CT_SUCCESS;
    char date[64], name[256], platform[256], driver[128], what[CT_TUNE_LINE_MAX - 10],
        shape[CT_TUNE_LINE_MAX];
    char *text = malloc(CT_TUNE_FILE_MAX);
    CT_REQUIRE(text != NULL, CT_ERR_OUT_OF_MEMORY, "out of host memory");
    CT_REQUIRE(path && dev && cp, CT_ERR_INVALID_ARG, "ct_conv_path_write: NULL argument");
    CT_TRY(path_check(cp, "ct_conv_path_write"));
    ct_utc_date(date, sizeof date);
    ct_one_line(name, sizeof name, dev->name);
    ct_one_line(platform, sizeof platform, dev->platform);
    ct_one_line(driver, sizeof driver, dev->driver);
    ct_one_line(what, sizeof what, measured && *measured ? measured : "unknown");
    int n = snprintf(
        text, CT_TUNE_FILE_MAX,
        CONV_MAGIC "\n"
                   "# The convolution path of this device, from 'cltrain tune --conv' (measured)\n"
                   "# or --conv-set (CONV_GEMM: 1 weight gradient, 2 forward, 4 input gradient\n"
                   "# as GEMMs; a layer line gives one convolution shape its own); 'cltrain\n"
                   "# tune --conv --reset' or deleting the file returns to the default.\n"
                   "device %s\nplatform %s\ndriver %s\ndate %s\nmeasured %s\nCONV_GEMM=%u\n",
        name, platform, driver, date, what, cp->conv_gemm);
    for (size_t i = 0; i < cp->nlayers && n > 0 && n < CT_TUNE_FILE_MAX; i++) {
        CT_TRY(ct_conv_shape_format(&cp->layer[i], shape, sizeof shape));
        n += snprintf(text + n, CT_TUNE_FILE_MAX - (size_t)n, "layer %s CONV_GEMM=%u\n", shape,
                      cp->layer_gemm[i]);
    }
    CT_REQUIRE(n > 0 && n < CT_TUNE_FILE_MAX, CT_ERR_INVALID_ARG, "the file would be too long");
    CT_TRY(ct_write_text_atomic(path, text));
cleanup:
    free(text);
    return st;
}

/* "CONV_GEMM=N" and, when there are some, ", M layer shapes of their own". */
static void path_summary(const ct_conv_path *cp, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "CONV_GEMM=%u", cp->conv_gemm);
    if (cp->nlayers && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, ", %zu layer shape%s of %s own", cp->nlayers,
                 cp->nlayers == 1 ? "" : "s", cp->nlayers == 1 ? "its" : "their");
}

unsigned ct_conv_path_resolve(const ct_device_info *dev, ct_conv_path *out, char *source,
                              size_t cap)
{
    char path[4200], why[1024], sum[96];
    ct_conv_path cp;
    unsigned dflt = ct_conv_path_default(dev);
    ct_conv_path_init(&cp, dflt);
    snprintf(source, cap, "default (CONV_GEMM=%u)", dflt);
    if (ct_conv_path_file(dev, path, sizeof path) == CT_SUCCESS) {
        ct_status st = ct_conv_path_read(path, dev, &cp);
        if (st == CT_SUCCESS) {
            path_summary(&cp, sum, sizeof sum);
            snprintf(source, cap, "stored: %s (%s)", path, sum);
        } else {
            ct_conv_path_init(&cp, dflt);
            if (st != CT_ERR_NOT_FOUND) {
                ct_error_reason(why, sizeof why);
                snprintf(source, cap, "default (CONV_GEMM=%u; ignored %s: %s)", dflt, path, why);
            }
        }
    }
    ct_error_clear();
    if (out)
        *out = cp;
    return cp.conv_gemm;
}

void ct_conv_path_apply(ct_context *ctx)
{
    ct_conv_path_resolve(&ctx->info, &ctx->conv_path, ctx->conv_path_source,
                         sizeof ctx->conv_path_source);
}

const char *ct_context_conv_path_source(const ct_context *ctx)
{
    return ctx ? ctx->conv_path_source : "";
}

ct_status ct_context_set_conv_path(ct_context *ctx, const ct_conv_path *cp)
{
    ct_status st = CT_SUCCESS;
    char sum[96];
    CT_REQUIRE(ctx != NULL, CT_ERR_INVALID_ARG, "ct_context_set_conv_path: NULL context");
    if (!cp) {
        ct_conv_path_apply(ctx);
        goto cleanup;
    }
    CT_TRY(path_check(cp, "ct_context_set_conv_path"));
    ctx->conv_path = *cp;
    path_summary(cp, sum, sizeof sum);
    snprintf(ctx->conv_path_source, sizeof ctx->conv_path_source, "set by the program (%s)", sum);
cleanup:
    return st;
}
