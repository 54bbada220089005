/* Batches: many images remapped in ONE task graph, each a sub-graph (open, a remap task per
 * chunk, writes in chunk order, close) opened when the pass reaches it, so that thousands of
 * images keep only a few open; a failure stays with its own image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base_internal.h"
#include "remap_internal.h"

/* A job of a batch during the pass. */
typedef struct job_run {
    cm_remap_job_t *job;
    const cm_params_t *p;
    cm__pass_t pass; /* one model, set up by the open task */
    cm_model_t *model;
    const cm_sink_t *sink;
    cm__remap_task_t *tasks; /* one per chunk */
    cm__write_task_t *writes;
    int failed; /* atomic: a task of the job failed and its message is the job's */
    bool closed;
    int close_id; /* its close task in the graph, or -1 */
} job_run_t;

/* A job's task failed with rc (its message in local): the first failure becomes the job's and
 * the graph goes on with the other jobs, unless the whole pass was cancelled. */
static int job_fail(job_run_t *jr, int rc, const cm_ctx_t *local, cm_ctx_t *ctx)
{
    if (rc == CM_ECANCELED)
        return cm_fail(ctx, rc, "%s", local->msg[0] ? local->msg : "interrupted");
    if (!__atomic_exchange_n(&jr->failed, 1, __ATOMIC_ACQ_REL)) {
        jr->job->ctx = *local;
        jr->job->rc = rc;
    }
    return 0;
}

static bool job_failed(job_run_t *jr)
{
    return __atomic_load_n(&jr->failed, __ATOMIC_ACQUIRE);
}

static bool same_grid(const cm_grid_t *a, const cm_grid_t *b)
{
    return a->width == b->width && a->height == b->height && a->bands == b->bands &&
           a->alpha_band == b->alpha_band && a->stype == b->stype && a->chunk_w == b->chunk_w &&
           a->chunk_h == b->chunk_h;
}

/* The same mask rule; a NaN nodata is the same as another NaN. */
static bool same_nodata(const cm_source_t *a, const cm_source_t *b)
{
    if (a->has_nodata != b->has_nodata) return false;
    if (!a->has_nodata) return true;
    bool same_value = a->nodata == b->nodata || (isnan(a->nodata) && isnan(b->nodata));
    return same_value && a->nodata_any == b->nodata_any;
}

