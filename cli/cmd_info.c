/* chunkmeans info IN [--colors]: what the file holds, and its exact number of colours; or, for
 * a model JSON file, its k, colour space and palette. */
#include <ctype.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static const char info_help[] =
    "Usage: chunkmeans info IN [--colors] [--json] [-j N] [--memory SIZE] [--progress WHEN]\n"
    "       chunkmeans info MODEL.json [--json]\n"
    "\n"
    "Prints what IN (a TIFF, JPEG or PNG, recognised by its content) holds: size, bands, sample\n"
    "type, photometric interpretation, planar configuration, extra samples and alpha, layout\n"
    "(tiles, strips, or rows decoded in order), compression, format (classic TIFF, BigTIFF,\n"
    "JPEG or PNG, progressive or interlaced), orientation, georeferencing, nodata, and the\n"
    "chunks chunkmeans reads it in. A JPEG or PNG is decoded as libjpeg-turbo and libpng do by\n"
    "default (as Pillow reads it): palettes as RGB, transparency as an alpha band, CMYK JPEGs\n"
    "with Adobe's inverted samples turned back.\n"
    "\n"
    "A file that holds JSON (or whose name ends in .json) is read as a model (from fit or\n"
    "run --model-out): prints its k, features, sample type and colour space, then its palette,\n"
    "largest count first, one '#rrggbb count percent' line per colour (the lines of\n"
    "--palette-out P.txt; a model of other than 1 or 3 colour bands prints each centroid's\n"
    "samples instead of #rrggbb). A model that cannot be read exits 3.\n"
    "\n"
    "  --json          the same as a JSON object, for scripts\n"
    "  --colors        also count its distinct colours (tuples of the non-alpha samples),\n"
    "                  exactly, reading the whole image once in parallel\n"
    "  -j, --threads N worker threads for --colors (default: all cores)\n"
    "  --memory SIZE   budget for chunk buffers in flight (default 256M)\n"
    "  --progress WHEN auto, always or never (default auto)\n"
    "  -q, --quiet     errors only on stderr\n";

enum { OPT_COLORS = 256, OPT_MEMORY, OPT_PROGRESS, OPT_JSON };

static const struct option info_options[] = {
    {"colors", no_argument, 0, OPT_COLORS},
    {"colours", no_argument, 0, OPT_COLORS},
    {"json", no_argument, 0, OPT_JSON},
    {"threads", required_argument, 0, 'j'},
    {"memory", required_argument, 0, OPT_MEMORY},
    {"progress", required_argument, 0, OPT_PROGRESS},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {0, 0, 0, 0},
};

static const char *extra_name(uint16_t kind)
{
    return kind == 1 ? "associated alpha" : kind == 2 ? "unassociated alpha" : "unspecified";
}

static void print_text(const char *path, const cm_image_info_t *in, int64_t n_colors)
{
    const cm_grid_t *g = &in->grid;
    printf("file:         %s\n", path);
    printf("size:         %lld x %lld (%.1f megapixels)\n", (long long)in->width,
           (long long)in->height, (double)in->width * (double)in->height / 1e6);
    printf("bands:        %d%s\n", in->bands, in->palette ? " (the colours of a palette)" : "");
    printf("sample type:  %s\n", in->sample_type);
    printf("photometric:  %s\n", in->photometric_name);
    printf("planar:       %s\n", in->planar_separate ? "separate" : "contiguous");
    printf("extra:        ");
    for (int i = 0; i < in->n_extra; i++) printf("%s%s", i ? ", " : "", extra_name(in->extra[i]));
    printf("%s\n", in->n_extra ? "" : "none");
    if (in->alpha_band >= 0)
        printf("alpha:        band %d\n", in->alpha_band);
    else
        printf("alpha:        none\n");
    bool tiff = in->format == CM_FILE_TIFF;
    if (in->tiled)
        printf("layout:       tiled %lldx%lld\n", (long long)in->tile_w, (long long)in->tile_h);
    else if (tiff)
        printf("layout:       striped, %lld rows per strip\n", (long long)in->tile_h);
    else
        printf("layout:       rows, decoded in order\n");
    printf("compression:  %s\n", cm_compression_name(in->compression));
    if (tiff)
        printf("format:       %s\n", in->bigtiff ? "BigTIFF" : "classic TIFF");
    else
        printf("format:       %s%s\n", cm_file_format_name(in->format),
               !in->progressive            ? ""
               : in->format == CM_FILE_PNG ? " (interlaced: decoding holds the whole image)"
                                           : " (progressive: decoding holds its coefficients)");
    if (in->orientation > 1) printf("orientation:  %d\n", in->orientation);
    printf("georef:       %s\n", in->georeferenced ? "GeoTIFF tags" : "none");
    if (in->has_nodata)
        printf("nodata:       %.17g\n", in->nodata);
    else
        printf("nodata:       none\n");
    printf("chunks:       %lld of %lldx%lld%s\n", (long long)cm_grid_count(g),
           (long long)g->chunk_w, (long long)g->chunk_h,
           !in->streamed ? ""
           : tiff        ? " (strips too large: streamed once into a spill store)"
                         : " (streamed once into a spill store)");
    if (n_colors >= 0) printf("colors:       %lld\n", (long long)n_colors);
}

