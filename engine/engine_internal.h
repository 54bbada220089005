/* Helpers shared by the engine's files; not part of the library's interface. */
#ifndef CM_ENGINE_INTERNAL_H
#define CM_ENGINE_INTERNAL_H

#include <math.h>

#include "cm_engine.h"

/* cm_nearest, inlined into the loops that call it per pixel. */
static inline int cm__nearest(const float *c, int k, int d, const float *x, float *dist2)
{
    int best = 0;
    float best_d = INFINITY;
    for (int j = 0; j < k; j++) {
        const float *cj = c + (size_t)j * d;
        float s = 0.f;
        for (int b = 0; b < d; b++) {
            float t = x[b] - cj[b];
            s += t * t;
        }
        if (s < best_d) {
            best_d = s;
            best = j;
        }
    }
    if (dist2) *dist2 = best_d;
    return best;
}

/* cm__nearest with the centres stored band by band (soa: d rows of k floats), which lets the
 * compiler vectorise over centres; dist is scratch for k floats. Sums the squared differences
 * in the same order as cm__nearest, so both give the same label and distance. */
static inline int cm__nearest_soa(const float *restrict soa, int k, int d, const float *x,
                                  float *restrict dist, float *dist2)
{
    for (int j = 0; j < k; j++) {
        float t = x[0] - soa[j];
        dist[j] = t * t;
    }
    for (int b = 1; b < d; b++) {
        const float *cb = soa + (size_t)b * k;
        float xb = x[b];
        for (int j = 0; j < k; j++) {
            float t = xb - cb[j];
            dist[j] += t * t;
        }
    }
    int best = 0;
    float best_d = dist[0];
    for (int j = 1; j < k; j++) { /* branch-free: the winner is unpredictable */
        bool closer = dist[j] < best_d;
        best = closer ? j : best;
        best_d = closer ? dist[j] : best_d;
    }
    *dist2 = best_d;
    return best;
}

/* The features of one pixel (its non-alpha samples) as floats. */
void cm__features_u8(const uint8_t *px, int bands, int alpha_band, float *x);

/* Whether a pixel takes part in the fit: alpha, when present, is not zero. */
bool cm__pixel_valid(const uint8_t *px, int alpha_band);

/* Allocates a model with k centres of d features (zeroed); NULL when out of memory. */
cm_model_t *cm__model_new(int k, int d);

/* Reads the fitting sample of about sample_px valid pixels: *pts holds *n points of d
 * features, in pixel order; the caller frees it. Fails with CM_EINPUT when every sampled
 * pixel is transparent. */
int cm__sample_take(const cm_source_t *src, const cm_params_t *p, int64_t sample_px,
                    float **pts, int64_t *n, cm_ctx_t *ctx);

/* Runs a graph with the parameters' threads, budget, cancel flag and a progress stage. */
int cm__graph_run(cm_graph_t *g, const cm_params_t *p, const char *stage, cm_ctx_t *ctx);

#endif
