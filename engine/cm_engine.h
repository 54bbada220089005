/* k-means over an image seen as a grid of chunks: sampling, the starts (greedy k-means++),
 * mini-batch steps as scheduler tasks, and the remap pass. Never opens a file: pixels come
 * from a cm_source_t and go to a cm_sink_t that the caller provides. */
#ifndef CM_ENGINE_H
#define CM_ENGINE_H

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>

#include "cm_base.h"
#include "cm_graph.h"
#include "cm_grid.h"

/* Where the engine reads pixels. read() fills buf (at least cm_grid_chunk_bytes bytes) with
 * chunk idx, rows packed at w * bands samples. It is called concurrently from different
 * workers (never twice at once with the same worker index) and returns 0 or a CM_E* code
 * with the message in ctx. */
typedef struct cm_source {
    cm_grid_t grid;
    /* Optional: asks the source to make reading every chunk again cheap (keep them in a
     * spill store, say), before passes that do; a failure only means they will not be. */
    int (*keep)(void *self, cm_ctx_t *ctx);
    /* Pixels whose colour (non-alpha) samples all equal nodata take no part, as GDAL and
     * rasterio read a mask (nodata_any: those with any colour sample equal to it); nor do float
     * pixels with a NaN or infinite sample, nor pixels of alpha 0. */
    bool has_nodata, nodata_any;
    double nodata;
    /* The alpha band is associated (premultiplied, TIFF's EXTRASAMPLE_ASSOCALPHA): a pixel of
     * alpha a, 0 < a < max (255, 65535 or 32767 for uint8, uint16, int16; 1 for float32), takes
     * part with its colour, sample x max / a (rounded and clamped to the sample type; float:
     * sample / a), and is written as its centre colour c premultiplied again, c x a / max
     * (rounded and clamped; float: c x a). Alpha max (or more) is opaque; 0 (or less) masks. */
    bool alpha_associated;
    int (*read)(void *self, int worker, int64_t idx, uint8_t *buf, cm_ctx_t *ctx);
    void *self;
} cm_source_t;

/* Where the remap pass delivers chunks. pixels are packed like the source's, with the pixels
 * that take no part in the fit (masked) unchanged; labels (when asked for) hold one label per
 * pixel, of the width and with the masked value that cm_labels_plan gives.
 * - encode (optional) runs in the worker that remapped chunk idx, concurrently with other
 *   chunks' encodes and with put: it turns pixels and labels into what put needs (compressed
 *   tiles, say) and stores it in *encoded; pixels and labels are freed after it returns.
 * - put receives every chunk once, in chunk order, from one thread at a time: encoded (when
 *   encode is set) or pixels and labels (when not).
 *   put may be NULL: the pass only counts.
 * - discard frees an encoded chunk once put has written it, or when it will not be (the run
 *   failed).
 * - In a job of several ranks (cm_comm.h), cm_remap_many shares the chunks among the ranks and
 *   rank 0 puts them all: pack turns an encoded chunk into bytes in the rank that made it,
 *   unpack makes it again in rank 0 (from bytes that pack made). A sink without encode needs
 *   neither: its pixels and labels travel as they are. pack without data gives only what
 *   place needs.
 * - place and put_placed (optional) let every rank write its own chunks, when the params ask
 *   for it (write_parallel): rank 0 calls place, in chunk order, where it would put a chunk
 *   that another rank encoded (unpacked from pack without data): place lays the chunk out in
 *   the output and says where its pieces go, as bytes; in the rank that made the chunk,
 *   put_placed writes them there. */
typedef struct cm_sink {
    int (*encode)(void *self, int64_t idx, const uint8_t *pixels, const void *labels,
                  void **encoded, cm_ctx_t *ctx);
    int (*put)(void *self, int64_t idx, const uint8_t *pixels, const void *labels, void *encoded,
               cm_ctx_t *ctx);
    void (*discard)(void *self, void *encoded);
    int (*pack)(void *self, const void *encoded, bool data, uint8_t **bytes, size_t *n,
                cm_ctx_t *ctx);
    int (*unpack)(void *self, const uint8_t *bytes, size_t n, void **encoded, cm_ctx_t *ctx);
    int (*place)(void *self, void *encoded, uint8_t **where, size_t *n, cm_ctx_t *ctx);
    int (*put_placed)(void *self, void *encoded, const uint8_t *where, size_t n, cm_ctx_t *ctx);
    void *self;
    bool want_labels;
} cm_sink_t;

/* Progress of a stage ("sample", "fit", "remap", "count"): done and total in the stage's
 * units (chunks, or steps for "fit"). Called from worker threads, serialised. */
typedef void (*cm_stage_fn)(void *user, const char *stage, int64_t done, int64_t total);

