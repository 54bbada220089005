/* Unit tests of the task graph (scheduler/cm_graph.h): dependency order, failure and cancel,
 * the byte budget, progress, determinism of ordered reductions, the API's edge cases, and the
 * trace of task times with its JSON and the graph's DOT form. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "scheduler_internal.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static void sleep_us(long us)
{
    struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Waits until *v >= at_least; false when timeout_ms passed first. */
static bool wait_until(atomic_int *v, int at_least, int timeout_ms)
{
    double end = now_ms() + timeout_ms;
    while (atomic_load(v) < at_least) {
        if (now_ms() > end) return false;
        sleep_us(100);
    }
    return true;
}

static void atomic_max_int(atomic_int *m, int v)
{
    int cur = atomic_load(m);
    while (cur < v && !atomic_compare_exchange_weak(m, &cur, v)) {
    }
}

static void atomic_max_ll(atomic_llong *m, long long v)
{
    long long cur = atomic_load(m);
    while (cur < v && !atomic_compare_exchange_weak(m, &cur, v)) {
    }
}

/* ---- the probe: tasks that record what the scheduler did to them ------------------------ */

/* What a probe task does between recording its start and its end. */
enum behaviour {
    PLAIN,      /* sleeps p->sleep_us (maybe 0) */
    BLOCK,      /* waits for p->trigger, then holds its worker 20 ms longer */
    FAIL,       /* records a message, sets p->trigger and returns p->fail_code */
    CANCEL,     /* sets the cancel flag and p->trigger, returns 0 */
    WAIT_OTHER, /* waits (up to 300 ms) until some other task has started */
};

typedef struct probe probe_t;

typedef struct probe_arg {
    probe_t *p;
    int idx;
} probe_arg_t;

struct probe {
    int n, cap, n_edges, cap_edges;
    int worker_limit; /* worker indices must be below this */
    probe_arg_t *args;
    int *behaviour;
    const char **kind; /* the kind each task was added with (NULL for none) */
    size_t *work, *out;
    int *dep_first, *dep_n, *dep_ids; /* deps of task i: dep_ids[dep_first[i] + k], k < dep_n[i] */
    atomic_int *runs, *started_at, *ended_at, *consumers_left, *busy;
    atomic_int *start_rank; /* how many tasks had started before this one */
    atomic_int clock, n_started, running, max_running, worker_errors, trigger, timeouts;
    atomic_llong held, max_held; /* bytes held as the tasks see them, per cm_graph.h */
    long sleep_us;
    int fail_code;
    volatile int cancel_flag;
};

static probe_t *probe_new(int cap, int cap_edges, int n_threads)
{
    probe_t *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->cap = cap;
    p->cap_edges = cap_edges;
    p->worker_limit = n_threads > 0 ? n_threads : cm_default_threads();
    p->args = calloc((size_t)cap, sizeof *p->args);
    p->behaviour = calloc((size_t)cap, sizeof *p->behaviour);
    p->kind = calloc((size_t)cap, sizeof *p->kind);
    p->work = calloc((size_t)cap, sizeof *p->work);
    p->out = calloc((size_t)cap, sizeof *p->out);
    p->dep_first = calloc((size_t)cap, sizeof *p->dep_first);
    p->dep_n = calloc((size_t)cap, sizeof *p->dep_n);
    p->dep_ids = calloc((size_t)cap_edges + 1, sizeof *p->dep_ids);
    p->runs = calloc((size_t)cap, sizeof *p->runs);
    p->started_at = calloc((size_t)cap, sizeof *p->started_at);
    p->ended_at = calloc((size_t)cap, sizeof *p->ended_at);
    p->consumers_left = calloc((size_t)cap, sizeof *p->consumers_left);
    p->start_rank = calloc((size_t)cap, sizeof *p->start_rank);
    p->busy = calloc((size_t)p->worker_limit, sizeof *p->busy);
    assert_true(p->args && p->behaviour && p->kind && p->work && p->out && p->dep_first &&
                p->dep_n && p->dep_ids && p->runs && p->started_at && p->ended_at &&
                p->consumers_left && p->start_rank && p->busy);
    for (int i = 0; i < cap; i++) {
        atomic_store(&p->started_at[i], -1);
        atomic_store(&p->ended_at[i], -1);
    }
    return p;
}

static void probe_free(probe_t *p)
{
    free(p->args);
    free(p->behaviour);
    free(p->kind);
    free(p->work);
    free(p->out);
    free(p->dep_first);
    free(p->dep_n);
    free(p->dep_ids);
    free((void *)p->runs);
    free((void *)p->started_at);
    free((void *)p->ended_at);
    free((void *)p->consumers_left);
    free((void *)p->start_rank);
    free((void *)p->busy);
    free(p);
}

static void held_add(probe_t *p, long long bytes)
{
    long long now = atomic_fetch_add(&p->held, bytes) + bytes;
    atomic_max_ll(&p->max_held, now);
}

static int probe_task(void *arg, int worker, cm_ctx_t *ctx)
{
    probe_arg_t *a = arg;
    probe_t *p = a->p;
    const int i = a->idx;

    atomic_fetch_add(&p->runs[i], 1);
    atomic_store(&p->started_at[i], atomic_fetch_add(&p->clock, 1));
    atomic_store(&p->start_rank[i], atomic_fetch_add(&p->n_started, 1));
    held_add(p, (long long)(p->work[i] + p->out[i]));
    atomic_max_int(&p->max_running, atomic_fetch_add(&p->running, 1) + 1);
    bool own_worker = worker >= 0 && worker < p->worker_limit;
    if (!own_worker || atomic_exchange(&p->busy[worker], 1)) atomic_fetch_add(&p->worker_errors, 1);

    int rc = 0;
    switch (p->behaviour[i]) {
    case PLAIN:
        if (p->sleep_us) sleep_us(p->sleep_us);
        break;
    case BLOCK:
        if (!wait_until(&p->trigger, 1, 2000)) atomic_fetch_add(&p->timeouts, 1);
        sleep_us(20000);
        break;
    case FAIL:
        rc = cm_fail(ctx, p->fail_code, "task %d: simulated failure", i);
        atomic_store(&p->trigger, 1);
        break;
    case CANCEL:
        p->cancel_flag = 1;
        atomic_store(&p->trigger, 1);
        break;
    case WAIT_OTHER: wait_until(&p->n_started, 2, 300); break;
    }

    if (own_worker) atomic_store(&p->busy[worker], 0);
    atomic_fetch_sub(&p->running, 1);
    if (rc == 0) {
        /* Work bytes go now; a dependency's out bytes go with its last consumer. */
        long long freed = (long long)p->work[i];
        for (int k = 0; k < p->dep_n[i]; k++) {
            int d = p->dep_ids[p->dep_first[i] + k];
            if (atomic_fetch_sub(&p->consumers_left[d], 1) == 1) freed += (long long)p->out[d];
        }
        if (atomic_load(&p->consumers_left[i]) == 0) freed += (long long)p->out[i];
        atomic_fetch_sub(&p->held, freed);
    }
    atomic_store(&p->ended_at[i], atomic_fetch_add(&p->clock, 1));
    return rc;
}

/* Adds a probe task to g (and to the probe's own record of the graph); returns its id. */
static int probe_add(probe_t *p, cm_graph_t *g, size_t work, size_t out, int64_t weight,
                     enum behaviour b, const int *deps, int n_deps)
{
    assert_true(p->n < p->cap && p->n_edges + n_deps <= p->cap_edges);
    const int i = p->n;
    p->args[i] = (probe_arg_t){.p = p, .idx = i};
    p->behaviour[i] = b;
    p->work[i] = work;
    p->out[i] = out;
    p->dep_first[i] = p->n_edges;
    p->dep_n[i] = n_deps;
    for (int k = 0; k < n_deps; k++) {
        p->dep_ids[p->n_edges++] = deps[k];
        atomic_fetch_add(&p->consumers_left[deps[k]], 1);
    }
    cm_task_t t = {.fn = probe_task,
                   .arg = &p->args[i],
                   .work_bytes = work,
                   .out_bytes = out,
                   .weight = weight,
                   .deps = deps,
                   .n_deps = n_deps,
                   .kind = p->kind[i]};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    int id = -1;
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    assert_int_equal(id, i); /* ids count up from 0 */
    p->n++;
    return id;
}

