/* What io's files share: libtiff handles whose errors land in a buffer of their own (never
 * in libtiff's global handlers, which threads would garble). */
#ifndef CM_IO_INTERNAL_H
#define CM_IO_INTERNAL_H

#include <tiffio.h>

#include "cm_io.h"

typedef struct cm__tiff_msg {
    char text[256];
} cm__tiff_msg_t;

/* TIFFOpenExt (fd < 0) or TIFFFdOpenExt (fd >= 0) with errors recorded in *msg (the last
 * one wins) and warnings dropped. NULL on failure, with the reason in msg->text. */
TIFF *cm__tiff_open(const char *path, const char *mode, int fd, cm__tiff_msg_t *msg);

/* A growable memory file for libtiff. */
typedef struct cm__membuf {
    uint8_t *data;
    size_t size, cap, pos;
} cm__membuf_t;

/* A TIFF in mem, opened with mode ("wm": written into mem, which the caller frees after
 * TIFFClose; "rm": read from mem->data, never written), errors into msg. */
TIFF *cm__tiff_open_memory(cm__membuf_t *mem, const char *mode, cm__tiff_msg_t *msg);

/* Creates an empty temporary file next to path ("<path>.part-XXXXXX"); stores its name in
 * tmp (at least strlen(path) + 16 bytes) and returns its descriptor, or -1 with errno. */
int cm__tmpfile_next_to(const char *path, char *tmp, size_t tmp_size);

/* Makes a rename into path's directory durable (fsync of the directory); best effort. */
void cm__fsync_dir_of(const char *path);

/* ---- GeoTIFF, GDAL and descriptive tags (geotags.c) ---- */

/* Makes libtiff know the GeoTIFF tags (ModelPixelScale 33550, ModelTiepoint 33922,
 * ModelTransformation 34264, GeoKeyDirectory 34735, GeoDoubleParams 34736, GeoAsciiParams
 * 34737) and GDAL's (GDAL_METADATA 42112, GDAL_NODATA 42113) so they can be read and written:
 * installs a process-wide tag extender once, chaining any extender installed before it.
 * Idempotent and thread-safe. Handles opened before the first call do not know the tags for
 * writing; call it before opening any TIFF. */
void cm__tags_register(void);

/* Copies from in to out (a TIFF being written, before its first tile) the tags that carry
 * meaning: the eight above, the ICC profile, XResolution, YResolution, ResolutionUnit,
 * Orientation, DocumentName, Make, Model, Artist, Copyright and DateTime. Tags missing from
 * in are skipped. Uses only the two handles (one thread per pair). Returns 0, or CM_EIO when
 * out refuses a tag (out opened before cm__tags_register, or libtiff's reason) with the
 * message in msg->text. */
int cm__tags_copy(TIFF *in, TIFF *out, cm__tiff_msg_t *msg);

/* The GDAL_NODATA value of in, parsed as GDAL does ("-9999", "0", "nan", "inf", surrounding
 * blanks allowed; C locale): 1 and *value when present and parsable, 0 otherwise. */
int cm__tags_nodata(TIFF *in, double *value);

/* Sets GDAL_NODATA on out (before its first tile) to value written so that GDAL parses it
 * back exactly: %.17g, "nan" for any NaN, "inf" and "-inf". Returns 0, or CM_EIO with the
 * message in msg->text. */
int cm__tags_set_nodata(TIFF *out, double value, cm__tiff_msg_t *msg);

/* ---- images (tiff_read.c) ---- */

/* The handle an image was opened with, for copying its tags while no task reads with it. */
TIFF *cm__image_tiff(cm_image_t *img);

#endif
