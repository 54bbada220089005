/* Unit tests of io: reading generated TIFFs of every supported layout, sample type and codec
 * (planes, extra samples, palettes), errors that name the file, the atomic tiled writer with
 * its sample types, predictors, tags and palettes, its specs, atomic files and compression
 * names. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <tiffio.h>

#include "cm_io.h"
#include "fixtures.h"
#include "io_internal.h"

/* ---- scratch directory (fixtures.h) ----------------------------------------------------- */

static int make_dir(void **state)
{
    (void)state;
    return fx_dir_make("test_io");
}

static int remove_dir(void **state)
{
    (void)state;
    return fx_dir_remove();
}

/* Entries of dir named "<base>.part-XXXXXX". */
static int count_part_files(const char *dir, const char *base)
{
    char prefix[NAME_MAX + 1];
    snprintf(prefix, sizeof prefix, "%s.part-", base);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (!strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) == strlen(prefix) + 6)
            n++;
    closedir(d);
    return n;
}

/* ---- test images: fx_tiff_t, written by fx_tiff_make, and what io reads from them ------- */

/* Exact pixels: every sample differs from its neighbours in x, y and band. */
static uint8_t pattern(int64_t x, int64_t y, int band)
{
    return (uint8_t)(x * 7 + y * 13 + band * 61 + ((x * y) >> 3));
}

/* Smooth pixels, for JPEG. */
static uint8_t smooth(int64_t x, int64_t y, int band)
{
    switch (band) {
    case 0: return (uint8_t)(40 + x + y);
    case 1: return (uint8_t)(200 - x);
    default: return (uint8_t)(60 + 2 * y);
    }
}

/* The band of the first alpha among the extra samples, or -1. */
static int layout_alpha(const fx_tiff_t *l)
{
    for (int i = 0; i < l->n_extra; i++)
        if (l->extra[i] == EXTRASAMPLE_ASSOCALPHA || l->extra[i] == EXTRASAMPLE_UNASSALPHA)
            return l->spp - l->n_extra + i;
    return -1;
}

static bool layout_palette(const fx_tiff_t *l)
{
    return l->photometric == PHOTOMETRIC_PALETTE;
}

/* Sample type as read: a palette image's colours are 8-bit when every entry of its map is a
 * multiple of 257, else 16-bit. */
static cm_stype_t layout_read_stype(const fx_tiff_t *l)
{
    if (!layout_palette(l)) return l->stype;
    for (int i = 0; i < 3 * 256; i++)
        if (l->colormap[i] % 257) return CM_U16;
    return CM_U8;
}

static uint16_t photometric_for(int spp)
{
    return spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
}

/* The georeferencing of geo_layout (a UTM zone 11N image with 30 m pixels). */
static const double geo_pixel_scale[] = {30.0, 30.0, 0.0};
static const double geo_tiepoint[] = {0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0};
static const uint16_t geo_keys[] = {1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 26711};
enum { N_PIXEL_SCALE = 3, N_TIEPOINT = 6, N_GEO_KEYS = 16 };
enum {
    TAG_PIXEL_SCALE = 33550,
    TAG_TIEPOINT = 33922,
    TAG_GEO_KEYS = 34735,
    TAG_GDAL_NODATA = 42113
};

/* The georeferencing and resolution of geo_layout: its fx_tiff_t set_tags (the tags are known
 * to libtiff once cm__tags_register has run, in main). */
static bool set_geotags(TIFF *t)
{
    return TIFFSetField(t, TAG_PIXEL_SCALE, (uint32_t)N_PIXEL_SCALE, geo_pixel_scale) &&
           TIFFSetField(t, TAG_TIEPOINT, (uint32_t)N_TIEPOINT, geo_tiepoint) &&
           TIFFSetField(t, TAG_GEO_KEYS, (uint32_t)N_GEO_KEYS, geo_keys) &&
           TIFFSetField(t, TIFFTAG_XRESOLUTION, 300.0) &&
           TIFFSetField(t, TIFFTAG_YRESOLUTION, 150.0) &&
           TIFFSetField(t, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH);
}

/* ---- checking pixels -------------------------------------------------------------------- */

/* What an image should hold: fn's values in the sample type read, or for a palette image the
 * colours of fn's band 0 in colormap (divided by 257 when read as 8-bit). */
typedef struct truth {
    fx_value_fn fn;
    const uint16_t *colormap;
    int tol;
} truth_t;

static double want_sample(const truth_t *tr, cm_stype_t t, int64_t x, int64_t y, int band)
{
    if (tr->colormap) {
        uint16_t c = tr->colormap[256 * band + tr->fn(x, y, 0)];
        return t == CM_U8 ? c / 257 : c;
    }
    return fx_typed_value(t, tr->fn(x, y, band), x, y, band);
}

/* Number of samples of chunk idx (packed at w * bands, of the grid's type) further than the
 * tolerance from the truth; the first one is described in where. Thread-safe. */
static int64_t chunk_mismatches(const cm_grid_t *g, int64_t idx, const uint8_t *buf,
                                const truth_t *tr, char *where, size_t where_size)
{
    int64_t x0, y0, w, h, bad = 0;
    cm_grid_rect(g, idx, &x0, &y0, &w, &h);
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++)
            for (int b = 0; b < g->bands; b++) {
                double got = fx_sample_load(buf, g->stype, (size_t)((r * w + c) * g->bands + b));
                double want = want_sample(tr, g->stype, x0 + c, y0 + r, b);
                if (fabs(got - want) <= tr->tol) continue;
                if (!bad++)
                    snprintf(where, where_size,
                             "chunk %lld: pixel (%lld,%lld) band %d is %.9g, expected %.9g",
                             (long long)idx, (long long)(x0 + c), (long long)(y0 + r), b, got,
                             want);
            }
    return bad;
}

/* Reads every chunk of an open image on one worker and checks it against the truth. */
static void check_chunks(cm_image_t *img, int worker, const truth_t *tr)
{
    const cm_image_info_t *in = cm_image_info(img);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&in->grid));
    assert_non_null(buf);
    int64_t n = cm_grid_count(&in->grid), covered = 0;
    for (int64_t idx = 0; idx < n; idx++) {
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        memset(buf, 0xee, cm_grid_chunk_bytes(&in->grid));
        int rc = cm_image_read_chunk(img, worker, idx, buf, &ctx);
        if (rc) fail_msg("%s: chunk %lld: %d %s", cm_image_path(img), (long long)idx, rc, ctx.msg);
        char where[200];
        if (chunk_mismatches(&in->grid, idx, buf, tr, where, sizeof where))
            fail_msg("%s: %s", cm_image_path(img), where);
        int64_t x, y, w, h;
        cm_grid_rect(&in->grid, idx, &x, &y, &w, &h);
        covered += w * h;
    }
    assert_int_equal(covered, in->width * in->height);
    free(buf);
}

static void check_all_chunks(cm_image_t *img, int worker, fx_value_fn fn, int tol)
{
    check_chunks(img, worker, &(truth_t){.fn = fn, .tol = tol});
}

/* Opens path, checks its info against the layout it was written with, reads every chunk. */
static void check_image(const char *path, const fx_tiff_t *l, fx_value_fn fn)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm_image_open(path, 1, &img, &ctx);
    if (rc) fail_msg("%s: open: %d %s", path, rc, ctx.msg);
    const cm_image_info_t *in = cm_image_info(img);
    bool palette = layout_palette(l);
    int bands = palette ? 3 : l->spp;
    cm_stype_t stype = layout_read_stype(l);
    assert_string_equal(cm_image_path(img), path);
    assert_int_equal(in->width, l->width);
    assert_int_equal(in->height, l->height);
    assert_int_equal(in->bands, bands);
    assert_int_equal(in->alpha_band, layout_alpha(l));
    assert_int_equal(in->bits, fx_tiff_bits(l));
    assert_int_equal(in->stype, stype);
    assert_string_equal(in->sample_type, fx_stype_names[stype]);
    assert_int_equal(in->photometric, l->photometric);
    assert_int_equal(in->compression, l->compression);
    assert_int_equal(in->tiled, l->tile_w != 0);
    assert_int_equal(in->bigtiff, l->bigtiff);
    assert_int_equal(in->planar_separate, l->planar == PLANARCONFIG_SEPARATE && l->spp > 1);
    assert_int_equal(in->palette, palette);
    assert_int_equal(in->n_extra, l->n_extra);
    for (int i = 0; i < l->n_extra; i++) assert_int_equal(in->extra[i], l->extra[i]);
    assert_int_equal(in->georeferenced, l->set_tags == set_geotags);
    assert_int_equal(in->has_nodata, l->nodata != NULL);
    if (l->nodata) assert_true(in->nodata == strtod(l->nodata, NULL));
    assert_int_equal(in->grid.width, l->width);
    assert_int_equal(in->grid.height, l->height);
    assert_int_equal(in->grid.bands, bands);
    assert_int_equal(in->grid.alpha_band, layout_alpha(l));
    assert_int_equal(in->grid.stype, stype);
    if (l->tile_w) {
        assert_int_equal(in->tile_w, l->tile_w);
        assert_int_equal(in->tile_h, l->tile_h);
        assert_int_equal(in->grid.chunk_w, l->tile_w);
        assert_int_equal(in->grid.chunk_h, l->tile_h);
    } else {
        int64_t rps = l->rows_per_strip < l->height ? l->rows_per_strip : l->height;
        assert_int_equal(in->tile_w, l->width);
        /* libtiff reads a single uncompressed strip as several smaller ones */
        if (rps < l->height || l->compression != COMPRESSION_NONE)
            assert_int_equal(in->tile_h, rps);
        else
            assert_in_range(in->tile_h, 1, rps);
        rps = in->tile_h;
        assert_int_equal(in->grid.chunk_w, l->width);
        assert_int_equal(in->grid.chunk_h % 16, 0);      /* a row of output tiles */
        if (in->grid.chunk_h < l->height)                /* else one chunk holds every strip */
            assert_int_equal(in->grid.chunk_h % rps, 0); /* whole strips */
        assert_true(in->grid.chunk_h < l->height + 16);  /* never far taller than the image */
    }
    check_chunks(img, 0, &(truth_t){.fn = fn, .colormap = palette ? l->colormap : NULL});
    cm_image_close(img);
}

static const uint16_t lossless[] = {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE,
                                    COMPRESSION_ZSTD, COMPRESSION_PACKBITS};
enum { N_LOSSLESS = sizeof lossless / sizeof lossless[0] };

static bool predictable(uint16_t compression)
{
    return compression == COMPRESSION_LZW || compression == COMPRESSION_ADOBE_DEFLATE ||
           compression == COMPRESSION_ZSTD;
}

/* The predictor TIFF wants for a sample type. */
static uint16_t predictor_for(cm_stype_t t)
{
    return t == CM_F32 ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL;
}

static fx_tiff_t layout_for(int spp, uint16_t compression, bool bigtiff)
{
    bool alpha = spp == 2 || spp == 4;
    return (fx_tiff_t){.width = 100,
                       .height = 70,
                       .spp = (uint16_t)spp,
                       .photometric = photometric_for(spp),
                       .compression = compression,
                       .n_extra = alpha ? 1 : 0,
                       .extra = {alpha ? EXTRASAMPLE_UNASSALPHA : 0},
                       .bigtiff = bigtiff};
}

static void skip_unless_codec(uint16_t compression)
{
    if (!TIFFIsCODECConfigured(compression)) {
        print_message("libtiff lacks compression %u: skipped\n", compression);
        skip();
    }
}

/* ---- reading ---------------------------------------------------------------------------- */

static void tiled_reads_are_exact(uint32_t tile, bool bigtiff)
{
    for (int spp = 1; spp <= 4; spp++)
        for (int c = 0; c < N_LOSSLESS; c++) {
            skip_unless_codec(lossless[c]);
            fx_tiff_t l = layout_for(spp, lossless[c], bigtiff);
            l.tile_w = l.tile_h = tile;
            char path[FX_PATH_MAX], name[64];
            snprintf(name, sizeof name, "tiled-%u-%d-%u-%d.tif", tile, spp, lossless[c], bigtiff);
            fx_path(path, name);
            fx_tiff_make(path, &l, pattern);
            check_image(path, &l, pattern);
        }
}

static void test_tiled_classic_32px_tiles_read_exactly_with_clipped_edges(void **state)
{
    (void)state;
    tiled_reads_are_exact(32, false);
}

static void test_tiled_bigtiff_16px_tiles_read_exactly_with_clipped_edges(void **state)
{
    (void)state;
    tiled_reads_are_exact(16, true);
}

