/* The reduced levels (overviews) of a TIFF output, made while the remap streams its chunks.
 * Each level halves the one before: a pixel is a copy of the pixel of the most frequent label
 * of its 2x2 block (fewer at odd edges), ties going to the lower label and, among the pixels
 * of that label, to the first in the block's raster order. So an overview of a label map is a
 * label map, the colours of an overview are among the k, and a masked pixel (its label the
 * highest) is a category of its own that keeps its value.
 *
 * The workers hand in their chunks in any order: a chunk's halved pixels go into the tiles of
 * level 1 that it covers, and the worker that fills a tile's last pixel encodes it and hands
 * its halved pixels to level 2, and so on. A tile waits, encoded, until the writer thread puts
 * the last chunk it covers (chunks are put in order); it is then stored, so the scratch files'
 * bytes depend on the image alone. At most about one row of tiles per level is held at once. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"

/* The levels' tiles are deflated at the fastest level, the image's at libtiff's: the levels
 * are a third as many pixels again, made to be looked at. At level 7 a --cog run of the 1 GP
 * mosaic took 1.28 x a plain run; at level 1, 1.11 x, for 8 % more bytes. */
enum { OVERVIEW_DEFLATE_LEVEL = 1 };

typedef struct level_tile {
    uint8_t *px, *lab; /* the tile's pixels and labels, allocated by its first chunk */
    int64_t left;      /* pixels not yet filled */
    cm_encoded_t *enc; /* once complete, until stored */
} level_tile_t;

typedef struct level {
    cm_writer_spec_t spec; /* this level's size; the output's tiles and encoding */
    cm_writer_t *enc;
    cm_tilestore_t *store;
    int64_t tiles_x, tiles_y;
    level_tile_t *tiles;
    pthread_mutex_t lock; /* the allocation of tiles */
} level_t;

struct cm__pyramid {
    const char *path;
    int n;
    int n_keep; /* the first n_keep levels are the output's; the others only feed the preview */
    /* When a pixel follows from its label, the tiles being filled hold labels alone: the
     * labels are the pixels (a label map, a palette image), or colors (k pixels) gives them. */
    bool labels_only;
    const uint8_t *colors;
    /* The preview: nearest samples of level preview_level (0: the image) into pw x ph. */
    int preview_level;
    int64_t pw, ph;
    uint8_t *preview;
    level_t *levels; /* levels[0] is level 1 */
    size_t px_bytes, lab_bytes;
    int64_t width, height, chunk_w, chunk_h, n_cx; /* the full image and its chunks */
};

int cm__overview_levels(const cm_writer_spec_t *spec, int asked)
{
    if (asked >= 0) return asked;
    int n = 0; /* auto: until the level fits in one tile */
    while (cm__ceil_div_i64(spec->width, (int64_t)1 << n) > spec->tile_w ||
           cm__ceil_div_i64(spec->height, (int64_t)1 << n) > spec->tile_h)
        n++;
    return n;
}

size_t cm__pyramid_bytes(const cm_writer_spec_t *spec, int levels, int label_bits, bool labels_only)
{
    size_t per_px = (size_t)label_bits / 8;
    if (!labels_only) per_px += (size_t)spec->bands * cm_stype_size(spec->stype);
    size_t bytes = 0;
    for (int l = 1; l <= levels; l++) {
        cm_writer_spec_t s;
        cm_writer_spec_level(spec, l, &s);
        /* a row of tiles, and the next one that chunks of the row after it begin */
        int64_t across = cm__ceil_div_i64(s.width, s.tile_w);
        bytes += 2 * (size_t)across * (size_t)(s.tile_w * s.tile_h) * per_px;
    }
    return bytes;
}

static uint32_t label_at(const uint8_t *lab, size_t lb, size_t i)
{
    if (lb == 1) return lab[i];
    uint16_t v;
    memcpy(&v, lab + 2 * i, 2);
    return v;
}

