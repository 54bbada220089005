/* chunkmeans apply MODEL.json IN... (OUT | --out-dir DIR): remaps inputs with a fitted model
 * through cm_apply_files: every input a sub-graph of one remap pass, overlapping the others
 * within the threads and the memory budget; a file that fails is reported, the others go on. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static const char apply_help[] =
    "Usage: chunkmeans apply MODEL.json IN OUT [--labels L.tif] [options]\n"
    "       chunkmeans apply MODEL.json IN ... --out-dir DIR [--ext png|tif] [--labels-dir LDIR]\n"
    "                        [--shard I/N] [options]\n"
    "\n"
    "Writes each input with every pixel replaced by its nearest colour of the model (written\n"
    "by 'chunkmeans fit' or 'run --model-out'), as run does: the same pixels as the run that\n"
    "fitted the model, with the same --nodata, --nodata-match, --format and --compression.\n"
    "Alpha, nodata and non-finite pixels are written unchanged. The model must have been\n"
    "fitted on images of the same bands, alpha and sample type (else exit 3, naming the\n"
    "file). Inputs are TIFFs, JPEGs or PNGs; each output's extension chooses its format, as\n"
    "for run (--ext chooses it for a batch).\n"
    "\n"
    "An output that exists already is complete (outputs appear only when complete) and is\n"
    "skipped, with its label map, unless --overwrite: a batch that stopped can be run again\n"
    "and does only what is left. All inputs are remapped in one task graph, each input a\n"
    "sub-graph (open, a task per chunk, writes in order, close) that overlaps the others\n"
    "within -j and --memory; at most -j + 1 inputs are open at once. An input that fails (a\n"
    "bad file, or chunks that alone need more than --memory) is reported and the others go\n"
    "on; the end lists every failure, one line each.\n"
    "\n"
    "--shard I/N does only the I-th of N parts of the inputs, for N jobs that need no MPI (a\n"
    "Slurm job array): the parts are of about equal bytes, split by the inputs' sizes alone,\n"
    "so N runs with I = 1 to N, given the same inputs in the same order (unchanged until all\n"
    "have run), do each input once and together write the files of one run without --shard.\n"
    "The inputs of other parts are not this run's: the summary counts those of the part\n"
    "('shard I/N: n of m files: ...'), and no other input is named, written or skipped.\n"
    "\n";

/* Two strings: ISO C only promises 4095 characters in one. */
static const char apply_help_options[] =
    "Options:\n"
    "      --out-dir DIR       write each IN as DIR/<IN's file name> (made if missing)\n"
    "      --labels L.tif      also write the label map (one input)\n"
    "      --labels-dir LDIR   also write each label map as LDIR/<IN's file name> (with --ext's\n"
    "                          extension; .tif beside JPEG outputs)\n"
    "      --ext EXT           png, tif, tiff, jpg or jpeg: the outputs' format, their names\n"
    "                          IN's with this extension (default: IN's name and format)\n"
    "      --overwrite         write outputs that exist already\n"
    "      --shard I/N         only part I of N (1 <= I <= N <= 100000) of the inputs, as above\n"
    "  -j, --threads N         worker threads (default: all cores)\n"
    "      --memory SIZE       budget for chunk buffers in flight, of all inputs together\n"
    "                          (default 256M)\n"
    "      --nodata V          samples equal to V mark pixels outside the data (default: each\n"
    "                          input's GDAL_NODATA)\n"
    "      --nodata-match M    all (default) or any, as for run: the same as the fit's\n"
    "      --format F          rgb or palette, as for run (default: palette for a palette\n"
    "                          input, else rgb)\n"
    "      --compression C     none, lzw, deflate, zstd, jpeg or packbits (default: each\n"
    "                          input's, or deflate when it is lossy)\n"
    "      --bigtiff WHEN      auto, always or never (default auto)\n"
    "      --tile N            output tiles of N x N pixels, as for run (default 512)\n"
    "      --color-cache WHEN  auto, on or off, as for run\n"
    "      --mpi-write M       gather (default) or parallel, as for run (one IN and OUT)\n"
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
    {"ext", required_argument, 0, CLI_OPT_EXT},
    {"overwrite", no_argument, 0, CLI_OPT_OVERWRITE},
    {"shard", required_argument, 0, CLI_OPT_SHARD},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, CLI_OPT_MEMORY},
    {"nodata", required_argument, 0, CLI_OPT_NODATA},
    {"nodata-match", required_argument, 0, CLI_OPT_NODATA_MATCH},
    {"format", required_argument, 0, CLI_OPT_FORMAT},
    {"compression", required_argument, 0, CLI_OPT_COMPRESSION},
    {"bigtiff", required_argument, 0, CLI_OPT_BIGTIFF},
    {"tile", required_argument, 0, CLI_OPT_TILE},
    {"color-cache", required_argument, 0, CLI_OPT_CACHE},
    {"mpi-write", required_argument, 0, CLI_OPT_MPI_WRITE},
    {"dither", required_argument, 0, CLI_OPT_DITHER},
    {"colorspace", required_argument, 0, CLI_OPT_COLORSPACE},
    {"progress", required_argument, 0, CLI_OPT_PROGRESS},
    {"trace", required_argument, 0, CLI_OPT_TRACE},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

