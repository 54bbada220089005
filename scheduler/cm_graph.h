/* A task graph and its executor: tasks with dependencies, a ready queue, OpenMP workers and
 * admission control against a byte budget. Knows tasks and bytes, never pixels or files. */
#ifndef CM_GRAPH_H
#define CM_GRAPH_H

#include <stddef.h>
#include <signal.h>
#include <stdint.h>

#include "cm_base.h"

typedef struct cm_graph cm_graph_t;

/* A task's work. `worker` is the running thread's index in [0, n_threads): per-worker state
 * (a file handle, a scratch buffer) can be indexed by it without locking. Returns 0 or a
 * negative CM_E* code, with the message recorded in ctx; a failure cancels the graph. */
typedef int (*cm_task_fn)(void *arg, int worker, cm_ctx_t *ctx);

/* A task as added to a graph.
 * - work_bytes are held while the task runs (a decoded chunk it frees before returning);
 * - out_bytes are held from its start until it and every task that depends on it have
 *   finished (a buffer it hands to its dependents, who free it);
 * - weight counts toward progress when the task finishes (pixels, say; 0 for none). */
typedef struct cm_task {
    cm_task_fn fn;
    void *arg;
    size_t work_bytes;
    size_t out_bytes;
    int64_t weight;
    const int *deps; /* ids of tasks already added to the graph */
    int n_deps;
} cm_task_t;

typedef void (*cm_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct cm_run_opts {
    int n_threads;             /* workers; <= 0 means one per core */
    size_t budget_bytes;       /* bytes in flight never exceed this; 0 means no limit */
    cm_progress_fn progress;   /* called after each weighted task, serialised; may be NULL */
    void *progress_user;
    const volatile sig_atomic_t *cancel; /* non-zero: the run stops with CM_ECANCELED */
} cm_run_opts_t;

/* Creates an empty graph; NULL when out of memory. */
cm_graph_t *cm_graph_create(void);

/* Frees the graph; accepts NULL. Does not touch the tasks' arguments. */
void cm_graph_free(cm_graph_t *g);

/* Adds a task and stores its id in *id (ids count up from 0 in the order tasks are added).
 * Dependencies must name tasks added before, so every graph is acyclic. Not thread-safe:
 * build the graph, then run it. Returns 0, CM_EUSAGE for a bad dependency or CM_ENOMEM. */
int cm_graph_add(cm_graph_t *g, const cm_task_t *task, int *id, cm_ctx_t *ctx);

/* Number of tasks added so far. */
int cm_graph_size(const cm_graph_t *g);

/* Runs every task once its dependencies have finished, on opts->n_threads workers.
 * Budget: tasks that hold bytes start in id order, each when it is ready and fits (none
 * overtakes another); tasks that hold none start as soon as they are ready, before any task
 * that holds bytes (they are often consumers whose end frees memory). So a graph that
 * fits the budget when its tasks run one at a time in id order never stalls on it, at any
 * thread count; a graph that does not is refused up front with CM_EBUDGET and a message
 * giving the smallest budget that works ("use --memory NM or more"). Build graphs with each
 * consumer soon after its producers, and let consumers that only hand data on (a writer)
 * hold no bytes, so that producers run in parallel.
 * On a task's failure (or cancel) no new task starts, running ones finish, and the first
 * error is returned with its message in ctx. A graph runs once. */
int cm_graph_run(cm_graph_t *g, const cm_run_opts_t *opts, cm_ctx_t *ctx);

/* After a run: the largest number of bytes that were in flight at once. */
size_t cm_graph_peak_bytes(const cm_graph_t *g);

/* After a run: how many tasks ran to completion (all of them, unless it failed). */
int cm_graph_done_count(const cm_graph_t *g);

/* Worker threads used when n_threads <= 0: the number of cores OpenMP reports. */
int cm_default_threads(void);

#endif
