/* What the remap's files share: one pass over a source with one or more models (remap.c), the
 * bytes its tasks hold (budget.c), and batches of images that each make such a pass (batch.c).
 * Not part of the library's interface. */
#ifndef CM_REMAP_INTERNAL_H
#define CM_REMAP_INTERNAL_H

#include "engine_internal.h"

/* A chunk remapped with one model, until the writer has put it. */
typedef struct cm__chunk_out {
    uint8_t *pixels;
    void *labels;
    void *encoded;   /* what sink->encode made of pixels and labels */
    int64_t *counts; /* k: valid pixels per centroid */
    double inertia;
} cm__chunk_out_t;

/* One model of a pass and its output. */
typedef struct cm__remapper {
    const cm_source_t *src;
    const cm_sink_t *sink;
    cm_model_t *model;
    cm__pixfmt_t fmt;
    float *soa;   /* centroids band by band (standardised, if the model is): d rows of k */
    void *colors; /* k * d samples of the image's type */
    int label_bits;
    uint32_t label_masked;
    uint16_t *cache; /* 8-bit images: color -> label + 1 (0: not yet known), or NULL */
    bool dither;     /* ordered dither (with at least 2 centroids) */
    bool plain_u8;   /* 8-bit grey or RGB, no mask, scaling or Lab, k <= 256, no dither or
                      * cache: every pixel valid, its features its samples (finish_plain_u8) */
    cm_kernel_t kernel;
    bool placed; /* in a job of ranks, each writes its chunks where rank 0 places them */
    cm__chunk_out_t *chunks;
    double inertia;
    int64_t n_pixels;
} cm__remapper_t;

/* The models of one pass over a source; job is the batch job it belongs to (NULL alone). */
typedef struct cm__pass {
    const cm_source_t *src;
    cm__remapper_t *r;
    int n;
    int k_max;
    void *job;
} cm__pass_t;

/* The arguments of a pass's tasks: a remap task per chunk, a write per chunk and model. */
typedef struct cm__remap_task {
    cm__pass_t *pass;
    int64_t idx;
} cm__remap_task_t;

typedef struct cm__write_task {
    cm__remapper_t *r;
    int64_t idx;
    void *job;
} cm__write_task_t;

/* The task functions of a pass: read chunk idx once and remap it with every model; hand model
 * r's chunk to its sink and add up its counts and inertia. A batch wraps them with its own. */
typedef struct cm__pass_fns {
    cm_task_fn remap, write;
} cm__pass_fns_t;
int cm__remap_chunk(void *arg, int worker, cm_ctx_t *ctx);
int cm__write_chunk(void *arg, int worker, cm_ctx_t *ctx);

/* Sets up r for remapping src with model to sink, in a pass of n_models models (the automatic
 * color cache is for passes of one). CM_ENOMEM when out of memory; cm__remapper_free either way. */
int cm__remapper_init(cm__remapper_t *r, const cm_source_t *src, cm_model_t *model,
                      const cm_params_t *p, const cm_sink_t *sink, int n_models, cm_ctx_t *ctx);
void cm__remapper_free(cm__remapper_t *r);

/* Frees a remapped chunk that will not be written (or has been). */
void cm__chunk_out_free(const cm_sink_t *sink, cm__chunk_out_t *c);

/* CM_EINPUT or CM_EUSAGE when model cannot remap an image of grid g. */
int cm__check_model(const cm_grid_t *g, const cm_model_t *model, cm_ctx_t *ctx);

/* Adds the tasks of pass over its n_chunks chunks: a remap task per chunk (after task `after`,
 * when >= 0) holding held + scratch bytes, and per model a chain of writes in chunk order, the
 * first model's counting for progress; prev[i] is the last write of model i (-1 before any).
 * tasks and writes (n_chunks, n_chunks * pass->n) hold the tasks' arguments. */
int cm__add_pass(cm_graph_t *graph, cm__pass_t *pass, cm__pass_fns_t fns, int64_t n_chunks,
                 size_t held, size_t scratch, int after, cm__remap_task_t *tasks,
                 cm__write_task_t *writes, int *prev, cm_ctx_t *ctx);

/* After a pass that ran: the figures of its whole image in each model. */
void cm__pass_figures(const cm__pass_t *pass);

/* The bytes of a remap task with n models of ks[i] centroids: held until its chunks are written
 * (a chunk, counts and labels per model: the chunk as read becomes the last model's), and
 * scratch while it runs (the largest model's). */
void cm__pass_bytes(const cm_source_t *src, const int *ks, int n, bool labels, size_t *held,
                    size_t *scratch);

/* Scratch bytes of a remap task for k centroids of d features. */
size_t cm__remap_scratch_bytes(int d, int k);

#endif
