/* The outputs of one image, set up alike by run and apply: output paths and their checks, the
 * compression and format chosen from the input, the writers of the recoloured image and of the
 * label map, and the sink that hands them the remapped chunks. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

char cli_scratch_dir[4096] = ".";

int cli_keep_chunks(void *self, cm_ctx_t *ctx)
{
    return cm_image_keep_chunks(self, cli_scratch_dir, ctx);
}

char *cli_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    if (!slash) {
        free(copy);
        return strdup(".");
    }
    if (slash == copy) slash++; /* "/name": the root */
    *slash = '\0';
    return copy;
}

bool cli_dir_writable(const char *path)
{
    char *dir = cli_dir_of(path);
    bool ok = dir && access(dir, W_OK | X_OK) == 0;
    int e = dir ? errno : ENOMEM;
    free(dir);
    errno = e;
    return ok;
}

/* Whether two paths name one file (through links too); false when either does not exist. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

char *cli_canonical(const char *path)
{
    char *copy = strdup(path), *name = copy ? strrchr(copy, '/') : NULL, *dir, *out = NULL;
    if (!copy) return NULL;
    if (name) {
        *name++ = '\0';
        dir = realpath(*copy ? copy : "/", NULL);
    } else {
        name = copy;
        dir = realpath(".", NULL);
    }
    if (dir && asprintf(&out, "%s/%s", dir, name) < 0) out = NULL;
    free(dir);
    free(copy);
    return out;
}

bool cli_paths_distinct(const char *const *paths, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (!paths[i] || !paths[j]) continue;
            char *ci = cli_canonical(paths[i]), *cj = cli_canonical(paths[j]);
            bool same = same_file(paths[i], paths[j]) || (ci && cj && !strcmp(ci, cj));
            free(ci);
            free(cj);
            if (!same) continue;
            cli_error("%s: refusing to write it: it is also %s", paths[j],
                      i == 0 ? "the input" : "another output");
            return false;
        }
    return true;
}

char *cli_path_with_k(const char *path, int k)
{
    if (!path) return NULL;
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    /* a dot in a directory's name, or one that starts the file's name, is no extension */
    if (dot && ((slash && dot < slash + 2) || (!slash && dot == path))) dot = NULL;
    size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    char *out = NULL;
    if (asprintf(&out, "%.*s.k%d%s", (int)stem, path, k, dot ? dot : "") < 0) return NULL;
    return out;
}

void cli_describe_pixels(const cm_image_info_t *in, char *buf, size_t size)
{
    snprintf(buf, size, "%d band%s of %s%s", in->bands, in->bands == 1 ? "" : "s", in->sample_type,
             in->alpha_band >= 0 ? " with alpha" : "");
}

int cli_check_not_dir(const char *path, cm_ctx_t *ctx)
{
    struct stat st;
    CM_FAIL_IF(ctx, path && stat(path, &st) == 0 && S_ISDIR(st.st_mode), CM_EIO,
               "%s: is a directory", path);
    return 0;
}

/* The colour map of a palette output: the centres rounded to the sample type, as 16-bit TIFF
 * colours (grey centres on all three channels); unused entries stay black. */
static void palette_colours(const cm_model_t *m, cm_stype_t t, uint16_t *cmap)
{
    double top = t == CM_U8 ? 255 : 65535, unit = t == CM_U8 ? 257 : 1;
    for (int j = 0; j < m->k; j++)
        for (int c = 0; c < 3; c++) {
            double v = nearbyint(m->centroids[(size_t)j * m->d + (m->d == 3 ? c : 0)]);
            cmap[256 * c + j] = (uint16_t)((v < 0 ? 0 : v > top ? top : v) * unit);
        }
}

/* The label map's spec for k clusters. */
static void plan_labels(cli_outputs_t *w, const cm_source_t *src, int k)
{
    w->maskable = cm_labels_plan(src, k, &w->label_bits, &w->masked);
    cm_writer_spec_labels(&w->spec, w->label_bits, w->masked, &w->lspec);
    w->lspec.set_nodata = w->maskable; /* else every value is a cluster's */
    bool always = !strcmp(w->bigtiff, "always"), never = !strcmp(w->bigtiff, "never");
    w->lspec.bigtiff = always || (!never && cm_writer_needs_bigtiff(&w->lspec));
}

int cli_outputs_plan(cli_outputs_t *w, const cli_opts_t *o, cm_image_t *img, const cm_source_t *src,
                     int k, const char *in_path, const char *out, const char *labels, cm_ctx_t *ctx)
{
    const cm_image_info_t *in = cm_image_info(img);
    *w = (cli_outputs_t){.in = in, .out = out, .labels = labels, .bigtiff = o->bigtiff};
    /* IN's compression, unless it is lossy (the output would hold more than k colours) or
     * one this build cannot write: then deflate. */
    int compression = o->compression >= 0 ? o->compression : in->compression;
    if (o->compression < 0 && (cm_compression_lossy(compression) ||
                               !strcmp(cm_compression_name(compression), "unknown"))) {
        if (!cm_compression_lossy(compression))
            cli_warn("%s: its compression cannot be written; using deflate", in_path);
        cm_compression_parse("deflate", &compression);
    }
    w->palette = !strcmp(o->format, "palette") || (!strcmp(o->format, "auto") && in->palette);
    if (cm_compression_lossy(compression) && !w->palette)
        cli_warn("%s: %s is lossy: the output will hold more than %d colours (use --compression "
                 "deflate for exact colours)",
                 out, cm_compression_name(compression), k);
    int d = cm_grid_features(&in->grid);
    cm_writer_spec_like(in, compression, &w->spec);
    w->spec.tags_from = img;
    w->spec.set_nodata = o->has_nodata;
    w->spec.nodata = o->nodata;
    plan_labels(w, src, k);
    if (w->palette &&
        (w->label_bits != 8 || (d != 1 && d != 3) || in->stype == CM_I16 || in->stype == CM_F32))
        return cm_fail(ctx, CM_EUSAGE,
                       "%s: --format palette needs 8- or 16-bit unsigned grey or "
                       "RGB input and k <= %d",
                       out, w->masked == 255 ? 255 : 256);
    bool always = !strcmp(o->bigtiff, "always"), never = !strcmp(o->bigtiff, "never");
    if (never && cm_writer_needs_bigtiff(&w->spec))
        return cm_fail(ctx, CM_EUSAGE,
                       "%s: the output could pass 4 GiB: --bigtiff never cannot "
                       "hold it",
                       out);
    w->spec.bigtiff = always || (!never && cm_writer_needs_bigtiff(&w->spec));
    return 0;
}

