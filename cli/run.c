/* chunkmeans run IN OUT: open IN, fit k colours on a sample, remap every chunk and write OUT
 * (and the label map, and the model). Wiring only: the work is in the library. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cm_io.h"

static const char run_help[] =
    "Usage: chunkmeans run IN.tif OUT.tif [options]\n"
    "\n"
    "Fits k colours on IN with k-means (mini-batch unless --algorithm says otherwise) and\n"
    "writes OUT: IN with every pixel replaced by its nearest colour. Alpha is kept as it is;\n"
    "pixels with alpha 0, nodata or non-finite samples take no part and are written\n"
    "unchanged. OUT is a tiled TIFF with IN's size, bands, sample type, photometric, extra\n"
    "samples and georeferencing; it appears only when complete.\n"
    "\n"
    "Options:\n"
    "  -k, --clusters N        number of colours, 1 to 65535 (default 8); lowered, with a\n"
    "                          warning, to the number of pixels that take part when fewer\n"
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
    "      --batch N           pixels per mini-batch step (default 8192)\n"
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
    "\n"
    "Accepted with their default value only, for now: --colorspace rgb, --dither none,\n"
    "--init kmeans++.\n";

enum {
    OPT_SEED = 256,
    OPT_MEMORY,
    OPT_MAX_ITER,
    OPT_TOL,
    OPT_BATCH,
    OPT_LABELS,
    OPT_MODEL_OUT,
    OPT_COMPRESSION,
    OPT_BIGTIFF,
    OPT_PROGRESS,
    OPT_FORMAT,
    OPT_ALGORITHM,
    OPT_COLORSPACE,
    OPT_SCALE,
    OPT_DITHER,
    OPT_INIT,
    OPT_NODATA,
    OPT_TRACE,
    OPT_GRAPH,
    OPT_TILE,
    OPT_CACHE,
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
    {"color-cache", required_argument, 0, OPT_CACHE},
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
    const char *format; /* rgb, palette, or auto: palette for palette input */
    const char *trace_path, *graph_path;
    bool has_nodata;
    double nodata;
} run_opts_t;

/* Options from CLI.md whose other values later versions will bring. */
static bool only_default(const char *opt, const char *value, const char *dflt)
{
    if (!strcmp(value, dflt)) return true;
    cli_error("%s %s is not implemented yet (only %s)", opt, value, dflt);
    return false;
}

static bool one_of(const char *opt, const char *value, const char *a, const char *b, const char *c)
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
    o->format = "auto";
    long long v = 0;
    double x = 0;
    bool max_iter_given = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:j:qvh", run_options, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'k':
            if (strchr(optarg, ',')) {
                cli_error("-k: lists of k are not implemented yet; give one number");
                return CM_EXIT_USAGE;
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
            max_iter_given = true;
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
                          "not '%s'",
                          optarg);
                ok = false;
            }
            break;
        case OPT_BIGTIFF:
            o->bigtiff = optarg;
            ok = one_of("--bigtiff", optarg, "auto", "always", "never");
            break;
        case OPT_TILE:
            ok = cli_parse_int("--tile", optarg, 16, 4096, &v);
            if (ok && v % 16) {
                cli_error("--tile: %lld is not a multiple of 16", v);
                ok = false;
            }
            o->tile = v;
            break;
        case OPT_CACHE:
            ok = one_of("--color-cache", optarg, "auto", "on", "off");
            o->params.color_cache = !strcmp(optarg, "on") ? 1 : !strcmp(optarg, "off") ? 0 : -1;
            break;
        case OPT_PROGRESS:
            o->progress = optarg;
            ok = one_of("--progress", optarg, "auto", "always", "never");
            break;
        case 'q': cli_verbosity = 0; break;
        case 'v': cli_verbosity = 2; break;
        case 'h': fputs(run_help, stdout); return -1;
        case OPT_FORMAT:
            o->format = optarg;
            ok = one_of("--format", optarg, "rgb", "palette", "auto");
            break;
        case OPT_SCALE:
            ok = one_of("--scale", optarg, "none", "standard", "none");
            o->params.scale = !strcmp(optarg, "standard") ? CM_SCALE_STANDARD : CM_SCALE_NONE;
            break;
        case OPT_NODATA: {
            char *end;
            o->nodata = strtod(optarg, &end); /* nan and inf too, as GDAL writes them */
            o->has_nodata = ok = end != optarg && !*end;
            if (!ok) cli_error("--nodata: expected a number (or nan), not '%s'", optarg);
            break;
        }
        case OPT_ALGORITHM:
            ok = !strcmp(optarg, "auto") ||
                 one_of("--algorithm", optarg, "minibatch", "lloyd", "histogram");
            o->params.algorithm = !strcmp(optarg, "lloyd")       ? CM_ALG_LLOYD
                                  : !strcmp(optarg, "histogram") ? CM_ALG_HISTOGRAM
                                  : !strcmp(optarg, "auto")      ? CM_ALG_AUTO
                                                                 : CM_ALG_MINIBATCH;
            break;
        case OPT_COLORSPACE: ok = only_default("--colorspace", optarg, "rgb"); break;
        case OPT_DITHER: ok = only_default("--dither", optarg, "none"); break;
        case OPT_INIT: ok = only_default("--init", optarg, "kmeans++"); break;
        case OPT_TRACE: o->trace_path = optarg; break;
        case OPT_GRAPH: o->graph_path = optarg; break;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans run --help'.\n", stderr);
            return CM_EXIT_USAGE;
        }
        if (!ok) return CM_EXIT_USAGE;
    }
    if (!max_iter_given && o->params.algorithm == CM_ALG_LLOYD) o->params.max_iter = 30;
    if (!max_iter_given && o->params.algorithm == CM_ALG_HISTOGRAM) o->params.max_iter = 300;
    if (argc - optind != 2) {
        cli_error("run needs IN.tif and OUT.tif (try 'chunkmeans run --help')");
        return CM_EXIT_USAGE;
    }
    o->in = argv[optind];
    o->out = argv[optind + 1];
    if (o->params.n_threads <= 0) o->params.n_threads = cm_default_threads();
    return 0;
}

