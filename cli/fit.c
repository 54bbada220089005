/* chunkmeans fit IN... -o MODEL.json: fits one model on a sample drawn from every input alike,
 * and writes it as JSON for apply. Wiring only: the sampling and the fit are the library's. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

static const char fit_help[] =
    "Usage: chunkmeans fit IN.tif [IN2.tif ...] -o MODEL.json [options]\n"
    "\n"
    "Fits k colours on the inputs with k-means and writes the model (the centres, their\n"
    "counts, the scaling, the seed) as JSON, for 'chunkmeans apply'. The sample is drawn from\n"
    "all inputs alike, so each weighs by its number of valid pixels (alpha > 0, not nodata,\n"
    "finite). The inputs must agree in bands, alpha and sample type. With one input, fit then\n"
    "apply give the very pixels of 'chunkmeans run' with the same options and seed.\n"
    "\n"
    "Options:\n"
    "  -o, --output M.json     the model to write (required); it appears only when complete\n"
    "  -k, --clusters N        number of colours, 1 to 65535 (default 8); lowered, with a\n"
    "                          warning, to the number of pixels that take part when fewer\n"
    "      --seed N            random seed; the same seed gives the same model for any -j\n"
    "                          (default 0)\n"
    "  -j, --threads N         worker threads (default: all cores); each input is opened\n"
    "                          once per thread (fewer threads when the limit of open\n"
    "                          files, raised as far as allowed, cannot hold that)\n"
    "      --memory SIZE       budget for chunk buffers in flight, e.g. 512M, 2G\n"
    "                          (default 256M)\n"
    "      --algorithm A       minibatch (default), lloyd, histogram or auto, as for run.\n"
    "                          With several inputs only minibatch (auto means minibatch)\n"
    "      --max-iter N        step limit (default 200; lloyd 30, histogram 300 iterations)\n"
    "      --tol X             stop when no centre moves more than X sample levels\n"
    "                          (default 0.01)\n"
    "      --batch N           pixels per mini-batch step (default 8192)\n"
    "      --scale S           none, or standard: each band to mean 0 and deviation 1\n"
    "                          (default none)\n"
    "      --nodata V          samples equal to V mark pixels outside the data (default:\n"
    "                          each input's GDAL_NODATA)\n"
    "      --colorspace CS     rgb, or lab: cluster an RGB image's colours in CIELAB\n"
    "                          (default rgb); apply then remaps in the model's space\n"
    "      --init I            how the fit starts: kmeans++ (default): k spread-out colours of\n"
    "                          the sample; random: k of its colours drawn uniformly (with\n"
    "                          --seed; distinct ones where it has k); or FILE.json: the\n"
    "                          centres in it (a model, {\"colors\": [[r, g, b], ...]} or a\n"
    "                          list of rows), whose number is k (a different -k is refused)\n"
    "      --tile N            read in chunks of N x N pixels, as run --tile N does (default\n"
    "                          512); matters for exact (lloyd) fits of float images only\n"
    "      --progress WHEN     auto, always or never: progress bar on stderr\n"
    "  -q, --quiet             errors only\n"
    "  -v, --verbose           the sample, the steps and the colours\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 bad input (an input that\n"
    "cannot be read, or whose bands or sample type differ from the first input's: the message\n"
    "names it).\n";

static const struct option fit_options[] = {
    {"output", required_argument, 0, 'o'},
    {"clusters", required_argument, 0, 'k'},
    {"seed", required_argument, 0, CLI_OPT_SEED},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"algorithm", required_argument, 0, CLI_OPT_ALGORITHM},
    {"max-iter", required_argument, 0, CLI_OPT_MAX_ITER},
    {"tol", required_argument, 0, CLI_OPT_TOL},
    {"batch", required_argument, 0, CLI_OPT_BATCH},
    {"scale", required_argument, 0, CLI_OPT_SCALE},
    {"nodata", required_argument, 0, CLI_OPT_NODATA},
    {"tile", required_argument, 0, CLI_OPT_TILE},
    {"progress", required_argument, 0, CLI_OPT_PROGRESS},
    {"colorspace", required_argument, 0, CLI_OPT_COLORSPACE},
    {"init", required_argument, 0, CLI_OPT_INIT},
    {"dither", required_argument, 0, CLI_OPT_DITHER},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef struct fit_opts {
    cli_opts_t o;
    const char *model_out;
    char **in;
    int n_in;
} fit_opts_t;

static int parse(int argc, char **argv, fit_opts_t *f)
{
    cli_opts_default(&f->o);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:k:j:qvh", fit_options, NULL)) != -1) {
        int got = cli_option(&f->o, c, optarg);
        if (got < 0) return CM_EXIT_USAGE;
        if (got > 0) continue;
        switch (c) {
        case 'o': f->model_out = optarg; break;
        case 'h': fputs(fit_help, stdout); return -1;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans fit --help'.\n", stderr);
            return CM_EXIT_USAGE;
        }
    }
    cli_opts_finish(&f->o);
    if (f->o.dither_given) {
        cli_error("--dither is a choice of the remap: give it to apply (or run), not fit");
        return CM_EXIT_USAGE;
    }
    if (f->o.n_k > 1) {
        cli_error("-k: fit writes one model, for one k; a list of k is for run");
        return CM_EXIT_USAGE;
    }
    f->in = argv + optind;
    f->n_in = argc - optind;
    if (f->n_in < 1 || !f->model_out) {
        cli_error("fit needs IN.tif ... and -o MODEL.json (try 'chunkmeans fit --help')");
        return CM_EXIT_USAGE;
    }
    if (f->n_in > 1 && f->o.params.algorithm != CM_ALG_MINIBATCH &&
        f->o.params.algorithm != CM_ALG_AUTO) {
        cli_error("--algorithm: several inputs are fitted with minibatch only");
        return CM_EXIT_USAGE;
    }
    if (f->o.params.algorithm == CM_ALG_AUTO && f->n_in > 1)
        f->o.params.algorithm = CM_ALG_MINIBATCH;
    for (int i = 0; i < f->n_in; i++) {
        const char *paths[2] = {f->in[i], f->model_out};
        if (!cli_paths_distinct(paths, 2)) return CM_EXIT_USAGE;
    }
    return 0;
}

/* Every input is opened once per worker thread, all at once: raises the limit of open files
 * towards what that takes, and when the system's limit is lower still, takes fewer threads. */
