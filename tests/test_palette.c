/* The palette of a model (api/palette.c): colours largest first as 8-bit RGB of any sample type,
 * the "#rrggbb count percent" line, formats chosen by extension, swatch widths that sum to the
 * strip and follow the shares, the files written (read back here: a GIMP palette's lines, the
 * swatch PNG through the library's own PNG reader), and run and fit writing them only when
 * they succeed. */
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
#include <tiff.h>

#include "chunkmeans.h"
#include "fixtures.h"

/* A model of k colours of d features with the given centroids and counts (not copied). */
static cm_model_t model_of(int k, int d, double *centroids, int64_t *counts)
{
    return (cm_model_t){.k = k, .d = d, .centroids = centroids, .counts = counts};
}

static cm_palette_t *palette_of(const cm_model_t *m, cm_stype_t t)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_palette_t *p = NULL;
    assert_int_equal(cm_palette_make(m, t, &p, &ctx), 0);
    assert_non_null(p);
    return p;
}

static void test_colours_come_largest_first_ties_to_the_lower_label(void **state)
{
    (void)state;
    double c[5 * 3] = {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 1, 2, 3};
    int64_t n[5] = {5, 9, 5, 0, 9};
    cm_model_t m = model_of(5, 3, c, n);
    cm_palette_t *p = palette_of(&m, CM_U8);
    static const int order[5] = {1, 4, 0, 2, 3};
    assert_int_equal(p->k, 5);
    assert_int_equal(p->total, 28);
    assert_true(p->has_rgb);
    for (int i = 0; i < 5; i++) {
        const cm_palette_color_t *col = &p->colors[i];
        assert_int_equal(col->label, order[i]);
        assert_int_equal(col->count, n[order[i]]);
        assert_true(col->share == (double)n[order[i]] / 28.0);
        for (int b = 0; b < 3; b++) assert_int_equal(col->rgb[b], (uint8_t)c[3 * order[i] + b]);
    }
    cm_palette_free(p);
}

static void test_line_is_hex_count_and_percent_with_two_decimals(void **state)
{
    (void)state;
    double c[2 * 3] = {61.4, 52.5, 44.6, 255.7, -3, 0.49};
    int64_t n[2] = {4217, 5783};
    cm_model_t m = model_of(2, 3, c, n);
    cm_palette_t *p = palette_of(&m, CM_U8);
    char line[CM_PALETTE_LINE_MAX];
    cm_palette_line(&p->colors[0], line, sizeof line);
    assert_string_equal(line, "#ff0000 5783 57.83%"); /* rounded, clamped to 0..255 */
    cm_palette_line(&p->colors[1], line, sizeof line);
    assert_string_equal(line, "#3d342d 4217 42.17%"); /* 52.5 rounds to even */
    cm_palette_free(p);

    /* No counts at all (a model from elsewhere): every share is 0, not a division by 0. */
    int64_t none[2] = {0, 0};
    m.counts = none;
    p = palette_of(&m, CM_U8);
    assert_int_equal(p->total, 0);
    cm_palette_line(&p->colors[0], line, sizeof line);
    assert_string_equal(line, "#3d342d 0 0.00%");
    cm_palette_free(p);
}

