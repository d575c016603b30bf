/* tests/ops/test_dropout.c — counter-based dropout: the Philox-4x32-10 stream against the
 * Random123 known answers and lib/ref's implementation of the documented stream (exact),
 * mask statistics within binomial bounds, determinism per (seed, counter), 1/(1-p)
 * scaling, the backward reusing the forward's mask, p = 0, in place and argument checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/ops.h"
#include "ref/elem_ref.h"
#include "testutil.h"

/* Random123's kat_vectors, "philox4x32 10" lines: counter, key -> output. */
Test(dropout, philox_known_answers)
{
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int i = 0; i < 3; i++) {
        uint32_t out[4];
        ct_ref_philox4x32_10(kat[i], kat[i] + 4, out);
        for (int j = 0; j < 4; j++)
            cr_assert_eq(out[j], kat[i][6 + j], "vector %d word %d: %08x != %08x", i, j, out[j],
                         kat[i][6 + j]);
    }
}

/* Runs dropout forward on x (n) placed at `off`, returns y. */
static float *run_forward(ct_context *ctx, const float *x, size_t n, size_t off, float p,
                          uint64_t seed, uint64_t counter)
{
    tu_view tx = TU_VIEW(ctx, off, x, n);
    tu_view ty = TU_VIEW(ctx, off + 2, NULL, n);
    TU_OK(ct_dropout_forward(ctx, tx.t, p, seed, counter, ty.t));
    float *y = tu_view_get("dropout y", &ty);
    tu_view_free(&tx), tu_view_free(&ty);
    return y;
}

/* The device mask is the documented stream, bit for bit, and kept values are exactly
 * x * (float)(1/(1-p)) (one float multiplication, so exact equality is the right test). */
Test(dropout, forward_is_the_documented_stream)
{
    ct_context *ctx = tu_context();
    static const size_t sizes[] = {1, 3, 4, 31, 32, 33, 100, 1000, 4097};
    static const float ps[] = {0.1f, 0.5f, 0.9f};
    static const uint64_t seeds[] = {0, 42, 0xdeadbeefcafef00dULL};
    static const uint64_t counters[] = {0, 7, 0x123456789abcULL};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        for (size_t k = 0; k < 3; k++) {
            size_t n = sizes[si];
            float p = ps[(si + k) % 3];
            uint64_t seed = seeds[k], counter = counters[(si + 2 * k) % 3];
            float *x = tu_rand(n, si * 10 + k, -3.0, 3.0);
            unsigned char *keep = malloc(n);
            cr_assert(keep != NULL);
            ct_ref_dropout_mask(n, p, seed, counter, keep);
            float scale = ct_ref_dropout_scale(p);
            float *y = run_forward(ctx, x, n, 1 + si, p, seed, counter);
            for (size_t i = 0; i < n; i++) {
                float want = keep[i] ? x[i] * scale : 0.0f;
                cr_assert(y[i] == want, "n=%zu p=%g seed=%llu counter=%llu: y[%zu] = %.9g, want %.9g",
                          n, (double)p, (unsigned long long)seed, (unsigned long long)counter, i,
                          (double)y[i], (double)want);
            }
            free(x), free(keep), free(y);
        }
    }
    ct_context_free(ctx);
}

/* Keep-fraction statistics on the device's output. With n Bernoulli(1-p) draws, the count
 * K has sd sqrt(n p (1-p)); the bound of 5 sd fails a correct generator with probability
 * ~6e-7 per check (and the inputs are fixed, so it either always passes or never).
 * Checked overall, per position i % 32 (the 8 Philox lanes x 4 words of a work-item:
 * catches a wrong word/lane interleave) and for adjacent pairs (P(both kept) = (1-p)^2). */
