#include "testutil.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

ct_context *tu_context_flags(unsigned flags)
{
    ct_context *ctx = NULL;
    ct_status st = ct_context_create(NULL, flags, &ctx);
    if (st == CT_ERR_NO_DEVICE)
        cr_skip_test("no OpenCL device on this machine: %s", ct_last_error());
    cr_assert(st == CT_SUCCESS, "ct_context_create: %s: %s", ct_status_str(st), ct_last_error());
    return ctx;
}

ct_context *tu_context(void)
{
    return tu_context_flags(0);
}

uint64_t tu_rng_next(tu_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tu_rng_uniform(tu_rng *r, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(tu_rng_next(r) >> 11) * 0x1.0p-53);
}

void tu_fill_uniform(float *x, size_t n, uint64_t seed, double lo, double hi)
{
    tu_rng r = {seed};
    for (size_t i = 0; i < n; i++)
        x[i] = (float)tu_rng_uniform(&r, lo, hi);
}

ct_tensor *tu_tensor(ct_context *ctx, size_t ndim, const size_t *shape, const float *host)
{
    ct_tensor *t = NULL;
    TU_OK(ct_tensor_create(ctx, ndim, shape, &t));
    if (host)
        TU_OK(ct_tensor_upload(t, host, ct_tensor_numel(t)));
    return t;
}

float *tu_download(const ct_tensor *t)
{
    size_t n = ct_tensor_numel(t);
    float *h = malloc(n * sizeof *h);
    cr_assert(h != NULL);
    TU_OK(ct_tensor_download(t, h, n));
    return h;
}

static float *model_array(ct_model *m, bool buffers)
{
    size_t n = buffers ? ct_model_buffer_numel(m) : ct_model_param_numel(m);
    float *p = malloc((n ? n : 1) * sizeof *p);
    cr_assert(p != NULL);
    if (n)
        TU_OK(buffers ? ct_model_get_buffers(m, p, n) : ct_model_get_params(m, p, n));
    return p;
}

float *tu_model_params(ct_model *m)
{
    return model_array(m, false);
}

float *tu_model_buffers(ct_model *m)
{
    return model_array(m, true);
}

tu_view tu_view_new(ct_context *ctx, size_t off, size_t ndim, const size_t *shape,
                    const float *host)
{
    tu_view v = {NULL, NULL, off, 1};
    for (size_t i = 0; i < ndim; i++)
        v.numel *= shape[i];
    size_t total = off + v.numel + TU_VIEW_PAD;
    float *h = malloc(total * sizeof *h);
    cr_assert(h != NULL);
    for (size_t i = 0; i < total; i++)
        h[i] = TU_CANARY;
    if (host)
        memcpy(h + off, host, v.numel * sizeof *h);
    v.base = tu_tensor(ctx, 1, &total, h);
    TU_OK(ct_tensor_view(v.base, off, ndim, shape, &v.t));
    free(h);
    return v;
}

float *tu_view_get(const char *what, const tu_view *v)
{
    float *all = tu_download(v->base);
    size_t total = v->off + v->numel + TU_VIEW_PAD;
    for (size_t i = 0; i < total; i++)
        if (i < v->off || i >= v->off + v->numel)
            cr_assert(all[i] == TU_CANARY,
                      "%s: element %zd (relative to the view) outside it was overwritten (%g)",
                      what, (ptrdiff_t)i - (ptrdiff_t)v->off, (double)all[i]);
    float *h = malloc((v->numel ? v->numel : 1) * sizeof *h);
    cr_assert(h != NULL);
    memcpy(h, all + v->off, v->numel * sizeof *h);
    free(all);
    return h;
}

void tu_view_free(tu_view *v)
{
    ct_tensor_free(v->t);
    ct_tensor_free(v->base);
    v->t = v->base = NULL;
}

float *tu_rand(size_t n, uint64_t seed, double lo, double hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    tu_fill_uniform(x, n, seed, lo, hi);
    return x;
}

