/* The exact modes: Lloyd iterations over every pixel of the image (one pass over all chunks
 * per iteration), and the same iterations over the image's colour histogram (8-bit images of
 * up to 3 colour bands), where an iteration costs the number of distinct colours, not pixels.
 * Sums are exact integers where the features are (unscaled integer samples), so both modes
 * give the very same centres from the same start. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum { BLOCK = 4096, HIST_PARTS = 64 };

/* Per-centre sums: exact int64 for integer features, double otherwise; and counts. */
typedef struct sums {
    int64_t *isum; /* k * d, or NULL */
    double *fsum;  /* k * d, or NULL */
    int64_t *count;
} sums_t;

static bool sums_alloc(sums_t *s, int k, int d, bool exact)
{
    size_t n = (size_t)k * d;
    *s = (sums_t){.count = calloc((size_t)k, sizeof(int64_t))};
    if (exact)
        s->isum = calloc(n, sizeof(int64_t));
    else
        s->fsum = calloc(n, sizeof(double));
    return s->count && (s->isum || s->fsum);
}

static void sums_free(sums_t *s)
{
    free(s->isum);
    free(s->fsum);
    free(s->count);
    *s = (sums_t){0};
}

/* Adds w copies of point x (d features) to centre j. */
static inline void sums_add(sums_t *s, int d, int j, const float *x, int64_t w)
{
    if (s->isum)
        for (int b = 0; b < d; b++) s->isum[(size_t)j * d + b] += (int64_t)x[b] * w;
    else
        for (int b = 0; b < d; b++) s->fsum[(size_t)j * d + b] += (double)x[b] * (double)w;
    s->count[j] += w;
}

static void sums_merge(sums_t *into, const sums_t *from, int k, int d)
{
    for (size_t i = 0; i < (size_t)k * d; i++) {
        if (into->isum) into->isum[i] += from->isum[i];
        if (into->fsum) into->fsum[i] += from->fsum[i];
    }
    for (int j = 0; j < k; j++) into->count[j] += from->count[j];
}

/* What a part saw besides its sums: its inertia, and the point farthest from every centre
 * (where an empty centre goes next). */
typedef struct part_stat {
    double inertia;
    float far_d2; /* -1: none */
    float far[CM_BANDS_MAX];
} part_stat_t;

/* Whether a point at squared distance d2 with features x is farther than the part's farthest
 * point; among equally far points the one of smaller features (compared band by band) counts
 * as farther, so the farthest point of the whole image is one value, however it is split. */
static inline bool farther(const part_stat_t *st, const float *x, float d2, int d)
{
    if (d2 != st->far_d2) return d2 > st->far_d2;
    for (int b = 0; b < d; b++)
        if (x[b] != st->far[b]) return x[b] < st->far[b];
    return false;
}

/* Part idx's record, emptied for the part that is starting. */
static inline part_stat_t *part_begin(part_stat_t *stat, int64_t idx)
{
    stat[idx] = (part_stat_t){.far_d2 = -1.f};
    return &stat[idx];
}

/* Keeps x as the part's farthest point when it is farther than the one kept. */
static inline void note_far(part_stat_t *st, const float *x, float d2, int d)
{
    if (!farther(st, x, d2, d)) return;
    st->far_d2 = d2;
    memcpy(st->far, x, sizeof(float) * d);
}

/* The shared state of one iteration. */
typedef struct iteration {
    const cm_source_t *src;
    cm__pixfmt_t fmt;
    int k, d;
    bool exact; /* integer sums */
    cm_kernel_t kernel;
    float *soa; /* centres band by band */
    sums_t total;
    sums_t *parts; /* per chunk (Lloyd) or per part (histogram) */
    double inertia;
    part_stat_t *stat; /* per part */
    /* histogram: distinct colours (keys) and counts; or points: the fitting sample */
    const uint32_t *colors;
    const uint32_t *weights;
    int64_t n_colors;
    const float *pts;
    int64_t n_pts;
    bool here; /* parts run in the calling thread, in order (itself a task of a graph) */
    /* The parts are shared among the ranks of a job: this one runs [lo, hi) (everything,
     * alone), and the sums are folded in part order across the ranks (reduce_ranks). */
    bool ranks;
    int64_t lo, hi;
} iteration_t;