/* probe_add for a task of the given kind. */
static int probe_add_kind(probe_t *p, cm_graph_t *g, const char *kind, size_t work, size_t out,
                          const int *deps, int n_deps)
{
    assert_true(p->n < p->cap);
    p->kind[p->n] = kind;
    return probe_add(p, g, work, out, 0, PLAIN, deps, n_deps);
}

static int probe_run(probe_t *p, cm_graph_t *g, int n_threads, size_t budget, bool with_cancel,
                     cm_ctx_t *ctx)
{
    cm_run_opts_t opts = {.n_threads = n_threads,
                          .budget_bytes = budget,
                          .cancel = with_cancel ? &p->cancel_flag : NULL};
    cm_ctx_init(ctx);
    return cm_graph_run(g, &opts, ctx);
}

static int probe_ran(const probe_t *p)
{
    int total = 0;
    for (int i = 0; i < p->n; i++) total += atomic_load(&p->runs[i]);
    return total;
}

/* Every task ran exactly once and started after each of its dependencies ended. */
static void assert_ran_once_after_deps(probe_t *p)
{
    for (int i = 0; i < p->n; i++) {
        int runs = atomic_load(&p->runs[i]);
        if (runs != 1) fail_msg("task %d ran %d times", i, runs);
        int start = atomic_load(&p->started_at[i]);
        for (int k = 0; k < p->dep_n[i]; k++) {
            int d = p->dep_ids[p->dep_first[i] + k];
            int end = atomic_load(&p->ended_at[d]);
            if (end < 0 || end >= start)
                fail_msg("task %d started at %d, its dependency %d ended at %d", i, start, d, end);
        }
    }
    assert_int_equal(atomic_load(&p->worker_errors), 0);
}

/* Frees the graph and the probe, then fails the test with the run's error: a test that finds
 * a bug leaves no leak report behind. */
static void fail_run(probe_t *p, cm_graph_t *g, int n_threads, int rc, const cm_ctx_t *ctx)
{
    char why[CM_MSG_MAX + 64];
    snprintf(why, sizeof why, "%d threads: run failed with %d: %s", n_threads, rc, ctx->msg);
    cm_graph_free(g);
    probe_free(p);
    fail_msg("%s", why);
}

/* ---- dependency order ------------------------------------------------------------------- */

static void test_diamond_runs_in_dependency_order(void **state)
{
    (void)state;
    const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        for (int rep = 0; rep < 50; rep++) {
            probe_t *p = probe_new(4, 4, threads[t]);
            p->sleep_us = 50;
            cm_graph_t *g = cm_graph_create();
            assert_non_null(g);
            int a = probe_add(p, g, 0, 0, 0, PLAIN, NULL, 0);
            int b = probe_add(p, g, 0, 0, 0, PLAIN, &a, 1);
            int c = probe_add(p, g, 0, 0, 0, PLAIN, &a, 1);
            int bc[2] = {b, c};
            int d = probe_add(p, g, 0, 0, 0, PLAIN, bc, 2);
            assert_int_equal(cm__graph_size(g), 4);
            cm_ctx_t ctx;
            assert_int_equal(probe_run(p, g, threads[t], 0, false, &ctx), 0);
            assert_int_equal(ctx.code, CM_OK);
            assert_ran_once_after_deps(p);
            /* Spelled out for the diamond: A first, D last. */
            assert_int_equal(atomic_load(&p->started_at[a]), 0);
            assert_int_equal(atomic_load(&p->ended_at[d]), 7);
            assert_int_equal(cm__graph_done_count(g), 4);
            cm_graph_free(g);
            probe_free(p);
        }
    }
}

static void test_thousands_of_random_tasks_run_once_after_their_deps(void **state)
{
    (void)state;
    enum { N = 20000, MAX_DEPS = 4 };
    const int threads[] = {1, 4};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(N, N * MAX_DEPS, threads[t]);
        cm_graph_t *g = cm_graph_create();
        assert_non_null(g);
        for (int i = 0; i < N; i++) {
            cm__rng_t rng;
            cm__rng_init(&rng, 12345, (uint64_t)i);
            int deps[MAX_DEPS], n_deps = i ? (int)cm__rng_below(&rng, MAX_DEPS + 1) : 0;
            for (int k = 0; k < n_deps; k++) {
                /* Mostly recent tasks (long chains), sometimes any earlier one. */
                uint64_t span = cm__rng_below(&rng, 4) ? (i < 64 ? (uint64_t)i : 64) : (uint64_t)i;
                deps[k] = i - 1 - (int)cm__rng_below(&rng, span);
            }
            probe_add(p, g, 0, 0, 1, PLAIN, deps, n_deps);
        }
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], 0, false, &ctx), 0);
        assert_ran_once_after_deps(p);
        assert_int_equal(probe_ran(p), N);
        assert_int_equal(cm__graph_done_count(g), N);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_worker_index_is_in_range_and_never_shared(void **state)
{
    (void)state;
    const int threads[] = {1, 3, 4, 0}; /* 0: one per core */
    for (int t = 0; t < 4; t++) {
        probe_t *p = probe_new(200, 0, threads[t]);
        p->sleep_us = 20;
        cm_graph_t *g = cm_graph_create();
        for (int i = 0; i < 200; i++) probe_add(p, g, 0, 0, 0, PLAIN, NULL, 0);
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], 0, false, &ctx), 0);
        assert_ran_once_after_deps(p); /* includes worker_errors == 0 */
        assert_true(atomic_load(&p->max_running) <= p->worker_limit);
        cm_graph_free(g);
        probe_free(p);
    }
    assert_true(cm_default_threads() >= 1);
}

static void test_tasks_holding_bytes_start_by_lowest_id(void **state)
{
    (void)state;
    /* One worker: ready tasks that hold bytes start strictly in id order, whatever order
     * they became ready in. */
    probe_t *p = probe_new(8, 8, 1);
    cm_graph_t *g = cm_graph_create();
    int root = probe_add(p, g, 1, 0, 0, PLAIN, NULL, 0);
    for (int i = 1; i < 8; i++) probe_add(p, g, 1, 0, 0, PLAIN, i % 2 ? &root : NULL, i % 2);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 1, 0, false, &ctx), 0);
    for (int i = 0; i < 8; i++) assert_int_equal(atomic_load(&p->started_at[i]), 2 * i);
    cm_graph_free(g);
    probe_free(p);
}

static void test_blocked_task_is_not_overtaken_by_a_smaller_one(void **state)
{
    (void)state;
    /* Budget 100: task 0 holds 60 for a while; task 1 needs 60 and must wait; task 2 needs
     * only 10 and would fit, but must not overtake task 1. */
    probe_t *p = probe_new(3, 0, 2);
    p->sleep_us = 30000;
    cm_graph_t *g = cm_graph_create();
    probe_add(p, g, 60, 0, 0, PLAIN, NULL, 0);
    probe_add(p, g, 60, 0, 0, PLAIN, NULL, 0);
    probe_add(p, g, 10, 0, 0, PLAIN, NULL, 0);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 2, 100, false, &ctx), 0);
    assert_ran_once_after_deps(p);
    assert_true(atomic_load(&p->started_at[2]) > atomic_load(&p->ended_at[0]));
    assert_true(atomic_load(&p->started_at[1]) > atomic_load(&p->ended_at[0]));
    assert_true(cm__graph_peak_bytes(g) <= 100);
    cm_graph_free(g);
    probe_free(p);
}

/* ---- failure ---------------------------------------------------------------------------- */

static void test_failing_task_in_chain_stops_its_dependents(void **state)
{
    (void)state;
    enum { N = 10, BAD = 5 };
    const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        probe_t *p = probe_new(N, N, threads[t]);
        p->fail_code = CM_EIO;
        cm_graph_t *g = cm_graph_create();
        int prev = -1;
        for (int i = 0; i < N; i++)
            prev = probe_add(p, g, 1, 1, 1, i == BAD ? FAIL : PLAIN, &prev, i ? 1 : 0);
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], 0, false, &ctx), CM_EIO);
        assert_int_equal(ctx.code, CM_EIO);
        assert_string_equal(ctx.msg, "task 5: simulated failure");
        for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&p->runs[i]), i <= BAD);
        assert_int_equal(cm__graph_done_count(g), BAD);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_failing_task_in_wide_graph_starts_nothing_after_it_on_one_thread(void **state)
{
    (void)state;
    enum { N = 50, BAD = 20 };
    probe_t *p = probe_new(N, 0, 1);
    p->fail_code = CM_EINPUT;
    cm_graph_t *g = cm_graph_create();
    for (int i = 0; i < N; i++) probe_add(p, g, 1, 0, 0, i == BAD ? FAIL : PLAIN, NULL, 0);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 1, 0, false, &ctx), CM_EINPUT);
    assert_string_equal(ctx.msg, "task 20: simulated failure");
    /* Whatever the order, the failing task is the last one that started. */
    assert_int_equal(probe_ran(p), atomic_load(&p->start_rank[BAD]) + 1);
    /* And with the lowest-id rule, exactly tasks 0..BAD ran. */
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&p->runs[i]), i <= BAD);
    assert_int_equal(cm__graph_done_count(g), BAD);
    cm_graph_free(g);
    probe_free(p);
}

