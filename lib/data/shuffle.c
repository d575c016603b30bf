/* lib/data/shuffle.c — reproducible permutations: splitmix64 seeds xoshiro256**, whose
 * draws drive a Fisher-Yates shuffle with unbiased bounded integers (rejection). Every
 * step is integer arithmetic mod 2^64, so the result is the same on every platform; the
 * exact recipe is documented at ct_shuffle_permutation() in cltrain/data.h. */
#include "data/data_internal.h"

typedef struct shuffle_rng {
    uint64_t s[4];
} shuffle_rng;

static uint64_t splitmix64(uint64_t *z)
{
    uint64_t r = (*z += 0x9E3779B97F4A7C15ULL);
    r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ULL;
    r = (r ^ (r >> 27)) * 0x94D049BB133111EBULL;
    return r ^ (r >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro256ss(shuffle_rng *g)
{
    uint64_t *s = g->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, bound), bound >= 1: rejecting the lowest (2^64 mod bound) values leaves a
 * range whose size is a multiple of bound. */
static uint64_t uniform_below(shuffle_rng *g, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound;
    uint64_t x;
    do {
        x = xoshiro256ss(g);
    } while (x < threshold);
    return x % bound;
}

void ct_shuffle_permutation(uint64_t seed, uint64_t stream, size_t n, size_t *perm)
{
    shuffle_rng g;
    uint64_t z = seed ^ (stream * 0xD1342543DE82EF95ULL);
    for (int i = 0; i < 4; i++)
        g.s[i] = splitmix64(&z);
    if ((g.s[0] | g.s[1] | g.s[2] | g.s[3]) == 0)
        g.s[0] = 1;
    for (size_t i = 0; i < n; i++)
        perm[i] = i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)uniform_below(&g, (uint64_t)i + 1);
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}
