/* What the command's files share: option values, messages, exit codes and the progress
 * display. Holds no algorithm: everything it does goes through the library's headers. */
#ifndef CM_CLI_H
#define CM_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "chunkmeans.h"

enum { CM_EXIT_OK = 0, CM_EXIT_RUNTIME = 1, CM_EXIT_USAGE = 2, CM_EXIT_INPUT = 3 };

/* Verbosity: 0 = errors only (-q), 1 = summary (default), 2 = detail (-v). */
extern int cli_verbosity;

/* Prints "chunkmeans: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "chunkmeans: warning: message" on stderr unless -q. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The context's message in the command's words: where it names one of the library's settings,
 * the flag instead, and the flag that would do after it. */
void cli_words(const cm_ctx_t *ctx, char *buf, size_t size);

/* Prints the context's message (in the command's words) and returns the exit code for an error
 * code. The message of a bad input that does not name a file is prefixed with `input`. */
int cli_fail(const cm_ctx_t *ctx, int rc, const char *input);

/* Parsers for option values; each prints its own message and returns false on a bad value. */
bool cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
bool cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
/* "2,5,10": 1 to max_n different whole numbers from lo to hi, in the order given, into out
 * (max_n entries) and *n. */
bool cli_parse_int_list(const char *opt, const char *s, long long lo, long long hi, int max_n,
                        long long *out, int *n);
/* "I/N": part I (from 1) of N parts, 1 <= I <= N <= CLI_SHARD_MAX, digits only (no blanks,
 * signs or anything after N), into *index and *count. */
enum { CLI_SHARD_MAX = 100000 };
bool cli_parse_shard(const char *opt, const char *s, int *index, int *count);
/* "512M", "2G", "1.5GiB", "65536": bytes, binary multiples. */
bool cli_parse_size(const char *opt, const char *s, size_t *out);

/* In a job of several ranks: rank 0 alone prints results, warnings and progress, and a
 * signal removes this rank's temporary files and ends it at once (the others may wait for it
 * inside MPI, where no flag is looked at). With -v, rank 0 says how many ranks there are. */
void cli_join_job(void);
/* Set when every rank knows the command's outcome: a failure then needs no abort, and rank 0
 * alone reports it. */
extern bool cli_job_agreed;

/* Ctrl-C and SIGTERM set this flag (the signal number) so the run stops cleanly. */
extern volatile sig_atomic_t cli_signal;
void cli_catch_signals(void);

/* The progress display on stderr. */
typedef struct cli_progress {
    bool enabled;
    double px_per_chunk;   /* for the pixel rate */
    double n_px, n_chunks; /* of the inputs opened so far (cli_opened) */
    const char *stage;
    double stage_t0, last_draw;
    bool drawn;
} cli_progress_t;

/* mode: "auto" (a terminal), "always", "never". px_per_chunk 0: chunks per second, unless the
 * inputs' sizes come through cli_opened. */
void cli_progress_init(cli_progress_t *p, const char *mode, double px_per_chunk);
/* A cm_stage_fn: user is the cli_progress_t. */
void cli_progress_update(void *user, const char *stage, int64_t done, int64_t total);
/* Clears the line. */
void cli_progress_end(cli_progress_t *p);

double cli_now(void);

/* cm_options_t.opened with the progress display as user: the pixel rate follows the inputs'
 * sizes; with -v, a line for an input streamed into a spill store. */
void cli_opened(void *user, const char *path, const cm_image_info_t *in);
/* The model's palette (fitted on samples of type stype) on f, largest count first, one line a
 * colour after indent: cm_palette_line's "#rrggbb count percent" for grey and RGB models, else
 * "colour j: the centroid's samples count percent". */
void cli_print_palette(FILE *f, const cm_model_t *m, cm_stype_t stype, const char *indent);
/* The model's colours on stderr for -v: cli_print_palette, indented. */
void cli_print_colors(const cm_model_t *m, cm_stype_t stype);

/* cm_options_t.warn: the warning on stderr, in the command's words (an error line for a
 * failure that came after the one returned). */
