/* The unit tests' shared fixtures (fixtures.h). */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fixtures.h"
#include "io_internal.h"

char fx_dir[FX_PATH_MAX / 2];

int fx_dir_make(const char *name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fx_dir, sizeof fx_dir, "%s/%s-XXXXXX", base, name);
    if (!mkdtemp(fx_dir)) {
        fprintf(stderr, "cannot create %s: %s\n", fx_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int fx_dir_remove(void)
{
    return nftw(fx_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *fx_path(char *out, const char *name)
{
    snprintf(out, FX_PATH_MAX, "%s/%s", fx_dir, name);
    return out;
}

bool fx_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void *fx_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    void *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

bool fx_same_bytes(const char *a, const char *b)
{
    if (!fx_exists(a) || !fx_exists(b)) return false;
    size_t na, nb;
    void *x = fx_read_file(a, &na), *y = fx_read_file(b, &nb);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

void fx_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* ---- sample types ---------------------------------------------------------------------- */

const char *const fx_stype_names[] = {"uint8", "uint16", "int16", "float32"};
const uint16_t fx_stype_bits[] = {8, 16, 16, 32};
const uint16_t fx_stype_formats[] = {SAMPLEFORMAT_UINT, SAMPLEFORMAT_UINT, SAMPLEFORMAT_INT,
                                     SAMPLEFORMAT_IEEEFP};
const size_t fx_stype_bytes[] = {1, 2, 2, 4};

double fx_typed_value(cm_stype_t t, uint8_t v, int64_t x, int64_t y, int band)
{
    switch (t) {
    case CM_U8: return v;
    case CM_U16: return v * 256 + ((x * 3 + y + band * 17) & 0xff);
    case CM_I16: return (v - 128) * 256 + ((x + y * 3 + band * 5) & 0xff);
    case CM_F32: return (float)((v - 100) / 3.0 + band * 1.5);
    }
    return 0;
}

void fx_sample_store(uint8_t *buf, cm_stype_t t, size_t i, double v)
{
    switch (t) {
    case CM_U8: buf[i] = (uint8_t)v; break;
    case CM_U16: {
        uint16_t s = (uint16_t)v;
        memcpy(buf + 2 * i, &s, 2);
        break;
    }
    case CM_I16: {
        int16_t s = (int16_t)v;
        memcpy(buf + 2 * i, &s, 2);
        break;
    }
    case CM_F32: {
        float s = (float)v;
        memcpy(buf + 4 * i, &s, 4);
        break;
    }
    }
}

double fx_sample_load(const uint8_t *buf, cm_stype_t t, size_t i)
{
    switch (t) {
    case CM_U8: return buf[i];
    case CM_U16: {
        uint16_t s;
        memcpy(&s, buf + 2 * i, 2);
        return s;
    }
    case CM_I16: {
        int16_t s;
        memcpy(&s, buf + 2 * i, 2);
        return s;
    }
    case CM_F32: {
        float s;
        memcpy(&s, buf + 4 * i, 4);
        return s;
    }
    }
    return 0;
}

/* ---- test TIFFs ------------------------------------------------------------------------- */

enum { TAG_GDAL_NODATA = 42113 }; /* as GDAL defines it */

uint16_t fx_tiff_bits(const fx_tiff_t *l)
{
    return l->bits ? l->bits : fx_stype_bits[l->stype];
}

void fx_fill_rect(uint8_t *buf, int64_t stride_px, int64_t x0, int64_t y0, int64_t w, int64_t h,
                  const fx_tiff_t *l, int b0, int nb, fx_value_fn fn)
{
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++)
            for (int b = 0; b < nb; b++) {
                int64_t x = x0 + c < l->width ? x0 + c : l->width - 1;
                int64_t y = y0 + r < l->height ? y0 + r : l->height - 1;
                fx_sample_store(buf, l->stype, (size_t)((r * stride_px + c) * nb + b),
                                fx_typed_value(l->stype, fn(x, y, b0 + b), x, y, b0 + b));
            }
}

/* Sets the fields of image l on the new file t. */
static bool set_fields(TIFF *t, const fx_tiff_t *l)
{
    uint16_t planar = l->planar ? l->planar : PLANARCONFIG_CONTIG;
    bool ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, l->width) &&
              TIFFSetField(t, TIFFTAG_IMAGELENGTH, l->height) &&
              TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, l->spp) &&
              TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, fx_tiff_bits(l)) &&
              TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, fx_stype_formats[l->stype]) &&
              TIFFSetField(t, TIFFTAG_PLANARCONFIG, planar) &&
              TIFFSetField(t, TIFFTAG_PHOTOMETRIC, l->photometric) &&
              TIFFSetField(t, TIFFTAG_COMPRESSION, l->compression);
    if (ok && l->predictor) ok = TIFFSetField(t, TIFFTAG_PREDICTOR, l->predictor);
    if (ok && l->n_extra)
        ok = TIFFSetField(t, TIFFTAG_EXTRASAMPLES, (uint16_t)l->n_extra, l->extra);
    if (ok && l->tile_w)
        ok = TIFFSetField(t, TIFFTAG_TILEWIDTH, l->tile_w) &&
             TIFFSetField(t, TIFFTAG_TILELENGTH, l->tile_h);
    else if (ok)
        ok = TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, l->rows_per_strip);
    if (ok && l->photometric == PHOTOMETRIC_PALETTE)
        ok = l->colormap &&
             TIFFSetField(t, TIFFTAG_COLORMAP, l->colormap, l->colormap + 256, l->colormap + 512);
    if (ok && l->compression == COMPRESSION_JPEG) {
        ok = TIFFSetField(t, TIFFTAG_JPEGQUALITY, 95);
        if (ok && l->photometric == PHOTOMETRIC_YCBCR)
            ok = TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    }
    if (ok && l->photometric == PHOTOMETRIC_YCBCR && l->compression != COMPRESSION_JPEG)
        ok = TIFFSetField(t, TIFFTAG_YCBCRSUBSAMPLING, 1, 1);
    if (ok && l->nodata) ok = TIFFSetField(t, TAG_GDAL_NODATA, l->nodata);
    if (ok && l->set_tags) ok = l->set_tags(t);
    return ok;
}

