/* kernels/pool.cl — max, average and global average pooling (lib/nn/pool.c).
 *
 * Layouts: x, dx (NC, H, W) and y, dy (NC, P, Q), dense row-major, NC = batch * channels;
 * idx (NC, P, Q) raw uint scratch. Window (p, q) covers rows p*SH - PH + [0, KH) and
 * columns q*SW - PW + [0, KW), clipped to the input (the host guarantees every window
 * keeps at least one element: pad <= kernel/2, and the ceil-mode rule on P, Q).
 *
 * Rules, as PyTorch's CPU kernels:
 *   max     padding is -inf; scanning row by row, a value replaces the maximum when it is
 *           greater or NaN, so ties go to the first maximum and NaN (the last one) wins.
 *   avg     divisor with count_include_pad: the window clipped to the padded input
 *           (H + PH, W + PW at the far side); without: the window clipped to the input.
 *   backward gathers: each input element sums, over the windows that contain it in
 *           (p, q) order, what those windows send it. No atomics, a fixed order.
 *
 * Work split: one work-item per output row (forward, argmax) or input row (backward),
 * looping along it. 2x2 windows at stride 2 without padding (most networks' pooling)
 * have vectorised kernels (maxpool2_*) that do both max-pool passes in one.
 */

/* The geometry every generic pooling kernel takes last, in the order lib/nn/pool.c's
 * POOL_GEOM_ARGS passes it: planes, input and output size, window, stride, padding. */
#define POOL_GEOM                                                                          \
    const uint NC, const uint H, const uint W, const uint P, const uint Q, const uint KH,  \
        const uint KW, const uint SH, const uint SW, const uint PH, const uint PW

/* Index within the plane of window (p, q)'s maximum, scanning as described above. */
CT_INLINE uint window_argmax(__global const float *plane, const uint H, const uint W, const int hs,
                             const int ws, const uint KH, const uint KW)
{
    const int h0 = max(hs, 0), h1 = min(hs + (int)KH, (int)H);
    const int w0 = max(ws, 0), w1 = min(ws + (int)KW, (int)W);
    uint best = (uint)h0 * W + (uint)w0;
    float m = -INFINITY;
    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++) {
            const uint i = (uint)ih * W + (uint)iw;
            const float v = plane[i];
            if (v > m || isnan(v)) {
                m = v;
                best = i;
            }
        }
    return best;
}

/* y (NC, P, Q) = the window maxima (when bit 0 of `what`); idx (NC, P, Q) = the index of
 * each within its plane (when bit 1). One work-item per output row (nc, p). */
__kernel void maxpool_fwd(CT_CARG(x), CT_ARG(y), __global uint *idx, const uint what,
                          POOL_GEOM)
{
    const uint row = get_global_id(0);
    if (row >= NC * P)
        return;
    x += x_off;
    y += y_off;
    const uint nc = row / P, p = row % P;
    __global const float *plane = x + (size_t)nc * H * W;
    const int hs = (int)(p * SH) - (int)PH;
    for (uint q = 0; q < Q; q++) {
        const uint i = window_argmax(plane, H, W, hs, (int)(q * SW) - (int)PW, KH, KW);
        if (what & 1u)
            y[(size_t)row * Q + q] = plane[i];
        if (what & 2u)
            idx[(size_t)row * Q + q] = i;
    }
}

/* First and one-past-last output index whose window (start o*S - PAD, length K) contains
 * input position i, clipped to [0, OUT). */
CT_INLINE void windows_of(const int i, const uint K, const uint S, const uint PAD, const uint OUT,
                          int *o0, int *o1)
{
    /* o*S - PAD <= i  and  o*S - PAD + K > i */
    const int hi = (i + (int)PAD) / (int)S; /* i + PAD >= 0 */
    const int lo_num = i + (int)PAD - (int)K + 1;
    const int lo = lo_num <= 0 ? 0 : (lo_num + (int)S - 1) / (int)S;
    *o0 = lo;
    *o1 = min(hi + 1, (int)OUT);
}