void cli_warn_of(void *user, const cm_ctx_t *warning);

/* ---- options that run, fit and apply share (options.c) ---- */

/* getopt_long's codes of the long options without a short form. */
enum {
    CLI_OPT_SEED = 256,
    CLI_OPT_MEMORY,
    CLI_OPT_MAX_ITER,
    CLI_OPT_N_INIT,
    CLI_OPT_TOL,
    CLI_OPT_BATCH,
    CLI_OPT_LABELS,
    CLI_OPT_MODEL_OUT,
    CLI_OPT_COMPRESSION,
    CLI_OPT_BIGTIFF,
    CLI_OPT_PROGRESS,
    CLI_OPT_FORMAT,
    CLI_OPT_ALGORITHM,
    CLI_OPT_COLORSPACE,
    CLI_OPT_SCALE,
    CLI_OPT_DITHER,
    CLI_OPT_INIT,
    CLI_OPT_NODATA,
    CLI_OPT_NODATA_MATCH,
    CLI_OPT_TRACE,
    CLI_OPT_GRAPH,
    CLI_OPT_TILE,
    CLI_OPT_CACHE,
    CLI_OPT_OUT_DIR,
    CLI_OPT_LABELS_DIR,
    CLI_OPT_OVERWRITE,
    CLI_OPT_SUMMARY,
    CLI_OPT_EXT,
    CLI_OPT_SHARD,
    CLI_OPT_MPI_WRITE,
    CLI_OPT_OVERVIEWS,
    CLI_OPT_COG,
    CLI_OPT_PREVIEW,
    CLI_OPT_PALETTE_OUT,
};

/* The most values -k takes in a list. */
enum { CLI_K_LIST_MAX = 16 };

/* The values of the shared options. */
typedef struct cli_opts {
    cm_params_t params;
    const char *progress, *bigtiff;
    const char *format; /* rgb, palette, or auto: palette for palette input */
    int compression;    /* -1: that of IN */
    int64_t tile;
    int overviews; /* reduced levels: 0 none, -1 auto, N */
    bool overviews_given, cog;
    bool has_nodata, nodata_any, max_iter_given;
    bool k_given, colorspace_given, dither_given;
    double nodata;
    int ks[CLI_K_LIST_MAX]; /* -k: every k given (params.k is the first), n_k of them */
    int n_k;
    const char *init_path; /* --init FILE.json, or NULL for params.init (kmeans++, random) */
} cli_opts_t;

/* The defaults of every shared option. */
void cli_opts_default(cli_opts_t *o);
/* Takes getopt_long's code c and argument: 1 when c is a shared option and its value is good,
 * -1 when the value is bad (the message printed), 0 when c is not a shared option. */
int cli_option(cli_opts_t *o, int c, const char *arg);
/* Defaults that follow other options (the step limit of the exact modes, the threads). */
void cli_opts_finish(cli_opts_t *o);
/* The file-level options (chunkmeans.h) of the command's options: warnings to stderr, progress
 * on prog, Ctrl-C as the cancel flag. */
cm_options_t cli_file_options(const cli_opts_t *o, cli_progress_t *prog);

/* ---- paths and files (paths.c) ---- */

/* The absolute name of path, whether or not it exists yet: its directory resolved, then its
 * last component. NULL when the directory cannot be resolved. The caller frees it. */
char *cli_canonical(const char *path);
/* Refuses (with a message) paths[j] that names the same file as paths[i], i < j, by name or
 * through links; paths[0] is the input. NULL entries are skipped. */
bool cli_paths_distinct(const char *const *paths, int n);
/* path with ".k<k>" before its extension ("out.tif" -> "out.k5.tif"; "out" -> "out.k5"), or
 * NULL when path is NULL or out of memory. The caller frees it. */
char *cli_path_with_k(const char *path, int k);

/* Raises the soft limit of open files towards need (up to the hard limit) and reads the limit
 * then in force into *lim; false when it cannot be read. */
struct rlimit;
bool cli_raise_open_files(int64_t need, struct rlimit *lim);

int cmd_run(int argc, char **argv);
int cmd_fit(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
