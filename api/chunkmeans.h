/* chunkmeans: k-means colour filtering of TIFF images larger than memory. The one header a
 * program includes (`#include <chunkmeans.h>`, flags from `pkg-config --cflags chunkmeans`);
 * the headers it pulls in are installed next to it and are part of the same API.
 *
 * Two levels:
 * - whole files: cm_run_file, cm_fit_files and cm_apply_files do what `chunkmeans run`, `fit`
 *   and `apply` do (the command is a caller of them and nothing else): read TIFFs, fit, write
 *   recoloured TIFFs, label maps and models atomically; cm_fit_file and cm_apply_file are the
 *   one-image forms, cm_model_load / cm_model_save read and write model JSON files, and
 *   cm_info_file describes a file;
 * - chunks: cm_image_open (cm_io.h) and cm_fit / cm_remap (cm_engine.h) over a cm_source_t and
 *   a cm_sink_t of the caller's, for pixels that do not come from or go to a TIFF file.
 *
 * Errors: every function returns 0 or a negative CM_E* code (cm_base.h); the message, naming
 * the file and the reason, is in the cm_ctx_t the caller passed (cm_ctx_init it first; the
 * first failure recorded wins), with what it is about when that is one of the caller's
 * settings (cm_ctx_t.about). cm_strerror gives a code's short name. */
#ifndef CHUNKMEANS_H
#define CHUNKMEANS_H

#include <stdbool.h>
#include <stdint.h>

#include "cm_version.h"
#include "cm_base.h"
#include "cm_comm.h"
#include "cm_grid.h"
#include "cm_graph.h"
#include "cm_engine.h"
#include "cm_io.h"

/* The version of the headers (CM_VERSION, "0.1.0", and CM_VERSION_MAJOR, _MINOR, _PATCH, in
 * cm_version.h), and that of the library the program runs with: the same string unless the
 * program was built against another installation. */
#define CM_VERSION_NUMBER (CM_VERSION_MAJOR * 10000 + CM_VERSION_MINOR * 100 + CM_VERSION_PATCH)
const char *cm_version(void);

/* The pixels of an output: the recoloured samples (rgb: the input's bands and sample type),
 * or the labels with the centroids as a TIFF colour map (palette: grey or RGB input of 8 or 16
 * bits, k up to 256); auto: palette for a palette input, else rgb. */
typedef enum cm_format { CM_FORMAT_AUTO, CM_FORMAT_RGB, CM_FORMAT_PALETTE } cm_format_t;

/* BigTIFF outputs: when they could pass 4 GiB (auto), always, or never (refused when they
 * could). */
typedef enum cm_bigtiff { CM_BIGTIFF_AUTO, CM_BIGTIFF_ALWAYS, CM_BIGTIFF_NEVER } cm_bigtiff_t;

