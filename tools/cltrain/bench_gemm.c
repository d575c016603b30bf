/* cltrain bench: the GEMMs (ct_gemm: CLBlast or kernels/gemm.cl) at the exact shapes of the model's
 * linear layers, and the device memory a training run holds. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"

size_t bench_gemm_shapes(const bench *b, size_t n, bench_gemm_shape *out, size_t cap)
{
    size_t count = 0, fpl = bench_first_param_layer(b);
    for (size_t i = 0; i < b->nlayers; i++) {
        if (b->layers[i].kind != CT_LAYER_LINEAR)
            continue;
        size_t nd, in[3];
        if (bench_layer_input(b, i, &nd, in))
            return (size_t)-1;
        size_t fin = bench_prod(nd, in), fout = b->layers[i].out;
        /* y = x w^T; dx = dy w; dw += dy^T x */
        const bench_gemm_shape g[3] = {{i, "forward", false, true, n, fout, fin, 0.0f},
                                       {i, "grad in", false, false, n, fin, fout, 0.0f},
                                       {i, "grad w", true, false, fout, fin, n, 1.0f}};
        for (size_t j = 0; j < 3; j++) {
            if (j == 1 && i <= fpl)
                continue; /* no input gradient below the first parameter layer */
            if (count < cap)
                out[count] = g[j];
            count++;
        }
    }
    return count;
}

/* Median seconds of one call over --runs runs of 5 calls, after one untimed run (which
 * also pays for CLBlast's compilation). */
static ct_status time_gemm(ct_context *ctx, const bench *b, const bench_gemm_shape *g, double *sec)
{
    ct_status st = CT_SUCCESS;
    ct_tensor *A = NULL, *B = NULL, *C = NULL;
    size_t m = g->m, n = g->n, k = g->k, lda = g->ta ? m : k, ldb = g->tb ? k : n;
    double *t = calloc(b->o.runs, sizeof *t);
    if (!t) {
        st = CT_ERR_OUT_OF_MEMORY;
        goto done;
    }
    if ((st = ct_tensor_create(ctx, 1, (size_t[]){m * k}, &A)) ||
        (st = ct_tensor_create(ctx, 1, (size_t[]){k * n}, &B)) ||
        (st = ct_tensor_create(ctx, 1, (size_t[]){m * n}, &C)) || (st = ct_tensor_fill(A, 0.01f)) ||
        (st = ct_tensor_fill(B, 0.02f)) || (st = ct_tensor_fill(C, 0.0f)))
        goto done;
    for (size_t r = 0; r <= b->o.runs; r++) {
        double t0 = bench_now();
        for (int rep = 0; rep < 5; rep++)
            if ((st = ct_gemm(ctx, g->ta, g->tb, m, n, k, 1.0f, A, lda, B, ldb, g->beta, C, n)))
                goto done;
        if ((st = ct_context_finish(ctx)))
            goto done;
        if (r > 0)
            t[r - 1] = (bench_now() - t0) / 5.0;
    }
    *sec = bench_median(t, b->o.runs);
done:
    ct_tensor_free(A);
    ct_tensor_free(B);
    ct_tensor_free(C);
    free(t);
    return st;
}

