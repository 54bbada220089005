/* The task-graph executor. One mutex guards the ready queues and the byte count; workers
 * (an OpenMP team) take the next admissible task, run it unlocked, then release its
 * dependents. Tasks never see the lock. Also hands each run's events to its trace. */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cm_graph.h"
#include "scheduler_internal.h"

typedef struct node {
    cm_task_fn fn;
    void *arg;
    const char *kind;
    size_t work_bytes, out_bytes;
    int64_t weight;
    int waiting_deps;      /* dependencies not finished yet */
    int open_consumers;    /* dependents not finished yet: out_bytes live until 0 */
    int first_dep, n_deps; /* slice of g->deps */
    int first_out, n_out;  /* slice of g->dependents (built by run) */
    bool finished;
} node_t;

/* A min-heap of task ids. */
typedef struct heap {
    int *v;
    int n;
} heap_t;

struct cm_graph {
    node_t *nodes;
    int n_nodes, cap_nodes;
    int *deps;
    int n_edges, cap_edges;
    int *dependents;

    /* run state, guarded by mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    heap_t ready_bytes;    /* ready tasks that hold bytes: started strictly by id */
    int *byte_order;       /* ids of the tasks that hold bytes, ascending */
    int n_byte, next_byte; /* byte_order[next_byte] is the next one allowed to start */
    heap_t ready_free;     /* ready tasks that hold none: started first, whenever ready */
    size_t in_flight, budget, peak;
    int n_running, n_done;
    int64_t weight_done, weight_total;
    bool failed, ran;

    /* tracing: one event per task, each filled by the worker that runs the task (no lock),
     * handed to the trace when the run ends; NULL when the run is not traced */
    cm__trace_event_t *trace_events;
    int64_t trace_origin_ns;
};

static void heap_push(heap_t *h, int id)
{
    int i = h->n++;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (h->v[parent] <= id) break;
        h->v[i] = h->v[parent];
        i = parent;
    }
    h->v[i] = id;
}

static int heap_pop(heap_t *h)
{
    int top = h->v[0], last = h->v[--h->n], i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1] < h->v[c]) c++;
        if (last <= h->v[c]) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = last;
    return top;
}

cm_graph_t *cm_graph_create(void)
{
    return calloc(1, sizeof(cm_graph_t));
}

void cm_graph_free(cm_graph_t *g)
{
    if (!g) return;
    free(g->nodes);
    free(g->deps);
    free(g->dependents);
    free(g->byte_order);
    free(g->ready_bytes.v);
    free(g->ready_free.v);
    free(g->trace_events);
    free(g);
}

int cm__graph_size(const cm_graph_t *g)
{
    return g->n_nodes;
}

size_t cm__graph_peak_bytes(const cm_graph_t *g)
{
    return g->peak;
}

int cm__graph_done_count(const cm_graph_t *g)
{
    return g->n_done;
}

int cm_default_threads(void)
{
    int n = omp_get_max_threads(); /* OMP_NUM_THREADS, else the cores this process may use */
    return n > 0 ? n : 1;
}

static bool grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap) return true;
    int ncap = *cap ? *cap : 64;
    while (ncap < need) {
        if (ncap > INT32_MAX / 2) return false;
        ncap *= 2;
    }
    void *np = realloc(*p, (size_t)ncap * elem);
    if (!np) return false;
    *p = np;
    *cap = ncap;
    return true;
}

