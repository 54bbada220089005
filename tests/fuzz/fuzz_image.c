/* The body of the image fuzz targets: an image from memory (a TIFF through libtiff's client
 * callbacks, a JPEG or PNG through a memory stream), decoded into the spill store when it is
 * streamed, every chunk read, and (small images only) a fit and a remap of what was read, so
 * that odd sample values (NaN, infinities, extremes) go through the whole engine. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"
#include "fuzz_image.h"
#include "io_internal.h"

/* Larger images are only opened: decoding them would take the fuzzer's time, not find more. */
enum { READ_PX_MAX = 1 << 20, FIT_PX_MAX = 1 << 14 };

/* The memory budget of the decoding and of the fit: room for an interlaced PNG or a
 * progressive JPEG of READ_PX_MAX pixels, which is held whole while it is decoded. */
static const size_t BUDGET_BYTES = (size_t)64 << 20;

/* Whether an image has at most px pixels (without overflowing on huge dimensions). */
static bool at_most(const cm_image_info_t *in, int64_t px)
{
    return in->width > 0 && in->height > 0 && in->height <= px / in->width;
}

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

/* A bad input must fail with a reason, as a bad input (or out of memory); once opened, also
 * over the budget (an interlaced PNG or progressive JPEG held whole, a fit's plan) or with
 * the scratch store unwritable. */
static void check_failure(const cm_ctx_t *ctx, int rc, bool opened)
{
    if (rc >= 0 || ctx->code != rc || !ctx->msg[0]) abort();
    if (rc == CM_EINPUT || rc == CM_ENOMEM) return;
    if (!opened || (rc != CM_EBUDGET && rc != CM_EIO)) abort();
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
    p.n_init = 2; /* the fuzzer wants paths through the code, not a good fit */
    p.max_iter = 4;
    p.batch = 256;
    p.sample_px = 4096;
    p.budget_bytes = BUDGET_BYTES;
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
    if (rc < 0) check_failure(&ctx, rc, true);
    cm_model_free(m);
}

int cm_fuzz_image(const uint8_t *data, size_t size, cm_file_format_t format, const char *name)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm__image_open_memory(data, size, name, 1, &img, &ctx);
    if (rc < 0) {
        check_failure(&ctx, rc, false);
        return 0;
    }
    const cm_image_info_t *in = cm_image_info(img);
    if (in->format != format) { /* another target's input */
        cm_image_close(img);
        return -1;
    }
    if (at_most(in, READ_PX_MAX) && cm_grid_chunk_bytes(&in->grid) <= BUDGET_BYTES) {
        rc = cm_image_prepare(img, "/tmp", BUDGET_BYTES, &ctx);
        uint8_t *buf = rc == 0 ? malloc(cm_grid_chunk_bytes(&in->grid)) : NULL;
        for (int64_t c = 0; buf && rc == 0 && c < cm_grid_count(&in->grid); c++)
            rc = cm_image_read_chunk(img, 0, c, buf, &ctx);
        free(buf);
        if (rc < 0) check_failure(&ctx, rc, true);
        if (rc == 0 && at_most(in, FIT_PX_MAX)) fit_and_remap(img, in);
    } else if (in->progressive) {
        /* Too large to decode here, but an interlaced PNG or a progressive JPEG is held whole
         * while it is decoded: a budget short of that must be refused before decoding. */
        rc = cm_image_prepare(img, "/tmp", 1, &ctx);
        if (rc != CM_EBUDGET) abort();
        check_failure(&ctx, rc, true);
    }
    cm_image_close(img);
    return 0;
}