/* What the file-level functions do beyond the engine's parameters. */
typedef struct cm_options {
    /* k, seed, threads, memory budget, algorithm, steps, progress callback, cancel flag...:
     * as for cm_fit and cm_remap. With init_path, k 0 takes the file's number of centroids. */
    cm_params_t params;
    /* TIFF COMPRESSION_* code of the output (cm_compression_parse turns "deflate" into one),
     * or -1: the input's, or deflate when the input's is lossy or cannot be written. */
    int compression;
    /* cm_apply_file: also write the label map here (one band: uint8 when k fits, else uint16),
     * or NULL. (cm_run_file and cm_apply_files name label maps per output.) */
    const char *labels_path;
    /* cm_fit_files: also write the model's palette here (cm_palette_save), or NULL; grey and
     * RGB images only, CM_EUSAGE before any work otherwise. (cm_run_file names palettes per
     * output.) */
    const char *palette_path;
    /* Samples equal to nodata mark pixels outside the data (else the input's GDAL_NODATA): a
     * pixel whose colour samples all equal it, as GDAL and rasterio read masks, or with
     * nodata_any one with any colour sample equal to it. */
    bool has_nodata, nodata_any;
    double nodata;
    /* Output tiles of tile x tile pixels, a multiple of 16 from 16 to 4096 (512). */
    int64_t tile;
    /* Where spill stores of chunks go; NULL: the output's directory (for a fit, the model's,
     * else "."). */
    const char *scratch_dir;
    cm_format_t format;
    cm_bigtiff_t bigtiff;
    /* Reduced levels of TIFF outputs (image and label map), each half the one before, made in
     * the remap pass: 0 none, N that many, -1 until a level fits in one tile. */
    int overviews;
    /* TIFF outputs in the Cloud Optimized GeoTIFF layout (GDAL's COG driver's): directories
     * first, then the levels' tiles, smallest first, then the image's. */
    bool cog;
    /* cm_apply_files: write outputs that exist already (else they are skipped). */
    bool overwrite;
    /* cm_apply_files: do only part shard_index (from 0) of shard_count parts of the jobs, so
     * that separate processes given the same jobs, each another part, do every job once and
     * together write what one call doing every job writes. The parts are of about equal bytes
     * of input: the inputs taken largest first (of equal sizes, the earlier job first), each
     * to the part of the fewest bytes so far (of equal bytes, the lowest part); an input that
     * cannot be stat'ed counts 0 bytes. They depend on the list of jobs and the sizes of their
     * inputs alone, never on threads. 0 or 1 part (the default): every job. */
    int shard_index, shard_count;
    /* Start the fit from the centroids in this JSON file (a model, {"colors": [[r, g, b],
     * ...]} or a list of rows of d numbers, in sample units), or NULL. */
    const char *init_path;
    /* cm_run_file: also write the summary of every output here, or NULL: as JSON (k, inertia,
     * counts, paths, chunk reads) when the path ends in .json, as an SVG picture of the mean
     * squared error against k, with each k's colours, when it ends in .svg (in any case); any
     * other path is refused (CM_EUSAGE) before any work. */
    const char *summary_path;
    /* Also write every task's times here as Chrome trace events (cm_trace_write_json), and
     * the task graphs in DOT form (cm_graph_write_dot) to graph_path; NULL: not. Both are
     * written whether the work succeeds or not. A trace of the caller's in params.trace is
     * the one written. */
    const char *trace_path, *graph_path;
    /* Called with each warning (k lowered to the pixels there are, an input's compression that
     * cannot be written, a lossy output): its message, and what it is about (cm_ctx_t.about),
     * from any thread; NULL: warnings are dropped. Its code is CM_OK, but for a failure that
     * came after the one returned (a trace that could not be written after a failed run). */
    void (*warn)(void *user, const cm_ctx_t *warning);
    /* Called by cm_run_file, cm_fit_files and cm_info_file with each input once it is open and
     * checked, before its pixels are read (and before a file of huge strips is streamed into a
     * spill store), from the calling thread; NULL: not. */
    void (*opened)(void *user, const char *path, const cm_image_info_t *in);
    void *user; /* passed to warn and opened */
} cm_options_t;

/* Defaults for every field: cm_params_default, compression -1, no label map, nodata from the
 * input (all colour samples equal to it mark a pixel), tiles of 512, format and BigTIFF auto, no
 * overwriting, every job (no shards), no files of centroids, summary, trace or graph, no
 * callbacks. */
void cm_options_default(cm_options_t *o);

/* ---- one input, fitted and recoloured: run ---- */

/* One k of cm_run_file: what to write for it and, once cm_run_file returns 0, its model. */
typedef struct cm_run_output {
    int k;              /* centroids asked for; 0: o->params.k (or init_path's number) */
    const char *out;    /* the recoloured image */
    const char *labels; /* its label map (uint8 when k fits, else uint16), or NULL */
    const char *model;  /* its model as JSON (the schema of cm_model_save), or NULL */
    /* its palette (cm_palette_save: the format by the extension), or NULL; grey and RGB
     * images only (1 or 3 colour features), CM_EUSAGE before any work otherwise */
    const char *palette;
    /* A small PNG of the image (its longest side 1024 at most), or NULL: the coarsest of its
     * reduced levels that is large enough, sampled at the preview pixels' centres. */
    const char *preview;
    /* Filled in: the model, with the counts and inertia of the whole image (its k may be lower
     * than asked: the image's pixels that take part, with a warning). The caller frees it with
     * cm_model_free; NULL after a failure. */
    cm_model_t *fitted;
} cm_run_output_t;

