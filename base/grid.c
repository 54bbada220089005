/* The chunk grid: geometry and the layout of chunk buffers. */
#include "base_internal.h"
#include "cm_grid.h"

size_t cm_stype_size(cm_stype_t t)
{
    return t == CM_U8 ? 1 : t == CM_F32 ? 4 : 2;
}

const char *cm_stype_name(cm_stype_t t)
{
    switch (t) {
    case CM_U8: return "uint8";
    case CM_U16: return "uint16";
    case CM_I16: return "int16";
    case CM_F32: return "float32";
    }
    return "unknown";
}

int cm_grid_init(cm_grid_t *g, int64_t width, int64_t height, int64_t chunk_w, int64_t chunk_h,
                 int bands, int alpha_band, cm_stype_t stype, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, width <= 0 || height <= 0, CM_EINPUT, "image has no pixels (%lldx%lld)",
               (long long)width, (long long)height);
    CM_FAIL_IF(ctx, chunk_w <= 0 || chunk_h <= 0, CM_EINPUT, "bad chunk size %lldx%lld",
               (long long)chunk_w, (long long)chunk_h);
    CM_FAIL_IF(ctx, bands < 1 || bands > CM_BANDS_MAX, CM_EINPUT,
               "%d bands per pixel (1 to %d supported)", bands, CM_BANDS_MAX);
    CM_FAIL_IF(ctx, alpha_band >= bands || (alpha_band >= 0 && bands == 1), CM_EINPUT,
               "alpha band %d of %d bands", alpha_band, bands);
    /* Every pixel position (y * width + x) must fit in an int64_t, and so every count. */
    int64_t n_px;
    CM_FAIL_IF(ctx, !cm__mul_i64(width, height, &n_px), CM_EINPUT,
               "image of %lldx%lld pixels is too large", (long long)width, (long long)height);
    size_t bytes;
    CM_FAIL_IF(ctx,
               !cm__mul3_size((size_t)chunk_w, (size_t)chunk_h, (size_t)bands, &bytes) ||
                   !cm__mul_size(bytes, cm_stype_size(stype), &bytes),
               CM_EINPUT, "chunk of %lldx%lld pixels is too large", (long long)chunk_w,
               (long long)chunk_h);
    *g = (cm_grid_t){.width = width,
                     .height = height,
                     .chunk_w = chunk_w,
                     .chunk_h = chunk_h,
                     .n_cx = cm__ceil_div_i64(width, chunk_w),
                     .n_cy = cm__ceil_div_i64(height, chunk_h),
                     .bands = bands,
                     .alpha_band = alpha_band,
                     .stype = stype};
    CM_FAIL_IF(ctx, g->n_cx > INT32_MAX / g->n_cy, CM_EINPUT, "too many chunks (%lld x %lld)",
               (long long)g->n_cx, (long long)g->n_cy);
    return 0;
}

int64_t cm_grid_count(const cm_grid_t *g)
{
    return g->n_cx * g->n_cy;
}

void cm_grid_rect(const cm_grid_t *g, int64_t idx, int64_t *x, int64_t *y, int64_t *w, int64_t *h)
{
    int64_t cx = idx % g->n_cx, cy = idx / g->n_cx;
    *x = cx * g->chunk_w;
    *y = cy * g->chunk_h;
    *w = g->width - *x < g->chunk_w ? g->width - *x : g->chunk_w;
    *h = g->height - *y < g->chunk_h ? g->height - *y : g->chunk_h;
}

size_t cm_grid_chunk_bytes(const cm_grid_t *g)
{
    return (size_t)g->chunk_w * (size_t)g->chunk_h * (size_t)g->bands * cm_stype_size(g->stype);
}

int cm_grid_features(const cm_grid_t *g)
{
    return g->alpha_band >= 0 ? g->bands - 1 : g->bands;
}
