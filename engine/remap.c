/* The remap pass: one task per chunk reads it once and, for every model of the pass, assigns
 * its pixels to the nearest centre and encodes the result; per model, one writer task per
 * chunk, chained in chunk order, hands it to that model's sink and adds up the exact counts and
 * inertia. */
#include <stdlib.h>
#include <string.h>

#include "engine_internal.h"

typedef struct chunk_out {
    uint8_t *pixels;
    void *labels;
    void *encoded;   /* what sink->encode made of pixels and labels */
    int64_t *counts; /* k: valid pixels per centre */
    double inertia;
} chunk_out_t;

/* One model of the pass and its output. */
typedef struct remapper {
    const cm_source_t *src;
    const cm_sink_t *sink;
    cm_model_t *model;
    cm__pixfmt_t fmt;
    float *soa;    /* centres band by band (standardised, if the model is): d rows of k */
    void *colours; /* k * d samples of the image's type */
    int label_bits;
    uint32_t label_masked;
    uint16_t *cache; /* 8-bit images: colour -> label + 1 (0: not yet known), or NULL */
    bool dither;     /* ordered dither (with at least 2 centres) */
    cm_kernel_t kernel;
    chunk_out_t *chunks;
    double inertia;
    int64_t n_pixels;
} remapper_t;

struct job_run;

/* The models of one pass over the source; run is the batch job it belongs to, if any. */
typedef struct pass {
    const cm_source_t *src;
    remapper_t *r;
    int n;
    int k_max;
    struct job_run *run;
} pass_t;

typedef struct remap_task {
    pass_t *pass;
    int64_t idx;
} remap_task_t;

typedef struct write_task {
    remapper_t *r;
    int64_t idx;
    struct job_run *run;
} write_task_t;

static void chunk_out_free(const cm_sink_t *sink, chunk_out_t *c)
{
    if (c->encoded && sink->discard) sink->discard(sink->self, c->encoded);
    free(c->pixels);
    free(c->labels);
    free(c->counts);
    *c = (chunk_out_t){0};
}

/* The squared distance from x to centre j, summed in the order of cm__nearest_soa. */
static float dist2_to(const float *soa, int k, int d, const float *x, int j)
{
    float t = x[0] - soa[j];
    float sum = t * t;
    for (int b = 1; b < d; b++) {
        t = x[b] - soa[(size_t)b * k + j];
        sum += t * t;
    }
    return sum;
}

/* The colour cache: for 8-bit images of up to 3 features, the nearest centre of a colour is
 * looked up in a table of every colour, filled as colours are met. Any thread may fill an
 * entry; all would store the same label, so relaxed atomics suffice. The distance is measured
 * again to the cached centre, in the order cm__nearest_soa sums it, so inertia is the same. */
static int cached_nearest(const remapper_t *r, const uint8_t *px, const float *x, float *dist,
                          float *d2)
{
    const cm__pixfmt_t *f = &r->fmt;
    uint32_t key = cm__colour_key(f, px);
    uint16_t hit = __atomic_load_n(&r->cache[key], __ATOMIC_RELAXED);
    int k = r->model->k;
    if (!hit) {
        int best = cm__nearest_soa(r->soa, k, f->d, x, dist, d2);
        __atomic_store_n(&r->cache[key], (uint16_t)(best + 1), __ATOMIC_RELAXED);
        return best;
    }
    int best = hit - 1;
    *d2 = dist2_to(r->soa, k, f->d, x, best);
    return best;
}

/* ---- ordered dither ----
 * An 8 x 8 Bayer matrix (its thresholds 0..63 are the bits of x ^ y and y, interleaved and
 * reversed), made a symmetric offset in (-1/2, 1/2) and indexed by the pixel's position in
 * the image: the same pixel gets the same offset whatever chunk it is in. */
enum { BAYER = 8 };

static float bayer_offset(int64_t x, int64_t y)
{
    unsigned u = (unsigned)(x & (BAYER - 1)), v = (unsigned)(y & (BAYER - 1)), m = 0;
    for (int i = 0; i < 3; i++) {
        unsigned w = u ^ v;
        m |= ((w >> i) & 1u) << (2 * (2 - i) + 1) | ((v >> i) & 1u) << (2 * (2 - i));
    }
    return ((float)m + 0.5f) / (BAYER * BAYER) - 0.5f;
}

