/* TIFF reading: checks the layout once, then decodes chunks (native tiles or bands of whole
 * strips) with one libtiff handle per worker, opened on first use by that worker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <tiffio.h>
#include <unistd.h>
#include <zstd.h>

#include "cm_io.h"
#include "io_internal.h"

enum { DEFAULT_SIDE = 512, STRIP_BAND_MAX_BYTES = 64 << 20 };

typedef struct handle {
    TIFF *tif;
    uint8_t *unit; /* a decoded tile or strip (one plane), when it cannot go straight in */
    ZSTD_DCtx *dctx;
    ZSTD_CCtx *cctx;  /* recording chunks into the spill store */
    uint8_t *zbuf;    /* compressed chunk being recorded */
    uint8_t *zin;     /* compressed chunk read back from the spill store */
    cm__membuf_t mem; /* this handle's position in an image opened from memory */
    int fd;           /* the file, opened for this worker with the others; -1 once libtiff owns
                       * it (or for memory) */
    cm__tiff_msg_t msg;
} handle_t;

struct cm_image {
    char *path;
    const uint8_t *data; /* the file's bytes, for an image opened from memory (else NULL) */
    size_t data_size;
    cm_image_info_t info;
    bool ycbcr_as_rgb;
    int file_spp;             /* samples per pixel in the file (1 for a palette image) */
    size_t file_sample_bytes; /* bytes per sample in the file */
    size_t sample_bytes;      /* bytes per sample as read (a palette's colours: 1 or 2) */
    uint16_t *cmap;           /* palette: 3 x 256 entries (red, green, blue), else NULL */
    int64_t tiles_x, tiles_y; /* tiles per chunk, across and down (1 x 1: native tiles) */
    /* The spill store, for strips too large to decode per chunk: every band, decoded once in
     * order, kept as a zstd frame in an unlinked scratch file. */
    bool spill;
    int spill_fd;
    int64_t *spill_at, *spill_size; /* per chunk; size -1 while not stored */
    /* Recording: chunks decoded from the file are also stored, for cheap re-reads. */
    bool recording;
    int64_t spill_end; /* bytes of the store taken, grown atomically */
    int n_workers;
    handle_t *handles;
    const volatile sig_atomic_t *cancel; /* stops long loops of our own, or NULL */
};

static int open_handle(cm_image_t *img, handle_t *h, cm_ctx_t *ctx)
{
    /* "m": no memory mapping, whose pages would count against the memory we promise */
    if (img->data) {
        /* libtiff only reads through a handle opened "r": the bytes are never written */
        h->mem = (cm__membuf_t){(uint8_t *)img->data, img->data_size, img->data_size, 0};
        h->tif = cm__tiff_open_memory(&h->mem, "rm", &h->msg);
        if (!h->tif)
            return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF libtiff can read: %s", img->path,
                           h->msg.text);
    } else {
        h->tif = cm__tiff_open(img->path, "rm", h->fd, &h->msg);
        if (h->tif) h->fd = -1; /* closed by TIFFClose */
    }
    if (!h->tif) {
        int e = errno;
        if (e == ENOMEM) return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);
        /* Every worker's descriptor was opened with the first: a later worker failing to read
         * the header means the file changed under us (truncated, rewritten). */
        if (h != &img->handles[0])
            return cm_fail(ctx, CM_EINPUT, "%s: changed while being read: %s", img->path,
                           h->msg.text[0] ? h->msg.text : strerror(e));
        if (access(img->path, R_OK) < 0)
            return cm_fail(ctx, CM_EINPUT, "%s: %s", img->path, strerror(errno));
        return cm_fail(ctx, CM_EINPUT, "%s: not a TIFF libtiff can read: %s", img->path,
                       h->msg.text);
    }
    if (img->ycbcr_as_rgb) TIFFSetField(h->tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    return 0;
}

