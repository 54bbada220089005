/* Fitting on files: one model on a sample drawn from one or more TIFFs alike, k lowered to the
 * pixels that take part, and the model file written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api_internal.h"

/* Descriptors beyond one per input and thread: standard streams, the model, spill files. */
enum { FIT_SPARE_FDS = 64 };

void cm__k_within(int *k, int64_t n_px, const char *what, const cm_options_t *o)
{
    if (*k <= n_px) return;
    cm__warn(o, (cm_about_t){CM_SETTING_K, *k, 0},
             "%s: " CM_NAMED("k = %d") " is more than its %lld pixels; using k=%lld", what, *k,
             (long long)n_px, (long long)n_px);
    *k = (int)n_px;
}

/* A sink that writes nothing: a remap pass that only counts the pixels that take part. */
static int put_nothing(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void *encoded, cm_ctx_t *ctx)
{
    return 0;
}

/* The pixels of src that take part in the fit (not alpha 0, nodata or non-finite), counted
 * exactly by a remap pass with model (whose counts it overwrites). */
static int count_valid(const cm_source_t *src, cm_model_t *model, const cm_params_t *params,
                       int64_t *n_valid, cm_ctx_t *ctx)
{
    cm_params_t p = *params;
    p.progress = NULL; /* a pass the caller did not ask for: a bar would go back to 0 */
    cm_sink_t none = {.put = put_nothing};
    CM_TRY(cm_remap(src, model, &p, &none, ctx));
    *n_valid = model->n_pixels;
    return 0;
}

/* On the shared sample when there is one; else cm_fit_many takes its own, and frees it before
 * an exact pass. */
static int fit_once(const cm_source_t *srcs, int n_srcs, cm_sample_t *sample, const cm_params_t *p,
                    cm_model_t **out, cm_ctx_t *ctx)
{
    return sample ? cm_fit_sample(sample, p, out, ctx) : cm_fit_many(srcs, n_srcs, p, out, ctx);
}

