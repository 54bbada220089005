/* The trace and the task graphs of a piece of work, written to the files the options name
 * whether the work succeeded or not. */
#include <stdlib.h>

#include "api_internal.h"

/* Gathers every graph of the work, before it runs, as one DOT digraph each. */
static void graph_to_dot(void *user, const char *stage, const cm_graph_t *g)
{
    cm__dumps_t *d = user;
    cm_ctx_t ignored; /* a write error shows when the text is written */
    cm_ctx_init(&ignored);
    fprintf(d->graph, "// stage %s\n", stage);
    cm_graph_write_dot(g, d->graph, &ignored);
}

int cm__dumps_begin(cm__dumps_t *d, const cm_options_t *o, cm_params_t *p, cm_ctx_t *ctx)
{
    *d = (cm__dumps_t){.o = o};
    if (cm_comm_rank() != 0) { /* rank 0's trace and graph stand for the job's */
        d->o = NULL;
        return 0;
    }
    if (o->trace_path && !p->trace) {
        d->own_trace = p->trace = cm_trace_create();
        CM_FAIL_IF(ctx, !p->trace, CM_ENOMEM, "out of memory for the trace");
    }
    if (o->graph_path) {
        d->graph = open_memstream(&d->graph_text, &d->graph_size);
        CM_FAIL_IF(ctx, !d->graph, CM_ENOMEM, "out of memory for the graph");
        p->graph_fn = graph_to_dot;
        p->graph_user = d;
    }
    return 0;
}

/* Writes the trace as Chrome trace-event JSON to path, atomically. */
static int write_trace(const char *path, const cm_trace_t *trace, cm_ctx_t *ctx)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    int rc = f ? cm_trace_write_json(trace, f, ctx) : cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (f && fclose(f) != 0 && rc == 0) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) rc = cm_file_write_atomic(path, text, size, ctx);
    free(text);
    return rc;
}

int cm__dumps_end(cm__dumps_t *d, const cm_params_t *p, int rc, cm_ctx_t *ctx)
{
    const cm_options_t *o = d->o;
    if (o && o->trace_path && p->trace) {
        cm_ctx_t tctx;
        cm_ctx_init(&tctx);
        if (write_trace(o->trace_path, p->trace, &tctx) < 0) {
            cm_ctx_t failure;
            cm_ctx_init(&failure);
            cm_fail(&failure, tctx.code, "%s: %s", o->trace_path, tctx.msg);
            if (rc == 0)
                rc = cm__ctx_pass(ctx, &failure);
            else if (o->warn) /* a second failure, told as warnings are, with its code */
                o->warn(o->user, &failure);
        }
    }
    if (d->graph) {
        fclose(d->graph);
        int grc = cm_file_write_atomic(o->graph_path, d->graph_text, d->graph_size, ctx);
        if (rc == 0) rc = grc;
        free(d->graph_text);
    }
    cm_trace_free(d->own_trace);
    *d = (cm__dumps_t){0};
    return rc;
}
