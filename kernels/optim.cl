/* kernels/optim.cl — fused optimizer steps over the flat parameter buffer, and gradient
 * clipping (lib/train/optim.c, lib/train/clip.c).
 *
 * Update rules: torch.optim's single-tensor paths (SGD, Adam/AdamW, RMSprop, Adagrad),
 * operation by operation in float32. Where PyTorch's CPU kernels fuse (Tensor.add with
 * alpha is vec::fmadd, addcmul contracts to fma(value*t1, t2, self)) we call fma();
 * everything else rounds after each operation, so FP_CONTRACT is off. Host-side scalars
 * (bias corrections, -lr, 1 - beta...) arrive as float kernel arguments.
 *
 * Layout: p (parameters), g (gradients) and the state buffers s0..s2 are flat float
 * arrays of the same layout, each given as (pointer, element offset). Unused state
 * pointers are bound to some valid buffer and never touched.
 *
 * Groups and ranges: the parameter elements to update form segments (a range of one
 * group, adjacent ranges of the same group merged), each cut into chunks of OPTIM_CHUNK
 * elements starting at its own first element. seg[s] = (first global chunk, first
 * element, end element, group), sorted by first chunk (seg[0].x == 0). Work-item `id`
 * owns one chunk: it finds its segment by binary search, then updates the elements with
 * float4 vectors (PoCL does not vectorise across work-items); a segment's last chunk may
 * end with a partial float4. Per-group scalars ga..ge are float16 arguments indexed by
 * group (shuffle picks the component), captured at enqueue time, so changing a learning
 * rate never needs a buffer write. One launch per step, whatever the number of groups.
 *
 * Clipping: clip_sumsq gives one partial sum of squares per CLIP_CHUNK elements (16
 * lanes, combined pairwise), clip_finish adds the partials in index order (compensated)
 * on a single work-item and derives PyTorch's coefficient; clip_scale and clip_value
 * touch OPTIM_CHUNK elements per work-item. Fixed order everywhere: results do not
 * depend on the launch geometry or the device's scheduling.
 *
 * Checked under Oclgrind (--check-api --data-races: no reports). Its --uninitialized
 * mode (21.10) is not usable here: it flags lanes of float4/float16 values whose inputs
 * are all initialised and segfaults on plain float16 code, so it is left out.
 */
#pragma OPENCL FP_CONTRACT OFF

#ifndef OPTIM_CHUNK
#define OPTIM_CHUNK 256
#endif
#if OPTIM_CHUNK % 4 != 0
#error "OPTIM_CHUNK must be a multiple of 4"
#endif
#ifndef CLIP_CHUNK
#define CLIP_CHUNK 1024
#endif

/* flag bits, shared with lib/train/optim.c */
#define OPTIM_F_MAXIMIZE 1u
#define OPTIM_F_NESTEROV 2u
#define OPTIM_F_AMSGRAD 4u
#define OPTIM_F_DECOUPLED 8u
#define OPTIM_F_CENTERED 16u

/* n (1..4) elements at x as a float4, zero-padded */
static float4 ld4(const __global float *x, uint n)
{
    if (n >= 4)
        return vload4(0, x);
    float4 v = (float4)(0.0f);
    v.s0 = x[0];
    if (n > 1)
        v.s1 = x[1];
    if (n > 2)
        v.s2 = x[2];
    return v;
}

static void st4(__global float *x, uint n, float4 v)
{
    if (n >= 4) {
        vstore4(v, 0, x);
        return;
    }
    x[0] = v.s0;
    if (n > 1)
        x[1] = v.s1;
    if (n > 2)
        x[2] = v.s2;
}

/* torch.maximum: NaN if either is NaN */
static float4 nan_max4(float4 a, float4 b)
{
    float4 r = select(a, b, b > a);
    return select(r, b, isnan(b));
}

/* The gradient of n (1..4) elements as every rule starts: negated when maximizing, plus
 * wd * param (weight_decay's d_p.add(param, alpha=wd); wd 0: none). */
static float4 grad4(const __global float *g, uint n, float4 pv, float wd, uint flags)
{
    float4 d = ld4(g, n);
    if (flags & OPTIM_F_MAXIMIZE)
        d = -d;
    if (wd != 0.0f)
        d = fma((float4)(wd), pv, d);
    return d;
}

/* the segment holding chunk `id`: the last s with seg[s].x <= id */
static uint4 find_segment(__global const uint4 *seg, uint nseg, uint id)
{
    uint a = 0, b = nseg;
    while (b - a > 1) {
        const uint m = a + (b - a) / 2;
        if (seg[m].x <= id)
            a = m;
        else
            b = m;
    }
    return seg[a];
}

#define PICK(v, k) (shuffle((v), (uint16)(k)).s0)

