/* The options that run, fit and apply share: their values, parsed into one cli_opts_t, so
 * that every command reads -k, --memory, --nodata, --compression ... alike; and the library's
 * options made of them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_opts_default(cli_opts_t *o)
{
    *o = (cli_opts_t){
        .compression = -1, .progress = "auto", .bigtiff = "auto", .tile = 512, .format = "auto"};
    cm_params_default(&o->params);
}

static bool one_of(const char *opt, const char *value, const char *a, const char *b, const char *c)
{
    if (!strcmp(value, a) || !strcmp(value, b) || !strcmp(value, c)) return true;
    cli_error("%s: expected %s, %s or %s, not '%s'", opt, a, b, c, value);
    return false;
}

int cli_option(cli_opts_t *o, int c, const char *arg)
{
    long long v = 0;
    double x = 0;
    bool ok = true;
    switch (c) {
    case 'k': {
        long long ks[CLI_K_LIST_MAX];
        int n = 0;
        if (strchr(arg, ','))
            ok = cli_parse_int_list("-k", arg, 1, 65535, CLI_K_LIST_MAX, ks, &n);
        else if ((ok = cli_parse_int("-k", arg, 1, 65535, &v)))
            ks[n++] = v;
        for (int i = 0; ok && i < n; i++) o->ks[i] = (int)ks[i];
        if (ok) {
            o->n_k = n;
            o->params.k = o->ks[0];
            o->k_given = true;
        }
        break;
    }
    case CLI_OPT_SEED:
        ok = cli_parse_int("--seed", arg, 0, INT64_MAX, &v);
        o->params.seed = (uint64_t)v;
        break;
    case 'j':
        ok = cli_parse_int("--threads", arg, 1, 1024, &v);
        o->params.n_threads = (int)v;
        break;
    case CLI_OPT_MEMORY: ok = cli_parse_size("--memory", arg, &o->params.budget_bytes); break;
    case CLI_OPT_MAX_ITER:
        ok = cli_parse_int("--max-iter", arg, 1, 100000000, &v);
        o->params.max_iter = (int)v;
        o->max_iter_given = true;
        break;
    case CLI_OPT_TOL:
        ok = cli_parse_double("--tol", arg, 0, 1e30, &x);
        o->params.tol = x;
        break;
    case CLI_OPT_N_INIT:
        ok = cli_parse_int("--n-init", arg, 1, 1000, &v);
        o->params.n_init = (int)v;
        break;
    case CLI_OPT_BATCH:
        ok = cli_parse_int("--batch", arg, 1, 1LL << 32, &v);
        o->params.batch = v;
        break;
    case CLI_OPT_COMPRESSION:
        if (cm_compression_parse(arg, &o->compression) < 0) {
            cli_error("--compression: expected none, lzw, deflate, zstd, jpeg or packbits, "
                      "not '%s'",
                      arg);
            ok = false;
        }
        break;
    case CLI_OPT_BIGTIFF:
        o->bigtiff = arg;
        ok = one_of("--bigtiff", arg, "auto", "always", "never");
        break;
    case CLI_OPT_TILE:
        ok = cli_parse_int("--tile", arg, 16, 4096, &v);
        if (ok && v % 16) {
            cli_error("--tile: %lld is not a multiple of 16", v);
            ok = false;
        }
        o->tile = v;
        break;
    case CLI_OPT_CACHE:
        ok = one_of("--color-cache", arg, "auto", "on", "off");
        o->params.color_cache = !strcmp(arg, "on") ? 1 : !strcmp(arg, "off") ? 0 : -1;
        break;
    case CLI_OPT_COG: o->cog = true; break;
    case CLI_OPT_OVERVIEWS:
        o->overviews_given = true;
        if (!strcmp(arg, "auto") || !strcmp(arg, "none"))
            o->overviews = !strcmp(arg, "auto") ? -1 : 0;
        else if ((ok = cli_parse_int("--overviews", arg, 1, 30, &v)))
            o->overviews = (int)v;
        break;
    case CLI_OPT_MPI_WRITE:
        ok = one_of("--mpi-write", arg, "gather", "parallel", "gather");
        o->params.write_parallel = !strcmp(arg, "parallel");
        break;
    case CLI_OPT_PROGRESS:
        o->progress = arg;
        ok = one_of("--progress", arg, "auto", "always", "never");
        break;
    case 'q': cli_verbosity = 0; break;
    case 'v': cli_verbosity = 2; break;
    case CLI_OPT_FORMAT:
        o->format = arg;
        ok = one_of("--format", arg, "rgb", "palette", "auto");
        break;
    case CLI_OPT_SCALE:
        ok = one_of("--scale", arg, "none", "standard", "none");
        o->params.scale = !strcmp(arg, "standard") ? CM_SCALE_STANDARD : CM_SCALE_NONE;
        break;
    case CLI_OPT_NODATA: {
        char *end;
        o->nodata = strtod(arg, &end); /* nan and inf too, as GDAL writes them */
        o->has_nodata = ok = end != arg && !*end;
        if (!ok) cli_error("--nodata: expected a number (or nan), not '%s'", arg);
        break;
    }
    case CLI_OPT_NODATA_MATCH:
        ok = !strcmp(arg, "all") || !strcmp(arg, "any");
        if (!ok) cli_error("--nodata-match: expected all or any, not '%s'", arg);
        o->nodata_any = !strcmp(arg, "any");
        break;
    case CLI_OPT_ALGORITHM:
        ok = !strcmp(arg, "auto") || one_of("--algorithm", arg, "minibatch", "lloyd", "histogram");
        o->params.algorithm = !strcmp(arg, "lloyd")       ? CM_ALG_LLOYD
                              : !strcmp(arg, "histogram") ? CM_ALG_HISTOGRAM
                              : !strcmp(arg, "auto")      ? CM_ALG_AUTO
                                                          : CM_ALG_MINIBATCH;
        break;
    case CLI_OPT_COLORSPACE:
        ok = one_of("--colorspace", arg, "rgb", "lab", "rgb");
        o->params.colorspace = !strcmp(arg, "lab") ? CM_COLORSPACE_LAB : CM_COLORSPACE_RGB;
        o->colorspace_given = true;
        break;
    case CLI_OPT_DITHER:
        ok = one_of("--dither", arg, "none", "ordered", "none");
        o->params.dither = !strcmp(arg, "ordered") ? CM_DITHER_ORDERED : CM_DITHER_NONE;
        o->dither_given = true;
        break;
    case CLI_OPT_INIT: { /* kmeans++, random, or a file of centres */
        bool named = !strcmp(arg, "kmeans++") || !strcmp(arg, "random");
        if (!*arg) {
            cli_error("--init: expected kmeans++, random or FILE.json, not ''");
            ok = false;
        }
        o->params.init = !strcmp(arg, "random") ? CM_INIT_RANDOM : CM_INIT_KMEANSPP;
        o->init_path = named ? NULL : arg;
        break;
    }
    default: return 0;
    }
    return ok ? 1 : -1;
}

