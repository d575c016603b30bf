/* lib/nn/spec.c — layer descriptions: PyTorch's defaults, the one-line text spec
 * ("conv(32,3,pad=1) relu maxpool(2) ...") and the host-only shape check.
 *
 * The grammar (see cltrain/model.h for the list of layers and their arguments):
 *     spec  := layer (ws layer)*  |  builtin-name
 *     layer := name [ '(' [arg (',' arg)*] ')' ]
 *     arg   := value | key '=' value          positional args come first
 *     value := int | int 'x' int | float | bool
 * Every error is CT_ERR_INVALID_ARG with one line that names the offending text and its
 * 1-based character position in the spec.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/layer.h"

/* ---- defaults --------------------------------------------------------------------- */

ct_layer_desc ct_layer_desc_default(ct_layer_kind kind)
{
    ct_layer_desc d;
    memset(&d, 0, sizeof d);
    d.kind = kind;
    d.stride_h = d.stride_w = kind == CT_LAYER_CONV2D ? 1 : 0;
    d.dil_h = d.dil_w = 1;
    d.groups = 1;
    d.bias = true;
    d.count_include_pad = true;
    d.negative_slope = 0.01f;
    d.p = 0.5f;
    d.eps = 1e-5f;
    d.momentum = 0.1f;
    d.affine = true;
    return d;
}

ct_layer_desc ct_layer_conv2d(size_t out_channels, size_t kernel, size_t stride, size_t pad)
{
    ct_layer_desc d = ct_layer_desc_default(CT_LAYER_CONV2D);
    d.out = out_channels;
    d.kernel_h = d.kernel_w = kernel;
    d.stride_h = d.stride_w = stride;
    d.pad_h = d.pad_w = pad;
    return d;
}

ct_layer_desc ct_layer_linear(size_t out_features)
{
    ct_layer_desc d = ct_layer_desc_default(CT_LAYER_LINEAR);
    d.out = out_features;
    return d;
}

ct_layer_desc ct_layer_maxpool2d(size_t kernel)
{
    ct_layer_desc d = ct_layer_desc_default(CT_LAYER_MAXPOOL2D);
    d.kernel_h = d.kernel_w = kernel;
    return d;
}

/* ---- names ------------------------------------------------------------------------ */

typedef struct kind_name {
    const char *name;
    ct_layer_kind kind;
} kind_name;

/* The first entry of each kind is its canonical spec name. */
static const kind_name kind_names[] = {
    {"conv", CT_LAYER_CONV2D},
    {"conv2d", CT_LAYER_CONV2D},
    {"maxpool", CT_LAYER_MAXPOOL2D},
    {"maxpool2d", CT_LAYER_MAXPOOL2D},
    {"avgpool", CT_LAYER_AVGPOOL2D},
    {"avgpool2d", CT_LAYER_AVGPOOL2D},
    {"gap", CT_LAYER_GAP},
    {"globalavgpool", CT_LAYER_GAP},
    {"linear", CT_LAYER_LINEAR},
    {"fc", CT_LAYER_LINEAR},
    {"dense", CT_LAYER_LINEAR},
    {"relu", CT_LAYER_RELU},
    {"leakyrelu", CT_LAYER_LEAKY_RELU},
    {"leaky_relu", CT_LAYER_LEAKY_RELU},
    {"sigmoid", CT_LAYER_SIGMOID},
    {"tanh", CT_LAYER_TANH},
    {"flatten", CT_LAYER_FLATTEN},
    {"dropout", CT_LAYER_DROPOUT},
    {"bn", CT_LAYER_BATCHNORM},
    {"batchnorm", CT_LAYER_BATCHNORM},
    {"batchnorm2d", CT_LAYER_BATCHNORM},
    {"batchnorm1d", CT_LAYER_BATCHNORM},
    {"bn2d", CT_LAYER_BATCHNORM},
    {"bn1d", CT_LAYER_BATCHNORM},
    {"softmax", CT_LAYER_SOFTMAX},
    {"logsoftmax", CT_LAYER_LOG_SOFTMAX},
    {"log_softmax", CT_LAYER_LOG_SOFTMAX},
};
#define N_KIND_NAMES (sizeof kind_names / sizeof kind_names[0])

