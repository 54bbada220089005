/* Unit tests of io: reading generated TIFFs of every supported layout and codec, errors that
 * name the file, the atomic tiled writer and its specs, atomic files and compression names. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
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

/* ---- scratch directory ------------------------------------------------------------------ */

static char tmp_dir[PATH_MAX / 2];

static void tmp_path(char *out, const char *name)
{
    snprintf(out, PATH_MAX, "%s/%s", tmp_dir, name);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static int make_tmp_dir(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_io-XXXXXX", base);
    if (!mkdtemp(tmp_dir)) {
        fprintf(stderr, "cannot create %s: %s\n", tmp_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_tmp_dir(void **state)
{
    (void)state;
    return nftw(tmp_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
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

static void write_text_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* ---- generated test images -------------------------------------------------------------- */

typedef uint8_t (*value_fn)(int64_t x, int64_t y, int band);

/* Exact pixels: every sample differs from its neighbours in x, y and band. */
static uint8_t pattern(int64_t x, int64_t y, int band)
{
    return (uint8_t)(x * 7 + y * 13 + band * 61 + ((x * y) >> 3));
}

/* Smooth pixels, for JPEG. */
static uint8_t smooth(int64_t x, int64_t y, int band)
{
    switch (band) {
    case 0:
        return (uint8_t)(40 + x + y);
    case 1:
        return (uint8_t)(200 - x);
    default:
        return (uint8_t)(60 + 2 * y);
    }
}

typedef struct layout {
    uint32_t width, height;
    uint16_t spp;
    uint16_t photometric;
    uint16_t compression;
    int extra;               /* EXTRASAMPLE_* of the last sample, or -1 for none */
    uint32_t tile_w, tile_h; /* 0 for strips */
    uint32_t rows_per_strip;
    bool bigtiff;
    uint16_t bits;   /* 0 for 8 */
    uint16_t planar; /* 0 for contiguous */
} layout_t;

static int layout_alpha(const layout_t *l)
{
    return l->extra == EXTRASAMPLE_ASSOCALPHA || l->extra == EXTRASAMPLE_UNASSALPHA ? l->spp - 1
                                                                                    : -1;
}

static uint16_t photometric_for(int spp)
{
    return spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
}

/* Fills a w x h rectangle at (x0, y0) of an image of the given size, rows of stride_px pixels,
 * with fn inside the image and its edge pixels repeated outside (as JPEG likes it). */
static void fill_rect(uint8_t *buf, int64_t stride_px, int64_t x0, int64_t y0, int64_t w, int64_t h,
                      const layout_t *l, value_fn fn)
{
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++)
            for (int b = 0; b < l->spp; b++) {
                int64_t x = x0 + c < l->width ? x0 + c : l->width - 1;
                int64_t y = y0 + r < l->height ? y0 + r : l->height - 1;
                buf[(r * stride_px + c) * l->spp + b] = fn(x, y, b);
            }
}

/* Writes a TIFF of layout l with libtiff alone. 8-bit contiguous images get fn's pixels, the
 * others (which the reader rejects) zeros. */
static bool write_tiff(const char *path, const layout_t *l, value_fn fn)
{
    TIFF *t = TIFFOpen(path, l->bigtiff ? "w8" : "w");
    if (!t) return false;
    uint16_t bits = l->bits ? l->bits : 8, planar = l->planar ? l->planar : PLANARCONFIG_CONTIG;
    bool ok = TIFFSetField(t, TIFFTAG_IMAGEWIDTH, l->width) &&
              TIFFSetField(t, TIFFTAG_IMAGELENGTH, l->height) &&
              TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, l->spp) &&
              TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bits) &&
              TIFFSetField(t, TIFFTAG_PLANARCONFIG, planar) &&
              TIFFSetField(t, TIFFTAG_PHOTOMETRIC, l->photometric) &&
              TIFFSetField(t, TIFFTAG_COMPRESSION, l->compression);
    if (ok && l->extra >= 0) {
        uint16_t extra = (uint16_t)l->extra;
        ok = TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &extra);
    }
    if (ok && l->tile_w)
        ok = TIFFSetField(t, TIFFTAG_TILEWIDTH, l->tile_w) &&
             TIFFSetField(t, TIFFTAG_TILELENGTH, l->tile_h);
    else if (ok)
        ok = TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, l->rows_per_strip);
    if (ok && l->photometric == PHOTOMETRIC_PALETTE) {
        static uint16_t red[256], green[256], blue[256];
        for (int i = 0; i < 256; i++)
            red[i] = green[i] = blue[i] = (uint16_t)(i * 257);
        ok = TIFFSetField(t, TIFFTAG_COLORMAP, red, green, blue);
    }
    if (ok && l->compression == COMPRESSION_JPEG) {
        ok = TIFFSetField(t, TIFFTAG_JPEGQUALITY, 95);
        if (ok && l->photometric == PHOTOMETRIC_YCBCR)
            ok = TIFFSetField(t, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    }
    if (ok && l->photometric == PHOTOMETRIC_YCBCR && l->compression != COMPRESSION_JPEG)
        ok = TIFFSetField(t, TIFFTAG_YCBCRSUBSAMPLING, 1, 1);

    bool generic = bits != 8 || planar != PLANARCONFIG_CONTIG;
    if (ok && generic) { /* zeros, strile by strile, each of its full size */
        bool tiled = TIFFIsTiled(t);
        tmsize_t size = tiled ? TIFFTileSize(t) : TIFFStripSize(t);
        uint8_t *zeros = calloc(1, (size_t)size);
        ok = zeros != NULL;
        for (uint32_t k = 0; ok && k < TIFFNumberOfStrips(t); k++)
            ok = (tiled ? TIFFWriteEncodedTile(t, k, zeros, size)
                        : TIFFWriteEncodedStrip(t, k, zeros, size)) == size;
        free(zeros);
    } else if (ok && l->tile_w) {
        size_t size = (size_t)l->tile_w * l->tile_h * l->spp;
        uint8_t *buf = malloc(size);
        ok = buf != NULL;
        for (uint32_t y = 0; ok && y < l->height; y += l->tile_h)
            for (uint32_t x = 0; ok && x < l->width; x += l->tile_w) {
                fill_rect(buf, l->tile_w, x, y, l->tile_w, l->tile_h, l, fn);
                ok = TIFFWriteEncodedTile(t, TIFFComputeTile(t, x, y, 0, 0), buf, (tmsize_t)size) ==
                     (tmsize_t)size;
            }
        free(buf);
    } else if (ok) {
        uint32_t rps = l->rows_per_strip < l->height ? l->rows_per_strip : l->height;
        uint8_t *buf = malloc((size_t)l->width * rps * l->spp);
        ok = buf != NULL;
        for (uint32_t y = 0, s = 0; ok && y < l->height; y += rps, s++) {
            uint32_t rows = l->height - y < rps ? l->height - y : rps;
            fill_rect(buf, l->width, 0, y, l->width, rows, l, fn);
            tmsize_t size = (tmsize_t)l->width * rows * l->spp;
            ok = TIFFWriteEncodedStrip(t, s, buf, size) == size;
        }
        free(buf);
    }
    TIFFClose(t);
    return ok;
}

static void make_tiff(const char *path, const layout_t *l, value_fn fn)
{
    if (!write_tiff(path, l, fn)) fail_msg("cannot generate %s", path);
}

/* ---- checking pixels -------------------------------------------------------------------- */

/* Number of samples of chunk idx (packed at w * bands) further than tol from fn; the first
 * one is described in where. Thread-safe. */
static int64_t chunk_mismatches(const cm_grid_t *g, int64_t idx, const uint8_t *buf, value_fn fn,
                                int tol, char *where, size_t where_size)
{
    int64_t x0, y0, w, h, bad = 0;
    cm_grid_rect(g, idx, &x0, &y0, &w, &h);
    for (int64_t r = 0; r < h; r++)
        for (int64_t c = 0; c < w; c++)
            for (int b = 0; b < g->bands; b++) {
                int got = buf[(r * w + c) * g->bands + b], want = fn(x0 + c, y0 + r, b);
                if (abs(got - want) <= tol) continue;
                if (!bad++)
                    snprintf(where, where_size,
                             "chunk %lld: pixel (%lld,%lld) band %d is %d, "
                             "expected %d",
                             (long long)idx, (long long)(x0 + c), (long long)(y0 + r), b, got,
                             want);
            }
    return bad;
}

/* Reads every chunk of an open image on one worker and checks it against fn. */
static void check_all_chunks(cm_image_t *img, int worker, value_fn fn, int tol)
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
        char where[160];
        if (chunk_mismatches(&in->grid, idx, buf, fn, tol, where, sizeof where))
            fail_msg("%s: %s", cm_image_path(img), where);
        int64_t x, y, w, h;
        cm_grid_rect(&in->grid, idx, &x, &y, &w, &h);
        covered += w * h;
    }
    assert_int_equal(covered, in->width * in->height);
    free(buf);
}