static void test_grey_and_other_sample_types_give_8_bit_colours(void **state)
{
    (void)state;
    /* Grey: R = G = B. */
    double grey[2] = {127.6, 3};
    int64_t n[2] = {2, 1};
    cm_model_t m = model_of(2, 1, grey, n);
    cm_palette_t *p = palette_of(&m, CM_U8);
    assert_true(p->has_rgb);
    char line[CM_PALETTE_LINE_MAX];
    cm_palette_line(&p->colors[0], line, sizeof line);
    assert_string_equal(line, "#808080 2 66.67%");
    cm_palette_free(p);

    /* Each type scaled from its range: uint16 / 257, float32 0..1, int16 0..32767. */
    static const struct {
        cm_stype_t t;
        double v[3];
        uint8_t want[3];
    } cases[] = {
        {CM_U16, {65535, 257 * 128, 20000.4}, {255, 128, 78}},
        {CM_F32, {1.0, 0.5, -0.25}, {255, 128, 0}},
        {CM_I16, {32767, -5, 16384}, {255, 0, 128}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double v[3];
        memcpy(v, cases[i].v, sizeof v);
        int64_t one = 1;
        cm_model_t c = model_of(1, 3, v, &one);
        p = palette_of(&c, cases[i].t);
        assert_memory_equal(p->colors[0].rgb, cases[i].want, 3);
        cm_palette_free(p);
    }

    /* Neither grey nor RGB: the palette has counts but no colours, and cannot be saved. */
    double five[5] = {1, 2, 3, 4, 5};
    int64_t one = 1;
    cm_model_t ms = model_of(1, 5, five, &one);
    p = palette_of(&ms, CM_U8);
    assert_false(p->has_rgb);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    char path[FX_PATH_MAX];
    assert_int_equal(cm_palette_save(p, fx_path(path, "five.txt"), NULL, &ctx), CM_EUSAGE);
    assert_non_null(strstr(ctx.msg, "five.txt"));
    assert_false(fx_exists(path));
    cm_palette_free(p);
}

static void test_format_is_chosen_by_extension_in_any_case(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        int want; /* -1: refused */
    } cases[] = {
        {"p.gpl", CM_PALETTE_GPL},
        {"d/P.GPL", CM_PALETTE_GPL},
        {"p.txt", CM_PALETTE_HEX},
        {"p.Hex", CM_PALETTE_HEX},
        {"a.b/p.png", CM_PALETTE_PNG},
        {"p.k5.png", CM_PALETTE_PNG},
        {"p.json", -1},
        {"p", -1},
        {".gpl", -1},
        {"d.gpl/p", -1},
        {"p.gpl.bak", -1},
        {"p.", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_palette_format_t f = (cm_palette_format_t)-1;
        int rc = cm_palette_format_of_path(cases[i].path, &f, &ctx);
        if (cases[i].want >= 0) {
            if (rc != 0 || (int)f != cases[i].want)
                fail_msg("%s: rc %d, format %d, not %d", cases[i].path, rc, (int)f, cases[i].want);
            continue;
        }
        /* Refused as a usage error that names the file and every extension accepted. */
        if (rc != CM_EUSAGE || strncmp(ctx.msg, cases[i].path, strlen(cases[i].path)) ||
            !strstr(ctx.msg, ".gpl") || !strstr(ctx.msg, ".txt") || !strstr(ctx.msg, ".hex") ||
            !strstr(ctx.msg, ".png"))
            fail_msg("%s: rc %d, message '%s'", cases[i].path, rc, ctx.msg);
    }
    /* Planning: grey or RGB only. */
    for (int d = 1; d <= 6; d++) {
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        int rc = cm_palette_check("p.png", d, &ctx);
        assert_int_equal(rc, d == 1 || d == 3 ? 0 : CM_EUSAGE);
        if (rc) assert_non_null(strstr(ctx.msg, "p.png"));
    }
}

/* A deterministic generator for the counts of the width tests. */
static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

/* The widths of palette p in a strip of width columns: they sum to it, and a colour of a share
 * of at least one column is within one column of it, any other with pixels has exactly one. */
static void check_widths(const cm_palette_t *p, int64_t width)
{
    int64_t *w = calloc((size_t)p->k, sizeof(int64_t)), sum = 0;
    assert_non_null(w);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_palette_widths(p, width, w, &ctx), 0);
    bool tiny = false;
    for (int i = 0; i < p->k; i++) tiny |= p->colors[i].count > 0 && p->colors[i].share * width < 1;
    for (int i = 0; i < p->k; i++) {
        double want = p->total ? p->colors[i].share * (double)width : (double)width / p->k;
        sum += w[i];
        if (p->total && p->colors[i].count == 0)
            assert_int_equal(w[i], 0);
        else if (want < 1)
            assert_int_equal(w[i], 1);
        else if (!tiny && (w[i] < want - 1 || w[i] > want + 1))
            fail_msg("colour %d of %d: %lld columns for a share of %.3f", i, p->k, (long long)w[i],
                     want);
        else
            assert_true(w[i] >= 1);
    }
    assert_int_equal(sum, width);
    free(w);
}

