/* The fitting sample: a seeded choice of image cells, read once through the scheduler, and in
 * them the pixels whose hash falls under a threshold. Independent of the file's layout and of k.
 * Several sources (images of the same kind) share one list of cells, so each gives the sample
 * its share of the valid pixels. Fits nothing: minibatch.c fits on it. */
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
 * order at the end: the first round's are merged row by row from its chunks (no sort), later
 * rounds' are sorted in.
 *
 * Several sources are one image for the sampler: their cells form one list (those of source 0
 * first), drawn from with the same shuffle, and their pixel positions one range (source i's
 * start after those of sources 0 .. i-1). Every pixel of every source thus has the same chance
 * to be in the sample, and each source's share of it follows its number of valid pixels. With
 * one source this is exactly the sample of that image alone. */

/* Where each source starts in the shared lists of cells, chunks and pixel positions. */
typedef struct span {
    int64_t cell, chunk, px;
    int64_t cells_x;
} span_t;

typedef struct sampler {
    const cm_source_t *srcs;
    cm__pixfmt_t *fmt;  /* per source (their nodata may differ) */
    const span_t *span; /* per source, and one past the last for the totals */
    int n_srcs;
    uint8_t *round_of;  /* per cell: the round it was drawn in, 0 if not drawn */
    uint8_t round;      /* the round being read */
    uint64_t threshold; /* keep a pixel when its hash is below this */
    uint64_t seed;
    int d;
} sampler_t;

/* The points a chunk gives the sample in one round; s is NULL for a chunk the round skips. */
typedef struct sample_task {
    const sampler_t *s;
    int src;
    int64_t chunk;  /* in its source */
    float *pts;     /* d features per point */
    int64_t *pos;   /* per point: y * width + x, after the positions of earlier sources */
    uint64_t *hash; /* and its pixel_hash */
    int64_t n, cap;
    bool mine; /* this rank reads it */
} sample_task_t;

static uint64_t pixel_hash(uint64_t seed, int64_t pos)
{
    return cm__mix64(seed ^ 0x73616d706c65ULL /* "sample" */, (uint64_t)pos);
}

/* Appends a point; false when out of memory. */
static bool append_point(sample_task_t *t, int d, const float *x, int64_t pos, uint64_t hash)
{
    if (t->n == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1024;
        float *np = realloc(t->pts, sizeof(float) * (size_t)cap * d);
        if (!np) return false;
        t->pts = np;
        int64_t *npos = realloc(t->pos, sizeof(int64_t) * (size_t)cap);
        if (!npos) return false;
        t->pos = npos;
        uint64_t *nhash = realloc(t->hash, sizeof(uint64_t) * (size_t)cap);
        if (!nhash) return false;
        t->hash = nhash;
        t->cap = cap;
    }
    memcpy(t->pts + t->n * d, x, sizeof(float) * d);
    t->pos[t->n] = pos;
    t->hash[t->n++] = hash;
    return true;
}

