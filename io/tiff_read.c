/* TIFF reading: checks the layout once, then decodes chunks (native tiles or bands of whole
 * strips) with one libtiff handle per worker, opened on first use by that worker. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tiffio.h>
#include <unistd.h>

#include "cm_io.h"
#include "io_internal.h"

enum { DEFAULT_SIDE = 512, STRIP_BAND_MAX_BYTES = 64 << 20 };

typedef struct handle {
    TIFF *tif;
    uint8_t *tile; /* one decoded tile, when chunks are made of several */
    cm__tiff_msg_t msg;
} handle_t;

struct cm_image {
    char *path;
    cm_image_info_t info;
    bool ycbcr_as_rgb;
    int64_t tiles_x, tiles_y; /* tiles per chunk, across and down (1 x 1: native tiles) */
    int n_workers;
    handle_t *handles;
};

static int open_handle(cm_image_t *img, handle_t *h, cm_ctx_t *ctx)
{
    /* "m": no memory mapping, whose pages would count against the memory we promise */
    h->tif = cm__tiff_open(img->path, "rm", -1, &h->msg);
    if (!h->tif) {
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
        int64_t unit = rps, row_bytes = in->width * in->bands;
        while (unit % 16) unit += rps;
        chunk_h = unit;
        while (chunk_h + unit <= target && (chunk_h + unit) * row_bytes <= STRIP_BAND_MAX_BYTES)
            chunk_h += unit;
        if (chunk_h > (in->height + 15) / 16 * 16) chunk_h = (in->height + 15) / 16 * 16;
    }
    in->out_tile_w = chunk_w;
    in->out_tile_h = chunk_h;
    if (!in->tiled) { /* a band of strips is written as a row of tiles */
        int64_t target = side > 0 ? side : DEFAULT_SIDE;
        in->out_tile_w = (in->width + 15) / 16 * 16 < target ? (in->width + 15) / 16 * 16 : target;
    }
    cm_ctx_t grid_ctx;
    cm_ctx_init(&grid_ctx);
    if (cm_grid_init(&in->grid, in->width, in->height, chunk_w, chunk_h, in->bands,
                     in->alpha_band, &grid_ctx) < 0)
        return cm_fail(ctx, grid_ctx.code, "%s: %s", img->path, grid_ctx.msg);
    return 0;
}

int cm_image_set_chunk_side(cm_image_t *img, int64_t side, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, side < 16 || side > 65536 || side % 16, CM_EUSAGE,
               "tile size must be a multiple of 16 from 16 to 65536, not %lld", (long long)side);
    return make_grid(img, side, ctx);
}

/* Checks the first directory and fills img->info. */
static int inspect(cm_image_t *img, TIFF *tif, cm_ctx_t *ctx)
{
    const char *path = img->path;
    cm_image_info_t *in = &img->info;
    uint32_t w = 0, h = 0;
    uint16_t spp = 1, bits = 1, fmt = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG,
             photo = 0, comp = COMPRESSION_NONE;
    CM_FAIL_IF(ctx, !TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w) ||
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
    CM_FAIL_IF(ctx, bits != 8 || fmt != SAMPLEFORMAT_UINT, CM_EINPUT,
               "%s: %u-bit %s samples are not supported (8-bit unsigned only)", path, bits,
               fmt == SAMPLEFORMAT_INT      ? "signed"
               : fmt == SAMPLEFORMAT_IEEEFP ? "float"
                                            : "unsigned");
    CM_FAIL_IF(ctx, spp < 1 || spp > 4, CM_EINPUT,
               "%s: %u samples per pixel are not supported (1 to 4)", path, spp);
    CM_FAIL_IF(ctx, planar != PLANARCONFIG_CONTIG && spp > 1, CM_EINPUT,
               "%s: planar-separate samples are not supported (contiguous only)", path);
    CM_FAIL_IF(ctx, !TIFFIsCODECConfigured(comp), CM_EINPUT,
               "%s: compression %u is not available in this libtiff", path, comp);

    uint16_t n_extra = 0, *extra = NULL;
    TIFFGetField(tif, TIFFTAG_EXTRASAMPLES, &n_extra, &extra);
    int colour = spp - n_extra, alpha = -1;
    if (n_extra > 0 && (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA))
        alpha = colour;
    switch (photo) {
    case PHOTOMETRIC_MINISBLACK:
    case PHOTOMETRIC_MINISWHITE:
        CM_FAIL_IF(ctx, colour != 1, CM_EINPUT, "%s: grey image with %d colour samples", path,
                   colour);
        break;
    case PHOTOMETRIC_RGB:
        CM_FAIL_IF(ctx, colour != 3, CM_EINPUT, "%s: RGB image with %d colour samples", path,
                   colour);
        break;
    case PHOTOMETRIC_YCBCR:
        CM_FAIL_IF(ctx, comp != COMPRESSION_JPEG || colour != 3, CM_EINPUT,
                   "%s: YCbCr is supported only in JPEG-compressed files", path);
        img->ycbcr_as_rgb = true;
        TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
        break;
    default:
        return cm_fail(ctx, CM_EINPUT, "%s: photometric interpretation %s is not supported", path,
                       photometric_name(photo));
    }
    CM_FAIL_IF(ctx, n_extra > 1 || (n_extra == 1 && alpha < 0 && spp == 1), CM_EINPUT,
               "%s: %u extra samples are not supported", path, n_extra);

    *in = (cm_image_info_t){.width = w, .height = h, .bands = spp, .alpha_band = alpha,
                            .bits = bits, .sample_type = "uint8", .photometric = photo,
                            .photometric_name = photometric_name(photo), .compression = comp,
                            .tiled = TIFFIsTiled(tif), .bigtiff = TIFFIsBigTIFF(tif)};
    if (in->tiled) {
        uint32_t tw = 0, th = 0;
        TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
        TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
        CM_FAIL_IF(ctx, tw == 0 || th == 0 || tw % 16 || th % 16, CM_EINPUT,
                   "%s: tiles of %ux%u pixels are not supported (TIFF wants multiples of 16)",
                   path, tw, th);
        in->tile_w = tw;
        in->tile_h = th;
        CM_FAIL_IF(ctx, TIFFTileSize64(tif) != (uint64_t)tw * th * spp, CM_EINPUT,
                   "%s: tiles of %llu bytes, expected %llu", path,
                   (unsigned long long)TIFFTileSize64(tif), (unsigned long long)tw * th * spp);
    } else {
        uint32_t rps = h;
        TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
        in->tile_w = w;
        in->tile_h = rps == 0 || rps > h ? h : rps;
    }
    return make_grid(img, 0, ctx);
}

