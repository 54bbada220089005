/* chunkmeans run IN OUT: open IN, fit k colours on a sample, remap every chunk and write OUT
 * (and the label map, and the model). Wiring only: the work is in the library. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cm_io.h"

static const char run_help[] =
    "Usage: chunkmeans run IN.tif OUT.tif [options]\n"
    "\n"
    "Fits k colours on IN with mini-batch k-means and writes OUT: IN with every pixel replaced\n"
    "by its nearest colour (alpha kept as it is). OUT is a tiled TIFF with IN's size, bands\n"
    "and sample type; it appears only when complete.\n"
    "\n"
    "Options:\n"
    "  -k, --clusters N        number of colours, 1 to 65535 (default 8)\n"
    "      --seed N            random seed; the same seed gives the same output for any -j\n"
    "                          (default 0)\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, e.g. 512M, 2G\n"
    "                          (default 256M)\n"
    "      --max-iter N        mini-batch step limit (default 200)\n"
    "      --tol X             stop when no centre moves more than X sample levels for 10\n"
    "                          steps in a row (default 0.01)\n"
    "      --batch N           pixels per mini-batch step (default 8192)\n"
    "      --labels L.tif      also write the label map (uint8 when k <= 256, else uint16)\n"
    "      --model-out M.json  also write the fitted model as JSON\n"
    "      --compression C     none, lzw, deflate, zstd, jpeg or packbits (default: IN's).\n"
    "                          jpeg is lossy: OUT then holds more than k colours\n"
    "      --bigtiff WHEN      auto, always or never (default auto: when OUT could pass 4 GiB)\n"
    "      --tile N            output tiles of N x N pixels, N a multiple of 16 (default 512);\n"
    "                          input tiles that do not divide N are kept as they are\n"
    "      --progress WHEN     auto, always or never: progress bar on stderr\n"
    "                          (default auto: when stderr is a terminal)\n"
    "  -q, --quiet             errors only\n"
    "  -v, --verbose           per-stage detail and the colours found\n"
    "  -h, --help              this text\n"
    "\n"
    "Accepted with their default value only, for now: --format rgb, --algorithm minibatch,\n"
    "--colorspace rgb, --scale none, --dither none, --init kmeans++.\n";

enum {
    OPT_SEED = 256, OPT_MEMORY, OPT_MAX_ITER, OPT_TOL, OPT_BATCH, OPT_LABELS, OPT_MODEL_OUT,
    OPT_COMPRESSION, OPT_BIGTIFF, OPT_PROGRESS, OPT_FORMAT, OPT_ALGORITHM, OPT_COLORSPACE,
    OPT_SCALE, OPT_DITHER, OPT_INIT, OPT_NODATA, OPT_TRACE, OPT_GRAPH, OPT_TILE,
};

static const struct option run_options[] = {
    {"clusters", required_argument, 0, 'k'},
    {"seed", required_argument, 0, OPT_SEED},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, OPT_MEMORY},
    {"max-iter", required_argument, 0, OPT_MAX_ITER},
    {"tol", required_argument, 0, OPT_TOL},
    {"batch", required_argument, 0, OPT_BATCH},
    {"labels", required_argument, 0, OPT_LABELS},
    {"model-out", required_argument, 0, OPT_MODEL_OUT},
    {"compression", required_argument, 0, OPT_COMPRESSION},
    {"bigtiff", required_argument, 0, OPT_BIGTIFF},
    {"tile", required_argument, 0, OPT_TILE},
    {"progress", required_argument, 0, OPT_PROGRESS},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"format", required_argument, 0, OPT_FORMAT},
    {"algorithm", required_argument, 0, OPT_ALGORITHM},
    {"colorspace", required_argument, 0, OPT_COLORSPACE},
    {"scale", required_argument, 0, OPT_SCALE},
    {"dither", required_argument, 0, OPT_DITHER},
    {"init", required_argument, 0, OPT_INIT},
    {"nodata", required_argument, 0, OPT_NODATA},
    {"trace", required_argument, 0, OPT_TRACE},
    {"graph", required_argument, 0, OPT_GRAPH},
    {0, 0, 0, 0},
};

typedef struct run_opts {
    cm_params_t params;
    const char *in, *out, *labels, *model_out, *progress, *bigtiff;
    int compression; /* -1: that of IN */
    int64_t tile;
} run_opts_t;

/* Options from CLI.md whose other values later versions will bring. */
static bool only_default(const char *opt, const char *value, const char *dflt)
{
    if (!strcmp(value, dflt)) return true;
    cli_error("%s %s is not implemented yet (only %s)", opt, value, dflt);
    return false;
}

static bool one_of(const char *opt, const char *value, const char *a, const char *b,
                   const char *c)
{
    if (!strcmp(value, a) || !strcmp(value, b) || !strcmp(value, c)) return true;
    cli_error("%s: expected %s, %s or %s, not '%s'", opt, a, b, c, value);
    return false;
}

