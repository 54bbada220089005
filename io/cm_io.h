/* TIFF in and out: opening an image as a grid of chunks read in parallel (one libtiff handle
 * per worker), writing tiled TIFFs atomically (temporary file, renamed when complete).
 * Knows pixels and files, never clusters or centroids. */
#ifndef CM_IO_H
#define CM_IO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_base.h"
#include "cm_grid.h"

/* ---- reading ---- */

typedef struct cm_image cm_image_t;

/* The file formats read and written. */
typedef enum cm_file_format { CM_FILE_TIFF, CM_FILE_PNG, CM_FILE_JPEG } cm_file_format_t;

/* "TIFF", "PNG", "JPEG". */
const char *cm_file_format_name(cm_file_format_t f);

/* The format an output path asks for by its extension, in any case: .tif and .tiff TIFF, .png
 * PNG, .jpg and .jpeg JPEG; a name without one is a TIFF. CM_EUSAGE naming path and the
 * extensions for any other. */
int cm_file_format_of_path(const char *path, cm_file_format_t *out, cm_ctx_t *ctx);

typedef struct cm_image_info {
    cm_file_format_t format; /* recognised by the file's first bytes, never by its name */
    int64_t width, height;
    int bands;               /* samples per pixel as read: a palette image reads as its colours */
    int alpha_band;          /* index of the alpha sample, or -1 */
    bool alpha_associated;   /* that sample is premultiplied (EXTRASAMPLE_ASSOCALPHA) */
    cm_stype_t stype;        /* sample type as read */
    const char *sample_type; /* its name: "uint8", "uint16", "int16", "float32" */
    int bits;                /* bits per sample in the file */
    int photometric;         /* TIFF PHOTOMETRIC_* as stored in the file */
    const char *photometric_name;
    int compression; /* TIFF COMPRESSION_* */
    bool tiled;
    bool bigtiff;
    bool planar_separate;         /* samples stored plane by plane (read interleaved) */
    bool palette;                 /* colour-mapped: read as RGB of its colour map */
    int n_extra;                  /* extra samples (alpha, unspecified data), the last bands */
    uint16_t extra[CM_BANDS_MAX]; /* their EXTRASAMPLE_* kinds */
    bool has_nodata;              /* the GDAL_NODATA tag, when present and a number */
    double nodata;
    bool georeferenced;             /* GeoTIFF tags present */
    bool streamed;                  /* strips too large for chunks, or a JPEG or PNG: read once, in
                                     * order, into a spill store by cm_image_prepare */
    bool progressive;               /* a progressive JPEG or an interlaced PNG */
    size_t decode_bytes;            /* what the in-order decoding of a streamed image holds beyond a
                                     * band of rows: the whole image for an interlaced PNG, the
                                     * coefficients of a progressive JPEG */
    int orientation;                /* TIFF / EXIF orientation 1 to 8, 0 when the file has none */
    int64_t tile_w, tile_h;         /* tiles, or (width, rows per strip) for strips */
    cm_grid_t grid;                 /* how the image is read: tiles (or squares of whole tiles) or
                                     * bands of whole strips */
    int64_t out_tile_w, out_tile_h; /* output tiles that line up with the chunks */
} cm_image_info_t;

/* Opens path for reading by up to n_workers threads, recognising TIFF, JPEG and PNG by their
 * first bytes. TIFF: classic or BigTIFF, tiled or striped, contiguous or planar-separate; 8-
 * and 16-bit unsigned, 16-bit signed or 32-bit float samples, 1 to 64 of them; grey, RGB,
 * CMYK and multispectral with extra samples (alpha among them), JPEG-compressed YCbCr (read
 * as RGB) and 8-bit palette images (read as the RGB of their colour map); the first image of
 * the file is used. JPEG (libjpeg-turbo): baseline or progressive, grey, YCbCr or RGB (read as
 * RGB), CMYK or YCCK (read as CMYK, Adobe's inverted samples turned back). PNG (libpng): any
 * bit depth and colour type, interlaced or not; read as 8 or 16 bits (1, 2 and 4 bits scaled
 * up), palettes as RGB, transparency as an alpha band. JPEG and PNG decode only in order: they
 * are streamed (info->streamed). On failure: CM_EINPUT (missing or unreadable, no format we
 * read, corrupt, unsupported), with a message naming the file and the reason. The caller frees
 * *out with cm_image_close. */
int cm_image_open(const char *path, int n_workers, cm_image_t **out, cm_ctx_t *ctx);

