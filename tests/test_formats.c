/* Unit tests of io's JPEG and PNG: PNGs written in bands (the parallel zlib stream) and read
 * back by libpng to the very samples, the bytes independent of the order bands are encoded
 * in, pieces of rows joined into bands, JPEGs written and read back, EXIF orientation, the
 * extensions that choose a format, and damaged files refused as bad input naming the file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <png.h>

#include "cm_io.h"
#include "fixtures.h"
#include "io_internal.h"

static int make_dir(void **state)
{
    (void)state;
    return fx_dir_make("test_formats");
}

static int remove_dir(void **state)
{
    (void)state;
    return fx_dir_remove();
}

/* Samples that differ from their neighbours, so that every filter and band boundary shows. */
static double sample_at(int64_t x, int64_t y, int b, cm_stype_t t)
{
    unsigned v = (unsigned)(x * 7 + y * 13 + b * 101 + (x * y) % 17);
    return t == CM_U16 ? (double)((v * 257u + (unsigned)x) & 0xffff) : (double)(v & 0xff);
}

static uint8_t *make_pixels(int64_t w, int64_t h, int bands, cm_stype_t t)
{
    uint8_t *px = malloc((size_t)(w * h * bands) * cm_stype_size(t));
    assert_non_null(px);
    for (int64_t y = 0; y < h; y++)
        for (int64_t x = 0; x < w; x++)
            for (int b = 0; b < bands; b++)
                fx_sample_store(px, t, (size_t)((y * w + x) * bands + b), sample_at(x, y, b, t));
    return px;
}

static cm_writer_spec_t png_spec(int64_t w, int64_t h, int bands, cm_stype_t t)
{
    cm_writer_spec_t s = {.format = CM_FILE_PNG,
                          .width = w,
                          .height = h,
                          .bands = bands,
                          .stype = t,
                          .photometric = bands >= 3 ? 2 /* RGB */ : 1 /* min-is-black */,
                          .tile_w = 64,
                          .tile_h = 32};
    if (bands == 2 || bands == 4) s.n_extra = 1, s.extra[0] = 2 /* unassociated alpha */;
    return s;
}

/* Writes px (w x h) in rectangles of band_h rows and piece_w columns (piece_w = w: whole
 * rows), encoding them in reverse order when asked, putting them in order. */
static void write_image(const char *path, const cm_writer_spec_t *s, const uint8_t *px,
                        int64_t band_h, int64_t piece_w, bool reverse)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_writer_t *wr = NULL;
    assert_int_equal(cm_writer_open(path, s, &wr, &ctx), 0);
    size_t px_bytes = (size_t)s->bands * cm_stype_size(s->stype);
    int64_t n_y = (s->height + band_h - 1) / band_h, n_x = (s->width + piece_w - 1) / piece_w;
    cm_encoded_t **e = calloc((size_t)(n_x * n_y), sizeof *e);
    uint8_t *piece = malloc((size_t)(band_h * piece_w) * px_bytes);
    assert_true(e && piece);
    for (int64_t i = 0; i < n_x * n_y; i++) {
        int64_t at = reverse ? n_x * n_y - 1 - i : i, x = at % n_x * piece_w, y = at / n_x * band_h;
        int64_t w = s->width - x < piece_w ? s->width - x : piece_w;
        int64_t h = s->height - y < band_h ? s->height - y : band_h;
        for (int64_t r = 0; r < h; r++)
            memcpy(piece + (size_t)(r * w) * px_bytes,
                   px + ((size_t)((y + r) * s->width + x)) * px_bytes, (size_t)w * px_bytes);
        assert_int_equal(cm_writer_encode(wr, x, y, w, h, piece, &e[at], &ctx), 0);
    }
    for (int64_t i = 0; i < n_x * n_y; i++) {
        assert_int_equal(cm_writer_put_encoded(wr, e[i], &ctx), 0);
        cm_encoded_free(e[i]);
    }
    assert_int_equal(cm_writer_commit(wr, &ctx), 0);
    free(piece);
    free(e);
}

