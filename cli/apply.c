/* chunkmeans apply MODEL.json IN... (OUT | --out-dir DIR): remaps inputs with a fitted model.
 * Every input is a sub-graph of one remap pass (cm_remap_batch), so that inputs overlap within
 * the threads and the memory budget; a file that fails is reported and the others go on. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char apply_help[] =
    "Usage: chunkmeans apply MODEL.json IN.tif OUT.tif [--labels L.tif] [options]\n"
    "       chunkmeans apply MODEL.json IN.tif ... --out-dir DIR [--labels-dir LDIR] [options]\n"
    "\n"
    "Writes each input with every pixel replaced by its nearest colour of the model (written\n"
    "by 'chunkmeans fit' or 'run --model-out'), as run does: the same pixels as the run that\n"
    "fitted the model, with the same --nodata, --format and --compression. Alpha, nodata and\n"
    "non-finite pixels are written unchanged. The model must have been fitted on images of\n"
    "the same bands, alpha and sample type (else exit 3, naming the file).\n"
    "\n"
    "An output that exists already is complete (outputs appear only when complete) and is\n"
    "skipped, with its label map, unless --overwrite: a batch that stopped can be run again\n"
    "and does only what is left. All inputs are remapped in one task graph, each input a\n"
    "sub-graph (open, a task per chunk, writes in order, close) that overlaps the others\n"
    "within -j and --memory; at most -j + 1 inputs are open at once. An input that fails (a\n"
    "bad file, or chunks that alone need more than --memory) is reported and the others go\n"
    "on; the end lists every failure, one line each.\n"
    "\n"
    "Options:\n"
    "      --out-dir DIR       write each IN as DIR/<IN's file name> (made if missing)\n"
    "      --labels L.tif      also write the label map (one input)\n"
    "      --labels-dir LDIR   also write each label map as LDIR/<IN's file name>\n"
    "      --overwrite         write outputs that exist already\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, of all inputs together\n"
    "                          (default 256M)\n"
    "      --nodata V          samples equal to V mark pixels outside the data (default: each\n"
    "                          input's GDAL_NODATA)\n"
    "      --format F          rgb or palette, as for run (default: palette for a palette\n"
    "                          input, else rgb)\n"
    "      --compression C     none, lzw, deflate, zstd, jpeg or packbits (default: each\n"
    "                          input's, or deflate when it is lossy)\n"
    "      --bigtiff WHEN      auto, always or never (default auto)\n"
    "      --tile N            output tiles of N x N pixels, as for run (default 512)\n"
    "      --color-cache WHEN  auto, on or off, as for run\n"
    "      --dither D          none or ordered, as for run: the same pixels as run with it\n"
    "      --colorspace CS     the model's colour space is used; a different one is refused\n"
    "      --progress WHEN     auto, always or never: progress bar on stderr (chunks of all\n"
    "                          inputs)\n"
    "      --trace FILE.json   write every task's start, end, thread, kind and bytes in the\n"
    "                          Chrome trace-event format (Perfetto, chrome://tracing)\n"
    "  -q, --quiet             errors only\n"
    "  -v, --verbose           a line for every file written or skipped\n"
    "  -h, --help              this text\n"
    "\n"
    "Exit codes: 0 every input written or skipped; 1 some input failed (several inputs: each\n"
    "named in the summary, the others written) or a runtime failure; 2 usage error; 3 a bad\n"
    "model, or (one input) a bad input or one the model does not fit.\n";

static const struct option apply_options[] = {
    {"out-dir", required_argument, 0, CLI_OPT_OUT_DIR},
    {"labels", required_argument, 0, CLI_OPT_LABELS},
    {"labels-dir", required_argument, 0, CLI_OPT_LABELS_DIR},
    {"overwrite", no_argument, 0, CLI_OPT_OVERWRITE},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"nodata", required_argument, 0, CLI_OPT_NODATA},
    {"format", required_argument, 0, CLI_OPT_FORMAT},
    {"compression", required_argument, 0, CLI_OPT_COMPRESSION},
    {"bigtiff", required_argument, 0, CLI_OPT_BIGTIFF},
    {"tile", required_argument, 0, CLI_OPT_TILE},
    {"color-cache", required_argument, 0, CLI_OPT_CACHE},
    {"dither", required_argument, 0, CLI_OPT_DITHER},
    {"colorspace", required_argument, 0, CLI_OPT_COLORSPACE},
    {"progress", required_argument, 0, CLI_OPT_PROGRESS},
    {"trace", required_argument, 0, CLI_OPT_TRACE},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef enum job_state { JOB_TODO, JOB_SKIPPED, JOB_WRITTEN, JOB_FAILED } job_state_t;

struct batch;

/* One input and its outputs. */
typedef struct job {
    const char *in;
    char *out, *labels; /* owned */
    job_state_t state;
    int rc;
    char msg[2 * CM_MSG_MAX]; /* why it failed */
    /* while its sub-graph runs: between open and close */
    struct batch *b;
    cm_model_t *model;
    cm_image_t *img;
    cli_outputs_t w;
    cm_sink_t sink;
} job_t;

