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
 * OUT/_work/slurm/PHASE.sh; one line per submission (phase, job id, time,
 * indices) in OUT/_work/slurm/jobs.txt; task logs in the logs folder as
 * PHASE-INDEX.log (appended on retries).
 */
#ifndef VC_PIPELINE_EXEC_SLURM_H
#define VC_PIPELINE_EXEC_SLURM_H

#include <stdio.h>

#include "executor.h"

extern const struct executor_ops exec_slurm_ops;

/* For `vlmcurate status`: when OUT holds a run submitted to Slurm, one line
 * per phase with its tasks done, running, pending (both from squeue),
 * failed, cancelled (each listed with its log and why) and not submitted,
 * and the committed tasks' samples/s and the ETA.  From the commit
 * markers, squeue, the submissions (OUT/_work/slurm/jobs.txt) and the
 * tasks' logs: no accounting database needed. */
void exec_slurm_status(const struct session *ss, FILE *out);

#endif
