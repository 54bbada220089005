/* What the library's folders share of base/ beyond its public headers: the context's helpers,
 * overflow-checked sizes and the counter-based random generator. Not installed. */
#ifndef CM_BASE_INTERNAL_H
#define CM_BASE_INTERNAL_H

#include <stdarg.h>

#include "cm_base.h"

/* cm_fail with a va_list; and cm_fail_about (about NULL: about no setting). */
int cm__vfail(cm_ctx_t *ctx, int code, const char *fmt, va_list ap);
int cm__vfail_about(cm_ctx_t *ctx, int code, const cm_about_t *about, const char *fmt, va_list ap);

/* Records from's failure (code, message and what it is about) in to, unless to holds one
 * already; returns from's code. Thread-safe for to. */
int cm__ctx_pass(cm_ctx_t *to, const cm_ctx_t *from);

/* Puts "prefix: " before the message of a context no other thread uses, keeping where it names
 * its setting. */
void cm__ctx_prefix(cm_ctx_t *ctx, const char *prefix);

/* Writes all n bytes of buf at offset of fd, again after EINTR and short writes: false with
 * errno (EIO for a write of nothing). */
bool cm__pwrite_all(int fd, const void *buf, size_t n, uint64_t offset);

/* Overflow-checked size arithmetic: return false when the result does not fit. */
static inline bool cm__mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cm__mul3_size(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    return cm__mul_size(a, b, &ab) && cm__mul_size(ab, c, out);
}
static inline bool cm__add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* The same for pixel counts and positions (int64_t): false when the result does not fit. */
static inline bool cm__mul_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cm__add_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
/* ceil(a / b) for a >= 0 and b > 0, without the overflow of (a + b - 1) / b near INT64_MAX. */
static inline int64_t cm__ceil_div_i64(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

/* Counter-based random numbers: a stream is keyed by (seed, key) and its values depend on
 * nothing else, so any task can draw its own numbers whatever thread runs it. */
typedef struct cm__rng {
    uint64_t state;
} cm__rng_t;

/* One step of splitmix64. Inline, with cm__mix64 and cm__rng_next: the sample hashes every
 * pixel of the cells it reads, and a call per pixel cost more than the hash. */
static inline uint64_t cm__splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A 64-bit mix of two words (splitmix64 finaliser); used to derive keys. */
static inline uint64_t cm__mix64(uint64_t a, uint64_t b)
{
    uint64_t x = a ^ (b * 0xd1342543de82ef95ULL);
    cm__splitmix(&x);
    return cm__splitmix(&x);
}

/* Starts the stream for (seed, key); key usually encodes a step and a chunk index. */
void cm__rng_init(cm__rng_t *rng, uint64_t seed, uint64_t key);
static inline uint64_t cm__rng_next(cm__rng_t *rng)
{
    return cm__splitmix(&rng->state);
}
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t cm__rng_below(cm__rng_t *rng, uint64_t n);
/* Uniform double in [0, 1). */
double cm__rng_uniform(cm__rng_t *rng);

#endif