/* Reads path with io (format by content) into a new buffer of its samples. */
static uint8_t *read_image(const char *path, cm_image_info_t *info)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 2, &img, &ctx), 0);
    assert_int_equal(cm_image_prepare(img, fx_path((char[4096]){0}, ""), 0, &ctx), 0);
    *info = *cm_image_info(img);
    size_t px_bytes = (size_t)info->bands * cm_stype_size(info->stype);
    uint8_t *all = malloc((size_t)(info->width * info->height) * px_bytes);
    uint8_t *chunk = malloc(cm_grid_chunk_bytes(&info->grid));
    assert_true(all && chunk);
    for (int64_t c = 0; c < cm_grid_count(&info->grid); c++) {
        int64_t x, y, w, h;
        cm_grid_rect(&info->grid, c, &x, &y, &w, &h);
        assert_int_equal(cm_image_read_chunk(img, c % 2, c, chunk, &ctx), 0);
        for (int64_t r = 0; r < h; r++)
            memcpy(all + ((size_t)((y + r) * info->width + x)) * px_bytes,
                   chunk + (size_t)(r * w) * px_bytes, (size_t)w * px_bytes);
    }
    free(chunk);
    cm_image_close(img);
    return all;
}

/* Every bit depth and colour type writes and reads back exactly, through libpng's reader,
 * from bands encoded in any order: the zlib stream of independent blocks is one stream. */
static void test_png_in_bands_reads_back_exactly_for_every_colour_type(void **state)
{
    (void)state;
    char path[4096];
    fx_path(path, "rt.png");
    for (int t = 0; t < 2; t++)
        for (int bands = 1; bands <= 4; bands++) {
            cm_stype_t st = t ? CM_U16 : CM_U8;
            cm_writer_spec_t s = png_spec(203, 77, bands, st);
            uint8_t *px = make_pixels(s.width, s.height, bands, st);
            write_image(path, &s, px, 16, s.width, true);
            cm_image_info_t in;
            uint8_t *got = read_image(path, &in);
            assert_int_equal(in.format, CM_FILE_PNG);
            assert_int_equal(in.bands, bands);
            assert_int_equal(in.stype, st);
            assert_int_equal(in.alpha_band, bands % 2 == 0 ? bands - 1 : -1);
            assert_memory_equal(got, px, (size_t)(s.width * s.height * bands) * cm_stype_size(st));
            free(got);
            free(px);
        }
}

/* Bands depend on the image only: encoded in reverse order, the file has the same bytes. */
static void test_png_bytes_do_not_depend_on_the_order_bands_are_encoded_in(void **state)
{
    (void)state;
    char a[4096], b[4096];
    cm_writer_spec_t s = png_spec(300, 200, 3, CM_U8);
    uint8_t *px = make_pixels(s.width, s.height, 3, CM_U8);
    write_image(fx_path(a, "fwd.png"), &s, px, 48, s.width, false);
    write_image(fx_path(b, "rev.png"), &s, px, 48, s.width, true);
    assert_true(fx_same_bytes(a, b));
    free(px);
}

/* Pieces narrower than the image (a tiled input's chunks) are joined into whole rows. */
static void test_png_from_pieces_of_rows_reads_back_exactly(void **state)
{
    (void)state;
    char path[4096];
    cm_writer_spec_t s = png_spec(250, 90, 4, CM_U16);
    uint8_t *px = make_pixels(s.width, s.height, 4, CM_U16);
    write_image(fx_path(path, "pieces.png"), &s, px, 32, 64, false);
    cm_image_info_t in;
    uint8_t *got = read_image(path, &in);
    assert_memory_equal(got, px, (size_t)(s.width * s.height * 4) * 2);
    free(got);
    free(px);
}

