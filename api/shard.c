/* cm__shard_split: a list of weighted items (files, by their size) split into parts of about
 * equal weight, the same way on every machine and in every process that splits the same list.
 * It knows weights and indices only: what they stand for, and who runs which part, is the
 * caller's. */
#include <stdlib.h>

#include "api_internal.h"

typedef struct item {
    int64_t weight;
    int idx;
} item_t;

/* Heavier first; of equal weights, the lower index first: a total order, so qsort's lack of
 * stability cannot change the result. */
static int heavier_first(const void *pa, const void *pb)
{
    const item_t *a = pa, *b = pb;
    if (a->weight != b->weight) return a->weight > b->weight ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* A part in the min-heap: the lighter first; of equal totals, the lower part first. */
typedef struct load {
    int64_t total;
    int part;
} load_t;

static bool lighter(load_t a, load_t b)
{
    return a.total < b.total || (a.total == b.total && a.part < b.part);
}

/* Restores the heap below slot i, whose total has grown. */
static void sift_down(load_t *heap, int n, int i)
{
    for (;;) {
        int least = i, l = 2 * i + 1, r = l + 1;
        if (l < n && lighter(heap[l], heap[least])) least = l;
        if (r < n && lighter(heap[r], heap[least])) least = r;
        if (least == i) return;
        load_t t = heap[i];
        heap[i] = heap[least];
        heap[least] = t;
        i = least;
    }
}

int cm__shard_split(const int64_t *weights, int n, int parts, int *part_of, cm_ctx_t *ctx)
{
    CM_FAIL_IF(ctx, n < 0 || parts < 1 || (n > 0 && (!weights || !part_of)), CM_EUSAGE,
               "splitting %d items into %d parts: no such split", n, parts);
    /* Whole sums: no part's total can then overflow. */
    int64_t sum = 0;
    for (int i = 0; i < n; i++)
        CM_FAIL_IF(ctx, weights[i] < 0 || !cm__add_i64(sum, weights[i], &sum), CM_EUSAGE,
                   "item %d weighs %lld: weights are >= 0 and sum up to 2^63 - 1", i,
                   (long long)weights[i]);
    if (n == 0) return 0;
    /* The lightest part is always one already used or the first unused one, so no item goes
     * past part n - 1: the heap needs no more than n parts, however many there are. */
    int n_heap = parts < n ? parts : n;
    item_t *order = malloc((size_t)n * sizeof *order);
    load_t *heap = malloc((size_t)n_heap * sizeof *heap);
    if (!order || !heap) {
        free(order);
        free(heap);
        return cm_fail(ctx, CM_ENOMEM, "out of memory splitting %d items", n);
    }
    for (int i = 0; i < n; i++) order[i] = (item_t){weights[i], i};
    qsort(order, (size_t)n, sizeof *order, heavier_first);
    /* Parts 0, 1, ... with totals of 0 are in heap order already. */
    for (int p = 0; p < n_heap; p++) heap[p] = (load_t){0, p};
    for (int i = 0; i < n; i++) {
        part_of[order[i].idx] = heap[0].part;
        heap[0].total += order[i].weight;
        sift_down(heap, n_heap, 0);
    }
    free(order);
    free(heap);
    return 0;
}