static int job_open(void *arg, int worker, cm_ctx_t *ctx)
{
    job_run_t *jr = arg;
    cm_remap_job_t *job = jr->job;
    cm_ctx_t local;
    cm_ctx_init(&local);
    cm_source_t planned = job->src;
    int rc = job->open(job->self, &job->src, &jr->model, &jr->sink, &local);
    /* What the graph was planned with (chunk sizes, label widths) must still hold. */
    if (rc == 0 &&
        (!same_grid(&planned.grid, &job->src.grid) || !same_nodata(&planned, &job->src) ||
         planned.alpha_associated != job->src.alpha_associated ||
         jr->sink->want_labels != job->want_labels))
        rc = cm_fail(&local, CM_EINPUT, "the image changed while the batch ran");
    if (rc == 0 && jr->model->k != job->k)
        rc = cm_fail(&local, CM_EUSAGE, "the model has %d centres, not the planned %d",
                     jr->model->k, job->k);
    if (rc == 0) rc = cm__check_model(&job->src.grid, jr->model, &local);
    /* Several images are open at once: an automatic colour cache each (32 MiB, outside the
     * budget) would add up, so a batch goes without unless asked, as a pass of several
     * models does. */
    if (rc == 0)
        rc = cm__remapper_init(&jr->pass.r[0], &job->src, jr->model, jr->p, jr->sink, 2, &local);
    if (rc == 0) {
        jr->pass.src = &job->src;
        jr->pass.k_max = jr->model->k;
        memset(jr->model->counts, 0, sizeof(int64_t) * (size_t)jr->model->k);
    }
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

static int job_remap(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__remap_task_t *t = arg;
    job_run_t *jr = t->pass->job;
    if (job_failed(jr)) return 0;
    cm_ctx_t local;
    cm_ctx_init(&local);
    int rc = cm__remap_chunk(arg, worker, &local);
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

static int job_write(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__write_task_t *t = arg;
    job_run_t *jr = t->job;
    if (!t->r->chunks) return 0; /* never opened */
    if (job_failed(jr)) {
        cm__chunk_out_free(t->r->sink, &t->r->chunks[t->idx]);
        return 0;
    }
    cm_ctx_t local;
    cm_ctx_init(&local);
    int rc = cm__write_chunk(arg, worker, &local);
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

/* Ends a job: hands its outcome (rc when none of its tasks failed) to close, and frees what the
 * pass held for it. */
static void job_close_now(job_run_t *jr, int rc, const cm_ctx_t *why)
{
    cm_remap_job_t *job = jr->job;
    cm__remapper_t *r = jr->pass.r; /* NULL: never planned */
    cm_ctx_t ctx;
    if (job_failed(jr)) {
        ctx = job->ctx;
        rc = job->rc;
    } else {
        cm_ctx_init(&ctx);
        if (rc < 0 && why && why->code == rc)
            cm__ctx_pass(&ctx, why); /* with what it is about */
        else if (rc < 0)
            cm_fail(&ctx, rc, "%s", why && why->msg[0] ? why->msg : cm_strerror(rc));
    }
    if (r && r->src) {
        if (rc == 0) cm__pass_figures(&jr->pass);
        cm__remapper_free(r);
    }
    job->rc = job->close ? job->close(job->self, rc, &ctx) : rc;
    job->ctx = ctx;
    jr->closed = true;
}

static int job_close(void *arg, int worker, cm_ctx_t *ctx)
{
    job_run_t *jr = arg;
    const cm_params_t *p = jr->p;
    /* Complete, but a cancelled batch keeps nothing that was not committed before. */
    if (p->cancel && *p->cancel) return cm_fail(ctx, CM_ECANCELED, "interrupted");
    job_close_now(jr, 0, NULL);
    return 0;
}

/* Adds job jr's sub-graph: open (after the close of the job max_open before it: wait_for),
 * a remap task and a write per chunk, writes chained in chunk order, then close. */
static int add_job(cm_graph_t *graph, job_run_t *jr, int wait_for, cm_ctx_t *ctx)
{
    const cm_source_t *src = &jr->job->src;
    size_t held, scratch;
    cm__pass_bytes(src, &jr->job->k, 1, jr->job->want_labels, &held, &scratch);
    int open_id, last;
    CM_TRY(cm_graph_add(
        graph,
        &(cm_task_t){
            .fn = job_open, .kind = "open", .arg = jr, .deps = &wait_for, .n_deps = wait_for >= 0},
        &open_id, ctx));
    cm__pass_fns_t fns = {job_remap, job_write};
    CM_TRY(cm__add_pass(graph, &jr->pass, fns, cm_grid_count(&src->grid), held, scratch, open_id,
                        jr->tasks, jr->writes, &last, ctx));
    if (last < 0) last = open_id;
    return cm_graph_add(
        graph,
        &(cm_task_t){.fn = job_close, .kind = "close", .arg = jr, .deps = &last, .n_deps = 1},
        &jr->close_id, ctx);
}

/* Closes every job with rc, the batch's failure before any of it ran. */
static int close_all(cm_remap_job_t *jobs, int n_jobs, int rc, cm_ctx_t *ctx)
{
    for (int i = 0; i < n_jobs; i++) {
        job_run_t jr = {.job = &jobs[i]};
        job_close_now(&jr, rc, ctx);
    }
    return rc;
}

int cm_remap_batch(cm_remap_job_t *jobs, int n_jobs, int max_open, const cm_params_t *p,
                   cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_jobs < 0, CM_EUSAGE, "bad batch of %d jobs", n_jobs);
    for (int i = 0; i < n_jobs; i++) {
        jobs[i].rc = 0;
        cm_ctx_init(&jobs[i].ctx);
    }
    if (max_open < 1)
        return close_all(jobs, n_jobs,
                         cm_fail(ctx, CM_EUSAGE, "bad batch: %d images open at once", max_open),
                         ctx);
    if (p->dither != CM_DITHER_NONE && p->dither != CM_DITHER_ORDERED)
        return close_all(jobs, n_jobs, cm_fail(ctx, CM_EUSAGE, "unknown dither %d", (int)p->dither),
                         ctx);
    job_run_t *runs = calloc(n_jobs ? (size_t)n_jobs : 1, sizeof(job_run_t));
    cm_graph_t *graph = cm_graph_create();
    if (!runs) {
        cm_graph_free(graph);
        return close_all(jobs, n_jobs,
                         cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs), ctx);
    }
    int rc = 0;
    if (!graph) rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
    int *in_graph = rc == 0 ? malloc(sizeof(int) * (n_jobs ? (size_t)n_jobs : 1)) : NULL;
    if (rc == 0 && !in_graph)
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
    int n_in = 0;
    for (int i = 0; rc == 0 && i < n_jobs; i++) {
        job_run_t *jr = &runs[i];
        *jr = (job_run_t){.job = &jobs[i], .p = p, .close_id = -1};
        cm_ctx_t local;
        cm_ctx_init(&local);
        /* An image whose chunk alone does not fit the budget fails here, alone. */
        int err = cm__budget_check_ks(&jobs[i].src, p, &jobs[i].k, 1, jobs[i].want_labels, &local);
        if (err < 0) {
            job_fail(jr, err, &local, ctx);
            job_close_now(jr, err, NULL);
            continue;
        }
        int64_t n_chunks = cm_grid_count(&jobs[i].src.grid);
        jr->pass = (cm__pass_t){.n = 1, .job = jr};
        jr->pass.r = calloc(1, sizeof(cm__remapper_t));
        jr->tasks = malloc(sizeof(cm__remap_task_t) * (size_t)(n_chunks ? n_chunks : 1));
        jr->writes = malloc(sizeof(cm__write_task_t) * (size_t)(n_chunks ? n_chunks : 1));
        if (!jr->pass.r || !jr->tasks || !jr->writes) {
            rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
            break;
        }
        int wait_for = n_in >= max_open ? runs[in_graph[n_in - max_open]].close_id : -1;
        rc = add_job(graph, jr, wait_for, ctx);
        in_graph[n_in++] = i;
    }
    if (rc == 0) rc = cm__graph_run(graph, p, "remap", ctx);
    /* Jobs the graph did not reach (it was cancelled, or could not be planned) end with why. */
    for (int i = 0; runs && i < n_jobs; i++) {
        if (!runs[i].job) runs[i].job = &jobs[i];
        if (!runs[i].closed) job_close_now(&runs[i], rc < 0 ? rc : CM_EINTERNAL, ctx);
        free(runs[i].pass.r);
        free(runs[i].tasks);
        free(runs[i].writes);
    }
    free(in_graph);
    cm_graph_free(graph);
    free(runs);
    return rc;
}
