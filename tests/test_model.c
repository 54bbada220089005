/* Model JSON: what cm_model_to_json writes cm_model_from_json reads back exactly, and every
 * malformed field is refused with a message that names the file and the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_internal.h"

static cm_model_t *example(bool scaled)
{
    cm_model_t *m = calloc(1, sizeof *m);
    assert_non_null(m);
    m->k = 3;
    m->d = 2;
    m->centroids = calloc(6, sizeof(double));
    m->counts = calloc(3, sizeof(int64_t));
    assert_non_null(m->centroids);
    assert_non_null(m->counts);
    for (int i = 0; i < 6; i++) m->centroids[i] = 0.1 * i + 1.0 / 3.0;
    for (int j = 0; j < 3; j++) m->counts[j] = 1000000007LL * (j + 1);
    if (scaled) {
        m->mean = malloc(2 * sizeof(double));
        m->std = malloc(2 * sizeof(double));
        assert_non_null(m->mean);
        assert_non_null(m->std);
        m->mean[0] = 12.5, m->mean[1] = -3.25;
        m->std[0] = 0.125, m->std[1] = 7e-3;
    }
    m->inertia = 12345.678901234567;
    m->seed = UINT64_MAX - 6; /* above INT64_MAX: stored as a negative JSON integer */
    m->iterations = 77;
    m->algorithm = CM_ALG_LLOYD;
    m->converged = true;
    m->sample_px = 1 << 20;
    m->n_pixels = 5000000000LL;
    return m;
}

static void round_trip_is_exact(void **state)
{
    (void)state;
    for (int scaled = 0; scaled < 2; scaled++) {
        cm_model_t *m = example(scaled);
        char *text = cm__model_to_json(m, 3, 2, "uint16");
        assert_non_null(text);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_model_t *back = NULL;
        cm_model_meta_t meta;
        assert_int_equal(cm__model_from_json(text, strlen(text), "m.json", &back, &meta, &ctx), 0);
        assert_int_equal(meta.bands, 3);
        assert_int_equal(meta.alpha_band, 2);
        assert_int_equal(meta.stype, CM_U16);
        assert_true(meta.version[0] != '\0');
        assert_int_equal(back->k, 3);
        assert_int_equal(back->d, 2);
        assert_memory_equal(back->centroids, m->centroids, 6 * sizeof(double));
        assert_memory_equal(back->counts, m->counts, 3 * sizeof(int64_t));
        assert_int_equal(back->mean != NULL, scaled);
        if (scaled) {
            assert_memory_equal(back->mean, m->mean, 2 * sizeof(double));
            assert_memory_equal(back->std, m->std, 2 * sizeof(double));
        }
        assert_true(back->inertia == m->inertia);
        assert_true(back->seed == m->seed);
        assert_int_equal(back->iterations, 77);
        assert_int_equal(back->algorithm, CM_ALG_LLOYD);
        assert_int_equal(back->colorspace, CM_COLORSPACE_RGB);
        assert_true(back->converged);
        assert_int_equal(back->sample_px, 1 << 20);
        assert_int_equal(back->n_pixels, 5000000000LL);
        cm_model_free(back);
        cm_model_free(m);
        free(text);
    }
}

/* Replaces the first `from` in text by `to`; the caller frees the result. */
static char *replaced(const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    assert_non_null(at);
    size_t head = (size_t)(at - text), n = strlen(text) - strlen(from) + strlen(to);
    char *out = malloc(n + 1);
    assert_non_null(out);
    memcpy(out, text, head);
    strcpy(out + head, to);
    strcat(out, at + strlen(from));
    return out;
}

