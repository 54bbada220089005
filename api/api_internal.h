/* What the file-level functions of the API share; not exported. */
#ifndef CM_API_INTERNAL_H
#define CM_API_INTERNAL_H

#include <stdio.h>

#include "base_internal.h"
#include "chunkmeans.h"
#include "engine_private.h"

/* ---- options (file_options.c) ---- */

/* o with the defaults that depend on the machine resolved: the threads. */
cm_options_t cm__resolved(const cm_options_t *o);

/* Tells o->warn (when set) a warning about a setting (about.setting CM_SETTING_NONE: none). */
void cm__warn(const cm_options_t *o, cm_about_t about, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The directory of path ("." when it has none, "/" for the root), into buf of size bytes. */
void cm__dir_of(const char *path, char *buf, size_t size);

/* CM_EIO when path (may be NULL) names a directory: the rename at the very end would fail. */
int cm__check_not_dir(const char *path, cm_ctx_t *ctx);

/* CM_EIO, naming path, when no file can be made next to it (its directory is missing or not
 * writable): found before any work rather than after it. path may be NULL. */
int cm__check_writable(const char *path, cm_ctx_t *ctx);

/* When ctx holds a bad input whose message does not name path, puts "path: " before it. */
void cm__name_input(cm_ctx_t *ctx, const char *path);

/* ---- inputs (input.c) ---- */

/* An input of the file-level functions: the image, the source that reads it (with o's nodata,
 * else the image's), where its spill stores go, and its chunk reads counted. It must stay in
 * place while open: the source points at it. */
typedef struct cm__input {
    const char *path;
    cm_image_t *img;
    const cm_image_info_t *info;
    cm_source_t src;
    char scratch_dir[4096];
    bool prepared;
    int64_t reads;  /* atomic */
    int64_t reused; /* atomic: reads served from the kept chunks */
    /* Decoded chunks kept from one pass for the next (cm__input_hold): per chunk, or NULL. */
    uint8_t **kept;
    size_t kept_bytes, kept_cap; /* atomic; what hold allows */
    bool holding;                /* keep what is read; else a kept chunk is served once */
} cm__input_t;

/* Opens path for n_workers threads (the options' when <= 0) with the options' tiles and cancel
 * flag; spill stores go to scratch_dir (o->scratch_dir wins when set). CM_EINPUT naming the file
 * when it cannot be read; CM_EUSAGE for a bad tile side. cm__input_close in any case. */
int cm__input_open(cm__input_t *in, const char *path, const cm_options_t *o, int n_workers,
                   const char *scratch_dir, cm_ctx_t *ctx);

/* Makes the input ready for reading its pixels, once: tells o->opened, then streams a file of
 * huge strips into its spill store. */
int cm__input_prepare(cm__input_t *in, const cm_options_t *o, cm_ctx_t *ctx);

/* The chunk reads of the input since the last call, and of those the ones served from kept
 * chunks (cm__input_hold). */
int64_t cm__input_take_reads(cm__input_t *in);
int64_t cm__input_take_reused(cm__input_t *in);

/* From now on, keeps the chunks read, decoded, up to bytes in all, and serves them again from
 * memory (the fit's sample, then the remap, read many chunks twice); nothing is kept when the
 * index cannot be had. cm__input_release ends the keeping: each kept chunk is then served once
 * more and freed. cm__input_close frees what is left. */
void cm__input_hold(cm__input_t *in, size_t bytes);
void cm__input_release(cm__input_t *in);
/* The bytes held by kept chunks now. */
size_t cm__input_kept_bytes(const cm__input_t *in);

/* Closes the image; safe on an input that failed to open, and twice. */
void cm__input_close(cm__input_t *in);

/* CM_EUSAGE naming the input when colour space cs cannot be used on it: lab needs an RGB
 * image (3 colour bands of uint8, uint16 or float32, plus an optional alpha). */
int cm__input_check_colorspace(const cm__input_t *in, cm_colorspace_t cs, cm_ctx_t *ctx);

/* What a model fitted on the input fits: its bands, alpha band and sample type. */
cm_model_meta_t cm__meta_of(const cm_image_info_t *in);

/* "3 bands of uint8", "4 bands of uint16 with alpha": what a model must agree with. */
void cm__describe_pixels(const cm_image_info_t *in, char *buf, size_t size);

/* The source of an image as o reads it: its grid, and o's nodata, else the image's. read,
 * keep and self are left for the caller. */
cm_source_t cm__source_of(const cm_options_t *o, const cm_image_info_t *in);

/* CM_EINPUT naming path when model (and meta, when not NULL: the images it was fitted on)
 * does not fit the image in: other bands, alpha band or sample type, or other features. */
int cm__model_fits(const cm_model_t *model, const cm_model_meta_t *meta, const char *path,
                   const cm_image_info_t *in, cm_ctx_t *ctx);

/* ---- reduced levels of a TIFF output (overviews.c) ---- */

typedef struct cm__pyramid cm__pyramid_t;

/* The longest side of a preview. */
enum { CM__PREVIEW_SIDE = 1024 };
/* The number of levels of spec's image: asked (cm_options_t.overviews), or with -1 until a
 * level fits in one tile. */
int cm__overview_levels(const cm_writer_spec_t *spec, int asked);
/* The most bytes the levels hold at once (labels of label_bits, and pixels of spec unless
 * labels_only). */
size_t cm__pyramid_bytes(const cm_writer_spec_t *spec, int levels, int label_bits,
                         bool labels_only);
/* Halves w x h pixels of pb bytes with their labels of lb bytes (1 or 2), packed at w, into
 * ceil(w/2) x ceil(h/2): each the pixel of its 2x2 block's most frequent label, ties to the
 * lower label, then to the first in raster order. */
void cm__halve(const uint8_t *px, const uint8_t *lab, size_t pb, size_t lb, int64_t w, int64_t h,
               uint8_t *out_px, uint8_t *out_lab);
/* The levels of the output at path (spec: its pixels; labels of label_bits), fed with the
 * chunks of grid: the first keep are the output's, each keeping its encoded tiles in a scratch
 * file beside path; more are made when a preview (of preview_side, 0: none) needs them. A pixel
 * is its label when px_is_label (a label map, a palette image); colors (k pixels, borrowed)
 * gives the pixel of each label when every pixel has its centre's colour (no mask, no alpha);
 * the levels then hold labels alone. */
int cm__pyramid_open(const char *path, const cm_writer_spec_t *spec, int keep, int label_bits,
                     bool px_is_label, const uint8_t *colors, int64_t preview_side,
                     const cm_grid_t *grid, cm__pyramid_t **out, cm_ctx_t *ctx);
/* The level of spec's image a preview whose longest side is side (0: none) is sampled from. */
int cm__preview_level(const cm_writer_spec_t *spec, int64_t side);
/* Writes the preview the pyramid sampled (opened with a preview_side) as a PNG at path, with
 * the pixels of spec (its colour map, for a palette image). */
int cm__pyramid_preview(const cm__pyramid_t *p, const char *path, const cm_writer_spec_t *spec,
                        cm_ctx_t *ctx);
/* A remapped chunk's rectangle of the full image, its output pixels and labels (packed at w):
 * from any worker, concurrently. */
int cm__pyramid_add(cm__pyramid_t *p, int64_t x, int64_t y, int64_t w, int64_t h, const uint8_t *px,
                    const uint8_t *lab, cm_ctx_t *ctx);
/* After the writer put chunk (in chunk order, one thread): stores the tiles it completed. */
int cm__pyramid_put(cm__pyramid_t *p, int64_t chunk, cm_ctx_t *ctx);
/* After the output's last tile: its levels, written into it (cm_writer_add_level). */
int cm__pyramid_write(const cm__pyramid_t *p, cm_writer_t *wr, cm_ctx_t *ctx);
/* Commits wr as a Cloud Optimized GeoTIFF with p's levels (p may be NULL: none). */
int cm__pyramid_commit_cog(const cm__pyramid_t *p, cm_writer_t *wr, cm_ctx_t *ctx);
void cm__pyramid_free(cm__pyramid_t *p);

/* ---- the outputs of one image (outputs.c, writers_sink.c) ---- */

/* Where a remap pass writes TIFFs: out receives the recoloured pixels (or the labels, when
 * out_takes_labels: a palette image), labels (or NULL) the label map; grid is the source's. */
typedef struct cm__writers_sink {
    const cm_grid_t *grid;
    cm_writer_t *out, *labels;
    cm__pyramid_t *out_levels, *label_levels; /* their reduced levels, or NULL */
    bool out_takes_labels;
} cm__writers_sink_t;

/* The sink for cm_remap over those writers: tiles are compressed in the workers and written
 * in chunk order. state must stay in place until the remap returns. */
cm_sink_t cm__writers_sink(const cm__writers_sink_t *state);

/* The recoloured image and label map written for one input. */
typedef struct cm__outputs {
    const cm_image_info_t *in;
    const char *out, *labels;
    cm_bigtiff_t bigtiff;
    cm_writer_spec_t spec, lspec;
    cm_file_format_t format, label_format; /* by the names' extensions */
    bool palette, maskable;                /* palette: the output's pixels are the labels */
    int label_bits;
    uint32_t masked;
    cm_writer_t *w_out, *w_labels;
    int levels;             /* reduced levels of each TIFF output */
    bool cog;               /* TIFF outputs in the COG layout */
    const char *preview;    /* a small PNG of the image, or NULL (set by the caller after plan) */
    cm_writer_spec_t pspec; /* a palette image's (with cmap), for its preview */
    uint8_t *colors;        /* the k centres' pixels, when every pixel has its centre's */
    uint16_t cmap[3 * 256];
    cm__pyramid_t *out_levels, *label_levels;
    cm__writers_sink_t sink; /* what the remap's sink writes through */
    /* A rank other than 0 in a pass shared by a job's ranks: its writers only encode, and rank
     * 0 writes the files (set by the caller after cm__outputs_plan). */
    bool encode_only;
} cm__outputs_t;

/* Chooses the file format (by the extension of out and of labels), compression (the input's,
 * or deflate when it is lossy or cannot be written, with a warning), pixel format (a PNG is
 * colour-mapped when k <= 256, the samples are 8-bit and no pixel is masked) and BigTIFF for
 * writing the image img (read through src) recoloured with k colours to out, and its label
 * map to labels (NULL: none). CM_EUSAGE, naming out, for options or a format that cannot hold
 * it. Opens nothing. */
int cm__outputs_plan(cm__outputs_t *w, const cm_options_t *o, cm_image_t *img,
                     const cm_source_t *src, int k, const char *out, const char *labels,
                     cm_ctx_t *ctx);
/* The bytes the reduced levels of w's outputs hold at most at once. */
size_t cm__outputs_level_bytes(const cm__outputs_t *w);
/* Opens the writers (their temporary files): the image's unless it is a palette output, whose
 * colour map waits for the model, and the label map's. CM_EIO when a path is a directory. */
int cm__outputs_open(cm__outputs_t *w, cm_ctx_t *ctx);
/* Plans for a lower k (fewer pixels than centroids), opening the label map again if its
 * sample type changes. */
int cm__outputs_set_k(cm__outputs_t *w, const cm_source_t *src, int k, cm_ctx_t *ctx);
/* The sink of the remap pass with model m (opens a palette output's writer now). w must stay
 * in place until the remap returns. */
int cm__outputs_sink(cm__outputs_t *w, const cm_model_t *m, cm_sink_t *sink, cm_ctx_t *ctx);
/* Makes durable the tiles that this rank wrote where rank 0 placed them (cm_writer_put_at),
 * before rank 0 commits: a pass with write_parallel ends with this on every rank, then a
 * barrier. */
int cm__outputs_flush(cm__outputs_t *w, cm_ctx_t *ctx);
/* Renames the label map, then the image, into place; when the image fails the label map is
 * removed again. Frees the writers either way. */
int cm__outputs_commit(cm__outputs_t *w, cm_ctx_t *ctx);
/* Drops whatever is not committed; safe to call twice. */
void cm__outputs_abort(cm__outputs_t *w);

/* ---- fitting (fit_files.c, model_files.c) ---- */

/* Lowers *k, with a warning naming what, to n_px when the images hold fewer pixels. */
void cm__k_within(int *k, int64_t n_px, const char *what, const cm_options_t *o);

/* Fits p->k centroids on the sources: on sample (taken from them with p) when not NULL, which
 * fits of several k share, else on a sample of their own. When they turn out to hold fewer
 * pixels that take part than k, warns (naming what), lowers p->k to their number and fits
 * again (on the same sample: it does not depend on k). */
int cm__fit_within(const cm_source_t *srcs, int n_srcs, cm_sample_t *sample, cm_params_t *p,
                   const char *what, const cm_options_t *o, cm_model_t **out, cm_ctx_t *ctx);

/* Reads o->init_path (when set) for images of d features into *centroids (owned by the caller)
 * and p->init_centres, init_k and k. CM_EINPUT naming the file when it cannot be read or its rows
 * do not have d numbers; CM_EUSAGE when p->k is set (> 0) and differs from their number. */
int cm__init_load(const cm_options_t *o, int d, cm_params_t *p, double **centroids, cm_ctx_t *ctx);

/* Writes model m, fitted on images like meta, as JSON to path, atomically. */
int cm__model_write(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                    cm_ctx_t *ctx);

/* ---- palettes (palette.c) ---- */

/* Writes the palette of model m, fitted on images like meta, to path, atomically, in the
 * format of its extension (cm_palette_save); name names it in a GIMP palette. */
int cm__palette_write(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                      const char *name, cm_ctx_t *ctx);

/* ---- trace and graph files (dumps.c) ---- */

/* The trace and the task graphs a piece of work writes (o->trace_path, o->graph_path). */
typedef struct cm__dumps {
    const cm_options_t *o;
    cm_trace_t *own_trace; /* made here when the caller's parameters hold none */
    FILE *graph;           /* the graphs' DOT text, gathered in memory */
    char *graph_text;
    size_t graph_size;
} cm__dumps_t;

/* Sets p up to record what o asks to be written (a trace, the graphs). CM_ENOMEM. */
int cm__dumps_begin(cm__dumps_t *d, const cm_options_t *o, cm_params_t *p, cm_ctx_t *ctx);

/* Writes them, whether the work succeeded (rc 0) or not: that is when they help most; frees
 * what begin made. Returns rc, or when rc is 0 the failure of writing them (in ctx). A trace
 * that cannot be written after a failed run is told through o->warn, with its code. */
int cm__dumps_end(cm__dumps_t *d, const cm_params_t *p, int rc, cm_ctx_t *ctx);

/* ---- parts of a list of files (shard.c) ---- */

/* Splits n items of the given weights (>= 0; for files, their sizes in bytes) into parts
 * (>= 1) of about equal total weight: part_of[i] (n entries, filled in) receives item i's
 * part, from 0 to parts - 1. Greedy longest-processing-time: the items are taken heaviest
 * first (of equal weights, the lower index first), each to the part of the least total so far
 * (of equal totals, the lowest part). So every item is in exactly one part, the heaviest part
 * weighs at most the lightest plus the heaviest item, and the result depends on the weights
 * and their order alone: every process that splits the same list gets the same parts. Parts
 * beyond n stay empty. To split a subset, pass its weights and map the indices back.
 * Thread-safe (it shares nothing). CM_EUSAGE for a bad count or weight, CM_ENOMEM. */
int cm__shard_split(const int64_t *weights, int n, int parts, int *part_of, cm_ctx_t *ctx);

/* ---- the summary of a run (summary.c, summary_svg.c) ---- */

/* The formats of a summary: JSON figures, or the picture of the elbow. */
typedef enum cm__summary_format { CM__SUMMARY_JSON, CM__SUMMARY_SVG } cm__summary_format_t;

/* The format path's extension asks for, in any case: .json or .svg. CM_EUSAGE naming path for
 * any other (or none), so that a run can refuse it before any work. */
int cm__summary_format_of(const char *path, cm__summary_format_t *out, cm_ctx_t *ctx);

/* One k of a run as a summary gives it, in the order of the run's outputs. */
typedef struct cm__summary_k {
    const cm_run_output_t *out; /* its paths, and its model with the remap's counts */
    int k, k_asked;             /* fitted; asked, within the image's pixels */
    double mse;                 /* inertia per pixel that took part */
} cm__summary_k_t;

/* What a summary says: the run of in_path with p, its report, and n outputs. */
typedef struct cm__summary {
    const char *in_path;
    const cm_params_t *p;
    const cm_run_report_t *rep;
    const cm__summary_k_t *ks;
    int n;
} cm__summary_t;

/* Writes the summary of a run of in_path with its n outputs to path, atomically, in the format
 * of its extension. */
int cm__summary_write(const char *path, const char *in_path, const cm_params_t *p,
                      const cm_run_output_t *outs, const int *ks_asked, int n,
                      const cm_run_report_t *r, cm_ctx_t *ctx);

/* The summary s as SVG text (summary_svg.c): *text (its *len bytes, NUL-terminated) is the
 * caller's to free. Numbers are written in the C locale whatever the caller's. CM_ENOMEM, naming
 * path. */
int cm__summary_svg(const cm__summary_t *s, const char *path, char **text, size_t *len,
                    cm_ctx_t *ctx);

#endif