static void test_widths_sum_to_the_strip_and_follow_the_shares(void **state)
{
    (void)state;
    uint64_t seed = 12345;
    for (int round = 0; round < 400; round++) {
        int k = 1 + (int)(next(&seed) % 40);
        double *c = calloc((size_t)k, sizeof(double));
        int64_t *n = calloc((size_t)k, sizeof(int64_t));
        assert_non_null(c);
        assert_non_null(n);
        int64_t scale = round % 3 == 0 ? 1 : round % 3 == 1 ? 1000 : 1LL << 40;
        for (int j = 0; j < k; j++) n[j] = (int64_t)(next(&seed) % 1000) * scale;
        if (round % 7 == 0) n[0] = 0; /* an unused colour */
        cm_model_t m = model_of(k, 1, c, n);
        cm_palette_t *p = palette_of(&m, CM_U8);
        check_widths(p, CM_PALETTE_SWATCH_WIDTH);
        check_widths(p, 40 + round);
        cm_palette_free(p);
        free(c);
        free(n);
    }

    /* The rounding of equal remainders, and equal shares, go to the earlier colour. */
    double c3[3] = {0};
    int64_t n3[3] = {1, 1, 1};
    cm_model_t m = model_of(3, 1, c3, n3);
    cm_palette_t *p = palette_of(&m, CM_U8);
    int64_t w[3];
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_palette_widths(p, 1000, w, &ctx), 0);
    assert_int_equal(w[0], 334);
    assert_int_equal(w[1], 333);
    assert_int_equal(w[2], 333);
    cm_palette_free(p);

    /* A colour of one pixel in a million still shows, as one column; the others share the 999
     * left (599.4 and 399.6 columns), and stay within one column of their shares here. */
    int64_t rare[3] = {600000, 399999, 1};
    m.counts = rare;
    p = palette_of(&m, CM_U8);
    assert_int_equal(cm_palette_widths(p, 1000, w, &ctx), 0);
    assert_int_equal(w[0], 599);
    assert_int_equal(w[1], 400);
    assert_int_equal(w[2], 1);
    check_widths(p, 1000);

    /* A strip narrower than the colours with pixels cannot show them. */
    assert_int_equal(cm_palette_widths(p, 2, w, &ctx), CM_EUSAGE);
    cm_palette_free(p);

    /* No counts: equal widths. */
    int64_t none[3] = {0, 0, 0};
    m.counts = none;
    p = palette_of(&m, CM_U8);
    cm_ctx_init(&ctx);
    assert_int_equal(cm_palette_widths(p, 10, w, &ctx), 0);
    assert_int_equal(w[0] + w[1] + w[2], 10);
    assert_int_equal(w[0], 4);
    assert_int_equal(w[2], 3);
    assert_int_equal(cm_palette_swatch_width(p), CM_PALETTE_SWATCH_WIDTH);
    cm_palette_free(p);

    /* More colours with pixels than the strip's columns: a column each. */
    int many = 1500;
    double *cm_ = calloc((size_t)many, sizeof(double));
    int64_t *nm = calloc((size_t)many, sizeof(int64_t));
    assert_non_null(cm_);
    assert_non_null(nm);
    for (int j = 0; j < many; j++) nm[j] = j < 10 ? 1000000 : 1;
    m = model_of(many, 1, cm_, nm);
    p = palette_of(&m, CM_U8);
    assert_int_equal(cm_palette_swatch_width(p), many);
    check_widths(p, many);
    cm_palette_free(p);
    free(cm_);
    free(nm);
}

/* The lines of a text file into lines (up to max, each without its newline); their number. */
static int read_lines(const char *path, char lines[][128], int max)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n = 0;
    while (n < max && fgets(lines[n], 128, f)) {
        lines[n][strcspn(lines[n], "\n")] = '\0';
        n++;
    }
    fclose(f);
    return n;
}

