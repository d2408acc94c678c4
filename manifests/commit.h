/* commit: the JSON commit markers of a run (unit manifests, plan, shard
 * manifests, run.json).  A marker is written whole and atomically
 * (vc_fs_write_atomic) as the last step of its task, and carries the hash
 * of the spec that produced it: a rerun skips a task only when its marker
 * exists and names the same spec. */
#ifndef VC_MANIFESTS_COMMIT_H
#define VC_MANIFESTS_COMMIT_H

#include <stdbool.h>
#include <stddef.h>

#include "core/vc_err.h"

struct cJSON;

/* Manifests are ours, but a damaged one must not make us allocate without
 * bound: 1 GiB holds the record list of millions of samples. */
#define COMMIT_MAX_BYTES (1ull << 30)

/* Prints `doc` (compact when !pretty) with a trailing newline and writes
 * it atomically to path.  VC_EFATAL on I/O failure or OOM. */
enum vc_status commit_write_json(const char *path, const struct cJSON *doc, bool pretty,
                                 struct vc_err *err);
/* Parses the file; *out owned (cJSON_Delete).  VC_EOF when the file does
 * not exist, VC_ESAMPLE json_invalid when it does not parse. */
enum vc_status commit_read_json(const char *path, struct cJSON **out, struct vc_err *err);
/* The marker at path exists, parses, and its "spec_hash" equals `hash`.
 * When `out` is non-NULL the parsed document is handed over (owned). */
bool commit_valid(const char *path, const char *hash, struct cJSON **out);

#endif
