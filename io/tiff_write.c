/* Image output written to a temporary file and renamed into place when complete: tiled TIFF
 * here (edge tiles padded from a scratch tile), PNG and JPEG through the writers of rows
 * (png_write.c, jpeg_write.c). One thread writes. */
#include <errno.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_comm.h"
#include "cm_io.h"
#include "cm_version.h"
#include "io_internal.h"

/* A deflate encoder of tiles, with its buffers: the tile after the predictor, and the stream. */
typedef struct deflater {
    struct libdeflate_compressor *c;
    uint8_t *predicted, *stream;
    size_t stream_cap;
    struct deflater *next;
} deflater_t;

struct cm_writer {
    TIFF *tif;
    cm__outfile_t file;     /* what tif writes into */
    cm_comm_file_t *placed; /* an encoder's: rank 0's file, where it writes its tiles */
    char *path, *tmp;
    cm_writer_spec_t spec;  /* pointers in it are cleared: see cmap */
    uint16_t cmap[3 * 256]; /* the colour map, when spec.colormap was given */
    size_t px_bytes;        /* bytes per pixel */
    cm__tiff_msg_t msg;
    struct deflaters *deflaters; /* when the tiles are deflated here (encode_deflate) */
    cm__rows_writer_t *rows;     /* PNG or JPEG: the writer of rows, instead of tif */
};

/* The deflate encoders not in use, taken and given back by the workers. */
typedef struct deflaters {
    pthread_mutex_t lock;
    deflater_t *idle;
} deflaters_t;

/* ---- deflate tiles, encoded here ----
 * libtiff encodes a deflate tile with libdeflate at level 7 (its default quality, 6, plus one)
 * as one zlib stream, after the horizontal predictor for 8- and 16-bit integer samples. Done
 * by libtiff, every tile costs a memory TIFF and a fresh compressor, whose tables the system
 * must zero again (a 100 MP run spent 6.7 % of its CPU zeroing pages). The same calls made here,
 * with compressors kept from tile to tile, give the same bytes. Float samples (their predictor
 * reorders bytes) and the other codecs still go through libtiff. */
enum { DEFLATE_LEVEL = 7 };

/* The widest and tallest PNG (its sizes are 31-bit). */
#define PNG_SIDE_MAX INT32_MAX

static bool deflated_here(const cm_writer_spec_t *s)
{
    bool deflate =
        s->compression == COMPRESSION_ADOBE_DEFLATE || s->compression == COMPRESSION_DEFLATE;
    return deflate && (!s->predictor || s->stype != CM_F32);
}

static void deflater_free(deflater_t *z)
{
    if (!z) return;
    libdeflate_free_compressor(z->c);
    free(z->predicted);
    free(z->stream);
    free(z);
}

/* An idle encoder, or a new one; NULL when out of memory. */
static deflater_t *deflater_take(deflaters_t *pool, size_t tile_bytes, int level)
{
    pthread_mutex_lock(&pool->lock);
    deflater_t *z = pool->idle;
    if (z) pool->idle = z->next;
    pthread_mutex_unlock(&pool->lock);
    if (z) return z;
    z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->c = libdeflate_alloc_compressor(level);
    z->stream_cap = z->c ? libdeflate_zlib_compress_bound(z->c, tile_bytes) : 0;
    z->predicted = malloc(tile_bytes);
    z->stream = malloc(z->stream_cap ? z->stream_cap : 1);
    if (!z->c || !z->predicted || !z->stream) {
        deflater_free(z);
        return NULL;
    }
    return z;
}

static void deflater_give(deflaters_t *pool, deflater_t *z)
{
    pthread_mutex_lock(&pool->lock);
    z->next = pool->idle;
    pool->idle = z;
    pthread_mutex_unlock(&pool->lock);
}

static deflaters_t *deflaters_new(void)
{
    deflaters_t *pool = calloc(1, sizeof *pool);
    if (pool && pthread_mutex_init(&pool->lock, NULL) != 0) {
        free(pool);
        return NULL;
    }
    return pool;
}

static void deflaters_free(deflaters_t *pool)
{
    if (!pool) return;
    while (pool->idle) {
        deflater_t *z = pool->idle;
        pool->idle = z->next;
        deflater_free(z);
    }
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}

/* TIFF's horizontal predictor: each sample minus the same band's sample of the pixel before,
 * row by row, modulo 2^8 or 2^16 (libtiff's horDiff8 and horDiff16, in the host's order). */
static void predict(const cm_writer_spec_t *s, const uint8_t *in, uint8_t *out)
{
    size_t row = (size_t)s->tile_w * (size_t)s->bands, bands = (size_t)s->bands;
    for (int64_t y = 0; y < s->tile_h; y++) {
        if (s->stype == CM_U8) {
            const uint8_t *a = in + (size_t)y * row;
            uint8_t *b = out + (size_t)y * row;
            for (size_t i = 0; i < row; i++)
                b[i] = (uint8_t)(i < bands ? a[i] : a[i] - a[i - bands]);
        } else {
            const uint16_t *a = (const uint16_t *)in + (size_t)y * row;
            uint16_t *b = (uint16_t *)out + (size_t)y * row;
            for (size_t i = 0; i < row; i++)
                b[i] = (uint16_t)(i < bands ? a[i] : a[i] - a[i - bands]);
        }
    }
}

static int encode_deflate(const cm_writer_t *wr, const uint8_t *tile, uint8_t **data, size_t *size,
                          cm_ctx_t *ctx)
{
    const cm_writer_spec_t *s = &wr->spec;
    size_t bytes = (size_t)s->tile_w * (size_t)s->tile_h * wr->px_bytes;
    deflater_t *z = deflater_take(wr->deflaters, bytes,
                                  s->deflate_level > 0 ? s->deflate_level : DEFLATE_LEVEL);
    CM_FAIL_IF(ctx, !z, CM_ENOMEM, "%s: out of memory encoding a tile", wr->path);
    const uint8_t *in = tile;
    if (s->predictor) {
        predict(s, tile, z->predicted);
        in = z->predicted;
    }
    *size = libdeflate_zlib_compress(z->c, in, bytes, z->stream, z->stream_cap);
    *data = *size ? malloc(*size) : NULL;
    if (*data) memcpy(*data, z->stream, *size);
    deflater_give(wr->deflaters, z);
    CM_FAIL_IF(ctx, !*data, CM_ENOMEM, "%s: %s", wr->path,
               *size ? "out of memory encoding a tile" : "a tile did not fit its deflate bound");
    return 0;
}