static const char *photometric_name(int p)
{
    switch (p) {
    case PHOTOMETRIC_MINISWHITE: return "min-is-white";
    case PHOTOMETRIC_MINISBLACK: return "min-is-black";
    case PHOTOMETRIC_RGB: return "RGB";
    case PHOTOMETRIC_PALETTE: return "palette";
    case PHOTOMETRIC_MASK: return "mask";
    case PHOTOMETRIC_SEPARATED: return "separated (CMYK)";
    case PHOTOMETRIC_YCBCR: return "YCbCr";
    case PHOTOMETRIC_CIELAB: return "CIE L*a*b*";
    case PHOTOMETRIC_LOGLUV: return "LogLuv";
    default: return "unknown";
    }
}

/* Chooses the chunks. side = 0: the file's own tiles, or bands of whole strips about
 * DEFAULT_SIDE rows tall. side > 0: squares of side x side made of whole tiles when the tiles
 * divide side (otherwise the tiles themselves), or bands of whole strips about side rows tall.
 * Bands are a multiple of 16 rows, so that each can be written as a row of output tiles. */
static int make_grid(cm_image_t *img, int64_t side, cm_ctx_t *ctx)
{
    cm_image_info_t *in = &img->info;
    int64_t chunk_w = in->tile_w, chunk_h = in->tile_h;
    img->tiles_x = img->tiles_y = 1;
    if (in->tiled && side > 0 && side % in->tile_w == 0 && side % in->tile_h == 0) {
        img->tiles_x = side / in->tile_w;
        img->tiles_y = side / in->tile_h;
        chunk_w = chunk_h = side;
    } else if (!in->tiled) {
        int64_t target = side > 0 ? side : DEFAULT_SIDE, rps = in->tile_h;
        int64_t unit = rps, row_bytes = in->width * in->bands * (int64_t)img->sample_bytes;
        int64_t all = (in->height + 15) / 16 * 16, unit_bytes;
        while (unit % 16) unit += rps;
        /* Strips too large for a chunk (one strip for the whole image, say) are streamed once
         * into the spill store, in bands of about `target` rows. */
        img->spill = !cm_mul_i64(unit, row_bytes, &unit_bytes) || unit_bytes > STRIP_BAND_MAX_BYTES;
        in->streamed = img->spill;
        if (img->spill) unit = 16;
        chunk_h = unit;
        /* chunk_h + unit <= target <= 65536 is tested first, and row_bytes < 2^40 */
        while (chunk_h + unit <= target && (chunk_h + unit) * row_bytes <= STRIP_BAND_MAX_BYTES)
            chunk_h += unit;
        if (chunk_h > all) chunk_h = all;
    }
    in->out_tile_w = chunk_w;
    in->out_tile_h = chunk_h;
    if (!in->tiled) { /* a band of strips is written as a row of tiles */
        int64_t target = side > 0 ? side : DEFAULT_SIDE;
        in->out_tile_w = (in->width + 15) / 16 * 16 < target ? (in->width + 15) / 16 * 16 : target;
    }
    cm_ctx_t grid_ctx;
    cm_ctx_init(&grid_ctx);
    if (cm_grid_init(&in->grid, in->width, in->height, chunk_w, chunk_h, in->bands, in->alpha_band,
                     in->stype, &grid_ctx) < 0)
        return cm_fail(ctx, grid_ctx.code, "%s: %s", img->path, grid_ctx.msg);
    return 0;
}

int cm_image_set_chunk_side(cm_image_t *img, int64_t side, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, side < 16 || side > 65536 || side % 16, CM_EUSAGE,
               "tile size must be a multiple of 16 from 16 to 65536, not %lld", (long long)side);
    return make_grid(img, side, ctx);
}

static bool sample_type(uint16_t bits, uint16_t fmt, cm_stype_t *t)
{
    if (bits == 8 && fmt == SAMPLEFORMAT_UINT)
        *t = CM_U8;
    else if (bits == 16 && fmt == SAMPLEFORMAT_UINT)
        *t = CM_U16;
    else if (bits == 16 && fmt == SAMPLEFORMAT_INT)
        *t = CM_I16;
    else if (bits == 32 && fmt == SAMPLEFORMAT_IEEEFP)
        *t = CM_F32;
    else
        return false;
    return true;
}

/* Keeps the colour map of a palette image: 8-bit colours when every entry is v * 257 (as
 * 8-bit maps are stored), else 16-bit ones. */
