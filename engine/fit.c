/* The fit on a sample, phase by phase: the parameters checked, a model shaped like the sample,
 * starting centroids (given, or the best of several greedy k-means++ or random starts, each
 * settled by Lloyd iterations on a subset of the sample), then mini-batch steps settled by
 * Lloyd iterations on the sample (minibatch.c, exact.c) or an exact mode over the whole image
 * (exact.c), and the centroids back in sample units. Reads no pixels itself. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum {
    START_POINTS_MAX = 200000, /* the starts are tried on at most this many sample points, */
    START_LLOYD_MAX = 20,      /* with Lloyd iterations until one gains less than START_GAIN */
    N_INIT_DEFAULT = 5,        /* starts when p->n_init is 0 (measured: benchmarks/quality.sh) */
    POLISH_MAX = 10,           /* Lloyd iterations on the sample after the steps */
    LLOYD_MAX = 100,           /* Lloyd iterations on the sample from the start */
};
static const double START_GAIN = 1e-4;
static const double INLINE_WORK = 4e6; /* points x centres x features of one iteration */

static int n_init_of(const cm_params_t *p)
{
    return p->n_init > 0 ? p->n_init : N_INIT_DEFAULT;
}

/* What every fit refuses before any work: k out of range, no steps, and several sources with
 * an algorithm that reads one image. */
static int check_params(const cm_grid_t *g, int n_srcs, const cm_params_t *p, cm_ctx_t *ctx)
{
    int k = cm__params_k(p);
    CM_FAIL_IF(ctx, p->init_centroids && (k < 1 || k > 65535), CM_EUSAGE,
               "there must be 1 to 65535 starting centres, not %d", k);
    CM_FAIL_IF(ctx, k < 1 || k > 65535, CM_EUSAGE, "k must be between 1 and 65535, not %d", k);
    CM_TRY(cm__colorspace_check(g, p->colorspace, ctx));
    CM_FAIL_IF(ctx, p->n_init < 0 || p->n_init > 1000, CM_EUSAGE,
               "the number of starts must be from 1 to 1000 (0: the default), not %d", p->n_init);
    CM_FAIL_IF(ctx, p->max_iter < 1 || p->batch < 1, CM_EUSAGE,
               "the step limit and the batch size must be positive");
    CM_FAIL_IF(ctx, n_srcs > 1 && p->algorithm != CM_ALG_MINIBATCH && p->algorithm != CM_ALG_AUTO,
               CM_EUSAGE, "several images are fitted with the minibatch algorithm only");
    return 0;
}

/* A model of k centroids for the sample's features, measuring distances as the sample was
 * standardised (its mean and std copied), in p's colour space. */
static int model_for(const cm_sample_t *sample, const cm_params_t *p, cm_model_t **out,
                     cm_ctx_t *ctx)
{
    int k = cm__params_k(p), d = sample->d;
    cm_model_t *m = cm__model_new(k, d);
    CM_FAIL_IF(ctx, !m, CM_ENOMEM, "out of memory for %d centres", k);
    m->colorspace = p->colorspace;
    if (sample->mean) {
        m->mean = malloc(sizeof(double) * d);
        m->std = malloc(sizeof(double) * d);
        if (!m->mean || !m->std) {
            cm_model_free(m);
            return cm_fail(ctx, CM_ENOMEM, "out of memory");
        }
        memcpy(m->mean, sample->mean, sizeof(double) * d);
        memcpy(m->std, sample->std, sizeof(double) * d);
    }
    *out = m;
    return 0;
}

/* The starts of a fit: one task per start, each on the same subset of the sample. */
typedef struct starts {
    const cm_params_t *p;
    const cm_model_t *m; /* shape and scaling */
    const float *pts;    /* the subset */
    int64_t n;
    double *centroids; /* per start: k * d */
    int64_t *counts;   /* per start: k */
    double *inertia;   /* per start */
} starts_t;

/* Start i: chosen by p->init among the subset's points with its own seed, then settled by
 * Lloyd iterations on the subset, all in this task's thread. */
