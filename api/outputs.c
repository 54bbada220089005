/* The outputs of one image, set up alike by every command and file-level function: the
 * compression and format chosen from the input, the writers of the recoloured image and of
 * the label map, and the sink that hands them the remapped chunks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api_internal.h"

/* The colour map of a palette output: the centres rounded to the sample type, as 16-bit TIFF
 * colours (grey centres on all three channels); unused entries stay black. */
static void palette_colors(const cm_model_t *m, cm_stype_t t, uint16_t *cmap)
{
    double top = t == CM_U8 ? 255 : 65535, unit = t == CM_U8 ? 257 : 1;
    for (int j = 0; j < m->k; j++)
        for (int c = 0; c < 3; c++) {
            double v = nearbyint(m->centroids[(size_t)j * m->d + (m->d == 3 ? c : 0)]);
            cmap[256 * c + j] = (uint16_t)((v < 0 ? 0 : v > top ? top : v) * unit);
        }
}

static bool big(cm_bigtiff_t b, const cm_writer_spec_t *spec)
{
    return b == CM_BIGTIFF_ALWAYS || (b == CM_BIGTIFF_AUTO && cm_writer_needs_bigtiff(spec));
}

/* The label map's spec for k clusters. */
static void plan_labels(cm__outputs_t *w, const cm_source_t *src, int k)
{
    w->maskable = cm_labels_plan(src, k, &w->label_bits, &w->masked);
    cm_writer_spec_labels(&w->spec, w->label_bits, w->masked, &w->lspec);
    w->lspec.format = w->label_format;
    w->lspec.set_nodata = w->maskable; /* else every value is a cluster's */
    w->lspec.bigtiff = big(w->bigtiff, &w->lspec);
}

int cm__outputs_plan(cm__outputs_t *w, const cm_options_t *o, cm_image_t *img,
                     const cm_source_t *src, int k, const char *out, const char *labels,
                     cm_ctx_t *ctx)
{
    const cm_image_info_t *in = cm_image_info(img);
    *w = (cm__outputs_t){.in = in, .out = out, .labels = labels, .bigtiff = o->bigtiff};
    CM_TRY(cm_file_format_of_path(out, &w->format, ctx));
    if (labels) CM_TRY(cm_file_format_of_path(labels, &w->label_format, ctx));
    CM_FAIL_IF(ctx, labels && w->label_format == CM_FILE_JPEG, CM_EUSAGE,
               "%s: a label map must be a .tif or a .png: JPEG would change the labels", labels);
    /* The input's compression, unless it is lossy (the output would hold more than k colours)
     * or one this build cannot write: then deflate, which keeps colours exact. */
    int deflate = -1, has_deflate = cm_compression_parse("deflate", &deflate);
    int compression = o->compression >= 0 ? o->compression : in->compression;
    if (o->compression < 0 && (cm_compression_lossy(compression) ||
                               !strcmp(cm_compression_name(compression), "unknown"))) {
        if (!cm_compression_lossy(compression))
            cm__warn(o, (cm_about_t){0}, "%s: its compression cannot be written; using deflate",
                     cm_image_path(img));
        CM_TRY(has_deflate);
        compression = deflate;
    }
    int d = cm_grid_features(&in->grid);
    cm_writer_spec_like(in, compression, &w->spec);
    w->spec.format = w->format;
    w->spec.tags_from = img;
    w->spec.set_nodata = o->has_nodata;
    w->spec.nodata = o->nodata;
    plan_labels(w, src, k);
    if (w->format != CM_FILE_TIFF) CM_TRY(cm_writer_check(out, &w->spec, ctx));
    /* A k-colour PNG is colour-mapped unless a pixel must keep its own value (alpha, nodata)
     * or its colours need 16 bits; JPEG has no colour maps. */
    bool png_palette = w->format == CM_FILE_PNG && o->format != CM_FORMAT_RGB &&
                       in->stype == CM_U8 && !w->maskable && w->label_bits == 8 &&
                       (d == 1 || d == 3);
    w->palette = w->format == CM_FILE_TIFF ? o->format == CM_FORMAT_PALETTE ||
                                                 (o->format == CM_FORMAT_AUTO && in->palette)
                                           : o->format == CM_FORMAT_PALETTE || png_palette;
    if (w->format == CM_FILE_JPEG)
        cm__warn(o, (cm_about_t){0}, "%s: JPEG is lossy: the output will hold more than %d colours",
                 out, k);
    if (w->format != CM_FILE_TIFF && o->compression >= 0)
        cm__warn(o, (cm_about_t){CM_SETTING_COMPRESSION, o->compression, 0},
                 "%s: " CM_NAMED("a compression") " applies to TIFF outputs: a %s is compressed "
                                                  "as its format says",
                 out, cm_file_format_name(w->format));
    if (cm_compression_lossy(compression) && !w->palette && w->format == CM_FILE_TIFF)
        cm__warn(o, (cm_about_t){CM_SETTING_COMPRESSION, compression, deflate},
                 "%s: %s is lossy: the output will hold more than %d colours", out,
                 cm_compression_name(compression), k);
    if (w->palette && w->format != CM_FILE_TIFF && !png_palette)
        return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_FORMAT, CM_FORMAT_PALETTE, 0},
                             "%s: " CM_NAMED("a palette output") " in %s needs a PNG, 8-bit grey "
                                                                 "or RGB input without alpha or "
                                                                 "nodata, and k <= 256",
                             out, cm_file_format_name(w->format));
    if (w->palette &&
        (w->label_bits != 8 || (d != 1 && d != 3) || in->stype == CM_I16 || in->stype == CM_F32))
        return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_FORMAT, CM_FORMAT_PALETTE, 0},
                             "%s: " CM_NAMED("a palette output") " needs 8- or 16-bit unsigned "
                                                                 "grey or RGB input and k <= %d",
                             out, w->masked == 255 ? 255 : 256);
    if (o->bigtiff == CM_BIGTIFF_NEVER && w->format == CM_FILE_TIFF &&
        cm_writer_needs_bigtiff(&w->spec))
        return cm_fail_about(
            ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_BIGTIFF, CM_BIGTIFF_NEVER, 0},
            "%s: the output could pass 4 GiB: " CM_NAMED("a classic TIFF") " cannot hold it", out);
    w->spec.bigtiff = big(o->bigtiff, &w->spec);
    if (o->overviews || o->cog) {
        CM_FAIL_IF(ctx, w->format != CM_FILE_TIFF, CM_EUSAGE,
                   "%s: reduced levels and the COG layout (--overviews, --cog) are a TIFF's: a "
                   "%s has neither",
                   out, cm_file_format_name(w->format));
        CM_FAIL_IF(ctx, cm_comm_size() > 1, CM_EUSAGE,
                   "%s: reduced levels and the COG layout (--overviews, --cog) are not made by "
                   "a job of several ranks yet",
                   out);
        w->levels = cm__overview_levels(&w->spec, o->overviews);
        w->cog = o->cog;
    }
    return 0;
}