static void fit_descriptors(int n_in, int *n_threads)
{
    rlim_t spare = 64; /* standard streams, the model, scratch and spill files */
    rlim_t need = (rlim_t)n_in * (rlim_t)*n_threads + spare;
    struct rlimit lim;
    if (!cli_raise_open_files((int64_t)need, &lim)) return;
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= need) return;
    rlim_t fit = lim.rlim_cur > spare ? (lim.rlim_cur - spare) / (rlim_t)n_in : 0;
    int threads = fit < 1 ? 1 : (int)fit;
    if (threads >= *n_threads) return;
    cli_warn("%d inputs opened by %d threads need more files open than allowed (%llu); using %d "
             "thread%s",
             n_in, *n_threads, (unsigned long long)lim.rlim_cur, threads, threads == 1 ? "" : "s");
    *n_threads = threads;
}

/* CM_EINPUT naming img when its pixels are not of the kind of the first input's. */
static int check_same_kind(const char *path, const cm_image_info_t *in, const char *first_path,
                           const cm_image_info_t *first, cm_ctx_t *ctx)
{
    char mine[64], theirs[64];
    cli_describe_pixels(in, mine, sizeof mine);
    cli_describe_pixels(first, theirs, sizeof theirs);
    CM_FAIL_IF(ctx,
               in->bands != first->bands || in->stype != first->stype ||
                   in->alpha_band != first->alpha_band,
               CM_EINPUT,
               "%s: %s, unlike %s (%s): inputs fitted together must agree in bands, alpha and "
               "sample type",
               path, mine, first_path, theirs);
    return 0;
}

