/* What the file-level functions of the API share, not exported. */
#ifndef CM_API_INTERNAL_H
#define CM_API_INTERNAL_H

#include "chunkmeans.h"

/* CM_EINPUT naming path when model (and meta, when not NULL: the images it was fitted on)
 * does not fit the image in: other bands, alpha band or sample type, or other features. */
int cm__model_fits(const cm_model_t *model, const cm_model_meta_t *meta, const char *path,
                   const cm_image_info_t *in, cm_ctx_t *ctx);

/* The directory of path ("." when it has none, "/" for the root), into buf of size bytes. */
void cm__dir_of(const char *path, char *buf, size_t size);

/* The source of an image as o reads it: its grid, and o's nodata, else the image's. read,
 * keep and self are left for the caller. */
cm_source_t cm__source_of(const cm_options_t *o, const cm_image_info_t *in);

#endif