int cm_graph_add(cm_graph_t *g, const cm_task_t *task, int *id, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, g->ran, CM_EUSAGE, "task graph: tasks added after the run");
    CM_FAIL_IF(ctx, task->n_deps < 0 || (task->n_deps > 0 && !task->deps), CM_EUSAGE,
               "task graph: bad dependency list");
    for (int i = 0; i < task->n_deps; i++)
        CM_FAIL_IF(ctx, task->deps[i] < 0 || task->deps[i] >= g->n_nodes, CM_EUSAGE,
                   "task graph: task %d depends on unknown task %d", g->n_nodes, task->deps[i]);
    size_t need;
    CM_FAIL_IF(ctx, !cm__add_size(task->work_bytes, task->out_bytes, &need), CM_EUSAGE,
               "task graph: task bytes overflow");
    if (!grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof(node_t)) ||
        g->n_edges > INT32_MAX - task->n_deps ||
        !grow((void **)&g->deps, &g->cap_edges, g->n_edges + task->n_deps, sizeof(int)))
        return cm_fail(ctx, CM_ENOMEM, "task graph: out of memory at %d tasks", g->n_nodes);

    node_t *n = &g->nodes[g->n_nodes];
    *n = (node_t){.fn = task->fn,
                  .arg = task->arg,
                  .kind = task->kind,
                  .work_bytes = task->work_bytes,
                  .out_bytes = task->out_bytes,
                  .weight = task->weight,
                  .first_dep = g->n_edges,
                  .n_deps = task->n_deps};
    if (task->n_deps) memcpy(g->deps + g->n_edges, task->deps, sizeof(int) * (size_t)task->n_deps);
    g->n_edges += task->n_deps;
    *id = g->n_nodes++;
    return 0;
}

static size_t need(const node_t *t)
{
    return t->work_bytes + t->out_bytes;
}

/* The bytes in flight at the peak of the schedule that runs one task at a time in id order:
 * the smallest budget with which the run cannot stall (see cm_graph_run). Uses open_consumers,
 * which prepare sets up again afterwards. */
static size_t sequential_peak(cm_graph_t *g)
{
    size_t held = 0, peak = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        node_t *t = &g->nodes[i];
        if (held + need(t) > peak) peak = held + need(t);
        held += t->out_bytes;
        for (int e = 0; e < t->n_deps; e++) {
            node_t *d = &g->nodes[g->deps[t->first_dep + e]];
            if (--d->open_consumers == 0) held -= d->out_bytes;
        }
        if (t->open_consumers == 0) held -= t->out_bytes;
    }
    return peak;
}

/* Builds the dependents lists (CSR), checks the budget and fills the initial ready queues. */
static int prepare(cm_graph_t *g, size_t budget, cm_ctx_t *ctx)
{
    size_t n = (size_t)g->n_nodes + 1;
    g->dependents = malloc(sizeof(int) * (g->n_edges ? (size_t)g->n_edges : 1));
    g->ready_bytes.v = malloc(sizeof(int) * n);
    g->ready_free.v = malloc(sizeof(int) * n);
    g->byte_order = malloc(sizeof(int) * n);
    if (!g->dependents || !g->ready_bytes.v || !g->ready_free.v || !g->byte_order)
        return cm_fail(ctx, CM_ENOMEM, "task graph: out of memory");

    for (int i = 0; i < g->n_nodes; i++) {
        node_t *t = &g->nodes[i];
        t->waiting_deps = t->n_deps;
        for (int e = 0; e < t->n_deps; e++) g->nodes[g->deps[t->first_dep + e]].n_out++;
    }
    int pos = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        g->nodes[i].first_out = pos;
        pos += g->nodes[i].n_out;
        g->nodes[i].open_consumers = g->nodes[i].n_out;
        g->nodes[i].n_out = 0;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        node_t *t = &g->nodes[i];
        for (int e = 0; e < t->n_deps; e++) {
            node_t *d = &g->nodes[g->deps[t->first_dep + e]];
            g->dependents[d->first_out + d->n_out++] = i;
        }
        g->weight_total += t->weight;
        if (need(t)) g->byte_order[g->n_byte++] = i;
    }
    size_t peak = sequential_peak(g);
    for (int i = 0; i < g->n_nodes; i++) g->nodes[i].open_consumers = g->nodes[i].n_out;
    if (budget && peak > budget)
        return cm_fail_about(ctx, CM_EBUDGET,
                             (cm_about_t){CM_SETTING_MEMORY, (int64_t)budget, (int64_t)peak},
                             "memory budget of %zu bytes is too small: the work needs %zu bytes "
                             "at once",
                             budget, peak);
    for (int i = 0; i < g->n_nodes; i++) {
        if (g->nodes[i].n_deps) continue;
        node_t *t = &g->nodes[i];
        heap_push(need(t) ? &g->ready_bytes : &g->ready_free, i);
    }
    g->budget = budget ? budget : SIZE_MAX;
    return 0;
}

