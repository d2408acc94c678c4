/* exec_local: the `local` executor: every phase's tasks on this machine's
 * OpenMP threads (spec "threads" / --threads), dynamic scheduling, the
 * first fatal error stopping the phase. */
#ifndef VC_PIPELINE_EXEC_LOCAL_H
#define VC_PIPELINE_EXEC_LOCAL_H

#include "executor.h"

extern const struct executor_ops exec_local_ops;

#endif
