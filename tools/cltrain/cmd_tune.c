/* cltrain tune — searches CLBlast's GEMM parameters for a device at the GEMM shapes of a
 * model's linear layers and stores the fastest set for the device (cltrain/tune.h); every
 * later cltrain context on that device applies it before its first GEMM.
 *
 * ct_gemm runs CLBlast on GPUs and, with CLTRAIN_GEMM=clblast, on CPU devices (whose
 * default is kernels/gemm.cl): tune times CLBlast whatever CLTRAIN_GEMM says, and where
 * ct_gemm would run kernels/gemm.cl it times that once too, for comparison.
 *
 * Shapes: all GEMMs of one training step, as lib/nn/linear.c calls them (bench_gemm_shapes):
 * per linear layer the forward x w^T, the input gradient dy w (not for the first
 * parameter layer) and the weight gradient dy^T x with beta 1. Small ones are kept: they
 * cost little to time and are the ones CLBlast sends to its direct kernel.
 *
 * Candidates: candidate 0 is the set in use now (the stored file, the built-in CPU set,
 * or CLBlast's own choice), so tuning never picks something slower than what was there.
 * Each further candidate is one change from `changes` below (most promising first) to
 * the best set found so far, so gains in Xgemm (the large products) and XgemmDirect (the
 * small ones) add up. The two cores are shared, so a candidate is compared with the best
 * set timed right after it, on the shapes whose kernel it changes (gain()), and becomes
 * the new best only when two such pairs agree. (WGD=64 for XgemmDirect is not tried: one
 * such set took PoCL 404 s to compile.) Changes that
 * break CLBlast's constraints, or that cannot alter any shape's GEMM (a family no shape uses,
 * assuming CLBlast 1.5's rule that a product goes to the direct kernel when m*n*k <
 * XGEMM_MIN_INDIRECT_SIZE^3), or that repeat a set, are skipped at no cost and not counted by
 * --candidates.
 *
 * Per candidate: CLBlast's kernel cache cleared and the set applied; one untimed call per
 * shape (CLBlast compiles: 10-70 s on PoCL from cold, about a second from PoCL's cache);
 * every shape checked against a double-precision product on the host, canary elements
 * after C included (a wrong candidate is rejected); then --runs runs of 5 calls and a
 * finish per shape, median run. The winner must beat candidate 0 by MARGIN in a final
 * round that times both again, back to back, so noise on a shared machine does not pick
 * a slower set, and must also compute right at odd sizes with every transpose
 * (verify_more) before it is stored.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

#define CMD          "cltrain tune"
#define MARGIN       0.03 /* a winner is kept only when at least 3% faster than candidate 0 */
#define CANARY       64   /* floats after each C, which no GEMM may touch */
#define CANARY_VALUE 1234.5f
#define MAX_SHAPES   48

/* One change per entry, "Family:NAME=v,NAME=v;Family:...", applied to the best set so far;
 * most promising first (bench/README.md has how the built-in set was found). */
static const char *const changes[] = {
    "", /* the built-in set itself, when candidate 0 is CLBlast's own choice */
    /* Xgemm: the large products. First the 2-D register-tiled kernel, which a search on
     * the 2-core Xeon found 14% faster than the built-in set (README, cltrain tune) */
    "Xgemm:GEMMK=1,KWG=1,KWI=1,KREG=8,VWM=16,VWN=4",
    "Xgemm:KWI=4",
    "Xgemm:KWG=32",
    "Xgemm:MWG=128",
    "Xgemm:NWG=128",
    "Xgemm:VWN=16",
    "Xgemm:VWM=16",
    "Xgemm:MDIMC=8,MDIMA=8",
    "Xgemm:NDIMC=8,NDIMB=8",
    "Xgemm:MWG=32",
    "Xgemm:NWG=32",
    "Xgemm:KWI=16",
    "Xgemm:VWM=4",
    "Xgemm:VWN=4",
    "Xgemm:MDIMC=2,MDIMA=2",
    "Xgemm:NDIMC=2,NDIMB=2",
    "Xgemm:STRM=1",
    "Xgemm:STRN=1",
    "Xgemm:MWG=128,NWG=128",
    "Xgemm:KWG=128",
    /* XgemmDirect: the small products */
    "XgemmDirect:MDIMCD=4,NDIMCD=4,MDIMAD=4,NDIMBD=4,VWMD=8,VWND=8",
    "XgemmDirect:WGD=16,MDIMCD=4,NDIMCD=4,MDIMAD=4,NDIMBD=4",
    "XgemmDirect:KWID=8",
    "XgemmDirect:VWMD=2,VWND=2",
    /* where the direct kernel stops */
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=64",
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=256",
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=512",
    ("GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=4096;XgemmDirect:WGD=32,MDIMCD=4,NDIMCD=4,MDIMAD=4,"
     "NDIMBD=4,VWMD=8,VWND=8"),
    /* Xgemm's second kernel (2-D register tiles) */
    "Xgemm:GEMMK=1,KWG=1,KWI=1,KREG=8",
};
#define NCHANGES (sizeof changes / sizeof changes[0])

typedef struct tune_opts {
    bench_opts b; /* model, input, batch, device (what bench's helpers read) */
    size_t budget_s, max_candidates, runs;
    bool dry_run, reset, conv;
    int conv_set; /* --conv-set N: store N without timing; -1: time */
} tune_opts;

typedef struct tshape {
    bench_gemm_shape g;
    size_t lda, ldb;
    ct_tensor *a, *b, *c; /* c: m*n + CANARY */
    float *hc0;           /* C's starting values and canaries */
    double *ref, *mag;    /* m*n: the product in double, and sum |a||b| + |beta c0| */
} tshape;

typedef struct cand {
    char desc[200];
    ct_clblast_params p;
    bool has_params; /* false: candidate 0 while CLBlast chooses its own */
    bool ok;
    char why[300];
    double ms[MAX_SHAPES], total, compile_s;
    double vs; /* gain over the best set timed right after, a fraction of its total (gain()) */
} cand;

static void usage(FILE *to)
{
    fprintf(to,
            "usage: cltrain tune [options]\n"
            "\n"
            "Searches CLBlast's GEMM parameters for the device at the shapes of a model's linear\n"
            "layers (forward, input and weight gradients, at --batch) and stores the fastest\n"
            "set in the cache folder, one file per device; every later cltrain run on the\n"
            "device applies it. Candidate 0 is the set in use now, so the result is never\n"
            "slower. Each candidate is checked against a product on the host. CLBlast compiles\n"
            "every candidate (10-70 s each on PoCL the first time), so a search takes minutes.\n"
            "\n"
            "  --model SPEC       layer spec or builtin name (default minicnn)\n"
            "  --input C,H,W      per-sample input shape, or F for features (default 1,28,28)\n"
            "  --batch N          batch size of the shapes (default 64)\n"
            "  --device D         device index or name substring\n"
            "  --budget S         try no new candidate after S seconds (default 600)\n"
            "  --candidates N     try at most N candidates, candidate 0 included (default: all)\n"
            "  --runs N           timed runs of 5 calls per shape; medians over these (default 7)\n"
            "  --threads T        sets POCL_MAX_PTHREAD_COUNT=T for PoCL's CPU device\n"
            "  --dry-run          measure and print, store nothing\n"
            "  --reset            delete the device's stored file (back to the built-in set)\n"
            "  --conv             instead: time the model's training step with its convolutions\n"
            "                     on cltrain's kernels or as im2col + GEMM (CONV_GEMM 0, 1, 5, 7:\n"
            "                     none, weight gradient, + input gradient, + forward; --runs\n"
            "                     runs of 5 steps each), all at once, then each convolution\n"
            "                     shape on its own with the others fixed; store what beats the\n"
            "                     default by 3%% (twice) for the device and the model's shapes\n"
            "                     (other models' shapes kept); with --reset, delete that file\n"
            "                     (conv-<hash>.txt)\n"
            "  --conv-set N       store CONV_GEMM=N (0..7) for every convolution on the device\n"
            "                     without timing, dropping layer shapes of their own (the\n"
            "                     default value removes the file)\n"
            "\n"
            "The file: $CLTRAIN_CACHE_DIR, else $XDG_CACHE_HOME/cltrain, else ~/.cache/cltrain,\n"
            "named clblast-<hash of device, driver, platform>.txt; 'cltrain devices --verbose'\n"
            "shows which parameters each device uses and why.\n");
}