int cli_outputs_open(cli_outputs_t *w, cm_ctx_t *ctx)
{
    CM_TRY(cli_check_not_dir(w->out, ctx));
    CM_TRY(cli_check_not_dir(w->labels, ctx));
    if (!w->palette) CM_TRY(cm_writer_open(w->out, &w->spec, &w->w_out, ctx));
    if (w->labels) CM_TRY(cm_writer_open(w->labels, &w->lspec, &w->w_labels, ctx));
    return 0;
}

int cli_outputs_set_k(cli_outputs_t *w, const cm_source_t *src, int k, cm_ctx_t *ctx)
{
    int bits = w->label_bits;
    plan_labels(w, src, k);
    if (w->w_labels && bits != w->label_bits) { /* uint16 labels become uint8 */
        cm_writer_abort(w->w_labels);
        w->w_labels = NULL;
        CM_TRY(cm_writer_open(w->labels, &w->lspec, &w->w_labels, ctx));
    }
    return 0;
}

int cli_outputs_sink(cli_outputs_t *w, const cm_model_t *m, cm_sink_t *sink, cm_ctx_t *ctx)
{
    if (w->palette) { /* the colour map holds the centres; the image holds their labels */
        cm_writer_spec_t pspec;
        uint16_t cmap[3 * 256] = {0};
        palette_colours(m, w->in->stype, cmap);
        cm_writer_spec_palette(&w->spec, cmap, w->maskable ? w->masked : 256, &pspec);
        pspec.bigtiff = w->lspec.bigtiff;
        CM_TRY(cm_writer_open(w->out, &pspec, &w->w_out, ctx));
    }
    w->sink = (cm_writers_sink_t){.grid = &w->in->grid,
                                  .out = w->w_out,
                                  .labels = w->w_labels,
                                  .out_takes_labels = w->palette};
    *sink = cm_writers_sink(&w->sink);
    return 0;
}

int cli_outputs_commit(cli_outputs_t *w, cm_ctx_t *ctx)
{
    if (w->w_labels) {
        int rc = cm_writer_commit(w->w_labels, ctx);
        w->w_labels = NULL;
        if (rc < 0) return rc;
    }
    int rc = cm_writer_commit(w->w_out, ctx);
    w->w_out = NULL;
    if (rc < 0 && w->labels) unlink(w->labels); /* a failed output leaves none */
    return rc;
}

void cli_outputs_abort(cli_outputs_t *w)
{
    cm_writer_abort(w->w_labels);
    cm_writer_abort(w->w_out);
    w->w_labels = w->w_out = NULL;
}

/* A sink that writes nothing: a remap pass that only counts the pixels that take part. */
static int put_nothing(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void *encoded, cm_ctx_t *ctx)
{
    return 0;
}

int cli_count_valid(const cm_source_t *src, cm_model_t *model, const cm_params_t *params,
                    int64_t *n_valid, cm_ctx_t *ctx)
{
    cm_params_t p = *params;
    p.progress = NULL; /* a pass the user did not ask for: the bar would go back to 0 */
    cm_sink_t none = {.put = put_nothing};
    CM_TRY(cm_remap(src, model, &p, &none, ctx));
    *n_valid = model->n_pixels;
    return 0;
}

int cli_write_trace(const char *path, const cm_trace_t *trace, cm_ctx_t *ctx)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int rc = f ? cm_trace_write_json(trace, f, ctx) : cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (f && fclose(f) != 0 && rc == 0) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) rc = cm_file_write_atomic(path, text, size, ctx);
    free(text);
    return rc;
}

static void warn_to_stderr(void *user, const char *msg)
{
    cli_warn("%s", msg);
}

cm_options_t cli_file_options(const cli_opts_t *o)
{
    cm_options_t f;
    cm_options_default(&f);
    f.params = o->params;
    f.compression = o->compression;
    f.has_nodata = o->has_nodata;
    f.nodata = o->nodata;
    f.tile = o->tile;
    f.scratch_dir = NULL;
    f.format = !strcmp(o->format, "palette") ? CM_FORMAT_PALETTE
               : !strcmp(o->format, "rgb")   ? CM_FORMAT_RGB
                                             : CM_FORMAT_AUTO;
    f.bigtiff = !strcmp(o->bigtiff, "always")  ? CM_BIGTIFF_ALWAYS
                : !strcmp(o->bigtiff, "never") ? CM_BIGTIFF_NEVER
                                               : CM_BIGTIFF_AUTO;
    f.warn = warn_to_stderr;
    return f;
}