/* The member (0 to n - 1) of a block of n labels, in raster order, whose label is the most
 * frequent, ties to the lower label, then to the first member. */
static int mode_of(const uint32_t *l, int n)
{
    int best = 0, best_count = 0;
    for (int i = 0; i < n; i++) {
        int count = 0;
        for (int j = 0; j < n; j++) count += l[j] == l[i];
        if (count > best_count || (count == best_count && l[i] < l[best])) {
            best = i;
            best_count = count;
        }
    }
    return best;
}

/* mode_of for a whole block of four. */
static inline int mode_of_4(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
    if (a == b && a == c && a == d) return 0; /* the usual block: one colour */
    int count[4] = {1 + (a == b) + (a == c) + (a == d), 1 + (a == b) + (b == c) + (b == d),
                    1 + (a == c) + (b == c) + (c == d), 1 + (a == d) + (b == d) + (c == d)};
    uint32_t l[4] = {a, b, c, d};
    int best = 0;
    for (int i = 1; i < 4; i++)
        if (count[i] > count[best] || (count[i] == count[best] && l[i] < l[best])) best = i;
    return best;
}

/* memcpy of one pixel or label, with the usual sizes known to the compiler. */
static inline void copy_px(uint8_t *to, const uint8_t *from, size_t n)
{
    switch (n) {
    case 1: *to = *from; break;
    case 2: memcpy(to, from, 2); break;
    case 3: memcpy(to, from, 3); break;
    case 4: memcpy(to, from, 4); break;
    case 6: memcpy(to, from, 6); break;
    case 8: memcpy(to, from, 8); break;
    default: memcpy(to, from, n);
    }
}

void cm__halve(const uint8_t *px, const uint8_t *lab, size_t pb, size_t lb, int64_t w, int64_t h,
               uint8_t *out_px, uint8_t *out_lab)
{
    int64_t ow = (w + 1) / 2, oh = (h + 1) / 2;
    for (int64_t oy = 0; oy < oh; oy++) {
        bool two_rows = 2 * oy + 1 < h;
        for (int64_t ox = 0; ox < ow; ox++) {
            size_t at[4], first = (size_t)(2 * oy * w + 2 * ox);
            int n = 0, best;
            at[n++] = first;
            if (2 * ox + 1 < w) at[n++] = first + 1;
            if (two_rows) at[n++] = first + (size_t)w;
            if (two_rows && 2 * ox + 1 < w) at[n++] = first + (size_t)w + 1;
            if (n == 4 && lb == 1) {
                best = mode_of_4(lab[at[0]], lab[at[1]], lab[at[2]], lab[at[3]]);
            } else {
                uint32_t l[4];
                for (int i = 0; i < n; i++) l[i] = label_at(lab, lb, at[i]);
                best = mode_of(l, n);
            }
            size_t o = (size_t)(oy * ow + ox);
            if (px) copy_px(out_px + o * pb, px + at[best] * pb, pb);
            copy_px(out_lab + o * lb, lab + at[best] * lb, lb);
        }
    }
}

int cm__preview_level(const cm_writer_spec_t *spec, int64_t preview_side)
{
    int64_t side = spec->width > spec->height ? spec->width : spec->height;
    int64_t view = side < preview_side ? side : preview_side;
    int l = 0;
    while (preview_side > 0 && ((side + ((int64_t)1 << (l + 1)) - 1) >> (l + 1)) >= view) l++;
    return l;
}

