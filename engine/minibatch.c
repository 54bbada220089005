/* The fit: a seeded sample of chunks read once through the scheduler, k-means++ on it, then
 * mini-batch k-means (Sculley 2010) whose steps are scheduler tasks reduced in fixed order. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    CELL = 512,                /* side of the sample cells */
    SAMPLE_CELLS_MIN = 64,     /* cells in the sample: a sixteenth of them, within these */
    SAMPLE_CELLS_MAX = 256,
    PARTS_PER_STEP = 8,        /* tasks per step: fixed, so results do not follow threads */
    INIT_POINTS_MAX = 200000,  /* k-means++ runs on at most this many sample points */
    RESEED_EVERY = 10,         /* steps between checks for starved centres */
};

void cm_params_default(cm_params_t *p)
{
    *p = (cm_params_t){.k = 8, .seed = 0, .max_iter = 200, .tol = 0.01, .patience = 10,
                       .batch = 8192, .sample_px = 0, .n_threads = 0,
                       .budget_bytes = (size_t)256 << 20};
}

/* ---- running a graph with the run's parameters ---- */

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
    cm_run_opts_t o = {.n_threads = p->n_threads, .budget_bytes = p->budget_bytes,
                       .progress = p->progress ? stage_progress : NULL, .progress_user = &cb,
                       .cancel = p->cancel};
    return cm_graph_run(g, &o, ctx);
}

/* ---- the sample ----
 * The sample must not depend on how the file is laid out (tiles or strips, their sizes), so
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
static int take_sample(const cm_source_t *src, const cm_params_t *p, int64_t sample_px,
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

/* ---- mini-batch steps ----
 * A window of steps is one graph: step s has PARTS_PER_STEP part tasks (each draws its share
 * of the batch and sums it against the centres) and one update task that depends on them;
 * the parts of step s + 1 depend on that update. Once the fit has converged, the tasks left
 * in the window return at once. */

typedef struct stepper {
    const cm_params_t *p;
    const float *pts;
    int64_t n;
    int k, d;
    int64_t per_part;
    double *c;        /* centres (k * d), moved by the update tasks */
    float *cf;        /* the same as floats, read by the part tasks of a step */
    double *v;        /* points taken by each centre so far: 1/v is its learning rate */
    double *sum;      /* d: scratch of the update */
    double *partials; /* per part: k * (d + 1) sums (d feature sums, then the count) */
    int steps_done, calm;
    bool converged;
} stepper_t;

typedef struct step_task {
    stepper_t *s;
    int step, part;
} step_task_t;

static uint64_t draw_key(int step, int part)
{
    return (uint64_t)step << 16 | (uint64_t)part;
}

static int step_part(void *arg, int worker, cm_ctx_t *ctx)
{
    const step_task_t *t = arg;
    const stepper_t *s = t->s;
    if (s->converged) return 0;
    int k = s->k, d = s->d;
    double *acc = s->partials + (size_t)t->part * (size_t)k * (size_t)(d + 1);
    memset(acc, 0, sizeof(double) * (size_t)k * (size_t)(d + 1));
    cm_rng_t rng;
    cm_rng_init(&rng, s->p->seed, draw_key(t->step, t->part));
    for (int64_t i = 0; i < s->per_part; i++) {
        const float *x = s->pts + (int64_t)cm_rng_below(&rng, (uint64_t)s->n) * d;
        double *a = acc + (size_t)cm__nearest(s->cf, k, d, x, NULL) * (size_t)(d + 1);
        for (int b = 0; b < d; b++) a[b] += x[b];
        a[d] += 1.0;
    }
    return 0;
}

/* Moves centres that no point has chosen yet (v = 0) to the sample points farthest from every
 * centre, one at a time, as k-means++ would; returns how many moved. Centres stay where they
 * are when no point differs from all centres (fewer distinct values than k). Centres with few
 * points are left alone: a small cluster is a cluster, and 1/v already lets them move. */