static int parse_args(int argc, char **argv, tune_opts *o)
{
    memset(o, 0, sizeof *o);
    bench_model_defaults(&o->b);
    o->budget_s = 600;
    o->max_candidates = 1 + NCHANGES;
    o->runs = 7;
    o->conv_set = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t x = 0;
        bool takes = true, ok = true;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (bench_model_option(a, v, &o->b, &ok)) {
            /* --model, --input, --batch, --device, --threads */
        } else if (strcmp(a, "--budget") == 0) {
            ok = bench_parse_uint(v, 0, 7 * 24 * 3600, &o->budget_s);
        } else if (strcmp(a, "--candidates") == 0) {
            ok = bench_parse_uint(v, 1, 1u << 20, &o->max_candidates);
        } else if (strcmp(a, "--runs") == 0) {
            ok = bench_parse_uint(v, 1, 1000, &o->runs);
        } else if (strcmp(a, "--conv-set") == 0) {
            ok = bench_parse_uint(v, 0, 7, &x);
            o->conv_set = (int)x;
            o->conv = true;
        } else {
            takes = false;
            if (strcmp(a, "--dry-run") == 0)
                o->dry_run = true;
            else if (strcmp(a, "--reset") == 0)
                o->reset = true;
            else if (strcmp(a, "--conv") == 0)
                o->conv = true;
            else {
                fprintf(stderr, CMD ": unknown option '%s' (see cltrain tune --help)\n", a);
                return 2;
            }
        }
        if (!ok) {
            fprintf(stderr, CMD ": bad or missing value for %s: '%s'\n", a, v ? v : "(nothing)");
            return 2;
        }
        if (takes)
            i++;
    }
    if (o->reset && o->dry_run) {
        fprintf(stderr, CMD ": --reset and --dry-run do not combine\n");
        return 2;
    }
    if (o->conv_set >= 0 && (o->reset || o->dry_run)) {
        fprintf(stderr, CMD ": --conv-set does not combine with %s\n",
                o->reset ? "--reset" : "--dry-run");
        return 2;
    }
    return -1; /* go on */
}

static int reset(const tune_opts *o)
{
    ct_device_info dev;
    char path[4200];
    if (ct_device_choose(o->b.device, &dev) != CT_SUCCESS ||
        (o->conv ? ct_conv_path_file(&dev, path, sizeof path)
                 : ct_tune_file_path(&dev, path, sizeof path)) != CT_SUCCESS) {
        fprintf(stderr, CMD ": %s\n", ct_last_error());
        return 1;
    }
    if (o->conv) {
        int r = remove(path), e = errno;
        if (r == 0 || e == ENOENT) {
            printf("%s %s: %s uses the default convolution path (CONV_GEMM=%u)\n",
                   r == 0 ? "removed" : "no stored convolution path at", path, dev.name,
                   ct_conv_path_default(&dev));
            return 0;
        }
        fprintf(stderr, CMD ": cannot remove %s: %s\n", path, strerror(e));
        return 1;
    }
    if (remove(path) == 0) {
        printf("removed %s: %s is back to %s\n", path, dev.name,
               dev.is_gpu ? "CLBlast's own parameters" : "the built-in CLBlast parameters");
        return 0;
    }
    if (errno == ENOENT) {
        printf("no stored CLBlast parameters for %s (%s)\n", dev.name, path);
        return 0;
    }
    fprintf(stderr, CMD ": cannot remove %s: %s\n", path, strerror(errno));
    return 1;
}

/* ---- shapes ------------------------------------------------------------------------------ */

static void shape_free(tshape *s)
{
    ct_tensor_free(s->a);
    ct_tensor_free(s->b);
    ct_tensor_free(s->c);
    free(s->hc0);
    free(s->ref);
    free(s->mag);
    memset(s, 0, sizeof *s);
}

/* Device operands with uniform values in [-1, 1), and the product on the host. */
static ct_status shape_make(ct_context *ctx, const bench_gemm_shape *g, uint64_t seed, tshape *s)
{
    ct_status st = CT_SUCCESS;
    size_t m = g->m, n = g->n, k = g->k;
    float *ha = malloc(m * k * sizeof *ha), *hb = malloc(k * n * sizeof *hb);
    memset(s, 0, sizeof *s);
    s->g = *g;
    s->lda = g->ta ? m : k;
    s->ldb = g->tb ? k : n;
    s->hc0 = malloc((m * n + CANARY) * sizeof *s->hc0);
    s->ref = malloc(m * n * sizeof *s->ref);
    s->mag = malloc(m * n * sizeof *s->mag);
    if (!ha || !hb || !s->hc0 || !s->ref || !s->mag) {
        st = CT_ERR_OUT_OF_MEMORY;
        goto done;
    }
    for (size_t i = 0; i < m * k; i++)
        ha[i] = bench_uniform(&seed);
    for (size_t i = 0; i < k * n; i++)
        hb[i] = bench_uniform(&seed);
    for (size_t i = 0; i < m * n + CANARY; i++)
        s->hc0[i] = i < m * n ? bench_uniform(&seed) : CANARY_VALUE;
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0, mag = 0;
            for (size_t p = 0; p < k; p++) {
                double x = g->ta ? ha[p * s->lda + i] : ha[i * s->lda + p];
                double y = g->tb ? hb[j * s->ldb + p] : hb[p * s->ldb + j];
                acc += x * y;
                mag += fabs(x * y);
            }
            double c0 = (double)g->beta * s->hc0[i * n + j];
            s->ref[i * n + j] = acc + c0;
            s->mag[i * n + j] = mag + fabs(c0);
        }
    if ((st = ct_tensor_create(ctx, 1, (size_t[]){m * k}, &s->a)) ||
        (st = ct_tensor_create(ctx, 1, (size_t[]){k * n}, &s->b)) ||
        (st = ct_tensor_create(ctx, 1, (size_t[]){m * n + CANARY}, &s->c)) ||
        (st = ct_tensor_upload(s->a, ha, m * k)) || (st = ct_tensor_upload(s->b, hb, k * n)) ||
        (st = ct_tensor_upload(s->c, s->hc0, m * n + CANARY)))
        goto done;
done:
    free(ha);
    free(hb);
    if (st)
        shape_free(s);
    return st;
}

