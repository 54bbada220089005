/* The spill store: decoded chunks kept as zstd frames (level 1) in an unlinked scratch file,
 * written and read back by any worker with compressors of its own. Knows bytes and chunk
 * indices, not TIFF. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "io_internal.h"

typedef struct worker_buf {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    uint8_t *frame; /* a compressed chunk, on its way in or out */
} worker_buf_t;

struct cm__spill {
    char *name, *dir; /* the image, and where the scratch file is: for messages */
    int fd;
    size_t bound;       /* the largest frame of a chunk */
    int64_t *at, *size; /* per chunk; size -1 while not stored */
    int64_t end;        /* bytes of the file taken, grown atomically */
    worker_buf_t *workers;
    int n_workers;
};

int cm__spill_create(const char *name, const char *dir, int64_t n_chunks, size_t chunk_bytes,
                     int n_workers, cm__spill_t **out, cm_ctx_t *ctx)
{
    cm__spill_t *s = calloc(1, sizeof *s);
    if (s) {
        *s = (cm__spill_t){
            .fd = -1, .n_workers = n_workers, .bound = ZSTD_compressBound(chunk_bytes)};
        s->name = strdup(name);
        s->dir = strdup(dir);
        s->at = malloc(sizeof(int64_t) * (size_t)(n_chunks ? n_chunks : 1));
        s->size = malloc(sizeof(int64_t) * (size_t)(n_chunks ? n_chunks : 1));
        s->workers = calloc((size_t)n_workers, sizeof(worker_buf_t));
    }
    if (!s || !s->name || !s->dir || !s->at || !s->size || !s->workers) {
        cm__spill_free(s);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory for the spill store", name);
    }
    for (int64_t i = 0; i < n_chunks; i++) s->size[i] = -1;
    size_t size = strlen(dir) + 32;
    char *path = malloc(size);
    if (path) {
        snprintf(path, size, "%s/.chunkmeans-spill-XXXXXX", dir);
        s->fd = mkostemp(path, O_CLOEXEC);
        if (s->fd >= 0) unlink(path); /* unlinked: gone with the process, however it ends */
    }
    int e = path ? errno : ENOMEM;
    free(path);
    if (s->fd < 0) {
        cm__spill_free(s);
        return cm_fail(ctx, CM_EIO, "%s: cannot create a scratch file: %s", dir, strerror(e));
    }
    *out = s;
    return 0;
}

int cm__spill_put(cm__spill_t *s, int worker, int64_t idx, const void *buf, size_t bytes,
                  cm_ctx_t *ctx)
{
    worker_buf_t *w = &s->workers[worker];
    if (!w->cctx) w->cctx = ZSTD_createCCtx();
    if (!w->frame) w->frame = malloc(s->bound);
    CM_FAIL_IF(ctx, !w->cctx || !w->frame, CM_ENOMEM, "%s: out of memory for the spill store",
               s->name);
    size_t got = ZSTD_compressCCtx(w->cctx, w->frame, s->bound, buf, bytes, 1);
    CM_FAIL_IF(ctx, ZSTD_isError(got), CM_EINTERNAL, "zstd: %s", ZSTD_getErrorName(got));
    int64_t at = __atomic_fetch_add(&s->end, (int64_t)got, __ATOMIC_RELAXED);
    for (size_t done = 0; done < got;) {
        ssize_t k = pwrite(s->fd, w->frame + done, got - done, (off_t)(at + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        CM_FAIL_IF(ctx, k <= 0, CM_EIO, "%s: cannot write the spill store: %s", s->dir,
                   strerror(k < 0 ? errno : ENOSPC));
        done += (size_t)k;
    }
    s->at[idx] = at;
    s->size[idx] = (int64_t)got; /* seen by later graph runs, after their barrier */
    return 0;
}

bool cm__spill_has(const cm__spill_t *s, int64_t idx)
{
    return s && s->size[idx] >= 0;
}

int cm__spill_get(cm__spill_t *s, int worker, int64_t idx, void *buf, size_t bytes, cm_ctx_t *ctx)
{
    worker_buf_t *w = &s->workers[worker];
    size_t size = (size_t)s->size[idx];
    if (!w->dctx) w->dctx = ZSTD_createDCtx();
    if (!w->frame) w->frame = malloc(s->bound);
    CM_FAIL_IF(ctx, !w->dctx || !w->frame, CM_ENOMEM, "%s: out of memory", s->name);
    for (size_t done = 0; done < size;) {
        ssize_t k = pread(s->fd, w->frame + done, size - done, (off_t)(s->at[idx] + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        CM_FAIL_IF(ctx, k <= 0, CM_EIO, "%s: cannot read the spill store: %s", s->name,
                   k < 0 ? strerror(errno) : "short read");
        done += (size_t)k;
    }
    size_t got = ZSTD_decompressDCtx(w->dctx, buf, bytes, w->frame, size);
    CM_FAIL_IF(ctx, ZSTD_isError(got) || got != bytes, CM_EINTERNAL,
               "%s: spill store chunk %lld is damaged", s->name, (long long)idx);
    return 0;
}

void cm__spill_free(cm__spill_t *s)
{
    if (!s) return;
    for (int i = 0; s->workers && i < s->n_workers; i++) {
        ZSTD_freeCCtx(s->workers[i].cctx);
        ZSTD_freeDCtx(s->workers[i].dctx);
        free(s->workers[i].frame);
    }
    if (s->fd >= 0) close(s->fd);
    free(s->workers);
    free(s->at);
    free(s->size);
    free(s->dir);
    free(s->name);
    free(s);
}
