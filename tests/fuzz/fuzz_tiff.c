/* Fuzz target: a TIFF from memory, opened through libtiff's client callbacks, every chunk
 * decoded, and (small images only) a fit and a remap of what was read, so that odd sample
 * values (NaN, infinities, extremes) go through the whole engine. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "io_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum { READ_PX_MAX = 1 << 20, FIT_PX_MAX = 1 << 14 };

static int read_chunk(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    return cm_image_read_chunk(self, worker, idx, buf, ctx);
}

/* What the remap must give: labels below k, or the masked value. */
typedef struct labels_check {
    cm_grid_t grid;
    int k, bits;
    uint32_t masked;
} labels_check_t;

static int check_labels(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                        void *encoded, cm_ctx_t *ctx)
{
    const labels_check_t *c = self;
    int64_t x, y, w, h;
    cm_grid_rect(&c->grid, idx, &x, &y, &w, &h);
    for (int64_t i = 0; i < w * h; i++) {
        uint32_t v = c->bits == 8 ? ((const uint8_t *)labels)[i] : ((const uint16_t *)labels)[i];
        if (v >= (uint32_t)c->k && v != c->masked) abort(); /* a label out of range */
    }
    return 0;
}

/* A bad input must fail with a reason, as a bad input. */
static void check_failure(const cm_ctx_t *ctx, int rc)
{
    if (rc >= 0 || ctx->code != rc || !ctx->msg[0]) abort();
    if (rc != CM_EINPUT && rc != CM_ENOMEM && rc != CM_EBUDGET && rc != CM_EIO) abort();
}

static void fit_and_remap(cm_image_t *img, const cm_image_info_t *in)
{
    cm_source_t src = {.grid = in->grid,
                       .read = read_chunk,
                       .self = img,
                       .has_nodata = in->has_nodata,
                       .nodata = in->nodata};
    cm_params_t p;
    cm_params_default(&p);
    p.k = 3;
    p.n_threads = 1;
    p.max_iter = 4; /* the fuzzer wants paths through the code, not a good fit */
    p.batch = 256;
    p.sample_px = 4096;
    p.budget_bytes = 64 << 20;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *m = NULL;
    int rc = cm_fit(&src, &p, &m, &ctx);
    if (rc == 0) {
        labels_check_t check = {.grid = in->grid, .k = m->k};
        cm_labels_plan(&src, m->k, &check.bits, &check.masked);
        cm_sink_t sink = {.put = check_labels, .self = &check, .want_labels = true};
        rc = cm_remap(&src, m, &p, &sink, &ctx);
    }
    if (rc < 0) check_failure(&ctx, rc);
    cm_model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm__image_open_memory(data, size, "fuzz.tif", 1, &img, &ctx);
    if (rc < 0) {
        check_failure(&ctx, rc);
        return 0;
    }
    const cm_image_info_t *in = cm_image_info(img);
    int64_t px = in->width * in->height;
    if (px <= READ_PX_MAX && cm_grid_chunk_bytes(&in->grid) <= (size_t)64 << 20) {
        rc = cm_image_prepare(img, "/tmp", 0, &ctx);
        uint8_t *buf = rc == 0 ? malloc(cm_grid_chunk_bytes(&in->grid)) : NULL;
        for (int64_t c = 0; buf && rc == 0 && c < cm_grid_count(&in->grid); c++)
            rc = cm_image_read_chunk(img, 0, c, buf, &ctx);
        free(buf);
        if (rc < 0) check_failure(&ctx, rc);
        if (rc == 0 && px <= FIT_PX_MAX) fit_and_remap(img, in);
    }
    cm_image_close(img);
    return 0;
}