/* dx (NC, H, W), overwritten: the dy of every window whose maximum (idx) is this element,
 * summed in window order; 0 where x <= 0 when relu_in (x is a ReLU's output: a NaN passes,
 * as in torch's ReLU backward). One work-item per input row. */
__kernel void maxpool_bwd(CT_CARG(x), CT_CARG(dy), __global const uint *idx, CT_ARG(dx),
                          const uint relu_in, POOL_GEOM)
{
    const uint row = get_global_id(0);
    if (row >= NC * H)
        return;
    x += x_off;
    dy += dy_off;
    dx += dx_off;
    const uint nc = row / H, ih = row % H;
    int p0, p1;
    windows_of((int)ih, KH, SH, PH, P, &p0, &p1);
    __global const float *dyp = dy + (size_t)nc * P * Q;
    __global const uint *ip = idx + (size_t)nc * P * Q;
    for (uint iw = 0; iw < W; iw++) {
        int q0, q1;
        windows_of((int)iw, KW, SW, PW, Q, &q0, &q1);
        const uint me = ih * W + iw;
        float sum = 0.0f;
        for (int p = p0; p < p1; p++)
            for (int q = q0; q < q1; q++)
                if (ip[p * Q + q] == me)
                    sum += dyp[p * Q + q];
        const size_t at = (size_t)row * W + iw;
        dx[at] = relu_in && x[at] <= 0.0f ? 0.0f : sum;
    }
}

/* ---- 2x2 windows at stride 2 without padding: the common case, vectorised ------------
 * Same rules as above; one work-item per output row. The row is covered by runs of 8
 * outputs (two input rows loaded as float16, split into even and odd columns), the last
 * run moved back to end at Q: it overlaps the run before and rewrites the same values,
 * so there is no scalar tail. Rows of 4 to 7 outputs take runs of 4 the same way; only
 * rows of fewer than 4 outputs go one by one. */

/* m, idx (N lanes) = the maxima of N 2x2 windows and their first maximum's place in scan
 * order (0, 1: row a; 2, 3: row b), from a and b, two input rows' 2N columns. */
