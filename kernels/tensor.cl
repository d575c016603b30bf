/* kernels/tensor.cl — whole-tensor utilities.
 *
 * ct_fill: x[i] = value for i < n. Work-item g writes the 4 elements 4g..4g+3 (the last
 * one fewer), so the launch is ceil(n/4) work-items. */

__kernel void ct_fill(CT_ARG(x), const uint n, const float value)
{
    x += x_off;
    const uint i = (uint)get_global_id(0) * 4u;
    if (i + 4u <= n) {
        x[i] = value;
        x[i + 1u] = value;
        x[i + 2u] = value;
        x[i + 3u] = value;
    } else {
        for (uint j = i; j < n; j++)
            x[j] = value;
    }
}