typedef struct batch {
    cli_opts_t o;
    const char *model_path, *out_dir, *labels_dir, *labels, *trace_path;
    const char *ext; /* --ext, without its dot: the outputs' format, or NULL: IN's name */
    bool overwrite;
    int shard, n_shards; /* --shard I/N: part I (from 1) of N; 0/0 when not given: every input */
    cm_model_t *model;
    cm_model_meta_t meta;
    cm_file_job_t *jobs;
    char **owned; /* the output and label paths the batch made, 2 per job */
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
        case CLI_OPT_EXT:
            b->ext = optarg + (optarg[0] == '.');
            if (strcasecmp(b->ext, "png") && strcasecmp(b->ext, "tif") &&
                strcasecmp(b->ext, "tiff") && strcasecmp(b->ext, "jpg") &&
                strcasecmp(b->ext, "jpeg")) {
                cli_error("--ext takes png, tif, tiff, jpg or jpeg, not '%s'", optarg);
                return CM_EXIT_USAGE;
            }
            break;
        case CLI_OPT_OVERWRITE: b->overwrite = true; break;
        case CLI_OPT_SHARD:
            if (!cli_parse_shard("--shard", optarg, &b->shard, &b->n_shards)) return CM_EXIT_USAGE;
            break;
        case CLI_OPT_TRACE: b->trace_path = optarg; break;
        case 'h':
            fputs(apply_help, stdout);
            fputs(apply_help_options, stdout);
            return -1;
        default: /* getopt has printed the problem */
            fputs("Try 'chunkmeans apply --help'.\n", stderr);
            return CM_EXIT_USAGE;
        }
    }
    cli_opts_finish(&b->o);
    int n_pos = argc - optind;
    if (n_pos < 2 || (!b->out_dir && n_pos != 3)) {
        cli_error("apply needs MODEL.json IN OUT, or MODEL.json IN ... --out-dir DIR "
                  "(try 'chunkmeans apply --help')");
        return CM_EXIT_USAGE;
    }
    if (b->ext && !b->out_dir) {
        cli_error("--ext names the outputs of --out-dir; one OUT has its own extension");
        return CM_EXIT_USAGE;
    }
    if (b->n_shards && !b->out_dir) {
        cli_error("--shard needs --out-dir: it splits the inputs of a batch, not one IN and OUT");
        return CM_EXIT_USAGE;
    }
    if (b->labels && (b->out_dir || b->labels_dir)) {
        cli_error("--labels names the label map of one output; with --out-dir use --labels-dir");
        return CM_EXIT_USAGE;
    }
    b->model_path = argv[optind];
    b->n_jobs = b->out_dir ? n_pos - 1 : 1;
    b->jobs = calloc((size_t)b->n_jobs, sizeof(cm_file_job_t));
    b->owned = calloc(2 * (size_t)b->n_jobs, sizeof(char *));
    if (!b->jobs || !b->owned) {
        cli_error("out of memory");
        return CM_EXIT_RUNTIME;
    }
    for (int i = 0; i < b->n_jobs; i++) b->jobs[i].in = argv[optind + 1 + i];
    if (!b->out_dir) {
        b->jobs[0].out = argv[optind + 2];
        b->jobs[0].labels = b->labels;
    }
    return 0;
}

