/* chunkmeans run IN OUT: the options parsed, one call of cm_run_file (fit k colours on a
 * sample, remap every chunk, write OUT, the label map, the model, the summary), and its report. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char run_help[] =
    "Usage: chunkmeans run IN OUT [options]\n"
    "\n"
    "Fits k colours on IN with k-means (mini-batch unless --algorithm says otherwise) and\n"
    "writes OUT: IN with every pixel replaced by its nearest colour. Alpha is kept as it is;\n"
    "pixels with alpha 0, nodata or non-finite samples take no part and are written\n"
    "unchanged. With associated (premultiplied) alpha, pixels are clustered by their colour\n"
    "(samples / alpha) and written premultiplied again. OUT has IN's size, bands and sample\n"
    "type; it appears only when complete.\n"
    "\n"
    "IN is a TIFF, JPEG or PNG, recognised by its content (a JPEG or PNG is decoded once, in\n"
    "order, into a compressed scratch file). OUT's extension chooses its format: .tif or\n"
    ".tiff (or none) a tiled TIFF with IN's photometric, extra samples, georeferencing and\n"
    "tags; .png a PNG, colour-mapped when k <= 256, the samples are 8-bit and no pixel keeps\n"
    "its own value (alpha, nodata), else grey or RGB with IN's alpha and depth, compressed on\n"
    "every core; .jpg or .jpeg a JPEG (quality 90: it holds more than k colours, with a\n"
    "warning). The ICC profile, orientation and resolution are kept in every format.\n"
    "\n";

/* Three strings: ISO C only promises 4095 characters in one. */
static const char run_help_options[] =
    "Options:\n"
    "  -k, --clusters N        number of colours, 1 to 65535 (default 8); lowered, with a\n"
    "                          warning, to the number of pixels that take part when fewer.\n"
    "                          A list (-k 2,5,10, up to 16) fits every k on the same sample\n"
    "                          and writes OUT, --labels and --model-out once per k, named\n"
    "                          with .k2, .k5, ... before the extension, in one pass over IN\n"
    "      --summary S.json    also write k, inertia, counts and outputs of every k, and\n"
    "                          the chunk reads of the remap pass, as JSON; S.svg: a picture\n"
    "                          instead, the mean squared error against k, with each k's\n"
    "                          colours as swatches as wide as their shares of the pixels.\n"
    "                          Written only when the run succeeds\n"
    "      --seed N            random seed; the same seed gives the same output for any -j\n"
    "                          (default 0)\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, e.g. 512M, 2G\n"
    "                          (default 256M); up to half of it keeps the chunks the fit\n"
    "                          decoded, for the remap\n"
    "      --algorithm A       minibatch: steps on a sample (default); lloyd: exact Lloyd\n"
    "                          iterations over every pixel, one pass over the image each;\n"
    "                          histogram: the same over the colour histogram (8-bit, up to 3\n"
    "                          colour bands); auto: histogram where it applies, else minibatch\n"
    "      --max-iter N        step limit (default 200; lloyd 30, histogram 300 iterations)\n"
    "      --tol X             stop when no centre moves more than X sample levels (for 10\n"
    "                          steps in a row with minibatch) (default 0.01)\n"
    "      --batch N           pixels per mini-batch step (default 8192)\n";
