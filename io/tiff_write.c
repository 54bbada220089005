/* Tiled TIFF output written to a temporary file and renamed into place when complete. One
 * thread writes; edge tiles are padded from a scratch tile. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cm_io.h"
#include "io_internal.h"

struct cm_writer {
    TIFF *tif;
    char *path, *tmp;
    cm_writer_spec_t spec;
    size_t px_bytes;  /* bytes per pixel */
    uint8_t *scratch; /* one tile */
    cm__tiff_msg_t msg;
};

void cm_writer_spec_like(const cm_image_info_t *in, int compression, cm_writer_spec_t *out)
{
    *out = (cm_writer_spec_t){.width = in->width, .height = in->height, .bands = in->bands,
                              .alpha_band = in->alpha_band, .bits = 8,
                              .photometric = in->photometric == PHOTOMETRIC_YCBCR
                                                 ? PHOTOMETRIC_RGB
                                                 : in->photometric,
                              .compression = compression, .tile_w = in->out_tile_w,
                              .tile_h = in->out_tile_h};
}

void cm_writer_spec_labels(const cm_writer_spec_t *img, int bits, cm_writer_spec_t *out)
{
    *out = *img;
    out->bands = 1;
    out->alpha_band = -1;
    out->bits = bits;
    out->photometric = PHOTOMETRIC_MINISBLACK;
    if (cm_compression_lossy(img->compression)) out->compression = COMPRESSION_ADOBE_DEFLATE;
}

bool cm_writer_needs_bigtiff(const cm_writer_spec_t *s)
{
    int64_t tiles_x = (s->width + s->tile_w - 1) / s->tile_w;
    int64_t tiles_y = (s->height + s->tile_h - 1) / s->tile_h;
    double bytes = (double)(tiles_x * s->tile_w) * (double)(tiles_y * s->tile_h) * s->bands *
                   (s->bits / 8);
    /* deflate and LZW can grow incompressible data by a few percent; keep a wide margin */
    return bytes * 1.1 + (double)tiles_x * tiles_y * 16 > 4000.0 * (1 << 20);
}

bool cm_compression_lossy(int code)
{
    return code == COMPRESSION_JPEG;
}

static int set_fields(cm_writer_t *wr, const cm_writer_spec_t *s, cm_ctx_t *ctx)
{
    TIFF *t = wr->tif;
    int ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, (uint32_t)s->width) &&
             TIFFSetField(t, TIFFTAG_IMAGELENGTH, (uint32_t)s->height) &&
             TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, (uint16_t)s->bands) &&
             TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, (uint16_t)s->bits) &&
             TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_UINT) &&
             TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
             TIFFSetField(t, TIFFTAG_PHOTOMETRIC, (uint16_t)s->photometric) &&
             TIFFSetField(t, TIFFTAG_TILEWIDTH, (uint32_t)s->tile_w) &&
             TIFFSetField(t, TIFFTAG_TILELENGTH, (uint32_t)s->tile_h) &&
             TIFFSetField(t, TIFFTAG_COMPRESSION, (uint16_t)s->compression) &&
             TIFFSetField(t, TIFFTAG_SOFTWARE, "chunkmeans");
    if (ok && s->alpha_band >= 0) {
        uint16_t extra = EXTRASAMPLE_UNASSALPHA;
        ok = TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    if (ok && s->compression == COMPRESSION_JPEG)
        ok = TIFFSetField(t, TIFFTAG_JPEGQUALITY, 90);
    if (ok && s->description) ok = TIFFSetField(t, TIFFTAG_IMAGEDESCRIPTION, s->description);
    CM_FAIL_IF(ctx, !ok, CM_EUSAGE, "%s: cannot set up the output: %s", wr->path, wr->msg.text);
    return 0;
}