typedef struct batch {
    cli_opts_t o;
    const char *model_path, *out_dir, *labels_dir, *labels, *trace_path;
    bool overwrite;
    char *model_text;
    size_t model_len;
    cm_model_meta_t meta;
    cm_colorspace_t colorspace; /* the model's */
    int k;                      /* the model's */
    cm_trace_t *trace;          /* --trace: every task of the pass */
    job_t *jobs;
    int n_jobs;
    cli_progress_t prog;
} batch_t;

static int parse(int argc, char **argv, batch_t *b)
{
    cli_opts_default(&b->o);
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qvh", apply_options, NULL)) != -1) {
        int got = cli_option(&b->o, c, optarg);
        if (got < 0) return CM_EXIT_USAGE;
        if (got > 0) continue;
        switch (c) {
        case CLI_OPT_OUT_DIR: b->out_dir = optarg; break;
        case CLI_OPT_LABELS: b->labels = optarg; break;
        case CLI_OPT_LABELS_DIR: b->labels_dir = optarg; break;
        case CLI_OPT_OVERWRITE: b->overwrite = true; break;
        case CLI_OPT_TRACE: b->trace_path = optarg; break;
        case 'h': fputs(apply_help, stdout); return -1;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans apply --help'.\n", stderr);
            return CM_EXIT_USAGE;
        }
    }
    cli_opts_finish(&b->o);
    int n_pos = argc - optind;
    if (n_pos < 2 || (!b->out_dir && n_pos != 3)) {
        cli_error("apply needs MODEL.json IN.tif OUT.tif, or MODEL.json IN.tif ... --out-dir DIR "
                  "(try 'chunkmeans apply --help')");
        return CM_EXIT_USAGE;
    }
    if (b->labels && (b->out_dir || b->labels_dir)) {
        cli_error("--labels names the label map of one output; with --out-dir use --labels-dir");
        return CM_EXIT_USAGE;
    }
    b->model_path = argv[optind];
    b->n_jobs = b->out_dir ? n_pos - 1 : 1;
    b->jobs = calloc((size_t)b->n_jobs, sizeof(job_t));
    if (!b->jobs) {
        cli_error("out of memory");
        return CM_EXIT_RUNTIME;
    }
    for (int i = 0; i < b->n_jobs; i++) b->jobs[i].in = argv[optind + 1 + i];
    if (!b->out_dir) {
        b->jobs[0].out = strdup(argv[optind + 2]);
        b->jobs[0].labels = b->labels ? strdup(b->labels) : NULL;
    }
    return 0;
}

/* dir/<path's file name>; the caller frees it. */
static char *in_dir(const char *dir, const char *path)
{
    const char *slash = strrchr(path, '/');
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dir, slash ? slash + 1 : path) < 0) return NULL;
    return out;
}

/* Makes dir (one level) unless it exists. */
static bool make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return true;
    if (mkdir(dir, 0777) == 0) return true;
    cli_error("%s: cannot make the directory: %s", dir, strerror(errno));
    return false;
}

/* A path named by the batch, for finding two that are one file. */
typedef struct named {
    char *canon; /* the absolute name */
    const char *path;
    int job;
    bool input;
} named_t;