void cm_writer_spec_like(const cm_image_info_t *in, int compression, cm_writer_spec_t *out)
{
    bool as_rgb = in->photometric == PHOTOMETRIC_YCBCR || in->palette;
    *out = (cm_writer_spec_t){.width = in->width,
                              .height = in->height,
                              .bands = in->bands,
                              .stype = in->stype,
                              .photometric = as_rgb ? PHOTOMETRIC_RGB : in->photometric,
                              .n_extra = in->palette ? 0 : in->n_extra,
                              .compression = compression,
                              .predictor = true,
                              .tile_w = in->out_tile_w,
                              .tile_h = in->out_tile_h};
    memcpy(out->extra, in->extra, sizeof out->extra);
}

void cm_writer_spec_labels(const cm_writer_spec_t *img, int bits, uint32_t masked,
                           cm_writer_spec_t *out)
{
    *out = *img;
    out->bands = 1;
    out->n_extra = 0;
    out->stype = bits == 8 ? CM_U8 : CM_U16;
    out->photometric = PHOTOMETRIC_MINISBLACK;
    out->colormap = NULL;
    out->set_nodata = true;
    out->nodata = masked;
    out->derived = true;
    out->description = NULL;
    if (cm_compression_lossy(img->compression)) out->compression = COMPRESSION_ADOBE_DEFLATE;
}

void cm_writer_spec_palette(const cm_writer_spec_t *img, const uint16_t *colormap, uint32_t masked,
                            cm_writer_spec_t *out)
{
    cm_writer_spec_labels(img, 8, masked, out);
    out->photometric = PHOTOMETRIC_PALETTE;
    out->colormap = colormap;
    out->predictor = false;
    out->set_nodata = masked < 256;
    out->description = img->description;
}

void cm_writer_spec_rgb8(int64_t width, int64_t height, cm_file_format_t format,
                         cm_writer_spec_t *out)
{
    *out = (cm_writer_spec_t){.format = format,
                              .width = width,
                              .height = height,
                              .bands = 3,
                              .stype = CM_U8,
                              .photometric = PHOTOMETRIC_RGB,
                              .compression = COMPRESSION_ADOBE_DEFLATE,
                              .predictor = true,
                              .tile_w = 256,
                              .tile_h = 256};
}

bool cm_writer_needs_bigtiff(const cm_writer_spec_t *s)
{
    int64_t tiles_x = (s->width + s->tile_w - 1) / s->tile_w;
    int64_t tiles_y = (s->height + s->tile_h - 1) / s->tile_h;
    double bytes = (double)(tiles_x * s->tile_w) * (double)(tiles_y * s->tile_h) * s->bands *
                   (double)cm_stype_size(s->stype);
    /* deflate and LZW can grow incompressible data by a few percent; keep a wide margin */
    return bytes * 1.1 + (double)tiles_x * tiles_y * 16 > 4000.0 * (1 << 20);
}

bool cm_compression_lossy(int code)
{
    return code == COMPRESSION_JPEG;
}

static bool predictable(int compression)
{
    return compression == COMPRESSION_ADOBE_DEFLATE || compression == COMPRESSION_DEFLATE ||
           compression == COMPRESSION_LZW || compression == COMPRESSION_ZSTD;
}

/* The fields that decide how tiles are encoded, for an image of width x height: the output
 * file itself, or the one-tile memory TIFF a worker encodes a tile with. JPEG tiles carry
 * their own tables (JPEGTABLESMODE 0), so a tile encoded apart is complete on its own. */
static bool set_structure(TIFF *t, const cm_writer_spec_t *s, const uint16_t *cmap, uint32_t width,
                          uint32_t height)
{
    uint16_t format = s->stype == CM_F32   ? SAMPLEFORMAT_IEEEFP
                      : s->stype == CM_I16 ? SAMPLEFORMAT_INT
                                           : SAMPLEFORMAT_UINT;
    bool ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, width) &&
              TIFFSetField(t, TIFFTAG_IMAGELENGTH, height) &&
              TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)s->bands) &&
              TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)(8 * cm_stype_size(s->stype))) &&
              TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, format) &&
              TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
              TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)s->photometric) &&
              TIFFSetField(t, TIFFTAG_TILEWIDTH, (uint32_t)s->tile_w) &&
              TIFFSetField(t, TIFFTAG_TILELENGTH, (uint32_t)s->tile_h) &&
              TIFFSetField(t, TIFFTAG_COMPRESSION, (uint16_t)s->compression);
    if (ok && s->n_extra)
        ok = TIFFSetField(t, TIFFTAG_EXTRASAMPLES, (uint16_t)s->n_extra, s->extra);
    if (ok && cmap) ok = TIFFSetField(t, TIFFTAG_COLORMAP, cmap, cmap + 256, cmap + 512);
    if (ok && s->predictor && predictable(s->compression))
        ok = TIFFSetField(t, TIFFTAG_PREDICTOR,
                          s->stype == CM_F32 ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL);
    if (ok && s->compression == COMPRESSION_JPEG)
        ok = TIFFSetField(t, TIFFTAG_JPEGQUALITY, 90) && TIFFSetField(t, TIFFTAG_JPEGTABLESMODE, 0);
    return ok;
}

/* Whether the input's ICC profile applies to an output: not to labels, unless a palette maps
 * them to colours. */
static bool keeps_icc(const cm_writer_spec_t *s)
{
    return !s->derived || s->photometric == PHOTOMETRIC_PALETTE;
}

