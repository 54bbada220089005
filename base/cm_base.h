/* What every module may use: error codes and the error context, overflow-checked sizes and
 * the counter-based random generator. Knows nothing of images, files or threads' work. */
#ifndef CM_BASE_H
#define CM_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: functions return 0 or one of these (negative). */
enum {
    CM_OK = 0,
    CM_EUSAGE = -1,    /* bad option or value given by the caller */
    CM_EINPUT = -2,    /* bad, corrupt or unsupported input */
    CM_EIO = -3,       /* reading or writing failed (disk full, permissions, ...) */
    CM_ENOMEM = -4,    /* an allocation failed */
    CM_EBUDGET = -5,   /* the memory budget is too small for the plan */
    CM_EINTERNAL = -6, /* a bug: an invariant did not hold */
    CM_ECANCELED = -7, /* the work was cancelled (another task failed, or a signal) */
};

#define CM_MSG_MAX 512

/* The error context of one run. The first failure recorded wins: later ones (often
 * consequences of the first) are dropped. Thread-safe. */
typedef struct cm_ctx {
    int code;
    char msg[CM_MSG_MAX];
    int lock; /* spin flag guarding code and msg */
} cm_ctx_t;

void cm_ctx_init(cm_ctx_t *ctx);

/* Records a failure (if none is recorded yet) and returns code, so callers can write
 * `return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF", path);`. */
int cm_fail(cm_ctx_t *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int cm_vfail(cm_ctx_t *ctx, int code, const char *fmt, va_list ap);

/* Short name of an error code ("bad input", "I/O error", ...). */
const char *cm_strerror(int code);

/* Evaluate an expression returning an error code; return it from the caller if negative. */
#define CM_TRY(expr)                                                                               \
    do {                                                                                           \
        int cm_try_rc_ = (expr);                                                                   \
        if (cm_try_rc_ < 0) return cm_try_rc_;                                                     \
    } while (0)

/* Record a failure and return its code from the caller when cond holds. */
#define CM_FAIL_IF(ctx, cond, code, ...)                                                           \
    do {                                                                                           \
        if (cond) return cm_fail((ctx), (code), __VA_ARGS__);                                      \
    } while (0)

/* Overflow-checked size arithmetic: return false when the result does not fit. */
static inline bool cm_mul_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cm_mul3_size(size_t a, size_t b, size_t c, size_t *out)
{
    size_t ab;
    return cm_mul_size(a, b, &ab) && cm_mul_size(ab, c, out);
}
static inline bool cm_add_size(size_t a, size_t b, size_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}

/* The same for pixel counts and positions (int64_t): false when the result does not fit. */
static inline bool cm_mul_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool cm_add_i64(int64_t a, int64_t b, int64_t *out)
{
    return !__builtin_add_overflow(a, b, out);
}
/* ceil(a / b) for a >= 0 and b > 0, without the overflow of (a + b - 1) / b near INT64_MAX. */
static inline int64_t cm_ceil_div_i64(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

/* Counter-based random numbers: a stream is keyed by (seed, key) and its values depend on
 * nothing else, so any task can draw its own numbers whatever thread runs it. */
typedef struct cm_rng {
    uint64_t state;
} cm_rng_t;

/* Starts the stream for (seed, key); key usually encodes a step and a chunk index. */
void cm_rng_init(cm_rng_t *rng, uint64_t seed, uint64_t key);
uint64_t cm_rng_next(cm_rng_t *rng);
/* Uniform integer in [0, n), n > 0, without modulo bias. */
uint64_t cm_rng_below(cm_rng_t *rng, uint64_t n);
/* Uniform double in [0, 1). */
double cm_rng_uniform(cm_rng_t *rng);
/* A 64-bit mix of two words (splitmix64 finaliser); used to derive keys. */
uint64_t cm_mix64(uint64_t a, uint64_t b);

#endif
