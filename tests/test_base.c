/* Unit tests of base/: the error context (first failure wins), error names, the
 * overflow-checked size helpers, the chunk grid at sizes past 32 bits, and the counter-based
 * random streams. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base_internal.h"
#include "cm_grid.h"

/* ---- error context ---------------------------------------------------------------------- */

static void test_ctx_init_leaves_no_error(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    memset(&ctx, 0x5a, sizeof ctx);
    cm_ctx_init(&ctx);
    assert_int_equal(ctx.code, CM_OK);
    assert_string_equal(ctx.msg, "");
}

static void test_fail_returns_its_code_and_formats_the_message(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    int rc = cm_fail(&ctx, CM_EINPUT, "%s: tile %d is %s", "in.tif", 7, "short");
    assert_int_equal(rc, CM_EINPUT);
    assert_int_equal(ctx.code, CM_EINPUT);
    assert_string_equal(ctx.msg, "in.tif: tile 7 is short");
}

static void test_first_failure_wins(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_fail(&ctx, CM_EIO, "first: %d", 1), CM_EIO);
    /* The second call still returns its own code, but records nothing. */
    assert_int_equal(cm_fail(&ctx, CM_ENOMEM, "second: %d", 2), CM_ENOMEM);
    assert_int_equal(cm_fail(&ctx, CM_ECANCELED, "third"), CM_ECANCELED);
    assert_int_equal(ctx.code, CM_EIO);
    assert_string_equal(ctx.msg, "first: 1");
}

static void test_fail_without_context_returns_code(void **state)
{
    (void)state;
    assert_int_equal(cm_fail(NULL, CM_EBUDGET, "no context %d", 3), CM_EBUDGET);
}

static void test_long_message_is_truncated_and_terminated(void **state)
{
    (void)state;
    char big[3 * CM_MSG_MAX];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_fail(&ctx, CM_EINPUT, "%s", big);
    assert_int_equal(ctx.code, CM_EINPUT);
    assert_int_equal(strlen(ctx.msg), CM_MSG_MAX - 1);
    assert_int_equal(ctx.msg[0], 'x');
}