/* The tags a JPEG or PNG input gives a TIFF: ICC profile, orientation, resolution. */
static bool set_meta(TIFF *t, const cm__meta_t *m)
{
    bool ok = true;
    if (m->icc) ok = TIFFSetField(t, TIFFTAG_ICCPROFILE, (uint32_t)m->icc_size, m->icc);
    if (ok && m->orientation) ok = TIFFSetField(t, TIFFTAG_ORIENTATION, (uint16_t)m->orientation);
    if (ok && m->res_unit)
        ok = TIFFSetField(t, TIFFTAG_XRESOLUTION, (float)m->xres) &&
             TIFFSetField(t, TIFFTAG_YRESOLUTION, (float)m->yres) &&
             TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, (uint16_t)m->res_unit);
    return ok;
}

static int set_fields(cm_writer_t *wr, const cm_writer_spec_t *s, cm_ctx_t *ctx)
{
    TIFF *t = wr->tif;
    bool ok = set_structure(t, s, s->colormap, (uint32_t)s->width, (uint32_t)s->height);
    TIFF *from = s->tags_from ? cm__image_tiff(s->tags_from) : NULL;
    if (ok && from) ok = cm__tags_copy(from, t, &wr->msg) == 0;
    if (ok && s->tags_from && !from) ok = set_meta(t, cm__image_meta(s->tags_from));
    if (ok && s->derived) {
        if (!keeps_icc(s)) TIFFUnsetField(t, TIFFTAG_ICCPROFILE);
        TIFFUnsetField(t, 42112 /* GDAL_METADATA */);
        TIFFUnsetField(t, 42113 /* GDAL_NODATA: a label's, if any, is set below */);
    }
    if (ok) ok = TIFFSetField(t, TIFFTAG_SOFTWARE, "chunkmeans " CM_VERSION);
    if (ok && s->set_nodata) ok = cm__tags_set_nodata(t, s->nodata, &wr->msg) == 0;
    if (ok && s->description) ok = TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, s->description);
    CM_FAIL_IF(ctx, !ok, CM_EUSAGE, "%s: cannot set up the output: %s", wr->path, wr->msg.text);
    return 0;
}

int cm_writer_check(const char *path, const cm_writer_spec_t *s, cm_ctx_t *ctx)
{
    if (s->format == CM_FILE_TIFF) return 0;
    const char *name = cm_file_format_name(s->format);
    bool alpha = s->n_extra == 1 &&
                 (s->extra[0] == EXTRASAMPLE_UNASSALPHA || s->extra[0] == EXTRASAMPLE_ASSOCALPHA);
    int colors = s->bands - (alpha ? 1 : 0);
    CM_FAIL_IF(ctx, s->photometric == PHOTOMETRIC_SEPARATED, CM_EUSAGE,
               "%s: %s cannot hold CMYK: write a .tif", path, name);
    CM_FAIL_IF(ctx, s->n_extra > (alpha ? 1 : 0) || (colors != 1 && colors != 3), CM_EUSAGE,
               "%s: %s holds grey or RGB%s, not %d bands%s: write a .tif", path, name,
               s->format == CM_FILE_PNG ? " with an optional alpha" : "", s->bands,
               s->n_extra ? " with extra samples" : "");
    if (s->format == CM_FILE_PNG) {
        CM_FAIL_IF(ctx, s->stype != CM_U8 && s->stype != CM_U16, CM_EUSAGE,
                   "%s: PNG holds 8- or 16-bit unsigned samples, not %s: write a .tif", path,
                   cm_stype_name(s->stype));
        CM_FAIL_IF(ctx, s->width > PNG_SIDE_MAX || s->height > PNG_SIDE_MAX, CM_EUSAGE,
                   "%s: %lldx%lld is too large for PNG (2^31 - 1 at most)", path,
                   (long long)s->width, (long long)s->height);
        return 0;
    }
    CM_FAIL_IF(ctx, s->stype != CM_U8, CM_EUSAGE,
               "%s: JPEG holds 8-bit samples, not %s: write a .png or .tif", path,
               cm_stype_name(s->stype));
    CM_FAIL_IF(ctx, alpha, CM_EUSAGE, "%s: JPEG cannot hold alpha: write a .png or .tif", path);
    CM_FAIL_IF(ctx, s->width > 65500 || s->height > 65500, CM_EUSAGE,
               "%s: %lldx%lld is too large for JPEG (65500 at most)", path, (long long)s->width,
               (long long)s->height);
    return 0;
}

/* Opens the writer of rows of a PNG or JPEG on the temporary file fd. */
static int open_rows(cm_writer_t *wr, const cm_writer_spec_t *spec, int fd, cm_ctx_t *ctx)
{
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        return cm_fail(ctx, CM_ENOMEM, "%s: %s", wr->path, strerror(e));
    }
    cm__meta_t none = {0}, meta = spec->tags_from ? *cm__image_meta(spec->tags_from) : none;
    if (!keeps_icc(spec)) meta.icc = NULL, meta.icc_size = 0;
    return spec->format == CM_FILE_PNG
               ? cm__png_writer_open(wr->path, spec, &meta, f, &wr->rows, ctx)
               : cm__jpeg_writer_open(wr->path, spec, &meta, f, &wr->rows, ctx);
}