/* Lloyd: assigns every valid pixel of a chunk and sums it into the chunk's own sums. */
static int lloyd_part(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    iteration_t *it = user;
    const cm_grid_t *g = &it->src->grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, idx, &x, &y, &w, &h);
    sums_t *s = &it->parts[idx];
    void *buf = malloc(cm_grid_chunk_bytes(g));
    float *feat = malloc(sizeof(float) * BLOCK * (size_t)it->d);
    float *dist = malloc(sizeof(float) * (size_t)it->k), *d2 = malloc(sizeof(float) * BLOCK);
    uint8_t *valid = malloc(BLOCK);
    uint16_t *labels = malloc(sizeof(uint16_t) * BLOCK);
    int rc = buf && feat && dist && d2 && valid && labels && sums_alloc(s, it->k, it->d, it->exact)
                 ? it->src->read(it->src->self, worker, idx, buf, ctx)
                 : cm_fail(ctx, CM_ENOMEM, "out of memory in chunk %lld", (long long)idx);
    part_stat_t *st = part_begin(it->stat, idx);
    for (int64_t first = 0; rc == 0 && first < w * h; first += BLOCK) {
        int64_t m = w * h - first < BLOCK ? w * h - first : BLOCK;
        cm__to_features(&it->fmt, buf, first, m, feat, valid);
        cm__assign_block(it->kernel, it->soa, it->k, it->d, feat, m, valid, labels, d2, dist);
        for (int64_t i = 0; i < m; i++) {
            if (!valid[i]) continue;
            sums_add(s, it->d, labels[i], feat + i * it->d, 1);
            st->inertia += d2[i];
            note_far(st, feat + i * it->d, d2[i], it->d);
        }
    }
    free(labels);
    free(valid);
    free(d2);
    free(dist);
    free(feat);
    free(buf);
    return rc;
}

/* Adds a part's sums into the total, in part order (the tasks are chained). */
static int merge_part(void *user, int64_t idx, cm_ctx_t *ctx)
{
    iteration_t *it = user;
    sums_merge(&it->total, &it->parts[idx], it->k, it->d);
    it->inertia += it->stat[idx].inertia;
    sums_free(&it->parts[idx]);
    return 0;
}

/* Histogram: assigns a slice of the distinct colours, each weighted by its count. */
static int histogram_part(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    iteration_t *it = user;
    int64_t first = it->n_colors * idx / HIST_PARTS;
    int64_t last = it->n_colors * (idx + 1) / HIST_PARTS;
    sums_t *s = &it->parts[idx];
    float *dist = malloc(sizeof(float) * (size_t)it->k);
    if (!dist || !sums_alloc(s, it->k, it->d, it->exact)) {
        free(dist);
        return cm_fail(ctx, CM_ENOMEM, "out of memory");
    }
    part_stat_t *st = part_begin(it->stat, idx);
    for (int64_t i = first; i < last; i++) {
        /* The colour's features, as cm__to_features makes them from its samples. */
        uint8_t px[3];
        float x[3];
        for (int b = 0; b < it->d; b++) px[b] = (uint8_t)(it->colors[i] >> (8 * (it->d - 1 - b)));
        for (int b = 0; b < it->d; b++) {
            x[b] = (float)px[b];
            if (it->fmt.scaled && !it->fmt.lab) x[b] = (x[b] - it->fmt.shift[b]) * it->fmt.mul[b];
        }
        if (it->fmt.lab) {
            cm__lab_features(CM_U8, x);
            for (int b = 0; it->fmt.scaled && b < it->d; b++)
                x[b] = (x[b] - it->fmt.shift[b]) * it->fmt.mul[b];
        }
        float d2;
        int j = cm__nearest_soa(it->soa, it->k, it->d, x, dist, &d2);
        sums_add(s, it->d, j, x, it->weights[i]);
        st->inertia += (double)d2 * it->weights[i];
        note_far(st, x, d2, it->d);
    }
    free(dist);
    return 0;
}

