/* cmd_task: argument parsing around task_run; the run's spec comes from
 * OUT itself (outdir_load_spec), so a task needs nothing but OUT. */
#include "cmd_task.h"

#include "core/vc_arg.h"
#include "outdir.h"
#include "session.h"
#include "task.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vlmcurate task OUT PHASE INDEX [--spec SPEC.json] [--threads N] [--quiet]\n"
            "Runs one task of the run in OUT, as a cluster array task does; a\n"
            "committed task is not run again.  --spec claims OUT for SPEC first (as\n"
            "`vlmcurate run` does) when OUT holds no run yet.  PHASE is\n"
            "rR-map (INDEX = input unit), rR-reduce (INDEX = part of round R's global\n"
            "stage), rR-plan, plan, write (INDEX = output shard) or finish (INDEX 0);\n"
            "`vlmcurate status OUT` lists this run's phases.  A phase runs only when\n"
            "every task of the phases before it is committed.\n"
            "Exit status: 0 committed, 1 failed or not ready, 2 usage error.\n");
}

int cmd_task_main(int argc, char **argv)
{
    const char *pos[3] = { NULL, NULL, NULL };
    size_t n_pos = 0;
    struct spec_overrides ov = { 0 };
    FILE *log = stderr;
    const char *spec_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            long long n;
            if (!vc_arg_long(argv[++i], 1, 4096, &n)) {
                fprintf(stderr, "vlmcurate task: --threads wants a number from 1 to 4096\n");
                return 2;
            }
            ov.threads = (int)n;
        } else if (!strcmp(argv[i], "--spec") && i + 1 < argc) {
            spec_path = argv[++i];
        } else if (!strcmp(argv[i], "--quiet")) {
            log = NULL;
        } else if (argv[i][0] == '-' || n_pos == 3) {
            usage(stderr);
            return 2;
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (n_pos != 3) {
        usage(stderr);
        return 2;
    }
    long long index;
    if (!vc_arg_long(pos[2], 0, LLONG_MAX, &index)) {
        fprintf(stderr, "vlmcurate task: INDEX wants a number from 0 up, not '%s'\n", pos[2]);
        return 2;
    }
    struct vc_err err = { 0 };
    struct spec *spec = NULL;
    struct session ss = { 0 };
    struct outdir od = { .lock_fd = -1 };
    struct task_ref t;
    bool was_done = false;
    enum vc_status rc = VC_OK;
    if (spec_path) {
        ov.out_dir = pos[0];
        rc = spec_load(spec_path, &ov, &spec, &err);
        if (rc == VC_OK)
            rc = outdir_claim(spec, false, &od, &err);
        outdir_release(&od);
        spec_free(spec);
        spec = NULL;
        ov.out_dir = NULL;
    }
    if (rc == VC_OK)
        rc = outdir_load_spec(pos[0], &ov, &spec, &err);
    if (rc == VC_OK)
        rc = session_init(&ss, spec, log, &err);
    if (rc == VC_OK)
        rc = task_parse(&ss, pos[1], &t, &err);
    t.index = (size_t)index;
    if (rc == VC_OK)
        rc = outdir_attach(spec, &od, &err);
    uint64_t t0 = progress_now_ns();
    if (rc == VC_OK)
        rc = task_run(&ss, &t, &was_done, &err);
    double secs = (double)(progress_now_ns() - t0) / 1e9;
    unsigned long long n_samples = atomic_load(&ss.prog.samples);
    outdir_release(&od);
    session_fini(&ss);
    spec_free(spec);
    if (rc < 0) {
        fprintf(stderr, "vlmcurate task %s %s %s: %s\n", pos[0], pos[1], pos[2], err.msg);
        return rc == VC_EUSAGE ? 2 : 1;
    }
    /* `vlmcurate status` reads this line back from a Slurm task's log for
     * the phase's rate and ETA. */
    if (was_done)
        printf("%s %s %lld: already committed\n", pos[0], pos[1], index);
    else
        printf("%s %s %lld: committed, %llu samples in %.3f s\n", pos[0], pos[1], index, n_samples,
               secs);
    return 0;
}