Test(dropout, keep_fraction_within_binomial_bounds)
{
    ct_context *ctx = tu_context();
    const size_t n = 320000;
    static const float ps[] = {0.05f, 0.3f, 0.5f, 0.8f};
    float *x = malloc(n * sizeof *x);
    cr_assert(x != NULL);
    for (size_t i = 0; i < n; i++)
        x[i] = 1.0f;
    for (size_t pi = 0; pi < 4; pi++) {
        double p = ps[pi], q = 1.0 - p;
        float *y = run_forward(ctx, x, n, 0, ps[pi], 1234 + pi, 99);
        size_t kept = 0, pos[32] = {0}, pairs = 0;
        for (size_t i = 0; i < n; i++) {
            int k = y[i] != 0.0f;
            kept += (size_t)k;
            pos[i % 32] += (size_t)k;
            if (i % 2 == 0 && k && y[i + 1] != 0.0f)
                pairs++;
        }
        double sd = sqrt((double)n * p * q);
        cr_expect(fabs((double)kept - (double)n * q) <= 5 * sd,
                  "p=%g: kept %zu of %zu, expected %.0f +- %.0f", p, kept, n, n * q, 5 * sd);
        double m = (double)n / 32, sdm = sqrt(m * p * q);
        for (int j = 0; j < 32; j++)
            cr_expect(fabs((double)pos[j] - m * q) <= 5 * sdm,
                      "p=%g: position %d kept %zu of %.0f, expected %.0f +- %.0f", p, j, pos[j],
                      m, m * q, 5 * sdm);
        double np = (double)n / 2, pp = q * q, sdp = sqrt(np * pp * (1 - pp));
        cr_expect(fabs((double)pairs - np * pp) <= 5 * sdp,
                  "p=%g: adjacent kept pairs %zu, expected %.0f +- %.0f", p, pairs, np * pp,
                  5 * sdp);
        /* E[y] = x: the scaling makes dropout unbiased (sd of the mean: sqrt(p/q/n)) */
        double sum = 0.0;
        for (size_t i = 0; i < n; i++)
            sum += y[i];
        double mean_sd = sqrt(p / q / (double)n);
        cr_expect(fabs(sum / (double)n - 1.0) <= 5 * mean_sd, "p=%g: mean of y = %.6f", p,
                  sum / (double)n);
        free(y);
    }
    free(x);
    ct_context_free(ctx);
}

/* Same (seed, counter): the same mask, whatever the view offset. Another counter or seed:
 * a different mask, differing in a fraction 2p(1-p) of places (5 sd bound). */
Test(dropout, determinism_per_seed_and_counter)
{
    ct_context *ctx = tu_context();
    const size_t n = 50000;
    const float p = 0.4f;
    float *x = tu_rand(n, 5, 0.5, 1.5); /* never 0: y == 0 means dropped */
    float *a = run_forward(ctx, x, n, 0, p, 77, 1000);
    float *b = run_forward(ctx, x, n, 11, p, 77, 1000);
    float *c = run_forward(ctx, x, n, 0, p, 77, 1001);
    float *d = run_forward(ctx, x, n, 0, p, 78, 1000);
    float *e = run_forward(ctx, x, n, 0, p, 77 | (1ULL << 40), 1000);
    float *f = run_forward(ctx, x, n, 0, p, 77, 1000 | (1ULL << 40));
    cr_assert(memcmp(a, b, n * sizeof *a) == 0, "same seed and counter gave different outputs");
    const float *others[] = {c, d, e, f};
    const char *names[] = {"counter+1", "seed+1", "seed high bits", "counter high bits"};
    double q = 1.0 - p, expect = 2 * p * q * n, sd = sqrt(n * 2 * p * q * (1 - 2 * p * q));
    for (int k = 0; k < 4; k++) {
        size_t diff = 0;
        for (size_t i = 0; i < n; i++)
            diff += (a[i] != 0.0f) != (others[k][i] != 0.0f);
        cr_expect(fabs((double)diff - expect) <= 5 * sd,
                  "%s: masks differ in %zu places, expected %.0f +- %.0f", names[k], diff, expect,
                  5 * sd);
    }
    free(x), free(a), free(b), free(c), free(d), free(e), free(f);
    ct_context_free(ctx);
}

