/* The starting centres of a fit, chosen among the points of an in-memory sample: k-means++
 * seeding (Arthur and Vassilvitskii, 2007), or points drawn uniformly. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

static float dist2(const float *a, const double *c, int d)
{
    float s = 0.f;
    for (int b = 0; b < d; b++) {
        float t = a[b] - (float)c[b];
        s += t * t;
    }
    return s;
}

int cm__kmeanspp(const float *pts, int64_t n, int d, int k, uint64_t seed,
                 const volatile sig_atomic_t *cancel, double *centroids, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n <= 0 || k <= 0, CM_EINPUT, "no valid pixels to fit %d clusters on", k);
    float *dmin = malloc(sizeof(float) * (size_t)n);
    CM_FAIL_IF(ctx, !dmin, CM_ENOMEM, "out of memory seeding %d clusters", k);

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
        int64_t pick;
        if (total > 0.0) {
            /* Draw a point with probability proportional to its squared distance. */
            double r = cm__rng_uniform(&rng) * total, acc = 0.0;
            pick = -1;
            for (int64_t i = 0; i < n; i++) {
                if (dmin[i] <= 0.f) continue;
                pick = i;
                acc += dmin[i];
                if (acc > r) break;
            }
        } else {
            /* Every point coincides with a centre: fewer distinct values than k. */
            pick = (int64_t)cm__rng_below(&rng, (uint64_t)n);
        }
        double *cj = centroids + (size_t)j * d;
        for (int b = 0; b < d; b++) cj[b] = pts[pick * d + b];
        total = 0.0;
        for (int64_t i = 0; i < n; i++) {
            float t = dist2(pts + i * d, cj, d);
            if (t < dmin[i]) dmin[i] = t;
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
