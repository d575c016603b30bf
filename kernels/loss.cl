/* kernels/loss.cl — losses: the value and the gradient w.r.t. the input in one pass.
 *
 * Host side: lib/train/loss.c; semantics (PyTorch's): include/cltrain/loss.h.
 *
 * Layouts. Class losses (CrossEntropy, NLL): x (N, C, S) row-major, S = d1*d2 (1 for an
 * (N, C) input); a "position" p = n*S + s owns the C values x[n*C*S + c*S + s], its
 * class-index target t[p] (a float holding an integer), or its soft target at the same
 * indices as x. Element-wise losses (BCE, MSE, L1, SmoothL1, Huber): x, y, grad of n
 * elements, flat. Every tensor arrives as (buffer, element offset).
 *
 * Work split. A launch has G work-groups of LOSS_WG work-items; work-item i handles
 * positions (or 4-element chunks) i, i + G*LOSS_WG, ... (grid stride), summing its
 * losses and denominator weights in private floats. The group then sums them with a
 * fixed-order tree in local memory. The host picks G from the size only, so the
 * summation order, hence every bit of the result, depends on nothing but the shapes:
 * no atomics on floats anywhere.
 *   G == 1 (LF_FINAL; e.g. N = 64, C = 10): the group also finishes the job: it writes
 *     the reduced loss and, for a class-index mean whose denominator sum(w[target]) is
 *     known only now, rescales the gradient rows it wrote. ONE launch in all.
 *   G > 1: each group writes its two partial sums to part[2g], part[2g+1]; a second
 *     launch sums the G partials in a fixed order: loss_finish (one group) when only the
 *     loss value is missing, ce_finish (many groups, each summing the same partials the
 *     same way) when the gradient rows still need the 1/denominator factor.
 * With reduction NONE each work-item writes its own losses: no partials, one launch.
 *
 * The gradient is written scaled by grad_output (GO_ROW: one per output element,
 * GO_ONE: a 1-element tensor read here on the device, else 1) and, for MEAN, divided by
 * the element/position count `count` (known to the host) or by the weight sum.
 *
 * Numerics (float32): softmax through log-sum-exp with the row maximum m, so
 * -log p_c = (m - x_c) + log(sum exp(x - m)) is exact for logits of any size (±1e4);
 * BCE as (1 - y) x + lw * (log1p(exp(-|x|)) + max(-x, 0)), which never overflows.
 * PoCL does not vectorise across work-items: the element-wise loss uses float4 chunks;
 * the class losses walk a row with stride S, scalar (C is small: 10 for MNIST).
 *
 * Validation, without a host sync: a bad target sets a bit in status[0] (atomic_or) and
 * lowers status[1] to its flat index (atomic_min), both deterministic integer atomics;
 * status[2] counts suspicious rows (see ct_loss_report). A bad class index counts as
 * ignored, so no memory outside the tensors is touched.
 */

#ifndef LOSS_WG
#define LOSS_WG 64 /* work-group size, a power of two; the host passes its own value */
#endif

/* Flags and codes: the host (lib/train/loss.c) passes all of these as -D options, so
 * the values below only serve a stand-alone compile. */
#ifndef LF_GRAD
#define LF_GRAD 1u      /* write the gradient g */
#define LF_OUT 2u       /* write the loss to out */
#define LF_NONE 4u      /* reduction NONE: per-position / per-element losses */
#define LF_MEAN 8u      /* reduction MEAN (neither: SUM) */
#define LF_WDENOM 16u   /* MEAN divides by the weight sum (class-index targets) */
#define LF_FINAL 32u    /* one work-group: finish in this launch */
#define LF_GO_ROW 64u   /* grad_output: one value per output element */
#define LF_GO_ONE 128u  /* grad_output: a 1-element tensor */
#define LF_WEIGHT 256u  /* class weights (CE, NLL) / element weights (BCE) given */
#define LF_POSW 512u    /* BCE pos_weight given */
#define LF_SOFT 1024u   /* CE targets are class probabilities */
#define LF_NLL 2048u    /* input holds log-probabilities (NLLLoss) */
#define RK_MSE 0u
#define RK_L1 1u
#define RK_SMOOTH_L1 2u
#define RK_HUBER 3u
#define LE_CLASS_INDEX 1u
#define LE_BCE_TARGET 2u
#define LE_NEGATIVE_PROB 4u
#endif