static int by_canon(const void *a, const void *b)
{
    return strcmp(((const named_t *)a)->canon, ((const named_t *)b)->canon);
}

/* Refuses two outputs of one name, and an output that is another job's input, by sorting the
 * absolute names of every input and output (so that thousands of files take no time). */
static int check_collisions(const batch_t *b)
{
    size_t n = 0, cap = 3 * (size_t)b->n_jobs;
    named_t *all = calloc(cap, sizeof(named_t));
    int rc = all ? 0 : CM_EXIT_RUNTIME;
    for (int i = 0; rc == 0 && i < b->n_jobs; i++) {
        const char *paths[3] = {b->jobs[i].in, b->jobs[i].out, b->jobs[i].labels};
        for (int k = 0; k < 3 && rc == 0; k++) {
            if (!paths[k]) continue;
            all[n] = (named_t){cli_canonical(paths[k]), paths[k], i, k == 0};
            if (!all[n++].canon) rc = CM_EXIT_RUNTIME;
        }
    }
    if (rc == 0) qsort(all, n, sizeof(named_t), by_canon);
    for (size_t i = 1; rc == 0 && i < n; i++) {
        const named_t *x = &all[i - 1], *y = &all[i];
        if (strcmp(x->canon, y->canon) || (x->input && y->input)) continue;
        const named_t *out = x->input ? y : x, *other = x->input ? x : y;
        if (other->input)
            cli_error("%s: refusing to write it: it is also an input", out->path);
        else
            cli_error("%s and %s would both write %s", b->jobs[other->job].in, b->jobs[out->job].in,
                      out->path);
        rc = CM_EXIT_USAGE;
    }
    if (rc == CM_EXIT_RUNTIME) cli_error("out of memory, or a directory that cannot be resolved");
    for (size_t i = 0; all && i < n; i++) free(all[i].canon);
    free(all);
    return rc;
}

/* Names every output, and refuses outputs that are an input, the model or another output. */
static int plan_jobs(batch_t *b)
{
    if (b->out_dir && !make_dir(b->out_dir)) return CM_EXIT_RUNTIME;
    if (b->labels_dir && !make_dir(b->labels_dir)) return CM_EXIT_RUNTIME;
    for (int i = 0; i < b->n_jobs; i++) {
        job_t *j = &b->jobs[i];
        if (b->out_dir) j->out = in_dir(b->out_dir, j->in);
        if (b->labels_dir) j->labels = in_dir(b->labels_dir, j->in);
        if (!j->out || (b->labels_dir && !j->labels)) {
            cli_error("out of memory");
            return CM_EXIT_RUNTIME;
        }
        const char *paths[5] = {j->in, j->out, j->labels, b->model_path, b->trace_path};
        if (!cli_paths_distinct(paths, 5)) return CM_EXIT_USAGE;
    }
    return check_collisions(b);
}

/* Whether path is a file that exists (an output is complete once it does). */
static bool exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Records job's failure (rc, with ctx's message) in words that name its input. */
static void job_record(job_t *job, int rc, const cm_ctx_t *ctx)
{
    job->rc = rc;
    job->state = rc < 0 ? JOB_FAILED : JOB_WRITTEN;
    if (rc == CM_ECANCELED) {
        snprintf(job->msg, sizeof job->msg, "%s: interrupted", job->in);
    } else if (rc < 0) {
        const char *msg = ctx->msg[0] ? ctx->msg : cm_strerror(rc);
        if (strstr(msg, job->in) || strstr(msg, job->out))
            snprintf(job->msg, sizeof job->msg, "%s", msg);
        else
            snprintf(job->msg, sizeof job->msg, "%s: %s", job->in, msg);
    }
}

/* Whether --format and the input make a palette output (whose pixels are the labels). */
static bool palette_output(const batch_t *b, const cm_image_info_t *in)
{
    return !strcmp(b->o.format, "palette") || (!strcmp(b->o.format, "auto") && in->palette);
}

/* Reads the header of job's input to plan its sub-graph (grid, masks, labels) and checks that
 * the model fits it; the file is closed again until the pass reaches it. */
