/* The remap sink that writes through TIFF writers: each chunk's tiles are compressed in the
 * worker that remapped it, then written in chunk order by the single writer. */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* Compressed tiles of one chunk, for the image and the label map. */
typedef struct encoded_pair {
    cm_encoded_t *out, *labels;
} encoded_pair_t;

static int sink_encode(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                       void **encoded, cm_ctx_t *ctx)
{
    const cm__writers_sink_t *s = self;
    int64_t x, y, w, h;
    cm_grid_rect(s->grid, idx, &x, &y, &w, &h);
    encoded_pair_t *e = calloc(1, sizeof *e);
    CM_FAIL_IF(ctx, !e, CM_ENOMEM, "out of memory encoding chunk %lld", (long long)idx);
    *encoded = e;
    const uint8_t *out_px = s->out_takes_labels ? labels : pixels;
    CM_TRY(cm_writer_encode(s->out, x, y, w, h, out_px, &e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_encode(s->labels, x, y, w, h, labels, &e->labels, ctx));
    if (s->out_levels) CM_TRY(cm__pyramid_add(s->out_levels, x, y, w, h, out_px, labels, ctx));
    if (s->label_levels) CM_TRY(cm__pyramid_add(s->label_levels, x, y, w, h, labels, labels, ctx));
    return 0;
}

static int sink_put(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                    void *encoded, cm_ctx_t *ctx)
{
    const cm__writers_sink_t *s = self;
    const encoded_pair_t *e = encoded;
    CM_TRY(cm_writer_put_encoded(s->out, e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_put_encoded(s->labels, e->labels, ctx));
    if (s->out_levels) CM_TRY(cm__pyramid_put(s->out_levels, idx, ctx));
    if (s->label_levels) CM_TRY(cm__pyramid_put(s->label_levels, idx, ctx));
    return 0;
}

static void sink_discard(void *self, void *encoded)
{
    encoded_pair_t *e = encoded;
    cm_encoded_free(e->out);
    cm_encoded_free(e->labels);
    free(e);
}

/* The pair as bytes: the image's packed tiles, then the label map's (each after its length). */
static int sink_pack(void *self, const void *encoded, bool data, uint8_t **bytes, size_t *n,
                     cm_ctx_t *ctx)
{
    const encoded_pair_t *e = encoded;
    uint8_t *part[2] = {NULL, NULL};
    uint64_t len[2] = {0, 0};
    size_t got[2] = {0, 0};
    int rc = cm_encoded_pack(e->out, data, &part[0], &got[0], ctx);
    if (rc == 0 && e->labels) rc = cm_encoded_pack(e->labels, data, &part[1], &got[1], ctx);
    len[0] = got[0];
    len[1] = got[1];
    size_t total = sizeof len + got[0] + got[1];
    uint8_t *b = rc == 0 ? malloc(total) : NULL;
    if (rc == 0 && !b) rc = cm_fail(ctx, CM_ENOMEM, "out of memory");
    if (rc == 0) {
        memcpy(b, len, sizeof len);
        memcpy(b + sizeof len, part[0], got[0]);
        if (got[1]) memcpy(b + sizeof len + got[0], part[1], got[1]);
        *bytes = b;
        *n = total;
    }
    free(part[0]);
    free(part[1]);
    return rc;
}

static int sink_unpack(void *self, const uint8_t *bytes, size_t n, void **encoded, cm_ctx_t *ctx)
{
    uint64_t len[2];
    CM_FAIL_IF(ctx, n < sizeof len, CM_EINTERNAL, "a chunk of %zu bytes", n);
    memcpy(len, bytes, sizeof len);
    CM_FAIL_IF(ctx, len[0] > n - sizeof len || len[1] > n - sizeof len - len[0], CM_EINTERNAL,
               "a chunk of %zu bytes", n);
    encoded_pair_t *e = calloc(1, sizeof *e);
    CM_FAIL_IF(ctx, !e, CM_ENOMEM, "out of memory");
    *encoded = e;
    CM_TRY(cm_encoded_unpack(bytes + sizeof len, (size_t)len[0], &e->out, ctx));
    if (len[1])
        CM_TRY(cm_encoded_unpack(bytes + sizeof len + len[0], (size_t)len[1], &e->labels, ctx));
    return 0;
}

/* Where the tiles of a chunk go, for each writer (the image's, then the label map's): the
 * number of tiles n and the length of the file's name, the name, then n offsets. */
typedef struct place_head {
    uint64_t n, name_len;
} place_head_t;

static int sink_place(void *self, void *encoded, uint8_t **where, size_t *n, cm_ctx_t *ctx)
{
    const cm__writers_sink_t *s = self;
    const encoded_pair_t *e = encoded;
    cm_writer_t *w[2] = {s->out, s->labels};
    const cm_encoded_t *tiles[2] = {e->out, e->labels};
    size_t total = 0;
    for (int i = 0; i < 2; i++)
        if (w[i])
            total += sizeof(place_head_t) + strlen(cm_writer_file(w[i])) +
                     sizeof(uint64_t) * (size_t)cm_encoded_count(tiles[i]);
    uint8_t *b = malloc(total), *at = b;
    CM_FAIL_IF(ctx, !b, CM_ENOMEM, "out of memory");
    for (int i = 0; i < 2; i++) {
        if (!w[i]) continue;
        const char *name = cm_writer_file(w[i]);
        place_head_t h = {(uint64_t)cm_encoded_count(tiles[i]), strlen(name)};
        uint64_t *offsets = malloc(sizeof(uint64_t) * (h.n ? h.n : 1));
        int rc = offsets ? cm_writer_place(w[i], tiles[i], offsets, ctx)
                         : cm_fail(ctx, CM_ENOMEM, "out of memory");
        if (rc == 0) {
            memcpy(at, &h, sizeof h);
            memcpy(at + sizeof h, name, h.name_len);
            memcpy(at + sizeof h + h.name_len, offsets, sizeof(uint64_t) * h.n);
            at += sizeof h + h.name_len + sizeof(uint64_t) * h.n;
        }
        free(offsets);
        if (rc < 0) {
            free(b);
            return rc;
        }
    }
    *where = b;
    *n = total;
    return 0;
}

static int sink_put_placed(void *self, void *encoded, const uint8_t *where, size_t n, cm_ctx_t *ctx)
{
    const cm__writers_sink_t *s = self;
    const encoded_pair_t *e = encoded;
    cm_writer_t *w[2] = {s->out, s->labels};
    const cm_encoded_t *tiles[2] = {e->out, e->labels};
    const uint8_t *at = where, *end = where + n;
    for (int i = 0; i < 2; i++) {
        if (!w[i]) continue;
        place_head_t h;
        bool ok = (size_t)(end - at) >= sizeof h;
        if (ok) memcpy(&h, at, sizeof h);
        ok = ok && h.n == (uint64_t)cm_encoded_count(tiles[i]) &&
             h.name_len <= (size_t)(end - at) - sizeof h &&
             (size_t)(end - at) - sizeof h - h.name_len >= sizeof(uint64_t) * h.n;
        CM_FAIL_IF(ctx, !ok, CM_EINTERNAL, "rank 0 placed tiles that this rank does not have");
        char *name = strndup((const char *)at + sizeof h, (size_t)h.name_len);
        uint64_t *offsets = malloc(sizeof(uint64_t) * (h.n ? h.n : 1));
        int rc = name && offsets ? 0 : cm_fail(ctx, CM_ENOMEM, "out of memory");
        if (rc == 0) {
            memcpy(offsets, at + sizeof h + h.name_len, sizeof(uint64_t) * h.n);
            rc = cm_writer_put_at(w[i], name, tiles[i], offsets, ctx);
        }
        free(name);
        free(offsets);
        CM_TRY(rc);
        at += sizeof h + h.name_len + sizeof(uint64_t) * h.n;
    }
    return 0;
}

cm_sink_t cm__writers_sink(const cm__writers_sink_t *state)
{
    bool placeable =
        cm_writer_can_place(state->out) && (!state->labels || cm_writer_can_place(state->labels));
    return (cm_sink_t){.encode = sink_encode,
                       .put = sink_put,
                       .discard = sink_discard,
                       .pack = sink_pack,
                       .unpack = sink_unpack,
                       .place = placeable ? sink_place : NULL,
                       .put_placed = placeable ? sink_put_placed : NULL,
                       .self = (void *)state,
                       .want_labels =
                           state->labels || state->out_takes_labels || state->out_levels};
}
