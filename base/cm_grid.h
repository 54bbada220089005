/* The chunk grid: an image seen as rectangles of pixels, numbered row-major. Geometry only,
 * shared by io (which reads chunks) and the engine (which computes on them). */
#ifndef CM_GRID_H
#define CM_GRID_H

#include <stdint.h>

#include "cm_base.h"

/* Sample types of chunk buffers, in the machine's byte order. */
typedef enum cm_stype { CM_U8, CM_U16, CM_I16, CM_F32 } cm_stype_t;

enum { CM_BANDS_MAX = 64 };

/* Bytes per sample; name as in the model and messages ("uint8", "uint16", "int16",
 * "float32"). */
size_t cm_stype_size(cm_stype_t t);
const char *cm_stype_name(cm_stype_t t);

/* The chunk grid of an image: chunk (cx, cy) covers columns [cx*chunk_w, ...) and rows
 * [cy*chunk_h, ...), clipped to the image; chunk index = cy * n_cx + cx. Pixels are `bands`
 * samples of type `stype`, interleaved; `alpha_band` is the index of the alpha sample (which
 * takes no part in the fit and is carried over unchanged), or -1. */
typedef struct cm_grid {
    int64_t width, height;
    int64_t chunk_w, chunk_h;
    int64_t n_cx, n_cy;
    int bands;
    int alpha_band;
    cm_stype_t stype;
} cm_grid_t;

/* Builds a grid; fails with CM_EINPUT on empty or absurd sizes. Chunks may be larger than
 * the image (a TIFF tile larger than it): their rectangles are clipped, their buffers not. */
int cm_grid_init(cm_grid_t *g, int64_t width, int64_t height, int64_t chunk_w, int64_t chunk_h,
                 int bands, int alpha_band, cm_stype_t stype, cm_ctx_t *ctx);
int64_t cm_grid_count(const cm_grid_t *g);
/* The rectangle of chunk idx. */
void cm_grid_rect(const cm_grid_t *g, int64_t idx, int64_t *x, int64_t *y, int64_t *w, int64_t *h);
/* Bytes of the largest chunk (chunk_w * chunk_h * bands * sample size). */
size_t cm_grid_chunk_bytes(const cm_grid_t *g);
/* Number of features per pixel: the bands that are not alpha. */
int cm_grid_features(const cm_grid_t *g);

#endif
