/* The file-level API of chunkmeans.h: run equals fit then apply, byte for byte; outputs hold
 * only the model's colours; models survive a save and a load; bad inputs, models that do not
 * fit and outputs that cannot be written give their codes and messages and leave nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <tiff.h>

#include "api_internal.h"
#include "chunkmeans.h"
#include "fixtures.h"

static char in_path[FX_PATH_MAX];

/* The input of every test: a 96 x 80 RGB image in tiles of 16, four quadrants of different
 * colours with a little position-based noise, so that a fit of 4 finds them. */
static uint8_t quadrants(int64_t x, int64_t y, int band)
{
    static const uint8_t quad[4][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {220, 220, 40}};
    int q = (x >= 48) + 2 * (y >= 40);
    return (uint8_t)(quad[q][band] + (int)((x * 7 + y * 13 + band * 5) % 11) - 5);
}

static int make_input(void **state)
{
    (void)state;
    if (fx_dir_make("test_api") < 0) return -1;
    const fx_tiff_t image = {.width = 96,
                             .height = 80,
                             .spp = 3,
                             .photometric = PHOTOMETRIC_RGB,
                             .compression = COMPRESSION_ADOBE_DEFLATE,
                             .stype = CM_U8,
                             .tile_w = 16,
                             .tile_h = 16};
    return fx_tiff_write(fx_path(in_path, "in.tif"), &image, quadrants) ? 0 : -1;
}

static int remove_dir(void **state)
{
    (void)state;
    return fx_dir_remove();
}

static void options_k4(cm_options_t *o)
{
    cm_options_default(o);
    o->params.k = 4;
    o->params.seed = 7;
    o->params.n_threads = 2;
}

static void test_version_is_that_of_the_headers(void **state)
{
    (void)state;
    assert_string_equal(cm_version(), CM_VERSION);
    char v[32];
    snprintf(v, sizeof v, "%d.%d.%d", CM_VERSION_MAJOR, CM_VERSION_MINOR, CM_VERSION_PATCH);
    assert_string_equal(v, CM_VERSION);
    assert_int_equal(CM_VERSION_NUMBER,
                     CM_VERSION_MAJOR * 10000 + CM_VERSION_MINOR * 100 + CM_VERSION_PATCH);
}

static void test_options_default_to_the_command_s_defaults(void **state)
{
    (void)state;
    cm_options_t o;
    memset(&o, 0xff, sizeof o);
    cm_options_default(&o);
    assert_int_equal(o.params.k, 8);
    assert_int_equal(o.params.seed, 0);
    assert_int_equal(o.compression, -1);
    assert_null(o.labels_path);
    assert_null(o.scratch_dir);
    assert_false(o.has_nodata);
    assert_int_equal(o.tile, 512);
    assert_int_equal(o.shard_index, 0); /* every job */
    assert_int_equal(o.shard_count, 0);
}

static void test_run_file_writes_what_fit_then_apply_write(void **state)
{
    (void)state;
    char run_out[FX_PATH_MAX], apply_out[FX_PATH_MAX];
    fx_path(run_out, "run.tif");
    fx_path(apply_out, "apply.tif");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    cm_run_output_t run = {.out = run_out};
    cm_run_report_t report;
    assert_int_equal(cm_run_file(in_path, &run, 1, &o, &report, &ctx), 0);
    cm_model_t *run_model = run.fitted;
    const cm_model_meta_t run_meta = report.meta;
    assert_int_equal(cm_fit_file(in_path, &o, &model, &meta, &ctx), 0);
    assert_int_equal(cm_apply_file(model, &meta, in_path, apply_out, &o, &ctx), 0);
    assert_int_equal(ctx.code, CM_OK);

    assert_int_equal(model->k, 4);
    assert_int_equal(model->d, 3);
    assert_memory_equal(model->centroids, run_model->centroids, 12 * sizeof(double));
    assert_int_equal(model->n_pixels, 96 * 80);
    assert_int_equal(run_meta.bands, 3);
    assert_int_equal(run_meta.alpha_band, -1);
    assert_int_equal(run_meta.stype, CM_U8);
    assert_string_equal(meta.version, CM_VERSION);
    size_t n_run, n_apply;
    void *a = fx_read_file(run_out, &n_run), *b = fx_read_file(apply_out, &n_apply);
    assert_int_equal(n_run, n_apply);
    assert_memory_equal(a, b, n_run);
    free(a);
    free(b);

    /* Every pixel of the output is one of the model's colours, and each quadrant is one. */
    uint8_t colors[4 * 3];
    cm_model_colors_u8(model, colors);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(run_out, 1, &img, &ctx), 0);
    const cm_grid_t *g = &cm_image_info(img)->grid;
    uint8_t *buf = malloc(cm_grid_chunk_bytes(g));
    assert_non_null(buf);
    for (int64_t idx = 0; idx < cm_grid_count(g); idx++) {
        assert_int_equal(cm_image_read_chunk(img, 0, idx, buf, &ctx), 0);
        int64_t x, y, w, h;
        cm_grid_rect(g, idx, &x, &y, &w, &h);
        for (int64_t i = 0; i < w * h; i++) {
            bool found = false;
            for (int j = 0; j < 4 && !found; j++) found = !memcmp(buf + i * 3, colors + j * 3, 3);
            assert_true(found);
        }
    }
    free(buf);
    cm_image_close(img);
    for (int j = 0; j < 4; j++) assert_int_equal(model->counts[j], 48 * 40);
    cm_model_free(model);
    cm_model_free(run_model);
}

