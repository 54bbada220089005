/* Fuzz target: the command's parsers for sizes, numbers, lists and shards. Whatever they accept
 * must be within the bounds they were given. Run with -close_fd_mask=2: they print on refusal. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char s[256];
    if (size >= sizeof s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';

    size_t bytes = 0;
    if (cli_parse_size("--memory", s, &bytes) && bytes < 1) abort();
    long long v = 0;
    if (cli_parse_int("-k", s, 1, 65535, &v) && (v < 1 || v > 65535)) abort();
    double x = 0;
    if (cli_parse_double("--tol", s, 0, 1e6, &x) && !(x >= 0 && x <= 1e6)) abort();
    int index = 0, count = 0;
    if (cli_parse_shard("--shard", s, &index, &count) &&
        (index < 1 || index > count || count > CLI_SHARD_MAX))
        abort();
    long long list[8];
    int n = 0;
    if (cli_parse_int_list("-k", s, 2, 300, 8, list, &n)) {
        if (n < 1 || n > 8) abort();
        for (int i = 0; i < n; i++) {
            if (list[i] < 2 || list[i] > 300) abort();
            for (int j = 0; j < i; j++)
                if (list[i] == list[j]) abort();
        }
    }
    return 0;
}