static const char run_help_outputs[] =
    "      --labels L.tif      also write the label map (uint8 when k <= 256, else uint16),\n"
    "                          a TIFF, or a grey PNG when L ends in .png\n"
    "      --model-out M.json  also write the fitted model as JSON\n"
    "      --palette-out P     also write the colours found, largest count first, as the\n"
    "                          extension of P says: .gpl a GIMP palette; .txt or .hex lines\n"
    "                          of '#rrggbb count percent'; .png a strip of swatches, 1000 x\n"
    "                          100 pixels, each as wide as its share. Grey or RGB images only\n"
    "      --nodata V          samples equal to V mark pixels outside the data: left out of\n"
    "                          the fit and written unchanged (default: IN's GDAL_NODATA)\n"
    "      --nodata-match M    all: a pixel is nodata when all its colour samples equal V,\n"
    "                          as GDAL and rasterio read masks (default); any: when any does\n"
    "      --scale S           none, or standard: each band to mean 0 and deviation 1\n"
    "                          before the fit, for bands of different ranges (default none)\n"
    "      --format F          rgb: recoloured samples; palette: 8-bit colour-mapped output\n"
    "                          (k <= 256, 1 or 3 colour bands); default: palette for a\n"
    "                          palette input or a PNG OUT that can be one, else rgb\n"
    "      --compression C     TIFF's: none, lzw, deflate, zstd, jpeg or packbits (default:\n"
    "                          IN's, or deflate when IN's is lossy or IN is a JPEG or PNG).\n"
    "                          jpeg is lossy: OUT then holds more than k colours\n"
    "      --bigtiff WHEN      auto, always or never (default auto: when OUT could pass 4 GiB)\n"
    "      --tile N            output tiles of N x N pixels, N a multiple of 16 from 16 to\n"
    "                          4096 (default 512); input tiles that do not divide N are kept\n"
    "                          as they are\n";
static const char run_help_layout[] =
    "      --overviews L       auto, none or N: reduced levels of a TIFF OUT (and label map),\n"
    "                          each half the one before, made in the same pass; auto: until a\n"
    "                          level fits in one tile (default none). A pixel of a level is the\n"
    "                          most frequent colour (label) of its 2x2 block, ties to the lower\n"
    "                          label: the colours stay the k, and a label map's stay labels\n"
    "      --preview P.png     also write a small PNG of OUT, its longest side 1024 at most,\n"
    "                          sampled from the coarsest reduced level that is large enough\n"
    "      --cog               write TIFF outputs as Cloud Optimized GeoTIFFs (GDAL's COG\n"
    "                          layout: directories first, then the levels' tiles, smallest\n"
    "                          first, then the image's), with --overviews auto unless given\n"
    "      --mpi-write M       under mpirun or srun: gather: rank 0 writes the tiles every\n"
    "                          rank sends it (default); parallel: each rank writes its own\n"
    "                          tiles of a TIFF (MPI-IO) where rank 0 places them. Same bytes\n"
    "                          either way\n"
    "      --color-cache WHEN  auto, on or off: for 8-bit images of up to 3 colour bands, look\n"
    "                          colours up in a table of nearest centres (32 MiB for RGB,\n"
    "                          outside --memory); auto: on large images, k >= 128. Same\n"
    "                          output either way\n"
    "      --trace FILE.json   write every task's start, end, thread, kind and bytes in the\n"
    "                          Chrome trace-event format (Perfetto, chrome://tracing)\n"
    "      --graph FILE.dot    write the task graphs of the run (Graphviz; for small runs)\n"
    "      --progress WHEN     auto, always or never: progress bar on stderr\n"
    "                          (default auto: when stderr is a terminal)\n"
    "  -q, --quiet             errors only\n"
    "  -v, --verbose           per-stage time, MPix/s and peak buffered bytes, and the colours\n"
    "  -h, --help              this text\n"
    "      --colorspace CS     rgb, or lab: cluster an RGB image's colours in CIELAB, where\n"
    "                          distances follow perceived differences (default rgb)\n"
    "      --init I            how the fit starts: kmeans++ (default): k spread-out colours of\n"
    "                          the sample, each the best of a few candidates; random: k of\n"
    "                          its colours drawn uniformly (distinct ones where it has k);\n"
    "                          or FILE.json: the centres in it (a model, {\"colors\":\n"
    "                          [[r, g, b], ...]} or a list of rows, in sample units),\n"
    "                          whose number is k (a different -k is refused)\n"
    "      --n-init N          starts tried, each settled by Lloyd iterations on part of the\n"
    "                          sample; the lowest inertia wins (default 5; none with a\n"
    "                          FILE.json start)\n"
    "      --dither D          none, or ordered: a position-based 8x8 dither between each\n"
    "                          pixel's two nearest colours; no seams, same for any -j or\n"
    "                          --tile (default none)\n";