/* Whether every pixel of w's image is its centre's colour: nothing masked, no alpha. */
static bool plain_colors(const cm__outputs_t *w)
{
    return !w->palette && !w->maskable && w->in->alpha_band < 0;
}

size_t cm__outputs_level_bytes(const cm__outputs_t *w)
{
    size_t bytes = 0;
    const cm_writer_spec_t *px = w->palette ? &w->lspec : &w->spec;
    int made = w->format == CM_FILE_TIFF ? w->levels : 0;
    int view = w->preview ? cm__preview_level(px, CM__PREVIEW_SIDE) : 0;
    bool labels_only = w->palette || plain_colors(w);
    if (made || view)
        bytes += cm__pyramid_bytes(px, made > view ? made : view, w->label_bits, labels_only);
    if (w->preview) /* the preview itself */
        bytes += (size_t)CM__PREVIEW_SIDE * CM__PREVIEW_SIDE * (size_t)px->bands *
                 cm_stype_size(px->stype);
    if (w->levels && w->labels && w->label_format == CM_FILE_TIFF)
        bytes += cm__pyramid_bytes(&w->lspec, w->levels, w->label_bits, true);
    return bytes;
}

static int open_writer(const cm__outputs_t *w, const char *path, const cm_writer_spec_t *spec,
                       cm_writer_t **out, cm_ctx_t *ctx)
{
    return w->encode_only ? cm_writer_open_encoder(path, spec, out, ctx)
                          : cm_writer_open(path, spec, out, ctx);
}

int cm__outputs_open(cm__outputs_t *w, cm_ctx_t *ctx)
{
    if (w->preview) {
        cm_file_format_t f;
        CM_TRY(cm_file_format_of_path(w->preview, &f, ctx));
        CM_FAIL_IF(ctx, f != CM_FILE_PNG, CM_EUSAGE, "%s: a preview is a PNG: name it .png",
                   w->preview);
        CM_FAIL_IF(ctx, cm_comm_size() > 1, CM_EUSAGE,
                   "%s: a preview is not made by a job of several ranks yet", w->preview);
        cm_writer_spec_t s = w->palette ? w->lspec : w->spec;
        s.format = CM_FILE_PNG;
        if (!w->palette) CM_TRY(cm_writer_check(w->preview, &s, ctx));
        CM_TRY(cm__check_not_dir(w->preview, ctx));
    }
    CM_TRY(cm__check_not_dir(w->out, ctx));
    CM_TRY(cm__check_not_dir(w->labels, ctx));
    if (!w->palette) CM_TRY(open_writer(w, w->out, &w->spec, &w->w_out, ctx));
    if (w->labels) CM_TRY(open_writer(w, w->labels, &w->lspec, &w->w_labels, ctx));
    return 0;
}