static int vfail_wrapper(cm_ctx_t *ctx, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int vfail_wrapper(cm_ctx_t *ctx, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = cm__vfail(ctx, code, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_vfail_behaves_like_fail(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(vfail_wrapper(&ctx, CM_EUSAGE, "bad -k %d", -2), CM_EUSAGE);
    assert_int_equal(vfail_wrapper(&ctx, CM_EIO, "later"), CM_EIO);
    assert_int_equal(ctx.code, CM_EUSAGE);
    assert_string_equal(ctx.msg, "bad -k -2");
}

enum { RACERS = 8, RACE_ROUNDS = 200 };

typedef struct racer {
    cm_ctx_t *ctx;
    int idx;
    pthread_barrier_t *barrier;
} racer_t;

static const int racer_codes[RACERS] = {CM_EUSAGE,  CM_EINPUT,    CM_EIO,       CM_ENOMEM,
                                        CM_EBUDGET, CM_EINTERNAL, CM_ECANCELED, CM_EIO};

static void *racer_main(void *p)
{
    racer_t *r = p;
    pthread_barrier_wait(r->barrier);
    cm_fail(r->ctx, racer_codes[r->idx], "racer %d code %d", r->idx, racer_codes[r->idx]);
    return NULL;
}

static void test_concurrent_failures_record_one_consistent_error(void **state)
{
    (void)state;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, RACERS);
        pthread_t th[RACERS];
        racer_t rs[RACERS];
        for (int i = 0; i < RACERS; i++) {
            rs[i] = (racer_t){.ctx = &ctx, .idx = i, .barrier = &barrier};
            assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
        }
        for (int i = 0; i < RACERS; i++) pthread_join(th[i], NULL);
        pthread_barrier_destroy(&barrier);

        int idx = -1, code = 0;
        assert_int_equal(sscanf(ctx.msg, "racer %d code %d", &idx, &code), 2);
        assert_true(idx >= 0 && idx < RACERS);
        assert_int_equal(code, racer_codes[idx]);
        assert_int_equal(ctx.code, code);
    }
}

static void test_strerror_names_are_distinct_and_non_empty(void **state)
{
    (void)state;
    const int codes[] = {CM_OK,     CM_EUSAGE,  CM_EINPUT,    CM_EIO,
                         CM_ENOMEM, CM_EBUDGET, CM_EINTERNAL, CM_ECANCELED};
    const int n = (int)(sizeof codes / sizeof codes[0]);
    const char *unknown = cm_strerror(-1000);
    assert_non_null(unknown);
    assert_true(strlen(unknown) > 0);
    assert_string_equal(cm_strerror(12345), unknown);
    for (int i = 0; i < n; i++) {
        const char *s = cm_strerror(codes[i]);
        assert_non_null(s);
        assert_true(strlen(s) > 0);
        assert_string_not_equal(s, unknown);
        for (int j = 0; j < i; j++) assert_string_not_equal(s, cm_strerror(codes[j]));
    }
}

static int try_helper(int inner, int *reached_end)
{
    CM_TRY(inner);
    *reached_end = 1;
    return 7;
}

static int fail_if_helper(cm_ctx_t *ctx, int value)
{
    CM_FAIL_IF(ctx, value > 3, CM_EUSAGE, "value %d is above %d", value, 3);
    return 0;
}

static void test_try_and_fail_if_return_early_only_on_error(void **state)
{
    (void)state;
    int reached = 0;
    assert_int_equal(try_helper(CM_EIO, &reached), CM_EIO);
    assert_int_equal(reached, 0);
    assert_int_equal(try_helper(5, &reached), 7);
    assert_int_equal(reached, 1);

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(fail_if_helper(&ctx, 2), 0);
    assert_int_equal(ctx.code, CM_OK);
    assert_int_equal(fail_if_helper(&ctx, 9), CM_EUSAGE);
    assert_int_equal(ctx.code, CM_EUSAGE);
    assert_string_equal(ctx.msg, "value 9 is above 3");
}

/* ---- overflow-checked sizes ------------------------------------------------------------- */

static void test_mul_size_computes_products_that_fit(void **state)
{
    (void)state;
    size_t r = 1;
    assert_true(cm__mul_size(3, 5, &r));
    assert_int_equal(r, 15);
    assert_true(cm__mul_size(0, SIZE_MAX, &r));
    assert_int_equal(r, 0);
    assert_true(cm__mul_size(SIZE_MAX, 1, &r));
    assert_true(r == SIZE_MAX);
    assert_true(cm__mul_size(SIZE_MAX / 2, 2, &r));
    assert_true(r == SIZE_MAX - 1);
    assert_true(cm__mul_size((size_t)1 << 20, (size_t)1 << 20, &r));
    assert_true(r == (size_t)1 << 40);
}

static void test_mul_size_detects_overflow(void **state)
{
    (void)state;
    size_t r;
    assert_false(cm__mul_size(SIZE_MAX, 2, &r));
    assert_false(cm__mul_size(SIZE_MAX / 2 + 1, 2, &r));
    assert_false(cm__mul_size(SIZE_MAX, SIZE_MAX, &r));
    assert_false(cm__mul_size((size_t)1 << 32, (size_t)1 << 32, &r));
}

static void test_mul3_size_checks_both_products(void **state)
{
    (void)state;
    size_t r = 0;
    assert_true(cm__mul3_size(7, 11, 13, &r));
    assert_int_equal(r, 1001);
    assert_true(cm__mul3_size(SIZE_MAX, 1, 1, &r));
    assert_true(r == SIZE_MAX);
    assert_true(cm__mul3_size(SIZE_MAX, 0, 2, &r));
    assert_int_equal(r, 0);
    assert_false(cm__mul3_size(SIZE_MAX, 2, 1, &r));                      /* first product */
    assert_false(cm__mul3_size((size_t)1 << 40, 1, (size_t)1 << 40, &r)); /* second product */
}

static void test_add_size_computes_sums_and_detects_overflow(void **state)
{
    (void)state;
    size_t r = 0;
    assert_true(cm__add_size(40, 2, &r));
    assert_int_equal(r, 42);
    assert_true(cm__add_size(SIZE_MAX, 0, &r));
    assert_true(r == SIZE_MAX);
    assert_true(cm__add_size(SIZE_MAX - 5, 5, &r));
    assert_true(r == SIZE_MAX);
    assert_false(cm__add_size(SIZE_MAX, 1, &r));
    assert_false(cm__add_size(1, SIZE_MAX, &r));
    assert_false(cm__add_size(SIZE_MAX / 2 + 1, SIZE_MAX / 2 + 1, &r));
    assert_false(cm__add_size(SIZE_MAX, SIZE_MAX, &r));
}

static void test_mul_i64_computes_pixel_counts_past_32_bits(void **state)
{
    (void)state;
    int64_t r = 0;
    assert_true(cm__mul_i64(70000, 70000, &r));
    assert_true(r == 4900000000LL && r > (int64_t)UINT32_MAX);
    assert_true(cm__mul_i64(INT64_MAX, 1, &r));
    assert_true(r == INT64_MAX);
    assert_true(cm__mul_i64((int64_t)1 << 31, (int64_t)1 << 31, &r));
    assert_true(r == (int64_t)1 << 62);
    assert_true(cm__mul_i64(0, INT64_MAX, &r));
    assert_true(r == 0);
    assert_true(cm__mul_i64((int64_t)UINT32_MAX, (int64_t)UINT32_MAX >> 1, &r)); /* < 2^63 */
}

static void test_mul_i64_detects_overflow(void **state)
{
    (void)state;
    int64_t r;
    /* The largest TIFF: both sides 2^32 - 1, whose pixel count passes INT64_MAX. */
    assert_false(cm__mul_i64((int64_t)UINT32_MAX, (int64_t)UINT32_MAX, &r));
    assert_false(cm__mul_i64((int64_t)1 << 32, (int64_t)1 << 31, &r)); /* exactly 2^63 */
    assert_false(cm__mul_i64(INT64_MAX, 2, &r));
    assert_false(cm__mul_i64(INT64_MIN, -1, &r));
    assert_false(cm__mul_i64(INT64_MAX / 2 + 1, 2, &r));
}

static void test_add_i64_computes_sums_and_detects_overflow(void **state)
{
    (void)state;
    int64_t r = 0;
    assert_true(cm__add_i64(4899999999LL, 1, &r));
    assert_true(r == 4900000000LL);
    assert_true(cm__add_i64(INT64_MAX - 1, 1, &r));
    assert_true(r == INT64_MAX);
    assert_true(cm__add_i64(INT64_MIN, INT64_MAX, &r));
    assert_true(r == -1);
    assert_false(cm__add_i64(INT64_MAX, 1, &r));
    assert_false(cm__add_i64(INT64_MIN, -1, &r));
    assert_false(cm__add_i64(INT64_MAX / 2 + 1, INT64_MAX / 2 + 1, &r));
}

static void test_ceil_div_i64_rounds_up_without_overflow(void **state)
{
    (void)state;
    assert_true(cm__ceil_div_i64(0, 1) == 0);
    assert_true(cm__ceil_div_i64(1, 1) == 1);
    assert_true(cm__ceil_div_i64(1, 512) == 1);
    assert_true(cm__ceil_div_i64(512, 512) == 1);
    assert_true(cm__ceil_div_i64(513, 512) == 2);
    assert_true(cm__ceil_div_i64(70000, 512) == 137);
    assert_true(cm__ceil_div_i64(70000, 16) == 4375);
    /* (a + b - 1) / b would overflow here. */
    assert_true(cm__ceil_div_i64(INT64_MAX, 1) == INT64_MAX);
    assert_true(cm__ceil_div_i64(INT64_MAX, 2) == ((int64_t)1 << 62));
    assert_true(cm__ceil_div_i64(INT64_MAX, INT64_MAX) == 1);
    assert_true(cm__ceil_div_i64(INT64_MAX - 1, INT64_MAX) == 1);
    assert_true(cm__ceil_div_i64(INT64_MAX, 4096) == INT64_MAX / 4096 + 1);
}

/* ---- the chunk grid at the limits --------------------------------------------------------- */

static void test_grid_of_70000_square_has_more_than_2_to_32_pixels(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_grid_t g;
    assert_int_equal(cm_grid_init(&g, 70000, 70000, 512, 512, 3, -1, CM_U8, &ctx), 0);
    assert_true(g.n_cx == 137 && g.n_cy == 137);
    assert_true(cm_grid_count(&g) == 18769);
    assert_true(cm_grid_chunk_bytes(&g) == (size_t)512 * 512 * 3);
    /* The last chunk is clipped to the image, and its last pixel's position passes 2^32. */
    int64_t x, y, w, h, pos;
    cm_grid_rect(&g, cm_grid_count(&g) - 1, &x, &y, &w, &h);
    assert_true(x == 69632 && y == 69632 && w == 368 && h == 368);
    assert_true(cm__mul_i64(y + h - 1, g.width, &pos) && cm__add_i64(pos, x + w - 1, &pos));
    assert_true(pos == 4899999999LL);
    /* The smallest tiles TIFF allows give the most chunks: still well within limits. */
    assert_int_equal(cm_grid_init(&g, 70000, 70000, 16, 16, 64, 63, CM_F32, &ctx), 0);
    assert_true(cm_grid_count(&g) == 4375LL * 4375);
    assert_true(cm_grid_chunk_bytes(&g) == (size_t)16 * 16 * 64 * 4);
    cm_grid_rect(&g, cm_grid_count(&g) - 1, &x, &y, &w, &h);
    assert_true(x == 69984 && y == 69984 && w == 16 && h == 16);
    assert_int_equal(ctx.code, CM_OK);
}

static void test_grid_of_the_largest_tiff_sides_is_refused(void **state)
{
    (void)state;
    const int64_t side = UINT32_MAX; /* TIFF's largest width and height */
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_grid_t g;
    /* Its pixel count does not fit in an int64_t. */
    assert_int_equal(cm_grid_init(&g, side, side, 512, 512, 1, -1, CM_U8, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "too large"));
    /* One side that long is fine in strips, but not in 16 x 16 tiles (2^28 chunks per row). */
    cm_ctx_init(&ctx);
    assert_int_equal(cm_grid_init(&g, side, 16, side, 16, 1, -1, CM_U8, &ctx), 0);
    assert_true(cm_grid_count(&g) == 1);
    assert_int_equal(cm_grid_init(&g, side, 1 << 20, 16, 16, 1, -1, CM_U8, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "too many chunks"));
}

static void test_grid_at_int64_edges_neither_overflows_nor_accepts(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_grid_t g;
    cm_ctx_init(&ctx);
    /* One row of INT64_MAX pixels: chunk counts computed without overflow, then refused. */
    assert_int_equal(cm_grid_init(&g, INT64_MAX, 1, 1 << 20, 1, 1, -1, CM_U8, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "too many chunks"));
    cm_ctx_init(&ctx);
    assert_int_equal(cm_grid_init(&g, INT64_MAX, 2, 16, 16, 1, -1, CM_U8, &ctx), CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "too large"));
    /* A chunk whose bytes do not fit in a size_t. */
    cm_ctx_init(&ctx);
    assert_int_equal(
        cm_grid_init(&g, 16, 16, (int64_t)1 << 32, (int64_t)1 << 32, 3, -1, CM_U8, &ctx),
        CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "too large"));
    cm_ctx_init(&ctx);
    assert_int_equal(
        cm_grid_init(&g, 16, 16, (int64_t)1 << 31, (int64_t)1 << 30, 2, -1, CM_F32, &ctx),
        CM_EINPUT);
    /* Empty images and chunks. */
    assert_int_equal(cm_grid_init(&g, 0, 16, 16, 16, 1, -1, CM_U8, NULL), CM_EINPUT);
    assert_int_equal(cm_grid_init(&g, 16, -1, 16, 16, 1, -1, CM_U8, NULL), CM_EINPUT);
    assert_int_equal(cm_grid_init(&g, 16, 16, 0, 16, 1, -1, CM_U8, NULL), CM_EINPUT);
}