static void test_tile_larger_than_the_image_reads_exactly(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 128;
    char path[FX_PATH_MAX];
    fx_path(path, "big-tile.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);
}

static void test_associated_alpha_is_reported_as_the_alpha_band(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(2, COMPRESSION_LZW, false);
    l.extra[0] = EXTRASAMPLE_ASSOCALPHA;
    l.tile_w = l.tile_h = 32;
    char path[FX_PATH_MAX];
    fx_path(path, "assoc-alpha.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern); /* alpha_band 1 */
}

static void test_striped_reads_are_exact_in_bands_of_whole_strips(void **state)
{
    (void)state;
    /* 600 rows: several bands of strips for the short strips, one strip for the last. */
    static const uint32_t rps_list[] = {1, 3, 7, 600};
    int n = 0;
    for (int spp = 1; spp <= 4; spp++)
        for (int c = 0; c < N_LOSSLESS; c++)
            for (size_t r = 0; r < sizeof rps_list / sizeof rps_list[0]; r++, n++) {
                skip_unless_codec(lossless[c]);
                fx_tiff_t l = layout_for(spp, lossless[c], n % 2 == 1);
                l.width = 37;
                l.height = 600;
                l.rows_per_strip = rps_list[r];
                char path[FX_PATH_MAX], name[64];
                snprintf(name, sizeof name, "strips-%d-%u-%u.tif", spp, lossless[c], rps_list[r]);
                fx_path(path, name);
                fx_tiff_make(path, &l, pattern);
                check_image(path, &l, pattern);
            }
}

static void test_striped_image_of_several_bands_has_several_chunks(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = 37;
    l.height = 600;
    l.rows_per_strip = 3;
    char path[FX_PATH_MAX];
    fx_path(path, "strips-bands.tif");
    fx_tiff_make(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_true(cm_grid_count(&in->grid) >= 2);
    assert_true(in->grid.chunk_h < 600);
    check_all_chunks(img, 0, pattern, 0);
    cm_image_close(img);
}

static void test_single_strip_image_reads_exactly(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(4, COMPRESSION_ADOBE_DEFLATE, false);
    l.rows_per_strip = 70;
    char path[FX_PATH_MAX];
    fx_path(path, "single-strip.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);

    /* RowsPerStrip larger than the image, as many writers leave it, is one strip too. */
    l.rows_per_strip = UINT32_MAX;
    fx_path(path, "single-strip-max.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);
}

/* Rows of the chunks of a striped image of the given size. */
static int64_t strip_chunk_rows(const char *name, uint32_t width, uint32_t height, uint32_t rps)
{
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.width = width;
    l.height = height;
    l.rows_per_strip = rps;
    char path[FX_PATH_MAX];
    fx_path(path, name);
    fx_tiff_make(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(cm_grid_count(&in->grid), 1);
    int64_t rows = in->grid.chunk_h;
    cm_image_close(img);
    return rows;
}

static void
test_short_striped_image_is_read_in_a_chunk_no_taller_than_it_rounded_to_16(void **state)
{
    (void)state;
    /* A striped image shorter than a band is one chunk; its height rounded up to 16 is the
     * tallest buffer it needs and the tallest output tile that goes with it. */
    int64_t single = strip_chunk_rows("short-single-strip.tif", 100, 70, 70);
    int64_t many = strip_chunk_rows("short-strips.tif", 1100, 40, 8);
    if (single > 80 || many > 48)
        fail_msg("chunks of %lld rows for one strip of 70 rows (at most 80 expected), of %lld "
                 "rows for 40 rows in strips of 8 (at most 48 expected)",
                 (long long)single, (long long)many);
}

/* ---- several workers -------------------------------------------------------------------- */

enum { N_THREADS = 4 };

typedef struct reader {
    cm_image_t *img;
    int worker;
    pthread_barrier_t *barrier;
    int64_t errors, mismatches, chunks;
    char where[CM_MSG_MAX];
} reader_t;

static void *reader_main(void *p)
{
    reader_t *r = p;
    const cm_grid_t *g = &cm_image_info(r->img)->grid;
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    pthread_barrier_wait(r->barrier);
    if (!buf) {
        r->errors++;
        return NULL;
    }
    int64_t n = cm_grid_count(g);
    for (int64_t k = 0; k < n; k++) { /* every chunk, each thread from its own starting point */
        int64_t idx = (k + r->worker * n / N_THREADS) % n;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        if (cm_image_read_chunk(r->img, r->worker, idx, buf, &ctx) < 0) {
            if (!r->errors++) snprintf(r->where, sizeof r->where, "%s", ctx.msg);
            continue;
        }
        char where[200];
        int64_t bad = chunk_mismatches(g, idx, buf, &(truth_t){.fn = pattern}, where, sizeof where);
        if (bad && !r->mismatches) snprintf(r->where, sizeof r->where, "%s", where);
        r->mismatches += bad;
        r->chunks++;
    }
    free(buf);
    return NULL;
}

static void read_on_four_threads(const char *path)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, N_THREADS, &img, &ctx), 0);
    int64_t n = cm_grid_count(&cm_image_info(img)->grid);
    assert_true(n > N_THREADS);
    pthread_barrier_t barrier;
    pthread_barrier_init(&barrier, NULL, N_THREADS);
    pthread_t th[N_THREADS];
    reader_t rs[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        rs[i] = (reader_t){.img = img, .worker = i, .barrier = &barrier};
        assert_int_equal(pthread_create(&th[i], NULL, reader_main, &rs[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < N_THREADS; i++) {
        if (rs[i].errors || rs[i].mismatches)
            fail_msg("worker %d: %lld errors, %lld wrong samples: %s", i, (long long)rs[i].errors,
                     (long long)rs[i].mismatches, rs[i].where);
        assert_int_equal(rs[i].chunks, n);
    }
    cm_image_close(img);
}

static void test_four_workers_read_every_tile_concurrently_and_exactly(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(4, COMPRESSION_ADOBE_DEFLATE, false);
    l.width = 200;
    l.height = 150;
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "threads-tiled.tif");
    fx_tiff_make(path, &l, pattern);
    read_on_four_threads(path);
}

static void test_four_workers_read_every_band_of_strips_concurrently_and_exactly(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_LZW, true);
    l.width = 64;
    l.height = 2000;
    l.rows_per_strip = 5;
    char path[FX_PATH_MAX];
    fx_path(path, "threads-strips.tif");
    fx_tiff_make(path, &l, pattern);
    read_on_four_threads(path);
}

static void test_read_chunk_rejects_a_worker_index_out_of_range(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(1, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 32;
    char path[FX_PATH_MAX];
    fx_path(path, "worker-range.tif");
    fx_tiff_make(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 2, &img, &ctx), 0);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&cm_image_info(img)->grid));
    assert_non_null(buf);
    assert_int_equal(cm_image_read_chunk(img, 2, 0, buf, &ctx), CM_EINTERNAL);
    assert_int_equal(ctx.code, CM_EINTERNAL);
    cm_ctx_init(&ctx);
    assert_int_equal(cm_image_read_chunk(img, -1, 0, buf, &ctx), CM_EINTERNAL);
    free(buf);
    cm_image_close(img);
}

static void test_open_rejects_zero_workers(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(1, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 32;
    char path[FX_PATH_MAX];
    fx_path(path, "zero-workers.tif");
    fx_tiff_make(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 0, &img, &ctx), CM_EUSAGE);
    assert_null(img);
}

/* ---- JPEG ------------------------------------------------------------------------------- */

/* A JPEG-compressed YCbCr image, as cameras and GDAL write them. */
static const fx_tiff_t ycbcr_jpeg = {.width = 100,
                                     .height = 70,
                                     .spp = 3,
                                     .photometric = PHOTOMETRIC_YCBCR,
                                     .compression = COMPRESSION_JPEG,
                                     .tile_w = 32,
                                     .tile_h = 32};

static void test_jpeg_ycbcr_opens_as_three_bands_and_decodes_close_to_the_original(void **state)
{
    (void)state;
    skip_unless_codec(COMPRESSION_JPEG);
    fx_tiff_t l = ycbcr_jpeg;
    char path[FX_PATH_MAX];
    fx_path(path, "ycbcr.tif");
    fx_tiff_make(path, &l, smooth);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm_image_open(path, 2, &img, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->bands, 3);
    assert_int_equal(in->alpha_band, -1);
    assert_int_equal(in->photometric, PHOTOMETRIC_YCBCR);
    assert_string_equal(in->photometric_name, "YCbCr");
    assert_int_equal(in->compression, COMPRESSION_JPEG);
    assert_true(in->tiled);
    assert_int_equal(in->grid.chunk_w, 32);
    /* Worker 0 uses the handle opened by cm_image_open, worker 1 one opened on demand: both
     * must convert YCbCr to RGB. */
    check_all_chunks(img, 0, smooth, 6);
    check_all_chunks(img, 1, smooth, 6);
    cm_image_close(img);
}

/* ---- errors ----------------------------------------------------------------------------- */

/* Opens path and reads every chunk until something fails; returns the first failure. */
static int open_and_read_all(const char *path, cm_ctx_t *ctx)
{
    cm_image_t *img = NULL;
    int rc = cm_image_open(path, 1, &img, ctx);
    if (rc) {
        assert_null(img);
        return rc;
    }
    const cm_grid_t *g = &cm_image_info(img)->grid;
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    assert_non_null(buf);
    for (int64_t idx = 0; rc == 0 && idx < cm_grid_count(g); idx++)
        rc = cm_image_read_chunk(img, 0, idx, buf, ctx);
    free(buf);
    cm_image_close(img);
    return rc;
}

static void expect_failure(const char *path, int code, const char *reason)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    int rc = open_and_read_all(path, &ctx);
    if (rc != code) fail_msg("%s: expected %d, got %d (%s)", path, code, rc, ctx.msg);
    assert_int_equal(ctx.code, code);
    if (!strstr(ctx.msg, path)) fail_msg("message does not name %s: %s", path, ctx.msg);
    if (reason && !strstr(ctx.msg, reason))
        fail_msg("message does not say \"%s\": %s", reason, ctx.msg);
}

static void test_text_file_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[FX_PATH_MAX];
    fx_path(path, "notes.txt");
    fx_write_text(path, "These are not the pixels you are looking for.\n");
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_empty_file_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[FX_PATH_MAX];
    fx_path(path, "empty.tif");
    fx_write_text(path, "");
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_missing_file_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[FX_PATH_MAX];
    fx_path(path, "no-such-file.tif");
    expect_failure(path, CM_EINPUT, "No such file");
}

static void test_truncated_tiff_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "truncated.tif");
    fx_tiff_make(path, &l, pattern);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_corrupt_tile_is_bad_input_naming_the_file_and_the_tile(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "corrupt-tile.tif");
    fx_tiff_make(path, &l, pattern);
    /* Overwrite tile 9's deflate stream with garbage. */
    TIFF *t = TIFFOpen(path, "r");
    assert_non_null(t);
    uint64_t *offsets = NULL, *counts = NULL;
    assert_true(TIFFGetField(t, TIFFTAG_TILEOFFSETS, &offsets));
    assert_true(TIFFGetField(t, TIFFTAG_TILEBYTECOUNTS, &counts));
    off_t at = (off_t)offsets[9];
    size_t len = (size_t)counts[9];
    TIFFClose(t);
    uint8_t *junk = malloc(len);
    assert_non_null(junk);
    memset(junk, 0xff, len);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, len, at), (ssize_t)len);
    close(fd);
    free(junk);

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_grid_t *g = &cm_image_info(img)->grid;
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    assert_non_null(buf);
    assert_int_equal(cm_image_read_chunk(img, 0, 8, buf, &ctx), 0);
    assert_int_equal(cm_image_read_chunk(img, 0, 9, buf, &ctx), CM_EINPUT);
    assert_int_equal(ctx.code, CM_EINPUT);
    if (!strstr(ctx.msg, path) || !strstr(ctx.msg, "tile 9"))
        fail_msg("message does not name the file and tile 9: %s", ctx.msg);
    free(buf);
    cm_image_close(img);
}

/* ---- sample types, planes, extra samples and palettes ------------------------------------- */

/* Images of type t, 1 to 4 samples, in every lossless compression (the predictor of the type
 * on odd sample counts), tiled (32x32 tiles, clipped at 100x70) and striped (7-row strips of
 * 37x600), checked chunk by chunk. */
static void typed_reads_are_exact(cm_stype_t t)
{
    for (int spp = 1; spp <= 4; spp++)
        for (int c = 0; c < N_LOSSLESS; c++)
            for (int tiled = 0; tiled <= 1; tiled++) {
                skip_unless_codec(lossless[c]);
                fx_tiff_t l = layout_for(spp, lossless[c], spp == 2);
                l.stype = t;
                if (predictable(lossless[c]) && spp % 2) l.predictor = predictor_for(t);
                if (tiled) {
                    l.tile_w = l.tile_h = 32;
                } else {
                    l.width = 37;
                    l.height = 600;
                    l.rows_per_strip = 7;
                }
                char path[FX_PATH_MAX], name[64];
                snprintf(name, sizeof name, "%s-%d-%u-%d.tif", fx_stype_names[t], spp, lossless[c],
                         tiled);
                fx_path(path, name);
                fx_tiff_make(path, &l, pattern);
                check_image(path, &l, pattern);
            }
}

static void test_sixteen_bit_unsigned_samples_read_exactly(void **state)
{
    (void)state;
    typed_reads_are_exact(CM_U16);
}

static void test_sixteen_bit_signed_samples_read_exactly_negatives_included(void **state)
{
    (void)state;
    typed_reads_are_exact(CM_I16);
}

static void test_float32_samples_read_exactly(void **state)
{
    (void)state;
    typed_reads_are_exact(CM_F32);
}

/* RGB and n_extra extra samples of the given kinds. */
static fx_tiff_t rgb_with_extras(cm_stype_t t, int n_extra, const uint16_t *kinds,
                                 uint16_t compression)
{
    fx_tiff_t l = layout_for(3, compression, false);
    l.stype = t;
    l.spp = (uint16_t)(3 + n_extra);
    l.n_extra = n_extra;
    for (int i = 0; i < n_extra; i++) l.extra[i] = kinds[i];
    return l;
}

static const uint16_t alpha_last[] = {EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_UNASSALPHA};
static const uint16_t five_unspecified[] = {EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_UNSPECIFIED,
                                            EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_UNSPECIFIED,
                                            EXTRASAMPLE_UNSPECIFIED};