/* What a run did, for reports. */
typedef struct cm_run_report {
    cm_model_meta_t meta;    /* what the models fit: the input's bands, alpha, sample type */
    int64_t width, height;   /* of the input */
    int64_t chunks;          /* in its grid */
    int64_t fit_chunks_read; /* chunks the sample and the fits decoded from the file */
    int64_t chunks_read;     /* chunks the remap pass decoded from the file */
    int64_t chunks_reused;   /* chunks it took as the fit left them (read + reused = chunks) */
    double fit_seconds;      /* from the start to the fitted models (opening included) */
    double remap_seconds;    /* from the fitted models to the committed outputs */
} cm_run_report_t;

/* Fits each outs[i].k colours on the TIFF at in_path and writes, in ONE pass over it, every
 * output: the image with every pixel replaced by its nearest centroid (outs[i].out), and its
 * label map and model when named; and the summary (o->summary_path), trace and graphs (o's).
 * Every k is fitted on one sample, read once: the sample depends on the seed, never on k, so
 * each model is the one a run with that k alone makes. k above the image's pixels, or above
 * those that take part (alpha 0, nodata and non-finite pixels do not), is lowered to them with
 * a warning. Outputs appear only when every one of them is complete: on failure nothing is
 * left at any of their paths. n_outs: 1 to 16 different k (CM_EUSAGE otherwise; with
 * o->init_path, one). report (may be NULL) receives the run's figures. Deterministic: the same
 * file, seed and options give the same bytes whatever the number of threads. When only the
 * trace or the graphs could not be written, the outputs stay, the models and report are filled
 * in, and that failure is returned. */
int cm_run_file(const char *in_path, cm_run_output_t *outs, int n_outs, const cm_options_t *o,
                cm_run_report_t *report, cm_ctx_t *ctx);

/* ---- fit on files, apply to files ---- */

/* Fits o->params.k colours on a sample drawn from the n_in TIFFs alike (every valid pixel has
 * the same chance to be in it, so each file weighs by its number of valid pixels), lowering k
 * with a warning as cm_run_file does, and writes the model to model_path when it is not NULL.
 * The inputs must agree in bands, alpha band and sample type (CM_EINPUT naming the first that
 * does not); several inputs take the minibatch algorithm only (auto means it). *out (may be
 * NULL when not wanted) receives the model (free it with cm_model_free), meta (may be NULL)
 * what it fits. Each input is opened once per thread: with a lower limit of open files, fewer
 * threads, with a warning (see cm_fit_files_descriptors). Deterministic, as cm_run_file. */
int cm_fit_files(const char *const *in_paths, int n_in, const char *model_path,
                 const cm_options_t *o, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx);

/* cm_fit_files on one file, with no model file. */
int cm_fit_file(const char *in_path, const cm_options_t *o, cm_model_t **out, cm_model_meta_t *meta,
                cm_ctx_t *ctx);

/* The open files cm_fit_files would like for n_in inputs with n_threads threads (<= 0: one
 * per core): a caller may raise its RLIMIT_NOFILE towards it first. */
int64_t cm_fit_files_descriptors(int n_in, int n_threads);

/* Writes out_path: the TIFF at in_path with every pixel replaced by its nearest centroid of
 * model (and the label map at o->labels_path when set). Output has the input's size, bands,
 * sample type and meaningful tags, and appears only when complete: on failure nothing is left
 * at out_path or labels_path. Updates model->counts, inertia and n_pixels with the figures of
 * this image. When meta is not NULL the image must have its bands, alpha band and sample type
 * (CM_EINPUT otherwise); without it only the number of features is checked. */
int cm_apply_file(cm_model_t *model, const cm_model_meta_t *meta, const char *in_path,
                  const char *out_path, const cm_options_t *o, cm_ctx_t *ctx);

typedef enum cm_file_state {
    CM_FILE_TODO,    /* not reached (the batch was cancelled) */
    CM_FILE_SKIPPED, /* its outputs exist, and o->overwrite is false */
    CM_FILE_WRITTEN,
    CM_FILE_FAILED,
    CM_FILE_OTHER_SHARD /* in another part than o->shard_index: not this call's to do */
} cm_file_state_t;

