/* The fitting sample: a seeded choice of image cells, read once through the scheduler, and in
 * them the pixels whose hash falls under a threshold. Independent of the file's layout. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    CELL = 512,            /* side of the sample cells */
    SAMPLE_CELLS_MIN = 64, /* cells in the sample: a sixteenth of them, within these */
    SAMPLE_CELLS_MAX = 256,
};

/* The sample must not depend on how the file is laid out (tiles or strips, their sizes), so
 * it is defined on the image alone: a seeded choice of cells of a fixed CELL x CELL grid, and
 * in them every valid pixel whose hash of (seed, position) falls under a threshold. Chunks
 * that meet a chosen cell are read once; the points are put in pixel order at the end. */

typedef struct sampler {
    const cm_source_t *src;
    const uint8_t *chosen; /* per cell: 1 when it is in the sample */
    int64_t cells_x;
    uint64_t threshold;    /* keep a pixel when its hash is below this */
    uint64_t seed;
    int d;
} sampler_t;

typedef struct sample_task {
    const sampler_t *s;
    int64_t chunk;
    float *pts;      /* d features per point */
    int64_t *pos;    /* y * width + x per point */
    int64_t n, cap;
} sample_task_t;

static uint64_t pixel_hash(uint64_t seed, int64_t pos)
{
    return cm_mix64(seed ^ 0x73616d706c65ULL /* "sample" */, (uint64_t)pos);
}

static int sample_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    sample_task_t *t = arg;
    const sampler_t *s = t->s;
    const cm_grid_t *g = &s->src->grid;
    int64_t x0, y0, w, h;
    cm_grid_rect(g, t->chunk, &x0, &y0, &w, &h);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    CM_FAIL_IF(ctx, !buf, CM_ENOMEM, "out of memory reading chunk %lld", (long long)t->chunk);
    int rc = s->src->read(s->src->self, worker, t->chunk, buf, ctx);
    for (int64_t r = 0; rc == 0 && r < h; r++) {
        int64_t y = y0 + r;
        for (int64_t c = 0; c < w; c++) {
            int64_t x = x0 + c;
            if (!s->chosen[(y / CELL) * s->cells_x + x / CELL]) continue;
            int64_t pos = y * g->width + x;
            const uint8_t *px = buf + (r * w + c) * g->bands;
            if (pixel_hash(s->seed, pos) >= s->threshold || !cm__pixel_valid(px, g->alpha_band))
                continue;
            if (t->n == t->cap) {
                int64_t cap = t->cap ? 2 * t->cap : 1024;
                float *np = realloc(t->pts, sizeof(float) * (size_t)cap * s->d);
                int64_t *npos = np ? realloc(t->pos, sizeof(int64_t) * (size_t)cap) : NULL;
                if (np) t->pts = np;
                if (!np || !npos) {
                    rc = cm_fail(ctx, CM_ENOMEM, "out of memory sampling chunk %lld",
                                 (long long)t->chunk);
                    break;
                }
                t->pos = npos;
                t->cap = cap;
            }
            cm__features_u8(px, g->bands, g->alpha_band, t->pts + t->n * s->d);
            t->pos[t->n++] = pos;
        }
    }
    free(buf);
    return rc;
}

typedef struct order_key {
    int64_t pos;
    int64_t at; /* index in the concatenated points */
} order_key_t;

static int by_pos(const void *a, const void *b)
{
    int64_t pa = ((const order_key_t *)a)->pos, pb = ((const order_key_t *)b)->pos;
    return (pa > pb) - (pa < pb);
}