/* Points: assigns a slice of the fitting sample, a block at a time with p's kernel. */
static int points_part(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    iteration_t *it = user;
    int64_t first = it->n_pts * idx / HIST_PARTS, last = it->n_pts * (idx + 1) / HIST_PARTS;
    sums_t *s = &it->parts[idx];
    float *dist = malloc(sizeof(float) * (size_t)it->k), *d2 = malloc(sizeof(float) * BLOCK);
    uint16_t *labels = malloc(sizeof(uint16_t) * BLOCK);
    if (!dist || !d2 || !labels || !sums_alloc(s, it->k, it->d, false)) {
        free(labels);
        free(d2);
        free(dist);
        return cm_fail(ctx, CM_ENOMEM, "out of memory");
    }
    part_stat_t *st = part_begin(it->stat, idx);
    for (int64_t at = first; at < last; at += BLOCK) {
        int64_t m = last - at < BLOCK ? last - at : BLOCK;
        const float *x = it->pts + at * it->d;
        cm__assign_block(it->kernel, it->soa, it->k, it->d, x, m, NULL, labels, d2, dist);
        for (int64_t i = 0; i < m; i++) {
            sums_add(s, it->d, labels[i], x + i * it->d, 1);
            st->inertia += d2[i];
            note_far(st, x + i * it->d, d2[i], it->d);
        }
    }
    free(labels);
    free(d2);
    free(dist);
    return 0;
}

/* ---- the ranks of a job ----
 * Rank r runs its contiguous share of the parts and keeps their sums; the totals are then made
 * as one process makes them, part after part: rank 0 adds its parts to zero, each next rank its
 * own to what the rank before it made (cm_comm_chain). Every rank gets every part's record,
 * for relocate. */

static bool in_share(void *user, int64_t idx)
{
    const iteration_t *it = user;
    return idx >= it->lo && idx < it->hi;
}

/* The totals as the chain carries them: counts, sums (int64 or double: 8 bytes each), inertia. */
static size_t carried_bytes(const iteration_t *it)
{
    return sizeof(int64_t) * (size_t)it->k * (1 + (size_t)it->d) + sizeof(double);
}

static void carry(iteration_t *it, uint8_t *acc, bool out)
{
    size_t counts = sizeof(int64_t) * (size_t)it->k, sums = counts * (size_t)it->d;
    void *s = it->total.isum ? (void *)it->total.isum : (void *)it->total.fsum;
    if (out) {
        memcpy(acc, it->total.count, counts);
        memcpy(acc + counts, s, sums);
        memcpy(acc + counts + sums, &it->inertia, sizeof(double));
    } else {
        memcpy(it->total.count, acc, counts);
        memcpy(s, acc + counts, sums);
        memcpy(&it->inertia, acc + counts + sums, sizeof(double));
    }
}

static void fold_share(void *user, void *acc)
{
    iteration_t *it = user;
    carry(it, acc, false);
    for (int64_t i = it->lo; i < it->hi; i++) merge_part(it, i, NULL);
    carry(it, acc, true);
}

static int reduce_ranks(iteration_t *it, int64_t n_parts, cm_ctx_t *ctx)
{
    uint8_t *all = NULL, *acc = calloc(1, carried_bytes(it));
    size_t all_bytes = 0;
    CM_FAIL_IF(ctx, !acc, CM_ENOMEM, "out of memory");
    int rc = cm_comm_allgather(it->stat + it->lo, sizeof(part_stat_t) * (size_t)(it->hi - it->lo),
                               &all, &all_bytes, ctx);
    if (rc == 0 && all_bytes != sizeof(part_stat_t) * (size_t)n_parts)
        rc = cm_fail(ctx, CM_EINTERNAL, "the ranks gathered %zu bytes of part records", all_bytes);
    if (rc == 0) memcpy(it->stat, all, all_bytes);
    free(all);
    if (rc == 0 && cm_comm_test_unordered()) { /* the negative control: sums in MPI's order */
        fold_share(it, acc);
        carry(it, acc, false);
        size_t n = (size_t)it->k * it->d;
        cm_comm_sum_i64(it->total.count, (size_t)it->k);
        if (it->total.isum) cm_comm_sum_i64(it->total.isum, n);
        if (it->total.fsum) cm_comm_sum_f64_unordered(it->total.fsum, n);
        cm_comm_sum_f64_unordered(&it->inertia, 1);
    } else if (rc == 0) {
        cm_comm_chain(acc, carried_bytes(it), fold_share, it);
        carry(it, acc, false);
    }
    free(acc);
    return rc;
}