/* Regroups the chunks (before any read) so that outputs can have side x side tiles: squares of
 * whole input tiles when the input's tiles divide side (each input tile is still decoded
 * once), otherwise the input's own tiles; for strips, bands about side rows tall written as
 * side-wide tiles. side: a multiple of 16. Not thread-safe. */
int cm_image_set_chunk_side(cm_image_t *img, int64_t side, cm_ctx_t *ctx);

/* Makes the image ready for reading chunks: for a streamed image (info->streamed: a JPEG, a
 * PNG, or a TIFF whose strips are too large to decode per chunk), decodes it once, in order,
 * into a spill store of zstd frames in an unlinked scratch file under scratch_dir. Does
 * nothing for other files. CM_EBUDGET (about the memory setting, with the least budget that
 * would do) when its decoding would hold more than budget_bytes (0: no limit); CM_EINPUT for a
 * file that turns out corrupt. Call once, after the last cm_image_set_chunk_side and before
 * the first read. */
int cm_image_prepare(cm_image_t *img, const char *scratch_dir, size_t budget_bytes, cm_ctx_t *ctx);

/* From now on, chunks decoded from the file are also kept, compressed with zstd level 1, in a
 * spill store (an unlinked scratch file under scratch_dir), and read from there when asked
 * for again: for passes that read every chunk several times. Does nothing for files whose
 * decoding is already cheap (uncompressed, packbits). Storing is best effort: a chunk that cannot
 * be stored is decoded again. Not thread-safe: call between reads. */
int cm_image_keep_chunks(cm_image_t *img, const char *scratch_dir, cm_ctx_t *ctx);

/* Makes cm_image_prepare's streaming stop with CM_ECANCELED once *flag is set (a signal). */
void cm_image_set_cancel(cm_image_t *img, const volatile sig_atomic_t *flag);

const cm_image_info_t *cm_image_info(const cm_image_t *img);
const char *cm_image_path(const cm_image_t *img);

/* Decodes chunk idx of the image's grid into buf (cm_grid_chunk_bytes bytes), rows packed at
 * w * bands. Thread-safe for distinct workers; worker < n_workers. A chunk that cannot be
 * decoded gives CM_EINPUT with the file, the chunk and libtiff's reason. */
int cm_image_read_chunk(cm_image_t *img, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx);

/* Closes every handle; accepts NULL. */
void cm_image_close(cm_image_t *img);

/* ---- writing ---- */

typedef struct cm_writer cm_writer_t;

typedef struct cm_writer_spec {
    cm_file_format_t format; /* TIFF (tiled), PNG or JPEG (whole rows, in order) */
    int64_t width, height;
    int bands;
    cm_stype_t stype;
    int photometric; /* TIFF PHOTOMETRIC_* */
    int n_extra;     /* the last n_extra bands are extra samples of these kinds */
    uint16_t extra[CM_BANDS_MAX];
    int compression;        /* TIFF COMPRESSION_* */
    bool predictor;         /* with deflate, LZW or zstd: horizontal differencing for integer
                             * samples, the floating-point predictor for floats */
    int deflate_level;      /* deflate's level, 1 to 12, for tiles deflated here (0: 7, as
                             * libtiff's default quality, 6, plus one, which libtiff uses) */
    int64_t tile_w, tile_h; /* multiples of 16 */
    bool bigtiff;
    const uint16_t *colormap; /* palette output: 3 x 256 entries (red, green, blue) */
    int colormap_n;           /* the entries used (a PNG's palette holds only these); 0: 256 */
    cm_image_t *tags_from;    /* copy georeferencing, nodata, resolution, ICC profile,
                               * orientation and descriptive tags from this image, or NULL
                               * (PNG and JPEG keep resolution, ICC profile and orientation) */
    bool derived;             /* labels, not colours: the ICC profile (unless a palette maps
                               * them to colours), GDAL_METADATA (band statistics,
                               * descriptions) and nodata of tags_from do not apply */
    bool set_nodata;          /* then write GDAL_NODATA = nodata */
    double nodata;
    const char *description; /* ImageDescription, or NULL */
} cm_writer_spec_t;

/* The output that matches an input: same size, bands, sample type, photometric and extra
 * samples (YCbCr and palette images, read as RGB, are written as RGB), tiles that line up
 * with its chunks (info->out_tile_w/h), the given compression with its predictor, and the
 * input's meaningful tags. */
void cm_writer_spec_like(const cm_image_info_t *in, int compression, cm_writer_spec_t *out);

