/* cmd_inspect: `vlmcurate inspect SHARD... [--quiet]`: lists each shard's
 * samples and fields and validates it as webdataset (wds_inspect). */
#ifndef VC_PIPELINE_CMD_INSPECT_H
#define VC_PIPELINE_CMD_INSPECT_H

/* Exit status: 0 every shard valid, 1 some shard invalid or unreadable,
 * 2 usage error.  argv[0] = "inspect". */
int cmd_inspect_main(int argc, char **argv);

#endif
