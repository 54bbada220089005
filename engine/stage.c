/* What every stage of the engine shares: the parameters' defaults, running a graph with the
 * run's threads, budget, cancel flag and a named progress stage, and the graph of a stage that
 * is one task per item (a chunk, or a slice of the sample). */
#include <stdlib.h>

#include "engine_internal.h"

void cm_params_default(cm_params_t *p)
{
    *p = (cm_params_t){.k = 8,
                       .seed = 0,
                       .max_iter = 200,
                       .tol = 0.01,
                       .patience = 10,
                       .batch = 8192,
                       .sample_px = 0,
                       .n_threads = 0,
                       .color_cache = -1,
                       .budget_bytes = (size_t)256 << 20};
}

typedef struct stage_cb {
    const cm_params_t *p;
    const char *stage;
} stage_cb_t;

static void stage_progress(void *user, int64_t done, int64_t total)
{
    const stage_cb_t *s = user;
    s->p->progress(s->p->progress_user, s->stage, done, total);
}

int cm__graph_run(cm_graph_t *g, const cm_params_t *p, const char *stage, cm_ctx_t *ctx)
{
    stage_cb_t cb = {p, stage};
    cm_run_opts_t o = {.n_threads = p->n_threads,
                       .budget_bytes = p->budget_bytes,
                       .progress = p->progress ? stage_progress : NULL,
                       .progress_user = &cb,
                       .cancel = p->cancel,
                       .trace = p->trace,
                       .stage = stage};
    if (p->graph_fn) p->graph_fn(p->graph_user, stage, g);
    return cm_graph_run(g, &o, ctx);
}

typedef struct item_task {
    const cm__items_t *items;
    int64_t i;
} item_task_t;

static int run_each(void *arg, int worker, cm_ctx_t *ctx)
{
    const item_task_t *t = arg;
    return t->items->each(t->items->user, t->i, worker, ctx);
}

static int run_then(void *arg, int worker, cm_ctx_t *ctx)
{
    const item_task_t *t = arg;
    return t->items->then(t->items->user, t->i, ctx);
}

int cm__run_items(const cm__items_t *items, const cm_params_t *p, const char *stage, cm_ctx_t *ctx)
{
    cm_graph_t *g = cm_graph_create();
    item_task_t *tasks = malloc(sizeof(item_task_t) * (size_t)(items->n > 0 ? items->n : 1));
    int rc = g && tasks ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory planning %s", stage);
    int prev = -1;
    for (int64_t i = 0; rc == 0 && i < items->n; i++) {
        if (items->want && !items->want(items->user, i)) continue;
        tasks[i] = (item_task_t){items, i};
        int id;
        rc = cm_graph_add(g,
                          &(cm_task_t){.fn = run_each,
                                       .kind = items->kind,
                                       .arg = &tasks[i],
                                       .work_bytes = items->work_bytes,
                                       .weight = items->counted},
                          &id, ctx);
        if (rc < 0 || !items->then) continue;
        int deps[2] = {id, prev};
        rc = cm_graph_add(g,
                          &(cm_task_t){.fn = run_then,
                                       .kind = items->then_kind,
                                       .arg = &tasks[i],
                                       .deps = deps,
                                       .n_deps = prev < 0 ? 1 : 2},
                          &prev, ctx);
    }
    if (rc == 0) rc = cm__graph_run(g, p, stage, ctx);
    cm_graph_free(g);
    free(tasks);
    return rc;
}