static void malformed_fields_are_refused(void **state)
{
    (void)state;
    cm_model_t *m = example(true);
    char *good = cm__model_to_json(m, 3, 2, "uint16");
    assert_non_null(good);
    cm_model_free(m);
    static const struct {
        const char *from, *to, *says;
    } cases[] = {
        {"\"chunkmeans-model\"", "\"other\"", "\"format\""},
        {"\"schema_version\": 1", "\"schema_version\": 2", "schema version 2"},
        {"\"k\": 3", "\"k\": 4", "\"centroids\""},
        {"\"k\": 3", "\"k\": 0", "\"k\""},
        {"\"k\": 3", "\"k\": 65536", "\"k\""},
        {"\"k\": 3", "\"k\": 3.0", "\"k\""},
        {"\"bands\": 3", "\"bands\": 65", "\"bands\""},
        {"\"bands\": 3", "\"bands\": 4", "\"features\""},
        {"\"alpha_band\": 2", "\"alpha_band\": 3", "\"alpha_band\""},
        {"\"alpha_band\": 2", "\"alpha_band\": null", "\"features\""},
        {"\"uint16\"", "\"uint12\"", "\"sample_type\""},
        {"\"centroids\": [\n    [", "\"centroids\": [\n    [\"x\", ", "centroids[0]"},
        {"\"counts\": [", "\"counts\": [-1, ", "\"counts\""},
        {"\"shares\": [", "\"shares\": [0, ", "\"shares\""},
        {"\"shares\": [\n    0.16666666666666666", "\"shares\": [\n    1.5", "shares[0]"},
        {"\"shares\": [\n    0.16666666666666666", "\"shares\": [\n    \"x\"", "shares[0]"},
        {"\"method\": \"standard\"", "\"method\": \"minmax\"", "\"scale\""},
        {"\"std\": [", "\"std\": [0, ", "scale.std"},
        {"\"std\": [\n", "\"std\": [\n-1, ", "scale.std"},
        {"\"inertia\": ", "\"inertia\": -", "\"inertia\""},
        {"\"algorithm\": \"lloyd\"", "\"algorithm\": \"auto\"", "\"algorithm\""},
        {"\"converged\": true", "\"converged\": 1", "\"converged\""},
        {"\"iterations\": 77", "\"iterations\": -1", "\"iterations\""},
        {"\"k\": 3", "\"k\": 3, \"k\": 3", "duplicate"},
        {"{", "[{", "not JSON"},
        {"\"seed\"", "\"seed\": 1, \"x\"", ""}, /* unknown members are fine: still valid */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = replaced(good, cases[i].from, cases[i].to);
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_model_t *back = NULL;
        cm_model_meta_t meta;
        int rc = cm__model_from_json(text, strlen(text), "m.json", &back, &meta, &ctx);
        if (!cases[i].says[0]) {
            assert_int_equal(rc, 0);
            cm_model_free(back);
        } else {
            if (rc != CM_EINPUT || !strstr(ctx.msg, cases[i].says) || !strstr(ctx.msg, "m.json"))
                fail_msg("case %zu (%s -> %s): rc %d, message '%s'", i, cases[i].from, cases[i].to,
                         rc, ctx.msg);
            assert_null(back);
        }
        free(text);
    }
    free(good);
}

static void text_need_not_end_in_nul(void **state)
{
    (void)state;
    cm_model_t *m = example(false);
    char *text = cm__model_to_json(m, 2, -1, "float32");
    assert_non_null(text);
    size_t n = strlen(text);
    char *copy = malloc(n);
    assert_non_null(copy);
    memcpy(copy, text, n); /* no NUL after the last byte: ASan sees any read past it */
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *back = NULL;
    cm_model_meta_t meta;
    assert_int_equal(cm__model_from_json(copy, n, "m.json", &back, &meta, &ctx), 0);
    assert_int_equal(meta.alpha_band, -1);
    assert_int_equal(meta.stype, CM_F32);
    cm_model_free(back);
    assert_int_equal(cm__model_from_json(copy, n - 1, "m.json", &back, &meta, &ctx), CM_EINPUT);
    assert_null(back);
    free(copy);
    free(text);
    cm_model_free(m);
}

static int read_back(const char *text, cm_model_t **back, cm_ctx_t *ctx)
{
    cm_ctx_init(ctx);
    cm_model_meta_t meta;
    *back = NULL;
    return cm__model_from_json(text, strlen(text), "m.json", back, &meta, ctx);
}