/* Tasks 0..2 occupy three of four workers until task 3 has failed (or cancelled) and then a
 * little longer; when they return, a scheduler that keeps going would start more tasks. */
static void build_blocked_wide_graph(probe_t *p, cm_graph_t *g, enum behaviour trigger, int n)
{
    for (int i = 0; i < 3; i++) probe_add(p, g, 1, 0, 1, BLOCK, NULL, 0);
    int trig = probe_add(p, g, 1, 0, 1, trigger, NULL, 0);
    for (int i = 4; i < n; i++) probe_add(p, g, 1, 0, 1, PLAIN, i % 2 ? &trig : NULL, i % 2);
}

static void test_failing_task_in_wide_graph_starts_nothing_after_it_on_four_threads(void **state)
{
    (void)state;
    enum { N = 60 };
    probe_t *p = probe_new(N, N, 4);
    p->fail_code = CM_EINPUT;
    cm_graph_t *g = cm_graph_create();
    build_blocked_wide_graph(p, g, FAIL, N);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 4, 0, false, &ctx), CM_EINPUT);
    assert_int_equal(ctx.code, CM_EINPUT);
    assert_string_equal(ctx.msg, "task 3: simulated failure");
    assert_int_equal(atomic_load(&p->timeouts), 0); /* the failing task did run alongside */
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&p->runs[i]), i < 4);
    assert_int_equal(cm__graph_done_count(g), 3); /* the blocked ones finished */
    cm_graph_free(g);
    probe_free(p);
}

typedef struct fail_arg {
    int idx;
    atomic_int *gate;
} fail_arg_t;

static const int fail_codes[4] = {CM_EIO, CM_EINPUT, CM_ENOMEM, CM_EINTERNAL};

static int failing_task(void *arg, int worker, cm_ctx_t *ctx)
{
    fail_arg_t *a = arg;
    (void)worker;
    atomic_fetch_add(a->gate, 1);
    wait_until(a->gate, 4, 500); /* let all four fail at about the same time */
    return cm_fail(ctx, fail_codes[a->idx], "failure %d with code %d", a->idx, fail_codes[a->idx]);
}

static void test_concurrent_failures_return_the_recorded_error(void **state)
{
    (void)state;
    for (int rep = 0; rep < 20; rep++) {
        atomic_int gate = 0;
        fail_arg_t args[4];
        cm_graph_t *g = cm_graph_create();
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        for (int i = 0; i < 4; i++) {
            args[i] = (fail_arg_t){.idx = i, .gate = &gate};
            cm_task_t t = {.fn = failing_task, .arg = &args[i]};
            int id;
            assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
        }
        cm_run_opts_t opts = {.n_threads = 4};
        int rc = cm_graph_run(g, &opts, &ctx);
        int idx = -1, code = 0;
        assert_int_equal(sscanf(ctx.msg, "failure %d with code %d", &idx, &code), 2);
        assert_int_equal(rc, code);
        assert_int_equal(ctx.code, code);
        assert_int_equal(cm__graph_done_count(g), 0);
        cm_graph_free(g);
    }
}

/* ---- cancel ----------------------------------------------------------------------------- */

static void test_cancel_from_a_task_stops_the_chain(void **state)
{
    (void)state;
    enum { N = 10, STOP = 4 };
    const int threads[] = {1, 2};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(N, N, threads[t]);
        cm_graph_t *g = cm_graph_create();
        int prev = -1;
        for (int i = 0; i < N; i++)
            prev = probe_add(p, g, 0, 0, 1, i == STOP ? CANCEL : PLAIN, &prev, i ? 1 : 0);
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], 0, true, &ctx), CM_ECANCELED);
        assert_int_equal(ctx.code, CM_ECANCELED);
        assert_true(strlen(ctx.msg) > 0);
        for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&p->runs[i]), i <= STOP);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_cancel_from_a_task_starts_nothing_after_it_on_four_threads(void **state)
{
    (void)state;
    enum { N = 60 };
    probe_t *p = probe_new(N, N, 4);
    cm_graph_t *g = cm_graph_create();
    build_blocked_wide_graph(p, g, CANCEL, N);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 4, 0, true, &ctx), CM_ECANCELED);
    assert_int_equal(ctx.code, CM_ECANCELED);
    assert_int_equal(atomic_load(&p->timeouts), 0);
    for (int i = 0; i < N; i++) assert_int_equal(atomic_load(&p->runs[i]), i < 4);
    cm_graph_free(g);
    probe_free(p);
}

static void test_cancel_set_before_the_run_runs_nothing(void **state)
{
    (void)state;
    probe_t *p = probe_new(5, 0, 2);
    cm_graph_t *g = cm_graph_create();
    for (int i = 0; i < 5; i++) probe_add(p, g, 0, 0, 1, PLAIN, NULL, 0);
    p->cancel_flag = 1;
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 2, 0, true, &ctx), CM_ECANCELED);
    assert_int_equal(probe_ran(p), 0);
    assert_int_equal(cm__graph_done_count(g), 0);
    cm_graph_free(g);
    probe_free(p);
}

/* ---- byte budget ------------------------------------------------------------------------ */

/* remap_i (work rw, out ro) -> write_i (work ww), which also depends on write_{i-1}; ids in
 * the order remap_0, write_0, remap_1, write_1, ... */
static void build_remap_write_chain(probe_t *p, cm_graph_t *g, int n_chunks, size_t rw, size_t ro,
                                    size_t ww, enum behaviour first)
{
    int prev_write = -1;
    for (int c = 0; c < n_chunks; c++) {
        int remap = probe_add(p, g, rw, ro, 1, c == 0 ? first : PLAIN, NULL, 0);
        int deps[2] = {remap, prev_write};
        prev_write = probe_add(p, g, ww, 0, 1, PLAIN, deps, c ? 2 : 1);
    }
}

static void test_budget_is_never_exceeded_by_producers_and_consumers(void **state)
{
    (void)state;
    enum { CHUNKS = 40 };
    const size_t budget = 500;
    const int threads[] = {2, 4};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(2 * CHUNKS, 2 * CHUNKS, threads[t]);
        p->sleep_us = 200;
        cm_graph_t *g = cm_graph_create();
        build_remap_write_chain(p, g, CHUNKS, 60, 100, 40, PLAIN);
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], budget, false, &ctx), 0);
        assert_ran_once_after_deps(p);
        long long seen = atomic_load(&p->max_held);
        assert_true(seen <= (long long)budget);
        assert_true(cm__graph_peak_bytes(g) <= budget);
        assert_true((size_t)seen <= cm__graph_peak_bytes(g)); /* the graph counts at least this */
        assert_true(cm__graph_peak_bytes(g) >= 160);
        assert_int_equal(atomic_load(&p->held), 0); /* the model itself balances */
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_ready_consumer_holding_no_bytes_runs_before_the_next_producer(void **state)
{
    (void)state;
    /* One worker, remap_i (out 100) -> write_i (no bytes): each write runs as soon as it is
     * ready, before the next remap, so one buffer is held at a time, not the whole budget. */
    enum { CHUNKS = 6 };
    probe_t *p = probe_new(2 * CHUNKS, 2 * CHUNKS, 1);
    cm_graph_t *g = cm_graph_create();
    build_remap_write_chain(p, g, CHUNKS, 0, 100, 0, PLAIN);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 1, 10000, false, &ctx), 0);
    for (int i = 0; i < 2 * CHUNKS; i++) assert_int_equal(atomic_load(&p->started_at[i]), 2 * i);
    assert_int_equal(cm__graph_peak_bytes(g), 100);
    cm_graph_free(g);
    probe_free(p);
}