/* The directory of path ("." when it has none); the caller frees it. */
static char *dir_of(const char *path)
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

/* Whether a file could be created next to path (its directory exists and is writable). */
static bool dir_writable(const char *path)
{
    char *dir = dir_of(path);
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

/* The absolute name of path, whether or not it exists yet: its directory resolved, then its
 * last component. NULL when the directory cannot be resolved. The caller frees it. */
static char *canonical(const char *path)
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

/* Refuses an output that is the input or another output, by name or through links. */
static bool outputs_distinct(const run_opts_t *o)
{
    const char *paths[6] = {o->in, o->out, o->labels, o->model_out, o->trace_path, o->graph_path};
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++) {
            if (!paths[i] || !paths[j]) continue;
            char *ci = canonical(paths[i]), *cj = canonical(paths[j]);
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

typedef struct sink_state {
    const cm_grid_t *grid;
    cm_writer_t *out, *labels;
    bool out_is_labels; /* a palette output: its pixels are the labels */
} sink_state_t;

/* Compressed tiles of one chunk, for the image and the label map. */
typedef struct encoded_pair {
    cm_encoded_t *out, *labels;
} encoded_pair_t;

static int sink_encode(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void **encoded, cm_ctx_t *ctx)
{
    const sink_state_t *s = self;
    int64_t x, y, w, h;
    cm_grid_rect(s->grid, idx, &x, &y, &w, &h);
    encoded_pair_t *e = calloc(1, sizeof(encoded_pair_t));
    CM_FAIL_IF(ctx, !e, CM_ENOMEM, "out of memory encoding chunk %lld", (long long)idx);
    *encoded = e;
    CM_TRY(cm_writer_encode(s->out, x, y, w, h, s->out_is_labels ? labels : pixels, &e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_encode(s->labels, x, y, w, h, labels, &e->labels, ctx));
    return 0;
}

static int sink_put(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                    void *encoded, cm_ctx_t *ctx)
{
    const sink_state_t *s = self;
    const encoded_pair_t *e = encoded;
    CM_TRY(cm_writer_put_encoded(s->out, e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_put_encoded(s->labels, e->labels, ctx));
    return 0;
}

static void sink_discard(void *self, void *encoded)
{
    encoded_pair_t *e = encoded;
    cm_encoded_free(e->out);
    cm_encoded_free(e->labels);
    free(e);
}

/* Where scratch files go: next to OUT, on the disk the user chose for big files. */
static char scratch_dir[4096];

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
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int rc = f ? cm_trace_write_json(trace, f, &ctx) : cm_fail(&ctx, CM_ENOMEM, "out of memory");
    if (f && fclose(f) != 0 && rc == 0) rc = cm_fail(&ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) rc = cm_file_write_atomic(path, text, size, &ctx);
    free(text);
    if (rc < 0 && run_ctx->code == CM_OK)
        cm_fail(run_ctx, rc, "%s: %s", path, ctx.msg);
    else if (rc < 0)
        cli_error("%s: %s", path, ctx.msg);
    return rc;
}

/* The colour map of a palette output: the centres rounded to the sample type, as 16-bit TIFF
 * colours (grey centres on all three channels); unused entries stay black. */
static void palette_colours(const cm_model_t *m, cm_stype_t t, uint16_t *cmap)
{
    double top = t == CM_U8 ? 255 : 65535, unit = t == CM_U8 ? 257 : 1;
    for (int j = 0; j < m->k; j++)
        for (int c = 0; c < 3; c++) {
            double v = nearbyint(m->centroids[(size_t)j * m->d + (m->d == 3 ? c : 0)]);
            cmap[256 * c + j] = (uint16_t)((v < 0 ? 0 : v > top ? top : v) * unit);
        }
}

static int keep_chunks(void *self, cm_ctx_t *ctx)
{
    return cm_image_keep_chunks(self, scratch_dir, ctx);
}

static void print_summary(const run_opts_t *o, const cm_image_info_t *in, const cm_model_t *m,
                          const double t[3], const cm_trace_t *trace)
{
    int used = 0;
    for (int j = 0; j < m->k; j++) used += m->counts[j] > 0;
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
    if (cli_verbosity >= 2) {
        fprintf(stderr,
                "chunkmeans: fit %.2f s (sample of %lld pixels, %d steps%s), "
                "remap %.2f s (%.1f MPix/s)\n",
                t[1] - t[0], (long long)m->sample_px, m->iterations,
                m->converged ? ", converged" : ", step limit", t[2] - t[1],
                (double)in->width * (double)in->height / (t[2] - t[1]) / 1e6);
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
        fprintf(stderr,
                "chunkmeans: %s: %lldx%lld, k=%d (%d used), mean squared error %.2f, "
                "%.2f s\n",
                o->out, (long long)in->width, (long long)in->height, m->k, used,
                m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0, t[2] - t[0]);
}

/* A sink that writes nothing: a remap pass that only counts the pixels that take part. */
static int put_nothing(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void *encoded, cm_ctx_t *ctx)
{
    return 0;
}

/* The pixels of src that take part in the fit (not alpha 0, nodata or non-finite), counted
 * exactly by a remap pass with the model (whose counts it overwrites). */
static int count_valid(const cm_source_t *src, cm_model_t *model, const cm_params_t *params,
                       int64_t *n_valid, cm_ctx_t *ctx)
{
    cm_params_t p = *params;
    p.progress = NULL; /* a pass the user did not ask for: the bar would go back to 0 */
    cm_sink_t none = {.put = put_nothing};
    CM_TRY(cm_remap(src, model, &p, &none, ctx));
    *n_valid = model->n_pixels;
    return 0;
}

/* Refuses an output path that names a directory: the rename at the very end would fail. */
static int check_not_dir(const char *path, cm_ctx_t *ctx)
{
    struct stat st;
    CM_FAIL_IF(ctx, path && stat(path, &st) == 0 && S_ISDIR(st.st_mode), CM_EIO,
               "%s: is a directory", path);
    return 0;
}

int cmd_run(int argc, char **argv)
{
    run_opts_t o = {0};
    int rc = parse(argc, argv, &o);
    if (rc) return rc < 0 ? CM_EXIT_OK : rc;
    if (!outputs_distinct(&o)) return CM_EXIT_USAGE;

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    cm_model_t *model = NULL;
    dot_out_t graph_out = {0};
    sink_state_t ss = {0};
    char *json = NULL;
    const char *published[2]; /* outputs renamed into place so far */
    int n_published = 0;
    double t[3] = {cli_now()};
    cli_catch_signals();
    o.params.cancel = &cli_signal;

    rc = cm_image_open(o.in, o.params.n_threads, &img, &ctx);
    if (rc == 0) cm_image_set_cancel(img, &cli_signal);
    if (rc == 0) rc = cm_image_set_chunk_side(img, o.tile, &ctx);
    if (rc < 0) goto done;
    const cm_image_info_t *in = cm_image_info(img);
    char *out_dir = dir_of(o.out);
    snprintf(scratch_dir, sizeof scratch_dir, "%s", out_dir ? out_dir : ".");
    free(out_dir);
    cm_source_t src = {.grid = in->grid,
                       .read = cli_read_chunk,
                       .keep = keep_chunks,
                       .self = img,
                       .has_nodata = o.has_nodata || in->has_nodata,
                       .nodata = o.has_nodata ? o.nodata : in->nodata};
    cli_progress_t prog;
    cli_progress_init(&prog, o.progress,
                      (double)in->width * (double)in->height / (double)cm_grid_count(&in->grid));
    o.params.progress = cli_progress_update;
    o.params.progress_user = &prog;

    /* k above the pixel count: as many centres as pixels (k-means cannot use more). Pixels
     * that take no part can lower the count further; the fit tells, and k is lowered again
     * after it. */
    int64_t n_px = in->width * in->height; /* fits: the grid checked it */
    if (o.params.k > n_px) {
        cli_warn("%s: -k %d is more than its %lld pixels; using k=%lld", o.in, o.params.k,
                 (long long)n_px, (long long)n_px);
        o.params.k = (int)n_px;
    }

    /* IN's compression, unless it is lossy (the output would hold more than k colours) or
     * one this build cannot write: then deflate. */
    int compression = o.compression >= 0 ? o.compression : in->compression;
    if (o.compression < 0 && (cm_compression_lossy(compression) ||
                              !strcmp(cm_compression_name(compression), "unknown"))) {
        if (!cm_compression_lossy(compression))
            cli_warn("%s: its compression cannot be written; using deflate", o.in);
        cm_compression_parse("deflate", &compression);
    }
    bool palette = !strcmp(o.format, "palette") || (!strcmp(o.format, "auto") && in->palette);
    if (cm_compression_lossy(compression) && !palette)
        cli_warn("%s: %s is lossy: the output will hold more than %d colours (use --compression "
                 "deflate for exact colours)",
                 o.out, cm_compression_name(compression), o.params.k);
    int label_bits, d = cm_grid_features(&in->grid);
    uint32_t masked;
    bool maskable = cm_labels_plan(&src, o.params.k, &label_bits, &masked);
    if (palette &&
        (label_bits != 8 || (d != 1 && d != 3) || in->stype == CM_I16 || in->stype == CM_F32)) {
        rc = cm_fail(&ctx, CM_EUSAGE,
                     "%s: --format palette needs 8- or 16-bit unsigned grey or "
                     "RGB input and k <= %d",
                     o.out, masked == 255 ? 255 : 256);
        goto done;
    }

    cm_writer_spec_t spec, lspec;
    cm_writer_spec_like(in, compression, &spec);
    spec.tags_from = img;
    spec.set_nodata = o.has_nodata;
    spec.nodata = o.nodata;
    cm_writer_spec_labels(&spec, label_bits, masked, &lspec);
    lspec.set_nodata = maskable; /* else every value is a cluster's */
    bool always = !strcmp(o.bigtiff, "always"), never = !strcmp(o.bigtiff, "never");
    if (never && cm_writer_needs_bigtiff(&spec)) {
        rc = cm_fail(&ctx, CM_EUSAGE,
                     "%s: the output could pass 4 GiB: --bigtiff never cannot "
                     "hold it",
                     o.out);
        goto done;
    }
    spec.bigtiff = always || (!never && cm_writer_needs_bigtiff(&spec));
    lspec.bigtiff = always || (!never && cm_writer_needs_bigtiff(&lspec));

    /* Everything that can be checked before the fit is: the budget, and the outputs'
     * directories (the image writers open their temporary files now). */
    if (o.trace_path || cli_verbosity >= 2) o.params.trace = cm_trace_create();
    if (o.graph_path) {
        graph_out.f = open_memstream(&graph_out.text, &graph_out.size);
        o.params.graph_fn = graph_to_dot;
        o.params.graph_user = &graph_out;
    }
    if ((o.trace_path || cli_verbosity >= 2) && !o.params.trace) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory for the trace");
        goto done;
    }
    if (o.graph_path && !graph_out.f) {
        rc = cm_fail(&ctx, CM_ENOMEM, "out of memory for the graph");
        goto done;
    }
    rc = cm_budget_check(&src, &o.params, o.labels || palette, &ctx);
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = check_not_dir(i == 0 ? o.out : i == 1 ? o.labels : o.model_out, &ctx);
    if (rc == 0 && o.model_out && !dir_writable(o.model_out))
        rc = cm_fail(&ctx, CM_EIO, "%s: cannot write there: %s", o.model_out, strerror(errno));
    if (rc == 0 && !palette) rc = cm_writer_open(o.out, &spec, &ss.out, &ctx);
    if (rc == 0 && o.labels) rc = cm_writer_open(o.labels, &lspec, &ss.labels, &ctx);
    if (rc < 0) goto done;

    if (in->streamed) { /* strips too large for chunks: one pass into a spill store */
        if (cli_verbosity >= 2)
            fprintf(stderr, "chunkmeans: %s: streaming its strips into a spill store\n", o.in);
        rc = cm_image_prepare(img, scratch_dir, &ctx);
        if (rc < 0) goto done;
    }
    rc = cm_fit(&src, &o.params, &model, &ctx);
    if (rc < 0) goto done;
    if (model->sample_px < o.params.k) {
        /* Fewer pixels in the sample than centres: maybe fewer in the image too. Count them,
         * and when they are fewer than k, fit again with k lowered to their number, so that
         * the model, the label map and its sample type agree on k. */
        int64_t n_valid = 0;
        rc = count_valid(&src, model, &o.params, &n_valid, &ctx);
        if (rc < 0) goto done;
        if (n_valid < o.params.k) {
            cli_warn("%s: -k %d is more than its %lld pixels that take part; using k=%lld", o.in,
                     o.params.k, (long long)n_valid, (long long)n_valid);
            o.params.k = (int)n_valid;
            cm_model_free(model);
            model = NULL;
            rc = cm_fit(&src, &o.params, &model, &ctx);
            if (rc < 0) goto done;
            int bits;
            maskable = cm_labels_plan(&src, o.params.k, &bits, &masked);
            if (ss.labels && bits != label_bits) { /* uint16 labels become uint8 */
                cm_writer_abort(ss.labels);
                ss.labels = NULL;
                cm_writer_spec_labels(&spec, bits, masked, &lspec);
                lspec.set_nodata = maskable;
                lspec.bigtiff = always || (!never && cm_writer_needs_bigtiff(&lspec));
                rc = cm_writer_open(o.labels, &lspec, &ss.labels, &ctx);
                if (rc < 0) goto done;
            }
            label_bits = bits;
        }
    }
    t[1] = cli_now();

    if (palette) { /* the colour map holds the centres; the image holds their labels */
        cm_writer_spec_t pspec;
        uint16_t cmap[3 * 256] = {0};
        palette_colours(model, in->stype, cmap);
        cm_writer_spec_palette(&spec, cmap, maskable ? masked : 256, &pspec);
        pspec.bigtiff = lspec.bigtiff;
        rc = cm_writer_open(o.out, &pspec, &ss.out, &ctx);
        ss.out_is_labels = true;
        if (rc < 0) goto done;
    }
    ss.grid = &in->grid;
    cm_sink_t sink = {.encode = sink_encode,
                      .put = sink_put,
                      .discard = sink_discard,
                      .self = &ss,
                      .want_labels = o.labels || palette};
    rc = cm_remap(&src, model, &o.params, &sink, &ctx);
    cli_progress_end(&prog);
    /* A signal that came after the last task still stops the run: nothing appears. */
    if (rc == 0 && cli_signal) rc = cm_fail(&ctx, CM_ECANCELED, "interrupted");
    if (rc < 0) goto done;
    /* The small model first: an image output is never left without the model it promises.
     * A later commit can still fail (a file-size limit reached by the image's directory, say):
     * the outputs committed before it are then removed, so that a failed run leaves none. */
    if (o.model_out) {
        json = cm_model_to_json(model, in->bands, in->alpha_band, in->sample_type);
        rc = json ? cm_file_write_atomic(o.model_out, json, strlen(json), &ctx)
                  : cm_fail(&ctx, CM_ENOMEM, "%s: out of memory", o.model_out);
        if (rc < 0) goto done;
        published[n_published++] = o.model_out;
    }
    if (ss.labels) {
        rc = cm_writer_commit(ss.labels, &ctx);
        ss.labels = NULL;
        if (rc < 0) goto done;
        published[n_published++] = o.labels;
    }
    rc = cm_writer_commit(ss.out, &ctx);
    ss.out = NULL;
    if (rc < 0) goto done;
    t[2] = cli_now();
    print_summary(&o, in, model, t, o.params.trace);
done:
    if (rc < 0 && o.params.progress) cli_progress_end(o.params.progress_user);
    for (int i = 0; rc < 0 && i < n_published; i++) unlink(published[i]);
    /* The trace and the graph are written whether the run worked or not: that is when they
     * help most. Their own failure is reported, and fails the run only if it had not. */
    if (o.trace_path && o.params.trace) {
        int trc = write_trace(o.trace_path, o.params.trace, &ctx);
        if (rc == 0) rc = trc;
    }
    if (o.graph_path && graph_out.f) {
        fclose(graph_out.f);
        int grc = cm_file_write_atomic(o.graph_path, graph_out.text, graph_out.size, &ctx);
        if (rc == 0) rc = grc;
        free(graph_out.text);
    }
    cm_trace_free(o.params.trace);
    cm_writer_abort(ss.labels);
    cm_writer_abort(ss.out);
    free(json);
    cm_model_free(model);
    cm_image_close(img);
    return rc < 0 ? cli_fail(&ctx, rc, o.in) : CM_EXIT_OK;
}
