/* chunkmeans fit IN... -o MODEL.json: the options parsed, one call of cm_fit_files (one model
 * fitted on a sample drawn from every input alike, written as JSON for apply), and its report. */
#include <getopt.h>
#include <string.h>
#include <sys/resource.h>

#include "cli.h"

static const char fit_help[] =
    "Usage: chunkmeans fit IN [IN2 ...] -o MODEL.json [options]\n"
    "\n"
    "Fits k colours on the inputs with k-means and writes the model (the centres, their\n"
    "counts, the scaling, the seed) as JSON, for 'chunkmeans apply'. The sample is drawn from\n"
    "all inputs alike, so each weighs by its number of valid pixels (alpha > 0, not nodata,\n"
    "finite). The inputs (TIFFs, JPEGs or PNGs, in any mix) must agree in bands, alpha and\n"
    "sample type. With one input, fit then apply give the very pixels of 'chunkmeans run'\n"
    "with the same options and seed.\n"
    "\n"
    "Options:\n"
    "  -o, --output M.json     the model to write (required); it appears only when complete\n"
    "      --palette-out P     also write its colours, largest count first (the counts of\n"
    "                          the fit: the sample's with minibatch), as P's extension says:\n"
    "                          .gpl, .txt or .hex, or .png, as for run\n"
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
    "      --nodata-match M    all (default) or any of a pixel's colour samples equal to V\n"
    "                          make it nodata, as for run\n"
    "      --colorspace CS     rgb, or lab: cluster an RGB image's colours in CIELAB\n"
    "                          (default rgb); apply then remaps in the model's space\n"
    "      --init I            how the fit starts: kmeans++ (default): k spread-out colours of\n"
    "                          the sample, each the best of a few candidates; random: k of\n"
    "                          its colours drawn uniformly (distinct ones where it has k);\n"
    "                          or FILE.json: the centres in it (a model, {\"colors\":\n"
    "                          [[r, g, b], ...]} or a list of rows), whose number is k\n"
    "                          (a different -k is refused)\n"
    "      --n-init N          starts tried, each settled by Lloyd iterations on part of the\n"
    "                          sample; the lowest inertia wins (default 5; none with a\n"
    "                          FILE.json start)\n"
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
    {"palette-out", required_argument, 0, CLI_OPT_PALETTE_OUT},
    {"clusters", required_argument, 0, 'k'},
    {"seed", required_argument, 0, CLI_OPT_SEED},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"algorithm", required_argument, 0, CLI_OPT_ALGORITHM},
    {"max-iter", required_argument, 0, CLI_OPT_MAX_ITER},
    {"n-init", required_argument, 0, CLI_OPT_N_INIT},
    {"tol", required_argument, 0, CLI_OPT_TOL},
    {"batch", required_argument, 0, CLI_OPT_BATCH},
    {"scale", required_argument, 0, CLI_OPT_SCALE},
    {"nodata", required_argument, 0, CLI_OPT_NODATA},
    {"nodata-match", required_argument, 0, CLI_OPT_NODATA_MATCH},
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
    const char *model_out, *palette_out;
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
        case CLI_OPT_PALETTE_OUT: f->palette_out = optarg; break;
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
        cli_error("fit needs IN ... and -o MODEL.json (try 'chunkmeans fit --help')");
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
        const char *paths[3] = {f->in[i], f->model_out, f->palette_out};
        if (!cli_paths_distinct(paths, 3)) return CM_EXIT_USAGE;
    }
    return 0;
}

int cmd_fit(int argc, char **argv)
{
    fit_opts_t f = {0};
    int rc = parse(argc, argv, &f);
    if (rc) return rc < 0 ? CM_EXIT_OK : rc;
    /* Every input is opened once per worker thread, all at once: the limit of open files is
     * raised towards what that takes (the library takes fewer threads under a lower one). */
    struct rlimit lim;
    cli_raise_open_files(cm_fit_files_descriptors(f.n_in, f.o.params.n_threads), &lim);
    double t0 = cli_now();
    cli_catch_signals();
    cli_progress_t prog;
    cli_progress_init(&prog, f.o.progress, 0);
    cm_options_t fo = cli_file_options(&f.o, &prog);
    fo.palette_path = f.palette_out;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *model = NULL;
    cm_model_meta_t meta;
    rc = cm_fit_files((const char *const *)f.in, f.n_in, f.model_out, &fo, &model, &meta, &ctx);
    cli_progress_end(&prog);
    if (rc < 0) return cli_fail(&ctx, rc, NULL);
    if (cli_verbosity >= 2) cli_print_colors(model, meta.stype);
    if (cli_verbosity >= 1)
        fprintf(stderr,
                "chunkmeans: %s: k=%d fitted on %d input%s (sample of %lld pixels, %d steps%s), "
                "%.2f s\n",
                f.model_out, model->k, f.n_in, f.n_in == 1 ? "" : "s", (long long)model->sample_px,
                model->iterations, model->converged ? ", converged" : "", cli_now() - t0);
    cm_model_free(model);
    return CM_EXIT_OK;
}