static int take_colormap(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx)
{
    uint16_t *r, *g, *b;
    CM_FAIL_IF(ctx, !TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b), CM_EINPUT,
               "%s: palette image without a colour map", img->path);
    img->cmap = malloc(sizeof(uint16_t) * 3 * 256);
    CM_FAIL_IF(ctx, !img->cmap, CM_ENOMEM, "%s: out of memory", img->path);
    bool eight = true;
    for (int i = 0; i < 256; i++) {
        img->cmap[i] = r[i];
        img->cmap[256 + i] = g[i];
        img->cmap[512 + i] = b[i];
        eight = eight && r[i] % 257 == 0 && g[i] % 257 == 0 && b[i] % 257 == 0;
    }
    for (int i = 0; eight && i < 3 * 256; i++) img->cmap[i] /= 257;
    img->info.stype = eight ? CM_U8 : CM_U16;
    img->sample_bytes = eight ? 1 : 2;
    return 0;
}

/* Checks the first directory and fills img->info. */
static int inspect(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx)
{
    const char *path = img->path;
    cm_image_info_t *in = &img->info;
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bits = 1, fmt = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, photo = 0,
             comp = COMPRESSION_NONE;
    CM_FAIL_IF(ctx,
               !TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) ||
                   !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h),
               CM_EINPUT, "%s: no image size in the TIFF directory", path);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &comp);
    CM_FAIL_IF(ctx, !TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photo), CM_EINPUT,
               "%s: no photometric interpretation", path);
    CM_FAIL_IF(ctx, w == 0 || h == 0, CM_EINPUT, "%s: image has no pixels (%ux%u)", path, w, h);
    CM_FAIL_IF(ctx, bits < 8, CM_EINPUT,
               "%s: %u-bit samples are not supported (8 bits or more; convert with "
               "'tiffcp -c none' or GDAL first)",
               path, bits);
    CM_FAIL_IF(ctx, !sample_type(bits, fmt, &in->stype), CM_EINPUT,
               "%s: %u-bit %s samples are not supported (8- or 16-bit integers, 32-bit float)",
               path, bits,
               fmt == SAMPLEFORMAT_INT      ? "signed"
               : fmt == SAMPLEFORMAT_IEEEFP ? "float"
               : fmt == SAMPLEFORMAT_UINT   ? "unsigned"
                                            : "complex or untyped");
    CM_FAIL_IF(ctx, spp < 1 || spp > CM_BANDS_MAX, CM_EINPUT,
               "%s: %u samples per pixel are not supported (1 to %d)", path, spp, CM_BANDS_MAX);
    CM_FAIL_IF(ctx, !TIFFIsCODECConfigured(comp), CM_EINPUT,
               "%s: compression %u is not available in this libtiff", path, comp);
    img->file_spp = spp;
    img->file_sample_bytes = img->sample_bytes = bits / 8;

    uint16_t n_extra = 0, *extra = NULL;
    TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
    CM_FAIL_IF(ctx, n_extra >= spp && photo != PHOTOMETRIC_MINISBLACK, CM_EINPUT,
               "%s: %u extra samples of %u", path, n_extra, spp);
    int colour = spp - n_extra, alpha = -1, bands = spp;
    for (int i = 0; i < n_extra && alpha < 0; i++)
        if (extra[i] == EXTRASAMPLE_ASSOCALPHA || extra[i] == EXTRASAMPLE_UNASSALPHA)
            alpha = colour + i;
    CM_FAIL_IF(ctx, alpha >= 0 && spp == 1, CM_EINPUT, "%s: only an alpha sample", path);
    switch (photo) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_SEPARATED: break;
    case PHOTOMETRIC_RGB:
        CM_FAIL_IF(ctx, colour < 3, CM_EINPUT, "%s: RGB image with %d colour samples", path,
                   colour);
        break;
    case PHOTOMETRIC_YCBCR:
        CM_FAIL_IF(ctx, comp != COMPRESSION_JPEG || colour != 3 || bits != 8, CM_EINPUT,
                   "%s: YCbCr is supported only in 8-bit JPEG-compressed files", path);
        img->ycbcr_as_rgb = true;
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        break;
    case PHOTOMETRIC_PALETTE:
        CM_FAIL_IF(ctx, spp != 1 || bits != 8 || fmt != SAMPLEFORMAT_UINT, CM_EINPUT,
                   "%s: palette images must have one 8-bit index per pixel, not %u of %u bits",
                   path, spp, bits);
        CM_TRY(take_colormap(img, tif, ctx));
        bands = 3;
        break;
    default:
        return cm_fail(ctx, CM_EINPUT, "%s: photometric interpretation %s is not supported", path,
                       photometric_name(photo));
    }

    in->width = w;
    in->height = h;
    in->bands = bands;
    in->alpha_band = alpha;
    in->sample_type = cm_stype_name(in->stype);
    in->bits = bits;
    in->photometric = photo;
    in->photometric_name = photometric_name(photo);
    in->compression = comp;
    in->tiled = TIFFIsTiled(tif);
    in->bigtiff = TIFFIsBigTIFF(tif);
    in->planar_separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
    in->palette = img->cmap != NULL;
    in->n_extra = n_extra;
    for (int i = 0; i < n_extra; i++) in->extra[i] = extra[i];
    in->has_nodata = cm__tags_nodata(tif, &in->nodata) == 1;
    uint32_t n_keys = 0;
    void *keys = NULL;
    in->georeferenced = TIFFGetField(tif, 34735 /* GeoKeyDirectory */, &n_keys, &keys) && n_keys;

    int64_t plane_spp = in->planar_separate ? 1 : spp;
    if (in->tiled) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        CM_FAIL_IF(ctx, tw == 0 || th == 0 || tw % 16 || th % 16, CM_EINPUT,
                   "%s: tiles of %ux%u pixels are not supported (TIFF wants multiples of 16)", path,
                   tw, th);
        in->tile_w = tw;
        in->tile_h = th;
        uint64_t want = (uint64_t)tw * th * plane_spp * img->file_sample_bytes;
        CM_FAIL_IF(ctx, TIFFTileSize64(tif) != want, CM_EINPUT,
                   "%s: tiles of %llu bytes, expected %llu", path,
                   (unsigned long long)TIFFTileSize64(tif), (unsigned long long)want);
    } else {
        uint32_t rps = h;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        in->tile_w = w;
        in->tile_h = rps == 0 || rps > h ? h : rps;
    }
    return make_grid(img, 0, ctx);
}

