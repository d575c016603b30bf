/* lib/nn/init.c — host-side parameter initialisation, PyTorch's defaults.
 *
 * PyTorch initialises Conv2d and Linear weights with kaiming_uniform_(a=sqrt(5)):
 * bound = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), hence
 * bound = 1 / sqrt(fan_in); their biases with U(-1/sqrt(fan_in), 1/sqrt(fan_in)). The
 * layers compute the bounds (lib/nn/model.c); this file draws the numbers.
 *
 * The generator is splitmix64 (Steele, Lea, Flood 2014), documented in model.h so that
 * other implementations can reproduce a model from its seed: a 64-bit state advanced by
 * 0x9e3779b97f4a7c15, output mixed by two xor-shift-multiply rounds. A uniform float
 * takes the top 24 bits, u = (x >> 40) * 2^-24 in [0, 1), exact in float32.
 */
#include "nn/layer.h"

uint64_t ct_init_rng_next(ct_init_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ct_init_fill(float *dst, size_t n, double bound, float value, ct_init_rng *r)
{
    if (bound <= 0.0) {
        for (size_t i = 0; i < n; i++)
            dst[i] = value;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double u = (double)(ct_init_rng_next(r) >> 40) * 0x1.0p-24;
        dst[i] = (float)(bound * (2.0 * u - 1.0));
    }
}
