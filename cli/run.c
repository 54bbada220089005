/* chunkmeans run IN OUT: open IN, fit k colours on a sample, remap every chunk and write OUT
 * (and the label map, and the model). Wiring only: the work is in the library. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char run_help[] =
    "Usage: chunkmeans run IN.tif OUT.tif [options]\n"
    "\n"
    "Fits k colours on IN with k-means (mini-batch unless --algorithm says otherwise) and\n"
    "writes OUT: IN with every pixel replaced by its nearest colour. Alpha is kept as it is;\n"
    "pixels with alpha 0, nodata or non-finite samples take no part and are written\n"
    "unchanged. OUT is a tiled TIFF with IN's size, bands, sample type, photometric, extra\n"
    "samples and georeferencing; it appears only when complete.\n"
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
    "                          the chunk reads of the remap pass, as JSON\n"
    "      --seed N            random seed; the same seed gives the same output for any -j\n"
    "                          (default 0)\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, e.g. 512M, 2G\n"
    "                          (default 256M)\n"
    "      --algorithm A       minibatch: steps on a sample (default); lloyd: exact Lloyd\n"
    "                          iterations over every pixel, one pass over the image each;\n"
    "                          histogram: the same over the colour histogram (8-bit, up to 3\n"
    "                          colour bands); auto: histogram where it applies, else minibatch\n"
    "      --max-iter N        step limit (default 200; lloyd 30, histogram 300 iterations)\n"
    "      --tol X             stop when no centre moves more than X sample levels (for 10\n"
    "                          steps in a row with minibatch) (default 0.01)\n"
    "      --batch N           pixels per mini-batch step (default 8192)\n";
static const char run_help_outputs[] =
    "      --labels L.tif      also write the label map (uint8 when k <= 256, else uint16)\n"
    "      --model-out M.json  also write the fitted model as JSON\n"
    "      --nodata V          samples equal to V mark pixels outside the data: left out of\n"
    "                          the fit and written unchanged (default: IN's GDAL_NODATA)\n"
    "      --scale S           none, or standard: each band to mean 0 and deviation 1\n"
    "                          before the fit, for bands of different ranges (default none)\n"
    "      --format F          rgb: recoloured samples; palette: 8-bit colour-mapped output\n"
    "                          (k <= 256, 1 or 3 colour bands); default: palette for a\n"
    "                          palette input, else rgb\n"
    "      --compression C     none, lzw, deflate, zstd, jpeg or packbits (default: IN's,\n"
    "                          or deflate when IN's is lossy). jpeg is lossy: OUT then holds\n"
    "                          more than k colours\n"
    "      --bigtiff WHEN      auto, always or never (default auto: when OUT could pass 4 GiB)\n"
    "      --tile N            output tiles of N x N pixels, N a multiple of 16 from 16 to\n"
    "                          4096 (default 512); input tiles that do not divide N are kept\n"
    "                          as they are\n"
    "      --color-cache WHEN  auto, on or off: for 8-bit images of up to 3 colour bands, look\n"
    "                          colours up in a table of nearest centres (32 MiB for RGB,\n"
    "                          outside --memory); auto: on large images. Same output either way\n"
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
    "                          the sample; random: k of its colours drawn uniformly (with\n"
    "                          --seed; distinct ones where it has k); or FILE.json: the\n"
    "                          centres in it (a model, {\"colors\": [[r, g, b], ...]} or a\n"
    "                          list of rows, in sample units), whose number is k (a different\n"
    "                          -k is refused)\n"
    "      --dither D          none, or ordered: a position-based 8x8 dither between each\n"
    "                          pixel's two nearest colours; no seams, same for any -j or\n"
    "                          --tile (default none)\n";

static const struct option run_options[] = {
    {"clusters", required_argument, 0, 'k'},
    {"seed", required_argument, 0, CLI_OPT_SEED},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"max-iter", required_argument, 0, CLI_OPT_MAX_ITER},
    {"tol", required_argument, 0, CLI_OPT_TOL},
    {"batch", required_argument, 0, CLI_OPT_BATCH},
    {"labels", required_argument, 0, CLI_OPT_LABELS},
    {"model-out", required_argument, 0, CLI_OPT_MODEL_OUT},
    {"compression", required_argument, 0, CLI_OPT_COMPRESSION},
    {"bigtiff", required_argument, 0, CLI_OPT_BIGTIFF},
    {"tile", required_argument, 0, CLI_OPT_TILE},
    {"color-cache", required_argument, 0, CLI_OPT_CACHE},
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
    {"trace", required_argument, 0, CLI_OPT_TRACE},
    {"graph", required_argument, 0, CLI_OPT_GRAPH},
    {"summary", required_argument, 0, CLI_OPT_SUMMARY},
    {0, 0, 0, 0},
};

typedef struct run_opts {
    cli_opts_t o;
    const char *in, *out, *labels, *model_out;
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
        case 'h':
            fputs(run_help, stdout);
            fputs(run_help_options, stdout);
            fputs(run_help_outputs, stdout);
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
        cli_error("run needs IN.tif and OUT.tif (try 'chunkmeans run --help')");
        return CM_EXIT_USAGE;
    }
    o->in = argv[optind];
    o->out = argv[optind + 1];
    return 0;
}

/* The task graphs of a run, as one DOT digraph each, gathered in memory. */
typedef struct dot_out {
    FILE *f;
    char *text;
    size_t size;
} dot_out_t;