static int writer_open(const char *path, const cm_writer_spec_t *spec, bool encoder,
                       cm_writer_t **out, cm_ctx_t *ctx)
{
    CM_TRY(cm_writer_check(path, spec, ctx));
    CM_FAIL_IF(ctx,
               spec->tile_w <= 0 || spec->tile_w % 16 || spec->tile_h <= 0 || spec->tile_h % 16,
               CM_EUSAGE, "%s: output tiles must be multiples of 16, not %lldx%lld", path,
               (long long)spec->tile_w, (long long)spec->tile_h);
    CM_FAIL_IF(ctx,
               spec->format == CM_FILE_TIFF &&
                   (spec->width > UINT32_MAX || spec->height > UINT32_MAX),
               CM_EUSAGE, "%s: %lldx%lld is too large for TIFF", path, (long long)spec->width,
               (long long)spec->height);
    /* Both sides below 2^32 and tiles of at least 16: the product fits in an int64_t. */
    int64_t n_tiles =
        cm__ceil_div_i64(spec->width, spec->tile_w) * cm__ceil_div_i64(spec->height, spec->tile_h);
    if (n_tiles > UINT32_MAX && spec->format == CM_FILE_TIFF)
        return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_TILE, spec->tile_w, 0},
                             "%s: %lld tiles of %lldx%lld are more than TIFF can index", path,
                             (long long)n_tiles, (long long)spec->tile_w, (long long)spec->tile_h);
    CM_FAIL_IF(ctx, spec->compression == COMPRESSION_JPEG && spec->stype != CM_U8, CM_EUSAGE,
               "%s: JPEG compression needs 8-bit samples, not %s", path,
               cm_stype_name(spec->stype));
    cm_writer_t *wr = calloc(1, sizeof(cm_writer_t));
    size_t tmp_size = strlen(path) + 16, tile_bytes;
    if (wr) {
        wr->spec = *spec;
        wr->px_bytes = (size_t)spec->bands * cm_stype_size(spec->stype);
        wr->path = strdup(path);
        wr->tmp = malloc(tmp_size);
        if (spec->colormap) memcpy(wr->cmap, spec->colormap, sizeof wr->cmap);
        if (deflated_here(spec) && spec->format == CM_FILE_TIFF) wr->deflaters = deflaters_new();
    }
    if (!wr || !wr->path || !wr->tmp ||
        (deflated_here(spec) && spec->format == CM_FILE_TIFF && !wr->deflaters) ||
        !cm__mul3_size((size_t)spec->tile_w, (size_t)spec->tile_h, wr->px_bytes, &tile_bytes)) {
        cm_writer_abort(wr);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    /* Not owned, and used only by set_fields below. */
    wr->spec.description = NULL;
    wr->spec.colormap = NULL;
    wr->spec.tags_from = NULL;

    /* An encoder's file is /dev/null: a PNG or JPEG header goes there, and nothing else. */
    int fd = encoder ? open("/dev/null", O_WRONLY | O_CLOEXEC)
                     : cm__tmpfile_next_to(path, wr->tmp, tmp_size);
    if (encoder && fd >= 0) {
        free(wr->tmp);
        wr->tmp = NULL;
    } else if (fd >= 0) {
        cm_comm_remember(wr->tmp); /* removed if the job is ended from outside */
    }
    if (fd < 0) {
        int e = errno;
        free(wr->tmp);
        wr->tmp = NULL;
        cm_writer_abort(wr);
        return cm_fail(ctx, CM_EIO, "%s: cannot create the output: %s", path, strerror(e));
    }
    if (spec->format != CM_FILE_TIFF) {
        int rc = open_rows(wr, spec, fd, ctx);
        if (rc < 0) {
            cm_writer_abort(wr);
            return rc;
        }
        *out = wr;
        return 0;
    }
    if (encoder) { /* tiles are encoded in memory TIFFs of their own */
        close(fd);
        *out = wr;
        return 0;
    }
    wr->file = (cm__outfile_t){.fd = fd};
    wr->tif = cm__tiff_open_out(wr->tmp, spec->bigtiff ? "w8" : "w", &wr->file, &wr->msg);
    if (!wr->tif) {
        close(fd);
        int rc = cm_fail(ctx, CM_EIO, "%s: %s", path, wr->msg.text);
        cm_writer_abort(wr);
        return rc;
    }
    int rc = set_fields(wr, spec, ctx);
    if (rc < 0) {
        cm_writer_abort(wr);
        return rc;
    }
    *out = wr;
    return 0;
}

void cm_encoded_free(cm_encoded_t *e)
{
    if (!e) return;
    for (int i = 0; i < e->n; i++) free(e->data[i]);
    free(e->data);
    free(e->size);
    free(e->tile);
    free(e);
}

/* Encodes one tile (tile_w x tile_h pixels at tile) with a fresh one-tile memory TIFF set up
 * like the output, and takes the bytes libtiff wrote for it. */
static int encode_tile(const cm_writer_t *wr, const uint8_t *tile, uint8_t **data, size_t *size,
                       cm_ctx_t *ctx)
{
    const cm_writer_spec_t *s = &wr->spec;
    cm__tiff_msg_t msg;
    cm__membuf_t mem = {0};
    TIFF *t = cm__tiff_open_memory(&mem, "wm", &msg);
    CM_FAIL_IF(ctx, !t, CM_ENOMEM, "%s: cannot encode: %s", wr->path, msg.text);
    tmsize_t bytes = (tmsize_t)((size_t)s->tile_w * (size_t)s->tile_h * wr->px_bytes);
    uint64_t *offsets = NULL, *counts = NULL;
    bool ok = set_structure(t, s, s->photometric == PHOTOMETRIC_PALETTE ? wr->cmap : NULL,
                            (uint32_t)s->tile_w, (uint32_t)s->tile_h) &&
              TIFFWriteEncodedTile(t, 0, (void *)tile, bytes) == bytes &&
              TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets) &&
              TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts) &&
              offsets[0] + counts[0] <= mem.size;
    if (ok) {
        *size = (size_t)counts[0];
        *data = malloc(*size ? *size : 1);
        if (*data) memcpy(*data, mem.data + offsets[0], *size);
        ok = *data != NULL;
    }
    TIFFClose(t);
    free(mem.data);
    CM_FAIL_IF(ctx, !ok, CM_ENOMEM, "%s: cannot encode a tile: %s", wr->path,
               msg.text[0] ? msg.text : "out of memory");
    return 0;
}