int cm_image_open(const char *path, int n_workers, cm_image_t **out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_workers < 1, CM_EUSAGE, "bad number of workers %d", n_workers);
    cm_image_t *img = calloc(1, sizeof(cm_image_t));
    if (img) img->path = strdup(path);
    if (img) img->handles = calloc((size_t)n_workers, sizeof(handle_t));
    if (!img || !img->path || !img->handles) {
        cm_image_close(img);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    img->n_workers = n_workers;
    int rc = open_handle(img, &img->handles[0], ctx);
    if (rc == 0) rc = inspect(img, img->handles[0].tif, ctx);
    if (rc < 0) {
        cm_image_close(img);
        return rc;
    }
    *out = img;
    return 0;
}

const cm_image_info_t *cm_image_info(const cm_image_t *img)
{
    return &img->info;
}

const char *cm_image_path(const cm_image_t *img)
{
    return img->path;
}

int cm_image_read_chunk(cm_image_t *img, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, worker < 0 || worker >= img->n_workers, CM_EINTERNAL,
               "worker %d of %d", worker, img->n_workers);
    handle_t *h = &img->handles[worker];
    if (!h->tif) CM_TRY(open_handle(img, h, ctx));
    const cm_image_info_t *in = &img->info;
    int64_t x, y, w, rows;
    cm_grid_rect(&in->grid, idx, &x, &y, &w, &rows);
    h->msg.text[0] = '\0';

    if (in->tiled) {
        size_t tile_bytes = (size_t)in->tile_w * in->tile_h * in->bands;
        bool direct = img->tiles_x == 1 && img->tiles_y == 1;
        if (!direct && !h->tile && !(h->tile = malloc(tile_bytes)))
            return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", img->path);
        for (int64_t ty = y; ty < y + rows; ty += in->tile_h)
            for (int64_t tx = x; tx < x + w; tx += in->tile_w) {
                uint8_t *dst = direct ? buf : h->tile;
                uint32_t tile = TIFFComputeTile(h->tif, (uint32_t)tx, (uint32_t)ty, 0, 0);
                if (TIFFReadEncodedTile(h->tif, tile, dst, (tmsize_t)tile_bytes) !=
                    (tmsize_t)tile_bytes)
                    return cm_fail(ctx, CM_EINPUT,
                                   "%s: tile %u (at %lld,%lld) cannot be decoded: %s", img->path,
                                   tile, (long long)tx, (long long)ty,
                                   h->msg.text[0] ? h->msg.text : "short read");
                /* Copy (or, for a native tile, pack in place) its rows into the chunk. */
                int64_t cw = x + w - tx < in->tile_w ? x + w - tx : in->tile_w;
                int64_t ch = y + rows - ty < in->tile_h ? y + rows - ty : in->tile_h;
                size_t row = (size_t)(cw * in->bands), stride = (size_t)(w * in->bands);
                uint8_t *at = buf + (size_t)(ty - y) * stride + (size_t)(tx - x) * in->bands;
                for (int64_t r = direct ? 1 : 0; r < ch; r++)
                    memmove(at + (size_t)r * stride, dst + (size_t)(r * in->tile_w * in->bands),
                            row);
            }
        return 0;
    }
    int64_t row_bytes = in->width * in->bands;
    for (int64_t r = 0; r < rows; r += in->tile_h) {
        uint32_t strip = (uint32_t)((y + r) / in->tile_h);
        int64_t n = rows - r < in->tile_h ? rows - r : in->tile_h;
        tmsize_t want = (tmsize_t)(n * row_bytes);
        if (TIFFReadEncodedStrip(h->tif, strip, buf + r * row_bytes, want) != want)
            return cm_fail(ctx, CM_EINPUT, "%s: strip %u (rows %lld-%lld) cannot be decoded: %s",
                           img->path, strip, (long long)(y + r), (long long)(y + r + n - 1),
                           h->msg.text[0] ? h->msg.text : "short read");
    }
    return 0;
}

void cm_image_close(cm_image_t *img)
{
    if (!img) return;
    for (int i = 0; img->handles && i < img->n_workers; i++)
        if (img->handles[i].tif) {
            TIFFClose(img->handles[i].tif);
            free(img->handles[i].tile);
        }
    free(img->handles);
    free(img->path);
    free(img);
}