/* The nearest-centre kernels: the scalar reference; the vector kernel (the compiler's code for
 * the baseline instruction set, SSE2 on x86-64); AVX2 where the processor has it; auto picks
 * the fastest available. All give the same labels and distances, ties included. */
typedef enum cm_kernel {
    CM_KERNEL_AUTO,
    CM_KERNEL_SCALAR,
    CM_KERNEL_SSE2,
    CM_KERNEL_AVX2
} cm_kernel_t;

typedef enum cm_scale { CM_SCALE_NONE, CM_SCALE_STANDARD } cm_scale_t;

/* How the centres are fitted from the start: mini-batch steps on the sample; exact Lloyd
 * iterations over every pixel (one pass over the image each); the same iterations over the
 * colour histogram (8-bit, up to 3 colour bands: one pass to count, then each iteration costs
 * the number of distinct colours); auto: histogram where it applies, else mini-batch. */
typedef enum cm_algorithm {
    CM_ALG_MINIBATCH,
    CM_ALG_LLOYD,
    CM_ALG_HISTOGRAM,
    CM_ALG_AUTO
} cm_algorithm_t;

/* The space colours are clustered in: the samples themselves (rgb, and every image that is
 * not RGB), or CIELAB (lab: 3 colour bands of uint8, uint16 or float32 samples taken as sRGB
 * with a D65 white, float as 0..1), where distances follow perceived differences. With lab the
 * features are L*, a*, b* (then standardised, with CM_SCALE_STANDARD); centroids stay in sample
 * units (the sRGB colour of the Lab mean, which may lie a little outside 0..max before
 * cm_model_colors_u8 or the remap clamps it). */
typedef enum cm_colorspace { CM_COLORSPACE_RGB, CM_COLORSPACE_LAB } cm_colorspace_t;

/* How the remap picks a pixel's centre: the nearest one (none), or (ordered) one of its two
 * nearest centres a and b, after moving it along b - a by an offset from an 8 x 8 Bayer
 * threshold matrix indexed by its position in the image: a pixel a fraction t of the way from
 * a to b takes b at a share t of the positions, so a region keeps its mean colour in whatever
 * direction a and b lie, and a pixel on a centre keeps it. Nothing but the pixel's position
 * and colour decides, so the output has no seams at chunk borders and does not depend on the
 * chunks or threads. Counts and inertia are those of the pixels' own features to the centres
 * they took. */
typedef enum cm_dither { CM_DITHER_NONE, CM_DITHER_ORDERED } cm_dither_t;

/* How a fit picks its k starting centres among the sample's points when none are given:
 * k-means++ (Arthur and Vassilvitskii, 2007: spread out, each drawn with a probability that
 * grows with its distance to those already chosen; greedy: each the best of 2 + ln k such
 * draws, the one that lowers the sum of squared distances most), or random (k points drawn
 * uniformly, of distinct values where the sample holds k of them). A fit tries n_init such
 * starts, each settled by Lloyd iterations on part of the sample, and keeps the one of lowest
 * inertia there. All follow the seed alone, whatever the threads. */
typedef enum cm_init { CM_INIT_KMEANSPP, CM_INIT_RANDOM } cm_init_t;

typedef struct cm_params {
    int k;            /* clusters, 1..65535 (ignored when init_centres is set) */
    cm_scale_t scale; /* standard: each feature to mean 0, deviation 1 before the fit */
    cm_algorithm_t algorithm;
    cm_colorspace_t colorspace; /* of the fit; the remap follows the model's */
    /* Start of the fit: init_k centres of d features (sample units, rows), owned by the caller
     * and read during cm_fit only; NULL: k centres chosen by init. (cm_options_t.init_path
     * reads them from a file.) */
    const double *init_centroids;
    int init_k;
    cm_init_t init;     /* k-means++ (the default) or random; init_centres, when set, wins */
    int n_init;         /* starts tried, 0 to 1000 (0: the default, 5); ignored with init_centres */
    cm_dither_t dither; /* of the remap */
    uint64_t seed;
    int max_iter;        /* mini-batch step limit, or exact iteration limit */
    double tol;          /* stop when no centre moved more than this (sample units, ... */
    int patience;        /* ... Lab ones with lab) for this many consecutive steps */
    int64_t batch;       /* pixels per mini-batch step */
    int64_t sample_px;   /* about this many pixels are kept in memory for the fit (0: 2^20) */
    int n_threads;       /* workers; <= 0 for one per core */
    int color_cache;     /* 8-bit images: colour -> label table; -1 auto, 0 off, 1 on */
    cm_kernel_t kernel;  /* nearest-centre kernel of the remap and exact modes (auto) */
    size_t budget_bytes; /* chunk buffers in flight never exceed this */
    /* In a job of several ranks, each rank writes the chunks it remapped where rank 0 places
     * them (cm_sink_t.place), instead of sending them to rank 0 to write. */
    bool write_parallel;
    cm_stage_fn progress;
    void *progress_user;
    cm_trace_t *trace; /* records every task's times, thread, kind and bytes, or NULL */
    /* called with every graph before it runs (to draw it), or NULL */
    void (*graph_fn)(void *user, const char *stage, const cm_graph_t *g);
    void *graph_user;
    const volatile sig_atomic_t *cancel;
} cm_params_t;