/* The label map that goes with an image output: one band of `bits` (8 or 16), grey, same
 * tiles and tags; lossy compression (JPEG) is replaced by deflate, which keeps labels exact.
 * masked is written as its GDAL_NODATA. */
void cm_writer_spec_labels(const cm_writer_spec_t *img, int bits, uint32_t masked,
                           cm_writer_spec_t *out);

/* A colour-mapped output of 8-bit indices (labels) with the given colour map (3 x 256 16-bit
 * entries), otherwise like img. masked, when below 256, is written as its GDAL_NODATA. */
void cm_writer_spec_palette(const cm_writer_spec_t *img, const uint16_t *colormap, uint32_t masked,
                            cm_writer_spec_t *out);

/* An image of no input, made from scratch (a palette's swatches): width x height pixels of 8-bit
 * RGB in the given format, no tags; a TIFF would be in deflated tiles of 256. */
void cm_writer_spec_rgb8(int64_t width, int64_t height, cm_file_format_t format,
                         cm_writer_spec_t *out);

/* Whether a spec's output could pass the 4 GiB offsets of classic TIFF (its uncompressed
 * size with room for tile overhead and for data that does not compress). */
bool cm_writer_needs_bigtiff(const cm_writer_spec_t *spec);

/* Whether a TIFF compression loses information (JPEG). */
bool cm_compression_lossy(int code);

/* Whether spec can be written in its format: CM_EUSAGE naming path and the reason when not
 * (PNG: 1 to 4 bands of 8- or 16-bit unsigned grey or RGB, alpha the last; JPEG: 1 or 3 bands
 * of 8 bits without alpha). */
int cm_writer_check(const char *path, const cm_writer_spec_t *spec, cm_ctx_t *ctx);

/* Starts writing an image that will appear at path only on cm_writer_commit: until then the
 * data goes to a temporary file next to it. A TIFF is tiled; a PNG's rows are filtered and
 * deflated in bands, in the threads that encode them, as independent deflate blocks joined
 * into one zlib stream; a JPEG is encoded by the writer. Not thread-safe: one writer thread. */
int cm_writer_open(const char *path, const cm_writer_spec_t *spec, cm_writer_t **out,
                   cm_ctx_t *ctx);

/* A writer that only encodes (cm_writer_encode), for a rank of a job whose output rank 0
 * writes: it creates no file, and is dropped with cm_writer_abort. */
int cm_writer_open_encoder(const char *path, const cm_writer_spec_t *spec, cm_writer_t **out,
                           cm_ctx_t *ctx);

/* Tiles compressed, waiting to be written. */
typedef struct cm_encoded cm_encoded_t;

/* Encoded tiles as bytes (malloc'd into *bytes), to travel to another rank; and back. Without
 * data, only the tiles' numbers and sizes travel (for cm_writer_place): the tiles unpacked
 * have no bytes. */
int cm_encoded_pack(const cm_encoded_t *e, bool data, uint8_t **bytes, size_t *n, cm_ctx_t *ctx);
int cm_encoded_unpack(const uint8_t *bytes, size_t n, cm_encoded_t **out, cm_ctx_t *ctx);

/* Compresses the tiles of the rectangle (x, y, w, h) of the image (x and y on tile boundaries,
 * w and h whole tiles except at the right and bottom edges; pixels packed at w * bands samples
 * per row) into *out; for PNG and JPEG, rectangles come in rows of them that span the width
 * (a PNG band of the full width is deflated here; narrower ones are joined by the writer and
 * deflated there), and are put in order of rows. The caller
 * frees with cm_encoded_free or hands to cm_writer_put_encoded. Thread-safe: any number of
 * threads may encode at once, while one other writes; this is how tiles are compressed on
 * every core and written by one writer. */
int cm_writer_encode(const cm_writer_t *wr, int64_t x, int64_t y, int64_t w, int64_t h,
                     const void *pixels, cm_encoded_t **out, cm_ctx_t *ctx);

/* Writes encoded tiles into the file, in their order (PNG and JPEG: in the order of the
 * image's rows, left to right). One thread at a time. */
int cm_writer_put_encoded(cm_writer_t *wr, const cm_encoded_t *e, cm_ctx_t *ctx);