/* One iteration: n_parts part tasks, each followed by its merge in part order. */
static int run_iteration(iteration_t *it, int64_t n_parts,
                         int (*part)(void *, int64_t, int, cm_ctx_t *), size_t part_bytes,
                         const cm_params_t *p, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !sums_alloc(&it->total, it->k, it->d, it->exact), CM_ENOMEM, "out of memory");
    it->inertia = 0.0;
    if (it->here) {
        int rc = 0;
        for (int64_t i = 0; rc == 0 && i < n_parts; i++) {
            rc = p->cancel && *p->cancel ? cm_fail(ctx, CM_ECANCELED, "interrupted")
                                         : part(it, i, 0, ctx);
            if (rc == 0) rc = merge_part(it, i, ctx);
        }
        for (int64_t i = 0; i < n_parts; i++) sums_free(&it->parts[i]);
        return rc;
    }
    cm__items_t parts = {.n = n_parts,
                         .each = part,
                         .then = it->ranks ? NULL : merge_part,
                         .want = it->ranks ? in_share : NULL,
                         .user = it,
                         .work_bytes = part_bytes,
                         .kind = "assign",
                         .then_kind = "reduce"};
    if (it->ranks)
        for (int64_t i = 0; i < n_parts; i++) it->stat[i] = (part_stat_t){.far_d2 = -1.f};
    int rc = cm__run_items(&parts, p, "fit", ctx);
    if (rc == 0 && it->ranks) rc = reduce_ranks(it, n_parts, ctx);
    for (int64_t i = 0; i < n_parts; i++) sums_free(&it->parts[i]);
    return rc;
}

/* Moves an empty centre j to the point farthest from every centre (see farther), as
 * scikit-learn does; false when every point lies on a centre (fewer distinct values than k),
 * where it stays. One centre per iteration: the next farthest point is only known once the
 * moved centre has taken its points, and so the result does not depend on the parts. */
static bool relocate(iteration_t *it, int64_t n_parts, int j, double *c)
{
    int64_t far = -1;
    for (int64_t q = 0; q < n_parts; q++) {
        const part_stat_t *st = &it->stat[q];
        if (st->far_d2 > 0.f && (far < 0 || farther(&it->stat[far], st->far, st->far_d2, it->d)))
            far = q;
    }
    if (far < 0) return false;
    for (int b = 0; b < it->d; b++) c[(size_t)j * it->d + b] = it->stat[far].far[b];
    return true;
}

/* Moves every centre that took points to their mean, and the first empty one to the farthest
 * point; returns the largest move, in sample units (std scales it back when the features are
 * standardised), infinite when a centre was relocated. */
static double update(iteration_t *it, int64_t n_parts, double *c, const double *std)
{
    double shift_max = 0.0;
    for (int j = 0; j < it->k; j++) {
        int64_t n = it->total.count[j];
        if (n == 0 && isfinite(shift_max) && relocate(it, n_parts, j, c)) shift_max = INFINITY;
        if (n == 0) continue;
        double shift = 0.0;
        for (int b = 0; b < it->d; b++) {
            size_t at = (size_t)j * it->d + b;
            double sum = it->total.isum ? (double)it->total.isum[at] : it->total.fsum[at];
            double next = sum / (double)n, moved = (next - c[at]) * (std ? std[b] : 1.0);
            shift += moved * moved;
            c[at] = next;
        }
        if (shift > shift_max) shift_max = shift;
    }
    return sqrt(shift_max);
}

/* The histogram of an 8-bit image: counts of every color of its feature bands. */
typedef struct histogram {
    const cm_source_t *src;
    const cm__pixfmt_t *fmt;
    uint32_t *counts;
    int64_t lo, hi; /* this rank's chunks */
} histogram_t;

static bool in_hist_share(void *user, int64_t idx)
{
    const histogram_t *t = user;
    return idx >= t->lo && idx < t->hi;
}

/* Adds up the counts of every rank's chunks, a slice at a time, as exact integers. */
static int sum_counts(uint32_t *counts, size_t size, cm_ctx_t *ctx)
{
    enum { SLICE = 1 << 20 };
    if (cm_comm_size() == 1) return 0;
    int64_t *wide = malloc(sizeof(int64_t) * SLICE);
    CM_FAIL_IF(ctx, !wide, CM_ENOMEM, "out of memory for a histogram");
    int rc = 0;
    for (size_t at = 0; at < size; at += SLICE) {
        size_t n = size - at < SLICE ? size - at : SLICE;
        for (size_t i = 0; i < n; i++) wide[i] = counts[at + i];
        cm_comm_sum_i64(wide, n);
        for (size_t i = 0; i < n; i++) {
            if (wide[i] > UINT32_MAX && rc == 0)
                rc = cm_fail(ctx, CM_EINPUT, "a colour appears more than 2^32 times");
            counts[at + i] = (uint32_t)wide[i];
        }
    }
    free(wide);
    return rc;
}

