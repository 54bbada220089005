/* cm_run_file: one input fitted with one or more k on one sample, and every output written in
 * one remap pass, committed together or not at all. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_internal.h"

enum { RUN_K_MAX = 16 };

/* One output while the run makes it. */
typedef struct run_out {
    cm_run_output_t *req; /* the caller's: paths, and the model once fitted */
    int k;                /* asked, then lowered to the pixels there are */
    int k_asked;          /* as the summary gives it: asked, within the image's pixels */
    cm__outputs_t w;
    bool model_written, palette_written, committed;
} run_out_t;

typedef struct run {
    const char *in_path;
    cm_options_t o;
    cm_params_t p; /* o's, with the centroids of init_path and the trace and graph callbacks */
    cm__input_t in;
    run_out_t *outs;
    int n;
    double *init;
    cm__dumps_t dumps;
    size_t pass_need; /* the least budget of the remap pass */
    bool init_failed, summary_written;
    cm_run_report_t rep;
    double t0;
} run_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The k an output asks for: its own, else the options'. */
static int k_of(const cm_run_output_t *out, const cm_options_t *o)
{
    return out->k > 0 ? out->k : o->params.k;
}

static int check_request(const cm_run_output_t *outs, int n, const cm_options_t *o, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !outs || n < 1 || n > RUN_K_MAX, CM_EUSAGE,
               "a run writes 1 to %d outputs, not %d", RUN_K_MAX, n);
    CM_FAIL_IF(ctx, n > 1 && o->init_path, CM_EUSAGE,
               "a file of centroids gives k: it cannot go with several outputs");
    for (int i = 0; i < n; i++) {
        int k = k_of(&outs[i], o);
        CM_FAIL_IF(ctx, !outs[i].out, CM_EUSAGE, "output %d has no path", i);
        cm_palette_format_t f; /* a name that says no palette format: before any work */
        if (outs[i].palette) CM_TRY(cm_palette_format_of_path(outs[i].palette, &f, ctx));
        for (int j = 0; j < i; j++)
            CM_FAIL_IF(ctx, k == k_of(&outs[j], o), CM_EUSAGE, "k = %d is asked for twice", k);
    }
    cm__summary_format_t format; /* written at the very end: its name is checked first */
    if (o->summary_path) CM_TRY(cm__summary_format_of(o->summary_path, &format, ctx));
    return 0;
}

/* Opens the input, checks its colour space and reads the file of centroids, which gives k. */
static int open_input(run_t *r, cm_ctx_t *ctx)
{
    char dir[4096];
    cm__dir_of(r->outs[0].req->out, dir, sizeof dir);
    CM_TRY(cm__input_open(&r->in, r->in_path, &r->o, 0, dir, ctx));
    CM_TRY(cm__input_check_colorspace(&r->in, r->p.colorspace, ctx));
    r->p.k = r->outs[0].k;
    int rc = cm__init_load(&r->o, cm_grid_features(&r->in.info->grid), &r->p, &r->init, ctx);
    r->init_failed = rc < 0;
    if (rc == 0 && r->o.init_path) r->outs[0].k = r->p.k;
    return rc;
}

/* Lowers each k to the image's pixels and plans its outputs; then what can be checked before
 * the fit is: the budget of a pass with every k, the directories of the models and summary,
 * and those of the images (their writers open their temporary files now). */
static int plan_outputs(run_t *r, cm_ctx_t *ctx)
{
    const cm_image_info_t *in = r->in.info;
    int64_t n_px = in->width * in->height; /* fits: the grid checked it */
    CM_FAIL_IF(ctx, r->p.init_centroids && r->p.k > n_px, CM_EUSAGE,
               "%s: its %d centres are more than the %lld pixels of %s", r->o.init_path, r->p.k,
               (long long)n_px, r->in_path);
    bool labels = false;
    int ks[RUN_K_MAX];
    for (int i = 0; i < r->n; i++) {
        run_out_t *out = &r->outs[i];
        cm__k_within(&out->k, n_px, r->in_path, &r->o);
        out->k_asked = ks[i] = out->k;
        CM_TRY(cm__outputs_plan(&out->w, &r->o, r->in.img, &r->in.src, out->k, out->req->out,
                                out->req->labels, ctx));
        out->w.encode_only = cm_comm_rank() != 0;
        out->w.preview = out->req->preview;
        labels |= out->req->labels || out->w.palette;
    }
    /* The reduced levels hold their rows of tiles outside the chunks' budget: taken from it,
     * up to half of it. */
    size_t levels = 0;
    for (int i = 0; i < r->n; i++) levels += cm__outputs_level_bytes(&r->outs[i].w);
    labels |= levels > 0;
    if (levels > r->p.budget_bytes / 2) {
        size_t pass = cm__budget_need_ks(&r->in.src, ks, r->n, labels);
        size_t need = levels + (pass > levels ? pass : levels);
        return cm_fail_about(
            ctx, CM_EBUDGET,
            (cm_about_t){CM_SETTING_MEMORY, (int64_t)r->p.budget_bytes, (int64_t)need},
            "memory budget of %zu bytes is too small: the reduced levels "
            "(--overviews) hold up to %zu bytes at once, and may take half of it",
            r->p.budget_bytes, levels);
    }
    r->p.budget_bytes -= levels;
    CM_TRY(cm__dumps_begin(&r->dumps, &r->o, &r->p, ctx));
    CM_TRY(cm__budget_check_ks(&r->in.src, &r->p, ks, r->n, labels, ctx));
    r->pass_need = cm__budget_need_ks(&r->in.src, ks, r->n, labels);
    for (int i = 0; i < r->n; i++) {
        const cm_run_output_t *req = r->outs[i].req;
        CM_TRY(cm__check_writable(req->model, ctx));
        if (req->palette) CM_TRY(cm_palette_check(req->palette, cm_grid_features(&in->grid), ctx));
        CM_TRY(cm__check_writable(req->palette, ctx));
    }
    CM_TRY(cm__check_writable(r->o.summary_path, ctx));
    for (int i = 0; i < r->n; i++) CM_TRY(cm__outputs_open(&r->outs[i].w, ctx));
    return 0;
}