/* A colour-mapped PNG holds the labels, and a palette of only the colours used. */
static void test_palette_png_holds_k_colours_and_reads_as_them(void **state)
{
    (void)state;
    char path[4096];
    uint16_t cmap[3 * 256] = {0};
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 3; c++) cmap[256 * c + i] = (uint16_t)(((i * 50 + c * 30) % 256) * 257);
    cm_writer_spec_t s = png_spec(120, 50, 1, CM_U8);
    s.photometric = 3; /* palette */
    s.colormap = cmap;
    s.colormap_n = 5;
    uint8_t *labels = malloc(120 * 50);
    assert_non_null(labels);
    for (int i = 0; i < 120 * 50; i++) labels[i] = (uint8_t)((i / 7) % 5);
    write_image(fx_path(path, "pal.png"), &s, labels, 16, 120, false);
    cm_image_info_t in;
    uint8_t *got = read_image(path, &in);
    assert_int_equal(in.bands, 3);
    assert_true(in.palette);
    for (int i = 0; i < 120 * 50; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(got[3 * i + c], cmap[256 * c + labels[i]] / 257);
    free(got);
    free(labels);
}

/* A JPEG written and read again keeps its size and bands, and its samples within JPEG's
 * loss on a smooth image. */
static void test_jpeg_written_reads_back_close(void **state)
{
    (void)state;
    char path[4096];
    for (int bands = 1; bands <= 3; bands += 2) {
        cm_writer_spec_t s = png_spec(160, 96, bands, CM_U8);
        s.format = CM_FILE_JPEG;
        uint8_t *px = malloc((size_t)(160 * 96 * bands));
        assert_non_null(px);
        for (int i = 0; i < 160 * 96 * bands; i++) px[i] = (uint8_t)(i / bands % 160 + 40);
        write_image(fx_path(path, "rt.jpg"), &s, px, 32, 64, false);
        cm_image_info_t in;
        uint8_t *got = read_image(path, &in);
        assert_int_equal(in.format, CM_FILE_JPEG);
        assert_int_equal(in.bands, bands);
        assert_int_equal(in.width, 160);
        for (int i = 0; i < 160 * 96 * bands; i++) assert_true(abs(got[i] - px[i]) <= 8);
        free(got);
        free(px);
    }
}

static void test_exif_orientation_reads_back_what_is_written(void **state)
{
    (void)state;
    uint8_t buf[6 + CM__EXIF_MIN] = "Exif";
    for (int o = 1; o <= 8; o++) {
        size_t n = cm__exif_make(o, buf + 6);
        assert_int_equal(cm__exif_orientation(buf + 6, n), o);
        assert_int_equal(cm__exif_orientation(buf, n + 6), o);
        assert_int_equal(cm__exif_orientation(buf + 6, n - 8), 0); /* cut inside the entry */
    }
    /* big-endian, as cameras often write it: one entry, orientation 6 */
    static const uint8_t mm[] = {'M', 'M', 0, '*', 0, 0, 0, 8, 0, 1, 1, 0x12, 0, 3, 0, 0, 0, 1,
                                 0, 6, 0, 0, 0, 0, 0, 0};
    assert_int_equal(cm__exif_orientation(mm, sizeof mm), 6);
    assert_int_equal(cm__exif_orientation((const uint8_t *)"nonsense", 8), 0);
}

static void test_extensions_choose_the_format_and_others_are_refused(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_file_format_t f;
    const struct {
        const char *path;
        cm_file_format_t f;
    } ok[] = {{"a.tif", CM_FILE_TIFF}, {"d.x/a.TIFF", CM_FILE_TIFF}, {"a.png", CM_FILE_PNG},
              {"a.JPG", CM_FILE_JPEG}, {"a.jpeg", CM_FILE_JPEG},    {"dir.png/a", CM_FILE_TIFF},
              {".hidden", CM_FILE_TIFF}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(cm_file_format_of_path(ok[i].path, &f, &ctx), 0);
        assert_int_equal(f, ok[i].f);
    }
    assert_int_equal(cm_file_format_of_path("a.webp", &f, &ctx), CM_EUSAGE);
    assert_non_null(strstr(ctx.msg, "a.webp"));
    assert_non_null(strstr(ctx.msg, ".png"));
}

/* Damage in the image data of a PNG or JPEG is bad input naming the file, found while
 * streaming it; the format is never taken from the name. */