static int open_image(const char *path, const void *data, size_t size, int n_workers,
                      cm_image_t **out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_workers < 1, CM_EUSAGE, "bad number of workers %d", n_workers);
    cm_image_t *img = calloc(1, sizeof(cm_image_t));
    if (img) {
        img->data = data;
        img->data_size = size;
        img->spill_fd = -1;
        img->path = strdup(path);
    }
    if (img) img->handles = calloc((size_t)n_workers, sizeof(handle_t));
    for (int i = 0; img && img->handles && i < n_workers; i++) img->handles[i].fd = -1;
    if (!img || !img->path || !img->handles) {
        cm_image_close(img);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    img->n_workers = n_workers;
    int rc = 0;
    /* One descriptor per worker, all opened now: every worker then reads the same file even
     * if the path is replaced during the run, and running out of descriptors shows now. */
    for (int i = 0; !data && i < n_workers && rc == 0; i++) {
        img->handles[i].fd = open(path, O_RDONLY | O_CLOEXEC);
        if (img->handles[i].fd >= 0) continue;
        int e = errno;
        if (e == EMFILE || e == ENFILE || e == ENOMEM)
            rc = cm_fail(ctx, e == ENOMEM ? CM_ENOMEM : CM_EIO, "%s: cannot open: %s", path,
                         strerror(e));
        else
            rc = cm_fail(ctx, CM_EINPUT, "%s: %s", path, strerror(e));
    }
    if (rc == 0) rc = open_handle(img, &img->handles[0], ctx);
    if (rc == 0) rc = inspect(img, img->handles[0].tif, ctx);
    if (rc < 0) {
        cm_image_close(img);
        return rc;
    }
    *out = img;
    return 0;
}

