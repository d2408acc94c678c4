/* exec: `vlmcurate run` from start to end.  Builds the run's session
 * (session.h), locks and claims the output folder (outdir.h) and hands the
 * run to the executor the spec or command line names (executor.h).  The
 * phases, each a set of tasks committed by a marker written last
 * (manifests/manifest.h), so a rerun after a crash redoes only what was
 * not committed:
 *
 *   MAP     per round, one task per input unit (phase_map.h): read the
 *           unit (round 0) or what the previous round kept of it, run the
 *           round's per-sample stages, spill the survivors;
 *   GLOBAL  per round but the last: the global stage's reduce parts, then
 *           its plan (phase_global.h);
 *   PLAN    one task: shard cuts, unique keys, one slice per shard
 *           (phase_plan.h);
 *   REDUCE  one task per output shard, reading only its slice and the
 *           spill records it names (phase_reduce.h);
 *   FINISH  one task: wids index, ledger, the stages' finish hooks, the
 *           run-level checks, run.json (phase_finish.h).
 *
 * Every output except run.json (timings, thread count) is byte-identical
 * for any thread count, executor, and across interrupted and resumed
 * runs.  Never exits; a sample-level problem is a ledger line and a line
 * on stderr naming file, key, stage and reason. */
#ifndef VC_PIPELINE_EXEC_H
#define VC_PIPELINE_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"
#include "manifests/ledger.h"
#include "spec.h"

struct exec_opts {
    bool force;                        /* take over an output folder that holds something else */
    FILE *log;                         /* progress and error lines (borrowed), NULL = silent */
    const struct cJSON *executor_opts; /* the executor's options (borrowed), NULL = none */
};

struct exec_result {
    struct ledger_totals totals;
    uint64_t n_shards, bytes_written;
    uint64_t units_skipped, shards_skipped; /* committed by an earlier run */
    uint64_t units_failed;                  /* input units that could not be read (not committed) */
    bool submitted; /* the executor queued the tasks and returned: no totals yet */
    double seconds_map, seconds_plan, seconds_reduce, seconds_finish;
};

/* VC_OK when the run completed (samples may have been rejected or be in
 * error: see the totals).  VC_EUSAGE when the output folder belongs to
 * another spec and !force, or another run holds it (outdir.h).  VC_EFATAL
 * on I/O failure or OOM; when input units could not be read (a file that
 * vanished or cannot be opened: nothing of them is committed, each is
 * named on the log, a rerun retries them); when a source yielded no
 * sample; when more than spec->max_error_rate of the input samples are
 * errors. */
enum vc_status exec_run(struct spec *spec, const struct exec_opts *opts, struct exec_result *res,
                        struct vc_err *err);

#endif