int cm_writer_encode(const cm_writer_t *wr, int64_t x, int64_t y, int64_t w, int64_t h,
                     const void *pixels, cm_encoded_t **out, cm_ctx_t *ctx)
{
    const cm_writer_spec_t *s = &wr->spec;
    if (wr->rows) return wr->rows->encode(wr->rows, x, y, w, h, pixels, out, ctx);
    CM_FAIL_IF(ctx, x % s->tile_w || y % s->tile_h || x + w > s->width || y + h > s->height,
               CM_EINTERNAL, "%s: region %lld,%lld %lldx%lld is not on the tile grid", wr->path,
               (long long)x, (long long)y, (long long)w, (long long)h);
    int64_t across = (w + s->tile_w - 1) / s->tile_w, down = (h + s->tile_h - 1) / s->tile_h;
    int64_t tiles_x = (s->width + s->tile_w - 1) / s->tile_w;
    size_t row_bytes = (size_t)w * wr->px_bytes, tile_row = (size_t)s->tile_w * wr->px_bytes;
    cm_encoded_t *e = calloc(1, sizeof(cm_encoded_t));
    uint8_t *scratch = malloc(tile_row * (size_t)s->tile_h);
    if (e) {
        e->tile = malloc(sizeof(uint32_t) * (size_t)(across * down));
        e->size = malloc(sizeof(size_t) * (size_t)(across * down));
        e->data = calloc((size_t)(across * down), sizeof(uint8_t *));
    }
    int rc = 0;
    if (!e || !scratch || !e->tile || !e->size || !e->data)
        rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory encoding tiles", wr->path);
    const uint8_t *src = pixels;
    for (int64_t ty = 0; rc == 0 && ty < h; ty += s->tile_h) {
        int64_t th = h - ty < s->tile_h ? h - ty : s->tile_h;
        for (int64_t tx = 0; rc == 0 && tx < w; tx += s->tile_w) {
            int64_t tw = w - tx < s->tile_w ? w - tx : s->tile_w;
            size_t copy = (size_t)tw * wr->px_bytes;
            /* A region one tile wide holds whole tiles as they are; edge tiles are padded by
             * repeating the last column and row, which keeps lossy codecs from smearing a
             * border colour into the image. */
            const uint8_t *tile = scratch;
            if (w == s->tile_w && th == s->tile_h) {
                tile = src + (size_t)ty * row_bytes;
            } else {
                for (int64_t r = 0; r < th; r++) {
                    uint8_t *row = scratch + (size_t)r * tile_row;
                    memcpy(row, src + (size_t)(ty + r) * row_bytes + (size_t)tx * wr->px_bytes,
                           copy);
                    for (size_t o = copy; o < tile_row; o += wr->px_bytes)
                        memcpy(row + o, row + copy - wr->px_bytes, wr->px_bytes);
                }
                for (int64_t r = th; r < s->tile_h; r++)
                    memcpy(scratch + (size_t)r * tile_row, scratch + (size_t)(th - 1) * tile_row,
                           tile_row);
            }
            e->tile[e->n] = (uint32_t)(((y + ty) / s->tile_h) * tiles_x + (x + tx) / s->tile_w);
            rc = wr->deflaters ? encode_deflate(wr, tile, &e->data[e->n], &e->size[e->n], ctx)
                               : encode_tile(wr, tile, &e->data[e->n], &e->size[e->n], ctx);
            if (rc == 0) e->n++;
        }
    }
    free(scratch);
    if (rc < 0) {
        cm_encoded_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

/* Why a write failed: the system's reason (disk full, file too large) when there is one, which
 * says more than libtiff's "Write error at scanline ...", else libtiff's message. */
static const char *reason(const cm_writer_t *wr, int e)
{
    return e ? strerror(e) : wr->msg.text[0] ? wr->msg.text : strerror(EIO);
}

int cm_writer_put_encoded(cm_writer_t *wr, const cm_encoded_t *e, cm_ctx_t *ctx)
{
    if (wr->rows) return wr->rows->put(wr->rows, e, ctx);
    static uint8_t none; /* the bytes of a tile being placed: never read */
    for (int i = 0; i < e->n; i++) {
        wr->msg.text[0] = '\0';
        errno = 0;
        void *data = e->data[i] ? e->data[i] : &none;
        CM_FAIL_IF(ctx, !e->data[i] && !wr->file.skip, CM_EINTERNAL,
                   "%s: tile %u has no bytes to write", wr->path, e->tile[i]);
        if (TIFFWriteRawTile(wr->tif, e->tile[i], data, (tmsize_t)e->size[i]) !=
            (tmsize_t)e->size[i])
            return cm_fail(ctx, CM_EIO, "%s: cannot write tile %u: %s", wr->path, e->tile[i],
                           reason(wr, errno));
    }
    return 0;
}

int cm__writer_put(cm_writer_t *wr, int64_t x, int64_t y, int64_t w, int64_t h, const void *pixels,
                   cm_ctx_t *ctx)
{
    cm_encoded_t *e = NULL;
    CM_TRY(cm_writer_encode(wr, x, y, w, h, pixels, &e, ctx));
    int rc = cm_writer_put_encoded(wr, e, ctx);
    cm_encoded_free(e);
    return rc;
}

int cm_writer_open(const char *path, const cm_writer_spec_t *spec, cm_writer_t **out, cm_ctx_t *ctx)
{
    return writer_open(path, spec, false, out, ctx);
}

int cm_writer_open_encoder(const char *path, const cm_writer_spec_t *spec, cm_writer_t **out,
                           cm_ctx_t *ctx)
{
    return writer_open(path, spec, true, out, ctx);
}

void cm_writer_spec_level(const cm_writer_spec_t *spec, int level, cm_writer_spec_t *out)
{
    *out = *spec;
    out->width = (spec->width + ((int64_t)1 << level) - 1) >> level;
    out->height = (spec->height + ((int64_t)1 << level) - 1) >> level;
}

/* The fields of the directory of level l (from 1) of wr's image in t: its structure at the
 * level's size, a reduced-resolution subfile, and the image's nodata. */
static bool set_level_fields(cm_writer_t *wr, TIFF *t, int l)
{
    const cm_writer_spec_t *s = &wr->spec;
    cm_writer_spec_t ls;
    cm_writer_spec_level(s, l, &ls);
    bool ok = set_structure(t, s, s->photometric == PHOTOMETRIC_PALETTE ? wr->cmap : NULL,
                            (uint32_t)ls.width, (uint32_t)ls.height) &&
              TIFFSetField(t, TIFFTAG_SUBFILETYPE, (uint32_t)FILETYPE_REDUCEDIMAGE);
    return ok && (!s->set_nodata || cm__tags_set_nodata(t, s->nodata, &wr->msg) == 0);
}

/* The number of tiles of level l (0: the image) of wr's image. */
static uint32_t level_tiles(const cm_writer_t *wr, int l)
{
    cm_writer_spec_t ls;
    cm_writer_spec_level(&wr->spec, l, &ls);
    return (uint32_t)(cm__ceil_div_i64(ls.width, ls.tile_w) *
                      cm__ceil_div_i64(ls.height, ls.tile_h));
}

int cm_writer_add_level(cm_writer_t *wr, int level, const cm_tilestore_t *tiles, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !wr->tif, CM_EINTERNAL, "%s: only a TIFF has reduced levels", wr->path);
    wr->msg.text[0] = '\0';
    errno = 0;
    if (!TIFFWriteDirectory(wr->tif))
        return cm_fail(ctx, CM_EIO, "%s: cannot write the directory: %s", wr->path,
                       reason(wr, errno));
    CM_FAIL_IF(ctx, !set_level_fields(wr, wr->tif, level), CM_EIO,
               "%s: cannot set up a reduced level: %s", wr->path, wr->msg.text);
    uint32_t n = level_tiles(wr, level);
    for (uint32_t t = 0; t < n; t++) {
        uint8_t *data = NULL;
        size_t size = 0;
        CM_TRY(cm_tilestore_get(tiles, t, &data, &size, ctx));
        wr->msg.text[0] = '\0';
        errno = 0;
        tmsize_t put = TIFFWriteRawTile(wr->tif, t, data, (tmsize_t)size);
        free(data);
        if (put != (tmsize_t)size)
            return cm_fail(ctx, CM_EIO, "%s: cannot write tile %u of a reduced level: %s", wr->path,
                           t, reason(wr, errno));
    }
    return 0;
}

bool cm_writer_can_place(const cm_writer_t *wr)
{
    return wr->spec.format == CM_FILE_TIFF;
}

int cm_writer_place(cm_writer_t *wr, const cm_encoded_t *e, uint64_t *offsets, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !wr->tif, CM_EINTERNAL, "%s: only a TIFF's writer places tiles", wr->path);
    wr->file.skip = true;
    int rc = cm_writer_put_encoded(wr, e, ctx);
    wr->file.skip = false;
    uint64_t *all = NULL;
    if (rc == 0 && !TIFFGetField(wr->tif, TIFFTAG_TILEOFFSETS, &all))
        rc = cm_fail(ctx, CM_EINTERNAL, "%s: no tile offsets", wr->path);
    for (int i = 0; rc == 0 && i < e->n; i++) offsets[i] = all[e->tile[i]];
    return rc;
}