static int probe(batch_t *b, job_t *job, cm_remap_job_t *rj, cm_ctx_t *ctx)
{
    cm_image_t *img = NULL;
    int rc = cm_image_open(job->in, 1, &img, ctx);
    if (rc == 0) rc = cm_image_set_chunk_side(img, b->o.tile, ctx);
    if (rc == 0) {
        const cm_image_info_t *in = cm_image_info(img);
        if (in->bands != b->meta.bands || in->stype != b->meta.stype ||
            in->alpha_band != b->meta.alpha_band) {
            char mine[64];
            cli_describe_pixels(in, mine, sizeof mine);
            rc = cm_fail(ctx, CM_EINPUT, "%s: %s, but the model %s was fitted on %d band%s of %s%s",
                         job->in, mine, b->model_path, b->meta.bands,
                         b->meta.bands == 1 ? "" : "s", cm_stype_name(b->meta.stype),
                         b->meta.alpha_band >= 0 ? " with alpha" : "");
        }
        rj->src = cli_source(img, &b->o);
        rj->src.read = NULL; /* open() reads through an image opened for every worker */
        rj->src.keep = NULL; /* one pass: nothing to keep */
        rj->src.self = NULL;
        rj->k = b->k;
        rj->want_labels = job->labels || palette_output(b, in);
    }
    cm_image_close(img);
    return rc;
}

/* cm_remap_job_t.open: opens job's input for every worker and its outputs. */
static int job_open(void *self, cm_source_t *src, cm_model_t **model, const cm_sink_t **sink,
                    cm_ctx_t *ctx)
{
    job_t *job = self;
    batch_t *b = job->b;
    /* Each file has its own copy of the model: the pass writes its counts. */
    CM_TRY(cm_model_from_json(b->model_text, b->model_len, b->model_path, &job->model, &b->meta,
                              ctx));
    CM_TRY(cm_image_open(job->in, b->o.params.n_threads, &job->img, ctx));
    cm_image_set_cancel(job->img, &cli_signal);
    CM_TRY(cm_image_set_chunk_side(job->img, b->o.tile, ctx));
    *src = cli_source(job->img, &b->o);
    src->keep = NULL;
    CM_TRY(cli_outputs_plan(&job->w, &b->o, job->img, src, job->model->k, job->in, job->out,
                            job->labels, ctx));
    CM_TRY(cli_outputs_open(&job->w, ctx));
    if (cm_image_info(job->img)->streamed) {
        char *dir = cli_dir_of(job->out);
        int rc = dir ? cm_image_prepare(job->img, dir, ctx) : cm_fail(ctx, CM_ENOMEM, "out of memory");
        free(dir);
        CM_TRY(rc);
    }
    CM_TRY(cli_outputs_sink(&job->w, job->model, &job->sink, ctx));
    *model = job->model;
    *sink = &job->sink;
    return 0;
}

/* cm_remap_job_t.close: commits job's outputs when they are complete, else drops them. */
static int job_close(void *self, int rc, cm_ctx_t *ctx)
{
    job_t *job = self;
    const batch_t *b = job->b;
    if (rc == 0) rc = cli_outputs_commit(&job->w, ctx);
    if (rc == 0 && (cli_verbosity >= 2 || (cli_verbosity >= 1 && b->n_jobs == 1))) {
        const cm_image_info_t *in = cm_image_info(job->img);
        const cm_model_t *m = job->model;
        fprintf(stderr, "chunkmeans: %s: %lldx%lld, k=%d, mean squared error %.2f\n", job->out,
                (long long)in->width, (long long)in->height, m->k,
                m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0);
    }
    cli_outputs_abort(&job->w);
    cm_image_close(job->img);
    cm_model_free(job->model);
    job->img = NULL;
    job->model = NULL;
    return rc;
}

/* How many inputs may be open at once: each is opened once per worker thread and has up to
 * three outputs, so a few more than the threads, within the limit of open files (raised to
 * the hard limit when lower). One at a time at the very least. */
