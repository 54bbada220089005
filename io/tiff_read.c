/* Reading images: recognises the format by the first bytes; a TIFF (its layout checked by
 * tiff_layout.c) has its chunks (native tiles, squares of them, or bands of whole strips)
 * decoded with one libtiff handle per worker, opened on first use by that worker; a JPEG or
 * PNG (jpeg_read.c, png_read.c), or a TIFF of huge strips, is streamed once into a spill
 * store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <tiffio.h>
#include <pthread.h>
#include <unistd.h>

#include "cm_io.h"
#include "io_internal.h"

static int open_handle(cm_image_t *img, cm__handle_t *h, cm_ctx_t *ctx)
{
    /* "m": no memory mapping, whose pages would count against the memory we promise */
    if (img->data) {
        /* libtiff only reads through a handle opened "r": the bytes are never written */
        h->mem = (cm__membuf_t){(uint8_t *)img->data, img->data_size, img->data_size, 0};
        h->tif = cm__tiff_open_memory(&h->mem, "rm", &h->msg);
        if (!h->tif)
            return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF libtiff can read: %s", img->path,
                           h->msg.text);
    } else {
        h->tif = cm__tiff_open(img->path, "rm", h->fd, &h->msg);
        if (h->tif) h->fd = -1; /* closed by TIFFClose */
    }
    if (!h->tif) {
        int e = errno;
        if (e == ENOMEM) return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);
        /* Every worker's descriptor was opened with the first: a later worker failing to read
         * the header means the file changed under us (truncated, rewritten). */
        if (h != &img->handles[0])
            return cm_fail(ctx, CM_EINPUT, "%s: changed while being read: %s", img->path,
                           h->msg.text[0] ? h->msg.text : strerror(e));
        if (access(img->path, R_OK) < 0)
            return cm_fail(ctx, CM_EINPUT, "%s: %s", img->path, strerror(errno));
        return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF libtiff can read: %s", img->path,
                       h->msg.text);
    }
    if (img->ycbcr_as_rgb) TIFFSetField(h->tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return 0;
}

/* The format by the first bytes of the file: -1 when none of ours. */
static int sniff(const uint8_t *b, size_t n)
{
    static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 8 && !memcmp(b, png, 8)) return CM_FILE_PNG;
    if (n >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff) return CM_FILE_JPEG;
    if (n >= 4 && (!memcmp(b, "II", 2) || !memcmp(b, "MM", 2))) return CM_FILE_TIFF;
    return -1;
}

/* Opens the file once more, for a worker: CM_EINPUT when it cannot be (missing, unreadable),
 * CM_EIO or CM_ENOMEM when the system is out of descriptors or memory. */
static int open_fd(const char *path, int *fd, cm_ctx_t *ctx)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    if (*fd >= 0) return 0;
    int e = errno;
    if (e == EMFILE || e == ENFILE || e == ENOMEM)
        return cm_fail(ctx, e == ENOMEM ? CM_ENOMEM : CM_EIO, "%s: cannot open: %s", path,
                       strerror(e));
    return cm_fail(ctx, CM_EINPUT, "%s: %s", path, strerror(e));
}

/* The format of the image by its first bytes: from memory, or read from the first worker's
 * descriptor (which the TIFF handle or the stream then takes over). */
static int sniff_image(const cm_image_t *img, int *format, cm_ctx_t *ctx)
{
    uint8_t b[8];
    ssize_t n = img->data ? (ssize_t)(img->data_size < 8 ? img->data_size : 8)
                          : pread(img->handles[0].fd, b, 8, 0);
    if (img->data) memcpy(b, img->data, (size_t)n);
    if (n < 0) {
        int e = errno;
        return cm_fail(ctx, e == ENOMEM ? CM_ENOMEM : CM_EINPUT, "%s: %s", img->path, strerror(e));
    }
    *format = sniff(b, (size_t)n);
    CM_FAIL_IF(ctx, *format < 0, CM_EINPUT, "%s: not a TIFF, JPEG or PNG file (%s)", img->path,
               n ? "its first bytes are none of theirs" : "it is empty");
    return 0;
}

