/* kernels/gemm.cl — register-tiled SGEMM for CPU devices (lib/core/gemm.c), where CLBlast
 * has no tuning (PoCL: untuned defaults) and its indirect path adds copy kernels.
 *
 * Row-major, on (buffer, element offset) pairs, `batch` independent products along
 * get_global_id(2) at element strides sa, sb, sc:
 *
 *   gemm_bc:  C[i, j] = alpha * sum_k A[i*sam + k*sak] * B[k*ldb + j] + beta * C[i*csi + j*csj]
 *     B is read in rows (j contiguous): one work-item owns GEMM_MT rows x 16*GEMM_NV
 *     columns of C as float16 accumulators; each k costs GEMM_NV vector loads of B and
 *     GEMM_MT scalar loads of A broadcast to all lanes. A's two strides cover A and A^T,
 *     C's two strides C and C^T, so this one kernel serves every case whose B operand
 *     has contiguous columns (see gemm.c).
 *     global (ceil(M / GEMM_MT), ceil(N / (16*GEMM_NV)), batch): consecutive work-items
 *     share a column slice of B and walk A's rows, so B (a weight gradient's activations,
 *     6.4 MB at batch 512) is read once rather than once per row tile.
 *
 *   gemm_dot: C[i, j] = alpha * sum_k A[i*lda + k] * B[j*ldb + k] + beta * C[i*ldc + j]
 *     both operands with k contiguous (C = A B^T): one work-item owns GEMM_DM x GEMM_DN
 *     dot products with float16 lanes over k, added lane-wise at the end in a fixed tree.
 *     Epilogue (a linear layer's forward): flags bit 0 adds bias[j] (`bias` is read only
 *     then), bit 1 applies ReLU (x < 0 ? 0 : x), both after alpha and beta.
 *     global (ceil(N / GEMM_DN), ceil(M / GEMM_DM), batch): consecutive work-items share
 *     A's rows and walk B's, which stays in cache when it fits (a linear layer's weights).
 *
 * Rows and columns past M and N are computed on clamped indices and not stored; beta == 0
 * never reads C (so NaN there does not leak, as BLAS requires). Every sum runs in a fixed
 * order: the same bits on every run.
 */

#ifndef GEMM_MT
#define GEMM_MT 8
#endif
#ifndef GEMM_NV
#define GEMM_NV 2
#endif
#ifndef GEMM_DM
#define GEMM_DM 4
#endif
#ifndef GEMM_DN
#define GEMM_DN 6
#endif

/* alpha * acc + beta * old, without reading old when beta is 0; one fma, so that the
 * vector epilogue of gemm_bc (gemm_out16) gives the same bits. */
CT_INLINE float gemm_out(const float acc, const float alpha, const float beta,
                         __global const float *old)
{
    return beta == 0.0f ? alpha * acc : fma(beta, *old, alpha * acc);
}

/* gemm_out on 16 consecutive elements of C. */
CT_INLINE float16 gemm_out16(const float16 acc, const float alpha, const float beta,
                             __global const float *old)
{
    const float16 a = (float16)(alpha) * acc;
    return beta == 0.0f ? a : fma((float16)(beta), vload16(0, old), a);
}

