/* The ranks of a job: one process, or the processes of an MPI job started by mpirun or srun.
 * Every function works, and costs nothing, in a program built without MPI or started without
 * a launcher: there is one rank, 0, and the collectives return at once.
 *
 * Collectives must be called by every rank, in the same order. None chooses an order of its
 * own for floating-point sums: those that combine numbers do it in rank order (cm_comm_chain),
 * or on integers, where any order gives the same bits. MPI is called from one thread at a time
 * (MPI_THREAD_SERIALIZED): the caller's, or the one worker that runs a chain of tasks. A failed
 * MPI call ends the job (MPI's default error handler), so none of these returns one. */
#ifndef CM_COMM_H
#define CM_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cm_base.h"

/* Joins the job when a launcher started this process (its environment says so; MPI_Init is
 * never called otherwise): CM_EUSAGE when the launcher started n processes and MPI sees one
 * (a launcher of another MPI than the one built in), or MPI gives less than serialized
 * threads. Call once, before any other function here. */
int cm_comm_init(int *argc, char ***argv, cm_ctx_t *ctx);

/* Leaves the job (MPI_Finalize), after every rank is done. */
void cm_comm_finish(void);

/* Ends every rank of the job with exit code (MPI_Abort), or this process with exit. */
_Noreturn void cm_comm_abort(int code);

/* Whether a launcher started this process (one rank of a job, maybe the only one). */
bool cm_comm_launched(void);
int cm_comm_rank(void);
int cm_comm_size(void);
/* The ranks of the job on this node, and this rank's place among them (shared memory). */
int cm_comm_node_size(void);

/* Rank r's contiguous share [*lo, *hi) of n items: the first n % size ranks take one more. */
void cm_comm_share(int64_t n, int r, int64_t *lo, int64_t *hi);

/* Every rank gets root's bytes. */
void cm_comm_bcast(void *buf, size_t bytes, int root);

/* Combines in rank order: rank 0 calls fold on acc as it is, each next rank on what the rank
 * before it made, and every rank gets the last rank's acc. fold must add this rank's share. */
void cm_comm_chain(void *acc, size_t bytes, void (*fold)(void *user, void *acc), void *user);

/* Exact integer sums, in place, on every rank. */
void cm_comm_sum_i64(int64_t *v, size_t n);
/* MPI_Allreduce of doubles, whose bits follow the library's order: only for the tests' negative
 * control, which shows that the comparison of outputs catches it. */
void cm_comm_sum_f64_unordered(double *v, size_t n);

/* Every rank's bytes, one after another in rank order, into *all (malloc'd; NULL when there
 * are none), and their number into *all_bytes. CM_ENOMEM. */
int cm_comm_allgather(const void *mine, size_t bytes, uint8_t **all, size_t *all_bytes,
                      cm_ctx_t *ctx);

/* Point to point, of any length: a message is its length, then its bytes. Messages from one
 * rank with one tag arrive in the order they were sent. cm_comm_recv mallocs *buf (NULL with
 * 0 bytes). */
void cm_comm_send(const void *buf, size_t bytes, int to, int tag);
int cm_comm_recv(uint8_t **buf, size_t *bytes, int from, int tag, cm_ctx_t *ctx);

/* Waits until every rank has called it. */
void cm_comm_barrier(void);

/* A file that exists already, opened by this rank alone to write at offsets: with MPI-IO in a
 * job (which keeps the bytes of several ranks' writes to one file, on a shared filesystem too),
 * else with pwrite. close makes the bytes durable (MPI_File_sync, fsync) and frees f, whether
 * it fails or not. CM_EIO, naming path, with the reason. */
typedef struct cm_comm_file cm_comm_file_t;
int cm_comm_file_open(const char *path, cm_comm_file_t **f, cm_ctx_t *ctx);
int cm_comm_file_write_at(cm_comm_file_t *f, uint64_t offset, const void *buf, size_t bytes,
                          cm_ctx_t *ctx);
int cm_comm_file_close(cm_comm_file_t *f, cm_ctx_t *ctx);

/* A test-only fault: when the environment's CM_TEST_FAIL_RANK is this rank, fails with "test
 * fault on rank R (where)"; 0 otherwise. */
int cm_comm_test_fault(const char *where, cm_ctx_t *ctx);
/* Whether the environment asks for the unordered sums of the negative control
 * (CM_TEST_MPI_ALLREDUCE=1), in a job of several ranks. */
bool cm_comm_test_unordered(void);

/* Files to remove if the job is ended from outside (another rank's abort reaches this one as
 * SIGTERM): cm_comm_on_term removes them and exits. The paths are borrowed until forgotten. */
void cm_comm_remember(const char *path);
void cm_comm_forget(const char *path);
void cm_comm_on_term(int sig);

#endif