static void test_model_saved_then_loaded_is_the_same(void **state)
{
    (void)state;
    char json[FX_PATH_MAX];
    fx_path(json, "model.json");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL, *loaded = NULL;
    cm_model_meta_t meta, loaded_meta;
    assert_int_equal(cm_fit_file(in_path, &o, &model, &meta, &ctx), 0);
    assert_int_equal(cm_model_save(model, &meta, json, &ctx), 0);
    assert_int_equal(cm_model_load(json, &loaded, &loaded_meta, &ctx), 0);
    assert_int_equal(loaded->k, model->k);
    assert_int_equal(loaded->d, model->d);
    assert_memory_equal(loaded->centroids, model->centroids, 12 * sizeof(double));
    assert_int_equal(loaded->seed, 7);
    assert_int_equal(loaded_meta.bands, 3);
    assert_int_equal(loaded_meta.alpha_band, -1);
    assert_int_equal(loaded_meta.stype, CM_U8);
    assert_string_equal(loaded_meta.version, CM_VERSION);
    cm_model_free(model);
    cm_model_free(loaded);
}

static void test_model_that_does_not_fit_the_image_is_refused_leaving_nothing(void **state)
{
    (void)state;
    char out[FX_PATH_MAX];
    fx_path(out, "misfit.tif");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    assert_int_equal(cm_fit_file(in_path, &o, &model, &meta, &ctx), 0);
    meta.stype = CM_U16;
    assert_int_equal(cm_apply_file(model, &meta, in_path, out, &o, &ctx), CM_EINPUT);
    assert_int_equal(ctx.code, CM_EINPUT);
    assert_non_null(strstr(ctx.msg, in_path));
    assert_non_null(strstr(ctx.msg, "uint16"));
    assert_false(fx_exists(out));
    cm_model_free(model);
}

static void test_missing_input_is_bad_input_naming_it(void **state)
{
    (void)state;
    char missing[FX_PATH_MAX];
    fx_path(missing, "missing.tif");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = (cm_model_t *)&ctx; /* set to NULL on failure */
    assert_int_equal(cm_fit_file(missing, &o, &model, NULL, &ctx), CM_EINPUT);
    assert_null(model);
    assert_non_null(strstr(ctx.msg, missing));
    assert_string_equal(cm_strerror(CM_EINPUT), "bad input");
}

static void test_output_that_is_a_directory_is_an_io_error_and_leaves_no_labels(void **state)
{
    (void)state;
    char labels[FX_PATH_MAX];
    fx_path(labels, "dir-labels.tif");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_run_output_t run = {.out = fx_dir, .labels = labels};
    assert_int_equal(cm_run_file(in_path, &run, 1, &o, NULL, &ctx), CM_EIO);
    assert_null(run.fitted);
    assert_non_null(strstr(ctx.msg, "is a directory"));
    assert_false(fx_exists(labels));
}

