/* kernels/act.cl — element-wise activations (forward and backward) and row-wise softmax.
 *
 * Activations, any shape, flattened to n contiguous floats:
 *     act_<kind>_fwd:  y  = act(x)
 *     act_<kind>_bwd:  dx = dy * act'(.)
 * for kind in relu, leaky (LeakyReLU with `slope`), sigmoid, tanh, with PyTorch's
 * formulas and choices at the edges:
 *     relu:    y = x < 0 ? 0 : x  (NaN stays NaN)   dx = x <= 0 ? 0 : dy
 *     leaky:   y = x > 0 ? x : x * slope            dx = x > 0 ? dy : dy * slope
 *     sigmoid: y = 1 / (1 + exp(-x))                dx = dy * (1 - y) * y
 *     tanh:    y = tanh(x)                          dx = dy * (1 - y * y)
 * The backward reads `src`: x for relu/leaky, the forward OUTPUT y for sigmoid/tanh.
 * tanh is made exactly +-1 for |x| > 9.1, where the correctly rounded float result is +-1
 * anyway (PoCL's tanh stops at 1 - 2^-24 there).
 * Work-item i handles elements [8i, 8i + 8) with float8 loads (PoCL does not vectorize
 * across work-items); the last one finishes a partial chunk element by element. Inputs
 * and outputs may alias (in place): each element is read before it is written by the
 * same work-item, and no other work-item touches it.
 *
 * softmax_fwd: x, y (n, f) row-major. Work-item r owns row r: max, then sum of
 * exp(x - max) in 8 lanes reduced in a fixed order, then the output
 *     y = exp(x - max) / sum        or, with log_out,    y = (x - max) - log(sum).
 * Every tensor is (buffer, element offset); views need no alignment (vloadn needs
 * only float alignment).
 */

/* ---- per-element functions, for float and float8 -------------------------------- */

#define CT_ACT_FUNCS(T)                                                                    \
    inline T relu_f_##T(T v, float s)                                                     \
    {                                                                                      \
        return select(v, (T)(0.0f), v < (T)(0.0f));                                        \
    }                                                                                      \
    inline T leaky_f_##T(T v, float s)                                                    \
    {                                                                                      \
        return select(v * s, v, v > (T)(0.0f));                                            \
    }                                                                                      \
    inline T sigmoid_f_##T(T v, float s)                                                  \
    {                                                                                      \
        return (T)(1.0f) / ((T)(1.0f) + exp(-v));                                          \
    }                                                                                      \
    inline T tanh_f_##T(T v, float s)                                                     \
    {                                                                                      \
        return select(tanh(v), copysign((T)(1.0f), v), fabs(v) > (T)(9.1f));               \
    }                                                                                      \
    inline T relu_b_##T(T src, T g, float s)                                              \
    {                                                                                      \
        return select(g, (T)(0.0f), src <= (T)(0.0f));                                      \
    }                                                                                      \
    inline T leaky_b_##T(T src, T g, float s)                                             \
    {                                                                                      \
        return select(g * s, g, src > (T)(0.0f));                                          \
    }                                                                                      \
    inline T sigmoid_b_##T(T src, T g, float s)                                           \
    {                                                                                      \
        return g * ((T)(1.0f) - src) * src;                                                \
    }                                                                                      \
    inline T tanh_b_##T(T src, T g, float s)                                              \
    {                                                                                      \
        return g * ((T)(1.0f) - src * src);                                                \
    }

CT_ACT_FUNCS(float)
CT_ACT_FUNCS(float8)

/* ---- kernels ---------------------------------------------------------------------- */

#define CT_ACT_KERNELS(K)                                                                  \
    __kernel void act_##K##_fwd(__global const float *x, const uint x_off,                \
                                __global float *y, const uint y_off, const uint n,        \
                                const float slope)                                        \
    {                                                                                      \
        x += x_off;                                                                        \
        y += y_off;                                                                        \
        const uint i = (uint)get_global_id(0) * 8u;                                        \
        if (i >= n)                                                                        \
            return;                                                                        \
        if (n - i >= 8u) {                                                                 \
            vstore8(K##_f_float8(vload8(0, x + i), slope), 0, y + i);                      \
        } else {                                                                           \
            for (uint j = i; j < n; j++)                                                   \
                y[j] = K##_f_float(x[j], slope);                                           \
        }                                                                                  \
    }                                                                                      \
    __kernel void act_##K##_bwd(__global const float *src, const uint src_off,            \
                                __global const float *dy, const uint dy_off,              \
                                __global float *dx, const uint dx_off, const uint n,      \
                                const float slope)                                        \
    {                                                                                      \
        src += src_off;                                                                    \
        dy += dy_off;                                                                      \
        dx += dx_off;                                                                      \
        const uint i = (uint)get_global_id(0) * 8u;                                        \
        if (i >= n)                                                                        \
            return;                                                                        \
        if (n - i >= 8u) {                                                                 \
            vstore8(K##_b_float8(vload8(0, src + i), vload8(0, dy + i), slope), 0, dx + i); \
        } else {                                                                           \
            for (uint j = i; j < n; j++)                                                   \
                dx[j] = K##_b_float(src[j], dy[j], slope);                                 \
        }                                                                                  \
    }

CT_ACT_KERNELS(relu)
CT_ACT_KERNELS(leaky)
CT_ACT_KERNELS(sigmoid)
CT_ACT_KERNELS(tanh)

/* Sum of the 8 lanes in a fixed order (pairwise). */
CT_INLINE float ct_act_hsum8(float8 v)
{
    float4 a = v.lo + v.hi;
    float2 b = a.lo + a.hi;
    return b.x + b.y;
}

CT_INLINE float ct_act_hmax8(float8 v)
{
    float4 a = fmax(v.lo, v.hi);
    float2 b = fmax(a.lo, a.hi);
    return fmax(b.x, b.y);
}

/* x, y: (n, f). One work-item per row. */
__kernel void softmax_fwd(__global const float *x, const uint x_off, __global float *y,
                          const uint y_off, const uint n, const uint f, const uint log_out)
{
    const uint r = (uint)get_global_id(0);
    if (r >= n)
        return;
    x += x_off + (size_t)r * f;
    y += y_off + (size_t)r * f;
    const uint f8 = f & ~7u;

    float8 m8 = (float8)(-INFINITY);
    for (uint j = 0; j < f8; j += 8)
        m8 = fmax(m8, vload8(0, x + j));
    float m = ct_act_hmax8(m8);
    for (uint j = f8; j < f; j++)
        m = fmax(m, x[j]);

    float8 s8 = (float8)(0.0f);
    for (uint j = 0; j < f8; j += 8)
        s8 += exp(vload8(0, x + j) - m);
    float s = ct_act_hsum8(s8);
    for (uint j = f8; j < f; j++)
        s += exp(x[j] - m);

    if (log_out) {
        const float ls = log(s);
        for (uint j = 0; j < f8; j += 8)
            vstore8((vload8(0, x + j) - m) - ls, 0, y + j);
        for (uint j = f8; j < f; j++)
            y[j] = (x[j] - m) - ls;
    } else {
        for (uint j = 0; j < f8; j += 8)
            vstore8(exp(vload8(0, x + j) - m) / s, 0, y + j);
        for (uint j = f8; j < f; j++)
            y[j] = exp(x[j] - m) / s;
    }
}
