/* What io's files share: libtiff handles whose errors land in a buffer of their own (never
 * in libtiff's global handlers, which threads would garble). */
#ifndef CM_IO_INTERNAL_H
#define CM_IO_INTERNAL_H

#include <stdio.h>
#include <tiffio.h>

#include "base_internal.h"
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

/* An output file for libtiff, written at positions. While skip is set, writes only move the
 * position (and the end): the bytes are written there later, by another rank say, and libtiff
 * lays out what follows as if they were there. */
typedef struct cm__outfile {
    int fd;
    uint64_t pos, end;
    bool skip;
} cm__outfile_t;

/* A TIFF written into f (an empty file open for writing; TIFFClose closes f->fd), with mode
 * "w" or "w8", errors into msg. */
TIFF *cm__tiff_open_out(const char *path, const char *mode, cm__outfile_t *f, cm__tiff_msg_t *msg);

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

/* ---- the spill store (spill.c) ---- */

typedef struct cm__spill cm__spill_t;

/* Creates a store for n_chunks chunks of at most chunk_bytes each, used by n_workers workers, in
 * a scratch file under dir, unlinked at once (nothing is left however the process ends). name
 * (the image) and dir stand in messages. CM_EIO when the file cannot be made, CM_ENOMEM. */
int cm__spill_create(const char *name, const char *dir, int64_t n_chunks, size_t chunk_bytes,
                     int n_workers, cm__spill_t **out, cm_ctx_t *ctx);

/* Stores chunk idx (bytes at buf) with worker's compressor. Thread-safe for distinct workers.
 * CM_EIO (a full disk), CM_ENOMEM or CM_EINTERNAL; ctx may be NULL for a best-effort store. */
int cm__spill_put(cm__spill_t *s, int worker, int64_t idx, const void *buf, size_t bytes,
                  cm_ctx_t *ctx);

/* Whether chunk idx is stored (s may be NULL: no store). */
bool cm__spill_has(const cm__spill_t *s, int64_t idx);

/* Reads stored chunk idx back into buf, which takes exactly bytes. Thread-safe for distinct
 * workers. */
int cm__spill_get(cm__spill_t *s, int worker, int64_t idx, void *buf, size_t bytes, cm_ctx_t *ctx);

/* Frees the store and closes its file; accepts NULL. */
void cm__spill_free(cm__spill_t *s);

/* ---- what an image says about how it is shown (image_meta.c) ---- */

/* Kept from any input for any output: the ICC profile, the orientation and the resolution. */
typedef struct cm__meta {
    uint8_t *icc; /* owned; NULL when none */
    size_t icc_size;
    int orientation; /* 1 to 8, 0 when not given */
    int res_unit;    /* RESUNIT_NONE (an aspect ratio only), _INCH or _CENTIMETER; 0: none */
    double xres, yres;
} cm__meta_t;

/* Copies n bytes of an ICC profile into m (replacing any); false when out of memory. */
bool cm__meta_set_icc(cm__meta_t *m, const void *icc, size_t n);

/* Frees what m owns and clears it. */
void cm__meta_clear(cm__meta_t *m);

/* The orientation (tag 0x0112) of an EXIF block: size bytes at exif, a TIFF structure ("II*"
 * or "MM*"), optionally after JPEG's "Exif\0\0". 1 to 8, or 0 when absent or unreadable. */
int cm__exif_orientation(const uint8_t *exif, size_t size);

/* The smallest EXIF block (TIFF structure, little-endian) that says only orientation, into
 * buf (at least CM__EXIF_MIN bytes); returns its size. */
enum { CM__EXIF_MIN = 26 };
size_t cm__exif_make(int orientation, uint8_t *buf);

/* ---- JPEG and PNG, decoded in order (jpeg_read.c, png_read.c) ---- */

/* A decoder that gives an image's rows in order, packed as the image reads (info->bands
 * samples of info->stype per pixel). */
typedef struct cm__decoder cm__decoder_t;
struct cm__decoder {
    /* The next n rows into buf; CM_EINPUT naming the file for a corrupt one. */
    int (*rows)(cm__decoder_t *d, uint8_t *buf, int64_t n, cm_ctx_t *ctx);
    /* After the last row: reads the file to its end, so that damage there shows. */
    int (*finish)(cm__decoder_t *d, cm_ctx_t *ctx);
    void (*close)(cm__decoder_t *d);
};

/* Reads the header of a JPEG or PNG from f (which the decoder owns from now on, and closes,
 * whatever happens) into img->info and img->meta, and sets img->dec. CM_EINPUT naming
 * img->path for a file that is corrupt or holds what we do not read. */
int cm__jpeg_open(cm_image_t *img, FILE *f, cm_ctx_t *ctx);
int cm__png_open(cm_image_t *img, FILE *f, cm_ctx_t *ctx);

/* ---- images (tiff_read.c, tiff_layout.c) ---- */

/* A worker's way into the file. */
typedef struct cm__handle {
    TIFF *tif;
    uint8_t *unit;    /* a decoded tile or strip (one plane), when it cannot go straight in */
    cm__membuf_t mem; /* this handle's position in an image opened from memory */
    int fd;           /* the file, opened for this worker with the others; -1 once libtiff owns
                       * it (or for memory) */
    cm__tiff_msg_t msg;
} cm__handle_t;