int cm_writer_open(const char *path, const cm_writer_spec_t *spec, cm_writer_t **out,
                   cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, spec->tile_w <= 0 || spec->tile_w % 16 || spec->tile_h <= 0 || spec->tile_h % 16,
               CM_EUSAGE, "%s: output tiles must be multiples of 16, not %lldx%lld", path,
               (long long)spec->tile_w, (long long)spec->tile_h);
    CM_FAIL_IF(ctx, spec->width > UINT32_MAX || spec->height > UINT32_MAX, CM_EUSAGE,
               "%s: %lldx%lld is too large for TIFF", path, (long long)spec->width,
               (long long)spec->height);
    cm_writer_t *wr = calloc(1, sizeof(cm_writer_t));
    size_t tmp_size = strlen(path) + 16, tile_bytes;
    if (wr) {
        wr->spec = *spec;
        wr->px_bytes = (size_t)spec->bands * (size_t)(spec->bits / 8);
        wr->path = strdup(path);
        wr->tmp = malloc(tmp_size);
        if (cm_mul3_size((size_t)spec->tile_w, (size_t)spec->tile_h, wr->px_bytes, &tile_bytes))
            wr->scratch = malloc(tile_bytes);
    }
    if (!wr || !wr->path || !wr->tmp || !wr->scratch) {
        cm_writer_abort(wr);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    wr->spec.description = NULL; /* not owned: used only by set_fields */

    int fd = cm__tmpfile_next_to(path, wr->tmp, tmp_size);
    if (fd < 0) {
        int e = errno;
        free(wr->tmp);
        wr->tmp = NULL;
        cm_writer_abort(wr);
        return cm_fail(ctx, CM_EIO, "%s: cannot create the output: %s", path, strerror(e));
    }
    wr->tif = cm__tiff_open(wr->tmp, spec->bigtiff ? "w8" : "w", fd, &wr->msg);
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

int cm_writer_put(cm_writer_t *wr, int64_t x, int64_t y, int64_t w, int64_t h,
                  const void *pixels, cm_ctx_t *ctx)
{
    const cm_writer_spec_t *s = &wr->spec;
    CM_FAIL_IF(ctx, x % s->tile_w || y % s->tile_h || x + w > s->width || y + h > s->height,
               CM_EINTERNAL, "%s: region %lld,%lld %lldx%lld is not on the tile grid", wr->path,
               (long long)x, (long long)y, (long long)w, (long long)h);
    const uint8_t *src = pixels;
    size_t row_bytes = (size_t)w * wr->px_bytes;
    size_t tile_row = (size_t)s->tile_w * wr->px_bytes;
    tmsize_t tile_bytes = (tmsize_t)(tile_row * (size_t)s->tile_h);
    for (int64_t ty = 0; ty < h; ty += s->tile_h) {
        int64_t th = h - ty < s->tile_h ? h - ty : s->tile_h;
        for (int64_t tx = 0; tx < w; tx += s->tile_w) {
            int64_t tw = w - tx < s->tile_w ? w - tx : s->tile_w;
            size_t copy = (size_t)tw * wr->px_bytes;
            /* Edge tiles are padded by repeating the last column and row, which keeps lossy
             * codecs from smearing a border colour into the image. */
            for (int64_t r = 0; r < th; r++) {
                uint8_t *row = wr->scratch + (size_t)r * tile_row;
                memcpy(row, src + (size_t)(ty + r) * row_bytes + (size_t)tx * wr->px_bytes, copy);
                for (size_t o = copy; o < tile_row; o += wr->px_bytes)
                    memcpy(row + o, row + copy - wr->px_bytes, wr->px_bytes);
            }
            for (int64_t r = th; r < s->tile_h; r++)
                memcpy(wr->scratch + (size_t)r * tile_row,
                       wr->scratch + (size_t)(th - 1) * tile_row, tile_row);
            uint32_t tile = TIFFComputeTile(wr->tif, (uint32_t)(x + tx), (uint32_t)(y + ty), 0, 0);
            wr->msg.text[0] = '\0';
            if (TIFFWriteEncodedTile(wr->tif, tile, wr->scratch, tile_bytes) != tile_bytes)
                return cm_fail(ctx, CM_EIO, "%s: cannot write tile %u: %s", wr->path, tile,
                               wr->msg.text[0] ? wr->msg.text : strerror(errno ? errno : EIO));
        }
    }
    return 0;
}

static void writer_free(cm_writer_t *wr)
{
    free(wr->scratch);
    free(wr->tmp);
    free(wr->path);
    free(wr);
}

int cm_writer_commit(cm_writer_t *wr, cm_ctx_t *ctx)
{
    wr->msg.text[0] = '\0';
    errno = 0;
    int ok = TIFFFlush(wr->tif);
    int e = errno;
    TIFFClose(wr->tif);
    wr->tif = NULL;
    if (ok) {
        /* Make the data durable before the name points at it. */
        int fd = open(wr->tmp, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) < 0) ok = 0, e = errno;
        if (fd >= 0) close(fd);
    }
    if (ok && rename(wr->tmp, wr->path) < 0) ok = 0, e = errno;
    if (!ok) {
        int rc = cm_fail(ctx, CM_EIO, "%s: cannot finish the output: %s", wr->path,
                         wr->msg.text[0] ? wr->msg.text : strerror(e ? e : EIO));
        cm_writer_abort(wr);
        return rc;
    }
    writer_free(wr);
    return 0;
}

void cm_writer_abort(cm_writer_t *wr)
{
    if (!wr) return;
    if (wr->tif) TIFFClose(wr->tif);
    if (wr->tmp) unlink(wr->tmp);
    writer_free(wr);
}
