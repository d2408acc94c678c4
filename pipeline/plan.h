/* plan: the deterministic single-threaded steps between MAP and REDUCE
 * that do not belong to any stage: cutting the output order into shards
 * (by samples per shard and/or a byte target), and making output keys
 * unique and webdataset-safe.  Pure functions over arrays, unit-tested. */
#ifndef VC_PIPELINE_PLAN_H
#define VC_PIPELINE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* Output keys are at most this long, leaving room in a 100-byte ustar
 * name for "." plus a field name of up to 35 bytes ("0123.webp", "json"). */
enum { PLAN_MAX_KEY = 64 };

/* Cuts n samples (in output order, each `bytes[i]` long in the tar) into
 * shards: a shard closes when it holds per_shard samples (0 = no limit) or
 * when the next sample would take it past max_bytes (0 = no limit; a
 * single larger sample gets a shard of its own).  *starts (owned) gets
 * n_shards + 1 offsets: shard k holds samples [starts[k], starts[k+1]). */
enum vc_status plan_shards(const uint64_t *bytes, size_t n, uint64_t per_shard, uint64_t max_bytes,
                           size_t **starts, size_t *n_shards, struct vc_err *err);

/* Turns keys[0..n) (in output order, owned malloc'd strings) into unique
 * webdataset keys in place: sanitised ([A-Za-z0-9_-]), cut to
 * PLAN_MAX_KEY, and the second and later uses of a key get "_1", "_2"...
 * (a suffix that is itself taken is skipped). */
enum vc_status plan_unique_keys(char **keys, size_t n, struct vc_err *err);

/* Bytes a member of `size` bytes takes in a ustar archive: a 512-byte
 * header plus the data padded to 512. */
uint64_t plan_tar_member_bytes(uint64_t size);

#endif