static int parse(int argc, char **argv, run_opts_t *o)
{
    cm_params_default(&o->params);
    o->compression = -1;
    o->progress = "auto";
    o->bigtiff = "auto";
    o->tile = 512;
    long long v;
    double x;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:j:qvh", run_options, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'k':
            if (strchr(optarg, ',')) {
                cli_error("-k: lists of k are not implemented yet; give one number");
                return EXIT_USAGE;
            }
            ok = cli_parse_int("-k", optarg, 1, 65535, &v);
            o->params.k = (int)v;
            break;
        case OPT_SEED:
            ok = cli_parse_int("--seed", optarg, 0, INT64_MAX, &v);
            o->params.seed = (uint64_t)v;
            break;
        case 'j':
            ok = cli_parse_int("--threads", optarg, 1, 1024, &v);
            o->params.n_threads = (int)v;
            break;
        case OPT_MEMORY: ok = cli_parse_size("--memory", optarg, &o->params.budget_bytes); break;
        case OPT_MAX_ITER:
            ok = cli_parse_int("--max-iter", optarg, 1, 100000000, &v);
            o->params.max_iter = (int)v;
            break;
        case OPT_TOL:
            ok = cli_parse_double("--tol", optarg, 0, 1e30, &x);
            o->params.tol = x;
            break;
        case OPT_BATCH:
            ok = cli_parse_int("--batch", optarg, 1, 1LL << 32, &v);
            o->params.batch = v;
            break;
        case OPT_LABELS: o->labels = optarg; break;
        case OPT_MODEL_OUT: o->model_out = optarg; break;
        case OPT_COMPRESSION:
            if (cm_compression_parse(optarg, &o->compression) < 0) {
                cli_error("--compression: expected none, lzw, deflate, zstd, jpeg or packbits, "
                          "not '%s'", optarg);
                ok = false;
            }
            break;
        case OPT_BIGTIFF:
            o->bigtiff = optarg;
            ok = one_of("--bigtiff", optarg, "auto", "always", "never");
            break;
        case OPT_TILE:
            ok = cli_parse_int("--tile", optarg, 16, 65536, &v);
            if (ok && v % 16) {
                cli_error("--tile: %lld is not a multiple of 16", v);
                ok = false;
            }
            o->tile = v;
            break;
        case OPT_PROGRESS:
            o->progress = optarg;
            ok = one_of("--progress", optarg, "auto", "always", "never");
            break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        case 'h': fputs(run_help, stdout); return -1;
        case OPT_FORMAT: ok = only_default("--format", optarg, "rgb"); break;
        case OPT_ALGORITHM: ok = only_default("--algorithm", optarg, "minibatch"); break;
        case OPT_COLORSPACE: ok = only_default("--colorspace", optarg, "rgb"); break;
        case OPT_SCALE: ok = only_default("--scale", optarg, "none"); break;
        case OPT_DITHER: ok = only_default("--dither", optarg, "none"); break;
        case OPT_INIT: ok = only_default("--init", optarg, "kmeans++"); break;
        case OPT_NODATA:
        case OPT_TRACE:
        case OPT_GRAPH:
            cli_error("%s is not implemented yet", argv[optind - 2]);
            return EXIT_USAGE;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans run --help'.\n", stderr);
            return EXIT_USAGE;
        }
        if (!ok) return EXIT_USAGE;
    }
    if (argc - optind != 2) {
        cli_error("run needs IN.tif and OUT.tif (try 'chunkmeans run --help')");
        return EXIT_USAGE;
    }
    o->in = argv[optind];
    o->out = argv[optind + 1];
    if (o->params.n_threads <= 0) o->params.n_threads = cm_default_threads();
    return 0;
}

/* Refuses to overwrite the input: OUT (or the label map) must not be IN, through any name. */
static bool same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

typedef struct sink_state {
    const cm_grid_t *grid;
    cm_writer_t *out, *labels;
} sink_state_t;

static int sink_put(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                    cm_ctx_t *ctx)
{
    const sink_state_t *s = self;
    int64_t x, y, w, h;
    cm_grid_rect(s->grid, idx, &x, &y, &w, &h);
    CM_TRY(cm_writer_put(s->out, x, y, w, h, pixels, ctx));
    if (s->labels) CM_TRY(cm_writer_put(s->labels, x, y, w, h, labels, ctx));
    return 0;
}

static int read_chunk(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    return cm_image_read_chunk(self, worker, idx, buf, ctx);
}

static void print_summary(const run_opts_t *o, const cm_image_info_t *in, const cm_model_t *m,
                          const double t[3])
{
    int used = 0;
    for (int j = 0; j < m->k; j++) used += m->counts[j] > 0;
    if (cli_verbosity >= 2) {
        fprintf(stderr, "chunkmeans: fit %.2f s (sample of %lld pixels, %d steps%s), "
                        "remap %.2f s (%.1f MPix/s)\n",
                t[1] - t[0], (long long)m->sample_px, m->iterations,
                m->converged ? ", converged" : ", step limit", t[2] - t[1],
                (double)(in->width * in->height) / (t[2] - t[1]) / 1e6);
        uint8_t *col = malloc((size_t)m->k * m->d);
        if (col) {
            cm_model_colors_u8(m, col);
            for (int j = 0; j < m->k; j++) {
                fprintf(stderr, "  colour %d:", j);
                for (int b = 0; b < m->d; b++) fprintf(stderr, " %3u", col[j * m->d + b]);
                fprintf(stderr, "   %lld pixels\n", (long long)m->counts[j]);
            }
            free(col);
        }
    }
    if (cli_verbosity >= 1)
        fprintf(stderr, "chunkmeans: %s: %lldx%lld, k=%d (%d used), mean squared error %.2f, "
                        "%.2f s\n",
                o->out, (long long)in->width, (long long)in->height, m->k, used,
                m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0, t[2] - t[0]);
}

