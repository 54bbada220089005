/* Model files and files of starting centroids: written atomically, read with every field
 * checked. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* A file of centroids or a model is far less than this: 65535 centroids of 64 bands. */
static const size_t JSON_MAX = (size_t)1 << 30;

int cm__model_write(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                    cm_ctx_t *ctx)
{
    char *json = cm__model_to_json(m, meta->bands, meta->alpha_band, cm_stype_name(meta->stype));
    CM_FAIL_IF(ctx, !json, CM_ENOMEM, "%s: out of memory", path);
    int rc = cm_file_write_atomic(path, json, strlen(json), ctx);
    free(json);
    return rc;
}

int cm_model_save(const cm_model_t *m, const cm_model_meta_t *meta, const char *path, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !m || !meta || !path, CM_EUSAGE, "no model, description or path given");
    return cm__model_write(m, meta, path, ctx);
}

int cm_model_load(const char *path, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    *out = NULL;
    CM_FAIL_IF(ctx, !path, CM_EUSAGE, "no model file given");
    char *text = NULL;
    size_t len = 0;
    int rc = cm_file_read(path, JSON_MAX, &text, &len, ctx);
    cm_model_meta_t ignored;
    if (rc == 0) rc = cm__model_from_json(text, len, path, out, meta ? meta : &ignored, ctx);
    if (rc == 0 && meta) meta->name = path;
    free(text);
    return rc;
}

int cm__init_load(const cm_options_t *o, int d, cm_params_t *p, double **centroids, cm_ctx_t *ctx)
{
    *centroids = NULL;
    if (!o->init_path) return 0;
    char *text = NULL;
    size_t len = 0;
    int k = 0;
    int rc = cm_file_read(o->init_path, JSON_MAX, &text, &len, ctx);
    if (rc == 0) rc = cm__init_from_json(text, len, o->init_path, d, centroids, &k, ctx);
    free(text);
    cm__name_input(ctx, o->init_path);
    if (rc < 0) return rc;
    /* k and the file both say how many centroids: one number, or a refusal. */
    if (p->k > 0 && p->k != k)
        return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_K, p->k, k},
                             CM_NAMED("k = %d") " conflicts with the %d centres of %s", p->k, k,
                             o->init_path);
    p->init_centroids = *centroids;
    p->init_k = k;
    p->k = k;
    return 0;
}