#define OPTIM_ARGS                                                                         \
    __global float *p, const uint p_off, __global const float *g, const uint g_off,        \
        __global float *s0, const uint s0_off, __global float *s1, const uint s1_off,      \
        __global float *s2, const uint s2_off, __global const uint4 *seg, const uint nseg, \
        const uint nchunks, const float16 ga, const float16 gb, const float16 gc,          \
        const float16 gd, const float16 ge, const float c0, const float c1, const float c2,  \
        const uint flags

/* the element range [lo, hi) of this work-item and its group k */
#define OPTIM_PROLOGUE                                                                     \
    const uint id = get_global_id(0);                                                      \
    if (id >= nchunks)                                                                     \
        return;                                                                            \
    const uint4 sg = find_segment(seg, nseg, id);                                          \
    const uint k = sg.w;                                                                   \
    const uint lo = sg.y + (id - sg.x) * (uint)OPTIM_CHUNK;                                \
    const uint hi = min(lo + (uint)OPTIM_CHUNK, sg.z);                                     \
    p += p_off;                                                                            \
    g += g_off;                                                                            \
    s0 += s0_off;                                                                          \
    s1 += s1_off;                                                                          \
    s2 += s2_off;

/* SGD. ga: -lr, gb: weight_decay, gc: momentum, gd: 1 on the momentum buffer's first
 * step (buf = d_p); c0: 1 - dampening. s0: momentum buffer. */
__kernel void optim_sgd(OPTIM_ARGS)
{
    OPTIM_PROLOGUE
    const float neg_lr = PICK(ga, k), wd = PICK(gb, k), mom = PICK(gc, k);
    const bool first = PICK(gd, k) != 0.0f;
    const float omd = c0;
    for (uint i = lo; i < hi; i += 4) {
        const uint n = min(4u, hi - i);
        const float4 pv = ld4(p + i, n);
        float4 d = grad4(g + i, n, pv, wd, flags);
        if (mom != 0.0f) {
            float4 b = first ? d : fma((float4)(omd), d, ld4(s0 + i, n) * mom);
            st4(s0 + i, n, b);
            d = (flags & OPTIM_F_NESTEROV) ? fma((float4)(mom), b, d) : b;
        }
        st4(p + i, n, fma((float4)(neg_lr), d, pv)); /* param.add_(d_p, alpha=-lr) */
    }
}

/* Adam and AdamW. ga: -lr/bias_correction1, gb: weight_decay (Adam) or 1 - lr*wd
 * (AdamW, flag DECOUPLED), gc: sqrt(bias_correction2), gd: beta1, ge: 1 - beta1;
 * c0: beta2, c1: 1 - beta2, c2: eps. s0: exp_avg, s1: exp_avg_sq, s2: max_exp_avg_sq. */
__kernel void optim_adam(OPTIM_ARGS)
{
    OPTIM_PROLOGUE
    const float neg_step = PICK(ga, k), wd = PICK(gb, k), bc2_sqrt = PICK(gc, k);
    const float beta1 = PICK(gd, k), omb1 = PICK(ge, k);
    const float beta2 = c0, omb2 = c1, eps = c2;
    for (uint i = lo; i < hi; i += 4) {
        const uint n = min(4u, hi - i);
        float4 pv = ld4(p + i, n);
        float4 d = ld4(g + i, n);
        if (flags & OPTIM_F_MAXIMIZE)
            d = -d;
        /* not grad4: AdamW decays the parameter instead, and passing that choice
         * through grad4 made PoCL generate a longer loop */
        if (flags & OPTIM_F_DECOUPLED)
            pv = pv * wd; /* param.mul_(1 - lr * weight_decay) */
        else if (wd != 0.0f)
            d = fma((float4)(wd), pv, d);
        const float4 m = fma((float4)(omb1), d, ld4(s0 + i, n) * beta1);
        const float4 v = fma(omb2 * d, d, ld4(s1 + i, n) * beta2);
        st4(s0 + i, n, m);
        st4(s1 + i, n, v);
        float4 vv = v;
        if (flags & OPTIM_F_AMSGRAD) {
            vv = nan_max4(ld4(s2 + i, n), v);
            st4(s2 + i, n, vv);
        }
        const float4 denom = sqrt(vv) / bc2_sqrt + eps;
        st4(p + i, n, pv + (neg_step * m) / denom); /* addcdiv_(m, denom, -step_size) */
    }
}

/* RMSprop. ga: -lr, gb: weight_decay, gc: momentum; c0: alpha, c1: 1 - alpha, c2: eps.
 * s0: square_avg, s1: momentum_buffer, s2: grad_avg (centered). */
