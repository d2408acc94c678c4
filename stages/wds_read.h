/* wds_read: streams samples out of one webdataset shard (.tar, .tar.gz,
 * .tar.zst, detected by content through libarchive), grouping consecutive
 * members that share a key.  Never holds more than one sample in memory.
 *
 * Hostile input: member names that are absolute or contain a ".." component
 * make that sample an error (unsafe_path); symlinks, hard links, devices and
 * directories are skipped and counted, never followed; a member larger than
 * limits.max_entry_bytes is an error for its sample (the bytes are skipped,
 * not read); a corrupt archive ends the shard with VC_ESHARD after the
 * samples read so far. */
#ifndef VC_STAGES_WDS_READ_H
#define VC_STAGES_WDS_READ_H

#include <stdint.h>

#include "core/sample.h"
#include "core/vc_err.h"

struct wds_read_limits {
    uint64_t max_entry_bytes;  /* one member; 0 = WDS_DEFAULT_MAX_ENTRY_BYTES */
    uint32_t max_fields;       /* members per sample; 0 = SAMPLE_MAX_FIELDS */
};
/* 256 MiB: larger than any web image or document page we keep, small
 * enough that a worker per core fits in a few GiB. */
#define WDS_DEFAULT_MAX_ENTRY_BYTES (256ull << 20)

struct wds_reader;

/* Opens `path` for streaming.  Owned: close with wds_reader_close.
 * VC_ESHARD when the file cannot be opened or is not an archive. */
enum vc_status wds_reader_open(const char *path, const struct wds_read_limits *limits,
                               struct wds_reader **out, struct vc_err *err);

/* Fills `s` (already sample_init'ed on the caller's arena) with the next
 * sample: key = member name up to the first dot of its last path component
 * (directories included, as webdataset does), sanitised into s->key with
 * the original in s->orig_key; fields named by the rest of the member name.
 * s->src_file is the shard path, s->src_index the sample ordinal.
 * Returns VC_OK, VC_EOF at the end, VC_ESAMPLE when this sample is bad
 * (s->orig_key and s->src_index are still set so it can be recorded; call
 * again for the next one), or VC_ESHARD when the archive is corrupt. */
enum vc_status wds_reader_next(struct wds_reader *r, struct sample *s, struct vc_err *err);

/* Members skipped because they were not regular files. */
uint64_t wds_reader_skipped(const struct wds_reader *r);
void wds_reader_close(struct wds_reader *r);

#endif
