/* wds_inspect: the `vlmcurate inspect` report for one shard.  Lists every
 * sample (key, fields with sizes, image format and size from the header
 * alone) and checks the rules that make a shard readable by every
 * webdataset reader: plain ustar headers (no pax, GNU or v7), regular files
 * only, member names of at most 100 bytes that split into key and
 * extension, safe names, keys without dots, the members of a sample
 * contiguous, no extension twice in a sample, no key twice in the shard.
 *
 * Reads the shard once, streaming; memory is one member (for image
 * headers, at most WDS_DEFAULT_MAX_ENTRY_BYTES) plus 16 bytes per sample
 * for the repeated-key check.  Never writes anything but `out`. */
#ifndef VC_STAGES_WDS_INSPECT_H
#define VC_STAGES_WDS_INSPECT_H

#include <stdbool.h>
#include <stdio.h>

#include "core/vc_err.h"

/* Prints the listing (one line per sample; verbose adds one line per
 * member with its header offset, header format and size), one line per
 * problem, and a last line starting "verdict: ok" or "verdict: invalid".
 * VC_OK for a valid shard; VC_ESHARD (unsupported_format) when a rule is
 * broken, (corrupt_archive) when the archive is damaged or no archive,
 * (io_error) when it cannot be opened; VC_EFATAL on OOM. */
enum vc_status wds_inspect(const char *path, FILE *out, bool verbose, struct vc_err *err);

#endif