static void test_budget_for_one_task_at_a_time_completes_without_deadlock(void **state)
{
    (void)state;
    /* A remap needs 160; a write needs 40 while its remap's 100 are held: 160 admits one
     * task at a time. */
    enum { CHUNKS = 20 };
    const size_t budget = 160;
    const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        probe_t *p = probe_new(2 * CHUNKS, 2 * CHUNKS, threads[t]);
        p->sleep_us = 100;
        cm_graph_t *g = cm_graph_create();
        build_remap_write_chain(p, g, CHUNKS, 60, 100, 40, PLAIN);
        cm_ctx_t ctx;
        int rc = probe_run(p, g, threads[t], budget, false, &ctx);
        if (rc) fail_run(p, g, threads[t], rc, &ctx);
        assert_ran_once_after_deps(p);
        assert_int_equal(atomic_load(&p->max_running), 1);
        assert_true(atomic_load(&p->max_held) <= (long long)budget);
        assert_int_equal(cm__graph_peak_bytes(g), budget);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_budget_for_one_producer_consumer_pair_never_deadlocks_on_two_threads(void **state)
{
    (void)state;
    /* remap_i holds 100 out bytes; write_i needs 100 more while they are held. Budget 200 fits
     * one remap/write pair at a time: the only schedule is remap_0, write_0, remap_1, ... and
     * it exists (one thread finds it). remap_0 waits a little for a second task to start, so
     * a scheduler that lets remap_1 take the budget write_0 will need does so every time. */
    enum { CHUNKS = 4 };
    const size_t budget = 200;
    const int threads[] = {1, 2};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(2 * CHUNKS, 2 * CHUNKS, threads[t]);
        cm_graph_t *g = cm_graph_create();
        build_remap_write_chain(p, g, CHUNKS, 0, 100, 100, threads[t] > 1 ? WAIT_OTHER : PLAIN);
        cm_ctx_t ctx;
        int rc = probe_run(p, g, threads[t], budget, false, &ctx);
        if (rc) fail_run(p, g, threads[t], rc, &ctx);
        assert_ran_once_after_deps(p);
        assert_true(atomic_load(&p->max_held) <= (long long)budget);
        assert_true(cm__graph_peak_bytes(g) <= budget);
        cm_graph_free(g);
        probe_free(p);
    }
}

/* The budget in bytes that an EBUDGET failure says would do; 0 if none. */
static size_t suggested_budget(const cm_ctx_t *ctx)
{
    return ctx->about.setting == CM_SETTING_MEMORY ? (size_t)ctx->about.need : 0;
}

static void test_graph_that_does_not_fit_in_id_order_is_refused_up_front(void **state)
{
    (void)state;
    /* P (out 100), C1 (10, reads P), T (50), C2 (10, reads P): run in id order, T needs 50
     * while P's 100 are held, 150 in all. Budget 149 is refused before any task runs (rather
     * than stalling half-way), and the budget the message suggests runs on 1 and 2 threads. */
    const int threads[] = {1, 2};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(4, 2, threads[t]);
        cm_graph_t *g = cm_graph_create();
        int prod = probe_add(p, g, 0, 100, 0, PLAIN, NULL, 0);
        probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
        probe_add(p, g, 50, 0, 0, PLAIN, NULL, 0);
        probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
        cm_ctx_t ctx;
        assert_int_equal(probe_run(p, g, threads[t], 149, false, &ctx), CM_EBUDGET);
        assert_int_equal(cm__graph_done_count(g), 0);
        assert_non_null(strstr(ctx.msg, "150 bytes"));
        size_t suggested = suggested_budget(&ctx);
        assert_int_equal(suggested, 150);
        cm_graph_free(g);
        probe_free(p);

        p = probe_new(4, 2, threads[t]);
        g = cm_graph_create();
        prod = probe_add(p, g, 0, 100, 0, PLAIN, NULL, 0);
        probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
        probe_add(p, g, 50, 0, 0, PLAIN, NULL, 0);
        probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
        int rc = probe_run(p, g, threads[t], 150, false, &ctx);
        if (rc) fail_run(p, g, threads[t], rc, &ctx);
        assert_ran_once_after_deps(p);
        assert_true(cm__graph_peak_bytes(g) <= 150);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_out_bytes_are_held_until_every_dependent_finishes(void **state)
{
    (void)state;
    /* One worker, ids in order: P (out 100), C1 (10, reads P), T (50), C2 (10, reads P).
     * P's 100 bytes are still held while T runs, because C2 has not run: peak 150. */
    probe_t *p = probe_new(4, 2, 1);
    cm_graph_t *g = cm_graph_create();
    int prod = probe_add(p, g, 0, 100, 0, PLAIN, NULL, 0);
    probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
    probe_add(p, g, 50, 0, 0, PLAIN, NULL, 0);
    probe_add(p, g, 10, 0, 0, PLAIN, &prod, 1);
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 1, 0, false, &ctx), 0);
    assert_int_equal(cm__graph_peak_bytes(g), 150);
    assert_int_equal(atomic_load(&p->max_held), 150);
    cm_graph_free(g);
    probe_free(p);
}

static void test_budget_is_never_exceeded_by_many_random_tasks(void **state)
{
    (void)state;
    enum { N = 3000 };
    const size_t budget = 250;
    probe_t *p = probe_new(N, N * 2, 4);
    cm_graph_t *g = cm_graph_create();
    for (int i = 0; i < N; i++) {
        cm__rng_t rng;
        cm__rng_init(&rng, 777, (uint64_t)i);
        int deps[2], n_deps = i ? (int)cm__rng_below(&rng, 3) : 0;
        for (int k = 0; k < n_deps; k++) deps[k] = (int)cm__rng_below(&rng, (uint64_t)i);
        probe_add(p, g, 1 + cm__rng_below(&rng, 100), 0, 0, PLAIN, deps, n_deps);
    }
    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 4, budget, false, &ctx), 0);
    assert_ran_once_after_deps(p);
    assert_true(atomic_load(&p->max_held) <= (long long)budget);
    assert_true(cm__graph_peak_bytes(g) <= budget);
    assert_true((size_t)atomic_load(&p->max_held) <= cm__graph_peak_bytes(g));
    cm_graph_free(g);
    probe_free(p);
}

/* Runs a fresh copy of the given single-task-bytes graph: tasks {work, out, dep or -1}. */
typedef struct spec {
    size_t work, out;
    int dep;
} spec_t;

static int run_spec(const spec_t *s, int n, size_t budget, cm_ctx_t *ctx, int *n_ran)
{
    probe_t *p = probe_new(n, n, 1);
    cm_graph_t *g = cm_graph_create();
    for (int i = 0; i < n; i++)
        probe_add(p, g, s[i].work, s[i].out, 0, PLAIN, &s[i].dep, s[i].dep >= 0);
    int rc = probe_run(p, g, 1, budget, false, ctx);
    *n_ran = probe_ran(p);
    cm_graph_free(g);
    probe_free(p);
    return rc;
}

static void test_task_over_budget_fails_up_front_with_ebudget(void **state)
{
    (void)state;
    const spec_t s[3] = {{10, 0, -1}, {400, 200, 0}, {10, 0, 1}}; /* task 1 needs 600 */
    cm_ctx_t ctx;
    int ran = -1;
    assert_int_equal(run_spec(s, 3, 599, &ctx, &ran), CM_EBUDGET);
    assert_int_equal(ctx.code, CM_EBUDGET);
    assert_null(strstr(ctx.msg, "--memory")); /* the library names no flag */
    assert_int_equal(suggested_budget(&ctx), 600);
    assert_int_equal(ran, 0);                             /* up front: not even task 0 ran */
    assert_int_equal(run_spec(s, 3, 600, &ctx, &ran), 0); /* exactly enough is enough */
    assert_int_equal(ran, 3);

    const spec_t big[2] = {{(size_t)5 << 20, (size_t)1 << 20, -1}, {1, 0, 0}};
    assert_int_equal(run_spec(big, 2, (size_t)1 << 20, &ctx, &ran), CM_EBUDGET);
    size_t suggested = suggested_budget(&ctx);
    assert_true(suggested >= (size_t)6 << 20);
    assert_int_equal(run_spec(big, 2, suggested, &ctx, &ran), 0);
    assert_int_equal(ran, 2);
}

