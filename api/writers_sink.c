/* The remap sink that writes through TIFF writers: each chunk's tiles are compressed in the
 * worker that remapped it, then written in chunk order by the single writer. */
#include <stdlib.h>

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
    CM_TRY(
        cm_writer_encode(s->out, x, y, w, h, s->out_takes_labels ? labels : pixels, &e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_encode(s->labels, x, y, w, h, labels, &e->labels, ctx));
    return 0;
}

static int sink_put(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                    void *encoded, cm_ctx_t *ctx)
{
    const cm__writers_sink_t *s = self;
    const encoded_pair_t *e = encoded;
    CM_TRY(cm_writer_put_encoded(s->out, e->out, ctx));
    if (s->labels) CM_TRY(cm_writer_put_encoded(s->labels, e->labels, ctx));
    return 0;
}

static void sink_discard(void *self, void *encoded)
{
    encoded_pair_t *e = encoded;
    cm_encoded_free(e->out);
    cm_encoded_free(e->labels);
    free(e);
}

cm_sink_t cm__writers_sink(const cm__writers_sink_t *state)
{
    return (cm_sink_t){.encode = sink_encode,
                       .put = sink_put,
                       .discard = sink_discard,
                       .self = (void *)state,
                       .want_labels = state->labels || state->out_takes_labels};
}