/* Labels of the valid pixels [first, first + n) of a chunk at (x0, y0), w wide, with ordered
 * dither, and their squared distances to the centres they take (dist: k floats of scratch).
 * A pixel x whose nearest centres are a, then b (ties to the lower index), lies a fraction
 * t = (x - a).(b - a) / |b - a|^2 of the way from a to b; it is moved by (m - 1/2) (b - a),
 * m the threshold of its position in [0, 1), and takes the nearer of a and b from there: b
 * when m > 1 - t, so for a share t of the pixels around it. On average the output is then the
 * colour of the input whatever direction a and b lie in, and a pixel on a centre keeps it.
 * Nothing but the pixel's position and features decides, so no chunk or thread can change
 * it. */
static void dither_assign(const remapper_t *r, int64_t x0, int64_t y0, int64_t w, int64_t first,
                          int64_t n, const float *feat, const uint8_t *valid, float *dist,
                          uint16_t *labels, float *d2)
{
    int k = r->model->k, d = r->model->d;
    const float *soa = r->soa;
    for (int64_t i = 0; i < n; i++) {
        if (!valid[i]) continue;
        const float *x = feat + i * d;
        for (int j = 0; j < k; j++) { /* band by band, as cm__nearest_soa: the same sums */
            float t = x[0] - soa[j];
            dist[j] = t * t;
        }
        for (int b = 1; b < d; b++)
            for (int j = 0; j < k; j++) {
                float t = x[b] - soa[(size_t)b * k + j];
                dist[j] += t * t;
            }
        int a = dist[1] < dist[0] ? 1 : 0, nb = 1 - a;
        for (int j = 2; j < k; j++) {
            if (dist[j] < dist[a]) {
                nb = a;
                a = j;
            } else if (dist[j] < dist[nb]) {
                nb = j;
            }
        }
        double along = 0.0, len2 = 0.0;
        for (int b = 0; b < d; b++) {
            double step = (double)soa[(size_t)b * k + nb] - soa[(size_t)b * k + a];
            along += ((double)x[b] - soa[(size_t)b * k + a]) * step;
            len2 += step * step;
        }
        int64_t at = first + i;
        double off = bayer_offset(x0 + at % w, y0 + at / w); /* m - 1/2 */
        int take = len2 > 0.0 && along / len2 + off > 0.5 ? nb : a;
        labels[i] = (uint16_t)take;
        d2[i] = dist[take];
    }
}

/* Assigns one block of pixels at a time: features, labels and masks stay in cache. */
enum { BLOCK = 4096 };

typedef struct scratch {
    float *feat, *dist;
    uint8_t valid[BLOCK];
    uint16_t labels[BLOCK];
    float d2[BLOCK];
} scratch_t;

/* Remaps chunk idx at (x, y), w x h, for one model: c->pixels holds the chunk as read; fills
 * c's counts, inertia and labels, recolours c->pixels and encodes them when the sink does. */
