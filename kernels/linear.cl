/* kernels/linear.cl — the element-wise parts of the fully connected layer; the products
 * themselves are ct_gemm calls (lib/nn/linear.c, lib/core/gemm.c).
 *
 * linear_bias_act: epilogue of the forward GEMM, in place on y (n, out) row-major:
 *     y[r, o] = act(y[r, o] + b[o]),  act = ReLU (x < 0 ? 0 : x) when relu, else identity;
 *     has_bias = 0 skips the bias (b is then any valid buffer and is not read).
 *   Work-item (g, r) owns y[r, 8g .. 8g+8) with float8 loads; a partial chunk at the end
 *   of a row is done element by element.
 *
 * linear_bias_grad: db[o] += sum over r = 0..n-1 of dy[r, o], dy (n, out) row-major.
 *   Work-item g owns columns [8g, 8g+8) and adds the rows in order r = 0, 1, ..., one
 *   float8 accumulator: a fixed order, so the result is deterministic (no atomics).
 */

__kernel void linear_bias_act(__global float *y, const uint y_off, __global const float *b,
                              const uint b_off, const uint n, const uint out,
                              const uint has_bias, const uint relu)
{
    const uint o = (uint)get_global_id(0) * 8u, r = (uint)get_global_id(1);
    if (o >= out || r >= n)
        return;
    y += y_off + (size_t)r * out;
    b += b_off;
    if (out - o >= 8u) {
        float8 v = vload8(0, y + o);
        if (has_bias)
            v += vload8(0, b + o);
        if (relu)
            v = select(v, (float8)(0.0f), v < (float8)(0.0f));
        vstore8(v, 0, y + o);
    } else {
        for (uint j = o; j < out; j++) {
            float v = y[j];
            if (has_bias)
                v += b[j];
            if (relu)
                v = v < 0.0f ? 0.0f : v;
            y[j] = v;
        }
    }
}

__kernel void linear_bias_grad(__global const float *dy, const uint dy_off, __global float *db,
                               const uint db_off, const uint n, const uint out)
{
    const uint o = (uint)get_global_id(0) * 8u;
    if (o >= out)
        return;
    dy += dy_off;
    db += db_off;
    if (out - o >= 8u) {
        float8 acc = (float8)(0.0f);
        for (uint r = 0; r < n; r++)
            acc += vload8(0, dy + (size_t)r * out + o);
        vstore8(vload8(0, db + o) + acc, 0, db + o);
    } else {
        for (uint j = o; j < out; j++) {
            float acc = 0.0f;
            for (uint r = 0; r < n; r++)
                acc += dy[(size_t)r * out + j];
            db[j] += acc;
        }
    }
}