static void test_labels_path_gets_one_band_of_labels_below_k(void **state)
{
    (void)state;
    char out[FX_PATH_MAX], labels[FX_PATH_MAX];
    fx_path(out, "with-labels.tif");
    fx_path(labels, "labels.tif");
    cm_options_t o;
    options_k4(&o);
    o.compression = COMPRESSION_LZW;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_run_output_t run = {.out = out, .labels = labels};
    assert_int_equal(cm_run_file(in_path, &run, 1, &o, NULL, &ctx), 0);
    cm_model_free(run.fitted);
    cm_image_t *img = NULL;
    assert_int_equal(cm_image_open(labels, 1, &img, &ctx), 0);
    const cm_image_info_t *info = cm_image_info(img);
    assert_int_equal(info->bands, 1);
    assert_int_equal(info->stype, CM_U8);
    assert_int_equal(info->width, 96);
    assert_int_equal(info->height, 80);
    uint8_t *buf = malloc(cm_grid_chunk_bytes(&info->grid));
    assert_non_null(buf);
    assert_int_equal(cm_image_read_chunk(img, 0, 0, buf, &ctx), 0);
    assert_true(buf[0] < 4);
    free(buf);
    cm_image_close(img);
    assert_int_equal(cm_image_open(out, 1, &img, &ctx), 0);
    assert_int_equal(cm_image_info(img)->compression, COMPRESSION_LZW);
    cm_image_close(img);
}

static void test_file_that_is_no_model_is_bad_input_naming_it(void **state)
{
    (void)state;
    char json[FX_PATH_MAX];
    fx_path(json, "not-a-model.json");
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_file_write_atomic(json, "{\"k\": \"four\"}", 13, &ctx), 0);
    cm_model_t *model = NULL;
    assert_int_equal(cm_model_load(json, &model, NULL, &ctx), CM_EINPUT);
    assert_null(model);
    assert_non_null(strstr(ctx.msg, json));
}

/* Counts the jobs that ended, by state: cm_apply_files's done callback. */
typedef struct ended {
    int n[CM_FILE_OTHER_SHARD + 1];
} ended_t;

static void count_ended(void *user, const cm_file_job_t *job)
{
    ended_t *e = user;
    __atomic_fetch_add(&e->n[job->state], 1, __ATOMIC_RELAXED);
}

static void
test_apply_files_writes_each_as_apply_file_skips_what_exists_and_goes_past_failures(void **state)
{
    (void)state;
    enum { N = 6 };
    char outs[N][FX_PATH_MAX], one[FX_PATH_MAX], bad_in[FX_PATH_MAX], missing[FX_PATH_MAX];
    fx_path(one, "one.tif");
    fx_path(bad_in, "bad.tif");
    fx_path(missing, "missing.tif");
    fx_write_text(bad_in, "II*\0 not quite a TIFF");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    assert_int_equal(cm_fit_file(in_path, &o, &model, &meta, &ctx), 0);
    assert_int_equal(cm_apply_file(model, &meta, in_path, one, &o, &ctx), 0);

    /* Inputs 2 and 4 fail; the others are the same image, written as cm_apply_file writes it. */
    cm_file_job_t jobs[N] = {0};
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "batch%d.tif", i);
        fx_path(outs[i], name);
        jobs[i] = (cm_file_job_t){.in = i == 2   ? bad_in
                                        : i == 4 ? missing
                                                 : in_path,
                                  .out = outs[i]};
    }
    ended_t ended = {{0}};
    assert_int_equal(cm_apply_files(model, &meta, jobs, N, &o, count_ended, &ended, &ctx), 0);
    assert_int_equal(ctx.code, CM_OK);
    size_t n_one;
    void *want = fx_read_file(one, &n_one);
    for (int i = 0; i < N; i++) {
        if (i == 2 || i == 4) {
            assert_int_equal(jobs[i].state, CM_FILE_FAILED);
            assert_int_equal(jobs[i].rc, CM_EINPUT);
            assert_non_null(strstr(jobs[i].why.msg, jobs[i].in)); /* names the input */
            assert_false(fx_exists(outs[i]));
            continue;
        }
        assert_int_equal(jobs[i].state, CM_FILE_WRITTEN);
        assert_int_equal(jobs[i].rc, 0);
        assert_int_equal(jobs[i].width, 96);
        assert_int_equal(jobs[i].height, 80);
        assert_true(jobs[i].mse > 0);
        size_t n;
        void *got = fx_read_file(outs[i], &n);
        assert_int_equal(n, n_one);
        assert_memory_equal(got, want, n);
        free(got);
    }
    free(want);
    assert_int_equal(ended.n[CM_FILE_WRITTEN], N - 2);
    assert_int_equal(ended.n[CM_FILE_FAILED], 2);

    /* Again: what was written is skipped, and is not touched; the failures fail again. */
    struct stat before, after;
    assert_int_equal(stat(outs[0], &before), 0);
    ended = (ended_t){{0}};
    assert_int_equal(cm_apply_files(model, &meta, jobs, N, &o, count_ended, &ended, &ctx), 0);
    assert_int_equal(ended.n[CM_FILE_SKIPPED], N - 2);
    assert_int_equal(ended.n[CM_FILE_FAILED], 2);
    assert_int_equal(stat(outs[0], &after), 0);
    assert_int_equal(before.st_ino, after.st_ino);
    /* With overwrite, every good input is written again (a new file renamed into place). */
    o.overwrite = true;
    assert_int_equal(cm_apply_files(model, &meta, jobs, N, &o, NULL, NULL, &ctx), 0);
    assert_int_equal(jobs[0].state, CM_FILE_WRITTEN);
    assert_int_equal(stat(outs[0], &after), 0);
    assert_int_not_equal(before.st_ino, after.st_ino);
    cm_model_free(model);
}

