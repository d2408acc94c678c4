/* plan: the deterministic single-threaded steps between MAP and REDUCE
 * that do not belong to any stage: cutting the output order into shards
 * (by samples per shard and/or a byte target), and making output keys
 * unique and webdataset-safe.  Both rules are online, one sample at a time
 * in output order (what PLAN streams); the array forms apply them to a
 * whole order at once.  Unit-tested. */
#ifndef VC_PIPELINE_PLAN_H
#define VC_PIPELINE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/vc_err.h"

/* Output keys are at most this long, leaving room in a 100-byte ustar
 * name for "." plus a field name of up to 35 bytes ("0123.webp", "json"). */
enum { PLAN_MAX_KEY = 64 };

/* The shard rule, one sample at a time: plan_cut_next is true when the
 * sample of `bytes` opens a new shard (the first always does). */
struct plan_cut {
    uint64_t per_shard, max_bytes; /* the rule (0 = no limit) */
    uint64_t count, cur;           /* the open shard: samples, bytes */
    bool started;
};
bool plan_cut_next(struct plan_cut *c, uint64_t bytes);

/* Cuts n samples (in output order, each `bytes[i]` long in the tar) into
 * shards: a shard closes when it holds per_shard samples (0 = no limit) or
 * when the next sample would take its file (end blocks and record padding
 * included, see wds_tar_file_bytes) past max_bytes (0 = no limit; a single
 * larger sample gets a shard of its own).  *starts (owned) gets
 * n_shards + 1 offsets: shard k holds samples [starts[k], starts[k+1]). */
enum vc_status plan_shards(const uint64_t *bytes, size_t n, uint64_t per_shard, uint64_t max_bytes,
                           size_t **starts, size_t *n_shards, struct vc_err *err);

/* Turns keys[0..n) (in output order, owned malloc'd strings) into unique
 * webdataset keys in place: sanitised ([A-Za-z0-9_-]), cut to
 * PLAN_MAX_KEY, and the second and later uses of a key get "_1", "_2"...
 * (a suffix that is itself taken is skipped). */
enum vc_status plan_unique_keys(char **keys, size_t n, struct vc_err *err);

/* The key rule, one key at a time: `clean` (sanitised) itself unless
 * taken(ctx, clean), else the first of clean_1, clean_2, ... (cut so the
 * whole fits PLAN_MAX_KEY) not taken.  `taken` says whether an earlier
 * sample of the output order got that key. */
typedef bool (*plan_taken_fn)(void *ctx, const char *key);
void plan_key_pick(const char *clean, plan_taken_fn taken, void *ctx, char out[PLAN_MAX_KEY + 1]);
/* True when key ends in "_" and digits: the only keys plan_key_pick makes
 * besides the clean key itself. */
bool plan_key_suffixed(const char *key);

/* A growable set of keys (copied). */
struct plan_keyset;
struct plan_keyset *plan_keyset_new(void); /* NULL on OOM */
void plan_keyset_free(struct plan_keyset *ks);
bool plan_keyset_has(const struct plan_keyset *ks, const char *key);
enum vc_status plan_keyset_add(struct plan_keyset *ks, const char *key, struct vc_err *err);

/* Bytes a member of `size` bytes takes in a ustar archive: a 512-byte
 * header plus the data padded to 512. */
uint64_t plan_tar_member_bytes(uint64_t size);

#endif
