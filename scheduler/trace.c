/* The trace of task times: runs and their events, stage summaries, and the Chrome trace-event
 * JSON (through jansson). Fed by graph.c once per run; never sees a task's work or its data. */
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scheduler_internal.h"

typedef struct run {
    int stage;                /* index in stages */
    int n_tasks;              /* tasks in the graph: events reserved while the run is open */
    int n_threads;            /* workers, once closed */
    int64_t ran;              /* events recorded */
    double first_us, last_us; /* first start and last end of its events */
    size_t peak_bytes;
    bool open;
} run_t;

struct cm_trace {
    pthread_mutex_t mu; /* guards everything below while runs open and close */
    int64_t origin_ns;
    cm__trace_event_t *events;
    size_t n_events, cap_events, reserved; /* reserved: room promised to open runs */
    run_t *runs;
    int n_runs, cap_runs;
    char **stages; /* copies of the stage names, each allocated once: pointers stay valid */
    int n_stages, cap_stages;
};

static const char unnamed_stage[] = "graph";

int64_t cm__trace_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t cm__trace_origin_ns(const cm_trace_t *t)
{
    return t->origin_ns;
}

cm_trace_t *cm_trace_create(void)
{
    cm_trace_t *t = calloc(1, sizeof(cm_trace_t));
    if (!t) return NULL;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t);
        return NULL;
    }
    t->origin_ns = cm__trace_now_ns();
    return t;
}

void cm_trace_free(cm_trace_t *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_stages; i++) free(t->stages[i]);
    free(t->stages);
    free(t->runs);
    free(t->events);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

size_t cm__trace_events(const cm_trace_t *t)
{
    return t->n_events;
}

const cm__trace_event_t *cm__trace_event(const cm_trace_t *t, size_t i)
{
    return i < t->n_events ? &t->events[i] : NULL;
}

int cm__trace_runs(const cm_trace_t *t)
{
    return t->n_runs;
}

/* Makes room for `need` elements of size elem in *p (capacity *cap), doubling. */
static bool reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return true;
    size_t ncap = *cap ? *cap : 256, bytes;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2) return false;
        ncap *= 2;
    }
    if (!cm__mul_size(ncap, elem, &bytes)) return false;
    void *np = realloc(*p, bytes);
    if (!np) return false;
    *p = np;
    *cap = ncap;
    return true;
}

static bool reserve_int(void **p, int *cap, int need, size_t elem)
{
    size_t c = (size_t)*cap;
    if (need == INT32_MAX || !reserve(p, &c, (size_t)need, elem)) return false;
    *cap = c > INT32_MAX ? INT32_MAX : (int)c;
    return true;
}

/* The index of the stage called name, copied in on first use; -1 when out of memory.
 * Called with the lock held. */
static int stage_index(cm_trace_t *t, const char *name)
{
    for (int i = 0; i < t->n_stages; i++)
        if (strcmp(t->stages[i], name) == 0) return i;
    if (!reserve_int((void **)&t->stages, &t->cap_stages, t->n_stages + 1, sizeof(char *)))
        return -1;
    char *copy = strdup(name);
    if (!copy) return -1;
    t->stages[t->n_stages] = copy;
    return t->n_stages++;
}

int cm__trace_begin_run(cm_trace_t *t, const char *stage, int n_tasks, int *run,
                        const char **stage_out, cm_ctx_t *ctx)
{
    assert(n_tasks >= 0);
    pthread_mutex_lock(&t->mu);
    int s = stage_index(t, stage ? stage : unnamed_stage);
    bool ok = s >= 0 &&
              reserve_int((void **)&t->runs, &t->cap_runs, t->n_runs + 1, sizeof(run_t)) &&
              reserve((void **)&t->events, &t->cap_events,
                      t->n_events + t->reserved + (size_t)n_tasks, sizeof(cm__trace_event_t));
    if (ok) {
        t->reserved += (size_t)n_tasks;
        *run = t->n_runs;
        *stage_out = t->stages[s];
        t->runs[t->n_runs++] = (run_t){.stage = s, .n_tasks = n_tasks, .open = true};
    }
    size_t n_events = t->n_events;
    pthread_mutex_unlock(&t->mu);
    if (!ok) return cm_fail(ctx, CM_ENOMEM, "trace: out of memory at %zu events", n_events);
    return 0;
}