static void test_planar_separate_images_read_interleaved_exactly(void **state)
{
    (void)state;
    /* 3 bands; 5 with an alpha among two extra samples; 8 with five unspecified extra ones;
     * every sample type; 32x16 tiles clipped at 100x70, or 6-row strips (the last one 4). */
    static const struct {
        int n_extra;
        const uint16_t *kinds;
    } shapes[] = {{0, NULL}, {2, alpha_last}, {5, five_unspecified}};
    int k = 0;
    for (int t = CM_U8; t <= CM_F32; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            for (int tiled = 0; tiled <= 1; tiled++, k++) {
                uint16_t compression = lossless[k % N_LOSSLESS];
                skip_unless_codec(compression);
                fx_tiff_t l =
                    rgb_with_extras((cm_stype_t)t, shapes[s].n_extra, shapes[s].kinds, compression);
                l.planar = PLANARCONFIG_SEPARATE;
                if (predictable(compression)) l.predictor = predictor_for((cm_stype_t)t);
                if (tiled) {
                    l.tile_w = 32;
                    l.tile_h = 16;
                } else {
                    l.rows_per_strip = 6;
                }
                char path[FX_PATH_MAX], name[64];
                snprintf(name, sizeof name, "planar-%s-%d-%d.tif", fx_stype_names[t], l.spp, tiled);
                fx_path(path, name);
                fx_tiff_make(path, &l, pattern);
                check_image(path, &l, pattern); /* alpha_band 4 for the five bands */
            }
}

static void test_planar_separate_tiles_grouped_into_chunks_read_exactly(void **state)
{
    (void)state;
    /* 16x16 tiles of each plane gathered into 64x64 chunks, on two workers. */
    fx_tiff_t l = rgb_with_extras(CM_U16, 2, alpha_last, COMPRESSION_ADOBE_DEFLATE);
    l.planar = PLANARCONFIG_SEPARATE;
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "planar-grouped.tif");
    fx_tiff_make(path, &l, pattern);
    cm_image_t *img = NULL;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_image_open(path, 2, &img, &ctx), 0);
    assert_int_equal(cm_image_set_chunk_side(img, 64, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->grid.chunk_w, 64);
    assert_int_equal(in->grid.chunk_h, 64);
    assert_int_equal(in->grid.bands, 5);
    assert_int_equal(in->grid.alpha_band, 4);
    check_all_chunks(img, 0, pattern, 0);
    check_all_chunks(img, 1, pattern, 0);
    cm_image_close(img);

    /* 3-row strips in bands of 48 rows (16 strips) for a side of 32... */
    l.tile_w = l.tile_h = 0;
    l.rows_per_strip = 3;
    fx_path(path, "planar-strip-bands.tif");
    fx_tiff_make(path, &l, pattern);
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    assert_int_equal(cm_image_set_chunk_side(img, 32, &ctx), 0);
    in = cm_image_info(img);
    assert_int_equal(in->grid.chunk_h, 48);
    assert_int_equal(in->out_tile_w, 32);
    check_all_chunks(img, 0, pattern, 0);
    cm_image_close(img);

    /* ...and a tile larger than the image. */
    l.tile_w = l.tile_h = 128;
    fx_path(path, "planar-big-tile.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);
}

static void test_typed_tiles_grouped_into_chunks_read_exactly(void **state)
{
    (void)state;
    for (int t = CM_U16; t <= CM_F32; t++) {
        fx_tiff_t l = layout_for(4, COMPRESSION_ZSTD, false);
        skip_unless_codec(COMPRESSION_ZSTD);
        l.stype = (cm_stype_t)t;
        l.tile_w = l.tile_h = 16;
        char path[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "grouped-%s.tif", fx_stype_names[t]);
        fx_path(path, name);
        fx_tiff_make(path, &l, pattern);
        cm_image_t *img = NULL;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
        assert_int_equal(cm_image_set_chunk_side(img, 64, &ctx), 0);
        assert_int_equal(cm_image_info(img)->grid.chunk_w, 64);
        assert_int_equal(cm_image_info(img)->grid.stype, t);
        check_all_chunks(img, 0, pattern, 0);
        cm_image_close(img);
    }
}

static void test_four_workers_read_planar_separate_tiles_and_strips_concurrently(void **state)
{
    (void)state;
    fx_tiff_t l = rgb_with_extras(CM_I16, 2, alpha_last, COMPRESSION_ADOBE_DEFLATE);
    l.planar = PLANARCONFIG_SEPARATE;
    l.width = 200;
    l.height = 150;
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "threads-planar-tiled.tif");
    fx_tiff_make(path, &l, pattern);
    read_on_four_threads(path);

    l = rgb_with_extras(CM_F32, 5, five_unspecified, COMPRESSION_LZW);
    l.planar = PLANARCONFIG_SEPARATE;
    l.width = 64;
    l.height = 2000;
    l.rows_per_strip = 7;
    fx_path(path, "threads-planar-strips.tif");
    fx_tiff_make(path, &l, pattern);
    read_on_four_threads(path);
}

static void test_extra_samples_are_listed_and_the_first_alpha_among_them_found(void **state)
{
    (void)state;
    static const uint16_t middle[] = {EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_ASSOCALPHA,
                                      EXTRASAMPLE_UNSPECIFIED};
    fx_tiff_t l = rgb_with_extras(CM_I16, 3, middle, COMPRESSION_LZW);
    l.tile_w = l.tile_h = 32;
    char path[FX_PATH_MAX];
    fx_path(path, "extras-middle.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern); /* alpha_band 4, n_extra 3, the kinds in order */

    /* Grey plus unspecified samples: no alpha. */
    fx_tiff_t grey = layout_for(1, COMPRESSION_NONE, false);
    grey.spp = 4;
    grey.n_extra = 3;
    memcpy(grey.extra, five_unspecified, 3 * sizeof(uint16_t));
    grey.tile_w = grey.tile_h = 16;
    fx_path(path, "extras-grey.tif");
    fx_tiff_make(path, &grey, pattern);
    check_image(path, &grey, pattern);
}

/* Grey plus spp - 1 unspecified extra samples, 40x30 in 16x16 tiles. */
static fx_tiff_t many_samples(int spp)
{
    fx_tiff_t l = layout_for(1, COMPRESSION_ADOBE_DEFLATE, false);
    l.width = 40;
    l.height = 30;
    l.tile_w = l.tile_h = 16;
    l.spp = (uint16_t)spp;
    l.n_extra = spp - 1;
    for (int i = 0; i < l.n_extra; i++) l.extra[i] = EXTRASAMPLE_UNSPECIFIED;
    return l;
}

static void test_sixty_four_samples_read_exactly_interleaved_or_in_planes(void **state)
{
    (void)state;
    fx_tiff_t l = many_samples(CM_BANDS_MAX);
    assert_int_equal(l.spp, 64);
    char path[FX_PATH_MAX];
    fx_path(path, "samples-64.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);

    l.stype = CM_F32;
    l.planar = PLANARCONFIG_SEPARATE;
    l.tile_w = l.tile_h = 0;
    l.rows_per_strip = 7;
    fx_path(path, "samples-64-planes.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);
}

static void test_sixty_five_samples_are_unsupported_input(void **state)
{
    (void)state;
    fx_tiff_t l = many_samples(65);
    char path[FX_PATH_MAX];
    fx_path(path, "samples-65.tif");
    if (!fx_tiff_write(path, &l, pattern)) {
        print_message("libtiff does not write 65 samples per pixel: skipped\n");
        skip();
    }
    expect_failure(path, CM_EINPUT, "65 samples");
}

/* Colour maps: eight_bit has every entry a multiple of 257 (as 8-bit maps are stored);
 * almost_eight_bit is the same but for one entry. */
static uint16_t eight_bit[3 * 256], almost_eight_bit[3 * 256];

static void make_colormaps(void)
{
    for (int i = 0; i < 256; i++) {
        eight_bit[i] = (uint16_t)(i * 257);
        eight_bit[256 + i] = (uint16_t)((255 - i) * 257);
        eight_bit[512 + i] = (uint16_t)(((i * 37 + 11) & 0xff) * 257);
    }
    memcpy(almost_eight_bit, eight_bit, sizeof eight_bit);
    almost_eight_bit[512 + 200] += 1;
}

static fx_tiff_t palette_layout(const uint16_t *colormap, uint16_t compression, bool tiled)
{
    fx_tiff_t l = layout_for(1, compression, false);
    l.photometric = PHOTOMETRIC_PALETTE;
    l.colormap = colormap;
    if (tiled) {
        l.tile_w = l.tile_h = 32;
    } else {
        l.width = 37;
        l.height = 600;
        l.rows_per_strip = 7; /* the last strip has 5 rows */
    }
    return l;
}

static void palette_reads_are_exact(const uint16_t *colormap, cm_stype_t want, const char *name)
{
    make_colormaps();
    static const uint16_t codecs[] = {COMPRESSION_NONE, COMPRESSION_ADOBE_DEFLATE,
                                      COMPRESSION_PACKBITS};
    for (size_t c = 0; c < sizeof codecs / sizeof codecs[0]; c++)
        for (int tiled = 0; tiled <= 1; tiled++) {
            fx_tiff_t l = palette_layout(colormap, codecs[c], tiled);
            assert_int_equal(layout_read_stype(&l), want);
            char path[FX_PATH_MAX], file[64];
            snprintf(file, sizeof file, "%s-%u-%d.tif", name, codecs[c], tiled);
            fx_path(path, file);
            fx_tiff_make(path, &l, pattern);
            check_image(path, &l, pattern); /* 3 bands of the map's colours, type want */
        }
}

static void test_palette_with_an_eight_bit_map_reads_as_uint8_rgb_exactly(void **state)
{
    (void)state;
    palette_reads_are_exact(eight_bit, CM_U8, "palette8");
}

static void test_palette_with_a_map_entry_not_a_multiple_of_257_reads_as_uint16_rgb(void **state)
{
    (void)state;
    palette_reads_are_exact(almost_eight_bit, CM_U16, "palette16");
}

static void test_images_read_from_memory_read_as_from_their_file(void **state)
{
    (void)state;
    make_colormaps();
    fx_tiff_t layouts[3] = {layout_for(4, COMPRESSION_ADOBE_DEFLATE, false),
                            layout_for(3, COMPRESSION_LZW, true),
                            palette_layout(eight_bit, COMPRESSION_PACKBITS, false)};
    layouts[0].tile_w = layouts[0].tile_h = 16;
    layouts[1].rows_per_strip = 9;
    layouts[1].planar = PLANARCONFIG_SEPARATE;
    for (int i = 0; i < 3; i++) {
        char path[FX_PATH_MAX], name[32];
        snprintf(name, sizeof name, "memory-%d.tif", i);
        fx_path(path, name);
        fx_tiff_make(path, &layouts[i], pattern);
        size_t size;
        uint8_t *data = fx_read_file(path, &size);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_image_t *img = NULL;
        if (cm__image_open_memory(data, size, "in-memory.tif", 2, &img, &ctx))
            fail_msg("layout %d: %s", i, ctx.msg);
        assert_string_equal(cm_image_path(img), "in-memory.tif");
        assert_int_equal(cm_image_info(img)->bands,
                         layouts[i].photometric == PHOTOMETRIC_PALETTE ? 3 : layouts[i].spp);
        const truth_t truth = {.fn = pattern, .colormap = layouts[i].colormap};
        check_chunks(img, 1, &truth); /* each worker has its own position in the bytes */
        check_chunks(img, 0, &truth);
        cm_image_close(img);

        /* cut short: the header opens, a chunk does not decode, and the name is given */
        cm_ctx_init(&ctx);
        int rc = cm__image_open_memory(data, size / 2, "in-memory.tif", 1, &img, &ctx);
        if (rc == 0) {
            const cm_grid_t *g = &cm_image_info(img)->grid;
            uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
            assert_non_null(buf);
            for (int64_t c = 0; rc == 0 && c < cm_grid_count(g); c++)
                rc = cm_image_read_chunk(img, 0, c, buf, &ctx);
            free(buf);
            cm_image_close(img);
        }
        assert_int_equal(rc, CM_EINPUT);
        assert_non_null(strstr(ctx.msg, "in-memory.tif"));
        free(data);
    }
}

static void test_palette_tiles_grouped_into_chunks_read_exactly(void **state)
{
    (void)state;
    make_colormaps();
    fx_tiff_t l = palette_layout(almost_eight_bit, COMPRESSION_LZW, true);
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "palette-grouped.tif");
    fx_tiff_make(path, &l, pattern);
    cm_image_t *img = NULL;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_image_open(path, 2, &img, &ctx), 0);
    assert_int_equal(cm_image_set_chunk_side(img, 64, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->grid.chunk_w, 64);
    assert_int_equal(in->grid.bands, 3);
    truth_t tr = {.fn = pattern, .colormap = almost_eight_bit};
    check_chunks(img, 0, &tr);
    check_chunks(img, 1, &tr);
    cm_image_close(img);
}

/* Writes an image of the given bit depth (zeros), grey or with a palette, and expects it
 * refused with a message naming the file and the depth. */
static void low_depth_is_refused(uint16_t bits, uint16_t photometric)
{
    make_colormaps();
    fx_tiff_t l = layout_for(1, COMPRESSION_NONE, false);
    l.bits = bits;
    l.photometric = photometric;
    l.colormap = eight_bit; /* only its first 1 << bits entries are used */
    l.height = 64;
    l.rows_per_strip = 16;
    char path[FX_PATH_MAX], name[64], depth[16];
    snprintf(name, sizeof name, "depth-%u-%u.tif", bits, photometric);
    fx_path(path, name);
    fx_tiff_make(path, &l, pattern);
    snprintf(depth, sizeof depth, "%u-bit", bits);
    expect_failure(path, CM_EINPUT, depth);
}

static void test_one_bit_images_are_unsupported_input_naming_the_depth(void **state)
{
    (void)state;
    low_depth_is_refused(1, PHOTOMETRIC_MINISWHITE);
    low_depth_is_refused(1, PHOTOMETRIC_MINISBLACK);
}

static void test_two_bit_images_are_unsupported_input_naming_the_depth(void **state)
{
    (void)state;
    low_depth_is_refused(2, PHOTOMETRIC_MINISBLACK);
}

static void test_four_bit_images_are_unsupported_input_naming_the_depth(void **state)
{
    (void)state;
    low_depth_is_refused(4, PHOTOMETRIC_MINISBLACK);
    low_depth_is_refused(4, PHOTOMETRIC_PALETTE);
}

static void test_uncompressed_ycbcr_is_unsupported_input(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_NONE, false);
    l.photometric = PHOTOMETRIC_YCBCR;
    l.height = 64;
    l.rows_per_strip = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "ycbcr-raw.tif");
    fx_tiff_make(path, &l, pattern);
    expect_failure(path, CM_EINPUT, "YCbCr");
}