/* Opens a JPEG or PNG for its decoder, from memory or on the first worker's descriptor. */
static int open_stream(cm_image_t *img, int format, cm_ctx_t *ctx)
{
    FILE *f = img->data ? fmemopen((void *)img->data, img->data_size, "rb")
                        : fdopen(img->handles[0].fd, "rb");
    if (!f) {
        int e = errno;
        return cm_fail(ctx, e == ENOMEM ? CM_ENOMEM : CM_EINPUT, "%s: %s", img->path, strerror(e));
    }
    if (!img->data) img->handles[0].fd = -1; /* the stream's now */
    return format == CM_FILE_PNG ? cm__png_open(img, f, ctx) : cm__jpeg_open(img, f, ctx);
}

static int open_image(const char *path, const void *data, size_t size, int n_workers,
                      cm_image_t **out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_workers < 1, CM_EUSAGE, "bad number of workers %d", n_workers);
    cm_image_t *img = calloc(1, sizeof(cm_image_t));
    if (img) {
        img->data = data;
        img->data_size = size;
        img->path = strdup(path);
    }
    if (img) img->handles = calloc((size_t)n_workers, sizeof(cm__handle_t));
    for (int i = 0; img && img->handles && i < n_workers; i++) img->handles[i].fd = -1;
    if (!img || !img->path || !img->handles) {
        cm_image_close(img);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    img->n_workers = n_workers;
    int format = CM_FILE_TIFF, rc = data ? 0 : open_fd(path, &img->handles[0].fd, ctx);
    if (rc == 0) rc = sniff_image(img, &format, ctx);
    if (rc == 0 && format != CM_FILE_TIFF) rc = open_stream(img, format, ctx);
    /* A TIFF: one descriptor per worker, all opened now: every worker then reads the same file
     * even if the path is replaced during the run, and running out of descriptors shows now. */
    for (int i = 1; !data && format == CM_FILE_TIFF && i < n_workers && rc == 0; i++)
        rc = open_fd(path, &img->handles[i].fd, ctx);
    if (rc == 0 && format == CM_FILE_TIFF) rc = open_handle(img, &img->handles[0], ctx);
    if (rc == 0 && format == CM_FILE_TIFF) rc = cm__image_inspect(img, img->handles[0].tif, ctx);
    if (rc < 0) {
        cm_image_close(img);
        return rc;
    }
    *out = img;
    return 0;
}

int cm_image_open(const char *path, int n_workers, cm_image_t **out, cm_ctx_t *ctx)
{
    return open_image(path, NULL, 0, n_workers, out, ctx);
}

int cm__image_open_memory(const void *data, size_t size, const char *name, int n_workers,
                          cm_image_t **out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !data, CM_EUSAGE, "%s: no data", name);
    return open_image(name, data, size, n_workers, out, ctx);
}

TIFF *cm__image_tiff(cm_image_t *img)
{
    return img->handles[0].tif;
}

void cm_image_set_cancel(cm_image_t *img, const volatile sig_atomic_t *flag)
{
    img->cancel = flag;
}

const cm_image_info_t *cm_image_info(const cm_image_t *img)
{
    return &img->info;
}

const char *cm_image_path(const cm_image_t *img)
{
    return img->path;
}

/* Puts rows [0, rows) and columns [0, cols) of a decoded unit (tile or strip, one plane or
 * all) at (ux, uy) of the chunk whose rectangle is (x, y, w): copying rows, scattering one
 * plane into its band, or expanding palette indices to colours. */
