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

/* Sum of the n (a power of two) floats at t, halves added lane by lane down to one: a
 * fixed order. Reductions of float16 accumulators go through a private array and this
 * rather than .lo/.hi swizzles, which Oclgrind 21.10 mis-tracks as uninitialised from
 * lane 8 of a float16 (.ci/oclgrind); t is overwritten. */
inline float ct_tree_sum(float *t, const int n)
{
    for (int w = n / 2; w >= 1; w /= 2)
        for (int i = 0; i < w; i++)
            t[i] += t[i + w];
    return t[0];
}