static ct_status shape_call(ct_context *ctx, tshape *s)
{
    const bench_gemm_shape *g = &s->g;
    return ct_gemm(ctx, g->ta, g->tb, g->m, g->n, g->k, 1.0f, s->a, s->lda, s->b, s->ldb, g->beta,
                   s->c, g->n);
}

/* One product from C's starting values, against the host's. Tolerance: float rounding of
 * a k-term sum stays far below 1e-5 of sum |a||b| at these sizes (~1e-7 relative per
 * term, random signs); a candidate that drops or repeats a tile is off by O(1). */
static int shape_verify(ct_context *ctx, tshape *s, float *host, char *why, size_t cap)
{
    size_t mn = s->g.m * s->g.n;
    if (ct_tensor_upload(s->c, s->hc0, mn + CANARY) || shape_call(ctx, s) ||
        ct_tensor_download(s->c, host, mn + CANARY)) {
        snprintf(why, cap, "%s", ct_last_error());
        return -1;
    }
    for (size_t i = 0; i < mn; i++) {
        double err = fabs((double)host[i] - s->ref[i]);
        if (!(err <= 1e-5 * s->mag[i] + 1e-5)) {
            snprintf(why, cap, "wrong result: C[%zu][%zu] = %g, expected %g", i / s->g.n,
                     i % s->g.n, (double)host[i], s->ref[i]);
            return -1;
        }
    }
    for (size_t i = mn; i < mn + CANARY; i++)
        if (host[i] != CANARY_VALUE) {
            snprintf(why, cap, "wrote past the end of C (element %zu after it)", i - mn);
            return -1;
        }
    return 0;
}

/* Compiles (untimed calls), verifies and times every shape with the parameters in effect. */
static void measure(ct_context *ctx, tshape *s, size_t ns, size_t runs, float *host, cand *c)
{
    double *t = calloc(runs, sizeof *t);
    c->ok = false;
    if (!t) {
        snprintf(c->why, sizeof c->why, "out of host memory");
        return;
    }
    double t0 = bench_now();
    for (size_t i = 0; i < ns; i++)
        if (shape_call(ctx, &s[i]) != CT_SUCCESS) {
            snprintf(c->why, sizeof c->why, "%s", ct_last_error());
            goto done;
        }
    if (ct_context_finish(ctx) != CT_SUCCESS) {
        snprintf(c->why, sizeof c->why, "%s", ct_last_error());
        goto done;
    }
    c->compile_s = bench_now() - t0;
    for (size_t i = 0; i < ns; i++)
        if (shape_verify(ctx, &s[i], host, c->why, sizeof c->why) != 0)
            goto done;
    c->total = 0;
    for (size_t i = 0; i < ns; i++) {
        for (size_t r = 0; r < runs; r++) {
            double r0 = bench_now();
            for (int rep = 0; rep < 5; rep++)
                if (shape_call(ctx, &s[i]) != CT_SUCCESS) {
                    snprintf(c->why, sizeof c->why, "%s", ct_last_error());
                    goto done;
                }
            if (ct_context_finish(ctx) != CT_SUCCESS) {
                snprintf(c->why, sizeof c->why, "%s", ct_last_error());
                goto done;
            }
            t[r] = (bench_now() - r0) / 5.0;
        }
        c->ms[i] = bench_median(t, runs) * 1e3;
        c->total += c->ms[i];
    }
    c->ok = true;
done:
    free(t);
}

/* Before a winner is stored: products at sizes that are no multiple of any tile, through
 * both kernels (2.3 M multiply-adds, above the indirect threshold of 128^3 the built-in
 * set has; and a small one), with every transpose, so a set that is right only at the
 * tuned shapes is not kept. */
static int verify_more(ct_context *ctx, char *why, size_t cap)
{
    static const size_t sizes[2][3] = {{67, 131, 259}, {13, 29, 41}};
    float *host = malloc((67 * 131 + CANARY) * sizeof *host);
    int rc = -1;
    if (!host) {
        snprintf(why, cap, "out of host memory");
        return -1;
    }
    for (int z = 0; z < 2; z++)
        for (int tr = 0; tr < 4; tr++) {
            bench_gemm_shape g = {0,           "check",     (tr & 1) != 0, (tr & 2) != 0,
                                  sizes[z][0], sizes[z][1], sizes[z][2],   tr == 3 ? 1.0f : 0.0f};
            tshape t;
            if (shape_make(ctx, &g, 0xc0ffee + (uint64_t)(4 * z + tr), &t) != CT_SUCCESS) {
                snprintf(why, cap, "%s", ct_last_error());
                goto done;
            }
            int bad = shape_verify(ctx, &t, host, why, cap);
            shape_free(&t);
            if (bad) {
                size_t n = strlen(why);
                snprintf(why + n, cap - n, " (%zux%zux%zu, %s%s)", g.m, g.n, g.k,
                         g.ta ? "A^T" : "A", g.tb ? " B^T" : " B");
                goto done;
            }
        }
    rc = 0;
done:
    free(host);
    return rc;
}

/* ---- candidates -------------------------------------------------------------------------- */