/* Writes zeros, strile by strile, each of its full size. */
static bool write_zeros(TIFF *t)
{
    bool tiled = TIFFIsTiled(t);
    tmsize_t size = tiled ? TIFFTileSize(t) : TIFFStripSize(t);
    uint8_t *zeros = calloc(1, (size_t)size);
    bool ok = zeros != NULL;
    for (uint32_t k = 0; ok && k < TIFFNumberOfStrips(t); k++)
        ok = (tiled ? TIFFWriteEncodedTile(t, k, zeros, size)
                    : TIFFWriteEncodedStrip(t, k, zeros, size)) == size;
    free(zeros);
    return ok;
}

/* Writes fn's values, tile by tile or strip by strip (clipped at the image's bottom), plane by
 * plane when planar-separate. */
static bool write_values(TIFF *t, const fx_tiff_t *l, fx_value_fn fn)
{
    int planes = l->planar == PLANARCONFIG_SEPARATE ? l->spp : 1;
    int nb = planes > 1 ? 1 : l->spp;
    size_t px = (size_t)nb * fx_stype_bytes[l->stype];
    uint32_t rps = l->rows_per_strip < l->height ? l->rows_per_strip : l->height;
    uint32_t unit_w = l->tile_w ? l->tile_w : l->width, unit_h = l->tile_w ? l->tile_h : rps;
    uint8_t *buf = malloc((size_t)unit_w * unit_h * px);
    bool ok = buf != NULL;
    for (int p = 0; p < planes; p++)
        for (uint32_t y = 0; ok && y < l->height; y += unit_h)
            for (uint32_t x = 0; ok && x < l->width; x += unit_w) {
                int b0 = planes > 1 ? p : 0;
                if (l->tile_w) {
                    tmsize_t size = (tmsize_t)((size_t)unit_w * unit_h * px);
                    fx_fill_rect(buf, unit_w, x, y, unit_w, unit_h, l, b0, nb, fn);
                    uint32_t tile = TIFFComputeTile(t, x, y, 0, (uint16_t)p);
                    ok = TIFFWriteEncodedTile(t, tile, buf, size) == size;
                } else {
                    uint32_t rows = l->height - y < rps ? l->height - y : rps;
                    tmsize_t size = (tmsize_t)((size_t)unit_w * rows * px);
                    fx_fill_rect(buf, unit_w, 0, y, unit_w, rows, l, b0, nb, fn);
                    uint32_t strip = TIFFComputeStrip(t, y, (uint16_t)p);
                    ok = TIFFWriteEncodedStrip(t, strip, buf, size) == size;
                }
            }
    free(buf);
    return ok;
}

bool fx_tiff_write(const char *path, const fx_tiff_t *l, fx_value_fn fn)
{
    if (l->nodata) cm__tags_register(); /* libtiff knows GDAL_NODATA only from then on */
    TIFF *t = TIFFOpen(path, l->bigtiff ? "w8" : "w");
    if (!t) return false;
    bool ok = set_fields(t, l);
    if (ok) ok = fx_tiff_bits(l) < 8 || !fn ? write_zeros(t) : write_values(t, l, fn);
    TIFFClose(t);
    return ok;
}

void fx_tiff_make(const char *path, const fx_tiff_t *l, fx_value_fn fn)
{
    if (!fx_tiff_write(path, l, fn)) fail_msg("cannot generate %s", path);
}
