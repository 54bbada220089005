/* JPEG reading with libjpeg-turbo: the header into the image's description, then rows in order
 * for the spill store, with libjpeg's defaults (the islow DCT and fancy upsampling, as Pillow
 * and djpeg decode). Errors, and the warnings that mean damaged data, come back to the caller
 * through a setjmp per call; libjpeg never exits. */
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* jpeglib.h wants FILE and size_t first */
#include <jerror.h>
#include <jpeglib.h>

#include "io_internal.h"

typedef struct jpeg_dec {
    cm__decoder_t base;
    const char *path;
    FILE *f;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_error_mgr jerr;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    bool created, started, invert;
    size_t row_bytes;
} jpeg_dec_t;

static void on_error(j_common_ptr cinfo)
{
    jpeg_dec_t *d = cinfo->client_data;
    cinfo->err->format_message(cinfo, d->msg);
    longjmp(d->jmp, 1);
}

/* Warnings that mean the image data is damaged end the decoding as errors do: libjpeg would
 * go on with grey or garbled rows. Others (extra bytes between markers, say) are harmless. */
static void on_message(j_common_ptr cinfo, int level)
{
    int code = cinfo->err->msg_code;
    if (level < 0 && (code == JWRN_JPEG_EOF || code == JWRN_HIT_MARKER ||
                      code == JWRN_HUFF_BAD_CODE || code == JWRN_MUST_RESYNC))
        on_error(cinfo);
}

static int bad(jpeg_dec_t *d, cm_ctx_t *ctx)
{
    if (d->jerr.msg_code == JERR_OUT_OF_MEMORY)
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory decoding the JPEG", d->path);
    return cm_fail(ctx, CM_EINPUT, "%s: corrupt JPEG: %s", d->path, d->msg);
}

static int jpeg_rows(cm__decoder_t *base, uint8_t *buf, int64_t n, cm_ctx_t *ctx)
{
    jpeg_dec_t *d = (jpeg_dec_t *)base;
    struct jpeg_decompress_struct *c = &d->cinfo;
    if (setjmp(d->jmp)) return bad(d, ctx);
    if (!d->started) {
        jpeg_start_decompress(c);
        d->started = true;
    }
    CM_FAIL_IF(ctx, (int64_t)c->output_scanline + n > (int64_t)c->output_height, CM_EINTERNAL,
               "%s: rows past the end", d->path);
    for (int64_t r = 0; r < n;) {
        JSAMPROW rows[16];
        int64_t m = n - r < 16 ? n - r : 16;
        for (int i = 0; i < m; i++) rows[i] = buf + (size_t)(r + i) * d->row_bytes;
        r += jpeg_read_scanlines(c, rows, (JDIMENSION)m);
    }
    if (d->invert) /* Adobe's CMYK: 0 is full ink */
        for (size_t i = 0; i < (size_t)n * d->row_bytes; i++) buf[i] = (uint8_t)~buf[i];
    return 0;
}

static int jpeg_finish(cm__decoder_t *base, cm_ctx_t *ctx)
{
    jpeg_dec_t *d = (jpeg_dec_t *)base;
    if (setjmp(d->jmp)) return bad(d, ctx);
    if (d->started) jpeg_finish_decompress(&d->cinfo);
    d->started = false;
    return 0;
}

static void jpeg_close(cm__decoder_t *base)
{
    jpeg_dec_t *d = (jpeg_dec_t *)base;
    if (d->created) jpeg_destroy_decompress(&d->cinfo);
    if (d->f) fclose(d->f);
    free(d);
}

/* The ICC profile, JFIF resolution and EXIF orientation of the header. Called under setjmp. */
static int take_meta(jpeg_dec_t *d, cm__meta_t *m, cm_ctx_t *ctx)
{
    struct jpeg_decompress_struct *c = &d->cinfo;
    JOCTET *icc = NULL;
    unsigned icc_len = 0;
    if (jpeg_read_icc_profile(c, &icc, &icc_len) && icc) {
        bool ok = cm__meta_set_icc(m, icc, icc_len);
        free(icc);
        CM_FAIL_IF(ctx, !ok, CM_ENOMEM, "%s: out of memory", d->path);
    }
    /* JFIF's default, square pixels without a unit, says nothing */
    if (c->saw_JFIF_marker && c->X_density && c->Y_density &&
        (c->density_unit || c->X_density != c->Y_density)) {
        m->res_unit = c->density_unit == 1   ? RESUNIT_INCH
                      : c->density_unit == 2 ? RESUNIT_CENTIMETER
                                             : RESUNIT_NONE;
        m->xres = c->X_density;
        m->yres = c->Y_density;
    }
    for (jpeg_saved_marker_ptr s = c->marker_list; s; s = s->next)
        if (s->marker == JPEG_APP0 + 1 && s->data_length > 6 && !memcmp(s->data, "Exif\0\0", 6)) {
            m->orientation = cm__exif_orientation(s->data, s->data_length);
            break;
        }
    return 0;
}