int cm__pyramid_open(const char *path, const cm_writer_spec_t *spec, int keep, int label_bits,
                     bool px_is_label, const uint8_t *colors, int64_t preview_side,
                     const cm_grid_t *grid, cm__pyramid_t **out, cm_ctx_t *ctx)
{
    /* The preview: the image's longest side brought to preview_side (never enlarged), sampled
     * from the coarsest level that is at least that large. */
    int64_t side = spec->width > spec->height ? spec->width : spec->height;
    int64_t view = preview_side <= 0 ? 0 : side < preview_side ? side : preview_side;
    int view_level = cm__preview_level(spec, preview_side);
    int levels = keep > view_level ? keep : view_level;
    cm__pyramid_t *p = calloc(1, sizeof *p);
    if (p) p->levels = calloc((size_t)(levels ? levels : 1), sizeof(level_t));
    if (p && view) {
        p->pw = spec->width == side ? view : (spec->width * view + side / 2) / side;
        p->ph = spec->height == side ? view : (spec->height * view + side / 2) / side;
        p->pw += p->pw == 0, p->ph += p->ph == 0;
        p->preview =
            calloc((size_t)(p->pw * p->ph), (size_t)spec->bands * cm_stype_size(spec->stype));
    }
    if (!p || !p->levels || (view && !p->preview)) {
        if (p) free(p->levels), free(p->preview);
        free(p);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    *p = (cm__pyramid_t){.path = path,
                         .n_keep = keep,
                         .labels_only = colors || px_is_label,
                         .colors = colors,
                         .preview_level = view_level,
                         .pw = p->pw,
                         .ph = p->ph,
                         .preview = p->preview,
                         .levels = p->levels,
                         .px_bytes = (size_t)spec->bands * cm_stype_size(spec->stype),
                         .lab_bytes = (size_t)label_bits / 8,
                         .width = spec->width,
                         .height = spec->height,
                         .chunk_w = grid->chunk_w,
                         .chunk_h = grid->chunk_h,
                         .n_cx = grid->n_cx};
    int rc = 0;
    for (int l = 0; l < levels && rc == 0; l++) {
        level_t *lv = &p->levels[l];
        cm_writer_spec_level(spec, l + 1, &lv->spec);
        lv->spec.deflate_level = OVERVIEW_DEFLATE_LEVEL;
        lv->tiles_x = cm__ceil_div_i64(lv->spec.width, lv->spec.tile_w);
        lv->tiles_y = cm__ceil_div_i64(lv->spec.height, lv->spec.tile_h);
        lv->tiles = calloc((size_t)(lv->tiles_x * lv->tiles_y), sizeof(level_tile_t));
        if (!lv->tiles || pthread_mutex_init(&lv->lock, NULL) != 0) {
            free(lv->tiles);
            lv->tiles = NULL;
            rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
            break;
        }
        p->n++;
        if (l >= keep) continue; /* the preview's alone */
        rc = cm_writer_open_encoder(path, &lv->spec, &lv->enc, ctx);
        if (rc == 0)
            rc = cm_tilestore_open(path, (uint32_t)(lv->tiles_x * lv->tiles_y), &lv->store, ctx);
    }
    if (rc < 0) {
        cm__pyramid_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

void cm__pyramid_free(cm__pyramid_t *p)
{
    if (!p) return;
    for (int l = 0; l < p->n; l++) {
        level_t *lv = &p->levels[l];
        for (int64_t t = 0; t < lv->tiles_x * lv->tiles_y; t++) {
            free(lv->tiles[t].px);
            free(lv->tiles[t].lab);
            cm_encoded_free(lv->tiles[t].enc);
        }
        free(lv->tiles);
        pthread_mutex_destroy(&lv->lock);
        cm_writer_abort(lv->enc);
        cm_tilestore_free(lv->store);
    }
    free(p->levels);
    free(p->preview);
    free(p);
}

/* The tile (tx, ty) of level l (from 0: level 1) and its rectangle, clipped to the level. */
static void tile_rect(const level_t *lv, int64_t tx, int64_t ty, int64_t *x, int64_t *y, int64_t *w,
                      int64_t *h)
{
    *x = tx * lv->spec.tile_w;
    *y = ty * lv->spec.tile_h;
    *w = lv->spec.width - *x < lv->spec.tile_w ? lv->spec.width - *x : lv->spec.tile_w;
    *h = lv->spec.height - *y < lv->spec.tile_h ? lv->spec.height - *y : lv->spec.tile_h;
}

/* The first preview pixel i (of n) whose sample (2i + 1) len / (2n), the level pixel under its
 * centre along a side of len, is at or after a. */
static int64_t first_sampling(int64_t a, int64_t len, int64_t n)
{
    int64_t num = 2 * n * a - len;
    return num <= 0 ? 0 : (num + 2 * len - 1) / (2 * len);
}

/* The preview pixels whose sample of level l (0: the image) lies in the rectangle (x, y, w, h)
 * of it, pixels packed at w. Disjoint for different rectangles: any thread. */
static void sample_preview(cm__pyramid_t *p, int l, int64_t x, int64_t y, int64_t w, int64_t h,
                           const uint8_t *px)
{
    if (!p->preview || l != p->preview_level) return;
    int64_t lw = (p->width + ((int64_t)1 << l) - 1) >> l;
    int64_t lh = (p->height + ((int64_t)1 << l) - 1) >> l;
    for (int64_t py = first_sampling(y, lh, p->ph); py < p->ph; py++) {
        int64_t sy = (2 * py + 1) * lh / (2 * p->ph);
        if (sy >= y + h) break;
        for (int64_t qx = first_sampling(x, lw, p->pw); qx < p->pw; qx++) {
            int64_t sx = (2 * qx + 1) * lw / (2 * p->pw);
            if (sx >= x + w) break;
            memcpy(p->preview + (size_t)(py * p->pw + qx) * p->px_bytes,
                   px + (size_t)((sy - y) * w + (sx - x)) * p->px_bytes, p->px_bytes);
        }
    }
}

static int deposit(cm__pyramid_t *p, int l, int64_t x, int64_t y, int64_t w, int64_t h,
                   const uint8_t *px, const uint8_t *lab, cm_ctx_t *ctx);

/* A tile whose last pixel came: encoded, and halved into the next level. */
static int complete(cm__pyramid_t *p, int l, level_tile_t *t, int64_t x, int64_t y, int64_t w,
                    int64_t h, cm_ctx_t *ctx)
{
    level_t *lv = &p->levels[l];
    uint8_t *px = t->px;
    int rc = 0;
    if (!px) { /* the pixels of the labels */
        size_t pb = p->px_bytes, lb = p->lab_bytes;
        px = malloc((size_t)(w * h) * pb);
        for (size_t i = 0; px && i < (size_t)(w * h); i++)
            copy_px(px + i * pb,
                    p->colors ? p->colors + label_at(t->lab, lb, i) * pb : t->lab + i * lb, pb);
        if (!px) rc = cm_fail(ctx, CM_ENOMEM, "%s: out of memory", p->path);
    }
    if (rc == 0) sample_preview(p, l + 1, x, y, w, h, px);
    if (rc == 0 && l < p->n_keep) rc = cm_writer_encode(lv->enc, x, y, w, h, px, &t->enc, ctx);
    if (px != t->px) free(px);
    if (rc == 0 && l + 1 < p->n) {
        int64_t hw = (w + 1) / 2, hh = (h + 1) / 2;
        uint8_t *hpx = p->labels_only ? NULL : malloc((size_t)(hw * hh) * p->px_bytes);
        uint8_t *hlab = malloc((size_t)(hw * hh) * p->lab_bytes);
        rc = (hpx || p->labels_only) && hlab
                 ? 0
                 : cm_fail(ctx, CM_ENOMEM, "%s: out of memory", p->path);
        if (rc == 0) {
            cm__halve(t->px, t->lab, p->px_bytes, p->lab_bytes, w, h, hpx, hlab);
            rc = deposit(p, l + 1, x / 2, y / 2, hw, hh, hpx, hlab, ctx);
        }
        free(hpx);
        free(hlab);
    }
    free(t->px);
    free(t->lab);
    t->px = t->lab = NULL;
    return rc;
}

/* Copies the rectangle (x, y, w, h) of level l, pixels and labels packed at w, into the tiles
 * it covers, and completes those it fills. */
static int deposit(cm__pyramid_t *p, int l, int64_t x, int64_t y, int64_t w, int64_t h,
                   const uint8_t *px, const uint8_t *lab, cm_ctx_t *ctx)
{
    level_t *lv = &p->levels[l];
    size_t pb = p->px_bytes, lb = p->lab_bytes;
    for (int64_t ty = y / lv->spec.tile_h; ty <= (y + h - 1) / lv->spec.tile_h; ty++)
        for (int64_t tx = x / lv->spec.tile_w; tx <= (x + w - 1) / lv->spec.tile_w; tx++) {
            int64_t X, Y, W, H;
            tile_rect(lv, tx, ty, &X, &Y, &W, &H);
            level_tile_t *t = &lv->tiles[ty * lv->tiles_x + tx];
            pthread_mutex_lock(&lv->lock);
            if (!t->lab && t->left == 0) { /* not begun: left reaches 0 only once filled */
                t->px = p->labels_only ? NULL : malloc((size_t)(W * H) * pb);
                t->lab = malloc((size_t)(W * H) * lb);
                t->left = W * H;
            }
            bool ok = (t->px || p->labels_only) && t->lab;
            pthread_mutex_unlock(&lv->lock);
            CM_FAIL_IF(ctx, !ok, CM_ENOMEM, "%s: out of memory for a reduced level", p->path);
            int64_t x0 = x > X ? x : X, y0 = y > Y ? y : Y;
            int64_t x1 = x + w < X + W ? x + w : X + W, y1 = y + h < Y + H ? y + h : Y + H;
            for (int64_t r = y0; r < y1; r++) {
                size_t from = (size_t)((r - y) * w + (x0 - x)),
                       to = (size_t)((r - Y) * W + (x0 - X));
                if (t->px) memcpy(t->px + to * pb, px + from * pb, (size_t)(x1 - x0) * pb);
                memcpy(t->lab + to * lb, lab + from * lb, (size_t)(x1 - x0) * lb);
            }
            if (__atomic_sub_fetch(&t->left, (x1 - x0) * (y1 - y0), __ATOMIC_ACQ_REL) == 0)
                CM_TRY(complete(p, l, t, X, Y, W, H, ctx));
        }
    return 0;
}

int cm__pyramid_add(cm__pyramid_t *p, int64_t x, int64_t y, int64_t w, int64_t h, const uint8_t *px,
                    const uint8_t *lab, cm_ctx_t *ctx)
{
    sample_preview(p, 0, x, y, w, h, px);
    if (p->n == 0) return 0;
    int64_t hw = (w + 1) / 2, hh = (h + 1) / 2;
    uint8_t *hpx = p->labels_only ? NULL : malloc((size_t)(hw * hh) * p->px_bytes);
    uint8_t *hlab = malloc((size_t)(hw * hh) * p->lab_bytes);
    int rc =
        (hpx || p->labels_only) && hlab ? 0 : cm_fail(ctx, CM_ENOMEM, "%s: out of memory", p->path);
    if (rc == 0) {
        cm__halve(p->labels_only ? NULL : px, lab, p->px_bytes, p->lab_bytes, w, h, hpx, hlab);
        rc = deposit(p, 0, x / 2, y / 2, hw, hh, hpx, hlab, ctx);
    }
    free(hpx);
    free(hlab);
    return rc;
}

/* The chunk of the full image that holds the last pixel of tile (tx, ty) of level l: the last
 * chunk it covers in the order they are put. */
static int64_t due_chunk(const cm__pyramid_t *p, int l, int64_t tx, int64_t ty)
{
    const level_t *lv = &p->levels[l];
    int64_t span_x = lv->spec.tile_w << (l + 1), span_y = lv->spec.tile_h << (l + 1);
    int64_t x_end = (tx + 1) * span_x < p->width ? (tx + 1) * span_x : p->width;
    int64_t y_end = (ty + 1) * span_y < p->height ? (ty + 1) * span_y : p->height;
    return ((y_end - 1) / p->chunk_h) * p->n_cx + (x_end - 1) / p->chunk_w;
}

int cm__pyramid_put(cm__pyramid_t *p, int64_t chunk, cm_ctx_t *ctx)
{
    int64_t cx = chunk % p->n_cx, cy = chunk / p->n_cx;
    int64_t cx_last = (cx + 1) * p->chunk_w < p->width ? (cx + 1) * p->chunk_w - 1 : p->width - 1;
    int64_t cy_last = (cy + 1) * p->chunk_h < p->height ? (cy + 1) * p->chunk_h - 1 : p->height - 1;
    for (int l = 0; l < p->n_keep; l++) {
        level_t *lv = &p->levels[l];
        int64_t span_x = lv->spec.tile_w << (l + 1), span_y = lv->spec.tile_h << (l + 1);
        for (int64_t ty = cy * p->chunk_h / span_y; ty <= cy_last / span_y; ty++)
            for (int64_t tx = cx * p->chunk_w / span_x; tx <= cx_last / span_x; tx++) {
                if (due_chunk(p, l, tx, ty) != chunk) continue;
                level_tile_t *t = &lv->tiles[ty * lv->tiles_x + tx];
                CM_FAIL_IF(ctx, !t->enc, CM_EINTERNAL,
                           "%s: tile %lld of reduced level %d was not made by chunk %lld", p->path,
                           (long long)(ty * lv->tiles_x + tx), l + 1, (long long)chunk);
                CM_TRY(cm_tilestore_put(lv->store, t->enc, ctx));
                cm_encoded_free(t->enc);
                t->enc = NULL;
            }
    }
    return 0;
}

int cm__pyramid_write(const cm__pyramid_t *p, cm_writer_t *wr, cm_ctx_t *ctx)
{
    for (int l = 0; l < p->n_keep; l++)
        CM_TRY(cm_writer_add_level(wr, l + 1, p->levels[l].store, ctx));
    return 0;
}

int cm__pyramid_commit_cog(const cm__pyramid_t *p, cm_writer_t *wr, cm_ctx_t *ctx)
{
    enum { MAX_LEVELS = 32 };
    const cm_tilestore_t *stores[MAX_LEVELS];
    int n = p ? p->n_keep : 0;
    if (n > MAX_LEVELS) {
        cm_writer_abort(wr);
        return cm_fail(ctx, CM_EINTERNAL, "%d reduced levels", n);
    }
    for (int l = 0; l < n; l++) stores[l] = p->levels[l].store;
    return cm_writer_commit_cog(wr, n, stores, ctx);
}

int cm__pyramid_preview(const cm__pyramid_t *p, const char *path, const cm_writer_spec_t *spec,
                        cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !p->preview, CM_EINTERNAL, "%s: no preview was made", path);
    cm_writer_spec_t s = *spec;
    s.format = CM_FILE_PNG;
    s.width = p->pw;
    s.height = p->ph;
    s.tile_w = s.tile_h = 16;
    s.description = NULL;
    s.tags_from = NULL;
    cm_writer_t *wr = NULL;
    cm_encoded_t *e = NULL;
    CM_TRY(cm_writer_open(path, &s, &wr, ctx));
    int rc = cm_writer_encode(wr, 0, 0, p->pw, p->ph, p->preview, &e, ctx);
    if (rc == 0) rc = cm_writer_put_encoded(wr, e, ctx);
    cm_encoded_free(e);
    if (rc < 0) {
        cm_writer_abort(wr);
        return rc;
    }
    return cm_writer_commit(wr, ctx);
}
