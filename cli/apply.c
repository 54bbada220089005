/* chunkmeans apply MODEL.json IN... (OUT | --out-dir DIR): remaps inputs with a fitted model.
 * Several inputs are processed a few at a time, side by side, each with its share of the
 * threads and of the memory budget; a file that fails is reported and the others go on. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
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
    "and does only what is left. Several inputs are processed side by side, a few at a time,\n"
    "each with its share of -j and --memory (an input whose chunks need more runs alone, with\n"
    "all of --memory). An input that fails is reported and the others go on; the end lists\n"
    "every failure, one line each.\n"
    "\n"
    "Options:\n"
    "      --out-dir DIR       write each IN as DIR/<IN's file name> (made if missing)\n"
    "      --labels L.tif      also write the label map (one input)\n"
    "      --labels-dir LDIR   also write each label map as LDIR/<IN's file name>\n"
    "      --overwrite         write outputs that exist already\n"
    "  -j, --threads N         worker threads, shared by the files in progress (default: all\n"
    "                          cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, shared likewise (default\n"
    "                          256M)\n"
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
    "      --progress WHEN     auto, always or never: progress bar on stderr (in files, for\n"
    "                          several inputs)\n"
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
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef enum job_state { JOB_TODO, JOB_SKIPPED, JOB_WRITTEN, JOB_FAILED } job_state_t;

/* One input and its outputs. */
typedef struct job {
    const char *in;
    char *out, *labels; /* owned */
    job_state_t state;
    int rc;
    char msg[2 * CM_MSG_MAX]; /* why it failed */
} job_t;

typedef struct batch {
    cli_opts_t o;
    const char *model_path, *out_dir, *labels_dir, *labels;
    bool overwrite;
    char *model_text;
    size_t model_len;
    cm_model_meta_t meta;
    cm_colorspace_t colorspace; /* the model's */
    job_t *jobs;
    int n_jobs, n_todo;
    int threads_per;   /* threads of one file in progress */
    size_t budget_per; /* its share of --memory */
    /* shared by the file threads */
    pthread_mutex_t mu;
    int next, n_done;
    cli_progress_t prog;
    pthread_rwlock_t solo; /* held for reading by a file in progress; for writing by one that
                            * needs the whole budget */
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
        const char *paths[4] = {j->in, j->out, j->labels, b->model_path};
        if (!cli_paths_distinct(paths, 4)) return CM_EXIT_USAGE;
    }
    return check_collisions(b);
}

/* Whether path is a file that exists (an output is complete once it does). */
static bool exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Writes the outputs of one input with its share of threads and budget. */
static int apply_one(batch_t *b, job_t *job, int threads, size_t budget, bool progress,
                     cm_ctx_t *ctx)
{
    cm_model_t *model = NULL;
    cm_image_t *img = NULL;
    cli_outputs_t w = {0};
    cm_params_t p = b->o.params;
    p.n_threads = threads;
    p.budget_bytes = budget;
    p.cancel = &cli_signal;
    p.progress = progress ? cli_progress_update : NULL;
    p.progress_user = &b->prog;
    /* Each file remaps with its own copy of the model: the remap writes its counts. */
    int rc = cm_model_from_json(b->model_text, b->model_len, b->model_path, &model, &b->meta, ctx);
    if (rc == 0) rc = cm_image_open(job->in, threads, &img, ctx);
    if (rc == 0) cm_image_set_cancel(img, &cli_signal);
    if (rc == 0) rc = cm_image_set_chunk_side(img, b->o.tile, ctx);
    if (rc < 0) goto done;
    const cm_image_info_t *in = cm_image_info(img);
    if (progress)
        b->prog.px_per_chunk =
            (double)in->width * (double)in->height / (double)cm_grid_count(&in->grid);
    if (in->bands != b->meta.bands || in->stype != b->meta.stype ||
        in->alpha_band != b->meta.alpha_band) {
        char mine[64];
        cli_describe_pixels(in, mine, sizeof mine);
        rc = cm_fail(ctx, CM_EINPUT, "%s: %s, but the model %s was fitted on %d band%s of %s%s",
                     job->in, mine, b->model_path, b->meta.bands, b->meta.bands == 1 ? "" : "s",
                     cm_stype_name(b->meta.stype), b->meta.alpha_band >= 0 ? " with alpha" : "");
        goto done;
    }
    cm_source_t src = cli_source(img, &b->o);
    src.keep = NULL; /* one pass: nothing to keep */
    rc = cli_outputs_plan(&w, &b->o, img, &src, model->k, job->in, job->out, job->labels, ctx);
    if (rc == 0) rc = cm_budget_check(&src, &p, job->labels || w.palette, ctx);
    if (rc == 0) rc = cli_outputs_open(&w, ctx);
    if (rc == 0 && in->streamed) {
        char *dir = cli_dir_of(job->out);
        rc = dir ? cm_image_prepare(img, dir, ctx) : cm_fail(ctx, CM_ENOMEM, "out of memory");
        free(dir);
    }
    cm_sink_t sink;
    if (rc == 0) rc = cli_outputs_sink(&w, model, &sink, ctx);
    if (rc == 0) rc = cm_remap(&src, model, &p, &sink, ctx);
    if (progress) cli_progress_end(&b->prog);
    if (rc == 0 && cli_signal) rc = cm_fail(ctx, CM_ECANCELED, "interrupted");
    if (rc == 0) rc = cli_outputs_commit(&w, ctx);
    if (rc == 0 && (cli_verbosity >= 2 || (cli_verbosity >= 1 && b->n_jobs == 1)))
        fprintf(stderr, "chunkmeans: %s: %lldx%lld, k=%d, mean squared error %.2f\n", job->out,
                (long long)in->width, (long long)in->height, model->k,
                model->n_pixels ? model->inertia / (double)model->n_pixels : 0.0);
done:
    cli_outputs_abort(&w);
    cm_image_close(img);
    cm_model_free(model);
    return rc;
}