int cm__fit_within(const cm_source_t *srcs, int n_srcs, cm_sample_t *sample, cm_params_t *p,
                   const char *what, const cm_options_t *o, cm_model_t **out, cm_ctx_t *ctx)
{
    cm_model_t *model = NULL;
    CM_TRY(fit_once(srcs, n_srcs, sample, p, &model, ctx));
    if (model->sample_px < p->k && !p->init_centroids) {
        /* Fewer pixels in the sample than centroids: maybe fewer in the images too. Count them,
         * and when they are fewer than k, fit again with k lowered to their number, so that
         * the model, the label map and its sample type agree on k. */
        int64_t n_valid = 0;
        int rc = 0;
        for (int i = 0; i < n_srcs && rc == 0; i++) {
            int64_t n = 0;
            rc = count_valid(&srcs[i], model, p, &n, ctx);
            n_valid += n;
        }
        if (rc == 0 && n_valid < p->k) {
            cm__warn(o, (cm_about_t){CM_SETTING_K, p->k, 0},
                     "%s: " CM_NAMED("k = %d") " is more than its %lld pixels that take part; "
                                               "using k=%lld",
                     what, p->k, (long long)n_valid, (long long)n_valid);
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

int64_t cm_fit_files_descriptors(int n_in, int n_threads)
{
    if (n_threads <= 0) n_threads = cm_default_threads();
    return (int64_t)n_in * n_threads + FIT_SPARE_FDS;
}

/* Every input is opened once per worker thread, all at once: with a limit of open files lower
 * than that takes, fewer threads (one at least), with a warning. */
static int threads_within_limit(int n_in, int n_threads, const cm_options_t *o)
{
    struct rlimit lim;
    rlim_t need = (rlim_t)cm_fit_files_descriptors(n_in, n_threads);
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY ||
        lim.rlim_cur >= need)
        return n_threads;
    rlim_t fit = lim.rlim_cur > FIT_SPARE_FDS ? (lim.rlim_cur - FIT_SPARE_FDS) / (rlim_t)n_in : 0;
    int threads = fit < 1 ? 1 : (int)fit;
    if (threads >= n_threads) return n_threads;
    cm__warn(o, (cm_about_t){0},
             "%d inputs opened by %d threads need more files open than allowed (%llu); using %d "
             "thread%s",
             n_in, n_threads, (unsigned long long)lim.rlim_cur, threads, threads == 1 ? "" : "s");
    return threads;
}

/* Opens input i of a fit: of the kind of the first (bands, alpha, sample type), and within the
 * budget. */
static int open_input(cm__input_t *ins, int i, const cm_options_t *o, const char *scratch,
                      cm_ctx_t *ctx)
{
    cm__input_t *in = &ins[i];
    CM_TRY(cm__input_open(in, in->path, o, 0, scratch, ctx));
    const cm_image_info_t *a = in->info, *first = ins[0].info;
    if (a->bands != first->bands || a->stype != first->stype ||
        a->alpha_band != first->alpha_band) {
        char mine[64], theirs[64];
        cm__describe_pixels(a, mine, sizeof mine);
        cm__describe_pixels(first, theirs, sizeof theirs);
        return cm_fail(ctx, CM_EINPUT,
                       "%s: %s, unlike %s (%s): inputs fitted together must agree in bands, "
                       "alpha and sample type",
                       in->path, mine, ins[0].path, theirs);
    }
    return cm__budget_check(&in->src, &o->params, false, ctx);
}

/* Fits the open inputs (prepared) as one: checks what they take, reads o's centroids, lowers k
 * to the pixels there are, and fits. */
static int fit_inputs(cm__input_t *ins, int n_in, const cm_options_t *o, cm_model_t **out,
                      cm_ctx_t *ctx)
{
    const char *what = n_in == 1 ? ins[0].path : "the inputs";
    cm_params_t p = o->params;
    double *init = NULL;
    int64_t n_px = 0;
    for (int i = 0; i < n_in; i++)
        if (!cm__add_i64(n_px, ins[i].info->width * ins[i].info->height, &n_px)) n_px = INT64_MAX;
    cm_source_t *srcs = malloc(sizeof(cm_source_t) * (size_t)n_in);
    int rc = srcs ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory for %d inputs", n_in);
    for (int i = 0; rc == 0 && i < n_in; i++) srcs[i] = ins[i].src;
    if (rc == 0) rc = cm__input_check_colorspace(&ins[0], p.colorspace, ctx);
    if (rc == 0) rc = cm__init_load(o, cm_grid_features(&ins[0].info->grid), &p, &init, ctx);
    if (rc == 0 && p.init_centroids && p.k > n_px)
        rc = cm_fail(ctx, CM_EUSAGE, "%s: its %d centres are more than the %lld pixels of %s",
                     o->init_path, p.k, (long long)n_px, what);
    if (rc == 0) cm__k_within(&p.k, n_px, what, o);
    if (rc == 0) {
        rc = cm__fit_within(srcs, n_in, NULL, &p, what, o, out, ctx);
        if (n_in == 1) cm__name_input(ctx, ins[0].path);
    }
    if (rc == 0 && p.cancel && *p.cancel) rc = cm_fail(ctx, CM_ECANCELED, "interrupted");
    free(init);
    free(srcs);
    return rc;
}

/* The palette of a fit, named in a GIMP palette after its first input, its number and k. */
static int write_palette(const cm_model_t *model, const cm_model_meta_t *meta,
                         const char *const *in_paths, int n_in, const char *path, cm_ctx_t *ctx)
{
    const char *slash = strrchr(in_paths[0], '/'), *first = slash ? slash + 1 : in_paths[0];
    char name[256], more[48] = "";
    if (n_in > 1) snprintf(more, sizeof more, " and %d more", n_in - 1);
    snprintf(name, sizeof name, "%s%s k=%d", first, more, model->k);
    return cm__palette_write(model, meta, path, name, ctx);
}

int cm_fit_files(const char *const *in_paths, int n_in, const char *model_path,
                 const cm_options_t *opts, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx)
{
    if (out) *out = NULL;
    CM_FAIL_IF(ctx, n_in < 1 || !in_paths, CM_EUSAGE, "no input file given");
    cm_options_t o = cm__resolved(opts);
    char scratch[4096] = ".";
    if (model_path) cm__dir_of(model_path, scratch, sizeof scratch);
    CM_TRY(cm__check_writable(model_path, ctx));
    cm_palette_format_t pf; /* a name that says no palette format: before any work */
    if (o.palette_path) CM_TRY(cm_palette_format_of_path(o.palette_path, &pf, ctx));
    CM_TRY(cm__check_writable(o.palette_path, ctx));
    o.params.n_threads = threads_within_limit(n_in, o.params.n_threads, &o);
    cm__input_t *ins = calloc((size_t)n_in, sizeof(cm__input_t));
    CM_FAIL_IF(ctx, !ins, CM_ENOMEM, "out of memory for %d inputs", n_in);
    int rc = 0;
    for (int i = 0; i < n_in && rc == 0; i++) {
        ins[i].path = in_paths[i];
        rc = open_input(ins, i, &o, scratch, ctx);
        cm__name_input(ctx, in_paths[i]);
    }
    if (rc == 0 && o.palette_path) /* grey or RGB: known once the first input is open */
        rc = cm_palette_check(o.palette_path, cm_grid_features(&ins[0].info->grid), ctx);
    for (int i = 0; i < n_in && rc == 0; i++) {
        rc = cm__input_prepare(&ins[i], &o, ctx);
        cm__name_input(ctx, in_paths[i]);
    }
    cm_model_t *model = NULL;
    if (rc == 0) rc = fit_inputs(ins, n_in, &o, &model, ctx);
    cm_model_meta_t m = rc == 0 ? cm__meta_of(ins[0].info) : (cm_model_meta_t){0};
    if (rc == 0 && model_path && cm_comm_rank() == 0)
        rc = cm__model_write(model, &m, model_path, ctx);
    if (rc == 0 && o.palette_path && cm_comm_rank() == 0) {
        rc = write_palette(model, &m, in_paths, n_in, o.palette_path, ctx);
        if (rc < 0 && model_path) unlink(model_path); /* a failed fit leaves neither */
    }
    for (int i = 0; i < n_in; i++) cm__input_close(&ins[i]);
    free(ins);
    if (rc == 0 && meta) *meta = m;
    if (rc == 0 && out)
        *out = model;
    else
        cm_model_free(model);
    return rc;
}

int cm_fit_file(const char *in_path, const cm_options_t *o, cm_model_t **out, cm_model_meta_t *meta,
                cm_ctx_t *ctx)
{
    return cm_fit_files(&in_path, 1, NULL, o, out, meta, ctx);
}
