/* splitmix64 streams keyed by (seed, key): cheap, counter-based and reproducible. */
#include "cm_base.h"

__extension__ typedef unsigned __int128 u128;

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t cm_mix64(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL);
    splitmix(&x);
    return splitmix(&x);
}

void cm_rng_init(cm_rng_t *rng, uint64_t seed, uint64_t key)
{
    rng->state = cm_mix64(seed, key);
}

uint64_t cm_rng_next(cm_rng_t *rng)
{
    return splitmix(&rng->state);
}

uint64_t cm_rng_below(cm_rng_t *rng, uint64_t n)
{
    /* Lemire's multiply-and-reject. */
    u128 m = (u128)cm_rng_next(rng) * n;
    uint64_t lo = (uint64_t)m;
    if (lo < n) {
        uint64_t t = -n % n;
        while (lo < t) {
            m = (u128)cm_rng_next(rng) * n;
            lo = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

double cm_rng_uniform(cm_rng_t *rng)
{
    return (double)(cm_rng_next(rng) >> 11) * 0x1.0p-53;
}