const char *cm_writer_file(const cm_writer_t *wr)
{
    return wr->tmp;
}

int cm_writer_put_at(cm_writer_t *wr, const char *file, const cm_encoded_t *e,
                     const uint64_t *offsets, cm_ctx_t *ctx)
{
    if (!wr->placed) CM_TRY(cm_comm_file_open(file, &wr->placed, ctx));
    for (int i = 0; i < e->n; i++)
        CM_TRY(cm_comm_file_write_at(wr->placed, offsets[i], e->data[i], e->size[i], ctx));
    return 0;
}

int cm_writer_flush(cm_writer_t *wr, cm_ctx_t *ctx)
{
    cm_comm_file_t *f = wr->placed;
    wr->placed = NULL;
    return cm_comm_file_close(f, ctx);
}

int cm_encoded_count(const cm_encoded_t *e)
{
    return e->n;
}

/* The bytes of encoded tiles: a header, each piece's index and size, then the pieces. */
typedef struct packed_head {
    int64_t x, y, w, h;
    uint64_t raw_len;
    uint32_t adler;
    int32_t n;
    uint8_t raw, data; /* data: the pieces follow their index */
} packed_head_t;

int cm_encoded_pack(const cm_encoded_t *e, bool data, uint8_t **bytes, size_t *n, cm_ctx_t *ctx)
{
    size_t total = sizeof(packed_head_t);
    for (int i = 0; i < e->n; i++)
        total += sizeof(uint32_t) + sizeof(uint64_t) + (data ? e->size[i] : 0);
    uint8_t *b = calloc(1, total), *at = b + sizeof(packed_head_t);
    CM_FAIL_IF(ctx, !b, CM_ENOMEM, "out of memory packing %zu bytes of tiles", total);
    packed_head_t h = {e->x, e->y, e->w, e->h, e->raw_len, e->adler, e->n, e->raw, data};
    memcpy(b, &h, sizeof h);
    for (int i = 0; i < e->n; i++) {
        uint32_t tile = e->tile ? e->tile[i] : 0;
        uint64_t size = e->size[i];
        memcpy(at, &tile, sizeof tile);
        memcpy(at + sizeof tile, &size, sizeof size);
        at += sizeof tile + sizeof size;
    }
    for (int i = 0; data && i < e->n; i++) {
        if (e->size[i]) memcpy(at, e->data[i], e->size[i]);
        at += e->size[i];
    }
    *bytes = b;
    *n = total;
    return 0;
}

