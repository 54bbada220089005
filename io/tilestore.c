/* Encoded tiles kept in a temporary file next to their output until they are copied into it
 * (the reduced levels of a TIFF, which follow the full image in the file but are made while
 * it streams): appended by one thread in any order, read back by number. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_comm.h"
#include "cm_io.h"
#include "io_internal.h"

struct cm_tilestore {
    char *path, tmp[4096 + 32];
    int fd;
    uint32_t n;
    uint64_t end;
    uint64_t *offset, *size; /* by tile; size UINT64_MAX: not stored */
};

int cm_tilestore_open(const char *next_to, uint32_t n_tiles, cm_tilestore_t **out, cm_ctx_t *ctx)
{
    cm_tilestore_t *s = calloc(1, sizeof *s);
    if (s) {
        s->path = strdup(next_to);
        s->offset = malloc(sizeof(uint64_t) * (n_tiles ? n_tiles : 1));
        s->size = malloc(sizeof(uint64_t) * (n_tiles ? n_tiles : 1));
    }
    if (!s || !s->path || !s->offset || !s->size) {
        if (s) free(s->path), free(s->offset), free(s->size);
        free(s);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", next_to);
    }
    s->n = n_tiles;
    for (uint32_t i = 0; i < n_tiles; i++) s->size[i] = UINT64_MAX;
    s->fd = cm__tmpfile_next_to(next_to, s->tmp, sizeof s->tmp);
    if (s->fd < 0) {
        int rc = cm_fail(ctx, CM_EIO, "%s: cannot create a scratch file beside it: %s", next_to,
                         strerror(errno));
        s->tmp[0] = '\0';
        cm_tilestore_free(s);
        return rc;
    }
    cm_comm_remember(s->tmp); /* removed if the job is ended from outside */
    *out = s;
    return 0;
}

int cm_tilestore_put(cm_tilestore_t *s, const cm_encoded_t *e, cm_ctx_t *ctx)
{
    for (int i = 0; i < e->n; i++) {
        CM_FAIL_IF(ctx, e->tile[i] >= s->n, CM_EINTERNAL, "%s: tile %u of %u", s->path, e->tile[i],
                   s->n);
        CM_FAIL_IF(ctx, !cm__pwrite_all(s->fd, e->data[i], e->size[i], s->end), CM_EIO,
                   "%s: cannot write a scratch file beside it: %s", s->path, strerror(errno));
        s->offset[e->tile[i]] = s->end;
        s->size[e->tile[i]] = e->size[i];
        s->end += e->size[i];
    }
    return 0;
}

int cm_tilestore_get(const cm_tilestore_t *s, uint32_t tile, uint8_t **data, size_t *size,
                     cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, tile >= s->n || s->size[tile] == UINT64_MAX, CM_EINTERNAL,
               "%s: tile %u of a reduced level was never made", s->path, tile);
    *size = (size_t)s->size[tile];
    *data = malloc(*size ? *size : 1);
    CM_FAIL_IF(ctx, !*data, CM_ENOMEM, "%s: out of memory", s->path);
    size_t got = 0;
    while (got < *size) {
        ssize_t r = pread(s->fd, *data + got, *size - got, (off_t)(s->offset[tile] + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            free(*data);
            *data = NULL;
            return cm_fail(ctx, CM_EIO, "%s: cannot read a scratch file beside it: %s", s->path,
                           strerror(r < 0 ? errno : EIO));
        }
        got += (size_t)r;
    }
    return 0;
}

void cm_tilestore_free(cm_tilestore_t *s)
{
    if (!s) return;
    if (s->fd >= 0) close(s->fd);
    if (s->tmp[0]) {
        unlink(s->tmp);
        cm_comm_forget(s->tmp);
    }
    free(s->path);
    free(s->offset);
    free(s->size);
    free(s);
}
