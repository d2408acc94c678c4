/* phase_global: the tasks of a round's global stage (the stage that ends
 * the round, session.h): its reduce parts, then its plan.  Each is run alone
 * by any executor once every MAP task of the round is committed:
 *
 *   part  the stage's reduce hook for one part, committed by
 *         OUT/_work/rR-STAGE-reduce-PPPPPP.json (written after the hook);
 *   plan  one thread: the round's records (from its unit manifests) in the
 *         order the earlier global stages left, the stage's plan hook, then
 *         rR-alive.bin (read by the next round's tasks, each its unit's
 *         slice), rR-order.bin and last rR-plan.json (the commit: dropped
 *         records, shard sizing, report).  A stage with a plan_stream hook
 *         (dedup) gets no table of the records: the hook and then the
 *         commit read the unit manifests one at a time, and the carried
 *         order is filtered as a stream (holding, only when an earlier
 *         global stage left an order, 16 bytes per record alive). */
#ifndef VC_PIPELINE_PHASE_GLOBAL_H
#define VC_PIPELINE_PHASE_GLOBAL_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"
#include "session.h"

/* How many reduce parts the round's global stage has (0: none). */
size_t phase_global_parts(const struct session *ss, size_t round);
bool phase_global_part_done(const struct session *ss, size_t round, size_t part);
enum vc_status phase_global_part(const struct session *ss, size_t round, size_t part,
                                 struct vc_err *err);

bool phase_global_plan_done(const struct session *ss, size_t round);
enum vc_status phase_global_plan(const struct session *ss, size_t round, struct vc_err *err);

#endif
