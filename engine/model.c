/* The fitted model: its memory, its colours, and its JSON form (through jansson). */
#include <jansson.h>
#include <stdlib.h>

#include "cm_version.h"
#include "engine_internal.h"

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

void cm_model_free(cm_model_t *m)
{
    if (!m) return;
    free(m->centroids);
    free(m->counts);
    free(m->mean);
    free(m->std);
    free(m);
}

char *cm_model_to_json(const cm_model_t *m, int bands, int alpha_band, const char *sample_type)
{
    json_t *root = json_object(), *cents = json_array(), *counts = json_array();
    if (!root || !cents || !counts) goto fail;
    for (int j = 0; j < m->k; j++) {
        json_t *row = json_array();
        if (!row || json_array_append_new(cents, row)) goto fail;
        for (int b = 0; b < m->d; b++)
            if (json_array_append_new(row, json_real(m->centroids[(size_t)j * m->d + b])))
                goto fail;
        if (json_array_append_new(counts, json_integer(m->counts[j]))) goto fail;
    }
    int bad = json_object_set_new(root, "format", json_string("chunkmeans-model"));
    bad |= json_object_set_new(root, "schema_version", json_integer(1));
    bad |= json_object_set_new(root, "chunkmeans_version", json_string(CM_VERSION));
    bad |= json_object_set_new(root, "k", json_integer(m->k));
    bad |= json_object_set_new(root, "bands", json_integer(bands));
    bad |= json_object_set_new(root, "features", json_integer(m->d));
    bad |= json_object_set_new(root, "alpha_band",
                               alpha_band >= 0 ? json_integer(alpha_band) : json_null());
    bad |= json_object_set_new(root, "sample_type", json_string(sample_type));
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
    cents = counts = NULL;
    bad |= json_object_set_new(root, "inertia", json_real(m->inertia));
    bad |= json_object_set_new(root, "pixels", json_integer(m->n_pixels));
    bad |= json_object_set_new(root, "seed", json_integer((json_int_t)m->seed));
    static const char *const algorithms[] = {"minibatch", "lloyd", "histogram", "auto"};
    bad |= json_object_set_new(root, "algorithm", json_string(algorithms[m->algorithm]));
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
    json_decref(root);
    return NULL;
}