static int reseed_empty(stepper_t *s, int step)
{
    int k = s->k, d = s->d, moved = 0;
    int64_t m = s->per_part * PARTS_PER_STEP;
    float *d2 = NULL;
    int64_t *idx = NULL;
    for (int j = 0; j < k; j++) {
        if (s->v[j] > 0) continue;
        if (!d2) {
            d2 = malloc(sizeof(float) * (size_t)m);
            idx = malloc(sizeof(int64_t) * (size_t)m);
            if (!d2 || !idx) break; /* reseeding is an improvement, not a necessity */
            cm_rng_t rng;
            cm_rng_init(&rng, s->p->seed, draw_key(step, 0xffff));
            for (int64_t i = 0; i < m; i++) {
                idx[i] = (int64_t)cm_rng_below(&rng, (uint64_t)s->n);
                cm__nearest(s->cf, k, d, s->pts + idx[i] * d, &d2[i]);
            }
        }
        int64_t far = -1;
        for (int64_t i = 0; i < m; i++)
            if (d2[i] > 0.f && (far < 0 || d2[i] > d2[far])) far = i;
        if (far < 0) break;
        const float *x = s->pts + idx[far] * d;
        for (int b = 0; b < d; b++) {
            s->c[(size_t)j * d + b] = x[b];
            s->cf[(size_t)j * d + b] = x[b];
        }
        moved++;
        for (int64_t i = 0; i < m; i++) {
            float t = 0.f;
            for (int b = 0; b < d; b++) {
                float u = s->pts[idx[i] * d + b] - x[b];
                t += u * u;
            }
            if (t < d2[i]) d2[i] = t;
        }
    }
    free(d2);
    free(idx);
    return moved;
}

/* Reduces the parts of a step in part order, then moves each centre towards the mean of its
 * new points with its own learning rate (Sculley 2010). */
static int step_update(void *arg, int worker, cm_ctx_t *ctx)
{
    const step_task_t *t = arg;
    stepper_t *s = t->s;
    if (s->converged) return 0;
    int k = s->k, d = s->d;
    double shift_max = 0.0;
    for (int j = 0; j < k; j++) {
        double cnt = 0.0, *cj = s->c + (size_t)j * d;
        memset(s->sum, 0, sizeof(double) * d);
        for (int q = 0; q < PARTS_PER_STEP; q++) {
            const double *a = s->partials + ((size_t)q * k + j) * (size_t)(d + 1);
            for (int b = 0; b < d; b++) s->sum[b] += a[b];
            cnt += a[d];
        }
        if (cnt == 0.0) continue;
        s->v[j] += cnt;
        double shift = 0.0;
        for (int b = 0; b < d; b++) {
            double next = cj[b] + (s->sum[b] - cnt * cj[b]) / s->v[j];
            shift += (next - cj[b]) * (next - cj[b]);
            cj[b] = next;
        }
        if (shift > shift_max) shift_max = shift;
    }
    for (size_t i = 0; i < (size_t)k * d; i++) s->cf[i] = (float)s->c[i];
    bool reseeded = t->step % RESEED_EVERY == RESEED_EVERY - 1 && reseed_empty(s, t->step) > 0;
    s->steps_done = t->step + 1;
    s->calm = sqrt(shift_max) < s->p->tol && !reseeded ? s->calm + 1 : 0;
    s->converged = s->calm >= s->p->patience;
    if (s->p->progress)
        s->p->progress(s->p->progress_user, "fit", s->steps_done,
                       s->converged ? s->steps_done : s->p->max_iter);
    return 0;
}

/* Runs steps [first, last) as one graph. */
static int run_window(stepper_t *s, step_task_t *tasks, int first, int last, cm_ctx_t *ctx)
{
    cm_graph_t *g = cm_graph_create();
    CM_FAIL_IF(ctx, !g, CM_ENOMEM, "out of memory");
    int rc = 0, update = -1, parts[PARTS_PER_STEP];
    step_task_t *t = tasks;
    for (int step = first; step < last && rc == 0; step++) {
        for (int q = 0; q < PARTS_PER_STEP && rc == 0; q++) {
            *t = (step_task_t){s, step, q};
            rc = cm_graph_add(g, &(cm_task_t){.fn = step_part, .arg = t++, .deps = &update,
                                               .n_deps = update >= 0},
                              &parts[q], ctx);
        }
        *t = (step_task_t){s, step, -1};
        if (rc == 0)
            rc = cm_graph_add(g, &(cm_task_t){.fn = step_update, .arg = t++, .deps = parts,
                                               .n_deps = PARTS_PER_STEP},
                              &update, ctx);
    }
    if (rc == 0) rc = cm__graph_run(g, s->p, "fit", ctx);
    cm_graph_free(g);
    return rc;
}