__kernel void optim_rmsprop(OPTIM_ARGS)
{
    OPTIM_PROLOGUE
    const float neg_lr = PICK(ga, k), wd = PICK(gb, k), mom = PICK(gc, k);
    const float alpha = c0, oma = c1, eps = c2;
    for (uint i = lo; i < hi; i += 4) {
        const uint n = min(4u, hi - i);
        const float4 pv = ld4(p + i, n);
        const float4 d = grad4(g + i, n, pv, wd, flags);
        const float4 sq = fma(oma * d, d, ld4(s0 + i, n) * alpha);
        st4(s0 + i, n, sq);
        float4 avg;
        if (flags & OPTIM_F_CENTERED) {
            const float4 gavg = fma((float4)(oma), d, ld4(s2 + i, n) * alpha);
            st4(s2 + i, n, gavg);
            avg = sqrt(fma(-gavg, gavg, sq)); /* square_avg.addcmul(ga, ga, value=-1) */
        } else {
            avg = sqrt(sq);
        }
        avg = avg + eps;
        if (mom > 0.0f) {
            const float4 b = ld4(s1 + i, n) * mom + d / avg;
            st4(s1 + i, n, b);
            st4(p + i, n, fma((float4)(neg_lr), b, pv));
        } else {
            st4(p + i, n, pv + (neg_lr * d) / avg);
        }
    }
}

/* Adagrad. ga: -lr / (1 + (step - 1) * lr_decay), gb: weight_decay; c2: eps. s0: sum. */
__kernel void optim_adagrad(OPTIM_ARGS)
{
    OPTIM_PROLOGUE
    const float neg_clr = PICK(ga, k), wd = PICK(gb, k);
    const float eps = c2;
    for (uint i = lo; i < hi; i += 4) {
        const uint n = min(4u, hi - i);
        const float4 pv = ld4(p + i, n);
        const float4 d = grad4(g + i, n, pv, wd, flags);
        const float4 sum = fma(d, d, ld4(s0 + i, n));
        st4(s0 + i, n, sum);
        const float4 std = sqrt(sum) + eps;
        st4(p + i, n, pv + (neg_clr * d) / std);
    }
}

/* part[w] = sum of g[i]^2 over i in [w*CLIP_CHUNK, min(n, (w+1)*CLIP_CHUNK)) */
__kernel void clip_sumsq(CT_CARG(g), const uint n, __global float *part)
{
    const uint w = get_global_id(0);
    const uint lo = w * (uint)CLIP_CHUNK;
    if (lo >= n)
        return;
    const uint hi = min(lo + (uint)CLIP_CHUNK, n);
    g += g_off;
    float16 acc = (float16)(0.0f);
    uint i = lo;
    for (; i + 16 <= hi; i += 16) {
        const float16 v = vload16(0, g + i);
        acc = fma(v, v, acc);
    }
    float tail = 0.0f;
    for (; i < hi; i++)
        tail = fma(g[i], g[i], tail);
    part[w] = ct_sum16(acc) + tail;
}

/* One work-item: total = sqrt(sum of part[0..nparts)), compensated, in index order;
 * norm[norm_off] = total; part[nparts] = min(max_norm * (1 / (total + 1e-6)), 1), NaN
 * kept — clip_grad_norm_'s `max_norm / (total_norm + 1e-6)` is reciprocal() * max_norm
 * in torch (Tensor.__rdiv__), then clamp(max=1.0). */
__kernel void clip_finish(__global float *part, const uint nparts, __global float *norm,
                          const uint norm_off, const float max_norm)
{
    if (get_global_id(0) != 0)
        return;
    float s = 0.0f, comp = 0.0f;
    for (uint i = 0; i < nparts; i++) {
        const float y = part[i] - comp;
        const float t = s + y;
        comp = isfinite(t) ? (t - s) - y : 0.0f;
        s = t;
    }
    const float total = sqrt(s);
    norm[norm_off] = total;
    const float coef = (1.0f / (total + 1e-6f)) * max_norm;
    part[nparts] = coef > 1.0f ? 1.0f : coef;
}

/* g *= coef[coef_idx] over OPTIM_CHUNK elements per work-item */
__kernel void clip_scale(CT_ARG(g), const uint n, __global const float *coef,
                         const uint coef_idx)
{
    const uint lo = get_global_id(0) * (uint)OPTIM_CHUNK;
    if (lo >= n)
        return;
    const uint hi = min(lo + (uint)OPTIM_CHUNK, n);
    g += g_off;
    const float c = coef[coef_idx];
    for (uint i = lo; i < hi; i += 4) {
        const uint m = min(4u, hi - i);
        st4(g + i, m, ld4(g + i, m) * c);
    }
}

/* g = min(max(g, lo), hi), NaN kept (torch.clamp) */
__kernel void clip_value(CT_ARG(g), const uint n, const float vlo, const float vhi)
{
    const uint lo = get_global_id(0) * (uint)OPTIM_CHUNK;
    if (lo >= n)
        return;
    const uint hi = min(lo + (uint)OPTIM_CHUNK, n);
    g += g_off;
    for (uint i = lo; i < hi; i += 4) {
        const uint m = min(4u, hi - i);
        float4 v = ld4(g + i, m);
        v = select(v, (float4)(vlo), v < vlo);
        v = select(v, (float4)(vhi), v > vhi);
        st4(g + i, m, v);
    }
}
