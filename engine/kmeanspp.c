/* The starting centres of a fit, chosen among the points of an in-memory sample: greedy
 * k-means++ seeding (Arthur and Vassilvitskii, 2007, with the greedy choice among several
 * candidates that scikit-learn makes), or points drawn uniformly. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

enum { TRIALS_MAX = 16 };

static float dist2(const float *a, const double *c, int d)
{
    float s = 0.f;
    for (int b = 0; b < d; b++) {
        float t = a[b] - (float)c[b];
        s += t * t;
    }
    return s;
}

/* A point drawn with probability proportional to its squared distance dmin to the centres so
 * far (total is their sum); any point when every one lies on a centre. */
static int64_t draw_far(const float *dmin, int64_t n, double total, cm__rng_t *rng)
{
    if (total <= 0.0) return (int64_t)cm__rng_below(rng, (uint64_t)n);
    double r = cm__rng_uniform(rng) * total, acc = 0.0;
    int64_t pick = -1;
    for (int64_t i = 0; i < n; i++) {
        if (dmin[i] <= 0.f) continue;
        pick = i;
        acc += dmin[i];
        if (acc > r) break;
    }
    return pick;
}

int cm__kmeanspp(const float *pts, int64_t n, int d, int k, uint64_t seed,
                 const volatile sig_atomic_t *cancel, double *centroids, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n <= 0 || k <= 0, CM_EINPUT, "no valid pixels to fit %d clusters on", k);
    float *dmin = malloc(sizeof(float) * (size_t)n);
    CM_FAIL_IF(ctx, !dmin, CM_ENOMEM, "out of memory seeding %d clusters", k);
    /* Each centre after the first is the best of a few candidates drawn as k-means++ draws
     * one: the one that lowers the sum of squared distances most. */
    int trials = 2 + (int)log(k);
    if (trials > TRIALS_MAX) trials = TRIALS_MAX;

    cm__rng_t rng;
    cm__rng_init(&rng, seed, 0x6b6d65616e732b2bULL /* "kmeans++" */);
    int64_t first = (int64_t)cm__rng_below(&rng, (uint64_t)n);
    for (int b = 0; b < d; b++) centroids[b] = pts[first * d + b];
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        dmin[i] = dist2(pts + i * d, centroids, d);
        total += dmin[i];
    }

    for (int j = 1; j < k; j++) {
        if (cancel && *cancel) {
            free(dmin);
            return cm_fail(ctx, CM_ECANCELED, "interrupted");
        }
        double cand[TRIALS_MAX][CM_BANDS_MAX], pot[TRIALS_MAX] = {0};
        for (int t = 0; t < trials; t++) {
            int64_t pick = draw_far(dmin, n, total, &rng);
            for (int b = 0; b < d; b++) cand[t][b] = pts[pick * d + b];
        }
        for (int64_t i = 0; i < n; i++)
            for (int t = 0; t < trials; t++) {
                float u = dist2(pts + i * d, cand[t], d);
                pot[t] += u < dmin[i] ? u : dmin[i];
            }
        int best = 0;
        for (int t = 1; t < trials; t++)
            if (pot[t] < pot[best]) best = t;
        double *cj = centroids + (size_t)j * d;
        for (int b = 0; b < d; b++) cj[b] = cand[best][b];
        total = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float u = dist2(pts + i * d, cj, d);
            if (u < dmin[i]) dmin[i] = u;
            total += dmin[i];
        }
    }
    free(dmin);
    return 0;
}

/* A hash of a point's values, equal for equal values (-0 and +0 alike: NaN never comes). */
static uint64_t point_hash(const float *x, int d)
{
    uint64_t h = 0;
    for (int b = 0; b < d; b++) {
        float v = x[b] + 0.0f; /* -0 becomes +0 */
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        h = cm__mix64(h, bits);
    }
    return h;
}

int cm__init_random(const float *pts, int64_t n, int d, int k, uint64_t seed, double *centroids,
                    cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n <= 0 || k <= 0, CM_EINPUT, "no valid pixels to fit %d clusters on", k);
    /* The points in a random order, drawn one at a time (a Fisher-Yates shuffle that stops
     * when k values are found); a table of the values chosen, by hash, skips repeats. */
    size_t slots = 2;
    while (slots < 2 * (size_t)k) slots *= 2;
    int64_t *order = malloc(sizeof(int64_t) * (size_t)n);
    int32_t *chosen = malloc(sizeof(int32_t) * slots); /* centre index, or -1 */
    if (!order || !chosen) {
        free(order);
        free(chosen);
        return cm_fail(ctx, CM_ENOMEM, "out of memory seeding %d clusters", k);
    }
    for (int64_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = 0; i < slots; i++) chosen[i] = -1;

    cm__rng_t rng;
    cm__rng_init(&rng, seed, 0x72616e646f6dULL /* "random" */);
    int j = 0;
    for (int64_t drawn = 0; drawn < n && j < k; drawn++) {
        int64_t at = drawn + (int64_t)cm__rng_below(&rng, (uint64_t)(n - drawn));
        int64_t i = order[at];
        order[at] = order[drawn];
        order[drawn] = i;
        const float *x = pts + i * d;
        size_t slot = (size_t)point_hash(x, d) & (slots - 1);
        bool repeat = false;
        for (; chosen[slot] >= 0 && !repeat; slot = (slot + 1) & (slots - 1)) {
            const double *c = centroids + (size_t)chosen[slot] * d;
            repeat = true;
            for (int b = 0; b < d; b++) repeat &= (double)x[b] == c[b];
        }
        if (repeat) continue;
        chosen[slot] = j;
        for (int b = 0; b < d; b++) centroids[(size_t)j * d + b] = x[b];
        j++;
    }
    /* Fewer distinct values than k: the other centres repeat points, as k-means++ does. */
    for (; j < k; j++) {
        int64_t i = (int64_t)cm__rng_below(&rng, (uint64_t)n);
        for (int b = 0; b < d; b++) centroids[(size_t)j * d + b] = pts[i * d + b];
    }
    free(chosen);
    free(order);
    return 0;
}