const char *ct_layer_kind_name(ct_layer_kind kind)
{
    for (size_t i = 0; i < N_KIND_NAMES; i++)
        if (kind_names[i].kind == kind)
            return kind_names[i].name;
    return "?";
}

ct_status ct_layer_desc_format(const ct_layer_desc *d, char *buf, size_t cap)
{
    ct_status st = CT_SUCCESS;
    char a[256] = "";
    CT_REQUIRE(d != NULL && buf != NULL && cap > 0, CT_ERR_INVALID_ARG,
               "layer_desc_format: NULL argument");
    CT_REQUIRE((unsigned)d->kind < CT_LAYER_KIND_COUNT, CT_ERR_INVALID_ARG,
               "layer_desc_format: invalid layer kind %d", (int)d->kind);
    /* a pool's stride 0 means "= kernel": written as the stride it is */
    size_t sh = d->stride_h ? d->stride_h : d->kernel_h,
           sw = d->stride_w ? d->stride_w : d->kernel_w;
    switch (d->kind) {
    case CT_LAYER_CONV2D:
        snprintf(a, sizeof a,
                 "(%zu,%zux%zu,stride=%zux%zu,pad=%zux%zu,dil=%zux%zu,groups=%zu,bias=%d)", d->out,
                 d->kernel_h, d->kernel_w, d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->dil_h,
                 d->dil_w, d->groups, d->bias ? 1 : 0);
        break;
    case CT_LAYER_MAXPOOL2D:
        snprintf(a, sizeof a, "(%zux%zu,stride=%zux%zu,pad=%zux%zu,ceil=%d)", d->kernel_h,
                 d->kernel_w, sh, sw, d->pad_h, d->pad_w, d->ceil_mode ? 1 : 0);
        break;
    case CT_LAYER_AVGPOOL2D:
        snprintf(a, sizeof a, "(%zux%zu,stride=%zux%zu,pad=%zux%zu,ceil=%d,count_include_pad=%d)",
                 d->kernel_h, d->kernel_w, sh, sw, d->pad_h, d->pad_w, d->ceil_mode ? 1 : 0,
                 d->count_include_pad ? 1 : 0);
        break;
    case CT_LAYER_LINEAR:
        snprintf(a, sizeof a, "(%zu,bias=%d)", d->out, d->bias ? 1 : 0);
        break;
    case CT_LAYER_LEAKY_RELU:
        snprintf(a, sizeof a, "(slope=%.9g)", (double)d->negative_slope);
        break;
    case CT_LAYER_DROPOUT:
        snprintf(a, sizeof a, "(p=%.9g)", (double)d->p);
        break;
    case CT_LAYER_BATCHNORM:
        snprintf(a, sizeof a, "(eps=%.9g,momentum=%.9g,affine=%d)", (double)d->eps,
                 (double)d->momentum, d->affine ? 1 : 0);
        break;
    default:
        break;
    }
    int n = snprintf(buf, cap, "%s%s", ct_layer_kind_name(d->kind), a);
    CT_REQUIRE(n >= 0 && (size_t)n < cap, CT_ERR_INVALID_ARG,
               "layer_desc_format: %d bytes do not fit the buffer of %zu", n, cap);
cleanup:
    return st;
}

typedef struct builtin {
    const char *name;
    const char *spec;
} builtin;

static const builtin builtins[] = {
    {"minicnn", "conv(32,3,pad=1) relu maxpool(2) conv(64,3,pad=1) relu maxpool(2) flatten "
                "linear(128) relu linear(10)"},
};

/* Case-insensitive comparison of s[0..n) with the NUL-terminated word. */
static bool word_eq(const char *s, size_t n, const char *word)
{
    size_t i = 0;
    for (; i < n && word[i]; i++)
        if (tolower((unsigned char)s[i]) != tolower((unsigned char)word[i]))
            return false;
    return i == n && word[i] == '\0';
}

