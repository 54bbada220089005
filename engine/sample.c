/* The fitting sample: a seeded choice of image cells, read once through the scheduler, and in
 * them the pixels whose hash falls under a threshold. Independent of the file's layout. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    CELL = 512,              /* side of the sample cells */
    SAMPLE_CELLS_MIN = 64,   /* cells in the sample: half of them, within these; fewer cells */
    SAMPLE_CELLS_MAX = 1024, /* cover too little of a photo (a 16th: MSE 10 % above) */
};

/* The sample must not depend on how the file is laid out (tiles or strips, their sizes), so
 * it is defined on the image alone: a seeded choice of cells of a fixed CELL x CELL grid, and
 * in them every valid pixel whose hash of (seed, position) falls under a threshold set by the
 * cells' area. When masked pixels leave the sample short, more cells are drawn, in rounds
 * that double them, until it is full enough or every cell has been read; pixels are taken in
 * the round their cell was drawn, so none is read twice into it. The points are put in pixel
 * order at the end. */

typedef struct sampler {
    const cm_source_t *src;
    cm__pixfmt_t fmt;
    const uint8_t *round_of; /* per cell: the round it was drawn in, 0 if not drawn */
    uint8_t round;           /* the round being read */
    int64_t cells_x;
    uint64_t threshold; /* keep a pixel when its hash is below this */
    uint64_t seed;
    int d;
} sampler_t;

typedef struct sample_task {
    const sampler_t *s;
    int64_t chunk;
    float *pts;   /* d features per point */
    int64_t *pos; /* y * width + x per point */
    int64_t n, cap;
} sample_task_t;

static uint64_t pixel_hash(uint64_t seed, int64_t pos)
{
    return cm_mix64(seed ^ 0x73616d706c65ULL /* "sample" */, (uint64_t)pos);
}

/* Appends a point; false when out of memory. */
static bool append_point(sample_task_t *t, int d, const float *x, int64_t pos)
{
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1024;
        float *np = realloc(t->pts, sizeof(float) * (size_t)cap * d);
        if (!np) return false;
        t->pts = np;
        int64_t *npos = realloc(t->pos, sizeof(int64_t) * (size_t)cap);
        if (!npos) return false;
        t->pos = npos;
        t->cap = cap;
    }
    memcpy(t->pts + t->n * d, x, sizeof(float) * d);
    t->pos[t->n++] = pos;
    return true;
}

static int sample_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    sample_task_t *t = arg;
    const sampler_t *s = t->s;
    const cm_grid_t *g = &s->src->grid;
    int d = s->d;
    int64_t x0, y0, w, h;
    cm_grid_rect(g, t->chunk, &x0, &y0, &w, &h);
    void *buf = malloc(cm_grid_chunk_bytes(g));
    float *feat = malloc(sizeof(float) * (size_t)w * d);
    uint8_t *valid = malloc((size_t)w);
    int rc = buf && feat && valid
                 ? s->src->read(s->src->self, worker, t->chunk, buf, ctx)
                 : cm_fail(ctx, CM_ENOMEM, "out of memory reading chunk %lld", (long long)t->chunk);
    for (int64_t r = 0; rc == 0 && r < h; r++) {
        int64_t y = y0 + r;
        cm__to_features(&s->fmt, buf, r * w, w, feat, valid);
        for (int64_t c = 0; c < w; c++) {
            int64_t x = x0 + c, pos = y * g->width + x;
            if (!valid[c] || s->round_of[(y / CELL) * s->cells_x + x / CELL] != s->round ||
                pixel_hash(s->seed, pos) >= s->threshold)
                continue;
            if (!append_point(t, d, feat + c * d, pos)) {
                rc = cm_fail(ctx, CM_ENOMEM, "out of memory sampling chunk %lld",
                             (long long)t->chunk);
                break;
            }
        }
    }
    free(valid);
    free(feat);
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

/* The points kept so far, over all rounds. */
typedef struct pool {
    float *pts;
    int64_t *pos;
    int64_t n, cap;
} pool_t;

