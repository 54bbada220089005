/* What run, fit and apply share about the paths they are given: names made absolute, outputs
 * that would be an input or each other, names with k in them; and the limit of open files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Whether two paths name one file (through links too); false when either does not exist. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

char *cli_canonical(const char *path)
{
    char *copy = strdup(path), *name = copy ? strrchr(copy, '/') : NULL, *dir, *out = NULL;
    if (!copy) return NULL;
    if (name) {
        *name++ = '\0';
        dir = realpath(*copy ? copy : "/", NULL);
    } else {
        name = copy;
        dir = realpath(".", NULL);
    }
    if (dir && asprintf(&out, "%s/%s", dir, name) < 0) out = NULL;
    free(dir);
    free(copy);
    return out;
}

bool cli_paths_distinct(const char *const *paths, int n)
{
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++) {
            if (!paths[i] || !paths[j]) continue;
            char *ci = cli_canonical(paths[i]), *cj = cli_canonical(paths[j]);
            bool same = same_file(paths[i], paths[j]) || (ci && cj && !strcmp(ci, cj));
            free(ci);
            free(cj);
            if (!same) continue;
            cli_error("%s: refusing to write it: it is also %s", paths[j],
                      i == 0 ? "the input" : "another output");
            return false;
        }
    return true;
}

char *cli_path_with_k(const char *path, int k)
{
    if (!path) return NULL;
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    /* a dot in a directory's name, or one that starts the file's name, is no extension */
    if (dot && ((slash && dot < slash + 2) || (!slash && dot == path))) dot = NULL;
    size_t stem = dot ? (size_t)(dot - path) : strlen(path);
    char *out = NULL;
    if (asprintf(&out, "%.*s.k%d%s", (int)stem, path, k, dot ? dot : "") < 0) return NULL;
    return out;
}

bool cli_raise_open_files(int64_t need, struct rlimit *lim)
{
    if (getrlimit(RLIMIT_NOFILE, lim) != 0) return false;
    if (lim->rlim_cur != RLIM_INFINITY && lim->rlim_cur < (rlim_t)need) {
        rlim_t hard = lim->rlim_max;
        lim->rlim_cur = hard == RLIM_INFINITY || hard > (rlim_t)need ? (rlim_t)need : hard;
        setrlimit(RLIMIT_NOFILE, lim); /* a failure leaves the old limit, read again below */
        if (getrlimit(RLIMIT_NOFILE, lim) != 0) return false;
    }
    return true;
}
