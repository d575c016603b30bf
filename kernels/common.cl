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
