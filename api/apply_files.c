/* cm_apply_files: one model applied to many TIFF files (or to one part of them, split by
 * shard.c) in one remap pass, each file a sub-graph of it (cm_remap_batch), opened when the
 * pass reaches it and closed as soon as its outputs are committed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "api_internal.h"

/* A file while the pass holds it: between open and close. */
typedef struct file_run {
    cm_file_job_t *job;
    const struct batch *b;
    cm_model_t *model; /* its own copy: the pass writes its counts */
    cm__input_t in;
    cm__outputs_t w;
    cm_sink_t sink;
} file_run_t;

typedef struct batch {
    const cm_model_t *model;
    const cm_model_meta_t *meta;
    const cm_options_t *o;
    int n_threads;
    void (*done)(void *user, const cm_file_job_t *job);
    void *user;
} batch_t;

static bool exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whether msg is about file path: "path: ...". */
static bool names(const char *msg, const char *path)
{
    size_t n = path ? strlen(path) : 0;
    return n && !strncmp(msg, path, n) && msg[n] == ':';
}

/* Ends a job with rc and ctx's message (naming its input when it does not name a file). */
static void finish(const batch_t *b, cm_file_job_t *job, int rc, const cm_ctx_t *ctx)
{
    job->rc = rc;
    job->state = rc < 0 ? CM_FILE_FAILED : CM_FILE_WRITTEN;
    cm_ctx_init(&job->why);
    if (rc == CM_ECANCELED) {
        cm_fail(&job->why, rc, "%s: interrupted", job->in);
    } else if (rc < 0 && ctx->msg[0]) {
        cm__ctx_pass(&job->why, ctx);
        job->why.code = rc;
        const char *msg = job->why.msg;
        if (!names(msg, job->in) && !names(msg, job->out) && !names(msg, job->labels))
            cm__ctx_prefix(&job->why, job->in);
    } else if (rc < 0) {
        cm_fail(&job->why, rc, "%s: %s", job->in, cm_strerror(rc));
    }
    if (b->done) b->done(b->user, job);
}

/* Reads the header of a job's input to plan its sub-graph (grid, masks, labels) and checks
 * that the model fits it; the file is closed again until the pass reaches it. */
static int probe(const batch_t *b, const cm_file_job_t *job, cm_remap_job_t *rj, cm_ctx_t *ctx)
{
    cm__input_t in;
    int rc = cm__input_open(&in, job->in, b->o, 1, ".", ctx);
    if (rc == 0) rc = cm__model_fits(b->model, b->meta, job->in, in.info, ctx);
    if (rc == 0) {
        rj->src = cm__source_of(b->o, in.info);
        rj->k = b->model->k;
        /* The outputs' plan says whether the image takes labels (a palette TIFF, a
         * colour-mapped PNG), and refuses now what its format cannot hold. */
        cm__outputs_t w;
        cm_options_t quiet = *b->o; /* its warnings come when the file is opened */
        quiet.warn = NULL;
        rc = cm__outputs_plan(&w, &quiet, in.img, &rj->src, rj->k, job->out, job->labels, ctx);
        rj->want_labels = job->labels || w.palette;
    }
    cm__input_close(&in);
    return rc;
}

/* cm_remap_job_t.open: opens a file for every worker, and its outputs. */
static int file_open(void *self, cm_source_t *src, cm_model_t **model, const cm_sink_t **sink,
                     cm_ctx_t *ctx)
{
    file_run_t *f = self;
    const batch_t *b = f->b;
    const cm_options_t *o = b->o;
    f->model = cm__model_copy(b->model);
    CM_FAIL_IF(ctx, !f->model, CM_ENOMEM, "%s: out of memory", f->job->in);
    char dir[4096];
    cm__dir_of(f->job->out, dir, sizeof dir);
    CM_TRY(cm__input_open(&f->in, f->job->in, o, b->n_threads, dir, ctx));
    /* It may have changed since the probe. */
    CM_TRY(cm__model_fits(b->model, b->meta, f->job->in, f->in.info, ctx));
    *src = f->in.src;
    CM_TRY(
        cm__outputs_plan(&f->w, o, f->in.img, src, f->model->k, f->job->out, f->job->labels, ctx));
    CM_TRY(cm__outputs_open(&f->w, ctx));
    /* Strips too large for chunks are decoded once into a spill store. */
    CM_TRY(cm_image_prepare(f->in.img, f->in.scratch_dir, o->params.budget_bytes, ctx));
    CM_TRY(cm__outputs_sink(&f->w, f->model, &f->sink, ctx));
    *model = f->model;
    *sink = &f->sink;
    return 0;
}

