/* The options that run, fit and apply share: their values, parsed into one cli_opts_t, so
 * that every command reads -k, --memory, --nodata, --compression ... alike. */
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
}

int cli_opts_load_init(cli_opts_t *o, int d, cm_ctx_t *ctx)
{
    if (!o->init_path) return 0;
    char *text = NULL;
    size_t len = 0;
    int k = 0;
    free(o->init_centres);
    o->init_centres = NULL;
    int rc = cm_file_read(o->init_path, (size_t)1 << 30, &text, &len, ctx);
    if (rc == 0) rc = cm_init_from_json(text, len, o->init_path, d, &o->init_centres, &k, ctx);
    free(text);
    if (rc < 0) return rc;
    /* -k and the file both say how many centres: one number, or a refusal. */
    CM_FAIL_IF(ctx, o->k_given && o->params.k != k, CM_EUSAGE,
               "-k %d conflicts with the %d centres of %s: give -k %d, or no -k", o->params.k, k,
               o->init_path, k);
    o->params.init_centres = o->init_centres;
    o->params.init_k = k;
    o->params.k = k;
    return 0;
}

void cli_opts_free(cli_opts_t *o)
{
    free(o->init_centres);
    o->init_centres = NULL;
    o->params.init_centres = NULL;
}

int cli_check_colorspace(const cm_image_info_t *in, const char *path, cm_colorspace_t cs,
                         cm_ctx_t *ctx)
{
    if (cs != CM_COLORSPACE_LAB) return 0;
    /* Palette and YCbCr images read as RGB. */
    bool rgb = !strcmp(in->photometric_name, "RGB") || !strcmp(in->photometric_name, "YCbCr") ||
               in->palette;
    int colours = in->bands - (in->alpha_band >= 0);
    CM_FAIL_IF(ctx, !rgb || colours != 3 || in->stype == CM_I16, CM_EUSAGE,
               "%s: --colorspace lab needs an RGB image (3 colour bands of uint8, uint16 or "
               "float32, and an optional alpha), not %d band%s of %s, photometric %s",
               path, in->bands, in->bands == 1 ? "" : "s", in->sample_type, in->photometric_name);
    return 0;
}

cm_source_t cli_source(cm_image_t *img, const cli_opts_t *o)
{
    const cm_image_info_t *in = cm_image_info(img);
    return (cm_source_t){.grid = in->grid,
                         .read = cli_read_chunk,
                         .keep = cli_keep_chunks,
                         .self = img,
                         .has_nodata = o->has_nodata || in->has_nodata,
                         .nodata = o->has_nodata ? o->nodata : in->nodata};
}

/* On the shared sample when there is one; else cm_fit_many takes its own, and frees it before
 * an exact pass. */
static int fit_once(const cm_source_t *srcs, int n_srcs, cm_sample_t *sample, const cm_params_t *p,
                    cm_model_t **out, cm_ctx_t *ctx)
{
    return sample ? cm_fit_sample(sample, p, out, ctx) : cm_fit_many(srcs, n_srcs, p, out, ctx);
}

int cli_fit(const cm_source_t *srcs, int n_srcs, cm_sample_t *sample, cm_params_t *p,
            const char *what, cm_model_t **out, cm_ctx_t *ctx)
{
    cm_model_t *model = NULL;
    CM_TRY(fit_once(srcs, n_srcs, sample, p, &model, ctx));
    if (model->sample_px < p->k && !p->init_centres) {
        /* Fewer pixels in the sample than centres: maybe fewer in the images too. Count them,
         * and when they are fewer than k, fit again with k lowered to their number, so that
         * the model, the label map and its sample type agree on k. */
        int64_t n_valid = 0;
        int rc = 0;
        for (int i = 0; i < n_srcs && rc == 0; i++) {
            int64_t n = 0;
            rc = cli_count_valid(&srcs[i], model, p, &n, ctx);
            n_valid += n;
        }
        if (rc == 0 && n_valid < p->k) {
            cli_warn("%s: -k %d is more than its %lld pixels that take part; using k=%lld", what,
                     p->k, (long long)n_valid, (long long)n_valid);
            p->k = (int)n_valid;
            cm_model_free(model);
            model = NULL;
            rc = fit_once(srcs, n_srcs, sample, p, &model, ctx); /* k is not in the sample */
        }
        if (rc < 0) {
            cm_model_free(model);
            return rc;
        }
    }
    *out = model;
    return 0;
}
