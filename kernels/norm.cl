/* kernels/norm.cl — batch normalisation (BatchNorm2d and BatchNorm1d), forward in
 * training and eval mode, training-mode backward.
 *
 * Layout: x, y, dy, dx are (N, C, HW) row-major, HW = H*W (1 for BatchNorm1d): the "row"
 * (n, c) is HW contiguous floats at ((n*C + c) * HW). Per-channel vectors (C): gamma,
 * beta, running_mean, running_var, save_mean, save_invstd. M = N*HW values per channel.
 *
 * Reductions are deterministic: channel c is split into S slices of whole rows
 * (slice s covers n in [s*N/S, (s+1)*N/S), S chosen by the host from the shape alone);
 * work-item (s, c) sums its slice in a fixed order (8 float lanes along each row, lanes
 * reduced pairwise, rows added in order) into part[c*S + s]; a per-channel work-item
 * then adds the S partials in order s = 0..S-1. No atomics.
 *
 * Training forward (4 launches):
 *   bn_part_sum    (S, C): part[c*S+s] = sum x over the slice
 *   bn_part_sqdev  (S, C): mean = sum(part)/M; part2[c*S+s] = sum (x - mean)^2 (two-pass
 *                          variance: no cancellation for data with a large mean)
 *   bn_finalize    (C):    mean, var = sum(part2)/M (biased), invstd = 1/sqrt(var + eps),
 *                          save_mean/save_invstd, running_mean = (1-m)*rm + m*mean,
 *                          running_var = (1-m)*rv + m*var*M/(M-1) (unbiased), and the
 *                          coefficients coef = {mean[C], scale[C] = invstd*gamma, beta[C]}
 *   bn_apply       rows:   y = (x - mean) * scale + beta
 * Eval forward: bn_eval_coef (C) builds coef from the running statistics, then bn_apply.
 *
 * Backward (xh = (x - mean) * invstd, from the saved mean/invstd of the forward):
 *   bn_bwd_part    (S, C): part[c*S+s] = sum dy, part2[c*S+s] = sum dy * (x - mean)
 *   bn_bwd_finalize(C):    sdy, sdyx; dbeta += sdy; dgamma += sdyx * invstd;
 *                          coef = {mean, sdy/M, k = sdyx*invstd^2/M, a = invstd*gamma}
 *   bn_bwd_apply   rows:   dx = (dy - sdy/M - (x - mean) * k) * a
 *                        (= gamma*invstd*(dy - mean(dy) - xh*mean(dy*xh)), PyTorch's form)
 *
 * The row kernels come in two shapes: *_2d, one work-item per row n*C + c running along
 * its HW values with float8 loads, and *_1d for HW == 1, work-item (chunk of 8 channels, n)
 * with float8 loads across channels.
 * Absent gamma/beta (affine=false) are flagged by has_gamma/has_beta; the pointer is then
 * any valid buffer and is not read.
 */

/* Fixed-order sum of one row of `hw` floats; with `sq`, of (v - mean)^2; with `mul`, of
 * v * (u - mean) where u is the second row. */
CT_INLINE float8 ct_bn_row8(__global const float *v, __global const float *u, const uint hw,
                            const float mean, const int mode, float *tail)
{
    const uint hw8 = hw & ~7u;
    float8 acc = (float8)(0.0f);
    float t = 0.0f;
    for (uint j = 0; j < hw8; j += 8) {
        const float8 a = vload8(0, v + j);
        if (mode == 0) {
            acc += a;
        } else if (mode == 1) {
            const float8 d = a - mean;
            acc += d * d;
        } else {
            acc += a * (vload8(0, u + j) - mean);
        }
    }
    for (uint j = hw8; j < hw; j++) {
        const float a = v[j];
        if (mode == 0)
            t += a;
        else if (mode == 1)
            t += (a - mean) * (a - mean);
        else
            t += a * (u[j] - mean);
    }
    *tail = t;
    return acc;
}

CT_INLINE float ct_bn_hsum8(float8 v)
{
    float4 a = v.lo + v.hi;
    float2 b = a.lo + a.hi;
    return b.x + b.y;
}

/* Sum over slice s of channel c: rows n in [s*N/S, (s+1)*N/S). */
CT_INLINE float ct_bn_slice_sum(__global const float *v, __global const float *u, const uint N,
                                const uint C, const uint hw, const uint S, const uint s,
                                const uint c, const float mean, const int mode)
{
    const uint n0 = (uint)(((ulong)s * N) / S), n1 = (uint)(((ulong)(s + 1) * N) / S);
    float total = 0.0f;
    for (uint n = n0; n < n1; n++) {
        const size_t row = ((size_t)n * C + c) * hw;
        float tail;
        const float8 acc = ct_bn_row8(v + row, u + row, hw, mean, mode, &tail);
        total += ct_bn_hsum8(acc) + tail;
    }
    return total;
}