/* Opens path, checks its info against the layout it was written with, reads every chunk. */
static void check_image(const char *path, const layout_t *l, value_fn fn)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm_image_open(path, 1, &img, &ctx);
    if (rc) fail_msg("%s: open: %d %s", path, rc, ctx.msg);
    const cm_image_info_t *in = cm_image_info(img);
    assert_string_equal(cm_image_path(img), path);
    assert_int_equal(in->width, l->width);
    assert_int_equal(in->height, l->height);
    assert_int_equal(in->bands, l->spp);
    assert_int_equal(in->alpha_band, layout_alpha(l));
    assert_int_equal(in->bits, 8);
    assert_string_equal(in->sample_type, "uint8");
    assert_int_equal(in->photometric, l->photometric);
    assert_int_equal(in->compression, l->compression);
    assert_int_equal(in->tiled, l->tile_w != 0);
    assert_int_equal(in->bigtiff, l->bigtiff);
    assert_int_equal(in->grid.width, l->width);
    assert_int_equal(in->grid.height, l->height);
    assert_int_equal(in->grid.bands, l->spp);
    assert_int_equal(in->grid.alpha_band, layout_alpha(l));
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
        assert_int_equal(in->grid.chunk_h % 16, 0);  /* a row of output tiles */
        if (in->grid.chunk_h < l->height) /* else one chunk holds every strip */
            assert_int_equal(in->grid.chunk_h % rps, 0); /* whole strips */
        assert_true(in->grid.chunk_h < l->height + 16);  /* never far taller than the image */
    }
    check_all_chunks(img, 0, fn, 0);
    cm_image_close(img);
}

