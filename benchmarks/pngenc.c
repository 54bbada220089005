/* PNG encoding on 1 and on N threads: an image (TIFF, JPEG or PNG, read with io) is written as
 * a colour-mapped PNG of 8 colours and as an RGB PNG through the writer, its bands of rows
 * encoded in parallel (OpenMP) and put in order, as the remap does; best of 3 runs each, and
 * the speed-up of N threads over 1 measured in the same run.
 * Usage: cm-pngenc IN [THREADS] (default: all cores). Writes scratch PNGs next to nothing:
 * under $TMPDIR (default /tmp), removed at the end. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cm_io.h"
#include "io_internal.h"

enum { WINDOW = 8 }; /* bands encoded at once */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const cm_ctx_t *ctx)
{
    fprintf(stderr, "cm-pngenc: %s\n", ctx->msg);
    exit(1);
}

/* The whole image, 8-bit RGB. */
static uint8_t *read_rgb(const char *path, int64_t *w, int64_t *h)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    if (cm_image_open(path, 1, &img, &ctx) < 0 || cm_image_prepare(img, tmp, 0, &ctx) < 0)
        die(&ctx);
    const cm_image_info_t *in = cm_image_info(img);
    if (in->stype != CM_U8 || in->bands != 3) {
        fprintf(stderr, "cm-pngenc: %s: needs 8-bit RGB\n", path);
        exit(2);
    }
    *w = in->width, *h = in->height;
    uint8_t *all = malloc((size_t)(*w * *h * 3)), *chunk = malloc(cm_grid_chunk_bytes(&in->grid));
    for (int64_t c = 0; c < cm_grid_count(&in->grid); c++) {
        int64_t x, y, cw, ch;
        cm_grid_rect(&in->grid, c, &x, &y, &cw, &ch);
        if (cm_image_read_chunk(img, 0, c, chunk, &ctx) < 0) die(&ctx);
        for (int64_t r = 0; r < ch; r++)
            memcpy(all + ((y + r) * *w + x) * 3, chunk + r * cw * 3, (size_t)cw * 3);
    }
    free(chunk);
    cm_image_close(img);
    return all;
}

/* Writes px (bands samples per pixel) as a PNG in bands of band_h rows encoded on threads
 * threads; returns the seconds taken, from open to commit, and in *encode_s those of the
 * encoding alone (filtering and deflating the bands). */
static double write_png(const char *out, const cm_writer_spec_t *spec, const uint8_t *px,
                        int64_t band_h, int threads, double *encode_s)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    double t0 = now();
    cm_writer_t *wr = NULL;
    if (cm_writer_open(out, spec, &wr, &ctx) < 0) die(&ctx);
    int64_t n = (spec->height + band_h - 1) / band_h;
    size_t row = (size_t)spec->width * (size_t)spec->bands;
    cm_encoded_t **e = calloc((size_t)n, sizeof *e);
    /* Windows of a few bands encoded in parallel, then put and freed, as the remap holds only
     * the bands in flight: holding all of them made the threads wait on page faults. */
    int failed = 0;
    double encoding = 0;
    for (int64_t at = 0; at < n && !failed; at += WINDOW) {
        int64_t end = at + WINDOW < n ? at + WINDOW : n;
        double t1 = now();
#pragma omp parallel for schedule(dynamic) num_threads(threads) reduction(| : failed)
        for (int64_t i = at; i < end; i++) {
            cm_ctx_t c;
            cm_ctx_init(&c);
            int64_t y = i * band_h, h = spec->height - y < band_h ? spec->height - y : band_h;
            failed |=
                cm_writer_encode(wr, 0, y, spec->width, h, px + (size_t)y * row, &e[i], &c) < 0;
        }
        encoding += now() - t1;
        for (int64_t i = at; i < end && !failed; i++)
            if (cm_writer_put_encoded(wr, e[i], &ctx) < 0) die(&ctx);
        for (int64_t i = at; i < end; i++) cm_encoded_free(e[i]);
    }
    *encode_s = encoding;
    free(e);
    if (failed) {
        fprintf(stderr, "cm-pngenc: encoding failed\n");
        exit(1);
    }
    if (cm_writer_commit(wr, &ctx) < 0) die(&ctx);
    return now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cm-pngenc IN [THREADS]\n");
        return 2;
    }
    int threads = argc > 2 ? atoi(argv[2]) : omp_get_num_procs();
    int64_t w, h;
    uint8_t *rgb = read_rgb(argv[1], &w, &h);
    /* 8 colours: each channel above or below the middle, as a k = 8 filter posterises */
    uint8_t *labels = malloc((size_t)(w * h));
    uint16_t cmap[3 * 256] = {0};
    for (int64_t i = 0; i < w * h; i++)
        labels[i] =
            (uint8_t)((rgb[3 * i] >> 7) << 2 | (rgb[3 * i + 1] >> 7) << 1 | rgb[3 * i + 2] >> 7);
    for (int j = 0; j < 8; j++)
        for (int c = 0; c < 3; c++)
            cmap[256 * c + j] = (uint16_t)(((j >> (2 - c)) & 1 ? 192 : 64) * 257);
    /* bands as the streamed input's chunks: about 1 MP, a multiple of 16 rows, at most 512 */
    int64_t band_h = (4 * 512 * 512 / w + 15) / 16 * 16;
    band_h = band_h < 16 ? 16 : band_h > 512 ? 512 : band_h;
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char out[4096];
    snprintf(out, sizeof out, "%s/cm-pngenc-%d.png", tmp, (int)getpid());
    printf("%s: %lldx%lld, bands of %lld rows; seconds (best of 3) of the encoding (filter and\n"
           "deflate, in parallel) and of the whole write (open to commit: the writer's puts and\n"
           "the final fsync are one thread's)\n",
           argv[1], (long long)w, (long long)h, (long long)band_h);
    printf("%-8s %-8s %9s %9s %9s %12s\n", "PNG", "", "1 thread", "threads", "speed-up", "size");
    for (int pal = 1; pal >= 0; pal--) {
        cm_writer_spec_t s = {.format = CM_FILE_PNG,
                              .width = w,
                              .height = h,
                              .bands = pal ? 1 : 3,
                              .stype = CM_U8,
                              .photometric = pal ? 3 : 2,
                              .colormap = pal ? cmap : NULL,
                              .colormap_n = 8,
                              .tile_w = 512,
                              .tile_h = 512};
        double best[2] = {1e30, 1e30}, enc[2] = {1e30, 1e30};
        for (int run = 0; run < 3; run++)
            for (int t = 0; t < 2; t++) {
                double e;
                double sec = write_png(out, &s, pal ? labels : rgb, band_h, t ? threads : 1, &e);
                if (sec < best[t]) best[t] = sec;
                if (e < enc[t]) enc[t] = e;
            }
        struct stat st = {0};
        stat(out, &st);
        const char *name = pal ? "palette" : "RGB";
        printf("%-8s %-8s %8.3fs %8.3fs %8.2fx %9.1f MB  (%d threads)\n", name, "encoding",
               enc[0], enc[1], enc[0] / enc[1], (double)st.st_size / 1e6, threads);
        printf("%-8s %-8s %8.3fs %8.3fs %8.2fx\n", name, "write", best[0], best[1],
               best[0] / best[1]);
    }
    unlink(out);
    free(labels);
    free(rgb);
    return 0;
}
