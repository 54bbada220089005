/* The command's option-value parsers: what they accept, and that they refuse the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cli.h"

static void sizes_take_binary_multiples(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        size_t bytes;
    } ok[] = {
        {"65536", 65536},          {"512M", 512u << 20},
        {"512MiB", 512u << 20},    {"2g", (size_t)2 << 30},
        {"1.5G", (size_t)3 << 29}, {"64kb", 65536},
        {"1T", (size_t)1 << 40},   {"7b", 7},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        size_t v = 0;
        assert_true(cli_parse_size("--memory", ok[i].text, &v));
        assert_int_equal(v, ok[i].bytes);
    }
}

static void sizes_refuse_the_rest(void **state)
{
    (void)state;
    static const char *const bad[] = {"",      "M",   "0",   "-1M",   "0.5", "12Q",   "5MM",
                                      "1GiBx", "nan", "inf", "1e300", "5 M", "4096P", "0x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t v = 1234;
        assert_false(cli_parse_size("--memory", bad[i], &v));
        assert_int_equal(v, 1234);
    }
}

static void ints_keep_to_their_range(void **state)
{
    (void)state;
    long long v = 0;
    assert_true(cli_parse_int("-k", "65535", 1, 65535, &v));
    assert_int_equal(v, 65535);
    assert_true(cli_parse_int("-k", "1", 1, 65535, &v));
    assert_int_equal(v, 1);
    static const char *const bad[] = {"0", "65536", "", "8x", "x8", "99999999999999999999", "1.0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cli_parse_int("-k", bad[i], 1, 65535, &v));
}

static void lists_keep_their_order(void **state)
{
    (void)state;
    long long v[4] = {0};
    int n = 0;
    assert_true(cli_parse_int_list("-k", "10,2,5", 1, 65535, 4, v, &n));
    assert_int_equal(n, 3);
    assert_int_equal(v[0], 10);
    assert_int_equal(v[1], 2);
    assert_int_equal(v[2], 5);
    assert_true(cli_parse_int_list("-k", "8", 1, 65535, 4, v, &n));
    assert_int_equal(n, 1);
    assert_int_equal(v[0], 8);
}

static void lists_refuse_the_rest(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     ",",  "2,", ",2",        "2,,5", "2,2", "0,3",     "2;5",
        "2, 5", "+2", "-2", "1,2,3,4,5", "2,x",  "7.5", "2,65536", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long long v[4] = {0};
        int n = -1;
        assert_false(cli_parse_int_list("-k", bad[i], 1, 65535, 4, v, &n));
        assert_int_equal(n, -1);
    }
}

static void shards_take_i_of_n(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int index, count;
    } ok[] = {{"1/1", 1, 1}, {"1/3", 1, 3},           {"3/3", 3, 3},
              {"8/8", 8, 8}, {"1/100000", 1, 100000}, {"100000/100000", 100000, 100000}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int index = 0, count = 0;
        assert_true(cli_parse_shard("--shard", ok[i].text, &index, &count));
        assert_int_equal(index, ok[i].index);
        assert_int_equal(count, ok[i].count);
    }
}

static void shards_refuse_the_rest(void **state)
{
    (void)state;
    static const char *const bad[] = {"",      "/",        "1",
                                      "1/",    "/3",       "0/3",
                                      "4/3",   "1/0",      "a/3",
                                      "1/b",   "1/3x",     "1/3 ",
                                      " 1/3",  "1 /3",     "1/ 3",
                                      "+1/3",  "1/+3",     "-1/3",
                                      "1/-3",  "1/3/3",    "1.0/3",
                                      "1,3",   "1/100001", "100001/100001",
                                      "1/3\n", "0x1/3",    "1/99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int index = -7, count = -7;
        assert_false(cli_parse_shard("--shard", bad[i], &index, &count));
        assert_int_equal(index, -7);
        assert_int_equal(count, -7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sizes_take_binary_multiples), cmocka_unit_test(sizes_refuse_the_rest),
        cmocka_unit_test(ints_keep_to_their_range),    cmocka_unit_test(lists_keep_their_order),
        cmocka_unit_test(lists_refuse_the_rest),       cmocka_unit_test(shards_take_i_of_n),
        cmocka_unit_test(shards_refuse_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
