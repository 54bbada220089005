/* What a TIFF holds and how it is read: its first directory checked and described
 * (cm_image_info_t), and the grid of chunks it is read in (squares of whole tiles, or bands of
 * whole strips). */
#include <stdlib.h>
#include <tiffio.h>

#include "io_internal.h"

enum { DEFAULT_SIDE = 512, STRIP_BAND_MAX_BYTES = 64 << 20 };

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
        /* A JPEG's or PNG's bands hold about as many pixels as four side x side chunks (at
         * least 16 rows, at most side), whatever the width: wide images then stream through
         * about as little memory as tiled ones. */
        if (img->dec) target = (4 * target * target / in->width + 15) / 16 * 16;
        if (target < 16) target = 16;
        if (target > (side > 0 ? side : DEFAULT_SIDE)) target = side > 0 ? side : DEFAULT_SIDE;
        int64_t unit = rps, row_bytes = in->width * in->bands * (int64_t)img->sample_bytes;
        int64_t all = (in->height + 15) / 16 * 16, unit_bytes;
        while (unit % 16) unit += rps;
        /* Strips too large for a chunk (one strip for the whole image, say), and JPEG and PNG
         * images, are streamed once into the spill store, in bands of about `target` rows. */
        img->spill = img->dec || !cm__mul_i64(unit, row_bytes, &unit_bytes) ||
                     unit_bytes > STRIP_BAND_MAX_BYTES;
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

/* The fields of the first directory that say how samples are stored. */
typedef struct fields {
    uint32_t w, h;
    uint16_t spp, bits, fmt, planar, photo, comp;
} fields_t;

/* Reads the size and the samples' kind, refusing what cannot be read. */
static int read_samples(cm_image_t *img, TIFF *tif, fields_t *f, cm_ctx_t *ctx)
{
    const char *path = img->path;
    *f = (fields_t){.spp = 1,
                    .bits = 1,
                    .fmt = SAMPLEFORMAT_UINT,
                    .planar = PLANARCONFIG_CONTIG,
                    .comp = COMPRESSION_NONE};
    CM_FAIL_IF(ctx,
               !TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &f->w) ||
                   !TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &f->h),
               CM_EINPUT, "%s: no image size in the TIFF directory", path);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &f->spp);
    TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &f->bits);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &f->fmt);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &f->planar);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &f->comp);
    CM_FAIL_IF(ctx, !TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &f->photo), CM_EINPUT,
               "%s: no photometric interpretation", path);
    CM_FAIL_IF(ctx, f->w == 0 || f->h == 0, CM_EINPUT, "%s: image has no pixels (%ux%u)", path,
               f->w, f->h);
    CM_FAIL_IF(ctx, f->bits < 8, CM_EINPUT,
               "%s: %u-bit samples are not supported (8 bits or more; convert with "
               "'tiffcp -c none' or GDAL first)",
               path, f->bits);
    CM_FAIL_IF(ctx, !sample_type(f->bits, f->fmt, &img->info.stype), CM_EINPUT,
               "%s: %u-bit %s samples are not supported (8- or 16-bit integers, 32-bit float)",
               path, f->bits,
               f->fmt == SAMPLEFORMAT_INT      ? "signed"
               : f->fmt == SAMPLEFORMAT_IEEEFP ? "float"
               : f->fmt == SAMPLEFORMAT_UINT   ? "unsigned"
                                               : "complex or untyped");
    CM_FAIL_IF(ctx, f->spp < 1 || f->spp > CM_BANDS_MAX, CM_EINPUT,
               "%s: %u samples per pixel are not supported (1 to %d)", path, f->spp, CM_BANDS_MAX);
    CM_FAIL_IF(ctx, !TIFFIsCODECConfigured(f->comp), CM_EINPUT,
               "%s: compression %u is not available in this libtiff", path, f->comp);
    img->file_spp = f->spp;
    img->file_sample_bytes = img->sample_bytes = f->bits / 8;
    return 0;
}

/* Reads the extra samples (alpha among them) and the photometric interpretation into
 * img->info: its bands as read (a palette's colours), alpha band and extra samples. */
