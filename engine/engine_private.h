/* The engine's functions that the library's other folders (the file-level API) and the tests
 * use, beyond its public header: budgets, model JSON, colour spaces, kernels and seeding.
 * Not installed: not part of the library's interface. */
#ifndef CM_ENGINE_PRIVATE_H
#define CM_ENGINE_PRIVATE_H

#include "cm_engine.h"

/* Checks, before any work, that the budget holds the largest task of a fit and a remap of src
 * (with labels or not); otherwise CM_EBUDGET, with the least budget that works in ctx->about. */
int cm__budget_check(const cm_source_t *src, const cm_params_t *p, bool labels, cm_ctx_t *ctx);

/* The least budget of a fit and a remap pass with n_k models of ks[i] centres each (with label
 * maps when labels): the bytes its largest task holds. */
size_t cm__budget_need_ks(const cm_source_t *src, const int *ks, int n_k, bool labels);

/* cm__budget_check for a fit and a remap pass with n_k models of ks[i] centres each. */
int cm__budget_check_ks(const cm_source_t *src, const cm_params_t *p, const int *ks, int n_k,
                        bool labels, cm_ctx_t *ctx);

/* A copy of m that owns its arrays (free it with cm_model_free), or NULL when out of memory. */
cm_model_t *cm__model_copy(const cm_model_t *m);

/* The centroids' colours as samples of type t (rounded and clamped for integers): k rows of d,
 * written to out (k * d * cm_stype_size(t) bytes). */
void cm__model_colors(const cm_model_t *m, cm_stype_t t, void *out);

/* Model as JSON text (versioned schema); the caller frees the string with free(). NULL when
 * out of memory. `bands`, `alpha_band` and `sample_type` describe the image it was fit on. */
char *cm__model_to_json(const cm_model_t *m, int bands, int alpha_band, const char *sample_type);

/* Reads a model from its JSON text (len bytes, no terminating NUL needed), checking every
 * field of the schema: k rows of finite centroids, counts, scaling, and bands that agree.
 * CM_EINPUT with the reason for anything else; name stands for the file in messages. The
 * caller frees *out with cm_model_free. */
int cm__model_from_json(const char *text, size_t len, const char *name, cm_model_t **out,
                        cm_model_meta_t *meta, cm_ctx_t *ctx);

/* Reads the starting centres of a fit (cm_params_t.init_centres) from JSON text (len bytes,
 * no terminating NUL needed): a chunkmeans model (its centroids), {"colors": [[r, g, b], ...]}
 * or a plain list of rows, in sample units, each of d numbers. *k is the number of rows
 * (1..65535); the caller frees *centres (k rows of d) with free(). CM_EINPUT with the reason,
 * naming the file by name, for anything else (a row of another length among them). */
int cm__init_from_json(const char *text, size_t len, const char *name, int d, double **centroids,
                       int *k, cm_ctx_t *ctx);

/* One colour between sRGB samples of type t (0..255, 0..65535, or float 0..1; int16 is taken
 * as 0..32767) and CIELAB (D65). Both ways are defined for colours outside the sRGB gamut
 * (the curves continue linearly), and rgb is not clamped. Thread-safe. */
void cm__srgb_to_lab(cm_stype_t t, const double rgb[3], double lab[3]);
void cm__lab_to_srgb(cm_stype_t t, const double lab[3], double rgb[3]);

/* Colour differences of two CIELAB colours: ΔE*76 (Euclidean) or CIEDE2000 (kL = kC = kH =
 * 1). */
typedef enum cm__delta_e { CM__DE76, CM__DE2000 } cm__delta_e_t;
double cm__delta_e(cm__delta_e_t formula, const double lab1[3], const double lab2[3]);

/* Mean colour difference between images a and b of n_px pixels of `bands` interleaved
 * samples of type t whose first three non-alpha bands are sRGB; pixels whose alpha is 0 in a
 * are left out. NaN when there are fewer than 3 colour bands or no pixel to compare. */
double cm__mean_delta_e(cm__delta_e_t formula, cm_stype_t t, const void *a, const void *b,
                        int64_t n_px, int bands, int alpha_band);

/* Whether this processor has a kernel, and its name ("scalar", "sse2", "avx2", "auto"). */
bool cm__kernel_available(cm_kernel_t kernel);
const char *cm__kernel_name(cm_kernel_t kernel);

/* Nearest centroids of n points (n rows of d floats) among k centroids (k rows of d): labels[i]
 * and squared distances d2[i], with the given kernel (distances in float, as every kernel
 * measures them). CM_EUSAGE for a kernel this processor lacks. */
int cm__assign(cm_kernel_t kernel, const double *centroids, int k, int d, const float *pts,
               int64_t n, uint16_t *labels, float *d2, cm_ctx_t *ctx);

/* Random seeding of k centres from n points (n*d floats): points drawn uniformly, seeded,
 * skipping values already chosen; when the points hold fewer than k distinct values the extra
 * centres repeat points drawn uniformly. Writes k*d doubles. Thread-safe. */
int cm__init_random(const float *pts, int64_t n, int d, int k, uint64_t seed, double *centroids,
                    cm_ctx_t *ctx);

#endif
