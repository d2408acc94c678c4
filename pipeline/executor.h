/* executor: how the tasks of a run are scheduled, behind one table (the
 * executors are rows, as stages and filters are).  Every executor runs
 * the same phase functions (phase_map.h, phase_global.h, phase_plan.h,
 * phase_reduce.h, phase_finish.h) in the same order, a phase starting only
 * once every task of the previous one is committed, so the output bytes do
 * not depend on the executor.  Chosen by the spec's "executor" or
 * `run --executor`. */
#ifndef VC_PIPELINE_EXECUTOR_H
#define VC_PIPELINE_EXECUTOR_H

#include "core/vc_err.h"
#include "exec.h"
#include "session.h"

struct executor_ops {
    const char *name;
    const char *summary; /* one line for `run --help` */
    /* Queues the tasks elsewhere and returns: the folder's lock is held
     * shared while it submits (outdir_share), so the run's own tasks are
     * not refused. */
    bool submits;
    /* Runs every task not yet committed and FINISH.  The output folder is
     * claimed (and locked) by the caller. */
    enum vc_status (*run)(struct session *ss, struct exec_result *res, struct vc_err *err);
};

/* NULL-terminated. */
extern const struct executor_ops *const executor_table[];
/* NULL when no executor has that name. */
const struct executor_ops *executor_find(const char *name);

#endif