/* The backward regenerates the forward's mask: dx = dy * scale where y was kept, 0 where
 * it was dropped; also in place (dx aliasing dy), as the model runs it. */
Test(dropout, backward_uses_the_forward_mask)
{
    ct_context *ctx = tu_context();
    const size_t n = 1000 + 37;
    const float p = 0.25f;
    float *x = tu_rand(n, 8, 0.5, 1.5);
    float *dy = tu_rand(n, 9, -2.0, 2.0);
    float *y = run_forward(ctx, x, n, 3, p, 2024, 5);
    tu_view tdy = TU_VIEW(ctx, 7, dy, n);
    tu_view tdx = TU_VIEW(ctx, 1, NULL, n);
    TU_OK(ct_dropout_backward(ctx, tdy.t, p, 2024, 5, tdx.t));
    float *dx = tu_view_get("dx", &tdx);
    TU_OK(ct_dropout_backward(ctx, tdy.t, p, 2024, 5, tdy.t));
    float *dx2 = tu_view_get("dx in place", &tdy);
    float scale = ct_ref_dropout_scale(p);
    for (size_t i = 0; i < n; i++) {
        float want = y[i] != 0.0f ? dy[i] * scale : 0.0f;
        cr_assert(dx[i] == want, "dx[%zu] = %g, want %g (y = %g)", i, (double)dx[i],
                  (double)want, (double)y[i]);
        cr_assert(dx2[i] == want, "in place: dx[%zu] = %g, want %g", i, (double)dx2[i],
                  (double)want);
    }
    free(x), free(dy), free(y), free(dx), free(dx2);
    tu_view_free(&tdy), tu_view_free(&tdx);
    ct_context_free(ctx);
}

/* p = 0 is the identity (a copy), also in place; in-place dropout equals out-of-place. */
Test(dropout, p_zero_and_in_place)
{
    ct_context *ctx = tu_context();
    const size_t n = 333;
    float *x = tu_rand(n, 10, -1.0, 1.0);
    float *y = run_forward(ctx, x, n, 5, 0.0f, 1, 2);
    cr_assert(memcmp(x, y, n * sizeof *x) == 0, "p = 0 is not the identity");
    tu_view t = TU_VIEW(ctx, 3, x, n);
    TU_OK(ct_dropout_forward(ctx, t.t, 0.0f, 1, 2, t.t));
    float *z = tu_view_get("p=0 in place", &t);
    cr_assert(memcmp(x, z, n * sizeof *x) == 0, "p = 0 in place changed x");
    free(z);
    float *ref = run_forward(ctx, x, n, 0, 0.6f, 3, 4);
    TU_OK(ct_dropout_forward(ctx, t.t, 0.6f, 3, 4, t.t));
    z = tu_view_get("in place", &t);
    cr_assert(memcmp(ref, z, n * sizeof *z) == 0, "in-place dropout differs from out-of-place");
    free(x), free(y), free(z), free(ref);
    tu_view_free(&t);
    ct_context_free(ctx);
}

Test(dropout, rejects_bad_p_and_shapes)
{
    ct_context *ctx = tu_context();
    ct_tensor *a = tu_tensor(ctx, TU_SHAPE(10), NULL);
    ct_tensor *b = tu_tensor(ctx, TU_SHAPE(2, 5), NULL);
    ct_tensor *c = tu_tensor(ctx, TU_SHAPE(11), NULL);
    cr_expect_eq(ct_dropout_forward(ctx, a, 1.0f, 0, 0, b), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dropout_forward(ctx, a, -0.1f, 0, 0, b), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dropout_forward(ctx, a, NAN, 0, 0, b), CT_ERR_INVALID_ARG);
    cr_expect_eq(ct_dropout_backward(ctx, a, 0.5f, 0, 0, c), CT_ERR_SHAPE);
    ct_error_clear();
    TU_OK(ct_dropout_forward(ctx, a, 0.5f, 0, 0, b)); /* same numel, other shape: fine */
    ct_tensor_free(a), ct_tensor_free(b), ct_tensor_free(c);
    ct_context_free(ctx);
}
