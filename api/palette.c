/* The palette a model found, readable: its colours as 8-bit RGB with their counts and shares,
 * largest first, and the files that show them (a GIMP palette, lines of hex colours, a strip
 * of swatches). Reads models, writes through io's atomic files and PNG writer; fits nothing. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api_internal.h"

__extension__ typedef unsigned __int128 u128;

/* The 8-bit value of a centroid's sample v in type t: rounded to the type first, as the output
 * image holds it, then scaled from the type's range. */
static uint8_t to_u8(double v, cm_stype_t t)
{
    double x = v;
    switch (t) {
    case CM_U8: break;
    case CM_U16: x = nearbyint(v < 0 ? 0 : v > 65535 ? 65535 : v) / 257.0; break;
    case CM_I16: x = nearbyint(v < 0 ? 0 : v > 32767 ? 32767 : v) * 255.0 / 32767.0; break;
    case CM_F32: x = v * 255.0; break;
    }
    x = nearbyint(x);
    return !(x > 0) ? 0 : x > 255 ? 255 : (uint8_t)x; /* !(x > 0) holds NaN too */
}

/* Largest count first, of equal counts the lower label. */
static int by_count(const void *a, const void *b)
{
    const cm_palette_color_t *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

int cm_palette_make(const cm_model_t *m, cm_stype_t stype, cm_palette_t **out, cm_ctx_t *ctx)
{
    *out = NULL;
    CM_FAIL_IF(ctx, !m || m->k < 1 || m->d < 1, CM_EUSAGE, "no model given for a palette");
    cm_palette_t *p = calloc(1, sizeof *p);
    if (p) p->colors = calloc((size_t)m->k, sizeof *p->colors);
    if (!p || !p->colors) {
        cm_palette_free(p);
        return cm_fail(ctx, CM_ENOMEM, "out of memory for a palette of %d colours", m->k);
    }
    p->k = m->k;
    p->has_rgb = m->d == 1 || m->d == 3;
    double sum = 0; /* the shares' divisor: a double cannot overflow where the total might */
    for (int j = 0; j < m->k; j++) {
        int64_t n = m->counts[j] > 0 ? m->counts[j] : 0;
        if (__builtin_add_overflow(p->total, n, &p->total)) p->total = INT64_MAX;
        sum += (double)n;
    }
    for (int j = 0; j < m->k; j++) {
        cm_palette_color_t *c = &p->colors[j];
        c->label = j;
        c->count = m->counts[j] > 0 ? m->counts[j] : 0;
        c->share = sum > 0 ? (double)c->count / sum : 0.0;
        for (int b = 0; p->has_rgb && b < 3; b++)
            c->rgb[b] = to_u8(m->centroids[(size_t)j * m->d + (m->d == 3 ? b : 0)], stype);
    }
    qsort(p->colors, (size_t)p->k, sizeof *p->colors, by_count);
    *out = p;
    return 0;
}

void cm_palette_free(cm_palette_t *p)
{
    if (!p) return;
    free(p->colors);
    free(p);
}

void cm_palette_line(const cm_palette_color_t *c, char *buf, size_t size)
{
    snprintf(buf, size, "#%02x%02x%02x %lld %.2f%%", c->rgb[0], c->rgb[1], c->rgb[2],
             (long long)c->count, 100.0 * c->share);
}

int cm_palette_format_of_path(const char *path, cm_palette_format_t *out, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, !path, CM_EUSAGE, "no palette file given");
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    const char *name = slash ? slash + 1 : path;
    if (dot && dot <= name) dot = NULL; /* ".gpl" alone is a hidden file's name, not a format */
    static const struct {
        const char *ext;
        cm_palette_format_t f;
    } known[] = {{".gpl", CM_PALETTE_GPL},
                 {".txt", CM_PALETTE_HEX},
                 {".hex", CM_PALETTE_HEX},
                 {".png", CM_PALETTE_PNG}};
    for (size_t i = 0; dot && i < sizeof known / sizeof known[0]; i++)
        if (!strcasecmp(dot, known[i].ext)) {
            *out = known[i].f;
            return 0;
        }
    return cm_fail(ctx, CM_EUSAGE,
                   "%s: its extension says which palette to write: .gpl (GIMP palette), .txt or "
                   ".hex (lines of #rrggbb count percent) or .png (swatches)",
                   path);
}

