/* The error context: the first failure of a run, with its message. */
#include <stdio.h>

#include "cm_base.h"

void cm_ctx_init(cm_ctx_t *ctx)
{
    ctx->code = CM_OK;
    ctx->msg[0] = '\0';
    ctx->lock = 0;
}

int cm_vfail(cm_ctx_t *ctx, int code, const char *fmt, va_list ap)
{
    if (!ctx) return code;
    while (__atomic_test_and_set(&ctx->lock, __ATOMIC_ACQUIRE)) {
    }
    if (ctx->code == CM_OK) {
        ctx->code = code;
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
    }
    __atomic_clear(&ctx->lock, __ATOMIC_RELEASE);
    return code;
}

int cm_fail(cm_ctx_t *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cm_vfail(ctx, code, fmt, ap);
    va_end(ap);
    return code;
}

const char *cm_strerror(int code)
{
    switch (code) {
    case CM_OK: return "success";
    case CM_EUSAGE: return "usage error";
    case CM_EINPUT: return "bad input";
    case CM_EIO: return "I/O error";
    case CM_ENOMEM: return "out of memory";
    case CM_EBUDGET: return "memory budget too small";
    case CM_EINTERNAL: return "internal error";
    case CM_ECANCELED: return "cancelled";
    default: return "unknown error";
    }
}