static int one_start(void *user, int64_t i, int worker, cm_ctx_t *ctx)
{
    (void)worker;
    const starts_t *s = user;
    const cm_params_t *p = s->p;
    int k = s->m->k, d = s->m->d;
    cm_model_t trial = *s->m; /* its shape and scaling, this start's centres and counts */
    trial.centroids = s->centroids + (size_t)i * k * d;
    trial.counts = s->counts + (size_t)i * k;
    uint64_t seed = i == 0 ? p->seed : cm__mix64(p->seed, (uint64_t)i);
    CM_TRY(p->init == CM_INIT_RANDOM
               ? cm__init_random(s->pts, s->n, d, k, seed, trial.centroids, ctx)
               : cm__kmeanspp(s->pts, s->n, d, k, seed, p->cancel, trial.centroids, ctx));
    const cm__lloyd_t settle = {.max_iter = START_LLOYD_MAX, .gain = START_GAIN, .here = true};
    return cm__polish(s->pts, s->n, p, &settle, &trial, &s->inertia[i], ctx);
}

/* The starting centroids of m, in the features of the fit: p's own, or the best of the starts
 * p asks for, tried in parallel on an evenly strided subset of the sample: the one of lowest
 * inertia there wins (the first of equals), whatever the threads. */
static int start_centroids(const cm_sample_t *sample, const cm_params_t *p, cm_model_t *m,
                           cm_ctx_t *ctx)
{
    int k = m->k, d = m->d;
    if (p->init_centroids) { /* given in sample units */
        cm_stype_t t = sample->srcs[0].grid.stype;
        for (int j = 0; j < k; j++)
            cm__centroid_features(p->colorspace, t, d, m->mean, m->std,
                                  p->init_centroids + (size_t)j * d, m->centroids + (size_t)j * d);
        return 0;
    }
    int64_t n = sample->n, stride = (n + START_POINTS_MAX - 1) / START_POINTS_MAX;
    if (stride < 1) stride = 1;
    int n_init = n_init_of(p);
    starts_t s = {.p = p,
                  .m = m,
                  .n = (n + stride - 1) / stride,
                  .centroids = malloc(sizeof(double) * (size_t)n_init * k * d),
                  .counts = malloc(sizeof(int64_t) * (size_t)n_init * k),
                  .inertia = malloc(sizeof(double) * (size_t)n_init)};
    float *sub = stride > 1 ? malloc(sizeof(float) * (size_t)s.n * d) : NULL;
    int rc = (stride == 1 || sub) && s.centroids && s.counts && s.inertia
                 ? 0
                 : cm_fail(ctx, CM_ENOMEM, "out of memory seeding %d clusters", k);
    for (int64_t i = 0; rc == 0 && sub && i < s.n; i++)
        memcpy(sub + i * d, sample->pts + i * stride * d, sizeof(float) * d);
    s.pts = sub ? sub : sample->pts;
    cm__items_t starts = {.n = n_init, .each = one_start, .user = &s, .kind = "start"};
    if (rc == 0) rc = cm__run_items(&starts, p, "start", ctx);
    int best = 0;
    for (int i = 1; rc == 0 && i < n_init; i++)
        if (s.inertia[i] < s.inertia[best]) best = i;
    if (rc == 0) memcpy(m->centroids, s.centroids + (size_t)best * k * d, sizeof(double) * k * d);
    free(sub);
    free(s.inertia);
    free(s.counts);
    free(s.centroids);
    return rc;
}

/* Mini-batch steps from m's centroids, then a few Lloyd iterations on the in-memory sample to
 * settle them on its exact means (mini-batch centroids carry the noise of their last batches).
 * Early noisy steps can also lead them into a worse optimum than Lloyd from the same start
 * would reach, so that is tried on the sample too, and the lower inertia wins. */
static int fit_minibatch(const cm_sample_t *sample, const cm_params_t *p, cm_model_t *m,
                         cm_ctx_t *ctx)
{
    size_t n_values = (size_t)m->k * m->d;
    double *start = malloc(sizeof(double) * n_values); /* NULL: no second try, nothing else */
    if (start) memcpy(start, m->centroids, sizeof(double) * n_values);
    double mb_inertia = 0.0, lloyd_inertia = 0.0;
    int rc = cm__minibatch(sample->pts, sample->n, p, m, ctx);
    /* An iteration over a small sample costs less than a graph run and the wake of threads */
    bool here = (double)sample->n * m->k * m->d < INLINE_WORK;
    const cm__lloyd_t polish = {.max_iter = POLISH_MAX, .here = here},
                      lloyd = {.max_iter = LLOYD_MAX, .here = here};
    if (rc == 0) rc = cm__polish(sample->pts, sample->n, p, &polish, m, &mb_inertia, ctx);
    m->inertia = mb_inertia; /* the sample's, until a remap measures the image's */
    int64_t *alt_counts = rc == 0 && start ? calloc((size_t)m->k, sizeof(int64_t)) : NULL;
    if (alt_counts) {
        double *mine = m->centroids;
        int64_t *counts = m->counts;
        m->centroids = start;
        m->counts = alt_counts;
        rc = cm__polish(sample->pts, sample->n, p, &lloyd, m, &lloyd_inertia, ctx);
        bool better = rc == 0 && lloyd_inertia < mb_inertia;
        if (better) m->inertia = lloyd_inertia;
        m->centroids = better ? start : mine;
        m->counts = better ? alt_counts : counts;
        start = better ? mine : start; /* freed below, whichever lost */
        free(better ? counts : alt_counts);
    }
    free(start);
    return rc;
}