static const uint16_t lossless[] = {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE,
                                    COMPRESSION_ZSTD, COMPRESSION_PACKBITS};
enum { N_LOSSLESS = sizeof lossless / sizeof lossless[0] };

static layout_t layout_for(int spp, uint16_t compression, bool bigtiff)
{
    return (layout_t){.width = 100,
                      .height = 70,
                      .spp = (uint16_t)spp,
                      .photometric = photometric_for(spp),
                      .compression = compression,
                      .extra = spp == 2 || spp == 4 ? EXTRASAMPLE_UNASSALPHA : -1,
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
            layout_t l = layout_for(spp, lossless[c], bigtiff);
            l.tile_w = l.tile_h = tile;
            char path[PATH_MAX], name[64];
            snprintf(name, sizeof name, "tiled-%u-%d-%u-%d.tif", tile, spp, lossless[c], bigtiff);
            tmp_path(path, name);
            make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 128;
    char path[PATH_MAX];
    tmp_path(path, "big-tile.tif");
    make_tiff(path, &l, pattern);
    check_image(path, &l, pattern);
}

static void test_associated_alpha_is_reported_as_the_alpha_band(void **state)
{
    (void)state;
    layout_t l = layout_for(2, COMPRESSION_LZW, false);
    l.extra = EXTRASAMPLE_ASSOCALPHA;
    l.tile_w = l.tile_h = 32;
    char path[PATH_MAX];
    tmp_path(path, "assoc-alpha.tif");
    make_tiff(path, &l, pattern);
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
                layout_t l = layout_for(spp, lossless[c], n % 2 == 1);
                l.width = 37;
                l.height = 600;
                l.rows_per_strip = rps_list[r];
                char path[PATH_MAX], name[64];
                snprintf(name, sizeof name, "strips-%d-%u-%u.tif", spp, lossless[c], rps_list[r]);
                tmp_path(path, name);
                make_tiff(path, &l, pattern);
                check_image(path, &l, pattern);
            }
}

static void test_striped_image_of_several_bands_has_several_chunks(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = 37;
    l.height = 600;
    l.rows_per_strip = 3;
    char path[PATH_MAX];
    tmp_path(path, "strips-bands.tif");
    make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(4, COMPRESSION_ADOBE_DEFLATE, false);
    l.rows_per_strip = 70;
    char path[PATH_MAX];
    tmp_path(path, "single-strip.tif");
    make_tiff(path, &l, pattern);
    check_image(path, &l, pattern);

    /* RowsPerStrip larger than the image, as many writers leave it, is one strip too. */
    l.rows_per_strip = UINT32_MAX;
    tmp_path(path, "single-strip-max.tif");
    make_tiff(path, &l, pattern);
    check_image(path, &l, pattern);
}

/* Rows of the chunks of a striped image of the given size. */
static int64_t strip_chunk_rows(const char *name, uint32_t width, uint32_t height, uint32_t rps)
{
    layout_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.width = width;
    l.height = height;
    l.rows_per_strip = rps;
    char path[PATH_MAX];
    tmp_path(path, name);
    make_tiff(path, &l, pattern);
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
        char where[160];
        int64_t bad = chunk_mismatches(g, idx, buf, pattern, 0, where, sizeof where);
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
    for (int i = 0; i < N_THREADS; i++)
        pthread_join(th[i], NULL);
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
    layout_t l = layout_for(4, COMPRESSION_ADOBE_DEFLATE, false);
    l.width = 200;
    l.height = 150;
    l.tile_w = l.tile_h = 16;
    char path[PATH_MAX];
    tmp_path(path, "threads-tiled.tif");
    make_tiff(path, &l, pattern);
    read_on_four_threads(path);
}