#define MAX_2X2(N, m, idx, a, b)                                                           \
    do {                                                                                   \
        (m) = (float##N)(-INFINITY);                                                       \
        (idx) = (int##N)(0);                                                               \
        MAX_STEP(N, m, idx, (a).even, 0);                                                  \
        MAX_STEP(N, m, idx, (a).odd, 1);                                                   \
        MAX_STEP(N, m, idx, (b).even, 2);                                                  \
        MAX_STEP(N, m, idx, (b).odd, 3);                                                   \
    } while (0)

/* Runs of N outputs (N2 = 2N input columns) over the row, the last one ending at Q. */
#define RUNS_BEGIN(N)                                                                      \
    for (uint q = 0;; q += N) {                                                            \
        q = min(q, Q - N);
#define RUNS_END(N)                                                                        \
        if (q + N >= Q)                                                                    \
            break;                                                                         \
    }

/* The same rule on one 2x2 window v (scan order): index of its first maximum. */
CT_INLINE uint argmax4(const float v[4])
{
    uint best = 0;
    float m = -INFINITY;
    for (uint t = 0; t < 4; t++)
        if (v[t] > m || isnan(v[t])) {
            m = v[t];
            best = t;
        }
    return best;
}

#define POOL2_FWD_RUNS(N, N2)                                                              \
    RUNS_BEGIN(N)                                                                          \
        const float##N2 a = vload##N2(0, r0 + 2 * q), b = vload##N2(0, r1 + 2 * q);        \
        float##N m;                                                                        \
        int##N idx;                                                                        \
        MAX_2X2(N, m, idx, a, b);                                                          \
        vstore##N(m, 0, yr + q);                                                           \
    RUNS_END(N)

__kernel void maxpool2_fwd(CT_CARG(x), CT_ARG(y), const uint NC, const uint H, const uint W,
                           const uint P, const uint Q)
{
    const uint row = get_global_id(0);
    if (row >= NC * P)
        return;
    x += x_off;
    y += y_off;
    const uint nc = row / P, p = row % P;
    __global const float *plane = x + (size_t)nc * H * W;
    __global const float *r0 = plane + (size_t)(2 * p) * W, *r1 = r0 + W;
    __global float *yr = y + (size_t)row * Q;
    if (Q >= 8) {
        POOL2_FWD_RUNS(8, 16)
    } else if (Q >= 4) {
        POOL2_FWD_RUNS(4, 8)
    } else {
        for (uint q = 0; q < Q; q++) {
            const float v[4] = {r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]};
            yr[q] = v[argmax4(v)];
        }
    }
}

/* The dx of N windows' 2N columns in rows a and b: each window's dy (d) at its first
 * maximum, 0 elsewhere; 0 where x <= 0 when relu_in. INTER interleaves two N-lane vectors. */
#define POOL2_BWD_RUNS(N, N2, INTER)                                                       \
    RUNS_BEGIN(N)                                                                          \
        const float##N2 a = vload##N2(0, r0 + 2 * q), b = vload##N2(0, r1 + 2 * q);        \
        float##N m;                                                                        \
        int##N idx;                                                                        \
        MAX_2X2(N, m, idx, a, b);                                                          \
        const float##N d = vload##N(0, dyr + q), z = (float##N)(0.0f);                     \
        float##N2 o0 = shuffle2(select(z, d, idx == 0), select(z, d, idx == 1), INTER);    \
        float##N2 o1 = shuffle2(select(z, d, idx == 2), select(z, d, idx == 3), INTER);    \
        if (relu_in) {                                                                     \
            o0 = select(o0, (float##N2)(0.0f), islessequal(a, (float##N2)(0.0f)));         \
            o1 = select(o1, (float##N2)(0.0f), islessequal(b, (float##N2)(0.0f)));         \
        }                                                                                  \
        vstore##N2(o0, 0, d0 + 2 * q);                                                     \
        vstore##N2(o1, 0, d1 + 2 * q);                                                     \
    RUNS_END(N)

/* dx rows 2p and 2p+1 (and, for the last p, any rows below the last window) overwritten:
 * each window's dy at its first maximum, 0 elsewhere; times (x > 0) when relu_in. */
__kernel void maxpool2_bwd(CT_CARG(x), CT_CARG(dy), CT_ARG(dx), const uint relu_in,
                           const uint NC, const uint H, const uint W, const uint P,
                           const uint Q)
{
    const uint row = get_global_id(0);
    if (row >= NC * P)
        return;
    x += x_off;
    dy += dy_off;
    dx += dx_off;
    const uint nc = row / P, p = row % P;
    __global const float *plane = x + (size_t)nc * H * W;
    __global const float *r0 = plane + (size_t)(2 * p) * W, *r1 = r0 + W;
    __global float *d0 = dx + (size_t)nc * H * W + (size_t)(2 * p) * W, *d1 = d0 + W;
    __global const float *dyr = dy + (size_t)row * Q;
    if (Q >= 8) {
        POOL2_BWD_RUNS(8, 16, ((uint16)(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15)))
    } else if (Q >= 4) {
        POOL2_BWD_RUNS(4, 8, ((uint8)(0, 4, 1, 5, 2, 6, 3, 7)))
    } else {
        for (uint q = 0; q < Q; q++) {
            const float v[4] = {r0[2 * q], r0[2 * q + 1], r1[2 * q], r1[2 * q + 1]};
            const uint i = argmax4(v);
            float o[4];
            for (uint t = 0; t < 4; t++)
                o[t] = t == i && !(relu_in && v[t] <= 0.0f) ? dyr[q] : 0.0f;
            d0[2 * q] = o[0];
            d0[2 * q + 1] = o[1];
            d1[2 * q] = o[2];
            d1[2 * q + 1] = o[3];
        }
    }
    /* columns and rows no window covers (odd W or H) */
    for (uint v = 2 * Q; v < W; v++)
        d0[v] = d1[v] = 0.0f;
    if (p == P - 1)
        for (uint t = 2 * P; t < H; t++)
            for (uint v = 0; v < W; v++)
                dx[(size_t)nc * H * W + (size_t)t * W + v] = 0.0f;
}

/* PyTorch's divisor of window (p, q) (see the banner). */
CT_INLINE float avg_divisor(const int hs, const int ws, const uint H, const uint W, const uint KH,
                            const uint KW, const uint PH, const uint PW, const uint include_pad)
{
    int he = hs + (int)KH, we = ws + (int)KW;
    if (include_pad) {
        he = min(he, (int)(H + PH));
        we = min(we, (int)(W + PW));
        return (float)((he - hs) * (we - ws));
    }
    return (float)((min(he, (int)H) - max(hs, 0)) * (min(we, (int)W) - max(ws, 0)));
}

/* y = mean of each window, by PyTorch's divisor. One work-item per output row. */
__kernel void avgpool_fwd(CT_CARG(x), CT_ARG(y), const uint include_pad, POOL_GEOM)
{
    const uint row = get_global_id(0);
    if (row >= NC * P)
        return;
    x += x_off;
    y += y_off;
    const uint nc = row / P, p = row % P;
    __global const float *plane = x + (size_t)nc * H * W;
    const int hs = (int)(p * SH) - (int)PH;
    const int h0 = max(hs, 0), h1 = min(hs + (int)KH, (int)H);
    for (uint q = 0; q < Q; q++) {
        const int ws = (int)(q * SW) - (int)PW;
        const int w0 = max(ws, 0), w1 = min(ws + (int)KW, (int)W);
        float sum = 0.0f;
        for (int ih = h0; ih < h1; ih++)
            for (int iw = w0; iw < w1; iw++)
                sum += plane[ih * W + iw];
        y[(size_t)row * Q + q] = sum / avg_divisor(hs, ws, H, W, KH, KW, PH, PW, include_pad);
    }
}

/* dx (overwritten) = sum over the windows containing the element of dy / divisor.
 * One work-item per input row. */
__kernel void avgpool_bwd(CT_CARG(dy), CT_ARG(dx), const uint include_pad, POOL_GEOM)
{
    const uint row = get_global_id(0);
    if (row >= NC * H)
        return;
    dy += dy_off;
    dx += dx_off;
    const uint nc = row / H, ih = row % H;
    int p0, p1;
    windows_of((int)ih, KH, SH, PH, P, &p0, &p1);
    __global const float *dyp = dy + (size_t)nc * P * Q;
    for (uint iw = 0; iw < W; iw++) {
        int q0, q1;
        windows_of((int)iw, KW, SW, PW, Q, &q0, &q1);
        float sum = 0.0f;
        for (int p = p0; p < p1; p++)
            for (int q = q0; q < q1; q++)
                sum += dyp[p * Q + q] / avg_divisor(p * (int)SH - (int)PH, q * (int)SW - (int)PW,
                                                     H, W, KH, KW, PH, PW, include_pad);
        dx[(size_t)row * W + iw] = sum;
    }
}

/* y[i] = mean of plane i of x (NC, HW): eight partial sums over the plane, added in a
 * fixed order. One work-item per plane. */
__kernel void gap_fwd(CT_CARG(x), CT_ARG(y), const uint NC, const uint HW)
{
    const uint i = get_global_id(0);
    if (i >= NC)
        return;
    x += x_off;
    y += y_off;
    __global const float *plane = x + (size_t)i * HW;
    float8 acc = (float8)(0.0f);
    const uint full = HW / 8 * 8;
    for (uint j = 0; j < full; j += 8)
        acc += vload8(0, plane + j);
    float tail = 0.0f;
    for (uint j = full; j < HW; j++)
        tail += plane[j];
    const float4 a = acc.lo + acc.hi;
    const float2 b = a.lo + a.hi;
    y[i] = (b.lo + b.hi + tail) / (float)HW;
}

/* dx[i, j] = dy[i] / HW. One work-item per element of dx (NC * HW). */
__kernel void gap_bwd(CT_CARG(dy), CT_ARG(dx), const uint NC, const uint HW)
{
    const uint e = get_global_id(0);
    if (e >= NC * HW)
        return;
    dy += dy_off;
    dx += dx_off;
    dx[e] = dy[e / HW] / (float)HW;
}