/* Runs one job: skipped when its outputs exist; on a budget too small for its share, again
 * alone with the whole budget. Records its state and message. */
static void run_job(batch_t *b, job_t *job)
{
    if (!b->overwrite && exists(job->out) && (!job->labels || exists(job->labels))) {
        job->state = JOB_SKIPPED;
        if (cli_verbosity >= 2 || (cli_verbosity >= 1 && b->n_jobs == 1))
            fprintf(stderr, "chunkmeans: %s exists; skipped (--overwrite writes it again)\n",
                    job->out);
        return;
    }
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    bool single = b->n_jobs == 1;
    pthread_rwlock_rdlock(&b->solo);
    int rc = apply_one(b, job, b->threads_per, b->budget_per, single, &ctx);
    pthread_rwlock_unlock(&b->solo);
    if (rc == CM_EBUDGET && b->budget_per < b->o.params.budget_bytes) {
        cm_ctx_init(&ctx);
        pthread_rwlock_wrlock(&b->solo);
        rc = apply_one(b, job, b->threads_per, b->o.params.budget_bytes, single, &ctx);
        pthread_rwlock_unlock(&b->solo);
    }
    job->rc = rc;
    job->state = rc < 0 ? JOB_FAILED : JOB_WRITTEN;
    if (rc < 0 && rc != CM_ECANCELED) {
        const char *msg = ctx.msg[0] ? ctx.msg : cm_strerror(rc);
        if (strstr(msg, job->in) || strstr(msg, job->out))
            snprintf(job->msg, sizeof job->msg, "%s", msg);
        else
            snprintf(job->msg, sizeof job->msg, "%s: %s", job->in, msg);
        if (!single) cli_error("%s", job->msg);
    } else if (rc < 0) {
        snprintf(job->msg, sizeof job->msg, "%s: interrupted", job->in);
    }
}

/* A file thread: takes the next job until none is left (or a signal came). */
static void *file_thread(void *arg)
{
    batch_t *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        int i = b->next < b->n_jobs && !cli_signal ? b->next++ : -1;
        pthread_mutex_unlock(&b->mu);
        if (i < 0) break;
        run_job(b, &b->jobs[i]);
        pthread_mutex_lock(&b->mu);
        b->n_done++;
        if (b->n_jobs > 1) cli_progress_update(&b->prog, "apply", b->n_done, b->n_jobs);
        pthread_mutex_unlock(&b->mu);
    }
    return NULL;
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
    if (rc == 0) b->colorspace = m->colorspace;
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

    /* As many files at once as there are threads (or files), each with its share. */
    int n_threads = b.o.params.n_threads;
    int slots = n_threads < b.n_jobs ? n_threads : b.n_jobs;
    b.threads_per = n_threads / slots;
    b.budget_per = b.o.params.budget_bytes / (size_t)slots;
    cli_progress_init(&b.prog, b.o.progress, 0);
    pthread_mutex_init(&b.mu, NULL);
    pthread_rwlock_init(&b.solo, NULL);
    pthread_t *threads = calloc((size_t)slots, sizeof(pthread_t));
    int started = 0;
    for (int i = 1; threads && i < slots; i++, started++)
        if (pthread_create(&threads[i], NULL, file_thread, &b) != 0) break;
    file_thread(&b); /* this thread is one of them */
    for (int i = 1; i <= started; i++) pthread_join(threads[i], NULL);
    free(threads);
    cli_progress_end(&b.prog);
    pthread_rwlock_destroy(&b.solo);
    pthread_mutex_destroy(&b.mu);

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
    return exit_code;
}