int cm_encoded_unpack(const uint8_t *bytes, size_t n, cm_encoded_t **out, cm_ctx_t *ctx)
{
    packed_head_t h;
    CM_FAIL_IF(ctx, n < sizeof h, CM_EINTERNAL, "packed tiles of %zu bytes", n);
    memcpy(&h, bytes, sizeof h);
    size_t index = (size_t)(h.n > 0 ? h.n : 0) * (sizeof(uint32_t) + sizeof(uint64_t));
    CM_FAIL_IF(ctx, h.n < 0 || n - sizeof h < index, CM_EINTERNAL, "packed tiles of %zu bytes", n);
    cm_encoded_t *e = calloc(1, sizeof *e);
    if (e) {
        *e = (cm_encoded_t){.x = h.x,
                            .y = h.y,
                            .w = h.w,
                            .h = h.h,
                            .raw = h.raw,
                            .adler = h.adler,
                            .raw_len = (size_t)h.raw_len};
        e->tile = malloc(sizeof(uint32_t) * (size_t)(h.n ? h.n : 1));
        e->size = malloc(sizeof(size_t) * (size_t)(h.n ? h.n : 1));
        e->data = calloc((size_t)(h.n ? h.n : 1), sizeof(uint8_t *));
    }
    int rc = e && e->tile && e->size && e->data ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory");
    const uint8_t *at = bytes + sizeof h, *data = at + index, *end = bytes + n;
    for (int i = 0; rc == 0 && i < h.n; i++, e->n++) {
        uint64_t size;
        memcpy(&e->tile[i], at, sizeof(uint32_t));
        memcpy(&size, at + sizeof(uint32_t), sizeof size);
        at += sizeof(uint32_t) + sizeof size;
        e->size[i] = (size_t)size;
        if (!h.data) continue;
        if (size > (uint64_t)(end - data)) {
            rc = cm_fail(ctx, CM_EINTERNAL, "packed tiles of %zu bytes", n);
            break;
        }
        e->data[i] = malloc(size ? (size_t)size : 1);
        if (!e->data[i]) {
            rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
            break;
        }
        memcpy(e->data[i], data, (size_t)size);
        data += size;
    }
    if (rc < 0) {
        cm_encoded_free(e);
        return rc;
    }
    *out = e;
    return 0;
}

static void writer_free(cm_writer_t *wr)
{
    cm_comm_file_close(wr->placed, NULL);
    if (wr->tmp) cm_comm_forget(wr->tmp);
    if (wr->rows) wr->rows->free(wr->rows);
    deflaters_free(wr->deflaters);
    free(wr->tmp);
    free(wr->path);
    free(wr);
}

int cm_writer_commit(cm_writer_t *wr, cm_ctx_t *ctx)
{
    wr->msg.text[0] = '\0';
    errno = 0;
    if (wr->rows) {
        int rc = wr->rows->finish(wr->rows, ctx); /* flushed to the disk, and closed */
        if (rc < 0) {
            cm_writer_abort(wr);
            return rc;
        }
    }
    int ok = wr->rows ? 1 : TIFFFlush(wr->tif);
    int e = errno;
    if (wr->tif) TIFFClose(wr->tif);
    wr->tif = NULL;
    if (ok && !wr->rows) {
        /* Make the data durable before the name points at it. */
        int fd = open(wr->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) ok = 0, e = errno;
        if (fd >= 0) close(fd);
    }
    if (ok && rename(wr->tmp, wr->path) < 0) ok = 0, e = errno;
    if (ok) cm__fsync_dir_of(wr->path); /* the rename itself survives a crash */
    if (!ok) {
        int rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path, reason(wr, e));
        cm_writer_abort(wr);
        return rc;
    }
    writer_free(wr);
    return 0;
}

/* ---- Cloud Optimized GeoTIFF ----
 * The layout of GDAL's COG driver: after the header, the structural metadata GDAL reads there
 * (the "ghost" area); then every directory, the image's first and the levels' after it, their
 * tile arrays reserved (TIFFDeferStrileArrayWriting); then the tiles, the smallest level's
 * first and the image's last, each row by row, after its size as 4 bytes and before a copy of
 * its last 4 bytes, so that a reader of ranges gets a tile's size with the tile before it. The
 * directories are written first, the file is opened again to append the tiles, and each
 * directory's arrays are written in their reserved place (TIFFForceStrileArrayWriting). */
static const char cog_metadata[] = "LAYOUT=IFDS_BEFORE_DATA\n"
                                   "BLOCK_ORDER=ROW_MAJOR\n"
                                   "BLOCK_LEADER=SIZE_AS_UINT4\n"
                                   "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\n"
                                   "KNOWN_INCOMPATIBLE_EDITION=NO\n";

/* Writes n bytes at the end of f, outside libtiff. */
static bool append(cm__outfile_t *f, const void *data, size_t n)
{
    if (!cm__pwrite_all(f->fd, data, n, f->end)) return false;
    f->pos = f->end += n;
    return true;
}

/* The directory of level l (0: the image, whose tags are copied from src) of wr's output. */
static bool cog_directory(cm_writer_t *wr, TIFF *t, TIFF *src, int l)
{
    const cm_writer_spec_t *s = &wr->spec;
    bool ok = true;
    char *text = NULL;
    if (l == 0) {
        ok = set_structure(t, s, s->photometric == PHOTOMETRIC_PALETTE ? wr->cmap : NULL,
                           (uint32_t)s->width, (uint32_t)s->height) &&
             cm__tags_copy(src, t, &wr->msg) == 0 &&
             TIFFSetField(t, TIFFTAG_SOFTWARE, "chunkmeans " CM_VERSION);
        if (ok && TIFFGetField(src, TIFFTAG_IMAGEDESCRIPTION, &text))
            ok = TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, text);
    } else {
        ok = set_level_fields(wr, t, l);
    }
    return ok && TIFFDeferStrileArrayWriting(t) && TIFFWriteCheck(t, 1, "cog") &&
           TIFFWriteDirectory(t);
}

