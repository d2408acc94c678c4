/* cmd_run: `vlmcurate run SPEC.json [--threads N] [--out DIR] [--force]`
 * and the entry point other commands (demo) use to run a spec file. */
#ifndef VC_PIPELINE_CMD_RUN_H
#define VC_PIPELINE_CMD_RUN_H

#include <stdbool.h>
#include <stdio.h>

#include "core/vc_err.h"
#include "exec.h"

struct run_opts {
    const char *out_dir; /* NULL: the spec's output.dir */
    int threads;         /* 0: the spec's, else all cores */
    bool force;
    const double *max_error_rate;      /* NULL: the spec's */
    const char *executor;              /* NULL: the spec's "executor", else local */
    const struct cJSON *executor_opts; /* the executor's options (borrowed), NULL = none */
    FILE *log; /* progress and error lines (usually stderr); NULL = silent */
};

/* Loads and runs a spec file.  *res (may be NULL) gets totals and timings;
 * *out_dir_used (may be NULL) an owned copy of the output folder. */
enum vc_status run_spec(const char *spec_path, const struct run_opts *opts, struct exec_result *res,
                        char **out_dir_used, struct vc_err *err);

/* Prints the closing summary of a run (totals, shards, where things are). */
void run_print_summary(FILE *out, const char *out_dir, const struct exec_result *res);

/* Exit status: 0 the run completed (some samples may be rejected or in
 * error, see the ledger), 1 it failed (I/O, memory), 2 usage or spec
 * error.  argv[0] = "run". */
int cmd_run_main(int argc, char **argv);

#endif
