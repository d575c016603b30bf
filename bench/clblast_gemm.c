/* bench/clblast_gemm.c — CLBlast SGEMM at MiniCNN's linear-layer shapes under several
 * parameter sets, to choose the CPU entries of lib/core/clblast_params.c
 * (the built-in set; `cltrain tune` runs the same kind of search from the tool).
 *
 *   cc -O2 bench/clblast_gemm.c -lclblast -lOpenCL -o clblast_gemm
 *   ./clblast_gemm                      the built-in candidate sets
 *   ./clblast_gemm "Xgemm:MWG=64,NWG=64" "XgemmDirect:WGD=16" ...   sets of one's own
 *
 * Each set starts from cltrain's current CPU parameters (then in lib/core/tune.c), overrides the
 * named values, and is applied with CLBlastOverrideParameters (the cache is cleared first,
 * so the kernels are rebuilt with it). The shapes are those lib/nn/linear.c hands to
 * ct_gemm for MiniCNN's first linear layer at batch 64, row-major:
 *     forward  y  = x w^T     64 x 128 x 3136  (A B^T)
 *     grad in  dx = dy w      64 x 3136 x 128  (A B)
 *     grad w   dw += dy^T x  128 x 3136 x 64   (A^T B, beta 1)
 * Times are wall clock around 5 calls and clFinish; the median of 7 such runs after a
 * warm-up (which pays for the compile). Results are checked against a plain C product.
 * GEMM_SHAPES="M,N,K,TA,TB;M,N,K,TA,TB;M,N,K,TA,TB" times three other shapes instead.
 * The first OpenCL device is used (PoCL here); set POCL_MAX_PTHREAD_COUNT to pin threads.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>
#include <clblast_c.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAXP 16

typedef struct pset {
    const char *kernel;
    size_t n;
    const char *names[MAXP];
    size_t values[MAXP];
} pset;

/* lib/core/tune.c's CPU values at the time of writing */
static pset base[3] = {
    {"Xgemm",
     16,
     {"GEMMK", "KREG", "KWG", "KWI", "MDIMA", "MDIMC", "MWG", "NDIMB", "NDIMC", "NWG", "SA", "SB",
      "STRM", "STRN", "VWM", "VWN"},
     {0, 1, 32, 2, 8, 8, 64, 8, 8, 64, 0, 0, 0, 0, 4, 4}},
    {"XgemmDirect",
     10,
     {"KWID", "MDIMAD", "MDIMCD", "NDIMBD", "NDIMCD", "PADA", "PADB", "VWMD", "VWND", "WGD"},
     {2, 8, 8, 8, 8, 0, 0, 4, 4, 32}},
    {"GemmRoutine", 1, {"XGEMM_MIN_INDIRECT_SIZE"}, {128}},
};

/* Candidates: one line each, "Kernel:NAME=v,NAME=v;Kernel:..." applied on top of base. */
static const char *const candidates[] = {
    "",                                         /* cltrain's current set */
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=4096", /* direct kernel for all three */
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=4096;XgemmDirect:WGD=32,MDIMCD=4,NDIMCD=4,MDIMAD=4,"
    "NDIMBD=4,VWMD=8,VWND=8",
    "GemmRoutine:XGEMM_MIN_INDIRECT_SIZE=4096;XgemmDirect:WGD=64,MDIMCD=8,NDIMCD=8,MDIMAD=8,"
    "NDIMBD=8,VWMD=8,VWND=8,KWID=8",
    "Xgemm:MDIMC=4,NDIMC=4,MDIMA=4,NDIMB=4,VWM=8,VWN=8",
    "Xgemm:MDIMC=4,NDIMC=4,MDIMA=4,NDIMB=4,VWM=16,VWN=4,MWG=64,NWG=64",
    "Xgemm:MDIMC=8,NDIMC=8,MDIMA=8,NDIMB=8,VWM=8,VWN=8,MWG=128,NWG=64,KWG=16",
    "Xgemm:MDIMC=16,NDIMC=4,MDIMA=16,NDIMB=4,VWM=4,VWN=16,MWG=64,NWG=64",
    "Xgemm:KWG=64,KWI=8",
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Applies "Kernel:NAME=v,...;Kernel:..." to a copy of base. */
static int apply(const char *spec, pset *out)
{
    memcpy(out, base, sizeof base);
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *s1 = NULL, *part = strtok_r(buf, ";", &s1); part; part = strtok_r(NULL, ";", &s1)) {
        char *colon = strchr(part, ':');
        if (!colon)
            return -1;
        *colon = '\0';
        pset *p = NULL;
        for (int i = 0; i < 3; i++)
            if (strcmp(out[i].kernel, part) == 0)
                p = &out[i];
        if (!p)
            return -1;
        for (char *s2 = NULL, *kv = strtok_r(colon + 1, ",", &s2); kv;
             kv = strtok_r(NULL, ",", &s2)) {
            char *eq = strchr(kv, '=');
            if (!eq)
                return -1;
            *eq = '\0';
            size_t j = 0;
            while (j < p->n && strcmp(p->names[j], kv) != 0)
                j++;
            if (j == p->n)
                return -1;
            p->values[j] = (size_t)strtoul(eq + 1, NULL, 10);
        }
    }
    return 0;
}

