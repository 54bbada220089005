/* What the file-level functions share that is not about one file: the version, the options'
 * defaults, warnings, checks of output paths, and inputs named in messages. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_internal.h"

const char *cm_version(void)
{
    return CM_VERSION;
}

void cm_options_default(cm_options_t *o)
{
    *o = (cm_options_t){.compression = -1, .tile = 512};
    cm_params_default(&o->params);
}

cm_options_t cm__resolved(const cm_options_t *o)
{
    cm_options_t r = *o;
    if (r.params.n_threads <= 0) r.params.n_threads = cm_default_threads();
    return r;
}

void cm__warn(const cm_options_t *o, cm_about_t about, const char *fmt, ...)
{
    if (!o->warn) return;
    cm_ctx_t w; /* a warning: a message with code CM_OK */
    cm_ctx_init(&w);
    va_list ap;
    va_start(ap, fmt);
    cm__vfail_about(&w, CM_OK, &about, fmt, ap);
    va_end(ap);
    o->warn(o->user, &w);
}

void cm__dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

int cm__check_not_dir(const char *path, cm_ctx_t *ctx)
{
    struct stat st;
    CM_FAIL_IF(ctx, path && stat(path, &st) == 0 && S_ISDIR(st.st_mode), CM_EIO,
               "%s: is a directory", path);
    return 0;
}

int cm__check_writable(const char *path, cm_ctx_t *ctx)
{
    if (!path) return 0;
    CM_TRY(cm__check_not_dir(path, ctx));
    char dir[4096];
    cm__dir_of(path, dir, sizeof dir);
    CM_FAIL_IF(ctx, access(dir, W_OK | X_OK) != 0, CM_EIO, "%s: cannot write there: %s", path,
               strerror(errno));
    return 0;
}

void cm__name_input(cm_ctx_t *ctx, const char *path)
{
    if (ctx->code == CM_EINPUT && path && !strstr(ctx->msg, path)) cm__ctx_prefix(ctx, path);
}