/* Rewrites the TileWidth and TileLength of a little-endian classic TIFF (libtiff 4.5 refuses
 * to write tiles that are not multiples of 16, but reads them). */
static bool patch_tile_size(const char *path, uint8_t tile_px)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return false;
    uint8_t head[8], entry[12], count[2];
    bool ok = fread(head, 1, 8, f) == 8 && !memcmp(head, "II*\0", 4);
    long dir = head[4] | head[5] << 8 | head[6] << 16 | (long)head[7] << 24;
    ok = ok && !fseek(f, dir, SEEK_SET) && fread(count, 1, 2, f) == 2;
    int patched = 0;
    for (int i = 0; ok && i < (count[0] | count[1] << 8); i++) {
        long at = dir + 2 + 12 * i;
        ok = !fseek(f, at, SEEK_SET) && fread(entry, 1, 12, f) == 12;
        int tag = entry[0] | entry[1] << 8;
        if (ok && (tag == TIFFTAG_TILEWIDTH || tag == TIFFTAG_TILELENGTH)) {
            ok = !fseek(f, at + 8, SEEK_SET) && fwrite(&tile_px, 1, 1, f) == 1;
            patched++;
        }
    }
    return fclose(f) == 0 && ok && patched == 2;
}

static void test_tiles_not_a_multiple_of_16_are_unsupported_input(void **state)
{
    (void)state;
    /* 32x32 pixels: two tiles across and down whether they are 16 or 20 pixels wide. */
    fx_tiff_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = l.height = 32;
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX];
    fx_path(path, "tiles-20.tif");
    fx_tiff_make(path, &l, pattern);
    assert_true(patch_tile_size(path, 20));
    TIFF *t = TIFFOpen(path, "r");
    assert_non_null(t);
    uint32_t tw = 0, th = 0;
    TIFFGetField(t, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(t, TIFFTAG_TILELENGTH, &th);
    TIFFClose(t);
    assert_int_equal(tw, 20);
    assert_int_equal(th, 20);
    expect_failure(path, CM_EINPUT, "20x20");
}

/* ---- writing ---------------------------------------------------------------------------- */

typedef struct plain {
    uint32_t width, height, tile_w, tile_h;
    uint16_t spp, bits, format, planar, photometric, compression, n_extra;
    uint16_t extra[CM_BANDS_MAX];
    bool tiled, bigtiff;
    char description[64];
    uint8_t *pixels; /* width * height * spp samples of bits / 8 bytes */
} plain_t;

/* Reads a whole contiguous TIFF with plain libtiff, as a check independent of io's reader. */
static void read_plain(const char *path, plain_t *p)
{
    TIFF *t = TIFFOpen(path, "r");
    if (!t) fail_msg("libtiff cannot open %s", path);
    memset(p, 0, sizeof *p);
    uint16_t *extra = NULL;
    const char *desc = NULL;
    TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &p->width);
    TIFFGetField(t, TIFFTAG_IMAGELENGTH, &p->height);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &p->spp);
    TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &p->bits);
    TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &p->format);
    TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &p->planar);
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &p->photometric);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &p->compression);
    if (TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &p->n_extra, &extra)) {
        assert_in_range(p->n_extra, 0, CM_BANDS_MAX);
        memcpy(p->extra, extra, sizeof(uint16_t) * p->n_extra);
    }
    if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc))
        snprintf(p->description, sizeof p->description, "%s", desc);
    p->tiled = TIFFIsTiled(t);
    p->bigtiff = TIFFIsBigTIFF(t);
    assert_int_equal(p->planar, PLANARCONFIG_CONTIG);
    size_t px = (size_t)p->spp * p->bits / 8, row = p->width * px;
    p->pixels = malloc(row * p->height);
    assert_non_null(p->pixels);
    if (p->tiled) {
        TIFFGetField(t, TIFFTAG_TILEWIDTH, &p->tile_w);
        TIFFGetField(t, TIFFTAG_TILELENGTH, &p->tile_h);
        tmsize_t size = TIFFTileSize(t);
        uint8_t *tile = malloc((size_t)size);
        assert_non_null(tile);
        for (uint32_t y = 0; y < p->height; y += p->tile_h)
            for (uint32_t x = 0; x < p->width; x += p->tile_w) {
                if (TIFFReadEncodedTile(t, TIFFComputeTile(t, x, y, 0, 0), tile, size) != size)
                    fail_msg("%s: cannot read the tile at %u,%u", path, x, y);
                uint32_t w = p->width - x < p->tile_w ? p->width - x : p->tile_w;
                uint32_t h = p->height - y < p->tile_h ? p->height - y : p->tile_h;
                for (uint32_t r = 0; r < h; r++)
                    memcpy(p->pixels + (y + r) * row + x * px, tile + r * p->tile_w * px, w * px);
            }
        free(tile);
    } else {
        for (uint32_t s = 0; s < TIFFNumberOfStrips(t); s++)
            if (TIFFReadEncodedStrip(t, s, p->pixels + s * TIFFStripSize(t), -1) < 0)
                fail_msg("%s: cannot read strip %u", path, s);
    }
    TIFFClose(t);
}

/* The sample type of a plain image. */
static cm_stype_t plain_stype(const plain_t *p)
{
    for (int t = CM_U8; t <= CM_F32; t++)
        if (p->bits == fx_stype_bits[t] && p->format == fx_stype_formats[t]) return (cm_stype_t)t;
    fail_msg("no sample type has %u bits of format %u", p->bits, p->format);
    return CM_U8;
}

/* Samples of a plain image further than the tolerance from the truth. */
static int64_t plain_mismatches(const plain_t *p, const truth_t *tr, char *where, size_t size)
{
    cm_stype_t t = plain_stype(p);
    int64_t bad = 0;
    for (uint32_t y = 0; y < p->height; y++)
        for (uint32_t x = 0; x < p->width; x++)
            for (int b = 0; b < p->spp; b++) {
                double got = fx_sample_load(p->pixels, t, ((size_t)y * p->width + x) * p->spp + b);
                double want = want_sample(tr, t, x, y, b);
                if (fabs(got - want) > tr->tol && !bad++)
                    snprintf(where, size, "pixel (%u,%u) band %d is %.9g, expected %.9g", x, y, b,
                             got, want);
            }
    return bad;
}

/* Whether the first directory of a classic little-endian TIFF has an entry for tag, read
 * without libtiff (which knows codec tags such as Predictor only for codecs that use them);
 * *value is its value when it is one SHORT. */
static bool ifd_has_tag(const char *path, uint16_t tag, uint16_t *value)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    uint8_t head[8], entry[12], count[2];
    bool ok = fread(head, 1, 8, f) == 8 && !memcmp(head, "II*\0", 4);
    long dir = head[4] | head[5] << 8 | head[6] << 16 | (long)head[7] << 24;
    ok = ok && !fseek(f, dir, SEEK_SET) && fread(count, 1, 2, f) == 2;
    bool found = false;
    for (int i = 0; ok && !found && i < (count[0] | count[1] << 8); i++) {
        ok = fread(entry, 1, 12, f) == 12;
        if (ok && (entry[0] | entry[1] << 8) == tag) {
            found = true;
            *value = (uint16_t)(entry[8] | entry[9] << 8);
        }
    }
    fclose(f);
    if (!ok) fail_msg("%s: not a classic little-endian TIFF whose first directory reads", path);
    return found;
}

/* Writes every chunk of an open image through a writer of the given spec. */
static void copy_image_to(cm_image_t *img, const char *out, const cm_writer_spec_t *spec)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    const cm_image_info_t *in = cm_image_info(img);
    cm_writer_t *wr = NULL;
    int rc = cm_writer_open(out, spec, &wr, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&in->grid));
    assert_non_null(buf);
    for (int64_t idx = 0; idx < cm_grid_count(&in->grid); idx++) {
        int64_t x, y, w, h;
        cm_grid_rect(&in->grid, idx, &x, &y, &w, &h);
        assert_int_equal(cm_image_read_chunk(img, 0, idx, buf, &ctx), 0);
        rc = cm__writer_put(wr, x, y, w, h, buf, &ctx);
        if (rc) fail_msg("%s", ctx.msg);
    }
    rc = cm_writer_commit(wr, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    free(buf);
}

/* Copies path into a new file at out through the reader and the writer, as the command does. */
static void copy_through_writer(const char *path, const char *out, int compression,
                                cm_writer_spec_t *spec)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    cm_writer_spec_like(cm_image_info(img), compression, spec);
    copy_image_to(img, out, spec);
    cm_image_close(img);
}

/* Checks a copy of an image of layout l (read as RGB when YCbCr) made with spec: contiguous,
 * same size, type, extra samples and values. */
static void check_copy(const char *out, const fx_tiff_t *l, const cm_writer_spec_t *spec, int tol)
{
    plain_t p;
    read_plain(out, &p);
    assert_int_equal(p.width, l->width);
    assert_int_equal(p.height, l->height);
    assert_int_equal(p.spp, l->spp);
    assert_int_equal(p.bits, fx_stype_bits[l->stype]);
    assert_int_equal(p.format, fx_stype_formats[l->stype]);
    assert_int_equal(p.photometric,
                     l->photometric == PHOTOMETRIC_YCBCR ? PHOTOMETRIC_RGB : l->photometric);
    assert_int_equal(p.compression, spec->compression);
    assert_true(p.tiled);
    assert_int_equal(p.tile_w, spec->tile_w);
    assert_int_equal(p.tile_h, spec->tile_h);
    assert_int_equal(p.bigtiff, spec->bigtiff);
    assert_int_equal(p.n_extra, l->n_extra);
    for (int i = 0; i < l->n_extra; i++) assert_int_equal(p.extra[i], l->extra[i]);
    char where[200];
    truth_t tr = {.fn = l->photometric == PHOTOMETRIC_YCBCR ? smooth : pattern, .tol = tol};
    if (plain_mismatches(&p, &tr, where, sizeof where)) fail_msg("%s: %s", out, where);
    free(p.pixels);
}

static void test_writer_copies_tiled_images_exactly_in_every_lossless_compression(void **state)
{
    (void)state;
    for (int spp = 1; spp <= 4; spp++)
        for (int c = 0; c < N_LOSSLESS; c++) {
            skip_unless_codec(lossless[c]);
            fx_tiff_t l = layout_for(spp, COMPRESSION_LZW, false);
            l.tile_w = l.tile_h = 32;
            char path[FX_PATH_MAX], out[FX_PATH_MAX], name[64];
            snprintf(name, sizeof name, "copy-in-%d.tif", spp);
            fx_path(path, name);
            snprintf(name, sizeof name, "copy-out-%d-%u.tif", spp, lossless[c]);
            fx_path(out, name);
            fx_tiff_make(path, &l, pattern);
            cm_writer_spec_t spec;
            copy_through_writer(path, out, lossless[c], &spec);
            assert_int_equal(spec.tile_w, 32);
            assert_int_equal(spec.tile_h, 32);
            check_copy(out, &l, &spec, 0);
            assert_int_equal(count_part_files(fx_dir, name), 0);
        }
}

/* Re-encodes every tile of out with libtiff itself, into a file of the same fields, and checks
 * that libtiff wrote the very bytes the writer did. */
