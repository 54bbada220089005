/* The file-level API of chunkmeans.h: fit on a TIFF file, apply a model to one, model JSON
 * files. A layer above io and engine (engine never opens files, io never knows centroids):
 * it only wires their public functions together, as the command does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_internal.h"

const char *cm_version(void)
{
    return CM_VERSION;
}

void cm_options_default(cm_options_t *o)
{
    memset(o, 0, sizeof *o);
    cm_params_default(&o->params);
    o->compression = -1;
    o->tile = 512;
}

/* An open input and where its spill stores go: the self of its cm_source_t. */
typedef struct input {
    cm_image_t *img;
    const char *scratch_dir;
    bool prepared; /* cm_image_prepare ran: once per image */
} input_t;

static int input_read(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    const input_t *in = self;
    return cm_image_read_chunk(in->img, worker, idx, buf, ctx);
}

static int input_keep(void *self, cm_ctx_t *ctx)
{
    const input_t *in = self;
    return cm_image_keep_chunks(in->img, in->scratch_dir, ctx);
}

/* The options with the defaults that depend on the machine resolved: the threads. */
static cm_options_t resolved(const cm_options_t *o)
{
    cm_options_t r = *o;
    if (r.params.n_threads <= 0) r.params.n_threads = cm_default_threads();
    return r;
}

void cm__dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(buf, size, ".");
    else if (slash == path)
        snprintf(buf, size, "/");
    else
        snprintf(buf, size, "%.*s", (int)(slash - path), path);
}

/* Opens in_path with the options' threads and tiles, ready for reading chunks, and the source
 * over it. scratch: the directory for spill stores (the caller's buffer, kept alive). */
static int input_open(input_t *in, const char *in_path, const cm_options_t *o, const char *scratch,
                      cm_source_t *src, cm_ctx_t *ctx)
{
    *in = (input_t){.scratch_dir = scratch};
    CM_FAIL_IF(ctx, !in_path, CM_EUSAGE, "no input file given");
    CM_FAIL_IF(ctx, o->tile < 16 || o->tile > 4096 || o->tile % 16, CM_EUSAGE,
               "tile side %lld: a multiple of 16 from 16 to 4096", (long long)o->tile);
    CM_TRY(cm_image_open(in_path, o->params.n_threads, &in->img, ctx));
    if (o->params.cancel) cm_image_set_cancel(in->img, o->params.cancel);
    CM_TRY(cm_image_set_chunk_side(in->img, o->tile, ctx));
    *src = cm__source_of(o, cm_image_info(in->img));
    src->read = input_read;
    src->keep = input_keep;
    src->self = in;
    return 0;
}

cm_source_t cm__source_of(const cm_options_t *o, const cm_image_info_t *in)
{
    return (cm_source_t){.grid = in->grid,
                         .has_nodata = o->has_nodata || in->has_nodata,
                         .nodata = o->has_nodata ? o->nodata : in->nodata};
}

/* cm_image_prepare, once. */
static int input_prepare(input_t *in, cm_ctx_t *ctx)
{
    if (!in->prepared) CM_TRY(cm_image_prepare(in->img, in->scratch_dir, ctx));
    in->prepared = true;
    return 0;
}

/* Fits on an open input, k lowered to the pixel count when the image has fewer. */
static int fit_input(input_t *in, const cm_source_t *src, const cm_options_t *o, cm_model_t **out,
                     cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    const cm_image_info_t *info = cm_image_info(in->img);
    cm_params_t p = o->params;
    int64_t n_px = info->width * info->height; /* fits: the grid checked it */
    if (p.k > n_px) p.k = (int)n_px;
    CM_TRY(cm_budget_check(src, &p, o->labels_path != NULL, ctx));
    CM_TRY(input_prepare(in, ctx));
    CM_TRY(cm_fit(src, &p, out, ctx));
    if (meta) {
        *meta = (cm_model_meta_t){
            .bands = info->bands, .alpha_band = info->alpha_band, .stype = info->stype};
        snprintf(meta->version, sizeof meta->version, "%s", CM_VERSION);
    }
    return 0;
}

/* Remaps an open input with model into out_path (and o->labels_path), committed only when
 * both are complete. */