/* ---- shared helpers -------------------------------------------------------------- */

CT_INLINE void loss_error(__global uint *status, uint bit, uint index)
{
    atomic_or(status, bit);
    atomic_min(status + 1, index);
}

/* Sums a and b over the work-group in a fixed order; every work-item gets the totals.
 * Called once per kernel, by every work-item (it holds barriers). */
CT_INLINE void loss_group_sum(__local float *la, __local float *lb, float *a, float *b)
{
    const uint lid = get_local_id(0);
    la[lid] = *a;
    lb[lid] = *b;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint step = LOSS_WG / 2; step > 0; step >>= 1) {
        if (lid < step) {
            la[lid] += la[lid + step];
            lb[lid] += lb[lid + step];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    *a = la[0];
    *b = lb[0];
}

/* Sums the G partial pairs in a fixed order (lane l takes l, l + LOSS_WG, ... ascending,
 * then the tree): every group that calls it gets bit-identical totals. */
CT_INLINE void loss_sum_partials(__global const float *part, uint G, __local float *la,
                                 __local float *lb, float *a, float *b)
{
    float sa = 0.0f, sb = 0.0f;
    for (uint i = get_local_id(0); i < G; i += LOSS_WG) {
        sa += part[2 * i];
        sb += part[2 * i + 1];
    }
    loss_group_sum(la, lb, &sa, &sb);
    *a = sa;
    *b = sb;
}

/* The reduced loss from the sum of losses and the sum of denominator weights. 0/0 is NaN,
 * as PyTorch's mean over no (non-ignored) target. */
CT_INLINE float loss_value(float total, float wtotal, uint flags, float count)
{
    if (!(flags & LF_MEAN))
        return total;
    if (!(flags & LF_WDENOM))
        return total / count;
    /* PyTorch divides the NLL and the smoothing sums separately: with no target weight
     * the NLL term is 0/0 = NaN whatever the smoothing term is */
    return wtotal == 0.0f ? NAN : total / wtotal;
}

/* The end of a reducing kernel: sums (*a, *b) over the work-group (every work-item gets
 * the totals). In a multi-group launch each group stores its pair in part and 0 is
 * returned; the single group of a final launch writes the loss (LF_OUT) and returns 1. */
CT_INLINE int loss_reduce_store(__local float *la, __local float *lb, float *a, float *b,
                                __global float *part, __global float *out, uint flags, float count)
{
    loss_group_sum(la, lb, a, b);
    if (!(flags & LF_FINAL)) {
        if (get_local_id(0) == 0) {
            part[2 * get_group_id(0)] = *a;
            part[2 * get_group_id(0) + 1] = *b;
        }
        return 0;
    }
    if (get_local_id(0) == 0 && (flags & LF_OUT))
        out[0] = loss_value(*a, *b, flags, count);
    return 1;
}

/* The factor a gradient entry of output element i gets when the host knows the
 * denominator: grad_output, divided by the count for MEAN. */
CT_INLINE float loss_gscale(__global const float *go, uint i, uint flags, float count)
{
    float r = (flags & LF_GO_ROW) ? go[i] : (flags & LF_GO_ONE) ? go[0] : 1.0f;
    if ((flags & LF_MEAN) && !(flags & LF_WDENOM))
        r = r / count;
    return r;
}

/* ---- cross entropy / NLL --------------------------------------------------------- */

/* Validates target value tv of position p; returns 1 with its class in *tc when the
 * position counts, 0 when it is ignored (ignore_index, or an error recorded here). */
CT_INLINE int ce_target(float tv, uint p, uint C, float ignore_index, __global uint *status,
                        uint *tc)
{
    if (tv == ignore_index)
        return 0;
    if (!(tv >= 0.0f && tv < (float)C && tv == floor(tv))) {
        loss_error(status, LE_CLASS_INDEX, p);
        return 0;
    }
    *tc = (uint)tv;
    return 1;
}

/* Multiplies the gradient row of position p, written unscaled (grad_output 1, no
 * 1/denominator), by fac = grad_output / sum(w[target]). When the denominator is 0
 * (every weight of a counted target 0) PyTorch's 1/0 reaches log_softmax's backward and
 * turns the whole row NaN, while NLL's gradient is w[t] * -inf = NaN at the target only:
 * reproduced here. Ignored rows stay 0. */
CT_INLINE void ce_scale_row(__global const float *t, __global float *g, __global const float *cw,
                            uint p, uint C, uint S, float ignore_index, uint flags, float fac)
{
    const uint n = p / S, s = p - n * S;
    uint tc = 0;
    if (t[p] == ignore_index || !(t[p] >= 0.0f && t[p] < (float)C && t[p] == floor(t[p])))
        return;
    tc = (uint)t[p];
    __global float *gr = g + n * C * S + s;
    if (flags & LF_NLL) {
        const float wt = (flags & LF_WEIGHT) ? cw[tc] : 1.0f;
        gr[tc * S] = -fac * wt;
        return;
    }
    const int finite = isfinite(fac);
    for (uint c = 0; c < C; c++)
        gr[c * S] = finite ? gr[c * S] * fac : NAN;
}

/* Cross entropy (or NLL) of every position: loss, denominator weight, gradient.
 * x: (N, C, S)  t: (N, S) class indices, or (N, C, S) probabilities with LF_SOFT
 * out: 1 element, or (N, S) with LF_NONE  g: (N, C, S)  go: see loss_gscale
 * cw: (C) class weights  part: 2 floats per group  status: 3 uints. */
__kernel void ce_rows(CT_CARG(x), CT_CARG(t), CT_ARG(out), CT_ARG(g), CT_CARG(go),
                      __global const float *cw, __global float *part, __global uint *status,
                      const uint N, const uint C, const uint S, const float ignore_index,
                      const float smoothing, const float count, const uint flags)
{
    __local float la[LOSS_WG], lb[LOSS_WG];
    x += x_off;
    t += t_off;
    out += out_off;
    g += g_off;
    go += go_off;
    const uint P = N * S, gsz = get_global_size(0);
    const int hasw = (flags & LF_WEIGHT) != 0, grad = (flags & LF_GRAD) != 0;
    /* Index-target MEAN: the denominator is known only after the reduction, so rows are
     * written with factor 1 and rescaled (here when LF_FINAL, else by ce_finish). */
    const int later = (flags & LF_MEAN) && (flags & LF_WDENOM);
    const float keep = 1.0f - smoothing, share = smoothing / (float)C;
    float wsum = 0.0f; /* sum of the class weights, for smoothing's gradient */
    for (uint c = 0; c < C; c++)
        wsum += hasw ? cw[c] : 1.0f;

    float acc = 0.0f, accw = 0.0f;
    for (uint p = get_global_id(0); p < P; p += gsz) {
        const uint n = p / S, s = p - n * S;
        __global const float *xr = x + n * C * S + s;
        __global float *gr = g + n * C * S + s;
        const float r = later ? 1.0f : loss_gscale(go, p, flags, count);
        float lrow = 0.0f, wrow = 0.0f;

        if (flags & LF_NLL) {
            uint tc = 0;
            float xmax = -INFINITY;
            for (uint c = 0; c < C; c++)
                xmax = fmax(xmax, xr[c * S]);
            if (xmax > 0.0f)
                atomic_inc(status + 2); /* a log-probability above 0: raw logits? */
            const int counted = ce_target(t[p], p, C, ignore_index, status, &tc);
            const float wt = counted ? (hasw ? cw[tc] : 1.0f) : 0.0f;
            if (counted) {
                lrow = -wt * xr[tc * S];
                wrow = wt;
            }
            if (grad) {
                for (uint c = 0; c < C; c++)
                    gr[c * S] = 0.0f;
                if (counted)
                    gr[tc * S] = -r * wt;
            }
        } else {
            /* log-sum-exp: m, sum exp(x - m); also a probability-vector check */
            float m = -INFINITY, xmin = INFINITY, xsum = 0.0f;
            for (uint c = 0; c < C; c++) {
                const float v = xr[c * S];
                m = fmax(m, v);
                xmin = fmin(xmin, v);
                xsum += v;
            }
            if (xmin >= 0.0f && m <= 1.0f && fabs(xsum - 1.0f) <= 1e-3f)
                atomic_inc(status + 2); /* already probabilities: softmax twice? */
            float se = 0.0f;
            for (uint c = 0; c < C; c++)
                se += exp(xr[c * S] - m);
            const float lse = log(se); /* -log p_c = (m - x_c) + lse */
            const float inv_se = 1.0f / se;

            if (flags & LF_SOFT) {
                /* a_c = w_c * q'_c, q' = (1 - eps) q + eps / C;
                 * loss = sum a_c (-log p_c), d/dx_j = p_j sum(a) - a_j */
                __global const float *tr = t + n * C * S + s;
                float asum = 0.0f;
                for (uint c = 0; c < C; c++) {
                    const float q = tr[c * S];
                    if (q < 0.0f)
                        loss_error(status, LE_NEGATIVE_PROB, n * C * S + s + c * S);
                    const float qs = smoothing != 0.0f ? q * keep + share : q;
                    const float a = hasw ? cw[c] * qs : qs;
                    asum += a;
                    lrow += a * ((m - xr[c * S]) + lse);
                }
                if (grad) {
                    for (uint c = 0; c < C; c++) {
                        const float q = tr[c * S];
                        const float qs = smoothing != 0.0f ? q * keep + share : q;
                        const float a = hasw ? cw[c] * qs : qs;
                        const float pc = exp(xr[c * S] - m) * inv_se;
                        gr[c * S] = r * (pc * asum - a);
                    }
                }
            } else {
                /* a_c = (1 - eps) w_t [c == t] + (eps / C) w_c, as PyTorch's
                 * (1 - eps) * nll + (eps / C) * sum_c w_c (-log p_c) */
                uint tc = 0;
                const int counted = ce_target(t[p], p, C, ignore_index, status, &tc);
                if (counted) {
                    const float wt = hasw ? cw[tc] : 1.0f;
                    const float nll = (m - xr[tc * S]) + lse;
                    if (smoothing != 0.0f) {
                        float sm = 0.0f;
                        for (uint c = 0; c < C; c++)
                            sm += (hasw ? cw[c] : 1.0f) * ((m - xr[c * S]) + lse);
                        lrow = keep * wt * nll + share * sm;
                    } else {
                        lrow = wt * nll;
                    }
                    wrow = wt;
                    if (grad) {
                        const float asum = smoothing != 0.0f ? keep * wt + share * wsum : wt;
                        for (uint c = 0; c < C; c++) {
                            float a = smoothing != 0.0f ? share * (hasw ? cw[c] : 1.0f) : 0.0f;
                            if (c == tc)
                                a += smoothing != 0.0f ? keep * wt : wt;
                            const float pc = exp(xr[c * S] - m) * inv_se;
                            gr[c * S] = r * (pc * asum - a);
                        }
                    }
                } else if (grad) {
                    for (uint c = 0; c < C; c++)
                        gr[c * S] = 0.0f;
                }
            }
        }
        if ((flags & LF_NONE) && (flags & LF_OUT))
            out[p] = lrow;
        acc += lrow;
        accw += wrow;
    }

    if (flags & LF_NONE)
        return; /* uniform across the launch: no work-item reaches the barriers */
    if (!loss_reduce_store(la, lb, &acc, &accw, part, out, flags, count))
        return;
    if (later && grad) {
        const float fac = ((flags & LF_GO_ONE) ? go[0] : 1.0f) / accw;
        /* the same rows this work-item wrote above: its own writes, no barrier needed */
        for (uint p = get_global_id(0); p < P; p += gsz)
            ce_scale_row(t, g, cw, p, C, S, ignore_index, flags, fac);
    }
}

/* Second launch of a multi-group class-index MEAN with a gradient: every group sums the
 * G partials (identically), group 0 writes the loss, and the rows are rescaled by
 * grad_output / sum(w[target]) in a grid stride of its own. Arguments as ce_rows. */
__kernel void ce_finish(CT_CARG(t), CT_ARG(out), CT_ARG(g), CT_CARG(go),
                        __global const float *cw, __global const float *part, const uint G,
                        const uint N, const uint C, const uint S, const float ignore_index,
                        const float count, const uint flags)
{
    __local float la[LOSS_WG], lb[LOSS_WG];
    t += t_off;
    out += out_off;
    g += g_off;
    go += go_off;
    float total, wtotal;
    loss_sum_partials(part, G, la, lb, &total, &wtotal);
    if (get_global_id(0) == 0 && (flags & LF_OUT))
        out[0] = loss_value(total, wtotal, flags, count);
    if (!(flags & LF_GRAD))
        return;
    const float fac = ((flags & LF_GO_ONE) ? go[0] : 1.0f) / wtotal;
    for (uint p = get_global_id(0); p < N * S; p += get_global_size(0))
        ce_scale_row(t, g, cw, p, C, S, ignore_index, flags, fac);
}

/* Second launch when only the loss value is missing: one group sums the G partials.
 * out: 1 element. */
__kernel void loss_finish(__global const float *part, const uint G, CT_ARG(out),
                          const float count, const uint flags)
{
    __local float la[LOSS_WG], lb[LOSS_WG];
    out += out_off;
    float total, wtotal;
    loss_sum_partials(part, G, la, lb, &total, &wtotal);
    if (get_local_id(0) == 0)
        out[0] = loss_value(total, wtotal, flags, count);
}

/* ---- BCE with logits ------------------------------------------------------------- */

/* x, y, g: n elements, seen as (D0, D1, D2, D3) with the host's dims; the weight of
 * element (i0, i1, i2, i3) is w[i0*ws0 + i1*ws1 + i2*ws2 + i3*ws3] (stride 0 along a
 * broadcast dim), pos_weight likewise with ps*. Per element, PyTorch's
 *     loss = w * ((1 - y) x + lw (log1p(exp(-|x|)) + max(-x, 0))),  lw = (pw - 1) y + 1
 *     d/dx = w * ((pw y + 1 - y) sigmoid(x) - pw y)      (pw = 1: sigmoid(x) - y)
 * Scalar: the broadcast index arithmetic does not vectorise, and n is N*C. */
__kernel void bce_elems(CT_CARG(x), CT_CARG(y), CT_ARG(out), CT_ARG(g), CT_CARG(go),
                        __global const float *w, __global const float *pw,
                        __global float *part, __global uint *status, const uint n,
                        const uint D1, const uint D2, const uint D3, const uint ws0,
                        const uint ws1, const uint ws2, const uint ws3, const uint ps0,
                        const uint ps1, const uint ps2, const uint ps3, const float count,
                        const uint flags)
{
    __local float la[LOSS_WG], lb[LOSS_WG];
    x += x_off;
    y += y_off;
    out += out_off;
    g += g_off;
    go += go_off;
    const uint gsz = get_global_size(0);
    float acc = 0.0f, unused = 0.0f;
    for (uint i = get_global_id(0); i < n; i += gsz) {
        const float xv = x[i], yv = y[i];
        if (!(yv >= 0.0f && yv <= 1.0f))
            loss_error(status, LE_BCE_TARGET, i);
        const uint i3 = i % D3, r3 = i / D3, i2 = r3 % D2, r2 = r3 / D2, i1 = r2 % D1,
                   i0 = r2 / D1;
        const float wv = (flags & LF_WEIGHT) ? w[i0 * ws0 + i1 * ws1 + i2 * ws2 + i3 * ws3] : 1.0f;
        const float pv = (flags & LF_POSW) ? pw[i0 * ps0 + i1 * ps1 + i2 * ps2 + i3 * ps3] : 1.0f;
        const float sp = log1p(exp(-fabs(xv))) + fmax(-xv, 0.0f); /* -log sigmoid(x) */
        const float lw = (flags & LF_POSW) ? (pv - 1.0f) * yv + 1.0f : 1.0f;
        float l = (1.0f - yv) * xv + lw * sp;
        if (flags & LF_WEIGHT)
            l *= wv;
        if ((flags & LF_NONE) && (flags & LF_OUT))
            out[i] = l;
        acc += l;
        if (flags & LF_GRAD) {
            const float e = exp(-fabs(xv));
            const float sig = xv >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
            float d;
            if (flags & LF_POSW) {
                const float pt = pv * yv;
                d = (pt + 1.0f - yv) * sig - pt;
            } else {
                d = sig - yv;
            }
            if (flags & LF_WEIGHT)
                d *= wv;
            g[i] = d * loss_gscale(go, i, flags, count);
        }
    }
    if (flags & LF_NONE)
        return;
    loss_reduce_store(la, lb, &acc, &unused, part, out, flags, count);
}

/* ---- MSE, L1, SmoothL1, Huber ---------------------------------------------------- */

/* Loss and d loss / d x of d = x - y, four lanes at a time. PyTorch's definitions:
 *             loss                                              gradient
 *   MSE       d^2                                               2 d
 *   L1        |d|                                               sign(d)   (0 at d == 0)
 *   SmoothL1  |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta      d <= -beta ? -1 :
 *                                                                 d >= beta ? 1 : d / beta
 *   Huber     |d| < delta ? 0.5 d^2 : delta (|d| - 0.5 delta)   clamp(d, -delta, delta)
 * (beta = 0 makes SmoothL1 the L1 loss, except for the gradient at d = 0, as in PyTorch.) */
CT_INLINE float4 reg_loss4(uint kind, float4 d, float param, float4 *grad)
{
    const float4 ad = fabs(d);
    const int4 quad = isless(ad, (float4)(param));
    switch (kind) {
    case RK_MSE:
        *grad = 2.0f * d;
        return d * d;
    case RK_L1:
        *grad = sign(d);
        return ad;
    case RK_SMOOTH_L1:
        /* PyTorch's backward tests d <= -beta first: with beta = 0 the gradient at d = 0
         * is -1, not L1's 0 */
        *grad = select(select(d / param, (float4)(1.0f), isgreaterequal(d, (float4)(param))),
                       (float4)(-1.0f), islessequal(d, (float4)(-param)));
        return select(ad - 0.5f * param, 0.5f * d * d / param, quad);
    default: /* RK_HUBER */
        *grad = clamp(d, -param, param);
        return select(param * (ad - 0.5f * param), 0.5f * d * d, quad);
    }
}

/* x, y, g, out (NONE): n elements. Work-item i takes 4-element chunks i, i + gsz, ...;
 * the last chunk may be partial and is padded with d = 0 (loss 0). */
__kernel void reg_elems(CT_CARG(x), CT_CARG(y), CT_ARG(out), CT_ARG(g), CT_CARG(go),
                        __global float *part, const uint n, const uint kind, const float param,
                        const float count, const uint flags)
{
    __local float la[LOSS_WG], lb[LOSS_WG];
    x += x_off;
    y += y_off;
    out += out_off;
    g += g_off;
    go += go_off;
    const uint chunks = (n + 3) / 4, gsz = get_global_size(0);
    /* grad_output unless per element: the same for every element */
    const float rs = loss_gscale(go, 0, flags & ~LF_GO_ROW, count);
    float4 acc4 = (float4)(0.0f);
    for (uint k = get_global_id(0); k < chunks; k += gsz) {
        const uint i = 4 * k, lanes = min(4u, n - i);
        float4 xv, yv, rv = (float4)(rs);
        if (lanes == 4) {
            xv = vload4(0, x + i);
            yv = vload4(0, y + i);
            if (flags & LF_GO_ROW)
                rv = vload4(0, go + i) * rs;
        } else {
            float xa[4] = {0.0f, 0.0f, 0.0f, 0.0f}, ya[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            float ra[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (uint j = 0; j < lanes; j++) {
                xa[j] = x[i + j];
                ya[j] = y[i + j];
                ra[j] = (flags & LF_GO_ROW) ? go[i + j] * rs : rs;
            }
            xv = vload4(0, xa);
            yv = vload4(0, ya);
            rv = vload4(0, ra);
        }
        float4 dl;
        const float4 l = reg_loss4(kind, xv - yv, param, &dl);
        acc4 += l;
        const float4 gv = dl * rv;
        if (lanes == 4) {
            if ((flags & LF_NONE) && (flags & LF_OUT))
                vstore4(l, 0, out + i);
            if (flags & LF_GRAD)
                vstore4(gv, 0, g + i);
        } else {
            float la4[4], ga4[4];
            vstore4(l, 0, la4);
            vstore4(gv, 0, ga4);
            for (uint j = 0; j < lanes; j++) {
                if ((flags & LF_NONE) && (flags & LF_OUT))
                    out[i + j] = la4[j];
                if (flags & LF_GRAD)
                    g[i + j] = ga4[j];
            }
        }
    }
    if (flags & LF_NONE)
        return;
    float acc = (acc4.s0 + acc4.s1) + (acc4.s2 + acc4.s3), unused = 0.0f;
    loss_reduce_store(la, lb, &acc, &unused, part, out, flags, count);
}
