/* chunkmeans: the command. Dispatches to the subcommands; --help and --version. */
#include <signal.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "Usage:\n"
    "  chunkmeans run   IN OUT [-k N] [options]          recolour IN with its k best colours\n"
    "  chunkmeans fit   IN [IN2 ...] -k N -o MODEL.json\n"
    "                                                    fit k colours on a sample of all the\n"
    "                                                    inputs and write them as a model\n"
    "  chunkmeans apply MODEL.json IN OUT                recolour IN with a model's colours\n"
    "  chunkmeans apply MODEL.json IN ... --out-dir DIR [--ext png|tif]\n"
    "                                                    the same for many files, side by side;\n"
    "                                                    outputs that exist are skipped\n"
    "  chunkmeans info  IN [--colors]                    describe IN (and count its colours)\n"
    "  chunkmeans info  MODEL.json                       a model's k, colour space and palette\n"
    "  chunkmeans --help | --version\n"
    "\n"
    "chunkmeans clusters the pixels of an image of any size with k-means, out of core: the\n"
    "image streams through a task graph in chunks (its tiles, or bands of rows), so memory\n"
    "follows --memory, not the image size. IN is a TIFF, JPEG or PNG (recognised by its\n"
    "content); OUT's extension chooses .tif, .png or .jpg. 'chunkmeans COMMAND --help' lists\n"
    "a command's options.\n"
    "\n"
    "Exit codes: 0 success, 1 runtime failure (I/O, disk full, memory), 2 usage error,\n"
    "3 bad or unsupported input. On failure no output file is left behind.\n";

int main(int argc, char **argv)
{
    /* A file-size limit (ulimit -f) must fail the write with EFBIG, which the writers report
     * and clean up after, instead of killing the process and leaving a temporary file. */
    signal(SIGXFSZ, SIG_IGN);
    /* Under mpirun or srun, the ranks make one job (cm_comm.h); otherwise this does nothing. */
    cm_ctx_t ctx;
    cm_ctx_init(&ctx);
    if (cm_comm_init(&argc, &argv, &ctx) < 0) cm_comm_abort(cli_fail(&ctx, ctx.code, NULL));
    if (cm_comm_size() > 1) cli_join_job();
    if (argc < 2) {
        fputs(usage, stderr);
        return CM_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return CM_EXIT_OK;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
        printf("chunkmeans %s\n", CM_VERSION);
        return CM_EXIT_OK;
    }
    int (*command)(int, char **) = !strcmp(cmd, "run")     ? cmd_run
                                   : !strcmp(cmd, "fit")   ? cmd_fit
                                   : !strcmp(cmd, "apply") ? cmd_apply
                                   : !strcmp(cmd, "info")  ? cmd_info
                                                           : NULL;
    if (command) {
        int rc = command(argc - 1, argv + 1);
        cm_graph_release_threads(); /* leak checkers see no worker thread left */
        /* A rank that failed alone would leave the others waiting for it: its failure ends
         * the job, unless every rank knows the outcome (apply's summary of files). */
        if (rc != 0 && cm_comm_size() > 1 && !cli_job_agreed) cm_comm_abort(rc);
        cm_comm_finish();
        return rc;
    }
    cli_error("unknown command '%s' (try 'chunkmeans --help')", cmd);
    return CM_EXIT_USAGE;
}