const char *ct_spec_builtin(const char *name)
{
    if (name == NULL)
        return NULL;
    size_t b = 0, e = strlen(name);
    while (b < e && isspace((unsigned char)name[b]))
        b++;
    while (e > b && isspace((unsigned char)name[e - 1]))
        e--;
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (word_eq(name + b, e - b, builtins[i].name))
            return builtins[i].spec;
    return NULL;
}

/* ---- arguments -------------------------------------------------------------------- */

typedef enum arg_id {
    A_OUT,
    A_KERNEL,
    A_STRIDE,
    A_PAD,
    A_DIL,
    A_GROUPS,
    A_BIAS,
    A_CEIL,
    A_CIP,
    A_SLOPE,
    A_P,
    A_EPS,
    A_MOMENTUM,
    A_AFFINE,
    A_COUNT
} arg_id;

typedef enum arg_type { T_COUNT, T_PAIR, T_PAIR0, T_BOOL, T_FLOAT } arg_type;

typedef struct arg_def {
    const char *names[4]; /* canonical first */
    arg_type type;
} arg_def;

static const arg_def arg_defs[A_COUNT] = {
    [A_OUT] = {{"out", "out_channels", "out_features", NULL}, T_COUNT},
    [A_KERNEL] = {{"kernel", "kernel_size", "k", NULL}, T_PAIR},
    [A_STRIDE] = {{"stride", "s", NULL, NULL}, T_PAIR},
    [A_PAD] = {{"pad", "padding", NULL, NULL}, T_PAIR0},
    [A_DIL] = {{"dil", "dilation", NULL, NULL}, T_PAIR},
    [A_GROUPS] = {{"groups", NULL, NULL, NULL}, T_COUNT},
    [A_BIAS] = {{"bias", NULL, NULL, NULL}, T_BOOL},
    [A_CEIL] = {{"ceil", "ceil_mode", NULL, NULL}, T_BOOL},
    [A_CIP] = {{"count_include_pad", NULL, NULL, NULL}, T_BOOL},
    [A_SLOPE] = {{"slope", "negative_slope", NULL, NULL}, T_FLOAT},
    [A_P] = {{"p", NULL, NULL, NULL}, T_FLOAT},
    [A_EPS] = {{"eps", NULL, NULL, NULL}, T_FLOAT},
    [A_MOMENTUM] = {{"momentum", NULL, NULL, NULL}, T_FLOAT},
    [A_AFFINE] = {{"affine", NULL, NULL, NULL}, T_BOOL},
};

#define END A_COUNT
typedef struct kind_args {
    arg_id positional[5]; /* END-terminated */
    arg_id keywords[8];   /* END-terminated; the positional ones are keywords too */
    arg_id required[3];   /* END-terminated */
} kind_args;

static const kind_args kind_arg_table[CT_LAYER_KIND_COUNT] = {
    [CT_LAYER_CONV2D] = {{A_OUT, A_KERNEL, A_STRIDE, A_PAD, END},
                         {A_DIL, A_GROUPS, A_BIAS, END},
                         {A_OUT, A_KERNEL, END}},
    [CT_LAYER_MAXPOOL2D] = {{A_KERNEL, A_STRIDE, A_PAD, END}, {A_CEIL, END}, {A_KERNEL, END}},
    [CT_LAYER_AVGPOOL2D] = {{A_KERNEL, A_STRIDE, A_PAD, END},
                            {A_CEIL, A_CIP, END},
                            {A_KERNEL, END}},
    [CT_LAYER_GAP] = {{END}, {END}, {END}},
    [CT_LAYER_LINEAR] = {{A_OUT, END}, {A_BIAS, END}, {A_OUT, END}},
    [CT_LAYER_RELU] = {{END}, {END}, {END}},
    [CT_LAYER_LEAKY_RELU] = {{A_SLOPE, END}, {END}, {END}},
    [CT_LAYER_SIGMOID] = {{END}, {END}, {END}},
    [CT_LAYER_TANH] = {{END}, {END}, {END}},
    [CT_LAYER_FLATTEN] = {{END}, {END}, {END}},
    [CT_LAYER_DROPOUT] = {{A_P, END}, {END}, {END}},
    [CT_LAYER_BATCHNORM] = {{END}, {A_EPS, A_MOMENTUM, A_AFFINE, END}, {END}},
    [CT_LAYER_SOFTMAX] = {{END}, {END}, {END}},
    [CT_LAYER_LOG_SOFTMAX] = {{END}, {END}, {END}},
};