void cm__trace_end_run(cm_trace_t *t, int run, const cm__trace_event_t *events, int n_tasks,
                       int n_threads, size_t peak_bytes)
{
    pthread_mutex_lock(&t->mu);
    run_t *r = &t->runs[run];
    assert(r->open && r->n_tasks == n_tasks && t->reserved >= (size_t)n_tasks);
    for (int i = 0; i < n_tasks; i++) {
        const cm__trace_event_t *e = &events[i];
        if (e->worker < 0) continue;
        if (r->ran == 0 || e->start_us < r->first_us) r->first_us = e->start_us;
        if (r->ran == 0 || e->end_us > r->last_us) r->last_us = e->end_us;
        r->ran++;
        t->events[t->n_events++] = *e;
    }
    t->reserved -= (size_t)n_tasks;
    r->n_threads = n_threads;
    r->peak_bytes = peak_bytes;
    r->open = false;
    pthread_mutex_unlock(&t->mu);
}

int cm_trace_stages(const cm_trace_t *t, cm_trace_stage_t *out, int max)
{
    int n = t->n_stages < max ? t->n_stages : max;
    for (int i = 0; i < n; i++) out[i] = (cm_trace_stage_t){.stage = t->stages[i]};
    for (int i = 0; i < t->n_runs; i++) {
        const run_t *r = &t->runs[i];
        if (r->stage >= n) continue;
        cm_trace_stage_t *s = &out[r->stage];
        s->runs++;
        s->tasks += r->ran;
        if (r->ran) s->seconds += (r->last_us - r->first_us) * 1e-6;
        if (r->peak_bytes > s->peak_bytes) s->peak_bytes = r->peak_bytes;
    }
    return t->n_stages;
}

/* ---- Chrome trace-event JSON ------------------------------------------------------------ */

/* Dumps one event object to f, preceded by a separator unless it is the first; consumes obj.
 * Returns false when obj could not be built (NULL) or written. */
static bool put_event(json_t *obj, bool first, FILE *f)
{
    bool ok = obj && (first || fputs(",\n", f) != EOF) &&
              json_dumpf(obj, f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) == 0;
    json_decref(obj);
    return ok;
}

static json_t *thread_name_event(int worker)
{
    char name[32];
    snprintf(name, sizeof name, "worker %d", worker);
    return json_pack("{s:s, s:s, s:i, s:i, s:{s:s}}", "name", "thread_name", "ph", "M", "pid", 1,
                     "tid", worker, "args", "name", name);
}

static json_t *task_event(const cm__trace_event_t *e)
{
    json_t *args =
        json_pack("{s:I, s:i, s:i}", "bytes", (json_int_t)e->bytes, "task", e->task, "run", e->run);
    if (args && e->failed && json_object_set_new(args, "failed", json_true()) != 0) {
        json_decref(args);
        return NULL;
    }
    /* "o" steals args, also when the pack fails. */
    return json_pack("{s:s, s:s, s:s, s:f, s:f, s:i, s:i, s:o}", "name", e->kind, "cat", e->stage,
                     "ph", "X", "ts", e->start_us, "dur", e->end_us - e->start_us, "pid", 1, "tid",
                     e->worker, "args", args);
}

int cm_trace_write_json(const cm_trace_t *t, FILE *f, cm_ctx_t *ctx)
{
    int n_workers = 0;
    for (int i = 0; i < t->n_runs; i++)
        if (t->runs[i].n_threads > n_workers) n_workers = t->runs[i].n_threads;

    errno = 0;
    bool ok = fputs("{\"traceEvents\":[\n", f) != EOF;
    bool first = true;
    for (int w = 0; ok && w < n_workers; w++, first = false)
        ok = put_event(thread_name_event(w), first, f);
    for (size_t i = 0; ok && i < t->n_events; i++, first = false) {
        json_t *obj = task_event(&t->events[i]);
        if (!obj)
            return cm_fail(ctx, CM_ENOMEM,
                           "trace: cannot build event %zu (out of memory, or a kind or stage "
                           "name that is not UTF-8)",
                           i);
        ok = put_event(obj, first, f);
    }
    ok = ok && fputs("\n],\n\"displayTimeUnit\":\"ms\"}\n", f) != EOF && fflush(f) == 0 &&
         !ferror(f);
    if (!ok)
        return cm_fail(ctx, CM_EIO, "trace: write failed: %s",
                       errno ? strerror(errno) : "output error");
    return 0;
}
