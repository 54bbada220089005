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
} cm_options_t;

/* Defaults for every field: cm_params_default, compression -1, no label map, nodata from the
 * input, tiles of 512. */
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

#endif
