/* Helpers shared by the engine's files; not part of the library's interface. */
#ifndef CM_ENGINE_INTERNAL_H
#define CM_ENGINE_INTERNAL_H

#include <math.h>

#include "base_internal.h"
#include "cm_comm.h"
#include "cm_engine.h"
#include "engine_private.h"

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

/* The centroids c (k rows of d) band by band, as floats: d rows of k, in soa. The layout the
 * nearest-centroid kernels read. */
static inline void cm__centroids_soa(const double *c, int k, int d, float *soa)
{
    for (int j = 0; j < k; j++)
        for (int b = 0; b < d; b++) soa[(size_t)b * k + j] = (float)c[(size_t)j * d + b];
}

/* How a source's samples become features: which bands, which mask, which scaling. */
typedef struct cm__pixfmt {
    int bands, alpha, d;
    int band[CM_BANDS_MAX]; /* the band of each feature */
    cm_stype_t stype;
    bool has_nodata, scaled;
    bool nodata_any; /* a pixel is nodata when any colour sample is (else when all are) */
    bool lab;        /* the 3 features are CIELAB of the sRGB samples (before the scaling) */
    bool associated; /* premultiplied alpha: features are the colour, sample x max / alpha */
    double nodata;
    double alpha_max, lo, hi;                     /* opaque alpha; the range of samples */
    float shift[CM_BANDS_MAX], mul[CM_BANDS_MAX]; /* feature = (sample - shift) * mul */
} cm__pixfmt_t;

/* The label of a masked pixel in the engine's own uint16 labels (k <= 65535, so never a
 * cluster's). */
enum { CM__MASKED = 0xffff };

/* v rounded to the nearest whole number (ties to even) and clamped to [lo, hi]. */
static inline double cm__clamp_round(double v, double lo, double hi)
{
    v = nearbyint(v);
    return v < lo ? lo : v > hi ? hi : v;
}

/* The colour of sample s of a pixel of premultiplied alpha a (0 < a < f->alpha_max): s x max /
 * a, rounded to the nearest sample value and clamped to the type's range (float: s / a). Whole
 * numbers stay whole, so the colour cache and the histogram of 8-bit images stay exact. */
static inline float cm__straight(const cm__pixfmt_t *f, double s, double a)
{
    double c = s * f->alpha_max / a;
    return (float)(f->stype == CM_F32 ? c : cm__clamp_round(c, f->lo, f->hi));
}

/* The colour of an 8-bit pixel as one number: its feature samples (their colour, with
 * associated alpha), first in the high byte. The key of the colour cache, the histogram and the
 * colour count. */
static inline uint32_t cm__color_key(const cm__pixfmt_t *f, const uint8_t *px)
{
    uint32_t key = 0;
    int a = f->associated ? px[f->alpha] : UINT8_MAX;
    for (int j = 0; j < f->d; j++) {
        uint32_t s = px[f->band[j]];
        if (a > 0 && a < UINT8_MAX) s = (uint32_t)cm__straight(f, s, a);
        key = key << 8 | s;
    }
    return key;
}

/* The clusters a fit makes: init_k with given centres, else k. */
static inline int cm__params_k(const cm_params_t *p)
{
    return p->init_centroids ? p->init_k : p->k;
}

/* CIELAB of the sRGB colour in x (3 sample values of type t), in place. The one conversion
 * of samples to Lab features, so the sample, the remap and the histogram agree to the bit. */
void cm__lab_features(cm_stype_t t, float *x);

/* 0 when colour space cs can be used on images of grid g, else CM_EUSAGE with the reason. */
int cm__colorspace_check(const cm_grid_t *g, cm_colorspace_t cs, cm_ctx_t *ctx);

/* One centre (d values) from sample units to the features distances are measured in (Lab
 * with cs lab, then standardised when mean and std are not NULL), and back; in and out may
 * be the same array. */
void cm__centroid_features(cm_colorspace_t cs, cm_stype_t t, int d, const double *mean,
                           const double *std, const double *in, double *out);
void cm__centroid_samples(cm_colorspace_t cs, cm_stype_t t, int d, const double *mean,
                          const double *std, const double *in, double *out);

/* Sets up f for src; mean and std (d each) standardise the features, or are both NULL. f
 * converts to Lab when f->lab is set after this. */
void cm__pixfmt_init(cm__pixfmt_t *f, const cm_source_t *src, const double *mean,
                     const double *std);

/* Features of pixels [first, first + n) of a chunk buffer into feat (n rows of d floats), and
 * valid[i] = 1 where the pixel takes part: alpha not 0, not nodata (all its colour samples equal
 * to nodata, or any of them with nodata_any), every colour sample finite. With associated alpha
 * the features are the pixels' colours (cm__straight) and alpha 0 or less masks. */
void cm__to_features(const cm__pixfmt_t *f, const void *buf, int64_t first, int64_t n, float *feat,
                     uint8_t *valid);

/* Writes colours[labels[i]] (k rows of d samples of the grid's type) into the feature bands
 * of pixels [first, first + n), premultiplied by the pixel's alpha with associated alpha;
 * pixels labelled CM__MASKED are left as they are. */
