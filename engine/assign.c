/* Nearest-centre assignment: the kernel behind the mini-batch steps and the remap pass. */
#include "cm_engine.h"
#include "engine_internal.h"

int cm_nearest(const float *c, int k, int d, const float *x, float *dist2)
{
    return cm__nearest(c, k, d, x, dist2);
}
