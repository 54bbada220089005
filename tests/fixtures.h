/* What the unit tests share: a scratch directory per test program, files read whole and
 * compared, and test images written with libtiff. Test code only. */
#ifndef CM_TEST_FIXTURES_H
#define CM_TEST_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tiffio.h>

#include "cm_grid.h"

/* The scratch directory of the program, made by fx_dir_make (a cmocka group setup: "name" is
 * the program's, e.g. "test_io") under $TMPDIR or /tmp, removed with everything in it by
 * fx_dir_remove (the group teardown). */
extern char fx_dir[];
int fx_dir_make(const char *name);
int fx_dir_remove(void);

/* fx_dir/name into out, which holds at least FX_PATH_MAX bytes; returns out. */
enum { FX_PATH_MAX = 4096 };
char *fx_path(char *out, const char *name);

bool fx_exists(const char *path);

/* The whole file (its size in *size), which the caller frees; fails the test when it cannot be
 * read or is empty. */
void *fx_read_file(const char *path, size_t *size);

/* Whether two files hold the same bytes (false when either cannot be read). */
bool fx_same_bytes(const char *a, const char *b);

/* Writes text into path, failing the test when it cannot. */
void fx_write_text(const char *path, const char *text);

/* ---- sample types ---------------------------------------------------------------------- */

/* Names and TIFF descriptions of the sample types, indexed by cm_stype_t: written here rather
 * than taken from io, so that the tests check io against an independent table. */
extern const char *const fx_stype_names[];
extern const uint16_t fx_stype_bits[];    /* BitsPerSample */
extern const uint16_t fx_stype_formats[]; /* SampleFormat */
extern const size_t fx_stype_bytes[];

/* The value of a test image at (x, y, band): one byte, which fx_typed_value makes a sample of
 * any type. */
typedef uint8_t (*fx_value_fn)(int64_t x, int64_t y, int band);

/* The sample of type t made from the 8-bit value v at (x, y, band), exact in that type: 16-bit
 * samples use both bytes (different ones), signed samples run from -32768 to 32767, floats
 * are negative and positive thirds. A uint8 sample is v itself. */
double fx_typed_value(cm_stype_t t, uint8_t v, int64_t x, int64_t y, int band);

/* Sample i of a packed buffer of type t, stored from or loaded as a double. */
void fx_sample_store(uint8_t *buf, cm_stype_t t, size_t i, double v);
double fx_sample_load(const uint8_t *buf, cm_stype_t t, size_t i);

/* ---- test TIFFs ------------------------------------------------------------------------- */

/* A test image for fx_tiff_write. Photometric and compression have no default; any other field
 * left zero means none: no predictor, strips rather than tiles, no extra samples, no colour
 * map, no nodata, no more tags. */
typedef struct fx_tiff {
    uint32_t width, height;
    uint16_t spp; /* samples per pixel in the file (1 for a palette image) */
    uint16_t photometric;
    uint16_t compression; /* JPEG at quality 95, YCbCr then given as RGB */
    uint16_t predictor;   /* PREDICTOR_*, or 0 for none */
    cm_stype_t stype;     /* CM_U8 unless said */
    uint16_t bits;        /* 0 for the sample type's; fewer than 8: an image of zeros */
    uint16_t planar;      /* 0 for contiguous */
    int n_extra;          /* the last n_extra samples are extra samples of these kinds */
    uint16_t extra[CM_BANDS_MAX + 1];
    uint32_t tile_w, tile_h; /* 0 for strips */
    uint32_t rows_per_strip;
    bool bigtiff;
    const uint16_t *colormap; /* palette images: 3 x 256 entries (red, green, blue) */
    const char *nodata;       /* GDAL_NODATA text, or NULL */
    /* Sets more tags on the new file, after the others and before any pixel; false when one
     * cannot be set. NULL for none. */
    bool (*set_tags)(TIFF *t);
} fx_tiff_t;

/* The bits per sample of image l: its own, or else its sample type's. */
uint16_t fx_tiff_bits(const fx_tiff_t *l);

/* Fills a w x h rectangle at (x0, y0) of image l, rows of stride_px pixels of bands
 * [b0, b0 + nb) (one plane of a planar-separate image, or every band), with fn's values made
 * into l's sample type by fx_typed_value inside the image and its edge pixels repeated outside
 * (as JPEG likes it). */
void fx_fill_rect(uint8_t *buf, int64_t stride_px, int64_t x0, int64_t y0, int64_t w, int64_t h,
                  const fx_tiff_t *l, int b0, int nb, fx_value_fn fn);

/* Writes image l at path with libtiff alone (calling cm__tags_register first when l has a
 * nodata, so that libtiff knows GDAL_NODATA): fn's values in l's sample type, tile by tile or strip
 * by strip, plane by plane when planar-separate; a palette image's indices are fn's band 0. Images
 * of fewer than 8 bits, or without fn, are zeros. Returns false when libtiff refuses a step (the
 * file may then be left incomplete). */
bool fx_tiff_write(const char *path, const fx_tiff_t *l, fx_value_fn fn);

/* fx_tiff_write, failing the test when it does not work. */
void fx_tiff_make(const char *path, const fx_tiff_t *l, fx_value_fn fn);

#endif
