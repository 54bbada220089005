/* Samples to features and centres back to samples: the one place that knows sample types,
 * masks (alpha, nodata, non-finite floats), the colour space and the standardisation of
 * features (colorspace.c holds the Lab arithmetic). */
#include <assert.h>
#include <math.h>
#include <string.h>

#include "engine_internal.h"

void cm__pixfmt_init(cm__pixfmt_t *f, const cm_source_t *src, const double *mean, const double *std)
{
    const cm_grid_t *g = &src->grid;
    /* Samples are compared with nodata in their own type, as GDAL does: a float image holds
     * "0.1" as the float nearest to it. */
    double nodata = g->stype == CM_F32 ? (double)(float)src->nodata : src->nodata;
    *f = (cm__pixfmt_t){.bands = g->bands,
                        .alpha = g->alpha_band,
                        .stype = g->stype,
                        .has_nodata = src->has_nodata,
                        .nodata_any = src->nodata_any,
                        .associated = src->alpha_associated && g->alpha_band >= 0,
                        .nodata = nodata,
                        .scaled = mean != NULL};
    switch (g->stype) {
    case CM_U8: f->alpha_max = f->hi = UINT8_MAX; break;
    case CM_U16: f->alpha_max = f->hi = UINT16_MAX; break;
    case CM_I16:
        f->alpha_max = f->hi = INT16_MAX;
        f->lo = INT16_MIN;
        break;
    case CM_F32:
        f->alpha_max = 1.0;
        f->lo = -INFINITY;
        f->hi = INFINITY;
        break;
    }
    for (int b = 0; b < g->bands; b++)
        if (b != g->alpha_band) f->band[f->d++] = b;
    for (int i = 0; mean && i < f->d; i++) {
        f->shift[i] = (float)mean[i];
        f->mul[i] = (float)(1.0 / std[i]);
    }
}

/* One macro body per sample type keeps the loops free of per-sample switches. A NaN nodata
 * equals no sample, but NaN samples are masked as non-finite whatever the rule. Nodata is
 * compared with the samples as stored, premultiplied or not. */
#define TO_FEATURES(T, IS_FLOAT)                                                                   \
    do {                                                                                           \
        const T *p = (const T *)buf + first * f->bands;                                            \
        if (plain && !IS_FLOAT) { /* every sample a feature, as it is */                           \
            for (int64_t i = 0; i < n * f->d; i++) feat[i] = (float)p[i];                          \
            memset(valid, 1, (size_t)n);                                                           \
            break;                                                                                 \
        }                                                                                          \
        int nodata_at = f->nodata_any ? 1 : f->d; /* samples equal to nodata that mask */          \
        for (int64_t i = 0; i < n; i++, p += f->bands) {                                           \
            bool ok = f->alpha < 0 || p[f->alpha] != 0;                                            \
            double a = f->associated ? (double)p[f->alpha] : 0.0;                                  \
            if (f->associated && !(a > 0)) ok = false; /* negative, or NaN */                      \
            bool straighten = f->associated && a > 0 && a < f->alpha_max;                          \
            int at_nodata = 0;                                                                     \
            float *x = feat + i * f->d;                                                            \
            for (int j = 0; j < f->d; j++) {                                                       \
                T v = p[f->band[j]];                                                               \
                x[j] = straighten ? cm__straight(f, (double)v, a) : (float)v;                      \
                if (IS_FLOAT && !isfinite(x[j])) ok = false;                                       \
                at_nodata += f->has_nodata && (double)v == f->nodata;                              \
                if (f->scaled && !f->lab) x[j] = (x[j] - f->shift[j]) * f->mul[j];                 \
            }                                                                                      \
            if (at_nodata >= nodata_at) ok = false;                                                \
            if (f->lab) {                                                                          \
                cm__lab_features(f->stype, x);                                                     \
                for (int j = 0; f->scaled && j < f->d; j++)                                        \
                    x[j] = (x[j] - f->shift[j]) * f->mul[j];                                       \
            }                                                                                      \
            valid[i] = ok;                                                                         \
        }                                                                                          \
    } while (0)

void cm__to_features(const cm__pixfmt_t *f, const void *buf, int64_t first, int64_t n, float *feat,
                     uint8_t *valid)
{
    bool plain = f->alpha < 0 && !f->has_nodata && !f->scaled && !f->lab;
    switch (f->stype) {
    case CM_U8: TO_FEATURES(uint8_t, false); break;
    case CM_U16: TO_FEATURES(uint16_t, false); break;
    case CM_I16: TO_FEATURES(int16_t, false); break;
    case CM_F32: TO_FEATURES(float, true); break;
    }
}

/* A centre colour c (a sample value) premultiplied by alpha a (0 < a < f->alpha_max) again:
 * c x a / max, rounded and clamped (float: c x a). */