int cm_image_open(const char *path, int n_workers, cm_image_t **out, cm_ctx_t *ctx)
{
    return open_image(path, NULL, 0, n_workers, out, ctx);
}

int cm_image_open_memory(const void *data, size_t size, const char *name, int n_workers,
                         cm_image_t **out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !data, CM_EUSAGE, "%s: no data", name);
    return open_image(name, data, size, n_workers, out, ctx);
}

TIFF *cm__image_tiff(cm_image_t *img)
{
    return img->handles[0].tif;
}

void cm_image_set_cancel(cm_image_t *img, const volatile sig_atomic_t *flag)
{
    img->cancel = flag;
}

const cm_image_info_t *cm_image_info(const cm_image_t *img)
{
    return &img->info;
}

const char *cm_image_path(const cm_image_t *img)
{
    return img->path;
}

/* Puts rows [0, rows) and columns [0, cols) of a decoded unit (tile or strip, one plane or
 * all) at (ux, uy) of the chunk whose rectangle is (x, y, w): copying rows, scattering one
 * plane into its band, or expanding palette indices to colours. */
static void place(const cm_image_t *img, const uint8_t *unit, int64_t unit_w, int plane,
                  int64_t rows, int64_t cols, uint8_t *buf, int64_t ux, int64_t uy, int64_t x,
                  int64_t y, int64_t w)
{
    const cm_image_info_t *in = &img->info;
    size_t sb = img->sample_bytes, px = (size_t)in->bands * sb;
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *dst = buf + ((size_t)(uy - y + r) * (size_t)w + (size_t)(ux - x)) * px;
        if (img->cmap) {
            const uint8_t *src = unit + (size_t)(r * unit_w);
            for (int64_t c = 0; c < cols; c++)
                for (int b = 0; b < 3; b++) {
                    uint16_t v = img->cmap[256 * b + src[c]];
                    if (sb == 1)
                        dst[c * 3 + b] = (uint8_t)v;
                    else
                        memcpy(dst + (c * 3 + b) * 2, &v, 2);
                }
        } else if (in->planar_separate) {
            const uint8_t *src = unit + (size_t)(r * unit_w) * sb;
            for (int64_t c = 0; c < cols; c++)
                memcpy(dst + (size_t)c * px + (size_t)plane * sb, src + (size_t)c * sb, sb);
        } else {
            memmove(dst, unit + (size_t)(r * unit_w) * px, (size_t)cols * px);
        }
    }
}

/* ---- the spill store ---- */

/* Creates the (unlinked) scratch file of the spill store under dir; false with errno. */
static bool spill_create(cm_image_t *img, const char *dir)
{
    size_t size = strlen(dir) + 32;
    char *path = malloc(size);
    if (!path) return false;
    snprintf(path, size, "%s/.chunkmeans-spill-XXXXXX", dir);
    img->spill_fd = mkostemp(path, O_CLOEXEC);
    if (img->spill_fd >= 0) unlink(path);
    free(path);
    return img->spill_fd >= 0;
}

