/* What the executor (graph.c) and the trace (trace.c) share: opening a run in a trace and
 * handing it the run's events. Not part of the library's interface. */
#ifndef CM_TRACE_INTERNAL_H
#define CM_TRACE_INTERNAL_H

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

#endif