static void test_grid_takes_1_to_64_bands(void **state)
{
    (void)state;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_grid_t g;
    assert_int_equal(cm_grid_init(&g, 32, 32, 16, 16, 1, -1, CM_U8, &ctx), 0);
    assert_int_equal(cm_grid_init(&g, 32, 32, 16, 16, CM_BANDS_MAX, -1, CM_U16, &ctx), 0);
    assert_int_equal(cm_grid_features(&g), CM_BANDS_MAX);
    assert_int_equal(ctx.code, CM_OK);
    assert_int_equal(cm_grid_init(&g, 32, 32, 16, 16, CM_BANDS_MAX + 1, -1, CM_U8, &ctx),
                     CM_EINPUT);
    assert_non_null(strstr(ctx.msg, "65 bands"));
    assert_int_equal(cm_grid_init(&g, 32, 32, 16, 16, 0, -1, CM_U8, NULL), CM_EINPUT);
}

/* ---- random streams --------------------------------------------------------------------- */

static void test_rng_next_matches_splitmix64_reference(void **state)
{
    (void)state;
    /* Reference outputs of splitmix64 (Vigna) from state 0 and from seed 1234567. */
    cm__rng_t rng = {.state = 0};
    assert_true(cm__rng_next(&rng) == 0xe220a8397b1dcdafULL);
    assert_true(cm__rng_next(&rng) == 0x6e789e6aa1b965f4ULL);
    assert_true(cm__rng_next(&rng) == 0x06c45d188009454fULL);
    rng.state = 1234567;
    assert_true(cm__rng_next(&rng) == 6457827717110365317ULL);
}