void cm__recolor(const cm__pixfmt_t *f, void *buf, int64_t first, int64_t n, const uint16_t *labels,
                 const void *colors);

/* Allocates a model with k centres of d features (zeroed); NULL when out of memory. */
cm_model_t *cm__model_new(int k, int d);

/* The fitting sample (cm_sample_take): n points of d features in pixel order (source by
 * source), already in the features of the fit: Lab with colorspace lab, then standardised
 * with mean and std (d each) with scale standard, else mean and std are NULL. */
struct cm_sample {
    const cm_source_t *srcs; /* the caller's: the exact modes read srcs[0] again */
    int n_srcs, d;
    float *pts;
    int64_t n;
    uint64_t seed;
    int64_t sample_px; /* as asked for (0 resolved) */
    cm_colorspace_t colorspace;
    cm_scale_t scale;
    double *mean, *std;
    /* The image's colour histogram, once a histogram fit on the sample counted it (keys NULL
     * until then): it does not depend on k, so the fits of later k take it from here. */
    uint32_t *hist_keys, *hist_weights;
    int64_t hist_n;
};

/* Greedy k-means++ on n points of d features: k centres, the first drawn uniformly, each other
 * the best of 2 + ln k points drawn with probability proportional to their squared distance to
 * the centres so far; stops with CM_ECANCELED when *cancel becomes non-zero (NULL: never). */
int cm__kmeanspp(const float *pts, int64_t n, int d, int k, uint64_t seed,
                 const volatile sig_atomic_t *cancel, double *centroids, cm_ctx_t *ctx);

/* The pixels a sample of p holds about: p->sample_px, or 2^20 when 0. */
int64_t cm__sample_px(const cm_params_t *p);

/* Bytes a sample task holds while it runs: its chunk and a row of features. */
size_t cm__sample_task_bytes(const cm_source_t *src);

/* Refines the starting centres of m (in standardised units if m is scaled) with exact Lloyd
 * iterations over every pixel of src, or over its colour histogram (an empty centre moves to
 * the farthest pixel, one per iteration); sets counts, inertia,
 * iterations and converged. The histogram is taken from sample when it holds one, else counted
 * and, when sample is not NULL, kept there for the next fit. */
int cm__fit_exact(const cm_source_t *src, const cm_params_t *p, cm_algorithm_t algorithm,
                  cm_sample_t *sample, cm_model_t *m, cm_ctx_t *ctx);

/* Mini-batch steps (up to p->max_iter, stopping on p->tol) on the n sample points (d features
 * each, standardised if m is), from m's centroids: moves them, and sets counts (the points each
 * took), iterations and converged. */
int cm__minibatch(const float *pts, int64_t n, const cm_params_t *p, cm_model_t *m, cm_ctx_t *ctx);

/* How cm__polish iterates: at most max_iter times, stopping early when no centre moves more
 * than p->tol or when an iteration lowers the inertia by less than the fraction gain of it
 * (0: never); here: in the calling thread (a task of a larger graph), else as a graph. */
typedef struct cm__lloyd {
    int max_iter;
    double gain;
    bool here;
} cm__lloyd_t;

/* Lloyd iterations on the n sample points (d features each, standardised if m is), moving m's
 * centres to exact means of the sample; an empty centre moves to a far point. Sets counts,
 * and *inertia to the sample's inertia at the last assignment. The same result either way
 * how->here is set. */
int cm__polish(const float *pts, int64_t n, const cm_params_t *p, const cm__lloyd_t *how,
               cm_model_t *m, double *inertia, cm_ctx_t *ctx);

/* Nearest centres of n points with a kernel (soa: d rows of k; dist: k floats of scratch);
 * points with valid[i] == 0 are skipped (valid NULL: none). */
void cm__assign_block(cm_kernel_t kernel, const float *soa, int k, int d, const float *x, int64_t n,
                      const uint8_t *valid, uint16_t *labels, float *d2, float *dist);

/* Runs a graph with the parameters' threads, budget, cancel flag and a progress stage. */
int cm__graph_run(cm_graph_t *g, const cm_params_t *p, const char *stage, cm_ctx_t *ctx);

/* A stage that is one task per item, i from 0 to n - 1: each(i), for the items that want (when
 * set) lets take part, runs in any order and in parallel, holding work_bytes, and counts for
 * progress when counted; then(i) (when set) runs after each(i) and then(i - 1): a reduce in
 * item order, holding nothing. Tasks are named kind and then_kind in traces. */
typedef struct cm__items {
    int64_t n;
    int (*each)(void *user, int64_t i, int worker, cm_ctx_t *ctx);
    int (*then)(void *user, int64_t i, cm_ctx_t *ctx);
    bool (*want)(void *user, int64_t i);
    void *user;
    size_t work_bytes;
    const char *kind, *then_kind;
    bool counted;
} cm__items_t;

/* Runs the items as one graph with p's threads, budget and cancel flag, as stage. */
int cm__run_items(const cm__items_t *items, const cm_params_t *p, const char *stage, cm_ctx_t *ctx);

#endif