/* Fits every k on one sample, read once: the sample depends on the seed, never on k, so each
 * fit is the one a run with that k alone makes. One k takes its own sample in the fit, which
 * frees it before an exact pass over the image. */
static int fit_all(run_t *r, cm_ctx_t *ctx)
{
    CM_TRY(cm__input_prepare(&r->in, &r->o, ctx));
    /* The chunks the fit decodes are kept for the remap, within half the budget and what the
     * remap pass leaves of it: the pass then decodes each chunk of the image once, and the
     * fit's only where they did not fit. A streamed image (a JPEG, a PNG) is read again from its
     * spill store, as fast as zstd decompresses: keeping its chunks would only cost memory. */
    size_t keep = r->p.budget_bytes / 2;
    if (r->p.budget_bytes - r->pass_need < keep) keep = r->p.budget_bytes - r->pass_need;
    if (cm_grid_chunk_bytes(&r->in.src.grid) <= keep && !r->in.info->streamed)
        cm__input_hold(&r->in, keep);
    cm_sample_t *sample = NULL;
    int rc = r->n > 1 ? cm_sample_take(&r->in.src, 1, &r->p, &sample, ctx) : 0;
    for (int i = 0; i < r->n && rc == 0; i++) {
        run_out_t *out = &r->outs[i];
        cm_params_t p = r->p;
        p.k = out->k;
        rc = cm__fit_within(&r->in.src, 1, sample, &p, r->in_path, &r->o, &out->req->fitted, ctx);
        if (rc == 0 && p.k != out->k) rc = cm__outputs_set_k(&out->w, &r->in.src, p.k, ctx);
        out->k = p.k;
    }
    cm_sample_free(sample); /* before the remap pass needs its buffers */
    cm__input_release(&r->in);
    r->rep.fit_chunks_read = cm__input_take_reads(&r->in) - cm__input_take_reused(&r->in);
    return rc;
}

/* The remap pass: every chunk read once, remapped with every model, each to its outputs. */
static int remap_all(run_t *r, cm_ctx_t *ctx)
{
    cm_model_t *models[RUN_K_MAX];
    cm_sink_t sinks[RUN_K_MAX];
    for (int i = 0; i < r->n; i++) {
        models[i] = r->outs[i].req->fitted;
        CM_TRY(cm__outputs_sink(&r->outs[i].w, models[i], &sinks[i], ctx));
    }
    cm_params_t p = r->p; /* the kept chunks hold their part of the budget */
    p.budget_bytes -= cm__input_kept_bytes(&r->in);
    CM_TRY(cm_remap_many(&r->in.src, models, r->n, &p, sinks, ctx));
    if (p.write_parallel) { /* the ranks' tiles are on the disk before rank 0 commits */
        for (int i = 0; i < r->n; i++) CM_TRY(cm__outputs_flush(&r->outs[i].w, ctx));
        cm_comm_barrier();
    }
    /* A cancel that came after the last task still stops the run: nothing appears. */
    CM_FAIL_IF(ctx, r->p.cancel && *r->p.cancel, CM_ECANCELED, "interrupted");
    r->rep.chunks_reused = cm__input_take_reused(&r->in);
    r->rep.chunks_read = cm__input_take_reads(&r->in) - r->rep.chunks_reused;
    /* The job's reads, all ranks': a chunk the fit kept is reused only by the rank that read
     * it, so with several ranks these are not one process's figures (the only ones that are
     * not). */
    int64_t reads[3] = {r->rep.fit_chunks_read, r->rep.chunks_read, r->rep.chunks_reused};
    cm_comm_sum_i64(reads, 3);
    r->rep.fit_chunks_read = reads[0];
    r->rep.chunks_read = reads[1];
    r->rep.chunks_reused = reads[2];
    return 0;
}