int cm_palette_check(const char *path, int features, cm_ctx_t *ctx)
{
    cm_palette_format_t f;
    CM_TRY(cm_palette_format_of_path(path, &f, ctx));
    CM_FAIL_IF(ctx, features != 1 && features != 3, CM_EUSAGE,
               "%s: a palette shows grey or RGB colours; the image has %d colour bands", path,
               features);
    return 0;
}

/* The weight of colour i in the swatches: its count, or 1 each when no colour has any. */
static int64_t weight(const cm_palette_t *p, int i)
{
    return p->total > 0 ? p->colors[i].count : 1;
}

int64_t cm_palette_swatch_width(const cm_palette_t *p)
{
    int64_t used = 0;
    for (int i = 0; i < p->k; i++) used += weight(p, i) > 0;
    return used > CM_PALETTE_SWATCH_WIDTH ? used : CM_PALETTE_SWATCH_WIDTH;
}

typedef struct remainder {
    u128 rem;
    int i;
} remainder_t;

/* Largest remainder first, of equal ones the earlier colour. */
static int by_remainder(const void *a, const void *b)
{
    const remainder_t *x = a, *y = b;
    if (x->rem != y->rem) return x->rem > y->rem ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

int cm_palette_widths(const cm_palette_t *p, int64_t width, int64_t *widths, cm_ctx_t *ctx)
{
    int used = 0;
    u128 total = 0;
    for (int i = 0; i < p->k; i++) {
        int64_t w = weight(p, i);
        CM_FAIL_IF(ctx, i > 0 && w > weight(p, i - 1), CM_EUSAGE,
                   "the colours of a palette must come largest count first");
        used += w > 0;
        total += (u128)w;
        widths[i] = 0;
    }
    CM_FAIL_IF(ctx, width < used || width < 1, CM_EUSAGE,
               "a strip of %lld columns cannot show %d colours", (long long)width, used);
    /* The colours with pixels but less than a column's share of what is left get one column
     * each, smallest first: the colours after them then share the rest, each at least one. */
    int n = used;
    int64_t cols = width;
    while (n > 1 && (u128)weight(p, n - 1) * (u128)cols < total) {
        widths[--n] = 1;
        cols--;
        total -= (u128)weight(p, n);
    }
    remainder_t *rem = malloc(sizeof(remainder_t) * (size_t)n);
    CM_FAIL_IF(ctx, !rem, CM_ENOMEM, "out of memory for the swatches of %d colours", p->k);
    int64_t given = 0;
    for (int i = 0; i < n; i++) {
        u128 q = (u128)weight(p, i) * (u128)cols;
        widths[i] = (int64_t)(q / total);
        rem[i] = (remainder_t){q % total, i};
        given += widths[i];
    }
    /* Largest remainders: the columns the rounding down left, fewer than n, one each. */
    qsort(rem, (size_t)n, sizeof *rem, by_remainder);
    for (int64_t j = 0; j < cols - given; j++) widths[rem[j].i]++;
    free(rem);
    return 0;
}

/* The strip of swatches as a PNG, through io's writer: a temporary file renamed when done. */
static int save_png(const cm_palette_t *p, const char *path, cm_ctx_t *ctx)
{
    int64_t w = cm_palette_swatch_width(p), h = CM_PALETTE_SWATCH_HEIGHT;
    int64_t *widths = malloc(sizeof(int64_t) * (size_t)p->k);
    uint8_t *px = malloc((size_t)(w * h * 3));
    int rc = widths && px ? 0 : cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    if (rc == 0) rc = cm_palette_widths(p, w, widths, ctx);
    if (rc == 0) {
        uint8_t *at = px;
        for (int i = 0; i < p->k; i++)
            for (int64_t x = 0; x < widths[i]; x++, at += 3) memcpy(at, p->colors[i].rgb, 3);
        for (int64_t y = 1; y < h; y++) memcpy(px + y * w * 3, px, (size_t)(w * 3));
    }
    cm_writer_spec_t spec;
    cm_writer_spec_rgb8(w, h, CM_FILE_PNG, &spec);
    cm_writer_t *wr = NULL;
    cm_encoded_t *e = NULL;
    if (rc == 0) rc = cm_writer_open(path, &spec, &wr, ctx);
    if (rc == 0) rc = cm_writer_encode(wr, 0, 0, w, h, px, &e, ctx);
    if (rc == 0) rc = cm_writer_put_encoded(wr, e, ctx);
    cm_encoded_free(e);
    if (rc == 0) {
        rc = cm_writer_commit(wr, ctx);
    } else {
        cm_writer_abort(wr);
    }
    free(px);
    free(widths);
    return rc;
}

/* The GIMP palette's name: name, else path's file name without its extension; on one line. */
static void gimp_name(const char *path, const char *name, char *buf, size_t size)
{
    if (!name) {
        const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
        const char *dot = strrchr(base, '.');
        snprintf(buf, size, "%.*s", (int)(dot && dot > base ? dot - base : (int)strlen(base)),
                 base);
    } else {
        snprintf(buf, size, "%s", name);
    }
    for (char *c = buf; *c; c++)
        if (*c == '\n' || *c == '\r') *c = ' ';
}

/* The text of a .gpl or .txt palette into f. */
static void write_text(const cm_palette_t *p, cm_palette_format_t f, const char *path,
                       const char *name, FILE *out)
{
    if (f == CM_PALETTE_GPL) {
        char title[256];
        gimp_name(path, name, title, sizeof title);
        fprintf(out, "GIMP Palette\nName: %s\nColumns: %d\n#\n", title, p->k < 16 ? p->k : 16);
        fprintf(out, "# chunkmeans %s: %d colours, largest share first, of %lld pixels\n",
                CM_VERSION, p->k, (long long)p->total);
    }
    for (int i = 0; i < p->k; i++) {
        const cm_palette_color_t *c = &p->colors[i];
        if (f == CM_PALETTE_GPL) {
            fprintf(out, "%3u %3u %3u\t#%02x%02x%02x %.2f%%\n", c->rgb[0], c->rgb[1], c->rgb[2],
                    c->rgb[0], c->rgb[1], c->rgb[2], 100.0 * c->share);
        } else {
            char line[CM_PALETTE_LINE_MAX];
            cm_palette_line(c, line, sizeof line);
            fprintf(out, "%s\n", line);
        }
    }
}

int cm_palette_save(const cm_palette_t *p, const char *path, const char *name, cm_ctx_t *ctx)
{
    cm_palette_format_t f;
    CM_TRY(cm_palette_format_of_path(path, &f, ctx));
    CM_FAIL_IF(ctx, !p || !p->has_rgb, CM_EUSAGE,
               "%s: a palette shows grey or RGB colours, and the model has other features", path);
    if (f == CM_PALETTE_PNG) return save_png(p, path, ctx);
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    CM_FAIL_IF(ctx, !out, CM_ENOMEM, "%s: out of memory", path);
    write_text(p, f, path, name, out);
    bool ok = !ferror(out);
    if (fclose(out) != 0) ok = false;
    int rc = ok ? cm_file_write_atomic(path, text, len, ctx)
                : cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    free(text);
    return rc;
}

int cm__palette_write(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                      const char *name, cm_ctx_t *ctx)
{
    cm_palette_t *p = NULL;
    CM_TRY(cm_palette_make(m, meta->stype, &p, ctx));
    int rc = cm_palette_save(p, path, name, ctx);
    cm_palette_free(p);
    return rc;
}
