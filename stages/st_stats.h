/* st_stats: the `stats` stage, the audit built into a run. */
#ifndef VC_STAGES_ST_STATS_H
#define VC_STAGES_ST_STATS_H

#include "stage.h"

extern const struct stage_ops st_stats_ops;

#endif
