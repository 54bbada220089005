/* k-means++ seeding (Arthur and Vassilvitskii, 2007) on an in-memory sample. */
#include <stdlib.h>

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

int cm_kmeanspp(const float *pts, int64_t n, int d, int k, uint64_t seed, double *centres,
                cm_ctx_t *ctx)
{
    return cm__kmeanspp(pts, n, d, k, seed, NULL, centres, ctx);
}

int cm__kmeanspp(const float *pts, int64_t n, int d, int k, uint64_t seed,
                 const volatile sig_atomic_t *cancel, double *centres, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n <= 0 || k <= 0, CM_EINPUT, "no valid pixels to fit %d clusters on", k);
    float *dmin = malloc(sizeof(float) * (size_t)n);
    CM_FAIL_IF(ctx, !dmin, CM_ENOMEM, "out of memory seeding %d clusters", k);

    cm_rng_t rng;
    cm_rng_init(&rng, seed, 0x6b6d65616e732b2bULL /* "kmeans++" */);
    int64_t first = (int64_t)cm_rng_below(&rng, (uint64_t)n);
    for (int b = 0; b < d; b++) centres[b] = pts[first * d + b];
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        dmin[i] = dist2(pts + i * d, centres, d);
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
            double r = cm_rng_uniform(&rng) * total, acc = 0.0;
            pick = -1;
            for (int64_t i = 0; i < n; i++) {
                if (dmin[i] <= 0.f) continue;
                pick = i;
                acc += dmin[i];
                if (acc > r) break;
            }
        } else {
            /* Every point coincides with a centre: fewer distinct values than k. */
            pick = (int64_t)cm_rng_below(&rng, (uint64_t)n);
        }
        double *cj = centres + (size_t)j * d;
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
