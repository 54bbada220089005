/* Messages (the library's in the command's words), exit codes, option value parsing, signals
 * and the progress line. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

int cli_verbosity = 1;
volatile sig_atomic_t cli_signal = 0;

bool cli_job_agreed = false;

void cli_error(const char *fmt, ...)
{
    if (cli_job_agreed && cm_comm_rank() != 0) return; /* every rank has it: rank 0 says it */
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr); /* one line, whatever other threads print */
    fputs("chunkmeans: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

void cli_warn(const char *fmt, ...)
{
    if (cli_verbosity < 1 || cm_comm_rank() != 0) return;
    va_list ap;
    va_start(ap, fmt);
    flockfile(stderr);
    fputs("chunkmeans: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGHUP: return "SIGHUP";
    default: return "a signal";
    }
}

/* The command's words for one of the library's settings: its flag, with value. */
static void flag_of(const cm_about_t *a, char *buf, size_t size)
{
    switch (a->setting) {
    case CM_SETTING_K: snprintf(buf, size, "-k %lld", (long long)a->value); return;
    case CM_SETTING_COLORSPACE:
        snprintf(buf, size, "--colorspace %s", cm_colorspace_name((cm_colorspace_t)a->value));
        return;
    case CM_SETTING_ALGORITHM:
        snprintf(buf, size, "--algorithm %s", cm_algorithm_name((cm_algorithm_t)a->value));
        return;
    case CM_SETTING_FORMAT:
        snprintf(buf, size, "--format %s", a->value == CM_FORMAT_PALETTE ? "palette" : "rgb");
        return;
    case CM_SETTING_COMPRESSION:
        snprintf(buf, size, "--compression %s", cm_compression_name((int)a->value));
        return;
    case CM_SETTING_BIGTIFF:
        snprintf(buf, size, "--bigtiff %s",
                 a->value == CM_BIGTIFF_NEVER    ? "never"
                 : a->value == CM_BIGTIFF_ALWAYS ? "always"
                                                 : "auto");
        return;
    default: snprintf(buf, size, "the setting"); return;
    }
}

/* The command's advice after a message about a setting: the flag that would do. */
static void advice_of(const cm_about_t *a, char *buf, size_t size)
{
    switch (a->setting) {
    case CM_SETTING_MEMORY:
        snprintf(buf, size, " (use --memory %lluM or more)",
                 (unsigned long long)(((uint64_t)a->need + (1u << 20) - 1) >> 20));
        return;
    case CM_SETTING_TILE: snprintf(buf, size, " (use a larger --tile)"); return;
    case CM_SETTING_COMPRESSION:
        if (a->need > 0) {
            snprintf(buf, size, " (use --compression %s for exact colours)",
                     cm_compression_name((int)a->need));
            return;
        }
        break;
    case CM_SETTING_K:
        if (a->need > 0) {
            snprintf(buf, size, ": give -k %lld, or no -k", (long long)a->need);
            return;
        }
        break;
    default: break;
    }
    buf[0] = '\0';
}

void cli_words(const cm_ctx_t *ctx, char *buf, size_t size)
{
    const char *msg = ctx->msg;
    char flag[64] = "", advice[96];
    int at = 0, len = 0;
    if (ctx->about.setting != CM_SETTING_NONE && ctx->named_len > 0) {
        flag_of(&ctx->about, flag, sizeof flag);
        at = ctx->named_at;
        len = ctx->named_len;
    }
    advice_of(&ctx->about, advice, sizeof advice);
    snprintf(buf, size, "%.*s%s%s%s", at, msg, flag, msg + at + len, advice);
}

int cli_fail(const cm_ctx_t *ctx, int rc, const char *input)
{
    char words[2 * CM_MSG_MAX];
    cli_words(ctx, words, sizeof words);
    if (cli_signal) {
        /* The run stopped because of the signal, or failed as it arrived: either way the user
         * asked it to stop, and the shell convention is 128 + the signal's number. */
        if (rc != CM_ECANCELED && ctx->msg[0]) cli_error("%s", words);
        cli_error("interrupted by %s; nothing was written", signal_name((int)cli_signal));
        return 128 + cli_signal;
    }
    const char *msg = ctx->msg[0] ? words : cm_strerror(rc);
    if (rc == CM_EINPUT && input && !strstr(msg, input))
        cli_error("%s: %s", input, msg);
    else
        cli_error("%s", msg);
    switch (rc) {
    case CM_EUSAGE:
    case CM_EBUDGET: return CM_EXIT_USAGE;
    case CM_EINPUT: return CM_EXIT_INPUT;
    default: return CM_EXIT_RUNTIME;
    }
}

bool cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        cli_error("%s: expected a whole number from %lld to %lld, not '%s'", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_double(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        cli_error("%s: expected a number from %g to %g, not '%s'", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* The digits at *p as a number up to max, *p moved past them; -1 when there are none or the
 * number passes max. */
static long long digits_upto(const char **p, long long max)
{
    long long v = 0;
    const char *s = *p;
    for (; isdigit((unsigned char)*s); s++)
        if ((v = 10 * v + (*s - '0')) > max) return -1;
    if (s == *p) return -1;
    *p = s;
    return v;
}

bool cli_parse_shard(const char *opt, const char *s, int *index, int *count)
{
    const char *p = s;
    long long i = digits_upto(&p, CLI_SHARD_MAX), n = -1;
    if (i >= 0 && *p == '/') {
        p++;
        n = digits_upto(&p, CLI_SHARD_MAX);
    }
    if (i < 1 || n < i || *p) {
        cli_error("%s: expected I/N, whole numbers with 1 <= I <= N <= %d, not '%s'", opt,
                  CLI_SHARD_MAX, s);
        return false;
    }
    *index = (int)i;
    *count = (int)n;
    return true;
}

bool cli_parse_size(const char *opt, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    double mult = 1;
    if (!errno && end != s) {
        switch (*end) {
        case 'k':
        case 'K':
            mult = 0x1p10;
            end++;
            break;
        case 'm':
        case 'M':
            mult = 0x1p20;
            end++;
            break;
        case 'g':
        case 'G':
            mult = 0x1p30;
            end++;
            break;
        case 't':
        case 'T':
            mult = 0x1p40;
            end++;
            break;
        default: break;
        }
        if (mult > 1 && (!strcasecmp(end, "ib") || !strcasecmp(end, "b")))
            end += strlen(end);
        else if (mult == 1 && !strcasecmp(end, "b"))
            end++;
    }
    v *= mult;
    if (errno || end == s || *end || !isfinite(v) || v < 1 || v >= 0x1p62) {
        cli_error("%s: expected a size such as 512M or 2G, not '%s'", opt, s);
        return false;
    }
    *out = (size_t)v;
    return true;
}

bool cli_parse_int_list(const char *opt, const char *s, long long lo, long long hi, int max_n,
                        long long *out, int *n)
{
    int count = 0;
    const char *p = s;
    for (;;) {
        char *end = (char *)p;
        long long v = 0;
        errno = 0;
        if (isdigit((unsigned char)*p)) v = strtoll(p, &end, 10); /* no sign, no blanks */
        bool repeated = false;
        for (int i = 0; i < count; i++) repeated |= out[i] == v;
        if (errno || end == p || (*end && *end != ',') || v < lo || v > hi || repeated ||
            count == max_n) {
            cli_error("%s: expected up to %d different whole numbers from %lld to %lld, separated "
                      "by commas, not '%s'",
                      opt, max_n, lo, hi, s);
            return false;
        }
        out[count++] = v;
        if (!*end) break;
        p = end + 1;
    }
    *n = count;
    return true;
}

static void on_signal(int sig)
{
    if (!cli_signal) cli_signal = sig; /* the first one is the one reported */
}

void cli_join_job(void)
{
    if (cm_comm_rank() != 0 && !freopen("/dev/null", "w", stdout)) fclose(stdout);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cm_comm_on_term;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) sigaction(sigs[i], &sa, NULL);
}

void cli_catch_signals(void)
{
    if (cm_comm_size() > 1) return; /* cli_join_job's handlers stay */
    /* SA_RESTART: a signal must not fail a read or write with EINTR (libtiff does not retry),
     * which would be reported as a bad input or an I/O error instead of the interruption.
     * SA_RESETHAND: the first signal asks for a clean stop; a second one ends the process at
     * once, as users who press Ctrl-C twice expect (leaving at most a temporary file). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        /* A signal ignored when we started stays ignored: nohup's SIGHUP, and SIGINT in jobs
         * a shell started in the background, must not stop the run. */
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN) continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress_t *p, const char *mode, double px_per_chunk)
{
    bool on = !strcmp(mode, "always") || (!strcmp(mode, "auto") && isatty(STDERR_FILENO));
    *p = (cli_progress_t){.enabled = on && cli_verbosity > 0 && cm_comm_rank() == 0,
                          .px_per_chunk = px_per_chunk};
    static bool told;
    if (cm_comm_launched() && cm_comm_rank() == 0 && cli_verbosity >= 2 && !told) {
        told = true;
        fprintf(stderr, "chunkmeans: job of %d ranks, %d threads each (%d ranks on this node)\n",
                cm_comm_size(), cm_default_threads(), cm_comm_node_size());
    }
}

static void hms(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void cli_progress_update(void *user, const char *stage, int64_t done, int64_t total)
{
    cli_progress_t *p = user;
    if (!p->enabled) return;
    double now = cli_now();
    if (p->stage != stage) {
        p->stage = stage;
        p->stage_t0 = now;
        p->last_draw = 0;
    }
    if (done < total && now - p->last_draw < 0.2) return;
    p->last_draw = now;

    double elapsed = now - p->stage_t0, frac = total > 0 ? (double)done / (double)total : 1.0;
    char bar[21], eta[48] = "", rate[48] = "";
    int fill = (int)(frac * 20);
    for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
    bar[20] = '\0';
    /* the fit counts steps, its starts starts, every other stage chunks */
    const char *unit = !strcmp(stage, "fit")     ? "steps"
                       : !strcmp(stage, "start") ? "starts"
                                                 : "chunks";
    bool steps = strcmp(unit, "chunks") != 0;
    if (elapsed > 0.5 && done > 0) {
        double per_s = (double)done / elapsed;
        if (steps || p->px_per_chunk <= 0) /* chunks of images of several sizes: per chunk */
            snprintf(rate, sizeof rate, "%.0f %s/s", per_s, unit);
        else
            snprintf(rate, sizeof rate, "%.1f MPix/s", per_s * p->px_per_chunk / 1e6);
        if (done < total) {
            char t[32];
            hms(t, sizeof t, (double)(total - done) / per_s);
            snprintf(eta, sizeof eta, "ETA %s", t);
        }
    }
    flockfile(stderr); /* drawn is read under it by those who print over the line */
    fprintf(stderr, "\r%-6s [%s] %3d%% %lld/%lld %s  %s  %s\033[K", stage, bar, (int)(frac * 100),
            (long long)done, (long long)total, unit, rate, eta);
    fflush(stderr);
    p->drawn = true;
    funlockfile(stderr);
}

void cli_progress_end(cli_progress_t *p)
{
    if (p->enabled && p->drawn) fputs("\r\033[K", stderr);
    p->drawn = false;
}

void cli_opened(void *user, const char *path, const cm_image_info_t *in)
{
    cli_progress_t *p = user;
    p->n_px += (double)in->width * (double)in->height;
    p->n_chunks += (double)cm_grid_count(&in->grid);
    p->px_per_chunk = p->n_px / p->n_chunks;
    if (in->streamed && cli_verbosity >= 2)
        fprintf(stderr, "chunkmeans: %s: streaming its strips into a spill store\n", path);
}

void cli_print_palette(FILE *f, const cm_model_t *m, cm_stype_t stype, const char *indent)
{
    cm_palette_t *p = NULL;
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    if (cm_palette_make(m, stype, &p, &ctx) < 0) {
        cli_error("%s", ctx.msg);
        return;
    }
    for (int i = 0; i < p->k; i++) {
        const cm_palette_color_t *c = &p->colors[i];
        if (p->has_rgb) {
            char line[CM_PALETTE_LINE_MAX];
            cm_palette_line(c, line, sizeof line);
            fprintf(f, "%s%s\n", indent, line);
            continue;
        }
        /* More colour bands than a colour has: the centroid itself, in sample units. */
        fprintf(f, "%scolour %d:", indent, c->label);
        for (int b = 0; b < m->d; b++)
            fprintf(f, " %.6g", m->centroids[(size_t)c->label * m->d + b]);
        fprintf(f, " %lld %.2f%%\n", (long long)c->count, 100.0 * c->share);
    }
    cm_palette_free(p);
}

void cli_print_colors(const cm_model_t *m, cm_stype_t stype)
{
    cli_print_palette(stderr, m, stype, "  ");
}

void cli_warn_of(void *user, const cm_ctx_t *warning)
{
    char words[2 * CM_MSG_MAX];
    cli_words(warning, words, sizeof words);
    if (warning->code != CM_OK)
        cli_error("%s", words); /* a failure after the one the call returns */
    else
        cli_warn("%s", words);
}
