/* An input of the file-level functions, from opening to closing: the image read with the
 * options' threads, tiles and cancel flag, the source the engine reads it through (counting
 * its reads, keeping chunks in a spill store when asked), its preparation, and the checks of
 * what may be done with it. */
#include <string.h>

#include "api_internal.h"

static int input_read(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    cm__input_t *in = self;
    __atomic_fetch_add(&in->reads, 1, __ATOMIC_RELAXED);
    return cm_image_read_chunk(in->img, worker, idx, buf, ctx);
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
    return cm_image_prepare(in->img, in->scratch_dir, ctx);
}

int64_t cm__input_take_reads(cm__input_t *in)
{
    return __atomic_exchange_n(&in->reads, 0, __ATOMIC_RELAXED);
}

void cm__input_close(cm__input_t *in)
{
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