static void test_budget_suggested_for_producer_and_consumer_is_enough(void **state)
{
    (void)state;
    /* The consumer needs its own 1 MiB while the producer's 1 MiB is held: 2 MiB in all. */
    const spec_t s[2] = {{0, (size_t)1 << 20, -1}, {(size_t)1 << 20, 0, 0}};
    cm_ctx_t ctx;
    int ran = -1;
    assert_int_equal(run_spec(s, 2, ((size_t)1 << 20) - 1, &ctx, &ran), CM_EBUDGET);
    assert_int_equal(ran, 0);
    size_t suggested = suggested_budget(&ctx);
    assert_true(suggested > 0);
    int rc = run_spec(s, 2, suggested, &ctx, &ran);
    if (rc) fail_msg("suggested budget %zu failed with %d: %s", suggested, rc, ctx.msg);
    assert_int_equal(ran, 2);
}

/* ---- progress --------------------------------------------------------------------------- */

typedef struct progress_log {
    atomic_int inside;
    int overlaps, calls, bad_steps;
    int64_t last_done, first_total;
    bool total_changed;
} progress_log_t;

static void log_progress(void *user, int64_t done, int64_t total)
{
    progress_log_t *l = user;
    if (atomic_fetch_add(&l->inside, 1) != 0) l->overlaps++;
    if (l->calls == 0) l->first_total = total;
    if (total != l->first_total) l->total_changed = true;
    if (done <= l->last_done || done > total) l->bad_steps++;
    l->last_done = done;
    l->calls++;
    sleep_us(5); /* widen the window for overlapping calls */
    atomic_fetch_sub(&l->inside, 1);
}

static void test_progress_reports_weights_done_up_to_the_total(void **state)
{
    (void)state;
    enum { N = 200 };
    const int threads[] = {1, 4};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(N, N, threads[t]);
        cm_graph_t *g = cm_graph_create();
        int64_t total = 0;
        int weighted = 0;
        for (int i = 0; i < N; i++) {
            int64_t w = i % 5 == 0 ? 0 : 1000 + i; /* some tasks count for nothing */
            int dep = i - 7;
            probe_add(p, g, 0, 0, w, PLAIN, &dep, dep >= 0);
            total += w;
            weighted += w > 0;
        }
        progress_log_t log = {0};
        cm_run_opts_t opts = {
            .n_threads = threads[t], .progress = log_progress, .progress_user = &log};
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
        assert_int_equal(log.calls, weighted);
        assert_int_equal(log.bad_steps, 0);
        assert_int_equal(log.overlaps, 0);
        assert_false(log.total_changed);
        assert_int_equal(log.first_total, total);
        assert_int_equal(log.last_done, total);
        cm_graph_free(g);
        probe_free(p);
    }
}

/* ---- ordered reduction ------------------------------------------------------------------ */

enum { SLOTS = 96, TERMS = 32 };

typedef struct partial_arg {
    double *slots;
    int idx;
} partial_arg_t;

typedef struct reduce_arg {
    const double *slots;
    double *result;
} reduce_arg_t;

/* Terms of wildly different magnitudes and signs: their sum depends on the order. */
static double partial_value(int idx)
{
    cm__rng_t rng;
    cm__rng_init(&rng, 99, (uint64_t)idx);
    double s = 0;
    for (int k = 0; k < TERMS; k++) {
        double mag = (double)(1ULL << cm__rng_below(&rng, 60));
        s += (cm__rng_uniform(&rng) - 0.5) * mag;
    }
    return s;
}

static int partial_task(void *arg, int worker, cm_ctx_t *ctx)
{
    partial_arg_t *a = arg;
    (void)worker;
    (void)ctx;
    sleep_us((a->idx * 7) % 5 * 30); /* finish out of order */
    a->slots[a->idx] = partial_value(a->idx);
    return 0;
}

static int reduce_task(void *arg, int worker, cm_ctx_t *ctx)
{
    reduce_arg_t *a = arg;
    (void)worker;
    (void)ctx;
    double s = 0;
    for (int i = 0; i < SLOTS; i++) s += a->slots[i];
    *a->result = s;
    return 0;
}

static double reduce_with_threads(int n_threads)
{
    double slots[SLOTS], result = -1.0;
    for (int i = 0; i < SLOTS; i++) slots[i] = (double)NAN;
    partial_arg_t pargs[SLOTS];
    int ids[SLOTS];
    cm_graph_t *g = cm_graph_create();
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    for (int i = 0; i < SLOTS; i++) {
        pargs[i] = (partial_arg_t){.slots = slots, .idx = i};
        cm_task_t t = {.fn = partial_task, .arg = &pargs[i], .work_bytes = 8, .weight = 1};
        assert_int_equal(cm_graph_add(g, &t, &ids[i], &ctx), 0);
    }
    reduce_arg_t rarg = {.slots = slots, .result = &result};
    cm_task_t t = {.fn = reduce_task, .arg = &rarg, .deps = ids, .n_deps = SLOTS};
    int id;
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    cm_run_opts_t opts = {.n_threads = n_threads};
    assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
    cm_graph_free(g);
    return result;
}

static void test_ordered_reduction_is_bit_identical_across_thread_counts(void **state)
{
    (void)state;
    double forward = 0, backward = 0;
    for (int i = 0; i < SLOTS; i++) forward += partial_value(i);
    for (int i = SLOTS - 1; i >= 0; i--) backward += partial_value(i);
    /* The data make the order visible: a different order gives different bits. */
    assert_memory_not_equal(&forward, &backward, sizeof forward);

    const int threads[] = {1, 2, 8};
    for (int t = 0; t < 3; t++) {
        for (int rep = 0; rep < 5; rep++) {
            double r = reduce_with_threads(threads[t]);
            if (memcmp(&r, &forward, sizeof r) != 0)
                fail_msg("%d threads: sum %a, expected %a", threads[t], r, forward);
        }
    }
}

/* ---- API edge cases --------------------------------------------------------------------- */

static int nop_task(void *arg, int worker, cm_ctx_t *ctx)
{
    (void)worker;
    (void)ctx;
    atomic_fetch_add((atomic_int *)arg, 1);
    return 0;
}

static void test_add_rejects_unknown_or_future_dependency(void **state)
{
    (void)state;
    atomic_int ran = 0;
    cm_graph_t *g = cm_graph_create();
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    int id = -1;
    cm_task_t t = {.fn = nop_task, .arg = &ran};
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    assert_int_equal(id, 0);
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    assert_int_equal(id, 1);

    const int bad_deps[] = {2 /* itself */, 3 /* future */, 1000, -1, INT32_MIN};
    for (size_t k = 0; k < sizeof bad_deps / sizeof bad_deps[0]; k++) {
        cm_ctx_init(&ctx);
        cm_task_t bad = {.fn = nop_task, .arg = &ran, .deps = &bad_deps[k], .n_deps = 1};
        id = -7;
        assert_int_equal(cm_graph_add(g, &bad, &id, &ctx), CM_EUSAGE);
        assert_int_equal(ctx.code, CM_EUSAGE);
        assert_true(strlen(ctx.msg) > 0);
        assert_int_equal(cm__graph_size(g), 2);
    }
    /* A list with one good and one bad dependency is rejected whole. */
    const int mixed[] = {0, 5};
    cm_task_t bad = {.fn = nop_task, .arg = &ran, .deps = mixed, .n_deps = 2};
    assert_int_equal(cm_graph_add(g, &bad, &id, NULL), CM_EUSAGE);
    cm_task_t no_list = {.fn = nop_task, .arg = &ran, .deps = NULL, .n_deps = 1};
    assert_int_equal(cm_graph_add(g, &no_list, &id, NULL), CM_EUSAGE);
    cm_task_t negative = {.fn = nop_task, .arg = &ran, .deps = mixed, .n_deps = -1};
    assert_int_equal(cm_graph_add(g, &negative, &id, NULL), CM_EUSAGE);
    assert_int_equal(cm__graph_size(g), 2);

    /* The graph is intact: a valid task is added with the next id and all three run. */
    const int ok[] = {0, 1};
    cm_task_t good = {.fn = nop_task, .arg = &ran, .deps = ok, .n_deps = 2};
    assert_int_equal(cm_graph_add(g, &good, &id, &ctx), 0);
    assert_int_equal(id, 2);
    cm_run_opts_t opts = {.n_threads = 2};
    cm_ctx_init(&ctx);
    assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
    assert_int_equal(atomic_load(&ran), 3);
    cm_graph_free(g);
}

