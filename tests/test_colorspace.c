/* Unit tests of the colour arithmetic of the engine (engine/colorspace.c) and of the starting
 * centres a fit can be given (cm_init_from_json): sRGB to CIELAB against published values,
 * the round trip, ΔE76 and CIEDE2000 against Sharma's test data, and the parser's refusals. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_internal.h"

static void expect_near(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) print_error("got %.17g, want %.17g +- %g\n", got, want, tol);
    assert_true(fabs(got - want) <= tol);
}

static void expect_lab(cm_stype_t t, double r, double g, double b, double l, double a, double bb,
                       double tol)
{
    double rgb[3] = {r, g, b}, lab[3];
    cm__srgb_to_lab(t, rgb, lab);
    expect_near(lab[0], l, tol);
    expect_near(lab[1], a, tol);
    expect_near(lab[2], bb, tol);
}

static void test_srgb_to_lab_gives_the_published_values(void **state)
{
    (void)state;
    /* White is (100, 0, 0) in every sample type; black (0, 0, 0). */
    expect_lab(CM_U8, 255, 255, 255, 100, 0, 0, 1e-3);
    expect_lab(CM_U16, 65535, 65535, 65535, 100, 0, 0, 1e-3);
    expect_lab(CM_F32, 1, 1, 1, 100, 0, 0, 1e-3);
    expect_lab(CM_U8, 0, 0, 0, 0, 0, 0, 1e-9);
    /* The sRGB primaries (D65; as Lindbloom's and colormath's calculators give them). */
    expect_lab(CM_U8, 255, 0, 0, 53.2408, 80.0925, 67.2032, 0.01);
    expect_lab(CM_U8, 0, 255, 0, 87.7347, -86.1827, 83.1793, 0.01);
    expect_lab(CM_U8, 0, 0, 255, 32.2970, 79.1875, -107.8602, 0.01);
    expect_lab(CM_F32, 1, 0, 0, 53.2408, 80.0925, 67.2032, 0.01);
    expect_lab(CM_U16, 0, 0, 65535, 32.2970, 79.1875, -107.8602, 0.01);
    /* A mid grey: sRGB 119 is L* 50 within a tenth, and has no colour. */
    double grey[3] = {119, 119, 119}, lab[3];
    cm__srgb_to_lab(CM_U8, grey, lab);
    expect_near(lab[0], 50.0, 0.1);
    expect_near(lab[1], 0.0, 1e-3);
    expect_near(lab[2], 0.0, 1e-3);
}

static void test_lab_round_trip_is_within_half_a_level(void **state)
{
    (void)state;
    double worst = 0;
    for (int r = 0; r < 256; r += 3)
        for (int g = 0; g < 256; g += 5)
            for (int b = 0; b < 256; b += 7) {
                double rgb[3] = {r, g, b}, lab[3], back[3];
                cm__srgb_to_lab(CM_U8, rgb, lab);
                cm__lab_to_srgb(CM_U8, lab, back);
                for (int c = 0; c < 3; c++) worst = fmax(worst, fabs(back[c] - rgb[c]));
            }
    if (worst >= 0.5) print_error("worst round trip error %g levels\n", worst);
    assert_true(worst < 0.5);
    assert_true(worst < 1e-3); /* in fact far below */
    /* uint16 and float, and colours outside the gamut, come back too. */
    double rgb16[3] = {1234, 65535, 40000}, f[3] = {0.25, -0.01, 1.02}, lab[3], back[3];
    cm__srgb_to_lab(CM_U16, rgb16, lab);
    cm__lab_to_srgb(CM_U16, lab, back);
    for (int c = 0; c < 3; c++) expect_near(back[c], rgb16[c], 0.5);
    cm__srgb_to_lab(CM_F32, f, lab);
    cm__lab_to_srgb(CM_F32, lab, back);
    for (int c = 0; c < 3; c++) expect_near(back[c], f[c], 1e-5);
}

static void test_delta_e_matches_sharma_s_test_data(void **state)
{
    (void)state;
    /* Pairs of Sharma, Wu and Dalal's CIEDE2000 test data, with their published ΔE00. */
    static const double pairs[][7] = {
        {50.0000, 2.6772, -79.7751, 50.0000, 0.0000, -82.7485, 2.0425},
        {50.0000, 0.0000, 0.0000, 50.0000, -1.0000, 2.0000, 2.3669},
        {50.0000, 2.5000, 0.0000, 73.0000, 25.0000, -18.0000, 27.1492},
        {50.0000, 2.5000, 0.0000, 50.0000, 3.1736, 0.5854, 1.0000},
        {60.2574, -34.0099, 36.2677, 60.4626, -34.1751, 39.4387, 1.2644},
        {22.7233, 20.0904, -46.6940, 23.0331, 14.9730, -42.5619, 2.0373},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++) {
        expect_near(cm__delta_e(CM__DE2000, pairs[i], pairs[i] + 3), pairs[i][6], 1e-4);
        expect_near(cm__delta_e(CM__DE2000, pairs[i] + 3, pairs[i]), pairs[i][6], 1e-4);
    }
    double a[3] = {50, 10, -10}, b[3] = {53, 14, -10};
    expect_near(cm__delta_e(CM__DE76, a, b), 5.0, 1e-12);
    expect_near(cm__delta_e(CM__DE2000, a, a), 0.0, 1e-12);
}