static double premultiplied(const cm__pixfmt_t *f, double c, double a)
{
    double s = c * a / f->alpha_max;
    return f->stype == CM_F32 ? s : cm__clamp_round(s, f->lo, f->hi);
}

#define RECOLOUR(T)                                                                                \
    do {                                                                                           \
        T *p = (T *)buf + first * f->bands;                                                        \
        const T *cols = colors;                                                                    \
        for (int64_t i = 0; i < n; i++, p += f->bands) {                                           \
            if (labels[i] == CM__MASKED) continue;                                                 \
            const T *c = cols + (size_t)labels[i] * f->d;                                          \
            double a = f->associated ? (double)p[f->alpha] : 0.0;                                  \
            if (f->associated && a < f->alpha_max)                                                 \
                for (int j = 0; j < f->d; j++)                                                     \
                    p[f->band[j]] = (T)premultiplied(f, (double)c[j], a);                          \
            else                                                                                   \
                for (int j = 0; j < f->d; j++) p[f->band[j]] = c[j];                               \
        }                                                                                          \
    } while (0)

/* The common case of 8-bit colour first in the pixel, then alpha or nothing, with D (a
 * constant) features: a copy the compiler unrolls. */
#define RECOLOUR_U8_LEADING(D)                                                                     \
    do {                                                                                           \
        uint8_t *p = (uint8_t *)buf + first * f->bands;                                            \
        const uint8_t *cols = colors;                                                              \
        for (int64_t i = 0; i < n; i++, p += f->bands)                                             \
            if (labels[i] != CM__MASKED)                                                           \
                for (int j = 0; j < (D); j++) p[j] = cols[(size_t)labels[i] * (D) + j];            \
    } while (0)

void cm__recolor(const cm__pixfmt_t *f, void *buf, int64_t first, int64_t n, const uint16_t *labels,
                 const void *colors)
{
    bool leading = !f->associated && (f->alpha < 0 || f->alpha == f->d);
    if (f->stype == CM_U8 && leading && (f->d == 1 || f->d == 3)) {
        if (f->d == 1)
            RECOLOUR_U8_LEADING(1);
        else
            RECOLOUR_U8_LEADING(3);
        return;
    }
    switch (f->stype) {
    case CM_U8: RECOLOUR(uint8_t); break;
    case CM_U16: RECOLOUR(uint16_t); break;
    case CM_I16: RECOLOUR(int16_t); break;
    case CM_F32: RECOLOUR(float); break;
    }
}

void cm__model_colors(const cm_model_t *m, cm_stype_t t, void *out)
{
    for (size_t i = 0; i < (size_t)m->k * m->d; i++) {
        double v = m->centroids[i];
        switch (t) {
        case CM_U8: ((uint8_t *)out)[i] = (uint8_t)cm__clamp_round(v, 0, UINT8_MAX); break;
        case CM_U16: ((uint16_t *)out)[i] = (uint16_t)cm__clamp_round(v, 0, UINT16_MAX); break;
        case CM_I16: ((int16_t *)out)[i] = (int16_t)cm__clamp_round(v, INT16_MIN, INT16_MAX); break;
        case CM_F32: ((float *)out)[i] = (float)v; break;
        }
    }
}

void cm_model_colors_u8(const cm_model_t *m, uint8_t *out)
{
    cm__model_colors(m, CM_U8, out);
}

bool cm_labels_plan(const cm_source_t *src, int k, int *bits, uint32_t *masked)
{
    const cm_grid_t *g = &src->grid;
    bool maskable = g->alpha_band >= 0 || src->has_nodata || g->stype == CM_F32;
    *bits = k + (maskable ? 1 : 0) <= 256 ? 8 : 16;
    *masked = *bits == 8 ? UINT8_MAX : UINT16_MAX;
    return maskable;
}

void cm__centroid_features(cm_colorspace_t cs, cm_stype_t t, int d, const double *mean,
                           const double *std, const double *in, double *out)
{
    for (int b = 0; b < d; b++) out[b] = in[b];
    if (cs == CM_COLORSPACE_LAB) {
        assert(d == 3);
        cm__srgb_to_lab(t, in, out);
    }
    for (int b = 0; mean && b < d; b++) out[b] = (out[b] - mean[b]) / std[b];
}

void cm__centroid_samples(cm_colorspace_t cs, cm_stype_t t, int d, const double *mean,
                          const double *std, const double *in, double *out)
{
    double x[CM_BANDS_MAX];
    for (int b = 0; b < d; b++) x[b] = mean ? in[b] * std[b] + mean[b] : in[b];
    if (cs == CM_COLORSPACE_LAB) {
        assert(d == 3);
        cm__lab_to_srgb(t, x, out);
        return;
    }
    for (int b = 0; b < d; b++) out[b] = x[b];
}