/* The same as JSON, for scripts (keys stable; nodata NaN as the string "nan"). */
static int print_json(const char *path, const cm_image_info_t *in, int64_t n_colors, cm_ctx_t *ctx)
{
    json_t *extra = json_array(), *nodata;
    for (int i = 0; extra && i < in->n_extra; i++)
        json_array_append_new(extra, json_string(extra_name(in->extra[i])));
    if (!in->has_nodata)
        nodata = json_null();
    else if (isnan(in->nodata))
        nodata = json_string("nan");
    else
        nodata = json_real(in->nodata);
    json_t *root = json_pack(
        "{s:s, s:I, s:I, s:i, s:s, s:s, s:s, s:o, s:o, s:b, s:I, s:I, s:s, s:b, s:b, s:o, "
        "s:b, s:I, s:o, s:s, s:b, s:o}",
        "file", path, "width", (json_int_t)in->width, "height", (json_int_t)in->height, "bands",
        in->bands, "sample_type", in->sample_type, "photometric", in->photometric_name, "planar",
        in->planar_separate ? "separate" : "contiguous", "extra_samples", extra, "alpha_band",
        in->alpha_band >= 0 ? json_integer(in->alpha_band) : json_null(), "tiled", in->tiled,
        "tile_width", (json_int_t)in->tile_w, in->tiled ? "tile_height" : "rows_per_strip",
        (json_int_t)in->tile_h, "compression", cm_compression_name(in->compression), "bigtiff",
        in->bigtiff, "georeferenced", in->georeferenced, "nodata", nodata, "palette", in->palette,
        "chunks", (json_int_t)cm_grid_count(&in->grid), "colors",
        n_colors >= 0 ? json_integer(n_colors) : json_null(), "format",
        cm_file_format_name(in->format), "progressive", in->progressive, "orientation",
        in->orientation ? json_integer(in->orientation) : json_null());
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    CM_FAIL_IF(ctx, !text, CM_ENOMEM, "%s: out of memory", path);
    puts(text);
    free(text);
    return 0;
}

/* Whether path is to be read as a model: its name ends in .json, or its first byte that is not
 * white space opens a JSON object (no image format starts so). */
static bool is_model(const char *path)
{
    size_t n = strlen(path);
    if (n >= 5 && !strcasecmp(path + n - 5, ".json")) return true;
    FILE *f = fopen(path, "rb");
    if (!f) return false; /* the image reader says why */
    int c;
    while ((c = fgetc(f)) != EOF && isspace(c)) continue;
    fclose(f);
    return c == '{';
}

/* A model as JSON: what it fits and its palette, largest share first. */
static int print_model_json(const char *path, const cm_model_t *m, const cm_model_meta_t *meta,
                            const cm_palette_t *p, cm_ctx_t *ctx)
{
    json_t *colors = json_array();
    bool bad = !colors;
    for (int i = 0; !bad && i < p->k; i++) {
        const cm_palette_color_t *c = &p->colors[i];
        json_t *centroid = json_array();
        bad |= !centroid;
        for (int b = 0; !bad && b < m->d; b++)
            bad |= json_array_append_new(centroid,
                                         json_real(m->centroids[(size_t)c->label * m->d + b]));
        char hex[8], percent[16];
        snprintf(hex, sizeof hex, "#%02x%02x%02x", c->rgb[0], c->rgb[1], c->rgb[2]);
        snprintf(percent, sizeof percent, "%.2f%%", 100.0 * c->share);
        json_t *e = json_pack("{s:i, s:o, s:o, s:o, s:I, s:f, s:s}", "label", c->label, "hex",
                              p->has_rgb ? json_string(hex) : json_null(), "rgb",
                              p->has_rgb ? json_pack("[i, i, i]", c->rgb[0], c->rgb[1], c->rgb[2])
                                         : json_null(),
                              "centroid", centroid, "count", (json_int_t)c->count, "share",
                              c->share, "percent", percent);
        bad |= !e || json_array_append_new(colors, e);
    }
    json_t *root =
        bad ? NULL
            : json_pack("{s:s, s:s, s:i, s:i, s:i, s:o, s:s, s:s, s:s, s:I, s:o}", "file", path,
                        "kind", "model", "k", m->k, "features", m->d, "bands", meta->bands,
                        "alpha_band",
                        meta->alpha_band >= 0 ? json_integer(meta->alpha_band) : json_null(),
                        "sample_type", cm_stype_name(meta->stype), "colorspace",
                        cm_colorspace_name(m->colorspace), "chunkmeans_version", meta->version,
                        "pixels", (json_int_t)p->total, "palette", colors);
    if (bad) json_decref(colors); /* else json_pack took it, as it takes every "o" */
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    CM_FAIL_IF(ctx, !text, CM_ENOMEM, "%s: out of memory", path);
    puts(text);
    free(text);
    return 0;
}