static void test_same_seed_and_key_give_the_same_stream(void **state)
{
    (void)state;
    cm__rng_t a, b;
    cm__rng_init(&a, 42, 1234);
    cm__rng_init(&b, 42, 1234);
    for (int i = 0; i < 1000; i++) assert_true(cm__rng_next(&a) == cm__rng_next(&b));
    /* Mixed calls consume the same stream. */
    cm__rng_init(&a, 9, 9);
    cm__rng_init(&b, 9, 9);
    for (int i = 0; i < 100; i++) {
        assert_true(cm__rng_below(&a, 1000 + (uint64_t)i) == cm__rng_below(&b, 1000 + (uint64_t)i));
        double ua = cm__rng_uniform(&a), ub = cm__rng_uniform(&b);
        assert_memory_equal(&ua, &ub, sizeof ua);
    }
}

enum { N_KEYS = 2000 };

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_different_keys_and_seeds_give_different_streams(void **state)
{
    (void)state;
    /* Neighbouring keys (and seeds) must start unrelated streams: all first values distinct. */
    static uint64_t first[2 * N_KEYS];
    for (int k = 0; k < N_KEYS; k++) {
        cm__rng_t r;
        cm__rng_init(&r, 7, (uint64_t)k);
        first[k] = cm__rng_next(&r);
        cm__rng_init(&r, (uint64_t)k + 1000000, 7);
        first[N_KEYS + k] = cm__rng_next(&r);
    }
    qsort(first, 2 * N_KEYS, sizeof first[0], cmp_u64);
    for (int i = 1; i < 2 * N_KEYS; i++) assert_true(first[i] != first[i - 1]);

    /* Two keys give sequences that differ almost everywhere, not just at the start. */
    cm__rng_t a, b;
    cm__rng_init(&a, 7, 1);
    cm__rng_init(&b, 7, 2);
    int same = 0;
    for (int i = 0; i < 1000; i++) same += cm__rng_next(&a) == cm__rng_next(&b);
    assert_int_equal(same, 0);

    /* Seed and key are not interchangeable. */
    cm__rng_init(&a, 3, 5);
    cm__rng_init(&b, 5, 3);
    assert_true(cm__rng_next(&a) != cm__rng_next(&b));
}

