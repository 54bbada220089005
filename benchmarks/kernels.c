/* Nanoseconds per pixel of each nearest-centre kernel, for d in {1, 3, 4, 8} features and
 * k in {2, 8, 32, 256} centres, on random data; ratios to the scalar reference measured in the
 * same run. Usage: cm-kernels [PIXELS] (default 2^20). Prints a table; not part of the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine_internal.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    long long n = argc > 1 ? atoll(argv[1]) : 1 << 20;
    if (n < 1) {
        fprintf(stderr, "usage: cm-kernels [PIXELS]\n");
        return 2;
    }
    static const int ds[] = {1, 3, 4, 8}, ks[] = {2, 8, 32, 256};
    const cm_kernel_t kernels[] = {CM_KERNEL_SCALAR, CM_KERNEL_SSE2, CM_KERNEL_AVX2};
    printf("ns per pixel, %lld random pixels (best of 3 runs); ratio = scalar / kernel\n", n);
    printf("%3s %4s %10s %10s %10s %8s %8s\n", "d", "k", "scalar", "vector", "avx2", "x vec",
           "x avx2");
    uint64_t seed = 1;
    for (int di = 0; di < 4; di++)
        for (int ki = 0; ki < 4; ki++) {
            int d = ds[di], k = ks[ki];
            double *c = malloc(sizeof(double) * (size_t)k * d);
            float *x = malloc(sizeof(float) * (size_t)n * d), *d2 = malloc(sizeof(float) * n);
            uint16_t *labels = malloc(sizeof(uint16_t) * n);
            if (!c || !x || !d2 || !labels) return 1;
            for (long long i = 0; i < (long long)k * d; i++)
                c[i] = (double)((seed = seed * 6364136223846793005ULL + 1) >> 56);
            for (long long i = 0; i < n * d; i++)
                x[i] = (float)((seed = seed * 6364136223846793005ULL + 1) >> 56);
            double ns[3] = {0};
            for (int kk = 0; kk < 3; kk++) {
                if (!cm__kernel_available(kernels[kk])) continue;
                double best = 1e30;
                for (int rep = 0; rep < 3; rep++) {
                    cm_ctx_t ctx;
                    cm_ctx_init(&ctx);
                    double t0 = now();
                    if (cm__assign(kernels[kk], c, k, d, x, n, labels, d2, &ctx) < 0) return 1;
                    double t = now() - t0;
                    if (t < best) best = t;
                }
                ns[kk] = best * 1e9 / (double)n;
            }
            printf("%3d %4d %10.2f %10.2f %10.2f %8.2f %8.2f\n", d, k, ns[0], ns[1], ns[2],
                   ns[0] / ns[1], ns[2] > 0 ? ns[0] / ns[2] : 0.0);
            free(c);
            free(x);
            free(d2);
            free(labels);
        }
    return 0;
}
