/* task: a run's tasks by name, for executors that start one process per
 * task (`vlmcurate task OUT PHASE INDEX`, a cluster job array) and for
 * `vlmcurate status`.  Phases, in the order they must run, each starting
 * only once every task of the previous ones is committed:
 *
 *   rR-map     INDEX = input unit             (phase_map.h)
 *   rR-reduce  INDEX = part of round R's global stage (phase_global.h)
 *   rR-plan    INDEX = 0: round R's global plan (phase_global.h)
 *   plan       INDEX = 0: shard cuts and slices (phase_plan.h)
 *   write      INDEX = output shard           (phase_reduce.h)
 *   finish     INDEX = 0: ledger, indexes, run.json (phase_finish.h)
 *
 * rR-reduce and rR-plan exist for every round but the last. */
#ifndef VC_PIPELINE_TASK_H
#define VC_PIPELINE_TASK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"
#include "session.h"

enum task_phase { TASK_MAP, TASK_REDUCE, TASK_ROUND_PLAN, TASK_PLAN, TASK_WRITE, TASK_FINISH };

struct task_ref {
    enum task_phase phase;
    size_t round, index;
};

/* The phases of this run in order (each with its round), written to
 * v[0..*n) (v holds 3 * n_rounds + 3). */
void task_phases(const struct session *ss, struct task_ref *v, size_t *n);
/* "r0-map", "plan", ... into buf. */
void task_phase_name(const struct task_ref *t, char *buf, size_t cap);
/* Parses PHASE; VC_EUSAGE naming the phases of this run when unknown. */
enum vc_status task_parse(const struct session *ss, const char *phase, struct task_ref *t,
                          struct vc_err *err);
/* How many tasks the phase has (*known false for write before the plan is
 * committed) and how many of them are committed. */
void task_count(const struct session *ss, const struct task_ref *t, size_t *total, size_t *done,
                bool *known);
/* Task i of t's phase is committed. */
bool task_done(const struct session *ss, const struct task_ref *t, size_t i);
/* Runs task t (t->index) unless it is committed (*was_done).  VC_EFATAL
 * "not ready" naming the phase that is not committed yet; VC_EUSAGE when
 * the index is out of range; the phase function's status otherwise. */
enum vc_status task_run(struct session *ss, const struct task_ref *t, bool *was_done,
                        struct vc_err *err);

#endif