static void graph_to_dot(void *user, const char *stage, const cm_graph_t *g)
{
    dot_out_t *d = user;
    cm_ctx_t ignored;
    cm_ctx_init(&ignored);
    fprintf(d->f, "// stage %s\n", stage);
    cm_graph_write_dot(g, d->f, &ignored); /* a write error shows when the text is written */
}

/* Writes the trace as Chrome trace-event JSON, atomically. A failure goes into run_ctx when
 * that holds none yet, else it is printed at once. */
static int write_trace(const char *path, const cm_trace_t *trace, cm_ctx_t *run_ctx)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    int rc = cli_write_trace(path, trace, &ctx);
    if (rc < 0 && run_ctx->code == CM_OK)
        cm_fail(run_ctx, rc, "%s: %s", path, ctx.msg);
    else if (rc < 0)
        cli_error("%s: %s", path, ctx.msg);
    return rc;
}

/* The outputs of one k. */
typedef struct run_out {
    int k;
    char *out, *labels, *model_out; /* owned */
    cm_outputs_t w;
    cm_model_t *model;
    bool model_published, committed;
} run_out_t;

/* A source that counts its reads: the proof that the remap pass reads each chunk once. */
typedef struct counted {
    cm_source_t inner;
    int64_t reads; /* atomic */
} counted_t;

static int counted_read(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    counted_t *c = self;
    __atomic_fetch_add(&c->reads, 1, __ATOMIC_RELAXED);
    return c->inner.read(c->inner.self, worker, idx, buf, ctx);
}

static int counted_keep(void *self, cm_ctx_t *ctx)
{
    const counted_t *c = self;
    return c->inner.keep ? c->inner.keep(c->inner.self, ctx) : 0;
}

static void print_stages(const cm_image_info_t *in, const cm_trace_t *trace)
{
    cm_trace_stage_t stages[8];
    int n_stages = trace ? cm_trace_stages(trace, stages, 8) : 0;
    for (int i = 0; cli_verbosity >= 2 && i < n_stages && i < 8; i++) {
        bool chunks = strcmp(stages[i].stage, "fit") != 0;
        fprintf(stderr, "chunkmeans: stage %-6s %7.2f s  %6lld tasks in %d runs", stages[i].stage,
                stages[i].seconds, (long long)stages[i].tasks, stages[i].runs);
        if (chunks && !strcmp(stages[i].stage, "remap"))
            fprintf(stderr, "  %.1f MPix/s",
                    (double)in->width * (double)in->height / stages[i].seconds / 1e6);
        fprintf(stderr, "  peak %.1f MiB buffered\n", (double)stages[i].peak_bytes / (1 << 20));
    }
}