static int pick(cm_graph_t *g)
{
    /* Tasks that hold no bytes go first: they are often consumers (a writer) whose end
     * releases a producer's buffer, so running them early keeps memory low. */
    if (g->ready_free.n) return heap_pop(&g->ready_free);
    /* The next task holding bytes in id order starts when it is ready and fits; no other
     * task holding bytes may overtake it. */
    if (g->ready_bytes.n && g->ready_bytes.v[0] == g->byte_order[g->next_byte]) {
        size_t n = need(&g->nodes[g->ready_bytes.v[0]]);
        if (n <= g->budget - g->in_flight) {
            g->in_flight += n;
            if (g->in_flight > g->peak) g->peak = g->in_flight;
            g->next_byte++;
            return heap_pop(&g->ready_bytes);
        }
    }
    return -1;
}

static void release_out(cm_graph_t *g, node_t *t)
{
    g->in_flight -= t->out_bytes;
}

/* Called with the lock held after task id ran successfully. */
static void finish(cm_graph_t *g, int id, const cm_run_opts_t *opts)
{
    node_t *t = &g->nodes[id];
    t->finished = true;
    g->n_done++;
    g->in_flight -= t->work_bytes;
    if (t->open_consumers == 0) release_out(g, t);
    for (int e = 0; e < t->n_deps; e++) {
        node_t *d = &g->nodes[g->deps[t->first_dep + e]];
        if (--d->open_consumers == 0 && d->finished) release_out(g, d);
    }
    for (int e = 0; e < t->n_out; e++) {
        int c = g->dependents[t->first_out + e];
        node_t *ct = &g->nodes[c];
        if (--ct->waiting_deps == 0) heap_push(need(ct) ? &g->ready_bytes : &g->ready_free, c);
    }
    if (t->weight && opts->progress) {
        g->weight_done += t->weight;
        opts->progress(opts->progress_user, g->weight_done, g->weight_total);
    }
}

static bool cancelled(const cm_run_opts_t *opts)
{
    return opts->cancel && *opts->cancel;
}

static void wait_for_work(cm_graph_t *g, const cm_run_opts_t *opts)
{
    if (!opts->cancel) {
        pthread_cond_wait(&g->cv, &g->mu);
        return;
    }
    /* A signal handler cannot wake a condition variable: poll the flag. */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 50 * 1000 * 1000;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&g->cv, &g->mu, &ts);
}

/* Runs task id and fills its trace event. Touches only that event: no lock needed. */
static int run_traced(cm_graph_t *g, int id, int worker, cm_ctx_t *ctx)
{
    const node_t *t = &g->nodes[id];
    int64_t start_ns = cm__trace_now_ns();
    int rc = t->fn(t->arg, worker, ctx);
    int64_t end_ns = cm__trace_now_ns();
    cm__trace_event_t *e = &g->trace_events[id];
    e->start_us = (double)(start_ns - g->trace_origin_ns) / 1e3;
    e->end_us = (double)(end_ns - g->trace_origin_ns) / 1e3;
    e->worker = worker;
    e->failed = rc < 0;
    return rc;
}