int cm_fit(const cm_source_t *src, const cm_params_t *p, cm_model_t **out, cm_ctx_t *ctx)
{
    enum { WINDOW = 64 };
    const cm_grid_t *g = &src->grid;
    int d = cm_grid_features(g), k = p->k;
    CM_FAIL_IF(ctx, k < 1 || k > 65535, CM_EUSAGE, "k must be between 1 and 65535, not %d", k);
    CM_FAIL_IF(ctx, p->max_iter < 1 || p->batch < 1, CM_EUSAGE,
               "--max-iter and --batch must be positive");

    /* A million pixels are plenty for the means. The size does not follow the budget, so
     * that --memory changes the speed and never the result. */
    int64_t sample_px = p->sample_px > 0 ? p->sample_px : (int64_t)1 << 20;

    float *pts = NULL;
    int64_t n = 0;
    cm_model_t *m = NULL;
    step_task_t *tasks = NULL;
    stepper_t s = {0};
    int rc = take_sample(src, p, sample_px, &pts, &n, ctx);
    if (rc < 0) return rc;

    rc = CM_ENOMEM;
    m = cm__model_new(k, d);
    tasks = malloc(sizeof(step_task_t) * WINDOW * (PARTS_PER_STEP + 1));
    s = (stepper_t){.p = p, .pts = pts, .n = n, .k = k, .d = d,
                    .per_part = (p->batch + PARTS_PER_STEP - 1) / PARTS_PER_STEP,
                    .cf = malloc(sizeof(float) * (size_t)k * (size_t)d),
                    .v = calloc((size_t)k, sizeof(double)), .sum = malloc(sizeof(double) * d),
                    .partials = malloc(sizeof(double) * PARTS_PER_STEP * (size_t)k * (d + 1))};
    if (!m || !tasks || !s.cf || !s.v || !s.sum || !s.partials) {
        cm_fail(ctx, CM_ENOMEM, "out of memory for %d centres", k);
        goto cleanup;
    }
    s.c = m->centroids;

    /* k-means++ on an evenly strided subset of the sample. */
    int64_t stride = n > INIT_POINTS_MAX ? (n + INIT_POINTS_MAX - 1) / INIT_POINTS_MAX : 1;
    int64_t n_init = (n + stride - 1) / stride;
    float *init = stride > 1 ? malloc(sizeof(float) * (size_t)n_init * d) : pts;
    if (!init) {
        cm_fail(ctx, CM_ENOMEM, "out of memory seeding");
        goto cleanup;
    }
    for (int64_t i = 0; stride > 1 && i < n_init; i++)
        memcpy(init + i * d, pts + i * stride * d, sizeof(float) * d);
    rc = cm_kmeanspp(init, n_init, d, k, p->seed, m->centroids, ctx);
    if (init != pts) free(init);
    if (rc < 0) goto cleanup;
    for (size_t i = 0; i < (size_t)k * d; i++) s.cf[i] = (float)s.c[i];

    for (int first = 0; first < p->max_iter && !s.converged && rc == 0; first += WINDOW)
        rc = run_window(&s, tasks, first, first + WINDOW < p->max_iter ? first + WINDOW
                                                                      : p->max_iter, ctx);
    if (rc < 0) goto cleanup;
    m->iterations = s.steps_done;
    m->converged = s.converged;
    m->seed = p->seed;
    m->sample_px = n;
    for (int j = 0; j < k; j++) m->counts[j] = (int64_t)s.v[j];
    *out = m;
    m = NULL;
cleanup:
    cm_model_free(m);
    free(s.partials);
    free(s.sum);
    free(s.v);
    free(s.cf);
    free(tasks);
    free(pts);
    return rc;
}