static void colorspace_is_kept_and_absent_means_rgb(void **state)
{
    (void)state;
    cm_model_t m = {.k = 2,
                    .d = 3,
                    .centroids = (double[]){10, 20, 30, 40.25, 50, 60},
                    .counts = (int64_t[]){5, 6},
                    .colorspace = CM_COLORSPACE_LAB};
    char *text = cm__model_to_json(&m, 4, 3, "uint8");
    assert_non_null(text);
    assert_non_null(strstr(text, "\"colorspace\": \"lab\""));
    cm_ctx_t ctx;
    cm_model_t *back;
    assert_int_equal(read_back(text, &back, &ctx), 0);
    assert_int_equal(back->colorspace, CM_COLORSPACE_LAB);
    assert_memory_equal(back->centroids, m.centroids, 6 * sizeof(double));
    cm_model_free(back);

    /* A model written before the field existed is an rgb one. */
    char *old = replaced(text, "\"colorspace\": \"lab\",", "");
    assert_null(strstr(old, "colorspace"));
    assert_int_equal(read_back(old, &back, &ctx), 0);
    assert_int_equal(back->colorspace, CM_COLORSPACE_RGB);
    cm_model_free(back);
    free(old);

    /* Other names, and lab on what is not 3 colours of uint8, uint16 or float32, are refused. */
    static const struct {
        const char *from, *to;
    } cases[] = {
        {"\"lab\"", "\"xyz\""},
        {"\"lab\"", "1"},
        {"\"uint8\"", "\"int16\""},
        {"\"bands\": 4", "\"bands\": 3"}, /* with alpha band 3: refused for the alpha */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *bad = replaced(text, cases[i].from, cases[i].to);
        int rc = read_back(bad, &back, &ctx);
        if (rc != CM_EINPUT || !strstr(ctx.msg, "m.json"))
            fail_msg("case %zu: rc %d, message '%s'", i, rc, ctx.msg);
        assert_null(back);
        free(bad);
    }
    char *lab16 = replaced(text, "\"uint8\"", "\"int16\"");
    assert_int_equal(read_back(lab16, &back, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "\"colorspace\""));
    free(lab16);
    free(text);

    cm_model_t *two = example(false); /* 2 features */
    two->colorspace = CM_COLORSPACE_LAB;
    text = cm__model_to_json(two, 2, -1, "float32");
    assert_non_null(text);
    assert_int_equal(read_back(text, &back, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "\"colorspace\""));
    free(text);
    cm_model_free(two);
}

/* "shares" is each count over their sum, for readers; a model without it (written before it
 * was) is read as before. */
static void shares_are_counts_over_their_sum_and_optional(void **state)
{
    (void)state;
    cm_model_t m = {
        .k = 3, .d = 1, .centroids = (double[]){10, 20, 30}, .counts = (int64_t[]){1, 3, 0}};
    char *text = cm__model_to_json(&m, 1, -1, "uint8");
    assert_non_null(text);
    assert_non_null(strstr(text, "\"shares\": [\n    0.25,\n    0.75,\n    0.0\n  ]"));
    cm_ctx_t ctx;
    cm_model_t *back;
    assert_int_equal(read_back(text, &back, &ctx), 0);
    cm_model_free(back);
    char *old = replaced(text, "\"shares\"", "\"shares_of_another_version\"");
    assert_int_equal(read_back(old, &back, &ctx), 0);
    assert_memory_equal(back->counts, m.counts, 3 * sizeof(int64_t));
    cm_model_free(back);
    free(old);
    free(text);

    /* No counts at all: shares of 0, not a division by 0. */
    m.counts = (int64_t[]){0, 0, 0};
    text = cm__model_to_json(&m, 1, -1, "uint8");
    assert_non_null(text);
    assert_non_null(strstr(text, "\"shares\": [\n    0.0,\n    0.0,\n    0.0\n  ]"));
    assert_int_equal(read_back(text, &back, &ctx), 0);
    cm_model_free(back);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_is_exact),
        cmocka_unit_test(malformed_fields_are_refused),
        cmocka_unit_test(text_need_not_end_in_nul),
        cmocka_unit_test(colorspace_is_kept_and_absent_means_rgb),
        cmocka_unit_test(shares_are_counts_over_their_sum_and_optional),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