static void place(const cm_image_t *img, const uint8_t *unit, int64_t unit_w, int plane,
                  int64_t rows, int64_t cols, uint8_t *buf, int64_t ux, int64_t uy, int64_t x,
                  int64_t y, int64_t w)
{
    const cm_image_info_t *in = &img->info;
    size_t sb = img->sample_bytes, px = (size_t)in->bands * sb;
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *dst = buf + ((size_t)(uy - y + r) * (size_t)w + (size_t)(ux - x)) * px;
        if (img->cmap) {
            const uint8_t *src = unit + (size_t)(r * unit_w);
            for (int64_t c = 0; c < cols; c++)
                for (int b = 0; b < 3; b++) {
                    uint16_t v = img->cmap[256 * b + src[c]];
                    if (sb == 1)
                        dst[c * 3 + b] = (uint8_t)v;
                    else
                        memcpy(dst + (c * 3 + b) * 2, &v, 2);
                }
        } else if (in->planar_separate) {
            const uint8_t *src = unit + (size_t)(r * unit_w) * sb;
            for (int64_t c = 0; c < cols; c++)
                memcpy(dst + (size_t)c * px + (size_t)plane * sb, src + (size_t)c * sb, sb);
        } else {
            memmove(dst, unit + (size_t)(r * unit_w) * px, (size_t)cols * px);
        }
    }
}

/* ---- streaming and keeping chunks in the spill store ---- */

/* Decodes rows [y, y + rows) of a streamed image into band, packed at w pixels. */
static int stream_rows(cm_image_t *img, int64_t y, int64_t rows, int64_t w, uint8_t *band,
                       uint8_t *row, cm_ctx_t *ctx)
{
    if (img->dec) return img->dec->rows(img->dec, band, rows, ctx);
    TIFF *tif = img->handles[0].tif;
    cm__tiff_msg_t *msg = &img->handles[0].msg;
    for (int64_t r = 0; r < rows; r++) {
        msg->text[0] = '\0';
        if (TIFFReadScanline(tif, row, (uint32_t)(y + r), 0) < 0)
            return cm_fail(ctx, CM_EINPUT, "%s: row %lld cannot be decoded: %s", img->path,
                           (long long)(y + r), msg->text[0] ? msg->text : "read error");
        place(img, row, w, 0, 1, w, band, 0, y + r, 0, y, w);
    }
    return 0;
}

/* Streaming into the spill store: the calling thread decodes the bands in order into a ring
 * of buffers while a thread of its own compresses each decoded band into the store (as worker
 * 1), so that decoding, one thread's work, is not also kept waiting by zstd. */
enum { STREAM_RING = 3 };
typedef struct stream {
    cm_image_t *img;
    size_t px;
    uint8_t *row, *ring[STREAM_RING];
    pthread_mutex_t lock;
    pthread_cond_t moved;
    int64_t n, decoded, stored; /* bands decoded, and stored, so far */
    bool failed;                /* then ctx says why; both sides stop */
    cm_ctx_t ctx;
} stream_t;

static void stream_fail(stream_t *st, const cm_ctx_t *c)
{
    pthread_mutex_lock(&st->lock);
    if (!st->failed) cm__ctx_pass(&st->ctx, c);
    st->failed = true;
    pthread_cond_broadcast(&st->moved);
    pthread_mutex_unlock(&st->lock);
}

/* Band c into the store from its ring buffer, with worker's compressor. */
static int stream_put(stream_t *st, int worker, int64_t c, cm_ctx_t *ctx)
{
    int64_t x, y, w, rows;
    cm_grid_rect(&st->img->info.grid, c, &x, &y, &w, &rows);
    return cm__spill_put(st->img->store, worker, c, st->ring[c % STREAM_RING],
                         (size_t)(w * rows) * st->px, ctx);
}