static int sample_chunk(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    sample_task_t *t = (sample_task_t *)user + idx;
    const sampler_t *s = t->s;
    const cm_source_t *src = &s->srcs[t->src];
    const span_t *sp = &s->span[t->src];
    const cm_grid_t *g = &src->grid;
    int d = s->d;
    int64_t x0, y0, w, h;
    cm_grid_rect(g, t->chunk, &x0, &y0, &w, &h);
    void *buf = malloc(cm_grid_chunk_bytes(g));
    float *feat = malloc(sizeof(float) * (size_t)w * d);
    uint8_t *valid = malloc((size_t)w);
    int rc = buf && feat && valid
                 ? src->read(src->self, worker, t->chunk, buf, ctx)
                 : cm_fail(ctx, CM_ENOMEM, "out of memory reading chunk %lld", (long long)t->chunk);
    /* Row by row, a cell's columns at a time: the cell's round is looked up once, every pixel
     * of a drawn cell hashed, and only the few the hash keeps made features (and checked). */
    for (int64_t r = 0; rc == 0 && r < h; r++) {
        int64_t y = y0 + r, row = sp->px + y * g->width;
        const uint8_t *round_of = s->round_of + sp->cell + (y / CELL) * sp->cells_x;
        for (int64_t x = x0, end; rc == 0 && x < x0 + w; x = end) {
            end = (x / CELL + 1) * CELL < x0 + w ? (x / CELL + 1) * CELL : x0 + w;
            if (round_of[x / CELL] != s->round) continue;
            for (int64_t c = x; c < end; c++) {
                uint64_t hash = pixel_hash(s->seed, row + c);
                if (hash >= s->threshold) continue;
                cm__to_features(&s->fmt[t->src], buf, r * w + (c - x0), 1, feat, valid);
                if (!valid[0]) continue;
                if (!append_point(t, d, feat, row + c, hash)) {
                    rc = cm_fail(ctx, CM_ENOMEM, "out of memory sampling chunk %lld",
                                 (long long)t->chunk);
                    break;
                }
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
    int64_t at; /* index in the pool */
} order_key_t;

/* Sorts n keys by pos (non-negative, distinct) into out: a counting sort on pos >> shift, with
 * about as many buckets as keys, then an insertion sort of each bucket's few keys. False when
 * the buckets cannot be had. */
static bool sort_by_pos(const order_key_t *keys, order_key_t *out, int64_t n)
{
    uint64_t top = 0;
    for (int64_t i = 0; i < n; i++)
        if ((uint64_t)keys[i].pos > top) top = (uint64_t)keys[i].pos;
    int shift = 0;
    while (top >> shift > (uint64_t)n) shift++;
    size_t n_buckets = (size_t)(top >> shift) + 2;
    int64_t *start = calloc(n_buckets, sizeof(int64_t));
    if (!start) return false;
    for (int64_t i = 0; i < n; i++) start[((uint64_t)keys[i].pos >> shift) + 1]++;
    for (size_t b = 1; b < n_buckets; b++) start[b] += start[b - 1];
    for (int64_t i = 0; i < n; i++) out[start[(uint64_t)keys[i].pos >> shift]++] = keys[i];
    /* start[b] is now the end of bucket b */
    for (size_t b = 0, first = 0; b + 1 < n_buckets; first = (size_t)start[b++])
        for (size_t i = first + 1; i < (size_t)start[b]; i++) {
            order_key_t t = out[i];
            size_t j = i;
            for (; j > first && out[j - 1].pos > t.pos; j--) out[j] = out[j - 1];
            out[j] = t;
        }
    free(start);
    return true;
}

/* The points kept so far, over all rounds. */
typedef struct pool {
    float *pts;
    int64_t *pos;
    uint64_t *hash;
    int64_t n, cap;
} pool_t;

static void pool_put(pool_t *pl, const sample_task_t *t, int64_t i, int d)
{
    memcpy(pl->pts + pl->n * d, t->pts + i * d, sizeof(float) * d);
    pl->pos[pl->n] = t->pos[i];
    pl->hash[pl->n++] = t->hash[i];
}

/* Moves the points of a round's tasks into the pool (the tasks kept those under the round's
 * threshold). Into an empty pool they go in pixel order: each task holds its chunk's points
 * in rows, so the chunks of a row of chunks give theirs a row at a time, left to right. */
static bool pool_take(pool_t *pl, sample_task_t *tasks, int64_t n_tasks, const sampler_t *s)
{
    int64_t more = 0, n_cx_max = 1;
    for (int64_t i = 0; i < n_tasks; i++) more += tasks[i].n;
    for (int si = 0; si < s->n_srcs; si++)
        if (s->srcs[si].grid.n_cx > n_cx_max) n_cx_max = s->srcs[si].grid.n_cx;
    if (pl->n + more > pl->cap) {
        size_t cap = (size_t)(pl->n + more ? pl->n + more : 1);
        float *np = realloc(pl->pts, sizeof(float) * cap * (size_t)s->d);
        if (!np) return false;
        pl->pts = np;
        int64_t *npos = realloc(pl->pos, sizeof(int64_t) * cap);
        if (!npos) return false;
        pl->pos = npos;
        uint64_t *nh = realloc(pl->hash, sizeof(uint64_t) * cap);
        if (!nh) return false;
        pl->hash = nh;
        pl->cap = (int64_t)cap;
    }
    int64_t *at = pl->n == 0 ? calloc((size_t)n_cx_max, sizeof(int64_t)) : NULL;
    for (int si = 0; at && si < s->n_srcs; si++) {
        const cm_grid_t *g = &s->srcs[si].grid;
        const span_t *sp = &s->span[si];
        for (int64_t first = 0; first < cm_grid_count(g); first += g->n_cx) {
            sample_task_t *row_of = tasks + sp->chunk + first;
            int64_t x, y0, w, h;
            cm_grid_rect(g, first, &x, &y0, &w, &h);
            memset(at, 0, sizeof(int64_t) * (size_t)g->n_cx);
            for (int64_t y = y0; y < y0 + h; y++) {
                int64_t row_end = sp->px + (y + 1) * g->width;
                for (int64_t cx = 0; cx < g->n_cx; cx++)
                    for (; at[cx] < row_of[cx].n && row_of[cx].pos[at[cx]] < row_end; at[cx]++)
                        pool_put(pl, &row_of[cx], at[cx], s->d);
            }
        }
    }
    for (int64_t i = 0; i < n_tasks; i++) {
        for (int64_t j = 0; !at && j < tasks[i].n; j++) pool_put(pl, &tasks[i], j, s->d);
        free(tasks[i].pts);
        free(tasks[i].pos);
        free(tasks[i].hash);
        tasks[i] = (sample_task_t){0};
    }
    free(at);
    return true;
}

/* Drops the pool's points that a lower threshold no longer keeps. */
static void pool_filter(pool_t *pl, const sampler_t *s)
{
    int64_t kept = 0;
    for (int64_t i = 0; i < pl->n; i++) {
        if (pl->hash[i] >= s->threshold) continue;
        memmove(pl->pts + kept * s->d, pl->pts + i * s->d, sizeof(float) * s->d);
        pl->pos[kept] = pl->pos[i];
        pl->hash[kept++] = pl->hash[i];
    }
    pl->n = kept;
}

size_t cm__sample_task_bytes(const cm_source_t *src)
{
    const cm_grid_t *g = &src->grid;
    return cm_grid_chunk_bytes(g) + (size_t)g->chunk_w * (sizeof(float) * cm_grid_features(g) + 1);
}

/* In a job of several ranks each reads a contiguous share of the chunks (of all the sources),
 * and every rank then gets every chunk's points (exchange): the sample is the one a single
 * process takes, whatever the ranks. */
static bool in_round(void *user, int64_t idx)
{
    const sample_task_t *t = (const sample_task_t *)user + idx;
    return t->s != NULL && t->mine;
}

/* Gives every rank the points of the round's chunks that the others read: each chunk's
 * [index, n, points, positions, hashes], in chunk order, gathered in rank order. */
static int exchange(sample_task_t *tasks, int64_t n_chunks, int d, cm_ctx_t *ctx)
{
    if (cm_comm_size() == 1) return 0;
    size_t point = sizeof(float) * (size_t)d + sizeof(int64_t) + sizeof(uint64_t), bytes = 0;
    for (int64_t i = 0; i < n_chunks; i++)
        if (tasks[i].s && tasks[i].mine) bytes += 2 * sizeof(int64_t) + (size_t)tasks[i].n * point;
    uint8_t *mine = malloc(bytes ? bytes : 1), *all = NULL, *at = mine;
    CM_FAIL_IF(ctx, !mine, CM_ENOMEM, "out of memory for the sample");
    for (int64_t i = 0; i < n_chunks; i++) {
        const sample_task_t *t = &tasks[i];
        if (!t->s || !t->mine) continue;
        memcpy(at, &i, sizeof i);
        memcpy(at + sizeof i, &t->n, sizeof t->n);
        at += 2 * sizeof(int64_t);
        size_t n = (size_t)t->n;
        if (!n) continue;
        memcpy(at, t->pts, sizeof(float) * (size_t)d * n);
        at += sizeof(float) * (size_t)d * n;
        memcpy(at, t->pos, sizeof(int64_t) * n);
        at += sizeof(int64_t) * n;
        memcpy(at, t->hash, sizeof(uint64_t) * n);
        at += sizeof(uint64_t) * n;
    }
    size_t total = 0;
    int rc = cm_comm_allgather(mine, bytes, &all, &total, ctx);
    free(mine);
    for (at = all; rc == 0 && at < all + total;) {
        int64_t i, n;
        memcpy(&i, at, sizeof i);
        memcpy(&n, at + sizeof i, sizeof n);
        at += 2 * sizeof(int64_t);
        sample_task_t *t = &tasks[i];
        size_t len = (size_t)n * point;
        if (!t->mine && n) {
            t->pts = malloc(sizeof(float) * (size_t)d * (size_t)n);
            t->pos = malloc(sizeof(int64_t) * (size_t)n);
            t->hash = malloc(sizeof(uint64_t) * (size_t)n);
            if (!t->pts || !t->pos || !t->hash) {
                rc = cm_fail(ctx, CM_ENOMEM, "out of memory for the sample");
                break;
            }
            t->n = t->cap = n;
            memcpy(t->pts, at, sizeof(float) * (size_t)d * (size_t)n);
            memcpy(t->pos, at + sizeof(float) * (size_t)d * (size_t)n, sizeof(int64_t) * (size_t)n);
            memcpy(t->hash, at + len - sizeof(uint64_t) * (size_t)n, sizeof(uint64_t) * (size_t)n);
        }
        at += len;
    }
    free(all);
    return rc;
}

/* Reads the chunks that meet the cells of round s->round, source after source (tasks: one per
 * chunk of all the sources). */
static int read_round(sampler_t *s, sample_task_t *tasks, const cm_params_t *p, cm_ctx_t *ctx)
{
    size_t bytes = 0;
    int64_t lo, hi, n_chunks = s->span[s->n_srcs].chunk;
    cm_comm_share(n_chunks, cm_comm_rank(), &lo, &hi);
    for (int si = 0; si < s->n_srcs; si++) {
        const cm_grid_t *g = &s->srcs[si].grid;
        const span_t *sp = &s->span[si];
        size_t b = cm__sample_task_bytes(&s->srcs[si]);
        for (int64_t i = 0; i < cm_grid_count(g); i++) {
            int64_t x, y, w, h;
            cm_grid_rect(g, i, &x, &y, &w, &h);
            bool meets = false;
            for (int64_t cy = y / CELL; cy <= (y + h - 1) / CELL && !meets; cy++)
                for (int64_t cx = x / CELL; cx <= (x + w - 1) / CELL && !meets; cx++)
                    meets = s->round_of[sp->cell + cy * sp->cells_x + cx] == s->round;
            int64_t at = sp->chunk + i;
            tasks[at] = (sample_task_t){
                .s = meets ? s : NULL, .src = si, .chunk = i, .mine = at >= lo && at < hi};
            if (meets && b > bytes) bytes = b;
        }
    }
    cm__items_t chunks = {.n = n_chunks,
                          .each = sample_chunk,
                          .want = in_round,
                          .user = tasks,
                          .work_bytes = bytes,
                          .kind = "sample",
                          .counted = true};
    CM_TRY(cm__run_items(&chunks, p, "sample", ctx));
    return exchange(tasks, n_chunks, s->d, ctx);
}

/* The area of a cell of the shared list: found by its source (a binary search of the spans),
 * clipped to that source's image. */
static double cell_area(const sampler_t *s, int64_t cell)
{
    int lo = 0, hi = s->n_srcs - 1;
    while (lo < hi) { /* the last source whose first cell is at or before cell */
        int mid = (lo + hi + 1) / 2;
        if (s->span[mid].cell <= cell)
            lo = mid;
        else
            hi = mid - 1;
    }
    const cm_grid_t *g = &s->srcs[lo].grid;
    int64_t local = cell - s->span[lo].cell;
    int64_t cx = local % s->span[lo].cells_x, cy = local / s->span[lo].cells_x;
    return (double)((cx + 1) * CELL < g->width ? CELL : g->width - cx * CELL) *
           (double)((cy + 1) * CELL < g->height ? CELL : g->height - cy * CELL);
}

/* The spans of the sources (n_srcs + 1 of them: the last holds the totals); CM_EINPUT when
 * the sources do not agree in bands, alpha and sample type, or their pixels are too many. */
static int plan_spans(const cm_source_t *srcs, int n_srcs, span_t *span, cm_ctx_t *ctx)
{
    const cm_grid_t *g0 = &srcs[0].grid;
    span[0] = (span_t){0};
    for (int i = 0; i < n_srcs; i++) {
        const cm_grid_t *g = &srcs[i].grid;
        CM_FAIL_IF(
            ctx, g->bands != g0->bands || g->alpha_band != g0->alpha_band || g->stype != g0->stype,
            CM_EINPUT, "image %d has %d bands of %s (alpha %d), image 0 %d bands of %s (alpha %d)",
            i, g->bands, cm_stype_name(g->stype), g->alpha_band, g0->bands,
            cm_stype_name(g0->stype), g0->alpha_band);
        int64_t cells_y = (g->height + CELL - 1) / CELL;
        span[i].cells_x = (g->width + CELL - 1) / CELL;
        span[i + 1] = (span_t){.cell = span[i].cell + span[i].cells_x * cells_y,
                               .chunk = span[i].chunk + cm_grid_count(g)};
        CM_FAIL_IF(ctx, !cm__add_i64(span[i].px, g->width * g->height, &span[i + 1].px), CM_EINPUT,
                   "the images hold too many pixels together");
    }
    return 0;
}

/* The cells the first round draws: half of them, from SAMPLE_CELLS_MIN to SAMPLE_CELLS_MAX. */
static int64_t first_round_cells(int64_t n_cells)
{
    int64_t n = n_cells / 2;
    n = n < SAMPLE_CELLS_MIN ? SAMPLE_CELLS_MIN : n > SAMPLE_CELLS_MAX ? SAMPLE_CELLS_MAX : n;
    return n < n_cells ? n : n_cells;
}

/* Draws cells round after round (a seeded Fisher-Yates shuffle of order, carried on from round
 * to round), each round doubling them, and reads the chunks that meet each round's cells into
 * the pool, until it holds a quarter of sample_px or every cell is drawn. */
static int draw_rounds(sampler_t *s, int64_t *order, sample_task_t *tasks, pool_t *pool,
                       const cm_params_t *p, int64_t sample_px, cm_ctx_t *ctx)
{
    int64_t n_cells = s->span[s->n_srcs].cell, n_chunks = s->span[s->n_srcs].chunk;
    int64_t n_chosen = first_round_cells(n_cells);
    uint8_t *round_of = s->round_of;
    for (int64_t i = 0; i < n_cells; i++) order[i] = i;
    cm__rng_t rng;
    cm__rng_init(&rng, p->seed, 0x63656c6c73ULL /* "cells" */);
    double area = 0.0;
    for (int64_t drawn = 0; drawn < n_cells;) {
        s->round++;
        for (; drawn < n_chosen; drawn++) {
            int64_t j = drawn + (int64_t)cm__rng_below(&rng, (uint64_t)(n_cells - drawn));
            int64_t t = order[drawn];
            order[drawn] = order[j];
            order[j] = t;
            round_of[order[drawn]] = s->round;
            area += cell_area(s, order[drawn]);
        }
        double keep = (double)sample_px / area;
        s->threshold = keep >= 1.0 ? UINT64_MAX : (uint64_t)(keep * 0x1p64);
        pool_filter(pool, s);
        CM_TRY(read_round(s, tasks, p, ctx));
        CM_FAIL_IF(ctx, !pool_take(pool, tasks, n_chunks, s), CM_ENOMEM,
                   "out of memory for the sample");
        if (pool->n >= sample_px / 4 || s->round == UINT8_MAX) break;
        n_chosen = 2 * n_chosen < n_cells ? 2 * n_chosen : n_cells;
    }
    return 0;
}

/* The pool's points in pixel order (so that the sample does not follow the order the chunks
 * were read in) into *pts_out (n rows of d), which the caller frees: the pool's own points when
 * they are in that order already (one round), else sorted. */
static int in_pixel_order(pool_t *pool, int d, float **pts_out, cm_ctx_t *ctx)
{
    int64_t n = pool->n;
    bool ordered = true;
    for (int64_t i = 1; ordered && i < n; i++) ordered = pool->pos[i - 1] < pool->pos[i];
    if (ordered) {
        *pts_out = pool->pts;
        pool->pts = NULL;
        return 0;
    }
    order_key_t *keys = malloc(sizeof(order_key_t) * (size_t)n);
    order_key_t *tmp = malloc(sizeof(order_key_t) * (size_t)n);
    float *pts = malloc(sizeof(float) * (size_t)n * d);
    bool sorted = keys && tmp && pts;
    for (int64_t i = 0; sorted && i < n; i++) keys[i] = (order_key_t){pool->pos[i], i};
    sorted = sorted && sort_by_pos(keys, tmp, n);
    for (int64_t i = 0; sorted && i < n; i++)
        memcpy(pts + i * d, pool->pts + tmp[i].at * d, sizeof(float) * d);
    free(keys);
    free(tmp);
    if (!sorted) {
        free(pts);
        return cm_fail(ctx, CM_ENOMEM, "out of memory for a sample of %lld pixels", (long long)n);
    }
    *pts_out = pts;
    return 0;
}

/* Picks the cells, reads the chunks that meet them and returns the points (about sample_px of
 * d features each, sample units) in pixel order in *pts_out, which the caller frees. */
static int take_points(const cm_source_t *srcs, int n_srcs, const cm_params_t *p, int64_t sample_px,
                       float **pts_out, int64_t *n_out, cm_ctx_t *ctx)
{
    int d = cm_grid_features(&srcs[0].grid);
    span_t *span = malloc(sizeof(span_t) * ((size_t)n_srcs + 1));
    cm__pixfmt_t *fmt = malloc(sizeof(cm__pixfmt_t) * (size_t)n_srcs);
    int rc = span && fmt ? plan_spans(srcs, n_srcs, span, ctx)
                         : cm_fail(ctx, CM_ENOMEM, "out of memory planning the sample");
    for (int i = 0; rc == 0 && i < n_srcs; i++) cm__pixfmt_init(&fmt[i], &srcs[i], NULL, NULL);
    int64_t n_cells = rc == 0 ? span[n_srcs].cell : 0, n_chunks = rc == 0 ? span[n_srcs].chunk : 0;
    int64_t *order = rc == 0 ? malloc(sizeof(int64_t) * (size_t)n_cells) : NULL;
    uint8_t *round_of = rc == 0 ? calloc((size_t)n_cells, 1) : NULL;
    sample_task_t *tasks = rc == 0 ? calloc((size_t)n_chunks, sizeof(sample_task_t)) : NULL;
    if (rc == 0 && (!order || !round_of || !tasks))
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning the sample");
    pool_t pool = {0};
    sampler_t s = {.srcs = srcs,
                   .fmt = fmt,
                   .span = span,
                   .n_srcs = n_srcs,
                   .round_of = round_of,
                   .seed = p->seed,
                   .d = d};
    if (rc == 0) rc = draw_rounds(&s, order, tasks, &pool, p, sample_px, ctx);
    if (rc == 0 && pool.n == 0)
        rc = cm_fail(ctx, CM_EINPUT,
                     "no pixel to fit on: every pixel is masked (alpha 0, nodata or not finite)");
    if (rc == 0) rc = in_pixel_order(&pool, d, pts_out, ctx);
    if (rc == 0) *n_out = pool.n;
    for (int64_t i = 0; tasks && i < n_chunks; i++) {
        free(tasks[i].pts);
        free(tasks[i].pos);
        free(tasks[i].hash);
    }
    free(pool.pts);
    free(pool.pos);
    free(pool.hash);
    free(tasks);
    free(round_of);
    free(order);
    free(fmt);
    free(span);
    return rc;
}

/* Per-feature mean and standard deviation of the sample (a constant feature gets 1), and the
 * sample standardised in place, with the arithmetic cm__to_features uses for the remap. */
static void standardise(float *pts, int64_t n, int d, double *mean, double *std)
{
    for (int b = 0; b < d; b++) {
        double sum = 0.0, sq = 0.0;
        for (int64_t i = 0; i < n; i++) sum += pts[i * d + b];
        mean[b] = sum / (double)n;
        for (int64_t i = 0; i < n; i++) {
            double t = pts[i * d + b] - mean[b];
            sq += t * t;
        }
        std[b] = sqrt(sq / (double)n);
        if (!(std[b] > 1e-12)) std[b] = 1.0;
        float shift = (float)mean[b], mul = (float)(1.0 / std[b]);
        for (int64_t i = 0; i < n; i++) pts[i * d + b] = (pts[i * d + b] - shift) * mul;
    }
}

int64_t cm__sample_px(const cm_params_t *p)
{
    /* A million pixels are plenty for the means. The size does not follow the budget, so
     * that --memory changes the speed and never the result. */
    return p->sample_px > 0 ? p->sample_px : (int64_t)1 << 20;
}

int cm_sample_take(const cm_source_t *srcs, int n_srcs, const cm_params_t *p, cm_sample_t **out,
                   cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_srcs < 1, CM_EUSAGE, "no image to sample");
    const cm_grid_t *g = &srcs[0].grid;
    CM_TRY(cm__colorspace_check(g, p->colorspace, ctx));
    cm_sample_t *s = calloc(1, sizeof *s);
    CM_FAIL_IF(ctx, !s, CM_ENOMEM, "out of memory for the sample");
    *s = (cm_sample_t){.srcs = srcs,
                       .n_srcs = n_srcs,
                       .d = cm_grid_features(g),
                       .seed = p->seed,
                       .colorspace = p->colorspace,
                       .scale = p->scale};
    int64_t sample_px = cm__sample_px(p);
    s->sample_px = sample_px;
    int rc = take_points(srcs, n_srcs, p, sample_px, &s->pts, &s->n, ctx);
    /* The points hold samples: their features are their Lab colours, made as the remap does. */
    for (int64_t i = 0; rc == 0 && s->colorspace == CM_COLORSPACE_LAB && i < s->n; i++)
        cm__lab_features(g->stype, s->pts + i * s->d);
    if (rc == 0 && s->scale == CM_SCALE_STANDARD) {
        s->mean = malloc(sizeof(double) * s->d);
        s->std = malloc(sizeof(double) * s->d);
        if (s->mean && s->std)
            standardise(s->pts, s->n, s->d, s->mean, s->std);
        else
            rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    }
    if (rc < 0) {
        cm_sample_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cm_sample_free(cm_sample_t *s)
{
    if (!s) return;
    free(s->pts);
    free(s->mean);
    free(s->std);
    free(s->hist_keys);
    free(s->hist_weights);
    free(s);
}