/* Applies "Family:NAME=v,...;Family:..." to *p; -1 on a malformed change. */
static int apply_change(const char *change, ct_clblast_params *p)
{
    char buf[512];
    if (snprintf(buf, sizeof buf, "%s", change) >= (int)sizeof buf)
        return -1;
    for (char *s1 = NULL, *part = strtok_r(buf, ";", &s1); part; part = strtok_r(NULL, ";", &s1)) {
        char *colon = strchr(part, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        for (char *s2 = NULL, *kv = strtok_r(colon + 1, ",", &s2); kv;
             kv = strtok_r(NULL, ",", &s2)) {
            char *eq = strchr(kv, '=');
            size_t v = 0;
            if (!eq)
                return -1;
            *eq = '\0';
            if (!bench_parse_uint(eq + 1, 0, 65536, &v) ||
                ct_clblast_params_set(p, part, kv, v) != CT_SUCCESS)
                return -1;
        }
    }
    return 0;
}

/* "Family:NAME=v,...; Family:..." for the values of p that differ from ref. */
static void describe_diff(const ct_clblast_params *p, const ct_clblast_params *ref, char *buf,
                          size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (int k = 0; k < CT_CLBLAST_KERNEL_COUNT; k++) {
        bool first = true;
        for (size_t i = 0; i < ct_clblast_param_count((ct_clblast_kernel)k) && at < cap; i++) {
            if (p->value[k][i] == ref->value[k][i])
                continue;
            at += (size_t)snprintf(buf + at, cap - at, "%s%s%s%s=%zu", first && at ? "; " : "",
                                   first ? ct_clblast_kernel_name((ct_clblast_kernel)k) : "",
                                   first ? ":" : ",",
                                   ct_clblast_param_name((ct_clblast_kernel)k, i), p->value[k][i]);
            first = false;
        }
    }
    if (!buf[0])
        snprintf(buf, cap, "(the same values as candidate 0)");
}

/* Sets kept out of the search although CLBlast's constraints allow them: per-thread
 * register tiles beyond Xgemm 16x16 (the built-in set) and XgemmDirect 8x8 (a direct
 * tile of 16x16 took PoCL 404 s to compile, and 2-D register tiling with a 16x32 tile made
 * CLBlast's compile die of std::bad_alloc, which ends the process), and the 2-D register
 * tiling kernel (GEMMK=1) outside what CLBlast's own tuner tries for it (KWG = KWI = 1,
 * MWG and NWG up to 64: MWG=128 computed wrong results on PoCL). */
static const char *too_risky(const ct_clblast_params *p)
{
#define X(name) ct_clblast_params_get(p, CT_CLBLAST_XGEMM, name)
#define D(name) ct_clblast_params_get(p, CT_CLBLAST_XGEMM_DIRECT, name)
    if ((X("MWG") / X("MDIMC")) * (X("NWG") / X("NDIMC")) > 256)
        return "Xgemm register tile";
    if ((D("WGD") / D("MDIMCD")) * (D("WGD") / D("NDIMCD")) > 64)
        return "XgemmDirect register tile";
    if (X("GEMMK") == 1 && (X("KWG") != 1 || X("KWI") != 1 || X("MWG") > 64 || X("NWG") > 64))
        return "GEMMK=1 outside CLBlast's tuner range";
#undef X
#undef D
    return NULL;
}

static bool goes_direct(const ct_clblast_params *p, const bench_gemm_shape *g)
{
    double min =
        (double)ct_clblast_params_get(p, CT_CLBLAST_GEMM_ROUTINE, "XGEMM_MIN_INDIRECT_SIZE");
    return (double)g->m * (double)g->n * (double)g->k < min * min * min;
}

static bool family_equal(const ct_clblast_params *a, const ct_clblast_params *b,
                         ct_clblast_kernel k)
{
    for (size_t i = 0; i < ct_clblast_param_count(k); i++)
        if (a->value[k][i] != b->value[k][i])
            return false;
    return true;
}

/* True when every shape runs the same kernel with the same parameters under a and b. */
static bool same_effect(const ct_clblast_params *a, const ct_clblast_params *b, const tshape *s,
                        size_t ns)
{
    for (size_t i = 0; i < ns; i++) {
        bool da = goes_direct(a, &s[i].g), db = goes_direct(b, &s[i].g);
        if (da != db || !family_equal(a, b, da ? CT_CLBLAST_XGEMM_DIRECT : CT_CLBLAST_XGEMM))
            return false;
    }
    return true;
}

/* The saving of `k` over `b` as a fraction of b's total, counting only the shapes whose
 * kernel or parameters differ between sets kp and bp: the others run the same code, and
 * their noise would only blur the comparison. Positive: k is faster. */
static double gain(const cand *k, const cand *b, const ct_clblast_params *kp,
                   const ct_clblast_params *bp, const tshape *s, size_t ns)
{
    double saved = 0;
    for (size_t i = 0; i < ns; i++) {
        bool dk = goes_direct(kp, &s[i].g), db = goes_direct(bp, &s[i].g);
        if (dk != db || !family_equal(kp, bp, dk ? CT_CLBLAST_XGEMM_DIRECT : CT_CLBLAST_XGEMM))
            saved += b->ms[i] - k->ms[i];
    }
    return b->total > 0 ? saved / b->total : NAN;
}

/* k's gain over `base`, applied and timed right after k (NAN if that fails). */
static double against(ct_context *ctx, tshape *s, size_t ns, size_t runs, float *host,
                      const ct_clblast_params *base, const cand *k)
{
    cand b;
    memset(&b, 0, sizeof b);
    if (ct_context_clblast_apply(ctx, base) != CT_SUCCESS)
        return NAN;
    measure(ctx, s, ns, runs, host, &b);
    return b.ok ? gain(k, &b, &k->p, base, s, ns) : NAN;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_table(const cand *c, size_t nc, size_t ns, const tshape *s, size_t chosen)
{
    double flops = 0;
    for (size_t i = 0; i < ns; i++)
        flops += 2.0 * (double)s[i].g.m * (double)s[i].g.n * (double)s[i].g.k;
    printf("\n%-4s", "cand");
    for (size_t i = 0; i < ns; i++) {
        char h[16];
        snprintf(h, sizeof h, "s%zu ms", i + 1);
        printf(" %8s", h);
    }
    printf(" %9s %8s %9s %7s %6s  %s\n", "total ms", "GFLOP/s", "compile s", "vs best", "chosen",
           "set (differences from candidate 0)");
    for (size_t j = 0; j < nc; j++) {
        printf("%-4zu", j);
        if (c[j].ok) {
            for (size_t i = 0; i < ns; i++)
                printf(" %8.3f", c[j].ms[i]);
            char vs[16] = "";
            if (j > 0 && !isnan(c[j].vs))
                snprintf(vs, sizeof vs, "%+.1f%%", -100.0 * c[j].vs);
            printf(" %9.3f %8.1f %9.1f %7s %6s  %s\n", c[j].total, flops / c[j].total * 1e-6,
                   c[j].compile_s, vs, j == chosen ? "*" : "", c[j].desc);
        } else {
            printf(" rejected: %s\n%*s  %s\n", c[j].why, 4, "", c[j].desc);
        }
    }
}

static void shapes_text(const tshape *s, size_t ns, size_t batch, char *buf, size_t cap)
{
    size_t at = (size_t)snprintf(buf, cap, "batch %zu:", batch);
    for (size_t i = 0; i < ns && at < cap; i++)
        at += (size_t)snprintf(buf + at, cap - at, " %zux%zux%zu:%c%c%s", s[i].g.m, s[i].g.n,
                               s[i].g.k, s[i].g.ta ? 'T' : 'N', s[i].g.tb ? 'T' : 'N',
                               s[i].g.beta != 0.0f ? "+C" : "");
}

/* ---- the command -------------------------------------------------------------------------- */

/* ---- --conv: the convolution path ------------------------------------------------------ */

#define CONV_STEPS   5
#define CONV_NVALUES 4

/* What is timed: CONV_GEMM 0, 1, 5, 7 (the passes as GEMMs one by one, in the order they
 * gained on an H200), for every convolution at once, then for one shape at a time. */
static const unsigned conv_values[CONV_NVALUES] = {0, 1, 5, 7};
static const char *const conv_what[CONV_NVALUES] = {"cltrain's kernels", "weight gradient as GEMMs",
                                                    "weight and input gradients as GEMMs",
                                                    "every pass as GEMMs"};

/* The model's distinct convolution shapes, in layer order. */
typedef struct conv_layers {
    size_t n;
    ct_conv_shape shape[CT_CONV_PATH_MAX_LAYERS];
    size_t first[CT_CONV_PATH_MAX_LAYERS]; /* the first layer of each shape */
} conv_layers;

static bool conv_layers_of(const bench *b, conv_layers *cl)
{
    memset(cl, 0, sizeof *cl);
    for (size_t i = 0; i < b->nlayers; i++) {
        const ct_layer_desc *l = &b->layers[i];
        size_t nd = 0, in[3] = {0, 0, 0};
        if (l->kind != CT_LAYER_CONV2D || bench_layer_input(b, i, &nd, in) != CT_SUCCESS)
            continue;
        ct_conv_shape s = {(unsigned)in[0],       (unsigned)in[1],       (unsigned)in[2],
                           (unsigned)l->out,      (unsigned)l->kernel_h, (unsigned)l->kernel_w,
                           (unsigned)l->stride_h, (unsigned)l->stride_w, (unsigned)l->pad_h,
                           (unsigned)l->pad_w,    (unsigned)l->dil_h,    (unsigned)l->dil_w,
                           (unsigned)l->groups};
        bool seen = false;
        for (size_t j = 0; j < cl->n; j++)
            seen = seen || memcmp(&cl->shape[j], &s, sizeof s) == 0;
        if (seen)
            continue;
        if (cl->n == CT_CONV_PATH_MAX_LAYERS)
            return false;
        cl->first[cl->n] = i;
        cl->shape[cl->n++] = s;
    }
    return true;
}

/* `base` with the model's shapes given choice[j] each. */
static ct_status conv_path_with(const ct_conv_path *base, const conv_layers *cl,
                                const unsigned *choice, ct_conv_path *out)
{
    ct_status st = CT_SUCCESS;
    *out = *base;
    for (size_t j = 0; j < cl->n && st == CT_SUCCESS; j++)
        st = ct_conv_path_set(out, &cl->shape[j], choice[j]);
    return st;
}

/* Median ms per training step of the model built under path `cp` (the model reads it when
 * it plans its fusions, the conv ops on every call). */
static ct_status conv_time(ct_context *ctx, const bench *b, const bench_data *d,
                           const ct_conv_path *cp, size_t runs, double *ms)
{
    ct_status st = CT_SUCCESS;
    double t[1000];
    bench_rig r;
    *ms = NAN;
    if ((st = ct_context_set_conv_path(ctx, cp)) != CT_SUCCESS)
        return st;
    if ((st = bench_rig_make(ctx, b, &r)) == CT_SUCCESS) {
        st = bench_time_train(ctx, &r, d, 2, runs, CONV_STEPS, t);
        bench_rig_free(&r);
    }
    if (st == CT_SUCCESS)
        *ms = bench_median(t, runs) * 1e3;
    return st;
}

/* The same with CONV_GEMM=v for every convolution. */
static ct_status conv_time_all(ct_context *ctx, const bench *b, const bench_data *d, unsigned v,
                               size_t runs, double *ms)
{
    ct_conv_path cp;
    ct_conv_path_init(&cp, v);
    return conv_time(ctx, b, d, &cp, runs, ms);
}

/* The same for every shape of the model at choice[]. */
static ct_status conv_time_choice(ct_context *ctx, const bench *b, const bench_data *d,
                                  const conv_layers *cl, const unsigned *choice, size_t runs,
                                  double *ms)
{
    ct_conv_path cp, base;
    ct_conv_path_init(&base, 0);
    ct_status st = conv_path_with(&base, cl, choice, &cp);
    return st ? st : conv_time(ctx, b, d, &cp, runs, ms);
}

/* --conv-set N: the choice stored (or, for the default, the file removed) as given. */
static int conv_set(const tune_opts *o)
{
    ct_device_info dev;
    char path[4200];
    unsigned v = (unsigned)o->conv_set;
    ct_conv_path cp;
    ct_conv_path_init(&cp, v);
    if (ct_device_choose(o->b.device, &dev) != CT_SUCCESS ||
        ct_conv_path_file(&dev, path, sizeof path) != CT_SUCCESS) {
        fprintf(stderr, CMD ": %s\n", ct_last_error());
        return 1;
    }
    if (v == ct_conv_path_default(&dev)) {
        int r = remove(path), e = errno;
        if (r != 0 && e != ENOENT) {
            fprintf(stderr, CMD ": cannot remove %s: %s\n", path, strerror(e));
            return 1;
        }
        printf("CONV_GEMM=%u is the default for %s: nothing stored%s%s\n", v, dev.name,
               r == 0 ? "; removed " : "", r == 0 ? path : "");
        return 0;
    }
    if (ct_conv_path_write(path, &dev, &cp, "set by cltrain tune --conv-set, not measured") !=
        CT_SUCCESS) {
        fprintf(stderr, CMD ": %s\n", ct_last_error());
        return 1;
    }
    printf("stored %s: CONV_GEMM=%u for every convolution on this device, no layer of its own "
           "('cltrain tune --conv --reset' goes back to the default)\n",
           path, v);
    return 0;
}

/* Each shape's own choice, one shape at a time with the others fixed (coordinate
 * descent): every other value is timed; the fastest replaces the current one only when it
 * beats it by MARGIN, and again in a back-to-back pair. choice[] is updated, *cur_ms is the
 * step time of the current choice. */
static int conv_per_layer(ct_context *ctx, const bench *b, const bench_data *d,
                          const conv_layers *cl, size_t runs, unsigned *choice, double *cur_ms)
{
    char name[64], shape[128];
    printf("\nper convolution shape, the others fixed (ms per step; * the choice)\n");
    printf("  %-4s %-20s %-38s", "", "layer", "shape");
    for (size_t i = 0; i < CONV_NVALUES; i++)
        printf("  CONV_GEMM=%u", conv_values[i]);
    printf("\n");
    fflush(stdout);
    for (size_t j = 0; j < cl->n; j++) {
        double ms[CONV_NVALUES];
        size_t best = CONV_NVALUES;
        unsigned trial[CT_CONV_PATH_MAX_LAYERS];
        memcpy(trial, choice, cl->n * sizeof *choice);
        for (size_t i = 0; i < CONV_NVALUES; i++) {
            ms[i] = *cur_ms;
            if (conv_values[i] == choice[j])
                continue;
            trial[j] = conv_values[i];
            fprintf(stderr, CMD ": layer %zu, CONV_GEMM=%u...\n", cl->first[j], conv_values[i]);
            if (conv_time_choice(ctx, b, d, cl, trial, runs, &ms[i]) != CT_SUCCESS)
                return cli_fail("a training step", CT_ERR_INVALID_ARG);
            if (best == CONV_NVALUES || ms[i] < ms[best])
                best = i;
        }
        trial[j] = conv_values[best];
        const unsigned was = choice[j];
        double again_cur = *cur_ms, again_trial = ms[best];
        const bool recheck = ms[best] < (1.0 - MARGIN) * *cur_ms;
        if (recheck && (conv_time_choice(ctx, b, d, cl, choice, runs, &again_cur) != CT_SUCCESS ||
                        conv_time_choice(ctx, b, d, cl, trial, runs, &again_trial) != CT_SUCCESS))
            return cli_fail("a training step", CT_ERR_INVALID_ARG);
        if (recheck && again_trial < (1.0 - MARGIN) * again_cur) {
            choice[j] = conv_values[best];
            *cur_ms = again_trial;
        }
        bench_layer_name(b, cl->first[j], name, sizeof name);
        ct_conv_shape_format(&cl->shape[j], shape, sizeof shape);
        printf("  %-4zu %-20.20s %-38.38s", cl->first[j], name, shape);
        for (size_t i = 0; i < CONV_NVALUES; i++)
            printf("  %10.3f%s", ms[i], conv_values[i] == choice[j] ? "*" : " ");
        if (recheck)
            printf("  (back to back: CONV_GEMM=%u %.3f, %u %.3f)", conv_values[best], again_trial,
                   was, again_cur);
        printf("\n");
        fflush(stdout);
    }
    return 0;
}

/* --conv: round 1 times CONV_GEMM 0, 1, 5, 7 for every convolution at once (the winner
 * must beat the default by MARGIN in the table and back to back); round 2, with two or
 * more shapes, gives each shape its own from there (conv_per_layer). The result: the
 * stored path with the round-1 value for every convolution not listed, this model's shapes
 * listed with their choices, other models' shapes kept. */
static int tune_conv(const tune_opts *o)
{
    if (o->conv_set >= 0)
        return conv_set(o);
    int rc = 1;
    bench b;
    bench_data d = {0};
    ct_context *ctx = NULL;
    conv_layers cl;
    ct_conv_path stored, result;
    char path[4200] = "", source[1400], measured[CT_TUNE_LINE_MAX], shape[128];
    const char *user = getenv("CLTRAIN_TUNE");
    memset(&b, 0, sizeof b);
    b.o = o->b;
    b.o.optim = CT_OPTIM_ADAM;
    b.o.lr = 1e-3;
    b.o.seed = 1;
    if (user && strstr(user, "-DCONV_GEMM=")) {
        fprintf(stderr, CMD ": CLTRAIN_TUNE sets CONV_GEMM, which overrides every choice "
                            "--conv would time: unset it first\n");
        return 2;
    }
    size_t ond = 0, oshape[3] = {0};
    if (ct_spec_parse(b.o.model, &b.layers, &b.nlayers) != CT_SUCCESS ||
        ct_layers_check(b.layers, b.nlayers, b.o.in_ndim, b.o.in_shape, &ond, oshape, NULL) !=
            CT_SUCCESS) {
        fprintf(stderr, CMD ": model: %s\n", ct_last_error());
        rc = 2;
        goto done;
    }
    if (!conv_layers_of(&b, &cl)) {
        fprintf(stderr, CMD ": the model has more than %d distinct convolution shapes\n",
                CT_CONV_PATH_MAX_LAYERS);
        rc = 2;
        goto done;
    }
    if (cl.n == 0 || ond != 1 || oshape[0] < 2) {
        fprintf(stderr, CMD ": %s\n",
                cl.n == 0 ? "the model has no convolution: no path to choose"
                          : "the model must end in (N, classes) with at least 2 classes");
        rc = 2;
        goto done;
    }
    b.classes = oshape[0];
    if (cli_context(b.o.device, 0, &ctx) != CT_SUCCESS) {
        rc = cli_fail("opening the device", CT_ERR_NO_DEVICE);
        goto done;
    }
    const ct_device_info *dev = ct_context_device(ctx);
    if (ct_conv_path_file(dev, path, sizeof path) != CT_SUCCESS) {
        if (!o->dry_run) {
            fprintf(stderr,
                    CMD ": nowhere to store the result: %s (use --dry-run to only measure)\n",
                    ct_last_error());
            goto done;
        }
        snprintf(path, sizeof path, "(none: no cache folder)");
    }
    ct_conv_path_resolve(dev, &stored, source, sizeof source);
    unsigned dflt = ct_conv_path_default(dev);
    if (bench_data_make(ctx, &b, b.o.batch, 7, &d) != CT_SUCCESS) {
        rc = cli_fail("preparing the data", CT_ERR_OUT_OF_MEMORY);
        goto done;
    }
    printf("cltrain tune --conv: the convolution path for %s\n", dev->name);
    printf("  platform %s, driver %s\n", dev->platform, dev->driver);
    printf("  model %s, input (%zu", b.o.model, b.o.in_shape[0]);
    for (size_t i = 1; i < b.o.in_ndim; i++)
        printf(",%zu", b.o.in_shape[i]);
    printf("), batch %zu, Adam; median of %zu runs of %d training steps\n", b.o.batch, o->runs,
           CONV_STEPS);
    printf("  in use now: %s\n", source);
    printf("  stores to: %s%s\n\n", path, o->dry_run ? " (not with --dry-run)" : "");
    printf("every convolution at once\nCONV_GEMM  ms/step  vs default  what\n");
    fflush(stdout);

    /* 1. every convolution at once */
    double ms[CONV_NVALUES];
    size_t best = 0, idflt = 0;
    for (size_t i = 0; i < CONV_NVALUES; i++) {
        if (conv_values[i] == dflt)
            idflt = i;
        fprintf(stderr, CMD ": CONV_GEMM=%u...\n", conv_values[i]);
        if (conv_time_all(ctx, &b, &d, conv_values[i], o->runs, &ms[i]) != CT_SUCCESS) {
            rc = cli_fail("a training step", CT_ERR_INVALID_ARG);
            goto done;
        }
        if (ms[i] < ms[best])
            best = i;
    }
    for (size_t i = 0; i < CONV_NVALUES; i++)
        printf("%-9u  %7.3f  %+9.1f%%  %s%s\n", conv_values[i], ms[i],
               100.0 * (ms[i] - ms[idflt]) / ms[idflt], conv_what[i],
               i == idflt ? " (default)" : "");
    /* the winner must beat the default by MARGIN again, timed back to back */
    double again_best = ms[best], again_dflt = ms[idflt];
    if (best != idflt &&
        (conv_time_all(ctx, &b, &d, dflt, o->runs, &again_dflt) != CT_SUCCESS ||
         conv_time_all(ctx, &b, &d, conv_values[best], o->runs, &again_best) != CT_SUCCESS)) {
        rc = cli_fail("a training step", CT_ERR_INVALID_ARG);
        goto done;
    }
    unsigned chosen = dflt;
    double cur_ms = again_dflt;
    if (best != idflt && again_best < (1.0 - MARGIN) * again_dflt &&
        ms[best] < (1.0 - MARGIN) * ms[idflt]) {
        chosen = conv_values[best];
        cur_ms = again_best;
    }
    if (best != idflt)
        printf("timed again, back to back: CONV_GEMM=%u %.3f ms, the default %.3f ms (%+.1f%%)\n",
               conv_values[best], again_best, again_dflt,
               100.0 * (again_best - again_dflt) / again_dflt);

    /* 2. each shape its own, from there (with one shape, step 1 said it all) */
    unsigned choice[CT_CONV_PATH_MAX_LAYERS];
    for (size_t j = 0; j < cl.n; j++)
        choice[j] = chosen;
    double uniform_ms = cur_ms;
    if (cl.n > 1 && (rc = conv_per_layer(ctx, &b, &d, &cl, o->runs, choice, &cur_ms)) != 0)
        goto done;
    rc = 1;

    /* the result: the stored path with this model's shapes set (other models' kept) and
     * CONV_GEMM for the rest from step 1 */
    result = stored;
    result.conv_gemm = chosen;
    if (conv_path_with(&result, &cl, choice, &result) != CT_SUCCESS) {
        fprintf(stderr, CMD ": %s\n", ct_last_error());
        goto done;
    }
    bool own = false, other = false;
    for (size_t j = 0; j < cl.n; j++)
        own = own || choice[j] != chosen;
    for (size_t i = 0; i < result.nlayers; i++)
        other = other || result.layer_gemm[i] != dflt;
    int n = snprintf(measured, sizeof measured,
                     "%s batch %zu: CONV_GEMM=0 %.3f, 1 %.3f, 5 %.3f, 7 %.3f ms", b.o.model,
                     b.o.batch, ms[0], ms[1], ms[2], ms[3]);
    if (own && n > 0 && (size_t)n < sizeof measured)
        snprintf(measured + n, sizeof measured - (size_t)n, "; per layer %.3f ms", cur_ms);
    printf("\nchosen: CONV_GEMM=%u", chosen);
    for (size_t j = 0; j < cl.n; j++)
        if (choice[j] != chosen) {
            ct_conv_shape_format(&cl.shape[j], shape, sizeof shape);
            printf("; layer %zu (%s) CONV_GEMM=%u", cl.first[j], shape, choice[j]);
        }
    if (own)
        printf(" (%.3f ms per step, %.3f with CONV_GEMM=%u throughout)", cur_ms, uniform_ms,
               chosen);
    printf("\n");
    if (o->dry_run) {
        printf("--dry-run: nothing stored\n");
        rc = 0;
        goto done;
    }
    if (chosen == dflt && !other) {
        int r = remove(path), e = errno;
        if (r != 0 && e != ENOENT) {
            fprintf(stderr, CMD ": cannot remove %s: %s\n", path, strerror(e));
            goto done;
        }
        printf("the default (CONV_GEMM=%u) is fastest, or within %.0f%%: nothing stored%s%s\n",
               dflt, MARGIN * 100, r == 0 ? "; removed " : "", r == 0 ? path : "");
    } else {
        if (ct_conv_path_write(path, dev, &result, measured) != CT_SUCCESS) {
            fprintf(stderr, CMD ": %s\n", ct_last_error());
            goto done;
        }
        printf("stored %s: CONV_GEMM=%u, and %zu layer shape%s of this model and others "
               "('cltrain tune --conv --reset' goes back to the default)\n",
               path, chosen, result.nlayers, result.nlayers == 1 ? "" : "s");
    }
    rc = 0;
done:
    bench_data_free(&d);
    free(b.layers);
    ct_context_free(ctx);
    return rc;
}

int cli_tune(int argc, char **argv)
{
    tune_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (o.reset)
        return reset(&o);
    if (o.conv)
        return tune_conv(&o);

    bench b;
    memset(&b, 0, sizeof b);
    b.o = o.b;
    rc = 1;
    ct_context *ctx = NULL;
    tshape s[MAX_SHAPES];
    size_t ns = 0, nc = 0, skipped = 0;
    cand *c = calloc(1 + NCHANGES, sizeof *c);
    float *host = NULL;
    char path[4200] = "", shapes[CT_TUNE_LINE_MAX];
    memset(s, 0, sizeof s);
    if (!c) {
        fprintf(stderr, CMD ": out of host memory\n");
        goto done;
    }
    if (ct_spec_parse(b.o.model, &b.layers, &b.nlayers) != CT_SUCCESS ||
        ct_layers_check(b.layers, b.nlayers, b.o.in_ndim, b.o.in_shape, NULL, NULL, NULL) !=
            CT_SUCCESS) {
        fprintf(stderr, CMD ": model: %s\n", ct_last_error());
        rc = 2;
        goto done;
    }
    bench_gemm_shape g[MAX_SHAPES];
    size_t count = bench_gemm_shapes(&b, b.o.batch, g, MAX_SHAPES);
    if (count == 0 || count > MAX_SHAPES) {
        fprintf(stderr, CMD ": %s\n",
                count == 0 ? "the model has no linear layer: no GEMM to tune"
                           : "the model has more linear layers than tune handles (16)");
        rc = 2;
        goto done;
    }
    if (cli_context(b.o.device, 0, &ctx) != CT_SUCCESS) {
        rc = cli_fail("opening the device", CT_ERR_NO_DEVICE);
        goto done;
    }
    const ct_device_info *dev = ct_context_device(ctx);
    if (ct_tune_file_path(dev, path, sizeof path) != CT_SUCCESS) {
        if (!o.dry_run) {
            fprintf(stderr,
                    CMD ": nowhere to store the result: %s (use --dry-run to only "
                        "measure)\n",
                    ct_last_error());
            goto done;
        }
        snprintf(path, sizeof path, "(none: no cache folder)");
    }
    size_t maxmn = 0;
    for (; ns < count; ns++) {
        if (shape_make(ctx, &g[ns], 0x5eed + ns, &s[ns]) != CT_SUCCESS) {
            rc = cli_fail("preparing the operands", CT_ERR_OUT_OF_MEMORY);
            goto done;
        }
        maxmn = g[ns].m * g[ns].n > maxmn ? g[ns].m * g[ns].n : maxmn;
    }
    host = malloc((maxmn + CANARY) * sizeof *host);
    if (!host) {
        fprintf(stderr, CMD ": out of host memory\n");
        goto done;
    }
    shapes_text(s, ns, b.o.batch, shapes, sizeof shapes);

    printf("cltrain tune: CLBlast %s GEMM parameters for %s\n", ct_clblast_version(), dev->name);
    printf("  platform %s, driver %s\n", dev->platform, dev->driver);
    printf("  model %s, input (%zu", b.o.model, b.o.in_shape[0]);
    for (size_t i = 1; i < b.o.in_ndim; i++)
        printf(",%zu", b.o.in_shape[i]);
    printf("), batch %zu: %zu GEMMs per training step\n", b.o.batch, ns);
    for (size_t i = 0; i < ns; i++)
        printf("    s%-3zu layer %-3zu %-8s %5zu x %5zu x %5zu  %s%s\n", i + 1, s[i].g.layer,
               s[i].g.pass, s[i].g.m, s[i].g.n, s[i].g.k,
               s[i].g.ta   ? "A^T B"
               : s[i].g.tb ? "A B^T"
                           : "A B",
               s[i].g.beta != 0.0f ? " + C" : "");
    bool own = ct_gemm_backend(ctx) != CT_GEMM_CLBLAST;
    if (own)
        printf("  GEMM: ct_gemm runs kernels/gemm.cl on this device; CLBlast, and so these\n"
               "    parameters, only with CLTRAIN_GEMM=clblast. Timed here: CLBlast, and\n"
               "    kernels/gemm.cl once for comparison\n");
    printf("  in use now: %s\n", ct_context_clblast_source(ctx));
    printf("  stores to: %s%s\n", path, o.dry_run ? " (not with --dry-run)" : "");
    printf("  budget %zu s, at most %zu candidates, median of %zu runs of 5 calls per shape\n",
           o.budget_s, o.max_candidates, o.runs);
    fflush(stdout);

    /* kernels/gemm.cl, for comparison, where ct_gemm runs it; then CLBlast whatever
     * CLTRAIN_GEMM said (ct_gemm reads it on every call) */
    cand ownk;
    memset(&ownk, 0, sizeof ownk);
    if (own) {
        fprintf(stderr, CMD ": kernels/gemm.cl, for comparison...\n");
        measure(ctx, s, ns, o.runs, host, &ownk);
    }
    if (setenv("CLTRAIN_GEMM", "clblast", 1) != 0) {
        fprintf(stderr, CMD ": cannot set CLTRAIN_GEMM\n");
        goto done;
    }

    /* candidate 0: what the context uses now */
    double start = bench_now();
    c[0].has_params = ct_context_clblast_params(ctx, &c[0].p);
    snprintf(c[0].desc, sizeof c[0].desc, "in use now: %s", ct_context_clblast_source(ctx));
    fprintf(stderr, CMD ": candidate 0 (the set in use now)...\n");
    measure(ctx, s, ns, o.runs, host, &c[0]);
    nc = 1;
    if (!c[0].ok) {
        fprintf(stderr, CMD ": the GEMMs fail with the parameters in use now: %s\n", c[0].why);
        goto done;
    }
    fprintf(stderr, CMD ": candidate 0: %.3f ms (first calls %.1f s)\n", c[0].total,
            c[0].compile_s);

    /* hill climbing from the set in use (the built-in one when CLBlast chooses its own) */
    size_t best = 0;
    ct_clblast_params base = c[0].p;
    if (!c[0].has_params)
        ct_clblast_params_builtin(&base);
    const ct_clblast_params ref = base; /* descriptions are differences from this */
    for (size_t ch = 0; ch < NCHANGES && nc < o.max_candidates; ch++) {
        double elapsed = bench_now() - start;
        if (elapsed >= (double)o.budget_s) {
            fprintf(stderr, CMD ": budget of %zu s spent after %zu candidates\n", o.budget_s, nc);
            break;
        }
        cand *k = &c[nc];
        memset(k, 0, sizeof *k);
        k->p = base;
        k->has_params = true;
        if (apply_change(changes[ch], &k->p) != 0 || ct_clblast_params_check(&k->p) != CT_SUCCESS ||
            too_risky(&k->p)) {
            skipped++;
            continue;
        }
        bool repeat = false;
        for (size_t j = 0; j < nc && !repeat; j++)
            repeat = c[j].has_params && same_effect(&c[j].p, &k->p, s, ns);
        if (repeat) {
            skipped++;
            continue;
        }
        if (!*changes[ch])
            snprintf(k->desc, sizeof k->desc, "the built-in set");
        else
            describe_diff(&k->p, &ref, k->desc, sizeof k->desc);
        fprintf(stderr, CMD ": [%.0f s of %zu] candidate %zu: %s: compiling...\n", elapsed,
                o.budget_s, nc, k->desc);
        if (ct_context_clblast_apply(ctx, &k->p) != CT_SUCCESS)
            snprintf(k->why, sizeof k->why, "%s", ct_last_error());
        else
            measure(ctx, s, ns, o.runs, host, k);
        if (!k->ok) {
            fprintf(stderr, CMD ": candidate %zu rejected: %s\n", nc, k->why);
            nc++;
            continue;
        }
        /* against the best set so far, timed right after it so that a change in the load
         * hits both; a gain is timed once more, pair by pair, before the climb moves */
        k->vs = against(ctx, s, ns, o.runs, host, &base, k);
        if (k->vs > MARGIN && ct_context_clblast_apply(ctx, &k->p) == CT_SUCCESS) {
            cand k2;
            memset(&k2, 0, sizeof k2);
            k2.p = k->p;
            measure(ctx, s, ns, o.runs, host, &k2);
            double vs2 = k2.ok ? against(ctx, s, ns, o.runs, host, &base, &k2) : NAN;
            k->vs = isnan(vs2) ? vs2 : fmin(k->vs, vs2);
        }
        bool better = k->vs > MARGIN;
        fprintf(stderr,
                CMD ": candidate %zu: %.3f ms (first calls %.1f s), %+.1f%% against the best so "
                    "far%s\n",
                nc, k->total, k->compile_s, -100.0 * k->vs, better ? ": the new best" : "");
        if (better) {
            best = nc;
            base = k->p;
        }
        nc++;
    }

    /* the final round: candidate 0 and the winner again, back to back; each keeps its
     * fastest time per shape, the search's included; the winner is kept when its gain on
     * the shapes it changes is over MARGIN of the total */
    size_t chosen = 0;
    cand fin[2];
    fin[0] = c[0];
    fin[1] = c[best];
    if (best != 0) {
        fprintf(stderr, CMD ": timing candidates 0 and %zu again, back to back...\n", best);
        for (int r = 0; r < 2; r++)
            for (int w = 0; w < 2; w++) {
                const cand *src = w ? &c[best] : &c[0];
                cand t;
                memset(&t, 0, sizeof t);
                if (!src->has_params || ct_context_clblast_apply(ctx, &src->p) != CT_SUCCESS)
                    continue;
                measure(ctx, s, ns, o.runs, host, &t);
                if (!t.ok)
                    continue;
                fin[w].total = 0;
                for (size_t i = 0; i < ns; i++) {
                    fin[w].ms[i] = fmin(fin[w].ms[i], t.ms[i]);
                    fin[w].total += fin[w].ms[i];
                }
            }
        double g = gain(&fin[1], &fin[0], &c[best].p, &c[0].p, s, ns);
        if (!c[0].has_params)
            g = (fin[0].total - fin[1].total) / fin[0].total;
        if (g > MARGIN) {
            char why[300];
            if (ct_context_clblast_apply(ctx, &c[best].p) != CT_SUCCESS ||
                verify_more(ctx, why, sizeof why) != 0)
                fprintf(stderr, CMD ": candidate %zu fails at other shapes, kept candidate 0: %s\n",
                        best, why);
            else
                chosen = best;
        }
    }
    print_table(c, nc, ns, s, chosen);
    printf("(%zu candidates timed, %zu changes skipped: they break CLBlast's constraints, leave "
           "the safe range (too_risky in cmd_tune.c) or change no shape's kernel; %.0f s)\n",
           nc, skipped, bench_now() - start);
    if (best != 0) {
        printf("\nfinal round, back to back (fastest of the search and two more runs each):\n");
        for (int w = 0; w < 2; w++) {
            printf("%-4zu", w ? best : (size_t)0);
            for (size_t i = 0; i < ns; i++)
                printf(" %8.3f", fin[w].ms[i]);
            printf(" %9.3f%s\n", fin[w].total, w ? "" : "  (the set in use now)");
        }
    }
    if (own) {
        printf("\nkernels/gemm.cl (ct_gemm's default here), the same shapes:\n");
        if (ownk.ok) {
            printf("%-4s", "own");
            for (size_t i = 0; i < ns; i++)
                printf(" %8.3f", ownk.ms[i]);
            printf(" %9.3f\n", ownk.total);
        } else {
            printf("  failed: %s\n", ownk.why);
        }
    }
    printf("\n%s: candidate %zu, %.3f ms for the step's GEMMs against %.3f ms for candidate 0 "
           "(%+.1f%%)\n",
           chosen ? "chosen" : "kept the set in use", chosen, fin[chosen ? 1 : 0].total,
           fin[0].total, 100.0 * (fin[chosen ? 1 : 0].total - fin[0].total) / fin[0].total);
    if (c[chosen].has_params) {
        char lines[1024];
        if (ct_clblast_params_format(&c[chosen].p, lines, sizeof lines) == CT_SUCCESS)
            printf("%s", lines);
    }
    if (o.dry_run) {
        printf("--dry-run: nothing stored\n");
    } else if (!c[chosen].has_params) {
        printf("CLBlast's own parameters were fastest: nothing stored\n");
    } else if (ct_tune_file_write(path, dev, &c[chosen].p, shapes) != CT_SUCCESS) {
        fprintf(stderr, CMD ": storing the result: %s\n", ct_last_error());
        goto done;
    } else {
        printf("stored %s: used by every cltrain run on this device from now on\n"
               "('cltrain tune --reset' goes back to the built-in set)\n",
               path);
    }
    rc = 0;
done:
    for (size_t i = 0; i < ns; i++)
        shape_free(&s[i]);
    ct_context_free(ctx);
    free(b.layers);
    free(host);
    free(c);
    return rc;
}