static void test_mean_delta_e_of_images_skips_transparent_pixels(void **state)
{
    (void)state;
    /* RGBA: the second pixel differs but is transparent in a; the first differs by a known
     * Lab distance. */
    uint8_t a[8] = {255, 0, 0, 255, 0, 0, 0, 0}, b[8] = {255, 255, 255, 255, 9, 9, 9, 9};
    double red[3] = {255, 0, 0}, white[3] = {255, 255, 255}, lr[3], lw[3];
    cm__srgb_to_lab(CM_U8, red, lr);
    cm__srgb_to_lab(CM_U8, white, lw);
    expect_near(cm__mean_delta_e(CM__DE76, CM_U8, a, b, 2, 4, 3), cm__delta_e(CM__DE76, lr, lw),
                1e-9);
    expect_near(cm__mean_delta_e(CM__DE76, CM_U8, a, a, 2, 4, 3), 0.0, 1e-12);
    assert_true(isnan(cm__mean_delta_e(CM__DE76, CM_U8, a, b, 4, 2, -1))); /* 2 bands: no colour */
}

/* ---- starting centres ---- */

static int parse(const char *text, int d, double **c, int *k, cm_ctx_t *ctx)
{
    cm_ctx_init(ctx);
    return cm__init_from_json(text, strlen(text), "start.json", d, c, k, ctx);
}

static void test_init_reads_colors_and_plain_lists(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    double *c = NULL;
    int k = 0;
    assert_int_equal(parse("{\"colors\": [[255, 0, 0], [0, 0, 255.5]]}", 3, &c, &k, &ctx), 0);
    assert_int_equal(k, 2);
    static const double want[6] = {255, 0, 0, 0, 0, 255.5};
    assert_memory_equal(c, want, sizeof want);
    free(c);
    assert_int_equal(parse("[[1], [2], [3]]", 1, &c, &k, &ctx), 0);
    assert_int_equal(k, 3);
    assert_true(c[0] == 1 && c[1] == 2 && c[2] == 3);
    free(c);
}

static void test_init_reads_the_centroids_of_a_model(void **state)
{
    (void)state;
    cm_model_t m = {.k = 2,
                    .d = 3,
                    .centroids = (double[]){10, 20, 30, 40.25, 50, 60},
                    .counts = (int64_t[]){5, 6},
                    .colorspace = CM_COLORSPACE_LAB};
    char *text = cm__model_to_json(&m, 3, -1, "uint8");
    assert_non_null(text);
    cm_ctx_t ctx;
    double *c = NULL;
    int k = 0;
    assert_int_equal(parse(text, 3, &c, &k, &ctx), 0);
    assert_int_equal(k, 2);
    assert_memory_equal(c, m.centroids, 6 * sizeof(double));
    free(c);
    /* A model of other bands does not fit the image. */
    assert_int_equal(parse(text, 4, &c, &k, &ctx), CM_EINPUT);
    assert_null(c);
    assert_non_null(strstr(ctx.msg, "start.json"));
    assert_non_null(strstr(ctx.msg, "3 features"));
    free(text);
}

static void test_init_refuses_rows_of_the_wrong_length_and_other_junk(void **state)
{
    (void)state;
    static const struct {
        const char *text, *says;
    } cases[] = {
        {"{\"colors\": [[255, 0, 0], [0, 0, 255, 7]]}", "colors[1] has 4 values"},
        {"[[1, 2]]", "colours[0] has 2 values"},
        {"{\"colors\": []}", "from 1 to 65535"},
        {"[[1, 2, \"x\"]]", "colours[0][2] must be a finite number"},
        {"[[1, 2, 3], 4]", "colours[1] must be a list of 3 numbers"},
        {"{\"colours\": [[1, 2, 3]]}", "starting centres must be"},
        {"{\"k\": 3}", "starting centres must be"},
        {"[[1, 2, 3]", "not JSON"},
        {"{\"format\": \"chunkmeans-model\"}", "not a chunkmeans model"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cm_ctx_t ctx;
        double *c = (double *)&ctx; /* must come back NULL */
        int k = -1;
        int rc = parse(cases[i].text, 3, &c, &k, &ctx);
        if (rc != CM_EINPUT || !strstr(ctx.msg, cases[i].says) || !strstr(ctx.msg, "start.json"))
            print_error("%s: %d %s\n", cases[i].text, rc, ctx.msg);
        assert_int_equal(rc, CM_EINPUT);
        assert_non_null(strstr(ctx.msg, "start.json"));
        assert_non_null(strstr(ctx.msg, cases[i].says));
        assert_null(c);
        assert_int_equal(k, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srgb_to_lab_gives_the_published_values),
        cmocka_unit_test(test_lab_round_trip_is_within_half_a_level),
        cmocka_unit_test(test_delta_e_matches_sharma_s_test_data),
        cmocka_unit_test(test_mean_delta_e_of_images_skips_transparent_pixels),
        cmocka_unit_test(test_init_reads_colors_and_plain_lists),
        cmocka_unit_test(test_init_reads_the_centroids_of_a_model),
        cmocka_unit_test(test_init_refuses_rows_of_the_wrong_length_and_other_junk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