static void test_apply_files_in_shards_does_each_job_in_exactly_one_part(void **state)
{
    (void)state;
    /* Five inputs of one size and a missing one (0 bytes): by the rule, parts 0 1 0 1 0 1. */
    enum { N = 6, PARTS = 2 };
    static const int part_of[N] = {0, 1, 0, 1, 0, 1};
    char outs[PARTS][N][FX_PATH_MAX], whole[N][FX_PATH_MAX], missing[FX_PATH_MAX];
    fx_path(missing, "shard-missing.tif");
    cm_options_t o;
    options_k4(&o);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    assert_int_equal(cm_fit_file(in_path, &o, &model, &meta, &ctx), 0);
    cm_file_job_t all[N] = {0};
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "whole%d.tif", i);
        all[i] =
            (cm_file_job_t){.in = i == N - 1 ? missing : in_path, .out = fx_path(whole[i], name)};
    }
    assert_int_equal(cm_apply_files(model, &meta, all, N, &o, NULL, NULL, &ctx), 0);

    for (int part = 0; part < PARTS; part++) {
        cm_file_job_t jobs[N] = {0};
        for (int i = 0; i < N; i++) {
            char name[32];
            snprintf(name, sizeof name, "part%d-%d.tif", part, i);
            jobs[i] = (cm_file_job_t){.in = all[i].in, .out = fx_path(outs[part][i], name)};
        }
        o.shard_index = part;
        o.shard_count = PARTS;
        ended_t ended = {{0}};
        assert_int_equal(cm_apply_files(model, &meta, jobs, N, &o, count_ended, &ended, &ctx), 0);
        for (int i = 0; i < N; i++) {
            if (part_of[i] != part) {
                assert_int_equal(jobs[i].state, CM_FILE_OTHER_SHARD);
                assert_false(fx_exists(outs[part][i]));
            } else if (i == N - 1) {
                assert_int_equal(jobs[i].state, CM_FILE_FAILED);
                assert_int_equal(jobs[i].rc, CM_EINPUT);
            } else {
                assert_int_equal(jobs[i].state, CM_FILE_WRITTEN);
                assert_true(fx_same_bytes(outs[part][i], whole[i]));
            }
        }
        /* done hears of the part's jobs only. */
        assert_int_equal(ended.n[CM_FILE_OTHER_SHARD], 0);
        assert_int_equal(ended.n[CM_FILE_WRITTEN] + ended.n[CM_FILE_FAILED], 3);
    }
    assert_int_equal(ctx.code, CM_OK);

    /* A part that is not one of the count's is refused before any job is touched. */
    static const int bad[][2] = {{2, 2}, {-1, 2}, {0, -1}, {1, 1}, {1, 0}};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        o.shard_index = bad[b][0];
        o.shard_count = bad[b][1];
        cm_ctx_init(&ctx);
        assert_int_equal(cm_apply_files(model, &meta, all, N, &o, NULL, NULL, &ctx), CM_EUSAGE);
    }
    cm_model_free(model);
}

/* ---- halving a level of an output (cm__halve) ---- */

