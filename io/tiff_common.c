/* libtiff plumbing shared by reading and writing: per-handle error messages, compression
 * names, and temporary files that become outputs only when complete. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cm_io.h"
#include "io_internal.h"

static int on_error(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    cm__tiff_msg_t *msg = user;
    if (!msg) return 1;
    vsnprintf(msg->text, sizeof msg->text, fmt, ap);
    /* some messages start with the file's name, which ours give already */
    const char *name = tif ? TIFFFileName(tif) : NULL;
    size_t n = name ? strlen(name) : 0;
    if (n && !strncmp(msg->text, name, n) && !strncmp(msg->text + n, ": ", 2))
        memmove(msg->text, msg->text + n + 2, strlen(msg->text + n + 2) + 1);
    return 1; /* handled: libtiff's global handler stays quiet */
}

static int on_warning(TIFF *tif, void *user, const char *module, const char *fmt, va_list ap)
{
    return 1;
}

/* Options that send a handle's errors to msg and drop its warnings; NULL when out of memory
 * (said in msg). Registers our tags first, so that every handle knows them. */
static TIFFOpenOptions *open_options(cm__tiff_msg_t *msg)
{
    msg->text[0] = '\0';
    cm__tags_register();
    TIFFOpenOptions *opts = TIFFOpenOptionsAlloc();
    if (!opts) {
        snprintf(msg->text, sizeof msg->text, "out of memory");
        return NULL;
    }
    TIFFOpenOptionsSetErrorHandlerExtR(opts, on_error, msg);
    TIFFOpenOptionsSetWarningHandlerExtR(opts, on_warning, msg);
    return opts;
}

TIFF *cm__tiff_open(const char *path, const char *mode, int fd, cm__tiff_msg_t *msg)
{
    TIFFOpenOptions *opts = open_options(msg);
    if (!opts) return NULL;
    errno = 0;
    TIFF *tif = fd < 0 ? TIFFOpenExt(path, mode, opts) : TIFFFdOpenExt(fd, path, mode, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif && !msg->text[0]) snprintf(msg->text, sizeof msg->text, "cannot open");
    return tif;
}

/* ---- memory files: a worker encodes tiles in one of its own; images are read from one ---- */

static tmsize_t mem_read(thandle_t h, void *buf, tmsize_t n)
{
    cm__membuf_t *m = h;
    size_t left = m->pos < m->size ? m->size - m->pos : 0, k = (size_t)n < left ? (size_t)n : left;
    memcpy(buf, m->data + m->pos, k);
    m->pos += k;
    return (tmsize_t)k;
}

static tmsize_t mem_write(thandle_t h, void *buf, tmsize_t n)
{
    cm__membuf_t *m = h;
    size_t end = m->pos + (size_t)n;
    if (end > m->cap) {
        size_t cap = m->cap ? m->cap : 65536;
        while (cap < end) cap *= 2;
        uint8_t *d = realloc(m->data, cap);
        if (!d) return -1;
        memset(d + m->cap, 0, cap - m->cap);
        m->data = d;
        m->cap = cap;
    }
    memcpy(m->data + m->pos, buf, (size_t)n);
    m->pos = end;
    if (end > m->size) m->size = end;
    return n;
}

static toff_t mem_seek(thandle_t h, toff_t off, int whence)
{
    cm__membuf_t *m = h;
    uint64_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
    m->pos = (size_t)(base + off);
    return m->pos;
}

static int mem_close(thandle_t h)
{
    return 0;
}

static toff_t mem_size(thandle_t h)
{
    return ((cm__membuf_t *)h)->size;
}

static int mem_map(thandle_t h, void **base, toff_t *size)
{
    return 0;
}

static void mem_unmap(thandle_t h, void *base, toff_t size) {}

