/* src_wds: the "webdataset" source: one unit per shard file named by
 * "urls" (a path, a brace pattern, or a list), read with wds_read. */
#ifndef VC_STAGES_SRC_WDS_H
#define VC_STAGES_SRC_WDS_H

#include "source.h"

extern const struct source_ops src_wds_ops;

#endif