static int remap_one(const remapper_t *r, int64_t idx, int64_t x, int64_t y, int64_t w, int64_t h,
                     chunk_out_t *c, scratch_t *s, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &r->src->grid;
    int k = r->model->k, d = r->model->d;
    int64_t n = w * h;
    c->counts = calloc((size_t)k, sizeof(int64_t));
    if (r->sink->want_labels) c->labels = malloc((size_t)(r->label_bits / 8) * (size_t)n);
    CM_FAIL_IF(ctx, !c->counts || (r->sink->want_labels && !c->labels), CM_ENOMEM,
               "out of memory remapping chunk %lld", (long long)idx);

    double inertia = 0.0;
    for (int64_t first = 0; first < n; first += BLOCK) {
        int64_t m = n - first < BLOCK ? n - first : BLOCK;
        cm__to_features(&r->fmt, c->pixels, first, m, s->feat, s->valid);
        if (r->dither) {
            dither_assign(r, x, y, w, first, m, s->feat, s->valid, s->dist, s->labels, s->d2);
        } else if (!r->cache) {
            cm__assign_block(r->kernel, r->soa, k, d, s->feat, m, s->valid, s->labels, s->d2,
                             s->dist);
        }
        for (int64_t i = 0; i < m; i++) {
            if (!s->valid[i]) {
                s->labels[i] = CM__MASKED;
                continue;
            }
            if (r->cache)
                s->labels[i] =
                    (uint16_t)cached_nearest(r, (const uint8_t *)c->pixels + (first + i) * g->bands,
                                             s->feat + i * d, s->dist, &s->d2[i]);
            c->counts[s->labels[i]]++;
            inertia += s->d2[i];
        }
        cm__recolour(&r->fmt, c->pixels, first, m, s->labels, r->colours);
        if (!c->labels) continue;
        if (r->label_bits == 8)
            for (int64_t i = 0; i < m; i++)
                ((uint8_t *)c->labels)[first + i] =
                    s->labels[i] == CM__MASKED ? (uint8_t)r->label_masked : (uint8_t)s->labels[i];
        else
            for (int64_t i = 0; i < m; i++)
                ((uint16_t *)c->labels)[first + i] =
                    s->labels[i] == CM__MASKED ? (uint16_t)r->label_masked : s->labels[i];
    }
    c->inertia = inertia;
    /* Compress here, on every core; the writer only writes. */
    if (r->sink->encode) {
        int rc = r->sink->encode(r->sink->self, idx, c->pixels, c->labels, &c->encoded, ctx);
        free(c->pixels);
        free(c->labels);
        c->pixels = NULL;
        c->labels = NULL;
        if (rc < 0) return rc;
    }
    return 0;
}

/* Reads chunk idx once and remaps it with every model of the pass: each model but the last
 * works on a copy of the chunk as read, the last on the chunk itself. */
static int remap_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const remap_task_t *t = arg;
    const pass_t *pass = t->pass;
    const cm_grid_t *g = &pass->src->grid;
    int64_t x, y, w, h;
    cm_grid_rect(g, t->idx, &x, &y, &w, &h);
    size_t chunk_bytes = cm_grid_chunk_bytes(g);

    uint8_t *raw = malloc(chunk_bytes);
    scratch_t *s = malloc(sizeof(scratch_t));
    if (s) {
        s->feat = malloc(sizeof(float) * BLOCK * (size_t)cm_grid_features(g));
        s->dist = malloc(sizeof(float) * (size_t)pass->k_max);
    }
    int rc = 0;
    if (!raw || !s || !s->feat || !s->dist)
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory remapping chunk %lld", (long long)t->idx);
    if (rc == 0) rc = pass->src->read(pass->src->self, worker, t->idx, raw, ctx);
    for (int i = 0; rc == 0 && i < pass->n; i++) {
        const remapper_t *r = &pass->r[i];
        chunk_out_t *c = &r->chunks[t->idx];
        if (i == pass->n - 1) {
            c->pixels = raw;
            raw = NULL;
        } else {
            c->pixels = malloc(chunk_bytes);
            if (!c->pixels) {
                rc = cm_fail(ctx, CM_ENOMEM, "out of memory remapping chunk %lld",
                             (long long)t->idx);
                break;
            }
            memcpy(c->pixels, raw, chunk_bytes);
        }
        rc = remap_one(r, t->idx, x, y, w, h, c, s, ctx);
    }
    free(raw);
    if (s) {
        free(s->feat);
        free(s->dist);
    }
    free(s);
    return rc;
}

static int write_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const write_task_t *t = arg;
    remapper_t *r = t->r;
    chunk_out_t *c = &r->chunks[t->idx];
    int rc = r->sink->put(r->sink->self, t->idx, c->pixels, c->labels, c->encoded, ctx);
    for (int j = 0; j < r->model->k; j++) {
        r->model->counts[j] += c->counts[j];
        r->n_pixels += c->counts[j];
    }
    r->inertia += c->inertia;
    chunk_out_free(r->sink, c);
    return rc;
}

/* What a remap task holds for one model of k centres: its chunk, counts and labels until
 * written (held), and its scratch while it runs. */
