/* The unit tests' shared fixtures (fixtures.h). */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fixtures.h"

char fx_dir[FX_PATH_MAX / 2];

int fx_dir_make(const char *name)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    snprintf(fx_dir, sizeof fx_dir, "%s/%s-XXXXXX", base, name);
    if (!mkdtemp(fx_dir)) {
        fprintf(stderr, "cannot create %s: %s\n", fx_dir, strerror(errno));
        return -1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

int fx_dir_remove(void)
{
    return nftw(fx_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *fx_path(char *out, const char *name)
{
    snprintf(out, FX_PATH_MAX, "%s/%s", fx_dir, name);
    return out;
}

bool fx_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

void *fx_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("%s: %s", path, strerror(errno));
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    void *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

bool fx_same_bytes(const char *a, const char *b)
{
    if (!fx_exists(a) || !fx_exists(b)) return false;
    size_t na, nb;
    void *x = fx_read_file(a, &na), *y = fx_read_file(b, &nb);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

void fx_write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}
