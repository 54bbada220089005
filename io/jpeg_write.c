/* JPEG output with libjpeg-turbo (quality 90, as TIFF's JPEG tiles): rows joined into bands and
 * compressed in order by the writer. Errors come back through a setjmp per call. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
/* jpeglib.h wants FILE and size_t first */
#include <jpeglib.h>

#include "io_internal.h"

enum { QUALITY = 90 };

typedef struct jpeg_writer {
    cm__rows_writer_t base;
    const char *path;
    FILE *f;
    struct jpeg_compress_struct cinfo;
    struct jpeg_error_mgr jerr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    bool created;
    int64_t width, height, next_y;
    size_t px_bytes;
    cm__band_t band;
} jpeg_writer_t;

static void on_error(j_common_ptr cinfo)
{
    jpeg_writer_t *w = cinfo->client_data;
    cinfo->err->format_message(cinfo, w->msg);
    longjmp(w->jmp, 1);
}

static void on_message(j_common_ptr cinfo, int level)
{
    (void)cinfo, (void)level; /* the compressor's warnings say nothing about our data */
}

static int failed(jpeg_writer_t *w, cm_ctx_t *ctx)
{
    return cm_fail(ctx, CM_EIO, "%s: cannot write: %s", w->path, errno ? strerror(errno) : w->msg);
}

static int jpeg_encode(const cm__rows_writer_t *base, int64_t x, int64_t y, int64_t ww, int64_t h,
                       const void *pixels, cm_encoded_t **out, cm_ctx_t *ctx)
{
    const jpeg_writer_t *w = (const jpeg_writer_t *)base;
    cm_encoded_t *e = cm__piece_new(x, y, ww, h, pixels, (size_t)(ww * h) * w->px_bytes);
    CM_FAIL_IF(ctx, !e, CM_ENOMEM, "%s: out of memory", w->path);
    *out = e;
    return 0;
}

static int jpeg_put(cm__rows_writer_t *base, const cm_encoded_t *e, cm_ctx_t *ctx)
{
    jpeg_writer_t *w = (jpeg_writer_t *)base;
    CM_FAIL_IF(ctx, e->y != w->next_y, CM_EINTERNAL, "%s: rows from %lld put when %lld was next",
               w->path, (long long)e->y, (long long)w->next_y);
    const uint8_t *band;
    CM_TRY(cm__band_put(&w->band, e, &band, ctx, w->path));
    if (!band) return 0;
    size_t row = (size_t)w->width * w->px_bytes;
    errno = 0;
    if (setjmp(w->jmp)) return failed(w, ctx);
    for (int64_t r = 0; r < e->h; r++) {
        JSAMPROW p = (JSAMPROW)(band + (size_t)r * row);
        jpeg_write_scanlines(&w->cinfo, &p, 1);
    }
    w->next_y = e->y + e->h;
    return 0;
}

static int jpeg_finish(cm__rows_writer_t *base, cm_ctx_t *ctx)
{
    jpeg_writer_t *w = (jpeg_writer_t *)base;
    CM_FAIL_IF(ctx, w->next_y != w->height, CM_EINTERNAL, "%s: %lld of %lld rows written", w->path,
               (long long)w->next_y, (long long)w->height);
    errno = 0;
    if (setjmp(w->jmp)) return failed(w, ctx);
    jpeg_finish_compress(&w->cinfo);
    return cm__file_close(&w->f, w->path, ctx);
}

static void jpeg_free(cm__rows_writer_t *base)
{
    jpeg_writer_t *w = (jpeg_writer_t *)base;
    if (!w) return;
    if (w->created) jpeg_destroy_compress(&w->cinfo);
    if (w->f) fclose(w->f);
    free(w->band.rows);
    free(w);
}

/* Sets up the compressor and writes the header: JFIF with the resolution, the ICC profile and
 * the orientation as EXIF. Called under setjmp. */
static void start(jpeg_writer_t *w, const cm_writer_spec_t *s, const cm__meta_t *m)
{
    struct jpeg_compress_struct *c = &w->cinfo;
    jpeg_create_compress(c);
    w->created = true;
    jpeg_stdio_dest(c, w->f);
    c->image_width = (JDIMENSION)s->width;
    c->image_height = (JDIMENSION)s->height;
    c->input_components = s->bands;
    c->in_color_space = s->bands == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, QUALITY, TRUE);
    if (m->res_unit && m->xres <= 65535 && m->yres <= 65535) {
        c->density_unit = m->res_unit == RESUNIT_INCH         ? 1
                          : m->res_unit == RESUNIT_CENTIMETER ? 2
                                                              : 0;
        c->X_density = (UINT16)(m->xres + 0.5);
        c->Y_density = (UINT16)(m->yres + 0.5);
    }
    jpeg_start_compress(c, TRUE);
    if (m->orientation) {
        uint8_t exif[6 + CM__EXIF_MIN] = "Exif";
        size_t n = 6 + cm__exif_make(m->orientation, exif + 6);
        jpeg_write_marker(c, JPEG_APP0 + 1, exif, (unsigned)n);
    }
    if (m->icc) jpeg_write_icc_profile(c, m->icc, (unsigned)m->icc_size);
}

int cm__jpeg_writer_open(const char *path, const cm_writer_spec_t *spec, const cm__meta_t *meta,
                         FILE *f, cm__rows_writer_t **out, cm_ctx_t *ctx)
{
    jpeg_writer_t *w = calloc(1, sizeof *w);
    if (!w) {
        fclose(f);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    w->base = (cm__rows_writer_t){jpeg_encode, jpeg_put, jpeg_finish, jpeg_free};
    w->path = path;
    w->f = f;
    w->width = spec->width;
    w->height = spec->height;
    w->px_bytes = (size_t)spec->bands;
    w->band = (cm__band_t){.width = spec->width, .px_bytes = w->px_bytes};
    w->cinfo.err = jpeg_std_error(&w->jerr);
    w->jerr.error_exit = on_error;
    w->jerr.emit_message = on_message;
    w->cinfo.client_data = w;
    errno = 0;
    if (setjmp(w->jmp)) {
        int rc = failed(w, ctx);
        jpeg_free(&w->base);
        return rc;
    }
    start(w, spec, meta);
    *out = &w->base;
    return 0;
}