static bool in_list(const arg_id *list, arg_id a)
{
    for (; *list != END; list++)
        if (*list == a)
            return true;
    return false;
}

/* ---- parser ----------------------------------------------------------------------- */

typedef struct parser {
    const char *s;
    const char *layer; /* canonical name of the layer being parsed, for messages */
} parser;

/* Parses an unsigned decimal in s[0..n); false when it is not one. */
static bool parse_size(const char *s, size_t n, size_t *out)
{
    if (n == 0 || n > 9)
        return false;
    size_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

/* Parses value text s[0..n) of argument `a` into d; false when malformed or out of range. */
static bool parse_value(arg_id a, const char *s, size_t n, ct_layer_desc *d)
{
    size_t v0 = 0, v1 = 0;
    switch (arg_defs[a].type) {
    case T_COUNT:
        if (!parse_size(s, n, &v0) || v0 == 0)
            return false;
        if (a == A_OUT)
            d->out = v0;
        else
            d->groups = v0;
        return true;
    case T_PAIR:
    case T_PAIR0: {
        const char *x = memchr(s, 'x', n);
        if (x == NULL)
            x = memchr(s, 'X', n);
        if (x) {
            if (!parse_size(s, (size_t)(x - s), &v0) ||
                !parse_size(x + 1, n - (size_t)(x - s) - 1, &v1))
                return false;
        } else {
            if (!parse_size(s, n, &v0))
                return false;
            v1 = v0;
        }
        if (arg_defs[a].type == T_PAIR && (v0 == 0 || v1 == 0))
            return false;
        size_t *h = a == A_KERNEL   ? &d->kernel_h
                    : a == A_STRIDE ? &d->stride_h
                    : a == A_PAD    ? &d->pad_h
                                    : &d->dil_h;
        size_t *w = a == A_KERNEL   ? &d->kernel_w
                    : a == A_STRIDE ? &d->stride_w
                    : a == A_PAD    ? &d->pad_w
                                    : &d->dil_w;
        *h = v0;
        *w = v1;
        return true;
    }
    case T_BOOL: {
        bool b;
        if (word_eq(s, n, "1") || word_eq(s, n, "true"))
            b = true;
        else if (word_eq(s, n, "0") || word_eq(s, n, "false"))
            b = false;
        else
            return false;
        if (a == A_BIAS)
            d->bias = b;
        else if (a == A_CEIL)
            d->ceil_mode = b;
        else if (a == A_CIP)
            d->count_include_pad = b;
        else
            d->affine = b;
        return true;
    }
    case T_FLOAT: {
        char buf[64];
        if (n == 0 || n >= sizeof buf)
            return false;
        memcpy(buf, s, n);
        buf[n] = '\0';
        char *end = NULL;
        errno = 0;
        double v = strtod(buf, &end);
        if (end != buf + n || errno != 0 || !isfinite(v))
            return false;
        if (a == A_SLOPE) {
            d->negative_slope = (float)v;
        } else if (a == A_P) {
            if (!(v >= 0.0 && v < 1.0))
                return false;
            d->p = (float)v;
        } else if (a == A_EPS) {
            if (!(v > 0.0))
                return false;
            d->eps = (float)v;
        } else {
            if (!(v >= 0.0 && v <= 1.0))
                return false;
            d->momentum = (float)v;
        }
        return true;
    }
    }
    return false;
}

/* The argument of this kind named s[0..n), or END. */
static arg_id find_keyword(const kind_args *ka, const char *s, size_t n)
{
    for (int a = 0; a < A_COUNT; a++)
        if (in_list(ka->positional, (arg_id)a) || in_list(ka->keywords, (arg_id)a))
            for (size_t j = 0; j < 4 && arg_defs[a].names[j]; j++)
                if (word_eq(s, n, arg_defs[a].names[j]))
                    return (arg_id)a;
    return END;
}

static size_t trim(const char *s, size_t *b, size_t e)
{
    while (*b < e && isspace((unsigned char)s[*b]))
        (*b)++;
    while (e > *b && isspace((unsigned char)s[e - 1]))
        e--;
    return e;
}

/* Parses the argument list between s[open] == '(' and s[close] == ')' into d. */
static ct_status parse_args(parser *p, ct_layer_desc *d, size_t name_pos, size_t open, size_t close)
{
    ct_status st = CT_SUCCESS;
    const char *s = p->s;
    const kind_args *ka = &kind_arg_table[d->kind];
    bool given[A_COUNT] = {false};
    size_t npos = 0;
    bool seen_keyword = false;
    size_t b = open + 1;

    /* "name()" is the same as "name" */
    size_t tb = b;
    if (close <= open + 1 || trim(s, &tb, close) == tb)
        goto check_required;

    for (;;) {
        size_t e = b;
        while (e < close && s[e] != ',')
            e++;
        size_t ib = b, ie = trim(s, &ib, e);
        size_t item_pos = ib + 1;
        if (ie == ib)
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: empty argument for %s at position %zu", p->layer,
                    item_pos);
        const char *eq = memchr(s + ib, '=', ie - ib);
        arg_id a;
        size_t vb, ve;
        if (eq) {
            size_t kb = ib, ke = trim(s, &kb, (size_t)(eq - s));
            a = find_keyword(ka, s + kb, ke - kb);
            if (a == END)
                CT_FAIL(CT_ERR_INVALID_ARG, "spec: unknown option '%.*s' for %s at position %zu",
                        (int)(ke - kb), s + kb, p->layer, kb + 1);
            vb = (size_t)(eq - s) + 1;
            ve = trim(s, &vb, ie);
            seen_keyword = true;
        } else {
            if (seen_keyword)
                CT_FAIL(CT_ERR_INVALID_ARG,
                        "spec: positional argument '%.*s' after key=value for %s at "
                        "position %zu",
                        (int)(ie - ib), s + ib, p->layer, item_pos);
            if (npos >= 5 || ka->positional[npos] == END)
                CT_FAIL(CT_ERR_INVALID_ARG,
                        "spec: too many arguments for %s: '%.*s' at position %zu", p->layer,
                        (int)(ie - ib), s + ib, item_pos);
            a = ka->positional[npos++];
            vb = ib;
            ve = ie;
        }
        if (given[a])
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: option '%s' given twice for %s at position %zu",
                    arg_defs[a].names[0], p->layer, item_pos);
        given[a] = true;
        if (!parse_value(a, s + vb, ve - vb, d))
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: bad value '%.*s' for %s of %s at position %zu",
                    (int)(ve - vb), s + vb, arg_defs[a].names[0], p->layer, vb + 1);
        if (e >= close)
            break;
        b = e + 1;
    }