static int apply_input(input_t *in, const cm_source_t *src, cm_model_t *model,
                       const cm_model_meta_t *meta, const char *in_path, const char *out_path,
                       const cm_options_t *o, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !model || !out_path, CM_EUSAGE, "no model or no output file given");
    CM_TRY(cm__model_fits(model, meta, in_path, cm_image_info(in->img), ctx));
    cm_params_t p = o->params;
    cm_outputs_t w;
    cm_sink_t sink;
    int rc = cm_outputs_plan(&w, o, in->img, src, model->k, out_path, o->labels_path, ctx);
    if (rc == 0) rc = cm_budget_check(src, &p, o->labels_path || w.palette, ctx);
    if (rc == 0) rc = cm_outputs_open(&w, ctx);
    if (rc == 0) rc = input_prepare(in, ctx);
    if (rc == 0) rc = cm_outputs_sink(&w, model, &sink, ctx);
    if (rc == 0) rc = cm_remap(src, model, &p, &sink, ctx);
    if (rc == 0 && p.cancel && *p.cancel) rc = cm_fail(ctx, CM_ECANCELED, "interrupted");
    if (rc == 0) rc = cm_outputs_commit(&w, ctx);
    cm_outputs_abort(&w);
    return rc;
}

int cm_fit_file(const char *in_path, const cm_options_t *o, cm_model_t **out, cm_model_meta_t *meta,
                cm_ctx_t *ctx)
{
    cm_options_t op = resolved(o);
    *out = NULL;
    input_t in;
    cm_source_t src;
    int rc = input_open(&in, in_path, &op, op.scratch_dir ? op.scratch_dir : ".", &src, ctx);
    if (rc == 0) rc = fit_input(&in, &src, &op, out, meta, ctx);
    cm_image_close(in.img);
    return rc;
}

int cm_apply_file(cm_model_t *model, const cm_model_meta_t *meta, const char *in_path,
                  const char *out_path, const cm_options_t *o, cm_ctx_t *ctx)
{
    cm_options_t op = resolved(o);
    char dir[4096];
    cm__dir_of(out_path ? out_path : ".", dir, sizeof dir);
    input_t in;
    cm_source_t src;
    int rc = input_open(&in, in_path, &op, op.scratch_dir ? op.scratch_dir : dir, &src, ctx);
    if (rc == 0) rc = apply_input(&in, &src, model, meta, in_path, out_path, &op, ctx);
    cm_image_close(in.img);
    return rc;
}

int cm_run_file(const char *in_path, const char *out_path, const cm_options_t *o, cm_model_t **out,
                cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    cm_options_t op = resolved(o);
    char dir[4096];
    cm__dir_of(out_path ? out_path : ".", dir, sizeof dir);
    input_t in;
    cm_source_t src;
    cm_model_t *model = NULL;
    cm_model_meta_t m;
    if (out) *out = NULL;
    int rc = input_open(&in, in_path, &op, op.scratch_dir ? op.scratch_dir : dir, &src, ctx);
    if (rc == 0) rc = fit_input(&in, &src, &op, &model, &m, ctx);
    if (rc == 0) rc = apply_input(&in, &src, model, &m, in_path, out_path, &op, ctx);
    cm_image_close(in.img);
    if (rc == 0 && meta) *meta = m;
    if (rc == 0 && out)
        *out = model;
    else
        cm_model_free(model);
    return rc;
}

int cm_model_save(const cm_model_t *m, const cm_model_meta_t *meta, const char *path, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !m || !meta || !path, CM_EUSAGE, "no model, description or path given");
    char *json = cm_model_to_json(m, meta->bands, meta->alpha_band, cm_stype_name(meta->stype));
    CM_FAIL_IF(ctx, !json, CM_ENOMEM, "%s: out of memory", path);
    int rc = cm_file_write_atomic(path, json, strlen(json), ctx);
    free(json);
    return rc;
}

int cm_model_load(const char *path, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    *out = NULL;
    CM_FAIL_IF(ctx, !path, CM_EUSAGE, "no model file given");
    char *text = NULL;
    size_t len = 0;
    /* a model of 65535 centres of 64 bands is far less than 1 GiB */
    int rc = cm_file_read(path, (size_t)1 << 30, &text, &len, ctx);
    cm_model_meta_t ignored;
    if (rc == 0) rc = cm_model_from_json(text, len, path, out, meta ? meta : &ignored, ctx);
    if (rc == 0 && meta) meta->name = path;
    free(text);
    return rc;
}