static void test_empty_graph_runs_and_returns_zero(void **state)
{
    (void)state;
    const size_t budgets[] = {0, 1};
    for (int b = 0; b < 2; b++) {
        cm_graph_t *g = cm_graph_create();
        assert_non_null(g);
        assert_int_equal(cm__graph_size(g), 0);
        cm_run_opts_t opts = {.n_threads = 4, .budget_bytes = budgets[b]};
        cm_ctx_t ctx;
        cm_ctx_init(&ctx);
        assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
        assert_int_equal(ctx.code, CM_OK);
        assert_int_equal(cm__graph_done_count(g), 0);
        assert_int_equal(cm__graph_peak_bytes(g), 0);
        cm_graph_free(g);
    }
    cm_graph_free(NULL);
}

static void test_graph_runs_only_once(void **state)
{
    (void)state;
    atomic_int ran = 0;
    cm_graph_t *g = cm_graph_create();
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_task_t t = {.fn = nop_task, .arg = &ran};
    int id;
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), 0);
    cm_run_opts_t opts = {.n_threads = 2};
    assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
    assert_int_equal(atomic_load(&ran), 2);
    assert_int_equal(cm__graph_done_count(g), 2);

    cm_ctx_init(&ctx);
    assert_int_equal(cm_graph_run(g, &opts, &ctx), CM_EUSAGE);
    assert_int_equal(ctx.code, CM_EUSAGE);
    assert_int_equal(atomic_load(&ran), 2);
    cm_ctx_init(&ctx);
    assert_int_equal(cm_graph_add(g, &t, &id, &ctx), CM_EUSAGE);
    assert_int_equal(cm__graph_size(g), 2);
    cm_graph_free(g);
}

/* ---- trace ------------------------------------------------------------------------------ */

static const char *const kinds[] = {"read", "remap", "write", "step"};

/* Runs g (built with p) with a trace, as run `run` of stage `stage`. */
static int traced_run(probe_t *p, cm_graph_t *g, int n_threads, size_t budget, cm_trace_t *tr,
                      const char *stage, cm_ctx_t *ctx)
{
    cm_run_opts_t opts = {.n_threads = n_threads,
                          .budget_bytes = budget,
                          .trace = tr,
                          .stage = stage,
                          .cancel = &p->cancel_flag};
    cm_ctx_init(ctx);
    return cm_graph_run(g, &opts, ctx);
}

/* The trace holds, for run `run` (events first .. first + p->n), exactly one event per task of
 * p, with its kind, bytes and stage, a worker in range, end >= start, and each task starting no
 * earlier than its dependencies ended. */
static void assert_trace_matches_probe(const cm_trace_t *tr, size_t first, int run,
                                       const char *stage, const probe_t *p)
{
    const cm__trace_event_t **by_task = calloc((size_t)p->n, sizeof *by_task);
    assert_non_null(by_task);
    assert_true(cm__trace_events(tr) >= first + (size_t)p->n);
    for (size_t i = first; i < first + (size_t)p->n; i++) {
        const cm__trace_event_t *e = cm__trace_event(tr, i);
        assert_non_null(e);
        assert_int_equal(e->run, run);
        assert_true(e->task >= 0 && e->task < p->n);
        if (by_task[e->task]) fail_msg("task %d has two events", e->task);
        by_task[e->task] = e;
        assert_true(e->start_us >= 0);
        assert_true(e->end_us >= e->start_us);
        assert_true(e->worker >= 0 && e->worker < p->worker_limit);
        assert_false(e->failed);
        assert_string_equal(e->kind, p->kind[e->task] ? p->kind[e->task] : "task");
        assert_string_equal(e->stage, stage ? stage : "graph");
        assert_int_equal(e->bytes, p->work[e->task] + p->out[e->task]);
        if (p->sleep_us) assert_true(e->end_us - e->start_us >= (double)p->sleep_us);
    }
    for (int i = 0; i < p->n; i++) {
        assert_non_null(by_task[i]);
        for (int k = 0; k < p->dep_n[i]; k++) {
            int d = p->dep_ids[p->dep_first[i] + k];
            if (by_task[i]->start_us < by_task[d]->end_us)
                fail_msg("task %d started at %.3f us, its dependency %d ended at %.3f us", i,
                         by_task[i]->start_us, d, by_task[d]->end_us);
        }
    }
    free((void *)by_task);
}

/* Writes the trace as JSON, parses it back and checks its shape: n_tasks "X" events that
 * agree with the trace's events, and one thread-name "M" event per worker. */
static void assert_json_round_trips(const cm_trace_t *tr, size_t n_tasks, int n_workers)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_trace_write_json(tr, f, &ctx), 0);
    rewind(f);
    json_error_t err;
    json_t *root = json_loadf(f, 0, &err);
    fclose(f);
    if (!root) fail_msg("trace JSON does not parse: line %d: %s", err.line, err.text);
    assert_true(json_is_object(root));
    assert_string_equal(json_string_value(json_object_get(root, "displayTimeUnit")), "ms");
    json_t *events = json_object_get(root, "traceEvents");
    assert_true(json_is_array(events));
    size_t n_x = 0, n_m = 0, i;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *ph = json_string_value(json_object_get(ev, "ph"));
        assert_non_null(ph);
        assert_int_equal(json_integer_value(json_object_get(ev, "pid")), 1);
        json_int_t tid = json_integer_value(json_object_get(ev, "tid"));
        assert_true(tid >= 0 && tid < n_workers);
        if (strcmp(ph, "M") == 0) {
            char want[32];
            snprintf(want, sizeof want, "worker %d", (int)tid);
            assert_string_equal(json_string_value(json_object_get(ev, "name")), "thread_name");
            assert_string_equal(
                json_string_value(json_object_get(json_object_get(ev, "args"), "name")), want);
            n_m++;
            continue;
        }
        assert_string_equal(ph, "X");
        const cm__trace_event_t *e = cm__trace_event(tr, n_x++);
        assert_non_null(e);
        json_t *args = json_object_get(ev, "args");
        assert_int_equal(json_integer_value(json_object_get(args, "task")), e->task);
        assert_int_equal(json_integer_value(json_object_get(args, "run")), e->run);
        assert_int_equal(json_integer_value(json_object_get(args, "bytes")), e->bytes);
        assert_string_equal(json_string_value(json_object_get(ev, "name")), e->kind);
        assert_string_equal(json_string_value(json_object_get(ev, "cat")), e->stage);
        assert_int_equal(tid, e->worker);
        double ts = json_number_value(json_object_get(ev, "ts"));
        double dur = json_number_value(json_object_get(ev, "dur"));
        assert_true(fabs(ts - e->start_us) < 1e-3);
        assert_true(dur >= 0 && fabs(ts + dur - e->end_us) < 1e-3);
    }
    assert_int_equal(n_x, n_tasks);
    assert_int_equal(n_m, (size_t)n_workers);
    json_decref(root);
}

/* The diamond A -> {B, C} -> D with kinds and bytes. */
static void build_kinded_diamond(probe_t *p, cm_graph_t *g)
{
    int a = probe_add_kind(p, g, "read", 100, 0, NULL, 0);
    int b = probe_add_kind(p, g, "remap", 10, 40, &a, 1);
    int c = probe_add_kind(p, g, NULL, 0, 0, &a, 1);
    int bc[2] = {b, c};
    probe_add_kind(p, g, "write", 7, 0, bc, 2);
}

/* n tasks of every kind with random dependencies (mostly recent) and random bytes. */
static void build_kinded_random_graph(probe_t *p, cm_graph_t *g, int n, uint64_t seed)
{
    for (int i = 0; i < n; i++) {
        cm__rng_t rng;
        cm__rng_init(&rng, seed, (uint64_t)i);
        int deps[3], n_deps = i ? (int)cm__rng_below(&rng, 4) : 0;
        for (int k = 0; k < n_deps; k++) {
            uint64_t span = cm__rng_below(&rng, 4) ? (i < 32 ? (uint64_t)i : 32) : (uint64_t)i;
            deps[k] = i - 1 - (int)cm__rng_below(&rng, span);
        }
        size_t work = cm__rng_below(&rng, 1000), out = cm__rng_below(&rng, 2) ? 0 : 64;
        probe_add_kind(p, g, kinds[cm__rng_below(&rng, 4)], work, out, deps, n_deps);
    }
}