/* A tiled TIFF written by the ranks of a job, each its own tiles. Rank 0's writer places the
 * tiles of another rank where cm_writer_put_encoded would write them, in the same order, but
 * without their bytes (e needs only the numbers and sizes that cm_encoded_pack sends without
 * data), and gives each tile's offset in its temporary file, which cm_writer_file names. That
 * rank's encoder writes the bytes there with cm_writer_put_at, and cm_writer_flush makes them
 * durable before rank 0 commits. The file has the bytes cm_writer_put_encoded gives it.
 * cm_writer_can_place: only a TIFF's writer can. */
bool cm_writer_can_place(const cm_writer_t *wr);
int cm_writer_place(cm_writer_t *wr, const cm_encoded_t *e, uint64_t *offsets, cm_ctx_t *ctx);
const char *cm_writer_file(const cm_writer_t *wr);
int cm_writer_put_at(cm_writer_t *wr, const char *file, const cm_encoded_t *e,
                     const uint64_t *offsets, cm_ctx_t *ctx);
int cm_writer_flush(cm_writer_t *wr, cm_ctx_t *ctx);
/* The number of tiles in e. */
int cm_encoded_count(const cm_encoded_t *e);

/* Encoded tiles kept in a scratch file next to a path until they are copied into their output
 * (a TIFF's reduced levels): put by one thread, in any order (each tile once, numbered as its
 * encoder numbers it), got back by number (malloc'd). free removes the file. */
typedef struct cm_tilestore cm_tilestore_t;
int cm_tilestore_open(const char *next_to, uint32_t n_tiles, cm_tilestore_t **out, cm_ctx_t *ctx);
int cm_tilestore_put(cm_tilestore_t *s, const cm_encoded_t *e, cm_ctx_t *ctx);
int cm_tilestore_get(const cm_tilestore_t *s, uint32_t tile, uint8_t **data, size_t *size,
                     cm_ctx_t *ctx);
void cm_tilestore_free(cm_tilestore_t *s);

/* After the last tile of a TIFF: ends its directory and starts one of reduced level `level`
 * (1, 2, ...: cm_writer_spec_level's size; NewSubfileType 1, as GDAL and libtiff write
 * overviews) with the same tiles, samples, compression and colour map, whose tiles are copied
 * from tiles (encoded by an encoder of that size). Levels follow the image, largest first. */
int cm_writer_add_level(cm_writer_t *wr, int level, const cm_tilestore_t *tiles, cm_ctx_t *ctx);
/* Finishes the file as a Cloud Optimized GeoTIFF (the layout of GDAL's COG driver: its
 * structural metadata after the header, every directory, then the tiles of the levels, smallest
 * first, then the image's, each tile between its size and a copy of its last 4 bytes) with
 * n_levels reduced levels whose tiles are in levels[0..n_levels), largest first. The image's
 * tiles are copied from the temporary file. Renames into place like cm_writer_commit, and
 * frees the writer whatever happens. */
int cm_writer_commit_cog(cm_writer_t *wr, int n_levels, const cm_tilestore_t *const *levels,
                         cm_ctx_t *ctx);
/* The spec of reduced level L (1, 2, ...) of spec: its sides divided by 2^L, rounded up. */
void cm_writer_spec_level(const cm_writer_spec_t *spec, int level, cm_writer_spec_t *out);

/* Frees encoded tiles; accepts NULL. */
void cm_encoded_free(cm_encoded_t *e);

/* Finishes the file and renames it into place; frees the writer whatever happens. On
 * failure the temporary file is removed and nothing appears at path. */
int cm_writer_commit(cm_writer_t *wr, cm_ctx_t *ctx);

/* Drops the output: removes the temporary file and frees the writer. Accepts NULL. */
void cm_writer_abort(cm_writer_t *wr);

/* ---- files and names ---- */

/* Writes len bytes to path atomically (temporary file, fsync, rename). */
int cm_file_write_atomic(const char *path, const void *data, size_t len, cm_ctx_t *ctx);

/* Reads the whole file at path (at most max_bytes) into *text, which the caller frees, and
 * *len. CM_EINPUT naming the file when it cannot be read or is larger; CM_ENOMEM. */
int cm_file_read(const char *path, size_t max_bytes, char **text, size_t *len, cm_ctx_t *ctx);

/* TIFF compression by name ("none", "lzw", "deflate", "zstd", "jpeg", "packbits"): 0 and
 * *code, or CM_EUSAGE for another name or a codec this libtiff was built without. */
int cm_compression_parse(const char *name, int *code);
/* Name of a TIFF compression code, "unknown" if it is none of ours. */
const char *cm_compression_name(int code);

#endif