static void test_four_workers_read_every_band_of_strips_concurrently_and_exactly(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_LZW, true);
    l.width = 64;
    l.height = 2000;
    l.rows_per_strip = 5;
    char path[PATH_MAX];
    tmp_path(path, "threads-strips.tif");
    make_tiff(path, &l, pattern);
    read_on_four_threads(path);
}

static void test_read_chunk_rejects_a_worker_index_out_of_range(void **state)
{
    (void)state;
    layout_t l = layout_for(1, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 32;
    char path[PATH_MAX];
    tmp_path(path, "worker-range.tif");
    make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(1, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 32;
    char path[PATH_MAX];
    tmp_path(path, "zero-workers.tif");
    make_tiff(path, &l, pattern);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 0, &img, &ctx), CM_EUSAGE);
    assert_null(img);
}

/* ---- JPEG ------------------------------------------------------------------------------- */

static void test_jpeg_ycbcr_opens_as_three_bands_and_decodes_close_to_the_original(void **state)
{
    (void)state;
    skip_unless_codec(COMPRESSION_JPEG);
    layout_t l = {.width = 100,
                  .height = 70,
                  .spp = 3,
                  .photometric = PHOTOMETRIC_YCBCR,
                  .compression = COMPRESSION_JPEG,
                  .extra = -1,
                  .tile_w = 32,
                  .tile_h = 32};
    char path[PATH_MAX];
    tmp_path(path, "ycbcr.tif");
    make_tiff(path, &l, smooth);
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
    char path[PATH_MAX];
    tmp_path(path, "notes.txt");
    write_text_file(path, "These are not the pixels you are looking for.\n");
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_empty_file_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[PATH_MAX];
    tmp_path(path, "empty.tif");
    write_text_file(path, "");
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_missing_file_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[PATH_MAX];
    tmp_path(path, "no-such-file.tif");
    expect_failure(path, CM_EINPUT, "No such file");
}

static void test_truncated_tiff_is_bad_input_naming_the_file(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 16;
    char path[PATH_MAX];
    tmp_path(path, "truncated.tif");
    make_tiff(path, &l, pattern);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    expect_failure(path, CM_EINPUT, NULL);
}

