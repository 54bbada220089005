/* Error codes and the error context, which every module and every caller of the library
 * uses. Knows nothing of images, files or threads' work. */
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

/* One of the caller's settings, when a message is about it; value is the setting's value where
 * it matters (a k, an enum's value), need what would do (the bytes of a budget that would, the
 * k of a file of centres). A program that takes its settings under other names (the command's
 * flags) can then say them, and its advice, in its own words; the library's own messages name no
 * flag. */
typedef enum cm_setting {
    CM_SETTING_NONE,
    CM_SETTING_MEMORY,      /* the budget of buffers in flight: need is the least that works */
    CM_SETTING_TILE,        /* the side of output tiles: a larger one would do */
    CM_SETTING_K,           /* the number of centres: value; need, the k that would do */
    CM_SETTING_COLORSPACE,  /* value: a cm_colorspace_t */
    CM_SETTING_ALGORITHM,   /* value: a cm_algorithm_t */
    CM_SETTING_FORMAT,      /* value: a cm_format_t */
    CM_SETTING_BIGTIFF,     /* value: a cm_bigtiff_t */
    CM_SETTING_COMPRESSION, /* value: a TIFF COMPRESSION_* code; need: one that is exact */
} cm_setting_t;

typedef struct cm_about {
    cm_setting_t setting;
    int64_t value, need;
} cm_about_t;

/* The error context of one run. The first failure recorded wins: later ones (often
 * consequences of the first) are dropped. Thread-safe. A warning is told in one, with code
 * CM_OK. */
typedef struct cm_ctx {
    int code;
    char msg[CM_MSG_MAX];
    /* What msg is about when it is one of the caller's settings, and where msg names it:
     * msg[named_at, named_at + named_len) (named_len 0: nowhere). */
    cm_about_t about;
    int named_at, named_len;
    int lock; /* spin flag guarding the fields above */
} cm_ctx_t;

void cm_ctx_init(cm_ctx_t *ctx);

/* Records a failure (if none is recorded yet) and returns code, so callers can write
 * `return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF", path);`. */
int cm_fail(cm_ctx_t *ctx, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The words of a message that name a setting, marked in its format:
 * cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_COLORSPACE, lab},
 *               "%s: " CM_NAMED("colour space lab") " needs an RGB image", path). */
#define CM_NAMED(words) "\x1e" words "\x1f"

/* cm_fail for a failure (or, with code CM_OK, a warning) about a setting: records about, and
 * where the words marked with CM_NAMED are in the message (the marks themselves are dropped). */
int cm_fail_about(cm_ctx_t *ctx, int code, cm_about_t about, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

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

#endif
