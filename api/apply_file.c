/* cm_apply_file: one TIFF recoloured with a model the caller holds (whose figures become this
 * image's), its outputs committed only when complete. */
#include "api_internal.h"

/* Remaps an open input with model into out_path (and o->labels_path). */
static int apply_input(cm__input_t *in, cm_model_t *model, const cm_model_meta_t *meta,
                       const char *out_path, const cm_options_t *o, cm_ctx_t *ctx)
{
    CM_TRY(cm__model_fits(model, meta, in->path, in->info, ctx));
    cm_params_t p = o->params;
    cm__outputs_t w;
    cm_sink_t sink;
    int rc = cm__outputs_plan(&w, o, in->img, &in->src, model->k, out_path, o->labels_path, ctx);
    w.encode_only = cm_comm_rank() != 0; /* rank 0 writes the files of a job */
    if (rc == 0) rc = cm__budget_check(&in->src, &p, o->labels_path || w.palette, ctx);
    if (rc == 0) rc = cm__outputs_open(&w, ctx);
    if (rc == 0) rc = cm__input_prepare(in, o, ctx);
    if (rc == 0) rc = cm__outputs_sink(&w, model, &sink, ctx);
    if (rc == 0) rc = cm_remap(&in->src, model, &p, &sink, ctx);
    if (rc == 0 && p.write_parallel) { /* the ranks' tiles are on the disk before the commit */
        rc = cm__outputs_flush(&w, ctx);
        cm_comm_barrier();
    }
    if (rc == 0 && p.cancel && *p.cancel) rc = cm_fail(ctx, CM_ECANCELED, "interrupted");
    if (rc == 0) rc = cm__outputs_commit(&w, ctx);
    cm__outputs_abort(&w);
    return rc;
}

int cm_apply_file(cm_model_t *model, const cm_model_meta_t *meta, const char *in_path,
                  const char *out_path, const cm_options_t *opts, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !model || !out_path, CM_EUSAGE, "no model or no output file given");
    CM_FAIL_IF(ctx, opts->overviews || opts->cog, CM_EUSAGE,
               "%s: reduced levels and the COG layout are made by a run, not yet by apply", out_path);
    cm_options_t o = cm__resolved(opts);
    char dir[4096];
    cm__dir_of(out_path, dir, sizeof dir);
    cm__input_t in;
    int rc = cm__input_open(&in, in_path, &o, 0, dir, ctx);
    if (rc == 0) rc = apply_input(&in, model, meta, out_path, &o, ctx);
    cm__name_input(ctx, in_path);
    cm__input_close(&in);
    return rc;
}