static int max_open_files(int n_threads)
{
    int want = n_threads + 1;
    rlim_t per = (rlim_t)n_threads + 4, spare = 64, need = (rlim_t)want * per + spare;
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1;
    if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < need) {
        lim.rlim_cur = lim.rlim_max == RLIM_INFINITY || lim.rlim_max > need ? need : lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim); /* a failure leaves the old limit, read again below */
        getrlimit(RLIMIT_NOFILE, &lim);
    }
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= need) return want;
    rlim_t fit = lim.rlim_cur > spare ? (lim.rlim_cur - spare) / per : 0;
    return fit < 1 ? 1 : (int)fit;
}

/* Skips the jobs whose outputs exist, probes the others and remaps them in one pass. */
static int run_batch(batch_t *b, cm_ctx_t *ctx)
{
    cm_remap_job_t *rjobs = calloc((size_t)b->n_jobs, sizeof(cm_remap_job_t));
    job_t **of = calloc((size_t)b->n_jobs, sizeof(job_t *));
    if (!rjobs || !of) {
        free(rjobs);
        free(of);
        return cm_fail(ctx, CM_ENOMEM, "out of memory");
    }
    int n = 0;
    int64_t chunks = 0;
    double pixels = 0;
    for (int i = 0; i < b->n_jobs && !cli_signal; i++) {
        job_t *job = &b->jobs[i];
        job->b = b;
        if (!b->overwrite && exists(job->out) && (!job->labels || exists(job->labels))) {
            job->state = JOB_SKIPPED;
            if (cli_verbosity >= 2 || (cli_verbosity >= 1 && b->n_jobs == 1))
                fprintf(stderr, "chunkmeans: %s exists; skipped (--overwrite writes it again)\n",
                        job->out);
            continue;
        }
        cm_ctx_t pctx;
        cm_ctx_init(&pctx);
        cm_remap_job_t *rj = &rjobs[n];
        int rc = probe(b, job, rj, &pctx);
        if (rc < 0) {
            job_record(job, rc, &pctx);
            if (b->n_jobs > 1) cli_error("%s", job->msg);
            continue;
        }
        rj->open = job_open;
        rj->close = job_close;
        rj->self = job;
        of[n++] = job;
        chunks += cm_grid_count(&rj->src.grid);
        pixels += (double)rj->src.grid.width * (double)rj->src.grid.height;
    }
    cm_params_t p = b->o.params;
    p.trace = b->trace;
    p.cancel = &cli_signal;
    p.progress = cli_progress_update;
    p.progress_user = &b->prog;
    b->prog.px_per_chunk = chunks ? pixels / (double)chunks : 0;
    int rc = cli_signal ? 0 : cm_remap_batch(rjobs, n, max_open_files(p.n_threads), &p, ctx);
    cli_progress_end(&b->prog);
    for (int i = 0; i < n; i++) {
        job_record(of[i], rjobs[i].rc, &rjobs[i].ctx);
        if (rjobs[i].rc < 0 && rjobs[i].rc != CM_ECANCELED && b->n_jobs > 1)
            cli_error("%s", of[i]->msg);
    }
    free(rjobs);
    free(of);
    return rc;
}

/* Reads and checks the model once, before any file: a bad model is every file's failure. */
static int load_model(batch_t *b, cm_ctx_t *ctx)
{
    FILE *f = fopen(b->model_path, "rb");
    CM_FAIL_IF(ctx, !f, CM_EINPUT, "%s: cannot open: %s", b->model_path, strerror(errno));
    size_t cap = 0;
    int rc = 0;
    for (;;) {
        if (b->model_len == cap) {
            char *grown =
                cap < ((size_t)1 << 30) ? realloc(b->model_text, cap ? 2 * cap : 65536) : NULL;
            if (!grown) {
                rc = cm_fail(ctx, CM_EINPUT, "%s: too large for a model", b->model_path);
                break;
            }
            b->model_text = grown;
            cap = cap ? 2 * cap : 65536;
        }
        size_t got = fread(b->model_text + b->model_len, 1, cap - b->model_len, f);
        b->model_len += got;
        if (got == 0) {
            if (ferror(f))
                rc = cm_fail(ctx, CM_EINPUT, "%s: cannot read: %s", b->model_path, strerror(errno));
            break;
        }
    }
    fclose(f);
    cm_model_t *m = NULL;
    if (rc == 0)
        rc = cm_model_from_json(b->model_text, b->model_len, b->model_path, &m, &b->meta, ctx);
    if (rc == 0) {
        b->colorspace = m->colorspace;
        b->k = m->k;
    }
    cm_model_free(m);
    /* The colour space is the model's: its centres were fitted in it. */
    if (rc == 0 && b->o.colorspace_given && b->o.params.colorspace != b->colorspace)
        rc = cm_fail(ctx, CM_EUSAGE,
                     "--colorspace %s: the model %s was fitted in %s, and apply remaps in the "
                     "model's colour space (leave --colorspace out)",
                     cm_colorspace_name(b->o.params.colorspace), b->model_path,
                     cm_colorspace_name(b->colorspace));
    return rc;
}

