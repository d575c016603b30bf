/* kernels/dropout.cl — training-mode dropout with a counter-based RNG; the mask is never
 * stored, the backward regenerates it from the same (seed, counter).
 *
 * The stream (the contract that makes masks identical on every device; lib/ref/elem_ref.c
 * implements the same in C):
 *   - Generator: Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, SC'11; Random123's philox4x32
 *     with 10 rounds), key = {seed low 32 bits, seed high 32 bits}.
 *   - Element i (0-based, the logical index in the flattened tensor, independent of the
 *     view offset) uses word i % 4 of the block
 *         philox(ctr = {i / 4, 0, counter low 32 bits, counter high 32 bits}, key).
 *     (The second counter word is the high half of i / 4, always 0 since n < 2^32.)
 *   - The element is kept when that word < thr, thr = floor((1 - p) * 2^32) computed on
 *     the host in double (clamped to 2^32 - 1), so keep has probability (1 - p) up to 2^-32
 *     and the decision is integer-exact everywhere.
 *   - out = in * (keep ? scale : 0), scale = (float)(1 / (1 - p)) computed in double.
 * Forward (in = x, out = y) and backward (in = dy, out = dx) are the same kernel.
 *
 * Layout: in, out are n contiguous floats (buffer + element offset, may alias). Work-item
 * g owns 8 Philox blocks = elements [32g, 32g + 32): it runs the 8 blocks as the 8 lanes of
 * uint8 vectors (PoCL does not vectorize across work-items), then applies the mask with
 * float8 loads; the last work-item handles a partial chunk element by element.
 */

#define CT_PHILOX_M0 0xD2511F53u
#define CT_PHILOX_M1 0xCD9E8D57u
#define CT_PHILOX_W0 0x9E3779B9u
#define CT_PHILOX_W1 0xBB67AE85u

/* Ten Philox rounds on 8 independent counters (one per lane), same key. */
CT_INLINE void ct_philox8(uint8 *c0, uint8 *c1, uint8 *c2, uint8 *c3, uint k0, uint k1)
{
    for (int r = 0; r < 10; r++) {
#if CT_CPU
        /* PoCL lowers a 64-bit vector product better than uint8 mul_hi (~1.7x here) */
        const ulong8 p0 = convert_ulong8(*c0) * (ulong8)(CT_PHILOX_M0);
        const ulong8 p1 = convert_ulong8(*c2) * (ulong8)(CT_PHILOX_M1);
        const uint8 hi0 = convert_uint8(p0 >> 32), lo0 = convert_uint8(p0);
        const uint8 hi1 = convert_uint8(p1 >> 32), lo1 = convert_uint8(p1);
#else
        const uint8 hi0 = mul_hi((uint8)(CT_PHILOX_M0), *c0);
        const uint8 lo0 = (uint8)(CT_PHILOX_M0) * *c0;
        const uint8 hi1 = mul_hi((uint8)(CT_PHILOX_M1), *c2);
        const uint8 lo1 = (uint8)(CT_PHILOX_M1) * *c2;
#endif
        *c0 = hi1 ^ *c1 ^ (uint8)(k0);
        *c1 = lo1;
        *c2 = hi0 ^ *c3 ^ (uint8)(k1);
        *c3 = lo0;
        k0 += CT_PHILOX_W0;
        k1 += CT_PHILOX_W1;
    }
}

/* Words of blocks a and b of the 8 lanes, in element order: block a's 4 words, then b's. */
#define CT_DROP_WORDS(a, b) (uint8)(r0.a, r1.a, r2.a, r3.a, r0.b, r1.b, r2.b, r3.b)

__kernel void dropout_apply(__global const float *in, const uint in_off, __global float *out,
                            const uint out_off, const uint n, const uint seed_lo,
                            const uint seed_hi, const uint ctr_lo, const uint ctr_hi,
                            const uint thr, const float scale)
{
    in += in_off;
    out += out_off;
    const uint g = (uint)get_global_id(0);
    const uint base = g * 32u;
    if (base >= n)
        return;

    uint8 r0 = (uint8)(g * 8u) + (uint8)(0, 1, 2, 3, 4, 5, 6, 7);
    uint8 r1 = (uint8)(0u);
    uint8 r2 = (uint8)(ctr_lo);
    uint8 r3 = (uint8)(ctr_hi);
    ct_philox8(&r0, &r1, &r2, &r3, seed_lo, seed_hi);

    const uint8 w[4] = {CT_DROP_WORDS(s0, s1), CT_DROP_WORDS(s2, s3), CT_DROP_WORDS(s4, s5),
                        CT_DROP_WORDS(s6, s7)};
    if (n - base >= 32u) {
        for (uint q = 0; q < 4u; q++) {
            const float8 m = select((float8)(0.0f), (float8)(scale), w[q] < (uint8)(thr));
            vstore8(vload8(0, in + base + 8u * q) * m, 0, out + base + 8u * q);
        }
    } else {
        uint words[32];
        for (uint q = 0; q < 4u; q++)
            vstore8(w[q], 0, words + 8u * q);
        for (uint j = 0; base + j < n; j++)
            out[base + j] = in[base + j] * (words[j] < thr ? scale : 0.0f);
    }
}
