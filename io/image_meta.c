/* What every format shares: the names of the formats and of their extensions, the metadata
 * carried from an input to its outputs (ICC profile, orientation, resolution), the EXIF
 * orientation read and written, and rows put together into bands for the writers of rows. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "io_internal.h"

const char *cm_file_format_name(cm_file_format_t f)
{
    switch (f) {
    case CM_FILE_PNG: return "PNG";
    case CM_FILE_JPEG: return "JPEG";
    default: return "TIFF";
    }
}

int cm_file_format_of_path(const char *path, cm_file_format_t *out, cm_ctx_t *ctx)
{
    const char *slash = strrchr(path, '/'), *dot = strrchr(path, '.');
    const char *name = slash ? slash + 1 : path;
    if (dot && (dot < name || dot == name)) dot = NULL;
    /* ".k5" is how the outputs of a list of k are told apart when OUT has no extension
     * ("plain" gives "plain.k5"; "a.png" gives "a.k5.png") */
    if (dot && dot[1] == 'k' && dot[2] && strspn(dot + 2, "0123456789") == strlen(dot + 2) &&
        !memchr(name + 1, '.', (size_t)(dot - name - 1)))
        dot = NULL;
    if (!dot) { /* no extension: TIFF, as before other formats were written */
        *out = CM_FILE_TIFF;
        return 0;
    }
    static const struct {
        const char *ext;
        cm_file_format_t f;
    } known[] = {{".tif", CM_FILE_TIFF},
                 {".tiff", CM_FILE_TIFF},
                 {".png", CM_FILE_PNG},
                 {".jpg", CM_FILE_JPEG},
                 {".jpeg", CM_FILE_JPEG}};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcasecmp(dot, known[i].ext)) {
            *out = known[i].f;
            return 0;
        }
    return cm_fail(ctx, CM_EUSAGE,
                   "%s: its extension says which format to write: .tif or .tiff (TIFF), .png "
                   "(PNG), .jpg or .jpeg (JPEG), or none (TIFF)",
                   path);
}

bool cm__meta_set_icc(cm__meta_t *m, const void *icc, size_t n)
{
    free(m->icc);
    m->icc = n ? malloc(n) : NULL;
    m->icc_size = m->icc ? n : 0;
    if (m->icc) memcpy(m->icc, icc, n);
    return m->icc || !n;
}

void cm__meta_clear(cm__meta_t *m)
{
    free(m->icc);
    *m = (cm__meta_t){0};
}

const cm__meta_t *cm__image_meta(const cm_image_t *img)
{
    return &img->meta;
}

/* ---- EXIF: a TIFF structure whose first directory may hold the orientation ---- */

static uint32_t get(const uint8_t *p, int n, bool big)
{
    uint32_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint32_t)p[big ? i : n - 1 - i] << (8 * (n - 1 - i));
    return v;
}

int cm__exif_orientation(const uint8_t *exif, size_t size)
{
    if (size >= 6 && !memcmp(exif, "Exif\0\0", 6)) exif += 6, size -= 6;
    if (size < 8) return 0;
    bool big = exif[0] == 'M';
    if (memcmp(exif, big ? "MM\0*" : "II*\0", 4)) return 0;
    uint32_t ifd = get(exif + 4, 4, big);
    if (ifd > size - 2) return 0;
    uint32_t n = get(exif + ifd, 2, big);
    for (uint32_t i = 0; i < n; i++) {
        size_t at = (size_t)ifd + 2 + (size_t)i * 12;
        if (at + 12 > size) return 0;
        if (get(exif + at, 2, big) != 0x0112) continue;
        if (get(exif + at + 2, 2, big) != 3 /* SHORT */) return 0;
        uint32_t v = get(exif + at + 8, 2, big);
        return v >= 1 && v <= 8 ? (int)v : 0;
    }
    return 0;
}

size_t cm__exif_make(int orientation, uint8_t *buf)
{
    static const uint8_t head[] = {'I', 'I',  '*', 0, 8, 0, 0, 0, /* one entry */ 1,
                                   0,   0x12, 1,   3, 0, 1, 0, 0, 0};
    memcpy(buf, head, sizeof head);
    uint8_t *p = buf + sizeof head;
    p[0] = (uint8_t)orientation, p[1] = p[2] = p[3] = 0; /* the value, padded */
    memset(p + 4, 0, 4);                                 /* no next directory */
    return sizeof head + 8;
}

/* ---- bands of whole rows from pieces ---- */

cm_encoded_t *cm__piece_new(int64_t x, int64_t y, int64_t w, int64_t h, const void *raw,
                            size_t raw_bytes)
{
    cm_encoded_t *e = calloc(1, sizeof *e);
    if (e) {
        e->size = calloc(1, sizeof(size_t));
        e->data = calloc(1, sizeof(uint8_t *));
    }
    if (e && e->data && raw) {
        e->data[0] = malloc(raw_bytes ? raw_bytes : 1);
        e->n = e->data[0] != NULL;
    }
    if (!e || !e->size || !e->data || (raw && !e->n)) {
        cm_encoded_free(e);
        return NULL;
    }
    if (raw) memcpy(e->data[0], raw, raw_bytes);
    e->raw = raw != NULL;
    e->size[0] = raw_bytes;
    e->x = x, e->y = y, e->w = w, e->h = h;
    return e;
}

int cm__band_put(cm__band_t *b, const cm_encoded_t *e, const uint8_t **band, cm_ctx_t *ctx,
                 const char *path)
{
    *band = NULL;
    if (e->x == 0 && e->w == b->width) { /* whole rows already */
        *band = e->data[0];
        return 0;
    }
    if (e->x == 0) {
        size_t bytes;
        if (!cm__mul3_size((size_t)b->width, (size_t)e->h, b->px_bytes, &bytes)) bytes = SIZE_MAX;
        if (bytes > b->cap) {
            free(b->rows);
            b->rows = bytes == SIZE_MAX ? NULL : malloc(bytes);
            b->cap = b->rows ? bytes : 0;
        }
        CM_FAIL_IF(ctx, !b->rows, CM_ENOMEM, "%s: out of memory for a band of rows", path);
        b->y = e->y, b->h = e->h, b->filled = 0;
    }
    CM_FAIL_IF(ctx, e->y != b->y || e->h != b->h || e->x != b->filled, CM_EINTERNAL,
               "%s: rows put out of order (%lld,%lld)", path, (long long)e->x, (long long)e->y);
    size_t piece_row = (size_t)e->w * b->px_bytes, row = (size_t)b->width * b->px_bytes;
    for (int64_t r = 0; r < e->h; r++)
        memcpy(b->rows + (size_t)r * row + (size_t)e->x * b->px_bytes,
               e->data[0] + (size_t)r * piece_row, piece_row);
    b->filled += e->w;
    if (b->filled == b->width) *band = b->rows;
    return 0;
}

int cm__file_close(FILE **f, const char *path, cm_ctx_t *ctx)
{
    errno = 0;
    bool ok = fflush(*f) == 0 && fsync(fileno(*f)) == 0;
    int e = errno;
    ok = fclose(*f) == 0 && ok;
    *f = NULL;
    CM_FAIL_IF(ctx, !ok, CM_EIO, "%s: cannot write: %s", path, strerror(e ? e : EIO));
    return 0;
}
