/* The error context: the first failure of a run, with its message and what it is about. */
#include <stdio.h>
#include <string.h>

#include "base_internal.h"

enum { NAMED_BEGIN = 0x1e, NAMED_END = 0x1f }; /* the marks of CM_NAMED */

void cm_ctx_init(cm_ctx_t *ctx)
{
    *ctx = (cm_ctx_t){.code = CM_OK};
}

static void lock(cm_ctx_t *ctx)
{
    while (__atomic_test_and_set(&ctx->lock, __ATOMIC_ACQUIRE)) {
    }
}

static void unlock(cm_ctx_t *ctx)
{
    __atomic_clear(&ctx->lock, __ATOMIC_RELEASE);
}

/* Drops the marks of CM_NAMED from ctx->msg, keeping where the first marked words are. */
static void take_marks(cm_ctx_t *ctx)
{
    char *out = ctx->msg;
    int begin = -1, end = -1;
    for (const char *in = ctx->msg; *in; in++) {
        if (*in == NAMED_BEGIN && begin < 0)
            begin = (int)(out - ctx->msg);
        else if (*in == NAMED_END && begin >= 0 && end < 0)
            end = (int)(out - ctx->msg);
        else if (*in != NAMED_BEGIN && *in != NAMED_END)
            *out++ = *in;
    }
    *out = '\0';
    if (begin >= 0 && end < 0) end = (int)(out - ctx->msg); /* cut short by the buffer */
    ctx->named_at = begin >= 0 ? begin : 0;
    ctx->named_len = begin >= 0 ? end - begin : 0;
}

int cm__vfail_about(cm_ctx_t *ctx, int code, const cm_about_t *about, const char *fmt, va_list ap)
{
    if (!ctx) return code;
    lock(ctx);
    if (ctx->code == CM_OK) {
        ctx->code = code;
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        take_marks(ctx);
        ctx->about = about ? *about : (cm_about_t){CM_SETTING_NONE, 0, 0};
    }
    unlock(ctx);
    return code;
}

int cm__vfail(cm_ctx_t *ctx, int code, const char *fmt, va_list ap)
{
    return cm__vfail_about(ctx, code, NULL, fmt, ap);
}

int cm_fail_about(cm_ctx_t *ctx, int code, cm_about_t about, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cm__vfail_about(ctx, code, &about, fmt, ap);
    va_end(ap);
    return code;
}

int cm__ctx_pass(cm_ctx_t *to, const cm_ctx_t *from)
{
    if (!to) return from->code;
    lock(to);
    if (to->code == CM_OK) {
        int held = to->lock;
        *to = *from;
        to->lock = held;
    }
    unlock(to);
    return from->code;
}

void cm__ctx_prefix(cm_ctx_t *ctx, const char *prefix)
{
    char msg[CM_MSG_MAX];
    size_t pre = strlen(prefix), len = strlen(ctx->msg);
    if (pre > CM_MSG_MAX - 3) pre = CM_MSG_MAX - 3;
    if (pre + 2 + len > CM_MSG_MAX - 1) len = CM_MSG_MAX - 1 - pre - 2;
    memcpy(msg, prefix, pre);
    memcpy(msg + pre, ": ", 2);
    memcpy(msg + pre + 2, ctx->msg, len);
    msg[pre + 2 + len] = '\0';
    memcpy(ctx->msg, msg, sizeof msg);
    /* The named words move along, and lose what a message cut short lost of them. */
    int end = (int)(pre + 2 + len);
    ctx->named_at += (int)pre + 2;
    if (ctx->named_at + ctx->named_len > end)
        ctx->named_len = ctx->named_at < end ? end - ctx->named_at : 0;
}

int cm_fail(cm_ctx_t *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cm__vfail(ctx, code, fmt, ap);
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