static const struct option run_options[] = {
    {"clusters", required_argument, 0, 'k'},
    {"seed", required_argument, 0, CLI_OPT_SEED},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"max-iter", required_argument, 0, CLI_OPT_MAX_ITER},
    {"n-init", required_argument, 0, CLI_OPT_N_INIT},
    {"tol", required_argument, 0, CLI_OPT_TOL},
    {"batch", required_argument, 0, CLI_OPT_BATCH},
    {"labels", required_argument, 0, CLI_OPT_LABELS},
    {"model-out", required_argument, 0, CLI_OPT_MODEL_OUT},
    {"preview", required_argument, 0, CLI_OPT_PREVIEW},
    {"palette-out", required_argument, 0, CLI_OPT_PALETTE_OUT},
    {"compression", required_argument, 0, CLI_OPT_COMPRESSION},
    {"bigtiff", required_argument, 0, CLI_OPT_BIGTIFF},
    {"tile", required_argument, 0, CLI_OPT_TILE},
    {"color-cache", required_argument, 0, CLI_OPT_CACHE},
    {"mpi-write", required_argument, 0, CLI_OPT_MPI_WRITE},
    {"overviews", required_argument, 0, CLI_OPT_OVERVIEWS},
    {"cog", no_argument, 0, CLI_OPT_COG},
    {"progress", required_argument, 0, CLI_OPT_PROGRESS},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"format", required_argument, 0, CLI_OPT_FORMAT},
    {"algorithm", required_argument, 0, CLI_OPT_ALGORITHM},
    {"colorspace", required_argument, 0, CLI_OPT_COLORSPACE},
    {"scale", required_argument, 0, CLI_OPT_SCALE},
    {"dither", required_argument, 0, CLI_OPT_DITHER},
    {"init", required_argument, 0, CLI_OPT_INIT},
    {"nodata", required_argument, 0, CLI_OPT_NODATA},
    {"nodata-match", required_argument, 0, CLI_OPT_NODATA_MATCH},
    {"trace", required_argument, 0, CLI_OPT_TRACE},
    {"graph", required_argument, 0, CLI_OPT_GRAPH},
    {"summary", required_argument, 0, CLI_OPT_SUMMARY},
    {0, 0, 0, 0},
};

typedef struct run_opts {
    cli_opts_t o;
    const char *in, *out, *labels, *model_out, *palette_out, *preview;
    const char *trace_path, *graph_path, *summary_path;
} run_opts_t;

static int parse(int argc, char **argv, run_opts_t *o)
{
    cli_opts_default(&o->o);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:j:qvh", run_options, NULL)) != -1) {
        int got = cli_option(&o->o, c, optarg);
        if (got < 0) return CM_EXIT_USAGE;
        if (got > 0) continue;
        switch (c) {
        case CLI_OPT_LABELS: o->labels = optarg; break;
        case CLI_OPT_MODEL_OUT: o->model_out = optarg; break;
        case CLI_OPT_PREVIEW: o->preview = optarg; break;
        case CLI_OPT_PALETTE_OUT: o->palette_out = optarg; break;
        case 'h':
            fputs(run_help, stdout);
            fputs(run_help_options, stdout);
            fputs(run_help_outputs, stdout);
            fputs(run_help_layout, stdout);
            return -1;
        case CLI_OPT_TRACE: o->trace_path = optarg; break;
        case CLI_OPT_GRAPH: o->graph_path = optarg; break;
        case CLI_OPT_SUMMARY: o->summary_path = optarg; break;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans run --help'.\n", stderr);
            return CM_EXIT_USAGE;
        }
    }
    cli_opts_finish(&o->o);
    if (o->o.n_k > 1 && o->o.init_path) {
        cli_error("--init gives the centres, and so k: it cannot go with a list of k");
        return CM_EXIT_USAGE;
    }
    if (argc - optind != 2) {
        cli_error("run needs IN and OUT (try 'chunkmeans run --help')");
        return CM_EXIT_USAGE;
    }
    o->in = argv[optind];
    o->out = argv[optind + 1];
    return 0;
}

