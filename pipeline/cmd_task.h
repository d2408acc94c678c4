/* cmd_task: `vlmcurate task OUT PHASE INDEX`: runs exactly one task of the
 * run in OUT (task.h names them), as a cluster array task would. */
#ifndef VC_PIPELINE_CMD_TASK_H
#define VC_PIPELINE_CMD_TASK_H

/* Exit status: 0 the task is committed (now or before), 1 it failed or
 * its phase is not ready, 2 usage error.  argv[0] = "task". */
int cmd_task_main(int argc, char **argv);

#endif