static void *stream_store(void *arg)
{
    stream_t *st = arg;
    for (int64_t c = 0; c < st->n; c++) {
        pthread_mutex_lock(&st->lock);
        while (st->decoded <= c && !st->failed) pthread_cond_wait(&st->moved, &st->lock);
        bool stop = st->failed;
        pthread_mutex_unlock(&st->lock);
        if (stop) break;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        if (stream_put(st, 1, c, &ctx) < 0) {
            stream_fail(st, &ctx);
            break;
        }
        pthread_mutex_lock(&st->lock);
        st->stored = c + 1;
        pthread_cond_broadcast(&st->moved);
        pthread_mutex_unlock(&st->lock);
    }
    return NULL;
}

/* Decodes every band in order; with a store thread (threaded), waits for a free buffer and
 * hands each band over, else stores it itself. */
static void stream_decode(stream_t *st, bool threaded)
{
    cm_image_t *img = st->img;
    for (int64_t c = 0; c < st->n; c++) {
        pthread_mutex_lock(&st->lock);
        while (threaded && c - st->stored >= STREAM_RING && !st->failed)
            pthread_cond_wait(&st->moved, &st->lock);
        bool stop = st->failed;
        pthread_mutex_unlock(&st->lock);
        if (stop) return;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        int64_t x, y, w, rows;
        cm_grid_rect(&img->info.grid, c, &x, &y, &w, &rows);
        int rc = img->cancel && *img->cancel
                     ? cm_fail(&ctx, CM_ECANCELED, "%s: interrupted while streaming", img->path)
                     : stream_rows(img, y, rows, w, st->ring[c % STREAM_RING], st->row, &ctx);
        if (rc == 0 && !threaded) rc = stream_put(st, 0, c, &ctx);
        if (rc < 0) {
            stream_fail(st, &ctx);
            return;
        }
        pthread_mutex_lock(&st->lock);
        st->decoded = c + 1;
        pthread_cond_broadcast(&st->moved);
        pthread_mutex_unlock(&st->lock);
    }
}

int cm_image_prepare(cm_image_t *img, const char *scratch_dir, size_t budget_bytes, cm_ctx_t *ctx)
{
    if (!img->spill || img->store) return 0;
    const cm_image_info_t *in = &img->info;
    /* What the decoding holds: a band of rows, and for a JPEG or PNG what its decoder holds
     * (none of it is allocated before this check) */
    size_t need;
    if (!cm__add_size(in->decode_bytes, cm_grid_chunk_bytes(&in->grid), &need)) need = SIZE_MAX;
    if (budget_bytes && img->dec && need > budget_bytes)
        return cm_fail_about(ctx, CM_EBUDGET,
                             (cm_about_t){CM_SETTING_MEMORY, (int64_t)budget_bytes,
                                          need > INT64_MAX ? INT64_MAX : (int64_t)need},
                             "%s: decoding it in order holds %zu bytes at once (%s), the memory "
                             "budget is %zu",
                             img->path, need,
                             !in->decode_bytes           ? "a band of its rows"
                             : in->format == CM_FILE_PNG ? "an interlaced PNG is held whole"
                                                         : "a progressive JPEG's coefficients",
                             budget_bytes);
    CM_FAIL_IF(ctx, in->planar_separate, CM_EINPUT,
               "%s: planar-separate strips this large cannot be streamed (tile the file "
               "first, e.g. with gdal_translate -co TILED=YES)",
               img->path);
    int64_t n = cm_grid_count(&in->grid);
    size_t band_bytes = cm_grid_chunk_bytes(&in->grid), px = (size_t)in->bands * img->sample_bytes;
    stream_t st = {.img = img, .px = px, .n = n, .row = malloc((size_t)in->width * px)};
    for (int i = 0; i < STREAM_RING; i++) st.ring[i] = malloc(band_bytes);
    bool ok = st.row;
    for (int i = 0; i < STREAM_RING; i++) ok = ok && st.ring[i];
    int rc = ok ? cm__spill_create(img->path, scratch_dir, n, band_bytes, img->n_workers,
                                   &img->store, ctx)
                : cm_fail(ctx, CM_ENOMEM, "%s: out of memory for the spill store", img->path);
    cm_ctx_init(&st.ctx);
    pthread_mutex_init(&st.lock, NULL);
    pthread_cond_init(&st.moved, NULL);
    pthread_t store;
    bool threaded =
        rc == 0 && img->n_workers >= 2 && pthread_create(&store, NULL, stream_store, &st) == 0;
    if (rc == 0) stream_decode(&st, threaded);
    if (threaded) pthread_join(store, NULL);
    pthread_cond_destroy(&st.moved);
    pthread_mutex_destroy(&st.lock);
    if (rc == 0 && st.failed) rc = cm__ctx_pass(ctx, &st.ctx);
    if (rc == 0 && img->dec) rc = img->dec->finish(img->dec, ctx);
    for (int i = 0; i < STREAM_RING; i++) free(st.ring[i]);
    free(st.row);
    return rc;
}

