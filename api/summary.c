/* The summary of a run: each k's figures gathered once, and written as JSON (here: the input,
 * the seed and colour space, the chunk reads, and per output its k, inertia, counts and paths)
 * or as the picture of the elbow (summary_svg.c), as the path's extension says. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"

int cm__summary_format_of(const char *path, cm__summary_format_t *out, cm_ctx_t *ctx)
{
    const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
    const char *dot = strrchr(name, '.'); /* one that starts the name is no extension */
    if (dot && dot > name && !strcasecmp(dot, ".json")) {
        *out = CM__SUMMARY_JSON;
        return 0;
    }
    if (dot && dot > name && !strcasecmp(dot, ".svg")) {
        *out = CM__SUMMARY_SVG;
        return 0;
    }
    return cm_fail(ctx, CM_EUSAGE,
                   "%s: its extension says how to write the summary: .json (JSON) or .svg (a "
                   "picture of the error against k)",
                   path);
}

/* One output's entry; true when out of memory. */
static bool add_run(json_t *runs, const cm__summary_k_t *sk)
{
    const cm_model_t *m = sk->out->fitted;
    json_t *r = json_object(), *counts = json_array();
    bool bad = !r || !counts;
    for (int j = 0; !bad && j < m->k; j++)
        bad |= json_array_append_new(counts, json_integer(m->counts[j]));
    bad |= json_object_set_new(r, "k", json_integer(sk->k));
    bad |= json_object_set_new(r, "k_asked", json_integer(sk->k_asked));
    bad |= json_object_set_new(r, "inertia", json_real(m->inertia));
    bad |= json_object_set_new(r, "pixels", json_integer(m->n_pixels));
    bad |= json_object_set_new(r, "mean_squared_error", json_real(sk->mse));
    bad |= json_object_set_new(r, "counts", counts);
    bad |= json_object_set_new(r, "output", json_string(sk->out->out));
    bad |= json_object_set_new(r, "labels",
                               sk->out->labels ? json_string(sk->out->labels) : json_null());
    bad |=
        json_object_set_new(r, "model", sk->out->model ? json_string(sk->out->model) : json_null());
    bad |= json_object_set_new(r, "sample_px", json_integer(m->sample_px));
    bad |= json_object_set_new(r, "iterations", json_integer(m->iterations));
    bad |= json_array_append_new(runs, r);
    return bad;
}

/* The summary s as JSON text, which the caller frees; NULL when out of memory. */
static char *summary_json(const cm__summary_t *s)
{
    const cm_run_report_t *rep = s->rep;
    json_t *root = json_object(), *runs = json_array();
    bool bad = !root || !runs;
    bad |= json_object_set_new(root, "input", json_string(s->in_path));
    bad |= json_object_set_new(root, "width", json_integer(rep->width));
    bad |= json_object_set_new(root, "height", json_integer(rep->height));
    bad |= json_object_set_new(root, "seed", json_integer((json_int_t)s->p->seed));
    bad |=
        json_object_set_new(root, "colorspace", json_string(cm_colorspace_name(s->p->colorspace)));
    bad |= json_object_set_new(root, "chunks", json_integer(rep->chunks));
    bad |= json_object_set_new(root, "chunks_read", json_integer(rep->chunks_read));
    bad |= json_object_set_new(root, "fit_chunks_read", json_integer(rep->fit_chunks_read));
    bad |= json_object_set_new(root, "chunks_reused", json_integer(rep->chunks_reused));
    for (int i = 0; !bad && i < s->n; i++) bad |= add_run(runs, &s->ks[i]);
    bad |= json_object_set_new(root, "runs", runs);
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return text;
}

int cm__summary_write(const char *path, const char *in_path, const cm_params_t *p,
                      const cm_run_output_t *outs, const int *ks_asked, int n,
                      const cm_run_report_t *rep, cm_ctx_t *ctx)
{
    cm__summary_format_t format;
    CM_TRY(cm__summary_format_of(path, &format, ctx));
    cm__summary_k_t *ks = calloc((size_t)n, sizeof *ks);
    CM_FAIL_IF(ctx, !ks, CM_ENOMEM, "%s: out of memory", path);
    for (int i = 0; i < n; i++) {
        const cm_model_t *m = outs[i].fitted;
        ks[i] = (cm__summary_k_t){.out = &outs[i],
                                  .k = m->k,
                                  .k_asked = ks_asked[i],
                                  .mse = m->n_pixels ? m->inertia / (double)m->n_pixels : 0.0};
    }
    cm__summary_t s = {.in_path = in_path, .p = p, .rep = rep, .ks = ks, .n = n};
    char *text = NULL;
    size_t len = 0;
    int rc = 0;
    if (format == CM__SUMMARY_SVG) {
        rc = cm__summary_svg(&s, path, &text, &len, ctx);
    } else if ((text = summary_json(&s))) {
        len = strlen(text);
    } else {
        rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    free(ks);
    if (rc == 0) rc = cm_file_write_atomic(path, text, len, ctx);
    free(text);
    return rc;
}