static void test_text_palettes_hold_every_colour(void **state)
{
    (void)state;
    double c[3 * 3] = {10, 20, 30, 200, 100, 50, 0, 0, 255};
    int64_t n[3] = {1, 6, 3};
    cm_model_t m = model_of(3, 3, c, n);
    cm_palette_t *p = palette_of(&m, CM_U8);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    char path[FX_PATH_MAX], lines[16][128];

    assert_int_equal(cm_palette_save(p, fx_path(path, "p.hex"), NULL, &ctx), 0);
    assert_int_equal(read_lines(path, lines, 16), 3);
    assert_string_equal(lines[0], "#c86432 6 60.00%");
    assert_string_equal(lines[1], "#0000ff 3 30.00%");
    assert_string_equal(lines[2], "#0a141e 1 10.00%");

    /* GIMP's format: the header, comments, then "R G B<TAB>name" for each colour. */
    assert_int_equal(cm_palette_save(p, fx_path(path, "p.GPL"), "cat k=3", &ctx), 0);
    int got = read_lines(path, lines, 16);
    assert_string_equal(lines[0], "GIMP Palette");
    assert_string_equal(lines[1], "Name: cat k=3");
    assert_string_equal(lines[2], "Columns: 3");
    int at = 3;
    while (at < got && lines[at][0] == '#') at++;
    assert_int_equal(got - at, 3);
    assert_string_equal(lines[at], "200 100  50\t#c86432 60.00%");
    assert_string_equal(lines[at + 2], " 10  20  30\t#0a141e 10.00%");

    /* Without a name, the file's. */
    assert_int_equal(cm_palette_save(p, fx_path(path, "mine.gpl"), NULL, &ctx), 0);
    read_lines(path, lines, 16);
    assert_string_equal(lines[1], "Name: mine");

    /* Nothing is written where it cannot be, nor under an extension that says no format. */
    assert_int_equal(cm_palette_save(p, fx_path(path, "no/such/dir/p.txt"), NULL, &ctx), CM_EIO);
    cm_ctx_init(&ctx);
    assert_int_equal(cm_palette_save(p, fx_path(path, "p.pal"), NULL, &ctx), CM_EUSAGE);
    assert_false(fx_exists(path));
    cm_palette_free(p);
}

/* The pixels of a PNG as the library reads it (8-bit RGB): malloc'd, with its size. */
static uint8_t *read_png(const char *path, int64_t *w, int64_t *h)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(path, 1, &img, &ctx), 0);
    assert_int_equal(cm_image_prepare(img, fx_dir, 0, &ctx), 0);
    const cm_image_info_t *in = cm_image_info(img);
    assert_int_equal(in->format, CM_FILE_PNG);
    assert_int_equal(in->bands, 3);
    assert_int_equal(in->stype, CM_U8);
    *w = in->width;
    *h = in->height;
    uint8_t *px = malloc((size_t)(in->width * in->height * 3));
    uint8_t *chunk = malloc(cm_grid_chunk_bytes(&in->grid));
    assert_non_null(px);
    assert_non_null(chunk);
    for (int64_t i = 0; i < cm_grid_count(&in->grid); i++) {
        int64_t x, y, cw, ch;
        cm_grid_rect(&in->grid, i, &x, &y, &cw, &ch);
        assert_int_equal(cm_image_read_chunk(img, 0, i, chunk, &ctx), 0);
        for (int64_t r = 0; r < ch; r++)
            memcpy(px + ((y + r) * in->width + x) * 3, chunk + r * cw * 3, (size_t)(cw * 3));
    }
    free(chunk);
    cm_image_close(img);
    return px;
}

static void test_swatch_png_shows_each_colour_as_wide_as_its_share(void **state)
{
    (void)state;
    double c[4] = {0, 85, 170, 255};
    int64_t n[4] = {100, 333, 500, 67};
    cm_model_t m = model_of(4, 1, c, n);
    cm_palette_t *p = palette_of(&m, CM_U8);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    char path[FX_PATH_MAX];
    assert_int_equal(cm_palette_save(p, fx_path(path, "s.png"), NULL, &ctx), 0);
    int64_t w, h;
    uint8_t *px = read_png(path, &w, &h);
    assert_int_equal(w, CM_PALETTE_SWATCH_WIDTH);
    assert_int_equal(h, CM_PALETTE_SWATCH_HEIGHT);
    /* Runs of one grey, largest share first: 500, 333, 100 and 67 columns; every row alike. */
    static const int64_t want_w[4] = {500, 333, 100, 67};
    static const uint8_t want_v[4] = {170, 85, 0, 255};
    int64_t x = 0;
    for (int i = 0; i < 4; i++)
        for (int64_t j = 0; j < want_w[i]; j++, x++)
            for (int b = 0; b < 3; b++) assert_int_equal(px[3 * x + b], want_v[i]);
    for (int64_t y = 1; y < h; y++) assert_memory_equal(px + y * w * 3, px, (size_t)(w * 3));
    free(px);
    cm_palette_free(p);
}

/* ---- run and fit ---- */

