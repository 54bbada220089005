/* What the scheduler's files share: opening a run in a trace and handing it the run's events
 * (graph.c, trace.c), a look at a task for the DOT writer (dot.c), and the figures the tests
 * read. Not part of the library's interface. */
#ifndef CM_SCHEDULER_INTERNAL_H
#define CM_SCHEDULER_INTERNAL_H

#include "base_internal.h"
#include "cm_graph.h"

/* One task as it ran. Tasks that never started (after a failure or a cancel) have none. */
typedef struct cm__trace_event {
    double start_us, end_us; /* since cm_trace_create; end_us >= start_us */
    const char *kind;        /* the task's kind, "task" when it had none */
    const char *stage;       /* the run's stage name, "graph" when it had none */
    size_t bytes;            /* work_bytes + out_bytes as declared */
    int task;                /* its id in its graph */
    int run;                 /* the run number */
    int worker;              /* the worker that ran it, in [0, the run's threads) */
    bool failed;             /* the task returned an error */
} cm__trace_event_t;

/* The monotonic clock in nanoseconds. */
int64_t cm__trace_now_ns(void);

/* The trace's origin on that clock: event times are (now - origin) / 1000 microseconds. */
int64_t cm__trace_origin_ns(const cm_trace_t *t);

/* Opens a run of n_tasks tasks: gives it the next run number in *run and the trace's copy of
 * its stage name in *stage_out, and reserves room for its events so that closing it cannot
 * fail. Thread-safe. Returns 0 or CM_ENOMEM with a message. */
int cm__trace_begin_run(cm_trace_t *t, const char *stage, int n_tasks, int *run,
                        const char **stage_out, cm_ctx_t *ctx);

/* Closes run `run` opened for n_tasks: copies the events whose worker is >= 0 (the tasks
 * that ran) and records the run's thread count and peak bytes. Thread-safe; cannot fail. */
void cm__trace_end_run(cm_trace_t *t, int run, const cm__trace_event_t *events, int n_tasks,
                       int n_threads, size_t peak_bytes);

/* What the DOT writer needs of task id: its kind ("task" when it has none), its bytes (work +
 * out) and its dependencies (valid while the graph is). */
typedef struct cm__task_view {
    const char *kind;
    size_t bytes;
    const int *deps;
    int n_deps;
} cm__task_view_t;
void cm__graph_task(const cm_graph_t *g, int id, cm__task_view_t *v);

/* ---- a graph's and a trace's figures, for the tests ---- */

/* Number of tasks added so far. */
int cm__graph_size(const cm_graph_t *g);

/* After a run: the largest number of bytes that were in flight at once. */
size_t cm__graph_peak_bytes(const cm_graph_t *g);

/* After a run: how many tasks ran to completion (all of them, unless it failed). */
int cm__graph_done_count(const cm_graph_t *g);

/* Number of events (tasks that ran) recorded so far. */
size_t cm__trace_events(const cm_trace_t *t);

/* The i-th event (runs in the order they ended, tasks by id within a run), or NULL when
 * i >= cm__trace_events(t). The pointer is valid until another run with the trace starts. */
const cm__trace_event_t *cm__trace_event(const cm_trace_t *t, size_t i);

/* Number of runs recorded so far (including runs that failed). */
int cm__trace_runs(const cm_trace_t *t);

#endif
