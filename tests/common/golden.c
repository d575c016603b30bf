#include "golden.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#ifndef CT_GOLDEN_DIR
#error "CT_GOLDEN_DIR must name tests/golden/data"
#endif

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "golden file %s: %s", path, strerror(errno));
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    long len = ftell(f);
    cr_assert(len >= 0);
    rewind(f);
    char *buf = malloc((size_t)len + 1);
    cr_assert(buf != NULL);
    cr_assert(fread(buf, 1, (size_t)len, f) == (size_t)len, "reading %s", path);
    buf[len] = '\0';
    fclose(f);
    return buf;
}

tu_golden *tu_golden_load(const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", CT_GOLDEN_DIR, file);
    char *text = read_all(path);
    tu_golden *g = calloc(1, sizeof *g);
    cr_assert(g != NULL);
    size_t cap = 0;
    size_t lineno = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        lineno++;
        while (*line == ' ')
            line++;
        if (*line == '#' || *line == '\0')
            continue;
        if (g->count == cap) {
            cap = cap ? cap * 2 : 64;
            g->t = realloc(g->t, cap * sizeof *g->t);
            cr_assert(g->t != NULL);
        }
        tu_gold_tensor *t = &g->t[g->count++];
        memset(t, 0, sizeof *t);
        char *p = line, *end;
        size_t nlen = strcspn(p, " ");
        t->name = strndup(p, nlen);
        p += nlen;
        t->ndim = strtoul(p, &end, 10);
        cr_assert(end != p && t->ndim <= 8, "%s:%zu: bad ndim", path, lineno);
        p = end;
        t->numel = 1;
        for (size_t d = 0; d < t->ndim; d++) {
            t->shape[d] = strtoul(p, &end, 10);
            cr_assert(end != p, "%s:%zu: bad shape", path, lineno);
            p = end;
            t->numel *= t->shape[d];
        }
        p = strchr(p, ':');
        cr_assert(p != NULL, "%s:%zu: missing ':'", path, lineno);
        p++;
        t->v = malloc((t->numel ? t->numel : 1) * sizeof *t->v);
        cr_assert(t->v != NULL);
        for (size_t i = 0; i < t->numel; i++) {
            t->v[i] = strtod(p, &end);
            cr_assert(end != p, "%s:%zu: %s has fewer than %zu values", path, lineno, t->name,
                      t->numel);
            p = end;
        }
    }
    free(text);
    return g;
}

void tu_golden_free(tu_golden *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->count; i++) {
        free(g->t[i].name);
        free(g->t[i].v);
    }
    free(g->t);
    free(g);
}

const tu_gold_tensor *tu_golden_find(const tu_golden *g, const char *name)
{
    for (size_t i = 0; i < g->count; i++)
        if (strcmp(g->t[i].name, name) == 0)
            return &g->t[i];
    return NULL;
}

const tu_gold_tensor *tu_golden_get(const tu_golden *g, const char *name)
{
    const tu_gold_tensor *t = tu_golden_find(g, name);
    cr_assert(t != NULL, "golden record '%s' not found", name);
    return t;
}

float *tu_gold_floats(const tu_gold_tensor *t)
{
    float *f = malloc((t->numel ? t->numel : 1) * sizeof *f);
    cr_assert(f != NULL);
    for (size_t i = 0; i < t->numel; i++)
        f[i] = (float)t->v[i];
    return f;
}

ct_tensor *tu_gold_upload(ct_context *ctx, const tu_gold_tensor *t)
{
    cr_assert(t->ndim <= CT_MAX_DIMS, "%s: %zu dims, a tensor has at most %d", t->name, t->ndim,
              CT_MAX_DIMS);
    float *h = tu_gold_floats(t);
    ct_tensor *d = tu_tensor(ctx, t->ndim ? t->ndim : 1, t->ndim ? t->shape : (size_t[]){1}, h);
    free(h);
    return d;
}

void tu_gold_expect(const char *what, const ct_tensor *t, const tu_gold_tensor *ref, double atol,
                    double rtol)
{
    cr_assert_eq(ct_tensor_numel(t), ref->numel, "%s: %zu elements, torch has %zu", what,
                 ct_tensor_numel(t), ref->numel);
    float *h = tu_download(t);
    tu_assert_close(what, h, ref->v, ref->numel, atol, rtol);
    free(h);
}

void tu_golden_check_param(const tu_golden *g, const char *prefix, const char *key, const float *v,
                           size_t ndim, const size_t *shape, size_t stride, double atol,
                           double sum_atol, double rtol)
{
    char name[160];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    const tu_gold_tensor *t = tu_golden_find(g, name);
    if (t) {
        tu_assert_close(name, v, t->v, t->numel, atol, rtol);
        return;
    }
    cr_assert_eq(ndim, 2, "%s: no golden record", name);
    size_t rows = shape[0], cols = shape[1];
    snprintf(name, sizeof name, "%ssub.%s", prefix, key);
    t = tu_golden_get(g, name);
    cr_assert_eq(t->numel, (rows * cols + stride - 1) / stride);
    float *sub = malloc(t->numel * sizeof *sub);
    float *rs = malloc(rows * sizeof *rs), *cs = malloc(cols * sizeof *cs);
    double *rsd = calloc(rows, sizeof *rsd), *csd = calloc(cols, sizeof *csd);
    cr_assert(sub && rs && cs && rsd && csd);
    for (size_t j = 0; j < t->numel; j++)
        sub[j] = v[j * stride];
    tu_assert_close(name, sub, t->v, t->numel, atol, rtol);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            rsd[r] += v[r * cols + c];
            csd[c] += v[r * cols + c];
        }
    for (size_t r = 0; r < rows; r++)
        rs[r] = (float)rsd[r];
    for (size_t c = 0; c < cols; c++)
        cs[c] = (float)csd[c];
    snprintf(name, sizeof name, "%srowsum.%s", prefix, key);
    tu_assert_close(name, rs, tu_golden_get(g, name)->v, rows, sum_atol, rtol);
    snprintf(name, sizeof name, "%scolsum.%s", prefix, key);
    tu_assert_close(name, cs, tu_golden_get(g, name)->v, cols, sum_atol, rtol);
    free(sub), free(rs), free(cs), free(rsd), free(csd);
}
