/* The ranks of a job (cm_comm.h): MPI where it is built in and a launcher started the process,
 * one rank otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base_internal.h"
#include "cm_comm.h"

#ifdef CM_HAVE_MPI
#include <mpi.h>
#endif

static int rank_, size_ = 1, node_size_ = 1;
static bool mpi_; /* MPI_Init was called */

/* MPI counts are ints: longer buffers go in pieces of this many bytes. */
enum { PIECE = 1 << 30 };

/* The number of processes the launcher says it started, 0 when none did. Open MPI's mpirun
 * sets OMPI_COMM_WORLD_SIZE; MPICH's hydra and Slurm's PMI set PMI_SIZE; PMIx (Slurm's
 * --mpi=pmix, Open MPI) sets PMIX_RANK, with the size only known to MPI. */
static int launched_size(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const char *v = getenv(names[i]);
        if (v && atoi(v) > 0) return atoi(v);
    }
    return getenv("PMIX_RANK") || getenv("PMI_RANK") ? 1 : 0;
}

int cm_comm_init(int *argc, char ***argv, cm_ctx_t *ctx)
{
    int launched = launched_size();
    if (!launched) return 0;
#ifdef CM_HAVE_MPI
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided);
    mpi_ = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &node_size_);
    MPI_Comm_free(&node);
    CM_FAIL_IF(ctx, provided < MPI_THREAD_SERIALIZED, CM_EUSAGE,
               "this MPI gives threads level %d: serialized (%d) is needed", provided,
               MPI_THREAD_SERIALIZED);
    CM_FAIL_IF(ctx, launched > 1 && size_ == 1, CM_EUSAGE,
               "the launcher started %d processes, but each runs alone: was it the launcher of "
               "another MPI than the one this program was built with?",
               launched);
    return 0;
#else
    (void)argc;
    (void)argv;
    CM_FAIL_IF(ctx, launched > 1, CM_EUSAGE,
               "started by an MPI launcher as one of %d processes, but built without MPI: each "
               "would run alone (build with -Dmpi=enabled)",
               launched);
    return 0;
#endif
}

void cm_comm_finish(void)
{
#ifdef CM_HAVE_MPI
    if (mpi_) MPI_Finalize();
    mpi_ = false;
#endif
}

