/* chunkmeans: k-means colour filtering of TIFF images larger than memory. The one header a
 * program includes (`#include <chunkmeans.h>`, flags from `pkg-config --cflags chunkmeans`);
 * the headers it pulls in are installed next to it and are part of the same API.
 *
 * Two levels:
 * - whole files: cm_fit_file, cm_apply_file and cm_run_file do what `chunkmeans fit`, `apply`
 *   and `run` do for one image (read a TIFF, fit, write the recoloured TIFF atomically), and
 *   cm_model_load / cm_model_save read and write model JSON files;
 * - chunks: cm_image_open (cm_io.h) and cm_fit / cm_remap (cm_engine.h) over a cm_source_t and
 *   a cm_sink_t of the caller's, for pixels that do not come from or go to a TIFF file.
 *
 * Errors: every function returns 0 or a negative CM_E* code (cm_base.h); the message, naming
 * the file and the reason, is in the cm_ctx_t the caller passed (cm_ctx_init it first; the
 * first failure recorded wins). cm_strerror gives a code's short name. */
#ifndef CHUNKMEANS_H
#define CHUNKMEANS_H

#include <stdbool.h>
#include <stdint.h>

#include "cm_version.h"
#include "cm_base.h"
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
 * or the labels with the centres as a TIFF colour map (palette: grey or RGB input of 8 or 16
 * bits, k up to 256); auto: palette for a palette input, else rgb. */
typedef enum cm_format { CM_FORMAT_AUTO, CM_FORMAT_RGB, CM_FORMAT_PALETTE } cm_format_t;

/* BigTIFF outputs: when they could pass 4 GiB (auto), always, or never (refused when they
 * could). */
typedef enum cm_bigtiff { CM_BIGTIFF_AUTO, CM_BIGTIFF_ALWAYS, CM_BIGTIFF_NEVER } cm_bigtiff_t;

/* What the file-level functions do beyond the engine's parameters. */
typedef struct cm_options {
    /* k, seed, threads, memory budget, algorithm, steps, progress callback, cancel flag...:
     * as for cm_fit and cm_remap. */
    cm_params_t params;
    /* TIFF COMPRESSION_* code of the output (cm_compression_parse turns "deflate" into one),
     * or -1: the input's, or deflate when the input's is lossy or cannot be written. */
    int compression;
    /* Also write the label map here (one band: uint8 when k fits, else uint16), or NULL. */
    const char *labels_path;
    /* Samples equal to nodata mark pixels outside the data (else the input's GDAL_NODATA). */
    bool has_nodata;
    double nodata;
    /* Output tiles of tile x tile pixels, a multiple of 16 from 16 to 4096 (512). */
    int64_t tile;
    /* Where spill stores of chunks go; NULL: the output's directory (for a fit, "."). */
    const char *scratch_dir;
    cm_format_t format;
    cm_bigtiff_t bigtiff;
    /* cm_apply_files: write outputs that exist already (else they are skipped). */
    bool overwrite;
    /* Called with each warning (an input's compression that cannot be written, a lossy
     * output): its message, and what it is about (cm_ctx_t.about), from any thread; NULL:
     * warnings are dropped. */
    void (*warn)(void *user, const cm_ctx_t *warning);
    void *warn_user;
} cm_options_t;

/* Defaults for every field: cm_params_default, compression -1, no label map, nodata from the
 * input, tiles of 512, format and BigTIFF auto, no overwriting, no warnings. */
void cm_options_default(cm_options_t *o);

/* Opens the TIFF at in_path and fits o->params.k colours on it (k is lowered to the number of
 * pixels when the image has fewer). The caller frees *out with cm_model_free. When meta is not
 * NULL it receives what the model fits (bands, alpha band, sample type, version), for
 * cm_model_save. Deterministic: the same file, seed and options give the same model whatever
 * the number of threads. Thread-safe for distinct contexts. */
int cm_fit_file(const char *in_path, const cm_options_t *o, cm_model_t **out, cm_model_meta_t *meta,
                cm_ctx_t *ctx);

/* Writes out_path: the TIFF at in_path with every pixel replaced by its nearest centre of
 * model (and the label map at o->labels_path when set). Output has the input's size, bands,
 * sample type and meaningful tags, and appears only when complete: on failure nothing is left
 * at out_path or labels_path. Updates model->counts, inertia and n_pixels with the figures of
 * this image. When meta is not NULL the image must have its bands, alpha band and sample type
 * (CM_EINPUT otherwise); without it only the number of features is checked. */
int cm_apply_file(cm_model_t *model, const cm_model_meta_t *meta, const char *in_path,
                  const char *out_path, const cm_options_t *o, cm_ctx_t *ctx);

/* cm_fit_file then cm_apply_file on one opening of the image, as `chunkmeans run` does: the
 * same pixels as the two calls. *out (may be NULL when not wanted) receives the model, with
 * counts and inertia of the whole image; meta as for cm_fit_file. */
int cm_run_file(const char *in_path, const char *out_path, const cm_options_t *o, cm_model_t **out,
                cm_model_meta_t *meta, cm_ctx_t *ctx);

/* Writes a model as JSON (the schema of `chunkmeans fit -o`) to path, atomically. meta says
 * which images it fits (from cm_fit_file or cm_model_load). */
int cm_model_save(const cm_model_t *m, const cm_model_meta_t *meta, const char *path,
                  cm_ctx_t *ctx);

/* Reads a model JSON file (from cm_model_save, `chunkmeans fit` or `run --model-out`),
 * checking every field: CM_EINPUT naming the file otherwise. The caller frees *out with
 * cm_model_free; meta (may be NULL) receives what it fits. */