int cm__outputs_set_k(cm__outputs_t *w, const cm_source_t *src, int k, cm_ctx_t *ctx)
{
    int bits = w->label_bits;
    plan_labels(w, src, k);
    if (w->w_labels && bits != w->label_bits) { /* uint16 labels become uint8 */
        cm_writer_abort(w->w_labels);
        w->w_labels = NULL;
        CM_TRY(open_writer(w, w->labels, &w->lspec, &w->w_labels, ctx));
    }
    return 0;
}

int cm__outputs_sink(cm__outputs_t *w, const cm_model_t *m, cm_sink_t *sink, cm_ctx_t *ctx)
{
    w->pspec = w->spec;
    if (w->palette) { /* the colour map holds the centres; the image holds their labels */
        memset(w->cmap, 0, sizeof w->cmap);
        palette_colors(m, w->in->stype, w->cmap);
        cm_writer_spec_palette(&w->spec, w->cmap, w->maskable ? w->masked : 256, &w->pspec);
        w->pspec.format = w->format;
        w->pspec.colormap_n = m->k;
        w->pspec.bigtiff = w->lspec.bigtiff;
        CM_TRY(open_writer(w, w->out, &w->pspec, &w->w_out, ctx));
    }
    bool tiff = w->format == CM_FILE_TIFF;
    if ((w->levels || w->preview) && !w->encode_only) {
        int keep = tiff ? w->levels : 0;
        if (plain_colors(w)) {
            w->colors = malloc((size_t)m->k * (size_t)w->spec.bands * cm_stype_size(w->spec.stype));
            CM_FAIL_IF(ctx, !w->colors, CM_ENOMEM, "%s: out of memory", w->out);
            cm__model_colors(m, w->spec.stype, w->colors);
        }
        CM_TRY(cm__pyramid_open(w->out, &w->pspec, keep, w->label_bits, w->palette, w->colors,
                                w->preview ? CM__PREVIEW_SIDE : 0, &w->in->grid, &w->out_levels,
                                ctx));
    }
    if (w->levels && !w->encode_only && w->w_labels && w->label_format == CM_FILE_TIFF)
        CM_TRY(cm__pyramid_open(w->labels, &w->lspec, w->levels, w->label_bits, true, NULL, 0,
                                &w->in->grid, &w->label_levels, ctx));
    w->sink = (cm__writers_sink_t){.grid = &w->in->grid,
                                   .out = w->w_out,
                                   .labels = w->w_labels,
                                   .out_levels = w->out_levels,
                                   .label_levels = w->label_levels,
                                   .out_takes_labels = w->palette};
    *sink = cm__writers_sink(&w->sink);
    return 0;
}

int cm__outputs_flush(cm__outputs_t *w, cm_ctx_t *ctx)
{
    if (w->w_out) CM_TRY(cm_writer_flush(w->w_out, ctx));
    if (w->w_labels) CM_TRY(cm_writer_flush(w->w_labels, ctx));
    return 0;
}

/* Commits a writer with its levels, in the COG layout when asked; frees it either way. */
static int commit_one(const cm__outputs_t *w, cm_writer_t *wr, const cm__pyramid_t *levels,
                      cm_file_format_t format, cm_ctx_t *ctx)
{
    if (w->cog && format == CM_FILE_TIFF) return cm__pyramid_commit_cog(levels, wr, ctx);
    int rc = levels ? cm__pyramid_write(levels, wr, ctx) : 0;
    if (rc < 0) {
        cm_writer_abort(wr);
        return rc;
    }
    return cm_writer_commit(wr, ctx);
}

int cm__outputs_commit(cm__outputs_t *w, cm_ctx_t *ctx)
{
    if (w->encode_only) { /* rank 0 writes the files */
        cm__outputs_abort(w);
        return 0;
    }
    if (w->w_labels) {
        int rc = commit_one(w, w->w_labels, w->label_levels, w->label_format, ctx);
        w->w_labels = NULL;
        if (rc < 0) return rc;
    }
    int rc = commit_one(w, w->w_out, w->out_levels, w->format, ctx);
    w->w_out = NULL;
    if (rc == 0 && w->preview) {
        rc = cm__pyramid_preview(w->out_levels, w->preview, &w->pspec, ctx);
        if (rc < 0) unlink(w->out);
    }
    if (rc < 0 && w->labels) unlink(w->labels); /* a failed output leaves none */
    return rc;
}

void cm__outputs_abort(cm__outputs_t *w)
{
    cm__pyramid_free(w->out_levels);
    cm__pyramid_free(w->label_levels);
    w->out_levels = w->label_levels = NULL;
    free(w->colors);
    w->colors = NULL;
    cm_writer_abort(w->w_labels);
    cm_writer_abort(w->w_out);
    w->w_labels = w->w_out = NULL;
}