int cm_image_prepare(cm_image_t *img, const char *scratch_dir, cm_ctx_t *ctx)
{
    if (!img->spill || img->spill_fd >= 0) return 0;
    const cm_image_info_t *in = &img->info;
    CM_FAIL_IF(ctx, in->planar_separate, CM_EINPUT,
               "%s: planar-separate strips this large cannot be streamed (tile the file "
               "first, e.g. with gdal_translate -co TILED=YES)",
               img->path);
    int64_t n = cm_grid_count(&in->grid);
    size_t band_bytes = cm_grid_chunk_bytes(&in->grid), px = (size_t)in->bands * img->sample_bytes;
    size_t bound = ZSTD_compressBound(band_bytes), path_size = strlen(scratch_dir) + 32;
    char *path = malloc(path_size);
    uint8_t *band = malloc(band_bytes), *row = malloc((size_t)in->width * px), *z = malloc(bound);
    img->spill_at = malloc(sizeof(int64_t) * (size_t)n);
    img->spill_size = malloc(sizeof(int64_t) * (size_t)n);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    int rc = 0;
    if (!path || !band || !row || !z || !img->spill_at || !img->spill_size || !cctx) {
        rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory for the spill store", img->path);
        goto done;
    }
    if (!spill_create(img, scratch_dir)) { /* unlinked: gone with the process, however it ends */
        rc = cm_fail(ctx, CM_EIO, "%s: cannot create a scratch file: %s", scratch_dir,
                     strerror(errno));
        goto done;
    }

    TIFF *tif = img->handles[0].tif;
    cm__tiff_msg_t *msg = &img->handles[0].msg;
    int64_t at = 0;
    for (int64_t c = 0; c < n && rc == 0; c++) {
        int64_t x, y, w, rows;
        cm_grid_rect(&in->grid, c, &x, &y, &w, &rows);
        if (img->cancel && *img->cancel) {
            rc = cm_fail(ctx, CM_ECANCELED, "%s: interrupted while streaming", img->path);
            break;
        }
        for (int64_t r = 0; r < rows && rc == 0; r++) {
            msg->text[0] = '\0';
            if (TIFFReadScanline(tif, row, (uint32_t)(y + r), 0) < 0)
                rc = cm_fail(ctx, CM_EINPUT, "%s: row %lld cannot be decoded: %s", img->path,
                             (long long)(y + r), msg->text[0] ? msg->text : "read error");
            else
                place(img, row, w, 0, 1, w, band, 0, y + r, 0, y, w);
        }
        if (rc) break;
        size_t got = ZSTD_compressCCtx(cctx, z, bound, band, (size_t)(w * rows) * px, 1);
        if (ZSTD_isError(got)) {
            rc = cm_fail(ctx, CM_EINTERNAL, "zstd: %s", ZSTD_getErrorName(got));
            break;
        }
        for (size_t done = 0; done < got && rc == 0;) {
            ssize_t k = pwrite(img->spill_fd, z + done, got - done, (off_t)(at + (int64_t)done));
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0)
                rc = cm_fail(ctx, CM_EIO, "%s: cannot write the spill store: %s", scratch_dir,
                             strerror(k < 0 ? errno : ENOSPC));
            else
                done += (size_t)k;
        }
        img->spill_at[c] = at;
        img->spill_size[c] = (int64_t)got;
        at += (int64_t)got;
    }
done:
    ZSTD_freeCCtx(cctx);
    free(z);
    free(row);
    free(band);
    free(path);
    return rc;
}

int cm_image_keep_chunks(cm_image_t *img, const char *scratch_dir, cm_ctx_t *ctx)
{
    if (img->spill || img->recording) return 0; /* already read from a store */
    int comp = img->info.compression;
    if (comp == COMPRESSION_NONE || comp == COMPRESSION_PACKBITS) return 0; /* cheap already */
    int64_t n = cm_grid_count(&img->info.grid);
    img->spill_at = malloc(sizeof(int64_t) * (size_t)n);
    img->spill_size = malloc(sizeof(int64_t) * (size_t)n);
    if (!img->spill_at || !img->spill_size) {
        free(img->spill_at);
        free(img->spill_size);
        img->spill_at = img->spill_size = NULL;
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory for the spill store", img->path);
    }
    for (int64_t i = 0; i < n; i++) img->spill_size[i] = -1;
    if (!spill_create(img, scratch_dir))
        return cm_fail(ctx, CM_EIO, "%s: cannot create a scratch file: %s", scratch_dir,
                       strerror(errno));
    img->recording = true;
    return 0;
}

/* Stores a decoded chunk in the spill store. Best effort: when the disk is full or memory
 * short, the chunk is simply decoded from the file again next time. */
