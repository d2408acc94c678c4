/* cmd_status: `vlmcurate status OUT`: per phase of the run in OUT, how
 * many tasks are committed, and which phase comes next. */
#ifndef VC_PIPELINE_CMD_STATUS_H
#define VC_PIPELINE_CMD_STATUS_H

/* Exit status: 0 the run is complete, 1 it is not (or OUT cannot be read),
 * 2 usage error.  argv[0] = "status". */
int cmd_status_main(int argc, char **argv);

#endif
