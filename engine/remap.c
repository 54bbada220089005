/* The remap pass: one task per chunk assigns its pixels to the nearest centre in place, and
 * one writer task per chunk, chained in chunk order, hands it to the sink and adds up the
 * exact counts and inertia. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

typedef struct chunk_out {
    uint8_t *pixels;
    void *labels;
    int64_t *counts; /* k: valid pixels per centre */
    double inertia;
} chunk_out_t;

typedef struct remapper {
    const cm_source_t *src;
    const cm_sink_t *sink;
    cm_model_t *model;
    const float *soa;     /* centres band by band: d rows of k */
    const uint8_t *colours; /* k * d, rounded */
    chunk_out_t *chunks;
    double inertia;
    int64_t n_pixels;
} remapper_t;

typedef struct remap_task {
    remapper_t *r;
    int64_t idx;
} remap_task_t;

static void chunk_out_free(chunk_out_t *c)
{
    free(c->pixels);
    free(c->labels);
    free(c->counts);
    *c = (chunk_out_t){0};
}

static int remap_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const remap_task_t *t = arg;
    remapper_t *r = t->r;
    const cm_grid_t *g = &r->src->grid;
    int k = r->model->k, d = r->model->d, bands = g->bands, alpha = g->alpha_band;
    int64_t x, y, w, h;
    cm_grid_rect(g, t->idx, &x, &y, &w, &h);
    int64_t n = w * h;
    size_t label_size = k <= 256 ? 1 : 2;

    chunk_out_t *c = &r->chunks[t->idx];
    c->pixels = malloc(cm_grid_chunk_bytes(g));
    c->counts = calloc((size_t)k, sizeof(int64_t));
    if (r->sink->want_labels) c->labels = malloc(label_size * (size_t)n);
    float *dist = malloc(sizeof(float) * (size_t)k);
    if (!dist || !c->pixels || !c->counts || (r->sink->want_labels && !c->labels)) {
        free(dist);
        chunk_out_free(c);
        return cm_fail(ctx, CM_ENOMEM, "out of memory remapping chunk %lld", (long long)t->idx);
    }
    int rc = r->src->read(r->src->self, worker, t->idx, c->pixels, ctx);
    if (rc < 0) {
        free(dist);
        return rc;
    }

    float xf[4];
    double inertia = 0.0;
    uint8_t *px = c->pixels;
    for (int64_t i = 0; i < n; i++, px += bands) {
        cm__features_u8(px, bands, alpha, xf);
        float d2;
        int j = cm__nearest_soa(r->soa, k, d, xf, dist, &d2);
        if (cm__pixel_valid(px, alpha)) {
            c->counts[j]++;
            inertia += d2;
        }
        const uint8_t *col = r->colours + (size_t)j * d;
        for (int b = 0, f = 0; b < bands; b++)
            if (b != alpha) px[b] = col[f++];
        if (!c->labels) continue;
        if (label_size == 1)
            ((uint8_t *)c->labels)[i] = (uint8_t)j;
        else
            ((uint16_t *)c->labels)[i] = (uint16_t)j;
    }
    c->inertia = inertia;
    free(dist);
    return 0;
}

static int write_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const remap_task_t *t = arg;
    remapper_t *r = t->r;
    chunk_out_t *c = &r->chunks[t->idx];
    int rc = r->sink->put(r->sink->self, t->idx, c->pixels, c->labels, ctx);
    for (int j = 0; j < r->model->k; j++) {
        r->model->counts[j] += c->counts[j];
        r->n_pixels += c->counts[j];
    }
    r->inertia += c->inertia;
    chunk_out_free(c);
    return rc;
}

int cm_remap(const cm_source_t *src, cm_model_t *model, const cm_params_t *p,
             const cm_sink_t *sink, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int k = model->k, d = model->d;
    CM_FAIL_IF(ctx, d != cm_grid_features(g), CM_EINPUT,
               "the model has %d features, the image %d", d, cm_grid_features(g));
    CM_FAIL_IF(ctx, d > 4, CM_EINTERNAL, "remap supports up to 4 features, not %d", d);
    int64_t n_chunks = cm_grid_count(g);

    int rc = CM_ENOMEM;
    float *soa = malloc(sizeof(float) * (size_t)k * d);
    uint8_t *colours = malloc((size_t)k * d);
    chunk_out_t *chunks = calloc((size_t)n_chunks, sizeof(chunk_out_t));
    remap_task_t *tasks = malloc(sizeof(remap_task_t) * (size_t)n_chunks);
    cm_graph_t *graph = cm_graph_create();
    if (!soa || !colours || !chunks || !tasks || !graph) {
        cm_fail(ctx, CM_ENOMEM, "out of memory planning %lld chunks", (long long)n_chunks);
        goto cleanup;
    }
    for (int j = 0; j < k; j++)
        for (int b = 0; b < d; b++)
            soa[(size_t)b * k + j] = (float)model->centroids[(size_t)j * d + b];
    cm_model_colors_u8(model, colours);

    remapper_t r = {.src = src, .sink = sink, .model = model, .soa = soa,
                    .colours = colours, .chunks = chunks};
    size_t held = cm_grid_chunk_bytes(g) + sizeof(int64_t) * (size_t)k;
    if (sink->want_labels) held += (size_t)g->chunk_w * g->chunk_h * (k <= 256 ? 1 : 2);
    int prev_write = -1;
    for (int64_t i = 0; i < n_chunks; i++) {
        tasks[i] = (remap_task_t){&r, i};
        int remap_id, deps[2];
        rc = cm_graph_add(graph,
                          &(cm_task_t){.fn = remap_chunk, .arg = &tasks[i], .out_bytes = held},
                          &remap_id, ctx);
        if (rc < 0) goto cleanup;
        deps[0] = remap_id;
        deps[1] = prev_write;
        rc = cm_graph_add(graph,
                          &(cm_task_t){.fn = write_chunk, .arg = &tasks[i], .weight = 1,
                                       .deps = deps, .n_deps = prev_write < 0 ? 1 : 2},
                          &prev_write, ctx);
        if (rc < 0) goto cleanup;
    }
    memset(model->counts, 0, sizeof(int64_t) * (size_t)k);
    rc = cm__graph_run(graph, p, "remap", ctx);
    if (rc < 0) goto cleanup;
    model->inertia = r.inertia;
    model->n_pixels = r.n_pixels;
cleanup:
    for (int64_t i = 0; chunks && i < n_chunks; i++) chunk_out_free(&chunks[i]);
    cm_graph_free(graph);
    free(tasks);
    free(chunks);
    free(colours);
    free(soa);
    return rc;
}
