/* cm-mkimage: streams synthetic TIFFs of any size (photo, cat, blocks, noise; 8/16-bit integer or
 * 32-bit float, 1 to 64 bands, palette, nodata and NaN) to disk, a batch of tiles or strips at a
 * time, for tests, the README demo and benchmarks. Every pixel is a pure function of (x, y, seed,
 * options); it knows nothing of k-means and does not link libchunkmeans. */

#include <assert.h>
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <tiffio.h>
#include <zlib.h>
#include <zstd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define PROG "cm-mkimage"
#define EXIT_USAGE 2

#define MAX_SIDE ((int64_t)1 << 30)         /* width and height limit */
#define MAX_UNITS ((int64_t)1 << 24)        /* tiles or strips: libtiff keeps 16 bytes per unit */
#define MAX_TILE 4096                       /* keeps an 8-bit RGBA tile buffer at 64 MiB or less */
#define MAX_TILE_BYTES ((int64_t)256 << 20) /* a tile of all bands, any sample type */
#define MAX_BANDS 64
#define MAX_ROW_BYTES ((int64_t)256 << 20) /* striped layout generates whole rows */
#define BATCH_BYTES ((size_t)192 << 20)    /* encoded units in flight, per batch */
#define BIG_STRIP_BYTES ((size_t)32 << 20) /* larger strips are streamed in bands of rows */
#define BIGTIFF_RAW_BYTES ((int64_t)2 << 30)
#define ZIP_LEVEL 2  /* 4x faster than 6 on photo-like tiles for a 4% larger file */
#define ZSTD_LEVEL 9 /* libtiff's default for its zstd codec */
#define JPEG_QUALITY 90
#define MAX_SHAPES 64

enum pattern { PAT_PHOTO, PAT_CAT, PAT_BLOCKS, PAT_NOISE };
static const char *const pattern_names[] = {"photo", "cat", "blocks", "noise"};

/* Sample types. Every pattern makes 8-bit values v first; the type maps them monotonically. */
enum sample_type { T_U8, T_U16, T_I16, T_F32 };
static const char *const type_names[] = {"u8", "u16", "i16", "f32"};
static const int type_bytes[] = {1, 2, 2, 4};

/* The GDAL_NODATA tag: ASCII, the nodata value as text; libtiff learns it from tag_extender. */
#define TAG_GDAL_NODATA 42113

/* How unit bytes reach the file: compressed here in parallel and written raw, or handed to
 * libtiff's encoder (serial). */
enum encoding { ENC_NONE, ENC_ZLIB, ENC_ZSTD, ENC_LIBTIFF };

static const struct {
    const char *name;
    uint16_t tag;
    int enc;
} codecs[] = {
    {"none", COMPRESSION_NONE, ENC_NONE},
    {"lzw", COMPRESSION_LZW, ENC_LIBTIFF},
    {"deflate", COMPRESSION_ADOBE_DEFLATE, ENC_ZLIB},
    {"zstd", COMPRESSION_ZSTD, ENC_ZSTD},
    {"packbits", COMPRESSION_PACKBITS, ENC_LIBTIFF},
    {"jpeg", COMPRESSION_JPEG, ENC_LIBTIFF},
};
#define N_CODECS (sizeof(codecs) / sizeof(codecs[0]))

typedef struct {
    const char *out_path;
    int64_t width, height;
    int bands;
    int pattern;
    uint64_t seed;
    int tiled;
    int64_t tile_px;
    int64_t strip_rows;
    int codec;
    int bigtiff;
    int quiet;
    int threads;
    int type;            /* enum sample_type */
    int alpha;           /* --alpha: with 5 bands or more, the last one is alpha */
    int separate;        /* PLANARCONFIG_SEPARATE */
    int palette;         /* PHOTOMETRIC_PALETTE, one 8-bit index per pixel */
    int spp;             /* samples per pixel in the file: bands, or 1 with --palette */
    int has_nodata;      /* --nodata given */
    double nodata;       /* as stored: exact in the sample type */
    double nan_fraction; /* f32 only; negative when not given */
} options;

/* ---------------------------------------------------------------------------------------------
 * Hashing and value noise: integer hashes of lattice points, so any pixel is computed alone.
 */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t hash2(uint64_t key, int64_t ix, int64_t iy)
{
    return mix64(key ^ mix64((uint64_t)ix * UINT64_C(0x9e3779b97f4a7c15) +
                             (uint64_t)iy * UINT64_C(0xc2b2ae3d27d4eb4f)));
}

/* A hash as a float in [-1, 1]. */
static float hash_unit(uint64_t key, int64_t ix, int64_t iy)
{
    return (float)(hash2(key, ix, iy) >> 40) * (2.0f / 16777215.0f) - 1.0f;
}

/* Sequential generator for building a scene from the seed. */
static uint64_t rng_next(uint64_t *state)
{
    *state += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(*state);
}

static float rng_unit(uint64_t *state)
{
    return (float)(rng_next(state) >> 40) * (1.0f / 16777216.0f);
}

static float rng_range(uint64_t *state, float lo, float hi)
{
    return lo + (hi - lo) * rng_unit(state);
}