check_required:
    for (const arg_id *r = ka->required; *r != END; r++)
        if (!given[*r])
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: %s needs argument '%s' at position %zu", p->layer,
                    arg_defs[*r].names[0], name_pos + 1);
cleanup:
    return st;
}

ct_status ct_spec_parse(const char *spec, ct_layer_desc **layers, size_t *count)
{
    ct_status st = CT_SUCCESS;
    ct_layer_desc *list = NULL;
    size_t n = 0, cap = 0;
    parser p = {spec, NULL};

    CT_REQUIRE(layers != NULL && count != NULL, CT_ERR_INVALID_ARG, "spec: NULL out-pointer");
    *layers = NULL;
    *count = 0;
    CT_REQUIRE(spec != NULL, CT_ERR_INVALID_ARG, "spec: NULL spec");
    {
        const char *b = ct_spec_builtin(spec);
        if (b)
            p.s = spec = b;
    }

    size_t i = 0;
    for (;;) {
        while (spec[i] && isspace((unsigned char)spec[i]))
            i++;
        if (spec[i] == '\0')
            break;
        size_t name_pos = i;
        if (!isalpha((unsigned char)spec[i]))
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: unexpected '%c' at position %zu", spec[i], i + 1);
        while (isalnum((unsigned char)spec[i]) || spec[i] == '_')
            i++;
        size_t name_len = i - name_pos;
        size_t k = 0;
        while (k < N_KIND_NAMES && !word_eq(spec + name_pos, name_len, kind_names[k].name))
            k++;
        if (k == N_KIND_NAMES)
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: unknown layer '%.*s' at position %zu", (int)name_len,
                    spec + name_pos, name_pos + 1);
        ct_layer_desc d = ct_layer_desc_default(kind_names[k].kind);
        p.layer = ct_layer_kind_name(d.kind);

        if (spec[i] == '(') {
            size_t open = i, close = i + 1;
            while (spec[close] && spec[close] != ')' && spec[close] != '(')
                close++;
            if (spec[close] != ')')
                CT_FAIL(CT_ERR_INVALID_ARG, "spec: missing ')' after '%.*s(' at position %zu",
                        (int)name_len, spec + name_pos, open + 1);
            CT_TRY(parse_args(&p, &d, name_pos, open, close));
            i = close + 1;
        } else {
            CT_TRY(parse_args(&p, &d, name_pos, i - 1, i - 1));
        }
        if (spec[i] != '\0' && !isspace((unsigned char)spec[i]))
            CT_FAIL(CT_ERR_INVALID_ARG, "spec: unexpected '%c' after %.*s at position %zu", spec[i],
                    (int)name_len, spec + name_pos, i + 1);

        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            ct_layer_desc *nl = realloc(list, ncap * sizeof *nl);
            CT_REQUIRE(nl != NULL, CT_ERR_OUT_OF_MEMORY, "spec: out of host memory");
            list = nl;
            cap = ncap;
        }
        list[n++] = d;
    }
    CT_REQUIRE(n > 0, CT_ERR_INVALID_ARG,
               "spec: empty spec, expected layers such as "
               "'conv(32,3,pad=1) relu ...' or a builtin name such as 'minicnn'");
    *layers = list;
    *count = n;
    list = NULL;