static void test_corrupt_tile_is_bad_input_naming_the_file_and_the_tile(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    l.tile_w = l.tile_h = 16;
    char path[PATH_MAX];
    tmp_path(path, "corrupt-tile.tif");
    make_tiff(path, &l, pattern);
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

static void test_sixteen_bit_samples_are_unsupported_input(void **state)
{
    (void)state;
    layout_t l = layout_for(1, COMPRESSION_NONE, false);
    l.bits = 16;
    l.height = 64;
    l.rows_per_strip = 16;
    char path[PATH_MAX];
    tmp_path(path, "sixteen.tif");
    make_tiff(path, &l, pattern);
    expect_failure(path, CM_EINPUT, "16-bit");
}

static void test_planar_separate_rgb_is_unsupported_input(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.planar = PLANARCONFIG_SEPARATE;
    l.height = 64;
    l.rows_per_strip = 16;
    char path[PATH_MAX];
    tmp_path(path, "planar.tif");
    make_tiff(path, &l, pattern);
    expect_failure(path, CM_EINPUT, "planar");
}

static void test_palette_image_is_unsupported_input(void **state)
{
    (void)state;
    layout_t l = layout_for(1, COMPRESSION_NONE, false);
    l.photometric = PHOTOMETRIC_PALETTE;
    l.height = 64;
    l.rows_per_strip = 16;
    char path[PATH_MAX];
    tmp_path(path, "palette.tif");
    make_tiff(path, &l, pattern);
    expect_failure(path, CM_EINPUT, "palette");
}

static void test_uncompressed_ycbcr_is_unsupported_input(void **state)
{
    (void)state;
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.photometric = PHOTOMETRIC_YCBCR;
    l.height = 64;
    l.rows_per_strip = 16;
    char path[PATH_MAX];
    tmp_path(path, "ycbcr-raw.tif");
    make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = l.height = 32;
    l.tile_w = l.tile_h = 16;
    char path[PATH_MAX];
    tmp_path(path, "tiles-20.tif");
    make_tiff(path, &l, pattern);
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
    uint16_t spp, bits, photometric, compression, n_extra, extra0;
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
    TIFFGetField(t, TIFFTAG_PHOTOMETRIC, &p->photometric);
    TIFFGetFieldDefaulted(t, TIFFTAG_COMPRESSION, &p->compression);
    if (TIFFGetField(t, TIFFTAG_EXTRASAMPLES, &p->n_extra, &extra) && p->n_extra)
        p->extra0 = extra[0];
    if (TIFFGetField(t, TIFFTAG_IMAGEDESCRIPTION, &desc))
        snprintf(p->description, sizeof p->description, "%s", desc);
    p->tiled = TIFFIsTiled(t);
    p->bigtiff = TIFFIsBigTIFF(t);
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

/* Samples of an 8-bit image further than tol from fn. */
static int64_t plain_mismatches(const plain_t *p, value_fn fn, int tol, char *where, size_t size)
{
    int64_t bad = 0;
    for (uint32_t y = 0; y < p->height; y++)
        for (uint32_t x = 0; x < p->width; x++)
            for (int b = 0; b < p->spp; b++) {
                int got = p->pixels[((size_t)y * p->width + x) * p->spp + b], want = fn(x, y, b);
                if (abs(got - want) > tol && !bad++)
                    snprintf(where, size, "pixel (%u,%u) band %d is %d, expected %d", x, y, b, got,
                             want);
            }
    return bad;
}

/* Copies path into a new file at out through the reader and the writer, as the command does. */
static void copy_through_writer(const char *path, const char *out, int compression,
                                cm_writer_spec_t *spec)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    cm_writer_spec_like(in, compression, spec);
    cm_writer_t *wr = NULL;
    int rc = cm_writer_open(out, spec, &wr, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&in->grid));
    assert_non_null(buf);
    for (int64_t idx = 0; idx < cm_grid_count(&in->grid); idx++) {
        int64_t x, y, w, h;
        cm_grid_rect(&in->grid, idx, &x, &y, &w, &h);
        assert_int_equal(cm_image_read_chunk(img, 0, idx, buf, &ctx), 0);
        rc = cm_writer_put(wr, x, y, w, h, buf, &ctx);
        if (rc) fail_msg("%s", ctx.msg);
    }
    rc = cm_writer_commit(wr, &ctx);
    if (rc) fail_msg("%s", ctx.msg);
    free(buf);
    cm_image_close(img);
}

static void check_copy(const char *out, const layout_t *l, const cm_writer_spec_t *spec, int tol)
{
    plain_t p;
    read_plain(out, &p);
    assert_int_equal(p.width, l->width);
    assert_int_equal(p.height, l->height);
    assert_int_equal(p.spp, l->spp);
    assert_int_equal(p.bits, 8);
    assert_int_equal(p.photometric,
                     l->photometric == PHOTOMETRIC_YCBCR ? PHOTOMETRIC_RGB : l->photometric);
    assert_int_equal(p.compression, spec->compression);
    assert_true(p.tiled);
    assert_int_equal(p.tile_w, spec->tile_w);
    assert_int_equal(p.tile_h, spec->tile_h);
    assert_int_equal(p.bigtiff, spec->bigtiff);
    if (layout_alpha(l) >= 0) {
        assert_int_equal(p.n_extra, 1);
        assert_int_equal(p.extra0, EXTRASAMPLE_UNASSALPHA);
    } else {
        assert_int_equal(p.n_extra, 0);
    }
    char where[160];
    if (plain_mismatches(&p, l->photometric == PHOTOMETRIC_YCBCR ? smooth : pattern, tol, where,
                         sizeof where))
        fail_msg("%s: %s", out, where);
    free(p.pixels);
}

static void test_writer_copies_tiled_images_exactly_in_every_lossless_compression(void **state)
{
    (void)state;
    for (int spp = 1; spp <= 4; spp++)
        for (int c = 0; c < N_LOSSLESS; c++) {
            skip_unless_codec(lossless[c]);
            layout_t l = layout_for(spp, COMPRESSION_LZW, false);
            l.tile_w = l.tile_h = 32;
            char path[PATH_MAX], out[PATH_MAX], name[64];
            snprintf(name, sizeof name, "copy-in-%d.tif", spp);
            tmp_path(path, name);
            snprintf(name, sizeof name, "copy-out-%d-%u.tif", spp, lossless[c]);
            tmp_path(out, name);
            make_tiff(path, &l, pattern);
            cm_writer_spec_t spec;
            copy_through_writer(path, out, lossless[c], &spec);
            assert_int_equal(spec.tile_w, 32);
            assert_int_equal(spec.tile_h, 32);
            check_copy(out, &l, &spec, 0);
            assert_int_equal(count_part_files(tmp_dir, name), 0);
        }
}

