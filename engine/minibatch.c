/* Mini-batch k-means (Sculley 2010) on the in-memory sample: each step's parts draw their share
 * of the batch with a generator keyed by (seed, step, part) and sum it against the centroids;
 * an update task reduces the parts in part order and moves each centroid with its own learning
 * rate. Starts where the model's centroids are; fit.c chooses them and settles the result. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    PARTS_PER_STEP = 8, /* tasks per step: fixed, so results do not follow threads */
    RESEED_EVERY = 10,  /* steps between checks for empty centroids */
    WINDOW = 64,        /* steps per graph */
    DRAW_BLOCK = 512,   /* points a part draws, then labels, at a time */
};

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
    int64_t batch;     /* pixels per step, split over the parts */
    double *c;         /* centres (k * d), moved by the update tasks */
    float *cf;         /* the same as floats, read by the part tasks of a step */
    float *soa;        /* and band by band, for the block kernel */
    double *v;         /* points taken by each centre so far: 1/v is its learning rate */
    double *sum;       /* d: scratch of the update */
    const double *std; /* d: the scaling of the features, or NULL */
    double *partials;  /* per part: k * (d + 1) sums (d feature sums, then the count) */
    float *draws;      /* per part: DRAW_BLOCK points of d features, and k distances */
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

/* A part draws its points into a block first, then labels the block with the kernel: the
 * draws' cache misses overlap, and the distances are vectorised. The same labels as one point
 * at a time, summed in the order drawn. */

static int step_part(void *arg, int worker, cm_ctx_t *ctx)
{
    const step_task_t *t = arg;
    const stepper_t *s = t->s;
    if (s->converged) return 0;
    int k = s->k, d = s->d;
    double *acc = s->partials + (size_t)t->part * (size_t)k * (size_t)(d + 1);
    memset(acc, 0, sizeof(double) * (size_t)k * (size_t)(d + 1));
    float *x = s->draws + (size_t)t->part * ((size_t)DRAW_BLOCK * d + (size_t)k);
    float *dist = x + (size_t)DRAW_BLOCK * d;
    uint16_t labels[DRAW_BLOCK];
    float d2[DRAW_BLOCK];
    cm__rng_t rng;
    cm__rng_init(&rng, s->p->seed, draw_key(t->step, t->part));
    int64_t draws = s->batch / PARTS_PER_STEP + (t->part < s->batch % PARTS_PER_STEP);
    for (int64_t first = 0; first < draws; first += DRAW_BLOCK) {
        int64_t m = draws - first < DRAW_BLOCK ? draws - first : DRAW_BLOCK;
        for (int64_t i = 0; i < m; i++)
            memcpy(x + i * d, s->pts + (int64_t)cm__rng_below(&rng, (uint64_t)s->n) * d,
                   sizeof(float) * d);
        cm__assign_block(s->p->kernel, s->soa, k, d, x, m, NULL, labels, d2, dist);
        for (int64_t i = 0; i < m; i++) {
            double *a = acc + (size_t)labels[i] * (size_t)(d + 1);
            for (int b = 0; b < d; b++) a[b] += x[i * d + b];
            a[d] += 1.0;
        }
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
    int64_t m = s->batch;
    float *d2 = NULL;
    int64_t *idx = NULL;
    for (int j = 0; j < k; j++) {
        if (s->v[j] > 0) continue;
        if (!d2) {
            d2 = malloc(sizeof(float) * (size_t)m);
            idx = malloc(sizeof(int64_t) * (size_t)m);
            if (!d2 || !idx) break; /* reseeding is an improvement, not a necessity */
            cm__rng_t rng;
            cm__rng_init(&rng, s->p->seed, draw_key(step, 0xffff));
            for (int64_t i = 0; i < m; i++) {
                idx[i] = (int64_t)cm__rng_below(&rng, (uint64_t)s->n);
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
        double shift = 0.0; /* in sample units, whether or not the features are scaled */
        for (int b = 0; b < d; b++) {
            double next = cj[b] + (s->sum[b] - cnt * cj[b]) / s->v[j];
            double moved = (next - cj[b]) * (s->std ? s->std[b] : 1.0);
            shift += moved * moved;
            cj[b] = next;
        }
        if (shift > shift_max) shift_max = shift;
    }
    for (size_t i = 0; i < (size_t)k * d; i++) s->cf[i] = (float)s->c[i];
    bool reseeded = t->step % RESEED_EVERY == RESEED_EVERY - 1 && reseed_empty(s, t->step) > 0;
    cm__centroids_soa(s->c, k, d, s->soa); /* the next step's parts read these */
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
            rc = cm_graph_add(g,
                              &(cm_task_t){.fn = step_part,
                                           .kind = "step",
                                           .arg = t++,
                                           .deps = &update,
                                           .n_deps = update >= 0},
                              &parts[q], ctx);
        }
        *t = (step_task_t){s, step, -1};
        if (rc == 0)
            rc = cm_graph_add(g,
                              &(cm_task_t){.fn = step_update,
                                           .kind = "update",
                                           .arg = t++,
                                           .deps = parts,
                                           .n_deps = PARTS_PER_STEP},
                              &update, ctx);
    }
    if (rc == 0) rc = cm__graph_run(g, s->p, "fit", ctx);
    cm_graph_free(g);
    return rc;
}

int cm__minibatch(const float *pts, int64_t n, const cm_params_t *p, cm_model_t *m, cm_ctx_t *ctx)
{
    int k = m->k, d = m->d;
    int rc = 0;
    step_task_t *tasks = malloc(sizeof(step_task_t) * WINDOW * (PARTS_PER_STEP + 1));
    stepper_t s = {.p = p,
                   .pts = pts,
                   .n = n,
                   .k = k,
                   .d = d,
                   .batch = p->batch,
                   .c = m->centroids,
                   .std = m->std,
                   .cf = malloc(sizeof(float) * (size_t)k * (size_t)d),
                   .soa = malloc(sizeof(float) * (size_t)k * (size_t)d),
                   .v = calloc((size_t)k, sizeof(double)),
                   .sum = malloc(sizeof(double) * d),
                   .partials = malloc(sizeof(double) * PARTS_PER_STEP * (size_t)k * (d + 1)),
                   .draws = malloc(sizeof(float) * PARTS_PER_STEP *
                                   ((size_t)DRAW_BLOCK * (size_t)d + (size_t)k))};
    if (!tasks || !s.cf || !s.soa || !s.v || !s.sum || !s.partials || !s.draws)
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory for %d centres", k);
    for (size_t i = 0; rc == 0 && i < (size_t)k * d; i++) s.cf[i] = (float)s.c[i];
    if (rc == 0) cm__centroids_soa(s.c, k, d, s.soa);
    for (int first = 0; rc == 0 && first < p->max_iter && !s.converged; first += WINDOW)
        rc = run_window(&s, tasks, first,
                        first + WINDOW < p->max_iter ? first + WINDOW : p->max_iter, ctx);
    if (rc == 0) {
        for (int j = 0; j < k; j++) m->counts[j] = (int64_t)s.v[j];
        m->iterations = s.steps_done;
        m->converged = s.converged;
    }
    free(s.draws);
    free(s.partials);
    free(s.sum);
    free(s.v);
    free(s.soa);
    free(s.cf);
    free(tasks);
    return rc;
}