static void task_bytes(const cm_source_t *src, int k, bool labels, size_t *held, size_t *scratch)
{
    const cm_grid_t *g = &src->grid;
    int bits;
    uint32_t masked;
    cm_labels_plan(src, k, &bits, &masked);
    *held = cm_grid_chunk_bytes(g) + sizeof(int64_t) * (size_t)k;
    if (labels) *held += (size_t)g->chunk_w * g->chunk_h * (size_t)(bits / 8);
    *scratch =
        sizeof(scratch_t) + sizeof(float) * ((size_t)BLOCK * cm_grid_features(g) + (size_t)k);
}

/* The same for a task that remaps with n models of ks[i] centres: a chunk, counts and labels
 * per model (the chunk as read becomes the last model's), and the largest scratch. */
static void pass_bytes(const cm_source_t *src, const int *ks, int n, bool labels, size_t *held,
                       size_t *scratch)
{
    *held = *scratch = 0;
    for (int i = 0; i < n; i++) {
        size_t h, w;
        task_bytes(src, ks[i], labels, &h, &w);
        *held += h;
        if (w > *scratch) *scratch = w;
    }
}

int cm_budget_check_ks(const cm_source_t *src, const cm_params_t *p, const int *ks, int n_k,
                       bool labels, cm_ctx_t *ctx)
{
    size_t held, scratch, need = cm__sample_task_bytes(src);
    pass_bytes(src, ks, n_k, labels, &held, &scratch);
    if (held + scratch > need) need = held + scratch;
    if (need <= p->budget_bytes) return 0;
    if (n_k > 1)
        return cm_fail(ctx, CM_EBUDGET,
                       "memory budget of %zu bytes is too small: a chunk remapped with %d "
                       "models at once needs %zu bytes (use --memory %zuM or more)",
                       p->budget_bytes, n_k, need, (need + (1u << 20) - 1) >> 20);
    return cm_fail(ctx, CM_EBUDGET,
                   "memory budget of %zu bytes is too small: a chunk needs %zu bytes at once "
                   "(use --memory %zuM or more)",
                   p->budget_bytes, need, (need + (1u << 20) - 1) >> 20);
}

int cm_budget_check(const cm_source_t *src, const cm_params_t *p, bool labels, cm_ctx_t *ctx)
{
    int k = cm__params_k(p);
    return cm_budget_check_ks(src, p, &k, 1, labels, ctx);
}

/* Sets up r for remapping src with model to sink; CM_ENOMEM when out of memory. */
static int remapper_init(remapper_t *r, const cm_source_t *src, cm_model_t *model,
                         const cm_params_t *p, const cm_sink_t *sink, int n_models, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int k = model->k, d = model->d;
    int64_t n_chunks = cm_grid_count(g);
    *r = (remapper_t){.src = src, .sink = sink, .model = model};
    r->soa = malloc(sizeof(float) * (size_t)k * d);
    r->colours = malloc((size_t)k * d * cm_stype_size(g->stype));
    r->chunks = calloc((size_t)n_chunks, sizeof(chunk_out_t));
    CM_FAIL_IF(ctx, !r->soa || !r->colours || !r->chunks, CM_ENOMEM,
               "out of memory planning %lld chunks", (long long)n_chunks);
    /* Distances are measured where the fit measured them: in Lab, in standardised units, if
     * either. */
    for (int j = 0; j < k; j++) {
        double v[CM_BANDS_MAX];
        cm__centre_features(model->colorspace, g->stype, d, model->mean, model->std,
                            model->centroids + (size_t)j * d, v);
        for (int b = 0; b < d; b++) r->soa[(size_t)b * k + j] = (float)v[b];
    }
    cm_model_colors(model, g->stype, r->colours);
    cm__pixfmt_init(&r->fmt, src, model->mean, model->std);
    r->fmt.lab = model->colorspace == CM_COLORSPACE_LAB;
    r->dither = p->dither == CM_DITHER_ORDERED && k > 1;
    cm_labels_plan(src, k, &r->label_bits, &r->label_masked);
    r->kernel = p->kernel;
    /* The cache pays off once the image holds several times the table's 2^(8d) entries of
     * work, or when asked for; its 32 MiB (RGB) are outside the chunk budget, so a pass with
     * several models goes without unless asked for it (the output is the same). It keys on the
     * pixel's colour, which decides its features (Lab ones too) and so its centre, but not
     * the dithered centre, which also follows the pixel's position: dithering goes without. */
    int64_t n_pixels = g->width * g->height;
    bool cacheable = g->stype == CM_U8 && d <= 3 && k < 65535 && !r->dither;
    if (cacheable && (p->color_cache > 0 || (p->color_cache < 0 && n_models == 1 && k >= 4 &&
                                             n_pixels >= ((int64_t)1 << (8 * d)) / 4)))
        r->cache = calloc((size_t)1 << (8 * d), sizeof(uint16_t)); /* NULL: go without */
    return 0;
}