/* The algorithm that runs: auto is exact and cheap where it applies (one 8-bit image of up to
 * 3 unscaled colour bands), else mini-batch. */
static cm_algorithm_t resolve(cm_algorithm_t alg, const cm_sample_t *sample, const cm_model_t *m)
{
    if (alg != CM_ALG_AUTO) return alg;
    return sample->srcs[0].grid.stype == CM_U8 && m->d <= 3 && !m->mean && sample->n_srcs == 1
               ? CM_ALG_HISTOGRAM
               : CM_ALG_MINIBATCH;
}

/* Gives every rank rank 0's fit: the one a single process makes. */
static void share(cm_model_t *m)
{
    if (cm_comm_size() == 1) return;
    struct {
        double inertia;
        int iterations, algorithm, converged;
    } head = {m->inertia, m->iterations, (int)m->algorithm, m->converged};
    cm_comm_bcast(&head, sizeof head, 0);
    cm_comm_bcast(m->centroids, sizeof(double) * (size_t)m->k * m->d, 0);
    cm_comm_bcast(m->counts, sizeof(int64_t) * (size_t)m->k, 0);
    m->inertia = head.inertia;
    m->iterations = head.iterations;
    m->algorithm = (cm_algorithm_t)head.algorithm;
    m->converged = head.converged;
}

/* Fits on sample. own is the sample itself when the caller took it for this fit alone
 * (cm_fit_many), else NULL: an exact pass reads the image, not the sample, so the points an
 * owner holds are freed before it. */
static int fit_on(cm_sample_t *sample, cm_sample_t *own, const cm_params_t *p, cm_model_t **out,
                  cm_ctx_t *ctx)
{
    const cm_grid_t *g = &sample->srcs[0].grid;
    CM_TRY(check_params(g, sample->n_srcs, p, ctx));
    bool same = p->seed == sample->seed && p->colorspace == sample->colorspace &&
                p->scale == sample->scale && cm__sample_px(p) == sample->sample_px;
    CM_FAIL_IF(ctx, !same, CM_EUSAGE,
               "the sample was taken with another seed, size, colour space or scaling than the "
               "fit's");
    cm_model_t *m = NULL;
    CM_TRY(model_for(sample, p, &m, ctx));
    /* In a job of several ranks every rank holds the sample; rank 0 alone finds the starts and
     * makes the mini-batch steps (the others would only repeat them), and the exact passes
     * share the image's chunks among the ranks. */
    bool lead = cm_comm_rank() == 0;
    int rc = lead ? start_centroids(sample, p, m, ctx) : 0;
    m->algorithm = resolve(p->algorithm, sample, m);
    if (rc == 0) rc = cm_comm_test_fault("fit", ctx);
    if (rc == 0 && m->algorithm == CM_ALG_MINIBATCH) {
        if (lead) rc = fit_minibatch(sample, p, m, ctx);
    } else if (rc == 0) {
        cm_comm_bcast(m->centroids, sizeof(double) * (size_t)m->k * m->d, 0);
        if (own) { /* the exact modes read the whole image instead */
            free(own->pts);
            own->pts = NULL;
        }
        rc = cm__fit_exact(&sample->srcs[0], p, m->algorithm, sample, m, ctx);
    }
    if (rc < 0) {
        cm_model_free(m);
        return rc;
    }
    share(m);
    for (int j = 0; (m->mean || m->colorspace != CM_COLORSPACE_RGB) && j < m->k; j++) {
        double *c = m->centroids + (size_t)j * m->d; /* back to sample units */
        cm__centroid_samples(m->colorspace, g->stype, m->d, m->mean, m->std, c, c);
    }
    m->seed = p->seed;
    m->sample_px = sample->n;
    *out = m;
    return 0;
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
