/* phase_finish: FINISH, once every shard is committed, on one thread:
 * OUT/wids-index.json from the shard manifests; OUT/ledger.jsonl, one line
 * per input sample in (unit, index) order, merged from every round's unit
 * manifests, every global stage's dropped records and the plan's slices;
 * the stages' finish hooks; the run-level checks (a source with no sample,
 * the error rate); then OUT/run.json, last.  Reads only committed files,
 * so it runs in any process after the last REDUCE task. */
#ifndef VC_PIPELINE_PHASE_FINISH_H
#define VC_PIPELINE_PHASE_FINISH_H

#include "core/vc_err.h"
#include "exec.h"
#include "session.h"

/* Fills res->totals, n_shards and bytes_written; run.json records the rest
 * of *res (timings and resume counts, set by the executor before). */
enum vc_status phase_finish(struct session *ss, struct exec_result *res, struct vc_err *err);

#endif