static void test_mix64_is_deterministic_and_sensitive_to_both_words(void **state)
{
    (void)state;
    assert_true(cm__mix64(1, 2) == cm__mix64(1, 2));
    assert_true(cm__mix64(1, 2) != cm__mix64(2, 1));
    assert_true(cm__mix64(0, 0) != cm__mix64(0, 1));
    assert_true(cm__mix64(0, 0) != cm__mix64(1, 0));
}

static void test_below_stays_in_range(void **state)
{
    (void)state;
    const uint64_t ns[] = {1,         2, 3, 7, 10, 1000, 1u << 31, (1ULL << 63) + 1, UINT64_MAX - 1,
                           UINT64_MAX};
    cm__rng_t r;
    cm__rng_init(&r, 1, 2);
    for (size_t j = 0; j < sizeof ns / sizeof ns[0]; j++) {
        for (int i = 0; i < 5000; i++) {
            uint64_t v = cm__rng_below(&r, ns[j]);
            assert_true(v < ns[j]);
        }
    }
    for (int i = 0; i < 100; i++) assert_true(cm__rng_below(&r, 1) == 0);
}

static void test_below_is_roughly_uniform_over_a_small_range(void **state)
{
    (void)state;
    enum { N = 10, DRAWS = 200000 };
    long counts[N] = {0};
    cm__rng_t r;
    cm__rng_init(&r, 2024, 77);
    for (int i = 0; i < DRAWS; i++) counts[cm__rng_below(&r, N)]++;
    double expected = (double)DRAWS / N, chi2 = 0;
    for (int k = 0; k < N; k++) {
        double d = (double)counts[k] - expected;
        chi2 += d * d / expected;
    }
    /* 9 degrees of freedom: the 99.99% quantile is about 33.7. */
    assert_true(chi2 < 40.0);
    /* Not degenerate either (a constant or alternating output would still be "in range"). */
    for (int k = 0; k < N; k++) assert_true(counts[k] > 0);
}