typedef struct shape {
    const char *pass;
    int ta, tb;
    size_t m, n, k;
    float beta;
} shape;

int main(int argc, char **argv)
{
    shape shapes[3] = {{"forward", 0, 1, 64, 128, 3136, 0.0f},
                       {"grad in", 0, 0, 64, 3136, 128, 0.0f},
                       {"grad w", 1, 0, 128, 3136, 64, 1.0f}};
    /* GEMM_SHAPES="M,N,K,TA,TB;..." (three of them) replaces the shapes, e.g. for another
     * model's linear layers or a square check such as 256,256,256,0,0 */
    const char *env = getenv("GEMM_SHAPES");
    for (int s = 0; env && s < 3; s++) {
        unsigned m, n, k;
        int ta, tb;
        if (sscanf(env, "%u,%u,%u,%d,%d", &m, &n, &k, &ta, &tb) != 5 || !m || !n || !k) {
            fprintf(stderr, "GEMM_SHAPES: expected M,N,K,TA,TB;... (three shapes)\n");
            return 2;
        }
        shapes[s] = (shape){"custom", ta, tb, m, n, k, 0.0f};
        env = strchr(env, ';');
        env = env ? env + 1 : NULL;
    }
    cl_platform_id plat;
    cl_device_id dev;
    cl_int e;
    if (clGetPlatformIDs(1, &plat, NULL) ||
        clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev, NULL)) {
        fprintf(stderr, "no OpenCL device\n");
        return 1;
    }
    cl_context ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &e);
    cl_command_queue q = clCreateCommandQueue(ctx, dev, 0, &e);
    size_t big = 0;
    for (int s = 0; s < 3; s++) {
        size_t need =
            shapes[s].m * shapes[s].k + shapes[s].k * shapes[s].n + shapes[s].m * shapes[s].n;
        big = need > big ? need : big;
    }
    cl_mem A = clCreateBuffer(ctx, CL_MEM_READ_WRITE, big * 4, NULL, &e);
    cl_mem B = clCreateBuffer(ctx, CL_MEM_READ_WRITE, big * 4, NULL, &e);
    cl_mem C = clCreateBuffer(ctx, CL_MEM_READ_WRITE, big * 4, NULL, &e);
    float *ha = malloc(big * 4), *hb = malloc(big * 4), *hc = malloc(big * 4);
    for (size_t i = 0; i < big; i++) {
        ha[i] = (float)((i * 7 + 3) % 13) / 13.0f - 0.5f;
        hb[i] = (float)((i * 5 + 1) % 11) / 11.0f - 0.5f;
    }
    clEnqueueWriteBuffer(q, A, CL_TRUE, 0, big * 4, ha, 0, NULL, NULL);
    clEnqueueWriteBuffer(q, B, CL_TRUE, 0, big * 4, hb, 0, NULL, NULL);

    size_t nc = argc > 1 ? (size_t)(argc - 1) : sizeof candidates / sizeof candidates[0];
    printf("%-4s %10s %10s %10s %8s %8s  set\n", "", "forward", "grad in", "grad w", "sum ms",
           "best");
    for (size_t c = 0; c < nc; c++) {
        const char *spec = argc > 1 ? argv[c + 1] : candidates[c];
        pset ps[3];
        if (apply(spec, ps) != 0) {
            fprintf(stderr, "bad set '%s'\n", spec);
            return 2;
        }
        CLBlastClearCache();
        for (int i = 0; i < 3; i++)
            if (CLBlastOverrideParameters(dev, ps[i].kernel, CLBlastPrecisionSingle, ps[i].n,
                                          ps[i].names, ps[i].values) != CLBlastSuccess) {
                fprintf(stderr, "set '%s': CLBlast rejects the %s parameters\n", spec,
                        ps[i].kernel);
                goto next;
            }
        double ms[3], gf[3], sum = 0, best = 0;
        for (int s = 0; s < 3; s++) {
            const shape *g = &shapes[s];
            size_t lda = g->ta ? g->m : g->k, ldb = g->tb ? g->k : g->n;
            double t[7];
            for (int r = 0; r <= 7; r++) {
                double t0 = now();
                for (int rep = 0; rep < 5; rep++) {
                    CLBlastStatusCode st = CLBlastSgemm(
                        CLBlastLayoutRowMajor, g->ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                        g->tb ? CLBlastTransposeYes : CLBlastTransposeNo, g->m, g->n, g->k, 1.0f, A,
                        0, lda, B, 0, ldb, g->beta, C, 0, g->n, &q, NULL);
                    if (st != CLBlastSuccess) {
                        fprintf(stderr, "set '%s': CLBlastSgemm %s: status %d\n", spec, g->pass,
                                (int)st);
                        goto next;
                    }
                }
                clFinish(q);
                if (r > 0)
                    t[r - 1] = (now() - t0) / 5;
            }
            qsort(t, 7, sizeof *t, cmp);
            ms[s] = t[3] * 1e3;
            gf[s] = 2.0 * g->m * g->n * g->k / t[3] * 1e-9;
            sum += ms[s];
            best += t[0] * 1e3;
            /* check one product (beta 0) against C */
            CLBlastSgemm(CLBlastLayoutRowMajor, g->ta ? CLBlastTransposeYes : CLBlastTransposeNo,
                         g->tb ? CLBlastTransposeYes : CLBlastTransposeNo, g->m, g->n, g->k, 1.0f,
                         A, 0, lda, B, 0, ldb, 0.0f, C, 0, g->n, &q, NULL);
            clEnqueueReadBuffer(q, C, CL_TRUE, 0, g->m * g->n * 4, hc, 0, NULL, NULL);
            double worst = 0;
            for (size_t i = 0; i < g->m; i += 7)
                for (size_t j = 0; j < g->n; j += 13) {
                    double acc = 0;
                    for (size_t p = 0; p < g->k; p++)
                        acc += (double)(g->ta ? ha[p * lda + i] : ha[i * lda + p]) *
                               (g->tb ? hb[j * ldb + p] : hb[p * ldb + j]);
                    double err = fabs(acc - hc[i * g->n + j]) / (1 + fabs(acc));
                    worst = err > worst ? err : worst;
                }
            if (worst > 1e-3) {
                fprintf(stderr, "set '%s': %s result wrong (%.2e)\n", spec, g->pass, worst);
                goto next;
            }
        }
        printf("%-4zu %5.2f/%-4.0f %5.2f/%-4.0f %5.2f/%-4.0f %8.3f %8.3f  %s\n", c, ms[0], gf[0],
               ms[1], gf[1], ms[2], gf[2], sum, best, *spec ? spec : "(cltrain's current CPU set)");
        fflush(stdout);
    next:;
    }
    printf("columns: ms/GFLOP/s, median of 7 runs of 5 calls; sum of the medians; sum of the "
           "fastest runs\n");
    return 0;
}