/* Defaults for every field (k = 8, seed 0, ...). */
void cm_params_default(cm_params_t *p);

/* A fitted model. centroids are k rows of d features, in sample units. With scaling, mean and
 * std (d each) give the standardisation the distances were measured in (else both NULL), and
 * inertia is in those units. With colorspace lab, distances, mean, std and inertia are in
 * CIELAB units (then standardised, with scaling), centroids still in sample units. counts and
 * inertia are those of the last pass that assigned pixels: the remap, once it ran, otherwise the
 * fit. */
typedef struct cm_model {
    int k, d;
    double *centroids;
    double *mean, *std;
    int64_t *counts;
    double inertia;
    uint64_t seed;
    int iterations;             /* mini-batch steps, or exact iterations, taken */
    cm_algorithm_t algorithm;   /* the one that ran (auto resolved) */
    cm_colorspace_t colorspace; /* of the features the distances were measured in */
    bool converged;             /* stopped on tol, not on max_iter */
    int64_t sample_px;          /* pixels in the fitting sample */
    int64_t n_pixels;           /* pixels assigned by the remap (valid ones: alpha > 0) */
} cm_model_t;

/* Fits a model on src. The caller owns *out and frees it with cm_model_free. Deterministic:
 * the same source, seed and parameters give the same model whatever n_threads is. It is
 * cm_sample_take then cm_fit_sample, with the sample freed before an exact pass. */
int cm_fit(const cm_source_t *src, const cm_params_t *p, cm_model_t **out, cm_ctx_t *ctx);

/* The fitting sample: about p->sample_px valid pixels (2^20 when 0) of the sources, chosen by
 * the seed alone and held in memory as the features of the fit. Nothing else decides which
 * pixels it holds (not k, the algorithm or init), so one sample serves fits of every k. */
typedef struct cm_sample cm_sample_t;

/* Reads the sample of n_srcs sources (one, or several sampled as one image as cm_fit_many
 * does) with p's seed, sample_px, colorspace and scale, and its threads, budget, progress
 * (stage "sample") and cancel flag. srcs must outlive the sample: the exact algorithms read
 * srcs[0] again. The caller frees *out with cm_sample_free. CM_EINPUT when no pixel takes part
 * or the sources differ; CM_EUSAGE for a colour space the images cannot take. */
int cm_sample_take(const cm_source_t *srcs, int n_srcs, const cm_params_t *p, cm_sample_t **out,
                   cm_ctx_t *ctx);

/* Fits a model on sample s: the model cm_fit_many gives for s's sources with p, to the bit,
 * for any k, algorithm and init (lloyd reads s's one source again at every iteration). p must
 * have the seed, sample_px, colorspace and scale s was taken with (CM_EUSAGE otherwise). Fits
 * of several k run on one sample one after another; the first histogram fit keeps the image's
 * colour histogram in s, so later ones do not count it again. The caller frees *out with
 * cm_model_free. */
int cm_fit_sample(cm_sample_t *s, const cm_params_t *p, cm_model_t **out, cm_ctx_t *ctx);

/* Frees a sample; NULL is fine. */
void cm_sample_free(cm_sample_t *s);

/* Remaps every chunk of src to its nearest centres and hands it to sink, in chunk order.
 * Updates model->counts, inertia and n_pixels with exact figures for the whole image. */
int cm_remap(const cm_source_t *src, cm_model_t *model, const cm_params_t *p, const cm_sink_t *sink,
             cm_ctx_t *ctx);

/* cm_remap with n_models models at once (of src's features, any k and colour space each), in
 * one pass: every chunk is read once and remapped with each model in turn; chunks remapped
 * with models[i] go to sinks[i] in chunk order. Updates every model's counts, inertia and
 * n_pixels. With one model it is cm_remap exactly. The chunk buffers of all models are held
 * together: a budget that cannot hold them is refused up front (CM_EBUDGET, with the least
 * that works in ctx->about.need). In a job of several ranks every rank calls it: chunk c is
 * remapped by rank c % ranks and put by rank 0, in the same order as alone; every rank gets the
 * figures. */