cleanup:
    free(list);
    return st;
}

/* ---- shapes ----------------------------------------------------------------------- */

ct_status ct_layers_check(const ct_layer_desc *layers, size_t count, size_t in_ndim,
                          const size_t *in_shape, size_t *out_ndim, size_t *out_shape,
                          size_t *param_numel)
{
    ct_status st = CT_SUCCESS;
    ct_layer l;
    size_t ndim = in_ndim, shape[3] = {0, 0, 0}, total = 0;

    CT_REQUIRE(layers != NULL && count > 0, CT_ERR_INVALID_ARG, "model: no layers");
    CT_REQUIRE(in_shape != NULL && (in_ndim == 1 || in_ndim == 3), CT_ERR_INVALID_ARG,
               "model: input shape must be (C, H, W) or (F), got %zu dims", in_ndim);
    for (size_t i = 0; i < in_ndim; i++) {
        CT_REQUIRE(in_shape[i] >= 1, CT_ERR_SHAPE, "model: input dimension %zu is 0", i);
        shape[i] = in_shape[i];
    }
    for (size_t i = 0; i < count; i++) {
        CT_TRY(ct_layer_setup(&l, &layers[i], i, ndim, shape));
        for (size_t j = 0; j < l.nparams; j++)
            total += l.param_slot[j].numel;
        ndim = l.out_ndim;
        memcpy(shape, l.out_shape, sizeof shape);
    }
    if (out_ndim)
        *out_ndim = ndim;
    if (out_shape)
        memcpy(out_shape, shape, ndim * sizeof *shape);
    if (param_numel)
        *param_numel = total;
cleanup:
    return st;
}