static void test_writer_copies_striped_images_exactly_as_tiles(void **state)
{
    (void)state;
    for (int spp = 1; spp <= 4; spp++) {
        layout_t l = layout_for(spp, COMPRESSION_PACKBITS, false);
        l.width = 37;
        l.height = 600;
        l.rows_per_strip = 7;
        char path[PATH_MAX], out[PATH_MAX], name[64];
        snprintf(name, sizeof name, "copy-strips-in-%d.tif", spp);
        tmp_path(path, name);
        snprintf(name, sizeof name, "copy-strips-out-%d.tif", spp);
        tmp_path(out, name);
        make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.width = 1100;
    l.height = 40;
    l.rows_per_strip = 8;
    char path[PATH_MAX], out[PATH_MAX];
    tmp_path(path, "wide-in.tif");
    tmp_path(out, "wide-out.tif");
    make_tiff(path, &l, pattern);
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
    layout_t l = {.width = 100,
                  .height = 70,
                  .spp = 3,
                  .photometric = PHOTOMETRIC_YCBCR,
                  .compression = COMPRESSION_JPEG,
                  .extra = -1,
                  .tile_w = 32,
                  .tile_h = 32};
    char path[PATH_MAX], out[PATH_MAX];
    tmp_path(path, "jpeg-in.tif");
    tmp_path(out, "jpeg-out.tif");
    make_tiff(path, &l, smooth);
    cm_writer_spec_t spec;
    copy_through_writer(path, out, COMPRESSION_JPEG, &spec);
    assert_int_equal(spec.photometric, PHOTOMETRIC_RGB);
    check_copy(out, &l, &spec, 12);
}

static void test_writer_bigtiff_output_is_bigtiff(void **state)
{
    (void)state;
    layout_t l = layout_for(4, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 16;
    char path[PATH_MAX], out[PATH_MAX];
    tmp_path(path, "big-in.tif");
    tmp_path(out, "big-out.tif");
    make_tiff(path, &l, pattern);

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
        assert_int_equal(cm_writer_put(wr, x, y, w, h, buf, &ctx), 0);
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
                              .alpha_band = bands == 2 || bands == 4 ? bands - 1 : -1,
                              .bits = 8,
                              .photometric = photometric_for(bands),
                              .compression = COMPRESSION_ADOBE_DEFLATE,
                              .tile_w = 32,
                              .tile_h = 48};
}

/* Puts the whole pattern image, tile row by tile row (as chunks of the spec's tiles). */
static void put_pattern(cm_writer_t *wr, const cm_writer_spec_t *s)
{
    layout_t l = {
        .width = (uint32_t)s->width, .height = (uint32_t)s->height, .spp = (uint16_t)s->bands};
    uint8_t *buf = malloc((size_t)(s->width * s->tile_h * s->bands));
    assert_non_null(buf);
    for (int64_t y = 0; y < s->height; y += s->tile_h) {
        int64_t h = s->height - y < s->tile_h ? s->height - y : s->tile_h;
        fill_rect(buf, s->width, 0, y, s->width, h, &l, pattern);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        int rc = cm_writer_put(wr, 0, y, s->width, h, buf, &ctx);
        if (rc) fail_msg("%s", ctx.msg);
    }
    free(buf);
}

static void test_destination_appears_only_at_commit_and_part_file_meanwhile(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "atomic-out.tif");
    cm_writer_spec_t spec = direct_spec(3);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    assert_false(exists(out));
    assert_int_equal(count_part_files(tmp_dir, "atomic-out.tif"), 1);
    put_pattern(wr, &spec);
    assert_false(exists(out));
    assert_int_equal(count_part_files(tmp_dir, "atomic-out.tif"), 1);
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    assert_true(exists(out));
    assert_int_equal(count_part_files(tmp_dir, "atomic-out.tif"), 0);
    layout_t l = layout_for(3, COMPRESSION_ADOBE_DEFLATE, false);
    check_copy(out, &l, &spec, 0);
}

static void test_committed_output_has_the_usual_permissions(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "mode-out.tif");
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
    char out[PATH_MAX];
    tmp_path(out, "aborted.tif");
    cm_writer_spec_t spec = direct_spec(4);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(count_part_files(tmp_dir, "aborted.tif"), 1);
    cm_writer_abort(wr);
    assert_false(exists(out));
    assert_int_equal(count_part_files(tmp_dir, "aborted.tif"), 0);
    cm_writer_abort(NULL);
}

