/* chunkmeans info IN [--colors]: what the file holds, and its exact number of colours. */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "cm_io.h"

static const char info_help[] =
    "Usage: chunkmeans info IN.tif [--colors] [-j N] [--memory SIZE] [--progress WHEN]\n"
    "\n"
    "Prints IN's size, bands, sample type, photometric interpretation, alpha, layout (tiles or\n"
    "strips), compression, classic TIFF or BigTIFF, and the chunks chunkmeans reads it in.\n"
    "  --colors        also count its distinct colours (tuples of the non-alpha samples),\n"
    "                  exactly, reading the whole image once in parallel\n"
    "  -j, --threads N worker threads for --colors (default: all cores)\n"
    "  --memory SIZE   budget for chunk buffers in flight (default 256M)\n"
    "  --progress WHEN auto, always or never (default auto)\n";

enum { OPT_COLORS = 256, OPT_MEMORY, OPT_PROGRESS };

static const struct option info_options[] = {
    {"colors", no_argument, 0, OPT_COLORS},
    {"colours", no_argument, 0, OPT_COLORS},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, OPT_MEMORY},
    {"progress", required_argument, 0, OPT_PROGRESS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static int read_chunk(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx)
{
    return cm_image_read_chunk(self, worker, idx, buf, ctx);
}

int cmd_info(int argc, char **argv)
{
    bool colors = false;
    const char *progress = "auto";
    cm_params_t p;
    cm_params_default(&p);
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", info_options, NULL)) != -1) {
        switch (c) {
        case OPT_COLORS: colors = true; break;
        case 'j':
            if (!cli_parse_int("--threads", optarg, 1, 1024, &v)) return EXIT_USAGE;
            p.n_threads = (int)v;
            break;
        case OPT_MEMORY:
            if (!cli_parse_size("--memory", optarg, &p.budget_bytes)) return EXIT_USAGE;
            break;
        case OPT_PROGRESS:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
                cli_error("--progress: expected auto, always or never, not '%s'", optarg);
                return EXIT_USAGE;
            }
            progress = optarg;
            break;
        case 'q': cli_verbosity = 0; break;
        case 'h': fputs(info_help, stdout); return EXIT_OK;
        default: fputs("Try 'chunkmeans info --help'.\n", stderr); return EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        cli_error("info needs one IN.tif (try 'chunkmeans info --help')");
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    if (p.n_threads <= 0) p.n_threads = cm_default_threads();

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_t *img = NULL;
    int rc = cm_image_open(path, p.n_threads, &img, &ctx);
    if (rc == 0) rc = cm_image_set_chunk_side(img, 512, &ctx); /* as run reads it */
    if (rc < 0) {
        cm_image_close(img);
        return cli_fail(&ctx, rc);
    }
    const cm_image_info_t *in = cm_image_info(img);
    const cm_grid_t *g = &in->grid;

    printf("file:         %s\n", path);
    printf("size:         %lld x %lld (%.1f megapixels)\n", (long long)in->width,
           (long long)in->height, (double)in->width * (double)in->height / 1e6);
    printf("bands:        %d\n", in->bands);
    printf("sample type:  %s\n", in->sample_type);
    printf("photometric:  %s\n", in->photometric_name);
    if (in->alpha_band >= 0)
        printf("alpha:        band %d\n", in->alpha_band);
    else
        printf("alpha:        none\n");
    if (in->tiled)
        printf("layout:       tiled %lldx%lld\n", (long long)in->tile_w, (long long)in->tile_h);
    else
        printf("layout:       striped, %lld rows per strip\n", (long long)in->tile_h);
    printf("compression:  %s\n", cm_compression_name(in->compression));
    printf("format:       %s\n", in->bigtiff ? "BigTIFF" : "classic TIFF");
    printf("chunks:       %lld of %lldx%lld\n", (long long)cm_grid_count(g),
           (long long)g->chunk_w, (long long)g->chunk_h);
    fflush(stdout);

    if (colors) {
        cli_catch_signals();
        cli_progress_t prog;
        cli_progress_init(&prog, progress,
                          (double)(in->width * in->height) / (double)cm_grid_count(g));
        p.progress = cli_progress_update;
        p.progress_user = &prog;
        p.cancel = &cli_signal;
        cm_source_t src = {.grid = *g, .read = read_chunk, .self = img};
        int64_t n = 0;
        rc = cm_count_colors(&src, &p, &n, &ctx);
        cli_progress_end(&prog);
        if (rc == 0) printf("colors:       %lld\n", (long long)n);
    }
    cm_image_close(img);
    return rc < 0 ? cli_fail(&ctx, rc) : EXIT_OK;
}
