/* What the unit tests share: a scratch directory per test program, files read whole and
 * compared, and test images written with libtiff. Test code only. */
#ifndef CM_TEST_FIXTURES_H
#define CM_TEST_FIXTURES_H

#include <stdbool.h>
#include <stddef.h>

/* The scratch directory of the program, made by fx_dir_make (a cmocka group setup: "name" is
 * the program's, e.g. "test_io") under $TMPDIR or /tmp, removed with everything in it by
 * fx_dir_remove (the group teardown). */
extern char fx_dir[];
int fx_dir_make(const char *name);
int fx_dir_remove(void);

/* fx_dir/name into out, which holds at least FX_PATH_MAX bytes; returns out. */
enum { FX_PATH_MAX = 4096 };
char *fx_path(char *out, const char *name);

bool fx_exists(const char *path);

/* The whole file (its size in *size), which the caller frees; fails the test when it cannot be
 * read or is empty. */
void *fx_read_file(const char *path, size_t *size);

/* Whether two files hold the same bytes (false when either cannot be read). */
bool fx_same_bytes(const char *a, const char *b);

/* Writes text into path, failing the test when it cannot. */
void fx_write_text(const char *path, const char *text);

#endif