static void print_model(const run_out_t *r, const cm_image_info_t *in, const double t[3], bool many)
{
    const cm_model_t *m = r->model;
    int used = 0;
    for (int j = 0; j < m->k; j++) used += m->counts[j] > 0;
    if (cli_verbosity >= 2 && !many)
        fprintf(stderr,
                "chunkmeans: fit %.2f s (sample of %lld pixels, %d steps%s), "
                "remap %.2f s (%.1f MPix/s)\n",
                t[1] - t[0], (long long)m->sample_px, m->iterations,
                m->converged ? ", converged" : ", step limit", t[2] - t[1],
                (double)in->width * (double)in->height / (t[2] - t[1]) / 1e6);
    if (cli_verbosity >= 2) {
        if (many)
            fprintf(stderr, "chunkmeans: k=%d: sample of %lld pixels, %d steps%s\n", m->k,
                    (long long)m->sample_px, m->iterations,
                    m->converged ? ", converged" : ", step limit");
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
    if (cli_verbosity >= 1 && !many)
        fprintf(stderr,
                "chunkmeans: %s: %lldx%lld, k=%d (%d used), mean squared error %.2f, "
                "%.2f s\n",
                r->out, (long long)in->width, (long long)in->height, m->k, used,
                m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0, t[2] - t[0]);
    else if (cli_verbosity >= 1) /* one line per k: the inertias show the elbow */
        fprintf(stderr, "chunkmeans: %s: k=%d (%d used), inertia %.6g, mean squared error %.2f\n",
                r->out, m->k, used, m->inertia,
                m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0);
}

/* The summary of a run as JSON text (the caller frees it), or NULL when out of memory. */
static char *summary_json(const run_opts_t *o, const cm_image_info_t *in, const run_out_t *outs,
                          int n, int64_t chunks, int64_t chunks_read, int64_t fit_reads)
{
    json_t *root = json_object(), *runs = json_array();
    bool bad = !root || !runs;
    bad |= json_object_set_new(root, "input", json_string(o->in));
    bad |= json_object_set_new(root, "width", json_integer(in->width));
    bad |= json_object_set_new(root, "height", json_integer(in->height));
    bad |= json_object_set_new(root, "seed", json_integer((json_int_t)o->o.params.seed));
    bad |= json_object_set_new(root, "colorspace",
                               json_string(cm_colorspace_name(o->o.params.colorspace)));
    bad |= json_object_set_new(root, "chunks", json_integer(chunks));
    bad |= json_object_set_new(root, "chunks_read", json_integer(chunks_read));
    bad |= json_object_set_new(root, "fit_chunks_read", json_integer(fit_reads));
    for (int i = 0; !bad && i < n; i++) {
        const cm_model_t *m = outs[i].model;
        json_t *r = json_object(), *counts = json_array();
        bad |= !r || !counts;
        for (int j = 0; !bad && j < m->k; j++)
            bad |= json_array_append_new(counts, json_integer(m->counts[j]));
        bad |= json_object_set_new(r, "k", json_integer(m->k));
        bad |= json_object_set_new(r, "k_asked", json_integer(outs[i].k));
        bad |= json_object_set_new(r, "inertia", json_real(m->inertia));
        bad |= json_object_set_new(r, "pixels", json_integer(m->n_pixels));
        bad |= json_object_set_new(r, "mean_squared_error",
                                   json_real(m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0));
        bad |= json_object_set_new(r, "counts", counts);
        bad |= json_object_set_new(r, "output", json_string(outs[i].out));
        bad |= json_object_set_new(r, "labels",
                                   outs[i].labels ? json_string(outs[i].labels) : json_null());
        bad |= json_object_set_new(
            r, "model", outs[i].model_out ? json_string(outs[i].model_out) : json_null());
        bad |= json_object_set_new(r, "sample_px", json_integer(m->sample_px));
        bad |= json_object_set_new(r, "iterations", json_integer(m->iterations));
        bad |= json_array_append_new(runs, r);
    }
    bad |= json_object_set_new(root, "runs", runs);
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

/* Writes text atomically to path and frees it; CM_ENOMEM when text is NULL. */
static int publish(const char *path, char *text, cm_ctx_t *ctx)
{
    if (!text) return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    int rc = cm_file_write_atomic(path, text, strlen(text), ctx);
    free(text);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    run_opts_t o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? CM_EXIT_OK : rc;
    cm_params_t *params = &o.o.params;
    /* One output per k: OUT itself for one k, OUT.kN for each of a list. */
    int n = o.o.n_k > 1 ? o.o.n_k : 1;
    run_out_t *outs = calloc((size_t)n, sizeof(run_out_t));
    const char **paths = calloc(5 + 3 * (size_t)n, sizeof(char *));
    if (!outs || !paths) {
        free(outs);
        free(paths);
        cli_error("out of memory");
        return CM_EXIT_RUNTIME;
    }
    bool named = true;
    for (int i = 0; i < n; i++) {
        run_out_t *r = &outs[i];
        r->k = n > 1 ? o.o.ks[i] : params->k;
        if (n > 1) {
            r->out = cli_path_with_k(o.out, r->k);
            r->labels = cli_path_with_k(o.labels, r->k);
            r->model_out = cli_path_with_k(o.model_out, r->k);
        } else {
            r->out = strdup(o.out);
            r->labels = o.labels ? strdup(o.labels) : NULL;
            r->model_out = o.model_out ? strdup(o.model_out) : NULL;
        }
        named &= r->out && (!o.labels || r->labels) && (!o.model_out || r->model_out);
        paths[5 + 3 * i] = r->out;
        paths[6 + 3 * i] = r->labels;
        paths[7 + 3 * i] = r->model_out;
    }
    paths[0] = o.in;
    paths[1] = o.trace_path;
    paths[2] = o.graph_path;
    paths[3] = o.summary_path;
    paths[4] = NULL;

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    dot_out_t graph_out = {0};
    cm_model_t **models = calloc((size_t)n, sizeof(cm_model_t *));
    cm_sink_t *sinks = calloc((size_t)n, sizeof(cm_sink_t));
    int *ks = calloc((size_t)n, sizeof(int));
    bool summary_published = false;
    const char *failed = o.in; /* the file a bad input is about */
    double t[3] = {cli_now()};
    if (!named || !models || !sinks || !ks) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory");
        goto done;
    }
    if (!cli_paths_distinct(paths, 5 + 3 * n)) {
        rc = CM_EUSAGE; /* the message is printed */
        goto done;
    }
    cli_catch_signals();
    params->cancel = &cli_signal;

    rc = cm_image_open(o.in, params->n_threads, &img, &ctx);
    if (rc == 0) cm_image_set_cancel(img, &cli_signal);
    if (rc == 0) rc = cm_image_set_chunk_side(img, o.o.tile, &ctx);
    if (rc < 0) goto done;
    const cm_image_info_t *in = cm_image_info(img);
    rc = cli_check_colorspace(in, o.in, params->colorspace, &ctx);
    if (rc == 0) {
        failed = o.o.init_path;
        rc = cli_opts_load_init(&o.o, cm_grid_features(&in->grid), &ctx);
        outs[0].k = n > 1 ? outs[0].k : params->k;
    }
    if (rc < 0) goto done;
    failed = o.in;
    char *out_dir = cli_dir_of(o.out);
    snprintf(cli_scratch_dir, sizeof cli_scratch_dir, "%s", out_dir ? out_dir : ".");
    free(out_dir);
    counted_t counted = {.inner = cli_source(img, &o.o)};
    cm_source_t src = counted.inner;
    src.read = counted_read;
    src.keep = counted.inner.keep ? counted_keep : NULL;
    src.self = &counted;
    cli_progress_t prog;
    cli_progress_init(&prog, o.o.progress,
                      (double)in->width * (double)in->height / (double)cm_grid_count(&in->grid));
    params->progress = cli_progress_update;
    params->progress_user = &prog;

    /* k above the pixel count: as many centres as pixels (k-means cannot use more). Pixels
     * that take no part can lower the count further; the fit tells, and k is lowered again
     * after it. */
    int64_t n_px = in->width * in->height; /* fits: the grid checked it */
    if (params->init_centres && params->k > n_px) {
        rc = cm_fail(&ctx, CM_EUSAGE, "%s: its %d centres are more than the %lld pixels of %s",
                     o.o.init_path, params->k, (long long)n_px, o.in);
        goto done;
    }
    bool labels = false;
    cm_options_t file_opts = cli_file_options(&o.o);
    for (int i = 0; i < n && rc == 0; i++) {
        run_out_t *r = &outs[i];
        if (r->k > n_px) {
            cli_warn("%s: -k %d is more than its %lld pixels; using k=%lld", o.in, r->k,
                     (long long)n_px, (long long)n_px);
            r->k = (int)n_px;
        }
        ks[i] = r->k;
        rc = cm_outputs_plan(&r->w, &file_opts, img, &src, r->k, r->out, r->labels, &ctx);
        labels |= r->labels || r->w.palette;
    }
    if (rc < 0) goto done;

    /* Everything that can be checked before the fit is: the budget, and the outputs'
     * directories (the image writers open their temporary files now). */
    if (o.trace_path || cli_verbosity >= 2) params->trace = cm_trace_create();
    if (o.graph_path) {
        graph_out.f = open_memstream(&graph_out.text, &graph_out.size);
        params->graph_fn = graph_to_dot;
        params->graph_user = &graph_out;
    }
    if ((o.trace_path || cli_verbosity >= 2) && !params->trace) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory for the trace");
        goto done;
    }
    if (o.graph_path && !graph_out.f) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory for the graph");
        goto done;
    }
    /* The remap pass holds a chunk of every k at once. */
    rc = cm_budget_check_ks(&src, params, ks, n, labels, &ctx);
    for (int i = 0; i <= n && rc == 0; i++) {
        const char *path = i < n ? outs[i].model_out : o.summary_path;
        rc = cli_check_not_dir(path, &ctx);
        if (rc == 0 && path && !cli_dir_writable(path))
            rc = cm_fail(&ctx, CM_EIO, "%s: cannot write there: %s", path, strerror(errno));
    }
    for (int i = 0; i < n && rc == 0; i++) rc = cm_outputs_open(&outs[i].w, &ctx);
    if (rc < 0) goto done;

    if (in->streamed) { /* strips too large for chunks: one pass into a spill store */
        if (cli_verbosity >= 2)
            fprintf(stderr, "chunkmeans: %s: streaming its strips into a spill store\n", o.in);
        rc = cm_image_prepare(img, cli_scratch_dir, &ctx);
        if (rc < 0) goto done;
    }
    /* Every k is fitted on one sample, read once: the sample depends on the seed, never on k,
     * so each fit is the one a run with that k alone makes. One k takes its own sample in
     * cm_fit, which frees it before an exact pass over the image. */
    cm_sample_t *sample = NULL;
    if (n > 1) rc = cm_sample_take(&src, 1, params, &sample, &ctx);
    for (int i = 0; i < n && rc == 0; i++) {
        run_out_t *r = &outs[i];
        cm_params_t p = *params;
        p.k = r->k;
        rc = cli_fit(&src, 1, sample, &p, o.in, &r->model, &ctx);
        if (rc == 0 && p.k != r->k) rc = cm_outputs_set_k(&r->w, &src, p.k, &ctx);
        models[i] = r->model;
    }
    cm_sample_free(sample); /* before the remap pass needs its buffers */
    if (rc < 0) goto done;
    t[1] = cli_now();
    int64_t fit_reads = __atomic_exchange_n(&counted.reads, 0, __ATOMIC_RELAXED);

    for (int i = 0; i < n && rc == 0; i++)
        rc = cm_outputs_sink(&outs[i].w, models[i], &sinks[i], &ctx);
    if (rc == 0) rc = cm_remap_many(&src, models, n, params, sinks, &ctx);
    cli_progress_end(&prog);
    /* A signal that came after the last task still stops the run: nothing appears. */
    if (rc == 0 && cli_signal) rc = cm_fail(&ctx, CM_ECANCELED, "interrupted");
    if (rc < 0) goto done;
    int64_t n_chunks = cm_grid_count(&in->grid),
            chunks_read = __atomic_load_n(&counted.reads, __ATOMIC_RELAXED);
    /* The small files first: an image output is never left without the model or summary it
     * promises. A later commit can still fail (a file-size limit reached by the image's
     * directory, say): the outputs committed before it are then removed, so that a failed run
     * leaves none. */
    for (int i = 0; i < n && rc == 0; i++) {
        run_out_t *r = &outs[i];
        if (!r->model_out) continue;
        rc = publish(r->model_out,
                     cm_model_to_json(r->model, in->bands, in->alpha_band, in->sample_type), &ctx);
        r->model_published = rc == 0;
    }
    if (rc == 0 && o.summary_path) {
        rc = publish(o.summary_path,
                     summary_json(&o, in, outs, n, n_chunks, chunks_read, fit_reads), &ctx);
        summary_published = rc == 0;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        rc = cm_outputs_commit(&outs[i].w, &ctx);
        outs[i].committed = rc == 0;
    }
    if (rc < 0) goto done;
    t[2] = cli_now();
    print_stages(in, params->trace);
    for (int i = 0; i < n; i++) print_model(&outs[i], in, t, n > 1);
    if (cli_verbosity >= 2)
        fprintf(stderr,
                "chunkmeans: remap pass: %lld chunk reads for %lld chunks and %d output%s; the "
                "fit%s read %lld\n",
                (long long)chunks_read, (long long)n_chunks, n, n == 1 ? "" : "s",
                n == 1 ? "" : "s", (long long)fit_reads);
    if (cli_verbosity >= 1 && n > 1)
        fprintf(stderr, "chunkmeans: %lldx%lld, %d values of k in one pass over %s, %.2f s\n",
                (long long)in->width, (long long)in->height, n, o.in, t[2] - t[0]);