/* Appends the tiles of level l (0: from src) to the file u, in their order. */
static int cog_tiles(cm_writer_t *wr, TIFF *u, cm__outfile_t *f, TIFF *src, int l,
                     const cm_tilestore_t *store, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !TIFFSetDirectory(u, (tdir_t)l), CM_EIO, "%s: cannot write level %d: %s",
               wr->path, l, wr->msg.text);
    uint32_t n = level_tiles(wr, l);
    uint64_t *sizes = NULL;
    if (l == 0)
        CM_FAIL_IF(ctx, !TIFFGetField(src, TIFFTAG_TILEBYTECOUNTS, &sizes), CM_EIO,
                   "%s: the image's tiles are lost", wr->path);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t *data = NULL;
        size_t size = 0;
        if (l == 0) {
            size = (size_t)sizes[i];
            data = malloc(size ? size : 1);
            CM_FAIL_IF(ctx, !data, CM_ENOMEM, "%s: out of memory", wr->path);
            if (TIFFReadRawTile(src, i, data, (tmsize_t)size) != (tmsize_t)size) {
                free(data);
                return cm_fail(ctx, CM_EIO, "%s: cannot read back tile %u: %s", wr->path, i,
                               wr->msg.text);
            }
        } else {
            CM_TRY(cm_tilestore_get(store, i, &data, &size, ctx));
        }
        uint32_t leader = (uint32_t)size;
        errno = 0;
        bool ok = append(f, &leader, 4) &&
                  TIFFWriteRawTile(u, i, data, (tmsize_t)size) == (tmsize_t)size &&
                  (size < 4 || append(f, data + size - 4, 4));
        free(data);
        if (!ok)
            return cm_fail(ctx, CM_EIO, "%s: cannot write tile %u of level %d: %s", wr->path, i, l,
                           reason(wr, errno));
    }
    CM_FAIL_IF(ctx, !TIFFForceStrileArrayWriting(u), CM_EIO, "%s: cannot write level %d: %s",
               wr->path, l, wr->msg.text);
    return 0;
}

int cm_writer_commit_cog(cm_writer_t *wr, int n_levels, const cm_tilestore_t *const *levels,
                         cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !wr->tif, CM_EINTERNAL, "%s: only a TIFF is cloud optimized", wr->path);
    wr->msg.text[0] = '\0';
    errno = 0;
    int ok = TIFFFlush(wr->tif), e = errno;
    TIFFClose(wr->tif); /* the image, complete, in the temporary file: its tiles are read back */
    wr->tif = NULL;
    size_t tmp_size = strlen(wr->path) + 16;
    char *cog = malloc(tmp_size);
    TIFF *src = ok ? cm__tiff_open(wr->tmp, "r", -1, &wr->msg) : NULL, *t = NULL;
    int fd = src && cog ? cm__tmpfile_next_to(wr->path, cog, tmp_size) : -1;
    if (!src || fd < 0) {
        int rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path,
                         !ok             ? reason(wr, e)
                         : fd < 0 && src ? strerror(errno)
                                         : wr->msg.text);
        if (src) TIFFClose(src);
        free(cog);
        cm_writer_abort(wr);
        return rc;
    }
    cm_comm_remember(cog);
    cm__outfile_t f = {.fd = fd};
    char ghost[64 + sizeof cog_metadata];
    int ghost_n = snprintf(ghost, sizeof ghost, "GDAL_STRUCTURAL_METADATA_SIZE=%06zu bytes\n%s",
                           strlen(cog_metadata), cog_metadata);
    t = cm__tiff_open_out(cog, wr->spec.bigtiff ? "w8" : "w", &f, &wr->msg);
    bool good = t && append(&f, ghost, (size_t)ghost_n);
    for (int l = 0; good && l <= n_levels; l++) good = cog_directory(wr, t, src, l);
    if (t)
        TIFFClose(t); /* closes fd */
    else
        close(fd);
    int rc = good ? 0
                  : cm_fail(ctx, CM_EIO, "%s: cannot write the directories: %s", wr->path,
                            wr->msg.text[0] ? wr->msg.text : strerror(EIO));
    /* Then the tiles, appended to the directories. */
    cm__outfile_t g = {.fd = rc == 0 ? open(cog, O_RDWR | O_CLOEXEC) : -1};
    if (rc == 0 && g.fd < 0)
        rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path, strerror(errno));
    if (rc == 0) {
        g.end = (uint64_t)lseek(g.fd, 0, SEEK_END);
        TIFF *u = cm__tiff_open_out(cog, "r+", &g, &wr->msg);
        if (!u) {
            close(g.fd);
            rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path, wr->msg.text);
        }
        /* The directories' tile arrays, zero for now, right after the directories: the tiles
         * then follow them, and their offsets and sizes are written into them in place. */
        for (int l = 0; rc == 0 && l <= n_levels; l++)
            if (!TIFFSetDirectory(u, (tdir_t)l) || !TIFFForceStrileArrayWriting(u))
                rc = cm_fail(ctx, CM_EIO, "%s: cannot write the directories: %s", wr->path,
                             wr->msg.text);
        for (int l = n_levels; rc == 0 && l >= 0; l--)
            rc = cog_tiles(wr, u, &g, src, l, l ? levels[l - 1] : NULL, ctx);
        if (u && !TIFFFlush(u) && rc == 0)
            rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path, wr->msg.text);
        if (u) TIFFClose(u);
    }
    TIFFClose(src);
    /* Durable, then renamed into place; the image's temporary file goes. */
    int cfd = rc == 0 ? open(cog, O_RDONLY | O_CLOEXEC) : -1;
    if (rc == 0 && (cfd < 0 || fsync(cfd) < 0 || rename(cog, wr->path) < 0))
        rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path, strerror(errno));
    if (cfd >= 0) close(cfd);
    if (rc == 0)
        cm__fsync_dir_of(wr->path);
    else
        unlink(cog);
    cm_comm_forget(cog);
    free(cog);
    cm_writer_abort(wr); /* removes the image's temporary file */
    return rc;
}

void cm_writer_abort(cm_writer_t *wr)
{
    if (!wr) return;
    if (wr->tif) TIFFClose(wr->tif);
    if (wr->tmp) unlink(wr->tmp);
    writer_free(wr);
}
