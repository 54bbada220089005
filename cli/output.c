/* What run, fit and apply share about their files: output paths and their checks, the
 * file-level options of the library (whose cm_outputs_* write the images), traces. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

char cli_scratch_dir[4096] = ".";

int cli_keep_chunks(void *self, cm_ctx_t *ctx)
{
    return cm_image_keep_chunks(self, cli_scratch_dir, ctx);
}

char *cli_dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return NULL;
    char *slash = strrchr(copy, '/');
    if (!slash) {
        free(copy);
        return strdup(".");
    }
    if (slash == copy) slash++; /* "/name": the root */
    *slash = '\0';
    return copy;
}

bool cli_dir_writable(const char *path)
{
    char *dir = cli_dir_of(path);
    bool ok = dir && access(dir, W_OK | X_OK) == 0;
    int e = dir ? errno : ENOMEM;
    free(dir);
    errno = e;
    return ok;
}

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

void cli_describe_pixels(const cm_image_info_t *in, char *buf, size_t size)
{
    snprintf(buf, size, "%d band%s of %s%s", in->bands, in->bands == 1 ? "" : "s", in->sample_type,
             in->alpha_band >= 0 ? " with alpha" : "");
}

int cli_check_not_dir(const char *path, cm_ctx_t *ctx)
{
    struct stat st;
    CM_FAIL_IF(ctx, path && stat(path, &st) == 0 && S_ISDIR(st.st_mode), CM_EIO,
               "%s: is a directory", path);
    return 0;
}

/* A sink that writes nothing: a remap pass that only counts the pixels that take part. */
static int put_nothing(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void *encoded, cm_ctx_t *ctx)
{
    return 0;
}

int cli_count_valid(const cm_source_t *src, cm_model_t *model, const cm_params_t *params,
                    int64_t *n_valid, cm_ctx_t *ctx)
{
    cm_params_t p = *params;
    p.progress = NULL; /* a pass the user did not ask for: the bar would go back to 0 */
    cm_sink_t none = {.put = put_nothing};
    CM_TRY(cm_remap(src, model, &p, &none, ctx));
    *n_valid = model->n_pixels;
    return 0;
}

int cli_write_trace(const char *path, const cm_trace_t *trace, cm_ctx_t *ctx)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int rc = f ? cm_trace_write_json(trace, f, ctx) : cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (f && fclose(f) != 0 && rc == 0) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) rc = cm_file_write_atomic(path, text, size, ctx);
    free(text);
    return rc;
}

static void warn_to_stderr(void *user, const cm_ctx_t *w)
{
    char words[2 * CM_MSG_MAX];
    cli_words(w, words, sizeof words);
    cli_warn("%s", words);
}

cm_options_t cli_file_options(const cli_opts_t *o)
{
    cm_options_t f;
    cm_options_default(&f);
    f.params = o->params;
    f.compression = o->compression;
    f.has_nodata = o->has_nodata;
    f.nodata = o->nodata;
    f.tile = o->tile;
    f.scratch_dir = NULL;
    f.format = !strcmp(o->format, "palette") ? CM_FORMAT_PALETTE
               : !strcmp(o->format, "rgb")   ? CM_FORMAT_RGB
                                             : CM_FORMAT_AUTO;
    f.bigtiff = !strcmp(o->bigtiff, "always")  ? CM_BIGTIFF_ALWAYS
                : !strcmp(o->bigtiff, "never") ? CM_BIGTIFF_NEVER
                                               : CM_BIGTIFF_AUTO;
    f.warn = warn_to_stderr;
    return f;
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