/* One input of cm_apply_files, its outputs, and (once it returns) what became of it. */
typedef struct cm_file_job {
    const char *in, *out;
    const char *labels; /* its label map, or NULL */
    /* outcome */
    cm_file_state_t state;
    int rc;                /* 0, or the CM_E* code of its failure */
    cm_ctx_t why;          /* the failure: its message names the file */
    int64_t width, height; /* of a file written */
    double mse;            /* its mean squared error to the centroids (the model's units) */
} cm_file_job_t;

/* Applies model to n_jobs inputs, each written as cm_apply_file writes one, in ONE remap pass
 * (cm_remap_batch): each input is a sub-graph that overlaps the others within o's threads and
 * memory budget. With o->shard_count > 1, only the jobs of part o->shard_index are done (an
 * input that cannot be stat'ed fails in its part, as it would in one call); the others are
 * CM_FILE_OTHER_SHARD at once. Outputs that exist already (with their label map) are complete
 * and are skipped unless o->overwrite. An input that fails (a bad file, one the model does not
 * fit, chunks that alone need more than the budget, a write error) is recorded in its job and
 * the others go on. done (may be NULL) is called once for every job of the part when it ends
 * (written, skipped or failed), from any thread. Returns 0 once every job has its outcome, or
 * the failure that stopped the batch (CM_ECANCELED after a cancel: the jobs not done stay
 * CM_FILE_TODO or are CM_FILE_FAILED with it), or, every job having its outcome, the failure
 * to write o->trace_path.
 * Resources: at most threads + 1 inputs are open at once, each once per thread (fewer inputs,
 * or fewer threads with a warning, under a lower limit of open files; see
 * cm_apply_files_descriptors). The budget holds the chunks in flight; beyond it, each open
 * input has libtiff's buffers (and an input stored as one huge strip is decoded into a spill
 * store as it opens), and the plan of the graph takes about 200 bytes per chunk of all the
 * inputs. */
int cm_apply_files(const cm_model_t *model, const cm_model_meta_t *meta, cm_file_job_t *jobs,
                   int n_jobs, const cm_options_t *o,
                   void (*done)(void *user, const cm_file_job_t *job), void *user, cm_ctx_t *ctx);

/* The open files cm_apply_files would like with n_threads threads (<= 0: one per core): a
 * caller may raise its RLIMIT_NOFILE towards it first. With a lower limit the batch keeps
 * fewer files open at once, or uses fewer threads, and gives the same files. */
int64_t cm_apply_files_descriptors(int n_threads);

/* ---- models and files ---- */

/* Writes a model as JSON (the schema of `chunkmeans fit -o`) to path, atomically. meta says
 * which images it fits (from cm_fit_file or cm_model_load). */
int cm_model_save(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                  cm_ctx_t *ctx);

/* Reads a model JSON file (from cm_model_save, `chunkmeans fit` or `run --model-out`),
 * checking every field: CM_EINPUT naming the file otherwise. The caller frees *out with
 * cm_model_free; meta (may be NULL) receives what it fits. */
int cm_model_load(const char *path, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx);

/* ---- the palette found ---- */

/* One colour of a model's palette. */
typedef struct cm_palette_color {
    int label;      /* its centroid's index in the model: its value in a label map */
    uint8_t rgb[3]; /* the centroid as 8-bit samples (grey: R = G = B); see cm_palette_make */
    int64_t count;  /* the pixels it took: the model's count */
    double share;   /* count / the sum of the counts (0 when that is 0) */
} cm_palette_color_t;

/* A model's colours as a palette, in the order people read one: largest count first, of equal
 * counts the lower label first. */
typedef struct cm_palette {
    int k;
    int64_t total; /* the sum of the counts (INT64_MAX if it would pass it) */
    /* The model has 1 or 3 colour features (grey or RGB), so that rgb is its colours; else rgb
     * is 0, and the palette cannot be saved. */
    bool has_rgb;
    cm_palette_color_t *colors; /* k of them */
} cm_palette_t;