static void check_tiles_as_libtiff_encodes_them(const char *out, const char *ref)
{
    TIFF *a = TIFFOpen(out, "r"), *b = TIFFOpen(ref, "w");
    assert_true(a && b);
    uint32_t w, h, tw, th;
    uint16_t spp, bits, format, photometric, compression, predictor = PREDICTOR_NONE;
    assert_true(
        TIFFGetField(a, TIFFTAG_IMAGEWIDTH, &w) && TIFFGetField(a, TIFFTAG_IMAGELENGTH, &h) &&
        TIFFGetField(a, TIFFTAG_TILEWIDTH, &tw) && TIFFGetField(a, TIFFTAG_TILELENGTH, &th) &&
        TIFFGetField(a, TIFFTAG_SAMPLESPERPIXEL, &spp) &&
        TIFFGetField(a, TIFFTAG_BITSPERSAMPLE, &bits) &&
        TIFFGetField(a, TIFFTAG_SAMPLEFORMAT, &format) &&
        TIFFGetField(a, TIFFTAG_PHOTOMETRIC, &photometric) &&
        TIFFGetField(a, TIFFTAG_COMPRESSION, &compression));
    TIFFGetField(a, TIFFTAG_PREDICTOR, &predictor);
    assert_true(TIFFSetField(b, TIFFTAG_IMAGEWIDTH, w) && TIFFSetField(b, TIFFTAG_IMAGELENGTH, h) &&
                TIFFSetField(b, TIFFTAG_TILEWIDTH, tw) && TIFFSetField(b, TIFFTAG_TILELENGTH, th) &&
                TIFFSetField(b, TIFFTAG_SAMPLESPERPIXEL, spp) &&
                TIFFSetField(b, TIFFTAG_BITSPERSAMPLE, bits) &&
                TIFFSetField(b, TIFFTAG_SAMPLEFORMAT, format) &&
                TIFFSetField(b, TIFFTAG_PHOTOMETRIC, photometric) &&
                TIFFSetField(b, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
                TIFFSetField(b, TIFFTAG_COMPRESSION, compression));
    if (predictor != PREDICTOR_NONE) assert_true(TIFFSetField(b, TIFFTAG_PREDICTOR, predictor));
    tmsize_t size = TIFFTileSize(a);
    uint8_t *tile = malloc((size_t)size);
    assert_non_null(tile);
    for (uint32_t i = 0; i < TIFFNumberOfTiles(a); i++) {
        assert_int_equal(TIFFReadEncodedTile(a, i, tile, size), size);
        assert_int_equal(TIFFWriteEncodedTile(b, i, tile, size), size);
    }
    TIFFClose(b);
    b = TIFFOpen(ref, "r");
    assert_non_null(b);
    uint64_t *sa, *sb;
    assert_true(TIFFGetField(a, TIFFTAG_TILEBYTECOUNTS, &sa) &&
                TIFFGetField(b, TIFFTAG_TILEBYTECOUNTS, &sb));
    uint8_t *ra = malloc((size_t)size * 2), *rb = malloc((size_t)size * 2);
    assert_true(ra && rb);
    for (uint32_t i = 0; i < TIFFNumberOfTiles(a); i++) {
        if (sa[i] != sb[i])
            fail_msg("%s: tile %u of %llu bytes, libtiff's %llu", out, i, (unsigned long long)sa[i],
                     (unsigned long long)sb[i]);
        assert_int_equal(TIFFReadRawTile(a, i, ra, size * 2), (tmsize_t)sa[i]);
        assert_int_equal(TIFFReadRawTile(b, i, rb, size * 2), (tmsize_t)sb[i]);
        if (memcmp(ra, rb, (size_t)sa[i])) fail_msg("%s: tile %u differs from libtiff's", out, i);
    }
    free(ra);
    free(rb);
    free(tile);
    TIFFClose(a);
    TIFFClose(b);
}

static void test_writer_deflates_tiles_to_the_bytes_libtiff_writes(void **state)
{
    (void)state;
    /* 8-bit RGB and grey + alpha, 16-bit and int16 with the horizontal predictor, and a label
     * map (8-bit grey, no predictor); edge tiles padded. */
    static const struct {
        int spp;
        cm_stype_t stype;
        bool predictor;
    } cases[] = {{3, CM_U8, true},
                 {2, CM_U8, true},
                 {3, CM_U16, true},
                 {1, CM_I16, true},
                 {1, CM_U8, false}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fx_tiff_t l = layout_for(cases[c].spp, COMPRESSION_NONE, false);
        l.stype = cases[c].stype;
        l.tile_w = l.tile_h = 32;
        char path[FX_PATH_MAX], out[FX_PATH_MAX], ref[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "deflate-in-%zu.tif", c);
        fx_path(path, name);
        snprintf(name, sizeof name, "deflate-out-%zu.tif", c);
        fx_path(out, name);
        snprintf(name, sizeof name, "deflate-ref-%zu.tif", c);
        fx_path(ref, name);
        fx_tiff_make(path, &l, pattern);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_image_t *img = NULL;
        assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
        cm_writer_spec_t spec;
        cm_writer_spec_like(cm_image_info(img), COMPRESSION_ADOBE_DEFLATE, &spec);
        spec.predictor = cases[c].predictor;
        copy_image_to(img, out, &spec);
        cm_image_close(img);
        uint16_t predictor = 0;
        assert_int_equal(ifd_has_tag(out, TIFFTAG_PREDICTOR, &predictor), cases[c].predictor);
        check_tiles_as_libtiff_encodes_them(out, ref);
        check_copy(out, &l, &spec, 0);
    }
}

static void test_writer_copies_striped_images_exactly_as_tiles(void **state)
{
    (void)state;
    for (int spp = 1; spp <= 4; spp++) {
        fx_tiff_t l = layout_for(spp, COMPRESSION_PACKBITS, false);
        l.width = 37;
        l.height = 600;
        l.rows_per_strip = 7;
        char path[FX_PATH_MAX], out[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "copy-strips-in-%d.tif", spp);
        fx_path(path, name);
        snprintf(name, sizeof name, "copy-strips-out-%d.tif", spp);
        fx_path(out, name);
        fx_tiff_make(path, &l, pattern);
        cm_writer_spec_t spec;
        copy_through_writer(path, out, COMPRESSION_ADOBE_DEFLATE, &spec);
        assert_int_equal(spec.tile_w, 48);
        assert_int_equal(spec.tile_h, 448); /* 4 bands of 16 strips of 7 rows */
        check_copy(out, &l, &spec, 0);
    }
}

static void test_writer_copies_wide_striped_image_in_512_wide_tiles(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = 1100;
    l.height = 40;
    l.rows_per_strip = 8;
    char path[FX_PATH_MAX], out[FX_PATH_MAX];
    fx_path(path, "wide-in.tif");
    fx_path(out, "wide-out.tif");
    fx_tiff_make(path, &l, pattern);
    cm_writer_spec_t spec;
    copy_through_writer(path, out, COMPRESSION_ZSTD, &spec);
    assert_int_equal(spec.tile_w, 512);
    assert_int_equal(spec.tile_h % 16, 0);
    check_copy(out, &l, &spec, 0);
}

static void test_writer_jpeg_output_of_ycbcr_input_is_rgb_close_to_the_original(void **state)
{
    (void)state;
    skip_unless_codec(COMPRESSION_JPEG);
    fx_tiff_t l = ycbcr_jpeg;
    char path[FX_PATH_MAX], out[FX_PATH_MAX];
    fx_path(path, "jpeg-in.tif");
    fx_path(out, "jpeg-out.tif");
    fx_tiff_make(path, &l, smooth);
    cm_writer_spec_t spec;
    copy_through_writer(path, out, COMPRESSION_JPEG, &spec);
    assert_int_equal(spec.photometric, PHOTOMETRIC_RGB);
    check_copy(out, &l, &spec, 12);
}

static void test_writer_bigtiff_output_is_bigtiff(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(4, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 16;
    char path[FX_PATH_MAX], out[FX_PATH_MAX];
    fx_path(path, "big-in.tif");
    fx_path(out, "big-out.tif");
    fx_tiff_make(path, &l, pattern);

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    cm_writer_spec_t spec;
    cm_writer_spec_like(in, COMPRESSION_ADOBE_DEFLATE, &spec);
    spec.bigtiff = true;
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&in->grid));
    assert_non_null(buf);
    for (int64_t idx = 0; idx < cm_grid_count(&in->grid); idx++) {
        int64_t x, y, w, h;
        cm_grid_rect(&in->grid, idx, &x, &y, &w, &h);
        assert_int_equal(cm_image_read_chunk(img, 0, idx, buf, &ctx), 0);
        assert_int_equal(cm__writer_put(wr, x, y, w, h, buf, &ctx), 0);
    }
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    free(buf);
    cm_image_close(img);

    check_copy(out, &l, &spec, 0);
    cm_image_t *back = NULL;
    assert_int_equal(cm_image_open(out, 1, &back, &ctx), 0);
    assert_true(cm_image_info(back)->bigtiff);
    assert_int_equal(cm_image_info(back)->alpha_band, 3);
    check_all_chunks(back, 0, pattern, 0);
    cm_image_close(back);
}

/* A spec for pattern images written directly, without an input. */
static cm_writer_spec_t direct_spec(int bands)
{
    return (cm_writer_spec_t){.width = 100,
                              .height = 70,
                              .bands = bands,
                              .n_extra = bands == 2 || bands == 4 ? 1 : 0,
                              .extra = {EXTRASAMPLE_UNASSALPHA},
                              .stype = CM_U8,
                              .photometric = photometric_for(bands),
                              .compression = COMPRESSION_ADOBE_DEFLATE,
                              .tile_w = 32,
                              .tile_h = 48};
}

/* Puts the whole pattern image in the spec's sample type, tile row by tile row (as chunks of
 * the spec's tiles). */
static void put_pattern(cm_writer_t *wr, const cm_writer_spec_t *s)
{
    fx_tiff_t l = {.width = (uint32_t)s->width,
                   .height = (uint32_t)s->height,
                   .spp = (uint16_t)s->bands,
                   .stype = s->stype};
    uint8_t *buf = malloc((size_t)(s->width * s->tile_h * s->bands) * fx_stype_bytes[s->stype]);
    assert_non_null(buf);
    for (int64_t y = 0; y < s->height; y += s->tile_h) {
        int64_t h = s->height - y < s->tile_h ? s->height - y : s->tile_h;
        fx_fill_rect(buf, s->width, 0, y, s->width, h, &l, 0, s->bands, pattern);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        int rc = cm__writer_put(wr, 0, y, s->width, h, buf, &ctx);
        if (rc) fail_msg("%s", ctx.msg);
    }
    free(buf);
}

static void test_destination_appears_only_at_commit_and_part_file_meanwhile(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "atomic-out.tif");
    cm_writer_spec_t spec = direct_spec(3);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    assert_false(fx_exists(out));
    assert_int_equal(count_part_files(fx_dir, "atomic-out.tif"), 1);
    put_pattern(wr, &spec);
    assert_false(fx_exists(out));
    assert_int_equal(count_part_files(fx_dir, "atomic-out.tif"), 1);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    assert_true(fx_exists(out));
    assert_int_equal(count_part_files(fx_dir, "atomic-out.tif"), 0);
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    check_copy(out, &l, &spec, 0);
}

/* The parallel writing of a job's ranks, in one process: the writer places the tiles of every
 * other row of tiles without their bytes (as rank 0 does with what another rank packed without
 * data), an encoder writes them at the offsets it was given, and the file is byte for byte the
 * one a writer that put every tile itself makes. */
static void
test_tiles_placed_without_bytes_then_written_at_their_offsets_make_the_same_file(void **state)
{
    (void)state;
    char out[FX_PATH_MAX], ref[FX_PATH_MAX];
    fx_path(out, "placed-out.tif");
    fx_path(ref, "placed-ref.tif");
    cm_writer_spec_t spec = direct_spec(3);
    spec.tile_h = 16; /* 5 rows of tiles, the last one clipped */
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL, *enc = NULL;
    assert_int_equal(cm_writer_open(ref, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);

    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    assert_int_equal(cm_writer_open_encoder(out, &spec, &enc, &ctx), 0);
    assert_true(cm_writer_can_place(wr));
    fx_tiff_t l = {.width = 100, .height = 70, .spp = 3, .stype = CM_U8};
    uint8_t *buf = malloc((size_t)(spec.width * spec.tile_h * 3));
    assert_non_null(buf);
    for (int64_t y = 0, row = 0; y < spec.height; y += spec.tile_h, row++) {
        int64_t h = spec.height - y < spec.tile_h ? spec.height - y : spec.tile_h;
        fx_fill_rect(buf, spec.width, 0, y, spec.width, h, &l, 0, 3, pattern);
        cm_encoded_t *e = NULL, *sizes = NULL;
        assert_int_equal(cm_writer_encode(enc, 0, y, spec.width, h, buf, &e, &ctx), 0);
        if (row % 2 == 0) {
            assert_int_equal(cm_writer_put_encoded(wr, e, &ctx), 0);
            cm_encoded_free(e);
            continue;
        }
        uint8_t *bytes = NULL;
        size_t n = 0;
        assert_int_equal(cm_encoded_pack(e, false, &bytes, &n, &ctx), 0);
        assert_int_equal(cm_encoded_unpack(bytes, n, &sizes, &ctx), 0);
        uint64_t offsets[8];
        assert_int_equal(cm_encoded_count(sizes), 4);
        assert_int_equal(cm_writer_place(wr, sizes, offsets, &ctx), 0);
        assert_int_equal(cm_writer_put_at(enc, cm_writer_file(wr), e, offsets, &ctx), 0);
        free(bytes);
        cm_encoded_free(sizes);
        cm_encoded_free(e);
    }
    free(buf);
    assert_int_equal(cm_writer_flush(enc, &ctx), 0);
    cm_writer_abort(enc);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    assert_true(fx_same_bytes(out, ref));
}

/* A tile without bytes is put only while it is being placed. */
static void test_putting_tiles_without_bytes_is_an_internal_error(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "nobytes-out.tif");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    uint8_t *px = calloc((size_t)(spec.tile_w * spec.tile_h), 1), *bytes = NULL;
    assert_non_null(px);
    cm_encoded_t *e = NULL, *sizes = NULL;
    size_t n = 0;
    assert_int_equal(cm_writer_encode(wr, 0, 0, spec.tile_w, spec.tile_h, px, &e, &ctx), 0);
    assert_int_equal(cm_encoded_pack(e, false, &bytes, &n, &ctx), 0);
    assert_int_equal(cm_encoded_unpack(bytes, n, &sizes, &ctx), 0);
    assert_int_equal(cm_writer_put_encoded(wr, sizes, &ctx), CM_EINTERNAL);
    assert_non_null(strstr(ctx.msg, "has no bytes"));
    free(px);
    free(bytes);
    cm_encoded_free(e);
    cm_encoded_free(sizes);
    cm_writer_abort(wr);
    assert_false(fx_exists(out));
}

static void test_committed_output_has_the_usual_permissions(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "mode-out.tif");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    mode_t old = umask(022);
    int rc = cm_writer_open(out, &spec, &wr, &ctx);
    umask(old);
    assert_int_equal(rc, 0);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    struct stat st;
    assert_int_equal(stat(out, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
}

static void test_abort_leaves_neither_destination_nor_part_file(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "aborted.tif");
    cm_writer_spec_t spec = direct_spec(4);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(count_part_files(fx_dir, "aborted.tif"), 1);
    cm_writer_abort(wr);
    assert_false(fx_exists(out));
    assert_int_equal(count_part_files(fx_dir, "aborted.tif"), 0);
    cm_writer_abort(NULL);
}

static void test_writer_open_in_a_missing_directory_is_an_io_error_naming_the_path(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "no-such-dir/out.tif");
    cm_writer_spec_t spec = direct_spec(3);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), CM_EIO);
    assert_null(wr);
    assert_int_equal(ctx.code, CM_EIO);
    if (!strstr(ctx.msg, out)) fail_msg("message does not name %s: %s", out, ctx.msg);
}

static void test_commit_onto_a_directory_fails_with_eio_and_removes_the_part_file(void **state)
{
    (void)state;
    char out[FX_PATH_MAX], inner[FX_PATH_MAX];
    fx_path(out, "occupied");
    fx_path(inner, "occupied/keep");
    assert_int_equal(mkdir(out, 0777), 0);
    fx_write_text(inner, "keep me");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), CM_EIO);
    assert_int_equal(ctx.code, CM_EIO);
    if (!strstr(ctx.msg, out)) fail_msg("message does not name %s: %s", out, ctx.msg);
    assert_int_equal(count_part_files(fx_dir, "occupied"), 0);
    assert_true(fx_exists(inner));
}