int cm_image_keep_chunks(cm_image_t *img, const char *scratch_dir, cm_ctx_t *ctx)
{
    if (img->spill || img->recording) return 0; /* already read from a store */
    int comp = img->info.compression;
    if (comp == COMPRESSION_NONE || comp == COMPRESSION_PACKBITS) return 0; /* cheap already */
    CM_TRY(cm__spill_create(img->path, scratch_dir, cm_grid_count(&img->info.grid),
                            cm_grid_chunk_bytes(&img->info.grid), img->n_workers, &img->store,
                            ctx));
    img->recording = true;
    return 0;
}

/* Decodes the rectangle of a chunk from the file's tiles or strips. */
/* Sparse files (GDAL's SPARSE_OK) leave out the tiles or strips that hold nothing: their
 * offset is 0, never valid data. As GDAL does, they read as the nodata value where the image
 * declares one that its samples can hold, else as zeros. Returns n. */
static tmsize_t fill_absent(const cm_image_t *img, uint8_t *dst, size_t n)
{
    const cm_image_info_t *in = &img->info;
    double v = in->nodata;
    union {
        uint8_t u8;
        uint16_t u16;
        int16_t i16;
        float f32;
    } s = {0};
    bool holds = in->has_nodata && !img->cmap;
    switch (in->stype) {
    case CM_U8: holds = holds && v >= 0 && v <= UINT8_MAX && v == (s.u8 = (uint8_t)v); break;
    case CM_U16: holds = holds && v >= 0 && v <= UINT16_MAX && v == (s.u16 = (uint16_t)v); break;
    case CM_I16:
        holds = holds && v >= INT16_MIN && v <= INT16_MAX && v == (s.i16 = (int16_t)v);
        break;
    case CM_F32: s.f32 = (float)v; break;
    }
    size_t sb = img->file_sample_bytes;
    if (!holds || sb > sizeof s) {
        memset(dst, 0, n);
        return (tmsize_t)n;
    }
    for (size_t i = 0; i + sb <= n; i += sb) memcpy(dst + i, &s, sb);
    return (tmsize_t)n;
}