static void test_below_has_no_modulo_bias_for_large_n(void **state)
{
    (void)state;
    /* With n = 2/3 of 2^64, `next % n` would land in the lower half of [0, n) two times in
     * three; an unbiased draw lands there half of the time. */
    const uint64_t n = UINT64_MAX / 3 * 2;
    enum { DRAWS = 40000 };
    int low = 0;
    cm__rng_t r;
    cm__rng_init(&r, 5, 6);
    for (int i = 0; i < DRAWS; i++) low += cm__rng_below(&r, n) < n / 2;
    double frac = (double)low / DRAWS;
    assert_true(frac > 0.48 && frac < 0.52);
}

static void test_uniform_is_in_unit_interval_with_mean_one_half(void **state)
{
    (void)state;
    enum { DRAWS = 100000 };
    cm__rng_t r;
    cm__rng_init(&r, 11, 13);
    double lo = 1.0, hi = 0.0, sum = 0.0;
    int below_quarter = 0;
    for (int i = 0; i < DRAWS; i++) {
        double u = cm__rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
        sum += u;
        below_quarter += u < 0.25;
    }
    assert_true(lo < 0.001);
    assert_true(hi > 0.999);
    double mean = sum / DRAWS;
    assert_true(mean > 0.49 && mean < 0.51);
    assert_true(below_quarter > DRAWS / 4 - 1000 && below_quarter < DRAWS / 4 + 1000);
}

