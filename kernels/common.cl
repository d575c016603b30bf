/* kernels/common.cl — prepended to every kernel file when a program is built.
 *
 * Tensor arguments arrive as (pointer, element offset) pairs: `__global float *x,
 * const uint x_off`; a kernel starts with `x += x_off;`. Tuning macros come from the
 * per-device table in lib/core/tune.c as -D options; the defaults below keep each file
 * compilable on its own (the offline OpenCL C 1.2 check compiles them that way). */
#ifndef CT_CPU
#define CT_CPU 1
#endif
#ifndef CT_GPU
#define CT_GPU 0
#endif
#ifndef CT_VEC
#define CT_VEC 8
#endif

/* Every helper function is inlined: PoCL 3.1 left some as calls (conv.cl's unpool_run,
 * transpose16), and a call spills all of the caller's vector registers to the stack and
 * back (no vector register survives a call): conv_bwd_w_pool ran 1.8x slower so. */
#define CT_INLINE inline __attribute__((always_inline))

/* Vector stores to global memory at the element's alignment only (4 bytes for float, 1 for
 * uchar). PoCL 3.1 builds vstore16 and vstore8 of float as pieces (a float16 as stores of
 * 256, 128 and 128 bits with the extracts between them) and vstore8/vstore4 of uchar as
 * one byte store per lane with the shifts to extract them (20 instructions for 8 bytes);
 * under Clang a vector type declared that aligned gives one unaligned store where the
 * target has it (x86: one vmovups, one 8-byte move). Other compilers: vstoreN. */
#if defined(__clang__)
typedef float16 ct_float16_unaligned __attribute__((aligned(4)));
typedef float8 ct_float8_unaligned __attribute__((aligned(4)));
typedef float4 ct_float4_unaligned __attribute__((aligned(4)));
typedef uchar8 ct_uchar8_unaligned __attribute__((aligned(1)));
typedef uchar4 ct_uchar4_unaligned __attribute__((aligned(1)));
#define CT_GSTORE16(v, p) (*(__global ct_float16_unaligned *)(p) = (v))
#define CT_GSTORE8(v, p) (*(__global ct_float8_unaligned *)(p) = (v))
#define CT_GSTORE4(v, p) (*(__global ct_float4_unaligned *)(p) = (v))
#define CT_GSTORE_UC8(v, p) (*(__global ct_uchar8_unaligned *)(p) = (v))
#define CT_GSTORE_UC4(v, p) (*(__global ct_uchar4_unaligned *)(p) = (v))
#else
#define CT_GSTORE16(v, p) vstore16((v), 0, (p))
#define CT_GSTORE8(v, p) vstore8((v), 0, (p))
#define CT_GSTORE4(v, p) vstore4((v), 0, (p))
#define CT_GSTORE_UC8(v, p) vstore8((v), 0, (p))
#define CT_GSTORE_UC4(v, p) vstore4((v), 0, (p))
#endif

#define CT_ARG(name) __global float *name, const uint name##_off
#define CT_CARG(name) __global const float *name, const uint name##_off

/* Scan step of max pooling's rule on N lanes (kernels/pool.cl, and conv.cl's fused
 * pooling): take v where v > m or v is NaN, so ties keep the first maximum and NaN wins;
 * idx records the winner's position `pos`. */
#define MAX_STEP(N, m, idx, v, pos)                                                        \
    do {                                                                                   \
        const int##N take_ = isgreater((v), (m)) | isnan(v);                               \
        (m) = select((m), (v), take_);                                                     \
        (idx) = select((idx), (int##N)(pos), take_);                                       \
    } while (0)

/* Sum of the 16 lanes of v in a fixed tree order (halves added lane by lane: 8, 4, 2, 1).
 * The first halving goes through a private array instead of .lo/.hi of the float16,
 * which Oclgrind 21.10 mis-tracks as uninitialised from lane 8 (.ci/oclgrind); the rest
 * are float8 and smaller swizzles, which it tracks right. Vector loads and stores only:
 * a scalar tree here cost PoCL ~0.7 ms per MiniCNN step in the weight-gradient epilogues. */
CT_INLINE float ct_sum16(const float16 v)
{
    float t[16];
    vstore16(v, 0, t);
    const float8 a = vload8(0, t) + vload8(1, t);
    const float4 b = a.lo + a.hi;
    const float2 c = b.lo + b.hi;
    return c.x + c.y;
}
