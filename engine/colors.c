/* Exact count of distinct colours, out of core: chunks stream through the scheduler and mark a
 * bitmap of every possible colour of the non-alpha samples (2^24 bits = 2 MiB for RGB). */
#include <stdlib.h>

#include "engine_internal.h"

typedef struct counter {
    const cm_source_t *src;
    cm__pixfmt_t fmt; /* for the color key: masked pixels count too */
    uint64_t *bits;
} counter_t;

static int mark_chunk(void *user, int64_t idx, int worker, cm_ctx_t *ctx)
{
    const counter_t *c = user;
    const cm_grid_t *g = &c->src->grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, idx, &x, &y, &w, &h);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    CM_FAIL_IF(ctx, !buf, CM_ENOMEM, "out of memory reading chunk %lld", (long long)idx);
    int rc = c->src->read(c->src->self, worker, idx, buf, ctx);
    const uint8_t *px = buf;
    for (int64_t i = 0; rc == 0 && i < w * h; i++, px += g->bands) {
        uint32_t color = cm__color_key(&c->fmt, px);
        uint64_t bit = 1ULL << (color & 63), *word = &c->bits[color >> 6];
        if (!(__atomic_load_n(word, __ATOMIC_RELAXED) & bit))
            __atomic_fetch_or(word, bit, __ATOMIC_RELAXED);
    }
    free(buf);
    return rc;
}

int cm_count_colors(const cm_source_t *src, const cm_params_t *p, int64_t *count, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int d = cm_grid_features(g);
    CM_FAIL_IF(ctx, d > 3 || g->stype != CM_U8, CM_EINPUT,
               "counting colours is supported for 8-bit images of up to 3 colour samples, not %d "
               "of %s",
               d, cm_stype_name(g->stype));
    size_t words = ((size_t)1 << (8 * d)) / 64 + 1;
    counter_t c = {.src = src, .bits = calloc(words, sizeof(uint64_t))};
    CM_FAIL_IF(ctx, !c.bits, CM_ENOMEM, "out of memory counting colours");
    cm__pixfmt_init(&c.fmt, src, NULL, NULL);
    c.fmt.associated = false; /* the samples as stored, as the count promises */
    cm__items_t chunks = {.n = cm_grid_count(g),
                          .each = mark_chunk,
                          .user = &c,
                          .work_bytes = cm_grid_chunk_bytes(g),
                          .kind = "count",
                          .counted = true};
    int rc = cm__run_items(&chunks, p, "count", ctx);
    if (rc == 0) {
        int64_t n = 0;
        for (size_t i = 0; i < words; i++) n += __builtin_popcountll(c.bits[i]);
        *count = n;
    }
    free(c.bits);
    return rc;
}