/* The coefficients a progressive (multi-scan) JPEG holds while it is decoded: 64 of 2 bytes
 * for every block of every component. */
static size_t coefficient_bytes(const struct jpeg_decompress_struct *c)
{
    double bytes = 0;
    for (int i = 0; i < c->num_components; i++) {
        const jpeg_component_info *ci = &c->comp_info[i];
        double bw = ((double)c->image_width * ci->h_samp_factor / c->max_h_samp_factor + 7) / 8;
        double bh = ((double)c->image_height * ci->v_samp_factor / c->max_v_samp_factor + 7) / 8;
        bytes += (bw + ci->h_samp_factor) * (bh + ci->v_samp_factor) * 128;
    }
    return bytes >= (double)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

int cm__jpeg_open(cm_image_t *img, FILE *f, cm_ctx_t *ctx)
{
    jpeg_dec_t *d = calloc(1, sizeof *d);
    if (!d) {
        fclose(f);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);
    }
    d->base = (cm__decoder_t){jpeg_rows, jpeg_finish, jpeg_close};
    d->path = img->path;
    d->f = f;
    img->dec = &d->base; /* closed with the image from now on */
    struct jpeg_decompress_struct *c = &d->cinfo;
    c->err = jpeg_std_error(&d->jerr);
    d->jerr.error_exit = on_error;
    d->jerr.emit_message = on_message;
    c->client_data = d;
    if (setjmp(d->jmp)) return bad(d, ctx);
    jpeg_create_decompress(c);
    d->created = true;
    jpeg_stdio_src(c, f);
    jpeg_save_markers(c, JPEG_APP0 + 1, 0xffff); /* EXIF */
    jpeg_save_markers(c, JPEG_APP0 + 2, 0xffff); /* ICC profile */
    jpeg_read_header(c, TRUE);

    cm_image_info_t *in = &img->info;
    switch (c->jpeg_color_space) {
    case JCS_GRAYSCALE: c->out_color_space = JCS_GRAYSCALE; break;
    case JCS_YCbCr:
    case JCS_RGB: c->out_color_space = JCS_RGB; break;
    case JCS_CMYK:
    case JCS_YCCK:
        c->out_color_space = JCS_CMYK;
        d->invert = true; /* as Pillow and ImageMagick assume: Adobe's convention */
        break;
    default:
        return cm_fail(ctx, CM_EINPUT, "%s: JPEG colour space %d is not supported", img->path,
                       (int)c->jpeg_color_space);
    }
    jpeg_calc_output_dimensions(c);
    int bands = c->output_components;
    d->row_bytes = (size_t)c->output_width * (size_t)bands;
    in->format = CM_FILE_JPEG;
    in->width = c->output_width;
    in->height = c->output_height;
    in->bands = bands;
    in->stype = CM_U8;
    in->sample_type = cm_stype_name(CM_U8);
    in->bits = 8;
    in->photometric = bands == 1   ? PHOTOMETRIC_MINISBLACK
                      : bands == 3 ? PHOTOMETRIC_RGB
                                   : PHOTOMETRIC_SEPARATED;
    in->photometric_name = bands == 1 ? "min-is-black" : bands == 3 ? "RGB" : "separated (CMYK)";
    in->alpha_band = -1;
    in->compression = COMPRESSION_JPEG;
    in->progressive = jpeg_has_multiple_scans(c);
    if (in->progressive) in->decode_bytes = coefficient_bytes(c);
    img->file_spp = bands;
    img->file_sample_bytes = img->sample_bytes = 1;
    CM_TRY(take_meta(d, &img->meta, ctx));
    in->orientation = img->meta.orientation;
    return cm__image_stream_grid(img, ctx);
}
