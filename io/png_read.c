/* PNG reading with libpng: the header into the image's description, then rows in order for
 * the spill store. Every libpng call runs under a setjmp of its own, and everything libpng
 * or we allocate hangs off the decoder, freed by its close: an error never leaks or exits. */
#include <png.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

enum { CHUNK_MAX_BYTES = 32 << 20 };

typedef struct png_dec {
    cm__decoder_t base;
    const char *path;
    FILE *f;
    png_structp png;
    png_infop info;
    char msg[200];
    size_t row_bytes;
    int64_t height, next;
    bool interlaced;
    bool updated;       /* libpng's transforms set up: it has its row buffers */
    uint8_t *whole;     /* an interlaced image, decoded at the first rows */
    png_bytep *row_ptr; /* its rows, while libpng fills them */
} png_dec_t;

static void on_error(png_structp png, png_const_charp msg)
{
    png_dec_t *d = png_get_error_ptr(png);
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Ancillary damage (a bad text chunk) does not stop the image; but libpng reads a chunk
 * declared larger than its limit after only this warning, allocating whatever it says. */
static void on_warning(png_structp png, png_const_charp msg)
{
    if (strstr(msg, "chunk data is too large")) on_error(png, msg);
}

/* libpng's reads, with a reason that says more than "Read Error". */
static void on_read(png_structp png, png_bytep data, size_t n)
{
    png_dec_t *d = png_get_io_ptr(png);
    if (fread(data, 1, n, d->f) == n) return;
    png_error(png, feof(d->f) ? "the file ends before the image does (truncated?)"
                              : "cannot read the file");
}

static int bad(png_dec_t *d, cm_ctx_t *ctx)
{
    if (!strcmp(d->msg, "Out of memory")) /* libpng's words when an allocation fails */
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory decoding the PNG", d->path);
    return cm_fail(ctx, CM_EINPUT, "%s: corrupt PNG: %s", d->path, d->msg);
}

/* Lets libpng set its transforms up, which allocates rows of the width the header says: only
 * once the budget has been checked against that width (cm_image_prepare). */
static int update(png_dec_t *d, cm_ctx_t *ctx)
{
    if (d->updated) return 0;
    if (setjmp(png_jmpbuf(d->png))) return bad(d, ctx);
    png_read_update_info(d->png, d->info);
    d->updated = true;
    CM_FAIL_IF(ctx, png_get_rowbytes(d->png, d->info) != d->row_bytes, CM_EINTERNAL,
               "%s: libpng's rows of %zu bytes, not %zu", d->path,
               (size_t)png_get_rowbytes(d->png, d->info), d->row_bytes);
    return 0;
}

static int read_whole(png_dec_t *d, cm_ctx_t *ctx)
{
    size_t bytes;
    bool ok = cm__mul_size(d->row_bytes, (size_t)d->height, &bytes);
    d->whole = ok ? malloc(bytes) : NULL;
    d->row_ptr = d->whole ? malloc((size_t)d->height * sizeof(png_bytep)) : NULL;
    CM_FAIL_IF(ctx, !d->row_ptr, CM_ENOMEM, "%s: out of memory for an interlaced PNG", d->path);
    for (int64_t r = 0; r < d->height; r++) d->row_ptr[r] = d->whole + (size_t)r * d->row_bytes;
    if (setjmp(png_jmpbuf(d->png))) return bad(d, ctx);
    png_read_image(d->png, d->row_ptr);
    return 0;
}

static int png_rows(cm__decoder_t *base, uint8_t *buf, int64_t n, cm_ctx_t *ctx)
{
    png_dec_t *d = (png_dec_t *)base;
    CM_FAIL_IF(ctx, n > d->height - d->next, CM_EINTERNAL, "%s: rows past the end", d->path);
    CM_TRY(update(d, ctx));
    if (d->interlaced) {
        if (!d->whole) CM_TRY(read_whole(d, ctx));
        memcpy(buf, d->whole + (size_t)d->next * d->row_bytes, (size_t)n * d->row_bytes);
    } else {
        if (setjmp(png_jmpbuf(d->png))) return bad(d, ctx);
        for (int64_t r = 0; r < n; r++) png_read_row(d->png, buf + (size_t)r * d->row_bytes, NULL);
    }
    d->next += n;
    return 0;
}

static int png_finish(cm__decoder_t *base, cm_ctx_t *ctx)
{
    png_dec_t *d = (png_dec_t *)base;
    free(d->whole);
    free(d->row_ptr);
    d->whole = NULL, d->row_ptr = NULL;
    if (setjmp(png_jmpbuf(d->png))) return bad(d, ctx);
    png_read_end(d->png, NULL);
    return 0;
}

static void png_close(cm__decoder_t *base)
{
    png_dec_t *d = (png_dec_t *)base;
    if (d->png) png_destroy_read_struct(&d->png, d->info ? &d->info : NULL, NULL);
    if (d->f) fclose(d->f);
    free(d->whole);
    free(d->row_ptr);
    free(d);
}

/* The ICC profile, resolution and EXIF orientation found before the image data. */
static int take_meta(png_dec_t *d, cm__meta_t *m, cm_ctx_t *ctx)
{
    png_charp name;
    int method;
    png_bytep profile;
    png_uint_32 len, rx, ry;
    int unit;
    if (png_get_iCCP(d->png, d->info, &name, &method, &profile, &len) && len)
        CM_FAIL_IF(ctx, !cm__meta_set_icc(m, profile, len), CM_ENOMEM, "%s: out of memory",
                   d->path);
    if (png_get_pHYs(d->png, d->info, &rx, &ry, &unit) && rx && ry &&
        (unit == PNG_RESOLUTION_METER || rx != ry)) { /* square pixels without a unit: nothing */
        bool metre = unit == PNG_RESOLUTION_METER;
        m->res_unit = metre ? RESUNIT_CENTIMETER : RESUNIT_NONE;
        m->xres = metre ? rx / 100.0 : rx;
        m->yres = metre ? ry / 100.0 : ry;
    }
    png_uint_32 n_exif = 0;
    png_bytep exif = NULL;
    if (png_get_eXIf_1(d->png, d->info, &n_exif, &exif) && exif)
        m->orientation = cm__exif_orientation(exif, n_exif);
    return 0;
}

/* Reads the header and sets libpng up to give 8- or 16-bit samples, palettes and transparency
 * expanded. Called under setjmp. */
static void read_header(png_dec_t *d, int *color_type, int *bits, bool *trns)
{
    png_set_read_fn(d->png, d, on_read);
    png_set_user_limits(d->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX); /* no 1 M pixel cap */
    /* An ancillary chunk (or a decompressed profile) is read whole: a length in the file must
     * not make that gigabytes (on_warning stops it). Image data is streamed. */
    png_set_chunk_malloc_max(d->png, CHUNK_MAX_BYTES);
    png_read_info(d->png, d->info);
    *color_type = png_get_color_type(d->png, d->info);
    *bits = png_get_bit_depth(d->png, d->info);
    *trns = png_get_valid(d->png, d->info, PNG_INFO_tRNS);
    d->interlaced = png_get_interlace_type(d->png, d->info) != PNG_INTERLACE_NONE;
    if (*color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(d->png);
    if (*color_type == PNG_COLOR_TYPE_GRAY && *bits < 8) png_set_expand_gray_1_2_4_to_8(d->png);
    if (*trns) png_set_tRNS_to_alpha(d->png);
    if (*bits == 16) png_set_swap(d->png); /* PNG is big-endian; samples are native */
    if (d->interlaced) png_set_interlace_handling(d->png);
}

int cm__png_open(cm_image_t *img, FILE *f, cm_ctx_t *ctx)
{
    png_dec_t *d = calloc(1, sizeof *d);
    if (!d) {
        fclose(f);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);
    }
    *d = (png_dec_t){.base = {png_rows, png_finish, png_close}, .path = img->path, .f = f};
    img->dec = &d->base; /* closed with the image from now on */
    d->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, d, on_error, on_warning);
    d->info = d->png ? png_create_info_struct(d->png) : NULL;
    CM_FAIL_IF(ctx, !d->info, CM_ENOMEM, "%s: out of memory", img->path);
    int color_type, bits;
    bool trns;
    if (setjmp(png_jmpbuf(d->png))) return bad(d, ctx);
    read_header(d, &color_type, &bits, &trns);

    /* What the transforms will give, worked out here: libpng would allocate its rows now. */
    cm_image_info_t *in = &img->info;
    bool palette = color_type == PNG_COLOR_TYPE_PALETTE;
    int channels = palette ? 3 : png_get_channels(d->png, d->info);
    channels += trns;
    int out_bits = bits == 16 ? 16 : 8;
    d->height = png_get_image_height(d->png, d->info);
    if (!cm__mul3_size(png_get_image_width(d->png, d->info), (size_t)channels,
                       (size_t)out_bits / 8, &d->row_bytes))
        return cm_fail(ctx, CM_EINPUT, "%s: rows too wide to address", img->path);
    in->format = CM_FILE_PNG;
    in->width = png_get_image_width(d->png, d->info);
    in->height = d->height;
    in->bands = channels;
    in->stype = out_bits == 8 ? CM_U8 : CM_U16;
    in->sample_type = cm_stype_name(in->stype);
    in->bits = bits;
    bool rgb = color_type & PNG_COLOR_MASK_COLOR;
    in->photometric = rgb ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
    in->photometric_name = rgb ? "RGB" : "min-is-black";
    in->alpha_band = channels == 2 || channels == 4 ? channels - 1 : -1;
    in->n_extra = in->alpha_band >= 0;
    in->extra[0] = EXTRASAMPLE_UNASSALPHA;
    in->palette = color_type == PNG_COLOR_TYPE_PALETTE && !trns;
    in->compression = COMPRESSION_ADOBE_DEFLATE;
    in->progressive = d->interlaced;
    if (d->interlaced && !cm__mul_size(d->row_bytes, (size_t)d->height, &in->decode_bytes))
        in->decode_bytes = SIZE_MAX;
    img->file_spp = channels;
    img->file_sample_bytes = img->sample_bytes = (size_t)out_bits / 8;
    CM_TRY(take_meta(d, &img->meta, ctx));
    in->orientation = img->meta.orientation;
    return cm__image_stream_grid(img, ctx);
}