/* Moves the points of a round's tasks into the pool, keeping those under threshold. */
static bool pool_take(pool_t *pl, sample_task_t *tasks, int64_t n_tasks, const sampler_t *s)
{
    for (int64_t i = 0; i < n_tasks; i++) {
        for (int64_t j = 0; j < tasks[i].n; j++) {
            if (pixel_hash(s->seed, tasks[i].pos[j]) >= s->threshold) continue;
            if (pl->n == pl->cap) {
                int64_t cap = pl->cap ? 2 * pl->cap : 4096;
                float *np = realloc(pl->pts, sizeof(float) * (size_t)cap * s->d);
                if (!np) return false;
                pl->pts = np;
                int64_t *npos = realloc(pl->pos, sizeof(int64_t) * (size_t)cap);
                if (!npos) return false;
                pl->pos = npos;
                pl->cap = cap;
            }
            memcpy(pl->pts + pl->n * s->d, tasks[i].pts + j * s->d, sizeof(float) * s->d);
            pl->pos[pl->n++] = tasks[i].pos[j];
        }
        free(tasks[i].pts);
        free(tasks[i].pos);
        tasks[i] = (sample_task_t){0};
    }
    return true;
}

/* Drops the pool's points that a lower threshold no longer keeps. */
static void pool_filter(pool_t *pl, const sampler_t *s)
{
    int64_t kept = 0;
    for (int64_t i = 0; i < pl->n; i++) {
        if (pixel_hash(s->seed, pl->pos[i]) >= s->threshold) continue;
        memmove(pl->pts + kept * s->d, pl->pts + i * s->d, sizeof(float) * s->d);
        pl->pos[kept++] = pl->pos[i];
    }
    pl->n = kept;
}

size_t cm__sample_task_bytes(const cm_source_t *src)
{
    const cm_grid_t *g = &src->grid;
    return cm_grid_chunk_bytes(g) + (size_t)g->chunk_w * (sizeof(float) * cm_grid_features(g) + 1);
}

/* Reads the chunks that meet the cells of round s->round. */
static int read_round(sampler_t *s, sample_task_t *tasks, const cm_params_t *p, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &s->src->grid;
    cm_graph_t *graph = cm_graph_create();
    CM_FAIL_IF(ctx, !graph, CM_ENOMEM, "out of memory planning the sample");
    int rc = 0;
    for (int64_t i = 0; rc == 0 && i < cm_grid_count(g); i++) {
        int64_t x, y, w, h;
        cm_grid_rect(g, i, &x, &y, &w, &h);
        bool meets = false;
        for (int64_t cy = y / CELL; cy <= (y + h - 1) / CELL && !meets; cy++)
            for (int64_t cx = x / CELL; cx <= (x + w - 1) / CELL && !meets; cx++)
                meets = s->round_of[cy * s->cells_x + cx] == s->round;
        if (!meets) continue;
        tasks[i] = (sample_task_t){.s = s, .chunk = i};
        int id;
        rc = cm_graph_add(graph,
                          &(cm_task_t){.fn = sample_chunk,
                                       .kind = "sample",
                                       .arg = &tasks[i],
                                       .work_bytes = cm__sample_task_bytes(s->src),
                                       .weight = 1},
                          &id, ctx);
    }
    if (rc == 0) rc = cm__graph_run(graph, p, "sample", ctx);
    cm_graph_free(graph);
    return rc;
}

