/* cmd_stats: `vlmcurate stats DIR|SHARD... [options]`, the audit of any
 * webdataset shards, whether vlmcurate wrote them or not. */
#ifndef VC_PIPELINE_CMD_STATS_H
#define VC_PIPELINE_CMD_STATS_H

/* Returns the process exit status: 0 success, 1 some shards unreadable
 * (the report covers the others), 2 usage error. */
int cmd_stats_main(int argc, char **argv);

#endif