/* cm_remap_job_t.close: commits the outputs when complete, else drops them. */
static int file_close(void *self, int rc, cm_ctx_t *ctx)
{
    file_run_t *f = self;
    cm_file_job_t *job = f->job;
    if (rc == 0) rc = cm__outputs_commit(&f->w, ctx);
    if (rc == 0) {
        job->width = f->in.info->width;
        job->height = f->in.info->height;
        job->mse = f->model->n_pixels ? f->model->inertia / (double)f->model->n_pixels : 0.0;
    }
    cm__outputs_abort(&f->w);
    cm__input_close(&f->in);
    cm_model_free(f->model);
    f->model = NULL;
    finish(f->b, job, rc, ctx);
    return rc;
}

/* Descriptors an open input holds: one per worker thread, and up to three outputs (image,
 * label map, spill store). */
static rlim_t per_file(int n_threads)
{
    return (rlim_t)n_threads + 3;
}

/* How many inputs may be open at once: one more than the threads, within the process's limit
 * of open files (less what the caller holds, about FD_SPARE); and when not even one input
 * opened by every thread fits, fewer threads (*n_threads lowered). One at the very least. */
enum { FD_SPARE = 16 };
static int max_open_files(int *n_threads)
{
    struct rlimit lim;
    int want = *n_threads + 1;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return want;
    rlim_t room = lim.rlim_cur > FD_SPARE + 4 ? lim.rlim_cur - FD_SPARE : 4;
    while (*n_threads > 1 && room < per_file(*n_threads)) --*n_threads;
    rlim_t fit = room / per_file(*n_threads);
    want = *n_threads + 1;
    return fit < 1 ? 1 : fit < (rlim_t)want ? (int)fit : want;
}

int64_t cm_apply_files_descriptors(int n_threads)
{
    if (n_threads <= 0) n_threads = cm_default_threads();
    return (int64_t)((rlim_t)(n_threads + 1) * per_file(n_threads) + FD_SPARE);
}

/* ---- shards and the ranks of a job ----
 * A shard is a part of the files, balanced by their sizes (cm__shard_split); in a job each rank
 * takes a part of its shard the same way, makes its own pass over it, and every rank then gets
 * every file's outcome. Files outside this process's part are marked CM_FILE_OTHER_SHARD until
 * then. */

/* Splits the jobs not marked CM_FILE_OTHER_SHARD into parts of about equal input bytes and
 * marks those outside part keep. */
static int keep_part(cm_file_job_t *jobs, int n_jobs, int parts, int keep, cm_ctx_t *ctx)
{
    if (parts <= 1 || n_jobs == 0) return 0;
    int64_t *bytes = malloc((size_t)n_jobs * sizeof *bytes);
    int *part_of = malloc((size_t)n_jobs * sizeof *part_of);
    int *index = malloc((size_t)n_jobs * sizeof *index);
    int rc = bytes && part_of && index
                 ? 0
                 : cm_fail(ctx, CM_ENOMEM, "out of memory planning %d files", n_jobs);
    int n_left = 0;
    for (int i = 0; rc == 0 && i < n_jobs; i++) {
        if (jobs[i].state == CM_FILE_OTHER_SHARD) continue;
        struct stat st; /* one that cannot be stat'ed fails when the pass opens it */
        index[n_left] = i;
        bytes[n_left++] = stat(jobs[i].in, &st) == 0 ? (int64_t)st.st_size : 0;
    }
    if (rc == 0 && n_left > 0) rc = cm__shard_split(bytes, n_left, parts, part_of, ctx);
    for (int i = 0; rc == 0 && i < n_left; i++)
        if (part_of[i] != keep) jobs[index[i]].state = CM_FILE_OTHER_SHARD;
    free(index);
    free(bytes);
    free(part_of);
    return rc;
}

typedef struct outcome {
    int32_t index, state, rc;
    int64_t width, height;
    double mse;
    cm_ctx_t why;
} outcome_t;

