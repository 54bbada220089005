/* The fitted model: its memory, its colours, and its JSON form (through jansson). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cm_version.h"
#include "engine_internal.h"

static const char *const algorithm_names[] = {"minibatch", "lloyd", "histogram", "auto"};

const char *cm_algorithm_name(cm_algorithm_t a)
{
    return (unsigned)a < sizeof algorithm_names / sizeof algorithm_names[0] ? algorithm_names[a]
                                                                            : "unknown";
}

cm_model_t *cm__model_new(int k, int d)
{
    cm_model_t *m = calloc(1, sizeof(cm_model_t));
    if (!m) return NULL;
    m->k = k;
    m->d = d;
    m->centroids = calloc((size_t)k * d, sizeof(double));
    m->counts = calloc((size_t)k, sizeof(int64_t));
    if (!m->centroids || !m->counts) {
        cm_model_free(m);
        return NULL;
    }
    return m;
}

cm_model_t *cm__model_copy(const cm_model_t *m)
{
    cm_model_t *c = cm__model_new(m->k, m->d);
    if (!c) return NULL;
    double *centroids = c->centroids;
    int64_t *counts = c->counts;
    *c = *m;
    c->centroids = centroids;
    c->counts = counts;
    c->mean = c->std = NULL;
    memcpy(c->centroids, m->centroids, sizeof(double) * (size_t)m->k * m->d);
    memcpy(c->counts, m->counts, sizeof(int64_t) * (size_t)m->k);
    if (m->mean) {
        c->mean = malloc(sizeof(double) * (size_t)m->d);
        c->std = malloc(sizeof(double) * (size_t)m->d);
        if (!c->mean || !c->std) {
            cm_model_free(c);
            return NULL;
        }
        memcpy(c->mean, m->mean, sizeof(double) * (size_t)m->d);
        memcpy(c->std, m->std, sizeof(double) * (size_t)m->d);
    }
    return c;
}

void cm_model_free(cm_model_t *m)
{
    if (!m) return;
    free(m->centroids);
    free(m->counts);
    free(m->mean);
    free(m->std);
    free(m);
}

char *cm__model_to_json(const cm_model_t *m, int bands, int alpha_band, const char *sample_type)
{
    json_t *root = json_object(), *cents = json_array(), *counts = json_array();
    json_t *shares = json_array();
    if (!root || !cents || !counts || !shares) goto fail;
    /* Each colour's share of the pixels counted, for readers that want proportions (a palette)
     * without summing the counts; summed as doubles, which cannot overflow. */
    double total = 0;
    for (int j = 0; j < m->k; j++) total += (double)m->counts[j];
    for (int j = 0; j < m->k; j++) {
        json_t *row = json_array();
        if (!row || json_array_append_new(cents, row)) goto fail;
        for (int b = 0; b < m->d; b++)
            if (json_array_append_new(row, json_real(m->centroids[(size_t)j * m->d + b])))
                goto fail;
        if (json_array_append_new(counts, json_integer(m->counts[j]))) goto fail;
        double share = total > 0 ? (double)m->counts[j] / total : 0.0;
        if (json_array_append_new(shares, json_real(share))) goto fail;
    }
    int bad = json_object_set_new(root, "format", json_string("chunkmeans-model"));
    bad |= json_object_set_new(root, "schema_version", json_integer(CM_MODEL_SCHEMA));
    bad |= json_object_set_new(root, "chunkmeans_version", json_string(CM_VERSION));
    bad |= json_object_set_new(root, "k", json_integer(m->k));
    bad |= json_object_set_new(root, "bands", json_integer(bands));
    bad |= json_object_set_new(root, "features", json_integer(m->d));
    bad |= json_object_set_new(root, "alpha_band",
                               alpha_band >= 0 ? json_integer(alpha_band) : json_null());
    bad |= json_object_set_new(root, "sample_type", json_string(sample_type));
    bad |= json_object_set_new(root, "colorspace", json_string(cm_colorspace_name(m->colorspace)));
    json_t *scale = json_null();
    if (m->mean) {
        json_t *mean = json_array(), *std = json_array();
        for (int b = 0; b < m->d; b++) {
            bad |= json_array_append_new(mean, json_real(m->mean[b]));
            bad |= json_array_append_new(std, json_real(m->std[b]));
        }
        scale = json_object();
        bad |= json_object_set_new(scale, "method", json_string("standard"));
        bad |= json_object_set_new(scale, "mean", mean);
        bad |= json_object_set_new(scale, "std", std);
    }
    bad |= json_object_set_new(root, "scale", scale);
    bad |= json_object_set_new(root, "centroids", cents);
    bad |= json_object_set_new(root, "counts", counts);
    bad |= json_object_set_new(root, "shares", shares);
    cents = counts = shares = NULL;
    bad |= json_object_set_new(root, "inertia", json_real(m->inertia));
    bad |= json_object_set_new(root, "pixels", json_integer(m->n_pixels));
    bad |= json_object_set_new(root, "seed", json_integer((json_int_t)m->seed));
    bad |= json_object_set_new(root, "algorithm", json_string(algorithm_names[m->algorithm]));
    bad |= json_object_set_new(root, "iterations", json_integer(m->iterations));
    bad |= json_object_set_new(root, "converged", json_boolean(m->converged));
    bad |= json_object_set_new(root, "sample_pixels", json_integer(m->sample_px));
    if (bad) goto fail;
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    return text;
fail:
    json_decref(cents);
    json_decref(counts);
    json_decref(shares);
    json_decref(root);
    return NULL;
}

