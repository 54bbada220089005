/* cm_info_file: what a TIFF holds, and its exact number of colours. */
#include "api_internal.h"

int cm_info_file(const char *path, const cm_options_t *opts, cm_image_info_t *info,
                 int64_t *n_colors, cm_ctx_t *ctx)
{
    cm_options_t o = cm__resolved(opts);
    cm__input_t in;
    int rc = cm__input_open(&in, path, &o, 0, ".", ctx);
    if (rc == 0) *info = *in.info;
    if (rc == 0 && n_colors) rc = cm__input_prepare(&in, &o, ctx);
    if (rc == 0 && n_colors) rc = cm_count_colors(&in.src, &o.params, n_colors, ctx);
    cm__name_input(ctx, path);
    cm__input_close(&in);
    return rc;
}