int cmd_fit(int argc, char **argv)
{
    fit_opts_t f = {0};
    int rc = parse(argc, argv, &f);
    if (rc) return rc < 0 ? CM_EXIT_OK : rc;
    cm_params_t *params = &f.o.params;

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t **imgs = calloc((size_t)f.n_in, sizeof(cm_image_t *));
    cm_source_t *srcs = calloc((size_t)f.n_in, sizeof(cm_source_t));
    cm_model_t *model = NULL;
    char *json = NULL;
    const char *failed = f.in[0]; /* the input a failure is about */
    double t0 = cli_now();
    cli_catch_signals();
    params->cancel = &cli_signal;
    if (!imgs || !srcs) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory for %d inputs", f.n_in);
        goto done;
    }

    char *dir = cli_dir_of(f.model_out);
    snprintf(cli_scratch_dir, sizeof cli_scratch_dir, "%s", dir ? dir : ".");
    free(dir);
    rc = cli_check_not_dir(f.model_out, &ctx);
    if (rc == 0 && !cli_dir_writable(f.model_out))
        rc = cm_fail(&ctx, CM_EIO, "%s: cannot write there: %s", f.model_out, strerror(errno));
    fit_descriptors(f.n_in, &params->n_threads);
    int64_t n_px = 0, n_chunks = 0;
    for (int i = 0; i < f.n_in && rc == 0; i++) {
        failed = f.in[i];
        rc = cm_image_open(f.in[i], params->n_threads, &imgs[i], &ctx);
        if (rc == 0) cm_image_set_cancel(imgs[i], &cli_signal);
        if (rc == 0) rc = cm_image_set_chunk_side(imgs[i], f.o.tile, &ctx);
        if (rc < 0) break;
        const cm_image_info_t *in = cm_image_info(imgs[i]);
        rc = check_same_kind(f.in[i], in, f.in[0], cm_image_info(imgs[0]), &ctx);
        srcs[i] = cli_source(imgs[i], &f.o);
        if (rc == 0) rc = cm_budget_check(&srcs[i], params, false, &ctx);
        if (!cm_add_i64(n_px, in->width * in->height, &n_px)) n_px = INT64_MAX;
        n_chunks += cm_grid_count(&in->grid);
    }
    if (rc < 0) goto done;
    for (int i = 0; i < f.n_in && rc == 0; i++) {
        failed = f.in[i];
        if (!cm_image_info(imgs[i])->streamed) continue;
        if (cli_verbosity >= 2)
            fprintf(stderr, "chunkmeans: %s: streaming its strips into a spill store\n", f.in[i]);
        rc = cm_image_prepare(imgs[i], cli_scratch_dir, &ctx);
    }
    if (rc < 0) goto done;
    rc = cli_check_colorspace(cm_image_info(imgs[0]), f.in[0], params->colorspace, &ctx);
    if (rc == 0) {
        failed = f.o.init_path;
        rc = cli_opts_load_init(&f.o, cm_grid_features(&cm_image_info(imgs[0])->grid), &ctx);
    }
    if (rc < 0) goto done;
    failed = f.n_in == 1 ? f.in[0] : NULL;

    const char *what = f.n_in == 1 ? f.in[0] : "the inputs";
    if (params->init_centres && params->k > n_px) {
        rc = cm_fail(&ctx, CM_EUSAGE, "%s: its %d centres are more than the %lld pixels of %s",
                     f.o.init_path, params->k, (long long)n_px, what);
        goto done;
    }
    if (params->k > n_px) {
        cli_warn("%s: -k %d is more than its %lld pixels; using k=%lld", what, params->k,
                 (long long)n_px, (long long)n_px);
        params->k = (int)n_px;
    }
    cli_progress_t prog;
    cli_progress_init(&prog, f.o.progress, (double)n_px / (double)n_chunks);
    params->progress = cli_progress_update;
    params->progress_user = &prog;
    rc = cli_fit(srcs, f.n_in, NULL, params, what, &model, &ctx);
    cli_progress_end(&prog);
    if (rc == 0 && cli_signal) rc = cm_fail(&ctx, CM_ECANCELED, "interrupted");
    if (rc < 0) goto done;

    const cm_image_info_t *in = cm_image_info(imgs[0]);
    json = cm_model_to_json(model, in->bands, in->alpha_band, in->sample_type);
    rc = json ? cm_file_write_atomic(f.model_out, json, strlen(json), &ctx)
              : cm_fail(&ctx, CM_ENOMEM, "%s: out of memory", f.model_out);
    if (rc < 0) goto done;
    if (cli_verbosity >= 2) {
        uint8_t *col = malloc((size_t)model->k * model->d);
        for (int j = 0; col && j < model->k; j++) {
            cm_model_colors_u8(model, col);
            fprintf(stderr, "  colour %d:", j);
            for (int b = 0; b < model->d; b++) fprintf(stderr, " %3u", col[j * model->d + b]);
            fputc('\n', stderr);
        }
        free(col);
    }
    if (cli_verbosity >= 1)
        fprintf(stderr,
                "chunkmeans: %s: k=%d fitted on %d input%s (sample of %lld pixels, %d steps%s), "
                "%.2f s\n",
                f.model_out, model->k, f.n_in, f.n_in == 1 ? "" : "s", (long long)model->sample_px,
                model->iterations, model->converged ? ", converged" : "", cli_now() - t0);
done:
    if (rc < 0 && params->progress) cli_progress_end(params->progress_user);
    free(json);
    cm_model_free(model);
    for (int i = 0; imgs && i < f.n_in; i++) cm_image_close(imgs[i]);
    free(imgs);
    free(srcs);
    cli_opts_free(&f.o);
    return rc < 0 ? cli_fail(&ctx, rc, failed) : CM_EXIT_OK;
}
