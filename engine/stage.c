/* What every stage of the engine shares: the parameters' defaults, and running a graph with
 * the run's threads, budget, cancel flag and a named progress stage. */
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