/* The small files first: an image output is never left without the model, palette or summary
 * it promises. A later commit can still fail (a file-size limit reached by the image's
 * directory, say): the outputs committed before it are then removed (rollback), so that a
 * failed run leaves none. */
static int commit_all(run_t *r, cm_ctx_t *ctx)
{
    if (cm_comm_rank() != 0) return 0; /* rank 0 writes the files of a job */
    for (int i = 0; i < r->n; i++) {
        run_out_t *out = &r->outs[i];
        if (!out->req->model) continue;
        CM_TRY(cm__model_write(out->req->fitted, &r->rep.meta, out->req->model, ctx));
        out->model_written = true;
    }
    const char *slash = strrchr(r->in_path, '/'), *in_name = slash ? slash + 1 : r->in_path;
    for (int i = 0; i < r->n; i++) {
        run_out_t *out = &r->outs[i];
        if (!out->req->palette) continue;
        char name[256]; /* the GIMP palette's: which image, which k */
        snprintf(name, sizeof name, "%s k=%d", in_name, out->req->fitted->k);
        CM_TRY(cm__palette_write(out->req->fitted, &r->rep.meta, out->req->palette, name, ctx));
        out->palette_written = true;
    }
    if (r->o.summary_path) {
        int ks[RUN_K_MAX];
        for (int i = 0; i < r->n; i++) ks[i] = r->outs[i].k_asked;
        CM_TRY(cm__summary_write(r->o.summary_path, r->in_path, &r->p, r->outs[0].req, ks, r->n,
                                 &r->rep, ctx));
        r->summary_written = true;
    }
    for (int i = 0; i < r->n; i++) {
        CM_TRY(cm__outputs_commit(&r->outs[i].w, ctx));
        r->outs[i].committed = true;
    }
    return 0;
}

static void rollback(run_t *r)
{
    for (int i = 0; i < r->n; i++) {
        const run_out_t *out = &r->outs[i];
        if (out->model_written) unlink(out->req->model);
        if (out->palette_written) unlink(out->req->palette);
        if (out->committed) {
            unlink(out->req->out);
            if (out->req->labels) unlink(out->req->labels);
        }
    }
    if (r->summary_written) unlink(r->o.summary_path);
}

static int run_phases(run_t *r, cm_ctx_t *ctx)
{
    CM_TRY(open_input(r, ctx));
    const cm_image_info_t *in = r->in.info;
    r->rep.meta = cm__meta_of(in);
    r->rep.width = in->width;
    r->rep.height = in->height;
    r->rep.chunks = cm_grid_count(&in->grid);
    CM_TRY(plan_outputs(r, ctx));
    CM_TRY(fit_all(r, ctx));
    double t1 = now_s();
    r->rep.fit_seconds = t1 - r->t0;
    CM_TRY(remap_all(r, ctx));
    CM_TRY(commit_all(r, ctx));
    r->rep.remap_seconds = now_s() - t1;
    return 0;
}

int cm_run_file(const char *in_path, cm_run_output_t *outs, int n_outs, const cm_options_t *o,
                cm_run_report_t *report, cm_ctx_t *ctx)
{
    CM_TRY(check_request(outs, n_outs, o, ctx));
    run_t r = {.in_path = in_path, .o = cm__resolved(o), .n = n_outs, .t0 = now_s()};
    r.p = r.o.params;
    r.outs = calloc((size_t)n_outs, sizeof(run_out_t));
    CM_FAIL_IF(ctx, !r.outs, CM_ENOMEM, "out of memory");
    for (int i = 0; i < n_outs; i++) {
        outs[i].fitted = NULL;
        r.outs[i] = (run_out_t){.req = &outs[i], .k = k_of(&outs[i], o)};
    }
    int ran = run_phases(&r, ctx);
    if (ran < 0) {
        if (!r.init_failed) cm__name_input(ctx, in_path);
        rollback(&r);
    }
    int rc = cm__dumps_end(&r.dumps, &r.p, ran, ctx);
    for (int i = 0; i < n_outs; i++) {
        cm__outputs_abort(&r.outs[i].w);
        if (ran < 0) {
            cm_model_free(outs[i].fitted);
            outs[i].fitted = NULL;
        }
    }
    cm__input_close(&r.in);
    free(r.init);
    free(r.outs);
    if (ran == 0 && report) *report = r.rep;
    return rc;
}