/* chunkmeans info MODEL.json: the model read with every field checked, then described. */
static int info_model(const char *path, bool as_json)
{
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_model_t *m = NULL;
    cm_model_meta_t meta;
    cm_palette_t *p = NULL;
    int rc = cm_model_load(path, &m, &meta, &ctx);
    if (rc == 0) rc = cm_palette_make(m, meta.stype, &p, &ctx);
    if (rc == 0 && as_json) {
        rc = print_model_json(path, m, &meta, p, &ctx);
    } else if (rc == 0) {
        printf("file:         %s\n", path);
        printf("model:        chunkmeans %s\n", meta.version[0] ? meta.version : "(no version)");
        printf("k:            %d\n", m->k);
        printf("features:     %d of %s (%d bands%s)\n", m->d, cm_stype_name(meta.stype), meta.bands,
               meta.alpha_band >= 0 ? " with alpha" : "");
        printf("colorspace:   %s\n", cm_colorspace_name(m->colorspace));
        printf("pixels:       %lld counted\n", (long long)p->total);
        cli_print_palette(stdout, m, meta.stype, "");
    }
    cm_palette_free(p);
    cm_model_free(m);
    return rc < 0 ? cli_fail(&ctx, rc, path) : CM_EXIT_OK;
}

int cmd_info(int argc, char **argv)
{
    bool colors = false, as_json = false;
    const char *progress = "auto";
    cm_options_t o;
    cm_options_default(&o);
    long long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:qh", info_options, NULL)) != -1) {
        switch (c) {
        case OPT_COLORS: colors = true; break;
        case OPT_JSON: as_json = true; break;
        case 'j':
            if (!cli_parse_int("--threads", optarg, 1, 1024, &v)) return CM_EXIT_USAGE;
            o.params.n_threads = (int)v;
            break;
        case OPT_MEMORY:
            if (!cli_parse_size("--memory", optarg, &o.params.budget_bytes)) return CM_EXIT_USAGE;
            break;
        case OPT_PROGRESS:
            if (strcmp(optarg, "auto") && strcmp(optarg, "always") && strcmp(optarg, "never")) {
                cli_error("--progress: expected auto, always or never, not '%s'", optarg);
                return CM_EXIT_USAGE;
            }
            progress = optarg;
            break;
        case 'q': cli_verbosity = 0; break;
        case 'h': fputs(info_help, stdout); return CM_EXIT_OK;
        default: fputs("Try 'chunkmeans info --help'.\n", stderr); return CM_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        cli_error("info needs one IN (try 'chunkmeans info --help')");
        return CM_EXIT_USAGE;
    }
    const char *path = argv[optind];
    if (is_model(path)) {
        if (colors) {
            cli_error("%s: --colors counts an image's colours; this is a model", path);
            return CM_EXIT_USAGE;
        }
        return info_model(path, as_json);
    }
    if (colors) cli_catch_signals();
    cli_progress_t prog;
    cli_progress_init(&prog, progress, 0);
    const char *tmp = getenv("TMPDIR");
    o.scratch_dir = tmp && *tmp ? tmp : "/tmp"; /* a file of huge strips is streamed there */
    o.params.progress = cli_progress_update;
    o.params.progress_user = &prog;
    o.params.cancel = &cli_signal;
    o.opened = cli_opened;
    o.user = &prog;

    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    cm_image_info_t in;
    int64_t n_colors = -1;
    int rc = cm_info_file(path, &o, &in, colors ? &n_colors : NULL, &ctx);
    cli_progress_end(&prog);
    if (rc == 0 && as_json)
        rc = print_json(path, &in, n_colors, &ctx);
    else if (rc == 0)
        print_text(path, &in, n_colors);
    return rc < 0 ? cli_fail(&ctx, rc, path) : CM_EXIT_OK;
}
