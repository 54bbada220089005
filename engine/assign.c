/* Nearest-centre assignment: the kernel behind the mini-batch steps and the remap pass. */
#include "cm_engine.h"
#include "engine_internal.h"

int cm_nearest(const float *c, int k, int d, const float *x, float *dist2)
{
    return cm__nearest(c, k, d, x, dist2);
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