int cmd_apply(int argc, char **argv)
{
    batch_t b = {0};
    int rc = parse(argc, argv, &b);
    if (rc == 0) rc = plan_jobs(&b);
    if (rc) {
        for (int i = 0; b.jobs && i < b.n_jobs; i++) {
            free(b.jobs[i].out);
            free(b.jobs[i].labels);
        }
        free(b.jobs);
        return rc < 0 ? CM_EXIT_OK : rc;
    }
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    double t0 = cli_now();
    cli_catch_signals();
    int exit_code = CM_EXIT_OK;
    rc = load_model(&b, &ctx);
    if (rc < 0) {
        exit_code = cli_fail(&ctx, rc, b.model_path);
        goto done;
    }

    cli_progress_init(&b.prog, b.o.progress, 0);
    if (b.trace_path && !(b.trace = cm_trace_create())) {
        exit_code = cli_fail(&ctx, cm_fail(&ctx, CM_ENOMEM, "out of memory for the trace"), NULL);
        goto done;
    }
    rc = run_batch(&b, &ctx);
    if (b.trace) { /* written whatever happened: that is when it helps most */
        cm_ctx_t tctx;
        cm_ctx_init(&tctx);
        if (cli_write_trace(b.trace_path, b.trace, &tctx) < 0) {
            cli_error("%s: %s", b.trace_path, tctx.msg);
            if (rc == 0) exit_code = CM_EXIT_RUNTIME;
        }
    }
    if (rc < 0 && rc != CM_ECANCELED) {
        exit_code = cli_fail(&ctx, rc, b.model_path);
        goto done;
    }

    int n_written = 0, n_skipped = 0, n_failed = 0;
    for (int i = 0; i < b.n_jobs; i++) {
        n_written += b.jobs[i].state == JOB_WRITTEN;
        n_skipped += b.jobs[i].state == JOB_SKIPPED;
        n_failed += b.jobs[i].state == JOB_FAILED && b.jobs[i].rc != CM_ECANCELED;
    }
    if (cli_signal) {
        cli_error("interrupted by a signal: %d written, %d skipped, %d not done", n_written,
                  n_skipped, b.n_jobs - n_written - n_skipped);
        exit_code = 128 + cli_signal;
    } else if (b.n_jobs == 1 && n_failed) {
        /* One input: its failure is the command's, with its exit code. */
        cm_fail(&ctx, b.jobs[0].rc, "%s", b.jobs[0].msg);
        exit_code = cli_fail(&ctx, b.jobs[0].rc, b.jobs[0].in);
    } else if (n_failed) {
        cli_error("%d of %d files failed:", n_failed, b.n_jobs);
        for (int i = 0; i < b.n_jobs; i++)
            if (b.jobs[i].state == JOB_FAILED) fprintf(stderr, "  %s\n", b.jobs[i].msg);
        exit_code = CM_EXIT_RUNTIME;
    }
    if (cli_verbosity >= 1 && b.n_jobs > 1)
        fprintf(stderr, "chunkmeans: apply: %d files: %d written, %d skipped, %d failed, %.2f s\n",
                b.n_jobs, n_written, n_skipped, n_failed, cli_now() - t0);
done:
    for (int i = 0; i < b.n_jobs; i++) {
        free(b.jobs[i].out);
        free(b.jobs[i].labels);
    }
    free(b.jobs);
    free(b.model_text);
    cm_trace_free(b.trace);
    return exit_code;
}