static void worker_loop(cm_graph_t *g, const cm_run_opts_t *opts, cm_ctx_t *ctx, int worker)
{
    pthread_mutex_lock(&g->mu);
    for (;;) {
        if (!g->failed && cancelled(opts)) {
            g->failed = true;
            cm_fail(ctx, CM_ECANCELED, "interrupted");
            pthread_cond_broadcast(&g->cv);
        }
        if (g->failed || g->n_done == g->n_nodes) break;
        int id = pick(g);
        if (id < 0 && g->n_running == 0) {
            /* Nothing runs and nothing can start. prepare() refuses budgets for which this
             * can happen, so it is a bug; fail rather than hang. */
            g->failed = true;
            cm_fail(ctx, CM_EINTERNAL, "task graph stalled: %zu bytes held, budget %zu",
                    g->in_flight, g->budget);
            pthread_cond_broadcast(&g->cv);
            continue;
        }
        if (id < 0) {
            wait_for_work(g, opts);
            continue;
        }
        g->n_running++;
        pthread_mutex_unlock(&g->mu);

        node_t *t = &g->nodes[id];
        int rc = g->trace_events ? run_traced(g, id, worker, ctx) : t->fn(t->arg, worker, ctx);

        pthread_mutex_lock(&g->mu);
        g->n_running--;
        if (rc < 0) {
            if (!g->failed) cm_fail(ctx, rc, "task %d failed: %s", id, cm_strerror(rc));
            g->failed = true;
        } else {
            finish(g, id, opts);
        }
        pthread_cond_broadcast(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
}

static const char *kind_name(const node_t *t)
{
    return t->kind ? t->kind : "task";
}

/* Opens the run in the trace and prepares one event per task, none of them run yet. */
static int trace_begin(cm_graph_t *g, const cm_run_opts_t *opts, int *run, cm_ctx_t *ctx)
{
    g->trace_events = malloc(sizeof(cm__trace_event_t) * (g->n_nodes ? (size_t)g->n_nodes : 1));
    if (!g->trace_events) return cm_fail(ctx, CM_ENOMEM, "trace: out of memory");
    const char *stage = NULL;
    int rc = cm__trace_begin_run(opts->trace, opts->stage, g->n_nodes, run, &stage, ctx);
    if (rc < 0) {
        free(g->trace_events);
        g->trace_events = NULL;
        return rc;
    }
    g->trace_origin_ns = cm__trace_origin_ns(opts->trace);
    for (int i = 0; i < g->n_nodes; i++) {
        const node_t *t = &g->nodes[i];
        g->trace_events[i] = (cm__trace_event_t){.kind = kind_name(t),
                                                 .stage = stage,
                                                 .bytes = need(t),
                                                 .task = i,
                                                 .run = *run,
                                                 .worker = -1};
    }
    return 0;
}

/* Hands the run's events to the trace; called once the workers have joined. */
static void trace_end(cm_graph_t *g, cm_trace_t *trace, int run, int n_threads)
{
    cm__trace_end_run(trace, run, g->trace_events, g->n_nodes, n_threads, g->peak);
    free(g->trace_events);
    g->trace_events = NULL;
}

int cm_graph_run(cm_graph_t *g, const cm_run_opts_t *opts, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, g->ran, CM_EUSAGE, "task graph: a graph runs once");
    g->ran = true;
    int run = -1, n_threads = 0;
    if (opts->trace) CM_TRY(trace_begin(g, opts, &run, ctx));

    int rc = prepare(g, opts->budget_bytes, ctx);
    if (rc == 0 && g->n_nodes > 0) {
        n_threads = opts->n_threads > 0 ? opts->n_threads : cm_default_threads();
        if (n_threads > g->n_nodes) n_threads = g->n_nodes;
        pthread_mutex_init(&g->mu, NULL);
        pthread_cond_init(&g->cv, NULL);
#pragma omp parallel num_threads(n_threads)
        worker_loop(g, opts, ctx, omp_get_thread_num());
        pthread_cond_destroy(&g->cv);
        pthread_mutex_destroy(&g->mu);
        if (g->failed) {
            if (ctx->code == CM_OK) cm_fail(ctx, CM_EINTERNAL, "task graph failed");
            rc = ctx->code;
        }
    }
    if (opts->trace) trace_end(g, opts->trace, run, n_threads);
    return rc;
}

void cm__graph_task(const cm_graph_t *g, int id, cm__task_view_t *v)
{
    const node_t *t = &g->nodes[id];
    *v = (cm__task_view_t){.kind = kind_name(t),
                           .bytes = need(t),
                           .deps = g->deps + t->first_dep,
                           .n_deps = t->n_deps};
}

void cm_graph_release_threads(void)
{
    omp_pause_resource_all(omp_pause_hard);
}
