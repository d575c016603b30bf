/* kernels/batch.cl — gathering a mini-batch from a dataset resident on the device.
 *
 * images: N x C x H x W uint8 (row-major), labels: N uint8, order: the epoch's sample
 * order (uint32). Batch row r takes sample order[start + r].
 * x: (n, C, H, W) float32, y: (n) float32 class indices.
 *
 * One work-item per output row (r, c, h): it writes W pixels. With augmentation, sample
 * position p = start + r draws two hash values from (seed, epoch, p): a crop offset
 * (dy, dx) in [0, 2*pad]^2 and a flip bit. The crop reads the zero-padded image at
 * (h + dy, w' + dx) with dy, dx in [-pad, pad] (pixels outside are the padding zeros), where
 * w' = W-1-w when flipped: RandomCrop(padding) followed by RandomHorizontalFlip, as in
 * torchvision. Normalisation:
 * v = p / 255; x = (v - mean[c]) / std[c] (mean/std for up to 4 channels). */

/* 32-bit avalanche hash (lowbias32 by C. Wellons): portable, no 64-bit integers needed. */
CT_INLINE uint ct_hash32(uint x)
{
    x ^= x >> 16;
    x *= 0x7feb352du;
    x ^= x >> 15;
    x *= 0x846ca68bu;
    x ^= x >> 16;
    return x;
}

__kernel void ct_gather_batch(__global const uchar *images, __global const uchar *labels,
                              __global const uint *order, const uint start, const uint n,
                              const uint C, const uint H, const uint W, CT_ARG(x), CT_ARG(y),
                              const float4 mean, const float4 stdev, const uint pad,
                              const uint hflip, const uint seed_lo, const uint seed_hi,
                              const uint epoch)
{
    x += x_off;
    y += y_off;
    const uint row = (uint)get_global_id(0); /* over n * C * H */
    if (row >= n * C * H)
        return;
    const uint h = row % H;
    const uint c = (row / H) % C;
    const uint r = row / (H * C);
    const uint sample = order[start + r];
    __global const uchar *img = images + ((size_t)sample * C + c) * H * W;

    int dy = 0, dx = 0;
    uint flip = 0;
    if (pad > 0 || hflip) {
        const uint key =
            ct_hash32(seed_lo ^ ct_hash32(seed_hi ^ ct_hash32(epoch ^ ct_hash32(start + r))));
        const uint span = 2u * pad + 1u;
        if (pad > 0) {
            dy = (int)(ct_hash32(key ^ 0x68e31da4u) % span) - (int)pad;
            dx = (int)(ct_hash32(key ^ 0xb5297a4du) % span) - (int)pad;
        }
        flip = hflip ? (ct_hash32(key ^ 0x1b56c4e9u) & 1u) : 0u;
    }
    const float m = c == 0 ? mean.s0 : c == 1 ? mean.s1 : c == 2 ? mean.s2 : mean.s3;
    const float s = c == 0 ? stdev.s0 : c == 1 ? stdev.s1 : c == 2 ? stdev.s2 : stdev.s3;
    __global float *out = x + ((size_t)(r * C + c) * H + h) * W;
    const int sh = (int)h + dy;
    for (uint w = 0; w < W; w++) {
        const int sw = (int)(flip ? W - 1u - w : w) + dx;
        float v = 0.0f;
        if (sh >= 0 && sh < (int)H && sw >= 0 && sw < (int)W)
            v = (float)img[(uint)sh * W + (uint)sw] / 255.0f;
        else
            v = 0.0f; /* zero padding happens before normalisation, as in torchvision */
        out[w] = (v - m) / s;
    }
    if (c == 0 && h == 0)
        y[r] = (float)labels[sample];
}