__kernel void gemm_bc(CT_CARG(a), CT_CARG(b), CT_ARG(c), const uint M, const uint N,
                      const uint K, const uint sam, const uint sak, const uint ldb,
                      const uint csi, const uint csj, const uint sa, const uint sb,
                      const uint sc, const float alpha, const float beta)
{
    const uint i0 = get_global_id(0) * GEMM_MT;
    const uint j0 = get_global_id(1) * 16 * GEMM_NV;
    const uint e = get_global_id(2);
    if (j0 >= N || i0 >= M)
        return;
    a += a_off + (size_t)e * sa;
    b += b_off + (size_t)e * sb + j0;
    c += c_off + (size_t)e * sc;

    __global const float *ar[GEMM_MT];
#pragma unroll
    for (int t = 0; t < GEMM_MT; t++)
        ar[t] = a + (size_t)min(i0 + t, M - 1) * sam;
    float16 acc[GEMM_MT][GEMM_NV];
#pragma unroll
    for (int t = 0; t < GEMM_MT; t++)
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            acc[t][v] = (float16)(0.0f);

    /* k steps: GEMM_NV vectors of B's row k (LOADB), GEMM_MT broadcasts of A's column k
     * (A_AT(t, k): row t's element k) */
#define GEMM_BC_LOOP(LOADB, A_AT)                                                          \
    for (uint k = 0; k < K; k++) {                                                         \
        float16 bv[GEMM_NV];                                                               \
        LOADB;                                                                             \
        _Pragma("unroll") for (int t = 0; t < GEMM_MT; t++) {                              \
            const float16 as = (float16)(A_AT(t, k));                                      \
            _Pragma("unroll") for (int v = 0; v < GEMM_NV; v++) acc[t][v] =                \
                fma(bv[v], as, acc[t][v]);                                                 \
        }                                                                                  \
    }
#define B_ROW                                                                              \
    _Pragma("unroll") for (int v = 0; v < GEMM_NV; v++) bv[v] = vload16(v, b + (size_t)k * ldb)
    /* the last columns: B's row read up to N only */
#define B_ROW_END                                                                          \
    float tb[16 * GEMM_NV];                                                                \
    for (uint j = 0; j < 16 * GEMM_NV; j++)                                                \
        tb[j] = j < nj ? b[(size_t)k * ldb + j] : 0.0f;                                    \
    _Pragma("unroll") for (int v = 0; v < GEMM_NV; v++) bv[v] = vload16(v, (const float *)tb)
#define A_ROWS(t, k) ar[t][(size_t)(k) * sak]
    /* A^T (a weight gradient's dy^T): the tile's GEMM_MT elements of column k are adjacent,
     * one pointer a step rather than one per row (a full tile only) */
#define A_ADJACENT(t, k) a[i0 + (size_t)(k) * sak + (t)]
    const uint nj = min((uint)(16 * GEMM_NV), N - j0);
    const bool adjacent = sam == 1 && i0 + GEMM_MT <= M;
    if (nj == 16 * GEMM_NV) {
        if (adjacent) {
            GEMM_BC_LOOP(B_ROW, A_ADJACENT)
        } else {
            GEMM_BC_LOOP(B_ROW, A_ROWS)
        }
    } else {
        GEMM_BC_LOOP(B_ROW_END, A_ROWS)
    }
#undef B_ROW
#undef B_ROW_END
#undef A_ROWS
#undef A_ADJACENT
#undef GEMM_BC_LOOP

    if (csj == 1 && nj == 16 * GEMM_NV && i0 + GEMM_MT <= M) {
        /* a full tile with contiguous rows: from the accumulators, one store a vector
         * (through the private array below, LLVM built every tile's rows lane by lane) */
#pragma unroll
        for (int t = 0; t < GEMM_MT; t++) {
            __global float *cr = c + (size_t)(i0 + t) * csi + j0;
#pragma unroll
            for (int v = 0; v < GEMM_NV; v++)
                CT_GSTORE16(gemm_out16(acc[t][v], alpha, beta, cr + 16 * v), cr + 16 * v);
        }
        return;
    }
    /* the last rows or columns, or C^T: element by element */
#pragma unroll
    for (int t = 0; t < GEMM_MT; t++) {
        if (i0 + t >= M)
            continue;
        __global float *cr = c + (size_t)(i0 + t) * csi + (size_t)j0 * csj;
        float o[16 * GEMM_NV];
#pragma unroll
        for (int v = 0; v < GEMM_NV; v++)
            vstore16(acc[t][v], v, o);
        for (uint j = 0; j < nj; j++)
            cr[(size_t)j * csj] = gemm_out(o[j], alpha, beta, cr + (size_t)j * csj);
    }
}

/* Sum of the 16 lanes in a fixed tree order (common.cl's ct_sum16). */
CT_INLINE float gemm_vsum(const float16 v)
{
    return ct_sum16(v);
}

__kernel void gemm_dot(CT_CARG(a), CT_CARG(b), CT_ARG(c), CT_CARG(bias), const uint M,
                       const uint N, const uint K, const uint lda, const uint ldb,
                       const uint ldc, const uint sa, const uint sb, const uint sc,
                       const float alpha, const float beta, const uint flags)
{
    const uint j0 = get_global_id(0) * GEMM_DN;
    const uint i0 = get_global_id(1) * GEMM_DM;
    const uint e = get_global_id(2);
    if (j0 >= N || i0 >= M)
        return;
    a += a_off + (size_t)e * sa;
    b += b_off + (size_t)e * sb;
    c += c_off + (size_t)e * sc;
    bias += bias_off;

    __global const float *ar[GEMM_DM], *br[GEMM_DN];
#pragma unroll
    for (int t = 0; t < GEMM_DM; t++)
        ar[t] = a + (size_t)min(i0 + t, M - 1) * lda;
#pragma unroll
    for (int u = 0; u < GEMM_DN; u++)
        br[u] = b + (size_t)min(j0 + u, N - 1) * ldb;
    float16 acc[GEMM_DM][GEMM_DN];
#pragma unroll
    for (int t = 0; t < GEMM_DM; t++)
#pragma unroll
        for (int u = 0; u < GEMM_DN; u++)
            acc[t][u] = (float16)(0.0f);

    const uint k16 = K / 16 * 16;
    for (uint k = 0; k < k16; k += 16) {
        float16 bv[GEMM_DN];
#pragma unroll
        for (int u = 0; u < GEMM_DN; u++)
            bv[u] = vload16(0, br[u] + k);
#pragma unroll
        for (int t = 0; t < GEMM_DM; t++) {
            const float16 av = vload16(0, ar[t] + k);
#pragma unroll
            for (int u = 0; u < GEMM_DN; u++)
                acc[t][u] = fma(av, bv[u], acc[t][u]);
        }
    }
    /* the last K % 16 products, one by one into lane 0 */
    float tail[GEMM_DM][GEMM_DN];
#pragma unroll
    for (int t = 0; t < GEMM_DM; t++)
#pragma unroll
        for (int u = 0; u < GEMM_DN; u++) {
            float s = 0.0f;
            for (uint k = k16; k < K; k++)
                s = fma(ar[t][k], br[u][k], s);
            tail[t][u] = s;
        }

#pragma unroll
    for (int t = 0; t < GEMM_DM; t++)
#pragma unroll
        for (int u = 0; u < GEMM_DN; u++)
            if (i0 + t < M && j0 + u < N) {
                __global float *co = c + (size_t)(i0 + t) * ldc + j0 + u;
                float v = gemm_out(gemm_vsum(acc[t][u]) + tail[t][u], alpha, beta, co);
                if (flags & 1u)
                    v += bias[j0 + u];
                if (flags & 2u)
                    v = v < 0.0f ? 0.0f : v;
                *co = v;
            }
}