static void test_writer_open_in_a_missing_directory_is_an_io_error_naming_the_path(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "no-such-dir/out.tif");
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
    char out[PATH_MAX], inner[PATH_MAX];
    tmp_path(out, "occupied");
    tmp_path(inner, "occupied/keep");
    assert_int_equal(mkdir(out, 0777), 0);
    write_text_file(inner, "keep me");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    put_pattern(wr, &spec);
    assert_int_equal(cm_writer_commit(wr, &ctx), CM_EIO);
    assert_int_equal(ctx.code, CM_EIO);
    if (!strstr(ctx.msg, out)) fail_msg("message does not name %s: %s", out, ctx.msg);
    assert_int_equal(count_part_files(tmp_dir, "occupied"), 0);
    assert_true(exists(inner));
}

static void test_writer_open_rejects_tiles_not_a_multiple_of_16(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "tiles-24.tif");
    cm_writer_spec_t spec = direct_spec(3);
    spec.tile_w = 24;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), CM_EUSAGE);
    assert_null(wr);
    assert_false(exists(out));
    assert_int_equal(count_part_files(tmp_dir, "tiles-24.tif"), 0);
}

static void test_put_off_the_tile_grid_is_an_internal_error(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "off-grid.tif");
    cm_writer_spec_t spec = direct_spec(1);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(out, &spec, &wr, &ctx), 0);
    uint8_t px[32 * 48] = {0};
    assert_int_equal(cm_writer_put(wr, 16, 0, 32, 48, px, &ctx), CM_EINTERNAL);
    cm_ctx_init(&ctx);
    assert_int_equal(cm_writer_put(wr, 96, 0, 32, 48, px, &ctx), CM_EINTERNAL); /* past width */
    cm_writer_abort(wr);
    assert_int_equal(count_part_files(tmp_dir, "off-grid.tif"), 0);
}

static void test_description_is_written(void **state)
{
    (void)state;
    char out[PATH_MAX];
    tmp_path(out, "described.tif");
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
    cm_writer_spec_labels(&img_spec, bits, &spec);
    char out[PATH_MAX], name[32];
    snprintf(name, sizeof name, "labels-%d.tif", bits);
    tmp_path(out, name);
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
        assert_int_equal(cm_writer_put(wr, 0, y, spec.width, h, buf, &ctx), 0);
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

/* ---- specs ------------------------------------------------------------------------------ */

static void test_chunks_of_several_tiles_read_exactly(void **state)
{
    (void)state;
    /* 16x16 tiles grouped into 64x64 chunks: every chunk, clipped ones included, is exact,
     * and the output tiles follow the chunks. */
    for (int spp = 1; spp <= 4; spp++) {
        layout_t l = layout_for(spp, COMPRESSION_ADOBE_DEFLATE, spp == 2);
        l.tile_w = l.tile_h = 16;
        char path[PATH_MAX];
        tmp_path(path, "grouped.tif");
        make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(3, COMPRESSION_LZW, false);
    l.tile_w = 48;
    l.tile_h = 32;
    char path[PATH_MAX];
    tmp_path(path, "tiles48.tif");
    make_tiff(path, &l, pattern);
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
    layout_t l = layout_for(3, COMPRESSION_NONE, false);
    l.tile_w = l.tile_h = 0;
    l.rows_per_strip = 1;
    char path[PATH_MAX];
    tmp_path(path, "strips1.tif");
    make_tiff(path, &l, pattern);
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
                          .bits = 8,
                          .photometric = photometric,
                          .tiled = tiled};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_grid_init(&in.grid, width, height, chunk_w, chunk_h, bands, alpha, &ctx),
                     0);
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
    assert_int_equal(s.alpha_band, 3);
    assert_int_equal(s.bits, 8);
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
    assert_int_equal(s.alpha_band, 1);
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
        cm_writer_spec_labels(&img, bits, &s);
        assert_int_equal(s.width, img.width);
        assert_int_equal(s.height, img.height);
        assert_int_equal(s.bands, 1);
        assert_int_equal(s.alpha_band, -1);
        assert_int_equal(s.bits, bits);
        assert_int_equal(s.photometric, PHOTOMETRIC_MINISBLACK);
        assert_int_equal(s.compression, COMPRESSION_ADOBE_DEFLATE);
        assert_int_equal(s.tile_w, img.tile_w);
        assert_int_equal(s.tile_h, img.tile_h);
        assert_true(s.bigtiff);
    }
    img.compression = COMPRESSION_LZW;
    cm_writer_spec_labels(&img, 8, &s);
    assert_int_equal(s.compression, COMPRESSION_LZW);
}