static void record_chunk(cm_image_t *img, handle_t *h, int64_t idx, const uint8_t *buf,
                         size_t bytes)
{
    size_t bound = ZSTD_compressBound(cm_grid_chunk_bytes(&img->info.grid));
    if (!h->cctx) h->cctx = ZSTD_createCCtx();
    if (!h->zbuf) h->zbuf = malloc(bound);
    if (!h->cctx || !h->zbuf) return;
    size_t got = ZSTD_compressCCtx(h->cctx, h->zbuf, bound, buf, bytes, 1);
    if (ZSTD_isError(got)) return;
    int64_t at = __atomic_fetch_add(&img->spill_end, (int64_t)got, __ATOMIC_RELAXED);
    for (size_t done = 0; done < got;) {
        ssize_t k = pwrite(img->spill_fd, h->zbuf + done, got - done, (off_t)(at + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return; /* not stored: read from the file again */
        done += (size_t)k;
    }
    img->spill_at[idx] = at;
    img->spill_size[idx] = (int64_t)got; /* seen by later graph runs, after their barrier */
}

static int read_spilled(cm_image_t *img, handle_t *h, int64_t idx, uint8_t *buf, size_t n_px,
                        cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, img->spill_fd < 0, CM_EINTERNAL, "%s: read before cm_image_prepare", img->path);
    size_t size = (size_t)img->spill_size[idx],
           want = n_px * (size_t)img->info.bands * img->sample_bytes;
    if (!h->dctx) h->dctx = ZSTD_createDCtx();
    if (!h->zin) h->zin = malloc(ZSTD_compressBound(cm_grid_chunk_bytes(&img->info.grid)));
    CM_FAIL_IF(ctx, !h->dctx || !h->zin, CM_ENOMEM, "%s: out of memory", img->path);
    for (size_t done = 0; done < size;) {
        ssize_t k = pread(img->spill_fd, h->zin + done, size - done,
                          (off_t)(img->spill_at[idx] + (int64_t)done));
        if (k < 0 && errno == EINTR) continue;
        CM_FAIL_IF(ctx, k <= 0, CM_EIO, "%s: cannot read the spill store: %s", img->path,
                   k < 0 ? strerror(errno) : "short read");
        done += (size_t)k;
    }
    size_t got = ZSTD_decompressDCtx(h->dctx, buf, want, h->zin, size);
    CM_FAIL_IF(ctx, ZSTD_isError(got) || got != want, CM_EINTERNAL,
               "%s: spill store chunk %lld is damaged", img->path, (long long)idx);
    return 0;
}

/* Decodes the rectangle of a chunk from the file's tiles or strips. */
/* Sparse files (GDAL's SPARSE_OK) leave out the tiles or strips that hold nothing: their
 * offset is 0, never valid data. As GDAL does, they read as the nodata value where the image
 * declares one that its samples can hold, else as zeros. Returns n. */
static tmsize_t fill_absent(const cm_image_t *img, uint8_t *dst, size_t n)
{
    const cm_image_info_t *in = &img->info;
    double v = in->nodata;
    union {
        uint8_t u8;
        uint16_t u16;
        int16_t i16;
        float f32;
    } s = {0};
    bool holds = in->has_nodata && !img->cmap;
    switch (in->stype) {
    case CM_U8: holds = holds && v >= 0 && v <= UINT8_MAX && v == (s.u8 = (uint8_t)v); break;
    case CM_U16: holds = holds && v >= 0 && v <= UINT16_MAX && v == (s.u16 = (uint16_t)v); break;
    case CM_I16:
        holds = holds && v >= INT16_MIN && v <= INT16_MAX && v == (s.i16 = (int16_t)v);
        break;
    case CM_F32: s.f32 = (float)v; break;
    }
    size_t sb = img->file_sample_bytes;
    if (!holds || sb > sizeof s) {
        memset(dst, 0, n);
        return (tmsize_t)n;
    }
    for (size_t i = 0; i + sb <= n; i += sb) memcpy(dst + i, &s, sb);
    return (tmsize_t)n;
}

static int read_from_file(cm_image_t *img, handle_t *h, int64_t x, int64_t y, int64_t w,
                          int64_t rows, uint8_t *buf, cm_ctx_t *ctx)
{
    const cm_image_info_t *in = &img->info;
    /* Units are the file's tiles or strips; one plane each when samples are separate. Each
     * is decoded straight into the chunk when it has the chunk's layout, else into h->unit
     * and placed. */
    int planes = in->planar_separate ? img->file_spp : 1;
    int64_t unit_w = in->tile_w, unit_h = in->tile_h;
    size_t unit_px = (size_t)(in->planar_separate ? 1 : img->file_spp) * img->file_sample_bytes;
    bool reshape = in->planar_separate || img->cmap;
    bool direct = !reshape && (!in->tiled || (img->tiles_x == 1 && img->tiles_y == 1));
    size_t unit_bytes = (size_t)unit_w * (size_t)unit_h * unit_px;
    if (!direct && !h->unit && !(h->unit = malloc(unit_bytes)))
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);

    for (int64_t uy = y; uy < y + rows; uy += unit_h)
        for (int64_t ux = x; ux < x + w; ux += unit_w)
            for (int s = 0; s < planes; s++) {
                int64_t cols = x + w - ux < unit_w ? x + w - ux : unit_w;
                int64_t n_rows = y + rows - uy < unit_h ? y + rows - uy : unit_h;
                uint8_t *dst = !direct     ? h->unit
                               : in->tiled ? buf
                                           : buf + (size_t)(uy - y) * (size_t)w * unit_px;
                tmsize_t want, got;
                uint32_t unit =
                    in->tiled ? TIFFComputeTile(h->tif, (uint32_t)ux, (uint32_t)uy, 0, (uint16_t)s)
                              : TIFFComputeStrip(h->tif, (uint32_t)uy, (uint16_t)s);
                want = in->tiled ? (tmsize_t)unit_bytes
                                 : (tmsize_t)((size_t)n_rows * (size_t)unit_w * unit_px);
                if (TIFFGetStrileOffset(h->tif, unit) == 0) /* absent: a sparse file */
                    got = fill_absent(img, dst, (size_t)want);
                else if (in->tiled)
                    got = TIFFReadEncodedTile(h->tif, unit, dst, want);
                else
                    got = TIFFReadEncodedStrip(h->tif, unit, dst, want);
                if (got != want)
                    return cm_fail(ctx, CM_EINPUT, "%s: %s %u (at %lld,%lld) cannot be decoded: %s",
                                   img->path, in->tiled ? "tile" : "strip", unit, (long long)ux,
                                   (long long)uy, h->msg.text[0] ? h->msg.text : "short read");
                /* A strip decoded in place is already packed; a native tile is packed in place
                 * (its first row is where it belongs). */
                if (direct && !in->tiled) continue;
                if (direct && cols == unit_w) continue;
                place(img, dst, unit_w, s, n_rows, cols, buf, ux, uy, x, y, w);
            }
    return 0;
}