float *tu_nans(size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    cr_assert(x != NULL);
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

double *tu_widen(const float *x, size_t n)
{
    double *d = malloc((n ? n : 1) * sizeof *d);
    cr_assert(d != NULL);
    for (size_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

double *tu_zeros(size_t n)
{
    double *d = calloc(n ? n : 1, sizeof *d);
    cr_assert(d != NULL);
    return d;
}

/* got: got_f or got_d; ref: ref_f or ref_d (the other NULL). */
static void assert_close(const char *what, const float *got_f, const double *got_d,
                         const float *ref_f, const double *ref_d, size_t n, double atol,
                         double rtol)
{
    size_t bad = 0, worst = 0;
    double worst_excess = 0.0;
    for (size_t i = 0; i < n; i++) {
        double got = got_d ? got_d[i] : (double)got_f[i];
        double ref = ref_d ? ref_d[i] : (double)ref_f[i];
        double err = fabs(got - ref);
        double tol = atol + rtol * fabs(ref);
        /* NaN on either side counts as a mismatch unless both are NaN */
        int ok = err <= tol || (isnan(got) && isnan(ref));
        if (!ok) {
            double excess = isnan(err) ? INFINITY : err - tol;
            if (bad == 0 || excess > worst_excess) {
                worst = i;
                worst_excess = excess;
            }
            bad++;
        }
    }
    if (bad) {
        double got = got_d ? got_d[worst] : (double)got_f[worst];
        double ref = ref_d ? ref_d[worst] : (double)ref_f[worst];
        int prec = got_d ? 12 : 9; /* a double result: its digits beyond float's */
        cr_assert_fail("%s: %zu of %zu elements outside atol=%g rtol=%g; worst [%zu]: got %.*g, "
                       "expected %.*g (|diff| %.3g)",
                       what, bad, n, atol, rtol, worst, prec, got, prec, ref, fabs(got - ref));
    }
}

void tu_assert_close(const char *what, const float *got, const double *ref, size_t n,
                     double atol, double rtol)
{
    assert_close(what, got, NULL, NULL, ref, n, atol, rtol);
}

void tu_assert_close_f(const char *what, const float *got, const float *ref, size_t n,
                       double atol, double rtol)
{
    assert_close(what, got, NULL, ref, NULL, n, atol, rtol);
}

void tu_assert_close_d(const char *what, const double *got, const double *ref, size_t n,
                       double atol, double rtol)
{
    assert_close(what, NULL, got, NULL, ref, n, atol, rtol);
}

static char tmpdir[256];

void tu_tmpdir_setup(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/ct_test_XXXXXX", base && *base ? base : "/tmp");
    cr_assert(mkdtemp(tmpdir) != NULL, "mkdtemp %s: %s", tmpdir, strerror(errno));
}

void tu_tmpdir_teardown(void)
{
    if (tmpdir[0])
        tu_rmtree(tmpdir);
    tmpdir[0] = '\0';
}

const char *tu_tmpdir(void)
{
    cr_assert(tmpdir[0] != '\0', "tu_tmpdir: no temporary folder (tu_tmpdir_setup not run)");
    return tmpdir;
}

const char *tu_tmp_path(const char *name)
{
    static char slots[4][512];
    static unsigned next;
    char *p = slots[next++ % 4];
    snprintf(p, sizeof slots[0], "%s/%s", tu_tmpdir(), name);
    return p;
}

void tu_rmtree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            chmod(p, 0700);
            tu_rmtree(p);
        } else {
            unlink(p);
        }
    }
    closedir(d);
    rmdir(dir);
}

void tu_write_file(const char *path, const void *bytes, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f != NULL, "create %s: %s", path, strerror(errno));
    cr_assert(len == 0 || fwrite(bytes, 1, len, f) == len, "write %s: %s", path, strerror(errno));
    cr_assert(fclose(f) == 0, "close %s: %s", path, strerror(errno));
}

void *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "open %s: %s", path, strerror(errno));
    cr_assert(fseek(f, 0, SEEK_END) == 0);
    long n = ftell(f);
    cr_assert(n >= 0, "size of %s: %s", path, strerror(errno));
    cr_assert(fseek(f, 0, SEEK_SET) == 0);
    char *b = malloc((size_t)n + 1);
    cr_assert(b != NULL);
    cr_assert(fread(b, 1, (size_t)n, f) == (size_t)n, "read %s", path);
    fclose(f);
    b[n] = '\0';
    if (len)
        *len = (size_t)n;
    return b;
}