struct cm_image {
    char *path;
    cm__decoder_t *dec; /* a JPEG or PNG: its rows in order (else NULL) */
    cm__meta_t meta;
    const uint8_t *data; /* the file's bytes, for an image opened from memory (else NULL) */
    size_t data_size;
    cm_image_info_t info;
    bool ycbcr_as_rgb;
    int file_spp;             /* samples per pixel in the file (1 for a palette image) */
    size_t file_sample_bytes; /* bytes per sample in the file */
    size_t sample_bytes;      /* bytes per sample as read (a palette's colours: 1 or 2) */
    uint16_t *cmap;           /* palette: 3 x 256 entries (red, green, blue), else NULL */
    int64_t tiles_x, tiles_y; /* tiles per chunk, across and down (1 x 1: native tiles) */
    /* The spill store (spill.c): for strips too large to decode per chunk (spill), every band
     * decoded once in order; or, once recording, the chunks decoded from the file, for cheap
     * re-reads. */
    bool spill, recording;
    cm__spill_t *store;
    int n_workers;
    cm__handle_t *handles;
    const volatile sig_atomic_t *cancel; /* stops long loops of our own, or NULL */
};

/* The rows (y, y + rows) of an image read in order, given the decoder's rows one by one: the
 * grid of a streamed image, bands of rows about side rows tall; info says what the decoder
 * reads. Used by jpeg_read.c and png_read.c once the header is read. */
int cm__image_stream_grid(cm_image_t *img, cm_ctx_t *ctx);

/* Reads what the first directory of tif holds into img->info and checks that it is supported
 * (CM_EINPUT naming the file and the reason otherwise); then the grid of the file's own chunks. */
int cm__image_inspect(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx);

/* The handle an image was opened with, for copying its tags while no task reads with it. */
TIFF *cm__image_tiff(cm_image_t *img);

/* ---- writers (tiff_write.c, png_write.c, jpeg_write.c) ---- */

/* Tiles or rows compressed by cm_writer_encode, waiting to be written. */
struct cm_encoded {
    int n;
    uint32_t *tile; /* TIFF: each tile's index in the file */
    size_t *size;
    uint8_t **data;
    /* PNG and JPEG: one piece of n = 1, the rectangle (x, y, w, h). Whole PNG rows are
     * filtered and deflated (data[0]: a raw deflate stream ending on a byte boundary, adler
     * the Adler-32 of the raw_len filtered bytes); narrower pieces and JPEG rows hold the
     * pixels (raw). */
    int64_t x, y, w, h;
    bool raw;
    uint32_t adler;
    size_t raw_len;
};

/* A writer of rows in order (PNG, JPEG), behind cm_writer_t. */
typedef struct cm__rows_writer cm__rows_writer_t;

/* Starts writing spec (checked) to the open stream f (which the writer owns); path (borrowed:
 * it must outlive the writer) stands in messages. */
int cm__png_writer_open(const char *path, const cm_writer_spec_t *spec, const cm__meta_t *meta,
                        FILE *f, cm__rows_writer_t **out, cm_ctx_t *ctx);
int cm__jpeg_writer_open(const char *path, const cm_writer_spec_t *spec, const cm__meta_t *meta,
                         FILE *f, cm__rows_writer_t **out, cm_ctx_t *ctx);

/* The operations of such a writer: encode (thread-safe), put in order, finish (the file's
 * last bytes, flushed; the stream is closed either way), free (accepts NULL; closes the
 * stream if still open). */
struct cm__rows_writer {
    int (*encode)(const cm__rows_writer_t *w, int64_t x, int64_t y, int64_t ww, int64_t h,
                  const void *pixels, cm_encoded_t **out, cm_ctx_t *ctx);
    int (*put)(cm__rows_writer_t *w, const cm_encoded_t *e, cm_ctx_t *ctx);
    int (*finish)(cm__rows_writer_t *w, cm_ctx_t *ctx);
    void (*free)(cm__rows_writer_t *w);
};

/* A piece (x, y, w, h) of n = 1: holding a copy of raw_bytes at raw (raw != NULL), else an
 * empty data[0] for the caller to fill. NULL when out of memory. */
cm_encoded_t *cm__piece_new(int64_t x, int64_t y, int64_t w, int64_t h, const void *raw,
                            size_t raw_bytes);

/* Pieces of rows put together into bands of whole rows, for the writers of rows: put each
 * piece in order (left to right, then down); when a band is whole, *band points at its rows
 * (valid until the next call) and *band_y, *band_h say where it is. */
typedef struct cm__band {
    uint8_t *rows;
    int64_t width, y, h, filled;
    size_t px_bytes, cap;
} cm__band_t;
int cm__band_put(cm__band_t *b, const cm_encoded_t *piece, const uint8_t **band, cm_ctx_t *ctx,
                 const char *path);

/* Flushes *f to the disk (fsync) and closes it, NULL in *f either way; CM_EIO naming path
 * with the system's reason when any of that fails. */
int cm__file_close(FILE **f, const char *path, cm_ctx_t *ctx);

/* The metadata of an image for its outputs (the ICC profile, orientation, resolution). */
const cm__meta_t *cm__image_meta(const cm_image_t *img);

/* ---- what the tests and fuzz targets use of io ---- */

/* The same for a TIFF file held in memory: size bytes at data, which must stay unchanged
 * until cm_image_close; name stands for the path in messages. Spill stores still go to
 * files. */
int cm__image_open_memory(const void *data, size_t size, const char *name, int n_workers,
                          cm_image_t **out, cm_ctx_t *ctx);

/* Writes the rectangle (x, y, w, h) of the image: x and y on tile boundaries, w and h whole
 * tiles except at the right and bottom edges; pixels packed at w * bands samples per row.
 * The same as cm_writer_encode then cm_writer_put_encoded. */
int cm__writer_put(cm_writer_t *wr, int64_t x, int64_t y, int64_t w, int64_t h, const void *pixels,
                   cm_ctx_t *ctx);

#endif
