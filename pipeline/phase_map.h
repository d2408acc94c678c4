/* phase_map: one MAP task = one input unit in one round (session.h), run
 * alone by any executor.  The unit's outputs are OUT/_work/rR-map-UUUUUU.bin
 * (its spill) and .json (its manifest, the commit marker, written last).
 * A task of round R > 0 deletes the unit's round R-1 spill once it is
 * committed, so the spills of all rounds are not kept at once; but the
 * last round's spill links the bytes it passes on unchanged to round R-1's
 * (spill.h), which then stays as long as it does. */
#ifndef VC_PIPELINE_PHASE_MAP_H
#define VC_PIPELINE_PHASE_MAP_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"
#include "session.h"

struct arena;

/* The task's commit marker names this spec and its spill exists, or the
 * unit's next round is done (that round's task deleted the spill, having
 * read it). */
bool phase_map_done(const struct session *ss, size_t round, size_t unit);
/* Deletes the unit's spill of `round` (best effort): once the next round
 * committed the unit, or at FINISH for every round but the last. */
void phase_map_drop_spill(const struct session *ss, size_t round, size_t unit);

/* The per-worker sample arenas a task of `round` needs (one per batch
 * slot), reused across tasks.  Owned: phase_map_arenas_free; NULL on OOM. */
struct arena **phase_map_arenas_new(const struct session *ss, size_t round);
void phase_map_arenas_free(const struct session *ss, size_t round, struct arena **a);

/* Runs the task and commits it (whether or not it was committed before).
 * VC_OK; VC_ESHARD when the unit's input cannot be read (vanished, no
 * permission, I/O error): nothing of it is committed, err names the file,
 * a later attempt retries it; VC_EFATAL (err says why) on I/O failure of
 * our own files, OOM or a stage's fatal error.  Samples go to ss->prog,
 * error lines to ss->log. */
enum vc_status phase_map_unit(struct session *ss, size_t round, size_t unit, struct arena **arenas,
                              struct vc_err *err);

#endif
