/* exec_slurm: the `slurm` executor.  Each phase (exec.h) becomes one Slurm
 * job array over the phase's tasks not yet committed, submitted with sbatch
 * and chained with --dependency=afterok, so a phase starts only once every
 * task of the previous one succeeded; every array task runs
 * `vlmcurate task OUT PHASE INDEX` (task.h), the same phase function the
 * local executor calls.  The REDUCE array's size is known only
 * once PLAN is committed, so the PLAN job submits REDUCE and FINISH itself.
 * `run` submits and returns; `vlmcurate status OUT` follows the run.
 *
 * The submission's options (the spec's path, partition, account, ...) are
 * kept in OUT/_work/slurm/options.json for `status`; the sbatch scripts in
 * OUT/_work/slurm/PHASE.sh; task logs in the logs folder as PHASE-INDEX.log (appended on retries).
 */
#ifndef VC_PIPELINE_EXEC_SLURM_H
#define VC_PIPELINE_EXEC_SLURM_H

#include <stdio.h>

#include "executor.h"

extern const struct executor_ops exec_slurm_ops;

/* For `vlmcurate status`: when OUT holds a run submitted to Slurm, one line
 * per phase with its tasks running, failed (with their logs: they ran,
 * left a log and committed nothing) and pending (queued or not submitted),
 * from squeue and the commit markers. */
void exec_slurm_status(const struct session *ss, FILE *out);

#endif