CT_INLINE float ct_bn_parts(__global const float *part, const uint S, const uint c)
{
    float s = 0.0f;
    for (uint i = 0; i < S; i++)
        s += part[(size_t)c * S + i];
    return s;
}

/* ---- training forward ------------------------------------------------------------ */

__kernel void bn_part_sum(__global const float *x, const uint x_off, __global float *part,
                          const uint N, const uint C, const uint hw, const uint S)
{
    const uint s = (uint)get_global_id(0), c = (uint)get_global_id(1);
    if (s >= S || c >= C)
        return;
    x += x_off;
    part[(size_t)c * S + s] = ct_bn_slice_sum(x, x, N, C, hw, S, s, c, 0.0f, 0);
}

__kernel void bn_part_sqdev(__global const float *x, const uint x_off,
                            __global const float *part, __global float *part2, const uint N,
                            const uint C, const uint hw, const uint S, const float inv_m)
{
    const uint s = (uint)get_global_id(0), c = (uint)get_global_id(1);
    if (s >= S || c >= C)
        return;
    x += x_off;
    const float mean = ct_bn_parts(part, S, c) * inv_m;
    part2[(size_t)c * S + s] = ct_bn_slice_sum(x, x, N, C, hw, S, s, c, mean, 1);
}

__kernel void bn_finalize(__global const float *part, __global const float *part2,
                          __global const float *gamma, const uint gamma_off,
                          __global const float *beta, const uint beta_off,
                          __global float *rmean, const uint rmean_off, __global float *rvar,
                          const uint rvar_off, __global float *smean, const uint smean_off,
                          __global float *sinvstd, const uint sinvstd_off,
                          __global float *coef, const uint C, const uint S, const float inv_m,
                          const float unbias, const float eps, const float momentum,
                          const uint flags)
{
    const uint c = (uint)get_global_id(0);
    if (c >= C)
        return;
    /* flags: 1 gamma, 2 beta, 4 running stats, 8 save tensors */
    const float mean = ct_bn_parts(part, S, c) * inv_m;
    const float var = ct_bn_parts(part2, S, c) * inv_m;
    const float invstd = 1.0f / sqrt(var + eps);
    if (flags & 4u) {
        rmean[rmean_off + c] = (1.0f - momentum) * rmean[rmean_off + c] + momentum * mean;
        rvar[rvar_off + c] = (1.0f - momentum) * rvar[rvar_off + c] + momentum * var * unbias;
    }
    if (flags & 8u) {
        smean[smean_off + c] = mean;
        sinvstd[sinvstd_off + c] = invstd;
    }
    coef[c] = mean;
    coef[C + c] = (flags & 1u) ? invstd * gamma[gamma_off + c] : invstd;
    coef[2u * C + c] = (flags & 2u) ? beta[beta_off + c] : 0.0f;
}

/* ---- eval forward ---------------------------------------------------------------- */

__kernel void bn_eval_coef(__global const float *gamma, const uint gamma_off,
                           __global const float *beta, const uint beta_off,
                           __global const float *rmean, const uint rmean_off,
                           __global const float *rvar, const uint rvar_off,
                           __global float *coef, const uint C, const float eps,
                           const uint flags)
{
    const uint c = (uint)get_global_id(0);
    if (c >= C)
        return;
    const float invstd = 1.0f / sqrt(rvar[rvar_off + c] + eps);
    coef[c] = rmean[rmean_off + c];
    coef[C + c] = (flags & 1u) ? invstd * gamma[gamma_off + c] : invstd;
    coef[2u * C + c] = (flags & 2u) ? beta[beta_off + c] : 0.0f;
}

/* ---- y = (x - mean) * scale + shift --------------------------------------------- */

__kernel void bn_apply_2d(__global const float *x, const uint x_off, __global float *y,
                          const uint y_off, __global const float *coef, const uint N,
                          const uint C, const uint hw)
{
    const uint row = (uint)get_global_id(0);
    if (row >= N * C)
        return;
    const uint c = row % C, hw8 = hw & ~7u;
    const float mean = coef[c], scale = coef[C + c], shift = coef[2u * C + c];
    x += x_off + (size_t)row * hw;
    y += y_off + (size_t)row * hw;
    for (uint j = 0; j < hw8; j += 8)
        vstore8((vload8(0, x + j) - mean) * scale + shift, 0, y + j);
    for (uint j = hw8; j < hw; j++)
        y[j] = (x[j] - mean) * scale + shift;
}