static void test_writer_open_rejects_tiles_not_a_multiple_of_16(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "tiles-24.tif");
    cm_writer_spec_t spec = direct_spec(3);
    spec.tile_w = 24;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), CM_EUSAGE);
    assert_null(wr);
    assert_false(fx_exists(out));
    assert_int_equal(count_part_files(fx_dir, "tiles-24.tif"), 0);
}

static void test_put_off_the_tile_grid_is_an_internal_error(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "off-grid.tif");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    uint8_t px[32 * 48] = {0};
    assert_int_equal(cm__writer_put(wr, 16, 0, 32, 48, px, &ctx), CM_EINTERNAL);
    cm_ctx_init(&ctx);
    assert_int_equal(cm__writer_put(wr, 96, 0, 32, 48, px, &ctx), CM_EINTERNAL); /* past width */
    cm_writer_abort(wr);
    assert_int_equal(count_part_files(fx_dir, "off-grid.tif"), 0);
}

static void test_description_is_written(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "described.tif");
    cm_writer_spec_t spec = direct_spec(3);
    char desc[] = "k=4 seed=1";
    spec.description = desc;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    memset(desc, 'x', sizeof desc - 1); /* the writer must not depend on it after open */
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    plain_t p;
    read_plain(out, &p);
    assert_string_equal(p.description, "k=4 seed=1");
    free(p.pixels);
}

static void write_labels(int bits)
{
    cm_writer_spec_t img_spec = direct_spec(3), spec;
    img_spec.compression = COMPRESSION_ZSTD;
    cm_writer_spec_labels(&img_spec, bits, bits == 8 ? 255 : 65535, &spec);
    char out[FX_PATH_MAX], name[32];
    snprintf(name, sizeof name, "labels-%d.tif", bits);
    fx_path(out, name);
    size_t px = (size_t)bits / 8;
    uint8_t *buf = malloc((size_t)(spec.width * spec.tile_h) * px);
    assert_non_null(buf);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    for (int64_t y = 0; y < spec.height; y += spec.tile_h) {
        int64_t h = spec.height - y < spec.tile_h ? spec.height - y : spec.tile_h;
        for (int64_t r = 0; r < h; r++)
            for (int64_t x = 0; x < spec.width; x++) {
                uint16_t v = (uint16_t)(x * 601 + (y + r) * 7);
                if (bits == 8)
                    buf[r * spec.width + x] = (uint8_t)v;
                else
                    memcpy(buf + (r * spec.width + x) * 2, &v, 2);
            }
        assert_int_equal(cm__writer_put(wr, 0, y, spec.width, h, buf, &ctx), 0);
    }
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    free(buf);

    plain_t p;
    read_plain(out, &p);
    assert_int_equal(p.spp, 1);
    assert_int_equal(p.bits, bits);
    assert_int_equal(p.photometric, PHOTOMETRIC_MINISBLACK);
    assert_int_equal(p.compression, COMPRESSION_ZSTD);
    assert_int_equal(p.n_extra, 0);
    for (uint32_t y = 0; y < p.height; y++)
        for (uint32_t x = 0; x < p.width; x++) {
            uint16_t want = (uint16_t)(x * 601 + y * 7), got;
            if (bits == 8) {
                got = p.pixels[y * p.width + x];
                want &= 0xff;
            } else {
                memcpy(&got, p.pixels + (y * p.width + x) * 2, 2);
            }
            if (got != want) fail_msg("label (%u,%u) is %u, expected %u", x, y, got, want);
        }
    free(p.pixels);
}

static void test_eight_bit_labels_are_written_exactly(void **state)
{
    (void)state;
    write_labels(8);
}

static void test_sixteen_bit_labels_are_written_exactly(void **state)
{
    (void)state;
    write_labels(16);
}

/* ---- sample types, extra samples and predictors through the writer ------------------------ */

/* Checks out's Predictor tag: the type's predictor when asked for with a compression that
 * takes one, otherwise none (absent, or 1). */
static void check_predictor(const char *out, uint16_t compression, bool asked, cm_stype_t t)
{
    uint16_t pred = 0;
    bool has = ifd_has_tag(out, TIFFTAG_PREDICTOR, &pred);
    if (asked && predictable(compression)) {
        if (!has || pred != predictor_for(t))
            fail_msg("%s (%s, compression %u): predictor %s%u, expected %u", out, fx_stype_names[t],
                     compression, has ? "" : "absent ", pred, predictor_for(t));
    } else if (has && pred != PREDICTOR_NONE) {
        fail_msg("%s (%s, compression %u): predictor %u, expected none", out, fx_stype_names[t],
                 compression, pred);
    }
}

static const uint16_t two_then_alpha[] = {EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_UNSPECIFIED,
                                          EXTRASAMPLE_UNASSALPHA};

/* A planar-separate image of type t (RGB and extra samples {unspecified, unspecified,
 * unassociated alpha}) copied through the writer in every lossless compression comes out
 * contiguous with the same type, values and extra samples, read back by plain libtiff and by
 * cm_image_open, with the type's predictor where the compression takes one; and with no
 * predictor when the spec asks for none. */
static void writer_round_trip(cm_stype_t t)
{
    fx_tiff_t l = rgb_with_extras(t, 3, two_then_alpha, COMPRESSION_ADOBE_DEFLATE);
    l.planar = PLANARCONFIG_SEPARATE;
    l.predictor = predictor_for(t);
    l.tile_w = 32;
    l.tile_h = 16;
    char path[FX_PATH_MAX], out[FX_PATH_MAX], name[64];
    snprintf(name, sizeof name, "round-in-%s.tif", fx_stype_names[t]);
    fx_path(path, name);
    fx_tiff_make(path, &l, pattern);
    for (int c = 0; c < N_LOSSLESS; c++) {
        skip_unless_codec(lossless[c]);
        snprintf(name, sizeof name, "round-out-%s-%u.tif", fx_stype_names[t], lossless[c]);
        fx_path(out, name);
        cm_writer_spec_t spec;
        copy_through_writer(path, out, lossless[c], &spec);
        assert_int_equal(spec.stype, t);
        assert_int_equal(spec.n_extra, 3);
        assert_true(spec.predictor);
        check_copy(out, &l, &spec, 0);
        check_predictor(out, lossless[c], true, t);
        fx_tiff_t back = l;
        back.planar = 0;
        back.predictor = 0;
        back.compression = lossless[c];
        check_image(out, &back, pattern); /* alpha_band 5, the three kinds */
    }

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    cm_writer_spec_t spec;
    cm_writer_spec_like(cm_image_info(img), COMPRESSION_ADOBE_DEFLATE, &spec);
    spec.predictor = false;
    snprintf(name, sizeof name, "round-out-%s-unpredicted.tif", fx_stype_names[t]);
    fx_path(out, name);
    copy_image_to(img, out, &spec);
    cm_image_close(img);
    check_copy(out, &l, &spec, 0);
    check_predictor(out, COMPRESSION_ADOBE_DEFLATE, false, t);
}

static void test_writer_round_trips_uint16_exactly_with_extra_samples_and_predictor(void **state)
{
    (void)state;
    writer_round_trip(CM_U16);
}

static void test_writer_round_trips_int16_exactly_with_extra_samples_and_predictor(void **state)
{
    (void)state;
    writer_round_trip(CM_I16);
}

static void test_writer_round_trips_float32_exactly_with_extra_samples_and_predictor(void **state)
{
    (void)state;
    writer_round_trip(CM_F32);
}

static void test_writer_copies_palette_input_as_the_rgb_of_its_colors(void **state)
{
    (void)state;
    make_colormaps();
    const uint16_t *maps[] = {eight_bit, almost_eight_bit};
    for (int m = 0; m < 2; m++) {
        fx_tiff_t l = palette_layout(maps[m], COMPRESSION_ADOBE_DEFLATE, true);
        char path[FX_PATH_MAX], out[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "palette-copy-in-%d.tif", m);
        fx_path(path, name);
        snprintf(name, sizeof name, "palette-copy-out-%d.tif", m);
        fx_path(out, name);
        fx_tiff_make(path, &l, pattern);
        cm_writer_spec_t spec;
        copy_through_writer(path, out, COMPRESSION_LZW, &spec);
        plain_t p;
        read_plain(out, &p);
        assert_int_equal(p.photometric, PHOTOMETRIC_RGB);
        assert_int_equal(p.spp, 3);
        assert_int_equal(p.bits, m ? 16 : 8);
        assert_int_equal(p.n_extra, 0);
        char where[200];
        if (plain_mismatches(&p, &(truth_t){.fn = pattern, .colormap = maps[m]}, where,
                             sizeof where))
            fail_msg("%s: %s", out, where);
        free(p.pixels);
    }
}

static void test_writer_writes_extra_samples_as_given(void **state)
{
    (void)state;
    /* Grey and five extra samples, the alpha among them not last. */
    static const uint16_t kinds[] = {EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_ASSOCALPHA,
                                     EXTRASAMPLE_UNSPECIFIED, EXTRASAMPLE_UNASSALPHA,
                                     EXTRASAMPLE_UNSPECIFIED};
    cm_writer_spec_t spec = direct_spec(1);
    spec.bands = 6;
    spec.stype = CM_U16;
    spec.n_extra = 5;
    memcpy(spec.extra, kinds, sizeof kinds);
    char out[FX_PATH_MAX];
    fx_path(out, "extras-out.tif");
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    fx_tiff_t l = layout_for(1, COMPRESSION_ADOBE_DEFLATE, false);
    l.spp = 6;
    l.stype = CM_U16;
    l.n_extra = 5;
    memcpy(l.extra, kinds, sizeof kinds);
    check_copy(out, &l, &spec, 0);
    l.tile_w = 32;
    l.tile_h = 48;
    check_image(out, &l, pattern); /* alpha_band 2 */
}

static void test_writer_refuses_jpeg_of_samples_wider_than_8_bits_leaving_no_file(void **state)
{
    (void)state;
    for (int t = CM_U16; t <= CM_F32; t++) {
        char out[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "jpeg-%s.tif", fx_stype_names[t]);
        fx_path(out, name);
        cm_writer_spec_t spec = direct_spec(3);
        spec.stype = (cm_stype_t)t;
        spec.compression = COMPRESSION_JPEG;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_writer_t *wr = NULL;
        assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), CM_EUSAGE);
        assert_null(wr);
        assert_int_equal(ctx.code, CM_EUSAGE);
        if (!strstr(ctx.msg, out) || !strstr(ctx.msg, fx_stype_names[t]))
            fail_msg("message does not name %s and %s: %s", out, fx_stype_names[t], ctx.msg);
        assert_false(fx_exists(out));
        assert_int_equal(count_part_files(fx_dir, name), 0);
    }
}

/* ---- georeferencing and NoData through the writer ----------------------------------------- */

static fx_tiff_t geo_layout(void)
{
    fx_tiff_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 32;
    l.set_tags = set_geotags;
    l.nodata = "-9999";
    return l;
}

static void check_doubles(TIFF *t, const char *path, uint32_t tag, const double *want, uint32_t n)
{
    uint32_t count = 0;
    const double *got = NULL;
    if (!TIFFGetField(t, tag, &count, &got)) fail_msg("%s: no tag %u", path, tag);
    assert_int_equal(count, n);
    assert_memory_equal(got, want, n * sizeof(double));
}

/* Checks that path has geo_layout's georeferencing and resolution, and GDAL_NODATA nodata. */
static void check_geotags(const char *path, const char *nodata)
{
    TIFF *t = TIFFOpen(path, "r");
    if (!t) fail_msg("libtiff cannot open %s", path);
    check_doubles(t, path, TAG_PIXEL_SCALE, geo_pixel_scale, N_PIXEL_SCALE);
    check_doubles(t, path, TAG_TIEPOINT, geo_tiepoint, N_TIEPOINT);
    uint32_t count = 0;
    const uint16_t *keys = NULL;
    if (!TIFFGetField(t, TAG_GEO_KEYS, &count, &keys)) fail_msg("%s: no GeoKeyDirectory", path);
    assert_int_equal(count, N_GEO_KEYS);
    assert_memory_equal(keys, geo_keys, sizeof geo_keys);
    float xres = 0, yres = 0;
    uint16_t unit = 0;
    assert_true(TIFFGetField(t, TIFFTAG_XRESOLUTION, &xres));
    assert_true(TIFFGetField(t, TIFFTAG_YRESOLUTION, &yres));
    assert_true(TIFFGetField(t, TIFFTAG_RESOLUTIONUNIT, &unit));
    assert_true(xres == 300.0f && yres == 150.0f);
    assert_int_equal(unit, RESUNIT_INCH);
    const char *text = NULL;
    if (!TIFFGetField(t, TAG_GDAL_NODATA, &text)) fail_msg("%s: no GDAL_NODATA", path);
    assert_string_equal(text, nodata);
    TIFFClose(t);
}