static void test_traced_diamond_has_one_event_per_task_in_dependency_order(void **state)
{
    (void)state;
    const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        for (int rep = 0; rep < 20; rep++) {
            probe_t *p = probe_new(4, 4, threads[t]);
            p->sleep_us = 50;
            cm_graph_t *g = cm_graph_create();
            cm_trace_t *tr = cm_trace_create();
            assert_true(g && tr);
            build_kinded_diamond(p, g);
            cm_ctx_t ctx;
            int rc = traced_run(p, g, threads[t], 0, tr, "fit", &ctx);
            if (rc) fail_run(p, g, threads[t], rc, &ctx);
            assert_ran_once_after_deps(p);
            assert_int_equal(cm__trace_runs(tr), 1);
            assert_int_equal(cm__trace_events(tr), 4);
            assert_null(cm__trace_event(tr, 4));
            assert_trace_matches_probe(tr, 0, 0, "fit", p);
            /* The diamond runs on at most two workers at once, but the team may be larger. */
            assert_json_round_trips(tr, 4, threads[t] < 4 ? threads[t] : 4);
            cm_trace_free(tr);
            cm_graph_free(g);
            probe_free(p);
        }
    }
}

static void test_traced_thousand_tasks_have_one_event_each_on_1_2_4_threads(void **state)
{
    (void)state;
    enum { N = 1000 };
    const int threads[] = {1, 2, 4};
    for (int t = 0; t < 3; t++) {
        probe_t *p = probe_new(N, N * 3, threads[t]);
        cm_graph_t *g = cm_graph_create();
        cm_trace_t *tr = cm_trace_create();
        assert_true(g && tr);
        build_kinded_random_graph(p, g, N, 4242);
        cm_ctx_t ctx;
        int rc = traced_run(p, g, threads[t], 0, tr, NULL, &ctx);
        if (rc) fail_run(p, g, threads[t], rc, &ctx);
        assert_ran_once_after_deps(p);
        assert_int_equal(cm__trace_events(tr), N);
        assert_trace_matches_probe(tr, 0, 0, NULL, p);
        assert_json_round_trips(tr, N, threads[t]);

        cm_trace_stage_t st[2];
        assert_int_equal(cm_trace_stages(tr, st, 2), 1);
        assert_string_equal(st[0].stage, "graph");
        assert_int_equal(st[0].tasks, N);
        assert_int_equal(st[0].runs, 1);
        assert_int_equal(st[0].peak_bytes, cm__graph_peak_bytes(g));
        assert_true(st[0].seconds > 0);
        cm_trace_free(tr);
        cm_graph_free(g);
        probe_free(p);
    }
}

static void test_runs_with_stage_names_are_summed_per_stage(void **state)
{
    (void)state;
    cm_trace_t *tr = cm_trace_create();
    assert_non_null(tr);
    const char *names[3] = {"fit", "remap", "fit"};
    const int sizes[3] = {12, 30, 4}; /* the first "fit" holds more bytes than the second */
    size_t peaks[3];
    double span_us = 0;
    for (int r = 0; r < 3; r++) {
        probe_t *p = probe_new(sizes[r], sizes[r] * 3, 2);
        p->sleep_us = 200;
        cm_graph_t *g = cm_graph_create();
        if (sizes[r] == 4)
            build_kinded_diamond(p, g);
        else
            build_kinded_random_graph(p, g, sizes[r], 7);
        /* Stage names are copied: the caller's buffer may change after the run. */
        char name[16];
        snprintf(name, sizeof name, "%s", names[r]);
        cm_ctx_t ctx;
        int rc = traced_run(p, g, 2, 0, tr, name, &ctx);
        if (rc) fail_run(p, g, 2, rc, &ctx);
        memset(name, 'x', sizeof name - 1);
        size_t first = cm__trace_events(tr) - (size_t)sizes[r];
        assert_trace_matches_probe(tr, first, r, names[r], p);
        peaks[r] = cm__graph_peak_bytes(g);
        cm_graph_free(g);
        probe_free(p);
    }
    assert_int_equal(cm__trace_runs(tr), 3);
    assert_int_equal(cm__trace_events(tr), 46);
    span_us = cm__trace_event(tr, 45)->end_us;
    assert_true(peaks[0] > peaks[2]);

    cm_trace_stage_t st[4];
    memset(st, 0, sizeof st);
    assert_int_equal(cm_trace_stages(tr, st, 4), 2);
    assert_string_equal(st[0].stage, "fit");
    assert_int_equal(st[0].tasks, 16);
    assert_int_equal(st[0].runs, 2);
    assert_int_equal(st[0].peak_bytes, peaks[0]);
    assert_string_equal(st[1].stage, "remap");
    assert_int_equal(st[1].tasks, 30);
    assert_int_equal(st[1].runs, 1);
    assert_int_equal(st[1].peak_bytes, peaks[1]);
    for (int s = 0; s < 2; s++) {
        /* Each run lasts at least as long as its longest chain of 200 us tasks. */
        assert_true(st[s].seconds >= 3 * 200e-6);
        assert_true(st[s].seconds <= span_us * 1e-6);
    }
    assert_null(st[2].stage); /* untouched */
    /* Fewer slots than stages: fills what fits, returns how many there are. */
    cm_trace_stage_t one = {0};
    assert_int_equal(cm_trace_stages(tr, &one, 1), 2);
    assert_string_equal(one.stage, "fit");
    assert_int_equal(one.tasks, 16);
    assert_int_equal(cm_trace_stages(tr, NULL, 0), 2);
    assert_json_round_trips(tr, 46, 2);
    cm_trace_free(tr);
    cm_trace_free(NULL);
}

static void test_failed_run_traces_the_tasks_that_ran(void **state)
{
    (void)state;
    enum { N = 10, BAD = 5 };
    cm_trace_t *tr = cm_trace_create();
    probe_t *p = probe_new(N, N, 1);
    p->fail_code = CM_EIO;
    cm_graph_t *g = cm_graph_create();
    int prev = -1;
    for (int i = 0; i < N; i++) {
        p->kind[i] = "step";
        prev = probe_add(p, g, 1, 0, 0, i == BAD ? FAIL : PLAIN, &prev, i ? 1 : 0);
    }
    cm_ctx_t ctx;
    assert_int_equal(traced_run(p, g, 1, 0, tr, "fit", &ctx), CM_EIO);
    assert_int_equal(cm__trace_events(tr), BAD + 1);
    for (size_t i = 0; i < cm__trace_events(tr); i++) {
        const cm__trace_event_t *e = cm__trace_event(tr, i);
        assert_int_equal(e->task, (int)i);
        assert_int_equal(e->failed, e->task == BAD);
    }
    cm_graph_free(g);
    probe_free(p);

    /* A run refused up front (budget) and an empty run still count as runs, with no tasks. */
    p = probe_new(1, 0, 1);
    g = cm_graph_create();
    probe_add_kind(p, g, "read", 100, 0, NULL, 0);
    assert_int_equal(traced_run(p, g, 1, 50, tr, "remap", &ctx), CM_EBUDGET);
    cm_graph_free(g);
    probe_free(p);
    g = cm_graph_create();
    cm_run_opts_t opts = {.n_threads = 2, .trace = tr, .stage = "empty"};
    assert_int_equal(cm_graph_run(g, &opts, &ctx), 0);
    cm_graph_free(g);

    assert_int_equal(cm__trace_runs(tr), 3);
    assert_int_equal(cm__trace_events(tr), BAD + 1);
    cm_trace_stage_t st[3];
    assert_int_equal(cm_trace_stages(tr, st, 3), 3);
    assert_int_equal(st[0].tasks, BAD + 1);
    assert_int_equal(st[1].tasks, 0);
    assert_int_equal(st[1].seconds, 0);
    assert_int_equal(st[2].tasks, 0);
    assert_int_equal(st[2].runs, 1);
    assert_json_round_trips(tr, BAD + 1, 1);
    cm_trace_free(tr);
}

typedef struct shared_run {
    cm_trace_t *tr;
    int rc;
    probe_t *p;
    int n_before_run;
} shared_run_t;

static void *run_on_shared_trace(void *arg)
{
    shared_run_t *s = arg;
    cm_graph_t *g = cm_graph_create();
    build_kinded_random_graph(s->p, g, s->p->cap, (uint64_t)s->p->cap);
    cm_run_opts_t opts = {.n_threads = 2, .trace = s->tr, .stage = "shared"};
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    s->rc = cm_graph_run(g, &opts, &ctx);
    cm_graph_free(g);
    return NULL;
}

