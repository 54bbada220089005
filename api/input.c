/* An input of the file-level functions, from opening to closing: the image read with the
 * options' threads, tiles and cancel flag, the source the engine reads it through (counting
 * its reads, keeping chunks in a spill store when asked, and decoded chunks in memory from one
 * pass to the next), its preparation, and the checks of what may be done with it. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

static size_t chunk_bytes_of(const cm__input_t *in, int64_t idx)
{
    const cm_grid_t *g = &in->src.grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, idx, &x, &y, &w, &h);
    return (size_t)(w * h) * (size_t)g->bands * cm_stype_size(g->stype);
}

/* Keeps a copy of chunk idx as read into buf, when the bytes allow it (and no other read of
 * it was kept first). */
static void keep_copy(cm__input_t *in, int64_t idx, const uint8_t *buf, size_t bytes)
{
    size_t was = __atomic_fetch_add(&in->kept_bytes, bytes, __ATOMIC_RELAXED);
    uint8_t *copy = was + bytes <= in->kept_cap ? malloc(bytes) : NULL;
    uint8_t *none = NULL;
    if (copy) memcpy(copy, buf, bytes);
    if (!copy || !__atomic_compare_exchange_n(&in->kept[idx], &none, copy, false, __ATOMIC_RELEASE,
                                              __ATOMIC_RELAXED)) {
        free(copy);
        __atomic_fetch_sub(&in->kept_bytes, bytes, __ATOMIC_RELAXED);
    }
}

/* A chunk is copied from the kept ones when it is there (while holding, it stays; after, it
 * is served once and freed), else decoded from the file, and kept while holding. */
static int input_read(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    cm__input_t *in = self;
    __atomic_fetch_add(&in->reads, 1, __ATOMIC_RELAXED);
    if (!in->kept) return cm_image_read_chunk(in->img, worker, idx, buf, ctx);
    size_t bytes = chunk_bytes_of(in, idx);
    uint8_t *got = in->holding ? __atomic_load_n(&in->kept[idx], __ATOMIC_ACQUIRE)
                               : __atomic_exchange_n(&in->kept[idx], NULL, __ATOMIC_ACQ_REL);
    if (got) {
        memcpy(buf, got, bytes);
        if (!in->holding) {
            free(got);
            __atomic_fetch_sub(&in->kept_bytes, bytes, __ATOMIC_RELAXED);
        }
        __atomic_fetch_add(&in->reused, 1, __ATOMIC_RELAXED);
        return 0;
    }
    int rc = cm_image_read_chunk(in->img, worker, idx, buf, ctx);
    if (rc == 0 && in->holding) keep_copy(in, idx, buf, bytes);
    return rc;
}

void cm__input_hold(cm__input_t *in, size_t bytes)
{
    if (!in->kept) in->kept = calloc((size_t)cm_grid_count(&in->src.grid), sizeof(uint8_t *));
    in->kept_cap = bytes;
    in->holding = in->kept != NULL;
}

void cm__input_release(cm__input_t *in)
{
    in->holding = false;
}

size_t cm__input_kept_bytes(const cm__input_t *in)
{
    return __atomic_load_n(&in->kept_bytes, __ATOMIC_RELAXED);
}

static void drop_kept(cm__input_t *in)
{
    for (int64_t i = 0; in->kept && i < cm_grid_count(&in->src.grid); i++) free(in->kept[i]);
    free(in->kept);
    in->kept = NULL;
    in->kept_bytes = 0;
    in->holding = false;
}

static int input_keep(void *self, cm_ctx_t *ctx)
{
    cm__input_t *in = self;
    return cm_image_keep_chunks(in->img, in->scratch_dir, ctx);
}

cm_source_t cm__source_of(const cm_options_t *o, const cm_image_info_t *in)
{
    return (cm_source_t){.grid = in->grid,
                         .has_nodata = o->has_nodata || in->has_nodata,
                         .nodata_any = o->nodata_any,
                         .nodata = o->has_nodata ? o->nodata : in->nodata,
                         .alpha_associated = in->alpha_associated};
}

