/* Nearest-centre assignment: the kernel behind the mini-batch steps and the remap pass. */
#include "cm_engine.h"
#include "engine_internal.h"

int cm_nearest(const float *c, int k, int d, const float *x, float *dist2)
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

void cm__features_u8(const uint8_t *px, int bands, int alpha_band, float *x)
{
    for (int b = 0, f = 0; b < bands; b++)
        if (b != alpha_band) x[f++] = px[b];
}

bool cm__pixel_valid(const uint8_t *px, int alpha_band)
{
    return alpha_band < 0 || px[alpha_band] != 0;
}