int cm_model_load(const char *path, cm_model_t **out, cm_model_meta_t *meta, cm_ctx_t *ctx);

/* ---- batches ---- */

typedef enum cm_file_state {
    CM_FILE_TODO,    /* not reached (the batch was cancelled) */
    CM_FILE_SKIPPED, /* its outputs exist, and o->overwrite is false */
    CM_FILE_WRITTEN,
    CM_FILE_FAILED
} cm_file_state_t;

/* One input of cm_apply_files, its outputs, and (once it returns) what became of it. */
typedef struct cm_file_job {
    const char *in, *out;
    const char *labels; /* its label map, or NULL */
    /* outcome */
    cm_file_state_t state;
    int rc;       /* 0, or the CM_E* code of its failure */
    cm_ctx_t why; /* the failure: its message names the file */
    int64_t width, height;    /* of a file written */
    double mse;               /* its mean squared error to the centres (the model's units) */
} cm_file_job_t;

/* Applies model to n_jobs inputs, each written as cm_apply_file writes one, in ONE remap pass
 * (cm_remap_batch): each input is a sub-graph that overlaps the others within o's threads and
 * memory budget. Outputs that exist already (with their label map) are complete and are
 * skipped unless o->overwrite. An input that fails (a bad file, one the model does not fit,
 * chunks that alone need more than the budget, a write error) is recorded in its job and the
 * others go on. done (may be NULL) is called once for every job when it ends (written,
 * skipped or failed), from any thread. Returns 0 once every job has its outcome, or the
 * failure that stopped the batch (CM_ECANCELED after a cancel: the jobs not done stay
 * CM_FILE_TODO or are CM_FILE_FAILED with it).
 * Resources: at most threads + 1 inputs are open at once, each once per thread (fewer inputs,
 * or fewer threads with a warning, under a lower limit of open files; see
 * cm_apply_files_descriptors). The budget holds the chunks in flight; beyond it, each open
 * input has libtiff's buffers (and an input stored as one huge strip is decoded into a spill
 * store as it opens), and the plan of the graph takes about 200 bytes per chunk of all the
 * inputs. */
int cm_apply_files(const cm_model_t *model, const cm_model_meta_t *meta, cm_file_job_t *jobs,
                   int n_jobs, const cm_options_t *o,
                   void (*done)(void *user, const cm_file_job_t *job), void *user, cm_ctx_t *ctx);

/* Where a remap pass writes TIFFs: out receives the recoloured pixels (or the labels, when
 * out_takes_labels: a palette image), labels (or NULL) the label map; grid is the source's. */
typedef struct cm_writers_sink {
    const cm_grid_t *grid;
    cm_writer_t *out, *labels;
    bool out_takes_labels;
} cm_writers_sink_t;

/* The sink for cm_remap over those writers: tiles are compressed in the workers and written
 * in chunk order. state must stay in place until the remap returns. */
cm_sink_t cm_writers_sink(const cm_writers_sink_t *state);

/* The open files cm_apply_files would like with n_threads threads (<= 0: one per core): a
 * caller may raise its RLIMIT_NOFILE towards it first. With a lower limit the batch keeps
 * fewer files open at once, or uses fewer threads, and gives the same files. */
int64_t cm_apply_files_descriptors(int n_threads);

/* ---- the outputs of one image ----
 * What cm_apply_file writes, in steps, for callers that remap with several models at once or
 * need the writers between planning and writing. */

/* The recoloured image and label map written for one input. */
typedef struct cm_outputs {
    const cm_image_info_t *in;
    const char *out, *labels;
    cm_bigtiff_t bigtiff;
    cm_writer_spec_t spec, lspec;
    bool palette, maskable; /* palette: the output's pixels are the labels */
    int label_bits;
    uint32_t masked;
    cm_writer_t *w_out, *w_labels;
    cm_writers_sink_t sink; /* what the remap's sink writes through */
} cm_outputs_t;

/* Chooses compression (the input's, or deflate when it is lossy or cannot be written, with a
 * warning), format and BigTIFF for writing the image img (read through src) recoloured with k
 * colours to out, and its label map to labels (NULL: none). CM_EUSAGE, naming out, for
 * options that cannot hold it. Opens nothing. */
int cm_outputs_plan(cm_outputs_t *w, const cm_options_t *o, cm_image_t *img, const cm_source_t *src,
                    int k, const char *out, const char *labels, cm_ctx_t *ctx);
/* Opens the writers (their temporary files): the image's unless it is a palette output, whose
 * colour map waits for the model, and the label map's. CM_EIO when a path is a directory. */
int cm_outputs_open(cm_outputs_t *w, cm_ctx_t *ctx);
/* Plans for a lower k (fewer pixels than centres), opening the label map again if its sample
 * type changes. */
int cm_outputs_set_k(cm_outputs_t *w, const cm_source_t *src, int k, cm_ctx_t *ctx);
/* The sink of the remap pass with model m (opens a palette output's writer now). w must stay
 * in place until the remap returns. */
int cm_outputs_sink(cm_outputs_t *w, const cm_model_t *m, cm_sink_t *sink, cm_ctx_t *ctx);
/* Renames the label map, then the image, into place; when the image fails the label map is
 * removed again. Frees the writers either way. */
int cm_outputs_commit(cm_outputs_t *w, cm_ctx_t *ctx);
/* Drops whatever is not committed; safe to call twice. */
void cm_outputs_abort(cm_outputs_t *w);

#endif
