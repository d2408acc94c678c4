/* phase_plan: PLAN, after the last round, on one thread: the last round's
 * records in the order the global stages left, cut into shards
 * (plan_shards) under unique output keys (plan_unique_keys).  Writes one
 * slice per shard (what that shard holds and where each sample sits in the
 * spills, as compact JSON, manifest.h) into one indexed file,
 * OUT/_work/plan-slices.bin (spill.h: a header of offsets, so a REDUCE task
 * reads its own slice and nothing else), then plan.json (the commit: shard
 * cuts, the stages' report).
 * Memory: the spec's memory_mb (the records go through external sorts on
 * disk under OUT/_work, extsort.h), plus one word per shard and the keys
 * it had to rename; never a table of the records. */
#ifndef VC_PIPELINE_PHASE_PLAN_H
#define VC_PIPELINE_PHASE_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"
#include "session.h"

struct cJSON;

bool phase_plan_done(const struct session *ss);
enum vc_status phase_plan(const struct session *ss, struct vc_err *err);
/* The committed plan.json (owned: cJSON_Delete) and its shard count;
 * VC_EFATAL naming the file when it is missing or malformed. */
enum vc_status phase_plan_read(const struct session *ss, struct cJSON **doc, size_t *n_shards,
                               struct vc_err *err);
/* Shard `shard`'s slice document (owned: cJSON_Delete), read alone from
 * the slices file; VC_EFATAL naming the file when it is missing, shorter
 * than its header says, or the slice names another spec. */
enum vc_status phase_plan_slice(const struct session *ss, size_t shard, struct cJSON **doc,
                                struct vc_err *err);

#endif