/* Gives every rank the outcome of every file. */
static int gather_outcomes(cm_file_job_t *jobs, int n_jobs, cm_ctx_t *ctx)
{
    int n_mine = 0;
    for (int i = 0; i < n_jobs; i++) n_mine += jobs[i].state != CM_FILE_OTHER_SHARD;
    outcome_t *own = calloc((size_t)(n_mine ? n_mine : 1), sizeof(outcome_t));
    CM_FAIL_IF(ctx, !own, CM_ENOMEM, "out of memory");
    for (int i = 0, at = 0; i < n_jobs; i++)
        if (jobs[i].state != CM_FILE_OTHER_SHARD)
            own[at++] = (outcome_t){i,
                                    (int32_t)jobs[i].state,
                                    jobs[i].rc,
                                    jobs[i].width,
                                    jobs[i].height,
                                    jobs[i].mse,
                                    jobs[i].why};
    uint8_t *all = NULL;
    size_t bytes = 0;
    int rc = cm_comm_allgather(own, sizeof(outcome_t) * (size_t)n_mine, &all, &bytes, ctx);
    free(own);
    for (size_t at = 0; rc == 0 && at + sizeof(outcome_t) <= bytes; at += sizeof(outcome_t)) {
        outcome_t o;
        memcpy(&o, all + at, sizeof o);
        if (o.index < 0 || o.index >= n_jobs) continue;
        cm_file_job_t *j = &jobs[o.index];
        j->state = (cm_file_state_t)o.state;
        j->rc = o.rc;
        j->width = o.width;
        j->height = o.height;
        j->mse = o.mse;
        j->why = o.why;
    }
    free(all);
    return rc;
}

/* One file for the whole job (one input, or a shard of one): the ranks share its chunks as run
 * shares them (cm_apply_file), rather than one rank doing it while the others wait. Every rank
 * gets its outcome. A failure after every rank has probed the file ends the job (rc < 0): the
 * ranks are in the pass together, and one cannot leave it alone. */
static int apply_shared(const batch_t *b, cm_file_job_t *j, const cm_params_t *p, cm_ctx_t *ctx)
{
    if (!b->o->overwrite && exists(j->out) && (!j->labels || exists(j->labels))) {
        j->state = CM_FILE_SKIPPED;
        if (b->done) b->done(b->user, j);
        return 0;
    }
    cm_ctx_t pctx;
    cm_ctx_init(&pctx);
    cm_remap_job_t rj = {0};
    int prc = probe(b, j, &rj, &pctx);
    int64_t failed = prc < 0; /* the ranks agree, if one of them cannot read it */
    cm_comm_sum_i64(&failed, 1);
    if (failed && prc == 0) prc = cm_fail(&pctx, CM_EIO, "%s: another rank cannot read it", j->in);
    if (failed) {
        finish(b, j, prc, &pctx);
        return 0;
    }
    cm_model_t *m = cm__model_copy(b->model); /* the pass writes its figures */
    CM_FAIL_IF(ctx, !m, CM_ENOMEM, "%s: out of memory", j->in);
    cm_options_t o = *b->o;
    o.params = *p;
    o.labels_path = j->labels;
    int rc = cm_apply_file(m, b->meta, j->in, j->out, &o, ctx);
    j->width = rj.src.grid.width;
    j->height = rj.src.grid.height;
    j->mse = m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0;
    cm_model_free(m);
    if (rc == 0) finish(b, j, 0, ctx);
    return rc;
}

/* Jobs planned but never handed to the pass (a cancel came first) end with rc. */
static int close_unrun(cm_remap_job_t *rjobs, int n, int rc, cm_ctx_t *ctx)
{
    for (int i = 0; i < n; i++) rjobs[i].close(rjobs[i].self, rc, ctx);
    return rc;
}

