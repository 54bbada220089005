/* The fit on a sample: starting centres (k-means++ or random) chosen among its points, then
 * mini-batch k-means (Sculley 2010) whose steps are scheduler tasks reduced in a fixed order,
 * or an exact mode (exact.c). Reads no pixels itself: sample.c and exact.c do. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    PARTS_PER_STEP = 8,       /* tasks per step: fixed, so results do not follow threads */
    INIT_POINTS_MAX = 200000, /* k-means++ runs on at most this many sample points */
    RESEED_EVERY = 10,        /* steps between checks for empty centres */
    WINDOW = 64,              /* steps per graph */
    POLISH_MAX = 10,          /* Lloyd iterations on the sample after the steps */
    LLOYD_MAX = 100,          /* Lloyd iterations on the sample from the k-means++ start */
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
    double *v;         /* points taken by each centre so far: 1/v is its learning rate */
    double *sum;       /* d: scratch of the update */
    const double *std; /* d: the scaling of the features, or NULL */
    double *partials;  /* per part: k * (d + 1) sums (d feature sums, then the count) */
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
    int64_t draws = s->batch / PARTS_PER_STEP + (t->part < s->batch % PARTS_PER_STEP);
    for (int64_t i = 0; i < draws; i++) {
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
    int64_t m = s->batch;
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

/* k-means++ on an evenly strided subset of the n sample points. */
static int kmeanspp_subset(const float *pts, int64_t n, int d, int k, const cm_params_t *p,
                           double *centres, cm_ctx_t *ctx)
{
    int64_t stride = n > INIT_POINTS_MAX ? (n + INIT_POINTS_MAX - 1) / INIT_POINTS_MAX : 1;
    int64_t n_init = (n + stride - 1) / stride;
    float *init = stride > 1 ? malloc(sizeof(float) * (size_t)n_init * d) : NULL;
    CM_FAIL_IF(ctx, stride > 1 && !init, CM_ENOMEM, "out of memory seeding");
    for (int64_t i = 0; stride > 1 && i < n_init; i++)
        memcpy(init + i * d, pts + i * stride * d, sizeof(float) * d);
    int rc = cm__kmeanspp(init ? init : pts, n_init, d, k, p->seed, p->cancel, centres, ctx);
    free(init);
    return rc;
}

/* The starting centres of m, in the features of the fit: p's own, or chosen by p->init among
 * the sample's points. */
static int start_centres(const cm_sample_t *sample, const cm_params_t *p, cm_model_t *m,
                         cm_ctx_t *ctx)
{
    int k = m->k, d = m->d;
    if (p->init_centres) { /* given in sample units */
        cm_stype_t t = sample->srcs[0].grid.stype;
        for (int j = 0; j < k; j++)
            cm__centre_features(p->colorspace, t, d, m->mean, m->std,
                                p->init_centres + (size_t)j * d, m->centroids + (size_t)j * d);
        return 0;
    }
    if (p->init == CM_INIT_RANDOM)
        return cm_init_random(sample->pts, sample->n, d, k, p->seed, m->centroids, ctx);
    return kmeanspp_subset(sample->pts, sample->n, d, k, p, m->centroids, ctx);
}

/* What every fit refuses before any work: k out of range, no steps, and several sources with
 * an algorithm that reads one image. */
static int check_params(const cm_grid_t *g, int n_srcs, const cm_params_t *p, cm_ctx_t *ctx)
{
    int k = cm__params_k(p);
    CM_FAIL_IF(ctx, p->init_centres && (k < 1 || k > 65535), CM_EUSAGE,
               "there must be 1 to 65535 starting centres, not %d", k);
    CM_FAIL_IF(ctx, k < 1 || k > 65535, CM_EUSAGE, "k must be between 1 and 65535, not %d", k);
    CM_TRY(cm__colorspace_check(g, p->colorspace, ctx));
    CM_FAIL_IF(ctx, p->max_iter < 1 || p->batch < 1, CM_EUSAGE,
               "the step limit and the batch size must be positive");
    CM_FAIL_IF(ctx, n_srcs > 1 && p->algorithm != CM_ALG_MINIBATCH && p->algorithm != CM_ALG_AUTO,
               CM_EUSAGE, "several images are fitted with the minibatch algorithm only");
    return 0;
}

/* Fits on sample. own is the sample itself when the caller took it for this fit alone
 * (cm_fit_many), else NULL: an exact pass reads the image, not the sample, so the points an
 * owner holds are freed before it. */
static int fit_on(cm_sample_t *sample, cm_sample_t *own, const cm_params_t *p, cm_model_t **out,
                  cm_ctx_t *ctx)
{
    const cm_source_t *src = &sample->srcs[0];
    const cm_grid_t *g = &src->grid;
    CM_TRY(check_params(g, sample->n_srcs, p, ctx));
    bool same = p->seed == sample->seed && p->colorspace == sample->colorspace &&
                p->scale == sample->scale && cm__sample_px(p) == sample->sample_px;
    CM_FAIL_IF(ctx, !same, CM_EUSAGE,
               "the sample was taken with another seed, size, colour space or scaling than the "
               "fit's");
    int d = sample->d, k = cm__params_k(p), n_srcs = sample->n_srcs;
    const float *pts = sample->pts;
    int64_t n = sample->n;

    int rc = CM_ENOMEM;
    double *start = NULL; /* the starting centres */
    cm_model_t *m = cm__model_new(k, d);
    if (m) m->colorspace = p->colorspace;
    step_task_t *tasks = malloc(sizeof(step_task_t) * WINDOW * (PARTS_PER_STEP + 1));
    stepper_t s = {.p = p,
                   .pts = pts,
                   .n = n,
                   .k = k,
                   .d = d,
                   .batch = p->batch,
                   .cf = malloc(sizeof(float) * (size_t)k * (size_t)d),
                   .v = calloc((size_t)k, sizeof(double)),
                   .sum = malloc(sizeof(double) * d),
                   .partials = malloc(sizeof(double) * PARTS_PER_STEP * (size_t)k * (d + 1))};
    if (!m || !tasks || !s.cf || !s.v || !s.sum || !s.partials) {
        cm_fail(ctx, CM_ENOMEM, "out of memory for %d centres", k);
        goto cleanup;
    }
    s.c = m->centroids;
    if (sample->mean) { /* the model measures distances as the sample was standardised */
        m->mean = malloc(sizeof(double) * d);
        m->std = malloc(sizeof(double) * d);
        if (!m->mean || !m->std) {
            cm_fail(ctx, CM_ENOMEM, "out of memory");
            goto cleanup;
        }
        memcpy(m->mean, sample->mean, sizeof(double) * d);
        memcpy(m->std, sample->std, sizeof(double) * d);
        s.std = m->std;
    }

    rc = start_centres(sample, p, m, ctx);
    if (rc < 0) goto cleanup;
    for (size_t i = 0; i < (size_t)k * d; i++) s.cf[i] = (float)s.c[i];
    start = malloc(sizeof(double) * (size_t)k * d); /* NULL: no second try, nothing else */
    if (start) memcpy(start, m->centroids, sizeof(double) * (size_t)k * d);

    cm_algorithm_t alg = p->algorithm;
    if (alg == CM_ALG_AUTO) /* exact and cheap where it applies (one image) */
        alg = g->stype == CM_U8 && d <= 3 && !m->mean && n_srcs == 1 ? CM_ALG_HISTOGRAM
                                                                     : CM_ALG_MINIBATCH;
    m->algorithm = alg;
    if (alg == CM_ALG_MINIBATCH) {
        for (int first = 0; first < p->max_iter && !s.converged && rc == 0; first += WINDOW)
            rc = run_window(&s, tasks, first,
                            first + WINDOW < p->max_iter ? first + WINDOW : p->max_iter, ctx);
        for (int j = 0; j < k; j++) m->counts[j] = (int64_t)s.v[j];
        m->iterations = s.steps_done;
        m->converged = s.converged;
        /* Mini-batch centres carry the noise of their last batches; a few Lloyd iterations on
         * the in-memory sample settle them on its exact means. Early noisy steps can also
         * lead them into a worse optimum than Lloyd from the same start would reach, so that
         * is tried on the sample too, and the lower inertia wins. */
        double mb_inertia = 0.0, lloyd_inertia = 0.0;
        if (rc == 0) rc = cm__polish(pts, n, p, POLISH_MAX, m, &mb_inertia, ctx);
        m->inertia = mb_inertia; /* the sample's, until a remap measures the image's */
        if (rc == 0 && start) {
            double *mine = m->centroids;
            int64_t *counts = m->counts;
            int64_t *alt_counts = calloc((size_t)k, sizeof(int64_t));
            if (alt_counts) {
                m->centroids = start;
                m->counts = alt_counts;
                rc = cm__polish(pts, n, p, LLOYD_MAX, m, &lloyd_inertia, ctx);
                bool better = rc == 0 && lloyd_inertia < mb_inertia;
                if (better) m->inertia = lloyd_inertia;
                m->centroids = better ? start : mine;
                m->counts = better ? alt_counts : counts;
                start = better ? mine : start; /* freed below, whichever lost */
                free(better ? counts : alt_counts);
            }
        }
    } else {
        if (own) { /* the exact modes read the whole image instead */
            free(own->pts);
            own->pts = NULL;
        }
        rc = cm__fit_exact(src, p, alg, sample, m, ctx);
    }
    if (rc < 0) goto cleanup;
    for (int j = 0; (m->mean || m->colorspace != CM_COLORSPACE_RGB) && j < k; j++) {
        double *c = m->centroids + (size_t)j * d; /* back to sample units */
        cm__centre_samples(m->colorspace, g->stype, d, m->mean, m->std, c, c);
    }
    m->seed = p->seed;
    m->sample_px = n;
    *out = m;
    m = NULL;
cleanup:
    cm_model_free(m);
    free(start);
    free(s.partials);
    free(s.sum);
    free(s.v);
    free(s.cf);
    free(tasks);
    return rc;
}

int cm_fit(const cm_source_t *src, const cm_params_t *p, cm_model_t **out, cm_ctx_t *ctx)
{
    return cm_fit_many(src, 1, p, out, ctx);
}

int cm_fit_many(const cm_source_t *srcs, int n_srcs, const cm_params_t *p, cm_model_t **out,
                cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_srcs < 1, CM_EUSAGE, "no image to fit on");
    CM_TRY(check_params(&srcs[0].grid, n_srcs, p, ctx)); /* before the sample is read */
    cm_sample_t *sample = NULL;
    CM_TRY(cm_sample_take(srcs, n_srcs, p, &sample, ctx));
    int rc = fit_on(sample, sample, p, out, ctx);
    cm_sample_free(sample);
    return rc;
}

int cm_fit_sample(cm_sample_t *s, const cm_params_t *p, cm_model_t **out, cm_ctx_t *ctx)
{
    return fit_on(s, NULL, p, out, ctx);
}