__kernel void bn_apply_1d(__global const float *x, const uint x_off, __global float *y,
                          const uint y_off, __global const float *coef, const uint N,
                          const uint C)
{
    const uint c = (uint)get_global_id(0) * 8u, n = (uint)get_global_id(1);
    if (c >= C || n >= N)
        return;
    x += x_off + (size_t)n * C;
    y += y_off + (size_t)n * C;
    if (C - c >= 8u) {
        const float8 mean = vload8(0, coef + c), scale = vload8(0, coef + C + c),
                     shift = vload8(0, coef + 2u * C + c);
        vstore8((vload8(0, x + c) - mean) * scale + shift, 0, y + c);
    } else {
        for (uint k = c; k < C; k++)
            y[k] = (x[k] - coef[k]) * coef[C + k] + coef[2u * C + k];
    }
}

/* ---- backward -------------------------------------------------------------------- */

__kernel void bn_bwd_part(__global const float *x, const uint x_off, __global const float *dy,
                          const uint dy_off, __global const float *smean,
                          const uint smean_off, __global float *part, __global float *part2,
                          const uint N, const uint C, const uint hw, const uint S)
{
    const uint s = (uint)get_global_id(0), c = (uint)get_global_id(1);
    if (s >= S || c >= C)
        return;
    x += x_off;
    dy += dy_off;
    const float mean = smean[smean_off + c];
    part[(size_t)c * S + s] = ct_bn_slice_sum(dy, dy, N, C, hw, S, s, c, 0.0f, 0);
    part2[(size_t)c * S + s] = ct_bn_slice_sum(dy, x, N, C, hw, S, s, c, mean, 2);
}

__kernel void bn_bwd_finalize(__global const float *part, __global const float *part2,
                              __global const float *gamma, const uint gamma_off,
                              __global const float *smean, const uint smean_off,
                              __global const float *sinvstd, const uint sinvstd_off,
                              __global float *dgamma, const uint dgamma_off,
                              __global float *dbeta, const uint dbeta_off,
                              __global float *coef, const uint C, const uint S,
                              const float inv_m, const uint flags)
{
    const uint c = (uint)get_global_id(0);
    if (c >= C)
        return;
    /* flags: 1 gamma, 2 dgamma, 4 dbeta */
    const float sdy = ct_bn_parts(part, S, c);
    const float sdyx = ct_bn_parts(part2, S, c);
    const float invstd = sinvstd[sinvstd_off + c];
    if (flags & 2u)
        dgamma[dgamma_off + c] += sdyx * invstd;
    if (flags & 4u)
        dbeta[dbeta_off + c] += sdy;
    coef[c] = smean[smean_off + c];
    coef[C + c] = sdy * inv_m;
    coef[2u * C + c] = sdyx * invstd * invstd * inv_m;
    coef[3u * C + c] = (flags & 1u) ? invstd * gamma[gamma_off + c] : invstd;
}

__kernel void bn_bwd_apply_2d(__global const float *x, const uint x_off,
                              __global const float *dy, const uint dy_off, __global float *dx,
                              const uint dx_off, __global const float *coef, const uint N,
                              const uint C, const uint hw)
{
    const uint row = (uint)get_global_id(0);
    if (row >= N * C)
        return;
    const uint c = row % C, hw8 = hw & ~7u;
    const float mean = coef[c], mdy = coef[C + c], k = coef[2u * C + c], a = coef[3u * C + c];
    x += x_off + (size_t)row * hw;
    dy += dy_off + (size_t)row * hw;
    dx += dx_off + (size_t)row * hw;
    for (uint j = 0; j < hw8; j += 8) {
        const float8 v = vload8(0, dy + j) - mdy - (vload8(0, x + j) - mean) * k;
        vstore8(v * a, 0, dx + j);
    }
    for (uint j = hw8; j < hw; j++)
        dx[j] = (dy[j] - mdy - (x[j] - mean) * k) * a;
}

__kernel void bn_bwd_apply_1d(__global const float *x, const uint x_off,
                              __global const float *dy, const uint dy_off, __global float *dx,
                              const uint dx_off, __global const float *coef, const uint N,
                              const uint C)
{
    const uint c = (uint)get_global_id(0) * 8u, n = (uint)get_global_id(1);
    if (c >= C || n >= N)
        return;
    x += x_off + (size_t)n * C;
    dy += dy_off + (size_t)n * C;
    dx += dx_off + (size_t)n * C;
    if (C - c >= 8u) {
        const float8 mean = vload8(0, coef + c), mdy = vload8(0, coef + C + c),
                     k = vload8(0, coef + 2u * C + c), a = vload8(0, coef + 3u * C + c);
        vstore8((vload8(0, dy + c) - mdy - (vload8(0, x + c) - mean) * k) * a, 0, dx + c);
    } else {
        for (uint i = c; i < C; i++)
            dx[i] = (dy[i] - coef[C + i] - (x[i] - coef[i]) * coef[2u * C + i]) *
                    coef[3u * C + i];
    }
}
