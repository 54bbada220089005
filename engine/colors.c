/* Exact count of distinct colours, out of core: chunks stream through the scheduler and mark a
 * bitmap of every possible colour of the non-alpha samples (2^24 bits = 2 MiB for RGB). */
#include <stdlib.h>

#include "engine_internal.h"

typedef struct counter {
    const cm_source_t *src;
    cm__pixfmt_t fmt; /* for the colour key: masked pixels count too */
    uint64_t *bits;
} counter_t;

typedef struct count_task {
    counter_t *c;
    int64_t idx;
} count_task_t;

static int mark_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const count_task_t *t = arg;
    const cm_grid_t *g = &t->c->src->grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, t->idx, &x, &y, &w, &h);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    CM_FAIL_IF(ctx, !buf, CM_ENOMEM, "out of memory reading chunk %lld", (long long)t->idx);
    int rc = t->c->src->read(t->c->src->self, worker, t->idx, buf, ctx);
    const uint8_t *px = buf;
    for (int64_t i = 0; rc == 0 && i < w * h; i++, px += g->bands) {
        uint32_t colour = cm__colour_key(&t->c->fmt, px);
        uint64_t bit = 1ULL << (colour & 63), *word = &t->c->bits[colour >> 6];
        if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
            __atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
    }
    free(buf);
    return rc;
}

int cm_count_colors(const cm_source_t *src, const cm_params_t *p, int64_t *count, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int d = cm_grid_features(g);
    CM_FAIL_IF(ctx, d > 3 || g->stype != CM_U8, CM_EINPUT,
               "counting colours is supported for 8-bit images of up to 3 colour samples, not %d "
               "of %s",
               d, cm_stype_name(g->stype));
    size_t words = ((size_t)1 << (8 * d)) / 64 + 1;
    int64_t n_chunks = cm_grid_count(g);
    counter_t c = {.src = src, .bits = calloc(words, sizeof(uint64_t))};
    cm__pixfmt_init(&c.fmt, src, NULL, NULL);
    count_task_t *tasks = malloc(sizeof(count_task_t) * (size_t)n_chunks);
    cm_graph_t *graph = cm_graph_create();
    int rc = 0;
    if (!c.bits || !tasks || !graph) rc = cm_fail(ctx, CM_ENOMEM, "out of memory counting colours");
    for (int64_t i = 0; rc == 0 && i < n_chunks; i++) {
        tasks[i] = (count_task_t){&c, i};
        int tid;
        rc = cm_graph_add(graph,
                          &(cm_task_t){.fn = mark_chunk,
                                       .kind = "count",
                                       .arg = &tasks[i],
                                       .work_bytes = cm_grid_chunk_bytes(g),
                                       .weight = 1},
                          &tid, ctx);
    }
    if (rc == 0) rc = cm__graph_run(graph, p, "count", ctx);
    if (rc == 0) {
        int64_t n = 0;
        for (size_t i = 0; i < words; i++) n += __builtin_popcountll(c.bits[i]);
        *count = n;
    }
    cm_graph_free(graph);
    free(tasks);
    free(c.bits);
    return rc;
}