static float clampf(float v, float lo, float hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* floorf without a libm call on baseline x86-64, for |t| < 2^31. */
static float floor_fast(float t)
{
    const float i = (float)(int32_t)t;
    return i > t ? i - 1.0f : i;
}

static float smooth(float t)
{
    return t * t * (3.0f - 2.0f * t);
}

static float lerpf(float a, float b, float t)
{
    return a + (b - a) * t;
}

/* Adds amp * value noise (cells of cell_x by cell_y pixels, in [-1, 1]) to acc[0..n) for the
 * pixels (x0 + i, y). Lattice values are recomputed only when the cell changes. */
static void noise_add(uint64_t key, double cell_x, double cell_y, int64_t y, int64_t x0, int n,
                      float amp, float *acc)
{
    const double fy = ((double)y + 0.5) / cell_y; /* x, y >= 0: truncation is floor */
    const int64_t iy = (int64_t)fy;
    const float ty = smooth((float)(fy - (double)iy));
    const double inv_cell_x = 1.0 / cell_x;
    int64_t ix = INT64_MIN;
    float l0 = 0.0f, l1 = 0.0f;

    for (int i = 0; i < n; i++) {
        const double fx = ((double)(x0 + i) + 0.5) * inv_cell_x;
        const int64_t jx = (int64_t)fx;
        if (jx != ix) {
            ix = jx;
            l0 = lerpf(hash_unit(key, ix, iy), hash_unit(key, ix, iy + 1), ty);
            l1 = lerpf(hash_unit(key, ix + 1, iy), hash_unit(key, ix + 1, iy + 1), ty);
        }
        acc[i] += amp * lerpf(l0, l1, smooth((float)(fx - (double)jx)));
    }
}

/* ---------------------------------------------------------------------------------------------
 * Scenes: a background (two gradients split at a wavy horizon, modulated by noise fields) and
 * soft-edged shapes painted in order, then vignetting and per-pixel noise.
 */

enum shape_kind { SH_ELLIPSE, SH_BOX, SH_TRIANGLE, SH_CAPSULE };

typedef struct {
    int kind;
    float cx, cy;       /* centre, pixels */
    float ax, ay;       /* ellipse radii or box half sizes, pixels */
    float cs, sn;       /* rotation of the local frame (ellipse, box) */
    float radius;       /* capsule radius or box corner radius */
    float vx[3], vy[3]; /* triangle vertices or capsule ends, relative to the centre */
    float ex[3], ey[3]; /* triangle edges or capsule axis */
    float inv_ee[3];    /* 1 / |edge|^2 */
    float orient;       /* triangle winding sign */
    float soft;         /* edge width, pixels */
    float rgb[3];
    float opacity;
    float light;      /* strength of the top-left light across the shape */
    float rim;        /* darkening towards the rim (ellipses) */
    float stripe_amp; /* stripes in image coordinates: amplitude, direction / period */
    float stripe_dx, stripe_dy;
    float inv_size;             /* 1 / largest half extent */
    int64_t bx0, by0, bx1, by1; /* pixels it may touch */
} shape;

typedef struct {
    int pattern;
    int64_t width, height;
    int bands; /* samples per pixel the row generators write: 1 to 4 */
    uint64_t seed;
    float inv_w, inv_h;
    float top[3], low_sky[3], ground_near[3], ground_far[3];
    float horizon, horizon_amp, horizon_cell, horizon_soft; /* fractions of height, pixels */
    float lum_cell[4], lum_amp[4];                          /* pixels, relative gain */
    float hue_cell[2], hue_amp;
    float grain_cx, grain_cy, grain_amp; /* anisotropic texture on the ground */
    float vignette;
    float noise_luma, noise_chroma; /* per-pixel noise, sample units */
    int n_shapes;
    shape shapes[MAX_SHAPES];

    /* What the 8-bit pattern becomes in the file. */
    int plain; /* 8-bit, 1 to 4 bands, nothing below: the row generators write the samples */
    int type;  /* enum sample_type */
    int bps;   /* bytes per sample */
    int spp;   /* samples per pixel in the file */
    int color; /* samples per pixel that are not alpha (alpha is always the last sample) */
    int multi; /* 5 bands or more: colour bands derived from the RGB pattern */
    int palette;
    int32_t mix_w[MAX_BANDS][3]; /* multispectral weights on R, G, B, in 1/256 */
    int32_t mix_off[MAX_BANDS];  /* multispectral offset, in 1/256 */
    uint8_t block_v[MAX_BANDS][3];
    uint8_t near6[256], near7[256]; /* nearest colour-cube level of an 8-bit value */
    uint8_t level7[7];
    int has_nodata;
    uint8_t nodata_bytes[4];     /* the nodata sample, in the sample type and host order */
    int64_t nd_cx, nd_cy, nd_r2; /* nodata disc: centre and squared radius */
    int has_nan;
    double nan_below, inf_from; /* NaN where u < nan_below, +Inf where u >= inf_from */
    uint8_t nan_bytes[4], inf_bytes[4];
} scene;

static shape *shape_new(scene *sc, int kind, float r, float g, float b)
{
    if (sc->n_shapes == MAX_SHAPES)
        return &sc->shapes[MAX_SHAPES - 1]; /* scenes are built by code below, never by input */
    shape *sh = &sc->shapes[sc->n_shapes++];
    memset(sh, 0, sizeof(*sh));
    sh->kind = kind;
    sh->cs = 1.0f;
    sh->rgb[0] = r;
    sh->rgb[1] = g;
    sh->rgb[2] = b;
    sh->opacity = 1.0f;
    sh->soft = 1.0f;
    return sh;
}

static shape *ellipse_new(scene *sc, float cx, float cy, float ax, float ay, float r, float g,
                          float b)
{
    shape *sh = shape_new(sc, SH_ELLIPSE, r, g, b);
    sh->cx = cx;
    sh->cy = cy;
    sh->ax = ax;
    sh->ay = ay;
    return sh;
}

static shape *box_new(scene *sc, float cx, float cy, float ax, float ay, float corner, float r,
                      float g, float b)
{
    shape *sh = shape_new(sc, SH_BOX, r, g, b);
    sh->cx = cx;
    sh->cy = cy;
    sh->ax = ax;
    sh->ay = ay;
    sh->radius = fminf(corner, fminf(ax, ay));
    return sh;
}

static shape *triangle_new(scene *sc, const float px[3], const float py[3], float r, float g,
                           float b)
{
    shape *sh = shape_new(sc, SH_TRIANGLE, r, g, b);
    sh->cx = (px[0] + px[1] + px[2]) / 3.0f;
    sh->cy = (py[0] + py[1] + py[2]) / 3.0f;
    for (int i = 0; i < 3; i++) {
        sh->vx[i] = px[i] - sh->cx;
        sh->vy[i] = py[i] - sh->cy;
    }
    return sh;
}

static shape *capsule_new(scene *sc, float x0, float y0, float x1, float y1, float radius, float r,
                          float g, float b)
{
    shape *sh = shape_new(sc, SH_CAPSULE, r, g, b);
    sh->cx = 0.5f * (x0 + x1);
    sh->cy = 0.5f * (y0 + y1);
    sh->vx[0] = x0 - sh->cx;
    sh->vy[0] = y0 - sh->cy;
    sh->vx[1] = x1 - sh->cx;
    sh->vy[1] = y1 - sh->cy;
    sh->radius = radius;
    return sh;
}

static void shape_rotate(shape *sh, float dx, float dy)
{
    const float len = sqrtf(dx * dx + dy * dy);
    sh->cs = len > 0.0f ? dx / len : 1.0f;
    sh->sn = len > 0.0f ? dy / len : 0.0f;
}

static void shape_stripes(shape *sh, float amp, float period_px, float dx, float dy)
{
    const float len = sqrtf(dx * dx + dy * dy);
    sh->stripe_amp = amp;
    sh->stripe_dx = dx / (len * period_px);
    sh->stripe_dy = dy / (len * period_px);
}

/* Derives edges, extents and the bounding box once the shape's geometry is set. */
static void shape_finish(shape *sh)
{
    float hx = 0.0f, hy = 0.0f;

    if (sh->soft < 0.75f) sh->soft = 0.75f;
    switch (sh->kind) {
    case SH_ELLIPSE:
        hx = sqrtf(sh->ax * sh->ax * sh->cs * sh->cs + sh->ay * sh->ay * sh->sn * sh->sn);
        hy = sqrtf(sh->ax * sh->ax * sh->sn * sh->sn + sh->ay * sh->ay * sh->cs * sh->cs);
        break;
    case SH_BOX:
        hx = fabsf(sh->ax * sh->cs) + fabsf(sh->ay * sh->sn);
        hy = fabsf(sh->ax * sh->sn) + fabsf(sh->ay * sh->cs);
        break;
    case SH_TRIANGLE:
        for (int i = 0; i < 3; i++) {
            const int j = (i + 1) % 3;
            sh->ex[i] = sh->vx[j] - sh->vx[i];
            sh->ey[i] = sh->vy[j] - sh->vy[i];
            sh->inv_ee[i] = 1.0f / (sh->ex[i] * sh->ex[i] + sh->ey[i] * sh->ey[i]);
            hx = fmaxf(hx, fabsf(sh->vx[i]));
            hy = fmaxf(hy, fabsf(sh->vy[i]));
        }
        sh->orient = sh->ex[0] * sh->ey[2] - sh->ey[0] * sh->ex[2] > 0.0f ? 1.0f : -1.0f;
        break;
    default:
        sh->ex[0] = sh->vx[1] - sh->vx[0];
        sh->ey[0] = sh->vy[1] - sh->vy[0];
        sh->inv_ee[0] = 1.0f / fmaxf(sh->ex[0] * sh->ex[0] + sh->ey[0] * sh->ey[0], 1e-6f);
        hx = fabsf(sh->vx[0]) + sh->radius;
        hy = fabsf(sh->vy[0]) + sh->radius;
        break;
    }
    sh->inv_size = 1.0f / fmaxf(fmaxf(hx, hy), 1.0f);
    const float margin = sh->soft + 2.0f;
    sh->bx0 = (int64_t)floorf(sh->cx - hx - margin);
    sh->bx1 = (int64_t)ceilf(sh->cx + hx + margin);
    sh->by0 = (int64_t)floorf(sh->cy - hy - margin);
    sh->by1 = (int64_t)ceilf(sh->cy + hy + margin);
}

/* Signed distance (pixels, negative inside) from the point (px, py), relative to the shape's
 * centre; *radial gets the normalised radius for ellipses (0 at the centre, 1 on the edge). */
static float shape_distance(const shape *sh, float px, float py, float *radial)
{
    *radial = 0.0f;
    switch (sh->kind) {
    case SH_ELLIPSE: {
        const float qx = sh->cs * px + sh->sn * py, qy = -sh->sn * px + sh->cs * py;
        const float ux = qx / sh->ax, uy = qy / sh->ay;
        const float k0 = sqrtf(ux * ux + uy * uy);
        const float gx = ux / sh->ax, gy = uy / sh->ay;
        const float k1 = sqrtf(gx * gx + gy * gy);
        *radial = fminf(k0, 1.0f);
        if (k1 < 1e-12f) return -fminf(sh->ax, sh->ay);
        return k0 * (k0 - 1.0f) / k1;
    }
    case SH_BOX: {
        const float qx = fabsf(sh->cs * px + sh->sn * py) - (sh->ax - sh->radius);
        const float qy = fabsf(-sh->sn * px + sh->cs * py) - (sh->ay - sh->radius);
        const float ox = fmaxf(qx, 0.0f), oy = fmaxf(qy, 0.0f);
        return sqrtf(ox * ox + oy * oy) + fminf(fmaxf(qx, qy), 0.0f) - sh->radius;
    }
    case SH_TRIANGLE: {
        float dmin = 1e30f, side = 1e30f;
        for (int i = 0; i < 3; i++) {
            const float wx = px - sh->vx[i], wy = py - sh->vy[i];
            const float t = clampf((wx * sh->ex[i] + wy * sh->ey[i]) * sh->inv_ee[i], 0.0f, 1.0f);
            const float dx = wx - sh->ex[i] * t, dy = wy - sh->ey[i] * t;
            dmin = fminf(dmin, dx * dx + dy * dy);
            side = fminf(side, sh->orient * (wx * sh->ey[i] - wy * sh->ex[i]));
        }
        return side > 0.0f ? -sqrtf(dmin) : sqrtf(dmin);
    }
    default: {
        const float wx = px - sh->vx[0], wy = py - sh->vy[0];
        const float t = clampf((wx * sh->ex[0] + wy * sh->ey[0]) * sh->inv_ee[0], 0.0f, 1.0f);
        const float dx = wx - sh->ex[0] * t, dy = wy - sh->ey[0] * t;
        return sqrtf(dx * dx + dy * dy) - sh->radius;
    }
    }
}

/* Paints the shape over the colour rows r, g, b holding pixels x0 .. x0 + n - 1 of row y. */
static void shape_paint_row(const shape *sh, int64_t y, int64_t x0, int n, float *r, float *g,
                            float *b)
{
    if (y < sh->by0 || y > sh->by1) return;
    const int64_t xa = sh->bx0 > x0 ? sh->bx0 : x0;
    const int64_t xb = sh->bx1 < x0 + n - 1 ? sh->bx1 : x0 + n - 1;
    const float py = (float)((double)y + 0.5 - sh->cy);
    const float inv_soft = 1.0f / sh->soft;
    const double stripe_row = ((double)y + 0.5) * sh->stripe_dy; /* stripes in image coordinates */

    for (int64_t x = xa; x <= xb; x++) {
        const float px = (float)((double)x + 0.5 - sh->cx);
        float radial;
        const float d = shape_distance(sh, px, py, &radial);
        float cover = 0.5f - d * inv_soft;
        if (cover <= 0.0f) continue;
        cover = fminf(cover, 1.0f) * sh->opacity;
        float shade = 1.0f - sh->light * (0.6f * px + 0.8f * py) * sh->inv_size;
        shade -= sh->rim * radial * radial * radial;
        if (sh->stripe_amp > 0.0f) {
            const float t = (float)(((double)x + 0.5) * sh->stripe_dx + stripe_row);
            const float w = fabsf(2.0f * (t - floor_fast(t)) - 1.0f);
            shade *= 1.0f + sh->stripe_amp * (2.0f * smooth(w) - 1.0f);
        }
        const size_t i = (size_t)(x - x0);
        r[i] += cover * (sh->rgb[0] * shade - r[i]);
        g[i] += cover * (sh->rgb[1] * shade - g[i]);
        b[i] += cover * (sh->rgb[2] * shade - b[i]);
    }
}

static void hsv_to_rgb(float h, float s, float v, float rgb[3])
{
    const float h6 = (h - floorf(h)) * 6.0f;
    const int sector = (int)h6 % 6;
    const float f = h6 - floorf(h6);
    const float p = v * (1.0f - s), q = v * (1.0f - s * f), t = v * (1.0f - s * (1.0f - f));
    const float table[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
    for (int c = 0; c < 3; c++) rgb[c] = 255.0f * table[sector][c];
}

static void set3(float dst[3], float r, float g, float b)
{
    dst[0] = r;
    dst[1] = g;
    dst[2] = b;
}

/* A landscape-like photo: sky, wavy horizon, ground, and a dozen soft shapes of random kinds,
 * sizes and colours, all placed relative to the image size. */
static void scene_photo(scene *sc)
{
    const float w = (float)sc->width, h = (float)sc->height, s = fminf(w, h);
    uint64_t st = sc->seed ^ UINT64_C(0x70686f746f);
    float rgb[3];

    hsv_to_rgb(rng_range(&st, 0.54f, 0.64f), rng_range(&st, 0.35f, 0.65f),
               rng_range(&st, 0.55f, 0.8f), sc->top);
    hsv_to_rgb(rng_range(&st, 0.5f, 0.6f), rng_range(&st, 0.1f, 0.3f), rng_range(&st, 0.85f, 0.97f),
               sc->low_sky);
    hsv_to_rgb(rng_range(&st, 0.12f, 0.3f), rng_range(&st, 0.35f, 0.7f),
               rng_range(&st, 0.45f, 0.7f), sc->ground_near);
    hsv_to_rgb(rng_range(&st, 0.06f, 0.16f), rng_range(&st, 0.4f, 0.7f),
               rng_range(&st, 0.25f, 0.45f), sc->ground_far);
    sc->horizon = rng_range(&st, 0.38f, 0.55f);
    sc->horizon_amp = 0.06f;
    sc->horizon_cell = 0.35f * s;
    sc->horizon_soft = fmaxf(1.0f, 0.004f * s);
    const float cells[4] = {0.6f, 0.22f, 0.07f, 0.018f};
    const float amps[4] = {0.22f, 0.12f, 0.06f, 0.03f};
    for (int i = 0; i < 4; i++) {
        sc->lum_cell[i] = fmaxf(2.0f, cells[i] * s);
        sc->lum_amp[i] = amps[i];
    }
    sc->hue_cell[0] = 0.45f * s;
    sc->hue_cell[1] = 0.12f * s;
    sc->hue_amp = 22.0f;
    sc->grain_cx = fmaxf(2.0f, 0.08f * s);
    sc->grain_cy = fmaxf(1.0f, 0.004f * s);
    sc->grain_amp = 0.06f;
    sc->vignette = 0.16f;
    sc->noise_luma = 3.0f;
    sc->noise_chroma = 1.5f;

    /* The sun, then shapes from the largest to the smallest so that small ones stay visible. */
    shape *sun = ellipse_new(sc, rng_range(&st, 0.15f, 0.85f) * w, rng_range(&st, 0.08f, 0.25f) * h,
                             0.05f * s, 0.05f * s, 255, 246, 220);
    sun->soft = 0.03f * s;
    sun->opacity = 0.9f;
    const int n = 10 + (int)(rng_next(&st) % 7);
    for (int i = 0; i < n; i++) {
        const float frac = 1.0f - (float)i / (float)n;
        const float size = s * (0.025f + 0.22f * frac * frac * rng_range(&st, 0.6f, 1.0f));
        const float cx = rng_range(&st, 0.05f, 0.95f) * w;
        const float cy = (sc->horizon + rng_range(&st, -0.2f, 0.5f)) * h;
        const int kind = (int)(rng_next(&st) % 4);
        hsv_to_rgb(rng_unit(&st), rng_range(&st, 0.25f, 0.85f), rng_range(&st, 0.3f, 0.95f), rgb);
        shape *sh;
        if (kind == SH_ELLIPSE) {
            sh = ellipse_new(sc, cx, cy, size, size * rng_range(&st, 0.35f, 1.0f), rgb[0], rgb[1],
                             rgb[2]);
        } else if (kind == SH_BOX) {
            sh = box_new(sc, cx, cy, size, size * rng_range(&st, 0.3f, 1.0f),
                         size * rng_range(&st, 0.0f, 0.4f), rgb[0], rgb[1], rgb[2]);
        } else if (kind == SH_TRIANGLE) {
            float px[3], py[3];
            for (int k = 0; k < 3; k++) {
                /* Vertices spread around the centre, roughly 120 degrees apart. */
                const float a = (float)k / 3.0f + rng_range(&st, -0.08f, 0.08f);
                const float t = a - floorf(a);
                const float qx = t < 0.5f ? 1.0f - 4.0f * t : -3.0f + 4.0f * t;
                const float qy = t < 0.25f   ? 4.0f * t
                                 : t < 0.75f ? 2.0f - 4.0f * t
                                             : -4.0f + 4.0f * t;
                const float len = sqrtf(qx * qx + qy * qy);
                px[k] = cx + size * qx / len;
                py[k] = cy + size * qy / len;
            }
            sh = triangle_new(sc, px, py, rgb[0], rgb[1], rgb[2]);
        } else {
            const float dx = rng_range(&st, -1.0f, 1.0f), dy = rng_range(&st, -1.0f, 1.0f);
            const float len = fmaxf(sqrtf(dx * dx + dy * dy), 0.1f);
            sh = capsule_new(sc, cx - size * dx / len, cy - size * dy / len, cx + size * dx / len,
                             cy + size * dy / len, size * rng_range(&st, 0.08f, 0.3f), rgb[0],
                             rgb[1], rgb[2]);
        }
        if (kind == SH_ELLIPSE || kind == SH_BOX)
            shape_rotate(sh, rng_range(&st, -1.0f, 1.0f), rng_range(&st, -1.0f, 1.0f));
        sh->soft = size * rng_range(&st, 0.01f, 0.12f);
        sh->opacity = rng_range(&st, 0.75f, 1.0f);
        sh->light = rng_range(&st, 0.1f, 0.35f);
        sh->rim = kind == SH_ELLIPSE ? rng_range(&st, 0.0f, 0.4f) : 0.0f;
        if (rng_unit(&st) < 0.25f)
            shape_stripes(sh, rng_range(&st, 0.05f, 0.15f), size * rng_range(&st, 0.1f, 0.3f),
                          rng_range(&st, -1.0f, 1.0f), 1.0f);
    }
}

/* The README demo: a ginger tabby sitting on a wooden floor in front of a wall, with a window, a
 * potted plant and a ball of yarn. Coordinates are fractions of the shorter side around the
 * image centre, so the cat keeps its proportions at any size and aspect. */
static void scene_cat(scene *sc)
{
    const float w = (float)sc->width, h = (float)sc->height, s = fminf(w, h);
    const float ox = 0.5f * w, oy = 0.5f * h;
#define CX(v) (ox + (v)*s)
#define CY(v) (oy + (v)*s)
#define CS(v) ((v)*s)
    const float fur[3] = {222, 134, 58}, fur_dark[3] = {168, 86, 34}, cream[3] = {246, 232, 212};
    const float pink[3] = {236, 150, 160};
    shape *sh;

    set3(sc->top, 78, 112, 128);
    set3(sc->low_sky, 132, 160, 164);
    set3(sc->ground_near, 176, 124, 80);
    set3(sc->ground_far, 120, 76, 46);
    sc->horizon = (oy + 0.13f * s) / h;
    sc->horizon_amp = 0.0f;
    sc->horizon_cell = s;
    sc->horizon_soft = fmaxf(1.0f, 0.003f * s);
    const float cells[4] = {0.7f, 0.25f, 0.08f, 0.02f};
    const float amps[4] = {0.12f, 0.07f, 0.04f, 0.025f};
    for (int i = 0; i < 4; i++) {
        sc->lum_cell[i] = fmaxf(2.0f, cells[i] * s);
        sc->lum_amp[i] = amps[i];
    }
    sc->hue_cell[0] = 0.5f * s;
    sc->hue_cell[1] = 0.15f * s;
    sc->hue_amp = 10.0f;
    sc->grain_cx = fmaxf(2.0f, 0.12f * s);
    sc->grain_cy = fmaxf(1.0f, 0.004f * s);
    sc->grain_amp = 0.12f;
    sc->vignette = 0.22f;
    sc->noise_luma = 3.0f;
    sc->noise_chroma = 1.5f;

    /* Window on the left: frame, glass, bars. */
    sh = box_new(sc, CX(-0.5f), CY(-0.2f), CS(0.19f), CS(0.22f), CS(0.01f), 238, 232, 220);
    sh->soft = CS(0.004f);
    sh->light = 0.1f;
    sh = box_new(sc, CX(-0.5f), CY(-0.2f), CS(0.165f), CS(0.195f), 0, 178, 214, 240);
    sh->soft = CS(0.003f);
    sh->light = 0.35f;
    sh = box_new(sc, CX(-0.5f), CY(-0.2f), CS(0.008f), CS(0.2f), 0, 238, 232, 220);
    sh = box_new(sc, CX(-0.5f), CY(-0.2f), CS(0.17f), CS(0.008f), 0, 238, 232, 220);
    /* Potted plant on the right. */
    for (int i = 0; i < 6; i++) {
        const float dx[6] = {-0.7f, -0.35f, 0.0f, 0.3f, 0.65f, 0.1f};
        const float dy[6] = {-0.7f, -1.0f, -1.0f, -1.0f, -0.7f, -1.0f};
        const float len = sqrtf(dx[i] * dx[i] + dy[i] * dy[i]);
        sh = ellipse_new(sc, CX(0.5f + 0.13f * dx[i] / len), CY(0.12f + 0.13f * dy[i] / len),
                         CS(0.13f), CS(0.035f), 50 + 12 * (float)i, 120 + 8 * (float)(i % 3), 55);
        shape_rotate(sh, dx[i], dy[i]);
        sh->soft = CS(0.004f);
        sh->rim = 0.35f;
        sh->light = 0.2f;
    }
    sh = box_new(sc, CX(0.5f), CY(0.27f), CS(0.085f), CS(0.11f), CS(0.012f), 184, 94, 60);
    sh->soft = CS(0.004f);
    sh->light = 0.3f;
    sh = box_new(sc, CX(0.5f), CY(0.16f), CS(0.1f), CS(0.02f), CS(0.006f), 196, 104, 68);
    sh->soft = CS(0.004f);
    sh->light = 0.3f;
    /* Ball of yarn on the floor, left. */
    sh = ellipse_new(sc, CX(-0.4f), CY(0.47f), CS(0.11f), CS(0.022f), 0, 0, 0);
    sh->soft = CS(0.03f);
    sh->opacity = 0.35f;
    sh = ellipse_new(sc, CX(-0.4f), CY(0.39f), CS(0.075f), CS(0.075f), 196, 52, 96);
    sh->soft = CS(0.004f);
    sh->rim = 0.45f;
    sh->light = 0.25f;
    shape_stripes(sh, 0.16f, CS(0.02f), 1.0f, -0.6f);
    sh = capsule_new(sc, CX(-0.34f), CY(0.45f), CX(-0.18f), CY(0.47f), CS(0.004f), 196, 52, 96);
    sh->soft = CS(0.003f);

    /* The cat: shadow, tail, body, chest, paws, ears, head, face. */
    sh = ellipse_new(sc, CX(0.03f), CY(0.43f), CS(0.3f), CS(0.045f), 0, 0, 0);
    sh->soft = CS(0.04f);
    sh->opacity = 0.4f;
    const float tail[6][2] = {{0.18f, 0.38f}, {0.3f, 0.37f}, {0.37f, 0.3f},
                              {0.38f, 0.2f},  {0.34f, 0.1f}, {0.3f, 0.05f}};
    for (int i = 0; i < 5; i++) {
        sh = capsule_new(sc, CX(tail[i][0]), CY(tail[i][1]), CX(tail[i + 1][0]), CY(tail[i + 1][1]),
                         CS(0.034f - 0.002f * (float)i), i == 4 ? fur_dark[0] : fur[0],
                         i == 4 ? fur_dark[1] : fur[1], i == 4 ? fur_dark[2] : fur[2]);
        sh->soft = CS(0.005f);
        shape_stripes(sh, 0.14f, CS(0.05f), 1.0f, 0.2f);
    }
    sh = ellipse_new(sc, CX(0.02f), CY(0.22f), CS(0.24f), CS(0.2f), fur[0], fur[1], fur[2]);
    sh->soft = CS(0.006f);
    sh->rim = 0.4f;
    sh->light = 0.25f;
    shape_stripes(sh, 0.16f, CS(0.055f), 1.0f, 0.25f);
    sh = ellipse_new(sc, CX(0.0f), CY(0.17f), CS(0.095f), CS(0.15f), cream[0], cream[1], cream[2]);
    sh->soft = CS(0.02f);
    sh->rim = 0.2f;
    sh->light = 0.1f;
    for (int side = -1; side <= 1; side += 2) {
        const float f = (float)side;
        sh = ellipse_new(sc, CX(0.075f * f), CY(0.395f), CS(0.055f), CS(0.03f), cream[0], cream[1],
                         cream[2]);
        sh->soft = CS(0.005f);
        sh->rim = 0.3f;
        sh->light = 0.1f;
        const float ear_x[3] = {CX(0.165f * f), CX(0.13f * f), CX(0.035f * f)};
        const float ear_y[3] = {CY(-0.15f), CY(-0.37f), CY(-0.245f)};
        sh = triangle_new(sc, ear_x, ear_y, fur[0], fur[1], fur[2]);
        sh->soft = CS(0.006f);
        sh->light = 0.2f;
        const float in_x[3] = {CX(0.14f * f), CX(0.125f * f), CX(0.07f * f)};
        const float in_y[3] = {CY(-0.2f), CY(-0.32f), CY(-0.25f)};
        sh = triangle_new(sc, in_x, in_y, pink[0], pink[1], pink[2]);
        sh->soft = CS(0.01f);
        sh->opacity = 0.9f;
    }
    sh = ellipse_new(sc, CX(0.0f), CY(-0.12f), CS(0.19f), CS(0.155f), fur[0], fur[1], fur[2]);
    sh->soft = CS(0.006f);
    sh->rim = 0.35f;
    sh->light = 0.25f;
    for (int i = -1; i <= 1; i++) { /* the tabby "M" on the forehead */
        const float f = (float)i;
        sh = capsule_new(sc, CX(0.045f * f), CY(-0.245f + 0.01f * f * f), CX(0.035f * f),
                         CY(-0.19f), CS(0.009f), fur_dark[0], fur_dark[1], fur_dark[2]);
        sh->soft = CS(0.008f);
        sh->opacity = 0.8f;
    }
    for (int side = -1; side <= 1; side += 2) {
        const float f = (float)side;
        sh = capsule_new(sc, CX(0.13f * f), CY(-0.14f), CX(0.175f * f), CY(-0.125f), CS(0.008f),
                         fur_dark[0], fur_dark[1], fur_dark[2]);
        sh->soft = CS(0.008f);
        sh->opacity = 0.7f;
        sh = ellipse_new(sc, CX(0.04f * f), CY(-0.055f), CS(0.05f), CS(0.038f), cream[0], cream[1],
                         cream[2]);
        sh->soft = CS(0.012f);
        sh = ellipse_new(sc, CX(0.072f * f), CY(-0.135f), CS(0.044f), CS(0.036f), 52, 38, 22);
        sh->soft = CS(0.004f);
        sh = ellipse_new(sc, CX(0.072f * f), CY(-0.135f), CS(0.037f), CS(0.029f), 150, 196, 60);
        sh->soft = CS(0.003f);
        sh->rim = 0.45f;
        sh->light = 0.2f;
        sh = ellipse_new(sc, CX(0.072f * f), CY(-0.135f), CS(0.011f), CS(0.026f), 16, 14, 10);
        sh->soft = CS(0.003f);
        sh = ellipse_new(sc, CX(0.072f * f - 0.012f), CY(-0.147f), CS(0.007f), CS(0.007f), 255, 255,
                         250);
        sh->soft = CS(0.003f);
    }
    sh =
        ellipse_new(sc, CX(0.0f), CY(-0.03f), CS(0.038f), CS(0.022f), cream[0], cream[1], cream[2]);
    sh->soft = CS(0.01f);
    const float nose_x[3] = {CX(-0.022f), CX(0.022f), CX(0.0f)};
    const float nose_y[3] = {CY(-0.092f), CY(-0.092f), CY(-0.068f)};
    sh = triangle_new(sc, nose_x, nose_y, 222, 118, 128);
    sh->soft = CS(0.004f);
    sh->light = 0.2f;
    const float mouth[3][4] = {{0.0f, -0.07f, 0.0f, -0.052f},
                               {0.0f, -0.052f, -0.024f, -0.042f},
                               {0.0f, -0.052f, 0.024f, -0.042f}};
    for (int i = 0; i < 3; i++) {
        sh = capsule_new(sc, CX(mouth[i][0]), CY(mouth[i][1]), CX(mouth[i][2]), CY(mouth[i][3]),
                         CS(0.0025f), 90, 50, 40);
        sh->soft = CS(0.002f);
    }
    for (int side = -1; side <= 1; side += 2) {
        const float f = (float)side;
        const float tips[3][2] = {{0.29f, -0.1f}, {0.3f, -0.055f}, {0.28f, -0.01f}};
        for (int i = 0; i < 3; i++) {
            sh = capsule_new(sc, CX(0.06f * f), CY(-0.06f + 0.008f * (float)i), CX(tips[i][0] * f),
                             CY(tips[i][1]), CS(0.0022f), 250, 246, 236);
            sh->soft = CS(0.002f);
            sh->opacity = 0.9f;
        }
    }
#undef CX
#undef CY
#undef CS
}

/* Multispectral colour band b of n: a tent along s = 2b / (n - 1) over blue (s = 0), green (1)
 * and red (2), times a band gain in [0.75, 1], plus a band offset that keeps values in 0..255. */
static void mix_init(scene *sc, int n)
{
    for (int b = 0; b < n; b++) {
        const double s = 2.0 * b / (n - 1);
        const double wb = s <= 1.0 ? 1.0 - s : 0.0, wg = s <= 1.0 ? s : 2.0 - s;
        const double wr = s > 1.0 ? s - 1.0 : 0.0;
        const double gain = 0.75 + 0.025 * ((7 * b) % 11);
        const double off = (1.0 - gain) * 255.0 * ((3 * b) % 5) / 4.0;
        sc->mix_w[b][0] = (int32_t)(256.0 * gain * wr + 0.5);
        sc->mix_w[b][1] = (int32_t)(256.0 * gain * wg + 0.5);
        sc->mix_w[b][2] = (int32_t)(256.0 * gain * wb + 0.5);
        sc->mix_off[b] = (int32_t)(256.0 * off + 0.5);
        /* blocks: the three grey levels in permutation b mod 6, shifted by one of 11 offsets in
         * -10..10 chosen by b / 6: three distinct values per band, no two bands alike */
        static const uint8_t levels[3] = {20, 128, 235};
        static const uint8_t perms[6][3] = {{0, 1, 2}, {1, 2, 0}, {2, 0, 1},
                                            {0, 2, 1}, {2, 1, 0}, {1, 0, 2}};
        assert(n <= 66);
        for (int k = 0; k < 3; k++)
            sc->block_v[b][k] = (uint8_t)(levels[perms[b % 6][k]] + 2 * ((5 * (b / 6)) % 11) - 10);
    }
}

/* The palette: entries 0..251 a 6x7x6 cube (index 42r + 6g + b; red and blue levels 51i, green
 * levels round(255i / 6)), entries 252..255 the greys 51, 102, 153, 204. */
static void cube_init(scene *sc)
{
    for (int i = 0; i < 7; i++) sc->level7[i] = (uint8_t)((255 * i + 3) / 6);
    for (int v = 0; v < 256; v++) {
        int best = 0;
        for (int i = 1; i < 7; i++)
            if (abs(v - sc->level7[i]) < abs(v - sc->level7[best])) best = i;
        sc->near7[v] = (uint8_t)best;
        sc->near6[v] = (uint8_t)((v + 25) / 51);
    }
}

static void colormap_fill(const options *o, uint16_t map[3][256])
{
    for (int i = 0; i < 256; i++) {
        int rgb[3] = {i, i, i}; /* one band: a grey ramp, index = grey value */
        if (o->bands == 3 && i < 252) {
            rgb[0] = 51 * (i / 42);
            rgb[1] = (255 * (i / 6 % 7) + 3) / 6;
            rgb[2] = 51 * (i % 6);
        } else if (o->bands == 3) {
            rgb[0] = rgb[1] = rgb[2] = 51 * (i - 251);
        }
        for (int c = 0; c < 3; c++) map[c][i] = (uint16_t)(rgb[c] * 257);
    }
}

/* A sample value in the file's type and host byte order; v is exact in that type. */
static void sample_bytes(int type, double v, uint8_t out[4])
{
    memset(out, 0, 4);
    if (type == T_U8) {
        out[0] = (uint8_t)v;
    } else if (type == T_U16) {
        const uint16_t u = (uint16_t)v;
        memcpy(out, &u, sizeof(u));
    } else if (type == T_I16) {
        const int16_t i = (int16_t)v;
        memcpy(out, &i, sizeof(i));
    } else {
        const float f = (float)v;
        memcpy(out, &f, sizeof(f));
    }
}

static void scene_init(scene *sc, const options *o)
{
    memset(sc, 0, sizeof(*sc));
    sc->pattern = o->pattern;
    sc->width = o->width;
    sc->height = o->height;
    sc->bands = o->bands;
    sc->seed = o->seed;
    sc->inv_w = 1.0f / (float)o->width;
    sc->inv_h = 1.0f / (float)o->height;
    if (o->pattern == PAT_PHOTO)
        scene_photo(sc);
    else if (o->pattern == PAT_CAT)
        scene_cat(sc);
    for (int i = 0; i < sc->n_shapes; i++) shape_finish(&sc->shapes[i]);

    sc->type = o->type;
    sc->bps = type_bytes[o->type];
    sc->spp = o->spp;
    sc->palette = o->palette;
    sc->multi = o->bands >= 5;
    const int has_alpha = o->bands == 2 || o->bands == 4 || (sc->multi && o->alpha);
    sc->color = sc->spp - has_alpha;
    if (sc->multi) {
        sc->bands = 3; /* the RGB pattern, mixed into the colour bands; row_multi adds alpha */
        mix_init(sc, sc->color);
    }
    if (sc->palette) cube_init(sc);
    if (o->has_nodata) {
        sc->has_nodata = 1;
        sample_bytes(o->type, o->nodata, sc->nodata_bytes);
        const int64_t r = (o->width < o->height ? o->width : o->height) / 6;
        sc->nd_cx = o->width / 3;
        sc->nd_cy = o->height / 3;
        sc->nd_r2 = r * r;
    }
    if (o->nan_fraction >= 0.0) {
        sc->has_nan = 1;
        sc->nan_below = o->nan_fraction;
        sc->inf_from = o->nan_fraction > 0.0 ? 1.0 - o->nan_fraction / 64.0 : 2.0;
        sample_bytes(T_F32, NAN, sc->nan_bytes);
        sample_bytes(T_F32, INFINITY, sc->inf_bytes);
    }
    sc->plain = o->type == T_U8 && o->bands <= 4 && !o->palette && !sc->has_nodata && !sc->has_nan;
}

/* ---------------------------------------------------------------------------------------------
 * Rows of pixels: every generator writes pixels x0 .. x0 + n - 1 of row y, interleaved.
 */

typedef struct {
    float *r, *g, *b, *lum, *hue, *horizon, *grain; /* one row each, max_width floats */
    uint8_t *raw;                                   /* a unit of all bands before compression */
    uint8_t *plane;                                 /* one band of it, separate planes */
    uint8_t *pat;  /* a row of the 8-bit RGB(A) pattern, multispectral and palette */
    uint8_t *row8; /* a row of 8-bit values of every sample, before the type mapping */
    uint8_t *full; /* a row of all samples, big strips in separate planes */
    z_stream zs;
    int zs_ready;
    ZSTD_CCtx *zc;
} worker;

/* Alpha: a diagonal ramp, 0 in the top-left corner and 255 in the bottom-right one. */
static uint8_t alpha_at(const scene *sc, int64_t x, int64_t y)
{
    const float t = 0.5f * ((float)x * sc->inv_w + (float)y * sc->inv_h);
    return (uint8_t)(clampf((t - 0.2f) * (1.0f / 0.6f), 0.0f, 1.0f) * 255.0f + 0.5f);
}

static uint8_t to_u8(float v)
{
    return (uint8_t)(clampf(v, 0.0f, 255.0f) + 0.5f);
}

static void row_scene(const scene *sc, worker *wk, int64_t y, int64_t x0, int n, uint8_t *out)
{
    float *r = wk->r, *g = wk->g, *b = wk->b, *lum = wk->lum, *hue = wk->hue;
    float *hz = wk->horizon, *grain = wk->grain;
    const uint64_t key = mix64(sc->seed ^ UINT64_C(0x5eed));
    const float v = ((float)y + 0.5f) * sc->inv_h;
    const float fh = (float)sc->height;

    memset(lum, 0, (size_t)n * sizeof(*lum));
    memset(hue, 0, (size_t)n * sizeof(*hue));
    memset(hz, 0, (size_t)n * sizeof(*hz));
    memset(grain, 0, (size_t)n * sizeof(*grain));
    for (int i = 0; i < 4; i++)
        noise_add(key + 1 + (uint64_t)i, sc->lum_cell[i], sc->lum_cell[i], y, x0, n, sc->lum_amp[i],
                  lum);
    noise_add(key + 11, sc->hue_cell[0], sc->hue_cell[0], y, x0, n, 1.0f, hue);
    noise_add(key + 12, sc->hue_cell[1], sc->hue_cell[1], y, x0, n, 0.5f, hue);
    if (sc->horizon_amp > 0.0f)
        noise_add(key + 13, sc->horizon_cell, 1e30, 0, x0, n, sc->horizon_amp, hz);
    noise_add(key + 14, sc->grain_cx, sc->grain_cy, y, x0, n, sc->grain_amp, grain);

    for (int i = 0; i < n; i++) {
        const float hy = sc->horizon + hz[i];
        const float sky_t = clampf(v / hy, 0.0f, 1.0f);
        const float ground_t = clampf((v - hy) / (1.0f - hy), 0.0f, 1.0f);
        const float mix =
            smooth(clampf(0.5f + (v - hy) * fh / (2.0f * sc->horizon_soft), 0.0f, 1.0f));
        const float gain = 1.0f + lum[i] + mix * grain[i];
        float c[3];
        for (int k = 0; k < 3; k++) {
            const float sky = lerpf(sc->top[k], sc->low_sky[k], sky_t);
            const float ground = lerpf(sc->ground_near[k], sc->ground_far[k], ground_t);
            c[k] = lerpf(sky, ground, mix) * gain;
        }
        r[i] = c[0] + sc->hue_amp * hue[i];
        g[i] = c[1];
        b[i] = c[2] - sc->hue_amp * hue[i];
    }
    for (int k = 0; k < sc->n_shapes; k++) shape_paint_row(&sc->shapes[k], y, x0, n, r, g, b);

    const float dv = 2.0f * v - 1.0f;
    const uint64_t noise_key = mix64(sc->seed ^ UINT64_C(0x6e6f697365));
    for (int i = 0; i < n; i++) {
        const int64_t x = x0 + i;
        const float du = 2.0f * ((float)x + 0.5f) * sc->inv_w - 1.0f;
        const float vig = 1.0f - sc->vignette * 0.5f * (du * du + dv * dv);
        const uint64_t hsh = hash2(noise_key, x, y);
        const float nl =
            (float)((int)(hsh & 255) + (int)((hsh >> 8) & 255) - 255) * (sc->noise_luma / 255.0f);
        const float nr = (float)((int)((hsh >> 16) & 255) - 128) * (sc->noise_chroma / 128.0f);
        const float nb = (float)((int)((hsh >> 24) & 255) - 128) * (sc->noise_chroma / 128.0f);
        const float cr = r[i] * vig + nl + nr, cg = g[i] * vig + nl, cb = b[i] * vig + nl + nb;
        uint8_t *px = out + (size_t)i * (size_t)sc->bands;
        switch (sc->bands) {
        case 1:
        case 2:
            px[0] = to_u8(0.299f * cr + 0.587f * cg + 0.114f * cb);
            if (sc->bands == 2) px[1] = alpha_at(sc, x, y);
            break;
        default:
            px[0] = to_u8(cr);
            px[1] = to_u8(cg);
            px[2] = to_u8(cb);
            if (sc->bands == 4) px[3] = alpha_at(sc, x, y);
            break;
        }
    }
}

static void row_blocks(const scene *sc, int64_t y, int64_t x0, int n, uint8_t *out)
{
    static const uint8_t rgb[3][3] = {{220, 40, 40}, {40, 200, 60}, {30, 60, 220}};
    static const uint8_t grey[3] = {20, 128, 235};

    for (int i = 0; i < n; i++) {
        const int64_t x = x0 + i;
        const int blk = 3 * x < sc->width ? 0 : (3 * x < 2 * sc->width ? 1 : 2);
        uint8_t *px = out + (size_t)i * (size_t)sc->bands;
        if (sc->bands <= 2) {
            px[0] = grey[blk];
        } else {
            memcpy(px, rgb[blk], 3);
        }
        if (sc->bands == 2 || sc->bands == 4) px[sc->bands - 1] = alpha_at(sc, x, y);
    }
}

static void row_noise(const scene *sc, int64_t y, int64_t x0, int n, uint8_t *out)
{
    const uint64_t key = mix64(sc->seed ^ UINT64_C(0x756e69666f726d));
    const int color_bands = sc->bands == 2 || sc->bands == 4 ? sc->bands - 1 : sc->bands;

    for (int i = 0; i < n; i++) {
        const int64_t x = x0 + i;
        uint64_t hsh = hash2(key, x, y);
        uint8_t *px = out + (size_t)i * (size_t)sc->bands;
        for (int k = 0; k < color_bands; k++, hsh >>= 8) px[k] = (uint8_t)(hsh & 255);
        if (color_bands < sc->bands) px[color_bands] = alpha_at(sc, x, y);
    }
}

static void row_generate(const scene *sc, worker *wk, int64_t y, int64_t x0, int n, uint8_t *out)
{
    switch (sc->pattern) {
    case PAT_BLOCKS: row_blocks(sc, y, x0, n, out); break;
    case PAT_NOISE: row_noise(sc, y, x0, n, out); break;
    default: row_scene(sc, wk, y, x0, n, out); break;
    }
}

/* Multispectral 8-bit values, sc->spp per pixel: noise draws every band from the hash, blocks
 * takes its band table, photo and cat mix their RGB. Alpha, if any, is the last sample. */
static void row_multi(const scene *sc, worker *wk, int64_t y, int64_t x0, int n, uint8_t *out)
{
    const size_t spp = (size_t)sc->spp;
    const int nc = sc->color;

    if (sc->pattern == PAT_NOISE) {
        const uint64_t key = mix64(sc->seed ^ UINT64_C(0x756e69666f726d));
        for (int i = 0; i < n; i++) {
            uint8_t *px = out + (size_t)i * spp;
            uint64_t hsh = 0;
            for (int k = 0; k < nc; k++, hsh >>= 8) {
                if (k % 8 == 0) hsh = hash2(key + (uint64_t)(k / 8), x0 + i, y);
                px[k] = (uint8_t)(hsh & 255);
            }
        }
    } else if (sc->pattern == PAT_BLOCKS) {
        for (int i = 0; i < n; i++) {
            const int64_t x = x0 + i;
            const int blk = 3 * x < sc->width ? 0 : (3 * x < 2 * sc->width ? 1 : 2);
            uint8_t *px = out + (size_t)i * spp;
            for (int k = 0; k < nc; k++) px[k] = sc->block_v[k][blk];
        }
    } else {
        const size_t pb = (size_t)sc->bands;
        row_generate(sc, wk, y, x0, n, wk->pat);
        for (int i = 0; i < n; i++) {
            const uint8_t *rgb = wk->pat + (size_t)i * pb;
            uint8_t *px = out + (size_t)i * spp;
            for (int k = 0; k < nc; k++) {
                const int32_t v = (sc->mix_w[k][0] * rgb[0] + sc->mix_w[k][1] * rgb[1] +
                                   sc->mix_w[k][2] * rgb[2] + sc->mix_off[k] + 128) >>
                                  8;
                px[k] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    if (nc < sc->spp)
        for (int i = 0; i < n; i++) out[(size_t)i * spp + spp - 1] = alpha_at(sc, x0 + i, y);
}

/* The palette index nearest (squared RGB distance) to a colour: the cube's nearest entry channel by
 * channel, unless one of the four greys is strictly nearer. */
static uint8_t palette_index(const scene *sc, const uint8_t *rgb)
{
    const int ri = sc->near6[rgb[0]], gi = sc->near7[rgb[1]], bi = sc->near6[rgb[2]];
    const int dr = rgb[0] - 51 * ri, dg = rgb[1] - sc->level7[gi], db = rgb[2] - 51 * bi;
    int best = 42 * ri + 6 * gi + bi, best_d = dr * dr + dg * dg + db * db;
    for (int k = 1; k <= 4; k++) {
        const int er = rgb[0] - 51 * k, eg = rgb[1] - 51 * k, eb = rgb[2] - 51 * k;
        const int d = er * er + eg * eg + eb * eb;
        if (d < best_d) {
            best_d = d;
            best = 251 + k;
        }
    }
    return (uint8_t)best;
}

/* Maps n 8-bit values to the sample type: u16 v * 257, i16 v * 257 - 32768, f32 v / 255. */
static void row_convert(int type, const uint8_t *v8, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        if (type == T_U16) {
            const uint16_t u = (uint16_t)(v8[i] * 257);
            memcpy(out + 2 * i, &u, sizeof(u));
        } else if (type == T_I16) {
            const int16_t s = (int16_t)(v8[i] * 257 - 32768);
            memcpy(out + 2 * i, &s, sizeof(s));
        } else {
            const float f = (float)v8[i] / 255.0f;
            memcpy(out + 4 * i, &f, sizeof(f));
        }
    }
}

/* Sets the non-alpha samples of pixel i to the sample value in bytes. */
static void pixel_set(const scene *sc, uint8_t *out, int64_t i, const uint8_t *bytes)
{
    const size_t bps = (size_t)sc->bps;
    uint8_t *px = out + (size_t)i * (size_t)sc->spp * bps;
    for (int k = 0; k < sc->color; k++) memcpy(px + (size_t)k * bps, bytes, bps);
}

/* NaN and +Inf pixels (f32, --nan-fraction), then the nodata region: the first row, and the disc
 * of squared radius nd_r2 around (nd_cx, nd_cy). */
static void row_specials(const scene *sc, int64_t y, int64_t x0, int n, uint8_t *out)
{
    if (sc->has_nan) {
        const uint64_t key = mix64(sc->seed ^ UINT64_C(0x6e616e));
        for (int i = 0; i < n; i++) {
            const double u = (double)(hash2(key, x0 + i, y) >> 11) * 0x1p-53;
            if (u < sc->nan_below)
                pixel_set(sc, out, i, sc->nan_bytes);
            else if (u >= sc->inf_from)
                pixel_set(sc, out, i, sc->inf_bytes);
        }
    }
    if (!sc->has_nodata) return;
    int64_t xa = x0, xb = x0 + n - 1; /* the row's nodata span, clipped below */
    if (y > 0) {
        const int64_t dy = y - sc->nd_cy, q = sc->nd_r2 - dy * dy;
        if (q < 0) return;
        int64_t hw = (int64_t)sqrt((double)q);
        while (hw * hw > q) hw--;
        while ((hw + 1) * (hw + 1) <= q) hw++;
        xa = sc->nd_cx - hw > x0 ? sc->nd_cx - hw : x0;
        xb = sc->nd_cx + hw < xb ? sc->nd_cx + hw : xb;
    }
    for (int64_t x = xa; x <= xb; x++) pixel_set(sc, out, x - x0, sc->nodata_bytes);
}

/* Writes pixels x0 .. x0 + n - 1 of row y as the file stores them: sc->spp samples of sc->bps
 * bytes each, interleaved, host byte order. */
static void row_pixels(const scene *sc, worker *wk, int64_t y, int64_t x0, int n, uint8_t *out)
{
    if (sc->plain) {
        row_generate(sc, wk, y, x0, n, out);
        return;
    }
    uint8_t *v8 = sc->type == T_U8 ? out : wk->row8;
    if (sc->multi) {
        row_multi(sc, wk, y, x0, n, v8);
    } else if (sc->palette && sc->bands == 3) {
        row_generate(sc, wk, y, x0, n, wk->pat);
        for (int i = 0; i < n; i++) v8[i] = palette_index(sc, wk->pat + 3 * (size_t)i);
    } else {
        row_generate(sc, wk, y, x0, n, v8); /* with one band, the palette index is the grey */
    }
    if (sc->type != T_U8) row_convert(sc->type, v8, (size_t)n * (size_t)sc->spp, out);
    row_specials(sc, y, x0, n, out);
}

/* Copies sample p of n interleaved pixels of spp samples (bps bytes each) to dst. */
static void plane_extract(const uint8_t *src, size_t n, int spp, int bps, int p, uint8_t *dst)
{
    const size_t step = (size_t)spp * (size_t)bps;
    src += (size_t)p * (size_t)bps;
    if (bps == 1) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i * step];
    } else if (bps == 2) {
        for (size_t i = 0; i < n; i++) memcpy(dst + 2 * i, src + i * step, 2);
    } else {
        for (size_t i = 0; i < n; i++) memcpy(dst + 4 * i, src + i * step, 4);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Writing: units (tiles, or strips) are generated and compressed in parallel a batch at a time,
 * then written in order by this thread. Strips too big for that are streamed in bands of rows.
 */

typedef struct {
    uint8_t *data;
    size_t len;
} slot;

typedef struct {
    TIFF *tif;
    const options *o;
    const scene *sc;
    int enc;
    int threads;
    int64_t n_units, units_x; /* tile or strip positions; each has `planes` units */
    int64_t unit_w, unit_h;   /* tile side, or image width by rows per strip */
    int planes;               /* 1, or samples per pixel with separate planes */
    size_t px_bytes;          /* all samples of one pixel */
    size_t unit_raw_bytes;    /* largest position before compression, all samples */
    size_t plane_raw_bytes;   /* largest unit before compression */
    size_t slot_bytes;        /* room for one unit after compression */
    worker *workers;
} writer;

static int thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Fills buf with all samples of position u (tile padding zeroed) and returns its size in bytes. */
static size_t unit_fill(const writer *w, worker *wk, int64_t u, uint8_t *buf)
{
    const options *o = w->o;
    int64_t x0 = 0, y0, valid_w = o->width, valid_h, buf_h;

    if (o->tiled) {
        x0 = (u % w->units_x) * w->unit_w;
        y0 = (u / w->units_x) * w->unit_h;
        valid_w = o->width - x0 < w->unit_w ? o->width - x0 : w->unit_w;
        valid_h = o->height - y0 < w->unit_h ? o->height - y0 : w->unit_h;
        buf_h = w->unit_h;
    } else {
        y0 = u * w->unit_h;
        valid_h = o->height - y0 < w->unit_h ? o->height - y0 : w->unit_h;
        buf_h = valid_h;
    }
    const size_t stride = (size_t)w->unit_w * w->px_bytes;
    const size_t valid_bytes = (size_t)valid_w * w->px_bytes;
    for (int64_t row = 0; row < buf_h; row++) {
        uint8_t *line = buf + (size_t)row * stride;
        if (row < valid_h) {
            row_pixels(w->sc, wk, y0 + row, x0, (int)valid_w, line);
            memset(line + valid_bytes, 0, stride - valid_bytes);
        } else {
            memset(line, 0, stride);
        }
    }
    return stride * (size_t)buf_h;
}

/* Compresses src into dst (capacity w->slot_bytes) as the TIFF codec would; returns the size, or
 * 0 on failure. */
static size_t unit_compress(const writer *w, worker *wk, const uint8_t *src, size_t len,
                            uint8_t *dst)
{
    if (w->enc == ENC_ZLIB) {
        if (deflateReset(&wk->zs) != Z_OK) return 0;
        wk->zs.next_in = (Bytef *)(uintptr_t)src; /* zlib does not write through next_in */
        wk->zs.avail_in = (uInt)len;
        wk->zs.next_out = dst;
        wk->zs.avail_out = (uInt)w->slot_bytes;
        if (deflate(&wk->zs, Z_FINISH) != Z_STREAM_END) return 0;
        return (size_t)wk->zs.total_out;
    }
    const size_t n = ZSTD_compress2(wk->zc, dst, w->slot_bytes, src, len);
    return ZSTD_isError(n) ? 0 : n;
}

/* The tile or strip number of sample plane p at position u. */
static uint32_t unit_index(const writer *w, int64_t u, int p)
{
    if (w->o->tiled)
        return TIFFComputeTile(w->tif, (uint32_t)((u % w->units_x) * w->unit_w),
                               (uint32_t)((u / w->units_x) * w->unit_h), 0, (uint16_t)p);
    return TIFFComputeStrip(w->tif, (uint32_t)(u * w->unit_h), (uint16_t)p);
}

static int unit_write(const writer *w, uint32_t idx, uint8_t *data, size_t len)
{
    tmsize_t done;

    if (w->enc == ENC_LIBTIFF)
        done = w->o->tiled ? TIFFWriteEncodedTile(w->tif, idx, data, (tmsize_t)len)
                           : TIFFWriteEncodedStrip(w->tif, idx, data, (tmsize_t)len);
    else
        done = w->o->tiled ? TIFFWriteRawTile(w->tif, idx, data, (tmsize_t)len)
                           : TIFFWriteRawStrip(w->tif, idx, data, (tmsize_t)len);
    return done < 0 ? -1 : 0;
}

/* Generates position u once and fills its `planes` slots, compressed or not; returns 0, or -1
 * when compression failed. */
static int position_fill(const writer *w, worker *wk, int64_t u, slot *slots, int compress)
{
    if (w->planes == 1) {
        if (!compress) {
            slots[0].len = unit_fill(w, wk, u, slots[0].data);
            return 0;
        }
        const size_t raw = unit_fill(w, wk, u, wk->raw);
        slots[0].len = unit_compress(w, wk, wk->raw, raw, slots[0].data);
        return slots[0].len == 0 ? -1 : 0;
    }
    const size_t n_px = unit_fill(w, wk, u, wk->raw) / w->px_bytes;
    const size_t len = n_px * (size_t)w->sc->bps;
    for (int p = 0; p < w->planes; p++) {
        if (!compress) {
            plane_extract(wk->raw, n_px, w->sc->spp, w->sc->bps, p, slots[p].data);
            slots[p].len = len;
            continue;
        }
        plane_extract(wk->raw, n_px, w->sc->spp, w->sc->bps, p, wk->plane);
        slots[p].len = unit_compress(w, wk, wk->plane, len, slots[p].data);
        if (slots[p].len == 0) return -1;
    }
    return 0;
}

/* With separate planes, each batch writes all planes of a position before the next position. */
static int write_batches(writer *w)
{
    const int compress = w->enc == ENC_ZLIB || w->enc == ENC_ZSTD;
    const int planes = w->planes;
    const size_t per_unit = w->slot_bytes;
    int64_t batch = (int64_t)(BATCH_BYTES / (per_unit * (size_t)planes));
    int rc = -1;

    if (batch > 16 * (int64_t)w->threads) batch = 16 * (int64_t)w->threads;
    if (batch < w->threads) batch = w->threads;
    if (batch > w->n_units) batch = w->n_units;
    const int64_t n_slots = batch * planes;
    slot *slots = calloc((size_t)n_slots, sizeof(*slots));
    for (int64_t i = 0; slots && i < n_slots; i++)
        if (!(slots[i].data = malloc(per_unit))) break;
    if (!slots || !slots[n_slots - 1].data) {
        fprintf(stderr, PROG ": out of memory for a batch of %" PRId64 " units\n", n_slots);
        goto cleanup;
    }
    for (int64_t first = 0; first < w->n_units; first += batch) {
        const int count = (int)(w->n_units - first < batch ? w->n_units - first : batch);
        int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->threads)
        for (int i = 0; i < count; i++) {
            worker *wk = &w->workers[thread_index()];
            if (position_fill(w, wk, first + i, slots + (size_t)i * (size_t)planes, compress) !=
                0) {
#pragma omp atomic write
                failed = 1;
            }
        }
        if (failed) {
            fprintf(stderr, PROG ": %s: compressing unit %" PRId64 "..%" PRId64 " failed\n",
                    w->o->out_path, first, first + count - 1);
            goto cleanup;
        }
        for (int i = 0; i < count; i++) {
            for (int p = 0; p < planes; p++) {
                const uint32_t idx = unit_index(w, first + i, p);
                const slot *sl = &slots[(size_t)i * (size_t)planes + (size_t)p];
                if (unit_write(w, idx, sl->data, sl->len) != 0) {
                    fprintf(stderr, PROG ": %s: writing %s %" PRIu32 " failed: %s\n",
                            w->o->out_path, w->o->tiled ? "tile" : "strip", idx, strerror(errno));
                    goto cleanup;
                }
            }
        }
    }
    rc = 0;
cleanup:
    for (int64_t i = 0; slots && i < n_slots; i++) free(slots[i].data);
    free(slots);
    return rc;
}

/* Appends len bytes to strip s (libtiff appends consecutive raw writes to the same strip). */
static int strip_append(const writer *w, uint32_t s, uint8_t *data, size_t len)
{
    return len == 0 || TIFFWriteRawStrip(w->tif, s, data, (tmsize_t)len) >= 0 ? 0 : -1;
}

/* Streams strips too large for a batch: rows are generated in parallel a band at a time and fed
 * to one streaming encoder (zstd with its own worker threads). A strip is written in one piece,
 * so separate planes are written one after the other, each generating the rows again. */
static int write_big_strips(writer *w)
{
    const options *o = w->o;
    const size_t row_bytes = (size_t)o->width * (w->planes > 1 ? (size_t)w->sc->bps : w->px_bytes);
    int64_t band_rows = (int64_t)(BIG_STRIP_BYTES / row_bytes);
    const size_t out_cap = (size_t)4 << 20;
    uint8_t *band = NULL, *out = NULL;
    z_stream zs;
    int zs_ready = 0;
    ZSTD_CCtx *zc = NULL;
    uint32_t strip_now = 0;
    int rc = -1;

    if (band_rows < 1) band_rows = 1;
    band = malloc((size_t)band_rows * row_bytes);
    out = malloc(out_cap);
    if (!band || !out) goto nomem;
    memset(&zs, 0, sizeof(zs));
    /* libtiff's encoders flush their output buffer into the strip whenever it fills; by default
     * it holds the whole strip, so make it small */
    if (w->enc == ENC_LIBTIFF && !TIFFWriteBufferSetup(w->tif, NULL, (tmsize_t)out_cap)) goto nomem;
    if (w->enc == ENC_ZLIB) {
        if (deflateInit(&zs, ZIP_LEVEL) != Z_OK) goto nomem;
        zs_ready = 1;
    } else if (w->enc == ENC_ZSTD) {
        zc = ZSTD_createCCtx();
        if (!zc) goto nomem;
        ZSTD_CCtx_setParameter(zc, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        /* Multithreaded zstd output does not depend on the number of workers (>= 1). */
        ZSTD_CCtx_setParameter(zc, ZSTD_c_nbWorkers, w->threads);
    }
    for (int64_t k = 0; k < w->n_units * w->planes; k++) {
        const int64_t s = k % w->n_units;
        const int p = (int)(k / w->n_units);
        strip_now = unit_index(w, s, p);
        const int64_t y_first = s * w->unit_h;
        const int64_t y_end = y_first + w->unit_h < o->height ? y_first + w->unit_h : o->height;
        if (zs_ready && deflateReset(&zs) != Z_OK) goto codec;
        if (zc && ZSTD_isError(ZSTD_CCtx_reset(zc, ZSTD_reset_session_only))) goto codec;
        for (int64_t y0 = y_first; y0 < y_end; y0 += band_rows) {
            const int rows = (int)(y_end - y0 < band_rows ? y_end - y0 : band_rows);
            const int last = y0 + rows == y_end;
            const size_t len = (size_t)rows * row_bytes;
#pragma omp parallel for schedule(dynamic, 1) num_threads(w->threads)
            for (int i = 0; i < rows; i++) {
                worker *wk = &w->workers[thread_index()];
                uint8_t *line = band + (size_t)i * row_bytes;
                if (w->planes == 1) {
                    row_pixels(w->sc, wk, y0 + i, 0, (int)o->width, line);
                } else {
                    row_pixels(w->sc, wk, y0 + i, 0, (int)o->width, wk->full);
                    plane_extract(wk->full, (size_t)o->width, w->sc->spp, w->sc->bps, p, line);
                }
            }
            if (w->enc == ENC_NONE) {
                if (strip_append(w, strip_now, band, len) != 0) goto io;
            } else if (w->enc == ENC_LIBTIFF) {
                for (int i = 0; i < rows; i++)
                    if (TIFFWriteScanline(w->tif, band + (size_t)i * row_bytes, (uint32_t)(y0 + i),
                                          (uint16_t)p) < 0)
                        goto io;
            } else if (w->enc == ENC_ZLIB) {
                zs.next_in = band;
                zs.avail_in = (uInt)len;
                int zrc;
                do {
                    zs.next_out = out;
                    zs.avail_out = (uInt)out_cap;
                    zrc = deflate(&zs, last ? Z_FINISH : Z_NO_FLUSH);
                    if (zrc == Z_STREAM_ERROR) goto codec;
                    if (strip_append(w, strip_now, out, out_cap - zs.avail_out) != 0) goto io;
                } while (zs.avail_out == 0 || (last && zrc != Z_STREAM_END));
            } else {
                ZSTD_inBuffer in = {band, len, 0};
                size_t remaining;
                do {
                    ZSTD_outBuffer ob = {out, out_cap, 0};
                    remaining =
                        ZSTD_compressStream2(zc, &ob, &in, last ? ZSTD_e_end : ZSTD_e_continue);
                    if (ZSTD_isError(remaining)) goto codec;
                    if (strip_append(w, strip_now, out, ob.pos) != 0) goto io;
                } while (last ? remaining != 0 : in.pos < in.size);
            }
        }
    }
    rc = 0;
    goto cleanup;
io:
    fprintf(stderr, PROG ": %s: writing strip %" PRIu32 " failed: %s\n", o->out_path, strip_now,
            strerror(errno));
    goto cleanup;
codec:
    fprintf(stderr, PROG ": %s: the %s encoder failed\n", o->out_path, codecs[o->codec].name);
    goto cleanup;
nomem:
    fprintf(stderr, PROG ": out of memory for a band of %" PRId64 " rows\n", band_rows);
cleanup:
    if (zs_ready) deflateEnd(&zs);
    ZSTD_freeCCtx(zc);
    free(band);
    free(out);
    return rc;
}

static void workers_free(worker *ws, int n)
{
    for (int i = 0; ws && i < n; i++) {
        free(ws[i].r);
        free(ws[i].raw);
        free(ws[i].plane);
        free(ws[i].pat);
        free(ws[i].row8);
        free(ws[i].full);
        if (ws[i].zs_ready) deflateEnd(&ws[i].zs);
        ZSTD_freeCCtx(ws[i].zc);
    }
    free(ws);
}

/* What each worker needs besides its float rows; a zero size is not allocated. */
typedef struct {
    int64_t max_width;  /* widest row generated */
    size_t raw_bytes;   /* a position of all samples: compressing, or splitting planes */
    size_t plane_bytes; /* one plane of it, when compressing separate planes */
    size_t pat_bytes, row8_bytes, full_bytes;
    int codec_state; /* compressing units: a zlib or zstd context each */
} worker_sizes;

static worker *workers_new(int n, const worker_sizes *z, int enc)
{
    worker *ws = calloc((size_t)n, sizeof(*ws));
    if (!ws) return NULL;
    for (int i = 0; i < n; i++) {
        worker *wk = &ws[i];
        const size_t row = (size_t)z->max_width;
        wk->r = malloc(7 * row * sizeof(float));
        if (!wk->r) goto fail;
        wk->g = wk->r + row;
        wk->b = wk->g + row;
        wk->lum = wk->b + row;
        wk->hue = wk->lum + row;
        wk->horizon = wk->hue + row;
        wk->grain = wk->horizon + row;
        if (z->raw_bytes > 0 && !(wk->raw = malloc(z->raw_bytes))) goto fail;
        if (z->plane_bytes > 0 && !(wk->plane = malloc(z->plane_bytes))) goto fail;
        if (z->pat_bytes > 0 && !(wk->pat = malloc(z->pat_bytes))) goto fail;
        if (z->row8_bytes > 0 && !(wk->row8 = malloc(z->row8_bytes))) goto fail;
        if (z->full_bytes > 0 && !(wk->full = malloc(z->full_bytes))) goto fail;
        if (enc == ENC_ZLIB && z->codec_state) {
            if (deflateInit(&wk->zs, ZIP_LEVEL) != Z_OK) goto fail;
            wk->zs_ready = 1;
        }
        if (enc == ENC_ZSTD && z->codec_state) {
            if (!(wk->zc = ZSTD_createCCtx())) goto fail;
            ZSTD_CCtx_setParameter(wk->zc, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        }
    }
    return ws;
fail:
    workers_free(ws, n);
    return NULL;
}

/* The nodata value as GDAL writes its tag: "nan", or %.17g of the value the pixels hold. */
static void nodata_text(double v, char *buf, size_t cap)
{
    if (isnan(v))
        snprintf(buf, cap, "nan");
    else
        snprintf(buf, cap, "%.17g", v);
}

static int set_tags(TIFF *tif, const options *o)
{
    static const uint16_t formats[] = {SAMPLEFORMAT_UINT, SAMPLEFORMAT_UINT, SAMPLEFORMAT_INT,
                                       SAMPLEFORMAT_IEEEFP};
    uint16_t extra[MAX_BANDS];
    int n_extra = 0, photometric;
    char desc[256], text[64];
    int ok = 1;

    if (o->palette) {
        photometric = PHOTOMETRIC_PALETTE;
    } else if (o->bands >= 5) {
        photometric = PHOTOMETRIC_MINISBLACK;
        n_extra = o->bands - 1;
        for (int i = 0; i < n_extra; i++) extra[i] = EXTRASAMPLE_UNSPECIFIED;
        if (o->alpha) extra[n_extra - 1] = EXTRASAMPLE_UNASSALPHA;
    } else {
        photometric = o->bands >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
        if (o->bands == 2 || o->bands == 4) extra[n_extra++] = EXTRASAMPLE_UNASSALPHA;
    }
    int len = snprintf(desc, sizeof(desc), PROG " --pattern %s --seed %" PRIu64,
                       pattern_names[o->pattern], o->seed);
    if (o->type != T_U8)
        len += snprintf(desc + len, sizeof(desc) - (size_t)len, " --type %s", type_names[o->type]);
    if (o->palette) len += snprintf(desc + len, sizeof(desc) - (size_t)len, " --palette");
    if (o->has_nodata) {
        nodata_text(o->nodata, text, sizeof(text));
        len += snprintf(desc + len, sizeof(desc) - (size_t)len, " --nodata %s", text);
    }
    if (o->nan_fraction >= 0.0)
        snprintf(desc + len, sizeof(desc) - (size_t)len, " --nan-fraction %g", o->nan_fraction);
    ok &= TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)o->width);
    ok &= TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)o->height);
    ok &= TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8 * type_bytes[o->type]);
    ok &= TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, o->spp);
    ok &= TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, formats[o->type]);
    ok &= TIFFSetField(tif, TIFFTAG_PLANARCONFIG,
                       o->separate ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG);
    ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, photometric);
    if (n_extra > 0) ok &= TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, n_extra, extra);
    if (o->palette) {
        static uint16_t map[3][256];
        colormap_fill(o, map);
        ok &= TIFFSetField(tif, TIFFTAG_COLORMAP, map[0], map[1], map[2]);
    }
    if (o->has_nodata) {
        nodata_text(o->nodata, text, sizeof(text));
        ok &= TIFFSetField(tif, TAG_GDAL_NODATA, text);
    }
    ok &= TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT);
    ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, codecs[o->codec].tag);
    if (codecs[o->codec].tag == COMPRESSION_JPEG)
        ok &= TIFFSetField(tif, TIFFTAG_JPEGQUALITY, JPEG_QUALITY);
    if (o->tiled) {
        ok &= TIFFSetField(tif, TIFFTAG_TILEWIDTH, (uint32_t)o->tile_px);
        ok &= TIFFSetField(tif, TIFFTAG_TILELENGTH, (uint32_t)o->tile_px);
    } else {
        ok &= TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, (uint32_t)o->strip_rows);
    }
    ok &= TIFFSetField(tif, TIFFTAG_SOFTWARE, PROG);
    ok &= TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, desc);
    return ok ? 0 : -1;
}