static int histogram_chunk(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    const histogram_t *t = user;
    const cm_grid_t *g = &t->src->grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, idx, &x, &y, &w, &h);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    float *feat = malloc(sizeof(float) * BLOCK * (size_t)t->fmt->d);
    uint8_t *valid = malloc(BLOCK);
    int rc = buf && feat && valid
                 ? t->src->read(t->src->self, worker, idx, buf, ctx)
                 : cm_fail(ctx, CM_ENOMEM, "out of memory in chunk %lld", (long long)idx);
    for (int64_t first = 0; rc == 0 && first < w * h; first += BLOCK) {
        int64_t m = w * h - first < BLOCK ? w * h - first : BLOCK;
        cm__to_features(t->fmt, buf, first, m, feat, valid); /* for the mask */
        for (int64_t i = 0; i < m; i++) {
            if (!valid[i]) continue;
            const uint8_t *px = buf + (first + i) * g->bands;
            uint32_t key = cm__color_key(t->fmt, px);
            if (__atomic_add_fetch(&t->counts[key], 1, __ATOMIC_RELAXED) == 0)
                rc = cm_fail(ctx, CM_EINPUT, "a colour appears more than 2^32 times");
        }
    }
    free(valid);
    free(feat);
    free(buf);
    return rc;
}

/* Builds the list of distinct colors (in color order) and their counts. */
static int build_histogram(const cm_source_t *src, const cm__pixfmt_t *fmt, const cm_params_t *p,
                           uint32_t **keys, uint32_t **weights, int64_t *n, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    size_t size = (size_t)1 << (8 * fmt->d);
    histogram_t hist = {.src = src, .fmt = fmt, .counts = calloc(size, sizeof(uint32_t))};
    CM_FAIL_IF(ctx, !hist.counts, CM_ENOMEM, "out of memory for a histogram");
    cm_comm_share(cm_grid_count(g), cm_comm_rank(), &hist.lo, &hist.hi);
    cm__items_t chunks = {.n = cm_grid_count(g),
                          .each = histogram_chunk,
                          .want = in_hist_share,
                          .user = &hist,
                          .work_bytes = cm_grid_chunk_bytes(g),
                          .kind = "histogram",
                          .counted = true};
    int rc = cm__run_items(&chunks, p, "histogram", ctx);
    if (rc == 0) rc = sum_counts(hist.counts, size, ctx);
    int64_t distinct = 0;
    for (size_t i = 0; rc == 0 && i < size; i++) distinct += hist.counts[i] != 0;
    if (rc == 0) {
        *keys = malloc(sizeof(uint32_t) * (size_t)(distinct ? distinct : 1));
        *weights = malloc(sizeof(uint32_t) * (size_t)(distinct ? distinct : 1));
        if (!*keys || !*weights) rc = cm_fail(ctx, CM_ENOMEM, "out of memory for a histogram");
    }
    for (size_t i = 0, at = 0; rc == 0 && i < size; i++)
        if (hist.counts[i]) {
            (*keys)[at] = (uint32_t)i;
            (*weights)[at++] = hist.counts[i];
        }
    *n = distinct;
    free(hist.counts);
    return rc;
}

int cm__polish(const float *pts, int64_t n, const cm_params_t *p, const cm__lloyd_t *how,
               cm_model_t *m, double *inertia, cm_ctx_t *ctx)
{
    int k = m->k, d = m->d;
    iteration_t it = {
        .k = k, .d = d, .pts = pts, .n_pts = n, .kernel = p->kernel, .here = how->here};
    it.soa = malloc(sizeof(float) * (size_t)k * d);
    it.parts = calloc(HIST_PARTS, sizeof(sums_t));
    it.stat = calloc(HIST_PARTS, sizeof(part_stat_t));
    int rc = it.soa && it.parts && it.stat ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory");
    for (int iter = 0; rc == 0 && iter < how->max_iter; iter++) {
        cm__centroids_soa(m->centroids, k, d, it.soa);
        rc = run_iteration(&it, HIST_PARTS, points_part, 0, p, ctx);
        if (rc < 0) break;
        double shift = update(&it, HIST_PARTS, m->centroids, m->std);
        for (int j = 0; j < k; j++) m->counts[j] = it.total.count[j];
        bool slow = how->gain > 0 && iter > 0 && *inertia - it.inertia < how->gain * it.inertia;
        *inertia = it.inertia;
        sums_free(&it.total);
        if (shift < p->tol || (slow && isfinite(shift))) break; /* not right after a relocation */
    }
    sums_free(&it.total);
    free(it.stat);
    free(it.parts);
    free(it.soa);
    return rc;
}

