/* executor: the table.  A new executor is a module plus a row here. */
#include "executor.h"

#include "exec_local.h"
#include "exec_slurm.h"

#include <string.h>

const struct executor_ops *const executor_table[] = { &exec_local_ops, &exec_slurm_ops, NULL };

const struct executor_ops *executor_find(const char *name)
{
    for (size_t i = 0; executor_table[i]; i++)
        if (!strcmp(executor_table[i]->name, name))
            return executor_table[i];
    return NULL;
}