static int read_from_file(cm_image_t *img, cm__handle_t *h, int64_t x, int64_t y, int64_t w,
                          int64_t rows, uint8_t *buf, cm_ctx_t *ctx)
{
    const cm_image_info_t *in = &img->info;
    /* Units are the file's tiles or strips; one plane each when samples are separate. Each
     * is decoded straight into the chunk when it has the chunk's layout, else into h->unit
     * and placed. */
    int planes = in->planar_separate ? img->file_spp : 1;
    int64_t unit_w = in->tile_w, unit_h = in->tile_h;
    size_t unit_px = (size_t)(in->planar_separate ? 1 : img->file_spp) * img->file_sample_bytes;
    bool reshape = in->planar_separate || img->cmap;
    bool direct = !reshape && (!in->tiled || (img->tiles_x == 1 && img->tiles_y == 1));
    size_t unit_bytes = (size_t)unit_w * (size_t)unit_h * unit_px;
    if (!direct && !h->unit && !(h->unit = malloc(unit_bytes)))
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);

    for (int64_t uy = y; uy < y + rows; uy += unit_h)
        for (int64_t ux = x; ux < x + w; ux += unit_w)
            for (int s = 0; s < planes; s++) {
                int64_t cols = x + w - ux < unit_w ? x + w - ux : unit_w;
                int64_t n_rows = y + rows - uy < unit_h ? y + rows - uy : unit_h;
                uint8_t *dst = !direct     ? h->unit
                               : in->tiled ? buf
                                           : buf + (size_t)(uy - y) * (size_t)w * unit_px;
                tmsize_t want, got;
                uint32_t unit =
                    in->tiled ? TIFFComputeTile(h->tif, (uint32_t)ux, (uint32_t)uy, 0, (uint16_t)s)
                              : TIFFComputeStrip(h->tif, (uint32_t)uy, (uint16_t)s);
                want = in->tiled ? (tmsize_t)unit_bytes
                                 : (tmsize_t)((size_t)n_rows * (size_t)unit_w * unit_px);
                if (TIFFGetStrileOffset(h->tif, unit) == 0) /* absent: a sparse file */
                    got = fill_absent(img, dst, (size_t)want);
                else if (in->tiled)
                    got = TIFFReadEncodedTile(h->tif, unit, dst, want);
                else
                    got = TIFFReadEncodedStrip(h->tif, unit, dst, want);
                if (got != want)
                    return cm_fail(ctx, CM_EINPUT, "%s: %s %u (at %lld,%lld) cannot be decoded: %s",
                                   img->path, in->tiled ? "tile" : "strip", unit, (long long)ux,
                                   (long long)uy, h->msg.text[0] ? h->msg.text : "short read");
                /* A strip decoded in place is already packed; a native tile is packed in place
                 * (its first row is where it belongs). */
                if (direct && !in->tiled) continue;
                if (direct && cols == unit_w) continue;
                place(img, dst, unit_w, s, n_rows, cols, buf, ux, uy, x, y, w);
            }
    return 0;
}

int cm_image_read_chunk(cm_image_t *img, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, worker < 0 || worker >= img->n_workers, CM_EINTERNAL, "worker %d of %d", worker,
               img->n_workers);
    cm__handle_t *h = &img->handles[worker];
    const cm_image_info_t *in = &img->info;
    int64_t x, y, w, rows;
    cm_grid_rect(&in->grid, idx, &x, &y, &w, &rows);
    size_t bytes = (size_t)(w * rows) * (size_t)in->bands * img->sample_bytes;
    CM_FAIL_IF(ctx, img->spill && !img->store, CM_EINTERNAL, "%s: read before cm_image_prepare",
               img->path);
    if (img->spill || cm__spill_has(img->store, idx))
        return cm__spill_get(img->store, worker, idx, buf, bytes, ctx);
    if (!h->tif) CM_TRY(open_handle(img, h, ctx));
    h->msg.text[0] = '\0';
    int rc = read_from_file(img, h, x, y, w, rows, buf, ctx);
    /* Best effort: a chunk that cannot be stored (a full disk) is decoded again next time. */
    if (rc == 0 && img->recording) cm__spill_put(img->store, worker, idx, buf, bytes, NULL);
    return rc;
}

void cm_image_close(cm_image_t *img)
{
    if (!img) return;
    for (int i = 0; img->handles && i < img->n_workers; i++) {
        if (img->handles[i].fd >= 0) close(img->handles[i].fd);
        if (img->handles[i].tif) {
            TIFFClose(img->handles[i].tif);
            free(img->handles[i].unit);
        }
    }
    if (img->dec) img->dec->close(img->dec);
    cm__meta_clear(&img->meta);
    cm__spill_free(img->store);
    free(img->handles);
    free(img->cmap);
    free(img->path);
    free(img);
}