/* 16-bit labels (k > 256) with two-byte pixels, and a 3 x 3 block whose odd edges halve to
 * blocks of two and of one: each output is the pixel of its block's most frequent label, ties
 * to the lower label, then to the first in raster order. */
static void test_halve_takes_the_most_frequent_label_ties_to_the_lower(void **state)
{
    (void)state;
    const uint16_t lab[9] = {300, 7, 900, /* */ 7, 300, 900, /* */ 5, 5, 1000};
    uint16_t px[9];
    for (int i = 0; i < 9; i++) px[i] = (uint16_t)(100 + i); /* each pixel its own value */
    uint16_t out_px[4] = {0}, out_lab[4] = {0};
    cm__halve((const uint8_t *)px, (const uint8_t *)lab, 2, 2, 3, 3, (uint8_t *)out_px,
              (uint8_t *)out_lab);
    /* {300, 7, 7, 300}: a tie of two pairs, 7 is lower, first at index 1 */
    assert_int_equal(out_lab[0], 7);
    assert_int_equal(out_px[0], 101);
    /* {900, 900} at the right edge */
    assert_int_equal(out_lab[1], 900);
    assert_int_equal(out_px[1], 102);
    /* {5, 5} at the bottom edge: the first of the two */
    assert_int_equal(out_lab[2], 5);
    assert_int_equal(out_px[2], 106);
    /* the corner alone */
    assert_int_equal(out_lab[3], 1000);
    assert_int_equal(out_px[3], 108);
}

/* ---- parts of a list of files (cm__shard_split) ---- */

static void test_shard_split_of_seven_files_into_three_is_the_one_worked_by_hand(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    /* Heaviest first, ties by index: 9 (#1), 9 (#3), 7, 5, 4, 2, 1. Totals of the parts as they
     * go: 9 0 0; 9 9 0; 9 9 7; 9 9 12; 13 9 12 (a tie of 9: the lower part); 13 11 12;
     * 13 12 12. */
    const int64_t w[7] = {5, 9, 2, 9, 4, 1, 7};
    int part_of[7];
    assert_int_equal(cm__shard_split(w, 7, 3, part_of, &ctx), 0);
    const int want[7] = {2, 0, 1, 1, 0, 1, 2};
    assert_memory_equal(part_of, want, sizeof want);
    /* Weights of 0 (files that cannot be stat'ed) go where the fewest bytes are, the lowest
     * such part first; parts beyond the items stay empty. */
    const int64_t z[3] = {0, 3, 0};
    int zp[3];
    assert_int_equal(cm__shard_split(z, 3, 5, zp, &ctx), 0);
    const int zwant[3] = {1, 0, 1};
    assert_memory_equal(zp, zwant, sizeof zwant);
    /* One part holds everything; no items, nothing to do. */
    assert_int_equal(cm__shard_split(w, 7, 1, part_of, &ctx), 0);
    for (int i = 0; i < 7; i++) assert_int_equal(part_of[i], 0);
    assert_int_equal(cm__shard_split(NULL, 0, 4, NULL, &ctx), 0);
    assert_int_equal(ctx.code, CM_OK);
}

/* The rule taken literally, in O(n^2 + n * parts): the next item is the heaviest left (the
 * lowest index of equals), its part the first of the least total. */