int bench_section_gemm(bench *b, ct_context *ctx)
{
    size_t n = b->o.batch;
    char pb[16];
    b->gemm_clblast = ct_gemm_backend(ctx) == CT_GEMM_CLBLAST;
    printf("\nGEMM (%s) at the linear layers' shapes, batch %zu, called as lib/nn/linear.c "
           "does\n(wall clock, median of %zu runs of 5 calls)\n",
           b->gemm_clblast ? "CLBlast" : "kernels/gemm.cl", n, b->o.runs);
    printf("  %-5s %-9s %-16s %-6s %9s %9s %7s\n", "layer", "pass", "m x n x k", "op", "ms",
           "GFLOP/s", "%peak");
    size_t count = bench_gemm_shapes(b, n, NULL, 0);
    bench_gemm_shape *g = count != (size_t)-1 ? calloc(count ? count : 1, sizeof *g) : NULL;
    if (!g)
        return bench_fail("layer shapes");
    bench_gemm_shapes(b, n, g, count);
    for (size_t j = 0; j < count; j++) {
        double sec = 0;
        if (time_gemm(ctx, b, &g[j], &sec)) {
            free(g);
            return bench_fail("gemm");
        }
        double gf = 2.0 * (double)g[j].m * (double)g[j].n * (double)g[j].k / sec * 1e-9;
        char shape[40], item[80];
        snprintf(shape, sizeof shape, "%zux%zux%zu", g[j].m, g[j].n, g[j].k);
        printf("  %-5zu %-9s %-16s %-6s %9.3f %9.1f %7s\n", g[j].layer, g[j].pass, shape,
               g[j].ta   ? "A^T B"
               : g[j].tb ? "A B^T"
                         : "A B",
               sec * 1e3, gf, bench_fmt_pct(pb, sizeof pb, bench_pct(b, gf)));
        snprintf(item, sizeof item, "%zu %s %s", g[j].layer, g[j].pass, shape);
        bench_csv(b, "gemm", item, n, "gflops", gf);
    }
    free(g);
    return 0;
}

/* What ct_model keeps for a batch of n (lib/nn/model.c): every layer output that is not an
 * alias of another (a ReLU fused into the conv/linear before it, a flatten after the first
 * layer), and two gradient buffers, each of the largest layer input or output. */
void bench_section_memory(bench *b, ct_context *ctx, bench_rig *r, const bench_data *d)
{
    const double mib = 1.0 / (1024.0 * 1024.0);
    double params = (double)ct_model_param_numel(r->m), state = 0, saved, gbufs;
    for (size_t i = 0; i < ct_optim_state_count(r->opt); i++) {
        ct_optim_state_info info;
        if (ct_optim_state_info_at(r->opt, i, &info) == CT_SUCCESS && info.dtype == CT_STATE_F32)
            state += (double)info.numel;
    }
    size_t saved_bytes, grad_bytes;
    ct_model_batch_memory(r->m, &saved_bytes, &grad_bytes);
    saved = (double)saved_bytes / 4, gbufs = (double)grad_bytes / 4;
    double input = (double)(ct_tensor_numel(d->x) + ct_tensor_numel(d->y));
    double core = 4.0 * (2 * params + state + saved);
    double in_use = (double)ct_context_mem_in_use(ctx);
    const char *oname = ct_optim_kind_name(b->o.optim);
    printf("\ndevice memory after training at batch %zu (ct_context_mem_in_use; CLBlast's "
           "temporary\nbuffers are its own and not counted there)\n",
           d->n);
    printf("  in use                       %9.2f MiB\n", in_use * mib);
    printf("  parameters                   %9.2f MiB  (%.0f floats)\n", 4 * params * mib, params);
    printf("  gradients                    %9.2f MiB\n", 4 * params * mib);
    printf("  optimizer state (%s)%*s %9.2f MiB\n", oname, (int)(10 - strlen(oname)), "",
           4 * state * mib);
    printf("  saved activations            %9.2f MiB  (layer outputs kept for backward, argmax "
           "bytes)\n",
           4 * saved * mib);
    printf("  sum of these four            %9.2f MiB  = %.0f%% of what is in use\n", core * mib,
           in_use > 0 ? 100.0 * core / in_use : 0.0);
    printf("  gradient buffers (2)         %9.2f MiB\n", 4 * gbufs * mib);
    printf("  input batch                  %9.2f MiB\n", 4 * input * mib);
    printf("  the rest                     %9.2f MiB  (scratch: padded inputs, weight copies, "
           "partial sums)\n",
           (in_use - core - 4 * (gbufs + input)) * mib);
    bench_csv(b, "memory", "in_use", d->n, "bytes", in_use);
    bench_csv(b, "memory", "params_grads_state_activations", d->n, "bytes", core);
    bench_csv(b, "memory", "saved_activations", d->n, "bytes", 4 * saved);
}