static void remapper_free(remapper_t *r)
{
    for (int64_t i = 0; r->chunks && i < cm_grid_count(&r->src->grid); i++)
        chunk_out_free(r->sink, &r->chunks[i]);
    free(r->chunks);
    free(r->cache);
    free(r->colours);
    free(r->soa);
    *r = (remapper_t){0};
}

/* CM_EINPUT or CM_EUSAGE when model cannot remap an image of grid g. */
static int check_model(const cm_grid_t *g, const cm_model_t *model, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, model->d != cm_grid_features(g), CM_EINPUT,
               "the model has %d features, the image %d", model->d, cm_grid_features(g));
    return cm__colorspace_check(g, model->colorspace, ctx);
}

static int job_remap(void *arg, int worker, cm_ctx_t *ctx);
static int job_write(void *arg, int worker, cm_ctx_t *ctx);

/* Adds the tasks of pass over its n_chunks chunks: a remap task per chunk (after task `after`,
 * when >= 0) holding held + scratch bytes, and per model a chain of writes in chunk order, the
 * first model's counting for progress; prev[i] is the last write of model i (-1 before any).
 * tasks and writes (n_chunks, n_chunks * pass->n) hold the tasks' arguments. A batch job's
 * pass (pass->run) takes the tasks that keep its failures to itself. */
static int add_pass(cm_graph_t *graph, pass_t *pass, int64_t n_chunks, size_t held, size_t scratch,
                    int after, remap_task_t *tasks, write_task_t *writes, int *prev, cm_ctx_t *ctx)
{
    for (int i = 0; i < pass->n; i++) prev[i] = -1;
    for (int64_t c = 0; c < n_chunks; c++) {
        tasks[c] = (remap_task_t){pass, c};
        int remap_id;
        CM_TRY(cm_graph_add(graph,
                            &(cm_task_t){.fn = pass->run ? job_remap : remap_chunk,
                                         .kind = "remap",
                                         .arg = &tasks[c],
                                         .out_bytes = held,
                                         .work_bytes = scratch,
                                         .deps = &after,
                                         .n_deps = after >= 0},
                            &remap_id, ctx));
        for (int i = 0; i < pass->n; i++) {
            write_task_t *w = &writes[c * pass->n + i];
            *w = (write_task_t){&pass->r[i], c, pass->run};
            int deps[2] = {remap_id, prev[i]};
            CM_TRY(cm_graph_add(graph,
                                &(cm_task_t){.fn = pass->run ? job_write : write_chunk,
                                             .kind = "write",
                                             .arg = w,
                                             .weight = i == 0,
                                             .deps = deps,
                                             .n_deps = prev[i] < 0 ? 1 : 2},
                                &prev[i], ctx));
        }
    }
    return 0;
}

/* After a pass that ran: the figures of its whole image in each model. */
static void pass_figures(const pass_t *pass)
{
    for (int i = 0; i < pass->n; i++) {
        pass->r[i].model->inertia = pass->r[i].inertia;
        pass->r[i].model->n_pixels = pass->r[i].n_pixels;
    }
}

