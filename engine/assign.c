/* Nearest-centre assignment: the scalar reference, and the block kernels the remap and the
 * exact modes run, vectorised over pixels (SSE2 for any x86-64, AVX2 chosen at run time where
 * the processor has it). Every kernel sums the squared differences
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

/* The vector kernels: LANES pixels at a time, one lane each, against one centre after the
 * other (broadcast), so that no horizontal argmin is needed and few centres fill the vector as
 * well as many. Each lane does the reference's arithmetic: t = x - c, s = t * t, then s += t * t
 * band by band, and a centre replaces the best only when strictly nearer. Two groups of pixels
 * go side by side, so that the two chains of comparisons overlap; a group's pixels are
 * transposed to band-major first; the last n % (2 LANES) go through the reference. D, the
 * number of features, is a constant in the common cases so that the compiler unrolls the
 * bands. Instantiated with GCC vector types once per instruction set. */
#define LANES_LOOP(LANES, D)                                                                       \
    for (int64_t i = 0; i < whole; i += 2 * (LANES)) {                                             \
        float tx[2][CM_BANDS_MAX][LANES];                                                          \
        vf xs[2][CM_BANDS_MAX];                                                                    \
        for (int g = 0; g < 2; g++)                                                                \
            for (int b = 0; b < (D); b++) {                                                        \
                for (int l = 0; l < (LANES); l++)                                                  \
                    tx[g][b][l] = x[(i + g * (LANES) + l) * (D) + b];                              \
                memcpy(&xs[g][b], tx[g][b], sizeof xs[g][b]);                                      \
            }                                                                                      \
        vf best[2] = {inf, inf};                                                                   \
        vi best_j[2] = {zero, zero};                                                               \
        for (int j = 0; j < k; j++) {                                                              \
            vi jv = zero + j;                                                                      \
            for (int g = 0; g < 2; g++) {                                                          \
                vf t = xs[g][0] - soa[j];                                                          \
                vf s = t * t;                                                                      \
                for (int b = 1; b < (D); b++) {                                                    \
                    t = xs[g][b] - soa[(size_t)b * k + j];                                         \
                    s += t * t;                                                                    \
                }                                                                                  \
                vi closer = s < best[g];                                                           \
                best[g] = (vf)(((vi)s & closer) | ((vi)best[g] & ~closer));                        \
                best_j[g] = (jv & closer) | (best_j[g] & ~closer);                                 \
            }                                                                                      \
        }                                                                                          \
        for (int g = 0; g < 2; g++)                                                                \
            for (int l = 0; l < (LANES); l++) {                                                    \
                int64_t at = i + g * (LANES) + l;                                                  \
                if (valid && !valid[at]) continue;                                                 \
                labels[at] = (uint16_t)best_j[g][l];                                               \
                d2[at] = best[g][l];                                                               \
            }                                                                                      \
    }

#define LANES_BODY(LANES)                                                                          \
    typedef float vf __attribute__((vector_size(4 * (LANES))));                                    \
    typedef int32_t vi __attribute__((vector_size(4 * (LANES))));                                  \
    const vi zero = {0};                                                                           \
    const vf inf = (vf){0} + INFINITY;                                                             \
    int64_t whole = n - n % (2 * (LANES));                                                         \
    switch (d) {                                                                                   \
    case 1: LANES_LOOP(LANES, 1) break;                                                            \
    case 3: LANES_LOOP(LANES, 3) break;                                                            \
    case 4: LANES_LOOP(LANES, 4) break;                                                            \
    default: LANES_LOOP(LANES, d) break;                                                           \
    }                                                                                              \
    block_scalar(soa, k, d, x + whole * d, n - whole, valid ? valid + whole : NULL,                \
                 labels + whole, d2 + whole, dist)

static void block_sse2(const float *soa, int k, int d, const float *x, int64_t n,
                       const uint8_t *valid, uint16_t *labels, float *d2, float *dist)
{
    LANES_BODY(4);
}

#if defined(__x86_64__) || defined(__i386__)
#define HAVE_AVX2_KERNEL 1
__attribute__((target("avx2"))) static void block_avx2(const float *soa, int k, int d,
                                                       const float *x, int64_t n,
                                                       const uint8_t *valid, uint16_t *labels,
                                                       float *d2, float *dist)
{
    LANES_BODY(8);
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
    /* Measured (benchmarks/cm-kernels): the vector kernels are 2.5 to 17 times faster than
     * the reference for every d and k it tries, 2 centres included. */
    if (kernel == CM_KERNEL_AUTO)
        kernel = cm__kernel_available(CM_KERNEL_AVX2) ? CM_KERNEL_AVX2 : CM_KERNEL_SSE2;
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