static void test_needs_bigtiff_only_past_four_gib(void **state)
{
    (void)state;
    cm_writer_spec_t s = {.width = 40000,
                          .height = 40000,
                          .bands = 3,
                          .alpha_band = -1,
                          .bits = 8,
                          .photometric = PHOTOMETRIC_RGB,
                          .compression = COMPRESSION_ADOBE_DEFLATE,
                          .tile_w = 256,
                          .tile_h = 256};
    assert_true(cm_writer_needs_bigtiff(&s));
    s.width = s.height = 1000;
    assert_false(cm_writer_needs_bigtiff(&s));
    cm_writer_spec_t labels;
    s.width = s.height = 40000;
    cm_writer_spec_labels(&s, 8, &labels); /* 1.6 GB */
    assert_false(cm_writer_needs_bigtiff(&labels));
}

/* ---- files and names -------------------------------------------------------------------- */

static void test_write_atomic_writes_exactly_the_bytes_and_leaves_no_part_file(void **state)
{
    (void)state;
    char path[PATH_MAX];
    tmp_path(path, "model.json");
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
        assert_int_equal(count_part_files(tmp_dir, "model.json"), 0);
    }
}

static void test_write_atomic_into_a_missing_directory_is_an_io_error(void **state)
{
    (void)state;
    char path[PATH_MAX];
    tmp_path(path, "missing/model.json");
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_file_write_atomic(path, "x", 1, &ctx), CM_EIO);
    assert_int_equal(ctx.code, CM_EIO);
    if (!strstr(ctx.msg, path)) fail_msg("message does not name %s: %s", path, ctx.msg);
    assert_false(exists(path));
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
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiled_classic_32px_tiles_read_exactly_with_clipped_edges),
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
        cmocka_unit_test(test_sixteen_bit_samples_are_unsupported_input),
        cmocka_unit_test(test_planar_separate_rgb_is_unsupported_input),
        cmocka_unit_test(test_palette_image_is_unsupported_input),
        cmocka_unit_test(test_uncompressed_ycbcr_is_unsupported_input),
        cmocka_unit_test(test_tiles_not_a_multiple_of_16_are_unsupported_input),
        cmocka_unit_test(test_writer_copies_tiled_images_exactly_in_every_lossless_compression),
        cmocka_unit_test(test_writer_copies_striped_images_exactly_as_tiles),
        cmocka_unit_test(test_writer_copies_wide_striped_image_in_512_wide_tiles),
        cmocka_unit_test(test_writer_jpeg_output_of_ycbcr_input_is_rgb_close_to_the_original),
        cmocka_unit_test(test_writer_bigtiff_output_is_bigtiff),
        cmocka_unit_test(test_destination_appears_only_at_commit_and_part_file_meanwhile),
        cmocka_unit_test(test_committed_output_has_the_usual_permissions),
        cmocka_unit_test(test_abort_leaves_neither_destination_nor_part_file),
        cmocka_unit_test(test_writer_open_in_a_missing_directory_is_an_io_error_naming_the_path),
        cmocka_unit_test(test_commit_onto_a_directory_fails_with_eio_and_removes_the_part_file),
        cmocka_unit_test(test_writer_open_rejects_tiles_not_a_multiple_of_16),
        cmocka_unit_test(test_put_off_the_tile_grid_is_an_internal_error),
        cmocka_unit_test(test_description_is_written),
        cmocka_unit_test(test_eight_bit_labels_are_written_exactly),
        cmocka_unit_test(test_sixteen_bit_labels_are_written_exactly),
        cmocka_unit_test(test_chunks_of_several_tiles_read_exactly),
        cmocka_unit_test(test_tiles_that_do_not_divide_the_side_are_kept),
        cmocka_unit_test(test_bands_of_strips_follow_the_side),
        cmocka_unit_test(test_spec_like_keeps_size_bands_alpha_and_tiles_of_tiled_input),
        cmocka_unit_test(test_spec_like_turns_bands_of_strips_into_rows_of_tiles),
        cmocka_unit_test(test_spec_like_writes_ycbcr_input_as_rgb),
        cmocka_unit_test(test_spec_labels_is_one_grey_band_and_never_jpeg),
        cmocka_unit_test(test_needs_bigtiff_only_past_four_gib),
        cmocka_unit_test(test_write_atomic_writes_exactly_the_bytes_and_leaves_no_part_file),
        cmocka_unit_test(test_write_atomic_into_a_missing_directory_is_an_io_error),
        cmocka_unit_test(test_compression_names_round_trip),
        cmocka_unit_test(test_unknown_compression_name_is_a_usage_error),
    };
    return cmocka_run_group_tests(tests, make_tmp_dir, remove_tmp_dir);
}