/* Teaches libtiff the GDAL_NODATA tag (ASCII), for every file it opens after main installs it. */
static TIFFExtendProc parent_extender;

static void tag_extender(TIFF *tif)
{
    static const TIFFFieldInfo fields[] = {
        {TAG_GDAL_NODATA, -1, -1, TIFF_ASCII, FIELD_CUSTOM, 1, 0, "GDALNoDataValue"},
    };
    TIFFMergeFieldInfo(tif, fields, sizeof(fields) / sizeof(fields[0]));
    if (parent_extender) parent_extender(tif);
}

/* ---------------------------------------------------------------------------------------------
 * Output file: a temporary next to OUT, renamed into place only when complete; a signal removes
 * it.
 */

static char tmp_path[PATH_MAX + 16];
static volatile sig_atomic_t tmp_live;

static void on_signal(int sig)
{
    if (tmp_live) unlink(tmp_path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void install_signal_handlers(void)
{
    struct sigaction sa;
    const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) sigaction(sigs[i], &sa, NULL);
}

static const char *tiff_module_file;
static int tiff_muted; /* set while a failed file is being abandoned */

static void tiff_error(const char *module, const char *fmt, va_list ap)
{
    (void)module;
    if (tiff_muted) return;
    fprintf(stderr, PROG ": %s: ", tiff_module_file ? tiff_module_file : "libtiff");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void tiff_warning(const char *module, const char *fmt, va_list ap)
{
    (void)module;
    (void)fmt;
    (void)ap;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void format_bytes(double bytes, char *buf, size_t cap)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 4) {
        bytes /= 1024.0;
        u++;
    }
    snprintf(buf, cap, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
}

static int generate(const options *o)
{
    static scene sc; /* large (shapes); one per process */
    const int bps = type_bytes[o->type];
    const int64_t raw_total = o->width * o->height * o->spp * bps;
    const int bigtiff = o->bigtiff || raw_total > BIGTIFF_RAW_BYTES;
    const double t0 = now_seconds();
    writer w;
    TIFF *tif = NULL;
    int fd = -1, rc = -1;

    memset(&w, 0, sizeof(w));
    scene_init(&sc, o);
    w.o = o;
    w.sc = &sc;
    w.enc = codecs[o->codec].enc;
    w.threads = o->threads;
    if (o->tiled) {
        w.unit_w = w.unit_h = o->tile_px;
        w.units_x = (o->width + o->tile_px - 1) / o->tile_px;
        w.n_units = w.units_x * ((o->height + o->tile_px - 1) / o->tile_px);
    } else {
        w.unit_w = o->width;
        w.unit_h = o->strip_rows;
        w.units_x = 1;
        w.n_units = (o->height + o->strip_rows - 1) / o->strip_rows;
    }
    w.planes = o->separate ? o->spp : 1;
    w.px_bytes = (size_t)o->spp * (size_t)bps;
    w.unit_raw_bytes = (size_t)w.unit_w * (size_t)w.unit_h * w.px_bytes;
    w.plane_raw_bytes = w.unit_raw_bytes / (size_t)w.planes;
    const int big_strips = !o->tiled && w.unit_raw_bytes > BIG_STRIP_BYTES;
    w.slot_bytes = w.plane_raw_bytes;
    if (w.enc == ENC_ZLIB)
        w.slot_bytes = (size_t)compressBound((uLong)w.plane_raw_bytes);
    else if (w.enc == ENC_ZSTD)
        w.slot_bytes = ZSTD_compressBound(w.plane_raw_bytes);
    const int compress = !big_strips && (w.enc == ENC_ZLIB || w.enc == ENC_ZSTD);
    worker_sizes z;
    memset(&z, 0, sizeof(z));
    z.max_width = o->tiled ? o->tile_px : o->width;
    z.codec_state = compress;
    if (!big_strips && (compress || w.planes > 1)) z.raw_bytes = w.unit_raw_bytes;
    if (compress && w.planes > 1) z.plane_bytes = w.plane_raw_bytes;
    if (sc.multi || (sc.palette && sc.bands == 3)) z.pat_bytes = (size_t)z.max_width * 3;
    if (!sc.plain && o->type != T_U8) z.row8_bytes = (size_t)z.max_width * (size_t)o->spp;
    if (big_strips && w.planes > 1) z.full_bytes = (size_t)o->width * w.px_bytes;
    w.workers = workers_new(w.threads, &z, w.enc);
    if (!w.workers) {
        fprintf(stderr, PROG ": out of memory for %d workers\n", w.threads);
        return -1;
    }

    snprintf(tmp_path, sizeof(tmp_path), "%s.tmp.XXXXXX", o->out_path);
    install_signal_handlers();
    fd = mkstemp(tmp_path);
    if (fd < 0) {
        fprintf(stderr, PROG ": %s: cannot create a temporary file: %s\n", tmp_path,
                strerror(errno));
        goto cleanup;
    }
    tmp_live = 1;
    const mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    tiff_module_file = tmp_path;
    /* 8-bit files little-endian as always; wider samples in host order, as they are generated */
    tif = TIFFFdOpen(fd, tmp_path, bps == 1 ? (bigtiff ? "w8l" : "wl") : (bigtiff ? "w8" : "w"));
    if (!tif) {
        close(fd);
        goto cleanup;
    }
    if (set_tags(tif, o) != 0) {
        fprintf(stderr, PROG ": %s: libtiff refused the tags\n", tmp_path);
        goto cleanup;
    }
    w.tif = tif;
    if ((big_strips ? write_big_strips(&w) : write_batches(&w)) != 0) goto cleanup;
    if (!TIFFFlush(tif)) {
        fprintf(stderr, PROG ": %s: writing the directory failed\n", tmp_path);
        goto cleanup;
    }
    TIFFClose(tif);
    tif = NULL;
    if (rename(tmp_path, o->out_path) != 0) {
        fprintf(stderr, PROG ": %s: cannot rename into place: %s\n", o->out_path, strerror(errno));
        goto cleanup;
    }
    tmp_live = 0;
    rc = 0;
    if (!o->quiet) {
        struct stat stt;
        char size[32], layout[64];
        const double bytes = stat(o->out_path, &stt) == 0 ? (double)stt.st_size : 0.0;
        static const char *const kinds[] = {"", "grey", "grey+alpha", "RGB", "RGBA"};
        char kind[96];
        format_bytes(bytes, size, sizeof(size));
        if (o->tiled)
            snprintf(layout, sizeof(layout), "tiles %" PRId64 "x%" PRId64, o->tile_px, o->tile_px);
        else
            snprintf(layout, sizeof(layout), "strips of %" PRId64 " rows", o->strip_rows);
        snprintf(kind, sizeof(kind), "%s%s%s%s%s",
                 o->palette     ? (o->bands == 3 ? "RGB palette" : "grey palette")
                 : o->bands > 4 ? (o->alpha ? "multispectral+alpha" : "multispectral")
                                : kinds[o->bands],
                 o->type != T_U8 ? ", " : "", o->type != T_U8 ? type_names[o->type] : "",
                 o->separate ? ", separate planes" : "", o->has_nodata ? ", nodata" : "");
        printf("%s: %" PRId64 "x%" PRId64 ", %d band%s (%s), %s, %s, %s%s, %s (ratio %.3g to raw "
               "pixels), %.1f s\n",
               o->out_path, o->width, o->height, o->spp, o->spp > 1 ? "s" : "", kind,
               pattern_names[o->pattern], layout, codecs[o->codec].name, bigtiff ? ", BigTIFF" : "",
               size, bytes > 0 ? (double)raw_total / bytes : 0.0, now_seconds() - t0);
    }
cleanup:
    tiff_muted = 1; /* closing an abandoned file tries to write its directory */
    if (tif) TIFFClose(tif);
    tiff_muted = 0;
    if (tmp_live) {
        unlink(tmp_path);
        tmp_live = 0;
    }
    workers_free(w.workers, w.threads);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Command line.
 */

static void usage(FILE *f)
{
    fprintf(
        f,
        "Usage: " PROG " OUT.tif --width W --height H [options]\n"
        "\n"
        "Streams a synthetic TIFF of any size to OUT.tif, a batch of tiles (or strips) at a\n"
        "time, so memory stays bounded whatever the size. Every pixel is a pure function of\n"
        "(x, y, seed, options): the same arguments give a byte-identical file, whatever -j.\n"
        "The file is written to OUT.tif.tmp.XXXXXX and renamed into place when complete.\n"
        "\n"
        "  --width W              image width in pixels (required)\n"
        "  --height H             image height in pixels (required)\n"
        "  --bands N              1 grey, 2 grey+alpha, 3 RGB, 4 RGBA (default 3); 5 to %d:\n"
        "                         multispectral (MinIsBlack, N-1 extra samples), every band a\n"
        "                         different mix of the RGB pattern with a gain and an offset\n"
        "                         (noise: independent samples; blocks: 3 levels per band).\n"
        "                         Alpha is a diagonal ramp from 0 (top left) to 255 (bottom\n"
        "                         right), unassociated\n"
        "  --alpha                with 5 bands or more, the last band is alpha; changes\n"
        "                         nothing with 2 or 4 bands, refused with 1 or 3\n"
        "  --type T               sample type: u8 (default), u16, i16 or f32; the pattern's\n"
        "                         8-bit value v becomes v*257 (u16), v*257-32768 (i16) or\n"
        "                         v/255 (f32, 0 to 1), in every band including alpha\n"
        "  --pattern NAME         photo   smooth colour fields, soft shapes, shading, mild noise\n"
        "                                 (default)\n"
        "                         cat     a stylised ginger cat in a room (the README demo)\n"
        "                         blocks  exactly 3 colours in vertical thirds (3 values per\n"
        "                                 band in every type)\n"
        "                         noise   uniform random samples\n"
        "  --seed N               pattern seed (default 0)\n",
        MAX_BANDS);
    fprintf(
        f,
        "  --tile N               N x N tiles, N a multiple of 16 up to %d (default 512); a\n"
        "                         tile of all bands may hold at most 256 MiB\n"
        "  --strip ROWS           strips of ROWS rows instead of tiles; 0: one strip\n"
        "  --one-strip            one strip for the whole image, as --strip 0\n"
        "  --planar MODE          contig (default: samples interleaved) or separate (one plane\n"
        "                         per band, same pixel values)\n"
        "  --palette              palette image, one 8-bit index per pixel, u8 only: with 1\n"
        "                         band a grey ramp (index = grey value), with 3 bands the RGB\n"
        "                         pattern mapped to the nearest of 256 colours (a 6x7x6 cube\n"
        "                         and the greys 51, 102, 153, 204)\n"
        "  --nodata V             set V in every non-alpha band of the first row and of the\n"
        "                         disc of radius min(W,H)/6 around (W/3, H/3) (integer\n"
        "                         divisions), and write the GDAL_NODATA tag (\"nan\", or the\n"
        "                         stored value with %%.17g). Integer types need an integer in\n"
        "                         range; f32 stores the nearest float and also takes nan, inf\n"
        "                         and -inf\n"
        "  --nan-fraction F       f32 only: NaN in every non-alpha band of about a fraction F\n"
        "                         (0 to 1) of the pixels, +Inf in about F/64 more, chosen by\n"
        "                         a hash of (x, y, seed); --nodata is applied after\n"
        "  --compression NAME     none, lzw, deflate, zstd, packbits or jpeg (default deflate);\n"
        "                         jpeg (quality %d) needs u8 and 1 or 3 bands, without\n"
        "                         --palette or --nodata\n"
        "  --bigtiff              write BigTIFF (automatic when the raw pixels pass 2 GiB)\n"
        "  -j, --threads N        threads (default: OMP_NUM_THREADS, else all cores)\n"
        "  -q, --quiet            print nothing on success\n"
        "  -h, --help             show this help\n",
        MAX_TILE, JPEG_QUALITY);
    fputs("\n"
          "deflate (zlib level 2) and zstd (level 9) tiles or strips are compressed on all\n"
          "threads and written raw, as is none; lzw, packbits and jpeg go through libtiff's\n"
          "encoder on one thread. Strips over 32 MiB (all bands) are streamed in bands of rows;\n"
          "with separate planes such strips are generated once per plane. 8-bit files are\n"
          "little-endian, wider samples are written in the host's byte order.\n"
          "Prints one summary line. Exit status: 0 success, 1 I/O or memory failure (no output\n"
          "left behind), 2 usage error.\n",
          f);
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    return EXIT_USAGE;
}

/* Parses a decimal integer in [lo, hi]; returns 0 on success. */
static int parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    const long long v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* Parses the --nodata value into o->nodata, exactly as the sample type stores it; needs o->type.
 * Returns 0 on success. */
static int parse_nodata(const char *s, options *o)
{
    static const double lo[] = {0, 0, -32768}, hi[] = {255, 65535, 32767};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno == ERANGE && isinf(v) && o->type == T_F32) errno = 0; /* "1e999" is inf */
    if (errno != 0 || end == s || *end != '\0') return -1;
    if (o->type == T_F32) {
        if (isnan(v)) {
            v = NAN;
        } else if (isfinite(v) && fabs(v) > FLT_MAX) {
            return -1;
        } else {
            v = (double)(float)v;
        }
    } else if (!(v >= lo[o->type] && v <= hi[o->type]) || v != floor(v)) {
        return -1;
    }
    o->nodata = v == 0.0 ? 0.0 : v; /* -0 written as 0 */
    o->has_nodata = 1;
    return 0;
}

static int lookup(const char *name, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(name, names[i]) == 0) return i;
    return -1;
}

/* Fills o from argv; returns 0, or an exit status when the program should stop. */
static int parse_args(int argc, char **argv, options *o, int *stop)
{
    enum {
        OPT_WIDTH = 256,
        OPT_HEIGHT,
        OPT_BANDS,
        OPT_PATTERN,
        OPT_SEED,
        OPT_TILE,
        OPT_STRIP,
        OPT_COMPRESSION,
        OPT_BIGTIFF,
        OPT_TYPE,
        OPT_ALPHA,
        OPT_PLANAR,
        OPT_ONE_STRIP,
        OPT_PALETTE,
        OPT_NODATA,
        OPT_NAN_FRACTION
    };
    static const struct option longopts[] = {
        {"width", required_argument, NULL, OPT_WIDTH},
        {"height", required_argument, NULL, OPT_HEIGHT},
        {"bands", required_argument, NULL, OPT_BANDS},
        {"pattern", required_argument, NULL, OPT_PATTERN},
        {"seed", required_argument, NULL, OPT_SEED},
        {"tile", required_argument, NULL, OPT_TILE},
        {"strip", required_argument, NULL, OPT_STRIP},
        {"compression", required_argument, NULL, OPT_COMPRESSION},
        {"bigtiff", no_argument, NULL, OPT_BIGTIFF},
        {"type", required_argument, NULL, OPT_TYPE},
        {"alpha", no_argument, NULL, OPT_ALPHA},
        {"planar", required_argument, NULL, OPT_PLANAR},
        {"one-strip", no_argument, NULL, OPT_ONE_STRIP},
        {"palette", no_argument, NULL, OPT_PALETTE},
        {"nodata", required_argument, NULL, OPT_NODATA},
        {"nan-fraction", required_argument, NULL, OPT_NAN_FRACTION},
        {"threads", required_argument, NULL, 'j'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static const char *const planar_names[] = {"contig", "separate"};
    const char *codec_names[N_CODECS];
    const char *nodata_arg = NULL;
    int have_tile = 0, have_strip = 0, opt;
    int64_t v;

    for (size_t i = 0; i < N_CODECS; i++) codec_names[i] = codecs[i].name;
    memset(o, 0, sizeof(*o));
    o->bands = 3;
    o->pattern = PAT_PHOTO;
    o->tiled = 1;
    o->tile_px = 512;
    o->codec = 2; /* deflate */
    o->type = T_U8;
    o->nan_fraction = -1.0;
#ifdef _OPENMP
    o->threads = omp_get_max_threads();
#else
    o->threads = 1;
#endif
    *stop = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":j:qh", longopts, NULL)) != -1) {
        switch (opt) {
        case OPT_WIDTH:
        case OPT_HEIGHT:
            if (parse_int(optarg, 1, MAX_SIDE, &v) != 0)
                return bad_usage("bad size '%s' (1 to 2^30 pixels)", optarg);
            *(opt == OPT_WIDTH ? &o->width : &o->height) = v;
            break;
        case OPT_BANDS:
            if (parse_int(optarg, 1, MAX_BANDS, &v) != 0)
                return bad_usage("bad --bands '%s' (1 to 64)", optarg);
            o->bands = (int)v;
            break;
        case OPT_PATTERN:
            if ((o->pattern = lookup(optarg, pattern_names, 4)) < 0)
                return bad_usage("unknown pattern '%s' (photo, cat, blocks or noise)", optarg);
            break;
        case OPT_SEED: {
            char *end;
            errno = 0;
            o->seed = strtoull(optarg, &end, 10);
            if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-')
                return bad_usage("bad --seed '%s' (0 to 2^64-1)", optarg);
            break;
        }
        case OPT_TILE:
            if (parse_int(optarg, 16, MAX_TILE, &v) != 0 || v % 16 != 0)
                return bad_usage("bad --tile '%s' (a multiple of 16, 16 to 4096)", optarg);
            o->tile_px = v;
            have_tile = 1;
            break;
        case OPT_STRIP:
        case OPT_ONE_STRIP:
            if (opt == OPT_ONE_STRIP)
                v = 0;
            else if (parse_int(optarg, 0, MAX_SIDE, &v) != 0)
                return bad_usage("bad --strip '%s' (rows per strip, or 0 for one strip)", optarg);
            o->strip_rows = v == 0 ? MAX_SIDE : v; /* clipped to the height below */
            o->tiled = 0;
            have_strip = 1;
            break;
        case OPT_TYPE:
            if ((o->type = lookup(optarg, type_names, 4)) < 0)
                return bad_usage("unknown --type '%s' (u8, u16, i16 or f32)", optarg);
            break;
        case OPT_ALPHA: o->alpha = 1; break;
        case OPT_PLANAR:
            if ((o->separate = lookup(optarg, planar_names, 2)) < 0)
                return bad_usage("unknown --planar '%s' (contig or separate)", optarg);
            break;
        case OPT_PALETTE: o->palette = 1; break;
        case OPT_NODATA: nodata_arg = optarg; break;
        case OPT_NAN_FRACTION: {
            char *end;
            errno = 0;
            o->nan_fraction = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || !(o->nan_fraction >= 0.0) ||
                o->nan_fraction > 1.0)
                return bad_usage("bad --nan-fraction '%s' (0 to 1)", optarg);
            break;
        }
        case OPT_COMPRESSION:
            if ((o->codec = lookup(optarg, codec_names, (int)N_CODECS)) < 0)
                return bad_usage("unknown compression '%s' (none, lzw, deflate, zstd, packbits "
                                 "or jpeg)",
                                 optarg);
            break;
        case OPT_BIGTIFF: o->bigtiff = 1; break;
        case 'j':
            if (parse_int(optarg, 1, 1024, &v) != 0)
                return bad_usage("bad --threads '%s' (1 to 1024)", optarg);
            o->threads = (int)v;
            break;
        case 'q': o->quiet = 1; break;
        case 'h': usage(stdout); return 0;
        case ':': return bad_usage("option '%s' needs a value", argv[optind - 1]);
        default: return bad_usage("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind != argc - 1)
        return bad_usage("%s", optind == argc ? "missing OUT.tif" : "more than one OUT.tif");
    o->out_path = argv[optind];
    if (have_tile && have_strip)
        return bad_usage("%s", "--tile and --strip (or --one-strip) exclude each other");
    if (o->width == 0 || o->height == 0)
        return bad_usage("%s", "--width and --height are required");
    const int jpeg = codecs[o->codec].tag == COMPRESSION_JPEG;
    if (o->alpha && o->bands != 2 && o->bands != 4 && o->bands < 5)
        return bad_usage("%s", "--alpha needs --bands 2, 4, or 5 and more");
    if (o->palette && ((o->bands != 1 && o->bands != 3) || o->type != T_U8))
        return bad_usage("%s", "--palette needs --bands 1 or 3 and --type u8");
    if (jpeg && o->type != T_U8) return bad_usage("%s", "jpeg needs --type u8");
    if (jpeg && o->bands != 1 && o->bands != 3) return bad_usage("%s", "jpeg needs 1 or 3 bands");
    if (jpeg && (o->palette || nodata_arg))
        return bad_usage("jpeg is lossy: no %s", o->palette ? "--palette" : "--nodata");
    if (o->nan_fraction >= 0.0 && o->type != T_F32)
        return bad_usage("%s", "--nan-fraction needs --type f32");
    if (nodata_arg && parse_nodata(nodata_arg, o) != 0)
        return bad_usage(o->type == T_F32 ? "bad --nodata '%s' (a number, nan, inf or -inf)"
                                          : "bad --nodata '%s' (an integer the type holds)",
                         nodata_arg);
    if (!TIFFIsCODECConfigured(codecs[o->codec].tag))
        return bad_usage("this libtiff has no %s codec", codecs[o->codec].name);
    o->spp = o->palette ? 1 : o->bands;
    const int64_t px_bytes = (int64_t)o->spp * type_bytes[o->type];
    if (!o->tiled) {
        if (o->strip_rows > o->height) o->strip_rows = o->height;
        if (jpeg && o->strip_rows % 8 != 0 && o->strip_rows != o->height)
            return bad_usage("%s", "jpeg strips need a multiple of 8 rows");
        if (o->width * px_bytes > MAX_ROW_BYTES)
            return bad_usage("%s", "rows too wide for strips; use --tile");
    } else if (o->tile_px * o->tile_px * px_bytes > MAX_TILE_BYTES) {
        return bad_usage("%s", "tiles over 256 MiB with all bands; use a smaller --tile");
    }
    const int64_t unit = o->tiled ? o->tile_px : o->strip_rows;
    const int64_t units = (o->tiled ? (o->width + unit - 1) / unit : 1) *
                          ((o->height + unit - 1) / unit) * (o->separate ? o->spp : 1);
    if (units > MAX_UNITS) return bad_usage("%s", "too many tiles or strips; use larger ones");
    if (strlen(o->out_path) + 16 > sizeof(tmp_path)) return bad_usage("%s", "output path too long");
    *stop = 0;
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int stop;
    const int status = parse_args(argc, argv, &o, &stop);

    if (stop) return status;
    parent_extender = TIFFSetTagExtender(tag_extender);
    TIFFSetErrorHandler(tiff_error);
    TIFFSetWarningHandler(tiff_warning);
    return generate(&o) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
