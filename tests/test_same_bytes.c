/* The command and the library are one code path: `chunkmeans run` and `fit` give, byte for byte,
 * the outputs, label maps, models and summaries that cm_run_file and cm_fit_files give for the
 * same inputs and settings: (a) a plain photo, (b) a list of k, (c) an image with alpha and
 * nodata whose valid pixels are fewer than k, (d) a fit on three files, (e) the any rule of
 * nodata and (f) associated alpha, each at -j1 and -j2. The command runs in a
 * directory of its own and the library in another, with the same relative names, so that even
 * the paths a summary holds agree.
 * Usage: test_same_bytes CHUNKMEANS CM-MKIMAGE */
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

#include "chunkmeans.h"
#include "fixtures.h"

static const char *command, *mkimage;

/* Runs a shell line in fx_dir/sub, failing the test when it does not exit 0. */
static void shell(const char *sub, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void shell(const char *sub, const char *fmt, ...)
{
    char line[4 * FX_PATH_MAX], cmd[2 * FX_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    snprintf(line, sizeof line, "cd '%s/%s' && %s", fx_dir, sub, cmd);
    if (system(line) != 0) fail_msg("failed: %s", line);
}

/* A colour of a few levels per band, premultiplied by an alpha that runs over every value. */
static uint8_t premultiplied_value(int64_t x, int64_t y, int band)
{
    unsigned alpha = (unsigned)(x * 7 + y * 3) % 256;
    unsigned color = (unsigned)((x / 20 + y / 15 * (band + 1)) % 4) * 80;
    return (uint8_t)(band == 3 ? alpha : (color * alpha + 127) / 255);
}

static int make_inputs(void **state)
{
    (void)state;
    if (fx_dir_make("test_same_bytes") < 0) return -1;
    char dir[FX_PATH_MAX];
    if (mkdir(fx_path(dir, "cmd"), 0777) < 0 || mkdir(fx_path(dir, "lib"), 0777) < 0) return -1;
    /* (a, b) a photo; (c) 6 x 4 RGBA whose first row and one more pixel are nodata and whose
     * alpha ramp starts at 0 (two more pixels of the second row and one of the third): 16
     * valid pixels; (d) three photos of other sizes. */
    const char *images[] = {
        "photo.tif --width 500 --height 300 --tile 128 --compression deflate",
        "masked.tif --width 6 --height 4 --bands 4 --nodata 7 --tile 16 --compression lzw",
        "a.tif --width 200 --height 120 --seed 1 --tile 64",
        "b.tif --width 90 --height 160 --seed 2 --strip 7 --compression zstd",
        "c.tif --width 130 --height 130 --seed 3 --tile 32 --compression none",
    };
    char line[2 * FX_PATH_MAX];
    for (size_t i = 0; i < sizeof images / sizeof images[0]; i++) {
        snprintf(line, sizeof line, "cd '%s' && '%s' %s --quiet", fx_dir, mkimage, images[i]);
        if (system(line) != 0) return -1;
    }
    /* (f) RGBA of associated alpha, every alpha from 0 to 255, colours premultiplied. */
    fx_tiff_t assoc = {.width = 160,
                       .height = 120,
                       .spp = 4,
                       .photometric = PHOTOMETRIC_RGB,
                       .compression = COMPRESSION_NONE,
                       .n_extra = 1,
                       .extra = {EXTRASAMPLE_ASSOCALPHA},
                       .tile_w = 32,
                       .tile_h = 32};
    return fx_tiff_write(fx_path(line, "assoc.tif"), &assoc, premultiplied_value) ? 0 : -1;
}

static int remove_inputs(void **state)
{
    (void)state;
    return fx_dir_remove();
}

/* The warnings the library gave, for the tests to read. */
typedef struct heard {
    cm_ctx_t w[8];
    int n;
} heard_t;

static void hear(void *user, const cm_ctx_t *warning)
{
    heard_t *h = user;
    if (h->n < 8) h->w[h->n++] = *warning;
}

/* The options the command takes by default, with --seed 3 and -j 2. */
static cm_options_t options(heard_t *heard)
{
    cm_options_t o;
    cm_options_default(&o);
    o.params.seed = 3;
    o.params.n_threads = 2;
    o.warn = hear;
    o.user = heard;
    return o;
}

/* The library runs in fx_dir/lib, with relative names as the command gets them. */
static char cwd[FX_PATH_MAX];

static void enter_lib_dir(void)
{
    char lib[FX_PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(fx_path(lib, "lib")), 0);
}

static void leave_lib_dir(void)
{
    assert_int_equal(chdir(cwd), 0);
}

static int in_lib_dir(const char *in, cm_run_output_t *outs, int n, const cm_options_t *o,
                      cm_ctx_t *ctx)
{
    enter_lib_dir();
    int rc = cm_run_file(in, outs, n, o, NULL, ctx);
    leave_lib_dir();
    return rc;
}

/* Requires fx_dir/cmd/name and fx_dir/lib/name to exist with the same bytes. */
static void same(const char *name)
{
    char a[FX_PATH_MAX], b[FX_PATH_MAX], ra[FX_PATH_MAX + 8], rb[FX_PATH_MAX + 8];
    snprintf(ra, sizeof ra, "cmd/%s", name);
    snprintf(rb, sizeof rb, "lib/%s", name);
    fx_path(a, ra);
    fx_path(b, rb);
    if (!fx_exists(a) || !fx_exists(b)) fail_msg("%s: missing from cmd/ or lib/", name);
    if (!fx_same_bytes(a, b)) fail_msg("%s: the command and the library differ", name);
}

/* Requires every file of the n outputs to be the same in cmd/ and lib/; frees their models. */
static void same_outputs(cm_run_output_t *outs, int n)
{
    for (int i = 0; i < n; i++) {
        cm_model_free(outs[i].fitted);
        same(outs[i].out);
        same(outs[i].labels);
        same(outs[i].model);
    }
}

static void test_a_plain_photo(void **state)
{
    (void)state;
    shell("cmd",
          "'%s' run ../photo.tif p.tif --seed 3 -j 2 --labels p.labels.tif --model-out "
          "p.json --summary p.summary.json -q",
          command);
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    o.summary_path = "p.summary.json";
    cm_run_output_t out = {.out = "p.tif", .labels = "p.labels.tif", .model = "p.json"};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(in_lib_dir("../photo.tif", &out, 1, &o, &ctx), 0);
    assert_int_equal(out.fitted->k, 8);
    same_outputs(&out, 1);
    same("p.summary.json");
}

static void test_b_a_list_of_k(void **state)
{
    (void)state;
    shell("cmd",
          "'%s' run ../photo.tif l.tif -k 2,5,10 --seed 3 -j 2 --labels l.labels.tif "
          "--model-out l.json --summary l.summary.json -q",
          command);
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    o.summary_path = "l.summary.json";
    cm_run_output_t outs[3] = {
        {2, "l.k2.tif", "l.labels.k2.tif", "l.k2.json", NULL, NULL, NULL},
        {5, "l.k5.tif", "l.labels.k5.tif", "l.k5.json", NULL, NULL, NULL},
        {10, "l.k10.tif", "l.labels.k10.tif", "l.k10.json", NULL, NULL, NULL},
    };
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(in_lib_dir("../photo.tif", outs, 3, &o, &ctx), 0);
    for (int i = 0; i < 3; i++) assert_int_equal(outs[i].fitted->k, outs[i].k);
    same_outputs(outs, 3);
    same("l.summary.json");
}

static void test_c_alpha_and_nodata_with_fewer_valid_pixels_than_k(void **state)
{
    (void)state;
    /* 20 is below the 24 pixels but above the 16 valid ones; 40 is above both. */
    shell("cmd",
          "'%s' run ../masked.tif m.tif -k 20 --seed 3 -j 2 --labels m.labels.tif "
          "--model-out m.json 2>m.err",
          command);
    shell("cmd",
          "'%s' run ../masked.tif n.tif -k 5,40 --seed 3 -j 2 --labels n.labels.tif "
          "--model-out n.json --summary n.summary.json -q",
          command);
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    cm_run_output_t one = {20, "m.tif", "m.labels.tif", "m.json", NULL, NULL, NULL};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(in_lib_dir("../masked.tif", &one, 1, &o, &ctx), 0);
    assert_int_equal(one.fitted->k, 16); /* lowered to the valid pixels */
    /* The library warned about k in its own words, and the command said it with its flag. */
    assert_int_equal(heard.n, 1);
    assert_int_equal(heard.w[0].about.setting, CM_SETTING_K);
    assert_int_equal(heard.w[0].about.value, 20);
    assert_null(strstr(heard.w[0].msg, "-k"));
    char err[FX_PATH_MAX];
    size_t size;
    char *text = fx_read_file(fx_path(err, "cmd/m.err"), &size);
    text = realloc(text, size + 1);
    assert_non_null(text);
    text[size] = '\0';
    assert_non_null(strstr(text, "-k 20 is more than its 16 pixels that take part; using k=16"));
    free(text);
    same_outputs(&one, 1);

    o.summary_path = "n.summary.json";
    cm_run_output_t two[2] = {
        {5, "n.k5.tif", "n.labels.k5.tif", "n.k5.json", NULL, NULL, NULL},
        {40, "n.k40.tif", "n.labels.k40.tif", "n.k40.json", NULL, NULL, NULL}};
    assert_int_equal(in_lib_dir("../masked.tif", two, 2, &o, &ctx), 0);
    assert_int_equal(two[0].fitted->k, 5);
    assert_int_equal(two[1].fitted->k, 16);
    same_outputs(two, 2);
    same("n.summary.json");
}

static void test_d_a_fit_on_three_files(void **state)
{
    (void)state;
    shell("cmd", "'%s' fit ../a.tif ../b.tif ../c.tif -k 6 --seed 3 -j 2 -o f.json -q", command);
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    o.params.k = 6;
    const char *ins[3] = {"../a.tif", "../b.tif", "../c.tif"};
    enter_lib_dir();
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    int rc = cm_fit_files(ins, 3, "f.json", &o, &model, &meta, &ctx);
    leave_lib_dir();
    assert_int_equal(rc, 0);
    assert_int_equal(model->k, 6);
    assert_int_equal(meta.bands, 3);
    cm_model_free(model);
    same("f.json");
}

/* The command with its flags and the library with the options they stand for give the same
 * bytes, at -j1 and -j2 alike. */
static void same_at_j1_and_j2(const char *in, const char *name, const char *flags,
                              const cm_options_t *base)
{
    for (int j = 1; j <= 2; j++) {
        char out[64], labels[64];
        snprintf(out, sizeof out, "%s.j%d.tif", name, j);
        snprintf(labels, sizeof labels, "%s.labels.j%d.tif", name, j);
        shell("cmd", "'%s' run %s %s -k 6 --seed 3 -j %d --labels %s %s -q", command, in, out, j,
              labels, flags);
        cm_options_t o = *base;
        o.params.k = 6;
        o.params.n_threads = j;
        cm_run_output_t one = {.out = out, .labels = labels};
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(in_lib_dir(in, &one, 1, &o, &ctx), 0);
        cm_model_free(one.fitted);
        same(out);
        same(labels);
    }
    char a[FX_PATH_MAX], b[FX_PATH_MAX], ra[FX_PATH_MAX], rb[FX_PATH_MAX];
    snprintf(ra, sizeof ra, "cmd/%s.j1.tif", name);
    snprintf(rb, sizeof rb, "cmd/%s.j2.tif", name);
    if (!fx_same_bytes(fx_path(a, ra), fx_path(b, rb))) fail_msg("%s: -j1 and -j2 differ", name);
    snprintf(ra, sizeof ra, "cmd/%s.labels.j1.tif", name);
    snprintf(rb, sizeof rb, "cmd/%s.labels.j2.tif", name);
    if (!fx_same_bytes(fx_path(a, ra), fx_path(b, rb))) fail_msg("%s: -j1 and -j2 differ", name);
}

static void test_e_the_any_rule_of_nodata(void **state)
{
    (void)state;
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    o.has_nodata = true;
    o.nodata = 240;
    o.nodata_any = true;
    same_at_j1_and_j2("../photo.tif", "any", "--nodata 240 --nodata-match any", &o);
    o.nodata_any = false;
    same_at_j1_and_j2("../photo.tif", "all", "--nodata 240", &o);
    /* The rules differ on this photo: some pixels have a sample at 240, not all three. */
    char a[FX_PATH_MAX], b[FX_PATH_MAX];
    assert_false(
        fx_same_bytes(fx_path(a, "cmd/any.labels.j1.tif"), fx_path(b, "cmd/all.labels.j1.tif")));
}

static void test_f_associated_alpha(void **state)
{
    (void)state;
    heard_t heard = {0};
    cm_options_t o = options(&heard);
    same_at_j1_and_j2("../assoc.tif", "assoc", "", &o);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: test_same_bytes CHUNKMEANS CM-MKIMAGE\n");
        return 2;
    }
    /* Absolute: they run from the scratch directory. */
    command = realpath(argv[1], NULL);
    mkimage = realpath(argv[2], NULL);
    if (!command || !mkimage) {
        fprintf(stderr, "test_same_bytes: %s or %s not found\n", argv[1], argv[2]);
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_plain_photo),
        cmocka_unit_test(test_b_a_list_of_k),
        cmocka_unit_test(test_c_alpha_and_nodata_with_fewer_valid_pixels_than_k),
        cmocka_unit_test(test_d_a_fit_on_three_files),
        cmocka_unit_test(test_e_the_any_rule_of_nodata),
        cmocka_unit_test(test_f_associated_alpha),
    };
    int failed = cmocka_run_group_tests(tests, make_inputs, remove_inputs);
    free((char *)command);
    free((char *)mkimage);
    return failed;
}
