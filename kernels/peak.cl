/* kernels/peak.cl - the device's FP32 peak: register-resident FMA chains.
 *
 * peak_fma: each work-item keeps PEAK_ACC independent float16 accumulators and runs
 * `iters` rounds of a = fma(a, m, c) on each, then writes the sum of their lanes to
 * out[gid]. Nothing is loaded or stored in the loop: FLOPs = 2*16*PEAK_ACC*iters per
 * work-item, at the rate of the FMA units. Independent chains hide the FMA latency
 * (two FMA ports with a latency of 4 cycles need 8 in flight); PEAK_ACC 8 float16 = 8
 * zmm registers on AVX-512, well inside its 32. m (just below 1) and c arrive at run
 * time, so the recurrence can be neither folded nor overflow; the store keeps it alive.
 * Layout: out, one float per work-item. On a CPU the host runs a few one-item work-groups
 * per compute unit (PoCL hands each work-group to one thread); on a GPU 2048 items per
 * compute unit in groups of 128.
 * Keep this file under 4095 characters: cltrain bench embeds it as one C string.
 */
#ifndef PEAK_ACC
#define PEAK_ACC 8
#endif

__kernel void peak_fma(__global float *out, const uint out_off, const uint iters,
                       const float m, const float c)
{
    const uint gid = get_global_id(0);
    const float16 mv = (float16)(m), cv = (float16)(c);
    float16 a[PEAK_ACC];
#pragma unroll
    for (uint j = 0; j < PEAK_ACC; j++)
        a[j] = (float16)(c * (float)(gid + j + 1));
    for (uint it = 0; it < iters; it++) {
#pragma unroll
        for (uint j = 0; j < PEAK_ACC; j++)
            a[j] = fma(a[j], mv, cv);
    }
    float16 s = a[0];
#pragma unroll
    for (uint j = 1; j < PEAK_ACC; j++)
        s += a[j];
    const float8 h8 = s.lo + s.hi;
    const float4 h4 = h8.lo + h8.hi;
    out += out_off;
    out[gid] = h4.x + h4.y + h4.z + h4.w;
}