/* Picks the cells, reads the chunks that meet them and returns the points in pixel order. */
int cm__sample_take(const cm_source_t *src, const cm_params_t *p, int64_t sample_px,
                    float **pts_out, int64_t *n_out, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int d = cm_grid_features(g);
    int64_t cells_x = (g->width + CELL - 1) / CELL, cells_y = (g->height + CELL - 1) / CELL;
    int64_t n_cells = cells_x * cells_y, n_chunks = cm_grid_count(g);
    int64_t n_chosen = n_cells / 2;
    n_chosen = n_chosen < SAMPLE_CELLS_MIN   ? SAMPLE_CELLS_MIN
               : n_chosen > SAMPLE_CELLS_MAX ? SAMPLE_CELLS_MAX
                                             : n_chosen;
    if (n_chosen > n_cells) n_chosen = n_cells;

    int rc = CM_ENOMEM;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n_cells);
    uint8_t *round_of = calloc((size_t)n_cells, 1);
    sample_task_t *tasks = calloc((size_t)n_chunks, sizeof(sample_task_t));
    pool_t pool = {0};
    float *pts = NULL;
    order_key_t *keys = NULL;
    if (!order || !round_of || !tasks) {
        cm_fail(ctx, CM_ENOMEM, "out of memory planning the sample");
        goto cleanup;
    }
    sampler_t s = {.src = src, .round_of = round_of, .cells_x = cells_x, .seed = p->seed, .d = d};
    cm__pixfmt_init(&s.fmt, src, NULL, NULL);

    /* A seeded Fisher-Yates shuffle, carried on round after round, draws the cells. */
    for (int64_t i = 0; i < n_cells; i++) order[i] = i;
    cm_rng_t rng;
    cm_rng_init(&rng, p->seed, 0x63656c6c73ULL /* "cells" */);
    double area = 0.0;
    for (int64_t drawn = 0; drawn < n_cells;) {
        s.round++;
        for (; drawn < n_chosen; drawn++) {
            int64_t j = drawn + (int64_t)cm_rng_below(&rng, (uint64_t)(n_cells - drawn));
            int64_t t = order[drawn], cx, cy;
            order[drawn] = order[j];
            order[j] = t;
            round_of[order[drawn]] = s.round;
            cx = order[drawn] % cells_x;
            cy = order[drawn] / cells_x;
            area += (double)((cx + 1) * CELL < g->width ? CELL : g->width - cx * CELL) *
                    (double)((cy + 1) * CELL < g->height ? CELL : g->height - cy * CELL);
        }
        double keep = (double)sample_px / area;
        s.threshold = keep >= 1.0 ? UINT64_MAX : (uint64_t)(keep * 0x1p64);
        pool_filter(&pool, &s);
        rc = read_round(&s, tasks, p, ctx);
        if (rc == 0 && !pool_take(&pool, tasks, n_chunks, &s))
            rc = cm_fail(ctx, CM_ENOMEM, "out of memory for the sample");
        if (rc < 0) goto cleanup;
        if (pool.n >= sample_px / 4 || s.round == UINT8_MAX) break;
        n_chosen = 2 * n_chosen < n_cells ? 2 * n_chosen : n_cells;
    }

    int64_t n = pool.n;
    if (n == 0) {
        rc = cm_fail(ctx, CM_EINPUT,
                     "no pixel to fit on: every pixel is masked (alpha 0, nodata or not finite)");
        goto cleanup;
    }
    keys = malloc(sizeof(order_key_t) * (size_t)n);
    pts = malloc(sizeof(float) * (size_t)n * d);
    if (!keys || !pts) {
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory for a sample of %lld pixels", (long long)n);
        goto cleanup;
    }
    for (int64_t i = 0; i < n; i++) keys[i] = (order_key_t){pool.pos[i], i};
    qsort(keys, (size_t)n, sizeof(order_key_t), by_pos);
    for (int64_t i = 0; i < n; i++)
        memcpy(pts + i * d, pool.pts + keys[i].at * d, sizeof(float) * d);
    *pts_out = pts;
    *n_out = n;
    pts = NULL;
    rc = 0;
cleanup:
    for (int64_t i = 0; tasks && i < n_chunks; i++) {
        free(tasks[i].pts);
        free(tasks[i].pos);
    }
    free(pool.pts);
    free(pool.pos);
    free(keys);
    free(pts);
    free(tasks);
    free(round_of);
    free(order);
    return rc;
}