static void greedy_by_the_rule(const int64_t *w, int n, int parts, int *part_of)
{
    int64_t *total = calloc((size_t)parts, sizeof *total);
    bool *taken = calloc((size_t)n + 1, sizeof *taken);
    assert_true(total && taken);
    for (int step = 0; step < n; step++) {
        int next = -1;
        for (int i = 0; i < n; i++)
            if (!taken[i] && (next < 0 || w[i] > w[next])) next = i;
        int least = 0;
        for (int p = 1; p < parts; p++)
            if (total[p] < total[least]) least = p;
        taken[next] = true;
        part_of[next] = least;
        total[least] += w[next];
    }
    free(total);
    free(taken);
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_shard_split_puts_every_item_in_one_part_as_the_rule_says_and_balanced(void **state)
{
    (void)state;
    enum { MAX_N = 300 };
    static const int ns[] = {1, 2, 3, 7, 40, MAX_N};
    static const int parts_list[] = {1, 2, 3, 8, 64, 1000};
    /* Sizes spread wide, sizes with many ties (and zeros), and all equal. */
    static const uint64_t spreads[] = {1u << 30, 4, 1};
    uint64_t seed = 0x9e3779b97f4a7c15u;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof parts_list / sizeof parts_list[0]; b++)
            for (size_t c = 0; c < sizeof spreads / sizeof spreads[0]; c++) {
                int n = ns[a], parts = parts_list[b];
                int64_t w[MAX_N], heaviest = 0;
                for (int i = 0; i < n; i++) {
                    w[i] = (int64_t)(xorshift(&seed) % spreads[c]);
                    if (w[i] > heaviest) heaviest = w[i];
                }
                int got[MAX_N], again[MAX_N], want[MAX_N];
                for (int i = 0; i < n; i++) got[i] = again[i] = -1;
                assert_int_equal(cm__shard_split(w, n, parts, got, &ctx), 0);
                assert_int_equal(cm__shard_split(w, n, parts, again, &ctx), 0);
                greedy_by_the_rule(w, n, parts, want);
                assert_memory_equal(got, again, (size_t)n * sizeof got[0]);
                assert_memory_equal(got, want, (size_t)n * sizeof got[0]);
                /* Each item in exactly one part (part_of holds one part per item: every entry
                 * set, and in range); the heaviest part within the heaviest item of the
                 * lightest. */
                int64_t *total = calloc((size_t)parts, sizeof *total);
                assert_non_null(total);
                for (int i = 0; i < n; i++) {
                    assert_in_range(got[i], 0, parts - 1);
                    total[got[i]] += w[i];
                }
                int64_t lo = total[0], hi = total[0];
                for (int p = 1; p < parts; p++) {
                    if (total[p] < lo) lo = total[p];
                    if (total[p] > hi) hi = total[p];
                }
                assert_true(hi <= lo + heaviest);
                free(total);
            }
    assert_int_equal(ctx.code, CM_OK);
}

static void test_shard_split_refuses_no_parts_and_negative_weights(void **state)
{
    (void)state;
    const int64_t w[3] = {1, 2, 3}, neg[3] = {1, -2, 3}, huge[2] = {INT64_MAX, 1};
    int part_of[3] = {-1, -1, -1};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm__shard_split(w, 3, 0, part_of, &ctx), CM_EUSAGE);
    cm_ctx_init(&ctx);
    assert_int_equal(cm__shard_split(w, -1, 2, part_of, &ctx), CM_EUSAGE);
    cm_ctx_init(&ctx);
    assert_int_equal(cm__shard_split(neg, 3, 2, part_of, &ctx), CM_EUSAGE);
    assert_non_null(strstr(ctx.msg, "-2"));
    cm_ctx_init(&ctx);
    assert_int_equal(cm__shard_split(huge, 2, 2, part_of, &ctx), CM_EUSAGE);
    for (int i = 0; i < 3; i++) assert_int_equal(part_of[i], -1); /* untouched */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_is_that_of_the_headers),
        cmocka_unit_test(test_options_default_to_the_command_s_defaults),
        cmocka_unit_test(test_run_file_writes_what_fit_then_apply_write),
        cmocka_unit_test(test_model_saved_then_loaded_is_the_same),
        cmocka_unit_test(test_model_that_does_not_fit_the_image_is_refused_leaving_nothing),
        cmocka_unit_test(test_missing_input_is_bad_input_naming_it),
        cmocka_unit_test(test_output_that_is_a_directory_is_an_io_error_and_leaves_no_labels),
        cmocka_unit_test(test_labels_path_gets_one_band_of_labels_below_k),
        cmocka_unit_test(test_file_that_is_no_model_is_bad_input_naming_it),
        cmocka_unit_test(
            test_apply_files_writes_each_as_apply_file_skips_what_exists_and_goes_past_failures),
        cmocka_unit_test(test_apply_files_in_shards_does_each_job_in_exactly_one_part),
        cmocka_unit_test(test_halve_takes_the_most_frequent_label_ties_to_the_lower),
        cmocka_unit_test(test_shard_split_of_seven_files_into_three_is_the_one_worked_by_hand),
        cmocka_unit_test(
            test_shard_split_puts_every_item_in_one_part_as_the_rule_says_and_balanced),
        cmocka_unit_test(test_shard_split_refuses_no_parts_and_negative_weights),
    };
    return cmocka_run_group_tests(tests, make_input, remove_dir);
}
