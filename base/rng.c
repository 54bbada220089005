/* splitmix64 streams keyed by (seed, key): cheap, counter-based and reproducible. */
#include "base_internal.h"

__extension__ typedef unsigned __int128 u128;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t cm__mix64(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL);
    splitmix(&x);
    return splitmix(&x);
}

void cm__rng_init(cm__rng_t *rng, uint64_t seed, uint64_t key)
{
    rng->state = cm__mix64(seed, key);
}

uint64_t cm__rng_next(cm__rng_t *rng)
{
    return splitmix(&rng->state);
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