int cm_remap_many(const cm_source_t *src, cm_model_t *const *models, int n_models,
                  const cm_params_t *p, const cm_sink_t *sinks, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    CM_FAIL_IF(ctx, n_models < 1, CM_EUSAGE, "no model to remap with");
    CM_FAIL_IF(ctx, p->dither != CM_DITHER_NONE && p->dither != CM_DITHER_ORDERED, CM_EUSAGE,
               "unknown dither %d", (int)p->dither);
    int k_max = 1;
    for (int i = 0; i < n_models; i++) {
        CM_TRY(check_model(g, models[i], ctx));
        if (models[i]->k > k_max) k_max = models[i]->k;
    }
    int64_t n_chunks = cm_grid_count(g);

    int rc = CM_ENOMEM;
    pass_t pass = {.src = src, .n = n_models, .k_max = k_max};
    pass.r = calloc((size_t)n_models, sizeof(remapper_t));
    int *ks = malloc(sizeof(int) * (size_t)n_models);
    remap_task_t *tasks = malloc(sizeof(remap_task_t) * (size_t)n_chunks);
    write_task_t *writes = malloc(sizeof(write_task_t) * (size_t)n_chunks * (size_t)n_models);
    int *prev_write = malloc(sizeof(int) * (size_t)n_models);
    cm_graph_t *graph = cm_graph_create();
    if (!pass.r || !ks || !tasks || !writes || !prev_write || !graph) {
        cm_fail(ctx, CM_ENOMEM, "out of memory planning %lld chunks", (long long)n_chunks);
        goto cleanup;
    }
    bool labels = false;
    for (int i = 0; i < n_models; i++) {
        rc = remapper_init(&pass.r[i], src, models[i], p, &sinks[i], n_models, ctx);
        if (rc < 0) goto cleanup;
        ks[i] = models[i]->k;
        labels |= sinks[i].want_labels;
    }
    size_t held, scratch;
    pass_bytes(src, ks, n_models, labels, &held, &scratch);
    rc = add_pass(graph, &pass, n_chunks, held, scratch, -1, tasks, writes, prev_write, ctx);
    if (rc < 0) goto cleanup;
    for (int i = 0; i < n_models; i++)
        memset(models[i]->counts, 0, sizeof(int64_t) * (size_t)models[i]->k);
    rc = cm__graph_run(graph, p, "remap", ctx);
    if (rc == 0) pass_figures(&pass);
cleanup:
    for (int i = 0; pass.r && i < n_models; i++)
        if (pass.r[i].src) remapper_free(&pass.r[i]);
    cm_graph_free(graph);
    free(prev_write);
    free(writes);
    free(tasks);
    free(ks);
    free(pass.r);
    return rc;
}

/* ---- batches: one graph, one sub-graph per image ---- */

/* A job of a batch during the pass. */
typedef struct job_run {
    cm_remap_job_t *job;
    const cm_params_t *p;
    pass_t pass; /* one model, set up by the open task */
    cm_model_t *model;
    const cm_sink_t *sink;
    remap_task_t *tasks; /* one per chunk */
    write_task_t *writes;
    int failed; /* atomic: a task of the job failed and its message is the job's */
    bool closed;
    int close_id; /* its close task in the graph, or -1 */
} job_run_t;

/* A job's task failed with rc (its message in local): the first failure becomes the job's and
 * the graph goes on with the other jobs, unless the whole pass was cancelled. */
static int job_fail(job_run_t *jr, int rc, const cm_ctx_t *local, cm_ctx_t *ctx)
{
    if (rc == CM_ECANCELED)
        return cm_fail(ctx, rc, "%s", local->msg[0] ? local->msg : "interrupted");
    if (!__atomic_exchange_n(&jr->failed, 1, __ATOMIC_ACQ_REL)) {
        jr->job->ctx = *local;
        jr->job->rc = rc;
    }
    return 0;
}

static bool job_failed(job_run_t *jr)
{
    return __atomic_load_n(&jr->failed, __ATOMIC_ACQUIRE);
}

static bool same_grid(const cm_grid_t *a, const cm_grid_t *b)
{
    return a->width == b->width && a->height == b->height && a->bands == b->bands &&
           a->alpha_band == b->alpha_band && a->stype == b->stype && a->chunk_w == b->chunk_w &&
           a->chunk_h == b->chunk_h;
}

