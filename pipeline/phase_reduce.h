/* phase_reduce: one REDUCE task = one output shard.  Reads the shard's
 * slice of the plan (its part of OUT/_work/plan-slices.bin) and the spill
 * records it names, one sample in memory at a time, writes
 * OUT/PREFIX-NNNNNN.tar (temp + rename) and commits it with its manifest
 * OUT/PREFIX-NNNNNN.json, written last. */
#ifndef VC_PIPELINE_PHASE_REDUCE_H
#define VC_PIPELINE_PHASE_REDUCE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"
#include "session.h"

struct arena;
struct cJSON;

/* The shard's manifest path (owned; NULL on OOM). */
char *phase_reduce_manifest_path(const struct session *ss, size_t shard);
bool phase_reduce_done(const struct session *ss, size_t shard);
/* `arena` holds one sample (capped by limits.max_sample_bytes). */
enum vc_status phase_reduce_shard(struct session *ss, size_t shard, struct arena *arena,
                                  struct vc_err *err);

#endif