static void test_graphs_running_at_once_may_share_a_trace(void **state)
{
    (void)state;
    enum { RUNS = 4 };
    cm_trace_t *tr = cm_trace_create();
    shared_run_t s[RUNS];
    pthread_t th[RUNS];
    for (int r = 0; r < RUNS; r++) {
        s[r] = (shared_run_t){.tr = tr, .p = probe_new(300 + r, 3 * (300 + r), 2)};
        s[r].p->sleep_us = 10;
        assert_int_equal(pthread_create(&th[r], NULL, run_on_shared_trace, &s[r]), 0);
    }
    for (int r = 0; r < RUNS; r++) {
        pthread_join(th[r], NULL);
        assert_int_equal(s[r].rc, 0);
    }
    assert_int_equal(cm__trace_runs(tr), RUNS);
    /* Each run's events are contiguous; its run number says which graph it was (by size). */
    size_t at = 0;
    bool seen[RUNS] = {false};
    while (at < cm__trace_events(tr)) {
        int run = cm__trace_event(tr, at)->run;
        assert_true(run >= 0 && run < RUNS && !seen[run]);
        seen[run] = true;
        size_t n = 0;
        while (at + n < cm__trace_events(tr) && cm__trace_event(tr, at + n)->run == run) n++;
        probe_t *p = NULL;
        for (int r = 0; r < RUNS; r++)
            if ((size_t)s[r].p->n == n) p = s[r].p;
        assert_non_null(p);
        assert_trace_matches_probe(tr, at, run, "shared", p);
        at += n;
    }
    cm_trace_stage_t st;
    assert_int_equal(cm_trace_stages(tr, &st, 1), 1);
    assert_int_equal(st.tasks, 4 * 300 + 6);
    assert_int_equal(st.runs, RUNS);
    for (int r = 0; r < RUNS; r++) probe_free(s[r].p);
    cm_trace_free(tr);
}

static void test_run_without_trace_behaves_as_before(void **state)
{
    (void)state;
    cm_trace_t *unused = cm_trace_create();
    const int threads[] = {1, 4};
    for (int t = 0; t < 2; t++) {
        probe_t *p = probe_new(500, 1500, threads[t]);
        cm_graph_t *g = cm_graph_create();
        build_kinded_random_graph(p, g, 500, 99);
        cm_ctx_t ctx;
        /* A stage name without a trace is ignored. */
        int rc = traced_run(p, g, threads[t], 0, NULL, "fit", &ctx);
        if (rc) fail_run(p, g, threads[t], rc, &ctx);
        assert_ran_once_after_deps(p);
        assert_int_equal(cm__graph_done_count(g), 500);
        cm_graph_free(g);
        probe_free(p);
    }
    assert_int_equal(cm__trace_events(unused), 0);
    assert_int_equal(cm__trace_runs(unused), 0);
    assert_int_equal(cm_trace_stages(unused, NULL, 0), 0);
    assert_json_round_trips(unused, 0, 0);
    cm_trace_free(unused);
}

/* ---- DOT -------------------------------------------------------------------------------- */

/* The graph's DOT form as a string (caller frees). */
static char *dot_text(const cm_graph_t *g)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    assert_int_equal(cm_graph_write_dot(g, f, &ctx), 0);
    long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    char *text = calloc((size_t)len + 1, 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    return text;
}

static int count_substrings(const char *s, const char *sub)
{
    int n = 0;
    for (const char *at = strstr(s, sub); at; at = strstr(at + 1, sub)) n++;
    return n;
}

static void test_dot_of_a_diamond_has_its_four_nodes_and_four_edges(void **state)
{
    (void)state;
    probe_t *p = probe_new(4, 4, 2);
    cm_graph_t *g = cm_graph_create();
    build_kinded_diamond(p, g);
    char *before = dot_text(g);
    assert_true(strncmp(before, "digraph", 7) == 0);
    assert_int_equal(count_substrings(before, "[label="), 4);
    assert_int_equal(count_substrings(before, " -> "), 4);
    const char *expected[] = {
        "t0 [label=\"read 0\\n100 B\"",
        "t1 [label=\"remap 1\\n50 B\"",
        "t2 [label=\"task 2\\n0 B\"",
        "t3 [label=\"write 3\\n7 B\"",
        "t0 -> t1;",
        "t0 -> t2;",
        "t1 -> t3;",
        "t2 -> t3;",
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++)
        if (!strstr(before, expected[i])) fail_msg("no '%s' in:\n%s", expected[i], before);
    assert_int_equal(count_substrings(before, "{"), 1);
    assert_int_equal(count_substrings(before, "}"), 1);

    cm_ctx_t ctx;
    assert_int_equal(probe_run(p, g, 2, 0, false, &ctx), 0);
    char *after = dot_text(g);
    assert_string_equal(before, after); /* the run does not change the graph's form */
    free(before);
    free(after);
    cm_graph_free(g);
    probe_free(p);

    /* Kinds are quoted for DOT, and large byte counts are shown in binary units. */
    g = cm_graph_create();
    int id;
    cm_task_t odd = {.fn = nop_task, .kind = "say \"hi\"\\", .work_bytes = (size_t)3 << 20};
    assert_int_equal(cm_graph_add(g, &odd, &id, NULL), 0);
    char *text = dot_text(g);
    assert_non_null(strstr(text, "label=\"say \\\"hi\\\"\\\\ 0\\n3.0 MiB\""));
    free(text);
    cm_graph_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diamond_runs_in_dependency_order),
        cmocka_unit_test(test_thousands_of_random_tasks_run_once_after_their_deps),
        cmocka_unit_test(test_worker_index_is_in_range_and_never_shared),
        cmocka_unit_test(test_tasks_holding_bytes_start_by_lowest_id),
        cmocka_unit_test(test_ready_consumer_holding_no_bytes_runs_before_the_next_producer),
        cmocka_unit_test(test_blocked_task_is_not_overtaken_by_a_smaller_one),
        cmocka_unit_test(test_failing_task_in_chain_stops_its_dependents),
        cmocka_unit_test(test_failing_task_in_wide_graph_starts_nothing_after_it_on_one_thread),
        cmocka_unit_test(test_failing_task_in_wide_graph_starts_nothing_after_it_on_four_threads),
        cmocka_unit_test(test_concurrent_failures_return_the_recorded_error),
        cmocka_unit_test(test_cancel_from_a_task_stops_the_chain),
        cmocka_unit_test(test_cancel_from_a_task_starts_nothing_after_it_on_four_threads),
        cmocka_unit_test(test_cancel_set_before_the_run_runs_nothing),
        cmocka_unit_test(test_budget_is_never_exceeded_by_producers_and_consumers),
        cmocka_unit_test(test_budget_for_one_task_at_a_time_completes_without_deadlock),
        cmocka_unit_test(test_budget_for_one_producer_consumer_pair_never_deadlocks_on_two_threads),
        cmocka_unit_test(test_graph_that_does_not_fit_in_id_order_is_refused_up_front),
        cmocka_unit_test(test_out_bytes_are_held_until_every_dependent_finishes),
        cmocka_unit_test(test_budget_is_never_exceeded_by_many_random_tasks),
        cmocka_unit_test(test_task_over_budget_fails_up_front_with_ebudget),
        cmocka_unit_test(test_budget_suggested_for_producer_and_consumer_is_enough),
        cmocka_unit_test(test_progress_reports_weights_done_up_to_the_total),
        cmocka_unit_test(test_ordered_reduction_is_bit_identical_across_thread_counts),
        cmocka_unit_test(test_add_rejects_unknown_or_future_dependency),
        cmocka_unit_test(test_empty_graph_runs_and_returns_zero),
        cmocka_unit_test(test_graph_runs_only_once),
        cmocka_unit_test(test_traced_diamond_has_one_event_per_task_in_dependency_order),
        cmocka_unit_test(test_traced_thousand_tasks_have_one_event_each_on_1_2_4_threads),
        cmocka_unit_test(test_runs_with_stage_names_are_summed_per_stage),
        cmocka_unit_test(test_failed_run_traces_the_tasks_that_ran),
        cmocka_unit_test(test_graphs_running_at_once_may_share_a_trace),
        cmocka_unit_test(test_run_without_trace_behaves_as_before),
        cmocka_unit_test(test_dot_of_a_diamond_has_its_four_nodes_and_four_edges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
