/* The remap pass: one task per chunk reads it once and, for every model of the pass, assigns
 * its pixels to the nearest centroid (through a color cache, or with ordered dither) and
 * encodes the result; per model, one writer task per chunk, chained in chunk order, hands it to
 * that model's sink and adds up the exact counts and inertia. */
#include <stdlib.h>
#include <string.h>

#include "remap_internal.h"

void cm__chunk_out_free(const cm_sink_t *sink, cm__chunk_out_t *c)
{
    if (c->encoded && sink->discard) sink->discard(sink->self, c->encoded);
    free(c->pixels);
    free(c->labels);
    free(c->counts);
    *c = (cm__chunk_out_t){0};
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
static int cached_nearest(const cm__remapper_t *r, const uint8_t *px, const float *x, float *dist,
                          float *d2)
{
    const cm__pixfmt_t *f = &r->fmt;
    uint32_t key = cm__color_key(f, px);
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
static void dither_assign(const cm__remapper_t *r, int64_t x0, int64_t y0, int64_t w, int64_t first,
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

size_t cm__remap_scratch_bytes(int d, int k)
{
    return sizeof(scratch_t) + sizeof(float) * ((size_t)BLOCK * (size_t)d + (size_t)k);
}

/* Adds the labels of n pixels to counts (k of them); masked pixels count for none. Up to 256
 * centres, four tables take turns, so that a run of one label does not make each increment
 * wait for the one before. */
static void count_labels(const uint16_t *labels, int64_t n, int k, int64_t *counts)
{
    if (k > 256) {
        for (int64_t i = 0; i < n; i++)
            if (labels[i] != CM__MASKED) counts[labels[i]]++;
        return;
    }
    uint32_t t[4][257] = {{0}}; /* entry 256: masked (CM__MASKED clipped) */
    for (int64_t i = 0; i < n; i++) t[i % 4][labels[i] < 256 ? labels[i] : 256]++;
    for (int j = 0; j < k; j++) counts[j] += (int64_t)t[0][j] + t[1][j] + t[2][j] + t[3][j];
}

/* The block's end in the plain 8-bit case (every pixel valid, 1 or 3 bands, all colour, at
 * most 256 centres): counts, inertia and recolouring in one pass, the same sums and counts as
 * the general loop and count_labels. Returns the block's inertia. */
#define FINISH_PLAIN_U8(D)                                                                         \
    for (int64_t i = 0; i < m; i++) {                                                              \
        const uint8_t *col = colors + (size_t)labels[i] * (D);                                     \
        t[i % 4][labels[i]]++;                                                                     \
        sum[i % 4] += d2[i];                                                                       \
        for (int b = 0; b < (D); b++) px[i * (D) + b] = col[b];                                    \
    }

static double finish_plain_u8(int d, int k, uint8_t *px, int64_t m, const uint16_t *labels,
                              const float *d2, const uint8_t *colors, int64_t *counts)
{
    uint32_t t[4][256] = {{0}};
    double sum[4] = {0.0, 0.0, 0.0, 0.0};
    if (d == 3)
        FINISH_PLAIN_U8(3)
    else
        FINISH_PLAIN_U8(1)
    for (int j = 0; j < k; j++) counts[j] += (int64_t)t[0][j] + t[1][j] + t[2][j] + t[3][j];
    return (sum[0] + sum[1]) + (sum[2] + sum[3]);
}

/* Labels [first, first + m) of a chunk's label map, in its width, masked pixels as such. */
static void write_labels(const cm__remapper_t *r, void *out, int64_t first, int64_t m,
                         const uint16_t *labels)
{
    if (r->label_bits == 8)
        for (int64_t i = 0; i < m; i++)
            ((uint8_t *)out)[first + i] =
                labels[i] == CM__MASKED ? (uint8_t)r->label_masked : (uint8_t)labels[i];
    else
        for (int64_t i = 0; i < m; i++)
            ((uint16_t *)out)[first + i] =
                labels[i] == CM__MASKED ? (uint16_t)r->label_masked : labels[i];
}

/* Remaps chunk idx at (x, y), w x h, for one model: c->pixels holds the chunk as read; fills
 * c's counts, inertia and labels, recolours c->pixels and encodes them when the sink does. */
static int remap_one(const cm__remapper_t *r, int64_t idx, int64_t x, int64_t y, int64_t w,
                     int64_t h, cm__chunk_out_t *c, scratch_t *s, cm_ctx_t *ctx)
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
        if (r->plain_u8) {
            inertia += finish_plain_u8(d, k, (uint8_t *)c->pixels + first * d, m, s->labels, s->d2,
                                       r->colors, c->counts);
            if (c->labels) write_labels(r, c->labels, first, m, s->labels);
            continue;
        }
        /* Four running sums, pixel i in sum i % 4, so that additions need not wait for one
         * another; a fixed order all the same. */
        double sum[4] = {0.0, 0.0, 0.0, 0.0};
        for (int64_t i = 0; i < m; i++) {
            if (!s->valid[i]) {
                s->labels[i] = CM__MASKED;
                continue;
            }
            if (r->cache)
                s->labels[i] =
                    (uint16_t)cached_nearest(r, (const uint8_t *)c->pixels + (first + i) * g->bands,
                                             s->feat + i * d, s->dist, &s->d2[i]);
            sum[i % 4] += s->d2[i];
        }
        inertia += (sum[0] + sum[1]) + (sum[2] + sum[3]);
        count_labels(s->labels, m, k, c->counts);
        cm__recolor(&r->fmt, c->pixels, first, m, s->labels, r->colors);
        if (c->labels) write_labels(r, c->labels, first, m, s->labels);
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
int cm__remap_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__remap_task_t *t = arg;
    const cm__pass_t *pass = t->pass;
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
        const cm__remapper_t *r = &pass->r[i];
        cm__chunk_out_t *c = &r->chunks[t->idx];
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

/* Adds a chunk's figures to its model's, and frees the chunk. */
static void add_figures(cm__remapper_t *r, cm__chunk_out_t *c)
{
    for (int j = 0; j < r->model->k; j++) {
        r->model->counts[j] += c->counts[j];
        r->n_pixels += c->counts[j];
    }
    r->inertia += c->inertia;
    cm__chunk_out_free(r->sink, c);
}

int cm__write_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__write_task_t *t = arg;
    cm__remapper_t *r = t->r;
    cm__chunk_out_t *c = &r->chunks[t->idx];
    int rc = r->sink->put
                 ? r->sink->put(r->sink->self, t->idx, c->pixels, c->labels, c->encoded, ctx)
                 : 0;
    add_figures(r, c);
    return rc;
}

int cm__remapper_init(cm__remapper_t *r, const cm_source_t *src, cm_model_t *model,
                      const cm_params_t *p, const cm_sink_t *sink, int n_models, cm_ctx_t *ctx)
{
    const cm_grid_t *g = &src->grid;
    int k = model->k, d = model->d;
    int64_t n_chunks = cm_grid_count(g);
    *r = (cm__remapper_t){.src = src, .sink = sink, .model = model};
    r->soa = malloc(sizeof(float) * (size_t)k * d);
    r->colors = malloc((size_t)k * d * cm_stype_size(g->stype));
    r->chunks = calloc((size_t)n_chunks, sizeof(cm__chunk_out_t));
    double *features = malloc(sizeof(double) * (size_t)k * d);
    if (!r->soa || !r->colors || !r->chunks || !features) {
        free(features);
        return cm_fail(ctx, CM_ENOMEM, "out of memory planning %lld chunks", (long long)n_chunks);
    }
    /* Distances are measured where the fit measured them: in Lab, in standardised units, if
     * either. */
    for (int j = 0; j < k; j++)
        cm__centroid_features(model->colorspace, g->stype, d, model->mean, model->std,
                              model->centroids + (size_t)j * d, features + (size_t)j * d);
    cm__centroids_soa(features, k, d, r->soa);
    free(features);
    cm__model_colors(model, g->stype, r->colors);
    cm__pixfmt_init(&r->fmt, src, model->mean, model->std);
    r->fmt.lab = model->colorspace == CM_COLORSPACE_LAB;
    r->dither = p->dither == CM_DITHER_ORDERED && k > 1;
    cm_labels_plan(src, k, &r->label_bits, &r->label_masked);
    r->kernel = p->kernel;
    r->placed = p->write_parallel && sink->encode && sink->put && sink->place && sink->put_placed;
    /* The cache pays off once the image holds several times the table's 2^(8d) entries of
     * work and the centres are many, or when asked for. On a mosaic of real photographs a
     * lookup in its 32 MiB (RGB) misses the processor's caches often enough to cost more than
     * the vector kernel's distances to fewer than 128 centres (remap 1.3 s without, 1.8 s with
     * at k = 8; the same at k = 128; 8 % faster with at 256). Its table is outside the chunk
     * budget, so a pass with several models goes without unless asked for it (the output is
     * the same). It keys on the pixel's colour, which decides its features (Lab ones too) and
     * so its centre, but not the dithered centre, which also follows the pixel's position:
     * dithering goes without. */
    int64_t n_pixels = g->width * g->height;
    bool cacheable = g->stype == CM_U8 && d <= 3 && k < 65535 && !r->dither;
    if (cacheable && (p->color_cache > 0 || (p->color_cache < 0 && n_models == 1 && k >= 128 &&
                                             n_pixels >= ((int64_t)1 << (8 * d)) / 4)))
        r->cache = calloc((size_t)1 << (8 * d), sizeof(uint16_t)); /* NULL: go without */
    const cm__pixfmt_t *f = &r->fmt;
    r->plain_u8 = g->stype == CM_U8 && f->alpha < 0 && !f->has_nodata && !f->scaled && !f->lab &&
                  f->bands == d && (d == 1 || d == 3) && k <= 256 && !r->dither && !r->cache;
    return 0;
}

void cm__remapper_free(cm__remapper_t *r)
{
    for (int64_t i = 0; r->chunks && i < cm_grid_count(&r->src->grid); i++)
        cm__chunk_out_free(r->sink, &r->chunks[i]);
    free(r->chunks);
    free(r->cache);
    free(r->colors);
    free(r->soa);
    *r = (cm__remapper_t){0};
}

int cm__check_model(const cm_grid_t *g, const cm_model_t *model, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, model->d != cm_grid_features(g), CM_EINPUT,
               "the model has %d features, the image %d", model->d, cm_grid_features(g));
    return cm__colorspace_check(g, model->colorspace, ctx);
}

int cm__add_pass(cm_graph_t *graph, cm__pass_t *pass, cm__pass_fns_t fns, int64_t n_chunks,
                 size_t held, size_t scratch, int after, cm__remap_task_t *tasks,
                 cm__write_task_t *writes, int *prev, cm_ctx_t *ctx)
{
    for (int i = 0; i < pass->n; i++) prev[i] = -1;
    for (int64_t c = 0; c < n_chunks; c++) {
        tasks[c] = (cm__remap_task_t){pass, c};
        int remap_id;
        CM_TRY(cm_graph_add(graph,
                            &(cm_task_t){.fn = fns.remap,
                                         .kind = "remap",
                                         .arg = &tasks[c],
                                         .out_bytes = held,
                                         .work_bytes = scratch,
                                         .deps = &after,
                                         .n_deps = after >= 0},
                            &remap_id, ctx));
        for (int i = 0; i < pass->n; i++) {
            cm__write_task_t *w = &writes[c * pass->n + i];
            *w = (cm__write_task_t){&pass->r[i], c, pass->job};
            int deps[2] = {remap_id, prev[i]};
            CM_TRY(cm_graph_add(graph,
                                &(cm_task_t){.fn = fns.write,
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

void cm__pass_figures(const cm__pass_t *pass)
{
    for (int i = 0; i < pass->n; i++) {
        pass->r[i].model->inertia = pass->r[i].inertia;
        pass->r[i].model->n_pixels = pass->r[i].n_pixels;
    }
}

/* ---- a pass shared by the ranks of a job ----
 * Chunk c is read and remapped by rank c % ranks: round robin, so that rank 0, which puts every
 * chunk in order, finds the next one made or nearly. A remapped chunk travels to rank 0 as one
 * message per model (its index, inertia, counts, then what the sink packed, or its pixels and
 * labels); in rank 0 a receive task takes its place in the chain of writes. With a sink that
 * places chunks (write_parallel), the message holds only the sizes of what was encoded: rank 0
 * places the chunk in the output and sends back where its pieces go, and the rank writes them
 * there itself. The writes of all models form one chain on every rank, (chunk, model) in
 * order, so that one thread at a time calls MPI and the messages of a rank arrive in the order
 * rank 0 takes them. */
enum { TAG_REMAP = 7, TAG_PLACE = 8 };

typedef struct chunk_head {
    int64_t idx;
    double inertia;
} chunk_head_t;

static size_t labels_bytes(const cm__remapper_t *r, int64_t n_px)
{
    return (size_t)n_px * (size_t)(r->label_bits / 8);
}

static int send_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__write_task_t *t = arg;
    cm__remapper_t *r = t->r;
    const cm_sink_t *sink = r->sink;
    cm__chunk_out_t *c = &r->chunks[t->idx];
    int64_t x, y, w, h;
    cm_grid_rect(&r->src->grid, t->idx, &x, &y, &w, &h);
    size_t counts = sizeof(int64_t) * (size_t)r->model->k, head = sizeof(chunk_head_t) + counts;
    size_t px = 0, lb = 0, packed = 0;
    uint8_t *bytes = NULL;
    int rc = 0;
    if (sink->put && sink->encode) {
        rc = sink->pack ? sink->pack(sink->self, c->encoded, !r->placed, &bytes, &packed, ctx)
                        : cm_fail(ctx, CM_EINTERNAL, "the sink cannot send chunks to rank 0");
    } else if (sink->put) {
        px = cm_grid_chunk_bytes(&r->src->grid);
        lb = c->labels ? labels_bytes(r, w * h) : 0;
    }
    uint8_t *msg = rc == 0 ? malloc(head + packed + px + lb) : NULL;
    if (rc == 0 && !msg)
        rc = cm_fail(ctx, CM_ENOMEM, "out of memory sending chunk %lld", (long long)t->idx);
    if (rc == 0) {
        chunk_head_t h0 = {t->idx, c->inertia};
        memcpy(msg, &h0, sizeof h0);
        memcpy(msg + sizeof h0, c->counts, counts);
        if (packed) memcpy(msg + head, bytes, packed);
        if (px) memcpy(msg + head, c->pixels, px);
        if (lb) memcpy(msg + head + px, c->labels, lb);
        cm_comm_send(msg, head + packed + px + lb, 0, TAG_REMAP);
    }
    free(msg);
    free(bytes);
    if (rc == 0 && r->placed) { /* written where rank 0 placed it */
        uint8_t *where = NULL;
        size_t n = 0;
        rc = cm_comm_recv(&where, &n, 0, TAG_PLACE, ctx);
        if (rc == 0) rc = sink->put_placed(sink->self, c->encoded, where, n, ctx);
        free(where);
    }
    cm__chunk_out_free(sink, c);
    return rc;
}

static int receive_chunk(void *arg, int worker, cm_ctx_t *ctx)
{
    const cm__write_task_t *t = arg;
    cm__remapper_t *r = t->r;
    const cm_sink_t *sink = r->sink;
    cm__chunk_out_t *c = &r->chunks[t->idx];
    size_t counts = sizeof(int64_t) * (size_t)r->model->k, head = sizeof(chunk_head_t) + counts;
    uint8_t *msg = NULL;
    size_t n = 0;
    CM_TRY(cm_comm_recv(&msg, &n, (int)(t->idx % cm_comm_size()), TAG_REMAP, ctx));
    chunk_head_t h0 = {-1, 0.0};
    if (n >= head) memcpy(&h0, msg, sizeof h0);
    int rc = h0.idx == t->idx
                 ? 0
                 : cm_fail(ctx, CM_EINTERNAL, "rank %d sent chunk %lld for %lld",
                           (int)(t->idx % cm_comm_size()), (long long)h0.idx, (long long)t->idx);
    c->counts = rc == 0 ? malloc(counts) : NULL;
    if (rc == 0 && !c->counts) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(c->counts, msg + sizeof h0, counts);
        c->inertia = h0.inertia;
    }
    if (rc == 0 && sink->put && sink->encode) {
        rc = sink->unpack(sink->self, msg + head, n - head, &c->encoded, ctx);
    } else if (rc == 0 && sink->put) {
        size_t px = cm_grid_chunk_bytes(&r->src->grid), lb = n - head - px;
        c->pixels = malloc(px);
        c->labels = lb ? malloc(lb) : NULL;
        if (!c->pixels || (lb && !c->labels)) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
        if (rc == 0) memcpy(c->pixels, msg + head, px);
        if (rc == 0 && lb) memcpy(c->labels, msg + head + px, lb);
    }
    free(msg);
    if (rc < 0) {
        cm__chunk_out_free(sink, c);
        return rc;
    }
    if (!r->placed) return cm__write_chunk(arg, worker, ctx); /* puts it, adds its figures */
    uint8_t *where = NULL;
    size_t wn = 0;
    rc = sink->place(sink->self, c->encoded, &where, &wn, ctx);
    if (rc == 0) cm_comm_send(where, wn, (int)(t->idx % cm_comm_size()), TAG_PLACE);
    free(where);
    add_figures(r, c);
    return rc;
}

/* The tasks of a pass shared by the ranks: this rank's remaps, and its part of the one chain
 * of writes (rank 0: a write or a receive for every chunk; the others: a send for each of
 * theirs). */
static int add_shared_pass(cm_graph_t *graph, cm__pass_t *pass, int64_t n_chunks, size_t held,
                           size_t scratch, cm__remap_task_t *tasks, cm__write_task_t *writes,
                           cm_ctx_t *ctx)
{
    int me = cm_comm_rank(), size = cm_comm_size(), prev = -1;
    for (int64_t c = 0; c < n_chunks; c++) {
        bool own = c % size == me;
        if (!own && me != 0) continue;
        int remap_id = -1;
        tasks[c] = (cm__remap_task_t){pass, c};
        if (own)
            CM_TRY(cm_graph_add(graph,
                                &(cm_task_t){.fn = cm__remap_chunk,
                                             .kind = "remap",
                                             .arg = &tasks[c],
                                             .out_bytes = held,
                                             .work_bytes = scratch},
                                &remap_id, ctx));
        for (int i = 0; i < pass->n; i++) {
            cm__write_task_t *w = &writes[c * pass->n + i];
            *w = (cm__write_task_t){&pass->r[i], c, pass->job};
            int deps[2], n_deps = 0;
            if (remap_id >= 0) deps[n_deps++] = remap_id;
            if (prev >= 0) deps[n_deps++] = prev;
            cm_task_fn fn = !own ? receive_chunk : me == 0 ? cm__write_chunk : send_chunk;
            CM_TRY(cm_graph_add(graph,
                                &(cm_task_t){.fn = fn,
                                             .kind = !own ? (w->r->placed ? "place" : "receive")
                                                     : me == 0 ? "write"
                                                               : "send",
                                             .arg = w,
                                             .weight = i == 0,
                                             .deps = deps,
                                             .n_deps = n_deps},
                                &prev, ctx));
        }
    }
    return 0;
}

/* Gives every rank the figures rank 0 added up. */
static void share_figures(cm__pass_t *pass)
{
    for (int i = 0; i < pass->n; i++) {
        cm__remapper_t *r = &pass->r[i];
        cm_comm_bcast(r->model->counts, sizeof(int64_t) * (size_t)r->model->k, 0);
        cm_comm_bcast(&r->inertia, sizeof r->inertia, 0);
        cm_comm_bcast(&r->n_pixels, sizeof r->n_pixels, 0);
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
        CM_TRY(cm__check_model(g, models[i], ctx));
        if (models[i]->k > k_max) k_max = models[i]->k;
    }
    int64_t n_chunks = cm_grid_count(g);

    int rc = CM_ENOMEM;
    cm__pass_t pass = {.src = src, .n = n_models, .k_max = k_max};
    pass.r = calloc((size_t)n_models, sizeof(cm__remapper_t));
    int *ks = malloc(sizeof(int) * (size_t)n_models);
    cm__remap_task_t *tasks = malloc(sizeof(cm__remap_task_t) * (size_t)n_chunks);
    cm__write_task_t *writes =
        malloc(sizeof(cm__write_task_t) * (size_t)n_chunks * (size_t)n_models);
    int *prev_write = malloc(sizeof(int) * (size_t)n_models);
    cm_graph_t *graph = cm_graph_create();
    if (!pass.r || !ks || !tasks || !writes || !prev_write || !graph) {
        cm_fail(ctx, CM_ENOMEM, "out of memory planning %lld chunks", (long long)n_chunks);
        goto cleanup;
    }
    bool labels = false;
    for (int i = 0; i < n_models; i++) {
        rc = cm__remapper_init(&pass.r[i], src, models[i], p, &sinks[i], n_models, ctx);
        if (rc < 0) goto cleanup;
        ks[i] = models[i]->k;
        labels |= sinks[i].want_labels;
    }
    size_t held, scratch;
    cm__pass_bytes(src, ks, n_models, labels, &held, &scratch);
    cm__pass_fns_t fns = {cm__remap_chunk, cm__write_chunk};
    bool shared = cm_comm_size() > 1;
    rc = shared ? add_shared_pass(graph, &pass, n_chunks, held, scratch, tasks, writes, ctx)
                : cm__add_pass(graph, &pass, fns, n_chunks, held, scratch, -1, tasks, writes,
                               prev_write, ctx);
    if (rc < 0) goto cleanup;
    for (int i = 0; i < n_models; i++)
        memset(models[i]->counts, 0, sizeof(int64_t) * (size_t)models[i]->k);
    rc = cm__graph_run(graph, p, "remap", ctx);
    if (rc == 0 && shared) share_figures(&pass);
    if (rc == 0) cm__pass_figures(&pass);
cleanup:
    for (int i = 0; pass.r && i < n_models; i++)
        if (pass.r[i].src) cm__remapper_free(&pass.r[i]);
    cm_graph_free(graph);
    free(prev_write);
    free(writes);
    free(tasks);
    free(ks);
    free(pass.r);
    return rc;
}

int cm_remap(const cm_source_t *src, cm_model_t *model, const cm_params_t *p, const cm_sink_t *sink,
             cm_ctx_t *ctx)
{
    return cm_remap_many(src, &model, 1, p, sink, ctx);
}