int cm__fit_exact(const cm_source_t *src, const cm_params_t *p, cm_algorithm_t algorithm,
                  cm_sample_t *sample, cm_model_t *m, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int k = m->k, d = m->d;
    bool histogram = algorithm == CM_ALG_HISTOGRAM;
    if (histogram && (g->stype != CM_U8 || d > 3))
        return cm_fail_about(
            ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_ALGORITHM, algorithm, 0},
            CM_NAMED("the histogram algorithm") " needs 8-bit samples and at "
                                                "most 3 colour bands, not %d of %s",
            d, cm_stype_name(g->stype));
    iteration_t it = {.src = src, .k = k, .d = d, .kernel = p->kernel};
    it.ranks = !histogram && cm_comm_size() > 1;
    int64_t n_parts = histogram ? HIST_PARTS : cm_grid_count(g);
    cm_comm_share(n_parts, cm_comm_rank(), &it.lo, &it.hi);
    cm__pixfmt_init(&it.fmt, src, m->mean, m->std);
    it.fmt.lab = m->colorspace == CM_COLORSPACE_LAB;
    it.exact = !it.fmt.scaled && !it.fmt.lab && g->stype != CM_F32;
    uint32_t *keys = NULL, *weights = NULL;
    it.soa = malloc(sizeof(float) * (size_t)k * d);
    it.parts = calloc((size_t)n_parts, sizeof(sums_t));
    it.stat = calloc((size_t)n_parts, sizeof(part_stat_t));
    int rc = it.soa && it.parts && it.stat ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0 && histogram && sample && sample->hist_keys) { /* counted by an earlier fit */
        it.colors = sample->hist_keys;
        it.weights = sample->hist_weights;
        it.n_colors = sample->hist_n;
    } else if (rc == 0 && histogram) {
        rc = build_histogram(src, &it.fmt, p, &keys, &weights, &it.n_colors, ctx);
        it.colors = keys;
        it.weights = weights;
        if (rc == 0 && sample) { /* the sample owns it from now on */
            sample->hist_keys = keys;
            sample->hist_weights = weights;
            sample->hist_n = it.n_colors;
            keys = weights = NULL;
        }
    }
    size_t part_bytes =
        histogram ? 0 : cm_grid_chunk_bytes(g) + sizeof(float) * BLOCK * (size_t)d + BLOCK;
    if (rc == 0 && !histogram && src->keep && p->max_iter > 1) {
        cm_ctx_t ignored; /* without a store, chunks are decoded again: slower, as correct */
        cm_ctx_init(&ignored);
        src->keep(src->self, &ignored);
    }
    /* The histogram's iterations cost its distinct colours: rank 0 makes them alone, and
     * gives the others the model (fit.c), as it does for mini-batch. */
    bool iterate = !histogram || cm_comm_rank() == 0;
    int iter = 0;
    bool converged = false;
    while (rc == 0 && iterate && iter < p->max_iter && !converged) {
        cm__centroids_soa(m->centroids, k, d, it.soa);
        rc = run_iteration(&it, n_parts, histogram ? histogram_part : lloyd_part, part_bytes, p,
                           ctx);
        if (rc < 0) break;
        double shift = update(&it, n_parts, m->centroids, m->std);
        for (int j = 0; j < k; j++) m->counts[j] = it.total.count[j];
        m->inertia = it.inertia;
        sums_free(&it.total);
        iter++;
        converged = shift < p->tol;
        if (p->progress) p->progress(p->progress_user, "fit", iter, converged ? iter : p->max_iter);
    }
    sums_free(&it.total);
    m->iterations = iter;
    m->converged = converged;
    free(keys);
    free(weights);
    free(it.stat);
    free(it.parts);
    free(it.soa);
    return rc;
}