int cm_remap_many(const cm_source_t *src, cm_model_t *const *models, int n_models,
                  const cm_params_t *p, const cm_sink_t *sinks, cm_ctx_t *ctx);

/* One image of a batch remap (cm_remap_batch), opened by the engine when the pass reaches it
 * and closed once its last chunk is written, so that a batch of thousands of images keeps only
 * a few of them open. */
typedef struct cm_remap_job {
    /* Known before opening, for planning the graph: src's grid, nodata rule and alpha (open
     * fills in read, keep and self, and must not change the grid), the k of the model and
     * whether the sink wants labels. */
    cm_source_t src;
    int k;
    bool want_labels;
    /* Called from a worker when the pass reaches the job: completes src and gives the model
     * (k centres; the pass overwrites its counts, inertia and n_pixels, so each job needs a
     * model of its own) and the sink, which must stay valid until close. */
    int (*open)(void *self, cm_source_t *src, cm_model_t **model, const cm_sink_t **sink,
                cm_ctx_t *ctx);
    /* Called exactly once for every job, also when open was never called or failed: with rc 0
     * once every chunk has been put (the job's outputs are complete; close commits them and
     * returns 0 or a failure of its own in ctx), or with the job's failure (rc < 0 and its
     * message in ctx; close drops what it made and returns rc). */
    int (*close)(void *self, int rc, cm_ctx_t *ctx);
    void *self;
    /* The outcome, once cm_remap_batch returns: what close returned, and its message. */
    int rc;
    cm_ctx_t ctx;
} cm_remap_job_t;

/* Remaps n_jobs images in ONE task graph: each image is a sub-graph (open, then a remap task
 * per chunk, writes in chunk order, close) and the sub-graphs overlap within p's threads and
 * memory budget, at most max_open images open at once (>= 1). An image whose chunks do not
 * fit the budget, or whose open, read or put fails, fails alone: its other tasks are skipped
 * and the others go on. The same pixels as cm_remap on each image alone; progress (stage
 * "remap") counts the chunks of all images. Returns 0 when the
 * batch ran (each job's outcome in its rc and ctx), or the failure that stopped all of it (a
 * cancel: CM_ECANCELED; then the jobs not done are closed with it). */
int cm_remap_batch(cm_remap_job_t *jobs, int n_jobs, int max_open, const cm_params_t *p,
                   cm_ctx_t *ctx);

void cm_model_free(cm_model_t *m);

/* Counts the distinct colours (tuples of the non-alpha samples, up to 3 of them) of the whole
 * image exactly, reading every chunk once with the parameters' threads and budget. */
int cm_count_colors(const cm_source_t *src, const cm_params_t *p, int64_t *count, cm_ctx_t *ctx);

/* The centroids' colours as 8-bit samples (rounded and clamped): k rows of d, written to out
 * (k * d bytes). */
void cm_model_colors_u8(const cm_model_t *m, uint8_t *out);

/* The labels a remap of src with k clusters writes: *bits is 8 when k (plus one value for
 * masked pixels, when src can have any: alpha, nodata or float samples) fits in a byte, else
 * 16; *masked is the label of masked pixels (255 or 65535). Returns whether src can have
 * masked pixels at all. */
bool cm_labels_plan(const cm_source_t *src, int k, int *bits, uint32_t *masked);

enum { CM_MODEL_SCHEMA = 1, CM_K_MAX = 65535 };

/* What a model file says of the images it fits: their bands, alpha band (-1: none) and
 * sample type, and the chunkmeans version that wrote it ("" when not said). */
typedef struct cm_model_meta {
    int bands, alpha_band;
    cm_stype_t stype;
    char version[32];
    const char *name; /* the model's file, for messages (cm_model_load: its path), or NULL */
} cm_model_meta_t;

/* "rgb" or "lab". */
const char *cm_colorspace_name(cm_colorspace_t cs);
/* "minibatch", "lloyd", "histogram" or "auto". */
const char *cm_algorithm_name(cm_algorithm_t a);

/* ---- several images (batch fits) ---- */

/* cm_fit on n_srcs sources of the same bands, alpha band and sample type, sampled as one
 * image: cells are drawn from all of them alike and every valid pixel has the same chance to
 * be in the sample, so each source weighs by its number of valid pixels. With one source it is
 * cm_fit exactly. Several sources take the minibatch algorithm only (auto resolves to it);
 * another gives CM_EUSAGE, sources that differ CM_EINPUT. Same ownership and determinism as
 * cm_fit; cm_sample_take then cm_fit_sample give the same model. */
int cm_fit_many(const cm_source_t *srcs, int n_srcs, const cm_params_t *p, cm_model_t **out,
                cm_ctx_t *ctx);

#endif