/* Names every output: OUT itself for one k, OUT.kN for each of a list; and refuses outputs
 * that are the input or each other. The names made are in owned (OWN per output). */
enum { OWN = 5 };
static int name_outputs(const run_opts_t *o, cm_run_output_t *outs, int n, char **owned)
{
    const char *paths[4 + OWN * CLI_K_LIST_MAX] = {o->in, o->trace_path, o->graph_path,
                                                   o->summary_path};
    for (int i = 0; i < n; i++) {
        cm_run_output_t *r = &outs[i];
        r->k = n > 1 ? o->o.ks[i] : 0; /* one k: the options' (0 when --init gives it) */
        if (n > 1) {
            r->out = owned[OWN * i] = cli_path_with_k(o->out, r->k);
            r->labels = owned[OWN * i + 1] = cli_path_with_k(o->labels, r->k);
            r->model = owned[OWN * i + 2] = cli_path_with_k(o->model_out, r->k);
            r->palette = owned[OWN * i + 3] = cli_path_with_k(o->palette_out, r->k);
            r->preview = owned[OWN * i + 4] = cli_path_with_k(o->preview, r->k);
        } else {
            *r = (cm_run_output_t){.k = r->k,
                                   .out = o->out,
                                   .labels = o->labels,
                                   .model = o->model_out,
                                   .palette = o->palette_out,
                                   .preview = o->preview};
        }
        if (!r->out || (o->labels && !r->labels) || (o->model_out && !r->model) ||
            (o->palette_out && !r->palette) || (o->preview && !r->preview)) {
            cli_error("out of memory");
            return CM_EXIT_RUNTIME;
        }
        const char *mine[OWN] = {r->out, r->labels, r->model, r->palette, r->preview};
        for (int j = 0; j < OWN; j++) paths[4 + OWN * i + j] = mine[j];
    }
    return cli_paths_distinct(paths, 4 + OWN * n) ? 0 : CM_EXIT_USAGE;
}

/* Per stage, for -v: its seconds, tasks and runs, and the peak of its buffers. */
static void print_stages(const cm_run_report_t *rep, const cm_trace_t *trace)
{
    cm_trace_stage_t stages[8];
    int n_stages = trace ? cm_trace_stages(trace, stages, 8) : 0;
    for (int i = 0; cli_verbosity >= 2 && i < n_stages && i < 8; i++) {
        bool chunks = strcmp(stages[i].stage, "fit") != 0;
        fprintf(stderr, "chunkmeans: stage %-6s %7.2f s  %6lld tasks in %d runs", stages[i].stage,
                stages[i].seconds, (long long)stages[i].tasks, stages[i].runs);
        if (chunks && !strcmp(stages[i].stage, "remap"))
            fprintf(stderr, "  %.1f MPix/s",
                    (double)rep->width * (double)rep->height / stages[i].seconds / 1e6);
        fprintf(stderr, "  peak %.1f MiB buffered\n", (double)stages[i].peak_bytes / (1 << 20));
    }
}

/* What one output of the run was: its k and fit (-v), its error (one line per k of a list,
 * whose inertias show the elbow). */
