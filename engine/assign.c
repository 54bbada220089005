/* Nearest-centre assignment: the scalar reference, and the block kernels the remap and the
 * exact modes run, vectorised over centres (the compiler's SSE2 code for any x86-64, AVX2
 * chosen at run time where the processor has it). Every kernel sums the squared differences
 * of a centre in band order with no fused multiply-add, so all give the same labels and
 * distances, ties to the lowest index included. */
#include <stdlib.h>
#include <string.h>

#include "cm_engine.h"
#include "engine_internal.h"

/* The reference, on band-major centres: one centre at a time, as cm__nearest. */
static void block_scalar(const float *soa, int k, int d, const float *x, int64_t n,
                         const uint8_t *valid, uint16_t *labels, float *d2, float *dist)
{
    for (int64_t i = 0; i < n; i++) {
        if (valid && !valid[i]) continue;
        const float *p = x + i * d;
        int best = 0;
        float best_d = INFINITY;
        for (int j = 0; j < k; j++) {
            float s = 0.f;
            for (int b = 0; b < d; b++) {
                float t = p[b] - soa[(size_t)b * k + j];
                s += t * t;
            }
            if (s < best_d) {
                best_d = s;
                best = j;
            }
        }
        labels[i] = (uint16_t)best;
        d2[i] = best_d;
    }
    (void)dist;
}

/* The vector kernel's body: distances to all centres band by band (vectorised over j), then
 * a branch-free argmin. Instantiated once per instruction set. */
#define BLOCK_VECTOR_BODY                                                                          \
    for (int64_t i = 0; i < n; i++) {                                                              \
        if (valid && !valid[i]) continue;                                                          \
        labels[i] = (uint16_t)cm__nearest_soa(soa, k, d, x + i * d, dist, &d2[i]);                 \
    }

static void block_sse2(const float *soa, int k, int d, const float *x, int64_t n,
                       const uint8_t *valid, uint16_t *labels, float *d2, float *dist)
{
    BLOCK_VECTOR_BODY
}

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_AVX2_KERNEL 1
__attribute__((target("avx2"))) static void block_avx2(const float *soa, int k, int d,
                                                       const float *x, int64_t n,
                                                       const uint8_t *valid, uint16_t *labels,
                                                       float *d2, float *dist)
{
    BLOCK_VECTOR_BODY
}
#endif

bool cm__kernel_available(cm_kernel_t kernel)
{
    switch (kernel) {
    case CM_KERNEL_AUTO:
    case CM_KERNEL_SCALAR:
    case CM_KERNEL_SSE2: return true;
    case CM_KERNEL_AVX2:
#ifdef HAVE_AVX2_KERNEL
        return __builtin_cpu_supports("avx2");
#else
        return false;
#endif
    }
    return false;
}

const char *cm__kernel_name(cm_kernel_t kernel)
{
    switch (kernel) {
    case CM_KERNEL_AUTO: return "auto";
    case CM_KERNEL_SCALAR: return "scalar";
    case CM_KERNEL_SSE2: return "vector";
    case CM_KERNEL_AVX2: return "avx2";
    }
    return "unknown";
}

void cm__assign_block(cm_kernel_t kernel, const float *soa, int k, int d, const float *x, int64_t n,
                      const uint8_t *valid, uint16_t *labels, float *d2, float *dist)
{
    /* Measured (benchmarks/cm-kernels): with very few centres the vector kernel's two passes
     * cost more than they save. */
    if (kernel == CM_KERNEL_AUTO)
        kernel = k <= 4                                 ? CM_KERNEL_SCALAR
                 : cm__kernel_available(CM_KERNEL_AVX2) ? CM_KERNEL_AVX2
                                                        : CM_KERNEL_SSE2;
    switch (kernel) {
    case CM_KERNEL_SCALAR: block_scalar(soa, k, d, x, n, valid, labels, d2, dist); return;
#ifdef HAVE_AVX2_KERNEL
    case CM_KERNEL_AVX2: block_avx2(soa, k, d, x, n, valid, labels, d2, dist); return;
#endif
    default: block_sse2(soa, k, d, x, n, valid, labels, d2, dist); return;
    }
}

int cm__assign(cm_kernel_t kernel, const double *centroids, int k, int d, const float *pts,
               int64_t n, uint16_t *labels, float *d2, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, k < 1 || k > 65535 || d < 1, CM_EUSAGE, "bad k %d or d %d", k, d);
    CM_FAIL_IF(ctx, !cm__kernel_available(kernel), CM_EUSAGE, "the %s kernel is not available",
               cm__kernel_name(kernel));
    float *soa = malloc(sizeof(float) * (size_t)k * d), *dist = malloc(sizeof(float) * (size_t)k);
    if (!soa || !dist) {
        free(soa);
        free(dist);
        return cm_fail(ctx, CM_ENOMEM, "out of memory");
    }
    cm__centroids_soa(centroids, k, d, soa);
    cm__assign_block(kernel, soa, k, d, pts, n, NULL, labels, d2, dist);
    free(dist);
    free(soa);
    return 0;
}