static void test_geotiff_input_with_gdal_nodata_opens_georeferenced_with_its_nodata(void **state)
{
    (void)state;
    fx_tiff_t l = geo_layout();
    char path[FX_PATH_MAX];
    fx_path(path, "geo-in.tif");
    fx_tiff_make(path, &l, pattern);
    check_image(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_true(in->georeferenced);
    assert_true(in->has_nodata);
    assert_true(in->nodata == -9999.0);
    cm_image_close(img);
}

static void test_writer_copies_georeferencing_nodata_and_resolution_from_tags_from(void **state)
{
    (void)state;
    fx_tiff_t l = geo_layout();
    char path[FX_PATH_MAX], out[FX_PATH_MAX], bare[FX_PATH_MAX];
    fx_path(path, "geo-copy-in.tif");
    fx_path(out, "geo-copy-out.tif");
    fx_path(bare, "geo-copy-bare.tif");
    fx_tiff_make(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    cm_writer_spec_t spec;
    cm_writer_spec_like(cm_image_info(img), COMPRESSION_LZW, &spec);
    assert_null(spec.tags_from);
    copy_image_to(img, bare, &spec); /* without tags_from: none of them */
    spec.tags_from = img;
    copy_image_to(img, out, &spec);
    cm_image_close(img);

    uint16_t unused;
    assert_false(ifd_has_tag(bare, TAG_GEO_KEYS, &unused));
    assert_false(ifd_has_tag(bare, TAG_GDAL_NODATA, &unused));
    check_geotags(out, "-9999");
    check_copy(out, &l, &spec, 0);
    assert_int_equal(cm_image_open(out, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_true(in->georeferenced);
    assert_true(in->has_nodata);
    assert_true(in->nodata == -9999.0);
    cm_image_close(img);
}

static void test_label_output_writes_its_own_nodata_instead_of_the_input_s(void **state)
{
    (void)state;
    fx_tiff_t l = geo_layout();
    char path[FX_PATH_MAX];
    fx_path(path, "geo-labels-in.tif");
    fx_tiff_make(path, &l, pattern);
    static const struct {
        int bits;
        uint32_t masked;
        const char *text;
    } cases[] = {{8, 255, "255"}, {16, 65535, "65535"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[FX_PATH_MAX], name[64];
        snprintf(name, sizeof name, "geo-labels-%d.tif", cases[i].bits);
        fx_path(out, name);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_image_t *img = NULL;
        assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
        cm_writer_spec_t spec, labels;
        cm_writer_spec_like(cm_image_info(img), COMPRESSION_ADOBE_DEFLATE, &spec);
        spec.tags_from = img;
        cm_writer_spec_labels(&spec, cases[i].bits, cases[i].masked, &labels);
        assert_ptr_equal(labels.tags_from, img);
        cm_writer_t *wr = NULL;
        int rc = cm_writer_open(out, &labels, &wr, &ctx);
        if (rc) fail_msg("%s", ctx.msg);
        put_pattern(wr, &labels);
        assert_int_equal(cm_writer_commit(wr, &ctx), 0);
        cm_image_close(img);

        check_geotags(out, cases[i].text);
        assert_int_equal(cm_image_open(out, 1, &img, &ctx), 0);
        const cm_image_info_t *in = cm_image_info(img);
        assert_int_equal(in->bands, 1);
        assert_int_equal(in->stype, cases[i].bits == 8 ? CM_U8 : CM_U16);
        assert_true(in->georeferenced);
        assert_true(in->has_nodata);
        assert_true(in->nodata == cases[i].masked);
        check_all_chunks(img, 0, pattern, 0);
        cm_image_close(img);
    }
}

/* ---- palette output ----------------------------------------------------------------------- */

/* A 16-bit colour map using all of its entries' bits. */
static uint16_t wide_map[3 * 256];

static void make_wide_map(void)
{
    for (int i = 0; i < 256; i++) {
        wide_map[i] = (uint16_t)(i * 256 + (i ^ 0x5a));
        wide_map[256 + i] = (uint16_t)(65535 - i * 211);
        wide_map[512 + i] = (uint16_t)((i * 40503u) & 0xffff);
    }
}

/* Writes the pattern's band 0 as indices of a palette output made from a 4-band image spec. */
static void write_palette(const char *out, const uint16_t *colormap, uint32_t masked)
{
    cm_writer_spec_t img = direct_spec(4), spec;
    cm_writer_spec_palette(&img, colormap, masked, &spec);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    int rc = cm_writer_open(out, &spec, &wr, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
}

/* Opens a palette output, checks it reads as the colours of its indices, of type want. */
static void check_palette_back(const char *out, const uint16_t *colormap, cm_stype_t want,
                               bool has_nodata)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(out, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_true(in->palette);
    assert_int_equal(in->photometric, PHOTOMETRIC_PALETTE);
    assert_int_equal(in->bands, 3);
    assert_int_equal(in->stype, want);
    assert_int_equal(in->has_nodata, has_nodata);
    if (has_nodata) assert_true(in->nodata == 255.0);
    check_chunks(img, 0, &(truth_t){.fn = pattern, .colormap = colormap});
    cm_image_close(img);
}

static void test_palette_output_has_its_color_map_and_gdal_nodata_255(void **state)
{
    (void)state;
    make_wide_map();
    char out[FX_PATH_MAX];
    fx_path(out, "palette-out.tif");
    write_palette(out, wide_map, 255);

    plain_t p;
    read_plain(out, &p);
    assert_int_equal(p.photometric, PHOTOMETRIC_PALETTE);
    assert_int_equal(p.spp, 1);
    assert_int_equal(p.bits, 8);
    assert_int_equal(p.format, SAMPLEFORMAT_UINT);
    assert_int_equal(p.n_extra, 0);
    char where[200];
    if (plain_mismatches(&p, &(truth_t){.fn = pattern}, where, sizeof where))
        fail_msg("%s: index %s", out, where);
    free(p.pixels);

    TIFF *t = TIFFOpen(out, "r");
    assert_non_null(t);
    const uint16_t *r = NULL, *g = NULL, *b = NULL;
    assert_true(TIFFGetField(t, TIFFTAG_COLORMAP, &r, &g, &b));
    assert_memory_equal(r, wide_map, 256 * sizeof(uint16_t));
    assert_memory_equal(g, wide_map + 256, 256 * sizeof(uint16_t));
    assert_memory_equal(b, wide_map + 512, 256 * sizeof(uint16_t));
    const char *text = NULL;
    assert_true(TIFFGetField(t, TAG_GDAL_NODATA, &text));
    assert_string_equal(text, "255");
    TIFFClose(t);
    check_predictor(out, COMPRESSION_ADOBE_DEFLATE, false, CM_U8);
    check_palette_back(out, wide_map, CM_U16, true);
}

static void test_palette_output_without_a_mask_below_256_has_no_nodata(void **state)
{
    (void)state;
    make_colormaps();
    char out[FX_PATH_MAX];
    fx_path(out, "palette-unmasked.tif");
    write_palette(out, eight_bit, 256);
    uint16_t unused;
    assert_false(ifd_has_tag(out, TAG_GDAL_NODATA, &unused));
    check_palette_back(out, eight_bit, CM_U8, false);
}

/* ---- specs ------------------------------------------------------------------------------ */

static void test_chunks_of_several_tiles_read_exactly(void **state)
{
    (void)state;
    /* 16x16 tiles grouped into 64x64 chunks: every chunk, clipped ones included, is exact,
     * and the output tiles follow the chunks. */
    for (int spp = 1; spp <= 4; spp++) {
        fx_tiff_t l = layout_for(spp, COMPRESSION_ADOBE_DEFLATE, spp == 2);
        l.tile_w = l.tile_h = 16;
        char path[FX_PATH_MAX];
        fx_path(path, "grouped.tif");
        fx_tiff_make(path, &l, pattern);
        cm_image_t *img = NULL;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(cm_image_open(path, 2, &img, &ctx), 0);
        assert_int_equal(cm_image_set_chunk_side(img, 64, &ctx), 0);
        const cm_image_info_t *in = cm_image_info(img);
        assert_int_equal(in->grid.chunk_w, 64);
        assert_int_equal(in->grid.chunk_h, 64);
        assert_int_equal(cm_grid_count(&in->grid), 2 * 2);
        assert_int_equal(in->out_tile_w, 64);
        assert_int_equal(in->out_tile_h, 64);
        check_all_chunks(img, 0, pattern, 0);
        check_all_chunks(img, 1, pattern, 0);
        cm_image_close(img);
    }
}

static void test_tiles_that_do_not_divide_the_side_are_kept(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_LZW, false);
    l.tile_w = 48;
    l.tile_h = 32;
    char path[FX_PATH_MAX];
    fx_path(path, "tiles48.tif");
    fx_tiff_make(path, &l, pattern);
    cm_image_t *img = NULL;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    assert_int_equal(cm_image_set_chunk_side(img, 512, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->grid.chunk_w, 48);
    assert_int_equal(in->grid.chunk_h, 32);
    assert_int_equal(in->out_tile_w, 48);
    assert_int_equal(in->out_tile_h, 32);
    check_all_chunks(img, 0, pattern, 0);
    cm_image_close(img);
}

static void test_bands_of_strips_follow_the_side(void **state)
{
    (void)state;
    fx_tiff_t l = layout_for(3, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 0;
    l.rows_per_strip = 1;
    char path[FX_PATH_MAX];
    fx_path(path, "strips1.tif");
    fx_tiff_make(path, &l, pattern);
    cm_image_t *img = NULL;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    assert_int_equal(cm_image_set_chunk_side(img, 32, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->grid.chunk_w, 100);
    assert_int_equal(in->grid.chunk_h, 32);
    assert_int_equal(in->out_tile_w, 32);
    assert_int_equal(in->out_tile_h, 32);
    check_all_chunks(img, 0, pattern, 0);
    assert_int_equal(cm_image_set_chunk_side(img, 20, &ctx), CM_EUSAGE);
    cm_image_close(img);
}

static cm_image_info_t info_of(int64_t width, int64_t height, int bands, int alpha, bool tiled,
                               int64_t chunk_w, int64_t chunk_h, int photometric)
{
    cm_image_info_t in = {.width = width,
                          .height = height,
                          .bands = bands,
                          .alpha_band = alpha,
                          .n_extra = alpha >= 0 ? 1 : 0,
                          .extra = {EXTRASAMPLE_UNASSALPHA},
                          .stype = CM_U8,
                          .bits = 8,
                          .photometric = photometric,
                          .tiled = tiled};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(
        cm_grid_init(&in.grid, width, height, chunk_w, chunk_h, bands, alpha, CM_U8, &ctx), 0);
    /* as cm_image_open sets them: the chunks, or 512-wide rows of tiles for bands of strips */
    in.out_tile_w = tiled ? chunk_w : (width + 15) / 16 * 16 < 512 ? (width + 15) / 16 * 16 : 512;
    in.out_tile_h = chunk_h;
    return in;
}

static void test_spec_like_keeps_size_bands_alpha_and_tiles_of_tiled_input(void **state)
{
    (void)state;
    cm_image_info_t in = info_of(1000, 700, 4, 3, true, 256, 128, PHOTOMETRIC_RGB);
    cm_writer_spec_t s;
    memset(&s, 0x5a, sizeof s);
    cm_writer_spec_like(&in, COMPRESSION_ZSTD, &s);
    assert_int_equal(s.width, 1000);
    assert_int_equal(s.height, 700);
    assert_int_equal(s.bands, 4);
    assert_int_equal(s.n_extra, 1);
    assert_int_equal(s.extra[0], EXTRASAMPLE_UNASSALPHA);
    assert_int_equal(s.stype, CM_U8);
    assert_true(s.predictor);
    assert_int_equal(s.photometric, PHOTOMETRIC_RGB);
    assert_int_equal(s.compression, COMPRESSION_ZSTD);
    assert_int_equal(s.tile_w, 256);
    assert_int_equal(s.tile_h, 128);
    assert_false(s.bigtiff);
    assert_null(s.description);
}

static void test_spec_like_turns_bands_of_strips_into_rows_of_tiles(void **state)
{
    (void)state;
    cm_writer_spec_t s;
    cm_image_info_t wide = info_of(5000, 3000, 1, -1, false, 5000, 480, PHOTOMETRIC_MINISWHITE);
    cm_writer_spec_like(&wide, COMPRESSION_LZW, &s);
    assert_int_equal(s.tile_w, 512);
    assert_int_equal(s.tile_h, 480);
    assert_int_equal(s.photometric, PHOTOMETRIC_MINISWHITE);
    cm_image_info_t narrow = info_of(37, 600, 2, 1, false, 37, 448, PHOTOMETRIC_MINISBLACK);
    cm_writer_spec_like(&narrow, COMPRESSION_NONE, &s);
    assert_int_equal(s.tile_w, 48);
    assert_int_equal(s.tile_h, 448);
    assert_int_equal(s.n_extra, 1);
}

static void test_spec_like_writes_ycbcr_input_as_rgb(void **state)
{
    (void)state;
    cm_image_info_t in = info_of(100, 70, 3, -1, true, 32, 32, PHOTOMETRIC_YCBCR);
    cm_writer_spec_t s;
    cm_writer_spec_like(&in, COMPRESSION_JPEG, &s);
    assert_int_equal(s.photometric, PHOTOMETRIC_RGB);
    assert_int_equal(s.compression, COMPRESSION_JPEG);
}

static void test_spec_labels_is_one_grey_band_and_never_jpeg(void **state)
{
    (void)state;
    cm_writer_spec_t img = direct_spec(4), s;
    img.compression = COMPRESSION_JPEG;
    img.bigtiff = true;
    for (int bits = 8; bits <= 16; bits += 8) {
        cm_writer_spec_labels(&img, bits, bits == 8 ? 255 : 65535, &s);
        assert_int_equal(s.width, img.width);
        assert_int_equal(s.height, img.height);
        assert_int_equal(s.bands, 1);
        assert_int_equal(s.n_extra, 0);
        assert_int_equal(s.stype, bits == 8 ? CM_U8 : CM_U16);
        assert_true(s.set_nodata);
        assert_true(s.nodata == (bits == 8 ? 255 : 65535));
        assert_int_equal(s.photometric, PHOTOMETRIC_MINISBLACK);
        assert_int_equal(s.compression, COMPRESSION_ADOBE_DEFLATE);
        assert_int_equal(s.tile_w, img.tile_w);
        assert_int_equal(s.tile_h, img.tile_h);
        assert_true(s.bigtiff);
    }
    img.compression = COMPRESSION_LZW;
    cm_writer_spec_labels(&img, 8, 255, &s);
    assert_int_equal(s.compression, COMPRESSION_LZW);
}

static void test_spec_like_keeps_the_sample_type_and_extra_samples(void **state)
{
    (void)state;
    cm_image_info_t in = info_of(100, 70, 6, 5, true, 32, 32, PHOTOMETRIC_RGB);
    in.stype = CM_I16;
    in.bits = 16;
    in.n_extra = 3;
    memcpy(in.extra, two_then_alpha, sizeof two_then_alpha);
    in.planar_separate = true;
    in.georeferenced = in.has_nodata = true;
    cm_writer_spec_t s;
    memset(&s, 0x5a, sizeof s);
    cm_writer_spec_like(&in, COMPRESSION_LZW, &s);
    assert_int_equal(s.stype, CM_I16);
    assert_int_equal(s.bands, 6);
    assert_int_equal(s.n_extra, 3);
    assert_memory_equal(s.extra, two_then_alpha, sizeof two_then_alpha);
    assert_true(s.predictor);
    assert_null(s.colormap);
    assert_null(s.tags_from);
    assert_false(s.set_nodata);
}

static void test_spec_like_writes_palette_input_as_rgb_without_extra_samples(void **state)
{
    (void)state;
    cm_image_info_t in = info_of(100, 70, 3, -1, true, 32, 32, PHOTOMETRIC_PALETTE);
    in.palette = true;
    in.stype = CM_U16;
    cm_writer_spec_t s;
    cm_writer_spec_like(&in, COMPRESSION_ADOBE_DEFLATE, &s);
    assert_int_equal(s.photometric, PHOTOMETRIC_RGB);
    assert_int_equal(s.bands, 3);
    assert_int_equal(s.stype, CM_U16);
    assert_int_equal(s.n_extra, 0);
    assert_null(s.colormap);
}

static void test_spec_palette_is_eight_bit_indices_with_the_map_and_no_predictor(void **state)
{
    (void)state;
    make_colormaps();
    cm_writer_spec_t img = direct_spec(4), s;
    img.stype = CM_U16;
    img.compression = COMPRESSION_JPEG;
    img.description = "k=4";
    cm_writer_spec_palette(&img, eight_bit, 255, &s);
    assert_int_equal(s.photometric, PHOTOMETRIC_PALETTE);
    assert_int_equal(s.bands, 1);
    assert_int_equal(s.n_extra, 0);
    assert_int_equal(s.stype, CM_U8);
    assert_ptr_equal(s.colormap, eight_bit);
    assert_false(s.predictor);
    assert_true(s.set_nodata);
    assert_true(s.nodata == 255);
    assert_int_equal(s.compression, COMPRESSION_ADOBE_DEFLATE);
    assert_int_equal(s.tile_w, img.tile_w);
    assert_int_equal(s.tile_h, img.tile_h);
    assert_string_equal(s.description, "k=4");
    cm_writer_spec_palette(&img, eight_bit, 256, &s);
    assert_false(s.set_nodata);
}

static void test_needs_bigtiff_only_past_four_gib(void **state)
{
    (void)state;
    cm_writer_spec_t s = {.width = 40000,
                          .height = 40000,
                          .bands = 3,
                          .stype = CM_U8,
                          .photometric = PHOTOMETRIC_RGB,
                          .compression = COMPRESSION_ADOBE_DEFLATE,
                          .tile_w = 256,
                          .tile_h = 256};
    assert_true(cm_writer_needs_bigtiff(&s));
    s.width = s.height = 1000;
    assert_false(cm_writer_needs_bigtiff(&s));
    cm_writer_spec_t labels;
    s.width = s.height = 40000;
    cm_writer_spec_labels(&s, 8, 255, &labels); /* 1.6 GB */
    assert_false(cm_writer_needs_bigtiff(&labels));
}

/* ---- files and names -------------------------------------------------------------------- */

static void test_write_atomic_writes_exactly_the_bytes_and_leaves_no_part_file(void **state)
{
    (void)state;
    char path[FX_PATH_MAX];
    fx_path(path, "model.json");
    const char first[] = "{\"k\": 4}\n", second[] = "{\"k\": 16, \"seed\": 7}\n";
    for (int round = 0; round < 2; round++) { /* the second replaces the first */
        const char *data = round ? second : first;
        size_t len = strlen(data);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(cm_file_write_atomic(path, data, len, &ctx), 0);
        char back[64] = {0};
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        assert_int_equal(fread(back, 1, sizeof back, f), len);
        fclose(f);
        assert_memory_equal(back, data, len);
        assert_int_equal(count_part_files(fx_dir, "model.json"), 0);
    }
}

static void test_write_atomic_into_a_missing_directory_is_an_io_error(void **state)
{
    (void)state;
    char path[FX_PATH_MAX];
    fx_path(path, "missing/model.json");
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_file_write_atomic(path, "x", 1, &ctx), CM_EIO);
    assert_int_equal(ctx.code, CM_EIO);
    if (!strstr(ctx.msg, path)) fail_msg("message does not name %s: %s", path, ctx.msg);
    assert_false(fx_exists(path));
}

static void test_compression_names_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int code;
    } names[] = {{"none", COMPRESSION_NONE},
                 {"lzw", COMPRESSION_LZW},
                 {"deflate", COMPRESSION_ADOBE_DEFLATE},
                 {"zstd", COMPRESSION_ZSTD},
                 {"jpeg", COMPRESSION_JPEG},
                 {"packbits", COMPRESSION_PACKBITS}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        int code = -1;
        assert_int_equal(cm_compression_parse(names[i].name, &code), 0);
        assert_int_equal(code, names[i].code);
        assert_string_equal(cm_compression_name(code), names[i].name);
        assert_int_equal(cm_compression_lossy(code), code == COMPRESSION_JPEG);
    }
    assert_string_equal(cm_compression_name(COMPRESSION_DEFLATE), "deflate");
    assert_string_equal(cm_compression_name(COMPRESSION_CCITTFAX4), "unknown");
}

static void test_unknown_compression_name_is_a_usage_error(void **state)
{
    (void)state;
    int code = 12345;
    assert_int_equal(cm_compression_parse("foo", &code), CM_EUSAGE);
    assert_int_equal(code, 12345);
    assert_int_equal(cm_compression_parse("", &code), CM_EUSAGE);
}

int main(void)
{
    TIFFSetWarningHandler(NULL); /* the generator writes nonstandard tiles on purpose */
    cm__tags_register();         /* before any handle: the generator writes GeoTIFF and GDAL tags */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiled_classic_32px_tiles_read_exactly_with_clipped_edges),
        cmocka_unit_test(test_images_read_from_memory_read_as_from_their_file),
        cmocka_unit_test(test_tiled_bigtiff_16px_tiles_read_exactly_with_clipped_edges),
        cmocka_unit_test(test_tile_larger_than_the_image_reads_exactly),
        cmocka_unit_test(test_associated_alpha_is_reported_as_the_alpha_band),
        cmocka_unit_test(test_striped_reads_are_exact_in_bands_of_whole_strips),
        cmocka_unit_test(test_striped_image_of_several_bands_has_several_chunks),
        cmocka_unit_test(test_single_strip_image_reads_exactly),
        cmocka_unit_test(
            test_short_striped_image_is_read_in_a_chunk_no_taller_than_it_rounded_to_16),
        cmocka_unit_test(test_four_workers_read_every_tile_concurrently_and_exactly),
        cmocka_unit_test(test_four_workers_read_every_band_of_strips_concurrently_and_exactly),
        cmocka_unit_test(test_read_chunk_rejects_a_worker_index_out_of_range),
        cmocka_unit_test(test_open_rejects_zero_workers),
        cmocka_unit_test(test_jpeg_ycbcr_opens_as_three_bands_and_decodes_close_to_the_original),
        cmocka_unit_test(test_text_file_is_bad_input_naming_the_file),
        cmocka_unit_test(test_empty_file_is_bad_input_naming_the_file),
        cmocka_unit_test(test_missing_file_is_bad_input_naming_the_file),
        cmocka_unit_test(test_truncated_tiff_is_bad_input_naming_the_file),
        cmocka_unit_test(test_corrupt_tile_is_bad_input_naming_the_file_and_the_tile),
        cmocka_unit_test(test_sixteen_bit_unsigned_samples_read_exactly),
        cmocka_unit_test(test_sixteen_bit_signed_samples_read_exactly_negatives_included),
        cmocka_unit_test(test_float32_samples_read_exactly),
        cmocka_unit_test(test_planar_separate_images_read_interleaved_exactly),
        cmocka_unit_test(test_planar_separate_tiles_grouped_into_chunks_read_exactly),
        cmocka_unit_test(test_typed_tiles_grouped_into_chunks_read_exactly),
        cmocka_unit_test(test_four_workers_read_planar_separate_tiles_and_strips_concurrently),
        cmocka_unit_test(test_extra_samples_are_listed_and_the_first_alpha_among_them_found),
        cmocka_unit_test(test_sixty_four_samples_read_exactly_interleaved_or_in_planes),
        cmocka_unit_test(test_sixty_five_samples_are_unsupported_input),
        cmocka_unit_test(test_palette_with_an_eight_bit_map_reads_as_uint8_rgb_exactly),
        cmocka_unit_test(test_palette_with_a_map_entry_not_a_multiple_of_257_reads_as_uint16_rgb),
        cmocka_unit_test(test_palette_tiles_grouped_into_chunks_read_exactly),
        cmocka_unit_test(test_one_bit_images_are_unsupported_input_naming_the_depth),
        cmocka_unit_test(test_two_bit_images_are_unsupported_input_naming_the_depth),
        cmocka_unit_test(test_four_bit_images_are_unsupported_input_naming_the_depth),
        cmocka_unit_test(test_uncompressed_ycbcr_is_unsupported_input),
        cmocka_unit_test(test_tiles_not_a_multiple_of_16_are_unsupported_input),
        cmocka_unit_test(test_writer_copies_tiled_images_exactly_in_every_lossless_compression),
        cmocka_unit_test(test_writer_deflates_tiles_to_the_bytes_libtiff_writes),
        cmocka_unit_test(test_writer_copies_striped_images_exactly_as_tiles),
        cmocka_unit_test(test_writer_copies_wide_striped_image_in_512_wide_tiles),
        cmocka_unit_test(test_writer_jpeg_output_of_ycbcr_input_is_rgb_close_to_the_original),
        cmocka_unit_test(test_writer_bigtiff_output_is_bigtiff),
        cmocka_unit_test(test_destination_appears_only_at_commit_and_part_file_meanwhile),
        cmocka_unit_test(
            test_tiles_placed_without_bytes_then_written_at_their_offsets_make_the_same_file),
        cmocka_unit_test(test_putting_tiles_without_bytes_is_an_internal_error),
        cmocka_unit_test(test_committed_output_has_the_usual_permissions),
        cmocka_unit_test(test_abort_leaves_neither_destination_nor_part_file),
        cmocka_unit_test(test_writer_open_in_a_missing_directory_is_an_io_error_naming_the_path),
        cmocka_unit_test(test_commit_onto_a_directory_fails_with_eio_and_removes_the_part_file),
        cmocka_unit_test(test_writer_open_rejects_tiles_not_a_multiple_of_16),
        cmocka_unit_test(test_put_off_the_tile_grid_is_an_internal_error),
        cmocka_unit_test(test_description_is_written),
        cmocka_unit_test(test_eight_bit_labels_are_written_exactly),
        cmocka_unit_test(test_sixteen_bit_labels_are_written_exactly),
        cmocka_unit_test(test_writer_round_trips_uint16_exactly_with_extra_samples_and_predictor),
        cmocka_unit_test(test_writer_round_trips_int16_exactly_with_extra_samples_and_predictor),
        cmocka_unit_test(test_writer_round_trips_float32_exactly_with_extra_samples_and_predictor),
        cmocka_unit_test(test_writer_copies_palette_input_as_the_rgb_of_its_colors),
        cmocka_unit_test(test_writer_writes_extra_samples_as_given),
        cmocka_unit_test(test_writer_refuses_jpeg_of_samples_wider_than_8_bits_leaving_no_file),
        cmocka_unit_test(test_geotiff_input_with_gdal_nodata_opens_georeferenced_with_its_nodata),
        cmocka_unit_test(test_writer_copies_georeferencing_nodata_and_resolution_from_tags_from),
        cmocka_unit_test(test_label_output_writes_its_own_nodata_instead_of_the_input_s),
        cmocka_unit_test(test_palette_output_has_its_color_map_and_gdal_nodata_255),
        cmocka_unit_test(test_palette_output_without_a_mask_below_256_has_no_nodata),
        cmocka_unit_test(test_chunks_of_several_tiles_read_exactly),
        cmocka_unit_test(test_tiles_that_do_not_divide_the_side_are_kept),
        cmocka_unit_test(test_bands_of_strips_follow_the_side),
        cmocka_unit_test(test_spec_like_keeps_size_bands_alpha_and_tiles_of_tiled_input),
        cmocka_unit_test(test_spec_like_turns_bands_of_strips_into_rows_of_tiles),
        cmocka_unit_test(test_spec_like_writes_ycbcr_input_as_rgb),
        cmocka_unit_test(test_spec_labels_is_one_grey_band_and_never_jpeg),
        cmocka_unit_test(test_spec_like_keeps_the_sample_type_and_extra_samples),
        cmocka_unit_test(test_spec_like_writes_palette_input_as_rgb_without_extra_samples),
        cmocka_unit_test(test_spec_palette_is_eight_bit_indices_with_the_map_and_no_predictor),
        cmocka_unit_test(test_needs_bigtiff_only_past_four_gib),
        cmocka_unit_test(test_write_atomic_writes_exactly_the_bytes_and_leaves_no_part_file),
        cmocka_unit_test(test_write_atomic_into_a_missing_directory_is_an_io_error),
        cmocka_unit_test(test_compression_names_round_trip),
        cmocka_unit_test(test_unknown_compression_name_is_a_usage_error),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