done:
    if (rc < 0 && params->progress) cli_progress_end(params->progress_user);
    for (int i = 0; rc < 0 && i < n; i++) {
        if (outs[i].model_published) unlink(outs[i].model_out);
        if (outs[i].committed) {
            unlink(outs[i].out);
            if (outs[i].labels) unlink(outs[i].labels);
        }
    }
    if (rc < 0 && summary_published) unlink(o.summary_path);
    /* The trace and the graph are written whether the run worked or not: that is when they
     * help most. Their own failure is reported, and fails the run only if it had not. */
    if (o.trace_path && params->trace) {
        int trc = write_trace(o.trace_path, params->trace, &ctx);
        if (rc == 0) rc = trc;
    }
    if (o.graph_path && graph_out.f) {
        fclose(graph_out.f);
        int grc = cm_file_write_atomic(o.graph_path, graph_out.text, graph_out.size, &ctx);
        if (rc == 0) rc = grc;
        free(graph_out.text);
    }
    cm_trace_free(params->trace);
    for (int i = 0; i < n; i++) {
        cm_outputs_abort(&outs[i].w);
        cm_model_free(outs[i].model);
        free(outs[i].out);
        free(outs[i].labels);
        free(outs[i].model_out);
    }
    free(outs);
    free(paths);
    free(models);
    free(sinks);
    free(ks);
    cm_image_close(img);
    cli_opts_free(&o.o);
    if (rc == CM_EUSAGE && !ctx.msg[0]) return CM_EXIT_USAGE; /* the message is printed */
    return rc < 0 ? cli_fail(&ctx, rc, failed) : CM_EXIT_OK;
}
