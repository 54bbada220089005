/* The memory budget of a fit and a remap, checked before any work: the bytes the largest task
 * holds, against the budget; the least budget that works when it is smaller. */
#include "remap_internal.h"

/* What a remap task holds for one model of k centroids: its chunk, counts and labels until
 * written (held), and its scratch while it runs. */
static void task_bytes(const cm_source_t *src, int k, bool labels, size_t *held, size_t *scratch)
{
    const cm_grid_t *g = &src->grid;
    int bits;
    uint32_t masked;
    cm_labels_plan(src, k, &bits, &masked);
    *held = cm_grid_chunk_bytes(g) + sizeof(int64_t) * (size_t)k;
    if (labels) *held += (size_t)g->chunk_w * g->chunk_h * (size_t)(bits / 8);
    *scratch = cm__remap_scratch_bytes(cm_grid_features(g), k);
}

void cm__pass_bytes(const cm_source_t *src, const int *ks, int n, bool labels, size_t *held,
                    size_t *scratch)
{
    *held = *scratch = 0;
    for (int i = 0; i < n; i++) {
        size_t h, w;
        task_bytes(src, ks[i], labels, &h, &w);
        *held += h;
        if (w > *scratch) *scratch = w;
    }
}

size_t cm__budget_need_ks(const cm_source_t *src, const int *ks, int n_k, bool labels)
{
    size_t held, scratch, need = cm__sample_task_bytes(src);
    cm__pass_bytes(src, ks, n_k, labels, &held, &scratch);
    return held + scratch > need ? held + scratch : need;
}

int cm__budget_check_ks(const cm_source_t *src, const cm_params_t *p, const int *ks, int n_k,
                        bool labels, cm_ctx_t *ctx)
{
    size_t need = cm__budget_need_ks(src, ks, n_k, labels);
    if (need <= p->budget_bytes) return 0;
    cm_about_t about = {CM_SETTING_MEMORY, (int64_t)p->budget_bytes, (int64_t)need};
    if (n_k > 1)
        return cm_fail_about(ctx, CM_EBUDGET, about,
                             "memory budget of %zu bytes is too small: a chunk remapped with %d "
                             "models at once needs %zu bytes",
                             p->budget_bytes, n_k, need);
    return cm_fail_about(ctx, CM_EBUDGET, about,
                         "memory budget of %zu bytes is too small: a chunk needs %zu bytes at once",
                         p->budget_bytes, need);
}

int cm__budget_check(const cm_source_t *src, const cm_params_t *p, bool labels, cm_ctx_t *ctx)
{
    int k = cm__params_k(p);
    return cm__budget_check_ks(src, p, &k, 1, labels, ctx);
}