int cm_image_read_chunk(cm_image_t *img, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, worker < 0 || worker >= img->n_workers, CM_EINTERNAL, "worker %d of %d", worker,
               img->n_workers);
    handle_t *h = &img->handles[worker];
    if (!h->tif) CM_TRY(open_handle(img, h, ctx));
    const cm_image_info_t *in = &img->info;
    int64_t x, y, w, rows;
    cm_grid_rect(&in->grid, idx, &x, &y, &w, &rows);
    h->msg.text[0] = '\0';
    if (img->spill || (img->recording && img->spill_size[idx] >= 0))
        return read_spilled(img, h, idx, buf, (size_t)(w * rows), ctx);
    int rc = read_from_file(img, h, x, y, w, rows, buf, ctx);
    if (rc == 0 && img->recording)
        record_chunk(img, h, idx, buf, (size_t)(w * rows) * (size_t)in->bands * img->sample_bytes);
    return rc;
}

void cm_image_close(cm_image_t *img)
{
    if (!img) return;
    for (int i = 0; img->handles && i < img->n_workers; i++) {
        if (img->handles[i].fd >= 0) close(img->handles[i].fd);
        if (img->handles[i].tif) {
            TIFFClose(img->handles[i].tif);
            free(img->handles[i].unit);
            free(img->handles[i].zbuf);
            free(img->handles[i].zin);
            ZSTD_freeDCtx(img->handles[i].dctx);
            ZSTD_freeCCtx(img->handles[i].cctx);
        }
    }
    if (img->spill_fd >= 0) close(img->spill_fd);
    free(img->spill_at);
    free(img->spill_size);
    free(img->handles);
    free(img->cmap);
    free(img->path);
    free(img);
}