int cm_apply_files(const cm_model_t *model, const cm_model_meta_t *meta, cm_file_job_t *jobs,
                   int n_jobs, const cm_options_t *o,
                   void (*done)(void *user, const cm_file_job_t *job), void *user, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !model || !o || n_jobs < 0 || (n_jobs && !jobs), CM_EUSAGE,
               "cm_apply_files: no model, options or jobs");
    CM_FAIL_IF(ctx, o->overviews || o->cog, CM_EUSAGE,
               "reduced levels and the COG layout are made by a run, not yet by apply");
    CM_FAIL_IF(ctx, o->tile < 16 || o->tile > 4096 || o->tile % 16, CM_EUSAGE,
               "tile side %lld: a multiple of 16 from 16 to 4096", (long long)o->tile);
    CM_FAIL_IF(ctx, o->params.dither != CM_DITHER_NONE && o->params.dither != CM_DITHER_ORDERED,
               CM_EUSAGE, "unknown dither %d", (int)o->params.dither);
    CM_FAIL_IF(ctx,
               o->shard_count < 0 || o->shard_index < 0 ||
                   o->shard_index >= (o->shard_count > 1 ? o->shard_count : 1),
               CM_EUSAGE, "part %d of %d: parts are numbered from 0 to their count - 1",
               o->shard_index, o->shard_count);
    batch_t b = {.model = model, .meta = meta, .o = o, .done = done, .user = user};
    b.n_threads = o->params.n_threads > 0 ? o->params.n_threads : cm_default_threads();
    for (int i = 0; i < n_jobs; i++) {
        cm_file_job_t *j = &jobs[i];
        CM_FAIL_IF(ctx, !j->in || !j->out, CM_EUSAGE, "cm_apply_files: job %d has no paths", i);
        j->state = CM_FILE_TODO;
        j->rc = 0;
        cm_ctx_init(&j->why);
    }
    CM_TRY(keep_part(jobs, n_jobs, o->shard_count, o->shard_index, ctx));
    int in_part = 0, last = -1;
    for (int i = 0; i < n_jobs; i++)
        if (jobs[i].state != CM_FILE_OTHER_SHARD) in_part++, last = i;
    bool shared = cm_comm_size() > 1;
    cm_params_t p = o->params;
    cm__dumps_t dumps;
    if (shared && in_part == 1) {
        CM_TRY(cm__dumps_begin(&dumps, o, &p, ctx));
        return cm__dumps_end(&dumps, &p, apply_shared(&b, &jobs[last], &p, ctx), ctx);
    }
    if (shared) CM_TRY(keep_part(jobs, n_jobs, cm_comm_size(), cm_comm_rank(), ctx));
    CM_TRY(cm__dumps_begin(&dumps, o, &p, ctx));
    cm_remap_job_t *rjobs = calloc(n_jobs ? (size_t)n_jobs : 1, sizeof(cm_remap_job_t));
    file_run_t *runs = calloc(n_jobs ? (size_t)n_jobs : 1, sizeof(file_run_t));
    if (!rjobs || !runs) {
        free(rjobs);
        free(runs);
        return cm__dumps_end(
            &dumps, &p, cm_fail(ctx, CM_ENOMEM, "out of memory planning %d files", n_jobs), ctx);
    }
    const volatile sig_atomic_t *cancel = o->params.cancel;
    int n = 0;
    for (int i = 0; i < n_jobs && !(cancel && *cancel); i++) {
        cm_file_job_t *j = &jobs[i];
        if (j->state == CM_FILE_OTHER_SHARD) continue; /* another shard's or rank's */
        if (!o->overwrite && exists(j->out) && (!j->labels || exists(j->labels))) {
            j->state = CM_FILE_SKIPPED;
            if (done) done(user, j);
            continue;
        }
        cm_ctx_t pctx;
        cm_ctx_init(&pctx);
        int prc = probe(&b, j, &rjobs[n], &pctx);
        if (prc < 0) {
            finish(&b, j, prc, &pctx);
            continue;
        }
        runs[n] = (file_run_t){.job = j, .b = &b};
        rjobs[n].open = file_open;
        rjobs[n].close = file_close;
        rjobs[n].self = &runs[n];
        n++;
    }
    int asked = b.n_threads, max_open = max_open_files(&b.n_threads);
    if (b.n_threads < asked)
        cm__warn(o, (cm_about_t){0},
                 "inputs opened by %d threads need more files open than allowed; using %d "
                 "thread%s",
                 asked, b.n_threads, b.n_threads == 1 ? "" : "s");
    p.n_threads = b.n_threads;
    int rc = cancel && *cancel
                 ? close_unrun(rjobs, n, cm_fail(ctx, CM_ECANCELED, "interrupted"), ctx)
                 : cm_remap_batch(rjobs, n, max_open, &p, ctx);
    if (rc == 0 && shared) rc = gather_outcomes(jobs, n_jobs, ctx);
    free(rjobs);
    free(runs);
    return cm__dumps_end(&dumps, &p, rc, ctx);
}