static uint8_t quadrants(int64_t x, int64_t y, int band)
{
    static const uint8_t quad[4][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {220, 220, 40}};
    return quad[(x >= 60) + 2 * (y >= 40)][band];
}

static void test_run_and_fit_write_the_palette_with_their_files(void **state)
{
    (void)state;
    char in[FX_PATH_MAX], out[FX_PATH_MAX], pal[FX_PATH_MAX], model[FX_PATH_MAX];
    const fx_tiff_t image = {.width = 80,
                             .height = 64,
                             .spp = 3,
                             .photometric = PHOTOMETRIC_RGB,
                             .compression = COMPRESSION_NONE,
                             .stype = CM_U8,
                             .tile_w = 16,
                             .tile_h = 16};
    fx_tiff_make(fx_path(in, "quad.tif"), &image, quadrants);
    cm_options_t o;
    cm_options_default(&o);
    o.params.k = 4;
    o.params.n_threads = 2;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_run_output_t run = {.out = fx_path(out, "quad.out.tif"),
                           .palette = fx_path(pal, "quad.txt"),
                           .model = fx_path(model, "quad.json")};
    assert_int_equal(cm_run_file(in, &run, 1, &o, NULL, &ctx), 0);
    char lines[16][128];
    assert_int_equal(read_lines(pal, lines, 16), 4);
    /* Quadrants of 60 x 40, 20 x 40, 60 x 24 and 20 x 24 pixels. */
    assert_string_equal(lines[0], "#c81e1e 2400 46.88%");
    assert_string_equal(lines[1], "#1e1ec8 1440 28.12%");
    assert_string_equal(lines[2], "#1ec81e 800 15.62%");
    assert_string_equal(lines[3], "#dcdc28 480 9.38%");
    cm_model_free(run.fitted);

    /* A run that fails (its image cannot be written) leaves no palette, nor a model. */
    unlink(pal);
    unlink(model);
    run.out = fx_path(out, "missing/quad.out.tif");
    cm_ctx_init(&ctx);
    assert_int_equal(cm_run_file(in, &run, 1, &o, NULL, &ctx), CM_EIO);
    assert_false(fx_exists(pal));
    assert_false(fx_exists(model));

    /* An extension that says no format is refused before the input is even read. */
    run.out = fx_path(out, "quad.out.tif");
    run.palette = "quad.pal";
    cm_ctx_init(&ctx);
    assert_int_equal(cm_run_file("no such input.tif", &run, 1, &o, NULL, &ctx), CM_EUSAGE);
    assert_non_null(strstr(ctx.msg, "quad.pal"));

    /* fit: the palette of the model, with the model. */
    o.palette_path = fx_path(pal, "fit.gpl");
    cm_model_t *fitted = NULL;
    const char *ins[1] = {in};
    cm_ctx_init(&ctx);
    assert_int_equal(cm_fit_files(ins, 1, fx_path(model, "fit.json"), &o, &fitted, NULL, &ctx), 0);
    int got = read_lines(pal, lines, 16);
    assert_int_equal(got, 5 + 4);
    assert_string_equal(lines[0], "GIMP Palette");
    assert_string_equal(lines[1], "Name: quad.tif k=4");
    assert_string_equal(lines[got - 4], "200  30  30\t#c81e1e 46.88%");
    cm_model_free(fitted);
    o.palette_path = "fit.bmp";
    cm_ctx_init(&ctx);
    assert_int_equal(cm_fit_files(ins, 1, NULL, &o, &fitted, NULL, &ctx), CM_EUSAGE);
    assert_null(fitted);
}

static int setup(void **state)
{
    (void)state;
    return fx_dir_make("test_palette");
}

static int teardown(void **state)
{
    (void)state;
    return fx_dir_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_colours_come_largest_first_ties_to_the_lower_label),
        cmocka_unit_test(test_line_is_hex_count_and_percent_with_two_decimals),
        cmocka_unit_test(test_grey_and_other_sample_types_give_8_bit_colours),
        cmocka_unit_test(test_format_is_chosen_by_extension_in_any_case),
        cmocka_unit_test(test_widths_sum_to_the_strip_and_follow_the_shares),
        cmocka_unit_test(test_text_palettes_hold_every_colour),
        cmocka_unit_test(test_swatch_png_shows_each_colour_as_wide_as_its_share),
        cmocka_unit_test(test_run_and_fit_write_the_palette_with_their_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
