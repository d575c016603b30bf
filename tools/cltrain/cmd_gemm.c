/* cltrain gemm — one GEMM through ct_gemm on the device, checked against a plain C
 * product, with its speed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_size(const char *opt, const char *v, size_t *out)
{
    char *end = NULL;
    unsigned long long x = v ? strtoull(v, &end, 10) : 0;
    if (!v || end == v || *end || x == 0 || x > 16384) {
        fprintf(stderr, "cltrain gemm: %s expects a whole number from 1 to 16384, got '%s'\n", opt,
                v ? v : "(nothing)");
        return 0;
    }
    *out = (size_t)x;
    return 1;
}

int cli_gemm(int argc, char **argv)
{
    size_t m = 256, n = 256, k = 256;
    int reps = 10;
    const char *device = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0) {
            printf("usage: cltrain gemm [--device D] [--m M] [--n N] [--k K]\n\n"
                   "C(MxN) = A(MxK) B(KxN) on the device (defaults 256) through ct_gemm:\n"
                   "kernels/gemm.cl on CPU devices, CLBlast on GPUs, CLTRAIN_GEMM=own|clblast to\n"
                   "choose; checked against a plain C product; prints the first-call time (kernel\n"
                   "compilation included) and GFLOP/s over 10 repetitions.\n");
            return 0;
        } else if (strcmp(a, "--device") == 0 && v) {
            device = v;
            i++;
        } else if (strcmp(a, "--m") == 0) {
            if (!parse_size(a, v, &m))
                return 2;
            i++;
        } else if (strcmp(a, "--n") == 0) {
            if (!parse_size(a, v, &n))
                return 2;
            i++;
        } else if (strcmp(a, "--k") == 0) {
            if (!parse_size(a, v, &k))
                return 2;
            i++;
        } else {
            fprintf(stderr, "cltrain gemm: unknown option '%s' (see cltrain gemm --help)\n", a);
            return 2;
        }
    }

    int rc = 1;
    ct_status st;
    ct_context *ctx = NULL;
    ct_tensor *a = NULL, *b = NULL, *c = NULL;
    float *ha = malloc(m * k * sizeof *ha), *hb = malloc(k * n * sizeof *hb),
          *hc = malloc(m * n * sizeof *hc);
    if (!ha || !hb || !hc) {
        fprintf(stderr, "cltrain gemm: out of host memory\n");
        goto done;
    }
    for (size_t i = 0; i < m * k; i++)
        ha[i] = (float)((i * 7 + 3) % 13) / 13.0f - 0.5f;
    for (size_t i = 0; i < k * n; i++)
        hb[i] = (float)((i * 5 + 1) % 11) / 11.0f - 0.5f;
    if ((st = cli_context(device, 0, &ctx)) != CT_SUCCESS) {
        rc = cli_fail("opening the device", st);
        goto done;
    }
    printf("device: %s\n", ct_context_device(ctx)->name);
    if ((st = ct_tensor_create(ctx, 2, (size_t[]){m, k}, &a)) ||
        (st = ct_tensor_create(ctx, 2, (size_t[]){k, n}, &b)) ||
        (st = ct_tensor_create(ctx, 2, (size_t[]){m, n}, &c)) ||
        (st = ct_tensor_upload(a, ha, m * k)) || (st = ct_tensor_upload(b, hb, k * n))) {
        rc = cli_fail("allocating", st);
        goto done;
    }
    double t0 = now();
    if ((st = ct_gemm(ctx, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n)) ||
        (st = ct_context_finish(ctx))) {
        rc = cli_fail("gemm", st);
        goto done;
    }
    double first = now() - t0;
    t0 = now();
    for (int r = 0; r < reps; r++)
        if ((st = ct_gemm(ctx, false, false, m, n, k, 1.0f, a, k, b, n, 0.0f, c, n))) {
            rc = cli_fail("gemm", st);
            goto done;
        }
    if ((st = ct_context_finish(ctx)) || (st = ct_tensor_download(c, hc, m * n))) {
        rc = cli_fail("reading the result", st);
        goto done;
    }
    double per = (now() - t0) / reps;
    double worst = 0;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = 0;
            for (size_t p = 0; p < k; p++)
                s += (double)ha[i * k + p] * hb[p * n + j];
            double err = fabs(s - hc[i * n + j]) / (1.0 + fabs(s));
            worst = err > worst ? err : worst;
        }
    printf("gemm %zux%zux%zu: first call %.3f s (compilation included), then %.3f ms = %.1f "
           "GFLOP/s; max relative error vs C %.2e\n",
           m, n, k, first, per * 1e3, 2.0 * m * n * k / per * 1e-9, worst);
    rc = worst < 1e-4 * sqrt((double)k) ? 0 : 1;
    if (rc)
        fprintf(stderr, "cltrain gemm: result differs from the C product\n");
done:
    ct_tensor_free(a);
    ct_tensor_free(b);
    ct_tensor_free(c);
    ct_context_free(ctx);
    free(ha);
    free(hb);
    free(hc);
    return rc;
}