TIFF *cm__tiff_open_memory(cm__membuf_t *mem, const char *mode, cm__tiff_msg_t *msg)
{
    TIFFOpenOptions *opts = open_options(msg);
    if (!opts) return NULL;
    TIFF *tif = TIFFClientOpenExt("memory", mode, mem, mem_read, mem_write, mem_seek, mem_close,
                                  mem_size, mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    return tif;
}

/* ---- output files, written at positions ---- */

static tmsize_t out_read(thandle_t h, void *buf, tmsize_t n)
{
    cm__outfile_t *f = h;
    ssize_t got = pread(f->fd, buf, (size_t)n, (off_t)f->pos);
    if (got > 0) f->pos += (uint64_t)got;
    return got;
}

static tmsize_t out_write(thandle_t h, void *buf, tmsize_t n)
{
    cm__outfile_t *f = h;
    if (!f->skip && !cm__pwrite_all(f->fd, buf, (size_t)n, f->pos)) return -1;
    f->pos += (uint64_t)n;
    if (f->pos > f->end) f->end = f->pos;
    return n;
}

static toff_t out_seek(thandle_t h, toff_t off, int whence)
{
    cm__outfile_t *f = h;
    uint64_t base = whence == SEEK_CUR ? f->pos : whence == SEEK_END ? f->end : 0;
    f->pos = base + off;
    return f->pos;
}

static int out_close(thandle_t h)
{
    cm__outfile_t *f = h;
    int rc = f->fd >= 0 ? close(f->fd) : 0;
    f->fd = -1;
    return rc;
}

static toff_t out_size(thandle_t h)
{
    return ((cm__outfile_t *)h)->end;
}

TIFF *cm__tiff_open_out(const char *path, const char *mode, cm__outfile_t *f, cm__tiff_msg_t *msg)
{
    TIFFOpenOptions *opts = open_options(msg);
    if (!opts) return NULL;
    TIFF *tif = TIFFClientOpenExt(path, mode, f, out_read, out_write, out_seek, out_close, out_size,
                                  mem_map, mem_unmap, opts);
    TIFFOpenOptionsFree(opts);
    if (!tif && !msg->text[0]) snprintf(msg->text, sizeof msg->text, "cannot open");
    return tif;
}

static const struct {
    const char *name;
    int code;
} compressions[] = {
    {"none", COMPRESSION_NONE}, {"lzw", COMPRESSION_LZW},   {"deflate", COMPRESSION_ADOBE_DEFLATE},
    {"zstd", COMPRESSION_ZSTD}, {"jpeg", COMPRESSION_JPEG}, {"packbits", COMPRESSION_PACKBITS},
};

int cm_compression_parse(const char *name, int *code)
{
    int found = -1;
    for (size_t i = 0; i < sizeof compressions / sizeof compressions[0]; i++)
        if (!strcasecmp(name, compressions[i].name)) found = compressions[i].code;
    if (!strcasecmp(name, "zip")) found = COMPRESSION_ADOBE_DEFLATE;
    if (found < 0 || !TIFFIsCODECConfigured((uint16_t)found)) return CM_EUSAGE;
    *code = found;
    return 0;
}

void cm__fsync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd); /* best effort: some file systems refuse it for directories */
        close(fd);
    }
    free(dir);
}

const char *cm_compression_name(int code)
{
    if (code == COMPRESSION_DEFLATE) return "deflate";
    for (size_t i = 0; i < sizeof compressions / sizeof compressions[0]; i++)
        if (compressions[i].code == code) return compressions[i].name;
    return "unknown";
}

int cm__tmpfile_next_to(const char *path, char *tmp, size_t tmp_size)
{
    if ((size_t)snprintf(tmp, tmp_size, "%s.part-XXXXXX", path) >= tmp_size) {
        errno = ENAMETOOLONG;
        return -1;
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -1;
    /* mkstemp creates 0600; an output should get the usual permissions. */
    mode_t mask = umask(0);
    umask(mask);
    if (fchmod(fd, 0666 & ~mask) < 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    return fd;
}

int cm_file_write_atomic(const char *path, const void *data, size_t len, cm_ctx_t *ctx)
{
    size_t tmp_size = strlen(path) + 16;
    char *tmp = malloc(tmp_size);
    CM_FAIL_IF(ctx, !tmp, CM_ENOMEM, "%s: out of memory", path);
    int fd = cm__tmpfile_next_to(path, tmp, tmp_size);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return cm_fail(ctx, CM_EIO, "%s: cannot create: %s", path, strerror(e));
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        left -= (size_t)n;
    }
    int e = left ? (errno ? errno : EIO) : 0;
    if (!e && fsync(fd) < 0) e = errno;
    if (close(fd) < 0 && !e) e = errno;
    if (!e && rename(tmp, path) < 0) e = errno;
    if (e)
        unlink(tmp);
    else
        cm__fsync_dir_of(path);
    free(tmp);
    CM_FAIL_IF(ctx, e, CM_EIO, "%s: cannot write: %s", path, strerror(e ? e : EIO));
    return 0;
}

int cm_file_read(const char *path, size_t max_bytes, char **text, size_t *len, cm_ctx_t *ctx)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    CM_FAIL_IF(ctx, !f, CM_EINPUT, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (*len == cap) {
            size_t grow = cap ? 2 * cap : 65536;
            if (cap >= max_bytes) {
                rc =
                    cm_fail(ctx, CM_EINPUT, "%s: too large (more than %zu bytes)", path, max_bytes);
                break;
            }
            char *grown = realloc(*text, grow);
            if (!grown) {
                rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
                break;
            }
            *text = grown;
            cap = grow;
        }
        size_t got = fread(*text + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) {
            if (ferror(f))
                rc = cm_fail(ctx, CM_EINPUT, "%s: cannot read: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(*text);
        *text = NULL;
        *len = 0;
    }
    return rc;
}