_Noreturn void cm_comm_abort(int code)
{
#ifdef CM_HAVE_MPI
    if (mpi_ && size_ > 1) {
        fflush(stderr);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
#endif
    exit(code);
}

bool cm_comm_launched(void)
{
    return mpi_;
}
int cm_comm_rank(void)
{
    return rank_;
}
int cm_comm_size(void)
{
    return size_;
}
int cm_comm_node_size(void)
{
    return node_size_;
}

void cm_comm_share(int64_t n, int r, int64_t *lo, int64_t *hi)
{
    int64_t q = n / size_, extra = n % size_;
    *lo = r * q + (r < extra ? r : extra);
    *hi = *lo + q + (r < extra);
}

#ifdef CM_HAVE_MPI
/* Sends or receives bytes in pieces MPI can count. */
static void send_bytes(const void *buf, size_t bytes, int to, int tag)
{
    for (size_t at = 0; at < bytes; at += PIECE) {
        int n = bytes - at < PIECE ? (int)(bytes - at) : PIECE;
        MPI_Send((const uint8_t *)buf + at, n, MPI_BYTE, to, tag, MPI_COMM_WORLD);
    }
}

static void recv_bytes(void *buf, size_t bytes, int from, int tag)
{
    for (size_t at = 0; at < bytes; at += PIECE) {
        int n = bytes - at < PIECE ? (int)(bytes - at) : PIECE;
        MPI_Recv((uint8_t *)buf + at, n, MPI_BYTE, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    }
}
#endif

void cm_comm_bcast(void *buf, size_t bytes, int root)
{
#ifdef CM_HAVE_MPI
    for (size_t at = 0; size_ > 1 && at < bytes; at += PIECE) {
        int n = bytes - at < PIECE ? (int)(bytes - at) : PIECE;
        MPI_Bcast((uint8_t *)buf + at, n, MPI_BYTE, root, MPI_COMM_WORLD);
    }
#else
    (void)buf;
    (void)bytes;
    (void)root;
#endif
}

enum { TAG_CHAIN = 1 << 20 }; /* above the tags the callers use */

void cm_comm_chain(void *acc, size_t bytes, void (*fold)(void *user, void *acc), void *user)
{
#ifdef CM_HAVE_MPI
    if (size_ > 1 && rank_ > 0) recv_bytes(acc, bytes, rank_ - 1, TAG_CHAIN);
    fold(user, acc);
    if (size_ > 1 && rank_ < size_ - 1) send_bytes(acc, bytes, rank_ + 1, TAG_CHAIN);
    cm_comm_bcast(acc, bytes, size_ - 1);
#else
    (void)bytes;
    fold(user, acc);
#endif
}

void cm_comm_sum_i64(int64_t *v, size_t n)
{
#ifdef CM_HAVE_MPI
    for (size_t at = 0; size_ > 1 && at < n; at += PIECE / 8) {
        int m = n - at < PIECE / 8 ? (int)(n - at) : PIECE / 8;
        MPI_Allreduce(MPI_IN_PLACE, v + at, m, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)v;
    (void)n;
#endif
}

void cm_comm_sum_f64_unordered(double *v, size_t n)
{
#ifdef CM_HAVE_MPI
    if (size_ > 1) MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)v;
    (void)n;
#endif
}

int cm_comm_allgather(const void *mine, size_t bytes, uint8_t **all, size_t *all_bytes,
                      cm_ctx_t *ctx)
{
    *all = NULL;
    *all_bytes = bytes;
    if (size_ == 1) {
        if (!bytes) return 0;
        *all = malloc(bytes);
        CM_FAIL_IF(ctx, !*all, CM_ENOMEM, "out of memory gathering %zu bytes", bytes);
        memcpy(*all, mine, bytes);
        return 0;
    }
#ifdef CM_HAVE_MPI
    /* Rank by rank, as a broadcast from each: the counts need not fit an int. */
    uint64_t *n = malloc(sizeof(uint64_t) * (size_t)size_);
    CM_FAIL_IF(ctx, !n, CM_ENOMEM, "out of memory");
    uint64_t own = bytes;
    MPI_Allgather(&own, 1, MPI_UINT64_T, n, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    size_t total = 0;
    for (int r = 0; r < size_; r++) total += (size_t)n[r];
    *all = malloc(total ? total : 1);
    if (!*all) {
        free(n);
        cm_comm_abort(1); /* the other ranks are in the broadcasts below already */
    }
    size_t at = 0;
    for (int r = 0; r < size_; r++) {
        if (r == rank_) memcpy(*all + at, mine, bytes);
        cm_comm_bcast(*all + at, (size_t)n[r], r);
        at += (size_t)n[r];
    }
    *all_bytes = total;
    free(n);
    return 0;
#else
    return cm_fail(ctx, CM_EINTERNAL, "several ranks without MPI");
#endif
}

void cm_comm_send(const void *buf, size_t bytes, int to, int tag)
{
#ifdef CM_HAVE_MPI
    uint64_t n = bytes;
    MPI_Send(&n, 1, MPI_UINT64_T, to, tag, MPI_COMM_WORLD);
    send_bytes(buf, bytes, to, tag);
#else
    (void)buf;
    (void)bytes;
    (void)to;
    (void)tag;
#endif
}

int cm_comm_recv(uint8_t **buf, size_t *bytes, int from, int tag, cm_ctx_t *ctx)
{
    *buf = NULL;
    *bytes = 0;
#ifdef CM_HAVE_MPI
    uint64_t n = 0;
    MPI_Recv(&n, 1, MPI_UINT64_T, from, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (!n) return 0;
    *buf = malloc((size_t)n);
    CM_FAIL_IF(ctx, !*buf, CM_ENOMEM, "out of memory receiving %llu bytes from rank %d",
               (unsigned long long)n, from);
    recv_bytes(*buf, (size_t)n, from, tag);
    *bytes = (size_t)n;
    return 0;
#else
    (void)from;
    (void)tag;
    return cm_fail(ctx, CM_EINTERNAL, "no rank to receive from without MPI");
#endif
}

void cm_comm_barrier(void)
{
#ifdef CM_HAVE_MPI
    if (size_ > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

/* ---- files written at offsets ---- */
struct cm_comm_file {
    char *path;
    int fd; /* without MPI-IO */
#ifdef CM_HAVE_MPI
    MPI_File fh;
#endif
};

#ifdef CM_HAVE_MPI
/* MPI-IO's error handler returns its errors: this says one, naming the file. */
static int file_fail(const cm_comm_file_t *f, int err, const char *what, cm_ctx_t *ctx)
{
    char text[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(err, text, &n);
    return cm_fail(ctx, CM_EIO, "%s: cannot %s: %s", f->path, what, text);
}
#endif

int cm_comm_file_open(const char *path, cm_comm_file_t **out, cm_ctx_t *ctx)
{
    cm_comm_file_t *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        free(f);
        return cm_fail(ctx, CM_ENOMEM, "%s: out of memory", path);
    }
    f->fd = -1;
#ifdef CM_HAVE_MPI
    if (mpi_) {
        int err = MPI_File_open(MPI_COMM_SELF, path, MPI_MODE_WRONLY, MPI_INFO_NULL, &f->fh);
        if (err != MPI_SUCCESS) {
            int rc = file_fail(f, err, "open", ctx);
            free(f->path);
            free(f);
            return rc;
        }
        *out = f;
        return 0;
    }
#endif
    f->fd = open(path, O_WRONLY | O_CLOEXEC);
    if (f->fd < 0) {
        int rc = cm_fail(ctx, CM_EIO, "%s: cannot open: %s", path, strerror(errno));
        free(f->path);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

bool cm__pwrite_all(int fd, const void *buf, size_t n, uint64_t offset)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)offset);
        if (w < 0 && errno == EINTR) continue;
        if (w == 0) errno = EIO;
        if (w <= 0) return false;
        p += w;
        offset += (uint64_t)w;
        n -= (size_t)w;
    }
    return true;
}

int cm_comm_file_write_at(cm_comm_file_t *f, uint64_t offset, const void *buf, size_t bytes,
                          cm_ctx_t *ctx)
{
    if (f->fd >= 0) {
        CM_FAIL_IF(ctx, !cm__pwrite_all(f->fd, buf, bytes, offset), CM_EIO, "%s: cannot write: %s",
                   f->path, strerror(errno));
        return 0;
    }
#ifdef CM_HAVE_MPI
    const uint8_t *p = buf;
    while (bytes > 0) { /* MPI counts are ints */
        int n = bytes < PIECE ? (int)bytes : PIECE, done = 0;
        MPI_Status st;
        int err = MPI_File_write_at(f->fh, (MPI_Offset)offset, p, n, MPI_BYTE, &st);
        if (err != MPI_SUCCESS) return file_fail(f, err, "write", ctx);
        MPI_Get_count(&st, MPI_BYTE, &done);
        CM_FAIL_IF(ctx, done <= 0, CM_EIO, "%s: cannot write: %s", f->path, strerror(EIO));
        p += done;
        offset += (uint64_t)done;
        bytes -= (size_t)done;
    }
#endif
    return 0;
}

int cm_comm_file_close(cm_comm_file_t *f, cm_ctx_t *ctx)
{
    if (!f) return 0;
    int rc = 0;
#ifdef CM_HAVE_MPI
    if (f->fd < 0) {
        int err = MPI_File_sync(f->fh);
        if (err != MPI_SUCCESS) rc = file_fail(f, err, "write", ctx);
        err = MPI_File_close(&f->fh);
        if (err != MPI_SUCCESS && rc == 0) rc = file_fail(f, err, "close", ctx);
    }
#endif
    if (f->fd >= 0 && fsync(f->fd) < 0)
        rc = cm_fail(ctx, CM_EIO, "%s: cannot write: %s", f->path, strerror(errno));
    if (f->fd >= 0) close(f->fd);
    free(f->path);
    free(f);
    return rc;
}

int cm_comm_test_fault(const char *where, cm_ctx_t *ctx)
{
    const char *v = getenv("CM_TEST_FAIL_RANK");
    if (!v || !*v || atoi(v) != rank_) return 0;
    return cm_fail(ctx, CM_EIO, "test fault on rank %d (%s)", rank_, where);
}

bool cm_comm_test_unordered(void)
{
    const char *v = getenv("CM_TEST_MPI_ALLREDUCE");
    return size_ > 1 && v && !strcmp(v, "1");
}

/* ---- files to remove when the job is ended from outside ---- */
enum { REMEMBERED = 64 };
static const char *volatile remembered[REMEMBERED];

void cm_comm_remember(const char *path)
{
    for (int i = 0; i < REMEMBERED; i++)
        if (__sync_bool_compare_and_swap(&remembered[i], NULL, path)) return;
}

void cm_comm_forget(const char *path)
{
    for (int i = 0; i < REMEMBERED; i++)
        if (__sync_bool_compare_and_swap(&remembered[i], path, NULL)) return;
}

void cm_comm_on_term(int sig)
{
    for (int i = 0; i < REMEMBERED; i++) {
        const char *p = remembered[i];
        if (p) unlink(p);
    }
    _exit(128 + sig);
}