void cli_opts_finish(cli_opts_t *o)
{
    if (!o->max_iter_given && o->params.algorithm == CM_ALG_LLOYD) o->params.max_iter = 30;
    if (!o->max_iter_given && o->params.algorithm == CM_ALG_HISTOGRAM) o->params.max_iter = 300;
    if (o->params.n_threads <= 0) o->params.n_threads = cm_default_threads();
    /* --memory is the node's: its ranks share it. */
    if (cm_comm_node_size() > 1) o->params.budget_bytes /= (size_t)cm_comm_node_size();
    if (cm_comm_rank() != 0) cli_verbosity = 0; /* rank 0 speaks for the job; errors are each */
}

cm_options_t cli_file_options(const cli_opts_t *o, cli_progress_t *prog)
{
    cm_options_t f;
    cm_options_default(&f);
    f.params = o->params;
    f.params.progress = cli_progress_update;
    f.params.progress_user = prog;
    f.params.cancel = &cli_signal;
    f.compression = o->compression;
    f.has_nodata = o->has_nodata;
    f.nodata_any = o->nodata_any;
    f.nodata = o->nodata;
    f.tile = o->tile;
    f.overviews = o->cog && !o->overviews_given ? -1 : o->overviews; /* a COG has levels */
    f.cog = o->cog;
    f.format = !strcmp(o->format, "palette") ? CM_FORMAT_PALETTE
               : !strcmp(o->format, "rgb")   ? CM_FORMAT_RGB
                                             : CM_FORMAT_AUTO;
    f.bigtiff = !strcmp(o->bigtiff, "always")  ? CM_BIGTIFF_ALWAYS
                : !strcmp(o->bigtiff, "never") ? CM_BIGTIFF_NEVER
                                               : CM_BIGTIFF_AUTO;
    f.init_path = o->init_path;
    if (o->init_path && !o->k_given) f.params.k = 0; /* the file's number of centroids */
    f.warn = cli_warn_of;
    f.opened = cli_opened;
    f.user = prog;
    return f;
}