/* dir/<path's file name>, its extension replaced by ext when not NULL; the caller frees it. */
static char *in_dir(const char *dir, const char *path, const char *ext)
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.');
    int stem = ext && dot && dot != name ? (int)(dot - name) : (int)strlen(name);
    char *out = NULL;
    if (asprintf(&out, "%s/%.*s%s%s", dir, stem, name, ext ? "." : "", ext ? ext : "") < 0)
        return NULL;
    return out;
}

/* The extension of a label map beside an output named with ext (NULL: IN's name): a JPEG
 * cannot hold labels, so theirs is .tif. */
static const char *labels_ext(const char *ext, const char *in)
{
    const char *dot = strrchr(in, '.'), *slash = strrchr(in, '/');
    const char *own = ext ? ext : dot && (!slash || dot > slash + 1) ? dot + 1 : NULL;
    if (own && (!strcasecmp(own, "jpg") || !strcasecmp(own, "jpeg"))) return "tif";
    return ext;
}

/* Makes dir (one level) unless it exists. */
static bool make_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return true;
    if (mkdir(dir, 0777) == 0) return true;
    /* another rank of the job, or another shard, made it first */
    if (errno == EEXIST && stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) return true;
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
        cm_file_job_t *j = &b->jobs[i];
        if (b->out_dir) j->out = b->owned[2 * i] = in_dir(b->out_dir, j->in, b->ext);
        if (b->labels_dir)
            j->labels = b->owned[2 * i + 1] =
                in_dir(b->labels_dir, j->in, labels_ext(b->ext, j->in));
        if (!j->out || (b->labels_dir && !j->labels)) {
            cli_error("out of memory");
            return CM_EXIT_RUNTIME;
        }
        const char *paths[5] = {j->in, j->out, j->labels, b->model_path, b->trace_path};
        if (!cli_paths_distinct(paths, 5)) return CM_EXIT_USAGE;
    }
    return check_collisions(b);
}

/* Called as each file ends: failures at once (several inputs), lines for -v. */
static void file_done(void *user, const cm_file_job_t *j)
{
    const batch_t *b = user;
    bool detail = cli_verbosity >= 2 || (cli_verbosity >= 1 && b->n_jobs == 1);
    bool failed = j->state == CM_FILE_FAILED && j->rc != CM_ECANCELED && b->n_jobs > 1;
    bool skipped = j->state == CM_FILE_SKIPPED && detail;
    bool written = j->state == CM_FILE_WRITTEN && detail;
    if (!failed && !skipped && !written) return;
    flockfile(stderr); /* one line at a time, over the progress line if one is drawn */
    if (b->prog.drawn) fputs("\r\033[K", stderr);
    char words[2 * CM_MSG_MAX];
    cli_words(&j->why, words, sizeof words);
    if (failed)
        cli_error("%s", words);
    else if (skipped)
        fprintf(stderr, "chunkmeans: %s exists; skipped (--overwrite writes it again)\n", j->out);
    else
        fprintf(stderr, "chunkmeans: %s: %lldx%lld, k=%d, mean squared error %.2f\n", j->out,
                (long long)j->width, (long long)j->height, b->model->k, j->mse);
    funlockfile(stderr);
}

/* A line of the summary of failures. */
static void print_failure(const cm_file_job_t *j)
{
    char words[2 * CM_MSG_MAX];
    cli_words(&j->why, words, sizeof words);
    fprintf(stderr, "  %s\n", words);
}

/* Reads and checks the model once, before any file: a bad model is every file's failure. */
static int load_model(batch_t *b, cm_ctx_t *ctx)
{
    CM_TRY(cm_model_load(b->model_path, &b->model, &b->meta, ctx));
    /* The colour space is the model's: its centres were fitted in it. */
    CM_FAIL_IF(ctx, b->o.colorspace_given && b->o.params.colorspace != b->model->colorspace,
               CM_EUSAGE,
               "--colorspace %s: the model %s was fitted in %s, and apply remaps in the "
               "model's colour space (leave --colorspace out)",
               cm_colorspace_name(b->o.params.colorspace), b->model_path,
               cm_colorspace_name(b->model->colorspace));
    return 0;
}

