/* splitmix64 streams keyed by (seed, key): cheap, counter-based and reproducible. */
#include "base_internal.h"

__extension__ typedef unsigned __int128 u128;

void cm__rng_init(cm__rng_t *rng, uint64_t seed, uint64_t key)
{
    rng->state = cm__mix64(seed, key);
}

uint64_t cm__rng_below(cm__rng_t *rng, uint64_t n)
{
    /* Lemire's multiply-and-reject. */
    u128 m = (u128)cm__rng_next(rng) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (u128)cm__rng_next(rng) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double cm__rng_uniform(cm__rng_t *rng)
{
    return (double)(cm__rng_next(rng) >> 11) * 0x1.0p-53;
}