static int job_open(void *arg, int worker, cm_ctx_t *ctx)
{
    job_run_t *jr = arg;
    cm_remap_job_t *job = jr->job;
    cm_ctx_t local;
    cm_ctx_init(&local);
    cm_source_t planned = job->src;
    int rc = job->open(job->self, &job->src, &jr->model, &jr->sink, &local);
    /* What the graph was planned with (chunk sizes, label widths) must still hold. */
    if (rc == 0 &&
        (!same_grid(&planned.grid, &job->src.grid) || planned.has_nodata != job->src.has_nodata ||
         (planned.has_nodata && planned.nodata != job->src.nodata) ||
         jr->sink->want_labels != job->want_labels))
        rc = cm_fail(&local, CM_EINPUT, "the image changed while the batch ran");
    if (rc == 0 && jr->model->k != job->k)
        rc = cm_fail(&local, CM_EUSAGE, "the model has %d centres, not the planned %d",
                     jr->model->k, job->k);
    if (rc == 0) rc = check_model(&job->src.grid, jr->model, &local);
    /* Several images are open at once: an automatic colour cache each (32 MiB, outside the
     * budget) would add up, so a batch goes without unless asked, as a pass of several
     * models does. */
    if (rc == 0)
        rc = remapper_init(&jr->pass.r[0], &job->src, jr->model, jr->p, jr->sink, 2, &local);
    if (rc == 0) {
        jr->pass.src = &job->src;
        jr->pass.k_max = jr->model->k;
        memset(jr->model->counts, 0, sizeof(int64_t) * (size_t)jr->model->k);
    }
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

static int job_remap(void *arg, int worker, cm_ctx_t *ctx)
{
    const remap_task_t *t = arg;
    job_run_t *jr = t->pass->run;
    if (job_failed(jr)) return 0;
    cm_ctx_t local;
    cm_ctx_init(&local);
    int rc = remap_chunk(arg, worker, &local);
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

static int job_write(void *arg, int worker, cm_ctx_t *ctx)
{
    const write_task_t *t = arg;
    job_run_t *jr = t->run;
    if (!t->r->chunks) return 0; /* never opened */
    if (job_failed(jr)) {
        chunk_out_free(t->r->sink, &t->r->chunks[t->idx]);
        return 0;
    }
    cm_ctx_t local;
    cm_ctx_init(&local);
    int rc = write_chunk(arg, worker, &local);
    return rc < 0 ? job_fail(jr, rc, &local, ctx) : 0;
}

/* Ends a job: hands its outcome (rc when none of its tasks failed) to close, and frees what the
 * pass held for it. */
static void job_close_now(job_run_t *jr, int rc, const cm_ctx_t *why)
{
    cm_remap_job_t *job = jr->job;
    remapper_t *r = jr->pass.r; /* NULL: never planned */
    cm_ctx_t ctx;
    if (job_failed(jr)) {
        ctx = job->ctx;
        rc = job->rc;
    } else {
        cm_ctx_init(&ctx);
        if (rc < 0) cm_fail(&ctx, rc, "%s", why && why->msg[0] ? why->msg : cm_strerror(rc));
    }
    if (r && r->src) {
        if (rc == 0) pass_figures(&jr->pass);
        remapper_free(r);
    }
    job->rc = job->close ? job->close(job->self, rc, &ctx) : rc;
    job->ctx = ctx;
    jr->closed = true;
}

static int job_close(void *arg, int worker, cm_ctx_t *ctx)
{
    job_run_t *jr = arg;
    const cm_params_t *p = jr->p;
    /* Complete, but a cancelled batch keeps nothing that was not committed before. */
    if (p->cancel && *p->cancel) return cm_fail(ctx, CM_ECANCELED, "interrupted");
    job_close_now(jr, 0, NULL);
    return 0;
}

/* Adds job jr's sub-graph: open (after the close of the job max_open before it: wait_for),
 * a remap task and a write per chunk, writes chained in chunk order, then close. */
static int add_job(cm_graph_t *graph, job_run_t *jr, int wait_for, cm_ctx_t *ctx)
{
    const cm_source_t *src = &jr->job->src;
    size_t held, scratch;
    pass_bytes(src, &jr->job->k, 1, jr->job->want_labels, &held, &scratch);
    int open_id, last;
    CM_TRY(cm_graph_add(
        graph,
        &(cm_task_t){
            .fn = job_open, .kind = "open", .arg = jr, .deps = &wait_for, .n_deps = wait_for >= 0},
        &open_id, ctx));
    CM_TRY(add_pass(graph, &jr->pass, cm_grid_count(&src->grid), held, scratch, open_id, jr->tasks,
                    jr->writes, &last, ctx));
    if (last < 0) last = open_id;
    return cm_graph_add(
        graph,
        &(cm_task_t){.fn = job_close, .kind = "close", .arg = jr, .deps = &last, .n_deps = 1},
        &jr->close_id, ctx);
}

/* Closes every job with rc, the batch's failure before any of it ran. */
static int close_all(cm_remap_job_t *jobs, int n_jobs, int rc, cm_ctx_t *ctx)
{
    for (int i = 0; i < n_jobs; i++) {
        job_run_t jr = {.job = &jobs[i]};
        job_close_now(&jr, rc, ctx);
    }
    return rc;
}

int cm_remap_batch(cm_remap_job_t *jobs, int n_jobs, int max_open, const cm_params_t *p,
                   cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n_jobs < 0, CM_EUSAGE, "bad batch of %d jobs", n_jobs);
    for (int i = 0; i < n_jobs; i++) {
        jobs[i].rc = 0;
        cm_ctx_init(&jobs[i].ctx);
    }
    if (max_open < 1)
        return close_all(jobs, n_jobs,
                         cm_fail(ctx, CM_EUSAGE, "bad batch: %d images open at once", max_open),
                         ctx);
    if (p->dither != CM_DITHER_NONE && p->dither != CM_DITHER_ORDERED)
        return close_all(jobs, n_jobs, cm_fail(ctx, CM_EUSAGE, "unknown dither %d", (int)p->dither),
                         ctx);
    job_run_t *runs = calloc(n_jobs ? (size_t)n_jobs : 1, sizeof(job_run_t));
    cm_graph_t *graph = cm_graph_create();
    if (!runs) {
        cm_graph_free(graph);
        return close_all(jobs, n_jobs,
                         cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs), ctx);
    }
    int rc = 0;
    if (!graph) rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
    int *in_graph = rc == 0 ? malloc(sizeof(int) * (n_jobs ? (size_t)n_jobs : 1)) : NULL;
    if (rc == 0 && !in_graph)
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
    int n_in = 0;
    for (int i = 0; rc == 0 && i < n_jobs; i++) {
        job_run_t *jr = &runs[i];
        *jr = (job_run_t){.job = &jobs[i], .p = p, .close_id = -1};
        cm_ctx_t local;
        cm_ctx_init(&local);
        /* An image whose chunk alone does not fit the budget fails here, alone. */
        int err = cm_budget_check_ks(&jobs[i].src, p, &jobs[i].k, 1, jobs[i].want_labels, &local);
        if (err < 0) {
            job_fail(jr, err, &local, ctx);
            job_close_now(jr, err, NULL);
            continue;
        }
        int64_t n_chunks = cm_grid_count(&jobs[i].src.grid);
        jr->pass = (pass_t){.n = 1, .run = jr};
        jr->pass.r = calloc(1, sizeof(remapper_t));
        jr->tasks = malloc(sizeof(remap_task_t) * (size_t)(n_chunks ? n_chunks : 1));
        jr->writes = malloc(sizeof(write_task_t) * (size_t)(n_chunks ? n_chunks : 1));
        if (!jr->pass.r || !jr->tasks || !jr->writes) {
            rc = cm_fail(ctx, CM_ENOMEM, "out of memory planning %d images", n_jobs);
            break;
        }
        int wait_for = n_in >= max_open ? runs[in_graph[n_in - max_open]].close_id : -1;
        rc = add_job(graph, jr, wait_for, ctx);
        in_graph[n_in++] = i;
    }
    if (rc == 0) rc = cm__graph_run(graph, p, "remap", ctx);
    /* Jobs the graph did not reach (it was cancelled, or could not be planned) end with why. */
    for (int i = 0; runs && i < n_jobs; i++) {
        if (!runs[i].job) runs[i].job = &jobs[i];
        if (!runs[i].closed) job_close_now(&runs[i], rc < 0 ? rc : CM_EINTERNAL, ctx);
        free(runs[i].pass.r);
        free(runs[i].tasks);
        free(runs[i].writes);
    }
    free(in_graph);
    cm_graph_free(graph);
    free(runs);
    return rc;
}

int cm_remap(const cm_source_t *src, cm_model_t *model, const cm_params_t *p, const cm_sink_t *sink,
             cm_ctx_t *ctx)
{
    return cm_remap_many(src, &model, 1, p, sink, ctx);
}
