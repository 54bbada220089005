/* What the scheduler's files share: opening a run in a trace and handing it the run's events
 * (graph.c, trace.c), and a look at a task for the DOT writer (dot.c). Not part of the library's
 * interface. */
#ifndef CM_SCHEDULER_INTERNAL_H
#define CM_SCHEDULER_INTERNAL_H

#include "cm_graph.h"

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
void cm__trace_end_run(cm_trace_t *t, int run, const cm_trace_event_t *events, int n_tasks,
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

#endif