/* The palette of model m, fitted on samples of type stype (cm_model_meta_t.stype). The 8-bit
 * colours are the centroids (in sample units, whatever the model's colour space) scaled from
 * the sample type's range and rounded, then clamped to 0..255: uint8 as they are, uint16 /
 * 257, float32 0..1 (as colour space lab reads floats) x 255, int16 0..32767 x 255 / 32767. A
 * grey centroid gives R = G = B. The counts are the model's: after cm_run_file or
 * cm_apply_file those of every pixel that took part, after a fit those of the fit's last pass
 * (the sample, or every pixel with the exact algorithms). The caller frees *out with
 * cm_palette_free. CM_ENOMEM. */
int cm_palette_make(const cm_model_t *m, cm_stype_t stype, cm_palette_t **out, cm_ctx_t *ctx);

/* Frees a palette; accepts NULL. */
void cm_palette_free(cm_palette_t *p);

/* The line of a colour in the text palette and in the command's reports: "#rrggbb count
 * percent", the percent of the sum of the counts with two decimals ("#3d342d 4252 31.42%").
 * size: CM_PALETTE_LINE_MAX is enough. */
enum { CM_PALETTE_LINE_MAX = 48 };
void cm_palette_line(const cm_palette_color_t *c, char *buf, size_t size);

/* Palette files, by their extension in any case: .gpl a GIMP palette ("GIMP Palette", Name,
 * Columns, comments, then a line "R G B<TAB>#rrggbb percent" per colour); .txt or .hex the
 * lines of cm_palette_line, one per colour; .png a swatch strip (8-bit RGB, 100 pixels high),
 * each colour a band of columns as wide as its share (cm_palette_widths). */
typedef enum cm_palette_format {
    CM_PALETTE_GPL,
    CM_PALETTE_HEX,
    CM_PALETTE_PNG
} cm_palette_format_t;

/* The format of a palette file by path's extension: CM_EUSAGE naming path and the extensions
 * accepted for any other. */
int cm_palette_format_of_path(const char *path, cm_palette_format_t *out, cm_ctx_t *ctx);

/* Whether a palette of a model of `features` colour features can be written to path: its
 * extension (cm_palette_format_of_path), and grey or RGB (1 or 3 features; CM_EUSAGE naming
 * path otherwise). For planning, before any work. */
int cm_palette_check(const char *path, int features, cm_ctx_t *ctx);

/* The swatch strip of a .png palette: CM_PALETTE_SWATCH_WIDTH columns (or one per colour with
 * pixels, when more colours have them), CM_PALETTE_SWATCH_HEIGHT rows. */
enum { CM_PALETTE_SWATCH_WIDTH = 1000, CM_PALETTE_SWATCH_HEIGHT = 100 };
int64_t cm_palette_swatch_width(const cm_palette_t *p);

/* The columns of each colour (widths[i] for p->colors[i], p->k entries, p as cm_palette_make
 * orders it) in a strip of width columns: the largest-remainder rounding of width x share (of
 * equal remainders, the earlier colour's first), so that they sum to width exactly and each is
 * within one column of width x share. Every colour with pixels is seen: one whose share is less
 * than a column gets one, smallest first, and the others share the columns left in the same way
 * (only then may a colour be more than a column from width x share: by about a column for each
 * such small colour). A colour without pixels gets none; a palette whose counts are all 0 is
 * drawn as if every colour had one pixel. CM_EUSAGE when width is less than the colours with
 * pixels (all k when no colour has any) or p is not in order. */
int cm_palette_widths(const cm_palette_t *p, int64_t width, int64_t *widths, cm_ctx_t *ctx);

/* Writes palette p to path, atomically (nothing appears at path on failure), in the format of
 * its extension; name (may be NULL: path's) names it in a GIMP palette. CM_EUSAGE for another
 * extension or a palette without rgb colours; CM_EIO. */
int cm_palette_save(const cm_palette_t *p, const char *path, const char *name, cm_ctx_t *ctx);

/* Describes the TIFF at path, read in chunks of o->tile (*info: its size, bands, layout,
 * georeferencing, nodata...; the strings in it are static), and when n_colors is not NULL
 * counts its distinct colours exactly, streaming it with o's threads, budget, progress and
 * cancel flag (8-bit images of up to 3 colour bands; CM_EINPUT otherwise). */
int cm_info_file(const char *path, const cm_options_t *o, cm_image_info_t *info, int64_t *n_colors,
                 cm_ctx_t *ctx);

#endif
