/* cmd_status: reads commit markers, and the kernel's lock table for who
 * holds the folder; never writes and takes no lock, so it can watch a run
 * in progress. */
#include "cmd_status.h"

#include "exec_slurm.h"
#include "outdir.h"
#include "session.h"
#include "task.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: vlmcurate status OUT\n"
                 "Lists the phases of the run in OUT with their tasks committed, and the\n"
                 "next phase to run (`vlmcurate task` runs one task), and whether a\n"
                 "vlmcurate run or tasks hold the folder now.  A run submitted\n"
                 "to Slurm also gets, per phase, its tasks done, running, pending, failed,\n"
                 "cancelled (with their logs and why) and not submitted, samples/s and ETA.\n"
                 "Exit status: 0 the run is complete, 1 it is not, 2 usage error.\n");
}

int cmd_status_main(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc != 2 || argv[1][0] == '-') {
        usage(stderr);
        return 2;
    }
    struct vc_err err = { 0 };
    struct spec *spec = NULL;
    struct session ss = { 0 };
    enum vc_status rc = outdir_load_spec(argv[1], NULL, &spec, &err);
    if (rc == VC_OK)
        rc = session_init(&ss, spec, NULL, &err);
    struct task_ref *v = rc == VC_OK ? calloc(3 * ss.n_rounds + 3, sizeof *v) : NULL;
    if (rc < 0 || !v) {
        fprintf(stderr, "vlmcurate status: %s\n", rc < 0 ? err.msg : "out of memory");
        free(v);
        session_fini(&ss);
        spec_free(spec);
        return rc == VC_EUSAGE ? 2 : 1;
    }
    size_t n = 0;
    task_phases(&ss, v, &n);
    const char *next = NULL;
    char next_buf[32];
    printf("run: %s (spec %.12s, %zu input units, %zu rounds)\n", spec->out_dir, spec->hash,
           ss.n_units, ss.n_rounds);
    for (size_t i = 0; i < n; i++) {
        size_t total, done;
        bool known;
        char name[32];
        task_phase_name(&v[i], name, sizeof name);
        task_count(&ss, &v[i], &total, &done, &known);
        if (!known)
            printf("%-10s waiting for plan\n", name);
        else
            printf("%-10s %zu/%zu committed\n", name, done, total);
        if (!next && (!known || done < total)) {
            snprintf(next_buf, sizeof next_buf, "%s", name);
            next = next_buf;
        }
    }
    exec_slurm_status(&ss, stdout);
    /* Without it a run in progress and one that was killed look the same. */
    long pid;
    size_t n_tasks;
    outdir_holders(argv[1], &pid, &n_tasks);
    if (pid)
        printf("running: vlmcurate run, pid %ld\n", pid);
    else if (n_tasks)
        printf("running: %zu vlmcurate task%s\n", n_tasks, n_tasks == 1 ? "" : "s");
    printf(next ? "next: %s\n" : "complete\n", next);
    free(v);
    session_fini(&ss);
    spec_free(spec);
    return next ? 1 : 0;
}