/* ---- reading a model back ---- */

typedef struct reader {
    json_t *root;
    const char *name;
    cm_ctx_t *ctx;
    const char *kind; /* what the file is not, in messages (NULL: a chunkmeans model) */
} reader_t;

static int bad(const reader_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(const reader_t *r, const char *fmt, ...)
{
    char why[CM_MSG_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return cm_fail(r->ctx, CM_EINPUT, "%s: not %s: %s", r->name,
                   r->kind ? r->kind : "a chunkmeans model", why);
}

/* The integer member key, within [lo, hi]; absent gives def when optional. */
static int get_int(const reader_t *r, const char *key, bool required, json_int_t def, json_int_t lo,
                   json_int_t hi, json_int_t *out)
{
    json_t *v = json_object_get(r->root, key);
    if (!v && !required) {
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(r, "\"%s\" must be a whole number from %lld to %lld", key, (long long)lo,
                   (long long)hi);
    *out = json_integer_value(v);
    return 0;
}

/* An array of exactly n finite numbers (each above zero when positive is set), into out. */
static int get_numbers(const reader_t *r, const json_t *a, size_t n, bool positive,
                       const char *what, double *out)
{
    if (!json_is_array(a) || json_array_size(a) != n)
        return bad(r, "%s must be a list of %zu numbers", what, n);
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(a, i);
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || (positive && !(x > 0)))
            return bad(r, "%s[%zu] must be a finite%s number", what, i,
                       positive ? " positive" : "");
        out[i] = x;
    }
    return 0;
}

/* The header: what the model fits (meta), its k and features. */
static int read_header(const reader_t *r, cm_model_meta_t *meta, json_int_t *k, json_int_t *d)
{
    json_t *root = r->root;
    if (!json_is_object(root)) return bad(r, "the top level must be an object");
    if (!json_is_string(json_object_get(root, "format")) ||
        strcmp(json_string_value(json_object_get(root, "format")), "chunkmeans-model"))
        return bad(r, "\"format\" must be \"chunkmeans-model\"");
    json_int_t schema = 0, bands = 0, alpha = -1;
    CM_TRY(get_int(r, "schema_version", true, 0, 1, INT32_MAX, &schema));
    if (schema != CM_MODEL_SCHEMA)
        return bad(r, "schema version %lld; this chunkmeans reads version %d", (long long)schema,
                   CM_MODEL_SCHEMA);
    CM_TRY(get_int(r, "k", true, 0, 1, CM_K_MAX, k));
    CM_TRY(get_int(r, "bands", true, 0, 1, CM_BANDS_MAX, &bands));
    json_t *a = json_object_get(root, "alpha_band");
    if (!json_is_null(a)) CM_TRY(get_int(r, "alpha_band", true, 0, 0, bands - 1, &alpha));
    CM_TRY(get_int(r, "features", true, 0, bands - (alpha >= 0), bands - (alpha >= 0), d));
    const char *st = json_string_value(json_object_get(root, "sample_type"));
    static const cm_stype_t types[] = {CM_U8, CM_U16, CM_I16, CM_F32};
    int ti = -1;
    for (int i = 0; i < 4 && st; i++)
        if (!strcmp(st, cm_stype_name(types[i]))) ti = i;
    if (ti < 0) return bad(r, "\"sample_type\" must be uint8, uint16, int16 or float32");
    *meta = (cm_model_meta_t){.bands = (int)bands, .alpha_band = (int)alpha, .stype = types[ti]};
    const char *version = json_string_value(json_object_get(root, "chunkmeans_version"));
    snprintf(meta->version, sizeof meta->version, "%s", version ? version : "");
    return 0;
}

/* The k centroids and, when given, their counts and shares. */
static int read_centroids(const reader_t *r, cm_model_t *m)
{
    int k = m->k, d = m->d;
    json_t *cents = json_object_get(r->root, "centroids");
    if (!json_is_array(cents) || json_array_size(cents) != (size_t)k)
        return bad(r, "\"centroids\" must be a list of k = %d rows", k);
    for (int j = 0; j < k; j++) {
        char what[32];
        snprintf(what, sizeof what, "centroids[%d]", j);
        CM_TRY(get_numbers(r, json_array_get(cents, (size_t)j), (size_t)d, false, what,
                           m->centroids + (size_t)j * d));
    }
    json_t *counts = json_object_get(r->root, "counts");
    if (counts && (!json_is_array(counts) || json_array_size(counts) != (size_t)k))
        return bad(r, "\"counts\" must be a list of k = %d whole numbers", k);
    for (int j = 0; counts && j < k; j++) {
        json_t *c = json_array_get(counts, (size_t)j);
        if (!json_is_integer(c) || json_integer_value(c) < 0)
            return bad(r, "counts[%d] must be a whole number >= 0", j);
        m->counts[j] = json_integer_value(c);
    }
    /* Derived from the counts for readers that want proportions, so only checked here; models
     * written before the field was added have none. */
    json_t *shares = json_object_get(r->root, "shares");
    if (shares && (!json_is_array(shares) || json_array_size(shares) != (size_t)k))
        return bad(r, "\"shares\" must be a list of k = %d numbers from 0 to 1", k);
    for (int j = 0; shares && j < k; j++) {
        json_t *v = json_array_get(shares, (size_t)j);
        double x = json_number_value(v);
        if (!json_is_number(v) || !(x >= 0 && x <= 1))
            return bad(r, "shares[%d] must be a number from 0 to 1", j);
    }
    return 0;
}

/* The space distances are measured in: the colour space, and the scaling of the features. */
static int read_space(const reader_t *r, cm_stype_t stype, cm_model_t *m)
{
    int d = m->d;
    json_t *cs = json_object_get(r->root, "colorspace"); /* absent: rgb, as before it was written */
    if (cs) {
        const char *name = json_string_value(cs);
        if (!name || (strcmp(name, "rgb") && strcmp(name, "lab")))
            return bad(r, "\"colorspace\" must be \"rgb\" or \"lab\"");
        m->colorspace = strcmp(name, "lab") ? CM_COLORSPACE_RGB : CM_COLORSPACE_LAB;
        if (m->colorspace == CM_COLORSPACE_LAB && (d != 3 || stype == CM_I16))
            return bad(r, "\"colorspace\" lab needs 3 features of uint8, uint16 or float32");
    }
    json_t *scale = json_object_get(r->root, "scale");
    if (scale && !json_is_null(scale)) {
        const char *method = json_string_value(json_object_get(scale, "method"));
        if (!json_is_object(scale) || !method || strcmp(method, "standard"))
            return bad(r, "\"scale\" must be null or {\"method\": \"standard\", ...}");
        m->mean = malloc((size_t)d * sizeof(double));
        m->std = malloc((size_t)d * sizeof(double));
        if (!m->mean || !m->std) return cm_fail(r->ctx, CM_ENOMEM, "%s: out of memory", r->name);
        CM_TRY(get_numbers(r, json_object_get(scale, "mean"), (size_t)d, false, "scale.mean",
                           m->mean));
        CM_TRY(get_numbers(r, json_object_get(scale, "std"), (size_t)d, true, "scale.std", m->std));
    }
    return 0;
}

/* What the fit and the last remap measured: inertia, pixels, steps, seed, algorithm. */
static int read_figures(const reader_t *r, cm_model_t *m)
{
    json_int_t v = 0;
    json_t *inertia = json_object_get(r->root, "inertia");
    if (inertia && (!json_is_number(inertia) || !(json_number_value(inertia) >= 0) ||
                    !isfinite(json_number_value(inertia))))
        return bad(r, "\"inertia\" must be a finite number >= 0");
    m->inertia = inertia ? json_number_value(inertia) : 0;
    CM_TRY(get_int(r, "pixels", false, 0, 0, INT64_MAX, &v));
    m->n_pixels = v;
    CM_TRY(get_int(r, "sample_pixels", false, 0, 0, INT64_MAX, &v));
    m->sample_px = v;
    CM_TRY(get_int(r, "iterations", false, 0, 0, INT32_MAX, &v));
    m->iterations = (int)v;
    CM_TRY(get_int(r, "seed", false, 0, INT64_MIN, INT64_MAX, &v));
    m->seed = (uint64_t)v; /* written as the signed integer of the same bits */
    json_t *conv = json_object_get(r->root, "converged");
    if (conv && !json_is_boolean(conv)) return bad(r, "\"converged\" must be true or false");
    m->converged = json_is_true(conv);
    json_t *alg = json_object_get(r->root, "algorithm");
    m->algorithm = CM_ALG_MINIBATCH;
    if (alg) {
        const char *name = json_string_value(alg);
        int found = -1;
        for (int i = 0; i < 3 && name; i++)
            if (!strcmp(name, algorithm_names[i])) found = i;
        if (found < 0) return bad(r, "\"algorithm\" must be minibatch, lloyd or histogram");
        m->algorithm = (cm_algorithm_t)found;
    }
    return 0;
}

static int read_model(const reader_t *r, cm_model_t **out, cm_model_meta_t *meta)
{
    json_int_t k = 0, d = 0;
    CM_TRY(read_header(r, meta, &k, &d));
    cm_model_t *m = cm__model_new((int)k, (int)d);
    if (!m) return cm_fail(r->ctx, CM_ENOMEM, "%s: out of memory", r->name);
    *out = m;
    CM_TRY(read_centroids(r, m));
    CM_TRY(read_space(r, meta->stype, m));
    return read_figures(r, m);
}

int cm__model_from_json(const char *text, size_t len, const char *name, cm_model_t **out,
                        cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    *out = NULL;
    json_error_t jerr;
    reader_t r = {json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), name, ctx, NULL};
    if (!r.root)
        return cm_fail(ctx, CM_EINPUT, "%s: not JSON: %s at line %d, column %d", name, jerr.text,
                       jerr.line, jerr.column);
    cm_model_t *m = NULL;
    int rc = read_model(&r, &m, meta);
    json_decref(r.root);
    if (rc < 0) {
        cm_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* ---- starting centres ---- */

/* Rows of d numbers from a JSON list (of colours, say) into a new array of *k rows. */
static int read_rows(const reader_t *r, const json_t *rows, const char *what, int d,
                     double **centroids, int *k)
{
    size_t n = json_array_size(rows);
    if (n < 1 || n > CM_K_MAX)
        return bad(r, "%s must hold from 1 to %d colours, not %zu", what, CM_K_MAX, n);
    double *c = malloc(sizeof(double) * n * (size_t)d);
    if (!c) return cm_fail(r->ctx, CM_ENOMEM, "%s: out of memory", r->name);
    for (size_t j = 0; j < n; j++) {
        const json_t *row = json_array_get(rows, j);
        char name[48];
        snprintf(name, sizeof name, "%s[%zu]", what, j);
        if (json_is_array(row) && json_array_size(row) != (size_t)d) {
            free(c);
            return cm_fail(r->ctx, CM_EINPUT, "%s: %s has %zu values; the image has %d bands",
                           r->name, name, json_array_size(row), d);
        }
        int rc = get_numbers(r, row, (size_t)d, false, name, c + j * (size_t)d);
        if (rc < 0) {
            free(c);
            return rc;
        }
    }
    *centroids = c;
    *k = (int)n;
    return 0;
}

int cm__init_from_json(const char *text, size_t len, const char *name, int d, double **centroids,
                       int *k, cm_ctx_t *ctx)
{
    *centroids = NULL;
    *k = 0;
    CM_FAIL_IF(ctx, d < 1 || d > CM_BANDS_MAX, CM_EUSAGE, "%s: %d features", name, d);
    json_error_t jerr;
    reader_t r = {json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr), name, ctx,
                  "a list of starting colours"};
    if (!r.root)
        return cm_fail(ctx, CM_EINPUT, "%s: not JSON: %s at line %d, column %d", name, jerr.text,
                       jerr.line, jerr.column);
    int rc;
    json_t *colors = json_object_get(r.root, "colors");
    if (json_is_object(r.root) && json_object_get(r.root, "format")) {
        cm_model_t *m = NULL;
        cm_model_meta_t meta;
        rc = cm__model_from_json(text, len, name, &m, &meta, ctx);
        if (rc == 0 && m->d != d)
            rc = cm_fail(ctx, CM_EINPUT, "%s: the model has %d features; the image has %d bands",
                         name, m->d, d);
        if (rc == 0) {
            *centroids = m->centroids; /* in sample units, whatever the model's colour space */
            *k = m->k;
            m->centroids = NULL;
        }
        cm_model_free(m);
    } else if (json_is_object(r.root) && json_is_array(colors)) {
        rc = read_rows(&r, colors, "colors", d, centroids, k);
    } else if (json_is_array(r.root)) {
        rc = read_rows(&r, r.root, "colours", d, centroids, k);
    } else {
        rc = cm_fail(ctx, CM_EINPUT,
                     "%s: starting centres must be a chunkmeans model, {\"colors\": [[...], "
                     "...]} or a list of colours [[...], ...]",
                     name);
    }
    json_decref(r.root);
    return rc;
}