/* Whether every job has its outcome. */
static bool all_ended(const batch_t *b)
{
    for (int i = 0; i < b->n_jobs; i++)
        if (b->jobs[i].state == CM_FILE_TODO) return false;
    return true;
}

static void batch_free(batch_t *b)
{
    for (int i = 0; b->owned && i < 2 * b->n_jobs; i++) free(b->owned[i]);
    free(b->owned);
    free(b->jobs);
    cm_model_free(b->model);
}

int cmd_apply(int argc, char **argv)
{
    batch_t b = {0};
    int rc = parse(argc, argv, &b);
    if (rc == 0) rc = plan_jobs(&b);
    if (rc) {
        batch_free(&b);
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
    struct rlimit lim; /* the library keeps to the limit; the command may raise it first */
    cli_raise_open_files(cm_apply_files_descriptors(b.o.params.n_threads), &lim);
    cli_progress_init(&b.prog, b.o.progress, 0);
    cm_options_t fo = cli_file_options(&b.o, &b.prog);
    fo.opened = NULL; /* the rate in chunks per second: the inputs differ in size */
    fo.overwrite = b.overwrite;
    if (b.n_shards) {
        fo.shard_index = b.shard - 1;
        fo.shard_count = b.n_shards;
    }
    fo.trace_path = b.trace_path;
    rc = cm_apply_files(b.model, &b.meta, b.jobs, b.n_jobs, &fo, file_done, &b, &ctx);
    cli_job_agreed = rc == 0; /* every rank has every file's outcome */
    cli_progress_end(&b.prog);
    if (rc < 0 && rc != CM_ECANCELED) {
        exit_code = cli_fail(&ctx, rc, b.model_path);
        if (!all_ended(&b)) goto done; /* the batch stopped; else only its trace failed */
    }

    /* The inputs of other shards are not this run's: the counts are of the shard's. */
    int n_run = 0, n_written = 0, n_skipped = 0, n_failed = 0;
    for (int i = 0; i < b.n_jobs; i++) {
        n_run += b.jobs[i].state != CM_FILE_OTHER_SHARD;
        n_written += b.jobs[i].state == CM_FILE_WRITTEN;
        n_skipped += b.jobs[i].state == CM_FILE_SKIPPED;
        n_failed += b.jobs[i].state == CM_FILE_FAILED && b.jobs[i].rc != CM_ECANCELED;
    }
    if (cli_signal) {
        cli_error("interrupted by a signal: %d written, %d skipped, %d failed, %d not done",
                  n_written, n_skipped, n_failed, n_run - n_written - n_skipped - n_failed);
        for (int i = 0; i < b.n_jobs; i++)
            if (b.jobs[i].state == CM_FILE_FAILED && b.jobs[i].rc != CM_ECANCELED)
                print_failure(&b.jobs[i]);
        exit_code = 128 + cli_signal;
    } else if (b.n_jobs == 1 && n_failed) {
        /* One input: its failure is the command's, with its exit code. */
        exit_code = cli_fail(&b.jobs[0].why, b.jobs[0].rc, b.jobs[0].in);
    } else if (n_failed) {
        cli_error("%d of %d files failed:", n_failed, n_run);
        for (int i = 0; i < b.n_jobs; i++)
            if (b.jobs[i].state == CM_FILE_FAILED) print_failure(&b.jobs[i]);
        exit_code = CM_EXIT_RUNTIME;
    }
    char shard[64] = "";
    if (b.n_shards)
        snprintf(shard, sizeof shard, "shard %d/%d: %d of ", b.shard, b.n_shards, n_run);
    if (cli_verbosity >= 1 && b.n_jobs > 1)
        fprintf(stderr,
                "chunkmeans: apply: %s%d files: %d written, %d skipped, %d failed, %.2f s\n", shard,
                b.n_jobs, n_written, n_skipped, n_failed, cli_now() - t0);
done:
    batch_free(&b);
    return exit_code;
}
