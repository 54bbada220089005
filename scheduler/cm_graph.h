/* A task graph and its executor: tasks with dependencies, a ready queue, OpenMP workers and
 * admission control against a byte budget; and a trace of the tasks' times. Knows tasks and
 * bytes, never pixels or files. */
#ifndef CM_GRAPH_H
#define CM_GRAPH_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "cm_base.h"

typedef struct cm_graph cm_graph_t;
typedef struct cm_trace cm_trace_t;

/* A task's work. `worker` is the running thread's index in [0, n_threads): per-worker state
 * (a file handle, a scratch buffer) can be indexed by it without locking. Returns 0 or a
 * negative CM_E* code, with the message recorded in ctx; a failure cancels the graph. */
typedef int (*cm_task_fn)(void *arg, int worker, cm_ctx_t *ctx);

/* A task as added to a graph.
 * - work_bytes are held while the task runs (a decoded chunk it frees before returning);
 * - out_bytes are held from its start until it and every task that depends on it have
 *   finished (a buffer it hands to its dependents, who free it);
 * - weight counts toward progress when the task finishes (pixels, say; 0 for none);
 * - kind names what the task does ("read", "remap", "write", "step") in traces and in the
 *   graph's DOT form; a string that outlives the graph and every trace of it (a literal);
 *   NULL shows as "task". */
typedef struct cm_task {
    cm_task_fn fn;
    void *arg;
    size_t work_bytes;
    size_t out_bytes;
    int64_t weight;
    const int *deps; /* ids of tasks already added to the graph */
    int n_deps;
    const char *kind;
} cm_task_t;

typedef void (*cm_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct cm_run_opts {
    int n_threads;           /* workers; <= 0 means one per core */
    size_t budget_bytes;     /* bytes in flight never exceed this; 0 means no limit */
    cm_progress_fn progress; /* called after each weighted task, serialised; may be NULL */
    void *progress_user;
    const volatile sig_atomic_t *cancel; /* non-zero: the run stops with CM_ECANCELED */
    cm_trace_t *trace;                   /* records every task that runs; NULL: no tracing */
    const char *stage;                   /* the run's name in the trace ("fit"); NULL: "graph" */
} cm_run_opts_t;

/* Creates an empty graph; NULL when out of memory. */
cm_graph_t *cm_graph_create(void);

/* Frees the graph; accepts NULL. Does not touch the tasks' arguments. */
void cm_graph_free(cm_graph_t *g);

/* Adds a task and stores its id in *id (ids count up from 0 in the order tasks are added).
 * Dependencies must name tasks added before, so every graph is acyclic. Not thread-safe:
 * build the graph, then run it. Returns 0, CM_EUSAGE for a bad dependency or CM_ENOMEM. */
int cm_graph_add(cm_graph_t *g, const cm_task_t *task, int *id, cm_ctx_t *ctx);

/* Runs every task once its dependencies have finished, on opts->n_threads workers.
 * Budget: tasks that hold bytes start in id order, each when it is ready and fits (none
 * overtakes another); tasks that hold none start as soon as they are ready, before any task
 * that holds bytes (they are often consumers whose end frees memory). So a graph that
 * fits the budget when its tasks run one at a time in id order never stalls on it, at any
 * thread count; a graph that does not is refused up front with CM_EBUDGET, a message giving
 * the bytes it needs, and the smallest budget that works in ctx->about.need. Build graphs with each
 * consumer soon after its producers, and let consumers that only hand data on (a writer)
 * hold no bytes, so that producers run in parallel.
 * On a task's failure (or cancel) no new task starts, running ones finish, and the first
 * error is returned with its message in ctx. A graph runs once. */
int cm_graph_run(cm_graph_t *g, const cm_run_opts_t *opts, cm_ctx_t *ctx);

/* Ends the worker threads that graph runs keep for the next run (they start again when
 * needed). Call it before exit, so that no thread is alive whose memory a leak checker
 * would count as lost. */
void cm_graph_release_threads(void);

/* Worker threads used when n_threads <= 0: the number of cores OpenMP reports. */
int cm_default_threads(void);

/* Writes the graph in Graphviz DOT form to f: one node per task labelled with its kind, id
 * and bytes (work + out), one edge per dependency, from the dependency to its dependent.
 * Callable before or after the run, not during it. Returns 0, or CM_EIO with a message. */
int cm_graph_write_dot(const cm_graph_t *g, FILE *f, cm_ctx_t *ctx);

/* ---- trace ------------------------------------------------------------------------------
 * A trace records, for every task of every run given it in cm_run_opts_t, when the task ran
 * (monotonic clock, microseconds since cm_trace_create), on which worker, its kind and bytes.
 * Each cm_graph_run with a trace gets the next run number (from 0) and its stage name.
 * Tracing costs a clock read at each end of a task and a copy of the run's events when the run
 * ends; it takes no lock while tasks run. Graphs running at the same time may share a trace;
 * the functions that read it must not be called while one of its runs is in progress. */

/* What the runs with one stage name add up to. */
typedef struct cm_trace_stage {
    const char *stage; /* owned by the trace */
    double seconds;    /* sum over its runs of first task start to last task end */
    int64_t tasks;     /* tasks that ran */
    size_t peak_bytes; /* the most bytes in flight at once in any of its runs */
    int runs;          /* how many runs had this name */
} cm_trace_stage_t;

/* Creates an empty trace whose clock starts now; NULL when out of memory. */
cm_trace_t *cm_trace_create(void);

/* Frees the trace and the stage names it copied; accepts NULL. No run may be using it. */
void cm_trace_free(cm_trace_t *t);

/* Fills out[0 .. max) with one summary per stage name, in the order the names first ran,
 * and returns the number of stage names (which may exceed max; out may be NULL if max is 0). */
int cm_trace_stages(const cm_trace_t *t, cm_trace_stage_t *out, int max);

/* Writes the trace to f in the Chrome trace-event format (chrome://tracing, ui.perfetto.dev):
 * {"traceEvents": [...], "displayTimeUnit": "ms"}, one complete event ("ph": "X") per task
 * with name = kind, cat = stage, tid = worker, ts and dur in microseconds and args {bytes,
 * task, run} (and failed: true for a task that failed), after one "M" event per worker
 * naming its thread "worker N". Events are written one at a time, so memory stays flat.
 * Returns 0, CM_ENOMEM or CM_EIO with a message in ctx. */
int cm_trace_write_json(const cm_trace_t *t, FILE *f, cm_ctx_t *ctx);

#endif
