/* The fit: a seeded sample of chunks read once through the scheduler, k-means++ on it, then
 * mini-batch k-means (Sculley 2010) whose steps are scheduler tasks reduced in fixed order. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    SAMPLE_CHUNKS_MAX = 256,   /* chunks decoded for the sample: a small share of a pass */
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

/* ---- the sample ---- */

typedef struct sampler {
    const cm_source_t *src;
    const int64_t *chunks; /* chunk index per slot, ascending */
    int64_t quota;         /* points wanted per chunk */
    int d;
    uint64_t seed;
    float *pts;            /* slot i writes at pts + i * quota * d */
    int64_t *got;          /* points written per slot */
} sampler_t;

typedef struct sample_task {
    sampler_t *s;
    int slot;
} sample_task_t;

static int sample_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const sample_task_t *t = arg;
    const sampler_t *s = t->s;
    const cm_grid_t *g = &s->src->grid;
    int64_t idx = s->chunks[t->slot], x, y, w, h;
    cm_grid_rect(g, idx, &x, &y, &w, &h);

    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    CM_FAIL_IF(ctx, !buf, CM_ENOMEM, "out of memory reading chunk %lld", (long long)idx);
    int rc = s->src->read(s->src->self, worker, idx, buf, ctx);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    int64_t n = w * h, valid = 0;
    for (int64_t i = 0; i < n; i++) valid += cm__pixel_valid(buf + i * g->bands, g->alpha_band);

    /* Selection sampling (Knuth's algorithm S): each valid pixel is kept with probability
     * wanted/remaining, which gives a uniform subset of exactly min(quota, valid) pixels. */
    cm_rng_t rng;
    cm_rng_init(&rng, s->seed, 0x73616d70ULL << 32 ^ (uint64_t)idx);
    int64_t want = valid < s->quota ? valid : s->quota, left = valid, kept = 0;
    float *out = s->pts + (size_t)t->slot * (size_t)s->quota * (size_t)s->d;
    for (int64_t i = 0; i < n && kept < want; i++) {
        const uint8_t *px = buf + i * g->bands;
        if (!cm__pixel_valid(px, g->alpha_band)) continue;
        if ((int64_t)cm_rng_below(&rng, (uint64_t)left) < want - kept) {
            cm__features_u8(px, g->bands, g->alpha_band, out + kept * s->d);
            kept++;
        }
        left--;
    }
    s->got[t->slot] = kept;
    free(buf);
    return 0;
}

/* Reads a seeded subset of chunks and keeps up to sample_px valid pixels from them, spread
 * evenly over the chosen chunks, in chunk order. */
static int take_sample(const cm_source_t *src, const cm_params_t *p, int64_t sample_px,
                       float **pts_out, int64_t *n_out, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int64_t n_chunks = cm_grid_count(g);
    int n_slots = n_chunks < SAMPLE_CHUNKS_MAX ? (int)n_chunks : SAMPLE_CHUNKS_MAX;
    int d = cm_grid_features(g);
    int64_t quota = (sample_px + n_slots - 1) / n_slots;
    if (quota > g->chunk_w * g->chunk_h) quota = g->chunk_w * g->chunk_h;

    int rc = CM_ENOMEM;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n_chunks);
    int64_t *got = calloc((size_t)n_slots, sizeof(int64_t));
    sample_task_t *tasks = malloc(sizeof(sample_task_t) * (size_t)n_slots);
    float *pts = malloc(sizeof(float) * (size_t)n_slots * (size_t)quota * (size_t)d);
    cm_graph_t *graph = cm_graph_create();
    if (!order || !got || !tasks || !pts || !graph) {
        cm_fail(ctx, CM_ENOMEM, "out of memory for a sample of %lld pixels", (long long)sample_px);
        goto cleanup;
    }

    /* A seeded partial Fisher-Yates shuffle picks the chunks; sorted, they are read in file
     * order. */
    for (int64_t i = 0; i < n_chunks; i++) order[i] = i;
    cm_rng_t rng;
    cm_rng_init(&rng, p->seed, 0x6368756e6bULL /* "chunk" */);
    for (int i = 0; i < n_slots; i++) {
        int64_t j = i + (int64_t)cm_rng_below(&rng, (uint64_t)(n_chunks - i));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int i = 1; i < n_slots; i++) /* insertion sort: n_slots is small */
        for (int j = i; j > 0 && order[j - 1] > order[j]; j--) {
            int64_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }

    sampler_t s = {.src = src, .chunks = order, .quota = quota, .d = d, .seed = p->seed,
                   .pts = pts, .got = got};
    for (int i = 0; i < n_slots; i++) {
        tasks[i] = (sample_task_t){&s, i};
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
    for (int i = 0; i < n_slots; i++) {
        memmove(pts + n * d, pts + (size_t)i * (size_t)quota * (size_t)d,
                sizeof(float) * (size_t)got[i] * (size_t)d);
        n += got[i];
    }
    if (n == 0) {
        rc = cm_fail(ctx, CM_EINPUT, "no pixel to fit on: every sampled pixel is transparent");
        goto cleanup;
    }
    *pts_out = pts;
    *n_out = n;
    pts = NULL;
    rc = 0;
cleanup:
    cm_graph_free(graph);
    free(pts);
    free(tasks);
    free(got);
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
        double *a = acc + (size_t)cm_nearest(s->cf, k, d, x, NULL) * (size_t)(d + 1);
        for (int b = 0; b < d; b++) a[b] += x[b];
        a[d] += 1.0;
    }
    return 0;
}

/* Moves centres that went (nearly) unused to the sample points farthest from every centre,
 * one at a time, as k-means++ would. Centres stay where they are when no point is left that
 * differs from all centres (fewer distinct values than k). */
static void reseed_starved(stepper_t *s, int step)
{
    int k = s->k, d = s->d;
    double vmax = 0.0;
    for (int j = 0; j < k; j++)
        if (s->v[j] > vmax) vmax = s->v[j];
    int64_t m = s->per_part * PARTS_PER_STEP;
    float *d2 = NULL;
    int64_t *idx = NULL;
    for (int j = 0; j < k; j++) {
        if (s->v[j] > 0 && s->v[j] >= 1e-3 * vmax) continue;
        if (!d2) {
            d2 = malloc(sizeof(float) * (size_t)m);
            idx = malloc(sizeof(int64_t) * (size_t)m);
            if (!d2 || !idx) break; /* reseeding is an improvement, not a necessity */
            cm_rng_t rng;
            cm_rng_init(&rng, s->p->seed, draw_key(step, 0xffff));
            for (int64_t i = 0; i < m; i++) {
                idx[i] = (int64_t)cm_rng_below(&rng, (uint64_t)s->n);
                cm_nearest(s->cf, k, d, s->pts + idx[i] * d, &d2[i]);
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
        s->v[j] = 0.0;
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
    if (t->step % RESEED_EVERY == RESEED_EVERY - 1) reseed_starved(s, t->step);
    s->steps_done = t->step + 1;
    s->calm = sqrt(shift_max) < s->p->tol ? s->calm + 1 : 0;
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

    int64_t sample_px = p->sample_px;
    if (sample_px <= 0) {
        /* At most an eighth of the budget, at most a million pixels: plenty for the means. */
        sample_px = (int64_t)(p->budget_bytes / 8 / (sizeof(float) * (size_t)d));
        if (sample_px > (1 << 20)) sample_px = 1 << 20;
        if (sample_px < 4096) sample_px = 4096;
    }

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