int cmd_run(int argc, char **argv)
{
    run_opts_t o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? EXIT_OK : rc;
    if (same_file(o.in, o.out) || (o.labels && (same_file(o.in, o.labels) ||
                                                 !strcmp(o.labels, o.out)))) {
        cli_error("%s: refusing to overwrite the input or to write two outputs to one file",
                  o.labels && !strcmp(o.labels, o.out) ? o.labels : o.out);
        return EXIT_USAGE;
    }

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    cm_model_t *model = NULL;
    sink_state_t ss = {0};
    char *json = NULL;
    double t[3] = {cli_now()};
    cli_catch_signals();
    o.params.cancel = &cli_signal;

    rc = cm_image_open(o.in, o.params.n_threads, &img, &ctx);
    if (rc == 0) rc = cm_image_set_chunk_side(img, o.tile, &ctx);
    if (rc < 0) goto done;
    const cm_image_info_t *in = cm_image_info(img);
    cm_source_t src = {.grid = in->grid, .read = read_chunk, .self = img};
    cli_progress_t prog;
    cli_progress_init(&prog, o.progress,
                      (double)(in->width * in->height) / (double)cm_grid_count(&in->grid));
    o.params.progress = cli_progress_update;
    o.params.progress_user = &prog;

    int compression = o.compression >= 0 ? o.compression : in->compression;
    if (strcmp(cm_compression_name(compression), "unknown") == 0) {
        cli_warn("%s: its compression cannot be written; using deflate", o.in);
        cm_compression_parse("deflate", &compression);
    }
    if (cm_compression_lossy(compression))
        cli_warn("%s: %s is lossy: the output will hold more than %d colours (use --compression "
                 "deflate for exact colours)", o.out, cm_compression_name(compression),
                 o.params.k);
    cm_writer_spec_t spec, lspec;
    cm_writer_spec_like(in, compression, &spec);
    spec.bigtiff = !strcmp(o.bigtiff, "always") ||
                   (!strcmp(o.bigtiff, "auto") && cm_writer_needs_bigtiff(&spec));
    if (!strcmp(o.bigtiff, "never") && cm_writer_needs_bigtiff(&spec)) {
        rc = cm_fail(&ctx, CM_EUSAGE, "%s: the output could pass 4 GiB: --bigtiff never cannot "
                                      "hold it", o.out);
        goto done;
    }
    cm_writer_spec_labels(&spec, o.params.k <= 256 ? 8 : 16, &lspec);
    lspec.bigtiff = !strcmp(o.bigtiff, "always") ||
                    (!strcmp(o.bigtiff, "auto") && cm_writer_needs_bigtiff(&lspec));

    rc = cm_fit(&src, &o.params, &model, &ctx);
    if (rc < 0) goto done;
    t[1] = cli_now();

    ss.grid = &in->grid;
    rc = cm_writer_open(o.out, &spec, &ss.out, &ctx);
    if (rc == 0 && o.labels) rc = cm_writer_open(o.labels, &lspec, &ss.labels, &ctx);
    if (rc < 0) goto done;
    cm_sink_t sink = {.put = sink_put, .self = &ss, .want_labels = o.labels != NULL};
    rc = cm_remap(&src, model, &o.params, &sink, &ctx);
    cli_progress_end(&prog);
    if (rc < 0) goto done;
    if (ss.labels) {
        rc = cm_writer_commit(ss.labels, &ctx);
        ss.labels = NULL;
        if (rc < 0) goto done;
    }
    rc = cm_writer_commit(ss.out, &ctx);
    ss.out = NULL;
    if (rc < 0) goto done;
    if (o.model_out) {
        json = cm_model_to_json(model, in->bands, in->alpha_band, in->sample_type);
        rc = json ? cm_file_write_atomic(o.model_out, json, strlen(json), &ctx)
                  : cm_fail(&ctx, CM_ENOMEM, "%s: out of memory", o.model_out);
        if (rc < 0) goto done;
    }
    t[2] = cli_now();
    print_summary(&o, in, model, t);
done:
    if (rc < 0 && o.params.progress) cli_progress_end(o.params.progress_user);
    cm_writer_abort(ss.labels);
    cm_writer_abort(ss.out);
    free(json);
    cm_model_free(model);
    cm_image_close(img);
    return rc < 0 ? cli_fail(&ctx, rc) : EXIT_OK;
}