int cm__input_open(cm__input_t *in, const char *path, const cm_options_t *o, int n_workers,
                   const char *scratch_dir, cm_ctx_t *ctx)
{
    *in = (cm__input_t){.path = path};
    snprintf(in->scratch_dir, sizeof in->scratch_dir, "%s",
             o->scratch_dir ? o->scratch_dir : scratch_dir);
    CM_FAIL_IF(ctx, !path, CM_EUSAGE, "no input file given");
    CM_FAIL_IF(ctx, o->tile < 16 || o->tile > 4096 || o->tile % 16, CM_EUSAGE,
               "tile side %lld: a multiple of 16 from 16 to 4096", (long long)o->tile);
    CM_TRY(cm_image_open(path, n_workers > 0 ? n_workers : o->params.n_threads, &in->img, ctx));
    if (o->params.cancel) cm_image_set_cancel(in->img, o->params.cancel);
    CM_TRY(cm_image_set_chunk_side(in->img, o->tile, ctx));
    in->info = cm_image_info(in->img);
    in->src = cm__source_of(o, in->info);
    in->src.read = input_read;
    in->src.keep = input_keep;
    in->src.self = in;
    return 0;
}

int cm__input_prepare(cm__input_t *in, const cm_options_t *o, cm_ctx_t *ctx)
{
    if (in->prepared) return 0;
    in->prepared = true;
    if (o->opened) o->opened(o->user, in->path, in->info);
    return cm_image_prepare(in->img, in->scratch_dir, o->params.budget_bytes, ctx);
}

int64_t cm__input_take_reads(cm__input_t *in)
{
    return __atomic_exchange_n(&in->reads, 0, __ATOMIC_RELAXED);
}

int64_t cm__input_take_reused(cm__input_t *in)
{
    return __atomic_exchange_n(&in->reused, 0, __ATOMIC_RELAXED);
}

void cm__input_close(cm__input_t *in)
{
    drop_kept(in);
    cm_image_close(in->img);
    in->img = NULL;
    in->info = NULL;
}

int cm__input_check_colorspace(const cm__input_t *in, cm_colorspace_t cs, cm_ctx_t *ctx)
{
    if (cs != CM_COLORSPACE_LAB) return 0;
    const cm_image_info_t *i = in->info;
    /* Palette and YCbCr images read as RGB. */
    bool rgb =
        !strcmp(i->photometric_name, "RGB") || !strcmp(i->photometric_name, "YCbCr") || i->palette;
    int colors = i->bands - (i->alpha_band >= 0);
    if (rgb && colors == 3 && i->stype != CM_I16) return 0;
    return cm_fail_about(ctx, CM_EUSAGE, (cm_about_t){CM_SETTING_COLORSPACE, cs, 0},
                         "%s: " CM_NAMED("colour space lab") " needs an RGB image (3 colour "
                                                             "bands of uint8, uint16 or float32, "
                                                             "and an optional alpha), not %d "
                                                             "band%s of %s, photometric %s",
                         in->path, i->bands, i->bands == 1 ? "" : "s", i->sample_type,
                         i->photometric_name);
}

cm_model_meta_t cm__meta_of(const cm_image_info_t *in)
{
    cm_model_meta_t m = {.bands = in->bands, .alpha_band = in->alpha_band, .stype = in->stype};
    snprintf(m.version, sizeof m.version, "%s", CM_VERSION);
    return m;
}

void cm__describe_pixels(const cm_image_info_t *in, char *buf, size_t size)
{
    snprintf(buf, size, "%d band%s of %s%s", in->bands, in->bands == 1 ? "" : "s", in->sample_type,
             in->alpha_band >= 0 ? " with alpha" : "");
}

int cm__model_fits(const cm_model_t *model, const cm_model_meta_t *m, const char *path,
                   const cm_image_info_t *in, cm_ctx_t *ctx)
{
    if (m && (in->bands != m->bands || in->stype != m->stype || in->alpha_band != m->alpha_band))
        return cm_fail(ctx, CM_EINPUT,
                       "%s: %d band%s of %s%s, but the model%s%s was fitted on %d band%s of %s%s",
                       path, in->bands, in->bands == 1 ? "" : "s", in->sample_type,
                       in->alpha_band >= 0 ? " with alpha" : "", m->name ? " " : "",
                       m->name ? m->name : "", m->bands, m->bands == 1 ? "" : "s",
                       cm_stype_name(m->stype), m->alpha_band >= 0 ? " with alpha" : "");
    CM_FAIL_IF(ctx, model->d != cm_grid_features(&in->grid), CM_EINPUT,
               "%s: %d features per pixel, but the model has %d", path, cm_grid_features(&in->grid),
               model->d);
    return 0;
}
