/* Fuzz target: the model JSON loader. Whatever it accepts must write back to JSON that reads
 * back to the same model. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *m = NULL;
    cm_model_meta_t meta;
    int rc = cm__model_from_json((const char *)data, size, "fuzz.json", &m, &meta, &ctx);
    if (rc < 0) {
        if (m || !ctx.msg[0] || (rc != CM_EINPUT && rc != CM_ENOMEM)) abort();
        return 0;
    }
    char *text = cm__model_to_json(m, meta.bands, meta.alpha_band, cm_stype_name(meta.stype));
    if (text) {
        cm_model_t *back = NULL;
        cm_model_meta_t meta2;
        cm_ctx_init(&ctx);
        if (cm__model_from_json(text, strlen(text), "again.json", &back, &meta2, &ctx)) abort();
        size_t n = (size_t)m->k * (size_t)m->d;
        if (back->k != m->k || back->d != m->d || meta2.bands != meta.bands ||
            memcmp(back->centroids, m->centroids, n * sizeof(double)) ||
            memcmp(back->counts, m->counts, (size_t)m->k * sizeof(int64_t)) ||
            (m->mean && memcmp(back->std, m->std, (size_t)m->d * sizeof(double))) ||
            back->seed != m->seed)
            abort(); /* the model did not survive its own JSON */
        cm_model_free(back);
        free(text);
    }
    cm_model_free(m);
    return 0;
}