static void print_output(const cm_run_output_t *r, const cm_run_report_t *rep, double seconds,
                         bool many)
{
    const cm_model_t *m = r->fitted;
    int used = 0;
    for (int j = 0; j < m->k; j++) used += m->counts[j] > 0;
    double mse = m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0;
    const char *steps = m->converged ? ", converged" : ", step limit";
    if (cli_verbosity >= 2 && !many)
        fprintf(stderr,
                "chunkmeans: fit %.2f s (sample of %lld pixels, %d steps%s), "
                "remap %.2f s (%.1f MPix/s)\n",
                rep->fit_seconds, (long long)m->sample_px, m->iterations, steps, rep->remap_seconds,
                (double)rep->width * (double)rep->height / rep->remap_seconds / 1e6);
    if (cli_verbosity >= 2 && many)
        fprintf(stderr, "chunkmeans: k=%d: sample of %lld pixels, %d steps%s\n", m->k,
                (long long)m->sample_px, m->iterations, steps);
    if (cli_verbosity >= 2) cli_print_colors(m, rep->meta.stype);
    if (cli_verbosity >= 1 && !many)
        fprintf(stderr,
                "chunkmeans: %s: %lldx%lld, k=%d (%d used), mean squared error %.2f, %.2f s\n",
                r->out, (long long)rep->width, (long long)rep->height, m->k, used, mse, seconds);
    else if (cli_verbosity >= 1)
        fprintf(stderr, "chunkmeans: %s: k=%d (%d used), inertia %.6g, mean squared error %.2f\n",
                r->out, m->k, used, m->inertia, mse);
}

static void report(const run_opts_t *o, const cm_run_output_t *outs, int n,
                   const cm_run_report_t *rep, const cm_trace_t *trace, double seconds)
{
    print_stages(rep, trace);
    for (int i = 0; i < n; i++) print_output(&outs[i], rep, seconds, n > 1);
    if (cli_verbosity >= 2)
        fprintf(stderr,
                "chunkmeans: chunks decoded: %lld by the fit%s, %lld by the remap pass, which "
                "took %lld more as the fit left them (%lld chunks, %d output%s)\n",
                (long long)rep->fit_chunks_read, n == 1 ? "" : "s", (long long)rep->chunks_read,
                (long long)rep->chunks_reused, (long long)rep->chunks, n, n == 1 ? "" : "s");
    if (cli_verbosity >= 1 && n > 1)
        fprintf(stderr, "chunkmeans: %lldx%lld, %d values of k in one pass over %s, %.2f s\n",
                (long long)rep->width, (long long)rep->height, n, o->in, seconds);
}

int cmd_run(int argc, char **argv)
{
    run_opts_t o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? CM_EXIT_OK : rc;
    int n = o.o.n_k > 1 ? o.o.n_k : 1;
    cm_run_output_t outs[CLI_K_LIST_MAX] = {0};
    char *owned[OWN * CLI_K_LIST_MAX] = {0};
    rc = name_outputs(&o, outs, n, owned);
    cm_trace_t *trace = NULL; /* for -v's figures of every stage */
    if (rc == 0 && cli_verbosity >= 2 && !(trace = cm_trace_create())) {
        cli_error("out of memory for the trace");
        rc = CM_EXIT_RUNTIME;
    }
    if (rc == 0) {
        double t0 = cli_now();
        cli_catch_signals();
        cli_progress_t prog;
        cli_progress_init(&prog, o.o.progress, 0);
        cm_options_t fo = cli_file_options(&o.o, &prog);
        fo.params.trace = trace;
        fo.summary_path = o.summary_path;
        fo.trace_path = o.trace_path;
        fo.graph_path = o.graph_path;
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        cm_run_report_t rep;
        int err = cm_run_file(o.in, outs, n, &fo, &rep, &ctx);
        cli_progress_end(&prog);
        if (outs[0].fitted) /* it ran (a trace or graph may still have failed) */
            report(&o, outs, n, &rep, trace, cli_now() - t0);
        if (err < 0) rc = cli_fail(&ctx, err, NULL);
    }
    for (int i = 0; i < n; i++) cm_model_free(outs[i].fitted);
    for (int i = 0; i < OWN * n; i++) free(owned[i]);
    cm_trace_free(trace);
    return rc;
}