static void test_damaged_png_and_jpeg_are_bad_input_naming_the_file(void **state)
{
    (void)state;
    char path[4096], bad[4096];
    cm_writer_spec_t s = png_spec(200, 120, 3, CM_U8);
    uint8_t *px = make_pixels(s.width, s.height, 3, CM_U8);
    for (int jpeg = 0; jpeg < 2; jpeg++) {
        s.format = jpeg ? CM_FILE_JPEG : CM_FILE_PNG;
        write_image(fx_path(path, jpeg ? "good.jpg" : "good.png"), &s, px, 40, s.width, false);
        size_t size;
        uint8_t *bytes = fx_read_file(path, &size);
        /* Bytes of the data flipped (a JPEG has no checksum: an end-of-image marker in its
         * scan instead), then truncated. */
        for (int cut = 0; cut < 2; cut++) {
            size_t n = cut ? size / 2 : size;
            if (!cut && jpeg) bytes[size / 2] = 0xff, bytes[size / 2 + 1] = 0xd9;
            if (!cut && !jpeg)
                for (size_t i = size / 2; i < size / 2 + 64; i++) bytes[i] ^= 0x5a;
            fx_path(bad, jpeg ? "bad.png" : "bad.jpg"); /* a name that lies */
            FILE *f = fopen(bad, "wb");
            assert_non_null(f);
            assert_int_equal(fwrite(bytes, 1, n, f), n);
            fclose(f);
            cm_ctx_t ctx;
            cm_ctx_init(&ctx);
            cm_image_t *img = NULL;
            assert_int_equal(cm_image_open(bad, 1, &img, &ctx), 0);
            assert_int_equal(cm_image_info(img)->format, jpeg ? CM_FILE_JPEG : CM_FILE_PNG);
            assert_int_equal(cm_image_prepare(img, fx_path(path, ""), 0, &ctx), CM_EINPUT);
            assert_non_null(strstr(ctx.msg, bad));
            cm_image_close(img);
        }
        free(bytes);
    }
    free(px);
}

/* An interlaced PNG is decoded whole: over the budget, it is refused with the least that
 * would do. */
static void test_interlaced_png_over_the_budget_says_the_budget_needed(void **state)
{
    (void)state;
    char path[4096];
    fx_path(path, "adam7.png");
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_false(setjmp(png_jmpbuf(png)));
    png_init_io(png, f);
    png_set_IHDR(png, info, 300, 200, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    uint8_t *px = make_pixels(300, 200, 3, CM_U8);
    png_bytep rows[200];
    for (int r = 0; r < 200; r++) rows[r] = px + (size_t)r * 900;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_true(in->progressive);
    assert_int_equal(in->decode_bytes, 300 * 200 * 3);
    assert_int_equal(cm_image_prepare(img, fx_path((char[4096]){0}, ""), 100000, &ctx),
                     CM_EBUDGET);
    assert_int_equal(ctx.about.setting, CM_SETTING_MEMORY);
    assert_true(ctx.about.need >= 300 * 200 * 3);
    cm_image_close(img);
    cm_image_info_t got_in;
    uint8_t *got = read_image(path, &got_in);
    assert_memory_equal(got, px, 300 * 200 * 3);
    free(got);
    free(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_in_bands_reads_back_exactly_for_every_colour_type),
        cmocka_unit_test(test_png_bytes_do_not_depend_on_the_order_bands_are_encoded_in),
        cmocka_unit_test(test_png_from_pieces_of_rows_reads_back_exactly),
        cmocka_unit_test(test_palette_png_holds_k_colours_and_reads_as_them),
        cmocka_unit_test(test_jpeg_written_reads_back_close),
        cmocka_unit_test(test_exif_orientation_reads_back_what_is_written),
        cmocka_unit_test(test_extensions_choose_the_format_and_others_are_refused),
        cmocka_unit_test(test_damaged_png_and_jpeg_are_bad_input_naming_the_file),
        cmocka_unit_test(test_interlaced_png_over_the_budget_says_the_budget_needed),
    };
    return cmocka_run_group_tests(tests, make_dir, remove_dir);
}