/* Picks the cells, reads the chunks that meet them and returns the points in pixel order. */
int cm__sample_take(const cm_source_t *src, const cm_params_t *p, int64_t sample_px,
                    float **pts_out, int64_t *n_out, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int d = cm_grid_features(g);
    int64_t cells_x = (g->width + CELL - 1) / CELL, cells_y = (g->height + CELL - 1) / CELL;
    int64_t n_cells = cells_x * cells_y, n_chunks = cm_grid_count(g);
    int64_t n_chosen = n_cells / 16;
    n_chosen = n_chosen < SAMPLE_CELLS_MIN ? SAMPLE_CELLS_MIN
               : n_chosen > SAMPLE_CELLS_MAX ? SAMPLE_CELLS_MAX : n_chosen;
    if (n_chosen > n_cells) n_chosen = n_cells;

    int rc = CM_ENOMEM;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n_cells);
    uint8_t *chosen = calloc((size_t)n_cells, 1);
    sample_task_t *tasks = calloc((size_t)n_chunks, sizeof(sample_task_t));
    cm_graph_t *graph = cm_graph_create();
    float *pts = NULL, *all = NULL;
    order_key_t *keys = NULL;
    if (!order || !chosen || !tasks || !graph) {
        cm_fail(ctx, CM_ENOMEM, "out of memory planning the sample");
        goto cleanup;
    }

    /* A seeded partial Fisher-Yates shuffle picks the cells. */
    for (int64_t i = 0; i < n_cells; i++) order[i] = i;
    cm_rng_t rng;
    cm_rng_init(&rng, p->seed, 0x63656c6c73ULL /* "cells" */);
    double area = 0.0;
    for (int64_t i = 0; i < n_chosen; i++) {
        int64_t j = i + (int64_t)cm_rng_below(&rng, (uint64_t)(n_cells - i));
        int64_t t = order[i], cx, cy;
        order[i] = order[j];
        order[j] = t;
        chosen[order[i]] = 1;
        cx = order[i] % cells_x;
        cy = order[i] / cells_x;
        area += (double)((cx + 1) * CELL < g->width ? CELL : g->width - cx * CELL) *
                (double)((cy + 1) * CELL < g->height ? CELL : g->height - cy * CELL);
    }
    double keep = (double)sample_px / area;
    sampler_t s = {.src = src, .chosen = chosen, .cells_x = cells_x, .seed = p->seed, .d = d,
                   .threshold = keep >= 1.0 ? UINT64_MAX : (uint64_t)(keep * 0x1p64)};

    /* One task per chunk that meets a chosen cell. */
    for (int64_t i = 0; i < n_chunks; i++) {
        int64_t x, y, w, h;
        cm_grid_rect(g, i, &x, &y, &w, &h);
        bool meets = false;
        for (int64_t cy = y / CELL; cy <= (y + h - 1) / CELL && !meets; cy++)
            for (int64_t cx = x / CELL; cx <= (x + w - 1) / CELL && !meets; cx++)
                meets = chosen[cy * cells_x + cx];
        if (!meets) continue;
        tasks[i] = (sample_task_t){.s = &s, .chunk = i};
        int id;
        rc = cm_graph_add(graph,
                          &(cm_task_t){.fn = sample_chunk, .arg = &tasks[i],
                                       .work_bytes = cm_grid_chunk_bytes(g), .weight = 1},
                          &id, ctx);
        if (rc < 0) goto cleanup;
    }
    rc = cm__graph_run(graph, p, "sample", ctx);
    if (rc < 0) goto cleanup;

    int64_t n = 0;
    for (int64_t i = 0; i < n_chunks; i++) n += tasks[i].n;
    if (n == 0) {
        rc = cm_fail(ctx, CM_EINPUT, "no pixel to fit on: every sampled pixel is transparent");
        goto cleanup;
    }
    keys = malloc(sizeof(order_key_t) * (size_t)n);
    all = malloc(sizeof(float) * (size_t)n * d);
    pts = malloc(sizeof(float) * (size_t)n * d);
    if (!keys || !all || !pts) {
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory for a sample of %lld pixels", (long long)n);
        goto cleanup;
    }
    for (int64_t i = 0, at = 0; i < n_chunks; i++) {
        if (tasks[i].n)
            memcpy(all + at * d, tasks[i].pts, sizeof(float) * (size_t)tasks[i].n * d);
        for (int64_t j = 0; j < tasks[i].n; j++, at++) keys[at] = (order_key_t){tasks[i].pos[j], at};
    }
    qsort(keys, (size_t)n, sizeof(order_key_t), by_pos);
    for (int64_t i = 0; i < n; i++)
        memcpy(pts + i * d, all + keys[i].at * d, sizeof(float) * d);
    *pts_out = pts;
    *n_out = n;
    pts = NULL;
    rc = 0;
cleanup:
    for (int64_t i = 0; tasks && i < n_chunks; i++) {
        free(tasks[i].pts);
        free(tasks[i].pos);
    }
    cm_graph_free(graph);
    free(keys);
    free(all);
    free(pts);
    free(tasks);
    free(chosen);
    free(order);
    return rc;
}
