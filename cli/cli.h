/* What the command's files share: option values, messages, exit codes and the progress
 * display. Holds no algorithm: everything it does goes through the library's headers. */
#ifndef CM_CLI_H
#define CM_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cm_base.h"
#include "cm_engine.h"

enum { CM_EXIT_OK = 0, CM_EXIT_RUNTIME = 1, CM_EXIT_USAGE = 2, CM_EXIT_INPUT = 3 };

/* Verbosity: 0 = errors only (-q), 1 = summary (default), 2 = detail (-v). */
extern int cli_verbosity;

/* Prints "chunkmeans: message" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "chunkmeans: warning: message" on stderr unless -q. */
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the context's message and returns the exit code for an error code. The message of a
 * bad input that does not name a file is prefixed with `input`. */
int cli_fail(const cm_ctx_t *ctx, int rc, const char *input);

/* Parsers for option values; each prints its own message and returns false on a bad value. */
bool cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out);
bool cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out);
/* "2,5,10": 1 to max_n different whole numbers from lo to hi, in the order given, into out
 * (max_n entries) and *n. */
bool cli_parse_int_list(const char *opt, const char *s, long long lo, long long hi, int max_n,
                        long long *out, int *n);
/* "512M", "2G", "1.5GiB", "65536": bytes, binary multiples. */
bool cli_parse_size(const char *opt, const char *s, size_t *out);

/* Ctrl-C and SIGTERM set this flag (the signal number) so the run stops cleanly. */
extern volatile sig_atomic_t cli_signal;
void cli_catch_signals(void);

/* The progress display on stderr. */
typedef struct cli_progress {
    bool enabled;
    double px_per_chunk; /* for the pixel rate */
    const char *stage;
    double stage_t0, last_draw;
    bool drawn;
} cli_progress_t;

/* mode: "auto" (a terminal), "always", "never". */
void cli_progress_init(cli_progress_t *p, const char *mode, double px_per_chunk);
/* A cm_stage_fn: user is the cli_progress_t. */
void cli_progress_update(void *user, const char *stage, int64_t done, int64_t total);
/* Clears the line. */
void cli_progress_end(cli_progress_t *p);

double cli_now(void);

/* A cm_source_t's read() over an open cm_image_t (self). */
int cli_read_chunk(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx);

int cmd_run(int argc, char **argv);
int cmd_info(int argc, char **argv);

#endif