static int read_color(cm_image_t *img, TIFF *tif, const fields_t *f, cm_ctx_t *ctx)
{
    const char *path = img->path;
    cm_image_info_t *in = &img->info;
    uint16_t n_extra = 0, *extra = NULL;
    TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
    CM_FAIL_IF(ctx, n_extra >= f->spp && f->photo != PHOTOMETRIC_MINISBLACK, CM_EINPUT,
               "%s: %u extra samples of %u", path, n_extra, f->spp);
    int color = f->spp - n_extra, alpha = -1, bands = f->spp;
    for (int i = 0; i < n_extra && alpha < 0; i++)
        if (extra[i] == EXTRASAMPLE_ASSOCALPHA || extra[i] == EXTRASAMPLE_UNASSALPHA)
            alpha = color + i;
    CM_FAIL_IF(ctx, alpha >= 0 && f->spp == 1, CM_EINPUT, "%s: only an alpha sample", path);
    switch (f->photo) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_SEPARATED: break;
    case PHOTOMETRIC_RGB:
        CM_FAIL_IF(ctx, color < 3, CM_EINPUT, "%s: RGB image with %d colour samples", path, color);
        break;
    case PHOTOMETRIC_YCBCR:
        CM_FAIL_IF(ctx, f->comp != COMPRESSION_JPEG || color != 3 || f->bits != 8, CM_EINPUT,
                   "%s: YCbCr is supported only in 8-bit JPEG-compressed files", path);
        img->ycbcr_as_rgb = true;
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        break;
    case PHOTOMETRIC_PALETTE:
        CM_FAIL_IF(ctx, f->spp != 1 || f->bits != 8 || f->fmt != SAMPLEFORMAT_UINT, CM_EINPUT,
                   "%s: palette images must have one 8-bit index per pixel, not %u of %u bits",
                   path, f->spp, f->bits);
        CM_TRY(take_colormap(img, tif, ctx));
        bands = 3;
        break;
    default:
        return cm_fail(ctx, CM_EINPUT, "%s: photometric interpretation %s is not supported", path,
                       photometric_name(f->photo));
    }
    in->bands = bands;
    in->alpha_band = alpha;
    in->alpha_associated = alpha >= 0 && extra[alpha - color] == EXTRASAMPLE_ASSOCALPHA;
    in->n_extra = n_extra;
    for (int i = 0; i < n_extra; i++) in->extra[i] = extra[i];
    return 0;
}

/* Reads the tiles (which must be whole multiples of 16) or the rows per strip. */
static int read_units(cm_image_t *img, TIFF *tif, const fields_t *f, cm_ctx_t *ctx)
{
    cm_image_info_t *in = &img->info;
    int64_t plane_spp = in->planar_separate ? 1 : f->spp;
    if (in->tiled) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        CM_FAIL_IF(ctx, tw == 0 || th == 0 || tw % 16 || th % 16, CM_EINPUT,
                   "%s: tiles of %ux%u pixels are not supported (TIFF wants multiples of 16)",
                   img->path, tw, th);
        in->tile_w = tw;
        in->tile_h = th;
        uint64_t want = (uint64_t)tw * th * plane_spp * img->file_sample_bytes;
        CM_FAIL_IF(ctx, TIFFTileSize64(tif) != want, CM_EINPUT,
                   "%s: tiles of %llu bytes, expected %llu", img->path,
                   (unsigned long long)TIFFTileSize64(tif), (unsigned long long)want);
    } else {
        uint32_t rps = f->h;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        in->tile_w = f->w;
        in->tile_h = rps == 0 || rps > f->h ? f->h : rps;
    }
    return 0;
}

int cm__image_stream_grid(cm_image_t *img, cm_ctx_t *ctx)
{
    cm_image_info_t *in = &img->info;
    in->tiled = false;
    in->tile_w = in->width;
    in->tile_h = in->height;
    return make_grid(img, 0, ctx);
}

/* The ICC profile, orientation and resolution, for outputs in other formats. */
static int take_meta(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx)
{
    cm__meta_t *m = &img->meta;
    uint32_t n = 0;
    void *icc = NULL;
    if (TIFFGetField(tif, TIFFTAG_ICCPROFILE, &n, &icc) && n)
        CM_FAIL_IF(ctx, !cm__meta_set_icc(m, icc, n), CM_ENOMEM, "%s: out of memory", img->path);
    uint16_t orientation = 0, unit = RESUNIT_INCH;
    if (TIFFGetField(tif, TIFFTAG_ORIENTATION, &orientation) && orientation >= 1 &&
        orientation <= 8)
        m->orientation = orientation;
    float xres = 0, yres = 0;
    if (TIFFGetField(tif, TIFFTAG_XRESOLUTION, &xres) &&
        TIFFGetField(tif, TIFFTAG_YRESOLUTION, &yres) && xres > 0 && yres > 0) {
        TIFFGetFieldDefaulted(tif, TIFFTAG_RESOLUTIONUNIT, &unit);
        m->res_unit = unit;
        m->xres = xres;
        m->yres = yres;
    }
    img->info.orientation = m->orientation;
    return 0;
}

int cm__image_inspect(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx)
{
    cm_image_info_t *in = &img->info;
    fields_t f;
    CM_TRY(read_samples(img, tif, &f, ctx));
    CM_TRY(read_color(img, tif, &f, ctx));
    in->width = f.w;
    in->height = f.h;
    in->sample_type = cm_stype_name(in->stype);
    in->bits = f.bits;
    in->photometric = f.photo;
    in->photometric_name = photometric_name(f.photo);
    in->compression = f.comp;
    in->tiled = TIFFIsTiled(tif);
    in->bigtiff = TIFFIsBigTIFF(tif);
    in->planar_separate = f.planar == PLANARCONFIG_SEPARATE && f.spp > 1;
    in->palette = img->cmap != NULL;
    in->has_nodata = cm__tags_nodata(tif, &in->nodata) == 1;
    uint32_t n_keys = 0;
    void *keys = NULL;
    in->georeferenced = TIFFGetField(tif, 34735 /* GeoKeyDirectory */, &n_keys, &keys) && n_keys;
    CM_TRY(read_units(img, tif, &f, ctx));
    CM_TRY(take_meta(img, tif, ctx));
    return make_grid(img, 0, ctx);
}
