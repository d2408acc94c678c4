/* exec: the local executor.  Runs a loaded spec in rounds (stages/stage.h
 * says how the stage list splits), each task committed by a JSON marker
 * written last (manifests/commit.h), so a rerun after a crash redoes only
 * what was not committed:
 *
 *   MAP     per round, OpenMP threads over input units: read the unit
 *           (round 0) or what the previous round kept of it, run the
 *           round's per-sample stages, spill the survivors' bytes to
 *           OUT/_work/rR-map-NNNNNN.bin, commit rR-map-NNNNNN.json
 *           (records + ledger lines of rejects and errors);
 *   GLOBAL  per round but the last: the global stage's reduce parts
 *           (threads over parts, each committed), then its plan hook (one
 *           thread), committed by rR-plan.json;
 *   PLAN    one thread: shard cuts, unique output keys; commits
 *           OUT/_work/plan.json;
 *   REDUCE  OpenMP threads over output shards: copy each planned sample
 *           from the last round's spill (pread, one sample in memory at a
 *           time) into OUT/PREFIX-NNNNNN.tar; commit OUT/PREFIX-NNNNNN.json;
 *   FINISH  OUT/wids-index.json, OUT/ledger.jsonl, the stages' finish
 *           hooks, then OUT/run.json.
 *
 * Every output except run.json (timings, thread count) is byte-identical
 * for any thread count and across interrupted and resumed runs.  The
 * executor never exits; a sample-level problem is a ledger line and a
 * line on stderr naming file, key, stage and reason. */
#ifndef VC_PIPELINE_EXEC_H
#define VC_PIPELINE_EXEC_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_err.h"
#include "manifests/ledger.h"
#include "spec.h"

struct exec_opts {
    bool force; /* take over an output folder that holds something else */
    FILE *log;  /* progress and error lines (borrowed), NULL = silent */
};

struct exec_result {
    struct ledger_totals totals;
    uint64_t n_shards, bytes_written;
    uint64_t units_skipped, shards_skipped; /* committed by an earlier run */
    uint64_t units_failed;                  /* input units that could not be read (not committed) */
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