/* Inverse of the splitmix64 finaliser, to put a generator in the state whose next output is a
 * chosen word. */
static uint64_t inv_mul(uint64_t a)
{
    uint64_t x = a; /* Newton's iteration for the inverse of an odd number modulo 2^64 */
    for (int i = 0; i < 6; i++) x *= 2 - a * x;
    return x;
}

static uint64_t inv_xorshift(uint64_t y, int s)
{
    uint64_t x = y;
    for (int i = 0; i < 64 / s + 1; i++) x = y ^ (x >> s);
    return x;
}

static uint64_t unmix(uint64_t z)
{
    z = inv_xorshift(z, 31);
    z *= inv_mul(0x94d049bb133111ebULL);
    z = inv_xorshift(z, 27);
    z *= inv_mul(0xbf58476d1ce4e5b9ULL);
    return inv_xorshift(z, 30);
}

static void test_uniform_bounds_are_zero_and_below_one(void **state)
{
    (void)state;
    cm__rng_t r;
    r.state = unmix(UINT64_MAX) - 0x9e3779b97f4a7c15ULL;
    assert_true(cm__rng_next(&r) == UINT64_MAX); /* the inversion itself is right */
    r.state = unmix(UINT64_MAX) - 0x9e3779b97f4a7c15ULL;
    double top = cm__rng_uniform(&r);
    assert_true(top < 1.0);
    assert_true(top == 1.0 - 0x1.0p-53);
    r.state = unmix(0) - 0x9e3779b97f4a7c15ULL;
    assert_true(cm__rng_uniform(&r) == 0.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_init_leaves_no_error),
        cmocka_unit_test(test_fail_returns_its_code_and_formats_the_message),
        cmocka_unit_test(test_first_failure_wins),
        cmocka_unit_test(test_fail_without_context_returns_code),
        cmocka_unit_test(test_long_message_is_truncated_and_terminated),
        cmocka_unit_test(test_vfail_behaves_like_fail),
        cmocka_unit_test(test_concurrent_failures_record_one_consistent_error),
        cmocka_unit_test(test_strerror_names_are_distinct_and_non_empty),
        cmocka_unit_test(test_try_and_fail_if_return_early_only_on_error),
        cmocka_unit_test(test_mul_size_computes_products_that_fit),
        cmocka_unit_test(test_mul_size_detects_overflow),
        cmocka_unit_test(test_mul3_size_checks_both_products),
        cmocka_unit_test(test_add_size_computes_sums_and_detects_overflow),
        cmocka_unit_test(test_mul_i64_computes_pixel_counts_past_32_bits),
        cmocka_unit_test(test_mul_i64_detects_overflow),
        cmocka_unit_test(test_add_i64_computes_sums_and_detects_overflow),
        cmocka_unit_test(test_ceil_div_i64_rounds_up_without_overflow),
        cmocka_unit_test(test_grid_of_70000_square_has_more_than_2_to_32_pixels),
        cmocka_unit_test(test_grid_of_the_largest_tiff_sides_is_refused),
        cmocka_unit_test(test_grid_at_int64_edges_neither_overflows_nor_accepts),
        cmocka_unit_test(test_grid_takes_1_to_64_bands),
        cmocka_unit_test(test_rng_next_matches_splitmix64_reference),
        cmocka_unit_test(test_same_seed_and_key_give_the_same_stream),
        cmocka_unit_test(test_different_keys_and_seeds_give_different_streams),
        cmocka_unit_test(test_mix64_is_deterministic_and_sensitive_to_both_words),
        cmocka_unit_test(test_below_stays_in_range),
        cmocka_unit_test(test_below_is_roughly_uniform_over_a_small_range),
        cmocka_unit_test(test_below_has_no_modulo_bias_for_large_n),
        cmocka_unit_test(test_uniform_is_in_unit_interval_with_mean_one_half),
        cmocka_unit_test(test_uniform_bounds_are_zero_and_below_one),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
